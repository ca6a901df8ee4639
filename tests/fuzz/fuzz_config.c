/*
 * fuzz_config.c - libFuzzer target for core/config.c: workload files, sweep files, --set
 * overrides, variants and --hparams lists.
 *
 * Each input is a libconfig file. It is written to a temporary file and loaded twice, as a
 * workload (tp_config_load_workload) and as a sweep (tp_config_load_sweep): a real file is one
 * or the other, and the other loader must reject it cleanly. Comment lines of the forms
 *
 *   #@set <key=value>        an override (tp_config_apply_override)
 *   #@hparams <list>         a --hparams list (tp_kv_parse, tp_kv_find, tp_kv_to_json)
 *   #@variant <name>         the variant to select (tp_config_select_variant)
 *
 * are ignored by libconfig and carry the command-line half of the input, so a seed stays a
 * real-looking file. Overrides go to the loaded workload, or, when the input is not one, to a
 * fixed base workload (written once per process).
 *
 * Checked beyond "no crash, no leak, no undefined behaviour": a failed load leaves *out all
 * zero and writes a message; a loaded workload or sweep satisfies what config.h promises
 * (positive finite budgets, non-empty unique names, ranges); a parsed --hparams list has valid
 * unique names and finite values, and its JSON form reads back (jansson) to the same numbers.
 *
 * Not here: tp_config_find_workload (directory listing, not parsing).
 */
#define _POSIX_C_SOURCE 200809L

#include "core/config.h"
#include "fuzz_common.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DIRECTIVES = 16, ERR_LEN = 512 };

static const char base_workload[] = "workload = {\n"
                                    "  name = \"fmnist_mlp\";\n"
                                    "  batch_size_hint = 128;\n"
                                    "  step_hint = 4000;\n"
                                    "  eval_period = 1.0;\n"
                                    "  budget = 30.0;\n"
                                    "  targets = { validation = 0.885; test = 0.875; };\n"
                                    "  data = { dir = \"/tmp/x\"; split_seed = 0; };\n"
                                    "  model = { hidden_width = 256; activation = \"relu\"; };\n"
                                    "  variants = ( { name = \"tanh\";\n"
                                    "    targets = { validation = 0.8; test = 0.7; };\n"
                                    "    model = { activation = \"tanh\"; }; } );\n"
                                    "};\n";

/* ---------------------------------------------------------------------------------------- */
/* The #@ directives */

typedef struct directives {
    char *set[MAX_DIRECTIVES];
    size_t num_set;
    char *hparams[MAX_DIRECTIVES];
    size_t num_hparams;
    char *variant; /* the last one given */
} directives;

/* The rest of the line after prefix, up to the newline or a NUL byte; NULL when line does not
 * start with prefix. */
static char *directive_text(const char *line, size_t len, const char *prefix)
{
    size_t pl = strlen(prefix);
    if (len < pl || memcmp(line, prefix, pl) != 0)
        return NULL;
    const char *b = line + pl;
    size_t n = len - pl;
    const char *nul = memchr(b, '\0', n);
    if (nul != NULL)
        n = (size_t)(nul - b);
    char *s = malloc(n + 1);
    if (s == NULL)
        abort();
    memcpy(s, b, n);
    s[n] = '\0';
    return s;
}

static void directives_read(const uint8_t *data, size_t size, directives *d)
{
    memset(d, 0, sizeof *d);
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char *s;
        if ((s = directive_text(p, len, "#@set ")) != NULL) {
            if (d->num_set < MAX_DIRECTIVES)
                d->set[d->num_set++] = s;
            else
                free(s);
        } else if ((s = directive_text(p, len, "#@hparams ")) != NULL) {
            if (d->num_hparams < MAX_DIRECTIVES)
                d->hparams[d->num_hparams++] = s;
            else
                free(s);
        } else if ((s = directive_text(p, len, "#@variant ")) != NULL) {
            free(d->variant);
            d->variant = s;
        }
        p += len + (nl != NULL);
    }
}

static void directives_free(directives *d)
{
    for (size_t i = 0; i < d->num_set; i++)
        free(d->set[i]);
    for (size_t i = 0; i < d->num_hparams; i++)
        free(d->hparams[i]);
    free(d->variant);
    memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------------------------------- */
/* Workloads */

static int is_option_key(const char *key)
{
    return strncmp(key, "data.", 5) == 0 || strncmp(key, "model.", 6) == 0;
}

static void check_options(const tp_wl_option *o, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(o[i].key != NULL && is_option_key(o[i].key));
        for (size_t k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(o[i].key, o[k].key) != 0);
    }
}

static void check_workload(const tp_workload_config *c, const char *path)
{
    FUZZ_CHECK(c->file != NULL && strcmp(c->file, path) == 0);
    FUZZ_CHECK(c->name != NULL && c->name[0] != '\0');
    FUZZ_CHECK(c->batch_size_hint > 0 && c->step_hint > 0);
    FUZZ_CHECK(isfinite(c->eval_period) && c->eval_period > 0);
    FUZZ_CHECK(isfinite(c->budget) && c->budget > 0);
    FUZZ_CHECK(isfinite(c->validation_target) && isfinite(c->test_target));
    FUZZ_CHECK(c->variant == NULL);
    check_options(c->options, c->num_options);
    for (size_t v = 0; v < c->num_variants; v++) {
        const tp_variant_config *var = &c->variants[v];
        FUZZ_CHECK(var->name != NULL && var->name[0] != '\0');
        FUZZ_CHECK(isfinite(var->validation_target) && isfinite(var->test_target));
        FUZZ_CHECK(var->line > 0);
        check_options(var->options, var->num_options);
        for (size_t k = 0; k < v; k++)
            FUZZ_CHECK(strcmp(var->name, c->variants[k].name) != 0);
    }
}

static const tp_wl_option *find_option(const tp_workload_config *c, const char *key)
{
    for (size_t i = 0; i < c->num_options; i++)
        if (strcmp(c->options[i].key, key) == 0)
            return &c->options[i];
    return NULL;
}

/* Select a variant (the directive's, else the last in the file) and check that its targets and
 * options replaced the base's. */
static void select_variant(tp_workload_config *c, const char *wanted)
{
    char err[ERR_LEN] = "";
    const char *name = wanted;
    if (name == NULL && c->num_variants > 0)
        name = c->variants[c->num_variants - 1].name;
    if (name == NULL)
        return;
    int rc = tp_config_select_variant(c, name, err, sizeof err);
    if (rc != TP_OK) {
        FUZZ_CHECK(rc < 0);
        fuzz_check_message(err, sizeof err);
        FUZZ_CHECK(c->variant == NULL);
        return;
    }
    if (name[0] == '\0') {
        FUZZ_CHECK(c->variant == NULL);
        return;
    }
    FUZZ_CHECK(c->variant != NULL && strcmp(c->variant, name) == 0);
    const tp_variant_config *v = NULL;
    for (size_t i = 0; i < c->num_variants; i++)
        if (strcmp(c->variants[i].name, name) == 0)
            v = &c->variants[i];
    FUZZ_CHECK(v != NULL);
    FUZZ_CHECK(c->validation_target == v->validation_target);
    FUZZ_CHECK(c->test_target == v->test_target);
    for (size_t i = 0; i < v->num_options; i++) {
        const tp_wl_option *o = find_option(c, v->options[i].key);
        FUZZ_CHECK(o != NULL);
        FUZZ_CHECK((o->str == NULL) == (v->options[i].str == NULL));
        FUZZ_CHECK(o->str != NULL ? strcmp(o->str, v->options[i].str) == 0
                                  : memcmp(&o->num, &v->options[i].num, sizeof o->num) == 0);
    }
    check_options(c->options, c->num_options);
    /* A second selection is refused: variants do not stack. */
    char err2[ERR_LEN] = "";
    FUZZ_CHECK(tp_config_select_variant(c, name, err2, sizeof err2) == TP_ESTATE);
    fuzz_check_message(err2, sizeof err2);
}

static void apply_overrides(tp_workload_config *c, char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char err[ERR_LEN] = "";
        int rc = tp_config_apply_override(c, set[i], err, sizeof err);
        if (rc != TP_OK) {
            FUZZ_CHECK(rc < 0);
            fuzz_check_message(err, sizeof err);
        }
        /* Whatever the override did, the promises of a loaded file still hold. */
        FUZZ_CHECK(isfinite(c->eval_period) && c->eval_period > 0);
        FUZZ_CHECK(isfinite(c->budget) && c->budget > 0);
        FUZZ_CHECK(isfinite(c->validation_target) && isfinite(c->test_target));
        FUZZ_CHECK(c->batch_size_hint > 0 && c->step_hint > 0);
        check_options(c->options, c->num_options);
    }
}

static void load_base(tp_workload_config *c)
{
    char err[ERR_LEN] = "";
    int rc = tp_config_load_workload(fuzz_tmp_path("base.cfg"), c, err, sizeof err);
    if (rc != TP_OK) {
        fprintf(stderr, "fuzz: the base workload does not load: %s\n", err);
        abort();
    }
}

static void fuzz_workload(const char *path, const directives *d)
{
    tp_workload_config c;
    char err[ERR_LEN] = "";
    int rc = tp_config_load_workload(path, &c, err, sizeof err);
    if (rc != TP_OK) {
        FUZZ_CHECK(rc < 0);
        fuzz_check_message(err, sizeof err);
        FUZZ_CHECK(fuzz_is_zero(&c, sizeof c));
        tp_config_free_workload(&c);
        if (d->num_set == 0 && d->variant == NULL)
            return;
        load_base(&c);
    } else {
        check_workload(&c, path);
    }
    select_variant(&c, d->variant);
    apply_overrides(&c, d->set, d->num_set);
    tp_config_free_workload(&c);
    tp_config_free_workload(&c); /* free of a zeroed struct is a no-op */
}

/* ---------------------------------------------------------------------------------------- */
/* --hparams lists */

static void fuzz_kv(const char *s)
{
    tp_kv_list l;
    char err[ERR_LEN] = "";
    int rc = tp_kv_parse(s, &l, err, sizeof err);
    if (rc != TP_OK) {
        FUZZ_CHECK(rc < 0);
        fuzz_check_message(err, sizeof err);
        FUZZ_CHECK(l.items == NULL && l.count == 0);
        return;
    }
    for (size_t i = 0; i < l.count; i++) {
        const char *k = l.items[i].key;
        FUZZ_CHECK(k != NULL && k[0] != '\0' &&
                   strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(k));
        FUZZ_CHECK(isfinite(l.items[i].value));
        FUZZ_CHECK(tp_kv_find(&l, k) == &l.items[i]); /* names are unique */
    }
    /* The JSON form reads back to the same numbers; short buffers truncate but terminate. */
    size_t cap = 8;
    for (size_t i = 0; i < l.count; i++)
        cap += strlen(l.items[i].key) + 40; /* ", \"key\": " and up to 25 characters of number */
    char *json = malloc(cap);
    FUZZ_CHECK(json != NULL);
    tp_kv_to_json(&l, json, cap);
    json_error_t jerr;
    json_t *root = json_loads(json, 0, &jerr);
    FUZZ_CHECK(root != NULL && json_is_object(root) && json_object_size(root) == l.count);
    for (size_t i = 0; i < l.count; i++) {
        json_t *v = json_object_get(root, l.items[i].key);
        FUZZ_CHECK(v != NULL && json_is_number(v));
        FUZZ_CHECK(json_number_value(v) == l.items[i].value);
    }
    json_decref(root);
    size_t small = (size_t)(fuzz_hash((const uint8_t *)s, strlen(s)) % 24) + 1;
    memset(json, 'x', cap);
    tp_kv_to_json(&l, json, small);
    FUZZ_CHECK(memchr(json, '\0', small) != NULL);
    free(json);
    tp_kv_free(&l);
    tp_kv_free(&l); /* a freed list frees again as a no-op */
}

/* ---------------------------------------------------------------------------------------- */
/* Sweeps */

static void check_sweep(const tp_sweep_config *c, const char *path)
{
    FUZZ_CHECK(c->file != NULL && strcmp(c->file, path) == 0);
    FUZZ_CHECK(c->ruleset == TP_RULESET_EXTERNAL || c->ruleset == TP_RULESET_SELF);
    FUZZ_CHECK(c->num_workloads > 0 && c->workloads != NULL);
    for (size_t i = 0; i < c->num_workloads; i++)
        FUZZ_CHECK(c->workloads[i] != NULL && c->workloads[i][0] != '\0');
    FUZZ_CHECK(c->studies >= 1 && c->studies <= 1000);
    FUZZ_CHECK(c->trials >= 1 && c->trials <= 10000);
    FUZZ_CHECK(c->ruleset != TP_RULESET_SELF || c->trials == 1);
    FUZZ_CHECK(c->study_points == TP_STUDY_POINTS_SHARED ||
               c->study_points == TP_STUDY_POINTS_DISTINCT);
    FUZZ_CHECK(c->heldout >= TP_HELDOUT_NONE && c->heldout <= TP_HELDOUT_ALL);
    FUZZ_CHECK(isfinite(c->budget_scale) && c->budget_scale > 0);
    FUZZ_CHECK(c->clock == 0 || c->clock == 1);
    FUZZ_CHECK(c->jobs >= 1 && c->jobs <= 256);
    FUZZ_CHECK(c->results == NULL || c->results[0] != '\0');
    for (size_t i = 0; i < c->num_overrides; i++)
        FUZZ_CHECK(c->overrides[i] != NULL && c->overrides[i][0] != '\0');
    FUZZ_CHECK(c->num_submissions > 0);
    for (size_t i = 0; i < c->num_submissions; i++) {
        const tp_sweep_submission *s = &c->submissions[i];
        FUZZ_CHECK(s->name != NULL && s->name[0] != '\0');
        FUZZ_CHECK(s->optimizer != NULL && s->optimizer[0] != '\0');
        FUZZ_CHECK((c->ruleset == TP_RULESET_EXTERNAL) == (s->search_space != NULL));
        FUZZ_CHECK(s->line > 0);
        for (size_t k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(s->name, c->submissions[k].name) != 0);
        if (s->hparams != NULL) {
            tp_kv_list l;
            char err[ERR_LEN] = "";
            FUZZ_CHECK(tp_kv_parse(s->hparams, &l, err, sizeof err) == TP_OK);
            tp_kv_free(&l);
        }
    }
}

static void fuzz_sweep(const char *path)
{
    tp_sweep_config c;
    char err[ERR_LEN] = "";
    int rc = tp_config_load_sweep(path, &c, err, sizeof err);
    if (rc != TP_OK) {
        FUZZ_CHECK(rc < 0);
        fuzz_check_message(err, sizeof err);
        FUZZ_CHECK(fuzz_is_zero(&c, sizeof c));
        tp_config_free_sweep(&c);
        return;
    }
    check_sweep(&c, path);
    FUZZ_CHECK(strcmp(tp_ruleset_name(c.ruleset), "self") == 0 ||
               strcmp(tp_ruleset_name(c.ruleset), "external") == 0);
    if (c.num_overrides > 0) {
        /* What the sweep runner does with `set`: every override on top of a workload. */
        tp_workload_config w;
        load_base(&w);
        apply_overrides(&w, c.overrides, c.num_overrides);
        tp_config_free_workload(&w);
    }
    tp_config_free_sweep(&c);
    tp_config_free_sweep(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* libFuzzer entry points */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_write_file(fuzz_tmp_path("base.cfg"), (const uint8_t *)base_workload,
                    sizeof base_workload - 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_leaks_begin();
    const char *path = fuzz_tmp_path("input.cfg");
    fuzz_write_file(path, data, size);
    directives d;
    directives_read(data, size, &d);
    fuzz_workload(path, &d);
    fuzz_sweep(path);
    for (size_t i = 0; i < d.num_hparams; i++)
        fuzz_kv(d.hparams[i]);
    directives_free(&d);
    fuzz_leaks_end();
    return 0;
}
