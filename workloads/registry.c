/*
 * registry.c - the workloads compiled into trainperf (tp_workload_find / tp_workload_at), a
 * static table in the order `trainperf list` shows them.
 *
 * Not here: variants (each base workload's config file lists its own), plugins.
 */
#include "core/nn/workload.h"

#include <string.h>

#include "workloads/fmnist_mlp/fmnist_mlp.h"

static const tp_workload_desc *const registry[] = {
    &tp_fmnist_mlp_desc,
};

#define REGISTRY_SIZE (sizeof registry / sizeof registry[0])

const tp_workload_desc *tp_workload_find(const char *name)
{
    for (size_t i = 0; name && i < REGISTRY_SIZE; i++)
        if (!strcmp(registry[i]->name, name))
            return registry[i];
    return NULL;
}

const tp_workload_desc *tp_workload_at(size_t i)
{
    return i < REGISTRY_SIZE ? registry[i] : NULL;
}
