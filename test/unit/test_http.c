/* Unit tests for core/protocol/http.c. */
#include "unit.h"
#include "http.h"

#define CAP 16

static dx_http_header hs[CAP];

static dx_http_request fresh(size_t cap)
{
    dx_http_request r;

    memset(&r, 0, sizeof r);
    r.headers = hs;
    r.num_headers = cap;
    return r;
}

static int parse_cap(const char *s, size_t cap, dx_http_request *r)
{
    *r = fresh(cap);
    return dx_http_parse_request(s, strlen(s), 0, r);
}

static int parse(const char *s)
{
    dx_http_request r;

    return parse_cap(s, CAP, &r);
}

static const char upgrade[] =
    "GET /chat?room=1 HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin:http://example.com\r\n"
    "Sec-WebSocket-Protocol: \t chat, superchat \t\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "X-Empty:\r\n"
    "X-Utf8: caf\xc3\xa9\r\n"
    "\r\n";

static void test_valid(void)
{
    dx_http_request r;
    int n = parse_cap(upgrade, CAP, &r);

    CHECK_EQ(n, (int)strlen(upgrade));
    CHECK_MEM(r.method, "GET", r.method_len);
    CHECK_MEM(r.target, "/chat?room=1", r.target_len);
    CHECK_EQ(r.minor_version, 1);
    CHECK_EQ(r.num_headers, 9);
    CHECK_MEM(r.headers[0].name, "Host", r.headers[0].name_len);
    CHECK_MEM(r.headers[0].value, "server.example.com", r.headers[0].value_len);
    CHECK_MEM(r.headers[4].name, "Origin", r.headers[4].name_len);
    CHECK_MEM(r.headers[4].value, "http://example.com", r.headers[4].value_len);
    CHECK_MEM(r.headers[5].value, "chat, superchat", r.headers[5].value_len);
    CHECK_MEM(r.headers[7].name, "X-Empty", r.headers[7].name_len);
    CHECK_EQ(r.headers[7].value_len, 0);
    CHECK_MEM(r.headers[8].value, "caf\xc3\xa9", r.headers[8].value_len);

    /* Bytes after the head (a pipelined frame) are not part of it. */
    char more[sizeof upgrade + 8];
    memcpy(more, upgrade, sizeof upgrade - 1);
    memcpy(more + sizeof upgrade - 1, "\x81\x80xyzw", 6);
    r = fresh(CAP);
    CHECK_EQ(dx_http_parse_request(more, sizeof upgrade - 1 + 6, 0, &r),
             (int)strlen(upgrade));

    /* Bare LF line ends, and a mix. */
    CHECK_EQ(parse("GET / HTTP/1.1\nHost: a\n\n"), 24);
    CHECK_EQ(parse("GET / HTTP/1.1\r\nHost: a\n\r\n"), 26);
    CHECK_EQ(parse("GET / HTTP/1.1\nHost: a\r\n\n"), 25);
    CHECK_EQ(parse("GET / HTTP/1.0\r\n\r\n"), 18);       /* no headers */
    r = fresh(CAP);
    CHECK_EQ(dx_http_parse_request("OPTIONS * HTTP/1.9\r\n\r\n", 22, 0, &r), 22);
    CHECK_EQ(r.minor_version, 9);
    CHECK_EQ(r.num_headers, 0);
    static const char tchar_method[] = "m-_.!#$%&'*+^`|~9 /x HTTP/1.1\r\n\r\n";
    static const char tchar_name[] =
        "GET / HTTP/1.1\r\nA-b_c.d!e#f$g%h&i'j*k+l^m`n|o~p9:x\r\n\r\n";
    CHECK_EQ(parse(tchar_method), (int)strlen(tchar_method));
    CHECK_EQ(parse(tchar_name), (int)strlen(tchar_name));
}

static void test_bad(void)
{
    static const char *const bad[] = {
        "\r\n\r\n",
        "\r\nGET / HTTP/1.1\r\n\r\n",                /* leading empty line */
        "GET\r\n\r\n",
        "GET /\r\n\r\n",
        "GET / \r\n\r\n",
        " GET / HTTP/1.1\r\n\r\n",                   /* empty method */
        "G(T / HTTP/1.1\r\n\r\n",                    /* method not a token */
        "G\xc3\x89T / HTTP/1.1\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",                   /* double space */
        "GET /  HTTP/1.1\r\n\r\n",
        "GET  HTTP/1.1\r\n\r\n",                     /* empty target */
        "GET /a\x01 HTTP/1.1\r\n\r\n",               /* control byte in target */
        "GET /a\x7f HTTP/1.1\r\n\r\n",
        "GET /a\tb HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET / HTTP/1.10\r\n\r\n",
        "GET / HTTP/1.\r\n\r\n",
        "GET / HTTP/1.x\r\n\r\n",
        "GET / http/1.1\r\n\r\n",
        "GET / HTTP/1.1 \r\n\r\n",
        "GET / HTTP/1.1\r\r\n\r\n",
        "GET / HTTP/1.1\rX\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",       /* space before colon */
        "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n",
        "GET / HTTP/1.1\r\n: a\r\n\r\n",            /* empty name */
        "GET / HTTP/1.1\r\nHost a\r\n\r\n",         /* no colon */
        "GET / HTTP/1.1\r\nHost\r\n\r\n",
        "GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n",
        "GET / HTTP/1.1\r\nH\xc3\xa9: a\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",     /* obs-fold */
        "GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n",
        "GET / HTTP/1.1\r\n Host: a\r\n\r\n",       /* space before first field */
        "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",       /* control bytes in values */
        "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
        "GET / HTTP/1.1\r\nA: \x1b[0m\r\n\r\n",
    };
    long wrong = 0;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!CHECK(parse(bad[i]) == DX_HTTP_BAD))
            fprintf(stderr, "    input %zu: \"%s\"\n", i, bad[i]);

    /* NUL bytes (strlen cannot carry them). */
    static const char nul_value[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
    static const char nul_name[] = "GET / HTTP/1.1\r\nA\0: b\r\n\r\n";
    static const char nul_line[] = "GET /\0 HTTP/1.1\r\n\r\n";
    dx_http_request r = fresh(CAP);
    wrong += dx_http_parse_request(nul_value, sizeof nul_value - 1, 0, &r) != DX_HTTP_BAD;
    wrong += dx_http_parse_request(nul_name, sizeof nul_name - 1, 0, &r) != DX_HTTP_BAD;
    wrong += dx_http_parse_request(nul_line, sizeof nul_line - 1, 0, &r) != DX_HTTP_BAD;
    CHECK_EQ(wrong, 0);

    /* Tabs and spaces inside a value are fine. */
    CHECK(parse("GET / HTTP/1.1\r\nA: b\tc  d\r\n\r\n") > 0);
}

static void test_too_many(void)
{
    static const char three[] = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    dx_http_request r;

    CHECK_EQ(parse_cap(three, 2, &r), DX_HTTP_TOO_MANY);
    CHECK_EQ(r.num_headers, 2);                 /* untouched: still the capacity */
    CHECK_EQ(parse_cap(three, 3, &r), (int)strlen(three));
    CHECK_EQ(r.num_headers, 3);
    CHECK_EQ(parse_cap(three, 0, &r), DX_HTTP_TOO_MANY);
    CHECK_EQ(parse_cap("GET / HTTP/1.1\r\n\r\n", 0, &r), 18);
    CHECK_EQ(r.num_headers, 0);
}

/* Feeds s one byte at a time with prev_len, reusing one request (so the
 * capacity must survive DX_HTTP_INCOMPLETE), each prefix against the guard
 * page. Returns the first non-INCOMPLETE result and its prefix length. */
static int feed_bytewise(const char *s, size_t len, size_t *at)
{
    dx_http_request r = fresh(CAP);
    size_t prev = 0;

    for (size_t n = 0; n <= len; n++) {
        const char *p = unit_guard(s, n);
        int rc = dx_http_parse_request(p, n, prev, &r);

        prev = n;
        if (rc != DX_HTTP_INCOMPLETE) {
            *at = n;
            return rc;
        }
    }
    *at = len + 1;
    return DX_HTTP_INCOMPLETE;
}

static void test_incremental(void)
{
    static const char *const heads[] = {
        upgrade,
        "GET / HTTP/1.1\nHost: a\n\n",
        "GET / HTTP/1.1\r\nHost: a\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\n",
        "GET / HTTP/1.1\r\n\r\n",
    };
    long wrong = 0;

    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        size_t len = strlen(heads[i]), at;
        int rc = feed_bytewise(heads[i], len, &at);

        wrong += rc != (int)len || at != len;

        /* Every prefix alone (prev_len 0) and every two-piece split. */
        for (size_t n = 0; n < len; n++) {
            dx_http_request r = fresh(CAP);

            wrong += dx_http_parse_request(unit_guard(heads[i], n), n, 0, &r) != DX_HTTP_INCOMPLETE;
            wrong += r.num_headers != CAP;
            wrong += dx_http_parse_request(heads[i], len, n, &r) != (int)len;
        }
    }
    CHECK_EQ(wrong, 0);

    /* Bad heads are found only once complete, without reading past len. */
    size_t at;
    static const char bad[] = "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n";
    CHECK_EQ(feed_bytewise(bad, strlen(bad), &at), DX_HTTP_BAD);
    CHECK_EQ(at, strlen(bad));

    /* prev_len past len (a caller's slip) is clamped, not trusted. */
    dx_http_request r = fresh(CAP);
    CHECK_EQ(dx_http_parse_request("GET / HTTP/1.1\r\n\r\n", 18, 1000, &r), 18);
}

/* Random mutations of a valid head: never a crash or an over-read, and the
 * result is one of the documented values. */
static void test_mutations(void)
{
    char buf[sizeof upgrade];
    size_t len = sizeof upgrade - 1;
    long wrong = 0;

    for (int iter = 0; iter < 20000; iter++) {
        dx_http_request r = fresh(1 + unit_rand() % CAP);
        int rc;

        memcpy(buf, upgrade, len);
        for (int k = 0; k < 3; k++) {
            uint64_t x = unit_rand();
            static const char pick[] = "\r\n :\t\x00\x7f\x80" "a";

            buf[x % len] = (x >> 32 & 1) ? (char)(x >> 40) : pick[(x >> 40) % (sizeof pick - 1)];
        }
        size_t n = unit_rand() % (len + 1);
        rc = dx_http_parse_request(unit_guard(buf, n), n, 0, &r);
        wrong += !(rc == DX_HTTP_INCOMPLETE || rc == DX_HTTP_BAD ||
                   rc == DX_HTTP_TOO_MANY || (rc > 0 && (size_t)rc <= n));
    }
    CHECK_EQ(wrong, 0);
}

static void test_find(void)
{
    dx_http_request r;
    const dx_http_header *h;

    CHECK(parse_cap("GET / HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n", CAP, &r) > 0);
    h = dx_http_find(&r, "host");
    CHECK(h && h->value_len == 1 && h->value[0] == 'a');
    h = dx_http_find(&r, "X-DUP");
    CHECK(h && h->value[0] == '1');
    CHECK(dx_http_find(&r, "Hos") == NULL);
    CHECK(dx_http_find(&r, "Hostt") == NULL);
    CHECK(dx_http_find(&r, "") == NULL);
    CHECK(dx_http_find(&r, "Upgrade") == NULL);
}

static int has(const char *v, const char *t)
{
    return dx_http_has_token(v, strlen(v), t);
}

static void test_has_token(void)
{
    CHECK(has("Upgrade", "upgrade"));
    CHECK(has("keep-alive, Upgrade", "upgrade"));
    CHECK(has("keep-alive,Upgrade", "UPGRADE"));
    CHECK(has("  upgrade  ", "upgrade"));
    CHECK(has(",,\tupgrade\t,", "upgrade"));
    CHECK(has("a, , upgrade", "upgrade"));
    CHECK(!has("upgrades", "upgrade"));
    CHECK(!has("x-upgrade", "upgrade"));
    CHECK(!has("upgrade-x, keep-alive", "upgrade"));
    CHECK(!has("up grade", "upgrade"));
    CHECK(!has("", "upgrade"));
    CHECK(!has(", ,", "upgrade"));
    CHECK(!has("upgrade", ""));
    CHECK(!has("upgrad", "upgrade"));
    /* Only len bytes are looked at. */
    CHECK(dx_http_has_token("websocketX", 9, "websocket"));
    CHECK(!dx_http_has_token("websocket", 8, "websocket"));
    const char *g = unit_guard("keep-alive, websocket", 21);
    CHECK(dx_http_has_token(g, 21, "websocket"));
    CHECK(!dx_http_has_token(g, 21, "websocketz"));
}

int main(void)
{
    test_valid();
    test_bad();
    test_too_many();
    test_incremental();
    test_mutations();
    test_find();
    test_has_token();
    return unit_report("test_http");
}
