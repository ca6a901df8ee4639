/*
 * worker.c - one trial inside trainperf-worker (see worker.h).
 *
 * The order of operations, and why:
 *   1. read the workload config: its budget sizes the CPU-time limit;
 *   2. the limits, no-new-privileges and death with the host (tp_sandbox_limit), before any
 *      data or submission code, so the plugins' ELF constructors run under them too;
 *   3. build the workload (reads the data files) and dlopen the plugins: the last steps that
 *      open files. The plugins' constructors run here, outside the filter (a known limit);
 *   4. the seccomp filter (tp_sandbox_enter): every plugin entry point runs inside it, from
 *      get_batch_size and init (untimed) through the timed loop to destroy;
 *   5. the session (parameters), the plugins' contexts and init, HELLO, the timed loop;
 *   6. teardown (plugin destroy and dlclose are submission code: a violation there still fails
 *      the trial), then the one END event.
 *
 * Out of memory: a refused host->alloc is recorded (tp_sandbox_note_oom); when the trial then
 * fails, its END says TP_ENOMEM, which plugin asked for how much, and what the limit was.
 * The worker's own allocations failing are TP_ENOMEM too.
 *
 * Not here: the limits and rules themselves (sandbox.c), the timing rules (trial.c).
 */
#define _POSIX_C_SOURCE 200809L
#include "core/worker.h"

#include <cblas.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/config.h"
#include "core/events.h"
#include "core/hostapi.h"
#include "core/nn/nn.h" /* tp_blas_check */
#include "core/plugin.h"
#include "core/sandbox.h"
#include "core/sharpness.h"
#include "core/trial.h"

#define DEFAULT_SELECTION "next_batch"
#define PROGRESS_PERIOD   0.25 /* wall seconds between progress events */

/* One plugin of the submission, instantiated for this trial. */
typedef struct slot {
    const tp_plugin *p; /* NULL when the role is not filled (no schedule) */
    tp_ctx *ctx;
    void *state;
    int live; /* init succeeded: destroy is owed */
} slot;

typedef struct worker {
    const tp_worker_args *a;
    tp_workload_config cfg;
    tp_workload *w;
    tp_plugin_set *plugins;
    tp_session *s;
    slot opt, sched, sel;
    uint32_t batch_size;
    uint32_t *batch_idx;
    float *batch_weights;
    double last_progress;
    tp_time loop_start;
    double last_lr_factor; /* the schedule's factor of the last step taken */
    tp_sharpness *sharp;   /* diagnostics, NULL when not measured */
} worker;

static const tp_host *host(void)
{
    return tp_hostapi_table();
}

/* A failed trial after a refused host->alloc failed for want of memory, whatever the plugin
 * said next: the reason becomes TP_ENOMEM and the message leads with the refusal. */
static void blame_memory(int32_t *reason, char *msg, size_t msglen)
{
    char oom[TP_ERROR_MESSAGE_MAX], was[TP_ERROR_MESSAGE_MAX];
    if (!tp_sandbox_oom(oom, sizeof oom))
        return;
    snprintf(was, sizeof was, "%s", msg);
    snprintf(msg, msglen, "%s; then: %s", oom, was);
    *reason = TP_ENOMEM;
    fprintf(stderr, "worker: %s\n", oom);
}

/* The one END event. After tp_sandbox_claim_end a violation only reaches the log. */
static void send_end(const tp_worker_args *a, const tp_event_end *e)
{
    if (a->event_fd >= 0 && tp_sandbox_claim_end())
        tp_event_write(a->event_fd, TP_EVENT_END, e, sizeof *e);
}

static void send_end_failure(const tp_worker_args *a, int code, const char *msg)
{
    tp_event_end e;
    memset(&e, 0, sizeof e);
    e.status = TP_TRIAL_FAILED;
    e.reason = code < 0 ? code : TP_EPLUGIN;
    e.time_to_target = INFINITY;
    e.best_validation_metric = NAN;
    snprintf(e.message, sizeof e.message, "%s", msg);
    blame_memory(&e.reason, e.message, sizeof e.message);
    send_end(a, &e);
}

/* -- hyperparameters ------------------------------------------------------------------------ */

/* Give each plugin its declared hyperparameters: the trial's value where given, else the
 * default. A given name no plugin declares, a value out of range or a non-integer for an int
 * parameter is an error. */
static int make_ctx(worker *wk, slot *sl, const tp_kv_list *kv, char *err, size_t errlen)
{
    const tp_plugin *p = sl->p;
    const char *names[256];
    double values[256];
    if (p->num_hparams > 256) {
        snprintf(err, errlen, "%s: too many hyperparameters (%u)", p->id, p->num_hparams);
        return TP_ERANGE;
    }
    for (uint32_t i = 0; i < p->num_hparams; i++) {
        const tp_hparam_info *h = &p->hparams[i];
        const tp_kv *given = tp_kv_find(kv, h->name);
        double v = given ? given->value : h->default_value;
        if (v < h->min_value || v > h->max_value) {
            snprintf(err, errlen, "hyperparameter %s=%g is outside %s's range [%g, %g]", h->name, v,
                     p->id, h->min_value, h->max_value);
            return TP_ERANGE;
        }
        if (h->type == TP_HPARAM_INT && v != floor(v)) {
            snprintf(err, errlen, "hyperparameter %s=%g must be an integer for %s", h->name, v,
                     p->id);
            return TP_ERANGE;
        }
        names[i] = h->name;
        values[i] = v;
    }
    sl->ctx = tp_session_ctx_new(wk->s, p->id, names, values, p->num_hparams);
    if (!sl->ctx) {
        snprintf(err, errlen, "out of memory");
        return TP_ENOMEM;
    }
    return TP_OK;
}

static int declared_by(const tp_plugin *p, const char *name)
{
    for (uint32_t i = 0; p && i < p->num_hparams; i++)
        if (strcmp(p->hparams[i].name, name) == 0)
            return 1;
    return 0;
}

static int check_hparams_declared(worker *wk, const tp_kv_list *kv, char *err, size_t errlen)
{
    for (size_t i = 0; i < kv->count; i++) {
        const char *n = kv->items[i].key;
        if (declared_by(wk->opt.p, n) || declared_by(wk->sched.p, n) || declared_by(wk->sel.p, n))
            continue;
        int off =
            snprintf(err, errlen, "hyperparameter '%s' is not declared by %s", n, wk->opt.p->id);
        if (wk->sched.p)
            off += snprintf(err + off, errlen > (size_t)off ? errlen - off : 0, ", %s",
                            wk->sched.p->id);
        snprintf(err + off, errlen > (size_t)off ? errlen - off : 0,
                 " or %s (see `trainperf check` for each plugin's list)", wk->sel.p->id);
        return TP_ECONFIG;
    }
    return TP_OK;
}

/* -- hooks ------------------------------------------------------------------------------------ */

static int plugin_error(const tp_plugin *p, const char *fn, int rc, const tp_error *e, char *err,
                        size_t errlen)
{
    snprintf(err, errlen, "%s: %s returned %s%s%s", p->id, fn, tp_err_name(rc),
             e->message[0] ? ": " : "", e->message);
    return rc < 0 ? rc : TP_EPLUGIN;
}

static int hook_step(void *ud, uint64_t step, char *err, size_t errlen)
{
    worker *wk = ud;
    tp_error e;
    TP_STRUCT_INIT(&e, tp_error);

    tp_batch batch;
    TP_STRUCT_INIT(&batch, tp_batch);
    batch.capacity = wk->batch_size;
    batch.idx = wk->batch_idx;
    batch.weights = wk->batch_weights;
    int rc = tp_plugin_call_select_batch(wk->sel.p, wk->sel.state, host(), wk->sel.ctx, &batch, &e);
    if (rc != TP_OK)
        return plugin_error(wk->sel.p, "select_batch", rc, &e, err, errlen);
    if (batch.size == 0 || batch.size > wk->batch_size || !batch.idx) {
        snprintf(err, errlen, "%s: select_batch returned %u examples (capacity %u)", wk->sel.p->id,
                 batch.size, wk->batch_size);
        return TP_EPLUGIN;
    }

    double factor = 1.0;
    if (wk->sched.p) {
        rc = tp_plugin_call_lr_factor(wk->sched.p, wk->sched.state, host(), wk->sched.ctx, step,
                                      &factor, &e);
        if (rc != TP_OK)
            return plugin_error(wk->sched.p, "lr_factor", rc, &e, err, errlen);
        if (!isfinite(factor)) {
            snprintf(err, errlen, "%s: lr_factor(%llu) is not finite", wk->sched.p->id,
                     (unsigned long long)step);
            return TP_ENONFINITE;
        }
    }

    wk->last_lr_factor = factor;
    tp_update_args args;
    TP_STRUCT_INIT(&args, tp_update_args);
    args.step = step;
    args.lr_factor = factor;
    args.batch = &batch;
    rc = tp_plugin_call_update(wk->opt.p, wk->opt.state, host(), wk->opt.ctx, &args, &e);
    if (rc == TP_TRAINING_COMPLETE)
        return rc;
    if (rc != TP_OK)
        return plugin_error(wk->opt.p, "update", rc, &e, err, errlen);
    return TP_OK;
}

static int hook_prepare(void *ud, char *err, size_t errlen)
{
    worker *wk = ud;
    tp_error e;
    TP_STRUCT_INIT(&e, tp_error);
    int rc = tp_plugin_call_prepare_for_eval(wk->opt.p, wk->opt.state, host(), wk->opt.ctx, &e);
    if (rc != TP_OK)
        return plugin_error(wk->opt.p, "prepare_for_eval", rc, &e, err, errlen);
    return TP_OK;
}

static int hook_eval(void *ud, tp_trial_metrics *m, char *err, size_t errlen)
{
    worker *wk = ud;
    tp_eval_result r;
    const float *params = tp_session_params(wk->s);
    int rc = wk->w->vt->evaluate(wk->w, params, TP_SPLIT_VALIDATION, &r, err, errlen);
    if (rc < 0)
        return rc;
    m->validation_metric = r.metric;
    m->validation_loss = r.loss;
    rc = wk->w->vt->evaluate(wk->w, params, TP_SPLIT_TEST, &r, err, errlen);
    if (rc < 0)
        return rc;
    m->test_metric = r.metric;
    m->test_loss = r.loss;
    return TP_OK;
}

static int hook_on_eval(void *ud, const tp_eval_row *row, char *err, size_t errlen)
{
    worker *wk = ud;
    if (wk->a->event_fd < 0) {
        fprintf(stderr, "eval %u: step %llu, score %.3f s, validation %s %.4f, test %.4f\n",
                row->eval_index, (unsigned long long)row->global_step, row->score, wk->w->metric,
                row->validation_metric, row->test_metric);
        return TP_OK;
    }
    tp_event_eval e = {
        .global_step = row->global_step,
        .eval_index = row->eval_index,
        .validation_reached = row->validation_reached,
        .test_reached = row->test_reached,
        .score = row->score,
        .submission_time_wall = row->submission_time_wall,
        .submission_time_cpu = row->submission_time_cpu,
        .total_duration = row->total_duration,
        .validation_metric = row->validation_metric,
        .validation_loss = row->validation_loss,
        .test_metric = row->test_metric,
        .test_loss = row->test_loss,
    };
    if (tp_event_write(wk->a->event_fd, TP_EVENT_EVAL, &e, sizeof e) < 0) {
        snprintf(err, errlen, "cannot write to the host's event pipe (host gone?)");
        return TP_EIO;
    }
    tp_sandbox_note_progress(row->global_step, row->eval_index + 1);
    return TP_OK;
}

static void hook_on_step(void *ud, const tp_train_state *ts)
{
    worker *wk = ud;
    tp_sandbox_note_progress(ts->step, ts->num_evals);
    if (wk->a->event_fd < 0)
        return;
    double now = tp_clock_wall_now();
    if (now - wk->last_progress < PROGRESS_PERIOD)
        return;
    wk->last_progress = now;
    tp_event_progress p = {ts->step, ts->submission_time, now - wk->loop_start.wall};
    tp_event_write(wk->a->event_fd, TP_EVENT_PROGRESS, &p, sizeof p);
}

/* -- diagnostics ---------------------------------------------------------------------------- */

static int precondition(void *ud, const float *v, float *out, char *err, size_t errlen)
{
    worker *wk = ud;
    tp_error e;
    TP_STRUCT_INIT(&e, tp_error);
    int rc = tp_plugin_call_precondition(wk->opt.p, wk->opt.state, host(), wk->opt.ctx, v, out, &e);
    if (rc != TP_OK)
        return plugin_error(wk->opt.p, "precondition", rc, &e, err, errlen);
    return TP_OK;
}

static double opt_hparam(worker *wk, const char *name, double fallback)
{
    double v;
    return host()->hparam(wk->opt.ctx, name, &v) == TP_OK ? v : fallback;
}

/* Untimed: (preconditioned) sharpness at the current parameters, with the threshold of the
 * last update's learning rate. The preconditioner exists once an update has been taken. */
static int hook_diagnose(void *ud, const tp_train_state *ts, char *err, size_t errlen)
{
    worker *wk = ud;
    const int pre = ts->step > 0 && tp_plugin_has(wk->opt.p, TP_PLUGIN_FN_PRECONDITION);
    tp_sharpness_value v;
    int rc = tp_sharpness_measure(wk->sharp, tp_session_params(wk->s), pre ? precondition : NULL,
                                  wk, &v, err, errlen);
    if (rc < 0)
        return rc;
    const double lr =
        ts->step > 0 ? opt_hparam(wk, "learning_rate", NAN) * wk->last_lr_factor : NAN;
    int kind = 0;
    double thr =
        tp_sharpness_threshold(wk->opt.p->id, lr, 1.0 - opt_hparam(wk, "one_minus_beta1", 1.0),
                               opt_hparam(wk, "weight_decay", 0.0), &kind);
    tp_event_sharpness m = {
        .step = ts->step,
        .iters = v.iters,
        .threshold_kind = isnan(thr) ? 0
                          : kind     ? 2
                                     : 1,
        .grads = v.grads,
        .loss = v.loss,
        .sharpness = v.sharpness,
        .precond_sharpness = v.precond_sharpness,
        .threshold = thr,
        .lr = lr,
        .seconds = v.seconds,
    };
    if (wk->a->event_fd < 0) {
        fprintf(stderr,
                "sharpness at step %llu: loss %.5g, sharpness %.5g, preconditioned %.5g, "
                "threshold %.5g (%u products, %.2f s)\n",
                (unsigned long long)ts->step, v.loss, v.sharpness, v.precond_sharpness, thr,
                v.iters, v.seconds);
        return TP_OK;
    }
    if (tp_event_write(wk->a->event_fd, TP_EVENT_SHARPNESS, &m, sizeof m) < 0) {
        snprintf(err, errlen, "cannot write to the host's event pipe (host gone?)");
        return TP_EIO;
    }
    return TP_OK;
}

/* -- setup and teardown -------------------------------------------------------------------- */

static int find_plugin(worker *wk, slot *sl, const char *id, tp_plugin_kind kind, char *err,
                       size_t errlen)
{
    sl->p = tp_plugin_set_find(wk->plugins, id, kind);
    if (sl->p)
        return TP_OK;
    const tp_plugin *other = tp_plugin_set_find(wk->plugins, id, 0);
    if (other)
        snprintf(err, errlen, "plugin '%s' (%s) is a %s, not a %s", id, other->path,
                 tp_plugin_kind_name(other->kind), tp_plugin_kind_name(kind));
    else
        snprintf(err, errlen, "no %s plugin with id '%s' in %s (see `trainperf list`)",
                 tp_plugin_kind_name(kind), id, wk->a->spec.plugin_dir);
    return TP_ENOENT;
}

static void on_refused(const char *path, const char *msg, void *ud)
{
    (void)ud;
    fprintf(stderr, "warning: skipped plugin %s: %s\n", path, msg);
}

static int init_slot(worker *wk, slot *sl, char *err, size_t errlen)
{
    if (!sl->p || !tp_plugin_has(sl->p, TP_PLUGIN_FN_INIT))
        return TP_OK;
    tp_error e;
    TP_STRUCT_INIT(&e, tp_error);
    int rc = tp_plugin_call_init(sl->p, host(), sl->ctx, &sl->state, &e);
    if (rc != TP_OK)
        return plugin_error(sl->p, "init", rc, &e, err, errlen);
    sl->live = 1;
    return TP_OK;
}

static void destroy_slot(slot *sl)
{
    if (!sl->p || !sl->ctx)
        return;
    if (sl->live)
        tp_plugin_call_destroy(sl->p, sl->state, host(), sl->ctx);
    sl->live = 0;
    uint64_t leaked = tp_session_ctx_release(sl->ctx);
    if (leaked)
        fprintf(stderr, "warning: plugin %s left %llu host allocation(s) unfreed\n", sl->p->id,
                (unsigned long long)leaked);
}

/* The event fd carries events only: not stdin or the log, not the log's file, not inherited
 * by anything the process could start. */
static int check_event_fd(int fd, char *err, size_t errlen)
{
    if (fd < 0)
        return TP_OK;
    if (fd <= 2) {
        snprintf(err, errlen,
                 "--event-fd %d: fds 0-2 are stdin and the trial log; events need their own pipe",
                 fd);
        return TP_EINVAL;
    }
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
        snprintf(err, errlen, "--event-fd %d: not an open file descriptor", fd);
        return TP_EINVAL;
    }
    struct stat ev, out;
    for (int i = 1; i <= 2; i++) {
        if (fstat(fd, &ev) == 0 && fstat(i, &out) == 0 && ev.st_dev == out.st_dev &&
            ev.st_ino == out.st_ino) {
            snprintf(err, errlen,
                     "--event-fd %d is the same file as %s: the submission's output would "
                     "corrupt the event stream",
                     fd, i == 1 ? "stdout" : "stderr");
            return TP_EINVAL;
        }
    }
    return TP_OK;
}

/* Steps 1-3: config, limits, data, plugins. Everything that opens a file. */
static int load(worker *wk, char *err, size_t errlen)
{
    const tp_worker_args *a = wk->a;
    int rc = tp_config_load_workload(a->spec.workload_config, &wk->cfg, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = tp_config_select_variant(&wk->cfg, a->spec.variant, err, errlen)) < 0)
        return rc;
    for (int i = 0; i < a->spec.num_overrides; i++)
        if ((rc = tp_config_apply_override(&wk->cfg, a->spec.overrides[i], err, errlen)) < 0)
            return rc;

    if (!a->no_sandbox) {
        tp_sandbox_limits l;
        tp_sandbox_limits_default(&l, wk->cfg.budget, a->spec.threads);
        if (a->memory_limit >= 0)
            l.address_space = (uint64_t)a->memory_limit;
        l.parent = a->parent;
        if ((rc = tp_sandbox_limit(&l, a->event_fd, err, errlen)) < 0)
            return rc;
    }

    const tp_workload_desc *d = tp_workload_find(wk->cfg.name);
    if (!d) {
        snprintf(err, errlen, "%s: workload.name: no workload family '%s' is compiled in",
                 wk->cfg.file, wk->cfg.name);
        return TP_ECONFIG;
    }
    tp_wl_params wp = {wk->cfg.file, wk->cfg.options, wk->cfg.num_options};
    if ((rc = d->create(&wp, &wk->w, err, errlen)) < 0)
        return rc;

    if ((rc = tp_plugin_set_init(&wk->plugins)) < 0) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    rc = tp_plugin_set_add_dir(wk->plugins, a->spec.plugin_dir, on_refused, NULL, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = find_plugin(wk, &wk->opt, a->spec.optimizer, TP_PLUGIN_OPTIMIZER, err, errlen)) < 0)
        return rc;
    if (a->spec.schedule &&
        (rc = find_plugin(wk, &wk->sched, a->spec.schedule, TP_PLUGIN_SCHEDULE, err, errlen)) < 0)
        return rc;
    if ((rc = find_plugin(wk, &wk->sel, a->spec.selection ? a->spec.selection : DEFAULT_SELECTION,
                          TP_PLUGIN_DATA_SELECTION, err, errlen)) < 0)
        return rc;
    return TP_OK;
}

/* Step 4. */
static int confine(worker *wk, char *err, size_t errlen)
{
    if (wk->a->no_sandbox) {
        fprintf(stderr, "worker: warning: --no-sandbox: no limits and no seccomp filter\n");
        return TP_OK;
    }
    return tp_sandbox_enter(wk->a->event_fd, err, errlen);
}

/* Step 5 up to the loop: batch size, session, contexts, init. No file is opened from here. */
static int prepare(worker *wk, char *err, size_t errlen)
{
    const tp_worker_args *a = wk->a;
    int rc;
    /* Batch size: the submission's answer for the base workload, else the workload's hint. */
    wk->batch_size = wk->cfg.batch_size_hint;
    if (tp_plugin_has(wk->opt.p, TP_PLUGIN_FN_GET_BATCH_SIZE)) {
        tp_error e;
        TP_STRUCT_INIT(&e, tp_error);
        uint32_t bs = 0;
        rc = tp_plugin_call_get_batch_size(wk->opt.p, wk->cfg.name, wk->cfg.batch_size_hint, &bs,
                                           &e);
        if (rc != TP_OK)
            return plugin_error(wk->opt.p, "get_batch_size", rc, &e, err, errlen);
        if (bs == 0 || bs > (1u << 20)) {
            snprintf(err, errlen, "%s: get_batch_size returned %u", wk->opt.p->id, bs);
            return TP_EPLUGIN;
        }
        wk->batch_size = bs;
    }
    wk->batch_idx = calloc(wk->batch_size, sizeof *wk->batch_idx);
    wk->batch_weights = calloc(wk->batch_size, sizeof *wk->batch_weights);
    if (!wk->batch_idx || !wk->batch_weights) {
        snprintf(err, errlen, "out of memory");
        return TP_ENOMEM;
    }

    tp_session_config sc = {
        .workload = wk->w,
        .seed = a->spec.seed,
        .batch_size = wk->batch_size,
        .step_hint = wk->cfg.step_hint,
        .budget = wk->cfg.budget,
        .log = stderr,
    };
    if ((rc = tp_session_create(&sc, &wk->s, err, errlen)) < 0)
        return rc;

    tp_kv_list kv = {0};
    if ((rc = tp_kv_parse(a->spec.hparams ? a->spec.hparams : "", &kv, err, errlen)) < 0) {
        char tmp[TP_ERROR_MESSAGE_MAX];
        snprintf(tmp, sizeof tmp, "--hparams: %s", err);
        snprintf(err, errlen, "%s", tmp);
        return rc;
    }
    rc = check_hparams_declared(wk, &kv, err, errlen);
    slot *slots[3] = {&wk->sel, &wk->sched, &wk->opt};
    for (int i = 0; i < 3 && rc == TP_OK; i++)
        if (slots[i]->p)
            rc = make_ctx(wk, slots[i], &kv, err, errlen);
    tp_kv_free(&kv);
    if (rc < 0)
        return rc;
    for (int i = 0; i < 3; i++)
        if ((rc = init_slot(wk, slots[i], err, errlen)) < 0)
            return rc;
    if (a->spec.sharpness_every) {
        tp_sharpness_opts so = {.examples = a->spec.sharpness_examples, .raw = 1};
        if ((rc = tp_sharpness_init(&wk->sharp, wk->w, &so, err, errlen)) < 0)
            return rc;
    }
    return TP_OK;
}

static void teardown(worker *wk)
{
    destroy_slot(&wk->opt);
    destroy_slot(&wk->sched);
    destroy_slot(&wk->sel);
    tp_sharpness_free(wk->sharp);
    tp_session_free(wk->s);
    free(wk->batch_idx);
    free(wk->batch_weights);
    /* Plugins are unloaded only after their state is destroyed. */
    tp_plugin_set_free(wk->plugins);
    if (wk->w)
        wk->w->vt->free(wk->w);
    tp_config_free_workload(&wk->cfg);
}

int tp_worker_run(const tp_worker_args *a)
{
    char err[TP_ERROR_MESSAGE_MAX] = "";
    worker wk;
    memset(&wk, 0, sizeof wk);
    wk.a = a;
    openblas_set_num_threads(a->spec.threads > 0 ? a->spec.threads : 1);
    char blas[256];
    int weak = tp_blas_check(blas, sizeof blas);
    fprintf(stderr, "worker: %s%s, %d thread(s)\n", weak ? "warning: " : "", blas,
            a->spec.threads > 0 ? a->spec.threads : 1);

    int rc = check_event_fd(a->event_fd, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "trainperf-worker: %s\n", err);
        return rc;
    }
    double t_setup = tp_clock_wall_now();
    if ((rc = load(&wk, err, sizeof err)) < 0 || (rc = confine(&wk, err, sizeof err)) < 0 ||
        (rc = prepare(&wk, err, sizeof err)) < 0) {
        fprintf(stderr, "trial setup failed: %s\n", err);
        teardown(&wk);
        send_end_failure(a, rc, err);
        return rc;
    }
    tp_train_state *ts = tp_session_train_state(wk.s);
    if (a->event_fd >= 0) {
        tp_event_hello h = {
            .num_params = tp_session_num_params(wk.s),
            .train_size = ts->train_size,
            .step_hint = ts->step_hint,
            .batch_size = wk.batch_size,
            .threads = (uint32_t)(a->spec.threads > 0 ? a->spec.threads : 1),
            .budget = wk.cfg.budget,
            .init_seconds = tp_clock_wall_now() - t_setup,
        };
        tp_event_write(a->event_fd, TP_EVENT_HELLO, &h, sizeof h);
    }

    tp_trial_params tp = {
        .eval_period = wk.cfg.eval_period,
        .budget = wk.cfg.budget,
        .timing = a->spec.clock,
        .maximize = wk.w->maximize,
        .validation_target = wk.cfg.validation_target,
        .test_target = wk.cfg.test_target,
        .max_steps = a->spec.max_steps,
        .diagnose_every = wk.sharp ? a->spec.sharpness_every : 0,
    };
    tp_trial_hooks hooks = {
        .ud = &wk,
        .step = hook_step,
        .prepare_for_eval =
            tp_plugin_has(wk.opt.p, TP_PLUGIN_FN_PREPARE_FOR_EVAL) ? hook_prepare : NULL,
        .eval = hook_eval,
        .on_eval = hook_on_eval,
        .on_step = hook_on_step,
        .diagnose = wk.sharp ? hook_diagnose : NULL,
    };
    tp_clock_system.read(NULL, &wk.loop_start);
    wk.last_progress = wk.loop_start.wall;
    tp_trial_outcome out;
    rc = tp_trial_run(&tp, &tp_clock_system, &hooks, ts, &out);
    if (rc < 0) {
        snprintf(err, sizeof err, "internal error: bad trial parameters");
        teardown(&wk);
        send_end_failure(a, rc, err);
        return rc;
    }

    tp_event_end e;
    memset(&e, 0, sizeof e);
    e.status = out.status;
    e.reason = out.reason;
    e.steps = out.steps;
    e.num_evals = out.num_evals;
    e.submission_time_wall = out.submission_time_wall;
    e.submission_time_cpu = out.submission_time_cpu;
    e.time_to_target = out.time_to_target;
    e.best_validation_metric = out.best_validation_metric;
    e.wall_time = out.wall_time;
    snprintf(e.message, sizeof e.message, "%s", out.message);
    if (out.status == TP_TRIAL_FAILED)
        blame_memory(&e.reason, e.message, sizeof e.message);
    /* Plugin destroy and dlclose run before the END: a violation there fails the trial. */
    teardown(&wk);
    if (a->event_fd >= 0)
        send_end(a, &e);
    else
        fprintf(stderr, "%s after %llu steps, %.3f s submission time%s%s\n",
                tp_trial_status_name(out.status), (unsigned long long)out.steps,
                tp_time_pick(&(tp_time){out.submission_time_wall, out.submission_time_cpu},
                             a->spec.clock),
                out.message[0] ? ": " : "", e.message);
    return 0;
}
