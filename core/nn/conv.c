/*
 * conv.c - the conv ops of the engine (see conv_impl.h and nn.h).
 */
#include "core/nn/nn_impl.h"

void tp__conv_backward(tp_op *op)
{
    (void)op;
}
