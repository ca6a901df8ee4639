/*
 * seq_impl.h - what the sequence ops of seq.c (layer norm, embedding, attention, SiLU, GLU,
 * residual add) record on the tape: their op types (TP__SEQ_OPS, an X-macro that nn_impl.h
 * turns into tp_op_type values and ops.c into the cases that call tp__seq_backward) and what
 * their backward needs (struct tp__seq_saved, a member of tp_op's union). Not for use outside
 * core/nn.
 */
#ifndef TP_NN_SEQ_IMPL_H
#define TP_NN_SEQ_IMPL_H

#include <stdint.h>

/* XX(NAME) for each op type TP_OP_NAME of seq.c. */
#define TP__SEQ_OPS(XX)

struct tp__seq_saved {
    uint32_t dims[8]; /* the op's geometry */
};

#endif /* TP_NN_SEQ_IMPL_H */
