/* A latency histogram with log-linear buckets (HdrHistogram's idea): exact
 * below 128 ns, then 64 buckets per power of two (about 1.6% wide), up to
 * 2^63 ns. Fixed size, no allocation after dx_hist_new. */
#ifndef DX_HIST_H
#define DX_HIST_H

#include <stdint.h>

typedef struct dx_hist dx_hist;

/* A zeroed histogram, or NULL when out of memory. */
dx_hist *dx_hist_new(void);
void dx_hist_free(dx_hist *h);

/* Counts one value (nanoseconds). */
void dx_hist_add(dx_hist *h, uint64_t ns);

/* Forgets every value. */
void dx_hist_reset(dx_hist *h);

/* Values counted. */
uint64_t dx_hist_count(const dx_hist *h);

/* The value at quantile q (0..1) in nanoseconds: the middle of the bucket
 * holding the ceil(q * count)-th smallest value; 0 when empty. q = 1 gives
 * the largest bucket used. */
double dx_hist_quantile(const dx_hist *h, double q);

/* The mean of the values counted (exact), 0 when empty. */
double dx_hist_mean(const dx_hist *h);

#endif
