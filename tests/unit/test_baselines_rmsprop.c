/*
 * test_baselines_rmsprop.c - unit tests of the RMSProp baseline (submissions/rmsprop), with
 * AdamW (submissions/adamw) as the neighbour it must equal at beta1 = 0.
 *
 * The plugin .so is dlopen()ed and driven through the mock tp_host (test_baselines_host.c) on
 * its separable quadratic. Before each step the test computes the gradient the mock will hand
 * out (from the plugin's float parameters), advances its own double-precision state with the
 * rule of BENCHMARK.md section 9 (Adam with beta1 = 0, PyTorch form, bias-corrected v):
 *     v = b2 v + (1 - b2) g^2;  t += 1;  P = sqrt(v / (1 - b2^t)) + eps;
 *     theta -= lr_t * (g / P + weight_decay * theta),
 * and compares the plugin's new parameters with the reference's within OPT_TOL, printing the
 * largest difference. The precondition hook is compared with P^{-1/2} x computed here; it gives
 * TP_ESTATE before the first update, and it must not change the state: a twin run that never
 * calls it ends with the same parameters bit for bit. Two checks show the rule is the one meant
 * and not a neighbour. The parameters move measurably away from the rule without bias
 * correction (torch.optim.RMSprop's). They also equal adamw.so's at one_minus_beta1 = 1 at
 * every step, update and preconditioner both.
 *
 * Not here: the search space (test_baselines_spaces.c), real workloads.
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

/* Relative tolerance of the preconditioner comparisons (float output of a double formula whose
 * input v the plugin holds in float). */
#define PRECOND_TOL 1e-5

/* ---------------------------------------------------------------------------------------- */
/* The plugins under test */

enum { LIB_RMSPROP, LIB_ADAMW, NUM_LIBS };

static const char *const lib_paths[NUM_LIBS] = {
    TP_TEST_PLUGIN_DIR "/rmsprop.so",
    TP_TEST_PLUGIN_DIR "/adamw.so",
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

static const tp_plugin_desc *rmsprop(void)
{
    return tb_find(libs, lib_paths, LIB_RMSPROP, "rmsprop");
}

/* The hyperparameters of one run; what the test sets (or, with set == 0, the defaults). */
typedef struct rms_hp {
    double lr, b2, wd, eps, ls, dropout;
} rms_hp;

static const rms_hp defaults = {.lr = 1e-3, .b2 = 0.99, .wd = 0.0, .eps = 1e-8};

/* Set hp on ctx (unless set == 0) and init d; fails the test on error. */
static void *start(const tp_plugin_desc *d, tp_ctx *ctx, const rms_hp *hp, int set)
{
    void *state = NULL;
    tp_error err;
    ctx->desc = d;
    if (set) {
        mock_set_hparam(ctx, "learning_rate", hp->lr);
        mock_set_hparam(ctx, "beta2", hp->b2);
        mock_set_hparam(ctx, "weight_decay", hp->wd);
        mock_set_hparam(ctx, "epsilon", hp->eps);
        mock_set_hparam(ctx, "label_smoothing", hp->ls);
        mock_set_hparam(ctx, "dropout_rate", hp->dropout);
    }
    TP_STRUCT_INIT(&err, tp_error);
    if (d->init(mock_host(), ctx, &state, &err) != TP_OK)
        fail_msg("%s: init failed: %s", d->id, err.message);
    assert_int_equal(ctx->hparam_unknown, 0);
    return state;
}

static void finish(const tp_plugin_desc *d, tp_ctx *ctx, void *state)
{
    d->destroy(state, mock_host(), ctx);
    assert_int_equal(ctx->outstanding, 0);
    assert_int_equal(ctx->bad_frees, 0);
    mock_ctx_free(ctx);
}

/* One update; the loss was asked of this step's batch at the current parameters with the
 * label smoothing and dropout of hp. */
static void step(const tp_plugin_desc *d, tp_ctx *ctx, void *state, uint64_t s, const rms_hp *hp)
{
    step_io io;
    step_io_init(&io, s, test_factor(s));
    if (d->update(state, mock_host(), ctx, &io.args, &io.err) != TP_OK)
        fail_msg("%s: update %llu failed: %s", d->id, (unsigned long long)s, io.err.message);
    assert_ptr_equal(ctx->last_batch, &io.batch);
    assert_null(ctx->last_params_arg);
    assert_false(ctx->last_opts_null);
    assert_int_equal(ctx->last_opts.struct_size, sizeof(tp_loss_opts));
    assert_true(ctx->last_opts.label_smoothing == (float)hp->ls);
    assert_true(ctx->last_opts.dropout_rate == (float)hp->dropout);
    assert_int_equal(ctx->last_opts.flags, 0);
}

/* A fixed probe vector for the preconditioner hook. */
static void probe(float x[10])
{
    for (int i = 0; i < 10; i++)
        x[i] = (float)(1.0 + 0.3 * i - 0.07 * i * i);
}

/* ---------------------------------------------------------------------------------------- */
/* Descriptor and declared hyperparameters */

static void test_descriptor(void **unused)
{
    const tp_plugin_desc *d = rmsprop();
    assert_ptr_equal(libs[LIB_RMSPROP].entry(0), d);
    assert_null(libs[LIB_RMSPROP].entry(1));
    assert_int_equal(d->struct_size, sizeof(tp_plugin_desc));
    assert_int_equal(d->sdk_version, TP_SDK_VERSION);
    assert_int_equal(d->kind, TP_PLUGIN_OPTIMIZER);
    assert_non_null(d->init);
    assert_non_null(d->update);
    assert_non_null(d->precondition);
    assert_non_null(d->destroy);
    assert_null(d->get_batch_size);
    assert_null(d->prepare_for_eval);
    assert_null(d->lr_factor);
    assert_null(d->select_batch);
    assert_int_equal(d->hparams[0].struct_size, sizeof(tp_hparam_decl));
    for (uint32_t h = 0; h < d->num_hparams; h++) {
        const tp_hparam_decl *p = hparam_at(d, h);
        assert_int_equal(p->struct_size, sizeof(tp_hparam_decl));
        assert_int_equal(p->sdk_version, TP_SDK_VERSION);
        assert_int_equal(p->type, TP_HPARAM_FLOAT);
        assert_true(p->min_value <= p->default_value && p->default_value <= p->max_value);
        for (uint32_t h2 = 0; h2 < h; h2++)
            assert_string_not_equal(hparam_at(d, h2)->name, p->name);
    }
}

static void test_hparam_defaults(void **unused)
{
    const tp_plugin_desc *d = rmsprop();
    assert_int_equal(d->num_hparams, 6);
    check_default(d, "learning_rate", 1e-3);
    check_default(d, "beta2", 0.99);
    check_default(d, "weight_decay", 0.0);
    check_default(d, "epsilon", 1e-8);
    check_default(d, "label_smoothing", 0.0);
    check_default(d, "dropout_rate", 0.0);
    /* beta1 is 0, not a hyperparameter. */
    for (uint32_t h = 0; h < d->num_hparams; h++)
        assert_string_not_equal(hparam_at(d, h)->name, "one_minus_beta1");
}

/* A host that does not know one of the hyperparameters (here: the plugin's table without it,
 * so the mock's hparam() gives TP_ENOENT), or has no hparam() at all: init passes the code on
 * with a message naming the plugin and the key, leaves *state alone and keeps nothing. */
static void test_hparam_errors(void **unused)
{
    const tp_plugin_desc *d = rmsprop();
    tp_hparam_decl decls[8];
    assert_true(d->num_hparams <= 8);
    for (uint32_t miss = 0; miss < d->num_hparams; miss++) {
        tp_plugin_desc fewer = *d;
        uint32_t k = 0;
        for (uint32_t h = 0; h < d->num_hparams; h++)
            if (h != miss)
                decls[k++] = *hparam_at(d, h);
        fewer.hparams = decls;
        fewer.num_hparams = k;

        tp_ctx ctx;
        tp_error err;
        void *sentinel = &ctx, *state = sentinel;
        char want[96];
        mock_ctx_init(&ctx, 10);
        ctx.desc = &fewer;
        TP_STRUCT_INIT(&err, tp_error);
        err.message[0] = '\0';
        assert_int_equal(d->init(mock_host(), &ctx, &state, &err), TP_ENOENT);
        snprintf(want, sizeof want, "host->hparam(\"%s\")", hparam_at(d, miss)->name);
        if (strncmp(err.message, "rmsprop: ", 9) != 0 || strstr(err.message, want) == NULL)
            fail_msg("missing %s: message \"%s\" does not say \"rmsprop: ... %s\"",
                     hparam_at(d, miss)->name, err.message, want);
        assert_ptr_equal(state, sentinel);
        assert_int_equal(ctx.hparam_unknown, 1);
        assert_int_equal(ctx.outstanding, 0);
        assert_int_equal(ctx.bad_frees, 0);
        mock_ctx_free(&ctx);
    }

    /* A host table from before hparam(): TP_EABI, before any allocation. */
    tp_host old = *mock_host();
    old.struct_size = (uint32_t)offsetof(tp_host, hparam);
    tp_ctx ctx;
    tp_error err;
    void *sentinel = &ctx, *state = sentinel;
    mock_ctx_init(&ctx, 10);
    ctx.desc = d;
    TP_STRUCT_INIT(&err, tp_error);
    err.message[0] = '\0';
    assert_int_equal(d->init(&old, &ctx, &state, &err), TP_EABI);
    assert_ptr_equal(state, sentinel);
    assert_non_null(strstr(err.message, "rmsprop: "));
    assert_int_equal(ctx.alloc_calls, 0);
    mock_ctx_free(&ctx);
}

/* Bad calls of update and precondition: TP_EINVAL without a batch or a vector, TP_ESTATE when
 * the parameter buffer changed size; each with a message, nothing changed, no update counted. */
static void test_call_errors(void **unused)
{
    const tp_plugin_desc *d = rmsprop();
    tp_ctx ctx;
    step_io io;
    float before[10], x[10], out[10];
    mock_ctx_init(&ctx, 10);
    void *state = start(d, &ctx, &defaults, 0);
    memcpy(before, ctx.params, sizeof before);
    probe(x);

    step_io_init(&io, 0, 1.0);
    io.args.batch = NULL;
    assert_int_equal(d->update(state, mock_host(), &ctx, &io.args, &io.err), TP_EINVAL);
    assert_true(strncmp(io.err.message, "rmsprop: ", 9) == 0);
    step_io_init(&io, 0, 1.0);
    ctx.n = 9;
    assert_int_equal(d->update(state, mock_host(), &ctx, &io.args, &io.err), TP_ESTATE);
    assert_true(strncmp(io.err.message, "rmsprop: ", 9) == 0);
    ctx.n = 10;
    assert_memory_equal(before, ctx.params, sizeof before);
    assert_int_equal(ctx.grad_calls, 0);
    /* Still no update taken. */
    assert_int_equal(d->precondition(state, mock_host(), &ctx, x, out, &io.err), TP_ESTATE);

    step(d, &ctx, state, 0, &defaults);
    assert_int_equal(d->precondition(state, mock_host(), &ctx, NULL, out, &io.err), TP_EINVAL);
    assert_int_equal(d->precondition(state, mock_host(), &ctx, x, NULL, &io.err), TP_EINVAL);
    assert_true(strncmp(io.err.message, "rmsprop: ", 9) == 0);
    assert_int_equal(d->precondition(state, mock_host(), &ctx, x, out, &io.err), TP_OK);
    finish(d, &ctx, state);
}

/* ---------------------------------------------------------------------------------------- */
/* The update and the preconditioner against the double-precision reference */

/* P^{-1/2} x, P = sqrt(v / (1 - b2^t)) + eps: BENCHMARK.md section 9's Adam P at b1 = 0. */
static double ref_precond(const rms_hp *hp, uint64_t t, double v, double x)
{
    return x / sqrt(sqrt(v / (1.0 - pow(hp->b2, (double)t))) + hp->eps);
}

static void run_rmsprop(const rms_hp *hp, int set, int steps)
{
    const tp_plugin_desc *d = rmsprop();
    tp_ctx ctx, twin;
    mock_ctx_init(&ctx, 10);
    mock_ctx_init(&twin, 10);
    void *state = start(d, &ctx, hp, set);
    void *twin_state = start(d, &twin, hp, set);
    /* The state, grad and v: RMSProp keeps no first moment. */
    assert_int_equal(ctx.alloc_calls, 3);

    float x[10], out[10], out2[10];
    tp_error err;
    TP_STRUCT_INIT(&err, tp_error);
    err.message[0] = '\0';
    probe(x);
    /* Before any update there is no P: TP_ESTATE with a message, out untouched. */
    memset(out, 0, sizeof out);
    assert_int_equal(d->precondition(state, mock_host(), &ctx, x, out, &err), TP_ESTATE);
    assert_true(strncmp(err.message, "rmsprop: ", 9) == 0);
    for (int i = 0; i < 10; i++)
        assert_true(out[i] == 0.0f);

    double v[10] = {0}, max_err = 0.0, max_perr = 0.0, max_vs_torch = 0.0;
    for (int s = 0; s < steps; s++) {
        const uint64_t t = (uint64_t)s + 1;
        const double f = test_factor((uint64_t)s), bc2 = 1.0 - pow(hp->b2, (double)t);
        double want[10], torch[10];
        for (uint64_t i = 0; i < 10; i++) {
            const double th = ctx.params[i], g = mock_grad(&ctx, i);
            v[i] = hp->b2 * v[i] + (1.0 - hp->b2) * g * g;
            const double p = sqrt(v[i] / bc2) + hp->eps;
            want[i] = th - hp->lr * f * (g / p + hp->wd * th);
            /* The same step without bias correction (torch.optim.RMSprop). */
            torch[i] = th - hp->lr * f * (g / (sqrt(v[i]) + hp->eps) + hp->wd * th);
        }
        step(d, &ctx, state, (uint64_t)s, hp);
        step(d, &twin, twin_state, (uint64_t)s, hp);
        for (uint64_t i = 0; i < 10; i++) {
            max_err = fmax(max_err, mixed_err(ctx.params[i], want[i]));
            max_vs_torch = fmax(max_vs_torch, fabs(ctx.params[i] - torch[i]));
        }

        /* The preconditioner of the last update, twice (the same answer); the parameters do
         * not move, and the twin, which never calls it, stays equal bit for bit. */
        float params[10];
        memcpy(params, ctx.params, sizeof params);
        assert_int_equal(d->precondition(state, mock_host(), &ctx, x, out, &err), TP_OK);
        assert_int_equal(d->precondition(state, mock_host(), &ctx, x, out2, &err), TP_OK);
        assert_memory_equal(out, out2, sizeof out);
        assert_memory_equal(params, ctx.params, sizeof params);
        for (uint64_t i = 0; i < 10; i++) {
            const double w = ref_precond(hp, t, v[i], x[i]);
            max_perr = fmax(max_perr, fabs(out[i] - w) / fabs(w));
        }
    }
    assert_memory_equal(ctx.params, twin.params, 10 * sizeof(float));
    print_message("rmsprop lr=%g b2=%g wd=%g eps=%g%s: %d steps, max mixed error %.3g (tolerance "
                  "%.0e); precondition max relative error %.3g (tolerance %.0e); largest "
                  "distance from the uncorrected step %.3g\n",
                  hp->lr, hp->b2, hp->wd, hp->eps, set ? "" : " (defaults)", steps, max_err,
                  OPT_TOL, max_perr, PRECOND_TOL, max_vs_torch);
    assert_true(max_err <= OPT_TOL);
    assert_true(max_perr <= PRECOND_TOL);
    /* Bias-corrected: at t = 1 the step is lr_t g / (|g| + eps) ~ lr_t per coordinate, the
     * uncorrected one ~ lr_t / sqrt(1 - b2), more than 3 lr_t for b2 >= 0.9 while eps << |g|
     * (lr_t = 0.25 lr at step 0). Ask for a quarter of lr_t, and for far more than the
     * tolerance. */
    assert_true(max_vs_torch > 0.25 * hp->lr * test_factor(0));
    assert_true(max_vs_torch > 100.0 * OPT_TOL);
    assert_int_equal(ctx.grad_calls, steps);
    finish(d, &ctx, state);
    finish(d, &twin, twin_state);
}

static void test_rmsprop_matches_reference(void **unused)
{
    const rms_hp hp = {.lr = 0.02, .b2 = 0.99, .wd = 0.1, .eps = 1e-8, .ls = 0.1, .dropout = 0.2};
    run_rmsprop(&hp, 1, 60);
    /* A large epsilon: where eps sits (outside the root, after the bias correction) matters. */
    const rms_hp hp2 = {.lr = 0.05, .b2 = 0.9, .wd = 0.0, .eps = 0.1, .ls = 0.2};
    run_rmsprop(&hp2, 1, 30);
    /* beta2 0.999: the bias correction is far from 1 for all the steps. */
    const rms_hp hp3 = {.lr = 0.01, .b2 = 0.999, .wd = 0.5, .eps = 1e-3, .dropout = 0.1};
    run_rmsprop(&hp3, 1, 40);
    run_rmsprop(&defaults, 0, 30);
}

/* RMSProp is Adam with beta1 = 0 (BENCHMARK.md section 9): rmsprop.so and adamw.so at
 * one_minus_beta1 = 1 give equal parameters and equal preconditioners at every step. */
static void test_rmsprop_is_adamw_at_beta1_0(void **unused)
{
    const tp_plugin_desc *r = rmsprop();
    const tp_plugin_desc *a = tb_find(libs, lib_paths, LIB_ADAMW, "adamw");
    const rms_hp hp = {.lr = 0.03, .b2 = 0.95, .wd = 0.2, .eps = 1e-6, .ls = 0.1};
    tp_ctx rc, ac;
    mock_ctx_init(&rc, 10);
    mock_ctx_init(&ac, 10);
    void *rs = start(r, &rc, &hp, 1);
    ac.desc = a;
    mock_set_hparam(&ac, "one_minus_beta1", 1.0);
    void *as = start(a, &ac, &hp, 1);

    float x[10], ro[10], ao[10];
    tp_error err;
    TP_STRUCT_INIT(&err, tp_error);
    probe(x);
    uint32_t unequal = 0;
    for (int s = 0; s < 40; s++) {
        step(r, &rc, rs, (uint64_t)s, &hp);
        step(a, &ac, as, (uint64_t)s, &hp);
        assert_int_equal(r->precondition(rs, mock_host(), &rc, x, ro, &err), TP_OK);
        assert_int_equal(a->precondition(as, mock_host(), &ac, x, ao, &err), TP_OK);
        for (int i = 0; i < 10; i++)
            unequal += (rc.params[i] != ac.params[i]) + (ro[i] != ao[i]);
    }
    print_message("rmsprop vs adamw at one_minus_beta1 = 1: 40 steps, %u unequal floats "
                  "(parameters and preconditioner)\n",
                  unequal);
    assert_int_equal(unequal, 0);
    finish(r, &rc, rs);
    finish(a, &ac, as);
}

/* ---------------------------------------------------------------------------------------- */
/* Failure paths */

static void test_failure_paths(void **unused)
{
    check_init_out_of_memory(rmsprop());
    check_update_passes_host_errors(rmsprop());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test(test_hparam_defaults),
        cmocka_unit_test(test_hparam_errors),
        cmocka_unit_test(test_call_errors),
        cmocka_unit_test(test_rmsprop_matches_reference),
        cmocka_unit_test(test_rmsprop_is_adamw_at_beta1_0),
        cmocka_unit_test(test_failure_paths),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
