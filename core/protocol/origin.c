/* Origins: see origin.h. */
#include "origin.h"

#include <string.h>

/* An origin or a Host header, taken apart. */
typedef struct origin {
    const char *scheme, *host;
    size_t scheme_len, host_len;
    unsigned port;              /* the default port when none was written */
    int has_port;
} origin;

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int same_ci(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

static int host_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_';
}

/* Parses host [":" port] from s[0..len) into o (scheme untouched). Returns
 * 1, or 0 when it is not one. */
static int parse_authority(const char *s, size_t len, origin *o)
{
    size_t i = 0;
    if (len > 0 && s[0] == '[') {
        while (i < len && s[i] != ']') {
            int c = (unsigned char)s[i];
            if (i > 0 && !(c == ':' || c == '.' || host_char(c)))
                return 0;
            i++;
        }
        if (i == len || i < 2)
            return 0;
        i++;                                /* the ']' */
    } else {
        while (i < len && host_char((unsigned char)s[i]))
            i++;
        if (i == 0)
            return 0;
    }
    o->host = s;
    o->host_len = i;
    o->has_port = 0;
    if (i == len)
        return 1;
    if (s[i] != ':' || i + 1 == len || len - i - 1 > 5)
        return 0;
    unsigned port = 0;
    for (size_t j = i + 1; j < len; j++) {
        if (s[j] < '0' || s[j] > '9')
            return 0;
        port = port * 10 + (unsigned)(s[j] - '0');
    }
    if (port == 0 || port > 65535)
        return 0;
    o->port = port;
    o->has_port = 1;
    return 1;
}

/* Parses scheme "://" host [":" port]. Returns 1, or 0. */
static int parse_origin(const char *s, size_t len, origin *o)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 2 < len; i++)
        if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/') {
            sep = s + i;
            break;
        }
    if (sep == NULL)
        return 0;
    o->scheme = s;
    o->scheme_len = (size_t)(sep - s);
    unsigned def;
    if (same_ci(s, o->scheme_len, "http", 4) || same_ci(s, o->scheme_len, "ws", 2))
        def = 80;
    else if (same_ci(s, o->scheme_len, "https", 5) || same_ci(s, o->scheme_len, "wss", 3))
        def = 443;
    else
        return 0;
    const char *a = sep + 3;
    if (!parse_authority(a, len - (size_t)(a - s), o))
        return 0;
    if (!o->has_port)
        o->port = def;
    else if (o->port == def)
        o->has_port = 0;                    /* "https://h:443" is "https://h" */
    return 1;
}

int dx_origin_valid(const char *s, size_t len)
{
    origin o;
    return (len == 4 && memcmp(s, "null", 4) == 0) || parse_origin(s, len, &o);
}

/* 1 when o is the host the Host header h names. */
static int own_host(const origin *o, const dx_http_header *h)
{
    origin host;
    if (h == NULL || !parse_authority(h->value, h->value_len, &host))
        return 0;
    if (!same_ci(o->host, o->host_len, host.host, host.host_len))
        return 0;
    return host.has_port ? host.port == o->port : !o->has_port;
}

/* 1 when the listed origin s[0..len) is the Origin value v (parsed as o,
 * or not an origin when ok is 0). */
static int listed(const char *s, size_t len, const dx_http_header *v, const origin *o, int ok)
{
    if (len == 4 && memcmp(s, "null", 4) == 0)
        return v->value_len == 4 && memcmp(v->value, "null", 4) == 0;
    origin l;
    if (!ok || !parse_origin(s, len, &l))
        return 0;
    return same_ci(l.scheme, l.scheme_len, o->scheme, o->scheme_len) &&
           same_ci(l.host, l.host_len, o->host, o->host_len) && l.port == o->port;
}

int dx_origin_allowed(const dx_http_request *req, const char *allowed)
{
    const dx_http_header *v = dx_http_find(req, "origin");
    if (v == NULL || (allowed[0] == '*' && allowed[1] == 0))
        return 1;
    for (size_t i = 0, n = 0; i < req->num_headers; i++)     /* one Origin, or none is right */
        if (same_ci(req->headers[i].name, req->headers[i].name_len, "origin", 6) && ++n > 1)
            return 0;
    origin o;
    int ok = parse_origin(v->value, v->value_len, &o);
    if (ok && own_host(&o, dx_http_find(req, "host")))
        return 1;
    for (const char *p = allowed; *p; ) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (listed(p, len, v, &o, ok))
            return 1;
        p += len + (end != NULL);
    }
    return 0;
}
