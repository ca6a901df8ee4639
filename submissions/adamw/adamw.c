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

/* sqrt(v_hat) + eps as the update computes it, with rs2 = 1 / sqrt(1 - b2^t) in float. The
 * update and the preconditioner hook share it so that they agree bit for bit. */
static inline float adamw_denom(float v, float rs2, float eps)
{
    return sqrtf(v) * rs2 + eps;
}

static int adamw_fail(tp_error *err, int code, const char *what)
{
    if (err != NULL)
        snprintf(err->message, sizeof err->message, "adamw: %s", what);
    return code;
}

static int adamw_hparam(const tp_host *host, tp_ctx *ctx, const char *name, double *out,
                        tp_error *err)
{
    int rc = host->hparam(ctx, name, out);
    if (rc != TP_OK && err != NULL)
        snprintf(err->message, sizeof err->message, "adamw: host->hparam(\"%s\") failed: %s", name,
                 tp_strerror(rc));
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Entry points */

static int adamw_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    double omb1 = 0.0, ls = 0.0, dropout = 0.0;
    uint64_t n = 0;
    adamw_state *s = NULL;
    int rc;

    if (!TP_FIELD_PRESENT(host, tp_host, hparam))
        return adamw_fail(err, TP_EABI, "host table too old: no hparam()");
    if (host->params(ctx, &n) == NULL || n == 0)
        return adamw_fail(err, TP_ESTATE, "host->params() gave no parameter buffer");

    s = host->alloc(ctx, sizeof *s);
    if (s == NULL)
        return adamw_fail(err, TP_ENOMEM, "out of memory for the state");
    s->n = n;
    if ((rc = adamw_hparam(host, ctx, "learning_rate", &s->lr, err)) != TP_OK ||
        (rc = adamw_hparam(host, ctx, "one_minus_beta1", &omb1, err)) != TP_OK ||
        (rc = adamw_hparam(host, ctx, "beta2", &s->beta2, err)) != TP_OK ||
        (rc = adamw_hparam(host, ctx, "weight_decay", &s->wd, err)) != TP_OK ||
        (rc = adamw_hparam(host, ctx, "epsilon", &s->eps, err)) != TP_OK ||
        (rc = adamw_hparam(host, ctx, "label_smoothing", &ls, err)) != TP_OK ||
        (rc = adamw_hparam(host, ctx, "dropout_rate", &dropout, err)) != TP_OK)
        goto error;
    s->beta1 = 1.0 - omb1;
    TP_STRUCT_INIT(&s->loss_opts, tp_loss_opts);
    s->loss_opts.label_smoothing = (float)ls;
    s->loss_opts.dropout_rate = (float)dropout;
    s->loss_opts.flags = 0;

    /* Zeroed by the host: m = v = 0 before the first update. */
    s->grad = host->alloc(ctx, n * sizeof(float));
    s->m = host->alloc(ctx, n * sizeof(float));
    s->v = host->alloc(ctx, n * sizeof(float));
    if (s->grad == NULL || s->m == NULL || s->v == NULL) {
        rc = adamw_fail(err, TP_ENOMEM, "out of memory for grad, m and v (3 x num_params floats)");
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
    uint64_t n = 0;
    double loss = 0.0;
    float *theta;
    int rc;

    if (args == NULL || args->batch == NULL)
        return adamw_fail(err, TP_EINVAL, "update called without a batch");
    theta = host->params(ctx, &n);
    if (theta == NULL || n != s->n)
        return adamw_fail(err, TP_ESTATE, "parameter buffer changed size since init");

    rc = host->loss_and_grad(ctx, NULL, args->batch, &s->loss_opts, s->grad, &loss);
    if (rc != TP_OK) {
        if (err != NULL)
            snprintf(err->message, sizeof err->message, "adamw: host->loss_and_grad failed: %s",
                     tp_strerror(rc));
        return rc;
    }

    /* Per-step scalars, in double, once. */
    const uint64_t t = s->t + 1;
    const double lr_t = s->lr * args->lr_factor;
    const double bc1 = 1.0 - pow(s->beta1, (double)t);
    const double bc2 = 1.0 - pow(s->beta2, (double)t);
    const float b1 = (float)s->beta1, c1 = (float)(1.0 - s->beta1);
    const float b2 = (float)s->beta2, c2 = (float)(1.0 - s->beta2);
    const float step = (float)(lr_t / bc1);     /* lr_t / (1 - b1^t) */
    const float rs2 = (float)(1.0 / sqrt(bc2)); /* 1 / sqrt(1 - b2^t) */
    const float decay = (float)(lr_t * s->wd);  /* lr_t * weight_decay */
    const float eps = (float)s->eps;

    /* One fused flat loop over the whole buffer. */
    float *restrict p = theta;
    float *restrict m = s->m;
    float *restrict v = s->v;
    const float *restrict g = s->grad;
    for (uint64_t i = 0; i < n; i++) {
        const float mi = b1 * m[i] + c1 * g[i];
        const float vi = b2 * v[i] + c2 * (g[i] * g[i]);
        m[i] = mi;
        v[i] = vi;
        p[i] -= step * mi / adamw_denom(vi, rs2, eps) + decay * p[i];
    }
    s->t = t;
    return TP_OK;
}

/* out = P_t^{-1/2} x, P_t = (1 - b1^t) (sqrt(v_t / (1 - b2^t)) + eps); see the file comment. */
static int adamw_precondition(void *state, const tp_host *host, tp_ctx *ctx, const float *x,
                              float *out, tp_error *err)
{
    const adamw_state *s = state;

    if (x == NULL || out == NULL)
        return adamw_fail(err, TP_EINVAL, "precondition: NULL vector");
    if (s->t == 0)
        return adamw_fail(err, TP_ESTATE,
                          "precondition: no update taken yet, so Adam's preconditioner "
                          "(1 - b1^t)(sqrt(v_hat) + eps) is undefined; call it after update");

    const double bc1 = 1.0 - pow(s->beta1, (double)s->t);
    const double bc2 = 1.0 - pow(s->beta2, (double)s->t);
    const float rs2 = (float)(1.0 / sqrt(bc2));
    const float eps = (float)s->eps;
    for (uint64_t i = 0; i < s->n; i++) {
        const double p = bc1 * (double)adamw_denom(s->v[i], rs2, eps);
        out[i] = (float)((double)x[i] / sqrt(p));
    }
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
