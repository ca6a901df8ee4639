/*
 * fmnist_resnet.h - the fmnist_resnet workload's descriptor (workloads/registry.c declares it
 * too) and a read-only view of its batch-norm running statistics, for tests.
 *
 * Not here: the options and model (documented at the top of fmnist_resnet.c).
 */
#ifndef TP_WORKLOADS_FMNIST_RESNET_H
#define TP_WORKLOADS_FMNIST_RESNET_H

#include <stdint.h>

#include "core/nn/workload.h"

extern const tp_workload_desc tp_fmnist_resnet_desc;

/* The batch-norm running statistics of an fmnist_resnet instance: for each batch-norm layer in
 * forward order, C running means then C running variances; *n gets the number of floats. Model
 * state, not parameters: reset by init_params, updated by train-mode loss_and_grad. Valid until
 * the workload is freed; NULL (and *n = 0) when w is not an fmnist_resnet. */
const float *tp_fmnist_resnet_bn_state(const tp_workload *w, uint64_t *n);

#endif /* TP_WORKLOADS_FMNIST_RESNET_H */
