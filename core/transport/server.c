/* The server: configuration, listeners and accepting, shutdown. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "transport/internal.h"
#include "transport/log.h"
#include "transport/tls.h"

void dx_config_defaults(dx_config *cfg)
{
    cfg->max_message = 16u * 1024 * 1024;
    cfg->max_head = 8 * 1024;
    cfg->max_headers = 64;
    cfg->handshake_timeout = 10;
    cfg->close_timeout = 5;
    cfg->idle_timeout = 0;
    cfg->ping_interval = 30;
    cfg->pong_timeout = 10;
    cfg->max_backpressure = 1024 * 1024;
    cfg->backpressure_drop = 0;
    cfg->drain_mark = 64 * 1024;
    cfg->deflate.mode = DX_PMD_OFF;
    cfg->deflate.window_bits = 15;
    cfg->deflate.mem_level = 8;
    cfg->deflate_threshold = 64;
    cfg->shutdown_timeout = 10;
    cfg->handler_timeout = 1;
    cfg->max_connections = 10000;
    cfg->max_connections_per_ip = 256;
    cfg->max_message_rate = 1000;
    cfg->message_burst = 1000;
    cfg->message_rate_drop = 0;
    cfg->origins[0] = 0;
    cfg->client_js = 1;
    cfg->sse = 1;
}

const int dx_refused_status[DX_REFUSED_SLOTS] = { 400, 403, 404, 405, 426, 431, 500, 503, 0 };

int dx_refused_slot(int status)
{
    int i = 0;
    while (i < DX_REFUSED_SLOTS - 1 && dx_refused_status[i] != status)
        i++;
    return i;
}

static void resume_accepting(struct ev_loop *loop, ev_timer *w, int revents);

dx_server *dx_server_new(struct ev_loop *loop, const dx_config *cfg,
                         const dx_events *ev, void *ud)
{
    dx_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->rbuf = malloc(DX_READ_BUFFER);
    if (s->rbuf == NULL) {
        free(s);
        return NULL;
    }
    s->loop = loop;
    s->cfg = *cfg;
    s->ev = *ev;
    s->ud = ud;
    ev_init(&s->accept_pause, resume_accepting);
    s->accept_pause.data = s;
    dx_chunks_init(&s->chunks, loop, s->ev.unhold, ud);
    ev_prepare_init(&s->flusher, dx_flusher_cb);
    s->flusher.data = s;
    ev_prepare_start(loop, &s->flusher);
    ev_unref(loop);                      /* flushing alone does not keep the loop running */
    return s;
}

static void set_accepting(dx_server *s, int on)
{
    for (int i = 0; i < s->nlisteners; i++) {
        if (on)
            ev_io_start(s->loop, &s->listeners[i]);
        else
            ev_io_stop(s->loop, &s->listeners[i]);
    }
}

static void resume_accepting(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    set_accepting(w->data, 1);
}

/* Out of file descriptors: the pending connection stays in the backlog
 * (accept would fail again at once), so stop watching for 100 ms rather
 * than spin, and say so once per pause. */
static void pause_accepting(dx_server *s, int err)
{
    dx_log(DX_LOG_ERROR, "accept_paused", 0, NULL, "cannot accept connections: %s; pausing 100 ms",
           strerror(err));
    set_accepting(s, 0);
    ev_timer_set(&s->accept_pause, 0.1, 0);
    ev_timer_start(s->loop, &s->accept_pause);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    dx_server *s = w->data;
    for (int i = 0; i < 64; i++) {       /* bounded, so other watchers get their turn */
        struct sockaddr_storage addr;
        socklen_t alen = sizeof addr;
        int fd = accept4(w->fd, (struct sockaddr *)&addr, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accepting(s, errno);
            return;                      /* EAGAIN, or try again on the next readiness */
        }
        dx_addr a;
        dx_addr_from_sockaddr(&a, (struct sockaddr *)&addr);
        if (dx_limits_accept(s, &a) < 0) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        dx_conn *c = dx_conn_new(s, fd, &a);
        if (c == NULL) {
            dx_limits_release(s, &a);
            close(fd);
        } else if (s->tls && dx_tls_conn_start(c) < 0)
            dx_conn_free(c);
    }
}

static int bound_port(int fd)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return 0;
    if (a.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&a)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
}

static const char *errno_name(int e)
{
    switch (e) {
    case EADDRINUSE: return "EADDRINUSE";
    case EACCES: return "EACCES";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EMFILE: return "EMFILE";
    default: return "ELISTEN";
    }
}

/* Opens one listening socket on ai with the given port (SO_REUSEPORT
 * when reuse_port). Returns the fd, or -1 with errno set. */
static int open_listener(const struct addrinfo *ai, int port, int reuse_port)
{
    struct sockaddr_storage a;
    memcpy(&a, ai->ai_addr, ai->ai_addrlen);
    if (a.ss_family == AF_INET)
        ((struct sockaddr_in *)&a)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&a)->sin6_port = htons((uint16_t)port);
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (ai->ai_family == AF_INET6)       /* "::" takes IPv4 too, unless the system forbids it */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, (struct sockaddr *)&a, ai->ai_addrlen) < 0 || listen(fd, 511) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int dx_server_listen(dx_server *s, const char *host, int port,
                     char *errbuf, size_t errcap, const char **errname)
{
    if (s->tls && !dx_tls_ready(s->tls) && dx_tls_load(s->tls, errbuf, errcap) < 0) {
        *errname = "ETLS";
        return -1;
    }
    dx_raise_fd_limit();
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *res = NULL;
    char svc[16];
    snprintf(svc, sizeof svc, "%d", port);
    int r = getaddrinfo(host, svc, &hints, &res);
    if (r != 0) {
        snprintf(errbuf, errcap, "cannot resolve %s: %s", host ? host : "*", gai_strerror(r));
        *errname = "EAI_NONAME";
        return -1;
    }
    int err = 0;
    /* IPv6 first: on a dual-stack system "::" takes IPv4 too, and the
     * 0.0.0.0 that follows then finds its port taken, which is fine. */
    for (int pass = 0; pass < 2; pass++) {
        int family = pass == 0 ? AF_INET6 : AF_INET;
        for (struct addrinfo *ai = res; ai && s->nlisteners < DX_MAX_LISTENERS; ai = ai->ai_next) {
            if (ai->ai_family != family)
                continue;
            int fd = open_listener(ai, s->port ? s->port : port, s->reuse_port);
            if (fd < 0) {
                if (!(errno == EADDRINUSE && s->nlisteners > 0))
                    err = errno;
                continue;
            }
            if (s->port == 0)
                s->port = bound_port(fd);
            ev_io *w = &s->listeners[s->nlisteners++];
            ev_io_init(w, accept_cb, fd, EV_READ);
            w->data = s;
            ev_io_start(s->loop, w);
        }
    }
    freeaddrinfo(res);
    if (s->nlisteners == 0) {
        snprintf(errbuf, errcap, "cannot listen on %s:%d: %s", host ? host : "*", port,
                 strerror(err ? err : EADDRNOTAVAIL));
        *errname = errno_name(err);
        for (int i = 0; i < s->nlisteners; i++) {
            ev_io_stop(s->loop, &s->listeners[i]);
            close(s->listeners[i].fd);
        }
        s->nlisteners = 0;
        s->port = 0;
        return -1;
    }
    return 0;
}

void dx_server_set_reuse_port(dx_server *s, int on) { s->reuse_port = on != 0; }

void dx_server_set_worker(dx_server *s, unsigned index) { s->worker = index & 0xffff; }

int dx_server_set_static(dx_server *s, const char *dir)
{
    char *copy = dir ? strdup(dir) : NULL;
    if (dir && copy == NULL)
        return -1;
    free(s->static_root);
    s->static_root = copy;
    return 0;
}

int dx_server_set_client_js(dx_server *s, const void *body, size_t len)
{
    char *copy = NULL;
    if (body) {
        copy = malloc(len ? len : 1);
        if (copy == NULL)
            return -1;
        memcpy(copy, body, len);
    }
    free(s->client_js);
    s->client_js = copy;
    s->client_js_len = body ? len : 0;
    uint64_t h = 1469598103934665603ull;          /* FNV-1a 64 */
    for (size_t i = 0; i < s->client_js_len; i++)
        h = (h ^ (uint8_t)copy[i]) * 1099511628211ull;
    snprintf(s->client_js_etag, sizeof s->client_js_etag, "\"%016llx\"", (unsigned long long)h);
    return 0;
}

int dx_server_set_tls(dx_server *s, struct dx_tls *tls)
{
    if (s->nlisteners > 0) {
        dx_tls_free(tls);
        return -1;
    }
    dx_tls_free(s->tls);
    s->tls = tls;
    return 0;
}

int dx_server_reload_tls(dx_server *s, char *errbuf, size_t errcap)
{
    if (s->tls == NULL) {
        snprintf(errbuf, errcap, "the server does not speak TLS");
        return -1;
    }
    return dx_tls_load(s->tls, errbuf, errcap);
}

int dx_server_tls(const dx_server *s) { return s->tls != NULL; }
int dx_server_port(const dx_server *s) { return s->port; }
dx_config *dx_server_config(dx_server *s) { return &s->cfg; }
size_t dx_server_conn_count(const dx_server *s) { return s->nconns; }
const dx_stats *dx_server_stats(const dx_server *s) { return &s->stats; }

static void stop_listening(dx_server *s)
{
    ev_timer_stop(s->loop, &s->accept_pause);
    for (int i = 0; i < s->nlisteners; i++) {
        ev_io_stop(s->loop, &s->listeners[i]);
        close(s->listeners[i].fd);
    }
    s->nlisteners = 0;
}

void dx_server_shutdown(dx_server *s, const char *reason)
{
    if (s->shutting_down)
        return;
    s->shutting_down = 1;
    s->shutdown_at = ev_now(s->loop) + s->cfg.shutdown_timeout;
    stop_listening(s);
    size_t len = reason ? strlen(reason) : 0;
    for (dx_conn *c = s->conns; c; c = c->next) {
        if (c->state == DX_OPEN)
            dx_conn_close(c, DX_CLOSE_GOING_AWAY, reason, len);
        else if (c->state == DX_HANDSHAKE && c->out.head)
            dx_conn_linger(c, 0);        /* a response under way: sent, then closed */
        else
            dx_conn_arm_timer(c);        /* the deadline: now for an idle HTTP connection */
    }
}

void dx_server_free(dx_server *s)
{
    if (s == NULL)
        return;
    stop_listening(s);
    while (s->conns)
        dx_conn_free(s->conns);
    dx_conn *c = s->dirty;               /* structs kept for the flush list */
    while (c) {
        dx_conn *next = c->next_dirty;
        free(c);
        c = next;
    }
    ev_ref(s->loop);
    ev_prepare_stop(s->loop, &s->flusher);
    dx_deflate_server_free(s);
    dx_topics_free(s);
    dx_limits_free(s);
    dx_sse_server_free(s);
    dx_chunks_free(&s->chunks);
    free(s->static_root);
    free(s->client_js);
    dx_tls_free(s->tls);
    free(s->rbuf);
    free(s);
}
