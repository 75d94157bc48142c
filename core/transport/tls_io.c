/* A TLS connection's I/O. The TLS handshake runs inside the HANDSHAKE
 * state (so handshake_timeout bounds a client that never speaks TLS);
 * reads fill the server's shared buffer with SSL_read; the send queue goes
 * out one record per SSL_write, small chunks gathered into one record.
 * OpenSSL's want-read and want-write become flags the connection's watcher
 * follows (dx_conn_watch): a read that needs the socket writable waits for
 * writable, a write that needs it readable waits for readable; nothing
 * spins. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "transport/internal.h"
#include "transport/log.h"
#include "transport/tls.h"

int dx_tls_conn_start(dx_conn *c)
{
    dx_conn_rare *r = dx_conn_rare_get(c);
    if (r == NULL)
        return -1;
    r->ssl = dx_tls_accept(c->srv->tls, c->io.fd);
    if (r->ssl == NULL) {
        dx_conn_rare_trim(c);
        return -1;
    }
    c->tls = 1;
    c->tls_handshaking = 1;
    return 0;
}

void dx_tls_conn_shutdown(dx_conn *c)
{
    if (!c->tls || c->tls_shut || c->tls_failed || c->tls_handshaking)
        return;
    c->tls_shut = 1;
    ERR_clear_error();
    SSL_shutdown(c->rare->ssl);
    ERR_clear_error();
}

void dx_tls_conn_free(dx_conn *c)
{
    if (!c->tls)
        return;
    dx_tls_conn_shutdown(c);
    SSL_free(c->rare->ssl);
    c->rare->ssl = NULL;
    c->tls = 0;
    dx_conn_rare_trim(c);
    ERR_clear_error();               /* nothing of this connection's reaches another */
}

void dx_tls_log(dx_conn *c, const char *what, const char *reason)
{
    dx_server *s = c->srv;
    ev_tstamp now = ev_now(s->loop);
    s->stats.tls_failures++;
    if (s->tls_logged_at != 0 && now - s->tls_logged_at < 1) {
        s->tls_unlogged++;
        return;
    }
    char remote[DX_ADDR_STRLEN];
    dx_addr_format(&c->remote, remote);
    if (s->tls_unlogged)
        dx_log(DX_LOG_WARN, "tls_error", c->id, &c->remote, "TLS %s with %s: %s (%llu more TLS errors in "
               "the last %.0f s not logged)", what, remote, reason, (unsigned long long)s->tls_unlogged,
               now - s->tls_logged_at);
    else
        dx_log(DX_LOG_WARN, "tls_error", c->id, &c->remote, "TLS %s with %s: %s", what, remote, reason);
    s->tls_logged_at = now;
    s->tls_unlogged = 0;
}

/* The reason of a failed call's error e (SSL_get_error's). */
static const char *failure_reason(int e, char *buf, size_t cap)
{
    if (e == SSL_ERROR_SYSCALL) {
        ERR_clear_error();
        return errno ? strerror(errno) : "the peer closed the connection";
    }
    return dx_tls_error_reason("unknown error", buf, cap);
}

/* The handshake failed. Plain HTTP to the TLS port gets a plain 400 saying
 * so; a peer that just went is dropped quietly; anything else is logged. */
static void handshake_failed(dx_conn *c, int e)
{
    unsigned long top = ERR_peek_error();
    if (e == SSL_ERROR_SSL && ERR_GET_LIB(top) == ERR_LIB_SSL && ERR_GET_REASON(top) == SSL_R_HTTP_REQUEST) {
        static const char body[] = "This port speaks TLS: use https:// or wss://.\n";
        dx_tls_log(c, "handshake failed", "plain HTTP request on the TLS port");
        c->tls_failed = 1;
        dx_tls_conn_free(c);         /* a plain connection from here on */
        dx_http_respond(c, 400, "Content-Type: text/plain; charset=utf-8\r\n", body,
                        sizeof body - 1, 0, 0);
        dx_conn_linger(c, 1);
        return;
    }
    c->tls_failed = 1;
    if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();           /* the peer went before finishing: nothing to report */
        dx_conn_free(c);
        return;
    }
    char buf[64];
    dx_tls_log(c, "handshake failed", failure_reason(e, buf, sizeof buf));
    dx_conn_free(c);
}

static void want_writable(dx_conn *c)
{
    c->tls_read_wants_write = 1;
    dx_conn_watch(c);
}

/* Returns 1 when the handshake is done, 0 while it waits for the socket,
 * -1 when it failed (c is freed or lingers). */
static int handshake(dx_conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->rare->ssl);
    if (r == 1) {
        c->tls_handshaking = 0;
        return 1;
    }
    int e = SSL_get_error(c->rare->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (e == SSL_ERROR_WANT_WRITE) {
        want_writable(c);
        return 0;
    }
    handshake_failed(c, e);
    return -1;
}

/* Handshakes, then reads what OpenSSL has into the server's buffer and
 * hands it on. The caller holds c->busy. */
static void read_path(dx_conn *c)
{
    if (c->tls_handshaking && handshake(c) <= 0)
        return;
    if (c->paused)
        return;
    dx_server *s = c->srv;
    size_t want = DX_READ_BUFFER;
    if (c->state == DX_HANDSHAKE)              /* never read past the head's limit, or a body's end */
        want = dx_reader_head_room(c);
    SSL *ssl = c->rare->ssl;
    size_t got = 0;
    int e = SSL_ERROR_NONE;
    /* Cleared once: a call that succeeds queues no error, and every
     * failure below empties the queue again. */
    ERR_clear_error();
    while (got < want) {
        size_t n;
        if (SSL_read_ex(ssl, s->rbuf + got, want - got, &n)) {
            got += n;
            continue;
        }
        e = SSL_get_error(ssl, 0);
        break;
    }
    if (got) {
        s->stats.bytes_in += got;
        dx_reader_consume(c, s->rbuf, got);
        if (c->state == DX_DEAD)
            return;
    }
    char buf[64];
    switch (e) {
    case SSL_ERROR_NONE:                       /* the buffer filled up */
        /* Bytes OpenSSL already holds do not make the socket readable. */
        if (!c->paused && SSL_has_pending(c->rare->ssl))
            ev_feed_event(s->loop, &c->io, EV_READ);
        return;
    case SSL_ERROR_WANT_READ:
        return;
    case SSL_ERROR_WANT_WRITE:
        want_writable(c);
        return;
    case SSL_ERROR_ZERO_RETURN:                /* close_notify, or EOF */
        dx_reader_end(c, 1);
        return;
    case SSL_ERROR_SYSCALL:
        c->tls_failed = 1;
        ERR_clear_error();
        dx_reader_end(c, 0);
        return;
    default:
        c->tls_failed = 1;
        dx_tls_log(c, "read failed", failure_reason(e, buf, sizeof buf));
        dx_reader_end(c, 0);
        return;
    }
}

void dx_tls_on_readable(dx_conn *c)
{
    if (c->tls_flush_wants_read) {
        c->tls_flush_wants_read = 0;
        dx_out_flush(c);
    }
    if (c->state != DX_DEAD) {
        if (c->paused && !c->tls_flush_wants_read)
            dx_conn_watch(c);                  /* it ran for the write only */
        else
            read_path(c);
    }
}

void dx_tls_on_writable(dx_conn *c)
{
    if (c->tls_read_wants_write) {
        c->tls_read_wants_write = 0;
        dx_conn_watch(c);
        read_path(c);
    }
    if (c->state != DX_DEAD && c->writing)
        dx_out_flush(c);
}

/* Copies the head of the queue, up to one record or the first file
 * chunk, into the stage. */
static size_t gather(dx_conn *c, uint8_t *stage)
{
    size_t len = 0;
    for (dx_out *o = c->out_head; o && len < DX_TLS_STAGE && !DX_OUT_IS_FILE(o); o = o->next) {
        size_t n = o->len - o->off;
        if (n > DX_TLS_STAGE - len)
            n = DX_TLS_STAGE - len;
        memcpy(stage + len, DX_OUT_BYTES(o) + o->off, n);
        len += n;
    }
    return len;
}

/* Reads the next record's worth of the file chunk o into the stage.
 * Returns the bytes read, 0 when the file ended early or failed. */
static size_t read_file(const dx_out *o, uint8_t *stage)
{
    size_t want = o->len - o->off < DX_TLS_STAGE ? o->len - o->off : DX_TLS_STAGE;
    ssize_t r;
    do
        r = pread((int)o->token, stage, want, (off_t)o->off);
    while (r < 0 && errno == EINTR);
    return r > 0 ? (size_t)r : 0;
}

/* A write failed with SSL_get_error's e: waits for what it wants (0), or
 * c is lost (-1). */
static int write_failed(dx_conn *c, int e)
{
    if (e == SSL_ERROR_WANT_WRITE) {
        dx_out_wait_writable(c);
        return 0;
    }
    if (e == SSL_ERROR_WANT_READ) {
        c->tls_flush_wants_read = 1;
        c->writing = 0;
        dx_conn_watch(c);
        return 0;
    }
    c->tls_failed = 1;
    if (e == SSL_ERROR_SSL) {
        char buf[64];
        dx_tls_log(c, "write failed", failure_reason(e, buf, sizeof buf));
    }
    ERR_clear_error();
    dx_conn_lost(c);
    return -1;
}

long dx_tls_write(dx_conn *c, const uint8_t *p, size_t len)
{
    if (c->tls_handshaking)
        return 0;
    ERR_clear_error();
    size_t done = 0;
    while (done < len) {
        size_t w;
        if (!SSL_write_ex(c->rare->ssl, p + done, len - done, &w))
            return write_failed(c, SSL_get_error(c->rare->ssl, 0)) < 0 ? -1 : (long)done;
        c->srv->stats.bytes_out += w;
        done += w;
    }
    return (long)done;
}

int dx_tls_flush(dx_conn *c)
{
    dx_server *s = c->srv;
    if (c->tls_handshaking)
        return 1;
    ERR_clear_error();                         /* once: see read_path */
    while (c->out_head) {
        dx_out *o = c->out_head;
        int file = DX_OUT_IS_FILE(o);
        const uint8_t *p = file ? NULL : DX_OUT_BYTES(o) + o->off;
        size_t len = o->len - o->off;
        /* A retry after want-write repeats the same bytes or more of the
         * same queue: the head only moves by what was written, and a file
         * is read again from the same offset. */
        if (file || (len < DX_TLS_STAGE && o->next)) {
            if (s->tls_stage == NULL && (s->tls_stage = malloc(DX_TLS_STAGE)) == NULL) {
                dx_conn_lost(c);
                return -1;
            }
            p = s->tls_stage;
            len = file ? read_file(o, s->tls_stage) : gather(c, s->tls_stage);
            if (len == 0) {                    /* unreadable, or it shrank: the length was promised */
                dx_conn_lost(c);
                return -1;
            }
        }
        size_t w;
        if (SSL_write_ex(c->rare->ssl, p, len, &w)) {
            if (c->state == DX_HANDSHAKE)   /* last_tx shares its slot with ping_at and since */
                c->last_tx = ev_now(s->loop);
            s->stats.bytes_out += w;
            dx_out_consume(c, w);
            continue;
        }
        return write_failed(c, SSL_get_error(c->rare->ssl, 0)) < 0 ? -1 : 1;
    }
    return 0;
}
