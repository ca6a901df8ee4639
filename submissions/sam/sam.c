/*
 * sam.c - Sharpness-Aware Minimization (Foret et al. 2021) with AdamW inside, optimizer id
 * "sam", as AlgoPerf's archived paper baseline runs it (algorithms/archived_paper_baselines/sam:
 * init2winit's sharpness_aware_minimization around optax.adamw; PyTorch: davda54/sam around
 * torch.optim.AdamW). Per update, on ONE batch:
 *
 *     g1    = grad L(theta)                             (host->loss_and_grad, params NULL)
 *     e     = rho g1 / ||g1||                           global L2 norm over all parameters
 *     g2    = grad L(theta + e)                         same batch, same loss options
 *     AdamW with g2, exactly as adamw.c (t counting updates from 1):
 *     m     = b1 m + (1 - b1) g2                     m_hat = m / (1 - b1^t)
 *     v     = b2 v + (1 - b2) g2^2                   v_hat = v / (1 - b2^t)
 *     theta -= lr_t * (m_hat / (sqrt(v_hat) + eps) + weight_decay * theta)
 *
 * lr_t = learning_rate * lr_factor, b1 = 1 - one_minus_beta1. Weight decay applies to ALL
 * parameters (optax.adamw without a mask, as the baseline calls it). theta + e lives in a
 * plugin-owned buffer passed as the `params` argument of loss_and_grad: the parameter buffer is
 * never perturbed and restored, so a failing second gradient leaves it untouched.
 *
 * Ascent direction: the reference divides by the norm with no epsilon (its comment says so), so
 * a zero gradient gives NaN there; here ||g1|| = 0 gives e = 0 (g2 is then the gradient at theta
 * itself, still on a second call, so every update costs exactly two gradients). The baseline's
 * optional grad_clip is absent from its search space and not implemented.
 *
 * What the SDK cannot say: the JAX baseline evaluates g2 with the same dropout rng as g1 and
 * without updating batch-norm statistics. The host seeds each loss_and_grad call on its own, so
 * the two passes see different dropout masks (as in the PyTorch baseline, whose global RNG
 * advances between them), and tp_loss_opts has no "train mode, frozen batch-norm statistics"
 * flag (no trainperf workload has batch norm yet).
 *
 * Preconditioner (the `precondition` hook, BENCHMARK.md section 9): AdamW's, P_t = (1 - b1^t)
 * (sqrt(v_t / (1 - b2^t)) + eps) from the moments of g2, via adam_precondition (adamw.c's file
 * comment says why it is this P). TP_ESTATE before the first update.
 *
 * Not here: adaptive SAM (ASAM), m-sharpness (per-shard perturbations), grad_clip, non-finite
 * detection (the host's). State: grad, pert (theta + e), m and v, num_params floats each,
 * allocated at init with host->alloc.
 */
#include <math.h>
#include <stdio.h>

#include <trainperf/trainperf.h>

#include "../common/adam.h"
#include "../common/plugin_util.h"

#define ID "sam"

/* ---------------------------------------------------------------------------------------- */
/* Hyperparameters and state (the inner AdamW's: adam.h) */

static const tp_hparam_decl sam_hparams[] = {
    ADAM_HPARAM_DECLS,
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "rho", TP_HPARAM_FLOAT, 0.05, 0.0, 10.0,
     "radius of the ascent step: e = rho g / ||g||"},
    SUB_LOSS_HPARAM_DECLS, /* both passes use them */
};

typedef struct sam_state {
    adam_state adam; /* the inner AdamW; adam.grad holds g1, then g2 */
    float *pert;     /* (n) theta + e, where g2 is taken */
    double rho;      /* rho */
} sam_state;

/* ---------------------------------------------------------------------------------------- */
/* The two halves of a step */

/* pert = theta + rho g / ||g||, ||g|| over the whole buffer in double; e = 0 when g = 0. The
 * sum of squares runs in SAM_LANES interleaved partial sums added in a fixed order: the same
 * on every machine, and a loop the compiler vectorises without reassociating anything (a
 * single running sum is a serial chain slower than the rest of the step). */
#define SAM_LANES 8

static void sam_ascent(uint64_t n, double rho, const float *restrict theta, const float *restrict g,
                       float *restrict pert)
{
    double acc[SAM_LANES] = {0}, sumsq = 0.0;
    uint64_t i = 0;
    for (; i + SAM_LANES <= n; i += SAM_LANES)
        for (int l = 0; l < SAM_LANES; l++)
            acc[l] += (double)g[i + l] * g[i + l];
    for (; i < n; i++)
        acc[0] += (double)g[i] * g[i];
    for (int l = 0; l < SAM_LANES; l++)
        sumsq += acc[l];
    const double norm = sqrt(sumsq);
    const float scale = norm > 0.0 ? (float)(rho / norm) : 0.0f;
    for (i = 0; i < n; i++)
        pert[i] = theta[i] + scale * g[i];
}

/* ---------------------------------------------------------------------------------------- */
/* Entry points */

static int sam_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    uint64_t n = 0;
    sam_state *s;
    int rc;

    if ((rc = sub_init_params(host, ctx, ID, &n, err)) != TP_OK)
        return rc;
    if ((s = host->alloc(ctx, sizeof *s)) == NULL)
        return sub_fail(err, ID, TP_ENOMEM, "out of memory for the state");
    if ((rc = sub_hparam(host, ctx, ID, "rho", &s->rho, err)) != TP_OK ||
        (rc = adam_state_init(host, ctx, ID, n, &s->adam, err)) != TP_OK)
        goto error;
    if ((s->pert = host->alloc(ctx, n * sizeof(float))) == NULL) {
        rc = sub_fail(err, ID, TP_ENOMEM, "out of memory for theta + e (%llu floats)",
                      (unsigned long long)n);
        adam_state_free(host, ctx, &s->adam);
        goto error;
    }
    *state = s;
    return TP_OK;

error:
    host->free(ctx, s);
    return rc;
}

static int sam_update(void *state, const tp_host *host, tp_ctx *ctx, const tp_update_args *args,
                      tp_error *err)
{
    sam_state *s = state;
    adam_state *A = &s->adam;
    double loss = 0.0;
    int rc;

    /* g1 at theta, the ascent point theta + e, g2 there on the same batch. Nothing of the
     * state or of theta changes before both gradients are in. */
    float *theta = sub_update_begin(host, ctx, ID, args, A->n, &A->loss_opts, A->grad, err, &rc);
    if (theta == NULL)
        return rc;
    sam_ascent(A->n, s->rho, theta, A->grad, s->pert);
    if ((rc = sub_grad(host, ctx, ID, s->pert, args->batch, &A->loss_opts, A->grad, &loss, err)) !=
        TP_OK)
        return rc;

    /* AdamW with g2: per-step scalars in double, once, then one fused flat loop. */
    const uint64_t t = A->t + 1;
    const double lr_t = A->lr * args->lr_factor;
    const adam_scalars a = adam_scalars_at(A->beta1, A->beta2, A->eps, t);
    adam_step(A->n, &a, (float)(lr_t / a.bc1), (float)(lr_t * A->wd), theta, A->m, A->v, A->grad);
    A->t = t;
    return TP_OK;
}

/* out = P_t^{-1/2} x, AdamW's P_t of the last update; see the file comment. */
static int sam_precondition(void *state, const tp_host *host, tp_ctx *ctx, const float *x,
                            float *out, tp_error *err)
{
    return adam_state_precondition(&((const sam_state *)state)->adam, ID, x, out, err);
}

static void sam_destroy(void *state, const tp_host *host, tp_ctx *ctx)
{
    sam_state *s = state;
    if (s == NULL)
        return;
    adam_state_free(host, ctx, &s->adam);
    host->free(ctx, s->pert);
    host->free(ctx, s);
}

/* ---------------------------------------------------------------------------------------- */
/* Discovery */

static const tp_plugin_desc sam_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "sam",
    .kind = TP_PLUGIN_OPTIMIZER,
    .description = "SAM (ascent rho g/||g||, gradient there on the same batch) with AdamW inside",
    .hparams = sam_hparams,
    .num_hparams = sizeof sam_hparams / sizeof sam_hparams[0],
    .init = sam_init,
    .update = sam_update,
    .precondition = sam_precondition,
    .destroy = sam_destroy,
};

TP_PLUGIN_ENTRY(i)
{
    return i == 0 ? &sam_desc : NULL;
}
