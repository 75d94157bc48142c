/* Unit tests for core/protocol/frame.c. */
#include "unit.h"
#include "frame.h"
#include "cpu.h"

static const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };

static int parse(const void *b, size_t n, int rsv_allowed, int require_mask,
                 dx_frame_header *h)
{
    return dx_frame_parse_header(b, n, rsv_allowed, require_mask, h);
}

/* The examples of RFC 6455 section 5.7. */
static void test_rfc_examples(void)
{
    dx_frame_header h;
    uint8_t hello[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };

    CHECK_EQ(parse("\x81\x05Hello", 7, 0, 0, &h), 2);
    CHECK(h.fin == 1 && h.rsv == 0 && h.opcode == DX_OP_TEXT && !h.masked && h.length == 5);

    CHECK_EQ(parse(hello, sizeof hello, 0, 1, &h), 6);
    CHECK(h.fin && h.opcode == DX_OP_TEXT && h.masked && h.length == 5);
    CHECK(memcmp(h.mask, key, 4) == 0);
    dx_mask(hello + 6, 5, h.mask, 0);
    CHECK(memcmp(hello + 6, "Hello", 5) == 0);

    CHECK_EQ(parse("\x01\x03Hel", 5, 0, 0, &h), 2);
    CHECK(h.fin == 0 && h.opcode == DX_OP_TEXT && h.length == 3);
    CHECK_EQ(parse("\x80\x02lo", 4, 0, 0, &h), 2);
    CHECK(h.fin == 1 && h.opcode == DX_OP_CONT && h.length == 2);

    CHECK_EQ(parse("\x89\x05Hello", 7, 0, 0, &h), 2);
    CHECK(h.opcode == DX_OP_PING && h.length == 5);
    CHECK_EQ(parse("\x8a\x85\x37\xfa\x21\x3d", 6, 0, 1, &h), 6);
    CHECK(h.opcode == DX_OP_PONG && h.masked);

    CHECK_EQ(parse("\x82\x7e\x01\x00", 4, 0, 0, &h), 4);
    CHECK(h.opcode == DX_OP_BINARY && h.length == 256);
    CHECK_EQ(parse("\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10, 0, 0, &h), 10);
    CHECK(h.length == 65536);
}

static void test_opcodes(void)
{
    dx_frame_header h;

    for (unsigned op = 0; op < 16; op++) {
        uint8_t b[6] = { (uint8_t)(0x80 | op), 0x80, 1, 2, 3, 4 };
        int known = op <= 2 || (op >= 8 && op <= 10);

        CHECK_EQ(parse(b, 6, 0, 1, &h), known ? 6 : -1);
        CHECK_EQ(parse(b, 2, 0, 1, &h), known ? 0 : -1);   /* fails at once */
        b[1] = 0;
        CHECK_EQ(parse(b, 2, 7, 0, &h), known ? 2 : -1);
        if (known)
            CHECK_EQ(h.opcode, op);
    }
}

static void test_control_rules(void)
{
    dx_frame_header h;

    for (unsigned op = 8; op <= 10; op++) {
        uint8_t b[2];

        b[0] = (uint8_t)op;                      /* fin = 0 */
        b[1] = 0;
        CHECK_EQ(parse(b, 2, 0, 0, &h), -1);
        b[0] = (uint8_t)(0x80 | op);
        b[1] = 125;
        CHECK_EQ(parse(b, 2, 0, 0, &h), 2);
        CHECK_EQ(h.length, 125);
        b[1] = 126;                              /* even before its length */
        CHECK_EQ(parse(b, 2, 0, 0, &h), -1);
        b[1] = 127;
        CHECK_EQ(parse(b, 2, 0, 0, &h), -1);
        for (unsigned rsv = 1; rsv < 8; rsv++) {
            b[0] = (uint8_t)(0x80 | rsv << 4 | op);
            b[1] = 0;
            CHECK_EQ(parse(b, 2, 7, 0, &h), -1);
        }
    }
}

static void test_rsv(void)
{
    dx_frame_header h;

    for (unsigned rsv = 0; rsv < 8; rsv++)
        for (unsigned allowed = 0; allowed < 8; allowed++)
            for (unsigned op = 0; op <= 2; op++) {
                uint8_t b[2] = { (uint8_t)(rsv << 4 | op), 3 };
                int ok = (rsv & ~allowed) == 0;

                CHECK_EQ(parse(b, 2, (int)allowed, 0, &h), ok ? 2 : -1);
                if (ok)
                    CHECK_EQ(h.rsv, rsv);
            }
}

static void test_masking_rules(void)
{
    dx_frame_header h;

    CHECK_EQ(parse("\x81\x00", 2, 0, 1, &h), -1);       /* server: must be masked */
    CHECK_EQ(parse("\x81\x80", 2, 0, 0, &h), -1);       /* client: must not */
    CHECK_EQ(parse("\x81\x80", 2, 0, 1, &h), 0);        /* masked: key to come */
    CHECK_EQ(parse("\x81\x80\x01\x02\x03\x04", 6, 0, 1, &h), 6);
    CHECK_EQ(parse("\x81\x00", 2, 0, 0, &h), 2);
    CHECK(h.masked == 0 && memcmp(h.mask, "\0\0\0\0", 4) == 0);
    CHECK_EQ(parse("\x81\x00", 2, 0, 2, &h), -1);       /* any non-zero is "server" */
}

static void test_lengths(void)
{
    dx_frame_header h;

    /* 64-bit length with the top bit set. */
    CHECK_EQ(parse("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10, 0, 0, &h), -1);
    h.length = 42;
    CHECK_EQ(parse("\x82\x7f\xff\xff\xff\xff\xff\xff\xff\xff", 10, 0, 0, &h), -1);
    CHECK_EQ(h.length, 42);                              /* untouched on error */
    CHECK_EQ(parse("\x82\x7f\x7f\xff\xff\xff\xff\xff\xff\xff", 10, 0, 0, &h), 10);
    CHECK(h.length == 0x7fffffffffffffffull);
    /* Lengths not in their shortest form are accepted. */
    CHECK_EQ(parse("\x82\x7e\x00\x05", 4, 0, 0, &h), 4);
    CHECK_EQ(h.length, 5);
    CHECK_EQ(parse("\x82\x7f\x00\x00\x00\x00\x00\x00\x00\x7e", 10, 0, 0, &h), 10);
    CHECK_EQ(h.length, 126);
}

/* Every length form, masked or not, truncated at every byte: 0 (need more);
 * whole: its size, with or without bytes after it; and read against a guard
 * page so that no byte past len is touched. */
static void test_truncation(void)
{
    static const uint64_t lens[] = { 0, 125, 126, 65535, 65536, 0x7fffffffffffffffull };
    long wrong = 0;

    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (int m = 0; m < 2; m++) {
            uint8_t b[DX_FRAME_HEADER_MAX + 4];
            size_t n = dx_frame_write_header(b, 1, 0, DX_OP_BINARY, lens[i], m ? key : NULL);
            dx_frame_header h;

            memset(b + n, 0xEE, sizeof b - n);
            for (size_t k = 0; k < n; k++) {
                wrong += parse(b, k, 0, m, &h) != 0;
                wrong += parse(unit_guard(b, k), k, 0, m, &h) != 0;
            }
            wrong += parse(b, n, 0, m, &h) != (int)n || h.length != lens[i];
            wrong += parse(b, sizeof b, 0, m, &h) != (int)n || h.length != lens[i];
            wrong += parse(unit_guard(b, n), n, 0, m, &h) != (int)n;
        }
    CHECK_EQ(wrong, 0);
}

static void test_round_trip(void)
{
    static const uint64_t lens[] = {
        0, 1, 125, 126, 127, 65535, 65536, 1ull << 32, 0x7fffffffffffffffull
    };
    static const size_t sizes[] = { 2, 2, 2, 4, 4, 4, 10, 10, 10 };
    long wrong = 0;

    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (int op = 0; op < 16; op++) {
            int control = op >= 8;

            if (op > 2 && (op < 8 || op > 10))
                continue;
            if (control && lens[i] > 125)
                continue;
            for (int fin = 0; fin < 2; fin++)
                for (int rsv = 0; rsv < 8; rsv++)
                    for (int m = 0; m < 2; m++) {
                        uint8_t b[DX_FRAME_HEADER_MAX];
                        dx_frame_header h;
                        size_t n = dx_frame_write_header(b, fin, rsv, op, lens[i],
                                                         m ? key : NULL);
                        int want = control && (!fin || rsv) ? -1 : (int)n;

                        wrong += n != sizes[i] + (m ? 4 : 0);
                        wrong += parse(b, n, 7, m, &h) != want;
                        if (want < 0)
                            continue;
                        wrong += h.fin != fin || h.rsv != rsv || h.opcode != op;
                        wrong += h.masked != m || h.length != lens[i];
                        wrong += m && memcmp(h.mask, key, 4) != 0;
                    }
        }
    CHECK_EQ(wrong, 0);
    /* Exact bytes of the three forms. */
    uint8_t b[DX_FRAME_HEADER_MAX];
    CHECK_EQ(dx_frame_write_header(b, 1, 4, DX_OP_TEXT, 125, NULL), 2);
    CHECK(memcmp(b, "\xc1\x7d", 2) == 0);
    CHECK_EQ(dx_frame_write_header(b, 0, 0, DX_OP_BINARY, 0x1234, key), 8);
    CHECK(memcmp(b, "\x02\xfe\x12\x34\x37\xfa\x21\x3d", 8) == 0);
    CHECK_EQ(dx_frame_write_header(b, 1, 0, DX_OP_CLOSE, 0x0102030405060708ull, NULL), 10);
    CHECK(memcmp(b, "\x88\x7f\x01\x02\x03\x04\x05\x06\x07\x08", 10) == 0);
}

static void mask_ref(uint8_t *p, size_t len, const uint8_t k[4], uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        p[i] ^= k[(offset + i) % 4];
}

/* dx_mask against the byte-wise definition: every offset 0..7 (and a few
 * large ones), every length 0..300 (the 64- and 32-byte vector steps from
 * 64 on, then 8-byte words, then bytes), every alignment of the buffer. */
static void test_mask(void)
{
    static const uint64_t offsets[] = {
        0, 1, 2, 3, 4, 5, 6, 7, 0xffffffffull, 0x100000002ull, 0xfffffffffffffffdull
    };
    uint8_t k[4] = { 0xA1, 0x5B, 0x3C, 0xE7 };
    uint8_t a[320], b[320];
    long wrong = 0;

    for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++)
        for (size_t len = 0; len <= 300; len++)
            for (size_t align = 0; align < 8; align++) {
                for (size_t i = 0; i < sizeof a; i++)
                    a[i] = b[i] = (uint8_t)(i * 7 + len);
                dx_mask(a + align, len, k, offsets[o]);
                mask_ref(b + align, len, k, offsets[o]);
                wrong += memcmp(a, b, sizeof a) != 0;    /* also: nothing outside */
            }
    CHECK_EQ(wrong, 0);

    /* Unmasking in pieces, split at every point, equals all at once. */
    for (size_t len = 0; len <= 200; len++)
        for (size_t cut = 0; cut <= len; cut++) {
            for (size_t i = 0; i < len; i++)
                a[i] = b[i] = (uint8_t)(i * 13 + 1);
            dx_mask(a, cut, k, 0);
            dx_mask(a + cut, len - cut, k, cut);
            mask_ref(b, len, k, 0);
            wrong += memcmp(a, b, len) != 0;
        }
    CHECK_EQ(wrong, 0);

    /* Masking twice restores the payload; guard page at the end. */
    for (size_t len = 0; len <= 300; len++) {
        uint8_t *p = unit_guard(a, len);

        memcpy(b, p, len);
        dx_mask(p, len, k, len);
        dx_mask(p, len, k, len);
        wrong += memcmp(b, p, len) != 0;
    }
    CHECK_EQ(wrong, 0);
}

int main(void)
{
    test_rfc_examples();
    test_opcodes();
    test_control_rules();
    test_rsv();
    test_masking_rules();
    test_lengths();
    test_truncation();
    test_round_trip();
    test_mask();                      /* the AVX2 loop, on a CPU with AVX2 */
    CHECK_EQ(dx_cpu_use_avx2(0), 0);
    test_mask();                      /* the baseline loop */
    dx_cpu_use_avx2(1);
    return unit_report("test_frame");
}
