/*
 * test_fmnist_resnet.c - the fmnist_resnet workload on small subsets of the real Fashion-MNIST
 * files and tiny networks (width 4): the registry, the tensor table of the base network,
 * initialisation (He convs, batch-norm scales, the zero / large last scale of each block, the
 * head), option errors that name file:line: key, the missing-dataset message, errors at call
 * time, the whole-model gradient against central finite differences (every tensor; ReLU, SiLU,
 * GELU, bn_init_scale 8, eval mode), determinism, batch-norm running statistics (momentum 0.9,
 * untouched in eval mode, reset by init_params, converged statistics make eval mode equal train
 * mode), chunked batches, evaluate against loss_and_grad, the three variants of the real .cfg,
 * and a few hundred Adam steps that learn.
 *
 * The data-dependent tests are skipped (with a message) when the dataset-fashion-mnist package
 * is not installed.
 *
 * Not here: the engine's op-level gradient tests (test_nn_conv.c), the IDX reader
 * (test_nn_idx.c), the data split itself (test_fmnist_mlp.c covers the same code).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/nn/nn.h"
#include "core/nn/workload.h"
#include "tp_wltest.h"
#include "workloads/fmnist_resnet/fmnist_resnet.h"

#define DATA_DIR "/usr/share/datasets/fashion-mnist"
#define CFG      "fmnist_resnet_test.cfg"
#define WL       "fmnist_resnet"

/* A tiny network (width 4, 3 stages, 1 block: 28 -> 14 -> 7) on 600 / 300 / 100 examples,
 * plus extra options. */
static tp_workload *create_tiny(const tp_wl_option *extra, size_t n_extra)
{
    tp_wl_option o[16] = {
        {"data.train_limit", NULL, 600, 1},
        {"data.validation_limit", NULL, 300, 2},
        {"data.test_limit", NULL, 100, 3},
        {"model.width", NULL, 4, 4},
    };
    assert_true(n_extra <= 12);
    if (n_extra)
        memcpy(o + 4, extra, n_extra * sizeof *extra);
    return tp_wltest_create_ok(WL, CFG, o, 4 + n_extra);
}

/* The shared instance: the base network (width 16) on 2000 train, 1000 validation, 500 test. */
static tp_workload *small;

static int setup_small(void **state)
{
    return tp_wltest_create_fmnist_small(WL, CFG, DATA_DIR, &small);
}

static int teardown_small(void **state)
{
    tp_wltest_free(&small);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */

static void test_registry(void **state)
{
    const tp_workload_desc *d = tp_workload_find("fmnist_resnet");
    assert_non_null(d);
    assert_string_equal(d->name, "fmnist_resnet");
    assert_string_equal(d->metric, "accuracy");
    assert_int_equal(d->maximize, 1);
    assert_null(d->prepare);
    uint64_t n = 1;
    assert_null(tp_fmnist_resnet_bn_state(NULL, &n));
    assert_int_equal(n, 0);
}

static void test_sizes_and_tensors(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_workload *w = small;
    assert_string_equal(w->name, "fmnist_resnet");
    assert_int_equal(w->split_size[TP_SPLIT_TRAIN], 2000);
    assert_int_equal(w->split_size[TP_SPLIT_VALIDATION], 1000);
    assert_int_equal(w->split_size[TP_SPLIT_TEST], 500);
    /* stem, 3 stages of one block (projections in stages 2 and 3), head. */
    static const struct {
        const char *name;
        tp_param_role role;
        uint32_t ndim, shape[4];
    } want[] = {
        {"stem.conv.weight", TP_PARAM_ROLE_WEIGHT, 4, {3, 3, 1, 16}},
        {"stem.bn.scale", TP_PARAM_ROLE_NORM_SCALE, 1, {16, 1, 1, 1}},
        {"stem.bn.bias", TP_PARAM_ROLE_NORM_BIAS, 1, {16, 1, 1, 1}},
        {"stage1.block1.conv1.weight", TP_PARAM_ROLE_WEIGHT, 4, {3, 3, 16, 16}},
        {"stage1.block1.bn1.scale", TP_PARAM_ROLE_NORM_SCALE, 1, {16, 1, 1, 1}},
        {"stage1.block1.bn1.bias", TP_PARAM_ROLE_NORM_BIAS, 1, {16, 1, 1, 1}},
        {"stage1.block1.conv2.weight", TP_PARAM_ROLE_WEIGHT, 4, {3, 3, 16, 16}},
        {"stage1.block1.bn2.scale", TP_PARAM_ROLE_NORM_SCALE, 1, {16, 1, 1, 1}},
        {"stage1.block1.bn2.bias", TP_PARAM_ROLE_NORM_BIAS, 1, {16, 1, 1, 1}},
        {"stage2.block1.conv1.weight", TP_PARAM_ROLE_WEIGHT, 4, {3, 3, 16, 32}},
        {"stage2.block1.bn1.scale", TP_PARAM_ROLE_NORM_SCALE, 1, {32, 1, 1, 1}},
        {"stage2.block1.bn1.bias", TP_PARAM_ROLE_NORM_BIAS, 1, {32, 1, 1, 1}},
        {"stage2.block1.conv2.weight", TP_PARAM_ROLE_WEIGHT, 4, {3, 3, 32, 32}},
        {"stage2.block1.bn2.scale", TP_PARAM_ROLE_NORM_SCALE, 1, {32, 1, 1, 1}},
        {"stage2.block1.bn2.bias", TP_PARAM_ROLE_NORM_BIAS, 1, {32, 1, 1, 1}},
        {"stage2.block1.proj.weight", TP_PARAM_ROLE_WEIGHT, 4, {1, 1, 16, 32}},
        {"stage2.block1.proj_bn.scale", TP_PARAM_ROLE_NORM_SCALE, 1, {32, 1, 1, 1}},
        {"stage2.block1.proj_bn.bias", TP_PARAM_ROLE_NORM_BIAS, 1, {32, 1, 1, 1}},
        {"stage3.block1.conv1.weight", TP_PARAM_ROLE_WEIGHT, 4, {3, 3, 32, 64}},
        {"stage3.block1.bn1.scale", TP_PARAM_ROLE_NORM_SCALE, 1, {64, 1, 1, 1}},
        {"stage3.block1.bn1.bias", TP_PARAM_ROLE_NORM_BIAS, 1, {64, 1, 1, 1}},
        {"stage3.block1.conv2.weight", TP_PARAM_ROLE_WEIGHT, 4, {3, 3, 64, 64}},
        {"stage3.block1.bn2.scale", TP_PARAM_ROLE_NORM_SCALE, 1, {64, 1, 1, 1}},
        {"stage3.block1.bn2.bias", TP_PARAM_ROLE_NORM_BIAS, 1, {64, 1, 1, 1}},
        {"stage3.block1.proj.weight", TP_PARAM_ROLE_WEIGHT, 4, {1, 1, 32, 64}},
        {"stage3.block1.proj_bn.scale", TP_PARAM_ROLE_NORM_SCALE, 1, {64, 1, 1, 1}},
        {"stage3.block1.proj_bn.bias", TP_PARAM_ROLE_NORM_BIAS, 1, {64, 1, 1, 1}},
        {"head.weight", TP_PARAM_ROLE_WEIGHT, 2, {64, 10, 1, 1}},
        {"head.bias", TP_PARAM_ROLE_BIAS, 1, {10, 1, 1, 1}},
    };
    const uint32_t n = sizeof want / sizeof want[0];
    assert_int_equal(w->num_tensors, n);
    uint64_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        const tp_tensor_info *t = &w->tensors[i];
        assert_string_equal(t->name, want[i].name);
        assert_int_equal(t->struct_size, sizeof(tp_tensor_info));
        assert_int_equal(t->role, want[i].role);
        assert_int_equal(t->ndim, want[i].ndim);
        uint64_t numel = 1;
        for (int d = 0; d < 4; d++) {
            assert_int_equal(t->shape[d], want[i].shape[d]);
            numel *= want[i].shape[d];
        }
        assert_int_equal(t->numel, numel);
        assert_int_equal(t->offset, off);
        off += t->numel;
    }
    assert_int_equal(off, w->num_params);
    assert_int_equal(w->num_params, 77754);
    /* Running statistics: mean and var per batch-norm layer (8 of them), not parameters. */
    uint64_t nbn;
    assert_non_null(tp_fmnist_resnet_bn_state(w, &nbn));
    assert_int_equal(nbn, 2 * (16 + 16 + 16 + 32 + 32 + 32 + 64 + 64 + 64));
    print_message("base network: %llu parameters in %u tensors, %llu running-statistic floats\n",
                  (unsigned long long)w->num_params, w->num_tensors, (unsigned long long)nbn);
}

static double std_of(const float *p, const tp_tensor_info *t)
{
    double s2 = 0.0;
    for (uint64_t i = 0; i < t->numel; i++)
        s2 += (double)p[t->offset + i] * p[t->offset + i];
    return sqrt(s2 / (double)t->numel);
}

static int all_equal(const float *p, const tp_tensor_info *t, float v)
{
    for (uint64_t i = 0; i < t->numel; i++)
        if (p[t->offset + i] != v)
            return 0;
    return 1;
}

static void test_init_params(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_workload *w = small;
    char err[512];
    float *a = tp_params_alloc(w->num_params), *b = tp_params_alloc(w->num_params);
    assert_int_equal(w->vt->init_params(w, 5, a, err, sizeof err), 0);
    assert_int_equal(w->vt->init_params(w, 5, b, err, sizeof err), 0);
    assert_memory_equal(a, b, w->num_params * sizeof(float));
    assert_int_equal(w->vt->init_params(w, 6, b, err, sizeof err), 0);
    assert_memory_not_equal(a, b, w->num_params * sizeof(float));
    /* He normal over fan_in = 3 * 3 * C_in. */
    const tp_tensor_info *c3 = tp_wltest_tensor(w, "stage3.block1.conv2.weight");
    double s = std_of(a, c3), he = sqrt(2.0 / (9.0 * 64.0));
    print_message("stage3.block1.conv2.weight std %.5f (He: %.5f)\n", s, he);
    assert_true(fabs(s - he) < 0.02 * he);
    const tp_tensor_info *head = tp_wltest_tensor(w, "head.weight");
    s = std_of(a, head);
    print_message("head.weight std %.5f (0.01)\n", s);
    assert_true(fabs(s - 0.01) < 0.15 * 0.01);
    assert_true(all_equal(a, tp_wltest_tensor(w, "head.bias"), 0.0f));
    /* Batch-norm scales 1, shifts 0; the last scale of each residual branch 0 (the
     * reference's bn_init_scale). */
    for (uint32_t t = 0; t < w->num_tensors; t++) {
        const tp_tensor_info *ti = &w->tensors[t];
        if (ti->role == TP_PARAM_ROLE_NORM_SCALE)
            assert_true(all_equal(a, ti, strstr(ti->name, ".bn2.") ? 0.0f : 1.0f));
        if (ti->role == TP_PARAM_ROLE_NORM_BIAS)
            assert_true(all_equal(a, ti, 0.0f));
    }
    assert_int_equal(w->vt->init_params(w, 5, NULL, err, sizeof err), TP_EINVAL);
    tp_params_free(a);
    tp_params_free(b);
}

static void test_option_errors(void **state)
{
    char err[1024];
    tp_workload *w = NULL;

    tp_wl_option bad_key[] = {{"data.dir", DATA_DIR, 0, 3}, {"model.depth", NULL, 1, 7}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_key, 2, &w, err, sizeof err), TP_ECONFIG);
    print_message("unknown key: %s\n", err);
    assert_non_null(strstr(err, CFG ":7: model.depth"));
    assert_non_null(strstr(err, "model.blocks"));
    assert_null(w);

    tp_wl_option bad_type[] = {{"model.width", "wide", 0, 9}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_type, 1, &w, err, sizeof err), TP_ECONFIG);
    print_message("wrong type: %s\n", err);
    assert_non_null(strstr(err, CFG ":9: model.width"));

    tp_wl_option bad_range[] = {{"model.stages", NULL, 5, 10}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_range, 1, &w, err, sizeof err), TP_ECONFIG);
    print_message("out of range: %s\n", err);
    assert_non_null(strstr(err, CFG ":10: model.stages"));

    tp_wl_option bad_int[] = {{"model.blocks", NULL, 1.5, 11}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_int, 1, &w, err, sizeof err), TP_ECONFIG);
    assert_non_null(strstr(err, CFG ":11: model.blocks"));

    tp_wl_option bad_choice[] = {{"model.activation", "tanh", 0, 12}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_choice, 1, &w, err, sizeof err), TP_ECONFIG);
    print_message("bad choice: %s\n", err);
    assert_non_null(strstr(err, CFG ":12: model.activation"));
    assert_non_null(strstr(err, "\"silu\""));

    tp_wl_option bad_scale[] = {{"model.bn_init_scale", "large", 0, 13}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_scale, 1, &w, err, sizeof err), TP_ECONFIG);
    assert_non_null(strstr(err, CFG ":13: model.bn_init_scale"));

    tp_wl_option wide[] = {{"model.width", NULL, 256, 14}, {"model.stages", NULL, 4, 15}};
    w = NULL;
    assert_int_equal(tp_wltest_create(WL, CFG, wide, 2, &w, err, sizeof err), TP_ECONFIG);
    print_message("too wide: %s\n", err);
    assert_non_null(strstr(err, CFG ":14: model.width"));

    /* Given on the command line (line 0). */
    tp_wl_option cli[] = {{"model.widht", NULL, 3, 0}};
    assert_int_equal(tp_wltest_create(WL, CFG, cli, 1, &w, err, sizeof err), TP_ECONFIG);
    print_message("command line: %s\n", err);
    assert_non_null(strstr(err, "model.widht"));
    assert_non_null(strstr(err, "command line"));
}

static void test_missing_dataset(void **state)
{
    char err[2048];
    tp_workload *w = NULL;
    tp_wl_option nodir[] = {{"data.dir", "/nonexistent/fashion-mnist", 0, 3}};
    int rc = tp_wltest_create(WL, CFG, nodir, 1, &w, err, sizeof err);
    print_message("missing dir: %s\n", err);
    assert_int_equal(rc, TP_ENOENT);
    assert_null(w);
    assert_non_null(strstr(err, "dataset-fashion-mnist"));
    assert_non_null(strstr(err, CFG ":3: data.dir"));

    tp_wl_option nofiles[] = {{"data.dir", TP_TEST_SOURCE_DIR "/tests", 0, 3}};
    rc = tp_wltest_create(WL, CFG, nofiles, 1, &w, err, sizeof err);
    print_message("missing files: %s\n", err);
    assert_int_equal(rc, TP_ENOENT);
    assert_non_null(strstr(err, "train-images-idx3-ubyte.gz"));

    if (tp_wltest_have_fmnist(DATA_DIR)) {
        tp_wl_option big[] = {{"data.test_limit", NULL, 10000, 4},
                              {"data.validation_limit", NULL, 20000, 5}};
        assert_int_equal(tp_wltest_create(WL, CFG, big, 2, &w, err, sizeof err), TP_ECONFIG);
        print_message("limit: %s\n", err);
        assert_non_null(strstr(err, CFG ":5: data.validation_limit"));
    }
}

static void test_errors_at_call(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_workload *w = small;
    char err[512];
    float *p = tp_params_alloc(w->num_params), *g = tp_params_alloc(w->num_params);
    assert_int_equal(w->vt->init_params(w, 1, p, err, sizeof err), 0);
    uint32_t idx[3] = {0, 2000, 5};
    double loss;
    int rc = w->vt->loss_and_grad(w, p, idx, NULL, 3, NULL, 0, g, &loss, NULL, err, sizeof err);
    print_message("range: %s\n", err);
    assert_int_equal(rc, TP_ERANGE);
    assert_non_null(strstr(err, "2000"));
    assert_non_null(strstr(err, "position 1"));
    idx[1] = 1999;
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 3, NULL, 0, g, &loss, NULL, err, sizeof err), 0);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 0, NULL, 0, g, &loss, NULL, err, sizeof err),
        TP_EINVAL);
    assert_int_equal(
        w->vt->loss_and_grad(w, NULL, idx, NULL, 3, NULL, 0, g, &loss, NULL, err, sizeof err),
        TP_EINVAL);
    tp_loss_opts bad = {sizeof bad, TP_SDK_VERSION, 1.0f, 0.0f, 0};
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 3, &bad, 0, g, &loss, NULL, err, sizeof err),
        TP_EINVAL);
    print_message("smoothing: %s\n", err);
    tp_eval_result ev;
    assert_int_equal(w->vt->evaluate(w, p, (tp_split)7, &ev, err, sizeof err), TP_EINVAL);
    assert_int_equal(w->vt->evaluate(w, NULL, TP_SPLIT_TEST, &ev, err, sizeof err), TP_EINVAL);
    tp_params_free(p);
    tp_params_free(g);
}

/* ---------------------------------------------------------------------------------------- */
/* Gradients */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Finite differences against the analytic gradient on 3 coordinates of every tensor of a tiny
 * network: the fourth-order central difference (-L(+2h) + 8 L(+h) - 8 L(-h) + L(-2h)) / 12h of
 * the loss summed in double, whose truncation error at h = 1e-2 stays below the float32
 * rounding noise of the loss (~1e-8). Relative difference |a - n| / max(|a|, |n|, 1e-3).
 * noise > 0 adds normal(0, noise) to every parameter after init (so zero-initialised scales are
 * not zero). eval_mode: running statistics set by a few train-mode calls first, then held.
 * kinks (ReLU): a difference step crosses kinks of the batch's units (a batch-norm shift moves
 * a whole channel), so some coordinates are off by a few percent however small the step (and a
 * smaller one drowns in rounding noise); then the median and the 90th percentile are held to
 * 2 tol and 5 tol instead of the maximum: a wrong formula is off by O(1) nearly everywhere. */
static void grad_check(const char *what, const tp_wl_option *extra, size_t n_extra, float noise,
                       float smoothing, int eval_mode, double h, double tol, int kinks)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_workload *w = create_tiny(extra, n_extra);
    char err[512];
    float *p = tp_params_alloc(w->num_params), *g = tp_params_alloc(w->num_params);
    assert_int_equal(w->vt->init_params(w, 3, p, err, sizeof err), 0);
    tp_rng r;
    tp_rng_seed(&r, 21);
    for (uint64_t i = 0; noise > 0.0f && i < w->num_params; i++)
        p[i] += noise * (float)tp_rng_normal(&r);
    enum { B = 12 };
    uint32_t idx[B];
    float wts[B], per[B];
    for (uint32_t i = 0; i < B; i++) {
        idx[i] = (i * 37 + 11) % 600;
        wts[i] = 0.5f + 0.1f * (float)(i % 6);
    }
    tp_loss_opts opts = {sizeof opts, TP_SDK_VERSION, smoothing, 0.0f,
                         eval_mode ? TP_LOSS_EVAL_MODE : 0};
    if (eval_mode) {
        tp_loss_opts train = {sizeof train, TP_SDK_VERSION, 0.0f, 0.0f, 0};
        for (int k = 0; k < 5; k++)
            tp_wltest_loss_at(w, p, idx, NULL, B, &train, 0, per);
    }
    double loss;
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, wts, B, &opts, 0, g, &loss, per, err, sizeof err), 0);
    assert_true(fabs(loss - tp_wltest_loss_at(w, p, idx, wts, B, &opts, 0, per)) < 1e-6);

    enum { PER_TENSOR = 3 };
    double *rels = malloc(w->num_tensors * PER_TENSOR * sizeof *rels);
    int checked = 0;
    for (uint32_t t = 0; t < w->num_tensors; t++) {
        const tp_tensor_info *ti = &w->tensors[t];
        double tensor_max = 0.0;
        for (int k = 0; k < PER_TENSOR; k++) {
            uint64_t j = ti->offset + tp_rng_below(&r, ti->numel);
            float v = p[j];
            double l[4];
            static const double steps[4] = {2.0, 1.0, -1.0, -2.0};
            for (int s = 0; s < 4; s++) {
                p[j] = (float)(v + steps[s] * h);
                l[s] = tp_wltest_loss_at(w, p, idx, wts, B, &opts, 0, per);
            }
            p[j] = v;
            double num = (-l[0] + 8.0 * l[1] - 8.0 * l[2] + l[3]) / (12.0 * h);
            double a = g[j];
            double rel = fabs(a - num) / fmax(fmax(fabs(a), fabs(num)), 1e-3);
            if (rel > tol / 2)
                print_message("  %s[%llu]: analytic %.7g numeric %.7g\n", ti->name,
                              (unsigned long long)(j - ti->offset), a, num);
            rels[checked++] = rel;
            tensor_max = fmax(tensor_max, fabs(a));
        }
        /* Every tensor takes part: some checked coordinate has a gradient. */
        if (tensor_max == 0.0)
            fail_msg("%s: %s has a zero gradient at all checked coordinates", what, ti->name);
    }
    qsort(rels, (size_t)checked, sizeof *rels, cmp_double);
    double med = rels[checked / 2], p90 = rels[checked * 9 / 10], max_rel = rels[checked - 1];
    print_message("%s: %u tensors, %d coordinates, step %.0e, relative difference median %.3g, "
                  "90%% %.3g, max %.3g (tolerance %.0e%s)\n",
                  what, w->num_tensors, checked, h, med, p90, max_rel, tol,
                  kinks ? ", 2x on the median, 5x on the 90th percentile" : "");
    if (kinks) {
        assert_true(med < 2.0 * tol);
        assert_true(p90 < 5.0 * tol);
    } else {
        assert_true(max_rel < tol);
    }
    free(rels);
    tp_params_free(p);
    tp_params_free(g);
    w->vt->free(w);
}

static void test_grad_silu_large_bn_init(void **state)
{
    /* The large_bn_init and silu variants' differences: bn2 scales of 8, SiLU. */
    tp_wl_option o[] = {{"model.activation", "silu", 0, 5}, {"model.bn_init_scale", NULL, 8, 6}};
    grad_check("silu, bn_init_scale 8, smoothing 0.1", o, 2, 0.0f, 0.1f, 0, 1e-2, 1e-2, 0);
}

static void test_grad_gelu_two_blocks(void **state)
{
    /* Two blocks a stage: identity shortcuts after the strided one. */
    tp_wl_option o[] = {{"model.activation", "gelu", 0, 5},
                        {"model.blocks", NULL, 2, 6},
                        {"model.stages", NULL, 2, 7}};
    grad_check("gelu, 2 stages of 2 blocks, noise 0.1", o, 3, 0.1f, 0.0f, 0, 1e-2, 1e-2, 0);
}

static void test_grad_relu(void **state)
{
    /* The base network; see grad_check on kinks. */
    grad_check("relu (base), noise 0.1, smoothing 0.2", NULL, 0, 0.1f, 0.2f, 0, 1e-3, 1e-2, 1);
}

static void test_grad_eval_mode(void **state)
{
    tp_wl_option o[] = {{"model.activation", "silu", 0, 5}, {"model.stages", NULL, 2, 6}};
    grad_check("eval mode (running statistics), silu, 2 stages, noise 0.1", o, 2, 0.1f, 0.1f, 1,
               1e-2, 1e-2, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Semantics */

static void test_determinism(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_workload *w = small;
    char err[512];
    uint64_t n = w->num_params;
    float *p = tp_params_alloc(n), *g1 = tp_params_alloc(n), *g2 = tp_params_alloc(n);
    assert_int_equal(w->vt->init_params(w, 9, p, err, sizeof err), 0);
    enum { B = 32 };
    uint32_t idx[B];
    float per1[B], per2[B];
    for (int i = 0; i < B; i++)
        idx[i] = (uint32_t)(i * 13 % 2000);
    tp_loss_opts o = {sizeof o, TP_SDK_VERSION, 0.1f, 0.0f, 0};
    double l1, l2;
    /* Garbage in the gradient buffer: the call overwrites. The running statistics change
     * between the calls; train mode does not read them. */
    memset(g1, 0xff, n * sizeof(float));
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &o, 5, g1, &l1, per1, err, sizeof err), 0);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &o, 6, g2, &l2, per2, err, sizeof err), 0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, n * sizeof(float));
    assert_memory_equal(per1, per2, sizeof per1);
    for (uint64_t i = 0; i < n; i++)
        assert_true(isfinite(g1[i]));
    /* No dropout in this model: a dropout rate changes nothing. */
    tp_loss_opts drop = {sizeof drop, TP_SDK_VERSION, 0.1f, 0.5f, 0};
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &drop, 7, g2, &l2, NULL, err, sizeof err), 0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, n * sizeof(float));
    /* NULL opts: no smoothing, train mode; so do a zeroed struct and one of 8 bytes (an older
     * writer). */
    tp_loss_opts zero = {sizeof zero, TP_SDK_VERSION, 0.0f, 0.0f, 0};
    tp_loss_opts old = {8, TP_SDK_VERSION, 0.5f, 0.5f, TP_LOSS_EVAL_MODE};
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, NULL, 1, g1, &l1, NULL, err, sizeof err), 0);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &zero, 2, g2, &l2, NULL, err, sizeof err), 0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &old, 2, g2, &l2, NULL, err, sizeof err), 0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    /* A second instance gives the same bits. */
    tp_wl_option so[] = {
        {"data.train_limit", NULL, 2000, 4},
        {"data.validation_limit", NULL, 1000, 5},
        {"data.test_limit", NULL, 500, 6},
    };
    tp_workload *w2 = tp_wltest_create_ok(WL, CFG, so, 3);
    assert_int_equal(
        w2->vt->loss_and_grad(w2, p, idx, NULL, B, &o, 5, g2, &l2, per2, err, sizeof err), 0);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &o, 5, g1, &l1, per1, err, sizeof err), 0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, n * sizeof(float));
    w2->vt->free(w2);
    tp_params_free(p);
    tp_params_free(g1);
    tp_params_free(g2);
}

static void test_batchnorm_state(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_workload *w = create_tiny(NULL, 0);
    char err[512];
    uint64_t n = w->num_params, ns;
    const float *st = tp_fmnist_resnet_bn_state(w, &ns);
    assert_non_null(st);
    float *p = tp_params_alloc(n), *g = tp_params_alloc(n);
    float *s0 = malloc(ns * sizeof *s0), *s1 = malloc(ns * sizeof *s1);
    assert_int_equal(w->vt->init_params(w, 4, p, err, sizeof err), 0);
    /* Fresh statistics: mean 0, var 1, per layer (mean (C) then var (C)). */
    uint64_t zeros = 0, ones = 0;
    for (uint64_t i = 0; i < ns; i++) {
        zeros += st[i] == 0.0f;
        ones += st[i] == 1.0f;
    }
    assert_int_equal(zeros, ns / 2);
    assert_int_equal(ones, ns / 2);
    /* The bn2 scales are 0 at init: make them 1 so every layer sees a real input. */
    for (uint32_t t = 0; t < w->num_tensors; t++)
        if (strstr(w->tensors[t].name, ".bn2.scale"))
            for (uint64_t i = 0; i < w->tensors[t].numel; i++)
                p[w->tensors[t].offset + i] = 1.0f;

    enum { B = 16 };
    uint32_t idx[B];
    float per_train[B], per_eval[B];
    for (int i = 0; i < B; i++)
        idx[i] = (uint32_t)(i * 11 % 600);
    tp_loss_opts train = {sizeof train, TP_SDK_VERSION, 0.0f, 0.0f, 0};
    tp_loss_opts eval = {sizeof eval, TP_SDK_VERSION, 0.0f, 0.0f, TP_LOSS_EVAL_MODE};
    tp_eval_result v0, v1;
    double l_train, l_eval;

    /* Eval mode and evaluate read the statistics and leave them alone. */
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_VALIDATION, &v0, err, sizeof err), 0);
    memcpy(s0, st, ns * sizeof *s0);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &eval, 0, g, &l_eval, per_eval, err, sizeof err),
        0);
    assert_memory_equal(s0, st, ns * sizeof *s0);

    /* One train-mode call (no gradient: per-example losses for data selection update them
     * too): running = 0.9 running + 0.1 batch. */
    assert_int_equal(w->vt->loss_and_grad(w, p, idx, NULL, B, &train, 0, NULL, &l_train, per_train,
                                          err, sizeof err),
                     0);
    memcpy(s1, st, ns * sizeof *s1);
    assert_memory_not_equal(s0, s1, ns * sizeof *s0);
    assert_true(l_train != l_eval); /* batch statistics vs mean 0 / var 1 */
    /* Frozen state (the diagnostics' objective): train mode, same loss bit for bit, and the
     * running statistics do not move. */
    tp_loss_opts frozen = {sizeof frozen, TP_SDK_VERSION, 0.0f, 0.0f, TP_WL_LOSS_FROZEN_STATE};
    double l_frozen;
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &frozen, 0, g, &l_frozen, NULL, err, sizeof err),
        0);
    assert_memory_equal(s1, st, ns * sizeof *s1);
    assert_memory_equal(&l_frozen, &l_train, sizeof l_train);
    /* Train mode repeated on the same batch: the statistics converge to the batch's
     * (0.9^150 ~ 1.4e-7). */
    for (int k = 0; k < 150; k++)
        assert_int_equal(w->vt->loss_and_grad(w, p, idx, NULL, B, &train, 0, k % 2 ? g : NULL,
                                              &l_train, per_train, err, sizeof err),
                         0);
    /* Layer by layer (C means then C vars): after one call mean = 0.1 m, var = 0.9 + 0.1 v,
     * with m, v the converged values. */
    double max_err = 0.0;
    uint64_t off = 0;
    for (uint32_t t = 0; t < w->num_tensors; t++) {
        const tp_tensor_info *ti = &w->tensors[t];
        if (ti->role != TP_PARAM_ROLE_NORM_SCALE)
            continue;
        uint64_t C = ti->numel;
        for (uint64_t c = 0; c < C; c++) {
            double m = st[off + c], v = st[off + C + c];
            max_err = fmax(max_err, fabs(s1[off + c] - 0.1 * m) / fmax(fabs(m), 1.0));
            max_err = fmax(max_err, fabs(s1[off + C + c] - (0.9 + 0.1 * v)) / fmax(v, 1.0));
            assert_true(v >= 0.0);
        }
        off += 2 * C;
    }
    assert_int_equal(off, ns);
    print_message("running statistics after one call vs momentum 0.9: max difference %.3g\n",
                  max_err);
    assert_true(max_err < 1e-5);
    /* With the batch's statistics as running ones, eval mode on that batch is train mode. */
    assert_int_equal(w->vt->loss_and_grad(w, p, idx, NULL, B, &eval, 0, NULL, &l_eval, per_eval,
                                          err, sizeof err),
                     0);
    double max_per = 0.0;
    for (int i = 0; i < B; i++)
        max_per = fmax(max_per, fabs(per_eval[i] - per_train[i]));
    print_message("converged statistics: loss train mode %.6f, eval mode %.6f, per-example max "
                  "difference %.3g\n",
                  l_train, l_eval, max_per);
    assert_true(max_per < 1e-3);
    assert_true(fabs(l_eval - l_train) < 1e-4);
    /* Evaluate uses the new statistics; init_params resets them (same bits as before). */
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_VALIDATION, &v1, err, sizeof err), 0);
    assert_true(v1.loss != v0.loss);
    float *q = tp_params_alloc(n);
    assert_int_equal(w->vt->init_params(w, 4, q, err, sizeof err), 0);
    tp_params_free(q);
    assert_memory_equal(s0, st, ns * sizeof *s0);
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_VALIDATION, &v1, err, sizeof err), 0);
    assert_memory_equal(&v0.loss, &v1.loss, sizeof v0.loss);
    assert_memory_equal(&v0.metric, &v1.metric, sizeof v0.metric);
    free(s0);
    free(s1);
    tp_params_free(p);
    tp_params_free(g);
    w->vt->free(w);
}

static void test_chunks_and_eval(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_workload *w = create_tiny(NULL, 0);
    char err[512];
    uint64_t n = w->num_params;
    float *p = tp_params_alloc(n), *g = tp_params_alloc(n), *gc = tp_params_alloc(n);
    assert_int_equal(w->vt->init_params(w, 2, p, err, sizeof err), 0);
    tp_rng r;
    tp_rng_seed(&r, 8);
    for (uint64_t i = 0; i < n; i++)
        p[i] += 0.05f * (float)tp_rng_normal(&r);
    /* A batch of 600 is three batch-norm batches (chunks) of 256, 256 and 88: its loss and
     * gradient are the chunks' summed with weights 256/600, 256/600, 88/600. */
    enum { N = 600 };
    static uint32_t idx[N];
    static float wts[N], per[N], per_c[N];
    for (int i = 0; i < N; i++) {
        idx[i] = (uint32_t)((i * 7919) % 600);
        wts[i] = (float)(i % 3);
    }
    double l, lc, sum = 0.0;
    assert_int_equal(w->vt->loss_and_grad(w, p, idx, wts, N, NULL, 0, g, &l, per, err, sizeof err),
                     0);
    static const uint32_t starts[4] = {0, 256, 512, 600};
    double *acc = calloc(n, sizeof *acc);
    for (int c = 0; c < 3; c++) {
        uint32_t m = starts[c + 1] - starts[c];
        assert_int_equal(w->vt->loss_and_grad(w, p, idx + starts[c], wts + starts[c], m, NULL, 0,
                                              gc, &lc, per_c + starts[c], err, sizeof err),
                         0);
        sum += lc * m;
        for (uint64_t i = 0; i < n; i++)
            acc[i] += (double)gc[i] * m / N;
    }
    double s = 0.0;
    for (int i = 0; i < N; i++)
        s += (double)wts[i] * per[i];
    assert_true(fabs(l - s / N) < 1e-9);
    assert_true(fabs(l - sum / N) < 1e-6 * l);
    assert_memory_equal(per, per_c, sizeof per);
    double max_diff = 0.0, max_g = 0.0;
    for (uint64_t i = 0; i < n; i++) {
        max_diff = fmax(max_diff, fabs(g[i] - acc[i]));
        max_g = fmax(max_g, fabs(g[i]));
    }
    print_message("batch of 600 vs its three chunks: gradient max difference %.3g (max |g| "
                  "%.3g)\n",
                  max_diff, max_g);
    assert_true(max_diff < 1e-5 * max_g);
    free(acc);
    /* evaluate on the training split is eval-mode loss_and_grad over all of it. */
    static uint32_t all[600];
    for (int i = 0; i < 600; i++)
        all[i] = (uint32_t)i;
    tp_loss_opts eval = {sizeof eval, TP_SDK_VERSION, 0.0f, 0.0f, TP_LOSS_EVAL_MODE};
    assert_int_equal(
        w->vt->loss_and_grad(w, p, all, NULL, 600, &eval, 0, NULL, &l, per, err, sizeof err), 0);
    tp_eval_result ev;
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_TRAIN, &ev, err, sizeof err), 0);
    assert_int_equal(ev.examples, 600);
    print_message("evaluate(train) loss %.6f, eval-mode loss_and_grad %.6f\n", ev.loss, l);
    assert_true(fabs(ev.loss - l) < 1e-6 * l);
    tp_params_free(p);
    tp_params_free(g);
    tp_params_free(gc);
    w->vt->free(w);
}

/* The base and the three variants of the real fmnist_resnet.cfg build (on a tiny subset), and
 * each changes what it should. */
static void test_cfg_variants(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    static const char *const variants[] = {NULL, "silu", "gelu", "large_bn_init"};
    char err[2048];
    double losses[4];
    float *p0 = NULL;
    uint64_t n0 = 0;
    for (int k = 0; k < 4; k++) {
        tp_workload_config cfg;
        memset(&cfg, 0, sizeof cfg);
        int rc = tp_config_load_workload(
            TP_TEST_SOURCE_DIR "/workloads/fmnist_resnet/fmnist_resnet.cfg", &cfg, err, sizeof err);
        if (rc)
            fail_msg("load: %s", err);
        assert_string_equal(cfg.name, "fmnist_resnet");
        assert_int_equal(cfg.num_variants, 3);
        if ((rc = tp_config_select_variant(&cfg, variants[k], err, sizeof err)))
            fail_msg("variant %s: %s", variants[k], err);
        static const char *const sets[] = {"data.train_limit=64", "data.validation_limit=16",
                                           "data.test_limit=16"};
        for (int i = 0; i < 3; i++)
            if ((rc = tp_config_apply_override(&cfg, sets[i], err, sizeof err)))
                fail_msg("override: %s", err);
        assert_true(cfg.validation_target > 0.5 && cfg.validation_target < 1.0);
        assert_true(cfg.test_target > 0.5 && cfg.test_target < 1.0);
        tp_wl_params wp = {cfg.file, cfg.options, cfg.num_options};
        tp_workload *w = NULL;
        if ((rc = tp_workload_find("fmnist_resnet")->create(&wp, &w, err, sizeof err)))
            fail_msg("create %s: %s", variants[k] ? variants[k] : "base", err);
        float *p = tp_params_alloc(w->num_params);
        assert_int_equal(w->vt->init_params(w, 1, p, err, sizeof err), 0);
        if (k == 0) {
            p0 = p;
            n0 = w->num_params;
        }
        assert_int_equal(w->num_params, n0); /* every variant keeps the layout */
        const tp_tensor_info *bn2 = tp_wltest_tensor(w, "stage2.block1.bn2.scale");
        assert_non_null(bn2);
        assert_true(all_equal(p, bn2, k == 3 ? 8.0f : 0.0f));
        assert_true(all_equal(p, tp_wltest_tensor(w, "stage2.block1.bn1.scale"), 1.0f));
        /* The base's parameters with scales of 1 (so the residual branches count), in each
         * variant's network: the activations change the loss. */
        for (uint32_t t = 0; t < w->num_tensors; t++)
            if (w->tensors[t].role == TP_PARAM_ROLE_NORM_SCALE)
                for (uint64_t i = 0; i < w->tensors[t].numel; i++)
                    p0[w->tensors[t].offset + i] = 1.0f;
        uint32_t idx[16];
        float per[16];
        for (int i = 0; i < 16; i++)
            idx[i] = (uint32_t)(i * 3);
        losses[k] = tp_wltest_loss_at(w, p0, idx, NULL, 16, NULL, 0, per);
        print_message("%-14s %6llu parameters, loss at the shared parameters %.5f (targets %.3f "
                      "/ %.3f)\n",
                      variants[k] ? variants[k] : "base", (unsigned long long)w->num_params,
                      losses[k], cfg.validation_target, cfg.test_target);
        if (p != p0)
            tp_params_free(p);
        w->vt->free(w);
        tp_config_free_workload(&cfg);
    }
    tp_params_free(p0);
    assert_true(losses[1] != losses[0] && losses[2] != losses[0] && losses[2] != losses[1]);
    assert_memory_equal(&losses[3], &losses[0], sizeof losses[0]); /* same network as the base */
}

static void test_adam_learns(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_workload *w = create_tiny(NULL, 0);
    char err[512];
    uint64_t n = w->num_params;
    float *p = tp_params_alloc(n), *g = tp_params_alloc(n), *m = tp_params_alloc(n),
          *v = tp_params_alloc(n);
    assert_int_equal(w->vt->init_params(w, 0, p, err, sizeof err), 0);
    tp_eval_result before, after, test;
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_VALIDATION, &before, err, sizeof err), 0);
    assert_int_equal(before.examples, 300);
    tp_rng r;
    tp_rng_seed(&r, 4);
    enum { B = 32, STEPS = 150 };
    uint32_t idx[B];
    double loss = 0.0, first = 0.0;
    const float b1 = 0.9f, b2 = 0.999f;
    for (int step = 1; step <= STEPS; step++) {
        for (int i = 0; i < B; i++)
            idx[i] = (uint32_t)tp_rng_below(&r, 600);
        assert_int_equal(
            w->vt->loss_and_grad(w, p, idx, NULL, B, NULL, 0, g, &loss, NULL, err, sizeof err), 0);
        if (step == 1)
            first = loss;
        /* Linear decay to 0, so the running statistics settle with the parameters. */
        float lr = 0.05f * (float)(STEPS - step + 1) / STEPS;
        float c1 = 1.0f - powf(b1, (float)step), c2 = 1.0f - powf(b2, (float)step);
        for (uint64_t i = 0; i < n; i++) {
            m[i] = b1 * m[i] + (1.0f - b1) * g[i];
            v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
            p[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + 1e-8f);
        }
    }
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_VALIDATION, &after, err, sizeof err), 0);
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_TEST, &test, err, sizeof err), 0);
    print_message("Adam %d steps of %d on 600 examples (width 4): train loss %.3f -> %.3f, "
                  "validation accuracy %.3f -> %.3f (loss %.3f), test accuracy %.3f\n",
                  STEPS, B, first, loss, before.metric, after.metric, after.loss, test.metric);
    assert_true(after.metric > 0.6);
    assert_true(test.metric > 0.55); /* 100 examples */
    assert_true(after.loss < before.loss);
    tp_params_free(p);
    tp_params_free(g);
    tp_params_free(m);
    tp_params_free(v);
    w->vt->free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_sizes_and_tensors),
        cmocka_unit_test(test_init_params),
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_missing_dataset),
        cmocka_unit_test(test_errors_at_call),
        cmocka_unit_test(test_grad_silu_large_bn_init),
        cmocka_unit_test(test_grad_gelu_two_blocks),
        cmocka_unit_test(test_grad_relu),
        cmocka_unit_test(test_grad_eval_mode),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_batchnorm_state),
        cmocka_unit_test(test_chunks_and_eval),
        cmocka_unit_test(test_cfg_variants),
        cmocka_unit_test(test_adam_learns),
    };
    return cmocka_run_group_tests(tests, setup_small, teardown_small);
}
