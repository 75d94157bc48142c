/* HTTP/1.1 request head parser: see http.h. */
#include "http.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

/* RFC 9110 tchar: "!#$%&'*+-.^_`|~", DIGIT, ALPHA; one bit per byte. */
const uint32_t dx_http_tchar_bits[8] = {
    0x00000000,                        /* 0x00-0x1F: controls */
    0x03FF6CFA,                        /* 0x20-0x3F: ! # $ % & ' * + - . 0-9 */
    0xC7FFFFFE,                        /* 0x40-0x5F: A-Z ^ _ */
    0x57FFFFFF,                        /* 0x60-0x7F: ` a-z | ~ */
    0, 0, 0, 0,
};

/* A byte allowed in a field value: HTAB, visible ASCII, SP, obs-text. */
static int is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Finds the end of the head (just past the blank line) in buf[0..len),
 * searching from start; 0 when it has not arrived. A head ends at an LF
 * followed by LF or by CR LF. */
static size_t find_head_end(const char *buf, size_t len, size_t start)
{
    const char *p = buf + start, *end = buf + len;

    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        if (end - p >= 2 && p[1] == '\n')
            return (size_t)(p - buf) + 2;
        if (end - p >= 3 && p[1] == '\r' && p[2] == '\n')
            return (size_t)(p - buf) + 3;
        p++;
    }
    return 0;
}

/* One line of the head: [start, start + len), without its CR LF or LF. */
typedef struct line { const char *start; size_t len; } line;

/* Cuts the line beginning at *pos (which is before end, and end follows an
 * LF) and moves *pos past its line end. */
static line next_line(const char *buf, size_t *pos, size_t end)
{
    const char *s = buf + *pos;
    const char *nl = memchr(s, '\n', end - *pos);
    line l = { s, (size_t)(nl - s) };

    if (l.len > 0 && s[l.len - 1] == '\r')
        l.len--;
    *pos = (size_t)(nl - buf) + 1;
    return l;
}

/* Parses "method SP target SP HTTP/1.d"; 0 on success, -1 when malformed. */
static int parse_request_line(line l, dx_http_request *out)
{
    const char *p = l.start, *end = l.start + l.len;
    const char *m = p, *t;

    while (p < end && dx_http_is_tchar((unsigned char)*p))
        p++;
    if (p == m || p == end || *p != ' ')
        return -1;
    out->method = m;
    out->method_len = (size_t)(p - m);
    t = ++p;
    while (p < end && (unsigned char)*p > 0x20 && *p != 0x7F)
        p++;
    if (p == t || p == end || *p != ' ')
        return -1;
    out->target = t;
    out->target_len = (size_t)(p - t);
    p++;
    if (end - p != 8 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9')
        return -1;
    out->minor_version = p[7] - '0';
    return 0;
}

/* Parses "name:value" with the value trimmed; 0 on success, -1 when bad. */
static int parse_header_line(line l, dx_http_header *h)
{
    const char *p = l.start, *end = l.start + l.len, *v;

    while (p < end && dx_http_is_tchar((unsigned char)*p))
        p++;
    if (p == l.start || p == end || *p != ':')
        return -1;
    h->name = l.start;
    h->name_len = (size_t)(p - l.start);
    p++;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    v = p;
    for (; p < end; p++)
        if (!is_value_char((unsigned char)*p))
            return -1;
    while (p > v && (p[-1] == ' ' || p[-1] == '\t'))
        p--;
    h->value = v;
    h->value_len = (size_t)(p - v);
    return 0;
}

/* Parses the complete head buf[0..end) into *out (whose headers and
 * num_headers capacity are set). Returns 0 or DX_HTTP_BAD / DX_HTTP_TOO_MANY. */
static int parse_head(const char *buf, size_t end, dx_http_request *out)
{
    size_t pos = 0, n = 0;
    line l = next_line(buf, &pos, end);

    if (parse_request_line(l, out) < 0)
        return DX_HTTP_BAD;
    for (;;) {
        l = next_line(buf, &pos, end);
        if (l.len == 0)
            break;                       /* the blank line: it ends at end */
        if (l.start[0] == ' ' || l.start[0] == '\t')
            return DX_HTTP_BAD;          /* obs-fold, or space before a name */
        if (n == out->num_headers)
            return DX_HTTP_TOO_MANY;
        if (parse_header_line(l, &out->headers[n]) < 0)
            return DX_HTTP_BAD;
        n++;
    }
    out->num_headers = n;
    return 0;
}

int dx_http_parse_request(const char *buf, size_t len, size_t prev_len,
                          dx_http_request *req)
{
    size_t start = prev_len < len ? prev_len : len;
    size_t end;
    dx_http_request r = *req;
    int rc;

    start = start >= 3 ? start - 3 : 0;
    end = find_head_end(buf, len, start);
    if (end == 0)
        return DX_HTTP_INCOMPLETE;
    if (end > INT_MAX)
        return DX_HTTP_BAD;
    rc = parse_head(buf, end, &r);
    if (rc < 0)
        return rc;
    *req = r;
    return (int)end;
}

const dx_http_header *dx_http_find(const dx_http_request *req, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < req->num_headers; i++) {
        const dx_http_header *h = &req->headers[i];
        size_t j = 0;

        if (h->name_len != n)
            continue;
        while (j < n && lower((unsigned char)h->name[j]) == lower((unsigned char)name[j]))
            j++;
        if (j == n)
            return h;
    }
    return NULL;
}

int dx_http_has_token(const char *value, size_t len, const char *token)
{
    size_t n = strlen(token), i = 0;

    while (i < len) {
        size_t s, e, j;

        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            i++;
        s = i;
        while (i < len && value[i] != ',')
            i++;
        e = i;
        while (e > s && (value[e - 1] == ' ' || value[e - 1] == '\t'))
            e--;
        if (e - s != n || n == 0)
            continue;
        for (j = 0; j < n && lower((unsigned char)value[s + j]) == lower((unsigned char)token[j]); j++)
            ;
        if (j == n)
            return 1;
    }
    return 0;
}
