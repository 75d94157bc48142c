/* Unit tests for core/protocol/sha1.c, in each form the CPU can run:
 * FIPS 180-4 / RFC 3174 test vectors, every length around the block and
 * padding boundaries split into updates at every point against
 * libcrypto, and RFC 6455's own handshake example through
 * dx_handshake_accept. */
#include <openssl/evp.h>
#include "unit.h"
#include "cpu.h"
#include "sha1.h"
#include "handshake.h"

static void hex(const uint8_t *md, char *out)
{
    for (int i = 0; i < DX_SHA1_LEN; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

static void sha1_hex(const void *data, size_t len, char out[41])
{
    dx_sha1 s;
    uint8_t md[DX_SHA1_LEN];
    dx_sha1_init(&s);
    dx_sha1_update(&s, data, len);
    dx_sha1_final(&s, md);
    hex(md, out);
}

static void test_vectors(void)
{
    char h[41];
    sha1_hex("abc", 3, h);
    CHECK_MEM(h, "a9993e364706816aba3e25717850c26c9cd0d89d", strlen(h));
    sha1_hex("", 0, h);
    CHECK_MEM(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709", strlen(h));
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha1_hex(two, strlen(two), h);
    CHECK_MEM(h, "84983e441c3bd26ebaae4aa1f95129e5e54670f1", strlen(h));
    /* A million 'a', fed in pieces of 1000. */
    dx_sha1 s;
    uint8_t md[DX_SHA1_LEN];
    char a[1000];
    memset(a, 'a', sizeof a);
    dx_sha1_init(&s);
    for (int i = 0; i < 1000; i++)
        dx_sha1_update(&s, a, sizeof a);
    dx_sha1_final(&s, md);
    hex(md, h);
    CHECK_MEM(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f", strlen(h));
}

/* Every length from 0 to 300 (every padding case), each split into two
 * updates at every point, against libcrypto. */
static void test_against_libcrypto(void)
{
    uint8_t data[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 131 + 7);
    int bad = 0;
    for (size_t len = 0; len <= sizeof data; len++) {
        uint8_t want[DX_SHA1_LEN];
        unsigned n = 0;
        EVP_Digest(data, len, want, &n, EVP_sha1(), NULL);
        for (size_t cut = 0; cut <= len; cut += len > 140 ? 7 : 1) {
            dx_sha1 s;
            uint8_t got[DX_SHA1_LEN];
            dx_sha1_init(&s);
            dx_sha1_update(&s, data, cut);
            dx_sha1_update(&s, data + cut, len - cut);
            dx_sha1_final(&s, got);
            bad += memcmp(got, want, sizeof got) != 0;
        }
    }
    CHECK_EQ(bad, 0);
}

static void test_accept(void)
{
    char out[DX_ACCEPT_LEN + 1] = { 0 };
    dx_handshake_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, out);   /* RFC 6455 section 1.3 */
    CHECK_MEM(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", strlen(out));
}

int main(void)
{
    /* Both forms: the SHA extensions one where the CPU has them, then
     * the plain one. */
    for (int sha = 1; sha >= 0; sha--) {
        if (dx_cpu_use_sha(sha) != sha)
            continue;                      /* no SHA extensions here */
        test_vectors();
        test_against_libcrypto();
        test_accept();
    }
    return unit_report("test_sha1");
}
