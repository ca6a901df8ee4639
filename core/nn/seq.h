/*
 * seq.h - the engine's sequence ops: layer norm, embedding lookup, residual / broadcast add,
 * elementwise product, gated linear units, multi-head dot-product attention (causal or not, self
 * or cross), and the two shape helpers a Transformer needs around them (a reshape, the mean over
 * tokens). SiLU is an activation like the others (TP_ACT_SILU, tp_silu in nn.h). Part of nn.h
 * (include that); implemented in seq.c. Every op follows nn.h's conventions: a new tensor of the
 * current step or NULL with the error recorded on the graph; backward accumulates.
 *
 * Tokens are (B, T, D) tensors, row-major: a matrix of B * T rows of D, so tp_linear applies a
 * projection to every token and returns (B, T, OC).
 *
 * Not here: the projections of attention (ordinary tp_linear calls), dropout on attention
 * probabilities, key padding masks, rotary or relative position encodings, a transposed matmul
 * for tied input / output embeddings.
 */
#ifndef TP_NN_SEQ_H
#define TP_NN_SEQ_H

/* Layer norm over the last dim, as Flax's LayerNorm: each row of x (..., D) becomes
 * (x - mean) / sqrt(var + eps) * gamma + beta with the biased variance (divided by D).
 * gamma (D) or NULL (scale 1), beta (D) or NULL (shift 0); eps >= 0 (ViT uses 1e-6). Keeps the
 * mean and 1 / std of each row (2 floats a row) for backward, which computes x, gamma and beta's
 * gradients. -> (..., D). */
tp_tensor *tp_layernorm(tp_graph *g, tp_tensor *x, tp_tensor *gamma, tp_tensor *beta, float eps);

/* Rows of table (V, D) picked by ids[0..n): -> (n, D), row i = table[ids[i]]. ids are copied; an
 * id outside [0, V) is an error (TP_ERANGE) naming it and its position. Backward adds each output
 * row's gradient into row ids[i] of the table's gradient, in order i = 0, 1, ... (deterministic,
 * repeated ids accumulate). Use tp_reshape to get (B, T, D) tokens. */
tp_tensor *tp_embedding(tp_graph *g, tp_tensor *table, const int32_t *ids, uint32_t n);

/* a + b -> a's shape. b has a's shape, or a's trailing dims (leading dims of size 1 in b are
 * ignored) and is broadcast over a's leading ones: (T, D) or (1, T, D) position embeddings added
 * to (B, T, D) tokens, a (D) bias to (B, T, D). Backward: a's gradient is the output's, b's is
 * the output's summed over the broadcast dims. The residual add of a Transformer block. */
tp_tensor *tp_add(tp_graph *g, tp_tensor *a, tp_tensor *b);

/* a * b elementwise -> a's shape, b broadcast as in tp_add (same shape, or a's trailing dims).
 * Backward: a's gradient is the output's times b, b's the output's times a summed over the
 * broadcast dims. For gates that tp_glu's halves of one tensor cannot express. */
tp_tensor *tp_mul(tp_graph *g, tp_tensor *a, tp_tensor *b);

/* Gated linear unit: x (..., 2F) -> (..., F), out = act(x[..., :F]) * x[..., F:]. The FIRST half
 * is the gate that goes through the activation, the second half passes linearly. So with one
 * projection W = [W1 | W2] (D, 2F) (W1 its first F columns), tp_glu(tp_linear(x, W), GELU) is
 * Flax/T5's GeGLU, gelu(x W1) * (x W2); SILU gives SwiGLU, TANH the GLU-tanh variant, NONE the
 * bilinear unit. act is one of NONE, RELU, TANH, GELU, SILU. Keeps act(x[..., :F]) ((..., F)
 * floats) for backward, which computes x's gradient. */
tp_tensor *tp_glu(tp_graph *g, tp_tensor *x, tp_act act);

/* Multi-head scaled dot-product attention. q (B, Tq, H * Dh), k and v (B, Tk, H * Dh) ->
 * (B, Tq, H * Dh). Head h is the contiguous slice [h Dh, (h + 1) Dh) of the last dim (the usual
 * reshape to (B, T, H, Dh)); per batch element b and head h,
 *     out_bh = softmax(temperature * q_bh k_bh^T / sqrt(Dh) + mask) v_bh,
 * the softmax over the keys (max subtracted). causal: query i sees keys j <= i only (needs
 * Tq == Tk); masked probabilities are exact zeros. Not causal, Tq and Tk are free (Tq = 1: a
 * learned query pooling the tokens, as in ViT's MAP head). q may also have batch 1 and is then
 * shared by every batch element (its gradient summed over them). temperature: finite; 1 is plain
 * attention.
 *
 * Memory: keeps the probabilities for backward, B * H * Tq * Tk floats (B = 64, H = 4, T = 64:
 * 4 MiB), plus Tq * Tk floats of scratch; without gradients only the scratch. Work: one sgemm
 * for q k^T and one for P v per (b, h) forward; backward dV = P^T dO, dP = dO v^T,
 * dS = P * (dP - rowsum(dP * P)), dQ = scale dS k, dK = scale dS^T q, all sgemm. */
tp_tensor *tp_attention(tp_graph *g, tp_tensor *q, tp_tensor *k, tp_tensor *v, uint32_t heads,
                        float temperature, int causal);

/* x with another shape of the same numel (a copy; backward adds the gradient back): the (n, D)
 * rows of tp_embedding as (B, T, D) tokens, say. */
tp_tensor *tp_reshape(tp_graph *g, tp_tensor *x, uint32_t ndim, const uint32_t *shape);

/* The mean over tokens, global average pooling of a ViT: x (B, T, D) -> (B, D). */
tp_tensor *tp_token_mean(tp_graph *g, tp_tensor *x);

#endif /* TP_NN_SEQ_H */
