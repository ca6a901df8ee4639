/*
 * test_runner_reasons.c - the host's failure taxonomy (runner.c) against fake workers: shell
 * scripts, written to a temporary folder, that stand in for trainperf-worker and do one wrong
 * thing each (exit early, die of a signal, write garbage or a lying end event on fd 3, go
 * silent after their hello, ignore SIGTERM, close the event pipe, leave a grandchild holding
 * it). Valid frames come from tp_event_write into files the scripts copy to fd 3. All cases
 * run side by side on one libuv loop, as a sweep runs trials, so one bad worker is also shown
 * not to disturb the others. Checked for each: status, reason, message, how long the host took
 * to decide, and that the reason and message are what the results store recorded.
 *
 * Not here: real workers and plugins (test_sandbox.c).
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tp_test.h"
#include <uv.h>

#include <trainperf/trainperf.h>

#include "core/error.h"
#include "core/events.h"
#include "core/results.h"
#include "core/runner.h"

static char tmpdir[256];

/* -- frames ------------------------------------------------------------------------------- */

static void frame_file(const char *name, int (*write_frames)(int fd))
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(write_frames(fileno(f)), 0);
    fclose(f);
}

static int hello(int fd)
{
    tp_event_hello h = {.num_params = 10,
                        .train_size = 100,
                        .step_hint = 10,
                        .batch_size = 4,
                        .threads = 1,
                        .budget = 10,
                        .init_seconds = 0.1};
    return tp_event_write(fd, TP_EVENT_HELLO, &h, sizeof h);
}

static tp_event_end end_event(tp_trial_status status)
{
    tp_event_end e;
    memset(&e, 0, sizeof e);
    e.status = status;
    e.steps = 5;
    e.submission_time_wall = 0.5;
    e.submission_time_cpu = 0.5;
    e.time_to_target = INFINITY;
    e.best_validation_metric = NAN;
    e.wall_time = 1;
    return e;
}

static int hello_end_complete(int fd)
{
    tp_event_end e = end_event(TP_TRIAL_COMPLETE);
    snprintf(e.message, sizeof e.message, "fake complete");
    return hello(fd) || tp_event_write(fd, TP_EVENT_END, &e, sizeof e);
}

/* A worker that claims both targets without a single eval. */
static int hello_end_forged(int fd)
{
    tp_event_end e = end_event(TP_TRIAL_REACHED);
    e.time_to_target = 0.001;
    return hello(fd) || tp_event_write(fd, TP_EVENT_END, &e, sizeof e);
}

/* A failed end without a reason. */
static int hello_end_no_reason(int fd)
{
    tp_event_end e = end_event(TP_TRIAL_FAILED);
    return hello(fd) || tp_event_write(fd, TP_EVENT_END, &e, sizeof e);
}

static int hello_eval(int fd)
{
    tp_event_eval e = {.global_step = 1,
                       .eval_index = 0,
                       .score = 0.01,
                       .submission_time_wall = 0.01,
                       .submission_time_cpu = 0.01,
                       .total_duration = 0.02,
                       .validation_metric = 0.5,
                       .validation_loss = 1.0,
                       .test_metric = 0.5,
                       .test_loss = 1.0};
    return hello(fd) || tp_event_write(fd, TP_EVENT_EVAL, &e, sizeof e);
}

/* -- cases --------------------------------------------------------------------------------- */

typedef struct fake {
    const char *name;
    const char *script; /* body; $T is the temp folder */
    double wall_limit, silence_limit;
    tp_trial_status status;
    int reason;
    const char *message;             /* substring */
    const char *message2;            /* another substring, or NULL */
    double min_seconds, max_seconds; /* the host's decision time */
    uint32_t evals;                  /* committed */
} fake;

/* One case's run. */
typedef struct slot {
    const fake *c;
    char path[512];
    tp_run_request req;
    int64_t id;
    int done;
    tp_run_result res;
} slot;

#define F TP_TRIAL_FAILED
static fake cases[] = {
    {"exit0", "exit 0", 30, 30, F, TP_EEXITED, "exited with status 0 before reporting",
     "did the submission call exit()?", 0, 5, 0},
    {"exit3", "exit 3", 30, 30, F, TP_EEXITED, "status 3", NULL, 0, 5, 0},
    {"segv", "kill -SEGV $$", 30, 30, F, TP_ECRASH, "signal 11 (SIGSEGV", NULL, 0, 5, 0},
    {"abort", "kill -ABRT $$", 30, 30, F, TP_ECRASH, "signal 6 (SIGABRT", NULL, 0, 5, 0},
    {"outside_sigkill", "kill -KILL $$", 30, 30, F, TP_ECRASH,
     "SIGKILL) from outside trainperf: out of memory?", NULL, 0, 5, 0},
    {"sigsys", "kill -SYS $$", 30, 30, F, TP_ESANDBOX, "sandbox violation", "SIGSYS", 0, 5, 0},
    {"sigxcpu", "kill -XCPU $$", 30, 30, F, TP_ETIMEOUT, "CPU-time limit", NULL, 0, 5, 0},
    {"eval_then_segv", "cat $T/hello_eval.bin >&3; kill -SEGV $$", 30, 30, F, TP_ECRASH,
     "signal 11", NULL, 0, 5, 1},
    {"garbage", "printf 'garbage, not events: GARBAGE GARBAGE' >&3; exec sleep 30", 30, 30, F,
     TP_EPROTO, "protocol violation from the worker: bad frame header", NULL, 0, 5, 0},
    {"eval_then_garbage",
     "cat $T/hello_eval.bin >&3; printf '\\336\\255\\276\\357 and more garbage' >&3; "
     "exec sleep 30",
     30, 30, F, TP_EPROTO, "bad frame header", NULL, 0, 5, 1},
    {"silent_after_hello", "cat $T/hello.bin >&3; exec sleep 30", 30, 1, F, TP_ESILENT,
     "sent no event for 1 s", NULL, 1, 6, 0},
    {"silent_before_hello", "exec sleep 30", 1.5, 0.5, F, TP_ETIMEOUT, "wall-clock limit of 1.5 s",
     NULL, 1.5, 6, 0},
    {"ignores_sigterm", "trap '' TERM; cat $T/hello.bin >&3; while :; do sleep 0.2; done", 1, 30, F,
     TP_ETIMEOUT, "wall-clock limit", "ignored SIGTERM and was sent SIGKILL",
     1 + TP_RUNNER_KILL_GRACE, 8, 0},
    {"forged_reached", "cat $T/hello_end_forged.bin >&3; exit 0", 30, 30, F, TP_EPROTO,
     "end event says both targets were reached, but no eval reached them", NULL, 0, 5, 0},
    {"failed_without_reason", "cat $T/hello_end_no_reason.bin >&3; exit 1", 30, 30, F, TP_EPROTO,
     "a failed trial needs a reason", NULL, 0, 5, 0},
    {"good_end", "cat $T/hello_end_complete.bin >&3; exit 0", 30, 30, TP_TRIAL_COMPLETE, TP_OK,
     "fake complete", NULL, 0, 5, 0},
    {"end_then_hang", "cat $T/hello_end_complete.bin >&3; exec sleep 30", 30, 1, TP_TRIAL_COMPLETE,
     TP_OK, "fake complete", NULL, 1, 6, 0},
    {"closes_pipe", "cat $T/hello.bin >&3; exec 3>&-; exec sleep 30", 30, 30, F, TP_EPROTO,
     "closed its event pipe without an end event", NULL, TP_RUNNER_KILL_GRACE, 8, 0},
    /* The grandchild says when it has left the process group, so the exit cannot race it. */
    {"grandchild_holds_pipe",
     "setsid sh -c \"touch $T/left; exec sleep 30\" & echo $! > $T/grandchild.pid; "
     "while [ ! -e $T/left ]; do sleep 0.01; done; exit 0",
     30, 30, F, TP_EEXITED, "status 0", NULL, TP_RUNNER_KILL_GRACE, 8, 0},
};
#undef F
#define NUM_CASES (sizeof cases / sizeof *cases)

static slot slots[NUM_CASES];

static void on_done(const tp_run_result *res, int rc, const char *err, void *ud)
{
    slot *s = ud;
    if (rc < 0)
        fail_msg("%s: the store failed: %s", s->c->name, err);
    s->res = *res;
    s->done = 1;
}

static void write_script(slot *s)
{
    snprintf(s->path, sizeof s->path, "%s/%s.sh", tmpdir, s->c->name);
    FILE *f = fopen(s->path, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n# a fake trainperf-worker: %s\nT='%s'\n%s\n", s->c->name, tmpdir,
            s->c->script);
    fclose(f);
    assert_int_equal(chmod(s->path, 0755), 0);
}

typedef struct stored {
    int n;
    int64_t id[32];
    int reason[32];
    tp_trial_status status[32];
    char message[32][640];
} stored;

static int collect(const tp_trial_summary *t, void *ud)
{
    stored *s = ud;
    if (s->n < 32) {
        s->id[s->n] = t->id;
        s->reason[s->n] = t->reason;
        s->status[s->n] = t->status;
        snprintf(s->message[s->n], sizeof s->message[s->n], "%s", t->message ? t->message : "");
        s->n++;
    }
    return 0;
}

static void test_fake_workers(void **state)
{
    (void)state;
    frame_file("hello.bin", hello);
    frame_file("hello_eval.bin", hello_eval);
    frame_file("hello_end_complete.bin", hello_end_complete);
    frame_file("hello_end_forged.bin", hello_end_forged);
    frame_file("hello_end_no_reason.bin", hello_end_no_reason);

    char err[512], dir[512];
    snprintf(dir, sizeof dir, "%s/results", tmpdir);
    tp_results *db;
    assert_int_equal(tp_results_open(dir, &db, err, sizeof err), 0);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    double start = tp_clock_wall_now();
    for (size_t i = 0; i < NUM_CASES; i++) {
        slot *sl = &slots[i];
        const fake *c = sl->c = &cases[i];
        write_script(sl);
        tp_trial_meta meta = {.workload = "fake",
                              .optimizer = c->name,
                              .schedule = "constant",
                              .selection = "next_batch",
                              .hparams_json = "{}",
                              .budget = 10,
                              .clock = "wall",
                              .metric = "accuracy",
                              .maximize = 1,
                              .validation_target = 0.9,
                              .test_target = 0.9};
        assert_int_equal(tp_results_begin_trial(db, &meta, &sl->id, err, sizeof err), 0);
        tp_run_request *q = &sl->req;
        q->worker_path = sl->path;
        tp_spec_init(&q->spec);
        q->spec.workload_config = "fake.cfg";
        q->spec.plugin_dir = tmpdir;
        q->spec.optimizer = c->name;
        q->wall_limit = c->wall_limit;
        q->silence_limit = c->silence_limit;
        q->progress = TP_PROGRESS_NONE;
        q->label = c->name;
        q->metric = "accuracy";
        q->budget = 10;
        if (tp_runner_start(&loop, q, db, sl->id, on_done, sl, err, sizeof err) < 0)
            fail_msg("%s: %s", c->name, err);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    double total = tp_clock_wall_now() - start;

    stored st;
    memset(&st, 0, sizeof st);
    assert_int_equal(tp_results_foreach_trial(db, NULL, 0, collect, &st, err, sizeof err), 0);
    assert_int_equal(st.n, (int)NUM_CASES);
    int bad = 0;
    for (size_t i = 0; i < NUM_CASES; i++) {
        const slot *sl = &slots[i];
        const fake *c = sl->c;
        const tp_run_result *r = &sl->res;
        print_message("%-22s %-9s %-12s %5.2f s  %s\n", c->name, tp_trial_status_name(r->status),
                      tp__reason_name(r->reason), r->wall_time, r->message);
        int ok = sl->done && r->status == c->status && r->reason == c->reason &&
                 strstr(r->message, c->message) &&
                 (!c->message2 || strstr(r->message, c->message2)) &&
                 r->wall_time >= c->min_seconds - 0.05 && r->wall_time <= c->max_seconds &&
                 r->num_evals == c->evals;
        /* What the store recorded is what the host decided. */
        int k = 0;
        while (k < st.n && st.id[k] != sl->id)
            k++;
        ok = ok && k < st.n && st.status[k] == r->status && st.reason[k] == r->reason &&
             strcmp(st.message[k], r->message) == 0;
        if (!ok) {
            print_message("  ^ expected %s %s \"%s\" in [%.1f, %.1f] s with %u eval(s)\n",
                          tp_trial_status_name(c->status), tp__reason_name(c->reason), c->message,
                          c->min_seconds, c->max_seconds, c->evals);
            bad++;
        }
    }
    tp_results_close(db);
    /* The escaped grandchild: the host stopped waiting for the pipe it held; end it here. */
    char pidpath[600];
    snprintf(pidpath, sizeof pidpath, "%s/grandchild.pid", tmpdir);
    FILE *f = fopen(pidpath, "r");
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) == 1 && pid > 1)
            kill((pid_t)pid, SIGKILL);
        fclose(f);
    }
    print_message("all %zu fake workers judged in %.1f s\n", NUM_CASES, total);
    assert_int_equal(bad, 0);
    assert_true(pid > 1);
    assert_true(total < 15);
}

static void test_default_limits(void **state)
{
    (void)state;
    /* 2 x budget + 120 s on the wall clock; the CPU and steps clocks get more. */
    assert_true(tp_runner_default_wall_limit(30, TP_CLOCK_WALL) == 180);
    assert_true(tp_runner_default_wall_limit(30, TP_CLOCK_CPU) == 210);
    assert_true(tp_runner_default_wall_limit(30, TP_CLOCK_STEPS) == 270);
    assert_true(tp_runner_default_wall_limit(0, TP_CLOCK_WALL) == TP_RUNNER_GRACE);
    assert_true(tp_runner_default_wall_limit(NAN, TP_CLOCK_WALL) == TP_RUNNER_GRACE);
    /* max(60 s, 10 eval periods) */
    assert_true(tp_runner_default_silence_limit(0) == 60);
    assert_true(tp_runner_default_silence_limit(1.0) == 60);
    assert_true(tp_runner_default_silence_limit(20) == 200);
    assert_true(tp_runner_default_silence_limit(-1) == 60);
}

static int setup(void **state)
{
    (void)state;
    return tp_test_tmpdir(tmpdir, sizeof tmpdir, "reasons");
}

static int teardown(void **state)
{
    (void)state;
    return tp_test_tmpdir_remove(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_limits),
        cmocka_unit_test(test_fake_workers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
