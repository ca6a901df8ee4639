/*
 * test_baselines_adafactor_sam.c - unit tests of the Adafactor and SAM baselines
 * (submissions/adafactor, submissions/sam); their search spaces: test_baselines_spaces.c.
 *
 * Each plugin .so is dlopen()ed and driven through the mock tp_host of test_baselines_host.c on
 * its separable quadratic. The update rules are written here again, independently of the
 * plugins, in double precision: before each step the test takes the gradient the mock will hand
 * out (from the plugin's float parameters), advances its own double state with it, and compares
 * the plugin's new parameters within OPT_TOL, printing the largest difference seen. The
 * preconditioner hooks are checked against P computed from the same double state.
 *
 * Adafactor's reference keeps the factored statistics as row and column SUMS of the EMA of
 * g^2 + eps1 and estimates v_ij = R_i C_j / sum_i R_i (the plugin keeps means, as praxis does;
 * the two are the same estimate). It runs with fc.weight (2 x 3) factored (min_dim_size_to_factor 2
 * and the default 1) and unfactored (4), with both decay schedules, with a learning rate where
 * update clipping really acts (the reference counts the clipped steps and the test asserts there
 * were some, and some unclipped), on a re-described buffer holding a 3-D tensor (two 2 x 2 matrices
 * factored separately) whose table the host lists out of offset order, and on a 68-float buffer (a
 * 3 x 19 matrix and an 11-vector) long enough for the plugin's 8-lane loops and their tails.
 *
 * SAM is checked through a recording host that wraps the mock's loss_and_grad: exactly two
 * calls per update, the first at the parameters (params NULL), the second at a plugin-owned
 * buffer holding theta + rho g / ||g|| while the parameter buffer is still untouched, both on
 * the update's batch with the loss options; then AdamW with the second gradient. The wrapper
 * can also arm the mock's one-shot fail_grad just before a chosen call, which is how the second
 * gradient of an update is made to fail.
 *
 * Not here: real workloads (an integration trial), timing.
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

enum { LIB_ADAFACTOR, LIB_SAM, LIB_SCHEDULES, NUM_LIBS };

static const char *const lib_paths[NUM_LIBS] = {
    TP_TEST_PLUGIN_DIR "/adafactor.so",
    TP_TEST_PLUGIN_DIR "/sam.so",
    TP_TEST_PLUGIN_DIR "/schedules.so",
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

static const tp_hparam_decl *declared(const tp_plugin_desc *d, const char *name)
{
    for (uint32_t h = 0; h < d->num_hparams; h++)
        if (strcmp(hparam_at(d, h)->name, name) == 0)
            return hparam_at(d, h);
    return NULL;
}

/* A probe vector for the preconditioners. */
static void probe(float *x, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        x[i] = (float)(1.0 + 0.3 * (double)i - 0.07 * (double)(i * i));
}

/* ---------------------------------------------------------------------------------------- */
/* Descriptors and defaults */

static void check_descriptor(const tp_plugin_desc *d, const char *id, uint32_t num_hparams)
{
    assert_string_equal(d->id, id);
    assert_int_equal(d->struct_size, sizeof(tp_plugin_desc));
    assert_int_equal(d->sdk_version, TP_SDK_VERSION);
    assert_int_equal(d->kind, TP_PLUGIN_OPTIMIZER);
    assert_non_null(d->init);
    assert_non_null(d->update);
    assert_non_null(d->precondition);
    assert_non_null(d->destroy);
    assert_null(d->lr_factor);
    assert_null(d->select_batch);
    assert_int_equal(d->num_hparams, num_hparams);
    assert_int_equal(d->hparams[0].struct_size, sizeof(tp_hparam_decl));
    for (uint32_t h = 0; h < d->num_hparams; h++) {
        const tp_hparam_decl *p = hparam_at(d, h);
        assert_int_equal(p->sdk_version, TP_SDK_VERSION);
        assert_true(p->min_value <= p->default_value && p->default_value <= p->max_value);
        for (const char *c = p->name; *c != '\0'; c++)
            assert_true((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_');
        for (uint32_t h2 = 0; h2 < h; h2++)
            assert_string_not_equal(hparam_at(d, h2)->name, p->name);
    }
}

static void test_descriptors_and_defaults(void **unused)
{
    const tp_plugin_desc *af = find(LIB_ADAFACTOR, "adafactor");
    assert_null(libs[LIB_ADAFACTOR].entry(1));
    check_descriptor(af, "adafactor", 9);
    check_default(af, "learning_rate", 1e-3);
    check_default(af, "one_minus_beta1", 0.1);
    check_default(af, "weight_decay", 0.0);
    check_default(af, "decay_adam", 0.99);
    check_default(af, "decay_pow", 0.0);
    check_default(af, "clip_threshold", 1.0);
    check_default(af, "min_dim_size_to_factor", 1.0);
    check_default(af, "label_smoothing", 0.0);
    check_default(af, "dropout_rate", 0.0);
    assert_int_equal(declared(af, "min_dim_size_to_factor")->type, TP_HPARAM_INT);
    assert_int_equal(declared(af, "learning_rate")->type, TP_HPARAM_FLOAT);

    const tp_plugin_desc *sam = find(LIB_SAM, "sam");
    assert_null(libs[LIB_SAM].entry(1));
    check_descriptor(sam, "sam", 8);
    check_default(sam, "learning_rate", 1e-3);
    check_default(sam, "one_minus_beta1", 0.1);
    check_default(sam, "beta2", 0.999);
    check_default(sam, "weight_decay", 0.0);
    check_default(sam, "epsilon", 1e-8);
    check_default(sam, "rho", 0.05);
    check_default(sam, "label_smoothing", 0.0);
    check_default(sam, "dropout_rate", 0.0);
}

/* ---------------------------------------------------------------------------------------- */
/* Adafactor: the reference */

#define REF_MAX_T 4
#define REF_N     68 /* floats of the largest layout */

/* A tensor as the reference sees it: numel = blocks * rows * cols, factored or not. */
typedef struct ref_tensor {
    uint64_t off, blocks, rows, cols;
    int factored;
} ref_tensor;

typedef struct af_ref {
    /* Hyperparameters. */
    double lr, b1, wd, decay_adam, decay_pow, clip;
    uint32_t num_tensors;
    ref_tensor T[REF_MAX_T];
    /* State. */
    uint64_t t;
    double m[REF_N], v[REF_N];                       /* v: full second moments, unfactored */
    double R[REF_MAX_T][REF_N], C[REF_MAX_T][REF_N]; /* row / column sums of EMA(g^2 + eps1) */
    double vhat[REF_N];                              /* the estimate of the last step */
    double d[REF_MAX_T];                             /* clipping denominators of the last step */
    int clipped[REF_MAX_T]; /* steps on which the tensor's update was clipped */
} af_ref;

static uint64_t ref_numel(const ref_tensor *T)
{
    return T->blocks * T->rows * T->cols;
}

/* One Adafactor step on gradient g at parameters th with schedule factor f; want = new theta. */
static void af_ref_step(af_ref *r, const double *g, const double *th, double f, double *want)
{
    r->t++;
    const double t = (double)r->t, b = r->decay_adam;
    const double dec = r->decay_pow > 0.0 ? 1.0 - pow(t, -r->decay_pow)
                                          : b * (1.0 - pow(b, t - 1.0)) / (1.0 - pow(b, t));
    const double lr_t = r->lr * f;
    for (uint32_t k = 0; k < r->num_tensors; k++) {
        const ref_tensor *T = &r->T[k];
        const uint64_t n = ref_numel(T);
        if (T->factored) {
            for (uint64_t bl = 0; bl < T->blocks; bl++) {
                const uint64_t base = T->off + bl * T->rows * T->cols;
                double *R = r->R[k] + bl * T->rows, *C = r->C[k] + bl * T->cols, sum_r = 0.0;
                for (uint64_t i = 0; i < T->rows; i++) {
                    double rs = 0.0;
                    for (uint64_t j = 0; j < T->cols; j++)
                        rs += g[base + i * T->cols + j] * g[base + i * T->cols + j] + 1e-30;
                    R[i] = dec * R[i] + (1.0 - dec) * rs;
                    sum_r += R[i];
                }
                for (uint64_t j = 0; j < T->cols; j++) {
                    double cs = 0.0;
                    for (uint64_t i = 0; i < T->rows; i++)
                        cs += g[base + i * T->cols + j] * g[base + i * T->cols + j] + 1e-30;
                    C[j] = dec * C[j] + (1.0 - dec) * cs;
                }
                for (uint64_t i = 0; i < T->rows; i++)
                    for (uint64_t j = 0; j < T->cols; j++)
                        r->vhat[base + i * T->cols + j] = R[i] * C[j] / sum_r;
            }
        } else {
            for (uint64_t e = T->off; e < T->off + n; e++) {
                r->v[e] = dec * r->v[e] + (1.0 - dec) * (g[e] * g[e] + 1e-30);
                r->vhat[e] = r->v[e];
            }
        }
        double sumsq = 0.0;
        for (uint64_t e = T->off; e < T->off + n; e++)
            sumsq += g[e] * g[e] / r->vhat[e];
        const double rms = sqrt(sumsq / (double)n);
        r->d[k] = fmax(1.0, rms / r->clip);
        if (rms > r->clip * (1.0 + 1e-9))
            r->clipped[k]++;
        for (uint64_t e = T->off; e < T->off + n; e++) {
            const double x = g[e] / sqrt(r->vhat[e]);
            r->m[e] = r->b1 * r->m[e] + (1.0 - r->b1) * lr_t * x / r->d[k];
            want[e] = th[e] - r->m[e] - lr_t * r->wd * th[e];
        }
    }
}

/* P^{-1/2} x for element e of tensor k, P = sqrt(vhat) * d_k. */
static double af_ref_precond(const af_ref *r, uint32_t k, uint64_t e, double x)
{
    return x / sqrt(sqrt(r->vhat[e]) * r->d[k]);
}

/* The mock's default table: fc.weight (2, 3) at 0, fc.bias (3) at 6, norm.scale (1) at 9. */
static void af_ref_mock_layout(af_ref *r, int weight_factored)
{
    r->num_tensors = 3;
    r->T[0] = (ref_tensor){0, 1, 2, 3, weight_factored};
    r->T[1] = (ref_tensor){6, 1, 1, 3, 0};
    r->T[2] = (ref_tensor){9, 1, 1, 1, 0};
}

/* Re-describe the mock's 10 floats as conv.weight (2, 2, 2) at 0 and conv.bias (2) at 8, the
 * table listed bias first (out of offset order). The reference: two 2 x 2 blocks. */
static void conv_layout(tp_ctx *ctx, af_ref *r)
{
    static const char *names[] = {"conv.bias", "conv.weight"};
    for (uint32_t k = 0; k < 2; k++) {
        tp_tensor_info *ti = &ctx->tensors[k];
        TP_STRUCT_INIT(ti, tp_tensor_info);
        ti->name = names[k];
        for (uint32_t d = 0; d < TP_MAX_DIMS; d++)
            ti->shape[d] = 1;
    }
    ctx->tensors[0].role = TP_PARAM_ROLE_BIAS;
    ctx->tensors[0].ndim = 1;
    ctx->tensors[0].shape[0] = 2;
    ctx->tensors[0].offset = 8;
    ctx->tensors[0].numel = 2;
    ctx->tensors[1].role = TP_PARAM_ROLE_WEIGHT;
    ctx->tensors[1].ndim = 3;
    ctx->tensors[1].shape[0] = ctx->tensors[1].shape[1] = ctx->tensors[1].shape[2] = 2;
    ctx->tensors[1].offset = 0;
    ctx->tensors[1].numel = 8;
    ctx->num_tensors = 2;
    r->num_tensors = 2;
    r->T[0] = (ref_tensor){0, 2, 2, 2, 1};
    r->T[1] = (ref_tensor){8, 1, 1, 2, 0};
}

/* Re-describe a 68-float mock as wide.weight (3, 19) at 0 and wide.bias (11) at 57: rows and
 * vectors long enough for the plugin's 8-lane loops and their tails. */
static void wide_layout(tp_ctx *ctx, af_ref *r, int weight_factored)
{
    static const char *names[] = {"wide.weight", "wide.bias"};
    for (uint32_t k = 0; k < 2; k++) {
        tp_tensor_info *ti = &ctx->tensors[k];
        TP_STRUCT_INIT(ti, tp_tensor_info);
        ti->name = names[k];
        for (uint32_t d = 0; d < TP_MAX_DIMS; d++)
            ti->shape[d] = 1;
    }
    ctx->tensors[0].role = TP_PARAM_ROLE_WEIGHT;
    ctx->tensors[0].ndim = 2;
    ctx->tensors[0].shape[0] = 3;
    ctx->tensors[0].shape[1] = 19;
    ctx->tensors[0].numel = 57;
    ctx->tensors[1].role = TP_PARAM_ROLE_BIAS;
    ctx->tensors[1].ndim = 1;
    ctx->tensors[1].shape[0] = 11;
    ctx->tensors[1].offset = 57;
    ctx->tensors[1].numel = 11;
    ctx->num_tensors = 2;
    r->num_tensors = 2;
    r->T[0] = (ref_tensor){0, 1, 3, 19, weight_factored};
    r->T[1] = (ref_tensor){57, 1, 1, 11, 0};
}

enum { LAYOUT_MOCK, LAYOUT_CONV, LAYOUT_WIDE };

typedef struct af_case {
    const char *label;
    af_ref hp;           /* hyperparameters (and the layout, filled by the case) */
    int set_hparams;     /* 0: the plugin's defaults */
    double min_dim;      /* min_dim_size_to_factor to set; 0: leave the default */
    int layout;          /* LAYOUT_... */
    int weight_factored; /* mock layout: fc.weight expected factored */
    int steps;
    int want_clipped; /* assert some clipped and some unclipped steps */
} af_case;

/* Runs one case; returns the total count of clipped tensor-steps. */
static int run_adafactor(const af_case *c)
{
    const tp_plugin_desc *d = find(LIB_ADAFACTOR, "adafactor");
    tp_ctx ctx;
    mock_ctx_init(&ctx, c->layout == LAYOUT_WIDE ? 68 : 10);
    ctx.desc = d;
    const uint64_t n = ctx.n;
    af_ref r = c->hp;
    r.t = 0;
    memset(r.m, 0, sizeof r.m);
    memset(r.v, 0, sizeof r.v);
    memset(r.R, 0, sizeof r.R);
    memset(r.C, 0, sizeof r.C);
    memset(r.clipped, 0, sizeof r.clipped);
    if (c->layout == LAYOUT_CONV)
        conv_layout(&ctx, &r);
    else if (c->layout == LAYOUT_WIDE)
        wide_layout(&ctx, &r, c->weight_factored);
    else
        af_ref_mock_layout(&r, c->weight_factored);
    if (c->set_hparams) {
        mock_set_hparam(&ctx, "learning_rate", r.lr);
        mock_set_hparam(&ctx, "one_minus_beta1", 1.0 - r.b1);
        mock_set_hparam(&ctx, "weight_decay", r.wd);
        mock_set_hparam(&ctx, "decay_adam", r.decay_adam);
        mock_set_hparam(&ctx, "decay_pow", r.decay_pow);
        mock_set_hparam(&ctx, "clip_threshold", r.clip);
        mock_set_hparam(&ctx, "label_smoothing", 0.1);
        mock_set_hparam(&ctx, "dropout_rate", 0.2);
    }
    if (c->min_dim > 0.0)
        mock_set_hparam(&ctx, "min_dim_size_to_factor", c->min_dim);

    void *state = NULL;
    tp_error err;
    TP_STRUCT_INIT(&err, tp_error);
    err.message[0] = '\0';
    assert_int_equal(d->init(mock_host(), &ctx, &state, &err), TP_OK);
    assert_int_equal(ctx.hparam_unknown, 0);

    /* Before any update P is undefined. */
    float x[REF_N], out[REF_N], out2[REF_N];
    probe(x, n);
    assert_int_equal(d->precondition(state, mock_host(), &ctx, x, out, &err), TP_ESTATE);
    assert_non_null(strstr(err.message, "adafactor"));

    double max_err = 0.0, max_perr = 0.0;
    for (int s = 0; s < c->steps; s++) {
        step_io io;
        double f = test_factor((uint64_t)s), g[REF_N], th[REF_N], want[REF_N];
        step_io_init(&io, (uint64_t)s, f);
        for (uint64_t i = 0; i < n; i++) {
            th[i] = ctx.params[i];
            g[i] = mock_grad(&ctx, i);
        }
        af_ref_step(&r, g, th, f, want);
        assert_int_equal(d->update(state, mock_host(), &ctx, &io.args, &io.err), TP_OK);
        for (uint64_t i = 0; i < n; i++)
            max_err = fmax(max_err, mixed_err(ctx.params[i], want[i]));
        assert_ptr_equal(ctx.last_batch, &io.batch);
        assert_null(ctx.last_params_arg);
        assert_true(ctx.last_opts.label_smoothing == (c->set_hparams ? 0.1f : 0.0f));
        assert_true(ctx.last_opts.dropout_rate == (c->set_hparams ? 0.2f : 0.0f));

        /* P after t updates, twice (the hook must not change the state; the next steps still
         * matching the reference says so too). */
        assert_int_equal(d->precondition(state, mock_host(), &ctx, x, out, &err), TP_OK);
        assert_int_equal(d->precondition(state, mock_host(), &ctx, x, out2, &err), TP_OK);
        assert_memory_equal(out, out2, n * sizeof out[0]);
        for (uint32_t k = 0; k < r.num_tensors; k++)
            for (uint64_t e = r.T[k].off; e < r.T[k].off + ref_numel(&r.T[k]); e++) {
                double want_p = af_ref_precond(&r, k, e, x[e]);
                max_perr = fmax(max_perr, fabs(out[e] - want_p) / fabs(want_p));
            }
    }
    int clipped = 0;
    for (uint32_t k = 0; k < r.num_tensors; k++)
        clipped += r.clipped[k];
    print_message("adafactor %s: %d steps, clipped tensor-steps %d/%d/%d, max mixed error %.3g "
                  "(tolerance %.0e); precondition max relative error %.3g (tolerance 1e-5)\n",
                  c->label, c->steps, r.clipped[0], r.clipped[1],
                  r.num_tensors > 2 ? r.clipped[2] : -1, max_err, OPT_TOL, max_perr);
    assert_true(max_err <= OPT_TOL);
    assert_true(max_perr <= 1e-5);
    if (c->want_clipped) {
        assert_true(clipped > 0);
        assert_true(clipped < c->steps * (int)r.num_tensors);
    }
    assert_int_equal(ctx.grad_calls, c->steps);

    d->destroy(state, mock_host(), &ctx);
    assert_int_equal(ctx.outstanding, 0);
    assert_int_equal(ctx.bad_frees, 0);
    mock_ctx_free(&ctx);
    return clipped;
}

/* fc.weight factored (min_dim_size_to_factor 2), "adam" decay, a learning rate large enough
 * that the iterates overshoot and the update RMS exceeds the threshold on some steps. */
static void test_adafactor_factored(void **unused)
{
    af_case c = {.label = "factored (min_dim 2), decay_adam 0.99",
                 .hp = {.lr = 0.5, .b1 = 0.8, .wd = 0.05, .decay_adam = 0.99, .clip = 1.0},
                 .set_hparams = 1,
                 .min_dim = 2,
                 .weight_factored = 1,
                 .steps = 40,
                 .want_clipped = 1};
    run_adafactor(&c);
    /* A tighter threshold: clipping on most steps, with a slower "adam" decay. */
    af_case c2 = {.label = "factored (min_dim 2), clip 0.7, decay_adam 0.9",
                  .hp = {.lr = 0.05, .b1 = 0.9, .wd = 0.0, .decay_adam = 0.9, .clip = 0.7},
                  .set_hparams = 1,
                  .min_dim = 2,
                  .weight_factored = 1,
                  .steps = 35,
                  .want_clipped = 1};
    run_adafactor(&c2);
}

/* fc.weight kept whole (min_dim_size_to_factor 4 > 2), the paper's "pow" decay 1 - t^-0.8. */
static void test_adafactor_unfactored_pow(void **unused)
{
    af_case c = {
        .label = "unfactored (min_dim 4), decay_pow 0.8",
        .hp = {.lr = 0.5, .b1 = 0.7, .wd = 0.02, .decay_adam = 0.99, .decay_pow = 0.8, .clip = 1.0},
        .set_hparams = 1,
        .min_dim = 4,
        .weight_factored = 0,
        .steps = 40,
        .want_clipped = 1};
    run_adafactor(&c);
}

/* A 3-D tensor: two 2 x 2 matrices, each with its own row and column statistics; the host's
 * table out of offset order; no momentum (one_minus_beta1 = 1). */
static void test_adafactor_3d_tensor(void **unused)
{
    af_case c = {.label = "3-D (2, 2, 2) + bias, b1 0",
                 .hp = {.lr = 0.3, .b1 = 0.0, .wd = 0.1, .decay_adam = 0.95, .clip = 1.0},
                 .set_hparams = 1,
                 .layout = LAYOUT_CONV,
                 .steps = 30};
    run_adafactor(&c);
}

/* Rows of 19 and a vector of 11: the plugin's 8-lane loops and their tails, factored and not. */
static void test_adafactor_wide(void **unused)
{
    af_case c = {.label = "wide (3, 19) + (11), factored",
                 .hp = {.lr = 0.3, .b1 = 0.85, .wd = 0.03, .decay_adam = 0.99, .clip = 1.0},
                 .set_hparams = 1,
                 .layout = LAYOUT_WIDE,
                 .weight_factored = 1,
                 .steps = 30,
                 .want_clipped = 1};
    run_adafactor(&c);
    af_case c2 = {.label = "wide (3, 19) + (11), unfactored (min_dim 4), decay_pow 0.8",
                  .hp = {.lr = 1.0, .b1 = 0.5, .wd = 0.03, .decay_pow = 0.8, .clip = 1.0},
                  .set_hparams = 1,
                  .min_dim = 4,
                  .layout = LAYOUT_WIDE,
                  .steps = 30,
                  .want_clipped = 1};
    run_adafactor(&c2);
}

/* Every hyperparameter at its default: min_dim_size_to_factor 1 factors fc.weight. */
static void test_adafactor_defaults(void **unused)
{
    af_case c = {.label = "defaults",
                 .hp = {.lr = 1e-3, .b1 = 0.9, .wd = 0.0, .decay_adam = 0.99, .clip = 1.0},
                 .weight_factored = 1,
                 .steps = 30};
    run_adafactor(&c);
}

/* A tensor table that does not tile the buffer is refused at init, nothing left allocated. */
static void test_adafactor_bad_tensor_table(void **unused)
{
    const tp_plugin_desc *d = find(LIB_ADAFACTOR, "adafactor");
    for (int kase = 0; kase < 4; kase++) {
        tp_ctx ctx;
        tp_error err;
        void *sentinel = &ctx, *state = sentinel;
        mock_ctx_init(&ctx, 10);
        ctx.desc = d;
        switch (kase) {
        case 0: /* a gap: fc.bias shrunk to 2 floats */
            ctx.tensors[1].shape[0] = 2;
            ctx.tensors[1].numel = 2;
            break;
        case 1: /* an overlap: norm.scale moved onto fc.bias */
            ctx.tensors[2].offset = 8;
            break;
        case 2: /* numel does not match the shape */
            ctx.tensors[0].numel = 5;
            break;
        case 3: /* no table */
            ctx.num_tensors = 0;
            break;
        }
        TP_STRUCT_INIT(&err, tp_error);
        err.message[0] = '\0';
        assert_int_equal(d->init(mock_host(), &ctx, &state, &err), TP_ESTATE);
        print_message("bad tensor table %d: %s\n", kase, err.message);
        assert_non_null(strstr(err.message, "adafactor: "));
        assert_ptr_equal(state, sentinel);
        assert_int_equal(ctx.outstanding, 0);
        mock_ctx_free(&ctx);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* SAM: a recording host */

#define REC_MAX 4

static struct {
    int calls;   /* loss_and_grad calls since the last rec_reset */
    int fail_at; /* arm the mock's fail_grad just before this call (0-based); -1: never */
    int fail_code;
    const float *params_arg[REC_MAX];
    const tp_batch *batch[REC_MAX];
    tp_loss_opts opts[REC_MAX];
    int opts_null[REC_MAX];
    float theta[REC_MAX][10]; /* the parameter buffer at the call */
    float at[REC_MAX][10];    /* the point the gradient was asked at */
} rec;

static void rec_reset(void)
{
    memset(&rec, 0, sizeof rec);
    rec.fail_at = -1;
}

static int rec_loss_and_grad(tp_ctx *ctx, const float *params, const tp_batch *batch,
                             const tp_loss_opts *opts, float *grad, double *loss)
{
    int k = rec.calls++;
    if (k < REC_MAX && ctx->n == 10) {
        rec.params_arg[k] = params;
        rec.batch[k] = batch;
        rec.opts_null[k] = opts == NULL;
        if (opts != NULL)
            rec.opts[k] = *opts;
        memcpy(rec.theta[k], ctx->params, sizeof rec.theta[k]);
        memcpy(rec.at[k], params != NULL ? params : ctx->params, sizeof rec.at[k]);
    }
    if (k == rec.fail_at)
        ctx->fail_grad = rec.fail_code;
    return mock_host()->loss_and_grad(ctx, params, batch, opts, grad, loss);
}

static const tp_host *rec_host(void)
{
    static tp_host table;
    if (table.struct_size == 0) {
        table = *mock_host();
        table.loss_and_grad = rec_loss_and_grad;
    }
    return &table;
}

/* ---------------------------------------------------------------------------------------- */
/* SAM: the reference */

typedef struct sam_ref {
    double lr, b1, b2, wd, eps, rho;
    uint64_t t;
    double m[10], v[10];
    double pert[10]; /* theta + e of the last step */
} sam_ref;

/* One SAM step from the float parameters of ctx (before the update) with factor f. */
static void sam_ref_step(sam_ref *r, const tp_ctx *ctx, double f, double *want)
{
    double th[10], g1[10], g2[10], norm = 0.0;
    for (uint64_t i = 0; i < 10; i++) {
        th[i] = ctx->params[i];
        g1[i] = mock_grad(ctx, i);
        norm += g1[i] * g1[i];
    }
    norm = sqrt(norm);
    for (uint64_t i = 0; i < 10; i++) {
        r->pert[i] = th[i] + (norm > 0.0 ? r->rho * g1[i] / norm : 0.0);
        g2[i] = ctx->a[i] * (r->pert[i] - ctx->c[i]);
    }
    /* AdamW (PyTorch / optax form) with g2. */
    r->t++;
    const double bc1 = 1.0 - pow(r->b1, (double)r->t), bc2 = 1.0 - pow(r->b2, (double)r->t);
    for (uint64_t i = 0; i < 10; i++) {
        r->m[i] = r->b1 * r->m[i] + (1.0 - r->b1) * g2[i];
        r->v[i] = r->b2 * r->v[i] + (1.0 - r->b2) * g2[i] * g2[i];
        const double m_hat = r->m[i] / bc1, v_hat = r->v[i] / bc2;
        want[i] = th[i] - r->lr * f * (m_hat / (sqrt(v_hat) + r->eps) + r->wd * th[i]);
    }
}

/* P^{-1/2} x, P = (1 - b1^t)(sqrt(v / (1 - b2^t)) + eps). */
static double sam_ref_precond(const sam_ref *r, uint64_t i, double x)
{
    const double bc1 = 1.0 - pow(r->b1, (double)r->t), bc2 = 1.0 - pow(r->b2, (double)r->t);
    return x / sqrt(bc1 * (sqrt(r->v[i] / bc2) + r->eps));
}

typedef struct sam_run {
    tp_ctx ctx;
    void *state;
    sam_ref r;
    double max_err, max_perr, max_pert_err;
    int steps;
    int set_hparams;
} sam_run;

static void sam_run_init(sam_run *run, const sam_ref *hp, int set_hparams)
{
    const tp_plugin_desc *d = find(LIB_SAM, "sam");
    memset(run, 0, sizeof *run);
    mock_ctx_init(&run->ctx, 10);
    run->ctx.desc = d;
    run->r = *hp;
    run->set_hparams = set_hparams;
    if (set_hparams) {
        mock_set_hparam(&run->ctx, "learning_rate", hp->lr);
        mock_set_hparam(&run->ctx, "one_minus_beta1", 1.0 - hp->b1);
        mock_set_hparam(&run->ctx, "beta2", hp->b2);
        mock_set_hparam(&run->ctx, "weight_decay", hp->wd);
        mock_set_hparam(&run->ctx, "epsilon", hp->eps);
        mock_set_hparam(&run->ctx, "rho", hp->rho);
        mock_set_hparam(&run->ctx, "label_smoothing", 0.2);
        mock_set_hparam(&run->ctx, "dropout_rate", 0.1);
    }
    tp_error err;
    TP_STRUCT_INIT(&err, tp_error);
    assert_int_equal(d->init(rec_host(), &run->ctx, &run->state, &err), TP_OK);
    assert_int_equal(run->ctx.hparam_unknown, 0);
}

/* One step of plugin and reference, with every check of the two gradient calls. */
static void sam_run_step(sam_run *run)
{
    const tp_plugin_desc *d = find(LIB_SAM, "sam");
    tp_ctx *ctx = &run->ctx;
    step_io io;
    const uint64_t s = (uint64_t)run->steps;
    double f = test_factor(s), want[10];
    float before[10];
    step_io_init(&io, s, f);
    memcpy(before, ctx->params, sizeof before);
    sam_ref_step(&run->r, ctx, f, want);

    rec_reset();
    const uint32_t calls0 = ctx->grad_calls;
    assert_int_equal(d->update(run->state, rec_host(), ctx, &io.args, &io.err), TP_OK);
    /* Exactly two gradients: at theta (params NULL), then at a plugin-owned theta + e while the
     * parameter buffer was still theta; both on this step's batch with the loss options. */
    assert_int_equal(ctx->grad_calls - calls0, 2);
    assert_int_equal(rec.calls, 2);
    assert_null(rec.params_arg[0]);
    assert_non_null(rec.params_arg[1]);
    assert_ptr_not_equal(rec.params_arg[1], ctx->params);
    for (int k = 0; k < 2; k++) {
        assert_memory_equal(rec.theta[k], before, sizeof before);
        assert_ptr_equal(rec.batch[k], &io.batch);
        assert_false(rec.opts_null[k]);
        assert_true(rec.opts[k].label_smoothing == (run->set_hparams ? 0.2f : 0.0f));
        assert_true(rec.opts[k].dropout_rate == (run->set_hparams ? 0.1f : 0.0f));
        assert_int_equal(rec.opts[k].flags, 0);
    }
    for (uint64_t i = 0; i < 10; i++) {
        run->max_pert_err = fmax(run->max_pert_err, mixed_err(rec.at[1][i], run->r.pert[i]));
        run->max_err = fmax(run->max_err, mixed_err(ctx->params[i], want[i]));
    }

    float x[10], out[10], out2[10];
    probe(x, 10);
    assert_int_equal(d->precondition(run->state, rec_host(), ctx, x, out, &io.err), TP_OK);
    assert_int_equal(d->precondition(run->state, rec_host(), ctx, x, out2, &io.err), TP_OK);
    assert_memory_equal(out, out2, sizeof out);
    for (uint64_t i = 0; i < 10; i++) {
        double want_p = sam_ref_precond(&run->r, i, x[i]);
        run->max_perr = fmax(run->max_perr, fabs(out[i] - want_p) / fabs(want_p));
    }
    run->steps++;
}

static void sam_run_finish(sam_run *run, const char *label)
{
    const tp_plugin_desc *d = find(LIB_SAM, "sam");
    print_message("sam %s lr=%g b1=%g b2=%g wd=%g rho=%g: %d steps, max mixed error %.3g "
                  "(tolerance %.0e); theta + e max mixed error %.3g (tolerance %.0e); "
                  "precondition max relative error %.3g (tolerance 1e-5)\n",
                  label, run->r.lr, run->r.b1, run->r.b2, run->r.wd, run->r.rho, run->steps,
                  run->max_err, OPT_TOL, run->max_pert_err, OPT_TOL, run->max_perr);
    assert_true(run->max_err <= OPT_TOL);
    assert_true(run->max_pert_err <= OPT_TOL);
    assert_true(run->max_perr <= 1e-5);
    d->destroy(run->state, rec_host(), &run->ctx);
    assert_int_equal(run->ctx.outstanding, 0);
    assert_int_equal(run->ctx.bad_frees, 0);
    mock_ctx_free(&run->ctx);
}

static void test_sam_matches_reference(void **unused)
{
    const sam_ref cases[] = {
        {.lr = 0.02, .b1 = 0.9, .b2 = 0.99, .wd = 0.1, .eps = 1e-8, .rho = 0.05},
        /* A large radius (the ascent point far from theta) and a large eps. */
        {.lr = 0.05, .b1 = 0.6, .b2 = 0.9, .wd = 0.0, .eps = 0.1, .rho = 0.5},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sam_run run;
        sam_run_init(&run, &cases[k], 1);
        float x[10], out[10];
        tp_error err;
        TP_STRUCT_INIT(&err, tp_error);
        probe(x, 10);
        assert_int_equal(
            find(LIB_SAM, "sam")->precondition(run.state, rec_host(), &run.ctx, x, out, &err),
            TP_ESTATE);
        assert_non_null(strstr(err.message, "sam: "));
        for (int s = 0; s < 40; s++)
            sam_run_step(&run);
        assert_int_equal(run.ctx.grad_calls, 80);
        sam_run_finish(&run, "");
    }
}

static void test_sam_defaults(void **unused)
{
    const sam_ref hp = {.lr = 1e-3, .b1 = 0.9, .b2 = 0.999, .wd = 0.0, .eps = 1e-8, .rho = 0.05};
    sam_run run;
    sam_run_init(&run, &hp, 0);
    for (int s = 0; s < 30; s++)
        sam_run_step(&run);
    sam_run_finish(&run, "(defaults)");
}

/* g = 0 exactly (theta at the minimiser): no division by a zero norm, e = 0, theta + e = theta. */
static void test_sam_zero_gradient(void **unused)
{
    const sam_ref hp = {.lr = 0.01, .b1 = 0.9, .b2 = 0.999, .wd = 0.1, .eps = 1e-8, .rho = 0.05};
    sam_run run;
    sam_run_init(&run, &hp, 1);
    for (uint64_t i = 0; i < 10; i++)
        run.ctx.c[i] = (double)run.ctx.params[i];
    sam_run_step(&run);
    assert_memory_equal(rec.at[1], rec.theta[0], sizeof rec.at[1]);
    for (uint64_t i = 0; i < 10; i++)
        assert_true(isfinite(run.ctx.params[i]));
    sam_run_finish(&run, "(zero gradient)");
}

/* The SECOND gradient of an update fails: the wrapper arms the mock's one-shot fail_grad just
 * before that call. update returns the host's code, theta is bit-for-bit unchanged, the step
 * does not count (precondition still says TP_ESTATE on the first update, still gives the P of
 * the last good step later), and the following steps match a reference that never took it. */
static void test_sam_second_gradient_fails(void **unused)
{
    const tp_plugin_desc *d = find(LIB_SAM, "sam");
    const sam_ref hp = {.lr = 0.02, .b1 = 0.9, .b2 = 0.99, .wd = 0.1, .eps = 1e-8, .rho = 0.05};
    sam_run run;
    sam_run_init(&run, &hp, 1);
    float x[10], out[10], before[10];
    probe(x, 10);

    for (int phase = 0; phase < 2; phase++) {
        step_io io;
        step_io_init(&io, (uint64_t)run.steps, 1.0);
        memcpy(before, run.ctx.params, sizeof before);
        rec_reset();
        rec.fail_at = 1;
        rec.fail_code = TP_EDATA;
        const uint32_t calls0 = run.ctx.grad_calls;
        assert_int_equal(d->update(run.state, rec_host(), &run.ctx, &io.args, &io.err), TP_EDATA);
        assert_non_null(strstr(io.err.message, "sam: "));
        assert_int_equal(rec.calls, 2);                   /* it got to the second gradient */
        assert_int_equal(run.ctx.grad_calls - calls0, 1); /* which failed */
        assert_non_null(rec.params_arg[1]);
        assert_memory_equal(before, run.ctx.params, sizeof before);
        if (phase == 0) {
            assert_int_equal(d->precondition(run.state, rec_host(), &run.ctx, x, out, &io.err),
                             TP_ESTATE);
            for (int s = 0; s < 5; s++)
                sam_run_step(&run);
        } else {
            assert_int_equal(d->precondition(run.state, rec_host(), &run.ctx, x, out, &io.err),
                             TP_OK);
            for (uint64_t i = 0; i < 10; i++) {
                double want_p = sam_ref_precond(&run.r, i, x[i]);
                assert_true(fabs(out[i] - want_p) <= 1e-5 * fabs(want_p));
            }
        }
    }
    for (int s = 0; s < 25; s++)
        sam_run_step(&run);
    sam_run_finish(&run, "(second gradient failed twice)");
}

/* ---------------------------------------------------------------------------------------- */
/* Failure paths common to the optimizers */

static void test_init_out_of_memory(void **unused)
{
    check_init_out_of_memory(find(LIB_ADAFACTOR, "adafactor"));
    check_init_out_of_memory(find(LIB_SAM, "sam"));
}

static void test_update_passes_host_errors(void **unused)
{
    /* The first (for SAM: the first of two) gradient fails; the second is
     * test_sam_second_gradient_fails. */
    check_update_passes_host_errors(find(LIB_ADAFACTOR, "adafactor"));
    check_update_passes_host_errors(find(LIB_SAM, "sam"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptors_and_defaults),
        cmocka_unit_test(test_adafactor_factored),
        cmocka_unit_test(test_adafactor_unfactored_pow),
        cmocka_unit_test(test_adafactor_3d_tensor),
        cmocka_unit_test(test_adafactor_wide),
        cmocka_unit_test(test_adafactor_defaults),
        cmocka_unit_test(test_adafactor_bad_tensor_table),
        cmocka_unit_test(test_sam_matches_reference),
        cmocka_unit_test(test_sam_defaults),
        cmocka_unit_test(test_sam_zero_gradient),
        cmocka_unit_test(test_sam_second_gradient_fails),
        cmocka_unit_test(test_init_out_of_memory),
        cmocka_unit_test(test_update_passes_host_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
