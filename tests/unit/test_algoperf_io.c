/*
 * test_algoperf_io.c - core/algoperf_io.c: import of the hand-written AlgoPerf-style logs in
 * tests/data/algoperf (built-in ogbg and wmt targets, the v0.5 held-out variant, a variant not
 * held out, a trial without eval_measurements.csv, NaN cells, an eval past the budget) with
 * per-trial times and the scores worked out in tests/data/algoperf/README.md; held-out
 * choices, the self-tuning budget, v0.5's team layout and a submission directory, a targets
 * file and its errors; the CSV reader on byte order marks, \r\n, blank lines, nan / inf and
 * malformed files; export from a results database filled through core/results.h (layout,
 * exact header and rows, the targets file, one-off runs skipped, clashes and disagreeing
 * targets refused); collect's ruleset detection and errors; the round trip database ->
 * export -> import giving the same trial times and the same scores bit for bit; the report.
 */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp, open_memstream, symlink */

#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/algoperf_io.h"
#include "core/results.h"
#include "core/score.h"
#include <trainperf/trainperf.h>

#define LOGS TP_TEST_SOURCE_DIR "/tests/data/algoperf/logs"

static char err[1024];

/* ---------------------------------------------------------------------------------------- */
/* Helpers */

typedef struct tmp {
    char dir[64];
} tmp;

static int setup(void **state)
{
    tmp *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -1;
    snprintf(t->dir, sizeof t->dir, "/tmp/tp_test_algoperf_XXXXXX");
    if (mkdtemp(t->dir) == NULL)
        return -1;
    *state = t;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    tmp *t = *state;
    nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(t);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(dir, 0777);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    char *s = calloc(1, 1 << 16);
    assert_non_null(s);
    size_t n = fread(s, 1, (1 << 16) - 1, f);
    s[n] = '\0';
    fclose(f);
    return s;
}

static tp_algoperf_trials *import_ok(const char *dir, const tp_algoperf_options *o)
{
    tp_algoperf_trials *t = NULL;
    int rc = tp_algoperf_import(dir, o, &t, err, sizeof err);
    if (rc != 0)
        fail_msg("import %s: %s (%s)", dir, err, tp_err_name(rc));
    assert_non_null(t);
    return t;
}

static int import_fails(const char *dir, const tp_algoperf_options *o, int want)
{
    tp_algoperf_trials *t = NULL;
    int rc = tp_algoperf_import(dir, o, &t, err, sizeof err);
    if (rc != want)
        fail_msg("import %s: got %s, want %s (%s)", dir, tp_err_name(rc), tp_err_name(want), err);
    assert_null(t);
    printf("expected error: %s\n", err);
    return rc;
}

/* The time of one trial (trial is trial_<i>'s i, i.e. 1-based); fails when absent. */
static double trial_time(const tp_algoperf_trials *t, const char *sub, const char *wl,
                         const char *var, int study, int trial)
{
    for (size_t i = 0; i < t->num_trials; i++) {
        const tp_score_trial *e = &t->trials[i];
        if (strcmp(e->submission, sub) == 0 && strcmp(e->workload, wl) == 0 &&
            strcmp(e->variant, var) == 0 && e->study == study && e->trial_index == trial - 1)
            return e->time_to_target;
    }
    fail_msg("no trial %s %s %s study %d trial %d", sub, wl, var, study, trial);
    return NAN;
}

static tp_score_table *score(const tp_algoperf_trials *t)
{
    tp_score_options o = {.self_tuning = t->self_tuning, .heldout = 1, .max_ratio = 4.0};
    tp_score_table *tab = NULL;
    int rc = tp_score_compute(t->trials, t->num_trials, &o, &tab, err, sizeof err);
    if (rc != 0)
        fail_msg("score: %s", err);
    return tab;
}

static double sub_score(const tp_score_table *tab, const char *name)
{
    for (size_t s = 0; s < tab->num_submissions; s++)
        if (strcmp(tab->submissions[s], name) == 0)
            return tab->score[s];
    fail_msg("no submission %s", name);
    return NAN;
}

static void assert_close(double a, double b)
{
    if (!(fabs(a - b) <= 1e-12))
        fail_msg("%.17g != %.17g", a, b);
}

/* ---------------------------------------------------------------------------------------- */
/* Import of the fixture logs */

static void import_fixture_builtin_targets(void **state)
{
    (void)state;
    tp_algoperf_trials *t = import_ok(LOGS, NULL);
    assert_int_equal(t->num_trials, 16);
    assert_int_equal(t->num_skipped, 2); /* ogbg_gelu (not held out), a trial without csv */
    assert_int_equal(t->self_tuning, 0);

    assert_true(trial_time(t, "nadamw", "ogbg", "", 0, 1) == 1500.0);
    assert_true(trial_time(t, "nadamw", "ogbg", "", 0, 2) == 1200.0);
    assert_true(isinf(trial_time(t, "nadamw", "ogbg", "", 1, 1)));
    assert_true(trial_time(t, "nadamw", "ogbg", "", 1, 2) == 2500.0); /* after a NaN cell */
    assert_true(trial_time(t, "nadamw", "ogbg", "model_size", 1, 1) == 2100.0);
    assert_true(isinf(trial_time(t, "nadamw", "wmt", "", 0, 2))); /* NaN: diverged */
    assert_true(trial_time(t, "nadamw", "wmt", "", 1, 1) == 36000.0);
    assert_true(isinf(trial_time(t, "nadamw", "wmt", "", 1, 2)));     /* only past budget */
    assert_true(trial_time(t, "shampoo", "ogbg", "", 0, 1) == 800.0); /* _pytorch stripped */
    assert_true(isinf(trial_time(t, "shampoo", "ogbg", "model_size", 1, 1)));

    tp_score_table *tab = score(t);
    assert_int_equal(tab->num_workloads, 2);
    assert_string_equal(tab->workloads[0], "ogbg");
    assert_string_equal(tab->variant_name[0], "model_size");
    assert_null(tab->variant_name[1]);
    assert_true(tab->raw_time[0 * 2 + 0] == 1850.0);     /* nadamw ogbg: median(1200, 2500) */
    assert_true(tab->variant_time[0 * 2 + 0] == 1750.0); /* nadamw ogbg_model_size */
    assert_true(tab->raw_time[0 * 2 + 1] == 33000.0);    /* nadamw wmt */
    assert_true(tab->raw_time[1 * 2 + 0] == 1000.0);     /* shampoo ogbg ... */
    assert_true(isinf(tab->variant_time[1 * 2 + 0]));    /* ... whose variant failed */
    assert_true(isinf(tab->time[1 * 2 + 0]));
    assert_true(tab->raw_time[1 * 2 + 1] == 20000.0);
    assert_close(sub_score(tab, "nadamw"), (3.0 + (4.0 - 33000.0 / 20000.0)) / 6.0);
    assert_close(sub_score(tab, "shampoo"), 0.5);
    tp_algoperf_print_scores(stdout, tab, NULL);

    /* The report names the reasons. */
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_non_null(m);
    assert_int_equal(tp_algoperf_print_scores(m, tab, NULL), 0);
    fclose(m);
    assert_non_null(strstr(buf, "held-out variants: ogbg_model_size"));
    assert_non_null(strstr(buf, "nadamw  score 0.8917"));
    assert_non_null(strstr(buf, "variant not reached"));
    assert_non_null(strstr(buf, "   1  nadamw     0.8917"));
    assert_non_null(strstr(buf, "   2  shampoo    0.5000"));
    free(buf);
    tp_score_free(tab);
    tp_algoperf_trials_free(t);
    tp_algoperf_trials_free(NULL);
}

static void import_heldout_choices(void **state)
{
    (void)state;
    /* No variants: plain base scoring (README: 0.75 and 1). */
    tp_algoperf_options o = {.heldout = ""};
    tp_algoperf_trials *t = import_ok(LOGS, &o);
    assert_int_equal(t->num_trials, 12);
    assert_int_equal(t->num_skipped, 6);
    tp_score_table *tab = score(t);
    assert_close(sub_score(tab, "nadamw"), 0.75);
    assert_close(sub_score(tab, "shampoo"), 1.0);
    tp_score_free(tab);
    tp_algoperf_trials_free(t);

    /* ogbg_gelu instead: shampoo has no trials of it, so its ogbg is out again. */
    o.heldout = "ogbg_gelu";
    t = import_ok(LOGS, &o);
    assert_int_equal(t->num_trials, 13);
    assert_true(trial_time(t, "nadamw", "ogbg", "gelu", 0, 1) == 1600.0);
    tab = score(t);
    assert_string_equal(tab->variant_name[0], "gelu");
    assert_close(sub_score(tab, "shampoo"), 0.5);
    tp_score_free(tab);
    tp_algoperf_trials_free(t);

    o.heldout = "ogbg_nope";
    import_fails(LOGS, &o, TP_EINVAL);
    o.heldout = "ogbg";
    import_fails(LOGS, &o, TP_EINVAL);
}

static void import_self_tuning_budget(void **state)
{
    (void)state;
    /* 1.5 x 43,336 s: the wmt eval at 45,000 s now counts. */
    tp_algoperf_options o = {.ruleset = "self"};
    tp_algoperf_trials *t = import_ok(LOGS, &o);
    assert_int_equal(t->self_tuning, 1);
    assert_true(trial_time(t, "nadamw", "wmt", "", 1, 2) == 45000.0);
    tp_algoperf_trials_free(t);
    o.ruleset = "bogus";
    import_fails(LOGS, &o, TP_EINVAL);
}

static void import_layouts(void **state)
{
    tmp *d = *state;
    char p[256], q[256];
    /* v0.5 scoring: <team>/<submission>/study_<k>/... */
    snprintf(p, sizeof p, "%s/team_a", d->dir);
    assert_int_equal(mkdir(p, 0777), 0);
    snprintf(p, sizeof p, "%s/team_a/nadamw", d->dir);
    assert_int_equal(symlink(LOGS "/nadamw", p), 0);
    snprintf(p, sizeof p, "%s/team_b", d->dir);
    assert_int_equal(mkdir(p, 0777), 0);
    snprintf(p, sizeof p, "%s/team_b/shampoo", d->dir);
    assert_int_equal(symlink(LOGS "/shampoo", p), 0);
    snprintf(p, sizeof p, "%s/notes.txt", d->dir);
    write_file(p, "not a directory\n");
    tp_algoperf_trials *t = import_ok(d->dir, NULL);
    assert_int_equal(t->num_trials, 16);
    tp_algoperf_trials_free(t);

    /* A submission directory itself. */
    snprintf(q, sizeof q, "%s/", LOGS "/nadamw");
    t = import_ok(q, NULL);
    assert_int_equal(t->num_trials, 10);
    assert_string_equal(t->trials[0].submission, "nadamw");
    tp_algoperf_trials_free(t);

    snprintf(p, sizeof p, "%s/empty", d->dir);
    assert_int_equal(mkdir(p, 0777), 0);
    import_fails(p, NULL, TP_ENOENT);
    import_fails("/nonexistent/tp_algoperf", NULL, TP_ENOENT);
}

static void import_with_targets_file(void **state)
{
    tmp *d = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/targets.json", d->dir);
    tp_algoperf_options o = {.targets_path = path};

    /* A file without ogbg_model_size: its directories are unknown. */
    write_file(path, "{\"base_workloads\": [\"ogbg\", \"wmt\"],\n"
                     " \"workloads\": {\n"
                     "  \"ogbg\": {\"target_metric_name\": \"mean_average_precision\",\n"
                     "            \"target_metric_goal\": \"maximize\",\n"
                     "            \"validation_target_value\": 0.2805, \"step_hint\": 1},\n"
                     "  \"wmt\": {\"target_metric_name\": \"bleu\", \"target_metric_goal\":\n"
                     "           \"maximize\", \"validation_target_value\": 30.0,\n"
                     "           \"max_allowed_runtime_sec\": 40000}}}\n");
    import_fails(LOGS, &o, TP_ENOENT);
    assert_non_null(strstr(err, "ogbg_gelu"));

    write_file(path, "{\"benchmark_version\": \"test\", \"base_workloads\": [\"ogbg\", \"wmt\"],\n"
                     " \"held_out_workloads\": [\"ogbg_gelu\"],\n"
                     " \"workloads\": {\n"
                     "  \"ogbg\": {\"target_metric_name\": \"mean_average_precision\",\n"
                     "            \"target_metric_goal\": \"maximize\",\n"
                     "            \"validation_target_value\": 0.2805, \"step_hint\": 1},\n"
                     "  \"ogbg_gelu\": {\"target_metric_name\": \"mean_average_precision\",\n"
                     "            \"target_metric_goal\": \"maximize\",\n"
                     "            \"validation_target_value\": 0.3, \"step_hint\": 1},\n"
                     "  \"ogbg_model_size\": {\"target_metric_name\": \"mean_average_precision\",\n"
                     "            \"target_metric_goal\": \"maximize\",\n"
                     "            \"validation_target_value\": 0.3, \"step_hint\": 1},\n"
                     "  \"wmt\": {\"target_metric_name\": \"bleu\", \"target_metric_goal\":\n"
                     "           \"maximize\", \"validation_target_value\": 30.0,\n"
                     "           \"max_allowed_runtime_sec\": 28000}}}\n");
    tp_algoperf_trials *t = import_ok(LOGS, &o);
    assert_int_equal(t->num_trials, 13); /* ogbg_gelu held out, ogbg_model_size skipped */
    assert_true(trial_time(t, "nadamw", "ogbg", "", 0, 1) == 1500.0);
    assert_true(trial_time(t, "nadamw", "wmt", "", 0, 1) == 20000.0); /* 30.5 >= 30 */
    assert_true(trial_time(t, "nadamw", "wmt", "", 1, 1) == 27000.0);
    assert_true(isinf(trial_time(t, "nadamw", "wmt", "", 1, 2))); /* 30000 > 28000 budget */
    assert_true(isinf(trial_time(t, "nadamw", "ogbg", "gelu", 0, 1)));
    tp_algoperf_trials_free(t);

    /* Broken files. */
    const char *bad[] = {
        "{\"base_workloads\": [\"ogbg\"]", /* not JSON */
        "{\"base_workloads\": [\"ogbg\"]}",
        "{\"base_workloads\": [\"ogbg\"], \"workloads\": {\"ogbg\": {\"target_metric_name\": "
        "\"x\", \"target_metric_goal\": \"up\", \"validation_target_value\": 1}}}",
        "{\"base_workloads\": [\"ogbg\"], \"workloads\": {\"wmt\": {\"target_metric_name\": "
        "\"x\", \"target_metric_goal\": \"maximize\", \"validation_target_value\": 1}}}",
        "{\"base_workloads\": [\"ogbg\"], \"held_out_workloads\": [\"ogbg\"], \"workloads\": "
        "{\"ogbg\": {\"target_metric_name\": \"x\", \"target_metric_goal\": \"maximize\", "
        "\"validation_target_value\": 1}}}",
        "{\"base_workloads\": [\"ogbg\"], \"workloads\": {\"ogbg\": {\"target_metric_name\": "
        "\"x\", \"target_metric_goal\": \"maximize\", \"validation_target_value\": 1, "
        "\"max_allowed_runtime_sec\": -5}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i]);
        import_fails(LOGS, &o, TP_ECONFIG);
        assert_non_null(strstr(err, path));
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The CSV reader */

static void csv_reader_edge_cases(void **state)
{
    tmp *d = *state;
    char root[256], csv[320];
    snprintf(root, sizeof root, "%s/logs", d->dir);
    snprintf(csv, sizeof csv, "%s/sub/study_0/ogbg/trial_1/eval_measurements.csv", root);

    /* BOM, \r\n, blank lines, nan and inf cells, only the two columns needed. */
    write_file(csv, "\xEF\xBB\xBFscore,validation/mean_average_precision\r\n"
                    "10.0,nan\r\n"
                    "\r\n"
                    "20.0,\r\n"
                    "30.0,inf\r\n" /* infinite metrics never reach */
                    " 40.5 ,0.3\r\n"
                    "50.0,0.4\r\n");
    tp_algoperf_trials *t = import_ok(root, NULL);
    assert_int_equal(t->num_trials, 1);
    assert_true(t->trials[0].time_to_target == 40.5);
    tp_algoperf_trials_free(t);

    /* accumulated_submission_time when there is no score column; a header alone: inf. */
    write_file(csv, "accumulated_submission_time,global_step,validation/mean_average_precision\n"
                    "7.0,1,0.5\n");
    t = import_ok(root, NULL);
    assert_true(t->trials[0].time_to_target == 7.0);
    tp_algoperf_trials_free(t);
    write_file(csv, "score,validation/mean_average_precision\n");
    t = import_ok(root, NULL);
    assert_true(isinf(t->trials[0].time_to_target));
    tp_algoperf_trials_free(t);

    struct {
        const char *text;
        const char *says;
    } bad[] = {
        {"score,validation/mean_average_precision\n1.0,0.1\n2.0,abc\n", ":3: column 2"},
        {"score,validation/mean_average_precision\n\"1.0\",0.1\n", "quoted"},
        {"score,validation/mean_average_precision\n1.0,0.1,7\n", "3 fields where the header has 2"},
        {"score,validation/loss\n1.0,0.1\n", "validation/mean_average_precision"},
        {"global_step,validation/mean_average_precision\n1,0.1\n", "score"},
        {"", "empty file"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(csv, bad[i].text);
        import_fails(root, NULL, bad[i].text[0] ? TP_EINVAL : TP_EINVAL);
        if (strstr(err, bad[i].says) == NULL || strstr(err, "eval_measurements.csv") == NULL)
            fail_msg("error \"%s\" does not say \"%s\" and the file", err, bad[i].says);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* A results database */

typedef struct ev {
    double score, metric;
} ev;

static int64_t add_trial(tp_results *db, const char *sub, const char *ruleset, const char *variant,
                         int study, int trial, double target, const ev *evs, size_t n)
{
    tp_trial_meta m = {
        .workload = "fmnist_mlp",
        .variant = variant,
        .optimizer = "adamw",
        .schedule = "warmup_cosine",
        .selection = "next_batch",
        .hparams_json = "{}",
        .seed = 1,
        .budget = 30.0,
        .clock = "wall",
        .metric = "accuracy",
        .maximize = 1,
        .validation_target = target,
        .test_target = target - 0.01,
        .submission = sub,
        .ruleset = ruleset,
        .study = study,
        .trial_index = trial,
    };
    int64_t id;
    if (tp_results_begin_trial(db, &m, &id, err, sizeof err) != 0)
        fail_msg("begin_trial: %s", err);
    double ttt = INFINITY;
    for (size_t i = 0; i < n; i++) {
        tp_eval_row e = {
            .eval_index = (uint32_t)i,
            .global_step = 100 * (uint64_t)(i + 1),
            .score = evs[i].score,
            .submission_time_wall = evs[i].score,
            .submission_time_cpu = 2 * evs[i].score,
            .total_duration = evs[i].score + 0.5,
            .validation_metric = evs[i].metric,
            .validation_loss = 0.5,
            .test_metric = evs[i].metric - 0.01,
            .test_loss = i == 1 ? NAN : 0.25,
            .validation_reached = evs[i].metric >= target,
            .test_reached = 0,
        };
        if (isinf(ttt) && evs[i].metric >= target)
            ttt = evs[i].score;
        if (tp_results_add_eval(db, id, &e, err, sizeof err) != 0)
            fail_msg("add_eval: %s", err);
    }
    tp_trial_end end = {
        .status = isinf(ttt) ? TP_TRIAL_BUDGET : TP_TRIAL_REACHED,
        .message = "",
        .steps = 100 * n,
        .time_to_target = ttt,
        .best_validation_metric = n > 0 ? evs[n - 1].metric : NAN,
    };
    if (tp_results_end_trial(db, id, &end, err, sizeof err) != 0)
        fail_msg("end_trial: %s", err);
    return id;
}

#define ADD(db, sub, rs, var, study, trial, target, ...)                                           \
    do {                                                                                           \
        const ev evs_[] = {__VA_ARGS__};                                                           \
        add_trial(db, sub, rs, var, study, trial, target, evs_, sizeof evs_ / sizeof evs_[0]);     \
    } while (0)

/* Two submissions, two studies, the tanh variant, and a one-off run. */
static tp_results *sweep_db(const char *dir)
{
    tp_results *db = NULL;
    if (tp_results_open(dir, &db, err, sizeof err) != 0)
        fail_msg("open: %s", err);
    ADD(db, "adamw", "external", "", 0, 0, 0.885, {1.5, 0.80}, {3.25, 0.886}, {5.0, 0.89});
    ADD(db, "adamw", "external", "", 0, 1, 0.885, {2.0, 0.70}, {4.0, 0.85});
    ADD(db, "adamw", "external", "", 1, 0, 0.885, {1.0, 0.87}, {2.5, 0.9});
    ADD(db, "adamw", "external", "tanh", 0, 0, 0.88, {2.0, 0.881});
    ADD(db, "adamw", "external", "tanh", 1, 0, 0.88, {3.0, 0.87}, {6.0, 0.882});
    ADD(db, "sgd", "external", "", 0, 0, 0.885, {4.0, 0.886});
    ADD(db, "sgd", "external", "", 1, 0, 0.885, {2.0, 0.5}, {5.0, 0.89});
    ADD(db, "sgd", "external", "tanh", 0, 0, 0.88, {7.0, 0.9});
    ADD(db, "sgd", "external", "tanh", 1, 0, 0.88, {8.0, 0.85}, {9.5, 0.881});
    ADD(db, NULL, NULL, "", 0, 0, 0.885, {1.0, 0.95}); /* a one-off `trainperf run` */
    return db;
}

static void export_layout_and_columns(void **state)
{
    tmp *d = *state;
    char dbdir[256], out[256], targets[256], p[512];
    snprintf(dbdir, sizeof dbdir, "%s/results", d->dir);
    snprintf(out, sizeof out, "%s/export", d->dir);
    snprintf(targets, sizeof targets, "%s/export-targets.json", d->dir);
    tp_results *db = sweep_db(dbdir);
    size_t n = 0;
    if (tp_algoperf_export(db, out, targets, &n, err, sizeof err) != 0)
        fail_msg("export: %s", err);
    assert_int_equal(n, 9);

    snprintf(p, sizeof p, "%s/adamw/study_0/fmnist_mlp/trial_1/eval_measurements.csv", out);
    char *csv = read_text(p);
    printf("%s:\n%s", p, csv);
    assert_string_equal(csv, "accumulated_submission_time,global_step,preemption_count,score,"
                             "test/accuracy,test/loss,total_duration,validation/accuracy,"
                             "validation/loss\n"
                             "1.5,100,0,1.5,0.79,0.25,2.0,0.8,0.5\n"
                             "3.25,200,0,3.25,0.876,,3.75,0.886,0.5\n"
                             "5.0,300,0,5.0,0.88,0.25,5.5,0.89,0.5\n");
    free(csv);
    const char *exist[] = {
        "adamw/study_0/fmnist_mlp/trial_2/eval_measurements.csv",
        "adamw/study_1/fmnist_mlp/trial_1/eval_measurements.csv",
        "adamw/study_0/fmnist_mlp_tanh/trial_1/eval_measurements.csv",
        "sgd/study_1/fmnist_mlp_tanh/trial_1/eval_measurements.csv",
    };
    for (size_t i = 0; i < sizeof exist / sizeof exist[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", out, exist[i]);
        if (access(p, R_OK) != 0)
            fail_msg("%s not written", p);
    }
    snprintf(p, sizeof p, "%s/adamw/study_0/fmnist_mlp/trial_3", out);
    assert_int_not_equal(access(p, F_OK), 0);

    /* The targets file is AlgoPerf's workload_targets.json format. */
    json_error_t je;
    json_t *root = json_load_file(targets, 0, &je);
    if (root == NULL)
        fail_msg("%s:%d: %s", targets, je.line, je.text);
    json_t *base = json_object_get(root, "base_workloads");
    json_t *held = json_object_get(root, "held_out_workloads");
    json_t *w = json_object_get(json_object_get(root, "workloads"), "fmnist_mlp");
    json_t *wv = json_object_get(json_object_get(root, "workloads"), "fmnist_mlp_tanh");
    assert_int_equal(json_array_size(base), 1);
    assert_string_equal(json_string_value(json_array_get(base, 0)), "fmnist_mlp");
    assert_int_equal(json_array_size(held), 1);
    assert_string_equal(json_string_value(json_array_get(held, 0)), "fmnist_mlp_tanh");
    assert_string_equal(json_string_value(json_object_get(w, "target_metric_name")), "accuracy");
    assert_string_equal(json_string_value(json_object_get(w, "target_metric_goal")), "maximize");
    assert_true(json_number_value(json_object_get(w, "validation_target_value")) == 0.885);
    assert_true(json_number_value(json_object_get(w, "max_allowed_runtime_sec")) == 30.0);
    assert_true(json_number_value(json_object_get(wv, "validation_target_value")) == 0.88);
    json_decref(root);

    /* Exporting again overwrites. */
    assert_int_equal(tp_algoperf_export(db, out, NULL, &n, err, sizeof err), 0);
    tp_results_close(db);
}

static void export_errors(void **state)
{
    tmp *d = *state;
    char dir[256], out[256], targets[256];
    snprintf(out, sizeof out, "%s/export", d->dir);
    snprintf(targets, sizeof targets, "%s/t.json", d->dir);

    /* Only one-off runs. */
    snprintf(dir, sizeof dir, "%s/oneoff", d->dir);
    tp_results *db = NULL;
    assert_int_equal(tp_results_open(dir, &db, err, sizeof err), 0);
    ADD(db, NULL, NULL, "", 0, 0, 0.885, {1.0, 0.95});
    assert_int_equal(tp_algoperf_export(db, out, NULL, NULL, err, sizeof err), TP_ENOENT);
    printf("expected error: %s\n", err);
    tp_results_close(db);

    /* Two trials for one directory. */
    snprintf(dir, sizeof dir, "%s/clash", d->dir);
    assert_int_equal(tp_results_open(dir, &db, err, sizeof err), 0);
    ADD(db, "a", "external", "", 0, 0, 0.885, {1.0, 0.95});
    ADD(db, "a", "external", "", 0, 0, 0.885, {2.0, 0.95});
    assert_int_equal(tp_algoperf_export(db, out, NULL, NULL, err, sizeof err), TP_EINVAL);
    assert_non_null(strstr(err, "a/study_0/fmnist_mlp/trial_1"));
    tp_results_close(db);

    /* Trials of one workload with two targets: fine for the CSVs, not for a targets file. */
    snprintf(dir, sizeof dir, "%s/targets", d->dir);
    assert_int_equal(tp_results_open(dir, &db, err, sizeof err), 0);
    ADD(db, "a", "external", "", 0, 0, 0.885, {1.0, 0.95});
    ADD(db, "a", "external", "", 0, 1, 0.9, {1.0, 0.95});
    assert_int_equal(tp_algoperf_export(db, out, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(tp_algoperf_export(db, out, targets, NULL, err, sizeof err), TP_EINVAL);
    printf("expected error: %s\n", err);
    tp_results_close(db);

    /* A name that cannot be a directory. */
    snprintf(dir, sizeof dir, "%s/names", d->dir);
    assert_int_equal(tp_results_open(dir, &db, err, sizeof err), 0);
    ADD(db, "../evil", "external", "", 0, 0, 0.885, {1.0, 0.95});
    assert_int_equal(tp_algoperf_export(db, out, NULL, NULL, err, sizeof err), TP_EINVAL);
    printf("expected error: %s\n", err);
    tp_results_close(db);
}

/* ---------------------------------------------------------------------------------------- */
/* Collect and the round trip */

static int cmp_trial(const void *a, const void *b)
{
    const tp_score_trial *x = a, *y = b;
    int c = strcmp(x->submission, y->submission);
    if (c == 0)
        c = strcmp(x->workload, y->workload);
    if (c == 0)
        c = strcmp(x->variant, y->variant);
    if (c == 0)
        c = (x->study > y->study) - (x->study < y->study);
    if (c == 0)
        c = (x->trial_index > y->trial_index) - (x->trial_index < y->trial_index);
    return c;
}

static void round_trip_database_export_import(void **state)
{
    tmp *d = *state;
    char dbdir[256], out[256], targets[256];
    snprintf(dbdir, sizeof dbdir, "%s/results", d->dir);
    snprintf(out, sizeof out, "%s/export", d->dir);
    snprintf(targets, sizeof targets, "%s/export-targets.json", d->dir);
    tp_results *db = sweep_db(dbdir);

    tp_algoperf_trials *a = NULL;
    if (tp_algoperf_collect(db, NULL, &a, err, sizeof err) != 0)
        fail_msg("collect: %s", err);
    assert_int_equal(a->num_trials, 9);
    assert_int_equal(a->num_skipped, 1); /* the one-off run */
    assert_int_equal(a->self_tuning, 0);
    assert_true(trial_time(a, "adamw", "fmnist_mlp", "", 0, 1) == 3.25);
    assert_true(isinf(trial_time(a, "adamw", "fmnist_mlp", "", 0, 2)));
    assert_true(trial_time(a, "adamw", "fmnist_mlp", "tanh", 1, 1) == 6.0);
    assert_true(trial_time(a, "sgd", "fmnist_mlp", "tanh", 1, 1) == 9.5);

    assert_int_equal(tp_algoperf_export(db, out, targets, NULL, err, sizeof err), 0);
    tp_algoperf_options o = {.targets_path = targets};
    tp_algoperf_trials *b = import_ok(out, &o);
    assert_int_equal(b->num_trials, a->num_trials);
    qsort(a->trials, a->num_trials, sizeof *a->trials, cmp_trial);
    qsort(b->trials, b->num_trials, sizeof *b->trials, cmp_trial);
    for (size_t i = 0; i < a->num_trials; i++) {
        assert_int_equal(cmp_trial(&a->trials[i], &b->trials[i]), 0);
        assert_true(a->trials[i].time_to_target == b->trials[i].time_to_target ||
                    (isinf(a->trials[i].time_to_target) && isinf(b->trials[i].time_to_target)));
    }

    tp_score_table *ta = score(a), *tb = score(b);
    assert_int_equal(ta->num_submissions, 2);
    assert_int_equal(tb->num_submissions, 2);
    assert_int_equal(ta->num_workloads, 1);
    assert_int_equal(tb->num_workloads, 1);
    assert_string_equal(tb->variant_name[0], "tanh");
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(ta->submissions[i], tb->submissions[i]);
        assert_memory_equal(&ta->raw_time[i], &tb->raw_time[i], sizeof(double));
        assert_memory_equal(&ta->variant_time[i], &tb->variant_time[i], sizeof(double));
        assert_memory_equal(&ta->ratio[i], &tb->ratio[i], sizeof(double));
        assert_memory_equal(&ta->score[i], &tb->score[i], sizeof(double));
    }
    /* adamw: base median(3.25, 2.5) = 2.875, tanh median(2, 6) = 4; sgd: base median(4, 5) =
     * 4.5, tanh median(7, 9.5) = 8.25 (within 4 x 4), so sgd keeps ratio 4.5 / 2.875. */
    assert_true(ta->raw_time[0] == 2.875);
    assert_true(ta->variant_time[0] == 4.0);
    assert_true(ta->raw_time[1] == 4.5);
    assert_true(ta->variant_time[1] == 8.25);
    assert_true(ta->score[0] == 1.0);
    assert_close(ta->score[1], (4.0 - 4.5 / 2.875) / 3.0);
    printf("score from the database: adamw %.4f, sgd %.4f; from its export: %.4f, %.4f\n",
           ta->score[0], ta->score[1], tb->score[0], tb->score[1]);
    tp_score_free(ta);
    tp_score_free(tb);
    tp_algoperf_trials_free(a);
    tp_algoperf_trials_free(b);
    tp_results_close(db);
}

/* Scoring treats a failed trial as "did not reach the target", even when an eval before the
 * failure did reach it (issue 4's failure taxonomy). */
static void collect_failed_trial_never_reaches(void **state)
{
    const char *dir = ((const tmp *)*state)->dir;
    tp_results *db = NULL;
    if (tp_results_open(dir, &db, err, sizeof err) != 0)
        fail_msg("open: %s", err);
    ADD(db, "adamw", "external", "", 0, 0, 0.885, {1.0, 0.90}, {2.0, 0.91});
    int64_t id = 0;
    const ev evs[] = {{1.0, 0.90}, {2.0, 0.91}};
    id = add_trial(db, "sgd", "external", "", 0, 0, 0.885, evs, 2);
    tp_trial_end end = {.status = TP_TRIAL_FAILED,
                        .reason = TP_ECRASH,
                        .message = "signal 11",
                        .steps = 200,
                        .time_to_target = 1.0};
    if (tp_results_end_trial(db, id, &end, err, sizeof err) != 0)
        fail_msg("end_trial: %s", err);
    tp_algoperf_trials *t = NULL;
    assert_int_equal(tp_algoperf_collect(db, NULL, &t, err, sizeof err), 0);
    assert_true(trial_time(t, "adamw", "fmnist_mlp", "", 0, 1) == 1.0); /* trial 1 = index 0 */
    assert_true(isinf(trial_time(t, "sgd", "fmnist_mlp", "", 0, 1)));
    tp_algoperf_trials_free(t);
    tp_results_close(db);
}

static void collect_rulesets_and_variants(void **state)
{
    tmp *d = *state;
    char dir[256];
    tp_algoperf_trials *t = NULL;

    /* Two submissions of different rulesets: detect refuses, a choice works. */
    snprintf(dir, sizeof dir, "%s/two", d->dir);
    tp_results *db = NULL;
    assert_int_equal(tp_results_open(dir, &db, err, sizeof err), 0);
    ADD(db, "ext", "external", "", 0, 0, 0.885, {1.0, 0.95});
    ADD(db, "ext", "external", "", 0, 1, 0.885, {2.0, 0.95});
    ADD(db, "auto", "self", "", 0, 0, 0.885, {3.0, 0.95});
    ADD(db, "auto", "self", "", 1, 0, 0.885, {4.0, 0.5});
    assert_int_equal(tp_algoperf_collect(db, NULL, &t, err, sizeof err), TP_EINVAL);
    assert_null(t);
    printf("expected error: %s\n", err);
    tp_algoperf_options o = {.ruleset = "self"};
    assert_int_equal(tp_algoperf_collect(db, &o, &t, err, sizeof err), 0);
    assert_int_equal(t->num_trials, 2);
    assert_int_equal(t->num_skipped, 2);
    assert_int_equal(t->self_tuning, 1);
    tp_score_table *tab = score(t);       /* one trial per study: fine for self-tuning */
    assert_true(isinf(tab->raw_time[0])); /* median(3, inf) */
    tp_score_free(tab);
    tp_algoperf_trials_free(t);
    o.ruleset = "external";
    assert_int_equal(tp_algoperf_collect(db, &o, &t, err, sizeof err), 0);
    assert_int_equal(t->num_trials, 2);
    assert_int_equal(t->self_tuning, 0);
    tp_algoperf_trials_free(t);
    o.ruleset = "nope";
    assert_int_equal(tp_algoperf_collect(db, &o, &t, err, sizeof err), TP_EINVAL);
    /* One submission with both rulesets. */
    ADD(db, "ext", "self", "", 2, 0, 0.885, {1.0, 0.95});
    o.ruleset = "external";
    assert_int_equal(tp_algoperf_collect(db, &o, &t, err, sizeof err), TP_EINVAL);
    assert_non_null(strstr(err, "ext"));
    printf("expected error: %s\n", err);
    tp_results_close(db);

    /* Two variants of one workload: choose the held-out one. */
    snprintf(dir, sizeof dir, "%s/variants", d->dir);
    assert_int_equal(tp_results_open(dir, &db, err, sizeof err), 0);
    ADD(db, "a", "external", "", 0, 0, 0.885, {1.0, 0.95});
    ADD(db, "a", "external", "tanh", 0, 0, 0.88, {1.0, 0.95});
    ADD(db, "a", "external", "gelu", 0, 0, 0.87, {1.0, 0.95});
    assert_int_equal(tp_algoperf_collect(db, NULL, &t, err, sizeof err), TP_EINVAL);
    printf("expected error: %s\n", err);
    tp_algoperf_options h = {.heldout = "fmnist_mlp_gelu"};
    assert_int_equal(tp_algoperf_collect(db, &h, &t, err, sizeof err), 0);
    assert_int_equal(t->num_trials, 2);
    assert_int_equal(t->num_skipped, 1);
    tp_algoperf_trials_free(t);
    tp_results_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(import_fixture_builtin_targets),
        cmocka_unit_test(import_heldout_choices),
        cmocka_unit_test(import_self_tuning_budget),
        cmocka_unit_test_setup_teardown(import_layouts, setup, teardown),
        cmocka_unit_test_setup_teardown(import_with_targets_file, setup, teardown),
        cmocka_unit_test_setup_teardown(csv_reader_edge_cases, setup, teardown),
        cmocka_unit_test_setup_teardown(export_layout_and_columns, setup, teardown),
        cmocka_unit_test_setup_teardown(export_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(round_trip_database_export_import, setup, teardown),
        cmocka_unit_test_setup_teardown(collect_rulesets_and_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(collect_failed_trial_never_reaches, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
