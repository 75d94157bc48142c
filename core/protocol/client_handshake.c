/* The client side of the opening handshake: see client_handshake.h. */
#include "client_handshake.h"

#include <stdio.h>
#include <string.h>
#include "handshake.h"
#include "http.h"

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void dx_client_key(const unsigned char raw[16], char key[DX_CLIENT_KEY_LEN])
{
    size_t o = 0;
    for (size_t i = 0; i < 15; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        key[o++] = b64[v >> 18 & 63];
        key[o++] = b64[v >> 12 & 63];
        key[o++] = b64[v >> 6 & 63];
        key[o++] = b64[v & 63];
    }
    unsigned v = (unsigned)raw[15] << 16;
    key[o++] = b64[v >> 18 & 63];
    key[o++] = b64[v >> 12 & 63];
    key[o++] = '=';
    key[o++] = '=';
}

static int line_safe(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

int dx_client_protocols_valid(const char *s)
{
    for (;;) {
        const char *t = s;
        while (dx_http_is_tchar((unsigned char)*s))
            s++;
        if (s == t)
            return 0;
        if (*s == 0)
            return 1;
        if (s[0] != ',' || s[1] != ' ')
            return 0;
        s += 2;
    }
}

size_t dx_client_request(char *out, size_t cap, const char *host, const char *target,
                         const char key[DX_CLIENT_KEY_LEN], const char *protocols)
{
    if (!line_safe(host) || !line_safe(target) || target[0] != '/' || strchr(target, ' '))
        return 0;
    if (protocols && !dx_client_protocols_valid(protocols))
        return 0;
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %.*s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s%s%s"
                     "\r\n",
                     target, host, DX_CLIENT_KEY_LEN, key, protocols ? "Sec-WebSocket-Protocol: " : "",
                     protocols ? protocols : "", protocols ? "\r\n" : "");
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}

static int name_is(const char *p, size_t len, const char *name)
{
    if (strlen(name) != len)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((p[i] | 0x20) != (name[i] | 0x20))
            return 0;
    return 1;
}

/* What the header lines said. */
typedef struct seen {
    int upgrade, connection, accept_ok, accept_count, other, protocol_count;
    const char *protocol;
    size_t protocol_len;
} seen;

static void header_line(const char *p, size_t len, const char *expect, seen *s)
{
    const char *colon = memchr(p, ':', len);
    if (colon == NULL)
        return;
    size_t nlen = (size_t)(colon - p);
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);
    if (name_is(p, nlen, "upgrade"))
        s->upgrade |= dx_http_has_token(v, vlen, "websocket");
    else if (name_is(p, nlen, "connection"))
        s->connection |= dx_http_has_token(v, vlen, "upgrade");
    else if (name_is(p, nlen, "sec-websocket-accept")) {
        s->accept_count++;
        s->accept_ok = vlen == DX_ACCEPT_LEN && memcmp(v, expect, DX_ACCEPT_LEN) == 0;
    } else if (name_is(p, nlen, "sec-websocket-protocol")) {
        s->protocol_count++;
        s->protocol = v;
        s->protocol_len = vlen;
    } else if (name_is(p, nlen, "sec-websocket-extensions"))
        s->other = 1;
}

/* 1 when p[0..len) is one of the tokens of the list offered (exactly). */
static int offered(const char *list, const char *p, size_t len)
{
    while (list && *list) {
        const char *end = strchr(list, ',');
        size_t n = end ? (size_t)(end - list) : strlen(list);
        if (n == len && len > 0 && memcmp(list, p, len) == 0)
            return 1;
        list = end ? end + 2 : NULL;            /* past ", " */
    }
    return 0;
}

long dx_client_check_response(const char *buf, size_t len, const char key[DX_CLIENT_KEY_LEN],
                              const char *protocols, int *status,
                              const char **protocol, size_t *protocol_len)
{
    *status = 0;
    *protocol = NULL;
    *protocol_len = 0;
    /* The head ends at the first empty line (CRLF CRLF, or bare LFs). */
    size_t head = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n') {
            head = i + 2;
            break;
        }
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
            head = i + 3;
            break;
        }
    }
    if (len >= 12 && (memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' '))
        return DX_RESP_BAD;
    if (len >= 12) {
        int code = 0;
        for (int i = 9; i < 12; i++) {
            if (buf[i] < '0' || buf[i] > '9')
                return DX_RESP_BAD;
            code = code * 10 + (buf[i] - '0');
        }
        *status = code;
    }
    if (head == 0)
        return DX_RESP_INCOMPLETE;
    if (*status == 0)
        return DX_RESP_BAD;
    if (*status != 101)
        return DX_RESP_REFUSED;

    char expect[DX_ACCEPT_LEN];
    dx_handshake_accept(key, DX_CLIENT_KEY_LEN, expect);
    seen s = { 0, 0, 0, 0, 0, 0, NULL, 0 };
    const char *p = memchr(buf, '\n', head) + 1;   /* past the status line */
    const char *end = buf + head;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = (size_t)(nl - p);
        if (l && p[l - 1] == '\r')
            l--;
        if (l == 0)
            break;
        header_line(p, l, expect, &s);
        p = nl + 1;
    }
    if (!s.upgrade || !s.connection)
        return DX_RESP_NOT_WEBSOCKET;
    if (s.accept_count != 1 || !s.accept_ok)
        return DX_RESP_BAD_ACCEPT;
    if (s.other)
        return DX_RESP_EXTENSION;
    if (s.protocol_count > 1 || (s.protocol_count == 1 && !offered(protocols, s.protocol, s.protocol_len)))
        return DX_RESP_PROTOCOL;
    *protocol = s.protocol;
    *protocol_len = s.protocol_len;
    return (long)head;
}

const char *dx_client_response_error(long r)
{
    switch (r) {
    case DX_RESP_BAD: return "malformed HTTP response";
    case DX_RESP_REFUSED: return "upgrade refused";
    case DX_RESP_NOT_WEBSOCKET: return "101 without Upgrade: websocket";
    case DX_RESP_BAD_ACCEPT: return "wrong Sec-WebSocket-Accept";
    case DX_RESP_EXTENSION: return "server chose an extension not offered";
    case DX_RESP_PROTOCOL: return "server chose a subprotocol not offered";
    default: return "no error";
    }
}
