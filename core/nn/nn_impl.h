/*
 * nn_impl.h - what tensor.c and ops.c share inside core/nn: the graph, the tape entry, the
 * gradient-state bookkeeping. Not for use outside core/nn.
 *
 * Not here: anything public (see nn.h).
 */
#ifndef TP_NN_NN_IMPL_H
#define TP_NN_NN_IMPL_H

#include <string.h>

#include "core/nn/nn.h"

#include "core/nn/conv_impl.h" /* image ops: TP__CONV_OPS, struct tp__conv_saved */
#include "core/nn/seq_impl.h"  /* sequence ops: TP__SEQ_OPS, struct tp__seq_saved */

/* tp_tensor.grad_state */
enum {
    TP__GRAD_NONE = 0,    /* grad == NULL */
    TP__GRAD_FRESH = 1,   /* grad allocated, nothing written yet: the first writer overwrites */
    TP__GRAD_WRITTEN = 2, /* grad holds a value: writers add to it */
};

typedef enum tp_op_type {
    TP_OP_MATMUL = 1,
    TP_OP_BIAS_ADD,
    TP_OP_RELU,
    TP_OP_TANH,
    TP_OP_GELU,
    TP_OP_LINEAR,
    TP_OP_DROPOUT,
    TP_OP_SOFTMAX_XENT,
    TP_OP_MSE,
    TP_OP_SUM,
    TP_OP_SILU,
#define TP__OP_ENUM(name) TP_OP_##name,
    TP__CONV_OPS(TP__OP_ENUM) /* conv.c */
    TP__SEQ_OPS(TP__OP_ENUM)  /* seq.c */
#undef TP__OP_ENUM
} tp_op_type;

/* One entry of the tape: an op, its output, its inputs and what its backward needs. */
typedef struct tp_op {
    tp_op_type type;
    tp_tensor *out;
    tp_tensor *in[3];
    struct tp_op *prev; /* the op recorded before this one */
    union {
        struct {
            tp_act act;
            float *pre; /* (B, OC) pre-activation, kept for GELU and SiLU only */
        } linear;
        struct {
            float *mask; /* (numel) 0 or 1 / (1 - rate) */
        } dropout;
        struct {
            int32_t *labels; /* (B) */
            float *probs;    /* (B, K) softmax, NULL when logits need no gradient */
            float smoothing;
        } xent;
        struct {
            int32_t *labels; /* (B) or NULL */
            float *targets;  /* (B, K) or NULL */
        } mse;
        struct {
            float *weights; /* (numel) or NULL */
            float scale;
        } sum;
        struct tp__conv_saved conv; /* conv.c's ops */
        struct tp__seq_saved seq;   /* seq.c's ops */
    } u;
} tp_op;

#define TP__GRAPH_MSG_MAX 256

struct tp_graph {
    tp_arena *arena;
    tp_op *tape;        /* newest op */
    tp_tensor *views;   /* caller-memory tensors, for zeroing untouched OVERWRITE gradients */
    int status;         /* first error since reset */
    int backward_done;  /* tp_graph_backward ran since reset */
    uint32_t conv_algo; /* tp_conv_algo of tp_conv_set_algo (0, AUTO, from tp_graph_init's calloc);
                           kept across resets */
    char msg[TP__GRAPH_MSG_MAX];
};

/* Record the first error of the step (later ones are dropped: they are usually its echo). */
void tp__graph_fail(tp_graph *g, int code, const char *fmt, ...) TP_PRINTF(3, 4);
/* An op's output: data from the arena, a FRESH gradient buffer when needs_grad. */
tp_tensor *tp__tensor_out(tp_graph *g, const char *op, uint32_t ndim, const uint32_t *shape,
                          int needs_grad);
/* Append an op to the tape. NULL (error recorded) when out of memory. */
tp_op *tp__op_push(tp_graph *g, tp_op_type type, tp_tensor *out);
/* Backward of one op; ops.c. Called only when op->out's gradient has been written. */
void tp__op_backward(tp_op *op);
/* The gradient of t, ready to accumulate into (zeroed the first time). */
float *tp__grad_acc(tp_tensor *t);
/* Validate an input: NULL means an earlier op failed (its error is already recorded). */
int tp__input_ok(tp_graph *g, const char *op, const char *name, const tp_tensor *t);
/* An op's output with t's dims, the last replaced by `last`. */
tp_tensor *tp__out_like(tp_graph *g, const char *op, const tp_tensor *t, uint32_t last,
                        int needs_grad);
/* Backward of the ops of conv.c / seq.c (one switch each, over their op types). */
void tp__conv_backward(tp_op *op);
void tp__seq_backward(tp_op *op);
/* The activations of ops.c for the other families (GLU in seq.c), over n contiguous floats:
 * out = act(inp) (out may be inp), and dinp += dout * act'(inp). */
void tp__act_forward(float *out, const float *inp, size_t n, tp_act act);
void tp__act_backward(float *dinp, const float *dout, const float *inp, size_t n, tp_act act);
/* "(128, 784)" into buf. */
const char *tp__shape_str(const tp_tensor *t, char *buf, size_t len);

/* Float bits for branch-free kernels (GCC keeps float compares as branches, so selects are
 * done on the bits and the loops vectorise). */
static inline float tp__bits_to_float(int32_t i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

static inline int32_t tp__float_to_bits(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

/* mask ? a : b, mask all ones or all zeros. */
static inline float tp__select_bits(int32_t mask, float a, float b)
{
    return tp__bits_to_float((tp__float_to_bits(a) & mask) | (tp__float_to_bits(b) & ~mask));
}

/* The beta for an sgemm writing t->grad: 0 the first time (overwrite), 1 after. */
static inline float tp__grad_beta(tp_tensor *t)
{
    float beta = t->grad_state == TP__GRAD_FRESH ? 0.0f : 1.0f;
    t->grad_state = TP__GRAD_WRITTEN;
    return beta;
}

#endif /* TP_NN_NN_IMPL_H */
