/*
 * test_sandbox.c - the hostile-submission suite through the real binaries. One self-tuning
 * sweep (`trainperf sweep`, two trials at a time) runs a good submission (AdamW) beside every
 * hostile fixture of tests/sandbox/ on fmnist_mlp with a small data subset and a tiny budget.
 * Checked for each trial: its status, failure reason and message (the failure taxonomy), the
 * evals committed before it failed, and the line the sweep printed for it; for the sweep: the
 * host exits 0, the good trial reached its target with all its evals, the files the fixtures
 * went for (/etc/passwd, a dataset file, the results database) are unchanged or intact, and no
 * process of the sweep outlives it.
 *
 * Then, on one libuv loop through tp_runner_start: the hanging fixtures under a short silence
 * limit (TP_ESILENT, where the sweep above, with only a short wall-clock limit, gets
 * TP_ETIMEOUT), and allocating until refused under a 1 GiB memory limit (TP_ENOMEM), which a
 * sweep cannot set yet. AddressSanitizer builds have no memory limit (the sandbox skips
 * RLIMIT_AS, whose shadow memory needs terabytes), so they skip that case.
 *
 * Cases marked `sandbox` depend on the worker's seccomp filter and limits (core/sandbox.c).
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
#include <sqlite3.h>
#include <uv.h>

#include <trainperf/trainperf.h>

#include "core/error.h"
#include "core/results.h"
#include "core/runner.h"

#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_BUILD 1
#endif
#endif
#ifndef ASAN_BUILD
#define ASAN_BUILD 0
#endif

#define DATASET_FILE "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"
#define WALL_LIMIT   "8" /* seconds, 10x what a trial here needs: the hangs dominate the time */
#define SUBSET_SETS                                                                                \
    "\"data.train_limit=3000\", \"data.validation_limit=500\", \"data.test_limit=500\", "          \
    "\"eval_period=0.2\", \"targets.validation=0.6\", \"targets.test=0.55\""

static char tmpdir[256], plugdir[300], results[300], dbpath[320];

/* -- the expected taxonomy ----------------------------------------------------------------- */

enum outcome {
    OUT_FAILED,   /* status failed with `reason` */
    OUT_REACHED,  /* reached both targets */
    OUT_COMPLETE, /* the submission ended training */
    OUT_TRAINS    /* reached, budget or complete: anything but failed */
};

typedef struct expect {
    const char *name; /* submission name = fixture id */
    const char *optimizer;
    const char *selection; /* NULL: next_batch */
    const char *hparams;   /* NULL: none */
    enum outcome outcome;
    int reason;
    const char *must;      /* the message contains this */
    const char *any_of[2]; /* and one of these (when set) */
    uint32_t min_evals;    /* committed before the end */
    int sandbox;           /* depends on the worker's sandbox */
} expect;

static const expect sweep_cases[] = {
    /* The two that hang first, so they overlap. */
    {"loop",
     "loop",
     NULL,
     NULL,
     OUT_FAILED,
     TP_ETIMEOUT,
     "wall-clock limit of " WALL_LIMIT " s",
     {NULL, NULL},
     1,
     0},
    {"sleep",
     "sleep",
     NULL,
     NULL,
     OUT_FAILED,
     TP_ETIMEOUT,
     "wall-clock limit of " WALL_LIMIT " s",
     {NULL, NULL},
     1,
     0},
    {"adamw", "adamw", NULL, "learning_rate=0.002", OUT_REACHED, TP_OK, "", {NULL, NULL}, 1, 0},
    {"segv_init",
     "segv_init",
     NULL,
     NULL,
     OUT_FAILED,
     TP_ECRASH,
     "signal 11 (SIGSEGV",
     {NULL, NULL},
     0,
     0},
    {"segv_update",
     "segv_update",
     NULL,
     NULL,
     OUT_FAILED,
     TP_ECRASH,
     "signal 11 (SIGSEGV",
     {NULL, NULL},
     1,
     0},
    {"segv_select",
     "adamw",
     "segv_select",
     NULL,
     OUT_FAILED,
     TP_ECRASH,
     "signal 11 (SIGSEGV",
     {NULL, NULL},
     1,
     0},
    {"abort", "abort", NULL, NULL, OUT_FAILED, TP_ECRASH, "signal 6 (SIGABRT", {NULL, NULL}, 1, 0},
    {"exit",
     "exit",
     NULL,
     NULL,
     OUT_FAILED,
     TP_EEXITED,
     "the worker exited with status 0 before reporting how the trial ended",
     {NULL, NULL},
     1,
     0},
    {"error",
     "error",
     NULL,
     NULL,
     OUT_FAILED,
     TP_EINVAL,
     "update returned TP_EINVAL: hostile: refusing to train",
     {NULL, NULL},
     1,
     0},
    {"fork",
     "fork",
     NULL,
     NULL,
     OUT_FAILED,
     TP_ESANDBOX,
     "sandbox violation: ",
     {"clone", "fork"},
     1,
     1},
    {"open_passwd",
     "open_passwd",
     NULL,
     NULL,
     OUT_FAILED,
     TP_ESANDBOX,
     "sandbox violation: open",
     {NULL, NULL},
     1,
     1},
    {"open_db",
     "open_db",
     NULL,
     NULL,
     OUT_FAILED,
     TP_ESANDBOX,
     "sandbox violation: open",
     {NULL, NULL},
     1,
     1},
    {"open_dataset",
     "open_dataset",
     NULL,
     NULL,
     OUT_FAILED,
     TP_ESANDBOX,
     "sandbox violation: open",
     {NULL, NULL},
     1,
     1},
    {"socket",
     "socket",
     NULL,
     NULL,
     OUT_FAILED,
     TP_ESANDBOX,
     "sandbox violation: socket",
     {NULL, NULL},
     1,
     1},
    {"exec",
     "exec",
     NULL,
     NULL,
     OUT_FAILED,
     TP_ESANDBOX,
     "sandbox violation: execve",
     {NULL, NULL},
     1,
     1},
    {"garbage",
     "garbage",
     NULL,
     NULL,
     OUT_FAILED,
     TP_EPROTO,
     "protocol violation from the worker: bad frame header",
     {NULL, NULL},
     1,
     0},
    {"nan", "nan", NULL, NULL, OUT_FAILED, TP_ENONFINITE, "not finite", {NULL, NULL}, 1, 0},
    {"complete0", "complete0", NULL, NULL, OUT_COMPLETE, TP_OK, "", {NULL, NULL}, 1, 0},
    {"bad_args", "bad_args", NULL, NULL, OUT_TRAINS, TP_OK, "", {NULL, NULL}, 1, 0},
    {"huge_desc", "huge_desc", NULL, NULL, OUT_TRAINS, TP_OK, "", {NULL, NULL}, 1, 0},
};
#define NUM_SWEEP (sizeof sweep_cases / sizeof *sweep_cases)

static const char *outcome_name(enum outcome o)
{
    static const char *names[] = {"failed", "reached", "complete", "trains"};
    return names[o];
}

/* 1 when (status, reason, message, evals) is what `e` expects. */
static int judge(const expect *e, tp_trial_status status, int reason, const char *msg,
                 uint32_t evals)
{
    int ok = evals >= e->min_evals;
    switch (e->outcome) {
    case OUT_FAILED:
        ok = ok && status == TP_TRIAL_FAILED && reason == e->reason && strstr(msg, e->must) &&
             (!e->any_of[0] || strstr(msg, e->any_of[0]) ||
              (e->any_of[1] && strstr(msg, e->any_of[1])));
        break;
    case OUT_REACHED:
        ok = ok && status == TP_TRIAL_REACHED && reason == TP_OK;
        break;
    case OUT_COMPLETE:
        ok = ok && status == TP_TRIAL_COMPLETE && reason == TP_OK && evals == 1;
        break;
    case OUT_TRAINS:
        ok = ok && status != TP_TRIAL_FAILED && status != TP_TRIAL_RUNNING && reason == TP_OK;
        break;
    }
    return ok;
}

/* -- files the fixtures went for ------------------------------------------------------------ */

typedef struct snapshot {
    int exists;
    off_t size;
    struct timespec mtime;
    uint64_t hash; /* FNV-1a of the content */
} snapshot;

static snapshot take_snapshot(const char *path)
{
    snapshot s;
    memset(&s, 0, sizeof s);
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &st) < 0) {
        if (f)
            fclose(f);
        return s;
    }
    s.exists = 1;
    s.size = st.st_size;
    s.mtime = st.st_mtim;
    s.hash = 1469598103934665603ULL;
    int c;
    while ((c = getc(f)) != EOF)
        s.hash = (s.hash ^ (unsigned char)c) * 1099511628211ULL;
    fclose(f);
    return s;
}

static int same_snapshot(const snapshot *a, const snapshot *b)
{
    return a->exists && b->exists && a->size == b->size && a->hash == b->hash &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Processes still alive that were started with our marker in their environment. */
static int survivors(const char *marker)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid())
            continue;
        char path[64], buf[1 << 15];
        snprintf(path, sizeof path, "/proc/%ld/environ", pid);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        for (size_t off = 0; off < len; off += strlen(buf + off) + 1)
            if (strcmp(buf + off, marker) == 0) {
                print_message("survivor: pid %ld\n", pid);
                n++;
                break;
            }
    }
    closedir(d);
    return n;
}

/* -- the sweep ------------------------------------------------------------------------------ */

typedef struct row {
    int64_t id;
    char submission[64], message[640];
    tp_trial_status status;
    int reason;
    uint32_t evals;
    uint64_t steps;
    double time_to_target, wall_time;
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
    r->id = t->id;
    snprintf(r->submission, sizeof r->submission, "%s", t->submission);
    snprintf(r->message, sizeof r->message, "%s", t->message ? t->message : "");
    r->status = t->status;
    r->reason = t->reason;
    r->evals = t->num_evals;
    r->steps = t->steps;
    r->time_to_target = t->time_to_target;
    r->wall_time = t->wall_time;
    return 0;
}

typedef struct evals {
    int n;
    tp_eval_row e[512];
} evals;

static int collect_eval(const tp_eval_row *e, void *ud)
{
    evals *v = ud;
    if (v->n < 512)
        v->e[v->n++] = *e;
    return 0;
}

static void write_sweep_config(const char *cfg)
{
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f, "sweep = {\n"
               "  ruleset = \"self\";\n"
               "  workloads = [\"fmnist_mlp\"];\n"
               "  studies = 1;\n"
               "  budget_scale = 0.04;\n"
               "  jobs = 2;\n"
               "  seed = 5;\n"
               "  set = [" SUBSET_SETS "];\n"
               "  submissions = (\n");
    for (size_t i = 0; i < NUM_SWEEP; i++) {
        const expect *e = &sweep_cases[i];
        fprintf(f, "    { name = \"%s\"; optimizer = \"%s\";", e->name, e->optimizer);
        if (e->selection)
            fprintf(f, " selection = \"%s\";", e->selection);
        if (e->hparams)
            fprintf(f, " hparams = \"%s\";", e->hparams);
        fprintf(f, " }%s\n", i + 1 < NUM_SWEEP ? "," : "");
    }
    fprintf(f, "  );\n};\n");
    fclose(f);
}

static int run_sweep(const char *cfg, const char *out)
{
    const char *args[] = {"sweep",        cfg,        "--results", results, "--plugins", plugdir,
                          "--wall-limit", WALL_LIMIT, NULL};
    return tp_test_trainperf(out, args);
}

static void check_good_trial(const row *r)
{
    char err[512];
    tp_results *db;
    evals v;
    memset(&v, 0, sizeof v);
    assert_int_equal(tp_results_open(results, &db, err, sizeof err), 0);
    assert_int_equal(tp_results_foreach_eval(db, r->id, collect_eval, &v, err, sizeof err), 0);
    tp_results_close(db);
    assert_int_equal(r->status, TP_TRIAL_REACHED);
    assert_true(v.n >= 1);
    assert_int_equal((uint32_t)v.n, r->evals);
    int first = -1;
    for (int i = 0; i < v.n; i++) {
        assert_int_equal(v.e[i].eval_index, (uint32_t)i);
        assert_true(isfinite(v.e[i].validation_loss) && isfinite(v.e[i].test_loss));
        if (i > 0)
            assert_true(v.e[i].score >= v.e[i - 1].score);
        if (first < 0 && v.e[i].validation_reached)
            first = i;
    }
    assert_true(first >= 0);
    assert_true(v.e[first].validation_metric >= 0.6);
    assert_true(r->time_to_target == v.e[first].score);
    assert_true(v.e[v.n - 1].validation_reached && v.e[v.n - 1].test_reached);
}

/* The results database: a SQLite file that passes its own integrity check. */
static void check_db_intact(void)
{
    char magic[16] = "";
    FILE *f = fopen(dbpath, "rb");
    assert_non_null(f);
    assert_int_equal(fread(magic, 1, sizeof magic, f), sizeof magic);
    fclose(f);
    assert_memory_equal(magic, "SQLite format 3", 16);
    sqlite3 *h;
    assert_int_equal(sqlite3_open_v2(dbpath, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(h);
}

static void test_hostile_sweep(void **state)
{
    (void)state;
    char cfg[512], out[512], marker[512];
    snprintf(cfg, sizeof cfg, "%s/sweep.cfg", tmpdir);
    snprintf(out, sizeof out, "%s/sweep.txt", tmpdir);
    snprintf(marker, sizeof marker, "TP_HOSTILE_RESULTS_DB=%s", dbpath);
    write_sweep_config(cfg);
    snapshot passwd0 = take_snapshot("/etc/passwd"), data0 = take_snapshot(DATASET_FILE);
    assert_true(passwd0.exists && data0.exists);

    double t0 = tp_clock_wall_now();
    int rc = run_sweep(cfg, out);
    double took = tp_clock_wall_now() - t0;
    print_message("the sweep of %zu trials took %.1f s\n", NUM_SWEEP, took);
    if (rc != 0)
        tp_test_show_file(out);
    assert_int_equal(rc, 0); /* the host carried on to the end */

    /* Nothing the fixtures went for changed; nothing of the sweep outlives it. */
    snapshot passwd1 = take_snapshot("/etc/passwd"), data1 = take_snapshot(DATASET_FILE);
    assert_true(same_snapshot(&passwd0, &passwd1));
    assert_true(same_snapshot(&data0, &data1));
    check_db_intact();
    assert_int_equal(survivors(marker), 0);

    char err[512];
    tp_results *db;
    rows rs;
    memset(&rs, 0, sizeof rs);
    assert_int_equal(tp_results_open(results, &db, err, sizeof err), 0);
    assert_int_equal(tp_results_foreach_trial(db, NULL, 0, collect, &rs, err, sizeof err), 0);
    tp_results_close(db);
    assert_int_equal(rs.n, (int)NUM_SWEEP);

    int bad = 0, bad_sandbox = 0;
    const row *good = NULL;
    for (size_t i = 0; i < NUM_SWEEP; i++) {
        const expect *e = &sweep_cases[i];
        const row *r = NULL;
        for (int k = 0; k < rs.n; k++)
            if (strcmp(rs.r[k].submission, e->name) == 0)
                r = &rs.r[k];
        assert_non_null(r);
        if (!strcmp(e->name, "adamw"))
            good = r;
        int ok = judge(e, r->status, r->reason, r->message, r->evals);
        /* The sweep's display shows the reason of each failed trial. */
        char line[256];
        snprintf(line, sizeof line, "%s fmnist_mlp study 0 trial 0: failed (%s): ", e->name,
                 tp__reason_name(r->reason));
        if (r->status == TP_TRIAL_FAILED && !tp_test_file_contains(out, line)) {
            print_message("  the sweep did not print \"%s\"\n", line);
            ok = 0;
        }
        print_message("%s %-13s %-9s %-13s %3u evals %5llu steps %5.1f s  %s\n", ok ? "  " : "!!",
                      e->name, tp_trial_status_name(r->status), tp__reason_name(r->reason),
                      r->evals, (unsigned long long)r->steps, r->wall_time, r->message);
        if (!ok) {
            print_message("   ^ expected %s %s \"%s\"%s%s, >= %u evals%s\n",
                          outcome_name(e->outcome),
                          e->outcome == OUT_FAILED ? tp__reason_name(e->reason) : "", e->must,
                          e->any_of[0] ? " and one of " : "", e->any_of[0] ? e->any_of[0] : "",
                          e->min_evals, e->sandbox ? " (needs the worker's sandbox)" : "");
            bad++;
            bad_sandbox += e->sandbox;
        }
    }
    if (bad)
        print_message("%d case(s) wrong, %d of them depend on the worker's sandbox\n", bad,
                      bad_sandbox);
    assert_int_equal(bad, 0);
    assert_non_null(good);
    check_good_trial(good);
    char planned[64];
    snprintf(planned, sizeof planned, ": %zu trials planned", NUM_SWEEP);
    assert_true(tp_test_file_contains(out, planned));
}

/* -- limits the sweep cannot set yet, on one loop ------------------------------------------- */

typedef struct direct {
    const expect *e;
    double silence_limit;
    uint64_t memory_limit;
    tp_run_request req;
    int64_t id;
    int done;
    tp_run_result res;
} direct;

static void on_direct_done(const tp_run_result *res, int rc, const char *err, void *ud)
{
    direct *d = ud;
    if (rc < 0)
        fail_msg("%s: the store failed: %s", d->e->name, err);
    d->res = *res;
    d->done = 1;
}

static const char *direct_sets[] = {"data.train_limit=3000", "data.validation_limit=500",
                                    "data.test_limit=500", "eval_period=0.2", "budget=30"};

static void test_silence_and_memory(void **state)
{
    (void)state;
    static const expect silent_loop = {
        "loop",       "loop", NULL, NULL, OUT_FAILED, TP_ESILENT, "sent no event for 2 s",
        {NULL, NULL}, 1,      0};
    static const expect silent_sleep = {
        "sleep",      "sleep", NULL, NULL, OUT_FAILED, TP_ESILENT, "sent no event for 2 s",
        {NULL, NULL}, 1,       0};
    static const expect oom = {"alloc",   "alloc", NULL,         NULL, OUT_FAILED,
                               TP_ENOMEM, "alloc", {NULL, NULL}, 1,    1};
    direct runs[3] = {{.e = &silent_loop, .silence_limit = 2},
                      {.e = &silent_sleep, .silence_limit = 2},
                      {.e = &oom, .memory_limit = (uint64_t)1 << 30}};
    size_t n = ASAN_BUILD ? 2 : 3;
    if (ASAN_BUILD)
        print_message(
            "AddressSanitizer build: no memory limit to hit, the alloc case is skipped\n");

    char dir[512], err[512];
    snprintf(dir, sizeof dir, "%s/direct", tmpdir);
    tp_results *db;
    assert_int_equal(tp_results_open(dir, &db, err, sizeof err), 0);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    for (size_t i = 0; i < n; i++) {
        direct *d = &runs[i];
        tp_trial_meta meta = {.workload = "fmnist_mlp",
                              .optimizer = d->e->optimizer,
                              .schedule = "constant",
                              .selection = "next_batch",
                              .hparams_json = "{}",
                              .budget = 30,
                              .clock = "wall",
                              .metric = "accuracy",
                              .maximize = 1,
                              .validation_target = 0.885,
                              .test_target = 0.875};
        assert_int_equal(tp_results_begin_trial(db, &meta, &d->id, err, sizeof err), 0);
        tp_run_request *q = &d->req;
        q->worker_path = TP_TEST_BINARY_DIR "/trainperf-worker";
        tp_spec_init(&q->spec);
        q->spec.workload_config = TP_TEST_SOURCE_DIR "/workloads/fmnist_mlp/fmnist_mlp.cfg";
        for (size_t k = 0; k < sizeof direct_sets / sizeof *direct_sets; k++)
            q->spec.overrides[q->spec.num_overrides++] = direct_sets[k];
        q->spec.plugin_dir = plugdir;
        q->spec.optimizer = d->e->optimizer;
        q->spec.seed = 1;
        q->wall_limit = 60;
        q->silence_limit = d->silence_limit;
        q->memory_limit = d->memory_limit;
        q->progress = TP_PROGRESS_NONE;
        q->label = d->e->name;
        q->metric = "accuracy";
        q->budget = 30;
        if (tp_runner_start(&loop, q, db, d->id, on_direct_done, d, err, sizeof err) < 0)
            fail_msg("%s: %s", d->e->name, err);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    tp_results_close(db);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const direct *d = &runs[i];
        int ok = d->done &&
                 judge(d->e, d->res.status, d->res.reason, d->res.message, d->res.num_evals) &&
                 d->res.wall_time < 30;
        print_message("%s %-6s %-9s %-12s %5.1f s  %s\n", ok ? "  " : "!!", d->e->name,
                      tp_trial_status_name(d->res.status), tp__reason_name(d->res.reason),
                      d->res.wall_time, d->res.message);
        bad += !ok;
    }
    assert_int_equal(bad, 0);
}

/* -- setup --------------------------------------------------------------------------------- */

static int link_into(const char *dir, const char *file)
{
    char link[600];
    snprintf(link, sizeof link, "%s/%s", dir, strrchr(file, '/') + 1);
    return symlink(file, link);
}

static int setup(void **state)
{
    (void)state;
    /* Sanitizer builds: workers must die of their signals as in a normal build (no ASan SEGV
     * handler), exit(0) must exit 0 (no leak check at exit) and a refused allocation must
     * return NULL. */
    static char asan[1024];
    const char *old = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "%s%shandle_segv=0:detect_leaks=0:allocator_may_return_null=1",
             old ? old : "", old && *old ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    if (tp_test_tmpdir(tmpdir, sizeof tmpdir, "sandbox") < 0)
        return -1;
    snprintf(plugdir, sizeof plugdir, "%s/plugins", tmpdir);
    snprintf(results, sizeof results, "%s/results", tmpdir);
    snprintf(dbpath, sizeof dbpath, "%s/results.db", results);
    if (mkdir(plugdir, 0755) < 0)
        return -1;
    /* What the fixtures aim at. */
    setenv("TP_HOSTILE_RESULTS_DB", dbpath, 1);
    setenv("TP_HOSTILE_DATASET_FILE", DATASET_FILE, 1);
    const char *files[] = {TP_TEST_PLUGIN_DIR "/adamw.so", TP_TEST_PLUGIN_DIR "/next_batch.so",
                           TP_SANDBOX_FIXTURE_DIR "/hostile_select.so",
                           TP_SANDBOX_FIXTURE_DIR "/bad_args.so"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (link_into(plugdir, files[i]) < 0)
            return -1;
    static const char *acts[] = {"segv_init", "segv_update",  "abort",    "exit", "error",
                                 "loop",      "sleep",        "alloc",    "fork", "open_passwd",
                                 "open_db",   "open_dataset", "socket",   "exec", "garbage",
                                 "nan",       "complete0",    "huge_desc"};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
        char file[512];
        snprintf(file, sizeof file, "%s/hostile_%s.so", TP_SANDBOX_FIXTURE_DIR, acts[i]);
        if (link_into(plugdir, file) < 0)
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
        cmocka_unit_test(test_hostile_sweep),
        cmocka_unit_test(test_silence_and_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
