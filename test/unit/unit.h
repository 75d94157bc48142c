/* Minimal unit-test support shared by test/unit/test_*.c.
 *
 * CHECK(cond) and the CHECK_EQ* forms count a pass or print the failing
 * file:line and count a failure; unit_report() prints the one summary line
 * ("test_x: N passed, M failed") and gives the exit status.
 * unit_guard() places bytes flush against a PROT_NONE page, so a parser
 * that reads one byte too far faults at once. */
#ifndef DX_UNIT_H
#define DX_UNIT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define UNIT_UNUSED __attribute__((unused))

static int unit_passed, unit_failed;

/* Counts one check; prints where it failed. Returns ok. */
static UNIT_UNUSED int unit_check(int ok, const char *file, int line, const char *what)
{
    if (ok) {
        unit_passed++;
    } else {
        unit_failed++;
        if (unit_failed <= 50)
            fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    }
    return ok;
}

#define CHECK(cond) unit_check(!!(cond), __FILE__, __LINE__, #cond)

#define CHECK_EQ(a, b) do { \
        long long a_ = (long long)(a), b_ = (long long)(b); \
        if (!unit_check(a_ == b_, __FILE__, __LINE__, #a " == " #b) && unit_failed <= 50) \
            fprintf(stderr, "    %lld != %lld\n", a_, b_); \
    } while (0)

/* p[0..n) holds exactly the NUL-terminated string s. */
#define CHECK_MEM(p, s, n) \
    unit_check((size_t)(n) == strlen(s) && memcmp((p), (s), (n)) == 0, __FILE__, __LINE__, \
               #p "[0.." #n ") == " #s)

/* Prints the summary line for name; returns the exit status. */
static UNIT_UNUSED int unit_report(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, unit_passed, unit_failed);
    return unit_failed ? 1 : 0;
}

/* Copies data[0..len) so that it ends exactly where a no-access page
 * begins, and returns the copy (valid until the next call). len must be at
 * most UNIT_GUARD_MAX. */
#define UNIT_GUARD_MAX (64 * 1024)

static UNIT_UNUSED void *unit_guard(const void *data, size_t len)
{
    static uint8_t *base;
    static size_t area;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    if (!base) {
        area = (UNIT_GUARD_MAX + page - 1) / page * page;
        base = mmap(NULL, area + page, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED || mprotect(base + area, page, PROT_NONE) != 0) {
            perror("unit_guard");
            exit(2);
        }
    }
    if (len > UNIT_GUARD_MAX) {
        fprintf(stderr, "unit_guard: %zu bytes is too many\n", len);
        exit(2);
    }
    if (len)
        memcpy(base + area - len, data, len);
    return base + area - len;
}

/* A small deterministic PRNG (xorshift64) for randomized cases. */
static UNIT_UNUSED uint64_t unit_rand(void)
{
    static uint64_t s = 0x9E3779B97F4A7C15ull;

    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

#endif
