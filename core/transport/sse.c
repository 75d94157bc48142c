/* The fallback transport for clients that cannot open a WebSocket: a
 * session whose messages come down as Server-Sent Events on one long GET,
 * and go up as POSTs, on the same port and routes.
 *
 * A session is an ordinary connection (the GET's socket) in the OPEN
 * state, so everything above the transport — handlers, topics, limits,
 * backpressure, pings, close codes — is the WebSocket's. Only its bytes
 * differ:
 *
 *   down  The writer queues WebSocket frames for it as for any connection;
 *         this file's flush turns each frame into one event on the way to
 *         the socket: "data: " and a kind, then the payload, then a blank
 *         line. Kinds: 't' text (its lines as data lines), 'T' text with a
 *         CR (which SSE would take for a line end) in base64, 'b' binary
 *         in base64, 'p' ping, 'q' pong and 'c' close with their payloads
 *         in base64, and first 'o' the session: {"session", "protocol",
 *         "max", "ping"}. A frame is encoded as its turn comes, a stage at
 *         a time, so a large message costs no second copy of itself.
 *   up    Each POST carries WebSocket frames, masked as a client's are
 *         (any key), for the session named in its query (duplex_session,
 *         32 hex digits: the worker's index in 4, then 28 nobody can
 *         guess) with a sequence number (seq,
 *         from 0): the body goes through the session's frame reader as if
 *         its socket had read it. POSTs are taken in order: a seq already
 *         taken is answered 204 without being taken again (a retry), a
 *         seq ahead of the next is 409. A body may be at most one message
 *         of max_message with its header (past it: 413, and the session
 *         closes 1009, as a WebSocket would).
 *
 * Workers. Under --workers N a POST's connection lands on any worker.
 * One for a session of another worker (its id's first 4 hex digits, and
 * dx_events.forward set) is handed up whole (id, seq, body, and the
 * connection's id as the token): the binding carries it over the bus and
 * the hub to that worker, whose dx_server_forwarded_post runs it as a
 * local POST (take() is both paths' logic) and whose answer comes back to
 * dx_server_forward_answer. Meanwhile the POST's connection is paused
 * with rare->wait set (dx_out_flush does not resume it: the answer does,
 * so requests pipelined behind it are answered in order), its request
 * bytes consumed, in the server's table of waits by token (a connection
 * freed takes its wait with it: a late answer finds nothing); it is still
 * in HANDSHAKE, so handshake_timeout bounds the wait. The answer carries
 * the CORS lines the request earned, kept in the wait.
 *
 * The GET asks with Accept: text/event-stream on a WebSocket route; the
 * subprotocols it offers come in the query (duplex_protocols, comma
 * separated), since an EventSource cannot set headers. Both the GET and
 * the POSTs pass the Origin check of an upgrade, and a page of an allowed
 * other origin gets the CORS line that lets it read them.
 *
 * Memory. The encoded bytes the socket did not take (at most one stage,
 * DX_SSE_STAGE) wait in the session; the queue bytes they stand for stay
 * in the queue, counted against max_backpressure, until they are written.
 * A POST's body is held whole (at most max_message and a frame header)
 * only for a session that exists, or one of another worker (which alone
 * knows whether it exists): one for an unknown session of this process is
 * answered 404 from its head. A forwarded POST waiting for its answer
 * holds its wait (its CORS lines) and nothing else: its bytes are gone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <openssl/crypto.h>
#include "transport/internal.h"
#include "protocol/origin.h"

#define DX_SSE_STAGE (32 * 1024)     /* encoded bytes handed to the socket at once */
#define DX_SSE_ID 32                 /* hex digits of a session id */
#define DX_SSE_OFFERS 256            /* bytes of decoded duplex_protocols */
#define DX_SSE_WORKER 4              /* hex digits of the id that name its worker */
#define DX_SSE_WAIT_BUCKETS 256      /* chains of forwarded POSTs waiting, by token */
#define DX_SSE_TOO_BIG UINT64_MAX    /* a forwarded seq: the POST's body was too big, refused */

/* A session's state, in its connection's rare part. */
typedef struct dx_sse {
    struct dx_sse *next;             /* the server's session table chain */
    dx_conn *conn;
    char id[DX_SSE_ID];
    uint64_t next_seq;               /* the seq the next POST must carry */
    size_t raw;                      /* bytes at the queue's head that go as they are */
    /* The frame being encoded. */
    uint8_t hdr[DX_FRAME_HEADER_MAX];
    uint8_t hdr_len;
    uint8_t in_frame;                /* its header is parsed: its payload is being encoded */
    uint8_t text;                    /* kind 't': lines as they are; else base64 */
    uint8_t ncarry;                  /* base64: bytes of an unfinished group */
    uint8_t carry[3];
    uint64_t left;                   /* payload bytes still to encode */
    /* Encoded bytes the socket did not take yet: they stand for the first
     * pend_src bytes of the queue, consumed when they are all written. */
    uint8_t *pend;
    size_t pend_len, pend_off, pend_src;
} dx_sse;

/* A POST forwarded to its session's worker, waiting for the answer, in
 * its connection's rare part and the server's table of them (by token). */
typedef struct dx_sse_wait {
    struct dx_sse_wait *next, **pprev;
    dx_conn *conn;                   /* its token is conn->id */
    int keep;                        /* keep-alive after the answer */
    char cors[];                     /* the CORS lines its answer carries, or "" */
} dx_sse_wait;

/* ---- the session table ---- */

static uint64_t id_hash(const char *id)
{
    uint64_t h = 0;
    memcpy(&h, id + DX_SSE_WORKER, sizeof h);   /* hex of random bytes: any 8 of them will do */
    return h * 0x9E3779B97F4A7C15ull;
}

static dx_sse **bucket(dx_server *s, const char *id)
{
    return &s->sessions[id_hash(id) & (s->nsessions_buckets - 1)];
}

static int table_add(dx_server *s, dx_sse *x)
{
    if (s->nsessions >= s->nsessions_buckets) {
        size_t n = s->nsessions_buckets ? s->nsessions_buckets * 2 : 16;
        dx_sse **b = calloc(n, sizeof *b);
        if (b == NULL)
            return -1;
        for (size_t i = 0; i < s->nsessions_buckets; i++) {
            for (dx_sse *e = s->sessions[i], *next; e; e = next) {
                next = e->next;
                dx_sse **at = &b[id_hash(e->id) & (n - 1)];
                e->next = *at;
                *at = e;
            }
        }
        free(s->sessions);
        s->sessions = b;
        s->nsessions_buckets = n;
    }
    dx_sse **at = bucket(s, x->id);
    x->next = *at;
    *at = x;
    s->nsessions++;
    return 0;
}

static dx_sse *table_find(dx_server *s, const char *id, size_t len)
{
    if (len != DX_SSE_ID || s->nsessions == 0)
        return NULL;
    for (dx_sse *e = *bucket(s, id); e; e = e->next)
        if (CRYPTO_memcmp(e->id, id, DX_SSE_ID) == 0)   /* in constant time: the id is a secret */
            return e;
    return NULL;
}

static void table_remove(dx_server *s, dx_sse *x)
{
    for (dx_sse **at = bucket(s, x->id); *at; at = &(*at)->next) {
        if (*at == x) {
            *at = x->next;
            s->nsessions--;
            return;
        }
    }
}

static void wait_unlink(dx_conn *c)
{
    dx_sse_wait *w = c->rare->wait;
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    free(w);
    c->rare->wait = NULL;
}

void dx_sse_conn_free(dx_conn *c)
{
    if (c->rare && c->rare->wait)            /* an answer for it will find nothing */
        wait_unlink(c);
    dx_sse *x = c->rare ? c->rare->sse : NULL;
    if (x == NULL)
        return;
    table_remove(c->srv, x);
    free(x->pend);
    free(x);
    c->rare->sse = NULL;
}

void dx_sse_server_free(dx_server *s)
{
    free(s->sessions);
    s->sessions = NULL;
    free(s->waiting);                        /* empty: each connection took its wait with it */
    s->waiting = NULL;
    s->nsessions = s->nsessions_buckets = 0;
    free(s->sse_stage);
    s->sse_stage = NULL;
}

/* ---- requests ---- */

/* The value of the query parameter name in target (not decoded), or NULL. */
static const char *query_param(const dx_http_request *req, const char *name, size_t *len)
{
    const char *q = memchr(req->target, '?', req->target_len);
    if (q == NULL)
        return NULL;
    const char *end = req->target + req->target_len;
    size_t n = strlen(name);
    for (const char *p = q + 1; p < end; ) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > n && memcmp(p, name, n) == 0 && p[n] == '=') {
            *len = (size_t)(stop - p - n - 1);
            return p + n + 1;
        }
        p = stop + 1;
    }
    return NULL;
}

int dx_sse_wanted(const dx_http_request *req)
{
    const dx_http_header *h = dx_http_find(req, "accept");
    return req->method_len == 3 && memcmp(req->method, "GET", 3) == 0 && h
        && memmem(h->value, h->value_len, "text/event-stream", 17) != NULL;
}

int dx_sse_is_post(const dx_http_request *req)
{
    size_t n;
    return req->method_len == 4 && memcmp(req->method, "POST", 4) == 0
        && query_param(req, "duplex_session", &n) != NULL;
}

/* 1 for a byte of a token (RFC 9110 tchar), or a separator of a list of
 * them (comma, space, tab). */
static int offer_char(unsigned char ch)
{
    return dx_http_is_tchar(ch) || ch == ',' || ch == ' ' || ch == '\t';
}

/* Decodes the %XX escapes of duplex_protocols (a comma may come as %2C)
 * into out; returns the length, 0 when there is none, it is too long, or
 * it holds what is not a token: a subprotocol goes into the 'o' event's
 * JSON as it is, where a quote or a line end (which a header could not
 * carry, but a query can) would break the event or forge another. */
static size_t decode_offers(const dx_http_request *req, char *out, size_t cap)
{
    size_t len, o = 0;
    const char *v = query_param(req, "duplex_protocols", &len);
    if (v == NULL)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = v[i];
        if (ch == '%') {
            int hi = i + 2 < len ? dx_http_hexval(v[i + 1]) : -1;
            int lo = i + 2 < len ? dx_http_hexval(v[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return 0;
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o + 1 >= cap || !offer_char((unsigned char)ch))
            return 0;
        out[o++] = ch;
    }
    return o;
}

static void json_string(char *out, size_t cap, size_t *n, const char *s)
{
    /* Subprotocols are tokens: no quote or backslash needs escaping. */
    int w = snprintf(out + *n, cap - *n, "\"%s\"", s);
    *n += w > 0 && (size_t)w < cap - *n ? (size_t)w : 0;
}

/* The CORS lines for an answer to req, whose Origin was allowed: a page of
 * another origin may read the stream and the POSTs' answers (no
 * credentials are involved: the session id is the only key). "" when
 * the request has no Origin. */
static void cors(const dx_http_request *req, char *out, size_t cap)
{
    const dx_http_header *o = dx_http_find(req, "origin");
    out[0] = 0;
    if (o && o->value_len < cap - 64)        /* the parser let no CR or LF into a value */
        snprintf(out, cap, "Access-Control-Allow-Origin: %.*s\r\nVary: Origin\r\n", (int)o->value_len,
                 o->value);
}

void dx_sse_open(dx_conn *c, const dx_http_request *req)
{
    dx_server *s = c->srv;
    if (!dx_origin_allowed(req, s->cfg.origins)) {
        dx_limits_origin_refused(c);
        dx_conn_refuse(c, 403, NULL, "cross-origin event stream refused: the Origin is neither this "
                       "host nor one of the server's origins");
        return;
    }
    const char *q = memchr(req->target, '?', req->target_len);
    char offers[DX_SSE_OFFERS];
    dx_upgrade up;
    memset(&up, 0, sizeof up);
    up.path = req->target;
    up.path_len = q ? (size_t)(q - req->target) : req->target_len;
    up.query = q ? q + 1 : NULL;
    up.query_len = q ? req->target_len - up.path_len - 1 : 0;
    up.offers = offers;
    up.offers_len = decode_offers(req, offers, sizeof offers);
    dx_accept acc;
    memset(&acc, 0, sizeof acc);
    char body[512] = "";
    int status = s->ev.upgrade(s->ud, c, req, &up, &acc, body, sizeof body);
    if (c->state != DX_HANDSHAKE)            /* the server shut down meanwhile */
        return;
    if (status != 0) {
        dx_conn_refuse(c, status, NULL, body[0] ? body : NULL);
        return;
    }
    dx_conn_rare *r = dx_conn_rare_get(c);
    dx_sse *x = r ? calloc(1, sizeof *x) : NULL;
    uint8_t rnd[(DX_SSE_ID - DX_SSE_WORKER) / 2];
    int ok = x && getrandom(rnd, sizeof rnd, 0) == (ssize_t)sizeof rnd;
    if (ok) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < DX_SSE_WORKER; i++)       /* the worker, then what nobody can guess */
            x->id[i] = hex[(s->worker >> (4 * (DX_SSE_WORKER - 1 - i))) & 15];
        for (size_t i = 0; i < sizeof rnd; i++) {
            x->id[DX_SSE_WORKER + 2 * i] = hex[rnd[i] >> 4];
            x->id[DX_SSE_WORKER + 2 * i + 1] = hex[rnd[i] & 15];
        }
        ok = table_add(s, x) == 0;
    }
    if (!ok) {
        free(x);
        if (r)
            dx_conn_rare_trim(c);
        dx_conn_refuse(c, 500, NULL, NULL);
        return;
    }
    x->conn = c;
    r->sse = x;

    char out[2048], allow[512];
    cors(req, allow, sizeof allow);
    size_t n = (size_t)snprintf(out, sizeof out,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache, no-store\r\n"
        "X-Accel-Buffering: no\r\n%sConnection: close\r\n\r\n"
        ": duplex session\n\ndata: o{\"session\":\"%.*s\",\"protocol\":", allow, DX_SSE_ID, x->id);
    json_string(out, sizeof out, &n, acc.protocol);
    int w = snprintf(out + n, sizeof out - n, ",\"max\":%llu,\"ping\":%g}\n\n",
                     (unsigned long long)s->cfg.max_message, s->cfg.ping_interval);
    n += w > 0 ? (size_t)w : 0;
    uint8_t *p = dx_out_reserve(c, n);
    if (p == NULL) {
        dx_conn_refuse(c, 500, NULL, NULL);
        return;
    }
    memcpy(p, out, n);
    x->raw = n;
    free(c->buf);                            /* req lived there: it is not needed any more */
    c->buf = NULL;
    c->buf_len = c->buf_cap = 0;
    c->state = DX_OPEN;
    c->opened = 1;
    c->last_rx = ev_now(s->loop);
    s->stats.accepted++;
    dx_conn_arm_timer(c);
    s->ev.open(s->ud, c);
}

/* A decimal number of at most 18 digits, or -1. */
static long long decimal(const char *p, size_t len)
{
    if (len == 0 || len > 18)
        return -1;
    long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* Answers a POST with status (and body, text, when not NULL), its CORS
 * lines allow; returns what dx_sse_post does for it. */
static int respond(dx_conn *c, const char *allow, int status, const char *body, int keep)
{
    static const char taken[] = "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n";
    char headers[600];
    if (status == 204 && keep && !allow[0]) {     /* the common answer, made once */
        uint8_t *p = dx_out_reserve(c, sizeof taken - 1);
        if (p)
            memcpy(p, taken, sizeof taken - 1);
        return 1;
    }
    snprintf(headers, sizeof headers, "%s", allow);
    if (status >= 400)
        c->srv->stats.refused[dx_refused_slot(status)]++;
    size_t len = body ? strlen(body) : 0;
    if (len) {
        size_t h = strlen(headers);
        snprintf(headers + h, sizeof headers - h, "Content-Type: text/plain; charset=utf-8\r\n");
    }
    dx_http_respond(c, status, headers, body, len, 0, keep);
    return keep ? 1 : 2;
}

/* Answers a POST (req); returns what dx_sse_post does for it. */
static int answer(dx_conn *c, const dx_http_request *req, int status, const char *body, int keep)
{
    char allow[512];
    cors(req, allow, sizeof allow);
    return respond(c, allow, status, body, keep);
}

/* Feeds the frames in p to session x's reader, as its socket would. The
 * session may end meanwhile: *code is then the code it was closed with.
 * Returns 1 when the session is still open afterwards. */
static int feed(dx_sse *x, uint8_t *p, size_t n, unsigned *code)
{
    dx_conn *t = x->conn;
    int was_busy = t->busy;
    t->busy = 1;
    dx_reader_take(t, p, n);
    t->busy = (uint8_t)(was_busy & 1);
    *code = t->close_sent;
    int open = t->state == DX_OPEN || t->state == DX_CLOSING;
    if (t->state == DX_DEAD && !t->busy && !t->dirty)
        free(t);
    return open;
}

/* The open session named id, or NULL. */
static dx_sse *session(dx_server *s, const char *id, size_t idlen)
{
    dx_sse *x = table_find(s, id, idlen);
    return x && (x->conn->state == DX_OPEN || x->conn->state == DX_CLOSING) ? x : NULL;
}

/* The worker an id names (its first DX_SSE_WORKER hex digits), or -1 when
 * it is not an id this server would have made. */
static int id_worker(const char *id, size_t len)
{
    if (id == NULL || len != DX_SSE_ID)
        return -1;
    int w = 0;
    for (int i = 0; i < DX_SSE_WORKER; i++) {
        int v = dx_http_hexval(id[i]);
        if (v < 0 || (id[i] >= 'A' && id[i] <= 'F'))
            return -1;
        w = w << 4 | v;
    }
    return w;
}

/* A body too big for a message: session x closes 1009, as a WebSocket
 * would with such a message. */
static void close_too_big(dx_sse *x)
{
    dx_conn *t = x->conn;
    int was_busy = t->busy;
    t->busy = 1;
    dx_conn_fail(t, DX_CLOSE_TOO_BIG, "message too big");
    t->busy = (uint8_t)(was_busy & 1);
    if (t->state == DX_DEAD && !t->busy && !t->dirty)
        free(t);
}

/* What a POST of body (n bytes, the frames; changed in place by the
 * unmasking) with seq (-1: none) does to session x (NULL: none), wherever
 * it came: its status, and for a 4xx the reason in why (cap bytes). Both
 * a local POST and one forwarded by another worker take this path. */
static int take(dx_sse *x, long long seq, uint8_t *body, size_t n, char *why, size_t cap)
{
    why[0] = 0;
    if (x == NULL) {
        snprintf(why, cap, "no such session: unknown, or closed");
        return 404;
    }
    if (seq < 0) {
        snprintf(why, cap, "a POST to a session needs its seq");
        return 400;
    }
    if ((uint64_t)seq < x->next_seq)         /* a retry of one taken: taken once */
        return 204;
    if ((uint64_t)seq > x->next_seq) {
        snprintf(why, cap, "out of order: the session takes seq %llu next", (unsigned long long)x->next_seq);
        return 409;
    }
    x->next_seq++;
    unsigned code = 0;
    int open = feed(x, body, n, &code);
    if (!open && (code == DX_CLOSE_PROTOCOL || code == DX_CLOSE_INVALID_DATA || code == DX_CLOSE_TOO_BIG
                  || code == DX_CLOSE_POLICY)) {
        snprintf(why, cap, "the session was closed %u by this body", code);
        return code == DX_CLOSE_TOO_BIG ? 413 : 400;
    }
    return 204;
}

/* Hands the POST in c->buf (its body at head, len bytes) for session id
 * to its worker, and sets c waiting for the answer; returns what
 * dx_sse_post does (3, or an answer when it cannot go). */
static int forward(dx_conn *c, const dx_http_request *req, unsigned worker, const char *id, uint64_t seq,
                   size_t head, size_t len, int keep)
{
    dx_server *s = c->srv;
    char allow[512];
    cors(req, allow, sizeof allow);
    size_t alen = strlen(allow);
    dx_conn_rare *r = dx_conn_rare_get(c);
    if (s->waiting == NULL)
        s->waiting = calloc(DX_SSE_WAIT_BUCKETS, sizeof *s->waiting);
    dx_sse_wait *w = r && s->waiting ? malloc(sizeof *w + alen + 1) : NULL;
    if (w == NULL || s->ev.forward(s->ud, worker, c->id, id, DX_SSE_ID, seq, c->buf + head, len) < 0) {
        free(w);
        if (r)
            dx_conn_rare_trim(c);
        return respond(c, allow, 503, "the session's worker cannot be reached now", keep);
    }
    w->conn = c;
    w->keep = keep;
    memcpy(w->cors, allow, alen + 1);
    dx_sse_wait **at = &s->waiting[c->id & (DX_SSE_WAIT_BUCKETS - 1)];
    w->next = *at;
    w->pprev = at;
    if (*at)
        (*at)->pprev = &w->next;
    *at = w;
    r->wait = w;
    return 3;
}

int dx_sse_post(dx_conn *c, const dx_http_request *req, size_t head, size_t *used)
{
    dx_server *s = c->srv;
    if (!dx_origin_allowed(req, s->cfg.origins)) {
        dx_limits_origin_refused(c);
        dx_conn_refuse(c, 403, NULL, "cross-origin POST refused: the Origin is neither this host nor one of "
                       "the server's origins");
        return -1;
    }
    const dx_http_header *cl = dx_http_find(req, "content-length");
    long long len = cl ? decimal(cl->value, cl->value_len) : -1;
    if (len < 0 || dx_http_find(req, "transfer-encoding")) {
        dx_conn_refuse(c, 411, NULL, "a POST to a session needs a Content-Length");
        return -1;
    }
    size_t idlen, seqlen;
    const char *id = query_param(req, "duplex_session", &idlen);
    const char *seqp = query_param(req, "seq", &seqlen);
    dx_sse *x = session(s, id, idlen);
    int remote = -1;                         /* another worker's session: it is asked */
    if (x == NULL && s->ev.forward && s->worker) {   /* a worker (1..N) of --workers N */
        remote = id_worker(id, idlen);
        if (remote == 0 || remote == (int)s->worker)
            remote = -1;
    }
    if ((uint64_t)len > s->cfg.max_message + DX_FRAME_HEADER_MAX) {
        if (x)                               /* what a WebSocket would do with such a message */
            close_too_big(x);
        else if (remote >= 0)                /* its worker does it (token 0: no answer waited for) */
            s->ev.forward(s->ud, (unsigned)remote, 0, id, DX_SSE_ID, DX_SSE_TOO_BIG, NULL, 0);
        dx_conn_refuse(c, 413, NULL, "body larger than one message of max_message: the session is closed 1009");
        return -1;
    }
    size_t need = head + (size_t)len;
    if (x == NULL && remote < 0 && c->buf_len < need) {
        /* known from the head: a body still to come is neither waited
         * for nor kept (anyone may POST) */
        dx_conn_refuse(c, 404, NULL, "no such session: unknown, or closed");
        return -1;
    }
    if (c->buf_len < need) {                 /* the body is still coming: c->buf grows as it does */
        const dx_http_header *ex = c->request_need ? NULL : dx_http_find(req, "expect");
        if (ex && ex->value_len == 12 && strncasecmp(ex->value, "100-continue", 12) == 0) {
            static const char go[] = "HTTP/1.1 100 Continue\r\n\r\n";   /* the client waits for it */
            uint8_t *p = dx_out_reserve(c, sizeof go - 1);
            if (p)
                memcpy(p, go, sizeof go - 1);
        }
        c->request_need = need;
        return 0;
    }
    c->request_need = 0;
    *used = need;
    int keep = req->minor_version >= 1;
    const dx_http_header *conn_h = dx_http_find(req, "connection");
    if (conn_h && dx_http_has_token(conn_h->value, conn_h->value_len, "close"))
        keep = 0;
    long long seq = seqp ? decimal(seqp, seqlen) : -1;
    if (remote >= 0) {
        if (seq < 0)
            return answer(c, req, 400, "a POST to a session needs its seq", keep);
        return forward(c, req, (unsigned)remote, id, (uint64_t)seq, head, (size_t)len, keep);
    }
    char why[96];
    int status = take(x, seq, c->buf + head, (size_t)len, why, sizeof why);
    if (c->state != DX_HANDSHAKE)            /* the server shut down meanwhile */
        return -1;
    return answer(c, req, status, why[0] ? why : NULL, keep);
}

/* ---- POSTs between workers ---- */

void dx_server_forward_answer(dx_server *s, uint64_t token, int status, const char *text, size_t len)
{
    dx_sse_wait *w = s->waiting ? s->waiting[token & (DX_SSE_WAIT_BUCKETS - 1)] : NULL;
    while (w && w->conn->id != token)
        w = w->next;
    if (w == NULL)
        return;                              /* its connection is gone */
    dx_conn *c = w->conn;
    char allow[512], body[256];
    int keep = w->keep;
    snprintf(allow, sizeof allow, "%s", w->cors);
    wait_unlink(c);
    dx_conn_rare_trim(c);
    if (c->state != DX_HANDSHAKE)
        return;
    if (status < 200 || status > 599)
        status = 502;
    snprintf(body, sizeof body, "%.*s", (int)(len < sizeof body ? len : sizeof body - 1), text ? text : "");
    if (respond(c, allow, status, body[0] ? body : NULL, keep) == 2) {
        dx_conn_linger(c, 1);
        return;
    }
    /* c stays paused: dx_out_flush resumes reading once the answer went */
    c->accepted_at = ev_now(s->loop);
    dx_conn_arm_timer(c);
}

void dx_server_forward_fail(dx_server *s, int status, const char *text)
{
    for (size_t i = 0; s->waiting && i < DX_SSE_WAIT_BUCKETS; i++)
        while (s->waiting[i])                /* each answer takes its wait off the chain */
            dx_server_forward_answer(s, s->waiting[i]->conn->id, status, text, strlen(text));
}

int dx_server_forwarded_post(dx_server *s, const char *id, size_t idlen, uint64_t seq, const uint8_t *body,
                             size_t len, char *text, size_t cap)
{
    dx_sse *x = session(s, id, idlen);
    text[0] = 0;
    if (x && (seq == DX_SSE_TOO_BIG || len > s->cfg.max_message + DX_FRAME_HEADER_MAX)) {
        close_too_big(x);
        snprintf(text, cap, "body larger than one message of max_message: the session is closed 1009");
        return 413;
    }
    uint8_t *copy = len ? malloc(len) : NULL;   /* unmasked in place: body is the caller's */
    if (len && copy == NULL) {
        snprintf(text, cap, "out of memory");
        return 503;
    }
    if (len)
        memcpy(copy, body, len);
    int status = take(x, seq > (uint64_t)INT64_MAX ? -1 : (long long)seq, copy, len, text, cap);
    free(copy);
    return status;
}

/* ---- down: frames to events ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_group(uint8_t *out, const uint8_t *g, size_t n)
{
    uint32_t v = (uint32_t)g[0] << 16 | (n > 1 ? (uint32_t)g[1] << 8 : 0) | (n > 2 ? g[2] : 0);
    out[0] = (uint8_t)b64[v >> 18];
    out[1] = (uint8_t)b64[(v >> 12) & 63];
    out[2] = (uint8_t)(n > 1 ? b64[(v >> 6) & 63] : '=');
    out[3] = (uint8_t)(n > 2 ? b64[v & 63] : '=');
    return 4;
}

/* Encodes up to n payload bytes at p into out (room bytes): lines for
 * text, base64 (whole groups, the rest kept in carry) for the others.
 * Returns the bytes written; *took the payload bytes taken. */
static size_t encode_payload(dx_sse *x, const uint8_t *p, size_t n, uint8_t *out, size_t room,
                             size_t *took)
{
    size_t o = 0, i = 0;
    if (x->text) {
        while (i < n && o < room) {
            const uint8_t *nl = memchr(p + i, '\n', n - i);
            size_t run = (nl ? (size_t)(nl - p) : n) - i;
            if (run > room - o)
                run = room - o;
            memcpy(out + o, p + i, run);
            o += run;
            i += run;
            if (i < n && p[i] == '\n') {
                if (room - o < 7)
                    break;
                memcpy(out + o, "\ndata: ", 7);
                o += 7;
                i++;
            }
        }
        *took = i;
        return o;
    }
    while (i < n && room - o >= 4) {
        if (x->ncarry || n - i < 3) {
            while (x->ncarry < 3 && i < n)
                x->carry[x->ncarry++] = p[i++];
            if (x->ncarry == 3) {
                o += b64_group(out + o, x->carry, 3);
                x->ncarry = 0;
            }
            continue;
        }
        size_t groups = (n - i) / 3;
        if (groups > (room - o) / 4)
            groups = (room - o) / 4;
        for (size_t g = 0; g < groups; g++, i += 3)
            o += b64_group(out + o, p + i, 3);
    }
    *took = i;
    return o;
}

/* The event's kind for frame h, whose payload starts at p when the bytes
 * there hold it whole (else p is NULL). */
static char kind_of(const dx_frame_header *h, const uint8_t *p)
{
    switch (h->opcode) {
    case DX_OP_TEXT: return p && !memchr(p, '\r', (size_t)h->length) ? 't' : 'T';
    case DX_OP_BINARY: return 'b';
    case DX_OP_PING: return 'p';
    case DX_OP_PONG: return 'q';
    case DX_OP_CLOSE: return 'c';
    default: return 'b';
    }
}

/* Encodes the queue from its head into out (at most cap bytes), without
 * consuming it. Returns the bytes written; *src the queue bytes they stand
 * for. */
static size_t encode(dx_conn *c, dx_sse *x, uint8_t *out, size_t cap, size_t *src)
{
    size_t o = 0, taken = 0;
    const size_t slack = 16;                 /* an event's prefix or end always fits */
    dx_out *piece = c->out.head;
    size_t off = piece ? piece->off : 0;
    while (piece && o + slack < cap) {
        const uint8_t *p = DX_OUT_BYTES(piece) + off;
        size_t n = piece->len - off, used;
        if (n == 0) {
            piece = piece->next;
            off = piece ? piece->off : 0;
            continue;
        }
        if (x->raw) {
            used = n < x->raw ? n : x->raw;
            if (used > cap - o)
                used = cap - o;
            memcpy(out + o, p, used);
            o += used;
            x->raw -= used;
        } else if (!x->in_frame) {
            size_t room = (size_t)DX_FRAME_HEADER_MAX - x->hdr_len;
            size_t add = room < n ? room : n;
            memcpy(x->hdr + x->hdr_len, p, add);
            dx_frame_header h;
            int r = dx_frame_parse_header(x->hdr, x->hdr_len + add, DX_RSV1, 0, &h);
            if (r <= 0) {                    /* more to come (r < 0 never is: the writer made it) */
                x->hdr_len = r == 0 ? (uint8_t)(x->hdr_len + add) : 0;
                used = add;
            } else {
                used = (size_t)r - x->hdr_len;
                x->hdr_len = 0;
                const uint8_t *pay = n - used >= h.length ? p + used
                    : n == used && piece->next && piece->next->len - piece->next->off >= h.length
                    ? DX_OUT_BYTES(piece->next) + piece->next->off : NULL;
                char kind = kind_of(&h, pay);
                x->text = kind == 't';
                x->left = h.length;
                x->in_frame = 1;
                x->ncarry = 0;
                memcpy(out + o, "data: ", 6);
                out[o + 6] = (uint8_t)kind;
                o += 7;
            }
        } else {
            size_t want = x->left < n ? (size_t)x->left : n;
            o += encode_payload(x, p, want, out + o, cap - slack - o, &used);
            x->left -= used;
            if (used == 0 && want)
                break;
        }
        if (used == 0)                       /* no room for more of it */
            break;
        off += used;
        taken += used;
        if (x->in_frame && x->left == 0) {   /* the event ends */
            if (x->ncarry) {
                o += b64_group(out + o, x->carry, x->ncarry);
                x->ncarry = 0;
            }
            out[o++] = '\n';
            out[o++] = '\n';
            x->in_frame = 0;
        }
    }
    *src = taken;
    return o;
}

int dx_sse_flush(dx_conn *c)
{
    dx_server *s = c->srv;
    dx_sse *x = c->rare->sse;
    for (;;) {
        if (x->pend) {
            long w = dx_sink_write(c, x->pend + x->pend_off, x->pend_len - x->pend_off);
            if (w < 0)
                return -1;
            x->pend_off += (size_t)w;
            if (x->pend_off < x->pend_len)
                return 1;
            free(x->pend);
            x->pend = NULL;
            dx_out_consume(c, x->pend_src);
        }
        if (c->out.head == NULL)
            return 0;
        if (s->sse_stage == NULL && (s->sse_stage = malloc(DX_SSE_STAGE)) == NULL) {
            dx_conn_lost(c);
            return -1;
        }
        size_t src, len = encode(c, x, s->sse_stage, DX_SSE_STAGE, &src);
        if (len == 0 && src == 0) {          /* never: a queue the encoder cannot move is a bug */
            dx_conn_lost(c);
            return -1;
        }
        long w = len ? dx_sink_write(c, s->sse_stage, len) : 0;
        if (w < 0)
            return -1;
        if ((size_t)w == len) {
            dx_out_consume(c, src);
            continue;
        }
        /* The socket is full: what it did not take waits here. */
        x->pend_len = len - (size_t)w;
        x->pend = malloc(x->pend_len);
        if (x->pend == NULL) {
            dx_conn_lost(c);
            return -1;
        }
        memcpy(x->pend, s->sse_stage + w, x->pend_len);
        x->pend_off = 0;
        x->pend_src = src;
        return 1;
    }
}
