/*
 * fmnist_vit.h - the fmnist_vit workload's descriptor (the registry declares it itself; tests
 * and tools may include this).
 *
 * Not here: the options and model (documented at the top of fmnist_vit.c).
 */
#ifndef TP_WORKLOADS_FMNIST_VIT_H
#define TP_WORKLOADS_FMNIST_VIT_H

#include "core/nn/workload.h"

extern const tp_workload_desc tp_fmnist_vit_desc;

#endif /* TP_WORKLOADS_FMNIST_VIT_H */
