/* RFC 6455 frame codec: header parser, header serializer, masking.
 *
 * Pure C: no I/O, no allocation. The caller owns every buffer. */
#ifndef DX_FRAME_H
#define DX_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
    DX_OP_CONT = 0x0, DX_OP_TEXT = 0x1, DX_OP_BINARY = 0x2,
    DX_OP_CLOSE = 0x8, DX_OP_PING = 0x9, DX_OP_PONG = 0xA
};

#define DX_RSV1 0x4               /* in dx_frame_header.rsv: permessage-deflate's bit */
#define DX_FRAME_HEADER_MAX 14   /* 2 + 8 (64-bit length) + 4 (mask) */
#define DX_CONTROL_MAX 125       /* largest control frame payload */

typedef struct dx_frame_header {
    uint8_t fin;        /* 1 on the last frame of a message */
    uint8_t rsv;        /* RSV1..3 as bits 0x4, 0x2, 0x1 (i.e. byte0 >> 4 & 7) */
    uint8_t opcode;     /* DX_OP_* */
    uint8_t masked;     /* 1 when a masking key follows */
    uint8_t mask[4];    /* the masking key when masked */
    uint64_t length;    /* payload length */
} dx_frame_header;

/* Parses one frame header from buf[0..len).
 *
 * rsv_allowed: the RSV bits a negotiated extension permits on data frames
 * (0 for none; 0x4 for permessage-deflate's RSV1). Any RSV bit outside
 * rsv_allowed, and any RSV bit on a control frame, is an error here. Rules
 * that depend on the message (RFC 7692: RSV1 only on a message's first
 * frame) are the caller's: it passes 0 while a message is in progress.
 * require_mask: non-zero on a server (client frames must be masked), 0 on a
 * client (server frames must not be masked).
 *
 * Returns the header's size in bytes (2..14) when a whole header is in buf
 * and valid, and fills *h (mask zeroed when not masked); 0 when more bytes
 * are needed (nothing is consumed, call again with more); or -1 for a
 * protocol error: reserved opcode (3-7, 0xB-0xF), RSV bit not allowed,
 * control frame longer than 125 bytes or fragmented, a 64-bit length with
 * the top bit set, wrong masking. Every error but the 64-bit length one is
 * seen in the first two bytes and reported as soon as they are in buf. A
 * length not in its shortest form is accepted. *h is written only on
 * success. Reads at most DX_FRAME_HEADER_MAX bytes of buf. */
int dx_frame_parse_header(const uint8_t *buf, size_t len, int rsv_allowed,
                          int require_mask, dx_frame_header *h);

/* Writes a frame header into out (room for DX_FRAME_HEADER_MAX bytes) for a
 * frame with the given fin, rsv bits (as in dx_frame_header), opcode and
 * payload length, using the shortest length form. mask is NULL for an
 * unmasked (server) frame, else the 4-byte key to write. Returns the header
 * size in bytes. */
size_t dx_frame_write_header(uint8_t *out, int fin, int rsv, int opcode,
                             uint64_t length, const uint8_t *mask);

/* XORs p[0..len) in place with the masking key, as if the payload began
 * offset bytes earlier (so a payload may be unmasked in pieces: pass the
 * number of payload bytes already unmasked). Works 32 or 64 bytes at a time
 * on long payloads (AVX2 where cpu.h says so), then machine words; p need not be aligned. */
void dx_mask(uint8_t *p, size_t len, const uint8_t key[4], uint64_t offset);

#endif
