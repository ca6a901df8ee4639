/*
 * worker.h - one trial inside the trainperf-worker process: read the workload config, build
 * the workload (untimed), load the submission's plugins, route hyperparameters, confine the
 * process (sandbox.h), init the plugins (untimed), run the timing loop of trial.c, and stream
 * events to the host.
 *
 * The worker owns the clock. It never writes results itself: everything goes to the host as
 * events on `event_fd`, so a worker that dies loses only its own trial.
 *
 * Not here: the sandbox's limits and rules (sandbox.c), the host side (runner.c).
 */
#ifndef TP_CORE_WORKER_H
#define TP_CORE_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/spec.h"

typedef struct tp_worker_args {
    tp_trial_spec spec;   /* what to run */
    int event_fd;         /* -1: no events (a human summary on stderr only); else >= 3 */
    int no_sandbox;       /* debugging only: no limits, no seccomp filter */
    int64_t memory_limit; /* address-space bytes; -1: the sandbox's default, 0: none */
    pid_t parent;         /* the host's pid at the worker's start; 0: do not check */
} tp_worker_args;

/* Run one trial. Returns 0 when the trial ran (whatever its outcome, which went out as an
 * END event) or a negative code when it could not be set up (also sent as a failed END). */
int tp_worker_run(const tp_worker_args *a);

#endif /* TP_CORE_WORKER_H */
