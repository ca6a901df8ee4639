/*
 * test_fmnist_vit.c - the fmnist_vit workload on small subsets of the real Fashion-MNIST files:
 * the registry, the tensor table of the base model and of each variant (names, shapes, roles,
 * parameter counts), init statistics per kind, option errors that name file:line: key, the
 * missing-dataset message, errors at call time, the patchify data path against the raw IDX
 * bytes, whole-model gradients against central finite differences on EVERY coordinate of tiny
 * models (base, glu, post_ln, map, and sincos2d with a pre_logits layer), bit-identical
 * determinism, dropout in train mode and not in eval mode, chunked batches and weights, and a
 * short Adam run that learns.
 *
 * The data-dependent tests are skipped (with a message) when the dataset-fashion-mnist package
 * is not installed.
 *
 * Not here: the engine's op-level gradient tests (test_nn_ops.c, test_nn_seq.c), the IDX
 * reader's corrupt-file handling (test_nn_idx.c), real trials (the .cfg comment records them).
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
#include "workloads/common/idx.h"

#define DATA_DIR "/usr/share/datasets/fashion-mnist"
#define CFG      "fmnist_vit_test.cfg"
#define WL       "fmnist_vit"

/* Options: the small data subset followed by up to 12 model options. */
typedef struct wl_opts {
    tp_wl_option o[16];
    size_t n;
} wl_opts;

static wl_opts small_data(uint32_t train, uint32_t validation, uint32_t test)
{
    wl_opts s = {.n = 3};
    s.o[0] = (tp_wl_option){"data.train_limit", NULL, train, 1};
    s.o[1] = (tp_wl_option){"data.validation_limit", NULL, validation, 2};
    s.o[2] = (tp_wl_option){"data.test_limit", NULL, test, 3};
    return s;
}

static void set_num(wl_opts *s, const char *key, double v)
{
    s->o[s->n] = (tp_wl_option){key, NULL, v, (int)s->n + 1};
    s->n++;
}

static void set_str(wl_opts *s, const char *key, const char *v)
{
    s->o[s->n] = (tp_wl_option){key, v, 0, (int)s->n + 1};
    s->n++;
}

/* The shared small instance of the base model: 2000 train, 1000 validation, 500 test. */
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
/* Registry, tensor table, init */

static void test_registry(void **state)
{
    const tp_workload_desc *d = tp_workload_find("fmnist_vit");
    assert_non_null(d);
    assert_string_equal(d->name, "fmnist_vit");
    assert_string_equal(d->metric, "accuracy");
    assert_int_equal(d->maximize, 1);
    assert_null(d->prepare);
}

/* Parameters of the model with width D, depth L, MLP width F, T tokens of PP pixels. */
static uint64_t count_params(uint64_t D, uint64_t L, uint64_t F, uint64_t T, uint64_t PP, int glu,
                             int post_ln, int map, int learned, uint64_t rep)
{
    uint64_t attn = 4 * (D * D + D), ln = 2 * D;
    uint64_t mlp = D * (glu ? 2 : 1) * F + (glu ? 2 : 1) * F + F * D + D;
    uint64_t n = PP * D + D + (learned ? T * D : 0) + L * (2 * ln + attn + mlp);
    if (!post_ln)
        n += ln;
    if (map)
        n += D + attn + ln + (D * F + F + F * D + D);
    if (rep)
        n += D * rep + rep;
    return n + (rep ? rep : D) * 10 + 10;
}

static void test_sizes_and_tensors(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_workload *w = small;
    assert_string_equal(w->name, "fmnist_vit");
    assert_string_equal(w->metric, "accuracy");
    assert_int_equal(w->maximize, 1);
    assert_int_equal(w->split_size[TP_SPLIT_TRAIN], 2000);
    assert_int_equal(w->split_size[TP_SPLIT_VALIDATION], 1000);
    assert_int_equal(w->split_size[TP_SPLIT_TEST], 500);
    assert_int_equal(w->num_params, count_params(64, 4, 256, 16, 49, 0, 0, 0, 1, 0));
    assert_int_equal(w->num_params, 204938);
    /* 2 patch + 1 pos + 4 x 16 per block + 2 encoder norm + 2 head. */
    assert_int_equal(w->num_tensors, 71);
    uint64_t off = 0;
    for (uint32_t i = 0; i < w->num_tensors; i++) {
        const tp_tensor_info *t = &w->tensors[i];
        assert_int_equal(t->struct_size, sizeof(tp_tensor_info));
        assert_int_equal(t->offset, off);
        off += t->numel;
    }
    assert_int_equal(off, w->num_params);
    static const struct {
        const char *name;
        tp_param_role role;
        uint32_t ndim, d0, d1;
    } want[] = {
        {"patch.weight", TP_PARAM_ROLE_WEIGHT, 2, 49, 64},
        {"patch.bias", TP_PARAM_ROLE_BIAS, 1, 64, 1},
        {"pos_embed", TP_PARAM_ROLE_EMBEDDING, 2, 16, 64},
        {"block0.ln1.scale", TP_PARAM_ROLE_NORM_SCALE, 1, 64, 1},
        {"block0.ln1.bias", TP_PARAM_ROLE_NORM_BIAS, 1, 64, 1},
        {"block0.attn.query.weight", TP_PARAM_ROLE_WEIGHT, 2, 64, 64},
        {"block0.attn.key.bias", TP_PARAM_ROLE_BIAS, 1, 64, 1},
        {"block2.attn.out.weight", TP_PARAM_ROLE_WEIGHT, 2, 64, 64},
        {"block3.ln2.scale", TP_PARAM_ROLE_NORM_SCALE, 1, 64, 1},
        {"block3.mlp.fc1.weight", TP_PARAM_ROLE_WEIGHT, 2, 64, 256},
        {"block3.mlp.fc2.weight", TP_PARAM_ROLE_WEIGHT, 2, 256, 64},
        {"encoder_norm.scale", TP_PARAM_ROLE_NORM_SCALE, 1, 64, 1},
        {"head.weight", TP_PARAM_ROLE_WEIGHT, 2, 64, 10},
        {"head.bias", TP_PARAM_ROLE_BIAS, 1, 10, 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const tp_tensor_info *t = tp_wltest_tensor(w, want[i].name);
        if (!t)
            fail_msg("no tensor %s", want[i].name);
        assert_int_equal(t->role, want[i].role);
        assert_int_equal(t->ndim, want[i].ndim);
        assert_int_equal(t->shape[0], want[i].d0);
        assert_int_equal(t->shape[1], want[i].d1);
    }
    assert_null(tp_wltest_tensor(w, "block4.ln1.scale"));
    assert_null(tp_wltest_tensor(w, "map.probe"));
    assert_string_equal(w->tensors[w->num_tensors - 1].name, "head.bias");
}

/* Mean and root mean square of a tensor's values, and the largest magnitude. */
static void stats(const float *p, const tp_tensor_info *t, double *mean, double *rms, double *max)
{
    double s = 0.0, s2 = 0.0, m = 0.0;
    for (uint64_t i = 0; i < t->numel; i++) {
        double v = p[t->offset + i];
        s += v;
        s2 += v * v;
        m = fmax(m, fabs(v));
    }
    *mean = s / (double)t->numel;
    *rms = sqrt(s2 / (double)t->numel);
    *max = m;
}

static void test_init_params(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    wl_opts s = small_data(100, 100, 100);
    set_str(&s, "model.mlp", "glu");
    set_str(&s, "model.pool", "map");
    set_num(&s, "model.rep_size", 64);
    tp_workload *w = tp_wltest_create_ok(WL, CFG, s.o, s.n);
    char err[512];
    float *a = tp_params_alloc(w->num_params), *b = tp_params_alloc(w->num_params);
    assert_int_equal(w->vt->init_params(w, 5, a, err, sizeof err), 0);
    assert_int_equal(w->vt->init_params(w, 5, b, err, sizeof err), 0);
    assert_memory_equal(a, b, w->num_params * sizeof(float));
    assert_int_equal(w->vt->init_params(w, 6, b, err, sizeof err), 0);
    assert_memory_not_equal(a, b, w->num_params * sizeof(float));
    assert_int_equal(w->vt->init_params(w, 5, NULL, err, sizeof err), TP_EINVAL);

    /* name, expected rms, largest allowed magnitude (0: must be exactly `rms` everywhere). */
    const double xav64 = sqrt(6.0 / 128.0), glu = sqrt(6.0 / (64.0 + 256.0));
    const double lecun49 = sqrt(1.0 / 49.0), lecun64 = sqrt(1.0 / 64.0),
                 trunc = 0.87962566103423978;
    const double probe = sqrt(6.0 / 65.0);
    static const char *exact_zero[] = {"patch.bias",          "block1.attn.query.bias",
                                       "block0.mlp.fc1.bias", "map.attn.out.bias",
                                       "head.weight",         "head.bias",
                                       "pre_logits.bias",     "block2.ln1.bias"};
    static const char *exact_one[] = {"block0.ln1.scale", "block3.ln2.scale", "encoder_norm.scale",
                                      "map.ln.scale"};
    const struct {
        const char *name;
        double rms, max;
    } random[] = {
        {"patch.weight", lecun49, 2.0 * lecun49 / trunc},
        {"pre_logits.weight", lecun64, 2.0 * lecun64 / trunc},
        {"block0.attn.query.weight", xav64 / sqrt(3.0), xav64},
        {"block3.attn.out.weight", xav64 / sqrt(3.0), xav64},
        {"map.attn.key.weight", xav64 / sqrt(3.0), xav64},
        {"block1.mlp.fc1.weight", glu / sqrt(3.0), glu},
        {"block1.mlp.fc2.weight", glu / sqrt(3.0), glu},
        {"map.mlp.fc1.weight", glu / sqrt(3.0), glu},
        {"pos_embed", 0.02, 0.02 * 6.0},
        {"map.probe", probe / sqrt(3.0), probe},
    };
    double mean, rms, max;
    for (size_t i = 0; i < sizeof exact_zero / sizeof exact_zero[0]; i++) {
        const tp_tensor_info *t = tp_wltest_tensor(w, exact_zero[i]);
        assert_non_null(t);
        stats(a, t, &mean, &rms, &max);
        assert_true(max == 0.0);
    }
    for (size_t i = 0; i < sizeof exact_one / sizeof exact_one[0]; i++) {
        const tp_tensor_info *t = tp_wltest_tensor(w, exact_one[i]);
        assert_non_null(t);
        for (uint64_t k = 0; k < t->numel; k++)
            assert_true(a[t->offset + k] == 1.0f);
    }
    for (size_t i = 0; i < sizeof random / sizeof random[0]; i++) {
        const tp_tensor_info *t = tp_wltest_tensor(w, random[i].name);
        assert_non_null(t);
        stats(a, t, &mean, &rms, &max);
        /* Four standard deviations of a normal sample's rms (relative 1 / sqrt(2 n)). */
        double tol = 4.0 / sqrt(2.0 * (double)t->numel);
        print_message("%-26s rms %.5f (want %.5f), mean %+.5f, max %.4f (bound %.4f)\n",
                      random[i].name, rms, random[i].rms, mean, max, random[i].max);
        assert_true(fabs(rms - random[i].rms) < tol * random[i].rms);
        assert_true(fabs(mean) < 4.0 * random[i].rms / sqrt((double)t->numel) + 1e-12);
        assert_true(max <= random[i].max * (1.0 + 1e-6));
    }
    /* Independent streams: two kernels of one shape are not the same numbers. */
    const tp_tensor_info *q = tp_wltest_tensor(w, "block0.attn.query.weight"),
                         *k = tp_wltest_tensor(w, "block0.attn.key.weight");
    assert_memory_not_equal(a + q->offset, a + k->offset, q->numel * sizeof(float));
    tp_params_free(a);
    tp_params_free(b);
    w->vt->free(w);
}

/* ---------------------------------------------------------------------------------------- */
/* Errors */

static void test_option_errors(void **state)
{
    char err[1024];
    tp_workload *w = NULL;

    tp_wl_option bad_key[] = {{"data.dir", DATA_DIR, 0, 3}, {"model.bogus", NULL, 1, 7}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_key, 2, &w, err, sizeof err), TP_ECONFIG);
    print_message("unknown key: %s\n", err);
    assert_non_null(strstr(err, CFG ":7: model.bogus"));
    assert_null(w);

    tp_wl_option bad_patch[] = {{"model.patch_size", NULL, 5, 8}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_patch, 1, &w, err, sizeof err), TP_ECONFIG);
    print_message("patch: %s\n", err);
    assert_non_null(strstr(err, CFG ":8: model.patch_size"));
    assert_non_null(strstr(err, "divisor of 28"));

    tp_wl_option bad_heads[] = {{"model.width", NULL, 64, 4}, {"model.heads", NULL, 3, 9}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_heads, 2, &w, err, sizeof err), TP_ECONFIG);
    print_message("heads: %s\n", err);
    assert_non_null(strstr(err, CFG ":9: model.heads"));

    tp_wl_option bad_sincos[] = {{"model.width", NULL, 6, 10},
                                 {"model.heads", NULL, 1, 11},
                                 {"model.posemb", "sincos2d", 0, 12}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_sincos, 3, &w, err, sizeof err), TP_ECONFIG);
    print_message("sincos: %s\n", err);
    assert_non_null(strstr(err, CFG ":10: model.width"));

    tp_wl_option bad_choice[] = {{"model.pool", "cls", 0, 13}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_choice, 1, &w, err, sizeof err), TP_ECONFIG);
    print_message("bad choice: %s\n", err);
    assert_non_null(strstr(err, CFG ":13: model.pool"));
    assert_non_null(strstr(err, "\"map\""));

    tp_wl_option bad_type[] = {{"model.mlp", NULL, 1, 14}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_type, 1, &w, err, sizeof err), TP_ECONFIG);
    assert_non_null(strstr(err, CFG ":14: model.mlp"));

    tp_wl_option bad_range[] = {{"model.depth", NULL, 13, 15}};
    assert_int_equal(tp_wltest_create(WL, CFG, bad_range, 1, &w, err, sizeof err), TP_ECONFIG);
    print_message("range: %s\n", err);
    assert_non_null(strstr(err, CFG ":15: model.depth"));

    /* Given on the command line (line 0). */
    tp_wl_option cli[] = {{"model.norm", "layernorm", 0, 0}};
    assert_int_equal(tp_wltest_create(WL, CFG, cli, 1, &w, err, sizeof err), TP_ECONFIG);
    print_message("command line: %s\n", err);
    assert_non_null(strstr(err, "command line"));
    assert_non_null(strstr(err, "model.norm"));
    assert_null(w);
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
    assert_int_equal(rc, TP_ENOENT);
    assert_non_null(strstr(err, "train-images-idx3-ubyte.gz"));

    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_wl_option big[] = {{"data.test_limit", NULL, 10000, 4},
                          {"data.validation_limit", NULL, 10001, 5}};
    assert_int_equal(tp_wltest_create(WL, CFG, big, 2, &w, err, sizeof err), TP_ECONFIG);
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
    /* At init the head is zero: every logit is 0 and the loss is log 10. */
    assert_true(fabs(loss - log(10.0)) < 1e-5);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 0, NULL, 0, g, &loss, NULL, err, sizeof err),
        TP_EINVAL);
    assert_int_equal(
        w->vt->loss_and_grad(w, NULL, idx, NULL, 3, NULL, 0, g, &loss, NULL, err, sizeof err),
        TP_EINVAL);
    tp_loss_opts bad = {sizeof bad, TP_SDK_VERSION, 0.0f, 1.5f, 0};
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 3, &bad, 0, g, &loss, NULL, err, sizeof err),
        TP_EINVAL);
    tp_loss_opts bad_ls = {sizeof bad_ls, TP_SDK_VERSION, -0.1f, 0.0f, 0};
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 3, &bad_ls, 0, g, &loss, NULL, err, sizeof err),
        TP_EINVAL);
    tp_eval_result ev;
    assert_int_equal(w->vt->evaluate(w, p, (tp_split)7, &ev, err, sizeof err), TP_EINVAL);
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_TEST, NULL, err, sizeof err), TP_EINVAL);
    tp_params_free(p);
    tp_params_free(g);
}

/* ---------------------------------------------------------------------------------------- */
/* The data path */

/* Patchify, checked through the gradient. With depth 0, post-LN (so no LayerNorm at all), GAP
 * and width 1, the logit path is z = mean_t (x_t . W) + b + mean_t pos_t, so for one example
 * dL/dW[k] / dL/db = mean over the tokens of pixel k of each patch: the standardised mean of
 * the pixels (r, c) with r mod P = k / P and c mod P = k mod P. Computed here from the raw IDX
 * bytes and the split permutation, for patches of 7 and of 4. */
static void test_patchify(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    char err[1024];
    tp_idx raw = {0};
    assert_int_equal(
        tp_idx_read_u8(DATA_DIR "/train-images-idx3-ubyte.gz", 3, &raw, err, sizeof err), 0);
    uint32_t *perm = malloc(60000 * sizeof *perm);
    for (uint32_t i = 0; i < 60000; i++)
        perm[i] = i;
    tp_rng r;
    tp_rng_seed(&r, 3); /* data.split_seed below */
    tp_rng_shuffle_u32(&r, perm, 60000);

    const uint32_t patches[2] = {7, 4};
    for (int v = 0; v < 2; v++) {
        uint32_t P = patches[v], T = (28 / P) * (28 / P);
        wl_opts s = small_data(300, 10, 10);
        set_num(&s, "data.split_seed", 3);
        set_num(&s, "model.patch_size", P);
        set_num(&s, "model.width", 1);
        set_num(&s, "model.heads", 1);
        set_num(&s, "model.depth", 0);
        set_str(&s, "model.norm", "post_ln");
        tp_workload *w = tp_wltest_create_ok(WL, CFG, s.o, s.n);
        float *p = tp_params_alloc(w->num_params), *g = tp_params_alloc(w->num_params);
        assert_int_equal(w->vt->init_params(w, 1, p, err, sizeof err), 0);
        const tp_tensor_info *pw = tp_wltest_tensor(w, "patch.weight"),
                             *pb = tp_wltest_tensor(w, "patch.bias"),
                             *hw = tp_wltest_tensor(w, "head.weight");
        assert_int_equal(pw->numel, P * P);
        for (int c = 0; c < 10; c++)
            p[hw->offset + c] = 0.3f * (float)(c - 4); /* a head that passes gradient */
        double max_diff = 0.0;
        for (uint32_t j = 0; j < 300; j += 37) {
            uint32_t idx = j;
            double loss;
            assert_int_equal(
                w->vt->loss_and_grad(w, p, &idx, NULL, 1, NULL, 0, g, &loss, NULL, err, sizeof err),
                0);
            double gb = g[pb->offset];
            assert_true(fabs(gb) > 1e-4);
            const uint8_t *img = raw.data + (uint64_t)perm[j] * 784;
            for (uint32_t k = 0; k < P * P; k++) {
                double want = 0.0;
                for (uint32_t rr = k / P; rr < 28; rr += P)
                    for (uint32_t cc = k % P; cc < 28; cc += P)
                        want += (img[rr * 28 + cc] / 255.0 - 0.2860) / 0.3530;
                want /= T;
                max_diff = fmax(max_diff, fabs(g[pw->offset + k] / gb - want));
            }
        }
        print_message("patches of %u (%u tokens): dW/db vs the patch-averaged raw pixels, max "
                      "difference %.2g\n",
                      P, T, max_diff);
        assert_true(max_diff < 1e-4);
        tp_params_free(p);
        tp_params_free(g);
        w->vt->free(w);
    }
    free(perm);
    tp_idx_free(&raw);
}

/* ---------------------------------------------------------------------------------------- */
/* Gradients */

/* d loss / d p[j] by central differences at steps h and h / 2, combined by Richardson
 * extrapolation (4 D(h/2) - D(h)) / 3, which cancels the h^2 term of the error: the
 * attention softmax and small LayerNorms of the tiny models are curved enough for it to
 * matter at h = 1e-2, and a smaller h would drown in float32 rounding. */
static double richardson(tp_workload *w, float *p, uint64_t j, double h, const uint32_t *idx,
                         const float *wts, uint32_t n, const tp_loss_opts *o, float *per)
{
    float v = p[j];
    double d[2];
    for (int k = 0; k < 2; k++) {
        float vp = (float)(v + h / (1 + k)), vm = (float)(v - h / (1 + k));
        p[j] = vp;
        double lp = tp_wltest_loss_at(w, p, idx, wts, n, o, 77, per);
        p[j] = vm;
        double lm = tp_wltest_loss_at(w, p, idx, wts, n, o, 77, per);
        d[k] = (lp - lm) / ((double)vp - (double)vm);
    }
    p[j] = v;
    return (4.0 * d[1] - d[0]) / 3.0;
}

/* A tiny model (width 8, 2 heads, depth 2, MLP 12, 16 tokens) with the `extra` options, its
 * parameters moved off init (the zero head would stop every other gradient), the gradient of
 * a weighted batch of 6 with label smoothing and dropout against central differences on every
 * coordinate. */
static void grad_check(const char *what, const tp_wl_option *extra, size_t n_extra)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    wl_opts s = small_data(60, 10, 10);
    set_num(&s, "model.width", 8);
    set_num(&s, "model.heads", 2);
    set_num(&s, "model.depth", 2);
    set_num(&s, "model.mlp_dim", 12);
    for (size_t i = 0; i < n_extra; i++)
        s.o[s.n++] = extra[i];
    tp_workload *w = tp_wltest_create_ok(WL, CFG, s.o, s.n);
    char err[512];
    float *p = tp_params_alloc(w->num_params), *g = tp_params_alloc(w->num_params);
    assert_int_equal(w->vt->init_params(w, 3, p, err, sizeof err), 0);
    tp_rng r;
    tp_rng_seed(&r, 12);
    for (uint64_t i = 0; i < w->num_params; i++)
        p[i] += (float)(0.3 * tp_rng_normal(&r));
    enum { B = 6 };
    uint32_t idx[B];
    float wts[B], per[B];
    for (uint32_t i = 0; i < B; i++) {
        idx[i] = (i * 37 + 11) % 60;
        wts[i] = 0.5f + 0.2f * (float)i;
    }
    /* Dropout on: the same seed gives the same masks, so the loss is a smooth function. */
    tp_loss_opts opts = {sizeof opts, TP_SDK_VERSION, 0.1f, 0.1f, 0};
    double loss;
    memset(g, 0xff, w->num_params * sizeof(float));
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, wts, B, &opts, 77, g, &loss, per, err, sizeof err), 0);
    assert_true(fabs(loss - tp_wltest_loss_at(w, p, idx, wts, B, &opts, 77, per)) < 1e-6);

    const double eps = 1e-2, floor = 1e-2, tol = 1e-2;
    double max_rel = 0.0;
    const char *worst = "";
    for (uint32_t t = 0; t < w->num_tensors; t++) {
        const tp_tensor_info *ti = &w->tensors[t];
        double tensor_max = 0.0, tensor_g = 0.0;
        for (uint64_t j = ti->offset; j < ti->offset + ti->numel; j++) {
            double n = richardson(w, p, j, eps, idx, wts, B, &opts, per), a = g[j];
            double rel = fabs(a - n) / fmax(fmax(fabs(a), fabs(n)), floor);
            if (rel > tol / 2)
                print_message("  %s[%llu]: analytic %.7g numeric %.7g\n", ti->name,
                              (unsigned long long)(j - ti->offset), a, n);
            tensor_max = fmax(tensor_max, rel);
            tensor_g = fmax(tensor_g, fabs(a));
        }
        /* Every tensor takes part: some coordinate has a gradient well above the noise. */
        /* Except the key biases: q . (k_j + b) shifts every logit of a query alike, and the
         * softmax does not see it, so their gradient is zero. */
        if (!(tensor_g > 1e-4) && !strstr(ti->name, ".key.bias"))
            fail_msg("%s: %s gets no gradient (max %g)", what, ti->name, tensor_g);
        if (tensor_max > max_rel) {
            max_rel = tensor_max;
            worst = ti->name;
        }
    }
    print_message("%-18s %u tensors, all %llu coordinates: max relative difference %.3g (%s; "
                  "floor %.0e, tolerance %.0e)\n",
                  what, w->num_tensors, (unsigned long long)w->num_params, max_rel, worst, floor,
                  tol);
    assert_true(max_rel < tol);
    tp_params_free(p);
    tp_params_free(g);
    w->vt->free(w);
}

static void test_grad_base(void **state)
{
    grad_check("base", NULL, 0);
}

static void test_grad_glu(void **state)
{
    grad_check("glu", (tp_wl_option[]){{"model.mlp", "glu", 0, 20}}, 1);
}

static void test_grad_post_ln(void **state)
{
    grad_check("post_ln", (tp_wl_option[]){{"model.norm", "post_ln", 0, 20}}, 1);
}

static void test_grad_map(void **state)
{
    grad_check("map", (tp_wl_option[]){{"model.pool", "map", 0, 20}}, 1);
}

static void test_grad_sincos_pre_logits(void **state)
{
    grad_check(
        "sincos2d+rep_size",
        (tp_wl_option[]){{"model.posemb", "sincos2d", 0, 20}, {"model.rep_size", NULL, 6, 21}}, 2);
}

/* ---------------------------------------------------------------------------------------- */
/* Semantics */

/* Parameters off init (a nonzero head) so losses and gradients depend on everything. */
static void init_moved(tp_workload *w, float *p, uint64_t seed)
{
    char err[512];
    assert_int_equal(w->vt->init_params(w, seed, p, err, sizeof err), 0);
    tp_rng r;
    tp_rng_seed(&r, seed + 100);
    for (uint64_t i = 0; i < w->num_params; i++)
        p[i] += (float)(0.05 * tp_rng_normal(&r));
}

static void test_determinism_and_dropout(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_workload *w = small;
    char err[512];
    uint64_t n = w->num_params;
    float *p = tp_params_alloc(n), *g1 = tp_params_alloc(n), *g2 = tp_params_alloc(n);
    init_moved(w, p, 9);
    enum { B = 64 };
    uint32_t idx[B];
    float per1[B], per2[B];
    for (int i = 0; i < B; i++)
        idx[i] = (uint32_t)(i * 13 % 2000);
    tp_loss_opts o = {sizeof o, TP_SDK_VERSION, 0.1f, 0.2f, 0};
    double l1, l2;
    memset(g1, 0xff, n * sizeof(float)); /* garbage: the call overwrites */
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &o, 5, g1, &l1, per1, err, sizeof err), 0);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &o, 5, g2, &l2, per2, err, sizeof err), 0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, n * sizeof(float));
    assert_memory_equal(per1, per2, sizeof per1);
    for (uint64_t i = 0; i < n; i++)
        assert_true(isfinite(g1[i]));
    /* Another dropout seed: another loss. */
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &o, 6, g2, &l2, per2, err, sizeof err), 0);
    print_message("dropout 0.2, seeds 5 and 6: loss %.6f and %.6f\n", l1, l2);
    assert_true(l1 != l2);
    /* Eval mode turns dropout off: bit for bit the same as rate 0, whatever the seed. */
    tp_loss_opts ev = {sizeof ev, TP_SDK_VERSION, 0.1f, 0.2f, TP_LOSS_EVAL_MODE};
    tp_loss_opts nod = {sizeof nod, TP_SDK_VERSION, 0.1f, 0.0f, 0};
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &ev, 5, g1, &l1, NULL, err, sizeof err), 0);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &nod, 8, g2, &l2, NULL, err, sizeof err), 0);
    print_message("eval mode %.6f, no dropout %.6f\n", l1, l2);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, n * sizeof(float));
    /* NULL opts: no smoothing, no dropout; so is an opts of the first 8 bytes only. */
    tp_loss_opts zero = {sizeof zero, TP_SDK_VERSION, 0.0f, 0.0f, 0};
    tp_loss_opts old = {8, TP_SDK_VERSION, 0.5f, 0.5f, 0};
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, NULL, 1, g1, &l1, NULL, err, sizeof err), 0);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &zero, 2, g2, &l2, NULL, err, sizeof err), 0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &old, 2, g2, &l2, NULL, err, sizeof err), 0);
    assert_memory_equal(&l1, &l2, sizeof l1);
    /* Label smoothing changes the loss. */
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, B, &nod, 1, NULL, &l2, NULL, err, sizeof err), 0);
    assert_true(l1 != l2);
    tp_params_free(p);
    tp_params_free(g1);
    tp_params_free(g2);
}

static void test_weights_and_chunks(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    tp_workload *w = small;
    float *p = tp_params_alloc(w->num_params);
    init_moved(w, p, 2);
    /* A batch of 600, several chunks (256 rows each), indices repeating, halves of 300 (not
     * chunk-aligned). */
    tp_wltest_check_chunks(w, p, 600, 300, 2000, 1e-9, 0.0, NULL);
    tp_params_free(p);
}

/* A step of loss_and_grad and an evaluation of the validation split run and are finite. */
static void run_once(tp_workload *w, const char *what)
{
    char err[512];
    float *p = tp_params_alloc(w->num_params), *g = tp_params_alloc(w->num_params);
    init_moved(w, p, 4);
    uint32_t idx[32];
    for (int i = 0; i < 32; i++)
        idx[i] = (uint32_t)(i * 3);
    tp_loss_opts o = {sizeof o, TP_SDK_VERSION, 0.1f, 0.1f, 0};
    double loss;
    assert_int_equal(
        w->vt->loss_and_grad(w, p, idx, NULL, 32, &o, 1, g, &loss, NULL, err, sizeof err), 0);
    tp_eval_result ev;
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_VALIDATION, &ev, err, sizeof err), 0);
    print_message("%-24s %6llu parameters in %2u tensors, loss %.4f, validation loss %.4f\n", what,
                  (unsigned long long)w->num_params, w->num_tensors, loss, ev.loss);
    assert_true(isfinite(loss) && isfinite(ev.loss));
    assert_int_equal(ev.examples, 300);
    tp_params_free(p);
    tp_params_free(g);
}

/* The three variants at full size (the .cfg's settings) build, differ from the base's table
 * where they should, train a step and evaluate; so does a model with the other options. */
static void test_variants(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    static const struct {
        const char *key, *value;
    } variant[] = {{"model.mlp", "glu"}, {"model.norm", "post_ln"}, {"model.pool", "map"}};
    for (int v = 0; v < 3; v++) {
        wl_opts s = small_data(100, 300, 100);
        set_str(&s, variant[v].key, variant[v].value);
        tp_workload *w = tp_wltest_create_ok(WL, CFG, s.o, s.n);
        uint64_t want = count_params(64, 4, 256, 16, 49, v == 0, v == 1, v == 2, 1, 0);
        assert_int_equal(w->num_params, want);
        const tp_tensor_info *fc1 = tp_wltest_tensor(w, "block0.mlp.fc1.weight");
        assert_non_null(fc1);
        assert_int_equal(fc1->shape[1], v == 0 ? 512 : 256);
        assert_int_equal(tp_wltest_tensor(w, "block0.mlp.fc1.bias")->numel, v == 0 ? 512 : 256);
        assert_true((tp_wltest_tensor(w, "encoder_norm.scale") == NULL) == (v == 1));
        const tp_tensor_info *probe = tp_wltest_tensor(w, "map.probe");
        assert_true((probe != NULL) == (v == 2));
        if (probe) {
            assert_int_equal(probe->ndim, 3);
            assert_int_equal(probe->shape[2], 64);
            assert_int_equal(probe->role, TP_PARAM_ROLE_OTHER);
            assert_non_null(tp_wltest_tensor(w, "map.attn.value.weight"));
            assert_non_null(tp_wltest_tensor(w, "map.ln.scale"));
            assert_int_equal(tp_wltest_tensor(w, "map.mlp.fc1.weight")->shape[1], 256);
        }
        run_once(w, variant[v].value);
        w->vt->free(w);
    }
    /* Patches of 4: 49 tokens of 16 pixels; sincos2d: no pos_embed; a pre_logits layer. */
    wl_opts s = small_data(100, 300, 100);
    set_num(&s, "model.patch_size", 4);
    set_str(&s, "model.posemb", "sincos2d");
    set_num(&s, "model.rep_size", 32);
    tp_workload *w = tp_wltest_create_ok(WL, CFG, s.o, s.n);
    assert_int_equal(w->num_params, count_params(64, 4, 256, 49, 16, 0, 0, 0, 0, 32));
    assert_int_equal(tp_wltest_tensor(w, "patch.weight")->shape[0], 16);
    assert_null(tp_wltest_tensor(w, "pos_embed"));
    assert_int_equal(tp_wltest_tensor(w, "pre_logits.weight")->shape[1], 32);
    assert_int_equal(tp_wltest_tensor(w, "head.weight")->shape[0], 32);
    run_once(w, "patch 4, sincos2d, rep 32");
    w->vt->free(w);
}

/* A few hundred Adam steps of a small ViT on 2000 examples learn. */
static void test_adam_learns(void **state)
{
    TP_WLTEST_REQUIRE_FMNIST(DATA_DIR);
    wl_opts s = small_data(2000, 1000, 500);
    set_num(&s, "model.width", 32);
    set_num(&s, "model.depth", 2);
    tp_workload *w = tp_wltest_create_ok(WL, CFG, s.o, s.n);
    char err[512];
    uint64_t n = w->num_params;
    float *p = tp_params_alloc(n), *g = tp_params_alloc(n), *m = tp_params_alloc(n),
          *v = tp_params_alloc(n);
    assert_int_equal(w->vt->init_params(w, 0, p, err, sizeof err), 0);
    tp_eval_result before, after, test;
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_VALIDATION, &before, err, sizeof err), 0);
    tp_rng r;
    tp_rng_seed(&r, 4);
    uint32_t idx[64];
    double loss = 0.0, first = 0.0;
    const int steps = 250;
    for (int step = 1; step <= steps; step++) {
        for (int i = 0; i < 64; i++)
            idx[i] = (uint32_t)tp_rng_below(&r, 2000);
        assert_int_equal(
            w->vt->loss_and_grad(w, p, idx, NULL, 64, NULL, 0, g, &loss, NULL, err, sizeof err), 0);
        if (step == 1)
            first = loss;
        double lr = 2e-3 * fmin(1.0, step / 25.0), c1 = 1.0 - pow(0.9, step),
               c2 = 1.0 - pow(0.999, step);
        for (uint64_t i = 0; i < n; i++) {
            m[i] = 0.9f * m[i] + 0.1f * g[i];
            v[i] = 0.999f * v[i] + 0.001f * g[i] * g[i];
            p[i] -= (float)(lr * (m[i] / c1) / (sqrt(v[i] / c2) + 1e-8));
        }
    }
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_VALIDATION, &after, err, sizeof err), 0);
    assert_int_equal(w->vt->evaluate(w, p, TP_SPLIT_TEST, &test, err, sizeof err), 0);
    print_message("Adam %d steps of 64 on 2000 examples: train loss %.3f -> %.3f, validation "
                  "accuracy %.3f -> %.3f (loss %.3f), test accuracy %.3f\n",
                  steps, first, loss, before.metric, after.metric, after.loss, test.metric);
    assert_true(after.metric > 0.65);
    assert_true(test.metric > 0.65);
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
        cmocka_unit_test(test_patchify),
        cmocka_unit_test(test_grad_base),
        cmocka_unit_test(test_grad_glu),
        cmocka_unit_test(test_grad_post_ln),
        cmocka_unit_test(test_grad_map),
        cmocka_unit_test(test_grad_sincos_pre_logits),
        cmocka_unit_test(test_determinism_and_dropout),
        cmocka_unit_test(test_weights_and_chunks),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_adam_learns),
    };
    return cmocka_run_group_tests(tests, setup_small, teardown_small);
}
