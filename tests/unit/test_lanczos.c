/*
 * test_lanczos.c - core/lanczos.c on operators with known spectra: a diagonal matrix, a dense
 * one Q diag(d) Q^T from a random orthogonal Q (spectrum with negative values, a cluster and a
 * gap), a rank-3 operator (the Krylov space is exhausted early), the warm start, top
 * *algebraic* rather than largest-magnitude, and the errors (bad options, a failing product,
 * a non-finite one). Each check prints the largest eigenvalue error it saw.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/lanczos.h"
#include "core/nn/nn.h"
#include "core/nn/rng.h"

/* A dense symmetric matrix in double, applied in double and rounded to float. */
typedef struct dense {
    size_t n;
    double *a; /* (n, n) */
    int calls;
    int fail_at; /* return TP_EIO at this call (1-based); 0 never */
    int nan_at;  /* write a NaN at this call; 0 never */
} dense;

static int dense_mv(void *ctx, const float *v, float *out, char *err, size_t errlen)
{
    dense *d = ctx;
    d->calls++;
    if (d->fail_at == d->calls) {
        snprintf(err, errlen, "matvec refused");
        return TP_EIO;
    }
    for (size_t i = 0; i < d->n; i++) {
        double acc = 0.0;
        for (size_t j = 0; j < d->n; j++)
            acc += d->a[i * d->n + j] * v[j];
        out[i] = (float)acc;
    }
    if (d->nan_at == d->calls)
        out[0] = NAN;
    return TP_OK;
}

/* a = Q diag(eig) Q^T with Q orthogonal from the eigenvectors of a random symmetric matrix. */
static dense make_dense(size_t n, const double *eig, uint64_t seed)
{
    dense d = {.n = n, .a = calloc(n * n, sizeof(double))};
    double *r = malloc(sizeof *r * n * n), *w = malloc(sizeof *w * n);
    tp_rng g;
    tp_rng_seed(&g, seed);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j <= i; j++)
            r[i * n + j] = r[j * n + i] = tp_rng_normal(&g);
    assert_int_equal(tp_blas_sym_eig((uint32_t)n, r, w), TP_OK); /* columns of r: Q */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double acc = 0.0;
            for (size_t k = 0; k < n; k++)
                acc += r[i * n + k] * eig[k] * r[j * n + k];
            d.a[i * n + j] = acc;
        }
    free(r);
    free(w);
    return d;
}

static int cmp_desc(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a < b) - (a > b);
}

static double max_rel_err(const double *got, const double *want, uint32_t k)
{
    double worst = 0.0;
    for (uint32_t i = 0; i < k; i++)
        worst = fmax(worst, fabs(got[i] - want[i]) / fabs(want[i]));
    return worst;
}

static void test_diagonal_top3(void **unused)
{
    (void)unused;
    const size_t n = 200;
    double *eig = malloc(sizeof *eig * n);
    for (size_t i = 0; i < n; i++)
        eig[i] = 1.0 + (double)i / n; /* 1 .. 2, top three 1.995, 1.99, 1.985 */
    eig[17] = 10.0;
    eig[90] = 7.0;
    eig[150] = 5.0;
    dense d = {.n = n, .a = calloc(n * n, sizeof(double))};
    for (size_t i = 0; i < n; i++)
        d.a[i * n + i] = eig[i];
    qsort(eig, n, sizeof *eig, cmp_desc);

    tp_lanczos_opts o = {.k = 3, .max_iter = 60, .tol = 1e-5, .seed = 1};
    double ev[3];
    float *vec = malloc(sizeof *vec * 3 * n);
    tp_lanczos_result res;
    char err[256];
    assert_int_equal(tp_lanczos_top(n, dense_mv, &d, &o, ev, vec, &res, err, sizeof err), TP_OK);
    double e = max_rel_err(ev, eig, 3);
    printf("# diagonal: top 3 %.6f %.6f %.6f in %u products, max rel err %.2e\n", ev[0], ev[1],
           ev[2], res.iters, e);
    assert_true(res.converged);
    assert_true(e < 1e-5);
    /* The top Ritz vector is e_17 up to sign. */
    assert_true(fabs(fabs(vec[17]) - 1.0) < 1e-4);
    free(vec);
    free(d.a);
    free(eig);
}

static void test_dense_algebraic_and_warm_start(void **unused)
{
    (void)unused;
    /* Largest magnitude is -50; top algebraic is 20, then a cluster 19.9 / 19.8, then a gap. */
    const size_t n = 120;
    double *eig = malloc(sizeof *eig * n);
    tp_rng g;
    tp_rng_seed(&g, 7);
    for (size_t i = 0; i < n; i++)
        eig[i] = -5.0 + 15.0 * tp_rng_uniform(&g);
    eig[3] = 20.0;
    eig[40] = 19.9;
    eig[41] = 19.8;
    eig[77] = -50.0;
    dense d = make_dense(n, eig, 3);
    qsort(eig, n, sizeof *eig, cmp_desc);

    tp_lanczos_opts o = {.k = 3, .max_iter = 100, .tol = 1e-6, .seed = 5};
    double ev[3];
    float *vec = malloc(sizeof *vec * 3 * n);
    tp_lanczos_result cold, warm;
    char err[256];
    assert_int_equal(tp_lanczos_top(n, dense_mv, &d, &o, ev, vec, &cold, err, sizeof err), TP_OK);
    double e = max_rel_err(ev, eig, 3);
    printf("# dense: top 3 %.6f %.6f %.6f in %u products (cold), max rel err %.2e\n", ev[0], ev[1],
           ev[2], cold.iters, e);
    assert_true(cold.converged);
    assert_true(e < 1e-5);

    /* Warm start from the top eigenvector: one eigenvalue converges in a few products. */
    tp_lanczos_opts o1 = {.k = 1, .max_iter = 100, .tol = 1e-6, .v0 = vec};
    double top;
    assert_int_equal(tp_lanczos_top(n, dense_mv, &d, &o1, &top, NULL, &warm, err, sizeof err),
                     TP_OK);
    printf("# dense: top %.6f in %u products (warm from the previous top vector)\n", top,
           warm.iters);
    assert_true(fabs(top - 20.0) < 2e-4);
    assert_true(warm.iters <= 3);
    free(vec);
    free(d.a);
    free(eig);
}

static void test_low_rank_exhausts(void **unused)
{
    (void)unused;
    /* Rank 3: the Krylov space has three directions; Lanczos stops there with exact values. */
    const size_t n = 50;
    double eig[50] = {0};
    eig[0] = 4.0;
    eig[1] = 2.0;
    eig[2] = -1.0;
    dense d = make_dense(n, eig, 11);
    tp_lanczos_opts o = {.k = 2, .max_iter = 40, .tol = 1e-12, .seed = 2};
    double ev[2];
    tp_lanczos_result res;
    char err[256];
    assert_int_equal(tp_lanczos_top(n, dense_mv, &d, &o, ev, NULL, &res, err, sizeof err), TP_OK);
    printf("# rank 3: %.7f %.7f after %u products\n", ev[0], ev[1], res.iters);
    assert_true(res.iters <= 5);
    assert_true(res.converged);
    assert_true(fabs(ev[0] - 4.0) < 1e-5 && fabs(ev[1] - 2.0) < 1e-5);
    free(d.a);
}

static void test_errors(void **unused)
{
    (void)unused;
    double eig[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    dense d = make_dense(10, eig, 1);
    double ev[4];
    char err[256];
    tp_lanczos_opts bad = {.k = 4, .max_iter = 3, .tol = 1e-6};
    assert_int_equal(tp_lanczos_top(10, dense_mv, &d, &bad, ev, NULL, NULL, err, sizeof err),
                     TP_EINVAL);
    assert_non_null(strstr(err, "max_iter"));

    float zero[10] = {0};
    tp_lanczos_opts z = {.k = 1, .max_iter = 5, .tol = 1e-6, .v0 = zero};
    assert_int_equal(tp_lanczos_top(10, dense_mv, &d, &z, ev, NULL, NULL, err, sizeof err),
                     TP_EINVAL);
    assert_non_null(strstr(err, "start vector"));

    tp_lanczos_opts o = {.k = 1, .max_iter = 8, .tol = 1e-9, .seed = 3};
    d.fail_at = 2;
    d.calls = 0;
    assert_int_equal(tp_lanczos_top(10, dense_mv, &d, &o, ev, NULL, NULL, err, sizeof err), TP_EIO);
    assert_string_equal(err, "matvec refused");

    d.fail_at = 0;
    d.nan_at = 3;
    d.calls = 0;
    assert_int_equal(tp_lanczos_top(10, dense_mv, &d, &o, ev, NULL, NULL, err, sizeof err),
                     TP_ENONFINITE);
    assert_non_null(strstr(err, "product 3"));
    free(d.a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diagonal_top3),
        cmocka_unit_test(test_dense_algebraic_and_warm_start),
        cmocka_unit_test(test_low_rank_exhausts),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
