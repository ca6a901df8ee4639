/*
 * ops.c - the ops of core/nn: for each, a forward / backward pair of plain kernels (outputs
 * first, backward accumulating with +=), the function that checks shapes, runs the forward and
 * records the op on the tape, and the one switch that replays an op backward.
 *
 * Matrix products go through cblas_sgemm with transpose flags, never materialised transposes.
 * Elementwise kernels are plain loops over contiguous rows that the compiler vectorises.
 *
 * Not here: convolutions, normalisation, attention, reductions other than the (weighted) sum.
 */
#include "core/nn/nn_impl.h"

#include <assert.h>
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* A memory-bound loop compiled for AVX-512, AVX2 and the x86-64 baseline, the dynamic loader
 * picking one by CPU; the same bits from each (no multiply-add to contract). */
#if defined(__x86_64__) && defined(__GNUC__)
#define TP__OPS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TP__OPS_CLONES
#endif

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_C 0.044715f

/* ---------------------------------------------------------------------------------------- */
/* tanh and the GELU sigmoid */

/* Written without branches or library calls so that loops over them vectorise: glibc's tanhf is
 * 15-25 ns an element here, which made a tanh MLP step three times slower than a ReLU one; these
 * are 2-3 ns. Selects are done on the bits, because GCC keeps float compares as branches. */

/* min(|v|, limit) for limit > 0; NaN gives limit (callers restore NaN where it matters). */
static inline float abs_clamped(float v, float limit)
{
    int32_t a = tp__float_to_bits(fabsf(v)), l = tp__float_to_bits(limit);
    return tp__bits_to_float(a < l ? a : l);
}

/* expm1(t) for t in [0, 80]: t = k ln2 + r with |r| <= ln2 / 2, expm1(r) by a degree-7
 * polynomial, expm1(t) = 2^k expm1(r) + (2^k - 1). Exact to about 2 ulp. */
static inline float expm1_pos(float t)
{
    float kf = (t * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(t / ln2) */
    float r = t - kf * 0.693145751953125f;                             /* ln2, high part */
    r = r - kf * 1.428606765330187045e-06f;                            /* ln2, low part */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    float em = r + r * r * p;                                     /* expm1(r) */
    float s = tp__bits_to_float(((int32_t)kf + 127) * (1 << 23)); /* 2^k, k in [0, 116] */
    return s * em + (s - 1.0f);
}

/* tanh(v) = e / (e + 2) with e = expm1(2|v|), signed. Within 2.3 ulp of the exact value
 * (glibc's tanhf: 2.1); |v| >= 9 gives +-1; NaN stays NaN. */
static inline float tp_tanhf(float v)
{
    float e = expm1_pos(2.0f * abs_clamped(v, 9.0f));
    float th = copysignf(e / (e + 2.0f), v);
    int32_t nan_mask = (0x7f800000 - tp__float_to_bits(fabsf(v))) >> 31; /* all ones for NaN */
    return tp__select_bits(nan_mask, v, th);
}

/* q = sigmoid(2u) = (1 + tanh(u)) / 2 and 1 - q, both without the cancellation of 1 + tanh(u)
 * for negative u: with e = expm1(2|u|), they are (e + 1) / (e + 2) and 1 / (e + 2), swapped
 * when u < 0. */
static inline void sigmoid2(float u, float *q, float *one_minus_q)
{
    float e = expm1_pos(2.0f * abs_clamped(u, 40.0f));
    float big = (e + 1.0f) / (e + 2.0f), small = 1.0f / (e + 2.0f);
    int32_t neg = tp__float_to_bits(u) >> 31; /* all ones when u < 0 */
    *q = tp__select_bits(neg, small, big);
    *one_minus_q = tp__select_bits(neg, big, small);
}

/* ---------------------------------------------------------------------------------------- */
/* Kernels */

/* out (B, OC) = inp (B, C) @ weight (C, OC). */
static void matmul_forward(float *out, const float *inp, const float *weight, int B, int C, int OC)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, OC, C, 1.0f, inp, C, weight, OC, 0.0f,
                out, OC);
}

/* dinp (B, C) += dout @ weight^T, dweight (C, OC) += inp^T @ dout; either may be NULL. The
 * betas are 0 for a gradient written here first (see tp__grad_beta). */
static void matmul_backward(float *dinp, float beta_inp, float *dweight, float beta_weight,
                            const float *dout, const float *inp, const float *weight, int B, int C,
                            int OC)
{
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, OC, B, 1.0f, inp, C, dout, OC,
                    beta_weight, dweight, OC);
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, C, OC, 1.0f, dout, OC, weight, OC,
                    beta_inp, dinp, C);
}

/* out (B, OC) = inp + bias (OC) on every row; out may be inp. */
static void bias_forward(float *out, const float *inp, const float *bias, size_t B, size_t OC)
{
    for (size_t i = 0; i < B; i++) {
        const float *x = inp + i * OC;
        float *y = out + i * OC;
        for (size_t j = 0; j < OC; j++)
            y[j] = x[j] + bias[j];
    }
}

/* dbias (OC) += sum over rows of dout (B, OC). */
static void colsum_backward(float *dbias, const float *dout, size_t B, size_t OC)
{
    for (size_t i = 0; i < B; i++) {
        const float *d = dout + i * OC;
        for (size_t j = 0; j < OC; j++)
            dbias[j] += d[j];
    }
}

/* dinp (N) += dout (N). */
static void add_backward(float *dinp, const float *dout, size_t N)
{
    for (size_t i = 0; i < N; i++)
        dinp[i] += dout[i];
}

static void relu_forward(float *out, const float *inp, size_t N)
{
    for (size_t i = 0; i < N; i++)
        out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

/* All ones where v > 0 (NaN is not), zero elsewhere: the bits of v minus one, unsigned, are
 * below those of +inf exactly for +denormals to +inf. An integer compare, so the loops using
 * it vectorise, where GCC keeps `v > 0.0f ? a : b` as a branch (a mispredicted one for half
 * the elements of a ReLU). */
static inline int32_t positive_mask(float v)
{
    return -(int32_t)((uint32_t)tp__float_to_bits(v) - 1u < 0x7f800000u);
}

/* dinp (+)= dout where x > 0, 0 elsewhere; x is the input or the output (out > 0 exactly where
 * inp > 0). overwrite: dinp holds nothing yet and is written, as 0 + the value, the bits that
 * adding to a zeroed buffer gives (no -0), without the zeroing pass. One pass of three streams
 * instead of a memset and then four (the two reads, the read and the write of dinp). */
TP__OPS_CLONES static void relu_backward(float *dinp, const float *dout, const float *x, size_t N,
                                         int overwrite)
{
    if (overwrite)
        for (size_t i = 0; i < N; i++)
            dinp[i] = 0.0f + tp__bits_to_float(tp__float_to_bits(dout[i]) & positive_mask(x[i]));
    else
        for (size_t i = 0; i < N; i++)
            dinp[i] += tp__bits_to_float(tp__float_to_bits(dout[i]) & positive_mask(x[i]));
}

static void tanh_forward(float *out, const float *inp, size_t N)
{
    for (size_t i = 0; i < N; i++)
        out[i] = tp_tanhf(inp[i]);
}

/* Uses the output: tanh' = 1 - tanh^2. */
static void tanh_backward(float *dinp, const float *dout, const float *out, size_t N)
{
    for (size_t i = 0; i < N; i++)
        dinp[i] += dout[i] * (1.0f - out[i] * out[i]);
}

/* gelu(x) = x (1 + tanh(u)) / 2 = x sigmoid(2u), u = sqrt(2 / pi) (x + 0.044715 x^3). */
static inline float gelu(float x)
{
    float q, one_minus_q;
    sigmoid2(GELU_K * (x + GELU_C * x * x * x), &q, &one_minus_q);
    return x * q;
}

/* gelu'(x) = q + 2 x q (1 - q) u'(x). */
static inline float gelu_grad(float x)
{
    float q, one_minus_q;
    sigmoid2(GELU_K * (x + GELU_C * x * x * x), &q, &one_minus_q);
    float du = GELU_K * (1.0f + 3.0f * GELU_C * x * x);
    return q + 2.0f * x * q * one_minus_q * du;
}

/* silu(x) = x sigmoid(x), sigmoid(x) = sigmoid2(x / 2): no overflow and no cancellation in either
 * tail. The sigmoid stops shrinking at x = -80 (1.8e-35), so silu(-1e4) is -1.8e-31, not NaN. */
static inline float silu(float x)
{
    float s, one_minus_s;
    sigmoid2(0.5f * x, &s, &one_minus_s);
    return x * s;
}

/* silu'(x) = s + x s (1 - s). */
static inline float silu_grad(float x)
{
    float s, one_minus_s;
    sigmoid2(0.5f * x, &s, &one_minus_s);
    return s + x * s * one_minus_s;
}

static void silu_forward(float *out, const float *inp, size_t N)
{
    for (size_t i = 0; i < N; i++)
        out[i] = silu(inp[i]);
}

static void silu_backward(float *dinp, const float *dout, const float *inp, size_t N)
{
    for (size_t i = 0; i < N; i++)
        dinp[i] += dout[i] * silu_grad(inp[i]);
}

static void gelu_forward(float *out, const float *inp, size_t N)
{
    for (size_t i = 0; i < N; i++)
        out[i] = gelu(inp[i]);
}

static void gelu_backward(float *dinp, const float *dout, const float *inp, size_t N)
{
    for (size_t i = 0; i < N; i++)
        dinp[i] += dout[i] * gelu_grad(inp[i]);
}

/* The pass after the sgemm of a fused linear: out (B, OC) = act(out + bias), keeping the
 * pre-activation in pre (B, OC) when given (GELU's and SiLU's backward need it). */
static void linear_act_forward(float *out, float *pre, const float *bias, tp_act act, size_t B,
                               size_t OC)
{
    for (size_t i = 0; i < B; i++) {
        float *y = out + i * OC;
        float *z = pre ? pre + i * OC : NULL;
        if (bias)
            bias_forward(y, y, bias, 1, OC);
        switch (act) {
        case TP_ACT_NONE:
            break;
        case TP_ACT_RELU:
            relu_forward(y, y, OC);
            break;
        case TP_ACT_TANH:
            tanh_forward(y, y, OC);
            break;
        case TP_ACT_GELU:
            if (z)
                memcpy(z, y, OC * sizeof(float));
            gelu_forward(y, y, OC);
            break;
        case TP_ACT_SILU:
            if (z)
                memcpy(z, y, OC * sizeof(float));
            silu_forward(y, y, OC);
            break;
        }
    }
}

/* The pass before the sgemms of a fused linear's backward: turn dout (B, OC) in place into the
 * gradient of the pre-activation, and add its column sums to dbias (OC) when given. */
static void linear_act_backward(float *dout, float *dbias, const float *out, const float *pre,
                                tp_act act, size_t B, size_t OC)
{
    for (size_t i = 0; i < B; i++) {
        float *d = dout + i * OC;
        const float *y = out + i * OC;
        switch (act) {
        case TP_ACT_NONE:
            break;
        case TP_ACT_RELU:
            for (size_t j = 0; j < OC; j++)
                d[j] = y[j] > 0.0f ? d[j] : 0.0f;
            break;
        case TP_ACT_TANH:
            for (size_t j = 0; j < OC; j++)
                d[j] *= 1.0f - y[j] * y[j];
            break;
        case TP_ACT_GELU: {
            const float *z = pre + i * OC;
            for (size_t j = 0; j < OC; j++)
                d[j] *= gelu_grad(z[j]);
            break;
        }
        case TP_ACT_SILU: {
            const float *z = pre + i * OC;
            for (size_t j = 0; j < OC; j++)
                d[j] *= silu_grad(z[j]);
            break;
        }
        }
        if (dbias)
            colsum_backward(dbias, d, 1, OC);
    }
}

/* out = inp * mask, mask (N) = 0 or 1 / (1 - rate), drawn from rng: two 32-bit draws per
 * 64-bit word, an element kept when its draw is >= rate * 2^32. */
static void dropout_forward(float *out, float *mask, const float *inp, size_t N, float rate,
                            tp_rng *rng)
{
    double t = (double)rate * 4294967296.0;
    uint32_t thresh = t >= 4294967295.0 ? UINT32_MAX : (uint32_t)t;
    float scale = 1.0f / (1.0f - rate);
    for (size_t i = 0; i < N; i += 2) {
        uint64_t r = tp_rng_u64(rng);
        mask[i] = (uint32_t)r >= thresh ? scale : 0.0f;
        if (i + 1 < N)
            mask[i + 1] = (uint32_t)(r >> 32) >= thresh ? scale : 0.0f;
    }
    for (size_t i = 0; i < N; i++)
        out[i] = inp[i] * mask[i];
}

static void dropout_backward(float *dinp, const float *dout, const float *mask, size_t N)
{
    for (size_t i = 0; i < N; i++)
        dinp[i] += dout[i] * mask[i];
}

/* losses (B) of softmax cross-entropy against (1 - s) one_hot(labels) + s / K, probs (B, K)
 * the softmax (may be NULL). Rows in double: K is small, the logs and sums are not. */
static void xent_forward(float *losses, float *probs, const float *logits, const int32_t *labels,
                         float smoothing, size_t B, size_t K)
{
    for (size_t i = 0; i < B; i++) {
        const float *z = logits + i * K;
        float m = z[0];
        for (size_t k = 1; k < K; k++)
            m = z[k] > m ? z[k] : m;
        double s = 0.0, zsum = 0.0;
        float *p = probs ? probs + i * K : NULL;
        for (size_t k = 0; k < K; k++) {
            double e = exp((double)z[k] - m);
            s += e;
            zsum += z[k];
            if (p)
                p[k] = (float)e; /* normalised below: one exp per logit */
        }
        double lse = m + log(s);
        double q_on = 1.0 - smoothing, q_all = (double)smoothing / (double)K;
        losses[i] = (float)(lse - q_on * z[labels[i]] - q_all * zsum);
        if (p) {
            double inv = 1.0 / s;
            for (size_t k = 0; k < K; k++)
                p[k] = (float)((double)p[k] * inv);
        }
    }
}

/* dlogits (B, K) += dlosses_i (p - q). */
static void xent_backward(float *dlogits, const float *dlosses, const float *probs,
                          const int32_t *labels, float smoothing, size_t B, size_t K)
{
    float q_all = smoothing / (float)K, q_on = 1.0f - smoothing;
    for (size_t i = 0; i < B; i++) {
        float *d = dlogits + i * K;
        const float *p = probs + i * K;
        float dl = dlosses[i];
        for (size_t k = 0; k < K; k++)
            d[k] += dl * (p[k] - q_all);
        d[labels[i]] -= dl * q_on;
    }
}

/* The target of row i, column k: one_hot(labels) or targets. */
static inline float mse_target(const int32_t *labels, const float *targets, size_t i, size_t k,
                               size_t K)
{
    return labels ? (labels[i] == (int32_t)k ? 1.0f : 0.0f) : targets[i * K + k];
}

/* losses (B) = sum_k (pred - target)^2 / 2. */
static void mse_forward(float *losses, const float *pred, const int32_t *labels,
                        const float *targets, size_t B, size_t K)
{
    for (size_t i = 0; i < B; i++) {
        double s = 0.0;
        for (size_t k = 0; k < K; k++) {
            double e = (double)pred[i * K + k] - mse_target(labels, targets, i, k, K);
            s += e * e;
        }
        losses[i] = (float)(0.5 * s);
    }
}

/* dpred (B, K) += dlosses_i (pred - target). */
static void mse_backward(float *dpred, const float *dlosses, const float *pred,
                         const int32_t *labels, const float *targets, size_t B, size_t K)
{
    for (size_t i = 0; i < B; i++)
        for (size_t k = 0; k < K; k++)
            dpred[i * K + k] +=
                dlosses[i] * (pred[i * K + k] - mse_target(labels, targets, i, k, K));
}

/* out (1) = scale * sum_i w_i x_i, summed in double. */
static void sum_forward(float *out, const float *inp, const float *weights, float scale, size_t N)
{
    double s = 0.0;
    if (weights)
        for (size_t i = 0; i < N; i++)
            s += (double)weights[i] * inp[i];
    else
        for (size_t i = 0; i < N; i++)
            s += inp[i];
    out[0] = (float)(s * scale);
}

static void sum_backward(float *dinp, const float *dout, const float *weights, float scale,
                         size_t N)
{
    float d = dout[0] * scale;
    if (weights)
        for (size_t i = 0; i < N; i++)
            dinp[i] += d * weights[i];
    else
        for (size_t i = 0; i < N; i++)
            dinp[i] += d;
}

/* ---------------------------------------------------------------------------------------- */
/* Recording ops */

float *tp__grad_acc(tp_tensor *t)
{
    if (t->grad_state == TP__GRAD_FRESH)
        memset(t->grad, 0, t->numel * sizeof(float));
    t->grad_state = TP__GRAD_WRITTEN;
    return t->grad;
}

int tp__input_ok(tp_graph *g, const char *op, const char *name, const tp_tensor *t)
{
    assert(g && "op called with a NULL graph");
    if (t)
        return 1;
    tp__graph_fail(g, TP_EINVAL, "%s: %s is NULL", op, name);
    return 0;
}

tp_tensor *tp__out_like(tp_graph *g, const char *op, const tp_tensor *t, uint32_t last,
                        int needs_grad)
{
    uint32_t shape[TP_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[t->ndim - 1] = last;
    return tp__tensor_out(g, op, t->ndim, shape, needs_grad);
}

/* x (B, C) and w (C, OC) fit an sgemm; sets the dims. */
static int matmul_shapes(tp_graph *g, const char *op, const tp_tensor *x, const tp_tensor *w,
                         int *B, int *C, int *OC)
{
    char sx[64], sw[64];
    uint64_t rows = tp_tensor_rows(x);
    if (w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[0]) {
        tp__graph_fail(g, TP_EINVAL, "%s: x %s and weight %s do not fit: the weight is (in, out)",
                       op, tp__shape_str(x, sx, sizeof sx), tp__shape_str(w, sw, sizeof sw));
        return 0;
    }
    if (rows > INT_MAX || w->shape[0] > INT_MAX || w->shape[1] > INT_MAX) {
        tp__graph_fail(g, TP_ERANGE, "%s: x %s is too large for cblas", op,
                       tp__shape_str(x, sx, sizeof sx));
        return 0;
    }
    *B = (int)rows;
    *C = (int)w->shape[0];
    *OC = (int)w->shape[1];
    return 1;
}

static int bias_shape_ok(tp_graph *g, const char *op, const tp_tensor *x, const tp_tensor *b)
{
    if (b->numel == x->shape[x->ndim - 1])
        return 1;
    char sx[64], sb[64];
    tp__graph_fail(g, TP_EINVAL, "%s: bias %s does not match the last dim of x %s", op,
                   tp__shape_str(b, sb, sizeof sb), tp__shape_str(x, sx, sizeof sx));
    return 0;
}

tp_tensor *tp_matmul(tp_graph *g, tp_tensor *x, tp_tensor *w)
{
    int B, C, OC;
    if (!tp__input_ok(g, "tp_matmul", "x", x) || !tp__input_ok(g, "tp_matmul", "w", w) ||
        !matmul_shapes(g, "tp_matmul", x, w, &B, &C, &OC))
        return NULL;
    tp_tensor *out = tp__out_like(g, "tp_matmul", x, (uint32_t)OC, x->grad || w->grad);
    tp_op *op = out ? tp__op_push(g, TP_OP_MATMUL, out) : NULL;
    if (!op)
        return NULL;
    op->in[0] = x;
    op->in[1] = w;
    matmul_forward(out->data, x->data, w->data, B, C, OC);
    return out;
}

tp_tensor *tp_bias_add(tp_graph *g, tp_tensor *x, tp_tensor *b)
{
    if (!tp__input_ok(g, "tp_bias_add", "x", x) || !tp__input_ok(g, "tp_bias_add", "b", b) ||
        !bias_shape_ok(g, "tp_bias_add", x, b))
        return NULL;
    tp_tensor *out = tp__out_like(g, "tp_bias_add", x, x->shape[x->ndim - 1], x->grad || b->grad);
    tp_op *op = out ? tp__op_push(g, TP_OP_BIAS_ADD, out) : NULL;
    if (!op)
        return NULL;
    op->in[0] = x;
    op->in[1] = b;
    bias_forward(out->data, x->data, b->data, tp_tensor_rows(x), b->numel);
    return out;
}

static tp_tensor *unary(tp_graph *g, const char *name, tp_op_type type, tp_tensor *x)
{
    if (!tp__input_ok(g, name, "x", x))
        return NULL;
    tp_tensor *out = tp__out_like(g, name, x, x->shape[x->ndim - 1], x->grad != NULL);
    tp_op *op = out ? tp__op_push(g, type, out) : NULL;
    if (!op)
        return NULL;
    op->in[0] = x;
    switch (type) {
    case TP_OP_RELU:
        relu_forward(out->data, x->data, x->numel);
        break;
    case TP_OP_TANH:
        tanh_forward(out->data, x->data, x->numel);
        break;
    case TP_OP_SILU:
        silu_forward(out->data, x->data, x->numel);
        break;
    default:
        gelu_forward(out->data, x->data, x->numel);
        break;
    }
    return out;
}

tp_tensor *tp_relu(tp_graph *g, tp_tensor *x)
{
    return unary(g, "tp_relu", TP_OP_RELU, x);
}

tp_tensor *tp_tanh(tp_graph *g, tp_tensor *x)
{
    return unary(g, "tp_tanh", TP_OP_TANH, x);
}

tp_tensor *tp_gelu(tp_graph *g, tp_tensor *x)
{
    return unary(g, "tp_gelu", TP_OP_GELU, x);
}

tp_tensor *tp_silu(tp_graph *g, tp_tensor *x)
{
    return unary(g, "tp_silu", TP_OP_SILU, x);
}

tp_tensor *tp_activation(tp_graph *g, tp_tensor *x, tp_act act)
{
    switch (act) {
    case TP_ACT_NONE:
        return x;
    case TP_ACT_RELU:
        return tp_relu(g, x);
    case TP_ACT_TANH:
        return tp_tanh(g, x);
    case TP_ACT_GELU:
        return tp_gelu(g, x);
    case TP_ACT_SILU:
        return tp_silu(g, x);
    }
    tp__graph_fail(g, TP_EINVAL, "tp_activation: unknown activation %d", (int)act);
    return NULL;
}

tp_tensor *tp_linear(tp_graph *g, tp_tensor *x, tp_tensor *w, tp_tensor *b, tp_act act)
{
    int B, C, OC;
    if (!tp__input_ok(g, "tp_linear", "x", x) || !tp__input_ok(g, "tp_linear", "w", w) ||
        !matmul_shapes(g, "tp_linear", x, w, &B, &C, &OC))
        return NULL;
    if (b && b->numel != (uint64_t)OC) {
        char sb[64];
        tp__graph_fail(g, TP_EINVAL, "tp_linear: bias %s does not match the %d outputs",
                       tp__shape_str(b, sb, sizeof sb), OC);
        return NULL;
    }
    if ((unsigned)act > TP_ACT_SILU) {
        tp__graph_fail(g, TP_EINVAL, "tp_linear: unknown activation %d", (int)act);
        return NULL;
    }
    int needs_grad = x->grad || w->grad || (b && b->grad);
    tp_tensor *out = tp__out_like(g, "tp_linear", x, (uint32_t)OC, needs_grad);
    tp_op *op = out ? tp__op_push(g, TP_OP_LINEAR, out) : NULL;
    if (!op)
        return NULL;
    op->in[0] = x;
    op->in[1] = w;
    op->in[2] = b;
    op->u.linear.act = act;
    if ((act == TP_ACT_GELU || act == TP_ACT_SILU) && needs_grad) {
        op->u.linear.pre = tp_graph_alloc(g, out->numel * sizeof(float));
        if (!op->u.linear.pre)
            return NULL;
    }
    matmul_forward(out->data, x->data, w->data, B, C, OC);
    linear_act_forward(out->data, op->u.linear.pre, b ? b->data : NULL, act, (size_t)B, (size_t)OC);
    return out;
}

tp_tensor *tp_dropout(tp_graph *g, tp_tensor *x, float rate, uint64_t seed)
{
    if (!tp__input_ok(g, "tp_dropout", "x", x))
        return NULL;
    if (!(rate >= 0.0f && rate < 1.0f)) {
        tp__graph_fail(g, TP_EINVAL, "tp_dropout: rate %g is outside [0, 1)", (double)rate);
        return NULL;
    }
    if (rate == 0.0f)
        return x;
    tp_tensor *out = tp__out_like(g, "tp_dropout", x, x->shape[x->ndim - 1], x->grad != NULL);
    tp_op *op = out ? tp__op_push(g, TP_OP_DROPOUT, out) : NULL;
    if (!op)
        return NULL;
    op->in[0] = x;
    op->u.dropout.mask = tp_graph_alloc(g, x->numel * sizeof(float));
    if (!op->u.dropout.mask)
        return NULL;
    tp_rng rng;
    tp_rng_seed(&rng, seed);
    dropout_forward(out->data, op->u.dropout.mask, x->data, x->numel, rate, &rng);
    return out;
}

/* Copy n labels into the arena, checking each is in [0, K). */
static int32_t *labels_copy(tp_graph *g, const char *op, const int32_t *labels, size_t n,
                            uint32_t K)
{
    int32_t *c = tp_graph_alloc(g, n * sizeof *c);
    if (!c)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (labels[i] < 0 || (uint32_t)labels[i] >= K) {
            tp__graph_fail(g, TP_ERANGE, "%s: label %d of row %zu is outside [0, %u)", op,
                           (int)labels[i], i, K);
            return NULL;
        }
        c[i] = labels[i];
    }
    return c;
}

tp_tensor *tp_softmax_xent(tp_graph *g, tp_tensor *logits, const int32_t *labels, float smoothing)
{
    const char *name = "tp_softmax_xent";
    if (!tp__input_ok(g, name, "logits", logits))
        return NULL;
    if (!labels) {
        tp__graph_fail(g, TP_EINVAL, "%s: labels is NULL", name);
        return NULL;
    }
    if (!(smoothing >= 0.0f && smoothing <= 1.0f)) {
        tp__graph_fail(g, TP_EINVAL, "%s: label smoothing %g is outside [0, 1]", name,
                       (double)smoothing);
        return NULL;
    }
    uint64_t B = tp_tensor_rows(logits);
    uint32_t K = logits->shape[logits->ndim - 1];
    uint32_t shape[1] = {(uint32_t)B};
    tp_tensor *out = tp__tensor_out(g, name, 1, shape, logits->grad != NULL);
    tp_op *op = out ? tp__op_push(g, TP_OP_SOFTMAX_XENT, out) : NULL;
    if (!op)
        return NULL;
    op->in[0] = logits;
    op->u.xent.smoothing = smoothing;
    if (!(op->u.xent.labels = labels_copy(g, name, labels, B, K)))
        return NULL;
    if (logits->grad && !(op->u.xent.probs = tp_graph_alloc(g, logits->numel * sizeof(float))))
        return NULL;
    xent_forward(out->data, op->u.xent.probs, logits->data, op->u.xent.labels, smoothing, B, K);
    return out;
}

tp_tensor *tp_mse(tp_graph *g, tp_tensor *pred, const int32_t *labels, const float *targets)
{
    const char *name = "tp_mse";
    if (!tp__input_ok(g, name, "pred", pred))
        return NULL;
    if (!labels == !targets) {
        tp__graph_fail(g, TP_EINVAL, "%s: give exactly one of labels and targets", name);
        return NULL;
    }
    uint64_t B = tp_tensor_rows(pred);
    uint32_t K = pred->shape[pred->ndim - 1];
    uint32_t shape[1] = {(uint32_t)B};
    tp_tensor *out = tp__tensor_out(g, name, 1, shape, pred->grad != NULL);
    tp_op *op = out ? tp__op_push(g, TP_OP_MSE, out) : NULL;
    if (!op)
        return NULL;
    op->in[0] = pred;
    if (labels && !(op->u.mse.labels = labels_copy(g, name, labels, B, K)))
        return NULL;
    if (targets) {
        if (!(op->u.mse.targets = tp_graph_alloc(g, pred->numel * sizeof(float))))
            return NULL;
        memcpy(op->u.mse.targets, targets, pred->numel * sizeof(float));
    }
    mse_forward(out->data, pred->data, op->u.mse.labels, op->u.mse.targets, B, K);
    return out;
}

tp_tensor *tp_sum(tp_graph *g, tp_tensor *x, const float *weights, float scale)
{
    if (!tp__input_ok(g, "tp_sum", "x", x))
        return NULL;
    uint32_t shape[1] = {1};
    tp_tensor *out = tp__tensor_out(g, "tp_sum", 1, shape, x->grad != NULL);
    tp_op *op = out ? tp__op_push(g, TP_OP_SUM, out) : NULL;
    if (!op)
        return NULL;
    op->in[0] = x;
    op->u.sum.scale = scale;
    if (weights) {
        if (!(op->u.sum.weights = tp_graph_alloc(g, x->numel * sizeof(float))))
            return NULL;
        memcpy(op->u.sum.weights, weights, x->numel * sizeof(float));
    }
    sum_forward(out->data, x->data, op->u.sum.weights, scale, x->numel);
    return out;
}

tp_tensor *tp_mean(tp_graph *g, tp_tensor *x, const float *weights)
{
    if (!tp__input_ok(g, "tp_mean", "x", x))
        return NULL;
    return tp_sum(g, x, weights, (float)(1.0 / (double)x->numel));
}

/* ---------------------------------------------------------------------------------------- */
/* Activations for the other families */

void tp__act_forward(float *out, const float *inp, size_t n, tp_act act)
{
    switch (act) {
    case TP_ACT_NONE:
        if (out != inp)
            memcpy(out, inp, n * sizeof(float));
        break;
    case TP_ACT_RELU:
        relu_forward(out, inp, n);
        break;
    case TP_ACT_TANH:
        tanh_forward(out, inp, n);
        break;
    case TP_ACT_GELU:
        gelu_forward(out, inp, n);
        break;
    case TP_ACT_SILU:
        silu_forward(out, inp, n);
        break;
    }
}

void tp__act_backward(float *dinp, const float *dout, const float *inp, size_t n, tp_act act)
{
    switch (act) {
    case TP_ACT_NONE:
        add_backward(dinp, dout, n);
        break;
    case TP_ACT_RELU:
        relu_backward(dinp, dout, inp, n, 0); /* inp > 0 exactly where relu(inp) > 0 */
        break;
    case TP_ACT_TANH:
        for (size_t i = 0; i < n; i++) {
            float t = tp_tanhf(inp[i]);
            dinp[i] += dout[i] * (1.0f - t * t);
        }
        break;
    case TP_ACT_GELU:
        gelu_backward(dinp, dout, inp, n);
        break;
    case TP_ACT_SILU:
        silu_backward(dinp, dout, inp, n);
        break;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Backward: the one switch */

void tp__op_backward(tp_op *op)
{
    tp_tensor *out = op->out, *x = op->in[0], *w = op->in[1], *b = op->in[2];
    size_t N = x->numel;
    switch (op->type) {
    case TP_OP_MATMUL: {
        int B = (int)tp_tensor_rows(x), C = (int)w->shape[0], OC = (int)w->shape[1];
        float bx = x->grad ? tp__grad_beta(x) : 0.0f, bw = w->grad ? tp__grad_beta(w) : 0.0f;
        matmul_backward(x->grad, bx, w->grad, bw, out->grad, x->data, w->data, B, C, OC);
        break;
    }
    case TP_OP_BIAS_ADD:
        if (x->grad)
            add_backward(tp__grad_acc(x), out->grad, N);
        if (w->grad) /* the bias is in[1] */
            colsum_backward(tp__grad_acc(w), out->grad, tp_tensor_rows(x), w->numel);
        break;
    case TP_OP_RELU: {
        int overwrite = tp__grad_beta(x) == 0.0f; /* nothing in x->grad yet */
        relu_backward(x->grad, out->grad, out->data, N, overwrite);
        break;
    }
    case TP_OP_TANH:
        tanh_backward(tp__grad_acc(x), out->grad, out->data, N);
        break;
    case TP_OP_GELU:
        gelu_backward(tp__grad_acc(x), out->grad, x->data, N);
        break;
    case TP_OP_SILU:
        silu_backward(tp__grad_acc(x), out->grad, x->data, N);
        break;
    case TP_OP_LINEAR: {
        int B = (int)tp_tensor_rows(x), C = (int)w->shape[0], OC = (int)w->shape[1];
        /* out->grad becomes the gradient of the pre-activation, in place: nothing reads the
         * output's gradient after its producer's backward. */
        linear_act_backward(out->grad, b && b->grad ? tp__grad_acc(b) : NULL, out->data,
                            op->u.linear.pre, op->u.linear.act, (size_t)B, (size_t)OC);
        float bx = x->grad ? tp__grad_beta(x) : 0.0f, bw = w->grad ? tp__grad_beta(w) : 0.0f;
        matmul_backward(x->grad, bx, w->grad, bw, out->grad, x->data, w->data, B, C, OC);
        break;
    }
    case TP_OP_DROPOUT:
        dropout_backward(tp__grad_acc(x), out->grad, op->u.dropout.mask, N);
        break;
    case TP_OP_SOFTMAX_XENT:
        xent_backward(tp__grad_acc(x), out->grad, op->u.xent.probs, op->u.xent.labels,
                      op->u.xent.smoothing, out->numel, x->shape[x->ndim - 1]);
        break;
    case TP_OP_MSE:
        mse_backward(tp__grad_acc(x), out->grad, x->data, op->u.mse.labels, op->u.mse.targets,
                     out->numel, x->shape[x->ndim - 1]);
        break;
    case TP_OP_SUM:
        sum_backward(tp__grad_acc(x), out->grad, op->u.sum.weights, op->u.sum.scale, N);
        break;
        /* The families in their own files: each a list of op types and one backward function. */
#define TP__OP_CASE(name) case TP_OP_##name:
        TP__CONV_OPS(TP__OP_CASE)
        tp__conv_backward(op);
        break;
        TP__SEQ_OPS(TP__OP_CASE)
        tp__seq_backward(op);
        break;
#undef TP__OP_CASE
    }
}
