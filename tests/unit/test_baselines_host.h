/*
 * test_baselines_host.h - a mock tp_host for driving submission plugins in unit tests, and a
 * tiny dlopen loader that does not use core/plugin.h.
 *
 * The mock problem is a separable quadratic over n parameters,
 *     L(theta) = 0.5 * sum_i a_i (theta_i - c_i)^2,    dL/dtheta_i = a_i (theta_i - c_i),
 * whose gradient ignores the batch (it is the "full batch" loss). The parameter buffer carries a
 * small table of named tensors (weight, bias, norm scale) when n is the default 10.
 *
 * per_example_loss gives every example the batch loss, or a per-index table the test sets
 * (example_loss). sym_eig is the real host's (LAPACK from OpenBLAS, core/hostapi.c).
 *
 * The mock tracks every host->alloc and can be told to fail the k-th one, to fail
 * loss_and_grad with a code, or to freeze the gradient (write it on the first call only, for
 * timing the optimizer's own loop). Hyperparameters are looked up in values the test set, then
 * in the plugin's declared defaults; an undeclared name gives TP_ENOENT and is counted.
 *
 * Not here: any real model, data or sandbox; the host's checks of plugin behaviour.
 */
#ifndef TEST_BASELINES_HOST_H
#define TEST_BASELINES_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <trainperf/trainperf.h>

#define MOCK_MAX_ALLOCS  64
#define MOCK_MAX_HPARAMS 16
#define MOCK_MAX_TENSORS 4

struct tp_ctx {
    /* The problem. */
    uint64_t n;
    float *params; /* (n) 64-byte aligned, the flat parameter buffer */
    double *a;     /* (n) curvature of the quadratic, > 0 */
    double *c;     /* (n) its minimiser */
    uint32_t num_tensors;
    tp_tensor_info tensors[MOCK_MAX_TENSORS];

    /* Hyperparameters: the test's values, then the defaults of `desc`. */
    const tp_plugin_desc *desc;
    uint32_t num_hparams;
    const char *hparam_names[MOCK_MAX_HPARAMS];
    double hparam_values[MOCK_MAX_HPARAMS];
    uint32_t hparam_unknown; /* lookups of undeclared names */

    tp_train_state ts;
    uint64_t rng;
    uint32_t next_index; /* next value next_indices hands out (mod train_size) */

    /* Allocations. */
    void *allocs[MOCK_MAX_ALLOCS]; /* outstanding; NULL slots are free */
    uint32_t outstanding;
    uint32_t alloc_calls;
    int32_t fail_alloc_at; /* fail the alloc call with this 0-based number; -1: never */
    uint32_t bad_frees;    /* frees of pointers the mock did not hand out */

    /* Per-example losses: when set (train_size floats), per_example_loss returns
     * example_loss[idx[j]] for example j instead of the quadratic's loss. */
    const float *example_loss;
    uint32_t per_example_calls;
    uint64_t per_example_examples; /* examples scored over all calls */

    /* loss_and_grad bookkeeping. */
    uint32_t grad_calls;
    int fail_grad;   /* != 0: the next loss_and_grad returns this code (once) */
    int freeze_grad; /* != 0: write grad on the first call only */
    const tp_batch *last_batch;
    const float *last_params_arg;
    int last_opts_null;
    tp_loss_opts last_opts;
    double last_loss;
};

/* A quadratic of n parameters with fixed a, c and a starting point; tensors when n == 10. */
void mock_ctx_init(tp_ctx *ctx, uint64_t n);
void mock_ctx_free(tp_ctx *ctx);
/* The value of the hparam `name` for the plugin about to be driven. */
void mock_set_hparam(tp_ctx *ctx, const char *name, double value);
/* The loss of the quadratic at the current parameters, in double. */
double mock_loss(const tp_ctx *ctx);
const tp_host *mock_host(void);

/* The loader. */
typedef struct tb_lib {
    void *handle;
    tp_plugin_entry_fn entry;
} tb_lib;

/* dlopen `path` and find tp_plugin_entry; 0 on success, else -1 with a message on stderr. */
int tb_lib_open(tb_lib *lib, const char *path);
void tb_lib_close(tb_lib *lib);
/* The descriptor with this id, or NULL. */
const tp_plugin_desc *tb_lib_find(const tb_lib *lib, const char *id);

#endif /* TEST_BASELINES_HOST_H */
