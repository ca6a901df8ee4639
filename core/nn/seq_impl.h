/*
 * seq_impl.h - what the sequence ops of seq.c (layer norm, embedding, add, multiply, GLU,
 * attention, reshape, token mean) record on the tape: their op types (TP__SEQ_OPS, an X-macro
 * that nn_impl.h turns into tp_op_type values and ops.c into the cases that call
 * tp__seq_backward) and what their backward needs (struct tp__seq_saved, a member of tp_op's
 * union). Not for use outside core/nn.
 */
#ifndef TP_NN_SEQ_IMPL_H
#define TP_NN_SEQ_IMPL_H

#include <stdint.h>

/* XX(NAME) for each op type TP_OP_NAME of seq.c. */
#define TP__SEQ_OPS(XX)                                                                            \
    XX(LAYERNORM) XX(EMBEDDING) XX(ADD) XX(MUL) XX(GLU) XX(ATTENTION) XX(RESHAPE) XX(TOKEN_MEAN)

/* Inputs are in tp_op.in[]: layernorm x, gamma, beta; embedding table; add and mul a, b; glu x;
 * attention q, k, v; reshape x; token mean x. */
struct tp__seq_saved {
    union {
        struct {
            float *mean, *rstd; /* (rows) each: the row's mean and 1 / sqrt(var + eps) */
        } ln;
        struct {
            int32_t *ids; /* (n), checked */
        } emb;
        struct {
            float *gate; /* (rows, F): act(x[..., :F]); backward reuses it as scratch */
            int act;     /* tp_act */
        } glu;
        struct tp__seq_attn {
            float *probs;  /* (B, H, Tq, Tk) softmax probabilities */
            float *dprobs; /* (Tq, Tk) scratch for dP / dS, NULL when q and k need no gradient */
            uint32_t B, qB, Tq, Tk, H, Dh; /* qB: q's batch, B or 1 */
            float scale;                   /* temperature / sqrt(Dh) */
            int causal;
        } attn;
    };
};

#endif /* TP_NN_SEQ_IMPL_H */
