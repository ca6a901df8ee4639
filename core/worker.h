/*
 * worker.h - one trial inside the trainperf-worker process: read the workload config, build
 * the workload (untimed), load the submission's plugins, route hyperparameters, init the
 * plugins (untimed), run the timing loop of trial.c, and stream events to the host.
 *
 * The worker owns the clock. It never writes results itself: everything goes to the host as
 * events on `event_fd`, so a worker that dies loses only its own trial.
 *
 * Not here: the sandbox (a later issue), the host side (runner.c).
 */
#ifndef TP_CORE_WORKER_H
#define TP_CORE_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

#define TP_WORKER_MAX_OVERRIDES 32

typedef struct tp_worker_args {
    const char *workload_config;                    /* path of the workload's .cfg */
    const char *overrides[TP_WORKER_MAX_OVERRIDES]; /* "key=value" (--set) */
    int num_overrides;
    const char *plugin_dir;
    const char *optimizer; /* plugin ids */
    const char *schedule;  /* NULL: constant 1.0 */
    const char *selection; /* NULL: "next_batch" */
    const char *hparams;   /* "a=1,b=2" or NULL */
    uint64_t seed;
    tp_clock_kind clock;
    uint64_t max_steps; /* 0: none */
    int threads;        /* OpenBLAS threads, >= 1 */
    int event_fd;       /* -1: no events (a human summary on stderr only) */
} tp_worker_args;

/* Run one trial. Returns 0 when the trial ran (whatever its outcome, which went out as an
 * END event) or a negative code when it could not be set up (also sent as a failed END). */
int tp_worker_run(const tp_worker_args *a);

#endif /* TP_CORE_WORKER_H */
