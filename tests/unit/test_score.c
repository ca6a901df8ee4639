/*
 * test_score.c - core/score.c against hand-computed cases: one submission reaching
 * everything (score 1), two submissions with ratios 1, 2, 3, ties, an all-infinite workload,
 * the 4x cut just above and at 4, missing trials, per-study minima and np.median over studies
 * (odd and even counts, with infinities), self-tuning's one trial per study, the held-out
 * rule in the reference's order (variant inf where the base is, the variant minimum over
 * submissions that succeeded on the base, base inf where the variant is, ratios after it),
 * the profile rho(tau) at and between 1, 2, 3, 4 with its integral equal to the score, and
 * bad input.
 *
 * Scores are compared exactly where the closed form is exact in binary (k/9 and such within
 * 1e-12).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/score.h"
#include <trainperf/trainperf.h>

static char err[512];

#define TR(sub, wl, var, study, trial, time)                                                       \
    ((tp_score_trial){(sub), (wl), (var), (study), (trial), (time)})
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const tp_score_options external = {.self_tuning = 0, .heldout = 1, .max_ratio = 4.0};

static tp_score_table *compute(const tp_score_trial *t, size_t n, const tp_score_options *o)
{
    tp_score_table *tab = NULL;
    int rc = tp_score_compute(t, n, o, &tab, err, sizeof err);
    if (rc != 0)
        fail_msg("tp_score_compute: %s (%s)", err, tp_err_name(rc));
    assert_non_null(tab);
    return tab;
}

static size_t sub_index(const tp_score_table *t, const char *name)
{
    for (size_t i = 0; i < t->num_submissions; i++)
        if (strcmp(t->submissions[i], name) == 0)
            return i;
    fail_msg("no submission %s", name);
    return 0;
}

static size_t wl_index(const tp_score_table *t, const char *name)
{
    for (size_t i = 0; i < t->num_workloads; i++)
        if (strcmp(t->workloads[i], name) == 0)
            return i;
    fail_msg("no workload %s", name);
    return 0;
}

static double cell(const double *v, const tp_score_table *t, const char *s, const char *w)
{
    return v[sub_index(t, s) * t->num_workloads + wl_index(t, w)];
}

static double score_of(const tp_score_table *t, const char *s)
{
    return t->score[sub_index(t, s)];
}

static void assert_close(double a, double b)
{
    if (!(fabs(a - b) <= 1e-12))
        fail_msg("%.17g != %.17g (difference %.3g)", a, b, fabs(a - b));
}

/* ---------------------------------------------------------------------------------------- */

static void single_submission_scores_one(void **state)
{
    (void)state;
    tp_score_trial t[] = {
        TR("adamw", "ogbg", "", 0, 0, 100.0),
        TR("adamw", "ogbg", "", 0, 1, INFINITY),
        TR("adamw", "wmt", NULL, 0, 0, 250.0),
    };
    tp_score_table *tab = compute(t, N(t), &external);
    assert_int_equal(tab->num_submissions, 1);
    assert_int_equal(tab->num_workloads, 2);
    assert_string_equal(tab->workloads[0], "ogbg");
    assert_string_equal(tab->workloads[1], "wmt");
    assert_true(cell(tab->raw_time, tab, "adamw", "ogbg") == 100.0);
    assert_true(cell(tab->ratio, tab, "adamw", "wmt") == 1.0);
    assert_true(score_of(tab, "adamw") == 1.0);
    assert_true(tp_score_profile(tab, 0, 1.0) == 1.0);
    assert_null(tab->variant_name[0]);
    assert_true(isnan(tab->variant_time[0]));
    tp_score_free(tab);
}

static void ratios_one_two_three(void **state)
{
    (void)state;
    /* A: 10, 10, 10; B: 20, 10, 30 -> B's ratios 2, 1, 3. */
    tp_score_trial t[] = {
        TR("b", "w1", "", 0, 0, 20), TR("b", "w2", "", 0, 0, 10), TR("b", "w3", "", 0, 0, 30),
        TR("a", "w1", "", 0, 0, 10), TR("a", "w2", "", 0, 0, 10), TR("a", "w3", "", 0, 0, 10),
    };
    tp_score_table *tab = compute(t, N(t), &external);
    assert_string_equal(tab->submissions[0], "a"); /* sorted */
    assert_string_equal(tab->submissions[1], "b");
    assert_true(cell(tab->ratio, tab, "b", "w1") == 2.0);
    assert_true(cell(tab->ratio, tab, "b", "w2") == 1.0); /* tie with a */
    assert_true(cell(tab->ratio, tab, "a", "w2") == 1.0);
    assert_true(cell(tab->ratio, tab, "b", "w3") == 3.0);
    assert_true(score_of(tab, "a") == 1.0);
    /* ((4-2) + (4-1) + (4-3)) / (3 * 3) */
    assert_close(score_of(tab, "b"), 6.0 / 9.0);

    /* rho_b: at and between the ratios. */
    size_t b = sub_index(tab, "b");
    assert_true(tp_score_profile(tab, b, 0.5) == 0.0);
    assert_close(tp_score_profile(tab, b, 1.0), 1.0 / 3.0);
    assert_close(tp_score_profile(tab, b, 1.5), 1.0 / 3.0);
    assert_close(tp_score_profile(tab, b, 2.0), 2.0 / 3.0);
    assert_close(tp_score_profile(tab, b, 2.5), 2.0 / 3.0);
    assert_true(tp_score_profile(tab, b, 3.0) == 1.0);
    assert_true(tp_score_profile(tab, b, 4.0) == 1.0);

    /* The score is (1/3) of the integral of rho over [1, 4]: a fine midpoint sum agrees. */
    size_t steps = 300000;
    double sum = 0.0;
    for (size_t i = 0; i < steps; i++)
        sum += tp_score_profile(tab, b, 1.0 + 3.0 * ((double)i + 0.5) / (double)steps);
    double integral = sum * 3.0 / (double)steps / 3.0;
    printf("score %.12f, integral of rho / 3 %.12f, difference %.3g\n", score_of(tab, "b"),
           integral, fabs(integral - score_of(tab, "b")));
    assert_true(fabs(integral - score_of(tab, "b")) < 1e-5);
    tp_score_free(tab);
}

static void two_submissions_one_workload(void **state)
{
    (void)state;
    /* Ratio 2 on the only workload: (4 - 2) / 3 / 1. */
    tp_score_trial t[] = {TR("fast", "w", "", 0, 0, 50), TR("slow", "w", "", 0, 0, 100)};
    tp_score_table *tab = compute(t, N(t), &external);
    assert_close(score_of(tab, "slow"), 2.0 / 3.0);
    assert_true(score_of(tab, "fast") == 1.0);
    tp_score_free(tab);
}

static void equal_times_tie(void **state)
{
    (void)state;
    tp_score_trial t[] = {TR("x", "w", "", 0, 0, 42.5), TR("y", "w", "", 0, 0, 42.5)};
    tp_score_table *tab = compute(t, N(t), &external);
    assert_true(tab->ratio[0] == 1.0 && tab->ratio[1] == 1.0);
    assert_true(tab->score[0] == 1.0 && tab->score[1] == 1.0);
    tp_score_free(tab);
}

static void all_infinite_workload_counts_in_n(void **state)
{
    (void)state;
    /* w1: nobody reached; w2: a 10, b 20. n = 2. */
    tp_score_trial t[] = {
        TR("a", "w1", "", 0, 0, INFINITY),
        TR("b", "w1", "", 0, 0, INFINITY),
        TR("a", "w2", "", 0, 0, 10),
        TR("b", "w2", "", 0, 0, 20),
    };
    tp_score_table *tab = compute(t, N(t), &external);
    assert_int_equal(tab->num_workloads, 2);
    assert_true(isinf(cell(tab->ratio, tab, "a", "w1")));
    assert_true(isinf(cell(tab->ratio, tab, "b", "w1")));
    assert_close(score_of(tab, "a"), 3.0 / 6.0);
    assert_close(score_of(tab, "b"), 2.0 / 6.0);
    assert_close(tp_score_profile(tab, sub_index(tab, "a"), 4.0), 0.5);
    tp_score_free(tab);
}

static void ratio_just_above_four_is_cut(void **state)
{
    (void)state;
    tp_score_trial t[] = {
        TR("a", "w", "", 0, 0, 10.0), TR("b", "w", "", 0, 0, 40.000001), /* ratio 4.0000001 */
        TR("c", "w", "", 0, 0, 40.0), /* ratio exactly 4: kept, adds 0 */
    };
    tp_score_table *tab = compute(t, N(t), &external);
    assert_true(isinf(cell(tab->time, tab, "b", "w")));
    assert_true(cell(tab->raw_time, tab, "b", "w") == 40.000001);
    assert_true(isinf(cell(tab->ratio, tab, "b", "w")));
    assert_true(cell(tab->ratio, tab, "c", "w") == 4.0);
    assert_true(score_of(tab, "b") == 0.0);
    assert_true(score_of(tab, "c") == 0.0);
    assert_true(tp_score_profile(tab, sub_index(tab, "c"), 4.0) == 1.0);
    assert_true(tp_score_profile(tab, sub_index(tab, "b"), 4.0) == 0.0);
    assert_true(tp_score_profile(tab, sub_index(tab, "b"), 1e9) == 0.0);
    tp_score_free(tab);
}

static void missing_trials_count_as_infinity(void **state)
{
    (void)state;
    /* b never ran w2. */
    tp_score_trial t[] = {
        TR("a", "w1", "", 0, 0, 10),
        TR("a", "w2", "", 0, 0, 10),
        TR("b", "w1", "", 0, 0, 10),
    };
    tp_score_table *tab = compute(t, N(t), &external);
    assert_true(isinf(cell(tab->raw_time, tab, "b", "w2")));
    assert_true(isinf(cell(tab->ratio, tab, "b", "w2")));
    assert_close(score_of(tab, "b"), 3.0 / 6.0);
    assert_true(score_of(tab, "a") == 1.0);
    tp_score_free(tab);
}

static void studies_with_failed_trials(void **state)
{
    (void)state;
    /* study 0: min(inf, 12, 15) = 12; study 1: all failed, inf; study 2: 9.
     * median(9, 12, inf) = 12. */
    tp_score_trial t[] = {
        TR("a", "w", "", 0, 0, INFINITY), TR("a", "w", "", 0, 1, 12),
        TR("a", "w", "", 0, 2, 15),       TR("a", "w", "", 1, 0, INFINITY),
        TR("a", "w", "", 1, 1, INFINITY), TR("a", "w", "", 2, 0, 9),
    };
    tp_score_table *tab = compute(t, N(t), &external);
    assert_true(tab->raw_time[0] == 12.0);
    tp_score_free(tab);
}

static double median_of(const double *times, size_t k)
{
    tp_score_trial t[8];
    assert_true(k <= 8);
    for (size_t i = 0; i < k; i++)
        t[i] = TR("a", "w", "", (int)i, 0, times[i]);
    tp_score_table *tab = compute(t, k, &external);
    double m = tab->raw_time[0];
    tp_score_free(tab);
    return m;
}

static void median_over_studies_is_numpys(void **state)
{
    (void)state;
    const double inf = INFINITY;
    double a[] = {1, inf, 3};
    assert_true(median_of(a, 3) == 3.0);
    double b[] = {inf, inf, 1};
    assert_true(isinf(median_of(b, 3)));
    double c[] = {4, 2}; /* even: mean of the middle two */
    assert_true(median_of(c, 2) == 3.0);
    double d[] = {1, inf}; /* (1 + inf) / 2 */
    assert_true(isinf(median_of(d, 2)));
    double e[] = {3, inf, 1, 2}; /* (2 + 3) / 2 */
    assert_true(median_of(e, 4) == 2.5);
    double f[] = {1, 2, inf, inf}; /* (2 + inf) / 2 */
    assert_true(isinf(median_of(f, 4)));
    double g[] = {7};
    assert_true(median_of(g, 1) == 7.0);
    double h[] = {5, 1, 3, 2, 4};
    assert_true(median_of(h, 5) == 3.0);
}

static void self_tuning_one_trial_per_study(void **state)
{
    (void)state;
    tp_score_options self = {.self_tuning = 1, .heldout = 1, .max_ratio = 4.0};
    tp_score_trial t[] = {
        TR("a", "w", "", 0, 0, 30),
        TR("a", "w", "", 1, 0, INFINITY),
        TR("a", "w", "", 2, 0, 10),
    };
    tp_score_table *tab = compute(t, N(t), &self);
    assert_true(tab->raw_time[0] == 30.0); /* median(10, 30, inf) */
    tp_score_free(tab);

    tp_score_trial two[] = {TR("a", "w", "", 0, 0, 30), TR("a", "w", "", 0, 1, 20)};
    tab = NULL;
    assert_int_equal(tp_score_compute(two, 2, &self, &tab, err, sizeof err), TP_EINVAL);
    assert_null(tab);
    assert_non_null(strstr(err, "one trial per study"));
    printf("expected error: %s\n", err);
}

/* ---------------------------------------------------------------------------------------- */
/* Held-out variants */

static void heldout_variant_not_reached_knocks_out_base(void **state)
{
    (void)state;
    /* a reached the base first but not its variant; b reached both. */
    tp_score_trial t[] = {
        TR("a", "ogbg", "", 0, 0, 10),
        TR("a", "ogbg", "gelu", 0, 0, INFINITY),
        TR("b", "ogbg", "", 0, 0, 20),
        TR("b", "ogbg", "gelu", 0, 0, 30),
    };
    tp_score_table *tab = compute(t, N(t), &external);
    assert_int_equal(tab->num_workloads, 1); /* variants are no workloads of their own */
    assert_string_equal(tab->variant_name[0], "gelu");
    assert_true(cell(tab->raw_time, tab, "a", "ogbg") == 10.0);
    assert_true(isinf(cell(tab->variant_time, tab, "a", "ogbg")));
    assert_true(cell(tab->variant_time, tab, "b", "ogbg") == 30.0);
    assert_true(isinf(cell(tab->time, tab, "a", "ogbg")));
    /* The minimum is taken after the rule: b is now the fastest, ratio 1 (not 2). */
    assert_true(cell(tab->ratio, tab, "b", "ogbg") == 1.0);
    assert_true(score_of(tab, "a") == 0.0);
    assert_true(score_of(tab, "b") == 1.0);
    tp_score_free(tab);

    /* Without the held-out rule, a wins and b has ratio 2. */
    tp_score_options off = external;
    off.heldout = 0;
    tab = compute(t, N(t), &off);
    assert_null(tab->variant_name[0]);
    assert_true(isnan(tab->variant_time[0]));
    assert_true(cell(tab->ratio, tab, "b", "ogbg") == 2.0);
    assert_close(score_of(tab, "b"), 2.0 / 3.0);
    tp_score_free(tab);
}

static void heldout_variant_minimum_over_base_successes(void **state)
{
    (void)state;
    /* a failed the base but was fastest on the variant (1); b: 10 / 10; c: 12 / 45.
     * (1) a's variant := inf, so the variant column's minimum is b's 10, not a's 1;
     * (2) c's variant 45 > 4 * 10 := inf; b's 10 stays (it would be cut against 1);
     * (3) c's base := inf. */
    tp_score_trial t[] = {
        TR("a", "wmt", "", 0, 0, INFINITY), TR("a", "wmt", "glu_tanh", 0, 0, 1),
        TR("b", "wmt", "", 0, 0, 10),       TR("b", "wmt", "glu_tanh", 0, 0, 10),
        TR("c", "wmt", "", 0, 0, 12),       TR("c", "wmt", "glu_tanh", 0, 0, 45),
    };
    tp_score_table *tab = compute(t, N(t), &external);
    assert_true(cell(tab->time, tab, "b", "wmt") == 10.0);
    assert_true(isinf(cell(tab->time, tab, "c", "wmt")));
    assert_true(cell(tab->variant_time, tab, "a", "wmt") == 1.0); /* raw, before the rule */
    assert_true(score_of(tab, "b") == 1.0);
    assert_true(score_of(tab, "c") == 0.0);
    assert_true(score_of(tab, "a") == 0.0);
    tp_score_free(tab);
}

static void heldout_variant_slower_than_four_times(void **state)
{
    (void)state;
    /* Both reach both; b's variant is 4.5x a's: b's base (ratio 1.5) := inf. */
    tp_score_trial t[] = {
        TR("a", "w", "", 0, 0, 100),
        TR("a", "w", "v", 0, 0, 100),
        TR("b", "w", "", 0, 0, 150),
        TR("b", "w", "v", 0, 0, 450),
    };
    tp_score_table *tab = compute(t, N(t), &external);
    assert_true(isinf(cell(tab->time, tab, "b", "w")));
    assert_true(score_of(tab, "b") == 0.0);
    assert_true(score_of(tab, "a") == 1.0);
    tp_score_free(tab);

    /* At 4x exactly the variant stays, and b's base has ratio 1.5: (4 - 1.5) / 3. */
    t[3].time_to_target = 400;
    tab = compute(t, N(t), &external);
    assert_true(cell(tab->ratio, tab, "b", "w") == 1.5);
    assert_close(score_of(tab, "b"), 2.5 / 3.0);
    tp_score_free(tab);
}

static void heldout_missing_variant_trials(void **state)
{
    (void)state;
    /* b never ran the variant that a ran: b's base := inf (the reference's NaN -> inf). A
     * workload without any variant trials is scored as a plain base. */
    tp_score_trial t[] = {
        TR("a", "w", "", 0, 0, 100), TR("a", "w", "v", 0, 0, 100), TR("b", "w", "", 0, 0, 50),
        TR("a", "x", "", 0, 0, 10),  TR("b", "x", "", 0, 0, 20),
    };
    tp_score_table *tab = compute(t, N(t), &external);
    assert_true(isnan(cell(tab->variant_time, tab, "b", "w")));
    assert_true(isinf(cell(tab->time, tab, "b", "w")));
    assert_true(cell(tab->ratio, tab, "a", "w") == 1.0);
    assert_null(tab->variant_name[wl_index(tab, "x")]);
    assert_true(cell(tab->ratio, tab, "b", "x") == 2.0);
    assert_close(score_of(tab, "a"), 1.0);
    assert_close(score_of(tab, "b"), 2.0 / 6.0);
    tp_score_free(tab);
}

static void heldout_variant_medians_over_studies(void **state)
{
    (void)state;
    /* The variant's time is a median over studies of per-study minima too. */
    tp_score_trial t[] = {
        TR("a", "w", "", 0, 0, 10),  TR("a", "w", "", 1, 0, 11),
        TR("a", "w", "", 2, 0, 12),  TR("a", "w", "v", 0, 0, INFINITY),
        TR("a", "w", "v", 0, 1, 20), TR("a", "w", "v", 1, 0, INFINITY),
        TR("a", "w", "v", 2, 0, 30),
    };
    tp_score_table *tab = compute(t, N(t), &external);
    assert_true(tab->raw_time[0] == 11.0);
    assert_true(tab->variant_time[0] == 30.0); /* median(20, inf, 30) */
    assert_true(tab->score[0] == 1.0);
    tp_score_free(tab);
}

static void two_variants_of_one_workload_refused(void **state)
{
    (void)state;
    tp_score_trial t[] = {
        TR("a", "w", "", 0, 0, 1),
        TR("a", "w", "tanh", 0, 0, 1),
        TR("b", "w", "gelu", 0, 0, 1),
    };
    tp_score_table *tab = NULL;
    assert_int_equal(tp_score_compute(t, N(t), &external, &tab, err, sizeof err), TP_EINVAL);
    assert_null(tab);
    printf("expected error: %s\n", err);
    /* ... unless variants are ignored. */
    tp_score_options off = external;
    off.heldout = 0;
    tab = compute(t, N(t), &off);
    tp_score_free(tab);
}

/* ---------------------------------------------------------------------------------------- */

static void other_max_ratio(void **state)
{
    (void)state;
    /* M = 2: ratio 1.5 contributes (2 - 1.5) / (1 * 1); 2.5 is cut. */
    tp_score_options o = {.self_tuning = 0, .heldout = 1, .max_ratio = 2.0};
    tp_score_trial t[] = {TR("a", "w", "", 0, 0, 10), TR("b", "w", "", 0, 0, 15),
                          TR("c", "w", "", 0, 0, 25)};
    tp_score_table *tab = compute(t, N(t), &o);
    assert_close(score_of(tab, "b"), 0.5);
    assert_true(isinf(cell(tab->ratio, tab, "c", "w")));
    tp_score_free(tab);
    /* NULL options: external tuning, held-out rule on, max_ratio 4. */
    tab = compute(t, N(t), NULL);
    assert_close(score_of(tab, "c"), 1.5 / 3.0);
    tp_score_free(tab);
}

static void empty_and_bad_input(void **state)
{
    (void)state;
    tp_score_table *tab = compute(NULL, 0, &external);
    assert_int_equal(tab->num_submissions, 0);
    assert_int_equal(tab->num_workloads, 0);
    tp_score_free(tab);
    tp_score_free(NULL);

    struct {
        tp_score_trial t;
        const char *what;
    } bad[] = {
        {TR("a", "w", "", 0, 0, NAN), "time to target nan"},
        {TR("a", "w", "", 0, 0, -1), "time to target -1"},
        {TR("a", "w", "", -1, 0, 1), "study -1"},
        {TR(NULL, "w", "", 0, 0, 1), "no submission"},
        {TR("a", "", "", 0, 0, 1), "no workload"},
    };
    for (size_t i = 0; i < N(bad); i++) {
        tab = NULL;
        assert_int_equal(tp_score_compute(&bad[i].t, 1, &external, &tab, err, sizeof err),
                         TP_EINVAL);
        assert_null(tab);
        if (strstr(err, bad[i].what) == NULL)
            fail_msg("error \"%s\" does not say \"%s\"", err, bad[i].what);
    }
    tp_score_options o = {.max_ratio = 1.0};
    tp_score_trial ok = TR("a", "w", "", 0, 0, 1);
    assert_int_equal(tp_score_compute(&ok, 1, &o, &tab, err, sizeof err), TP_EINVAL);
    assert_int_equal(tp_score_compute(NULL, 3, &external, &tab, err, sizeof err), TP_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(single_submission_scores_one),
        cmocka_unit_test(ratios_one_two_three),
        cmocka_unit_test(two_submissions_one_workload),
        cmocka_unit_test(equal_times_tie),
        cmocka_unit_test(all_infinite_workload_counts_in_n),
        cmocka_unit_test(ratio_just_above_four_is_cut),
        cmocka_unit_test(missing_trials_count_as_infinity),
        cmocka_unit_test(studies_with_failed_trials),
        cmocka_unit_test(median_over_studies_is_numpys),
        cmocka_unit_test(self_tuning_one_trial_per_study),
        cmocka_unit_test(heldout_variant_not_reached_knocks_out_base),
        cmocka_unit_test(heldout_variant_minimum_over_base_successes),
        cmocka_unit_test(heldout_variant_slower_than_four_times),
        cmocka_unit_test(heldout_missing_variant_trials),
        cmocka_unit_test(heldout_variant_medians_over_studies),
        cmocka_unit_test(two_variants_of_one_workload_refused),
        cmocka_unit_test(other_max_ratio),
        cmocka_unit_test(empty_and_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
