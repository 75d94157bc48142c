/* CPU features, asked once: see cpu.h. */
#include "cpu.h"

int dx_cpu_avx2, dx_cpu_sha;
static int cpu_has_avx2, cpu_has_sha;

#if defined(DX_HAVE_AVX2_BUILD)
/* Before main, and when the Lua module is loaded. */
__attribute__((constructor))
static void detect(void)
{
    __builtin_cpu_init();
    cpu_has_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
    dx_cpu_avx2 = cpu_has_avx2;
    cpu_has_sha = __builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1") ? 1 : 0;
    dx_cpu_sha = cpu_has_sha;
}
#endif

int dx_cpu_use_avx2(int on)
{
    dx_cpu_avx2 = on && cpu_has_avx2;
    return dx_cpu_avx2;
}

int dx_cpu_use_sha(int on)
{
    dx_cpu_sha = on && cpu_has_sha;
    return dx_cpu_sha;
}
