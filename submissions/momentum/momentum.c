/*
 * momentum.c - the heavy-ball momentum and Nesterov baselines, optimizer ids "momentum" and
 * "nesterov" (two descriptors in one .so, one update loop). AlgoPerf's baselines are
 * optax.chain(add_decayed_weights(weight_decay), sgd(lr, momentum=beta1, nesterov)), i.e.
 * optax.trace after L2 decay added to the gradient. With v starting at 0:
 *
 *     d     = g + weight_decay * theta          (weight decay ADDED TO THE GRADIENT)
 *     v     = beta1 v + d
 *     theta -= lr_t * v                          heavy ball ("momentum")
 *     theta -= lr_t * (d + beta1 v)              Nesterov   ("nesterov"), with the new v
 *
 * lr_t = learning_rate * lr_factor (the schedule's factor; these baselines are meant for
 * warmup_linear) and beta1 = 1 - one_minus_beta1. Weight decay applies to ALL parameters,
 * biases and norm scales included: the reference calls add_decayed_weights without a mask
 * (reference_algorithms/paper_baselines/{momentum,nesterov}/jax/submission.py), so the update
 * reads no tensor roles. The decay enters before the momentum, as the reference notes (the same
 * as decaying after for heavy ball, slightly different for Nesterov).
 *
 * How it is computed: one fused flat loop in float, the step's scalars computed once in double.
 *
 * No precondition hook: these are non-adaptive (P = I; the host treats a missing hook as the
 * identity). Their stability thresholds on a quadratic are BENCHMARK.md section 9's
 * (2 + 2 beta)/eta for heavy ball and (2 + 2 beta)/((1 + 2 beta) eta) for Nesterov; weight
 * decay shifts the Hessian by weight_decay * I.
 *
 * Not here: dampening, PyTorch's "lr inside the buffer" variant, decay masks.
 * State: grad and v, num_params floats each, allocated at init with host->alloc.
 */
#include <stdio.h>

#include <trainperf/trainperf.h>

#include "../common/plugin_util.h"

/* ---------------------------------------------------------------------------------------- */
/* Hyperparameters (AlgoPerf's names; the ranges are the valid domains, not a search space) */

static const tp_hparam_decl momentum_hparams[] = {
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "learning_rate", TP_HPARAM_FLOAT, 0.1, 1e-6, 100.0,
     "peak step size, before the schedule's factor"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "one_minus_beta1", TP_HPARAM_FLOAT, 0.1, 1e-6, 1.0,
     "1 - beta1 (momentum coefficient); 1 gives plain SGD"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "weight_decay", TP_HPARAM_FLOAT, 0.0, 0.0, 1.0,
     "L2 coefficient added to the gradient before the momentum, all parameters"},
    SUB_LOSS_HPARAM_DECLS,
};

/* ---------------------------------------------------------------------------------------- */
/* State */

typedef struct momentum_state {
    const char *id; /* "momentum" or "nesterov", for messages */
    int nesterov;
    uint64_t n;   /* floats in the parameter buffer */
    float *grad;  /* (n) gradient of the current batch */
    float *v;     /* (n) momentum buffer (optax's trace) */
    double lr;    /* learning_rate */
    double beta1; /* 1 - one_minus_beta1 */
    double wd;    /* weight_decay */
    tp_loss_opts loss_opts;
} momentum_state;

/* ---------------------------------------------------------------------------------------- */
/* Entry points */

static int momentum_init_as(const char *id, int nesterov, const tp_host *host, tp_ctx *ctx,
                            void **state, tp_error *err)
{
    double omb1 = 0.0;
    uint64_t n = 0;
    momentum_state *s = NULL;
    int rc;

    if ((rc = sub_init_params(host, ctx, id, &n, err)) != TP_OK)
        return rc;
    s = host->alloc(ctx, sizeof *s);
    if (s == NULL)
        return sub_fail(err, id, TP_ENOMEM, "out of memory for the state");
    s->id = id;
    s->nesterov = nesterov;
    s->n = n;
    if ((rc = sub_hparam(host, ctx, id, "learning_rate", &s->lr, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, id, "one_minus_beta1", &omb1, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, id, "weight_decay", &s->wd, err)) != TP_OK ||
        (rc = sub_loss_opts(host, ctx, id, &s->loss_opts, err)) != TP_OK)
        goto error;
    s->beta1 = 1.0 - omb1;

    /* Zeroed by the host: v = 0 before the first update. */
    s->grad = host->alloc(ctx, n * sizeof(float));
    s->v = host->alloc(ctx, n * sizeof(float));
    if (s->grad == NULL || s->v == NULL) {
        rc = sub_fail(err, id, TP_ENOMEM, "out of memory for grad and v (2 x num_params floats)");
        goto error;
    }
    *state = s;
    return TP_OK;

error:
    host->free(ctx, s->grad);
    host->free(ctx, s->v);
    host->free(ctx, s);
    return rc;
}

static int momentum_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    return momentum_init_as("momentum", 0, host, ctx, state, err);
}

static int nesterov_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    return momentum_init_as("nesterov", 1, host, ctx, state, err);
}

static int momentum_update(void *state, const tp_host *host, tp_ctx *ctx,
                           const tp_update_args *args, tp_error *err)
{
    momentum_state *s = state;
    int rc;
    float *theta = sub_update_begin(host, ctx, s->id, args, s->n, &s->loss_opts, s->grad, err, &rc);
    if (theta == NULL)
        return rc;

    /* Per-step scalars once; the loop in float so the compiler vectorises it. */
    const float lr = (float)(s->lr * args->lr_factor);
    const float b1 = (float)s->beta1;
    const float wd = (float)s->wd;
    float *restrict p = theta;
    float *restrict v = s->v;
    const float *restrict g = s->grad;
    const uint64_t n = s->n;
    if (s->nesterov) {
        for (uint64_t i = 0; i < n; i++) {
            const float d = g[i] + wd * p[i];
            const float vi = b1 * v[i] + d;
            v[i] = vi;
            p[i] -= lr * (d + b1 * vi);
        }
    } else {
        for (uint64_t i = 0; i < n; i++) {
            const float vi = b1 * v[i] + (g[i] + wd * p[i]);
            v[i] = vi;
            p[i] -= lr * vi;
        }
    }
    return TP_OK;
}

static void momentum_destroy(void *state, const tp_host *host, tp_ctx *ctx)
{
    momentum_state *s = state;
    if (s == NULL)
        return;
    host->free(ctx, s->grad);
    host->free(ctx, s->v);
    host->free(ctx, s);
}

/* ---------------------------------------------------------------------------------------- */
/* Discovery */

static const tp_plugin_desc momentum_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "momentum",
    .kind = TP_PLUGIN_OPTIMIZER,
    .description = "SGD with heavy-ball momentum, weight decay added to the gradient",
    .hparams = momentum_hparams,
    .num_hparams = sizeof momentum_hparams / sizeof momentum_hparams[0],
    .init = momentum_init,
    .update = momentum_update,
    .destroy = momentum_destroy,
};

static const tp_plugin_desc nesterov_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "nesterov",
    .kind = TP_PLUGIN_OPTIMIZER,
    .description = "SGD with Nesterov momentum (optax form), weight decay added to the gradient",
    .hparams = momentum_hparams,
    .num_hparams = sizeof momentum_hparams / sizeof momentum_hparams[0],
    .init = nesterov_init,
    .update = momentum_update,
    .destroy = momentum_destroy,
};

TP_PLUGIN_ENTRY(i)
{
    return i == 0 ? &momentum_desc : i == 1 ? &nesterov_desc : NULL;
}
