/*
 * trial.c - the timing rules of one trial (see trial.h), after AlgoPerf's
 * submission_runner.py::train_once.
 */
#include "core/trial.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int tp_trial_reached(double metric, double target, int maximize)
{
    if (!isfinite(metric))
        return 0;
    return maximize ? metric >= target : metric <= target;
}

static void fail(tp_trial_outcome *out, int code, const char *msg)
{
    out->status = TP_TRIAL_FAILED;
    out->reason = code;
    snprintf(out->message, sizeof out->message, "%s", msg && *msg ? msg : tp_strerror(code));
}

/* A diagnostic between steps. Its time on the timing clock is given back to the eval period
 * by moving the end of the previous eval forward by it; *after is the clock when it ended. */
static int run_diagnose(const tp_trial_params *p, const tp_clock *clock,
                        const tp_trial_hooks *hooks, tp_train_state *ts, double *last_eval_end,
                        tp_time *after, char *err, size_t errlen)
{
    tp_time d0;
    err[0] = '\0';
    clock->read(clock->ud, &d0);
    int rc = hooks->diagnose(hooks->ud, ts, err, errlen);
    clock->read(clock->ud, after);
    if (p->timing != TP_CLOCK_STEPS)
        *last_eval_end += tp_time_pick(after, p->timing) - tp_time_pick(&d0, p->timing);
    return rc;
}

int tp_trial_run(const tp_trial_params *p, const tp_clock *clock, const tp_trial_hooks *hooks,
                 tp_train_state *ts, tp_trial_outcome *out)
{
    if (!p || !clock || !hooks || !hooks->step || !hooks->eval || !ts || !out)
        return TP_EINVAL;
    if (!(p->eval_period > 0) || !(p->budget > 0))
        return TP_EINVAL;

    memset(out, 0, sizeof *out);
    out->status = TP_TRIAL_RUNNING;
    out->time_to_target = INFINITY;
    out->best_validation_metric = NAN;

    char err[TP_ERROR_MESSAGE_MAX];
    tp_time start, t0, t1, now;
    clock->read(clock->ud, &start);
    double sub_wall = 0, sub_cpu = 0;
    double sub_steps = 0; /* TP_CLOCK_STEPS: virtual submission time */
    const int virt = p->timing == TP_CLOCK_STEPS;
    /* End of the previous eval on the timing clock; -inf makes the first step eval-due. */
    double last_eval_end = -INFINITY;
    int training_complete = 0, val_reached = 0, test_reached = 0;

    ts->step = 0;
    ts->submission_time = 0;
    ts->last_eval_time = 0;
    ts->num_evals = 0;
    ts->validation_target_reached = 0;
    ts->test_target_reached = 0;
    ts->last_validation_metric = NAN;
    ts->last_validation_loss = NAN;

    const int diagnose = hooks->diagnose && p->diagnose_every > 0;
    int rc0 =
        diagnose ? run_diagnose(p, clock, hooks, ts, &last_eval_end, &t1, err, sizeof err) : 0;
    if (rc0 < 0)
        fail(out, rc0, err);

    while (rc0 >= 0) {
        err[0] = '\0';
        clock->read(clock->ud, &t0);
        int rc = hooks->step(hooks->ud, ts->step, err, sizeof err);
        clock->read(clock->ud, &t1);
        sub_wall += t1.wall - t0.wall;
        sub_cpu += t1.cpu - t0.cpu;
        if (rc < 0) {
            fail(out, rc, err);
            break;
        }
        ts->step++;
        sub_steps = (double)ts->step * TP_CLOCK_STEP_SECONDS;
        ts->submission_time = tp_clock_submission_time((int)p->timing, ts->step, sub_wall, sub_cpu);
        if (rc == TP_TRAINING_COMPLETE || (p->max_steps && ts->step >= p->max_steps))
            training_complete = 1;
        if (hooks->on_step)
            hooks->on_step(hooks->ud, ts);
        if (diagnose && ts->step % p->diagnose_every == 0) {
            /* t1 becomes the time after it, for the eval-due test below. */
            rc = run_diagnose(p, clock, hooks, ts, &last_eval_end, &t1, err, sizeof err);
            if (rc < 0) {
                fail(out, rc, err);
                break;
            }
        }

        double timing_now = virt ? sub_steps : tp_time_pick(&t1, p->timing);
        int eval_due = timing_now - last_eval_end >= p->eval_period;
        if (!eval_due && !training_complete)
            continue;

        if (hooks->prepare_for_eval) {
            err[0] = '\0';
            clock->read(clock->ud, &t0);
            rc = hooks->prepare_for_eval(hooks->ud, err, sizeof err);
            clock->read(clock->ud, &t1);
            sub_wall += t1.wall - t0.wall;
            sub_cpu += t1.cpu - t0.cpu;
            ts->submission_time =
                tp_clock_submission_time((int)p->timing, ts->step, sub_wall, sub_cpu);
            if (rc < 0) {
                fail(out, rc, err);
                break;
            }
        }
        /* No scored eval is over budget. */
        if (ts->submission_time >= p->budget) {
            out->status = TP_TRIAL_BUDGET;
            break;
        }

        tp_trial_metrics m = {NAN, NAN, NAN, NAN};
        err[0] = '\0';
        rc = hooks->eval(hooks->ud, &m, err, sizeof err);
        if (rc < 0) {
            fail(out, rc, err);
            break;
        }
        if (!isfinite(m.validation_loss) || !isfinite(m.test_loss)) {
            fail(out, TP_ENONFINITE,
                 "evaluation loss is not finite: the parameters diverged (NaN or Inf)");
            break;
        }
        val_reached =
            val_reached || tp_trial_reached(m.validation_metric, p->validation_target, p->maximize);
        test_reached = test_reached || tp_trial_reached(m.test_metric, p->test_target, p->maximize);
        clock->read(clock->ud, &now);
        last_eval_end = virt ? sub_steps : tp_time_pick(&now, p->timing);

        ts->num_evals++;
        ts->last_eval_time = ts->submission_time;
        ts->last_validation_metric = m.validation_metric;
        ts->last_validation_loss = m.validation_loss;
        ts->validation_target_reached = val_reached;
        ts->test_target_reached = test_reached;

        if (isnan(out->best_validation_metric) ||
            (p->maximize ? m.validation_metric > out->best_validation_metric
                         : m.validation_metric < out->best_validation_metric))
            out->best_validation_metric = m.validation_metric;
        if (val_reached && isinf(out->time_to_target))
            out->time_to_target = ts->submission_time;

        tp_eval_row row = {
            .eval_index = ts->num_evals - 1,
            .global_step = ts->step,
            .score = ts->submission_time,
            .submission_time_wall = sub_wall,
            .submission_time_cpu = sub_cpu,
            .total_duration = now.wall - start.wall,
            .validation_metric = m.validation_metric,
            .validation_loss = m.validation_loss,
            .test_metric = m.test_metric,
            .test_loss = m.test_loss,
            .validation_reached = val_reached,
            .test_reached = test_reached,
        };
        out->num_evals = ts->num_evals;
        if (hooks->on_eval) {
            err[0] = '\0';
            rc = hooks->on_eval(hooks->ud, &row, err, sizeof err);
            if (rc < 0) {
                fail(out, rc, err);
                break;
            }
        }
        if (val_reached && test_reached) {
            out->status = TP_TRIAL_REACHED;
            break;
        }
        if (training_complete) {
            out->status = TP_TRIAL_COMPLETE;
            break;
        }
    }

    clock->read(clock->ud, &now);
    out->steps = ts->step;
    out->submission_time_wall = sub_wall;
    out->submission_time_cpu = sub_cpu;
    out->wall_time = now.wall - start.wall;
    out->num_evals = ts->num_evals;
    return 0;
}
