/*
 * test_fmnist_mlp.c - the fmnist_mlp workload on small subsets of the real Fashion-MNIST files:
 * the registry, sizes and the tensor table, option errors that name file:line: key, the
 * missing-dataset message, out-of-range indices, the loss against finite differences on random
 * parameter coordinates, bit-identical determinism, per-example losses and weights, chunked
 * batches, eval mode, and a few hundred plain SGD steps that learn.
 *
 * The data-dependent tests are skipped (with a message) when the dataset-fashion-mnist package
 * is not installed.
 *
 * Not here: the engine's op-level gradient tests (test_nn_ops.c), the IDX reader's corrupt-file
 * handling (test_nn_idx.c).
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

#include "core/nn/nn.h"
#include "core/nn/workload.h"
#include "tp_wltest.h"

#define DATA_DIR "/usr/share/datasets/fashion-mnist"
#define CFG      "fmnist_test.cfg"
#define WL       "fmnist_mlp"

/* The shared small instance: 2000 train, 1000 validation, 500 test. */
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
    const tp_workload_desc *d = tp_workload_find("fmnist_mlp");
    assert_non_null(d);
    assert_string_equal(d->name, "fmnist_mlp");
    assert_string_equal(d->metric, "accuracy");
    assert_int_equal(d->maximize, 1);
    assert_ptr_equal(tp_workload_at(0), d);
    assert_null(tp_workload_find("no_such_workload"));
    assert_null(tp_workload_find(NULL));
    size_t n = 0;
    while (tp_workload_at(n))
        n++;
    assert_true(n >= 1);
    assert_null(tp_workload_at(n));
}

static void test_sizes_and_tensors(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_workload *w = small;
    assert_string_equal(w->name, "fmnist_mlp");
    assert_string_equal(w->metric, "accuracy");
    assert_int_equal(w->maximize, 1);
    assert_int_equal(w->split_size[TP_SPLIT_TRAIN], 2000);
    assert_int_equal(w->split_size[TP_SPLIT_VALIDATION], 1000);
    assert_int_equal(w->split_size[TP_SPLIT_TEST], 500);
    assert_int_equal(w->num_params, 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10);
    assert_int_equal(w->num_tensors, 6);
    static const char *names[6] = {"fc1.weight", "fc1.bias",   "fc2.weight",
                                   "fc2.bias",   "fc3.weight", "fc3.bias"};
    static const uint32_t rows[6] = {784, 256, 256, 256, 256, 10};
    static const uint32_t cols[6] = {256, 1, 256, 1, 10, 1};
    uint64_t off = 0;
    for (uint32_t i = 0; i < 6; i++) {
        const tp_tensor_info *t = &w->tensors[i];
        assert_string_equal(t->name, names[i]);
        assert_int_equal(t->struct_size, sizeof(tp_tensor_info));
        assert_int_equal(t->role, i % 2 ? TP_PARAM_ROLE_BIAS : TP_PARAM_ROLE_WEIGHT);
        assert_int_equal(t->ndim, i % 2 ? 1 : 2);
        assert_int_equal(t->shape[0], rows[i]);
        assert_int_equal(t->shape[1], cols[i]);
        assert_int_equal(t->shape[2], 1);
        assert_int_equal(t->numel, (uint64_t)rows[i] * cols[i]);
        assert_int_equal(t->offset, off);
        off += t->numel;
    }
    assert_int_equal(off, w->num_params);
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
    /* He init of fc1: std sqrt(2 / 784); biases zero. */
    const tp_tensor_info *t = &w->tensors[0];
    double s2 = 0.0;
    for (uint64_t i = 0; i < t->numel; i++)
        s2 += (double)a[t->offset + i] * a[t->offset + i];
    double std = sqrt(s2 / (double)t->numel);
    print_message("fc1.weight std %.5f (He: %.5f)\n", std, sqrt(2.0 / 784.0));
    assert_true(fabs(std - sqrt(2.0 / 784.0)) < 0.02 * sqrt(2.0 / 784.0));
    for (uint64_t i = 0; i < w->tensors[1].numel; i++)
        assert_true(a[w->tensors[1].offset + i] == 0.0f);
    assert_int_equal(w->vt->init_params(w, 5, NULL, err, sizeof err), TP_EINVAL);
    tp_params_free(a);
    tp_params_free(b);
}

static void test_option_errors(void **state)
{
    char err[1024];
    tp_workload *w = NULL;

    tp_wl_option bad_key[] = {{"data.dir", DATA_DIR, 0, 3}, {"data.bogus", NULL, 1, 7}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_key, 2, &w, err, sizeof err), TP_ECONFIG);
    print_message("unknown key: %s\n", err);
    assert_non_null(strstr(err, CFG ":7: data.bogus"));
    assert_null(w);

    tp_wl_option bad_type[] = {{"model.hidden_width", "wide", 0, 9}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_type, 1, &w, err, sizeof err), TP_ECONFIG);
    print_message("wrong type: %s\n", err);
    assert_non_null(strstr(err, CFG ":9: model.hidden_width"));

    tp_wl_option bad_range[] = {{"model.depth", NULL, 2.5, 10}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_range, 1, &w, err, sizeof err), TP_ECONFIG);
    assert_non_null(strstr(err, CFG ":10: model.depth"));

    tp_wl_option bad_choice[] = {{"model.activation", "swish", 0, 11}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_choice, 1, &w, err, sizeof err), TP_ECONFIG);
    print_message("bad choice: %s\n", err);
    assert_non_null(strstr(err, CFG ":11: model.activation"));
    assert_non_null(strstr(err, "\"gelu\""));

    tp_wl_option bad_loss[] = {{"model.loss", NULL, 1, 12}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_loss, 1, &w, err, sizeof err), TP_ECONFIG);
    assert_non_null(strstr(err, CFG ":12: model.loss"));

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
    assert_non_null(strstr(err, "/nonexistent/fashion-mnist"));

    /* A directory without the files. */
    tp_wl_option nofiles[] = {{"data.dir", TP_TEST_SOURCE_DIR "/tests", 0, 3}};
    rc = tp_wltest_create(WL, CFG, nofiles, 1, &w, err, sizeof err);
    print_message("missing files: %s\n", err);
    assert_int_equal(rc, TP_ENOENT);
    assert_non_null(strstr(err, "dataset-fashion-mnist"));
    assert_non_null(strstr(err, "train-images-idx3-ubyte.gz"));
}

static void test_limit_too_large(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    char err[1024];
    tp_workload *w = NULL;
    tp_wl_option o[] = {{"data.validation_limit", NULL, 20000, 5}};
    assert_int_equal(tp_wltest_create(WL, CFG, o, 1, &w, err, sizeof err), TP_ECONFIG);
    print_message("limit: %s\n", err);
    assert_non_null(strstr(err, CFG ":5: data.validation_limit"));
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
    tp_loss_opts bad = {sizeof bad, TP_SDK_VERSION, 0.0f, 1.5f, 0};
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 3, &bad, 0, g, &loss, NULL, err, sizeof err),
        TP_EINVAL);
    tp_eval_result ev;
    assert_int_equal(w->vt->evaluate(w, p, (tp_split)7, &ev, err, sizeof err), TP_EINVAL);
    tp_params_free(p);
    tp_params_free(g);
}

/* ---------------------------------------------------------------------------------------- */
/* Gradients */

static void grad_check(const char *activation, const char *lossname, float smoothing, float dropout,
                       double tol)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_wl_option o[] = {
        {"data.train_limit", NULL, 200, 1},     {"data.validation_limit", NULL, 10, 2},
        {"data.test_limit", NULL, 10, 3},       {"model.hidden_width", NULL, 24, 4},
        {"model.activation", activation, 0, 5}, {"model.loss", lossname, 0, 6},
    };
    tp_workload *w = tp_wltest_create_ok(WL, CFG, o, 6);
    char err[512];
    float *p = tp_params_alloc(w->num_params), *g = tp_params_alloc(w->num_params);
    assert_int_equal(w->vt->init_params(w, 3, p, err, sizeof err), 0);
    enum { B = 16 };
    uint32_t idx[B];
    float wts[B], per[B];
    for (uint32_t i = 0; i < B; i++) {
        idx[i] = (i * 37 + 11) % 200;
        wts[i] = 0.5f + 0.1f * (float)(i % 6);
    }
    tp_loss_opts opts = {sizeof opts, TP_SDK_VERSION, smoothing, dropout, 0};
    double loss;
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, wts, B, &opts, 77, g, &loss, per, err, sizeof err), 0);
    assert_true(fabs(loss - tp_wltest_loss_at(w, p, idx, wts, B, &opts, 77, per)) < 1e-6);

    tp_rng r;
    tp_rng_seed(&r, 11);
    double max_rel = 0.0;
    const double eps = 1e-2;
    int checked = 0;
    /* Coordinates drawn from every tensor, so each layer's weights and biases are covered. */
    for (uint32_t t = 0; t < w->num_tensors; t++) {
        const tp_tensor_info *ti = &w->tensors[t];
        for (int k = 0; k < 6; k++) {
            uint64_t j = ti->offset + tp_rng_below(&r, ti->numel);
            float v = p[j];
            float vp = (float)(v + eps), vm = (float)(v - eps);
            p[j] = vp;
            double lp = tp_wltest_loss_at(w, p, idx, wts, B, &opts, 77, per);
            p[j] = vm;
            double lm = tp_wltest_loss_at(w, p, idx, wts, B, &opts, 77, per);
            p[j] = v;
            double num = (lp - lm) / ((double)vp - (double)vm);
            double a = g[j];
            double rel = fabs(a - num) / fmax(fmax(fabs(a), fabs(num)), 1e-2);
            if (rel > tol / 4)
                print_message("  %s[%llu]: analytic %.7g numeric %.7g\n", ti->name,
                              (unsigned long long)(j - ti->offset), a, num);
            max_rel = fmax(max_rel, rel);
            checked++;
        }
    }
    print_message("MLP %s/%s smoothing %.1f dropout %.1f: %d coordinates, max relative "
                  "difference %.3g (floor 1e-2, tolerance %.0e)\n",
                  activation, lossname, (double)smoothing, (double)dropout, checked, max_rel, tol);
    assert_true(max_rel < tol);
    tp_params_free(p);
    tp_params_free(g);
    w->vt->free(w);
}

/* data.standardize = "pixel": each input is standardised over the kept training examples.
 * Observed through a linear model (depth 0) with MSE at zero parameters, whose weight gradient
 * is -X^T Y / n: summed over the 10 one-hot outputs, -mean_i x_ij, for every pixel j. With
 * the global constants the means are those of the subset, far from 0. */
static void test_standardize_pixel(void **state)
{
    (void)state;
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_wl_option o[] = {
        {"data.train_limit", NULL, 1000, 1}, {"data.validation_limit", NULL, 100, 2},
        {"data.test_limit", NULL, 100, 3},   {"model.depth", NULL, 0, 4},
        {"model.loss", "mse", 0, 5},         {"data.standardize", "pixel", 0, 6},
    };
    for (int pixel = 0; pixel < 2; pixel++) {
        tp_workload *w = tp_wltest_create_ok(WL, CFG, o, pixel ? 6 : 5);
        float *params = calloc(w->num_params, sizeof *params);
        float *grad = malloc(w->num_params * sizeof *grad);
        uint32_t *idx = malloc(1000 * sizeof *idx);
        for (uint32_t i = 0; i < 1000; i++)
            idx[i] = i;
        double loss;
        char err[512];
        assert_int_equal(w->vt->loss_and_grad(w, params, idx, NULL, 1000, NULL, 0, grad, &loss,
                                              NULL, err, sizeof err),
                         0);
        double worst = 0.0, sum_abs = 0.0;
        for (int j = 0; j < 784; j++) {
            double mean = 0.0;
            for (int c = 0; c < 10; c++)
                mean -= grad[j * 10 + c]; /* fc1.weight is (784, 10), first in the buffer */
            worst = fmax(worst, fabs(mean));
            sum_abs += fabs(mean);
        }
        print_message("standardize %s: largest |pixel mean| %.2e, average %.2e\n",
                      pixel ? "pixel" : "global", worst, sum_abs / 784);
        if (pixel)
            assert_true(worst < 1e-4);
        else
            assert_true(worst > 0.1); /* the global constants leave per-pixel means */
        free(params);
        free(grad);
        free(idx);
        w->vt->free(w);
    }
}

static void test_grad_mlp_tanh_xent(void **state)
{
    grad_check("tanh", "cross_entropy", 0.1f, 0.2f, 1e-2);
}

static void test_grad_mlp_gelu_mse(void **state)
{
    grad_check("gelu", "mse", 0.0f, 0.0f, 1e-2);
}

static void test_grad_mlp_relu_xent(void **state)
{
    /* ReLU kinks: a step can cross one and break the difference; the tolerance is looser. */
    grad_check("relu", "cross_entropy", 0.0f, 0.0f, 3e-2);
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
    uint32_t idx[128];
    float per1[128], per2[128];
    for (int i = 0; i < 128; i++)
        idx[i] = (uint32_t)(i * 13 % 2000);
    tp_loss_opts o = {sizeof o, TP_SDK_VERSION, 0.1f, 0.3f, 0};
    double l1, l2;
    /* Garbage in the gradient buffers: the call overwrites. */
    memset(g1, 0xff, n * sizeof(float));
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 128, &o, 5, g1, &l1, per1, err, sizeof err), 0);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 128, &o, 5, g2, &l2, per2, err, sizeof err), 0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, n * sizeof(float));
    assert_memory_equal(per1, per2, sizeof per1);
    for (uint64_t i = 0; i < n; i++)
        assert_true(isfinite(g1[i]));
    /* Another dropout seed: another loss. */
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 128, &o, 6, g2, &l2, per2, err, sizeof err), 0);
    assert_true(l1 != l2);
    /* Eval mode turns dropout off: the same as no dropout. */
    tp_loss_opts ev = {sizeof ev, TP_SDK_VERSION, 0.1f, 0.3f, TP_LOSS_EVAL_MODE};
    tp_loss_opts nod = {sizeof nod, TP_SDK_VERSION, 0.1f, 0.0f, 0};
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 128, &ev, 5, g1, &l1, NULL, err, sizeof err), 0);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 128, &nod, 8, g2, &l2, NULL, err, sizeof err), 0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, n * sizeof(float));
    /* NULL opts: no smoothing, no dropout. An opts struct of the first 8 bytes only (an older
     * writer) means the same. */
    tp_loss_opts zero = {sizeof zero, TP_SDK_VERSION, 0.0f, 0.0f, 0};
    tp_loss_opts old = {8, TP_SDK_VERSION, 0.5f, 0.5f, 0};
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 128, NULL, 1, g1, &l1, NULL, err, sizeof err), 0);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 128, &zero, 2, g2, &l2, NULL, err, sizeof err), 0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 128, &old, 2, g2, &l2, NULL, err, sizeof err), 0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    tp_params_free(p);
    tp_params_free(g1);
    tp_params_free(g2);
}

static void test_weights_and_chunks(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_workload *w = small;
    char err[512];
    float *p = tp_params_alloc(w->num_params);
    assert_int_equal(w->vt->init_params(w, 2, p, err, sizeof err), 0);
    /* A batch of 3000, larger than one chunk (2048 rows), indices repeating, halves of 1500. */
    tp_wltest_check_chunks(w, p, 3000, 1500, 2000, 1e-9, 0.0, NULL);
    tp_params_free(p);
}

static void test_sgd_learns(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_workload *w = small;
    char err[512];
    uint64_t n = w->num_params;
    float *p = tp_params_alloc(n), *g = tp_params_alloc(n);
    assert_int_equal(w->vt->init_params(w, 0, p, err, sizeof err), 0);
    tp_eval_result before, after, test;
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_VALIDATION, &before, err, sizeof err), 0);
    assert_int_equal(before.examples, 1000);

    tp_rng r;
    tp_rng_seed(&r, 4);
    uint32_t idx[64];
    double loss = 0.0, first = 0.0;
    for (int step = 0; step < 300; step++) {
        for (int i = 0; i < 64; i++)
            idx[i] = (uint32_t)tp_rng_below(&r, 2000);
        assert_int_equal(
            w->vt->loss_and_grad(w, p, idx, NULL, 64, NULL, 0, g, &loss, NULL, err, sizeof err), 0);
        if (step == 0)
            first = loss;
        for (uint64_t i = 0; i < n; i++)
            p[i] -= 0.05f * g[i];
    }
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_VALIDATION, &after, err, sizeof err), 0);
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_TEST, &test, err, sizeof err), 0);
    print_message("SGD 300 steps of 64 on 2000 examples: train loss %.3f -> %.3f, validation "
                  "accuracy %.3f -> %.3f (loss %.3f), test accuracy %.3f\n",
                  first, loss, before.metric, after.metric, after.loss, test.metric);
    assert_true(after.metric > 0.6);
    assert_true(test.metric > 0.6);
    assert_true(after.loss < before.loss);
    assert_int_equal(test.examples, 500);
    tp_params_free(p);
    tp_params_free(g);
}

static void test_split_seed(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    /* Another split seed gives another validation set; the test set does not move. */
    tp_wl_option o[] = {
        {"data.train_limit", NULL, 100, 1},
        {"data.validation_limit", NULL, 500, 2},
        {"data.test_limit", NULL, 500, 3},
        {"data.split_seed", NULL, 1, 4},
    };
    tp_workload *w = tp_wltest_create_ok(WL, CFG, o, 4);
    char err[512];
    float *p = tp_params_alloc(w->num_params);
    assert_int_equal(w->vt->init_params(w, 0, p, err, sizeof err), 0);
    tp_wl_option o0[] = {{"data.train_limit", NULL, 100, 1},
                         {"data.validation_limit", NULL, 500, 2},
                         {"data.test_limit", NULL, 500, 3}};
    tp_workload *w0 = tp_wltest_create_ok(WL, CFG, o0, 3);
    tp_eval_result v1, v0, t1, t0;
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_VALIDATION, &v1, err, sizeof err), 0);
    assert_int_equal(w0->vt->evaluate(w0, p, TP_SPLIT_VALIDATION, &v0, err, sizeof err), 0);
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_TEST, &t1, err, sizeof err), 0);
    assert_int_equal(w0->vt->evaluate(w0, p, TP_SPLIT_TEST, &t0, err, sizeof err), 0);
    assert_true(v1.loss != v0.loss);
    assert_memory_equal(&t1.loss, &t0.loss, sizeof t0.loss);
    tp_params_free(p);
    w->vt->free(w);
    w0->vt->free(w0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),          cmocka_unit_test(test_sizes_and_tensors),
        cmocka_unit_test(test_init_params),       cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_missing_dataset),   cmocka_unit_test(test_limit_too_large),
        cmocka_unit_test(test_errors_at_call),    cmocka_unit_test(test_grad_mlp_tanh_xent),
        cmocka_unit_test(test_grad_mlp_gelu_mse), cmocka_unit_test(test_grad_mlp_relu_xent),
        cmocka_unit_test(test_determinism),       cmocka_unit_test(test_weights_and_chunks),
        cmocka_unit_test(test_sgd_learns),        cmocka_unit_test(test_split_seed),
        cmocka_unit_test(test_standardize_pixel),
    };
    return cmocka_run_group_tests(tests, setup_small, teardown_small);
}
