/*
 * blas.c - a check of the OpenBLAS kernel choice (tp_blas_check), and the LAPACK symmetric
 * eigensolver from OpenBLAS (tp_blas_sym_eig: the SDK's host->sym_eig and Lanczos use it).
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

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* LAPACK's symmetric eigensolver (divide and conquer), from OpenBLAS. Fortran calling
 * convention; the two trailing hidden string lengths are passed, as gfortran expects. */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                    double *w, double *work, const int *lwork, int *iwork, const int *liwork,
                    int *info, size_t jobz_len, size_t uplo_len);

int tp_blas_sym_eig(uint32_t n, double *a, double *w)
{
    if (!a || !w || n == 0 || n > 46340) /* n * n must fit in an int for LAPACK */
        return TP_EINVAL;
    const size_t nn = (size_t)n * n;
    for (size_t i = 0; i < nn; i++)
        if (!isfinite(a[i]))
            return TP_ERANGE;

    /* A symmetric row-major matrix is the same in column-major; row-major's lower triangle is
     * column-major's upper ('U'). Ask for the workspace sizes first. */
    const int ni = (int)n;
    int lwork = -1, liwork = -1, info = 0, iwq = 0;
    double wq = 0.0;
    dsyevd_("V", "U", &ni, a, &ni, w, &wq, &lwork, &iwq, &liwork, &info, 1, 1);
    if (info != 0)
        return TP_ERANGE;
    lwork = (int)wq;
    liwork = iwq;
    double *work = malloc((size_t)lwork * sizeof *work);
    int *iwork = malloc((size_t)liwork * sizeof *iwork);
    if (!work || !iwork) {
        free(work);
        free(iwork);
        return TP_ENOMEM;
    }
    dsyevd_("V", "U", &ni, a, &ni, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    free(work);
    free(iwork);
    if (info != 0)
        return TP_ERANGE;
    /* LAPACK leaves eigenvector k in column k of the column-major matrix, i.e. in row k of
     * the row-major view; transpose so that it is column k there too. */
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t k = i + 1; k < n; k++) {
            double t = a[(size_t)i * n + k];
            a[(size_t)i * n + k] = a[(size_t)k * n + i];
            a[(size_t)k * n + i] = t;
        }
    return TP_OK;
}
