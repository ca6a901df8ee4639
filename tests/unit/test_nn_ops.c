/*
 * test_nn_ops.c - core/nn: every op's backward against central finite differences of its
 * forward, the arena (alignment, reuse after reset, merging of grown blocks), gradient
 * overwrite / accumulate semantics, constants getting no gradient, error reporting, and
 * bit-identical determinism of a small MLP built from the ops.
 *
 * Finite differences: the scalar is L = sum_i r_i y_i with fixed random r, summed in double
 * from the op's float outputs; each input element is moved by +-eps (the step actually taken
 * in float is used) and the slope compared with the analytic gradient by
 * |a - n| / max(|a|, |n|, FLOOR). Smooth ops are tested away from kinks.
 *
 * Not here: the workloads (test_fmnist_mlp.c).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/nn/nn.h"

#define MAX_IN  3
#define MAX_EL  4096
#define FLOOR   1e-2 /* relative difference floor: gradients below this are compared absolutely */
#define TOL     2e-3 /* stated tolerance for smooth ops in float32 */
#define TOL_LIN 1e-3 /* ops linear in the checked input (no truncation error) */

/* One op under test: inputs, and how to build the output from them. */
typedef struct fd_case {
    const char *name;
    int n_in;
    uint32_t ndim[MAX_IN];
    uint32_t shape[MAX_IN][TP_MAX_DIMS];
    int needs_grad[MAX_IN];
    float lo[MAX_IN], hi[MAX_IN]; /* inputs uniform in [lo, hi) */
    float min_abs[MAX_IN];        /* keep |x| >= this (away from kinks) */
    double eps;
    double tol;
    tp_tensor *(*build)(tp_graph *g, tp_tensor **in, const struct fd_case *c);
    int32_t labels[64];
    float weights[64];
    float targets[256];
    float smoothing;
    float rate;
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
    tp_tensor *in[MAX_IN];
    for (int k = 0; k < c->n_in; k++)
        in[k] = tp_tensor_view(g, data[k], with_grad && c->needs_grad[k] ? grad[k] : NULL,
                               c->ndim[k], c->shape[k], 0);
    return c->build(g, in, c);
}

static double weighted(const tp_tensor *y)
{
    double s = 0.0;
    for (uint64_t i = 0; i < y->numel; i++)
        s += (double)rweights[i] * y->data[i];
    return s;
}

static void check_case(const fd_case *c)
{
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    tp_rng r;
    tp_rng_seed(&r, 1234);
    for (int k = 0; k < c->n_in; k++) {
        uint64_t n = numel_of(c, k);
        assert_true(n <= MAX_EL);
        for (uint64_t i = 0; i < n; i++) {
            float v;
            do
                v = c->lo[k] + (c->hi[k] - c->lo[k]) * tp_rng_uniformf(&r);
            while (fabsf(v) < c->min_abs[k]);
            data[k][i] = v;
            grad[k][i] = 0.0f;
        }
    }
    for (int i = 0; i < MAX_EL; i++)
        rweights[i] = (float)(2.0 * tp_rng_uniform(&r) - 1.0);

    tp_tensor *y = run(g, c, 1);
    assert_non_null(y);
    tp_tensor *L = tp_sum(g, y, rweights, 1.0f);
    int rc = tp_graph_backward(g, L, err, sizeof err);
    if (rc)
        fail_msg("%s: backward failed: %s", c->name, err);

    double max_rel = 0.0;
    for (int k = 0; k < c->n_in; k++) {
        if (!c->needs_grad[k])
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
    print_message("%-28s max relative difference %.3g (tolerance %.1g)\n", c->name, max_rel,
                  c->tol);
    assert_true(max_rel < c->tol);
    tp_graph_free(g);
}

/* ---------------------------------------------------------------------------------------- */
/* The ops */

static tp_tensor *b_matmul(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_matmul(g, in[0], in[1]);
}

static tp_tensor *b_bias(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_bias_add(g, in[0], in[1]);
}

static tp_tensor *b_relu(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_relu(g, in[0]);
}

static tp_tensor *b_tanh(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_tanh(g, in[0]);
}

static tp_tensor *b_gelu(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_gelu(g, in[0]);
}

static tp_tensor *b_silu(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_activation(g, in[0], TP_ACT_SILU);
}

static tp_tensor *b_linear_relu(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_linear(g, in[0], in[1], in[2], TP_ACT_RELU);
}

static tp_tensor *b_linear_tanh(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_linear(g, in[0], in[1], in[2], TP_ACT_TANH);
}

static tp_tensor *b_linear_gelu(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_linear(g, in[0], in[1], in[2], TP_ACT_GELU);
}

static tp_tensor *b_linear_silu(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_linear(g, in[0], in[1], in[2], TP_ACT_SILU);
}

static tp_tensor *b_linear_none(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_linear(g, in[0], in[1], NULL, TP_ACT_NONE);
}

static tp_tensor *b_dropout(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_dropout(g, in[0], c->rate, 99);
}

static tp_tensor *b_xent(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_softmax_xent(g, in[0], c->labels, c->smoothing);
}

static tp_tensor *b_xent_mean_weighted(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_mean(g, tp_softmax_xent(g, in[0], c->labels, c->smoothing), c->weights);
}

static tp_tensor *b_mse_labels(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_mse(g, in[0], c->labels, NULL);
}

static tp_tensor *b_mse_targets(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_mean(g, tp_mse(g, in[0], NULL, c->targets), c->weights);
}

static tp_tensor *b_sum(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_sum(g, in[0], c->weights, 0.5f);
}

/* A two-layer chain with a shared input used twice (gradient accumulation across uses). */
static tp_tensor *b_chain(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    tp_tensor *h = tp_linear(g, in[0], in[1], in[2], TP_ACT_TANH);
    tp_tensor *h2 = tp_tanh(g, tp_bias_add(g, tp_matmul(g, h, in[1]), in[2]));
    return tp_softmax_xent(g, tp_bias_add(g, h2, in[2]), c->labels, c->smoothing);
}

static fd_case base(const char *name, double eps, double tol)
{
    fd_case c;
    memset(&c, 0, sizeof c);
    c.name = name;
    c.eps = eps;
    c.tol = tol;
    for (int k = 0; k < MAX_IN; k++) {
        c.lo[k] = -1.0f;
        c.hi[k] = 1.0f;
        c.needs_grad[k] = 1;
        for (int d = 0; d < TP_MAX_DIMS; d++)
            c.shape[k][d] = 1;
    }
    for (int i = 0; i < 64; i++) {
        c.labels[i] = (int32_t)((i * 7 + 3) % 5);
        c.weights[i] = 0.25f + 0.1f * (float)(i % 7);
    }
    for (int i = 0; i < 256; i++)
        c.targets[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    return c;
}

static void set_in(fd_case *c, int k, uint32_t ndim, uint32_t d0, uint32_t d1, uint32_t d2)
{
    c->ndim[k] = ndim;
    c->shape[k][0] = d0;
    c->shape[k][1] = d1;
    c->shape[k][2] = d2;
    if (k + 1 > c->n_in)
        c->n_in = k + 1;
}

static void test_grad_matmul(void **state)
{
    fd_case c = base("matmul (B,C)@(C,OC)", 0.1, TOL_LIN);
    c.build = b_matmul;
    set_in(&c, 0, 2, 6, 5, 1);
    set_in(&c, 1, 2, 5, 4, 1);
    check_case(&c);
    /* 3-d input: (2, 3, 5) @ (5, 4) */
    c.name = "matmul (2,3,C)@(C,OC)";
    set_in(&c, 0, 3, 2, 3, 5);
    check_case(&c);
}

static void test_grad_bias(void **state)
{
    fd_case c = base("bias_add", 0.1, TOL_LIN);
    c.build = b_bias;
    set_in(&c, 0, 2, 6, 5, 1);
    set_in(&c, 1, 1, 5, 1, 1);
    check_case(&c);
}

static void test_grad_relu(void **state)
{
    fd_case c = base("relu (|x| >= 0.05)", 1e-2, TOL_LIN);
    c.build = b_relu;
    set_in(&c, 0, 2, 7, 9, 1);
    c.min_abs[0] = 0.05f;
    check_case(&c);
}

static void test_grad_tanh(void **state)
{
    fd_case c = base("tanh", 1e-2, TOL);
    c.build = b_tanh;
    set_in(&c, 0, 2, 7, 9, 1);
    c.lo[0] = -2.5f;
    c.hi[0] = 2.5f;
    check_case(&c);
}

static void test_grad_gelu(void **state)
{
    fd_case c = base("gelu (tanh approximation)", 1e-2, TOL);
    c.build = b_gelu;
    set_in(&c, 0, 2, 7, 9, 1);
    c.lo[0] = -3.0f;
    c.hi[0] = 3.0f;
    check_case(&c);
}

static void test_grad_silu(void **state)
{
    fd_case c = base("silu", 1e-2, TOL);
    c.build = b_silu;
    set_in(&c, 0, 2, 7, 9, 1);
    c.lo[0] = -6.0f;
    c.hi[0] = 6.0f;
    check_case(&c);
    /* The tails, where a naive x / (1 + exp(-x)) overflows or loses the gradient. */
    c.name = "silu tails (|x| in [20, 90))";
    c.lo[0] = -90.0f;
    c.hi[0] = 90.0f;
    c.min_abs[0] = 20.0f;
    check_case(&c);
}

static void test_grad_linear(void **state)
{
    fd_case c = base("linear+bias+relu", 1e-2, TOL);
    c.build = b_linear_relu;
    set_in(&c, 0, 2, 6, 5, 1);
    set_in(&c, 1, 2, 5, 4, 1);
    set_in(&c, 2, 1, 4, 1, 1);
    /* Keep pre-activations away from the kink: a large positive/negative bias mix. */
    c.lo[2] = 0.5f;
    c.hi[2] = 0.9f;
    c.lo[0] = 0.0f;
    c.hi[0] = 0.3f;
    check_case(&c);

    c = base("linear+bias+tanh", 1e-2, TOL);
    c.build = b_linear_tanh;
    set_in(&c, 0, 2, 6, 5, 1);
    set_in(&c, 1, 2, 5, 4, 1);
    set_in(&c, 2, 1, 4, 1, 1);
    check_case(&c);

    c.name = "linear+bias+gelu";
    c.build = b_linear_gelu;
    check_case(&c);

    c.name = "linear+bias+silu";
    c.build = b_linear_silu;
    check_case(&c);

    c = base("linear, no bias, no act", 0.1, TOL_LIN);
    c.build = b_linear_none;
    set_in(&c, 0, 2, 6, 5, 1);
    set_in(&c, 1, 2, 5, 4, 1);
    check_case(&c);
}

static void test_grad_dropout(void **state)
{
    fd_case c = base("dropout rate 0.3 (fixed seed)", 0.1, TOL_LIN);
    c.build = b_dropout;
    c.rate = 0.3f;
    set_in(&c, 0, 2, 8, 9, 1);
    check_case(&c);
}

static void test_grad_xent(void **state)
{
    fd_case c = base("softmax_xent", 1e-2, TOL);
    c.build = b_xent;
    set_in(&c, 0, 2, 6, 5, 1);
    c.lo[0] = -3.0f;
    c.hi[0] = 3.0f;
    check_case(&c);

    c.name = "softmax_xent smoothing 0.1";
    c.smoothing = 0.1f;
    check_case(&c);

    c.name = "xent s=0.2, weighted mean";
    c.smoothing = 0.2f;
    c.build = b_xent_mean_weighted;
    check_case(&c);
}

static void test_grad_mse(void **state)
{
    fd_case c = base("mse one-hot", 1e-2, TOL);
    c.build = b_mse_labels;
    set_in(&c, 0, 2, 6, 5, 1);
    check_case(&c);

    c.name = "mse targets, weighted mean";
    c.build = b_mse_targets;
    check_case(&c);
}

static void test_grad_sum(void **state)
{
    fd_case c = base("weighted sum", 0.1, TOL_LIN);
    c.build = b_sum;
    set_in(&c, 0, 2, 6, 5, 1);
    check_case(&c);
}

static void test_grad_chain(void **state)
{
    fd_case c = base("chain, shared weight/bias", 1e-2, 5e-3);
    c.build = b_chain;
    c.smoothing = 0.1f;
    set_in(&c, 0, 2, 4, 5, 1);
    set_in(&c, 1, 2, 5, 5, 1);
    set_in(&c, 2, 1, 5, 1, 1);
    check_case(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* Forward values of the activations against double references */

static double ulp_diff(float got, double ref)
{
    float r = (float)ref;
    float step = nextafterf(fabsf(r), INFINITY) - fabsf(r);
    return fabs((double)got - ref) / step;
}

static void test_activation_values(void **state)
{
    /* tanh is our own vectorisable formula: within 3 ulp of tanh in double on [-12, 12]. */
    enum { N = 200001 };
    static float x[N];
    for (int i = 0; i < N; i++)
        x[i] = -12.0f + 24.0f * (float)i / (float)(N - 1);
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    tp_tensor *t = tp_tensor_view(g, x, NULL, 1, (uint32_t[]){N}, 0);
    tp_tensor *th = tp_tanh(g, t), *ge = tp_gelu(g, t), *re = tp_relu(g, t), *si = tp_silu(g, t);
    double max_ulp = 0.0, max_gelu = 0.0, max_silu = 0.0;
    for (int i = 0; i < N; i++) {
        double v = x[i];
        max_ulp = fmax(max_ulp, ulp_diff(th->data[i], tanh(v)));
        double gref = 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        max_gelu = fmax(max_gelu, fabs(ge->data[i] - gref) / fmax(fabs(gref), 1e-3));
        double sref = v / (1.0 + exp(-v));
        max_silu = fmax(max_silu, fabs(si->data[i] - sref) / fmax(fabs(sref), 1e-3));
        assert_true(re->data[i] == (x[i] > 0.0f ? x[i] : 0.0f));
    }
    print_message("tanh: max %.2f ulp from tanh in double; gelu, silu: max relative difference "
                  "%.3g, %.3g\n",
                  max_ulp, max_gelu, max_silu);
    assert_true(max_ulp <= 3.0);
    assert_true(max_gelu < 1e-5);
    assert_true(max_silu < 1e-5);
    /* SiLU far out: finite, the right sign, x on the right; NaN propagates. */
    float big[5] = {-1e4f, -100.0f, 100.0f, 1e4f, NAN};
    tp_tensor *sb = tp_silu(g, tp_tensor_view(g, big, NULL, 1, (uint32_t[]){5}, 0));
    assert_true(sb->data[0] <= 0.0f && sb->data[0] > -1e-20f);
    assert_true(sb->data[1] <= 0.0f && sb->data[1] > -1e-20f);
    assert_true(sb->data[2] == 100.0f);
    assert_true(sb->data[3] == 1e4f);
    assert_true(isnan(sb->data[4]));
    /* Special values: +-0, tiny, +-inf, NaN (NaN must propagate, not become +-1). */
    float sp[6] = {0.0f, -0.0f, 1e-30f, INFINITY, -INFINITY, NAN};
    tp_tensor *ts = tp_tanh(g, tp_tensor_view(g, sp, NULL, 1, (uint32_t[]){6}, 0));
    assert_true(ts->data[0] == 0.0f && !signbit(ts->data[0]));
    assert_true(ts->data[1] == 0.0f && signbit(ts->data[1]));
    assert_true(ts->data[2] == 1e-30f);
    assert_true(ts->data[3] == 1.0f);
    assert_true(ts->data[4] == -1.0f);
    assert_true(isnan(ts->data[5]));
    tp_graph_free(g);
}

/* ---------------------------------------------------------------------------------------- */
/* Arena */

static void test_arena_align_and_reuse(void **state)
{
    tp_arena *a = tp_arena_new(4096);
    assert_non_null(a);
    void *first = tp_arena_alloc(a, 3);
    assert_non_null(first);
    for (int i = 1; i < 50; i++) {
        void *p = tp_arena_alloc(a, (size_t)i * 7);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % TP_ARENA_ALIGN, 0);
    }
    assert_int_equal((uintptr_t)first % TP_ARENA_ALIGN, 0);
    uint64_t allocs = tp_arena_sys_allocs(a);
    tp_arena_reset(a);
    assert_int_equal(tp_arena_used(a), 0);
    /* The same sequence again: same memory, nothing from the system. */
    void *again = tp_arena_alloc(a, 3);
    for (int i = 1; i < 50; i++)
        assert_non_null(tp_arena_alloc(a, (size_t)i * 7));
    uint64_t after = tp_arena_sys_allocs(a);
    if (after == allocs)
        assert_ptr_equal(again, first); /* single block: the very same address */
    tp_arena_free(a);
    tp_arena_free(NULL);
}

static void test_arena_grows_then_settles(void **state)
{
    tp_arena *a = tp_arena_new(1024);
    assert_non_null(a);
    /* A "step" that needs far more than the first block. */
    for (int round = 0; round < 4; round++) {
        uint64_t before = tp_arena_sys_allocs(a);
        for (int i = 0; i < 100; i++) {
            unsigned char *p = tp_arena_alloc(a, 1000);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % TP_ARENA_ALIGN, 0);
            memset(p, i, 1000); /* writable, and ASan sees it is in bounds */
        }
        uint64_t grew = tp_arena_sys_allocs(a) - before;
        if (round == 0)
            assert_true(grew > 0);
        if (round >= 2) /* the merge happened at the first reset */
            assert_int_equal(grew, 0);
        assert_true(tp_arena_used(a) >= 100 * 1000);
        assert_true(tp_arena_capacity(a) >= tp_arena_used(a));
        tp_arena_reset(a);
        if (round == 0)
            assert_int_equal(tp_arena_sys_allocs(a) - before, grew + 1); /* the merged block */
    }
    tp_arena_free(a);
}

static void test_graph_step_allocates_nothing(void **state)
{
    /* Repeating the same forward/backward allocates nothing after the first step. */
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 4096, err, sizeof err), 0);
    static float x[32 * 20], w[20 * 30], b[30], dw[20 * 30], db[30];
    for (int i = 0; i < 32 * 20; i++)
        x[i] = (float)(i % 13) / 13.0f;
    for (int i = 0; i < 20 * 30; i++)
        w[i] = (float)(i % 7) / 7.0f - 0.5f;
    int32_t labels[32];
    for (int i = 0; i < 32; i++)
        labels[i] = i % 30;
    uint64_t allocs[3];
    for (int step = 0; step < 3; step++) {
        tp_graph_reset(g);
        tp_tensor *tx = tp_tensor_view(g, x, NULL, 2, (uint32_t[]){32, 20}, 0);
        tp_tensor *tw = tp_tensor_view(g, w, dw, 2, (uint32_t[]){20, 30}, TP_TENSOR_GRAD_OVERWRITE);
        tp_tensor *tb = tp_tensor_view(g, b, db, 1, (uint32_t[]){30}, TP_TENSOR_GRAD_OVERWRITE);
        tp_tensor *h = tp_dropout(g, tp_linear(g, tx, tw, tb, TP_ACT_GELU), 0.5f, 7);
        tp_tensor *loss = tp_mean(g, tp_softmax_xent(g, h, labels, 0.1f), NULL);
        assert_int_equal(tp_graph_backward(g, loss, err, sizeof err), 0);
        assert_null(tx->grad);
        allocs[step] = tp_arena_sys_allocs(tp_graph_arena(g));
    }
    assert_int_equal(allocs[1], allocs[2]);
    tp_graph_free(g);
    tp_graph_free(NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Gradient semantics */

static void test_overwrite_and_accumulate(void **state)
{
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    float x[4 * 3], w[3 * 2], unused[5], dw[3 * 2], dunused[5], dw_acc[3 * 2];
    for (int i = 0; i < 12; i++)
        x[i] = (float)i / 12.0f;
    for (int i = 0; i < 6; i++)
        w[i] = (float)(i - 3) / 4.0f;
    for (int i = 0; i < 5; i++)
        unused[i] = 1.0f;
    /* Garbage in the overwrite buffers must not leak into the result. */
    for (int i = 0; i < 6; i++)
        dw[i] = NAN;
    for (int i = 0; i < 5; i++)
        dunused[i] = NAN;

    tp_tensor *tx = tp_tensor_view(g, x, NULL, 2, (uint32_t[]){4, 3}, 0);
    tp_tensor *tw = tp_tensor_view(g, w, dw, 2, (uint32_t[]){3, 2}, TP_TENSOR_GRAD_OVERWRITE);
    assert_non_null(
        tp_tensor_view(g, unused, dunused, 1, (uint32_t[]){5}, TP_TENSOR_GRAD_OVERWRITE));
    tp_tensor *loss = tp_sum(g, tp_matmul(g, tx, tw), NULL, 1.0f);
    assert_int_equal(tp_graph_backward(g, loss, err, sizeof err), 0);
    /* d/dW sum(X W) = column sums of X, for each output column. */
    for (int c = 0; c < 3; c++) {
        float s = x[c] + x[3 + c] + x[6 + c] + x[9 + c];
        assert_float_equal(dw[c * 2], s, 1e-6);
        assert_float_equal(dw[c * 2 + 1], s, 1e-6);
    }
    for (int i = 0; i < 5; i++)
        assert_true(dunused[i] == 0.0f);
    /* Once per reset. */
    assert_int_equal(tp_graph_backward(g, loss, err, sizeof err), TP_ESTATE);
    assert_non_null(strstr(err, "twice"));

    /* Accumulate (flag 0): a second backward adds to what is there. */
    memcpy(dw_acc, dw, sizeof dw);
    tp_graph_reset(g);
    tx = tp_tensor_view(g, x, NULL, 2, (uint32_t[]){4, 3}, 0);
    tw = tp_tensor_view(g, w, dw_acc, 2, (uint32_t[]){3, 2}, 0);
    loss = tp_sum(g, tp_matmul(g, tx, tw), NULL, 1.0f);
    assert_int_equal(tp_graph_backward(g, loss, err, sizeof err), 0);
    for (int i = 0; i < 6; i++)
        assert_float_equal(dw_acc[i], 2.0f * dw[i], 1e-6);
    tp_graph_free(g);
}

/* ReLU's backward writes the gradient of an input that holds nothing yet (no zeroing pass) and
 * adds to it otherwise. x feeds two ReLUs: the later one's backward runs first and writes (or,
 * when x's view accumulates, adds onto what the caller left), the earlier one adds. Expected,
 * bit for bit: dx = (init + m r2) + m r1, init = +0 when overwriting (the NaN garbage in the
 * buffer must not leak), m = x > 0: NaN, +-0, -inf and negative denormals give no gradient, +inf
 * and positive denormals do. GLU's ReLU (the same kernel,
 * accumulating) sees the pre-activation, so NaN there too. */
static void test_relu_overwrite_and_accumulate(void **state)
{
    enum { N = 67 }; /* not a multiple of any vector width */
    static const float special[] = {0.0f,   -0.0f,   NAN,     -NAN,     INFINITY, -INFINITY,
                                    1e-45f, -1e-45f, 3.4e38f, -3.4e38f, 1.0f,     -1.0f};
    float x[N], r1[N], r2[N], init[N], dx[N];
    tp_rng r;
    tp_rng_seed(&r, 5);
    for (int i = 0; i < N; i++) {
        x[i] = i < 12 ? special[i] : (float)tp_rng_normal(&r);
        r1[i] = i % 9 == 3 ? -0.0f : (float)tp_rng_normal(&r);
        r2[i] = i % 7 == 3 ? -0.0f : (float)tp_rng_normal(&r);
        init[i] = (float)tp_rng_normal(&r);
    }
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    for (int overwrite = 0; overwrite < 2; overwrite++) {
        for (int i = 0; i < N; i++)
            dx[i] = overwrite ? NAN : init[i];
        tp_graph_reset(g);
        tp_tensor *tx =
            tp_tensor_view(g, x, dx, 1, (uint32_t[]){N}, overwrite ? TP_TENSOR_GRAD_OVERWRITE : 0);
        tp_tensor *l1 = tp_sum(g, tp_relu(g, tx), r1, 1.0f);
        tp_tensor *l2 = tp_sum(g, tp_relu(g, tx), r2, 1.0f);
        assert_int_equal(tp_graph_backward(g, tp_bias_add(g, l1, l2), err, sizeof err), 0);
        for (int i = 0; i < N; i++) {
            float m = x[i] > 0.0f ? 1.0f : 0.0f;
            float want = ((overwrite ? 0.0f : init[i]) + (m ? r2[i] : 0.0f)) + (m ? r1[i] : 0.0f);
            if (memcmp(&want, &dx[i], sizeof want))
                fail_msg("%s: x[%d] = %g: dx %g, want %g (signs %d %d)",
                         overwrite ? "overwrite" : "accumulate", i, (double)x[i], (double)dx[i],
                         (double)want, signbit(dx[i]) != 0, signbit(want) != 0);
        }
    }
    /* GLU's ReLU gets the pre-activation itself, NaN included: x2 (1, 2N) = [x | r2], loss
     * sum(r1 relu(x) r2); d x2[:N] = 0 + m (r1 r2), accumulated onto zeros. */
    float x2[2 * N], dx2[2 * N];
    for (int i = 0; i < N; i++) {
        x2[i] = x[i];
        x2[N + i] = r2[i];
    }
    memset(dx2, 0, sizeof dx2);
    tp_graph_reset(g);
    tp_tensor *t2 = tp_tensor_view(g, x2, dx2, 2, (uint32_t[]){1, 2 * N}, 0);
    tp_tensor *glu = tp_glu(g, t2, TP_ACT_RELU);
    assert_int_equal(tp_graph_backward(g, tp_sum(g, glu, r1, 1.0f), err, sizeof err), 0);
    for (int i = 0; i < N; i++) {
        float want = 0.0f + (x[i] > 0.0f ? r1[i] * r2[i] : 0.0f);
        if (memcmp(&want, &dx2[i], sizeof want))
            fail_msg("glu relu: x[%d] = %g: dx %g, want %g", i, (double)x[i], (double)dx2[i],
                     (double)want);
    }
    tp_graph_free(g);
}

static void test_errors(void **state)
{
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    float x[12], w[10];
    memset(x, 0, sizeof x);
    memset(w, 0, sizeof w);
    tp_tensor *tx = tp_tensor_view(g, x, NULL, 2, (uint32_t[]){4, 3}, 0);
    tp_tensor *tw = tp_tensor_view(g, w, NULL, 2, (uint32_t[]){5, 2}, 0);
    tp_tensor *y = tp_matmul(g, tx, tw);
    assert_null(y);
    /* Later ops pass the failure along; the first message is kept. */
    assert_null(tp_relu(g, y));
    int rc = tp_graph_status(g, err, sizeof err);
    assert_int_equal(rc, TP_EINVAL);
    print_message("error: %s\n", err);
    assert_non_null(strstr(err, "tp_matmul"));
    assert_non_null(strstr(err, "(4, 3)"));
    assert_non_null(strstr(err, "(5, 2)"));
    assert_int_equal(tp_graph_backward(g, NULL, err, sizeof err), TP_EINVAL);

    /* Reset clears the error; bad labels and rates are reported. */
    tp_graph_reset(g);
    assert_int_equal(tp_graph_status(g, err, sizeof err), 0);
    tx = tp_tensor_view(g, x, NULL, 2, (uint32_t[]){4, 3}, 0);
    int32_t labels[4] = {0, 1, 3, 2};
    assert_null(tp_softmax_xent(g, tx, labels, 0.0f));
    assert_int_equal(tp_graph_status(g, err, sizeof err), TP_ERANGE);
    assert_non_null(strstr(err, "label 3 of row 2"));

    tp_graph_reset(g);
    tx = tp_tensor_view(g, x, NULL, 2, (uint32_t[]){4, 3}, 0);
    assert_null(tp_dropout(g, tx, 1.0f, 1));
    assert_int_equal(tp_graph_status(g, err, sizeof err), TP_EINVAL);
    assert_ptr_equal(tp_dropout(g, NULL, 0.0f, 1), NULL);

    tp_graph_reset(g);
    tx = tp_tensor_view(g, x, NULL, 2, (uint32_t[]){4, 0}, 0);
    assert_null(tx);
    assert_int_equal(tp_graph_status(g, err, sizeof err), TP_EINVAL);
    tp_graph_free(g);
}

static void test_dropout_mask(void **state)
{
    /* Same seed, same mask; another seed, another mask; kept values scaled by 1/(1-rate). */
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    enum { N = 10000 };
    static float x[N], y1[N], y2[N];
    for (int i = 0; i < N; i++)
        x[i] = 1.0f;
    tp_tensor *t = tp_tensor_view(g, x, NULL, 1, (uint32_t[]){N}, 0);
    memcpy(y1, tp_dropout(g, t, 0.25f, 5)->data, sizeof y1);
    memcpy(y2, tp_dropout(g, t, 0.25f, 5)->data, sizeof y2);
    assert_memory_equal(y1, y2, sizeof y1);
    memcpy(y2, tp_dropout(g, t, 0.25f, 6)->data, sizeof y2);
    assert_memory_not_equal(y1, y2, sizeof y1);
    int kept = 0;
    for (int i = 0; i < N; i++) {
        assert_true(y1[i] == 0.0f || fabsf(y1[i] - 1.0f / 0.75f) < 1e-6f);
        kept += y1[i] != 0.0f;
    }
    assert_in_range(kept, 7300, 7700);
    assert_ptr_equal(tp_dropout(g, t, 0.0f, 5), t);
    tp_graph_free(g);
}

/* ---------------------------------------------------------------------------------------- */
/* Determinism */

static void mlp_step(float *params, float *grads, float *loss_out)
{
    enum { B = 64, C = 40, H = 33, K = 7 };
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    static float x[B * C];
    int32_t labels[B];
    float weights[B];
    tp_rng r;
    tp_rng_seed(&r, 42);
    for (int i = 0; i < B * C; i++)
        x[i] = (float)tp_rng_normal(&r);
    for (int i = 0; i < B; i++) {
        labels[i] = (int32_t)tp_rng_below(&r, K);
        weights[i] = tp_rng_uniformf(&r);
    }
    float *w1 = params, *b1 = w1 + C * H, *w2 = b1 + H, *b2 = w2 + H * K;
    float *dw1 = grads, *db1 = dw1 + C * H, *dw2 = db1 + H, *db2 = dw2 + H * K;
    for (int rep = 0; rep < 2; rep++) { /* the second step reuses the arena */
        tp_graph_reset(g);
        tp_tensor *tx = tp_tensor_view(g, x, NULL, 2, (uint32_t[]){B, C}, 0);
        uint32_t f = TP_TENSOR_GRAD_OVERWRITE;
        tp_tensor *tw1 = tp_tensor_view(g, w1, dw1, 2, (uint32_t[]){C, H}, f);
        tp_tensor *tb1 = tp_tensor_view(g, b1, db1, 1, (uint32_t[]){H}, f);
        tp_tensor *tw2 = tp_tensor_view(g, w2, dw2, 2, (uint32_t[]){H, K}, f);
        tp_tensor *tb2 = tp_tensor_view(g, b2, db2, 1, (uint32_t[]){K}, f);
        tp_tensor *h = tp_dropout(g, tp_linear(g, tx, tw1, tb1, TP_ACT_RELU), 0.1f, 3);
        tp_tensor *logits = tp_linear(g, h, tw2, tb2, TP_ACT_NONE);
        tp_tensor *loss = tp_mean(g, tp_softmax_xent(g, logits, labels, 0.1f), weights);
        assert_int_equal(tp_graph_backward(g, loss, err, sizeof err), 0);
        *loss_out = loss->data[0];
    }
    tp_graph_free(g);
}

static void test_determinism(void **state)
{
    enum { P = 40 * 33 + 33 + 33 * 7 + 7 };
    float *params = tp_params_alloc(P), *g1 = tp_params_alloc(P), *g2 = tp_params_alloc(P);
    assert_non_null(params);
    assert_int_equal((uintptr_t)params % 64, 0);
    tp_rng r;
    tp_rng_seed(&r, 7);
    tp_fill_normal(params, P, 0.2f, &r);
    float l1, l2;
    mlp_step(params, g1, &l1);
    mlp_step(params, g2, &l2);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, P * sizeof(float));
    tp_params_free(params);
    tp_params_free(g1);
    tp_params_free(g2);
    tp_params_free(NULL);
}

static void test_params_layout(void **state)
{
    tp_param_spec specs[3] = {
        {"a.weight", TP_PARAM_ROLE_WEIGHT, 2, {3, 4}},
        {"a.bias", TP_PARAM_ROLE_BIAS, 1, {4}},
        {"c", TP_PARAM_ROLE_OTHER, 3, {2, 2, 2}},
    };
    tp_tensor_info t[3];
    uint64_t total;
    char err[128];
    assert_int_equal(tp_params_layout(t, specs, 3, &total, err, sizeof err), 0);
    assert_int_equal(total, 12 + 4 + 8);
    assert_int_equal(t[1].offset, 12);
    assert_int_equal(t[2].offset, 16);
    assert_int_equal(t[2].shape[3], 1);
    assert_int_equal(t[0].struct_size, sizeof(tp_tensor_info));
    specs[1].shape[0] = 0;
    assert_int_equal(tp_params_layout(t, specs, 3, &total, err, sizeof err), TP_EINVAL);
    assert_non_null(strstr(err, "a.bias"));
}

static void test_blas_check(void **state)
{
    char msg[256];
    int weak = tp_blas_check(msg, sizeof msg);
    print_message("blas: %s (%s)\n", msg, weak ? "weak" : "ok");
    assert_true(strlen(msg) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_matmul),
        cmocka_unit_test(test_grad_bias),
        cmocka_unit_test(test_grad_relu),
        cmocka_unit_test(test_grad_tanh),
        cmocka_unit_test(test_grad_gelu),
        cmocka_unit_test(test_grad_silu),
        cmocka_unit_test(test_grad_linear),
        cmocka_unit_test(test_grad_dropout),
        cmocka_unit_test(test_grad_xent),
        cmocka_unit_test(test_grad_mse),
        cmocka_unit_test(test_grad_sum),
        cmocka_unit_test(test_grad_chain),
        cmocka_unit_test(test_activation_values),
        cmocka_unit_test(test_arena_align_and_reuse),
        cmocka_unit_test(test_arena_grows_then_settles),
        cmocka_unit_test(test_graph_step_allocates_nothing),
        cmocka_unit_test(test_overwrite_and_accumulate),
        cmocka_unit_test(test_relu_overwrite_and_accumulate),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_dropout_mask),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_params_layout),
        cmocka_unit_test(test_blas_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
