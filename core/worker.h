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

#include "core/spec.h"

typedef struct tp_worker_args {
    tp_trial_spec spec; /* what to run */
    int event_fd;       /* -1: no events (a human summary on stderr only) */
} tp_worker_args;

/* Run one trial. Returns 0 when the trial ran (whatever its outcome, which went out as an
 * END event) or a negative code when it could not be set up (also sent as a failed END). */
int tp_worker_run(const tp_worker_args *a);

#endif /* TP_CORE_WORKER_H */
