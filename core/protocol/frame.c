/* RFC 6455 frame codec: see frame.h. */
#include "frame.h"
#include "cpu.h"

#include <string.h>

static int opcode_known(unsigned op)
{
    return op <= DX_OP_BINARY || (op >= DX_OP_CLOSE && op <= DX_OP_PONG);
}

/* The checks that need only the first two bytes, so a bad frame fails at
 * once. Returns 0 when they pass, -1 otherwise. */
static int check_first_bytes(uint8_t b0, uint8_t b1, int rsv_allowed,
                             int require_mask)
{
    unsigned op = b0 & 0x0F, rsv = (b0 >> 4) & 7;
    int masked = (b1 & 0x80) != 0;

    if (!opcode_known(op))
        return -1;
    if (op & 0x8) {                          /* control frame */
        if (!(b0 & 0x80) || rsv != 0 || (b1 & 0x7F) > DX_CONTROL_MAX)
            return -1;
    } else if (rsv & ~(unsigned)rsv_allowed) {
        return -1;
    }
    if (masked != (require_mask != 0))
        return -1;
    return 0;
}

static uint64_t read_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

int dx_frame_parse_header(const uint8_t *buf, size_t len, int rsv_allowed,
                          int require_mask, dx_frame_header *h)
{
    size_t ext, need;
    uint64_t length;
    uint8_t len7;

    if (len < 2)
        return 0;
    if (check_first_bytes(buf[0], buf[1], rsv_allowed, require_mask) < 0)
        return -1;
    len7 = buf[1] & 0x7F;
    ext = len7 == 127 ? 8 : len7 == 126 ? 2 : 0;
    need = 2 + ext + ((buf[1] & 0x80) ? 4 : 0);
    if (len < need)
        return 0;

    length = ext ? read_be(buf + 2, ext) : len7;
    if (length >> 63)
        return -1;
    h->length = length;
    h->fin = buf[0] >> 7;
    h->rsv = (buf[0] >> 4) & 7;
    h->opcode = buf[0] & 0x0F;
    h->masked = buf[1] >> 7;
    if (h->masked)
        memcpy(h->mask, buf + 2 + ext, 4);
    else
        memset(h->mask, 0, 4);
    return (int)need;
}

size_t dx_frame_write_header(uint8_t *out, int fin, int rsv, int opcode,
                             uint64_t length, const uint8_t *mask)
{
    size_t n = 2;

    out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv & 7) << 4 | (opcode & 0x0F));
    if (length <= 125) {
        out[1] = (uint8_t)length;
    } else if (length <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(length >> 8);
        out[3] = (uint8_t)length;
        n = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(length >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        out[1] |= 0x80;
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

/* The key as 8 bytes in memory order for a payload position phase. */
static uint64_t key_word(const uint8_t key[4], uint64_t phase)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t k;
    unsigned r = (unsigned)(phase & 3) * 8;
    memcpy(&k, key, 4);
    if (r)
        k = k >> r | k << (32 - r);       /* byte j of memory becomes key[(phase + j) & 3] */
    return (uint64_t)k << 32 | k;
#else
    uint8_t kb[8];
    uint64_t w;

    for (unsigned j = 0; j < 8; j++)
        kb[j] = key[(phase + j) & 3];
    memcpy(&w, kb, 8);
    return w;
#endif
}

#if defined(__GNUC__)
/* 16 bytes that the compiler keeps in one vector register (SSE2 on x86-64,
 * NEON on ARM): a large payload is unmasked 32 bytes per iteration. */
typedef uint64_t dx_u64x2 __attribute__((vector_size(16)));
#endif

/* From p + i on: 8 bytes at a time with k (the key for offset), then the
 * tail byte by byte. */
static inline void mask_rest(uint8_t *p, size_t i, size_t len, const uint8_t key[4],
                             uint64_t offset, uint64_t k)
{
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= k;
        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++)                  /* the tail: fewer than 8 bytes */
        p[i] ^= key[(offset + i) & 3];
}

#if defined(DX_HAVE_AVX2_BUILD)
/* 32 bytes in one AVX2 register. */
typedef uint64_t dx_u64x4 __attribute__((vector_size(32)));

/* dx_mask for a payload of 64 bytes or more on a CPU with AVX2: 64 bytes
 * per iteration (twice the bytes per instruction of the SSE2 loop), then
 * 32 more when they are there, then the rest. */
__attribute__((target("avx2")))
static void mask_avx2(uint8_t *p, size_t len, const uint8_t key[4], uint64_t offset)
{
    uint64_t k = key_word(key, offset);
    dx_u64x4 kv = { k, k, k, k };
    size_t i = 0;
    for (; len - i >= 64; i += 64) {
        dx_u64x4 a, b;
        memcpy(&a, p + i, 32);
        memcpy(&b, p + i + 32, 32);
        a ^= kv;
        b ^= kv;
        memcpy(p + i, &a, 32);
        memcpy(p + i + 32, &b, 32);
    }
    if (len - i >= 32) {
        dx_u64x4 a;
        memcpy(&a, p + i, 32);
        a ^= kv;
        memcpy(p + i, &a, 32);
        i += 32;
    }
    mask_rest(p, i, len, key, offset, k);
}
#endif

/* Unaligned loads and stores (memcpy of a constant size compiles to one
 * move) from the first byte: no alignment prologue, which for the short
 * payloads most messages have costs more than it saves. A long payload on
 * a CPU with AVX2 goes to mask_avx2 (a tail call: the short path stays a
 * leaf function). */
void dx_mask(uint8_t *p, size_t len, const uint8_t key[4], uint64_t offset)
{
#if defined(DX_HAVE_AVX2_BUILD)
    if (len >= 64 && dx_cpu_avx2) {
        mask_avx2(p, len, key, offset);
        return;
    }
#endif
    size_t i = 0;
    uint64_t k = 0;
    if (len >= 8) {
        k = key_word(key, offset);
#if defined(__GNUC__)
        if (len >= 64) {
            dx_u64x2 kv = { k, k };
            for (; len - i >= 32; i += 32) {
                dx_u64x2 a, b;
                memcpy(&a, p + i, 16);
                memcpy(&b, p + i + 16, 16);
                a ^= kv;
                b ^= kv;
                memcpy(p + i, &a, 16);
                memcpy(p + i + 16, &b, 16);
            }
        }
#endif
    }
    mask_rest(p, i, len, key, offset, k);
}
