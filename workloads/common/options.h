/*
 * options.h - checking a workload's options (the flattened "data.x" / "model.x" keys of its
 * config file) against a table of the keys it knows, with messages that name the file, the
 * line and the key: "workloads/fmnist_mlp/fmnist_mlp.cfg:9: model.depth: must be an integer
 * in [0, 16], not 2.5".
 *
 * Not here: reading the config file (core/config.c does), defaults (the caller sets them in
 * the destinations before parsing).
 */
#ifndef TP_WORKLOADS_OPTIONS_H
#define TP_WORKLOADS_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "core/nn/workload.h"

typedef enum tp_opt_type {
    TP_OPT_STRING = 1, /* dst: const char ** (points into the option; copy what you keep) */
    TP_OPT_INT = 2,    /* dst: int64_t *, an integer in [min, max] */
    TP_OPT_NUMBER = 3, /* dst: double *, a finite number in [min, max] */
    TP_OPT_CHOICE = 4, /* dst: int *, the index of the string in choices */
} tp_opt_type;

typedef struct tp_opt_spec {
    const char *key; /* "data.dir" */
    tp_opt_type type;
    double min, max;
    const char *const *choices; /* TP_OPT_CHOICE: NULL-terminated */
    void *dst;
} tp_opt_spec;

/* Apply every option of p to the destinations of the matching specs. TP_ECONFIG on an unknown
 * key (the message lists the known ones) or a value of the wrong type or range. */
int tp_wl_options_parse(const tp_wl_params *p, const char *workload, const tp_opt_spec *specs,
                        size_t num_specs, char *err, size_t errlen);

/* Where option `key` was set, for messages: "file:line: key" ("file: key" for line 0 / command
 * line, just "key" when there is no file or the key was not given). */
const char *tp_wl_option_where(const tp_wl_params *p, const char *key, char *buf, size_t len);

#endif /* TP_WORKLOADS_OPTIONS_H */
