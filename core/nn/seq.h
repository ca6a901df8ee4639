/*
 * seq.h - the engine's sequence ops: layer norm, embedding lookup, causal multi-head self-attention, SiLU, GLU, residual add. Part of nn.h (include that); implemented in seq.c. Every op
 * follows nn.h's conventions: a new tensor of the current step or NULL with the error recorded
 * on the graph; backward accumulates.
 */
#ifndef TP_NN_SEQ_H
#define TP_NN_SEQ_H

#endif /* TP_NN_SEQ_H */
