/*
 * adafactor.c - the Adafactor baseline (Shazeer & Stern 2018), optimizer id "adafactor", as
 * AlgoPerf's archived paper baseline runs it (algorithms/archived_paper_baselines/adafactor:
 * praxis' sharded_adafactor, called with learning_rate, beta1 and weight_decay only, every
 * other argument at its default). With t counting updates from 1, per tensor T:
 *
 *     decay_t = b2 (1 - b2^(t-1)) / (1 - b2^t)           decay_method "adam", b2 = decay_adam
 *          (or 1 - t^-decay_pow when decay_pow > 0: decay_method "pow")
 *     q       = g^2 + eps1                               eps1 = 1e-30
 *     factored T (viewed as B matrices of r x c: its last two dims):
 *         vr_i = decay_t vr_i + (1 - decay_t) mean_j q_ij    (r per matrix: row means)
 *         vc_j = decay_t vc_j + (1 - decay_t) mean_i q_ij    (c per matrix: column means)
 *         v_ij = vr_i vc_j / mean_i vr_i                      (= R_i C_j / sum_i R_i in sums)
 *     other T:  v = decay_t v + (1 - decay_t) q
 *     x       = g / sqrt(v)
 *     d_T     = max(1, rms_T(x) / clip_threshold)        update clipping, per tensor
 *     m       = b1 m + (1 - b1) lr_t x / d_T             momentum of the lr-scaled update
 *     theta  -= m + lr_t weight_decay theta              decoupled decay, scaled by lr_t
 *
 * lr_t = learning_rate * lr_factor (the schedule's factor), b1 = 1 - one_minus_beta1. decay_1 is
 * 0 for both decay methods, so the first v is q itself: "adam" decay subsumes Adam's bias
 * correction, and m has none (as in the reference). Weight decay applies to ALL parameters,
 * biases and norm scales included (the reference passes one float); it does not go through m.
 *
 * Which tensors are factored: AlgoPerf calls sharded_adafactor with factored=True and
 * sort_factored_second_moment_dims=False, so EVERY tensor of two or more dims is factored over
 * its last two dims, whatever their sizes (min_dim_size_to_factor=128 is only read by the
 * sorted-dims path the baseline does not take). Here a tensor (shape from
 * host->param_tensor_info) is factored when ndim >= 2 and both of its last two dims are >=
 * min_dim_size_to_factor; the default 1 is the baseline's rule, 128 praxis' rule for 2-D
 * tensors. Vectors (biases, norm scales) always keep a full v.
 *
 * Reference defaults not taken: the JAX baseline stores m quantized to int8 (quantized_dtype);
 * here m is float32, as in the baseline's PyTorch twin. multiply_by_parameter_scale (and with
 * it epsilon2), layerwise_adaptation, nesterov are off in the baseline and not implemented; the
 * "HACK" terms (1e-30 * mean(q) added to decay_t and to the step) and inf_to_nan are left out.
 *
 * Preconditioner (the optional `precondition` hook, BENCHMARK.md section 9): the update is
 * theta -= m (+ decay), m = b1 m + (1 - b1) lr_t P^{-1} g with, elementwise in tensor T,
 *     P = sqrt(v_t) * d_T,
 * v_t the (factored) estimate and d_T the clipping denominator of the last update t, both
 * computed by the expressions the update uses. Why this P: frozen, with lr frozen, m_t =
 * lr P^{-1} u_t where u_t = b1 u + (1 - b1) g is the momentum of gradients that Adam's P acts on
 * (adam.h), so the factor (1 - b1) stays in the momentum, not in P, and Adam's threshold
 * (2 + 2 b1) / ((1 - b1) eta) applies unchanged; there is no (1 - b1^t) factor because
 * Adafactor's momentum is not bias-corrected; the clipping scale is part of P because it
 * divides the step of the whole tensor. The hook returns P^{-1/2} x. Before the first update P
 * is undefined: TP_ESTATE.
 *
 * Not here: relative step sizes, parameter scaling, the int8 momentum, non-finite detection
 * (the host's). State: grad and m (num_params floats each), v (full or factored statistics),
 * the tensor table and two scratch rows, allocated at init with host->alloc.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <trainperf/trainperf.h>

#include "../common/plugin_util.h"

#define ID "adafactor"

/* Added to g^2 before the moments (Algorithm 4 of the paper; the reference's default). */
#define ADAFACTOR_EPS1 1e-30f

/* ---------------------------------------------------------------------------------------- */
/* Hyperparameters (AlgoPerf's names; the ranges are the valid domains, not a search space) */

static const tp_hparam_decl adafactor_hparams[] = {
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "learning_rate", TP_HPARAM_FLOAT, 1e-3, 1e-6, 10.0,
     "peak step size, before the schedule's factor"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "one_minus_beta1", TP_HPARAM_FLOAT, 0.1, 1e-6, 1.0,
     "1 - beta1 (momentum of the clipped, lr-scaled update); 1: no momentum"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "weight_decay", TP_HPARAM_FLOAT, 0.0, 0.0, 10.0,
     "decoupled weight decay, scaled by lr_t, all parameters"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "decay_adam", TP_HPARAM_FLOAT, 0.99, 0.0, 0.999999,
     "second-moment decay b2 (decay_t = b2 (1 - b2^(t-1)) / (1 - b2^t))"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "decay_pow", TP_HPARAM_FLOAT, 0.0, 0.0, 1.0,
     "when > 0, decay_t = 1 - t^-decay_pow replaces decay_adam's (0.8 in the paper)"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "clip_threshold", TP_HPARAM_FLOAT, 1.0, 1e-3, 1e30,
     "update clipping: x /= max(1, rms(x) / clip_threshold) per tensor"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "min_dim_size_to_factor", TP_HPARAM_INT, 1.0, 1.0,
     1073741824.0, "factor a tensor of ndim >= 2 when its last two dims are both >= this (1: all)"},
    SUB_LOSS_HPARAM_DECLS,
};

/* ---------------------------------------------------------------------------------------- */
/* State */

/* One parameter tensor and where its second-moment statistics live in `v`. */
typedef struct adafactor_tensor {
    uint64_t offset, numel; /* in the flat parameter buffer */
    uint64_t rows, cols;    /* factored: numel = blocks * rows * cols */
    uint64_t blocks;
    uint64_t stat; /* offset into v: numel floats, or blocks * rows (vr) then blocks * cols (vc) */
    int factored;  /* keeps vr and vc rather than a full v */
    float clip;    /* d_T of the last update */
    const char *name; /* for messages */
} adafactor_tensor;

typedef struct adafactor_state {
    uint64_t n;                /* floats in the parameter buffer */
    uint64_t t;                /* updates taken */
    uint32_t num_tensors;      /* sorted by offset, tiling [0, n) */
    adafactor_tensor *tensors; /* (num_tensors) */
    float *grad;               /* (n) gradient, then x = g / sqrt(v) in place */
    float *m;                  /* (n) momentum */
    float *v;                  /* (sum of the tensors' statistics) full v or vr, vc */
    double *colsum;            /* (max cols) scratch: column sums of q */
    float *fac;                /* (max rows + cols) scratch: row and column factors */
    double lr, beta1, wd, decay_adam, decay_pow, clip_threshold;
    tp_loss_opts loss_opts;
} adafactor_state;

/* ---------------------------------------------------------------------------------------- */
/* Expressions shared by the update and the precondition hook */

/* decay_t of update t >= 1 (0 at t = 1 for both methods). */
static double adafactor_decay(const adafactor_state *s, uint64_t t)
{
    if (s->decay_pow > 0.0)
        return 1.0 - pow((double)t, -s->decay_pow);
    const double b = s->decay_adam;
    return b * (1.0 - pow(b, (double)(t - 1))) / (1.0 - pow(b, (double)t));
}

/* Mean of a matrix's row statistics vr (rows floats), in double. */
static double adafactor_row_mean(const float *vr, uint64_t rows)
{
    double sum = 0.0;
    for (uint64_t i = 0; i < rows; i++)
        sum += vr[i];
    return sum / (double)rows;
}

/* Row factor 1 / sqrt(vr_i / mean vr) and column factor 1 / sqrt(vc_j): 1 / sqrt(v_ij) is
 * their product. */
static inline float adafactor_row_factor(float vr, float mean)
{
    return 1.0f / sqrtf(vr / mean);
}

static inline float adafactor_col_factor(float vc)
{
    return 1.0f / sqrtf(vc);
}

/* ---------------------------------------------------------------------------------------- */
/* Init: the tensor table */

static int adafactor_cmp_offset(const void *a, const void *b)
{
    const adafactor_tensor *x = a, *y = b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Read the host's tensor table into s->tensors (already allocated), decide which tensors are
 * factored, lay out v; *v_floats, *max_cols and *max_rc are the sizes of v and the scratch. */
static int adafactor_read_tensors(adafactor_state *s, const tp_host *host, tp_ctx *ctx,
                                  uint64_t min_dim, uint64_t *v_floats, uint64_t *max_cols,
                                  uint64_t *max_rc, tp_error *err)
{
    uint64_t stat = 0, covered = 0;
    *max_cols = 1;
    *max_rc = 1;
    for (uint32_t k = 0; k < s->num_tensors; k++) {
        tp_tensor_info ti;
        TP_STRUCT_INIT(&ti, tp_tensor_info);
        int rc = host->param_tensor_info(ctx, k, &ti);
        if (rc != TP_OK)
            return sub_fail(err, ID, rc, "host->param_tensor_info(%u) failed: %s", k,
                            tp_strerror(rc));
        const char *name = ti.name != NULL ? ti.name : "?";
        uint64_t numel = 1;
        for (uint32_t d = 0; d < ti.ndim && d < TP_MAX_DIMS; d++)
            numel *= ti.shape[d];
        if (ti.ndim < 1 || ti.ndim > TP_MAX_DIMS || numel != ti.numel || numel == 0 ||
            ti.offset > s->n || ti.numel > s->n - ti.offset)
            return sub_fail(err, ID, TP_ESTATE,
                            "tensor %u (%s): ndim %u, numel %llu at offset %llu does not fit its "
                            "shape or the %llu-float parameter buffer",
                            k, name, ti.ndim, (unsigned long long)ti.numel,
                            (unsigned long long)ti.offset, (unsigned long long)s->n);
        adafactor_tensor *t = &s->tensors[k];
        t->name = ti.name;
        t->offset = ti.offset;
        t->numel = ti.numel;
        t->clip = 1.0f;
        t->factored =
            ti.ndim >= 2 && ti.shape[ti.ndim - 2] >= min_dim && ti.shape[ti.ndim - 1] >= min_dim;
        t->stat = stat;
        if (t->factored) {
            t->rows = ti.shape[ti.ndim - 2];
            t->cols = ti.shape[ti.ndim - 1];
            t->blocks = ti.numel / (t->rows * t->cols);
            stat += t->blocks * (t->rows + t->cols);
            if (t->cols > *max_cols)
                *max_cols = t->cols;
            if (t->rows + t->cols > *max_rc)
                *max_rc = t->rows + t->cols;
        } else {
            t->rows = t->cols = t->blocks = 0;
            stat += t->numel;
        }
        covered += t->numel;
    }
    /* The tensors must tile the buffer exactly: each float gets one tensor's rule. */
    qsort(s->tensors, s->num_tensors, sizeof *s->tensors, adafactor_cmp_offset);
    for (uint32_t k = 1; k < s->num_tensors; k++)
        if (s->tensors[k - 1].offset + s->tensors[k - 1].numel > s->tensors[k].offset)
            return sub_fail(err, ID, TP_ESTATE, "tensors %s and %s overlap in the parameter buffer",
                            s->tensors[k - 1].name ? s->tensors[k - 1].name : "?",
                            s->tensors[k].name ? s->tensors[k].name : "?");
    if (covered != s->n)
        return sub_fail(err, ID, TP_ESTATE,
                        "the tensor table covers %llu of the %llu parameters; Adafactor needs "
                        "every parameter in exactly one tensor",
                        (unsigned long long)covered, (unsigned long long)s->n);
    *v_floats = stat;
    return TP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Entry points */

static int adafactor_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    double omb1 = 0.0, min_dim = 1.0;
    uint64_t n = 0, v_floats = 0, max_cols = 1, max_rc = 1;
    adafactor_state *s = NULL;
    int rc;

    if ((rc = sub_init_params(host, ctx, ID, &n, err)) != TP_OK)
        return rc;
    s = host->alloc(ctx, sizeof *s);
    if (s == NULL)
        return sub_fail(err, ID, TP_ENOMEM, "out of memory for the state");
    s->n = n;
    if ((rc = sub_hparam(host, ctx, ID, "learning_rate", &s->lr, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "one_minus_beta1", &omb1, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "weight_decay", &s->wd, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "decay_adam", &s->decay_adam, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "decay_pow", &s->decay_pow, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "clip_threshold", &s->clip_threshold, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "min_dim_size_to_factor", &min_dim, err)) != TP_OK ||
        (rc = sub_loss_opts(host, ctx, ID, &s->loss_opts, err)) != TP_OK)
        goto error;
    s->beta1 = 1.0 - omb1;

    s->num_tensors = host->param_tensor_count(ctx);
    if (s->num_tensors == 0) {
        rc = sub_fail(err, ID, TP_ESTATE,
                      "the host describes no parameter tensors; Adafactor needs their shapes");
        goto error;
    }
    s->tensors = host->alloc(ctx, s->num_tensors * sizeof *s->tensors);
    if (s->tensors == NULL) {
        rc = sub_fail(err, ID, TP_ENOMEM, "out of memory for the table of %u tensors",
                      s->num_tensors);
        goto error;
    }
    if ((rc = adafactor_read_tensors(s, host, ctx, min_dim < 1.0 ? 1 : (uint64_t)min_dim, &v_floats,
                                     &max_cols, &max_rc, err)) != TP_OK)
        goto error;

    /* Zeroed by the host: m = v = 0 before the first update. */
    s->grad = host->alloc(ctx, n * sizeof(float));
    s->m = host->alloc(ctx, n * sizeof(float));
    s->v = host->alloc(ctx, v_floats * sizeof(float));
    s->colsum = host->alloc(ctx, max_cols * sizeof(double));
    s->fac = host->alloc(ctx, max_rc * sizeof(float));
    if (s->grad == NULL || s->m == NULL || s->v == NULL || s->colsum == NULL || s->fac == NULL) {
        rc = sub_fail(err, ID, TP_ENOMEM,
                      "out of memory for grad, m (2 x %llu floats) and the second moments "
                      "(%llu floats)",
                      (unsigned long long)n, (unsigned long long)v_floats);
        goto error;
    }
    *state = s;
    return TP_OK;

error:
    host->free(ctx, s->tensors);
    host->free(ctx, s->grad);
    host->free(ctx, s->m);
    host->free(ctx, s->v);
    host->free(ctx, s->colsum);
    host->free(ctx, s->fac);
    host->free(ctx, s);
    return rc;
}

/* The reductions below (sums of q and of x^2) run in ADAFACTOR_LANES interleaved double partial
 * sums, added in a fixed order at the end: deterministic, and a loop the compiler can
 * vectorise without reassociating anything (a single running sum is a serial chain that
 * cost more than the rest of the step on fmnist_mlp). */
#define ADAFACTOR_LANES 8

static double adafactor_lanes_sum(const double *acc)
{
    double sum = 0.0;
    for (int l = 0; l < ADAFACTOR_LANES; l++)
        sum += acc[l];
    return sum;
}

/* Full v of one tensor: v = decay v + mix q; g is replaced by x = g / sqrt(v). Returns the sum
 * of x^2. */
static double adafactor_full(uint64_t numel, float decay, float mix, float *restrict v,
                             float *restrict g)
{
    double acc[ADAFACTOR_LANES] = {0};
    uint64_t i = 0;
    for (; i + ADAFACTOR_LANES <= numel; i += ADAFACTOR_LANES) {
        for (int l = 0; l < ADAFACTOR_LANES; l++) {
            const float vi = decay * v[i + l] + mix * (g[i + l] * g[i + l] + ADAFACTOR_EPS1);
            const float xi = g[i + l] / sqrtf(vi);
            v[i + l] = vi;
            g[i + l] = xi;
            acc[l] += (double)xi * xi;
        }
    }
    for (; i < numel; i++) {
        const float vi = decay * v[i] + mix * (g[i] * g[i] + ADAFACTOR_EPS1);
        const float xi = g[i] / sqrtf(vi);
        v[i] = vi;
        g[i] = xi;
        acc[0] += (double)xi * xi;
    }
    return adafactor_lanes_sum(acc);
}

/* Factored v of one (rows, cols) matrix: vr (rows), vc (cols) updated from q; g is replaced
 * by x = g * row_factor_i * col_factor_j. Returns the sum of x^2. */
static double adafactor_factored(uint64_t rows, uint64_t cols, float decay, float mix,
                                 float *restrict vr, float *restrict vc, double *restrict colsum,
                                 float *restrict fac, float *restrict g)
{
    /* Row and column sums of q = g^2 + eps1, one pass. */
    for (uint64_t j = 0; j < cols; j++)
        colsum[j] = 0.0;
    for (uint64_t i = 0; i < rows; i++) {
        const float *gi = g + i * cols;
        double acc[ADAFACTOR_LANES] = {0};
        uint64_t j = 0;
        for (; j + ADAFACTOR_LANES <= cols; j += ADAFACTOR_LANES) {
            for (int l = 0; l < ADAFACTOR_LANES; l++) {
                const double q = (double)(gi[j + l] * gi[j + l] + ADAFACTOR_EPS1);
                acc[l] += q;
                colsum[j + l] += q;
            }
        }
        for (; j < cols; j++) {
            const double q = (double)(gi[j] * gi[j] + ADAFACTOR_EPS1);
            acc[0] += q;
            colsum[j] += q;
        }
        vr[i] = decay * vr[i] + mix * (float)(adafactor_lanes_sum(acc) / (double)cols);
    }
    for (uint64_t j = 0; j < cols; j++)
        vc[j] = decay * vc[j] + mix * (float)(colsum[j] / (double)rows);

    /* The factors, then x in place of g. */
    float *rf = fac, *cf = fac + rows;
    const float mean = (float)adafactor_row_mean(vr, rows);
    for (uint64_t i = 0; i < rows; i++)
        rf[i] = adafactor_row_factor(vr[i], mean);
    for (uint64_t j = 0; j < cols; j++)
        cf[j] = adafactor_col_factor(vc[j]);

    double acc[ADAFACTOR_LANES] = {0};
    for (uint64_t i = 0; i < rows; i++) {
        float *gi = g + i * cols;
        const float rfi = rf[i];
        uint64_t j = 0;
        for (; j + ADAFACTOR_LANES <= cols; j += ADAFACTOR_LANES) {
            for (int l = 0; l < ADAFACTOR_LANES; l++) {
                const float xij = gi[j + l] * rfi * cf[j + l];
                gi[j + l] = xij;
                acc[l] += (double)xij * xij;
            }
        }
        for (; j < cols; j++) {
            const float xij = gi[j] * rfi * cf[j];
            gi[j] = xij;
            acc[0] += (double)xij * xij;
        }
    }
    return adafactor_lanes_sum(acc);
}

static int adafactor_update(void *state, const tp_host *host, tp_ctx *ctx,
                            const tp_update_args *args, tp_error *err)
{
    adafactor_state *s = state;
    int rc;

    float *theta = sub_update_begin(host, ctx, ID, args, s->n, &s->loss_opts, s->grad, err, &rc);
    if (theta == NULL)
        return rc;

    /* Per-step scalars, in double, once. */
    const uint64_t t = s->t + 1;
    const double lr_t = s->lr * args->lr_factor;
    const double decay_t = adafactor_decay(s, t);
    const float decay = (float)decay_t, mix = (float)(1.0 - decay_t);
    const float b1 = (float)s->beta1;
    const float wdecay = (float)(lr_t * s->wd); /* lr_t * weight_decay */

    for (uint32_t k = 0; k < s->num_tensors; k++) {
        adafactor_tensor *T = &s->tensors[k];
        float *restrict g = s->grad + T->offset;
        float *restrict v = s->v + T->stat;
        double sumsq = 0.0;

        /* The second moments, and x = g / sqrt(v) in place of g. */
        if (T->factored) {
            const uint64_t rc_ = T->rows * T->cols;
            for (uint64_t b = 0; b < T->blocks; b++)
                sumsq += adafactor_factored(T->rows, T->cols, decay, mix, v + b * T->rows,
                                            v + T->blocks * T->rows + b * T->cols, s->colsum,
                                            s->fac, g + b * rc_);
        } else {
            sumsq = adafactor_full(T->numel, decay, mix, v, g);
        }

        /* Update clipping on the tensor's RMS, then momentum and the step, fused. */
        const double d = fmax(1.0, sqrt(sumsq / (double)T->numel) / s->clip_threshold);
        T->clip = (float)d;
        const float step = (float)((1.0 - s->beta1) * lr_t / d); /* (1 - b1) lr_t / d_T */
        float *restrict p = theta + T->offset;
        float *restrict m = s->m + T->offset;
        for (uint64_t i = 0; i < T->numel; i++) {
            const float mi = b1 * m[i] + step * g[i];
            m[i] = mi;
            p[i] -= mi + wdecay * p[i];
        }
    }
    s->t = t;
    return TP_OK;
}

/* out = P^{-1/2} x, P = sqrt(v_t) d_T of the last update; see the file comment. */
static int adafactor_precondition(void *state, const tp_host *host, tp_ctx *ctx, const float *x,
                                  float *out, tp_error *err)
{
    const adafactor_state *s = state;

    if (x == NULL || out == NULL)
        return sub_fail(err, ID, TP_EINVAL, "precondition: NULL vector");
    if (s->t == 0)
        return sub_fail(err, ID, TP_ESTATE,
                        "precondition: no update taken yet, so Adafactor's preconditioner "
                        "sqrt(v) * clip is undefined; call it after update");
    for (uint32_t k = 0; k < s->num_tensors; k++) {
        const adafactor_tensor *T = &s->tensors[k];
        const float *v = s->v + T->stat;
        const float *xt = x + T->offset;
        float *ot = out + T->offset;
        const double d = T->clip;
        if (!T->factored) {
            for (uint64_t i = 0; i < T->numel; i++)
                ot[i] = (float)((double)xt[i] / sqrt((double)sqrtf(v[i]) * d));
            continue;
        }
        /* 1 / sqrt(v_ij) = row_factor_i * col_factor_j, so P^{-1/2} = sqrt(rf cf / d). */
        const uint64_t rc_ = T->rows * T->cols;
        for (uint64_t b = 0; b < T->blocks; b++) {
            const float *vr = v + b * T->rows, *vc = v + T->blocks * T->rows + b * T->cols;
            const float mean = (float)adafactor_row_mean(vr, T->rows);
            for (uint64_t i = 0; i < T->rows; i++) {
                const double rf = adafactor_row_factor(vr[i], mean);
                for (uint64_t j = 0; j < T->cols; j++) {
                    const double inv = rf * (double)adafactor_col_factor(vc[j]);
                    const uint64_t e = b * rc_ + i * T->cols + j;
                    ot[e] = (float)((double)xt[e] * sqrt(inv / d));
                }
            }
        }
    }
    return TP_OK;
}

static void adafactor_destroy(void *state, const tp_host *host, tp_ctx *ctx)
{
    adafactor_state *s = state;
    if (s == NULL)
        return;
    host->free(ctx, s->tensors);
    host->free(ctx, s->grad);
    host->free(ctx, s->m);
    host->free(ctx, s->v);
    host->free(ctx, s->colsum);
    host->free(ctx, s->fac);
    host->free(ctx, s);
}

/* ---------------------------------------------------------------------------------------- */
/* Discovery */

static const tp_plugin_desc adafactor_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "adafactor",
    .kind = TP_PLUGIN_OPTIMIZER,
    .description = "Adafactor (factored second moments, update clipping, momentum), AlgoPerf's "
                   "sharded_adafactor baseline",
    .hparams = adafactor_hparams,
    .num_hparams = sizeof adafactor_hparams / sizeof adafactor_hparams[0],
    .init = adafactor_init,
    .update = adafactor_update,
    .precondition = adafactor_precondition,
    .destroy = adafactor_destroy,
};

TP_PLUGIN_ENTRY(i)
{
    return i == 0 ? &adafactor_desc : NULL;
}
