/* TLS under a connection: a byte source for the reader (dx_tls_read) and
 * a byte sink for the writer (dx_tls_write), on OpenSSL. The TLS handshake
 * runs inside the HANDSHAKE state, at the first read (so handshake_timeout
 * bounds a client that never speaks TLS). OpenSSL's want-read and
 * want-write become flags the connection's watcher follows
 * (dx_conn_watch): a read that needs the socket writable waits for
 * writable, a write that needs it readable waits for readable; nothing
 * spins. Nothing here knows of frames, requests or the send queue. */
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

/* The handshake failed: returns what dx_tls_read says of it. Plain HTTP
 * to the TLS port is DX_IO_PLAIN (the reader answers it in plain text); a
 * peer that just went is an error not logged; anything else is logged. */
static int handshake_failed(dx_conn *c, int e)
{
    unsigned long top = ERR_peek_error();
    c->tls_failed = 1;
    if (e == SSL_ERROR_SSL && ERR_GET_LIB(top) == ERR_LIB_SSL && ERR_GET_REASON(top) == SSL_R_HTTP_REQUEST) {
        dx_tls_log(c, "handshake failed", "plain HTTP request on the TLS port");
        dx_tls_conn_free(c);         /* a plain connection from here on */
        return DX_IO_PLAIN;
    }
    if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();           /* the peer went before finishing: nothing to report */
        return DX_IO_ERROR;
    }
    char buf[64];
    dx_tls_log(c, "handshake failed", failure_reason(e, buf, sizeof buf));
    return DX_IO_ERROR;
}

static void want_writable(dx_conn *c)
{
    c->tls_read_wants_write = 1;
    dx_conn_watch(c);
}

/* Returns 1 when the handshake is done, DX_IO_AGAIN while it waits for the
 * socket, or what handshake_failed says. */
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
        return DX_IO_AGAIN;
    if (e == SSL_ERROR_WANT_WRITE) {
        want_writable(c);
        return DX_IO_AGAIN;
    }
    return handshake_failed(c, e);
}

int dx_tls_read(dx_conn *c, uint8_t *buf, size_t want, size_t *got)
{
    *got = 0;
    if (c->tls_handshaking) {
        int h = handshake(c);
        if (h != 1)
            return h;
    }
    int e = dx_tls_read_some(c->rare->ssl, buf, want, got);
    char reason[64];
    switch (e) {
    case SSL_ERROR_NONE:                       /* the buffer filled up */
        return DX_IO_FULL;
    case SSL_ERROR_WANT_READ:
        return DX_IO_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        want_writable(c);
        return DX_IO_AGAIN;
    case SSL_ERROR_ZERO_RETURN:                /* close_notify, or EOF */
        return DX_IO_EOF;
    case SSL_ERROR_SYSCALL:
        c->tls_failed = 1;
        ERR_clear_error();
        return DX_IO_ERROR;
    default:
        c->tls_failed = 1;
        dx_tls_log(c, "read failed", failure_reason(e, reason, sizeof reason));
        return DX_IO_ERROR;
    }
}

int dx_tls_pending(const dx_conn *c)
{
    return SSL_has_pending(c->rare->ssl);
}

int dx_tls_write(dx_conn *c, const uint8_t *p, size_t len, size_t *took)
{
    int e = dx_tls_write_some(c->rare->ssl, p, len, took);
    if (e == SSL_ERROR_NONE)
        return DX_IO_FULL;
    if (e == SSL_ERROR_WANT_WRITE)
        return DX_IO_AGAIN;
    if (e == SSL_ERROR_WANT_READ) {
        c->tls_flush_wants_read = 1;
        return DX_IO_WANTS_READ;
    }
    c->tls_failed = 1;
    if (e == SSL_ERROR_SSL) {
        char buf[64];
        dx_tls_log(c, "write failed", failure_reason(e, buf, sizeof buf));
    }
    ERR_clear_error();
    return DX_IO_ERROR;
}
