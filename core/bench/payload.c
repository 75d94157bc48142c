/* The bench's self-checking messages: see payload.h. */
#include <stdlib.h>
#include <string.h>
#include "bench/payload.h"

uint8_t *dx_payload_pattern(size_t size)
{
    uint8_t *p = malloc(size + 26);
    for (size_t i = 0; p && i < size + 26; i++)
        p[i] = (uint8_t)('A' + i % 26);
    return p;
}

static void put48(uint8_t *out, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 6)
        out[i] = (uint8_t)('0' + (v & 63));
}

static int get48(const uint8_t *p, uint64_t *v)
{
    uint64_t r = 0;
    for (int i = 0; i < 8; i++) {
        unsigned d = (unsigned)p[i] - '0';
        if (d > 63)
            return -1;
        r = r << 6 | d;
    }
    *v = r;
    return 0;
}

/* Byte i (i >= 16) of message seq is pattern[(seq + i) % 26 + i - 16 ...]:
 * the fill starts at pattern + (seq + 16) % 26. */
void dx_payload_make(uint8_t *out, size_t size, const uint8_t *pattern,
                     uint64_t seq, uint64_t ts_ns)
{
    put48(out, seq);
    put48(out + 8, ts_ns);
    memcpy(out + 16, pattern + (seq + 16) % 26, size - 16);
}

int dx_payload_check(const uint8_t *p, size_t len, size_t size, const uint8_t *pattern,
                     uint64_t *seq, uint64_t *ts_ns)
{
    if (len != size || get48(p, seq) < 0 || get48(p + 8, ts_ns) < 0)
        return -1;
    if (memcmp(p + 16, pattern + (*seq + 16) % 26, size - 16) != 0)
        return -1;
    return 0;
}
