/*
 * test_baselines_shampoo.c - unit tests of the Shampoo baseline (submissions/shampoo).
 *
 * The plugin is dlopen()ed and driven through the mock host (test_baselines_host.c) on its
 * separable quadratic with the n = 10 tensor table: fc.weight (2, 3) at 0, fc.bias (3) at 6,
 * norm.scale (1) at 9. Each step is checked against a dense Shampoo written here in double
 * precision, independently of the plugin and of LAPACK: the statistics L = sum b2^k G G^T and
 * R, their clamped inverse roots through a cyclic Jacobi eigensolver of our own, Adam's graft,
 * the moving average of gradients and the decoupled decay. Before each step the reference takes
 * the gradient the mock will hand out (from the plugin's float parameters), advances its own
 * state and predicts the new parameters.
 *
 * Tolerances. The plugin forms G G^T, the roots and the direction in float, the reference in
 * double; the parameters are compared with mixed_err (|got - want| / max(1, |want|)):
 *   - SHAMPOO_TOL = 1e-6 when matrix_epsilon makes the statistics well conditioned: float
 *     rounding (6e-8 relative) of G G^T moves an eigenvalue lambda by ~1e-8 ||L||, which moves
 *     (lambda + eps)^{-1/4} by a relative 2.5e-9 ||L|| / (lambda + eps); with eps = 1e-3 and
 *     ||L|| <~ 1 on this mock that is ~3e-6 of a direction whose step is lr_t <= 0.05 per
 *     element: ~1e-7, under 1e-6 (observed: 3e-8 to 6e-8, the float rounding of theta).
 *   - SHAMPOO_TOL_SINGULAR = 1e-5 with the default matrix_epsilon 1e-12 and precondition
 *     frequency 1 from step 1, where L (2 x 2) and R (3 x 3) start rank-deficient: a null
 *     eigenvalue is ~1e-8 ||L|| in float (rounding of G G^T, then lifted to >= 0) but ~1e-12
 *     in double, so whatever float rounding puts into a null direction is weighted by up to
 *     (1e-8)^{-1/4} = 100 instead of the 1 of the well-conditioned case: 100 x 1e-7.
 *     (Observed: a few 1e-7.)
 *   - PRECOND_TOL = 1e-5 for the precondition hook at matrix_epsilon 1e-3, each element's
 *     error taken relative to the largest element of the reference's P^{-1/2} x (Kronecker
 *     mixing can put single elements near zero). The hook applies L^{-1/8} to arbitrary
 *     vectors, null directions of L included: an eigenvalue moved by 1e-8 ||L|| moves
 *     (lambda + eps)^{-1/8} by 1.25e-9 ||L|| / eps ~ 1e-6 per factor, plus the rounding of
 *     three float products. The singular run does not check the hook: there the null
 *     eigenvalues (1e-8 ||L|| in float, 1e-12 in double) weigh a null direction
 *     (1e-8 / 1e-12)^{1/8} = 3 times differently, a property of float statistics.
 *
 * Also: the block split (max_preconditioner_dim 2: the 2 x 3 weight becomes 2 x 2 and 2 x 1
 * blocks, each with its own L, R and graft scale), graft-only runs (start_preconditioning_step
 * past the run: every parameter is AdamW), the precondition hook against the dense 6 x 6
 * sqrt(s / (1 - b1^t)) (L^{-1/8} (x) R^{-1/8}) and Adam's P elsewhere, unchanged state, the
 * failure paths, a host without sym_eig and the defaults (the search space:
 * test_baselines_spaces.c). A last test times one root step on fmnist_mlp's weight shapes (a print,
 * no assert on time).
 *
 * Not here: real workloads (the trial run in the report), LAPACK itself (test_hostapi).
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "baselines_checks.h"
#include "core/hostapi.h"

#define SHAMPOO_TOL          1e-6
#define SHAMPOO_TOL_SINGULAR 1e-5
#define PRECOND_TOL          1e-5

/* ---------------------------------------------------------------------------------------- */
/* The plugins under test */

enum { LIB_SHAMPOO, LIB_SCHEDULES, NUM_LIBS };

static const char *const lib_paths[NUM_LIBS] = {
    TP_TEST_PLUGIN_DIR "/shampoo.so",
    TP_TEST_PLUGIN_DIR "/schedules.so",
};

static tb_lib libs[NUM_LIBS];

static int group_setup(void **unused)
{
    return tb_libs_open(libs, lib_paths, NUM_LIBS);
}

static int group_teardown(void **unused)
{
    tb_libs_close(libs, NUM_LIBS);
    return 0;
}

static const tp_plugin_desc *find(int lib, const char *id)
{
    return tb_find(libs, lib_paths, lib, id);
}

static const tp_plugin_desc *shampoo(void)
{
    return find(LIB_SHAMPOO, "shampoo");
}

/* ---------------------------------------------------------------------------------------- */
/* Dense linear algebra in double: cyclic Jacobi and spectral powers (n <= MAXD) */

#define MAXD 6

/* Eigenpairs of the symmetric n x n `s` (row-major): w (n) and V (columns), by cyclic Jacobi
 * rotations until the off-diagonal part is below 1e-30 of the Frobenius norm. */
static void jacobi_eig(int n, const double *s, double *w, double *V)
{
    double A[MAXD * MAXD];
    memcpy(A, s, (size_t)n * n * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            V[i * n + j] = i == j ? 1.0 : 0.0;
    double fro = 0.0;
    for (int i = 0; i < n * n; i++)
        fro += A[i] * A[i];
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++)
                off += 2.0 * A[p * n + q] * A[p * n + q];
        if (off <= 1e-60 * fro || off == 0.0)
            break;
        for (int p = 0; p < n; p++) {
            for (int q = p + 1; q < n; q++) {
                const double apq = A[p * n + q];
                if (apq == 0.0)
                    continue;
                const double theta = (A[q * n + q] - A[p * n + p]) / (2.0 * apq);
                const double t =
                    (theta >= 0.0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                const double c = 1.0 / sqrt(t * t + 1.0), sn = t * c;
                for (int k = 0; k < n; k++) { /* A <- A J, V <- V J */
                    const double akp = A[k * n + p], akq = A[k * n + q];
                    A[k * n + p] = c * akp - sn * akq;
                    A[k * n + q] = sn * akp + c * akq;
                    const double vkp = V[k * n + p], vkq = V[k * n + q];
                    V[k * n + p] = c * vkp - sn * vkq;
                    V[k * n + q] = sn * vkp + c * vkq;
                }
                for (int k = 0; k < n; k++) { /* A <- J^T A */
                    const double apk = A[p * n + k], aqk = A[q * n + k];
                    A[p * n + k] = c * apk - sn * aqk;
                    A[q * n + k] = sn * apk + c * aqk;
                }
            }
        }
    }
    for (int i = 0; i < n; i++)
        w[i] = A[i * n + i];
}

/* out = V diag((w - min(min w, 0) + eps)^power) V^T for S = V diag(w) V^T: the reference's
 * clamp (lift a spectrum that dipped below 0, then add eps). */
static void spectral_power(int n, const double *S, double eps, double power, double *out)
{
    double w[MAXD], V[MAXD * MAXD];
    jacobi_eig(n, S, w, V);
    double wmin = w[0];
    for (int k = 1; k < n; k++)
        wmin = fmin(wmin, w[k]);
    const double shift = wmin < 0.0 ? -wmin : 0.0;
    for (int k = 0; k < n; k++)
        w[k] = pow(w[k] + shift + eps, power);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0.0;
            for (int k = 0; k < n; k++)
                acc += V[i * n + k] * w[k] * V[j * n + k];
            out[i * n + j] = acc;
        }
}

static void test_jacobi_reconstructs(void **unused)
{
    /* The reference's own eigensolver: V orthonormal and V diag(w) V^T = S, to 1e-13. */
    const double S[9] = {2.0, -1.0, 0.5, -1.0, 3.0, 0.25, 0.5, 0.25, 1e-9};
    double w[3], V[9], err = 0.0;
    jacobi_eig(3, S, w, V);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double rec = 0.0, dot = 0.0;
            for (int k = 0; k < 3; k++) {
                rec += V[i * 3 + k] * w[k] * V[j * 3 + k];
                dot += V[k * 3 + i] * V[k * 3 + j];
            }
            err = fmax(err, fabs(rec - S[i * 3 + j]));
            err = fmax(err, fabs(dot - (i == j ? 1.0 : 0.0)));
        }
    /* And a power: (S + eps)^{-1/4} to the 4th times (S + eps) is I (S is positive definite). */
    double P[9], P2[9], P4[9];
    spectral_power(3, S, 0.0, -0.25, P);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            P2[i * 3 + j] = 0.0;
            for (int k = 0; k < 3; k++)
                P2[i * 3 + j] += P[i * 3 + k] * P[k * 3 + j];
        }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            P4[i * 3 + j] = 0.0;
            for (int k = 0; k < 3; k++)
                P4[i * 3 + j] += P2[i * 3 + k] * P2[k * 3 + j];
        }
    double ierr = 0.0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double acc = 0.0;
            for (int k = 0; k < 3; k++)
                acc += P4[i * 3 + k] * S[k * 3 + j];
            ierr = fmax(ierr, fabs(acc - (i == j ? 1.0 : 0.0)));
        }
    print_message("jacobi: reconstruction/orthogonality error %.3g, (S^{-1/4})^4 S - I %.3g\n", err,
                  ierr);
    assert_true(err <= 1e-13);
    assert_true(ierr <= 1e-6); /* S's eigenvalue 1e-9 makes S^{-1} large: relative 1e-6 */
}

/* ---------------------------------------------------------------------------------------- */
/* The reference Shampoo on the n = 10 mock (weight 2 x 3 at 0, row stride 3) */

typedef struct ref_block {
    int r0, c0, rows, cols;
    double L[MAXD * MAXD], R[MAXD * MAXD];   /* statistics, not bias-corrected */
    double Lh[MAXD * MAXD], Rh[MAXD * MAXD]; /* L / (1 - b2^t), R / ... of the last root step */
    int has_root, used;
    double scale;
} ref_block;

typedef struct ref_shampoo {
    double lr, b1, b2, wd, eps, meps;
    uint64_t freq, start, block;
    uint64_t t;
    double m[10], v[10];
    ref_block blk[8];
    int nblk;
} ref_shampoo;

static void ref_init(ref_shampoo *r)
{
    r->t = 0;
    memset(r->m, 0, sizeof r->m);
    memset(r->v, 0, sizeof r->v);
    r->nblk = 0;
    for (int r0 = 0; r0 < 2; r0 += (int)r->block)
        for (int c0 = 0; c0 < 3; c0 += (int)r->block) {
            ref_block *b = &r->blk[r->nblk++];
            memset(b, 0, sizeof *b);
            b->r0 = r0;
            b->c0 = c0;
            b->rows = (int)fmin((double)r->block, 2.0 - r0);
            b->cols = (int)fmin((double)r->block, 3.0 - c0);
        }
}

/* One step from the plugin's current float parameters; want (10) the predicted parameters. */
static void ref_step(ref_shampoo *r, const tp_ctx *ctx, double f, double *want)
{
    double g[10], th[10];
    for (int i = 0; i < 10; i++) {
        g[i] = mock_grad(ctx, (uint64_t)i);
        th[i] = ctx->params[i];
    }
    r->t++;
    const double t = (double)r->t, lr_t = r->lr * f;
    const double bc1 = 1.0 - pow(r->b1, t), bc2 = 1.0 - pow(r->b2, t);
    const int due = r->t == r->start || (r->t > r->start && r->t % r->freq == 0);
    for (int k = 0; k < r->nblk; k++) {
        ref_block *b = &r->blk[k];
        for (int i = 0; i < b->rows; i++)
            for (int j = 0; j < b->rows; j++) {
                double acc = 0.0;
                for (int l = 0; l < b->cols; l++)
                    acc += g[(b->r0 + i) * 3 + b->c0 + l] * g[(b->r0 + j) * 3 + b->c0 + l];
                b->L[i * b->rows + j] = r->b2 * b->L[i * b->rows + j] + (1.0 - r->b2) * acc;
            }
        for (int i = 0; i < b->cols; i++)
            for (int j = 0; j < b->cols; j++) {
                double acc = 0.0;
                for (int l = 0; l < b->rows; l++)
                    acc += g[(b->r0 + l) * 3 + b->c0 + i] * g[(b->r0 + l) * 3 + b->c0 + j];
                b->R[i * b->cols + j] = r->b2 * b->R[i * b->cols + j] + (1.0 - r->b2) * acc;
            }
        if (due) {
            for (int i = 0; i < b->rows * b->rows; i++)
                b->Lh[i] = b->L[i] / bc2;
            for (int i = 0; i < b->cols * b->cols; i++)
                b->Rh[i] = b->R[i] / bc2;
            b->has_root = 1;
        }
    }
    double A[10];
    for (int i = 0; i < 10; i++) {
        r->m[i] = r->b1 * r->m[i] + (1.0 - r->b1) * g[i];
        r->v[i] = r->b2 * r->v[i] + (1.0 - r->b2) * g[i] * g[i];
        A[i] = (r->m[i] / bc1) / (sqrt(r->v[i] / bc2) + r->eps);
        want[i] = th[i] - lr_t * (A[i] + r->wd * th[i]); /* the graft; blocks overwrite */
    }
    for (int k = 0; k < r->nblk; k++) {
        ref_block *b = &r->blk[k];
        b->used = r->t >= r->start && b->has_root;
        if (!b->used)
            continue;
        double Lq[MAXD * MAXD], Rq[MAXD * MAXD], M[MAXD * MAXD], T[MAXD * MAXD], D[MAXD * MAXD];
        spectral_power(b->rows, b->Lh, r->meps, -0.25, Lq);
        spectral_power(b->cols, b->Rh, r->meps, -0.25, Rq);
        for (int i = 0; i < b->rows; i++)
            for (int j = 0; j < b->cols; j++)
                M[i * b->cols + j] = r->m[(b->r0 + i) * 3 + b->c0 + j] / bc1;
        for (int i = 0; i < b->rows; i++)
            for (int j = 0; j < b->cols; j++) {
                double acc = 0.0;
                for (int l = 0; l < b->rows; l++)
                    acc += Lq[i * b->rows + l] * M[l * b->cols + j];
                T[i * b->cols + j] = acc;
            }
        double nd = 0.0, na = 0.0;
        for (int i = 0; i < b->rows; i++)
            for (int j = 0; j < b->cols; j++) {
                double acc = 0.0;
                for (int l = 0; l < b->cols; l++)
                    acc += T[i * b->cols + l] * Rq[l * b->cols + j];
                D[i * b->cols + j] = acc;
                nd += acc * acc;
                const double a = A[(b->r0 + i) * 3 + b->c0 + j];
                na += a * a;
            }
        b->scale = sqrt(na) / (sqrt(nd) + 1e-16);
        for (int i = 0; i < b->rows; i++)
            for (int j = 0; j < b->cols; j++) {
                const int e = (b->r0 + i) * 3 + b->c0 + j;
                want[e] = th[e] - lr_t * (b->scale * D[i * b->cols + j] + r->wd * th[e]);
            }
    }
}

/* out = P^{-1/2} x for the P of the last reference step: Adam's P elementwise, and for a block
 * that took the Shampoo direction the dense (rows cols)^2 matrix
 * sqrt(s / (1 - b1^t)) (L^{-1/8} (x) R^{-1/8}) applied to the row-major block of x. */
static void ref_precond(const ref_shampoo *r, const float *x, double *out)
{
    const double t = (double)r->t;
    const double bc1 = 1.0 - pow(r->b1, t), bc2 = 1.0 - pow(r->b2, t);
    for (int i = 0; i < 10; i++)
        out[i] = x[i] / sqrt(bc1 * (sqrt(r->v[i] / bc2) + r->eps));
    for (int k = 0; k < r->nblk; k++) {
        const ref_block *b = &r->blk[k];
        if (!b->used)
            continue;
        double Le[MAXD * MAXD], Re[MAXD * MAXD], K[36 * 36];
        spectral_power(b->rows, b->Lh, r->meps, -0.125, Le);
        spectral_power(b->cols, b->Rh, r->meps, -0.125, Re);
        const int nb = b->rows * b->cols;
        const double f = sqrt(b->scale / bc1);
        for (int i = 0; i < b->rows; i++)
            for (int j = 0; j < b->cols; j++)
                for (int k2 = 0; k2 < b->rows; k2++)
                    for (int l = 0; l < b->cols; l++)
                        K[(i * b->cols + j) * nb + k2 * b->cols + l] =
                            f * Le[i * b->rows + k2] * Re[j * b->cols + l];
        for (int p = 0; p < nb; p++) {
            double acc = 0.0;
            for (int q = 0; q < nb; q++) {
                const int e = (b->r0 + q / b->cols) * 3 + b->c0 + q % b->cols;
                acc += K[p * nb + q] * x[e];
            }
            out[(b->r0 + p / b->cols) * 3 + b->c0 + p % b->cols] = acc;
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Driving the plugin against the reference */

typedef struct run_case {
    const char *what;
    double lr, b1, b2, wd, eps, meps;
    uint64_t freq, start, block;
    int steps;
    double tol;      /* parameters, mixed_err */
    int check_hook;  /* compare the precondition hook each step */
    int want_blocks; /* Kronecker blocks the reference must have used by the end (0: none) */
} run_case;

static void run_shampoo(const run_case *rc)
{
    const tp_plugin_desc *d = shampoo();
    tp_ctx ctx;
    mock_ctx_init(&ctx, 10);
    ctx.desc = d;
    mock_set_hparam(&ctx, "learning_rate", rc->lr);
    mock_set_hparam(&ctx, "one_minus_beta1", 1.0 - rc->b1);
    mock_set_hparam(&ctx, "beta2", rc->b2);
    mock_set_hparam(&ctx, "weight_decay", rc->wd);
    mock_set_hparam(&ctx, "epsilon", rc->eps);
    mock_set_hparam(&ctx, "matrix_epsilon", rc->meps);
    mock_set_hparam(&ctx, "precondition_frequency", (double)rc->freq);
    mock_set_hparam(&ctx, "start_preconditioning_step", (double)rc->start);
    mock_set_hparam(&ctx, "max_preconditioner_dim", (double)rc->block);
    mock_set_hparam(&ctx, "label_smoothing", 0.1);
    mock_set_hparam(&ctx, "dropout_rate", 0.2);

    ref_shampoo r = {.lr = rc->lr,
                     .b1 = rc->b1,
                     .b2 = rc->b2,
                     .wd = rc->wd,
                     .eps = rc->eps,
                     .meps = rc->meps,
                     .freq = rc->freq,
                     .start = rc->start,
                     .block = rc->block};
    ref_init(&r);

    void *state = NULL;
    tp_error err;
    TP_STRUCT_INIT(&err, tp_error);
    assert_int_equal(d->init(mock_host(), &ctx, &state, &err), TP_OK);
    assert_int_equal(ctx.hparam_unknown, 0);

    float x[10], out[10], out2[10];
    for (int i = 0; i < 10; i++)
        x[i] = (float)(1.0 + 0.3 * i - 0.07 * i * i);
    err.message[0] = '\0';
    assert_int_equal(d->precondition(state, mock_host(), &ctx, x, out, &err), TP_ESTATE);
    assert_true(strncmp(err.message, "shampoo: ", 9) == 0);

    double max_err = 0.0, max_perr = 0.0;
    int used_blocks = 0;
    for (int s = 0; s < rc->steps; s++) {
        step_io io;
        const double f = test_factor((uint64_t)s);
        double want[10];
        step_io_init(&io, (uint64_t)s, f);
        ref_step(&r, &ctx, f, want);
        assert_int_equal(d->update(state, mock_host(), &ctx, &io.args, &io.err), TP_OK);
        for (int i = 0; i < 10; i++)
            max_err = fmax(max_err, mixed_err(ctx.params[i], want[i]));
        assert_true(ctx.last_opts.label_smoothing == 0.1f);
        assert_true(ctx.last_opts.dropout_rate == 0.2f);
        for (int k = 0; k < r.nblk; k++)
            used_blocks += r.blk[k].used;

        if (rc->check_hook) {
            double want_p[10];
            assert_int_equal(d->precondition(state, mock_host(), &ctx, x, out, &err), TP_OK);
            assert_int_equal(d->precondition(state, mock_host(), &ctx, x, out2, &err), TP_OK);
            assert_memory_equal(out, out2, sizeof out);
            ref_precond(&r, x, want_p);
            double scale = 0.0;
            for (int i = 0; i < 10; i++)
                scale = fmax(scale, fabs(want_p[i]));
            for (int i = 0; i < 10; i++)
                max_perr = fmax(max_perr, fabs(out[i] - want_p[i]) / scale);
        }
    }
    print_message("shampoo %s (lr=%g b1=%g b2=%g wd=%g eps=%g matrix_eps=%g freq=%llu start=%llu "
                  "block=%llu): %d steps, %d block-steps preconditioned; max mixed error %.3g "
                  "(tolerance %.0e)",
                  rc->what, rc->lr, rc->b1, rc->b2, rc->wd, rc->eps, rc->meps,
                  (unsigned long long)rc->freq, (unsigned long long)rc->start,
                  (unsigned long long)rc->block, rc->steps, used_blocks, max_err, rc->tol);
    if (rc->check_hook)
        print_message("; precondition max relative error %.3g (tolerance %.0e)", max_perr,
                      PRECOND_TOL);
    print_message("\n");
    assert_true(max_err <= rc->tol);
    assert_true(max_perr <= PRECOND_TOL);
    if (rc->want_blocks)
        assert_true(used_blocks >= rc->want_blocks);
    else
        assert_int_equal(used_blocks, 0);

    d->destroy(state, mock_host(), &ctx);
    assert_int_equal(ctx.outstanding, 0);
    assert_int_equal(ctx.bad_frees, 0);
    mock_ctx_free(&ctx);
}

static void test_shampoo_every_step(void **unused)
{
    /* Roots every step from step 1, well-conditioned: the whole Shampoo path each step. */
    const run_case c = {.what = "every step",
                        .lr = 0.02,
                        .b1 = 0.9,
                        .b2 = 0.99,
                        .wd = 0.1,
                        .eps = 1e-8,
                        .meps = 1e-3,
                        .freq = 1,
                        .start = 1,
                        .block = 8,
                        .steps = 40,
                        .tol = SHAMPOO_TOL,
                        .check_hook = 1,
                        .want_blocks = 40};
    run_shampoo(&c);
}

static void test_shampoo_every_step_singular(void **unused)
{
    /* The default matrix_epsilon 1e-12 with rank-deficient statistics at the start. */
    const run_case c = {.what = "every step, eps 1e-12",
                        .lr = 0.02,
                        .b1 = 0.9,
                        .b2 = 0.999,
                        .wd = 0.0,
                        .eps = 1e-8,
                        .meps = 1e-12,
                        .freq = 1,
                        .start = 1,
                        .block = 8,
                        .steps = 40,
                        .tol = SHAMPOO_TOL_SINGULAR,
                        .check_hook = 0,
                        .want_blocks = 40};
    run_shampoo(&c);
}

static void test_shampoo_stale_roots(void **unused)
{
    /* Graft alone for steps 1-4, roots at 5, 6, 9, 12, ... (frequency 3 after a start of 5):
     * the direction uses roots up to two steps old while L and R move on. */
    const run_case c = {.what = "frequency 3, start 5",
                        .lr = 0.05,
                        .b1 = 0.95,
                        .b2 = 0.995,
                        .wd = 0.05,
                        .eps = 1e-8,
                        .meps = 1e-3,
                        .freq = 3,
                        .start = 5,
                        .block = 8,
                        .steps = 45,
                        .tol = SHAMPOO_TOL,
                        .check_hook = 1,
                        .want_blocks = 41};
    run_shampoo(&c);
}

static void test_shampoo_blocks(void **unused)
{
    /* max_preconditioner_dim 2: the 2 x 3 weight is two blocks, 2 x 2 and 2 x 1, each with its
     * own statistics, roots and graft scale. */
    const run_case c = {.what = "blocks of 2",
                        .lr = 0.03,
                        .b1 = 0.9,
                        .b2 = 0.99,
                        .wd = 0.02,
                        .eps = 1e-8,
                        .meps = 1e-3,
                        .freq = 2,
                        .start = 3,
                        .block = 2,
                        .steps = 36,
                        .tol = SHAMPOO_TOL,
                        .check_hook = 1,
                        .want_blocks = 2 * 34};
    run_shampoo(&c);
}

static void test_shampoo_graft_only(void **unused)
{
    /* start_preconditioning_step past the run: every parameter takes Adam's direction (the
     * statistics are still accumulated, never used), the precondition hook is Adam's. */
    const run_case c = {.what = "graft only",
                        .lr = 0.02,
                        .b1 = 0.9,
                        .b2 = 0.99,
                        .wd = 0.1,
                        .eps = 1e-8,
                        .meps = 1e-3,
                        .freq = 1,
                        .start = 1000,
                        .block = 8,
                        .steps = 30,
                        .tol = SHAMPOO_TOL,
                        .check_hook = 1,
                        .want_blocks = 0};
    run_shampoo(&c);
}

static void test_shampoo_defaults_run(void **unused)
{
    /* The declared defaults as a run: start 100 and frequency 100, so 120 steps cross the
     * first root step (steps 100-120 preconditioned). */
    const run_case c = {.what = "defaults",
                        .lr = 1e-3,
                        .b1 = 0.9,
                        .b2 = 0.999,
                        .wd = 0.0,
                        .eps = 1e-8,
                        .meps = 1e-12,
                        .freq = 100,
                        .start = 100,
                        .block = 128,
                        .steps = 120,
                        .tol = SHAMPOO_TOL,
                        .check_hook = 0,
                        .want_blocks = 21};
    run_shampoo(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* Declarations, failure paths, an old host */

static void test_shampoo_defaults(void **unused)
{
    const tp_plugin_desc *d = shampoo();
    assert_int_equal(d->kind, TP_PLUGIN_OPTIMIZER);
    assert_non_null(d->precondition);
    assert_non_null(d->destroy);
    assert_null(d->lr_factor);
    assert_null(d->select_batch);
    assert_null(libs[LIB_SHAMPOO].entry(1));
    assert_int_equal(d->num_hparams, 11);
    check_default(d, "learning_rate", 1e-3);
    check_default(d, "one_minus_beta1", 0.1);
    check_default(d, "beta2", 0.999);
    check_default(d, "weight_decay", 0.0);
    check_default(d, "epsilon", 1e-8);
    check_default(d, "matrix_epsilon", 1e-12);
    check_default(d, "precondition_frequency", 100.0);
    check_default(d, "start_preconditioning_step", 100.0);
    check_default(d, "max_preconditioner_dim", 128.0);
    check_default(d, "label_smoothing", 0.0);
    check_default(d, "dropout_rate", 0.0);
    for (uint32_t h = 0; h < d->num_hparams; h++) {
        const tp_hparam_decl *p = hparam_at(d, h);
        const int is_int = strcmp(p->name, "precondition_frequency") == 0 ||
                           strcmp(p->name, "start_preconditioning_step") == 0 ||
                           strcmp(p->name, "max_preconditioner_dim") == 0;
        assert_int_equal(p->type, is_int ? TP_HPARAM_INT : TP_HPARAM_FLOAT);
        assert_true(p->min_value <= p->default_value && p->default_value <= p->max_value);
    }
}

static void test_shampoo_init_out_of_memory(void **unused)
{
    check_init_out_of_memory(shampoo());
}

static void test_shampoo_update_passes_host_errors(void **unused)
{
    check_update_passes_host_errors(shampoo());
}

static void test_shampoo_needs_sym_eig(void **unused)
{
    /* A host table from before SDK 1.1 ends before sym_eig: init refuses with TP_EABI. */
    const tp_plugin_desc *d = shampoo();
    tp_host old = *mock_host();
    old.struct_size = (uint32_t)offsetof(tp_host, sym_eig);
    tp_ctx ctx;
    tp_error err;
    void *sentinel = &ctx, *state = sentinel;
    mock_ctx_init(&ctx, 10);
    ctx.desc = d;
    TP_STRUCT_INIT(&err, tp_error);
    err.message[0] = '\0';
    assert_int_equal(d->init(&old, &ctx, &state, &err), TP_EABI);
    assert_ptr_equal(state, sentinel);
    assert_non_null(strstr(err.message, "shampoo: "));
    assert_non_null(strstr(err.message, "sym_eig"));
    assert_int_equal(ctx.outstanding, 0);
    mock_ctx_free(&ctx);
}

/* ---------------------------------------------------------------------------------------- */
/* The cost of one root step on fmnist_mlp's weight shapes (a measurement, printed) */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_shampoo_root_cost(void **unused)
{
    /* fc1.weight (784, 256), fc2.weight (256, 256), fc3.weight (256, 10) and the biases as one
     * 1-D tensor; the default block size (128: 20 blocks, 40 roots), roots at step 2. */
    static const uint32_t shapes[3][2] = {{784, 256}, {256, 256}, {256, 10}};
    const tp_plugin_desc *d = shampoo();
    uint64_t n = 0;
    for (int k = 0; k < 3; k++)
        n += (uint64_t)shapes[k][0] * shapes[k][1];
    const uint64_t nw = n;
    n += 256 + 256 + 10;
    tp_ctx ctx;
    mock_ctx_init(&ctx, n);
    ctx.desc = d;
    uint64_t off = 0;
    for (int k = 0; k < 3; k++) {
        tp_tensor_info *ti = &ctx.tensors[k];
        TP_STRUCT_INIT(ti, tp_tensor_info);
        ti->name = k == 0 ? "fc1.weight" : k == 1 ? "fc2.weight" : "fc3.weight";
        ti->role = TP_PARAM_ROLE_WEIGHT;
        ti->ndim = 2;
        for (int j = 0; j < TP_MAX_DIMS; j++)
            ti->shape[j] = 1;
        ti->shape[0] = shapes[k][0];
        ti->shape[1] = shapes[k][1];
        ti->offset = off;
        ti->numel = (uint64_t)shapes[k][0] * shapes[k][1];
        off += ti->numel;
    }
    tp_tensor_info *tb = &ctx.tensors[3];
    TP_STRUCT_INIT(tb, tp_tensor_info);
    tb->name = "biases";
    tb->role = TP_PARAM_ROLE_BIAS;
    tb->ndim = 1;
    for (int j = 0; j < TP_MAX_DIMS; j++)
        tb->shape[j] = 1;
    tb->shape[0] = (uint32_t)(n - nw);
    tb->offset = nw;
    tb->numel = n - nw;
    ctx.num_tensors = 4;
    mock_set_hparam(&ctx, "start_preconditioning_step", 2.0);
    mock_set_hparam(&ctx, "precondition_frequency", 1000.0);

    /* The mock's gemm is a plain loop: time with the real host's (OpenBLAS). */
    tp_host host = *mock_host();
    host.gemm = tp_hostapi_table()->gemm;
    void *state = NULL;
    step_io io;
    step_io_init(&io, 0, 1.0);
    assert_int_equal(d->init(&host, &ctx, &state, &io.err), TP_OK);
    double t_step[4];
    for (int s = 0; s < 4; s++) {
        step_io_init(&io, (uint64_t)s, 1.0);
        const double t0 = now_s();
        assert_int_equal(d->update(state, &host, &ctx, &io.args, &io.err), TP_OK);
        t_step[s] = now_s() - t0;
    }
    const char *core = getenv("OPENBLAS_CORETYPE");
    print_message("shampoo on fmnist_mlp shapes (%llu params, default block size, OpenBLAS "
                  "gemm, OPENBLAS_CORETYPE=%s): step 1 (statistics, graft) %.1f ms; step 2 "
                  "(statistics, roots, Shampoo) %.1f ms; "
                  "steps 3-4 (statistics, Shampoo) %.1f / %.1f ms\n",
                  (unsigned long long)n, core != NULL ? core : "(unset)", 1e3 * t_step[0],
                  1e3 * t_step[1], 1e3 * t_step[2], 1e3 * t_step[3]);
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(ctx.params[i]))
            fail_msg("parameter %llu is not finite", (unsigned long long)i);
    d->destroy(state, &host, &ctx);
    assert_int_equal(ctx.outstanding, 0);
    mock_ctx_free(&ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jacobi_reconstructs),
        cmocka_unit_test(test_shampoo_defaults),
        cmocka_unit_test(test_shampoo_every_step),
        cmocka_unit_test(test_shampoo_every_step_singular),
        cmocka_unit_test(test_shampoo_stale_roots),
        cmocka_unit_test(test_shampoo_blocks),
        cmocka_unit_test(test_shampoo_graft_only),
        cmocka_unit_test(test_shampoo_defaults_run),
        cmocka_unit_test(test_shampoo_init_out_of_memory),
        cmocka_unit_test(test_shampoo_update_passes_host_errors),
        cmocka_unit_test(test_shampoo_needs_sym_eig),
        cmocka_unit_test(test_shampoo_root_cost),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
