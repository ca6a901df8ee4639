/*
 * test_spec.c - the trial spec shared by host and worker: every field survives the trip
 * through tp_spec_to_argv and back through getopt_long with tp_spec_options, bad values are
 * refused with the option's name, and the option table matches its values.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <trainperf/trainperf.h>

#include "core/spec.h"

static void parse(int argc, char **argv, tp_trial_spec *out)
{
    tp_spec_init(out);
    char err[256];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", tp_spec_options, NULL)) != -1) {
        assert_true(tp_spec_is_option(c));
        if (tp_spec_set(out, c, optarg, err, sizeof err) != TP_OK)
            fail_msg("%s", err);
    }
    assert_int_equal(optind, argc);
}

static void test_roundtrip(void **state)
{
    tp_trial_spec s;
    tp_spec_init(&s);
    s.workload_config = "workloads/fmnist_mlp/fmnist_mlp.cfg";
    s.variant = "tanh";
    s.overrides[0] = "budget=5";
    s.overrides[1] = "data.train_limit=100";
    s.num_overrides = 2;
    s.plugin_dir = "/tmp/plugins";
    s.optimizer = "adamw";
    s.schedule = "warmup_cosine";
    s.selection = "next_batch";
    s.hparams = "learning_rate=0.1,warmup_factor=0.05";
    s.seed = 18446744073709551615ULL;
    s.clock = TP_CLOCK_CPU;
    s.max_steps = 12345;
    s.threads = 3;
    s.sharpness_every = 25;
    s.sharpness_examples = 1000;

    char *argv[64], nums[TP_SPEC_NUMS_SIZE];
    int n = 0;
    argv[n++] = "worker";
    assert_int_equal(tp_spec_to_argv(&s, argv, &n, 64, nums), TP_OK);
    assert_null(argv[n]);
    tp_trial_spec back;
    parse(n, argv, &back);
    assert_string_equal(back.workload_config, s.workload_config);
    assert_string_equal(back.variant, "tanh");
    assert_int_equal(back.num_overrides, 2);
    assert_string_equal(back.overrides[1], "data.train_limit=100");
    assert_string_equal(back.plugin_dir, s.plugin_dir);
    assert_string_equal(back.optimizer, "adamw");
    assert_string_equal(back.schedule, "warmup_cosine");
    assert_string_equal(back.selection, "next_batch");
    assert_string_equal(back.hparams, s.hparams);
    assert_true(back.seed == s.seed);
    assert_int_equal(back.clock, TP_CLOCK_CPU);
    assert_int_equal(back.max_steps, 12345);
    assert_int_equal(back.threads, 3);
    assert_int_equal(back.sharpness_every, 25);
    assert_int_equal(back.sharpness_examples, 1000);

    /* Unset optional fields stay unset. */
    tp_trial_spec bare;
    tp_spec_init(&bare);
    bare.optimizer = "sgd";
    n = 1;
    assert_int_equal(tp_spec_to_argv(&bare, argv, &n, 64, nums), TP_OK);
    parse(n, argv, &back);
    assert_null(back.variant);
    assert_null(back.schedule);
    assert_null(back.hparams);
    assert_int_equal(back.threads, 1);
    assert_int_equal(back.sharpness_every, 0);
    /* Too small an argv is refused, not overrun. */
    n = 1;
    assert_int_equal(tp_spec_to_argv(&s, argv, &n, 6, nums), TP_ERANGE);
}

static void test_bad_values(void **state)
{
    static const struct {
        const char *opt, *value, *want;
    } cases[] = {
        {"seed", "-1", "--seed: bad value '-1'"},
        {"seed", "12x", "--seed: bad value '12x'"},
        {"clock", "gpu", "--clock: bad value 'gpu': expected wall, cpu or steps"},
        {"threads", "0", "--threads: bad value '0'"},
        {"threads", "257", "--threads: bad value '257'"},
        {"sharpness-every", "-5", "--sharpness-every: bad value '-5': expected a step count"},
        {"sharpness-examples", "many", "--sharpness-examples: bad value 'many'"},
        {"max-steps", "", "--max-steps: bad value ''"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int opt = -1;
        for (int k = 0; tp_spec_options[k].name; k++)
            if (strcmp(tp_spec_options[k].name, cases[i].opt) == 0)
                opt = tp_spec_options[k].val;
        assert_true(tp_spec_is_option(opt));
        tp_trial_spec s;
        tp_spec_init(&s);
        char err[256] = "";
        assert_int_equal(tp_spec_set(&s, opt, cases[i].value, err, sizeof err), TP_EINVAL);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("'%s' does not start with '%s'", err, cases[i].want);
    }
}

static void test_table(void **state)
{
    int k = 0;
    for (; tp_spec_options[k].name; k++) {
        assert_int_equal(tp_spec_options[k].val, TP_SPEC_OPT_FIRST + k);
        assert_true(tp_spec_is_option(tp_spec_options[k].val));
    }
    assert_int_equal(k + 1, TP_SPEC_NUM_OPTIONS);
    assert_false(tp_spec_is_option(TP_SPEC_OPT_FIRST + k));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
