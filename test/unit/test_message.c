/* Unit tests for core/protocol/message.c. */
#include "unit.h"
#include "message.h"

static dx_frame_header hdr(int fin, int opcode, uint64_t length)
{
    dx_frame_header h;

    memset(&h, 0, sizeof h);
    h.fin = (uint8_t)fin;
    h.opcode = (uint8_t)opcode;
    h.length = length;
    return h;
}

static int frame(dx_message *m, int fin, int opcode, uint64_t length, uint64_t max)
{
    dx_frame_header h = hdr(fin, opcode, length);

    return dx_message_frame(m, &h, max);
}

static int payload(dx_message *m, const char *s)
{
    return dx_message_payload(m, (const uint8_t *)s, strlen(s));
}

static void test_init(void)
{
    dx_message m;

    memset(&m, 0xAB, sizeof m);
    dx_message_init(&m);
    CHECK(m.in_message == 0 && m.size == 0 && m.utf8 == 0 && m.largest == 0);
}

static void test_single_frames(void)
{
    dx_message m;

    dx_message_init(&m);
    CHECK_EQ(frame(&m, 1, DX_OP_TEXT, 5, 100), 0);
    CHECK(m.in_message == 0 && m.opcode == DX_OP_TEXT && m.size == 5);
    CHECK_EQ(payload(&m, "Hello"), 0);
    CHECK_EQ(dx_message_end(&m), 0);
    CHECK(m.size == 0 && m.in_message == 0);

    CHECK_EQ(frame(&m, 1, DX_OP_BINARY, 2, 100), 0);
    CHECK_EQ(dx_message_payload(&m, (const uint8_t *)"\xff\xfe", 2), 0);  /* not checked */
    CHECK_EQ(dx_message_end(&m), 0);

    CHECK_EQ(frame(&m, 1, DX_OP_TEXT, 0, 100), 0);                       /* empty text */
    CHECK_EQ(dx_message_end(&m), 0);
}

static void test_fragments(void)
{
    dx_message m;

    dx_message_init(&m);
    CHECK_EQ(frame(&m, 0, DX_OP_TEXT, 3, 100), 0);
    CHECK(m.in_message == 1 && m.opcode == DX_OP_TEXT);
    CHECK_EQ(payload(&m, "Hel"), 0);
    CHECK_EQ(frame(&m, 0, DX_OP_CONT, 0, 100), 0);          /* empty middle */
    CHECK(m.in_message == 1);
    CHECK_EQ(frame(&m, 1, DX_OP_CONT, 2, 100), 0);
    CHECK(m.in_message == 0 && m.size == 5 && m.opcode == DX_OP_TEXT);
    CHECK_EQ(payload(&m, "lo"), 0);
    CHECK_EQ(dx_message_end(&m), 0);

    /* Sequencing errors. */
    dx_message_init(&m);
    CHECK_EQ(frame(&m, 1, DX_OP_CONT, 1, 100), DX_CLOSE_PROTOCOL);
    CHECK_EQ(frame(&m, 0, DX_OP_CONT, 1, 100), DX_CLOSE_PROTOCOL);
    CHECK_EQ(frame(&m, 0, DX_OP_BINARY, 1, 100), 0);
    CHECK_EQ(frame(&m, 1, DX_OP_TEXT, 1, 100), DX_CLOSE_PROTOCOL);
    CHECK_EQ(frame(&m, 0, DX_OP_BINARY, 1, 100), DX_CLOSE_PROTOCOL);
    CHECK(m.in_message == 1 && m.opcode == DX_OP_BINARY && m.size == 1);  /* unchanged */
    CHECK_EQ(frame(&m, 1, DX_OP_CONT, 1, 100), 0);
    CHECK_EQ(dx_message_end(&m), 0);
    CHECK_EQ(frame(&m, 1, DX_OP_CONT, 1, 100), DX_CLOSE_PROTOCOL);      /* after the end */

    /* Control opcodes are not data frames: refused, state untouched. */
    for (int op = 8; op <= 10; op++)
        CHECK_EQ(frame(&m, 1, op, 1, 100), DX_CLOSE_PROTOCOL);
    CHECK_EQ(frame(&m, 1, 3, 1, 100), DX_CLOSE_PROTOCOL);
    CHECK(m.in_message == 0 && m.size == 0);
}

static void test_size_limit(void)
{
    dx_message m;

    dx_message_init(&m);
    CHECK_EQ(frame(&m, 1, DX_OP_BINARY, 100, 100), 0);       /* exactly max */
    CHECK_EQ(dx_message_end(&m), 0);
    CHECK_EQ(frame(&m, 1, DX_OP_BINARY, 101, 100), DX_CLOSE_TOO_BIG);
    CHECK_EQ(frame(&m, 1, DX_OP_TEXT, 0, 0), 0);             /* max 0: only empty */
    dx_message_end(&m);

    /* Accumulates across fragments. */
    CHECK_EQ(frame(&m, 0, DX_OP_TEXT, 40, 100), 0);
    CHECK_EQ(frame(&m, 0, DX_OP_CONT, 40, 100), 0);
    CHECK_EQ(frame(&m, 0, DX_OP_CONT, 21, 100), DX_CLOSE_TOO_BIG);
    CHECK_EQ(m.size, 80);
    CHECK_EQ(frame(&m, 1, DX_OP_CONT, 20, 100), 0);
    CHECK_EQ(m.size, 100);
    dx_message_end(&m);
    CHECK_EQ(m.size, 0);                                     /* resets */
    CHECK_EQ(frame(&m, 1, DX_OP_BINARY, 100, 100), 0);
    dx_message_end(&m);

    /* No wrap-around with huge lengths. */
    CHECK_EQ(frame(&m, 0, DX_OP_BINARY, 10, UINT64_MAX - 5), 0);
    CHECK_EQ(frame(&m, 0, DX_OP_CONT, UINT64_MAX - 10, UINT64_MAX - 5), DX_CLOSE_TOO_BIG);
    CHECK_EQ(frame(&m, 0, DX_OP_CONT, 0x7fffffffffffffffull, UINT64_MAX - 5), 0);
    CHECK_EQ(frame(&m, 1, DX_OP_CONT, 0x7fffffffffffffffull, UINT64_MAX - 5), DX_CLOSE_TOO_BIG);
    dx_message_end(&m);
    CHECK_EQ(frame(&m, 1, DX_OP_BINARY, 0x7fffffffffffffffull, 1 << 20), DX_CLOSE_TOO_BIG);

    /* A protocol error wins over the size. */
    CHECK_EQ(frame(&m, 1, DX_OP_CONT, 1000, 10), DX_CLOSE_PROTOCOL);
}

static void test_utf8_across_fragments(void)
{
    /* "κόσμε" split at every byte across two frames. */
    static const char kosme[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    size_t n = sizeof kosme - 1;
    dx_message m;
    long wrong = 0;

    for (size_t cut = 0; cut <= n; cut++) {
        dx_message_init(&m);
        wrong += frame(&m, 0, DX_OP_TEXT, cut, 100) != 0;
        wrong += dx_message_payload(&m, (const uint8_t *)kosme, cut) != 0;
        wrong += frame(&m, 1, DX_OP_CONT, n - cut, 100) != 0;
        wrong += dx_message_payload(&m, (const uint8_t *)kosme + cut, n - cut) != 0;
        wrong += dx_message_end(&m) != 0;
    }
    CHECK_EQ(wrong, 0);

    /* Invalid: fails at the first bad byte, in the fragment that has it. */
    dx_message_init(&m);
    CHECK_EQ(frame(&m, 0, DX_OP_TEXT, 2, 100), 0);
    CHECK_EQ(payload(&m, "\xce\xba"), 0);
    CHECK_EQ(frame(&m, 1, DX_OP_CONT, 4, 100), 0);
    CHECK_EQ(payload(&m, "\xf4\x90"), DX_CLOSE_INVALID_DATA);   /* > U+10FFFF */
    CHECK_EQ(payload(&m, "ok"), DX_CLOSE_INVALID_DATA);         /* stays bad */
    dx_message_end(&m);

    /* Ends inside a sequence: 1007 at the end, then a fresh start. */
    dx_message_init(&m);
    CHECK_EQ(frame(&m, 1, DX_OP_TEXT, 2, 100), 0);
    CHECK_EQ(payload(&m, "\xe2\x82"), 0);
    CHECK_EQ(dx_message_end(&m), DX_CLOSE_INVALID_DATA);
    CHECK(m.in_message == 0 && m.size == 0 && m.utf8 == 0);
    CHECK_EQ(frame(&m, 1, DX_OP_TEXT, 3, 100), 0);
    CHECK_EQ(payload(&m, "\xe2\x82\xac"), 0);
    CHECK_EQ(dx_message_end(&m), 0);

    /* The UTF-8 state of a text message does not leak into a binary one. */
    CHECK_EQ(frame(&m, 1, DX_OP_TEXT, 1, 100), 0);
    CHECK_EQ(payload(&m, "\xe2"), 0);
    dx_message_end(&m);
    CHECK_EQ(frame(&m, 1, DX_OP_BINARY, 1, 100), 0);
    CHECK_EQ(payload(&m, "\x82"), 0);
    CHECK_EQ(dx_message_end(&m), 0);
}

static int expected_code_valid(unsigned c)
{
    switch (c) {
    case 1000: case 1001: case 1002: case 1003:
    case 1007: case 1008: case 1009: case 1010: case 1011: case 1012: case 1013: case 1014:
        return 1;
    default:
        return c >= 3000 && c <= 4999;
    }
}

static void test_close_codes(void)
{
    long wrong = 0;

    for (unsigned c = 0; c <= 70000; c++)
        wrong += dx_close_code_valid(c) != expected_code_valid(c);
    CHECK_EQ(wrong, 0);
    CHECK(!dx_close_code_valid(1004) && !dx_close_code_valid(1005));
    CHECK(!dx_close_code_valid(1006) && !dx_close_code_valid(1015));
    CHECK(!dx_close_code_valid(999) && !dx_close_code_valid(2999) && !dx_close_code_valid(5000));
}

static int close_parse(const char *p, size_t n, unsigned *code, const uint8_t **r, size_t *rn)
{
    return dx_close_parse((const uint8_t *)p, n, code, r, rn);
}

static void test_close_parse(void)
{
    static const char ok[] = "\x03\xe8" "bye \xe2\x82\xac";
    unsigned code = 0;
    const uint8_t *reason = NULL;
    size_t rlen = 99;

    CHECK_EQ(close_parse("", 0, &code, &reason, &rlen), 0);
    CHECK(code == DX_CLOSE_NO_STATUS && rlen == 0);
    CHECK_EQ(close_parse("\x03", 1, &code, &reason, &rlen), DX_CLOSE_PROTOCOL);
    CHECK_EQ(close_parse("\x03\xe8", 2, &code, &reason, &rlen), 0);
    CHECK(code == 1000 && rlen == 0);
    CHECK_EQ(close_parse(ok, sizeof ok - 1, &code, &reason, &rlen), 0);
    CHECK(code == 1000 && rlen == 7 && reason == (const uint8_t *)ok + 2);
    CHECK_EQ(close_parse("\x0f\xa0", 2, &code, &reason, &rlen), 0);       /* 4000 */
    CHECK_EQ(code, 4000);

    CHECK_EQ(close_parse("\x03\xed", 2, &code, &reason, &rlen), DX_CLOSE_PROTOCOL);  /* 1005 */
    CHECK_EQ(close_parse("\x03\xee", 2, &code, &reason, &rlen), DX_CLOSE_PROTOCOL);  /* 1006 */
    CHECK_EQ(close_parse("\x03\xe7", 2, &code, &reason, &rlen), DX_CLOSE_PROTOCOL);  /* 999 */
    CHECK_EQ(close_parse("\x03\xf7", 2, &code, &reason, &rlen), DX_CLOSE_PROTOCOL);  /* 1015 */
    CHECK_EQ(close_parse("\x0b\xb7", 2, &code, &reason, &rlen), DX_CLOSE_PROTOCOL);  /* 2999 */
    CHECK_EQ(close_parse("\x13\x88", 2, &code, &reason, &rlen), DX_CLOSE_PROTOCOL);  /* 5000 */
    CHECK_EQ(close_parse("\x00\x00", 2, &code, &reason, &rlen), DX_CLOSE_PROTOCOL);
    CHECK_EQ(close_parse("\xff\xff", 2, &code, &reason, &rlen), DX_CLOSE_PROTOCOL);

    CHECK_EQ(close_parse("\x03\xe8\xff", 3, &code, &reason, &rlen), DX_CLOSE_INVALID_DATA);
    CHECK_EQ(close_parse("\x03\xe8" "a\xe2\x82", 5, &code, &reason, &rlen),
             DX_CLOSE_INVALID_DATA);                          /* cut short */
    CHECK_EQ(close_parse("\x03\xe8\xed\xa0\x80", 5, &code, &reason, &rlen),
             DX_CLOSE_INVALID_DATA);                          /* surrogate */
    /* A bad code is reported before a bad reason. */
    CHECK_EQ(close_parse("\x03\xed\xff", 3, &code, &reason, &rlen), DX_CLOSE_PROTOCOL);

    /* Against a guard page at every length of a valid payload. */
    long wrong = 0;
    for (size_t n = 2; n < sizeof ok; n++) {
        int want = (n == 2 + 4 + 1 || n == 2 + 4 + 2) ? DX_CLOSE_INVALID_DATA : 0;

        wrong += close_parse(unit_guard(ok, n), n, &code, &reason, &rlen) != want;
    }
    CHECK_EQ(wrong, 0);
}

/* RFC 7692 6.1: RSV1 marks the first frame of a compressed message only. */
static void test_compressed_flag(void)
{
    dx_message m;
    dx_frame_header h;

    dx_message_init(&m);
    h = hdr(0, DX_OP_TEXT, 3);
    h.rsv = DX_RSV1;
    CHECK_EQ(dx_message_frame(&m, &h, 100), 0);
    CHECK_EQ(m.compressed, 1);
    h = hdr(0, DX_OP_CONT, 3);
    h.rsv = DX_RSV1;                               /* RSV1 again on a continuation */
    CHECK_EQ(dx_message_frame(&m, &h, 100), DX_CLOSE_PROTOCOL);
    CHECK_EQ(m.size, 3);                           /* the error changed nothing */
    h.rsv = 0;
    h.fin = 1;
    CHECK_EQ(dx_message_frame(&m, &h, 100), 0);
    CHECK_EQ(m.compressed, 1);                     /* kept until the message ends */
    CHECK_EQ(dx_message_end(&m), 0);
    CHECK_EQ(m.compressed, 0);
    CHECK_EQ(frame(&m, 1, DX_OP_BINARY, 2, 100), 0);
    CHECK_EQ(m.compressed, 0);                     /* no RSV1: not compressed */
}

/* largest: the bits of the largest size that ended well, kept across
 * messages; a smaller message or one that failed its UTF-8 check leaves it. */
static void test_largest(void)
{
    dx_message m;

    dx_message_init(&m);
    CHECK_EQ(frame(&m, 1, DX_OP_BINARY, 0, 1 << 24), 0);
    CHECK_EQ(dx_message_end(&m), 0);
    CHECK_EQ(m.largest, 0);                        /* an empty message shows nothing */
    CHECK_EQ(frame(&m, 1, DX_OP_BINARY, 1, 1 << 24), 0);
    CHECK_EQ(dx_message_end(&m), 0);
    CHECK_EQ(m.largest, 1);
    CHECK_EQ(frame(&m, 0, DX_OP_BINARY, 1 << 19, 1 << 24), 0);   /* 1 MiB in two frames */
    CHECK_EQ(frame(&m, 1, DX_OP_CONT, 1 << 19, 1 << 24), 0);
    CHECK_EQ(dx_message_end(&m), 0);
    CHECK_EQ(m.largest, 21);                       /* 2^20 has 21 bits */
    CHECK_EQ(frame(&m, 1, DX_OP_BINARY, 1000, 1 << 24), 0);
    CHECK_EQ(dx_message_end(&m), 0);
    CHECK_EQ(m.largest, 21);                       /* a smaller one keeps it */
    CHECK_EQ(frame(&m, 1, DX_OP_BINARY, (1 << 21) - 1, 1 << 24), 0);
    CHECK_EQ(dx_message_end(&m), 0);
    CHECK_EQ(m.largest, 21);                       /* as many bits */
    CHECK_EQ(frame(&m, 1, DX_OP_TEXT, 1 << 22, 1 << 24), 0);
    CHECK_EQ(dx_message_payload(&m, (const uint8_t *)"\xe2\x82", 2), 0);
    CHECK_EQ(dx_message_end(&m), DX_CLOSE_INVALID_DATA);
    CHECK_EQ(m.largest, 21);                       /* a message that failed shows nothing */
    CHECK_EQ(frame(&m, 1, DX_OP_BINARY, 1 << 22, 1 << 24), 0);
    CHECK_EQ(dx_message_end(&m), 0);
    CHECK(m.largest == 23 && m.size == 0 && m.in_message == 0);
    CHECK_EQ(frame(&m, 1, DX_OP_BINARY, 1ull << 62, 1ull << 63), 0);
    CHECK_EQ(dx_message_end(&m), 0);
    CHECK_EQ(m.largest, 63);
    dx_message_init(&m);
    CHECK_EQ(m.largest, 0);                        /* a new connection starts anew */
}

int main(void)
{
    test_init();
    test_single_frames();
    test_fragments();
    test_size_limit();
    test_utf8_across_fragments();
    test_close_codes();
    test_close_parse();
    test_compressed_flag();
    test_largest();
    return unit_report("test_message");
}
