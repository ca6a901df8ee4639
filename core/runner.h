/*
 * runner.h - the host side of one trial: spawn a trainperf-worker with libuv, read its events
 * from a pipe, commit every eval to the results store as it arrives, show progress, and kill
 * the worker (its whole process group) when it overruns its wall-clock limit.
 *
 * The host never loads submission code. Whatever the worker does (crash, hang, garbage on the
 * pipe, exit without an end event) becomes a failed trial with a reason; results already
 * committed stay.
 *
 * Not here: sweeps (a later issue runs many of these side by side on one loop).
 */
#ifndef TP_CORE_RUNNER_H
#define TP_CORE_RUNNER_H

#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/results.h"
#include "core/spec.h"

#include <uv.h>

typedef enum tp_progress_mode {
    TP_PROGRESS_NONE = 0,
    TP_PROGRESS_LINE = 1, /* one live line on a terminal */
    TP_PROGRESS_PLAIN = 2 /* a log line per eval (not a terminal) */
} tp_progress_mode;

typedef struct tp_run_request {
    const char *worker_path;
    tp_trial_spec spec;   /* what the worker runs */
    double wall_limit;    /* seconds after which the worker is killed */
    const char *log_path; /* the worker's stdout and stderr */
    tp_progress_mode progress;
    const char *label; /* shown in progress lines, e.g. "fmnist_mlp/adamw" */
    const char *metric;
    double budget;
    double validation_target;
} tp_run_request;

typedef struct tp_run_result {
    tp_trial_status status;
    int reason;
    char message[640];
    uint64_t steps;
    uint32_t num_evals;
    uint32_t batch_size;
    uint64_t num_params;
    double submission_time_wall;
    double submission_time_cpu;
    double time_to_target;
    double best_validation_metric;
    double wall_time;
} tp_run_result;

/* One trial running on a libuv loop. */
typedef struct tp_runner tp_runner;

/* Called once when a started trial is over and its row is ended in the store: res says how it
 * went; rc < 0 (with err) when the store could not record the end. res and err are valid
 * during the call only. */
typedef void (*tp_runner_done_cb)(const tp_run_result *res, int rc, const char *err, void *ud);

/* Start the trial whose row `trial_id` exists in `db` (tp_results_begin_trial) on `loop`: the
 * worker runs while the loop runs, and `done` is called when it is over. `req` must stay valid
 * until then. When the start fails (negative return, err says why) done is never called. */
int tp_runner_start(uv_loop_t *loop, const tp_run_request *req, tp_results *db, int64_t trial_id,
                    tp_runner_done_cb done, void *ud, char *err, size_t errlen);

/* Run one trial to its end on a loop of its own. Returns 0 when the trial ran (see
 * out->status) or a negative code when the worker could not be started or the store failed. */
int tp_runner_run(const tp_run_request *req, tp_results *db, int64_t trial_id, tp_run_result *out,
                  char *err, size_t errlen);

/* Run a worker command (check, list) in the foreground with the host's stdio and wait for
 * it. *exit_code is its exit status, or 128 + signal. */
int tp_runner_exec(char *const *argv, int *exit_code, char *err, size_t errlen);
#endif /* TP_CORE_RUNNER_H */
