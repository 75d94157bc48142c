/* permessage-deflate (RFC 7692): negotiation, and one message at a time
 * compressed or inflated with zlib.
 *
 * Pure C: no I/O, no Lua, no libev. zlib allocates its own state; nothing
 * else here does. */
#ifndef DX_PMD_H
#define DX_PMD_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>
#include "http.h"

enum { DX_PMD_OFF = 0, DX_PMD_SHARED = 1, DX_PMD_DEDICATED = 2 };

/* What a server is willing to do. */
typedef struct dx_pmd_config {
    int mode;            /* DX_PMD_OFF, _SHARED (no context takeover either way: no
                          * per-connection zlib state between messages) or _DEDICATED
                          * (per-connection streams that keep their window) */
    int window_bits;     /* DEDICATED: the largest LZ77 window either side uses, 9..15 */
    int mem_level;       /* deflate memLevel, 1..9 */
} dx_pmd_config;

/* What one connection agreed on. */
typedef struct dx_pmd_params {
    uint8_t server_no_context_takeover;  /* we start every message from an empty window */
    uint8_t client_no_context_takeover;  /* so does the client: we may inflate each message alone */
    uint8_t server_window_bits;          /* we compress with this window, 9..15 */
    uint8_t client_window_bits;          /* the client compresses with at most this, 8..15 */
} dx_pmd_params;

#define DX_PMD_RESPONSE_MAX 160   /* room for the longest response value */

/* Negotiates from every Sec-WebSocket-Extensions field of req (a header
 * may be repeated; offers are taken in order). An offer of another
 * extension is passed over; a permessage-deflate offer with an unknown
 * parameter, a repeated one, a bad value, or server_max_window_bits=8
 * (which zlib cannot produce) is declined, and the next one is tried.
 * The first acceptable offer wins. The response names only parameters
 * the RFC allows: client_max_window_bits only when offered,
 * server_max_window_bits only when offered.
 *
 * Returns 1 with *out filled and resp (cap >= DX_PMD_RESPONSE_MAX) holding
 * the NUL-terminated response value; 0 when nothing is accepted (mode off,
 * no offer, all declined: answer without the extension); -1 when a field is
 * not a syntactically valid extension list (RFC 6455 9.1: answer 400).
 * Details: with mode off no field is examined (0). Extension and parameter
 * names match case-insensitively; empty list elements, and empty fields,
 * are ignored (RFC 9110 5.6.1); a quoted value must unquote to a token, and
 * "p=" with nothing after it is malformed (-1). A cap too small for the
 * response gives 0. On 0 and -1, *out is untouched and resp is "" (when
 * cap > 0). */
int dx_pmd_negotiate(const dx_http_request *req, const dx_pmd_config *cfg,
                     dx_pmd_params *out, char *resp, size_t cap);

/* Starts a raw inflate stream with the given window (8..15; 8 is taken as
 * 9). Returns 0, or -1 when zlib cannot allocate it. */
int dx_pmd_inflate_init(z_stream *z, int window_bits);

/* Where inflated bytes go: returns 0 to go on, or a close code to stop. */
typedef int (*dx_pmd_sink)(void *ud, const uint8_t *p, size_t len);

/* Inflates in[0..len) (a piece of one message's compressed payload) with
 * z, handing the output to sink piece by piece (at most 16 KiB at a time,
 * from a buffer on the stack). With final set, also inflates the 00 00 FF FF
 * tail that RFC 7692 strips from each message. Returns 0; the sink's code
 * when it stopped (the rest is not inflated: a decompression bomb stops at
 * the sink's limit); or 1007 when the data is not valid deflate. A block
 * with BFINAL set (RFC 7692 7.2.3.4 allows it) ends the deflate stream: z is
 * reset for the next message and any bytes after it in this message are
 * ignored.
 * Details: the reset at the message's end keeps the window, so a next
 * message that refers to it still inflates. A message with no payload
 * bytes at all is an empty message. A message that, with the tail, does
 * not end on a block boundary (cut short) is 1007. After 1007 z has been
 * reset and can be used again; after the sink's code z is left inside the
 * message (inflateReset it before reuse). 1011 when zlib cannot allocate
 * its window. z->total_in counts the current message's bytes only (it is
 * set to 0 at each message's end). */
int dx_pmd_inflate(z_stream *z, const uint8_t *in, size_t len, int final,
                   dx_pmd_sink sink, void *ud);

/* Starts a raw deflate stream with window_bits (9..15) and mem_level.
 * Returns 0, or -1 when zlib cannot allocate it. */
int dx_pmd_deflate_init(z_stream *z, int window_bits, int mem_level);

/* Bytes dx_pmd_deflate may need for len bytes of input: deflateBound()
 * plus 16 (the empty stored block of the sync flush, at most 5 bytes, and
 * the one spare byte dx_pmd_deflate needs to see that zlib is done). */
size_t dx_pmd_deflate_bound(const z_stream *z, size_t len);

/* Compresses one message in[0..len) into out[0..cap) (cap >=
 * dx_pmd_deflate_bound), ending with a sync flush whose 00 00 FF FF tail is
 * left out, as RFC 7692 says. With reset, the stream first forgets its
 * window (no context takeover). Returns the compressed length, or 0 when
 * zlib failed (the caller then sends the message uncompressed).
 * Details: compresses at level 1 (DX_PMD_LEVEL in pmd.c). On failure
 * (including too small a cap) the stream is reset, so the next message
 * never refers to bytes the peer did not get. An empty message gives the
 * single byte 0x00. */
size_t dx_pmd_deflate(z_stream *z, const uint8_t *in, size_t len,
                      uint8_t *out, size_t cap, int reset);

#endif
