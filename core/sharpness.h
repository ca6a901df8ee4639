/*
 * sharpness.h - the training-dynamics diagnostic of the Adaptive Edge of Stability paper
 * (BENCHMARK.md section 9): sharpness, the top algebraic eigenvalue of the Hessian of the
 * full-batch training loss over a fixed set of training examples, and preconditioned
 * sharpness, that of P^-1/2 H P^-1/2 for the preconditioner P of the optimizer's last update
 * (its `precondition` hook gives P^-1/2 v), each by Lanczos on central-difference
 * Hessian-vector products, warm-started from the previous measurement's top eigenvector; and
 * the stability threshold each optimizer's (preconditioned) sharpness is measured against.
 *
 * Untimed by design: the worker calls it between steps, outside the submission's clock.
 * Not here: when to measure (core/trial.c's diagnose hook), storing the series
 * (core/results.c), plotting (core/report.c).
 */
#ifndef TP_SHARPNESS_H
#define TP_SHARPNESS_H

#include <stddef.h>
#include <stdint.h>

#include "core/hessian.h"
#include "core/nn/workload.h"

typedef struct tp_sharpness_opts {
    uint32_t examples; /* the first `examples` training examples (0: 1,000, capped at the
                          training split) */
    uint32_t chunk;    /* examples per gradient call (0: 1,024) */
    uint32_t max_iter; /* Lanczos products per eigenvalue at most (0: 20) */
    double tol;        /* Lanczos relative residual (0: 1e-3) */
    double rel_step;   /* finite-difference step / ||w|| (0: 1e-4) */
    int raw;           /* also measure plain sharpness when a preconditioner is given */
} tp_sharpness_opts;

/* out = P^-1/2 v (n floats), P held fixed. 0 or a negative TP_E... code with a message. */
typedef int (*tp_sharpness_precond_fn)(void *ctx, const float *v, float *out, char *err,
                                       size_t errlen);

typedef struct tp_sharpness_value {
    double loss;              /* full-batch loss over the fixed examples */
    double sharpness;         /* top eigenvalue of H; NAN when not measured */
    double precond_sharpness; /* top eigenvalue of P^-1/2 H P^-1/2; NAN without a preconditioner */
    uint32_t iters;           /* Lanczos products, both operators together */
    int converged;            /* every Lanczos run met tol */
    uint64_t grads;           /* gradient evaluations (each over all the fixed examples) */
    double seconds;           /* wall time of the measurement */
} tp_sharpness_value;

typedef struct tp_sharpness tp_sharpness;

/* A measurer for workload w (which must outlive it). TP_EINVAL for bad options, TP_ENOMEM. */
int tp_sharpness_init(tp_sharpness **out, tp_workload *w, const tp_sharpness_opts *opts, char *err,
                      size_t errlen);
/* NULL is a no-op. */
void tp_sharpness_free(tp_sharpness *s);
/* Measure at params. With precond == NULL only plain sharpness; with one, preconditioned
 * sharpness (and plain sharpness too when opts.raw). Errors of the workload or the
 * preconditioner come back with their codes and messages. */
int tp_sharpness_measure(tp_sharpness *s, const float *params, tp_sharpness_precond_fn precond,
                         void *precond_ctx, tp_sharpness_value *out, char *err, size_t errlen);

/* The stability threshold of BENCHMARK.md section 9 for a known optimizer id ("sgd",
 * "momentum", "nesterov", "adamw", "rmsprop") at effective learning rate lr (learning_rate x
 * schedule factor), beta1 = 1 - one_minus_beta1 and decoupled weight decay wd (AdamW); NAN for
 * optimizers without a known threshold. *preconditioned is set to 1 when the threshold bounds
 * preconditioned sharpness (adaptive methods), 0 for plain sharpness. */
double tp_sharpness_threshold(const char *optimizer, double lr, double beta1, double wd,
                              int *preconditioned);

/* A measured series against its threshold, by the Edge of Stability pass rule: the value
 * the threshold bounds (preconditioned sharpness when kind is 2, else plain sharpness) over
 * the threshold, from the first measurement within 0.95-1.5x onward (above 1.5x is an early
 * transient: a catapult, or an adaptive method's first steps). */
typedef struct tp_sharpness_summary {
    uint32_t measurements; /* with a value and a threshold */
    int64_t first_reach;   /* index into the series of the first ratio >= 0.95; -1 never */
    uint64_t reach_step;   /* its step */
    uint32_t after;        /* measurements from first_reach on */
    double median_ratio;   /* over those; NAN when none */
    double min_ratio, max_ratio;
    double median_seconds; /* of a measurement, over the whole series */
    double median_iters;
} tp_sharpness_summary;

/* values[i], thresholds[i], seconds[i], iters[i] for n measurements in step order (NaN where a
 * value or threshold is missing: such points are skipped). */
void tp_sharpness_summarize(const double *values, const double *thresholds, const uint64_t *steps,
                            const double *seconds, const uint32_t *iters, size_t n,
                            tp_sharpness_summary *out);

#endif /* TP_SHARPNESS_H */
