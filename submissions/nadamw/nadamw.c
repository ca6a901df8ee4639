/*
 * nadamw.c - the NAdamW baseline, optimizer id "nadamw": AlgoPerf's current baseline
 * (prize_qualification_baselines/external_tuning/jax_nadamw_full_budget.py, forked from
 * init2winit): Adam with a Nesterov look-ahead in the numerator (Dozat's NAdam without momentum
 * decay, with Adam's bias correction; arXiv 1910.05446, Table 1) and decoupled weight decay
 * scaled by the learning rate.
 * With t counting updates from 1, m and v starting at 0:
 *
 *     m     = b1 m + (1 - b1) g                     v     = b2 v + (1 - b2) g^2
 *     m_hat = (b1 m + (1 - b1) g) / (1 - b1^t)       v_hat = v / (1 - b2^t)
 *     theta -= lr_t * (m_hat / (sqrt(v_hat) + eps) + weight_decay * theta)
 *
 * (m in m_hat is the NEW m: the look-ahead applies the momentum step once more to the
 * gradient.) lr_t = learning_rate * lr_factor (the schedule's factor; meant for
 * warmup_cosine) and b1 = 1 - one_minus_beta1. Weight decay applies to ALL parameters, biases
 * and norm scales included: the reference builds add_decayed_weights(weight_decay, mask=None);
 * the update reads no tensor roles. It differs from AdamW only in the numerator (AdamW divides
 * m itself); at t = 1 NAdamW's step is (1 + b1) times AdamW's before the decay.
 *
 * How it is computed: the step's scalars (1 - b1^t, 1 - b2^t, lr_t) once in double, then one
 * fused flat loop in float:
 *     theta -= (lr_t / (1 - b1^t)) (b1 m + (1 - b1) g) / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *              + lr_t wd theta,
 * the formula above rearranged, with eps outside the root added to the bias-corrected root
 * (adam.h's adam_denom, the same expression as AdamW's).
 *
 * Preconditioner (the optional `precondition` hook, BENCHMARK.md section 9): the update is
 * theta -= lr_t * P^{-1} (b1 m_t + (1 - b1) g_t) (+ decay) with, elementwise,
 *     P_t = (1 - b1^t) * (sqrt(v_t / (1 - b2^t)) + eps),
 * the same P as AdamW's (only the momentum it divides differs); t and v_t are those of the last
 * update. The hook returns P_t^{-1/2} x through adam.h's adam_precondition; TP_ESTATE before
 * the first update (P is undefined at t = 0).
 *
 * Not here: NAdam's momentum-decay schedule (mu_t), eps_root, gradient clipping (the
 * reference's grad_clip is off unless a hyperparameter sets it; none of its search spaces do).
 * State: grad, m and v, num_params floats each, allocated at init with host->alloc.
 */
#include <math.h>
#include <stdio.h>

#include <trainperf/trainperf.h>

#include "../common/adam.h"
#include "../common/plugin_util.h"

#define ID "nadamw"

/* ---------------------------------------------------------------------------------------- */
/* Hyperparameters and state (adam.h) */

static const tp_hparam_decl nadamw_hparams[] = {ADAM_HPARAM_DECLS, SUB_LOSS_HPARAM_DECLS};

/* ---------------------------------------------------------------------------------------- */
/* Entry points */

static int nadamw_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    return adam_state_create(host, ctx, ID, state, err);
}

static int nadamw_update(void *state, const tp_host *host, tp_ctx *ctx, const tp_update_args *args,
                         tp_error *err)
{
    adam_state *s = state;
    int rc;
    float *theta = sub_update_begin(host, ctx, ID, args, s->n, &s->loss_opts, s->grad, err, &rc);
    if (theta == NULL)
        return rc;

    /* Per-step scalars, in double, once. */
    const uint64_t t = s->t + 1;
    const double lr_t = s->lr * args->lr_factor;
    const adam_scalars a = adam_scalars_at(s->beta1, s->beta2, s->eps, t);
    const float step = (float)(lr_t / a.bc1);  /* lr_t / (1 - b1^t) */
    const float decay = (float)(lr_t * s->wd); /* lr_t * weight_decay */

    /* One fused flat loop over the whole buffer. */
    float *restrict p = theta;
    float *restrict m = s->m;
    float *restrict v = s->v;
    const float *restrict g = s->grad;
    const uint64_t n = s->n;
    for (uint64_t i = 0; i < n; i++) {
        const float mi = a.b1 * m[i] + a.c1 * g[i];
        const float vi = a.b2 * v[i] + a.c2 * (g[i] * g[i]);
        const float look = a.b1 * mi + a.c1 * g[i]; /* the Nesterov look-ahead numerator */
        m[i] = mi;
        v[i] = vi;
        p[i] -= step * look / adam_denom(vi, a.rs2, a.eps) + decay * p[i];
    }
    s->t = t;
    return TP_OK;
}

/* out = P_t^{-1/2} x, P_t = (1 - b1^t) (sqrt(v_t / (1 - b2^t)) + eps); see the file comment. */
static int nadamw_precondition(void *state, const tp_host *host, tp_ctx *ctx, const float *x,
                               float *out, tp_error *err)
{
    return adam_state_precondition(state, ID, x, out, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Discovery */

static const tp_plugin_desc nadamw_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "nadamw",
    .kind = TP_PLUGIN_OPTIMIZER,
    .description = "NAdamW (AlgoPerf's baseline): Nesterov look-ahead Adam, decoupled decay",
    .hparams = nadamw_hparams,
    .num_hparams = sizeof nadamw_hparams / sizeof nadamw_hparams[0],
    .init = nadamw_init,
    .update = nadamw_update,
    .precondition = nadamw_precondition,
    .destroy = adam_state_destroy,
};

TP_PLUGIN_ENTRY(i)
{
    return i == 0 ? &nadamw_desc : NULL;
}
