/*
 * test_sweep.c - a tiny tuning-ruleset sweep through the real binaries: two submissions
 * (AdamW and SGD with their search spaces), two studies of two trials, fmnist_mlp on a small
 * subset plus one held-out variant drawn by seed, two trials at a time. Checked: every
 * planned trial is recorded once with its submission, study, trial index, plan key and evals;
 * studies share their points (the reference code's way); trials with the same study and index
 * share their seed across submissions; the benchmark score equals a recomputation from the
 * database's raw rows; running the sweep again runs nothing; a trial whose host died mid-run is
 * re-run from scratch without duplicating a row; `--plan` counts what is left and its most
 * time without creating or changing anything.
 */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tp_test.h"
#include <sqlite3.h>

#include <trainperf/trainperf.h>

#include "core/algoperf_io.h"
#include "core/results.h"
#include "core/score.h"

static char tmpdir[256];

/* `trainperf sweep CFG [extra]` into <tmpdir>/results, its output in <tmpdir>/<out_name> (shown
 * when it fails). */
static int sweep_cli(const char *cfg, const char *out_name, const char *extra)
{
    char out[512], results[512];
    snprintf(out, sizeof out, "%s/%s", tmpdir, out_name);
    snprintf(results, sizeof results, "%s/results", tmpdir);
    const char *args[] = {"sweep", cfg, "--results", results, "--plugins", TP_TEST_PLUGIN_DIR,
                          extra,   NULL};
    int rc = tp_test_trainperf(out, args);
    if (rc != 0)
        tp_test_show_file(out);
    return rc;
}

static int run_sweep(const char *cfg, const char *out_name)
{
    return sweep_cli(cfg, out_name, NULL);
}

/* The plan alone (`--plan`). */
static int plan_sweep(const char *cfg, const char *out_name)
{
    return sweep_cli(cfg, out_name, "--plan");
}

static int output_contains(const char *out_name, const char *needle)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, out_name);
    return tp_test_file_contains(path, needle);
}

typedef struct row {
    char submission[32], workload[32], variant[32], key[128], hparams[512];
    int study, trial, status;
    double validation_target;
    uint64_t seed;
    uint32_t evals;
} row;

typedef struct rows {
    int n;
    row r[64];
} rows;

static int collect(const tp_trial_summary *t, void *ud)
{
    rows *rs = ud;
    if (rs->n == 64)
        return 1;
    row *r = &rs->r[rs->n++];
    snprintf(r->submission, sizeof r->submission, "%s", t->submission);
    snprintf(r->workload, sizeof r->workload, "%s", t->workload);
    snprintf(r->variant, sizeof r->variant, "%s", t->variant);
    snprintf(r->key, sizeof r->key, "%s", t->plan_key);
    snprintf(r->hparams, sizeof r->hparams, "%s", t->hparams_json);
    r->study = t->study;
    r->trial = t->trial_index;
    r->status = t->status;
    r->seed = t->seed;
    r->validation_target = t->validation_target;
    r->evals = t->num_evals;
    return 0;
}

static void read_rows(rows *rs)
{
    char dir[512], err[512];
    snprintf(dir, sizeof dir, "%s/results", tmpdir);
    tp_results *db;
    memset(rs, 0, sizeof *rs);
    assert_int_equal(tp_results_open(dir, &db, err, sizeof err), 0);
    assert_int_equal(tp_results_foreach_trial(db, NULL, 0, collect, rs, err, sizeof err), 0);
    tp_results_close(db);
}

static const row *find(const rows *rs, const char *sub, const char *variant, int study, int trial)
{
    for (int i = 0; i < rs->n; i++)
        if (!strcmp(rs->r[i].submission, sub) && !strcmp(rs->r[i].variant, variant) &&
            rs->r[i].study == study && rs->r[i].trial == trial)
            return &rs->r[i];
    return NULL;
}

/* -- the score, recomputed from the database's raw rows ------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Time to target of each trial straight from SQL: the score of its first eval (by index) at or
 * above the recorded validation target; failed trials never reached it. */
static double trial_time(sqlite3 *h, const char *sub, const char *variant, int study, int trial)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(h,
                                        "SELECT e.score FROM evals e JOIN trials t ON t.id = "
                                        "e.trial_id WHERE t.submission = ?1 AND t.variant = ?2 "
                                        "AND t.study = ?3 AND t.trial_index = ?4 AND "
                                        "t.status != 'failed' AND "
                                        "e.validation_metric >= t.validation_target "
                                        "ORDER BY e.eval_index LIMIT 1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, sub, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, variant, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, study);
    sqlite3_bind_int(st, 4, trial);
    double t = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_double(st, 0) : INFINITY;
    sqlite3_finalize(st);
    return t;
}

/* 2 studies x 2 trials: per study the fastest trial, per workload the median (numpy's: the
 * mean of the two middle values). */
static double workload_time(sqlite3 *h, const char *sub, const char *variant)
{
    double study[2];
    for (int k = 0; k < 2; k++) {
        double a = trial_time(h, sub, variant, k, 0), b = trial_time(h, sub, variant, k, 1);
        study[k] = a < b ? a : b;
    }
    qsort(study, 2, sizeof *study, cmp_double);
    return (study[0] + study[1]) / 2;
}

static void recompute_scores(const char *variant, double score[2])
{
    char db[512];
    snprintf(db, sizeof db, "%s/results/results.db", tmpdir);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    const char *subs[2] = {"adamw", "sgd"};
    double base[2], var[2];
    for (int s = 0; s < 2; s++) {
        base[s] = workload_time(h, subs[s], "");
        var[s] = workload_time(h, subs[s], variant);
    }
    sqlite3_close(h);
    /* (1) variant inf where base inf; (2) the 4x cut per column (the variant's minimum over
     * submissions that reached the base); (3) base inf where variant inf; ratios; score. */
    for (int s = 0; s < 2; s++)
        if (isinf(base[s]))
            var[s] = INFINITY;
    double bmin = fmin(base[0], base[1]), vmin = fmin(var[0], var[1]);
    for (int s = 0; s < 2; s++) {
        if (base[s] > 4 * bmin)
            base[s] = INFINITY;
        if (var[s] > 4 * vmin)
            var[s] = INFINITY;
    }
    for (int s = 0; s < 2; s++)
        if (isinf(var[s]))
            base[s] = INFINITY;
    bmin = fmin(base[0], base[1]);
    for (int s = 0; s < 2; s++) {
        double r = base[s] / bmin;
        score[s] = isfinite(r) && r <= 4 ? (4 - r) / 3 : 0;
    }
}

static void check_score(const char *variant)
{
    char dir[512], err[512];
    snprintf(dir, sizeof dir, "%s/results", tmpdir);
    tp_results *db;
    assert_int_equal(tp_results_open(dir, &db, err, sizeof err), 0);
    tp_algoperf_trials *tr;
    tp_algoperf_options ao = {0};
    if (tp_algoperf_collect(db, &ao, &tr, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(tr->num_trials, 16);
    tp_score_options so = {.self_tuning = tr->self_tuning, .heldout = 1, .max_ratio = 4};
    tp_score_table *t;
    if (tp_score_compute(tr->trials, tr->num_trials, &so, &t, err, sizeof err) != 0)
        fail_msg("%s", err);
    double want[2];
    recompute_scores(variant, want);
    assert_int_equal(t->num_submissions, 2);
    assert_string_equal(t->submissions[0], "adamw");
    for (int s = 0; s < 2; s++) {
        print_message("%s: score %.6f, recomputed %.6f\n", t->submissions[s], t->score[s], want[s]);
        assert_true(fabs(t->score[s] - want[s]) < 1e-12);
    }
    assert_true(t->score[0] > 0 || t->score[1] > 0); /* the tiny targets are reachable */
    tp_score_free(t);
    tp_algoperf_trials_free(tr);
    tp_results_close(db);
}

static void test_sweep_plan_run_resume(void **state)
{
    (void)state;
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/sweep.cfg", tmpdir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f,
            "sweep = {\n"
            "  ruleset = \"external\";\n"
            "  workloads = [\"fmnist_mlp\"];\n"
            "  studies = 2;\n"
            "  trials = 2;\n"
            "  heldout = \"sampled\";\n"
            "  heldout_seed = 1;\n"
            "  budget_scale = 0.04;\n"
            "  jobs = 2;\n"
            "  seed = 3;\n"
            "  set = [\"budget=30\", \"data.train_limit=3000\", \"data.validation_limit=500\",\n"
            "         \"data.test_limit=500\", \"eval_period=0.2\",\n"
            "         \"targets.validation=0.6\", \"targets.test=0.55\"];\n"
            "  submissions = (\n"
            "    { name = \"adamw\"; optimizer = \"adamw\"; schedule = \"warmup_cosine\";\n"
            "      search_space = \"%s/submissions/adamw/tuning_search_space.json\"; },\n"
            "    { name = \"sgd\"; optimizer = \"sgd\"; schedule = \"warmup_cosine\";\n"
            "      search_space = \"%s/submissions/sgd/tuning_search_space.cfg\";\n"
            "      hparams = \"weight_decay=0.0001\"; }\n"
            "  );\n"
            "};\n",
            TP_TEST_SOURCE_DIR, TP_TEST_SOURCE_DIR);
    fclose(f);

    /* The plan alone: every trial to run, each at most its scaled budget (30 x 0.04 = 1.2 s)
     * + one eval period, and nothing created. */
    assert_int_equal(plan_sweep(cfg, "plan1.txt"), 0);
    assert_true(output_contains("plan1.txt", "16 trials planned, 0 already done, 16 to run"));
    assert_true(output_contains("plan1.txt", "at most 22s of submission time"));
    char results_dir[512];
    snprintf(results_dir, sizeof results_dir, "%s/results", tmpdir);
    assert_int_not_equal(access(results_dir, F_OK), 0);

    assert_int_equal(run_sweep(cfg, "run1.txt"), 0);
    rows rs;
    read_rows(&rs);
    /* 2 submissions x (base + 1 sampled variant) x 2 studies x 2 trials. */
    assert_int_equal(rs.n, 16);
    char variant[32] = "";
    for (int i = 0; i < rs.n; i++) {
        const row *r = &rs.r[i];
        assert_string_equal(r->workload, "fmnist_mlp");
        assert_int_not_equal(r->status, TP_TRIAL_RUNNING);
        assert_true(r->evals >= 1);
        assert_non_null(strstr(r->key, r->submission));
        if (r->variant[0])
            snprintf(variant, sizeof variant, "%s", r->variant);
    }
    assert_true(variant[0] != '\0'); /* one variant drawn */
    for (int i = 0; i < rs.n; i++)   /* the targets the trials ran with: the sweep's */
        assert_true(rs.r[i].validation_target == 0.6);
    for (int i = 0; i < rs.n; i++) /* and only that one */
        assert_true(rs.r[i].variant[0] == '\0' || !strcmp(rs.r[i].variant, variant));

    /* Studies share their points; the submission's fixed hparams ride along; the same study
     * and trial index share a seed across submissions; trials of a study differ. */
    const row *a00 = find(&rs, "adamw", "", 0, 0), *a10 = find(&rs, "adamw", "", 1, 0);
    const row *a01 = find(&rs, "adamw", "", 0, 1), *s00 = find(&rs, "sgd", "", 0, 0);
    const row *s00v = find(&rs, "sgd", variant, 0, 0);
    assert_non_null(a00);
    assert_non_null(a10);
    assert_non_null(a01);
    assert_non_null(s00);
    assert_non_null(s00v);
    assert_string_equal(a00->hparams, a10->hparams);
    assert_string_not_equal(a00->hparams, a01->hparams);
    assert_non_null(strstr(a00->hparams, "\"one_minus_beta1\""));
    assert_non_null(strstr(s00->hparams, "\"weight_decay\": 0.0001"));
    assert_string_equal(s00->hparams, s00v->hparams);
    assert_true(a00->seed == s00->seed);
    assert_true(a00->seed != a10->seed && a00->seed != a01->seed);

    /* The score from the library equals a recomputation from the raw rows. */
    check_score(variant);

    /* Again: everything is done, nothing runs. */
    assert_int_equal(run_sweep(cfg, "run2.txt"), 0);
    assert_true(output_contains("run2.txt", "0 run now"));
    assert_true(output_contains("run2.txt", "16 already done"));
    read_rows(&rs);
    assert_int_equal(rs.n, 16);

    /* A trial whose host died mid-run (its end never recorded) is run again from scratch. */
    char db[512];
    snprintf(db, sizeof db, "%s/results/results.db", tmpdir);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h,
                                  "UPDATE trials SET status = 'running', ended_at = NULL "
                                  "WHERE plan_key = 'sgd/fmnist_mlp/study_1/trial_1'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_changes(h), 1);
    sqlite3_close(h);
    /* The plan counts it as interrupted and leaves it be: the run after still finds it. */
    assert_int_equal(plan_sweep(cfg, "plan2.txt"), 0);
    assert_true(output_contains("plan2.txt", "15 already done, 1 to run (1 of them interrupted)"));
    assert_int_equal(run_sweep(cfg, "run3.txt"), 0);
    assert_true(output_contains("run3.txt", "1 run now"));
    assert_true(output_contains("run3.txt", "1 re-run after an interruption"));
    read_rows(&rs);
    assert_int_equal(rs.n, 16);
    const row *again = find(&rs, "sgd", "", 1, 1);
    assert_non_null(again);
    assert_int_not_equal(again->status, TP_TRIAL_RUNNING);
}

static void test_self_tuning(void **state)
{
    (void)state;
    char cfg[512], results[512];
    snprintf(cfg, sizeof cfg, "%s/self.cfg", tmpdir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fputs("sweep = {\n"
          "  ruleset = \"self\";\n"
          "  workloads = [\"fmnist_mlp\"];\n"
          "  budget_scale = 0.04;\n"
          "  clock = \"steps\";\n"
          "  jobs = 2;\n"
          "  set = [\"budget=30\", \"data.train_limit=3000\", \"data.validation_limit=500\",\n"
          "         \"data.test_limit=500\", \"eval_period=0.05\",\n"
          "         \"targets.validation=0.6\", \"targets.test=0.55\"];\n"
          "  diagnostics = { sharpness_every = 10; sharpness_examples = 200; };\n"
          "  submissions = ( { name = \"adamw_self\"; optimizer = \"adamw\";\n"
          "                    hparams = \"learning_rate=0.002\"; } );\n"
          "};\n",
          f);
    fclose(f);
    snprintf(results, sizeof results, "%s/self_results", tmpdir);
    char out[600];
    snprintf(out, sizeof out, "%s/self.txt", tmpdir);
    const char *args[] = {"sweep", cfg, "--results", results, "--plugins", TP_TEST_PLUGIN_DIR,
                          NULL};
    assert_int_equal(tp_test_trainperf(out, args), 0);

    tp_results *db;
    char err[512];
    assert_int_equal(tp_results_open(results, &db, err, sizeof err), 0);
    rows rs;
    memset(&rs, 0, sizeof rs);
    assert_int_equal(tp_results_foreach_trial(db, NULL, 0, collect, &rs, err, sizeof err), 0);
    assert_int_equal(rs.n, 3); /* 3 studies of one trial */
    for (int i = 0; i < rs.n; i++) {
        assert_int_equal(rs.r[i].study, i);
        assert_int_equal(rs.r[i].trial, 0);
        assert_string_equal(rs.r[i].hparams, "{\"learning_rate\": 0.002}");
    }
    tp_algoperf_trials *tr;
    tp_algoperf_options ao = {0};
    assert_int_equal(tp_algoperf_collect(db, &ao, &tr, err, sizeof err), 0);
    assert_int_equal(tr->self_tuning, 1);
    tp_algoperf_trials_free(tr);
    tp_results_close(db);
    /* The self-tuning budget is x1.5: the set budget x 0.04 x 1.5. */
    const double want_budget = 30.0 * 0.04 * 1.5;
    char dbpath[600];
    snprintf(dbpath, sizeof dbpath, "%s/results.db", results);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(dbpath, &h), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(
        sqlite3_prepare_v2(h, "SELECT DISTINCT budget, ruleset FROM trials", -1, &q, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_true(fabs(sqlite3_column_double(q, 0) - want_budget) < 1e-9);
    assert_string_equal((const char *)sqlite3_column_text(q, 1), "self");
    assert_int_equal(sqlite3_step(q), SQLITE_DONE);
    sqlite3_finalize(q);
    /* The opt-in diagnostics: every trial has sharpness measurements, from step 0, with
     * AdamW's preconditioned value from the first update on (the trials reach their loose
     * targets in ~40 steps, hence a measurement every 10). The steps clock (1 ms a step) keeps
     * the number of steps, and so of measurements, independent of the machine's load: evals at
     * steps 1, 51, 101, ..., a budget of 1800 steps. */
    assert_int_equal(sqlite3_prepare_v2(h,
                                        "SELECT count(DISTINCT trial_id), min(step), "
                                        "count(precond_sharpness) FROM sharpness",
                                        -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 3);
    assert_int_equal(sqlite3_column_int(q, 1), 0);
    assert_true(sqlite3_column_int(q, 2) >= 3);
    sqlite3_finalize(q);
    sqlite3_close(h);
}

static void test_sweep_config_errors(void **state)
{
    (void)state;
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/bad.cfg", tmpdir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fputs("sweep = {\n"
          "  ruleset = \"external\";\n"
          "  workloads = [\"fmnist_mlp\"];\n"
          "  submissions = (\n"
          "    { name = \"adamw\"; optimizer = \"adamw\"; }\n"
          "  );\n"
          "};\n",
          f);
    fclose(f);
    assert_int_equal(run_sweep(cfg, "bad.txt"), 1);
    assert_true(output_contains("bad.txt", "bad.cfg:5: sweep.submissions[0].search_space: "
                                           "missing; external tuning needs"));
}

static int setup(void **state)
{
    (void)state;
    return tp_test_tmpdir(tmpdir, sizeof tmpdir, "sweep");
}

static int teardown(void **state)
{
    (void)state;
    return tp_test_tmpdir_remove(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep_config_errors),
        cmocka_unit_test(test_sweep_plan_run_resume),
        cmocka_unit_test(test_self_tuning),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
