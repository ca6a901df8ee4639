/*
 * score.c - AlgoPerf scoring as score.h states it: per-trial times to target in, per-workload
 * times, the held-out rule, the max_ratio cut, ratios and benchmark scores out.
 *
 * How the numbers are taken (reference: scoring/performance_profile.py,
 * get_workloads_time_to_target and compute_performance_profiles):
 *
 *   - Per (submission, workload, study): the smallest time_to_target of the study's trials.
 *     The reference picks the trial whose *eval index* of first reaching the target is the
 *     smallest and then takes that trial's time at that index, so with uneven eval times a
 *     later-indexed but faster trial can lose; trainperf takes the smallest time (BENCHMARK.md
 *     §5). Self-tuning runs one trial per study, and a second trial in a study is an error
 *     here (the reference would silently take the best of them).
 *   - Per (submission, workload): the median over the studies that have trials, computed as
 *     numpy's np.median, which the reference calls on the list of per-study times: sort
 *     (INFINITY sorts last); an odd count takes the middle value; an even count takes the
 *     mean (a + b) / 2 of the two middle values. So with infinities: [1, inf, 3] -> 3,
 *     [1, inf] -> inf, [2, 4] -> 3, [inf, inf, 1] -> inf. A submission without trials on a
 *     workload gets INFINITY there.
 *   - Held-out variants, in the reference's order: (1) variant := inf where the base is inf;
 *     (2) every time above max_ratio times its column's minimum := inf, base and variant
 *     columns alike (after (1), a variant column's minimum is over submissions that succeeded
 *     on the base); (3) base := inf where the variant is inf, a submission without variant
 *     trials included when others have them (the reference maps its NaN to inf); (4) only
 *     base columns go on. A workload with no variant trials at all is scored as a plain base.
 *   - Ratios divide by the column minimum of the times after (3), as the reference does, so a
 *     submission knocked out by its variant no longer sets the minimum. A column of
 *     infinities has ratio inf everywhere (the reference's NaN, which counts as 0 too).
 *   - Score: B_s = sum over w with r <= M of (M - r) / ((M - 1) n), M = max_ratio, the exact
 *     integral (1 / (M - 1)) * integral from 1 to M of rho_s; with M = 4 it is score.h's
 *     (4 - r) / (3 n). The reference integrates rho on 100 grid points with the trapezoid
 *     rule, which differs from the exact value by up to (3 / 99) / 2 / 3 = 1/198 of 1/n per
 *     workload. n is the number of base workloads in the table; the reference divides by its
 *     fixed number of base workloads (8), so a partial set of workloads scores higher here.
 *   - Options: NULL means external tuning, the held-out rule on and max_ratio 4; a max_ratio
 *     of 0 means 4. A NaN or negative time to target is an error (INFINITY means not
 *     reached), as are study or trial indices below 0.
 *
 * Not here: reading trials (algoperf_io.c), printing (algoperf_io.c / report.c), the
 * reference's geometric-mean speedup over a reference submission.
 */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include "core/score.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include <trainperf/trainperf.h>

/* ---------------------------------------------------------------------------------------- */
/* Helpers */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int is_variant(const tp_score_trial *t)
{
    return t->variant != NULL && t->variant[0] != '\0';
}

/* Sorted, de-duplicated copies of the n strings in names (which qsort reorders). */
static int unique_names(const char **names, size_t n, char ***out, size_t *count)
{
    *out = NULL;
    *count = 0;
    if (n == 0)
        return TP_OK;
    qsort(names, n, sizeof *names, cmp_str);
    char **u = calloc(n, sizeof *u);
    if (u == NULL)
        return TP_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k > 0 && strcmp(u[k - 1], names[i]) == 0)
            continue;
        if ((u[k] = strdup(names[i])) == NULL) {
            for (size_t j = 0; j < k; j++)
                free(u[j]);
            free(u);
            return TP_ENOMEM;
        }
        k++;
    }
    *out = u;
    *count = k;
    return TP_OK;
}

static size_t find_name(char **names, size_t n, const char *key)
{
    char **p = bsearch(&key, names, n, sizeof *names, cmp_str);
    assert(p != NULL);
    return (size_t)(p - names);
}

/* numpy's median of k values sorted ascending (INFINITY last). */
static double median_sorted(const double *v, size_t k)
{
    assert(k > 0);
    if (k % 2 == 1)
        return v[k / 2];
    return (v[k / 2 - 1] + v[k / 2]) / 2.0;
}

/* Step (2): times above m times the column's minimum become INFINITY. */
static void cut_column(double *col, size_t stride, size_t ns, double m)
{
    double best = INFINITY;
    for (size_t s = 0; s < ns; s++)
        if (col[s * stride] < best)
            best = col[s * stride];
    if (!isfinite(best))
        return;
    for (size_t s = 0; s < ns; s++)
        if (col[s * stride] > m * best)
            col[s * stride] = INFINITY;
}

/* One trial as it enters the per-study minimum: kind 0 base, 1 variant. */
typedef struct rec {
    size_t s, w;
    int kind;
    int study;
    double time;
    size_t trial; /* index into the caller's array, for messages */
} rec;

static int cmp_rec(const void *a, const void *b)
{
    const rec *x = a, *y = b;
    if (x->s != y->s)
        return x->s < y->s ? -1 : 1;
    if (x->w != y->w)
        return x->w < y->w ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind - y->kind;
    if (x->study != y->study)
        return x->study < y->study ? -1 : 1;
    return cmp_double(&x->time, &y->time);
}

/* ---------------------------------------------------------------------------------------- */
/* Compute */

void tp_score_free(tp_score_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->num_submissions; i++)
        free(t->submissions[i]);
    free(t->submissions);
    for (size_t i = 0; i < t->num_workloads; i++) {
        free(t->workloads[i]);
        if (t->variant_name != NULL)
            free(t->variant_name[i]);
    }
    free(t->workloads);
    free(t->variant_name);
    free(t->raw_time);
    free(t->variant_time);
    free(t->time);
    free(t->ratio);
    free(t->score);
    free(t);
}

static int check_trials(const tp_score_trial *trials, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const tp_score_trial *t = &trials[i];
        if (t->submission == NULL || t->submission[0] == '\0') {
            tp__errf(err, errlen, "score: trial %zu has no submission name", i);
            return TP_EINVAL;
        }
        if (t->workload == NULL || t->workload[0] == '\0') {
            tp__errf(err, errlen, "score: trial %zu (submission %s) has no workload name", i,
                     t->submission);
            return TP_EINVAL;
        }
        if (t->study < 0 || t->trial_index < 0) {
            tp__errf(err, errlen,
                     "score: trial %zu (%s on %s) has study %d, trial %d: both are 0-based "
                     "indices",
                     i, t->submission, t->workload, t->study, t->trial_index);
            return TP_EINVAL;
        }
        if (isnan(t->time_to_target) || t->time_to_target < 0) {
            tp__errf(err, errlen,
                     "score: trial %zu (%s on %s, study %d, trial %d) has time to target %g: "
                     "give seconds >= 0, or INFINITY when the target was not reached",
                     i, t->submission, t->workload, t->study, t->trial_index, t->time_to_target);
            return TP_EINVAL;
        }
    }
    return TP_OK;
}

/* Per (submission, workload, kind): the per-study minima and their median. */
static int study_medians(const tp_score_trial *trials, rec *recs, size_t nr, int self_tuning,
                         tp_score_table *t, char *err, size_t errlen)
{
    size_t ns = t->num_submissions, nw = t->num_workloads;
    double *buf = malloc((nr > 0 ? nr : 1) * sizeof *buf);
    if (buf == NULL) {
        tp__errf(err, errlen, "score: out of memory");
        return TP_ENOMEM;
    }
    if (nr > 1)
        qsort(recs, nr, sizeof *recs, cmp_rec);
    size_t i = 0;
    while (i < nr) {
        size_t s = recs[i].s, w = recs[i].w;
        int kind = recs[i].kind;
        size_t k = 0;
        while (i < nr && recs[i].s == s && recs[i].w == w && recs[i].kind == kind) {
            int study = recs[i].study;
            size_t first = i, count = 0;
            while (i < nr && recs[i].s == s && recs[i].w == w && recs[i].kind == kind &&
                   recs[i].study == study) {
                i++;
                count++;
            }
            if (self_tuning && count > 1) {
                const tp_score_trial *a = &trials[recs[first].trial];
                tp__errf(err, errlen,
                         "score: self-tuning runs one trial per study, but submission %s has "
                         "%zu trials in study %d of workload %s%s%s (score it as external "
                         "tuning, or drop the extra trials)",
                         a->submission, count, study, a->workload, kind ? " variant " : "",
                         kind ? a->variant : "");
                free(buf);
                return TP_EINVAL;
            }
            buf[k++] = recs[first].time; /* the smallest: recs sort by time last */
        }
        qsort(buf, k, sizeof *buf, cmp_double);
        double med = median_sorted(buf, k);
        assert(s < ns && w < nw);
        (kind ? t->variant_time : t->raw_time)[s * nw + w] = med;
    }
    free(buf);
    return TP_OK;
}

/* The held-out rule, the max_ratio cut, ratios and scores, from raw_time and variant_time. */
static int apply_rules(tp_score_table *t, int heldout, double m)
{
    size_t ns = t->num_submissions, nw = t->num_workloads;
    double *vt = NULL;
    if (ns * nw > 0 && (vt = malloc(ns * nw * sizeof *vt)) == NULL)
        return TP_ENOMEM;
    memcpy(t->time, t->raw_time, ns * nw * sizeof *t->time);
    for (size_t w = 0; w < nw; w++) {
        int has_variant = heldout && t->variant_name[w] != NULL;
        if (has_variant) {
            for (size_t s = 0; s < ns; s++) {
                double v = t->variant_time[s * nw + w];
                if (isnan(v) || isinf(t->time[s * nw + w])) /* (1), no trials -> inf */
                    v = INFINITY;
                vt[s * nw + w] = v;
            }
            cut_column(vt + w, nw, ns, m); /* (2) on the variant column */
        }
        cut_column(t->time + w, nw, ns, m); /* (2) on the base column */
        if (has_variant)
            for (size_t s = 0; s < ns; s++)
                if (isinf(vt[s * nw + w])) /* (3) */
                    t->time[s * nw + w] = INFINITY;
    }
    free(vt);

    for (size_t w = 0; w < nw; w++) {
        double best = INFINITY;
        for (size_t s = 0; s < ns; s++)
            if (t->time[s * nw + w] < best)
                best = t->time[s * nw + w];
        for (size_t s = 0; s < ns; s++) {
            double x = t->time[s * nw + w], r;
            if (isinf(x))
                r = INFINITY;
            else if (x == best)
                r = 1.0; /* ties, and a time of 0 */
            else
                r = x / best;
            t->ratio[s * nw + w] = r > m ? INFINITY : r;
        }
    }
    for (size_t s = 0; s < ns; s++) {
        double sum = 0.0;
        for (size_t w = 0; w < nw; w++) {
            double r = t->ratio[s * nw + w];
            if (r <= m)
                sum += m - r;
        }
        t->score[s] = nw > 0 ? sum / ((m - 1.0) * (double)nw) : 0.0;
    }
    return TP_OK;
}

int tp_score_compute(const tp_score_trial *trials, size_t n, const tp_score_options *o,
                     tp_score_table **out, char *err, size_t errlen)
{
    assert(out != NULL);
    *out = NULL;
    tp_score_options opt = {.self_tuning = 0, .heldout = 1, .max_ratio = 4.0};
    if (o != NULL)
        opt = *o;
    if (opt.max_ratio == 0.0)
        opt.max_ratio = 4.0;
    if (!(opt.max_ratio > 1.0) || isinf(opt.max_ratio)) {
        tp__errf(err, errlen, "score: max_ratio must be a finite number > 1 (AlgoPerf: 4), not %g",
                 opt.max_ratio);
        return TP_EINVAL;
    }
    if (trials == NULL && n > 0) {
        tp__errf(err, errlen, "score: %zu trials but no array", n);
        return TP_EINVAL;
    }
    int rc = check_trials(trials, n, err, errlen);
    if (rc < 0)
        return rc;

    const char **names = NULL;
    rec *recs = NULL;
    tp_score_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        goto nomem;
    if (n > 0 && (names = malloc(n * sizeof *names)) == NULL)
        goto nomem;
    for (size_t i = 0; i < n; i++)
        names[i] = trials[i].submission;
    if (unique_names(names, n, &t->submissions, &t->num_submissions) < 0)
        goto nomem;
    for (size_t i = 0; i < n; i++)
        names[i] = trials[i].workload;
    if (unique_names(names, n, &t->workloads, &t->num_workloads) < 0)
        goto nomem;

    size_t ns = t->num_submissions, nw = t->num_workloads, cells = ns * nw;
    t->variant_name = calloc(nw > 0 ? nw : 1, sizeof *t->variant_name);
    t->raw_time = malloc((cells > 0 ? cells : 1) * sizeof *t->raw_time);
    t->variant_time = malloc((cells > 0 ? cells : 1) * sizeof *t->variant_time);
    t->time = malloc((cells > 0 ? cells : 1) * sizeof *t->time);
    t->ratio = malloc((cells > 0 ? cells : 1) * sizeof *t->ratio);
    t->score = malloc((ns > 0 ? ns : 1) * sizeof *t->score);
    if (!t->variant_name || !t->raw_time || !t->variant_time || !t->time || !t->ratio || !t->score)
        goto nomem;
    for (size_t i = 0; i < cells; i++) {
        t->raw_time[i] = INFINITY;
        t->variant_time[i] = NAN;
    }

    /* The one variant scored with each workload. */
    if (opt.heldout) {
        for (size_t i = 0; i < n; i++) {
            if (!is_variant(&trials[i]))
                continue;
            size_t w = find_name(t->workloads, nw, trials[i].workload);
            if (t->variant_name[w] == NULL) {
                if ((t->variant_name[w] = strdup(trials[i].variant)) == NULL)
                    goto nomem;
            } else if (strcmp(t->variant_name[w], trials[i].variant) != 0) {
                tp__errf(err, errlen,
                         "score: the trials hold two variants of workload %s (%s and %s); "
                         "score one held-out variant per workload",
                         trials[i].workload, t->variant_name[w], trials[i].variant);
                rc = TP_EINVAL;
                goto error;
            }
        }
    }

    if (n > 0 && (recs = malloc(n * sizeof *recs)) == NULL)
        goto nomem;
    size_t nr = 0;
    for (size_t i = 0; i < n; i++) {
        int kind = is_variant(&trials[i]);
        if (kind && !opt.heldout)
            continue;
        recs[nr++] = (rec){
            .s = find_name(t->submissions, ns, trials[i].submission),
            .w = find_name(t->workloads, nw, trials[i].workload),
            .kind = kind,
            .study = trials[i].study,
            .time = trials[i].time_to_target,
            .trial = i,
        };
    }
    if ((rc = study_medians(trials, recs, nr, opt.self_tuning, t, err, errlen)) < 0)
        goto error;
    if (apply_rules(t, opt.heldout, opt.max_ratio) < 0)
        goto nomem;

    free(names);
    free(recs);
    *out = t;
    return TP_OK;

nomem:
    tp__errf(err, errlen, "score: out of memory (%zu trials)", n);
    rc = TP_ENOMEM;
error:
    free(names);
    free(recs);
    tp_score_free(t);
    return rc;
}

double tp_score_profile(const tp_score_table *t, size_t s, double tau)
{
    assert(t != NULL && s < t->num_submissions);
    if (t->num_workloads == 0)
        return 0.0;
    size_t k = 0;
    for (size_t w = 0; w < t->num_workloads; w++)
        if (t->ratio[s * t->num_workloads + w] <= tau)
            k++;
    return (double)k / (double)t->num_workloads;
}
