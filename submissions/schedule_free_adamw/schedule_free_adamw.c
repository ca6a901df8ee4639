/*
 * schedule_free_adamw.c - Schedule-Free AdamW (Defazio et al. 2024, "The Road Less
 * Scheduled"), optimizer id "schedule_free_adamw": the AlgoPerf 2024 self-tuning winner. It
 * replaces the learning-rate decay by an average: z takes AdamW-like steps, x is a weighted
 * average of the z's, and gradients are taken at an interpolation y of the two. Meant to run
 * with the schedule "constant": its warmup is internal.
 *
 * The update, as the reference AdamWScheduleFree (facebookresearch/schedule_free,
 * schedulefree/adamw_schedulefree.py) computes it. With t counting updates from 1,
 * b1 = 1 - one_minus_beta1, b2 = beta2, S = step_hint (train state), shf = step_hint_factor:
 *
 *     W       = floor((warmup_factor * S) * shf)       warmup steps, fixed at init
 *     sched_t = t / W while t <= W, else 1              (the first update gets lr / W, not 0)
 *     lr_t    = learning_rate * lr_factor * sched_t     (lr_factor: the schedule's, 1 = constant)
 *     gamma_t = lr_t * sqrt(1 - b2^t)                  (the step size; bias correction of v)
 *     lr_max  = max(lr_max, gamma_t)
 *     w_t     = t^r * lr_max^weight_lr_power           c_t = w_t / sum_{i<=t} w_i  (0 if 0/0)
 *
 *     g       = gradient of the batch loss at y        (y is what the parameter buffer holds)
 *     v       = b2 v + (1 - b2) g^2
 *     z      -= gamma_t * (g / (sqrt(v) + eps) + weight_decay * y)   (decay at y)
 *     x       = (1 - c_t) x + c_t z
 *     y       = (1 - b1) z + b1 x
 *
 * z, x and y start at the initial parameters; eps is added to sqrt(v) WITHOUT bias correction,
 * the step carries sqrt(1 - b2^t) instead (so, in Adam's terms, the denominator is
 * sqrt(v_hat) + eps / sqrt(1 - b2^t)). Weight decay applies to all parameters, biases and norm
 * scales included: the reference (and the AlgoPerf submission) uses one PyTorch param group.
 *
 * The AlgoPerf submissions (schedulefree/algoperf/{self,external}_tuning/schedule_free_adamw/
 * submission.py) differ from the package in three details, and this file follows the package
 * (the paper's Algorithm 1): they apply the decay at x instead of y, track lr_max over
 * max(lr * sched_t, eps) without the sqrt(1 - b2^t), and keep v in bfloat16. The self-tuning
 * submission also resets the weights and halves the learning rate when four evals in a row do
 * not improve; that reads eval results and is left out. Its fixed hyperparameters are in
 * self_tuning.cfg, with step_hint_factor = 0.75 for its int(warmup_factor * step_hint * 0.75)
 * warmup (the product taken in that order, as here).
 *
 * Buffer and evaluation. During training the parameter buffer holds y, so the host's
 * loss_and_grad takes gradients at y. `prepare_for_eval` writes x (the average, the point
 * Schedule-Free evaluates) into the buffer and notes it; the next `update` first recomputes
 * y = (1 - b1) z + b1 x from the stored z and x, with the very expression the update uses to
 * write y, so the buffer is bit for bit what it was before the eval and training continues
 * exactly as if no eval had happened (no drift from swapping back and forth). If that update's
 * gradient fails, x is put back.
 *
 * Preconditioner (the optional `precondition` hook, BENCHMARK.md section 9). The z-step is
 *     z -= lr_t * P_t^{-1} g  (+ decay),   P_t = (sqrt(v_t) + eps) / sqrt(1 - b2^t)
 *                                              = sqrt(v_hat_t) + eps / sqrt(1 - b2^t),
 * elementwise, with t and v_t those of the last update; the hook returns P_t^{-1/2} x with the
 * root term computed by the expression the update uses. There is no momentum of gradients:
 * b1 interpolates instead. y, where gradients are taken, moves by
 *     y_{t+1} - y_t = -(1 - b1 + b1 c_t) lr_t P_t^{-1} g_t  +  (terms without g_t:
 *                     b1 c_t (z_t - x_t) and the decay),
 * so y's effective step on the gradient has the same P with the learning rate scaled by
 * (1 - b1 + b1 c_t) (c_t -> 0 as the average grows, leaving 1 - b1). Before the first update
 * the hook returns TP_ESTATE.
 *
 * Not here: the closure / SGD / RAdam variants, the AlgoPerf reset rule, bfloat16 state.
 * State: grad, z, x and v, num_params floats each, allocated at init with host->alloc.
 */
#include <math.h>
#include <stdio.h>

#include <trainperf/trainperf.h>

#include "../common/plugin_util.h"

#define ID "schedule_free_adamw"

/* ---------------------------------------------------------------------------------------- */
/* Hyperparameters (AlgoPerf's names; the ranges are the valid domains, not a search space).
 * Defaults: the reference package's (lr 0.0025, betas (0.9, 0.999), eps 1e-8, no decay,
 * r 0, weight_lr_power 2), warmup_factor 0.02 as in both AlgoPerf submissions. */

#define HP(name, def, lo, hi, help)                                                                \
    {                                                                                              \
        sizeof(tp_hparam_decl), TP_SDK_VERSION, name, TP_HPARAM_FLOAT, def, lo, hi, help           \
    }

static const tp_hparam_decl sf_hparams[] = {
    HP("learning_rate", 0.0025, 1e-6, 10.0, "peak step size of z, before lr_factor"),
    HP("one_minus_beta1", 0.1, 1e-6, 1.0, "1 - beta1; y = one_minus_beta1 * z + beta1 * x"),
    HP("beta2", 0.999, 0.0, 0.999999, "second-moment decay"),
    HP("weight_decay", 0.0, 0.0, 10.0, "decoupled weight decay at y, scaled by the step size"),
    HP("epsilon", 1e-8, 1e-12, 1.0, "added to sqrt(v), outside the root"),
    HP("warmup_factor", 0.02, 0.0, 1.0, "internal linear warmup over this fraction of step_hint"),
    HP("step_hint_factor", 1.0, 0.0, 10.0,
       "the warmup is warmup_factor * step_hint * step_hint_factor steps"),
    HP("r", 0.0, 0.0, 10.0, "polynomial weighting t^r of the average"),
    HP("weight_lr_power", 2.0, 0.0, 10.0, "weights of the average grow as lr_max^this"),
    HP("label_smoothing", 0.0, 0.0, 0.99, "label smoothing of the training loss"),
    HP("dropout_rate", 0.0, 0.0, 0.99, "dropout rate where the model has dropout"),
};

/* ---------------------------------------------------------------------------------------- */
/* State */

typedef struct sf_state {
    uint64_t n;        /* floats in the parameter buffer */
    uint64_t t;        /* updates taken */
    uint64_t warmup;   /* W */
    float *grad;       /* (n) gradient at y of the current batch */
    float *z;          /* (n) the base sequence */
    float *x;          /* (n) the weighted average of the z's (evaluated) */
    float *v;          /* (n) second moment, not bias-corrected */
    int holding_x;     /* the buffer holds x (after prepare_for_eval), not y */
    double lr;         /* learning_rate */
    double beta1;      /* 1 - one_minus_beta1 */
    double beta2;      /* beta2 */
    double wd;         /* weight_decay */
    double eps;        /* epsilon */
    double r;          /* r */
    double wlr_power;  /* weight_lr_power */
    double lr_max;     /* max gamma_t so far (-1 before the first update) */
    double weight_sum; /* sum of w_t so far */
    tp_loss_opts loss_opts;
} sf_state;

/* y from z and x: the one expression every write of y uses, so restoring y after an eval
 * reproduces the buffer bit for bit. c1 = 1 - b1, b1 as floats. */
static inline float sf_interp(float z, float x, float c1, float b1)
{
    return c1 * z + b1 * x;
}

/* sqrt(v) + eps, as the update and the precondition hook compute it. */
static inline float sf_denom(float v, float eps)
{
    return sqrtf(v) + eps;
}

/* ---------------------------------------------------------------------------------------- */
/* Entry points */

static int sf_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    double omb1 = 0.0, warmup_factor = 0.0, hint_factor = 1.0;
    uint64_t n = 0;
    sf_state *s = NULL;
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
        (rc = sub_hparam(host, ctx, ID, "warmup_factor", &warmup_factor, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "step_hint_factor", &hint_factor, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "r", &s->r, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "weight_lr_power", &s->wlr_power, err)) != TP_OK ||
        (rc = sub_loss_opts(host, ctx, ID, &s->loss_opts, err)) != TP_OK)
        goto error;
    s->beta1 = 1.0 - omb1;
    s->lr_max = -1.0;

    /* The warmup length, as the AlgoPerf submission sizes it at init. */
    const tp_train_state *ts = host->train_state(ctx);
    const double hint =
        TP_FIELD_PRESENT(ts, tp_train_state, step_hint) ? (double)ts->step_hint : 0.0;
    const double w = floor(warmup_factor * hint * hint_factor);
    s->warmup = w > 0.0 ? (uint64_t)w : 0;

    s->grad = host->alloc(ctx, n * sizeof(float));
    s->z = host->alloc(ctx, n * sizeof(float));
    s->x = host->alloc(ctx, n * sizeof(float));
    s->v = host->alloc(ctx, n * sizeof(float)); /* zeroed by the host: v = 0 */
    if (s->grad == NULL || s->z == NULL || s->x == NULL || s->v == NULL) {
        rc = sub_fail(err, ID, TP_ENOMEM,
                      "out of memory for grad, z, x and v (4 x num_params floats)");
        goto error;
    }
    /* z = x = y = the initial parameters. */
    const float *theta = host->params(ctx, &n);
    for (uint64_t i = 0; i < s->n; i++)
        s->z[i] = s->x[i] = theta[i];
    *state = s;
    return TP_OK;

error:
    host->free(ctx, s->grad);
    host->free(ctx, s->z);
    host->free(ctx, s->x);
    host->free(ctx, s->v);
    host->free(ctx, s);
    return rc;
}

/* buffer = y = (1 - b1) z + b1 x. */
static void sf_write_y(const sf_state *s, float *y)
{
    const float c1 = (float)(1.0 - s->beta1), b1 = (float)s->beta1;
    for (uint64_t i = 0; i < s->n; i++)
        y[i] = sf_interp(s->z[i], s->x[i], c1, b1);
}

static int sf_update(void *state, const tp_host *host, tp_ctx *ctx, const tp_update_args *args,
                     tp_error *err)
{
    sf_state *s = state;
    double loss = 0.0;
    int rc;

    float *theta = sub_update_params(host, ctx, ID, args, s->n, err, &rc);
    if (theta == NULL)
        return rc;
    /* After an eval the buffer holds x: back to y, exactly. */
    const int restored = s->holding_x;
    if (restored)
        sf_write_y(s, theta);
    if ((rc = sub_grad(host, ctx, ID, NULL, args->batch, &s->loss_opts, s->grad, &loss, err)) !=
        TP_OK) {
        if (restored)
            host->vec_copy(s->n, s->x, theta); /* the failed step changes nothing */
        return rc;
    }
    s->holding_x = 0;

    /* Per-step scalars, in double, once. */
    const uint64_t t = s->t + 1;
    const double sched = t <= s->warmup ? (double)t / (double)s->warmup : 1.0;
    const double bc2 = 1.0 - pow(s->beta2, (double)t);
    const double gamma = s->lr * args->lr_factor * sched * sqrt(bc2);
    s->lr_max = fmax(s->lr_max, gamma);
    const double w = pow((double)t, s->r) * pow(s->lr_max, s->wlr_power);
    s->weight_sum += w;
    const double c = s->weight_sum > 0.0 ? w / s->weight_sum : 0.0;

    const float step = (float)gamma, decay = (float)s->wd, eps = (float)s->eps;
    const float b2 = (float)s->beta2, c2 = (float)(1.0 - s->beta2);
    const float ck = (float)c, omck = (float)(1.0 - c);
    const float c1 = (float)(1.0 - s->beta1), b1 = (float)s->beta1;

    /* One fused flat loop over the whole buffer. */
    float *restrict y = theta;
    float *restrict z = s->z;
    float *restrict x = s->x;
    float *restrict v = s->v;
    const float *restrict g = s->grad;
    const uint64_t n = s->n;
    for (uint64_t i = 0; i < n; i++) {
        const float vi = b2 * v[i] + c2 * (g[i] * g[i]);
        const float zi = z[i] - step * (g[i] / sf_denom(vi, eps) + decay * y[i]);
        const float xi = omck * x[i] + ck * zi;
        v[i] = vi;
        z[i] = zi;
        x[i] = xi;
        y[i] = sf_interp(zi, xi, c1, b1);
    }
    s->t = t;
    return TP_OK;
}

/* The buffer gets x, the average Schedule-Free evaluates; the next update restores y. */
static int sf_prepare_for_eval(void *state, const tp_host *host, tp_ctx *ctx, tp_error *err)
{
    sf_state *s = state;
    uint64_t n = 0;
    float *theta = host->params(ctx, &n);
    if (theta == NULL || n != s->n)
        return sub_fail(err, ID, TP_ESTATE, "prepare_for_eval: parameter buffer changed size");
    host->vec_copy(s->n, s->x, theta);
    s->holding_x = 1;
    return TP_OK;
}

/* out = P_t^{-1/2} x, P_t = (sqrt(v_t) + eps) / sqrt(1 - b2^t); see the file comment. */
static int sf_precondition(void *state, const tp_host *host, tp_ctx *ctx, const float *xv,
                           float *out, tp_error *err)
{
    const sf_state *s = state;

    if (xv == NULL || out == NULL)
        return sub_fail(err, ID, TP_EINVAL, "precondition: NULL vector");
    if (s->t == 0)
        return sub_fail(err, ID, TP_ESTATE,
                        "precondition: no update taken yet, so the z-step's preconditioner "
                        "(sqrt(v) + eps) / sqrt(1 - b2^t) is undefined; call it after update");
    const double rs2 = 1.0 / sqrt(1.0 - pow(s->beta2, (double)s->t));
    const float eps = (float)s->eps;
    for (uint64_t i = 0; i < s->n; i++) {
        const double p = (double)sf_denom(s->v[i], eps) * rs2;
        out[i] = (float)((double)xv[i] / sqrt(p));
    }
    return TP_OK;
}

static void sf_destroy(void *state, const tp_host *host, tp_ctx *ctx)
{
    sf_state *s = state;
    if (s == NULL)
        return;
    host->free(ctx, s->grad);
    host->free(ctx, s->z);
    host->free(ctx, s->x);
    host->free(ctx, s->v);
    host->free(ctx, s);
}

/* ---------------------------------------------------------------------------------------- */
/* Discovery */

static const tp_plugin_desc sf_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = ID,
    .kind = TP_PLUGIN_OPTIMIZER,
    .description = "Schedule-Free AdamW: internal warmup, gradients at y, evaluation at the "
                   "average x (use with the schedule \"constant\")",
    .hparams = sf_hparams,
    .num_hparams = sizeof sf_hparams / sizeof sf_hparams[0],
    .init = sf_init,
    .update = sf_update,
    .prepare_for_eval = sf_prepare_for_eval,
    .precondition = sf_precondition,
    .destroy = sf_destroy,
};

TP_PLUGIN_ENTRY(i)
{
    return i == 0 ? &sf_desc : NULL;
}
