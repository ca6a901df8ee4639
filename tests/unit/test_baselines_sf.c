/*
 * test_baselines_sf.c - unit tests of the schedules warmup_linear and inverse_sqrt (and
 * warmup_cosine's step_hint_factor), of Schedule-Free AdamW (submissions/schedule_free_adamw)
 * and of online batch selection (submissions/online_batch_selection), each .so dlopen()ed and
 * driven through the mock host of test_baselines_host.h.
 *
 *   - schedules: the factor at the boundary steps (0, W - 1, W, the end of the decay,
 *     step_hint, past it) and the degenerate cases, against values worked out here;
 *   - Schedule-Free AdamW against an independent double-precision reference written from the
 *     paper's update (not the plugin's code) for 40 steps, with prepare_for_eval in the middle:
 *     the evaluated buffer equals the reference's x and the later steps still match; the
 *     precondition hook against P computed here; a bit-for-bit comparison of a run with evals
 *     against one without (no drift from the y -> x -> y swap);
 *   - online batch selection on the mock's per-example loss table: exactly the highest-loss
 *     candidates, one per_example_loss call per step over candidate_factor x capacity examples,
 *     in eval mode, unweighted; ties and NaN; buffers grown for a larger capacity;
 *   - the failure paths (allocation failures in init, host errors in update / select_batch).
 * The search space and the self-tuning config are checked in test_baselines_spaces.c.
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

#include "baselines_checks.h"

/* ---------------------------------------------------------------------------------------- */
/* The plugins under test */

enum { LIB_SCHEDULES, LIB_SF, LIB_OBS, NUM_LIBS };

static const char *const lib_paths[NUM_LIBS] = {
    TP_TEST_PLUGIN_DIR "/schedules.so",
    TP_TEST_PLUGIN_DIR "/schedule_free_adamw.so",
    TP_TEST_PLUGIN_DIR "/online_batch_selection.so",
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

static void test_descriptors_sf(void **unused)
{
    const tp_plugin_desc *sf = find(LIB_SF, "schedule_free_adamw");
    assert_int_equal(sf->kind, TP_PLUGIN_OPTIMIZER);
    assert_non_null(sf->init);
    assert_non_null(sf->update);
    assert_non_null(sf->prepare_for_eval);
    assert_non_null(sf->precondition);
    assert_non_null(sf->destroy);
    assert_null(sf->lr_factor);
    assert_null(sf->select_batch);
    assert_null(libs[LIB_SF].entry(1));
    assert_int_equal(sf->num_hparams, 11);
    check_default(sf, "learning_rate", 0.0025);
    check_default(sf, "one_minus_beta1", 0.1);
    check_default(sf, "beta2", 0.999);
    check_default(sf, "weight_decay", 0.0);
    check_default(sf, "epsilon", 1e-8);
    check_default(sf, "warmup_factor", 0.02);
    check_default(sf, "step_hint_factor", 1.0);
    check_default(sf, "r", 0.0);
    check_default(sf, "weight_lr_power", 2.0);
    check_default(sf, "label_smoothing", 0.0);
    check_default(sf, "dropout_rate", 0.0);

    const tp_plugin_desc *obs = find(LIB_OBS, "online_batch_selection");
    assert_int_equal(obs->kind, TP_PLUGIN_DATA_SELECTION);
    assert_non_null(obs->select_batch);
    assert_non_null(obs->init);
    assert_non_null(obs->destroy);
    assert_null(obs->update);
    assert_null(obs->lr_factor);
    assert_null(obs->get_batch_size);
    assert_null(obs->prepare_for_eval);
    assert_null(obs->precondition);
    assert_null(libs[LIB_OBS].entry(1));
    assert_int_equal(obs->num_hparams, 2);
    check_default(obs, "candidate_factor", 2.0);
    check_default(obs, "label_smoothing", 0.0);

    const tp_plugin_desc *const both[] = {sf, obs};
    for (int k = 0; k < 2; k++)
        for (uint32_t h = 0; h < both[k]->num_hparams; h++) {
            const tp_hparam_decl *p = hparam_at(both[k], h);
            assert_int_equal(p->struct_size, sizeof(tp_hparam_decl));
            assert_int_equal(p->type, TP_HPARAM_FLOAT);
            assert_true(p->min_value <= p->default_value && p->default_value <= p->max_value);
        }
}

/* ---------------------------------------------------------------------------------------- */
/* Schedules */

/* check_schedule with the hparams that are >= 0 (warmup_factor, end_factor,
 * decay_steps_factor, step_hint_factor, in that order); the others keep their defaults. */
static void sched_cases(const tp_plugin_desc *d, uint64_t hint, double wf, double ef, double dsf,
                        double shf, const schedule_case *cases, size_t num_cases)
{
    static const char *const all[] = {"warmup_factor", "end_factor", "decay_steps_factor",
                                      "step_hint_factor"};
    const double in[] = {wf, ef, dsf, shf};
    const char *names[4];
    double values[4];
    size_t k = 0;
    for (size_t i = 0; i < 4; i++)
        if (in[i] >= 0.0) {
            names[k] = all[i];
            values[k++] = in[i];
        }
    check_schedule(d, hint, names, values, k, cases, num_cases);
}

#define SCHED(d, hint, wf, ef, dsf, shf, ...)                                                      \
    do {                                                                                           \
        const schedule_case cs_[] = {__VA_ARGS__};                                                 \
        sched_cases(d, hint, wf, ef, dsf, shf, cs_, sizeof cs_ / sizeof cs_[0]);                   \
    } while (0)

static void test_schedule_warmup_linear(void **unused)
{
    const tp_plugin_desc *d = find(LIB_SCHEDULES, "warmup_linear");

    /* W = 100, D = floor(0.9 * 900) = 810: 0 at step 0, linear to 1 at W, linear to e = 0.01
     * at W + D = 910 (the end of the decay, before step_hint), then 0.01 for ever. */
    SCHED(d, 1000, 0.1, 0.01, 0.9, -1.0, {0, 0.0}, {1, 0.01}, {50, 0.5}, {99, 0.99}, {100, 1.0},
          {101, 1.0 - 0.99 / 810.0}, {505, 0.505}, {909, 0.01 + 0.99 / 810.0}, {910, 0.01},
          {999, 0.01}, {1000, 0.01}, {1001, 0.01}, {1000000, 0.01});
    /* The defaults (warmup 0.05, end 0.001, decay 0.9): W = 50, D = floor(0.9 * 950) = 855. */
    SCHED(d, 1000, -1.0, -1.0, -1.0, -1.0, {0, 0.0}, {25, 0.5}, {49, 0.98}, {50, 1.0},
          {221, 1.0 - 0.999 * 0.2}, {904, 0.001 + 0.999 / 855.0}, {905, 0.001}, {1000, 0.001},
          {5000, 0.001});
    /* No warmup: the decay starts at 1 on step 0; D = 900. */
    SCHED(d, 1000, 0.0, 0.01, 0.9, -1.0, {0, 1.0}, {1, 1.0 - 0.99 / 900.0}, {450, 0.505},
          {899, 0.01 + 0.99 / 900.0}, {900, 0.01}, {1000, 0.01});
    /* step_hint 30: W = floor(1.5) = 1 (truncated), D = floor(0.9 * 29) = 26. */
    SCHED(d, 30, 0.05, 0.01, 0.9, -1.0, {0, 0.0}, {1, 1.0}, {2, 1.0 - 0.99 / 26.0},
          {26, 0.01 + 0.99 / 26.0}, {27, 0.01}, {30, 0.01}, {31, 0.01});
    /* decay_steps_factor 1 and end_factor 0: the decay ends exactly at step_hint. */
    SCHED(d, 1000, 0.1, 0.0, 1.0, -1.0, {100, 1.0}, {550, 0.5}, {999, 1.0 / 900.0}, {1000, 0.0},
          {1001, 0.0});
    /* D = 0 (optax: a polynomial schedule over no steps is constant at its start value, 1):
     * warmup_factor 1 (S <= W), decay_steps_factor 0, and step_hint 0. No division by zero. */
    SCHED(d, 1000, 1.0, 0.01, 0.9, -1.0, {0, 0.0}, {500, 0.5}, {999, 0.999}, {1000, 1.0},
          {1001, 1.0}, {100000, 1.0});
    SCHED(d, 1000, 0.1, 0.01, 0.0, -1.0, {99, 0.99}, {100, 1.0}, {5000, 1.0});
    SCHED(d, 0, 0.05, 0.01, 0.9, -1.0, {0, 1.0}, {1, 1.0}, {7, 1.0});
    /* step_hint_factor 0.75 (the self-tuning baselines' horizon): S = 750, W = 75,
     * D = floor(0.9 * 675) = 607, so the decay ends at step 682. */
    SCHED(d, 1000, 0.1, 0.01, 0.9, 0.75, {0, 0.0}, {74, 74.0 / 75.0}, {75, 1.0},
          {681, 0.01 + 0.99 / 607.0}, {682, 0.01}, {750, 0.01}, {1000, 0.01});
}

static void test_schedule_inverse_sqrt(void **unused)
{
    const tp_plugin_desc *d = find(LIB_SCHEDULES, "inverse_sqrt");
    /* W = 100: linear to 1 at W, then sqrt(W / step); continuous at W. */
    SCHED(d, 1000, 0.1, -1.0, -1.0, -1.0, {0, 0.0}, {1, 0.01}, {99, 0.99}, {100, 1.0},
          {101, sqrt(100.0 / 101.0)}, {400, 0.5}, {1000, sqrt(0.1)}, {10000, 0.1}, {1000000, 0.01});
    /* The default warmup_factor 0.05: W = 50. */
    SCHED(d, 1000, -1.0, -1.0, -1.0, -1.0, {0, 0.0}, {49, 0.98}, {50, 1.0}, {200, 0.5});
    /* W = 0 (no warmup, or step_hint 0): 1 / sqrt(step + 1), 1 at step 0. */
    SCHED(d, 1000, 0.0, -1.0, -1.0, -1.0, {0, 1.0}, {3, 0.5}, {99, 0.1}, {9999, 0.01});
    SCHED(d, 0, 0.05, -1.0, -1.0, -1.0, {0, 1.0}, {8, 1.0 / 3.0});
    /* W = floor(0.05 * 30) = 1: step 0 gives 0, step 1 gives 1, step 4 gives 1/2. */
    SCHED(d, 30, 0.05, -1.0, -1.0, -1.0, {0, 0.0}, {1, 1.0}, {4, 0.5});
}

static void test_schedule_warmup_cosine_step_hint_factor(void **unused)
{
    const tp_plugin_desc *d = find(LIB_SCHEDULES, "warmup_cosine");
    const double pi = 3.14159265358979323846;
    /* step_hint_factor 0.75: S = 750, W = floor(0.1 * 750) = 75, D = 675; 0 from 750 on. */
    SCHED(d, 1000, 0.1, -1.0, -1.0, 0.75, {0, 0.0}, {74, 74.0 / 75.0}, {75, 1.0},
          {76, 0.5 * (1.0 + cos(pi / 675.0))}, {749, 0.5 * (1.0 + cos(pi * 674.0 / 675.0))},
          {750, 0.0}, {1000, 0.0});
    /* A horizon that is not a whole number, as optax takes it: S = 750.75, W = 75,
     * D = 675.75, so step 750 is still in the decay and 751 past it. */
    SCHED(d, 1001, 0.1, -1.0, -1.0, 0.75, {75, 1.0}, {750, 0.5 * (1.0 + cos(pi * 675.0 / 675.75))},
          {751, 0.0});
    /* step_hint_factor 1 is the plain schedule (W = 100, D = 900). */
    SCHED(d, 1000, 0.1, -1.0, -1.0, 1.0, {100, 1.0}, {550, 0.5}, {1000, 0.0});
}

/* ---------------------------------------------------------------------------------------- */
/* Schedule-Free AdamW */

typedef struct sf_ref {
    /* hyperparameters */
    double lr, b1, b2, wd, eps, wf, shf, r, p;
    /* state, in double */
    uint64_t t, warmup;
    double lr_max, wsum;
    double z[10], x[10], v[10];
} sf_ref;

/* y = (1 - b1) z + b1 x. */
static double sf_ref_y(const sf_ref *r, uint64_t i)
{
    return (1.0 - r->b1) * r->z[i] + r->b1 * r->x[i];
}

/* One Schedule-Free AdamW step of the reference (Defazio et al. 2024, Algorithm 1 with the
 * package's warmup and weighting), given the gradient g at y and the schedule factor f. */
static void sf_ref_step(sf_ref *r, const double *g, double f, uint64_t n)
{
    r->t++;
    double sched = r->t <= r->warmup ? (double)r->t / (double)r->warmup : 1.0;
    double gamma = r->lr * f * sched * sqrt(1.0 - pow(r->b2, (double)r->t));
    if (gamma > r->lr_max)
        r->lr_max = gamma;
    double w = pow((double)r->t, r->r) * pow(r->lr_max, r->p);
    r->wsum += w;
    double c = w / r->wsum;
    for (uint64_t i = 0; i < n; i++) {
        double y = sf_ref_y(r, i);
        r->v[i] = r->b2 * r->v[i] + (1.0 - r->b2) * g[i] * g[i];
        r->z[i] -= gamma * (g[i] / (sqrt(r->v[i]) + r->eps) + r->wd * y);
        r->x[i] = (1.0 - c) * r->x[i] + c * r->z[i];
    }
}

/* P^{-1/2} x with P = (sqrt(v) + eps) / sqrt(1 - b2^t): the z-step's preconditioner. */
static double sf_ref_precond(const sf_ref *r, uint64_t i, double x)
{
    double p = (sqrt(r->v[i]) + r->eps) / sqrt(1.0 - pow(r->b2, (double)r->t));
    return x / sqrt(p);
}

static void sf_set_hparams(tp_ctx *ctx, const sf_ref *hp)
{
    mock_set_hparam(ctx, "learning_rate", hp->lr);
    mock_set_hparam(ctx, "one_minus_beta1", 1.0 - hp->b1);
    mock_set_hparam(ctx, "beta2", hp->b2);
    mock_set_hparam(ctx, "weight_decay", hp->wd);
    mock_set_hparam(ctx, "epsilon", hp->eps);
    mock_set_hparam(ctx, "warmup_factor", hp->wf);
    mock_set_hparam(ctx, "step_hint_factor", hp->shf);
    mock_set_hparam(ctx, "r", hp->r);
    mock_set_hparam(ctx, "weight_lr_power", hp->p);
    mock_set_hparam(ctx, "label_smoothing", 0.1);
    mock_set_hparam(ctx, "dropout_rate", 0.2);
}

/* Drive the plugin for `steps` steps against the reference; prepare_for_eval (twice) after
 * each step listed in evals[] (a -1-terminated list). */
static void run_sf(const sf_ref *hp, int set_hparams, int steps, const int *evals)
{
    const tp_plugin_desc *d = find(LIB_SF, "schedule_free_adamw");
    tp_ctx ctx;
    mock_ctx_init(&ctx, 10);
    ctx.desc = d;
    ctx.ts.step_hint = 1000;
    if (set_hparams)
        sf_set_hparams(&ctx, hp);

    sf_ref r = *hp;
    r.t = 0;
    r.lr_max = -1.0;
    r.wsum = 0.0;
    r.warmup = (uint64_t)floor(hp->wf * 1000.0 * hp->shf);
    for (uint64_t i = 0; i < 10; i++) {
        r.z[i] = r.x[i] = ctx.params[i];
        r.v[i] = 0.0;
    }

    void *state = NULL;
    tp_error err;
    TP_STRUCT_INIT(&err, tp_error);
    assert_int_equal(d->init(mock_host(), &ctx, &state, &err), TP_OK);
    assert_int_equal(ctx.hparam_unknown, 0);

    /* Before any update the preconditioner is undefined: TP_ESTATE with a message. */
    float xv[10], out[10], out2[10];
    for (int i = 0; i < 10; i++)
        xv[i] = (float)(1.0 + 0.3 * i - 0.07 * i * i);
    assert_int_equal(d->precondition(state, mock_host(), &ctx, xv, out, &err), TP_ESTATE);
    assert_true(strncmp(err.message, "schedule_free_adamw: ", 21) == 0);

    /* y as the plugin last left it in the buffer: after an eval the buffer holds x, and the
     * next update takes its gradient at y again, so the reference is fed the gradient the
     * mock gives at this saved y (the same float y, if the plugin restores it exactly). */
    float y_buf[10];
    memcpy(y_buf, ctx.params, sizeof y_buf);

    double max_err = 0.0, max_eval_err = 0.0, max_perr = 0.0;
    int num_evals = 0;
    for (int s = 0; s < steps; s++) {
        step_io io;
        double f = test_factor((uint64_t)s), g[10];
        step_io_init(&io, (uint64_t)s, f);
        for (uint64_t i = 0; i < ctx.n; i++)
            g[i] = (double)(float)(ctx.a[i] * ((double)y_buf[i] - ctx.c[i]));
        assert_int_equal(d->update(state, mock_host(), &ctx, &io.args, &io.err), TP_OK);
        memcpy(y_buf, ctx.params, sizeof y_buf);
        sf_ref_step(&r, g, f, ctx.n);
        for (uint64_t i = 0; i < ctx.n; i++)
            max_err = fmax(max_err, mixed_err(ctx.params[i], sf_ref_y(&r, i)));
        assert_ptr_equal(ctx.last_batch, &io.batch);
        assert_null(ctx.last_params_arg);
        if (set_hparams) {
            assert_true(ctx.last_opts.label_smoothing == 0.1f);
            assert_true(ctx.last_opts.dropout_rate == 0.2f);
        }
        assert_int_equal(ctx.last_opts.flags, 0);

        /* The preconditioner after t updates against P computed here; asking twice gives the
         * same answer (and the later steps still match: the state is unchanged). */
        assert_int_equal(d->precondition(state, mock_host(), &ctx, xv, out, &err), TP_OK);
        assert_int_equal(d->precondition(state, mock_host(), &ctx, xv, out2, &err), TP_OK);
        assert_memory_equal(out, out2, sizeof out);
        for (uint64_t i = 0; i < ctx.n; i++) {
            double want = sf_ref_precond(&r, i, xv[i]);
            max_perr = fmax(max_perr, fabs(out[i] - want) / fabs(want));
        }

        for (const int *e = evals; e != NULL && *e >= 0; e++) {
            if (*e != s)
                continue;
            /* Evaluation: the buffer holds x; a second call changes nothing. */
            assert_int_equal(d->prepare_for_eval(state, mock_host(), &ctx, &err), TP_OK);
            for (uint64_t i = 0; i < ctx.n; i++)
                max_eval_err = fmax(max_eval_err, mixed_err(ctx.params[i], r.x[i]));
            float first[10];
            memcpy(first, ctx.params, sizeof first);
            assert_int_equal(d->prepare_for_eval(state, mock_host(), &ctx, &err), TP_OK);
            assert_memory_equal(first, ctx.params, sizeof first);
            num_evals++;
        }
    }
    print_message("schedule_free_adamw lr=%g b1=%g b2=%g wd=%g eps=%g W=%llu r=%g p=%g: %d steps, "
                  "%d evals; max mixed error %.3g at y, %.3g at x (tolerance %.0e); precondition "
                  "max relative error %.3g (tolerance 1e-5)\n",
                  r.lr, r.b1, r.b2, r.wd, r.eps, (unsigned long long)r.warmup, r.r, r.p, steps,
                  num_evals, max_err, max_eval_err, OPT_TOL, max_perr);
    assert_true(max_err <= OPT_TOL);
    assert_true(max_eval_err <= OPT_TOL);
    assert_true(max_perr <= 1e-5);
    assert_int_equal(ctx.grad_calls, steps);

    d->destroy(state, mock_host(), &ctx);
    assert_int_equal(ctx.outstanding, 0);
    assert_int_equal(ctx.bad_frees, 0);
    mock_ctx_free(&ctx);
}

static void test_sf_matches_reference(void **unused)
{
    /* The self-tuning submission's shape (r 0.75, weight_lr_power 2, decay) with a warmup of
     * W = floor(0.01 * 1000 * 1) = 10 steps inside the 40, and evals in the warmup and after. */
    static const int evals[] = {7, 19, 20, 33, -1};
    sf_ref hp = {.lr = 0.02,
                 .b1 = 0.9,
                 .b2 = 0.99,
                 .wd = 0.1,
                 .eps = 1e-8,
                 .wf = 0.01,
                 .shf = 1.0,
                 .r = 0.75,
                 .p = 2.0};
    run_sf(&hp, 1, 40, evals);
    /* Uniform averaging (weight_lr_power 0, r 0: c_t = 1/t), b1 0.5, a large eps (its
     * placement matters), no decay, W = floor(0.02 * 1000 * 0.75) = 15 (step_hint_factor). */
    static const int evals2[] = {0, 15, 29, -1};
    sf_ref hp2 = {.lr = 0.05,
                  .b1 = 0.5,
                  .b2 = 0.9,
                  .wd = 0.0,
                  .eps = 0.1,
                  .wf = 0.02,
                  .shf = 0.75,
                  .r = 0.0,
                  .p = 0.0};
    run_sf(&hp2, 1, 30, evals2);
    /* No warmup at all. */
    sf_ref hp3 = {.lr = 0.01,
                  .b1 = 0.9,
                  .b2 = 0.999,
                  .wd = 0.05,
                  .eps = 1e-8,
                  .wf = 0.0,
                  .shf = 1.0,
                  .r = 1.0,
                  .p = 1.0};
    run_sf(&hp3, 1, 30, NULL);
}

static void test_sf_defaults(void **unused)
{
    /* W = floor(0.02 * 1000) = 20. */
    static const int evals[] = {10, -1};
    sf_ref hp = {.lr = 0.0025,
                 .b1 = 0.9,
                 .b2 = 0.999,
                 .wd = 0.0,
                 .eps = 1e-8,
                 .wf = 0.02,
                 .shf = 1.0,
                 .r = 0.0,
                 .p = 2.0};
    run_sf(&hp, 0, 30, evals);
}

/* A run with evals is, bit for bit, the run without them; a failed update after an eval leaves
 * x in the buffer. */
static void test_sf_eval_no_drift(void **unused)
{
    const tp_plugin_desc *d = find(LIB_SF, "schedule_free_adamw");
    static const sf_ref hp = {.lr = 0.02,
                              .b1 = 0.9,
                              .b2 = 0.99,
                              .wd = 0.1,
                              .eps = 1e-8,
                              .wf = 0.005,
                              .shf = 1.0,
                              .r = 0.75,
                              .p = 2.0};
    tp_ctx a, b;
    void *sa = NULL, *sb = NULL;
    step_io io;
    mock_ctx_init(&a, 10);
    mock_ctx_init(&b, 10);
    a.desc = b.desc = d;
    sf_set_hparams(&a, &hp);
    sf_set_hparams(&b, &hp);
    step_io_init(&io, 0, 1.0);
    assert_int_equal(d->init(mock_host(), &a, &sa, &io.err), TP_OK);
    assert_int_equal(d->init(mock_host(), &b, &sb, &io.err), TP_OK);

    int evals = 0, differed = 0;
    for (int s = 0; s < 40; s++) {
        step_io_init(&io, (uint64_t)s, test_factor((uint64_t)s));
        assert_int_equal(d->update(sa, mock_host(), &a, &io.args, &io.err), TP_OK);
        assert_int_equal(d->update(sb, mock_host(), &b, &io.args, &io.err), TP_OK);
        if (memcmp(a.params, b.params, 10 * sizeof(float)) != 0)
            fail_msg("step %d: the run with evals drifted from the run without", s);
        if (s % 6 == 2) {
            assert_int_equal(d->prepare_for_eval(sb, mock_host(), &b, &io.err), TP_OK);
            differed += memcmp(a.params, b.params, 10 * sizeof(float)) != 0;
            evals++;
        }
        if (s == 26) {
            /* An update whose gradient fails after an eval: x stays in the buffer and the
             * step does not count. */
            float x[10];
            memcpy(x, b.params, sizeof x);
            b.fail_grad = TP_EDATA;
            assert_int_equal(d->update(sb, mock_host(), &b, &io.args, &io.err), TP_EDATA);
            assert_memory_equal(x, b.params, sizeof x);
            assert_true(strstr(io.err.message, "schedule_free_adamw: ") == io.err.message);
        }
    }
    print_message("schedule_free_adamw: 40 steps with %d evals equal bit for bit to 40 without "
                  "(x differed from y at %d of the evals)\n",
                  evals, differed);
    /* The evals really swapped the buffer to x. */
    assert_int_equal(differed, evals);
    d->destroy(sa, mock_host(), &a);
    d->destroy(sb, mock_host(), &b);
    assert_int_equal(a.outstanding, 0);
    assert_int_equal(b.outstanding, 0);
    mock_ctx_free(&a);
    mock_ctx_free(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* Online batch selection */

typedef struct obs_run {
    tp_ctx ctx;
    void *state;
    const tp_plugin_desc *d;
} obs_run;

static void obs_start(obs_run *o, uint64_t train_size, uint32_t batch_size, double factor,
                      const float *table)
{
    tp_error err;
    o->d = find(LIB_OBS, "online_batch_selection");
    mock_ctx_init(&o->ctx, 10);
    o->ctx.desc = o->d;
    o->ctx.ts.train_size = train_size;
    o->ctx.ts.batch_size = batch_size;
    o->ctx.example_loss = table;
    o->state = NULL;
    if (factor > 0.0)
        mock_set_hparam(&o->ctx, "candidate_factor", factor);
    mock_set_hparam(&o->ctx, "label_smoothing", 0.2);
    TP_STRUCT_INIT(&err, tp_error);
    assert_int_equal(o->d->init(mock_host(), &o->ctx, &o->state, &err), TP_OK);
    assert_int_equal(o->ctx.hparam_unknown, 0);
}

static void obs_stop(obs_run *o)
{
    o->d->destroy(o->state, mock_host(), &o->ctx);
    assert_int_equal(o->ctx.outstanding, 0);
    assert_int_equal(o->ctx.bad_frees, 0);
    mock_ctx_free(&o->ctx);
}

/* The expected batch, worked out here: of the m stream indices from `first`, the cap with the
 * highest table loss (NaN lowest, ties to the earlier), listed in stream order. */
static void obs_expect(const float *table, uint64_t train_size, uint64_t first, uint32_t m,
                       uint32_t cap, uint32_t *want)
{
    static int chosen[512];
    assert_true(m <= 512);
    memset(chosen, 0, sizeof chosen);
    for (uint32_t k = 0; k < cap; k++) {
        int best = -1;
        for (uint32_t j = 0; j < m; j++) {
            if (chosen[j])
                continue;
            float l = table[(first + j) % train_size];
            if (best < 0) {
                best = (int)j;
                continue;
            }
            float lb = table[(first + (uint32_t)best) % train_size];
            if ((isnan(lb) && !isnan(l)) || (!isnan(l) && l > lb))
                best = (int)j;
        }
        chosen[best] = 1;
    }
    uint32_t out = 0;
    for (uint32_t j = 0; j < m; j++)
        if (chosen[j])
            want[out++] = (uint32_t)((first + j) % train_size);
    assert_int_equal(out, cap);
}

static void obs_call(obs_run *o, uint32_t cap, uint32_t *idx, float *weights)
{
    tp_batch batch;
    tp_error err;
    TP_STRUCT_INIT(&batch, tp_batch);
    TP_STRUCT_INIT(&err, tp_error);
    batch.capacity = cap;
    batch.idx = idx;
    batch.weights = weights; /* the host's buffer; the plugin sets NULL for unweighted */
    memset(idx, 0xff, cap * sizeof *idx);
    assert_int_equal(o->d->select_batch(o->state, mock_host(), &o->ctx, &batch, &err), TP_OK);
    assert_int_equal(batch.size, cap);
    assert_null(batch.weights);
}

static void test_obs_picks_highest_loss(void **unused)
{
    /* 20 examples with losses that have ties (0.9 x 3, 0.7 x 3, 0.5 x 2) and one NaN. */
    static const float table[20] = {0.1f, 0.9f, 0.3f, 0.7f, 0.5f, 0.7f, 0.2f, 0.05f, 0.7f, 0.9f,
                                    NAN,  0.8f, 0.5f, 0.6f, 0.0f, 1.5f, 0.3f, 0.25f, 0.9f, 0.1f};
    obs_run o;
    uint32_t idx[16], want[16];
    float weights[16];
    int checked = 0;

    /* candidate_factor 2.5, capacity 4: 10 candidates per step, 4 kept. */
    obs_start(&o, 20, 4, 2.5, table);
    const uint32_t allocs_after_init = o.ctx.alloc_calls;
    for (uint32_t call = 0; call < 5; call++) {
        obs_call(&o, 4, idx, weights);
        obs_expect(table, 20, (uint64_t)call * 10, 10, 4, want);
        assert_memory_equal(idx, want, 4 * sizeof *idx);
        assert_int_equal(o.ctx.per_example_calls, call + 1);
        assert_int_equal(o.ctx.per_example_examples, 10 * (call + 1));
        if (call == 0) {
            /* By hand: candidates 0..9, losses .1 .9 .3 .7 .5 .7 .2 .05 .7 .9: 1 and 9 (0.9),
             * then two of the three tied 0.7s, the earlier ones: 3 and 5 (not 8). */
            static const uint32_t hand[4] = {1, 3, 5, 9};
            assert_memory_equal(idx, hand, sizeof hand);
        }
        checked++;
    }
    /* By hand: candidates 10..19 with a NaN at 10: 15 (1.5), 18 (0.9), 11 (0.8), 13 (0.6),
     * in stream order 11 13 15 18. */
    obs_call(&o, 4, idx, weights); /* step 5 = candidates 50..59 = 10..19 (wrapped) */
    assert_int_equal(idx[0], 11);
    assert_int_equal(idx[1], 13);
    assert_int_equal(idx[2], 15);
    assert_int_equal(idx[3], 18);
    /* A smaller capacity reuses the buffers: no allocation during selection. */
    obs_call(&o, 3, idx, weights);
    obs_expect(table, 20, 60, 7, 3, want);
    assert_memory_equal(idx, want, 3 * sizeof *idx);
    assert_int_equal(o.ctx.alloc_calls, allocs_after_init);
    /* A larger capacity than the init's batch size: the buffers grow once (4 allocations),
     * the old ones are freed, and the selection is still exact. */
    obs_call(&o, 6, idx, weights);
    obs_expect(table, 20, 67, 15, 6, want);
    assert_memory_equal(idx, want, 6 * sizeof *idx);
    assert_int_equal(o.ctx.alloc_calls, allocs_after_init + 4);
    obs_call(&o, 6, idx, weights);
    obs_expect(table, 20, 82, 15, 6, want);
    assert_memory_equal(idx, want, 6 * sizeof *idx);
    assert_int_equal(o.ctx.alloc_calls, allocs_after_init + 4);
    assert_int_equal(o.ctx.per_example_calls, 9);
    assert_int_equal(o.ctx.next_index, 97);
    obs_stop(&o);

    /* A realistic size (a batch of 100 from 200 candidates, the heap sort's size far past
     * the small cases) over a table with many ties (13 distinct values) and a few NaNs. */
    static float big[1000];
    static uint32_t big_idx[100], big_want[100];
    for (uint32_t i = 0; i < 1000; i++)
        big[i] = i % 97 == 5 ? NAN : (float)((i * 7919u) % 13u) / 13.0f;
    obs_start(&o, 1000, 100, 2.0, big);
    for (uint32_t call = 0; call < 6; call++) {
        obs_call(&o, 100, big_idx, NULL);
        obs_expect(big, 1000, (uint64_t)call * 200, 200, 100, big_want);
        assert_memory_equal(big_idx, big_want, sizeof big_want);
    }
    assert_int_equal(o.ctx.per_example_examples, 1200);
    obs_stop(&o);
    print_message("online_batch_selection: %d steps of 10 candidates -> 4, then 7 -> 3 and "
                  "15 -> 6 (grown), then 6 steps of 200 -> 100, all exactly the highest-loss "
                  "candidates\n",
                  checked);

    /* candidate_factor 1: the next batch, scored and kept whole (next_batch plus a pass). */
    obs_start(&o, 20, 4, 1.0, table);
    obs_call(&o, 4, idx, weights);
    for (uint32_t j = 0; j < 4; j++)
        assert_int_equal(idx[j], j);
    obs_stop(&o);

    /* No batch size in the train state at init: the buffers come with the first call. */
    obs_start(&o, 20, 0, -1.0, table); /* the default factor 2 */
    assert_int_equal(o.ctx.alloc_calls, 1);
    obs_call(&o, 4, idx, weights);
    obs_expect(table, 20, 0, 8, 4, want);
    assert_memory_equal(idx, want, 4 * sizeof *idx);
    obs_stop(&o);
}

/* The scoring call: at the current parameters, eval mode, the declared label smoothing, no
 * dropout; all-equal losses keep the first candidates (ties to the earlier). */
static void test_obs_scoring_call(void **unused)
{
    obs_run o;
    uint32_t idx[8];
    obs_start(&o, 100, 8, 2.0, NULL); /* the mock's quadratic: every example the same loss */
    obs_call(&o, 8, idx, NULL);
    for (uint32_t j = 0; j < 8; j++)
        assert_int_equal(idx[j], j);
    assert_int_equal(o.ctx.per_example_calls, 1);
    assert_int_equal(o.ctx.per_example_examples, 16);
    assert_int_equal(o.ctx.grad_calls, 1); /* the mock scores through its loss */
    assert_null(o.ctx.last_params_arg);
    assert_false(o.ctx.last_opts_null);
    assert_int_equal(o.ctx.last_opts.struct_size, sizeof(tp_loss_opts));
    assert_int_equal(o.ctx.last_opts.flags, TP_LOSS_EVAL_MODE);
    assert_true(o.ctx.last_opts.label_smoothing == 0.2f);
    assert_true(o.ctx.last_opts.dropout_rate == 0.0f);

    /* A failing per_example_loss: its code comes back with a message naming the plugin, and
     * the batch is left unfilled. */
    tp_batch batch;
    tp_error err;
    TP_STRUCT_INIT(&batch, tp_batch);
    TP_STRUCT_INIT(&err, tp_error);
    batch.capacity = 8;
    batch.idx = idx;
    o.ctx.fail_grad = TP_EDATA;
    assert_int_equal(o.d->select_batch(o.state, mock_host(), &o.ctx, &batch, &err), TP_EDATA);
    assert_true(strstr(err.message, "online_batch_selection: ") == err.message);
    assert_int_equal(batch.size, 0);
    /* The next call works again. */
    assert_int_equal(o.d->select_batch(o.state, mock_host(), &o.ctx, &batch, &err), TP_OK);
    assert_int_equal(batch.size, 8);
    /* A batch without room is refused. */
    batch.capacity = 0;
    err.message[0] = '\0';
    assert_int_equal(o.d->select_batch(o.state, mock_host(), &o.ctx, &batch, &err), TP_EINVAL);
    assert_true(err.message[0] != '\0');
    obs_stop(&o);
}

/* ---------------------------------------------------------------------------------------- */
/* Failure paths */

static void test_init_out_of_memory_sf(void **unused)
{
    check_init_out_of_memory(find(LIB_SF, "schedule_free_adamw"));
    check_init_out_of_memory(find(LIB_OBS, "online_batch_selection"));
    check_init_out_of_memory(find(LIB_SCHEDULES, "warmup_linear"));
    check_init_out_of_memory(find(LIB_SCHEDULES, "inverse_sqrt"));
}

static void test_update_passes_host_errors_sf(void **unused)
{
    check_update_passes_host_errors(find(LIB_SF, "schedule_free_adamw"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptors_sf),
        cmocka_unit_test(test_schedule_warmup_linear),
        cmocka_unit_test(test_schedule_inverse_sqrt),
        cmocka_unit_test(test_schedule_warmup_cosine_step_hint_factor),
        cmocka_unit_test(test_sf_matches_reference),
        cmocka_unit_test(test_sf_defaults),
        cmocka_unit_test(test_sf_eval_no_drift),
        cmocka_unit_test(test_obs_picks_highest_loss),
        cmocka_unit_test(test_obs_scoring_call),
        cmocka_unit_test(test_init_out_of_memory_sf),
        cmocka_unit_test(test_update_passes_host_errors_sf),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
