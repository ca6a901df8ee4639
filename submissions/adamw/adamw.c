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
/* Hyperparameters (AlgoPerf's names; the ranges are the valid domains, not a search space) */

static const tp_hparam_decl adamw_hparams[] = {
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "learning_rate", TP_HPARAM_FLOAT, 1e-3, 1e-6, 10.0,
     "peak step size, before the schedule's factor"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "one_minus_beta1", TP_HPARAM_FLOAT, 0.1, 1e-6, 1.0,
     "1 - beta1 (first-moment decay); 1 gives RMSProp with bias correction"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "beta2", TP_HPARAM_FLOAT, 0.999, 0.0, 0.999999,
     "second-moment decay"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "weight_decay", TP_HPARAM_FLOAT, 0.0, 0.0, 10.0,
     "decoupled weight decay, scaled by lr_t, all parameters"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "epsilon", TP_HPARAM_FLOAT, 1e-8, 1e-12, 1.0,
     "added to sqrt(v_hat), outside the root"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "label_smoothing", TP_HPARAM_FLOAT, 0.0, 0.0, 0.99,
     "label smoothing of the training loss"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "dropout_rate", TP_HPARAM_FLOAT, 0.0, 0.0, 0.99,
     "dropout rate where the model has dropout"},
};

/* ---------------------------------------------------------------------------------------- */
/* State */

typedef struct adamw_state {
    uint64_t n;   /* floats in the parameter buffer */
    uint64_t t;   /* updates taken */
    float *grad;  /* (n) gradient of the current batch */
    float *m;     /* (n) first moment, not bias-corrected */
    float *v;     /* (n) second moment, not bias-corrected */
    double lr;    /* learning_rate */
    double beta1; /* 1 - one_minus_beta1 */
    double beta2; /* beta2 */
    double wd;    /* weight_decay */
    double eps;   /* epsilon */
    tp_loss_opts loss_opts;
} adamw_state;

/* ---------------------------------------------------------------------------------------- */
/* Entry points */

static int adamw_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    double omb1 = 0.0;
    uint64_t n = 0;
    adamw_state *s = NULL;
    int rc;

    if ((rc = sub_init_params(host, ctx, ID, &n, err)) != TP_OK)
        return rc;
    s = host->alloc(ctx, sizeof *s);
    if (s == NULL)
        return sub_fail(err, ID, TP_ENOMEM, "out of memory for the state");
    s->n = n;
    if ((rc = sub_hparam(host, ctx, ID, "learning_rate", &s->lr, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "one_minus_beta1", &omb1, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "beta2", &s->beta2, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "weight_decay", &s->wd, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "epsilon", &s->eps, err)) != TP_OK ||
        (rc = sub_loss_opts(host, ctx, ID, &s->loss_opts, err)) != TP_OK)
        goto error;
    s->beta1 = 1.0 - omb1;

    /* Zeroed by the host: m = v = 0 before the first update. */
    s->grad = host->alloc(ctx, n * sizeof(float));
    s->m = host->alloc(ctx, n * sizeof(float));
    s->v = host->alloc(ctx, n * sizeof(float));
    if (s->grad == NULL || s->m == NULL || s->v == NULL) {
        rc =
            sub_fail(err, ID, TP_ENOMEM, "out of memory for grad, m and v (3 x num_params floats)");
        goto error;
    }
    *state = s;
    return TP_OK;

error:
    host->free(ctx, s->grad);
    host->free(ctx, s->m);
    host->free(ctx, s->v);
    host->free(ctx, s);
    return rc;
}

static int adamw_update(void *state, const tp_host *host, tp_ctx *ctx, const tp_update_args *args,
                        tp_error *err)
{
    adamw_state *s = state;
    double loss = 0.0;
    int rc;

    float *theta = sub_update_params(host, ctx, ID, args, s->n, err, &rc);
    if (theta == NULL)
        return rc;
    if ((rc = sub_grad(host, ctx, ID, NULL, args->batch, &s->loss_opts, s->grad, &loss, err)) !=
        TP_OK)
        return rc;

    /* Per-step scalars, in double, once. */
    const uint64_t t = s->t + 1;
    const double lr_t = s->lr * args->lr_factor;
    const adam_scalars a = adam_scalars_at(s->beta1, s->beta2, s->eps, t);
    const float step = (float)(lr_t / a.bc1);  /* lr_t / (1 - b1^t) */
    const float decay = (float)(lr_t * s->wd); /* lr_t * weight_decay */

    /* One fused flat loop over the whole buffer. */
    adam_step(s->n, &a, step, decay, theta, s->m, s->v, s->grad);
    s->t = t;
    return TP_OK;
}

/* out = P_t^{-1/2} x, P_t = (1 - b1^t) (sqrt(v_t / (1 - b2^t)) + eps); see the file comment. */
static int adamw_precondition(void *state, const tp_host *host, tp_ctx *ctx, const float *x,
                              float *out, tp_error *err)
{
    const adamw_state *s = state;

    if (x == NULL || out == NULL)
        return sub_fail(err, ID, TP_EINVAL, "precondition: NULL vector");
    if (s->t == 0)
        return sub_fail(err, ID, TP_ESTATE,
                        "precondition: no update taken yet, so Adam's preconditioner "
                        "(1 - b1^t)(sqrt(v_hat) + eps) is undefined; call it after update");
    const adam_scalars a = adam_scalars_at(s->beta1, s->beta2, s->eps, s->t);
    adam_precondition(s->n, s->v, &a, 1.0, x, out);
    return TP_OK;
}

static void adamw_destroy(void *state, const tp_host *host, tp_ctx *ctx)
{
    adamw_state *s = state;
    if (s == NULL)
        return;
    host->free(ctx, s->grad);
    host->free(ctx, s->m);
    host->free(ctx, s->v);
    host->free(ctx, s);
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
    .destroy = adamw_destroy,
};

TP_PLUGIN_ENTRY(i)
{
    return i == 0 ? &adamw_desc : NULL;
}
