/* Plain HTTP on the WebSocket port: responses, and static files from one
 * root directory (GET and HEAD; index.html; ETag / If-None-Match; no way
 * out of the root, by "..", by its encodings, or by symlinks). A file is
 * sent from its descriptor as the peer takes it (dx_out_file), never read
 * whole into memory: any size, at no cost in memory per download. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "transport/internal.h"

static int method_is(const dx_http_request *req, const char *m)
{
    size_t n = strlen(m);
    return req->method_len == n && memcmp(req->method, m, n) == 0;
}

int dx_http_is_head(const dx_http_request *req) { return method_is(req, "HEAD"); }
int dx_http_is_get_or_head(const dx_http_request *req)
{
    return method_is(req, "GET") || method_is(req, "HEAD");
}

/* 1 when the connection may carry another request after this one. */
int dx_http_keep_alive(const dx_http_request *req)
{
    const dx_http_header *h = dx_http_find(req, "connection");
    if (req->minor_version == 0)
        return h && dx_http_has_token(h->value, h->value_len, "keep-alive");
    if (h && dx_http_has_token(h->value, h->value_len, "close"))
        return 0;
    /* A body we do not read would be taken for the next request. */
    if (dx_http_find(req, "content-length") || dx_http_find(req, "transfer-encoding"))
        return 0;
    return 1;
}

int dx_http_respond(dx_conn *c, int status, const char *headers, const void *body,
                    size_t len, int head_only, int keep_alive)
{
    char head[1024];
    char length[40] = "";
    if (status != 204)                     /* a 204 has no body, and says no length (RFC 9110) */
        snprintf(length, sizeof length, "Content-Length: %zu\r\n", len);
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n%sConnection: %s\r\n%s\r\n",
                     status, dx_http_reason(status), length, keep_alive ? "keep-alive" : "close",
                     headers ? headers : "");
    if (n < 0 || (size_t)n >= sizeof head)
        return -1;
    size_t blen = head_only || status == 304 ? 0 : len;
    uint8_t *p = dx_out_reserve(c, (size_t)n + blen);
    if (p == NULL)
        return -1;
    memcpy(p, head, (size_t)n);
    if (blen)
        memcpy(p + n, body, blen);
    return 0;
}

static int error_reply(dx_conn *c, const dx_http_request *req, int status, const char *extra, int keep)
{
    const char *reason = dx_http_reason(status);
    char headers[128];
    snprintf(headers, sizeof headers, "Content-Type: text/plain; charset=utf-8\r\n%s", extra ? extra : "");
    dx_http_respond(c, status, headers, reason, strlen(reason), dx_http_is_head(req), keep);
    return 1;
}

int dx_http_hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Decodes the path part of target into out (NUL-terminated). Returns 0,
 * 400 for a malformed or NUL escape, 404 for a ".." segment or one that is
 * too long. */
static int decode_path(const char *t, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && t[i] != '?' && t[i] != '#'; i++) {
        char ch = t[i];
        if (ch == '%') {
            int hi = i + 2 < len ? dx_http_hexval(t[i + 1]) : -1;
            int lo = i + 2 < len ? dx_http_hexval(t[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return 400;
            ch = (char)(hi << 4 | lo);
            if (ch == 0)
                return 400;
            i += 2;
        }
        if (o + 1 >= cap)
            return 404;
        out[o++] = ch;
    }
    out[o] = 0;
    /* No segment may be "..", however it was written. */
    for (const char *s = out; *s; ) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if ((n == 2 && s[0] == '.' && s[1] == '.') || (n == 1 && s[0] == '.'))
            return 404;
        if (!e)
            break;
        s = e + 1;
    }
    return out[0] == '/' ? 0 : 400;
}

static const char *content_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        { ".html", "text/html; charset=utf-8" }, { ".htm", "text/html; charset=utf-8" },
        { ".js", "text/javascript; charset=utf-8" }, { ".mjs", "text/javascript; charset=utf-8" },
        { ".css", "text/css; charset=utf-8" }, { ".json", "application/json" },
        { ".txt", "text/plain; charset=utf-8" }, { ".svg", "image/svg+xml" },
        { ".png", "image/png" }, { ".jpg", "image/jpeg" }, { ".jpeg", "image/jpeg" },
        { ".gif", "image/gif" }, { ".ico", "image/x-icon" }, { ".webp", "image/webp" },
        { ".wasm", "application/wasm" }, { ".map", "application/json" },
    };
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* 1 when the If-None-Match list holds etag (or "*"). */
static int etag_matches(const dx_http_request *req, const char *etag)
{
    const dx_http_header *h = dx_http_find(req, "if-none-match");
    if (h == NULL)
        return 0;
    size_t n = strlen(etag);
    for (size_t i = 0; i < h->value_len; i++) {
        if (h->value[i] == '*')
            return 1;
        if (h->value_len - i >= n && memcmp(h->value + i, etag, n) == 0)
            return 1;
    }
    return 0;
}

int dx_static_serve(dx_conn *c, const char *root, const dx_http_request *req, int keep)
{
    char path[PATH_MAX], joined[PATH_MAX * 2], real[PATH_MAX], realroot[PATH_MAX];
    int bad = decode_path(req->target, req->target_len, path, sizeof path);
    if (bad)
        return error_reply(c, req, bad, NULL, keep);
    if (realpath(root, realroot) == NULL)
        return 0;
    snprintf(joined, sizeof joined, "%s%s", realroot, path);
    if (path[strlen(path) - 1] == '/')
        strncat(joined, "index.html", sizeof joined - strlen(joined) - 1);
    if (realpath(joined, real) == NULL)
        return 0;                                /* no such file: not ours to answer */
    size_t rl = strlen(realroot);
    if (strncmp(real, realroot, rl) != 0 || (real[rl] != '/' && real[rl] != 0))
        return error_reply(c, req, 404, NULL, keep);   /* a symlink out of the root */
    struct stat st;
    if (stat(real, &st) < 0)
        return 0;
    if (S_ISDIR(st.st_mode)) {
        strncat(real, "/index.html", sizeof real - strlen(real) - 1);
        if (stat(real, &st) < 0 || !S_ISREG(st.st_mode))
            return 0;
    }
    if (!S_ISREG(st.st_mode))
        return 0;
    if (!dx_http_is_get_or_head(req))
        return error_reply(c, req, 405, "Allow: GET, HEAD\r\n", keep);
    /* The length and validators come from the file that is sent, opened
     * once (a GET), so a file replaced meanwhile is sent whole, as stated. */
    int fd = -1;
    if (!dx_http_is_head(req)) {
        fd = open(real, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            if (fd >= 0)
                close(fd);
            return error_reply(c, req, 500, NULL, keep);   /* the connection is fine: it goes on */
        }
    }

    char etag[64], date[64], headers[512];
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtime);
    struct tm tm;
    gmtime_r(&st.st_mtime, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(headers, sizeof headers, "Content-Type: %s\r\nETag: %s\r\nLast-Modified: %s\r\n",
             content_type(real), etag, date);
    size_t size = (size_t)st.st_size;
    int modified = !etag_matches(req, etag);
    /* The head says the length; the body (a GET of a modified file) goes
     * from the descriptor. */
    if (dx_http_respond(c, modified ? 200 : 304, headers, NULL, modified ? size : 0, 1, keep) < 0
        || fd < 0 || !modified || size == 0) {
        if (fd >= 0)
            close(fd);
        return 1;
    }
    if (dx_out_file(c, fd, size) < 0)
        dx_conn_linger(c, 0);                    /* the head is queued, the body cannot follow */
    return 1;
}

int dx_client_js_serve(dx_conn *c, const dx_http_request *req, int keep)
{
    static const char path[] = "/duplex.js";
    size_t n = sizeof path - 1;
    const char *t = req->target;
    if (req->target_len < n || memcmp(t, path, n) != 0
        || (req->target_len > n && t[n] != '?'))
        return 0;
    dx_server *s = c->srv;
    if (!dx_http_is_get_or_head(req))
        return error_reply(c, req, 405, "Allow: GET, HEAD\r\n", keep);
    char headers[256];
    snprintf(headers, sizeof headers, "Content-Type: application/javascript; charset=utf-8\r\n"
             "ETag: %s\r\nCache-Control: no-cache\r\n", s->client_js_etag);
    int modified = !etag_matches(req, s->client_js_etag);
    dx_http_respond(c, modified ? 200 : 304, headers, s->client_js, modified ? s->client_js_len : 0,
                    dx_http_is_head(req), keep);
    return 1;
}
