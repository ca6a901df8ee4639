/*
 * hostapi.h - the host side of the SDK inside a worker: a session (one trial's parameters,
 * data stream, train state and RNG) and the `tp_host` function table plugins call, backed by a
 * workload. Each plugin instance gets its own tp_ctx (its hyperparameters, RNG stream, tracked
 * allocations, log prefix).
 *
 * Every table function checks its arguments and returns TP_EINVAL (or TP_ERANGE) with a log
 * line instead of crashing on what it can detect.
 *
 * Not here: the timing loop (trial.c), plugin loading (plugin.c), the sandbox.
 */
#ifndef TP_CORE_HOSTAPI_H
#define TP_CORE_HOSTAPI_H

#include <stdint.h>
#include <stdio.h>

#include <trainperf/trainperf.h>

#include "core/nn/workload.h"

typedef struct tp_session tp_session;

typedef struct tp_session_config {
    tp_workload *workload;
    uint64_t seed;       /* the trial seed: model init, data order, dropout, plugin RNGs */
    uint32_t batch_size; /* the submission's batch size */
    uint64_t step_hint;
    double budget;
    FILE *log; /* plugin log lines; stderr when NULL */
} tp_session_config;

/* Allocates the parameter buffer and initialises it from the seed (untimed). */
int tp_session_create(const tp_session_config *p, tp_session **out, char *err, size_t errlen);
void tp_session_free(tp_session *s); /* frees every context too; free(NULL) no-op */

tp_train_state *tp_session_train_state(tp_session *s);
float *tp_session_params(tp_session *s);
uint64_t tp_session_num_params(const tp_session *s);

/* The table handed to plugins. */
const tp_host *tp_hostapi_table(void);

/* A context for one plugin instance. `names`/`values` are its hyperparameters (copied). */
tp_ctx *tp_session_ctx_new(tp_session *s, const char *plugin_id, const char *const *names,
                           const double *values, uint32_t count);
/* Release a context's leftover allocations; returns how many blocks the plugin leaked. */
uint64_t tp_session_ctx_release(tp_ctx *ctx);

#endif /* TP_CORE_HOSTAPI_H */
