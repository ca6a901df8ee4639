/*
 * test_config.c - core/config.c: a complete workload file read into every field and option
 * (keys, values, line numbers); one fixture per kind of error under tests/data/config/, each
 * checked for "<file>:<line>: <key>: ..."; --set overrides that work and that are refused
 * (leaving the config as it was); --hparams lists; finding a workload and listing the others.
 *
 * Not here: whether a workload accepts its options (the workload's own tests).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
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

#include "core/config.h"

#define FIXTURES TP_TEST_SOURCE_DIR "/tests/data/config/"

static char err[1024];

/* Assert that err starts with the formatted prefix, printing both when it does not. */
static void assert_prefix(const char *fmt, ...)
{
    char want[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof want, fmt, ap);
    va_end(ap);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("message\n  \"%s\"\ndoes not start with\n  \"%s\"", err, want);
}

static const tp_wl_option *option(const tp_workload_config *c, const char *key)
{
    for (size_t i = 0; i < c->num_options; i++)
        if (strcmp(c->options[i].key, key) == 0)
            return &c->options[i];
    return NULL;
}

static void assert_empty(const tp_workload_config *c)
{
    assert_null(c->file);
    assert_null(c->name);
    assert_null(c->options);
    assert_int_equal(c->num_options, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Loading */

static void test_load_good(void **state)
{
    tp_workload_config c;
    const char *path = FIXTURES "good.cfg";
    int rc = tp_config_load_workload(path, &c, err, sizeof err);
    if (rc != 0)
        fail_msg("%s", err);
    assert_string_equal(c.file, path);
    assert_string_equal(c.name, "fmnist_mlp");
    assert_int_equal(c.batch_size_hint, 128);
    assert_int_equal(c.step_hint, 4000);
    assert_true(c.eval_period == 2.0); /* an int in the file */
    assert_true(c.budget == 60.5);
    assert_true(c.validation_target == 0.87);
    assert_true(c.test_target == 0.86);

    /* In file order, nested groups flattened, booleans as 1/0, with their lines. */
    static const struct {
        const char *key, *str;
        double num;
        int line;
    } want[] = {
        {"data.dir", "/usr/share/datasets/fashion-mnist", 0, 10},
        {"data.train_limit", NULL, 2000, 11},
        {"data.augment", NULL, 1, 12},
        {"data.cache.enabled", NULL, 0, 13},
        {"model.hidden_width", NULL, 256, 16},
        {"model.dropout", NULL, 0.1, 17},
    };
    assert_int_equal(c.num_options, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < c.num_options; i++) {
        const tp_wl_option *o = &c.options[i];
        assert_string_equal(o->key, want[i].key);
        if (want[i].str != NULL) {
            assert_non_null(o->str);
            assert_string_equal(o->str, want[i].str);
        } else {
            assert_null(o->str);
            assert_true(o->num == want[i].num);
        }
        assert_int_equal(o->line, want[i].line);
    }
    tp_config_free_workload(&c);
    assert_empty(&c);
    tp_config_free_workload(&c); /* twice, and of a zeroed struct: a no-op */
}

/* One fixture per kind of error; the message is checked up to what follows the key. */
static void test_load_errors(void **state)
{
    static const struct {
        const char *file;
        const char *rest; /* after "<path>:" */
    } cases[] = {
        {"syntax_error.cfg", "4: syntax error: "},
        {"missing_budget.cfg", "1: workload.budget: missing; must be a number of seconds > 0"},
        {"wrong_type.cfg", "3: workload.batch_size_hint: must be an integer > 0 (examples per "
                           "batch), got \"128\""},
        {"negative_budget.cfg", "7: workload.budget: must be a number of seconds > 0, got -3"},
        {"unknown_workload_key.cfg", "6: workload.bugdet: unknown key (did you mean "
                                     "\"budget\"?); expected one of: name, "},
        {"unknown_top_key.cfg", "9: sweep: unknown key; expected one of: workload"},
        {"unknown_target_key.cfg",
         "9: workload.targets.train: unknown key; expected one of: validation, test"},
        {"list_in_data.cfg", "10: workload.data.classes: lists and arrays are not supported"},
        {"include.cfg", "3: @include is not supported: write the settings in this file"},
        {"variant_no_targets.cfg", "10: workload.variants[1].targets: missing; a variant has "
                                   "its own targets"},
        {"variant_dup.cfg", "10: workload.variants[1].name: \"tanh\" names another variant"},
        {"variant_bad_key.cfg", "10: workload.variants[0].budget: unknown key; expected one of: "
                                "name, targets, data, model"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s%s", FIXTURES, cases[i].file);
        tp_workload_config c;
        memset(err, 0, sizeof err);
        int rc = tp_config_load_workload(path, &c, err, sizeof err);
        print_message("%s -> %s\n", cases[i].file, err);
        assert_int_equal(rc, TP_ECONFIG);
        assert_prefix("%s:%s", path, cases[i].rest);
        assert_empty(&c);
        tp_config_free_workload(&c);
    }
}

static void test_load_exact_messages(void **state)
{
    tp_workload_config c;
    const char *path = FIXTURES "negative_budget.cfg";
    assert_int_equal(tp_config_load_workload(path, &c, err, sizeof err), TP_ECONFIG);
    char want[512];
    snprintf(want, sizeof want, "%s:7: workload.budget: must be a number of seconds > 0, got -3",
             path);
    assert_string_equal(err, want);
}

static void test_load_unreadable(void **state)
{
    tp_workload_config c;
    const char *path = FIXTURES "no_such_file.cfg";
    assert_int_equal(tp_config_load_workload(path, &c, err, sizeof err), TP_EIO);
    char want[512];
    snprintf(want, sizeof want, "%s: cannot read: %s", path, strerror(ENOENT));
    assert_string_equal(err, want);
    assert_empty(&c);

    /* A directory is not a file. */
    assert_int_equal(tp_config_load_workload(FIXTURES, &c, err, sizeof err), TP_EIO);
    assert_prefix("%s: cannot read: ", FIXTURES);
}

/* The real workload file, once it exists, must load. */
static void test_load_shipped_workload(void **state)
{
    const char *path = TP_TEST_SOURCE_DIR "/workloads/fmnist_mlp/fmnist_mlp.cfg";
    if (access(path, R_OK) != 0)
        skip();
    tp_workload_config c;
    if (tp_config_load_workload(path, &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(c.name, "fmnist_mlp");
    tp_config_free_workload(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* --set overrides */

static void load_good(tp_workload_config *c)
{
    if (tp_config_load_workload(FIXTURES "good.cfg", c, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static void set_ok(tp_workload_config *c, const char *kv)
{
    if (tp_config_apply_override(c, kv, err, sizeof err) != 0)
        fail_msg("--set %s failed: %s", kv, err);
}

static void test_override_good(void **state)
{
    tp_workload_config c;
    load_good(&c);
    size_t n0 = c.num_options;

    set_ok(&c, "budget=5");
    set_ok(&c, "eval_period=0.25");
    set_ok(&c, "step_hint=100");
    set_ok(&c, "batch_size_hint=64");
    set_ok(&c, "targets.validation=0.6");
    set_ok(&c, " targets.test = -1e-2 "); /* whitespace around key and value */
    assert_true(c.budget == 5.0);
    assert_true(c.eval_period == 0.25);
    assert_int_equal(c.step_hint, 100);
    assert_int_equal(c.batch_size_hint, 64);
    assert_true(c.validation_target == 0.6);
    assert_true(c.test_target == -0.01);

    /* Replace a number, a string, a string with a number; add two new ones. */
    set_ok(&c, "data.train_limit=500");
    set_ok(&c, "data.dir=/tmp/x=y"); /* only the first '=' splits */
    set_ok(&c, "model.dropout=none");
    set_ok(&c, "model.new_option=3");
    set_ok(&c, "data.label=inf"); /* not finite: kept as a string for the workload */
    assert_int_equal(c.num_options, n0 + 2);

    const tp_wl_option *o = option(&c, "data.train_limit");
    assert_non_null(o);
    assert_null(o->str);
    assert_true(o->num == 500);
    assert_int_equal(o->line, 0);
    o = option(&c, "data.dir");
    assert_string_equal(o->str, "/tmp/x=y");
    assert_int_equal(o->line, 0);
    o = option(&c, "model.dropout");
    assert_string_equal(o->str, "none");
    o = option(&c, "model.new_option");
    assert_non_null(o);
    assert_null(o->str);
    assert_true(o->num == 3);
    assert_int_equal(o->line, 0);
    o = option(&c, "data.label");
    assert_string_equal(o->str, "inf");
    /* An untouched option keeps its line. */
    assert_int_equal(option(&c, "model.hidden_width")->line, 16);

    tp_config_free_workload(&c);
}

static void test_override_bad(void **state)
{
    static const struct {
        const char *kv, *want; /* want: whole message, or its start when it ends in '~' */
    } cases[] = {
        {"budget=abc", "--set budget=abc: budget: must be a number of seconds > 0, got \"abc\""},
        {"budget=-1", "--set budget=-1: budget: must be a number of seconds > 0, got -1"},
        {"budget=0", "--set budget=0: budget: must be a number of seconds > 0, got 0"},
        {"budget=inf", "--set budget=inf: budget: must be a number of seconds > 0, got inf"},
        {"eval_period=nan", "--set eval_period=nan: eval_period: must be ~"},
        {"step_hint=1.5", "--set step_hint=1.5: step_hint: must be an integer > 0 (steps), got "
                          "1.5"},
        {"batch_size_hint=64.0", "--set batch_size_hint=64.0: batch_size_hint: must be an "
                                 "integer > 0 (examples per batch), got 64.0"},
        {"batch_size_hint=0", "--set batch_size_hint=0: batch_size_hint: must be ~"},
        {"batch_size_hint=5000000000", "--set batch_size_hint=5000000000: batch_size_hint: ~"},
        {"targets.test=x", "--set targets.test=x: targets.test: must be a finite number ~"},
        {"name=other", "--set name=other: name: unknown key; expected one of: budget, ~"},
        {"targets.train=1", "--set targets.train=1: targets.train: unknown key; ~"},
        {"budget", "--set budget: expected key=value~"},
        {"budget=", "--set budget=: budget: missing value after '='"},
        {"data.=1", "--set data.=1: data.: not a valid option name~"},
        {"model..x=1", "--set model..x=1: model..x: not a valid option name~"},
        {"data.a b=1", "--set data.a b=1: data.a b: not a valid option name~"},
    };
    tp_workload_config c;
    load_good(&c);
    size_t n0 = c.num_options;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(err, 0, sizeof err);
        int rc = tp_config_apply_override(&c, cases[i].kv, err, sizeof err);
        print_message("%s -> %s\n", cases[i].kv, err);
        assert_int_equal(rc, TP_ECONFIG);
        size_t wl = strlen(cases[i].want);
        if (cases[i].want[wl - 1] == '~')
            assert_int_equal(strncmp(err, cases[i].want, wl - 1), 0);
        else
            assert_string_equal(err, cases[i].want);
    }
    /* Nothing changed. */
    assert_true(c.budget == 60.5);
    assert_true(c.eval_period == 2.0);
    assert_int_equal(c.step_hint, 4000);
    assert_int_equal(c.batch_size_hint, 128);
    assert_true(c.test_target == 0.86);
    assert_int_equal(c.num_options, n0);
    tp_config_free_workload(&c);
}

/* Variants: parsed in file order with their own targets and options; selecting one replaces
 * the base's targets and options of the same key and adds the others; unknown names list the
 * variants. */
static void test_variants(void **state)
{
    tp_workload_config c;
    char path[512];
    snprintf(path, sizeof path, "%svariants.cfg", FIXTURES);
    if (tp_config_load_workload(path, &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.num_variants, 2);
    assert_string_equal(c.variants[0].name, "tanh");
    assert_true(c.variants[1].validation_target == 0.8);
    assert_int_equal(c.variants[1].line, 12);
    assert_null(c.variant);
    assert_int_equal(tp_config_select_variant(&c, NULL, err, sizeof err), TP_OK); /* the base */
    assert_true(c.validation_target == 0.87);

    assert_int_equal(tp_config_select_variant(&c, "nope", err, sizeof err), TP_ENOENT);
    assert_non_null(strstr(err, "no variant \"nope\"; its variants: tanh, deep"));

    assert_int_equal(tp_config_select_variant(&c, "deep", err, sizeof err), TP_OK);
    assert_string_equal(c.variant, "deep");
    assert_true(c.validation_target == 0.8 && c.test_target == 0.79);
    assert_true(c.budget == 60.0); /* the base's budget */
    int depth = 0, act = 0;
    for (size_t i = 0; i < c.num_options; i++) {
        if (strcmp(c.options[i].key, "model.depth") == 0) {
            depth++;
            assert_true(c.options[i].num == 4);
            assert_int_equal(c.options[i].line, 14);
        }
        if (strcmp(c.options[i].key, "model.activation") == 0) {
            act++;
            assert_string_equal(c.options[i].str, "relu"); /* untouched by this variant */
        }
    }
    assert_int_equal(depth, 1);
    assert_int_equal(act, 1);
    /* One variant per config. */
    assert_int_equal(tp_config_select_variant(&c, "tanh", err, sizeof err), TP_ESTATE);
    tp_config_free_workload(&c);

    if (tp_config_load_workload(path, &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(tp_config_select_variant(&c, "tanh", err, sizeof err), TP_OK);
    for (size_t i = 0; i < c.num_options; i++)
        if (strcmp(c.options[i].key, "model.activation") == 0)
            assert_string_equal(c.options[i].str, "tanh"); /* replaced, not added */
    tp_config_free_workload(&c);
}

/* Sweep files: every field, defaults, paths relative to the file, and the errors. */
static void test_sweep_config(void **state)
{
    tp_sweep_config c;
    char path[512];
    snprintf(path, sizeof path, "%ssweep_good.cfg", FIXTURES);
    if (tp_config_load_sweep(path, &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.ruleset, TP_RULESET_EXTERNAL);
    assert_int_equal(c.num_workloads, 2);
    assert_string_equal(c.workloads[1], "other");
    assert_int_equal(c.studies, 2);
    assert_int_equal(c.trials, 4);
    assert_int_equal(c.study_points, TP_STUDY_POINTS_DISTINCT);
    assert_int_equal(c.heldout, TP_HELDOUT_SAMPLED);
    assert_int_equal(c.heldout_seed, 7);
    assert_true(c.budget_scale == 0.5);
    assert_int_equal(c.clock, 1);
    assert_int_equal(c.jobs, 2);
    assert_string_equal(c.results, "results/x");
    assert_int_equal(c.seed, 11);
    assert_int_equal(c.num_overrides, 1);
    assert_int_equal(c.sharpness_every, 100);
    assert_int_equal(c.sharpness_examples, 500);
    assert_int_equal(c.num_submissions, 2);
    assert_string_equal(c.submissions[0].schedule, "warmup_cosine");
    assert_string_equal(c.submissions[0].hparams, "label_smoothing=0.1");
    char want[600];
    snprintf(want, sizeof want, "%sspaces/adamw.json", FIXTURES); /* relative to the file */
    assert_string_equal(c.submissions[0].search_space, want);
    assert_string_equal(c.submissions[1].search_space, "/abs/sgd.json");
    assert_null(c.submissions[1].schedule);
    tp_config_free_sweep(&c);

    snprintf(path, sizeof path, "%ssweep_self.cfg", FIXTURES);
    if (tp_config_load_sweep(path, &c, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(c.ruleset, TP_RULESET_SELF);
    assert_int_equal(c.studies, 3); /* defaults */
    assert_int_equal(c.trials, 1);
    assert_true(c.budget_scale == 1.0);
    assert_int_equal(c.sharpness_every, 0); /* diagnostics are opt-in */
    assert_null(c.submissions[0].search_space);
    tp_config_free_sweep(&c);

    static const struct {
        const char *file, *rest;
    } cases[] = {
        {"sweep_self_space.cfg", "6: sweep.submissions[0].search_space: self-tuning "
                                 "submissions have no search space"},
        {"sweep_bad_heldout.cfg", "4: sweep.heldout: must be \"none\", \"sampled\" or "
                                  "\"all\", got \"some\""},
        {"sweep_dup.cfg", "5: sweep.submissions[1].name: \"a\" names another submission"},
        {"sweep_typo.cfg", "3: sweep.trails: unknown key (did you mean \"trials\"?)"},
        {"sweep_bad_diagnostics.cfg", "4: sweep.diagnostics.sharpnes_examples: unknown key "
                                      "(did you mean \"sharpness_examples\"?)"},
        {"sweep_bad_hparams.cfg", "4: sweep.submissions[0].hparams: "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "%s%s", FIXTURES, cases[i].file);
        memset(err, 0, sizeof err);
        assert_int_equal(tp_config_load_sweep(path, &c, err, sizeof err), TP_ECONFIG);
        print_message("%s -> %s\n", cases[i].file, err);
        assert_prefix("%s:%s", path, cases[i].rest);
        assert_null(c.submissions);
        tp_config_free_sweep(&c);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* --hparams */

static void test_kv_good(void **state)
{
    tp_kv_list l;
    assert_int_equal(tp_kv_parse("learning_rate=1e-3,one_minus_beta1=0.1", &l, err, sizeof err), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0].key, "learning_rate");
    assert_true(l.items[0].value == 1e-3);
    assert_string_equal(l.items[1].key, "one_minus_beta1");
    assert_true(l.items[1].value == 0.1);
    assert_true(tp_kv_find(&l, "one_minus_beta1") == &l.items[1]);
    assert_null(tp_kv_find(&l, "weight_decay"));
    tp_kv_free(&l);
    assert_null(l.items);
    assert_int_equal(l.count, 0);
    tp_kv_free(&l);
    tp_kv_free(NULL);

    assert_int_equal(tp_kv_parse("  a = -2.5 ,\tb2=0x10 , warmup_1=3 ", &l, err, sizeof err), 0);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].key, "a");
    assert_true(l.items[0].value == -2.5);
    assert_true(tp_kv_find(&l, "b2")->value == 16.0);
    assert_true(tp_kv_find(&l, "warmup_1")->value == 3.0);
    tp_kv_free(&l);

    assert_int_equal(tp_kv_parse("", &l, err, sizeof err), 0);
    assert_int_equal(l.count, 0);
    assert_null(tp_kv_find(&l, "a"));
    tp_kv_free(&l);
    assert_int_equal(tp_kv_parse("   ", &l, err, sizeof err), 0);
    assert_int_equal(l.count, 0);
    tp_kv_free(&l);
}

static void test_kv_bad(void **state)
{
    static const struct {
        const char *s, *want; /* start of the message */
    } cases[] = {
        {"a=1,a=2", "\"a=2\" at position 5: name \"a\" given twice"},
        {"lr=1, b=2,  lr = 3", "\"lr = 3\" at position 13: name \"lr\" given twice"},
        {"Learning_rate=1", "\"Learning_rate=1\" at position 1: invalid name \"Learning_rate\""},
        {"a=1,beta-1=0.9", "\"beta-1=0.9\" at position 5: invalid name \"beta-1\""},
        {"=1", "\"=1\" at position 1: invalid name \"\""},
        {"a=abc", "\"a=abc\" at position 1: value \"abc\" is not a number"},
        {"a=1x", "\"a=1x\" at position 1: value \"1x\" is not a number"},
        {"a=1 2", "\"a=1 2\" at position 1: value \"1 2\" is not a number"},
        {"a=", "\"a=\" at position 1: value \"\" is not a number"},
        {"a=1,b=inf", "\"b=inf\" at position 5: value \"inf\" is not finite"},
        {"a=nan", "\"a=nan\" at position 1: value \"nan\" is not finite"},
        {"a=1e999", "\"a=1e999\" at position 1: value \"1e999\" is not finite"},
        {"a=1,", "empty item at position 5"},
        {",a=1", "empty item at position 1"},
        {"a=1,,b=2", "empty item at position 5"},
        {"a=1, ,b=2", "empty item at position 6"},
        {"a=1,b", "\"b\" at position 5: expected name=value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tp_kv_list l = {(tp_kv *)1, 99}; /* garbage in: must be overwritten */
        memset(err, 0, sizeof err);
        int rc = tp_kv_parse(cases[i].s, &l, err, sizeof err);
        print_message("'%s' -> %s\n", cases[i].s, err);
        assert_int_equal(rc, TP_EINVAL);
        assert_null(l.items);
        assert_int_equal(l.count, 0);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("'%s': message \"%s\" does not start with \"%s\"", cases[i].s, err,
                     cases[i].want);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Finding a workload */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_find_workload(void **state)
{
    char dir[] = "/tmp/tp_test_config_XXXXXX", p[512], path[512];
    assert_non_null(mkdtemp(dir));

    /* Empty: the message says there are none. */
    assert_int_equal(tp_config_find_workload(dir, "zeta", path, sizeof path, err, sizeof err),
                     TP_ENOENT);
    assert_non_null(strstr(err, "no workloads in"));

    /* Two workloads, and three directories or files that are not workloads. */
    const char *subdirs[] = {"beta", "alpha", "notes", "gamma"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, subdirs[i]);
        assert_int_equal(mkdir(p, 0755), 0);
    }
    snprintf(p, sizeof p, "%s/alpha/alpha.cfg", dir);
    write_file(p, "workload = {};\n");
    snprintf(p, sizeof p, "%s/beta/beta.cfg", dir);
    write_file(p, "workload = {};\n");
    snprintf(p, sizeof p, "%s/gamma/other.cfg", dir);
    write_file(p, "workload = {};\n");
    snprintf(p, sizeof p, "%s/stray.cfg", dir);
    write_file(p, "workload = {};\n");

    assert_int_equal(tp_config_find_workload(dir, "beta", path, sizeof path, err, sizeof err), 0);
    snprintf(p, sizeof p, "%s/beta/beta.cfg", dir);
    assert_string_equal(path, p);

    assert_int_equal(tp_config_find_workload(dir, "zeta", path, sizeof path, err, sizeof err),
                     TP_ENOENT);
    char want[1024];
    snprintf(want, sizeof want,
             "workload \"zeta\" not found: no file %s/zeta/zeta.cfg; workloads in %s: alpha, beta",
             dir, dir);
    assert_string_equal(err, want);
    /* A directory without its <name>.cfg is not a workload. */
    assert_int_equal(tp_config_find_workload(dir, "gamma", path, sizeof path, err, sizeof err),
                     TP_ENOENT);

    assert_int_equal(tp_config_find_workload(dir, "../x", path, sizeof path, err, sizeof err),
                     TP_EINVAL);
    assert_int_equal(tp_config_find_workload(dir, "alpha", path, 8, err, sizeof err), TP_ERANGE);

    snprintf(p, sizeof p, "%s/missing", dir);
    assert_int_equal(tp_config_find_workload(p, "alpha", path, sizeof path, err, sizeof err),
                     TP_ENOENT);
    assert_non_null(strstr(err, "cannot read workload directory"));

    const char *files[] = {"alpha/alpha.cfg", "beta/beta.cfg", "gamma/other.cfg", "stray.cfg"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, subdirs[i]);
        rmdir(p);
    }
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_good),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_sweep_config),
        cmocka_unit_test(test_load_exact_messages),
        cmocka_unit_test(test_load_unreadable),
        cmocka_unit_test(test_load_shipped_workload),
        cmocka_unit_test(test_override_good),
        cmocka_unit_test(test_override_bad),
        cmocka_unit_test(test_kv_good),
        cmocka_unit_test(test_kv_bad),
        cmocka_unit_test(test_find_workload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
