/*
 * sgd.c - the plain stochastic gradient descent baseline, optimizer id "sgd".
 *
 * One step, for every parameter theta with gradient g of the batch loss:
 *
 *     theta -= lr_t * (g + weight_decay * theta),    lr_t = learning_rate * lr_factor
 *
 * Weight decay is added to the gradient (L2 regularisation, as AlgoPerf's momentum baselines
 * do) and applies to ALL parameters, biases and normalisation scales included: the update is
 * one flat loop over the whole buffer and reads no tensor roles. A submission that wants to
 * spare biases would walk host->param_tensor_info and skip TP_PARAM_ROLE_BIAS /
 * TP_PARAM_ROLE_NORM_* ranges.
 *
 * Not here: momentum (see examples/minimal_submission/my_sgd.c for heavy ball), a schedule
 * (the factor comes from the schedule plugin through args->lr_factor), a preconditioner hook
 * (plain SGD has P = I; the host treats a missing hook as the identity).
 *
 * State: one gradient buffer of num_params floats, allocated at init with host->alloc.
 */
#include <stdio.h>

#include <trainperf/trainperf.h>

#include "../common/plugin_util.h"

#define ID "sgd"

/* ---------------------------------------------------------------------------------------- */
/* Hyperparameters */

static const tp_hparam_decl sgd_hparams[] = {
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "learning_rate", TP_HPARAM_FLOAT, 0.1, 1e-6, 100.0,
     "step size before the schedule's factor"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "weight_decay", TP_HPARAM_FLOAT, 0.0, 0.0, 1.0,
     "L2 coefficient added to the gradient, all parameters"},
    SUB_LOSS_HPARAM_DECLS,
};

/* ---------------------------------------------------------------------------------------- */
/* State */

typedef struct sgd_state {
    uint64_t n;  /* floats in the parameter buffer */
    float *grad; /* (n) gradient of the current batch */
    double lr;   /* learning_rate */
    double wd;   /* weight_decay */
    tp_loss_opts loss_opts;
} sgd_state;

/* ---------------------------------------------------------------------------------------- */
/* Entry points */

static int sgd_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    uint64_t n = 0;
    sgd_state *s = NULL;
    int rc;

    if ((rc = sub_init_params(host, ctx, ID, &n, err)) != TP_OK)
        return rc;
    s = host->alloc(ctx, sizeof *s);
    if (s == NULL)
        return sub_fail(err, ID, TP_ENOMEM, "out of memory for the state");
    s->n = n;
    if ((rc = sub_hparam(host, ctx, ID, "learning_rate", &s->lr, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "weight_decay", &s->wd, err)) != TP_OK ||
        (rc = sub_loss_opts(host, ctx, ID, &s->loss_opts, err)) != TP_OK)
        goto error;

    s->grad = host->alloc(ctx, n * sizeof(float));
    if (s->grad == NULL) {
        rc = sub_fail(err, ID, TP_ENOMEM, "out of memory for the gradient buffer");
        goto error;
    }
    *state = s;
    return TP_OK;

error:
    host->free(ctx, s);
    return rc;
}

static int sgd_update(void *state, const tp_host *host, tp_ctx *ctx, const tp_update_args *args,
                      tp_error *err)
{
    sgd_state *s = state;
    int rc;

    float *theta = sub_update_begin(host, ctx, ID, args, s->n, &s->loss_opts, s->grad, err, &rc);
    if (theta == NULL)
        return rc;

    /* One fused flat loop; constants in float so the compiler vectorises it. */
    const float lr = (float)(s->lr * args->lr_factor);
    const float wd = (float)s->wd;
    float *restrict p = theta;
    const float *restrict g = s->grad;
    const uint64_t n = s->n;
    for (uint64_t i = 0; i < n; i++)
        p[i] -= lr * (g[i] + wd * p[i]);
    return TP_OK;
}

static void sgd_destroy(void *state, const tp_host *host, tp_ctx *ctx)
{
    sgd_state *s = state;
    if (s == NULL)
        return;
    host->free(ctx, s->grad);
    host->free(ctx, s);
}

/* ---------------------------------------------------------------------------------------- */
/* Discovery */

static const tp_plugin_desc sgd_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "sgd",
    .kind = TP_PLUGIN_OPTIMIZER,
    .description = "plain SGD, weight decay added to the gradient (all parameters)",
    .hparams = sgd_hparams,
    .num_hparams = sizeof sgd_hparams / sizeof sgd_hparams[0],
    .init = sgd_init,
    .update = sgd_update,
    .destroy = sgd_destroy,
};

TP_PLUGIN_ENTRY(i)
{
    return i == 0 ? &sgd_desc : NULL;
}
