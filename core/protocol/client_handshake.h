/* The client side of the WebSocket opening handshake (RFC 6455 section 4.1).
 *
 * Writes the upgrade request and checks the server's answer: status 101,
 * "Upgrade: websocket", "Connection: upgrade", and Sec-WebSocket-Accept
 * computed from our key. Pure C: no I/O, no allocation. */
#ifndef DX_CLIENT_HANDSHAKE_H
#define DX_CLIENT_HANDSHAKE_H

#include <stddef.h>

#define DX_CLIENT_KEY_LEN 24   /* base64 of 16 random bytes */

/* Encodes 16 random bytes as a Sec-WebSocket-Key into key (24 bytes, not
 * NUL-terminated). */
void dx_client_key(const unsigned char raw[16], char key[DX_CLIENT_KEY_LEN]);

/* Writes "GET target HTTP/1.1" with Host, Upgrade, Connection,
 * Sec-WebSocket-Key (key, DX_CLIENT_KEY_LEN bytes),
 * Sec-WebSocket-Version: 13 and, when protocols is not NULL,
 * Sec-WebSocket-Protocol: protocols into out[0..cap). host is the Host
 * value ("name:port"), target the request-target ("/path?query"),
 * protocols the subprotocols offered, most wanted first, as a list of
 * tokens joined by ", " ("duplex.1, chat"). Returns the request's length,
 * or 0 when it does not fit, when host or target hold a byte that would
 * end a line (CR, LF, NUL), when target does not start with '/', or when
 * protocols is not such a list. */
size_t dx_client_request(char *out, size_t cap, const char *host, const char *target,
                         const char key[DX_CLIENT_KEY_LEN], const char *protocols);

/* 1 when s is a non-empty list of tokens (RFC 9110) joined by ", ". */
int dx_client_protocols_valid(const char *s);

enum {
    DX_RESP_INCOMPLETE = 0,    /* the head has not ended yet: read more */
    DX_RESP_BAD = -1,          /* not an HTTP/1.1 response head */
    DX_RESP_REFUSED = -2,      /* a status other than 101: *status says which */
    DX_RESP_NOT_WEBSOCKET = -3,/* 101 without Upgrade: websocket / Connection: upgrade */
    DX_RESP_BAD_ACCEPT = -4,   /* Sec-WebSocket-Accept missing or wrong */
    DX_RESP_EXTENSION = -5,    /* an extension we did not offer */
    DX_RESP_PROTOCOL = -6      /* a subprotocol we did not offer, or more than one */
};

/* Checks the response head in buf[0..len) to a request sent with key and
 * offering protocols (as given to dx_client_request; NULL: none).
 * Returns the head's length (through its blank line) when it is complete
 * and accepts the upgrade; DX_RESP_INCOMPLETE when the blank line has not
 * arrived (the caller bounds the head's size); or a negative DX_RESP_*.
 * *status gets the status code whenever the status line was read (else 0).
 * On success *protocol and *protocol_len give the subprotocol the server
 * chose (a span of buf, one of those offered, compared exactly), or NULL
 * and 0 when it chose none. Bytes after the head are the server's first
 * frames. */
long dx_client_check_response(const char *buf, size_t len, const char key[DX_CLIENT_KEY_LEN],
                              const char *protocols, int *status,
                              const char **protocol, size_t *protocol_len);

/* A short English phrase for a DX_RESP_* error. */
const char *dx_client_response_error(long r);

#endif
