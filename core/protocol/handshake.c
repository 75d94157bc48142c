/* The server side of the WebSocket opening handshake: see handshake.h. */
#include "handshake.h"

#include <stdint.h>
#include <string.h>
#include "sha1.h"

static const char dx_ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
static const char dx_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ---- request checks ---------------------------------------------------- */

/* 1 when h is called name (n bytes, letters and '-'), in any case. */
static int name_is(const dx_http_header *h, const char *name, size_t n)
{
    if (h->name_len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)h->name[i] | 0x20) != ((unsigned char)name[i] | 0x20))
            return 0;
    return 1;
}

#define NAME_IS(h, lit) name_is((h), lit, sizeof lit - 1)

static int is_b64_char(char c)
{
    unsigned char u = (unsigned char)c;

    return (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') ||
           u == '+' || u == '/';
}

/* 1 when the key is base64 of exactly 16 bytes: 22 alphabet chars, "==". */
static int key_valid(const char *k, size_t len)
{
    if (len != 24 || k[22] != '=' || k[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64_char(k[i]))
            return 0;
    return 1;
}

static int version_is_13(const dx_http_header *h)
{
    return h && h->value_len == 2 && memcmp(h->value, "13", 2) == 0;
}

static void split_target(const dx_http_request *req, dx_upgrade *up)
{
    const char *q = memchr(req->target, '?', req->target_len);

    up->path = req->target;
    up->path_len = q ? (size_t)(q - req->target) : req->target_len;
    up->query = q ? q + 1 : req->target + req->target_len;
    up->query_len = q ? req->target_len - up->path_len - 1 : 0;
}

/* The fields the handshake looks at, gathered in one pass over the head. */
typedef struct fields {
    size_t hosts, keys, versions;
    int upgrade_websocket;             /* some Upgrade field lists "websocket" */
    int connection_upgrade;            /* some Connection field lists "upgrade" */
    const dx_http_header *key, *version, *protocols, *extensions;   /* the first of each */
} fields;

static void gather(const dx_http_request *req, fields *f)
{
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < req->num_headers; i++) {
        const dx_http_header *h = &req->headers[i];

        switch (h->name_len) {             /* the length sorts out most fields at once */
        case 4:
            f->hosts += (size_t)NAME_IS(h, "Host");
            break;
        case 7:
            if (!f->upgrade_websocket && NAME_IS(h, "Upgrade"))
                f->upgrade_websocket = dx_http_has_token(h->value, h->value_len, "websocket");
            break;
        case 10:
            if (!f->connection_upgrade && NAME_IS(h, "Connection"))
                f->connection_upgrade = dx_http_has_token(h->value, h->value_len, "upgrade");
            break;
        case 17:
            if (NAME_IS(h, "Sec-WebSocket-Key") && f->keys++ == 0)
                f->key = h;
            break;
        case 21:
            if (NAME_IS(h, "Sec-WebSocket-Version") && f->versions++ == 0)
                f->version = h;
            break;
        case 22:
            if (!f->protocols && NAME_IS(h, "Sec-WebSocket-Protocol"))
                f->protocols = h;
            break;
        case 24:
            if (!f->extensions && NAME_IS(h, "Sec-WebSocket-Extensions"))
                f->extensions = h;
            break;
        default:
            break;
        }
    }
}

int dx_handshake_check(const dx_http_request *req, dx_upgrade *up)
{
    fields f;

    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
        return 400;
    if (req->minor_version < 1)
        return 400;
    if (req->target_len == 0 || req->target[0] != '/')
        return 400;
    gather(req, &f);
    if (f.hosts != 1)
        return 400;
    if (!f.upgrade_websocket)
        return 426;
    if (!f.connection_upgrade)
        return 400;
    if (f.versions != 1 || !version_is_13(f.version))
        return 426;
    if (f.keys != 1 || !key_valid(f.key->value, f.key->value_len))
        return 400;

    split_target(req, up);
    up->key = f.key->value;
    up->key_len = f.key->value_len;
    up->protocols = f.protocols;
    up->extensions = f.extensions;
    up->offers = NULL;
    up->offers_len = 0;
    return 0;
}

/* ---- Sec-WebSocket-Accept ---------------------------------------------- */

/* Writes base64 of in[0..n) (n a multiple of 3 plus 0..2) into out. */
static size_t b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;

    for (; n - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

        out[o++] = dx_b64[v >> 18];
        out[o++] = dx_b64[v >> 12 & 63];
        out[o++] = dx_b64[v >> 6 & 63];
        out[o++] = dx_b64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;

        out[o++] = dx_b64[v >> 18];
        out[o++] = dx_b64[v >> 12 & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

        out[o++] = dx_b64[v >> 18];
        out[o++] = dx_b64[v >> 12 & 63];
        out[o++] = dx_b64[v >> 6 & 63];
        out[o++] = '=';
    }
    return o;
}

static void accept_value(const char *key, size_t key_len, char out[DX_ACCEPT_LEN])
{
    dx_sha1 sha;
    uint8_t md[DX_SHA1_LEN];

    dx_sha1_init(&sha);
    dx_sha1_update(&sha, key, key_len);
    dx_sha1_update(&sha, dx_ws_guid, sizeof dx_ws_guid - 1);
    dx_sha1_final(&sha, md);
    b64_encode(md, sizeof md, out);
}

void dx_handshake_accept(const char *key, size_t key_len, char out[DX_ACCEPT_LEN])
{
    accept_value(key, key_len, out);
}

/* ---- responses --------------------------------------------------------- */

/* A bounded string builder: appends fail quietly once out of room. */
typedef struct buf { char *p; size_t cap, len; int full; } buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->full || n > b->cap - b->len) {
        b->full = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_uint(buf *b, size_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(b, tmp + i, sizeof tmp - i);
}

/* 1 when s is a non-empty token (RFC 9110), so it is safe in a header. */
static int is_token(const char *s)
{
    if (*s == 0)
        return 0;
    for (; *s; s++)
        if (!dx_http_is_tchar((unsigned char)*s))
            return 0;
    return 1;
}

size_t dx_handshake_response(char *out, size_t cap, const char *key, size_t key_len,
                             const char *protocol, const char *extensions)
{
    buf b = { out, cap, 0, 0 };
    char accept[DX_ACCEPT_LEN];

    if (protocol && !is_token(protocol))
        return 0;
    accept_value(key, key_len, accept);
    puts_(&b, "HTTP/1.1 101 Switching Protocols\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n"
              "Sec-WebSocket-Accept: ");
    put(&b, accept, DX_ACCEPT_LEN);
    puts_(&b, "\r\n");
    if (protocol) {
        puts_(&b, "Sec-WebSocket-Protocol: ");
        puts_(&b, protocol);
        puts_(&b, "\r\n");
    }
    if (extensions) {
        puts_(&b, "Sec-WebSocket-Extensions: ");
        puts_(&b, extensions);
        puts_(&b, "\r\n");
    }
    puts_(&b, "\r\n");
    return b.full ? 0 : b.len;
}

const char *dx_http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 413: return "Content Too Large";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default:  return "Error";
    }
}

size_t dx_http_error_response(char *out, size_t cap, int status, const char *body)
{
    return dx_http_error_response_with(out, cap, status, NULL, body);
}

size_t dx_http_error_response_with(char *out, size_t cap, int status, const char *headers,
                                   const char *body)
{
    buf b = { out, cap, 0, 0 };
    const char *reason = dx_http_reason(status);

    if (status < 400 || status > 599)
        return 0;
    if (!body)
        body = reason;
    puts_(&b, "HTTP/1.1 ");
    put_uint(&b, (size_t)status);
    puts_(&b, " ");
    puts_(&b, reason);
    puts_(&b, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    put_uint(&b, strlen(body));
    if (status == 426)
        puts_(&b, "\r\nConnection: close, Upgrade\r\n"
                  "Upgrade: websocket\r\nSec-WebSocket-Version: 13");
    else
        puts_(&b, "\r\nConnection: close");
    puts_(&b, "\r\n");
    if (headers)
        puts_(&b, headers);
    puts_(&b, "\r\n");
    puts_(&b, body);
    return b.full ? 0 : b.len;
}
