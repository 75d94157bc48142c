/* Fuzz target: the HTTP request head parser and the handshake built on it.
 *
 * Input: one control byte, then the bytes a client sent. The control byte
 * picks where the input is split for the incremental parse and the step of
 * a second, chunked one. Checks:
 *  - dx_http_parse_request on the whole input, on the input in two pieces
 *    (the first piece in a block of exactly its size, the second call with
 *    prev_len), and in fixed steps give the same result (differential);
 *  - the contract: after INCOMPLETE/BAD/TOO_MANY num_headers still holds the
 *    capacity; on success every pointer lies inside the head, names are
 *    tokens, values hold no CR or LF, dx_http_find finds each name;
 *  - dx_handshake_check on a parsed head answers 0, 400 or 426, and on 0 its
 *    pointers lie inside the head and the key is 24 bytes;
 *  - dx_handshake_response and dx_http_error_response write exactly what
 *    they return into blocks of exactly that size, return 0 one byte short,
 *    and refuse a protocol that is not a token. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "handshake.h"
#include "http.h"

#define NHEADERS 24            /* capacity: small enough for TOO_MANY to happen */

/* Everything a parse yields, as offsets, so that parses of copies compare. */
typedef struct parse_result {
    int rc;
    size_t method, method_len, target, target_len, num_headers;
    int minor_version;
    size_t name[NHEADERS], name_len[NHEADERS], value[NHEADERS], value_len[NHEADERS];
} parse_result;

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void in_head(const char *base, size_t head, const char *p, size_t len)
{
    FUZZ_CHECK(p >= base && (size_t)(p - base) <= head && len <= head - (size_t)(p - base));
}

/* Records the outcome of a parse of base[..] into *out, checking the
 * contract on the way. */
static void record(const char *base, size_t len, int rc, const dx_http_request *req,
                   const dx_http_header *headers, parse_result *out)
{
    memset(out, 0, sizeof *out);
    out->rc = rc;
    if (rc < 0) {
        FUZZ_CHECK(rc == DX_HTTP_INCOMPLETE || rc == DX_HTTP_BAD || rc == DX_HTTP_TOO_MANY);
        FUZZ_CHECK(req->num_headers == NHEADERS);
        return;
    }
    FUZZ_CHECK(rc > 0 && (size_t)rc <= len);
    FUZZ_CHECK(base[rc - 1] == '\n');
    FUZZ_CHECK(req->headers == headers && req->num_headers <= NHEADERS);
    FUZZ_CHECK(req->minor_version >= 0 && req->minor_version <= 9);
    FUZZ_CHECK(req->method_len > 0 && req->target_len > 0);
    in_head(base, (size_t)rc, req->method, req->method_len);
    in_head(base, (size_t)rc, req->target, req->target_len);
    for (size_t i = 0; i < req->method_len; i++)
        FUZZ_CHECK(is_tchar((unsigned char)req->method[i]));
    out->method = (size_t)(req->method - base);
    out->method_len = req->method_len;
    out->target = (size_t)(req->target - base);
    out->target_len = req->target_len;
    out->minor_version = req->minor_version;
    out->num_headers = req->num_headers;
    for (size_t i = 0; i < req->num_headers; i++) {
        const dx_http_header *h = &headers[i];
        char name[64];

        FUZZ_CHECK(h->name_len > 0);
        in_head(base, (size_t)rc, h->name, h->name_len);
        in_head(base, (size_t)rc, h->value, h->value_len);
        for (size_t j = 0; j < h->name_len; j++)
            FUZZ_CHECK(is_tchar((unsigned char)h->name[j]));
        for (size_t j = 0; j < h->value_len; j++)
            FUZZ_CHECK(h->value[j] != '\r' && h->value[j] != '\n' && h->value[j] != 0);
        if (h->value_len) {
            FUZZ_CHECK(h->value[0] != ' ' && h->value[0] != '\t');
            FUZZ_CHECK(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
        }
        if (h->name_len < sizeof name) {
            const dx_http_header *f;

            memcpy(name, h->name, h->name_len);
            name[h->name_len] = 0;
            f = dx_http_find(req, name);
            FUZZ_CHECK(f != NULL && f <= h && f->name_len == h->name_len);
        }
        out->name[i] = (size_t)(h->name - base);
        out->name_len[i] = h->name_len;
        out->value[i] = (size_t)(h->value - base);
        out->value_len[i] = h->value_len;
    }
}

static void init_req(dx_http_request *req, dx_http_header *headers)
{
    memset(req, 0, sizeof *req);
    req->headers = headers;
    req->num_headers = NHEADERS;
}

/* Checks that a response writer fills exactly n bytes when given a block of
 * exactly n, and returns 0 one byte short; call_with_cap is the call, written
 * with out_ and cap_ for its buffer and capacity. */
#define CHECK_EXACT(n, call_with_cap)                                       \
    do {                                                                    \
        char *exact_ = malloc((n) ? (n) : 1);                               \
        FUZZ_CHECK(exact_ != NULL);                                         \
        {                                                                   \
            char *out_ = exact_;                                            \
            size_t cap_ = (n);                                              \
            FUZZ_CHECK((call_with_cap) == (n));                             \
            cap_ = (n) - 1;                                                 \
            FUZZ_CHECK((call_with_cap) == 0);                               \
            (void)out_;                                                     \
        }                                                                   \
        free(exact_);                                                       \
    } while (0)

static void check_error_response(int status, const char *body)
{
    char out[1024];
    size_t n = dx_http_error_response(out, sizeof out, status, body);

    if (status < 400 || status > 599) {
        FUZZ_CHECK(n == 0);
        return;
    }
    if (n == 0)
        return;                            /* a long body: cap too small */
    FUZZ_CHECK(n <= sizeof out && n > 12 && memcmp(out, "HTTP/1.1 ", 9) == 0);
    CHECK_EXACT(n, dx_http_error_response(out_, cap_, status, body));
}

/* The 101 answer for a valid upgrade, with and without a protocol. */
static void check_response(const dx_upgrade *up, uint8_t ctl)
{
    char out[512], proto[80];
    const char *protocol = NULL;
    const char *ext = (ctl & 1) ? "permessage-deflate; client_max_window_bits=15" : NULL;
    size_t n;

    if (up->protocols && up->protocols->value_len < sizeof proto) {
        /* The whole field value, commas and all: the writer must refuse it
         * unless it is a single token. */
        memcpy(proto, up->protocols->value, up->protocols->value_len);
        proto[up->protocols->value_len] = 0;
        protocol = proto;
    }
    n = dx_handshake_response(out, sizeof out, up->key, up->key_len, NULL, ext);
    FUZZ_CHECK(n > 0 && n <= sizeof out);
    FUZZ_CHECK(memcmp(out, "HTTP/1.1 101 ", 13) == 0 && memcmp(out + n - 4, "\r\n\r\n", 4) == 0);
    CHECK_EXACT(n, dx_handshake_response(out_, cap_, up->key, up->key_len, NULL, ext));
    if (protocol) {
        int token = protocol[0] != 0;

        for (const char *p = protocol; *p; p++)
            token &= is_tchar((unsigned char)*p);
        n = dx_handshake_response(out, sizeof out, up->key, up->key_len, protocol, ext);
        FUZZ_CHECK(token ? n > 0 : n == 0);
        if (n)
            CHECK_EXACT(n, dx_handshake_response(out_, cap_, up->key, up->key_len, protocol, ext));
    }
    /* A small cap chosen by the input never overflows. */
    n = dx_handshake_response(out, ctl % 200, up->key, up->key_len, protocol, ext);
    FUZZ_CHECK(n <= ctl % 200);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dx_http_header headers[NHEADERS], h2[NHEADERS], h3[NHEADERS];
    dx_http_request req, req2, req3;
    parse_result whole, split, stepped;
    const char *buf;
    size_t len, cut, step;
    uint8_t ctl;
    int rc;

    if (size < 1)
        return 0;
    ctl = data[0];
    buf = (const char *)data + 1;
    len = size - 1;

    /* Whole. */
    init_req(&req, headers);
    rc = dx_http_parse_request(buf, len, 0, &req);
    record(buf, len, rc, &req, headers, &whole);

    /* Two pieces: the first alone in a block of its size (so an over-read
     * past it faults), then the whole buffer with prev_len. */
    cut = len * ctl / 255;
    init_req(&req2, h2);
    {
        char *first = malloc(cut ? cut : 1);

        FUZZ_CHECK(first != NULL);
        memcpy(first, buf, cut);
        rc = dx_http_parse_request(first, cut, 0, &req2);
        record(first, cut, rc, &req2, h2, &split);
        free(first);
    }
    if (split.rc == DX_HTTP_INCOMPLETE) {
        rc = dx_http_parse_request(buf, len, cut, &req2);
        record(buf, len, rc, &req2, h2, &split);
    }
    FUZZ_CHECK(memcmp(&whole, &split, sizeof whole) == 0);

    /* Fixed steps, as reads of step bytes would arrive. */
    step = 1 + ctl % 17;
    init_req(&req3, h3);
    rc = DX_HTTP_INCOMPLETE;
    for (size_t have = 0, prev = 0; rc == DX_HTTP_INCOMPLETE && have < len; prev = have) {
        have = len - have < step ? len : have + step;
        rc = dx_http_parse_request(buf, have, prev, &req3);
    }
    if (len == 0)
        rc = dx_http_parse_request(buf, 0, 0, &req3);
    record(buf, len, rc, &req3, h3, &stepped);
    FUZZ_CHECK(memcmp(&whole, &stepped, sizeof whole) == 0);

    /* prev_len past len is taken as len. */
    init_req(&req2, h2);
    rc = dx_http_parse_request(buf, len, len, &req2);
    record(buf, len, rc, &req2, h2, &split);
    init_req(&req3, h3);
    rc = dx_http_parse_request(buf, len, len + 1 + ctl, &req3);
    record(buf, len, rc, &req3, h3, &stepped);
    FUZZ_CHECK(memcmp(&split, &stepped, sizeof split) == 0);

    /* What the server answers. */
    if (whole.rc > 0) {
        dx_upgrade up;
        int status = dx_handshake_check(&req, &up);

        FUZZ_CHECK(status == 0 || status == 400 || status == 426);
        if (status == 0) {
            FUZZ_CHECK(up.key_len == 24);
            in_head(buf, (size_t)whole.rc, up.key, up.key_len);
            in_head(buf, (size_t)whole.rc, up.path, up.path_len);
            FUZZ_CHECK(up.path_len > 0 && up.path[0] == '/');
            if (up.query_len)
                in_head(buf, (size_t)whole.rc, up.query, up.query_len);
            FUZZ_CHECK(up.protocols == NULL ||
                       (up.protocols >= headers && up.protocols < headers + req.num_headers));
            FUZZ_CHECK(up.extensions == NULL ||
                       (up.extensions >= headers && up.extensions < headers + req.num_headers));
            check_response(&up, ctl);
        } else {
            char body[64];
            size_t n = req.target_len < sizeof body - 1 ? req.target_len : sizeof body - 1;

            memcpy(body, req.target, n);
            body[n] = 0;
            check_error_response(status, NULL);
            check_error_response(status, body);
        }
    } else if (whole.rc == DX_HTTP_BAD) {
        check_error_response(400, NULL);
    } else if (whole.rc == DX_HTTP_TOO_MANY) {
        check_error_response(431, "too many header fields");
    }
    /* Any status the input names: 0 outside 400..599. */
    if (len >= 2)
        check_error_response((int)((unsigned)(uint8_t)buf[0] << 8 | (uint8_t)buf[1]) % 1000, NULL);
    return 0;
}
