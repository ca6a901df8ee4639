/*
 * shampoo.c - the Shampoo baseline, optimizer id "shampoo": blocked Kronecker-factored
 * preconditioning (Gupta, Koren & Singer 2018; Anil et al. 2020) with Adam grafting, modelled on
 * the Distributed Shampoo submission that won AlgoPerf v0.5's external-tuning ruleset
 * (facebookresearch/optimizers; its submission.py fixes Adam grafting, bias correction, decoupled
 * weight decay and eigendecomposition roots, and reads NAdam filtering and an extra heavy-ball
 * momentum from its search space, whose values we did not find: both off here, the library's
 * defaults). The search space is AlgoPerf's archived Shampoo baseline's (BENCHMARK.md section
 * 7), which ran Google's JAX Distributed Shampoo. With t counting updates from 1, b1 = 1 -
 * one_minus_beta1, b2 = beta2, lr_t = learning_rate * lr_factor, g the gradient and, for one
 * Kronecker block G (a sub-matrix of a weight, see "Blocks"):
 *
 *     m = b1 m + (1 - b1) g                 (every parameter; m_hat = m / (1 - b1^t))
 *     v = b2 v + (1 - b2) g^2               (every parameter; v_hat = v / (1 - b2^t))
 *     L = b2 L + (1 - b2) G G^T             (every step, from step 1)
 *     R = b2 R + (1 - b2) G^T G
 *     A = m_hat / (sqrt(v_hat) + epsilon)   (the graft: Adam's direction)
 *     when t == start_preconditioning_step, or t > start and t % precondition_frequency == 0:
 *         L^{-1/4} = U diag(w')^{-1/4} U^T, U diag(w) U^T = L / (1 - b2^t) (host->sym_eig),
 *         w' = w - min(min_k w_k, 0) + matrix_epsilon (the reference's clamp: lift the
 *         spectrum to >= 0 if it dipped below, then add epsilon); same for R
 *     D = L^{-1/4} m_hat R^{-1/4}           (the roots of the last root step)
 *     s = ||A||_F / (||D||_F + 1e-16)       (per block)
 *     theta -= lr_t * (s D + weight_decay * theta)          for t >= start_preconditioning_step
 *     theta -= lr_t * (A + weight_decay * theta)            otherwise, and for all other tensors
 *
 * The graft uses the same b2 as the statistics and is fed the same filtered gradient m_hat, as in
 * the reference (its grafting grafts the second moment only). Weight decay is decoupled, scaled
 * by lr_t and applied to ALL parameters, biases and norm scales included, as the reference's one
 * parameter group does.
 *
 * Blocks (the reference's max_preconditioner_dim): a 2-D tensor of role WEIGHT, shape[0] x
 * shape[1] row-major, is split along each dimension into pieces of max_preconditioner_dim (the
 * last one shorter), as torch.split does: a 784 x 256 weight with 128 gives 7 x 2 blocks
 * (12 of 128 x 128, two of 16 x 128). Each block has its own L (rows x rows), R (cols x cols),
 * roots and graft scale s. Every other tensor (biases, norm scales, embeddings, kernels with more
 * than two dimensions) gets the graft direction A alone, i.e. AdamW: this is where we differ from
 * the reference, which also preconditions vectors with a full-matrix root ((G G^T)^{-1/2}).
 * Before the first root of a block (or if LAPACK never converged on it) the block also takes A.
 *
 * Precision: L and R are accumulated in double. sym_eig works in double, so the roots need the
 * statistics in double anyway; keeping the running sums there costs O(rows^2 + cols^2) per
 * step (next to the O(rows cols (rows + cols)) float gemm that forms G G^T and G^T G) and keeps
 * the b2 = 0.999 moving average from losing the 1e-3-sized increments to float rounding over
 * thousands of steps. The products G G^T, the roots and the preconditioned direction are float
 * (host->gemm); the roots are formed as B B^T with B = U diag(w'^{-1/8}), so they are
 * symmetric positive semi-definite by construction.
 *
 * A LAPACK failure to converge keeps the block's previous roots (the reference's "protected
 * eigh") and logs a warning; non-finite statistics end the update with TP_ENONFINITE.
 *
 * Preconditioner (the `precondition` hook, BENCHMARK.md section 9): with P frozen at the last
 * update t, written so that the update is theta -= lr_t * (P^{-1} m + decay) with m the raw
 * (not bias-corrected) moving average of gradients:
 *   - graft-only parameters and blocks: Adam's P_t = (1 - b1^t)(sqrt(v_t / (1 - b2^t)) + eps),
 *     elementwise, out = P^{-1/2} x as adam_precondition computes it;
 *   - a block that took the Shampoo direction: P^{-1} = (s / (1 - b1^t)) (L^{-1/4} (x) R^{-1/4})
 *     on the row-major block (vec(L^a X R^a) = (L^a (x) R^a) vec(X) for symmetric R), so
 *         P^{-1/2} X = sqrt(s / (1 - b1^t)) L^{-1/8} X R^{-1/8},
 *     with L^{-1/8} = U diag(w')^{-1/8} U^T from the eigendecomposition kept from the last root
 *     step and s the graft scale of update t. s depends on m_t itself (the graft renormalises
 *     every step); frozen P means: this s.
 * Momentum enters P only through (1 - b1^t) (bias correction), exactly as in Adam's P. Before the
 * first update P is undefined: TP_ESTATE. The hook reuses the update's scratch buffers and
 * changes no state.
 *
 * Not here: the reference's full-matrix preconditioning of vectors, dimension merging, its
 * optional NAdam filtering and heavy-ball momentum, Newton-iteration roots, distribution across
 * workers.
 *
 * State (host->alloc, 4 allocations): the struct; the block table; one double arena (per block
 * L, R, their eigenvectors U and lifted eigenvalues w', plus one root's scratch); one float
 * arena (grad, m, v: num_params each; per block the roots L^{-1/4}, R^{-1/4}; five
 * block-sized scratch matrices).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <trainperf/trainperf.h>

#include "../common/adam.h"
#include "../common/plugin_util.h"

#define ID "shampoo"

/* Added to ||D|| in the graft ratio, as the reference does. */
#define SHAMPOO_NORM_EPS 1e-16

/* Weight matrices that get Kronecker blocks; later ones (if a model had more) take the graft. */
#define SHAMPOO_MAX_MATRICES 1024

/* ---------------------------------------------------------------------------------------- */
/* Hyperparameters (AlgoPerf's names; the ranges are the valid domains, not a search space) */

static const tp_hparam_decl shampoo_hparams[] = {
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "learning_rate", TP_HPARAM_FLOAT, 1e-3, 1e-6, 10.0,
     "peak step size, before the schedule's factor"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "one_minus_beta1", TP_HPARAM_FLOAT, 0.1, 1e-6, 1.0,
     "1 - beta1, the moving average of gradients both directions are applied to"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "beta2", TP_HPARAM_FLOAT, 0.999, 0.0, 0.999999,
     "decay of the Kronecker statistics L, R and of the graft's second moment"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "weight_decay", TP_HPARAM_FLOAT, 0.0, 0.0, 10.0,
     "decoupled weight decay, scaled by lr_t, all parameters"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "epsilon", TP_HPARAM_FLOAT, 1e-8, 1e-12, 1.0,
     "the Adam graft's epsilon, added to sqrt(v_hat)"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "matrix_epsilon", TP_HPARAM_FLOAT, 1e-12, 1e-30, 1.0,
     "added to the eigenvalues of L / (1 - b2^t) and R / (1 - b2^t) before the -1/4 power"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "precondition_frequency", TP_HPARAM_INT, 100.0, 1.0,
     1e9, "recompute the inverse roots every this many steps"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "start_preconditioning_step", TP_HPARAM_INT, 100.0,
     1.0, 1e12, "first step (1-based) that computes roots and takes the Shampoo direction"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "max_preconditioner_dim", TP_HPARAM_INT, 128.0, 1.0,
     8192.0, "block size: weights are split into blocks of at most this many rows and columns"},
    SUB_LOSS_HPARAM_DECLS,
};

/* ---------------------------------------------------------------------------------------- */
/* State */

/* One Kronecker block: rows x cols of a row-major weight whose rows are `ld` floats long. */
typedef struct shampoo_block {
    uint64_t base;        /* offset in floats of element (0, 0) of the block in the flat buffer */
    uint32_t ld;          /* row stride of the weight (its shape[1]) */
    uint32_t rows, cols;  /* block shape */
    double *L, *R;        /* (rows, rows), (cols, cols) statistics, not bias-corrected */
    double *UL, *UR;      /* eigenvectors (columns) of the last root step, row-major */
    double *wL, *wR;      /* (rows), (cols) lifted eigenvalues w' of the last root step */
    float *Lroot, *Rroot; /* L^{-1/4}, R^{-1/4} of the last root step */
    int has_root;         /* a root step has succeeded */
    int used_shampoo;     /* the last update took the Shampoo direction */
    double scale;         /* the graft scale s of the last update */
} shampoo_block;

/* A run of the flat buffer that only ever takes the graft direction. */
typedef struct shampoo_range {
    uint64_t offset, numel;
} shampoo_range;

typedef struct shampoo_state {
    uint64_t n;          /* floats in the parameter buffer */
    uint64_t t;          /* updates taken */
    float *grad, *m, *v; /* (n) each */

    shampoo_block *blocks;
    uint32_t num_blocks;
    shampoo_range *ranges; /* graft-only runs, in order */
    uint32_t num_ranges;

    void *table;      /* blocks and ranges, one allocation */
    double *darena;   /* all double buffers */
    float *farena;    /* all float buffers */
    double *dscratch; /* (maxdim^2 + maxdim) one root's eigendecomposition */
    float *fs[5];     /* (maxsq) each: scratch matrices */

    double lr, beta1, beta2, wd, eps, matrix_eps;
    uint64_t freq, start, block_dim;
    tp_loss_opts loss_opts;
} shampoo_state;

/* ---------------------------------------------------------------------------------------- */
/* Layout: which tensors are blocked, and the graft-only runs between them */

typedef struct kron_tensor {
    uint64_t offset;
    uint32_t rows, cols;
} kron_tensor;

static uint32_t pieces(uint32_t dim, uint32_t block)
{
    return (dim + block - 1) / block;
}

static uint32_t piece_len(uint32_t dim, uint32_t block, uint32_t k)
{
    uint32_t left = dim - k * block;
    return left < block ? left : block;
}

/* The 2-D WEIGHT tensors, sorted by offset, into kt (room for `cap`); their count in *num.
 * Tensors whose info does not describe a well-formed matrix inside the buffer are left to the
 * graft; overlapping matrices are a host error. */
static int find_matrices(const tp_host *host, tp_ctx *ctx, uint64_t n, kron_tensor *kt,
                         uint32_t cap, uint32_t *num, tp_error *err)
{
    const uint32_t count = host->param_tensor_count(ctx);
    *num = 0;
    for (uint32_t i = 0; i < count; i++) {
        tp_tensor_info info;
        TP_STRUCT_INIT(&info, tp_tensor_info);
        int rc = host->param_tensor_info(ctx, i, &info);
        if (rc != TP_OK)
            return sub_fail(err, ID, rc, "host->param_tensor_info(%u) failed: %s", i,
                            tp_strerror(rc));
        if (info.role != TP_PARAM_ROLE_WEIGHT || info.ndim != 2)
            continue;
        const uint64_t rows = info.shape[0], cols = info.shape[1];
        if (rows == 0 || cols == 0 || rows * cols != info.numel || info.offset > n ||
            info.numel > n - info.offset)
            continue;
        if (*num == cap) {
            host->log(ctx, TP_LOG_WARN,
                      ID ": more than %u weight matrices; \"%s\" and later ones take the Adam "
                         "graft alone",
                      cap, info.name != NULL ? info.name : "?");
            break;
        }
        uint32_t k = (*num)++;
        while (k > 0 && kt[k - 1].offset > info.offset) {
            kt[k] = kt[k - 1];
            k--;
        }
        kt[k] = (kron_tensor){info.offset, (uint32_t)rows, (uint32_t)cols};
    }
    for (uint32_t k = 1; k < *num; k++)
        if (kt[k - 1].offset + (uint64_t)kt[k - 1].rows * kt[k - 1].cols > kt[k].offset)
            return sub_fail(err, ID, TP_ESTATE,
                            "weight tensors at offsets %llu and %llu overlap in the parameter "
                            "buffer",
                            (unsigned long long)kt[k - 1].offset, (unsigned long long)kt[k].offset);
    return TP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers */

/* dst (rows, cols) contiguous = the block of src (a flat-buffer-shaped array). */
static void gather(const shampoo_block *b, const float *src, float *dst)
{
    for (uint32_t i = 0; i < b->rows; i++)
        memcpy(dst + (size_t)i * b->cols, src + b->base + (uint64_t)i * b->ld,
               b->cols * sizeof(float));
}

/* S = b2 S + c2 P, P (k, k) float, S double. */
static void ema_into(uint32_t k, double *S, const float *P, double b2, double c2)
{
    const size_t kk = (size_t)k * k;
    for (size_t i = 0; i < kk; i++)
        S[i] = b2 * S[i] + c2 * (double)P[i];
}

/* out (k, k) = U diag(w^power)^2 U^T = U diag(w^(2 power)) U^T, as the float product B B^T
 * with B = U diag(w^power) in `tmp`. */
static int spectral_power(const tp_host *host, uint32_t k, const double *U, const double *w,
                          double power, float *tmp, float *out)
{
    for (uint32_t j = 0; j < k; j++) {
        const double f = pow(w[j], power);
        for (uint32_t i = 0; i < k; i++)
            tmp[(size_t)i * k + j] = (float)(U[(size_t)i * k + j] * f);
    }
    return host->gemm(0, 1, k, k, k, 1.0f, tmp, tmp, 0.0f, out);
}

/* One factor's root step: eigendecompose S / bc2 into the scratch, and on success keep U and the
 * lifted w' and form root = U diag(w')^{-1/4} U^T. A failure to converge keeps the previous
 * root and returns TP_ERANGE after logging. */
static int factor_root(const shampoo_state *s, const tp_host *host, tp_ctx *ctx, uint32_t k,
                       const double *S, double bc2, double *U, double *w, float *root,
                       tp_error *err)
{
    const size_t kk = (size_t)k * k;
    double *su = s->dscratch, *sw = s->dscratch + kk;
    for (size_t i = 0; i < kk; i++) {
        if (!isfinite(S[i]))
            return sub_fail(err, ID, TP_ENONFINITE,
                            "a Kronecker statistic (%u x %u) holds a non-finite value at step "
                            "%llu: the gradients were not finite",
                            k, k, (unsigned long long)s->t + 1);
        su[i] = S[i] / bc2;
    }
    int rc = host->sym_eig(k, su, sw);
    if (rc == TP_ERANGE) {
        host->log(ctx, TP_LOG_WARN,
                  ID ": LAPACK dsyevd did not converge on a %u x %u statistic at step %llu; "
                     "keeping the previous root",
                  k, k, (unsigned long long)s->t + 1);
        return TP_ERANGE;
    }
    if (rc != TP_OK)
        return sub_fail(err, ID, rc, "host->sym_eig(%u) failed: %s", k, tp_strerror(rc));
    const double shift = sw[0] < 0.0 ? -sw[0] : 0.0; /* ascending: sw[0] is the smallest */
    for (uint32_t j = 0; j < k; j++)
        w[j] = sw[j] + shift + s->matrix_eps;
    memcpy(U, su, kk * sizeof(double));
    rc = spectral_power(host, k, U, w, -0.125, s->fs[0], root);
    if (rc != TP_OK)
        return sub_fail(err, ID, rc, "host->gemm failed: %s", tp_strerror(rc));
    return TP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Entry points */

static int shampoo_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    double omb1 = 0.0, freq = 0.0, start = 0.0, bdim = 0.0;
    uint64_t n = 0;
    shampoo_state *s = NULL;
    kron_tensor kt[SHAMPOO_MAX_MATRICES];
    uint32_t nkt = 0;
    int rc;

    if ((rc = sub_init_params(host, ctx, ID, &n, err)) != TP_OK)
        return rc;
    if (!TP_FIELD_PRESENT(host, tp_host, sym_eig) || host->sym_eig == NULL)
        return sub_fail(err, ID, TP_EABI,
                        "the host has no sym_eig (SDK 1.1): Shampoo's inverse roots need it; "
                        "run it with a trainperf built with SDK 1.1 or later");
    s = host->alloc(ctx, sizeof *s);
    if (s == NULL)
        return sub_fail(err, ID, TP_ENOMEM, "out of memory for the state");
    s->n = n;
    if ((rc = sub_hparam(host, ctx, ID, "learning_rate", &s->lr, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "one_minus_beta1", &omb1, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "beta2", &s->beta2, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "weight_decay", &s->wd, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "epsilon", &s->eps, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "matrix_epsilon", &s->matrix_eps, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "precondition_frequency", &freq, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "start_preconditioning_step", &start, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "max_preconditioner_dim", &bdim, err)) != TP_OK ||
        (rc = sub_loss_opts(host, ctx, ID, &s->loss_opts, err)) != TP_OK)
        goto error;
    s->beta1 = 1.0 - omb1;
    if (!(freq >= 1.0 && start >= 1.0 && bdim >= 1.0 && bdim <= 8192.0 && s->matrix_eps > 0.0)) {
        rc = sub_fail(err, ID, TP_ERANGE,
                      "precondition_frequency (%g), start_preconditioning_step (%g) and "
                      "max_preconditioner_dim (%g) must be >= 1 (the last <= 8192), "
                      "matrix_epsilon (%g) > 0",
                      freq, start, bdim, s->matrix_eps);
        goto error;
    }
    s->freq = (uint64_t)llround(freq);
    s->start = (uint64_t)llround(start);
    s->block_dim = (uint64_t)llround(bdim);

    /* The blocks and the graft-only runs between the blocked matrices. */
    if ((rc = find_matrices(host, ctx, n, kt, sizeof kt / sizeof kt[0], &nkt, err)) != TP_OK)
        goto error;
    const uint32_t bd = (uint32_t)s->block_dim;
    uint64_t nblocks = 0, dsize = 0, fsize = 3 * n, maxdim = 0, maxsq = 0;
    for (uint32_t k = 0; k < nkt; k++) {
        for (uint32_t bi = 0; bi < pieces(kt[k].rows, bd); bi++) {
            for (uint32_t bj = 0; bj < pieces(kt[k].cols, bd); bj++) {
                const uint64_t r = piece_len(kt[k].rows, bd, bi), c = piece_len(kt[k].cols, bd, bj);
                const uint64_t d = r > c ? r : c;
                nblocks++;
                dsize += 2 * (r * r + c * c) + r + c;
                fsize += r * r + c * c;
                maxdim = d > maxdim ? d : maxdim;
                maxsq = d * d > maxsq ? d * d : maxsq;
            }
        }
    }
    s->num_blocks = (uint32_t)nblocks;
    s->table =
        host->alloc(ctx, nblocks * sizeof(shampoo_block) + (nkt + 1) * sizeof(shampoo_range));
    if (s->table == NULL) {
        rc = sub_fail(err, ID, TP_ENOMEM, "out of memory for the block table (%llu blocks)",
                      (unsigned long long)nblocks);
        goto error;
    }
    s->blocks = s->table;
    s->ranges = (shampoo_range *)(s->blocks + nblocks);
    if (nblocks > 0) {
        dsize += maxdim * maxdim + maxdim;
        s->darena = host->alloc(ctx, dsize * sizeof(double));
        if (s->darena == NULL) {
            rc = sub_fail(err, ID, TP_ENOMEM,
                          "out of memory for the Kronecker statistics (%llu doubles)",
                          (unsigned long long)dsize);
            goto error;
        }
    }
    fsize += 5 * maxsq;
    s->farena = host->alloc(ctx, fsize * sizeof(float));
    if (s->farena == NULL) {
        rc =
            sub_fail(err, ID, TP_ENOMEM, "out of memory for grad, m, v and the roots (%llu floats)",
                     (unsigned long long)fsize);
        goto error;
    }

    /* Carve the arenas (zeroed by the host: L = R = 0, m = v = 0). */
    double *dp = s->darena;
    float *fp = s->farena;
    s->grad = fp, fp += n;
    s->m = fp, fp += n;
    s->v = fp, fp += n;
    uint64_t prev_end = 0;
    shampoo_block *b = s->blocks;
    for (uint32_t k = 0; k < nkt; k++) {
        if (kt[k].offset > prev_end)
            s->ranges[s->num_ranges++] = (shampoo_range){prev_end, kt[k].offset - prev_end};
        prev_end = kt[k].offset + (uint64_t)kt[k].rows * kt[k].cols;
        for (uint32_t bi = 0; bi < pieces(kt[k].rows, bd); bi++) {
            for (uint32_t bj = 0; bj < pieces(kt[k].cols, bd); bj++, b++) {
                const uint32_t r = piece_len(kt[k].rows, bd, bi), c = piece_len(kt[k].cols, bd, bj);
                b->base = kt[k].offset + (uint64_t)bi * bd * kt[k].cols + (uint64_t)bj * bd;
                b->ld = kt[k].cols;
                b->rows = r;
                b->cols = c;
                b->L = dp, dp += (size_t)r * r;
                b->R = dp, dp += (size_t)c * c;
                b->UL = dp, dp += (size_t)r * r;
                b->UR = dp, dp += (size_t)c * c;
                b->wL = dp, dp += r;
                b->wR = dp, dp += c;
                b->Lroot = fp, fp += (size_t)r * r;
                b->Rroot = fp, fp += (size_t)c * c;
            }
        }
    }
    if (n > prev_end)
        s->ranges[s->num_ranges++] = (shampoo_range){prev_end, n - prev_end};
    s->dscratch = dp;
    for (int k = 0; k < 5; k++)
        s->fs[k] = fp, fp += maxsq;

    uint64_t blocked = 0;
    for (uint32_t k = 0; k < nkt; k++)
        blocked += (uint64_t)kt[k].rows * kt[k].cols;
    host->log(ctx, TP_LOG_INFO,
              ID ": %u Kronecker blocks over %u weight matrices (block size %llu, largest "
                 "factor %llu); %llu of %llu parameters take the Adam graft alone",
              s->num_blocks, nkt, (unsigned long long)s->block_dim, (unsigned long long)maxdim,
              (unsigned long long)(n - blocked), (unsigned long long)n);
    *state = s;
    return TP_OK;

error:
    host->free(ctx, s->farena);
    host->free(ctx, s->darena);
    host->free(ctx, s->table);
    host->free(ctx, s);
    return rc;
}

/* theta -= lr_t (A + wd theta) over `count` floats at `off`: Adam's step, as adamw's loop. */
static void graft_step(const shampoo_state *s, const adam_scalars *a, float step, float decay,
                       float *theta, uint64_t off, uint64_t count)
{
    float *restrict p = theta + off;
    const float *restrict m = s->m + off;
    const float *restrict v = s->v + off;
    for (uint64_t i = 0; i < count; i++)
        p[i] -= step * m[i] / adam_denom(v[i], a->rs2, a->eps) + decay * p[i];
}

/* The Shampoo direction of one block, grafted onto Adam's norm, applied to theta. */
static int block_step(const shampoo_state *s, const tp_host *host, shampoo_block *b,
                      const adam_scalars *a, double lr_t, float decay, float *theta, tp_error *err)
{
    const uint32_t r = b->rows, c = b->cols;
    float *mb = s->fs[1], *d1 = s->fs[2], *d = s->fs[3];
    int rc;

    gather(b, s->m, mb);
    if ((rc = host->gemm(0, 0, r, c, r, 1.0f, b->Lroot, mb, 0.0f, d1)) != TP_OK ||
        (rc = host->gemm(0, 0, r, c, c, 1.0f, d1, b->Rroot, 0.0f, d)) != TP_OK)
        return sub_fail(err, ID, rc, "host->gemm failed: %s", tp_strerror(rc));

    /* ||A|| and ||D|| with D = L^{-1/4} m_hat R^{-1/4} = d / (1 - b1^t). */
    double na = 0.0, nd = 0.0;
    for (uint32_t i = 0; i < r; i++) {
        const uint64_t row = b->base + (uint64_t)i * b->ld;
        for (uint32_t j = 0; j < c; j++) {
            const double ai = (double)s->m[row + j] /
                              (a->bc1 * (double)adam_denom(s->v[row + j], a->rs2, a->eps));
            const double di = (double)d[(size_t)i * c + j];
            na += ai * ai;
            nd += di * di;
        }
    }
    const double scale = sqrt(na) / (sqrt(nd) / a->bc1 + SHAMPOO_NORM_EPS);
    const float step = (float)(lr_t * scale / a->bc1);
    for (uint32_t i = 0; i < r; i++) {
        float *restrict p = theta + b->base + (uint64_t)i * b->ld;
        const float *restrict di = d + (size_t)i * c;
        for (uint32_t j = 0; j < c; j++)
            p[j] -= step * di[j] + decay * p[j];
    }
    b->scale = scale;
    b->used_shampoo = 1;
    return TP_OK;
}

static int shampoo_update(void *state, const tp_host *host, tp_ctx *ctx, const tp_update_args *args,
                          tp_error *err)
{
    shampoo_state *s = state;
    int rc;

    float *theta = sub_update_begin(host, ctx, ID, args, s->n, &s->loss_opts, s->grad, err, &rc);
    if (theta == NULL)
        return rc;

    const uint64_t t = s->t + 1;
    const double lr_t = s->lr * args->lr_factor;
    const adam_scalars a = adam_scalars_at(s->beta1, s->beta2, s->eps, t);
    const int root_due = t == s->start || (t > s->start && t % s->freq == 0);
    const double c2 = 1.0 - s->beta2;

    /* Statistics every step, roots when due (both from this step's gradient). */
    for (uint32_t k = 0; k < s->num_blocks; k++) {
        shampoo_block *b = &s->blocks[k];
        float *gb = s->fs[1], *prod = s->fs[2];
        gather(b, s->grad, gb);
        if ((rc = host->gemm(0, 1, b->rows, b->rows, b->cols, 1.0f, gb, gb, 0.0f, prod)) != TP_OK)
            return sub_fail(err, ID, rc, "host->gemm failed: %s", tp_strerror(rc));
        ema_into(b->rows, b->L, prod, s->beta2, c2);
        if ((rc = host->gemm(1, 0, b->cols, b->cols, b->rows, 1.0f, gb, gb, 0.0f, prod)) != TP_OK)
            return sub_fail(err, ID, rc, "host->gemm failed: %s", tp_strerror(rc));
        ema_into(b->cols, b->R, prod, s->beta2, c2);
        if (root_due) {
            int rl = factor_root(s, host, ctx, b->rows, b->L, a.bc2, b->UL, b->wL, b->Lroot, err);
            if (rl != TP_OK && rl != TP_ERANGE)
                return rl;
            int rr = factor_root(s, host, ctx, b->cols, b->R, a.bc2, b->UR, b->wR, b->Rroot, err);
            if (rr != TP_OK && rr != TP_ERANGE)
                return rr;
            /* Both factors must come from one root step for the block to start. */
            if (rl == TP_OK && rr == TP_OK)
                b->has_root = 1;
        }
    }

    /* The moments, one flat loop. */
    {
        float *restrict m = s->m;
        float *restrict v = s->v;
        const float *restrict g = s->grad;
        for (uint64_t i = 0; i < s->n; i++) {
            m[i] = a.b1 * m[i] + a.c1 * g[i];
            v[i] = a.b2 * v[i] + a.c2 * (g[i] * g[i]);
        }
    }

    /* The directions. */
    const float step = (float)(lr_t / a.bc1);
    const float decay = (float)(lr_t * s->wd);
    for (uint32_t k = 0; k < s->num_ranges; k++)
        graft_step(s, &a, step, decay, theta, s->ranges[k].offset, s->ranges[k].numel);
    for (uint32_t k = 0; k < s->num_blocks; k++) {
        shampoo_block *b = &s->blocks[k];
        if (t >= s->start && b->has_root) {
            if ((rc = block_step(s, host, b, &a, lr_t, decay, theta, err)) != TP_OK)
                return rc;
        } else {
            for (uint32_t i = 0; i < b->rows; i++)
                graft_step(s, &a, step, decay, theta, b->base + (uint64_t)i * b->ld, b->cols);
            b->used_shampoo = 0;
        }
    }
    s->t = t;
    return TP_OK;
}

/* out = P^{-1/2} x for the P of the last update; see the file comment. */
static int shampoo_precondition(void *state, const tp_host *host, tp_ctx *ctx, const float *x,
                                float *out, tp_error *err)
{
    const shampoo_state *s = state;
    int rc;

    if (x == NULL || out == NULL)
        return sub_fail(err, ID, TP_EINVAL, "precondition: NULL vector");
    if (s->t == 0)
        return sub_fail(err, ID, TP_ESTATE,
                        "precondition: no update taken yet, so the preconditioner is undefined; "
                        "call it after update");
    const adam_scalars a = adam_scalars_at(s->beta1, s->beta2, s->eps, s->t);
    for (uint32_t k = 0; k < s->num_ranges; k++) {
        const uint64_t off = s->ranges[k].offset;
        adam_precondition(s->ranges[k].numel, s->v + off, &a, 1.0, x + off, out + off);
    }
    for (uint32_t k = 0; k < s->num_blocks; k++) {
        const shampoo_block *b = &s->blocks[k];
        const uint32_t r = b->rows, c = b->cols;
        if (!b->used_shampoo) {
            for (uint32_t i = 0; i < r; i++) {
                const uint64_t off = b->base + (uint64_t)i * b->ld;
                adam_precondition(c, s->v + off, &a, 1.0, x + off, out + off);
            }
            continue;
        }
        /* sqrt(s / (1 - b1^t)) L^{-1/8} X R^{-1/8}, the powers from the kept eigenpairs. */
        float *lh = s->fs[0], *rh = s->fs[1], *xb = s->fs[2], *d1 = s->fs[3], *tmp = s->fs[4];
        if ((rc = spectral_power(host, r, b->UL, b->wL, -0.0625, tmp, lh)) != TP_OK ||
            (rc = spectral_power(host, c, b->UR, b->wR, -0.0625, tmp, rh)) != TP_OK)
            return sub_fail(err, ID, rc, "precondition: host->gemm failed: %s", tp_strerror(rc));
        gather(b, x, xb);
        if ((rc = host->gemm(0, 0, r, c, r, 1.0f, lh, xb, 0.0f, d1)) != TP_OK ||
            (rc = host->gemm(0, 0, r, c, c, 1.0f, d1, rh, 0.0f, xb)) != TP_OK)
            return sub_fail(err, ID, rc, "precondition: host->gemm failed: %s", tp_strerror(rc));
        const double f = sqrt(b->scale / a.bc1);
        for (uint32_t i = 0; i < r; i++)
            for (uint32_t j = 0; j < c; j++)
                out[b->base + (uint64_t)i * b->ld + j] = (float)(f * xb[(size_t)i * c + j]);
    }
    return TP_OK;
}

static void shampoo_destroy(void *state, const tp_host *host, tp_ctx *ctx)
{
    shampoo_state *s = state;
    if (s == NULL)
        return;
    host->free(ctx, s->farena);
    host->free(ctx, s->darena);
    host->free(ctx, s->table);
    host->free(ctx, s);
}

/* ---------------------------------------------------------------------------------------- */
/* Discovery */

static const tp_plugin_desc shampoo_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "shampoo",
    .kind = TP_PLUGIN_OPTIMIZER,
    .description = "blocked Shampoo (L^-1/4 G R^-1/4) grafted onto Adam, decoupled weight decay",
    .hparams = shampoo_hparams,
    .num_hparams = sizeof shampoo_hparams / sizeof shampoo_hparams[0],
    .init = shampoo_init,
    .update = shampoo_update,
    .precondition = shampoo_precondition,
    .destroy = shampoo_destroy,
};

TP_PLUGIN_ENTRY(i)
{
    return i == 0 ? &shampoo_desc : NULL;
}
