/* permessage-deflate on a connection: which zlib stream serves which
 * message, compressing sends, inflating receives into the message buffer.
 *
 * Streams: a message compressed from an empty window (shared mode, or a
 * client that asked for server_no_context_takeover) uses one of the
 * server's streams, reset first; so does a received message whose whole
 * payload arrived in one read when the client resets its window. Only
 * dedicated mode with context takeover gives a connection streams of its
 * own for its lifetime; otherwise a connection holds an inflate stream only
 * while a compressed message is split across reads. */
#include <stdlib.h>
#include <string.h>
#include "transport/internal.h"

static z_stream *stream_new(int deflating, int bits, int mem_level)
{
    z_stream *z = calloc(1, sizeof *z);
    if (z == NULL)
        return NULL;
    int r = deflating ? dx_pmd_deflate_init(z, bits, mem_level) : dx_pmd_inflate_init(z, bits);
    if (r < 0) {
        free(z);
        return NULL;
    }
    return z;
}

static void stream_free(z_stream *z, int deflating)
{
    if (z == NULL)
        return;
    if (deflating)
        deflateEnd(z);
    else
        inflateEnd(z);
    free(z);
}

int dx_deflate_negotiate(dx_conn *c, const dx_http_request *req, const dx_pmd_config *cfg,
                         char *resp, size_t cap)
{
    int r = dx_pmd_negotiate(req, cfg, &c->pmd, resp, cap);
    c->deflate_on = r == 1;
    c->deflate_dedicated = cfg->mode == DX_PMD_DEDICATED;
    c->deflate_mem_level = (uint8_t)(cfg->mem_level & 15);   /* 1..9 */
    return r;
}

/* Dedicated mode keeps a window between messages in that direction. */
static int keeps_server_window(const dx_conn *c)
{
    return c->deflate_dedicated && !c->pmd.server_no_context_takeover;
}

static int keeps_client_window(const dx_conn *c)
{
    return c->deflate_dedicated && !c->pmd.client_no_context_takeover;
}

/* ---- sending ---- */

static z_stream *send_stream(dx_conn *c, int *reset)
{
    dx_server *s = c->srv;
    int bits = c->pmd.server_window_bits;
    if (keeps_server_window(c)) {
        *reset = 0;
        dx_conn_rare *r = dx_conn_rare_get(c);
        if (r && r->deflater == NULL)
            r->deflater = stream_new(1, bits, c->deflate_mem_level);
        if (r == NULL || r->deflater == NULL) {
            dx_conn_rare_trim(c);
            return NULL;
        }
        return r->deflater;
    }
    *reset = 1;
    if (s->shared_deflate[bits] == NULL)
        s->shared_deflate[bits] = stream_new(1, bits, s->cfg.deflate.mem_level);
    return s->shared_deflate[bits];
}

int dx_deflate_kind(const dx_conn *c, size_t len)
{
    if (!c->deflate_on || len < c->srv->cfg.deflate_threshold)
        return 0;
    return keeps_server_window(c) ? 2 : 1;
}

dx_shared *dx_deflate_shared_frame(dx_server *s, int bits, int opcode, const void *data, size_t len)
{
    if (s->shared_deflate[bits] == NULL)
        s->shared_deflate[bits] = stream_new(1, bits, s->cfg.deflate.mem_level);
    z_stream *z = s->shared_deflate[bits];
    if (z == NULL)
        return NULL;
    size_t bound = dx_pmd_deflate_bound(z, len);
    dx_shared *f = malloc(sizeof *f + DX_FRAME_HEADER_MAX + bound);
    if (f == NULL)
        return NULL;
    uint8_t *body = f->data + DX_FRAME_HEADER_MAX;
    size_t n = dx_pmd_deflate(z, data, len, body, bound, 1);
    if (n == 0 || n >= len) {
        free(f);
        return NULL;
    }
    s->stats.deflate_in += len;
    s->stats.deflate_out += n;
    uint8_t hdr[DX_FRAME_HEADER_MAX];
    size_t hl = dx_frame_write_header(hdr, 1, DX_RSV1, opcode, n, NULL);
    memmove(f->data + hl, body, n);
    memcpy(f->data, hdr, hl);
    f->refs = 1;
    f->len = hl + n;
    return f;
}

/* Queues one message, compressed when that is worth it. Returns 0, or -1
 * when memory ran out. */
int dx_deflate_send(dx_conn *c, int opcode, const void *data, size_t len)
{
    dx_server *s = c->srv;
    if (!c->deflate_on || len < s->cfg.deflate_threshold)
        return dx_out_frame(c, opcode, data, len);
    int reset;
    z_stream *z = send_stream(c, &reset);
    if (z == NULL)
        return reset ? dx_out_frame(c, opcode, data, len) : -1;
    size_t bound = dx_pmd_deflate_bound(z, len);
    if (bound > s->zbuf_cap) {
        uint8_t *b = realloc(s->zbuf, bound);
        if (b == NULL)
            return reset ? dx_out_frame(c, opcode, data, len) : -1;
        s->zbuf = b;
        s->zbuf_cap = bound;
    }
    size_t n = dx_pmd_deflate(z, data, len, s->zbuf, s->zbuf_cap, reset);
    /* From an empty window, a message that did not shrink goes as it is;
     * with a kept window the peer must see every byte the stream saw. */
    if (reset && (n == 0 || n >= len))
        return dx_out_frame(c, opcode, data, len);
    if (n == 0)
        return -1;
    uint8_t hdr[DX_FRAME_HEADER_MAX];
    size_t hl = dx_frame_write_header(hdr, 1, DX_RSV1, opcode, n, NULL);
    uint8_t *p = dx_out_reserve(c, hl + n);
    if (p == NULL)
        return -1;
    memcpy(p, hdr, hl);
    memcpy(p + hl, s->zbuf, n);
    s->stats.deflate_in += len;
    s->stats.deflate_out += n;
    /* A big scratch buffer is not kept for the next small message. */
    if (s->zbuf_cap > 1024 * 1024) {
        free(s->zbuf);
        s->zbuf = NULL;
        s->zbuf_cap = 0;
    }
    return 0;
}

/* ---- receiving ---- */

/* Inflated bytes join the message: bounded by max_message, UTF-8 checked
 * as they come for a text message. */
static int sink(void *ud, const uint8_t *p, size_t len)
{
    dx_conn *c = ud;
    uint64_t max = c->srv->cfg.max_message;
    if (len > max - c->buf_len)
        return DX_CLOSE_TOO_BIG;
    int err = dx_message_payload(&c->msg, p, len);
    if (err)
        return err;
    if (dx_conn_buf_reserve(c, c->buf_len + len, (size_t)max) < 0)
        return DX_CLOSE_TOO_BIG;
    memcpy(c->buf + c->buf_len, p, len);
    c->buf_len += len;
    return 0;
}

/* Inflates a piece of the current compressed message into c->buf. whole:
 * p..n is the entire message; final: this is its last piece. Returns 0 or
 * a close code. */
int dx_deflate_receive(dx_conn *c, const uint8_t *p, size_t n, int whole, int final)
{
    dx_server *s = c->srv;
    z_stream *z;
    dx_conn_rare *own = NULL;                     /* when z is c's own stream */
    if (whole && !keeps_client_window(c)) {
        if (s->shared_inflate == NULL)
            s->shared_inflate = stream_new(0, 15, 0);
        z = s->shared_inflate;
    } else {
        own = dx_conn_rare_get(c);
        if (own && own->inflater == NULL)
            own->inflater = stream_new(0, keeps_client_window(c) ? c->pmd.client_window_bits : 15, 0);
        z = own ? own->inflater : NULL;
    }
    if (z == NULL) {
        dx_conn_rare_trim(c);
        return DX_CLOSE_INTERNAL;
    }
    int r = dx_pmd_inflate(z, p, n, final, sink, c);
    if (final || r) {
        if (own && !keeps_client_window(c)) {
            stream_free(own->inflater, 0);
            own->inflater = NULL;
            dx_conn_rare_trim(c);
        } else if (!own) {
            inflateReset(z);
        }
    }
    return r;
}

void dx_deflate_conn_free(dx_conn *c)
{
    dx_conn_rare *r = c->rare;
    if (r == NULL)
        return;
    stream_free(r->inflater, 0);
    stream_free(r->deflater, 1);
    r->inflater = r->deflater = NULL;
}

void dx_deflate_server_free(dx_server *s)
{
    for (int i = 0; i < 16; i++)
        stream_free(s->shared_deflate[i], 1);
    stream_free(s->shared_inflate, 0);
    free(s->zbuf);
}
