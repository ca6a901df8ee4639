/*
 * test_sharpness.c - core/sharpness.c on a workload with a known Hessian: every example's loss
 * is 0.5 (w - c_i)^T A (w - c_i), so the full-batch Hessian is A whatever the examples, and a
 * diagonal preconditioner P^-1/2 = D makes the preconditioned sharpness the top eigenvalue of
 * D A D. Also: the warm start along a slowly changing operator, errors of the preconditioner
 * passed through, and the stability thresholds of BENCHMARK.md section 9.
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

#include "core/nn/nn.h"
#include "core/nn/rng.h"
#include "core/sharpness.h"

enum { N = 30 };

typedef struct quad_wl {
    tp_workload base;
    double a[N * N];
    float c[64][N];
    float scale; /* the Hessian is scale * A */
} quad_wl;

static int quad_loss(tp_workload *w, const float *params, const uint32_t *idx, const float *wts,
                     uint32_t n, const tp_loss_opts *opts, uint64_t seed, float *grad, double *loss,
                     float *per_example, char *err, size_t errlen)
{
    (void)wts;
    (void)opts;
    (void)seed;
    (void)per_example;
    (void)err;
    (void)errlen;
    quad_wl *q = (quad_wl *)w;
    double g[N] = {0}, l = 0.0;
    for (uint32_t e = 0; e < n; e++) {
        const float *c = q->c[idx[e]];
        for (int i = 0; i < N; i++) {
            double acc = 0.0;
            for (int j = 0; j < N; j++)
                acc += q->scale * q->a[i * N + j] * (params[j] - c[j]);
            g[i] += acc / n;
            l += 0.5 * (params[i] - c[i]) * acc / n;
        }
    }
    for (int i = 0; i < N; i++)
        grad[i] = (float)g[i];
    *loss = l;
    return TP_OK;
}

static const tp_workload_vtable quad_vt = {.loss_and_grad = quad_loss};

static void make_quad(quad_wl *q)
{
    memset(q, 0, sizeof *q);
    q->base.vt = &quad_vt;
    q->base.num_params = N;
    q->base.split_size[TP_SPLIT_TRAIN] = 64;
    q->scale = 1.0f;
    tp_rng g;
    tp_rng_seed(&g, 21);
    double r[N * N], d[N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++)
            r[i * N + j] = r[j * N + i] = tp_rng_normal(&g);
    assert_int_equal(tp_blas_sym_eig(N, r, d), TP_OK);
    for (int k = 0; k < N; k++)
        d[k] = k == N - 1 ? 50.0 : -2.0 + 30.0 * k / N; /* top 50, then 27 */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            for (int k = 0; k < N; k++)
                q->a[i * N + j] += r[i * N + k] * d[k] * r[j * N + k];
    tp_fill_normal(&q->c[0][0], 64 * N, 1.0f, &g);
}

typedef struct diag_pre {
    float d[N];
    int fail;
} diag_pre;

static int diag_apply(void *ctx, const float *v, float *out, char *err, size_t errlen)
{
    diag_pre *p = ctx;
    if (p->fail) {
        snprintf(err, errlen, "precondition: no update taken yet");
        return TP_ESTATE;
    }
    for (int i = 0; i < N; i++)
        out[i] = p->d[i] * v[i];
    return TP_OK;
}

static double top_of(const double *m)
{
    double a[N * N], w[N];
    memcpy(a, m, sizeof a);
    assert_int_equal(tp_blas_sym_eig(N, a, w), TP_OK);
    return w[N - 1];
}

static void test_measure(void **unused)
{
    (void)unused;
    static quad_wl q;
    make_quad(&q);
    diag_pre p = {.fail = 0};
    for (int i = 0; i < N; i++)
        p.d[i] = 0.2f + 0.05f * (float)i;
    double dad[N * N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            dad[i * N + j] = p.d[i] * q.a[i * N + j] * p.d[j];
    const double want_pre = top_of(dad);

    tp_sharpness *s;
    char err[256];
    tp_sharpness_opts o = {.examples = 40, .chunk = 16, .max_iter = 40, .tol = 1e-5, .raw = 1};
    assert_int_equal(tp_sharpness_init(&s, &q.base, &o, err, sizeof err), TP_OK);
    float w[N];
    for (int i = 0; i < N; i++)
        w[i] = 0.5f + 0.01f * (float)i;
    tp_sharpness_value v;
    assert_int_equal(tp_sharpness_measure(s, w, diag_apply, &p, &v, err, sizeof err), TP_OK);
    printf("# sharpness %.5f (exact 50), preconditioned %.5f (exact %.5f), %u products, "
           "%llu gradients, loss %.4f\n",
           v.sharpness, v.precond_sharpness, want_pre, v.iters, (unsigned long long)v.grads,
           v.loss);
    assert_true(v.converged);
    assert_true(fabs(v.sharpness - 50.0) / 50.0 < 1e-3);
    assert_true(fabs(v.precond_sharpness - want_pre) / want_pre < 1e-3);
    assert_true(v.loss > 0.0);
    assert_int_equal(v.grads, 2 * (uint64_t)v.iters + 1);

    /* The operator changes a little (H scaled by 1.01): the warm start needs few products. */
    const uint32_t cold = v.iters;
    q.scale = 1.01f;
    assert_int_equal(tp_sharpness_measure(s, w, diag_apply, &p, &v, err, sizeof err), TP_OK);
    printf("# warm: sharpness %.5f (exact 50.5) in %u products (cold: %u)\n", v.sharpness, v.iters,
           cold);
    assert_true(fabs(v.sharpness - 50.5) / 50.5 < 1e-3);
    assert_true(v.iters < cold);

    /* Without a preconditioner only plain sharpness is measured. */
    assert_int_equal(tp_sharpness_measure(s, w, NULL, NULL, &v, err, sizeof err), TP_OK);
    assert_true(isnan(v.precond_sharpness));
    assert_true(fabs(v.sharpness - 50.5) / 50.5 < 1e-3);

    /* The preconditioner's error comes back with its code and message. */
    p.fail = 1;
    assert_int_equal(tp_sharpness_measure(s, w, diag_apply, &p, &v, err, sizeof err), TP_ESTATE);
    assert_non_null(strstr(err, "no update taken"));
    tp_sharpness_free(s);
    tp_sharpness_free(NULL);
}

static void test_thresholds(void **unused)
{
    (void)unused;
    int pre = -1;
    assert_float_equal(tp_sharpness_threshold("sgd", 0.01, 0.0, 0.0, &pre), 200.0, 1e-9);
    assert_int_equal(pre, 0);
    assert_float_equal(tp_sharpness_threshold("momentum", 0.01, 0.9, 0.0, &pre), 380.0, 1e-9);
    assert_float_equal(tp_sharpness_threshold("nesterov", 0.01, 0.9, 0.0, &pre), 3.8 / 2.8 * 100,
                       1e-9);
    assert_float_equal(tp_sharpness_threshold("adamw", 1e-4, 0.9, 0.0, &pre), 38.0 / 1e-4, 1e-6);
    assert_int_equal(pre, 1);
    assert_float_equal(tp_sharpness_threshold("adamw", 1e-3, 0.9, 0.1, &pre),
                       1.9 * (2.0 - 1e-4) / (0.1 * 1e-3), 1e-6);
    assert_float_equal(tp_sharpness_threshold("rmsprop", 1e-3, 0.0, 0.0, &pre), 2000.0, 1e-9);
    assert_int_equal(pre, 1);
    assert_float_equal(tp_sharpness_threshold("sgd", 0.1, 0.0, 0.5, &pre), 19.5, 1e-9);
    assert_true(isnan(tp_sharpness_threshold("lamb", 1e-3, 0.9, 0.0, &pre)));
    assert_true(isnan(tp_sharpness_threshold("sgd", 0.0, 0.0, 0.0, &pre)));
}

static void test_summary(void **unused)
{
    (void)unused;
    /* Rising to the threshold (100) at index 3, then hovering; a NaN point is skipped. */
    const double v[] = {10, 50, 90, 96, 104, NAN, 99, 101, 120, 98};
    const double t[] = {100, 100, 100, 100, 100, 100, 100, 100, 100, 100};
    const uint64_t steps[] = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90};
    const double sec[] = {1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
    const uint32_t it[] = {20, 5, 5, 5, 6, 6, 6, 7, 7, 7};
    tp_sharpness_summary s;
    tp_sharpness_summarize(v, t, steps, sec, it, 10, &s);
    assert_int_equal(s.measurements, 9);
    assert_int_equal(s.first_reach, 3);
    assert_int_equal(s.reach_step, 30);
    assert_int_equal(s.after, 6);
    assert_float_equal(s.median_ratio, 1.00, 1e-12); /* 0.96 0.98 0.99 1.01 1.04 1.20 */
    assert_float_equal(s.min_ratio, 0.96, 1e-12);
    assert_float_equal(s.max_ratio, 1.20, 1e-12);
    assert_float_equal(s.median_seconds, 2.0, 0);
    assert_float_equal(s.median_iters, 6.0, 0);

    /* An early transient far above (a catapult) is not the reach. */
    const double spike[] = {300, 50, 97, 100};
    tp_sharpness_summarize(spike, t, steps, sec, it, 4, &s);
    assert_int_equal(s.first_reach, 2);
    assert_int_equal(s.after, 2);

    /* Never reaching 0.95x: no ratio statistics. */
    const double low[] = {10, 20};
    tp_sharpness_summarize(low, t, steps, sec, it, 2, &s);
    assert_int_equal(s.first_reach, -1);
    assert_int_equal(s.after, 0);
    assert_true(isnan(s.median_ratio));
}

static void test_bad_options(void **unused)
{
    (void)unused;
    static quad_wl q;
    make_quad(&q);
    tp_sharpness *s = (tp_sharpness *)&q;
    char err[256];
    tp_sharpness_opts o = {.tol = -1};
    assert_int_equal(tp_sharpness_init(&s, &q.base, &o, err, sizeof err), TP_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err, "tol"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_measure),
        cmocka_unit_test(test_thresholds),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
