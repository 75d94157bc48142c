/* Unit tests for core/protocol/origin.c. */
#include "unit.h"
#include "origin.h"

static dx_http_header hs[16];
static char head[1024];

/* dx_origin_allowed for a request with these header lines (each ending in
 * \r\n) against allowed; -1 when the head does not parse. */
static int allowed(const char *lines, const char *list)
{
    dx_http_request r;
    memset(&r, 0, sizeof r);
    r.headers = hs;
    r.num_headers = 16;
    snprintf(head, sizeof head, "GET / HTTP/1.1\r\n%s\r\n", lines);
    if (dx_http_parse_request(head, strlen(head), 0, &r) <= 0)
        return -1;
    return dx_origin_allowed(&r, list);
}

static void test_own_host(void)
{
    CHECK_EQ(allowed("Host: a.example:8080\r\n", ""), 1);               /* no Origin */
    CHECK_EQ(allowed("Host: a.example:8080\r\nOrigin: http://a.example:8080\r\n", ""), 1);
    CHECK_EQ(allowed("Host: A.Example:8080\r\nOrigin: HTTP://a.EXAMPLE:8080\r\n", ""), 1);
    CHECK_EQ(allowed("Host: a.example:8080\r\nOrigin: https://a.example:8080\r\n", ""), 1);
    CHECK_EQ(allowed("Host: a.example:8080\r\nOrigin: http://a.example:8081\r\n", ""), 0);
    CHECK_EQ(allowed("Host: a.example:8080\r\nOrigin: http://a.example\r\n", ""), 0);
    CHECK_EQ(allowed("Host: a.example:8080\r\nOrigin: http://b.example:8080\r\n", ""), 0);
    CHECK_EQ(allowed("Host: a.example:8080\r\nOrigin: http://a.example.evil:8080\r\n", ""), 0);
    /* Default ports, written or not, on either side. */
    CHECK_EQ(allowed("Host: a.example\r\nOrigin: http://a.example\r\n", ""), 1);
    CHECK_EQ(allowed("Host: a.example\r\nOrigin: https://a.example\r\n", ""), 1);
    CHECK_EQ(allowed("Host: a.example\r\nOrigin: https://a.example:443\r\n", ""), 1);
    CHECK_EQ(allowed("Host: a.example:80\r\nOrigin: http://a.example\r\n", ""), 1);
    CHECK_EQ(allowed("Host: a.example:443\r\nOrigin: https://a.example\r\n", ""), 1);
    CHECK_EQ(allowed("Host: a.example:443\r\nOrigin: http://a.example\r\n", ""), 0);
    CHECK_EQ(allowed("Host: a.example\r\nOrigin: http://a.example:8080\r\n", ""), 0);
    /* IPv6. */
    CHECK_EQ(allowed("Host: [::1]:8080\r\nOrigin: http://[::1]:8080\r\n", ""), 1);
    CHECK_EQ(allowed("Host: [::1]:8080\r\nOrigin: http://[::2]:8080\r\n", ""), 0);
    /* Not an origin: null, a path, an unknown scheme, two of them, no Host. */
    CHECK_EQ(allowed("Host: a.example\r\nOrigin: null\r\n", ""), 0);
    CHECK_EQ(allowed("Host: a.example\r\nOrigin: http://a.example/\r\n", ""), 0);
    CHECK_EQ(allowed("Host: a.example\r\nOrigin: file://a.example\r\n", ""), 0);
    CHECK_EQ(allowed("Host: a.example\r\nOrigin: http://a.example\r\nOrigin: http://b.example\r\n", ""), 0);
    CHECK_EQ(allowed("Origin: http://a.example\r\n", ""), 0);
    CHECK_EQ(allowed("Host: a.example\r\nOrigin: http://user@a.example\r\n", ""), 0);
    CHECK_EQ(allowed("Host: a.example:0\r\nOrigin: http://a.example:0\r\n", ""), 0);
    CHECK_EQ(allowed("Host: a.example\r\nOrigin: \r\n", ""), 0);
}

static void test_listed(void)
{
    const char *list = "https://app.example\nhttp://localhost:3000\nnull\n";
    CHECK_EQ(allowed("Host: api.example\r\nOrigin: https://app.example\r\n", list), 1);
    CHECK_EQ(allowed("Host: api.example\r\nOrigin: https://APP.example:443\r\n", list), 1);
    CHECK_EQ(allowed("Host: api.example\r\nOrigin: http://app.example\r\n", list), 0);
    CHECK_EQ(allowed("Host: api.example\r\nOrigin: https://app.example:8443\r\n", list), 0);
    CHECK_EQ(allowed("Host: api.example\r\nOrigin: http://localhost:3000\r\n", list), 1);
    CHECK_EQ(allowed("Host: api.example\r\nOrigin: http://localhost:3001\r\n", list), 0);
    CHECK_EQ(allowed("Host: api.example\r\nOrigin: null\r\n", list), 1);
    CHECK_EQ(allowed("Host: api.example\r\nOrigin: null\r\n", "https://app.example\n"), 0);
    CHECK_EQ(allowed("Host: api.example\r\nOrigin: https://evil.example\r\n", list), 0);
    /* the own host still goes with a list */
    CHECK_EQ(allowed("Host: api.example\r\nOrigin: https://api.example\r\n", list), 1);
    /* "*": anything, even what is not an origin */
    CHECK_EQ(allowed("Host: api.example\r\nOrigin: https://evil.example\r\n", "*"), 1);
    CHECK_EQ(allowed("Host: api.example\r\nOrigin: null\r\n", "*"), 1);
    CHECK_EQ(allowed("Host: api.example\r\nOrigin: http://x/\r\n", "*"), 1);
}

static void test_valid(void)
{
    static const char *const good[] = {
        "null", "http://a.example", "https://a.example:8443", "ws://localhost:3000", "WSS://A.EXAMPLE",
        "http://[::1]:8080", "http://127.0.0.1", NULL
    };
    static const char *const bad[] = {
        "", "*", "a.example", "http://", "http://a.example/", "http://a.example:", "http://a.example:0",
        "http://a.example:65536", "http://a.example:123456", "ftp://a.example", "http://a example",
        "http://a.example?x", "http://user@a.example", "http://[::1", "NULL", "http://[]", NULL
    };
    for (int i = 0; good[i]; i++)
        if (!CHECK(dx_origin_valid(unit_guard(good[i], strlen(good[i])), strlen(good[i]))))
            fprintf(stderr, "    %s\n", good[i]);
    for (int i = 0; bad[i]; i++)
        if (!CHECK(!dx_origin_valid(unit_guard(bad[i], strlen(bad[i])), strlen(bad[i]))))
            fprintf(stderr, "    %s\n", bad[i]);
}

int main(void)
{
    test_own_host();
    test_listed();
    test_valid();
    return unit_report("test_origin");
}
