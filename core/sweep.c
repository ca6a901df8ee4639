/*
 * sweep.c - plan, resume and run a tuning-ruleset sweep (see sweep.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "core/sweep.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/nn/rng.h"
#include "core/nn/workload.h"
#include "core/results.h"
#include "core/searchspace.h"

#define DISPLAY_MS 500

/* One workload column of the sweep: a base workload or one of its variants. */
typedef struct column {
    char *workload; /* base name */
    char *variant;  /* NULL for the base */
    char *config_path;
    double budget; /* scaled */
    double eval_period;
    const char *metric;
    int maximize;
    double validation_target, test_target;
} column;

/* One planned trial. The spec's strings point into the plan. */
typedef struct planned {
    char *key;
    size_t sub, col;
    int study, trial;
    char *hparams; /* owned */
    char label[160];
    char log_path[600];
    tp_run_request req;
    int64_t id;
    enum { P_TODO, P_RUNNING, P_DONE } state;
    int skipped;
    tp_trial_status status;
} planned;

/* Per (submission, column) counts for the display. */
typedef struct group {
    size_t total, done, running, reached, failed;
} group;

typedef struct sweep {
    const tp_sweep_config *c;
    const tp_sweep_env *env;
    tp_sweep_stats *stats;
    char results[512];
    char logdir[600];
    char budget_override[16][64]; /* "budget=<scaled>" per column (at most 16 columns shown) */
    column *cols;
    size_t num_cols;
    char ***points; /* [submission][point] "k=v,..." */
    size_t *num_points;
    planned *plan;
    size_t num_plan, next, running, finished;
    group *groups; /* [sub * num_cols + col] */
    tp_results *db;
    uv_loop_t loop;
    uv_timer_t display;
    int display_lines;
    double start;
    int failed_rc;
    char failure[640];
} sweep;

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* strdup that passes NULL through. */
static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char *xprintf(const char *fmt, ...) TP_PRINTF(1, 2);
static char *xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (p) {
        va_start(ap, fmt);
        vsnprintf(p, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return p;
}

/* -- planning ----------------------------------------------------------------------------- */

/* A column as its trials will see it: the file, the variant, then the sweep's overrides; the
 * targets recorded with every trial (and used by scoring) are those. */
static int add_column(sweep *S, const char *path, const char *variant, char *err, size_t errlen)
{
    const tp_sweep_config *c = S->c;
    tp_workload_config cfg;
    int rc = tp_config_load_workload(path, &cfg, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = tp_config_select_variant(&cfg, variant, err, errlen)) < 0)
        goto out;
    for (size_t i = 0; i < c->num_overrides && rc == TP_OK; i++) {
        char msg[512];
        if ((rc = tp_config_apply_override(&cfg, c->overrides[i], msg, sizeof msg)) < 0)
            tp__errf(err, errlen, "%s: set: %s", c->file, msg);
    }
    if (rc < 0)
        goto out;
    const tp_workload_desc *d = tp_workload_find(cfg.name);
    if (!d) {
        tp__errf(err, errlen, "%s: workload.name: no workload family '%s' is compiled in", path,
                 cfg.name);
        rc = TP_ECONFIG;
        goto out;
    }
    tp_wl_params wp = {cfg.file, cfg.options, cfg.num_options};
    if ((rc = tp_workload_prepare(d, &wp, err, errlen)) < 0)
        goto out;
    column *grown = realloc(S->cols, (S->num_cols + 1) * sizeof *grown);
    if (!grown) {
        rc = TP_ENOMEM;
        goto out;
    }
    S->cols = grown;
    column *col = &S->cols[S->num_cols++];
    memset(col, 0, sizeof *col);
    col->workload = xstrdup(cfg.name);
    col->variant = xstrdup(variant);
    col->config_path = xstrdup(path);
    col->budget = cfg.budget * c->budget_scale * (c->ruleset == TP_RULESET_SELF ? 1.5 : 1.0);
    col->eval_period = cfg.eval_period;
    col->metric = d->metric;
    col->maximize = d->maximize;
    col->validation_target = cfg.validation_target;
    col->test_target = cfg.test_target;
    if (!col->workload || !col->config_path || (variant && !col->variant))
        rc = TP_ENOMEM;
out:
    if (rc == TP_ENOMEM)
        tp__errf(err, errlen, "out of memory");
    tp_config_free_workload(&cfg);
    return rc;
}

/* The workloads and the variants the held-out policy picks, each a column. */
static int plan_columns(sweep *S, char *err, size_t errlen)
{
    const tp_sweep_config *c = S->c;
    for (size_t w = 0; w < c->num_workloads; w++) {
        char path[600];
        int rc = tp_config_find_workload(S->env->workloads_dir, c->workloads[w], path, sizeof path,
                                         err, errlen);
        if (rc < 0 || (rc = add_column(S, path, NULL, err, errlen)) < 0)
            return rc;
        tp_workload_config cfg;
        if ((rc = tp_config_load_workload(path, &cfg, err, errlen)) < 0)
            return rc;
        if (cfg.num_variants > 0 && c->heldout == TP_HELDOUT_ALL) {
            for (size_t v = 0; v < cfg.num_variants && rc == TP_OK; v++)
                rc = add_column(S, path, cfg.variants[v].name, err, errlen);
        } else if (cfg.num_variants > 0 && c->heldout == TP_HELDOUT_SAMPLED) {
            /* One variant per base, drawn from the seed and the workload's name, so the draw
             * for one workload does not depend on which others are in the sweep. */
            tp_rng r;
            tp_rng_seed2(&r, c->heldout_seed, fnv1a(cfg.name));
            rc = add_column(S, path, cfg.variants[tp_rng_below(&r, cfg.num_variants)].name, err,
                            errlen);
        }
        tp_config_free_workload(&cfg);
        if (rc < 0)
            return rc;
    }
    return TP_OK;
}

/* Each submission's hyperparameter points, its fixed hparams appended. */
static int plan_points(sweep *S, char *err, size_t errlen)
{
    const tp_sweep_config *c = S->c;
    S->points = calloc(c->num_submissions, sizeof *S->points);
    S->num_points = calloc(c->num_submissions, sizeof *S->num_points);
    if (!S->points || !S->num_points)
        return TP_ENOMEM;
    size_t n = c->ruleset == TP_RULESET_SELF               ? 1
               : c->study_points == TP_STUDY_POINTS_SHARED ? (size_t)c->trials
                                                           : (size_t)c->studies * (size_t)c->trials;
    for (size_t s = 0; s < c->num_submissions; s++) {
        const tp_sweep_submission *sub = &c->submissions[s];
        char **pts = NULL;
        if (sub->search_space) {
            tp_search_space ss;
            int rc = tp_search_space_load(sub->search_space, &ss, err, errlen);
            if (rc < 0)
                return rc;
            rc = tp_search_space_points(&ss, n, &pts, err, errlen);
            tp_search_space_free(&ss);
            if (rc < 0)
                return rc;
        } else {
            pts = calloc(n, sizeof *pts);
            for (size_t i = 0; pts && i < n; i++)
                pts[i] = strdup("");
        }
        if (!pts)
            return TP_ENOMEM;
        S->points[s] = pts;
        S->num_points[s] = n;
        for (size_t i = 0; i < n; i++) {
            if (!pts[i])
                return TP_ENOMEM;
            if (sub->hparams && *sub->hparams) {
                char *joined = xprintf("%s%s%s", pts[i], *pts[i] ? "," : "", sub->hparams);
                if (!joined)
                    return TP_ENOMEM;
                free(pts[i]);
                pts[i] = joined;
            }
            tp_kv_list kv = {0};
            char why[400];
            int rc = tp_kv_parse(pts[i], &kv, why, sizeof why);
            tp_kv_free(&kv);
            if (rc < 0) {
                tp__errf(err, errlen,
                         "%s:%d: submission %s: its fixed hparams and search space point %zu do "
                         "not combine: %s",
                         c->file, sub->line, sub->name, i + 1, why);
                return TP_ECONFIG;
            }
        }
    }
    return TP_OK;
}

static int plan_trials(sweep *S)
{
    const tp_sweep_config *c = S->c;
    size_t total = (size_t)c->studies * (size_t)c->trials * S->num_cols * c->num_submissions;
    S->plan = calloc(total ? total : 1, sizeof *S->plan);
    S->groups = calloc(c->num_submissions * S->num_cols, sizeof *S->groups);
    if (!S->plan || !S->groups)
        return TP_ENOMEM;
    /* Study-major, then trial, workload, submission: an interrupted sweep has comparable
     * partial results for every submission. */
    for (int k = 0; k < c->studies; k++)
        for (int i = 0; i < c->trials; i++)
            for (size_t w = 0; w < S->num_cols; w++)
                for (size_t s = 0; s < c->num_submissions; s++) {
                    const tp_sweep_submission *sub = &c->submissions[s];
                    const column *col = &S->cols[w];
                    planned *p = &S->plan[S->num_plan++];
                    p->sub = s;
                    p->col = w;
                    p->study = k;
                    p->trial = i;
                    size_t point = c->study_points == TP_STUDY_POINTS_DISTINCT
                                       ? (size_t)k * (size_t)c->trials + (size_t)i
                                       : (size_t)i;
                    p->hparams = xstrdup(S->points[s][point % S->num_points[s]]);
                    p->key =
                        xprintf("%s/%s%s%s/study_%d/trial_%d", sub->name, col->workload,
                                col->variant ? ":" : "", col->variant ? col->variant : "", k, i);
                    if (!p->hparams || !p->key)
                        return TP_ENOMEM;
                    snprintf(p->label, sizeof p->label, "%s %s%s%s study %d trial %d", sub->name,
                             col->workload, col->variant ? ":" : "",
                             col->variant ? col->variant : "", k, i);

                    tp_run_request *q = &p->req;
                    q->worker_path = S->env->worker_path;
                    tp_trial_spec *sp = &q->spec;
                    tp_spec_init(sp);
                    sp->workload_config = col->config_path;
                    sp->variant = col->variant;
                    for (size_t o = 0; o < c->num_overrides && sp->num_overrides < 30; o++)
                        sp->overrides[sp->num_overrides++] = c->overrides[o];
                    sp->overrides[sp->num_overrides++] = S->budget_override[w % 16];
                    sp->plugin_dir = S->env->plugin_dir;
                    sp->optimizer = sub->optimizer;
                    sp->schedule = sub->schedule;
                    sp->selection = sub->selection;
                    sp->hparams = *p->hparams ? p->hparams : NULL;
                    sp->seed = tp_mix64(c->seed ^ tp_mix64((uint64_t)k * 1000003u + (uint64_t)i));
                    sp->clock = (tp_clock_kind)c->clock;
                    sp->sharpness_every = c->sharpness_every;
                    sp->sharpness_examples = c->sharpness_examples;
                    q->wall_limit = S->env->wall_limit; /* 0: the runner's default */
                    /* A measurement sends no event while it runs (see cli.c's run). */
                    q->silence_limit = S->env->silence_limit > 0 ? S->env->silence_limit
                                       : c->sharpness_every      ? 600
                                                                 : 0;
                    q->eval_period = col->eval_period;
                    q->memory_limit = S->env->memory_limit;
                    q->progress = TP_PROGRESS_NONE;
                    q->label = p->label;
                    q->metric = col->metric;
                    q->budget = col->budget;
                    q->validation_target = col->validation_target;
                    S->groups[s * S->num_cols + w].total++;
                }
    return TP_OK;
}

/* -- display ----------------------------------------------------------------------------- */

static void fmt_duration(double s, char *out, size_t len)
{
    if (!isfinite(s) || s < 0)
        snprintf(out, len, "-");
    else if (s < 60)
        snprintf(out, len, "%.0fs", s);
    else if (s < 3600)
        snprintf(out, len, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(out, len, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static void draw(sweep *S, int final)
{
    if (S->env->progress != TP_PROGRESS_LINE)
        return;
    const tp_sweep_config *c = S->c;
    if (S->display_lines > 0)
        printf("\033[%dA", S->display_lines);
    int lines = 0;
    double elapsed = tp_clock_wall_now() - S->start;
    size_t done = 0, total = 0;
    printf("\r\033[K%-20s %-22s %6s %8s %8s %8s %8s\n", "submission", "workload", "done", "running",
           "left", "reached", "failed");
    lines++;
    for (size_t s = 0; s < c->num_submissions; s++)
        for (size_t w = 0; w < S->num_cols; w++) {
            const group *g = &S->groups[s * S->num_cols + w];
            char wl[64];
            snprintf(wl, sizeof wl, "%s%s%s", S->cols[w].workload, S->cols[w].variant ? ":" : "",
                     S->cols[w].variant ? S->cols[w].variant : "");
            printf("\r\033[K%-20s %-22s %6zu %8zu %8zu %8zu %8zu\n", c->submissions[s].name, wl,
                   g->done, g->running, g->total - g->done - g->running, g->reached, g->failed);
            lines++;
            done += g->done;
            total += g->total;
        }
    char el[32], eta[32];
    fmt_duration(elapsed, el, sizeof el);
    size_t ran = S->stats->ran;
    double per = ran ? elapsed / (double)ran : NAN;
    fmt_duration(per * (double)(total - done) / (double)(c->jobs), eta, sizeof eta);
    printf("\r\033[K%zu/%zu trials done, %zu running, elapsed %s, estimated left %s%s\n", done,
           total, S->running, el, final ? "0s" : eta, final ? " - finished" : "");
    lines++;
    fflush(stdout);
    S->display_lines = lines;
}

static void on_display(uv_timer_t *t)
{
    draw(t->data, 0);
}

/* -- plan only ---------------------------------------------------------------------------- */

/* The columns with their budgets and trial counts, and the most submission time the trials
 * still to run can take: the trial loop checks the budget only at evals, so a trial ends at the
 * latest at its first eval past the budget. Trials that reach their targets end sooner; the
 * evals themselves (not submission time) and the worker's start come on top. */
static void print_plan(sweep *S)
{
    const tp_sweep_config *c = S->c;
    if (S->env->progress == TP_PROGRESS_NONE)
        return;
    printf("sweep %s: %s ruleset, %d stud%s x %d trial%s, %zu submission%s, %s clock, %d "
           "jobs\n%-34s %9s %7s %7s %7s %10s\n",
           c->file, c->ruleset == TP_RULESET_SELF ? "self-tuning" : "external tuning", c->studies,
           c->studies == 1 ? "y" : "ies", c->trials, c->trials == 1 ? "" : "s", c->num_submissions,
           c->num_submissions == 1 ? "" : "s", tp_clock_kind_name((tp_clock_kind)c->clock), c->jobs,
           "workload", "budget", "eval", "trials", "to run", "at most");
    double bound = 0;
    size_t todo = 0;
    for (size_t w = 0; w < S->num_cols; w++) {
        const column *col = &S->cols[w];
        size_t n = 0, left = 0;
        for (size_t i = 0; i < S->num_plan; i++)
            if (S->plan[i].col == w) {
                n++;
                left += S->plan[i].state != P_DONE;
            }
        double b = (double)left * (col->budget + col->eval_period);
        char name[80], t[32];
        snprintf(name, sizeof name, "%s%s%s", col->workload, col->variant ? ":" : "",
                 col->variant ? col->variant : "");
        fmt_duration(b, t, sizeof t);
        printf("%-34s %8.1fs %6.1fs %7zu %7zu %10s\n", name, col->budget, col->eval_period, n, left,
               t);
        bound += b;
        todo += left;
    }
    char t[32], tj[32];
    fmt_duration(bound, t, sizeof t);
    fmt_duration(bound / (c->jobs > 0 ? c->jobs : 1), tj, sizeof tj);
    printf("%zu trials planned, %zu already done, %zu to run (%zu of them interrupted): at "
           "most %s of submission time on the %s clock, %s with %d jobs (a trial trains at "
           "most its budget + one eval period, and ends sooner when it reaches the targets; "
           "its evals and start come on top)\n",
           S->num_plan, S->stats->skipped, todo, S->stats->rerun, t,
           tp_clock_kind_name((tp_clock_kind)c->clock), tj, c->jobs);
}

/* -- running ------------------------------------------------------------------------------ */

static void start_more(sweep *S);

typedef struct job {
    sweep *S;
    planned *p;
} job;

static void on_trial_done(const tp_run_result *res, int rc, const char *err, void *ud)
{
    job *j = ud;
    sweep *S = j->S;
    planned *p = j->p;
    free(j);
    group *g = &S->groups[p->sub * S->num_cols + p->col];
    p->state = P_DONE;
    p->status = res->status;
    S->running--;
    g->running--;
    g->done++;
    S->stats->ran++;
    if (res->status == TP_TRIAL_REACHED)
        S->stats->reached++, g->reached++;
    if (res->status == TP_TRIAL_FAILED)
        S->stats->failed++, g->failed++;
    if (rc < 0 && !S->failed_rc) {
        S->failed_rc = rc;
        snprintf(S->failure, sizeof S->failure, "%s", err);
    }
    if (S->env->progress == TP_PROGRESS_PLAIN) {
        char what[700];
        if (res->status == TP_TRIAL_FAILED)
            snprintf(what, sizeof what, "failed (%s): %s", tp__reason_name(res->reason),
                     res->message);
        else if (isfinite(res->time_to_target))
            snprintf(what, sizeof what, "%s, target at %.2f s, %llu steps",
                     tp_trial_status_name(res->status), res->time_to_target,
                     (unsigned long long)res->steps);
        else
            snprintf(what, sizeof what, "%s, target not reached, %llu steps",
                     tp_trial_status_name(res->status), (unsigned long long)res->steps);
        printf("[%zu/%zu] %s: %s\n", S->finished + 1, S->num_plan - S->stats->skipped, p->label,
               what);
        fflush(stdout);
    }
    S->finished++;
    start_more(S);
    if (S->running == 0 && S->next == S->num_plan) {
        draw(S, 1);
        uv_close((uv_handle_t *)&S->display, NULL);
    }
}

static void start_more(sweep *S)
{
    while (!S->failed_rc && S->running < (size_t)S->c->jobs && S->next < S->num_plan) {
        planned *p = &S->plan[S->next++];
        if (p->state != P_TODO)
            continue;
        const column *col = &S->cols[p->col];
        const tp_sweep_submission *sub = &S->c->submissions[p->sub];
        tp_trial_meta meta = {
            .workload = col->workload,
            .variant = col->variant ? col->variant : "",
            .optimizer = sub->optimizer,
            .schedule = sub->schedule ? sub->schedule : "constant",
            .selection = sub->selection ? sub->selection : "next_batch",
            .hparams_json = NULL,
            .seed = p->req.spec.seed,
            .budget = col->budget,
            .clock = tp_clock_kind_name((tp_clock_kind)S->c->clock),
            .metric = col->metric,
            .maximize = col->maximize,
            .validation_target = col->validation_target,
            .test_target = col->test_target,
            .submission = sub->name,
            .ruleset = tp_ruleset_name(S->c->ruleset),
            .study = p->study,
            .trial_index = p->trial,
            .plan_key = p->key,
        };
        /* The hyperparameters as JSON (the point was checked when it was planned). */
        char json[4096];
        tp_kv_list kv = {0};
        char why[256];
        tp_kv_parse(p->hparams, &kv, why, sizeof why);
        tp_kv_to_json(&kv, json, sizeof json);
        tp_kv_free(&kv);
        meta.hparams_json = json;

        char err[640];
        int rc = tp_results_begin_trial(S->db, &meta, &p->id, err, sizeof err);
        if (rc == TP_OK) {
            snprintf(p->log_path, sizeof p->log_path, "%s/trial_%lld.log", S->logdir,
                     (long long)p->id);
            p->req.log_path = p->log_path;
            job *j = malloc(sizeof *j);
            if (!j) {
                rc = TP_ENOMEM;
                snprintf(err, sizeof err, "out of memory");
            } else {
                j->S = S;
                j->p = p;
                rc = tp_runner_start(&S->loop, &p->req, S->db, p->id, on_trial_done, j, err,
                                     sizeof err);
                if (rc < 0)
                    free(j);
            }
        }
        if (rc < 0) {
            S->failed_rc = rc;
            snprintf(S->failure, sizeof S->failure, "%s: %s", p->label, err);
            break;
        }
        p->state = P_RUNNING;
        S->running++;
        S->groups[p->sub * S->num_cols + p->col].running++;
        if (S->env->progress == TP_PROGRESS_PLAIN) {
            printf("start %s (trial %lld)\n", p->label, (long long)p->id);
            fflush(stdout);
        }
    }
    if (S->failed_rc && S->running == 0 && !uv_is_closing((uv_handle_t *)&S->display))
        uv_close((uv_handle_t *)&S->display, NULL);
}

/* Trials that ended are skipped; trials whose host died mid-run are deleted and run again
 * (only counted, when planning only). */
static int resume(sweep *S, char *err, size_t errlen)
{
    for (size_t i = 0; i < S->num_plan; i++) {
        planned *p = &S->plan[i];
        int64_t id;
        tp_trial_status st;
        int rc = tp_results_find_planned(S->db, p->key, &id, &st, err, errlen);
        if (rc < 0)
            return rc;
        if (id == 0)
            continue;
        if (st == TP_TRIAL_RUNNING) {
            if (!S->env->plan_only && (rc = tp_results_delete_trial(S->db, id, err, errlen)) < 0)
                return rc;
            S->stats->rerun++;
            continue;
        }
        p->state = P_DONE;
        p->skipped = 1;
        p->status = st;
        S->stats->skipped++;
        group *g = &S->groups[p->sub * S->num_cols + p->col];
        g->done++;
        g->reached += st == TP_TRIAL_REACHED;
        g->failed += st == TP_TRIAL_FAILED;
    }
    return TP_OK;
}

static void free_sweep(sweep *S)
{
    for (size_t i = 0; i < S->num_cols; i++) {
        free(S->cols[i].workload);
        free(S->cols[i].variant);
        free(S->cols[i].config_path);
    }
    free(S->cols);
    for (size_t s = 0; S->points && s < S->c->num_submissions; s++) {
        for (size_t i = 0; S->points[s] && i < S->num_points[s]; i++)
            free(S->points[s][i]);
        free(S->points[s]);
    }
    free(S->points);
    free(S->num_points);
    for (size_t i = 0; i < S->num_plan; i++) {
        free(S->plan[i].key);
        free(S->plan[i].hparams);
    }
    free(S->plan);
    free(S->groups);
    tp_results_close(S->db);
}

int tp_sweep_run(const tp_sweep_config *c, const tp_sweep_env *env, tp_sweep_stats *stats,
                 char *err, size_t errlen)
{
    sweep S;
    memset(&S, 0, sizeof S);
    memset(stats, 0, sizeof *stats);
    S.c = c;
    S.env = env;
    S.stats = stats;
    S.start = tp_clock_wall_now();
    snprintf(S.results, sizeof S.results, "%s",
             env->results_dir ? env->results_dir
             : c->results     ? c->results
                              : "results/sweep");
    snprintf(stats->results_dir, sizeof stats->results_dir, "%s", S.results);
    snprintf(S.logdir, sizeof S.logdir, "%s/logs", S.results);

    int rc = plan_columns(&S, err, errlen);
    if (rc == TP_OK && S.num_cols > 16) {
        tp__errf(err, errlen, "%s: a sweep covers at most 16 workload columns (got %zu)", c->file,
                 S.num_cols);
        rc = TP_ECONFIG;
    }
    for (size_t w = 0; rc == TP_OK && w < S.num_cols; w++)
        snprintf(S.budget_override[w], sizeof S.budget_override[w], "budget=%.17g",
                 S.cols[w].budget);
    if (rc == TP_OK)
        rc = plan_points(&S, err, errlen);
    if (rc == TP_OK && (rc = plan_trials(&S)) == TP_ENOMEM)
        tp__errf(err, errlen, "out of memory");
    if (env->plan_only) {
        /* Read an existing database; create nothing. */
        char db[600];
        snprintf(db, sizeof db, "%s/results.db", S.results);
        if (rc == TP_OK && access(db, F_OK) == 0 &&
            (rc = tp_results_open(S.results, &S.db, err, errlen)) == TP_OK)
            rc = resume(&S, err, errlen);
        stats->planned = S.num_plan;
        if (rc == TP_OK)
            print_plan(&S);
        free_sweep(&S);
        return rc;
    }
    if (rc == TP_OK)
        rc = tp__fs_mkdir_p(S.logdir, err, errlen);
    if (rc == TP_OK)
        rc = tp_results_open(S.results, &S.db, err, errlen);
    if (rc == TP_OK)
        rc = resume(&S, err, errlen);
    stats->planned = S.num_plan;
    if (rc < 0) {
        free_sweep(&S);
        return rc;
    }

    if (uv_loop_init(&S.loop) < 0) {
        tp__errf(err, errlen, "uv_loop_init failed");
        free_sweep(&S);
        return TP_ESYS;
    }
    uv_timer_init(&S.loop, &S.display);
    S.display.data = &S;
    if (env->progress == TP_PROGRESS_LINE)
        uv_timer_start(&S.display, on_display, 0, DISPLAY_MS);
    if (env->progress == TP_PROGRESS_PLAIN)
        printf("sweep %s: %zu trials planned, %zu already done, %zu interrupted to re-run\n",
               c->file, S.num_plan, stats->skipped, stats->rerun);
    start_more(&S);
    if (S.running == 0 && !uv_is_closing((uv_handle_t *)&S.display)) {
        draw(&S, 1);
        uv_close((uv_handle_t *)&S.display, NULL);
    }
    uv_run(&S.loop, UV_RUN_DEFAULT);
    uv_loop_close(&S.loop);
    stats->wall = tp_clock_wall_now() - S.start;
    rc = S.failed_rc;
    if (rc < 0)
        tp__errf(err, errlen, "%s", S.failure);
    free_sweep(&S);
    return rc;
}
