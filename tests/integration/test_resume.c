/*
 * test_resume.c - kill -9 the host in the middle of a sweep, run the same command again:
 * completed trials are not re-run, interrupted ones are re-run from scratch, no row is
 * duplicated or lost, and the final results and score equal those of an uninterrupted sweep
 * with the same seeds. The sweep times trials on the virtual steps clock, so an uninterrupted
 * run is an exact reference: same seeds, same evals, same times, same score.
 *
 * The host is killed after it reports 1, 3 and 6 finished trials (read from its progress
 * lines, not timed), so the kill lands both between trials and while others run.
 */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
#include <signal.h>
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

#define TRIALS 8

static char tmpdir[256];
static char cfg[512];

/* Start `trainperf sweep` with its stdout on a pipe; returns the pid. */
static pid_t start_sweep(const char *results, FILE **out)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execl(TP_TEST_BINARY_DIR "/trainperf", "trainperf", "sweep", cfg, "--results", results,
              "--plugins", TP_TEST_PLUGIN_DIR, (char *)NULL);
        _exit(98);
    }
    close(fds[1]);
    *out = fdopen(fds[0], "r");
    assert_non_null(*out);
    return pid;
}

/* Read the sweep's lines to the end; its exit status. */
static int finish_sweep(pid_t pid, FILE *out, char *last, size_t lastlen)
{
    char line[2048];
    while (fgets(line, sizeof line, out))
        if (strncmp(line, "sweep done:", 11) == 0)
            snprintf(last, lastlen, "%s", line);
    fclose(out);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

typedef struct trial {
    char key[160];
    int64_t id;
    char ended_at[40];
    char status[16];
    double ttt;
    int evals;
    double eval_sum; /* sum over evals of score + validation metric: a fingerprint */
} trial;

typedef struct snapshot {
    int n;
    trial t[TRIALS + 4];
} snapshot;

static void snap(const char *results, snapshot *s)
{
    char db[600];
    snprintf(db, sizeof db, "%s/results.db", results);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(
        sqlite3_prepare_v2(h,
                           "SELECT t.plan_key, t.id, coalesce(t.ended_at, ''), t.status, "
                           "coalesce(t.time_to_target, -1), count(e.eval_index), "
                           "coalesce(sum(e.score + e.validation_metric), 0) FROM trials t "
                           "LEFT JOIN evals e ON e.trial_id = t.id GROUP BY t.id ORDER BY "
                           "t.plan_key",
                           -1, &q, NULL),
        SQLITE_OK);
    memset(s, 0, sizeof *s);
    while (sqlite3_step(q) == SQLITE_ROW && s->n < TRIALS + 4) {
        trial *t = &s->t[s->n++];
        snprintf(t->key, sizeof t->key, "%s", (const char *)sqlite3_column_text(q, 0));
        t->id = sqlite3_column_int64(q, 1);
        snprintf(t->ended_at, sizeof t->ended_at, "%s", (const char *)sqlite3_column_text(q, 2));
        snprintf(t->status, sizeof t->status, "%s", (const char *)sqlite3_column_text(q, 3));
        t->ttt = sqlite3_column_double(q, 4);
        t->evals = sqlite3_column_int(q, 5);
        t->eval_sum = sqlite3_column_double(q, 6);
    }
    sqlite3_finalize(q);
    sqlite3_close(h);
}

static void score_of(const char *results, double score[2])
{
    tp_results *db;
    char err[512];
    assert_int_equal(tp_results_open(results, &db, err, sizeof err), 0);
    tp_algoperf_trials *tr;
    tp_algoperf_options ao = {0};
    assert_int_equal(tp_algoperf_collect(db, &ao, &tr, err, sizeof err), 0);
    tp_score_options so = {.self_tuning = 0, .heldout = 0, .max_ratio = 4};
    tp_score_table *t;
    assert_int_equal(tp_score_compute(tr->trials, tr->num_trials, &so, &t, err, sizeof err), 0);
    assert_int_equal(t->num_submissions, 2);
    score[0] = t->score[0];
    score[1] = t->score[1];
    tp_score_free(t);
    tp_algoperf_trials_free(tr);
    tp_results_close(db);
}

static void test_kill_and_resume(void **state)
{
    (void)state;
    char ref_dir[512];
    snprintf(ref_dir, sizeof ref_dir, "%s/reference", tmpdir);
    FILE *out;
    char last[2048] = "";
    pid_t pid = start_sweep(ref_dir, &out);
    assert_int_equal(finish_sweep(pid, out, last, sizeof last), 0);
    snapshot ref;
    snap(ref_dir, &ref);
    assert_int_equal(ref.n, TRIALS);
    double ref_score[2];
    score_of(ref_dir, ref_score);
    print_message("reference scores: %.6f %.6f\n", ref_score[0], ref_score[1]);

    const int kill_after[] = {1, 3, 6};
    for (size_t k = 0; k < sizeof kill_after / sizeof *kill_after; k++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/killed_%d", tmpdir, kill_after[k]);
        pid = start_sweep(dir, &out);
        /* Kill -9 the host as soon as it reports the n-th finished trial. */
        char line[2048];
        int done = 0;
        while (done < kill_after[k] && fgets(line, sizeof line, out))
            if (line[0] == '[')
                done++;
        assert_int_equal(done, kill_after[k]);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        fclose(out);
        snapshot before;
        snap(dir, &before);
        int ended = 0;
        for (int i = 0; i < before.n; i++)
            ended += strcmp(before.t[i].status, "running") != 0;
        assert_true(ended >= kill_after[k]);

        /* The same command again. */
        pid = start_sweep(dir, &out);
        assert_int_equal(finish_sweep(pid, out, last, sizeof last), 0);
        print_message("killed after %d: %d ended, %d interrupted; resumed: %s", kill_after[k],
                      ended, before.n - ended, last);
        snapshot after;
        snap(dir, &after);
        /* Every planned trial once, none lost, none duplicated, equal to the reference. */
        assert_int_equal(after.n, TRIALS);
        for (int i = 0; i < TRIALS; i++) {
            const trial *a = &after.t[i], *r = &ref.t[i];
            assert_string_equal(a->key, r->key);
            assert_string_equal(a->status, r->status);
            assert_int_equal(a->evals, r->evals);
            assert_true(a->ttt == r->ttt);
            assert_true(a->eval_sum == r->eval_sum);
        }
        /* Trials that ended before the kill were not run again; interrupted ones were. */
        for (int i = 0; i < before.n; i++) {
            const trial *b = &before.t[i];
            const trial *a = NULL;
            for (int j = 0; j < after.n; j++)
                if (!strcmp(after.t[j].key, b->key))
                    a = &after.t[j];
            assert_non_null(a);
            if (strcmp(b->status, "running") != 0) {
                assert_int_equal(a->id, b->id);
                assert_string_equal(a->ended_at, b->ended_at);
            } else {
                assert_int_not_equal(a->id, b->id);
            }
        }
        double score[2];
        score_of(dir, score);
        assert_true(score[0] == ref_score[0] && score[1] == ref_score[1]);
    }
}

static int setup(void **state)
{
    (void)state;
    if (tp_test_tmpdir(tmpdir, sizeof tmpdir, "resume") < 0)
        return -1;
    snprintf(cfg, sizeof cfg, "%s/sweep.cfg", tmpdir);
    FILE *f = fopen(cfg, "w");
    if (!f)
        return -1;
    /* 2 submissions x 2 studies x 2 trials on the steps clock: 600 steps of budget, evals
     * every 20 steps. */
    fprintf(f,
            "sweep = {\n"
            "  ruleset = \"external\";\n"
            "  workloads = [\"fmnist_mlp\"];\n"
            "  studies = 2;\n"
            "  trials = 2;\n"
            "  clock = \"steps\";\n"
            "  budget_scale = 0.02;\n"
            "  jobs = 2;\n"
            "  seed = 5;\n"
            "  set = [\"data.train_limit=3000\", \"data.validation_limit=500\",\n"
            "         \"data.test_limit=500\", \"eval_period=0.02\",\n"
            "         \"targets.validation=0.72\", \"targets.test=0.7\"];\n"
            "  submissions = (\n"
            "    { name = \"adamw\"; optimizer = \"adamw\"; schedule = \"warmup_cosine\";\n"
            "      search_space = \"%s/submissions/adamw/tuning_search_space.json\"; },\n"
            "    { name = \"sgd\"; optimizer = \"sgd\"; schedule = \"warmup_cosine\";\n"
            "      search_space = \"%s/submissions/sgd/tuning_search_space.json\"; }\n"
            "  );\n"
            "};\n",
            TP_TEST_SOURCE_DIR, TP_TEST_SOURCE_DIR);
    fclose(f);
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
        cmocka_unit_test(test_kill_and_resume),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
