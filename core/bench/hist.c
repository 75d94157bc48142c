/* Log-linear latency histogram: see hist.h. */
#include <stdlib.h>
#include "bench/hist.h"

#define LINEAR 128                 /* exact buckets for 0..127 */
#define SUB 64                     /* buckets per power of two above */
#define NBUCKETS (LINEAR + (63 - 7 + 1) * SUB)

struct dx_hist {
    uint64_t count;
    double sum;
    uint64_t b[NBUCKETS];
};

dx_hist *dx_hist_new(void) { return calloc(1, sizeof(dx_hist)); }
void dx_hist_free(dx_hist *h) { free(h); }

static unsigned bucket(uint64_t v)
{
    if (v < LINEAR)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);          /* >= 7 */
    unsigned m = (unsigned)(v >> (e - 6)) & (SUB - 1);
    return LINEAR + (e - 7) * SUB + m;
}

/* The middle of bucket i, in ns. */
static double bucket_mid(unsigned i)
{
    if (i < LINEAR)
        return i;
    unsigned e = (i - LINEAR) / SUB + 7, m = (i - LINEAR) % SUB;
    double lo = (double)((uint64_t)(SUB + m) << (e - 6));
    double width = (double)(1ull << (e - 6));
    return lo + width / 2;
}

void dx_hist_add(dx_hist *h, uint64_t ns)
{
    h->b[bucket(ns)]++;
    h->count++;
    h->sum += (double)ns;
}

void dx_hist_reset(dx_hist *h)
{
    for (unsigned i = 0; i < NBUCKETS; i++)
        h->b[i] = 0;
    h->count = 0;
    h->sum = 0;
}

uint64_t dx_hist_count(const dx_hist *h) { return h->count; }

double dx_hist_mean(const dx_hist *h) { return h->count ? h->sum / (double)h->count : 0; }

double dx_hist_quantile(const dx_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    double want = q * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank)
            return bucket_mid(i);
    }
    return 0;
}
