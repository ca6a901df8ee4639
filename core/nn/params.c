/*
 * params.c - flat parameter buffers of core/nn (the llm.c layout): laying out a table of named
 * tensors contiguously in one float buffer, allocating such buffers 64-byte aligned, and
 * filling them with seeded random numbers for initialisation.
 *
 * Not here: which initialisation a model uses (its workload decides), optimizer state.
 */
#include "core/nn/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tp_params_layout(tp_tensor_info *infos, const tp_param_spec *specs, uint32_t n, uint64_t *total,
                     char *err, size_t errlen)
{
    uint64_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        const tp_param_spec *s = &specs[i];
        tp_tensor_info *t = &infos[i];
        if (!s->name || s->ndim < 1 || s->ndim > TP_MAX_DIMS) {
            snprintf(err, errlen, "tp_params_layout: tensor %u (%s) has %u dims; 1 to %d", i,
                     s->name ? s->name : "unnamed", s->ndim, TP_MAX_DIMS);
            return TP_EINVAL;
        }
        memset(t, 0, sizeof *t);
        TP_STRUCT_INIT(t, tp_tensor_info);
        t->name = s->name;
        t->role = s->role;
        t->ndim = s->ndim;
        t->numel = 1;
        for (uint32_t d = 0; d < TP_MAX_DIMS; d++) {
            t->shape[d] = d < s->ndim ? s->shape[d] : 1;
            if (t->shape[d] == 0 || t->numel > ((uint64_t)1 << 40) / t->shape[d]) {
                snprintf(err, errlen, "tp_params_layout: tensor %s has %s dim %u", s->name,
                         t->shape[d] ? "a too large" : "a zero", d);
                return TP_EINVAL;
            }
            t->numel *= t->shape[d];
        }
        t->offset = off;
        off += t->numel;
    }
    *total = off;
    return 0;
}

float *tp_params_alloc(uint64_t n)
{
    size_t bytes = (size_t)((n ? n : 1) * sizeof(float));
    bytes = (bytes + TP_ARENA_ALIGN - 1) / TP_ARENA_ALIGN * TP_ARENA_ALIGN;
    float *p = aligned_alloc(TP_ARENA_ALIGN, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void tp_params_free(float *p)
{
    free(p);
}

void tp_fill_normal(float *p, uint64_t n, float std, tp_rng *r)
{
    for (uint64_t i = 0; i < n; i++)
        p[i] = (float)(std * tp_rng_normal(r));
}

void tp_fill_uniform(float *p, uint64_t n, float limit, tp_rng *r)
{
    for (uint64_t i = 0; i < n; i++)
        p[i] = (float)(limit * (2.0 * tp_rng_uniform(r) - 1.0));
}
