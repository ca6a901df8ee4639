/*
 * blas.c - a check of the OpenBLAS kernel choice (tp_blas_check).
 *
 * OpenBLAS built with DYNAMIC_ARCH picks its kernels from CPUID when the library loads. Version
 * 0.3.21 does not know CPUs newer than it (Sapphire / Emerald Rapids under a hypervisor, say)
 * and falls back to "Prescott", its SSE3 kernels: sgemm several times slower than the AVX-512
 * ones. The choice is made once, in the library's constructor, from the environment variable
 * OPENBLAS_CORETYPE, so it can only be corrected by whoever starts the process; this file only
 * detects the mismatch and says what to set.
 *
 * Not here: setting the variable (the host does that for its workers, see runner.c), thread
 * counts.
 */
#include "core/nn/nn.h"

#include <stdio.h>
#include <string.h>

char *openblas_get_corename(void);

/* The strongest OpenBLAS core type this CPU can run, or NULL when we cannot tell. */
static const char *best_coretype(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
#endif
    return NULL;
}

static const char *current_core(void)
{
    const char *core = openblas_get_corename();
    return core ? core : "unknown";
}

const char *tp_blas_suggested_coretype(void)
{
    const char *core = current_core();
    const char *best = best_coretype();
    /* The fallback cores of x86-64 builds. A known modern core name is trusted. */
    int weak = best && (!strcmp(core, "Prescott") || !strcmp(core, "Core2") ||
                        !strcmp(core, "Nehalem") || !strcmp(core, "Sandybridge") ||
                        (!strcmp(core, "Haswell") && !strcmp(best, "SkylakeX")));
    return weak ? best : NULL;
}

int tp_blas_check(char *msg, size_t msglen)
{
    const char *core = current_core();
    const char *best = tp_blas_suggested_coretype();
    if (best) {
        snprintf(msg, msglen,
                 "OpenBLAS uses its %s kernels but this CPU supports %s ones; start the process "
                 "with OPENBLAS_CORETYPE=%s in its environment for several times faster sgemm",
                 core, best, best);
        return 1;
    }
    snprintf(msg, msglen, "OpenBLAS core %s", core);
    return 0;
}
