/*
 * seq.c - the seq ops of the engine (see seq_impl.h and nn.h).
 */
#include "core/nn/nn_impl.h"

void tp__seq_backward(tp_op *op)
{
    (void)op;
}
