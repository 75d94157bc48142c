/* Unit tests for core/protocol/client_handshake.c. */
#include "unit.h"
#include "client_handshake.h"
#include "handshake.h"

/* RFC 6455 section 1.3: the key of the 16 bytes "the sample nonce". */
#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define OK101 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"

static long check(const char *head, int *status)
{
    const char *p;
    size_t pl;
    return dx_client_check_response(head, strlen(head), KEY, NULL, status, &p, &pl);
}

/* check, offering protocols; *chosen gets the protocol chosen ("" none). */
static long check_offer(const char *head, const char *protocols, char chosen[64])
{
    const char *p;
    size_t pl;
    int st;
    long r = dx_client_check_response(head, strlen(head), KEY, protocols, &st, &p, &pl);
    snprintf(chosen, 64, "%.*s", (int)pl, p ? p : "");
    return r;
}

static void test_key(void)
{
    char key[DX_CLIENT_KEY_LEN];
    dx_client_key((const unsigned char *)"the sample nonce", key);
    CHECK(memcmp(key, KEY, DX_CLIENT_KEY_LEN) == 0);
}

static void test_request(void)
{
    char out[512];
    size_t n = dx_client_request(out, sizeof out, "example.com:80", "/chat?x=1", KEY, NULL);
    CHECK(n > 0 && n == strlen(out));
    CHECK(strstr(out, "GET /chat?x=1 HTTP/1.1\r\n") == out);
    CHECK(strstr(out, "\r\nSec-WebSocket-Key: " KEY "\r\n") != NULL);
    CHECK(strstr(out, "\r\nSec-WebSocket-Version: 13\r\n\r\n") != NULL);
    /* the server's parser and checker accept it */
    dx_http_header hs[16];
    dx_http_request r = { .headers = hs, .num_headers = 16 };
    CHECK_EQ(dx_http_parse_request(out, n, 0, &r), (long long)n);
    dx_upgrade up;
    CHECK_EQ(dx_handshake_check(&r, &up), 0);
    CHECK(strstr(out, "Sec-WebSocket-Protocol") == NULL);
    CHECK_EQ(dx_client_request(out, sizeof out, "evil\r\nX: 1", "/", KEY, NULL), 0);
    CHECK_EQ(dx_client_request(out, sizeof out, "h", "nopath", KEY, NULL), 0);
    CHECK_EQ(dx_client_request(out, 40, "h", "/", KEY, NULL), 0);
    /* subprotocols: offered in one header the server's checker reads */
    n = dx_client_request(out, sizeof out, "h:1", "/", KEY, "duplex.1, chat");
    CHECK(n > 0 && strstr(out, "\r\nSec-WebSocket-Protocol: duplex.1, chat\r\n") != NULL);
    r.num_headers = 16;
    CHECK_EQ(dx_http_parse_request(out, n, 0, &r), (long long)n);
    const dx_http_header *h = dx_http_find(&r, "sec-websocket-protocol");
    CHECK(h != NULL && h->value_len == 14 && memcmp(h->value, "duplex.1, chat", 14) == 0);
    static const char *const bad[] = { "", "a b", "a,b", "a, ", ", a", "a\r\nX: 1", "a;b", "a,  b" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(dx_client_request(out, sizeof out, "h", "/", KEY, bad[i]), 0);
        CHECK(!dx_client_protocols_valid(bad[i]));
    }
    CHECK(dx_client_protocols_valid("x"));
}

static void test_response(void)
{
    int st;
    const char *good = OK101 "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n";
    CHECK_EQ(check(good, &st), (long long)strlen(good));
    CHECK_EQ(st, 101);
    /* frames right behind the head are not part of it */
    char more[512];
    snprintf(more, sizeof more, "%s\x81\x02hi", good);
    CHECK_EQ(check(more, &st), (long long)strlen(good));
    /* every prefix, flush against a guard page, is incomplete, never an
     * error, and read no further than its end */
    const char *p;
    size_t pl;
    for (size_t i = 0; i <= strlen(good); i++)
        CHECK_EQ(dx_client_check_response(unit_guard(good, i), i, KEY, NULL, &st, &p, &pl),
                 i < strlen(good) ? DX_RESP_INCOMPLETE : (long long)strlen(good));
    CHECK_EQ(check("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", &st), DX_RESP_REFUSED);
    CHECK_EQ(st, 404);
    CHECK_EQ(check("SSH-2.0-OpenSSH\r\n\r\n", &st), DX_RESP_BAD);
    CHECK_EQ(check("HTTP/1.1 101 x\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n", &st),
             DX_RESP_NOT_WEBSOCKET);
    CHECK_EQ(check(OK101 "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOX=\r\n\r\n", &st), DX_RESP_BAD_ACCEPT);
    CHECK_EQ(check(OK101 "\r\n", &st), DX_RESP_BAD_ACCEPT);
    CHECK_EQ(check(OK101 "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n", &st),
             DX_RESP_BAD_ACCEPT);
    CHECK_EQ(check(OK101 "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
                   &st), DX_RESP_EXTENSION);
    /* a subprotocol: one of those offered, exactly, or none */
    char chosen[64];
    const char *with = OK101 "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Protocol:  chat \r\n\r\n";
    CHECK_EQ(check_offer(with, "duplex.1, chat", chosen), (long long)strlen(with));
    CHECK(strcmp(chosen, "chat") == 0);
    CHECK_EQ(check_offer(good, "duplex.1, chat", chosen), (long long)strlen(good));
    CHECK(strcmp(chosen, "") == 0);
    CHECK_EQ(check_offer(with, NULL, chosen), DX_RESP_PROTOCOL);
    CHECK_EQ(check_offer(with, "duplex.1", chosen), DX_RESP_PROTOCOL);
    CHECK_EQ(check_offer(with, "Chat", chosen), DX_RESP_PROTOCOL);
    CHECK_EQ(check_offer(with, "chatter", chosen), DX_RESP_PROTOCOL);
    CHECK_EQ(check_offer(OK101 "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Protocol: chat\r\n"
                         "Sec-WebSocket-Protocol: chat\r\n\r\n", "chat", chosen), DX_RESP_PROTOCOL);
    CHECK_EQ(check_offer(OK101 "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Protocol: a, b\r\n\r\n",
                         "a, b", chosen), DX_RESP_PROTOCOL);
    /* case and spacing of names and values do not matter */
    CHECK(check("HTTP/1.1 101 OK\r\nupgrade:WebSocket\r\nCONNECTION: keep-alive, upgrade\r\n"
                "sec-websocket-accept:   " ACCEPT "  \r\n\r\n", &st) > 0);
}

int main(void)
{
    test_key();
    test_request();
    test_response();
    return unit_report("test_client_handshake");
}
