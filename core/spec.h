/*
 * spec.h - what one trial runs: the workload file and its overrides, the submission's plugins
 * and hyperparameters, the seed, the timing clock and limits. The host builds a spec (from
 * `trainperf run` options; later from a sweep) and hands it to a worker as command-line
 * options; the worker parses them back. Both sides use the one option table and parser here,
 * so they cannot drift apart.
 *
 * Not here: host-only settings (results directory, wall-clock limit, display).
 */
#ifndef TP_CORE_SPEC_H
#define TP_CORE_SPEC_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

#define TP_SPEC_MAX_OVERRIDES 32

typedef struct tp_trial_spec {
    const char *workload_config;                  /* path of the workload's .cfg */
    const char *variant;                          /* held-out variant, NULL: the base */
    const char *overrides[TP_SPEC_MAX_OVERRIDES]; /* "key=value" (--set) */
    int num_overrides;
    const char *plugin_dir;
    const char *optimizer; /* plugin ids */
    const char *schedule;  /* NULL: constant factor 1 */
    const char *selection; /* NULL: "next_batch" */
    const char *hparams;   /* "a=1,b=2" or NULL */
    uint64_t seed;
    tp_clock_kind clock;
    uint64_t max_steps; /* 0: none */
    int threads;        /* OpenBLAS threads in the worker, >= 1 */
    /* Diagnostics: (preconditioned) sharpness every this many steps (0: never), untimed, over
     * the first sharpness_examples training examples (0: 1,000). */
    uint64_t sharpness_every;
    uint32_t sharpness_examples;
} tp_trial_spec;

/* Defaults: seed 0, wall clock, no step limit, one thread, everything else unset. */
void tp_spec_init(tp_trial_spec *s);

/* getopt_long entries for the spec's options, ending with a zero entry. Their `val`s are
 * TP_SPEC_OPT_FIRST and up; a caller with options of its own copies these into its table. */
#define TP_SPEC_OPT_FIRST 0x1000
extern const struct option tp_spec_options[];
#define TP_SPEC_NUM_OPTIONS 15

/* 1 when getopt's `opt` is one of the spec's. */
int tp_spec_is_option(int opt);
/* Apply one option (strings are kept, not copied). TP_EINVAL with a message for a bad value. */
int tp_spec_set(tp_trial_spec *s, int opt, const char *value, char *err, size_t errlen);

/* Append the spec as "--option value" pairs to argv[*n], leaving room for a NULL; numbers go
 * into `nums` (at least TP_SPEC_NUMS_SIZE bytes, alive as long as argv). TP_ERANGE when argv
 * is too small. */
#define TP_SPEC_NUMS_SIZE 160
int tp_spec_to_argv(const tp_trial_spec *s, char **argv, int *n, int max, char *nums);

#endif /* TP_CORE_SPEC_H */
