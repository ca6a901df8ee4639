/*
 * hessian.c - central-difference Hessian-vector products (tp_hessian_*) and the fixed-batch
 * training objective they differentiate (tp_hessian_batch_*).
 *
 * Error budget: the central quotient's truncation error is O(h^2) (third derivatives); the
 * rounding of w +- h u to float perturbs coordinate i of the direction by about
 * eps |w_i| / (h |u_i|), i.e. ~6e-4 of it at rel_step 1e-4, independently per coordinate, so it
 * averages out in Rayleigh quotients; the gradients' own float error is divided by 2h. Not here:
 * the preconditioner (core/sharpness.c), any state a workload keeps between calls (batch-norm
 * running statistics are updated by train-mode loss calls; the diagnostics use workloads without
 * such state or accept that).
 */
#include "core/hessian.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double norm2(size_t n, const float *v)
{
    return sqrt(cblas_dsdot((int)n, v, 1, v, 1));
}

int tp_hessian_init(tp_hessian *h, size_t n, tp_hessian_grad_fn grad, void *ctx, double rel_step,
                    char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    if (n == 0 || n > (size_t)INT32_MAX || !grad) {
        snprintf(err, errlen, "hessian: need 1 <= n <= 2^31-1 parameters and a gradient");
        return TP_EINVAL;
    }
    h->wp = malloc(sizeof *h->wp * n);
    h->gm = malloc(sizeof *h->gm * n);
    if (!h->wp || !h->gm) {
        tp_hessian_free(h);
        snprintf(err, errlen, "hessian: out of memory for 2 x %zu floats", n);
        return TP_ENOMEM;
    }
    h->n = n;
    h->grad = grad;
    h->ctx = ctx;
    h->rel_step = rel_step > 0.0 ? rel_step : 1e-4;
    return TP_OK;
}

void tp_hessian_free(tp_hessian *h)
{
    if (!h)
        return;
    free(h->wp);
    free(h->gm);
    memset(h, 0, sizeof *h);
}

int tp_hessian_vp(tp_hessian *h, const float *w, const float *u, float *out, char *err,
                  size_t errlen)
{
    const size_t n = h->n;
    const int ni = (int)n;
    double un = norm2(n, u), wn = norm2(n, w);
    if (!isfinite(un) || !isfinite(wn)) {
        snprintf(err, errlen, "hessian: the parameters or the direction are not finite");
        return TP_ENONFINITE;
    }
    if (un == 0.0) {
        memset(out, 0, sizeof *out * n);
        return TP_OK;
    }
    const double step = h->rel_step * (wn > 0.0 ? wn : 1.0) / un;
    const float s = (float)step;

    memcpy(h->wp, w, sizeof *w * n); /* w - h u */
    cblas_saxpy(ni, -s, u, 1, h->wp, 1);
    int rc = h->grad(h->ctx, h->wp, h->gm, NULL, err, errlen);
    if (rc != TP_OK)
        return rc;
    memcpy(h->wp, w, sizeof *w * n); /* w + h u */
    cblas_saxpy(ni, s, u, 1, h->wp, 1);
    rc = h->grad(h->ctx, h->wp, out, NULL, err, errlen);
    if (rc != TP_OK)
        return rc;
    h->grads += 2;
    const float inv = (float)(0.5 / step);
    for (size_t i = 0; i < n; i++)
        out[i] = (out[i] - h->gm[i]) * inv;
    return TP_OK;
}

int tp_hessian_batch_init(tp_hessian_batch *b, tp_workload *w, const uint32_t *idx, uint32_t count,
                          uint32_t chunk, const tp_loss_opts *opts, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    if (!w || !idx || count == 0 || chunk == 0) {
        snprintf(err, errlen,
                 "hessian: the fixed batch needs a workload, >= 1 example and a "
                 "chunk size >= 1");
        return TP_EINVAL;
    }
    b->g = malloc(sizeof *b->g * w->num_params);
    b->acc = malloc(sizeof *b->acc * w->num_params);
    if (!b->g || !b->acc) {
        tp_hessian_batch_free(b);
        snprintf(err, errlen, "hessian: out of memory for the gradient buffers (%llu params)",
                 (unsigned long long)w->num_params);
        return TP_ENOMEM;
    }
    b->w = w;
    b->idx = idx;
    b->count = count;
    b->chunk = chunk;
    TP_STRUCT_INIT(&b->opts, tp_loss_opts);
    if (opts) {
        b->opts.label_smoothing = opts->label_smoothing;
        b->opts.dropout_rate = opts->dropout_rate;
        b->opts.flags = opts->flags;
    }
    /* Measuring must not change the training: no model state moves (batch-norm running
     * statistics stay as they are). */
    b->opts.flags |= TP_WL_LOSS_FROZEN_STATE;
    return TP_OK;
}

void tp_hessian_batch_free(tp_hessian_batch *b)
{
    if (!b)
        return;
    free(b->g);
    free(b->acc);
    memset(b, 0, sizeof *b);
}

int tp_hessian_batch_grad(void *ctx, const float *params, float *g, double *loss, char *err,
                          size_t errlen)
{
    tp_hessian_batch *b = ctx;
    const uint64_t np = b->w->num_params;
    memset(b->acc, 0, sizeof *b->acc * np);
    double total = 0.0;
    for (uint32_t at = 0; at < b->count; at += b->chunk) {
        uint32_t m = b->count - at < b->chunk ? b->count - at : b->chunk;
        double l = 0.0;
        /* Dropout is off, so the dropout seed does not matter; 0 keeps calls identical. */
        int rc = b->w->vt->loss_and_grad(b->w, params, b->idx + at, NULL, m, &b->opts, 0, b->g, &l,
                                         NULL, err, errlen);
        if (rc != TP_OK)
            return rc;
        total += l * m;
        for (uint64_t i = 0; i < np; i++)
            b->acc[i] += (double)b->g[i] * m;
    }
    const double inv = 1.0 / b->count;
    for (uint64_t i = 0; i < np; i++)
        g[i] = (float)(b->acc[i] * inv);
    if (loss)
        *loss = total * inv;
    return TP_OK;
}
