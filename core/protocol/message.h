/* Message-level rules of RFC 6455 on top of the frame codec: fragment
 * sequencing, the message size limit, incremental UTF-8 of text messages,
 * close frame payloads and close codes.
 *
 * Pure C: no I/O, no allocation. Where the bytes of a message are kept is
 * the caller's business; this only says whether they may be. */
#ifndef DX_MESSAGE_H
#define DX_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include "frame.h"

/* Close codes used by the core. */
enum {
    DX_CLOSE_NORMAL = 1000, DX_CLOSE_GOING_AWAY = 1001,
    DX_CLOSE_PROTOCOL = 1002, DX_CLOSE_UNSUPPORTED = 1003,
    DX_CLOSE_NO_STATUS = 1005, DX_CLOSE_ABNORMAL = 1006,
    DX_CLOSE_INVALID_DATA = 1007, DX_CLOSE_POLICY = 1008,
    DX_CLOSE_TOO_BIG = 1009, DX_CLOSE_INTERNAL = 1011
};

/* The state of the data message being received on one connection. */
typedef struct dx_message {
    uint8_t in_message;   /* 1 between a non-final first frame and its final continuation */
    uint8_t opcode;       /* DX_OP_TEXT or DX_OP_BINARY of the message in progress */
    uint8_t compressed;   /* RSV1 on the first frame: permessage-deflate (RFC 7692) */
    uint8_t largest;      /* bits of the size of the largest message that ended well (0: none):
                           * the peer has sent at least 1 << (largest - 1) bytes in one go */
    uint32_t utf8;        /* dx_utf8_feed state for a text message */
    uint64_t size;        /* payload bytes announced so far (frame headers seen) */
} dx_message;             /* 16 bytes: one is in every connection */

/* Starts a connection's message state (largest too). */
void dx_message_init(dx_message *m);

/* Checks a data frame header (opcode TEXT, BINARY or CONT) against the
 * message in progress and the limit max_size (bytes of one whole message).
 * Returns 0 when the frame may be received: a TEXT/BINARY frame starts a
 * message (in_message becomes !fin), a CONT frame continues one; the frame's
 * length is added to size. Returns DX_CLOSE_PROTOCOL for a CONT frame with no
 * message in progress or a TEXT/BINARY frame inside one, and DX_CLOSE_TOO_BIG
 * when size would pass max_size (checked at the header, before any payload
 * is buffered; no overflow for any 63-bit length). On an error *m is left
 * unchanged. Control frames must not be passed here (one that is, or an
 * unknown opcode, gets DX_CLOSE_PROTOCOL). opcode keeps the message's type,
 * fragmented or not, until dx_message_end. */
int dx_message_frame(dx_message *m, const dx_frame_header *h, uint64_t max_size);

/* Feeds unmasked payload bytes of the current data frame. For a text message
 * they are validated incrementally; returns DX_CLOSE_INVALID_DATA at the
 * first invalid byte, else 0. */
int dx_message_payload(dx_message *m, const uint8_t *p, size_t len);

/* Called once the final frame's payload has been fed in full. Returns
 * DX_CLOSE_INVALID_DATA when a text message ends inside a UTF-8 sequence,
 * else 0 and largest takes the message's size into account; resets the
 * state for the next message either way (largest stays). */
int dx_message_end(dx_message *m);

/* 1 when code may appear in a close frame on the wire: 1000-1003,
 * 1007-1014, 3000-4999. Everything else (including 1004-1006, 1015) is 0. */
int dx_close_code_valid(unsigned code);

/* Parses a close frame payload p[0..len) (already unmasked).
 * Empty payload: *code = DX_CLOSE_NO_STATUS, empty reason, returns 0.
 * Returns DX_CLOSE_PROTOCOL for a 1-byte payload or an invalid code,
 * DX_CLOSE_INVALID_DATA when the reason is not valid UTF-8 (the code is
 * checked first), else 0 with *code set and *reason / *reason_len pointing
 * into p. On an invalid code or reason *code holds the code received. */
int dx_close_parse(const uint8_t *p, size_t len, unsigned *code,
                   const uint8_t **reason, size_t *reason_len);

#endif
