/*
 * conv_impl.h - what the image ops of conv.c (convolution, pooling, batch norm) record on the
 * tape: their op types (TP__CONV_OPS, an X-macro that nn_impl.h turns into tp_op_type values
 * and ops.c into the cases that call tp__conv_backward) and what their backward needs
 * (struct tp__conv_saved, a member of tp_op's union). Not for use outside core/nn.
 */
#ifndef TP_NN_CONV_IMPL_H
#define TP_NN_CONV_IMPL_H

#include <stdint.h>

/* XX(NAME) for each op type TP_OP_NAME of conv.c. */
#define TP__CONV_OPS(XX)                                                                           \
    XX(CONV2D)                                                                                     \
    XX(MAXPOOL2D)                                                                                  \
    XX(AVGPOOL2D)                                                                                  \
    XX(GLOBAL_AVGPOOL)                                                                             \
    XX(BATCHNORM)

/* The geometry of a windowed op over (B, H, W, C) NHWC input: conv2d (KH, KW the kernel), the
 * pools (KH, KW the window). Output (B, OH, OW, *). Window (oh, ow) starts at input row
 * oh * sh - pt and column ow * sw - pl; the bottom and right padding are implied by OH, OW. */
typedef struct tp__conv_geom {
    uint32_t B, H, W, C;
    uint32_t KH, KW;
    uint32_t OH, OW;
    uint32_t sh, sw; /* strides */
    uint32_t pt, pl; /* top, left padding */
} tp__conv_geom;

struct tp__conv_saved {
    tp__conv_geom geom; /* conv2d, pools; global avgpool: (B, H = spatial size, W = 1, C) */
    uint32_t path;      /* conv2d: how it is computed, one of conv.c's CONV_PATH_* */
    float *col;         /* conv2d: one block of im2col rows (see conv.c), x->data itself for a
                           1x1 stride-1 unpadded conv (then the whole matrix), or the direct
                           path's scratch */
    int32_t *argmax;    /* maxpool2d: (B, OH, OW, C) input position ih * W + iw of each max */
    float *mean, *rstd; /* batchnorm: (C) the statistics used: batch (train) or running (eval) */
    double *acc;        /* batchnorm: scratch for backward, (2 C) doubles of per-channel sums then
                           (3 C) floats of partial sums and coefficients */
    uint64_t rows;      /* batchnorm: N = numel / C, the rows the statistics are taken over */
    int train;          /* batchnorm: statistics from the batch (1) or the running buffers (0) */
};

#endif /* TP_NN_CONV_IMPL_H */
