/*
 * algoperf_io.h - trials in and out of AlgoPerf's trial directory layout, trials from the
 * results store for scoring, and the score report as a terminal table.
 *
 * The layout (reference: scoring/utils/run_workloads.py, submission_runner.py,
 * algoperf/logger_utils.py, scoring/scoring_utils.py::get_experiment_df):
 *
 *   <dir>/<submission>/study_<k>/<workload>/trial_<i>/eval_measurements.csv
 *
 * with studies numbered from 0 (study_0, study_1, ...) and trials from 1 (trial_1, ...; a
 * self-tuning run is trial_1). AlgoPerf names a workload directory <workload>_<framework>
 * ("ogbg_jax", "ogbg_model_size_pytorch"); a variant is <base>_<variant> ("ogbg_model_size").
 * The export writes <workload>[_<variant>] without a framework suffix (trainperf is neither
 * framework; AlgoPerf's current scoring/config.py strips the suffix only when present); the
 * import strips _jax / _pytorch when present. tp_score_trial's study and trial_index are
 * 0-based: study_<k> is study k, trial_<i> is trial_index i - 1.
 *
 * eval_measurements.csv has one row per eval, in order, under a header of column names; the
 * reference writes the columns sorted by name. The export writes:
 *
 *   accumulated_submission_time,global_step,preemption_count,score,test/<metric>,test/loss,
 *   total_duration,validation/<metric>,validation/loss
 *
 * (one loss column when the metric is "loss"), where score = accumulated_submission_time =
 * the eval's submission time on the trial's timing clock, preemption_count 0, numbers with
 * %.17g (exact round trip), NaN as an empty cell (as pandas writes it) and infinities as
 * inf / -inf. AlgoPerf's accumulated_eval_time, accumulated_logging_time, train/... and
 * .../num_examples columns are not written: trainperf does not measure them. A trial without
 * evals gets the header alone, so it still counts as a (failed) trial.
 *
 * Time to target of a trial (both directions): the score of the first eval, in row order,
 * whose validation metric reaches the target (<= for minimised metrics, >= for maximised;
 * NaN and infinite metrics never reach, as in trainperf's trial loop), among evals whose score
 * is at most the budget; INFINITY when none does. A failed trial counts with the evals it
 * logged, as in the reference, which reads only these files (and a trial still running in
 * the store with the evals so far). The reference then picks the
 * study's best trial by eval index rather than by time (see score.c); trainperf keeps each
 * trial's time and takes the smallest.
 *
 * Targets file (import): JSON in the format of AlgoPerf's own scoring/workload_targets*.json
 * (mlcommons/submissions_algorithms scoring/config.py), so one file serves both tools:
 *
 *   { "benchmark_version": "trainperf",                       (ignored)
 *     "base_workloads": ["fmnist_mlp"],                        (required)
 *     "held_out_workloads": ["fmnist_mlp_tanh"],               (optional, default none)
 *     "workloads": {                                           (required)
 *       "fmnist_mlp": { "target_metric_name": "accuracy",      -> column validation/accuracy
 *                       "target_metric_goal": "maximize",      (or "minimize")
 *                       "validation_target_value": 0.885,
 *                       "step_hint": 4000,                     (ignored)
 *                       "max_allowed_runtime_sec": 30 },       (optional: no budget cut)
 *       "fmnist_mlp_tanh": { ... } } }
 *
 * A workload name is a base workload, or <base>_<variant> for a base in base_workloads (the
 * longest such base). max_allowed_runtime_sec is the external-tuning budget; self-tuning logs
 * get 1.5 times it (the reference's SELF_TUNING_RUNTIME_FACTOR). Without a targets file the
 * eight AlgoPerf workloads and their variants of BENCHMARK.md §4 are built in (v0.6 budgets),
 * with v0.5's drawn held-out set (scoring/algoperf_v05/held_out_workloads_algoperf_v05.json):
 * criteo1tb_embed_init, fastmri_tanh, imagenet_resnet_large_bn_init,
 * librispeech_conformer_layernorm, ogbg_model_size, wmt_glu_tanh. With a targets file, the
 * file alone defines the workloads. Variants outside the held-out set are skipped.
 *
 * Not here: the score itself (score.c), plots and HTML (report.c), AlgoPerf's older layout
 * without study directories, merging of timestamped experiment directories
 * (<name>-YYYY-MM-DD-HH-MM-SS count as their own submission), train/test time to target.
 */
#ifndef TP_CORE_ALGOPERF_IO_H
#define TP_CORE_ALGOPERF_IO_H

#include <stddef.h>
#include <stdio.h>

#include "core/results.h"
#include "core/score.h"

/* Trials ready for tp_score_compute. */
typedef struct tp_algoperf_trials {
    tp_score_trial *trials; /* [num_trials]; every string is owned by this set */
    size_t num_trials;
    int self_tuning;    /* the ruleset of the trials: pass it in tp_score_options */
    size_t num_skipped; /* left out: one-off runs (database), variants not held out, trial
                           directories without eval_measurements.csv (import) */
} tp_algoperf_trials;

typedef struct tp_algoperf_options {
    /* Database: "external", "self" or NULL to detect (an error when the database holds
     * submissions of both). Import: "self" for self-tuning logs, NULL or "external" else. */
    const char *ruleset;
    /* Import: a targets file (format above); NULL for the built-in AlgoPerf workloads. */
    const char *targets_path;
    /* The held-out variants to score, comma-separated directory names
     * ("ogbg_gelu,fmnist_mlp_tanh"); NULL: the targets' held-out set (import), or every
     * variant in the database, which must then hold at most one per workload; "": none. */
    const char *heldout;
} tp_algoperf_options;

/* Write every trial of a sweep in db (trials with a ruleset; one-off runs are skipped: they
 * have no place in a study) under out_dir, creating directories as needed and overwriting
 * files of an earlier export. With targets_path, also write a targets file (format above) for
 * the exported workloads, so `tp_algoperf_import(out_dir, targets_path)` and AlgoPerf's
 * score_submissions.py --workload_targets can score the export; step_hint is 0 there (the
 * store does not keep it) and a self-tuning budget is written divided by 1.5. TP_ENOENT when
 * db holds no sweep trial; TP_EINVAL when two trials would share a directory, when a name
 * cannot be a directory, or when trials of one workload disagree on metric, direction, target
 * or budget (the targets file holds one). *num_trials (may be NULL): trials written. */
int tp_algoperf_export(tp_results *db, const char *out_dir, const char *targets_path,
                       size_t *num_trials, char *err, size_t errlen);

/* Read an AlgoPerf layout under dir: dir/<submission>/study_<k>/..., or
 * dir/<team>/<submission>/study_<k>/... (v0.5 scoring), or dir itself a submission
 * directory holding study_<k>. An unknown workload directory is an error naming it. */
int tp_algoperf_import(const char *dir, const tp_algoperf_options *o, tp_algoperf_trials **out,
                       char *err, size_t errlen);

/* The sweep trials of a results store with times to target computed from their evals (by
 * the rule above, each trial with its own metric, direction, target and budget); the
 * ruleset comes from the trials' ruleset column. TP_EINVAL when one submission has trials of
 * both rulesets. One-off runs (no ruleset) are skipped. */
int tp_algoperf_collect(tp_results *db, const tp_algoperf_options *o, tp_algoperf_trials **out,
                        char *err, size_t errlen);

void tp_algoperf_trials_free(tp_algoperf_trials *t); /* free(NULL) is a no-op */

/* The score report: per submission and workload the time to target (median over studies),
 * the variant's time when one is scored, the ratio to the fastest and why a time was cut;
 * then the benchmark scores, best first. o may be NULL (the defaults of tp_score_compute).
 * TP_EIO when writing fails. */
int tp_algoperf_print_scores(FILE *f, const tp_score_table *t, const tp_score_options *o);

#endif /* TP_CORE_ALGOPERF_IO_H */
