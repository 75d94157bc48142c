/* permessage-deflate (RFC 7692): see pmd.h. */
#define ZLIB_CONST              /* next_in is const: no casts on our inputs */
#include "pmd.h"
#include "http.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Compression level for outgoing messages. Level 1 (deflate_fast, no lazy
 * matching) costs a fraction of the default level 6 for a few percent
 * worse ratio on text; a server compresses far more than it inflates, and
 * typical messages are small JSON, where the level hardly changes the size. */
#ifndef DX_PMD_LEVEL
#define DX_PMD_LEVEL 1
#endif

#define DX_PMD_CHUNK (16 * 1024)      /* inflate output piece, on the stack */

static const uint8_t dx_pmd_tail[4] = { 0x00, 0x00, 0xff, 0xff };

/* ---- negotiation: RFC 6455 9.1 extension lists -------------------------- */

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* s[0..n) equals the NUL-terminated lowercase word w, ignoring case. */
static int word_is(const char *s, size_t n, const char *w)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (w[i] == 0 || lower((unsigned char)s[i]) != w[i])
            return 0;
    return w[i] == 0;
}

/* A cursor over one field value. */
typedef struct cur { const char *p, *end; } cur;

static void skip_ows(cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

/* Takes a token at the cursor; its length, 0 when there is none. */
static size_t take_token(cur *c, const char **start)
{
    *start = c->p;
    while (c->p < c->end && dx_http_is_tchar((unsigned char)*c->p))
        c->p++;
    return (size_t)(c->p - *start);
}

/* A parameter value, token or quoted-string, after unquoting: its length
 * and its first bytes (enough to read a window size). */
typedef struct val { int present; size_t len; char head[3]; } val;

static void val_add(val *v, char ch)
{
    if (v->len < sizeof v->head)
        v->head[v->len] = ch;
    v->len++;
}

/* Takes a value at the cursor (after "=" and OWS). RFC 6455 9.1: a
 * quoted-string must unquote to a token. 0, or -1 when malformed. */
static int take_value(cur *c, val *v)
{
    v->present = 1;
    v->len = 0;
    if (c->p < c->end && *c->p == '"') {
        c->p++;
        for (;;) {
            unsigned char ch;

            if (c->p == c->end)
                return -1;                      /* unterminated */
            ch = (unsigned char)*c->p++;
            if (ch == '"')
                break;
            if (ch == '\\') {
                if (c->p == c->end)
                    return -1;
                ch = (unsigned char)*c->p++;
            }
            if (!dx_http_is_tchar(ch))
                return -1;                      /* not a token once unquoted */
            val_add(v, (char)ch);
        }
        return v->len ? 0 : -1;
    }
    while (c->p < c->end && dx_http_is_tchar((unsigned char)*c->p))
        val_add(v, *c->p++);
    return v->len ? 0 : -1;
}

/* A window size 8..15 written without sign or leading zero; -1 otherwise. */
static int window_value(const val *v)
{
    if (v->len == 1 && (v->head[0] == '8' || v->head[0] == '9'))
        return v->head[0] - '0';
    if (v->len == 2 && v->head[0] == '1' && v->head[1] >= '0' && v->head[1] <= '5')
        return 10 + (v->head[1] - '0');
    return -1;
}

/* What one permessage-deflate offer asked for. */
enum { P_SNCT = 1, P_CNCT = 2, P_SMWB = 4, P_CMWB = 8 };

typedef struct offer {
    int ok;             /* still acceptable */
    unsigned seen;      /* P_* */
    int smwb, cmwb;     /* values; cmwb 0 when offered without one */
} offer;

static void offer_param(offer *o, const char *name, size_t n, const val *v)
{
    unsigned bit;
    int w = v->present ? window_value(v) : 0;

    if (word_is(name, n, "server_no_context_takeover"))
        bit = P_SNCT;
    else if (word_is(name, n, "client_no_context_takeover"))
        bit = P_CNCT;
    else if (word_is(name, n, "server_max_window_bits"))
        bit = P_SMWB;
    else if (word_is(name, n, "client_max_window_bits"))
        bit = P_CMWB;
    else
        bit = 0;

    if (bit == 0 || (o->seen & bit)) {          /* unknown or repeated */
        o->ok = 0;
        return;
    }
    o->seen |= bit;
    switch (bit) {
    case P_SNCT:
    case P_CNCT:
        if (v->present)
            o->ok = 0;
        break;
    case P_SMWB:
        if (w < 9)                              /* none, bad, or 8 (zlib cannot) */
            o->ok = 0;
        o->smwb = w;
        break;
    default:                                    /* P_CMWB: value optional */
        if (w < 0)
            o->ok = 0;
        o->cmwb = w;
        break;
    }
}

/* Decides what to agree to for an acceptable offer. */
static void agree(const offer *o, const dx_pmd_config *cfg, dx_pmd_params *out,
                  unsigned *say)
{
    int cap = 15;

    if (cfg->mode == DX_PMD_DEDICATED) {
        cap = cfg->window_bits < 9 ? 9 : cfg->window_bits > 15 ? 15 : cfg->window_bits;
        out->server_no_context_takeover = (o->seen & P_SNCT) != 0;
        out->client_no_context_takeover = (o->seen & P_CNCT) != 0;
    } else {
        out->server_no_context_takeover = 1;
        out->client_no_context_takeover = 1;
    }
    out->server_window_bits = (uint8_t)cap;
    if ((o->seen & P_SMWB) && o->smwb < cap)
        out->server_window_bits = (uint8_t)o->smwb;
    out->client_window_bits = 15;
    if ((o->seen & P_CMWB) && o->cmwb)
        out->client_window_bits = (uint8_t)o->cmwb;

    *say = o->seen & P_SMWB;
    if (out->server_no_context_takeover)
        *say |= P_SNCT;
    if (out->client_no_context_takeover)
        *say |= P_CNCT;
    if (cfg->mode == DX_PMD_DEDICATED && (o->seen & P_CMWB)) {
        /* Ask the client for no bigger a window than we want to keep. */
        if (out->client_window_bits > cap)
            out->client_window_bits = (uint8_t)cap;
        *say |= P_CMWB;
    }
}

/* Parses one field value, 1#extension. The first acceptable
 * permessage-deflate offer (when *found is still 0) is agreed into out and
 * say. Empty list elements are ignored (RFC 9110 5.6.1). 0, or -1 when the
 * value is malformed. */
static int parse_field(const char *s, size_t len, const dx_pmd_config *cfg,
                       int *found, dx_pmd_params *out, unsigned *say)
{
    cur c = { s, s + len };

    for (;;) {
        const char *name;
        size_t n;
        int ours;
        offer o = { 1, 0, 0, 0 };

        skip_ows(&c);
        if (c.p == c.end)
            return 0;
        if (*c.p == ',') {                      /* empty element */
            c.p++;
            continue;
        }
        n = take_token(&c, &name);
        if (n == 0)
            return -1;
        ours = word_is(name, n, "permessage-deflate");
        skip_ows(&c);
        while (c.p < c.end && *c.p == ';') {
            const char *pname;
            size_t pn;
            val v = { 0, 0, { 0 } };

            c.p++;
            skip_ows(&c);
            pn = take_token(&c, &pname);
            if (pn == 0)
                return -1;
            skip_ows(&c);
            if (c.p < c.end && *c.p == '=') {
                c.p++;
                skip_ows(&c);
                if (take_value(&c, &v) < 0)
                    return -1;
                skip_ows(&c);
            }
            if (ours)
                offer_param(&o, pname, pn, &v);
        }
        if (c.p < c.end && *c.p != ',')
            return -1;
        if (ours && o.ok && !*found) {
            agree(&o, cfg, out, say);
            *found = 1;
        }
    }
}

static int is_extensions_header(const dx_http_header *h)
{
    return word_is(h->name, h->name_len, "sec-websocket-extensions");
}

/* Writes the response value for the agreed parameters; 0 when it does not
 * fit in cap. */
static int write_response(const dx_pmd_params *p, unsigned say, char *resp, size_t cap)
{
    char tmp[DX_PMD_RESPONSE_MAX];
    size_t n = 0;

    n += (size_t)snprintf(tmp + n, sizeof tmp - n, "permessage-deflate");
    if (say & P_SNCT)
        n += (size_t)snprintf(tmp + n, sizeof tmp - n, "; server_no_context_takeover");
    if (say & P_CNCT)
        n += (size_t)snprintf(tmp + n, sizeof tmp - n, "; client_no_context_takeover");
    if (say & P_SMWB)
        n += (size_t)snprintf(tmp + n, sizeof tmp - n, "; server_max_window_bits=%d",
                              p->server_window_bits);
    if (say & P_CMWB)
        n += (size_t)snprintf(tmp + n, sizeof tmp - n, "; client_max_window_bits=%d",
                              p->client_window_bits);
    if (n >= cap)
        return 0;
    memcpy(resp, tmp, n + 1);
    return 1;
}

int dx_pmd_negotiate(const dx_http_request *req, const dx_pmd_config *cfg,
                     dx_pmd_params *out, char *resp, size_t cap)
{
    dx_pmd_params p;
    unsigned say = 0;
    int found = 0;

    memset(&p, 0, sizeof p);
    if (cap > 0)
        resp[0] = 0;
    if (cfg->mode != DX_PMD_SHARED && cfg->mode != DX_PMD_DEDICATED)
        return 0;                   /* off: the field is not ours to judge */
    /* The whole list is checked even when an offer is already agreed: a
     * malformed field anywhere makes the request bad. */
    for (size_t i = 0; i < req->num_headers; i++) {
        const dx_http_header *h = &req->headers[i];

        if (is_extensions_header(h) &&
            parse_field(h->value, h->value_len, cfg, &found, &p, &say) < 0)
            return -1;
    }
    if (!found)
        return 0;
    if (!write_response(&p, say, resp, cap))
        return 0;
    *out = p;
    return 1;
}

/* ---- inflate ----------------------------------------------------------- */

int dx_pmd_inflate_init(z_stream *z, int window_bits)
{
    if (window_bits < 9)
        window_bits = 9;     /* a bigger window inflates anything a smaller one made */
    if (window_bits > 15)
        window_bits = 15;
    memset(z, 0, sizeof *z);
    return inflateInit2(z, -window_bits) == Z_OK ? 0 : -1;
}

/* Starts a new deflate stream after one ended with BFINAL, keeping the
 * window: with context takeover the next message may still refer to it
 * (and without, it is never referred to). 0, or 1011. */
static int inflate_restart(z_stream *z)
{
    Bytef win[32768];
    uInt n = sizeof win;

    if (inflateGetDictionary(z, win, &n) != Z_OK)
        n = 0;
    if (inflateReset(z) != Z_OK)
        return 1011;
    if (n > 0 && inflateSetDictionary(z, win, n) != Z_OK)
        return 1011;
    return 0;
}

/* Inflates in[0..len) with flush mode flush, handing output to sink.
 * Returns 0 when all input is taken (or the stream ended: *ended is then
 * set and the rest is left), the sink's code, 1007 on bad data (z is reset)
 * or 1011 when zlib is out of memory.
 *
 * Progress: each round gives inflate a fresh 16 KiB of output; a round that
 * neither takes input nor gives output returns Z_BUF_ERROR, which ends the
 * loop, so it cannot spin. */
static int feed(z_stream *z, const uint8_t *in, size_t len, int flush,
                dx_pmd_sink sink, void *ud, int *ended)
{
    uint8_t buf[DX_PMD_CHUNK];

    for (;;) {
        uInt avail = len > UINT_MAX ? UINT_MAX : (uInt)len;
        size_t got;
        int ret;

        z->next_in = in;
        z->avail_in = avail;
        z->next_out = buf;
        z->avail_out = sizeof buf;
        ret = inflate(z, flush);
        in += avail - z->avail_in;
        len -= avail - z->avail_in;
        got = sizeof buf - z->avail_out;
        z->next_in = NULL;          /* keep no pointer into the caller's bytes */
        z->avail_in = 0;
        if (got > 0) {
            int rc = sink(ud, buf, got);

            if (rc != 0)
                return rc;
        }
        switch (ret) {
        case Z_OK:
            break;
        case Z_STREAM_END:
            *ended = 1;
            return 0;
        case Z_BUF_ERROR:           /* no progress possible: wants more input */
            return 0;
        case Z_MEM_ERROR:
            return 1011;
        default:                    /* Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR */
            inflateReset(z);
            return 1007;
        }
        if (len == 0 && got < sizeof buf)
            return 0;               /* all taken, nothing held back */
    }
}

/* z->total_in counts the compressed bytes of the current message only: it
 * is set back to 0 at each message's end (zlib only adds to it). */
int dx_pmd_inflate(z_stream *z, const uint8_t *in, size_t len, int final,
                   dx_pmd_sink sink, void *ud)
{
    int ended = 0;
    int rc = len > 0 ? feed(z, in, len, Z_SYNC_FLUSH, sink, ud, &ended) : 0;

    if (rc != 0 || !final)
        return rc;
    if (!ended) {
        if (z->total_in == 0)
            return 0;       /* no payload at all: an empty message, z untouched */
        /* Z_BLOCK stops right after the empty stored block the tail
         * completes, so we see that the message ended on a block boundary,
         * as RFC 7692 7.2.1 requires of every message. If the stream had
         * ended (BFINAL) in an earlier piece, inflate answers Z_STREAM_END
         * at once and takes nothing. */
        rc = feed(z, dx_pmd_tail, sizeof dx_pmd_tail, Z_BLOCK, sink, ud, &ended);
        if (rc != 0)
            return rc;
        if (!ended && !(z->data_type & 128)) {
            inflateReset(z);
            return 1007;
        }
        /* The tail completed a block that was the last one (BFINAL): Z_BLOCK
         * stopped before inflate saw the stream end, but it has ended. */
        if (!ended && (z->data_type & 64))
            ended = 1;
    }
    z->total_in = 0;
    return ended ? inflate_restart(z) : 0;
}

/* ---- deflate ----------------------------------------------------------- */

int dx_pmd_deflate_init(z_stream *z, int window_bits, int mem_level)
{
    if (window_bits < 9)
        window_bits = 9;
    if (window_bits > 15)
        window_bits = 15;
    if (mem_level < 1)
        mem_level = 1;
    if (mem_level > 9)
        mem_level = 9;
    memset(z, 0, sizeof *z);
    return deflateInit2(z, DX_PMD_LEVEL, Z_DEFLATED, -window_bits, mem_level,
                        Z_DEFAULT_STRATEGY) == Z_OK ? 0 : -1;
}

/* deflateBound() is for one deflate() call ending in Z_FINISH. We end
 * with Z_SYNC_FLUSH instead: the last block is the same but not marked
 * final, then an empty stored block follows (3 bits, padding to a byte,
 * 00 00 FF FF: at most 5 bytes, 4 of which are stripped again). Each
 * message starts byte-aligned with nothing pending, since the previous one
 * ended in a sync flush. dx_pmd_deflate also needs one byte of room beyond
 * what it writes (a full buffer does not tell whether zlib holds more). So
 * deflateBound + 16 leaves room to spare; test_pmd checks it against
 * incompressible input for every window and memLevel. */
#define DX_PMD_BOUND_SLACK 16

size_t dx_pmd_deflate_bound(const z_stream *z, size_t len)
{
    uLong b;

    if (len > (size_t)-1 / 2)
        return (size_t)-1;
    b = deflateBound((z_streamp)z, (uLong)len);
    if (b > (size_t)-1 - DX_PMD_BOUND_SLACK)
        return (size_t)-1;
    return (size_t)b + DX_PMD_BOUND_SLACK;
}

/* On failure the stream may hold part of a message the peer will never
 * see, so it is reset: the next message cannot refer to that part. */
size_t dx_pmd_deflate(z_stream *z, const uint8_t *in, size_t len,
                      uint8_t *out, size_t cap, int reset)
{
    size_t done = 0;

    if (reset && deflateReset(z) != Z_OK)
        return 0;
    for (;;) {
        uInt ai = len > UINT_MAX ? UINT_MAX : (uInt)len;
        uInt ao = cap - done > UINT_MAX ? UINT_MAX : (uInt)(cap - done);
        int flush = ai == len ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        size_t took, gave;
        int ret;

        z->next_in = in;
        z->avail_in = ai;
        z->next_out = out + done;
        z->avail_out = ao;
        ret = deflate(z, flush);
        took = ai - z->avail_in;
        gave = ao - z->avail_out;
        in += took;
        len -= took;
        done += gave;
        z->next_in = NULL;
        z->avail_in = 0;
        z->next_out = NULL;
        z->avail_out = 0;
        if (ret != Z_OK && ret != Z_BUF_ERROR)
            goto fail;
        if (took == 0 && gave == 0) {
            /* A sync flush right after another with no input gives
             * nothing (Z_BUF_ERROR): an empty message in a stream with
             * context takeover. The stream is byte-aligned after the last
             * flush, so one 0x00 byte (an empty stored block, tail
             * stripped) is what deflate would have written. */
            if (len == 0 && done == 0 && cap > 0) {
                out[0] = 0x00;
                return 1;
            }
            goto fail;              /* out of room */
        }
        if (flush == Z_SYNC_FLUSH && len == 0 && gave < ao)
            break;                  /* flushed, nothing pending */
    }
    if (done < sizeof dx_pmd_tail ||
        memcmp(out + done - sizeof dx_pmd_tail, dx_pmd_tail, sizeof dx_pmd_tail) != 0)
        goto fail;
    return done - sizeof dx_pmd_tail;

fail:
    deflateReset(z);
    return 0;
}
