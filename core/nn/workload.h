/*
 * workload.h - what a workload gives the worker: data, a model in the flat parameter layout,
 * its loss and gradient on a batch of training indices, and its evaluation metrics.
 *
 * A workload knows nothing of the host, plugins or the clock. It is created from the options
 * of its libconfig file (the `data` and `model` groups, flattened to "data.dir" style keys and
 * handed over by core/config.c with their line numbers), owns its datasets, and is used from
 * one thread. Workloads register themselves in workloads/registry.c.
 *
 * Not here: timing, targets, budgets (those are protocol settings read by core/config.c).
 */
#ifndef TP_NN_WORKLOAD_H
#define TP_NN_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#include <trainperf/trainperf.h> /* tp_tensor_info, tp_loss_opts, TP_E... codes */

typedef enum tp_split { TP_SPLIT_TRAIN = 0, TP_SPLIT_VALIDATION = 1, TP_SPLIT_TEST = 2 } tp_split;

/* One option from the workload's config file. */
typedef struct tp_wl_option {
    const char *key; /* "data.dir", "model.hidden_width", ... */
    const char *str; /* string value, or NULL for a number */
    double num;      /* numeric value when str == NULL */
    int line;        /* line in the config file, 0 if given on the command line */
} tp_wl_option;

typedef struct tp_wl_params {
    const char *config_file;     /* for error messages: "file:line: key: ..." */
    const tp_wl_option *options; /* unknown keys are an error */
    size_t num_options;
} tp_wl_params;

typedef struct tp_eval_result {
    double metric;     /* the workload's metric (accuracy for fmnist_mlp) */
    double loss;       /* mean loss over the split */
    uint64_t examples; /* examples evaluated */
} tp_eval_result;

typedef struct tp_workload tp_workload;

/* A host-internal loss flag beside the SDK's TP_LOSS_... ones (never accepted from a plugin:
 * the host API strips it): train mode (batch statistics, dropout as asked) without updating
 * any model state, for diagnostics that must not change the training (the sharpness
 * objective of core/hessian.c). Workloads without model state ignore it. */
#define TP_WL_LOSS_FROZEN_STATE 0x80000000u

/* Operations of one workload instance. All return 0 or a negative TP_E... code with a message
 * written to err (errlen bytes). */
typedef struct tp_workload_vtable {
    /* Fill the flat parameter buffer (num_params floats) with a fresh initialisation. */
    int (*init_params)(tp_workload *w, uint64_t seed, float *params, char *err, size_t errlen);
    /* Mean over the batch of weight_i * loss_i (weight 1 when weights == NULL) into *loss;
     * when grad != NULL its gradient is written (overwritten, not accumulated) into grad
     * (num_params floats); when per_example != NULL the n unweighted per-example losses go
     * there. `dropout_seed` seeds the dropout masks of this call (ignored in eval mode).
     * Indices are into the training split; out-of-range indices are TP_ERANGE. */
    int (*loss_and_grad)(tp_workload *w, const float *params, const uint32_t *idx,
                         const float *weights, uint32_t n, const tp_loss_opts *opts,
                         uint64_t dropout_seed, float *grad, double *loss, float *per_example,
                         char *err, size_t errlen);
    /* Metric and mean loss over a whole split, eval mode. */
    int (*evaluate)(tp_workload *w, const float *params, tp_split split, tp_eval_result *out,
                    char *err, size_t errlen);
    /* free(NULL) is a no-op. */
    void (*free)(tp_workload *w);
} tp_workload_vtable;

/* Every instance starts with this header; the rest is the workload's own. */
struct tp_workload {
    const tp_workload_vtable *vt;
    const char *name;       /* "fmnist_mlp" */
    const char *metric;     /* "accuracy" */
    int maximize;           /* 1: higher metric is better */
    uint64_t split_size[3]; /* examples per tp_split */
    uint64_t num_params;    /* floats in the flat buffer */
    uint32_t num_tensors;
    const tp_tensor_info *tensors; /* num_tensors, owned by the workload */
};

/* A registered workload family. */
typedef struct tp_workload_desc {
    const char *name;        /* matches the config file's `name` */
    const char *description; /* one line */
    int (*create)(const tp_wl_params *params, tp_workload **out, char *err, size_t errlen);
    /* Known without creating an instance (the host shows them without loading data); must
     * equal the instance's fields. */
    const char *metric; /* "accuracy" */
    int maximize;
    /* Optional (NULL: nothing to do). Run by the host, outside any sandbox, before a worker
     * creates the workload: produce data that needs a program run or a download-free cache
     * build (kjv_lm dumps the Bible with Debian's `bible` into its data directory). Must be
     * idempotent and cheap once done, and write its files atomically (several hosts may run
     * it at once). 0 or a negative TP_E... code with a message naming what to install. */
    int (*prepare)(const tp_wl_params *params, char *err, size_t errlen);
} tp_workload_desc;

/* workloads/registry.c: the workloads compiled in. */
const tp_workload_desc *tp_workload_find(const char *name);
const tp_workload_desc *tp_workload_at(size_t i); /* NULL past the end */
/* d->prepare(params) when the family has one; 0 otherwise. */
int tp_workload_prepare(const tp_workload_desc *d, const tp_wl_params *params, char *err,
                        size_t errlen);

#endif /* TP_NN_WORKLOAD_H */
