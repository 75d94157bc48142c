/* CPU features, asked once: see cpu.h. */
#include "cpu.h"

static int wanted = 1;

#if defined(DX_HAVE_AVX2_BUILD)
static int cpu_has_avx2(void)
{
    static int known = -1;
    if (known < 0)
        known = __builtin_cpu_supports("avx2") ? 1 : 0;
    return known;
}
#else
static int cpu_has_avx2(void) { return 0; }
#endif

int dx_cpu_avx2(void)
{
    return wanted && cpu_has_avx2();
}

int dx_cpu_use_avx2(int on)
{
    wanted = on;
    return dx_cpu_avx2();
}
