/* WebSocket clients: connect, handshake, frames in and out. See client.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "client/client.h"
#include "transport/queue.h"
#include "transport/sock.h"
#include "transport/tls.h"
#include "protocol/client_handshake.h"
#include "protocol/frame.h"
#include "protocol/message.h"

#define DX_CLIENT_RBUF (256 * 1024)   /* one per ctx, shared by its clients */
#define DX_CLIENT_HEAD_MAX 8192       /* largest 101 response head */
#define DX_RAND_POOL 4096             /* random bytes fetched at once */
#define DX_PONG_ROOM (1024 * 1024)   /* unsent bytes past which pings go unanswered */

enum cstate { C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSING, C_DEAD };

struct dx_client {
    dx_client_ctx *x;
    dx_client *prev, *next;         /* the ctx's clients */
    dx_client *next_dirty;          /* the ctx's flush list */
    void *user;
    int fd;
    uint8_t state;                  /* enum cstate */
    uint8_t opened : 1;
    uint8_t dirty : 1;              /* on the flush list */
    uint8_t writing : 1;            /* wio waits for room in the socket */
    uint8_t busy : 1;               /* the reader works on it: the struct stays */
    uint8_t tls_handshaking : 1;    /* wss: the TLS handshake is not done */
    uint8_t tls_read_wants_write : 1; /* wss: the handshake or a read waits for writable */
    uint8_t tls_flush_wants_read : 1; /* wss: a write waits for readable */
    uint8_t tls_failed : 1;         /* wss: fatal error, no close_notify */
    SSL *ssl;                       /* NULL: ws:// */
    char key[DX_CLIENT_KEY_LEN];
    ev_io rio, wio;
    ev_timer timer;
    dx_message msg;
    uint8_t *in;                    /* a partial frame or response head */
    size_t in_len, in_cap;
    uint8_t *asm_buf;               /* a fragmented message under assembly */
    size_t asm_len, asm_cap;
    dx_queue out;                   /* queued output */
    char *request;                  /* the upgrade request, until it is queued */
    char *offered;                  /* the subprotocols offered ("a, b"), or NULL */
    char *protocol;                 /* the one the server chose, once open; NULL: none */
};

struct dx_client_ctx {
    struct ev_loop *loop;
    dx_client_config cfg;
    dx_client_events ev;
    void *ud;
    dx_client *clients;
    size_t count;
    dx_client *dirty;
    ev_prepare flusher;
    dx_chunks chunks;               /* its clients' output chunks */
    uint8_t *rbuf;
    uint8_t pool[DX_RAND_POOL];
    size_t pool_left;
    struct tls_ctx *tls;            /* client contexts, one per (ca, insecure) */
    size_t ntls;
    BIO_METHOD *bio;                /* send/recv without SIGPIPE */
};

/* A TLS client context: its settings and OpenSSL's. */
typedef struct tls_ctx {
    char *ca;                       /* NULL: the system's trust store */
    int insecure;
    SSL_CTX *ctx;
} tls_ctx;

void dx_client_config_defaults(dx_client_config *cfg)
{
    cfg->handshake_timeout = 10;
    cfg->close_timeout = 2;
    cfg->max_message = 16u * 1024 * 1024;
}

/* n (at most DX_RAND_POOL) fresh random bytes. */
static const uint8_t *random_bytes(dx_client_ctx *x, size_t n)
{
    if (x->pool_left < n) {
        if (RAND_bytes(x->pool, DX_RAND_POOL) != 1) {
            /* libcrypto could not seed: never mask with a predictable key
             * silently; fall back to the kernel, then give up loudly. */
            FILE *f = fopen("/dev/urandom", "rb");
            size_t got = f ? fread(x->pool, 1, DX_RAND_POOL, f) : 0;
            if (f)
                fclose(f);
            if (got != DX_RAND_POOL)
                abort();
        }
        x->pool_left = DX_RAND_POOL;
    }
    x->pool_left -= n;
    return x->pool + x->pool_left;
}

/* ---- teardown ---- */

static void release(dx_client *c)
{
    free(c->in);
    free(c->asm_buf);
    dx_queue_clear(&c->out, &c->x->chunks);
    free(c->request);
    free(c->offered);
    free(c->protocol);
    c->in = c->asm_buf = NULL;
    c->request = c->offered = c->protocol = NULL;
}

/* Ends c: closes its socket, runs the close event once, and frees it
 * unless the reader or the flush list still holds it. */
static void finish(dx_client *c, unsigned code, const char *why)
{
    dx_client_ctx *x = c->x;
    if (c->state == C_DEAD)
        return;
    ev_io_stop(x->loop, &c->rio);
    ev_io_stop(x->loop, &c->wio);
    ev_timer_stop(x->loop, &c->timer);
    if (c->ssl) {
        if (!c->tls_failed && !c->tls_handshaking)
            SSL_shutdown(c->ssl);            /* close_notify, best effort */
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    close(c->fd);
    c->fd = -1;
    c->state = C_DEAD;
    if (c->prev)
        c->prev->next = c->next;
    else
        x->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    x->count--;
    release(c);
    x->ev.close(x->ud, c, c->opened, code, why ? why : "");
    if (!c->busy && !c->dirty)
        free(c);
}

static void fail_errno(dx_client *c, const char *what, int err)
{
    char why[160];
    snprintf(why, sizeof why, "%s: %s", what, strerror(err));
    finish(c, DX_CLOSE_ABNORMAL, why);
}

/* ---- output ---- */

static void mark_dirty(dx_client *c)
{
    if (c->dirty || c->writing)
        return;
    c->dirty = 1;
    c->next_dirty = c->x->dirty;
    c->x->dirty = c;
}

/* Room for n more bytes of output. NULL when out of memory. */
static uint8_t *out_reserve(dx_client *c, size_t n)
{
    uint8_t *p = dx_queue_reserve(&c->out, &c->x->chunks, n);
    if (p)
        mark_dirty(c);
    return p;
}

/* Queues one masked frame with fin set. Returns 0, or -1 out of memory. */
static int out_frame(dx_client *c, int opcode, const void *data, size_t len)
{
    uint8_t hdr[DX_FRAME_HEADER_MAX];
    const uint8_t *key = random_bytes(c->x, 4);
    size_t hl = dx_frame_write_header(hdr, 1, 0, opcode, len, key);
    uint8_t *p = out_reserve(c, hl + len);
    if (p == NULL)
        return -1;
    memcpy(p, hdr, hl);
    if (len) {
        memcpy(p + hl, data, len);
        dx_mask(p + hl, len, key, 0);
    }
    return 0;
}

static int out_close(dx_client *c, unsigned code)
{
    uint8_t payload[2] = { (uint8_t)(code >> 8), (uint8_t)code };
    return out_frame(c, DX_OP_CLOSE, payload, code ? 2 : 0);
}

/* Writes what the socket takes; the write watcher takes over when it is
 * full. c may be freed when this returns, unless it was busy. */
static int tls_flush(dx_client *c);

static void flush(dx_client *c)
{
    if (c->ssl) {
        if (tls_flush(c) != 0)
            return;
    }
    while (c->out.head) {
        struct iovec iov[DX_IOV_MAX];
        ssize_t w = dx_sendv(c->fd, iov, dx_queue_iov(&c->out, iov));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->writing) {
                    c->writing = 1;
                    ev_io_start(c->x->loop, &c->wio);
                }
                return;
            }
            fail_errno(c, "send", errno);
            return;
        }
        dx_queue_consume(&c->out, &c->x->chunks, (size_t)w);
    }
    if (c->writing) {
        c->writing = 0;
        if (!c->tls_read_wants_write)
            ev_io_stop(c->x->loop, &c->wio);
    }
}

static void flusher_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    dx_client_ctx *x = w->data;
    while (x->dirty) {
        dx_client *c = x->dirty;
        x->dirty = NULL;
        while (c) {
            dx_client *next = c->next_dirty;
            c->dirty = 0;
            c->next_dirty = NULL;
            if (c->state == C_DEAD) {
                if (!c->busy)
                    free(c);
            } else if (c->state != C_CONNECTING) {
                flush(c);
            }
            c = next;
        }
    }
}

/* ---- input ---- */

/* Keeps p[0..n) (a partial frame or head) in c->in, at its start. */
static int keep(dx_client *c, const uint8_t *p, size_t n)
{
    if (n > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 4096;
        while (cap < n)
            cap *= 2;
        uint8_t *b = malloc(cap);
        if (b == NULL)
            return -1;
        memcpy(b, p, n);
        free(c->in);
        c->in = b;
        c->in_cap = cap;
    } else if (n) {
        memmove(c->in, p, n);
    }
    c->in_len = n;
    return 0;
}

/* Fails an open client for bad input (RFC 6455 7.1.7): our close frame
 * goes out if the socket takes it, then the client ends. */
static void protocol_fail(dx_client *c, unsigned code, const char *why)
{
    char line[96];
    snprintf(line, sizeof line, "failed by the client: %s", why);
    if (c->state == C_OPEN && out_close(c, code) == 0)
        flush(c);
    finish(c, code, line);
}

static void on_control(dx_client *c, int opcode, const uint8_t *p, size_t len)
{
    if (opcode == DX_OP_PING) {
        /* A server that pings and never reads must not grow our queue:
         * past DX_PONG_ROOM unsent, pings go unanswered (RFC 6455 5.5.3
         * lets an endpoint answer only the latest one). */
        if (c->state == C_OPEN && c->out.bytes < DX_PONG_ROOM)
            out_frame(c, DX_OP_PONG, p, len);
        return;
    }
    if (opcode == DX_OP_PONG)
        return;
    unsigned code;
    const uint8_t *reason;
    size_t rlen;
    int err = dx_close_parse(p, len, &code, &reason, &rlen);
    if (err) {
        protocol_fail(c, (unsigned)err, "invalid close frame");
        return;
    }
    char why[160];
    snprintf(why, sizeof why, "closed by the server (%u%s%.*s)", code, rlen ? ": " : "",
             (int)rlen, (const char *)reason);
    if (c->state == C_OPEN) {
        /* Echo it, flush, then end: the server closes TCP after its close. */
        if (out_close(c, code == DX_CLOSE_NO_STATUS ? 0 : code) == 0)
            flush(c);                   /* what the socket takes now; then TCP ends */
    }
    finish(c, code, why);               /* (or it answered our close) */
}

static void on_data(dx_client *c, const dx_frame_header *h, const uint8_t *p)
{
    size_t len = (size_t)h->length;
    int err = dx_message_frame(&c->msg, h, c->x->cfg.max_message);
    if (err) {
        protocol_fail(c, (unsigned)err, err == DX_CLOSE_TOO_BIG ? "message too big" : "unexpected frame");
        return;
    }
    if (dx_message_payload(&c->msg, p, len)) {
        protocol_fail(c, DX_CLOSE_INVALID_DATA, "invalid UTF-8");
        return;
    }
    int binary = c->msg.opcode == DX_OP_BINARY;
    if (h->fin && c->asm_len == 0 && h->opcode != DX_OP_CONT) {
        if (dx_message_end(&c->msg)) {
            protocol_fail(c, DX_CLOSE_INVALID_DATA, "invalid UTF-8");
            return;
        }
        if (c->state == C_OPEN)
            c->x->ev.message(c->x->ud, c, p, len, binary);
        return;
    }
    if (c->asm_cap - c->asm_len < len) {
        size_t cap = c->asm_cap ? c->asm_cap : 4096;
        while (cap - c->asm_len < len)
            cap *= 2;
        uint8_t *b = realloc(c->asm_buf, cap);
        if (b == NULL) {
            protocol_fail(c, DX_CLOSE_INTERNAL, "out of memory");
            return;
        }
        c->asm_buf = b;
        c->asm_cap = cap;
    }
    if (len)
        memcpy(c->asm_buf + c->asm_len, p, len);
    c->asm_len += len;
    if (!h->fin)
        return;
    if (dx_message_end(&c->msg)) {
        protocol_fail(c, DX_CLOSE_INVALID_DATA, "invalid UTF-8");
        return;
    }
    size_t total = c->asm_len;
    c->asm_len = 0;
    if (c->state == C_OPEN)
        c->x->ev.message(c->x->ud, c, c->asm_buf, total, binary);
}

/* Parses whole frames from p[0..n); keeps a partial one in c->in. */
static void feed_frames(dx_client *c, const uint8_t *p, size_t n)
{
    while (c->state == C_OPEN || c->state == C_CLOSING) {
        dx_frame_header h;
        int r = n ? dx_frame_parse_header(p, n, 0, 0, &h) : 0;
        if (r < 0) {
            protocol_fail(c, DX_CLOSE_PROTOCOL, "protocol error");
            return;
        }
        if (r > 0 && h.length > c->x->cfg.max_message) {
            protocol_fail(c, DX_CLOSE_TOO_BIG, "message too big");
            return;
        }
        if (r == 0 || n - (size_t)r < h.length) {
            if (keep(c, p, n) < 0)
                protocol_fail(c, DX_CLOSE_INTERNAL, "out of memory");
            return;
        }
        const uint8_t *payload = p + r;
        p = payload + h.length;
        n -= (size_t)r + (size_t)h.length;
        if (h.opcode >= DX_OP_CLOSE)
            on_control(c, h.opcode, payload, (size_t)h.length);
        else
            on_data(c, &h, payload);
    }
}

/* The response head is in c->in[0..in_len): check it, then open. */
static void feed_handshake(dx_client *c)
{
    int status;
    const char *proto;
    size_t proto_len;
    long r = dx_client_check_response((const char *)c->in, c->in_len, c->key, c->offered, &status,
                                      &proto, &proto_len);
    if (r == DX_RESP_INCOMPLETE) {
        if (c->in_len >= DX_CLIENT_HEAD_MAX)
            finish(c, DX_CLOSE_ABNORMAL, "handshake: response head too large");
        return;
    }
    if (r < 0) {
        char why[128];
        if (r == DX_RESP_REFUSED)
            snprintf(why, sizeof why, "handshake: upgrade refused: HTTP %d", status);
        else
            snprintf(why, sizeof why, "handshake: %s", dx_client_response_error(r));
        finish(c, DX_CLOSE_ABNORMAL, why);
        return;
    }
    if (proto && (c->protocol = strndup(proto, proto_len)) == NULL) {
        finish(c, DX_CLOSE_ABNORMAL, "handshake: out of memory");
        return;
    }
    ev_timer_stop(c->x->loop, &c->timer);
    c->state = C_OPEN;
    c->opened = 1;
    size_t rest = c->in_len - (size_t)r;
    uint8_t *rbuf = c->x->rbuf;
    memcpy(rbuf, c->in + r, rest);          /* rest < DX_CLIENT_HEAD_MAX */
    c->in_len = 0;
    c->x->ev.open(c->x->ud, c);
    if (c->state == C_OPEN && rest)
        feed_frames(c, rbuf, rest);
}

static ssize_t tls_read(dx_client *c, uint8_t *dst, size_t want);

static void reader_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    dx_client *c = w->data;
    if (c->ssl && c->tls_flush_wants_read) {
        c->tls_flush_wants_read = 0;
        c->busy = 1;
        flush(c);
        c->busy = 0;
        if (c->state == C_DEAD) {
            if (!c->dirty)
                free(c);
            return;
        }
    }
    uint8_t *dst;
    size_t want;
    if (c->state == C_HANDSHAKE) {
        if (c->in_cap < DX_CLIENT_HEAD_MAX) {
            uint8_t *b = realloc(c->in, DX_CLIENT_HEAD_MAX);
            if (b == NULL) {
                finish(c, DX_CLOSE_ABNORMAL, "out of memory");
                return;
            }
            c->in = b;
            c->in_cap = DX_CLIENT_HEAD_MAX;
        }
        dst = c->in + c->in_len;
        want = DX_CLIENT_HEAD_MAX - c->in_len;
    } else if (c->in_len) {                  /* continue a partial frame in place */
        if (c->in_cap - c->in_len < 65536) {
            size_t cap = c->in_cap * 2 > c->in_len + 65536 ? c->in_cap * 2 : c->in_len + 65536;
            uint8_t *b = realloc(c->in, cap);
            if (b == NULL) {
                protocol_fail(c, DX_CLOSE_INTERNAL, "out of memory");
                return;
            }
            c->in = b;
            c->in_cap = cap;
        }
        dst = c->in + c->in_len;
        want = c->in_cap - c->in_len;
    } else {
        dst = c->x->rbuf;
        want = DX_CLIENT_RBUF;
    }
    ssize_t n = c->ssl ? tls_read(c, dst, want) : recv(c->fd, dst, want, 0);
    if (n == -2)
        return;                              /* tls_read finished c */
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        fail_errno(c, c->state == C_HANDSHAKE ? "handshake: read" : "read", errno);
        return;
    }
    if (n == 0) {
        finish(c, DX_CLOSE_ABNORMAL, c->state == C_HANDSHAKE
               ? "handshake: the server closed the connection"
               : "the server closed TCP without a close frame");
        return;
    }
    c->busy = 1;
    if (c->state == C_HANDSHAKE) {
        c->in_len += (size_t)n;
        feed_handshake(c);
    } else if (dst == c->x->rbuf) {
        feed_frames(c, dst, (size_t)n);
    } else {
        size_t total = c->in_len + (size_t)n;
        c->in_len = 0;
        feed_frames(c, c->in, total);
    }
    c->busy = 0;
    if (c->state == C_DEAD && !c->dirty)
        free(c);
}

/* ---- TLS (wss://) ----
 * The TLS handshake runs once TCP is connected, inside the handshake
 * timeout; the upgrade request waits in the queue until it is done. As on
 * the server side, want-read and want-write move the watchers. */

/* Ends c for a TLS failure e of what ("handshake", "read", "write"). */
static void tls_fail(dx_client *c, int e, const char *what)
{
    char why[256], buf[64];
    c->tls_failed = 1;
    if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        snprintf(why, sizeof why, "tls %s: %s", what, e == SSL_ERROR_SYSCALL && errno
                 ? strerror(errno) : "the server closed the connection");
    } else {
        long v = SSL_get_verify_result(c->ssl);
        const char *reason = dx_tls_error_reason("unknown error", buf, sizeof buf);
        if (v != X509_V_OK)
            snprintf(why, sizeof why, "tls %s: %s (%s)", what, reason, X509_verify_cert_error_string(v));
        else
            snprintf(why, sizeof why, "tls %s: %s", what, reason);
    }
    finish(c, DX_CLOSE_ABNORMAL, why);
}

/* Returns 1 when the handshake is done, 0 while it waits, -1 when c was
 * finished. */
static int tls_handshake(dx_client *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->tls_handshaking = 0;
        if (c->out.head)
            mark_dirty(c);                   /* the upgrade request can go */
        return 1;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (e == SSL_ERROR_WANT_WRITE) {
        c->tls_read_wants_write = 1;
        ev_io_start(c->x->loop, &c->wio);
        return 0;
    }
    tls_fail(c, e, "handshake");
    return -1;
}

/* Like read(2) into dst: bytes, 0 at the end, -1 with errno EAGAIN while
 * waiting, or -2 when c was finished. */
static ssize_t tls_read(dx_client *c, uint8_t *dst, size_t want)
{
    if (c->tls_handshaking) {
        int r = tls_handshake(c);
        if (r <= 0) {
            errno = EAGAIN;
            return r < 0 ? -2 : -1;
        }
    }
    size_t got;
    int e = dx_tls_read_some(c->ssl, dst, want, &got);
    if (e == SSL_ERROR_WANT_WRITE) {
        c->tls_read_wants_write = 1;
        ev_io_start(c->x->loop, &c->wio);
    }
    if (got) {
        /* More held by OpenSSL, or an end or error that the next call
         * reports again: the socket may not say readable, so come back. */
        if ((e == SSL_ERROR_NONE && SSL_has_pending(c->ssl)) ||
            (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE))
            ev_feed_event(c->x->loop, &c->rio, EV_READ);
        return (ssize_t)got;
    }
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        tls_fail(c, e, "read");
        return -2;
    }
}

/* Writes the queue one record per SSL_write. Returns 0 when it is empty,
 * 1 while waiting (or handshaking), -1 when c was finished. */
static int tls_flush(dx_client *c)
{
    if (c->tls_handshaking && tls_handshake(c) <= 0)
        return c->state == C_DEAD ? -1 : 1;
    while (c->out.head) {
        size_t len, w;
        const uint8_t *p = dx_queue_record(&c->out, &c->x->chunks, &len);
        if (p == NULL) {
            finish(c, DX_CLOSE_ABNORMAL, "out of memory");
            return -1;
        }
        int e = dx_tls_write_some(c->ssl, p, len, &w);
        dx_queue_consume(&c->out, &c->x->chunks, w);
        if (e == SSL_ERROR_NONE)
            continue;
        if (e == SSL_ERROR_WANT_WRITE) {
            if (!c->writing) {
                c->writing = 1;
                ev_io_start(c->x->loop, &c->wio);
            }
            return 1;
        }
        if (e == SSL_ERROR_WANT_READ) {
            c->tls_flush_wants_read = 1;         /* the reader is always watching */
            if (c->writing) {
                c->writing = 0;
                if (!c->tls_read_wants_write)
                    ev_io_stop(c->x->loop, &c->wio);
            }
            return 1;
        }
        tls_fail(c, e, "write");
        return -1;
    }
    return 0;
}

/* The context for tls's settings, made on first use. NULL with errbuf set
 * when the CA file cannot be used. */
static SSL_CTX *tls_context(dx_client_ctx *x, const dx_client_tls *tls, char *errbuf, size_t errcap)
{
    for (size_t i = 0; i < x->ntls; i++) {
        const tls_ctx *t = &x->tls[i];
        if (t->insecure == tls->insecure && ((t->ca == NULL && tls->ca == NULL) ||
                                             (t->ca && tls->ca && strcmp(t->ca, tls->ca) == 0)))
            return t->ctx;
    }
    char buf[64];
    if (x->bio == NULL && (x->bio = dx_tls_bio_method()) == NULL) {
        snprintf(errbuf, errcap, "out of memory");
        return NULL;
    }
    tls_ctx *grown = realloc(x->tls, (x->ntls + 1) * sizeof *grown);
    if (grown == NULL) {
        snprintf(errbuf, errcap, "out of memory");
        return NULL;
    }
    x->tls = grown;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char *ca = tls->ca ? strdup(tls->ca) : NULL;
    if (ctx == NULL || (tls->ca && ca == NULL)) {
        SSL_CTX_free(ctx);
        free(ca);
        snprintf(errbuf, errcap, "out of memory");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_verify(ctx, tls->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    int ok = tls->insecure ? 1 : tls->ca ? SSL_CTX_load_verify_locations(ctx, tls->ca, NULL)
                                         : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        snprintf(errbuf, errcap, "cannot use tls ca file '%s': %s", tls->ca ? tls->ca : "(default)",
                 dx_tls_error_reason("no PEM certificate", buf, sizeof buf));
        SSL_CTX_free(ctx);
        free(ca);
        return NULL;
    }
    x->tls[x->ntls].ca = ca;
    x->tls[x->ntls].insecure = tls->insecure;
    x->tls[x->ntls].ctx = ctx;
    x->ntls++;
    return ctx;
}

/* An SSL for c on fd: SNI and the certificate's name are servername (an
 * IP address is checked as one and sent without SNI). */
static SSL *tls_new(dx_client_ctx *x, const dx_client_tls *tls, int fd, const char *servername,
                    char *errbuf, size_t errcap)
{
    SSL_CTX *ctx = tls_context(x, tls, errbuf, errcap);
    if (ctx == NULL)
        return NULL;
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL || dx_tls_set_socket(ssl, x->bio, fd) < 0) {
        SSL_free(ssl);
        ERR_clear_error();
        snprintf(errbuf, errcap, "out of memory");
        return NULL;
    }
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, servername, ip) == 1 || inet_pton(AF_INET6, servername, ip) == 1;
    int ok = 1;
    if (!is_ip)
        ok = SSL_set_tlsext_host_name(ssl, servername) == 1;
    if (ok && !tls->insecure)
        ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), servername) == 1
                   : SSL_set1_host(ssl, servername) == 1;
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        snprintf(errbuf, errcap, "bad tls server name '%s'", servername);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

/* The host of a Host header: "name:port" -> "name", "[::1]:port" -> "::1". */
static const char *bare_host(const char *host, char *buf, size_t cap)
{
    const char *end = host[0] == '[' ? strchr(host, ']') : strrchr(host, ':');
    const char *start = host[0] == '[' ? host + 1 : host;
    size_t n = end ? (size_t)(end - start) : strlen(start);
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, start, n);
    buf[n] = 0;
    return buf;
}

/* ---- connecting ---- */

static void connected(dx_client *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        fail_errno(c, "connect", err);
        return;
    }
    ev_io_stop(c->x->loop, &c->wio);
    size_t n = strlen(c->request);
    uint8_t *p = out_reserve(c, n);
    if (p == NULL) {
        finish(c, DX_CLOSE_ABNORMAL, "out of memory");
        return;
    }
    memcpy(p, c->request, n);
    free(c->request);
    c->request = NULL;
    c->state = C_HANDSHAKE;
    ev_io_start(c->x->loop, &c->rio);
    flush(c);                                /* wss: starts the TLS handshake */
}

static void writer_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    dx_client *c = w->data;
    if (c->state == C_CONNECTING) {
        connected(c);
    } else if (c->ssl && c->tls_read_wants_write) {
        c->tls_read_wants_write = 0;
        if (!c->writing)
            ev_io_stop(c->x->loop, &c->wio);
        ev_feed_event(c->x->loop, &c->rio, EV_READ);   /* the reader retries */
        if (c->writing)
            flush(c);
    } else {
        flush(c);
    }
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    dx_client *c = w->data;
    if (c->state == C_CLOSING)
        finish(c, DX_CLOSE_ABNORMAL, "close timeout: the server did not answer our close frame");
    else
        finish(c, DX_CLOSE_ABNORMAL, c->state == C_CONNECTING ? "connect timeout" : "handshake timeout");
}

dx_client *dx_client_connect(dx_client_ctx *x, const struct sockaddr *addr, socklen_t addrlen,
                             const char *host, const char *target, const dx_client_tls *tls,
                             const char *protocols, char *errbuf, size_t errcap)
{
    char key[DX_CLIENT_KEY_LEN];
    dx_client_key(random_bytes(x, 16), key);
    char req[2048];
    size_t rlen = dx_client_request(req, sizeof req, host, target, key, protocols);
    if (rlen == 0) {
        snprintf(errbuf, errcap, "bad host, path or protocols for a request");
        return NULL;
    }
    dx_client *c = calloc(1, sizeof *c);
    if (c == NULL || (c->request = strdup(req)) == NULL ||
        (protocols && (c->offered = strdup(protocols)) == NULL)) {
        if (c)
            free(c->request);
        free(c->offered);
        free(c);
        snprintf(errbuf, errcap, "out of memory");
        return NULL;
    }
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(errbuf, errcap, "socket: %s", strerror(errno));
        free(c->request);
        free(c->offered);
        free(c);
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (tls) {
        char name[256];
        c->ssl = tls_new(x, tls, fd, tls->servername ? tls->servername : bare_host(host, name, sizeof name),
                         errbuf, errcap);
        if (c->ssl == NULL) {
            close(fd);
            free(c->request);
            free(c->offered);
            free(c);
            return NULL;
        }
        c->tls_handshaking = 1;
    }
    if (connect(fd, addr, addrlen) < 0 && errno != EINPROGRESS) {
        snprintf(errbuf, errcap, "connect: %s", strerror(errno));
        SSL_free(c->ssl);
        close(fd);
        free(c->request);
        free(c->offered);
        free(c);
        return NULL;
    }
    c->x = x;
    c->fd = fd;
    c->state = C_CONNECTING;
    memcpy(c->key, key, sizeof key);
    dx_message_init(&c->msg);
    ev_io_init(&c->rio, reader_cb, fd, EV_READ);
    ev_io_init(&c->wio, writer_cb, fd, EV_WRITE);
    ev_timer_init(&c->timer, timer_cb, x->cfg.handshake_timeout > 0 ? x->cfg.handshake_timeout : 10, 0);
    c->rio.data = c->wio.data = c->timer.data = c;
    c->next = x->clients;
    if (x->clients)
        x->clients->prev = c;
    x->clients = c;
    x->count++;
    ev_io_start(x->loop, &c->wio);
    /* Called from Lua, maybe long after the loop last ran: its cached
     * time would make the handshake's timer expire on the next turn. */
    ev_now_update(x->loop);
    ev_timer_start(x->loop, &c->timer);
    return c;
}

/* ---- public ---- */

int dx_client_send(dx_client *c, const void *data, size_t len, int binary)
{
    if (c->state != C_OPEN)
        return DX_CSEND_CLOSED;
    return out_frame(c, binary ? DX_OP_BINARY : DX_OP_TEXT, data, len) ? DX_CSEND_NOMEM : DX_CSEND_OK;
}

void dx_client_close(dx_client *c, unsigned code)
{
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
        finish(c, DX_CLOSE_ABNORMAL, "closed before the handshake ended");
        return;
    }
    if (c->state != C_OPEN)
        return;
    out_close(c, code);
    c->state = C_CLOSING;
    double t = c->x->cfg.close_timeout > 0 ? c->x->cfg.close_timeout : 2;
    ev_timer_stop(c->x->loop, &c->timer);
    ev_timer_set(&c->timer, t, 0);
    ev_timer_start(c->x->loop, &c->timer);
}

int dx_client_is_open(const dx_client *c) { return c->state == C_OPEN; }
const char *dx_client_protocol(const dx_client *c) { return c->protocol; }
size_t dx_client_buffered(const dx_client *c) { return c->out.bytes; }
void *dx_client_user(const dx_client *c) { return c->user; }
void dx_client_set_user(dx_client *c, void *user) { c->user = user; }

/* ---- the ctx ---- */

dx_client_ctx *dx_client_ctx_new(struct ev_loop *loop, const dx_client_config *cfg,
                                 const dx_client_events *ev, void *ud)
{
    dx_client_ctx *x = calloc(1, sizeof *x);
    if (x == NULL)
        return NULL;
    x->rbuf = malloc(DX_CLIENT_RBUF);
    if (x->rbuf == NULL) {
        free(x);
        return NULL;
    }
    x->loop = loop;
    if (cfg)
        x->cfg = *cfg;
    else
        dx_client_config_defaults(&x->cfg);
    x->ev = *ev;
    x->ud = ud;
    dx_chunks_init(&x->chunks, loop, NULL, NULL);      /* nothing held: no unhold */
    ev_prepare_init(&x->flusher, flusher_cb);
    x->flusher.data = x;
    ev_prepare_start(loop, &x->flusher);
    ev_unref(loop);                     /* the flusher alone does not keep the loop running */
    return x;
}

size_t dx_client_count(const dx_client_ctx *x) { return x->count; }

void dx_client_ctx_free(dx_client_ctx *x)
{
    if (x == NULL)
        return;
    while (x->clients) {
        dx_client *c = x->clients;
        x->clients = c->next;
        ev_io_stop(x->loop, &c->rio);
        ev_io_stop(x->loop, &c->wio);
        ev_timer_stop(x->loop, &c->timer);
        SSL_free(c->ssl);
        c->ssl = NULL;
        close(c->fd);
        release(c);
        c->state = C_DEAD;
        if (!c->dirty)
            free(c);
    }
    for (dx_client *c = x->dirty; c;) {   /* dead or alive, nothing else holds them now */
        dx_client *next = c->next_dirty;
        free(c);
        c = next;
    }
    ev_ref(x->loop);
    ev_prepare_stop(x->loop, &x->flusher);
    for (size_t i = 0; i < x->ntls; i++) {
        SSL_CTX_free(x->tls[i].ctx);
        free(x->tls[i].ca);
    }
    free(x->tls);
    if (x->bio)
        BIO_meth_free(x->bio);
    ERR_clear_error();
    dx_chunks_free(&x->chunks);
    free(x->rbuf);
    free(x);
}
