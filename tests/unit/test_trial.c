/*
 * test_trial.c - the AlgoPerf timing rules of core/trial.c on a fake clock: first eval right
 * after step 1, the eval period measured from the end of the previous eval, prepare_for_eval
 * on the clock, the budget check without an over-budget eval, stopping on both targets, on
 * training complete and on errors, and the CPU timing clock.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/trial.h"

/* A fake world: every hook advances the fake clocks by a fixed cost. */
typedef struct fake {
    tp_time now;
    double step_cost, step_cpu_cost;
    double eval_cost;
    double prepare_cost;
    int prepares;
    /* Validation/test metric as a function of the eval index. */
    double val_metric[64], test_metric[64];
    int evals_done;
    uint64_t eval_steps[64];
    double eval_scores[64];
    int complete_at_step; /* return TRAINING_COMPLETE at this 0-based step; -1 never */
    int fail_at_step;     /* fail at this 0-based step; -1 never */
    int nan_at_eval;      /* loss NaN at this eval; -1 never */
    double diag_cost;     /* wall and CPU seconds of one diagnose call */
    int diags;            /* diagnose calls so far */
    uint64_t diag_steps[64];
    int diag_fail_at; /* fail the diagnose call with this 0-based index; -1 never */
} fake;

static void fake_read(void *ud, tp_time *t)
{
    *t = ((fake *)ud)->now;
}

static int fake_step(void *ud, uint64_t step, char *err, size_t errlen)
{
    fake *f = ud;
    f->now.wall += f->step_cost;
    f->now.cpu += f->step_cpu_cost;
    if ((int)step == f->fail_at_step) {
        snprintf(err, errlen, "update: exploded at step %llu", (unsigned long long)step);
        return TP_EPLUGIN;
    }
    return (int)step == f->complete_at_step ? TP_TRAINING_COMPLETE : TP_OK;
}

static int fake_prepare(void *ud, char *err, size_t errlen)
{
    fake *f = ud;
    f->now.wall += f->prepare_cost;
    f->now.cpu += f->prepare_cost;
    f->prepares++;
    return TP_OK;
}

static int fake_eval(void *ud, tp_trial_metrics *m, char *err, size_t errlen)
{
    fake *f = ud;
    int i = f->evals_done;
    f->now.wall += f->eval_cost;
    f->now.cpu += f->eval_cost;
    m->validation_metric = f->val_metric[i];
    m->test_metric = f->test_metric[i];
    m->validation_loss = i == f->nan_at_eval ? NAN : 1.0;
    m->test_loss = 1.0;
    return TP_OK;
}

static int fake_on_eval(void *ud, const tp_eval_row *row, char *err, size_t errlen)
{
    fake *f = ud;
    assert_int_equal(row->eval_index, f->evals_done);
    f->eval_steps[f->evals_done] = row->global_step;
    f->eval_scores[f->evals_done] = row->score;
    f->evals_done++;
    return TP_OK;
}

static int fake_diagnose(void *ud, const tp_train_state *ts, char *err, size_t errlen)
{
    fake *f = ud;
    f->now.wall += f->diag_cost;
    f->now.cpu += f->diag_cost;
    if (f->diags == f->diag_fail_at) {
        snprintf(err, errlen, "sharpness: the full-batch loss is not finite");
        return TP_ENONFINITE;
    }
    f->diag_steps[f->diags++ % 64] = ts->step;
    return TP_OK;
}

static void fake_init(fake *f)
{
    memset(f, 0, sizeof *f);
    f->now.wall = 1000.0; /* an arbitrary epoch: rules must only use differences */
    f->now.cpu = 5.0;
    f->step_cost = 1.0;
    f->step_cpu_cost = 1.0;
    f->complete_at_step = -1;
    f->fail_at_step = -1;
    f->nan_at_eval = -1;
    f->diag_fail_at = -1;
    for (int i = 0; i < 64; i++) {
        f->val_metric[i] = 0.1;
        f->test_metric[i] = 0.1;
    }
}

static tp_trial_params default_params(void)
{
    tp_trial_params p = {
        .eval_period = 3.0,
        .budget = 100.0,
        .timing = TP_CLOCK_WALL,
        .maximize = 1,
        .validation_target = 0.9,
        .test_target = 0.8,
    };
    return p;
}

static void run(fake *f, const tp_trial_params *p, int with_prepare, tp_trial_outcome *out)
{
    tp_clock clock = {fake_read, f};
    tp_trial_hooks hooks = {
        .ud = f,
        .step = fake_step,
        .prepare_for_eval = with_prepare ? fake_prepare : NULL,
        .eval = fake_eval,
        .on_eval = fake_on_eval,
        .diagnose = fake_diagnose,
    };
    tp_train_state ts;
    memset(&ts, 0, sizeof ts);
    assert_int_equal(tp_trial_run(p, &clock, &hooks, &ts, out), 0);
    assert_int_equal(ts.step, out->steps);
    assert_int_equal(ts.num_evals, (uint32_t)f->evals_done);
}

static void test_first_eval_after_step_one_and_period(void **state)
{
    (void)state;
    fake f;
    fake_init(&f);
    f.eval_cost = 0.5;
    tp_trial_params p = default_params();
    p.budget = 10.0;
    tp_trial_outcome out;
    run(&f, &p, 0, &out);
    /* Steps cost 1 s, evals 0.5 s, period 3 s measured from the end of the previous eval:
     * eval after step 1 (ends t=1.5); steps end at 2.5, 3.5, 4.5 -> eval after step 4 (ends
     * 5.0); -> after step 7 (ends 8.5); -> step 10: submission time 10 >= budget: stop, no eval. */
    assert_int_equal(f.evals_done, 3);
    assert_int_equal(f.eval_steps[0], 1);
    assert_int_equal(f.eval_steps[1], 4);
    assert_int_equal(f.eval_steps[2], 7);
    assert_true(fabs(f.eval_scores[0] - 1.0) < 1e-12);
    assert_true(fabs(f.eval_scores[1] - 4.0) < 1e-12); /* evals are not on the clock */
    assert_int_equal(out.status, TP_TRIAL_BUDGET);
    assert_int_equal(out.steps, 10);
    assert_true(isinf(out.time_to_target));
}

static void test_budget_stop_has_no_eval_over_budget(void **state)
{
    (void)state;
    fake f;
    fake_init(&f);
    tp_trial_params p = default_params();
    p.eval_period = 2.0;
    p.budget = 5.0;
    tp_trial_outcome out;
    run(&f, &p, 0, &out);
    for (int i = 0; i < f.evals_done; i++)
        assert_true(f.eval_scores[i] < p.budget);
    assert_int_equal(out.status, TP_TRIAL_BUDGET);
    /* Steps may run past the budget between evals (the check is at eval-due steps only). */
    assert_true(out.submission_time_wall >= p.budget);
}

static void test_prepare_for_eval_is_timed(void **state)
{
    (void)state;
    fake f;
    fake_init(&f);
    f.prepare_cost = 0.25;
    tp_trial_params p = default_params();
    p.budget = 4.0;
    tp_trial_outcome out;
    run(&f, &p, 1, &out);
    /* Step 1 ends at 1, prepare at 1.25: eval score 1.25 includes prepare_for_eval. */
    assert_true(f.prepares >= 2);
    assert_true(fabs(f.eval_scores[0] - 1.25) < 1e-12);
    assert_true(fabs(out.submission_time_wall - (out.steps * 1.0 + f.prepares * 0.25)) < 1e-9);
}

static void test_stops_when_both_targets_reached(void **state)
{
    (void)state;
    fake f;
    fake_init(&f);
    /* Validation target (0.9) reached at eval 2, test target (0.8) only at eval 4. */
    f.val_metric[2] = 0.91;
    f.val_metric[3] = 0.85; /* dips back: reached stays reached */
    f.val_metric[4] = 0.92;
    f.test_metric[4] = 0.85;
    tp_trial_params p = default_params();
    tp_trial_outcome out;
    run(&f, &p, 0, &out);
    assert_int_equal(out.status, TP_TRIAL_REACHED);
    assert_int_equal(f.evals_done, 5);
    assert_true(fabs(out.time_to_target - f.eval_scores[2]) < 1e-12);
    assert_true(fabs(out.best_validation_metric - 0.92) < 1e-12);
}

static void test_minimised_metric(void **state)
{
    (void)state;
    fake f;
    fake_init(&f);
    for (int i = 0; i < 64; i++) {
        f.val_metric[i] = 1.0 - 0.1 * i; /* a loss falling 0.1 per eval */
        f.test_metric[i] = 1.0 - 0.1 * i;
    }
    tp_trial_params p = default_params();
    p.maximize = 0;
    p.validation_target = 0.75;
    p.test_target = 0.65;
    tp_trial_outcome out;
    run(&f, &p, 0, &out);
    assert_int_equal(out.status, TP_TRIAL_REACHED);
    assert_int_equal(f.evals_done, 5); /* 0.6 <= 0.65 at eval index 4 */
    assert_true(fabs(out.time_to_target - f.eval_scores[3]) < 1e-12);
    assert_true(fabs(out.best_validation_metric - 0.6) < 1e-9);
}

static void test_training_complete_gets_final_eval(void **state)
{
    (void)state;
    fake f;
    fake_init(&f);
    f.complete_at_step = 4; /* 0-based: the 5th update says done, not at an eval-due step */
    tp_trial_params p = default_params();
    p.eval_period = 50.0;
    tp_trial_outcome out;
    run(&f, &p, 0, &out);
    assert_int_equal(out.status, TP_TRIAL_COMPLETE);
    assert_int_equal(out.steps, 5);
    assert_int_equal(f.evals_done, 2);
    assert_int_equal(f.eval_steps[1], 5);
}

static void test_max_steps(void **state)
{
    (void)state;
    fake f;
    fake_init(&f);
    tp_trial_params p = default_params();
    p.max_steps = 7;
    tp_trial_outcome out;
    run(&f, &p, 0, &out);
    assert_int_equal(out.status, TP_TRIAL_COMPLETE);
    assert_int_equal(out.steps, 7);
    assert_int_equal(f.eval_steps[f.evals_done - 1], 7);
}

static void test_step_error_fails_trial(void **state)
{
    (void)state;
    fake f;
    fake_init(&f);
    f.fail_at_step = 2;
    tp_trial_params p = default_params();
    tp_trial_outcome out;
    run(&f, &p, 0, &out);
    assert_int_equal(out.status, TP_TRIAL_FAILED);
    assert_int_equal(out.reason, TP_EPLUGIN);
    assert_non_null(strstr(out.message, "exploded at step 2"));
    assert_int_equal(out.steps, 2);
}

static void test_nonfinite_loss_fails_trial(void **state)
{
    (void)state;
    fake f;
    fake_init(&f);
    f.nan_at_eval = 1;
    tp_trial_params p = default_params();
    tp_trial_outcome out;
    run(&f, &p, 0, &out);
    assert_int_equal(out.status, TP_TRIAL_FAILED);
    assert_int_equal(out.reason, TP_ENONFINITE);
    assert_int_equal(f.evals_done, 1); /* the NaN eval is not reported as a result */
}

static void test_cpu_timing_clock(void **state)
{
    (void)state;
    fake f;
    fake_init(&f);
    f.step_cost = 1.0;     /* wall */
    f.step_cpu_cost = 0.5; /* the process got half a core */
    tp_trial_params p = default_params();
    p.timing = TP_CLOCK_CPU;
    p.eval_period = 1.0;
    p.budget = 5.0;
    tp_trial_outcome out;
    run(&f, &p, 0, &out);
    /* Period, budget and scores are on the CPU clock: evals after steps 1, 3, 5, 7, 9 (one
     * CPU second apart); at step 11 the submission has used 5.5 CPU s >= 5: stop, no eval. */
    assert_int_equal(out.status, TP_TRIAL_BUDGET);
    assert_int_equal(f.evals_done, 5);
    assert_int_equal(f.eval_steps[4], 9);
    assert_int_equal(out.steps, 11);
    assert_true(fabs(out.submission_time_cpu - 5.5) < 1e-9);
    assert_true(fabs(out.submission_time_wall - 11.0) < 1e-9);
    assert_true(fabs(f.eval_scores[0] - 0.5) < 1e-12);
}

static void test_steps_clock_is_virtual(void **state)
{
    (void)state;
    fake f;
    fake_init(&f);
    f.step_cost = 0.37; /* the real clocks tick irregularly: the steps clock ignores them */
    f.step_cpu_cost = 0.11;
    f.eval_cost = 5.0;
    f.prepare_cost = 2.0;
    tp_trial_params p = default_params();
    p.timing = TP_CLOCK_STEPS;
    p.eval_period = 0.004; /* 4 steps */
    p.budget = 0.010;      /* 10 steps */
    tp_trial_outcome out;
    run(&f, &p, 1, &out);
    /* Evals after steps 1, 5, 9 (0.004 s of step time apart; evals and prepare_for_eval take
     * none); at step 13 the budget (0.010) is spent: stop without an eval. */
    assert_int_equal(f.evals_done, 3);
    assert_int_equal(f.eval_steps[0], 1);
    assert_int_equal(f.eval_steps[1], 5);
    assert_int_equal(f.eval_steps[2], 9);
    assert_true(fabs(f.eval_scores[1] - 0.005) < 1e-12);
    assert_int_equal(out.status, TP_TRIAL_BUDGET);
    assert_int_equal(out.steps, 13);
    /* The real clocks are still recorded. */
    assert_true(fabs(out.submission_time_wall - (13 * 0.37 + 4 * 2.0)) < 1e-9);
}

static void test_bad_params_rejected(void **state)
{
    (void)state;
    fake f;
    fake_init(&f);
    tp_trial_params p = default_params();
    p.budget = 0;
    tp_clock clock = {fake_read, &f};
    tp_trial_hooks hooks = {.ud = &f, .step = fake_step, .eval = fake_eval};
    tp_train_state ts;
    tp_trial_outcome out;
    assert_int_equal(tp_trial_run(&p, &clock, &hooks, &ts, &out), TP_EINVAL);
}

static void test_diagnostics_are_invisible_to_the_rules(void **state)
{
    (void)state;
    /* The same trial with and without a costly diagnostic every 2 steps: same evals at the
     * same steps with the same scores; the diagnostic ran before step 1 and after every 2. */
    tp_trial_outcome plain, measured;
    fake a, b;
    fake_init(&a);
    fake_init(&b);
    a.eval_cost = b.eval_cost = 0.5;
    b.diag_cost = 7.0;
    tp_trial_params p = default_params();
    p.budget = 12.0;
    run(&a, &p, 1, &plain);
    p.diagnose_every = 2;
    run(&b, &p, 1, &measured);
    assert_int_equal(a.diags, 0);
    assert_int_equal(plain.status, measured.status);
    assert_int_equal(plain.steps, measured.steps);
    assert_int_equal(a.evals_done, b.evals_done);
    for (int i = 0; i < a.evals_done; i++) {
        assert_int_equal(a.eval_steps[i], b.eval_steps[i]);
        assert_float_equal(a.eval_scores[i], b.eval_scores[i], 1e-12);
    }
    assert_float_equal(plain.submission_time_wall, measured.submission_time_wall, 1e-12);
    assert_int_equal(b.diags, 1 + (int)measured.steps / 2);
    assert_int_equal(b.diag_steps[0], 0);
    assert_int_equal(b.diag_steps[1], 2);
    assert_int_equal(b.diag_steps[2], 4);
}

static void test_diagnostic_error_fails_trial(void **state)
{
    (void)state;
    for (int at = 0; at < 2; at++) { /* before the first step, and after step 3 */
        fake f;
        fake_init(&f);
        f.diag_fail_at = at;
        tp_trial_params p = default_params();
        p.diagnose_every = 3;
        tp_trial_outcome out;
        run(&f, &p, 0, &out);
        assert_int_equal(out.status, TP_TRIAL_FAILED);
        assert_int_equal(out.reason, TP_ENONFINITE);
        assert_non_null(strstr(out.message, "full-batch loss"));
        assert_int_equal(out.steps, at == 0 ? 0 : 3);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_eval_after_step_one_and_period),
        cmocka_unit_test(test_budget_stop_has_no_eval_over_budget),
        cmocka_unit_test(test_prepare_for_eval_is_timed),
        cmocka_unit_test(test_stops_when_both_targets_reached),
        cmocka_unit_test(test_minimised_metric),
        cmocka_unit_test(test_training_complete_gets_final_eval),
        cmocka_unit_test(test_max_steps),
        cmocka_unit_test(test_step_error_fails_trial),
        cmocka_unit_test(test_nonfinite_loss_fails_trial),
        cmocka_unit_test(test_cpu_timing_clock),
        cmocka_unit_test(test_steps_clock_is_virtual),
        cmocka_unit_test(test_bad_params_rejected),
        cmocka_unit_test(test_diagnostics_are_invisible_to_the_rules),
        cmocka_unit_test(test_diagnostic_error_fails_trial),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
