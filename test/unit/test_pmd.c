/* Unit tests for core/protocol/pmd.c. */
#include "unit.h"
#include "pmd.h"

#include <time.h>

/* ---- negotiation ------------------------------------------------------- */

static dx_http_header hs[32];
static char head[4096];

/* Parses a request whose header lines (each ending in \r\n) are lines and
 * negotiates with mode and window_bits; -1000 when the head does not parse. */
static int negotiate(int mode, int window_bits, const char *lines, dx_pmd_params *p,
                     char *resp, size_t cap)
{
    dx_http_request r;
    dx_pmd_config cfg = { mode, window_bits, 8 };

    memset(&r, 0, sizeof r);
    r.headers = hs;
    r.num_headers = 32;
    snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: h\r\n%s\r\n", lines);
    if (dx_http_parse_request(head, strlen(head), 0, &r) <= 0)
        return -1000;
    return dx_pmd_negotiate(&r, &cfg, p, resp, cap);
}

#define SH DX_PMD_SHARED
#define DE DX_PMD_DEDICATED
#define PMD "permessage-deflate"
#define SNCT "; server_no_context_takeover"
#define CNCT "; client_no_context_takeover"

/* One case: header value(s) (a value, or full lines when it has "\r\n"),
 * the result, and for 1 the response and the parameters agreed. */
typedef struct ncase {
    int mode, bits;
    const char *ext;
    int rc;
    const char *resp;
    int snct, cnct, sbits, cbits;
} ncase;

static const ncase ncases[] = {
    /* SHARED: no context takeover either way, whatever was offered. */
    { SH, 15, PMD, 1, PMD SNCT CNCT, 1, 1, 15, 15 },
    { SH, 10, PMD, 1, PMD SNCT CNCT, 1, 1, 15, 15 },         /* cfg bits: DEDICATED only */
    { SH, 15, PMD SNCT, 1, PMD SNCT CNCT, 1, 1, 15, 15 },
    { SH, 15, PMD CNCT, 1, PMD SNCT CNCT, 1, 1, 15, 15 },
    { SH, 15, PMD "; client_max_window_bits", 1, PMD SNCT CNCT, 1, 1, 15, 15 },
    { SH, 15, PMD "; client_max_window_bits=10", 1, PMD SNCT CNCT, 1, 1, 15, 10 },
    { SH, 15, PMD "; server_max_window_bits=10", 1,
      PMD SNCT CNCT "; server_max_window_bits=10", 1, 1, 10, 15 },
    { SH, 10, PMD "; server_max_window_bits=12", 1,
      PMD SNCT CNCT "; server_max_window_bits=12", 1, 1, 12, 15 },
    { SH, 15, PMD "; server_max_window_bits=15", 1,
      PMD SNCT CNCT "; server_max_window_bits=15", 1, 1, 15, 15 },
    { SH, 15, PMD "; server_max_window_bits=9; client_max_window_bits=8" SNCT CNCT, 1,
      PMD SNCT CNCT "; server_max_window_bits=9", 1, 1, 9, 8 },
    { SH, 15, PMD "; server_max_window_bits=8", 0, NULL, 0, 0, 0, 0 },

    /* DEDICATED, cfg 15: each parameter alone, then all of them. */
    { DE, 15, PMD, 1, PMD, 0, 0, 15, 15 },
    { DE, 15, PMD SNCT, 1, PMD SNCT, 1, 0, 15, 15 },
    { DE, 15, PMD CNCT, 1, PMD CNCT, 0, 1, 15, 15 },
    { DE, 15, PMD "; client_max_window_bits", 1, PMD "; client_max_window_bits=15", 0, 0, 15, 15 },
    { DE, 15, PMD "; client_max_window_bits=9", 1, PMD "; client_max_window_bits=9", 0, 0, 15, 9 },
    { DE, 15, PMD "; client_max_window_bits=8", 1, PMD "; client_max_window_bits=8", 0, 0, 15, 8 },
    { DE, 15, PMD "; server_max_window_bits=11", 1, PMD "; server_max_window_bits=11", 0, 0, 11, 15 },
    { DE, 15, PMD "; server_max_window_bits=9", 1, PMD "; server_max_window_bits=9", 0, 0, 9, 15 },
    { DE, 15, PMD "; server_max_window_bits=8", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; client_max_window_bits=12; server_max_window_bits=13" CNCT SNCT, 1,
      PMD SNCT CNCT "; server_max_window_bits=13; client_max_window_bits=12", 1, 1, 13, 12 },
    { DE, 15, PMD SNCT "; client_max_window_bits", 1,
      PMD SNCT "; client_max_window_bits=15", 1, 0, 15, 15 },
    /* DEDICATED, smaller cfg windows. */
    { DE, 10, PMD, 1, PMD, 0, 0, 10, 15 },
    { DE, 10, PMD "; client_max_window_bits", 1, PMD "; client_max_window_bits=10", 0, 0, 10, 10 },
    { DE, 10, PMD "; client_max_window_bits=12", 1, PMD "; client_max_window_bits=10", 0, 0, 10, 10 },
    { DE, 10, PMD "; client_max_window_bits=9", 1, PMD "; client_max_window_bits=9", 0, 0, 10, 9 },
    { DE, 10, PMD "; server_max_window_bits=12", 1, PMD "; server_max_window_bits=10", 0, 0, 10, 15 },
    { DE, 10, PMD "; server_max_window_bits=9", 1, PMD "; server_max_window_bits=9", 0, 0, 9, 15 },
    { DE, 9, PMD "; server_max_window_bits=8", 0, NULL, 0, 0, 0, 0 },
    { DE, 9, PMD "; server_max_window_bits=15; client_max_window_bits=15", 1,
      PMD "; server_max_window_bits=9; client_max_window_bits=9", 0, 0, 9, 9 },
    { DE, 99, PMD, 1, PMD, 0, 0, 15, 15 },                    /* cfg out of range: clamped */
    { DE, 3, PMD, 1, PMD, 0, 0, 9, 15 },

    /* OFF: nothing, and the field is not even judged. */
    { DX_PMD_OFF, 15, PMD, 0, NULL, 0, 0, 0, 0 },
    { DX_PMD_OFF, 15, PMD ";", 0, NULL, 0, 0, 0, 0 },
    { 7, 15, PMD, 0, NULL, 0, 0, 0, 0 },

    /* Quoted values unquote to a token. */
    { DE, 15, PMD "; client_max_window_bits=\"10\"", 1, PMD "; client_max_window_bits=10", 0, 0, 15, 10 },
    { DE, 15, PMD "; server_max_window_bits=\"1\\2\"", 1, PMD "; server_max_window_bits=12", 0, 0, 12, 15 },
    { DE, 15, PMD "; x=\"y\", " PMD, 1, PMD, 0, 0, 15, 15 },
    { DE, 15, "foo; bar=\"a\\\"b\"", -1, NULL, 0, 0, 0, 0 },  /* '"' is no tchar */
    { DE, 15, PMD "; server_no_context_takeover=\"x\"", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=\"\"", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=\"1 0\"", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=\"10", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=\"10\\", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, "foo; a=\"b,c\", " PMD, -1, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=\"10\"x", -1, NULL, 0, 0, 0, 0 },

    /* Declined offers: unknown, repeated, missing, extra or bad values. */
    { DE, 15, PMD "; foo", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; foo=bar", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD SNCT SNCT, 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD CNCT CNCT, 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; client_max_window_bits; client_max_window_bits=10", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=10; server_max_window_bits=10", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_no_context_takeover=1", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; client_no_context_takeover=true", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=7", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=16", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=010", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=09", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=+9", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=-9", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=abc", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=9.0", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=100000000000000000000010", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; client_max_window_bits=7", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; client_max_window_bits=16", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; client_max_window_bits=010", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; client_max_window_bits=+9", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; client_max_window_bits=abc", 0, NULL, 0, 0, 0, 0 },
    { SH, 15, PMD "; client_max_window_bits=16", 0, NULL, 0, 0, 0, 0 },
    { SH, 15, PMD "; foo", 0, NULL, 0, 0, 0, 0 },

    /* Several offers: others passed over, the first acceptable one wins. */
    { DE, 15, "x-webkit-deflate-frame, " PMD CNCT, 1, PMD CNCT, 0, 1, 15, 15 },
    { DE, 15, "foo; a=1; b=\"x\"; c, " PMD, 1, PMD, 0, 0, 15, 15 },
    { DE, 15, PMD "; foo, " PMD "; client_max_window_bits", 1,
      PMD "; client_max_window_bits=15", 0, 0, 15, 15 },
    { DE, 15, PMD "; server_max_window_bits=8, " PMD "; server_max_window_bits=9", 1,
      PMD "; server_max_window_bits=9", 0, 0, 9, 15 },
    { DE, 15, PMD "; server_max_window_bits=10, " PMD, 1,
      PMD "; server_max_window_bits=10", 0, 0, 10, 15 },
    { DE, 15, PMD "; foo, " PMD "; bar", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, "foo, bar", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, "permessage-deflate-x, deflate", 0, NULL, 0, 0, 0, 0 },
    { DE, 15, "PerMessage-Deflate; Client_Max_Window_Bits=11", 1,
      PMD "; client_max_window_bits=11", 0, 0, 15, 11 },

    /* Whitespace around separators; empty list elements. */
    { DE, 15, PMD " ;client_max_window_bits = 10 ;\tserver_no_context_takeover , foo", 1,
      PMD SNCT "; client_max_window_bits=10", 1, 0, 15, 10 },
    { DE, 15, ", ," PMD ",", 1, PMD, 0, 0, 15, 15 },
    { DE, 15, "", 0, NULL, 0, 0, 0, 0 },

    /* Malformed lists: -1, even after an acceptable offer. */
    { DE, 15, PMD ";", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, ";;", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, ";", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, "a b", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD " x", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD ";; client_no_context_takeover", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; =10", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits= ; x", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits==10", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; server_max_window_bits=1=0", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD "; a b", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, PMD ", a/b", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, "\"" PMD "\"", -1, NULL, 0, 0, 0, 0 },
    { DE, 15, "=" PMD, -1, NULL, 0, 0, 0, 0 },
    { SH, 15, PMD ", foo;", -1, NULL, 0, 0, 0, 0 },

    /* Repeated fields: offers taken in order from all of them. */
    { DE, 15, "Sec-WebSocket-Extensions: foo\r\nSec-WebSocket-Extensions: " PMD CNCT "\r\n",
      1, PMD CNCT, 0, 1, 15, 15 },
    { DE, 15, "Sec-WebSocket-Extensions: " PMD "; foo\r\n"
              "X-Other: " PMD "\r\n"
              "sec-websocket-extensions: " PMD SNCT "\r\n", 1, PMD SNCT, 1, 0, 15, 15 },
    { DE, 15, "Sec-WebSocket-Extensions: " PMD SNCT "\r\nSec-WebSocket-Extensions: " PMD "\r\n",
      1, PMD SNCT, 1, 0, 15, 15 },
    { DE, 15, "Sec-WebSocket-Extensions: " PMD "\r\nSec-WebSocket-Extensions: a b\r\n",
      -1, NULL, 0, 0, 0, 0 },
    { DE, 15, "Sec-WebSocket-Extensions: ;\r\nSec-WebSocket-Extensions: " PMD "\r\n",
      -1, NULL, 0, 0, 0, 0 },
    { DE, 15, "Sec-WebSocket-Extensions: \r\nSec-WebSocket-Extensions: " PMD "\r\n",
      1, PMD, 0, 0, 15, 15 },
    { DE, 15, "X-Sec-WebSocket-Extensions: " PMD "\r\n", 0, NULL, 0, 0, 0, 0 },
    { SH, 15, "X-Other: 1\r\n", 0, NULL, 0, 0, 0, 0 },
};

static void test_negotiate_table(void)
{
    for (size_t i = 0; i < sizeof ncases / sizeof ncases[0]; i++) {
        const ncase *c = &ncases[i];
        char lines[1024], resp[DX_PMD_RESPONSE_MAX];
        dx_pmd_params p;
        int rc, ok;

        if (strstr(c->ext, "\r\n"))
            snprintf(lines, sizeof lines, "%s", c->ext);
        else
            snprintf(lines, sizeof lines, "Sec-WebSocket-Extensions: %s\r\n", c->ext);
        memset(&p, 0xAA, sizeof p);
        memset(resp, 'x', sizeof resp);
        rc = negotiate(c->mode, c->bits, lines, &p, resp, sizeof resp);
        ok = rc == c->rc;
        if (ok && rc == 1)
            ok = strcmp(resp, c->resp) == 0 && p.server_no_context_takeover == c->snct &&
                 p.client_no_context_takeover == c->cnct &&
                 p.server_window_bits == c->sbits && p.client_window_bits == c->cbits;
        else if (ok)
            ok = resp[0] == 0;
        if (!CHECK(ok))
            fprintf(stderr, "    case %zu mode %d bits %d \"%s\": rc %d resp \"%s\" "
                    "snct %d cnct %d s %d c %d\n", i, c->mode, c->bits, c->ext, rc,
                    rc == 1 ? resp : "", p.server_no_context_takeover,
                    p.client_no_context_takeover, p.server_window_bits, p.client_window_bits);
    }
}

static void test_negotiate_misc(void)
{
    static const char longest[] =
        PMD SNCT CNCT "; server_max_window_bits=10; client_max_window_bits=10";
    char resp[DX_PMD_RESPONSE_MAX];
    dx_pmd_params p;
    size_t need = sizeof longest;   /* with its NUL */

    /* No header at all. */
    CHECK_EQ(negotiate(DE, 15, "", &p, resp, sizeof resp), 0);
    CHECK_EQ(negotiate(SH, 15, "", &p, resp, sizeof resp), 0);

    /* The longest response fits DX_PMD_RESPONSE_MAX; a smaller cap is
     * refused (0) without writing past it. */
    CHECK(need <= DX_PMD_RESPONSE_MAX);
    CHECK_EQ(negotiate(SH, 15, "Sec-WebSocket-Extensions: " PMD
                       "; server_max_window_bits=10; client_max_window_bits=10\r\n",
                       &p, resp, sizeof resp), 1);
    CHECK(strcmp(resp, PMD SNCT CNCT "; server_max_window_bits=10") == 0);
    CHECK_EQ(negotiate(DE, 10, "Sec-WebSocket-Extensions: " PMD SNCT CNCT
                       "; server_max_window_bits=12; client_max_window_bits\r\n",
                       &p, resp, sizeof resp), 1);
    CHECK(strcmp(resp, longest) == 0);
    {
        long wrong = 0;

        for (size_t cap = 0; cap < need; cap++) {
            char *g = unit_guard(resp, cap);

            wrong += negotiate(DE, 10, "Sec-WebSocket-Extensions: " PMD SNCT CNCT
                               "; server_max_window_bits=12; client_max_window_bits\r\n",
                               &p, g, cap) != 0;
            wrong += cap > 0 && g[0] != 0;
        }
        CHECK_EQ(wrong, 0);
        CHECK_EQ(negotiate(DE, 10, "Sec-WebSocket-Extensions: " PMD SNCT CNCT
                           "; server_max_window_bits=12; client_max_window_bits\r\n",
                           &p, unit_guard(resp, need), need), 1);
    }

    /* The parser never reads past a field value: each value flush against
     * a guard page, as the request's own buffer. */
    {
        static const char *const vals[] = {
            PMD, PMD ";", PMD "; a", PMD "; a=", PMD "; a=\"", PMD "; a=\"b\\",
            PMD "; a=\"b\"", PMD " ", PMD ",", "\"",
        };
        static const int want[] = { 1, -1, 0, -1, -1, -1, 0, 1, 1, -1 };
        dx_http_header h;
        dx_http_request r;
        dx_pmd_config cfg = { DE, 15, 8 };

        memset(&r, 0, sizeof r);
        r.headers = &h;
        r.num_headers = 1;
        h.name = "Sec-WebSocket-Extensions";
        h.name_len = strlen(h.name);
        for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
            h.value = unit_guard(vals[i], strlen(vals[i]));
            h.value_len = strlen(vals[i]);
            if (!CHECK(dx_pmd_negotiate(&r, &cfg, &p, resp, sizeof resp) == want[i]))
                fprintf(stderr, "    value \"%s\"\n", vals[i]);
        }
    }
}

/* ---- inflate/deflate helpers ------------------------------------------- */

/* Collects inflated bytes; stops with 1009 past limit. */
typedef struct sink {
    uint8_t *buf;
    size_t len, cap, limit, max_piece;
    int calls;
} sink;

static int collect(void *ud, const uint8_t *p, size_t len)
{
    sink *s = ud;

    s->calls++;
    if (len > s->max_piece)
        s->max_piece = len;
    if (len == 0 || s->len + len > s->limit) {
        s->len += len;
        return len == 0 ? 1011 : 1009;     /* a zero-length piece is a bug too */
    }
    if (s->len + len > s->cap) {
        size_t ncap = s->cap ? s->cap : 4096;

        while (ncap < s->len + len)
            ncap *= 2;
        s->buf = realloc(s->buf, ncap);
        if (!s->buf) {
            perror("realloc");
            exit(2);
        }
        s->cap = ncap;
    }
    memcpy(s->buf + s->len, p, len);
    s->len += len;
    return 0;
}

static void sink_clear(sink *s)
{
    s->len = 0;
    s->calls = 0;
    s->max_piece = 0;
    s->limit = (size_t)-1;
}

static void sink_free(sink *s)
{
    free(s->buf);
    memset(s, 0, sizeof *s);
}

static uint8_t *xmalloc(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);

    if (!p) {
        perror("malloc");
        exit(2);
    }
    return p;
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(unit_rand() >> 24);
}

/* Text-like bytes: words from a small vocabulary. */
static void fill_text(uint8_t *p, size_t n)
{
    static const char *const words[] = {
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "{\"type\":",
        "\"message\",", "\"user\":", "42}", "hello", "world", "\n", "duplex",
    };
    size_t i = 0;

    while (i < n) {
        const char *w = words[unit_rand() % (sizeof words / sizeof words[0])];

        for (size_t k = 0; w[k] && i < n; k++)
            p[i++] = (uint8_t)w[k];
        if (i < n)
            p[i++] = ' ';
    }
}

/* Compresses one message into a fresh buffer of exactly the bound. */
static uint8_t *compress_msg(z_stream *d, const uint8_t *in, size_t len, int reset,
                             size_t *out_len)
{
    size_t cap = dx_pmd_deflate_bound(d, len);
    uint8_t *out = xmalloc(cap);

    *out_len = dx_pmd_deflate(d, in, len, out, cap, reset);
    return out;
}

/* Inflates one whole message; the result code. */
static int inflate_msg(z_stream *z, const uint8_t *in, size_t len, sink *s)
{
    sink_clear(s);
    return dx_pmd_inflate(z, in, len, 1, collect, s);
}

/* ---- RFC 7692 section 7.2.3 examples ----------------------------------- */

static void test_rfc_examples(void)
{
    static const uint8_t hello[] = { 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00 };
    static const uint8_t hello2[] = { 0xf2, 0x00, 0x11, 0x00, 0x00 };   /* takes context */
    static const uint8_t stored[] = { 0x00, 0x05, 0x00, 0xfa, 0xff,
                                      'H', 'e', 'l', 'l', 'o', 0x00 };
    static const uint8_t bfinal[] = { 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00 };
    /* Two blocks in one message ("He" flushed, then "llo"). */
    static const uint8_t two[] = { 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff,
                                   0xca, 0xc9, 0xc9, 0x07, 0x00 };
    z_stream z;
    sink s = { 0 };
    uint8_t out[64];
    size_t n;

    CHECK_EQ(dx_pmd_inflate_init(&z, 15), 0);
    CHECK_EQ(inflate_msg(&z, hello, sizeof hello, &s), 0);
    CHECK_MEM(s.buf, "Hello", s.len);
    CHECK_EQ(inflate_msg(&z, hello2, sizeof hello2, &s), 0);
    CHECK_MEM(s.buf, "Hello", s.len);
    CHECK_EQ(inflate_msg(&z, stored, sizeof stored, &s), 0);
    CHECK_MEM(s.buf, "Hello", s.len);
    CHECK_EQ(inflate_msg(&z, bfinal, sizeof bfinal, &s), 0);
    CHECK_MEM(s.buf, "Hello", s.len);
    CHECK_EQ(inflate_msg(&z, hello, sizeof hello, &s), 0);      /* the stream goes on */
    CHECK_MEM(s.buf, "Hello", s.len);
    CHECK_EQ(inflate_msg(&z, two, sizeof two, &s), 0);
    CHECK_MEM(s.buf, "Hello", s.len);
    /* "Hello" in two frames. */
    sink_clear(&s);
    CHECK_EQ(dx_pmd_inflate(&z, hello, 3, 0, collect, &s), 0);
    CHECK_EQ(dx_pmd_inflate(&z, hello + 3, sizeof hello - 3, 1, collect, &s), 0);
    CHECK_MEM(s.buf, "Hello", s.len);
    inflateEnd(&z);

    /* Our deflate gives the RFC's bytes for "Hello", and the shorter
     * second message when the window is kept. */
    CHECK_EQ(dx_pmd_deflate_init(&z, 15, 8), 0);
    n = dx_pmd_deflate(&z, (const uint8_t *)"Hello", 5, out, sizeof out, 0);
    CHECK(n == sizeof hello && memcmp(out, hello, n) == 0);
    n = dx_pmd_deflate(&z, (const uint8_t *)"Hello", 5, out, sizeof out, 0);
    CHECK(n == sizeof hello2 && memcmp(out, hello2, n) == 0);
    n = dx_pmd_deflate(&z, (const uint8_t *)"Hello", 5, out, sizeof out, 1);
    CHECK(n == sizeof hello && memcmp(out, hello, n) == 0);
    deflateEnd(&z);
    sink_free(&s);
}

/* ---- round trips ------------------------------------------------------- */

static void round_trip(size_t size, int text, int bits, int mem, int takeover)
{
    z_stream d, z;
    sink s = { 0 };
    uint8_t *msg = xmalloc(size);
    size_t clen[3];
    long wrong = 0;

    if (text)
        fill_text(msg, size);
    else
        fill_random(msg, size);
    CHECK_EQ(dx_pmd_deflate_init(&d, bits, mem), 0);
    CHECK_EQ(dx_pmd_inflate_init(&z, bits), 0);
    for (int m = 0; m < 3; m++) {
        /* Messages 0 and 1 are the same; message 2 differs. */
        uint8_t *c;
        int rc;

        if (m == 2 && size > 0)
            msg[size / 2] ^= 0x55;
        c = compress_msg(&d, msg, size, !takeover, &clen[m]);
        wrong += clen[m] == 0;
        if (!takeover)
            inflateReset(&z);
        rc = inflate_msg(&z, c, clen[m], &s);
        wrong += rc != 0 || s.len != size || (size && memcmp(s.buf, msg, size) != 0);
        wrong += s.max_piece > 16384;
        free(c);
    }
    if (!CHECK(wrong == 0))
        fprintf(stderr, "    size %zu text %d bits %d mem %d takeover %d\n",
                size, text, bits, mem, takeover);
    /* With context takeover a repeated message costs less: for random
     * bytes (one long match) much less. Level 1 keeps short hash chains, so
     * text gains less. */
    if (takeover && size >= 100 && size + 262 <= ((size_t)1 << bits))
        if (!CHECK(clen[1] < (text ? clen[0] : clen[0] / 4)))
            fprintf(stderr, "    size %zu text %d: %zu then %zu\n", size, text, clen[0], clen[1]);
    if (!takeover)
        CHECK_EQ(clen[1], clen[0]);
    deflateEnd(&d);
    inflateEnd(&z);
    sink_free(&s);
    free(msg);
}

static void test_round_trips(void)
{
    static const size_t sizes[] = { 0, 1, 100, 1000, 4096, 65536, 1 << 20 };

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int text = 0; text < 2; text++)
            for (int takeover = 0; takeover < 2; takeover++)
                round_trip(sizes[i], text, 15, 8, takeover);
    /* Every window both ways, and the memLevels. */
    for (int bits = 9; bits <= 15; bits++)
        for (int takeover = 0; takeover < 2; takeover++) {
            round_trip(100000, 1, bits, 8, takeover);
            round_trip(3000, 0, bits, 8, takeover);
        }
    for (int mem = 1; mem <= 9; mem++)
        round_trip(100000, 1, 15, mem, 1);
}

/* A window of 8 offered by the client is inflated with 9: data made with a
 * 256-byte window (here: references at most 256 back, via zlib's 9 being
 * the smallest it makes) inflates; and windows 9..15 interoperate with any
 * larger inflate window. */
static void test_windows(void)
{
    size_t size = 50000;
    uint8_t *msg = xmalloc(size);
    sink s = { 0 };
    long wrong = 0;

    fill_text(msg, size);
    for (int sb = 9; sb <= 15; sb++)
        for (int ib = 8; ib <= 15; ib++) {
            z_stream d, z;
            size_t n;
            uint8_t *c;

            if (ib < sb && ib != 8)
                continue;
            if (ib == 8 && sb != 9)
                continue;
            CHECK_EQ(dx_pmd_deflate_init(&d, sb, 8), 0);
            CHECK_EQ(dx_pmd_inflate_init(&z, ib), 0);
            for (int m = 0; m < 2; m++) {
                c = compress_msg(&d, msg, size, 0, &n);
                wrong += n == 0 || inflate_msg(&z, c, n, &s) != 0 || s.len != size ||
                         memcmp(s.buf, msg, size) != 0;
                free(c);
            }
            deflateEnd(&d);
            inflateEnd(&z);
        }
    CHECK_EQ(wrong, 0);

    /* A larger window than the inflater's fails cleanly (1007), not silently. */
    {
        z_stream d, z;
        size_t n;
        uint8_t *c, *far = xmalloc(20000);

        fill_random(far, 10000);
        memcpy(far + 10000, far, 10000);          /* references 10000 back */
        CHECK_EQ(dx_pmd_deflate_init(&d, 15, 8), 0);
        CHECK_EQ(dx_pmd_inflate_init(&z, 9), 0);
        c = compress_msg(&d, far, 20000, 0, &n);
        CHECK(n > 0 && n < 15000);
        CHECK_EQ(inflate_msg(&z, c, n, &s), 1007);
        free(c);
        free(far);
        deflateEnd(&d);
        inflateEnd(&z);
    }
    sink_free(&s);
    free(msg);
}

/* ---- split input ------------------------------------------------------- */

static void test_split(void)
{
    size_t size = 3000, n;
    uint8_t *msg = xmalloc(size), *c;
    z_stream d, z;
    sink s = { 0 };
    long wrong = 0;

    fill_text(msg, size);
    fill_random(msg + 1000, 500);               /* some stored or literal-heavy part */
    CHECK_EQ(dx_pmd_deflate_init(&d, 15, 8), 0);
    c = compress_msg(&d, msg, size, 1, &n);
    CHECK(n > 0);
    CHECK_EQ(dx_pmd_inflate_init(&z, 15), 0);

    /* Two pieces, split at every byte, each flush against a guard page;
     * the stream is kept, so each message also tests the one before. */
    for (size_t k = 0; k <= n; k++) {
        sink_clear(&s);
        wrong += dx_pmd_inflate(&z, unit_guard(c, k), k, 0, collect, &s) != 0;
        wrong += dx_pmd_inflate(&z, unit_guard(c + k, n - k), n - k, 1, collect, &s) != 0;
        wrong += s.len != size || memcmp(s.buf, msg, size) != 0;
    }
    CHECK_EQ(wrong, 0);

    /* One byte at a time, then an empty final piece. */
    sink_clear(&s);
    for (size_t k = 0; k < n; k++)
        wrong += dx_pmd_inflate(&z, unit_guard(c + k, 1), 1, 0, collect, &s) != 0;
    wrong += dx_pmd_inflate(&z, NULL, 0, 1, collect, &s) != 0;
    CHECK_EQ(wrong, 0);
    CHECK(s.len == size && memcmp(s.buf, msg, size) == 0);

    /* Empty pieces anywhere change nothing. */
    sink_clear(&s);
    CHECK_EQ(dx_pmd_inflate(&z, NULL, 0, 0, collect, &s), 0);
    CHECK_EQ(dx_pmd_inflate(&z, c, n / 2, 0, collect, &s), 0);
    CHECK_EQ(dx_pmd_inflate(&z, NULL, 0, 0, collect, &s), 0);
    CHECK_EQ(dx_pmd_inflate(&z, c + n / 2, n - n / 2, 1, collect, &s), 0);
    CHECK(s.len == size && memcmp(s.buf, msg, size) == 0);

    /* With context takeover too. */
    free(c);
    for (int m = 0; m < 3; m++) {
        c = compress_msg(&d, msg, size, 0, &n);
        sink_clear(&s);
        for (size_t k = 0; k < n; k += 7)
            wrong += dx_pmd_inflate(&z, c + k, n - k < 7 ? n - k : 7, 0, collect, &s) != 0;
        wrong += dx_pmd_inflate(&z, NULL, 0, 1, collect, &s) != 0;
        wrong += s.len != size || memcmp(s.buf, msg, size) != 0;
        free(c);
    }
    CHECK_EQ(wrong, 0);
    deflateEnd(&d);
    inflateEnd(&z);
    sink_free(&s);
    free(msg);
}

/* ---- empty messages ---------------------------------------------------- */

static void test_empty(void)
{
    z_stream d, z;
    sink s = { 0 };
    uint8_t out[64];
    size_t n;

    CHECK_EQ(dx_pmd_deflate_init(&d, 15, 8), 0);
    CHECK_EQ(dx_pmd_inflate_init(&z, 15), 0);
    for (int m = 0; m < 6; m++) {
        int reset = m >= 4;
        const char *text = m % 2 ? "Hello" : "";
        size_t len = strlen(text);

        memset(out, 0xEE, sizeof out);
        n = dx_pmd_deflate(&d, (const uint8_t *)text, len, out, sizeof out, reset);
        CHECK(n > 0);
        if (len == 0)
            CHECK(n == 1 && out[0] == 0x00);
        CHECK_EQ(inflate_msg(&z, out, n, &s), 0);
        CHECK(s.len == len && (len == 0 || memcmp(s.buf, text, len) == 0));
        CHECK(s.len > 0 || s.calls == 0);       /* the sink never sees 0 bytes */
    }
    /* A compressed message with no payload bytes at all inflates to
     * nothing and leaves the stream as it was, in a fresh stream too. */
    CHECK_EQ(dx_pmd_inflate(&z, NULL, 0, 0, collect, &s), 0);
    CHECK_EQ(inflate_msg(&z, NULL, 0, &s), 0);
    CHECK_EQ(s.len, 0);
    n = dx_pmd_deflate(&d, (const uint8_t *)"Hello", 5, out, sizeof out, 0);
    CHECK_EQ(inflate_msg(&z, out, n, &s), 0);
    CHECK_MEM(s.buf, "Hello", s.len);
    inflateReset(&z);
    CHECK_EQ(inflate_msg(&z, NULL, 0, &s), 0);
    CHECK_EQ(s.calls, 0);
    n = dx_pmd_deflate(&d, (const uint8_t *)"Hello", 5, out, sizeof out, 1);
    CHECK_EQ(inflate_msg(&z, out, n, &s), 0);
    CHECK_MEM(s.buf, "Hello", s.len);
    deflateEnd(&d);
    inflateEnd(&z);
    sink_free(&s);
}

/* ---- BFINAL ------------------------------------------------------------ */

/* Raw deflate of in[0..len) ending with Z_FINISH (BFINAL set), with an
 * optional preset dictionary; the length written to out. */
static size_t finish_msg(const uint8_t *in, size_t len, const uint8_t *dict, size_t dlen,
                         uint8_t *out, size_t cap)
{
    z_stream d;
    size_t n;

    memset(&d, 0, sizeof d);
    if (deflateInit2(&d, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    if (dlen)
        deflateSetDictionary(&d, dict, (uInt)dlen);
    d.next_in = (Bytef *)(uintptr_t)in;
    d.avail_in = (uInt)len;
    d.next_out = out;
    d.avail_out = (uInt)cap;
    n = deflate(&d, Z_FINISH) == Z_STREAM_END ? cap - d.avail_out : 0;
    deflateEnd(&d);
    return n;
}

static void test_bfinal(void)
{
    size_t size = 5000, n, m;
    uint8_t *msg = xmalloc(size), *c = xmalloc(size * 2), *c2 = xmalloc(size * 2);
    z_stream d, z;
    sink s = { 0 };
    long wrong = 0;

    fill_text(msg, size);
    n = finish_msg(msg, size, NULL, 0, c, size * 2);
    CHECK(n > 0);
    CHECK_EQ(dx_pmd_inflate_init(&z, 15), 0);
    CHECK_EQ(dx_pmd_deflate_init(&d, 15, 8), 0);

    /* Whole, then the stream goes on with ordinary messages. */
    CHECK_EQ(inflate_msg(&z, c, n, &s), 0);
    CHECK(s.len == size && memcmp(s.buf, msg, size) == 0);
    free(c2);
    c2 = compress_msg(&d, msg, size, 1, &m);
    CHECK_EQ(inflate_msg(&z, c2, m, &s), 0);
    CHECK(s.len == size && memcmp(s.buf, msg, size) == 0);

    /* Split at every byte, and bytes after the end of the stream (in the
     * same piece or in later pieces of the message) are ignored. */
    memcpy(c + n, "\xff\xff\xff\x01\x02", 5);
    for (size_t k = 0; k <= n + 5; k++) {
        sink_clear(&s);
        wrong += dx_pmd_inflate(&z, c, k, 0, collect, &s) != 0;
        wrong += dx_pmd_inflate(&z, c + k, n + 5 - k, 0, collect, &s) != 0;
        wrong += dx_pmd_inflate(&z, (const uint8_t *)"\xff\xfe", 2, 1, collect, &s) != 0;
        wrong += s.len != size || memcmp(s.buf, msg, size) != 0;
        sink_clear(&s);
        wrong += inflate_msg(&z, c2, m, &s) != 0;
        wrong += s.len != size || memcmp(s.buf, msg, size) != 0;
    }
    CHECK_EQ(wrong, 0);

    /* The window survives the end of the stream: a message that refers to
     * the one before (as a sender with context takeover may) still inflates. */
    CHECK_EQ(inflate_msg(&z, c, n, &s), 0);
    n = finish_msg(msg, size, msg, size, c, size * 2);
    CHECK(n > 0 && n < 100);                    /* it is all references */
    CHECK_EQ(inflate_msg(&z, c, n, &s), 0);
    CHECK(s.len == size && memcmp(s.buf, msg, size) == 0);
    deflateEnd(&d);
    inflateEnd(&z);
    sink_free(&s);
    free(c);
    free(c2);
    free(msg);
}

/* ---- bad data ---------------------------------------------------------- */

static void test_corrupt(void)
{
    static const uint8_t bad_type[] = { 0xff, 0xff, 0xff };        /* BTYPE 11 */
    static const uint8_t bad_len[] = { 0x00, 0x05, 0x00, 0x05, 0x00, 'a' };  /* NLEN */
    size_t size = 2000, n, m;
    uint8_t *msg = xmalloc(size), *c, *junk = xmalloc(4096);
    z_stream d, z;
    sink s = { 0 };
    long wrong = 0, errors = 0;

    fill_text(msg, size);
    CHECK_EQ(dx_pmd_deflate_init(&d, 15, 8), 0);
    CHECK_EQ(dx_pmd_inflate_init(&z, 15), 0);
    c = compress_msg(&d, msg, size, 1, &n);

    CHECK_EQ(inflate_msg(&z, bad_type, sizeof bad_type, &s), 1007);
    CHECK_EQ(inflate_msg(&z, c, n, &s), 0);                 /* z is usable again */
    CHECK(s.len == size && memcmp(s.buf, msg, size) == 0);
    CHECK_EQ(inflate_msg(&z, bad_len, sizeof bad_len, &s), 1007);
    CHECK_EQ(inflate_msg(&z, c, n, &s), 0);
    CHECK(s.len == size && memcmp(s.buf, msg, size) == 0);
    sink_clear(&s);
    CHECK_EQ(dx_pmd_inflate(&z, bad_type, sizeof bad_type, 0, collect, &s), 1007);

    /* A truncated message does not end on a block boundary: 1007. */
    inflateReset(&z);
    CHECK_EQ(inflate_msg(&z, c, n / 2, &s), 1007);
    CHECK_EQ(inflate_msg(&z, c, n, &s), 0);

    /* Random junk, and the message with bytes flipped: never a crash, only
     * 0 or 1007; after 1007 z works again. */
    for (int i = 0; i < 2000; i++) {
        size_t len = (size_t)(unit_rand() % 300);
        int rc;

        inflateReset(&z);
        if (i % 2) {
            fill_random(junk, len);
        } else {
            len = n;
            memcpy(junk, c, n);
            junk[unit_rand() % n] ^= (uint8_t)(1u << (unit_rand() % 8));
        }
        rc = inflate_msg(&z, unit_guard(junk, len), len, &s);
        wrong += rc != 0 && rc != 1007;
        errors += rc == 1007;
        if (rc == 1007) {
            wrong += inflate_msg(&z, c, n, &s) != 0;
            wrong += s.len != size || memcmp(s.buf, msg, size) != 0;
        }
    }
    CHECK_EQ(wrong, 0);
    CHECK(errors > 1000);

    /* A message cut short and followed by the next one: not a silent
     * success with the wrong text. */
    inflateReset(&z);
    free(c);
    c = compress_msg(&d, msg, size, 0, &n);
    {
        uint8_t *c2 = compress_msg(&d, msg, size, 0, &m);
        int rc1 = inflate_msg(&z, c, n - 1, &s);
        int rc2 = rc1 ? rc1 : inflate_msg(&z, c2, m, &s);

        CHECK(rc1 == 1007 || rc2 == 1007 || s.len != size || memcmp(s.buf, msg, size) != 0);
        free(c2);
    }
    deflateEnd(&d);
    inflateEnd(&z);
    sink_free(&s);
    free(c);
    free(junk);
    free(msg);
}

/* ---- decompression bomb ------------------------------------------------ */

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_bomb(void)
{
    const size_t total = (size_t)100 << 20, limit = (size_t)1 << 20;
    size_t cap = 1 << 20, n;
    uint8_t *zeros = calloc(1, 1 << 20), *c = xmalloc(cap);
    z_stream d, z;
    sink s = { 0 };
    double t;
    int rc;

    /* 100 MiB of zeros as one raw deflate message (sync flush, tail cut). */
    memset(&d, 0, sizeof d);
    CHECK_EQ(deflateInit2(&d, 9, Z_DEFLATED, -15, 9, Z_RLE), Z_OK);
    d.next_out = c;
    d.avail_out = (uInt)cap;
    for (size_t done = 0; done < total; done += 1 << 20) {
        d.next_in = zeros;
        d.avail_in = 1 << 20;
        deflate(&d, done + (1 << 20) < total ? Z_NO_FLUSH : Z_SYNC_FLUSH);
    }
    n = cap - d.avail_out;
    deflateEnd(&d);
    CHECK(n > 4 && n < 200000 && memcmp(c + n - 4, "\x00\x00\xff\xff", 4) == 0);
    n -= 4;

    CHECK_EQ(dx_pmd_inflate_init(&z, 15), 0);
    sink_clear(&s);
    s.limit = limit;
    t = now();
    rc = dx_pmd_inflate(&z, c, n, 1, collect, &s);
    t = now() - t;
    CHECK_EQ(rc, 1009);
    CHECK(s.len > limit && s.len <= limit + 16384);     /* stopped at the first piece over */
    if (!CHECK(t < 0.5))
        fprintf(stderr, "    bomb of %zu bytes stopped after %zu out in %.4f s\n",
                n, s.len, t);

    /* The same in small pieces: the code comes back from the piece where
     * it happened. */
    inflateReset(&z);
    sink_clear(&s);
    s.limit = limit;
    rc = 0;
    for (size_t k = 0; k < n && rc == 0; k += 1000)
        rc = dx_pmd_inflate(&z, c + k, n - k < 1000 ? n - k : 1000, 0, collect, &s);
    CHECK_EQ(rc, 1009);
    CHECK(s.len <= limit + 16384);

    /* Without the limit it inflates in full, 16 KiB at a time at most. */
    inflateReset(&z);
    sink_clear(&s);
    s.limit = total;
    CHECK_EQ(dx_pmd_inflate(&z, c, n, 1, collect, &s), 0);
    CHECK_EQ(s.len, total);
    CHECK(s.max_piece <= 16384);
    CHECK(s.calls >= (int)(total / 16384));
    inflateEnd(&z);
    sink_free(&s);
    free(zeros);
    free(c);
}

/* ---- deflate bound ----------------------------------------------------- */

static void test_bound(void)
{
    static const size_t sizes[] = {
        0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 100, 127, 128, 129, 255, 256, 1000, 4095, 4096,
        16383, 16384, 16385, 32768, 65535, 65536, 65537, 100000, 1 << 20,
    };
    const size_t big = 1 << 20;
    uint8_t *in = xmalloc(big + 1);
    sink s = { 0 };
    long wrong = 0;

    fill_random(in, big + 1);
    for (int bits = 9; bits <= 15; bits++)
        for (int mem = 1; mem <= 9; mem++) {
            z_stream d, z;

            CHECK_EQ(dx_pmd_deflate_init(&d, bits, mem), 0);
            CHECK_EQ(dx_pmd_inflate_init(&z, bits), 0);
            for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
                size_t len = sizes[i];

                /* Big inputs with the tight default bound (15, 8), the
                 * corners and one middle case; small ones everywhere. */
                int all = (bits == 15 && mem == 8) || (bits == 12 && mem == 5) ||
                          ((bits == 9 || bits == 15) && (mem == 1 || mem == 9));

                if (len > 20000 && !all)
                    continue;
                /* Both a fresh window and one holding the previous message. */
                for (int reset = 0; reset < 2; reset++) {
                    size_t n, b = dx_pmd_deflate_bound(&d, len);
                    uint8_t *c;

                    c = compress_msg(&d, in + (reset ? 0 : 1), len, reset, &n);
                    if (n == 0 || n > b) {
                        wrong++;
                        fprintf(stderr, "    bound: bits %d mem %d len %zu reset %d: "
                                "%zu of %zu\n", bits, mem, len, reset, n, b);
                    }
                    if (n > 0 && len <= 100000) {
                        int bad = inflate_msg(&z, c, n, &s) != 0 || s.len != len ||
                                 (len && memcmp(s.buf, in + (reset ? 0 : 1), len) != 0);

                        if (bad)
                            fprintf(stderr, "    inflate: bits %d mem %d len %zu reset %d\n",
                                    bits, mem, len, reset);
                        wrong += bad;
                    }
                    free(c);
                    if (n == 0)     /* the streams may be out of step now */
                        break;
                }
            }
            deflateEnd(&d);
            inflateEnd(&z);
        }
    CHECK_EQ(wrong, 0);
    sink_free(&s);
    free(in);
}

/* Too little room: 0, nothing written past cap, and the stream works
 * again after a reset. */
static void test_deflate_small_cap(void)
{
    size_t size = 2000, n, need;
    uint8_t *msg = xmalloc(size), *full, *g;
    z_stream d, z;
    sink s = { 0 };
    long wrong = 0;

    fill_text(msg, size);
    CHECK_EQ(dx_pmd_deflate_init(&d, 15, 8), 0);
    CHECK_EQ(dx_pmd_inflate_init(&z, 15), 0);
    full = compress_msg(&d, msg, size, 1, &need);
    CHECK(need > 0);
    /* It writes need + 4 bytes (the tail is cut after) and needs one more
     * to see that zlib is done. */
    for (size_t cap = 0; cap < need + 5; cap++) {
        g = unit_guard(full, cap);           /* cap writable bytes, then a wall */
        wrong += dx_pmd_deflate(&d, msg, size, g, cap, 1) != 0;
    }
    g = unit_guard(full, need + 5);
    n = dx_pmd_deflate(&d, msg, size, g, need + 5, 1);
    wrong += n != need || memcmp(g, full, n) != 0;
    wrong += inflate_msg(&z, g, n, &s) != 0 || s.len != size || memcmp(s.buf, msg, size) != 0;
    CHECK_EQ(wrong, 0);

    /* With context takeover: a failed message (part of it taken into the
     * window, none of it sent) leaves a stream whose next message, without
     * reset, the peer can still inflate. */
    n = dx_pmd_deflate(&d, msg, size, full, 10, 0);
    CHECK_EQ(n, 0);
    free(full);
    full = compress_msg(&d, msg, size, 0, &n);
    CHECK(n > 0);
    CHECK_EQ(inflate_msg(&z, full, n, &s), 0);
    CHECK(s.len == size && memcmp(s.buf, msg, size) == 0);
    deflateEnd(&d);
    inflateEnd(&z);
    sink_free(&s);
    free(full);
    free(msg);
}

/* The sink's own code stops inflation at once, whatever the code. */
static int stop_at_first(void *ud, const uint8_t *p, size_t len)
{
    (void)p;
    (void)len;
    ++*(int *)ud;
    return 4321;
}

static void test_sink_stop(void)
{
    size_t size = 200000, n;
    uint8_t *msg = xmalloc(size), *c;
    z_stream d, z;
    int calls = 0;

    fill_text(msg, size);
    CHECK_EQ(dx_pmd_deflate_init(&d, 15, 8), 0);
    CHECK_EQ(dx_pmd_inflate_init(&z, 15), 0);
    c = compress_msg(&d, msg, size, 1, &n);
    CHECK_EQ(dx_pmd_inflate(&z, c, n, 1, stop_at_first, &calls), 4321);
    CHECK_EQ(calls, 1);
    deflateEnd(&d);
    inflateEnd(&z);
    free(c);
    free(msg);
}

int main(void)
{
    test_negotiate_table();
    test_negotiate_misc();
    test_rfc_examples();
    test_round_trips();
    test_windows();
    test_split();
    test_empty();
    test_bfinal();
    test_corrupt();
    test_bomb();
    test_bound();
    test_deflate_small_cap();
    test_sink_stop();
    return unit_report("test_pmd");
}
