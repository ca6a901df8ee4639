/*
 * score.h - AlgoPerf scoring (BENCHMARK.md §4-§6, reference scoring/performance_profile.py and
 * score_submissions.py): from per-trial times to target, per-workload times per submission,
 * the held-out rule, the 4x cut, performance profiles and the benchmark score.
 *
 * Rules, in order:
 *   - a trial's time is the score (accumulated submission time) of its first eval that
 *     reached the validation target; INFINITY when none did (failed trials too);
 *   - external tuning: per study, the fastest trial; per workload, the median over studies;
 *     self-tuning: the median over studies (one trial each);
 *   - held-out variants (when scored): (1) variant time := inf where its base is inf;
 *     (2) every time above max_ratio x its column's minimum := inf (for a variant column the
 *     minimum is over submissions that succeeded on the base); (3) base time := inf where its
 *     variant is inf; (4) variant columns dropped;
 *   - r(s, w) = t(s, w) / min_s' t(s', w), > max_ratio -> inf; rho_s(tau) = share of
 *     workloads with r <= tau; score B_s = sum over w with r <= 4 of (4 - r) / (3 n)
 *     (the closed form of (1/3) integral_1^4 rho).
 *
 * Not here: reading trials (the caller gives them), printing (cli.c / report.c).
 */
#ifndef TP_CORE_SCORE_H
#define TP_CORE_SCORE_H

#include <stddef.h>

typedef struct tp_score_trial {
    const char *submission;
    const char *workload;  /* base workload name */
    const char *variant;   /* "" or NULL for the base workload */
    int study;             /* 0-based */
    int trial_index;       /* 0-based within the study */
    double time_to_target; /* INFINITY when not reached */
} tp_score_trial;

typedef struct tp_score_options {
    int self_tuning;  /* 1: one trial per study, median over studies */
    int heldout;      /* 1: apply the held-out rule to variant trials; 0: ignore them */
    double max_ratio; /* 4.0 */
} tp_score_options;

typedef struct tp_score_table {
    size_t num_submissions;
    char **submissions; /* sorted */
    size_t num_workloads;
    char **workloads; /* base workloads, sorted */
    /* [s * num_workloads + w]: */
    double *raw_time;     /* median over studies before any cut (INFINITY: none reached) */
    double *variant_time; /* the same for the workload's variant (NAN: no variant trials) */
    char **variant_name;  /* [w]: the variant scored with workload w, or NULL */
    double *time;         /* after the held-out rule and the max_ratio cut */
    double *ratio;        /* time / column minimum; INFINITY past max_ratio */
    double *score;        /* [s] benchmark score in [0, 1] */
} tp_score_table;

/* Trials of unknown submissions/workloads just add rows/columns; a workload with no trials for
 * a submission counts as INFINITY for it. */
int tp_score_compute(const tp_score_trial *trials, size_t n, const tp_score_options *o,
                     tp_score_table **out, char *err, size_t errlen);
void tp_score_free(tp_score_table *t); /* free(NULL) is a no-op */

/* rho_s(tau): the share of workloads with ratio <= tau. */
double tp_score_profile(const tp_score_table *t, size_t s, double tau);

#endif /* TP_CORE_SCORE_H */
