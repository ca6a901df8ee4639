/*
 * test_loader.c - the plugin loader (core/plugin.h) and `trainperf check` (core/check.h).
 *
 * A good fixture (sdk/fixtures/good.c) must load with its hyperparameters read right, and calls
 * through libffi must reach it with the arguments intact; one refusal per rule of trainperf.h
 * (sdk/fixtures/refuse.c, one .so per case, plus files the test makes: text named .so, an ELF
 * executable, a .so for another machine), each checked for the file, the symbol or field, and
 * the reason in its message; plugin sets, folder scans and the check report.
 *
 * Not here: SDK compatibility across versions (tests/compat/test_compat.c).
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
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

#include "core/check.h"
#include "core/plugin.h"
#include "sdk/fixtures/fixture.h"

#define ERRLEN 2048

/* ---------------------------------------------------------------------------------------- */
/* Helpers */

static const char *fixture(const char *name)
{
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s.so", TP_FIXTURE_DIR, name);
    return p;
}

/* Fail unless `msg` holds every string of the NULL-terminated list. */
static void assert_mentions(const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    for (const char *s = va_arg(ap, const char *); s != NULL; s = va_arg(ap, const char *)) {
        if (strstr(msg, s) == NULL)
            fail_msg("message\n  %s\ndoes not mention\n  %s", msg, s);
    }
    va_end(ap);
}

/* Open `path`, expect it refused with `code`, nothing returned, and a message that starts with
 * the path; the caller checks the rest of the message. */
static void open_refused(const char *path, int code, char *err)
{
    tp_plugin_lib *lib = (tp_plugin_lib *)&lib; /* must be reset to NULL */
    int rc = tp_plugin_lib_open(path, &lib, err, ERRLEN);
    if (rc != code)
        fail_msg("%s: expected %s, got %s: %s", path, tp_err_name(code), tp_err_name(rc), err);
    assert_null(lib);
    assert_true(strncmp(err, path, strlen(path)) == 0);
    assert_true(err[strlen(path)] == ':');
}

/* Refusal of refuse_<name>.so with `code`; the varargs are what the message must mention. */
#define EXPECT_REFUSED(name, code, ...)                                                            \
    do {                                                                                           \
        char err_[ERRLEN];                                                                         \
        open_refused(fixture("refuse_" name), (code), err_);                                       \
        assert_mentions(err_, __VA_ARGS__, NULL);                                                  \
    } while (0)

static char *make_tmpdir(void)
{
    char *dir = strdup("/tmp/tp_test_loader_XXXXXX");
    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    return dir;
}

/* Remove dir and what the tests put in it (files, symlinks, empty folders). */
static void remove_tmpdir(char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    char path[1024];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (unlink(path) != 0)
            assert_int_equal(rmdir(path), 0);
    }
    closedir(d);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* ---------------------------------------------------------------------------------------- */
/* A test host: allocation is counted, learning_rate is 0.5, num_params is 4 */

static int g_allocs, g_frees;
static tp_train_state g_train_state;
static int g_ctx_token;
#define CTX ((tp_ctx *)&g_ctx_token)

static void *th_alloc(tp_ctx *ctx, size_t bytes)
{
    assert_ptr_equal(ctx, CTX);
    g_allocs++;
    return calloc(1, bytes);
}

static void th_free(tp_ctx *ctx, void *p)
{
    assert_ptr_equal(ctx, CTX);
    if (p != NULL)
        g_frees++;
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
    *value = 0.5;
    return TP_OK;
}

static tp_host make_host(void)
{
    tp_host h;
    memset(&h, 0, sizeof h);
    TP_STRUCT_INIT(&h, tp_host);
    h.alloc = th_alloc;
    h.free = th_free;
    h.train_state = th_train_state;
    h.hparam = th_hparam;
    TP_STRUCT_INIT(&g_train_state, tp_train_state);
    g_train_state.num_params = 4;
    g_allocs = g_frees = 0;
    return h;
}

/* An error buffer full of junk, as a careless caller might leave it. */
static void dirty(tp_error *err)
{
    memset(err, 'x', sizeof *err);
    err->struct_size = 3; /* wrong on purpose: the host owns the whole buffer */
}

static int message_is_clear(const tp_error *err)
{
    for (size_t i = 0; i < sizeof err->message; i++) {
        if (err->message[i] != '\0')
            return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* The good fixture */

static void test_good_loads(void **state)
{
    (void)state;
    char err[ERRLEN];
    tp_plugin_lib *lib = NULL;
    const char *path = fixture("loader_good");
    int rc = tp_plugin_lib_open(path, &lib, err, sizeof err);
    if (rc != 0)
        fail_msg("loader_good.so refused: %s", err);
    assert_int_equal(tp_plugin_lib_count(lib), 3);
    assert_null(tp_plugin_lib_get(lib, 3));

    const tp_plugin *sgd = tp_plugin_lib_get(lib, 0);
    assert_string_equal(sgd->id, "fixture_sgd");
    assert_int_equal(sgd->kind, TP_PLUGIN_OPTIMIZER);
    assert_string_equal(sgd->description, "SGD that records its arguments, for the loader tests");
    assert_string_equal(sgd->path, path);
    assert_int_equal(sgd->sdk_version, TP_SDK_VERSION);
    assert_int_equal(sgd->index, 0);
    assert_int_equal(sgd->num_hparams, 3);
    const tp_hparam_info *h = sgd->hparams;
    assert_string_equal(h[0].name, "learning_rate");
    assert_int_equal(h[0].type, TP_HPARAM_FLOAT);
    assert_true(h[0].default_value == 0.1 && h[0].min_value == 1e-4 && h[0].max_value == 10.0);
    assert_string_equal(h[0].help, "base step size");
    assert_string_equal(h[1].name, "one_minus_beta1");
    assert_string_equal(h[1].help, ""); /* NULL in the plugin */
    assert_string_equal(h[2].name, "warmup_steps");
    assert_int_equal(h[2].type, TP_HPARAM_INT);
    assert_true(h[2].default_value == 100 && h[2].min_value == 0 && h[2].max_value == 100000);

    int want[TP_PLUGIN_FN_COUNT] = {[TP_PLUGIN_FN_GET_BATCH_SIZE] = 1,
                                    [TP_PLUGIN_FN_INIT] = 1,
                                    [TP_PLUGIN_FN_UPDATE] = 1,
                                    [TP_PLUGIN_FN_PRECONDITION] = 1,
                                    [TP_PLUGIN_FN_DESTROY] = 1};
    for (int f = 0; f < TP_PLUGIN_FN_COUNT; f++)
        assert_int_equal(tp_plugin_has(sgd, (tp_plugin_fn)f), want[f]);

    const tp_plugin *sched = tp_plugin_lib_get(lib, 1);
    assert_string_equal(sched->id, "fixture_sched");
    assert_int_equal(sched->kind, TP_PLUGIN_SCHEDULE);
    assert_string_equal(sched->description, "");
    assert_int_equal(sched->num_hparams, 0);
    assert_true(tp_plugin_has(sched, TP_PLUGIN_FN_LR_FACTOR));
    assert_false(tp_plugin_has(sched, TP_PLUGIN_FN_INIT));

    const tp_plugin *sel = tp_plugin_lib_get(lib, 2);
    assert_string_equal(sel->id, "fixture.select-7");
    assert_int_equal(sel->kind, TP_PLUGIN_DATA_SELECTION);
    assert_int_equal(sel->index, 2);
    assert_int_equal(sel->num_hparams, 1);
    assert_string_equal(sel->hparams[0].name, "learning_rate");

    assert_string_equal(tp_plugin_fn_name(TP_PLUGIN_FN_PREPARE_FOR_EVAL), "prepare_for_eval");
    assert_string_equal(tp_plugin_kind_name(TP_PLUGIN_DATA_SELECTION), "data selection");
    assert_string_equal(tp_plugin_kind_name((tp_plugin_kind)42), "unknown");
    tp_plugin_lib_close(lib);
    tp_plugin_lib_close(NULL);
}

static void test_good_calls(void **state)
{
    (void)state;
    char errbuf[ERRLEN];
    tp_plugin_lib *lib = NULL;
    assert_int_equal(tp_plugin_lib_open(fixture("loader_good"), &lib, errbuf, sizeof errbuf), 0);
    const tp_plugin *sgd = tp_plugin_lib_get(lib, 0);
    const tp_plugin *sched = tp_plugin_lib_get(lib, 1);
    const tp_plugin *sel = tp_plugin_lib_get(lib, 2);
    tp_host host = make_host();
    tp_error err;

    /* get_batch_size: a string and a uint32 in, a uint32 out. */
    uint32_t bs = 0;
    dirty(&err);
    assert_int_equal(tp_plugin_call_get_batch_size(sgd, "fmnist_mlp", 96, &bs, &err), TP_OK);
    assert_int_equal(bs, 96 * FIXTURE_BATCH_MULT);
    assert_int_equal(tp_plugin_call_get_batch_size(sgd, "kjv_lm", 96, &bs, &err), TP_OK);
    assert_int_equal(bs, 96);

    /* init allocates through the host table. */
    void *st = NULL;
    dirty(&err);
    assert_int_equal(tp_plugin_call_init(sgd, &host, CTX, &st, &err), TP_OK);
    assert_non_null(st);
    assert_int_equal(g_allocs, 1);
    fixture_opt_state *s = st;

    /* update: every argument arrives; the message is zeroed in full first. */
    uint32_t idx[4] = {1, 2, 3, 4};
    tp_batch batch;
    TP_STRUCT_INIT(&batch, tp_batch);
    batch.size = batch.capacity = 4;
    batch.idx = idx;
    tp_update_args args;
    TP_STRUCT_INIT(&args, tp_update_args);
    args.step = 0x123456789abcull;
    args.lr_factor = 0.25;
    args.batch = &batch;
    dirty(&err);
    assert_int_equal(tp_plugin_call_update(sgd, st, &host, CTX, &args, &err), TP_OK);
    assert_int_equal(s->updates, 1);
    assert_true(s->step == 0x123456789abcull);
    assert_true(s->lr_factor == 0.25);
    assert_true(s->lr == 0.125); /* learning_rate 0.5 from the host, times lr_factor */
    assert_ptr_equal(s->batch, &batch);
    assert_ptr_equal(s->host, &host);
    assert_ptr_equal(s->ctx, CTX);
    assert_int_equal(s->args_struct_size, sizeof(tp_update_args));
    assert_int_equal(s->err_struct_size, sizeof(tp_error));
    assert_true(s->err_was_clean);

    /* A plugin error comes back with its message, and the next call starts clean. */
    args.step = FIXTURE_UNLUCKY_STEP;
    assert_int_equal(tp_plugin_call_update(sgd, st, &host, CTX, &args, &err), TP_ERANGE);
    assert_string_equal(err.message, FIXTURE_UNLUCKY_MESSAGE);
    args.step = 1;
    assert_int_equal(tp_plugin_call_update(sgd, st, &host, CTX, &args, &err), TP_OK);
    assert_true(s->err_was_clean);
    assert_true(message_is_clear(&err));

    /* A message without a NUL comes back terminated. */
    args.step = FIXTURE_NOISY_STEP;
    assert_int_equal(tp_plugin_call_update(sgd, st, &host, CTX, &args, &err), TP_EINVAL);
    assert_int_equal(strlen(err.message), TP_ERROR_MESSAGE_MAX - 1);
    assert_int_equal(err.struct_size, sizeof(tp_error));

    args.step = FIXTURE_COMPLETE_STEP;
    assert_int_equal(tp_plugin_call_update(sgd, st, &host, CTX, &args, &err), TP_TRAINING_COMPLETE);
    /* No tp_error at all: the plugin writes into a scratch one. */
    args.step = FIXTURE_UNLUCKY_STEP;
    assert_int_equal(tp_plugin_call_update(sgd, st, &host, CTX, &args, NULL), TP_ERANGE);
    assert_int_equal(s->updates, 6);

    /* precondition: two float buffers. */
    float v[4] = {1, -2, 3.5f, 0}, out[4] = {0};
    void *fresh = NULL;
    assert_int_equal(tp_plugin_call_init(sgd, &host, CTX, &fresh, &err), TP_OK);
    assert_int_equal(tp_plugin_call_precondition(sgd, fresh, &host, CTX, v, out, &err), TP_ESTATE);
    assert_string_equal(err.message, "no update taken yet");
    tp_plugin_call_destroy(sgd, fresh, &host, CTX);
    assert_int_equal(tp_plugin_call_precondition(sgd, st, &host, CTX, v, out, &err), TP_OK);
    for (int i = 0; i < 4; i++)
        assert_true(out[i] == 2 * v[i]);

    /* Absent optional entry points: TP_ENOTSUP, message cleared all the same. */
    dirty(&err);
    assert_int_equal(tp_plugin_call_prepare_for_eval(sgd, st, &host, CTX, &err), TP_ENOTSUP);
    assert_true(message_is_clear(&err));
    assert_int_equal(tp_plugin_call_lr_factor(sgd, st, &host, CTX, 0, NULL, &err), TP_ENOTSUP);

    tp_plugin_call_destroy(sgd, st, &host, CTX);
    assert_int_equal(g_frees, 2);

    /* Schedule: a full uint64 step in, a double out; no state. */
    double factor = 0;
    uint64_t big = (1ull << 40) + 1;
    assert_int_equal(tp_plugin_call_lr_factor(sched, NULL, &host, CTX, big, &factor, &err), TP_OK);
    assert_true(factor == 1.0 / (1.0 + (double)big));
    assert_int_equal(tp_plugin_call_lr_factor(sched, NULL, &host, CTX, 3, &factor, &err), TP_OK);
    assert_true(factor == 0.25);
    assert_int_equal(tp_plugin_call_init(sched, &host, CTX, &st, &err), TP_ENOTSUP);
    assert_int_equal(tp_plugin_call_update(sched, NULL, &host, CTX, &args, &err), TP_ENOTSUP);
    tp_plugin_call_destroy(sched, NULL, &host, CTX); /* absent: nothing happens */

    /* Data selection: fills the host's buffers. */
    void *sst = NULL;
    assert_int_equal(tp_plugin_call_init(sel, &host, CTX, &sst, &err), TP_OK);
    uint32_t sidx[5];
    float w[5];
    tp_batch b;
    TP_STRUCT_INIT(&b, tp_batch);
    b.capacity = 5;
    b.idx = sidx;
    b.weights = w;
    for (uint32_t call = 0; call < 2; call++) {
        assert_int_equal(tp_plugin_call_select_batch(sel, sst, &host, CTX, &b, &err), TP_OK);
        assert_int_equal(b.size, 5);
        assert_null(b.weights);
        for (uint32_t i = 0; i < 5; i++)
            assert_int_equal(sidx[i], i * FIXTURE_SELECT_MULT + call);
    }
    b.capacity = 0;
    assert_int_equal(tp_plugin_call_select_batch(sel, sst, &host, CTX, &b, &err), TP_EINVAL);
    assert_string_equal(err.message, "batch capacity is 0");
    tp_plugin_call_destroy(sel, sst, &host, CTX);
    assert_int_equal(g_allocs, 3);
    assert_int_equal(g_frees, 3);

    /* A NULL plugin is a caller bug, answered, not a crash. */
    assert_int_equal(tp_plugin_call_update(NULL, NULL, &host, CTX, &args, &err), TP_EINVAL);
    tp_plugin_call_destroy(NULL, NULL, &host, CTX);
    tp_plugin_lib_close(lib);
}

/* A struct_size far beyond the host's, and hyperparameters with a bigger stride: accepted, and
 * only the known fields are read. */
static void test_huge_struct_size_accepted(void **state)
{
    (void)state;
    char err[ERRLEN];
    tp_plugin_lib *lib = NULL;
    int rc = tp_plugin_lib_open(fixture("refuse_huge"), &lib, err, sizeof err);
    if (rc != 0)
        fail_msg("refuse_huge.so refused: %s", err);
    const tp_plugin *p = tp_plugin_lib_get(lib, 0);
    assert_string_equal(p->id, "huge");
    assert_int_equal(p->num_hparams, 2);
    assert_string_equal(p->hparams[0].name, "learning_rate");
    assert_true(p->hparams[0].default_value == 0.5 && p->hparams[0].max_value == 1.0);
    assert_string_equal(p->hparams[1].name, "batch_mult");
    assert_int_equal(p->hparams[1].type, TP_HPARAM_INT);
    assert_true(p->hparams[1].default_value == 4 && p->hparams[1].min_value == 1 &&
                p->hparams[1].max_value == 64);
    assert_true(tp_plugin_has(p, TP_PLUGIN_FN_UPDATE));
    assert_false(tp_plugin_has(p, TP_PLUGIN_FN_PRECONDITION));
    tp_plugin_lib_close(lib);
}

/* ---------------------------------------------------------------------------------------- */
/* Files that are not plugins */

static void test_refuse_text_file(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[512], err[ERRLEN];
    snprintf(path, sizeof path, "%s/bad.so", dir);
    const char text[] = "This is a text file that someone named bad.so; it is no shared object, "
                        "and the loader must say so.\n";
    write_file(path, text, sizeof text - 1);
    open_refused(path, TP_EABI, err);
    assert_mentions(err, "dlopen", "invalid ELF header", "(it is not an ELF file)",
                    "not a shared object", NULL);
    remove_tmpdir(dir);
}

static void test_refuse_executable(void **state)
{
    (void)state;
    char err[ERRLEN];
    /* This test program: an ELF file, but an executable. */
    open_refused("/proc/self/exe", TP_EABI, err);
    assert_mentions(err, "dlopen", "not a shared object", NULL);
}

static void test_refuse_other_machine(void **state)
{
    (void)state;
    /* loader_good.so with its ELF e_machine changed to another architecture's (AArch64, 183; or
     * x86-64, 62, when this machine is AArch64). */
    FILE *f = fopen(fixture("loader_good"), "rb");
    assert_non_null(f);
    static unsigned char elf[1 << 20];
    size_t n = fread(elf, 1, sizeof elf, f);
    fclose(f);
    assert_true(n > 64 && n < sizeof elf);
    uint16_t machine;
    memcpy(&machine, elf + 18, 2);
    machine = machine == 183 ? 62 : 183;
    memcpy(elf + 18, &machine, 2);

    char *dir = make_tmpdir();
    char path[512], err[ERRLEN];
    snprintf(path, sizeof path, "%s/other_machine.so", dir);
    write_file(path, elf, n);
    open_refused(path, TP_EABI, err);
    assert_mentions(err, "dlopen", "it is built for another architecture: ELF machine", NULL);
    remove_tmpdir(dir);
}

static void test_refuse_missing_file(void **state)
{
    (void)state;
    char err[ERRLEN];
    open_refused(TP_FIXTURE_DIR "/no_such_plugin.so", TP_ENOENT, err);
    assert_mentions(err, "cannot open", "No such file", NULL);
    open_refused(TP_FIXTURE_DIR, TP_EINVAL, err);
    assert_mentions(err, "is a directory", NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Discovery and versions */

static void test_refuse_no_symbol(void **state)
{
    (void)state;
    EXPECT_REFUSED("nosym", TP_EABI, "tp_plugin_entry: symbol not found", "TP_PLUGIN_ENTRY");
}

static void test_refuse_no_descriptor(void **state)
{
    (void)state;
    EXPECT_REFUSED("empty", TP_EPLUGIN, "tp_plugin_entry(0): returned NULL", "no plugin");
}

static void test_refuse_endless(void **state)
{
    (void)state;
    EXPECT_REFUSED("endless", TP_EPLUGIN, "tp_plugin_entry(256): not NULL", "at most 256");
}

static void test_refuse_other_major(void **state)
{
    (void)state;
    char want[128];
    snprintf(want, sizeof want,
             "built against SDK 2.0, this host speaks 1.x: rebuild against the SDK %d.%d",
             TP_SDK_VERSION_MAJOR, TP_SDK_VERSION_MINOR);
    EXPECT_REFUSED("major", TP_EABI, "tp_plugin_entry(0): sdk_version:", want);
}

static void test_refuse_newer_minor(void **state)
{
    (void)state;
    char want[128];
    snprintf(want, sizeof want, "built against SDK %d.%d, newer than this host's %d.%d",
             TP_SDK_VERSION_MAJOR, TP_SDK_VERSION_MINOR + 1, TP_SDK_VERSION_MAJOR,
             TP_SDK_VERSION_MINOR);
    EXPECT_REFUSED("minor", TP_EABI, "tp_plugin_entry(0): sdk_version:", want);
}

static void test_refuse_small_struct(void **state)
{
    (void)state;
    char want[128];
    snprintf(want, sizeof want, "struct_size: %zu bytes, smaller than the %zu of an SDK %d.%d",
             offsetof(tp_plugin_desc, hparams),
             offsetof(tp_plugin_desc, select_batch) + sizeof(void *), TP_SDK_VERSION_MAJOR,
             TP_SDK_VERSION_MINOR);
    EXPECT_REFUSED("small", TP_EABI, "tp_plugin_entry(0): struct_size", want, "TP_STRUCT_INIT");
}

/* ---------------------------------------------------------------------------------------- */
/* Descriptor fields */

static void test_refuse_null_id(void **state)
{
    (void)state;
    EXPECT_REFUSED("null_id", TP_EPLUGIN, "tp_plugin_entry(0): id: is NULL");
}

static void test_refuse_bad_id(void **state)
{
    (void)state;
    EXPECT_REFUSED("bad_id", TP_EPLUGIN, "tp_plugin_entry(0): id: \"Bad Id\" is not a valid id",
                   "[a-z0-9_.-]");
    EXPECT_REFUSED("long_id", TP_EPLUGIN, "tp_plugin_entry(0): id: \"a23456789",
                   "is not a valid id: use 1 to 63 characters");
}

static void test_refuse_unknown_kind(void **state)
{
    (void)state;
    EXPECT_REFUSED("kind", TP_EABI, "tp_plugin_entry(0) 'odd_kind': kind: 7 is not a plugin kind");
}

static void test_refuse_missing_entry_point(void **state)
{
    (void)state;
    EXPECT_REFUSED("missing", TP_EABI,
                   "tp_plugin_entry(0) 'no_update': update: required for an optimizer, is NULL");
}

static void test_refuse_wrong_kind_entry_point(void **state)
{
    (void)state;
    EXPECT_REFUSED("wrong_kind", TP_EABI,
                   "tp_plugin_entry(0) 'sched_with_update': update: set, but a schedule has no "
                   "update: leave it NULL");
}

static void test_refuse_duplicate_id_in_file(void **state)
{
    (void)state;
    EXPECT_REFUSED("dup_id", TP_EPLUGIN,
                   "tp_plugin_entry(1) 'twin': id: also the id of tp_plugin_entry(0)", "unique");
}

/* ---------------------------------------------------------------------------------------- */
/* Hyperparameters */

static void test_refuse_hparam_twice(void **state)
{
    (void)state;
    EXPECT_REFUSED("hp_twice", TP_EPLUGIN,
                   "tp_plugin_entry(0) 'hp_twice': hparams[2] 'lr': declared twice (also "
                   "hparams[0])");
}

static void test_refuse_hparam_name(void **state)
{
    (void)state;
    EXPECT_REFUSED("hp_name", TP_EPLUGIN,
                   "'hp_name': hparams[0].name: \"Learning-Rate\" is not a valid name",
                   "[a-z0-9_]");
    EXPECT_REFUSED("hp_null_name", TP_EPLUGIN, "'hp_null_name': hparams[1].name: is NULL");
}

static void test_refuse_hparam_struct_size(void **state)
{
    (void)state;
    char want[128];
    snprintf(want, sizeof want, "hparams[0].struct_size: 16 bytes, smaller than the %zu",
             offsetof(tp_hparam_decl, help) + sizeof(void *));
    EXPECT_REFUSED("hp_small", TP_EABI, "'hp_small'", want, "tp_hparam_decl");
    snprintf(want, sizeof want, "hparams[1].struct_size: %zu, but hparams[0].struct_size is %zu",
             sizeof(tp_hparam_decl) + 8, sizeof(tp_hparam_decl));
    EXPECT_REFUSED("hp_stride", TP_EABI, "'hp_stride'", want, "stride");
}

static void test_refuse_hparams_null(void **state)
{
    (void)state;
    EXPECT_REFUSED("hp_null", TP_EPLUGIN, "'hp_null': hparams: is NULL, but num_hparams is 2");
}

static void test_refuse_hparam_range(void **state)
{
    (void)state;
    EXPECT_REFUSED("hp_nan", TP_EPLUGIN, "'hp_nan': hparams[0] 'lr': min_value: is NaN");
    EXPECT_REFUSED("hp_inverted", TP_EPLUGIN,
                   "hparams[0] 'lr': min_value 1 is greater than max_value 0");
    EXPECT_REFUSED("hp_default", TP_EPLUGIN,
                   "'hp_default': hparams[0] 'lr': default_value 2 is outside [min_value 0, "
                   "max_value 1]");
    EXPECT_REFUSED("hp_int", TP_EPLUGIN,
                   "hparams[0] 'warmup_steps': default_value 2.5 is not an integer");
}

static void test_refuse_hparam_type(void **state)
{
    (void)state;
    EXPECT_REFUSED("hp_type", TP_EPLUGIN,
                   "'hp_type': hparams[0] 'lr': type: 9 is not a hyperparameter type");
}

static void test_first_problem_counts_the_rest(void **state)
{
    (void)state;
    EXPECT_REFUSED("multi", TP_EPLUGIN, "tp_plugin_entry(0): id: \"Multi\" is not a valid id",
                   "(and 3 more problems");
}

/* ---------------------------------------------------------------------------------------- */
/* Sets */

static void on_refused(const char *path, const char *msg, void *ud)
{
    char *log = ud;
    size_t n = strlen(log);
    snprintf(log + n, ERRLEN * 2 - n, "[%s] %s\n", path, msg);
}

static void test_set_duplicate_across_files(void **state)
{
    (void)state;
    tp_plugin_set *set = NULL;
    char err[ERRLEN];
    assert_int_equal(tp_plugin_set_init(&set), 0);
    assert_int_equal(tp_plugin_set_add_file(set, fixture("loader_good"), err, sizeof err), 0);
    assert_int_equal(tp_plugin_set_count(set), 3);

    const char *dup = fixture("refuse_dup_other");
    assert_int_equal(tp_plugin_set_add_file(set, dup, err, sizeof err), TP_EPLUGIN);
    assert_mentions(err, dup, "tp_plugin_entry(0) 'fixture_sgd': id: already loaded from",
                    fixture("loader_good"), "unique", NULL);
    assert_int_equal(tp_plugin_set_count(set), 3);

    const char *other = fixture("refuse_other_sched");
    assert_int_equal(tp_plugin_set_add_file(set, other, err, sizeof err), 0);
    assert_int_equal(tp_plugin_set_count(set), 4);
    assert_string_equal(tp_plugin_set_get(set, 3)->id, "other_sched");
    assert_string_equal(tp_plugin_set_get(set, 3)->path, other);
    assert_null(tp_plugin_set_get(set, 4));

    const tp_plugin *p = tp_plugin_set_find(set, "fixture_sgd", TP_PLUGIN_OPTIMIZER);
    assert_non_null(p);
    assert_ptr_equal(p, tp_plugin_set_find(set, "fixture_sgd", 0));
    assert_null(tp_plugin_set_find(set, "fixture_sgd", TP_PLUGIN_SCHEDULE));
    assert_null(tp_plugin_set_find(set, "nope", 0));
    assert_int_equal(tp_plugin_set_find(set, "other_sched", 0)->kind, TP_PLUGIN_SCHEDULE);

    /* The same file twice repeats every id. */
    assert_int_equal(tp_plugin_set_add_file(set, other, err, sizeof err), TP_EPLUGIN);
    /* A refused file leaves the set as it was. */
    assert_int_equal(tp_plugin_set_add_file(set, fixture("refuse_major"), err, sizeof err),
                     TP_EABI);
    assert_int_equal(tp_plugin_set_count(set), 4);
    tp_plugin_set_free(set);
    tp_plugin_set_free(NULL);
}

static void test_set_add_dir(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    char path[512];
    struct {
        const char *name, *target;
    } links[] = {
        {"a.so", "loader_good"},        {"b.so", "refuse_dup_other"},
        {"e.so", "refuse_other_sched"}, {"notes.txt", "refuse_major"},
        {".hidden.so", "refuse_major"},
    };
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, links[i].name);
        assert_int_equal(symlink(fixture(links[i].target), path), 0);
    }
    snprintf(path, sizeof path, "%s/c.so", dir);
    write_file(path, "text", 4);
    snprintf(path, sizeof path, "%s/d.so", dir);
    assert_int_equal(mkdir(path, 0700), 0);

    tp_plugin_set *set = NULL;
    char err[ERRLEN];
    char log[ERRLEN * 2] = "";
    assert_int_equal(tp_plugin_set_init(&set), 0);
    int rc = tp_plugin_set_add_dir(set, dir, on_refused, log, err, sizeof err);
    if (rc != 2)
        fail_msg("add_dir returned %d, log:\n%s", rc, log);
    /* In name order: b.so (its id repeats a.so's), then c.so (not a shared object). */
    char *b = strstr(log, "/b.so] ");
    char *c = strstr(log, "/c.so] ");
    assert_non_null(b);
    assert_non_null(c);
    assert_true(b < c);
    assert_mentions(b, "already loaded from", "/a.so", NULL);
    assert_mentions(c, "dlopen", NULL);
    assert_int_equal(tp_plugin_set_count(set), 4);
    assert_non_null(tp_plugin_set_find(set, "other_sched", TP_PLUGIN_SCHEDULE));

    assert_int_equal(
        tp_plugin_set_add_dir(set, "/nonexistent/plugins", NULL, NULL, err, sizeof err), TP_ENOENT);
    assert_mentions(err, "/nonexistent/plugins", "cannot read", NULL);
    tp_plugin_set_free(set);
    remove_tmpdir(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* `trainperf check` */

static char *check_output(const char *path, int *rc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    *rc = tp_check_plugin_file(path, out);
    assert_int_equal(fclose(out), 0);
    return buf;
}

static void test_check_good(void **state)
{
    (void)state;
    int rc;
    char *out = check_output(fixture("loader_good"), &rc);
    if (rc != 0)
        fail_msg("check refused loader_good.so:\n%s", out);
    char sdk[32];
    snprintf(sdk, sizeof sdk, "SDK %d.%d\n", TP_SDK_VERSION_MAJOR, TP_SDK_VERSION_MINOR);
    assert_mentions(
        out, "checking ", fixture("loader_good"), "tp_plugin_entry(0) 'fixture_sgd': optimizer, ",
        sdk, "description: SGD that records its arguments",
        "entry points: get_batch_size init update precondition destroy",
        "optional, absent: prepare_for_eval", "tp_plugin_entry(1) 'fixture_sched': schedule, ",
        "entry points: lr_factor", "optional, absent: init destroy", "hyperparameters: none",
        "'fixture.select-7': data selection", "OK: 3 plugins", NULL);
    /* The table: a header and one row per hyperparameter, columns aligned. */
    assert_mentions(out,
                    "    name             type   default  min     max     help\n"
                    "    learning_rate    float  0.1      0.0001  10      base step size\n"
                    "    one_minus_beta1  float  0.1      0       1\n"
                    "    warmup_steps     int    100      0       100000  linear warmup length\n",
                    NULL);
    free(out);
}

static void test_check_lists_every_problem(void **state)
{
    (void)state;
    int rc;
    char *out = check_output(fixture("refuse_multi"), &rc);
    assert_int_equal(rc, TP_EPLUGIN);
    assert_mentions(out, "problem: ", "tp_plugin_entry(0): id: \"Multi\" is not a valid id",
                    "tp_plugin_entry(0): update: required for an optimizer, is NULL",
                    "hparams[0] 'lr': default_value 2 is outside [min_value 0, max_value 1]",
                    "tp_plugin_entry(1) 'multi_sched': select_batch: set, but a schedule has no "
                    "select_batch",
                    "REFUSED (TP_EPLUGIN: plugin error): 4 problems", NULL);
    int problems = 0;
    for (const char *p = out; (p = strstr(p, "problem: ")) != NULL; p++)
        problems++;
    assert_int_equal(problems, 4);
    free(out);

    out = check_output(TP_FIXTURE_DIR "/no_such_plugin.so", &rc);
    assert_int_equal(rc, TP_ENOENT);
    assert_mentions(out, "problem: ", "no_such_plugin.so: cannot open", "REFUSED (TP_ENOENT", NULL);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_loads),
        cmocka_unit_test(test_good_calls),
        cmocka_unit_test(test_huge_struct_size_accepted),
        cmocka_unit_test(test_refuse_text_file),
        cmocka_unit_test(test_refuse_executable),
        cmocka_unit_test(test_refuse_other_machine),
        cmocka_unit_test(test_refuse_missing_file),
        cmocka_unit_test(test_refuse_no_symbol),
        cmocka_unit_test(test_refuse_no_descriptor),
        cmocka_unit_test(test_refuse_endless),
        cmocka_unit_test(test_refuse_other_major),
        cmocka_unit_test(test_refuse_newer_minor),
        cmocka_unit_test(test_refuse_small_struct),
        cmocka_unit_test(test_refuse_null_id),
        cmocka_unit_test(test_refuse_bad_id),
        cmocka_unit_test(test_refuse_unknown_kind),
        cmocka_unit_test(test_refuse_missing_entry_point),
        cmocka_unit_test(test_refuse_wrong_kind_entry_point),
        cmocka_unit_test(test_refuse_duplicate_id_in_file),
        cmocka_unit_test(test_refuse_hparam_twice),
        cmocka_unit_test(test_refuse_hparam_name),
        cmocka_unit_test(test_refuse_hparam_struct_size),
        cmocka_unit_test(test_refuse_hparams_null),
        cmocka_unit_test(test_refuse_hparam_range),
        cmocka_unit_test(test_refuse_hparam_type),
        cmocka_unit_test(test_first_problem_counts_the_rest),
        cmocka_unit_test(test_set_duplicate_across_files),
        cmocka_unit_test(test_set_add_dir),
        cmocka_unit_test(test_check_good),
        cmocka_unit_test(test_check_lists_every_problem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
