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
 * Not here: the update loops themselves (each optimizer fuses its own), weight decay.
 */
#ifndef TP_SUBMISSIONS_ADAM_H
#define TP_SUBMISSIONS_ADAM_H

#include <math.h>
#include <stdint.h>

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

#endif /* TP_SUBMISSIONS_ADAM_H */
