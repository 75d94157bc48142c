/* Fuzz target: permessage-deflate's inflate (a client's compressed message)
 * and its deflate/inflate round trip.
 *
 * Input: one control byte, then a message's compressed payload as a client
 * would send it (raw deflate, the 00 00 FF FF tail stripped). The control
 * byte gives the window bits (8 + its low 3 bits), deflate's memLevel, and
 * where the payload is cut in two. Checks:
 *  - dx_pmd_inflate in one piece and in two (final on the last) answer the
 *    same, 0 or 1007 (or 1009 from the sink, which stops at 1 MiB: a
 *    decompression bomb stops there), and when both answer 0 they hand the
 *    sink the same bytes; the sink never gets more than 16 KiB at a time;
 *  - the input taken as a message: dx_pmd_deflate then dx_pmd_inflate gives
 *    it back exactly, on the stream that inflated the fuzz input when that
 *    ended cleanly (so a stream is ready for the next message after bad
 *    data or a BFINAL block), and twice over on one pair of streams that
 *    keep their window (context takeover), the second copy then made of
 *    back-references into the first. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz_util.h"
#include "pmd.h"

#define OUTPUT_LIMIT (1u << 20)   /* what a sink takes: the server's max_message */
#define PMD_CHUNK_MAX 16384       /* the most pmd.h says the sink gets at a time */

typedef struct sink_state {
    uint8_t *buf;          /* collects the output when not NULL ... */
    size_t cap;            /* ... up to cap bytes */
    size_t total;          /* bytes the sink took */
    uLong crc;             /* their CRC-32 */
} sink_state;

static int sink(void *ud, const uint8_t *p, size_t len)
{
    sink_state *s = ud;

    FUZZ_CHECK(len > 0 && len <= PMD_CHUNK_MAX);
    if (s->total + len > (s->buf ? s->cap : OUTPUT_LIMIT))
        return 1009;
    if (s->buf)
        memcpy(s->buf + s->total, p, len);
    s->crc = crc32(s->crc, p, (uInt)len);
    s->total += len;
    return 0;
}

static void sink_init(sink_state *s, uint8_t *buf, size_t cap)
{
    s->buf = buf;
    s->cap = cap;
    s->total = 0;
    s->crc = crc32(0, NULL, 0);
}

/* Inflates one message in[0..len) with z, cut at cut (1 or 2 pieces). */
static int inflate_message(z_stream *z, const uint8_t *in, size_t len, size_t cut,
                           sink_state *s)
{
    int rc;

    if (cut > 0 && cut < len) {
        rc = dx_pmd_inflate(z, in, cut, 0, sink, s);
        FUZZ_CHECK(rc == 0 || rc == 1007 || rc == 1009);
        if (rc != 0)
            return rc;
        in += cut;
        len -= cut;
    }
    rc = dx_pmd_inflate(z, in, len, 1, sink, s);
    FUZZ_CHECK(rc == 0 || rc == 1007 || rc == 1009);
    return rc;
}

/* Compresses msg with d (reset: no context takeover), inflates the result
 * with z and checks that msg comes back. */
static void round_trip(z_stream *d, z_stream *z, const uint8_t *msg, size_t len,
                       int reset, unsigned cut_num)
{
    size_t cap = dx_pmd_deflate_bound(d, len), n;
    uint8_t *comp = malloc(cap ? cap : 1);
    uint8_t *back = malloc(len ? len : 1);
    sink_state s;
    int rc;

    FUZZ_CHECK(comp != NULL && back != NULL);
    n = dx_pmd_deflate(d, msg, len, comp, cap, reset);
    FUZZ_CHECK(n > 0 && n <= cap);
    sink_init(&s, back, len);
    rc = inflate_message(z, comp, n, n * cut_num / 31, &s);
    FUZZ_CHECK(rc == 0 && s.total == len && (len == 0 || memcmp(back, msg, len) == 0));
    free(comp);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    z_stream whole, split, d, z2;
    sink_state sw, ss;
    const uint8_t *in;
    size_t len, cut;
    int wbits, mem_level, rw, rs, reuse;

    if (size < 1)
        return 0;
    wbits = 8 + (data[0] & 7);
    mem_level = 1 + (data[0] >> 3) % 9;
    in = data + 1;
    len = size - 1;
    cut = len * (data[0] >> 3) / 31;

    /* The client's message, in one piece and in two. */
    if (dx_pmd_inflate_init(&whole, wbits) < 0)
        return 0;
    if (dx_pmd_inflate_init(&split, wbits) < 0) {
        inflateEnd(&whole);
        return 0;
    }
    sink_init(&sw, NULL, 0);
    sink_init(&ss, NULL, 0);
    rw = inflate_message(&whole, in, len, 0, &sw);
    rs = inflate_message(&split, in, len, cut, &ss);
    FUZZ_CHECK(sw.total <= OUTPUT_LIMIT && ss.total <= OUTPUT_LIMIT);
    if (rw != 1009 && rs != 1009)
        FUZZ_CHECK(rw == rs);
    if (rw == 0 && rs == 0)
        FUZZ_CHECK(sw.total == ss.total && sw.crc == ss.crc);
    inflateEnd(&split);

    /* The input as a message, deflated and inflated again: on the stream
     * above when its message ended cleanly (the server's next message), else
     * on a fresh one. */
    if (dx_pmd_deflate_init(&d, wbits, mem_level) < 0) {
        inflateEnd(&whole);
        return 0;
    }
    reuse = rw == 0 || rw == 1007;
    if (!reuse) {
        inflateEnd(&whole);
        if (dx_pmd_inflate_init(&whole, wbits) < 0) {
            deflateEnd(&d);
            return 0;
        }
    }
    round_trip(&d, &whole, in, len, 1, data[0] >> 3);
    inflateEnd(&whole);

    /* Context takeover: the same message twice on streams that keep their
     * window. */
    if (dx_pmd_inflate_init(&z2, wbits) == 0) {
        round_trip(&d, &z2, in, len, 1, data[0] >> 3);
        round_trip(&d, &z2, in, len, 0, 31 - (data[0] >> 3));
        inflateEnd(&z2);
    }
    deflateEnd(&d);
    return 0;
}
