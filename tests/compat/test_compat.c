/*
 * test_compat.c - SDK compatibility: the current host loads the fixture plugin built against
 * each frozen SDK header (tests/compat/v<version>/) and calls every entry point it has through
 * libffi, checking what each call did to the host's buffers.
 *
 * Not here: refusals and the loader's own behaviour (tests/sdk/test_loader.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/hostapi.h"
#include "core/plugin.h"

/* ---------------------------------------------------------------------------------------- */
/* A test host: 4 parameters, learning_rate 0.125, a stream 100, 101, ... */

#define NPARAMS 4

static float g_params[NPARAMS];
static uint32_t g_next;
static int g_allocs, g_frees;
static tp_train_state g_train_state;
static int g_ctx_token;
#define CTX ((tp_ctx *)&g_ctx_token)

static float *th_params(tp_ctx *ctx, uint64_t *n)
{
    assert_ptr_equal(ctx, CTX);
    *n = NPARAMS;
    return g_params;
}

static int th_next_indices(tp_ctx *ctx, uint32_t n, uint32_t *idx)
{
    assert_ptr_equal(ctx, CTX);
    for (uint32_t i = 0; i < n; i++)
        idx[i] = g_next++;
    return TP_OK;
}

static void *th_alloc(tp_ctx *ctx, size_t bytes)
{
    assert_ptr_equal(ctx, CTX);
    g_allocs++;
    return calloc(1, bytes);
}

static void th_free(tp_ctx *ctx, void *p)
{
    assert_ptr_equal(ctx, CTX);
    g_frees += p != NULL;
    free(p);
}

static const tp_train_state *th_train_state(tp_ctx *ctx)
{
    (void)ctx;
    return &g_train_state;
}

static int th_hparam(tp_ctx *ctx, const char *name, double *value)
{
    (void)ctx;
    if (strcmp(name, "learning_rate") != 0)
        return TP_ENOENT;
    *value = 0.125;
    return TP_OK;
}

static tp_host make_host(void)
{
    tp_host h;
    memset(&h, 0, sizeof h);
    TP_STRUCT_INIT(&h, tp_host);
    h.params = th_params;
    h.next_indices = th_next_indices;
    h.alloc = th_alloc;
    h.free = th_free;
    h.train_state = th_train_state;
    h.hparam = th_hparam;
    TP_STRUCT_INIT(&g_train_state, tp_train_state);
    g_train_state.num_params = NPARAMS;
    memset(g_params, 0, sizeof g_params);
    g_next = 100;
    g_allocs = g_frees = 0;
    return h;
}

/* ---------------------------------------------------------------------------------------- */
/* SDK 1.0 */

static void test_v1_0(void **state)
{
    (void)state;
    char errbuf[1024];
    tp_plugin_lib *lib = NULL;
    int rc = tp_plugin_lib_open(TP_FIXTURE_DIR "/compat_v1_0.so", &lib, errbuf, sizeof errbuf);
    if (rc != 0)
        fail_msg("the SDK 1.0 fixture is refused: %s", errbuf);
    assert_int_equal(tp_plugin_lib_count(lib), 3);
    const tp_plugin *opt = tp_plugin_lib_get(lib, 0);
    const tp_plugin *sched = tp_plugin_lib_get(lib, 1);
    const tp_plugin *sel = tp_plugin_lib_get(lib, 2);
    assert_string_equal(opt->id, "compat_v1_0_sgd");
    assert_string_equal(sched->id, "compat_v1_0_step");
    assert_string_equal(sel->id, "compat_v1_0_next");
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(tp_plugin_lib_get(lib, i)->sdk_version, TP_SDK_MAKE_VERSION(1, 0));
    assert_int_equal(opt->num_hparams, 2);
    assert_string_equal(opt->hparams[0].name, "learning_rate");
    assert_true(opt->hparams[0].default_value == 0.01);
    assert_string_equal(opt->hparams[1].name, "num_microbatches");
    assert_int_equal(opt->hparams[1].type, TP_HPARAM_INT);

    tp_host host = make_host();
    tp_error err;
    TP_STRUCT_INIT(&err, tp_error);

    uint32_t bs = 0;
    assert_int_equal(tp_plugin_call_get_batch_size(opt, "fmnist_mlp", 64, &bs, &err), TP_OK);
    assert_int_equal(bs, 65);

    void *ost = NULL;
    assert_int_equal(tp_plugin_call_init(opt, &host, CTX, &ost, &err), TP_OK);
    assert_int_equal(tp_plugin_call_init(sched, &host, CTX, NULL, &err), TP_ENOTSUP);

    uint32_t idx[3];
    tp_batch batch;
    TP_STRUCT_INIT(&batch, tp_batch);
    batch.capacity = 3;
    batch.idx = idx;
    tp_update_args args;
    TP_STRUCT_INIT(&args, tp_update_args);
    args.batch = &batch;
    for (uint64_t step = 0; step < 12; step++) {
        assert_int_equal(tp_plugin_call_select_batch(sel, NULL, &host, CTX, &batch, &err), TP_OK);
        assert_int_equal(batch.size, 3);
        assert_int_equal(idx[0], 100 + 3 * step);
        assert_int_equal(
            tp_plugin_call_lr_factor(sched, NULL, &host, CTX, step, &args.lr_factor, &err), TP_OK);
        assert_true(args.lr_factor == (step < 10 ? 1.0 : 0.5));
        args.step = step;
        assert_int_equal(tp_plugin_call_update(opt, ost, &host, CTX, &args, &err), TP_OK);
    }
    /* sum over steps of 0.125 * factor * (step + 1): 0.125 * (55 + 0.5 * 23). */
    for (int i = 0; i < NPARAMS; i++)
        assert_float_equal(g_params[i], -0.125 * (55 + 0.5 * 23), 1e-5);

    assert_int_equal(tp_plugin_call_prepare_for_eval(opt, ost, &host, CTX, &err), TP_OK);
    assert_true(g_params[0] == 12.0f); /* the number of updates */

    float v[NPARAMS] = {2, 4, -8, 1}, out[NPARAMS];
    assert_int_equal(tp_plugin_call_precondition(opt, ost, &host, CTX, v, out, &err), TP_OK);
    for (int i = 0; i < NPARAMS; i++)
        assert_true(out[i] == 0.5f * v[i]);

    /* An update without a batch is an error with a message. */
    args.batch = NULL;
    assert_int_equal(tp_plugin_call_update(opt, ost, &host, CTX, &args, &err), TP_EINVAL);
    assert_string_equal(err.message, "update without a batch");

    tp_plugin_call_destroy(opt, ost, &host, CTX);
    assert_int_equal(g_allocs, 1);
    assert_int_equal(g_frees, 1);
    tp_plugin_lib_close(lib);
}

/* ---------------------------------------------------------------------------------------- */
/* SDK 1.1 */

static void test_v1_1(void **state)
{
    (void)state;
    char errbuf[1024];
    tp_plugin_lib *lib = NULL;
    int rc = tp_plugin_lib_open(TP_FIXTURE_DIR "/compat_v1_1.so", &lib, errbuf, sizeof errbuf);
    if (rc != 0)
        fail_msg("the SDK 1.1 fixture is refused: %s", errbuf);
    assert_int_equal(tp_plugin_lib_count(lib), 1);
    const tp_plugin *opt = tp_plugin_lib_get(lib, 0);
    assert_string_equal(opt->id, "compat_v1_1_eig");
    assert_int_equal(opt->sdk_version, TP_SDK_MAKE_VERSION(1, 1));

    tp_error err;
    TP_STRUCT_INIT(&err, tp_error);
    void *ost = NULL;

    /* A host table of the 1.0 size: the 1.1 plugin sees no sym_eig and refuses to start. */
    tp_host old = make_host();
    old.struct_size = (uint32_t)(offsetof(tp_host, hparam) + sizeof old.hparam);
    old.sym_eig = tp_hostapi_table()->sym_eig; /* past struct_size: must not be read */
    assert_int_equal(tp_plugin_call_init(opt, &old, CTX, &ost, &err), TP_EABI);
    assert_non_null(strstr(err.message, "sym_eig"));

    /* The current host: sym_eig of [[2, 1], [1, 2]] is {1, 3}; each update moves by 3 lr. */
    tp_host host = make_host();
    host.sym_eig = tp_hostapi_table()->sym_eig;
    TP_STRUCT_INIT(&err, tp_error);
    assert_int_equal(tp_plugin_call_init(opt, &host, CTX, &ost, &err), TP_OK);
    uint32_t idx[1] = {0};
    tp_batch batch;
    TP_STRUCT_INIT(&batch, tp_batch);
    batch.size = batch.capacity = 1;
    batch.idx = idx;
    tp_update_args args;
    TP_STRUCT_INIT(&args, tp_update_args);
    args.batch = &batch;
    args.lr_factor = 2.0;
    for (uint64_t step = 0; step < 4; step++) {
        args.step = step;
        assert_int_equal(tp_plugin_call_update(opt, ost, &host, CTX, &args, &err), TP_OK);
    }
    for (int i = 0; i < NPARAMS; i++)
        assert_float_equal(g_params[i], -4 * 0.125 * 2.0 * 3.0, 1e-5);
    tp_plugin_lib_close(lib);
}

/* ---------------------------------------------------------------------------------------- */
/* The frozen copy of the current version */

static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    *n = len;
    return buf;
}

/* Once a version has its frozen folder it is released: the SDK header of that version must
 * not change any more (a change needs a new minor). Skipped while the current version has no
 * folder yet (not released). */
static void test_current_header_matches_frozen_copy(void **state)
{
    (void)state;
    char frozen[1024];
    snprintf(frozen, sizeof frozen, "%s/tests/compat/v%d.%d/trainperf/trainperf.h",
             TP_TEST_SOURCE_DIR, TP_SDK_VERSION_MAJOR, TP_SDK_VERSION_MINOR);
    size_t nf = 0, nc = 0;
    char *f = read_all(frozen, &nf);
    if (f == NULL)
        skip();
    char *c = read_all(TP_TEST_SOURCE_DIR "/sdk/include/trainperf/trainperf.h", &nc);
    assert_non_null(c);
    if (nf != nc || memcmp(f, c, nc) != 0)
        fail_msg("sdk/include/trainperf/trainperf.h differs from its released copy %s: a "
                 "released header is frozen; bump TP_SDK_VERSION_MINOR for the change (and "
                 "freeze the new version when it is released)",
                 frozen);
    free(f);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_current_header_matches_frozen_copy),
        cmocka_unit_test(test_v1_0),
        cmocka_unit_test(test_v1_1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
