/*
 * fmnist_mlp.h - the fmnist_mlp workload's descriptor, for workloads/registry.c.
 *
 * Not here: the options and model (documented at the top of fmnist_mlp.c).
 */
#ifndef TP_WORKLOADS_FMNIST_MLP_H
#define TP_WORKLOADS_FMNIST_MLP_H

#include "core/nn/workload.h"

extern const tp_workload_desc tp_fmnist_mlp_desc;

#endif /* TP_WORKLOADS_FMNIST_MLP_H */
