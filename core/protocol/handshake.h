/* The server side of the WebSocket opening handshake (RFC 6455 section 4.2).
 *
 * Checks an upgrade request parsed by http.h, computes Sec-WebSocket-Accept
 * (base64 of SHA-1 of key + GUID, sha1.h) and writes the
 * 101 response or an HTTP error response. Pure C: no I/O, no allocation. */
#ifndef DX_HANDSHAKE_H
#define DX_HANDSHAKE_H

#include <stddef.h>
#include "http.h"

#define DX_ACCEPT_LEN 28   /* base64 of a 20-byte SHA-1 */

/* What a valid upgrade request asks for, pointing into the request buffer. */
typedef struct dx_upgrade {
    const char *path;  size_t path_len;    /* target before '?' */
    const char *query; size_t query_len;   /* after '?', without it; len 0 when none */
    const char *key;   size_t key_len;     /* Sec-WebSocket-Key as sent */
    const dx_http_header *protocols;       /* Sec-WebSocket-Protocol or NULL */
    const dx_http_header *extensions;      /* Sec-WebSocket-Extensions or NULL */
    const char *offers; size_t offers_len; /* subprotocols offered outside the headers, as
                                            * Sec-WebSocket-Protocol lists them (a session of
                                            * events and POSTs, whose query carries them); len 0: none */
} dx_upgrade;

/* Checks that req is a WebSocket upgrade. Returns 0 and fills *up when it is;
 * else the HTTP status to answer:
 *   400 method not GET, HTTP/1.0, no Host (or more than one, RFC 9112),
 *       Connection without "upgrade",
 *       a Sec-WebSocket-Key missing, repeated, or not base64 of 16 bytes
 *       (24 chars of the base64 alphabet ending in "=="),
 *       a target that is not origin-form (does not start with '/');
 *   426 no Upgrade header or one without the "websocket" token, or a
 *       Sec-WebSocket-Version missing, repeated or other than 13 (the caller
 *       answers with "Sec-WebSocket-Version: 13").
 * When several things are wrong the first in this order decides: method,
 * version, target, Host, Upgrade (426), Connection, Sec-WebSocket-Version
 * (426), Sec-WebSocket-Key. The Upgrade and Connection tokens are looked for
 * in every line of that name. up->protocols and up->extensions point at the
 * first line of that name; RFC 6455 lets a client repeat them, so a caller
 * that honours more scans req->headers for the others. */
int dx_handshake_check(const dx_http_request *req, dx_upgrade *up);

/* Computes Sec-WebSocket-Accept for key[0..key_len) into out (DX_ACCEPT_LEN
 * bytes, not NUL-terminated). */
void dx_handshake_accept(const char *key, size_t key_len, char out[DX_ACCEPT_LEN]);

/* Writes the 101 Switching Protocols response for key into out[0..cap),
 * with a Sec-WebSocket-Protocol line when protocol is not NULL, and a
 * Sec-WebSocket-Extensions line when extensions is not NULL (a value the
 * server made itself, e.g. by dx_pmd_negotiate, written as given). Returns
 * its length, or 0 when cap is too small, or when protocol is not a token (so
 * no header can be injected). */
size_t dx_handshake_response(char *out, size_t cap, const char *key, size_t key_len,
                             const char *protocol, const char *extensions);

/* The reason phrase of an HTTP status ("Error" for one it does not know). */
const char *dx_http_reason(int status);

/* Writes a complete HTTP/1.1 error response for status (400, 403, 404, 426,
 * 431, 500, 503 and any other 4xx/5xx) with a short text/plain body (body, or
 * the reason phrase when body is NULL), "Content-Type: text/plain;
 * charset=utf-8", its Content-Length, "Connection: close", and for 426 the
 * "Sec-WebSocket-Version: 13" and "Upgrade: websocket" lines (then the
 * Connection line is "Connection: close, Upgrade", as RFC 9110 asks of a
 * sender of Upgrade). Unknown statuses get the reason phrase "Error".
 * Returns its length, or 0 when cap is too small or status is not in
 * 400..599. */
size_t dx_http_error_response(char *out, size_t cap, int status, const char *body);

/* dx_http_error_response with more header lines after the Connection line:
 * headers (each line ending in CRLF, e.g. "Retry-After: 5\r\n"), or NULL
 * for none. Same returns. */
size_t dx_http_error_response_with(char *out, size_t cap, int status, const char *headers,
                                   const char *body);

#endif
