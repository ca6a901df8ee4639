/*
 * conv.h - the engine's image ops: 2-D convolution, max / average / global average pooling, batch norm. Part of nn.h (include that); implemented in conv.c. Every op
 * follows nn.h's conventions: a new tensor of the current step or NULL with the error recorded
 * on the graph; backward accumulates.
 */
#ifndef TP_NN_CONV_H
#define TP_NN_CONV_H

#endif /* TP_NN_CONV_H */
