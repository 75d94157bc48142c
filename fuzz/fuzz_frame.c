/* Fuzz target: the frame codec and the message rules, driven the way the
 * server's read path (core/transport/reader.c) drives them.
 *
 * Input: one control byte, then the bytes a client sent after the
 * handshake. The control byte says whether permessage-deflate was agreed
 * (RSV1 allowed on a message's first frame), how the payload is cut into
 * the pieces a read would give, and how the payload copy is aligned.
 * Frames are taken in a loop until the input ends, a frame is incomplete,
 * the connection would fail, or a close frame arrives. Checks:
 *  - every prefix of a header that parses (or that needs more) needs more;
 *    shorter than 2 bytes always needs more; a bad header stays bad;
 *  - dx_frame_write_header round-trips each parsed header (masked and not),
 *    in no more bytes than the client used;
 *  - dx_mask in pieces, at odd alignments and offsets, equals a byte-wise
 *    reference; dx_message_frame keeps the size within the limit and fails
 *    only with 1002 or 1009; dx_message_end agrees with dx_utf8_valid on the
 *    whole text message; dx_close_parse agrees with a reference reading of
 *    RFC 6455 7.4 (codes) and answers 0, 1002 or 1007. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz_util.h"
#include "message.h"
#include "utf8.h"

#define MAX_MESSAGE 4096

static const size_t piece_sizes[16] = {
    1, 2, 3, 5, 7, 8, 9, 13, 16, 31, 64, 100, 128, 255, 1000, (size_t)-1
};

static int same_header(const dx_frame_header *a, const dx_frame_header *b)
{
    return a->fin == b->fin && a->rsv == b->rsv && a->opcode == b->opcode &&
           a->masked == b->masked && memcmp(a->mask, b->mask, 4) == 0 &&
           a->length == b->length;
}

/* Every shorter prefix of buf[0..len) must need more bytes when the whole
 * parsed (r > 0) or needed more (r == 0); when it failed, a prefix of 2
 * bytes or more needs more or fails. The prefix sits flush against the end
 * of a heap block, so reading past it faults. */
static void check_prefixes(const uint8_t *buf, size_t len, int r, int rsv_allowed)
{
    uint8_t *block = malloc(DX_FRAME_HEADER_MAX);
    size_t upto = r > 0 ? (size_t)r : len < DX_FRAME_HEADER_MAX ? len : DX_FRAME_HEADER_MAX;
    dx_frame_header h;

    FUZZ_CHECK(block != NULL);
    for (size_t k = 0; k < upto && k <= DX_FRAME_HEADER_MAX; k++) {
        uint8_t *p = block + DX_FRAME_HEADER_MAX - k;
        int rk;

        memcpy(p, buf, k);
        rk = dx_frame_parse_header(p, k, rsv_allowed, 1, &h);
        if (k < 2 || r >= 0)
            FUZZ_CHECK(rk == 0);
        else
            FUZZ_CHECK(rk == 0 || rk == -1);
    }
    free(block);
}

/* Writes h back and parses it again. */
static void check_round_trip(const dx_frame_header *h, int used, int rsv_allowed)
{
    uint8_t out[DX_FRAME_HEADER_MAX];
    dx_frame_header h2, plain = *h;
    size_t n = dx_frame_write_header(out, h->fin, h->rsv, h->opcode, h->length,
                                     h->masked ? h->mask : NULL);
    int r;

    FUZZ_CHECK(n >= 2 && n <= DX_FRAME_HEADER_MAX && n <= (size_t)used);
    r = dx_frame_parse_header(out, n, rsv_allowed, 1, &h2);
    FUZZ_CHECK(r == (int)n && same_header(h, &h2));

    /* The same frame as a server would send it: unmasked. */
    n = dx_frame_write_header(out, h->fin, h->rsv, h->opcode, h->length, NULL);
    FUZZ_CHECK(n >= 2 && n <= DX_FRAME_HEADER_MAX - 4);
    r = dx_frame_parse_header(out, n, rsv_allowed, 0, &h2);
    plain.masked = 0;
    memset(plain.mask, 0, 4);
    FUZZ_CHECK(r == (int)n && same_header(&plain, &h2));
    /* ... which a server must refuse. */
    FUZZ_CHECK(dx_frame_parse_header(out, n, rsv_allowed, 1, &h2) == -1);
}

/* RFC 6455 7.4.1 and the IANA registry as RFC 6455 (and its errata) read. */
static int ref_close_code_valid(unsigned code)
{
    if (code < 1000 || code >= 5000)
        return 0;
    if (code >= 3000)
        return 1;
    switch (code) {
    case 1000: case 1001: case 1002: case 1003:
    case 1007: case 1008: case 1009: case 1010: case 1011:
    case 1012: case 1013: case 1014:
        return 1;
    default:
        return 0;
    }
}

static void check_close(const uint8_t *p, size_t len)
{
    unsigned code = 0;
    const uint8_t *reason = NULL;
    size_t reason_len = 7777;
    int rc = dx_close_parse(p, len, &code, &reason, &reason_len);

    FUZZ_CHECK(rc == 0 || rc == DX_CLOSE_PROTOCOL || rc == DX_CLOSE_INVALID_DATA);
    FUZZ_CHECK(dx_close_code_valid(code) == ref_close_code_valid(code) || code == 0);
    if (len == 0) {
        FUZZ_CHECK(rc == 0 && code == DX_CLOSE_NO_STATUS && reason_len == 0);
        return;
    }
    if (len == 1) {
        FUZZ_CHECK(rc == DX_CLOSE_PROTOCOL);
        return;
    }
    FUZZ_CHECK(code == ((unsigned)p[0] << 8 | p[1]));
    if (!ref_close_code_valid(code)) {
        FUZZ_CHECK(rc == DX_CLOSE_PROTOCOL);
        return;
    }
    if (!dx_utf8_valid(p + 2, len - 2)) {
        FUZZ_CHECK(rc == DX_CLOSE_INVALID_DATA);
        return;
    }
    FUZZ_CHECK(rc == 0 && reason == p + 2 && reason_len == len - 2);
}

/* Unmasks p[0..n) (payload bytes from off on) in pieces of piece bytes, as
 * successive reads would, and checks it against the byte-wise reference. */
static void unmask_checked(uint8_t *p, const uint8_t *masked, size_t n,
                           const uint8_t key[4], uint64_t off, size_t piece)
{
    for (size_t i = 0; i < n; i += piece) {
        size_t take = n - i < piece ? n - i : piece;

        dx_mask(p + i, take, key, off + i);
    }
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(p[i] == (masked[i] ^ key[(off + i) & 3]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t msg[MAX_MESSAGE];
    size_t msg_len = 0, pos = 0, len, piece, align;
    const uint8_t *in;
    dx_message m;
    int pmd;

    if (size < 1)
        return 0;
    pmd = data[0] >> 7;
    piece = piece_sizes[(data[0] >> 3) & 15];
    align = data[0] & 7;
    in = data + 1;
    len = size - 1;
    dx_message_init(&m);

    for (;;) {
        dx_frame_header h;
        int rsv_allowed = pmd && !m.in_message ? DX_RSV1 : 0;
        int r = dx_frame_parse_header(in + pos, len - pos, rsv_allowed, 1, &h);
        size_t avail;
        uint8_t *block, *p;
        int control, err;

        check_prefixes(in + pos, len - pos, r, rsv_allowed);
        if (r <= 0)
            break;                   /* needs more, or the connection fails (1002) */
        FUZZ_CHECK(r >= 6 && r <= DX_FRAME_HEADER_MAX && (size_t)r <= len - pos);
        FUZZ_CHECK(h.masked == 1 && (h.rsv & ~rsv_allowed) == 0 && !(h.length >> 63));
        check_round_trip(&h, r, rsv_allowed);
        pos += (size_t)r;
        control = h.opcode >= DX_OP_CLOSE;
        if (control) {
            FUZZ_CHECK(h.fin && h.rsv == 0 && h.length <= DX_CONTROL_MAX);
        } else {
            dx_message before = m;

            FUZZ_CHECK(h.opcode <= DX_OP_BINARY);
            err = dx_message_frame(&m, &h, MAX_MESSAGE);
            if (err) {
                FUZZ_CHECK(err == DX_CLOSE_PROTOCOL || err == DX_CLOSE_TOO_BIG);
                FUZZ_CHECK(memcmp(&before, &m, sizeof m) == 0);
                break;
            }
            FUZZ_CHECK(m.size <= MAX_MESSAGE && m.in_message == !h.fin);
            FUZZ_CHECK(m.opcode == DX_OP_TEXT || m.opcode == DX_OP_BINARY);
        }

        /* The payload bytes that arrived, copied flush against the end of a
         * block at an alignment the input picks. */
        avail = h.length < len - pos ? (size_t)h.length : len - pos;
        block = malloc(avail + align + 1);
        FUZZ_CHECK(block != NULL);
        p = block + align + 1;
        memcpy(p, in + pos, avail);
        unmask_checked(p, in + pos, avail, h.mask, 0, piece);
        if (!control) {
            err = 0;
            if (!m.compressed) {     /* compressed bytes are checked after inflating */
                for (size_t i = 0; i < avail && !err; i += piece) {
                    size_t take = avail - i < piece ? avail - i : piece;

                    err = dx_message_payload(&m, p + i, take);
                }
            }
            if (err) {
                FUZZ_CHECK(err == DX_CLOSE_INVALID_DATA && m.opcode == DX_OP_TEXT);
                free(block);
                break;
            }
            FUZZ_CHECK(msg_len + avail <= sizeof msg);
            memcpy(msg + msg_len, p, avail);
            msg_len += avail;
        }
        if (avail < h.length) {
            free(block);
            break;                   /* the frame goes on past the input */
        }
        pos += avail;

        if (h.opcode == DX_OP_CLOSE) {
            check_close(p, avail);
            free(block);
            break;                   /* the server answers and closes */
        }
        if (!control && h.fin) {
            int text = m.opcode == DX_OP_TEXT && !m.compressed;
            int expect = text && !dx_utf8_valid(msg, msg_len) ? DX_CLOSE_INVALID_DATA : 0;

            FUZZ_CHECK(dx_message_end(&m) == expect);
            FUZZ_CHECK(!m.in_message && m.size == 0);
            msg_len = 0;
        }
        /* Masking again from a far offset: the key phase follows the offset. */
        if (avail) {
            uint8_t *copy = malloc(avail);
            uint64_t far = (uint64_t)data[0] << 56 | (uint64_t)pos;

            FUZZ_CHECK(copy != NULL);
            memcpy(copy, p, avail);
            unmask_checked(p, copy, avail, h.mask, far, piece);
            free(copy);
        }
        free(block);
    }
    return 0;
}
