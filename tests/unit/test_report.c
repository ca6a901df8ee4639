/*
 * test_report.c - core/report.c: the performance-profile plot written as SVG (XML-ish, with the
 * submission names, escaped, and polylines) and as PNG (signature), twice in one process with
 * byte-identical SVG (PLplot's global state is restored), errors instead of crashes for bad
 * arguments and unwritable paths, the HTML report (score tables, inline SVGs without prolog,
 * escaped names and failure messages, no http(s) references, trials table) with and without a
 * score table and for an empty database, the terminal score table, the sharpness plot of a
 * trial (legend, NaN where nothing was measured, errors for trials without measurements) and
 * the report's Training dynamics section (only when measured, capped), and, in child processes
 * with PLPLOT_DRV_DIR pointing at broken driver directories, TP_ENOTSUP with a clear message
 * instead of PLplot's prompt on stdin or its exit().
 *
 * The score table is made by hand (not by core/score.c) so that these tests only test reports.
 * Not here: what the plots look like (a person checks that).
 */
#define _GNU_SOURCE /* nftw, open_memstream, setenv */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

#include "core/report.h"
#include "core/results.h"
#include "core/score.h"
#include <trainperf/trainperf.h>

/* LeakSanitizer: two of PLplot's own allocations are suppressed, nothing else.
 *   - libfontconfig.so: PLplot's cairo device lays text out with pango, which leaves
 *     fontconfig's caches (about 19-35 kB, once per process, not per plot) unreachable at exit.
 *   - plstrdup: PLplot's strdup, here the svg device's option string from plsetopt (a few
 *     bytes), which the driver frees when it starts; when the driver cannot be loaded
 *     (test_missing_drivers) nobody does. (Fast unwinding stops inside libplplot, so the
 *     caller c_plsetopt is not on the stack LeakSanitizer sees.) */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\nleak:plstrdup\n";
}

#define UGLY      "a<b&\"c\""                /* a submission name that needs escaping */
#define UGLY_HTML "a&lt;b&amp;&quot;c&quot;" /* ... as it must appear in HTML and SVG */

static char err[1024];
static const char *self_exe;

/* ---------------------------------------------------------------------------------------- */
/* Fixtures: a temporary directory, a hand-made score table, a results database */

typedef struct fixture {
    char dir[64];
} fixture;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/tp_test_report_XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static char *path_in(const fixture *f, const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", f->dir, name);
    return p;
}

/* Two submissions on two workloads:
 *   UGLY   fmnist_mlp 100 s (1.25x)   mnist_cnn 250 s (1.00x)   score (2.75 + 3) / 6
 *   nadamw fmnist_mlp  80 s (1.00x)   mnist_cnn cut (raw 1200 s) score 3 / 6 */
static char *table_subs[] = {UGLY, "nadamw"};
static char *table_wls[] = {"fmnist_mlp", "mnist_cnn"};
static char *table_variants[] = {NULL, NULL};
static double table_raw[] = {100, 250, 80, 1200};
static double table_vtime[] = {NAN, NAN, NAN, NAN};
static double table_time[] = {100, 250, 80, INFINITY};
static double table_ratio[] = {1.25, 1.0, 1.0, INFINITY};
static double table_score[] = {5.75 / 6.0, 3.0 / 6.0};

static tp_score_table score_table(void)
{
    return (tp_score_table){
        .num_submissions = 2,
        .submissions = table_subs,
        .num_workloads = 2,
        .workloads = table_wls,
        .raw_time = table_raw,
        .variant_time = table_vtime,
        .variant_name = table_variants,
        .time = table_time,
        .ratio = table_ratio,
        .score = table_score,
    };
}

static void add_trial(tp_results *db, const char *sub, const char *workload, const char *variant,
                      int study, const double *x, const double *y, size_t n, tp_trial_status status,
                      int reason, const char *message)
{
    tp_trial_meta m = {
        .workload = workload,
        .variant = variant,
        .optimizer = "adamw",
        .schedule = "constant",
        .selection = "uniform",
        .hparams_json = "{}",
        .budget = 100.0,
        .clock = "wall",
        .metric = "accuracy",
        .maximize = 1,
        .validation_target = 0.885,
        .test_target = 0.875,
        .submission = sub,
        .ruleset = "external",
        .study = study,
        .trial_index = 0,
    };
    int64_t id;
    if (tp_results_begin_trial(db, &m, &id, err, sizeof err) != 0)
        fail_msg("begin_trial: %s", err);
    double ttt = INFINITY, best = NAN;
    for (size_t i = 0; i < n; i++) {
        tp_eval_row e = {.eval_index = (uint32_t)i,
                         .global_step = 100 * i,
                         .score = x[i],
                         .submission_time_wall = x[i],
                         .validation_metric = y[i],
                         .validation_loss = 1.0,
                         .test_metric = y[i],
                         .test_loss = 1.0,
                         .validation_reached = y[i] >= 0.885,
                         .test_reached = y[i] >= 0.875};
        if (tp_results_add_eval(db, id, &e, err, sizeof err) != 0)
            fail_msg("add_eval: %s", err);
        if (!isnan(y[i]) && (isnan(best) || y[i] > best))
            best = y[i];
        if (y[i] >= 0.885 && isinf(ttt))
            ttt = x[i];
    }
    tp_trial_end end = {.status = status,
                        .reason = reason,
                        .message = message,
                        .steps = 100 * n,
                        .time_to_target = ttt,
                        .best_validation_metric = best,
                        .wall_time = n > 0 ? x[n - 1] : 0.0};
    if (tp_results_end_trial(db, id, &end, err, sizeof err) != 0)
        fail_msg("end_trial: %s", err);
}

/* Five trials: curves on fmnist_mlp (two submissions, two studies) and on a mnist_cnn variant
 * (a NaN eval, one failed trial with one eval), one trial without evals. */
static tp_results *make_db(const fixture *f)
{
    tp_results *db = NULL;
    if (tp_results_open(path_in(f, "results"), &db, err, sizeof err) != 0)
        fail_msg("open: %s", err);
    const double x1[] = {10, 20, 30, 40}, y1[] = {0.50, 0.80, 0.87, 0.90};
    const double x2[] = {10, 20, 30}, y2[] = {0.60, 0.86, 0.89};
    const double x3[] = {12, 24, 36, 48}, y3[] = {0.40, NAN, 0.88, 0.891};
    const double x4[] = {5}, y4[] = {0.3};
    add_trial(db, UGLY, "fmnist_mlp", "", 0, x1, y1, 4, TP_TRIAL_REACHED, TP_OK, "");
    add_trial(db, "nadamw", "fmnist_mlp", "", 1, x2, y2, 3, TP_TRIAL_REACHED, TP_OK, "");
    add_trial(db, UGLY, "mnist_cnn", "mnist_cnn_tanh", 0, x3, y3, 4, TP_TRIAL_REACHED, TP_OK, "");
    add_trial(db, "nadamw", "mnist_cnn", "mnist_cnn_tanh", 0, x4, y4, 1, TP_TRIAL_FAILED, TP_ECRASH,
              "worker died: <boom> & \"signal 11\"");
    add_trial(db, "nadamw", "wmt_tiny", "", 0, NULL, NULL, 0, TP_TRIAL_FAILED, TP_ETIMEOUT,
              "no eval before the time limit");
    return db;
}

/* ---------------------------------------------------------------------------------------- */
/* File checks */

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 65536;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0, k = strlen(needle);
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + k, needle))
        n++;
    return n;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void check_png(const char *path)
{
    size_t n;
    char *png = read_all(path, &n);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    assert_true(n > 1000);
    assert_memory_equal(png, sig, 8);
    assert_memory_equal(png + 12, "IHDR", 4);
    free(png);
}

/* A NaN or infinity written as a coordinate ("nan", "-nan", "inf" after a digit, a comma, a
 * space or a quote). */
static int has_nonfinite(const char *svg)
{
    for (const char *p = svg; *p != '\0'; p++)
        if ((strncmp(p, "nan", 3) == 0 || strncmp(p, "inf", 3) == 0) && p > svg &&
            strchr("0123456789-., \"", p[-1]) != NULL)
            return 1;
    return 0;
}

/* Well-formed enough: one <svg> root, balanced angle brackets (text is escaped), polylines,
 * and xmllint agrees when it is installed. */
static char *check_svg(const char *path)
{
    size_t n;
    char *svg = read_all(path, &n);
    assert_true(strncmp(svg, "<?xml", 5) == 0 || strncmp(svg, "<svg", 4) == 0);
    assert_int_equal(count(svg, "<svg"), 1);
    assert_int_equal(count(svg, "</svg>"), 1);
    assert_int_equal(count(svg, "<"), count(svg, ">"));
    assert_true(count(svg, "<polyline") > 10);
    assert_null(strstr(svg, "&#x")); /* character references decoded */
    if (access("/usr/bin/xmllint", X_OK) == 0) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "/usr/bin/xmllint --nonet --noout '%s' 2>&1", path);
        assert_int_equal(system(cmd), 0);
    }
    return svg;
}

/* ---------------------------------------------------------------------------------------- */
/* The performance-profile plot */

static void test_profile_files(void **state)
{
    fixture *f = *state;
    tp_score_table t = score_table();
    const char *svg_path = path_in(f, "profile.svg"), *png_path = path_in(f, "profile.png");

    if (tp_report_profile(&t, svg_path, png_path, err, sizeof err) != 0)
        fail_msg("tp_report_profile: %s", err);
    check_png(png_path);
    char *svg = check_svg(svg_path);
    assert_non_null(strstr(svg, UGLY_HTML));
    assert_null(strstr(svg, UGLY));
    assert_non_null(strstr(svg, "nadamw (score 0.5000)"));
    assert_non_null(strstr(svg, "(score 0.9583)"));
    assert_non_null(strstr(svg, "tau (ratio to fastest)"));
    assert_non_null(strstr(svg, "fraction of workloads"));
    assert_non_null(strstr(svg, "Performance profiles over 2 workloads"));
    free(svg);

    /* Either file alone. */
    const char *only_svg = path_in(f, "only.svg"), *only_png = path_in(f, "only.png");
    assert_int_equal(tp_report_profile(&t, only_svg, NULL, err, sizeof err), 0);
    assert_int_equal(tp_report_profile(&t, NULL, only_png, err, sizeof err), 0);
    free(check_svg(only_svg));
    check_png(only_png);
}

static void test_profile_twice(void **state)
{
    fixture *f = *state;
    tp_score_table t = score_table();
    char *svg[2];
    for (int i = 0; i < 2; i++) {
        const char *s = path_in(f, i == 0 ? "a.svg" : "b.svg");
        const char *p = path_in(f, i == 0 ? "a.png" : "b.png");
        if (tp_report_profile(&t, s, p, err, sizeof err) != 0)
            fail_msg("run %d: %s", i, err);
        check_png(p);
        svg[i] = check_svg(s);
    }
    assert_string_equal(svg[0], svg[1]);
    free(svg[0]);
    free(svg[1]);

    /* Overwriting an existing file leaves no temporary file behind. */
    assert_int_equal(tp_report_profile(&t, path_in(f, "a.svg"), NULL, err, sizeof err), 0);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path_in(f, "a.svg"), (long)getpid());
    assert_false(exists(tmp));
}

static void test_profile_errors(void **state)
{
    fixture *f = *state;
    tp_score_table t = score_table();

    assert_int_equal(tp_report_profile(NULL, "x.svg", NULL, err, sizeof err), TP_EINVAL);
    assert_int_equal(tp_report_profile(&t, NULL, NULL, err, sizeof err), TP_EINVAL);
    tp_score_table empty = t;
    empty.num_submissions = 0;
    assert_int_equal(tp_report_profile(&empty, path_in(f, "e.svg"), NULL, err, sizeof err),
                     TP_EINVAL);
    assert_non_null(strstr(err, "no performance profile"));
    assert_false(exists(path_in(f, "e.svg")));

    const char *bad = "/nonexistent_tp_dir/sub/profile.svg";
    assert_int_equal(tp_report_profile(&t, bad, NULL, err, sizeof err), TP_EIO);
    assert_non_null(strstr(err, bad));
    const char *bad_png = "/nonexistent_tp_dir/sub/profile.png";
    assert_int_equal(tp_report_profile(&t, NULL, bad_png, err, sizeof err), TP_EIO);
    assert_non_null(strstr(err, bad_png));
    /* A directory where the file should be. */
    assert_int_equal(tp_report_profile(&t, f->dir, NULL, err, sizeof err), TP_EIO);

    /* Plotting still works after the failures. */
    assert_int_equal(tp_report_profile(&t, path_in(f, "ok.svg"), NULL, err, sizeof err), 0);
    free(check_svg(path_in(f, "ok.svg")));
}

/* ---------------------------------------------------------------------------------------- */
/* The HTML report */

static void check_html_common(const char *html)
{
    assert_true(strncmp(html, "<!DOCTYPE html>", 15) == 0);
    assert_non_null(strstr(html, "</html>"));
    assert_null(strstr(html, "http://"));
    assert_null(strstr(html, "https://"));
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<link"));
    assert_null(strstr(html, "<img"));
    assert_null(strstr(html, "<?xml"));
    assert_null(strstr(html, "<!DOCTYPE svg"));
    assert_null(strstr(html, "xmlns"));
    assert_non_null(strstr(html, "Made "));
    assert_non_null(strstr(html, " UTC"));
    assert_int_equal(count(html, "<svg"), count(html, "</svg>"));
}

static void test_html_full(void **state)
{
    fixture *f = *state;
    tp_results *db = make_db(f);
    tp_score_table t = score_table();
    const char *out = path_in(f, "report.html");

    if (tp_report_html(db, &t, out, err, sizeof err) != 0)
        fail_msg("tp_report_html: %s", err);
    char *html = read_all(out, NULL);
    check_html_common(html);
    /* Scores, times and ratios, the profile and two workloads' curves (wmt_tiny has none). */
    assert_int_equal(count(html, "<table"), 3);
    assert_non_null(strstr(html, "0.9583"));
    assert_non_null(strstr(html, "0.5000"));
    assert_non_null(strstr(html, "100.0 s"));
    assert_non_null(strstr(html, "1.25&#xD7;"));
    assert_non_null(strstr(html, "cut<br><small>raw 1200.0 s"));
    assert_int_equal(count(html, "<svg"), 3);
    assert_non_null(strstr(html, "aria-label=\"performance profiles\""));
    assert_non_null(strstr(html, "tau (ratio to fastest)"));
    assert_non_null(strstr(html, "fmnist_mlp: validation accuracy"));
    assert_non_null(strstr(html, "mnist_cnn / mnist_cnn_tanh: validation accuracy"));
    assert_non_null(strstr(html, "target 0.885"));
    assert_non_null(strstr(html, "No evaluations recorded."));
    /* Names and messages escaped everywhere. */
    assert_true(count(html, UGLY_HTML) >= 5);
    assert_null(strstr(html, UGLY));
    assert_non_null(strstr(html, "TP_ECRASH: worker died: &lt;boom&gt; &amp; &quot;signal "
                                 "11&quot;"));
    assert_null(strstr(html, "<boom>"));
    assert_non_null(strstr(html, "TP_ETIMEOUT: no eval before the time limit"));
    assert_non_null(strstr(html, "<tr class=\"failed\">"));
    assert_non_null(strstr(html, "5 trials: 3 reached, 0 budget, 0 complete, 2 failed"));
    assert_null(strstr(html, "Training dynamics")); /* no trial measured its sharpness */
    free(html);
    tp_results_close(db);
}

static void test_html_no_score(void **state)
{
    fixture *f = *state;
    tp_results *db = make_db(f);
    const char *out = path_in(f, "noscore.html");

    if (tp_report_html(db, NULL, out, err, sizeof err) != 0)
        fail_msg("tp_report_html: %s", err);
    char *html = read_all(out, NULL);
    check_html_common(html);
    assert_non_null(strstr(html, "Nothing to score"));
    assert_null(strstr(html, "Training dynamics"));
    assert_int_equal(count(html, "<svg"), 2); /* curves only */
    assert_null(strstr(html, "performance profiles\""));
    assert_int_equal(count(html, "<table"), 1);
    assert_non_null(strstr(html, UGLY_HTML));
    free(html);

    /* The same report again in the same process. */
    assert_int_equal(tp_report_html(db, NULL, out, err, sizeof err), 0);
    tp_results_close(db);
}

static void test_html_empty_db(void **state)
{
    fixture *f = *state;
    tp_results *db = NULL;
    if (tp_results_open(path_in(f, "empty"), &db, err, sizeof err) != 0)
        fail_msg("open: %s", err);
    const char *out = path_in(f, "empty.html");
    if (tp_report_html(db, NULL, out, err, sizeof err) != 0)
        fail_msg("tp_report_html: %s", err);
    char *html = read_all(out, NULL);
    check_html_common(html);
    assert_non_null(strstr(html, "No trials in this database."));
    assert_null(strstr(html, "Training dynamics"));
    assert_non_null(strstr(html, "0 trials"));
    assert_int_equal(count(html, "<svg"), 0);
    free(html);
    tp_results_close(db);
}

static void test_html_errors(void **state)
{
    fixture *f = *state;
    tp_results *db = make_db(f);
    tp_score_table t = score_table();
    const char *bad = "/nonexistent_tp_dir/report.html";

    assert_int_equal(tp_report_html(db, &t, bad, err, sizeof err), TP_EIO);
    assert_non_null(strstr(err, bad));
    assert_int_equal(tp_report_html(NULL, &t, path_in(f, "x.html"), err, sizeof err), TP_EINVAL);
    assert_int_equal(tp_report_html(db, &t, NULL, err, sizeof err), TP_EINVAL);
    assert_false(exists(path_in(f, "x.html")));
    tp_results_close(db);
}

/* ---------------------------------------------------------------------------------------- */
/* Sharpness plots */

/* A trial with sharpness measurements and no evals; returns its id. */
static int64_t add_sharp_trial(tp_results *db, const char *workload, const char *optimizer,
                               const tp_sharpness_row *rows, size_t n)
{
    tp_trial_meta m = {
        .workload = workload,
        .optimizer = optimizer,
        .schedule = "constant",
        .selection = "uniform",
        .hparams_json = "{}",
        .budget = 100.0,
        .clock = "wall",
        .metric = "accuracy",
        .maximize = 1,
        .validation_target = 0.885,
        .test_target = 0.875,
    };
    int64_t id;
    if (tp_results_begin_trial(db, &m, &id, err, sizeof err) != 0)
        fail_msg("begin_trial: %s", err);
    for (size_t i = 0; i < n; i++)
        if (tp_results_add_sharpness(db, id, &rows[i], err, sizeof err) != 0)
            fail_msg("add_sharpness: %s", err);
    tp_trial_end end = {.status = TP_TRIAL_BUDGET,
                        .message = "",
                        .steps = n > 0 ? rows[n - 1].step : 0,
                        .time_to_target = INFINITY,
                        .best_validation_metric = NAN};
    if (tp_results_end_trial(db, id, &end, err, sizeof err) != 0)
        fail_msg("end_trial: %s", err);
    return id;
}

/* Adam at lr 1e-3 (threshold 38/lr = 38000 on preconditioned sharpness), as the worker records
 * it: at step 0 no preconditioner and no learning rate yet (NaN), a huge preconditioned value
 * after the first update, one failed measurement (NaN) on the way; plain sharpness throughout,
 * 2-3 decades below (near 0 on the linear axis). Then it hovers at the threshold. */
static int64_t add_adam_trial(tp_results *db)
{
    const uint64_t step[] = {0, 1, 5, 10, 20, 30, 40, 50, 60, 70};
    const double pre[] = {NAN, 2e6, 8000, 20000, NAN, 36500, 40000, 38500, 37800, 38200};
    const double plain[] = {50, 52, 55, 60, 65, 70, 80, 85, 90, 95};
    tp_sharpness_row rows[10];
    for (size_t i = 0; i < 10; i++)
        rows[i] = (tp_sharpness_row){.step = step[i],
                                     .loss = 1.0,
                                     .sharpness = plain[i],
                                     .precond_sharpness = pre[i],
                                     .threshold = i == 0 ? NAN : 38.0 / 1e-3,
                                     .threshold_kind = i == 0 ? 0 : 2,
                                     .lr = i == 0 ? NAN : 1e-3,
                                     .iters = 30,
                                     .grads = 62,
                                     .seconds = 1.5};
    return add_sharp_trial(db, "fmnist_mlp", "adamw", rows, 10);
}

/* Gradient descent at lr 0.05 (threshold 2/lr = 40 on sharpness): from 0.1 at initialization
 * (more than two decades below: a log axis) it reaches 0.95x at step 30, then ratios 0.975
 * 1.025 1.0 0.95 1.05 1.0 1.0 (median 1.000, range 0.950-1.050 over 7). */
static int64_t add_gd_trial(tp_results *db)
{
    const double v[] = {0.1, 20, 30, 39, 41, 40, 38, 42, 40, 40};
    tp_sharpness_row rows[10];
    for (size_t i = 0; i < 10; i++)
        rows[i] = (tp_sharpness_row){.step = 10 * i,
                                     .loss = 1.0,
                                     .sharpness = v[i],
                                     .precond_sharpness = NAN,
                                     .threshold = i == 0 ? NAN : 2.0 / 0.05,
                                     .threshold_kind = i == 0 ? 0 : 1,
                                     .lr = i == 0 ? NAN : 0.05,
                                     .iters = 20,
                                     .grads = 42,
                                     .seconds = 0.5};
    return add_sharp_trial(db, "fmnist_mlp", "sgd", rows, 10);
}

static void test_sharpness_files(void **state)
{
    fixture *f = *state;
    tp_results *db = NULL;
    if (tp_results_open(path_in(f, "results"), &db, err, sizeof err) != 0)
        fail_msg("open: %s", err);
    int64_t adam = add_adam_trial(db), gd = add_gd_trial(db);

    /* Adam: both series, the threshold, the cut-off first value, a linear axis. */
    const char *svg_path = path_in(f, "adam.svg"), *png_path = path_in(f, "adam.png");
    if (tp_report_sharpness(db, adam, svg_path, png_path, err, sizeof err) != 0)
        fail_msg("tp_report_sharpness: %s", err);
    check_png(png_path);
    char *svg = check_svg(svg_path);
    assert_non_null(strstr(svg, "Sharpness of trial 1: fmnist_mlp, adamw"));
    assert_non_null(strstr(svg, ">preconditioned sharpness<"));
    assert_non_null(strstr(svg, ">sharpness<"));
    assert_non_null(strstr(svg, ">threshold 38/η (preconditioned)<"));
    assert_non_null(strstr(svg, ">step<"));
    assert_non_null(strstr(svg, "not shown: 1 value above 1.5× the largest threshold"));
    assert_false(has_nonfinite(svg));
    free(svg);

    /* Gradient descent: plain sharpness and its threshold only, a log axis. */
    svg_path = path_in(f, "gd.svg");
    png_path = path_in(f, "gd.png");
    if (tp_report_sharpness(db, gd, svg_path, png_path, err, sizeof err) != 0)
        fail_msg("tp_report_sharpness: %s", err);
    check_png(png_path);
    svg = check_svg(svg_path);
    assert_non_null(strstr(svg, "Sharpness of trial 2: fmnist_mlp, sgd"));
    assert_non_null(strstr(svg, ">sharpness<"));
    assert_non_null(strstr(svg, ">threshold 2/η<"));
    assert_null(strstr(svg, "preconditioned"));
    assert_null(strstr(svg, "not shown"));
    free(svg);

    /* Either file alone. */
    assert_int_equal(tp_report_sharpness(db, gd, path_in(f, "only.svg"), NULL, err, sizeof err), 0);
    assert_int_equal(tp_report_sharpness(db, gd, NULL, path_in(f, "only.png"), err, sizeof err), 0);
    free(check_svg(path_in(f, "only.svg")));
    check_png(path_in(f, "only.png"));
    tp_results_close(db);
}

/* NaN where nothing was measured: no threshold known (an optimizer without one), a
 * preconditioned value only from the second measurement on, a measurement that failed. */
static void test_sharpness_nan(void **state)
{
    fixture *f = *state;
    tp_results *db = NULL;
    if (tp_results_open(path_in(f, "results"), &db, err, sizeof err) != 0)
        fail_msg("open: %s", err);
    tp_sharpness_row rows[5];
    const double pre[] = {NAN, 300, NAN, 280, 290}, plain[] = {3, 4, NAN, 5, 6};
    for (size_t i = 0; i < 5; i++)
        rows[i] = (tp_sharpness_row){.step = 7 * i,
                                     .loss = NAN,
                                     .sharpness = plain[i],
                                     .precond_sharpness = pre[i],
                                     .threshold = NAN,
                                     .lr = NAN,
                                     .iters = 10,
                                     .seconds = 0.1};
    int64_t id = add_sharp_trial(db, "mnist_cnn", "lamb", rows, 5);
    const char *svg_path = path_in(f, "nan.svg"), *png_path = path_in(f, "nan.png");
    if (tp_report_sharpness(db, id, svg_path, png_path, err, sizeof err) != 0)
        fail_msg("tp_report_sharpness: %s", err);
    check_png(png_path);
    char *svg = check_svg(svg_path);
    assert_non_null(strstr(svg, ">preconditioned sharpness<"));
    assert_non_null(strstr(svg, ">sharpness<"));
    assert_null(strstr(svg, "threshold"));
    assert_false(has_nonfinite(svg));
    free(svg);

    /* A single measurement with a value. */
    tp_sharpness_row one = {.step = 0,
                            .sharpness = 12.0,
                            .precond_sharpness = NAN,
                            .threshold = NAN,
                            .lr = NAN,
                            .loss = 1.0};
    id = add_sharp_trial(db, "mnist_cnn", "sgd", &one, 1);
    assert_int_equal(tp_report_sharpness(db, id, path_in(f, "one.svg"), NULL, err, sizeof err), 0);
    svg = read_all(path_in(f, "one.svg"), NULL);
    assert_non_null(strstr(svg, ">sharpness<"));
    free(svg);

    /* Rows without any measured value: nothing to draw, and no file. */
    tp_sharpness_row none = {.step = 0,
                             .loss = NAN,
                             .sharpness = NAN,
                             .precond_sharpness = NAN,
                             .threshold = 40.0,
                             .threshold_kind = 1,
                             .lr = 0.05};
    id = add_sharp_trial(db, "mnist_cnn", "sgd", &none, 1);
    assert_int_equal(tp_report_sharpness(db, id, path_in(f, "none.svg"), NULL, err, sizeof err),
                     TP_ENOENT);
    assert_non_null(strstr(err, "no measured value"));
    assert_false(exists(path_in(f, "none.svg")));
    tp_results_close(db);
}

static void test_sharpness_errors(void **state)
{
    fixture *f = *state;
    tp_results *db = make_db(f); /* trials without measurements */
    int64_t gd = add_gd_trial(db);
    const char *svg_path = path_in(f, "s.svg");

    assert_int_equal(tp_report_sharpness(db, 1, svg_path, NULL, err, sizeof err), TP_ENOENT);
    assert_non_null(strstr(err, "trial 1 has no sharpness measurements"));
    assert_non_null(strstr(err, "--sharpness-every"));
    assert_false(exists(svg_path));
    assert_int_equal(tp_report_sharpness(db, 999, svg_path, NULL, err, sizeof err), TP_ENOENT);
    assert_non_null(strstr(err, "no trial 999"));
    assert_int_equal(tp_report_sharpness(db, gd, NULL, NULL, err, sizeof err), TP_EINVAL);
    assert_int_equal(tp_report_sharpness(NULL, gd, svg_path, NULL, err, sizeof err), TP_EINVAL);
    const char *bad = "/nonexistent_tp_dir/sub/sharpness.png";
    assert_int_equal(tp_report_sharpness(db, gd, NULL, bad, err, sizeof err), TP_EIO);
    assert_non_null(strstr(err, bad));
    assert_false(exists(svg_path));
    tp_results_close(db);
}

static void test_html_dynamics(void **state)
{
    fixture *f = *state;
    tp_results *db = make_db(f); /* trials 1-5 without measurements */
    int64_t adam = add_adam_trial(db), gd = add_gd_trial(db);
    add_sharp_trial(db, "fmnist_mlp", "momentum", NULL, 0);
    assert_int_equal(adam, 6);
    assert_int_equal(gd, 7);
    const char *out = path_in(f, "dynamics.html");

    if (tp_report_html(db, NULL, out, err, sizeof err) != 0)
        fail_msg("tp_report_html: %s", err);
    char *html = read_all(out, NULL);
    check_html_common(html);
    assert_int_equal(count(html, "Training dynamics</h2>"), 1);
    assert_int_equal(count(html, "<svg"), 4); /* two workloads' curves, two sharpness plots */
    assert_non_null(strstr(html, "<h3>Trial 6: fmnist_mlp, adamw</h3>"));
    assert_non_null(strstr(html, "<h3>Trial 7: fmnist_mlp, sgd</h3>"));
    assert_null(strstr(html, "<h3>Trial 8:"));
    assert_non_null(strstr(html, "aria-label=\"sharpness of trial 6\""));
    assert_non_null(strstr(html, "threshold 38/η (preconditioned)"));
    /* The 2e6 right after the first update is a transient above 1.5x, not the reach. */
    assert_non_null(strstr(html, "10 measurements (steps 0&#x2013;70); preconditioned sharpness "
                                 "reached 0.95&#xD7; its threshold at step 30, then median "
                                 "<strong>1.005&#xD7;</strong> (range 0.961&#x2013;1.053&#xD7; "
                                 "over 5 measurements)"));
    assert_non_null(strstr(html, "10 measurements (steps 0&#x2013;90); sharpness reached "
                                 "0.95&#xD7; its threshold at step 30, then median "
                                 "<strong>1.000&#xD7;</strong> (range 0.950&#x2013;1.050&#xD7; "
                                 "over 7 measurements). One measurement: median 0.50 s, 20 "
                                 "Hessian-vector products."));
    assert_null(strstr(html, "Showing the first"));
    /* In the page's order: curves, training dynamics, trials. */
    assert_true(strstr(html, "id=\"curves\"") < strstr(html, "id=\"dynamics\""));
    assert_true(strstr(html, "id=\"dynamics\"") < strstr(html, "id=\"trials\""));
    free(html);
    tp_results_close(db);
}

/* More trials with measurements than the report shows: the first 24, and a note. */
static void test_html_dynamics_capped(void **state)
{
    fixture *f = *state;
    tp_results *db = NULL;
    if (tp_results_open(path_in(f, "results"), &db, err, sizeof err) != 0)
        fail_msg("open: %s", err);
    tp_sharpness_row rows[2] = {
        {.step = 0, .sharpness = 10, .precond_sharpness = NAN, .threshold = NAN, .lr = NAN},
        {.step = 10,
         .sharpness = 20,
         .precond_sharpness = NAN,
         .threshold = 40,
         .threshold_kind = 1,
         .lr = 0.05}};
    for (int i = 0; i < 26; i++)
        add_sharp_trial(db, "fmnist_mlp", "sgd", rows, 2);
    const char *out = path_in(f, "capped.html");
    if (tp_report_html(db, NULL, out, err, sizeof err) != 0)
        fail_msg("tp_report_html: %s", err);
    char *html = read_all(out, NULL);
    check_html_common(html);
    assert_non_null(strstr(html, "Showing the first 24 of the 26 trials with sharpness "
                                 "measurements"));
    assert_int_equal(count(html, "aria-label=\"sharpness of trial "), 24);
    assert_non_null(strstr(html, "aria-label=\"sharpness of trial 24\""));
    assert_null(strstr(html, "aria-label=\"sharpness of trial 25\""));
    assert_non_null(strstr(html, "sharpness never reached 0.95&#xD7; its threshold"));
    free(html);
    tp_results_close(db);
}

/* ---------------------------------------------------------------------------------------- */
/* Missing or broken PLplot drivers, each in a fresh process (PLplot reads its driver directory
 * once per process). The child's stdin is /dev/null and its stdout must stay empty: PLplot
 * prompts there when it does not know a device. */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* In the child: the exit code says what failed (0: everything as expected). */
static int child_main(const char *scenario, const char *dir)
{
    tp_score_table t = score_table();
    char svg[256], png[256], e[1024] = "";
    snprintf(svg, sizeof svg, "%s/child.svg", dir);
    snprintf(png, sizeof png, "%s/child.png", dir);
    for (int round = 0; round < 2; round++) {
        if (strcmp(scenario, "png") == 0) {
            int rc = tp_report_profile(&t, NULL, png, e, sizeof e);
            fprintf(stderr, "child %s: %d %s\n", scenario, rc, e);
            if (rc != TP_ENOTSUP)
                return 10;
            if (strstr(e, "pngcairo") == NULL || strstr(e, "plplot-driver-cairo") == NULL)
                return 11;
        } else {
            int rc = tp_report_profile(&t, svg, NULL, e, sizeof e);
            fprintf(stderr, "child %s: %d %s\n", scenario, rc, e);
            if (rc != TP_ENOTSUP)
                return 20;
            if (strstr(e, "driver") == NULL || strstr(e, "\"svg\"") == NULL)
                return 21;
        }
        if (access(svg, F_OK) == 0 || access(png, F_OK) == 0)
            return 30;
    }
    return 0;
}

static void run_child(const fixture *f, const char *scenario, const char *drv_dir)
{
    const char *out_path = path_in(f, "child.stdout");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0)
            _exit(126);
        setenv("PLPLOT_DRV_DIR", drv_dir, 1);
        execl(self_exe, self_exe, "--child", scenario, f->dir, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("scenario %s: child exited with %d", scenario, WEXITSTATUS(status));
    char *out = read_all(out_path, NULL);
    if (out[0] != '\0')
        fail_msg("scenario %s: PLplot wrote to stdout: %.200s", scenario, out);
    free(out);
}

static void test_missing_drivers(void **state)
{
    fixture *f = *state;

    /* No drivers at all: PLplot calls plexit() while reading the driver list. */
    const char *none = path_in(f, "drivers_none");
    assert_int_equal(mkdir(none, 0755), 0);
    run_child(f, "svg", none);

    /* Devices listed, module not loadable (svg), or not listed at all (pngcairo). */
    const char *broken = path_in(f, "drivers_broken");
    char p[300];
    assert_int_equal(mkdir(broken, 0755), 0);
    snprintf(p, sizeof p, "%s/svg.driver_info", broken);
    write_text(p, "svg:Scalable Vector Graphics (SVG 1.1):1:svg:57:svg\n");
    snprintf(p, sizeof p, "%s/svg.so", broken);
    write_text(p, "not a shared object\n");
    run_child(f, "svg", broken);
    run_child(f, "png", broken);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2], argv[3]);
    static char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    self_exe = n > 0 ? exe : argv[0];

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_profile_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profile_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profile_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_html_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_html_no_score, setup, teardown),
        cmocka_unit_test_setup_teardown(test_html_empty_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_html_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sharpness_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sharpness_nan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sharpness_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_html_dynamics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_html_dynamics_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_drivers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
