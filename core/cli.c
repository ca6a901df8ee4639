/*
 * cli.c - the `trainperf` command line (see `trainperf help`).
 *
 * The host never loads submission code: `check` and `list` run the loader inside a
 * trainperf-worker process, and `run` spawns a worker for the trial.
 *
 * Not here yet: sweep, score, report, sharpness (later issues).
 */
#define _POSIX_C_SOURCE 200809L
#include "core/cli.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <trainperf/trainperf.h>

#include "core/algoperf_io.h"
#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/results.h"
#include "core/report.h"
#include "core/runner.h"
#include "core/sandbox.h"
#include "core/score.h"
#include "core/spec.h"
#include "core/sharpness.h"
#include "core/sweep.h"

#define ERRLEN 1024

static const char *usage_text =
    "trainperf %s - time-to-result benchmark for neural-network training algorithms\n"
    "\n"
    "usage:\n"
    "  trainperf run --workload W --optimizer ID [options]   run one trial\n"
    "  trainperf sharpness --workload W --optimizer ID [run options] [--plot PREFIX]\n"
    "                                                         a trial with (preconditioned)\n"
    "                                                         sharpness measured against the\n"
    "                                                         optimizer's stability threshold\n"
    "  trainperf sweep SWEEP.cfg [--jobs N] [--results DIR]   a tuning-ruleset sweep\n"
    "  trainperf sweep SWEEP.cfg --plan                       its trials and their most time,\n"
    "                                                         without running them\n"
    "  trainperf score PATH [--targets F] [--plot PREFIX]     benchmark scores, profile plot\n"
    "  trainperf report RESULTS [-o report.html]              one self-contained HTML report\n"
    "  trainperf export RESULTS DIR [--targets F.json]        AlgoPerf's trial layout\n"
    "  trainperf check PLUGIN.so                              check a plugin, list its "
    "hyperparameters\n"
    "  trainperf list                                         workloads and plugins found\n"
    "  trainperf results [DIR]                                table of the trials in DIR\n"
    "  trainperf help | --version\n"
    "\n"
    "run options:\n"
    "  --workload NAME        a workload under the workloads directory (see list)\n"
    "  --workload-config F    a workload .cfg file instead of --workload\n"
    "  --variant NAME         a held-out variant of the workload (see list)\n"
    "  --optimizer ID         optimizer plugin id (required)\n"
    "  --schedule ID          learning-rate schedule plugin id (default: constant 1.0)\n"
    "  --selection ID         data selection plugin id (default: next_batch)\n"
    "  --hparams k=v,...      hyperparameters (default: each plugin's defaults)\n"
    "  --set key=value        override a workload setting (budget=30, "
    "targets.validation=0.8, data.train_limit=5000, ...)\n"
    "  --seed N               trial seed (default 0)\n"
    "  --clock wall|cpu|steps timing clock (default wall; steps: 1 ms a step, reproducible)\n"
    "  --max-steps N          stop after N steps (training complete)\n"
    "  --threads N            OpenBLAS threads in the worker (default 1)\n"
    "  --sharpness-every K    measure (preconditioned) sharpness every K steps, untimed\n"
    "                         (default 0 = never; `sharpness`: 10)\n"
    "  --sharpness-examples N ... over the first N training examples, full batch (default\n"
    "                         1000)\n"
    "  --plot PREFIX          (sharpness) write PREFIX.svg and PREFIX.png (default\n"
    "                         RESULTS/sharpness_trial_ID)\n"
    "  --wall-limit S         kill the worker after S wall seconds (default: the clock's\n"
    "                         budget + an eval allowance of 1 x budget + 120 s)\n"
    "  --silence-limit S      kill a worker that sends no event for S s (default\n"
    "                         max(60, 10 x eval period))\n"
    "  --memory-limit BYTES   the worker's address-space limit (e.g. 8G; default 16G)\n"
    "  --results DIR          results directory (default ./results)\n"
    "  --plugins DIR          plugin directory (default $TRAINPERF_PLUGINS or %s)\n"
    "  --workloads DIR        workload directory (default $TRAINPERF_WORKLOADS or %s)\n"
    "  --quiet                no progress output\n";

static int usage(FILE *f)
{
    fprintf(f, usage_text, TP_VERSION_STRING, TP_DEFAULT_PLUGIN_DIR, TP_DEFAULT_WORKLOAD_DIR);
    return f == stderr ? 2 : 0;
}

static const char *dir_default(const char *given, const char *env, const char *compiled)
{
    if (given)
        return given;
    const char *e = getenv(env);
    return e && *e ? e : compiled;
}

/* The worker lives next to this executable (or where $TRAINPERF_WORKER says). */
static int worker_path(char *out, size_t len)
{
    const char *e = getenv("TRAINPERF_WORKER");
    if (e && *e) {
        snprintf(out, len, "%s", e);
        return 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0)
        return -1;
    self[n] = '\0';
    snprintf(out, len, "%s/trainperf-worker", dirname(self));
    return access(out, X_OK) == 0 ? 0 : -1;
}

static void fmt_time(double t, char *out, size_t len)
{
    if (isinf(t))
        snprintf(out, len, "inf");
    else if (isnan(t))
        snprintf(out, len, "-");
    else
        snprintf(out, len, "%.2f", t);
}

/* ---------------------------------------------------------------------------------------- */
/* run */

/* After a `trainperf sharpness` trial: the series against the threshold, and its plot. */
typedef struct sh_series {
    tp_sharpness_row *r;
    size_t n, cap;
} sh_series;

static int sh_collect(const tp_sharpness_row *m, void *ud)
{
    sh_series *s = ud;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        tp_sharpness_row *r = realloc(s->r, cap * sizeof *r);
        if (!r)
            return TP_ENOMEM;
        s->r = r;
        s->cap = cap;
    }
    s->r[s->n++] = *m;
    return 0;
}

static int sharpness_report(tp_results *db, int64_t id, const char *plot, double step_seconds,
                            char *err, size_t errlen)
{
    sh_series s = {0};
    double *value = NULL, *thr = NULL, *sec = NULL;
    uint64_t *step = NULL;
    uint32_t *iters = NULL;
    int rc = tp_results_foreach_sharpness(db, id, sh_collect, &s, err, errlen);
    if (rc == TP_OK) {
        size_t n = s.n ? s.n : 1;
        value = malloc(n * sizeof *value);
        thr = malloc(n * sizeof *thr);
        sec = malloc(n * sizeof *sec);
        step = malloc(n * sizeof *step);
        iters = malloc(n * sizeof *iters);
        if (!value || !thr || !sec || !step || !iters)
            rc = TP_ENOMEM;
    }
    if (rc == TP_ENOMEM)
        snprintf(err, errlen, "out of memory reading the sharpness series");
    if (rc == TP_OK) {
        int kind = 0;
        for (size_t i = 0; i < s.n; i++) {
            const tp_sharpness_row *m = &s.r[i];
            kind = m->threshold_kind ? m->threshold_kind : kind;
            value[i] = m->threshold_kind == 2 ? m->precond_sharpness : m->sharpness;
            thr[i] = m->threshold;
            sec[i] = m->seconds;
            step[i] = m->step;
            iters[i] = m->iters;
        }
        tp_sharpness_summary sum;
        tp_sharpness_summarize(value, thr, step, sec, iters, s.n, &sum);
        const char *what = kind == 2 ? "preconditioned sharpness" : "sharpness";
        printf("  %zu sharpness measurements", s.n);
        if (sum.measurements == 0)
            printf(" (no stability threshold known for this optimizer)\n");
        else if (sum.first_reach < 0)
            printf("; %s never reached 0.95x its threshold\n", what);
        else
            printf("; %s reached 0.95x its threshold at step %llu, then median %.3fx "
                   "(range %.3f-%.3fx over %u measurements)\n",
                   what, (unsigned long long)sum.reach_step, sum.median_ratio, sum.min_ratio,
                   sum.max_ratio, sum.after);
        printf("  one measurement: median %.3f s, %.0f Lanczos products", sum.median_seconds,
               sum.median_iters);
        if (step_seconds > 0)
            printf(" (%.0f training steps' time)", sum.median_seconds / step_seconds);
        printf("\n");
        char svg[PATH_MAX], png[PATH_MAX];
        snprintf(svg, sizeof svg, "%s.svg", plot);
        snprintf(png, sizeof png, "%s.png", plot);
        rc = tp_report_sharpness(db, id, svg, png, err, errlen);
        if (rc == TP_OK)
            printf("  plot: %s, %s\n", svg, png);
    }
    free(s.r);
    free(value);
    free(thr);
    free(sec);
    free(step);
    free(iters);
    return rc;
}

/* `run`, and `sharpness` (run with measurements by default and a report of them after). */
static int cmd_run_as(int argc, char **argv, int sharpness)
{
    tp_run_request q;
    memset(&q, 0, sizeof q);
    tp_trial_spec *spec = &q.spec;
    tp_spec_init(spec);
    const char *workload = NULL, *results_dir = "results", *workloads = NULL;
    double wall_limit = 0, silence_limit = 0;
    uint64_t memory_limit = 0;
    int quiet = 0;
    /* The trial's own options (shared with the worker) plus the host's. */
    const char *plot = NULL;
    enum { O_WL = 1, O_WALL, O_RES, O_WLDIR, O_QUIET, O_SILENCE, O_MEMORY, O_PLOT };
    static const struct option host_opts[] = {
        {"plot", required_argument, 0, O_PLOT},
        {"workload", required_argument, 0, O_WL},
        {"wall-limit", required_argument, 0, O_WALL},
        {"results", required_argument, 0, O_RES},
        {"workloads", required_argument, 0, O_WLDIR},
        {"quiet", no_argument, 0, O_QUIET},
        {"silence-limit", required_argument, 0, O_SILENCE},
        {"memory-limit", required_argument, 0, O_MEMORY},
        {0, 0, 0, 0},
    };
    struct option opts[TP_SPEC_NUM_OPTIONS + 8];
    memcpy(opts, tp_spec_options, (TP_SPEC_NUM_OPTIONS - 1) * sizeof *opts);
    memcpy(opts + TP_SPEC_NUM_OPTIONS - 1, host_opts, sizeof host_opts);
    char err[ERRLEN] = "";
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (tp_spec_is_option(c)) {
            if (tp_spec_set(spec, c, optarg, err, sizeof err) < 0) {
                fprintf(stderr, "trainperf run: %s\n", err);
                return 2;
            }
            continue;
        }
        switch (c) {
        case O_WL:
            workload = optarg;
            break;
        case O_WALL:
            wall_limit = strtod(optarg, &end);
            if (*end || !(wall_limit > 0)) {
                fprintf(stderr,
                        "trainperf run: --wall-limit: bad value '%s': expected seconds > 0\n",
                        optarg);
                return 2;
            }
            break;
        case O_SILENCE:
            silence_limit = strtod(optarg, &end);
            if (*end || !(silence_limit > 0)) {
                fprintf(stderr,
                        "trainperf run: --silence-limit: bad value '%s': expected seconds > 0\n",
                        optarg);
                return 2;
            }
            break;
        case O_MEMORY:
            if (tp_sandbox_parse_bytes(optarg, &memory_limit, err, sizeof err) < 0) {
                fprintf(stderr, "trainperf run: --memory-limit: %s\n", err);
                return 2;
            }
            break;
        case O_RES:
            results_dir = optarg;
            break;
        case O_WLDIR:
            workloads = optarg;
            break;
        case O_QUIET:
            quiet = 1;
            break;
        case O_PLOT:
            if (!sharpness) {
                fprintf(stderr, "trainperf run: --plot is an option of `trainperf sharpness`\n");
                return 2;
            }
            plot = optarg;
            break;
        default:
            return usage(stderr);
        }
    }
    const char *cmd = sharpness ? "sharpness" : "run";
    if (optind != argc || !spec->optimizer || (!workload == !spec->workload_config)) {
        fprintf(stderr,
                "trainperf %s: need --optimizer and one of --workload or "
                "--workload-config (see `trainperf help`)\n",
                cmd);
        return 2;
    }
    if (sharpness && spec->sharpness_every == 0)
        spec->sharpness_every = 10;
    /* A measurement sends no event while it runs; give it room over the default silence
     * limit (the wall-clock limit grows by each measurement's time, see runner.c). */
    if (spec->sharpness_every && silence_limit == 0)
        silence_limit = 600;

    char cfg_path[PATH_MAX], wpath[PATH_MAX];
    spec->plugin_dir = dir_default(spec->plugin_dir, "TRAINPERF_PLUGINS", TP_DEFAULT_PLUGIN_DIR);
    workloads = dir_default(workloads, "TRAINPERF_WORKLOADS", TP_DEFAULT_WORKLOAD_DIR);
    if (workload) {
        if (tp_config_find_workload(workloads, workload, cfg_path, sizeof cfg_path, err,
                                    sizeof err) < 0) {
            fprintf(stderr, "trainperf run: %s\n", err);
            return 1;
        }
    } else {
        snprintf(cfg_path, sizeof cfg_path, "%s", spec->workload_config);
    }
    if (worker_path(wpath, sizeof wpath) < 0) {
        fprintf(stderr, "trainperf run: cannot find trainperf-worker next to trainperf (set "
                        "TRAINPERF_WORKER)\n");
        return 1;
    }

    /* Read the workload file here too, so errors show before a worker starts. */
    tp_workload_config cfg;
    memset(&cfg, 0, sizeof cfg);
    tp_kv_list kv = {0};
    tp_results *db = NULL;
    int rc = 1;
    if (tp_config_load_workload(cfg_path, &cfg, err, sizeof err) < 0)
        goto fail;
    if (tp_config_select_variant(&cfg, spec->variant, err, sizeof err) < 0)
        goto fail;
    for (int i = 0; i < spec->num_overrides; i++)
        if (tp_config_apply_override(&cfg, spec->overrides[i], err, sizeof err) < 0)
            goto fail;
    if (tp_kv_parse(spec->hparams ? spec->hparams : "", &kv, err, sizeof err) < 0) {
        char tmp[ERRLEN];
        snprintf(tmp, sizeof tmp, "--hparams: %s", err);
        snprintf(err, sizeof err, "%s", tmp);
        goto fail;
    }
    const tp_workload_desc *wd = tp_workload_find(cfg.name);
    if (!wd) {
        snprintf(err, sizeof err, "%s: workload.name: no workload family '%s' is compiled in",
                 cfg.file, cfg.name);
        goto fail;
    }
    tp_wl_params wp = {cfg.file, cfg.options, cfg.num_options};
    if (tp_workload_prepare(wd, &wp, err, sizeof err) < 0)
        goto fail;
    if (tp_results_open(results_dir, &db, err, sizeof err) < 0)
        goto fail;

    char hp_json[4096];
    tp_kv_to_json(&kv, hp_json, sizeof hp_json);
    tp_trial_meta meta = {
        .workload = cfg.name,
        .variant = spec->variant ? spec->variant : "",
        .optimizer = spec->optimizer,
        .schedule = spec->schedule ? spec->schedule : "constant",
        .selection = spec->selection ? spec->selection : "next_batch",
        .hparams_json = hp_json,
        .seed = spec->seed,
        .budget = cfg.budget,
        .clock = tp_clock_kind_name(spec->clock),
        .metric = wd->metric,
        .maximize = wd->maximize,
        .validation_target = cfg.validation_target,
        .test_target = cfg.test_target,
    };
    int64_t id;
    if (tp_results_begin_trial(db, &meta, &id, err, sizeof err) < 0)
        goto fail;

    char logdir[PATH_MAX], logpath[PATH_MAX], label[256];
    snprintf(logdir, sizeof logdir, "%s/logs", results_dir);
    snprintf(logpath, sizeof logpath, "%s/trial_%lld.log", logdir, (long long)id);
    if (tp__fs_mkdir_p(logdir, err, sizeof err) < 0)
        goto fail;
    snprintf(label, sizeof label, "%s%s%s/%s", cfg.name, spec->variant ? ":" : "",
             spec->variant ? spec->variant : "", spec->optimizer);
    q.worker_path = wpath;
    spec->workload_config = cfg_path;
    q.wall_limit = wall_limit; /* 0: tp_runner_default_wall_limit */
    q.silence_limit = silence_limit;
    q.eval_period = cfg.eval_period;
    q.memory_limit = memory_limit;
    q.log_path = logpath;
    q.progress =
        quiet ? TP_PROGRESS_NONE : (isatty(STDOUT_FILENO) ? TP_PROGRESS_LINE : TP_PROGRESS_PLAIN);
    q.label = label;
    q.metric = wd->metric;
    q.budget = cfg.budget;
    q.validation_target = cfg.validation_target;

    tp_run_result res;
    if (tp_runner_run(&q, db, id, &res, err, sizeof err) < 0)
        goto fail;

    char ttt[32];
    fmt_time(res.time_to_target, ttt, sizeof ttt);
    double sub = tp_clock_submission_time((int)spec->clock, res.steps, res.submission_time_wall,
                                          res.submission_time_cpu);
    printf("%s (schedule %s, selection %s, seed %llu)\n", label, meta.schedule, meta.selection,
           (unsigned long long)spec->seed);
    switch (res.status) {
    case TP_TRIAL_REACHED:
        printf("  reached both targets; validation %s target %g reached at %s s of submission "
               "time\n",
               wd->metric, cfg.validation_target, ttt);
        break;
    case TP_TRIAL_BUDGET:
        printf("  budget of %g s spent; validation target %g %s\n", cfg.budget,
               cfg.validation_target,
               isinf(res.time_to_target) ? "not reached" : "reached, test target not");
        break;
    case TP_TRIAL_COMPLETE:
        printf("  submission ended training; validation target %g %s\n", cfg.validation_target,
               isinf(res.time_to_target) ? "not reached" : "reached");
        break;
    default:
        printf("  FAILED (%s): %s\n", tp__reason_name(res.reason), res.message);
        break;
    }
    printf("  best validation %s %.4f; %llu steps in %.2f s (%s clock), %.0f steps/s; wall "
           "%.1f s\n",
           wd->metric, res.best_validation_metric, (unsigned long long)res.steps, sub,
           tp_clock_kind_name(spec->clock), sub > 0 ? (double)res.steps / sub : 0.0, res.wall_time);
    printf("  results: %s (trial %lld), log: %s\n", tp_results_path(db), (long long)id, logpath);
    rc = res.status == TP_TRIAL_FAILED ? 1 : 0;
    if (sharpness) {
        char prefix[PATH_MAX];
        if (!plot) {
            snprintf(prefix, sizeof prefix, "%s/sharpness_trial_%lld", results_dir, (long long)id);
            plot = prefix;
        }
        if (sharpness_report(db, id, plot, res.steps ? sub / (double)res.steps : 0.0, err,
                             sizeof err) < 0) {
            fprintf(stderr, "trainperf sharpness: %s\n", err);
            rc = 1;
        }
    }
    goto out;
fail:
    fprintf(stderr, "trainperf %s: %s\n", cmd, err);
    rc = 1;
out:
    tp_results_close(db);
    tp_kv_free(&kv);
    tp_config_free_workload(&cfg);
    return rc;
}

static int cmd_run(int argc, char **argv)
{
    return cmd_run_as(argc, argv, 0);
}

static int cmd_sharpness(int argc, char **argv)
{
    return cmd_run_as(argc, argv, 1);
}

/* ---------------------------------------------------------------------------------------- */
/* sweep */

static int cmd_sweep(int argc, char **argv)
{
    const char *results = NULL, *plugins = NULL, *workloads = NULL, *file = NULL;
    int jobs = 0, quiet = 0, plan = 0;
    double wall_limit = 0, silence_limit = 0;
    uint64_t memory_limit = 0;
    char err[ERRLEN];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char *end;
        if (!strcmp(a, "--results") && i + 1 < argc)
            results = argv[++i];
        else if (!strcmp(a, "--plugins") && i + 1 < argc)
            plugins = argv[++i];
        else if (!strcmp(a, "--workloads") && i + 1 < argc)
            workloads = argv[++i];
        else if (!strcmp(a, "--jobs") && i + 1 < argc) {
            jobs = (int)strtol(argv[++i], &end, 10);
            if (*end || jobs < 1 || jobs > 256) {
                fprintf(stderr, "trainperf sweep: --jobs: expected 1 to 256\n");
                return 2;
            }
        } else if (!strcmp(a, "--wall-limit") && i + 1 < argc) {
            wall_limit = strtod(argv[++i], &end);
            if (*end || !(wall_limit > 0)) {
                fprintf(stderr, "trainperf sweep: --wall-limit: expected seconds > 0\n");
                return 2;
            }
        } else if (!strcmp(a, "--silence-limit") && i + 1 < argc) {
            silence_limit = strtod(argv[++i], &end);
            if (*end || !(silence_limit > 0)) {
                fprintf(stderr, "trainperf sweep: --silence-limit: expected seconds > 0\n");
                return 2;
            }
        } else if (!strcmp(a, "--memory-limit") && i + 1 < argc) {
            if (tp_sandbox_parse_bytes(argv[++i], &memory_limit, err, sizeof err) < 0) {
                fprintf(stderr, "trainperf sweep: --memory-limit: %s\n", err);
                return 2;
            }
        } else if (!strcmp(a, "--quiet"))
            quiet = 1;
        else if (!strcmp(a, "--plan"))
            plan = 1;
        else if (a[0] != '-' && !file)
            file = a;
        else {
            fprintf(stderr, "usage: trainperf sweep SWEEP.cfg [--results DIR] [--jobs N] "
                            "[--plugins DIR] [--workloads DIR] [--wall-limit S]\n"
                            "                       [--silence-limit S] [--memory-limit BYTES] "
                            "[--quiet] [--plan]\n");
            return 2;
        }
    }
    if (!file) {
        fprintf(stderr, "usage: trainperf sweep SWEEP.cfg [options]\n");
        return 2;
    }
    char wpath[PATH_MAX];
    if (worker_path(wpath, sizeof wpath) < 0) {
        fprintf(stderr, "trainperf sweep: cannot find trainperf-worker next to trainperf (set "
                        "TRAINPERF_WORKER)\n");
        return 1;
    }
    tp_sweep_config cfg;
    if (tp_config_load_sweep(file, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "trainperf sweep: %s\n", err);
        return 1;
    }
    if (jobs)
        cfg.jobs = jobs;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > 0 && cfg.jobs > cores && !plan)
        fprintf(stderr,
                "trainperf sweep: warning: %d jobs on %ld cores: trials will compete for the "
                "CPU and their times will not be comparable\n",
                cfg.jobs, cores);
    tp_sweep_env env = {
        .worker_path = wpath,
        .plugin_dir = dir_default(plugins, "TRAINPERF_PLUGINS", TP_DEFAULT_PLUGIN_DIR),
        .workloads_dir = dir_default(workloads, "TRAINPERF_WORKLOADS", TP_DEFAULT_WORKLOAD_DIR),
        .results_dir = results,
        .progress = quiet ? TP_PROGRESS_NONE
                          : (isatty(STDOUT_FILENO) ? TP_PROGRESS_LINE : TP_PROGRESS_PLAIN),
        .wall_limit = wall_limit,
        .silence_limit = silence_limit,
        .memory_limit = memory_limit,
        .plan_only = plan,
    };
    tp_sweep_stats st;
    int rc = tp_sweep_run(&cfg, &env, &st, err, sizeof err);
    tp_config_free_sweep(&cfg);
    if (rc < 0) {
        fprintf(stderr, "trainperf sweep: %s\n", err);
        return 1;
    }
    if (plan)
        return 0;
    printf("sweep done: %zu trials planned, %zu run now (%zu reached the targets, %zu failed), "
           "%zu already done, %zu re-run after an interruption; %.1f s\n",
           st.planned, st.ran, st.reached, st.failed, st.skipped, st.rerun, st.wall);
    printf("results: %s/results.db (score with `trainperf score %s`)\n", st.results_dir,
           st.results_dir);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* score, report, export */

static int has_db(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/results.db", dir);
    return access(path, R_OK) == 0;
}

typedef struct scoring {
    tp_results *db; /* when scoring a results directory */
    tp_algoperf_trials *trials;
    tp_score_options opts;
    tp_score_table *table;
} scoring;

static void scoring_free(scoring *sc)
{
    tp_score_free(sc->table);
    tp_algoperf_trials_free(sc->trials);
    tp_results_close(sc->db);
    memset(sc, 0, sizeof *sc);
}

/* Score a trainperf results directory (with results.db) or an AlgoPerf log tree. */
static int score_path(const char *path, const tp_algoperf_options *ao, int no_heldout, scoring *sc,
                      char *err, size_t errlen)
{
    memset(sc, 0, sizeof *sc);
    int rc;
    if (has_db(path)) {
        if ((rc = tp_results_open(path, &sc->db, err, errlen)) < 0)
            return rc;
        rc = tp_algoperf_collect(sc->db, ao, &sc->trials, err, errlen);
    } else {
        struct stat st;
        if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen,
                     "%s: not a directory (expected a results directory or an "
                     "AlgoPerf log tree)",
                     path);
            return TP_ENOENT;
        }
        rc = tp_algoperf_import(path, ao, &sc->trials, err, errlen);
    }
    if (rc < 0)
        return rc;
    sc->opts = (tp_score_options){
        .self_tuning = sc->trials->self_tuning, .heldout = !no_heldout, .max_ratio = 4.0};
    if (sc->trials->num_trials == 0) {
        snprintf(err, errlen,
                 "%s: no sweep trials to score (one-off `trainperf run` trials are "
                 "not scored; run `trainperf sweep`)",
                 path);
        return TP_ENOENT;
    }
    return tp_score_compute(sc->trials->trials, sc->trials->num_trials, &sc->opts, &sc->table, err,
                            errlen);
}

static const char *score_usage =
    "usage: trainperf score PATH [--targets FILE] [--ruleset external|self] [--heldout LIST]\n"
    "                      [--no-heldout] [--plot PREFIX]\n"
    "  PATH is a trainperf results directory or an AlgoPerf log tree\n"
    "  (<submission>/study_k/<workload>/trial_i/eval_measurements.csv); --targets names a\n"
    "  workload_targets JSON (default: AlgoPerf's eight workloads and their variants).\n"
    "  The profile plot goes to PREFIX.svg and PREFIX.png (default: PATH/profile for a\n"
    "  results directory).\n";

static int cmd_score(int argc, char **argv)
{
    tp_algoperf_options ao = {0};
    const char *path = NULL, *plot = NULL;
    int no_heldout = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--targets") && i + 1 < argc)
            ao.targets_path = argv[++i];
        else if (!strcmp(argv[i], "--ruleset") && i + 1 < argc)
            ao.ruleset = argv[++i];
        else if (!strcmp(argv[i], "--heldout") && i + 1 < argc)
            ao.heldout = argv[++i];
        else if (!strcmp(argv[i], "--no-heldout"))
            no_heldout = 1;
        else if (!strcmp(argv[i], "--plot") && i + 1 < argc)
            plot = argv[++i];
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else {
            fputs(score_usage, stderr);
            return 2;
        }
    }
    if (!path) {
        fputs(score_usage, stderr);
        return 2;
    }
    char err[ERRLEN];
    scoring sc;
    int rc = score_path(path, &ao, no_heldout, &sc, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "trainperf score: %s\n", err);
        scoring_free(&sc);
        return 1;
    }
    tp_algoperf_print_scores(stdout, sc.table, &sc.opts);
    char prefix[PATH_MAX], svg[PATH_MAX + 8], png[PATH_MAX + 8];
    if (plot)
        snprintf(prefix, sizeof prefix, "%s", plot);
    else if (sc.db)
        snprintf(prefix, sizeof prefix, "%s/profile", path);
    else
        prefix[0] = '\0';
    if (prefix[0]) {
        snprintf(svg, sizeof svg, "%s.svg", prefix);
        snprintf(png, sizeof png, "%s.png", prefix);
        if (tp_report_profile(sc.table, svg, png, err, sizeof err) < 0) {
            fprintf(stderr, "trainperf score: %s\n", err);
            rc = TP_EIO;
        } else {
            printf("performance profile: %s, %s\n", svg, png);
        }
    }
    scoring_free(&sc);
    return rc < 0 ? 1 : 0;
}

static int cmd_report(int argc, char **argv)
{
    const char *path = NULL, *out = NULL;
    tp_algoperf_options ao = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--ruleset") && i + 1 < argc)
            ao.ruleset = argv[++i];
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            path = NULL, i = argc;
    }
    if (!path) {
        fprintf(stderr, "usage: trainperf report RESULTS [-o report.html] [--ruleset R]\n");
        return 2;
    }
    if (!has_db(path)) {
        fprintf(stderr, "trainperf report: %s/results.db: no results database\n", path);
        return 1;
    }
    char err[ERRLEN], def[PATH_MAX];
    if (!out) {
        snprintf(def, sizeof def, "%s/report.html", path);
        out = def;
    }
    scoring sc;
    /* Nothing to score (one-off trials only) still makes a report of the trials. */
    int scored = score_path(path, &ao, 0, &sc, err, sizeof err) == TP_OK;
    if (!sc.db && tp_results_open(path, &sc.db, err, sizeof err) < 0) {
        fprintf(stderr, "trainperf report: %s\n", err);
        scoring_free(&sc);
        return 1;
    }
    int rc = tp_report_html(sc.db, scored ? sc.table : NULL, out, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "trainperf report: %s\n", err);
    else
        printf("report: %s%s\n", out, scored ? "" : " (no sweep trials: not scored)");
    scoring_free(&sc);
    return rc < 0 ? 1 : 0;
}

static int cmd_export(int argc, char **argv)
{
    const char *targets = NULL, *args[2] = {NULL, NULL};
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--targets") && i + 1 < argc)
            targets = argv[++i];
        else if (argv[i][0] != '-' && n < 2)
            args[n++] = argv[i];
        else
            n = 3, i = argc;
    }
    if (n != 2) {
        fprintf(stderr, "usage: trainperf export RESULTS DIR [--targets FILE.json]\n"
                        "  writes AlgoPerf's <submission>/study_k/<workload>/trial_i/"
                        "eval_measurements.csv\n  under DIR, and with --targets the "
                        "workload_targets JSON that scores it (keep it outside DIR)\n");
        return 2;
    }
    if (!has_db(args[0])) {
        fprintf(stderr, "trainperf export: %s/results.db: no results database\n", args[0]);
        return 1;
    }
    char err[ERRLEN];
    tp_results *db;
    if (tp_results_open(args[0], &db, err, sizeof err) < 0) {
        fprintf(stderr, "trainperf export: %s\n", err);
        return 1;
    }
    size_t trials = 0;
    int rc = tp_algoperf_export(db, args[1], targets, &trials, err, sizeof err);
    tp_results_close(db);
    if (rc < 0) {
        fprintf(stderr, "trainperf export: %s\n", err);
        return 1;
    }
    printf("exported %zu trials to %s%s%s\n", trials, args[1], targets ? ", targets: " : "",
           targets ? targets : "");
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* check, list: the loader runs in a worker */

static int exec_worker(char **args)
{
    char wpath[PATH_MAX], err[ERRLEN];
    if (worker_path(wpath, sizeof wpath) < 0) {
        fprintf(stderr, "trainperf: cannot find trainperf-worker next to trainperf (set "
                        "TRAINPERF_WORKER)\n");
        return 1;
    }
    args[0] = wpath;
    int code;
    if (tp_runner_exec(args, &code, err, sizeof err) < 0) {
        fprintf(stderr, "trainperf: %s\n", err);
        return 1;
    }
    if (code >= 128)
        fprintf(stderr, "trainperf: the worker died with signal %d while loading the plugin\n",
                code - 128);
    return code;
}

static int cmd_check(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: trainperf check PLUGIN.so\n");
        return 2;
    }
    char *args[] = {NULL, "check", argv[1], NULL};
    return exec_worker(args);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_list(int argc, char **argv)
{
    const char *plugins = NULL, *workloads = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--plugins") == 0 && i + 1 < argc)
            plugins = argv[++i];
        else if (strcmp(argv[i], "--workloads") == 0 && i + 1 < argc)
            workloads = argv[++i];
        else {
            fprintf(stderr, "usage: trainperf list [--plugins DIR] [--workloads DIR]\n");
            return 2;
        }
    }
    plugins = dir_default(plugins, "TRAINPERF_PLUGINS", TP_DEFAULT_PLUGIN_DIR);
    workloads = dir_default(workloads, "TRAINPERF_WORKLOADS", TP_DEFAULT_WORKLOAD_DIR);

    printf("workloads in %s:\n", workloads);
    printf("  %-16s %-10s %8s %10s %10s %8s %8s\n", "name", "metric", "batch", "budget s",
           "step_hint", "val", "test");
    DIR *d = opendir(workloads);
    char *names[256];
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 256)
        if (e->d_name[0] != '.')
            names[n++] = strdup(e->d_name);
    if (d)
        closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX], err[ERRLEN];
        snprintf(path, sizeof path, "%s/%s/%s.cfg", workloads, names[i], names[i]);
        if (access(path, R_OK) == 0) {
            tp_workload_config cfg;
            memset(&cfg, 0, sizeof cfg);
            if (tp_config_load_workload(path, &cfg, err, sizeof err) < 0) {
                printf("  %-16s error: %s\n", names[i], err);
            } else {
                const tp_workload_desc *wd = tp_workload_find(cfg.name);
                printf("  %-16s %-10s %8u %10g %10llu %8g %8g\n", names[i], wd ? wd->metric : "?",
                       cfg.batch_size_hint, cfg.budget, (unsigned long long)cfg.step_hint,
                       cfg.validation_target, cfg.test_target);
                for (size_t v = 0; v < cfg.num_variants; v++)
                    printf("    variant %-47s %8g %8g\n", cfg.variants[v].name,
                           cfg.variants[v].validation_target, cfg.variants[v].test_target);
            }
            tp_config_free_workload(&cfg);
        }
        free(names[i]);
    }
    printf("\nplugins in %s:\n", plugins);
    fflush(stdout);
    char *args[] = {NULL, "list", (char *)plugins, NULL};
    return exec_worker(args);
}

/* ---------------------------------------------------------------------------------------- */
/* results */

static int print_trial(const tp_trial_summary *t, void *ud)
{
    (void)ud;
    char ttt[32];
    fmt_time(t->time_to_target, ttt, sizeof ttt);
    double sub = tp_clock_submission_time(tp_clock_kind_parse(t->clock), t->steps,
                                          t->submission_time_wall, t->submission_time_cpu);
    printf("%5lld  %-12s %-12s %-14s %-9s %9s %9.4f %8llu %8.0f  %s\n", (long long)t->id,
           t->workload, t->optimizer, t->schedule, tp_trial_status_name(t->status), ttt,
           t->best_validation_metric, (unsigned long long)t->steps,
           sub > 0 ? (double)t->steps / sub : 0.0, t->hparams_json);
    if (t->status == TP_TRIAL_FAILED)
        printf("       failed (%s): %s\n", tp__reason_name(t->reason), t->message);
    return 0;
}

static int cmd_results(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "results";
    char err[ERRLEN], path[PATH_MAX];
    snprintf(path, sizeof path, "%s/results.db", dir);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "trainperf results: %s: no results database (run a trial first)\n", path);
        return 1;
    }
    tp_results *db;
    if (tp_results_open(dir, &db, err, sizeof err) < 0) {
        fprintf(stderr, "trainperf results: %s\n", err);
        return 1;
    }
    printf("%5s  %-12s %-12s %-14s %-9s %9s %9s %8s %8s  %s\n", "trial", "workload", "optimizer",
           "schedule", "status", "target s", "best val", "steps", "steps/s", "hparams");
    int rc = tp_results_foreach_trial(db, NULL, 0, print_trial, NULL, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "trainperf results: %s\n", err);
    tp_results_close(db);
    return rc < 0 ? 1 : 0;
}

/* ---------------------------------------------------------------------------------------- */

int tp_cli_main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "sharpness") == 0)
        return cmd_sharpness(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "sweep") == 0)
        return cmd_sweep(argc - 1, argv + 1);
    if (strcmp(cmd, "score") == 0)
        return cmd_score(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0)
        return cmd_report(argc - 1, argv + 1);
    if (strcmp(cmd, "export") == 0)
        return cmd_export(argc - 1, argv + 1);
    if (strcmp(cmd, "list") == 0)
        return cmd_list(argc - 1, argv + 1);
    if (strcmp(cmd, "results") == 0)
        return cmd_results(argc - 1, argv + 1);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
        return usage(stdout);
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("trainperf %s (SDK %d.%d)\n", TP_VERSION_STRING, TP_SDK_VERSION_MAJOR,
               TP_SDK_VERSION_MINOR);
        return 0;
    }
    fprintf(stderr, "trainperf: unknown command '%s'\n", cmd);
    return usage(stderr);
}
