/* Incremental UTF-8 validation: see utf8.h.
 *
 * The DFA follows Bjoern Hoehrmann's decoder (first published form, where
 * the reject state is 1): each byte maps to one of 12 classes, and a
 * 9-state table gives the next state. States:
 *   0 accept, 1 reject,
 *   2 one continuation byte (80..BF) left,
 *   3 two left,          7 three left,
 *   4 after E0 (next A0..BF: no overlong),
 *   5 after ED (next 80..9F: no surrogate),
 *   6 after F0 (next 90..BF: no overlong),
 *   8 after F4 (next 80..8F: nothing above U+10FFFF). */
#include "utf8.h"

#include <string.h>
#include "cpu.h"
#if defined(DX_HAVE_AVX2_BUILD)
#include <immintrin.h>
#endif

#define NSTATES 9
#define NCLASSES 12

/* Byte classes: 0 ASCII; 1 80..8F; 9 90..9F; 7 A0..BF; 8 C0, C1, F5..FF;
 * 2 C2..DF; 10 E0; 3 E1..EC, EE, EF; 4 ED; 11 F0; 6 F1..F3; 5 F4. */
static const uint8_t dx_utf8_class[256] = {
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,
    7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7, 7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,
    8,8,2,2,2,2,2,2,2,2,2,2,2,2,2,2, 2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
    10,3,3,3,3,3,3,3,3,3,3,3,3,4,3,3, 11,6,6,6,5,8,8,8,8,8,8,8,8,8,8,8
};

/* dx_utf8_next[state][class] */
static const uint8_t dx_utf8_next[NSTATES][NCLASSES] = {
    /* class: 0  1  2  3  4  5  6  7  8  9 10 11 */
    /* 0 */ { 0, 1, 2, 3, 5, 8, 7, 1, 1, 1, 4, 6 },
    /* 1 */ { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 },
    /* 2 */ { 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1 },
    /* 3 */ { 1, 2, 1, 1, 1, 1, 1, 2, 1, 2, 1, 1 },
    /* 4 */ { 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1 },
    /* 5 */ { 1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1 },
    /* 6 */ { 1, 1, 1, 1, 1, 1, 1, 3, 1, 3, 1, 1 },
    /* 7 */ { 1, 3, 1, 1, 1, 1, 1, 3, 1, 3, 1, 1 },
    /* 8 */ { 1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 },
};

#define DX_HIGH_BITS 0x8080808080808080ull

/* Skips the run of 8-byte all-ASCII words at p[i..len); returns the new i.
 * 32 bytes at a time while they are ASCII (one test of four words or-ed
 * together), then 8 at a time. */
static inline size_t skip_ascii_words(const uint8_t *p, size_t i, size_t len)
{
    uint64_t w;

    while (len - i >= 32) {
        uint64_t a, b, c, d;
        memcpy(&a, p + i, 8);
        memcpy(&b, p + i + 8, 8);
        memcpy(&c, p + i + 16, 8);
        memcpy(&d, p + i + 24, 8);
        if ((a | b | c | d) & DX_HIGH_BITS)
            break;
        i += 32;
    }
    while (len - i >= 8) {
        memcpy(&w, p + i, 8);
        if (w & DX_HIGH_BITS)
            break;
        i += 8;
    }
    return i;
}

/* The DFA over p[0..len) from state, a run of ASCII skipped by
 * skip_ascii_words, and by skip_ascii_avx2 first when wide (a constant
 * where this is inlined). */
static inline __attribute__((always_inline))
uint32_t run(uint32_t state, const uint8_t *p, size_t len, size_t (*wide)(const uint8_t *, size_t, size_t))
{
    size_t i = 0;

    while (i < len) {
        if (state == DX_UTF8_ACCEPT && p[i] < 0x80) {
            if (wide && len - i >= 64)
                i = wide(p, i, len);
            i = skip_ascii_words(p, i, len);
            if (i == len)
                break;
        }
        state = dx_utf8_next[state][dx_utf8_class[p[i++]]];
        if (state == DX_UTF8_REJECT)
            break;
    }
    return state;
}

#if defined(DX_HAVE_AVX2_BUILD)
/* 64 bytes per iteration while they are ASCII: two 32-byte loads or-ed
 * together, whose byte sign bits (vpmovmskb) must all be clear. Returns
 * the new i; the caller goes on a word at a time. */
__attribute__((target("avx2")))
static inline size_t skip_ascii_avx2(const uint8_t *p, size_t i, size_t len)
{
    while (len - i >= 64) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(p + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(p + i + 32));
        if (_mm256_movemask_epi8(_mm256_or_si256(a, b)) != 0)
            break;
        i += 64;
    }
    return i;
}

/* dx_utf8_feed for a long text on a CPU with AVX2: ASCII runs go 64 bytes
 * an iteration. */
__attribute__((target("avx2")))
static uint32_t feed_avx2(uint32_t state, const uint8_t *p, size_t len)
{
    return run(state, p, len, skip_ascii_avx2);
}
#endif

/* A text of 128 bytes or more on a CPU with AVX2 goes to feed_avx2 (a tail
 * call: the short path stays as it was). */
uint32_t dx_utf8_feed(uint32_t state, const uint8_t *p, size_t len)
{
    if (state >= NSTATES)
        return DX_UTF8_REJECT;
#if defined(DX_HAVE_AVX2_BUILD)
    if (len >= 128 && dx_cpu_avx2)
        return feed_avx2(state, p, len);
#endif
    return run(state, p, len, NULL);
}

int dx_utf8_valid(const uint8_t *p, size_t len)
{
    return dx_utf8_feed(DX_UTF8_ACCEPT, p, len) == DX_UTF8_ACCEPT;
}
