/*
 * test_baselines_spaces.c - the search spaces and self-tuning configs of the baseline
 * submissions (submissions/<name>/tuning_search_space*.{json,cfg}, self_tuning.cfg), read with
 * the project's own readers (core/searchspace.h, core/config.h):
 *
 *   - each space is BENCHMARK.md section 7's row for its baseline, dimension by dimension, in
 *     the reference files' key order (mlcommons/algorithmic-efficiency, paper_baselines/<name>/
 *     tuning_search_space.json), which the quasi-random search needs to draw the reference's
 *     points (section 5);
 *   - the JSON file and its libconfig twin hold the same dimensions (or fixed points) and give
 *     the same trial points;
 *   - every key is a hyperparameter that the optimizer or its schedule declares, with every
 *     value inside the declared domain (the plugins are dlopen()ed for their descriptors);
 *   - NAdamW's list form holds section 7's point 5 exactly; the self-tuning configs give the
 *     published fixed hyperparameters.
 *
 * Not here: the search-space reader itself (test_searchspace.c), the update rules (the other
 * test_baselines*.c files).
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines_checks.h"
#include "core/config.h"
#include "core/searchspace.h"

#define SUBMISSIONS TP_TEST_SOURCE_DIR "/submissions/"

/* ----------------------------------------------------------------------------------------
 */
/* The plugins whose declarations the keys must match */

static const char *const lib_names[] = {"sgd",     "adamw",    "momentum",
                                        "nadamw",  "lamb",     "adafactor",
                                        "sam",     "shampoo",  "schedule_free_adamw",
                                        "rmsprop", "schedules"};
#define NUM_LIBS (sizeof lib_names / sizeof lib_names[0])
static tb_lib libs[NUM_LIBS];

static int group_setup(void **unused)
{
    for (size_t k = 0; k < NUM_LIBS; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.so", TP_TEST_PLUGIN_DIR, lib_names[k]);
        if (tb_lib_open(&libs[k], path) != 0)
            return -1;
    }
    return 0;
}

static int group_teardown(void **unused)
{
    for (size_t k = 0; k < NUM_LIBS; k++)
        tb_lib_close(&libs[k]);
    return 0;
}

/* The descriptor with this id in any of the libraries. */
static const tp_plugin_desc *plugin(const char *id)
{
    for (size_t k = 0; k < NUM_LIBS; k++) {
        const tp_plugin_desc *d = tb_lib_find(&libs[k], id);
        if (d != NULL)
            return d;
    }
    fail_msg("no plugin with id \"%s\" in the built baselines", id);
    return NULL;
}

/* The declaration of `name` by the optimizer or by the schedule, or NULL. */
static const tp_hparam_decl *declaration(const tp_plugin_desc *opt, const tp_plugin_desc *sched,
                                         const char *name)
{
    const tp_plugin_desc *ds[2] = {opt, sched};
    for (int j = 0; j < 2; j++)
        for (uint32_t h = 0; ds[j] != NULL && h < ds[j]->num_hparams; h++)
            if (strcmp(hparam_at(ds[j], h)->name, name) == 0)
                return hparam_at(ds[j], h);
    return NULL;
}

/* `value` of key `name` in `where` is declared by the optimizer or the schedule and inside the
 * declared domain. */
static void check_declared(const char *where, const tp_plugin_desc *opt,
                           const tp_plugin_desc *sched, const char *name, double value)
{
    const tp_hparam_decl *h = declaration(opt, sched, name);
    if (h == NULL)
        fail_msg("%s: \"%s\" is declared by neither %s nor %s", where, name, opt->id, sched->id);
    if (!(value >= h->min_value && value <= h->max_value))
        fail_msg("%s: %s = %.17g is outside %s's domain [%g, %g]", where, name, value, opt->id,
                 h->min_value, h->max_value);
}

/* ---------------------------------------------------------------------------------------- */
/* Section 7's rows */

typedef struct dim_want {
    const char *name;
    tp_ss_kind kind;
    double min, max;   /* LOG */
    double points[3];  /* FEASIBLE */
    size_t num_points; /* FEASIBLE */
} dim_want;

#define LOG(n, a, b)                                                                               \
    {                                                                                              \
        n, TP_SS_LOG, a, b, {0}, 0                                                                 \
    }
#define PTS(n, k, ...)                                                                             \
    {                                                                                              \
        n, TP_SS_FEASIBLE, 0, 0, {__VA_ARGS__}, k                                                  \
    }
#define WARMUP   PTS("warmup_factor", 1, 0.05)
#define LS       PTS("label_smoothing", 2, 0.1, 0.2)
#define DROPOUT  PTS("dropout_rate", 2, 0.0, 0.1)
#define BETA2    PTS("beta2", 1, 0.999)
#define LR_ADAM  LOG("learning_rate", 1e-4, 1e-2)
#define MAX_DIMS 10

typedef struct space_want {
    const char *file; /* under submissions/, without .json / .cfg */
    const char *optimizers[2];
    const char *schedule;
    dim_want dims[MAX_DIMS]; /* empty: no reference row, only the generic checks */
} space_want;

static const space_want spaces[] = {
    {"adamw/tuning_search_space",
     {"adamw"},
     "warmup_cosine",
     {LR_ADAM, LOG("one_minus_beta1", 0.02, 0.5), BETA2, WARMUP, LOG("weight_decay", 5e-3, 1.0), LS,
      DROPOUT}},
    {"nadamw/tuning_search_space_ranges",
     {"nadamw"},
     "warmup_cosine",
     {LR_ADAM, LOG("one_minus_beta1", 4e-3, 0.1), BETA2, WARMUP, LOG("weight_decay", 5e-3, 1.0), LS,
      DROPOUT}},
    {"momentum/tuning_search_space",
     {"momentum", "nesterov"},
     "warmup_linear",
     {LOG("learning_rate", 0.02, 5.0), LOG("one_minus_beta1", 5e-3, 0.3), WARMUP,
      LOG("weight_decay", 1e-7, 5e-5), LS, DROPOUT, PTS("decay_steps_factor", 1, 0.9),
      PTS("end_factor", 2, 1e-3, 1e-2)}},
    {"lamb/tuning_search_space",
     {"lamb"},
     "warmup_cosine",
     {LR_ADAM, LOG("one_minus_beta1", 0.05, 0.3), BETA2, WARMUP, LOG("weight_decay", 1e-3, 1.0), LS,
      DROPOUT}},
    {"adafactor/tuning_search_space",
     {"adafactor"},
     "warmup_cosine",
     {LR_ADAM, LOG("one_minus_beta1", 0.01, 0.45), WARMUP, LOG("weight_decay", 1e-3, 1.0), LS,
      DROPOUT}},
    {"sam/tuning_search_space",
     {"sam"},
     "warmup_cosine",
     {LR_ADAM, LOG("one_minus_beta1", 0.05, 0.43), BETA2, WARMUP, LOG("weight_decay", 0.01, 0.2),
      LS, DROPOUT, PTS("rho", 3, 0.01, 0.02, 0.05)}},
    {"shampoo/tuning_search_space",
     {"shampoo"},
     "warmup_cosine",
     {LR_ADAM, LOG("one_minus_beta1", 0.01, 0.15), BETA2, WARMUP, LOG("weight_decay", 5e-3, 1.0),
      LS, DROPOUT}},
    /* Not in section 7: trainperf's own space as its README states it, AdamW's row without
     * one_minus_beta1 and with RMSProp's beta2. */
    {"rmsprop/tuning_search_space",
     {"rmsprop"},
     "warmup_cosine",
     {LR_ADAM, PTS("beta2", 1, 0.99), WARMUP, LOG("weight_decay", 5e-3, 1.0), LS, DROPOUT}},
    /* No reference rows: trainperf's own spaces. */
    {"sgd/tuning_search_space", {"sgd"}, "warmup_cosine", {{NULL}}},
    {"schedule_free_adamw/tuning_search_space", {"schedule_free_adamw"}, "constant", {{NULL}}},
    /* List form. */
    {"nadamw/tuning_search_space", {"nadamw"}, "warmup_cosine", {{NULL}}},
};

/* ---------------------------------------------------------------------------------------- */
/* The checks */

static void load(const char *path, tp_search_space *ss)
{
    char err[1024] = "";
    if (tp_search_space_load(path, ss, err, sizeof err) != 0)
        fail_msg("%s: %s", path, err);
}

/* The JSON file and its libconfig twin: same dimensions or fixed points, same trial points. */
static void check_twins(const tp_search_space *js, const tp_search_space *cs)
{
    assert_int_equal(js->is_list, cs->is_list);
    assert_int_equal(js->num_dims, cs->num_dims);
    for (size_t k = 0; k < js->num_dims; k++) {
        const tp_ss_dim *a = &js->dims[k], *b = &cs->dims[k];
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->kind, b->kind);
        assert_true(a->min == b->min && a->max == b->max);
        assert_int_equal(a->num_points, b->num_points);
        for (size_t p = 0; p < a->num_points; p++)
            assert_true(a->points[p] == b->points[p]);
    }
    assert_int_equal(js->num_fixed, cs->num_fixed);
    for (size_t p = 0; p < js->num_fixed; p++) {
        assert_int_equal(js->fixed_count[p], cs->fixed_count[p]);
        for (size_t k = 0; k < js->fixed_count[p]; k++) {
            assert_string_equal(js->fixed_names[p][k], cs->fixed_names[p][k]);
            assert_true(js->fixed_values[p][k] == cs->fixed_values[p][k]);
        }
    }
    char **a = NULL, **b = NULL, err[1024];
    if (tp_search_space_points(js, 5, &a, err, sizeof err) != 0 ||
        tp_search_space_points(cs, 5, &b, err, sizeof err) != 0)
        fail_msg("%s: %s", js->file, err);
    for (size_t r = 0; r < 5; r++) {
        assert_string_equal(a[r], b[r]);
        free(a[r]);
        free(b[r]);
    }
    free(a);
    free(b);
}

/* Every key of ss declared by the optimizer or the schedule, every value in its domain. */
static void check_keys(const tp_search_space *ss, const tp_plugin_desc *opt,
                       const tp_plugin_desc *sched)
{
    for (size_t k = 0; k < ss->num_dims; k++) {
        const tp_ss_dim *d = &ss->dims[k];
        if (d->kind == TP_SS_FEASIBLE) {
            for (size_t p = 0; p < d->num_points; p++)
                check_declared(ss->file, opt, sched, d->name, d->points[p]);
        } else {
            check_declared(ss->file, opt, sched, d->name, d->min);
            check_declared(ss->file, opt, sched, d->name, d->max);
        }
    }
    for (size_t p = 0; p < ss->num_fixed; p++)
        for (size_t k = 0; k < ss->fixed_count[p]; k++)
            check_declared(ss->file, opt, sched, ss->fixed_names[p][k], ss->fixed_values[p][k]);
}

/* The dimensions of section 7's row, in the reference's order. */
static void check_row(const tp_search_space *ss, const dim_want *want)
{
    size_t n = 0;
    while (n < MAX_DIMS && want[n].name != NULL)
        n++;
    assert_int_equal(ss->is_list, 0);
    if (ss->num_dims != n)
        fail_msg("%s: %zu dimensions, section 7's row has %zu", ss->file, ss->num_dims, n);
    for (size_t k = 0; k < n; k++) {
        const tp_ss_dim *d = &ss->dims[k];
        if (strcmp(d->name, want[k].name) != 0)
            fail_msg("%s: dimension %zu is \"%s\", the reference's is \"%s\" (the order decides "
                     "the quasi-random points)",
                     ss->file, k + 1, d->name, want[k].name);
        assert_int_equal(d->kind, want[k].kind);
        if (d->kind == TP_SS_FEASIBLE) {
            assert_int_equal(d->num_points, want[k].num_points);
            for (size_t p = 0; p < d->num_points; p++)
                assert_true(d->points[p] == want[k].points[p]);
        } else if (d->min != want[k].min || d->max != want[k].max) {
            fail_msg("%s: %s in [%g, %g], section 7 says [%g, %g]", ss->file, d->name, d->min,
                     d->max, want[k].min, want[k].max);
        }
    }
}

static void test_search_spaces(void **unused)
{
    for (size_t s = 0; s < sizeof spaces / sizeof spaces[0]; s++) {
        const space_want *w = &spaces[s];
        char jp[512], cp[512];
        snprintf(jp, sizeof jp, "%s%s.json", SUBMISSIONS, w->file);
        snprintf(cp, sizeof cp, "%s%s.cfg", SUBMISSIONS, w->file);
        tp_search_space js, cs;
        load(jp, &js);
        load(cp, &cs);
        check_twins(&js, &cs);
        const tp_plugin_desc *sched = plugin(w->schedule);
        for (int o = 0; o < 2 && w->optimizers[o] != NULL; o++) {
            check_keys(&js, plugin(w->optimizers[o]), sched);
            check_keys(&cs, plugin(w->optimizers[o]), sched);
        }
        if (w->dims[0].name != NULL)
            check_row(&js, w->dims);
        print_message("%-42s %2zu %s; twins agree; keys declared by %s%s%s / %s%s\n", w->file,
                      js.is_list ? js.num_fixed : js.num_dims,
                      js.is_list ? "fixed points" : "dimensions", w->optimizers[0],
                      w->optimizers[1] ? ", " : "", w->optimizers[1] ? w->optimizers[1] : "",
                      w->schedule, w->dims[0].name != NULL ? "; section 7's row" : "");
        tp_search_space_free(&js);
        tp_search_space_free(&cs);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* NAdamW's list and the self-tuning configs */

typedef struct hp_value {
    const char *name;
    double value;
} hp_value;

/* Point 5 of the NAdamW baseline's external-tuning list, BENCHMARK.md section 7. */
static const hp_value nadamw_point5[] = {
    {"dropout_rate", 0.1},
    {"label_smoothing", 0.0},
    {"learning_rate", 0.0017486387539278373},
    {"one_minus_beta1", 0.06733926164},
    {"beta2", 0.9955159689799007},
    {"weight_decay", 0.08121616522670176},
    {"warmup_factor", 0.02},
};
#define NUM_POINT5 (sizeof nadamw_point5 / sizeof nadamw_point5[0])

static void test_nadamw_list(void **unused)
{
    tp_search_space ss;
    load(SUBMISSIONS "nadamw/tuning_search_space.json", &ss);
    assert_int_equal(ss.is_list, 1);
    assert_int_equal(ss.num_fixed, 5);
    assert_int_equal(ss.fixed_count[4], NUM_POINT5);
    for (size_t k = 0; k < NUM_POINT5; k++) {
        assert_string_equal(ss.fixed_names[4][k], nadamw_point5[k].name);
        assert_true(ss.fixed_values[4][k] == nadamw_point5[k].value);
    }
    tp_search_space_free(&ss);
}

/* The self-tuning sweep config `file`: one self-tuning submission of `optimizer` with
 * `schedule` on fmnist_mlp, its fixed hparams exactly `want`, each declared. */
static void check_self_tuning(const char *file, const char *optimizer, const char *schedule,
                              const hp_value *want, size_t num_want)
{
    tp_sweep_config c;
    char err[1024];
    if (tp_config_load_sweep(file, &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.ruleset, TP_RULESET_SELF);
    assert_int_equal(c.num_workloads, 1);
    assert_string_equal(c.workloads[0], "fmnist_mlp");
    assert_int_equal(c.num_submissions, 1);
    const tp_sweep_submission *s = &c.submissions[0];
    assert_string_equal(s->optimizer, optimizer);
    assert_non_null(s->schedule);
    assert_string_equal(s->schedule, schedule);
    assert_null(s->search_space);
    assert_non_null(s->hparams);
    tp_kv_list kv = {0};
    if (tp_kv_parse(s->hparams, &kv, err, sizeof err) != 0)
        fail_msg("%s: hparams: %s", file, err);
    for (size_t k = 0; k < kv.count; k++)
        check_declared(file, plugin(optimizer), plugin(schedule), kv.items[k].key,
                       kv.items[k].value);
    for (size_t k = 0; k < num_want; k++) {
        const tp_kv *e = tp_kv_find(&kv, want[k].name);
        if (e == NULL || e->value != want[k].value)
            fail_msg("%s: %s should be %.17g", file, want[k].name, want[k].value);
    }
    assert_int_equal(kv.count, num_want);
    tp_kv_free(&kv);
    tp_config_free_sweep(&c);
}

static void test_self_tuning_configs(void **unused)
{
    /* AlgoPerf's self-tuning NAdamW baseline (prize_qualification_baselines/self_tuning/
     * jax_nadamw_full_budget.py): point 5 of the external-tuning list. */
    check_self_tuning(SUBMISSIONS "nadamw/self_tuning.cfg", "nadamw", "warmup_cosine",
                      nadamw_point5, NUM_POINT5);
    /* The 2024 self-tuning winner's HPARAMS (facebookresearch/schedule_free, schedulefree/
     * algoperf/self_tuning/schedule_free_adamw/submission.py), with step_hint_factor 0.75 for
     * its int(warmup_factor * step_hint * 0.75) warmup. */
    static const hp_value sf[] = {
        {"learning_rate", 0.0025},
        {"one_minus_beta1", 0.1},
        {"beta2", 0.9955159689799007},
        {"weight_decay", 0.08121616522670176},
        {"epsilon", 1e-8},
        {"warmup_factor", 0.02},
        {"step_hint_factor", 0.75},
        {"r", 0.75},
        {"weight_lr_power", 2.0},
        {"label_smoothing", 0.2},
        {"dropout_rate", 0.1},
    };
    check_self_tuning(SUBMISSIONS "schedule_free_adamw/self_tuning.cfg", "schedule_free_adamw",
                      "constant", sf, sizeof sf / sizeof sf[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_search_spaces),
        cmocka_unit_test(test_nadamw_list),
        cmocka_unit_test(test_self_tuning_configs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
