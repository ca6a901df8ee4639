/*
 * trial.h - the AlgoPerf timing rules of one trial (BENCHMARK.md §3), independent of what is
 * trained and of which clock ticks, so they can be tested on a fake clock:
 *
 *   - untimed: everything before tp_trial_run (data, model init, plugin init) and evals;
 *   - timed: each step (data selection + schedule + update) and prepare_for_eval;
 *   - an eval is due when at least eval_period seconds of the timing clock have passed since
 *     the end of the previous eval (so the first comes right after step 1), or when training
 *     is complete;
 *   - at an eval-due step, after prepare_for_eval, the budget is checked: with accumulated
 *     submission time >= budget the trial stops without that eval;
 *   - the trial ends when validation and test targets are both reached, the budget is spent,
 *     the submission says it is done (or max_steps is hit), or something fails;
 *   - diagnostics (sharpness) run every diagnose_every steps, and once before the first step,
 *     outside the clock: their time counts neither as submission time nor toward the eval
 *     period, so a measured trial follows the same eval schedule as an unmeasured one.
 *
 * Not here: what a step does (the worker's hooks) and reporting (the hooks' on_eval).
 */
#ifndef TP_CORE_TRIAL_H
#define TP_CORE_TRIAL_H

#include <stddef.h>
#include <stdint.h>

#include <trainperf/trainperf.h>

#include "core/clock.h"
#include "core/results.h" /* tp_trial_status, tp_eval_row */

typedef struct tp_trial_params {
    double eval_period;   /* seconds of the timing clock */
    double budget;        /* seconds of submission time on the timing clock */
    tp_clock_kind timing; /* which clock the rules use */
    int maximize;         /* metric direction */
    double validation_target;
    double test_target;
    uint64_t max_steps;      /* 0: no limit; reaching it counts as training complete */
    uint64_t diagnose_every; /* 0: never; else the diagnose hook after every such step */
} tp_trial_params;

/* One evaluation's numbers, filled by the eval hook. */
typedef struct tp_trial_metrics {
    double validation_metric;
    double validation_loss;
    double test_metric;
    double test_loss;
} tp_trial_metrics;

typedef struct tp_trial_hooks {
    void *ud;
    /* Timed. Data selection + lr factor + update for 0-based `step`. Returns TP_OK,
     * TP_TRAINING_COMPLETE or a negative code with a message in err. */
    int (*step)(void *ud, uint64_t step, char *err, size_t errlen);
    /* Timed, may be NULL. */
    int (*prepare_for_eval)(void *ud, char *err, size_t errlen);
    /* Untimed. Evaluate validation and test. */
    int (*eval)(void *ud, tp_trial_metrics *m, char *err, size_t errlen);
    /* Untimed, may be NULL. Told about every eval as it happens (row is complete). A negative
     * return fails the trial (e.g. the results pipe broke). */
    int (*on_eval)(void *ud, const tp_eval_row *row, char *err, size_t errlen);
    /* Untimed, may be NULL. Called after every step; cheap. */
    void (*on_step)(void *ud, const tp_train_state *ts);
    /* Untimed and invisible to the eval period, may be NULL: a diagnostic measurement at
     * ts->step steps taken (0 before the first). A negative return fails the trial. */
    int (*diagnose)(void *ud, const tp_train_state *ts, char *err, size_t errlen);
} tp_trial_hooks;

typedef struct tp_trial_outcome {
    tp_trial_status status;
    int reason; /* TP_OK or the failing code */
    char message[TP_ERROR_MESSAGE_MAX];
    uint64_t steps;
    double submission_time_wall;
    double submission_time_cpu;
    double time_to_target;         /* INFINITY when never reached */
    double best_validation_metric; /* NAN when no eval */
    double wall_time;              /* whole loop, wall seconds */
    uint32_t num_evals;
} tp_trial_outcome;

/* "reached" means metric <= target for minimised metrics and >= for maximised ones. */
int tp_trial_reached(double metric, double target, int maximize);

/* Run the loop. `ts` is the train state plugins read; the loop keeps it current (step,
 * submission_time, last eval, targets reached); its static fields (step_hint, budget,
 * batch_size, ...) are the caller's. Returns 0 (the outcome says how it ended, failures too)
 * or a negative code for a programmer error (bad params). */
int tp_trial_run(const tp_trial_params *p, const tp_clock *clock, const tp_trial_hooks *hooks,
                 tp_train_state *ts, tp_trial_outcome *out);

#endif /* TP_CORE_TRIAL_H */
