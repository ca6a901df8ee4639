/*
 * runner.h - the host side of one trial: spawn a trainperf-worker with libuv, read its events
 * from a pipe, commit every eval to the results store as it arrives, show progress, and kill
 * the worker (its whole process group: SIGTERM, then SIGKILL) when it overruns its wall-clock
 * limit or stops sending events.
 *
 * The host never loads submission code and trusts nothing the worker says: every event is
 * validated (events.c) and the end event is checked against the evals the host stored.
 * Whatever the worker does becomes a failed trial with a reason (the failure taxonomy);
 * evals already committed stay:
 *
 *   the worker ...                                     reason        message says
 *   sends garbage or inconsistent events               TP_EPROTO     what was wrong
 *   runs past its wall-clock limit                     TP_ETIMEOUT   the limit (and SIGKILL
 *                                                                     if SIGTERM was ignored)
 *   sends no event for silence_limit after its hello   TP_ESILENT    the limit, the last step
 *   dies of a signal                                   TP_ECRASH     the signal, e.g. "signal
 *                                                                     11 (SIGSEGV, ...)"
 *   dies of a SIGKILL trainperf did not send           TP_ECRASH     "out of memory?" hint
 *   dies of SIGSYS without reporting it                TP_ESANDBOX   a denied system call
 *   dies of SIGXCPU (the CPU-time rlimit)              TP_ETIMEOUT   the CPU-time limit
 *   exits without an end event                         TP_EEXITED    the exit status
 *   closes its event pipe and keeps running            TP_EPROTO     the closed pipe
 *   reports a failure itself (end event)               its reason    its message: TP_ESANDBOX,
 *                                                                     TP_ENOMEM, TP_ENONFINITE,
 *                                                                     TP_EPLUGIN, ...
 *
 * Limits (0 in a request: the defaults below):
 *   wall clock  tp_runner_default_wall_limit(budget, clock) =
 *                   clock factor x budget          (submission time; x1 wall clock, x2 CPU
 *                                                   clock, x4 steps clock: see below)
 *                 + TP_RUNNER_EVAL_ALLOWANCE x budget  (evals are untimed)
 *                 + TP_RUNNER_GRACE                 (setup, data loading, teardown)
 *               = 2 x budget + 120 s on the wall clock.
 *   silence     tp_runner_default_silence_limit(eval_period) =
 *                 max(TP_RUNNER_SILENCE_MIN, TP_RUNNER_SILENCE_PERIODS x eval_period)
 *               = 60 s for fmnist_mlp. Counted from the hello (setup before it is untimed and
 *               may load a large dataset: only the wall-clock limit bounds it) and restarted
 *               by every event; after the end event it bounds the worker's teardown.
 *   memory      the worker's own default (its sandbox's address-space limit) unless
 *               memory_limit is given (passed as --memory-limit).
 *
 * A worker's end event wins over what happens to the process after it (a crash or hang in
 * teardown), except that an end event inconsistent with the evals (a reached trial whose last
 * eval did not reach both targets, a time to target that is not the first reaching eval's
 * score, a failure without a reason) is a protocol violation.
 *
 * Not here: sweeps (sweep.c runs many of these side by side on one loop).
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

/* The wall-clock limit: evals are untimed, so they get an allowance on top of the budget, as a
 * fraction of it (a workload whose evals cost more than its training needs --wall-limit). */
#define TP_RUNNER_EVAL_ALLOWANCE 1.0
/* Seconds on top for everything outside the loop: loading the data, building the model,
 * plugin init (all untimed), teardown, and the overshoot of the last step. */
#define TP_RUNNER_GRACE 120.0
/* The silence limit: a worker sends a progress event every 0.25 s while it steps and one per
 * eval, so the longest legitimate silence is one step or one eval (untimed, on the validation
 * and test splits). A workload keeps its eval cost a small fraction of its eval period
 * (fmnist_mlp: 5%), so ten periods leave a wide margin; the floor covers short periods and one
 * slow step on a loaded machine. */
#define TP_RUNNER_SILENCE_MIN     60.0
#define TP_RUNNER_SILENCE_PERIODS 10.0
/* Seconds between SIGTERM and SIGKILL; also how long the host waits for the event pipe to
 * close once the worker has exited (a grandchild that left the process group may hold it). */
#define TP_RUNNER_KILL_GRACE 2.0

typedef struct tp_run_request {
    const char *worker_path;
    tp_trial_spec spec;    /* what the worker runs */
    double wall_limit;     /* seconds after which the worker is killed; 0: the default */
    double silence_limit;  /* seconds without an event (after the hello); 0: the default */
    double eval_period;    /* the workload's, for the default silence limit; 0: unknown */
    uint64_t memory_limit; /* the worker's address-space limit in bytes (--memory-limit); 0: the
                              worker's default */
    const char *log_path;  /* the worker's stdout and stderr */
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

/* The default limits (see the top of this file). The wall clock's submission time is the
 * budget; the CPU clock's runs slower than the wall clock on a shared machine (x2); the steps
 * clock counts 1 ms a step, whatever a step really takes (x4: steps of a few ms; give
 * --wall-limit for slower ones). */
double tp_runner_default_wall_limit(double budget, tp_clock_kind clock);
double tp_runner_default_silence_limit(double eval_period);

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
