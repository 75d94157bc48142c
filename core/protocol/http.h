/* HTTP/1.1 request head parser for the WebSocket opening handshake.
 *
 * Incremental and bounded, after picohttpparser: the caller keeps the bytes
 * received so far in one buffer and calls again when more arrive; the
 * parser never allocates and fills caller-given arrays of pointers into that
 * buffer. Pure C: no I/O. */
#ifndef DX_HTTP_H
#define DX_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct dx_http_header {
    const char *name;  size_t name_len;
    const char *value; size_t value_len;   /* without surrounding spaces/tabs */
} dx_http_header;

typedef struct dx_http_request {
    const char *method; size_t method_len;
    const char *target; size_t target_len;  /* request-target as sent: path[?query] */
    int minor_version;                      /* HTTP/1.<minor_version> */
    dx_http_header *headers;                /* caller's array ... */
    size_t num_headers;                     /* in: its capacity; out: headers found */
} dx_http_request;

enum {
    DX_HTTP_INCOMPLETE = -2,   /* the head has not ended yet: read more */
    DX_HTTP_BAD = -1,          /* malformed: answer 400 */
    DX_HTTP_TOO_MANY = -3      /* more header fields than capacity: answer 431 */
};

/* Parses the request head in buf[0..len). prev_len is the len of the
 * previous call on the same buffer (0 the first time), so the search for the
 * end of the head resumes where it stopped. Accepts CRLF line ends (and bare
 * LF, as RFC 9112 allows); rejects obs-fold, control bytes, a missing or
 * malformed request line, header names with bytes outside tchar, an
 * HTTP version other than HTTP/1.x. Returns the length of the head
 * (through the blank line) when complete, or DX_HTTP_INCOMPLETE, DX_HTTP_BAD,
 * DX_HTTP_TOO_MANY. The caller bounds the head's size: when its buffer is
 * full and the answer is still DX_HTTP_INCOMPLETE, it answers 431.
 *
 * The head is checked only once its blank line has arrived. The request
 * line is "method SP target SP HTTP/1.d" with single spaces; an empty line
 * before it, or whitespace before the first header name, is BAD. Header
 * values may hold HTAB, SP, visible ASCII and bytes >= 0x80. *req (method,
 * target, minor_version, num_headers) is written only when the result is a
 * length, so after INCOMPLETE, BAD or TOO_MANY num_headers still holds the
 * capacity and req can be passed again as it is; headers[] may have been
 * written in part. prev_len larger than len is treated as len. */
int dx_http_parse_request(const char *buf, size_t len, size_t prev_len,
                          dx_http_request *req);

/* Finds a header by case-insensitive name; NULL when absent. When a name
 * appears more than once the first is returned. */
const dx_http_header *dx_http_find(const dx_http_request *req, const char *name);

/* 1 when the comma-separated list value[0..len) contains token
 * (case-insensitive, surrounding whitespace ignored), else 0. */
int dx_http_has_token(const char *value, size_t len, const char *token);

/* RFC 9110 tchar, one bit per byte (http.c). */
extern const uint32_t dx_http_tchar_bits[8];

/* 1 when c is a byte of a token (RFC 9110 tchar: DIGIT, ALPHA and
 * "!#$%&'*+-.^_`|~"), the one definition the protocol's parsers and
 * checkers use (inline: the request parser asks it for every byte of
 * every header name). */
static inline int dx_http_is_tchar(unsigned char c)
{
    return (dx_http_tchar_bits[c >> 5] >> (c & 31)) & 1;
}

#endif
