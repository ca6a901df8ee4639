/*
 * runner.c - one trial from the host's side (see runner.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "core/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "core/events.h"
#include "core/nn/nn.h" /* tp_blas_suggested_coretype */

extern char **environ;

#define KILL_GRACE_MS 2000 /* SIGTERM, then SIGKILL after this */

struct tp_runner {
    const tp_run_request *req;
    tp_results *db;
    int64_t trial_id;
    tp_run_result *out; /* &result */
    tp_run_result result;
    tp_runner_done_cb done;
    void *ud;
    int started; /* the worker was spawned: its end is owed to the store and to done */
    int log_fd;
    uv_loop_t *loop;
    uv_process_t proc;
    uv_pipe_t events;
    uv_timer_t watchdog;
    tp_event_decoder dec;
    int open_handles;
    int exited, pipe_done;
    int64_t exit_status;
    int term_signal;
    int got_end;
    int timed_out;
    int killed_for_protocol;
    int store_failed;
    char failure[640]; /* first host-side failure (protocol, store) */
    int failure_code;
    double last_metric;
    double start_wall;
};
typedef struct tp_runner run;

static void complete(run *r);

static void on_close(uv_handle_t *h)
{
    run *r = h->data;
    if (--r->open_handles == 0)
        complete(r);
}

static void kill_worker(run *r, int sig)
{
    if (r->exited)
        return;
    /* The worker is a process-group leader (UV_PROCESS_DETACHED): kill its threads and any
     * children with it. */
    if (kill(-r->proc.pid, sig) < 0)
        uv_process_kill(&r->proc, sig);
}

static void fail_host_side(run *r, int code, const char *msg)
{
    if (!r->failure[0]) {
        snprintf(r->failure, sizeof r->failure, "%s", msg);
        r->failure_code = code;
    }
}

static void progress_line(run *r, uint64_t step, double sub)
{
    const tp_run_request *q = r->req;
    if (q->progress != TP_PROGRESS_LINE)
        return;
    char metric[64] = "-";
    if (!isnan(r->last_metric))
        snprintf(metric, sizeof metric, "%.4f", r->last_metric);
    fprintf(stdout, "\r\033[K%s  step %llu  %.1f/%.0f s (%.0f%%)  validation %s %s (target %g)",
            q->label, (unsigned long long)step, sub, q->budget, 100.0 * sub / q->budget, q->metric,
            metric, q->validation_target);
    fflush(stdout);
}

static int on_event(const tp_event *ev, void *ud)
{
    run *r = ud;
    char err[512] = "";
    switch (ev->type) {
    case TP_EVENT_HELLO:
        r->out->batch_size = ev->u.hello.batch_size;
        r->out->num_params = ev->u.hello.num_params;
        if (r->req->progress == TP_PROGRESS_PLAIN)
            fprintf(stdout, "%s: started (%llu parameters, batch %u, setup %.2f s)\n",
                    r->req->label, (unsigned long long)ev->u.hello.num_params,
                    ev->u.hello.batch_size, ev->u.hello.init_seconds);
        break;
    case TP_EVENT_PROGRESS:
        progress_line(r, ev->u.progress.step, ev->u.progress.submission_time);
        break;
    case TP_EVENT_EVAL: {
        const tp_event_eval *e = &ev->u.eval;
        tp_eval_row row = {
            .eval_index = e->eval_index,
            .global_step = e->global_step,
            .score = e->score,
            .submission_time_wall = e->submission_time_wall,
            .submission_time_cpu = e->submission_time_cpu,
            .total_duration = e->total_duration,
            .validation_metric = e->validation_metric,
            .validation_loss = e->validation_loss,
            .test_metric = e->test_metric,
            .test_loss = e->test_loss,
            .validation_reached = e->validation_reached,
            .test_reached = e->test_reached,
        };
        if (tp_results_add_eval(r->db, r->trial_id, &row, err, sizeof err) < 0) {
            r->store_failed = 1;
            fail_host_side(r, TP_EDB, err);
            return TP_EDB;
        }
        r->last_metric = e->validation_metric;
        r->out->num_evals = e->eval_index + 1;
        if (r->req->progress == TP_PROGRESS_PLAIN)
            fprintf(stdout, "%s: eval %u  step %llu  %.2f s  validation %s %.4f  test %.4f\n",
                    r->req->label, e->eval_index, (unsigned long long)e->global_step, e->score,
                    r->req->metric, e->validation_metric, e->test_metric);
        else
            progress_line(r, e->global_step, e->score);
        break;
    }
    case TP_EVENT_END: {
        const tp_event_end *e = &ev->u.end;
        tp_run_result *o = r->out;
        o->status = (tp_trial_status)e->status;
        o->reason = e->reason;
        snprintf(o->message, sizeof o->message, "%s", e->message);
        o->steps = e->steps;
        o->num_evals = e->num_evals;
        o->submission_time_wall = e->submission_time_wall;
        o->submission_time_cpu = e->submission_time_cpu;
        o->time_to_target = e->time_to_target;
        o->best_validation_metric = e->best_validation_metric;
        r->got_end = 1;
        break;
    }
    }
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    static char slab[65536];
    (void)suggested;
    buf->base = slab;
    buf->len = sizeof slab;
}

static void maybe_finish(run *r)
{
    if (r->exited && r->pipe_done) {
        if (!uv_is_closing((uv_handle_t *)&r->watchdog))
            uv_close((uv_handle_t *)&r->watchdog, on_close);
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    run *r = s->data;
    if (n > 0) {
        char err[512] = "";
        int rc = tp_event_decoder_feed(&r->dec, buf->base, (size_t)n, on_event, r, err, sizeof err);
        if (rc < 0 && !r->store_failed) {
            char msg[600];
            snprintf(msg, sizeof msg, "protocol violation from the worker: %s", err);
            fail_host_side(r, TP_EPROTO, msg);
        }
        if (rc < 0) {
            r->killed_for_protocol = 1;
            kill_worker(r, SIGKILL);
            uv_read_stop(s);
            r->pipe_done = 1;
            uv_close((uv_handle_t *)s, on_close);
            maybe_finish(r);
        }
        return;
    }
    if (n < 0) {
        r->pipe_done = 1;
        uv_read_stop(s);
        uv_close((uv_handle_t *)s, on_close);
        maybe_finish(r);
    }
}

static void on_exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    run *r = p->data;
    r->exited = 1;
    r->exit_status = status;
    r->term_signal = term_signal;
    /* Nothing of the trial outlives its worker: whatever it forked (still in its process
     * group) would keep the event pipe open. */
    kill(-p->pid, SIGKILL);
    uv_close((uv_handle_t *)p, on_close);
    maybe_finish(r);
}

static void on_watchdog(uv_timer_t *t)
{
    run *r = t->data;
    if (r->exited) { /* the worker is gone but its pipe is still open: stop waiting */
        if (!r->pipe_done) {
            r->pipe_done = 1;
            uv_read_stop((uv_stream_t *)&r->events);
            uv_close((uv_handle_t *)&r->events, on_close);
        }
        maybe_finish(r);
        return;
    }
    if (!r->timed_out) {
        r->timed_out = 1;
        kill_worker(r, SIGTERM);
        uv_timer_start(t, on_watchdog, KILL_GRACE_MS, 0);
    } else {
        kill_worker(r, SIGKILL);
    }
}

/* The worker's environment: the host's, plus OPENBLAS_CORETYPE when the machine leaves it unset
 * and OpenBLAS would otherwise fall back to kernels far weaker than the CPU runs (0.3.21 on
 * CPUs newer than it). OpenBLAS reads the variable once, when it loads, so only whoever starts
 * a process can set it. A value the user or machine set is never touched. NULL: inherit. */
static char **worker_env(char *extra, size_t len)
{
    const char *core = getenv("OPENBLAS_CORETYPE") ? NULL : tp_blas_suggested_coretype();
    if (!core)
        return NULL;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env)
        return NULL;
    memcpy(env, environ, n * sizeof *env);
    snprintf(extra, len, "OPENBLAS_CORETYPE=%s", core);
    env[n] = extra;
    return env;
}

/* The worker's argv: `trainperf-worker run <spec> --event-fd 3`. Numbers go into `nums`. */
static int build_argv(const tp_run_request *q, char *nums, char **argv, int max)
{
    int n = 0;
    argv[n++] = (char *)q->worker_path;
    argv[n++] = "run";
    if (tp_spec_to_argv(&q->spec, argv, &n, max - 2, nums) < 0)
        return -1;
    argv[n++] = "--event-fd";
    argv[n++] = "3";
    argv[n] = NULL;
    return n;
}

static void finish_result(run *r)
{
    tp_run_result *o = r->out;
    o->wall_time = tp_clock_wall_now() - r->start_wall;
    if (r->failure[0]) { /* the host stopped trusting the worker */
        o->status = TP_TRIAL_FAILED;
        o->reason = r->failure_code;
        snprintf(o->message, sizeof o->message, "%s", r->failure);
    } else if (r->timed_out && !r->got_end) {
        o->status = TP_TRIAL_FAILED;
        o->reason = TP_ETIMEOUT;
        snprintf(o->message, sizeof o->message,
                 "killed: the worker ran past its wall-clock limit of %.0f s", r->req->wall_limit);
    } else if (!r->got_end) {
        o->status = TP_TRIAL_FAILED;
        o->reason = TP_ECRASH;
        if (r->term_signal)
            snprintf(o->message, sizeof o->message, "worker killed by signal %d (%s)",
                     r->term_signal, strsignal(r->term_signal));
        else
            snprintf(o->message, sizeof o->message,
                     "worker exited with status %lld without reporting how the trial ended",
                     (long long)r->exit_status);
    }
}

/* Every handle is closed: record the end, tell the caller, free. */
static void complete(run *r)
{
    char err[640] = "";
    int rc = TP_OK;
    if (r->started) {
        if (r->req->progress == TP_PROGRESS_LINE) {
            fputc('\n', stdout);
            fflush(stdout);
        }
        finish_result(r);
        tp_run_result *o = r->out;
        tp_trial_end end = {
            .status = o->status,
            .reason = o->reason,
            .message = o->message,
            .steps = o->steps,
            .submission_time_wall = o->submission_time_wall,
            .submission_time_cpu = o->submission_time_cpu,
            .time_to_target = o->time_to_target,
            .best_validation_metric = o->best_validation_metric,
            .wall_time = o->wall_time,
        };
        if (tp_results_end_trial(r->db, r->trial_id, &end, err, sizeof err) < 0)
            rc = TP_EDB;
    }
    if (r->log_fd >= 0)
        close(r->log_fd);
    if (r->started && r->done)
        r->done(r->out, rc, err, r->ud);
    free(r);
}

int tp_runner_start(uv_loop_t *loop, const tp_run_request *req, tp_results *db, int64_t trial_id,
                    tp_runner_done_cb done, void *ud, char *err, size_t errlen)
{
    run *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return TP_ENOMEM;
    }
    r->req = req;
    r->db = db;
    r->trial_id = trial_id;
    r->out = &r->result;
    r->out->status = TP_TRIAL_FAILED;
    r->out->time_to_target = INFINITY;
    r->out->best_validation_metric = NAN;
    r->done = done;
    r->ud = ud;
    r->loop = loop;
    r->last_metric = NAN;
    r->start_wall = tp_clock_wall_now();
    tp_event_decoder_init(&r->dec);

    r->log_fd = open(req->log_path ? req->log_path : "/dev/null",
                     O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (r->log_fd < 0) {
        snprintf(err, errlen, "%s: cannot open the trial log: %s", req->log_path, strerror(errno));
        free(r);
        return TP_EIO;
    }
    uv_pipe_init(loop, &r->events, 0);
    r->events.data = r;
    r->open_handles++;
    uv_timer_init(loop, &r->watchdog);
    r->watchdog.data = r;
    r->open_handles++;

    int rc;
    char nums[TP_SPEC_NUMS_SIZE];
    char *argv[2 * (TP_SPEC_NUM_OPTIONS + TP_SPEC_MAX_OVERRIDES) + 8];
    if (build_argv(req, nums, argv, (int)(sizeof argv / sizeof *argv)) < 0) {
        snprintf(err, errlen, "too many worker arguments");
        rc = TP_EINVAL;
        goto fail;
    }
    uv_stdio_container_t stdio[4];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = r->log_fd;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = r->log_fd;
    stdio[3].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[3].data.stream = (uv_stream_t *)&r->events;

    uv_process_options_t po;
    memset(&po, 0, sizeof po);
    po.file = req->worker_path;
    po.args = argv;
    po.exit_cb = on_exit_cb;
    po.stdio_count = 4;
    po.stdio = stdio;
    po.flags = UV_PROCESS_DETACHED; /* own process group: the watchdog kills all of it */
    char coretype[64];
    char **env = worker_env(coretype, sizeof coretype);
    po.env = env;
    r->proc.data = r;
    int uvrc = uv_spawn(loop, &r->proc, &po);
    free(env);
    if (uvrc < 0) {
        snprintf(err, errlen, "cannot start the worker %s: %s", req->worker_path,
                 uv_strerror(uvrc));
        rc = TP_ESYS;
        goto fail;
    }
    r->open_handles++;
    r->started = 1;
    uv_read_start((uv_stream_t *)&r->events, on_alloc, on_read);
    uv_timer_start(&r->watchdog, on_watchdog, (uint64_t)(req->wall_limit * 1000.0), 0);
    return TP_OK;

fail:
    /* The callback is never called when the start failed; the handles close, then r is
     * freed by complete() (started == 0). */
    uv_close((uv_handle_t *)&r->events, on_close);
    uv_close((uv_handle_t *)&r->watchdog, on_close);
    return rc;
}

typedef struct sync_run {
    tp_run_result *out;
    int rc;
    char *err;
    size_t errlen;
} sync_run;

static void sync_done(const tp_run_result *res, int rc, const char *err, void *ud)
{
    sync_run *s = ud;
    *s->out = *res;
    s->rc = rc;
    if (rc < 0)
        snprintf(s->err, s->errlen, "%s", err);
}

int tp_runner_run(const tp_run_request *req, tp_results *db, int64_t trial_id, tp_run_result *out,
                  char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    uv_loop_t loop;
    int uvrc = uv_loop_init(&loop);
    if (uvrc < 0) {
        snprintf(err, errlen, "uv_loop_init: %s", uv_strerror(uvrc));
        return TP_ESYS;
    }
    sync_run s = {out, TP_OK, err, errlen};
    int rc = tp_runner_start(&loop, req, db, trial_id, sync_done, &s, err, errlen);
    uv_run(&loop, UV_RUN_DEFAULT); /* the trial, or the closing of a failed start */
    uv_loop_close(&loop);
    return rc < 0 ? rc : s.rc;
}

typedef struct exec_state {
    int64_t status;
    int signal;
} exec_state;

static void on_exec_exit(uv_process_t *p, int64_t status, int term_signal)
{
    exec_state *s = p->data;
    s->status = status;
    s->signal = term_signal;
    uv_close((uv_handle_t *)p, NULL);
}

int tp_runner_exec(char *const *argv, int *exit_code, char *err, size_t errlen)
{
    uv_loop_t loop;
    int uvrc = uv_loop_init(&loop);
    if (uvrc < 0) {
        snprintf(err, errlen, "uv_loop_init: %s", uv_strerror(uvrc));
        return TP_ESYS;
    }
    uv_stdio_container_t stdio[3];
    for (int i = 0; i < 3; i++) {
        stdio[i].flags = UV_INHERIT_FD;
        stdio[i].data.fd = i;
    }
    exec_state st = {0, 0};
    uv_process_t proc;
    proc.data = &st;
    uv_process_options_t po;
    memset(&po, 0, sizeof po);
    po.file = argv[0];
    po.args = (char **)argv;
    po.exit_cb = on_exec_exit;
    po.stdio_count = 3;
    po.stdio = stdio;
    fflush(stdout);
    uvrc = uv_spawn(&loop, &proc, &po);
    if (uvrc < 0) {
        snprintf(err, errlen, "cannot start %s: %s", argv[0], uv_strerror(uvrc));
        uv_loop_close(&loop);
        return TP_ESYS;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    *exit_code = st.signal ? 128 + st.signal : (int)st.status;
    return TP_OK;
}
