/* The read path: one read per readiness into the server's shared buffer,
 * then the HTTP upgrade (HANDSHAKE) or the frame stream (OPEN, CLOSING).
 * A connection keeps bytes of its own only for a partial frame header, a
 * control frame split across reads, or a message under assembly. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include "transport/internal.h"
#include "protocol/origin.h"
#include "protocol/utf8.h"

#define DX_HEADERS_MAX 128   /* the array; cfg.max_headers may ask for fewer */

/* A data frame with at least this much payload still to come is read
 * straight into the message buffer (sized for it once), not through the
 * shared read buffer: socket to message buffer to Lua string, one copy in
 * user space. Below it, the copy out of the shared buffer costs less than
 * the extra read that stopping at the frame's end would take. */
#define DX_DIRECT_MIN (16 * 1024)
/* What a frame's header alone may make us reserve for its payload; past
 * it, the reservation only doubles what the peer has really sent of the
 * message, so a header announcing a huge frame costs the server little. */
#define DX_AHEAD_FREE (64 * 1024)

/* Room to reserve in c->buf for a data frame with `left` bytes to come of
 * which `take` are here: the whole rest when that is within DX_AHEAD_FREE,
 * within what the message holds already, or within a message's size this
 * peer has sent before; else only that much. A frame header alone makes
 * the server reserve no more than the peer has shown it sends in one go
 * (never past max_message), and a peer that sends large messages gets its
 * buffer in one piece, not grown by doubling, each step a copy. */
static size_t reserve_ahead(const dx_conn *c, uint64_t left, size_t take)
{
    size_t had = c->buf_len + take;
    size_t cap = had > DX_AHEAD_FREE ? had : DX_AHEAD_FREE;
    if (c->msg.largest > 17) {               /* shown 128 KiB or more: less is within DX_AHEAD_FREE */
        size_t shown = (size_t)1 << (c->msg.largest - 1);
        if (shown > c->buf_len && shown - c->buf_len > cap)   /* room from buf_len on */
            cap = shown - c->buf_len;
    }
    return left < cap ? (size_t)left : cap;
}

void dx_conn_refuse(dx_conn *c, int status, const char *headers, const char *body)
{
    c->srv->stats.refused[dx_refused_slot(status)]++;
    char out[1024];
    size_t n = dx_http_error_response_with(out, sizeof out, status, headers, body);
    uint8_t *p = n ? dx_out_reserve(c, n) : NULL;
    if (p)
        memcpy(p, out, n);
    dx_conn_linger(c, 1);
}

static void refuse(dx_conn *c, int status, const char *body)
{
    dx_conn_refuse(c, status, NULL, body);
}

/* A request came while the server holds more connections than a limit
 * allows: 503 with a Retry-After, and 1 returned; else 0. */
static int refuse_over_limit(dx_conn *c)
{
    const char *why = dx_limits_refusal(c);
    if (why == NULL)
        return 0;
    dx_conn_refuse(c, 503, "Retry-After: " DX_RETRY_AFTER "\r\n", why);
    return 1;
}

/* The request head is complete and parsed: check it, ask the app, answer. */
static void upgrade(dx_conn *c, const dx_http_request *req, uint8_t *rest, size_t rest_len)
{
    dx_server *s = c->srv;
    dx_upgrade up;
    dx_accept acc;
    memset(&acc, 0, sizeof acc);
    int status = dx_handshake_check(req, &up);
    char body[512] = "";
    if (status == 0 && !dx_origin_allowed(req, s->cfg.origins)) {
        dx_limits_origin_refused(c);
        refuse(c, 403, "cross-origin upgrade refused: the Origin is neither this host "
               "nor one of the server's origins");
        return;
    }
    if (status == 0)
        status = s->ev.upgrade(s->ud, c, req, &up, &acc, body, sizeof body);
    if (c->state != DX_HANDSHAKE)            /* the server shut down meanwhile */
        return;
    if (status != 0) {
        refuse(c, status, body[0] ? body : NULL);
        return;
    }
    char ext[DX_PMD_RESPONSE_MAX];
    const dx_pmd_config *dcfg = acc.deflate ? acc.deflate : &s->cfg.deflate;
    if (dx_deflate_negotiate(c, req, dcfg, ext, sizeof ext) < 0) {
        refuse(c, 400, "invalid Sec-WebSocket-Extensions");
        return;
    }
    char out[768];
    size_t n = dx_handshake_response(out, sizeof out, up.key, up.key_len,
                                     acc.protocol[0] ? acc.protocol : NULL,
                                     c->deflate_on ? ext : NULL);
    uint8_t *p = n ? dx_out_reserve_fitted(c, n) : NULL;
    if (p == NULL) {
        refuse(c, 500, NULL);
        return;
    }
    memcpy(p, out, n);
    /* Frames the client sent right behind its request go through the shared
     * read buffer, as if just read; the head buffer is not needed any more. */
    uint8_t *rbuf = s->rbuf;
    if (rest != rbuf)
        memmove(rbuf, rest, rest_len);
    free(c->buf);
    c->buf = NULL;
    c->buf_len = c->buf_cap = 0;
    c->state = DX_OPEN;
    c->opened = 1;
    c->last_rx = ev_now(s->loop);            /* the request was the last bytes received */
    s->stats.accepted++;
    dx_conn_arm_timer(c);
    s->ev.open(s->ud, c);
    if (rest_len && c->state == DX_OPEN)
        dx_reader_feed_frames(c, rbuf, rest_len);
}

/* A request that is not an upgrade: the app's HTTP routes, then the
 * static files, then (for a WebSocket route's path) the upgrade answers.
 * Returns 1 when it was answered, 0 when the upgrade path should answer. */
static int plain_http(dx_conn *c, const dx_http_request *req, int keep)
{
    dx_server *s = c->srv;
    int r = s->ev.http(s->ud, c, req, keep);
    if (r == DX_HTTP_ANSWERED)
        return 1;
    if (s->static_root && dx_static_serve(c, s->static_root, req, keep))
        return 1;
    if (r == DX_HTTP_WS_ROUTE) {
        if (!s->cfg.sse || !dx_sse_wanted(req))
            return 0;
        dx_sse_open(c, req);                 /* the fallback transport: an event stream */
        return 1;
    }
    /* The built-in client comes last: an app's own /duplex.js (a route,
     * a static file, a WebSocket route) wins. */
    if (s->cfg.client_js && s->client_js && dx_client_js_serve(c, req, keep))
        return 1;
    char headers[] = "Content-Type: text/plain; charset=utf-8\r\n";
    dx_http_respond(c, 404, headers, "Not Found", 9, dx_http_is_head(req), keep);
    return 1;
}

/* 1 when req asks for a WebSocket (an Upgrade header naming websocket). */
static int wants_websocket(const dx_http_request *req)
{
    const dx_http_header *h = dx_http_find(req, "upgrade");
    return h && dx_http_has_token(h->value, h->value_len, "websocket");
}

/* Answers every complete request in c->buf (prev: bytes already searched
 * for the end of the first head): plain HTTP ones in turn (keep-alive,
 * pipelining), until an upgrade or a close. While more than
 * max_backpressure of responses wait for a peer that does not read, it
 * reads no more requests: pipelining cannot grow the server's memory. */
static void answer_requests(dx_conn *c, size_t prev)
{
    const dx_config *cfg = &c->srv->cfg;
    for (;;) {
        dx_http_header headers[DX_HEADERS_MAX];
        dx_http_request req = { .headers = headers };
        req.num_headers = cfg->max_headers < DX_HEADERS_MAX ? cfg->max_headers : DX_HEADERS_MAX;
        int r = dx_http_parse_request((const char *)c->buf, c->buf_len, prev, &req);
        if (r == DX_HTTP_INCOMPLETE) {
            if (c->buf_len >= cfg->max_head)
                refuse(c, 431, "request head too large");
            return;
        }
        if (r == DX_HTTP_TOO_MANY) {
            refuse(c, 431, "too many header fields");
            return;
        }
        if (r < 0) {
            refuse(c, 400, NULL);
            return;
        }
        size_t head = (size_t)r;
        if (refuse_over_limit(c))
            return;
        if (c->out.head && cfg->sse && dx_sse_wanted(&req)) {
            /* An event stream asked for behind responses still queued
             * (pipelined): its flush would take those bytes for frames
             * to encode. It is answered once they went. */
            c->paused = 1;                       /* dx_out_flush resumes when they went */
            dx_conn_watch(c);
            return;
        }
        int keep = -1;                           /* -1: an upgrade */
        if (cfg->sse && dx_sse_is_post(&req)) {
            int posted = dx_sse_post(c, &req, head, &head);
            if (posted <= 0)
                return;                          /* its body is still coming, or refused */
            if (posted == 3) {                   /* forwarded to the session's worker: its
                                                  * answer comes first, then what follows */
                memmove(c->buf, c->buf + head, c->buf_len - head);
                c->buf_len -= head;
                c->paused = 1;                   /* dx_server_forward_answer resumes it */
                dx_conn_watch(c);
                return;
            }
            keep = posted == 1;
        } else if (!wants_websocket(&req)) {
            keep = dx_http_keep_alive(&req);
            if (!plain_http(c, &req, keep))
                keep = -1;
        }
        if (keep >= 0) {
            if (c->state != DX_HANDSHAKE)
                return;
            if (!keep) {
                dx_conn_linger(c, 1);
                return;
            }
            /* The next request may already be here (pipelined). */
            memmove(c->buf, c->buf + head, c->buf_len - head);
            c->buf_len -= head;
            c->accepted_at = ev_now(c->srv->loop);
            dx_conn_arm_timer(c);
            prev = 0;
            if (c->out.bytes > cfg->max_backpressure) {
                c->paused = 1;                   /* dx_out_flush resumes when they went */
                dx_conn_watch(c);
                return;
            }
            if (c->buf_len == 0) {               /* idle keep-alive: no buffer */
                free(c->buf);
                c->buf = NULL;
                c->buf_cap = 0;
                return;
            }
            continue;
        }
        /* Bytes behind the head (frames sent without waiting for the 101)
         * move to the shared read buffer; they are fewer than max_head. */
        memcpy(c->srv->rbuf, c->buf + head, c->buf_len - head);
        upgrade(c, &req, c->srv->rbuf, c->buf_len - head);
        return;
    }
}

/* The common case: a whole upgrade request arrived in one read. It is
 * answered from where it was read (the shared read buffer): no head buffer
 * is allocated, filled and freed for it. Returns 0, having done nothing,
 * for anything else (a partial head, plain HTTP, a bad request): the
 * buffered path answers those. */
static int upgrade_in_place(dx_conn *c, uint8_t *p, size_t n)
{
    if (n < 4 || memcmp(p, "GET ", 4) != 0)  /* no upgrade (a POST): parsed once, by the buffered path */
        return 0;
    const dx_config *cfg = &c->srv->cfg;
    dx_http_header headers[DX_HEADERS_MAX];
    dx_http_request req = { .headers = headers };
    req.num_headers = cfg->max_headers < DX_HEADERS_MAX ? cfg->max_headers : DX_HEADERS_MAX;
    int r = dx_http_parse_request((const char *)p, n, 0, &req);
    if (r <= 0 || !wants_websocket(&req))
        return 0;
    if (!refuse_over_limit(c))
        upgrade(c, &req, p + r, n - (size_t)r);
    return 1;
}

/* Adds n bytes to the request head (the caller read at most the room left
 * under max_head) and answers what is complete. */
static void feed_handshake(dx_conn *c, uint8_t *p, size_t n)
{
    size_t prev = c->buf_len;
    if (prev == 0 && upgrade_in_place(c, p, n))
        return;
    if (c->request_need) {                   /* a body: the head is whole, its end known */
        if (dx_conn_buf_reserve(c, prev + n, c->request_need) < 0) {
            dx_conn_lost(c);
            return;
        }
        prev = 0;
    } else if (dx_conn_buf_reserve(c, prev + n, c->srv->cfg.max_head) < 0) {
        refuse(c, 431, "request head too large");
        return;
    }
    memcpy(c->buf + c->buf_len, p, n);
    c->buf_len += n;
    answer_requests(c, prev);
}

/* The responses of a paused connection went out: read and answer again. */
void dx_reader_resume(dx_conn *c)
{
    c->paused = 0;
    dx_conn_watch(c);
    if (c->tls)                          /* bytes OpenSSL holds do not make the socket readable */
        ev_feed_event(c->srv->loop, &c->io, EV_READ);
    if (c->buf_len)
        answer_requests(c, 0);
}

/* A whole control frame's payload (unmasked). */
static void on_control(dx_conn *c, int opcode, const uint8_t *p, size_t len)
{
    if (opcode == DX_OP_PING) {
        /* A pong is output the peer makes us hold: it counts against
         * max_backpressure like a send (refused past it, and the policy
         * applies), so a peer that pings and never reads costs nothing. */
        if (c->state == DX_OPEN && dx_conn_admit(c))
            dx_out_frame(c, DX_OP_PONG, p, len);
        return;
    }
    if (opcode == DX_OP_PONG) {
        /* The next ping is due ping_interval from now, not when the pong
         * deadline armed for this one passes: with pong_timeout above
         * ping_interval, pings (and duplex.1's heartbeats, by which pages
         * tell a dead connection) would go only every pong_timeout. */
        if (c->awaiting_pong) {
            c->awaiting_pong = 0;
            dx_conn_arm_timer(c);
        }
        return;
    }
    unsigned code;
    const uint8_t *reason;
    size_t reason_len;
    int err = dx_close_parse(p, len, &code, &reason, &reason_len);
    if (err) {
        dx_conn_fail(c, (unsigned)err, err == DX_CLOSE_PROTOCOL ? "invalid close frame" : "invalid close reason");
        return;
    }
    if (c->state == DX_OPEN) {
        /* Echo the peer's code (1000 when it sent none), then close TCP. */
        dx_out_close_frame(c, code == DX_CLOSE_NO_STATUS ? DX_CLOSE_NORMAL : code, NULL, 0);
    }
    dx_conn_report_close(c, code, reason, reason_len);
    dx_conn_linger(c, 0);
}

/* 1 when c's next whole, checked message goes to the app: c is open and
 * max_message_rate does not drop it (or close c). */
static inline int admit(dx_conn *c)
{
    dx_server *s = c->srv;
    if (c->state != DX_OPEN || (s->cfg.max_message_rate && !dx_rate_take(c)))
        return 0;
    s->stats.messages_in++;
    return 1;
}

int dx_conn_take_message(dx_conn *c)
{
    return admit(c);
}

int dx_conn_take_message_quiet(dx_conn *c)
{
    if (c->state == DX_OPEN && c->srv->cfg.max_message_rate && dx_rate_closes(c))
        return -1;
    return admit(c);
}

/* A whole, checked message of c to the app, if admitted. */
static inline void hand_over(dx_conn *c, const uint8_t *p, size_t len, int binary)
{
    if (admit(c))
        c->srv->ev.message(c->srv->ud, c, p, len, binary);
}

static void deliver(dx_conn *c, const uint8_t *p, size_t len)
{
    int binary = c->msg.opcode == DX_OP_BINARY;   /* read before the state resets */
    int err = dx_message_end(&c->msg);
    if (err) {
        dx_conn_fail(c, (unsigned)err, "invalid UTF-8");
        return;
    }
    hand_over(c, p, len, binary);
}

/* The current frame's payload is complete. */
static void frame_end(dx_conn *c, const uint8_t *direct)
{
    const dx_frame_header *h = &c->fh;
    c->phase = DX_PH_HEADER;
    if (h->opcode >= DX_OP_CLOSE) {
        const uint8_t *p = direct ? direct : c->rare->ctl;
        on_control(c, h->opcode, p, (size_t)h->length);
        if (!direct && c->rare) {            /* gone with c->rare when c was freed */
            free(c->rare->ctl);
            c->rare->ctl = NULL;
            dx_conn_rare_trim(c);
        }
        return;
    }
    if (c->state != DX_OPEN || !h->fin)
        return;
    if (direct) {
        deliver(c, direct, (size_t)h->length);
    } else {
        deliver(c, c->buf, c->buf_len);
        free(c->buf);                        /* an idle connection keeps no buffer */
        c->buf = NULL;
        c->buf_len = c->buf_cap = 0;
    }
}

/* A frame header was parsed into c->fh. Returns 0, or -1 when the
 * connection failed. */
static int on_header(dx_conn *c)
{
    const dx_frame_header *h = &c->fh;
    c->payload_off = 0;
    c->phase = DX_PH_PAYLOAD;
    if (h->opcode >= DX_OP_CLOSE || c->state != DX_OPEN)
        return 0;
    int err = dx_message_frame(&c->msg, h, c->srv->cfg.max_message);
    if (err) {
        dx_conn_fail(c, (unsigned)err, err == DX_CLOSE_TOO_BIG ? "message too big" : "unexpected frame");
        return -1;
    }
    return 0;
}

/* Takes up to n payload bytes of the current frame from p (unmasking them in
 * place). Returns the bytes taken, or -1 when the connection failed. */
static long take_payload(dx_conn *c, uint8_t *p, size_t n)
{
    const dx_frame_header *h = &c->fh;
    uint64_t left = h->length - c->payload_off;
    size_t take = left < n ? (size_t)left : n;
    int control = h->opcode >= DX_OP_CLOSE;
    int whole = c->payload_off == 0 && take == h->length;   /* the frame is all here */
    int unfragmented = h->fin && h->opcode != DX_OP_CONT;
    dx_mask(p, take, h->mask, c->payload_off);

    if (control) {
        if (whole) {                         /* no copy */
            frame_end(c, p);
            return (long)take;
        }
        dx_conn_rare *r = dx_conn_rare_get(c);
        if (r == NULL || (r->ctl == NULL && (r->ctl = malloc(DX_CONTROL_MAX)) == NULL)) {
            dx_conn_rare_trim(c);
            dx_conn_lost(c);
            return -1;
        }
        memcpy(r->ctl + c->payload_off, p, take);
    } else if (c->state == DX_OPEN && c->msg.compressed) {
        /* Inflated into c->buf; the last piece also inflates RFC 7692's tail. */
        int last = h->fin && take == left;
        int err = dx_deflate_receive(c, p, take, whole && unfragmented, last);
        if (err) {
            dx_conn_fail(c, (unsigned)err, err == DX_CLOSE_TOO_BIG ? "message too big"
                         : err == DX_CLOSE_INVALID_DATA ? "invalid compressed data or UTF-8"
                         : "internal error");
            return -1;
        }
    } else if (c->state == DX_OPEN) {
        if (dx_message_payload(&c->msg, p, take)) {
            dx_conn_fail(c, DX_CLOSE_INVALID_DATA, "invalid UTF-8");
            return -1;
        }
        int in_place = c->buf && p == c->buf + c->buf_len;   /* read straight into c->buf */
        if (whole && unfragmented && !in_place) {  /* a whole message in the read buffer: no copy */
            frame_end(c, p);
            return (long)take;
        }
        if (!in_place) {
            size_t ahead = reserve_ahead(c, left, take);   /* at least take */
            if (dx_conn_buf_reserve(c, c->buf_len + ahead, c->srv->cfg.max_message) < 0) {
                dx_conn_fail(c, DX_CLOSE_TOO_BIG, "message too big");
                return -1;
            }
            if (take)
                memcpy(c->buf + c->buf_len, p, take);
        }
        c->buf_len += take;
    }
    c->payload_off += take;
    if (c->payload_off == h->length)
        frame_end(c, NULL);
    return (long)take;
}

/* Parses a frame header from p, completing a partial one kept in c->hdr.
 * Returns the bytes of p used, 0 when all of p was kept as a partial header,
 * or -1 when the connection failed. */
static long take_header(dx_conn *c, const uint8_t *p, size_t n)
{
    int r;
    if (c->hdr_len == 0) {
        r = dx_frame_parse_header(p, n, c->deflate_on ? DX_RSV1 : 0, 1, &c->fh);
        if (r == 0) {
            memcpy(c->hdr, p, n);            /* n < DX_FRAME_HEADER_MAX here */
            c->hdr_len = (uint8_t)n;
            return 0;
        }
    } else {
        size_t have = c->hdr_len;
        size_t add = DX_FRAME_HEADER_MAX - have < n ? DX_FRAME_HEADER_MAX - have : n;
        memcpy(c->hdr + have, p, add);
        r = dx_frame_parse_header(c->hdr, have + add, c->deflate_on ? DX_RSV1 : 0, 1, &c->fh);
        if (r == 0) {
            c->hdr_len = (uint8_t)(have + add);
            return 0;
        }
        if (r > 0) {
            c->hdr_len = 0;
            r -= (int)have;
        }
    }
    if (r < 0) {
        dx_conn_fail(c, DX_CLOSE_PROTOCOL, "protocol error");
        return -1;
    }
    if (on_header(c) < 0)
        return -1;
    return r;
}

/* The whole messages of one read that wait to go to the app together:
 * one dx_events.messages for all of them (the layer above enters Lua
 * once), not a message event each. At most DX_BATCH_MAX wait; anything
 * else of the connection (another frame, a failure, the read's end) hands
 * them over first, so the app sees everything in the order it came. */
#define DX_BATCH_MAX 32

typedef struct batch {
    unsigned n;
    dx_message_ref m[DX_BATCH_MAX];
} batch;

static void hand_over_batch(dx_conn *c, batch *b)
{
    unsigned n = b->n;
    if (n == 0)
        return;
    b->n = 0;
    dx_server *s = c->srv;
    if (n > 1 && s->ev.messages) {
        s->ev.messages(s->ud, c, b->m, n);
        return;
    }
    for (unsigned i = 0; i < n; i++)
        hand_over(c, b->m[i].data, b->m[i].len, b->m[i].binary);
}

/* The common case in one go: a whole message in one masked TEXT or
 * BINARY frame with FIN and no RSV bit, of at most 65 535 bytes (a 7- or
 * 16-bit length), entirely in p, between messages of an open connection.
 * Does what take_header, take_payload, frame_end and deliver do for it,
 * without the frame and message state they keep between reads (which
 * stays as it was: between messages), and adds it to b. Returns the bytes
 * used, 0 when p does not start with such a frame (the general path
 * takes it, nothing was changed), or -1 when the connection failed. */
static inline long small_message(dx_conn *c, batch *b, uint8_t *p, size_t n)
{
    if (n < 6 || c->state != DX_OPEN || c->hdr_len || c->msg.in_message)
        return 0;
    uint8_t b0 = p[0], b1 = p[1];
    if ((b0 != (0x80 | DX_OP_TEXT) && b0 != (0x80 | DX_OP_BINARY)) || !(b1 & 0x80))
        return 0;
    size_t len = b1 & 0x7F, head = 6;
    if (len == 126) {
        if (n < 8)
            return 0;
        len = (size_t)p[2] << 8 | p[3];
        head = 8;
    } else if (len == 127) {
        return 0;
    }
    if (n - head < len || len > c->srv->cfg.max_message)
        return 0;
    uint8_t *payload = p + head;
    dx_mask(payload, len, payload - 4, 0);
    int binary = b0 == (0x80 | DX_OP_BINARY);
    if (!binary && !dx_utf8_valid(payload, len)) {
        hand_over_batch(c, b);             /* what came before it goes first */
        if (c->state != DX_OPEN)           /* the app closed c: the frame is dropped, */
            return (long)(head + len);     /* as a closing connection's are */
        dx_conn_fail(c, DX_CLOSE_INVALID_DATA, "invalid UTF-8");
        return -1;
    }
    if (b->n == DX_BATCH_MAX)
        hand_over_batch(c, b);
    b->m[b->n++] = (dx_message_ref){ payload, (uint32_t)len, binary };
    return (long)(head + len);
}

void dx_reader_feed_frames(dx_conn *c, uint8_t *p, size_t n)
{
    batch b;
    b.n = 0;
    while (c->state == DX_OPEN || c->state == DX_CLOSING) {
        long used;
        if (c->phase == DX_PH_HEADER) {
            if (n == 0)
                break;
            if ((used = small_message(c, &b, p, n)) != 0) {
                if (used < 0)
                    return;
                p += used;
                n -= (size_t)used;
                continue;
            }
            hand_over_batch(c, &b);         /* before anything else of c's */
            used = take_header(c, p, n);
            if (used <= 0)
                return;
            p += used;
            n -= (size_t)used;
            if (c->fh.length != 0)
                continue;
            used = take_payload(c, p, 0);    /* empty payload: the frame ends here */
        } else {
            if (n == 0)
                break;
            used = take_payload(c, p, n);
        }
        if (used < 0)
            return;
        p += used;
        n -= (size_t)used;
    }
    hand_over_batch(c, &b);
}

void dx_reader_end(dx_conn *c, int eof)
{
    if (c->state == DX_LINGER || (eof && c->state == DX_HANDSHAKE))
        dx_conn_free(c);
    else
        dx_conn_lost(c);
}

/* Frames from c's peer (the hot path: inlined into dx_reader_consume). */
static void take(dx_conn *c, uint8_t *p, size_t n)
{
    ev_tstamp now = ev_now(c->srv->loop);
    if (dx_rate_owed(c))                     /* max_message_rate: refill the bucket */
        dx_rate_refill(c, now);
    c->last_rx = now;
    dx_reader_feed_frames(c, p, n);
}

void dx_reader_take(dx_conn *c, uint8_t *p, size_t n)
{
    take(c, p, n);
}

void dx_reader_consume(dx_conn *c, uint8_t *buf, size_t n)
{
    switch (c->state) {
    case DX_HANDSHAKE:                       /* its deadline runs from accepted_at: bytes do not move it */
        feed_handshake(c, buf, n);
        break;
    case DX_OPEN:
    case DX_CLOSING:
        if (!DX_CONN_SSE(c))                 /* a session's frames come in POSTs: its stream's own
                                              * socket brings nothing else */
            take(c, buf, n);
        break;
    default:
        break;                               /* LINGER: the peer's leftovers are dropped */
    }
}

/* When the payload of c's current frame goes into c->buf and at least
 * DX_DIRECT_MIN of it is still to come, makes room for it there and
 * returns where the next read should put it (*want: at most the rest of
 * the frame, so the next frame's bytes stay for the shared buffer); else
 * NULL. */
static uint8_t *direct_target(dx_conn *c, size_t *want)
{
    const dx_frame_header *h = &c->fh;
    if (c->state != DX_OPEN || c->phase != DX_PH_PAYLOAD || h->opcode >= DX_OP_CLOSE ||
        c->msg.compressed)
        return NULL;
    uint64_t left = h->length - c->payload_off;
    if (left < DX_DIRECT_MIN)
        return NULL;
    size_t ahead = reserve_ahead(c, left, 0);   /* at least DX_DIRECT_MIN, as left is */
    if (dx_conn_buf_reserve(c, c->buf_len + ahead, c->srv->cfg.max_message) < 0)
        return NULL;                         /* the copying path reports it */
    *want = ahead;
    return c->buf + c->buf_len;
}

static void on_readable(dx_conn *c)
{
    if (c->paused)                           /* the write side paused it just now */
        return;
    uint8_t *rbuf = c->srv->rbuf;
    size_t want = DX_READ_BUFFER;
    if (c->state == DX_HANDSHAKE)        /* never read past the head's limit, or a body's end */
        want = dx_reader_head_room(c);
    uint8_t *direct = direct_target(c, &want);
    if (direct)
        rbuf = direct;
    ssize_t n = recv(c->io.fd, rbuf, want, 0);   /* not read(2): the socket's own call costs the kernel less */
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        dx_reader_end(c, n == 0);
        return;
    }
    c->srv->stats.bytes_in += (size_t)n;
    dx_reader_consume(c, rbuf, (size_t)n);
}

/* TLS: reads what the TLS source has into the server's buffer and hands
 * it on. */
static void on_readable_tls(dx_conn *c)
{
    dx_server *s = c->srv;
    size_t want = DX_READ_BUFFER, got;
    if (c->state == DX_HANDSHAKE)            /* never read past the head's limit, or a body's end */
        want = dx_reader_head_room(c);
    int st = dx_tls_read(c, s->rbuf, want, &got);
    if (got) {
        s->stats.bytes_in += got;
        dx_reader_consume(c, s->rbuf, got);
        if (c->state == DX_DEAD)
            return;
    }
    switch (st) {
    case DX_IO_FULL:                         /* bytes OpenSSL holds do not make the socket readable */
        if (!c->paused && dx_tls_pending(c))
            ev_feed_event(s->loop, &c->io, EV_READ);
        return;
    case DX_IO_AGAIN:
        return;
    case DX_IO_PLAIN: {                      /* plain HTTP to the TLS port: say so in plain HTTP */
        static const char body[] = "This port speaks TLS: use https:// or wss://.\n";
        dx_http_respond(c, 400, "Content-Type: text/plain; charset=utf-8\r\n", body, sizeof body - 1, 0, 0);
        dx_conn_linger(c, 1);
        return;
    }
    default:
        dx_reader_end(c, st == DX_IO_EOF);
        return;
    }
}

/* A TLS connection's socket is ready. OpenSSL may need the other direction
 * than the one asked for: a read that waited for writable runs when it is
 * writable, a write that waited for readable when it is readable. */
__attribute__((noinline)) static void tls_ready(dx_conn *c, int revents)
{
    if (revents & EV_WRITE) {
        if (c->tls_read_wants_write) {
            c->tls_read_wants_write = 0;
            dx_conn_watch(c);
            if (!c->paused)
                on_readable_tls(c);
        }
        if (c->state != DX_DEAD && c->writing)
            dx_out_flush(c);
    }
    if ((revents & EV_READ) && c->state != DX_DEAD) {
        if (c->tls_flush_wants_read) {
            c->tls_flush_wants_read = 0;
            dx_out_flush(c);
            if (c->state == DX_DEAD)
                return;
        }
        if (!c->paused)
            on_readable_tls(c);
        else if (!c->tls_flush_wants_read)
            dx_conn_watch(c);                /* it ran for the write only */
    }
}

/* The socket is ready: the write side first (a full queue moves on), then
 * the read side. Either may end c: it stays allocated until both ran. It
 * lives here, beside the read path it calls on every read. */
void dx_conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    dx_conn *c = w->data;
    c->busy = 1;
    if (c->tls) {
        tls_ready(c, revents);
    } else {
        if (revents & EV_WRITE)
            dx_out_flush(c);
        if ((revents & EV_READ) && c->state != DX_DEAD)
            on_readable(c);
    }
    c->busy = 0;
    if (c->state == DX_DEAD && !c->dirty)
        free(c);
}
