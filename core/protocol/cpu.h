/* What the CPU offers beyond the baseline the core is compiled for, asked
 * once: the long-payload loops (unmasking, the UTF-8 ASCII skip) take
 * their AVX2 form where it is there. */
#ifndef DX_CPU_H
#define DX_CPU_H

#if defined(__GNUC__) && defined(__x86_64__)
#define DX_HAVE_AVX2_BUILD 1      /* the AVX2 loops are compiled in */
#endif

/* 1 when the AVX2 loops are to be used: the CPU has AVX2 and no test has
 * turned them off. */
int dx_cpu_avx2(void);

/* For tests, which check both forms: on = 0 makes dx_cpu_avx2 answer 0,
 * on = 1 gives it back to the CPU. Returns dx_cpu_avx2() after. */
int dx_cpu_use_avx2(int on);

#endif
