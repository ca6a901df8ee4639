/*
 * sweep.h - a tuning-ruleset sweep (BENCHMARK.md §4-§5): plan every trial of every submission
 * on every workload (and its held-out variants), run them as worker processes, `jobs` at a
 * time on one libuv loop, with every eval committed to the results database as it happens, and
 * show progress. Run again, a sweep skips the trials that ended and re-runs from scratch those
 * its host did not see end.
 *
 * Plan (external tuning): per submission, its search space gives `trials` points (study_points
 * "shared": every study uses the same points, as the reference code does) or studies x trials
 * points split over the studies ("distinct", as the reference docs describe); study k, trial i
 * runs with seed mix(sweep seed, k, i), the same for every submission and workload. Self-tuning:
 * one trial per study, no search space, budget x1.5. Held-out variants: none, one per base
 * drawn with heldout_seed ("sampled", as in v0.5), or all; each is tuned and run exactly like
 * its base.
 *
 * Not here: scoring (score.c) and reports (report.c).
 */
#ifndef TP_CORE_SWEEP_H
#define TP_CORE_SWEEP_H

#include <stddef.h>

#include "core/config.h"
#include "core/runner.h"

typedef struct tp_sweep_env {
    const char *worker_path;
    const char *plugin_dir;
    const char *workloads_dir;
    const char *results_dir; /* NULL: the config's (or "results/sweep") */
    tp_progress_mode progress;
    double wall_limit;     /* per trial; 0: tp_runner_default_wall_limit */
    double silence_limit;  /* per trial; 0: tp_runner_default_silence_limit */
    uint64_t memory_limit; /* the workers' address-space limit; 0: the worker's default */
    int plan_only;         /* print the plan and its cost, run nothing, change nothing */
} tp_sweep_env;

typedef struct tp_sweep_stats {
    size_t planned; /* trials in the plan */
    size_t skipped; /* already ended in the results database */
    size_t rerun;   /* found interrupted and run again from scratch */
    size_t ran;     /* run now */
    size_t reached; /* of those run now */
    size_t failed;  /* of those run now */
    double wall;    /* seconds */
    char results_dir[512];
} tp_sweep_stats;

/* Plan and run the sweep. Returns 0 when every planned trial has ended (failed trials
 * included), a negative code when the sweep could not be planned or the store failed.
 *
 * With env->plan_only, plan only: print (unless progress is TP_PROGRESS_NONE) a table of the
 * workload columns with their budgets and trial counts, and the most submission time the
 * trials still to run can take, each ending at its first eval past the budget (budget + one
 * eval period; the evals come on top); fill stats (planned, skipped = already ended, rerun =
 * interrupted). It creates no results directory or database and touches no trial in an
 * existing one (the workloads' data is prepared, as for a run). */
int tp_sweep_run(const tp_sweep_config *c, const tp_sweep_env *env, tp_sweep_stats *stats,
                 char *err, size_t errlen);

#endif /* TP_CORE_SWEEP_H */
