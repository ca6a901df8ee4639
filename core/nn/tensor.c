/*
 * tensor.c - tensors and the graph of core/nn: creation in the arena, views over caller
 * memory, the sticky error state, and the backward driver that replays the tape in reverse.
 *
 * Not here: the ops and their kernels (ops.c), the arena itself (arena.c).
 */
#include "core/nn/nn_impl.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Graph */

int tp_graph_init(tp_graph **out, size_t arena_bytes, char *err, size_t errlen)
{
    *out = NULL;
    tp_graph *g = calloc(1, sizeof *g);
    if (!g || !(g->arena = tp_arena_new(arena_bytes))) {
        free(g);
        snprintf(err, errlen, "tp_graph_init: out of memory for a %zu-byte arena", arena_bytes);
        return TP_ENOMEM;
    }
    *out = g;
    return 0;
}

void tp_graph_free(tp_graph *g)
{
    if (!g)
        return;
    tp_arena_free(g->arena);
    free(g);
}

void tp_graph_reset(tp_graph *g)
{
    assert(g && "tp_graph_reset: graph is NULL (did tp_graph_init succeed?)");
    tp_arena_reset(g->arena);
    g->tape = NULL;
    g->views = NULL;
    g->status = 0;
    g->backward_done = 0;
    g->msg[0] = '\0';
}

int tp_graph_status(const tp_graph *g, char *err, size_t errlen)
{
    if (g->status && err && errlen)
        snprintf(err, errlen, "%s", g->msg);
    return g->status;
}

tp_arena *tp_graph_arena(tp_graph *g)
{
    return g->arena;
}

void tp__graph_fail(tp_graph *g, int code, const char *fmt, ...)
{
    if (g->status)
        return;
    g->status = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->msg, sizeof g->msg, fmt, ap);
    va_end(ap);
}

void *tp_graph_alloc(tp_graph *g, size_t bytes)
{
    void *p = tp_arena_alloc(g->arena, bytes);
    if (!p)
        tp__graph_fail(g, TP_ENOMEM, "out of memory: the step arena could not grow by %zu bytes",
                       bytes);
    return p;
}

/* ---------------------------------------------------------------------------------------- */
/* Tensors */

const char *tp__shape_str(const tp_tensor *t, char *buf, size_t len)
{
    int k = snprintf(buf, len, "(");
    for (uint32_t i = 0; i < t->ndim && k > 0 && (size_t)k < len; i++)
        k += snprintf(buf + k, len - (size_t)k, i ? ", %u" : "%u", t->shape[i]);
    if (k > 0 && (size_t)k < len)
        snprintf(buf + k, len - (size_t)k, ")");
    return buf;
}

uint64_t tp_tensor_rows(const tp_tensor *t)
{
    return t->numel / t->shape[t->ndim - 1];
}

#define TP__MAX_NUMEL ((uint64_t)1 << 40)

/* A tensor header with a checked shape, or NULL (error recorded). */
static tp_tensor *tensor_header(tp_graph *g, const char *op, uint32_t ndim, const uint32_t *shape)
{
    if (ndim < 1 || ndim > TP_MAX_DIMS) {
        tp__graph_fail(g, TP_EINVAL, "%s: %u dims; a tensor has 1 to %d", op, ndim, TP_MAX_DIMS);
        return NULL;
    }
    uint64_t numel = 1;
    for (uint32_t i = 0; i < ndim; i++) {
        if (shape[i] == 0) {
            tp__graph_fail(g, TP_EINVAL, "%s: dim %u is 0; empty tensors are not supported", op, i);
            return NULL;
        }
        if (numel > TP__MAX_NUMEL / shape[i]) {
            tp__graph_fail(g, TP_ERANGE, "%s: more than 2^40 elements", op);
            return NULL;
        }
        numel *= shape[i];
    }
    tp_tensor *t = tp_graph_alloc(g, sizeof *t);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    for (uint32_t i = 0; i < TP_MAX_DIMS; i++)
        t->shape[i] = i < ndim ? shape[i] : 1;
    t->numel = numel;
    return t;
}

tp_tensor *tp__tensor_out(tp_graph *g, const char *op, uint32_t ndim, const uint32_t *shape,
                          int needs_grad)
{
    tp_tensor *t = tensor_header(g, op, ndim, shape);
    if (!t)
        return NULL;
    t->data = tp_graph_alloc(g, t->numel * sizeof(float));
    if (!t->data)
        return NULL;
    if (needs_grad) {
        t->grad = tp_graph_alloc(g, t->numel * sizeof(float));
        if (!t->grad)
            return NULL;
        t->grad_state = TP__GRAD_FRESH;
    }
    return t;
}

tp_tensor *tp_tensor_new(tp_graph *g, uint32_t ndim, const uint32_t *shape, int requires_grad)
{
    assert(g && "tp_tensor_new: graph is NULL");
    tp_tensor *t = tp__tensor_out(g, "tp_tensor_new", ndim, shape, requires_grad);
    if (t && t->grad) {
        memset(t->grad, 0, t->numel * sizeof(float));
        t->grad_state = TP__GRAD_WRITTEN;
    }
    return t;
}

tp_tensor *tp_tensor_view(tp_graph *g, float *data, float *grad, uint32_t ndim,
                          const uint32_t *shape, uint32_t flags)
{
    assert(g && "tp_tensor_view: graph is NULL");
    if (!data) {
        tp__graph_fail(g, TP_EINVAL, "tp_tensor_view: data is NULL");
        return NULL;
    }
    tp_tensor *t = tensor_header(g, "tp_tensor_view", ndim, shape);
    if (!t)
        return NULL;
    t->data = data;
    t->grad = grad;
    if (grad)
        t->grad_state = (flags & TP_TENSOR_GRAD_OVERWRITE) ? TP__GRAD_FRESH : TP__GRAD_WRITTEN;
    t->next_view = g->views;
    g->views = t;
    return t;
}

tp_op *tp__op_push(tp_graph *g, tp_op_type type, tp_tensor *out)
{
    tp_op *op = tp_graph_alloc(g, sizeof *op);
    if (!op)
        return NULL;
    memset(op, 0, sizeof *op);
    op->type = type;
    op->out = out;
    op->prev = g->tape;
    g->tape = op;
    return op;
}

/* ---------------------------------------------------------------------------------------- */
/* Backward */

int tp_graph_backward(tp_graph *g, tp_tensor *loss, char *err, size_t errlen)
{
    assert(g && "tp_graph_backward: graph is NULL");
    if (g->status || !loss) {
        if (!g->status)
            tp__graph_fail(g, TP_EINVAL, "tp_graph_backward: loss is NULL");
        return tp_graph_status(g, err, errlen);
    }
    if (g->backward_done) {
        /* A second pass would add the gradients again and see the fused ops' in-place work. */
        tp__graph_fail(g, TP_ESTATE, "tp_graph_backward: called twice since tp_graph_reset");
        return tp_graph_status(g, err, errlen);
    }
    g->backward_done = 1;
    if (loss->numel != 1) {
        char s[64];
        tp__graph_fail(g, TP_EINVAL, "tp_graph_backward: the loss must have one element, not %s",
                       tp__shape_str(loss, s, sizeof s));
        return tp_graph_status(g, err, errlen);
    }
    if (loss->grad) {
        loss->grad[0] = loss->grad_state == TP__GRAD_WRITTEN ? loss->grad[0] + 1.0f : 1.0f;
        loss->grad_state = TP__GRAD_WRITTEN;
        for (tp_op *op = g->tape; op; op = op->prev) {
            /* An op whose output received no gradient is not on the path to the loss. */
            if (op->out->grad_state == TP__GRAD_WRITTEN)
                tp__op_backward(op);
        }
    }
    for (tp_tensor *v = g->views; v; v = v->next_view) {
        if (v->grad_state == TP__GRAD_FRESH) {
            memset(v->grad, 0, v->numel * sizeof(float));
            v->grad_state = TP__GRAD_WRITTEN;
        }
    }
    return 0;
}
