/*
 * my_sgd.c - a minimal trainperf submission to copy and edit: SGD with heavy-ball momentum,
 * optimizer id "my_sgd".
 *
 *     buf   = momentum * buf + g          (buf starts at 0)
 *     theta -= lr_t * buf                 lr_t = learning_rate * lr_factor (the schedule's)
 *
 * A plugin includes ONLY <trainperf/trainperf.h> and links nothing of trainperf: everything it
 * needs (parameters, gradients, memory) comes through the `host` function table. See README.md
 * beside this file for how to build it and run it.
 */
#include <stdio.h>

#include <trainperf/trainperf.h>

/* 1. Hyperparameters: name, type, default, [min, max], help. The host checks trial values
 *    against the range and hands them back through host->hparam(). */
static const tp_hparam_decl my_hparams[] = {
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "learning_rate", TP_HPARAM_FLOAT, 0.05, 1e-6, 10.0,
     "step size"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "momentum", TP_HPARAM_FLOAT, 0.9, 0.0, 0.999,
     "heavy-ball coefficient"},
};

/* 2. The optimizer state. Whatever init stores in *state comes back in every call. */
typedef struct my_state {
    uint64_t n;  /* number of parameters (floats in the flat buffer) */
    float *grad; /* (n) the gradient, written by host->loss_and_grad */
    float *buf;  /* (n) the momentum buffer */
    double lr, momentum;
} my_state;

/* 3. init (untimed): read hyperparameters, allocate state. host->alloc gives zeroed memory the
 *    host tracks; free it in destroy. On failure free what you took and return an error code:
 *    destroy is not called for a state init never set. */
static int my_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    uint64_t n = 0;
    host->params(ctx, &n); /* the flat float32 buffer of all parameters; we need its size */

    my_state *s = host->alloc(ctx, sizeof *s);
    if (s == NULL)
        return TP_ENOMEM;
    s->n = n;
    host->hparam(ctx, "learning_rate", &s->lr); /* declared above, so these cannot fail */
    host->hparam(ctx, "momentum", &s->momentum);
    s->grad = host->alloc(ctx, n * sizeof(float));
    s->buf = host->alloc(ctx, n * sizeof(float));
    if (s->grad == NULL || s->buf == NULL) {
        host->free(ctx, s->grad); /* free(NULL) is a no-op */
        host->free(ctx, s->buf);
        host->free(ctx, s);
        snprintf(err->message, sizeof err->message, "my_sgd: out of memory");
        return TP_ENOMEM;
    }
    *state = s;
    return TP_OK;
}

/* 4. update (timed): one training step. Ask the host for the gradient of this step's batch at
 *    the current parameters, then change the parameters in place with a flat loop. */
static int my_update(void *state, const tp_host *host, tp_ctx *ctx, const tp_update_args *args,
                     tp_error *err)
{
    my_state *s = state;
    uint64_t n = 0;
    float *theta = host->params(ctx, &n);
    double loss = 0.0;

    /* NULL params = the current ones; NULL opts = no label smoothing, no dropout. */
    int rc = host->loss_and_grad(ctx, NULL, args->batch, NULL, s->grad, &loss);
    if (rc != TP_OK)
        return rc; /* pass host errors on; the host stops the trial */

    /* One flat loop over all parameters: the layout is the same for params, grad and buf. */
    const float lr = (float)(s->lr * args->lr_factor);
    const float mu = (float)s->momentum;
    float *buf = s->buf;
    const float *g = s->grad;
    for (uint64_t i = 0; i < n; i++) {
        buf[i] = mu * buf[i] + g[i];
        theta[i] -= lr * buf[i];
    }
    return TP_OK; /* or TP_TRAINING_COMPLETE to end the trial early */
}

/* 5. destroy: free the state. Called once at the end of the trial, also after errors. */
static void my_destroy(void *state, const tp_host *host, tp_ctx *ctx)
{
    my_state *s = state;
    host->free(ctx, s->grad);
    host->free(ctx, s->buf);
    host->free(ctx, s);
}

/* 6. Discovery: the one exported symbol. The host calls it with 0, 1, ... until NULL; each
 *    descriptor is one plugin. Entry points that do not apply stay NULL. */
static const tp_plugin_desc my_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "my_sgd",
    .kind = TP_PLUGIN_OPTIMIZER,
    .description = "SGD with heavy-ball momentum (the minimal example)",
    .hparams = my_hparams,
    .num_hparams = 2,
    .init = my_init,
    .update = my_update,
    .destroy = my_destroy,
};

TP_PLUGIN_ENTRY(i)
{
    return i == 0 ? &my_desc : NULL;
}
