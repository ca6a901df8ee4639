/*
 * schedules.c - the baseline learning-rate schedules, four plugins in one .so:
 *
 *   "constant"       factor 1 at every step; no hyperparameters.
 *   "warmup_cosine"  AlgoPerf's warmup + cosine (BENCHMARK.md section 7): a linear warmup from
 *                    0 over W steps, then a cosine decay to 0 at step_hint, then 0.
 *   "warmup_linear"  AlgoPerf's warmup + linear decay (the heavy-ball and Nesterov baselines):
 *                    the same warmup, then a linear decay from 1 to end_factor over D steps,
 *                    then end_factor.
 *   "inverse_sqrt"   a linear warmup over W steps, then sqrt(W / step).
 *
 * `step` is always the 0-based index of the update the factor is for, the count optax's
 * schedule sees, and S below is the horizon the schedule plans for:
 *     S = step_hint_factor * step_hint      (a real number; step_hint from the train state)
 * step_hint_factor (default 1, so S = step_hint) exists because AlgoPerf's self-tuning
 * baselines plan for part of the step hint: prize_qualification_baselines/self_tuning/
 * jax_nadamw_target_setting.py builds its warmup + cosine from `workload.step_hint * 0.75`,
 * and the self-tuning Schedule-Free AdamW submission sizes its warmup from the same 0.75.
 * warmup_cosine and warmup_linear declare it; inverse_sqrt has no horizon.
 *
 * warmup_cosine, exactly. With f = warmup_factor,
 *     W = floor(f * S)                 (the reference truncates, as int() does)
 *     D = max(S - W, 1)                (the decay length; never 0)
 *     factor(step) = step / W                                   for step < W
 *                  = 0.5 * (1 + cos(pi * min(step - W, D) / D))  for step >= W
 * So at the boundaries:
 *   - step 0 gives 0 when W > 0: the first update does not move the parameters, as in the
 *     reference; step W - 1 gives (W - 1) / W, step W gives exactly 1;
 *   - step S gives exactly 0 (when S > W), and every step past S gives 0;
 *   - W = 0 (f = 0 or f * S < 1): no warmup, the cosine starts at step 0 with factor 1;
 *   - S <= W (f >= 1, or S = 0): the warmup runs its W steps, step W gives 1 and every later
 *     step 0 (D = 1), the reference's behaviour. No case divides by zero.
 * With step_hint_factor 1 this is exactly the schedule of the earlier single-factor version.
 *
 * warmup_linear, exactly (reference: algorithms/archived_paper_baselines/momentum, an
 * optax.linear_schedule warmup joined at W to optax.polynomial_schedule(power=1,
 * transition_steps=int(decay_steps * decay_steps_factor))). With e = end_factor and
 * d = decay_steps_factor:
 *     W = floor(f * S)                 (as warmup_cosine)
 *     D = floor(d * (S - W))           (int() of a non-negative number: truncation)
 *     factor(step) = step / W                          for step < W
 *                  = 1                                 for step >= W when D = 0
 *                  = 1 - (1 - e) * (step - W) / D      for W <= step < W + D
 *                  = e                                 for step >= W + D
 * So: step 0 gives 0 when W > 0, step W - 1 gives (W - 1) / W, step W gives exactly 1, step
 * W + D - 1 gives e + (1 - e) / D, step W + D (the end of the decay) and every later step give
 * exactly e; with the reference's d = 0.9 the decay ends at about 0.9 S, before step_hint.
 * Degenerate cases, none dividing by zero:
 *   - W = 0: no warmup, the decay starts at step 0 with factor 1;
 *   - D = 0 (d = 0, or S - W < 1 / d, e.g. S <= W): factor 1 from step W on, for ever. This
 *     is optax's rule, which the reference inherits: a polynomial schedule with
 *     transition_steps <= 0 is constant at its init value (it does NOT jump to e).
 *
 * inverse_sqrt, exactly (no reference in AlgoPerf's baselines; the usual Transformer
 * schedule, normalised to peak 1):
 *     W = floor(f * step_hint)
 *     factor(step) = step / W              for step < W
 *                  = sqrt(W / step)        for step >= W > 0   (1 at step W, continuous)
 *                  = 1 / sqrt(step + 1)    for every step when W = 0 (1 at step 0)
 *
 * Not here: schedules that read the clock instead of the step, restarts, per-step state.
 */
#include <math.h>
#include <stdio.h>

#include <trainperf/trainperf.h>

#include "../common/plugin_util.h"

/* M_PI is POSIX, not C11. */
#define SCHEDULES_PI 3.14159265358979323846

/* At most this many hyperparameters per schedule. */
#define SCHEDULES_MAX_HPARAMS 4

/* ---------------------------------------------------------------------------------------- */
/* What every schedule with hyperparameters shares */

/* The declared hyperparameters' values, in declaration order. */
typedef struct sched_state {
    double h[SCHEDULES_MAX_HPARAMS];
} sched_state;

#define HP(name, def, lo, hi, help)                                                                \
    {                                                                                              \
        sizeof(tp_hparam_decl), TP_SDK_VERSION, name, TP_HPARAM_FLOAT, def, lo, hi, help           \
    }

#define HP_WARMUP_FACTOR                                                                           \
    HP("warmup_factor", 0.05, 0.0, 1.0, "linear warmup over warmup_factor * step_hint steps")
#define HP_STEP_HINT_FACTOR                                                                        \
    HP("step_hint_factor", 1.0, 0.0, 10.0,                                                         \
       "plan for step_hint_factor * step_hint steps (AlgoPerf self-tuning baselines: 0.75)")

/* Read every hyperparameter `d` declares into a new state. */
static int sched_init(const tp_plugin_desc *d, const tp_host *host, tp_ctx *ctx, void **state,
                      tp_error *err)
{
    sched_state *s;
    int rc;

    if (!TP_FIELD_PRESENT(host, tp_host, hparam))
        return sub_fail(err, d->id, TP_EABI, "host table too old: no hparam()");
    s = host->alloc(ctx, sizeof *s);
    if (s == NULL)
        return sub_fail(err, d->id, TP_ENOMEM, "out of memory for the state");
    for (uint32_t k = 0; k < d->num_hparams && k < SCHEDULES_MAX_HPARAMS; k++) {
        if ((rc = sub_hparam(host, ctx, d->id, d->hparams[k].name, &s->h[k], err)) != TP_OK) {
            host->free(ctx, s);
            return rc;
        }
    }
    *state = s;
    return TP_OK;
}

static void sched_destroy(void *state, const tp_host *host, tp_ctx *ctx)
{
    host->free(ctx, state);
}

/* The step hint from the train state, or TP_ESTATE with a message. */
static int sched_step_hint(const tp_host *host, tp_ctx *ctx, const char *id, double *factor,
                           uint64_t *step_hint, tp_error *err)
{
    const tp_train_state *ts = host->train_state(ctx);
    if (factor == NULL)
        return sub_fail(err, id, TP_EINVAL, "lr_factor: NULL factor");
    if (!TP_FIELD_PRESENT(ts, tp_train_state, step_hint))
        return sub_fail(err, id, TP_ESTATE, "lr_factor: no step_hint in the train state");
    *step_hint = ts->step_hint;
    return TP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* constant */

static int constant_lr_factor(void *state, const tp_host *host, tp_ctx *ctx, uint64_t step,
                              double *factor, tp_error *err)
{
    if (factor == NULL)
        return sub_fail(err, "constant", TP_EINVAL, "lr_factor: NULL factor");
    *factor = 1.0;
    return TP_OK;
}

static const tp_plugin_desc constant_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "constant",
    .kind = TP_PLUGIN_SCHEDULE,
    .description = "constant learning rate: factor 1 at every step",
    .hparams = NULL,
    .num_hparams = 0,
    .lr_factor = constant_lr_factor,
};

/* ---------------------------------------------------------------------------------------- */
/* warmup_cosine */

enum { WC_WARMUP, WC_HINT_FACTOR };

static const tp_hparam_decl warmup_cosine_hparams[] = {HP_WARMUP_FACTOR, HP_STEP_HINT_FACTOR};

static const tp_plugin_desc warmup_cosine_desc;

static int warmup_cosine_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    return sched_init(&warmup_cosine_desc, host, ctx, state, err);
}

/* The factor for `step` given the horizon S (real) and warmup_factor; see the file comment. */
static double warmup_cosine_factor(uint64_t step, double horizon, double warmup_factor)
{
    const double warmup = floor(warmup_factor * horizon);
    const double decay = fmax(horizon - warmup, 1.0);
    const double t = (double)step;

    if (t < warmup)
        return t / warmup;
    const double frac = t - warmup >= decay ? 1.0 : (t - warmup) / decay;
    return frac >= 1.0 ? 0.0 : 0.5 * (1.0 + cos(SCHEDULES_PI * frac));
}

static int warmup_cosine_lr_factor(void *state, const tp_host *host, tp_ctx *ctx, uint64_t step,
                                   double *factor, tp_error *err)
{
    const sched_state *s = state;
    uint64_t hint = 0;
    int rc = sched_step_hint(host, ctx, "warmup_cosine", factor, &hint, err);
    if (rc != TP_OK)
        return rc;
    *factor = warmup_cosine_factor(step, s->h[WC_HINT_FACTOR] * (double)hint, s->h[WC_WARMUP]);
    return TP_OK;
}

static const tp_plugin_desc warmup_cosine_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "warmup_cosine",
    .kind = TP_PLUGIN_SCHEDULE,
    .description = "linear warmup over warmup_factor * step_hint steps, cosine to 0 at step_hint "
                   "(times step_hint_factor)",
    .hparams = warmup_cosine_hparams,
    .num_hparams = sizeof warmup_cosine_hparams / sizeof warmup_cosine_hparams[0],
    .init = warmup_cosine_init,
    .destroy = sched_destroy,
    .lr_factor = warmup_cosine_lr_factor,
};

/* ---------------------------------------------------------------------------------------- */
/* warmup_linear */

enum { WL_WARMUP, WL_END, WL_DECAY_STEPS, WL_HINT_FACTOR };

static const tp_hparam_decl warmup_linear_hparams[] = {
    HP_WARMUP_FACTOR,
    HP("end_factor", 0.001, 0.0, 1.0, "the factor at the end of the decay and after it"),
    HP("decay_steps_factor", 0.9, 0.0, 1.0,
       "decay over decay_steps_factor * (step_hint - warmup) steps"),
    HP_STEP_HINT_FACTOR,
};

static const tp_plugin_desc warmup_linear_desc;

static int warmup_linear_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    return sched_init(&warmup_linear_desc, host, ctx, state, err);
}

/* See the file comment. */
static double warmup_linear_factor(uint64_t step, double horizon, double warmup_factor,
                                   double end_factor, double decay_steps_factor)
{
    const double warmup = floor(warmup_factor * horizon);
    const double decay = floor(decay_steps_factor * fmax(horizon - warmup, 0.0));
    const double t = (double)step;

    if (t < warmup)
        return t / warmup;
    if (decay <= 0.0)
        return 1.0; /* optax: a polynomial schedule of no steps is constant at its start */
    if (t - warmup >= decay)
        return end_factor;
    return 1.0 - (1.0 - end_factor) * ((t - warmup) / decay);
}

static int warmup_linear_lr_factor(void *state, const tp_host *host, tp_ctx *ctx, uint64_t step,
                                   double *factor, tp_error *err)
{
    const sched_state *s = state;
    uint64_t hint = 0;
    int rc = sched_step_hint(host, ctx, "warmup_linear", factor, &hint, err);
    if (rc != TP_OK)
        return rc;
    *factor = warmup_linear_factor(step, s->h[WL_HINT_FACTOR] * (double)hint, s->h[WL_WARMUP],
                                   s->h[WL_END], s->h[WL_DECAY_STEPS]);
    return TP_OK;
}

static const tp_plugin_desc warmup_linear_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "warmup_linear",
    .kind = TP_PLUGIN_SCHEDULE,
    .description = "linear warmup, then linear decay to end_factor over decay_steps_factor of "
                   "the remaining steps, then constant",
    .hparams = warmup_linear_hparams,
    .num_hparams = sizeof warmup_linear_hparams / sizeof warmup_linear_hparams[0],
    .init = warmup_linear_init,
    .destroy = sched_destroy,
    .lr_factor = warmup_linear_lr_factor,
};

/* ---------------------------------------------------------------------------------------- */
/* inverse_sqrt */

enum { IS_WARMUP };

static const tp_hparam_decl inverse_sqrt_hparams[] = {HP_WARMUP_FACTOR};

static const tp_plugin_desc inverse_sqrt_desc;

static int inverse_sqrt_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    return sched_init(&inverse_sqrt_desc, host, ctx, state, err);
}

/* See the file comment. */
static double inverse_sqrt_factor(uint64_t step, uint64_t step_hint, double warmup_factor)
{
    const double warmup = floor(warmup_factor * (double)step_hint);
    const double t = (double)step;

    if (warmup <= 0.0)
        return 1.0 / sqrt(t + 1.0);
    if (t < warmup)
        return t / warmup;
    return sqrt(warmup / t);
}

static int inverse_sqrt_lr_factor(void *state, const tp_host *host, tp_ctx *ctx, uint64_t step,
                                  double *factor, tp_error *err)
{
    const sched_state *s = state;
    uint64_t hint = 0;
    int rc = sched_step_hint(host, ctx, "inverse_sqrt", factor, &hint, err);
    if (rc != TP_OK)
        return rc;
    *factor = inverse_sqrt_factor(step, hint, s->h[IS_WARMUP]);
    return TP_OK;
}

static const tp_plugin_desc inverse_sqrt_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "inverse_sqrt",
    .kind = TP_PLUGIN_SCHEDULE,
    .description = "linear warmup over warmup_factor * step_hint steps, then sqrt(W / step)",
    .hparams = inverse_sqrt_hparams,
    .num_hparams = sizeof inverse_sqrt_hparams / sizeof inverse_sqrt_hparams[0],
    .init = inverse_sqrt_init,
    .destroy = sched_destroy,
    .lr_factor = inverse_sqrt_lr_factor,
};

/* ---------------------------------------------------------------------------------------- */
/* Discovery */

TP_PLUGIN_ENTRY(i)
{
    switch (i) {
    case 0:
        return &constant_desc;
    case 1:
        return &warmup_cosine_desc;
    case 2:
        return &warmup_linear_desc;
    case 3:
        return &inverse_sqrt_desc;
    default:
        return NULL;
    }
}
