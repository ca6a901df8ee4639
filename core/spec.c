/*
 * spec.c - the trial spec's options, shared by host and worker (see spec.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "core/spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <trainperf/trainperf.h>

#include "core/error.h"

enum {
    O_CFG = TP_SPEC_OPT_FIRST,
    O_VARIANT,
    O_SET,
    O_PLUGINS,
    O_OPT,
    O_SCHED,
    O_SEL,
    O_HP,
    O_SEED,
    O_CLOCK,
    O_STEPS,
    O_THREADS,
    O_SH_EVERY,
    O_SH_EXAMPLES,
    O_END
};

/* clang-format off */
const struct option tp_spec_options[] = {
    {"workload-config", required_argument, 0, O_CFG},
    {"variant", required_argument, 0, O_VARIANT},
    {"set", required_argument, 0, O_SET},
    {"plugins", required_argument, 0, O_PLUGINS},
    {"optimizer", required_argument, 0, O_OPT},
    {"schedule", required_argument, 0, O_SCHED},
    {"selection", required_argument, 0, O_SEL},
    {"hparams", required_argument, 0, O_HP},
    {"seed", required_argument, 0, O_SEED},
    {"clock", required_argument, 0, O_CLOCK},
    {"max-steps", required_argument, 0, O_STEPS},
    {"threads", required_argument, 0, O_THREADS},
    {"sharpness-every", required_argument, 0, O_SH_EVERY},
    {"sharpness-examples", required_argument, 0, O_SH_EXAMPLES},
    {0, 0, 0, 0},
};
/* clang-format on */

/* The table, its terminator included, has one entry per option value: tp_spec_set indexes it. */
_Static_assert(sizeof tp_spec_options / sizeof *tp_spec_options == TP_SPEC_NUM_OPTIONS &&
                   O_END - O_CFG + 1 == TP_SPEC_NUM_OPTIONS,
               "tp_spec_options, the option enum and TP_SPEC_NUM_OPTIONS must agree");

void tp_spec_init(tp_trial_spec *s)
{
    memset(s, 0, sizeof *s);
    s->clock = TP_CLOCK_WALL;
    s->threads = 1;
}

int tp_spec_is_option(int opt)
{
    return opt >= O_CFG && opt < O_END;
}

static int parse_u64(const char *v, uint64_t max, uint64_t *out)
{
    char *end;
    if (!v || !*v || *v == '-' || *v == '+')
        return -1;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end || errno || x > max)
        return -1;
    *out = x;
    return 0;
}

int tp_spec_set(tp_trial_spec *s, int opt, const char *value, char *err, size_t errlen)
{
    uint64_t v;
    const char *name = tp_spec_is_option(opt) ? tp_spec_options[opt - O_CFG].name : "?";
    switch (opt) {
    case O_CFG:
        s->workload_config = value;
        return TP_OK;
    case O_VARIANT:
        s->variant = value && *value ? value : NULL;
        return TP_OK;
    case O_SET:
        if (s->num_overrides == TP_SPEC_MAX_OVERRIDES) {
            tp__errf(err, errlen, "--set: at most %d overrides", TP_SPEC_MAX_OVERRIDES);
            return TP_EINVAL;
        }
        s->overrides[s->num_overrides++] = value;
        return TP_OK;
    case O_PLUGINS:
        s->plugin_dir = value;
        return TP_OK;
    case O_OPT:
        s->optimizer = value;
        return TP_OK;
    case O_SCHED:
        s->schedule = value;
        return TP_OK;
    case O_SEL:
        s->selection = value;
        return TP_OK;
    case O_HP:
        s->hparams = value;
        return TP_OK;
    case O_SEED:
        if (parse_u64(value, UINT64_MAX, &s->seed) < 0)
            break;
        return TP_OK;
    case O_CLOCK: {
        int k = tp_clock_kind_parse(value);
        if (k < 0)
            break;
        s->clock = (tp_clock_kind)k;
        return TP_OK;
    }
    case O_STEPS:
        if (parse_u64(value, UINT64_MAX, &s->max_steps) < 0)
            break;
        return TP_OK;
    case O_THREADS:
        if (parse_u64(value, 256, &v) < 0 || v < 1)
            break;
        s->threads = (int)v;
        return TP_OK;
    case O_SH_EVERY:
        if (parse_u64(value, UINT32_MAX, &s->sharpness_every) < 0)
            break;
        return TP_OK;
    case O_SH_EXAMPLES:
        if (parse_u64(value, UINT32_MAX, &v) < 0)
            break;
        s->sharpness_examples = (uint32_t)v;
        return TP_OK;
    default:
        tp__errf(err, errlen, "not a trial option (%d)", opt);
        return TP_EINVAL;
    }
    static const char *expect[] = {
        [O_SEED - O_CFG] = "an integer >= 0",
        [O_CLOCK - O_CFG] = "wall, cpu or steps",
        [O_STEPS - O_CFG] = "an integer >= 0 (0: no limit)",
        [O_THREADS - O_CFG] = "an integer from 1 to 256",
        [O_SH_EVERY - O_CFG] = "a step count >= 0 (0: no sharpness measurements)",
        [O_SH_EXAMPLES - O_CFG] = "a number of training examples >= 0 (0: 1,000)",
    };
    tp__errf(err, errlen, "--%s: bad value '%s': expected %s", name, value ? value : "",
             expect[opt - O_CFG]);
    return TP_EINVAL;
}

int tp_spec_to_argv(const tp_trial_spec *s, char **argv, int *n, int max, char *nums)
{
    char *seed = nums, *steps = nums + 32, *threads = nums + 64, *sh_every = nums + 96,
         *sh_examples = nums + 128;
    snprintf(seed, 32, "%llu", (unsigned long long)s->seed);
    snprintf(steps, 32, "%llu", (unsigned long long)s->max_steps);
    snprintf(threads, 32, "%d", s->threads > 0 ? s->threads : 1);
    snprintf(sh_every, 32, "%llu", (unsigned long long)s->sharpness_every);
    snprintf(sh_examples, 32, "%u", s->sharpness_examples);
    const char *pairs[2 * (TP_SPEC_NUM_OPTIONS + TP_SPEC_MAX_OVERRIDES)];
    int k = 0;
#define PAIR(opt, value)                                                                           \
    do {                                                                                           \
        if (value) {                                                                               \
            pairs[k++] = "--" opt;                                                                 \
            pairs[k++] = (value);                                                                  \
        }                                                                                          \
    } while (0)
    PAIR("workload-config", s->workload_config);
    PAIR("variant", s->variant);
    for (int i = 0; i < s->num_overrides; i++)
        PAIR("set", s->overrides[i]);
    PAIR("plugins", s->plugin_dir);
    PAIR("optimizer", s->optimizer);
    PAIR("schedule", s->schedule);
    PAIR("selection", s->selection);
    PAIR("hparams", s->hparams && *s->hparams ? s->hparams : NULL);
    PAIR("seed", seed);
    PAIR("clock", tp_clock_kind_name(s->clock));
    PAIR("max-steps", steps);
    PAIR("threads", threads);
    if (s->sharpness_every) {
        PAIR("sharpness-every", sh_every);
        PAIR("sharpness-examples", sh_examples);
    }
#undef PAIR
    if (*n + k >= max)
        return TP_ERANGE;
    for (int i = 0; i < k; i++)
        argv[(*n)++] = (char *)pairs[i];
    argv[*n] = NULL;
    return TP_OK;
}
