/*
 * config.h - reading trainperf's libconfig files and command-line key=value lists.
 *
 * Every error names the file, the line and the key: "workloads/fmnist_mlp/fmnist_mlp.cfg:12:
 * workload.budget: must be a positive number of seconds". Unknown keys are errors (a typo must
 * not silently fall back to a default).
 *
 * A workload file looks like:
 *
 *   workload = {
 *     name = "fmnist_mlp";            # the workload family (registry name)
 *     batch_size_hint = 128;
 *     step_hint = 4000;
 *     eval_period = 2.0;              # seconds of elapsed time between evals
 *     budget = 60.0;                  # seconds of submission time
 *     targets = { validation = 0.87; test = 0.86; };
 *     data = { dir = "/usr/share/datasets/fashion-mnist"; ... };   # workload's own options
 *     model = { hidden_width = 256; ... };                          # workload's own options
 *     variants = (                                                  # held-out variants
 *       { name = "tanh"; targets = { validation = 0.88; test = 0.87; };
 *         model = { activation = "tanh"; }; }, ...
 *     );
 *   };
 *
 * The `data` and `model` groups are passed to the workload as flattened options
 * ("data.dir", "model.hidden_width") with their line numbers; the workload checks them.
 *
 * Not here: sweeps and search spaces (a later issue).
 */
#ifndef TP_CORE_CONFIG_H
#define TP_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/nn/workload.h" /* tp_wl_option */

/* A held-out variant of a workload (AlgoPerf v0.5): its own targets and option overrides on
 * top of the base; the base's budget, step_hint and eval period. */
typedef struct tp_variant_config {
    char *name; /* "tanh" */
    double validation_target;
    double test_target;
    tp_wl_option *options; /* data.* / model.* overrides */
    size_t num_options;
    int line;
} tp_variant_config;

typedef struct tp_workload_config {
    char *file; /* the path it was read from */
    char *name; /* workload family, e.g. "fmnist_mlp" */
    uint32_t batch_size_hint;
    uint64_t step_hint;
    double eval_period; /* seconds, > 0 */
    double budget;      /* seconds, > 0 */
    double validation_target;
    double test_target;
    tp_wl_option *options; /* data.* and model.* (owned; keys and strings too) */
    size_t num_options;
    tp_variant_config *variants; /* the `variants` list, in file order */
    size_t num_variants;
    char *variant; /* the selected variant (tp_config_select_variant), NULL for the base */
} tp_workload_config;

/* Parse a workload file. On error *out is left empty (safe to free). */
int tp_config_load_workload(const char *path, tp_workload_config *out, char *err, size_t errlen);
void tp_config_free_workload(tp_workload_config *c); /* free of a zeroed struct is a no-op */

/* The file of workload `name` under dir: <dir>/<name>/<name>.cfg. TP_ENOENT with a message
 * listing the workloads found when absent. */
int tp_config_find_workload(const char *dir, const char *name, char *path, size_t pathlen,
                            char *err, size_t errlen);

/* Apply one "key=value" override on top of a loaded file, e.g. "budget=5",
 * "targets.validation=0.6", "data.train_limit=2000", "data.dir=/tmp/x". Protocol keys must
 * exist; data.* / model.* keys replace or add an option (line 0). */
int tp_config_apply_override(tp_workload_config *c, const char *kv, char *err, size_t errlen);

/* Turn the config into its variant `variant` (NULL or "": the base, nothing changes): the
 * variant's targets and options replace the base's. Apply before --set overrides. TP_ENOENT
 * with the list of variants when there is no such variant. */
int tp_config_select_variant(tp_workload_config *c, const char *variant, char *err, size_t errlen);

/* ---------------------------------------------------------------------------------------- */
/* Sweeps: a tuning ruleset over workloads for one or more submissions.
 *
 *   sweep = {
 *     ruleset = "external";          # or "self" (no search space, budget x1.5, 1 trial/study)
 *     workloads = [ "fmnist_mlp" ];
 *     studies = 3;                   # default 3
 *     trials = 5;                    # per study, external tuning (default 5)
 *     study_points = "shared";       # "shared": every study uses points 1..trials (the
 *                                    # reference code); "distinct": studies x trials draws
 *                                    # split over the studies (the reference docs)
 *     heldout = "none";              # "none", "sampled" (one variant per base, seeded) or "all"
 *     heldout_seed = 0;
 *     budget_scale = 1.0;            # multiplies every workload's budget
 *     clock = "wall";                # the timing and scoring clock: "wall", "cpu" or
 *                                    # "steps" (virtual: 1 ms a step, reproducible)
 *     jobs = 1;                      # trials in parallel
 *     results = "results/my_sweep";  # relative to the current directory
 *     seed = 0;                      # trial seeds derive from it (same for every submission)
 *     set = [ "data.train_limit=5000" ];   # workload overrides for every trial (optional)
 *     diagnostics = { sharpness_every = 100; sharpness_examples = 1000; };   # optional: the
 *                                    # (preconditioned) sharpness of every trial, untimed
 *     submissions = (
 *       { name = "adamw"; optimizer = "adamw"; schedule = "warmup_cosine";
 *         selection = "next_batch";                      # optional (default next_batch)
 *         search_space = "adamw_space.json";             # relative to this file
 *         hparams = "label_smoothing=0.1"; },            # fixed, optional
 *     );
 *   };
 */
typedef enum tp_ruleset { TP_RULESET_EXTERNAL = 0, TP_RULESET_SELF = 1 } tp_ruleset;

typedef enum tp_heldout_policy {
    TP_HELDOUT_NONE = 0,
    TP_HELDOUT_SAMPLED = 1,
    TP_HELDOUT_ALL = 2
} tp_heldout_policy;

typedef enum tp_study_points {
    TP_STUDY_POINTS_SHARED = 0,
    TP_STUDY_POINTS_DISTINCT = 1
} tp_study_points;

typedef struct tp_sweep_submission {
    char *name;
    char *optimizer;
    char *schedule;     /* NULL: constant */
    char *selection;    /* NULL: next_batch */
    char *search_space; /* resolved path; NULL for self-tuning */
    char *hparams;      /* fixed "k=v,..." or NULL */
    int line;
} tp_sweep_submission;

typedef struct tp_sweep_config {
    char *file;
    tp_ruleset ruleset;
    char **workloads;
    size_t num_workloads;
    int studies;
    int trials; /* per study; 1 for self-tuning */
    tp_study_points study_points;
    tp_heldout_policy heldout;
    uint64_t heldout_seed;
    double budget_scale;
    int clock; /* tp_clock_kind */
    int jobs;
    char *results;
    uint64_t seed;
    char **overrides;
    size_t num_overrides;
    uint64_t sharpness_every; /* 0: no sharpness measurements */
    uint32_t sharpness_examples;
    tp_sweep_submission *submissions;
    size_t num_submissions;
} tp_sweep_config;

int tp_config_load_sweep(const char *path, tp_sweep_config *out, char *err, size_t errlen);
void tp_config_free_sweep(tp_sweep_config *c); /* free of a zeroed struct is a no-op */
const char *tp_ruleset_name(tp_ruleset r);     /* "external" / "self" */

/* TP_ECONFIG naming file and line when text has an @include directive. libconfig 1.5 ends
 * the whole process on some includes, so trainperf's files are self-contained. */
int tp__config_refuse_include(const char *file, const char *text, char *err, size_t errlen);

/* A parsed "name=value,name=value" list of numeric hyperparameters (--hparams). */
typedef struct tp_kv {
    char *key;
    double value;
} tp_kv;

typedef struct tp_kv_list {
    tp_kv *items;
    size_t count;
} tp_kv_list;

/* Names are [a-z0-9_]+, values finite numbers (strtod syntax), no name twice. An empty string
 * gives an empty list. */
int tp_kv_parse(const char *s, tp_kv_list *out, char *err, size_t errlen);
void tp_kv_free(tp_kv_list *l);
/* NULL when absent. */
const tp_kv *tp_kv_find(const tp_kv_list *l, const char *key);
/* {"name": value, ...} in list order, each value in the shortest form that reads back
 * exactly (0.1, not 0.10000000000000001); truncated to len. */
void tp_kv_to_json(const tp_kv_list *l, char *out, size_t len);

#endif /* TP_CORE_CONFIG_H */
