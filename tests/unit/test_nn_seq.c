/*
 * test_nn_seq.c - core/nn's sequence ops (seq.h): every op's backward against central finite
 * differences of its forward, for every input that takes a gradient and several shapes (odd
 * token counts, 1 and 3 heads, head dims 1 and 5, cross-attention with one query, a query shared
 * over the batch, causal and not, temperature != 1, broadcast and same-shape adds and products,
 * each GLU activation, one tensor used in several roles); attention's forward against a naive
 * reference in double, its causal mask (a change to a future token leaves earlier outputs bit
 * for bit, the masked probabilities are exact zeros) and extreme scores; forward values of layer
 * norm and GLU; the error messages; bit-identical determinism and no system allocation on a
 * repeated step of a small Transformer language model.
 *
 * Finite differences as in test_nn_ops.c: the scalar is L = sum_i r_i y_i with fixed random r,
 * summed in double from the op's float outputs; each input element is moved by +-eps and the
 * slope compared with the analytic gradient by |a - n| / max(|a|, |n|, FLOOR).
 *
 * Timing of attention and layer norm (forward + backward, GFLOP/s against sgemm) runs only when
 * TP_SEQ_BENCH is set in the environment: it is a measurement, not a test.
 *
 * Not here: SiLU (an activation of ops.c, tested in test_nn_ops.c).
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
#include "core/nn/nn_impl.h" /* white-box: the attention op's kept probabilities */

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
    /* op parameters */
    int32_t ids[64];
    uint32_t n_ids;
    uint32_t heads;
    float temperature;
    int causal;
    tp_act act;
    float ln_eps;
    uint32_t out_ndim, out_shape[TP_MAX_DIMS];
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
    if (!y) {
        tp_graph_status(g, err, sizeof err);
        fail_msg("%s: forward failed: %s", c->name, err);
    }
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
    print_message("%-44s max relative difference %.3g (tolerance %.1g)\n", c->name, max_rel,
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
    for (int k = 0; k < MAX_IN; k++) {
        c.lo[k] = -1.0f;
        c.hi[k] = 1.0f;
        c.needs_grad[k] = 1;
        for (int d = 0; d < TP_MAX_DIMS; d++)
            c.shape[k][d] = 1;
    }
    c.heads = 1;
    c.temperature = 1.0f;
    c.ln_eps = 1e-6f;
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

/* ---------------------------------------------------------------------------------------- */
/* Gradients */

static tp_tensor *b_layernorm(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_layernorm(g, in[0], c->n_in > 1 ? in[1] : NULL, c->n_in > 2 ? in[2] : NULL,
                        c->ln_eps);
}

static tp_tensor *b_layernorm_beta_only(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_layernorm(g, in[0], NULL, in[1], c->ln_eps);
}

static void test_grad_layernorm(void **state)
{
    fd_case c = base("layernorm (3,5,13), gamma, beta", 1e-2, TOL);
    c.build = b_layernorm;
    set_in(&c, 0, 3, 3, 5, 13);
    set_in(&c, 1, 1, 13, 1, 1);
    set_in(&c, 2, 1, 13, 1, 1);
    c.lo[1] = 0.5f;
    c.hi[1] = 1.5f;
    check_case(&c);

    c = base("layernorm (4,16), gamma, eps 1e-2", 1e-2, TOL);
    c.build = b_layernorm;
    c.ln_eps = 1e-2f;
    set_in(&c, 0, 2, 4, 16, 1);
    set_in(&c, 1, 1, 16, 1, 1);
    check_case(&c);

    c = base("layernorm (2,3,7), no gamma or beta", 1e-2, TOL);
    c.build = b_layernorm;
    set_in(&c, 0, 3, 2, 3, 7);
    check_case(&c);

    c = base("layernorm (5,9), beta only, x constant", 1e-2, TOL_LIN);
    c.build = b_layernorm_beta_only;
    set_in(&c, 0, 2, 5, 9, 1);
    set_in(&c, 1, 1, 9, 1, 1);
    c.needs_grad[0] = 0;
    check_case(&c);

    /* Rows with a mean larger than their spread. (Larger offsets drown the finite differences
     * in float rounding; test_layernorm_glu_values checks the forward there.) */
    c = base("layernorm (3,8) of x in [2, 4)", 1e-2, TOL);
    c.build = b_layernorm;
    set_in(&c, 0, 2, 3, 8, 1);
    set_in(&c, 1, 1, 8, 1, 1);
    c.lo[0] = 2.0f;
    c.hi[0] = 4.0f;
    check_case(&c);
}

static tp_tensor *b_embedding(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_embedding(g, in[0], c->ids, c->n_ids);
}

/* Embedding, reshaped to tokens, plus position embeddings: the input layer of the LM. */
static tp_tensor *b_embedding_tokens(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    tp_tensor *e = tp_embedding(g, in[0], c->ids, c->n_ids);
    tp_tensor *t = tp_reshape(g, e, 3, (uint32_t[]){c->n_ids / 3, 3, in[0]->shape[1]});
    return tp_tanh(g, tp_add(g, t, in[1]));
}

static void test_grad_embedding(void **state)
{
    fd_case c = base("embedding (7,5), 9 ids with repeats", 0.1, TOL_LIN);
    c.build = b_embedding;
    set_in(&c, 0, 2, 7, 5, 1);
    int32_t ids[9] = {3, 0, 6, 3, 3, 1, 6, 2, 0};
    memcpy(c.ids, ids, sizeof ids);
    c.n_ids = 9;
    check_case(&c);

    c.name = "embedding -> reshape (3,3,5) + pos (3,5), tanh";
    c.build = b_embedding_tokens;
    c.eps = 1e-2;
    c.tol = TOL;
    set_in(&c, 1, 2, 3, 5, 1);
    check_case(&c);
}

static tp_tensor *b_add(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_add(g, in[0], in[1]);
}

/* a + a (one tensor in both roles), then a nonlinearity so the gradient depends on a. */
static tp_tensor *b_add_self(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_tanh(g, tp_add(g, in[0], in[0]));
}

static void test_grad_add(void **state)
{
    fd_case c = base("add same shape (2,3,5)", 0.1, TOL_LIN);
    c.build = b_add;
    set_in(&c, 0, 3, 2, 3, 5);
    set_in(&c, 1, 3, 2, 3, 5);
    check_case(&c);

    c.name = "add (2,3,5) + (3,5) position embeddings";
    set_in(&c, 1, 2, 3, 5, 1);
    check_case(&c);

    c.name = "add (2,3,5) + (1,3,5)";
    set_in(&c, 1, 3, 1, 3, 5);
    check_case(&c);

    c.name = "add (2,3,5) + (5) bias";
    set_in(&c, 1, 1, 5, 1, 1);
    check_case(&c);

    c.name = "add (7,3) + (3), b constant";
    set_in(&c, 0, 2, 7, 3, 1);
    set_in(&c, 1, 1, 3, 1, 1);
    c.needs_grad[1] = 0;
    check_case(&c);

    c = base("tanh(a + a), one tensor twice", 1e-2, TOL);
    c.build = b_add_self;
    set_in(&c, 0, 2, 4, 5, 1);
    check_case(&c);
}

static tp_tensor *b_mul(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_mul(g, in[0], in[1]);
}

/* a * a: one tensor in both roles. */
static tp_tensor *b_mul_self(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_mul(g, in[0], in[0]);
}

/* The reference ViT's GLU MLP: h * (h W + b) with h = gelu(x), b broadcast. */
static tp_tensor *b_mul_gate(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    tp_tensor *h = tp_gelu(g, in[0]);
    return tp_mul(g, h, tp_linear(g, h, in[1], in[2], TP_ACT_NONE));
}

static void test_grad_mul(void **state)
{
    fd_case c = base("mul same shape (2,3,5)", 1e-2, TOL);
    c.build = b_mul;
    set_in(&c, 0, 3, 2, 3, 5);
    set_in(&c, 1, 3, 2, 3, 5);
    check_case(&c);

    c.name = "mul (2,3,5) * (3,5)";
    set_in(&c, 1, 2, 3, 5, 1);
    check_case(&c);

    c.name = "mul (2,3,5) * (1,1,5), a constant";
    set_in(&c, 1, 3, 1, 1, 5);
    c.needs_grad[0] = 0;
    check_case(&c);

    c = base("mul a * a", 1e-2, TOL);
    c.build = b_mul_self;
    set_in(&c, 0, 2, 4, 7, 1);
    check_case(&c);

    c = base("gelu(x) * (gelu(x) W + b), x (2,3,4)", 1e-2, TOL);
    c.build = b_mul_gate;
    set_in(&c, 0, 3, 2, 3, 4);
    set_in(&c, 1, 2, 4, 4, 1);
    set_in(&c, 2, 1, 4, 1, 1);
    check_case(&c);
}

static tp_tensor *b_glu(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_glu(g, in[0], c->act);
}

static void test_grad_glu(void **state)
{
    static const struct {
        tp_act act;
        const char *name;
    } acts[5] = {
        {TP_ACT_NONE, "glu none (bilinear) (3,5,14)"},
        {TP_ACT_RELU, "glu relu (3,5,14)"},
        {TP_ACT_TANH, "glu tanh (3,5,14)"},
        {TP_ACT_GELU, "glu gelu (GeGLU) (3,5,14)"},
        {TP_ACT_SILU, "glu silu (SwiGLU) (3,5,14)"},
    };
    for (int i = 0; i < 5; i++) {
        fd_case c = base(acts[i].name, 5e-3, acts[i].act == TP_ACT_NONE ? TOL_LIN : TOL);
        c.build = b_glu;
        c.act = acts[i].act;
        set_in(&c, 0, 3, 3, 5, 14);
        c.lo[0] = -2.0f;
        c.hi[0] = 2.0f;
        if (c.act == TP_ACT_RELU)
            c.min_abs[0] = 0.05f; /* away from the kink */
        check_case(&c);
    }
    fd_case c = base("glu silu (2,34): F = 17, past one lane block", 1e-2, TOL);
    c.build = b_glu;
    c.act = TP_ACT_SILU;
    set_in(&c, 0, 2, 2, 34, 1);
    check_case(&c);
}

static tp_tensor *b_attention(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_attention(g, in[0], in[1], in[2], c->heads, c->temperature, c->causal);
}

/* Self-attention on one tensor: q = k = v = x. */
static tp_tensor *b_attention_self(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_attention(g, in[0], in[0], in[0], c->heads, c->temperature, c->causal);
}

/* k = v: one tensor in two roles. */
static tp_tensor *b_attention_kv_shared(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_attention(g, in[0], in[1], in[1], c->heads, c->temperature, c->causal);
}

/* One attention case: q (qB, Tq, H Dh), k and v (B, Tk, H Dh). */
static fd_case attn_case(const char *name, uint32_t B, uint32_t qB, uint32_t Tq, uint32_t Tk,
                         uint32_t H, uint32_t Dh, float temperature, int causal)
{
    fd_case c = base(name, 1e-2, TOL);
    c.build = b_attention;
    c.heads = H;
    c.temperature = temperature;
    c.causal = causal;
    set_in(&c, 0, 3, qB, Tq, H * Dh);
    set_in(&c, 1, 3, B, Tk, H * Dh);
    set_in(&c, 2, 3, B, Tk, H * Dh);
    for (int k = 0; k < 3; k++) {
        c.lo[k] = -1.5f;
        c.hi[k] = 1.5f;
    }
    return c;
}

static void test_grad_attention(void **state)
{
    fd_case c = attn_case("attention B2 T5 H1 Dh5", 2, 2, 5, 5, 1, 5, 1.0f, 0);
    check_case(&c);
    c = attn_case("attention B2 T5 H3 Dh5 causal, temp 0.7", 2, 2, 5, 5, 3, 5, 0.7f, 1);
    check_case(&c);
    c = attn_case("attention B2 T7 H3 Dh1 causal", 2, 2, 7, 7, 3, 1, 1.0f, 1);
    check_case(&c);
    c = attn_case("attention B1 T9 H1 Dh1, temp 2.5", 1, 1, 9, 9, 1, 1, 2.5f, 0);
    check_case(&c);
    c = attn_case("cross-attention Tq1 Tk7 B3 H3 Dh2, temp 1.5", 3, 3, 1, 7, 3, 2, 1.5f, 0);
    check_case(&c);
    c = attn_case("cross-attention Tq3 Tk5 B2 H2 Dh5", 2, 2, 3, 5, 2, 5, 1.0f, 0);
    check_case(&c);
    c = attn_case("shared query q (1,1,6), k v (3,5,6), H2 (MAP)", 3, 1, 1, 5, 2, 3, 1.0f, 0);
    check_case(&c);
    c = attn_case("shared queries q (1,2,6), k v (3,9,6), H3", 3, 1, 2, 9, 3, 2, 1.0f, 0);
    check_case(&c);
    c = attn_case("attention, only v takes a gradient", 2, 2, 5, 5, 3, 5, 1.0f, 1);
    c.needs_grad[0] = c.needs_grad[1] = 0;
    check_case(&c);
    c = attn_case("attention, only q takes a gradient", 2, 2, 5, 5, 3, 5, 1.0f, 0);
    c.needs_grad[1] = c.needs_grad[2] = 0;
    check_case(&c);

    c = attn_case("self-attention q = k = v, B2 T6 H3 Dh2 causal", 2, 2, 6, 6, 3, 2, 1.0f, 1);
    c.build = b_attention_self;
    c.n_in = 1;
    check_case(&c);
    c = attn_case("attention k = v, B2 Tq4 Tk6 H2 Dh3", 2, 2, 4, 6, 2, 3, 1.0f, 0);
    c.build = b_attention_kv_shared;
    c.n_in = 2;
    check_case(&c);
}

static tp_tensor *b_reshape(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_reshape(g, in[0], c->out_ndim, c->out_shape);
}

static tp_tensor *b_token_mean(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return tp_token_mean(g, in[0]);
}

static void test_grad_reshape_token_mean(void **state)
{
    fd_case c = base("reshape (6,5) -> (2,3,5)", 0.1, TOL_LIN);
    c.build = b_reshape;
    set_in(&c, 0, 2, 6, 5, 1);
    c.out_ndim = 3;
    c.out_shape[0] = 2;
    c.out_shape[1] = 3;
    c.out_shape[2] = 5;
    check_case(&c);

    c = base("token mean (3,5,4) -> (3,4)", 0.1, TOL_LIN);
    c.build = b_token_mean;
    set_in(&c, 0, 3, 3, 5, 4);
    check_case(&c);
}

/* A pre-LN Transformer block on x (2, 5, 6) with one weight W (6, 6) for the q, k, v and output
 * projections and gamma (6) for both norms: the gradients accumulate over every use. */
static tp_tensor *block(tp_graph *g, tp_tensor *x, tp_tensor *w, tp_tensor *gamma, int causal)
{
    tp_tensor *h = tp_layernorm(g, x, gamma, NULL, 1e-6f);
    tp_tensor *q = tp_linear(g, h, w, NULL, TP_ACT_NONE);
    tp_tensor *k = tp_linear(g, h, w, gamma, TP_ACT_NONE);
    tp_tensor *v = tp_linear(g, h, w, NULL, TP_ACT_TANH);
    tp_tensor *a = tp_attention(g, q, k, v, 2, 0.9f, causal);
    tp_tensor *r = tp_add(g, x, tp_linear(g, a, w, NULL, TP_ACT_NONE));
    tp_tensor *m =
        tp_glu(g, tp_linear(g, tp_layernorm(g, r, gamma, gamma, 1e-6f), w, NULL, 0), TP_ACT_GELU);
    return tp_token_mean(g, m);
}

static tp_tensor *b_block(tp_graph *g, tp_tensor **in, const fd_case *c)
{
    return block(g, in[0], in[1], in[2], c->causal);
}

static void test_grad_block(void **state)
{
    fd_case c = base("block: LN, attention, residual, GLU, mean", 5e-3, 5e-3);
    c.build = b_block;
    c.causal = 1;
    set_in(&c, 0, 3, 2, 5, 6);
    set_in(&c, 1, 2, 6, 6, 1);
    set_in(&c, 2, 1, 6, 1, 1);
    c.lo[2] = 0.5f;
    c.hi[2] = 1.5f;
    check_case(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* Forward values */

/* out (B, Tq, H Dh) of attention in double, q with batch qB (B or 1). */
static void ref_attention(double *out, const float *q, const float *k, const float *v, int B,
                          int qB, int Tq, int Tk, int H, int Dh, double temperature, int causal)
{
    int C = H * Dh;
    double *s = malloc((size_t)Tk * sizeof *s);
    assert_non_null(s);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Tq; i++) {
                const float *qi = q + ((size_t)(qB == 1 ? 0 : b) * Tq + i) * C + h * Dh;
                int nv = causal ? i + 1 : Tk;
                double m = -INFINITY, sum = 0.0;
                for (int j = 0; j < nv; j++) {
                    const float *kj = k + ((size_t)b * Tk + j) * C + h * Dh;
                    double d = 0.0;
                    for (int e = 0; e < Dh; e++)
                        d += (double)qi[e] * kj[e];
                    s[j] = temperature * d / sqrt((double)Dh);
                    m = fmax(m, s[j]);
                }
                for (int j = 0; j < nv; j++)
                    sum += (s[j] = exp(s[j] - m));
                double *o = out + ((size_t)b * Tq + i) * C + h * Dh;
                for (int e = 0; e < Dh; e++) {
                    double acc = 0.0;
                    for (int j = 0; j < nv; j++)
                        acc += s[j] / sum * v[((size_t)b * Tk + j) * C + h * Dh + e];
                    o[e] = acc;
                }
            }
    free(s);
}

static void fill(float *p, size_t n, float scale, tp_rng *r)
{
    for (size_t i = 0; i < n; i++)
        p[i] = scale * (2.0f * tp_rng_uniformf(r) - 1.0f);
}

static void test_attention_reference(void **state)
{
    static const struct {
        int B, qB, Tq, Tk, H, Dh;
        float temp;
        int causal;
        double tol; /* float scores of size S carry errors of S 6e-8 into the exps */
    } cases[] = {
        {2, 2, 9, 9, 3, 4, 0.8f, 0, 2e-6},
        {2, 2, 9, 9, 3, 4, 0.8f, 1, 2e-6},
        {3, 3, 1, 11, 2, 5, 1.0f, 0, 2e-6},
        {4, 1, 1, 7, 4, 8, 1.0f, 0, 2e-6},
        {1, 1, 33, 33, 1, 1, 3.0f, 1, 2e-6},
        {2, 2, 17, 17, 2, 32, 1.0f, 1, 2e-6},
        {2, 2, 5, 70, 1, 16, 0.5f, 0, 2e-6},
        {2, 2, 9, 9, 1, 4, 20.0f, 0, 2e-5}, /* scores over +-160: exp's whole range, its cutoff */
    };
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    tp_rng r;
    tp_rng_seed(&r, 77);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int B = cases[ci].B, qB = cases[ci].qB, Tq = cases[ci].Tq, Tk = cases[ci].Tk;
        int H = cases[ci].H, Dh = cases[ci].Dh, C = H * Dh;
        size_t nq = (size_t)qB * Tq * C, nk = (size_t)B * Tk * C, no = (size_t)B * Tq * C;
        float *q = malloc(nq * sizeof *q), *k = malloc(nk * sizeof *k), *v = malloc(nk * sizeof *v);
        double *ref = malloc(no * sizeof *ref);
        assert_true(q && k && v && ref);
        fill(q, nq, 2.0f, &r);
        fill(k, nk, 2.0f, &r);
        fill(v, nk, 1.0f, &r);
        ref_attention(ref, q, k, v, B, qB, Tq, Tk, H, Dh, cases[ci].temp, cases[ci].causal);
        tp_graph_reset(g);
        tp_tensor *tq = tp_tensor_view(g, q, NULL, 3, (uint32_t[]){qB, Tq, C}, 0);
        tp_tensor *tk = tp_tensor_view(g, k, NULL, 3, (uint32_t[]){B, Tk, C}, 0);
        tp_tensor *tv = tp_tensor_view(g, v, NULL, 3, (uint32_t[]){B, Tk, C}, 0);
        tp_tensor *o = tp_attention(g, tq, tk, tv, (uint32_t)H, cases[ci].temp, cases[ci].causal);
        assert_non_null(o);
        assert_int_equal(o->shape[0], B);
        assert_int_equal(o->shape[1], Tq);
        assert_int_equal(o->shape[2], C);
        double max_abs = 0.0;
        for (size_t i = 0; i < no; i++)
            max_abs = fmax(max_abs, fabs(o->data[i] - ref[i]));
        print_message("attention B%d qB%d Tq%d Tk%d H%d Dh%d temp %.1f %-6s max |out - double "
                      "reference| %.3g (tolerance %.0e)\n",
                      B, qB, Tq, Tk, H, Dh, (double)cases[ci].temp,
                      cases[ci].causal ? "causal" : "", max_abs, cases[ci].tol);
        assert_true(max_abs < cases[ci].tol);
        free(q);
        free(k);
        free(v);
        free(ref);
    }
    tp_graph_free(g);
}

static void test_attention_causal_mask(void **state)
{
    enum { B = 2, T = 11, H = 3, Dh = 4, C = H * Dh, N = B * T * C };
    static float q[N], k[N], v[N], before[N];
    tp_rng r;
    tp_rng_seed(&r, 5);
    fill(q, N, 1.5f, &r);
    fill(k, N, 1.5f, &r);
    fill(v, N, 1.0f, &r);
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    uint32_t shape[3] = {B, T, C};
    tp_tensor *o = tp_attention(g, tp_tensor_view(g, q, NULL, 3, shape, 0),
                                tp_tensor_view(g, k, NULL, 3, shape, 0),
                                tp_tensor_view(g, v, NULL, 3, shape, 0), H, 1.0f, 1);
    assert_non_null(o);
    memcpy(before, o->data, sizeof before);
    /* Change token t of q, k and v in every batch element: outputs before t keep their bits. */
    for (int t = T - 1; t >= 1; t--) {
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++) {
                size_t i = ((size_t)b * T + t) * C + c;
                q[i] += 0.75f;
                k[i] -= 1.25f;
                v[i] = 100.0f * v[i] + 3.0f;
            }
        tp_graph_reset(g);
        o = tp_attention(g, tp_tensor_view(g, q, NULL, 3, shape, 0),
                         tp_tensor_view(g, k, NULL, 3, shape, 0),
                         tp_tensor_view(g, v, NULL, 3, shape, 0), H, 1.0f, 1);
        assert_non_null(o);
        for (int b = 0; b < B; b++) {
            size_t off = (size_t)b * T * C;
            assert_memory_equal(o->data + off, before + off, (size_t)t * C * sizeof(float));
            assert_memory_not_equal(o->data + off + (size_t)t * C, before + off + (size_t)t * C,
                                    C * sizeof(float));
        }
    }
    /* The kept probabilities: exact zeros above the diagonal, rows summing to 1. */
    tp_graph_reset(g);
    tp_tensor *tq = tp_tensor_view(g, q, q, 3, shape, 0);
    o = tp_attention(g, tq, tp_tensor_view(g, k, NULL, 3, shape, 0),
                     tp_tensor_view(g, v, NULL, 3, shape, 0), H, 1.0f, 1);
    assert_non_null(o);
    const float *P = NULL;
    for (tp_op *it = g->tape; it; it = it->prev)
        if (it->type == TP_OP_ATTENTION)
            P = it->u.seq.attn.probs;
    assert_non_null(P);
    double max_row_err = 0.0;
    for (int bh = 0; bh < B * H; bh++)
        for (int i = 0; i < T; i++) {
            const float *row = P + ((size_t)bh * T + i) * T;
            double s = 0.0;
            for (int j = 0; j < T; j++) {
                if (j > i)
                    assert_true(row[j] == 0.0f && !signbit(row[j]));
                else
                    assert_true(row[j] > 0.0f);
                s += row[j];
            }
            max_row_err = fmax(max_row_err, fabs(s - 1.0));
        }
    print_message("causal probabilities: exact zeros above the diagonal, max |row sum - 1| %.3g\n",
                  max_row_err);
    assert_true(max_row_err < 1e-6);
    tp_graph_free(g);
}

static void test_attention_extreme_scores(void **state)
{
    /* Scores of +-1e4: the max-subtracted softmax stays finite and picks the best key. */
    enum { T = 6, C = 4 };
    float q[T * C], k[T * C], v[T * C];
    for (int i = 0; i < T; i++)
        for (int c = 0; c < C; c++) {
            q[i * C + c] = 50.0f;
            k[i * C + c] = (float)(i - 2) * (c % 2 ? 25.0f : 24.0f);
            v[i * C + c] = (float)(10 * i + c);
        }
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    uint32_t shape[3] = {1, T, C};
    tp_tensor *o = tp_attention(g, tp_tensor_view(g, q, NULL, 3, shape, 0),
                                tp_tensor_view(g, k, NULL, 3, shape, 0),
                                tp_tensor_view(g, v, NULL, 3, shape, 0), 1, 1.0f, 0);
    assert_non_null(o);
    for (int i = 0; i < T * C; i++)
        assert_float_equal(o->data[i], v[(T - 1) * C + i % C], 0.0f); /* all on the last key */
    /* A NaN in the scores is not hidden by the max. */
    q[3] = NAN;
    o = tp_attention(g, tp_tensor_view(g, q, NULL, 3, shape, 0),
                     tp_tensor_view(g, k, NULL, 3, shape, 0),
                     tp_tensor_view(g, v, NULL, 3, shape, 0), 1, 1.0f, 0);
    assert_non_null(o);
    assert_true(isnan(o->data[0]));
    assert_false(isnan(o->data[C]));
    tp_graph_free(g);
}

static void test_layernorm_glu_values(void **state)
{
    enum { N = 6, D = 37 };
    static float x[N * D], gamma[D], beta[D];
    tp_rng r;
    tp_rng_seed(&r, 9);
    fill(x, N * D, 3.0f, &r);
    for (int i = 0; i < N * D; i++)
        x[i] += 10.0f * (float)(i / D); /* rows with different means */
    fill(gamma, D, 1.0f, &r);
    fill(beta, D, 1.0f, &r);
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    tp_tensor *tx = tp_tensor_view(g, x, NULL, 2, (uint32_t[]){N, D}, 0);
    tp_tensor *y = tp_layernorm(g, tx, tp_tensor_view(g, gamma, NULL, 1, (uint32_t[]){D}, 0),
                                tp_tensor_view(g, beta, NULL, 1, (uint32_t[]){D}, 0), 1e-6f);
    assert_non_null(y);
    double max_ln = 0.0;
    for (int i = 0; i < N; i++) {
        double m = 0.0, var = 0.0;
        for (int j = 0; j < D; j++)
            m += x[i * D + j];
        m /= D;
        for (int j = 0; j < D; j++)
            var += (x[i * D + j] - m) * (x[i * D + j] - m);
        var /= D; /* biased, as Flax */
        for (int j = 0; j < D; j++) {
            double ref = (x[i * D + j] - m) / sqrt(var + 1e-6) * gamma[j] + beta[j];
            max_ln = fmax(max_ln, fabs(y->data[i * D + j] - ref));
        }
    }

    /* GLU: act(first half) * second half, against double references. */
    double max_glu = 0.0;
    tp_tensor *tg = tp_tensor_view(g, x, NULL, 3, (uint32_t[]){2, 3, D - 1}, 0);
    const int F = (D - 1) / 2;
    for (int a = TP_ACT_NONE; a <= TP_ACT_SILU; a++) {
        tp_tensor *o = tp_glu(g, tg, (tp_act)a);
        assert_non_null(o);
        assert_int_equal(o->ndim, 3);
        assert_int_equal(o->shape[2], F);
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < F; j++) {
                double u = x[i * (D - 1) + j], w = x[i * (D - 1) + F + j], act = u;
                if (a == TP_ACT_RELU)
                    act = u > 0 ? u : 0;
                else if (a == TP_ACT_TANH)
                    act = tanh(u);
                else if (a == TP_ACT_GELU)
                    act = 0.5 * u * (1.0 + tanh(0.7978845608028654 * (u + 0.044715 * u * u * u)));
                else if (a == TP_ACT_SILU)
                    act = u / (1.0 + exp(-u));
                double ref = act * w;
                max_glu = fmax(max_glu, fabs(o->data[i * F + j] - ref) / fmax(fabs(ref), 1.0));
            }
    }
    print_message("layernorm: max |y - double reference| %.3g; glu: max relative %.3g\n", max_ln,
                  max_glu);
    assert_true(max_ln < 1e-5);
    assert_true(max_glu < 1e-5);
    tp_graph_free(g);
}

/* ---------------------------------------------------------------------------------------- */
/* Errors */

/* The graph's error is `code` and its message holds every string of the NULL-terminated list. */
static void expect_error(tp_graph *g, int code, ...)
{
    char err[256];
    assert_int_equal(tp_graph_status(g, err, sizeof err), code);
    print_message("error: %s\n", err);
    va_list ap;
    va_start(ap, code);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        if (!strstr(err, s))
            fail_msg("error message \"%s\" lacks \"%s\"", err, s);
    va_end(ap);
    tp_graph_reset(g);
}

static void test_errors(void **state)
{
    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    static float buf[1024];
    tp_tensor *t;
#define VIEW(...)                                                                                  \
    tp_tensor_view(g, buf, NULL, sizeof((uint32_t[]){__VA_ARGS__}) / 4, (uint32_t[]){__VA_ARGS__}, \
                   0)

    int32_t ids[4] = {0, 4, 7, 2};
    assert_null(tp_embedding(g, VIEW(7, 3), ids, 4));
    expect_error(g, TP_ERANGE, "tp_embedding", "id 7 at position 2", "[0, 7)", NULL);
    ids[2] = -1;
    assert_null(tp_embedding(g, VIEW(7, 3), ids, 4));
    expect_error(g, TP_ERANGE, "id -1 at position 2", NULL);
    assert_null(tp_embedding(g, VIEW(2, 7, 3), ids, 1));
    expect_error(g, TP_EINVAL, "table (2, 7, 3) must be 2-D", NULL);
    assert_null(tp_embedding(g, VIEW(7, 3), NULL, 4));
    expect_error(g, TP_EINVAL, "ids is NULL", NULL);

    assert_null(tp_layernorm(g, VIEW(4, 6), VIEW(5), NULL, 1e-6f));
    expect_error(g, TP_EINVAL, "tp_layernorm: gamma (5)", "x (4, 6)", NULL);
    assert_null(tp_layernorm(g, VIEW(4, 6), NULL, VIEW(2, 4), 1e-6f));
    expect_error(g, TP_EINVAL, "beta (2, 4)", NULL);
    assert_null(tp_layernorm(g, VIEW(4, 6), NULL, NULL, -1.0f));
    expect_error(g, TP_EINVAL, "eps -1", NULL);

    assert_null(tp_add(g, VIEW(2, 3, 5), VIEW(2, 5)));
    expect_error(g, TP_EINVAL, "tp_add: b (2, 5)", "a (2, 3, 5)", NULL);
    assert_null(tp_add(g, VIEW(3, 5), VIEW(2, 3, 5)));
    expect_error(g, TP_EINVAL, "a is the larger operand", NULL);
    assert_null(tp_mul(g, VIEW(3, 5), VIEW(3, 4)));
    expect_error(g, TP_EINVAL, "tp_mul: b (3, 4) is neither the shape of a (3, 5)", NULL);

    assert_null(tp_glu(g, VIEW(4, 7), TP_ACT_GELU));
    expect_error(g, TP_EINVAL, "tp_glu", "(4, 7) is odd", NULL);
    assert_null(tp_glu(g, VIEW(4, 8), (tp_act)9));
    expect_error(g, TP_EINVAL, "unknown activation 9", NULL);

    t = VIEW(2, 5, 12);
    assert_null(tp_attention(g, t, t, t, 5, 1.0f, 0));
    expect_error(g, TP_EINVAL, "tp_attention: 5 heads", "(2, 5, 12)", NULL);
    t = VIEW(2, 5, 12);
    assert_null(tp_attention(g, t, t, t, 0, 1.0f, 0));
    expect_error(g, TP_EINVAL, "0 heads", NULL);
    assert_null(tp_attention(g, VIEW(2, 4, 12), VIEW(2, 5, 12), VIEW(2, 5, 12), 3, 1.0f, 1));
    expect_error(g, TP_EINVAL, "causal attention needs as many queries as keys", NULL);
    assert_null(tp_attention(g, VIEW(2, 5, 12), VIEW(2, 5, 12), VIEW(2, 6, 12), 3, 1.0f, 0));
    expect_error(g, TP_EINVAL, "k (2, 5, 12) and v (2, 6, 12)", NULL);
    assert_null(tp_attention(g, VIEW(3, 5, 12), VIEW(2, 5, 12), VIEW(2, 5, 12), 3, 1.0f, 0));
    expect_error(g, TP_EINVAL, "q (3, 5, 12) does not fit k (2, 5, 12)", NULL);
    assert_null(tp_attention(g, VIEW(2, 5, 8), VIEW(2, 5, 12), VIEW(2, 5, 12), 2, 1.0f, 0));
    expect_error(g, TP_EINVAL, "q (2, 5, 8) does not fit", NULL);
    assert_null(tp_attention(g, VIEW(10, 12), VIEW(2, 5, 12), VIEW(2, 5, 12), 2, 1.0f, 0));
    expect_error(g, TP_EINVAL, "q (10, 12) must be 3-D", NULL);
    t = VIEW(2, 5, 12);
    assert_null(tp_attention(g, t, t, t, 2, NAN, 0));
    expect_error(g, TP_EINVAL, "temperature nan is not finite", NULL);

    assert_null(tp_reshape(g, VIEW(6, 5), 2, (uint32_t[]){4, 8}));
    expect_error(g, TP_EINVAL, "tp_reshape: x (6, 5) and the new shape (4, 8)", NULL);
    assert_null(tp_token_mean(g, VIEW(6, 5)));
    expect_error(g, TP_EINVAL, "tp_token_mean: x (6, 5) must be 3-D", NULL);

    /* A failed input passes through every op; the first message is kept. */
    assert_null(tp_attention(g, tp_layernorm(g, NULL, NULL, NULL, 0.0f), NULL, NULL, 1, 1.0f, 0));
    assert_null(tp_add(g, tp_glu(g, NULL, TP_ACT_NONE), NULL));
    expect_error(g, TP_EINVAL, "tp_layernorm: x is NULL", NULL);
#undef VIEW
    tp_graph_free(g);
}

/* ---------------------------------------------------------------------------------------- */
/* A small Transformer step: determinism, no allocation when repeated */

enum { SB = 4, ST = 9, SD = 12, SV = 11 };

/* Parameters: table (SV, SD), pos (ST, SD), w (SD, SD), gamma (SD), wout (SD / 2, SV). Returns
 * the loss. */
enum { SP = SV * SD + ST * SD + SD * SD + SD + SD / 2 * SV };

static float lm_step(tp_graph *g, float *params, float *grads, int causal)
{
    float *table = params, *pos = table + SV * SD, *w = pos + ST * SD, *gamma = w + SD * SD;
    float *wout = gamma + SD;
    float *dtable = grads, *dpos = dtable + SV * SD, *dw = dpos + ST * SD, *dg = dw + SD * SD;
    float *dwout = dg + SD;
    int32_t ids[SB * ST], labels[SB * ST];
    for (int i = 0; i < SB * ST; i++) {
        ids[i] = (int32_t)((i * 7 + 3) % SV);
        labels[i] = (int32_t)((i * 5 + 1) % SV);
    }
    char err[256];
    uint32_t f = TP_TENSOR_GRAD_OVERWRITE;
    tp_graph_reset(g);
    tp_tensor *tt = tp_tensor_view(g, table, dtable, 2, (uint32_t[]){SV, SD}, f);
    tp_tensor *tp = tp_tensor_view(g, pos, dpos, 2, (uint32_t[]){ST, SD}, f);
    tp_tensor *tw = tp_tensor_view(g, w, dw, 2, (uint32_t[]){SD, SD}, f);
    tp_tensor *tg = tp_tensor_view(g, gamma, dg, 1, (uint32_t[]){SD}, f);
    tp_tensor *x = tp_embedding(g, tt, ids, SB * ST);
    x = tp_add(g, tp_reshape(g, x, 3, (uint32_t[]){SB, ST, SD}), tp);
    tp_tensor *h = tp_layernorm(g, x, tg, NULL, 1e-6f);
    tp_tensor *a = tp_attention(g, tp_linear(g, h, tw, NULL, TP_ACT_NONE),
                                tp_linear(g, h, tw, tg, TP_ACT_NONE),
                                tp_linear(g, h, tw, NULL, TP_ACT_SILU), 3, 1.0f, causal);
    x = tp_add(g, x, a);
    h = tp_glu(g, tp_linear(g, tp_layernorm(g, x, tg, tg, 1e-6f), tw, NULL, TP_ACT_NONE),
               TP_ACT_TANH); /* (SB, ST, SD / 2) */
    tp_tensor *two = tp_tensor_view(g, wout, dwout, 2, (uint32_t[]){SD / 2, SV}, f);
    tp_tensor *logits = tp_linear(g, h, two, NULL, TP_ACT_NONE);
    tp_tensor *loss = tp_mean(g, tp_softmax_xent(g, logits, labels, 0.1f), NULL);
    if (tp_graph_backward(g, loss, err, sizeof err))
        fail_msg("lm_step: %s", err);
    return loss->data[0];
}

static void test_determinism_and_allocations(void **state)
{
    enum { P = SP };
    float *params = tp_params_alloc(P), *g1 = tp_params_alloc(P), *g2 = tp_params_alloc(P);
    assert_true(params && g1 && g2);
    tp_rng r;
    tp_rng_seed(&r, 3);
    tp_fill_normal(params, P, 0.5f, &r);
    for (int causal = 0; causal <= 1; causal++) {
        tp_graph *ga, *gb;
        char err[256];
        assert_int_equal(tp_graph_init(&ga, 4096, err, sizeof err), 0); /* grows in step 1 */
        assert_int_equal(tp_graph_init(&gb, 1 << 20, err, sizeof err), 0);
        float l1 = lm_step(ga, params, g1, causal);
        float l2 = lm_step(gb, params, g2, causal);
        assert_true(isfinite(l1));
        assert_memory_equal(&l1, &l2, sizeof l1);
        assert_memory_equal(g1, g2, P * sizeof(float));
        /* Repeated steps on one graph: same bits, and nothing from the system after the first. */
        uint64_t allocs[3];
        for (int step = 0; step < 3; step++) {
            float l = lm_step(ga, params, g2, causal);
            assert_memory_equal(&l, &l1, sizeof l);
            assert_memory_equal(g1, g2, P * sizeof(float));
            allocs[step] = tp_arena_sys_allocs(tp_graph_arena(ga));
        }
        print_message("lm step (%s): loss %.6f, system allocations after steps 1-3 of one graph: "
                      "%llu %llu %llu\n",
                      causal ? "causal" : "not causal", (double)l1, (unsigned long long)allocs[0],
                      (unsigned long long)allocs[1], (unsigned long long)allocs[2]);
        assert_int_equal(allocs[1], allocs[2]);
        tp_graph_free(ga);
        tp_graph_free(gb);
    }
    tp_params_free(params);
    tp_params_free(g1);
    tp_params_free(g2);
}

/* ---------------------------------------------------------------------------------------- */
/* Timing (TP_SEQ_BENCH=1) */

/* CPU time of the process: the machine may be shared, and the timed code is single-threaded
 * (OPENBLAS_NUM_THREADS=1). */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds per call of sgemm (M, N, K) with the given leading dims, best of reps. */
static double time_sgemm(int M, int N, int K, int calls, const float *a, int lda, const float *b,
                         int ldb, float *c, int ldc, int transb)
{
    double best = INFINITY;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        for (int i = 0; i < calls; i++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, M, N, K,
                        1.0f, a, lda, b, ldb, 0.0f, c, ldc);
        best = fmin(best, (now_s() - t0) / calls);
    }
    return best;
}

static void test_timing(void **state)
{
    if (!getenv("TP_SEQ_BENCH"))
        skip();
    enum { B = 64, T = 64, H = 4, Dh = 32, C = H * Dh, N = B * T * C };
    float *q = tp_params_alloc(N), *k = tp_params_alloc(N), *v = tp_params_alloc(N);
    float *dq = tp_params_alloc(N), *dk = tp_params_alloc(N), *dv = tp_params_alloc(N);
    float *w = tp_params_alloc(N), *big = tp_params_alloc(3 * 512 * 512);
    assert_true(q && k && v && dq && dk && dv && w && big);
    tp_rng r;
    tp_rng_seed(&r, 1);
    fill(q, N, 1.0f, &r);
    fill(k, N, 1.0f, &r);
    fill(v, N, 1.0f, &r);
    fill(w, N, 1.0f, &r);
    fill(big, 3 * 512 * 512, 1.0f, &r);

    /* The sgemm rates to compare with: a large square one, and attention's per-head shapes. */
    double t_big =
        time_sgemm(512, 512, 512, 3, big, 512, big + 512 * 512, 512, big + 2 * 512 * 512, 512, 0);
    double t_qk = time_sgemm(T, T, Dh, 1000, q, C, k, C, big, T, 1);
    double t_qk_packed = time_sgemm(T, T, Dh, 1000, q, Dh, k, Dh, big, T, 1);
    double t_pv = time_sgemm(T, Dh, T, 1000, big + 8192, T, v, C, big, C, 0);
    print_message("sgemm 512^3: %.1f GFLOP/s; (64x64x32) q k^T strided %.1f, packed %.1f; "
                  "(64x32x64) P v strided %.1f GFLOP/s\n",
                  2.0 * 512 * 512 * 512 / t_big * 1e-9, 2.0 * T * T * Dh / t_qk * 1e-9,
                  2.0 * T * T * Dh / t_qk_packed * 1e-9, 2.0 * T * T * Dh / t_pv * 1e-9);

    tp_graph *g;
    char err[256];
    assert_int_equal(tp_graph_init(&g, 0, err, sizeof err), 0);
    uint32_t shape[3] = {B, T, C};
    /* The backward of the timing's loss, a weighted sum over (B, T, C), to subtract. */
    double best_loss = INFINITY;
    for (int rep = 0; rep < 10; rep++) {
        tp_graph_reset(g);
        tp_tensor *o = tp_tensor_new(g, 3, shape, 1);
        memcpy(o->data, q, sizeof(float) * N);
        tp_tensor *loss = tp_sum(g, o, w, 1.0f);
        double t0 = now_s();
        assert_int_equal(tp_graph_backward(g, loss, err, sizeof err), 0);
        best_loss = fmin(best_loss, now_s() - t0);
    }
    for (int causal = 0; causal <= 1; causal++) {
        double best_f = INFINITY, best_b = INFINITY;
        for (int rep = 0; rep < 10; rep++) {
            tp_graph_reset(g);
            tp_tensor *tq = tp_tensor_view(g, q, dq, 3, shape, TP_TENSOR_GRAD_OVERWRITE);
            tp_tensor *tk = tp_tensor_view(g, k, dk, 3, shape, TP_TENSOR_GRAD_OVERWRITE);
            tp_tensor *tv = tp_tensor_view(g, v, dv, 3, shape, TP_TENSOR_GRAD_OVERWRITE);
            double t0 = now_s();
            tp_tensor *o = tp_attention(g, tq, tk, tv, H, 1.0f, causal);
            double t1 = now_s();
            tp_tensor *loss = tp_sum(g, o, w, 1.0f);
            double t2 = now_s();
            assert_int_equal(tp_graph_backward(g, loss, err, sizeof err), 0);
            double t3 = now_s();
            best_f = fmin(best_f, t1 - t0);
            best_b = fmin(best_b, t3 - t2 - best_loss);
        }
        double flop_f = 4.0 * B * H * T * T * Dh, flop_b = 8.0 * B * H * T * T * Dh;
        print_message("attention B%d T%d H%d Dh%d %-10s forward %.2f ms (%.1f GFLOP/s), backward "
                      "%.2f ms (%.1f GFLOP/s), together %.1f GFLOP/s (flops of the dense sgemms, "
                      "the masked half included)\n",
                      B, T, H, Dh, causal ? "causal" : "not causal", best_f * 1e3,
                      flop_f / best_f * 1e-9, best_b * 1e3, flop_b / best_b * 1e-9,
                      (flop_f + flop_b) / (best_f + best_b) * 1e-9);
    }

    /* Layer norm on (64 * 64, 128), gamma and beta. */
    enum { LN = 64 * 64, LD = 128 };
    float *gamma = tp_params_alloc(LD), *beta = tp_params_alloc(LD);
    float *dgamma = tp_params_alloc(LD), *dbeta = tp_params_alloc(LD);
    assert_true(gamma && beta && dgamma && dbeta);
    fill(gamma, LD, 1.0f, &r);
    fill(beta, LD, 1.0f, &r);
    double best_f = INFINITY, best_b = INFINITY;
    for (int rep = 0; rep < 10; rep++) {
        tp_graph_reset(g);
        tp_tensor *tx = tp_tensor_view(g, q, dq, 2, (uint32_t[]){LN, LD}, TP_TENSOR_GRAD_OVERWRITE);
        tp_tensor *tg = tp_tensor_view(g, gamma, dgamma, 1, (uint32_t[]){LD}, 0);
        tp_tensor *tb = tp_tensor_view(g, beta, dbeta, 1, (uint32_t[]){LD}, 0);
        double t0 = now_s();
        tp_tensor *o = tp_layernorm(g, tx, tg, tb, 1e-6f);
        double t1 = now_s();
        tp_tensor *loss = tp_sum(g, o, w, 1.0f);
        double t2 = now_s();
        assert_int_equal(tp_graph_backward(g, loss, err, sizeof err), 0);
        double t3 = now_s();
        best_f = fmin(best_f, t1 - t0);
        best_b = fmin(best_b, t3 - t2 - best_loss);
    }
    double gb = (double)LN * LD * sizeof(float) * 1e-9;
    print_message("layernorm (%d, %d): forward %.3f ms (%.1f GB/s of x), backward %.3f ms "
                  "(x, gamma, beta)\n",
                  LN, LD, best_f * 1e3, gb / best_f, best_b * 1e3);
    tp_params_free(gamma);
    tp_params_free(beta);
    tp_params_free(dgamma);
    tp_params_free(dbeta);
    tp_graph_free(g);
    float *all[8] = {q, k, v, dq, dk, dv, w, big};
    for (int i = 0; i < 8; i++)
        tp_params_free(all[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_layernorm),
        cmocka_unit_test(test_grad_embedding),
        cmocka_unit_test(test_grad_add),
        cmocka_unit_test(test_grad_mul),
        cmocka_unit_test(test_grad_glu),
        cmocka_unit_test(test_grad_attention),
        cmocka_unit_test(test_grad_reshape_token_mean),
        cmocka_unit_test(test_grad_block),
        cmocka_unit_test(test_attention_reference),
        cmocka_unit_test(test_attention_causal_mask),
        cmocka_unit_test(test_attention_extreme_scores),
        cmocka_unit_test(test_layernorm_glu_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_determinism_and_allocations),
        cmocka_unit_test(test_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
