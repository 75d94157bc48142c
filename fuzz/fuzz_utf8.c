/* Fuzz target: the incremental UTF-8 validator.
 *
 * Input: the bytes of a text message. Checks, against a reference written
 * differently from the DFA (it decodes, and after each byte asks whether
 * the code points the sequence could still become meet U+0000..U+10FFFF
 * minus the surrogates, above the sequence length's overlong bound):
 *  - dx_utf8_valid on the whole input agrees with the reference;
 *  - dx_utf8_feed a byte at a time rejects at exactly the byte where the
 *    reference does, and is in the accept state exactly at the reference's
 *    character boundaries;
 *  - dx_utf8_feed on the input split at each of a few positions derived
 *    from it, and at all of them at once, ends in the same state as on the
 *    whole input;
 *  - a rejected state stays rejected. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "utf8.h"

/* The reference: the sequence in progress. */
typedef struct ref_state {
    int rejected;
    unsigned need;       /* continuation bytes still to come */
    unsigned seq_len;    /* bytes of the whole sequence, 2..4 */
    uint32_t cp;         /* the bits so far */
} ref_state;

/* Whether some code point in [lo, hi] is a valid one for a sequence of
 * seq_len bytes. */
static int ref_feasible(uint32_t lo, uint32_t hi, unsigned seq_len)
{
    static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };

    if (lo < min_cp[seq_len])
        lo = min_cp[seq_len];
    if (hi > 0x10FFFF)
        hi = 0x10FFFF;
    if (lo > hi)
        return 0;
    return !(lo >= 0xD800 && hi <= 0xDFFF);
}

/* Feeds one byte; returns 1 when the reference is at a character boundary. */
static int ref_step(ref_state *s, uint8_t b)
{
    unsigned rest_bits;

    if (s->rejected)
        return 0;
    if (s->need == 0) {
        if (b < 0x80)
            return 1;
        if ((b & 0xE0) == 0xC0) {
            s->seq_len = 2;
            s->cp = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            s->seq_len = 3;
            s->cp = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            s->seq_len = 4;
            s->cp = b & 0x07;
        } else {
            s->rejected = 1;
            return 0;
        }
        s->need = s->seq_len - 1;
    } else {
        if ((b & 0xC0) != 0x80) {
            s->rejected = 1;
            return 0;
        }
        s->cp = s->cp << 6 | (b & 0x3F);
        s->need--;
    }
    rest_bits = 6 * s->need;
    if (!ref_feasible(s->cp << rest_bits, s->cp << rest_bits | ((1u << rest_bits) - 1),
                      s->seq_len)) {
        s->rejected = 1;
        return 0;
    }
    return s->need == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ref_state ref = { 0, 0, 0, 0 };
    uint32_t state = DX_UTF8_ACCEPT, whole;
    int ref_valid;
    size_t cuts[3];
    uint8_t *copy;

    /* A byte at a time, in lockstep with the reference. */
    for (size_t i = 0; i < size; i++) {
        int boundary = ref_step(&ref, data[i]);

        state = dx_utf8_feed(state, data + i, 1);
        FUZZ_CHECK((state == DX_UTF8_REJECT) == ref.rejected);
        FUZZ_CHECK((state == DX_UTF8_ACCEPT) == boundary);
    }
    ref_valid = !ref.rejected && ref.need == 0;

    /* Whole, in a block of exactly its size at an odd alignment. */
    copy = malloc(size + 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy + 1, data, size);
    whole = dx_utf8_feed(DX_UTF8_ACCEPT, copy + 1, size);
    FUZZ_CHECK(whole == state);
    FUZZ_CHECK(dx_utf8_valid(data, size) == ref_valid);
    FUZZ_CHECK(dx_utf8_valid(copy + 1, size) == ref_valid);
    free(copy);

    /* Split at a few derived positions, one at a time and all at once. */
    cuts[0] = size ? size * data[0] / 255 : 0;
    cuts[1] = size / 2;
    cuts[2] = size ? (size * data[size - 1] / 255 + 7) % (size + 1) : 0;
    for (int c = 0; c < 3; c++) {
        uint32_t s = dx_utf8_feed(DX_UTF8_ACCEPT, data, cuts[c]);

        s = dx_utf8_feed(s, data + cuts[c], size - cuts[c]);
        FUZZ_CHECK(s == whole);
    }
    {
        size_t a = cuts[0], b = cuts[1], d = cuts[2], t;
        uint32_t s;

        if (a > b) { t = a; a = b; b = t; }
        if (b > d) { t = b; b = d; d = t; }
        if (a > b) { t = a; a = b; b = t; }
        s = dx_utf8_feed(DX_UTF8_ACCEPT, data, a);
        s = dx_utf8_feed(s, data + a, b - a);
        s = dx_utf8_feed(s, data + b, d - b);
        s = dx_utf8_feed(s, data + d, size - d);
        FUZZ_CHECK(s == whole);
    }

    /* Rejected stays rejected. */
    FUZZ_CHECK(dx_utf8_feed(DX_UTF8_REJECT, data, size) == DX_UTF8_REJECT);
    return 0;
}
