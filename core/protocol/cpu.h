/* What the CPU offers beyond the baseline the core is compiled for, asked
 * once at load: the long-payload loops (unmasking, the UTF-8 ASCII skip)
 * take their AVX2 form where it is there, the handshake's SHA-1 its SHA
 * extensions form. */
#ifndef DX_CPU_H
#define DX_CPU_H

#if defined(__GNUC__) && defined(__x86_64__)
#define DX_HAVE_AVX2_BUILD 1      /* the AVX2 loops are compiled in */
#endif

/* 1 when the AVX2 loops are to be used: the CPU has AVX2 and no test has
 * turned them off. A variable, not a call: the loops' callers test it
 * without becoming non-leaf functions on the short-message path. */
extern int dx_cpu_avx2;

/* For tests, which check both forms: on = 0 sets dx_cpu_avx2 to 0, on = 1
 * gives it back to the CPU. Returns dx_cpu_avx2 after. */
int dx_cpu_use_avx2(int on);

/* 1 when SHA-1 takes its SHA extensions form (sha1.c): the CPU has them
 * (with SSE4.1) and no test has turned them off. */
extern int dx_cpu_sha;

/* As dx_cpu_use_avx2, for dx_cpu_sha. */
int dx_cpu_use_sha(int on);

#endif
