/*
 * test_sweep.c - a tiny tuning-ruleset sweep through the real binaries: two submissions
 * (AdamW and SGD with their search spaces), two studies of two trials, fmnist_mlp on a small
 * subset plus one held-out variant drawn by seed, two trials at a time. Checked: every
 * planned trial is recorded once with its submission, study, trial index, plan key and evals;
 * studies share their points (the reference code's way); trials with the same study and index
 * share their seed across submissions; running the sweep again runs nothing; a trial whose host
 * died mid-run is re-run from scratch without duplicating a row.
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
#include <sqlite3.h>

#include <trainperf/trainperf.h>

#include "core/results.h"

static char tmpdir[256];

static int run_sweep(const char *cfg, const char *out_name)
{
    char out[512], results[512];
    snprintf(out, sizeof out, "%s/%s", tmpdir, out_name);
    snprintf(results, sizeof results, "%s/results", tmpdir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *f = freopen(out, "w", stdout);
        if (!f || dup2(fileno(stdout), 2) < 0)
            _exit(99);
        execl(TP_TEST_BINARY_DIR "/trainperf", "trainperf", "sweep", cfg, "--results", results,
              "--plugins", TP_TEST_PLUGIN_DIR, (char *)NULL);
        _exit(98);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) != 0) {
        char line[1024];
        FILE *f = fopen(out, "r");
        while (f && fgets(line, sizeof line, f))
            fprintf(stderr, "    | %s", line);
        if (f)
            fclose(f);
    }
    return WEXITSTATUS(st);
}

static int output_contains(const char *out_name, const char *needle)
{
    char path[512], buf[1 << 16];
    snprintf(path, sizeof path, "%s/%s", tmpdir, out_name);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

typedef struct row {
    char submission[32], workload[32], variant[32], key[128], hparams[512];
    int study, trial, status;
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
            "  set = [\"data.train_limit=3000\", \"data.validation_limit=500\",\n"
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
    for (int i = 0; i < rs.n; i++)   /* and only that one */
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
    assert_int_equal(run_sweep(cfg, "run3.txt"), 0);
    assert_true(output_contains("run3.txt", "1 run now"));
    assert_true(output_contains("run3.txt", "1 re-run after an interruption"));
    read_rows(&rs);
    assert_int_equal(rs.n, 16);
    const row *again = find(&rs, "sgd", "", 1, 1);
    assert_non_null(again);
    assert_int_not_equal(again->status, TP_TRIAL_RUNNING);
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
    static char asan[1024];
    const char *old = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "%s%shandle_segv=0", old ? old : "", old && *old ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tp_sweep_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    if (getenv("TP_KEEP_TMP"))
        return 0;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep_config_errors),
        cmocka_unit_test(test_sweep_plan_run_resume),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
