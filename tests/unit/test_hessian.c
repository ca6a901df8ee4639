/*
 * test_hessian.c - core/hessian.c's central-difference Hessian-vector products against exact
 * Hessians of small problems, and the top eigenvalue Lanczos finds through them:
 *
 *   - a quadratic 0.5 w^T A w + b^T w (H = A, with negative eigenvalues),
 *   - logistic regression (H = X^T diag(p (1 - p)) X / N, in closed form),
 *   - a 6-8-3 tanh MLP with MSE loss, whose exact Hessian is computed in double precision
 *     (central differences of the double-precision backprop gradient with h = 1e-5: error
 *     ~1e-10, far below the float32 products under test).
 *
 * The products under test see only float32 gradients, as a workload gives them. Each check
 * prints its relative errors; the bounds are stated beside the asserts. Also: the fixed-batch
 * objective over a workload-like callback, a zero direction, and errors passed through.
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

#include "core/hessian.h"
#include "core/lanczos.h"
#include "core/nn/nn.h"
#include "core/nn/rng.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static double top_exact(size_t n, const double *hmat)
{
    double *a = malloc(sizeof *a * n * n), *w = malloc(sizeof *w * n);
    memcpy(a, hmat, sizeof *a * n * n);
    assert_int_equal(tp_blas_sym_eig((uint32_t)n, a, w), TP_OK);
    double top = w[n - 1];
    free(a);
    free(w);
    return top;
}

/* max over `trials` random unit u of ||hvp(u) - H u|| / ||H u||. */
static double hvp_error(tp_hessian *h, const float *w, const double *hmat, int trials)
{
    const size_t n = h->n;
    float *u = malloc(sizeof *u * n), *out = malloc(sizeof *out * n);
    tp_rng r;
    tp_rng_seed(&r, 99);
    double worst = 0.0;
    char err[256];
    for (int t = 0; t < trials; t++) {
        tp_fill_normal(u, n, 1.0f, &r);
        assert_int_equal(tp_hessian_vp(h, w, u, out, err, sizeof err), TP_OK);
        double num = 0.0, den = 0.0;
        for (size_t i = 0; i < n; i++) {
            double hu = 0.0;
            for (size_t j = 0; j < n; j++)
                hu += hmat[i * n + j] * u[j];
            num += (out[i] - hu) * (out[i] - hu);
            den += hu * hu;
        }
        worst = fmax(worst, sqrt(num / den));
    }
    free(u);
    free(out);
    return worst;
}

static int hvp_matvec(void *ctx, const float *v, float *out, char *err, size_t errlen)
{
    void **c = ctx; /* {tp_hessian *, const float *w} */
    return tp_hessian_vp(c[0], c[1], v, out, err, errlen);
}

static double top_by_lanczos(tp_hessian *h, const float *w)
{
    void *c[2] = {h, (void *)w};
    tp_lanczos_opts o = {.k = 1, .max_iter = 60, .tol = 1e-6, .seed = 4};
    double top;
    tp_lanczos_result res;
    char err[256];
    assert_int_equal(tp_lanczos_top(h->n, hvp_matvec, c, &o, &top, NULL, &res, err, sizeof err),
                     TP_OK);
    return top;
}

/* ---- a quadratic ------------------------------------------------------------------------ */

typedef struct quad {
    size_t n;
    double *a, *b;
} quad;

static int quad_grad(void *ctx, const float *w, float *g, double *loss, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    quad *q = ctx;
    double l = 0.0;
    for (size_t i = 0; i < q->n; i++) {
        double acc = q->b[i];
        for (size_t j = 0; j < q->n; j++)
            acc += q->a[i * q->n + j] * w[j];
        g[i] = (float)acc;
        l += w[i] * (0.5 * (acc - q->b[i]) + q->b[i]);
    }
    if (loss)
        *loss = l;
    return TP_OK;
}

static void test_quadratic(void **unused)
{
    (void)unused;
    const size_t n = 40;
    quad q = {n, calloc(n * n, sizeof(double)), calloc(n, sizeof(double))};
    /* A = R diag(d) R^T, d from -3 to 12. */
    double *r = malloc(sizeof *r * n * n), *d = malloc(sizeof *d * n);
    tp_rng g;
    tp_rng_seed(&g, 1);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j <= i; j++)
            r[i * n + j] = r[j * n + i] = tp_rng_normal(&g);
    assert_int_equal(tp_blas_sym_eig((uint32_t)n, r, d), TP_OK);
    for (size_t k = 0; k < n; k++)
        d[k] = -3.0 + 15.0 * (double)k / (n - 1);
    for (size_t i = 0; i < n; i++) {
        q.b[i] = tp_rng_normal(&g);
        for (size_t j = 0; j < n; j++)
            for (size_t k = 0; k < n; k++)
                q.a[i * n + j] += r[i * n + k] * d[k] * r[j * n + k];
    }
    float *w = malloc(sizeof *w * n);
    tp_fill_normal(w, n, 1.0f, &g);

    tp_hessian h;
    char err[256];
    assert_int_equal(tp_hessian_init(&h, n, quad_grad, &q, 0.0, err, sizeof err), TP_OK);
    double e = hvp_error(&h, w, q.a, 5);
    double top = top_by_lanczos(&h, w);
    printf("# quadratic: hvp rel err %.2e, top %.6f (exact 12), rel err %.2e, %llu gradients\n", e,
           top, fabs(top - 12.0) / 12.0, (unsigned long long)h.grads);
    assert_true(e < 1e-2);                       /* float gradients differenced at 1e-4 */
    assert_true(fabs(top - 12.0) / 12.0 < 1e-3); /* eigenvalue error is far smaller */
    tp_hessian_free(&h);
    tp_hessian_free(&h); /* a zeroed one is a no-op */
    free(w);
    free(r);
    free(d);
    free(q.a);
    free(q.b);
}

/* ---- logistic regression ---------------------------------------------------------------- */

typedef struct logreg {
    size_t n, d; /* examples, features */
    float *x;    /* (n, d) */
    float *y;    /* (n) in {0, 1} */
} logreg;

static int logreg_grad(void *ctx, const float *w, float *g, double *loss, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    logreg *p = ctx;
    memset(g, 0, sizeof *g * p->d);
    float l = 0.0f;
    for (size_t i = 0; i < p->n; i++) {
        const float *xi = p->x + i * p->d;
        float z = 0.0f;
        for (size_t j = 0; j < p->d; j++)
            z += xi[j] * w[j];
        float pr = 1.0f / (1.0f + expf(-z));
        l += log1pf(expf(-fabsf(z))) + fmaxf(z, 0.0f) - p->y[i] * z;
        for (size_t j = 0; j < p->d; j++)
            g[j] += (pr - p->y[i]) * xi[j] / (float)p->n;
    }
    if (loss)
        *loss = l / (double)p->n;
    return TP_OK;
}

static void test_logistic_regression(void **unused)
{
    (void)unused;
    logreg p = {.n = 300, .d = 12};
    p.x = malloc(sizeof *p.x * p.n * p.d);
    p.y = malloc(sizeof *p.y * p.n);
    tp_rng g;
    tp_rng_seed(&g, 2);
    tp_fill_normal(p.x, p.n * p.d, 1.0f, &g);
    float *w = malloc(sizeof *w * p.d);
    tp_fill_normal(w, p.d, 0.5f, &g);
    for (size_t i = 0; i < p.n; i++)
        p.y[i] = tp_rng_uniform(&g) < 0.5 ? 0.0f : 1.0f;

    double *hm = calloc(p.d * p.d, sizeof *hm);
    for (size_t i = 0; i < p.n; i++) {
        const float *xi = p.x + i * p.d;
        double z = 0.0;
        for (size_t j = 0; j < p.d; j++)
            z += (double)xi[j] * w[j];
        double pr = 1.0 / (1.0 + exp(-z)), s = pr * (1.0 - pr) / p.n;
        for (size_t j = 0; j < p.d; j++)
            for (size_t k = 0; k < p.d; k++)
                hm[j * p.d + k] += s * xi[j] * xi[k];
    }
    tp_hessian h;
    char err[256];
    assert_int_equal(tp_hessian_init(&h, p.d, logreg_grad, &p, 1e-4, err, sizeof err), TP_OK);
    double e = hvp_error(&h, w, hm, 5);
    double exact = top_exact(p.d, hm), top = top_by_lanczos(&h, w);
    printf("# logistic regression: hvp rel err %.2e, top %.6f (exact %.6f), rel err %.2e\n", e, top,
           exact, fabs(top - exact) / exact);
    /* The float gradient sums 300 examples in float: its rounding (~1e-7 of a gradient of
     * ~0.3) over a difference of ~5e-5 bounds the accuracy here (measured 8.5e-4). */
    assert_true(e < 1e-2);
    assert_true(fabs(top - exact) / exact < 5e-3);
    tp_hessian_free(&h);
    free(hm);
    free(w);
    free(p.x);
    free(p.y);
}

/* ---- a tiny tanh MLP with MSE, in float and in double ----------------------------------- */

enum { MLP_IN = 6, MLP_HID = 8, MLP_OUT = 3, MLP_N = 32 };
#define MLP_PARAMS (MLP_IN * MLP_HID + MLP_HID + MLP_HID * MLP_OUT + MLP_OUT)

typedef struct mlp {
    float x[MLP_N][MLP_IN], t[MLP_N][MLP_OUT];
} mlp;

/* Loss 0.5 mean_i ||W2 tanh(W1 x_i + b1) + b2 - t_i||^2 and its gradient, in type T. Layout:
 * W1 (IN, HID), b1 (HID), W2 (HID, OUT), b2 (OUT). */
#define MLP_GRAD(name, T, TANH)                                                                    \
    static double name(const mlp *m, const T *p, T *g)                                             \
    {                                                                                              \
        const T *w1 = p, *b1 = w1 + MLP_IN * MLP_HID, *w2 = b1 + MLP_HID,                          \
                *b2 = w2 + MLP_HID * MLP_OUT;                                                      \
        T *gw1 = g, *gb1 = gw1 + MLP_IN * MLP_HID, *gw2 = gb1 + MLP_HID,                           \
          *gb2 = gw2 + MLP_HID * MLP_OUT;                                                          \
        memset(g, 0, sizeof(T) * MLP_PARAMS);                                                      \
        T loss = 0;                                                                                \
        for (int i = 0; i < MLP_N; i++) {                                                          \
            T h[MLP_HID], dh[MLP_HID], e[MLP_OUT];                                                 \
            for (int j = 0; j < MLP_HID; j++) {                                                    \
                T z = b1[j];                                                                       \
                for (int k = 0; k < MLP_IN; k++)                                                   \
                    z += (T)m->x[i][k] * w1[k * MLP_HID + j];                                      \
                h[j] = TANH(z);                                                                    \
                dh[j] = 0;                                                                         \
            }                                                                                      \
            for (int o = 0; o < MLP_OUT; o++) {                                                    \
                T y = b2[o];                                                                       \
                for (int j = 0; j < MLP_HID; j++)                                                  \
                    y += h[j] * w2[j * MLP_OUT + o];                                               \
                e[o] = (y - (T)m->t[i][o]) / (T)MLP_N;                                             \
                loss += (T)0.5 * e[o] * e[o] * (T)MLP_N;                                           \
                gb2[o] += e[o];                                                                    \
                for (int j = 0; j < MLP_HID; j++) {                                                \
                    gw2[j * MLP_OUT + o] += h[j] * e[o];                                           \
                    dh[j] += w2[j * MLP_OUT + o] * e[o];                                           \
                }                                                                                  \
            }                                                                                      \
            for (int j = 0; j < MLP_HID; j++) {                                                    \
                T dz = dh[j] * (1 - h[j] * h[j]);                                                  \
                gb1[j] += dz;                                                                      \
                for (int k = 0; k < MLP_IN; k++)                                                   \
                    gw1[k * MLP_HID + j] += (T)m->x[i][k] * dz;                                    \
            }                                                                                      \
        }                                                                                          \
        return (double)loss;                                                                       \
    }
MLP_GRAD(mlp_grad_f, float, tanhf)
MLP_GRAD(mlp_grad_d, double, tanh)

static int mlp_grad(void *ctx, const float *w, float *g, double *loss, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    double l = mlp_grad_f(ctx, w, g);
    if (loss)
        *loss = l;
    return TP_OK;
}

static void test_tiny_mlp(void **unused)
{
    (void)unused;
    mlp m;
    tp_rng g;
    tp_rng_seed(&g, 3);
    tp_fill_normal(&m.x[0][0], MLP_N * MLP_IN, 1.0f, &g);
    tp_fill_normal(&m.t[0][0], MLP_N * MLP_OUT, 1.0f, &g);
    float w[MLP_PARAMS];
    tp_fill_normal(w, MLP_PARAMS, 0.7f, &g);

    /* The exact Hessian: central differences of the double gradient, symmetrized. */
    const size_t n = MLP_PARAMS;
    double *hm = malloc(sizeof *hm * n * n), wd[MLP_PARAMS], gp[MLP_PARAMS], gm[MLP_PARAMS];
    for (size_t i = 0; i < n; i++)
        wd[i] = w[i];
    for (size_t j = 0; j < n; j++) {
        const double hd = 1e-5, keep = wd[j];
        wd[j] = keep + hd;
        mlp_grad_d(&m, wd, gp);
        wd[j] = keep - hd;
        mlp_grad_d(&m, wd, gm);
        wd[j] = keep;
        for (size_t i = 0; i < n; i++)
            hm[i * n + j] = (gp[i] - gm[i]) / (2 * hd);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            hm[i * n + j] = hm[j * n + i] = 0.5 * (hm[i * n + j] + hm[j * n + i]);

    double exact = top_exact(n, hm);
    char err[256];
    /* The step rule of BENCHMARK.md section 9: 1e-4 is accurate; 1e-2 and 1e-6 are worse. */
    const double steps[] = {1e-2, 1e-3, 1e-4, 1e-5, 1e-6};
    double top_err[5];
    for (int s = 0; s < 5; s++) {
        tp_hessian h;
        assert_int_equal(tp_hessian_init(&h, n, mlp_grad, &m, steps[s], err, sizeof err), TP_OK);
        double e = hvp_error(&h, w, hm, 3), top = top_by_lanczos(&h, w);
        top_err[s] = fabs(top - exact) / exact;
        printf("# tiny MLP (%d params), rel step %.0e: hvp rel err %.2e, top %.6f (exact %.6f), "
               "rel err %.2e\n",
               (int)n, steps[s], e, top, exact, top_err[s]);
        if (steps[s] == 1e-4)
            assert_true(e < 1e-2);
        tp_hessian_free(&h);
    }
    assert_true(top_err[2] < 1e-3);
    assert_true(top_err[2] < top_err[0]); /* curvature bias at 1e-2 */
    free(hm);
}

/* ---- the fixed-batch objective ---------------------------------------------------------- */

/* A fake workload whose loss over example i is 0.5 (w_0 - i)^2, so the mean over a set S has
 * gradient w_0 - mean(S) and Hessian 1 whatever the chunking; it records the chunk sizes. */
typedef struct fake_wl {
    tp_workload base;
    uint32_t chunks[16];
    int calls;
    int fail;
} fake_wl;

static int fake_loss(tp_workload *w, const float *params, const uint32_t *idx, const float *wts,
                     uint32_t n, const tp_loss_opts *opts, uint64_t seed, float *grad, double *loss,
                     float *per_example, char *err, size_t errlen)
{
    (void)wts;
    (void)seed;
    (void)per_example;
    fake_wl *f = (fake_wl *)w;
    assert_float_equal(opts->dropout_rate, 0.0f, 0.0f);
    if (f->fail) {
        snprintf(err, errlen, "fake: broken");
        return TP_EDATA;
    }
    f->chunks[f->calls++ % 16] = n;
    double l = 0.0, gsum = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        double r = params[0] - idx[i];
        l += 0.5 * r * r;
        gsum += r;
    }
    *loss = l / n;
    grad[0] = (float)(gsum / n);
    grad[1] = 0.0f;
    return TP_OK;
}

static void test_fixed_batch(void **unused)
{
    (void)unused;
    static const tp_workload_vtable vt = {.loss_and_grad = fake_loss};
    fake_wl f = {.base = {.vt = &vt, .num_params = 2}};
    uint32_t idx[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    tp_hessian_batch b;
    char err[256];
    assert_int_equal(tp_hessian_batch_init(&b, &f.base, idx, 10, 4, NULL, err, sizeof err), TP_OK);
    float w[2] = {2.0f, 0.0f}, g[2];
    double loss;
    assert_int_equal(tp_hessian_batch_grad(&b, w, g, &loss, err, sizeof err), TP_OK);
    assert_int_equal(f.calls, 3);
    assert_int_equal(f.chunks[0], 4);
    assert_int_equal(f.chunks[2], 2);
    assert_float_equal(g[0], 2.0f - 4.5f, 1e-6f);
    assert_float_equal(loss, (0.5 * (4 + 1 + 0 + 1 + 4 + 9 + 16 + 25 + 36 + 49)) / 10, 1e-9);

    tp_hessian h;
    assert_int_equal(tp_hessian_init(&h, 2, tp_hessian_batch_grad, &b, 0.0, err, sizeof err),
                     TP_OK);
    float u[2] = {1.0f, 0.0f}, out[2] = {9.0f, 9.0f}, zero[2] = {0.0f, 0.0f};
    assert_int_equal(tp_hessian_vp(&h, w, u, out, err, sizeof err), TP_OK);
    assert_float_equal(out[0], 1.0f, 1e-2f);
    assert_float_equal(out[1], 0.0f, 0.0f);
    int calls = f.calls;
    assert_int_equal(tp_hessian_vp(&h, w, zero, out, err, sizeof err), TP_OK);
    assert_int_equal(f.calls, calls); /* a zero direction costs nothing */
    assert_float_equal(out[0], 0.0f, 0.0f);

    f.fail = 1;
    assert_int_equal(tp_hessian_vp(&h, w, u, out, err, sizeof err), TP_EDATA);
    assert_string_equal(err, "fake: broken");
    float bad[2] = {NAN, 0.0f};
    assert_int_equal(tp_hessian_vp(&h, bad, u, out, err, sizeof err), TP_ENONFINITE);
    tp_hessian_free(&h);
    tp_hessian_batch_free(&b);

    assert_int_equal(tp_hessian_batch_init(&b, &f.base, idx, 0, 4, NULL, err, sizeof err),
                     TP_EINVAL);
    assert_int_equal(tp_hessian_init(&h, 0, tp_hessian_batch_grad, &b, 0.0, err, sizeof err),
                     TP_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quadratic),
        cmocka_unit_test(test_logistic_regression),
        cmocka_unit_test(test_tiny_mlp),
        cmocka_unit_test(test_fixed_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
