/*
 * nn_impl.h - what tensor.c and ops.c share inside core/nn: the graph, the tape entry, the
 * gradient-state bookkeeping. Not for use outside core/nn.
 *
 * Not here: anything public (see nn.h).
 */
#ifndef TP_NN_NN_IMPL_H
#define TP_NN_NN_IMPL_H

#include "core/nn/nn.h"

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
            float *pre; /* (B, OC) pre-activation, kept for GELU only */
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
    } u;
} tp_op;

#define TP__GRAPH_MSG_MAX 256

struct tp_graph {
    tp_arena *arena;
    tp_op *tape;       /* newest op */
    tp_tensor *views;  /* caller-memory tensors, for zeroing untouched OVERWRITE gradients */
    int status;        /* first error since reset */
    int backward_done; /* tp_graph_backward ran since reset */
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
/* "(128, 784)" into buf. */
const char *tp__shape_str(const tp_tensor *t, char *buf, size_t len);

/* The beta for an sgemm writing t->grad: 0 the first time (overwrite), 1 after. */
static inline float tp__grad_beta(tp_tensor *t)
{
    float beta = t->grad_state == TP__GRAD_FRESH ? 0.0f : 1.0f;
    t->grad_state = TP__GRAD_WRITTEN;
    return beta;
}

#endif /* TP_NN_NN_IMPL_H */
