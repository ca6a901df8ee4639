/*
 * conv.c - the image ops of core/nn (see conv.h for their semantics, conv_impl.h for what they
 * record): 2-D convolution by im2col + sgemm, max / average pooling, global average pooling,
 * batch norm. As in ops.c: forward / backward kernel pairs (outputs first, backward
 * accumulating with +=), then the functions that check shapes, run the forward and record the
 * op, then the one backward switch of the family.
 *
 * Activations are NHWC, so a window's row of KW pixels is KW * C contiguous floats: im2col and
 * col2im move whole runs, and the per-channel inner loops of the pools and batch norm are
 * contiguous and vectorise.
 *
 * Not here: dilation, groups, transposed convolution (see conv.h).
 */
#include "core/nn/nn_impl.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Geometry */

/* The valid range [*lo, *hi) of kernel offsets k for which start + k is inside [0, n). */
static inline void window_range(int64_t start, uint32_t k, uint32_t n, uint32_t *lo, uint32_t *hi)
{
    int64_t l = start < 0 ? -start : 0, h = (int64_t)n - start;
    if (h > (int64_t)k)
        h = k;
    if (h < l)
        h = l;
    *lo = (uint32_t)l;
    *hi = (uint32_t)h;
}

/* ---------------------------------------------------------------------------------------- */
/* Kernels: convolution */

/* The convolution runs over blocks of CONV_BLOCK_BYTES of im2col rows: each block is built,
 * consumed by its sgemm while in cache, and forgotten; backward builds it again from x. The
 * whole matrix is never stored: it is KH * KW times x (55 MiB for a 3x3 conv of 16 channels
 * on (128, 28, 28) input), and writing it to memory and reading it back cost more than
 * rebuilding it (measured, one OpenBLAS thread: 3x3 16->32 at batch 128 forward 14 ms
 * against 20 ms keeping it, backward 31 against 34). 256 KiB to 1 MiB blocks measured the same.
 * Many OpenBLAS threads may want larger blocks: each sgemm is only a few hundred rows. */
#ifndef CONV_BLOCK_BYTES
#define CONV_BLOCK_BYTES ((size_t)1 << 18)
#endif

/* Rows of im2col per block for rows of K floats (at least 1). */
static size_t conv_block_rows(size_t K)
{
    size_t r = CONV_BLOCK_BYTES / (K * sizeof(float));
    return r ? r : 1;
}

/* Output pixel m = (b * OH + oh) * OW + ow -> the window's top-left input position. */
static inline void conv_window(const tp__conv_geom *q, size_t m, uint32_t *b, int64_t *ih0,
                               int64_t *iw0)
{
    size_t ow = m % q->OW, t = m / q->OW;
    *b = (uint32_t)(t / q->OH);
    *ih0 = (int64_t)(t % q->OH) * q->sh - q->pt;
    *iw0 = (int64_t)ow * q->sw - q->pl;
}

/* Rows [m0, m0 + rows) of the im2col matrix (B * OH * OW, KH * KW * C) into col (rows, K): row
 * m holds x's window for output pixel m in (kh, kw, c) order, zeros where it lies in the
 * padding. inp (B, H, W, C): a window's row of KW pixels is KW * C contiguous floats. */
static void im2col(float *col, const float *inp, const tp__conv_geom *q, size_t m0, size_t rows)
{
    size_t C = q->C, run = (size_t)q->KW * C, K = q->KH * run;
    for (size_t r = 0; r < rows; r++) {
        float *row = col + r * K;
        uint32_t b, kh_lo, kh_hi, kw_lo, kw_hi;
        int64_t ih0, iw0;
        conv_window(q, m0 + r, &b, &ih0, &iw0);
        window_range(ih0, q->KH, q->H, &kh_lo, &kh_hi);
        window_range(iw0, q->KW, q->W, &kw_lo, &kw_hi);
        size_t lo = kw_lo * C, hi = kw_hi * C;
        for (uint32_t kh = 0; kh < q->KH; kh++) {
            float *dst = row + kh * run;
            if (kh < kh_lo || kh >= kh_hi || lo == hi) {
                memset(dst, 0, run * sizeof(float));
                continue;
            }
            const float *src =
                inp + (((size_t)b * q->H + (size_t)(ih0 + kh)) * q->W + (size_t)(iw0 + kw_lo)) * C;
            if (lo)
                memset(dst, 0, lo * sizeof(float));
            memcpy(dst + lo, src, (hi - lo) * sizeof(float));
            if (hi < run)
                memset(dst + hi, 0, (run - hi) * sizeof(float));
        }
    }
}

/* dinp (B, H, W, C) += rows [m0, m0 + rows) of d col, dcol (rows, K), each added into its
 * window: im2col's adjoint. Padding entries are dropped. */
static void col2im(float *dinp, const float *dcol, const tp__conv_geom *q, size_t m0, size_t rows)
{
    size_t C = q->C, run = (size_t)q->KW * C, K = q->KH * run;
    for (size_t r = 0; r < rows; r++) {
        const float *row = dcol + r * K;
        uint32_t b, kh_lo, kh_hi, kw_lo, kw_hi;
        int64_t ih0, iw0;
        conv_window(q, m0 + r, &b, &ih0, &iw0);
        window_range(ih0, q->KH, q->H, &kh_lo, &kh_hi);
        window_range(iw0, q->KW, q->W, &kw_lo, &kw_hi);
        size_t n = (kw_hi - kw_lo) * C;
        if (!n)
            continue; /* the window lies in the left or right padding */
        for (uint32_t kh = kh_lo; kh < kh_hi; kh++) {
            const float *src = row + kh * run + kw_lo * C;
            float *dst =
                dinp + (((size_t)b * q->H + (size_t)(ih0 + kh)) * q->W + (size_t)(iw0 + kw_lo)) * C;
            for (size_t i = 0; i < n; i++)
                dst[i] += src[i];
        }
    }
}

/* out (M, OC) = col (M, K) @ weight (K, OC) + bias (OC) (bias may be NULL), M = B * OH * OW.
 * When inp is given the rows of col are built from it a block at a time into block (R, K);
 * otherwise block is the whole matrix already (a 1x1 stride-1 conv's x). */
static void conv2d_forward(float *out, float *block, const float *inp, const float *weight,
                           const float *bias, const tp__conv_geom *q, size_t M, size_t K, size_t OC)
{
    size_t R = inp ? conv_block_rows(K) : M;
    for (size_t m0 = 0; m0 < M; m0 += R) {
        size_t rows = M - m0 < R ? M - m0 : R;
        float *y = out + m0 * OC;
        if (inp)
            im2col(block, inp, q, m0, rows);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)OC, (int)K, 1.0f,
                    block, (int)K, weight, (int)OC, 0.0f, y, (int)OC);
        if (bias)
            for (size_t i = 0; i < rows; i++)
                for (size_t j = 0; j < OC; j++)
                    y[i * OC + j] += bias[j];
    }
}

/* dbias (OC) += column sums of dout (M, OC). */
static void colsum_backward(float *dbias, const float *dout, size_t M, size_t OC)
{
    for (size_t i = 0; i < M; i++) {
        const float *d = dout + i * OC;
        for (size_t j = 0; j < OC; j++)
            dbias[j] += d[j];
    }
}

/* Backward of conv2d, block by block of im2col rows (block (R, K) scratch):
 *   dweight (K, OC) = beta_w dweight + col^T dout   (col's block rebuilt from inp; the blocks'
 *                                                    products summed in order)
 *   dinp (B, H, W, C) += col2im(dout weight^T)      (d col's block into the same scratch)
 * dweight or dinp may be NULL. For a 1x1 stride-1 conv (inp NULL) block is x itself and
 * d x (M, C) = beta_x d x + dout weight^T is one sgemm straight into dinp. */
static void conv2d_backward(float *dinp, float beta_x, float *dweight, float beta_w, float *block,
                            const float *inp, const float *dout, const float *weight,
                            const tp__conv_geom *q, size_t M, size_t K, size_t OC)
{
    if (!inp) {
        if (dweight)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)OC, (int)M, 1.0f,
                        block, (int)K, dout, (int)OC, beta_w, dweight, (int)OC);
        if (dinp)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)K, (int)OC, 1.0f,
                        dout, (int)OC, weight, (int)OC, beta_x, dinp, (int)K);
        return;
    }
    size_t R = conv_block_rows(K);
    for (size_t m0 = 0; m0 < M; m0 += R) {
        size_t rows = M - m0 < R ? M - m0 : R;
        const float *d = dout + m0 * OC;
        if (dweight) {
            im2col(block, inp, q, m0, rows);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)OC, (int)rows, 1.0f,
                        block, (int)K, d, (int)OC, beta_w, dweight, (int)OC);
            beta_w = 1.0f;
        }
        if (dinp) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)K, (int)OC, 1.0f,
                        d, (int)OC, weight, (int)OC, 0.0f, block, (int)K);
            col2im(dinp, block, q, m0, rows);
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Kernels: pooling */

/* out (B, OH, OW, C) = max over each window of inp (B, H, W, C), argmax (B, OH, OW, C) the
 * position ih * W + iw of the first maximum in (kh, kw) order; NaN wins and stays. */
static void maxpool_forward(float *out, int32_t *argmax, const float *inp, const tp__conv_geom *q)
{
    size_t C = q->C;
    for (uint32_t b = 0; b < q->B; b++)
        for (uint32_t oh = 0; oh < q->OH; oh++) {
            int64_t ih0 = (int64_t)oh * q->sh - q->pt;
            uint32_t kh_lo, kh_hi;
            window_range(ih0, q->KH, q->H, &kh_lo, &kh_hi);
            for (uint32_t ow = 0; ow < q->OW; ow++) {
                size_t o = (((size_t)b * q->OH + oh) * q->OW + ow) * C;
                float *y = out + o;
                int32_t *a = argmax + o;
                int64_t iw0 = (int64_t)ow * q->sw - q->pl;
                uint32_t kw_lo, kw_hi;
                window_range(iw0, q->KW, q->W, &kw_lo, &kw_hi);
                int first = 1;
                for (uint32_t kh = kh_lo; kh < kh_hi; kh++)
                    for (uint32_t kw = kw_lo; kw < kw_hi; kw++) {
                        int32_t pos = (int32_t)((ih0 + kh) * q->W + iw0 + kw);
                        const float *x = inp + ((size_t)b * q->H * q->W + (size_t)pos) * C;
                        if (first) {
                            for (size_t c = 0; c < C; c++) {
                                y[c] = x[c];
                                a[c] = pos;
                            }
                            first = 0;
                            continue;
                        }
                        for (size_t c = 0; c < C; c++) {
                            float v = x[c], m = y[c];
                            int take = (v > m) | ((v != v) & (m == m));
                            y[c] = take ? v : m;
                            a[c] = take ? pos : a[c];
                        }
                    }
            }
        }
}

/* dinp (B, H, W, C) += dout routed to each output's argmax. */
static void maxpool_backward(float *dinp, const float *dout, const int32_t *argmax,
                             const tp__conv_geom *q)
{
    size_t C = q->C, HW = (size_t)q->H * q->W, P = (size_t)q->OH * q->OW;
    for (uint32_t b = 0; b < q->B; b++) {
        float *dx = dinp + b * HW * C;
        for (size_t p = 0; p < P; p++) {
            size_t o = ((size_t)b * P + p) * C;
            const float *d = dout + o;
            const int32_t *a = argmax + o;
            for (size_t c = 0; c < C; c++)
                dx[(size_t)a[c] * C + c] += d[c];
        }
    }
}

/* out (B, OH, OW, C) = mean over each window's inputs (padding not counted) of inp. */
static void avgpool_forward(float *out, const float *inp, const tp__conv_geom *q)
{
    size_t C = q->C;
    for (uint32_t b = 0; b < q->B; b++)
        for (uint32_t oh = 0; oh < q->OH; oh++) {
            int64_t ih0 = (int64_t)oh * q->sh - q->pt;
            uint32_t kh_lo, kh_hi;
            window_range(ih0, q->KH, q->H, &kh_lo, &kh_hi);
            for (uint32_t ow = 0; ow < q->OW; ow++) {
                float *y = out + (((size_t)b * q->OH + oh) * q->OW + ow) * C;
                int64_t iw0 = (int64_t)ow * q->sw - q->pl;
                uint32_t kw_lo, kw_hi;
                window_range(iw0, q->KW, q->W, &kw_lo, &kw_hi);
                for (size_t c = 0; c < C; c++)
                    y[c] = 0.0f;
                for (uint32_t kh = kh_lo; kh < kh_hi; kh++)
                    for (uint32_t kw = kw_lo; kw < kw_hi; kw++) {
                        const float *x = inp + (((size_t)b * q->H + (size_t)(ih0 + kh)) * q->W +
                                                (size_t)(iw0 + kw)) *
                                                   C;
                        for (size_t c = 0; c < C; c++)
                            y[c] += x[c];
                    }
                float inv = 1.0f / (float)((kh_hi - kh_lo) * (kw_hi - kw_lo));
                for (size_t c = 0; c < C; c++)
                    y[c] *= inv;
            }
        }
}

/* dinp (B, H, W, C) += dout / count over each window's inputs. */
static void avgpool_backward(float *dinp, const float *dout, const tp__conv_geom *q)
{
    size_t C = q->C;
    for (uint32_t b = 0; b < q->B; b++)
        for (uint32_t oh = 0; oh < q->OH; oh++) {
            int64_t ih0 = (int64_t)oh * q->sh - q->pt;
            uint32_t kh_lo, kh_hi;
            window_range(ih0, q->KH, q->H, &kh_lo, &kh_hi);
            for (uint32_t ow = 0; ow < q->OW; ow++) {
                const float *d = dout + (((size_t)b * q->OH + oh) * q->OW + ow) * C;
                int64_t iw0 = (int64_t)ow * q->sw - q->pl;
                uint32_t kw_lo, kw_hi;
                window_range(iw0, q->KW, q->W, &kw_lo, &kw_hi);
                float inv = 1.0f / (float)((kh_hi - kh_lo) * (kw_hi - kw_lo));
                for (uint32_t kh = kh_lo; kh < kh_hi; kh++)
                    for (uint32_t kw = kw_lo; kw < kw_hi; kw++) {
                        float *dx = dinp + (((size_t)b * q->H + (size_t)(ih0 + kh)) * q->W +
                                            (size_t)(iw0 + kw)) *
                                               C;
                        for (size_t c = 0; c < C; c++)
                            dx[c] += d[c] * inv;
                    }
            }
        }
}

/* out (B, C) = mean over S of inp (B, S, C). */
static void global_avgpool_forward(float *out, const float *inp, size_t B, size_t S, size_t C)
{
    float inv = (float)(1.0 / (double)S);
    for (size_t b = 0; b < B; b++) {
        float *y = out + b * C;
        for (size_t c = 0; c < C; c++)
            y[c] = 0.0f;
        for (size_t s = 0; s < S; s++) {
            const float *x = inp + (b * S + s) * C;
            for (size_t c = 0; c < C; c++)
                y[c] += x[c];
        }
        for (size_t c = 0; c < C; c++)
            y[c] *= inv;
    }
}

/* dinp (B, S, C) += dout (B, C) / S. */
static void global_avgpool_backward(float *dinp, const float *dout, size_t B, size_t S, size_t C)
{
    float inv = (float)(1.0 / (double)S);
    for (size_t b = 0; b < B; b++) {
        const float *d = dout + b * C;
        for (size_t s = 0; s < S; s++) {
            float *dx = dinp + (b * S + s) * C;
            for (size_t c = 0; c < C; c++)
                dx[c] += d[c] * inv;
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Kernels: batch norm */

/* Per-channel sums over rows go in blocks of BN_BLOCK rows: each block summed in float (a
 * vectorised loop: the build targets baseline x86-64, where a double loop runs two lanes) and
 * added to a double total, so the error is that of BN_BLOCK float additions, not N. */
#define BN_BLOCK 32

/* mean (C) and biased var (C) of inp (N, C) over rows: two passes (the mean, then squared
 * deviations from it). s (C) doubles and part (C) floats are scratch. */
static void batchnorm_stats(float *mean, double *var, double *s, float *part, const float *inp,
                            size_t N, size_t C)
{
    for (size_t c = 0; c < C; c++)
        s[c] = var[c] = 0.0;
    for (size_t i0 = 0; i0 < N; i0 += BN_BLOCK) {
        size_t i1 = N - i0 < BN_BLOCK ? N : i0 + BN_BLOCK;
        for (size_t c = 0; c < C; c++)
            part[c] = 0.0f;
        for (size_t i = i0; i < i1; i++) {
            const float *x = inp + i * C;
            for (size_t c = 0; c < C; c++)
                part[c] += x[c];
        }
        for (size_t c = 0; c < C; c++)
            s[c] += part[c];
    }
    for (size_t c = 0; c < C; c++)
        mean[c] = (float)(s[c] / (double)N);
    for (size_t i0 = 0; i0 < N; i0 += BN_BLOCK) {
        size_t i1 = N - i0 < BN_BLOCK ? N : i0 + BN_BLOCK;
        for (size_t c = 0; c < C; c++)
            part[c] = 0.0f;
        for (size_t i = i0; i < i1; i++) {
            const float *x = inp + i * C;
            for (size_t c = 0; c < C; c++) {
                float e = x[c] - mean[c];
                part[c] += e * e;
            }
        }
        for (size_t c = 0; c < C; c++)
            var[c] += part[c];
    }
    for (size_t c = 0; c < C; c++)
        var[c] /= (double)N;
}

/* out (N, C) = (inp - mean) * scale + beta, scale = gamma * rstd (C); beta may be NULL. */
static void batchnorm_forward(float *out, const float *inp, const float *mean, const float *scale,
                              const float *beta, size_t N, size_t C)
{
    for (size_t i = 0; i < N; i++) {
        const float *x = inp + i * C;
        float *y = out + i * C;
        if (beta)
            for (size_t c = 0; c < C; c++)
                y[c] = (x[c] - mean[c]) * scale[c] + beta[c];
        else
            for (size_t c = 0; c < C; c++)
                y[c] = (x[c] - mean[c]) * scale[c];
    }
}

/* Backward of batch norm (N, C). With xhat = (x - mean) rstd and dxhat = gamma dy:
 *   dbeta += sum dy, dgamma += sum dy xhat                      (over rows, per channel)
 *   train: dx += gamma rstd (dy - mean(dy) - xhat mean(dy xhat))  (through the batch stats)
 *   eval:  dx += gamma rstd dy                                   (the affine map)
 * Any of dinp, dgamma, dbeta may be NULL. Scratch: acc (2 C) doubles, coef (3 C) floats. */
static void batchnorm_backward(float *dinp, float *dgamma, float *dbeta, double *acc, float *coef,
                               const float *dout, const float *inp, const float *mean,
                               const float *rstd, const float *gamma, int train, size_t N, size_t C)
{
    double *sdy = acc, *sdyx = acc + C;
    float *p1 = coef, *p2 = coef + C;
    for (size_t c = 0; c < C; c++)
        sdy[c] = sdyx[c] = 0.0;
    if (dgamma || dbeta || (dinp && train))
        for (size_t i0 = 0; i0 < N; i0 += BN_BLOCK) {
            size_t i1 = N - i0 < BN_BLOCK ? N : i0 + BN_BLOCK;
            for (size_t c = 0; c < C; c++)
                p1[c] = p2[c] = 0.0f;
            for (size_t i = i0; i < i1; i++) {
                const float *x = inp + i * C, *d = dout + i * C;
                for (size_t c = 0; c < C; c++) {
                    p1[c] += d[c];
                    p2[c] += d[c] * ((x[c] - mean[c]) * rstd[c]);
                }
            }
            for (size_t c = 0; c < C; c++) {
                sdy[c] += p1[c];
                sdyx[c] += p2[c];
            }
        }
    for (size_t c = 0; c < C; c++) {
        if (dbeta)
            dbeta[c] += (float)sdy[c];
        if (dgamma)
            dgamma[c] += (float)sdyx[c];
    }
    if (!dinp)
        return;
    /* Per channel dx = a (dy - m1 - xhat m2), with m1 = m2 = 0 in eval, so that the loop over
     * rows is plain float arithmetic. */
    float *a = coef, *m1 = coef + C, *m2 = coef + 2 * C;
    for (size_t c = 0; c < C; c++) {
        a[c] = (gamma ? gamma[c] : 1.0f) * rstd[c];
        m1[c] = train ? (float)(sdy[c] / (double)N) : 0.0f;
        m2[c] = train ? (float)(sdyx[c] / (double)N) : 0.0f;
    }
    for (size_t i = 0; i < N; i++) {
        const float *x = inp + i * C, *d = dout + i * C;
        float *dx = dinp + i * C;
        if (train)
            for (size_t c = 0; c < C; c++)
                dx[c] += a[c] * (d[c] - m1[c] - (x[c] - mean[c]) * rstd[c] * m2[c]);
        else
            for (size_t c = 0; c < C; c++)
                dx[c] += a[c] * d[c];
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Recording ops */

uint32_t tp_conv_same_padding(uint32_t in, uint32_t k, uint32_t stride, uint32_t *lo, uint32_t *hi)
{
    *lo = *hi = 0;
    if (!in || !k || !stride)
        return 0;
    uint32_t out = in / stride + (in % stride != 0);
    uint64_t span = (uint64_t)(out - 1) * stride + k; /* input rows the outputs' windows cover */
    uint64_t total = span > in ? span - in : 0;
    *lo = (uint32_t)(total / 2);
    *hi = (uint32_t)(total - *lo);
    return out;
}

/* The geometry of a (KH, KW) window sliding over x (B, H, W, C) with the given strides and
 * padding into q; 0 (error recorded) when it does not fit. pool: each padding must be smaller
 * than its window, so that every window holds at least one input. */
static int window_geom(tp_graph *g, const char *op, const tp_tensor *x, uint32_t KH, uint32_t KW,
                       uint32_t sh, uint32_t sw, uint32_t pt, uint32_t pb, uint32_t pl, uint32_t pr,
                       int pool, tp__conv_geom *q)
{
    char sx[64];
    if (x->ndim != 4) {
        tp__graph_fail(g, TP_EINVAL, "%s: x %s must have 4 dims (B, H, W, C): images are NHWC", op,
                       tp__shape_str(x, sx, sizeof sx));
        return 0;
    }
    if (!sh || !sw) {
        tp__graph_fail(g, TP_EINVAL, "%s: strides (%u, %u) must be at least 1", op, sh, sw);
        return 0;
    }
    if (!KH || !KW) {
        tp__graph_fail(g, TP_EINVAL, "%s: window (%u, %u) must be at least 1x1", op, KH, KW);
        return 0;
    }
    if (pool && (pt >= KH || pb >= KH || pl >= KW || pr >= KW)) {
        tp__graph_fail(g, TP_EINVAL,
                       "%s: padding (top %u, bottom %u, left %u, right %u) must be smaller than "
                       "the window (%u, %u)",
                       op, pt, pb, pl, pr, KH, KW);
        return 0;
    }
    uint64_t hp = (uint64_t)x->shape[1] + pt + pb, wp = (uint64_t)x->shape[2] + pl + pr;
    if (hp < KH || wp < KW) {
        tp__graph_fail(g, TP_EINVAL,
                       "%s: window (%u, %u) is larger than x %s padded to (%llu, %llu): no output",
                       op, KH, KW, tp__shape_str(x, sx, sizeof sx), (unsigned long long)hp,
                       (unsigned long long)wp);
        return 0;
    }
    q->B = x->shape[0];
    q->H = x->shape[1];
    q->W = x->shape[2];
    q->C = x->shape[3];
    q->KH = KH;
    q->KW = KW;
    q->OH = (uint32_t)((hp - KH) / sh + 1);
    q->OW = (uint32_t)((wp - KW) / sw + 1);
    q->sh = sh;
    q->sw = sw;
    q->pt = pt;
    q->pl = pl;
    return 1;
}

tp_tensor *tp_conv2d(tp_graph *g, tp_tensor *x, tp_tensor *w, tp_tensor *b, uint32_t stride_h,
                     uint32_t stride_w, uint32_t pad_top, uint32_t pad_bottom, uint32_t pad_left,
                     uint32_t pad_right)
{
    const char *name = "tp_conv2d";
    char sx[64], sw[64], sb[64];
    if (!tp__input_ok(g, name, "x", x) || !tp__input_ok(g, name, "w", w))
        return NULL;
    if (w->ndim != 4) {
        tp__graph_fail(g, TP_EINVAL, "%s: w %s must have 4 dims (KH, KW, C, OC): kernels are HWIO",
                       name, tp__shape_str(w, sw, sizeof sw));
        return NULL;
    }
    if (x->ndim == 4 && x->shape[3] != w->shape[2]) {
        tp__graph_fail(g, TP_EINVAL, "%s: x %s and w %s: channels %u != %u", name,
                       tp__shape_str(x, sx, sizeof sx), tp__shape_str(w, sw, sizeof sw),
                       x->shape[3], w->shape[2]);
        return NULL;
    }
    tp__conv_geom q;
    if (!window_geom(g, name, x, w->shape[0], w->shape[1], stride_h, stride_w, pad_top, pad_bottom,
                     pad_left, pad_right, 0, &q))
        return NULL;
    uint32_t OC = w->shape[3];
    if (b && b->numel != OC) {
        tp__graph_fail(g, TP_EINVAL, "%s: bias %s does not match the %u output channels of w %s",
                       name, tp__shape_str(b, sb, sizeof sb), OC, tp__shape_str(w, sw, sizeof sw));
        return NULL;
    }
    uint64_t M = (uint64_t)q.B * q.OH * q.OW, K = (uint64_t)q.KH * q.KW * q.C;
    if (M > INT_MAX || K > INT_MAX || OC > INT_MAX) {
        tp__graph_fail(g, TP_ERANGE, "%s: x %s and w %s are too large for cblas", name,
                       tp__shape_str(x, sx, sizeof sx), tp__shape_str(w, sw, sizeof sw));
        return NULL;
    }
    int needs_grad = x->grad || w->grad || (b && b->grad);
    tp_tensor *out = tp__tensor_out(g, name, 4, (uint32_t[]){q.B, q.OH, q.OW, OC}, needs_grad);
    tp_op *op = out ? tp__op_push(g, TP_OP_CONV2D, out) : NULL;
    if (!op)
        return NULL;
    op->in[0] = x;
    op->in[1] = w;
    op->in[2] = b;
    op->u.conv.geom = q;
    /* A 1x1 stride-1 unpadded conv is a Linear over pixels: x (B * H * W, C) is the matrix.
     * Otherwise one block of im2col rows, for forward and again for backward. */
    int direct = q.KH == 1 && q.KW == 1 && q.sh == 1 && q.sw == 1 && pad_top == 0 &&
                 pad_bottom == 0 && pad_left == 0 && pad_right == 0;
    if (direct) {
        op->u.conv.col = x->data;
    } else {
        size_t R = conv_block_rows(K);
        if (!(op->u.conv.col = tp_graph_alloc(g, (R < M ? R : M) * K * sizeof(float))))
            return NULL;
    }
    conv2d_forward(out->data, op->u.conv.col, direct ? NULL : x->data, w->data, b ? b->data : NULL,
                   &q, M, K, OC);
    return out;
}

tp_tensor *tp_conv2d_same(tp_graph *g, tp_tensor *x, tp_tensor *w, tp_tensor *b, uint32_t stride_h,
                          uint32_t stride_w)
{
    uint32_t pt = 0, pb = 0, pl = 0, pr = 0;
    /* Bad shapes and strides are left to tp_conv2d, which reports them. */
    if (x && w && x->ndim == 4 && w->ndim == 4) {
        tp_conv_same_padding(x->shape[1], w->shape[0], stride_h, &pt, &pb);
        tp_conv_same_padding(x->shape[2], w->shape[1], stride_w, &pl, &pr);
    }
    return tp_conv2d(g, x, w, b, stride_h, stride_w, pt, pb, pl, pr);
}

static tp_tensor *pool2d(tp_graph *g, const char *name, tp_op_type type, tp_tensor *x,
                         uint32_t window_h, uint32_t window_w, uint32_t stride_h, uint32_t stride_w,
                         uint32_t pad_top, uint32_t pad_bottom, uint32_t pad_left,
                         uint32_t pad_right)
{
    tp__conv_geom q;
    if (!tp__input_ok(g, name, "x", x) ||
        !window_geom(g, name, x, window_h, window_w, stride_h, stride_w, pad_top, pad_bottom,
                     pad_left, pad_right, 1, &q))
        return NULL;
    if ((uint64_t)q.H * q.W > INT32_MAX) {
        char sx[64];
        tp__graph_fail(g, TP_ERANGE, "%s: x %s has more than 2^31 pixels an image", name,
                       tp__shape_str(x, sx, sizeof sx));
        return NULL;
    }
    tp_tensor *out =
        tp__tensor_out(g, name, 4, (uint32_t[]){q.B, q.OH, q.OW, q.C}, x->grad != NULL);
    tp_op *op = out ? tp__op_push(g, type, out) : NULL;
    if (!op)
        return NULL;
    op->in[0] = x;
    op->u.conv.geom = q;
    if (type == TP_OP_MAXPOOL2D) {
        if (!(op->u.conv.argmax = tp_graph_alloc(g, out->numel * sizeof(int32_t))))
            return NULL;
        maxpool_forward(out->data, op->u.conv.argmax, x->data, &q);
    } else {
        avgpool_forward(out->data, x->data, &q);
    }
    return out;
}

tp_tensor *tp_maxpool2d(tp_graph *g, tp_tensor *x, uint32_t window_h, uint32_t window_w,
                        uint32_t stride_h, uint32_t stride_w, uint32_t pad_top, uint32_t pad_bottom,
                        uint32_t pad_left, uint32_t pad_right)
{
    return pool2d(g, "tp_maxpool2d", TP_OP_MAXPOOL2D, x, window_h, window_w, stride_h, stride_w,
                  pad_top, pad_bottom, pad_left, pad_right);
}

tp_tensor *tp_avgpool2d(tp_graph *g, tp_tensor *x, uint32_t window_h, uint32_t window_w,
                        uint32_t stride_h, uint32_t stride_w, uint32_t pad_top, uint32_t pad_bottom,
                        uint32_t pad_left, uint32_t pad_right)
{
    return pool2d(g, "tp_avgpool2d", TP_OP_AVGPOOL2D, x, window_h, window_w, stride_h, stride_w,
                  pad_top, pad_bottom, pad_left, pad_right);
}

tp_tensor *tp_global_avgpool(tp_graph *g, tp_tensor *x)
{
    const char *name = "tp_global_avgpool";
    if (!tp__input_ok(g, name, "x", x))
        return NULL;
    if (x->ndim != 3 && x->ndim != 4) {
        char sx[64];
        tp__graph_fail(g, TP_EINVAL,
                       "%s: x %s must have 3 or 4 dims, (B, T, C) or (B, H, W, C): the mean is "
                       "over the dims between the first and the last",
                       name, tp__shape_str(x, sx, sizeof sx));
        return NULL;
    }
    uint32_t B = x->shape[0], C = x->shape[x->ndim - 1];
    tp_tensor *out = tp__tensor_out(g, name, 2, (uint32_t[]){B, C}, x->grad != NULL);
    tp_op *op = out ? tp__op_push(g, TP_OP_GLOBAL_AVGPOOL, out) : NULL;
    if (!op)
        return NULL;
    op->in[0] = x;
    uint64_t S = x->numel / ((uint64_t)B * C);
    op->u.conv.geom = (tp__conv_geom){.B = B, .H = (uint32_t)S, .W = 1, .C = C};
    global_avgpool_forward(out->data, x->data, B, S, C);
    return out;
}

tp_tensor *tp_batchnorm(tp_graph *g, tp_tensor *x, tp_tensor *gamma, tp_tensor *beta,
                        float *running_mean, float *running_var, float momentum, float eps,
                        int train)
{
    const char *name = "tp_batchnorm";
    char sx[64], sp[64];
    if (!tp__input_ok(g, name, "x", x))
        return NULL;
    uint32_t C = x->shape[x->ndim - 1];
    uint64_t N = tp_tensor_rows(x);
    tp_tensor *affine[2] = {gamma, beta};
    for (int k = 0; k < 2; k++)
        if (affine[k] && affine[k]->numel != C) {
            tp__graph_fail(g, TP_EINVAL,
                           "%s: %s %s does not match the %u channels (last dim) of x %s", name,
                           k ? "beta" : "gamma", tp__shape_str(affine[k], sp, sizeof sp), C,
                           tp__shape_str(x, sx, sizeof sx));
            return NULL;
        }
    if (!(momentum >= 0.0f && momentum <= 1.0f) || !(eps > 0.0f) || !isfinite(eps)) {
        tp__graph_fail(g, TP_EINVAL, "%s: momentum %g must be in [0, 1] and eps %g positive", name,
                       (double)momentum, (double)eps);
        return NULL;
    }
    if (!running_mean != !running_var || (!train && !running_mean)) {
        tp__graph_fail(g, TP_EINVAL,
                       "%s: give both running_mean and running_var, or (train only) neither; "
                       "eval (train 0) normalises with them",
                       name);
        return NULL;
    }
    int needs_grad = x->grad || (gamma && gamma->grad) || (beta && beta->grad);
    tp_tensor *out = tp__out_like(g, name, x, C, needs_grad);
    tp_op *op = out ? tp__op_push(g, TP_OP_BATCHNORM, out) : NULL;
    if (!op)
        return NULL;
    op->in[0] = x;
    op->in[1] = gamma;
    op->in[2] = beta;
    struct tp__conv_saved *s = &op->u.conv;
    s->rows = N;
    s->train = train != 0;
    /* (C) mean and (C) rstd; scratch of (2 C) doubles (sums, var) and (3 C) floats (block
     * partial sums, then forward's scale; backward's partial sums, then its coefficients). */
    s->mean = tp_graph_alloc(g, (size_t)C * (2 * sizeof(float)));
    s->acc = tp_graph_alloc(g, (size_t)C * (2 * sizeof(double) + 3 * sizeof(float)));
    if (!s->mean || !s->acc)
        return NULL;
    s->rstd = s->mean + C;
    double *var = s->acc + C;
    float *scale = (float *)(s->acc + 2 * (size_t)C);
    if (train) {
        batchnorm_stats(s->mean, var, s->acc, scale, x->data, N, C);
        for (uint32_t c = 0; c < C; c++) {
            s->rstd[c] = (float)(1.0 / sqrt(var[c] + (double)eps));
            if (running_mean) {
                running_mean[c] = momentum * running_mean[c] + (1.0f - momentum) * s->mean[c];
                running_var[c] = momentum * running_var[c] + (1.0f - momentum) * (float)var[c];
            }
        }
    } else {
        for (uint32_t c = 0; c < C; c++) {
            s->mean[c] = running_mean[c];
            s->rstd[c] = (float)(1.0 / sqrt((double)running_var[c] + (double)eps));
        }
    }
    for (uint32_t c = 0; c < C; c++)
        scale[c] = gamma ? gamma->data[c] * s->rstd[c] : s->rstd[c];
    batchnorm_forward(out->data, x->data, s->mean, scale, beta ? beta->data : NULL, N, C);
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* Backward: the family's switch (ops.c calls it for TP__CONV_OPS) */

void tp__conv_backward(tp_op *op)
{
    tp_tensor *out = op->out, *x = op->in[0], *w = op->in[1], *b = op->in[2];
    struct tp__conv_saved *s = &op->u.conv;
    const tp__conv_geom *q = &s->geom;
    switch (op->type) {
    case TP_OP_CONV2D: {
        size_t M = (size_t)q->B * q->OH * q->OW, K = (size_t)q->KH * q->KW * q->C;
        size_t OC = w->shape[3];
        int direct = s->col == x->data;
        if (b && b->grad)
            colsum_backward(tp__grad_acc(b), out->grad, M, OC);
        float beta_w = w->grad ? tp__grad_beta(w) : 0.0f;
        float *dx = NULL, beta_x = 0.0f;
        if (x->grad && !direct)
            dx = tp__grad_acc(x); /* col2im adds */
        else if (x->grad)
            beta_x = tp__grad_beta(x), dx = x->grad; /* one sgemm writes or adds */
        conv2d_backward(dx, beta_x, w->grad, beta_w, s->col, direct ? NULL : x->data, out->grad,
                        w->data, q, M, K, OC);
        break;
    }
    case TP_OP_MAXPOOL2D:
        maxpool_backward(tp__grad_acc(x), out->grad, s->argmax, q);
        break;
    case TP_OP_AVGPOOL2D:
        avgpool_backward(tp__grad_acc(x), out->grad, q);
        break;
    case TP_OP_GLOBAL_AVGPOOL:
        global_avgpool_backward(tp__grad_acc(x), out->grad, q->B, q->H, q->C);
        break;
    case TP_OP_BATCHNORM: {
        tp_tensor *gamma = w, *beta = b;
        size_t C = x->shape[x->ndim - 1];
        batchnorm_backward(
            x->grad ? tp__grad_acc(x) : NULL, gamma && gamma->grad ? tp__grad_acc(gamma) : NULL,
            beta && beta->grad ? tp__grad_acc(beta) : NULL, s->acc, (float *)(s->acc + 2 * C),
            out->grad, x->data, s->mean, s->rstd, gamma ? gamma->data : NULL, s->train, s->rows, C);
        break;
    }
    default:
        break;
    }
}
