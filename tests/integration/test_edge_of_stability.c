/*
 * test_edge_of_stability.c - the fast version of examples/edge_of_stability/: `trainperf
 * sharpness` through the real binaries and plugins, full-batch training of a small tanh MLP
 * with MSE loss on a few hundred Fashion-MNIST images standardised per pixel, and the
 * measured series read back from the results database:
 *
 *   - gradient descent: sharpness rises or falls to 2/eta and hovers there;
 *   - Adam (adamw without decay): preconditioned sharpness rises to 38/eta and hovers, while
 *     plain sharpness stays far below 2/eta;
 *
 * with looser bounds than the experiment's (median after first reaching 0.95x within
 * 0.80-1.25x). Also: the first measurement (step 0) has no preconditioned value, the
 * threshold follows the step size, the plot files are written, and measuring does not change
 * the training (a run without measurements has the same evals bit for bit).
 */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
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

#include <trainperf/trainperf.h>

#include "core/results.h"
#include "core/sharpness.h"

#define CFG   TP_TEST_SOURCE_DIR "/examples/edge_of_stability/fmnist_eos.cfg"
#define SMALL "--set", "data.train_limit=300", "--set", "model.hidden_width=64"

static char tmpdir[256];

typedef struct series {
    size_t n;
    tp_sharpness_row r[256];
} series;

static int collect(const tp_sharpness_row *m, void *ud)
{
    series *s = ud;
    if (s->n < 256)
        s->r[s->n++] = *m;
    return 0;
}

static int collect_eval(const tp_eval_row *e, void *ud)
{
    series *s = ud; /* reused as storage: loss in .loss, metric in .sharpness */
    if (s->n < 256) {
        s->r[s->n].step = e->global_step;
        s->r[s->n].loss = e->validation_loss;
        s->r[s->n].sharpness = e->validation_metric;
        s->n++;
    }
    return 0;
}

static int last_trial(const tp_trial_summary *t, void *ud)
{
    *(int64_t *)ud = t->id;
    return 0;
}

/* `trainperf CMD ARGS...` into results dir `name`; the newest trial's id. */
static int64_t run(const char *cmd, const char *name, const char *const *args)
{
    char results[512], out[600];
    snprintf(results, sizeof results, "%s/%s", tmpdir, name);
    snprintf(out, sizeof out, "%s/%s.txt", tmpdir, name);
    const char *argv[48];
    int n = 0;
    argv[n++] = cmd;
    for (int i = 0; args[i]; i++)
        argv[n++] = args[i];
    const char *tail[] = {"--workload-config", CFG,     "--plugins", TP_TEST_PLUGIN_DIR,
                          "--results",         results, "--clock",   "steps",
                          "--quiet",           SMALL,   NULL};
    for (int i = 0; tail[i]; i++)
        argv[n++] = tail[i];
    argv[n] = NULL;
    int rc = tp_test_trainperf(out, argv);
    if (rc != 0)
        tp_test_show_file(out);
    assert_int_equal(rc, 0);
    tp_results *db;
    char err[512];
    assert_int_equal(tp_results_open(results, &db, err, sizeof err), 0);
    int64_t id = 0;
    assert_int_equal(tp_results_foreach_trial(db, NULL, 0, last_trial, &id, err, sizeof err), 0);
    tp_results_close(db);
    return id;
}

static void read_series(const char *name, int64_t id, series *s, int evals)
{
    char results[512], err[512];
    snprintf(results, sizeof results, "%s/%s", tmpdir, name);
    tp_results *db;
    assert_int_equal(tp_results_open(results, &db, err, sizeof err), 0);
    memset(s, 0, sizeof *s);
    int rc = evals ? tp_results_foreach_eval(db, id, collect_eval, s, err, sizeof err)
                   : tp_results_foreach_sharpness(db, id, collect, s, err, sizeof err);
    assert_int_equal(rc, 0);
    tp_results_close(db);
}

/* The pass rule with the test's bounds; prints the figures. */
static void check_hovers(const series *s, int preconditioned, double want_threshold)
{
    double v[256], t[256], sec[256];
    uint64_t steps[256];
    uint32_t it[256];
    for (size_t i = 0; i < s->n; i++) {
        v[i] = preconditioned ? s->r[i].precond_sharpness : s->r[i].sharpness;
        t[i] = s->r[i].threshold;
        steps[i] = s->r[i].step;
        sec[i] = s->r[i].seconds;
        it[i] = s->r[i].iters;
    }
    tp_sharpness_summary sum;
    tp_sharpness_summarize(v, t, steps, sec, it, s->n, &sum);
    printf("# %zu measurements, threshold %.6g; reached 0.95x at step %llu; median %.3fx "
           "(%.3f-%.3f over %u); one measurement %.3f s, %.0f products\n",
           s->n, t[s->n - 1], (unsigned long long)sum.reach_step, sum.median_ratio, sum.min_ratio,
           sum.max_ratio, sum.after, sum.median_seconds, sum.median_iters);
    assert_float_equal(t[s->n - 1], want_threshold, 1e-6 * want_threshold);
    assert_int_not_equal(sum.first_reach, -1);
    assert_true(sum.after >= 5);
    assert_true(sum.median_ratio >= 0.80 && sum.median_ratio <= 1.25);
}

static void test_gradient_descent(void **state)
{
    (void)state;
    const char *args[] = {"--optimizer",        "sgd",         "--hparams",
                          "learning_rate=0.05", "--max-steps", "300",
                          "--sharpness-every",  "10",          NULL};
    int64_t id = run("sharpness", "gd", args);
    series s;
    read_series("gd", id, &s, 0);
    assert_int_equal(s.n, 31); /* steps 0, 10, ..., 300 */
    assert_int_equal(s.r[0].step, 0);
    assert_true(isnan(s.r[0].threshold)); /* no update taken yet: no step size */
    assert_int_equal(s.r[1].threshold_kind, 1);
    for (size_t i = 0; i < s.n; i++)
        assert_true(isnan(s.r[i].precond_sharpness)); /* sgd has no preconditioner */
    check_hovers(&s, 0, 40.0);

    char plot[600];
    struct stat st;
    snprintf(plot, sizeof plot, "%s/gd/sharpness_trial_%lld.svg", tmpdir, (long long)id);
    assert_int_equal(stat(plot, &st), 0);
    assert_true(st.st_size > 1000);
    snprintf(plot, sizeof plot, "%s/gd/sharpness_trial_%lld.png", tmpdir, (long long)id);
    assert_int_equal(stat(plot, &st), 0);

    /* The same run without measurements: the same evals, bit for bit. */
    const char *plain[] = {"--optimizer", "sgd", "--hparams", "learning_rate=0.05",
                           "--max-steps", "300", NULL};
    int64_t id2 = run("run", "gd_plain", plain);
    series a, b;
    read_series("gd", id, &a, 1);
    read_series("gd_plain", id2, &b, 1);
    assert_int_equal(a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        assert_int_equal(a.r[i].step, b.r[i].step);
        assert_true(a.r[i].loss == b.r[i].loss);
    }
}

static void test_adam(void **state)
{
    (void)state;
    const char *args[] = {"--optimizer",
                          "adamw",
                          "--hparams",
                          "learning_rate=4e-4,one_minus_beta1=0.1,beta2=0.99,epsilon=1e-7,"
                          "weight_decay=0",
                          "--max-steps",
                          "1000",
                          "--sharpness-every",
                          "20",
                          NULL};
    int64_t id = run("sharpness", "adam", args);
    series s;
    read_series("adam", id, &s, 0);
    assert_int_equal(s.n, 51);
    assert_true(isnan(s.r[0].precond_sharpness)); /* before the first update */
    assert_false(isnan(s.r[1].precond_sharpness));
    assert_int_equal(s.r[1].threshold_kind, 2);
    check_hovers(&s, 1, 38.0 / 4e-4);
    /* Plain sharpness stays far below GD's 2/eta: only the preconditioned one is held. */
    assert_true(s.r[s.n - 1].sharpness < 0.05 * 2.0 / 4e-4);
}

static int setup(void **state)
{
    (void)state;
    return tp_test_tmpdir(tmpdir, sizeof tmpdir, "eos");
}

static int teardown(void **state)
{
    (void)state;
    return tp_test_tmpdir_remove(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient_descent),
        cmocka_unit_test(test_adam),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
