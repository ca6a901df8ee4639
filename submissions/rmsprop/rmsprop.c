/*
 * rmsprop.c - the RMSProp baseline, optimizer id "rmsprop": Adam with beta1 = 0 (BENCHMARK.md
 * section 9), so the numerator is the gradient itself, with Adam's bias correction of v, eps
 * outside the root and AdamW's decoupled weight decay scaled by the learning rate. With t
 * counting updates from 1:
 *
 *     v     = b2 v + (1 - b2) g^2                    v_hat = v / (1 - b2^t)
 *     theta -= lr_t * (g / (sqrt(v_hat) + eps) + weight_decay * theta)
 *
 * lr_t = learning_rate * lr_factor (the schedule's factor). Weight decay applies to ALL
 * parameters, biases and norm scales included, as in adamw.c; the update reads no tensor roles.
 * This is not torch.optim.RMSprop, which has no bias correction (its first steps are
 * 1 / sqrt(1 - b2) times larger) and calls b2 `alpha`; nor the centred variant, nor RMSProp
 * with momentum.
 *
 * How it is computed: the state is adamw's (adam.h's adam_state) with beta1 = 0 and no first
 * moment. With beta1 = 0, Adam's m would be g exactly and 1 - b1^t = 1, so rmsprop_step is
 * adam_step with m replaced by g: the same float expressions in the same order, and the same
 * results bit for bit as adamw with one_minus_beta1 = 1 (the tests check it), for one buffer
 * of n floats less and two fewer memory streams per step. The step's scalars (1 - b2^t, lr_t)
 * are computed once per step in double (adam_scalars_at); the elementwise work is one fused flat
 * loop in float:
 *     theta -= lr_t * g / (sqrt(v) / sqrt(1 - b2^t) + eps) + lr_t wd theta,
 * the formula above rearranged (eps still outside the root, added to the bias-corrected root).
 *
 * Preconditioner (the optional `precondition` hook, BENCHMARK.md section 9): the update is
 * theta -= lr_t * g / P (+ decay) with, elementwise,
 *     P_t = sqrt(v_t / (1 - b2^t)) + eps,
 * Adam's P_t = (1 - b1^t)(sqrt(v_hat) + eps) at b1 = 0, where t and v_t are those of the last
 * update taken. The hook is adam.h's adam_state_precondition, whose root term is adam_denom,
 * the very expression the update uses. Before the first update (t = 0) v = 0 and there is no
 * P: the hook returns TP_ESTATE. It reads the state and writes only `out`.
 *
 * Not here: momentum or Nesterov inside RMSProp, the centred variant (v - m^2), per-tensor
 * decay masks, non-finite loss detection (the host's).
 * State: grad and v, num_params floats each, allocated at init with host->alloc.
 */
#include <math.h>
#include <stdio.h>

#include <trainperf/trainperf.h>

#include "../common/adam.h"
#include "../common/plugin_util.h"

#define ID "rmsprop"

/* ---------------------------------------------------------------------------------------- */
/* Hyperparameters (the Adam family's names and domains, adam.h's ADAM_HPARAM_DECLS without
 * one_minus_beta1; the ranges are valid domains, not a search space). beta2 defaults to 0.99,
 * the decay of PyTorch's RMSprop (alpha) and of the reference runs of BENCHMARK.md section 9. */

#define HP(name, def, lo, hi, help)                                                                \
    {                                                                                              \
        sizeof(tp_hparam_decl), TP_SDK_VERSION, name, TP_HPARAM_FLOAT, def, lo, hi, help           \
    }

static const tp_hparam_decl rmsprop_hparams[] = {
    HP("learning_rate", 1e-3, 1e-6, 10.0, "peak step size, before the schedule's factor"),
    HP("beta2", 0.99, 0.0, 0.999999, "second-moment decay"),
    HP("weight_decay", 0.0, 0.0, 10.0, "decoupled weight decay, all parameters, times lr_t"),
    HP("epsilon", 1e-8, 1e-12, 1.0, "added to sqrt(v_hat), outside the root"),
    SUB_LOSS_HPARAM_DECLS,
};

/* ---------------------------------------------------------------------------------------- */
/* The update loop */

/* One fused RMSProp step over n floats with the scalars of update t: v takes g, then
 *     p -= step * g / (sqrt(v_hat) + eps) + decay * p,
 * step = lr_t, decay = lr_t * weight_decay. adam_step's loop with m = g; restrict lets the
 * compiler vectorise it (-O3 -fno-math-errno, see tp_add_plugin). */
static void rmsprop_step(uint64_t n, const adam_scalars *a, float step, float decay,
                         float *restrict p, float *restrict v, const float *restrict g)
{
    for (uint64_t i = 0; i < n; i++) {
        const float vi = a->b2 * v[i] + a->c2 * (g[i] * g[i]);
        v[i] = vi;
        p[i] -= step * g[i] / adam_denom(vi, a->rs2, a->eps) + decay * p[i];
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Entry points */

static int rmsprop_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    uint64_t n = 0;
    adam_state *s;
    int rc;

    if ((rc = sub_init_params(host, ctx, ID, &n, err)) != TP_OK)
        return rc;
    /* host->alloc zeroes: t = 0, and grad, m and v are NULL until allocated. */
    if ((s = host->alloc(ctx, sizeof *s)) == NULL)
        return sub_fail(err, ID, TP_ENOMEM, "out of memory for the state");
    s->n = n;
    s->beta1 = 0.0; /* RMSProp is Adam with beta1 = 0; m stays NULL (it would be g) */
    if ((rc = sub_hparam(host, ctx, ID, "learning_rate", &s->lr, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "beta2", &s->beta2, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "weight_decay", &s->wd, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "epsilon", &s->eps, err)) != TP_OK ||
        (rc = sub_loss_opts(host, ctx, ID, &s->loss_opts, err)) != TP_OK)
        goto error;

    s->grad = host->alloc(ctx, n * sizeof(float));
    s->v = host->alloc(ctx, n * sizeof(float));
    if (s->grad == NULL || s->v == NULL) {
        rc = sub_fail(err, ID, TP_ENOMEM, "out of memory for grad and v (2 x %llu floats)",
                      (unsigned long long)n);
        goto error;
    }
    *state = s;
    return TP_OK;

error:
    adam_state_destroy(s, host, ctx);
    return rc;
}

static int rmsprop_update(void *state, const tp_host *host, tp_ctx *ctx, const tp_update_args *args,
                          tp_error *err)
{
    adam_state *s = state;
    int rc;
    float *theta = sub_update_begin(host, ctx, ID, args, s->n, &s->loss_opts, s->grad, err, &rc);
    if (theta == NULL)
        return rc;

    /* Per-step scalars in double, once (1 - b1^t = 1 at beta1 = 0, so the step is lr_t); then
     * one fused flat loop over the whole buffer. */
    const uint64_t t = s->t + 1;
    const double lr_t = s->lr * args->lr_factor;
    const adam_scalars a = adam_scalars_at(s->beta1, s->beta2, s->eps, t);
    rmsprop_step(s->n, &a, (float)lr_t, (float)(lr_t * s->wd), theta, s->v, s->grad);
    s->t = t;
    return TP_OK;
}

/* out = P_t^{-1/2} x, P_t = sqrt(v_t / (1 - b2^t)) + eps; see the file comment. */
static int rmsprop_precondition(void *state, const tp_host *host, tp_ctx *ctx, const float *x,
                                float *out, tp_error *err)
{
    return adam_state_precondition(state, ID, x, out, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Discovery */

static const tp_plugin_desc rmsprop_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "rmsprop",
    .kind = TP_PLUGIN_OPTIMIZER,
    .description = "RMSProp (Adam with beta1 = 0): bias-corrected v, lr-scaled decoupled decay",
    .hparams = rmsprop_hparams,
    .num_hparams = sizeof rmsprop_hparams / sizeof rmsprop_hparams[0],
    .init = rmsprop_init,
    .update = rmsprop_update,
    .precondition = rmsprop_precondition,
    .destroy = adam_state_destroy,
};

TP_PLUGIN_ENTRY(i)
{
    return i == 0 ? &rmsprop_desc : NULL;
}
