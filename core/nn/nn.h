/*
 * nn.h - the trainperf engine: float32 row-major tensors of up to 4 dims, a per-step arena,
 * and reverse-mode autodiff on OpenBLAS.
 *
 * How it is used (one training step):
 *
 *   tp_graph_reset(g);                                   // forget last step, keep the memory
 *   tp_tensor *x = tp_tensor_new(g, 2, (uint32_t[]){B, C}, 0);           // (B, C) data batch
 *   tp_tensor *w = tp_tensor_view(g, params + off, grad + off, 2, (uint32_t[]){C, OC},
 *                                 TP_TENSOR_GRAD_OVERWRITE);            // (C, OC) weight
 *   tp_tensor *h = tp_linear(g, x, w, b, TP_ACT_RELU);                   // (B, OC)
 *   ...
 *   tp_tensor *loss = tp_mean(g, tp_softmax_xent(g, logits, labels, 0.1f), NULL);   // (1)
 *   int rc = tp_graph_backward(g, loss, err, sizeof err);
 *
 * Every op records itself on the graph's tape (in the arena) during forward; backward replays
 * the tape in reverse as one switch over op types. Kernels accumulate into gradients (+=), as in
 * llm.c; the graph decides when a gradient buffer is first written, so it never zeroes memory
 * that the first contribution overwrites anyway (an sgemm with beta = 0).
 *
 * Conventions
 *   - Linear weights are stored (in, out), as Flax's Dense kernel: y (B, OC) = x (B, C) @ W
 *     (C, OC). A tensor of more than 2 dims is treated as (numel / last dim, last dim).
 *   - SiLU is x sigmoid(x), with the sigmoid written so that neither tail cancels or overflows.
 *   - GELU is the tanh approximation (GPT-2's and jax.nn.gelu's default), computed as
 *     x sigmoid(2u) so it has no cancellation for negative x. tanh is our own branch-free
 *     formula (within 2.3 ulp, NaN-preserving) so its loops vectorise; glibc's tanhf is ~8x
 *     slower.
 *   - MSE per example is sum over outputs of (y - t)^2 / 2, so its gradient is y - t.
 *   - Dropout is inverted dropout: kept values are scaled by 1 / (1 - rate) in training.
 *   - A tensor with grad == NULL is a constant: nothing is computed for it in backward (the
 *     data batch, so the first layer's dX sgemm is skipped).
 *
 * Errors
 *   Ops never abort on bad input. An op that fails (shape mismatch, out of memory) returns NULL
 *   and records the first error on the graph; later ops given a NULL input return NULL too, so
 *   a model is written straight through and checked once, with tp_graph_status() or by
 *   tp_graph_backward(). Asserts guard programmer errors only (a NULL graph).
 *
 * Determinism: no threads of its own, fixed summation orders; with the same OpenBLAS thread
 * count the same inputs give the same bits.
 *
 * Op families beyond the dense ops live in their own headers, included at the end: conv.h
 * (image ops) and seq.h (sequence ops).
 *
 * Not here: parameter storage policy beyond the flat-buffer helpers; optimizers (those are
 * plugins).
 */
#ifndef TP_NN_NN_H
#define TP_NN_NN_H

#include <stddef.h>
#include <stdint.h>

#include <trainperf/trainperf.h> /* tp_tensor_info, TP_MAX_DIMS, TP_E... codes */

#include "core/nn/rng.h"

/* ---------------------------------------------------------------------------------------- */
/* Arena: bump allocation, reset per step, memory kept */

/* All allocations are aligned to this many bytes (a cache line; enough for AVX-512). */
#define TP_ARENA_ALIGN 64

typedef struct tp_arena tp_arena;

/* An arena whose first block holds `initial_bytes` (0: a small default). NULL when out of
 * memory. The arena grows by new blocks when full; tp_arena_reset() merges them into one block
 * so that a step that repeats the previous one allocates nothing from the system. */
tp_arena *tp_arena_new(size_t initial_bytes);
void tp_arena_free(tp_arena *a); /* NULL is a no-op */
/* `bytes` of uninitialised memory, TP_ARENA_ALIGN-aligned; NULL when out of memory. */
void *tp_arena_alloc(tp_arena *a, size_t bytes);
/* Forget every allocation; keep the memory for the next round. */
void tp_arena_reset(tp_arena *a);
size_t tp_arena_used(const tp_arena *a);         /* bytes handed out since the last reset */
size_t tp_arena_capacity(const tp_arena *a);     /* bytes held */
uint64_t tp_arena_sys_allocs(const tp_arena *a); /* system allocations so far (for tests) */

/* ---------------------------------------------------------------------------------------- */
/* Tensors and the graph */

typedef struct tp_graph tp_graph;

/* A tensor of the current step. Fields are read-only for users except data / grad contents. */
typedef struct tp_tensor {
    float *data; /* (numel), row-major */
    float *grad; /* (numel), or NULL: a constant, no gradient flows into or through it */
    uint32_t ndim;
    uint32_t shape[TP_MAX_DIMS]; /* unused dims are 1 */
    uint64_t numel;
    uint32_t grad_state;         /* internal: whether grad holds a value yet */
    struct tp_tensor *next_view; /* internal: list of the graph's views */
} tp_tensor;

/* tp_tensor_view flags. */
/* The first gradient contribution overwrites `grad` instead of adding to it, and backward
 * zeroes it if nothing contributes: the "write the gradient" semantics of loss_and_grad without
 * a memset of the whole gradient buffer. Without this flag backward adds to what is there.
 * Two views whose gradients overlap must not both use it (one would overwrite the other). */
#define TP_TENSOR_GRAD_OVERWRITE 0x1u

/* A graph with an arena of `arena_bytes` to start with (0: a default; it grows as needed). */
int tp_graph_init(tp_graph **out, size_t arena_bytes, char *err, size_t errlen);
void tp_graph_free(tp_graph *g); /* NULL is a no-op */
/* Drop all tensors, the tape and the error state; keep the memory. */
void tp_graph_reset(tp_graph *g);
/* 0, or the first error recorded since the last reset (message copied to err). */
int tp_graph_status(const tp_graph *g, char *err, size_t errlen);
/* The graph's arena, for per-step scratch that lives until the next reset (labels, say). */
tp_arena *tp_graph_arena(tp_graph *g);
/* Scratch from the arena; records TP_ENOMEM on the graph and returns NULL when out of memory. */
void *tp_graph_alloc(tp_graph *g, size_t bytes);

/* A new tensor in the arena, data uninitialised. requires_grad: give it a gradient buffer (a
 * leaf whose gradient the caller wants to read after backward; it starts at zero). */
tp_tensor *tp_tensor_new(tp_graph *g, uint32_t ndim, const uint32_t *shape, int requires_grad);
/* A tensor over caller-owned memory (parameters, a data batch), valid until the next reset.
 * grad == NULL makes it a constant. flags: TP_TENSOR_GRAD_OVERWRITE or 0. */
tp_tensor *tp_tensor_view(tp_graph *g, float *data, float *grad, uint32_t ndim,
                          const uint32_t *shape, uint32_t flags);
/* Rows of a tensor seen as a matrix: numel / last dim. */
uint64_t tp_tensor_rows(const tp_tensor *t);

/* Backpropagate from `loss` (numel 1): d loss / d loss = 1, then every op in reverse. Views
 * with TP_TENSOR_GRAD_OVERWRITE that received nothing are zeroed. Returns the graph's first
 * error if the forward failed. Call at most once per reset. */
int tp_graph_backward(tp_graph *g, tp_tensor *loss, char *err, size_t errlen);

/* ---------------------------------------------------------------------------------------- */
/* Ops. Each returns a new tensor of the current step, or NULL (error recorded on the graph).
 * The output needs a gradient when any input does. */

typedef enum tp_act {
    TP_ACT_NONE = 0,
    TP_ACT_RELU = 1,
    TP_ACT_TANH = 2,
    TP_ACT_GELU = 3, /* tanh approximation */
    TP_ACT_SILU = 4  /* x sigmoid(x), also called swish */
} tp_act;

/* (B, C) @ (C, OC) -> (B, OC). */
tp_tensor *tp_matmul(tp_graph *g, tp_tensor *x, tp_tensor *w);
/* (B, OC) + (OC) broadcast over rows -> (B, OC). */
tp_tensor *tp_bias_add(tp_graph *g, tp_tensor *x, tp_tensor *b);
tp_tensor *tp_relu(tp_graph *g, tp_tensor *x);
tp_tensor *tp_tanh(tp_graph *g, tp_tensor *x);
tp_tensor *tp_gelu(tp_graph *g, tp_tensor *x);
tp_tensor *tp_silu(tp_graph *g, tp_tensor *x);
tp_tensor *tp_activation(tp_graph *g, tp_tensor *x, tp_act act); /* NONE returns x */
/* Fused act(x @ w + b): one sgemm and one pass over the output, forward and backward.
 * x (B, C), w (C, OC), b (OC) or NULL -> (B, OC). Its backward turns the output's gradient into
 * the pre-activation's, in place (nothing reads an output's gradient after its producer). */
tp_tensor *tp_linear(tp_graph *g, tp_tensor *x, tp_tensor *w, tp_tensor *b, tp_act act);
/* Inverted dropout with a mask drawn from tp_rng seeded by `seed` (same seed, same mask).
 * rate in [0, 1); rate 0 returns x itself. */
tp_tensor *tp_dropout(tp_graph *g, tp_tensor *x, float rate, uint64_t seed);
/* Softmax cross-entropy with label smoothing, per example: logits (B, K), labels (B) in
 * [0, K) -> (B) losses. The target is (1 - s) one_hot + s / K. labels are copied. */
tp_tensor *tp_softmax_xent(tp_graph *g, tp_tensor *logits, const int32_t *labels, float smoothing);
/* Squared error per example, sum over outputs / 2: pred (B, K) -> (B). The target is
 * one_hot(labels) when labels != NULL, else targets (B, K). Copied. */
tp_tensor *tp_mse(tp_graph *g, tp_tensor *pred, const int32_t *labels, const float *targets);
/* scale * sum_i w_i x_i over all elements (w_i = 1 when weights == NULL) -> (1). Summed in
 * double. weights are copied. */
tp_tensor *tp_sum(tp_graph *g, tp_tensor *x, const float *weights, float scale);
/* tp_sum with scale 1 / numel: the (weighted) mean. */
tp_tensor *tp_mean(tp_graph *g, tp_tensor *x, const float *weights);

/* ---------------------------------------------------------------------------------------- */
/* Flat parameter buffers (the llm.c layout) */

/* One parameter tensor to lay out. */
typedef struct tp_param_spec {
    const char *name; /* must outlive the table built from it */
    tp_param_role role;
    uint32_t ndim;
    uint32_t shape[TP_MAX_DIMS];
} tp_param_spec;

/* Fill infos[0..n) from specs, contiguously from offset 0 in order; *total = floats in all.
 * TP_EINVAL with a message on a bad spec (ndim 0 or > TP_MAX_DIMS, a zero dim). */
int tp_params_layout(tp_tensor_info *infos, const tp_param_spec *specs, uint32_t n, uint64_t *total,
                     char *err, size_t errlen);
/* n floats, zeroed, 64-byte aligned; NULL when out of memory. Free with tp_params_free. */
float *tp_params_alloc(uint64_t n);
void tp_params_free(float *p); /* NULL is a no-op */

/* Fill p[0..n) with normal(0, std) / uniform [-limit, limit) numbers from r. */
void tp_fill_normal(float *p, uint64_t n, float std, tp_rng *r);
void tp_fill_uniform(float *p, uint64_t n, float limit, tp_rng *r);

/* ---------------------------------------------------------------------------------------- */
/* BLAS */

/* OpenBLAS 0.3.21 does not know some recent CPUs and falls back to its oldest x86-64 kernels
 * (core "Prescott"), several times slower. Returns 1 and writes advice (the OPENBLAS_CORETYPE
 * value to set in the environment of the process before it starts) when the core OpenBLAS chose
 * is weaker than what this CPU supports; 0 and a one-line description otherwise. */
int tp_blas_check(char *msg, size_t msglen);
/* The OPENBLAS_CORETYPE that would give this process's CPU faster kernels than the ones
 * OpenBLAS picked ("SkylakeX", "Haswell"), or NULL when its choice is already right. */
const char *tp_blas_suggested_coretype(void);
/* All eigenpairs of the symmetric n x n row-major matrix a (double, overwritten) by LAPACK's
 * dsyevd: eigenvalues ascending into w (n), eigenvector k into column k of a. TP_EINVAL for
 * n == 0 or n > 46340, TP_ERANGE for a non-finite entry or a LAPACK failure, TP_ENOMEM. */
int tp_blas_sym_eig(uint32_t n, double *a, double *w);

/* ---------------------------------------------------------------------------------------- */
/* Op families in their own files */

#include "core/nn/conv.h" /* convolution, pooling, batch norm */
#include "core/nn/seq.h"  /* layer norm, embedding, attention, SiLU, GLU, residual add */

#endif /* TP_NN_NN_H */
