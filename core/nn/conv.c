/*
 * conv.c - the image ops of core/nn (see conv.h for their semantics, conv_impl.h for what they
 * record): 2-D convolution, by im2col + sgemm or, for small channel counts, by direct kernels
 * (conv_path chooses), max / average pooling, global average pooling, batch norm. As in ops.c:
 * forward / backward kernel pairs (outputs first, backward accumulating with +=), then the
 * functions that check shapes, run the forward and record the op, then the one backward switch
 * of the family.
 *
 * Activations are NHWC, so a window's row of KW pixels is KW * C contiguous floats: im2col and
 * col2im move whole runs, and the per-channel inner loops of the pools and batch norm are
 * contiguous and vectorise. The direct kernels and the batch norm loops are compiled for several
 * instruction sets and picked at run time from the CPU (the build itself targets the x86-64
 * baseline).
 *
 * Not here: dilation, groups, transposed convolution (see conv.h).
 */
#include "core/nn/nn_impl.h"

#include <assert.h>
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
/* Kernels: direct convolution */

/* OpenBLAS's sgemm is slow on the small channel counts of a small ResNet: with an inner or
 * output dimension of 16 it ran at ~28 GFLOP/s here, against 80-120 with 64 (one thread,
 * SkylakeX kernels), and im2col / col2im cost a third as much again. The direct path sums each
 * output pixel over its window in vector registers, output channels across the lanes: no
 * im2col matrix, no sgemm packing, no col2im pass.
 *
 * It works one image at a time. The image is copied into a zero-padded scratch xp (Hp, Wp, C)
 * that holds every window whole, so the kernels have no border cases: the window of output
 * pixel p = (oh, ow) starts at padded row oh * sh, column ow * sw, and its element
 * k = (kh * KW + kw) * C + c lies koff[k] = (kh * Wp + kw) * C + c floats further on.
 *   forward  out[p, :]  = sum_k xp[p + koff[k]] w[k, :]            (P pixels at a time)
 *   d w      dw[k, :]  += sum_p xp[p + koff[k]] dout[p, :]         (CB rows k at a time)
 *   d x      stride 1: the forward kernel on d out, padded, with the kernel turned by 180
 *            degrees (see direct_backward); other strides: dxp[p + tap, :] += sum_o dout[p, o]
 *            w[tap, :, o] (P pixels at a time, tap by tap, scattered into a zeroed padded
 *            image dxp (Hp, Wp, Cp) whose inside is then added to d x)
 * A block of pixels runs over the image's pixels in order, across rows; the last block of an
 * image repeats its last pixel (computed, not stored). Vectors are GNU C vectors of VL = 16
 * floats: one AVX-512 register, two AVX2 or four SSE ones. The vectorised channel counts are
 * padded to multiples of VL in scratch (weights, bias, d out rows), the padding lanes computed
 * and dropped. The kernels are always-inline bodies with their register block sizes as
 * constants, compiled for each instruction set (DIRECT_ISA) and picked at run time from the
 * CPU. With FMA (AVX2, AVX-512) the multiply-adds are fused, as in OpenBLAS's kernels; the
 * x86-64 baseline has none. Every output element is a float sum in a fixed order (over k, then
 * pixels for d w, one image at a time, then the images in order) on a given CPU, so the same
 * inputs give the same bits; across instruction sets the bits differ by the fusing, and the
 * scattered d x (strides > 1) also by the block size, as OpenBLAS's do across cores. */

#define VL 16 /* floats in a vector */
typedef float v16 __attribute__((vector_size(VL * sizeof(float))));

#define DIRECT_MAX_C  64 /* channels in and out: up to DIRECT_NVMAX vectors */
#define DIRECT_AUTO_C 64 /* channels in and out up to which AUTO takes the direct path */
#define DIRECT_NVMAX  4
#define DIRECT_PMAX   8  /* pixels of a block, forward and d x */
#define DIRECT_CBMAX  16 /* rows of d w of a block */

#define DIRECT_INLINE static inline __attribute__((always_inline))
#define DIRECT_UNROLL _Pragma("GCC unroll 16")

static size_t round_vl(size_t n)
{
    return (n + VL - 1) / VL * VL;
}

/* What a kernel works on: one image, its scratch, the geometry. */
typedef struct direct_args {
    const tp__conv_geom *q;
    size_t OC, Cp, OCp, K, Wp;
    const int32_t *koff; /* (K) */
    const float *xp;     /* (Hp, Wp, C) the padded image */
    const float *w;      /* forward: (K, OCp); d x scatter: (KH * KW, OC, Cp), w transposed per
                            tap */
    const float *bias;   /* forward: (OCp) or NULL */
    float *out;          /* forward: (OH * OW, OC) the image's output */
    int accumulate;      /* forward: out += the sums (1) or out = them (0) */
    const float *dout;   /* d w: (OH * OW, OCp); d x: (OH * OW, OC) */
    float *dw;           /* d w: (K, OCp), added to */
    float *dxp;          /* d x: (Hp, Wp, Cp), added to */
} direct_args;

/* Output pixel p of an image -> the offset of its window in padded pixels. */
static inline size_t direct_pixel(const tp__conv_geom *q, size_t Wp, size_t p)
{
    return p / q->OW * q->sh * Wp + p % q->OW * q->sw;
}

DIRECT_INLINE void v16_load(v16 *v, const float *p)
{
    memcpy(v, p, sizeof *v);
}

DIRECT_INLINE void v16_store(float *p, const v16 *v)
{
    memcpy(p, v, sizeof *v);
}

/* Forward of one image, NV = OCp / VL vectors of output channels, P pixels a block. */
DIRECT_INLINE void direct_forward_body(const direct_args *a, const int NV, const int P)
{
    const tp__conv_geom *q = a->q;
    size_t n = (size_t)q->OH * q->OW, OC = a->OC, OCp = a->OCp, K = a->K;
    for (size_t p0 = 0; p0 < n; p0 += (size_t)P) {
        size_t m = n - p0 < (size_t)P ? n - p0 : (size_t)P;
        const float *xb[DIRECT_PMAX];
        v16 acc[DIRECT_PMAX][DIRECT_NVMAX];
        DIRECT_UNROLL
        for (int j = 0; j < P; j++) {
            size_t p = p0 + ((size_t)j < m ? (size_t)j : m - 1);
            xb[j] = a->xp + direct_pixel(q, a->Wp, p) * q->C;
            DIRECT_UNROLL
            for (int v = 0; v < NV; v++)
                acc[j][v] = (v16){0};
        }
        for (size_t k = 0; k < K; k++) {
            v16 wv[DIRECT_NVMAX];
            DIRECT_UNROLL
            for (int v = 0; v < NV; v++)
                v16_load(&wv[v], a->w + k * OCp + (size_t)v * VL);
            size_t o = (size_t)a->koff[k];
            DIRECT_UNROLL
            for (int j = 0; j < P; j++) {
                float s = xb[j][o];
                DIRECT_UNROLL
                for (int v = 0; v < NV; v++)
                    acc[j][v] += s * wv[v];
            }
        }
        DIRECT_UNROLL
        for (int j = 0; j < P; j++) {
            if ((size_t)j >= m)
                break;
            float *y = a->out + (p0 + (size_t)j) * OC;
            if (a->bias) {
                DIRECT_UNROLL
                for (int v = 0; v < NV; v++) {
                    v16 b;
                    v16_load(&b, a->bias + (size_t)v * VL);
                    acc[j][v] += b;
                }
            }
            if (OC == OCp && a->accumulate) {
                DIRECT_UNROLL
                for (int v = 0; v < NV; v++) {
                    v16 t;
                    v16_load(&t, y + (size_t)v * VL);
                    t += acc[j][v];
                    v16_store(y + (size_t)v * VL, &t);
                }
            } else if (OC == OCp) {
                DIRECT_UNROLL
                for (int v = 0; v < NV; v++)
                    v16_store(y + (size_t)v * VL, &acc[j][v]);
            } else if (a->accumulate) {
                float t[DIRECT_NVMAX * VL];
                memcpy(t, acc[j], sizeof t);
                for (size_t o = 0; o < OC; o++)
                    y[o] += t[o];
            } else {
                memcpy(y, acc[j], OC * sizeof(float));
            }
        }
    }
}

/* d w of one image, NV = OCp / VL vectors of output channels, CB rows k a block. */
DIRECT_INLINE void direct_dw_body(const direct_args *a, const int NV, const int CB)
{
    const tp__conv_geom *q = a->q;
    size_t K = a->K, OCp = a->OCp, C = q->C;
    for (size_t k0 = 0; k0 < K; k0 += (size_t)CB) {
        size_t kk[DIRECT_CBMAX];
        v16 acc[DIRECT_CBMAX][DIRECT_NVMAX];
        DIRECT_UNROLL
        for (int k = 0; k < CB; k++) {
            kk[k] = (size_t)a->koff[k0 + (size_t)k < K ? k0 + (size_t)k : K - 1];
            DIRECT_UNROLL
            for (int v = 0; v < NV; v++)
                acc[k][v] = (v16){0};
        }
        for (uint32_t oh = 0; oh < q->OH; oh++) {
            const float *xr = a->xp + (size_t)oh * q->sh * a->Wp * C;
            const float *dr = a->dout + (size_t)oh * q->OW * OCp;
            for (uint32_t ow = 0; ow < q->OW; ow++) {
                const float *xs = xr + (size_t)ow * q->sw * C;
                v16 d[DIRECT_NVMAX];
                DIRECT_UNROLL
                for (int v = 0; v < NV; v++)
                    v16_load(&d[v], dr + (size_t)ow * OCp + (size_t)v * VL);
                DIRECT_UNROLL
                for (int k = 0; k < CB; k++) {
                    float s = xs[kk[k]];
                    DIRECT_UNROLL
                    for (int v = 0; v < NV; v++)
                        acc[k][v] += s * d[v];
                }
            }
        }
        DIRECT_UNROLL
        for (int k = 0; k < CB; k++) {
            if (k0 + (size_t)k >= K)
                break;
            float *dw = a->dw + (k0 + (size_t)k) * OCp;
            DIRECT_UNROLL
            for (int v = 0; v < NV; v++) {
                v16 t;
                v16_load(&t, dw + (size_t)v * VL);
                t += acc[k][v];
                v16_store(dw + (size_t)v * VL, &t);
            }
        }
    }
}

/* d x of one image into dxp, NV = Cp / VL vectors of input channels, P pixels a block. */
DIRECT_INLINE void direct_dx_body(const direct_args *a, const int NV, const int P)
{
    const tp__conv_geom *q = a->q;
    size_t n = (size_t)q->OH * q->OW, OC = a->OC, Cp = a->Cp;
    for (size_t p0 = 0; p0 < n; p0 += (size_t)P) {
        size_t m = n - p0 < (size_t)P ? n - p0 : (size_t)P;
        const float *db[DIRECT_PMAX];
        float *xb[DIRECT_PMAX];
        DIRECT_UNROLL
        for (int j = 0; j < P; j++) {
            size_t p = p0 + ((size_t)j < m ? (size_t)j : m - 1);
            db[j] = a->dout + p * OC;
            xb[j] = a->dxp + direct_pixel(q, a->Wp, p) * Cp;
        }
        for (uint32_t kh = 0; kh < q->KH; kh++)
            for (uint32_t kw = 0; kw < q->KW; kw++) {
                const float *wt = a->w + ((size_t)kh * q->KW + kw) * OC * Cp;
                v16 acc[DIRECT_PMAX][DIRECT_NVMAX];
                DIRECT_UNROLL
                for (int j = 0; j < P; j++)
                    DIRECT_UNROLL
                for (int v = 0; v < NV; v++)
                    acc[j][v] = (v16){0};
                for (size_t o = 0; o < OC; o++) {
                    v16 wv[DIRECT_NVMAX];
                    DIRECT_UNROLL
                    for (int v = 0; v < NV; v++)
                        v16_load(&wv[v], wt + o * Cp + (size_t)v * VL);
                    DIRECT_UNROLL
                    for (int j = 0; j < P; j++) {
                        float s = db[j][o];
                        DIRECT_UNROLL
                        for (int v = 0; v < NV; v++)
                            acc[j][v] += s * wv[v];
                    }
                }
                size_t t = ((size_t)kh * a->Wp + kw) * Cp;
                DIRECT_UNROLL
                for (int j = 0; j < P; j++) {
                    if ((size_t)j >= m)
                        break;
                    DIRECT_UNROLL
                    for (int v = 0; v < NV; v++) {
                        float *d = xb[j] + t + (size_t)v * VL;
                        v16 s;
                        v16_load(&s, d);
                        s += acc[j][v];
                        v16_store(d, &s);
                    }
                }
            }
    }
}

/* The three kernels compiled for one instruction set: block sizes by the number of vectors
 * (1 to 4), P pixels for forward and d x (P * NV accumulators and NV weights in registers), CB
 * rows for d w (CB * NV accumulators and NV rows of d out). */
#define DIRECT_ISA(isa, attr, P1, P2, P3, P4, CB1, CB2, CB3, CB4)                                  \
    attr static void direct_forward_##isa(const direct_args *a, int nv)                            \
    {                                                                                              \
        switch (nv) {                                                                              \
        case 1:                                                                                    \
            direct_forward_body(a, 1, P1);                                                         \
            break;                                                                                 \
        case 2:                                                                                    \
            direct_forward_body(a, 2, P2);                                                         \
            break;                                                                                 \
        case 3:                                                                                    \
            direct_forward_body(a, 3, P3);                                                         \
            break;                                                                                 \
        default:                                                                                   \
            direct_forward_body(a, 4, P4);                                                         \
            break;                                                                                 \
        }                                                                                          \
    }                                                                                              \
    attr static void direct_dw_##isa(const direct_args *a, int nv)                                 \
    {                                                                                              \
        switch (nv) {                                                                              \
        case 1:                                                                                    \
            direct_dw_body(a, 1, CB1);                                                             \
            break;                                                                                 \
        case 2:                                                                                    \
            direct_dw_body(a, 2, CB2);                                                             \
            break;                                                                                 \
        case 3:                                                                                    \
            direct_dw_body(a, 3, CB3);                                                             \
            break;                                                                                 \
        default:                                                                                   \
            direct_dw_body(a, 4, CB4);                                                             \
            break;                                                                                 \
        }                                                                                          \
    }                                                                                              \
    attr static void direct_dx_##isa(const direct_args *a, int nv)                                 \
    {                                                                                              \
        switch (nv) {                                                                              \
        case 1:                                                                                    \
            direct_dx_body(a, 1, P1);                                                              \
            break;                                                                                 \
        case 2:                                                                                    \
            direct_dx_body(a, 2, P2);                                                              \
            break;                                                                                 \
        case 3:                                                                                    \
            direct_dx_body(a, 3, P3);                                                              \
            break;                                                                                 \
        default:                                                                                   \
            direct_dx_body(a, 4, P4);                                                              \
            break;                                                                                 \
        }                                                                                          \
    }

typedef struct direct_kernels {
    void (*forward)(const direct_args *a, int nv);
    void (*dw)(const direct_args *a, int nv);
    void (*dx)(const direct_args *a, int nv);
} direct_kernels;

/* The x86-64 baseline: a vector is four SSE registers of the sixteen. */
DIRECT_ISA(base, , 2, 1, 1, 1, 2, 1, 1, 1)
static const direct_kernels direct_base = {direct_forward_base, direct_dw_base, direct_dx_base};

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define DIRECT_X86 1
/* With FMA, acc += s * w contracted into one fused multiply-add, as OpenBLAS's kernels do
 * (GCC's C11 mode does not contract by default; clang's default contracts within an
 * expression). */
#ifdef __clang__
#define DIRECT_FMA(isa) __attribute__((target(isa ",fma")))
#else
#define DIRECT_FMA(isa) __attribute__((target(isa ",fma"), optimize("fp-contract=fast")))
#endif
/* AVX2: two of sixteen registers a vector. */
DIRECT_ISA(avx2, DIRECT_FMA("avx2"), 6, 3, 2, 1, 6, 3, 2, 1)
/* AVX-512: one of thirty-two registers a vector. */
DIRECT_ISA(avx512, DIRECT_FMA("avx512f"), 8, 8, 6, 5, 16, 8, 6, 5)
static const direct_kernels direct_avx2 = {direct_forward_avx2, direct_dw_avx2, direct_dx_avx2};
static const direct_kernels direct_avx512 = {direct_forward_avx512, direct_dw_avx512,
                                             direct_dx_avx512};
#endif

/* 2: AVX-512, 1: AVX2, 0: neither. */
static int direct_isa(void)
{
#ifdef DIRECT_X86
    if (__builtin_cpu_supports("avx512f"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
#endif
    return 0;
}

static const direct_kernels *direct_pick(void)
{
#ifdef DIRECT_X86
    switch (direct_isa()) {
    case 2:
        return &direct_avx512;
    case 1:
        return &direct_avx2;
    }
#endif
    return &direct_base;
}

/* The direct path's scratch, offsets in floats, each region a multiple of VL floats. */
typedef struct direct_layout {
    size_t Hp, Wp, Cp, OCp, K;
    int gather;    /* d x by gathering (stride 1), else by scattering */
    size_t Hq, Wq; /* gather: the padded d out image */
    size_t xp;     /* (Hp, Wp, C) the padded image */
    size_t w;      /* (K, OCp) the weights, output channels padded */
    size_t bias;   /* (OCp) */
    size_t koff;   /* (K) int32 */
    /* backward only: */
    size_t koff_t; /* gather: (KH * KW * OC) int32, koff of the padded d out image */
    size_t dxp;    /* scatter: (Hp, Wp, Cp) d x of the padded image; gather: (Hq, Wq, OC) the
                      padded d out image */
    size_t wt;     /* (KH * KW, OC, Cp) the weights transposed per tap (scatter) or per tap of
                      the kernel turned by 180 degrees (gather), input channels padded */
    size_t dw;     /* (K, OCp) d w of the step */
    size_t dout;   /* (OH * OW, OCp) d out of the image, channels padded */
    size_t floats;
} direct_layout;

static void direct_layout_of(direct_layout *L, const tp__conv_geom *q, size_t OC, int backward)
{
    L->Hp = (size_t)(q->OH - 1) * q->sh + q->KH;
    L->Wp = (size_t)(q->OW - 1) * q->sw + q->KW;
    L->Cp = round_vl(q->C);
    L->OCp = round_vl(OC);
    L->K = (size_t)q->KH * q->KW * q->C;
    L->gather = q->sh == 1 && q->sw == 1;
    L->Hq = (size_t)q->H + q->KH - 1;
    L->Wq = (size_t)q->W + q->KW - 1;
    size_t taps = (size_t)q->KH * q->KW;
    size_t at = 0;
    L->xp = at, at += round_vl(L->Hp * L->Wp * q->C);
    L->w = at, at += L->K * L->OCp;
    L->bias = at, at += L->OCp;
    L->koff = at, at += round_vl(L->K);
    L->koff_t = L->dxp = L->wt = L->dw = L->dout = at;
    if (backward) {
        L->koff_t = at, at += round_vl(taps * OC);
        L->dxp = at, at += round_vl(L->gather ? L->Hq * L->Wq * OC : L->Hp * L->Wp * L->Cp);
        L->wt = at, at += taps * OC * L->Cp;
        L->dw = at, at += L->K * L->OCp;
        L->dout = at, at += (size_t)q->OH * q->OW * L->OCp;
    }
    L->floats = at;
}

/* koff (KH * KW * C): the offset of window element k = (kh * KW + kw) * C + c in a padded image
 * of rows of Wp pixels of C channels. */
static void direct_koff(int32_t *koff, size_t KH, size_t KW, size_t C, size_t Wp)
{
    size_t k = 0;
    for (size_t kh = 0; kh < KH; kh++)
        for (size_t kw = 0; kw < KW; kw++)
            for (size_t c = 0; c < C; c++)
                koff[k++] = (int32_t)((kh * Wp + kw) * C + c);
}

static size_t clamp_index(int64_t v, size_t n)
{
    return v < 0 ? 0 : (uint64_t)v > n ? n : (size_t)v;
}

/* xp (Hp, Wp, C) = one image inp (H, W, C) with zeros around: padded row r holds the image's row
 * r - off_r, padded column s its column s - off_c (a negative offset drops leading ones). */
static void direct_pad(float *xp, const float *inp, size_t H, size_t W, size_t C, int64_t off_r,
                       int64_t off_c, size_t Hp, size_t Wp)
{
    size_t s_lo = clamp_index(off_c, Wp), s_hi = clamp_index(off_c + (int64_t)W, Wp);
    for (size_t r = 0; r < Hp; r++) {
        float *row = xp + r * Wp * C;
        int64_t ih = (int64_t)r - off_r;
        if (ih < 0 || ih >= (int64_t)H || s_lo == s_hi) {
            memset(row, 0, Wp * C * sizeof(float));
            continue;
        }
        memset(row, 0, s_lo * C * sizeof(float));
        memcpy(row + s_lo * C, inp + ((size_t)ih * W + (size_t)((int64_t)s_lo - off_c)) * C,
               (s_hi - s_lo) * C * sizeof(float));
        memset(row + s_hi * C, 0, (Wp - s_hi) * C * sizeof(float));
    }
}

/* dinp (H, W, C) = (overwrite ? 0 : dinp) + the inside of dxp (Hp, Wp, Cp): padded row r holds
 * input row r - pt, and inputs that no window covers (past Hp or Wp) get nothing. */
static void direct_unpad(float *dinp, const float *dxp, const tp__conv_geom *q, size_t Hp,
                         size_t Wp, size_t Cp, int overwrite)
{
    size_t C = q->C, W = q->W;
    size_t cols = Wp > q->pl ? Wp - q->pl : 0; /* input columns inside the padded image */
    if (cols > W)
        cols = W;
    for (size_t ih = 0; ih < q->H; ih++) {
        size_t r = ih + q->pt, n = r < Hp ? cols : 0;
        float *dx = dinp + ih * W * C;
        if (n && C == Cp) { /* the row is one run in both */
            const float *src = dxp + (r * Wp + q->pl) * Cp;
            if (overwrite)
                memcpy(dx, src, n * C * sizeof(float));
            else
                for (size_t i = 0; i < n * C; i++)
                    dx[i] += src[i];
        } else if (n) {
            for (size_t iw = 0; iw < n; iw++) {
                const float *src = dxp + (r * Wp + q->pl + iw) * Cp;
                if (overwrite)
                    memcpy(dx + iw * C, src, C * sizeof(float));
                else
                    for (size_t ch = 0; ch < C; ch++)
                        dx[iw * C + ch] += src[ch];
            }
        }
        if (overwrite && n < W)
            memset(dx + n * C, 0, (W - n) * C * sizeof(float));
    }
}

/* out (B, OH, OW, OC) = conv(inp, weight) + bias (NULL: none), scratch as direct_layout. */
static void direct_forward(float *out, const float *inp, const float *weight, const float *bias,
                           const tp__conv_geom *q, size_t OC, float *scratch)
{
    direct_layout L;
    direct_layout_of(&L, q, OC, 0);
    int32_t *koff = (int32_t *)(scratch + L.koff);
    direct_koff(koff, q->KH, q->KW, q->C, L.Wp);
    float *w = scratch + L.w, *b = scratch + L.bias;
    for (size_t k = 0; k < L.K; k++) {
        memcpy(w + k * L.OCp, weight + k * OC, OC * sizeof(float));
        memset(w + k * L.OCp + OC, 0, (L.OCp - OC) * sizeof(float));
    }
    if (bias) {
        memcpy(b, bias, OC * sizeof(float));
        memset(b + OC, 0, (L.OCp - OC) * sizeof(float));
    }
    direct_args a = {.q = q, .OC = OC, .Cp = L.Cp, .OCp = L.OCp, .K = L.K, .Wp = L.Wp};
    a.koff = koff;
    a.xp = scratch + L.xp;
    a.w = w;
    a.bias = bias ? b : NULL;
    const direct_kernels *kern = direct_pick();
    size_t in_image = (size_t)q->H * q->W * q->C, out_image = (size_t)q->OH * q->OW * OC;
    for (uint32_t i = 0; i < q->B; i++) {
        direct_pad(scratch + L.xp, inp + i * in_image, q->H, q->W, q->C, q->pt, q->pl, L.Hp, L.Wp);
        a.out = out + i * out_image;
        kern->forward(&a, (int)(L.OCp / VL));
    }
}

/* Backward of direct_forward: dweight (K, OC) = beta_w dweight + sum over images, dinp (B, H, W,
 * C) = beta_x dinp + d x (beta 0 overwrites, 1 adds); either may be NULL. With stride 1, d x is
 * itself a stride-1 convolution: of d out padded by KH - 1 - pt rows above (and so on), with the
 * kernel turned by 180 degrees and its channels swapped, wf[kh', kw', o, c] = w[KH - 1 - kh',
 * KW - 1 - kw', c, o]. The forward kernel then computes it by gathering, each d x element one sum
 * in registers in a fixed order, written straight into dinp; other strides scatter each output
 * pixel's window into the padded dxp. */
static void direct_backward(float *dinp, float beta_x, float *dweight, float beta_w,
                            const float *inp, const float *dout, const float *weight,
                            const tp__conv_geom *q, size_t OC, float *scratch)
{
    direct_layout L;
    direct_layout_of(&L, q, OC, 1);
    size_t C = q->C, taps = (size_t)q->KH * q->KW;
    int32_t *koff = (int32_t *)(scratch + L.koff), *koff_t = (int32_t *)(scratch + L.koff_t);
    direct_koff(koff, q->KH, q->KW, C, L.Wp);
    float *wt = scratch + L.wt, *dw = scratch + L.dw, *dpad = scratch + L.dout;
    if (dinp)
        for (size_t t = 0; t < taps; t++)
            for (size_t o = 0; o < OC; o++) {
                float *row = wt + ((L.gather ? taps - 1 - t : t) * OC + o) * L.Cp;
                for (size_t c = 0; c < C; c++)
                    row[c] = weight[(t * C + c) * OC + o];
                memset(row + C, 0, (L.Cp - C) * sizeof(float));
            }
    if (dweight)
        memset(dw, 0, L.K * L.OCp * sizeof(float));
    direct_args a = {.q = q, .OC = OC, .Cp = L.Cp, .OCp = L.OCp, .K = L.K, .Wp = L.Wp};
    a.koff = koff;
    a.xp = scratch + L.xp;
    a.dw = dw;
    a.dxp = scratch + L.dxp;
    a.w = wt;
    /* The gather: the forward kernel over the padded d out image (Hq, Wq, OC) into d x (H, W,
     * C), window k = (kh', kw', o). */
    tp__conv_geom qt = {.B = 1,
                        .H = q->OH,
                        .W = q->OW,
                        .C = (uint32_t)OC,
                        .KH = q->KH,
                        .KW = q->KW,
                        .OH = q->H,
                        .OW = q->W,
                        .sh = 1,
                        .sw = 1};
    direct_args at = {.q = &qt, .OC = C, .Cp = L.OCp, .OCp = L.Cp, .K = taps * OC, .Wp = L.Wq};
    at.koff = koff_t;
    at.xp = scratch + L.dxp;
    at.w = wt;
    at.accumulate = beta_x != 0.0f;
    if (dinp && L.gather)
        direct_koff(koff_t, q->KH, q->KW, OC, L.Wq);
    const direct_kernels *kern = direct_pick();
    size_t in_image = (size_t)q->H * q->W * C, pixels = (size_t)q->OH * q->OW;
    for (uint32_t i = 0; i < q->B; i++) {
        const float *d = dout + i * pixels * OC;
        if (dweight) {
            direct_pad(scratch + L.xp, inp + i * in_image, q->H, q->W, C, q->pt, q->pl, L.Hp, L.Wp);
            if (OC != L.OCp)
                for (size_t p = 0; p < pixels; p++) {
                    memcpy(dpad + p * L.OCp, d + p * OC, OC * sizeof(float));
                    memset(dpad + p * L.OCp + OC, 0, (L.OCp - OC) * sizeof(float));
                }
            a.dout = OC != L.OCp ? dpad : d;
            kern->dw(&a, (int)(L.OCp / VL));
        }
        if (dinp && L.gather) {
            direct_pad(scratch + L.dxp, d, q->OH, q->OW, OC, (int64_t)q->KH - 1 - q->pt,
                       (int64_t)q->KW - 1 - q->pl, L.Hq, L.Wq);
            at.out = dinp + i * in_image;
            kern->forward(&at, (int)(L.Cp / VL));
        } else if (dinp) {
            memset(a.dxp, 0, L.Hp * L.Wp * L.Cp * sizeof(float));
            a.dout = d;
            kern->dx(&a, (int)(L.Cp / VL));
            direct_unpad(dinp + i * in_image, a.dxp, q, L.Hp, L.Wp, L.Cp, beta_x == 0.0f);
        }
    }
    if (dweight)
        for (size_t k = 0; k < L.K; k++)
            for (size_t o = 0; o < OC; o++)
                dweight[k * OC + o] =
                    beta_w == 0.0f ? dw[k * L.OCp + o] : dweight[k * OC + o] + dw[k * L.OCp + o];
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
 * added to a double total, so the error is that of BN_BLOCK float additions, not N. Within a
 * block the sums of VL channels at a time stay in registers across its rows (a loop over
 * all C channels stores and reloads them every row); each channel's sum still runs over the
 * rows in order, so the bits are those of the plain loop. */
#define BN_BLOCK 32

/* The batch norm loops are compiled for AVX-512, AVX2 and the x86-64 baseline, the dynamic
 * loader picking one by CPU; the same bits from each (C11: no multiply-add contraction). */
#if defined(__x86_64__) && defined(__GNUC__)
#define TP__CONV_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TP__CONV_CLONES
#endif

/* part (C) = per-channel sums over rows [i0, i1) of inp (N, C), or of (inp - m)^2 when m (C)
 * is given. */
static inline void bn_block_sum(float *part, const float *inp, const float *m, size_t i0, size_t i1,
                                size_t C)
{
    size_t c0 = 0;
    for (; c0 + VL <= C; c0 += VL) {
        v16 acc = {0}, mu = {0}, x;
        if (m)
            v16_load(&mu, m + c0);
        for (size_t i = i0; i < i1; i++) {
            v16_load(&x, inp + i * C + c0);
            if (m)
                acc += (x - mu) * (x - mu);
            else
                acc += x;
        }
        v16_store(part + c0, &acc);
    }
    if (c0 == C)
        return;
    for (size_t c = c0; c < C; c++)
        part[c] = 0.0f;
    for (size_t i = i0; i < i1; i++) {
        const float *x = inp + i * C;
        if (m)
            for (size_t c = c0; c < C; c++) {
                float e = x[c] - m[c];
                part[c] += e * e;
            }
        else
            for (size_t c = c0; c < C; c++)
                part[c] += x[c];
    }
}

/* mean (C) and biased var (C) of inp (N, C) over rows: two passes (the mean, then squared
 * deviations from it). s (C) doubles and part (C) floats are scratch. */
TP__CONV_CLONES static void batchnorm_stats(float *mean, double *var, double *s, float *part,
                                            const float *inp, size_t N, size_t C)
{
    for (size_t c = 0; c < C; c++)
        s[c] = var[c] = 0.0;
    for (size_t i0 = 0; i0 < N; i0 += BN_BLOCK) {
        size_t i1 = N - i0 < BN_BLOCK ? N : i0 + BN_BLOCK;
        bn_block_sum(part, inp, NULL, i0, i1, C);
        for (size_t c = 0; c < C; c++)
            s[c] += part[c];
    }
    for (size_t c = 0; c < C; c++)
        mean[c] = (float)(s[c] / (double)N);
    for (size_t i0 = 0; i0 < N; i0 += BN_BLOCK) {
        size_t i1 = N - i0 < BN_BLOCK ? N : i0 + BN_BLOCK;
        bn_block_sum(part, inp, mean, i0, i1, C);
        for (size_t c = 0; c < C; c++)
            var[c] += part[c];
    }
    for (size_t c = 0; c < C; c++)
        var[c] /= (double)N;
}

/* out (N, C) = (inp - mean) * scale + beta, scale = gamma * rstd (C); beta may be NULL. */
TP__CONV_CLONES static void batchnorm_forward(float *out, const float *inp, const float *mean,
                                              const float *scale, const float *beta, size_t N,
                                              size_t C)
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

/* p1 (C) = per-channel sums over rows [i0, i1) of dout (N, C), p2 (C) of dout xhat, xhat =
 * (inp - mean) rstd. */
static inline void bn_block_sum2(float *p1, float *p2, const float *inp, const float *dout,
                                 const float *mean, const float *rstd, size_t i0, size_t i1,
                                 size_t C)
{
    size_t c0 = 0;
    for (; c0 + VL <= C; c0 += VL) {
        v16 a1 = {0}, a2 = {0}, mu, rs, x, d;
        v16_load(&mu, mean + c0);
        v16_load(&rs, rstd + c0);
        for (size_t i = i0; i < i1; i++) {
            v16_load(&x, inp + i * C + c0);
            v16_load(&d, dout + i * C + c0);
            a1 += d;
            a2 += d * ((x - mu) * rs);
        }
        v16_store(p1 + c0, &a1);
        v16_store(p2 + c0, &a2);
    }
    if (c0 == C)
        return;
    for (size_t c = c0; c < C; c++)
        p1[c] = p2[c] = 0.0f;
    for (size_t i = i0; i < i1; i++) {
        const float *x = inp + i * C, *d = dout + i * C;
        for (size_t c = c0; c < C; c++) {
            p1[c] += d[c];
            p2[c] += d[c] * ((x[c] - mean[c]) * rstd[c]);
        }
    }
}

/* Backward of batch norm (N, C). With xhat = (x - mean) rstd and dxhat = gamma dy:
 *   dbeta += sum dy, dgamma += sum dy xhat                      (over rows, per channel)
 *   train: dx += gamma rstd (dy - mean(dy) - xhat mean(dy xhat))  (through the batch stats)
 *   eval:  dx += gamma rstd dy                                   (the affine map)
 * Any of dinp, dgamma, dbeta may be NULL. overwrite: dinp holds nothing yet and is written (as
 * 0 + the value: the bits of adding to zeros) instead of added to. Scratch: acc (2 C) doubles,
 * coef (3 C) floats. */
TP__CONV_CLONES static void batchnorm_backward(float *dinp, int overwrite, float *dgamma,
                                               float *dbeta, double *acc, float *coef,
                                               const float *dout, const float *inp,
                                               const float *mean, const float *rstd,
                                               const float *gamma, int train, size_t N, size_t C)
{
    double *sdy = acc, *sdyx = acc + C;
    float *p1 = coef, *p2 = coef + C;
    for (size_t c = 0; c < C; c++)
        sdy[c] = sdyx[c] = 0.0;
    if (dgamma || dbeta || (dinp && train))
        for (size_t i0 = 0; i0 < N; i0 += BN_BLOCK) {
            size_t i1 = N - i0 < BN_BLOCK ? N : i0 + BN_BLOCK;
            bn_block_sum2(p1, p2, inp, dout, mean, rstd, i0, i1, C);
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
        if (train && overwrite)
            for (size_t c = 0; c < C; c++)
                dx[c] = 0.0f + a[c] * (d[c] - m1[c] - (x[c] - mean[c]) * rstd[c] * m2[c]);
        else if (train)
            for (size_t c = 0; c < C; c++)
                dx[c] += a[c] * (d[c] - m1[c] - (x[c] - mean[c]) * rstd[c] * m2[c]);
        else if (overwrite)
            for (size_t c = 0; c < C; c++)
                dx[c] = 0.0f + a[c] * d[c];
        else
            for (size_t c = 0; c < C; c++)
                dx[c] += a[c] * d[c];
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Choosing a convolution's path */

enum {
    CONV_PATH_IM2COL = 0,    /* blocks of im2col rows, an sgemm each */
    CONV_PATH_POINTWISE = 1, /* 1x1 stride-1 unpadded: x is the im2col matrix, one sgemm */
    CONV_PATH_DIRECT = 2,    /* the direct kernels */
};

void tp_conv_set_algo(tp_graph *g, tp_conv_algo algo)
{
    assert(g && "tp_conv_set_algo: graph is NULL");
    g->conv_algo = algo == TP_CONV_ALGO_IM2COL || algo == TP_CONV_ALGO_DIRECT ? (uint32_t)algo
                                                                              : TP_CONV_ALGO_AUTO;
}

/* The one place that decides how a conv of geometry q into OC channels is computed. AUTO:
 * direct for at most DIRECT_AUTO_C channels in and out on a CPU with AVX2 and FMA, where it
 * measured faster than im2col + OpenBLAS (SkylakeX kernels) for every conv of fmnist_resnet,
 * 1 to 64 channels, 1x1 and 3x3, strides 1 and 2: 1.2 to 4x forward, 1.1 to 3x backward, most
 * for 16 channels. Without them (the baseline kernels: a vector is four SSE registers, no FMA)
 * it was not measured, and im2col stays. The direct kernels index a padded image with int32
 * offsets: images of more than 2^31 / 64 padded pixels take im2col. */
static uint32_t conv_path(const tp_graph *g, const tp__conv_geom *q, uint32_t OC, int unpadded)
{
    int pointwise = q->KH == 1 && q->KW == 1 && q->sh == 1 && q->sw == 1 && unpadded;
    uint64_t hp = (uint64_t)(q->OH - 1) * q->sh + q->KH, wp = (uint64_t)(q->OW - 1) * q->sw + q->KW;
    uint64_t hq = (uint64_t)q->H + q->KH, wq = (uint64_t)q->W + q->KW;
    int direct_fits = q->C <= DIRECT_MAX_C && OC <= DIRECT_MAX_C &&
                      (hp * wp > hq * wq ? hp * wp : hq * wq) * DIRECT_MAX_C <= INT32_MAX;
    int direct;
    switch (g->conv_algo) {
    case TP_CONV_ALGO_IM2COL:
        direct = 0;
        break;
    case TP_CONV_ALGO_DIRECT:
        direct = direct_fits;
        break;
    default:
        direct = direct_isa() >= 1 && q->C <= DIRECT_AUTO_C && OC <= DIRECT_AUTO_C;
        break;
    }
    return direct ? CONV_PATH_DIRECT : pointwise ? CONV_PATH_POINTWISE : CONV_PATH_IM2COL;
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
    uint32_t path = conv_path(g, &q, OC, !(pad_top | pad_bottom | pad_left | pad_right));
    op->u.conv.path = path;
    if (path == CONV_PATH_DIRECT) {
        /* Scratch for forward, and for backward too when it will run. */
        direct_layout L;
        direct_layout_of(&L, &q, OC, needs_grad);
        if (!(op->u.conv.col = tp_graph_alloc(g, L.floats * sizeof(float))))
            return NULL;
        direct_forward(out->data, x->data, w->data, b ? b->data : NULL, &q, OC, op->u.conv.col);
        return out;
    }
    /* A 1x1 stride-1 unpadded conv is a Linear over pixels: x (B * H * W, C) is the matrix.
     * Otherwise one block of im2col rows, for forward and again for backward. */
    if (path == CONV_PATH_POINTWISE) {
        op->u.conv.col = x->data;
    } else {
        size_t R = conv_block_rows(K);
        if (!(op->u.conv.col = tp_graph_alloc(g, (R < M ? R : M) * K * sizeof(float))))
            return NULL;
    }
    conv2d_forward(out->data, op->u.conv.col, path == CONV_PATH_POINTWISE ? NULL : x->data, w->data,
                   b ? b->data : NULL, &q, M, K, OC);
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
        if (b && b->grad)
            colsum_backward(tp__grad_acc(b), out->grad, M, OC);
        float beta_w = w->grad ? tp__grad_beta(w) : 0.0f;
        float *dx = NULL, beta_x = 0.0f;
        if (x->grad && s->path == CONV_PATH_IM2COL)
            dx = tp__grad_acc(x); /* col2im adds */
        else if (x->grad)
            beta_x = tp__grad_beta(x), dx = x->grad; /* written or added to */
        if (s->path == CONV_PATH_DIRECT)
            direct_backward(dx, beta_x, w->grad, beta_w, x->data, out->grad, w->data, q, OC,
                            s->col);
        else
            conv2d_backward(dx, beta_x, w->grad, beta_w, s->col,
                            s->path == CONV_PATH_POINTWISE ? NULL : x->data, out->grad, w->data, q,
                            M, K, OC);
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
        int overwrite = x->grad && tp__grad_beta(x) == 0.0f; /* nothing in x->grad yet */
        batchnorm_backward(x->grad, overwrite, gamma && gamma->grad ? tp__grad_acc(gamma) : NULL,
                           beta && beta->grad ? tp__grad_acc(beta) : NULL, s->acc,
                           (float *)(s->acc + 2 * C), out->grad, x->data, s->mean, s->rstd,
                           gamma ? gamma->data : NULL, s->train, s->rows, C);
        break;
    }
    default:
        break;
    }
}
