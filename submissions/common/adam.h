/*
 * adam.h - Adam's per-step scalars, denominator and preconditioner, shared by the baselines
 * built on Adam's moments (adamw, nadamw, lamb, sam). Header-only (static inline), so each
 * plugin stays one self-contained .so built against the SDK alone.
 *
 * With t counting updates from 1, m and v the moments WITHOUT bias correction:
 *     m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2,
 *     denominator  d = sqrt(v / (1 - b2^t)) + eps        (eps outside the root, PyTorch/optax)
 * and the preconditioner of an update theta -= lr_t * mom / ((1 - b1^t) d) is, elementwise,
 *     P_t = (1 - b1^t) * (sqrt(v_t / (1 - b2^t)) + eps)   (BENCHMARK.md section 9).
 * The scalars are computed once per step in double and used in float in the flat loops;
 * adam_denom is the one expression of d, so an update and its precondition hook agree bit
 * for bit.
 *
 * Also here, for the baselines that keep Adam's state (adamw, nadamw, lamb, sam): their common
 * hyperparameter declarations (ADAM_HPARAM_DECLS) and state (adam_state: hyperparameters,
 * training-loss options, gradient, m and v; init, free and the preconditioner hook).
 *
 * Not here: the update loops of the optimizers that change Adam's (nadamw, lamb fuse their
 * own).
 */
#ifndef TP_SUBMISSIONS_ADAM_H
#define TP_SUBMISSIONS_ADAM_H

#include <math.h>
#include <stdint.h>

#include <trainperf/trainperf.h>

#include "plugin_util.h"

/* Step-dependent scalars of update t (t >= 1). */
typedef struct adam_scalars {
    double bc1;   /* 1 - b1^t */
    double bc2;   /* 1 - b2^t */
    float b1, c1; /* b1, 1 - b1 */
    float b2, c2; /* b2, 1 - b2 */
    float rs2;    /* 1 / sqrt(1 - b2^t) */
    float eps;
} adam_scalars;

static inline adam_scalars adam_scalars_at(double beta1, double beta2, double eps, uint64_t t)
{
    adam_scalars s;
    s.bc1 = 1.0 - pow(beta1, (double)t);
    s.bc2 = 1.0 - pow(beta2, (double)t);
    s.b1 = (float)beta1;
    s.c1 = (float)(1.0 - beta1);
    s.b2 = (float)beta2;
    s.c2 = (float)(1.0 - beta2);
    s.rs2 = (float)(1.0 / sqrt(s.bc2));
    s.eps = (float)eps;
    return s;
}

/* sqrt(v_hat) + eps as every update computes it. */
static inline float adam_denom(float v, float rs2, float eps)
{
    return sqrtf(v) * rs2 + eps;
}

/* One fused AdamW step over n floats, with the scalars of update t: m and v take g, then
 *     p -= step * m / (sqrt(v_hat) + eps) + decay * p,
 * step = lr_t / (1 - b1^t), decay = lr_t * weight_decay (0 for plain Adam). restrict lets the
 * compiler vectorise the loop (-O3 -fno-math-errno, see tp_add_plugin). */
static inline void adam_step(uint64_t n, const adam_scalars *a, float step, float decay,
                             float *restrict p, float *restrict m, float *restrict v,
                             const float *restrict g)
{
    for (uint64_t i = 0; i < n; i++) {
        const float mi = a->b1 * m[i] + a->c1 * g[i];
        const float vi = a->b2 * v[i] + a->c2 * (g[i] * g[i]);
        m[i] = mi;
        v[i] = vi;
        p[i] -= step * mi / adam_denom(vi, a->rs2, a->eps) + decay * p[i];
    }
}

/* out = scale^{-1/2} * P_t^{-1/2} x over n floats, P_t = (1 - b1^t)(sqrt(v_hat) + eps) of the
 * last update t >= 1. `scale` multiplies P (1 for Adam; LAMB passes 1 / trust ratio per
 * tensor). Computed in double from the float denominator. */
static inline void adam_precondition(uint64_t n, const float *v, const adam_scalars *s,
                                     double scale, const float *x, float *out)
{
    for (uint64_t i = 0; i < n; i++) {
        const double p = scale * s->bc1 * (double)adam_denom(v[i], s->rs2, s->eps);
        out[i] = (float)((double)x[i] / sqrt(p));
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The Adam family's hyperparameters and state */

/* Declarations every Adam-family baseline starts its table with (AlgoPerf's names; the ranges
 * are valid domains, not a search space), before its own and SUB_LOSS_HPARAM_DECLS. */
#define ADAM_HPARAM_DECLS                                                                          \
    {sizeof(tp_hparam_decl),                                                                       \
     TP_SDK_VERSION,                                                                               \
     "learning_rate",                                                                              \
     TP_HPARAM_FLOAT,                                                                              \
     1e-3,                                                                                         \
     1e-6,                                                                                         \
     10.0,                                                                                         \
     "peak step size, before the schedule's factor"},                                              \
        {sizeof(tp_hparam_decl),                                                                   \
         TP_SDK_VERSION,                                                                           \
         "one_minus_beta1",                                                                        \
         TP_HPARAM_FLOAT,                                                                          \
         0.1,                                                                                      \
         1e-6,                                                                                     \
         1.0,                                                                                      \
         "1 - beta1 (first-moment decay)"},                                                        \
        {sizeof(tp_hparam_decl), TP_SDK_VERSION, "beta2", TP_HPARAM_FLOAT, 0.999, 0.0, 0.999999,   \
         "second-moment decay"},                                                                   \
        {sizeof(tp_hparam_decl),                                                                   \
         TP_SDK_VERSION,                                                                           \
         "weight_decay",                                                                           \
         TP_HPARAM_FLOAT,                                                                          \
         0.0,                                                                                      \
         0.0,                                                                                      \
         10.0,                                                                                     \
         "weight decay, all parameters (how it applies: the optimizer's file comment)"},           \
    {                                                                                              \
        sizeof(tp_hparam_decl), TP_SDK_VERSION, "epsilon", TP_HPARAM_FLOAT, 1e-8, 1e-12, 1.0,      \
            "added to sqrt(v_hat), outside the root"                                               \
    }

typedef struct adam_state {
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
} adam_state;

/* Read ADAM_HPARAM_DECLS' values and the loss options into *s (zeroed by the caller) and
 * allocate grad, m and v (zeroed: m = v = 0 before the first update) for n floats. On failure
 * whatever it allocated is freed again. */
static inline int adam_state_init(const tp_host *host, tp_ctx *ctx, const char *id, uint64_t n,
                                  adam_state *s, tp_error *err)
{
    double omb1 = 0.0;
    int rc;
    s->n = n;
    if ((rc = sub_hparam(host, ctx, id, "learning_rate", &s->lr, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, id, "one_minus_beta1", &omb1, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, id, "beta2", &s->beta2, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, id, "weight_decay", &s->wd, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, id, "epsilon", &s->eps, err)) != TP_OK ||
        (rc = sub_loss_opts(host, ctx, id, &s->loss_opts, err)) != TP_OK)
        return rc;
    s->beta1 = 1.0 - omb1;
    s->grad = host->alloc(ctx, n * sizeof(float));
    s->m = host->alloc(ctx, n * sizeof(float));
    s->v = host->alloc(ctx, n * sizeof(float));
    if (s->grad == NULL || s->m == NULL || s->v == NULL) {
        host->free(ctx, s->grad);
        host->free(ctx, s->m);
        host->free(ctx, s->v);
        s->grad = s->m = s->v = NULL;
        return sub_fail(err, id, TP_ENOMEM, "out of memory for grad, m and v (3 x %llu floats)",
                        (unsigned long long)n);
    }
    return TP_OK;
}

static inline void adam_state_free(const tp_host *host, tp_ctx *ctx, adam_state *s)
{
    host->free(ctx, s->grad);
    host->free(ctx, s->m);
    host->free(ctx, s->v);
}

/* The scalars of the last update taken. */
static inline adam_scalars adam_state_scalars(const adam_state *s)
{
    return adam_scalars_at(s->beta1, s->beta2, s->eps, s->t);
}

/* The precondition hook's checks: TP_EINVAL for NULL vectors, TP_ESTATE before the first
 * update (P is undefined: 1 - b1^0 = 0 and v = 0). */
static inline int adam_state_precondition_ok(const adam_state *s, const char *id, const float *x,
                                             float *out, tp_error *err)
{
    if (x == NULL || out == NULL)
        return sub_fail(err, id, TP_EINVAL, "precondition: NULL vector");
    if (s->t == 0)
        return sub_fail(err, id, TP_ESTATE,
                        "precondition: no update taken yet, so the preconditioner "
                        "(1 - b1^t)(sqrt(v_hat) + eps) is undefined; call it after update");
    return TP_OK;
}

/* The whole precondition hook for P_t of the last update over the whole buffer:
 * out = P_t^{-1/2} x, after adam_state_precondition_ok's checks. */
static inline int adam_state_precondition(const adam_state *s, const char *id, const float *x,
                                          float *out, tp_error *err)
{
    int rc = adam_state_precondition_ok(s, id, x, out, err);
    if (rc != TP_OK)
        return rc;
    const adam_scalars a = adam_state_scalars(s);
    adam_precondition(s->n, s->v, &a, 1.0, x, out);
    return TP_OK;
}

/* init and destroy of a plugin whose whole state is one adam_state (adamw, nadamw). */
static inline int adam_state_create(const tp_host *host, tp_ctx *ctx, const char *id, void **state,
                                    tp_error *err)
{
    uint64_t n = 0;
    adam_state *s;
    int rc;
    if ((rc = sub_init_params(host, ctx, id, &n, err)) != TP_OK)
        return rc;
    if ((s = host->alloc(ctx, sizeof *s)) == NULL)
        return sub_fail(err, id, TP_ENOMEM, "out of memory for the state");
    if ((rc = adam_state_init(host, ctx, id, n, s, err)) != TP_OK) {
        host->free(ctx, s);
        return rc;
    }
    *state = s;
    return TP_OK;
}

static inline void adam_state_destroy(void *state, const tp_host *host, tp_ctx *ctx)
{
    if (state == NULL)
        return;
    adam_state_free(host, ctx, state);
    host->free(ctx, state);
}

#endif /* TP_SUBMISSIONS_ADAM_H */
