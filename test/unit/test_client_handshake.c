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
    return dx_client_check_response(head, strlen(head), KEY, status);
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
    size_t n = dx_client_request(out, sizeof out, "example.com:80", "/chat?x=1", KEY);
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
    CHECK_EQ(dx_client_request(out, sizeof out, "evil\r\nX: 1", "/", KEY), 0);
    CHECK_EQ(dx_client_request(out, sizeof out, "h", "nopath", KEY), 0);
    CHECK_EQ(dx_client_request(out, 40, "h", "/", KEY), 0);
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
    for (size_t i = 0; i <= strlen(good); i++)
        CHECK_EQ(dx_client_check_response(unit_guard(good, i), i, KEY, &st),
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
