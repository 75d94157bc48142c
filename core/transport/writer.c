/* The write path: a per-connection queue of output chunks, flushed with one
 * send (sendmsg for several chunks) per connection per loop iteration (the
 * "cork"), and the wait for writable (the connection's watcher) when the
 * socket is full. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include "transport/internal.h"
#include "transport/sock.h"

uint8_t *dx_out_reserve(dx_conn *c, size_t n)
{
    uint8_t *p = dx_queue_reserve(&c->out, &c->srv->chunks, n);
    if (p)
        dx_out_mark_dirty(c);
    return p;
}

uint8_t *dx_out_reserve_fitted(dx_conn *c, size_t n)
{
    uint8_t *p = dx_queue_reserve_fitted(&c->out, &c->srv->chunks, n);
    if (p)
        dx_out_mark_dirty(c);
    return p;
}

/* Queues o, a piece with no bytes of its own (see dx_queue_piece). */
static void queue_piece(dx_conn *c, dx_out *o, dx_shared *shared, const uint8_t *held, intptr_t token,
                        size_t len)
{
    dx_queue_piece(&c->out, o, shared, held, token, len);
    dx_out_mark_dirty(c);
}

int dx_out_shared(dx_conn *c, dx_shared *f)
{
    dx_out *o = malloc(sizeof *o);
    if (o == NULL)
        return -1;
    f->refs++;
    queue_piece(c, o, f, NULL, 0, f->len);
    return 0;
}

/* Queues one unmasked frame with fin set. Returns 0, or -1 out of memory. */
int dx_out_frame(dx_conn *c, int opcode, const void *data, size_t len)
{
    size_t hl = len <= 125 ? 2 : len <= 0xFFFF ? 4 : 10;   /* the shortest form, as written */
    uint8_t *p = dx_out_reserve(c, hl + len);
    if (p == NULL)
        return -1;
    dx_frame_write_header(p, 1, 0, opcode, len, NULL);
    if (len)
        memcpy(p + hl, data, len);
    return 0;
}

int dx_out_frame_held(dx_conn *c, int opcode, const void *data, size_t len, intptr_t token)
{
    dx_out *o = malloc(sizeof *o);
    if (o == NULL)
        return -1;
    uint8_t hdr[DX_FRAME_HEADER_MAX];
    size_t hl = dx_frame_write_header(hdr, 1, 0, opcode, len, NULL);
    uint8_t *p = dx_out_reserve(c, hl);          /* the header joins the tail chunk */
    if (p == NULL) {
        free(o);
        return -1;
    }
    memcpy(p, hdr, hl);
    queue_piece(c, o, NULL, data, token, len);
    return 0;
}

int dx_out_file(dx_conn *c, int fd, size_t len)
{
    dx_out *o = malloc(sizeof *o);
    if (o == NULL) {
        close(fd);
        return -1;
    }
    queue_piece(c, o, NULL, NULL, fd, len);
    return 0;
}

/* Queues a close frame: empty when code is 0, else the code and reason.
 * Into an empty queue (the usual case: an idle connection closed) it goes
 * in a chunk of its own size, so closing many connections at once holds
 * a few bytes each until the close is sent, not a DX_OUT_CHUNK chunk. */
int dx_out_close_frame(dx_conn *c, unsigned code, const char *reason, size_t len)
{
    size_t n = 0;
    if (code) {
        if (len > DX_CONTROL_MAX - 2)
            len = DX_CONTROL_MAX - 2;
        n = 2 + len;
    }
    c->close_sent = code ? (uint16_t)code : DX_CLOSE_NO_STATUS;
    uint8_t *p = dx_out_reserve_fitted(c, 2 + n);   /* n <= 125: a 2-byte header */
    if (p == NULL)
        return -1;
    dx_frame_write_header(p, 1, 0, DX_OP_CLOSE, n, NULL);
    if (code) {
        p[2] = (uint8_t)(code >> 8);
        p[3] = (uint8_t)code;
        if (len)
            memcpy(p + 4, reason, len);
    }
    return 0;
}

/* Puts c on its server's flush list, unless it is there already or waits for
 * its socket to become writable. */
void dx_out_mark_dirty(dx_conn *c)
{
    if (c->out.bytes > c->srv->cfg.drain_mark)
        c->over_mark = 1;
    if (c->dirty || c->writing)
        return;
    c->dirty = 1;
    c->next_dirty = c->srv->dirty;
    c->srv->dirty = c;
}

/* sendfile of what is left of the file chunk o to the socket fd. Unlike
 * send it has no MSG_NOSIGNAL, and duplex.core may live in a process
 * that does not ignore SIGPIPE: the signal is blocked around the call, and
 * one it raised is taken before it is unblocked. */
__attribute__((noinline)) static ssize_t send_file(int fd, dx_out *o)
{
    sigset_t pipe, old;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &old);
    off_t pos = (off_t)o->off;
    ssize_t w = sendfile(fd, (int)o->token, &pos, o->len - o->off);
    int err = errno;
    if (w < 0 && err == EPIPE) {
        const struct timespec now = { 0, 0 };
        sigtimedwait(&pipe, NULL, &now);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = w == 0 ? EIO : err;           /* 0: the file ended early (it shrank) */
    return w == 0 ? -1 : w;
}

/* Writes as much of the queue as the socket takes. Returns 0 when it is
 * empty, 1 when the socket is full (the watcher waits for writable), -1 when
 * c was lost. */
static int flush_plain(dx_conn *c)
{
    while (c->out.head) {
        ssize_t w;
        if (DX_OUT_IS_FILE(c->out.head)) {
            w = send_file(c->io.fd, c->out.head);
        } else {                            /* the chunks up to a file go in one call */
            struct iovec iov[DX_IOV_MAX];
            w = dx_sendv(c->io.fd, iov, dx_queue_iov(&c->out, iov));
        }
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                dx_out_wait_writable(c);
                return 1;
            }
            dx_conn_lost(c);
            return -1;
        }
        if (c->state == DX_HANDSHAKE)       /* last_tx shares its slot with ping_at and since */
            c->last_tx = ev_now(c->srv->loop);
        c->srv->stats.bytes_out += (size_t)w;
        dx_out_consume(c, (size_t)w);
    }
    return 0;
}

/* A TLS write stopped short with status st (dx_tls_write's): waits for
 * what it wants (1), or c is lost (-1). */
static int tls_waits(dx_conn *c, int st)
{
    if (st == DX_IO_AGAIN) {
        dx_out_wait_writable(c);
        return 1;
    }
    if (st == DX_IO_WANTS_READ) {      /* the watcher reads, and the read flushes */
        c->writing = 0;
        dx_conn_watch(c);
        return 1;
    }
    dx_conn_lost(c);
    return -1;
}

long dx_sink_write(dx_conn *c, const uint8_t *p, size_t len)
{
    if (c->tls) {
        size_t took;
        int st = dx_tls_write(c, p, len, &took);
        c->srv->stats.bytes_out += took;
        return st == DX_IO_FULL || tls_waits(c, st) > 0 ? (long)took : -1;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = send(c->io.fd, p + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                dx_out_wait_writable(c);
                break;
            }
            dx_conn_lost(c);
            return -1;
        }
        c->srv->stats.bytes_out += (size_t)w;
        done += (size_t)w;
    }
    return (long)done;
}

/* TLS: reads the next record's worth of the file chunk o into the stage.
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

/* The queue through TLS, one record per write, small chunks gathered into
 * the server's stage (a file is read into it a record at a time). A retry
 * after want-write repeats the same bytes or more of the same queue: the
 * head only moves by what was written, and a file is read again from the
 * same offset. Returns 0 when the queue is empty, 1 when waiting for the
 * socket, -1 when c was lost. */
static int flush_tls(dx_conn *c)
{
    dx_server *s = c->srv;
    if (c->tls_handshaking)                /* the first read finishes it; output waits */
        return 1;
    while (c->out.head) {
        dx_out *o = c->out.head;
        int file = DX_OUT_IS_FILE(o);
        const uint8_t *p = file ? NULL : DX_OUT_BYTES(o) + o->off;
        size_t len = o->len - o->off;
        if (file) {
            uint8_t *stage = dx_chunks_stage(&s->chunks);
            len = stage ? read_file(o, stage) : 0;
            p = stage;
        } else {
            p = dx_queue_record(&c->out, &s->chunks, &len);
        }
        if (p == NULL || len == 0) {       /* out of memory; a file unreadable, or it shrank */
            dx_conn_lost(c);
            return -1;
        }
        size_t took;
        int st = dx_tls_write(c, p, len, &took);
        if (took) {
            if (c->state == DX_HANDSHAKE)  /* last_tx shares its slot with ping_at and since */
                c->last_tx = ev_now(s->loop);
            s->stats.bytes_out += took;
            dx_out_consume(c, took);
        }
        if (st != DX_IO_FULL)
            return tls_waits(c, st);
    }
    return 0;
}

/* A connection with a rare part: TLS, a session's events, or neither. Out
 * of line, so the plain path's flush stays as small as it was. */
__attribute__((noinline)) static int flush_layered(dx_conn *c)
{
    if (c->rare->sse)
        return dx_sse_flush(c);
    return c->tls ? flush_tls(c) : flush_plain(c);
}

void dx_out_wait_writable(dx_conn *c)
{
    if (!c->writing) {
        c->writing = 1;
        dx_conn_watch(c);
    }
}

/* Writes as much of the queue as the socket takes. When it is empty, a
 * lingering connection moves on (and may be freed: do not touch c after this
 * returns unless it was open). When the socket is full, the watcher
 * waits for writable. */
void dx_out_flush(dx_conn *c)
{
    /* The sink: the socket, or TLS over it; a session's events above either. */
    if ((c->rare == NULL ? flush_plain(c) : flush_layered(c)) != 0)
        return;
    if (c->writing) {
        c->writing = 0;
        dx_conn_watch(c);
    }
    if (c->state == DX_LINGER) {
        dx_conn_linger(c, c->drain);
    } else if (c->paused && !(c->rare && c->rare->wait)) {   /* a forwarded POST's wait is
                                                              * its answer's to end */
        dx_reader_resume(c);
    } else if (c->over_mark) {
        c->over_mark = 0;
        if (c->state == DX_OPEN && c->user)
            c->srv->ev.drain(c->srv->ud, c);
    }
}

/* Once per loop iteration, before the loop waits: every connection that was
 * sent something since goes out in one call. Events run while flushing
 * (a close handler sending to others) add to a fresh list, flushed too. */
void dx_flusher_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    dx_server *s = w->data;
    while (s->dirty) {
        dx_conn *c = s->dirty;
        s->dirty = NULL;
        while (c) {
            dx_conn *next = c->next_dirty;
            c->dirty = 0;
            c->next_dirty = NULL;
            if (c->state == DX_DEAD)
                free(c);
            else
                dx_out_flush(c);
            c = next;
        }
    }
}
