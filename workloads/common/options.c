/*
 * options.c - a workload's option table checks (tp_wl_options_parse); see options.h.
 *
 * Not here: defaults, cross-option rules (the workload checks those after parsing).
 */
#include "workloads/common/options.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *where(const tp_wl_params *p, const tp_wl_option *o, char *buf, size_t len)
{
    if (p->config_file && o->line > 0)
        snprintf(buf, len, "%s:%d: %s", p->config_file, o->line, o->key);
    else if (p->config_file)
        snprintf(buf, len, "%s (command line): %s", p->config_file, o->key);
    else
        snprintf(buf, len, "%s", o->key);
    return buf;
}

const char *tp_wl_option_where(const tp_wl_params *p, const char *key, char *buf, size_t len)
{
    const tp_wl_option *found = NULL;
    for (size_t i = 0; p && i < p->num_options; i++)
        if (p->options[i].key && !strcmp(p->options[i].key, key))
            found = &p->options[i]; /* the last one wins, as in parsing */
    if (found)
        return where(p, found, buf, len);
    snprintf(buf, len, "%s", key);
    return buf;
}

static int apply(const tp_wl_params *p, const char *workload, const tp_opt_spec *s,
                 const tp_wl_option *o, char *err, size_t errlen)
{
    char at[512];
    where(p, o, at, sizeof at);
    switch (s->type) {
    case TP_OPT_STRING:
        if (!o->str) {
            snprintf(err, errlen, "%s: must be a string", at);
            return TP_ECONFIG;
        }
        *(const char **)s->dst = o->str;
        return 0;
    case TP_OPT_CHOICE:
        if (o->str)
            for (int i = 0; s->choices[i]; i++)
                if (!strcmp(o->str, s->choices[i])) {
                    *(int *)s->dst = i;
                    return 0;
                }
        {
            int k = snprintf(err, errlen, "%s: must be one of", at);
            for (int i = 0; s->choices[i] && k > 0 && (size_t)k < errlen; i++)
                k +=
                    snprintf(err + k, errlen - (size_t)k, "%s \"%s\"", i ? "," : "", s->choices[i]);
            if (k > 0 && (size_t)k < errlen && o->str)
                snprintf(err + k, errlen - (size_t)k, ", not \"%s\"", o->str);
            else if (k > 0 && (size_t)k < errlen)
                snprintf(err + k, errlen - (size_t)k, ", not a number");
        }
        return TP_ECONFIG;
    case TP_OPT_INT:
    case TP_OPT_NUMBER: {
        const char *what = s->type == TP_OPT_INT ? "an integer" : "a number";
        if (o->str) {
            snprintf(err, errlen, "%s: must be %s in [%.17g, %.17g], not the string \"%s\"", at,
                     what, s->min, s->max, o->str);
            return TP_ECONFIG;
        }
        double v = o->num;
        if (!isfinite(v) || v < s->min || v > s->max || (s->type == TP_OPT_INT && v != floor(v))) {
            snprintf(err, errlen, "%s: must be %s in [%.17g, %.17g], not %.17g", at, what, s->min,
                     s->max, v);
            return TP_ECONFIG;
        }
        if (s->type == TP_OPT_INT)
            *(int64_t *)s->dst = (int64_t)v;
        else
            *(double *)s->dst = v;
        return 0;
    }
    }
    snprintf(err, errlen, "%s: option of workload %s has a bad spec type %d", at, workload,
             (int)s->type);
    return TP_EINVAL;
}

int tp_wl_options_parse(const tp_wl_params *p, const char *workload, const tp_opt_spec *specs,
                        size_t num_specs, char *err, size_t errlen)
{
    for (size_t i = 0; p && i < p->num_options; i++) {
        const tp_wl_option *o = &p->options[i];
        const tp_opt_spec *s = NULL;
        for (size_t j = 0; o->key && j < num_specs; j++)
            if (!strcmp(o->key, specs[j].key))
                s = &specs[j];
        if (!s) {
            char at[512];
            int k = snprintf(err, errlen, "%s: unknown option of workload %s (known:",
                             o->key ? where(p, o, at, sizeof at) : "(null key)", workload);
            for (size_t j = 0; j < num_specs && k > 0 && (size_t)k < errlen; j++)
                k += snprintf(err + k, errlen - (size_t)k, "%s %s", j ? "," : "", specs[j].key);
            if (k > 0 && (size_t)k < errlen)
                snprintf(err + k, errlen - (size_t)k, ")");
            return TP_ECONFIG;
        }
        int rc = apply(p, workload, s, o, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}
