/*
 * adamw.c - the AdamW baseline (Loshchilov & Hutter), optimizer id "adamw", with bias
 * correction and decoupled weight decay scaled by the learning rate, as PyTorch's AdamW and
 * optax.adamw (AlgoPerf's baseline) do it. With t counting updates from 1:
 *
 *     m     = b1 m + (1 - b1) g                      m_hat = m / (1 - b1^t)
 *     v     = b2 v + (1 - b2) g^2                    v_hat = v / (1 - b2^t)
 *     theta -= lr_t * (m_hat / (sqrt(v_hat) + eps) + weight_decay * theta)
 *
 * lr_t = learning_rate * lr_factor (the schedule's factor) and b1 = 1 - one_minus_beta1.
 * Weight decay applies to ALL parameters, biases and norm scales included, as in AlgoPerf's
 * AdamW baseline; the update reads no tensor roles.
 *
 * How it is computed: the scalars that depend on the step (1 - b1^t, 1 - b2^t, lr_t) are
 * computed once per step in double; the elementwise work is one fused flat loop in float:
 *     theta -= (lr_t / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) + lr_t wd theta,
 * which is the formula above rearranged (same placement of eps: outside the root, added to
 * the bias-corrected root).
 *
 * Preconditioner (the optional `precondition` hook, BENCHMARK.md section 9): the update is
 * theta -= lr_t * m / P (+ decay) with, elementwise,
 *     P_t = (1 - b1^t) * (sqrt(v_t / (1 - b2^t)) + eps),
 * where t and v_t are those of the last update taken. The hook returns P_t^{-1/2} x with the
 * root term computed by the very expression the update uses. It is the frozen-P view of the
 * Adaptive Edge of Stability paper: the next update's P differs from P_t only by the new
 * gradient's contribution to v, which nobody can know before that gradient exists. Before the
 * first update (t = 0) P is undefined (1 - b1^0 = 0 and v = 0): the hook returns TP_ESTATE.
 *
 * Not here: NAdamW, AMSGrad, per-tensor decay masks, non-finite loss detection (the host's).
 * State: grad, m and v, num_params floats each, allocated at init with host->alloc.
 */
#include <math.h>
#include <stdio.h>

#include <trainperf/trainperf.h>

#include "../common/adam.h"
#include "../common/plugin_util.h"

#define ID "adamw"

/* ---------------------------------------------------------------------------------------- */
/* Hyperparameters and state (adam.h) */

static const tp_hparam_decl adamw_hparams[] = {ADAM_HPARAM_DECLS, SUB_LOSS_HPARAM_DECLS};

/* ---------------------------------------------------------------------------------------- */
/* Entry points */

static int adamw_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    return adam_state_create(host, ctx, ID, state, err);
}

static int adamw_update(void *state, const tp_host *host, tp_ctx *ctx, const tp_update_args *args,
                        tp_error *err)
{
    adam_state *s = state;
    int rc;
    float *theta = sub_update_begin(host, ctx, ID, args, s->n, &s->loss_opts, s->grad, err, &rc);
    if (theta == NULL)
        return rc;

    /* Per-step scalars in double, once; then one fused flat loop over the whole buffer. */
    const uint64_t t = s->t + 1;
    const double lr_t = s->lr * args->lr_factor;
    const adam_scalars a = adam_scalars_at(s->beta1, s->beta2, s->eps, t);
    adam_step(s->n, &a, (float)(lr_t / a.bc1), (float)(lr_t * s->wd), theta, s->m, s->v, s->grad);
    s->t = t;
    return TP_OK;
}

/* out = P_t^{-1/2} x, P_t = (1 - b1^t) (sqrt(v_t / (1 - b2^t)) + eps); see the file comment. */
static int adamw_precondition(void *state, const tp_host *host, tp_ctx *ctx, const float *x,
                              float *out, tp_error *err)
{
    return adam_state_precondition(state, ID, x, out, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Discovery */

static const tp_plugin_desc adamw_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "adamw",
    .kind = TP_PLUGIN_OPTIMIZER,
    .description = "AdamW with bias correction and lr-scaled decoupled weight decay",
    .hparams = adamw_hparams,
    .num_hparams = sizeof adamw_hparams / sizeof adamw_hparams[0],
    .init = adamw_init,
    .update = adamw_update,
    .precondition = adamw_precondition,
    .destroy = adam_state_destroy,
};

TP_PLUGIN_ENTRY(i)
{
    return i == 0 ? &adamw_desc : NULL;
}
