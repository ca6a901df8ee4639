/*
 * test_results.c - core/results.c: a trial with its evals written and read back exactly
 * (Inf and NaN included), data kept across close and reopen, WAL mode as seen by another
 * connection, refusal of a garbage file, of a newer schema and of a foreign database, errors
 * for unknown trials and duplicate evals, 2000 evals in one transaction each under 2 s, and
 * a child process killed with SIGKILL after its writes losing none of them, and three
 * processes creating and writing one database at the same time.
 *
 * Not here: an OS crash or power loss (synchronous=FULL is relied on, not tested).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/results.h"
#include <trainperf/trainperf.h>

static char err[1024];

/* ---------------------------------------------------------------------------------------- */
/* Fixtures: a fresh directory per test */

typedef struct tmp {
    char dir[64];
    char db[128];
} tmp;

static int setup(void **state)
{
    tmp *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -1;
    snprintf(t->dir, sizeof t->dir, "/tmp/tp_test_results_XXXXXX");
    if (mkdtemp(t->dir) == NULL)
        return -1;
    snprintf(t->db, sizeof t->db, "%s/results.db", t->dir);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tmp *t = *state;
    const char *suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[160];
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", t->db, suffix[i]);
        unlink(p);
    }
    rmdir(t->dir);
    free(t);
    return 0;
}

static tp_results *open_ok(const char *dir)
{
    tp_results *r = NULL;
    if (tp_results_open(dir, &r, err, sizeof err) != 0)
        fail_msg("open %s: %s", dir, err);
    return r;
}

static tp_trial_meta meta_example(void)
{
    return (tp_trial_meta){
        .workload = "fmnist_mlp",
        .variant = "",
        .optimizer = "adamw",
        .schedule = "warmup_cosine",
        .selection = "uniform",
        .hparams_json = "{\"learning_rate\": 0.001, \"one_minus_beta1\": 0.1}",
        .seed = 0xfedcba9876543210ULL, /* >= 2^63: must survive SQLite's signed INTEGER */
        .budget = 60.0,
        .clock = "wall",
        .metric = "accuracy",
        .maximize = 1,
        .validation_target = 0.87,
        .test_target = 0.86,
    };
}

static tp_eval_row eval_example(uint32_t i)
{
    return (tp_eval_row){
        .eval_index = i,
        .global_step = 100 * (uint64_t)i + 1,
        .score = 1.5 * i,
        .submission_time_wall = 1.5 * i + 0.25,
        .submission_time_cpu = 3.0 * i,
        .total_duration = 2.0 * i + 0.125,
        .validation_metric = 0.5 + 0.01 * i,
        .validation_loss = i == 2 ? NAN : 1.0 / (i + 1), /* a diverged loss */
        .test_metric = i == 3 ? INFINITY : 0.49 + 0.01 * i,
        .test_loss = i == 3 ? -INFINITY : 1.1 / (i + 1),
        .validation_reached = i >= 3,
        .test_reached = i >= 4,
    };
}

/* Bit-for-bit equality, NaN equal to NaN. */
static void assert_same(double got, double want)
{
    if (isnan(want) ? !isnan(got) : got != want)
        fail_msg("got %.17g, want %.17g", got, want);
}

typedef struct collected {
    tp_eval_row rows[2100];
    size_t n;
} collected;

static int collect_eval(const tp_eval_row *e, void *ud)
{
    collected *c = ud;
    if (c->n < sizeof c->rows / sizeof c->rows[0])
        c->rows[c->n] = *e;
    c->n++;
    return 0;
}

typedef struct trial_copy {
    tp_trial_summary t;
    char workload[64], variant[64], optimizer[64], schedule[64], selection[64], hparams[256],
        metric[64], message[256];
    int calls;
} trial_copy;

static int copy_trial(const tp_trial_summary *t, void *ud)
{
    trial_copy *c = ud;
    c->t = *t;
    snprintf(c->workload, sizeof c->workload, "%s", t->workload);
    snprintf(c->variant, sizeof c->variant, "%s", t->variant);
    snprintf(c->optimizer, sizeof c->optimizer, "%s", t->optimizer);
    snprintf(c->schedule, sizeof c->schedule, "%s", t->schedule);
    snprintf(c->selection, sizeof c->selection, "%s", t->selection);
    snprintf(c->hparams, sizeof c->hparams, "%s", t->hparams_json);
    snprintf(c->metric, sizeof c->metric, "%s", t->metric);
    snprintf(c->message, sizeof c->message, "%s", t->message);
    c->calls++;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Tests */

static void test_status_names(void **state)
{
    assert_string_equal(tp_trial_status_name(TP_TRIAL_RUNNING), "running");
    assert_string_equal(tp_trial_status_name(TP_TRIAL_REACHED), "reached");
    assert_string_equal(tp_trial_status_name(TP_TRIAL_BUDGET), "budget");
    assert_string_equal(tp_trial_status_name(TP_TRIAL_COMPLETE), "complete");
    assert_string_equal(tp_trial_status_name(TP_TRIAL_FAILED), "failed");
    assert_string_equal(tp_trial_status_name((tp_trial_status)42), "unknown");
}

static void test_roundtrip(void **state)
{
    tmp *t = *state;
    char sub[128];
    snprintf(sub, sizeof sub, "%s/a/b", t->dir); /* mkdir -p */
    tp_results *r = open_ok(sub);
    char want_path[160];
    snprintf(want_path, sizeof want_path, "%s/results.db", sub);
    assert_string_equal(tp_results_path(r), want_path);

    tp_trial_meta m = meta_example();
    int64_t id = 0;
    assert_int_equal(tp_results_begin_trial(r, &m, &id, err, sizeof err), 0);
    assert_true(id > 0);

    /* Running: the end fields read back as NaN, status running. */
    trial_copy c = {0};
    assert_int_equal(tp_results_foreach_trial(r, NULL, 0, copy_trial, &c, err, sizeof err), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.t.status, TP_TRIAL_RUNNING);
    assert_int_equal(c.t.num_evals, 0);
    assert_true(isnan(c.t.time_to_target));

    for (uint32_t i = 0; i < 6; i++) {
        tp_eval_row e = eval_example(i);
        if (tp_results_add_eval(r, id, &e, err, sizeof err) != 0)
            fail_msg("%s", err);
    }
    tp_trial_end end = {
        .status = TP_TRIAL_BUDGET,
        .reason = TP_OK,
        .message = "budget of 60 s spent",
        .steps = 0x8000000000000001ULL,
        .submission_time_wall = 60.25,
        .submission_time_cpu = 118.5,
        .time_to_target = INFINITY,
        .best_validation_metric = NAN,
        .wall_time = 75.0625,
    };
    assert_int_equal(tp_results_end_trial(r, id, &end, err, sizeof err), 0);
    tp_results_close(r);

    /* Reopen: everything is there, exactly. */
    r = open_ok(sub);
    memset(&c, 0, sizeof c);
    assert_int_equal(tp_results_foreach_trial(r, NULL, 0, copy_trial, &c, err, sizeof err), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.t.id, id);
    assert_string_equal(c.workload, m.workload);
    assert_string_equal(c.variant, "");
    assert_string_equal(c.optimizer, m.optimizer);
    assert_string_equal(c.schedule, m.schedule);
    assert_string_equal(c.selection, m.selection);
    assert_string_equal(c.hparams, m.hparams_json);
    assert_true(c.t.seed == m.seed);
    assert_same(c.t.budget, 60.0);
    assert_string_equal(c.metric, "accuracy");
    assert_int_equal(c.t.maximize, 1);
    assert_same(c.t.validation_target, 0.87);
    assert_int_equal(c.t.status, TP_TRIAL_BUDGET);
    assert_int_equal(c.t.reason, TP_OK);
    assert_string_equal(c.message, end.message);
    assert_true(c.t.steps == end.steps);
    assert_same(c.t.submission_time_wall, end.submission_time_wall);
    assert_same(c.t.submission_time_cpu, end.submission_time_cpu);
    assert_true(isinf(c.t.time_to_target) && c.t.time_to_target > 0);
    assert_true(isnan(c.t.best_validation_metric));
    assert_same(c.t.wall_time, end.wall_time);
    assert_int_equal(c.t.num_evals, 6);

    collected *ev = calloc(1, sizeof *ev);
    assert_int_equal(tp_results_foreach_eval(r, id, collect_eval, ev, err, sizeof err), 0);
    assert_int_equal(ev->n, 6);
    for (uint32_t i = 0; i < 6; i++) {
        tp_eval_row w = eval_example(i), *g = &ev->rows[i];
        assert_int_equal(g->eval_index, w.eval_index);
        assert_true(g->global_step == w.global_step);
        assert_same(g->score, w.score);
        assert_same(g->submission_time_wall, w.submission_time_wall);
        assert_same(g->submission_time_cpu, w.submission_time_cpu);
        assert_same(g->total_duration, w.total_duration);
        assert_same(g->validation_metric, w.validation_metric);
        assert_same(g->validation_loss, w.validation_loss);
        assert_same(g->test_metric, w.test_metric);
        assert_same(g->test_loss, w.test_loss);
        assert_int_equal(g->validation_reached, w.validation_reached);
        assert_int_equal(g->test_reached, w.test_reached);
    }
    free(ev);

    /* created_at and ended_at are ISO-8601 UTC. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(want_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT created_at, ended_at, status FROM trials", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    for (int col = 0; col < 2; col++) {
        const char *ts = (const char *)sqlite3_column_text(st, col);
        assert_non_null(ts);
        int y, mo, d, h, mi;
        double s;
        char z = 0;
        assert_int_equal(sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%lf%c", &y, &mo, &d, &h, &mi, &s, &z), 7);
        assert_true(y >= 2024 && z == 'Z');
    }
    assert_string_equal((const char *)sqlite3_column_text(st, 2), "budget");
    sqlite3_finalize(st);
    sqlite3_close(db);
    tp_results_close(r);

    char p[160];
    snprintf(p, sizeof p, "%s/a", t->dir);
    unlink(want_path);
    rmdir(sub);
    rmdir(p);
}

static int count_trial(const tp_trial_summary *t, void *ud)
{
    int64_t *ids = ud;
    ids[++ids[0]] = t->id;
    return 0;
}

static int stop_at_second(const tp_trial_summary *t, void *ud)
{
    return ++*(int *)ud == 2 ? 7 : 0;
}

/* A callback that reads the evals of the trial it is given: nested reads work. */
static int nested_read(const tp_trial_summary *t, void *ud)
{
    tp_results *r = ud;
    collected *ev = calloc(1, sizeof *ev);
    int rc = tp_results_foreach_eval(r, t->id, collect_eval, ev, err, sizeof err);
    int ok = rc == 0 && ev->n == t->num_evals;
    free(ev);
    return ok ? 0 : -100;
}

/* Sweep placement: submission, ruleset, study, trial index and the unique plan key. */
typedef struct placed {
    int n;
    char submission[4][32], ruleset[4][16], plan_key[4][64];
    int study[4], trial_index[4];
} placed;

static int collect_placed(const tp_trial_summary *t, void *ud)
{
    placed *p = ud;
    snprintf(p->submission[p->n], 32, "%s", t->submission);
    snprintf(p->ruleset[p->n], 16, "%s", t->ruleset);
    snprintf(p->plan_key[p->n], 64, "%s", t->plan_key);
    p->study[p->n] = t->study;
    p->trial_index[p->n] = t->trial_index;
    p->n++;
    return 0;
}

static int count_evals(const tp_eval_row *e, void *ud)
{
    (void)e;
    (*(int *)ud)++;
    return 0;
}

static void test_sweep_placement(void **state)
{
    tmp *t = *state;
    tp_results *r = open_ok(t->dir);
    tp_trial_meta m = meta_example();
    int64_t one_off, planned, dup;
    assert_int_equal(tp_results_begin_trial(r, &m, &one_off, err, sizeof err), TP_OK);
    m.submission = "adamw_wc";
    m.ruleset = "external";
    m.study = 2;
    m.trial_index = 4;
    m.plan_key = "adamw_wc/fmnist_mlp/study_2/trial_4";
    assert_int_equal(tp_results_begin_trial(r, &m, &planned, err, sizeof err), TP_OK);
    /* A plan key names one planned trial: recording it twice is refused. */
    assert_int_not_equal(tp_results_begin_trial(r, &m, &dup, err, sizeof err), TP_OK);
    placed p;
    memset(&p, 0, sizeof p);
    assert_int_equal(tp_results_foreach_trial(r, NULL, 0, collect_placed, &p, err, sizeof err), 0);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.submission[0], "adamw"); /* one-off: the optimizer id */
    assert_string_equal(p.ruleset[0], "");
    assert_string_equal(p.plan_key[0], "");
    assert_string_equal(p.submission[1], "adamw_wc");
    assert_string_equal(p.ruleset[1], "external");
    assert_int_equal(p.study[1], 2);
    assert_int_equal(p.trial_index[1], 4);
    assert_string_equal(p.plan_key[1], "adamw_wc/fmnist_mlp/study_2/trial_4");

    /* Resume: find a planned trial and its status; delete one (with its evals). */
    int64_t id;
    tp_trial_status st;
    assert_int_equal(tp_results_find_planned(r, m.plan_key, &id, &st, err, sizeof err), TP_OK);
    assert_int_equal(id, planned);
    assert_int_equal(st, TP_TRIAL_RUNNING);
    assert_int_equal(tp_results_find_planned(r, "no/such/key", &id, &st, err, sizeof err), TP_OK);
    assert_int_equal(id, 0);
    tp_eval_row e = eval_example(0);
    assert_int_equal(tp_results_add_eval(r, planned, &e, err, sizeof err), TP_OK);
    assert_int_equal(tp_results_delete_trial(r, planned, err, sizeof err), TP_OK);
    assert_int_equal(tp_results_find_planned(r, m.plan_key, &id, &st, err, sizeof err), TP_OK);
    assert_int_equal(id, 0);
    /* Its evals went with it, and the key can be planned again. */
    assert_int_equal(tp_results_begin_trial(r, &m, &planned, err, sizeof err), TP_OK);
    tp_trial_end end = {.status = TP_TRIAL_REACHED, .message = "", .time_to_target = 1.0};
    assert_int_equal(tp_results_end_trial(r, planned, &end, err, sizeof err), TP_OK);
    assert_int_equal(tp_results_find_planned(r, m.plan_key, &id, &st, err, sizeof err), TP_OK);
    assert_int_equal(st, TP_TRIAL_REACHED);
    int evals = 0;
    assert_int_equal(tp_results_foreach_eval(r, planned, count_evals, &evals, err, sizeof err),
                     TP_OK);
    assert_int_equal(evals, 0);
    tp_results_close(r);
}

static void test_foreach_and_errors(void **state)
{
    tmp *t = *state;
    tp_results *r = open_ok(t->dir);
    tp_trial_meta m = meta_example();
    int64_t ids[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tp_results_begin_trial(r, &m, &ids[i], err, sizeof err), 0);
        for (uint32_t k = 0; k < (uint32_t)i; k++) {
            tp_eval_row e = eval_example(k);
            assert_int_equal(tp_results_add_eval(r, ids[i], &e, err, sizeof err), 0);
        }
    }

    /* Given ids: in id order, each once. */
    int64_t want[] = {ids[3], ids[1], ids[3]};
    int64_t seen[8] = {0};
    assert_int_equal(tp_results_foreach_trial(r, want, 3, count_trial, seen, err, sizeof err), 0);
    assert_int_equal(seen[0], 2);
    assert_int_equal(seen[1], ids[1]);
    assert_int_equal(seen[2], ids[3]);

    /* An unknown id: TP_ENOENT and fn never called. */
    int64_t bad[] = {ids[0], 999};
    memset(seen, 0, sizeof seen);
    assert_int_equal(tp_results_foreach_trial(r, bad, 2, count_trial, seen, err, sizeof err),
                     TP_ENOENT);
    assert_int_equal(seen[0], 0);
    assert_non_null(strstr(err, "no trial 999"));

    /* fn's non-zero value stops the walk and is returned. */
    int calls = 0;
    assert_int_equal(tp_results_foreach_trial(r, NULL, 0, stop_at_second, &calls, err, sizeof err),
                     7);
    assert_int_equal(calls, 2);

    assert_int_equal(tp_results_foreach_trial(r, NULL, 0, nested_read, r, err, sizeof err), 0);

    /* Errors. */
    tp_eval_row e = eval_example(0);
    assert_int_equal(tp_results_add_eval(r, 999, &e, err, sizeof err), TP_ENOENT);
    assert_non_null(strstr(err, "no trial 999"));
    assert_int_equal(tp_results_add_eval(r, ids[1], &e, err, sizeof err), TP_EINVAL);
    assert_non_null(strstr(err, "already recorded"));
    tp_trial_end end = {.status = TP_TRIAL_FAILED, .reason = TP_ECRASH, .message = "SIGSEGV"};
    assert_int_equal(tp_results_end_trial(r, 999, &end, err, sizeof err), TP_ENOENT);
    end.status = TP_TRIAL_RUNNING;
    assert_int_equal(tp_results_end_trial(r, ids[0], &end, err, sizeof err), TP_EINVAL);
    collected *ev = calloc(1, sizeof *ev);
    assert_int_equal(tp_results_foreach_eval(r, 999, collect_eval, ev, err, sizeof err), TP_ENOENT);
    free(ev);
    m.workload = NULL;
    int64_t id;
    assert_int_equal(tp_results_begin_trial(r, &m, &id, err, sizeof err), TP_EINVAL);

    tp_results_close(r);
    tp_results_close(NULL);
}

static void test_wal_mode(void **state)
{
    tmp *t = *state;
    tp_results *r = open_ok(t->dir);

    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(t->db, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
    tp_results_close(r);
}

/* A results "directory" that is a file. */
static void test_dir_is_file(void **state)
{
    tmp *t = *state;
    FILE *f = fopen(t->db, "wb");
    assert_non_null(f);
    fclose(f);
    tp_results *r = (tp_results *)1;
    assert_int_equal(tp_results_open(t->db, &r, err, sizeof err), TP_EIO);
    assert_null(r);
    char want[256];
    snprintf(want, sizeof want, "cannot use results directory %s: not a directory", t->db);
    assert_string_equal(err, want);
}

static void test_garbage_file(void **state)
{
    tmp *t = *state;
    FILE *f = fopen(t->db, "wb");
    assert_non_null(f);
    for (int i = 0; i < 8192; i++)
        fputc("this is not a database\n"[i % 23], f);
    fclose(f);

    tp_results *r = (tp_results *)1;
    int rc = tp_results_open(t->dir, &r, err, sizeof err);
    print_message("%s\n", err);
    assert_int_equal(rc, TP_EDB);
    assert_null(r);
    assert_non_null(strstr(err, t->db));
    assert_non_null(strstr(err, "not a database"));
}

/* A valid SQLite file whose pages are damaged after the header. */
static void test_corrupt_file(void **state)
{
    tmp *t = *state;
    tp_results *r = open_ok(t->dir);
    tp_trial_meta m = meta_example();
    int64_t id;
    assert_int_equal(tp_results_begin_trial(r, &m, &id, err, sizeof err), 0);
    for (uint32_t i = 0; i < 200; i++) {
        tp_eval_row e = eval_example(i);
        assert_int_equal(tp_results_add_eval(r, id, &e, err, sizeof err), 0);
    }
    tp_results_close(r); /* checkpoints the WAL into the file */

    FILE *f = fopen(t->db, "r+b");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    assert_true(size > 4096 * 3);
    for (long off = 4096 + 8; off < size; off += 4096) { /* every page after the first */
        fseek(f, off, SEEK_SET);
        for (int i = 0; i < 64; i++)
            fputc(0xA5, f);
    }
    fclose(f);

    r = (tp_results *)1;
    int rc = tp_results_open(t->dir, &r, err, sizeof err);
    print_message("%s\n", err);
    assert_int_equal(rc, TP_EDB);
    assert_null(r);
    assert_non_null(strstr(err, t->db));
}

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static void test_newer_schema(void **state)
{
    tmp *t = *state;
    tp_results_close(open_ok(t->dir));
    exec_sql(t->db, "PRAGMA user_version=99");

    tp_results *r = NULL;
    int rc = tp_results_open(t->dir, &r, err, sizeof err);
    print_message("%s\n", err);
    assert_int_equal(rc, TP_EDB);
    assert_null(r);
    assert_non_null(strstr(err, "schema version 99 is newer"));
}

static int collect_sharpness(const tp_sharpness_row *m, void *ud)
{
    tp_sharpness_row *rows = ud;
    rows[rows[15].iters++] = *m;
    return 0;
}

/* Sharpness rows round-trip with NaN for what was not measured, in step order; a repeated
 * step and an unknown trial are refused. */
static void test_sharpness_rows(void **state)
{
    tmp *t = *state;
    tp_results *r = open_ok(t->dir);
    tp_trial_meta meta = meta_example();
    int64_t id;
    assert_int_equal(tp_results_begin_trial(r, &meta, &id, err, sizeof err), TP_OK);
    tp_sharpness_row a = {.step = 10,
                          .loss = 0.5,
                          .sharpness = 12.5,
                          .precond_sharpness = 380.0,
                          .threshold = 380.0,
                          .threshold_kind = 2,
                          .lr = 1e-3,
                          .iters = 7,
                          .grads = 15,
                          .seconds = 0.25};
    tp_sharpness_row b = {.step = 0,
                          .loss = 2.0,
                          .sharpness = 3.0,
                          .precond_sharpness = NAN,
                          .threshold = NAN,
                          .threshold_kind = 0,
                          .lr = NAN,
                          .iters = 20,
                          .grads = 41,
                          .seconds = 1.0};
    assert_int_equal(tp_results_add_sharpness(r, id, &a, err, sizeof err), TP_OK);
    assert_int_equal(tp_results_add_sharpness(r, id, &b, err, sizeof err), TP_OK);
    assert_int_equal(tp_results_add_sharpness(r, id, &a, err, sizeof err), TP_EINVAL);
    assert_non_null(strstr(err, "step 10"));
    assert_int_equal(tp_results_add_sharpness(r, id + 100, &a, err, sizeof err), TP_ENOENT);

    tp_sharpness_row rows[16] = {0};
    assert_int_equal(tp_results_foreach_sharpness(r, id, collect_sharpness, rows, err, sizeof err),
                     TP_OK);
    assert_int_equal(rows[15].iters, 2);
    assert_int_equal(rows[0].step, 0);
    assert_true(isnan(rows[0].precond_sharpness) && isnan(rows[0].threshold));
    assert_int_equal(rows[0].grads, 41);
    assert_int_equal(rows[1].step, 10);
    assert_same(rows[1].precond_sharpness, 380.0);
    assert_same(rows[1].lr, 1e-3);
    assert_int_equal(rows[1].threshold_kind, 2);
    assert_int_equal(rows[1].iters, 7);
    assert_int_equal(
        tp_results_foreach_sharpness(r, id + 100, collect_sharpness, rows, err, sizeof err),
        TP_ENOENT);
    tp_results_close(r);
}

/* A schema-1 database (before the sharpness table) is brought to version 2 on open, its
 * trials kept. */
static void test_migrates_version_1(void **state)
{
    tmp *t = *state;
    tp_results *r = open_ok(t->dir);
    tp_trial_meta meta = meta_example();
    int64_t id;
    assert_int_equal(tp_results_begin_trial(r, &meta, &id, err, sizeof err), TP_OK);
    tp_results_close(r);
    exec_sql(t->db, "DROP TABLE sharpness; PRAGMA user_version=1");

    r = open_ok(t->dir);
    int64_t ids[8] = {0};
    assert_int_equal(tp_results_foreach_trial(r, NULL, 0, count_trial, ids, err, sizeof err),
                     TP_OK);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], id);
    tp_sharpness_row a = {.step = 1, .loss = 1.0, .iters = 1, .grads = 3};
    assert_int_equal(tp_results_add_sharpness(r, id, &a, err, sizeof err), TP_OK);
    tp_results_close(r);
}

static void test_foreign_database(void **state)
{
    tmp *t = *state;
    exec_sql(t->db, "CREATE TABLE notes(x)");
    tp_results *r = NULL;
    int rc = tp_results_open(t->dir, &r, err, sizeof err);
    print_message("%s\n", err);
    assert_int_equal(rc, TP_EDB);
    assert_non_null(strstr(err, "without a trainperf schema version"));
    unlink(t->db);

    exec_sql(t->db, "PRAGMA application_id=1234");
    assert_int_equal(tp_results_open(t->dir, &r, err, sizeof err), TP_EDB);
    assert_non_null(strstr(err, "not a trainperf results database"));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_many_evals(void **state)
{
    tmp *t = *state;
    tp_results *r = open_ok(t->dir);
    tp_trial_meta m = meta_example();
    int64_t id;
    assert_int_equal(tp_results_begin_trial(r, &m, &id, err, sizeof err), 0);

    enum { N = 2000 };
    double t0 = now_s();
    for (uint32_t i = 0; i < N; i++) {
        tp_eval_row e = eval_example(i);
        if (tp_results_add_eval(r, id, &e, err, sizeof err) != 0)
            fail_msg("%s", err);
    }
    double dt = now_s() - t0;
    print_message("%d evals, one transaction each: %.3f s (%.1f us per eval)\n", N, dt,
                  1e6 * dt / N);
    assert_true(dt < 2.0);

    collected *ev = calloc(1, sizeof *ev);
    t0 = now_s();
    assert_int_equal(tp_results_foreach_eval(r, id, collect_eval, ev, err, sizeof err), 0);
    print_message("read back in %.3f s\n", now_s() - t0);
    assert_int_equal(ev->n, N);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(ev->rows[i].eval_index, i);
    free(ev);
    tp_results_close(r);
}

/* The child writes and dies by SIGKILL without closing; nothing it reported may be lost. */
static void test_crash_durability(void **state)
{
    tmp *t = *state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char e[512];
        tp_results *r = NULL;
        tp_trial_meta m = meta_example();
        int64_t id;
        if (tp_results_open(t->dir, &r, e, sizeof e) != 0 ||
            tp_results_begin_trial(r, &m, &id, e, sizeof e) != 0)
            _exit(2);
        for (uint32_t i = 0; i < 10; i++) {
            tp_eval_row row = eval_example(i);
            if (tp_results_add_eval(r, id, &row, e, sizeof e) != 0)
                _exit(3);
        }
        raise(SIGKILL);
        _exit(4);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    tp_results *r = open_ok(t->dir);
    trial_copy c = {0};
    assert_int_equal(tp_results_foreach_trial(r, NULL, 0, copy_trial, &c, err, sizeof err), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.t.status, TP_TRIAL_RUNNING);
    assert_int_equal(c.t.num_evals, 10);
    collected *ev = calloc(1, sizeof *ev);
    assert_int_equal(tp_results_foreach_eval(r, c.t.id, collect_eval, ev, err, sizeof err), 0);
    assert_int_equal(ev->n, 10);
    for (uint32_t i = 0; i < 10; i++) {
        tp_eval_row w = eval_example(i);
        assert_int_equal(ev->rows[i].eval_index, i);
        assert_same(ev->rows[i].validation_loss, w.validation_loss);
    }
    free(ev);
    tp_results_close(r);
}

/* Two processes create the database and write their trials at the same time. */
static void test_concurrent_writers(void **state)
{
    tmp *t = *state;
    enum { WRITERS = 3, EVALS = 300 };
    pid_t pids[WRITERS];
    fflush(NULL);
    for (int w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            char e[512];
            tp_results *r = NULL;
            tp_trial_meta m = meta_example();
            int64_t id;
            if (tp_results_open(t->dir, &r, e, sizeof e) != 0 ||
                tp_results_begin_trial(r, &m, &id, e, sizeof e) != 0) {
                fprintf(stderr, "writer %d: %s\n", w, e);
                _exit(2);
            }
            for (uint32_t i = 0; i < EVALS; i++) {
                tp_eval_row row = eval_example(i);
                if (tp_results_add_eval(r, id, &row, e, sizeof e) != 0) {
                    fprintf(stderr, "writer %d: %s\n", w, e);
                    _exit(3);
                }
            }
            tp_results_close(r);
            _exit(0);
        }
    }
    for (int w = 0; w < WRITERS; w++) {
        int status = 0;
        while (waitpid(pids[w], &status, 0) < 0 && errno == EINTR)
            ;
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    tp_results *r = open_ok(t->dir);
    int64_t seen[WRITERS + 2] = {0};
    assert_int_equal(tp_results_foreach_trial(r, NULL, 0, count_trial, seen, err, sizeof err), 0);
    assert_int_equal(seen[0], WRITERS);
    for (int w = 0; w < WRITERS; w++) {
        collected *ev = calloc(1, sizeof *ev);
        assert_int_equal(tp_results_foreach_eval(r, seen[1 + w], collect_eval, ev, err, sizeof err),
                         0);
        assert_int_equal(ev->n, EVALS);
        free(ev);
    }
    tp_results_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names),
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreach_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_placement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_is_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sharpness_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_version_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_evals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_durability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
