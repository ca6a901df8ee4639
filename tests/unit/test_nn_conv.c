/*
 * test_nn_conv.c - core/nn's image ops (conv.h): every op's backward against central finite
 * differences of its forward, for every input that takes a gradient (x, w, b, gamma, beta) and
 * several geometries (odd sizes, stride 2, asymmetric padding, KH != KW, C = 1, OC = 1, batch 1
 * and more); conv2d's forward against a naive 7-loop reference in double; "SAME" padding;
 * pooling's tie, NaN and padding rules; batch norm's train / eval modes and running statistics;
 * overwrite / accumulate gradient semantics; shape errors; bit-identical determinism; arena
 * reuse; and a timing print of the ResNet-sized convolutions (no assertion on time).
 *
 * Finite differences as in test_nn_ops.c: L = sum_i r_i y_i with fixed random r, summed in
 * double from the op's float outputs; each input element moved by +-eps (the step taken in
 * float is used), the slope compared with the analytic gradient by |a - n| / max(|a|, |n|,
 * FLOOR). Max pooling is tested on inputs spaced further apart than 2 eps, so no perturbation
 * changes an argmax.
 *
 * Not here: the dense ops (test_nn_ops.c).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <cmocka.h>

#include "core/nn/nn.h"

#define MAX_IN  6
#define MAX_EL  4096
#define FLOOR   1e-2 /* relative difference floor: gradients below this are compared absolutely */
#define TOL     2e-3 /* stated tolerance for smooth (non-linear) ops in float32 */
#define TOL_LIN 1e-3 /* ops linear in the checked input (no truncation error) */

/* One op (or chain) under test: inputs, geometry, and how to build the output from them. */
typedef struct fd_case {
    const char *name;
    int n_in;
    uint32_t ndim[MAX_IN];
    uint32_t shape[MAX_IN][TP_MAX_DIMS];
    int needs_grad[MAX_IN];
    int absent[MAX_IN];           /* pass NULL for this input (an optional one) */
    float lo[MAX_IN], hi[MAX_IN]; /* inputs uniform in [lo, hi) */
    float spacing[MAX_IN];        /* > 0: a shuffled ladder of distinct values this far apart */
    double eps;
    double tol;
    tp_tensor *(*build)(tp_graph *g, tp_tensor **in, const struct fd_case *c);
    uint32_t kh, kw; /* pooling window */
    uint32_t sh, sw, pt, pb, pl, pr;
    int train;
    float momentum, bn_eps;
    float rmean[64], rvar[64]; /* running statistics given to batch norm (copied per run) */
} fd_case;

static uint64_t numel_of(const fd_case *c, int k)
{
    uint64_t n = 1;
    for (uint32_t d = 0; d < c->ndim[k]; d++)
        n *= c->shape[k][d];
    return n;
}

static float data[MAX_IN][MAX_EL], grad[MAX_IN][MAX_EL], rweights[MAX_EL];

/* Build the op on views of data[] (grads into grad[] when wanted); NULL on error. */
static tp_tensor *run(tp_graph *g, const fd_case *c, int with_grad)
{
    tp_graph_reset(g);
    tp_tensor *in[MAX_IN] = {0};
    for (int k = 0; k < c->n_in; k++)
        if (!c->absent[k])
            in[k] = tp_tensor_view(g, data[k], with_grad && c->needs_grad[k] ? grad[k] : NULL,
                                   c->ndim[k], c->shape[k], 0);
    return c->build(g, in, c);
}

static double weighted(const tp_tensor *y)
{
    assert_non_null(y);
    double s = 0.0;
    for (uint64_t i = 0; i < y->numel; i++)
        s += (double)rweights[i] * y->data[i];
    return s;
}

static void fill_inputs(const fd_case *c, tp_rng *r)
{
    for (int k = 0; k < c->n_in; k++) {
        uint64_t n = numel_of(c, k);
        assert_true(n <= MAX_EL);
        if (c->spacing[k] > 0.0f) {
            static uint32_t perm[MAX_EL];
            for (uint32_t i = 0; i < n; i++)
                perm[i] = i;
            tp_rng_shuffle_u32(r, perm, n);
            for (uint64_t i = 0; i < n; i++)
                data[k][i] = c->spacing[k] * ((float)perm[i] - (float)n / 2.0f);
        } else {
            for (uint64_t i = 0; i < n; i++)
                data[k][i] = c->lo[k] + (c->hi[k] - c->lo[k]) * tp_rng_uniformf(r);
        }
        for (uint64_t i = 0; i < n; i++)
            grad[k][i] = 0.0f;
    }
}

static void check_case(const fd_case *c)
{
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    tp_rng r;
    tp_rng_seed(&r, 1234);
    fill_inputs(c, &r);
    for (int i = 0; i < MAX_EL; i++)
        rweights[i] = (float)(2.0 * tp_rng_uniform(&r) - 1.0);

    tp_tensor *y = run(g, c, 1);
    if (!y) {
        tp_graph_status(g, err, sizeof err);
        fail_msg("%s: forward failed: %s", c->name, err);
    }
    assert_true(y->numel <= MAX_EL);
    tp_tensor *L = tp_sum(g, y, rweights, 1.0f);
    if (tp_graph_backward(g, L, err, sizeof err))
        fail_msg("%s: backward failed: %s", c->name, err);

    double max_rel = 0.0;
    for (int k = 0; k < c->n_in; k++) {
        if (!c->needs_grad[k] || c->absent[k])
            continue;
        uint64_t n = numel_of(c, k);
        for (uint64_t i = 0; i < n; i++) {
            float v = data[k][i];
            float vp = (float)(v + c->eps), vm = (float)(v - c->eps);
            data[k][i] = vp;
            double lp = weighted(run(g, c, 0));
            data[k][i] = vm;
            double lm = weighted(run(g, c, 0));
            data[k][i] = v;
            double num = (lp - lm) / ((double)vp - (double)vm);
            double a = grad[k][i];
            double den = fmax(fmax(fabs(a), fabs(num)), FLOOR);
            double rel = fabs(a - num) / den;
            if (rel > max_rel)
                max_rel = rel;
            if (rel > c->tol)
                print_message("%s: input %d element %llu: analytic %.8g numeric %.8g\n", c->name, k,
                              (unsigned long long)i, a, num);
        }
    }
    print_message("%-52s max relative difference %.3g (tolerance %.1g)\n", c->name, max_rel,
                  c->tol);
    assert_true(max_rel < c->tol);
    tp_graph_free(g);
}

static fd_case base(const char *name, double eps, double tol)
{
    fd_case c;
    memset(&c, 0, sizeof c);
    c.name = name;
    c.eps = eps;
    c.tol = tol;
    c.sh = c.sw = 1;
    c.momentum = 0.9f;
    c.bn_eps = 1e-5f;
    for (int k = 0; k < MAX_IN; k++) {
        c.lo[k] = -1.0f;
        c.hi[k] = 1.0f;
        c.needs_grad[k] = 1;
        for (int d = 0; d < TP_MAX_DIMS; d++)
            c.shape[k][d] = 1;
    }
    for (int i = 0; i < 64; i++) {
        c.rmean[i] = 0.1f * (float)(i % 5) - 0.2f;
        c.rvar[i] = 0.5f + 0.25f * (float)(i % 3);
    }
    return c;
}

static void set_in(fd_case *c, int k, uint32_t ndim, uint32_t d0, uint32_t d1, uint32_t d2,
                   uint32_t d3)
{
    c->ndim[k] = ndim;
    c->shape[k][0] = d0;
    c->shape[k][1] = d1;
    c->shape[k][2] = d2;
    c->shape[k][3] = d3;
    if (k + 1 > c->n_in)
        c->n_in = k + 1;
}

static void set_geom(fd_case *c, uint32_t sh, uint32_t sw, uint32_t pt, uint32_t pb, uint32_t pl,
                     uint32_t pr)
{
    c->sh = sh;
    c->sw = sw;
    c->pt = pt;
    c->pb = pb;
    c->pl = pl;
    c->pr = pr;
}

/* ---------------------------------------------------------------------------------------- */
/* Builders */

static tp_tensor *b_conv(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_conv2d(g, in[0], in[1], in[2], c->sh, c->sw, c->pt, c->pb, c->pl, c->pr);
}

static tp_tensor *b_maxpool(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_maxpool2d(g, in[0], c->kh, c->kw, c->sh, c->sw, c->pt, c->pb, c->pl, c->pr);
}

static tp_tensor *b_avgpool(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_avgpool2d(g, in[0], c->kh, c->kw, c->sh, c->sw, c->pt, c->pb, c->pl, c->pr);
}

static tp_tensor *b_gap(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_global_avgpool(g, in[0]);
}

static tp_tensor *b_bn(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    static float rm[64], rv[64]; /* fresh copies each run: train mode updates them */
    memcpy(rm, c->rmean, sizeof rm);
    memcpy(rv, c->rvar, sizeof rv);
    return tp_batchnorm(g, in[0], in[1], in[2], rm, rv, c->momentum, c->bn_eps, c->train);
}

/* maxpool -> conv 3x3 stride 2 SAME (+b) -> batch norm (train) -> conv 1x1 (the direct path)
 * -> avgpool 3x3 padded -> global avgpool: every op, gradients through intermediate tensors
 * (the first-write paths), w2 used twice (accumulation into a parameter). Inputs: x, w1, b1,
 * gamma, beta, w2. */
static tp_tensor *b_chain(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    static float rm[64], rv[64];
    tp_tensor *h = tp_maxpool2d(g, in[0], 2, 2, 1, 1, 0, 0, 0, 0);
    h = tp_conv2d_same(g, h, in[1], in[2], 2, 2);
    h = tp_batchnorm(g, h, in[3], in[4], rm, rv, 0.9f, 1e-5f, 1);
    h = tp_conv2d(g, h, in[5], NULL, 1, 1, 0, 0, 0, 0);
    h = tp_tanh(g, h);
    h = tp_conv2d(g, h, in[5], NULL, 1, 1, 0, 0, 0, 0);
    h = tp_avgpool2d(g, h, 3, 3, 1, 1, 1, 1, 1, 1);
    return tp_global_avgpool(g, h);
}

/* ---------------------------------------------------------------------------------------- */
/* Finite-difference gradients */

static void test_grad_conv2d(void **state)
{
    /* 3x3 SAME, stride 1, batch 2, odd sizes. */
    fd_case c = base("conv 3x3 s1 SAME x(2,5,6,3) w(3,3,3,4) +b", 0.1, TOL_LIN);
    c.build = b_conv;
    set_in(&c, 0, 4, 2, 5, 6, 3);
    set_in(&c, 1, 4, 3, 3, 3, 4);
    set_in(&c, 2, 1, 4, 1, 1, 1);
    set_geom(&c, 1, 1, 1, 1, 1, 1);
    check_case(&c);

    /* KH != KW, strides (2, 1), asymmetric padding, batch 1, no bias. */
    c = base("conv 3x2 s(2,1) pad(0,2,1,0) x(1,7,5,2) w(3,2,2,3)", 0.1, TOL_LIN);
    c.build = b_conv;
    set_in(&c, 0, 4, 1, 7, 5, 2);
    set_in(&c, 1, 4, 3, 2, 2, 3);
    set_in(&c, 2, 1, 3, 1, 1, 1);
    c.absent[2] = 1;
    set_geom(&c, 2, 1, 0, 2, 1, 0);
    check_case(&c);

    /* 1x1 stride 2 (the ResNet shortcut), C = 1, batch 3. */
    c = base("conv 1x1 s2 x(3,7,6,1) w(1,1,1,5) +b", 0.1, TOL_LIN);
    c.build = b_conv;
    set_in(&c, 0, 4, 3, 7, 6, 1);
    set_in(&c, 1, 4, 1, 1, 1, 5);
    set_in(&c, 2, 1, 5, 1, 1, 1);
    set_geom(&c, 2, 2, 0, 0, 0, 0);
    check_case(&c);

    /* 1x1 stride 1 unpadded: the direct path (no im2col), OC = 1. */
    c = base("conv 1x1 s1 direct x(2,4,5,3) w(1,1,3,1) +b", 0.1, TOL_LIN);
    c.build = b_conv;
    set_in(&c, 0, 4, 2, 4, 5, 3);
    set_in(&c, 1, 4, 1, 1, 3, 1);
    set_in(&c, 2, 1, 1, 1, 1, 1);
    check_case(&c);

    /* 3x3 stride 2 SAME on an even size (padding (0, 1)), OC = 1. */
    c = base("conv 3x3 s2 SAME x(2,6,6,2) w(3,3,2,1)", 0.1, TOL_LIN);
    c.build = b_conv;
    set_in(&c, 0, 4, 2, 6, 6, 2);
    set_in(&c, 1, 4, 3, 3, 2, 1);
    set_in(&c, 2, 1, 1, 1, 1, 1);
    c.absent[2] = 1;
    set_geom(&c, 2, 2, 0, 1, 0, 1);
    check_case(&c);

    /* Padding wider than the kernel: some windows lie wholly in the padding (only the bias). */
    c = base("conv 2x2 s1 pad 2 x(1,3,3,2) w(2,2,2,2) +b", 0.1, TOL_LIN);
    c.build = b_conv;
    set_in(&c, 0, 4, 1, 3, 3, 2);
    set_in(&c, 1, 4, 2, 2, 2, 2);
    set_in(&c, 2, 1, 2, 1, 1, 1);
    set_geom(&c, 1, 1, 2, 2, 2, 2);
    check_case(&c);

    /* Stride 3 skipping inputs, kernel 1x3; x a constant (the first layer: no d x). */
    c = base("conv 1x3 s3 x const x(2,5,7,2) w(1,3,2,3) +b", 0.1, TOL_LIN);
    c.build = b_conv;
    set_in(&c, 0, 4, 2, 5, 7, 2);
    set_in(&c, 1, 4, 1, 3, 2, 3);
    set_in(&c, 2, 1, 3, 1, 1, 1);
    c.needs_grad[0] = 0;
    set_geom(&c, 3, 3, 0, 0, 1, 0);
    check_case(&c);
}

static void test_grad_maxpool2d(void **state)
{
    fd_case c = base("maxpool 3x3 s2 pad 1 x(2,7,7,3)", 1e-3, TOL_LIN);
    c.build = b_maxpool;
    set_in(&c, 0, 4, 2, 7, 7, 3);
    c.spacing[0] = 0.01f;
    c.kh = c.kw = 3;
    set_geom(&c, 2, 2, 1, 1, 1, 1);
    check_case(&c);

    c.name = "maxpool 2x2 s2 x(1,6,5,1) (odd width drops a column)";
    set_in(&c, 0, 4, 1, 6, 5, 1);
    c.kh = c.kw = 2;
    set_geom(&c, 2, 2, 0, 0, 0, 0);
    check_case(&c);

    c.name = "maxpool 3x2 s(1,2) pad(1,0,0,1) x(3,4,5,2)";
    set_in(&c, 0, 4, 3, 4, 5, 2);
    c.kh = 3;
    c.kw = 2;
    set_geom(&c, 1, 2, 1, 0, 0, 1);
    check_case(&c);
}

static void test_grad_avgpool2d(void **state)
{
    fd_case c = base("avgpool 3x3 s2 pad 1 x(2,7,7,3)", 0.1, TOL_LIN);
    c.build = b_avgpool;
    set_in(&c, 0, 4, 2, 7, 7, 3);
    c.kh = c.kw = 3;
    set_geom(&c, 2, 2, 1, 1, 1, 1);
    check_case(&c);

    c.name = "avgpool 2x3 s(1,2) pad(1,0,2,1) x(1,5,6,1)";
    set_in(&c, 0, 4, 1, 5, 6, 1);
    c.kh = 2;
    c.kw = 3;
    set_geom(&c, 1, 2, 1, 0, 2, 1);
    check_case(&c);

    c.name = "avgpool 2x2 s2 x(3,4,4,2)";
    set_in(&c, 0, 4, 3, 4, 4, 2);
    c.kh = c.kw = 2;
    set_geom(&c, 2, 2, 0, 0, 0, 0);
    check_case(&c);
}

static void test_grad_global_avgpool(void **state)
{
    fd_case c = base("global_avgpool x(2,3,5,4)", 0.1, TOL_LIN);
    c.build = b_gap;
    set_in(&c, 0, 4, 2, 3, 5, 4);
    check_case(&c);

    c.name = "global_avgpool (B,T,D) x(3,7,5)";
    set_in(&c, 0, 3, 3, 7, 5, 1);
    check_case(&c);

    c.name = "global_avgpool x(1,1,1,6) (one pixel)";
    set_in(&c, 0, 4, 1, 1, 1, 6);
    check_case(&c);
}

static void test_grad_batchnorm_train(void **state)
{
    /* Gradients flow through the batch mean and variance. */
    fd_case c = base("batchnorm train x(2,3,4,5) gamma beta", 2e-2, TOL);
    c.build = b_bn;
    c.train = 1;
    set_in(&c, 0, 4, 2, 3, 4, 5);
    set_in(&c, 1, 1, 5, 1, 1, 1);
    set_in(&c, 2, 1, 5, 1, 1, 1);
    c.lo[0] = -2.0f;
    c.hi[0] = 3.0f;
    c.lo[1] = 0.5f;
    c.hi[1] = 1.5f;
    check_case(&c);

    c.name = "batchnorm train 2-D x(6,3) gamma beta";
    set_in(&c, 0, 2, 6, 3, 1, 1);
    set_in(&c, 1, 1, 3, 1, 1, 1);
    set_in(&c, 2, 1, 3, 1, 1, 1);
    check_case(&c);

    c.name = "batchnorm train x(3,2,2,1) C=1, gamma NULL";
    set_in(&c, 0, 4, 3, 2, 2, 1);
    set_in(&c, 1, 1, 1, 1, 1, 1);
    set_in(&c, 2, 1, 1, 1, 1, 1);
    c.absent[1] = 1;
    check_case(&c);

    c.name = "batchnorm train x(1,3,3,4) batch 1, beta NULL";
    set_in(&c, 0, 4, 1, 3, 3, 4);
    set_in(&c, 1, 1, 4, 1, 1, 1);
    set_in(&c, 2, 1, 4, 1, 1, 1);
    c.absent[1] = 0;
    c.absent[2] = 1;
    check_case(&c);
}

static void test_grad_batchnorm_eval(void **state)
{
    fd_case c = base("batchnorm eval x(2,3,4,5) gamma beta", 0.1, TOL_LIN);
    c.build = b_bn;
    c.train = 0;
    set_in(&c, 0, 4, 2, 3, 4, 5);
    set_in(&c, 1, 1, 5, 1, 1, 1);
    set_in(&c, 2, 1, 5, 1, 1, 1);
    check_case(&c);

    c.name = "batchnorm eval 2-D x(4,3), no gamma / beta";
    set_in(&c, 0, 2, 4, 3, 1, 1);
    c.absent[1] = c.absent[2] = 1;
    check_case(&c);
}

static void test_grad_chain(void **state)
{
    fd_case c = base("chain maxpool-conv-bn-conv1x1-tanh-conv1x1-avg-gap", 1e-2, TOL);
    c.build = b_chain;
    set_in(&c, 0, 4, 2, 8, 7, 2); /* maxpool 2x2 s1 -> (2,7,6,2) */
    c.spacing[0] = 0.05f;         /* distinct x: no argmax changes under +-eps */
    set_in(&c, 1, 4, 3, 3, 2, 4); /* conv s2 SAME -> (2,4,3,4) */
    set_in(&c, 2, 1, 4, 1, 1, 1);
    set_in(&c, 3, 1, 4, 1, 1, 1);
    set_in(&c, 4, 1, 4, 1, 1, 1);
    set_in(&c, 5, 4, 1, 1, 4, 4);
    c.lo[3] = 0.5f;
    c.hi[3] = 1.5f;
    c.lo[5] = -0.5f; /* w2 is applied twice around a tanh: keep the curvature (and the
                        O(eps^2) truncation error of the differences) small */
    c.hi[5] = 0.5f;
    check_case(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* Forward values */

/* out[b, oh, ow, o] by the definition, in double; *mag = sum of |terms| + |bias| (for the
 * float error bound). */
static double conv_ref(const float *x, const float *w, const float *bias, uint32_t H, uint32_t W,
                       uint32_t C, uint32_t KH, uint32_t KW, uint32_t OC, uint32_t sh, uint32_t sw,
                       uint32_t pt, uint32_t pl, uint32_t b, uint32_t oh, uint32_t ow, uint32_t o,
                       double *mag)
{
    double s = bias ? bias[o] : 0.0, m = bias ? fabs(bias[o]) : 0.0;
    for (uint32_t kh = 0; kh < KH; kh++)
        for (uint32_t kw = 0; kw < KW; kw++)
            for (uint32_t c = 0; c < C; c++) {
                long ih = (long)oh * sh - pt + kh, iw = (long)ow * sw - pl + kw;
                if (ih < 0 || iw < 0 || ih >= (long)H || iw >= (long)W)
                    continue;
                double t = (double)x[(((size_t)b * H + ih) * W + iw) * C + c] *
                           w[(((size_t)kh * KW + kw) * C + c) * OC + o];
                s += t;
                m += fabs(t);
            }
    *mag = m;
    return s;
}

static void test_conv2d_forward_reference(void **state)
{
    struct {
        uint32_t B, H, W, C, KH, KW, OC, sh, sw, pt, pb, pl, pr;
        int bias;
    } cases[] = {
        {4, 28, 28, 16, 3, 3, 32, 1, 1, 1, 1, 1, 1, 1}, /* the ResNet's 3x3 SAME */
        {3, 28, 28, 32, 3, 3, 32, 2, 2, 0, 1, 0, 1, 0}, /* 3x3 stride 2 SAME */
        {3, 28, 28, 16, 1, 1, 32, 2, 2, 0, 0, 0, 0, 1}, /* 1x1 stride 2 */
        {2, 9, 11, 5, 1, 1, 7, 1, 1, 0, 0, 0, 0, 1},    /* 1x1 direct */
        {2, 9, 11, 1, 5, 2, 3, 3, 2, 2, 0, 1, 3, 1},    /* odd everything */
        {1, 3, 4, 2, 4, 4, 1, 1, 2, 3, 3, 2, 2, 0},     /* padding wider than the input */
    };
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    tp_rng r;
    tp_rng_seed(&r, 99);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        uint32_t B = cases[t].B, H = cases[t].H, W = cases[t].W, C = cases[t].C;
        uint32_t KH = cases[t].KH, KW = cases[t].KW, OC = cases[t].OC;
        size_t nx = (size_t)B * H * W * C, nw = (size_t)KH * KW * C * OC;
        float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), bias[64];
        assert_true(x && w);
        for (size_t i = 0; i < nx; i++)
            x[i] = (float)tp_rng_normal(&r);
        for (size_t i = 0; i < nw; i++)
            w[i] = (float)tp_rng_normal(&r);
        for (uint32_t i = 0; i < OC; i++)
            bias[i] = (float)tp_rng_normal(&r);
        tp_graph_reset(g);
        tp_tensor *tx = tp_tensor_view(g, x, NULL, 4, (uint32_t[]){B, H, W, C}, 0);
        tp_tensor *tw = tp_tensor_view(g, w, NULL, 4, (uint32_t[]){KH, KW, C, OC}, 0);
        tp_tensor *tb =
            cases[t].bias ? tp_tensor_view(g, bias, NULL, 1, (uint32_t[]){OC}, 0) : NULL;
        tp_tensor *y = tp_conv2d(g, tx, tw, tb, cases[t].sh, cases[t].sw, cases[t].pt, cases[t].pb,
                                 cases[t].pl, cases[t].pr);
        if (!y) {
            tp_graph_status(g, err, sizeof err);
            fail_msg("case %zu: %s", t, err);
        }
        uint32_t OH = (H + cases[t].pt + cases[t].pb - KH) / cases[t].sh + 1;
        uint32_t OW = (W + cases[t].pl + cases[t].pr - KW) / cases[t].sw + 1;
        assert_int_equal(y->ndim, 4);
        assert_int_equal(y->shape[0], B);
        assert_int_equal(y->shape[1], OH);
        assert_int_equal(y->shape[2], OW);
        assert_int_equal(y->shape[3], OC);
        double max_rel = 0.0;
        for (uint32_t b = 0; b < B; b++)
            for (uint32_t oh = 0; oh < OH; oh++)
                for (uint32_t ow = 0; ow < OW; ow++)
                    for (uint32_t o = 0; o < OC; o++) {
                        double mag;
                        double ref = conv_ref(x, w, cases[t].bias ? bias : NULL, H, W, C, KH, KW,
                                              OC, cases[t].sh, cases[t].sw, cases[t].pt,
                                              cases[t].pl, b, oh, ow, o, &mag);
                        double got = y->data[(((size_t)b * OH + oh) * OW + ow) * OC + o];
                        double rel = fabs(got - ref) / fmax(mag, 1e-30);
                        if (rel > max_rel)
                            max_rel = rel;
                    }
        print_message("conv2d forward (%u,%u,%u,%u) * (%u,%u,%u,%u) s(%u,%u): max |err| / sum "
                      "|terms| %.3g (tolerance 1e-5)\n",
                      B, H, W, C, KH, KW, C, OC, cases[t].sh, cases[t].sw, max_rel);
        assert_true(max_rel < 1e-5);
        free(x);
        free(w);
    }
    tp_graph_free(g);
}

/* Backward against sums in double over geometries of several im2col blocks (conv.c works in
 * blocks of 256 KiB of rows; the finite-difference cases fit in one): d w, d x and d b for
 * d out = r, errors relative to the sum of |terms|. */
static void test_conv2d_backward_reference(void **state)
{
    struct {
        uint32_t B, H, W, C, KH, KW, OC, sh, sw, pt, pb, pl, pr;
    } cases[] = {
        {3, 20, 19, 8, 3, 3, 8, 1, 1, 1, 1, 1, 1},   /* 1140 rows of 72: 2 blocks */
        {8, 17, 15, 16, 3, 3, 32, 2, 2, 0, 1, 1, 1}, /* 576 rows of 144: 2 blocks */
        {5, 13, 16, 6, 5, 3, 4, 1, 2, 2, 1, 0, 2},   /* KH != KW, asymmetric padding */
    };
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    tp_rng r;
    tp_rng_seed(&r, 21);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        uint32_t B = cases[t].B, H = cases[t].H, W = cases[t].W, C = cases[t].C;
        uint32_t KH = cases[t].KH, KW = cases[t].KW, OC = cases[t].OC;
        uint32_t sh = cases[t].sh, sw = cases[t].sw, pt = cases[t].pt, pl = cases[t].pl;
        uint32_t OH = (H + pt + cases[t].pb - KH) / sh + 1,
                 OW = (W + pl + cases[t].pr - KW) / sw + 1;
        size_t nx = (size_t)B * H * W * C, nw = (size_t)KH * KW * C * OC,
               ny = (size_t)B * OH * OW * OC;
        float *x = malloc(nx * sizeof(float)), *dx = calloc(nx, sizeof(float));
        float *w = malloc(nw * sizeof(float)), *dw = calloc(nw, sizeof(float));
        float *dy = malloc(ny * sizeof(float)), bias[32], db[32] = {0};
        double *rx = calloc(nx, sizeof(double)), *ax = calloc(nx, sizeof(double));
        double *rw = calloc(nw, sizeof(double)), *aw = calloc(nw, sizeof(double));
        double rb[32] = {0}, ab[32] = {0};
        assert_true(x && dx && w && dw && dy && rx && ax && rw && aw && OC <= 32);
        tp_fill_normal(x, nx, 1.0f, &r);
        tp_fill_normal(w, nw, 1.0f, &r);
        tp_fill_normal(bias, OC, 1.0f, &r);
        tp_fill_normal(dy, ny, 1.0f, &r);
        tp_graph_reset(g);
        tp_tensor *tx = tp_tensor_view(g, x, dx, 4, (uint32_t[]){B, H, W, C}, 0);
        tp_tensor *tw = tp_tensor_view(g, w, dw, 4, (uint32_t[]){KH, KW, C, OC}, 0);
        tp_tensor *tb = tp_tensor_view(g, bias, db, 1, (uint32_t[]){OC}, 0);
        tp_tensor *y = tp_conv2d(g, tx, tw, tb, sh, sw, pt, cases[t].pb, pl, cases[t].pr);
        assert_non_null(y);
        assert_int_equal(y->numel, ny);
        assert_int_equal(tp_graph_backward(g, tp_sum(g, y, dy, 1.0f), err, sizeof err), 0);
        for (uint32_t b = 0; b < B; b++)
            for (uint32_t oh = 0; oh < OH; oh++)
                for (uint32_t ow = 0; ow < OW; ow++) {
                    const float *d = dy + (((size_t)b * OH + oh) * OW + ow) * OC;
                    for (uint32_t o = 0; o < OC; o++) {
                        rb[o] += d[o];
                        ab[o] += fabs(d[o]);
                    }
                    for (uint32_t kh = 0; kh < KH; kh++)
                        for (uint32_t kw = 0; kw < KW; kw++) {
                            long ih = (long)oh * sh - pt + kh, iw = (long)ow * sw - pl + kw;
                            if (ih < 0 || iw < 0 || ih >= (long)H || iw >= (long)W)
                                continue;
                            for (uint32_t c = 0; c < C; c++) {
                                size_t ix = (((size_t)b * H + ih) * W + iw) * C + c;
                                size_t iw0 = (((size_t)kh * KW + kw) * C + c) * OC;
                                for (uint32_t o = 0; o < OC; o++) {
                                    double tw_ = (double)x[ix] * d[o],
                                           tx_ = (double)w[iw0 + o] * d[o];
                                    rw[iw0 + o] += tw_;
                                    aw[iw0 + o] += fabs(tw_);
                                    rx[ix] += tx_;
                                    ax[ix] += fabs(tx_);
                                }
                            }
                        }
                }
        double ex = 0.0, ew = 0.0, eb = 0.0;
        for (size_t i = 0; i < nx; i++)
            ex = fmax(ex, fabs(dx[i] - rx[i]) / fmax(ax[i], 1e-30));
        for (size_t i = 0; i < nw; i++)
            ew = fmax(ew, fabs(dw[i] - rw[i]) / fmax(aw[i], 1e-30));
        for (uint32_t o = 0; o < OC; o++)
            eb = fmax(eb, fabs(db[o] - rb[o]) / fmax(ab[o], 1e-30));
        print_message("conv2d backward (%u,%u,%u,%u) * (%u,%u,%u,%u) s(%u,%u): max |err| / sum "
                      "|terms|: dx %.3g dw %.3g db %.3g (tolerance 1e-5)\n",
                      B, H, W, C, KH, KW, C, OC, sh, sw, ex, ew, eb);
        assert_true(ex < 1e-5 && ew < 1e-5 && eb < 1e-5);
        free(x);
        free(dx);
        free(w);
        free(dw);
        free(dy);
        free(rx);
        free(ax);
        free(rw);
        free(aw);
    }
    tp_graph_free(g);
}

/* ---------------------------------------------------------------------------------------- */
/* The direct path against the im2col path */

/* Buffers of one conv run: the output and the gradients of sum(r y). */
typedef struct conv_out {
    float *y, *dx, *dw, *db;
} conv_out;

/* Geometry of one random case. */
typedef struct conv_case {
    uint32_t xs[4], ws[4];           /* x (B, H, W, C), w (KH, KW, C, OC) */
    uint32_t sh, sw, pt, pb, pl, pr; /* strides, padding */
    int bias, x_grad, w_grad;
    uint32_t flags; /* of the x, w and b views: accumulate (0) or overwrite */
} conv_case;

/* Forward and backward of conv c with algorithm algo on x, w, b, the loss sum(r y); the
 * gradient buffers of *o are views with c->flags (they hold their initial values on entry),
 * o->y gets a copy of y. */
static void conv_case_run(tp_graph *g, tp_conv_algo algo, const conv_case *c, const float *x,
                          const float *w, const float *b, const float *r, conv_out *o)
{
    char err[256];
    tp_graph_reset(g);
    tp_conv_set_algo(g, algo);
    tp_tensor *tx = tp_tensor_view(g, (float *)x, c->x_grad ? o->dx : NULL, 4, c->xs, c->flags);
    tp_tensor *tw = tp_tensor_view(g, (float *)w, c->w_grad ? o->dw : NULL, 4, c->ws, c->flags);
    tp_tensor *tb =
        c->bias ? tp_tensor_view(g, (float *)b, o->db, 1, (uint32_t[]){c->ws[3]}, c->flags) : NULL;
    tp_tensor *y = tp_conv2d(g, tx, tw, tb, c->sh, c->sw, c->pt, c->pb, c->pl, c->pr);
    if (!y) {
        tp_graph_status(g, err, sizeof err);
        fail_msg("conv: %s", err);
    }
    memcpy(o->y, y->data, y->numel * sizeof(float));
    assert_int_equal(tp_graph_backward(g, tp_sum(g, y, r, 1.0f), err, sizeof err), 0);
}

/* max over i of |a - b| / den, den = mag + |init| (the sum of |terms| plus what an accumulating
 * gradient held before). */
static double max_rel_diff(const float *a, const float *b, const float *mag, const float *init,
                           size_t n)
{
    double e = 0.0;
    for (size_t i = 0; i < n; i++) {
        double den = fmax((double)mag[i] + (init ? fabs((double)init[i]) : 0.0), 1e-30);
        e = fmax(e, fabs((double)a[i] - (double)b[i]) / den);
    }
    return e;
}

/* tp_conv2d's direct path (TP_CONV_ALGO_DIRECT) against its im2col path on random geometries:
 * batch 1-3, odd and even sizes from 1 to 13, kernels 1, 2, 3 or 5 on each side, strides 1, 2
 * and 3, "SAME" and arbitrary padding (wider than the kernel too), channel counts in and out
 * from 1 to 64 (most not multiples of 16, where the direct kernels pad the vectors), with and
 * without bias, gradients accumulated onto random values or overwriting NaN, x or w without a
 * gradient. Forward and every gradient must agree to 2e-6 of the sum of |terms| of each output
 * element: each side's float sums err by ~sqrt(n) 6e-8 of it for n terms (n <= 1600 here), the
 * largest difference seen over 1500 such cases was 3.4e-7, and an indexing or padding mistake
 * is of order 1. The sums of |terms| come from the same conv on |x|, |w|, |b| and |r|. The direct
 * path must also repeat its bits. */
static void test_conv2d_direct_vs_im2col(void **state)
{
    enum { TRIALS = 80, MAXX = 3 * 13 * 13 * 64, MAXW = 5 * 5 * 64 * 64, MAXY = 3 * 25 * 25 * 64 };
    static const uint32_t chans[] = {1, 2, 3, 5, 8, 15, 16, 17, 24, 31, 32, 33, 40, 48, 63, 64};
    static const uint32_t kernels[] = {1, 2, 3, 5};
    static float x[MAXX], w[MAXW], b[64], r[MAXY], ax[MAXX], aw[MAXW], ab[64], ar[MAXY];
    static float init_x[MAXX], init_w[MAXW], init_b[64];
    static float buf[4][4][MAXY > MAXW ? MAXY : MAXW]; /* [run][y, dx, dw, db] */
    conv_out o[4];
    for (int k = 0; k < 4; k++)
        o[k] = (conv_out){buf[k][0], buf[k][1], buf[k][2], buf[k][3]};
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    tp_rng rng;
    tp_rng_seed(&rng, 2024);
    double e_max[4] = {0}; /* y, dx, dw, db */
    int differ = 0;
    for (int t = 0; t < TRIALS; t++) {
        conv_case c = {0};
        uint32_t B = 1 + tp_rng_u64(&rng) % 3, H = 1 + tp_rng_u64(&rng) % 13,
                 W = 1 + tp_rng_u64(&rng) % 13;
        uint32_t C = chans[tp_rng_u64(&rng) % 16], OC = chans[tp_rng_u64(&rng) % 16];
        uint32_t KH = kernels[tp_rng_u64(&rng) % 4], KW = kernels[tp_rng_u64(&rng) % 4];
        c.sh = 1 + tp_rng_u64(&rng) % 3;
        c.sw = t % 5 == 0 ? c.sh : 1 + (uint32_t)(tp_rng_u64(&rng) % 2);
        if (t % 2 == 0) { /* "SAME" */
            tp_conv_same_padding(H, KH, c.sh, &c.pt, &c.pb);
            tp_conv_same_padding(W, KW, c.sw, &c.pl, &c.pr);
        } else {
            c.pt = tp_rng_u64(&rng) % (KH + 1);
            c.pb = tp_rng_u64(&rng) % (KH + 1);
            c.pl = tp_rng_u64(&rng) % (KW + 1);
            c.pr = tp_rng_u64(&rng) % (KW + 1);
        }
        if (H + c.pt + c.pb < KH) /* the window must fit */
            c.pb = KH - H - c.pt;
        if (W + c.pl + c.pr < KW)
            c.pr = KW - W - c.pl;
        uint32_t OH = (H + c.pt + c.pb - KH) / c.sh + 1, OW = (W + c.pl + c.pr - KW) / c.sw + 1;
        memcpy(c.xs, (uint32_t[]){B, H, W, C}, sizeof c.xs);
        memcpy(c.ws, (uint32_t[]){KH, KW, C, OC}, sizeof c.ws);
        c.bias = t % 3 != 0;
        c.x_grad = t % 5 != 4;
        c.w_grad = t % 7 != 6;
        c.flags = t % 2 ? TP_TENSOR_GRAD_OVERWRITE : 0;
        size_t nx = (size_t)B * H * W * C, nw = (size_t)KH * KW * C * OC,
               ny = (size_t)B * OH * OW * OC;
        assert_true(nx <= MAXX && nw <= MAXW && ny <= MAXY);
        tp_fill_normal(x, nx, 1.0f, &rng);
        tp_fill_normal(w, nw, 1.0f, &rng);
        tp_fill_normal(b, OC, 1.0f, &rng);
        tp_fill_normal(r, ny, 1.0f, &rng);
        tp_fill_normal(init_x, nx, 1.0f, &rng);
        tp_fill_normal(init_w, nw, 1.0f, &rng);
        tp_fill_normal(init_b, OC, 1.0f, &rng);
        for (size_t i = 0; i < nx; i++)
            ax[i] = fabsf(x[i]);
        for (size_t i = 0; i < nw; i++)
            aw[i] = fabsf(w[i]);
        for (size_t i = 0; i < OC; i++)
            ab[i] = fabsf(b[i]);
        for (size_t i = 0; i < ny; i++)
            ar[i] = fabsf(r[i]);
        /* Runs 0 and 1 direct, 2 im2col: gradients start from init (accumulate) or NaN
         * (overwrite); run 3 the sums of |terms|, accumulated onto zeros. */
        for (int k = 0; k < 4; k++) {
            int mag = k == 3;
            for (size_t i = 0; i < nx; i++)
                o[k].dx[i] = mag ? 0.0f : c.flags ? NAN : init_x[i];
            for (size_t i = 0; i < nw; i++)
                o[k].dw[i] = mag ? 0.0f : c.flags ? NAN : init_w[i];
            for (size_t i = 0; i < OC; i++)
                o[k].db[i] = mag ? 0.0f : c.flags ? NAN : init_b[i];
            conv_case mc = c;
            if (mag)
                mc.flags = 0;
            conv_case_run(g, k < 2 ? TP_CONV_ALGO_DIRECT : TP_CONV_ALGO_IM2COL, &mc, mag ? ax : x,
                          mag ? aw : w, mag ? ab : b, mag ? ar : r, &o[k]);
        }
        /* Same inputs, same path: the same bits. */
        assert_memory_equal(o[0].y, o[1].y, ny * sizeof(float));
        if (c.x_grad)
            assert_memory_equal(o[0].dx, o[1].dx, nx * sizeof(float));
        if (c.w_grad)
            assert_memory_equal(o[0].dw, o[1].dw, nw * sizeof(float));
        const float *ix = c.flags ? NULL : init_x, *iw = c.flags ? NULL : init_w,
                    *ib = c.flags ? NULL : init_b;
        double e[4] = {max_rel_diff(o[0].y, o[2].y, o[3].y, NULL, ny),
                       c.x_grad ? max_rel_diff(o[0].dx, o[2].dx, o[3].dx, ix, nx) : 0.0,
                       c.w_grad ? max_rel_diff(o[0].dw, o[2].dw, o[3].dw, iw, nw) : 0.0,
                       c.bias ? max_rel_diff(o[0].db, o[2].db, o[3].db, ib, OC) : 0.0};
        if (memcmp(o[0].y, o[2].y, ny * sizeof(float)))
            differ = 1;
        for (int k = 0; k < 4; k++) {
            if (e[k] >= 2e-6)
                print_message("case %d: x (%u,%u,%u,%u) w (%u,%u,%u,%u) s(%u,%u) pad(%u,%u,%u,%u) "
                              "%s: %s differs by %.3g\n",
                              t, B, H, W, C, KH, KW, C, OC, c.sh, c.sw, c.pt, c.pb, c.pl, c.pr,
                              c.flags ? "overwrite" : "accumulate",
                              (const char *[]){"y", "dx", "dw", "db"}[k], e[k]);
            assert_true(e[k] < 2e-6);
            e_max[k] = fmax(e_max[k], e[k]);
        }
    }
    print_message(
        "conv2d direct vs im2col, %d random cases: max |difference| / sum |terms|: y %.3g "
        "dx %.3g dw %.3g db %.3g (tolerance 2e-6)\n",
        TRIALS, e_max[0], e_max[1], e_max[2], e_max[3]);
    /* The two paths sum in different orders: identical bits everywhere would mean the setting
     * did not reach tp_conv2d. */
    assert_true(differ);
    tp_graph_free(g);
}

static void test_same_padding(void **state)
{
    struct {
        uint32_t in, k, s, out, lo, hi;
    } t[] = {
        {28, 3, 1, 28, 1, 1}, {28, 3, 2, 14, 0, 1}, {28, 1, 2, 14, 0, 0}, {7, 3, 2, 4, 1, 1},
        {5, 4, 1, 5, 1, 2},   {1, 3, 1, 1, 1, 1},   {14, 7, 2, 7, 2, 3},  {3, 3, 3, 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint32_t lo, hi;
        assert_int_equal(tp_conv_same_padding(t[i].in, t[i].k, t[i].s, &lo, &hi), t[i].out);
        assert_int_equal(lo, t[i].lo);
        assert_int_equal(hi, t[i].hi);
    }
    uint32_t lo = 9, hi = 9;
    assert_int_equal(tp_conv_same_padding(5, 3, 0, &lo, &hi), 0);
    assert_int_equal(lo + hi, 0);

    /* tp_conv2d_same: the ResNet's one-liners give ceil(H / stride). */
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    static float x[2 * 28 * 28 * 4], w[3 * 3 * 4 * 8];
    tp_tensor *tx = tp_tensor_view(g, x, NULL, 4, (uint32_t[]){2, 28, 28, 4}, 0);
    tp_tensor *w3 = tp_tensor_view(g, w, NULL, 4, (uint32_t[]){3, 3, 4, 8}, 0);
    tp_tensor *w1 = tp_tensor_view(g, w, NULL, 4, (uint32_t[]){1, 1, 4, 8}, 0);
    tp_tensor *y = tp_conv2d_same(g, tx, w3, NULL, 1, 1);
    assert_true(y && y->shape[1] == 28 && y->shape[2] == 28 && y->shape[3] == 8);
    y = tp_conv2d_same(g, tx, w3, NULL, 2, 2);
    assert_true(y && y->shape[1] == 14 && y->shape[2] == 14);
    y = tp_conv2d_same(g, tx, w1, NULL, 2, 2);
    assert_true(y && y->shape[1] == 14 && y->shape[2] == 14);
    tx = tp_tensor_view(g, x, NULL, 4, (uint32_t[]){2, 7, 7, 4}, 0);
    y = tp_conv2d_same(g, tx, w3, NULL, 2, 2);
    assert_true(y && y->shape[1] == 4 && y->shape[2] == 4);
    tp_graph_free(g);
}

static void test_pool_values(void **state)
{
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    /* x (1, 3, 3, 1) = 1..9; avgpool 2x2 stride 1 padding 1 everywhere -> (1, 4, 4, 1): the
     * corner windows see one input each, the edges two, the middle four. */
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    tp_tensor *tx = tp_tensor_view(g, x, NULL, 4, (uint32_t[]){1, 3, 3, 1}, 0);
    tp_tensor *y = tp_avgpool2d(g, tx, 2, 2, 1, 1, 1, 1, 1, 1);
    assert_non_null(y);
    assert_int_equal(y->shape[1], 4);
    assert_int_equal(y->shape[2], 4);
    assert_float_equal(y->data[0], 1.0f, 1e-6);         /* {1} */
    assert_float_equal(y->data[1], 1.5f, 1e-6);         /* {1, 2} */
    assert_float_equal(y->data[5], 3.0f, 1e-6);         /* {1, 2, 4, 5} */
    assert_float_equal(y->data[15], 9.0f, 1e-6);        /* {9} */
    assert_float_equal(y->data[3 * 4 + 1], 7.5f, 1e-6); /* {7, 8} */
    y = tp_maxpool2d(g, tx, 3, 3, 2, 2, 1, 1, 1, 1);    /* (1, 2, 2, 1) */
    assert_non_null(y);
    assert_true(y->data[0] == 5 && y->data[1] == 6 && y->data[2] == 8 && y->data[3] == 9);
    /* Negative inputs: padding never wins a max (it is not a zero). */
    float neg[9];
    for (int i = 0; i < 9; i++)
        neg[i] = -x[i];
    tx = tp_tensor_view(g, neg, NULL, 4, (uint32_t[]){1, 3, 3, 1}, 0);
    y = tp_maxpool2d(g, tx, 2, 2, 1, 1, 1, 1, 1, 1);
    assert_non_null(y);
    assert_true(y->data[0] == -1.0f && y->data[15] == -9.0f);

    /* Ties: all ones, 2x2 windows stride 1; every gradient goes to the window's first (top-left)
     * element, so d x is the count of windows whose top-left each position is. */
    tp_graph_reset(g);
    float ones[12], dones[12];
    for (int i = 0; i < 12; i++)
        ones[i] = 1.0f, dones[i] = 0.0f;
    tx = tp_tensor_view(g, ones, dones, 4, (uint32_t[]){1, 3, 4, 1}, 0);
    y = tp_maxpool2d(g, tx, 2, 2, 1, 1, 0, 0, 0, 0); /* (1, 2, 3, 1) */
    assert_int_equal(tp_graph_backward(g, tp_sum(g, y, NULL, 1.0f), err, sizeof err), 0);
    float want[12] = {1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0};
    for (int i = 0; i < 12; i++)
        assert_true(dones[i] == want[i]);

    /* NaN propagates, wherever it is in the window, and its gradient goes to it. */
    tp_graph_reset(g);
    float xn[4] = {1.0f, NAN, 3.0f, 2.0f}, dxn[4] = {0};
    tx = tp_tensor_view(g, xn, dxn, 4, (uint32_t[]){1, 2, 2, 1}, 0);
    y = tp_maxpool2d(g, tx, 2, 2, 1, 1, 0, 0, 0, 0);
    assert_true(isnan(y->data[0]));
    assert_int_equal(tp_graph_backward(g, tp_sum(g, y, NULL, 1.0f), err, sizeof err), 0);
    assert_true(dxn[0] == 0.0f && dxn[1] == 1.0f && dxn[2] == 0.0f && dxn[3] == 0.0f);

    /* Global average pool of a (2, 2, 2, 2) ramp. */
    tp_graph_reset(g);
    float r[16];
    for (int i = 0; i < 16; i++)
        r[i] = (float)i;
    y = tp_global_avgpool(g, tp_tensor_view(g, r, NULL, 4, (uint32_t[]){2, 2, 2, 2}, 0));
    assert_true(y && y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 2);
    assert_float_equal(y->data[0], 3.0f, 1e-6);  /* 0 2 4 6 */
    assert_float_equal(y->data[3], 12.0f, 1e-6); /* 9 11 13 15 */
    tp_graph_free(g);
}

/* ---------------------------------------------------------------------------------------- */
/* Batch norm: values and running statistics */

static void test_batchnorm_running_stats(void **state)
{
    enum { N = 6 * 5, C = 3 };
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    float x1[N * C], x2[N * C], gamma[C] = {1.5f, 0.5f, 2.0f}, beta[C] = {0.1f, -0.2f, 0.3f};
    float rm[C] = {0.0f, 0.0f, 0.0f}, rv[C] = {1.0f, 1.0f, 1.0f};
    double em[C] = {0.0, 0.0, 0.0}, ev[C] = {1.0, 1.0, 1.0};
    const float momentum = 0.9f, eps = 1e-5f;
    tp_rng r;
    tp_rng_seed(&r, 5);
    for (int i = 0; i < N * C; i++) {
        x1[i] = 3.0f + 2.0f * (float)tp_rng_normal(&r) * (float)(1 + i % C);
        x2[i] = -1.0f + 0.5f * (float)tp_rng_normal(&r);
    }
    float *xs[2] = {x1, x2};
    for (int step = 0; step < 2; step++) {
        tp_graph_reset(g);
        tp_tensor *tx = tp_tensor_view(g, xs[step], NULL, 4, (uint32_t[]){2, 3, 5, C}, 0);
        tp_tensor *tg = tp_tensor_view(g, gamma, NULL, 1, (uint32_t[]){C}, 0);
        tp_tensor *tb = tp_tensor_view(g, beta, NULL, 1, (uint32_t[]){C}, 0);
        tp_tensor *y = tp_batchnorm(g, tx, tg, tb, rm, rv, momentum, eps, 1);
        assert_non_null(y);
        double max_err = 0.0;
        for (int c = 0; c < C; c++) {
            double m = 0.0, v = 0.0;
            for (int i = 0; i < N; i++)
                m += xs[step][i * C + c];
            m /= N;
            for (int i = 0; i < N; i++)
                v += (xs[step][i * C + c] - m) * (xs[step][i * C + c] - m);
            v /= N; /* biased, as flax.linen.BatchNorm */
            em[c] = momentum * em[c] + (1.0 - momentum) * m;
            ev[c] = momentum * ev[c] + (1.0 - momentum) * v;
            for (int i = 0; i < N; i++) {
                double want = gamma[c] * (xs[step][i * C + c] - m) / sqrt(v + eps) + beta[c];
                max_err = fmax(max_err, fabs(y->data[i * C + c] - want));
            }
            assert_float_equal(rm[c], em[c], 1e-5 * fmax(1.0, fabs(em[c])));
            assert_float_equal(rv[c], ev[c], 1e-5 * fmax(1.0, fabs(ev[c])));
        }
        print_message("batchnorm train step %d: output max |err| %.3g (tolerance 1e-5), running "
                      "mean %.6f %.6f %.6f var %.6f %.6f %.6f\n",
                      step + 1, max_err, rm[0], rm[1], rm[2], rv[0], rv[1], rv[2]);
        assert_true(max_err < 1e-5);
    }
    /* A forward without backward updated them (done above, no backward was run). Eval mode:
     * the running statistics, no update. */
    float rm_before[C], rv_before[C];
    memcpy(rm_before, rm, sizeof rm);
    memcpy(rv_before, rv, sizeof rv);
    tp_graph_reset(g);
    tp_tensor *tx = tp_tensor_view(g, x1, NULL, 2, (uint32_t[]){N, C}, 0);
    tp_tensor *y = tp_batchnorm(g, tx, NULL, NULL, rm, rv, momentum, eps, 0);
    assert_non_null(y);
    assert_memory_equal(rm, rm_before, sizeof rm);
    assert_memory_equal(rv, rv_before, sizeof rv);
    for (int i = 0; i < N * C; i++) {
        double want = (x1[i] - rm[i % C]) / sqrt((double)rv[i % C] + eps);
        assert_float_equal(y->data[i], want, 1e-5 * fmax(1.0, fabs(want)));
    }
    /* Train mode without running buffers: normalises, updates nothing. */
    tp_graph_reset(g);
    tx = tp_tensor_view(g, x1, NULL, 2, (uint32_t[]){N, C}, 0);
    assert_non_null(tp_batchnorm(g, tx, NULL, NULL, NULL, NULL, momentum, eps, 1));
    tp_graph_free(g);
}

/* ---------------------------------------------------------------------------------------- */
/* Gradient semantics: overwrite and accumulate */

/* One step of every op on fixed inputs, gradients into dx (x), dw (w), dg (gamma) with flags. */
static void every_op_step(tp_graph *g, const float *x, float *dx, const float *w, float *dw,
                          const float *gm, float *dg, uint32_t flags)
{
    static float rm[4], rv[4];
    char err[256];
    tp_graph_reset(g);
    tp_tensor *tx = tp_tensor_view(g, (float *)x, dx, 4, (uint32_t[]){2, 6, 5, 4}, flags);
    tp_tensor *tw = tp_tensor_view(g, (float *)w, dw, 4, (uint32_t[]){3, 3, 4, 4}, flags);
    tp_tensor *tg = tp_tensor_view(g, (float *)gm, dg, 1, (uint32_t[]){4}, flags);
    tp_tensor *h = tp_conv2d_same(g, tx, tw, NULL, 1, 1);
    h = tp_batchnorm(g, h, tg, NULL, rm, rv, 0.9f, 1e-5f, 1);
    tp_tensor *h1 = tp_maxpool2d(g, h, 2, 2, 2, 2, 0, 0, 0, 0);
    tp_tensor *h2 = tp_avgpool2d(g, tx, 2, 2, 2, 2, 0, 1, 0, 1); /* x used twice */
    tp_tensor *l1 = tp_sum(g, tp_global_avgpool(g, h1), NULL, 1.0f);
    /* Sum the two branches through a (1)-shaped bias add: l1 + sum(h2 * 0.5). */
    tp_tensor *l = tp_bias_add(g, l1, tp_sum(g, h2, NULL, 0.5f));
    assert_int_equal(tp_graph_backward(g, l, err, sizeof err), 0);
}

static void test_grad_overwrite_accumulate(void **state)
{
    enum { NX = 2 * 6 * 5 * 4, NW = 3 * 3 * 4 * 4 };
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    static float x[NX], w[NW], gm[4], dx[NX], dw[NW], dg[4], dx2[NX], dw2[NW], dg2[4];
    tp_rng r;
    tp_rng_seed(&r, 11);
    for (int i = 0; i < NX; i++)
        x[i] = (float)tp_rng_normal(&r);
    for (int i = 0; i < NW; i++)
        w[i] = (float)tp_rng_normal(&r);
    for (int i = 0; i < 4; i++)
        gm[i] = 1.0f + 0.25f * (float)i;
    /* Reference: accumulate onto zeros. */
    memset(dx, 0, sizeof dx);
    memset(dw, 0, sizeof dw);
    memset(dg, 0, sizeof dg);
    every_op_step(g, x, dx, w, dw, gm, dg, 0);
    /* Overwrite: garbage in the buffers must not leak into the result. */
    for (int i = 0; i < NX; i++)
        dx2[i] = NAN;
    for (int i = 0; i < NW; i++)
        dw2[i] = NAN;
    for (int i = 0; i < 4; i++)
        dg2[i] = NAN;
    every_op_step(g, x, dx2, w, dw2, gm, dg2, TP_TENSOR_GRAD_OVERWRITE);
    assert_memory_equal(dx, dx2, sizeof dx);
    assert_memory_equal(dw, dw2, sizeof dw);
    assert_memory_equal(dg, dg2, sizeof dg);
    /* Accumulate onto the previous gradient: twice the value. */
    every_op_step(g, x, dx2, w, dw2, gm, dg2, 0);
    for (int i = 0; i < NX; i++)
        assert_float_equal(dx2[i], 2.0f * dx[i], 1e-6 * fmax(1.0, fabs(dx[i])));
    for (int i = 0; i < NW; i++)
        assert_float_equal(dw2[i], 2.0f * dw[i], 1e-6 * fmax(1.0, fabs(dw[i])));
    for (int i = 0; i < 4; i++)
        assert_float_equal(dg2[i], 2.0f * dg[i], 1e-6 * fmax(1.0, fabs(dg[i])));
    tp_graph_free(g);
}

/* ---------------------------------------------------------------------------------------- */
/* Errors */

static void expect_error(tp_graph *g, tp_tensor *y, int code, const char *const *needles)
{
    char err[256];
    assert_null(y);
    int rc = tp_graph_status(g, err, sizeof err);
    print_message("error: %s\n", err);
    assert_int_equal(rc, code);
    for (; *needles; needles++)
        if (!strstr(err, *needles))
            fail_msg("\"%s\" not in \"%s\"", *needles, err);
    tp_graph_reset(g);
}

static void test_errors(void **state)
{
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    static float buf[8 * 28 * 28 * 2];
    float rm[16] = {0}, rv[16] = {0};
#define V(...)                                                                                     \
    tp_tensor_view(g, buf, NULL, sizeof((uint32_t[]){__VA_ARGS__}) / 4, (uint32_t[]){__VA_ARGS__}, \
                   0)
#define E(...) ((const char *const[]){__VA_ARGS__, NULL})
    expect_error(g, tp_conv2d(g, V(8, 28, 28, 1), V(3, 3, 2, 16), NULL, 1, 1, 1, 1, 1, 1),
                 TP_EINVAL, E("tp_conv2d", "(8, 28, 28, 1)", "(3, 3, 2, 16)", "channels 1 != 2"));
    expect_error(g, tp_conv2d(g, V(8, 28, 28), V(3, 3, 28, 16), NULL, 1, 1, 1, 1, 1, 1), TP_EINVAL,
                 E("tp_conv2d", "(8, 28, 28)", "NHWC"));
    expect_error(g, tp_conv2d(g, V(8, 28, 28, 2), V(9, 2, 16), NULL, 1, 1, 1, 1, 1, 1), TP_EINVAL,
                 E("tp_conv2d", "(9, 2, 16)", "HWIO"));
    expect_error(g, tp_conv2d(g, V(8, 28, 28, 2), V(3, 3, 2, 16), V(15), 1, 1, 1, 1, 1, 1),
                 TP_EINVAL, E("bias (15)", "16 output channels"));
    expect_error(g, tp_conv2d(g, V(8, 28, 28, 2), V(3, 3, 2, 16), NULL, 0, 1, 1, 1, 1, 1),
                 TP_EINVAL, E("tp_conv2d", "strides (0, 1)"));
    expect_error(g, tp_conv2d(g, V(8, 2, 28, 2), V(3, 3, 2, 16), NULL, 1, 1, 0, 0, 0, 0), TP_EINVAL,
                 E("window (3, 3)", "(8, 2, 28, 2)", "padded to (2, 28)"));
    expect_error(g, tp_conv2d_same(g, NULL, V(3, 3, 2, 16), NULL, 1, 1), TP_EINVAL,
                 E("tp_conv2d", "x is NULL"));
    expect_error(g, tp_maxpool2d(g, V(8, 28, 28, 2), 3, 3, 2, 2, 3, 1, 1, 1), TP_EINVAL,
                 E("tp_maxpool2d", "smaller than the window (3, 3)"));
    expect_error(g, tp_avgpool2d(g, V(8, 28, 28, 2), 0, 3, 1, 1, 0, 0, 0, 0), TP_EINVAL,
                 E("tp_avgpool2d", "window (0, 3)"));
    expect_error(g, tp_avgpool2d(g, V(8, 784, 2), 2, 2, 2, 2, 0, 0, 0, 0), TP_EINVAL,
                 E("tp_avgpool2d", "(8, 784, 2)"));
    expect_error(g, tp_global_avgpool(g, V(8, 16)), TP_EINVAL,
                 E("tp_global_avgpool", "(8, 16)", "3 or 4 dims"));
    expect_error(g, tp_batchnorm(g, V(8, 28, 28, 2), V(3), NULL, rm, rv, 0.9f, 1e-5f, 1), TP_EINVAL,
                 E("tp_batchnorm", "gamma (3)", "2 channels", "(8, 28, 28, 2)"));
    expect_error(g, tp_batchnorm(g, V(8, 2), NULL, V(4), rm, rv, 0.9f, 1e-5f, 1), TP_EINVAL,
                 E("beta (4)"));
    expect_error(g, tp_batchnorm(g, V(8, 2), NULL, NULL, NULL, NULL, 0.9f, 1e-5f, 0), TP_EINVAL,
                 E("tp_batchnorm", "running_mean"));
    expect_error(g, tp_batchnorm(g, V(8, 2), NULL, NULL, rm, NULL, 0.9f, 1e-5f, 1), TP_EINVAL,
                 E("running_var"));
    expect_error(g, tp_batchnorm(g, V(8, 2), NULL, NULL, rm, rv, 1.5f, 1e-5f, 1), TP_EINVAL,
                 E("momentum 1.5"));
    expect_error(g, tp_batchnorm(g, V(8, 2), NULL, NULL, rm, rv, 0.9f, 0.0f, 1), TP_EINVAL,
                 E("eps 0"));
    /* A failed op's NULL passes through the rest of the family, the first message kept. */
    tp_tensor *y = tp_conv2d(g, V(8, 28, 28, 1), V(3, 3, 2, 16), NULL, 1, 1, 1, 1, 1, 1);
    y = tp_batchnorm(g, y, NULL, NULL, rm, rv, 0.9f, 1e-5f, 1);
    y = tp_maxpool2d(g, y, 2, 2, 2, 2, 0, 0, 0, 0);
    y = tp_avgpool2d(g, y, 2, 2, 2, 2, 0, 0, 0, 0);
    y = tp_global_avgpool(g, y);
    expect_error(g, y, TP_EINVAL, E("channels 1 != 2"));
#undef V
#undef E
    tp_graph_free(g);
}

/* ---------------------------------------------------------------------------------------- */
/* Determinism and arena reuse: a small ResNet-like step */

enum { RB = 4, RH = 12, RW = 11, RC = 3, RF = 8, RK = 5 };
enum {
    R_W1 = 0,
    R_G1 = R_W1 + 3 * 3 * RC * RF,
    R_B1 = R_G1 + RF,
    R_W2 = R_B1 + RF,
    R_G2 = R_W2 + 3 * 3 * RF * RF,
    R_B2 = R_G2 + RF,
    R_WS = R_B2 + RF,
    R_WO = R_WS + RF * RF,
    R_BO = R_WO + RF * RK,
    R_P = R_BO + RK
};

/* conv 3x3 -> bn -> relu -> conv 3x3 s2 -> bn -> relu -> conv 1x1 -> maxpool -> global avgpool ->
 * linear -> xent; returns the loss, gradients into grads, running stats into stats (4 RF). */
static float resnet_step(tp_graph *g, const float *x, float *params, float *grads, float *stats)
{
    char err[256];
    int32_t labels[RB] = {0, 3, 1, 4};
    uint32_t f = TP_TENSOR_GRAD_OVERWRITE;
    tp_graph_reset(g);
    float *p = params, *d = grads;
    tp_tensor *tx = tp_tensor_view(g, (float *)x, NULL, 4, (uint32_t[]){RB, RH, RW, RC}, 0);
    tp_tensor *w1 = tp_tensor_view(g, p + R_W1, d + R_W1, 4, (uint32_t[]){3, 3, RC, RF}, f);
    tp_tensor *g1 = tp_tensor_view(g, p + R_G1, d + R_G1, 1, (uint32_t[]){RF}, f);
    tp_tensor *b1 = tp_tensor_view(g, p + R_B1, d + R_B1, 1, (uint32_t[]){RF}, f);
    tp_tensor *w2 = tp_tensor_view(g, p + R_W2, d + R_W2, 4, (uint32_t[]){3, 3, RF, RF}, f);
    tp_tensor *g2 = tp_tensor_view(g, p + R_G2, d + R_G2, 1, (uint32_t[]){RF}, f);
    tp_tensor *b2 = tp_tensor_view(g, p + R_B2, d + R_B2, 1, (uint32_t[]){RF}, f);
    tp_tensor *ws = tp_tensor_view(g, p + R_WS, d + R_WS, 4, (uint32_t[]){1, 1, RF, RF}, f);
    tp_tensor *wo = tp_tensor_view(g, p + R_WO, d + R_WO, 2, (uint32_t[]){RF, RK}, f);
    tp_tensor *bo = tp_tensor_view(g, p + R_BO, d + R_BO, 1, (uint32_t[]){RK}, f);
    tp_tensor *h = tp_conv2d_same(g, tx, w1, NULL, 1, 1);
    h = tp_relu(g, tp_batchnorm(g, h, g1, b1, stats, stats + RF, 0.9f, 1e-5f, 1));
    h = tp_conv2d_same(g, h, w2, NULL, 2, 2);
    h = tp_relu(g, tp_batchnorm(g, h, g2, b2, stats + 2 * RF, stats + 3 * RF, 0.9f, 1e-5f, 1));
    h = tp_conv2d(g, h, ws, NULL, 1, 1, 0, 0, 0, 0);
    h = tp_maxpool2d(g, h, 3, 3, 2, 2, 1, 1, 1, 1);
    h = tp_avgpool2d(g, h, 2, 2, 1, 1, 0, 1, 0, 1);
    h = tp_linear(g, tp_global_avgpool(g, h), wo, bo, TP_ACT_NONE);
    tp_tensor *loss = tp_mean(g, tp_softmax_xent(g, h, labels, 0.1f), NULL);
    if (tp_graph_backward(g, loss, err, sizeof err))
        fail_msg("resnet step: %s", err);
    return loss->data[0];
}

static void resnet_init(float *x, float *params, float *stats)
{
    tp_rng r;
    tp_rng_seed(&r, 77);
    for (int i = 0; i < RB * RH * RW * RC; i++)
        x[i] = (float)tp_rng_normal(&r);
    tp_fill_normal(params, R_P, 0.3f, &r);
    for (int i = 0; i < RF; i++) {
        params[R_G1 + i] = params[R_G2 + i] = 1.0f;
        params[R_B1 + i] = params[R_B2 + i] = 0.0f;
        stats[i] = stats[2 * RF + i] = 0.0f;
        stats[RF + i] = stats[3 * RF + i] = 1.0f;
    }
}

static void test_determinism_and_arena_reuse(void **state)
{
    static float x[RB * RH * RW * RC], p[R_P], g1[R_P], g2[R_P], s1[4 * RF], s2[4 * RF];
    resnet_init(x, p, s1);
    memcpy(s2, s1, sizeof s1);
    tp_graph *ga, *gb;
    char err[256];
    assert_int_equal(tp_graph_init(&ga, 4096, err, sizeof err), 0);
    assert_int_equal(tp_graph_init(&gb, 0, err, sizeof err), 0);
    /* Same inputs, two graphs: the same bits. */
    float la = resnet_step(ga, x, p, g1, s1), lb = resnet_step(gb, x, p, g2, s2);
    assert_memory_equal(&la, &lb, sizeof la);
    assert_memory_equal(g1, g2, sizeof g1);
    assert_memory_equal(s1, s2, sizeof s1);
    /* Repeating the step on the same graph: nothing new from the system after the first, and
     * again the same bits (the running stats moved, the gradients do not depend on them). */
    uint64_t allocs[3];
    for (int step = 0; step < 3; step++) {
        float l = resnet_step(ga, x, p, g2, s1);
        allocs[step] = tp_arena_sys_allocs(tp_graph_arena(ga));
        assert_memory_equal(&l, &la, sizeof l);
        assert_memory_equal(g1, g2, sizeof g1);
    }
    print_message(
        "resnet-like step: loss %.6f, arena %zu bytes, system allocations %llu %llu %llu\n",
        (double)la, tp_arena_capacity(tp_graph_arena(ga)), (unsigned long long)allocs[0],
        (unsigned long long)allocs[1], (unsigned long long)allocs[2]);
    assert_int_equal(allocs[1], allocs[2]);
    assert_int_equal(allocs[0], allocs[1]); /* merged at the first reset, before step 0 here */
    tp_graph_free(ga);
    tp_graph_free(gb);
}

/* ---------------------------------------------------------------------------------------- */
/* Timing (printed, not asserted; CPU time) */

/* Process CPU time: steadier than wall time on a shared machine. With one OpenBLAS thread (as
 * ctest runs) it is the step's time; with more it is their sum. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best of reps: forward and backward of conv (B, H, W, C) * (KH, KW, C, OC) SAME stride s, x
 * with a gradient (a middle layer), loss a plain sum. */
static void time_conv(uint32_t B, uint32_t H, uint32_t W, uint32_t C, uint32_t K, uint32_t OC,
                      uint32_t s, int reps)
{
    size_t nx = (size_t)B * H * W * C, nw = (size_t)K * K * C * OC;
    float *x = malloc(nx * sizeof *x), *dx = malloc(nx * sizeof *dx);
    float *w = malloc(nw * sizeof *w), *dw = malloc(nw * sizeof *dw), bias[512], db[512];
    assert_true(x && dx && w && dw && OC <= 512);
    tp_rng r;
    tp_rng_seed(&r, 3);
    tp_fill_normal(x, nx, 1.0f, &r);
    tp_fill_normal(w, nw, 0.1f, &r);
    memset(bias, 0, sizeof bias);
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    double best_f = 1e30, best_b = 1e30, arena_mib = 0.0;
    uint32_t OH = 0, OW = 0;
    for (int rep = 0; rep < reps; rep++) {
        tp_graph_reset(g);
        uint32_t f = TP_TENSOR_GRAD_OVERWRITE;
        tp_tensor *tx = tp_tensor_view(g, x, dx, 4, (uint32_t[]){B, H, W, C}, f);
        tp_tensor *tw = tp_tensor_view(g, w, dw, 4, (uint32_t[]){K, K, C, OC}, f);
        tp_tensor *tb = tp_tensor_view(g, bias, db, 1, (uint32_t[]){OC}, f);
        double t0 = now();
        tp_tensor *y = tp_conv2d_same(g, tx, tw, tb, s, s);
        double t1 = now();
        assert_non_null(y);
        OH = y->shape[1];
        OW = y->shape[2];
        tp_tensor *loss = tp_sum(g, y, NULL, 1.0f);
        double t2 = now();
        assert_int_equal(tp_graph_backward(g, loss, err, sizeof err), 0);
        double t3 = now();
        best_f = fmin(best_f, t1 - t0);
        best_b = fmin(best_b, t3 - t2);
        arena_mib = (double)tp_arena_used(tp_graph_arena(g)) / (1 << 20);
    }
    double M = (double)B * OH * OW, Kd = (double)K * K * C;
    double flop = 2.0 * M * Kd * OC; /* one sgemm's worth; backward is two */
    double col_mib = M * Kd * 4 / (1 << 20);
    print_message("conv %ux%u s%u (%u,%u,%u,%u)->(%u,%u,%u,%u): forward %.1f ms (%.1f GFLOP/s), "
                  "backward %.1f ms (%.1f GFLOP/s), fwd+bwd %.1f ms (%.1f GFLOP/s); arena %.1f MiB "
                  "(the im2col matrix, not kept, would be %.1f MiB)\n",
                  K, K, s, B, H, W, C, B, OH, OW, OC, 1e3 * best_f, flop / best_f * 1e-9,
                  1e3 * best_b, 2 * flop / best_b * 1e-9, 1e3 * (best_f + best_b),
                  3 * flop / (best_f + best_b) * 1e-9, arena_mib, col_mib);
    /* The same sgemm shapes alone, for the im2col / col2im overhead. */
    float *a = malloc((size_t)M * (size_t)Kd * sizeof *a), *c = malloc((size_t)M * OC * sizeof *c);
    assert_true(a && c);
    tp_fill_normal(a, (uint64_t)(M * Kd), 1.0f, &r);
    double best = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)OC, (int)Kd, 1.0f, a,
                    (int)Kd, w, (int)OC, 0.0f, c, (int)OC);
        best = fmin(best, now() - t0);
    }
    print_message("  sgemm alone (%d x %d x %d): %.1f ms, %.1f GFLOP/s\n", (int)M, (int)Kd, (int)OC,
                  1e3 * best, flop / best * 1e-9);
    free(a);
    free(c);
    tp_graph_free(g);
    free(x);
    free(dx);
    free(w);
    free(dw);
}

static void test_timing(void **state)
{
    /* Reference: a square single sgemm. */
    enum { N = 1024 };
    float *a = malloc(sizeof(float) * N * N), *b = malloc(sizeof(float) * N * N),
          *c = malloc(sizeof(float) * N * N);
    assert_true(a && b && c);
    tp_rng r;
    tp_rng_seed(&r, 1);
    tp_fill_normal(a, N * N, 1.0f, &r);
    tp_fill_normal(b, N * N, 1.0f, &r);
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a, N, b, N, 0.0f, c,
                    N);
        best = fmin(best, now() - t0);
    }
    char msg[256];
    tp_blas_check(msg, sizeof msg);
    print_message("sgemm %dx%dx%d: %.1f ms, %.1f GFLOP/s (%s)\n", N, N, N, 1e3 * best,
                  2.0 * N * N * N / best * 1e-9, msg);
    free(a);
    free(b);
    free(c);
    time_conv(128, 28, 28, 16, 3, 32, 1, 3);
    time_conv(128, 28, 28, 32, 3, 32, 2, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_conv2d),
        cmocka_unit_test(test_grad_maxpool2d),
        cmocka_unit_test(test_grad_avgpool2d),
        cmocka_unit_test(test_grad_global_avgpool),
        cmocka_unit_test(test_grad_batchnorm_train),
        cmocka_unit_test(test_grad_batchnorm_eval),
        cmocka_unit_test(test_grad_chain),
        cmocka_unit_test(test_conv2d_forward_reference),
        cmocka_unit_test(test_conv2d_backward_reference),
        cmocka_unit_test(test_conv2d_direct_vs_im2col),
        cmocka_unit_test(test_same_padding),
        cmocka_unit_test(test_pool_values),
        cmocka_unit_test(test_batchnorm_running_stats),
        cmocka_unit_test(test_grad_overwrite_accumulate),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_determinism_and_arena_reuse),
        cmocka_unit_test(test_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
