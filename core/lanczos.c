/*
 * lanczos.c - Lanczos with full reorthogonalization for the top eigenvalues of a symmetric
 * operator (tp_lanczos_top).
 *
 * The basis Q (max_iter x n floats) is kept whole. Each new vector is orthogonalized against
 * all earlier ones twice ("twice is enough", modified Gram-Schmidt with double accumulation),
 * so no ghost copies of converged eigenvalues appear and the Ritz values of the tridiagonal T
 * are trustworthy at every step. T is small (at most max_iter rows) and diagonalized in double
 * by LAPACK after every product; Ritz pair i has residual |beta_m s_mi| (Parlett), which is
 * the convergence test. Not here: restarts, block Lanczos.
 */
#include "core/lanczos.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn/nn.h" /* tp_blas_sym_eig */
#include "core/nn/rng.h"

static double norm2(size_t n, const float *v)
{
    return sqrt(cblas_dsdot((int)n, v, 1, v, 1));
}

static int all_finite(size_t n, const float *v)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* Eigen-decomposition of the m x m tridiagonal (alpha, beta) into evec (m x m, eigenvector k
 * in column k) and eval (ascending). */
static int tridiag_eig(uint32_t m, const double *alpha, const double *beta, double *evec,
                       double *eval)
{
    memset(evec, 0, sizeof *evec * m * m);
    for (uint32_t i = 0; i < m; i++) {
        evec[(size_t)i * m + i] = alpha[i];
        if (i + 1 < m)
            evec[(size_t)i * m + i + 1] = evec[(size_t)(i + 1) * m + i] = beta[i];
    }
    return tp_blas_sym_eig(m, evec, eval);
}

int tp_lanczos_top(size_t n, tp_lanczos_matvec matvec, void *ctx, const tp_lanczos_opts *o,
                   double *evals, float *evecs, tp_lanczos_result *res, char *err, size_t errlen)
{
    if (!matvec || !o || !evals || n == 0 || n > (size_t)INT32_MAX || o->k == 0 ||
        o->max_iter < o->k || o->max_iter > 4096 || !(o->tol > 0.0)) {
        snprintf(err, errlen,
                 "lanczos: bad arguments (n %zu, k %u, max_iter %u, tol %g): need n >= 1, "
                 "1 <= k <= max_iter <= 4096, tol > 0",
                 n, o ? o->k : 0, o ? o->max_iter : 0, o ? o->tol : 0.0);
        return TP_EINVAL;
    }
    const uint32_t mmax = o->max_iter, k = o->k;
    if (res)
        memset(res, 0, sizeof *res);
    float *q = malloc(sizeof *q * n * mmax);
    float *w = malloc(sizeof *w * n);
    double *alpha = malloc(sizeof *alpha * mmax), *beta = malloc(sizeof *beta * mmax);
    double *s = malloc(sizeof *s * mmax * mmax), *theta = malloc(sizeof *theta * mmax);
    int rc = TP_OK;
    if (!q || !w || !alpha || !beta || !s || !theta) {
        snprintf(err, errlen, "lanczos: out of memory for a basis of %u x %zu floats", mmax, n);
        rc = TP_ENOMEM;
        goto done;
    }

    /* q_0: the warm start, or a seeded Gaussian vector. */
    if (o->v0) {
        memcpy(q, o->v0, sizeof *q * n);
    } else {
        tp_rng r;
        tp_rng_seed(&r, o->seed);
        tp_fill_normal(q, n, 1.0f, &r);
    }
    double nrm = norm2(n, q);
    if (!(nrm > 0.0) || !isfinite(nrm)) {
        snprintf(err, errlen, "lanczos: the start vector is zero or not finite");
        rc = TP_EINVAL;
        goto done;
    }
    cblas_sscal((int)n, (float)(1.0 / nrm), q, 1);

    uint32_t m = 0; /* vectors in the basis whose products are taken */
    int converged = 0;
    for (uint32_t j = 0; j < mmax; j++) {
        float *qj = q + (size_t)j * n;
        rc = matvec(ctx, qj, w, err, errlen);
        if (rc != TP_OK)
            goto done;
        if (!all_finite(n, w)) {
            snprintf(err, errlen, "lanczos: product %u is not finite", j + 1);
            rc = TP_ENONFINITE;
            goto done;
        }
        m = j + 1;
        alpha[j] = cblas_dsdot((int)n, qj, 1, w, 1);
        cblas_saxpy((int)n, (float)-alpha[j], qj, 1, w, 1);
        if (j > 0)
            cblas_saxpy((int)n, (float)-beta[j - 1], qj - n, 1, w, 1);
        for (int pass = 0; pass < 2; pass++)
            for (uint32_t i = 0; i <= j; i++) {
                const float *qi = q + (size_t)i * n;
                cblas_saxpy((int)n, (float)-cblas_dsdot((int)n, qi, 1, w, 1), qi, 1, w, 1);
            }
        beta[j] = norm2(n, w);

        rc = tridiag_eig(m, alpha, beta, s, theta);
        if (rc != TP_OK) {
            snprintf(err, errlen, "lanczos: LAPACK failed on the %u x %u tridiagonal", m, m);
            goto done;
        }
        const double scale = fmax(fabs(theta[m - 1]), fabs(theta[0]));
        /* The Krylov space is exhausted: the Ritz values are eigenvalues. */
        const int exhausted = beta[j] <= 1e-6 * fmax(scale, 1e-30);
        if (m >= k) {
            converged = 1;
            for (uint32_t i = 0; i < k; i++) {
                double r = fabs(beta[j] * s[(size_t)j * m + (m - 1 - i)]);
                if (i < 16 && res)
                    res->residual[i] = r;
                if (!(r <= o->tol * fmax(fabs(theta[m - 1]), 1e-30)))
                    converged = 0;
            }
        }
        if (converged || exhausted || m == mmax) {
            converged = converged || exhausted;
            break;
        }
        memcpy(q + (size_t)(j + 1) * n, w, sizeof *w * n);
        cblas_sscal((int)n, (float)(1.0 / beta[j]), q + (size_t)(j + 1) * n, 1);
    }

    for (uint32_t i = 0; i < k; i++) {
        evals[i] = i < m ? theta[m - 1 - i] : NAN;
        if (!evecs)
            continue;
        float *e = evecs + (size_t)i * n;
        memset(e, 0, sizeof *e * n);
        if (i >= m)
            continue;
        for (uint32_t j = 0; j < m; j++)
            cblas_saxpy((int)n, (float)s[(size_t)j * m + (m - 1 - i)], q + (size_t)j * n, 1, e, 1);
        double en = norm2(n, e);
        if (en > 0.0)
            cblas_sscal((int)n, (float)(1.0 / en), e, 1);
    }
    if (res) {
        res->iters = m;
        res->converged = converged;
    }

done:
    free(q);
    free(w);
    free(alpha);
    free(beta);
    free(s);
    free(theta);
    return rc;
}
