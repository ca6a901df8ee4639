/*
 * results.h - the results store: one SQLite database per results directory
 * (<dir>/results.db), WAL mode, one transaction per event, so a killed host loses nothing that
 * was reported before it died. Schema (created on open, versioned with PRAGMA user_version):
 *
 *   trials(id, created_at, workload, variant, optimizer, schedule, selection, hparams (JSON
 *          text), seed, budget, clock, status, reason, message, steps, submission_time_wall,
 *          submission_time_cpu, time_to_target, best_validation_metric, metric, maximize,
 *          validation_target, test_target, wall_time, ended_at, submission, ruleset, study,
 *          trial_index, plan_key UNIQUE)
 *   evals(trial_id, eval_index, global_step, score, submission_time_wall,
 *         submission_time_cpu, total_duration, validation_metric, validation_loss,
 *         test_metric, test_loss, validation_reached, test_reached)
 *
 * `score` is the accumulated submission time on the trial's timing clock (AlgoPerf's name).
 * Not here: sweeps and studies (a later issue adds their tables).
 */
#ifndef TP_CORE_RESULTS_H
#define TP_CORE_RESULTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct tp_results tp_results;

/* How a trial ended. */
typedef enum tp_trial_status {
    TP_TRIAL_RUNNING = 0,
    TP_TRIAL_REACHED = 1,  /* validation and test targets reached */
    TP_TRIAL_BUDGET = 2,   /* budget spent without reaching both */
    TP_TRIAL_COMPLETE = 3, /* the submission said training is complete */
    TP_TRIAL_FAILED = 4    /* error, crash, timeout: see reason and message */
} tp_trial_status;

const char *tp_trial_status_name(tp_trial_status s); /* "reached", "budget", ... */

typedef struct tp_trial_meta {
    const char *workload;
    const char *variant; /* NULL or "" for the base workload */
    const char *optimizer;
    const char *schedule;
    const char *selection;
    const char *hparams_json; /* {"learning_rate": 0.001, ...} */
    uint64_t seed;
    double budget;
    const char *clock; /* "wall" or "cpu" */
    const char *metric;
    int maximize;
    double validation_target;
    double test_target;
    /* Where the trial sits in a sweep (zero / NULL for a one-off `trainperf run`). */
    const char *submission; /* the submission's name; NULL: the optimizer id */
    const char *ruleset;    /* "external", "self" or NULL */
    int study;              /* 0-based */
    int trial_index;        /* 0-based within the study */
    const char *plan_key;   /* unique name of the planned trial (resume); NULL for one-offs */
} tp_trial_meta;

typedef struct tp_eval_row {
    uint32_t eval_index;
    uint64_t global_step;
    double score; /* submission time on the timing clock */
    double submission_time_wall;
    double submission_time_cpu;
    double total_duration; /* wall seconds since the trial started */
    double validation_metric;
    double validation_loss;
    double test_metric;
    double test_loss;
    int validation_reached;
    int test_reached;
} tp_eval_row;

/* One sharpness measurement (core/sharpness.c), NaN for what was not measured. */
typedef struct tp_sharpness_row {
    uint64_t step; /* steps taken; 0 at initialization */
    double loss;
    double sharpness;
    double precond_sharpness;
    double threshold;
    int threshold_kind; /* 0 none known, 1 bounds sharpness, 2 bounds preconditioned sharpness */
    double lr;
    uint32_t iters;
    uint64_t grads;
    double seconds;
} tp_sharpness_row;

typedef struct tp_trial_end {
    tp_trial_status status;
    int reason;          /* TP_OK or a TP_E... code */
    const char *message; /* "" when none */
    uint64_t steps;
    double submission_time_wall;
    double submission_time_cpu;
    double time_to_target;         /* score of the first eval that reached the validation
                                      target; INFINITY when never */
    double best_validation_metric; /* NAN when no eval happened */
    double wall_time;              /* whole trial, wall seconds */
} tp_trial_end;

/* A row of `trials` as read back. Strings are owned by the store until the next call. */
typedef struct tp_trial_summary {
    int64_t id;
    const char *workload;
    const char *variant;
    const char *optimizer;
    const char *schedule;
    const char *selection;
    const char *hparams_json;
    uint64_t seed;
    double budget;
    const char *metric;
    int maximize;
    double validation_target;
    tp_trial_status status;
    int reason;
    const char *message;
    uint64_t steps;
    double submission_time_wall;
    double submission_time_cpu;
    double time_to_target;
    double best_validation_metric;
    double wall_time;
    uint32_t num_evals;
    const char *submission; /* the optimizer id for one-off runs */
    const char *ruleset;    /* "" for one-off runs */
    int study;
    int trial_index;
    const char *plan_key; /* "" for one-off runs */
    const char *clock;    /* "wall" or "cpu" */
    double test_target;
} tp_trial_summary;

/* Open (creating dir and the database if needed) and check integrity. */
int tp_results_open(const char *dir, tp_results **out, char *err, size_t errlen);
void tp_results_close(tp_results *r); /* close(NULL) is a no-op */
const char *tp_results_path(const tp_results *r);

int tp_results_begin_trial(tp_results *r, const tp_trial_meta *meta, int64_t *trial_id, char *err,
                           size_t errlen);
int tp_results_add_eval(tp_results *r, int64_t trial_id, const tp_eval_row *row, char *err,
                        size_t errlen);
/* One transaction. TP_ENOENT for an unknown trial, TP_EINVAL for a step already recorded. */
int tp_results_add_sharpness(tp_results *r, int64_t trial_id, const tp_sharpness_row *m, char *err,
                             size_t errlen);
/* The trial's measurements in step order; fn's non-zero return stops the walk and is
 * returned. */
int tp_results_foreach_sharpness(tp_results *r, int64_t trial_id,
                                 int (*fn)(const tp_sharpness_row *m, void *ud), void *ud,
                                 char *err, size_t errlen);
int tp_results_end_trial(tp_results *r, int64_t trial_id, const tp_trial_end *end, char *err,
                         size_t errlen);

/* The trial a sweep planned as plan_key: *id = 0 when there is none, else its id and status
 * (TP_TRIAL_RUNNING for one whose end was never recorded: its host died). */
int tp_results_find_planned(tp_results *r, const char *plan_key, int64_t *id,
                            tp_trial_status *status, char *err, size_t errlen);
/* Remove a trial and its evals in one transaction (a resumed sweep re-runs a trial whose host
 * died before it ended). */
int tp_results_delete_trial(tp_results *r, int64_t id, char *err, size_t errlen);

/* Call fn for every trial in id order (all when ids == NULL, else the n given ids); stops and
 * returns fn's value when it returns non-zero. */
int tp_results_foreach_trial(tp_results *r, const int64_t *ids, size_t n,
                             int (*fn)(const tp_trial_summary *t, void *ud), void *ud, char *err,
                             size_t errlen);
/* Call fn for every eval of a trial in order. */
int tp_results_foreach_eval(tp_results *r, int64_t trial_id,
                            int (*fn)(const tp_eval_row *e, void *ud), void *ud, char *err,
                            size_t errlen);

#endif /* TP_CORE_RESULTS_H */
