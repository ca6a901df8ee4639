/*
 * test_e2e.c - whole trials through the real binaries: `trainperf run` spawns a
 * trainperf-worker that loads the real plugins with dlopen and trains fmnist_mlp on a small
 * subset of the real Fashion-MNIST data; the host commits evals to a real SQLite database.
 * Checked: a loose target is reached and every eval is in the database, the budget stop, the
 * same seed giving the same numbers, and failures (unknown plugin, undeclared hyperparameter,
 * a segfaulting plugin, a hanging one killed by the watchdog) recorded as failed trials while
 * the host carries on, and `trainperf check` accepting and refusing plugins.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tp_test.h"

#include <trainperf/trainperf.h>

#include "core/results.h"

#define SUBSET                                                                                     \
    "--set", "data.train_limit=5000", "--set", "data.validation_limit=1000", "--set",              \
        "data.test_limit=1000"

static char tmpdir[256];
static char plugdir[300];

/* `trainperf ARGS`, its output in <tmpdir>/out.txt. */
static int tool(char *const *args)
{
    char out[512];
    snprintf(out, sizeof out, "%s/out.txt", tmpdir);
    return tp_test_trainperf(out, (const char *const *)args);
}

/* `trainperf run ARGS --results RESULTS --plugins <the test's folder> --quiet` */
static int trainperf(const char *results, const char *const *args)
{
    char *argv[64];
    int n = 0;
    argv[n++] = "run";
    for (int i = 0; args[i] && n < 56; i++)
        argv[n++] = (char *)args[i];
    argv[n++] = "--results";
    argv[n++] = (char *)results;
    argv[n++] = "--plugins";
    argv[n++] = plugdir;
    argv[n++] = "--quiet";
    argv[n] = NULL;
    return tool(argv);
}

static int output_contains(const char *needle)
{
    char path[512];
    snprintf(path, sizeof path, "%s/out.txt", tmpdir);
    return tp_test_file_contains(path, needle);
}

static void show_output(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/out.txt", tmpdir);
    tp_test_show_file(path);
}

typedef struct collected {
    int n;
    tp_trial_summary t[8];
    char msg[8][512];
    char opt[8][64];
} collected;

static int collect_trial(const tp_trial_summary *t, void *ud)
{
    collected *c = ud;
    if (c->n < 8) {
        c->t[c->n] = *t;
        snprintf(c->msg[c->n], 512, "%s", t->message ? t->message : "");
        snprintf(c->opt[c->n], 64, "%s", t->optimizer);
        c->n++;
    }
    return 0;
}

typedef struct evals {
    int n;
    tp_eval_row e[256];
} evals;

static int collect_eval(const tp_eval_row *e, void *ud)
{
    evals *v = ud;
    if (v->n < 256)
        v->e[v->n++] = *e;
    return 0;
}

static void read_db(const char *results, collected *c, evals *first_evals)
{
    tp_results *db;
    char err[512];
    memset(c, 0, sizeof *c);
    assert_int_equal(tp_results_open(results, &db, err, sizeof err), 0);
    assert_int_equal(tp_results_foreach_trial(db, NULL, 0, collect_trial, c, err, sizeof err), 0);
    if (first_evals) {
        memset(first_evals, 0, sizeof *first_evals);
        assert_int_equal(tp_results_foreach_eval(db, c->t[c->n - 1].id, collect_eval, first_evals,
                                                 err, sizeof err),
                         0);
    }
    tp_results_close(db);
}

static void results_dir(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", tmpdir, name);
}

static void test_reaches_loose_target(void **state)
{
    (void)state;
    char res[512];
    results_dir(res, sizeof res, "reach");
    const char *args[] = {"--workload",
                          "fmnist_mlp",
                          "--optimizer",
                          "adamw",
                          "--schedule",
                          "warmup_cosine",
                          "--hparams",
                          "learning_rate=0.002,warmup_factor=0.02",
                          SUBSET,
                          "--set",
                          "targets.validation=0.72",
                          "--set",
                          "targets.test=0.70",
                          "--set",
                          "budget=60",
                          "--set",
                          "eval_period=0.3",
                          "--set",
                          "step_hint=600",
                          NULL};
    int rc = trainperf(res, args);
    if (rc != 0)
        show_output();
    assert_int_equal(rc, 0);
    collected c;
    evals v;
    read_db(res, &c, &v);
    assert_int_equal(c.n, 1);
    if (c.t[0].status != TP_TRIAL_REACHED)
        show_output();
    assert_int_equal(c.t[0].status, TP_TRIAL_REACHED);
    assert_true(v.n >= 1);
    assert_int_equal(c.t[0].num_evals, (uint32_t)v.n);
    assert_int_equal(v.e[0].global_step, 1); /* the first eval right after step 1 */
    int first_reached = -1;
    for (int i = 0; i < v.n; i++) {
        assert_int_equal(v.e[i].eval_index, (uint32_t)i);
        if (i > 0) {
            assert_true(v.e[i].score >= v.e[i - 1].score);
            assert_true(v.e[i].global_step > v.e[i - 1].global_step);
        }
        assert_true(v.e[i].score < 60.0);
        if (first_reached < 0 && v.e[i].validation_metric >= 0.72)
            first_reached = i;
    }
    assert_true(first_reached >= 0);
    assert_true(v.e[first_reached].validation_reached);
    assert_true(c.t[0].time_to_target == v.e[first_reached].score);
    assert_true(v.e[v.n - 1].validation_reached && v.e[v.n - 1].test_reached);
    /* The trial log exists. */
    char log[600];
    snprintf(log, sizeof log, "%s/logs/trial_%lld.log", res, (long long)c.t[0].id);
    assert_int_equal(access(log, R_OK), 0);
}

static void test_budget_stop(void **state)
{
    (void)state;
    char res[512];
    results_dir(res, sizeof res, "budget");
    const char *args[] = {"--workload",
                          "fmnist_mlp",
                          "--optimizer",
                          "sgd",
                          SUBSET,
                          "--set",
                          "targets.validation=0.999",
                          "--set",
                          "budget=0.6",
                          "--set",
                          "eval_period=0.1",
                          NULL};
    assert_int_equal(trainperf(res, args), 0);
    collected c;
    evals v;
    read_db(res, &c, &v);
    assert_int_equal(c.t[0].status, TP_TRIAL_BUDGET);
    assert_true(v.n >= 2);
    for (int i = 0; i < v.n; i++)
        assert_true(v.e[i].score < 0.6); /* no scored eval over budget */
    assert_true(c.t[0].submission_time_wall >= 0.6);
    assert_true(isinf(c.t[0].time_to_target));
}

static void test_same_seed_same_numbers(void **state)
{
    (void)state;
    char res[3][512];
    evals v[3];
    const char *seeds[3] = {"7", "7", "8"};
    for (int k = 0; k < 3; k++) {
        char name[32];
        snprintf(name, sizeof name, "det%d", k);
        results_dir(res[k], sizeof res[k], name);
        const char *args[] = {"--workload",  "fmnist_mlp", "--optimizer",
                              "adamw",       "--hparams",  "dropout_rate=0.1",
                              SUBSET,        "--set",      "eval_period=1000",
                              "--max-steps", "40",         "--seed",
                              seeds[k],      NULL};
        assert_int_equal(trainperf(res[k], args), 0);
        collected c;
        read_db(res[k], &c, &v[k]);
        assert_int_equal(c.t[0].status, TP_TRIAL_COMPLETE);
        assert_int_equal(c.t[0].steps, 40);
        assert_int_equal(v[k].n, 2); /* after step 1 and at the end */
    }
    for (int i = 0; i < 2; i++) {
        assert_true(v[0].e[i].validation_loss == v[1].e[i].validation_loss);
        assert_true(v[0].e[i].test_metric == v[1].e[i].test_metric);
    }
    assert_true(v[0].e[1].validation_loss != v[2].e[1].validation_loss);
}

/* On the steps clock the summaries count the virtual seconds (1 ms a step), not the wall's. */
static void test_steps_clock_summary(void **state)
{
    (void)state;
    char res[512];
    results_dir(res, sizeof res, "steps");
    const char *args[] = {
        "--workload",       "fmnist_mlp", "--optimizer", "sgd",         SUBSET, "--set",
        "eval_period=1000", "--clock",    "steps",       "--max-steps", "40",   NULL};
    assert_int_equal(trainperf(res, args), 0);
    if (!output_contains("40 steps in 0.04 s (steps clock), 1000 steps/s"))
        show_output();
    assert_true(output_contains("40 steps in 0.04 s (steps clock), 1000 steps/s"));
    char *const list[] = {"results", res, NULL};
    assert_int_equal(tool(list), 0);
    if (!output_contains("      40     1000  "))
        show_output();
    assert_true(output_contains("      40     1000  "));
}

static void test_failures_are_recorded(void **state)
{
    (void)state;
    char res[512];
    results_dir(res, sizeof res, "fail");
    const char *unknown[] = {"--workload",  "fmnist_mlp", "--optimizer",
                             "no_such_opt", SUBSET,       NULL};
    assert_int_equal(trainperf(res, unknown), 1);
    const char *undeclared[] = {"--workload", "fmnist_mlp",       "--optimizer", "adamw",
                                "--hparams",  "learning_rat=0.1", SUBSET,        NULL};
    assert_int_equal(trainperf(res, undeclared), 1);
    const char *crash[] = {"--workload", "fmnist_mlp", "--optimizer", "crash_update", SUBSET, NULL};
    assert_int_equal(trainperf(res, crash), 1);
    /* The host carries on: a good trial in the same results directory. */
    const char *good[] = {"--workload", "fmnist_mlp",  "--optimizer", "adamw",
                          SUBSET,       "--max-steps", "5",           NULL};
    assert_int_equal(trainperf(res, good), 0);

    collected c;
    read_db(res, &c, NULL);
    assert_int_equal(c.n, 4);
    assert_int_equal(c.t[0].status, TP_TRIAL_FAILED);
    assert_non_null(strstr(c.msg[0], "no optimizer plugin with id 'no_such_opt'"));
    assert_int_equal(c.t[1].status, TP_TRIAL_FAILED);
    assert_int_equal(c.t[1].reason, TP_ECONFIG);
    assert_non_null(strstr(c.msg[1], "'learning_rat'"));
    assert_int_equal(c.t[2].status, TP_TRIAL_FAILED);
    assert_int_equal(c.t[2].reason, TP_ECRASH);
    assert_non_null(strstr(c.msg[2], "signal 11"));
    assert_int_equal(c.t[3].status, TP_TRIAL_COMPLETE);
}

static void test_watchdog_kills_hung_worker(void **state)
{
    (void)state;
    char res[512];
    results_dir(res, sizeof res, "hang");
    const char *hang[] = {"--workload", "fmnist_mlp",   "--optimizer", "hang_update",
                          SUBSET,       "--wall-limit", "4",           NULL};
    assert_int_equal(trainperf(res, hang), 1);
    assert_true(output_contains("wall-clock limit"));
    collected c;
    evals v;
    read_db(res, &c, &v);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.t[0].status, TP_TRIAL_FAILED);
    assert_int_equal(c.t[0].reason, TP_ETIMEOUT);
    /* The eval after step 1 was committed before the hang and stays. */
    assert_int_equal(v.n, 1);
    assert_int_equal(v.e[0].global_step, 1);
}

static void test_check_command(void **state)
{
    (void)state;
    char good[512], bad[512];
    snprintf(good, sizeof good, "%s/adamw.so", plugdir);
    char *ok_args[] = {"check", good, NULL};
    assert_int_equal(tool(ok_args), 0);
    assert_true(output_contains("learning_rate"));
    assert_true(output_contains("OK: 1 plugin"));

    snprintf(bad, sizeof bad, "%s/not_a_plugin.so", tmpdir);
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fputs("this is text, not an ELF shared object\n", f);
    fclose(f);
    char *bad_args[] = {"check", bad, NULL};
    assert_int_equal(tool(bad_args), 1);
    assert_true(output_contains("not_a_plugin.so"));
    assert_true(output_contains("REFUSED"));
}

/* A plugin folder with the built baselines and the hostile fixtures. */
static int setup(void **state)
{
    (void)state;
    if (tp_test_tmpdir(tmpdir, sizeof tmpdir, "e2e") < 0)
        return -1;
    snprintf(plugdir, sizeof plugdir, "%s/plugins", tmpdir);
    if (mkdir(plugdir, 0755) < 0)
        return -1;
    const char *files[] = {
        TP_TEST_PLUGIN_DIR "/adamw.so",        TP_TEST_PLUGIN_DIR "/sgd.so",
        TP_TEST_PLUGIN_DIR "/schedules.so",    TP_TEST_PLUGIN_DIR "/next_batch.so",
        TP_E2E_FIXTURE_DIR "/crash_update.so", TP_E2E_FIXTURE_DIR "/hang_update.so"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char link[512];
        const char *base = strrchr(files[i], '/') + 1;
        snprintf(link, sizeof link, "%s/%s", plugdir, base);
        if (symlink(files[i], link) < 0)
            return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return tp_test_tmpdir_remove(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reaches_loose_target),
        cmocka_unit_test(test_budget_stop),
        cmocka_unit_test(test_same_seed_same_numbers),
        cmocka_unit_test(test_steps_clock_summary),
        cmocka_unit_test(test_failures_are_recorded),
        cmocka_unit_test(test_watchdog_kills_hung_worker),
        cmocka_unit_test(test_check_command),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
