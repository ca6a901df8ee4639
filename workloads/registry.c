/*
 * registry.c - the workloads compiled into trainperf (tp_workload_find / tp_workload_at): a
 * static table built from registry_list.h, which CMake generates from every
 * workloads/<family>/workload.cmake (TP_WORKLOAD(name) each, in name order, the order
 * `trainperf list` shows them). Family `name` defines `const tp_workload_desc tp_<name>_desc`.
 *
 * Not here: variants (each base workload's config file lists its own), plugins.
 */
#include "core/nn/workload.h"

#include <string.h>

#define TP_WORKLOAD(name) extern const tp_workload_desc tp_##name##_desc;
#include "registry_list.h"
#undef TP_WORKLOAD

static const tp_workload_desc *const registry[] = {
#define TP_WORKLOAD(name) &tp_##name##_desc,
#include "registry_list.h"
#undef TP_WORKLOAD
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

int tp_workload_prepare(const tp_workload_desc *d, const tp_wl_params *params, char *err,
                        size_t errlen)
{
    return d->prepare ? d->prepare(params, err, errlen) : 0;
}
