/*
 * config.c - trainperf's libconfig workload files, "key=value" overrides on top of them
 * (--set) and numeric "name=value,..." lists (--hparams); see config.h.
 *
 * Every error written here has the form "<where>: <key path>: <what is wrong and what is
 * expected>", where <where> is "<file>:<line>" for a file ("fmnist_mlp.cfg:7: workload.budget:
 * must be a number of seconds > 0, got -3") and "--set <key=value>" for an override. The file
 * is named as the caller gave its path. A key that is missing is reported at the line of the
 * group that should hold it (line 1 for a missing top-level `workload`). Unknown keys are
 * errors everywhere except inside the `data` and `model` groups, whose scalar settings are
 * flattened to options ("data.dir", "model.hidden_width"; nested groups give
 * "data.sub.key") for the workload to check. Booleans become the numbers 1 and 0.
 *
 * Numbers are parsed with strtod, which follows the C locale the host runs in (the host never
 * calls setlocale, so the decimal point is '.').
 *
 * Not here: sweeps, search spaces and submission files (a later issue); lists and arrays in
 * `data` / `model` (an error naming the key, for now); checking the workload's own options
 * (the workload does that with the line numbers kept here).
 */
#define _POSIX_C_SOURCE 200809L

#include "core/config.h"
#include "core/error.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------------------------------- */
/* Small helpers */

static char *dup_range(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* Trim ASCII whitespace from both ends of [*b, *e). */
static void trim(const char **b, const char **e)
{
    while (*b < *e && isspace((unsigned char)**b))
        (*b)++;
    while (*e > *b && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

/* strtod over the whole of s (no leading or trailing junk); 0 when it parses. */
static int parse_double(const char *s, double *out)
{
    if (*s == '\0' || isspace((unsigned char)*s))
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* strtoll in base 10 over the whole of s; 0 when it parses and fits. */
static int parse_ll(const char *s, long long *out)
{
    if (*s == '\0' || isspace((unsigned char)*s))
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Values and the protocol keys */

/* A value as read from the file or the command line, before it is checked. */
typedef enum value_type {
    VALUE_INT,
    VALUE_FLOAT,
    VALUE_STRING,
    VALUE_BOOL,
    VALUE_GROUP,
    VALUE_LIST,
    VALUE_ARRAY
} value_type;

typedef struct value {
    value_type type;
    long long i;   /* VALUE_INT, VALUE_BOOL */
    double d;      /* VALUE_FLOAT */
    const char *s; /* VALUE_STRING */
} value;

/* "got ..." text for a value: numbers as written, strings quoted, aggregates by kind. */
static void describe(const value *v, char *buf, size_t n)
{
    switch (v->type) {
    case VALUE_INT:
        snprintf(buf, n, "%lld", v->i);
        break;
    case VALUE_FLOAT:
        /* Keep a float recognisable as one: 128.0, not 128. */
        snprintf(buf, n, "%.15g", v->d);
        if (isfinite(v->d) && strspn(buf, "-0123456789") == strlen(buf))
            strncat(buf, ".0", n - strlen(buf) - 1);
        break;
    case VALUE_STRING:
        snprintf(buf, n, "\"%.60s\"%s", v->s, strlen(v->s) > 60 ? "..." : "");
        break;
    case VALUE_BOOL:
        snprintf(buf, n, "%s", v->i ? "true" : "false");
        break;
    case VALUE_GROUP:
        snprintf(buf, n, "a group");
        break;
    case VALUE_LIST:
        snprintf(buf, n, "a list");
        break;
    case VALUE_ARRAY:
        snprintf(buf, n, "an array");
        break;
    }
}

static value value_of_setting(const config_setting_t *s)
{
    value v = {0};
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        v.type = VALUE_INT;
        v.i = config_setting_get_int64(s);
        break;
    case CONFIG_TYPE_FLOAT:
        v.type = VALUE_FLOAT;
        v.d = config_setting_get_float(s);
        break;
    case CONFIG_TYPE_STRING:
        v.type = VALUE_STRING;
        v.s = config_setting_get_string(s);
        break;
    case CONFIG_TYPE_BOOL:
        v.type = VALUE_BOOL;
        v.i = config_setting_get_bool(s) ? 1 : 0;
        break;
    case CONFIG_TYPE_LIST:
        v.type = VALUE_LIST;
        break;
    case CONFIG_TYPE_ARRAY:
        v.type = VALUE_ARRAY;
        break;
    default:
        v.type = VALUE_GROUP;
        break;
    }
    return v;
}

/* A command-line value: an integer, else a number, else a string. */
static value value_of_text(const char *s)
{
    value v = {.type = VALUE_STRING, .s = s};
    long long i;
    double d;
    if (parse_ll(s, &i) == 0) {
        v.type = VALUE_INT;
        v.i = i;
    } else if (parse_double(s, &d) == 0) {
        v.type = VALUE_FLOAT;
        v.d = d;
    }
    return v;
}

typedef enum field_kind {
    FIELD_NAME,
    FIELD_U32,
    FIELD_U64,
    FIELD_SECONDS,
    FIELD_TARGET
} field_kind;

/* The protocol keys of a workload file, by their path below `workload`. */
typedef struct field {
    const char *key; /* "budget", "targets.validation" */
    field_kind kind;
    const char *expect; /* completes "must be ..." */
    int overridable;    /* may be given with --set */
} field;

enum { F_NAME, F_BATCH, F_STEPS, F_EVAL, F_BUDGET, F_VAL, F_TEST, F_COUNT };

static const field fields[F_COUNT] = {
    [F_NAME] = {"name", FIELD_NAME, "a non-empty string naming the workload family", 0},
    [F_BATCH] = {"batch_size_hint", FIELD_U32, "an integer > 0 (examples per batch)", 1},
    [F_STEPS] = {"step_hint", FIELD_U64, "an integer > 0 (steps)", 1},
    [F_EVAL] = {"eval_period", FIELD_SECONDS, "a number of seconds > 0", 1},
    [F_BUDGET] = {"budget", FIELD_SECONDS, "a number of seconds > 0", 1},
    [F_VAL] = {"targets.validation", FIELD_TARGET, "a finite number (the metric's target)", 1},
    [F_TEST] = {"targets.test", FIELD_TARGET, "a finite number (the metric's target)", 1},
};

/* Check v against field f and store it into c; -1 when it does not fit (nothing changes). */
static int field_set(tp_workload_config *c, int f, const value *v)
{
    double d = v->type == VALUE_INT ? (double)v->i : v->d;
    int is_num = v->type == VALUE_INT || v->type == VALUE_FLOAT;
    switch (fields[f].kind) {
    case FIELD_NAME: {
        if (v->type != VALUE_STRING || v->s[0] == '\0')
            return -1;
        char *s = strdup(v->s);
        if (s == NULL)
            return -1;
        free(c->name);
        c->name = s;
        return 0;
    }
    case FIELD_U32:
        if (v->type != VALUE_INT || v->i <= 0 || (unsigned long long)v->i > UINT32_MAX)
            return -1;
        c->batch_size_hint = (uint32_t)v->i;
        return 0;
    case FIELD_U64:
        if (v->type != VALUE_INT || v->i <= 0)
            return -1;
        c->step_hint = (uint64_t)v->i;
        return 0;
    case FIELD_SECONDS:
        if (!is_num || !isfinite(d) || !(d > 0))
            return -1;
        if (f == F_EVAL)
            c->eval_period = d;
        else
            c->budget = d;
        return 0;
    case FIELD_TARGET:
        if (!is_num || !isfinite(d))
            return -1;
        if (f == F_VAL)
            c->validation_target = d;
        else
            c->test_target = d;
        return 0;
    }
    return -1;
}

static int field_find(const char *key)
{
    for (int f = 0; f < F_COUNT; f++)
        if (strcmp(fields[f].key, key) == 0)
            return f;
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Options (data.* / model.*) */

static void option_clear(tp_wl_option *o)
{
    free((char *)o->key);
    free((char *)o->str);
    memset(o, 0, sizeof *o);
}

/* Append an option; takes ownership of key and str (freed on failure). */
static int option_push(tp_workload_config *c, char *key, char *str, double num, int line)
{
    tp_wl_option *grown = realloc(c->options, (c->num_options + 1) * sizeof *grown);
    if (grown == NULL) {
        free(key);
        free(str);
        return TP_ENOMEM;
    }
    c->options = grown;
    c->options[c->num_options++] = (tp_wl_option){key, str, num, line};
    return TP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Loading a file */

typedef struct loader {
    const char *file; /* as the caller named it */
    tp_workload_config *c;
    char *err;
    size_t errlen;
} loader;

/* "workload.targets.test" for a setting (the path of names from the root). */
static void setting_path(const config_setting_t *s, char *buf, size_t n)
{
    /* Named settings join with '.', elements of a list show their index: variants[1].name. */
    char names[16][80];
    int depth = 0;
    for (; s != NULL && !config_setting_is_root(s) && depth < 16; s = config_setting_parent(s)) {
        const char *name = config_setting_name(s);
        if (name)
            snprintf(names[depth++], sizeof names[0], ".%s", name);
        else
            snprintf(names[depth++], sizeof names[0], "[%d]", config_setting_index(s));
    }
    size_t len = 0;
    buf[0] = '\0';
    for (int i = depth - 1; i >= 0 && len < n; i--) {
        const char *part = names[i] + (i == depth - 1 && names[i][0] == '.' ? 1 : 0);
        int w = snprintf(buf + len, n - len, "%s", part);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

static int setting_line(const config_setting_t *s)
{
    int line = (int)config_setting_source_line(s);
    return line > 0 ? line : 1;
}

/* "<file>:<line>: <path of s>[.<child>]: <why>". Returns TP_ECONFIG. */
static int fail_at(loader *L, const config_setting_t *s, const char *child, const char *fmt, ...)
    TP_PRINTF(4, 5);

static int fail_at(loader *L, const config_setting_t *s, const char *child, const char *fmt, ...)
{
    char path[256], why[512];
    setting_path(s, path, sizeof path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    tp__errf(L->err, L->errlen, "%s:%d: %s%s%s: %s", L->file, setting_line(s), path,
             child != NULL && path[0] != '\0' ? "." : "", child != NULL ? child : "", why);
    return TP_ECONFIG;
}

static int fail_value(loader *L, const config_setting_t *s, const char *expect)
{
    char got[96];
    value v = value_of_setting(s);
    describe(&v, got, sizeof got);
    return fail_at(L, s, NULL, "must be %s, got %s", expect, got);
}

/* Edit distance, for "did you mean" on unknown keys (short keys only). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 31 || lb > 31)
        return SIZE_MAX;
    size_t row[32];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Unknown key `s` where one of `known` (NULL-terminated) was expected. */
static int fail_unknown(loader *L, const config_setting_t *s, const char *const *known)
{
    char list[256] = "", hint[96] = "";
    size_t len = 0, best = 3;
    for (size_t i = 0; known[i] != NULL; i++) {
        int w = snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", known[i]);
        if (w > 0 && (size_t)w < sizeof list - len)
            len += (size_t)w;
        size_t d = edit_distance(config_setting_name(s), known[i]);
        if (d < best) {
            best = d;
            snprintf(hint, sizeof hint, " (did you mean \"%s\"?)", known[i]);
        }
    }
    return fail_at(L, s, NULL, "unknown key%s; expected one of: %s", hint, list);
}

/* Flatten the scalar settings of group g into options keyed "<prefix>.<name>". */
static int flatten(loader *L, const config_setting_t *g, const char *prefix)
{
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        size_t klen = strlen(prefix) + 1 + strlen(name) + 1;
        char *key = malloc(klen);
        if (key == NULL)
            goto nomem;
        snprintf(key, klen, "%s.%s", prefix, name);

        value v = value_of_setting(s);
        int rc = TP_OK;
        switch (v.type) {
        case VALUE_GROUP:
            rc = flatten(L, s, key);
            free(key);
            break;
        case VALUE_LIST:
        case VALUE_ARRAY:
            free(key);
            return fail_at(L, s, NULL,
                           "lists and arrays are not supported in workload options yet; "
                           "expected a number, a string or a boolean");
        case VALUE_STRING: {
            char *str = strdup(v.s);
            if (str == NULL) {
                free(key);
                goto nomem;
            }
            rc = option_push(L->c, key, str, 0.0, setting_line(s));
            break;
        }
        default: {
            double d = v.type == VALUE_FLOAT ? v.d : (double)v.i;
            rc = option_push(L->c, key, NULL, d, setting_line(s));
            break;
        }
        }
        if (rc == TP_ENOMEM)
            goto nomem;
        if (rc != TP_OK)
            return rc;
    }
    return TP_OK;

nomem:
    tp__errf(L->err, L->errlen, "%s: out of memory reading workload options", L->file);
    return TP_ENOMEM;
}

static const char *const workload_keys[] = {
    "name", "batch_size_hint", "step_hint", "eval_period", "budget", "targets",
    "data", "model",           "variants",  NULL};
static const char *const variant_keys[] = {"name", "targets", "data", "model", NULL};
static const char *const target_keys[] = {"validation", "test", NULL};
static const char *const root_keys[] = {"workload", NULL};

static int load_targets(loader *L, const config_setting_t *g, int seen[F_COUNT])
{
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        int f = strcmp(name, "validation") == 0 ? F_VAL : strcmp(name, "test") == 0 ? F_TEST : -1;
        if (f < 0)
            return fail_unknown(L, s, target_keys);
        value v = value_of_setting(s);
        if (field_set(L->c, f, &v) != 0)
            return fail_value(L, s, fields[f].expect);
        seen[f] = 1;
    }
    for (int f = F_VAL; f <= F_TEST; f++)
        if (!seen[f])
            return fail_at(L, g, fields[f].key + strlen("targets."), "missing; must be %s",
                           fields[f].expect);
    return TP_OK;
}

/* One element of `variants`: a name, its own targets and option overrides. It is read into a
 * scratch config (the same checks as the workload's own keys), then moved into the list. */
static int load_variant(loader *L, const config_setting_t *g)
{
    tp_workload_config tmp;
    memset(&tmp, 0, sizeof tmp);
    loader V = {L->file, &tmp, L->err, L->errlen};
    int seen[F_COUNT] = {0}, rc = TP_OK;
    if (!config_setting_is_group(g))
        return fail_value(L, g, "a group { name = \"...\"; targets = { ... }; model = { ... }; }");
    int n = config_setting_length(g);
    for (int i = 0; i < n && rc == TP_OK; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        if (strcmp(name, "name") == 0) {
            value v = value_of_setting(s);
            if (field_set(&tmp, F_NAME, &v) != 0)
                rc = fail_value(L, s, "a non-empty string naming the variant");
            else
                seen[F_NAME] = 1;
        } else if (strcmp(name, "targets") == 0) {
            rc = config_setting_is_group(s)
                     ? load_targets(&V, s, seen)
                     : fail_value(L, s, "a group { validation = <number>; test = <number>; }");
        } else if (strcmp(name, "data") == 0 || strcmp(name, "model") == 0) {
            rc = config_setting_is_group(s) ? flatten(&V, s, name)
                                            : fail_value(L, s, "a group of options { ... }");
        } else {
            rc = fail_unknown(L, s, variant_keys);
        }
    }
    if (rc == TP_OK && !seen[F_NAME])
        rc = fail_at(L, g, "name", "missing; must be a non-empty string naming the variant");
    if (rc == TP_OK && !seen[F_VAL])
        rc = fail_at(L, g, "targets",
                     "missing; a variant has its own targets { validation = ...; test = ...; }");
    for (size_t i = 0; rc == TP_OK && i < L->c->num_variants; i++)
        if (strcmp(L->c->variants[i].name, tmp.name) == 0)
            rc = fail_at(L, g, "name", "\"%s\" names another variant too", tmp.name);
    tp_variant_config *grown = NULL;
    if (rc == TP_OK) {
        grown = realloc(L->c->variants, (L->c->num_variants + 1) * sizeof *grown);
        if (grown == NULL) {
            tp__errf(L->err, L->errlen, "%s: out of memory", L->file);
            rc = TP_ENOMEM;
        }
    }
    if (rc != TP_OK) {
        tp_config_free_workload(&tmp);
        return rc;
    }
    L->c->variants = grown;
    L->c->variants[L->c->num_variants++] =
        (tp_variant_config){tmp.name,    tmp.validation_target, tmp.test_target,
                            tmp.options, tmp.num_options,       setting_line(g)};
    return TP_OK; /* tmp's strings and options now belong to the variant */
}

static int load_workload_group(loader *L, const config_setting_t *w)
{
    int seen[F_COUNT] = {0}, seen_targets = 0;
    int n = config_setting_length(w);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(w, (unsigned)i);
        const char *name = config_setting_name(s);
        int rc;
        if (strcmp(name, "targets") == 0) {
            if (!config_setting_is_group(s))
                return fail_value(L, s, "a group { validation = <number>; test = <number>; }");
            seen_targets = 1;
            if ((rc = load_targets(L, s, seen)) != TP_OK)
                return rc;
        } else if (strcmp(name, "data") == 0 || strcmp(name, "model") == 0) {
            if (!config_setting_is_group(s))
                return fail_value(L, s, "a group of options { key = value; ... }");
            if ((rc = flatten(L, s, name)) != TP_OK)
                return rc;
        } else if (strcmp(name, "variants") == 0) {
            if (!config_setting_is_list(s))
                return fail_value(L, s, "a list ( { name = ...; targets = ...; ... }, ... )");
            for (int k = 0; k < config_setting_length(s); k++)
                if ((rc = load_variant(L, config_setting_get_elem(s, (unsigned)k))) != TP_OK)
                    return rc;
        } else {
            int f = field_find(name);
            if (f < 0 || f == F_VAL || f == F_TEST)
                return fail_unknown(L, s, workload_keys);
            value v = value_of_setting(s);
            if (field_set(L->c, f, &v) != 0)
                return fail_value(L, s, fields[f].expect);
            seen[f] = 1;
        }
    }
    for (int f = 0; f < F_VAL; f++)
        if (!seen[f])
            return fail_at(L, w, fields[f].key, "missing; must be %s", fields[f].expect);
    if (!seen_targets)
        return fail_at(L, w, "targets",
                       "missing; must be a group { validation = <number>; test = <number>; }");
    return TP_OK;
}

/* libconfig's include directory: the directory of the file, so @include is relative to it. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return dup_range(path, (size_t)(slash - path));
}

int tp__config_refuse_include(const char *file, const char *text, char *err, size_t errlen)
{
    int line = 1;
    for (const char *p = text; *p; line++) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "@include", 8) == 0) {
            tp__errf(err, errlen,
                     "%s:%d: @include is not supported: write the settings in this file", file,
                     line);
            return TP_ECONFIG;
        }
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return TP_OK;
}

/* Read and parse a libconfig file into cfg (initialised by the caller, destroyed by the
 * caller too); *incdir is the file's directory (caller frees). The text is checked for
 * @include first: libconfig 1.5 ends the process (exit(2), "input in flex scanner failed")
 * when an include names a directory, so includes are refused (found by fuzzing). */
static int read_config_file(const char *path, config_t *cfg, char **incdir, char *err,
                            size_t errlen)
{
    /* Read access is checked first so a missing file gets errno's words, not libconfig's. */
    FILE *fp = fopen(path, "r");
    struct stat st;
    if (fp == NULL || (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode))) {
        tp__errf(err, errlen, "%s: cannot read: %s", path, strerror(fp ? EISDIR : errno));
        if (fp != NULL)
            fclose(fp);
        return TP_EIO;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *text = malloc(cap);
    if (text != NULL)
        len = fread(text, 1, cap - 1, fp);
    fclose(fp);
    *incdir = dir_of(path);
    if (text == NULL || *incdir == NULL) {
        free(text);
        tp__errf(err, errlen, "%s: out of memory", path);
        return TP_ENOMEM;
    }
    text[len] = '\0';
    if (strlen(text) != len) {
        free(text);
        tp__errf(err, errlen, "%s:1: not a text file (it holds a NUL byte)", path);
        return TP_ECONFIG;
    }
    int rc = tp__config_refuse_include(path, text, err, errlen);
    config_set_include_dir(cfg, *incdir);
    int ok = rc == TP_OK && config_read_string(cfg, text) == CONFIG_TRUE;
    free(text);
    if (rc != TP_OK)
        return rc;
    if (!ok) {
        const char *efile = config_error_file(cfg) ? config_error_file(cfg) : path;
        const char *why = config_error_text(cfg) ? config_error_text(cfg) : "unknown error";
        if (config_error_type(cfg) == CONFIG_ERR_FILE_IO) {
            tp__errf(err, errlen, "%s: cannot read: %s", efile, why);
            return TP_EIO;
        }
        tp__errf(err, errlen, "%s:%d: syntax error: %s", efile, config_error_line(cfg), why);
        return TP_ECONFIG;
    }
    return TP_OK;
}

int tp_config_load_workload(const char *path, tp_workload_config *out, char *err, size_t errlen)
{
    config_t cfg;
    char *incdir = NULL;
    int rc = TP_OK;
    loader L = {path, out, err, errlen};

    memset(out, 0, sizeof *out);
    config_init(&cfg);
    if ((rc = read_config_file(path, &cfg, &incdir, err, errlen)) != TP_OK)
        goto error;
    out->file = strdup(path);
    if (out->file == NULL) {
        tp__errf(err, errlen, "%s: out of memory", path);
        rc = TP_ENOMEM;
        goto error;
    }

    const config_setting_t *root = config_root_setting(&cfg);
    const config_setting_t *w = NULL;
    int n = config_setting_length(root);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        if (strcmp(config_setting_name(s), "workload") != 0) {
            rc = fail_unknown(&L, s, root_keys);
            goto error;
        }
        if (!config_setting_is_group(s)) {
            rc = fail_value(&L, s, "a group { name = ...; batch_size_hint = ...; ... }");
            goto error;
        }
        w = s;
    }
    if (w == NULL) {
        tp__errf(err, errlen,
                 "%s:1: workload: missing; must be a group { name = ...; batch_size_hint = ...; "
                 "... }",
                 path);
        rc = TP_ECONFIG;
        goto error;
    }
    if ((rc = load_workload_group(&L, w)) != TP_OK)
        goto error;

    config_destroy(&cfg);
    free(incdir);
    return TP_OK;

error:
    config_destroy(&cfg);
    free(incdir);
    tp_config_free_workload(out);
    return rc;
}

void tp_config_free_workload(tp_workload_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->num_options; i++)
        option_clear(&c->options[i]);
    free(c->options);
    for (size_t v = 0; v < c->num_variants; v++) {
        for (size_t i = 0; i < c->variants[v].num_options; i++)
            option_clear(&c->variants[v].options[i]);
        free(c->variants[v].options);
        free(c->variants[v].name);
    }
    free(c->variants);
    free(c->variant);
    free(c->file);
    free(c->name);
    memset(c, 0, sizeof *c);
}

/* ---------------------------------------------------------------------------------------- */
/* Finding a workload's file */

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int tp_config_find_workload(const char *dir, const char *name, char *path, size_t pathlen,
                            char *err, size_t errlen)
{
    char **found = NULL;
    size_t nfound = 0;
    DIR *d = NULL;
    char *buf = NULL;
    int rc;

    if (name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL) {
        tp__errf(err, errlen,
                 "workload \"%s\": not a valid workload name (a directory name under %s)", name,
                 dir);
        return TP_EINVAL;
    }
    int w = snprintf(path, pathlen, "%s/%s/%s.cfg", dir, name, name);
    if (w < 0 || (size_t)w >= pathlen) {
        tp__errf(err, errlen, "workload \"%s\": path %s/%s/%s.cfg is too long", name, dir, name,
                 name);
        return TP_ERANGE;
    }
    if (is_file(path))
        return TP_OK;

    d = opendir(dir);
    if (d == NULL) {
        int e = errno;
        tp__errf(err, errlen, "workload \"%s\" not found: cannot read workload directory %s: %s",
                 name, dir, strerror(e));
        rc = e == ENOENT ? TP_ENOENT : TP_EIO;
        goto error;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        size_t blen = strlen(dir) + 2 * strlen(e->d_name) + 8;
        free(buf);
        buf = malloc(blen);
        if (buf == NULL)
            goto nomem;
        snprintf(buf, blen, "%s/%s/%s.cfg", dir, e->d_name, e->d_name);
        if (!is_file(buf))
            continue;
        char **grown = realloc(found, (nfound + 1) * sizeof *grown);
        if (grown == NULL)
            goto nomem;
        found = grown;
        if ((found[nfound] = strdup(e->d_name)) == NULL)
            goto nomem;
        nfound++;
    }
    if (nfound > 1)
        qsort(found, nfound, sizeof *found, cmp_str);

    char list[1024] = "";
    size_t len = 0;
    for (size_t i = 0; i < nfound && len < sizeof list; i++) {
        int k = snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", found[i]);
        if (k < 0)
            break;
        len += (size_t)k;
    }
    if (nfound == 0)
        tp__errf(err, errlen,
                 "workload \"%s\" not found: no file %s, and no workloads in %s (a workload is "
                 "<dir>/<name>/<name>.cfg)",
                 name, path, dir);
    else
        tp__errf(err, errlen, "workload \"%s\" not found: no file %s; workloads in %s: %s", name,
                 path, dir, list);
    path[0] = '\0';
    rc = TP_ENOENT;
    goto error;

nomem:
    tp__errf(err, errlen, "workload \"%s\": out of memory listing %s", name, dir);
    rc = TP_ENOMEM;
error:
    if (d != NULL)
        closedir(d);
    for (size_t i = 0; i < nfound; i++)
        free(found[i]);
    free(found);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* --set key=value */

/* data.<name>[.<name>...] / model.<name>...: names of letters, digits, '_' and '-'. */
static int is_option_key(const char *key)
{
    const char *rest;
    if (strncmp(key, "data.", 5) == 0)
        rest = key + 5;
    else if (strncmp(key, "model.", 6) == 0)
        rest = key + 6;
    else
        return 0;
    int part = 0;
    for (const char *p = rest; *p; p++) {
        if (*p == '.') {
            if (part == 0)
                return -1;
            part = 0;
        } else if (isalnum((unsigned char)*p) || *p == '_' || *p == '-') {
            part++;
        } else {
            return -1;
        }
    }
    return part > 0 ? 1 : -1;
}

int tp_config_apply_override(tp_workload_config *c, const char *kv, char *err, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    char *key = NULL, *val = NULL;
    int rc = TP_OK;

    if (eq == NULL) {
        tp__errf(err, errlen, "--set %s: expected key=value, e.g. budget=5 or data.dir=/path", kv);
        return TP_ECONFIG;
    }
    const char *kb = kv, *ke = eq, *vb = eq + 1, *ve = eq + strlen(eq);
    trim(&kb, &ke);
    trim(&vb, &ve);
    key = dup_range(kb, (size_t)(ke - kb));
    val = dup_range(vb, (size_t)(ve - vb));
    if (key == NULL || val == NULL) {
        tp__errf(err, errlen, "--set %s: out of memory", kv);
        rc = TP_ENOMEM;
        goto error;
    }
    if (val[0] == '\0') {
        tp__errf(err, errlen, "--set %s: %s: missing value after '='", kv, key);
        rc = TP_ECONFIG;
        goto error;
    }

    value v = value_of_text(val);
    int f = field_find(key);
    if (f >= 0 && fields[f].overridable) {
        if (field_set(c, f, &v) != 0) {
            char got[96];
            describe(&v, got, sizeof got);
            tp__errf(err, errlen, "--set %s: %s: must be %s, got %s", kv, key, fields[f].expect,
                     got);
            rc = TP_ECONFIG;
            goto error;
        }
        goto done;
    }

    int ok = is_option_key(key);
    if (ok < 0) {
        tp__errf(err, errlen,
                 "--set %s: %s: not a valid option name; expected data.<name> or model.<name> "
                 "with names of letters, digits, '_' and '-'",
                 kv, key);
        rc = TP_ECONFIG;
        goto error;
    }
    if (ok == 0) {
        tp__errf(err, errlen,
                 "--set %s: %s: unknown key; expected one of: budget, eval_period, step_hint, "
                 "batch_size_hint, targets.validation, targets.test, data.<option>, "
                 "model.<option>",
                 kv, key);
        rc = TP_ECONFIG;
        goto error;
    }

    /* A number that is not finite ("inf", "1e999") stays a string: the workload decides. */
    char *str = NULL;
    double num = 0.0;
    double d = v.type == VALUE_INT ? (double)v.i : v.d;
    if ((v.type == VALUE_INT || v.type == VALUE_FLOAT) && isfinite(d)) {
        num = d;
    } else {
        str = val; /* the option owns it now */
        val = NULL;
    }

    for (size_t i = 0; i < c->num_options; i++) {
        tp_wl_option *o = &c->options[i];
        if (strcmp(o->key, key) == 0) {
            free((char *)o->str);
            o->str = str;
            o->num = num;
            o->line = 0;
            goto done;
        }
    }
    rc = option_push(c, key, str, num, 0);
    key = NULL; /* owned by the option now, or freed by option_push */
    if (rc != TP_OK) {
        tp__errf(err, errlen, "--set %s: out of memory", kv);
        goto error;
    }

done:
error:
    free(key);
    free(val);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* --hparams name=value,... */

void tp_kv_free(tp_kv_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i].key);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

const tp_kv *tp_kv_find(const tp_kv_list *l, const char *key)
{
    if (l == NULL)
        return NULL;
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].key, key) == 0)
            return &l->items[i];
    return NULL;
}

/* Positions in messages are 1-based character columns of the whole string. */
int tp_kv_parse(const char *s, tp_kv_list *out, char *err, size_t errlen)
{
    char *val = NULL;
    int rc = TP_OK;

    out->items = NULL;
    out->count = 0;

    const char *b0 = s, *e0 = s + strlen(s);
    trim(&b0, &e0);
    if (b0 == e0)
        return TP_OK;

    const char *item = s;
    for (;;) {
        const char *comma = strchr(item, ',');
        const char *ib = item, *ie = comma ? comma : item + strlen(item);
        trim(&ib, &ie);
        int tl = (int)(ie - ib);
        size_t pos = (size_t)(ib - s) + 1;

        if (ib == ie) {
            tp__errf(err, errlen,
                     "empty item at position %zu; expected name=value items separated by single "
                     "commas (a stray or trailing comma?)",
                     pos);
            rc = TP_EINVAL;
            goto error;
        }
        const char *eq = memchr(ib, '=', (size_t)(ie - ib));
        if (eq == NULL) {
            tp__errf(err, errlen, "\"%.*s\" at position %zu: expected name=value", tl, ib, pos);
            rc = TP_EINVAL;
            goto error;
        }
        const char *nb = ib, *ne = eq, *vb = eq + 1, *ve = ie;
        trim(&nb, &ne);
        trim(&vb, &ve);
        int bad_name = nb == ne;
        for (const char *p = nb; p < ne; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
                bad_name = 1;
        if (bad_name) {
            tp__errf(err, errlen,
                     "\"%.*s\" at position %zu: invalid name \"%.*s\"; names are lowercase "
                     "letters, digits and '_'",
                     tl, ib, pos, (int)(ne - nb), nb);
            rc = TP_EINVAL;
            goto error;
        }
        free(val);
        val = dup_range(vb, (size_t)(ve - vb));
        if (val == NULL)
            goto nomem;
        double d;
        if (parse_double(val, &d) != 0) {
            tp__errf(err, errlen,
                     "\"%.*s\" at position %zu: value \"%s\" is not a number; expected a finite "
                     "number such as 0.001 or 1e-3",
                     tl, ib, pos, val);
            rc = TP_EINVAL;
            goto error;
        }
        if (!isfinite(d)) {
            tp__errf(err, errlen,
                     "\"%.*s\" at position %zu: value \"%s\" is not finite; expected a finite "
                     "number",
                     tl, ib, pos, val);
            rc = TP_EINVAL;
            goto error;
        }
        for (size_t i = 0; i < out->count; i++) {
            if (strlen(out->items[i].key) == (size_t)(ne - nb) &&
                memcmp(out->items[i].key, nb, (size_t)(ne - nb)) == 0) {
                tp__errf(err, errlen,
                         "\"%.*s\" at position %zu: name \"%s\" given twice; give each "
                         "hyperparameter once",
                         tl, ib, pos, out->items[i].key);
                rc = TP_EINVAL;
                goto error;
            }
        }
        tp_kv *grown = realloc(out->items, (out->count + 1) * sizeof *grown);
        if (grown == NULL)
            goto nomem;
        out->items = grown;
        char *key = dup_range(nb, (size_t)(ne - nb));
        if (key == NULL)
            goto nomem;
        out->items[out->count++] = (tp_kv){key, d};

        if (comma == NULL)
            break;
        item = comma + 1;
    }
    free(val);
    return TP_OK;

nomem:
    tp__errf(err, errlen, "out of memory parsing \"%s\"", s);
    rc = TP_ENOMEM;
error:
    free(val);
    tp_kv_free(out);
    return rc;
}

/* The shortest %g form that reads back as exactly x (0.1, not 0.10000000000000001). */
static void fmt_double(double x, char *out, size_t len)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(out, len, "%.*g", prec, x);
        if (strtod(out, NULL) == x)
            return;
    }
}

void tp_kv_to_json(const tp_kv_list *l, char *out, size_t len)
{
    size_t off = (size_t)snprintf(out, len, "{");
    for (size_t i = 0; i < l->count && off < len; i++) {
        char num[32];
        fmt_double(l->items[i].value, num, sizeof num);
        off += (size_t)snprintf(out + off, len - off, "%s\"%s\": %s", i ? ", " : "",
                                l->items[i].key, num);
    }
    if (off < len)
        snprintf(out + off, len - off, "}");
}

/* ---------------------------------------------------------------------------------------- */
/* Variants */

int tp_config_select_variant(tp_workload_config *c, const char *variant, char *err, size_t errlen)
{
    if (variant == NULL || variant[0] == '\0')
        return TP_OK;
    if (c->variant != NULL) {
        tp__errf(err, errlen, "%s: variant %s already selected", c->file, c->variant);
        return TP_ESTATE;
    }
    const tp_variant_config *v = NULL;
    for (size_t i = 0; i < c->num_variants; i++)
        if (strcmp(c->variants[i].name, variant) == 0)
            v = &c->variants[i];
    if (v == NULL) {
        char list[512] = "";
        size_t off = 0;
        for (size_t i = 0; i < c->num_variants && off < sizeof list; i++)
            off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "",
                                    c->variants[i].name);
        tp__errf(err, errlen, "%s: workload %s has no variant \"%s\"; its variants: %s", c->file,
                 c->name, variant, c->num_variants ? list : "none");
        return TP_ENOENT;
    }
    /* The variant's options replace the base's of the same key, or are added. */
    for (size_t i = 0; i < v->num_options; i++) {
        const tp_wl_option *o = &v->options[i];
        tp_wl_option *slot = NULL;
        for (size_t k = 0; k < c->num_options; k++)
            if (strcmp(c->options[k].key, o->key) == 0)
                slot = &c->options[k];
        char *key = strdup(o->key), *str = o->str ? strdup(o->str) : NULL;
        if (key == NULL || (o->str && str == NULL)) {
            free(key);
            free(str);
            tp__errf(err, errlen, "%s: out of memory", c->file);
            return TP_ENOMEM;
        }
        if (slot != NULL) {
            option_clear(slot);
            *slot = (tp_wl_option){key, str, o->num, o->line};
        } else if (option_push(c, key, str, o->num, o->line) != TP_OK) {
            tp__errf(err, errlen, "%s: out of memory", c->file);
            return TP_ENOMEM;
        }
    }
    c->validation_target = v->validation_target;
    c->test_target = v->test_target;
    c->variant = strdup(v->name);
    if (c->variant == NULL) {
        tp__errf(err, errlen, "%s: out of memory", c->file);
        return TP_ENOMEM;
    }
    return TP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Sweeps */

const char *tp_ruleset_name(tp_ruleset r)
{
    return r == TP_RULESET_SELF ? "self" : "external";
}

static const char *const sweep_keys[] = {
    "ruleset",      "workloads",    "studies",     "trials", "study_points", "heldout",
    "heldout_seed", "budget_scale", "clock",       "jobs",   "results",      "seed",
    "set",          "submissions",  "diagnostics", NULL};
static const char *const diagnostics_keys[] = {"sharpness_every", "sharpness_examples", NULL};
static const char *const submission_keys[] = {"name",         "optimizer", "schedule", "selection",
                                              "search_space", "hparams",   NULL};

/* A string setting into *out (replacing it); `expect` completes "must be ...". */
static int get_string(loader *L, const config_setting_t *s, char **out, const char *expect)
{
    value v = value_of_setting(s);
    if (v.type != VALUE_STRING || v.s[0] == '\0')
        return fail_value(L, s, expect);
    char *d = strdup(v.s);
    if (d == NULL) {
        tp__errf(L->err, L->errlen, "%s: out of memory", L->file);
        return TP_ENOMEM;
    }
    free(*out);
    *out = d;
    return TP_OK;
}

static int get_int(loader *L, const config_setting_t *s, long long lo, long long hi, long long *out,
                   const char *expect)
{
    value v = value_of_setting(s);
    if (v.type != VALUE_INT || v.i < lo || v.i > hi)
        return fail_value(L, s, expect);
    *out = v.i;
    return TP_OK;
}

/* One of `names` (NULL-terminated) by index. */
static int get_choice(loader *L, const config_setting_t *s, const char *const *names, int *out,
                      const char *expect)
{
    value v = value_of_setting(s);
    for (int i = 0; v.type == VALUE_STRING && names[i]; i++)
        if (strcmp(v.s, names[i]) == 0) {
            *out = i;
            return TP_OK;
        }
    return fail_value(L, s, expect);
}

/* An array or list of non-empty strings. */
static int get_strings(loader *L, const config_setting_t *s, char ***out, size_t *n,
                       const char *expect)
{
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return fail_value(L, s, expect);
    int len = config_setting_length(s);
    char **list = calloc((size_t)len + 1, sizeof *list);
    if (list == NULL)
        goto nomem;
    for (int i = 0; i < len; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING ||
            config_setting_get_string(e)[0] == '\0') {
            for (int k = 0; k < i; k++)
                free(list[k]);
            free(list);
            return fail_value(L, e, expect);
        }
        if ((list[i] = strdup(config_setting_get_string(e))) == NULL) {
            for (int k = 0; k < i; k++)
                free(list[k]);
            free(list);
            goto nomem;
        }
    }
    *out = list;
    *n = (size_t)len;
    return TP_OK;
nomem:
    tp__errf(L->err, L->errlen, "%s: out of memory", L->file);
    return TP_ENOMEM;
}

/* dir/rel, or rel when it is absolute. */
static char *join_path(const char *dir, const char *rel)
{
    if (rel[0] == '/')
        return strdup(rel);
    size_t n = strlen(dir) + 1 + strlen(rel) + 1;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

static void free_submission(tp_sweep_submission *s)
{
    free(s->name);
    free(s->optimizer);
    free(s->schedule);
    free(s->selection);
    free(s->search_space);
    free(s->hparams);
    memset(s, 0, sizeof *s);
}

static int load_sweep_submission(loader *L, const config_setting_t *g, const char *dir,
                                 tp_sweep_config *c)
{
    tp_sweep_submission sub;
    memset(&sub, 0, sizeof sub);
    sub.line = setting_line(g);
    int rc = TP_OK;
    if (!config_setting_is_group(g))
        return fail_value(L, g, "a group { name = ...; optimizer = ...; ... }");
    for (int i = 0; i < config_setting_length(g) && rc == TP_OK; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(s);
        if (strcmp(name, "name") == 0)
            rc = get_string(L, s, &sub.name, "a non-empty string naming the submission");
        else if (strcmp(name, "optimizer") == 0)
            rc = get_string(L, s, &sub.optimizer, "an optimizer plugin id");
        else if (strcmp(name, "schedule") == 0)
            rc = get_string(L, s, &sub.schedule, "a schedule plugin id");
        else if (strcmp(name, "selection") == 0)
            rc = get_string(L, s, &sub.selection, "a data selection plugin id");
        else if (strcmp(name, "hparams") == 0) {
            rc = get_string(L, s, &sub.hparams, "a \"name=value,...\" list");
            tp_kv_list kv = {0};
            char why[256];
            if (rc == TP_OK && tp_kv_parse(sub.hparams, &kv, why, sizeof why) != TP_OK)
                rc = fail_at(L, s, NULL, "%s", why);
            tp_kv_free(&kv);
        } else if (strcmp(name, "search_space") == 0) {
            char *rel = NULL;
            rc = get_string(L, s, &rel, "the path of a search space file (.json or .cfg)");
            if (rc == TP_OK && (sub.search_space = join_path(dir, rel)) == NULL) {
                tp__errf(L->err, L->errlen, "%s: out of memory", L->file);
                rc = TP_ENOMEM;
            }
            free(rel);
            if (rc == TP_OK && c->ruleset == TP_RULESET_SELF)
                rc = fail_at(L, s, NULL,
                             "self-tuning submissions have no search space (ruleset = \"self\")");
        } else {
            rc = fail_unknown(L, s, submission_keys);
        }
    }
    if (rc == TP_OK && sub.name == NULL)
        rc = fail_at(L, g, "name", "missing; must be a non-empty string naming the submission");
    if (rc == TP_OK && sub.optimizer == NULL)
        rc = fail_at(L, g, "optimizer", "missing; must be an optimizer plugin id");
    if (rc == TP_OK && c->ruleset == TP_RULESET_EXTERNAL && sub.search_space == NULL)
        rc = fail_at(L, g, "search_space",
                     "missing; external tuning needs the submission's search space file");
    for (size_t i = 0; rc == TP_OK && i < c->num_submissions; i++)
        if (strcmp(c->submissions[i].name, sub.name) == 0)
            rc = fail_at(L, g, "name", "\"%s\" names another submission too", sub.name);
    if (rc == TP_OK) {
        tp_sweep_submission *grown =
            realloc(c->submissions, (c->num_submissions + 1) * sizeof *grown);
        if (grown == NULL) {
            tp__errf(L->err, L->errlen, "%s: out of memory", L->file);
            rc = TP_ENOMEM;
        } else {
            c->submissions = grown;
            c->submissions[c->num_submissions++] = sub;
            return TP_OK;
        }
    }
    free_submission(&sub);
    return rc;
}

int tp_config_load_sweep(const char *path, tp_sweep_config *out, char *err, size_t errlen)
{
    config_t cfg;
    char *incdir = NULL;
    loader L = {path, NULL, err, errlen};
    memset(out, 0, sizeof *out);
    out->studies = 3;
    out->trials = 5;
    out->budget_scale = 1.0;
    out->jobs = 1;
    config_init(&cfg);
    int rc = read_config_file(path, &cfg, &incdir, err, errlen);
    if (rc != TP_OK)
        goto error;
    if ((out->file = strdup(path)) == NULL) {
        tp__errf(err, errlen, "%s: out of memory", path);
        rc = TP_ENOMEM;
        goto error;
    }
    const config_setting_t *root = config_root_setting(&cfg), *w = NULL;
    static const char *const sweep_root[] = {"sweep", NULL};
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        if (strcmp(config_setting_name(s), "sweep") != 0 || !config_setting_is_group(s)) {
            rc = strcmp(config_setting_name(s), "sweep") != 0
                     ? fail_unknown(&L, s, sweep_root)
                     : fail_value(&L, s, "a group { ruleset = ...; workloads = [...]; ... }");
            goto error;
        }
        w = s;
    }
    if (w == NULL) {
        tp__errf(err, errlen, "%s:1: sweep: missing; must be a group { ruleset = ...; ... }", path);
        rc = TP_ECONFIG;
        goto error;
    }
    /* The ruleset first: it decides what the submissions must have. */
    const config_setting_t *rs = config_setting_get_member(w, "ruleset");
    if (rs != NULL) {
        static const char *const rulesets[] = {"external", "self", NULL};
        int k = 0;
        if ((rc = get_choice(&L, rs, rulesets, &k, "\"external\" or \"self\"")) != TP_OK)
            goto error;
        out->ruleset = (tp_ruleset)k;
    }
    const config_setting_t *subs = NULL;
    int have_trials = 0;
    for (int i = 0; i < config_setting_length(w) && rc == TP_OK; i++) {
        const config_setting_t *s = config_setting_get_elem(w, (unsigned)i);
        const char *name = config_setting_name(s);
        long long v = 0;
        int k = 0;
        if (strcmp(name, "ruleset") == 0) {
            continue;
        } else if (strcmp(name, "workloads") == 0) {
            rc = get_strings(&L, s, &out->workloads, &out->num_workloads,
                             "a list of workload names [\"fmnist_mlp\", ...]");
        } else if (strcmp(name, "studies") == 0) {
            if ((rc = get_int(&L, s, 1, 1000, &v, "an integer from 1 to 1000")) == TP_OK)
                out->studies = (int)v;
        } else if (strcmp(name, "trials") == 0) {
            if ((rc = get_int(&L, s, 1, 10000, &v, "an integer from 1 to 10000")) == TP_OK)
                out->trials = (int)v;
            have_trials = 1;
        } else if (strcmp(name, "study_points") == 0) {
            static const char *const sp[] = {"shared", "distinct", NULL};
            if ((rc = get_choice(&L, s, sp, &k, "\"shared\" or \"distinct\"")) == TP_OK)
                out->study_points = (tp_study_points)k;
        } else if (strcmp(name, "heldout") == 0) {
            static const char *const ho[] = {"none", "sampled", "all", NULL};
            if ((rc = get_choice(&L, s, ho, &k, "\"none\", \"sampled\" or \"all\"")) == TP_OK)
                out->heldout = (tp_heldout_policy)k;
        } else if (strcmp(name, "heldout_seed") == 0 || strcmp(name, "seed") == 0) {
            if ((rc = get_int(&L, s, 0, LLONG_MAX, &v, "an integer >= 0")) == TP_OK)
                *(name[0] == 'h' ? &out->heldout_seed : &out->seed) = (uint64_t)v;
        } else if (strcmp(name, "budget_scale") == 0) {
            value bv = value_of_setting(s);
            double d = bv.type == VALUE_INT ? (double)bv.i : bv.d;
            if ((bv.type != VALUE_INT && bv.type != VALUE_FLOAT) || !isfinite(d) || !(d > 0))
                rc = fail_value(&L, s, "a number > 0 (it multiplies every budget)");
            else
                out->budget_scale = d;
        } else if (strcmp(name, "clock") == 0) {
            static const char *const clocks[] = {"wall", "cpu", "steps", NULL};
            if ((rc = get_choice(&L, s, clocks, &k, "\"wall\", \"cpu\" or \"steps\"")) == TP_OK)
                out->clock = k;
        } else if (strcmp(name, "jobs") == 0) {
            if ((rc = get_int(&L, s, 1, 256, &v, "an integer from 1 to 256")) == TP_OK)
                out->jobs = (int)v;
        } else if (strcmp(name, "results") == 0) {
            rc = get_string(&L, s, &out->results, "a directory path");
        } else if (strcmp(name, "set") == 0) {
            rc = get_strings(&L, s, &out->overrides, &out->num_overrides,
                             "a list of \"key=value\" workload overrides");
        } else if (strcmp(name, "diagnostics") == 0) {
            if (!config_setting_is_group(s)) {
                rc = fail_value(&L, s, "a group { sharpness_every = K; sharpness_examples = N; }");
            } else {
                for (int j = 0; rc == TP_OK && j < config_setting_length(s); j++) {
                    const config_setting_t *d = config_setting_get_elem(s, (unsigned)j);
                    const char *dn = config_setting_name(d);
                    if (strcmp(dn, "sharpness_every") == 0) {
                        if ((rc = get_int(&L, d, 0, UINT32_MAX, &v,
                                          "a step count >= 0 (0: no measurements)")) == TP_OK)
                            out->sharpness_every = (uint64_t)v;
                    } else if (strcmp(dn, "sharpness_examples") == 0) {
                        if ((rc = get_int(&L, d, 0, UINT32_MAX, &v,
                                          "a number of training examples >= 0 (0: 1,000)")) ==
                            TP_OK)
                            out->sharpness_examples = (uint32_t)v;
                    } else {
                        rc = fail_unknown(&L, d, diagnostics_keys);
                    }
                }
            }
        } else if (strcmp(name, "submissions") == 0) {
            if (!config_setting_is_list(s))
                rc = fail_value(&L, s, "a list ( { name = ...; optimizer = ...; }, ... )");
            subs = s;
        } else {
            rc = fail_unknown(&L, s, sweep_keys);
        }
    }
    if (rc != TP_OK)
        goto error;
    if (out->ruleset == TP_RULESET_SELF) {
        if (have_trials && out->trials != 1) {
            rc = fail_at(&L, config_setting_get_member(w, "trials"), NULL,
                         "self-tuning runs one trial per study; remove it or set 1");
            goto error;
        }
        out->trials = 1;
    }
    if (out->num_workloads == 0) {
        rc = fail_at(&L, w, "workloads", "missing or empty; must list workload names");
        goto error;
    }
    if (subs == NULL || config_setting_length(subs) == 0) {
        rc = fail_at(&L, w, "submissions", "missing or empty; must list the submissions");
        goto error;
    }
    for (int i = 0; i < config_setting_length(subs); i++)
        if ((rc = load_sweep_submission(&L, config_setting_get_elem(subs, (unsigned)i), incdir,
                                        out)) != TP_OK)
            goto error;
    config_destroy(&cfg);
    free(incdir);
    return TP_OK;
error:
    config_destroy(&cfg);
    free(incdir);
    tp_config_free_sweep(out);
    return rc;
}

void tp_config_free_sweep(tp_sweep_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->num_workloads; i++)
        free(c->workloads[i]);
    free(c->workloads);
    for (size_t i = 0; i < c->num_overrides; i++)
        free(c->overrides[i]);
    free(c->overrides);
    for (size_t i = 0; i < c->num_submissions; i++)
        free_submission(&c->submissions[i]);
    free(c->submissions);
    free(c->results);
    free(c->file);
    memset(c, 0, sizeof *c);
}
