/*
 * hessian.h - Hessian-vector products from two gradient evaluations (central differences),
 * in the flat parameter layout, and the full-batch gradient of a workload on a fixed set of
 * training examples that they differentiate.
 *
 *   H(w) u ~ (g(w + h u) - g(w - h u)) / 2h,   h = rel_step * ||w|| / ||u||
 *
 * so the perturbation is rel_step of the parameters' norm (BENCHMARK.md section 9: about
 * 1e-4 gives top-eigenvalue errors near 1e-5 relative in float32; steps of 1e-2 and above add
 * curvature bias, 1e-5 and below add rounding noise). The products are symmetric up to that
 * error, which is what Lanczos needs. Not here: exact second-order autodiff, the
 * preconditioned operator (core/sharpness.c composes it).
 */
#ifndef TP_HESSIAN_H
#define TP_HESSIAN_H

#include <stddef.h>
#include <stdint.h>

#include "core/nn/workload.h"

/* g = the gradient of a fixed objective at w (n floats, overwritten); *loss its value when
 * loss != NULL. 0 or a negative TP_E... code with a message in err. */
typedef int (*tp_hessian_grad_fn)(void *ctx, const float *w, float *g, double *loss, char *err,
                                  size_t errlen);

typedef struct tp_hessian {
    size_t n;
    tp_hessian_grad_fn grad;
    void *ctx;
    double rel_step; /* ||h u|| / ||w|| */
    float *wp;       /* (n) w +- h u */
    float *gm;       /* (n) g(w - h u) */
    uint64_t grads;  /* gradient evaluations made so far */
} tp_hessian;

/* rel_step <= 0 picks 1e-4. TP_EINVAL for n == 0 or a NULL grad, TP_ENOMEM. */
int tp_hessian_init(tp_hessian *h, size_t n, tp_hessian_grad_fn grad, void *ctx, double rel_step,
                    char *err, size_t errlen);
/* Scratch freed; h zeroed. NULL and a zeroed h are no-ops. */
void tp_hessian_free(tp_hessian *h);
/* out = H(w) u (n floats each; out may not alias w or u). A zero u gives a zero out without
 * evaluating anything. When ||w|| == 0, h = rel_step / ||u||. */
int tp_hessian_vp(tp_hessian *h, const float *w, const float *u, float *out, char *err,
                  size_t errlen);

/* ---------------------------------------------------------------------------------------- */
/* The objective of the sharpness diagnostics: a workload's training loss, full batch over a
 * fixed list of training examples, evaluated in chunks so memory stays at one batch's. */

typedef struct tp_hessian_batch {
    tp_workload *w;
    const uint32_t *idx; /* the fixed examples (training split indices) */
    uint32_t count;
    uint32_t chunk;    /* examples per loss_and_grad call */
    tp_loss_opts opts; /* label smoothing, dropout 0: a deterministic objective */
    float *g;          /* (num_params) one chunk's gradient */
    double *acc;       /* (num_params) the weighted sum of chunk gradients */
} tp_hessian_batch;

/* TP_EINVAL for count == 0 or chunk == 0, TP_ENOMEM. opts may be NULL (no smoothing, no
 * dropout). */
int tp_hessian_batch_init(tp_hessian_batch *b, tp_workload *w, const uint32_t *idx, uint32_t count,
                          uint32_t chunk, const tp_loss_opts *opts, char *err, size_t errlen);
void tp_hessian_batch_free(tp_hessian_batch *b);
/* A tp_hessian_grad_fn over a tp_hessian_batch: the mean loss over all `count` examples and
 * its gradient (chunk means weighted by chunk sizes, summed in double). */
int tp_hessian_batch_grad(void *batch, const float *w, float *g, double *loss, char *err,
                          size_t errlen);

#endif /* TP_HESSIAN_H */
