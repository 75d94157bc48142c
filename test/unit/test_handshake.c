/* Unit tests for core/protocol/handshake.c. */
#include "unit.h"
#include "handshake.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="   /* RFC 6455 section 1.3 */

static dx_http_header hs[32];
static char head[2048];

/* Parses request line rl plus the header lines (each ending in \r\n) and
 * runs dx_handshake_check; -1000 when the head does not parse. */
static int check(const char *rl, const char *lines, dx_upgrade *up)
{
    dx_http_request r;
    int n;

    memset(&r, 0, sizeof r);
    r.headers = hs;
    r.num_headers = 32;
    snprintf(head, sizeof head, "%s\r\n%s\r\n", rl, lines);
    n = dx_http_parse_request(head, strlen(head), 0, &r);
    if (n <= 0)
        return -1000;
    return dx_handshake_check(&r, up);
}

#define HOST "Host: example.com\r\n"
#define UPG "Upgrade: websocket\r\n"
#define CONN "Connection: Upgrade\r\n"
#define VER "Sec-WebSocket-Version: 13\r\n"
#define SKEY "Sec-WebSocket-Key: " KEY "\r\n"
#define GOOD HOST UPG CONN VER SKEY

static void test_accept(void)
{
    char out[DX_ACCEPT_LEN + 1] = { 0 };

    dx_handshake_accept(KEY, strlen(KEY), out);
    CHECK(memcmp(out, ACCEPT, DX_ACCEPT_LEN) == 0);
    CHECK(out[DX_ACCEPT_LEN] == 0);              /* wrote exactly 28 bytes */
    dx_handshake_accept("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
    CHECK(memcmp(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=", DX_ACCEPT_LEN) == 0);
    dx_handshake_accept("", 0, out);             /* any bytes: SHA-1 of the GUID */
    CHECK(memcmp(out, "Kfh9QIsMVZcl6xEPYxPHzW8SZ8w=", DX_ACCEPT_LEN) == 0);
}

static void test_valid(void)
{
    dx_upgrade up;

    memset(&up, 0, sizeof up);
    CHECK_EQ(check("GET /chat HTTP/1.1", GOOD, &up), 0);
    CHECK_MEM(up.path, "/chat", up.path_len);
    CHECK_EQ(up.query_len, 0);
    CHECK_MEM(up.key, KEY, up.key_len);
    CHECK(up.protocols == NULL && up.extensions == NULL);

    CHECK_EQ(check("GET /chat?room=1&x=%20 HTTP/1.1", GOOD
                   "Sec-WebSocket-Protocol: chat, superchat\r\n"
                   "Sec-WebSocket-Extensions: permessage-deflate\r\n", &up), 0);
    CHECK_MEM(up.path, "/chat", up.path_len);
    CHECK_MEM(up.query, "room=1&x=%20", up.query_len);
    CHECK(up.protocols != NULL);
    if (up.protocols)
        CHECK_MEM(up.protocols->value, "chat, superchat", up.protocols->value_len);
    CHECK(up.extensions != NULL);
    if (up.extensions)
        CHECK_MEM(up.extensions->value, "permessage-deflate", up.extensions->value_len);

    CHECK_EQ(check("GET /? HTTP/1.1", GOOD, &up), 0);
    CHECK_MEM(up.path, "/", up.path_len);
    CHECK_EQ(up.query_len, 0);
    CHECK_EQ(check("GET /a?b?c HTTP/1.1", GOOD, &up), 0);
    CHECK_MEM(up.query, "b?c", up.query_len);

    /* Case, lists, lists split over lines, HTTP/1.x above 1. */
    CHECK_EQ(check("GET / HTTP/1.1", "host: h\r\nupgrade: WebSocket\r\n"
                   "connection: keep-alive, UPGRADE\r\nsec-websocket-version: 13\r\n"
                   "sec-websocket-key: " KEY "\r\n", &up), 0);
    CHECK_EQ(check("GET / HTTP/1.1", HOST "Upgrade: foo/2, websocket\r\n"
                   "Connection: keep-alive\r\nConnection: Upgrade\r\n" VER SKEY, &up), 0);
    CHECK_EQ(check("GET / HTTP/1.2", GOOD, &up), 0);
    CHECK_EQ(check("GET / HTTP/1.1", HOST UPG CONN VER "Sec-WebSocket-Key:   " KEY "  \r\n",
                   &up), 0);
    CHECK_EQ(check("GET / HTTP/1.1", HOST UPG CONN VER
                   "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAA+/=\r\n", &up), 400);
    CHECK_EQ(check("GET / HTTP/1.1", HOST UPG CONN VER
                   "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA+/==\r\n", &up), 0);
}

static void test_400(void)
{
    static const char *const keys[] = {
        "dGhlIHNhbXBsZSBub25jZQ=",       /* 23 */
        "dGhlIHNhbXBsZSBub25jZQ===",     /* 25 */
        "dGhlIHNhbXBsZSBub25jZQ",
        "dGhlIHNhbXBsZSBub25jZQAA",      /* 24 without == (18 bytes) */
        "dGhlIHNhbXBsZSBub25jZ===",
        "dGhlIHNhbXBsZSBub25jZ-==",      /* base64url alphabet */
        "dGhlIHNhbXBsZSBub25jZ_==",
        "dGhlIHNhbXBs ZSBub25jZ==",
        "dGhlIHNhbXBsZSBub25j=Q==",
        "",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",   /* 32 bytes */
    };
    dx_upgrade up;

    CHECK_EQ(check("POST / HTTP/1.1", GOOD, &up), 400);
    CHECK_EQ(check("get / HTTP/1.1", GOOD, &up), 400);  /* methods are case-sensitive */
    CHECK_EQ(check("GETS / HTTP/1.1", GOOD, &up), 400);
    CHECK_EQ(check("GET / HTTP/1.0", GOOD, &up), 400);
    CHECK_EQ(check("GET * HTTP/1.1", GOOD, &up), 400);
    CHECK_EQ(check("GET http://example.com/ HTTP/1.1", GOOD, &up), 400);
    CHECK_EQ(check("GET chat HTTP/1.1", GOOD, &up), 400);
    CHECK_EQ(check("GET / HTTP/1.1", UPG CONN VER SKEY, &up), 400);              /* no Host */
    CHECK_EQ(check("GET / HTTP/1.1", HOST HOST UPG CONN VER SKEY, &up), 400);    /* two */
    CHECK_EQ(check("GET / HTTP/1.1", HOST UPG VER SKEY, &up), 400);              /* no Connection */
    CHECK_EQ(check("GET / HTTP/1.1", HOST UPG "Connection: keep-alive\r\n" VER SKEY, &up), 400);
    CHECK_EQ(check("GET / HTTP/1.1", HOST UPG "Connection: upgrades\r\n" VER SKEY, &up), 400);
    CHECK_EQ(check("GET / HTTP/1.1", HOST UPG CONN VER, &up), 400);              /* no key */
    CHECK_EQ(check("GET / HTTP/1.1", GOOD SKEY, &up), 400);                      /* two keys */
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char lines[512];

        snprintf(lines, sizeof lines, HOST UPG CONN VER "Sec-WebSocket-Key: %s\r\n", keys[i]);
        if (!CHECK(check("GET / HTTP/1.1", lines, &up) == 400))
            fprintf(stderr, "    key \"%s\"\n", keys[i]);
    }
}

static void test_426(void)
{
    dx_upgrade up;

    CHECK_EQ(check("GET / HTTP/1.1", HOST CONN VER SKEY, &up), 426);             /* no Upgrade */
    CHECK_EQ(check("GET / HTTP/1.1", HOST "Upgrade: h2c\r\n" CONN VER SKEY, &up), 426);
    CHECK_EQ(check("GET / HTTP/1.1", HOST "Upgrade: websockets\r\n" CONN VER SKEY, &up), 426);
    CHECK_EQ(check("GET / HTTP/1.1", HOST UPG CONN SKEY, &up), 426);             /* no version */
    CHECK_EQ(check("GET / HTTP/1.1", HOST UPG CONN "Sec-WebSocket-Version: 8\r\n" SKEY, &up), 426);
    CHECK_EQ(check("GET / HTTP/1.1", HOST UPG CONN "Sec-WebSocket-Version: 130\r\n" SKEY, &up), 426);
    CHECK_EQ(check("GET / HTTP/1.1", HOST UPG CONN "Sec-WebSocket-Version: 13, 8\r\n" SKEY, &up), 426);
    CHECK_EQ(check("GET / HTTP/1.1", HOST UPG CONN "Sec-WebSocket-Version:\r\n" SKEY, &up), 426);
    CHECK_EQ(check("GET / HTTP/1.1", GOOD VER, &up), 426);                       /* repeated */
    /* A plain page request to a WebSocket path: 426, not 400. */
    CHECK_EQ(check("GET / HTTP/1.1", HOST, &up), 426);
}

static void test_response(void)
{
    static const char want[] =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " ACCEPT "\r\n"
        "\r\n";
    static const char want_p[] =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " ACCEPT "\r\n"
        "Sec-WebSocket-Protocol: chat\r\n"
        "\r\n";
    char out[256];
    size_t n;
    long wrong = 0;

    n = dx_handshake_response(out, sizeof out, KEY, strlen(KEY), NULL, NULL);
    CHECK_MEM(out, want, n);
    n = dx_handshake_response(out, sizeof out, KEY, strlen(KEY), "chat", NULL);
    CHECK_MEM(out, want_p, n);

    /* Every capacity too small gives 0 and writes nothing past cap. */
    for (size_t cap = 0; cap < sizeof want_p - 1; cap++) {
        char *p = unit_guard(out, cap);

        wrong += dx_handshake_response(p, cap, KEY, strlen(KEY), "chat", NULL) != 0;
    }
    wrong += dx_handshake_response(unit_guard(out, sizeof want_p - 1), sizeof want_p - 1,
                                   KEY, strlen(KEY), "chat", NULL) != sizeof want_p - 1;
    CHECK_EQ(wrong, 0);

    /* A protocol that is not a token cannot inject header lines. */
    CHECK_EQ(dx_handshake_response(out, sizeof out, KEY, strlen(KEY), "chat\r\nX: y", NULL), 0);
    CHECK_EQ(dx_handshake_response(out, sizeof out, KEY, strlen(KEY), "", NULL), 0);
    CHECK_EQ(dx_handshake_response(out, sizeof out, KEY, strlen(KEY), "a b", NULL), 0);
    CHECK_EQ(dx_handshake_response(out, sizeof out, KEY, strlen(KEY), "a,b", NULL), 0);
    CHECK(dx_handshake_response(out, sizeof out, KEY, strlen(KEY), "v2.json.example.com", NULL) > 0);

    /* An extensions value goes out as its own line, after the protocol. */
    static const char want_e[] =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " ACCEPT "\r\n"
        "Sec-WebSocket-Protocol: chat\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
        "\r\n";
    n = dx_handshake_response(out, sizeof out, KEY, strlen(KEY), "chat",
                              "permessage-deflate; server_no_context_takeover");
    CHECK_MEM(out, want_e, n);
}

static void test_error_response(void)
{
    static const struct { int status; const char *reason; } phrases[] = {
        { 400, "Bad Request" }, { 403, "Forbidden" }, { 404, "Not Found" },
        { 405, "Method Not Allowed" }, { 426, "Upgrade Required" },
        { 431, "Request Header Fields Too Large" }, { 500, "Internal Server Error" },
        { 503, "Service Unavailable" }, { 418, "Error" }, { 599, "Error" },
    };
    static const char want400[] =
        "HTTP/1.1 400 Bad Request\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 11\r\n"
        "Connection: close\r\n"
        "\r\n"
        "Bad Request";
    static const char want426[] =
        "HTTP/1.1 426 Upgrade Required\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 20\r\n"
        "Connection: close, Upgrade\r\n"
        "Upgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
        "use WebSocket 13 \xe2\x9c\x93";
    char out[512], line[128];
    size_t n;
    long wrong = 0;

    n = dx_http_error_response(out, sizeof out, 400, NULL);
    CHECK_MEM(out, want400, n);
    n = dx_http_error_response(out, sizeof out, 426, "use WebSocket 13 \xe2\x9c\x93");
    CHECK_MEM(out, want426, n);

    for (size_t i = 0; i < sizeof phrases / sizeof phrases[0]; i++) {
        int len = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n",
                           phrases[i].status, phrases[i].reason);
        char *body;

        n = dx_http_error_response(out, sizeof out, phrases[i].status, NULL);
        out[n < sizeof out ? n : 0] = 0;
        wrong += n == 0 || strncmp(out, line, (size_t)len) != 0;
        wrong += strstr(out, "\r\nConnection: close") == NULL;
        body = strstr(out, "\r\n\r\n");
        wrong += body == NULL || strcmp(body + 4, phrases[i].reason) != 0;
        snprintf(line, sizeof line, "\r\nContent-Length: %zu\r\n", strlen(phrases[i].reason));
        wrong += strstr(out, line) == NULL;
        wrong += (strstr(out, "Sec-WebSocket-Version: 13\r\n") != NULL) != (phrases[i].status == 426);
    }
    CHECK_EQ(wrong, 0);

    /* Too small: 0 for every capacity, nothing written past it. */
    for (size_t cap = 0; cap < sizeof want400 - 1; cap++)
        wrong += dx_http_error_response(unit_guard(out, cap), cap, 400, NULL) != 0;
    wrong += dx_http_error_response(unit_guard(out, sizeof want400 - 1), sizeof want400 - 1,
                                    400, NULL) != sizeof want400 - 1;
    CHECK_EQ(wrong, 0);

    /* Empty body; statuses that are not errors. */
    n = dx_http_error_response(out, sizeof out, 404, "");
    CHECK(n > 0 && memcmp(out + n - 4, "\r\n\r\n", 4) == 0);
    CHECK(n > 0 && strstr(out, "Content-Length: 0\r\n") != NULL);
    CHECK_EQ(dx_http_error_response(out, sizeof out, 200, NULL), 0);
    CHECK_EQ(dx_http_error_response(out, sizeof out, 101, NULL), 0);
    CHECK_EQ(dx_http_error_response(out, sizeof out, 600, NULL), 0);
    CHECK_EQ(dx_http_error_response(out, sizeof out, -400, NULL), 0);

    /* More header lines: after Connection, before the blank line. */
    static const char want503[] =
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 4\r\n"
        "Connection: close\r\n"
        "Retry-After: 5\r\n"
        "\r\n"
        "full";
    n = dx_http_error_response_with(out, sizeof out, 503, "Retry-After: 5\r\n", "full");
    CHECK_MEM(out, want503, n);
    wrong = 0;
    for (size_t cap = 0; cap < sizeof want503 - 1; cap++)
        wrong += dx_http_error_response_with(unit_guard(out, cap), cap, 503, "Retry-After: 5\r\n",
                                             "full") != 0;
    CHECK_EQ(wrong, 0);
}

int main(void)
{
    test_accept();
    test_valid();
    test_400();
    test_426();
    test_response();
    test_error_response();
    return unit_report("test_handshake");
}
