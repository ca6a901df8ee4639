/*
 * test_baselines.c - unit tests of the baseline submissions (submissions/: sgd, adamw,
 * schedules, next_batch) and of the minimal example (examples/minimal_submission/my_sgd.c).
 *
 * Each plugin .so is dlopen()ed directly and driven through a mock tp_host
 * (test_baselines_host.c) on a separable quadratic, L = 0.5 sum_i a_i (theta_i - c_i)^2.
 * The optimizers are checked step by step against update rules written here, independently
 * of the plugins, in double precision: before each step the test computes the gradient the
 * mock will hand out (from the plugin's float parameters), advances its own double-precision
 * optimizer state with it, and compares the plugin's new parameters with the reference's
 * within a stated tolerance, printing the largest difference seen.
 *
 * Not here: the real loader's checks (tests of core/plugin.c), real workloads.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "baselines_checks.h"

/* ---------------------------------------------------------------------------------------- */
/* The plugins under test */

enum { LIB_SGD, LIB_ADAMW, LIB_SCHEDULES, LIB_NEXT_BATCH, LIB_EXAMPLE, NUM_LIBS };

static const char *const lib_paths[NUM_LIBS] = {
    TP_TEST_PLUGIN_DIR "/sgd.so",
    TP_TEST_PLUGIN_DIR "/adamw.so",
    TP_TEST_PLUGIN_DIR "/schedules.so",
    TP_TEST_PLUGIN_DIR "/next_batch.so",
    TP_TEST_BINARY_DIR "/examples/example_minimal.so",
};

static tb_lib libs[NUM_LIBS];

static int group_setup(void **unused)
{
    return tb_libs_open(libs, lib_paths, NUM_LIBS);
}

static int group_teardown(void **unused)
{
    tb_libs_close(libs, NUM_LIBS);
    return 0;
}

static const tp_plugin_desc *find(int lib, const char *id)
{
    return tb_find(libs, lib_paths, lib, id);
}

/* ---------------------------------------------------------------------------------------- */
/* Descriptors */

static int valid_name(const char *s, const char *extra)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              (extra != NULL && strchr(extra, *s) != NULL)))
            return 0;
    return 1;
}

static void test_descriptors(void **unused)
{
    static const char *const expected[NUM_LIBS][4] = {
        {"sgd"},
        {"adamw"},
        {"constant", "warmup_cosine", "warmup_linear", "inverse_sqrt"},
        {"next_batch"},
        {"my_sgd"}};
    const char *seen[32];
    uint32_t num_seen = 0;

    for (int k = 0; k < NUM_LIBS; k++) {
        uint32_t i = 0;
        for (;; i++) {
            const tp_plugin_desc *d = libs[k].entry(i);
            assert_true(i < 16);
            if (d == NULL)
                break;
            /* Discovery has no side effects: asking again gives the same descriptor. */
            assert_ptr_equal(d, libs[k].entry(i));
            assert_int_equal(d->struct_size, sizeof(tp_plugin_desc));
            assert_int_equal(d->sdk_version, TP_SDK_VERSION);
            assert_true(valid_name(d->id, ".-"));
            assert_non_null(expected[k][i]);
            assert_string_equal(d->id, expected[k][i]);
            for (uint32_t j = 0; j < num_seen; j++)
                if (strcmp(seen[j], d->id) == 0)
                    fail_msg("plugin id \"%s\" is not unique", d->id);
            seen[num_seen++] = d->id;

            /* Entry points: the required ones are there, those of other kinds are NULL. */
            switch (d->kind) {
            case TP_PLUGIN_OPTIMIZER:
                assert_non_null(d->init);
                assert_non_null(d->update);
                assert_null(d->lr_factor);
                assert_null(d->select_batch);
                break;
            case TP_PLUGIN_SCHEDULE:
                assert_non_null(d->lr_factor);
                assert_null(d->get_batch_size);
                assert_null(d->update);
                assert_null(d->prepare_for_eval);
                assert_null(d->precondition);
                assert_null(d->select_batch);
                break;
            case TP_PLUGIN_DATA_SELECTION:
                assert_non_null(d->select_batch);
                assert_null(d->get_batch_size);
                assert_null(d->update);
                assert_null(d->prepare_for_eval);
                assert_null(d->precondition);
                assert_null(d->lr_factor);
                break;
            default:
                fail_msg("plugin \"%s\": unknown kind %d", d->id, (int)d->kind);
            }
            /* Whoever allocates in init frees in destroy. */
            if (d->init != NULL)
                assert_non_null(d->destroy);

            /* Hyperparameter declarations. */
            if (d->num_hparams > 0) {
                assert_non_null(d->hparams);
                assert_int_equal(d->hparams[0].struct_size, sizeof(tp_hparam_decl));
            }
            for (uint32_t h = 0; h < d->num_hparams; h++) {
                const tp_hparam_decl *p = hparam_at(d, h);
                assert_int_equal(p->struct_size, sizeof(tp_hparam_decl));
                assert_int_equal(p->sdk_version, TP_SDK_VERSION);
                assert_true(valid_name(p->name, NULL));
                assert_true(p->type == TP_HPARAM_FLOAT || p->type == TP_HPARAM_INT);
                assert_true(p->min_value <= p->default_value);
                assert_true(p->default_value <= p->max_value);
                for (uint32_t h2 = 0; h2 < h; h2++)
                    assert_string_not_equal(hparam_at(d, h2)->name, p->name);
            }
        }
        /* As many descriptors as expected. */
        assert_true(i == 4 || expected[k][i] == NULL);
    }
    assert_int_equal(num_seen, 8);
}

static void test_hparam_defaults(void **unused)
{
    const tp_plugin_desc *sgd = find(LIB_SGD, "sgd");
    assert_int_equal(sgd->num_hparams, 4);
    check_default(sgd, "learning_rate", 0.1);
    check_default(sgd, "weight_decay", 0.0);
    check_default(sgd, "label_smoothing", 0.0);
    check_default(sgd, "dropout_rate", 0.0);

    const tp_plugin_desc *adamw = find(LIB_ADAMW, "adamw");
    assert_int_equal(adamw->num_hparams, 7);
    check_default(adamw, "learning_rate", 1e-3);
    check_default(adamw, "one_minus_beta1", 0.1);
    check_default(adamw, "beta2", 0.999);
    check_default(adamw, "weight_decay", 0.0);
    check_default(adamw, "epsilon", 1e-8);
    check_default(adamw, "label_smoothing", 0.0);
    check_default(adamw, "dropout_rate", 0.0);

    assert_int_equal(find(LIB_SCHEDULES, "constant")->num_hparams, 0);
    const tp_plugin_desc *wc = find(LIB_SCHEDULES, "warmup_cosine");
    assert_int_equal(wc->num_hparams, 2);
    check_default(wc, "warmup_factor", 0.05);
    check_default(wc, "step_hint_factor", 1.0);
    const tp_plugin_desc *wl = find(LIB_SCHEDULES, "warmup_linear");
    assert_int_equal(wl->num_hparams, 4);
    check_default(wl, "warmup_factor", 0.05);
    check_default(wl, "end_factor", 0.001);
    check_default(wl, "decay_steps_factor", 0.9);
    check_default(wl, "step_hint_factor", 1.0);
    const tp_plugin_desc *is = find(LIB_SCHEDULES, "inverse_sqrt");
    assert_int_equal(is->num_hparams, 1);
    check_default(is, "warmup_factor", 0.05);
    assert_int_equal(find(LIB_NEXT_BATCH, "next_batch")->num_hparams, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* SGD */

static void run_sgd(double lr, double wd, double ls, double dropout, int set_hparams, int steps)
{
    const tp_plugin_desc *d = find(LIB_SGD, "sgd");
    tp_ctx ctx;
    mock_ctx_init(&ctx, 10);
    ctx.desc = d;
    if (set_hparams) {
        mock_set_hparam(&ctx, "learning_rate", lr);
        mock_set_hparam(&ctx, "weight_decay", wd);
        mock_set_hparam(&ctx, "label_smoothing", ls);
        mock_set_hparam(&ctx, "dropout_rate", dropout);
    }
    void *state = NULL;
    tp_error err;
    TP_STRUCT_INIT(&err, tp_error);
    err.message[0] = '\0';
    assert_int_equal(d->init(mock_host(), &ctx, &state, &err), TP_OK);
    assert_int_equal(ctx.hparam_unknown, 0);

    double max_err = 0.0;
    for (int s = 0; s < steps; s++) {
        step_io io;
        double f = test_factor((uint64_t)s), want[10];
        step_io_init(&io, (uint64_t)s, f);
        /* Reference: theta -= lr_t (g + wd theta), in double from the same start. */
        for (uint64_t i = 0; i < ctx.n; i++) {
            double th = ctx.params[i], g = mock_grad(&ctx, i);
            want[i] = th - lr * f * (g + wd * th);
        }
        assert_int_equal(d->update(state, mock_host(), &ctx, &io.args, &io.err), TP_OK);
        for (uint64_t i = 0; i < ctx.n; i++)
            max_err = fmax(max_err, mixed_err(ctx.params[i], want[i]));
        /* The loss was asked of this step's batch at the current parameters, with the opts. */
        assert_ptr_equal(ctx.last_batch, &io.batch);
        assert_null(ctx.last_params_arg);
        assert_false(ctx.last_opts_null);
        assert_true(ctx.last_opts.label_smoothing == (float)ls);
        assert_true(ctx.last_opts.dropout_rate == (float)dropout);
        assert_int_equal(ctx.last_opts.flags, 0);
        assert_int_equal(ctx.last_opts.struct_size, sizeof(tp_loss_opts));
    }
    print_message("sgd lr=%g wd=%g: %d steps, max mixed error %.3g (tolerance %.0e)\n", lr, wd,
                  steps, max_err, OPT_TOL);
    assert_true(max_err <= OPT_TOL);
    assert_int_equal(ctx.grad_calls, steps);

    d->destroy(state, mock_host(), &ctx);
    assert_int_equal(ctx.outstanding, 0);
    assert_int_equal(ctx.bad_frees, 0);
    mock_ctx_free(&ctx);
}

static void test_sgd_matches_reference(void **unused)
{
    run_sgd(0.3, 0.05, 0.1, 0.2, 1, 40);
}

static void test_sgd_defaults(void **unused)
{
    run_sgd(0.1, 0.0, 0.0, 0.0, 0, 10);
}

/* ---------------------------------------------------------------------------------------- */
/* AdamW */

typedef struct adamw_ref {
    double lr, b1, b2, wd, eps;
    uint64_t t;
    double m[10], v[10];
} adamw_ref;

/* P^{-1/2} x with P = (1 - b1^t) (sqrt(v / (1 - b2^t)) + eps), the definition of
 * BENCHMARK.md section 9. */
static double ref_precond(const adamw_ref *r, uint64_t i, double x)
{
    double bc1 = 1.0 - pow(r->b1, (double)r->t), bc2 = 1.0 - pow(r->b2, (double)r->t);
    double p = bc1 * (sqrt(r->v[i] / bc2) + r->eps);
    return x / sqrt(p);
}

static void run_adamw(const adamw_ref *hp, int set_hparams, int steps)
{
    const tp_plugin_desc *d = find(LIB_ADAMW, "adamw");
    tp_ctx ctx;
    mock_ctx_init(&ctx, 10);
    ctx.desc = d;
    if (set_hparams) {
        mock_set_hparam(&ctx, "learning_rate", hp->lr);
        mock_set_hparam(&ctx, "one_minus_beta1", 1.0 - hp->b1);
        mock_set_hparam(&ctx, "beta2", hp->b2);
        mock_set_hparam(&ctx, "weight_decay", hp->wd);
        mock_set_hparam(&ctx, "epsilon", hp->eps);
        mock_set_hparam(&ctx, "label_smoothing", 0.2);
    }
    adamw_ref r = *hp;
    r.t = 0;
    memset(r.m, 0, sizeof r.m);
    memset(r.v, 0, sizeof r.v);

    void *state = NULL;
    tp_error err;
    TP_STRUCT_INIT(&err, tp_error);
    err.message[0] = '\0';
    assert_int_equal(d->init(mock_host(), &ctx, &state, &err), TP_OK);
    assert_int_equal(ctx.hparam_unknown, 0);

    /* Before any update the preconditioner is undefined: TP_ESTATE with a message. */
    float x[10], out[10], out2[10];
    for (int i = 0; i < 10; i++)
        x[i] = (float)(1.0 + 0.3 * i - 0.07 * i * i);
    assert_int_equal(d->precondition(state, mock_host(), &ctx, x, out, &err), TP_ESTATE);
    assert_true(err.message[0] != '\0');

    double max_err = 0.0, max_perr = 0.0;
    for (int s = 0; s < steps; s++) {
        step_io io;
        double f = test_factor((uint64_t)s), want[10];
        step_io_init(&io, (uint64_t)s, f);
        /* Reference AdamW (PyTorch / optax form), in double, fed the gradient the mock gives. */
        r.t++;
        double bc1 = 1.0 - pow(r.b1, (double)r.t), bc2 = 1.0 - pow(r.b2, (double)r.t);
        for (uint64_t i = 0; i < ctx.n; i++) {
            double th = ctx.params[i], g = mock_grad(&ctx, i);
            r.m[i] = r.b1 * r.m[i] + (1.0 - r.b1) * g;
            r.v[i] = r.b2 * r.v[i] + (1.0 - r.b2) * g * g;
            double m_hat = r.m[i] / bc1, v_hat = r.v[i] / bc2;
            want[i] = th - r.lr * f * (m_hat / (sqrt(v_hat) + r.eps) + r.wd * th);
        }
        assert_int_equal(d->update(state, mock_host(), &ctx, &io.args, &io.err), TP_OK);
        for (uint64_t i = 0; i < ctx.n; i++)
            max_err = fmax(max_err, mixed_err(ctx.params[i], want[i]));
        assert_ptr_equal(ctx.last_batch, &io.batch);
        assert_null(ctx.last_params_arg);
        assert_true(ctx.last_opts.label_smoothing == (set_hparams ? 0.2f : 0.0f));

        /* The preconditioner after t updates, against P computed here from the same history;
         * it must not change the state (asking twice gives the same answer, and the next
         * steps still match the reference). */
        assert_int_equal(d->precondition(state, mock_host(), &ctx, x, out, &err), TP_OK);
        assert_int_equal(d->precondition(state, mock_host(), &ctx, x, out2, &err), TP_OK);
        assert_memory_equal(out, out2, sizeof out);
        for (uint64_t i = 0; i < ctx.n; i++) {
            double want_p = ref_precond(&r, i, x[i]);
            max_perr = fmax(max_perr, fabs(out[i] - want_p) / fabs(want_p));
        }
    }
    print_message("adamw lr=%g b1=%g b2=%g wd=%g: %d steps, max mixed error %.3g (tolerance "
                  "%.0e); precondition max relative error %.3g (tolerance 1e-5)\n",
                  r.lr, r.b1, r.b2, r.wd, steps, max_err, OPT_TOL, max_perr);
    assert_true(max_err <= OPT_TOL);
    assert_true(max_perr <= 1e-5);

    d->destroy(state, mock_host(), &ctx);
    assert_int_equal(ctx.outstanding, 0);
    assert_int_equal(ctx.bad_frees, 0);
    mock_ctx_free(&ctx);
}

static void test_adamw_matches_reference(void **unused)
{
    adamw_ref hp = {.lr = 0.02, .b1 = 0.9, .b2 = 0.99, .wd = 0.1, .eps = 1e-8};
    run_adamw(&hp, 1, 60);
    /* RMSProp corner (beta1 = 0) and a large epsilon: eps placement matters here. */
    adamw_ref hp2 = {.lr = 0.05, .b1 = 0.0, .b2 = 0.9, .wd = 0.0, .eps = 0.1};
    run_adamw(&hp2, 1, 30);
}

static void test_adamw_defaults(void **unused)
{
    adamw_ref hp = {.lr = 1e-3, .b1 = 0.9, .b2 = 0.999, .wd = 0.0, .eps = 1e-8};
    run_adamw(&hp, 0, 20);
}

/* ---------------------------------------------------------------------------------------- */
/* Failure paths common to the optimizers */

static const struct {
    int lib;
    const char *id;
} optimizers[] = {{LIB_SGD, "sgd"}, {LIB_ADAMW, "adamw"}, {LIB_EXAMPLE, "my_sgd"}};

static void test_init_out_of_memory(void **unused)
{
    for (size_t k = 0; k < sizeof optimizers / sizeof optimizers[0]; k++)
        check_init_out_of_memory(find(optimizers[k].lib, optimizers[k].id));
    check_init_out_of_memory(find(LIB_SCHEDULES, "warmup_cosine"));
}

static void test_update_passes_host_errors(void **unused)
{
    for (size_t k = 0; k < sizeof optimizers / sizeof optimizers[0]; k++)
        check_update_passes_host_errors(find(optimizers[k].lib, optimizers[k].id));
}

/* ---------------------------------------------------------------------------------------- */
/* Schedules */

static void test_schedule_constant(void **unused)
{
    const tp_plugin_desc *d = find(LIB_SCHEDULES, "constant");
    CHECK_SCHEDULE(d, 1000, -1.0, {0, 1.0}, {1, 1.0}, {999, 1.0}, {1000, 1.0}, {123456, 1.0});
}

static void test_schedule_warmup_cosine(void **unused)
{
    const tp_plugin_desc *d = find(LIB_SCHEDULES, "warmup_cosine");
    const double pi = 3.14159265358979323846;

    /* W = 100, D = 900: 0 at step 0, linear to 1 at W, cosine to 0 at step_hint, then 0. */
    CHECK_SCHEDULE(d, 1000, 0.1, {0, 0.0}, {1, 0.01}, {50, 0.5}, {99, 0.99}, {100, 1.0},
                   {101, 0.5 * (1.0 + cos(pi / 900.0))}, {325, 0.5 * (1.0 + cos(pi / 4.0))},
                   {550, 0.5}, {999, 0.5 * (1.0 + cos(pi * 899.0 / 900.0))}, {1000, 0.0},
                   {1001, 0.0}, {1000000, 0.0});
    /* The default warmup_factor 0.05: W = 50. */
    CHECK_SCHEDULE(d, 1000, -1.0, {0, 0.0}, {25, 0.5}, {50, 1.0}, {525, 0.5}, {1000, 0.0});
    /* warmup_factor 0: no warmup, the cosine starts at 1 on step 0. */
    CHECK_SCHEDULE(d, 1000, 0.0, {0, 1.0}, {1, 0.5 * (1.0 + cos(pi / 1000.0))}, {500, 0.5},
                   {1000, 0.0}, {2000, 0.0});
    /* W = floor(0.05 * 30) = 1 (truncated as the reference does), D = 29. */
    CHECK_SCHEDULE(d, 30, 0.05, {0, 0.0}, {1, 1.0}, {2, 0.5 * (1.0 + cos(pi / 29.0))}, {30, 0.0},
                   {31, 0.0});
    /* step_hint <= W (warmup_factor 1): warmup over W steps, 1 at W, then 0; no division by 0. */
    CHECK_SCHEDULE(d, 1000, 1.0, {0, 0.0}, {500, 0.5}, {999, 0.999}, {1000, 1.0}, {1001, 0.0},
                   {5000, 0.0});
    /* step_hint 0: W = 0, D = 1. */
    CHECK_SCHEDULE(d, 0, 0.05, {0, 1.0}, {1, 0.0}, {7, 0.0});
}

/* ---------------------------------------------------------------------------------------- */
/* Data selection */

static void test_next_batch(void **unused)
{
    const tp_plugin_desc *d = find(LIB_NEXT_BATCH, "next_batch");
    tp_ctx ctx;
    uint32_t idx[7];
    float weights[7];
    tp_batch batch;
    tp_error err;
    mock_ctx_init(&ctx, 10);
    ctx.desc = d;
    ctx.ts.train_size = 10;
    TP_STRUCT_INIT(&err, tp_error);
    assert_null(d->init);
    for (uint32_t call = 0; call < 3; call++) {
        TP_STRUCT_INIT(&batch, tp_batch);
        batch.size = 0;
        batch.capacity = 7;
        batch.idx = idx;
        batch.weights = weights; /* the host's buffer; the plugin sets NULL for unweighted */
        memset(idx, 0xff, sizeof idx);
        assert_int_equal(d->select_batch(NULL, mock_host(), &ctx, &batch, &err), TP_OK);
        assert_int_equal(batch.size, 7);
        assert_null(batch.weights);
        for (uint32_t j = 0; j < 7; j++)
            assert_int_equal(idx[j], (call * 7 + j) % 10); /* the stream, in order, wrapping */
    }
    assert_int_equal(ctx.next_index, 21);
    assert_int_equal(ctx.outstanding, 0);
    mock_ctx_free(&ctx);
}

/* ---------------------------------------------------------------------------------------- */
/* The minimal example */

static void test_example_minimal(void **unused)
{
    const tp_plugin_desc *d = find(LIB_EXAMPLE, "my_sgd");
    tp_ctx ctx;
    void *state = NULL;
    step_io io;
    mock_ctx_init(&ctx, 10);
    ctx.desc = d;
    step_io_init(&io, 0, 1.0);
    assert_int_equal(d->init(mock_host(), &ctx, &state, &io.err), TP_OK);
    assert_int_equal(ctx.hparam_unknown, 0);

    const double loss0 = mock_loss(&ctx);
    double loss10 = 0.0;
    for (int s = 0; s < 200; s++) {
        step_io_init(&io, (uint64_t)s, 1.0);
        assert_int_equal(d->update(state, mock_host(), &ctx, &io.args, &io.err), TP_OK);
        if (s == 9)
            loss10 = mock_loss(&ctx);
    }
    const double loss200 = mock_loss(&ctx);
    print_message("my_sgd (defaults): loss %.4g -> %.4g after 10 steps -> %.4g after 200\n", loss0,
                  loss10, loss200);
    assert_true(loss10 < loss0);
    assert_true(loss200 < 1e-3 * loss0);
    d->destroy(state, mock_host(), &ctx);
    assert_int_equal(ctx.outstanding, 0);
    mock_ctx_free(&ctx);
}

/* ---------------------------------------------------------------------------------------- */
/* Per-step overhead beyond the gradient (a measurement, printed; asserts only sanity) */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_overhead_1m(void **unused)
{
    enum { N = 1 << 20, RUNS = 7, STEPS = 10 };
    for (int k = 0; k < 3; k++) {
        const tp_plugin_desc *d = find(optimizers[k].lib, optimizers[k].id);
        tp_ctx ctx;
        void *state = NULL;
        step_io io;
        double us[RUNS];
        mock_ctx_init(&ctx, N);
        ctx.desc = d;
        ctx.freeze_grad = 1; /* the mock writes the gradient once; later calls cost nothing */
        step_io_init(&io, 0, 1.0);
        assert_int_equal(d->init(mock_host(), &ctx, &state, &io.err), TP_OK);
        assert_int_equal(d->update(state, mock_host(), &ctx, &io.args, &io.err), TP_OK);
        for (int r = 0; r < RUNS; r++) {
            double t0 = now_s();
            for (int s = 0; s < STEPS; s++)
                assert_int_equal(d->update(state, mock_host(), &ctx, &io.args, &io.err), TP_OK);
            us[r] = (now_s() - t0) / STEPS * 1e6 * (1e6 / N);
        }
        qsort(us, RUNS, sizeof us[0], cmp_double);
        print_message("%-6s update overhead: %.0f us per step per 1M params (median of %d runs "
                      "of %d steps; min %.0f, max %.0f)\n",
                      d->id, us[RUNS / 2], RUNS, STEPS, us[0], us[RUNS - 1]);
        for (uint64_t i = 0; i < ctx.n; i++)
            if (!isfinite(ctx.params[i]))
                fail_msg("%s: parameter %llu is not finite", d->id, (unsigned long long)i);
        d->destroy(state, mock_host(), &ctx);
        assert_int_equal(ctx.outstanding, 0);
        mock_ctx_free(&ctx);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptors),
        cmocka_unit_test(test_hparam_defaults),
        cmocka_unit_test(test_sgd_matches_reference),
        cmocka_unit_test(test_sgd_defaults),
        cmocka_unit_test(test_adamw_matches_reference),
        cmocka_unit_test(test_adamw_defaults),
        cmocka_unit_test(test_init_out_of_memory),
        cmocka_unit_test(test_update_passes_host_errors),
        cmocka_unit_test(test_schedule_constant),
        cmocka_unit_test(test_schedule_warmup_cosine),
        cmocka_unit_test(test_next_batch),
        cmocka_unit_test(test_example_minimal),
        cmocka_unit_test(test_overhead_1m),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
