/*
 * schedules.c - the baseline learning-rate schedules, two plugins in one .so:
 *
 *   "constant"       factor 1 at every step; no hyperparameters.
 *   "warmup_cosine"  AlgoPerf's warmup + cosine (BENCHMARK.md section 7): a linear warmup from
 *                    0 over W steps, then a cosine decay to 0 at step_hint, then 0.
 *
 * warmup_cosine, exactly. With S = step_hint (from the host's train state), f = warmup_factor,
 *     W = floor(f * S)                 (the reference truncates, as int() does)
 *     D = max(S - W, 1)                (the decay length; never 0)
 *     factor(step) = step / W                                   for step < W
 *                  = 0.5 * (1 + cos(pi * min(step - W, D) / D))  for step >= W
 * `step` is the 0-based index of the update the factor is for, the count optax's schedule sees.
 * So at the boundaries:
 *   - step 0 gives 0 when W > 0: the first update does not move the parameters, as in the
 *     reference; step W - 1 gives (W - 1) / W, step W gives exactly 1;
 *   - step S gives exactly 0 (when S > W), and every step past S gives 0;
 *   - W = 0 (f = 0 or f * S < 1): no warmup, the cosine starts at step 0 with factor 1;
 *   - S <= W (f >= 1, or S = 0): the warmup runs its W steps, step W gives 1 and every later
 *     step 0 (D = 1), the reference's behaviour. No case divides by zero.
 *
 * Not here: warmup + linear decay, and schedules that read the clock instead of the step.
 */
#include <math.h>
#include <stdio.h>

#include <trainperf/trainperf.h>

/* M_PI is POSIX, not C11. */
#define SCHEDULES_PI 3.14159265358979323846

/* ---------------------------------------------------------------------------------------- */
/* constant */

static int constant_lr_factor(void *state, const tp_host *host, tp_ctx *ctx, uint64_t step,
                              double *factor, tp_error *err)
{
    if (factor == NULL)
        return TP_EINVAL;
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

static const tp_hparam_decl warmup_cosine_hparams[] = {
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "warmup_factor", TP_HPARAM_FLOAT, 0.05, 0.0, 1.0,
     "linear warmup over warmup_factor * step_hint steps"},
};

typedef struct warmup_cosine_state {
    double warmup_factor;
} warmup_cosine_state;

static int warmup_cosine_fail(tp_error *err, int code, const char *what)
{
    if (err != NULL)
        snprintf(err->message, sizeof err->message, "warmup_cosine: %s", what);
    return code;
}

static int warmup_cosine_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    warmup_cosine_state *s;
    int rc;

    if (!TP_FIELD_PRESENT(host, tp_host, hparam))
        return warmup_cosine_fail(err, TP_EABI, "host table too old: no hparam()");
    s = host->alloc(ctx, sizeof *s);
    if (s == NULL)
        return warmup_cosine_fail(err, TP_ENOMEM, "out of memory for the state");
    rc = host->hparam(ctx, "warmup_factor", &s->warmup_factor);
    if (rc != TP_OK) {
        host->free(ctx, s);
        if (err != NULL)
            snprintf(err->message, sizeof err->message,
                     "warmup_cosine: host->hparam(\"warmup_factor\") failed: %s", tp_strerror(rc));
        return rc;
    }
    *state = s;
    return TP_OK;
}

/* The factor for `step` given step_hint and warmup_factor; see the file comment. */
static double warmup_cosine_factor(uint64_t step, uint64_t step_hint, double warmup_factor)
{
    const double w_real = floor(warmup_factor * (double)step_hint);
    const uint64_t warmup = w_real > 0.0 ? (uint64_t)w_real : 0;
    const uint64_t decay = step_hint > warmup ? step_hint - warmup : 1;

    if (step < warmup)
        return (double)step / (double)warmup;
    const uint64_t into = step - warmup;
    const double frac = into >= decay ? 1.0 : (double)into / (double)decay;
    return frac >= 1.0 ? 0.0 : 0.5 * (1.0 + cos(SCHEDULES_PI * frac));
}

static int warmup_cosine_lr_factor(void *state, const tp_host *host, tp_ctx *ctx, uint64_t step,
                                   double *factor, tp_error *err)
{
    const warmup_cosine_state *s = state;
    const tp_train_state *ts = host->train_state(ctx);

    if (factor == NULL)
        return warmup_cosine_fail(err, TP_EINVAL, "lr_factor: NULL factor");
    if (!TP_FIELD_PRESENT(ts, tp_train_state, step_hint))
        return warmup_cosine_fail(err, TP_ESTATE, "lr_factor: no step_hint in the train state");
    *factor = warmup_cosine_factor(step, ts->step_hint, s->warmup_factor);
    return TP_OK;
}

static void warmup_cosine_destroy(void *state, const tp_host *host, tp_ctx *ctx)
{
    host->free(ctx, state);
}

static const tp_plugin_desc warmup_cosine_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "warmup_cosine",
    .kind = TP_PLUGIN_SCHEDULE,
    .description = "linear warmup over warmup_factor * step_hint steps, cosine to 0 at step_hint",
    .hparams = warmup_cosine_hparams,
    .num_hparams = sizeof warmup_cosine_hparams / sizeof warmup_cosine_hparams[0],
    .init = warmup_cosine_init,
    .destroy = warmup_cosine_destroy,
    .lr_factor = warmup_cosine_lr_factor,
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
    default:
        return NULL;
    }
}
