/*
 * conv.h - the engine's image ops: 2-D convolution, max / average / global average pooling,
 * batch norm. Part of nn.h (include that); implemented in conv.c. Every op follows nn.h's
 * conventions: a new tensor of the current step or NULL with the error recorded on the graph;
 * backward accumulates.
 *
 * Layout
 *   - Activations are NHWC: (B, H, W, C), channels last and contiguous, as Flax's image ops.
 *   - Convolution kernels are HWIO: (KH, KW, C, OC), as Flax's Conv kernel, so the kernel seen
 *     as a (KH * KW * C, OC) matrix is a Linear weight (in, out) over im2col rows.
 *   - Padding is explicit and per side (top, bottom, left, right), zeros for convolution;
 *     pooling ignores padded positions (they never win a max, nor count in an average).
 *     Output size: OH = (H + pad_top + pad_bottom - KH) / stride_h + 1 (floor), likewise OW.
 *     tp_conv_same_padding() gives Flax's / TensorFlow's "SAME"; "VALID" is all zeros.
 *
 * Two ways to compute a convolution (conv.c picks one per call, see tp_conv_set_algo):
 *   - im2col + sgemm: the general path. tp_conv2d does not keep its im2col matrix,
 *     (B * OH * OW, KH * KW * C) floats, KH * KW times x. It works on blocks of 256 KiB of its
 *     rows, rebuilt from x in backward: cheaper than storing it (see conv.c), and a step holds
 *     one block per conv beyond the activations. A 1x1 stride-1 unpadded conv uses x itself as
 *     the matrix.
 *   - direct: for small channel counts (at most 64 in and out), where OpenBLAS's sgemm is slow.
 *     Each output pixel is summed over its window in vector registers from a zero-padded copy
 *     of one image at a time; scratch of a few padded images per conv, no im2col matrix.
 * Both give the same values up to float summation order. Backward reads x->data, as
 * tp_matmul's does: x must not change between forward and backward.
 *
 * Not here: dilation, feature groups (depthwise), transposed convolution, ceil-mode pooling.
 */
#ifndef TP_NN_CONV_H
#define TP_NN_CONV_H

#include <stdint.h>

typedef struct tp_graph tp_graph;
typedef struct tp_tensor tp_tensor;

/* Flax / TensorFlow "SAME" padding of one spatial dim: out = ceil(in / stride), total padding
 * max((out - 1) * stride + k - in, 0), *lo = total / 2 and *hi = total - lo (the odd one at the
 * end). Returns out (0, with no padding, when in, k or stride is 0). */
uint32_t tp_conv_same_padding(uint32_t in, uint32_t k, uint32_t stride, uint32_t *lo, uint32_t *hi);

/* 2-D convolution (cross-correlation, as Flax's Conv):
 *   out[b, oh, ow, o] = bias[o] + sum_{kh, kw, c} x[b, oh*sh - pt + kh, ow*sw - pl + kw, c]
 *                                                 * w[kh, kw, c, o]
 * with zeros outside x. x (B, H, W, C), w (KH, KW, C, OC), b (OC) or NULL -> (B, OH, OW, OC).
 * Strides >= 1; the padded input must hold one window. On the im2col path forward is im2col +
 * sgemm (one per block of rows, see above), which yields NHWC directly; backward d w = col^T
 * d out (sgemm), d b = column sums of d out, d x = col2im(d out w^T) (sgemm, then added window
 * by window). The direct path computes the same sums in registers (conv.c). */
tp_tensor *tp_conv2d(tp_graph *g, tp_tensor *x, tp_tensor *w, tp_tensor *b, uint32_t stride_h,
                     uint32_t stride_w, uint32_t pad_top, uint32_t pad_bottom, uint32_t pad_left,
                     uint32_t pad_right);
/* tp_conv2d with "SAME" padding worked out from x's and w's shapes: the ResNet's 3x3 stride-1
 * and 3x3 / 1x1 stride-2 convolutions. OH = ceil(H / stride_h), OW = ceil(W / stride_w). */
tp_tensor *tp_conv2d_same(tp_graph *g, tp_tensor *x, tp_tensor *w, tp_tensor *b, uint32_t stride_h,
                          uint32_t stride_w);

/* How tp_conv2d computes, a setting of the graph (kept across tp_graph_reset). */
typedef enum tp_conv_algo {
    TP_CONV_ALGO_AUTO = 0,   /* the default: direct where conv.c's rule measured it faster */
    TP_CONV_ALGO_IM2COL = 1, /* always im2col + sgemm */
    TP_CONV_ALGO_DIRECT = 2  /* direct wherever it applies (channels <= 64), else im2col */
} tp_conv_algo;

/* Set how the graph's later tp_conv2d calls compute (for tests and measurements: AUTO is the
 * fast choice). A conv records its path when called; backward follows it. Unknown values are
 * taken as AUTO. */
void tp_conv_set_algo(tp_graph *g, tp_conv_algo algo);

/* Max pooling over (window_h, window_w) windows of x (B, H, W, C) -> (B, OH, OW, C), padded
 * positions ignored (Flax pads with -inf). Each padding must be smaller than its window, so
 * every window holds an input. A NaN in a window gives NaN (as XLA's max). Backward routes
 * each output's gradient to its argmax, the first maximum in (kh, kw) order on ties, kept from
 * forward ((B, OH, OW, C) int32 in the arena). */
tp_tensor *tp_maxpool2d(tp_graph *g, tp_tensor *x, uint32_t window_h, uint32_t window_w,
                        uint32_t stride_h, uint32_t stride_w, uint32_t pad_top, uint32_t pad_bottom,
                        uint32_t pad_left, uint32_t pad_right);
/* Average pooling, same geometry and rules as tp_maxpool2d. Padded positions are excluded from
 * the count: each output is the mean of the inputs its window covers, as Flax's avg_pool with
 * count_include_pad=False (Flax's default, True, divides by the window size instead; the two
 * agree without padding). Backward spreads d out / count over the window's inputs. */
tp_tensor *tp_avgpool2d(tp_graph *g, tp_tensor *x, uint32_t window_h, uint32_t window_w,
                        uint32_t stride_h, uint32_t stride_w, uint32_t pad_top, uint32_t pad_bottom,
                        uint32_t pad_left, uint32_t pad_right);
/* The mean over every dim but the first and the last: x (B, H, W, C) or (B, T, C) -> (B, C)
 * (images before the classifier, token sequences before a pooled head). */
tp_tensor *tp_global_avgpool(tp_graph *g, tp_tensor *x);

/* Batch norm over the last dim C, statistics over all the others ((B, H, W) for images, the
 * rows of a 2-D input): y = gamma * (x - mean) / sqrt(var + eps) + beta. x (..., C), gamma (C)
 * and beta (C) or NULL (scale 1 / shift 0, no gradient).
 *
 * train != 0: mean and var are the batch's, var biased (divided by N); backward flows through
 * them (the three-term formula). The running buffers, when not NULL, are updated IN PLACE
 * during forward, as flax.linen.BatchNorm does:
 *   running_mean = momentum * running_mean + (1 - momentum) * mean
 *   running_var  = momentum * running_var  + (1 - momentum) * var      (the biased var)
 * so a forward that is not followed by backward (an eval of the training loss, say) updates
 * them too, as in the reference.
 * train == 0: mean and var are running_mean and running_var (both required), nothing is
 * updated, and backward is that of the affine map.
 *
 * running_mean and running_var, (C) floats each, are model state owned by the caller (the
 * workload), never parameters: no gradient, not seen by the optimizer. momentum in [0, 1],
 * eps > 0 (Flax's defaults: 0.99, 1e-5; AlgoPerf's ResNet: 0.9, 1e-5). Statistics are summed
 * in double, two passes (mean, then squared deviations), not Flax's E[x^2] - E[x]^2. */
tp_tensor *tp_batchnorm(tp_graph *g, tp_tensor *x, tp_tensor *gamma, tp_tensor *beta,
                        float *running_mean, float *running_var, float momentum, float eps,
                        int train);

#endif /* TP_NN_CONV_H */
