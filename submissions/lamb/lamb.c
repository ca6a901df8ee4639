/*
 * lamb.c - the LAMB baseline (You et al., arXiv 1904.00962), optimizer id "lamb", as AlgoPerf's
 * LAMB baseline runs it: optax.lamb(lr, b1, b2, eps=1e-8, weight_decay), which is
 * chain(scale_by_adam, add_decayed_weights(weight_decay), scale_by_trust_ratio(), -lr)
 * (reference_algorithms/paper_baselines/lamb/jax/submission.py; its PyTorch twin is the same
 * rule). With t counting updates from 1, m and v starting at 0, and for every parameter TENSOR T
 * (host->param_tensor_info):
 *
 *     m     = b1 m + (1 - b1) g                      m_hat = m / (1 - b1^t)
 *     v     = b2 v + (1 - b2) g^2                    v_hat = v / (1 - b2^t)
 *     u     = m_hat / (sqrt(v_hat) + eps) + weight_decay * theta
 *     trust_T = ||theta_T|| / ||u_T||   (2-norms over the tensor, theta before the step;
 *                                        1 when either norm is 0, as optax's scale_by_trust_ratio)
 *     theta_T -= lr_t * trust_T * u_T
 *
 * lr_t = learning_rate * lr_factor (the schedule's factor; meant for warmup_cosine) and
 * b1 = 1 - one_minus_beta1. epsilon defaults to 1e-8, the value the baseline passes (optax's own
 * default is 1e-6). Weight decay and the trust ratio apply to ALL tensors, biases and norm
 * scales included: the baseline gives optax.lamb no mask. Tensor roles are not read; only the
 * tensor boundaries are, which must tile the buffer (checked at init). A host without a tensor
 * table (param_tensor_count 0) gets one tensor over the whole buffer.
 *
 * How it is computed: the step's scalars once in double; one fused flat loop in float updates
 * m and v and writes u over the gradient buffer (the gradient is not needed after it); then per
 * tensor the two norms are summed in double and theta_T -= (lr_t trust_T) u_T.
 *
 * Preconditioner (the optional `precondition` hook, BENCHMARK.md section 9). Per tensor the
 * update is
 *     theta_T -= lr_t * P_T^{-1} m  +  lr_t * trust_T * weight_decay * theta_T,
 *     P_T = (1 - b1^t) * (sqrt(v_t / (1 - b2^t)) + eps) / trust_T      (elementwise),
 * i.e. Adam's P divided by the tensor's trust ratio of the last update. The hook returns
 * P^{-1/2} x (adam.h's adam_precondition with scale = 1 / trust_T). What is frozen: v_t, t and
 * the trust ratios of the last update; the trust ratio depends on theta and on the new
 * gradient, so holding it fixed is part of the frozen-P approximation. How weight decay enters:
 * not through P. As AdamW's decoupled decay, it stays a separate shrinkage term, here of
 * strength lr_t * trust_T * weight_decay per tensor (the (2 - eta lambda) factor of section 9's
 * AdamW row, with lambda_T = trust_T * weight_decay). TP_ESTATE before the first update.
 *
 * Not here: min_norm clipping and trust_coefficient (optax's defaults 0 and 1 are what the
 * baseline uses), eps_root, per-tensor decay masks.
 * State: grad/u, m and v, num_params floats each, and one (offset, numel, trust) record per
 * tensor, all allocated at init with host->alloc.
 */
#include <math.h>
#include <stdio.h>

#include <trainperf/trainperf.h>

#include "../common/adam.h"
#include "../common/plugin_util.h"

#define ID "lamb"

/* ---------------------------------------------------------------------------------------- */
/* Hyperparameters (AlgoPerf's names; the ranges are the valid domains, not a search space) */

static const tp_hparam_decl lamb_hparams[] = {ADAM_HPARAM_DECLS, SUB_LOSS_HPARAM_DECLS};

/* ---------------------------------------------------------------------------------------- */
/* State */

/* One parameter tensor: its floats [offset, offset + numel) and its last trust ratio. */
typedef struct lamb_tensor {
    uint64_t offset;
    uint64_t numel;
    double trust; /* of the last update; 0 before it */
} lamb_tensor;

typedef struct lamb_state {
    adam_state adam; /* adam.grad holds the gradient, then u */
    uint32_t num_tensors;
    lamb_tensor *tensors; /* (num_tensors) sorted by offset, tiling [0, n) */
} lamb_state;

/* ---------------------------------------------------------------------------------------- */
/* The tensor table */

/* Read the host's tensors into s->tensors (allocated here), sorted by offset, and check that
 * they tile [0, n): every float updated exactly once. */
static int lamb_read_tensors(lamb_state *s, uint64_t n, const tp_host *host, tp_ctx *ctx,
                             tp_error *err)
{
    uint32_t count = host->param_tensor_count(ctx);
    const uint32_t slots = count > 0 ? count : 1;

    s->tensors = host->alloc(ctx, slots * sizeof *s->tensors);
    if (s->tensors == NULL)
        return sub_fail(err, ID, TP_ENOMEM, "out of memory for the tensor table (%u tensors)",
                        slots);
    s->num_tensors = slots;
    if (count == 0) {
        s->tensors[0].offset = 0;
        s->tensors[0].numel = n;
        return TP_OK;
    }
    for (uint32_t i = 0; i < count; i++) {
        tp_tensor_info ti;
        TP_STRUCT_INIT(&ti, tp_tensor_info);
        int rc = host->param_tensor_info(ctx, i, &ti);
        if (rc != TP_OK)
            return sub_fail(err, ID, rc, "host->param_tensor_info(%u) failed: %s", i,
                            tp_strerror(rc));
        if (!TP_FIELD_PRESENT(&ti, tp_tensor_info, numel) || ti.numel > n ||
            ti.offset > n - ti.numel)
            return sub_fail(err, ID, TP_EINVAL,
                            "tensor %u (\"%s\") lies outside the parameter buffer of %llu floats",
                            i, ti.name != NULL ? ti.name : "?", (unsigned long long)n);
        /* Insertion by offset: tensor tables are short and this runs once. */
        uint32_t k = i;
        while (k > 0 && s->tensors[k - 1].offset > ti.offset) {
            s->tensors[k] = s->tensors[k - 1];
            k--;
        }
        s->tensors[k].offset = ti.offset;
        s->tensors[k].numel = ti.numel;
    }
    uint64_t end = 0;
    for (uint32_t k = 0; k < count; k++) {
        if (s->tensors[k].offset != end)
            break;
        end += s->tensors[k].numel;
    }
    if (end != n)
        return sub_fail(err, ID, TP_EINVAL,
                        "the %u tensors of host->param_tensor_info do not tile the parameter "
                        "buffer of %llu floats (gap or overlap near float %llu); LAMB's per-tensor "
                        "trust ratio needs every float in exactly one tensor",
                        count, (unsigned long long)n, (unsigned long long)end);
    return TP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Entry points */

static int lamb_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    uint64_t n = 0;
    lamb_state *s;
    int rc;

    if ((rc = sub_init_params(host, ctx, ID, &n, err)) != TP_OK)
        return rc;
    if ((s = host->alloc(ctx, sizeof *s)) == NULL)
        return sub_fail(err, ID, TP_ENOMEM, "out of memory for the state");
    if ((rc = lamb_read_tensors(s, n, host, ctx, err)) != TP_OK ||
        (rc = adam_state_init(host, ctx, ID, n, &s->adam, err)) != TP_OK) {
        host->free(ctx, s->tensors);
        host->free(ctx, s);
        return rc;
    }
    *state = s;
    return TP_OK;
}

static int lamb_update(void *state, const tp_host *host, tp_ctx *ctx, const tp_update_args *args,
                       tp_error *err)
{
    lamb_state *L = state;
    adam_state *s = &L->adam;
    int rc;
    float *theta = sub_update_begin(host, ctx, ID, args, s->n, &s->loss_opts, s->grad, err, &rc);
    if (theta == NULL)
        return rc;

    /* Per-step scalars, in double, once. */
    const uint64_t t = s->t + 1;
    const double lr_t = s->lr * args->lr_factor;
    const adam_scalars a = adam_scalars_at(s->beta1, s->beta2, s->eps, t);
    const float rbc1 = (float)(1.0 / a.bc1); /* 1 / (1 - b1^t) */
    const float wd = (float)s->wd;

    /* Moments and the direction u = m_hat / (sqrt(v_hat) + eps) + wd theta, written over the
     * gradient (u[i] is written after g[i] is read, at the same index). */
    {
        const float *restrict p = theta;
        float *restrict m = s->m;
        float *restrict v = s->v;
        float *restrict gu = s->grad;
        const uint64_t n = s->n;
        for (uint64_t i = 0; i < n; i++) {
            const float g = gu[i];
            const float mi = a.b1 * m[i] + a.c1 * g;
            const float vi = a.b2 * v[i] + a.c2 * (g * g);
            m[i] = mi;
            v[i] = vi;
            gu[i] = rbc1 * mi / adam_denom(vi, a.rs2, a.eps) + wd * p[i];
        }
    }

    /* Per tensor: the trust ratio from the norms of theta (before the step) and u. */
    for (uint32_t k = 0; k < L->num_tensors; k++) {
        lamb_tensor *T = &L->tensors[k];
        float *restrict p = theta + T->offset;
        const float *restrict u = s->grad + T->offset;
        double pp = 0.0, uu = 0.0;
        for (uint64_t i = 0; i < T->numel; i++) {
            pp += (double)p[i] * p[i];
            uu += (double)u[i] * u[i];
        }
        T->trust = pp > 0.0 && uu > 0.0 ? sqrt(pp) / sqrt(uu) : 1.0;
        const float scale = (float)(lr_t * T->trust);
        for (uint64_t i = 0; i < T->numel; i++)
            p[i] -= scale * u[i];
    }
    s->t = t;
    return TP_OK;
}

/* out = P^{-1/2} x per tensor, P_T = (1 - b1^t)(sqrt(v_hat) + eps) / trust_T; see the file
 * comment. */
static int lamb_precondition(void *state, const tp_host *host, tp_ctx *ctx, const float *x,
                             float *out, tp_error *err)
{
    const lamb_state *L = state;
    const adam_state *s = &L->adam;
    int rc = adam_state_precondition_ok(s, ID, x, out, err);
    if (rc != TP_OK)
        return rc;
    const adam_scalars a = adam_state_scalars(s);
    for (uint32_t k = 0; k < L->num_tensors; k++) {
        const lamb_tensor *T = &L->tensors[k];
        adam_precondition(T->numel, s->v + T->offset, &a, 1.0 / T->trust, x + T->offset,
                          out + T->offset);
    }
    return TP_OK;
}

static void lamb_destroy(void *state, const tp_host *host, tp_ctx *ctx)
{
    lamb_state *L = state;
    if (L == NULL)
        return;
    adam_state_free(host, ctx, &L->adam);
    host->free(ctx, L->tensors);
    host->free(ctx, L);
}

/* ---------------------------------------------------------------------------------------- */
/* Discovery */

static const tp_plugin_desc lamb_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "lamb",
    .kind = TP_PLUGIN_OPTIMIZER,
    .description = "LAMB: Adam direction plus decay, scaled per tensor by the trust ratio",
    .hparams = lamb_hparams,
    .num_hparams = sizeof lamb_hparams / sizeof lamb_hparams[0],
    .init = lamb_init,
    .update = lamb_update,
    .precondition = lamb_precondition,
    .destroy = lamb_destroy,
};

TP_PLUGIN_ENTRY(i)
{
    return i == 0 ? &lamb_desc : NULL;
}
