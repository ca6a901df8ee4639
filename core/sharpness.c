/*
 * sharpness.c - (preconditioned) sharpness by Lanczos on Hessian-vector products over a fixed
 * batch (tp_sharpness_*), and the stability thresholds of BENCHMARK.md section 9.
 *
 * The preconditioned operator is applied as v -> P^-1/2 H (P^-1/2 v): symmetric, with the
 * eigenvalues of P^-1 H. Each operator keeps its last top eigenvector as the next
 * measurement's start, so along a training run each measurement needs a few products
 * (measured in tests/integration/test_sharpness.c). Not here: model state (batch-norm running
 * statistics move with the train-mode loss calls; see core/hessian.c).
 */
#include "core/sharpness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/lanczos.h"

struct tp_sharpness {
    tp_workload *w;
    tp_sharpness_opts o;
    uint32_t *idx;          /* (examples) 0 .. examples-1 */
    tp_hessian_batch batch; /* the fixed-batch objective */
    tp_hessian hess;        /* its Hessian-vector products */
    size_t n;
    float *u, *hu;  /* (n) scratch of the preconditioned operator */
    float *vec_raw; /* (n) last top eigenvector of H, or unset */
    float *vec_pre; /* (n) last top eigenvector of P^-1/2 H P^-1/2, or unset */
    int have_raw, have_pre;
    /* The operator being iterated. */
    const float *params;
    tp_sharpness_precond_fn precond;
    void *precond_ctx;
};

int tp_sharpness_init(tp_sharpness **out, tp_workload *w, const tp_sharpness_opts *opts, char *err,
                      size_t errlen)
{
    *out = NULL;
    tp_sharpness_opts o = opts ? *opts : (tp_sharpness_opts){0};
    if (!w || o.tol < 0 || o.rel_step < 0 || o.max_iter > 1000) {
        snprintf(err, errlen,
                 "sharpness: bad options (tol >= 0, rel_step >= 0, "
                 "max_iter <= 1000)");
        return TP_EINVAL;
    }
    if (o.examples == 0)
        o.examples = 1000;
    if (o.examples > w->split_size[TP_SPLIT_TRAIN])
        o.examples = (uint32_t)w->split_size[TP_SPLIT_TRAIN];
    if (o.chunk == 0)
        o.chunk = 1024;
    if (o.max_iter == 0)
        o.max_iter = 20;
    if (o.tol == 0)
        o.tol = 1e-3;
    tp_sharpness *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "sharpness: out of memory");
        return TP_ENOMEM;
    }
    s->w = w;
    s->o = o;
    s->n = (size_t)w->num_params;
    s->idx = malloc(sizeof *s->idx * (o.examples ? o.examples : 1));
    s->u = malloc(sizeof *s->u * s->n);
    s->hu = malloc(sizeof *s->hu * s->n);
    s->vec_raw = malloc(sizeof *s->vec_raw * s->n);
    s->vec_pre = malloc(sizeof *s->vec_pre * s->n);
    if (!s->idx || !s->u || !s->hu || !s->vec_raw || !s->vec_pre) {
        tp_sharpness_free(s);
        snprintf(err, errlen, "sharpness: out of memory for %zu-parameter buffers", s->n);
        return TP_ENOMEM;
    }
    for (uint32_t i = 0; i < o.examples; i++)
        s->idx[i] = i;
    int rc = tp_hessian_batch_init(&s->batch, w, s->idx, o.examples, o.chunk, NULL, err, errlen);
    if (rc == TP_OK)
        rc = tp_hessian_init(&s->hess, s->n, tp_hessian_batch_grad, &s->batch, o.rel_step, err,
                             errlen);
    if (rc != TP_OK) {
        tp_sharpness_free(s);
        return rc;
    }
    *out = s;
    return TP_OK;
}

void tp_sharpness_free(tp_sharpness *s)
{
    if (!s)
        return;
    tp_hessian_free(&s->hess);
    tp_hessian_batch_free(&s->batch);
    free(s->idx);
    free(s->u);
    free(s->hu);
    free(s->vec_raw);
    free(s->vec_pre);
    free(s);
}

static int raw_mv(void *ctx, const float *v, float *out, char *err, size_t errlen)
{
    tp_sharpness *s = ctx;
    return tp_hessian_vp(&s->hess, s->params, v, out, err, errlen);
}

static int pre_mv(void *ctx, const float *v, float *out, char *err, size_t errlen)
{
    tp_sharpness *s = ctx;
    int rc = s->precond(s->precond_ctx, v, s->u, err, errlen);
    if (rc == TP_OK)
        rc = tp_hessian_vp(&s->hess, s->params, s->u, s->hu, err, errlen);
    if (rc == TP_OK)
        rc = s->precond(s->precond_ctx, s->hu, out, err, errlen);
    return rc;
}

/* Top eigenvalue of one operator, warm-started from and updating *vec. */
static int top(tp_sharpness *s, tp_lanczos_matvec mv, float *vec, int *have, double *value,
               tp_sharpness_value *out, char *err, size_t errlen)
{
    tp_lanczos_opts lo = {.k = 1,
                          .max_iter = s->o.max_iter,
                          .tol = s->o.tol,
                          .v0 = *have ? vec : NULL,
                          .seed = 0x5ea7f};
    tp_lanczos_result res;
    double ev;
    /* Lanczos copies v0 before the first product and writes the Ritz vector after the last,
     * so vec can be both. */
    int rc = tp_lanczos_top(s->n, mv, s, &lo, &ev, vec, &res, err, errlen);
    if (rc != TP_OK)
        return rc;
    *have = 1;
    *value = ev;
    out->iters += res.iters;
    out->converged = out->converged && res.converged;
    return TP_OK;
}

int tp_sharpness_measure(tp_sharpness *s, const float *params, tp_sharpness_precond_fn precond,
                         void *precond_ctx, tp_sharpness_value *out, char *err, size_t errlen)
{
    double t0 = tp_clock_wall_now();
    uint64_t grads0 = s->hess.grads;
    memset(out, 0, sizeof *out);
    out->sharpness = out->precond_sharpness = NAN;
    out->converged = 1;
    s->params = params;
    s->precond = precond;
    s->precond_ctx = precond_ctx;

    int rc = tp_hessian_batch_grad(&s->batch, params, s->hu, &out->loss, err, errlen);
    if (rc == TP_OK && !isfinite(out->loss)) {
        snprintf(err, errlen,
                 "sharpness: the full-batch training loss is not finite: the parameters diverged "
                 "(NaN or Inf)");
        rc = TP_ENONFINITE;
    }
    if (rc == TP_OK && (!precond || s->o.raw))
        rc = top(s, raw_mv, s->vec_raw, &s->have_raw, &out->sharpness, out, err, errlen);
    if (rc == TP_OK && precond)
        rc = top(s, pre_mv, s->vec_pre, &s->have_pre, &out->precond_sharpness, out, err, errlen);
    out->grads = s->hess.grads - grads0 + 1;
    out->seconds = tp_clock_wall_now() - t0;
    return rc;
}

double tp_sharpness_threshold(const char *opt, double lr, double beta1, double wd,
                              int *preconditioned)
{
    *preconditioned = 0;
    if (!opt || !(lr > 0))
        return NAN;
    /* L2 decay added to the gradient (sgd, momentum, nesterov here) adds wd to every
     * eigenvalue of the Hessian the update sees, so the loss's own threshold is lower by wd. */
    if (!strcmp(opt, "sgd"))
        return 2.0 / lr - wd;
    if (!strcmp(opt, "momentum"))
        return (2.0 + 2.0 * beta1) / lr - wd;
    if (!strcmp(opt, "nesterov"))
        return (2.0 + 2.0 * beta1) / ((1.0 + 2.0 * beta1) * lr) - wd;
    if (!strcmp(opt, "adamw")) {
        *preconditioned = 1;
        return (1.0 + beta1) * (2.0 - lr * wd) / ((1.0 - beta1) * lr);
    }
    if (!strcmp(opt, "rmsprop")) {
        *preconditioned = 1;
        return (2.0 - lr * wd) / lr;
    }
    return NAN;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorted in place); NAN for n == 0. */
static double median(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void tp_sharpness_summarize(const double *values, const double *thresholds, const uint64_t *steps,
                            const double *seconds, const uint32_t *iters, size_t n,
                            tp_sharpness_summary *out)
{
    memset(out, 0, sizeof *out);
    out->first_reach = -1;
    out->median_ratio = out->min_ratio = out->max_ratio = NAN;
    double *tmp = malloc(sizeof *tmp * (n ? n : 1));
    if (!tmp) {
        out->median_seconds = out->median_iters = NAN;
        return;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        double r = values[i] / thresholds[i];
        if (isnan(r) || !(thresholds[i] > 0))
            continue;
        out->measurements++;
        /* A value far above the threshold is a transient (the catapult of a too-large step,
         * or Adam's first updates while v is tiny), not the value settling at it. */
        if (out->first_reach < 0 && r >= 0.95 && r <= 1.5) {
            out->first_reach = (int64_t)i;
            out->reach_step = steps[i];
        }
        if (out->first_reach >= 0) {
            tmp[m++] = r;
            out->min_ratio = isnan(out->min_ratio) ? r : fmin(out->min_ratio, r);
            out->max_ratio = isnan(out->max_ratio) ? r : fmax(out->max_ratio, r);
        }
    }
    out->after = (uint32_t)m;
    out->median_ratio = median(tmp, m);
    for (size_t i = 0; i < n; i++)
        tmp[i] = seconds[i];
    out->median_seconds = median(tmp, n);
    for (size_t i = 0; i < n; i++)
        tmp[i] = iters[i];
    out->median_iters = median(tmp, n);
    free(tmp);
}
