/*
 * lanczos.h - the top (algebraic) eigenvalues of a symmetric linear operator given only as a
 * matrix-vector product: Lanczos with full reorthogonalization, warm-startable.
 *
 * Built for the sharpness diagnostics (a Hessian-vector product, or P^-1/2 H P^-1/2, as the
 * operator), where every product costs two gradient evaluations: the iteration stops as soon
 * as the wanted Ritz values have converged, and a warm start from the previous measurement's
 * top eigenvector cuts the count further. Not here: the smallest eigenvalues (ask for the top
 * ones of -A), restarts (the Krylov basis is kept whole, max_iter vectors of n floats).
 */
#ifndef TP_LANCZOS_H
#define TP_LANCZOS_H

#include <stddef.h>
#include <stdint.h>

/* out = A v for the n-vector v. 0, or a negative TP_E... code with a message in err. */
typedef int (*tp_lanczos_matvec)(void *ctx, const float *v, float *out, char *err, size_t errlen);

typedef struct tp_lanczos_opts {
    uint32_t k;        /* eigenvalues wanted, >= 1 */
    uint32_t max_iter; /* products at most (also the Krylov basis size), >= k */
    double tol;        /* converged when |residual| <= tol * max(|theta_1|, tiny) for all k */
    const float *v0;   /* start vector (a previous top eigenvector), or NULL for a random one */
    uint64_t seed;     /* for the random start */
} tp_lanczos_opts;

typedef struct tp_lanczos_result {
    uint32_t iters;      /* products taken */
    int converged;       /* 1 when all k met tol; 0 when max_iter ran out */
    double residual[16]; /* |beta_m s_mi|: the residual norm of Ritz pair i (i < min(k, 16)) */
} tp_lanczos_result;

/* The k largest eigenvalues of A into evals (descending); when evecs != NULL the matching
 * unit Ritz vectors into evecs (k rows of n floats). Products are taken until all k Ritz
 * values converge, max_iter is reached, or the Krylov space is exhausted (A has fewer than
 * max_iter distinct directions from v0: the Ritz values are then exact). 0 or TP_EINVAL (bad
 * options, n == 0, a zero start vector), TP_ENOMEM, TP_ENONFINITE (a non-finite product), TP_ERANGE
 * (LAPACK failed), or the matvec's own code with its message. */
int tp_lanczos_top(size_t n, tp_lanczos_matvec matvec, void *ctx, const tp_lanczos_opts *opts,
                   double *evals, float *evecs, tp_lanczos_result *res, char *err, size_t errlen);

#endif /* TP_LANCZOS_H */
