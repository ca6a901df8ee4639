/*
 * runner.c - one trial from the host's side (see runner.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "core/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "core/error.h"
#include "core/events.h"
#include "core/nn/nn.h" /* tp_blas_suggested_coretype */

extern char **environ;

/* Why the host killed the worker (the first reason wins). */
typedef enum kill_reason {
    KILL_NONE = 0,
    KILL_TIMEOUT,  /* the wall-clock limit */
    KILL_SILENT,   /* no event for the silence limit */
    KILL_PROTOCOL, /* garbage on the pipe, or the pipe closed without an end event */
    KILL_STORE     /* the results store failed: the trial cannot be recorded */
} kill_reason;

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
    uv_timer_t watchdog; /* the wall-clock limit */
    uv_timer_t silence;  /* restarted by every event after the hello */
    uv_timer_t grace;    /* SIGTERM -> SIGKILL; after the exit, the wait for the pipe */
    tp_event_decoder dec;
    double wall_limit, silence_limit; /* in effect */
    int open_handles;
    int exited, pipe_done;
    int64_t exit_status;
    int term_signal;
    int got_hello, got_end;
    kill_reason killed; /* why the host killed the worker, KILL_NONE when it did not */
    int sent_sigkill;   /* the host sent SIGKILL (else a SIGKILL came from outside) */
    char failure[640];  /* first host-side failure (protocol, store) */
    int failure_code;
    /* What the host saw, to check the end event against. */
    uint64_t last_step;
    uint32_t evals_seen;
    int last_eval_reached; /* the last eval had both targets reached */
    double first_reach_score;
    double last_metric;
    double start_wall;
};
typedef struct tp_runner run;

static void complete(run *r);

double tp_runner_default_wall_limit(double budget, tp_clock_kind clock)
{
    double b = budget > 0 && isfinite(budget) ? budget : 0;
    double factor = clock == TP_CLOCK_CPU ? 2.0 : clock == TP_CLOCK_STEPS ? 4.0 : 1.0;
    return factor * b + TP_RUNNER_EVAL_ALLOWANCE * b + TP_RUNNER_GRACE;
}

double tp_runner_default_silence_limit(double eval_period)
{
    double p = eval_period > 0 && isfinite(eval_period) ? eval_period : 0;
    double s = TP_RUNNER_SILENCE_PERIODS * p;
    return s > TP_RUNNER_SILENCE_MIN ? s : TP_RUNNER_SILENCE_MIN;
}

static uint64_t to_ms(double seconds)
{
    if (!(seconds > 0))
        return 1;
    if (seconds > 1e9) /* about 30 years: never, but a uv timer needs a number */
        seconds = 1e9;
    return (uint64_t)(seconds * 1000.0 + 0.5);
}

/* A signal's name; strsignal() gives the description only. */
static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGHUP:
        return "SIGHUP";
    case SIGINT:
        return "SIGINT";
    case SIGQUIT:
        return "SIGQUIT";
    case SIGILL:
        return "SIGILL";
    case SIGTRAP:
        return "SIGTRAP";
    case SIGABRT:
        return "SIGABRT";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGKILL:
        return "SIGKILL";
    case SIGSEGV:
        return "SIGSEGV";
    case SIGPIPE:
        return "SIGPIPE";
    case SIGALRM:
        return "SIGALRM";
    case SIGTERM:
        return "SIGTERM";
    case SIGSYS:
        return "SIGSYS";
    case SIGXCPU:
        return "SIGXCPU";
    case SIGXFSZ:
        return "SIGXFSZ";
    default:
        return "SIG?";
    }
}

static void on_close(uv_handle_t *h)
{
    run *r = h->data;
    if (--r->open_handles == 0)
        complete(r);
}

/* A note from the host in the trial's log, after whatever the worker wrote. */
static void log_note(run *r, const char *fmt, ...) TP_PRINTF(2, 3);
static void log_note(run *r, const char *fmt, ...)
{
    if (r->log_fd < 0)
        return;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    line[len++] = '\n';
    ssize_t w;
    do
        w = write(r->log_fd, line, len);
    while (w < 0 && errno == EINTR);
}

static void kill_worker(run *r, int sig)
{
    if (r->exited)
        return;
    if (sig == SIGKILL)
        r->sent_sigkill = 1;
    /* The worker is a process-group leader (UV_PROCESS_DETACHED): kill its threads and any
     * children with it. */
    if (kill(-r->proc.pid, sig) < 0)
        uv_process_kill(&r->proc, sig);
}

static void on_grace(uv_timer_t *t);
static void on_silence(uv_timer_t *t);
static void on_watchdog(uv_timer_t *t);

/* Stop the worker for `why`: SIGTERM to its group, SIGKILL after the grace period. The first
 * reason is the one the trial records. */
static void stop_worker(run *r, kill_reason why, const char *what)
{
    if (r->exited || r->killed != KILL_NONE)
        return;
    r->killed = why;
    log_note(r, "trainperf: stopping the worker (SIGTERM, then SIGKILL after %.0f s): %s",
             TP_RUNNER_KILL_GRACE, what);
    kill_worker(r, SIGTERM);
    uv_timer_start(&r->grace, on_grace, to_ms(TP_RUNNER_KILL_GRACE), 0);
}

static void fail_host_side(run *r, int code, const char *msg)
{
    if (!r->failure[0]) {
        snprintf(r->failure, sizeof r->failure, "%s", msg);
        r->failure_code = code;
    }
}

/* Garbage from the worker (or a store that cannot record it; r->failure says which): stop
 * trusting it at once, no SIGTERM first. */
static void kill_now(run *r, kill_reason why)
{
    if (r->exited)
        return;
    if (r->killed == KILL_NONE)
        r->killed = why;
    log_note(r, "trainperf: killing the worker (SIGKILL): %s", r->failure);
    kill_worker(r, SIGKILL);
}

static void close_pipe(run *r)
{
    if (r->pipe_done)
        return;
    r->pipe_done = 1;
    uv_read_stop((uv_stream_t *)&r->events);
    uv_close((uv_handle_t *)&r->events, on_close);
}

static void close_timer(run *r, uv_timer_t *t)
{
    (void)r;
    if (!uv_is_closing((uv_handle_t *)t))
        uv_close((uv_handle_t *)t, on_close);
}

static void maybe_finish(run *r)
{
    if (r->exited && r->pipe_done) {
        close_timer(r, &r->watchdog);
        close_timer(r, &r->silence);
        close_timer(r, &r->grace);
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

/* The end event against what the host saw: the decoder checked each field; this checks that
 * the outcome follows from the evals the host stored. */
static int check_end(run *r, const tp_event_end *e, char *err, size_t errlen)
{
    int failed = e->status == TP_TRIAL_FAILED;
    if (failed != (e->reason != TP_OK)) {
        snprintf(err, errlen,
                 "end event with status %d and reason %d: a failed trial needs a "
                 "reason and only a failed one",
                 e->status, e->reason);
        return TP_EPROTO;
    }
    if (e->status == TP_TRIAL_REACHED && !r->last_eval_reached) {
        snprintf(err, errlen, "end event says both targets were reached, but no eval reached them");
        return TP_EPROTO;
    }
    /* A failed trial's time is not scored; the sandbox's report of a violation, written from
     * a signal handler, does not know it. */
    if (!failed && (isfinite(e->time_to_target) ? e->time_to_target != r->first_reach_score
                                                : isfinite(r->first_reach_score))) {
        snprintf(err, errlen,
                 "end event's time to target %g is not the score of the first eval that reached "
                 "the validation target (%g)",
                 e->time_to_target, r->first_reach_score);
        return TP_EPROTO;
    }
    return TP_OK;
}

static int on_event(const tp_event *ev, void *ud)
{
    run *r = ud;
    char err[512] = "";
    /* Any valid event shows the worker is alive. */
    if (r->got_hello || ev->type == TP_EVENT_HELLO)
        uv_timer_start(&r->silence, on_silence, to_ms(r->silence_limit), 0);
    switch (ev->type) {
    case TP_EVENT_HELLO:
        r->got_hello = 1;
        r->out->batch_size = ev->u.hello.batch_size;
        r->out->num_params = ev->u.hello.num_params;
        if (r->req->progress == TP_PROGRESS_PLAIN)
            fprintf(stdout, "%s: started (%llu parameters, batch %u, setup %.2f s)\n",
                    r->req->label, (unsigned long long)ev->u.hello.num_params,
                    ev->u.hello.batch_size, ev->u.hello.init_seconds);
        break;
    case TP_EVENT_PROGRESS:
        r->last_step = ev->u.progress.step;
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
            fail_host_side(r, TP_EDB, err);
            return TP_EDB;
        }
        r->last_step = e->global_step;
        r->evals_seen = e->eval_index + 1;
        r->last_eval_reached = e->validation_reached && e->test_reached;
        if (e->validation_reached && !isfinite(r->first_reach_score))
            r->first_reach_score = e->score;
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
    case TP_EVENT_SHARPNESS: {
        const tp_event_sharpness *m = &ev->u.sharpness;
        tp_sharpness_row row = {
            .step = m->step,
            .loss = m->loss,
            .sharpness = m->sharpness,
            .precond_sharpness = m->precond_sharpness,
            .threshold = m->threshold,
            .threshold_kind = m->threshold_kind,
            .lr = m->lr,
            .iters = m->iters,
            .grads = m->grads,
            .seconds = m->seconds,
        };
        if (tp_results_add_sharpness(r->db, r->trial_id, &row, err, sizeof err) < 0) {
            fail_host_side(r, TP_EDB, err);
            return TP_EDB;
        }
        r->last_step = m->step;
        /* Measurements are outside the budget, so they extend the wall-clock limit by their
         * own time (a worker that lies here still meets the silence limit). */
        if (uv_is_active((uv_handle_t *)&r->watchdog)) {
            uint64_t due = uv_timer_get_due_in(&r->watchdog);
            uv_timer_start(&r->watchdog, on_watchdog, due + to_ms(m->seconds), 0);
        }
        if (r->req->progress == TP_PROGRESS_PLAIN) {
            /* The measured value the threshold bounds, and their ratio. */
            double v = m->threshold_kind == 2 ? m->precond_sharpness : m->sharpness;
            fprintf(stdout, "%s: sharpness step %llu  loss %.5g  sharpness %.5g", r->req->label,
                    (unsigned long long)m->step, m->loss, m->sharpness);
            if (!isnan(m->precond_sharpness))
                fprintf(stdout, "  preconditioned %.5g", m->precond_sharpness);
            if (!isnan(m->threshold))
                fprintf(stdout, "  threshold %.5g (%.3fx)", m->threshold, v / m->threshold);
            fprintf(stdout, "  (%u products, %.2f s)\n", m->iters, m->seconds);
        }
        break;
    }
    case TP_EVENT_END: {
        const tp_event_end *e = &ev->u.end;
        if (check_end(r, e, err, sizeof err) < 0) {
            char msg[600];
            snprintf(msg, sizeof msg, "protocol violation from the worker: %s", err);
            fail_host_side(r, TP_EPROTO, msg);
            return TP_EPROTO;
        }
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

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    run *r = s->data;
    if (n > 0) {
        char err[512] = "";
        int rc = tp_event_decoder_feed(&r->dec, buf->base, (size_t)n, on_event, r, err, sizeof err);
        if (rc < 0) {
            if (!r->failure[0]) {
                char msg[600];
                snprintf(msg, sizeof msg, "protocol violation from the worker: %s", err);
                fail_host_side(r, TP_EPROTO, msg);
            }
            kill_now(r, rc == TP_EDB ? KILL_STORE : KILL_PROTOCOL);
            close_pipe(r);
            maybe_finish(r);
        }
        return;
    }
    if (n < 0) {
        close_pipe(r);
        /* The worker closed its end: it is exiting, or it closed fd 3 and can never report
         * anything again. Give it the grace period to exit on its own. */
        if (!r->exited && r->killed == KILL_NONE)
            uv_timer_start(&r->grace, on_grace, to_ms(TP_RUNNER_KILL_GRACE), 0);
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
    uv_timer_stop(&r->watchdog);
    uv_timer_stop(&r->silence);
    /* Read what is left in the pipe; a grandchild that left the group may hold it open, so
     * wait for its end only so long. */
    if (!r->pipe_done)
        uv_timer_start(&r->grace, on_grace, to_ms(TP_RUNNER_KILL_GRACE), 0);
    maybe_finish(r);
}

static void on_grace(uv_timer_t *t)
{
    run *r = t->data;
    if (r->exited) { /* the worker is gone but its pipe is still open: stop waiting */
        close_pipe(r);
        maybe_finish(r);
        return;
    }
    if (r->killed != KILL_NONE) { /* SIGTERM was not enough */
        log_note(r, "trainperf: the worker ignored SIGTERM for %.0f s: SIGKILL",
                 TP_RUNNER_KILL_GRACE);
        kill_worker(r, SIGKILL);
        return;
    }
    /* The pipe closed and the worker did not exit. */
    if (r->got_end) { /* its result is in; only its teardown overran */
        stop_worker(r, KILL_SILENT, "the event pipe closed after the end event, no exit");
        return;
    }
    const char *msg = "protocol violation from the worker: it closed its event pipe without "
                      "an end event and kept running";
    fail_host_side(r, TP_EPROTO, msg);
    stop_worker(r, KILL_PROTOCOL, msg);
}

static void on_watchdog(uv_timer_t *t)
{
    run *r = t->data;
    char what[128];
    snprintf(what, sizeof what, "wall-clock limit of %g s reached", r->wall_limit);
    stop_worker(r, KILL_TIMEOUT, what);
}

static void on_silence(uv_timer_t *t)
{
    run *r = t->data;
    char what[128];
    snprintf(what, sizeof what, "no event for %g s", r->silence_limit);
    stop_worker(r, KILL_SILENT, what);
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

/* The worker's argv: `trainperf-worker run <spec> --event-fd 3 [--memory-limit BYTES]`.
 * Numbers go into `nums`, the memory limit into `mem` (32 bytes). */
static int build_argv(const tp_run_request *q, char *nums, char *mem, char **argv, int max)
{
    int n = 0;
    argv[n++] = (char *)q->worker_path;
    argv[n++] = "run";
    if (tp_spec_to_argv(&q->spec, argv, &n, max - 4, nums) < 0)
        return -1;
    argv[n++] = "--event-fd";
    argv[n++] = "3";
    if (q->memory_limit > 0) {
        snprintf(mem, 32, "%llu", (unsigned long long)q->memory_limit);
        argv[n++] = "--memory-limit";
        argv[n++] = mem;
    }
    argv[n] = NULL;
    return n;
}

/* How the trial ended, from the host's side. The order matters: once the host stopped
 * trusting the worker (garbage, an inconsistent end, a store failure) nothing the worker said
 * counts; a validated end event counts whatever happened to the process afterwards (a hang or
 * crash in teardown); then the host's own kill; then how the process died. */
static void finish_result(run *r)
{
    tp_run_result *o = r->out;
    char *m = o->message;
    size_t ml = sizeof o->message;
    o->wall_time = tp_clock_wall_now() - r->start_wall;
    if (!r->got_end) { /* steps and evals as far as the host saw them */
        o->steps = r->last_step;
        o->num_evals = r->evals_seen;
    }
    if (r->failure[0]) {
        o->status = TP_TRIAL_FAILED;
        o->reason = r->failure_code;
        snprintf(m, ml, "%s", r->failure);
        return;
    }
    if (r->got_end)
        return;
    o->status = TP_TRIAL_FAILED;
    const char *sigkill_note = r->sent_sigkill ? "; it ignored SIGTERM and was sent SIGKILL" : "";
    if (r->killed == KILL_TIMEOUT) {
        o->reason = TP_ETIMEOUT;
        snprintf(m, ml, "killed: the worker ran past its wall-clock limit of %g s (--wall-limit)%s",
                 r->wall_limit, sigkill_note);
    } else if (r->killed == KILL_SILENT) {
        o->reason = TP_ESILENT;
        snprintf(m, ml,
                 "killed: the worker sent no event for %g s (last seen at step %llu): the "
                 "submission hangs in a call or sleeps%s",
                 r->silence_limit, (unsigned long long)r->last_step, sigkill_note);
    } else if (r->term_signal == SIGSYS) {
        o->reason = TP_ESANDBOX;
        snprintf(m, ml,
                 "sandbox violation: the worker was killed by signal %d (SIGSYS) for a system "
                 "call the sandbox denies, before it could say which",
                 SIGSYS);
    } else if (r->term_signal == SIGXCPU) {
        o->reason = TP_ETIMEOUT;
        snprintf(m, ml, "the worker ran past its CPU-time limit (signal %d, SIGXCPU)", SIGXCPU);
    } else if (r->term_signal == SIGKILL && !r->sent_sigkill) {
        o->reason = TP_ECRASH;
        snprintf(m, ml,
                 "the worker was killed by signal %d (SIGKILL) from outside trainperf: out of "
                 "memory? (see the kernel log: dmesg)",
                 SIGKILL);
    } else if (r->term_signal) {
        o->reason = TP_ECRASH;
        snprintf(m, ml, "the worker was killed by signal %d (%s, %s)", r->term_signal,
                 signal_name(r->term_signal), strsignal(r->term_signal));
    } else {
        o->reason = TP_EEXITED;
        snprintf(m, ml,
                 "the worker exited with status %lld before reporting how the trial ended (did "
                 "the submission call exit()?)",
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
    r->first_reach_score = INFINITY;
    r->start_wall = tp_clock_wall_now();
    r->wall_limit = req->wall_limit > 0
                        ? req->wall_limit
                        : tp_runner_default_wall_limit(req->budget, req->spec.clock);
    r->silence_limit = req->silence_limit > 0 ? req->silence_limit
                                              : tp_runner_default_silence_limit(req->eval_period);
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
    uv_timer_t *timers[3] = {&r->watchdog, &r->silence, &r->grace};
    for (int i = 0; i < 3; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = r;
        r->open_handles++;
    }

    int rc;
    char nums[TP_SPEC_NUMS_SIZE], mem[32];
    char *argv[2 * (TP_SPEC_NUM_OPTIONS + TP_SPEC_MAX_OVERRIDES) + 10];
    if (build_argv(req, nums, mem, argv, (int)(sizeof argv / sizeof *argv)) < 0) {
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
    /* The loop's clock is cached at the start of its iteration; a sweep starting several
     * workers in one iteration would otherwise give the later ones a shorter limit. */
    uv_update_time(loop);
    uv_timer_start(&r->watchdog, on_watchdog, to_ms(r->wall_limit), 0);
    return TP_OK;

fail:
    /* The callback is never called when the start failed; the handles close, then r is
     * freed by complete() (started == 0). */
    uv_close((uv_handle_t *)&r->events, on_close);
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)timers[i], on_close);
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
