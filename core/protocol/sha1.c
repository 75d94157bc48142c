/* SHA-1 (FIPS 180-4, section 6.1). See sha1.h. */
#include <string.h>
#include "cpu.h"
#include "sha1.h"
#if defined(DX_HAVE_AVX2_BUILD)
#include <immintrin.h>
#endif

static inline uint32_t rol(uint32_t x, int n)
{
    return x << n | x >> (32 - n);
}

static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The round functions of the four kinds of rounds. */
#define CH(b, c, d) ((d) ^ ((b) & ((c) ^ (d))))       /* (b & c) | (~b & d) */
#define PARITY(b, c, d) ((b) ^ (c) ^ (d))
#define MAJ(b, c, d) (((b) & (c)) | ((d) & ((b) | (c))))

/* W[t] for t >= 16 from the ring of the last 16 (FIPS's schedule), stored
 * back into the ring. */
#define W(t) (w[(t) & 15] = rol(w[((t) - 3) & 15] ^ w[((t) - 8) & 15] ^ w[((t) - 14) & 15] ^ w[(t) & 15], 1))

/* One round, written for five rounds in a row with the words' roles
 * turning instead of the words moving (FIPS's e = d, d = c, ... become the
 * next round's arguments): e takes the sum, b is rotated. */
#define ROUND(a, b, c, d, e, f, k, wt) do { \
        (e) += rol((a), 5) + f((b), (c), (d)) + (k) + (wt); \
        (b) = rol((b), 30); \
    } while (0)

/* Five rounds from t on; the first 16 words are the block's own. */
#define WT(t) ((t) < 16 ? w[t] : W(t))
#define FIVE(f, k, t) do { \
        ROUND(a, b, c, d, e, f, k, WT(t)); \
        ROUND(e, a, b, c, d, f, k, WT((t) + 1)); \
        ROUND(d, e, a, b, c, f, k, WT((t) + 2)); \
        ROUND(c, d, e, a, b, f, k, WT((t) + 3)); \
        ROUND(b, c, d, e, a, f, k, WT((t) + 4)); \
    } while (0)

/* One 64-byte block into h: 80 rounds in their four kinds, written out
 * (as loops they cost a third more), the schedule made as they go in a
 * ring of 16 words. */
static void compress(uint32_t h[5], const uint8_t *p)
{
    uint32_t w[16];
    for (int t = 0; t < 16; t++)
        w[t] = be32(p + 4 * t);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    FIVE(CH, 0x5A827999, 0);
    FIVE(CH, 0x5A827999, 5);
    FIVE(CH, 0x5A827999, 10);
    FIVE(CH, 0x5A827999, 15);
    FIVE(PARITY, 0x6ED9EBA1, 20);
    FIVE(PARITY, 0x6ED9EBA1, 25);
    FIVE(PARITY, 0x6ED9EBA1, 30);
    FIVE(PARITY, 0x6ED9EBA1, 35);
    FIVE(MAJ, 0x8F1BBCDC, 40);
    FIVE(MAJ, 0x8F1BBCDC, 45);
    FIVE(MAJ, 0x8F1BBCDC, 50);
    FIVE(MAJ, 0x8F1BBCDC, 55);
    FIVE(PARITY, 0xCA62C1D6, 60);
    FIVE(PARITY, 0xCA62C1D6, 65);
    FIVE(PARITY, 0xCA62C1D6, 70);
    FIVE(PARITY, 0xCA62C1D6, 75);
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

#if defined(DX_HAVE_AVX2_BUILD)
/* The SHA extensions (sha1rnds4 does four rounds, sha1msg1, sha1msg2 and
 * a xor make the schedule four words at a time, sha1nexte the next e).
 * Lane 3 of abcd holds a, of e0/e1 e; m[0..3] are the schedule's last 16
 * words, m[g % 4] those of group g. A group of four rounds, g = 0..19, of
 * kind F: the next e from the last group's saved abcd and the group's
 * words (group 0: the state's e plus them), then the rounds; beside them
 * the schedule for the groups ahead: msg2 finishes group g+1's words
 * (from group 3 on), a xor brings group g+2's along, msg1 starts group
 * g+3's, each only while such a group is still to come. */
#define GROUP(g, F, ein, eout) do { \
        if ((g) == 0) \
            ein = _mm_add_epi32(ein, m[0]); \
        else \
            ein = _mm_sha1nexte_epu32(ein, m[(g) % 4]); \
        eout = abcd; \
        if ((g) >= 3 && (g) <= 18) \
            m[((g) + 1) % 4] = _mm_sha1msg2_epu32(m[((g) + 1) % 4], m[(g) % 4]); \
        abcd = _mm_sha1rnds4_epu32(abcd, ein, F); \
        if ((g) >= 1 && (g) <= 16) \
            m[((g) + 3) % 4] = _mm_sha1msg1_epu32(m[((g) + 3) % 4], m[(g) % 4]); \
        if ((g) >= 2 && (g) <= 17) \
            m[((g) + 2) % 4] = _mm_xor_si128(m[((g) + 2) % 4], m[(g) % 4]); \
    } while (0)

__attribute__((target("sha,sse4.1")))
static void compress_sha(uint32_t h[5], const uint8_t *p)
{
    const __m128i order = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h), 0x1B);
    __m128i e0 = _mm_set_epi32((int)h[4], 0, 0, 0), e1;
    const __m128i abcd_in = abcd, e_in = e0;
    __m128i m[4];
    for (int i = 0; i < 4; i++)
        m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), order);
    GROUP(0, 0, e0, e1);
    GROUP(1, 0, e1, e0);
    GROUP(2, 0, e0, e1);
    GROUP(3, 0, e1, e0);
    GROUP(4, 0, e0, e1);
    GROUP(5, 1, e1, e0);
    GROUP(6, 1, e0, e1);
    GROUP(7, 1, e1, e0);
    GROUP(8, 1, e0, e1);
    GROUP(9, 1, e1, e0);
    GROUP(10, 2, e0, e1);
    GROUP(11, 2, e1, e0);
    GROUP(12, 2, e0, e1);
    GROUP(13, 2, e1, e0);
    GROUP(14, 2, e0, e1);
    GROUP(15, 3, e1, e0);
    GROUP(16, 3, e0, e1);
    GROUP(17, 3, e1, e0);
    GROUP(18, 3, e0, e1);
    GROUP(19, 3, e1, e0);
    e0 = _mm_sha1nexte_epu32(e0, e_in);
    abcd = _mm_add_epi32(abcd, abcd_in);
    _mm_storeu_si128((__m128i *)h, _mm_shuffle_epi32(abcd, 0x1B));
    h[4] = (uint32_t)_mm_extract_epi32(e0, 3);
}
#endif

/* One block, in the CPU's best form. */
static void block(uint32_t h[5], const uint8_t *p)
{
#if defined(DX_HAVE_AVX2_BUILD)
    if (dx_cpu_sha) {
        compress_sha(h, p);
        return;
    }
#endif
    compress(h, p);
}

void dx_sha1_init(dx_sha1 *s)
{
    s->h[0] = 0x67452301;
    s->h[1] = 0xEFCDAB89;
    s->h[2] = 0x98BADCFE;
    s->h[3] = 0x10325476;
    s->h[4] = 0xC3D2E1F0;
    s->bytes = 0;
}

void dx_sha1_update(dx_sha1 *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t have = (size_t)(s->bytes % 64);
    s->bytes += len;
    if (have) {
        size_t n = 64 - have < len ? 64 - have : len;
        memcpy(s->block + have, p, n);
        p += n;
        len -= n;
        if (have + n < 64)
            return;
        block(s->h, s->block);
    }
    for (; len >= 64; p += 64, len -= 64)
        block(s->h, p);
    if (len)
        memcpy(s->block, p, len);
}

void dx_sha1_final(dx_sha1 *s, uint8_t out[DX_SHA1_LEN])
{
    uint64_t bits = s->bytes * 8;
    size_t have = (size_t)(s->bytes % 64);
    s->block[have++] = 0x80;
    if (have > 56) {                       /* no room for the length: one block more */
        memset(s->block + have, 0, 64 - have);
        block(s->h, s->block);
        have = 0;
    }
    memset(s->block + have, 0, 56 - have);
    for (int i = 0; i < 8; i++)
        s->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    block(s->h, s->block);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}
