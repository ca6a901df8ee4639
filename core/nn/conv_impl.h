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
#define TP__CONV_OPS(XX)

struct tp__conv_saved {
    uint32_t dims[8]; /* the op's geometry */
};

#endif /* TP_NN_CONV_IMPL_H */
