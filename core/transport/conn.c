/* A connection's life: creation, the close state machine, timers
 * (handshake, heartbeat, idle, close), and the public dx_conn_* calls. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "transport/internal.h"

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

void dx_conn_watch(dx_conn *c)
{
    if (c->state == DX_DEAD)
        return;
    int want = (!c->paused || c->tls_flush_wants_read ? EV_READ : 0)
             | (c->writing || c->tls_read_wants_write ? EV_WRITE : 0);
    int active = ev_is_active(&c->io);
    if (active && (c->io.events & (EV_READ | EV_WRITE)) == want)
        return;
    struct ev_loop *loop = c->srv->loop;
    if (active)
        ev_io_stop(loop, &c->io);
    ev_io_modify(&c->io, want);
    if (want)
        ev_io_start(loop, &c->io);
}

dx_conn *dx_conn_new(dx_server *s, int fd, const dx_addr *addr)
{
    dx_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->srv = s;
    c->id = ++s->next_id;
    c->state = DX_HANDSHAKE;
    c->remote = *addr;
    dx_message_init(&c->msg);
    ev_io_init(&c->io, dx_conn_io_cb, fd, EV_READ);
    ev_init(&c->timer, timer_cb);
    c->io.data = c->timer.data = c;
    c->accepted_at = ev_now(s->loop);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    ev_io_start(s->loop, &c->io);
    dx_conn_arm_timer(c);
    return c;
}

/* Closes the socket and releases everything but the struct itself when a
 * pending flush or the reader still holds it: it goes when the flush list
 * is next walked, or when the reader is done. */
void dx_conn_free(dx_conn *c)
{
    dx_server *s = c->srv;
    if (c->state == DX_DEAD)
        return;
    if (c->user)
        s->ev.release(s->ud, c);
    ev_io_stop(s->loop, &c->io);
    ev_timer_stop(s->loop, &c->timer);
    if (c->tls)
        dx_tls_conn_free(c);
    close(c->io.fd);
    c->io.fd = -1;                 /* io is stopped: it may be changed */
    dx_limits_release(s, &c->remote);
    dx_out_free(c);
    if (c->rare)
        dx_sse_conn_free(c);
    dx_deflate_conn_free(c);
    dx_topics_leave_all(c);
    free(c->buf);
    c->buf = NULL;
    if (c->rare) {
        free(c->rare->ctl);
        free(c->rare);
        c->rare = NULL;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    c->state = DX_DEAD;
    if (!c->dirty && !c->busy)
        free(c);
}

dx_conn_rare *dx_conn_rare_get(dx_conn *c)
{
    if (c->rare == NULL)
        c->rare = calloc(1, sizeof *c->rare);
    return c->rare;
}

void dx_conn_rare_trim(dx_conn *c)
{
    dx_conn_rare *r = c->rare;
    if (r && !r->ssl && !r->inflater && !r->deflater && !r->ctl && !r->sse && !r->wait) {
        free(r);
        c->rare = NULL;
    }
}

/* Grows c->buf to hold at least need bytes, bounded by limit: to twice its
 * size when that is enough (growth by small steps stays amortized), else
 * to need exactly (a large frame announced by its header gets one buffer of
 * its size, not the next power of two). Returns 0, or -1 when need passes
 * limit or memory runs out. */
int dx_conn_buf_reserve(dx_conn *c, size_t need, size_t limit)
{
    if (need <= c->buf_cap)
        return 0;
    if (need > limit)
        return -1;
    size_t cap = c->buf_cap ? c->buf_cap : 256;
    cap = cap > limit / 2 ? limit : cap * 2;
    if (cap < need)
        cap = need;
    uint8_t *b = realloc(c->buf, cap);
    if (b == NULL)
        return -1;
    c->buf = b;
    c->buf_cap = cap;
    return 0;
}

/* Runs the close event once, for a connection that was opened. */
void dx_conn_report_close(dx_conn *c, unsigned code, const uint8_t *reason, size_t len)
{
    if (!c->opened || c->reported)
        return;
    c->reported = 1;
    dx_topics_leave_all(c);
    c->srv->ev.close(c->srv->ud, c, code, reason, len);
}

/* Enters LINGER: once the queue is flushed, the socket is closed at once
 * (drain 0) or shut down for writing and read until EOF (drain 1), both
 * bounded by close_timeout. */
void dx_conn_linger(dx_conn *c, int drain)
{
    if (c->state != DX_LINGER) {
        c->state = DX_LINGER;
        c->drain = drain ? 1 : 0;
        c->since = ev_now(c->srv->loop);
        free(c->buf);
        c->buf = NULL;
        c->buf_len = c->buf_cap = 0;
        if (c->rare) {
            free(c->rare->ctl);
            c->rare->ctl = NULL;
            dx_conn_rare_trim(c);
        }
        dx_conn_arm_timer(c);
    }
    if (c->out.head || c->dirty)
        return;                    /* dx_out_flush calls again when empty */
    if (!c->drain) {
        dx_conn_free(c);
    } else if (!c->shut_wr) {
        c->shut_wr = 1;
        if (c->tls)
            dx_tls_conn_shutdown(c);
        shutdown(c->io.fd, SHUT_WR);
    }
}

/* Fails the connection (RFC 6455 7.1.7) for bad input: sends the close code
 * once, reports it, and lingers reading until the peer goes. */
void dx_conn_fail(dx_conn *c, unsigned code, const char *reason)
{
    if (c->state == DX_OPEN) {
        size_t len = reason ? strlen(reason) : 0;
        dx_out_close_frame(c, code, reason, len);
        dx_conn_report_close(c, code, (const uint8_t *)reason, len);
    } else if (c->state == DX_CLOSING) {
        dx_conn_report_close(c, c->close_sent, NULL, 0);
    }
    if (c->state != DX_DEAD)
        dx_conn_linger(c, 1);
}

/* The socket failed or the peer went away. */
void dx_conn_lost(dx_conn *c)
{
    dx_conn_report_close(c, c->close_sent ? c->close_sent : DX_CLOSE_ABNORMAL, NULL, 0);
    dx_conn_free(c);
}

static ev_tstamp earliest(ev_tstamp a, ev_tstamp b)
{
    return a == 0 || (b != 0 && b < a) ? b : a;
}

/* The next moment something is due for c, 0 for none. */
static ev_tstamp next_deadline(const dx_conn *c)
{
    const dx_config *cfg = &c->srv->cfg;
    switch (c->state) {
    case DX_HANDSHAKE:
        if (c->srv->shutting_down)
            return c->accepted_at;
        /* From the last request, or from the last bytes of a response the
         * peer took: a download goes on while it makes progress. */
        return cfg->handshake_timeout > 0
            ? (c->last_tx > c->accepted_at ? c->last_tx : c->accepted_at) + cfg->handshake_timeout : 0;
    case DX_OPEN: {
        ev_tstamp t = 0;
        if (c->overflow)
            return ev_now(c->srv->loop);
        if (c->awaiting_pong && cfg->pong_timeout > 0)
            t = c->ping_at + cfg->pong_timeout;
        else if (!c->awaiting_pong && cfg->ping_interval > 0)
            t = c->last_rx + cfg->ping_interval;
        if (cfg->idle_timeout > 0)
            t = earliest(t, c->last_rx + cfg->idle_timeout);
        return t;
    }
    case DX_CLOSING:
    case DX_LINGER:
        /* Shutting down, a peer has until the shutdown's deadline to take
         * what is queued for it and answer the close. */
        if (c->srv->shutting_down)
            return c->srv->shutdown_at;
        return c->since + (cfg->close_timeout > 0 ? cfg->close_timeout : 5);
    default:
        return 0;
    }
}

void dx_conn_arm_timer(dx_conn *c)
{
    struct ev_loop *loop = c->srv->loop;
    ev_tstamp at = next_deadline(c);
    ev_timer_stop(loop, &c->timer);
    if (at == 0)
        return;
    ev_tstamp delay = at - ev_now(loop);
    ev_timer_set(&c->timer, delay > 0 ? delay : 0, 0);
    ev_timer_start(loop, &c->timer);
}

/* Closes an open connection whose peer stopped answering: 1001, and the
 * socket goes as soon as the close frame is written. */
static void close_unresponsive(dx_conn *c, const char *reason)
{
    size_t len = strlen(reason);
    dx_out_close_frame(c, DX_CLOSE_GOING_AWAY, reason, len);
    dx_conn_report_close(c, DX_CLOSE_GOING_AWAY, (const uint8_t *)reason, len);
    if (c->state == DX_OPEN)
        dx_conn_linger(c, 0);
}

static void open_timer(dx_conn *c, ev_tstamp now)
{
    const dx_config *cfg = &c->srv->cfg;
    if (c->overflow) {
        c->srv->stats.backpressure_closes++;
        dx_conn_fail(c, DX_CLOSE_POLICY, "send queue full");
        return;
    }
    if (c->awaiting_pong && cfg->pong_timeout > 0 && now >= c->ping_at + cfg->pong_timeout) {
        c->awaiting_pong = 0;
        c->srv->ev.pong_timeout(c->srv->ud, c);
        if (c->state == DX_OPEN)
            close_unresponsive(c, "pong timeout");
        return;
    }
    if (cfg->idle_timeout > 0 && now >= c->last_rx + cfg->idle_timeout) {
        close_unresponsive(c, "idle timeout");
        return;
    }
    if (!c->awaiting_pong && cfg->ping_interval > 0 && now >= c->last_rx + cfg->ping_interval) {
        dx_out_frame(c, DX_OP_PING, NULL, 0);
        if (c->heartbeat)                  /* pages cannot see pings: a message they can */
            dx_out_frame(c, DX_OP_BINARY, "\x02", 1);
        c->awaiting_pong = 1;
        c->ping_at = now;
    }
    dx_conn_arm_timer(c);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    dx_conn *c = w->data;
    ev_tstamp now = ev_now(loop);
    ev_tstamp due = next_deadline(c);
    if (due == 0 || now + 0.001 < due) {   /* early: activity moved the deadline */
        dx_conn_arm_timer(c);
        return;
    }
    switch (c->state) {
    case DX_OPEN:
        open_timer(c, now);
        break;
    case DX_CLOSING:                       /* the peer never answered our close */
        dx_conn_lost(c);
        break;
    default:                               /* handshake or lingering took too long */
        dx_conn_free(c);
        break;
    }
}

/* ---- public ---- */

/* 1 when one more message may be queued for c; else 0, with the policy
 * applied: the message is counted as dropped and, under "close", c is
 * closed 1008 from its timer (not from inside the caller's handler). */
int dx_conn_admit(dx_conn *c)
{
    dx_server *s = c->srv;
    if (c->out.bytes <= s->cfg.max_backpressure)
        return 1;
    s->stats.dropped++;
    if (!s->cfg.backpressure_drop && !c->overflow) {
        c->overflow = 1;
        dx_conn_arm_timer(c);
    }
    return 0;
}

int dx_conn_send(dx_conn *c, const void *data, size_t len, int binary)
{
    if (c->state != DX_OPEN)
        return DX_SEND_CLOSED;
    if (!dx_conn_admit(c))
        return DX_SEND_BACKPRESSURE;
    int opcode = binary ? DX_OP_BINARY : DX_OP_TEXT;
    if (c->deflate_on ? dx_deflate_send(c, opcode, data, len) : dx_out_frame(c, opcode, data, len))
        return DX_SEND_NOMEM;
    c->srv->stats.messages_out++;
    return DX_SEND_OK;
}

int dx_conn_send_held(dx_conn *c, const void *data, size_t len, int binary,
                      intptr_t token, int *held)
{
    *held = 0;
    if (len < DX_SEND_HOLD_MIN || dx_deflate_kind(c, len) != 0)
        return dx_conn_send(c, data, len, binary);
    if (c->state != DX_OPEN)
        return DX_SEND_CLOSED;
    if (!dx_conn_admit(c))
        return DX_SEND_BACKPRESSURE;
    if (dx_out_frame_held(c, binary ? DX_OP_BINARY : DX_OP_TEXT, data, len, token))
        return DX_SEND_NOMEM;
    *held = 1;
    c->srv->stats.messages_out++;
    return DX_SEND_OK;
}

int dx_conn_ping(dx_conn *c, const void *data, size_t len)
{
    if (c->state != DX_OPEN)
        return DX_SEND_CLOSED;
    if (len > DX_CONTROL_MAX)
        len = DX_CONTROL_MAX;
    return dx_out_frame(c, DX_OP_PING, data, len) ? DX_SEND_NOMEM : DX_SEND_OK;
}

void dx_conn_close(dx_conn *c, unsigned code, const char *reason, size_t len)
{
    if (c->state != DX_OPEN)
        return;
    dx_out_close_frame(c, code, reason, len);
    c->state = DX_CLOSING;
    c->since = ev_now(c->srv->loop);
    dx_conn_arm_timer(c);
}

int dx_conn_is_open(const dx_conn *c) { return c->state == DX_OPEN; }
const dx_pmd_params *dx_conn_deflate(const dx_conn *c) { return c->deflate_on ? &c->pmd : NULL; }
size_t dx_conn_buffered(const dx_conn *c) { return c->out.bytes; }
uint64_t dx_conn_id(const dx_conn *c) { return c->id; }
const dx_addr *dx_conn_addr(const dx_conn *c) { return &c->remote; }
void *dx_conn_user(const dx_conn *c) { return c->user; }
void dx_conn_set_user(dx_conn *c, void *user) { c->user = user; }
void dx_conn_set_heartbeat(dx_conn *c, int on) { c->heartbeat = on != 0; }
int dx_conn_is_sse(const dx_conn *c) { return DX_CONN_SSE(c) != 0; }
