/*
 * seq.c - the sequence ops of core/nn (declared in seq.h, tape records in seq_impl.h): layer
 * norm, embedding, broadcast add and product, GLU, multi-head attention, reshape and the mean
 * over tokens.
 * For each, a forward / backward pair of plain kernels in the style of ops.c (outputs first,
 * backward accumulating with +=), the function that checks shapes, runs the forward and records
 * the op, and at the end the family's one backward switch, tp__seq_backward.
 *
 * Attention runs as per-(batch, head) cblas_sgemm calls that read a head's slice of q, k and v in
 * place (leading dimension H * Dh, no packing copies) and a row softmax with our own vectorisable
 * exp. Row reductions (layer norm's moments, the softmax's max and sum) use LANES interleaved
 * partial sums combined in a fixed order: GCC vectorises them without -ffast-math, and the result
 * is the same bits every run.
 *
 * Not here: SiLU and the other activations (ops.c; GLU calls them through tp__act_forward /
 * tp__act_backward), attention dropout and padding masks.
 */
#include "core/nn/nn_impl.h"

#include <assert.h>
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Row reductions and exp */

#define LANES 8

/* A hot loop compiled twice, for AVX2 and for the x86-64 baseline the project builds for, the
 * dynamic loader picking one by CPU. Both give the same bits: the code has no FMA contraction
 * (C11 mode: -ffp-contract=off), and its reductions are LANES fixed partial sums whatever the
 * vector width. */
#if defined(__x86_64__) && defined(__GNUC__)
#define TP__CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TP__CLONES
#endif

/* Sum of x[0..n) in LANES partial sums: vectorised, fixed order. */
static inline float row_sum(const float *x, size_t n)
{
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += x[i + l];
    float s = 0.0f;
    for (; i < n; i++)
        s += x[i];
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

/* Sum of a[i] b[i] over [0, n), as row_sum. */
static inline float row_dot(const float *a, const float *b, size_t n)
{
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += a[i + l] * b[i + l];
    float s = 0.0f;
    for (; i < n; i++)
        s += a[i] * b[i];
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

/* Sum of (x[i] - m)^2 over [0, n), as row_sum. */
static inline float row_sq_dev(const float *x, float m, size_t n)
{
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += (x[i + l] - m) * (x[i + l] - m);
    float s = 0.0f;
    for (; i < n; i++)
        s += (x[i] - m) * (x[i] - m);
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

/* Max of x[0..n), n >= 1. NaN entries are skipped here; the softmax's exp brings them back. */
static inline float row_max(const float *x, size_t n)
{
    float acc[LANES];
    for (int l = 0; l < LANES; l++)
        acc[l] = x[0];
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] = x[i + l] > acc[l] ? x[i + l] : acc[l];
    float m = acc[0];
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    for (int l = 1; l < LANES; l++)
        m = acc[l] > m ? acc[l] : m;
    return m;
}

/* exp(t) for t <= 0, the softmax's exp, branch-free so its loop vectorises (glibc's expf is a
 * call per element). t = k ln2 + r with |r| <= ln2 / 2, exp(r) by its degree-7 Taylor polynomial
 * (truncation below 6e-9 relative), times 2^k built in the exponent bits. Within 1.02 ulp of exp
 * in double on (-87, 0] (checked for every float there), never subnormal; t <= -87 (exp below
 * 1.7e-38, nothing next to the row's max of 1) gives an exact 0; NaN stays NaN. */
static inline float exp_nonpos(float t)
{
    const int32_t lim = 0x42ae0000; /* 87.0f */
    int32_t ta = tp__float_to_bits(t) & 0x7fffffff;
    float x = -tp__bits_to_float(ta < lim ? ta : lim);                 /* max(t, -87) */
    float kf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(x / ln2) */
    float r = x - kf * 0.693145751953125f;                             /* ln2, high part */
    r = r - kf * 1.428606765330187045e-06f;                            /* ln2, low part */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    float em = r + r * r * p;                                     /* expm1(r) */
    float s = tp__bits_to_float(((int32_t)kf + 127) * (1 << 23)); /* 2^k, k in [-126, 0] */
    float e = s * (1.0f + em);             /* normal all the way: no slow subnormal intermediates */
    int32_t under = (lim - 1 - ta) >> 31;  /* all ones when |t| >= 87 (or NaN) */
    int32_t nan = (0x7f800000 - ta) >> 31; /* all ones when t is NaN */
    return tp__select_bits(nan, t, tp__select_bits(under, 0.0f, e));
}

/* The gradient of t, += src (n): a plain copy when nothing was written yet. */
static void grad_add(tp_tensor *t, const float *src, size_t n)
{
    if (t->grad_state == TP__GRAD_FRESH) {
        memcpy(t->grad, src, n * sizeof(float));
    } else {
        float *d = t->grad;
        for (size_t i = 0; i < n; i++)
            d[i] += src[i];
    }
    t->grad_state = TP__GRAD_WRITTEN;
}

/* ---------------------------------------------------------------------------------------- */
/* Kernels */

/* y (D) = (x - m) s w + b, w and b (D) or NULL: one loop for each case, so each vectorises. */
static inline void ln_row_out(float *y, const float *x, float m, float s, const float *w,
                              const float *b, size_t D)
{
    if (w && b)
        for (size_t j = 0; j < D; j++)
            y[j] = (x[j] - m) * s * w[j] + b[j];
    else if (w)
        for (size_t j = 0; j < D; j++)
            y[j] = (x[j] - m) * s * w[j];
    else if (b)
        for (size_t j = 0; j < D; j++)
            y[j] = (x[j] - m) * s + b[j];
    else
        for (size_t j = 0; j < D; j++)
            y[j] = (x[j] - m) * s;
}

/* out (N, D) = (inp - mean) * rstd * weight + bias per row; mean, rstd (N) kept when given.
 * weight, bias (D) or NULL. */
TP__CLONES static void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                         const float *weight, const float *bias, float eps,
                                         size_t N, size_t D)
{
    for (size_t i = 0; i < N; i++) {
        const float *x = inp + i * D;
        float m = row_sum(x, D) / (float)D;
        float var = row_sq_dev(x, m, D) / (float)D;
        float s = 1.0f / sqrtf(var + eps);
        ln_row_out(out + i * D, x, m, s, weight, bias, D);
        if (mean) {
            mean[i] = m;
            rstd[i] = s;
        }
    }
}

/* Sum over a row of dy w xhat (dy xhat when w is NULL), xhat = (x - m) s, in LANES partial
 * sums. (One accumulator array per loop: with two, GCC vectorises across iterations instead and
 * the loop runs four times slower.) */
static inline float ln_sum_gx(const float *dy, const float *w, const float *x, float m, float s,
                              size_t D)
{
    float acc[LANES] = {0}, sum = 0.0f;
    size_t j = 0;
    if (w)
        for (; j + LANES <= D; j += LANES)
            for (int l = 0; l < LANES; l++)
                acc[l] += dy[j + l] * w[j + l] * ((x[j + l] - m) * s);
    else
        for (; j + LANES <= D; j += LANES)
            for (int l = 0; l < LANES; l++)
                acc[l] += dy[j + l] * ((x[j + l] - m) * s);
    for (; j < D; j++)
        sum += (w ? dy[j] * w[j] : dy[j]) * ((x[j] - m) * s);
    for (int l = 0; l < LANES; l++)
        sum += acc[l];
    return sum;
}

/* With xhat = (x - mean) rstd and g = dout * weight (dout when weight is NULL):
 * dinp += rstd (g - mean(g) - xhat mean(g xhat)), dweight += dout xhat, dbias += dout, each
 * (N, D) / (D) and optional. */
TP__CLONES static void layernorm_backward(float *dinp, float *dweight, float *dbias,
                                          const float *dout, const float *inp, const float *weight,
                                          const float *mean, const float *rstd, size_t N, size_t D)
{
    for (size_t i = 0; i < N; i++) {
        const float *dy = dout + i * D, *x = inp + i * D;
        float m = mean[i], s = rstd[i];
        if (dinp) {
            float *dx = dinp + i * D;
            float s1 = weight ? row_dot(dy, weight, D) : row_sum(dy, D);
            float c1 = s1 / (float)D, c2 = ln_sum_gx(dy, weight, x, m, s, D) / (float)D;
            if (weight)
                for (size_t j = 0; j < D; j++)
                    dx[j] += s * (dy[j] * weight[j] - c1 - ((x[j] - m) * s) * c2);
            else
                for (size_t j = 0; j < D; j++)
                    dx[j] += s * (dy[j] - c1 - ((x[j] - m) * s) * c2);
        }
        if (dweight)
            for (size_t j = 0; j < D; j++)
                dweight[j] += dy[j] * ((x[j] - m) * s);
        if (dbias)
            for (size_t j = 0; j < D; j++)
                dbias[j] += dy[j];
    }
}

/* out (n, D) row i = table (V, D) row ids[i]. */
static void embedding_forward(float *out, const float *table, const int32_t *ids, size_t n,
                              size_t D)
{
    for (size_t i = 0; i < n; i++)
        memcpy(out + i * D, table + (size_t)ids[i] * D, D * sizeof(float));
}

/* dtable row ids[i] += dout row i, for i = 0, 1, ... in order. */
static void embedding_backward(float *dtable, const float *dout, const int32_t *ids, size_t n,
                               size_t D)
{
    for (size_t i = 0; i < n; i++) {
        float *d = dtable + (size_t)ids[i] * D;
        const float *s = dout + i * D;
        for (size_t j = 0; j < D; j++)
            d[j] += s[j];
    }
}

/* out (rows, cols) = a + b, b (cols) broadcast over the rows. */
static void add_forward(float *out, const float *a, const float *b, size_t rows, size_t cols)
{
    for (size_t i = 0; i < rows; i++) {
        const float *x = a + i * cols;
        float *y = out + i * cols;
        for (size_t j = 0; j < cols; j++)
            y[j] = x[j] + b[j];
    }
}

/* out (rows, cols) = a * b, b (cols) broadcast over the rows. */
static void mul_forward(float *out, const float *a, const float *b, size_t rows, size_t cols)
{
    for (size_t i = 0; i < rows; i++) {
        const float *x = a + i * cols;
        float *y = out + i * cols;
        for (size_t j = 0; j < cols; j++)
            y[j] = x[j] * b[j];
    }
}

/* da (rows, cols) += dout * b, db (cols) += sum over rows of dout * a; either may be NULL. */
static void mul_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                         size_t rows, size_t cols)
{
    for (size_t i = 0; i < rows; i++) {
        const float *d = dout + i * cols, *x = a + i * cols;
        if (da)
            for (size_t j = 0; j < cols; j++)
                da[i * cols + j] += d[j] * b[j];
        if (db)
            for (size_t j = 0; j < cols; j++)
                db[j] += d[j] * x[j];
    }
}

/* db (cols) += sum over rows of dout (rows, cols). */
static void colsum_backward(float *db, const float *dout, size_t rows, size_t cols)
{
    for (size_t i = 0; i < rows; i++) {
        const float *d = dout + i * cols;
        for (size_t j = 0; j < cols; j++)
            db[j] += d[j];
    }
}

/* out (N, F) = act(inp[:, :F]) * inp[:, F:] for inp (N, 2F); gate (N, F) keeps act(inp[:, :F])
 * when given. */
static void glu_forward(float *out, float *gate, const float *inp, tp_act act, size_t N, size_t F)
{
    for (size_t i = 0; i < N; i++) {
        const float *x = inp + i * 2 * F;
        float *y = out + i * F;
        float *gt = gate ? gate + i * F : y;
        tp__act_forward(gt, x, F, act);
        for (size_t j = 0; j < F; j++)
            y[j] = gt[j] * x[F + j];
    }
}

/* dinp[:, F:] += dout * gate, dinp[:, :F] += dout * inp[:, F:] * act'(inp[:, :F]). gate (N, F)
 * is overwritten (with dout * inp[:, F:], the gradient of act's output). */
static void glu_backward(float *dinp, float *gate, const float *dout, const float *inp, tp_act act,
                         size_t N, size_t F)
{
    for (size_t i = 0; i < N; i++) {
        const float *x = inp + i * 2 * F, *d = dout + i * F;
        float *dx = dinp + i * 2 * F, *gt = gate + i * F;
        for (size_t j = 0; j < F; j++) {
            dx[F + j] += d[j] * gt[j];
            gt[j] = d[j] * x[F + j];
        }
        tp__act_backward(dx, gt, x, F, act);
    }
}

/* Row i of scores p (rows, n) becomes its softmax over the first nv(i) entries, nv = i + 1 when
 * causal, else n; the rest are exact zeros. The exps are most of attention's time after the
 * sgemms, so this one function is also compiled for AVX2 and picked at load time (TP__CLONES). */
TP__CLONES static void softmax_rows(float *p, size_t rows, size_t n, int causal)
{
    for (size_t i = 0; i < rows; i++) {
        float *r = p + i * n;
        size_t nv = causal ? i + 1 : n;
        float m = row_max(r, nv);
        float acc[LANES] = {0}, sum = 0.0f;
        size_t j = 0;
        for (; j + LANES <= nv; j += LANES)
            for (int l = 0; l < LANES; l++) {
                r[j + l] = exp_nonpos(r[j + l] - m);
                acc[l] += r[j + l];
            }
        for (; j < nv; j++) {
            r[j] = exp_nonpos(r[j] - m);
            sum += r[j];
        }
        for (int l = 0; l < LANES; l++)
            sum += acc[l];
        float inv = 1.0f / sum;
        for (j = 0; j < nv; j++)
            r[j] *= inv;
        for (; j < n; j++)
            r[j] = 0.0f;
    }
}

/* out (B, Tq, H Dh) of attention; probs (B, H, Tq, Tk) kept when keep, else probs is one
 * (Tq, Tk) scratch reused for every (b, h). q's batch is a->qB (B or 1). */
static void attention_forward(float *out, float *probs, int keep, const float *q, const float *k,
                              const float *v, const struct tp__seq_attn *a)
{
    int Tq = (int)a->Tq, Tk = (int)a->Tk, Dh = (int)a->Dh, C = (int)(a->H * a->Dh);
    size_t TT = (size_t)a->Tq * a->Tk, qstride = a->qB == 1 ? 0 : (size_t)a->Tq * C;
    for (size_t b = 0; b < a->B; b++) {
        for (size_t h = 0; h < a->H; h++) {
            const float *qp = q + b * qstride + h * Dh;
            const float *kp = k + b * a->Tk * C + h * Dh;
            const float *vp = v + b * a->Tk * C + h * Dh;
            float *op = out + b * a->Tq * C + h * Dh;
            float *P = keep ? probs + (b * a->H + h) * TT : probs; /* (Tq, Tk) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, Dh, a->scale, qp, C, kp, C,
                        0.0f, P, Tk);
            softmax_rows(P, a->Tq, a->Tk, a->causal);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, Dh, Tk, 1.0f, P, Tk, vp, C,
                        0.0f, op, C);
        }
    }
}

/* dq, dk, dv (each optional) from dout (B, Tq, H Dh) and the kept probs; bq, bk, bv the sgemm
 * betas of each (0: overwrite, for a gradient written here first). dP (Tq, Tk) is scratch. A
 * shared q (qB = 1) sums its gradient over b. */
static void attention_backward(float *dq, float bq, float *dk, float bk, float *dv, float bv,
                               float *dP, const float *dout, const float *probs, const float *q,
                               const float *k, const float *v, const struct tp__seq_attn *a)
{
    int Tq = (int)a->Tq, Tk = (int)a->Tk, Dh = (int)a->Dh, C = (int)(a->H * a->Dh);
    size_t TT = (size_t)a->Tq * a->Tk, qstride = a->qB == 1 ? 0 : (size_t)a->Tq * C;
    for (size_t b = 0; b < a->B; b++) {
        for (size_t h = 0; h < a->H; h++) {
            size_t qoff = b * qstride + h * Dh, koff = b * a->Tk * C + h * Dh;
            const float *dop = dout + b * a->Tq * C + h * Dh;
            const float *P = probs + (b * a->H + h) * TT; /* (Tq, Tk) */
            if (dv)                                       /* dV (Tk, Dh) = P^T dO */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, Dh, Tq, 1.0f, P, Tk, dop,
                            C, bv, dv + koff, C);
            if (!dq && !dk)
                continue;
            /* dP (Tq, Tk) = dO V^T, then dS = P * (dP - rowsum(dP * P)) in place. */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, Dh, 1.0f, dop, C, v + koff,
                        C, 0.0f, dP, Tk);
            for (size_t i = 0; i < a->Tq; i++) {
                float *d = dP + i * a->Tk;
                const float *p = P + i * a->Tk;
                size_t nv = a->causal ? i + 1 : a->Tk;
                float r = row_dot(d, p, nv);
                for (size_t j = 0; j < nv; j++)
                    d[j] = p[j] * (d[j] - r);
                for (size_t j = nv; j < a->Tk; j++)
                    d[j] = 0.0f;
            }
            if (dq) /* dQ (Tq, Dh) = scale dS K */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, Dh, Tk, a->scale, dP, Tk,
                            k + koff, C, qstride == 0 && b > 0 ? 1.0f : bq, dq + qoff, C);
            if (dk) /* dK (Tk, Dh) = scale dS^T Q */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Tk, Dh, Tq, a->scale, dP, Tk,
                            q + qoff, C, bk, dk + koff, C);
        }
    }
}

/* out (B, D) = mean over t of inp (B, T, D). */
static void token_mean_forward(float *out, const float *inp, size_t B, size_t T, size_t D)
{
    float inv = 1.0f / (float)T;
    for (size_t b = 0; b < B; b++) {
        float *y = out + b * D;
        memcpy(y, inp + b * T * D, D * sizeof(float));
        for (size_t t = 1; t < T; t++) {
            const float *x = inp + (b * T + t) * D;
            for (size_t j = 0; j < D; j++)
                y[j] += x[j];
        }
        for (size_t j = 0; j < D; j++)
            y[j] *= inv;
    }
}

/* dinp (B, T, D) += dout (B, D) / T on every token. */
static void token_mean_backward(float *dinp, const float *dout, size_t B, size_t T, size_t D)
{
    float inv = 1.0f / (float)T;
    for (size_t b = 0; b < B; b++) {
        const float *d = dout + b * D;
        for (size_t t = 0; t < T; t++) {
            float *dx = dinp + (b * T + t) * D;
            for (size_t j = 0; j < D; j++)
                dx[j] += d[j] * inv;
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Recording ops */

/* Record the op with its output and inputs; NULL (error recorded) when out is NULL or out of
 * memory. */
static tp_op *record(tp_graph *g, tp_op_type type, tp_tensor *out, tp_tensor *a, tp_tensor *b,
                     tp_tensor *c)
{
    tp_op *op = out ? tp__op_push(g, type, out) : NULL;
    if (op) {
        op->in[0] = a;
        op->in[1] = b;
        op->in[2] = c;
    }
    return op;
}

tp_tensor *tp_layernorm(tp_graph *g, tp_tensor *x, tp_tensor *gamma, tp_tensor *beta, float eps)
{
    const char *name = "tp_layernorm";
    if (!tp__input_ok(g, name, "x", x))
        return NULL;
    char sx[64], sp[64];
    uint32_t D = x->shape[x->ndim - 1];
    tp_tensor *p[2] = {gamma, beta};
    const char *pname[2] = {"gamma", "beta"};
    for (int i = 0; i < 2; i++) {
        if (p[i] && p[i]->numel != D) {
            tp__graph_fail(g, TP_EINVAL, "%s: %s %s does not match the last dim of x %s (%u)", name,
                           pname[i], tp__shape_str(p[i], sp, sizeof sp),
                           tp__shape_str(x, sx, sizeof sx), D);
            return NULL;
        }
    }
    if (!(eps >= 0.0f && eps < INFINITY)) {
        tp__graph_fail(g, TP_EINVAL, "%s: eps %g is not a finite number >= 0", name, (double)eps);
        return NULL;
    }
    int needs_grad = x->grad || (gamma && gamma->grad) || (beta && beta->grad);
    tp_tensor *out = tp__out_like(g, name, x, D, needs_grad);
    tp_op *op = record(g, TP_OP_LAYERNORM, out, x, gamma, beta);
    if (!op)
        return NULL;
    size_t N = tp_tensor_rows(x);
    if (needs_grad) {
        op->u.seq.ln.mean = tp_graph_alloc(g, N * sizeof(float));
        op->u.seq.ln.rstd = tp_graph_alloc(g, N * sizeof(float));
        if (!op->u.seq.ln.mean || !op->u.seq.ln.rstd)
            return NULL;
    }
    layernorm_forward(out->data, op->u.seq.ln.mean, op->u.seq.ln.rstd, x->data,
                      gamma ? gamma->data : NULL, beta ? beta->data : NULL, eps, N, D);
    return out;
}

tp_tensor *tp_embedding(tp_graph *g, tp_tensor *table, const int32_t *ids, uint32_t n)
{
    const char *name = "tp_embedding";
    if (!tp__input_ok(g, name, "table", table))
        return NULL;
    char st[64];
    if (table->ndim != 2) {
        tp__graph_fail(g, TP_EINVAL, "%s: table %s must be 2-D (vocabulary, dim)", name,
                       tp__shape_str(table, st, sizeof st));
        return NULL;
    }
    if (!ids || n == 0) {
        tp__graph_fail(g, TP_EINVAL, "%s: %s", name, ids ? "no ids (n is 0)" : "ids is NULL");
        return NULL;
    }
    uint32_t V = table->shape[0], D = table->shape[1];
    tp_tensor *out = tp__tensor_out(g, name, 2, (uint32_t[]){n, D}, table->grad != NULL);
    tp_op *op = record(g, TP_OP_EMBEDDING, out, table, NULL, NULL);
    if (!op)
        return NULL;
    int32_t *c = tp_graph_alloc(g, (size_t)n * sizeof *c);
    if (!c)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= V) {
            tp__graph_fail(g, TP_ERANGE,
                           "%s: id %d at position %u is outside [0, %u), the rows of "
                           "table %s",
                           name, (int)ids[i], i, V, tp__shape_str(table, st, sizeof st));
            return NULL;
        }
        c[i] = ids[i];
    }
    op->u.seq.emb.ids = c;
    embedding_forward(out->data, table->data, c, n, D);
    return out;
}

/* b's dims without its leading 1s match a's trailing dims: sets the broadcast geometry. */
static int add_shapes(const tp_tensor *a, const tp_tensor *b, size_t *rows, size_t *cols)
{
    uint32_t start = 0;
    while (b->ndim - start > 1 && b->shape[start] == 1)
        start++;
    uint32_t nb = b->ndim - start;
    if (nb > a->ndim)
        return 0;
    for (uint32_t i = 0; i < nb; i++)
        if (b->shape[start + i] != a->shape[a->ndim - nb + i])
            return 0;
    *cols = b->numel;
    *rows = a->numel / b->numel;
    return 1;
}

tp_tensor *tp_add(tp_graph *g, tp_tensor *a, tp_tensor *b)
{
    const char *name = "tp_add";
    if (!tp__input_ok(g, name, "a", a) || !tp__input_ok(g, name, "b", b))
        return NULL;
    size_t rows, cols;
    if (!add_shapes(a, b, &rows, &cols)) {
        char sa[64], sb[64];
        tp__graph_fail(g, TP_EINVAL,
                       "%s: b %s is neither the shape of a %s nor its trailing dims (a is the "
                       "larger operand)",
                       name, tp__shape_str(b, sb, sizeof sb), tp__shape_str(a, sa, sizeof sa));
        return NULL;
    }
    tp_tensor *out = tp__tensor_out(g, name, a->ndim, a->shape, a->grad || b->grad);
    if (!record(g, TP_OP_ADD, out, a, b, NULL))
        return NULL;
    add_forward(out->data, a->data, b->data, rows, cols);
    return out;
}

tp_tensor *tp_mul(tp_graph *g, tp_tensor *a, tp_tensor *b)
{
    const char *name = "tp_mul";
    if (!tp__input_ok(g, name, "a", a) || !tp__input_ok(g, name, "b", b))
        return NULL;
    size_t rows, cols;
    if (!add_shapes(a, b, &rows, &cols)) {
        char sa[64], sb[64];
        tp__graph_fail(g, TP_EINVAL,
                       "%s: b %s is neither the shape of a %s nor its trailing dims (a is the "
                       "larger operand)",
                       name, tp__shape_str(b, sb, sizeof sb), tp__shape_str(a, sa, sizeof sa));
        return NULL;
    }
    tp_tensor *out = tp__tensor_out(g, name, a->ndim, a->shape, a->grad || b->grad);
    if (!record(g, TP_OP_MUL, out, a, b, NULL))
        return NULL;
    mul_forward(out->data, a->data, b->data, rows, cols);
    return out;
}

tp_tensor *tp_glu(tp_graph *g, tp_tensor *x, tp_act act)
{
    const char *name = "tp_glu";
    if (!tp__input_ok(g, name, "x", x))
        return NULL;
    uint32_t last = x->shape[x->ndim - 1];
    if (last % 2) {
        char sx[64];
        tp__graph_fail(g, TP_EINVAL, "%s: the last dim of x %s is odd; it must hold two halves",
                       name, tp__shape_str(x, sx, sizeof sx));
        return NULL;
    }
    if ((unsigned)act > TP_ACT_SILU) {
        tp__graph_fail(g, TP_EINVAL, "%s: unknown activation %d", name, (int)act);
        return NULL;
    }
    size_t N = tp_tensor_rows(x), F = last / 2;
    tp_tensor *out = tp__out_like(g, name, x, (uint32_t)F, x->grad != NULL);
    tp_op *op = record(g, TP_OP_GLU, out, x, NULL, NULL);
    if (!op)
        return NULL;
    op->u.seq.glu.act = (int)act;
    if (x->grad && !(op->u.seq.glu.gate = tp_graph_alloc(g, out->numel * sizeof(float))))
        return NULL;
    glu_forward(out->data, op->u.seq.glu.gate, x->data, act, N, F);
    return out;
}

/* q, k, v fit attention with `heads` heads; fills a's geometry. */
static int attention_shapes(tp_graph *g, const tp_tensor *q, const tp_tensor *k, const tp_tensor *v,
                            uint32_t heads, int causal, struct tp__seq_attn *a)
{
    const char *name = "tp_attention";
    char s1[64], s2[64];
    const tp_tensor *t[3] = {q, k, v};
    const char *tn[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        if (t[i]->ndim != 3) {
            tp__graph_fail(g, TP_EINVAL, "%s: %s %s must be 3-D (batch, tokens, heads * head_dim)",
                           name, tn[i], tp__shape_str(t[i], s1, sizeof s1));
            return 0;
        }
    }
    if (memcmp(k->shape, v->shape, sizeof k->shape) != 0) {
        tp__graph_fail(g, TP_EINVAL, "%s: k %s and v %s differ in shape", name,
                       tp__shape_str(k, s1, sizeof s1), tp__shape_str(v, s2, sizeof s2));
        return 0;
    }
    uint32_t C = k->shape[2];
    if (q->shape[2] != C || (q->shape[0] != k->shape[0] && q->shape[0] != 1)) {
        tp__graph_fail(g, TP_EINVAL,
                       "%s: q %s does not fit k %s: the last dims must be equal and q's batch "
                       "k's or 1",
                       name, tp__shape_str(q, s1, sizeof s1), tp__shape_str(k, s2, sizeof s2));
        return 0;
    }
    if (heads == 0 || C % heads) {
        tp__graph_fail(g, TP_EINVAL, "%s: %u heads do not divide the last dim of k %s", name, heads,
                       tp__shape_str(k, s1, sizeof s1));
        return 0;
    }
    if (causal && q->shape[1] != k->shape[1]) {
        tp__graph_fail(g, TP_EINVAL,
                       "%s: causal attention needs as many queries as keys: q %s, k %s", name,
                       tp__shape_str(q, s1, sizeof s1), tp__shape_str(k, s2, sizeof s2));
        return 0;
    }
    if (C > INT_MAX || q->shape[1] > INT_MAX || k->shape[1] > INT_MAX) {
        tp__graph_fail(g, TP_ERANGE, "%s: k %s is too large for cblas", name,
                       tp__shape_str(k, s1, sizeof s1));
        return 0;
    }
    a->B = k->shape[0];
    a->qB = q->shape[0];
    a->Tq = q->shape[1];
    a->Tk = k->shape[1];
    a->H = heads;
    a->Dh = C / heads;
    a->causal = causal != 0;
    return 1;
}

tp_tensor *tp_attention(tp_graph *g, tp_tensor *q, tp_tensor *k, tp_tensor *v, uint32_t heads,
                        float temperature, int causal)
{
    const char *name = "tp_attention";
    if (!tp__input_ok(g, name, "q", q) || !tp__input_ok(g, name, "k", k) ||
        !tp__input_ok(g, name, "v", v))
        return NULL;
    struct tp__seq_attn a;
    memset(&a, 0, sizeof a);
    if (!attention_shapes(g, q, k, v, heads, causal, &a))
        return NULL;
    if (!isfinite(temperature)) {
        tp__graph_fail(g, TP_EINVAL, "%s: temperature %g is not finite", name, (double)temperature);
        return NULL;
    }
    a.scale = (float)((double)temperature / sqrt((double)a.Dh));
    int needs_grad = q->grad || k->grad || v->grad;
    uint32_t shape[3] = {a.B, a.Tq, k->shape[2]};
    tp_tensor *out = tp__tensor_out(g, name, 3, shape, needs_grad);
    tp_op *op = record(g, TP_OP_ATTENTION, out, q, k, v);
    if (!op)
        return NULL;
    size_t TT = (size_t)a.Tq * a.Tk, nprobs = needs_grad ? (size_t)a.B * a.H * TT : TT;
    if (!(a.probs = tp_graph_alloc(g, nprobs * sizeof(float))))
        return NULL;
    if ((q->grad || k->grad) && !(a.dprobs = tp_graph_alloc(g, TT * sizeof(float))))
        return NULL;
    op->u.seq.attn = a;
    attention_forward(out->data, a.probs, needs_grad, q->data, k->data, v->data, &a);
    return out;
}

tp_tensor *tp_reshape(tp_graph *g, tp_tensor *x, uint32_t ndim, const uint32_t *shape)
{
    const char *name = "tp_reshape";
    if (!tp__input_ok(g, name, "x", x))
        return NULL;
    if (!shape) {
        tp__graph_fail(g, TP_EINVAL, "%s: shape is NULL", name);
        return NULL;
    }
    tp_tensor *out = tp__tensor_out(g, name, ndim, shape, x->grad != NULL);
    if (!out)
        return NULL;
    if (out->numel != x->numel) {
        char sx[64], so[64];
        tp__graph_fail(g, TP_EINVAL, "%s: x %s and the new shape %s differ in size", name,
                       tp__shape_str(x, sx, sizeof sx), tp__shape_str(out, so, sizeof so));
        return NULL;
    }
    if (!record(g, TP_OP_RESHAPE, out, x, NULL, NULL))
        return NULL;
    memcpy(out->data, x->data, x->numel * sizeof(float));
    return out;
}

tp_tensor *tp_token_mean(tp_graph *g, tp_tensor *x)
{
    const char *name = "tp_token_mean";
    if (!tp__input_ok(g, name, "x", x))
        return NULL;
    if (x->ndim != 3) {
        char sx[64];
        tp__graph_fail(g, TP_EINVAL, "%s: x %s must be 3-D (batch, tokens, dim)", name,
                       tp__shape_str(x, sx, sizeof sx));
        return NULL;
    }
    uint32_t shape[2] = {x->shape[0], x->shape[2]};
    tp_tensor *out = tp__tensor_out(g, name, 2, shape, x->grad != NULL);
    if (!record(g, TP_OP_TOKEN_MEAN, out, x, NULL, NULL))
        return NULL;
    token_mean_forward(out->data, x->data, x->shape[0], x->shape[1], x->shape[2]);
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* Backward: the family's switch (called by ops.c's for the types in TP__SEQ_OPS) */

void tp__seq_backward(tp_op *op)
{
    tp_tensor *out = op->out, *x = op->in[0], *y = op->in[1], *z = op->in[2];
    switch (op->type) {
    case TP_OP_LAYERNORM: { /* x, gamma, beta */
        size_t D = x->shape[x->ndim - 1];
        layernorm_backward(x->grad ? tp__grad_acc(x) : NULL, y && y->grad ? tp__grad_acc(y) : NULL,
                           z && z->grad ? tp__grad_acc(z) : NULL, out->grad, x->data,
                           y ? y->data : NULL, op->u.seq.ln.mean, op->u.seq.ln.rstd,
                           tp_tensor_rows(x), D);
        break;
    }
    case TP_OP_EMBEDDING:
        embedding_backward(tp__grad_acc(x), out->grad, op->u.seq.emb.ids, out->shape[0],
                           out->shape[1]);
        break;
    case TP_OP_ADD: /* a, b */
        if (x->grad)
            grad_add(x, out->grad, out->numel);
        if (y->grad) {
            if (y->numel == out->numel)
                grad_add(y, out->grad, out->numel);
            else
                colsum_backward(tp__grad_acc(y), out->grad, out->numel / y->numel, y->numel);
        }
        break;
    case TP_OP_MUL: /* a, b; tp__grad_acc each, so a * a works */
        mul_backward(x->grad ? tp__grad_acc(x) : NULL, NULL, out->grad, x->data, y->data,
                     out->numel / y->numel, y->numel);
        mul_backward(NULL, y->grad ? tp__grad_acc(y) : NULL, out->grad, x->data, y->data,
                     out->numel / y->numel, y->numel);
        break;
    case TP_OP_GLU:
        glu_backward(tp__grad_acc(x), op->u.seq.glu.gate, out->grad, x->data,
                     (tp_act)op->u.seq.glu.act, tp_tensor_rows(x), out->shape[out->ndim - 1]);
        break;
    case TP_OP_ATTENTION: { /* q, k, v */
        /* The sgemms write each (b, h) slice once per role, in the order v, q, k, so the first
         * role of a tensor takes its beta and a second role of the same tensor (self-attention
         * on one tensor, say) adds. */
        const struct tp__seq_attn *a = &op->u.seq.attn;
        float bv = z->grad ? tp__grad_beta(z) : 0.0f;
        float bq = x->grad ? (x == z ? 1.0f : tp__grad_beta(x)) : 0.0f;
        float bk = y->grad ? (y == z || y == x ? 1.0f : tp__grad_beta(y)) : 0.0f;
        attention_backward(x->grad, bq, y->grad, bk, z->grad, bv, a->dprobs, out->grad, a->probs,
                           x->data, y->data, z->data, a);
        break;
    }
    case TP_OP_RESHAPE:
        grad_add(x, out->grad, out->numel);
        break;
    case TP_OP_TOKEN_MEAN:
        token_mean_backward(tp__grad_acc(x), out->grad, x->shape[0], x->shape[1], x->shape[2]);
        break;
    default:
        assert(0 && "tp__seq_backward: not an op of seq.c");
        break;
    }
}
