/* Unit tests for core/protocol/utf8.c. */
#include "unit.h"
#include "utf8.h"
#include "cpu.h"

/* A table after Markus Kuhn's UTF-8 decoder stress test. bad is the index
 * of the first byte that must be rejected, or -1 (valid, or valid so far
 * but incomplete at its end). */
typedef struct utf8_case {
    const char *name;
    const char *s;
    size_t len;
    int valid;
    int bad;
} utf8_case;

#define C(name, lit, valid, bad) { name, lit, sizeof(lit) - 1, valid, bad }

static const utf8_case cases[] = {
    C("empty", "", 1, -1),
    C("ascii", "Hello, world", 1, -1),
    C("nul and del", "a\x00\x7f", 1, -1),
    C("kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1, -1),
    /* 2 boundaries */
    C("U+0080", "\xc2\x80", 1, -1),
    C("U+0800", "\xe0\xa0\x80", 1, -1),
    C("U+10000", "\xf0\x90\x80\x80", 1, -1),
    C("U+007F", "\x7f", 1, -1),
    C("U+07FF", "\xdf\xbf", 1, -1),
    C("U+FFFF", "\xef\xbf\xbf", 1, -1),
    C("U+10FFFF", "\xf4\x8f\xbf\xbf", 1, -1),
    C("U+D7FF", "\xed\x9f\xbf", 1, -1),
    C("U+E000", "\xee\x80\x80", 1, -1),
    C("U+FFFD", "\xef\xbf\xbd", 1, -1),
    C("U+FFFE noncharacter", "\xef\xbf\xbe", 1, -1),
    C("U+110000", "\xf4\x90\x80\x80", 0, 1),
    C("U+13FFFF", "\xf4\xbf\xbf\xbf", 0, 1),
    C("5-byte U+200000", "\xf8\x88\x80\x80\x80", 0, 0),
    C("6-byte U+4000000", "\xfc\x84\x80\x80\x80\x80", 0, 0),
    /* 3 malformed: continuation bytes */
    C("lone 80", "\x80", 0, 0),
    C("lone bf", "\xbf", 0, 0),
    C("ascii then 80", "abc\x80", 0, 3),
    C("two continuations", "\x80\xbf", 0, 0),
    C("char then extra continuation", "\xc2\x80\x80", 0, 2),
    C("3-byte then extra", "\xe2\x82\xac\xbf", 0, 3),
    /* lonely start characters followed by space */
    C("c2 space", "\xc2 ", 0, 1),
    C("e1 space", "\xe1 ", 0, 1),
    C("e1 80 space", "\xe1\x80 ", 0, 2),
    C("f1 space", "\xf1 ", 0, 1),
    C("f1 80 80 space", "\xf1\x80\x80 ", 0, 3),
    /* sequences with the last byte missing (at the end: incomplete) */
    C("c2 at end", "\xc2", 0, -1),
    C("e2 82 at end", "\xe2\x82", 0, -1),
    C("f0 9f 98 at end", "\xf0\x9f\x98", 0, -1),
    C("f4 8f at end", "\xf4\x8f", 0, -1),
    C("incomplete then ascii", "\xe2\x82" "a", 0, 2),
    C("incomplete then lead", "\xe2\x82\xe2\x82\xac", 0, 2),
    /* impossible bytes */
    C("c0", "\xc0", 0, 0),
    C("c1", "\xc1", 0, 0),
    C("f5", "\xf5", 0, 0),
    C("f7", "\xf7\xbf\xbf\xbf", 0, 0),
    C("fe", "\xfe", 0, 0),
    C("ff", "\xff", 0, 0),
    C("fe fe ff ff", "\xfe\xfe\xff\xff", 0, 0),
    /* overlong forms */
    C("overlong / 2", "\xc0\xaf", 0, 0),
    C("overlong / 3", "\xe0\x80\xaf", 0, 1),
    C("overlong / 4", "\xf0\x80\x80\xaf", 0, 1),
    C("overlong max 2", "\xc1\xbf", 0, 0),
    C("overlong max 3", "\xe0\x9f\xbf", 0, 1),
    C("overlong max 4", "\xf0\x8f\xbf\xbf", 0, 1),
    C("overlong nul 2", "\xc0\x80", 0, 0),
    C("overlong nul 3", "\xe0\x80\x80", 0, 1),
    C("overlong nul 4", "\xf0\x80\x80\x80", 0, 1),
    /* surrogates */
    C("U+D800", "\xed\xa0\x80", 0, 1),
    C("U+DB7F", "\xed\xad\xbf", 0, 1),
    C("U+DC00", "\xed\xb0\x80", 0, 1),
    C("U+DFFF", "\xed\xbf\xbf", 0, 1),
    C("surrogate pair", "\xed\xa0\x80\xed\xb0\x80", 0, 1),
    /* Autobahn 6.4.x fail-fast: valid prefix, then a bad byte */
    C("autobahn 6.4.1", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80"
      "edited", 0, 12),
    C("autobahn 6.4.3", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", 0, 12),
    /* long ASCII runs around the fast path */
    C("ascii 16", "0123456789abcdef", 1, -1),
    C("ascii 15 + 2-byte", "0123456789abcde\xc3\xa9", 1, -1),
    C("ascii 17 + bad", "0123456789abcdefg\xff", 0, 17),
    C("ascii 8 + 80 + ascii 8", "01234567\x80" "01234567", 0, 8),
    C("mixed runs", "abcdefgh\xe2\x82\xac" "ijklmnopqrstuvwx\xf0\x9f\x98\x80yz", 1, -1),
};

/* Straightforward RFC 3629 decoder. Returns the index of the first byte
 * that makes p invalid, -1 when valid, -2 when valid but incomplete. */
static long ref_check(const uint8_t *p, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint8_t b = p[i];
        size_t n;
        uint8_t lo = 0x80, hi = 0xBF;

        if (b < 0x80) { i++; continue; }
        if (b >= 0xC2 && b <= 0xDF) n = 1;
        else if (b >= 0xE0 && b <= 0xEF) n = 2;
        else if (b >= 0xF0 && b <= 0xF4) n = 3;
        else return (long)i;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
        for (size_t k = 1; k <= n; k++) {
            uint8_t c = 0;

            if (i + k >= len)
                return -2;
            c = p[i + k];
            if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF))
                return (long)(i + k);
        }
        i += n + 1;
    }
    return -1;
}

/* A second, independent reference: decode the code point, then judge it. */
static int ref_valid_decode(const uint8_t *p, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint32_t cp;
        size_t n;

        if (p[i] < 0x80) { i++; continue; }
        if ((p[i] & 0xE0) == 0xC0) { n = 1; cp = p[i] & 0x1F; }
        else if ((p[i] & 0xF0) == 0xE0) { n = 2; cp = p[i] & 0x0F; }
        else if ((p[i] & 0xF8) == 0xF0) { n = 3; cp = p[i] & 0x07; }
        else return 0;
        if (i + n >= len)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000))
            return 0;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

static size_t encode(uint32_t cp, uint8_t *out)
{
    if (cp < 0x80) { out[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6); out[1] = (uint8_t)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12); out[1] = (uint8_t)(0x80 | (cp >> 6 & 63));
        out[2] = (uint8_t)(0x80 | (cp & 63));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18); out[1] = (uint8_t)(0x80 | (cp >> 12 & 63));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 63)); out[3] = (uint8_t)(0x80 | (cp & 63));
    return 4;
}

/* Feeds p one byte at a time; returns the index at which the state became
 * REJECT (-1 if never) and the final state in *final. */
static long feed_bytewise(const uint8_t *p, size_t len, uint32_t *final)
{
    uint32_t st = DX_UTF8_ACCEPT;
    long bad = -1;

    for (size_t i = 0; i < len; i++) {
        st = dx_utf8_feed(st, p + i, 1);
        if (st == DX_UTF8_REJECT && bad < 0)
            bad = (long)i;
    }
    *final = st;
    return bad;
}

static void test_table(void)
{
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const utf8_case *t = &cases[c];
        const uint8_t *p = (const uint8_t *)t->s;
        uint32_t st;
        long bad;
        int ok = 1;

        ok &= CHECK(dx_utf8_valid(p, t->len) == t->valid);
        ok &= CHECK(ref_valid_decode(p, t->len) == t->valid);
        bad = ref_check(p, t->len);
        ok &= CHECK(bad == (t->bad >= 0 ? t->bad : t->valid ? -1 : -2));

        /* Fail fast: the prefix before the bad byte is not rejected. */
        if (t->bad >= 0) {
            ok &= CHECK(dx_utf8_feed(DX_UTF8_ACCEPT, p, (size_t)t->bad) != DX_UTF8_REJECT);
            ok &= CHECK(dx_utf8_feed(DX_UTF8_ACCEPT, p, (size_t)t->bad + 1) == DX_UTF8_REJECT);
        }
        ok &= CHECK(feed_bytewise(p, t->len, &st) == t->bad);
        ok &= CHECK((st == DX_UTF8_ACCEPT) == t->valid);
        if (t->bad < 0 && !t->valid)
            ok &= CHECK(st != DX_UTF8_REJECT && st != DX_UTF8_ACCEPT);

        /* Every split point, two pieces. */
        for (size_t k = 0; k <= t->len; k++) {
            uint32_t s1 = dx_utf8_feed(DX_UTF8_ACCEPT, p, k);
            uint32_t s2 = dx_utf8_feed(s1, p + k, t->len - k);

            ok &= CHECK((s2 == DX_UTF8_ACCEPT) == t->valid);
            ok &= CHECK((s2 == DX_UTF8_REJECT) == (t->bad >= 0));
        }
        if (!ok)
            fprintf(stderr, "    in case \"%s\"\n", t->name);
    }
}

/* Every code point through its encoding, and at every 8-byte alignment
 * of the fast path. */
static void test_all_code_points(void)
{
    uint8_t buf[16];
    long wrong = 0;

    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        size_t n = encode(cp, buf);
        int want = !(cp >= 0xD800 && cp <= 0xDFFF);

        wrong += dx_utf8_valid(buf, n) != want;
    }
    CHECK_EQ(wrong, 0);
}

/* All sequences of a lead byte and up to three following bytes drawn from
 * the interesting values, against the reference. */
static void test_exhaustive_short(void)
{
    uint8_t b[4];
    long wrong = 0;

    for (unsigned x = 0; x < 256; x++)
        for (unsigned y = 0; y < 256; y++) {
            b[0] = (uint8_t)x; b[1] = (uint8_t)y;
            wrong += dx_utf8_valid(b, 2) != ref_valid_decode(b, 2);
            wrong += dx_utf8_valid(b, 1) != ref_valid_decode(b, 1);
        }
    CHECK_EQ(wrong, 0);
    for (unsigned x = 0xE0; x < 0x100; x++)
        for (unsigned y = 0; y < 256; y++)
            for (unsigned z = 0; z < 256; z++) {
                b[0] = (uint8_t)x; b[1] = (uint8_t)y; b[2] = (uint8_t)z;
                wrong += dx_utf8_valid(b, 3) != ref_valid_decode(b, 3);
            }
    CHECK_EQ(wrong, 0);
    static const uint8_t tails[] = { 0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF };
    for (unsigned x = 0xF0; x < 0x100; x++)
        for (unsigned y = 0; y < 256; y++)
            for (size_t z = 0; z < sizeof tails; z++)
                for (size_t w = 0; w < sizeof tails; w++) {
                    b[0] = (uint8_t)x; b[1] = (uint8_t)y; b[2] = tails[z]; b[3] = tails[w];
                    wrong += dx_utf8_valid(b, 4) != ref_valid_decode(b, 4);
                }
    CHECK_EQ(wrong, 0);
}

/* A bad byte or a multi-byte character at every position of a long ASCII
 * run, at every alignment: the fast path must not skip over it. */
static void test_fast_path_positions(void)
{
    uint8_t buf[288];
    long wrong = 0;

    for (size_t align = 0; align < 8; align++)
        for (size_t len = 1; len <= 272; len++)   /* 64- or 32-byte steps, then 8, then bytes */
            for (size_t at = 0; at < len; at++) {
                uint8_t *p = buf + align;

                memset(p, 'a', len);
                p[at] = 0x80;
                wrong += dx_utf8_feed(DX_UTF8_ACCEPT, p, at) != DX_UTF8_ACCEPT;
                wrong += dx_utf8_feed(DX_UTF8_ACCEPT, p, at + 1) != DX_UTF8_REJECT;
                wrong += dx_utf8_valid(p, len) != 0;
                if (at + 1 < len) {
                    p[at] = 0xC3; p[at + 1] = 0xA9;          /* U+00E9 */
                    wrong += dx_utf8_valid(p, len) != 1;
                    wrong += dx_utf8_feed(DX_UTF8_ACCEPT, p, at + 1) == DX_UTF8_ACCEPT;
                    wrong += dx_utf8_feed(DX_UTF8_ACCEPT, p, at + 1) == DX_UTF8_REJECT;
                }
            }
    CHECK_EQ(wrong, 0);
}

/* Random strings from a biased alphabet, compared with both references,
 * and fed in random pieces. */
static void test_random(void)
{
    static const uint8_t alphabet[] = {
        'a', 'z', 0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1,
        0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4,
        0xF5, 0xFF
    };
    uint8_t buf[40];
    long wrong = 0;

    for (int iter = 0; iter < 200000; iter++) {
        size_t len = unit_rand() % sizeof buf, pos = 0;
        uint32_t st = DX_UTF8_ACCEPT;
        long ref;

        for (size_t i = 0; i < len; i++) {
            uint64_t r = unit_rand();

            buf[i] = (r & 0x100) ? (uint8_t)r : alphabet[r % sizeof alphabet];
        }
        ref = ref_check(buf, len);
        wrong += dx_utf8_valid(buf, len) != (ref == -1);
        wrong += ref_valid_decode(buf, len) != (ref == -1);
        while (pos < len) {
            size_t n = 1 + unit_rand() % (len - pos);

            st = dx_utf8_feed(st, buf + pos, n);
            pos += n;
        }
        wrong += (st == DX_UTF8_ACCEPT) != (ref == -1);
        wrong += (st == DX_UTF8_REJECT) != (ref >= 0);
    }
    CHECK_EQ(wrong, 0);
}

static void test_states(void)
{
    const uint8_t a = 'a';

    /* REJECT sticks, even when fed valid bytes or nothing. */
    CHECK(dx_utf8_feed(DX_UTF8_REJECT, &a, 1) == DX_UTF8_REJECT);
    CHECK(dx_utf8_feed(DX_UTF8_REJECT, &a, 0) == DX_UTF8_REJECT);
    CHECK(dx_utf8_feed(DX_UTF8_ACCEPT, NULL, 0) == DX_UTF8_ACCEPT);
    CHECK(dx_utf8_valid(NULL, 0) == 1);
    /* A state value the DFA never returns is treated as rejected. */
    CHECK(dx_utf8_feed(1000, &a, 1) == DX_UTF8_REJECT);
    /* The middle states are positive and neither accept nor reject. */
    CHECK(dx_utf8_feed(DX_UTF8_ACCEPT, (const uint8_t *)"\xf0", 1) > DX_UTF8_REJECT);
}

static void test_guard(void)
{
    /* The word-at-a-time path never reads past len. */
    static const char text[] = "0123456789abcdefghijklmnopqrstuvwxyz\xe2\x82\xac";
    long wrong = 0;

    for (size_t n = 0; n < sizeof text - 1; n++) {
        const uint8_t *p = unit_guard(text, n);

        wrong += dx_utf8_valid(p, n) != (n <= 36 || n == 39);
    }
    CHECK_EQ(wrong, 0);
}

int main(void)
{
    test_table();
    test_all_code_points();
    test_exhaustive_short();
    test_fast_path_positions();       /* the AVX2 skip, on a CPU with AVX2 */
    test_random();
    CHECK_EQ(dx_cpu_use_avx2(0), 0);
    test_fast_path_positions();       /* the baseline skip */
    test_random();
    dx_cpu_use_avx2(1);
    test_states();
    test_guard();
    return unit_report("test_utf8");
}
