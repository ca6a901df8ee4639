/*
 * algoperf_io.c - AlgoPerf's trial directory layout (algoperf_io.h): export from the results
 * store, import with a small CSV reader and targets (built in or from a JSON file), trials
 * from the results store for scoring, and the score report as a terminal table.
 *
 * The CSV reader handles what AlgoPerf's logger (pandas to_csv) writes: a header line of
 * column names, then one line per eval of comma-separated numbers; empty cells, nan and
 * inf / -inf; \n or \r\n line ends, a UTF-8 byte order mark and blank lines. Only the time
 * column ("score", else "accumulated_submission_time") and the validation metric column are
 * parsed; other cells are skipped unread. Quoted fields are refused with a message.
 *
 * Numbers are written with the fewest digits that read back to the same double (15 to 17),
 * as Python's repr does, so exported files look like AlgoPerf's and round-trip exactly.
 *
 * Not here: what algoperf_io.h leaves out (scoring, plots, older layouts).
 */
#define _POSIX_C_SOURCE 200809L

#include "core/algoperf_io.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <jansson.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/trial.h" /* tp_trial_reached */
#include <trainperf/trainperf.h>

#define TP_ALGOPERF_CSV         "eval_measurements.csv"
#define TP_ALGOPERF_SELF_BUDGET 1.5 /* self-tuning budget factor (reference: config.py) */

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* ---------------------------------------------------------------------------------------- */
/* Small helpers */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void free_strings(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* "<a>_<b>", or a copy of a when b is empty. */
static char *join_name(const char *a, const char *b)
{
    size_t la = strlen(a), lb = b != NULL ? strlen(b) : 0;
    char *s = malloc(la + lb + 2);
    if (s == NULL)
        return NULL;
    memcpy(s, a, la);
    if (lb > 0) {
        s[la] = '_';
        memcpy(s + la + 1, b, lb);
        la += lb + 1;
    }
    s[la] = '\0';
    return s;
}

/* A name that can be one directory level: not empty, ".", ".." and without '/'. */
static int dir_name_ok(const char *s)
{
    return s != NULL && s[0] != '\0' && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
           strchr(s, '/') == NULL;
}

/* "<prefix><digits>" -> the number; -1 when name is not of that form. */
static long numbered(const char *name, const char *prefix)
{
    size_t lp = strlen(prefix);
    if (strncmp(name, prefix, lp) != 0 || name[lp] == '\0')
        return -1;
    long v = 0;
    for (const char *p = name + lp; *p; p++) {
        if (*p < '0' || *p > '9' || v > (LONG_MAX - 9) / 10 || v > INT_MAX)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v > INT_MAX ? -1 : v;
}

/* The fewest significant digits (15..17) that read back to x, with ".0" on integral values
 * as Python's repr writes them ("2.0", "0.885", "1e-05"); inf, -inf, and "" for NaN. */
static void fmt_double(char *out, size_t len, double x)
{
    if (isnan(x)) {
        out[0] = '\0';
        return;
    }
    if (isinf(x)) {
        snprintf(out, len, "%s", x > 0 ? "inf" : "-inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, len, "%.*g", prec, x);
        if (strtod(out, NULL) == x)
            break;
    }
    if (strpbrk(out, ".e") == NULL && strlen(out) + 3 <= len)
        strcat(out, ".0");
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Sorted names of the subdirectories of path (following symlinks). */
static int list_dirs(const char *path, char ***out, size_t *count, char *err, size_t errlen)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(path);
    if (d == NULL) {
        tp__errf(err, errlen, "%s: cannot read the directory: %s", path, strerror(errno));
        return TP_EIO;
    }
    char **v = NULL;
    size_t n = 0, cap = 0;
    int rc = TP_OK;
    struct dirent *e;
    char p[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if ((size_t)snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= sizeof p || !is_dir(p))
            continue;
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 16;
            char **nv = realloc(v, nc * sizeof *nv);
            if (nv == NULL)
                goto nomem;
            v = nv;
            cap = nc;
        }
        if ((v[n] = strdup(e->d_name)) == NULL)
            goto nomem;
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_str);
    *out = v;
    *count = n;
    return TP_OK;

nomem:
    tp__errf(err, errlen, "%s: out of memory listing the directory", path);
    rc = TP_ENOMEM;
    closedir(d);
    free_strings(v, n);
    return rc;
}

/* mkdir -p, then make sure it is a directory. */
static int make_dirs(const char *path, char *err, size_t errlen)
{
    int rc = tp__fs_mkdir_p(path, err, errlen);
    if (rc == TP_OK && !is_dir(path)) {
        tp__errf(err, errlen, "cannot create directory %s: a file is in the way", path);
        rc = TP_EIO;
    }
    return rc;
}

/* Parse a comma-separated list ("a,b,c"; "" gives none). */
static int split_list(const char *s, char ***out, size_t *count)
{
    *out = NULL;
    *count = 0;
    size_t n = 0, cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char **v = calloc(cap, sizeof *v);
    if (v == NULL)
        return TP_ENOMEM;
    const char *p = s;
    while (*p) {
        const char *q = strchr(p, ',');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len > 0) {
            if ((v[n] = strndup(p, len)) == NULL) {
                free_strings(v, n);
                return TP_ENOMEM;
            }
            n++;
        }
        if (q == NULL)
            break;
        p = q + 1;
    }
    *out = v;
    *count = n;
    return TP_OK;
}

static int in_list(char **v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return 1;
    return 0;
}

/* The rule of algoperf_io.h: first eval within budget whose metric reaches the target. */
static int eval_counts(double score, double metric, int maximize, double target, double budget)
{
    if (isnan(score) || score > budget)
        return 0;
    return tp_trial_reached(metric, target, maximize);
}

/* ---------------------------------------------------------------------------------------- */
/* Trial sets */

void tp_algoperf_trials_free(tp_algoperf_trials *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->num_trials; i++) {
        free((char *)t->trials[i].submission);
        free((char *)t->trials[i].workload);
        free((char *)t->trials[i].variant);
    }
    free(t->trials);
    free(t);
}

typedef struct trial_set {
    tp_algoperf_trials *t;
    size_t cap;
} trial_set;

static int set_add(trial_set *set, const char *submission, const char *workload,
                   const char *variant, int study, int trial_index, double time)
{
    tp_algoperf_trials *t = set->t;
    if (t->num_trials == set->cap) {
        size_t nc = set->cap ? 2 * set->cap : 64;
        tp_score_trial *nv = realloc(t->trials, nc * sizeof *nv);
        if (nv == NULL)
            return TP_ENOMEM;
        t->trials = nv;
        set->cap = nc;
    }
    tp_score_trial *e = &t->trials[t->num_trials];
    e->submission = strdup(submission);
    e->workload = strdup(workload);
    e->variant = strdup(variant != NULL ? variant : "");
    e->study = study;
    e->trial_index = trial_index;
    e->time_to_target = time;
    if (e->submission == NULL || e->workload == NULL || e->variant == NULL) {
        free((char *)e->submission);
        free((char *)e->workload);
        free((char *)e->variant);
        return TP_ENOMEM;
    }
    t->num_trials++;
    return TP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Targets: built in (BENCHMARK.md §4, v0.6 budgets) or from a JSON file */

typedef struct wl_target {
    char *name;    /* "ogbg_model_size" */
    char *base;    /* "ogbg" */
    char *variant; /* "model_size", "" for a base */
    char *metric;  /* "mean_average_precision" */
    int maximize;
    double target;
    double budget; /* external tuning, seconds; INFINITY: none */
} wl_target;

typedef struct targets {
    wl_target *items;
    size_t n;
    char **heldout; /* names of the variants scored */
    size_t num_heldout;
} targets;

static const struct builtin_workload {
    const char *base;
    const char *metric;
    int maximize;
    double target;
    double budget;
    struct {
        const char *name;
        double target;
    } variants[3];
} builtin_workloads[] = {
    {"criteo1tb",
     "loss",
     0,
     0.123735,
     7703,
     {{"layernorm", 0.123757}, {"resnet", 0.12415}, {"embed_init", 0.129657}}},
    {"fastmri",
     "ssim",
     1,
     0.723653,
     4430,
     {{"model_size", 0.723559}, {"tanh", 0.717840}, {"layernorm", 0.723284}}},
    {"imagenet_resnet",
     "accuracy",
     1,
     0.77431,
     66159,
     {{"silu", 0.75445}, {"gelu", 0.76765}, {"large_bn_init", 0.76526}}},
    {"imagenet_vit",
     "accuracy",
     1,
     0.77309,
     69768,
     {{"glu", 0.75738}, {"post_ln", 0.75312}, {"map", 0.77113}}},
    {"librispeech_conformer",
     "wer",
     0,
     0.085884,
     58015,
     {{"attention_temperature", 0.109977}, {"layernorm", 0.09731}, {"gelu", 0.094114}}},
    {"librispeech_deepspeech",
     "wer",
     0,
     0.119936,
     44405,
     {{"tanh", 0.150883}, {"no_resnet", 0.131564}, {"norm_and_spec_aug", 0.14342}}},
    {"ogbg",
     "mean_average_precision",
     1,
     0.28098,
     12011,
     {{"gelu", 0.27771}, {"silu", 0.282178}, {"model_size", 0.269446}}},
    {"wmt",
     "bleu",
     1,
     30.8491,
     43336,
     {{"post_ln", 30.0779}, {"attention_temp", 29.3379}, {"glu_tanh", 29.5779}}},
};

/* v0.5's draw (scoring/algoperf_v05/held_out_workloads_algoperf_v05.json). */
static const char *const builtin_heldout[] = {
    "criteo1tb_embed_init",
    "fastmri_tanh",
    "imagenet_resnet_large_bn_init",
    "librispeech_conformer_layernorm",
    "ogbg_model_size",
    "wmt_glu_tanh",
};

static void targets_clear(targets *tg)
{
    for (size_t i = 0; i < tg->n; i++) {
        free(tg->items[i].name);
        free(tg->items[i].base);
        free(tg->items[i].variant);
        free(tg->items[i].metric);
    }
    free(tg->items);
    free_strings(tg->heldout, tg->num_heldout);
    memset(tg, 0, sizeof *tg);
}

static int targets_add(targets *tg, size_t *cap, const char *base, const char *variant,
                       const char *metric, int maximize, double target, double budget)
{
    if (tg->n == *cap) {
        size_t nc = *cap ? 2 * *cap : 32;
        wl_target *nv = realloc(tg->items, nc * sizeof *nv);
        if (nv == NULL)
            return TP_ENOMEM;
        tg->items = nv;
        *cap = nc;
    }
    wl_target *w = &tg->items[tg->n];
    w->name = join_name(base, variant);
    w->base = strdup(base);
    w->variant = strdup(variant);
    w->metric = strdup(metric);
    w->maximize = maximize;
    w->target = target;
    w->budget = budget;
    if (!w->name || !w->base || !w->variant || !w->metric) {
        free(w->name);
        free(w->base);
        free(w->variant);
        free(w->metric);
        return TP_ENOMEM;
    }
    tg->n++;
    return TP_OK;
}

static int targets_builtin(targets *tg)
{
    size_t cap = 0;
    size_t nb = sizeof builtin_workloads / sizeof builtin_workloads[0];
    for (size_t i = 0; i < nb; i++) {
        const struct builtin_workload *b = &builtin_workloads[i];
        if (targets_add(tg, &cap, b->base, "", b->metric, b->maximize, b->target, b->budget) < 0)
            return TP_ENOMEM;
        for (size_t v = 0; v < 3; v++)
            if (targets_add(tg, &cap, b->base, b->variants[v].name, b->metric, b->maximize,
                            b->variants[v].target, b->budget) < 0)
                return TP_ENOMEM;
    }
    size_t nh = sizeof builtin_heldout / sizeof builtin_heldout[0];
    if ((tg->heldout = calloc(nh, sizeof *tg->heldout)) == NULL)
        return TP_ENOMEM;
    for (size_t i = 0; i < nh; i++) {
        if ((tg->heldout[i] = strdup(builtin_heldout[i])) == NULL)
            return TP_ENOMEM;
        tg->num_heldout++;
    }
    return TP_OK;
}

static const wl_target *targets_find(const targets *tg, const char *name)
{
    for (size_t i = 0; i < tg->n; i++)
        if (strcmp(tg->items[i].name, name) == 0)
            return &tg->items[i];
    return NULL;
}

static int json_string_array(json_t *a, const char *path, const char *key, char ***out,
                             size_t *count, char *err, size_t errlen)
{
    *out = NULL;
    *count = 0;
    if (!json_is_array(a)) {
        tp__errf(err, errlen, "%s: \"%s\" must be an array of workload names", path, key);
        return TP_ECONFIG;
    }
    size_t n = json_array_size(a);
    char **v = calloc(n > 0 ? n : 1, sizeof *v);
    if (v == NULL)
        return TP_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (s == NULL || s[0] == '\0') {
            tp__errf(err, errlen, "%s: \"%s\"[%zu] must be a workload name", path, key, i);
            free_strings(v, i);
            return TP_ECONFIG;
        }
        if ((v[i] = strdup(s)) == NULL) {
            free_strings(v, i);
            return TP_ENOMEM;
        }
    }
    *out = v;
    *count = n;
    return TP_OK;
}

static int targets_load(targets *tg, const char *path, char *err, size_t errlen)
{
    json_error_t jerr;
    char **bases = NULL;
    size_t nb = 0, cap = 0;
    int rc = TP_OK;
    json_t *root = json_load_file(path, 0, &jerr);
    if (root == NULL) {
        tp__errf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
        return TP_ECONFIG;
    }
    json_t *wls = json_object_get(root, "workloads");
    json_t *jb = json_object_get(root, "base_workloads");
    json_t *jh = json_object_get(root, "held_out_workloads");
    if (!json_is_object(root) || !json_is_object(wls) || jb == NULL) {
        tp__errf(err, errlen,
                 "%s: a targets file is an object with \"base_workloads\" (array) and "
                 "\"workloads\" (object), as AlgoPerf's scoring/workload_targets.json",
                 path);
        rc = TP_ECONFIG;
        goto error;
    }
    if ((rc = json_string_array(jb, path, "base_workloads", &bases, &nb, err, errlen)) < 0)
        goto error;
    if (jh != NULL && (rc = json_string_array(jh, path, "held_out_workloads", &tg->heldout,
                                              &tg->num_heldout, err, errlen)) < 0)
        goto error;

    const char *name;
    json_t *spec;
    json_object_foreach(wls, name, spec)
    {
        const char *metric = json_string_value(json_object_get(spec, "target_metric_name"));
        const char *goal = json_string_value(json_object_get(spec, "target_metric_goal"));
        json_t *jt = json_object_get(spec, "validation_target_value");
        json_t *jr = json_object_get(spec, "max_allowed_runtime_sec");
        if (metric == NULL || metric[0] == '\0' || goal == NULL || !json_is_number(jt)) {
            tp__errf(err, errlen,
                     "%s: workloads.%s needs \"target_metric_name\" (string), "
                     "\"target_metric_goal\" and \"validation_target_value\" (number)",
                     path, name);
            rc = TP_ECONFIG;
            goto error;
        }
        if (strcmp(goal, "minimize") != 0 && strcmp(goal, "maximize") != 0) {
            tp__errf(err, errlen,
                     "%s: workloads.%s.target_metric_goal must be \"minimize\" or "
                     "\"maximize\", not \"%s\"",
                     path, name, goal);
            rc = TP_ECONFIG;
            goto error;
        }
        double budget = INFINITY;
        if (jr != NULL && !json_is_null(jr)) {
            if (!json_is_number(jr) || !(json_number_value(jr) > 0)) {
                tp__errf(err, errlen,
                         "%s: workloads.%s.max_allowed_runtime_sec must be a positive number "
                         "of seconds",
                         path, name);
                rc = TP_ECONFIG;
                goto error;
            }
            budget = json_number_value(jr);
        }
        /* The base: the name itself, or the longest base b with name = b_<variant>. */
        const char *base = NULL, *variant = "";
        for (size_t i = 0; i < nb; i++) {
            size_t lb = strlen(bases[i]);
            if (strcmp(name, bases[i]) == 0) {
                base = bases[i];
                variant = "";
                break;
            }
            if (strncmp(name, bases[i], lb) == 0 && name[lb] == '_' && name[lb + 1] != '\0' &&
                (base == NULL || lb > strlen(base))) {
                base = bases[i];
                variant = name + lb + 1;
            }
        }
        if (base == NULL) {
            tp__errf(err, errlen,
                     "%s: workloads.%s is neither a base workload nor <base>_<variant> of one "
                     "in \"base_workloads\"",
                     path, name);
            rc = TP_ECONFIG;
            goto error;
        }
        if (targets_add(tg, &cap, base, variant, metric, strcmp(goal, "maximize") == 0,
                        json_number_value(jt), budget) < 0) {
            rc = TP_ENOMEM;
            goto error;
        }
    }
    for (size_t i = 0; i < tg->num_heldout; i++) {
        const wl_target *w = targets_find(tg, tg->heldout[i]);
        if (w == NULL || w->variant[0] == '\0') {
            tp__errf(err, errlen,
                     "%s: held_out_workloads lists %s, which is not a variant in \"workloads\"",
                     path, tg->heldout[i]);
            rc = TP_ECONFIG;
            goto error;
        }
    }

error:
    if (rc == TP_ENOMEM)
        tp__errf(err, errlen, "%s: out of memory", path);
    free_strings(bases, nb);
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* CSV */

/* A cell [p, end) as a number: empty -> NaN; nan, inf, -inf as strtod reads them. */
static int parse_cell(const char *p, const char *end, double *out)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (p == end) {
        *out = NAN;
        return 0;
    }
    char buf[64];
    size_t len = (size_t)(end - p);
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    char *e;
    *out = strtod(buf, &e);
    return *e == '\0' ? 0 : -1;
}

/* The whole file as a string (NUL-terminated; *len bytes without the NUL). */
static int read_text_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        tp__errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return TP_EIO;
    }
    char *text = NULL;
    size_t n = 0, cap = 0;
    int rc = TP_OK;
    for (;;) {
        if (cap - n < 4096) {
            size_t nc = cap ? 2 * cap : 65536;
            char *nt = realloc(text, nc + 1);
            if (nt == NULL) {
                tp__errf(err, errlen, "%s: out of memory reading the file", path);
                rc = TP_ENOMEM;
                goto error;
            }
            text = nt;
            cap = nc;
        }
        size_t got = fread(text + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        tp__errf(err, errlen, "%s: read error", path);
        rc = TP_EIO;
        goto error;
    }
    text[n] = '\0';
    if (memchr(text, '\0', n) != NULL) {
        tp__errf(err, errlen, "%s: not a text file", path);
        rc = TP_EINVAL;
        goto error;
    }
    fclose(f);
    *out = text;
    *len = n;
    return TP_OK;

error:
    fclose(f);
    free(text);
    return rc;
}

/* Time to target of one eval_measurements.csv. */
static int csv_time_to_target(const char *path, const wl_target *w, double budget, double *time,
                              char *err, size_t errlen)
{
    *time = INFINITY;
    char *text;
    size_t len;
    int rc = read_text_file(path, &text, &len, err, errlen);
    if (rc < 0)
        return rc;

    char metric_col[256];
    snprintf(metric_col, sizeof metric_col, "validation/%s", w->metric);
    char *p = text;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    int lineno = 0, have_header = 0;
    long ncols = 0, col_time = -1, col_score = -1, col_acc = -1, col_metric = -1;
    while (*p) {
        char *eol = strchr(p, '\n');
        char *next = eol ? eol + 1 : p + strlen(p);
        char *end = eol ? eol : next;
        if (end > p && end[-1] == '\r')
            end--;
        lineno++;
        if (end == p) { /* blank line */
            p = next;
            continue;
        }
        if (memchr(p, '"', (size_t)(end - p)) != NULL) {
            tp__errf(err, errlen,
                     "%s:%d: quoted fields are not supported (AlgoPerf's files have none)", path,
                     lineno);
            rc = TP_EINVAL;
            goto error;
        }
        long col = 0;
        const char *c = p;
        double t = NAN, m = NAN;
        for (;;) {
            const char *ce = memchr(c, ',', (size_t)(end - c));
            if (ce == NULL)
                ce = end;
            if (!have_header) {
                size_t cl = (size_t)(ce - c);
                if (cl == 5 && memcmp(c, "score", 5) == 0 && col_score < 0)
                    col_score = col;
                else if (cl == 27 && memcmp(c, "accumulated_submission_time", 27) == 0 &&
                         col_acc < 0)
                    col_acc = col;
                if (cl == strlen(metric_col) && memcmp(c, metric_col, cl) == 0 && col_metric < 0)
                    col_metric = col;
            } else if (col == col_time || col == col_metric) {
                double v;
                if (parse_cell(c, ce, &v) < 0) {
                    tp__errf(err, errlen, "%s:%d: column %ld (%s): \"%.*s\" is not a number", path,
                             lineno, col + 1,
                             col == col_time
                                 ? (col_time == col_score ? "score" : "accumulated_submission_time")
                                 : metric_col,
                             (int)(ce - c), c);
                    rc = TP_EINVAL;
                    goto error;
                }
                if (col == col_time)
                    t = v;
                if (col == col_metric)
                    m = v;
            }
            col++;
            if (ce == end)
                break;
            c = ce + 1;
        }
        if (!have_header) {
            have_header = 1;
            ncols = col;
            col_time = col_score >= 0 ? col_score : col_acc;
            if (col_time < 0 || col_metric < 0) {
                tp__errf(err, errlen,
                         "%s:%d: the header has no %s column (needs \"score\" or "
                         "\"accumulated_submission_time\", and \"%s\" for this workload)",
                         path, lineno, col_time < 0 ? "time" : metric_col, metric_col);
                rc = TP_EINVAL;
                goto error;
            }
        } else {
            if (col != ncols) {
                tp__errf(err, errlen, "%s:%d: %ld fields where the header has %ld", path, lineno,
                         col, ncols);
                rc = TP_EINVAL;
                goto error;
            }
            if (isinf(*time) && eval_counts(t, m, w->maximize, w->target, budget))
                *time = t;
        }
        p = next;
    }
    if (!have_header) {
        tp__errf(err, errlen, "%s: empty file (no header line)", path);
        rc = TP_EINVAL;
        goto error;
    }

error:
    free(text);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Import */

static int has_study_dirs(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return 0;
    int found = 0;
    struct dirent *e;
    char p[PATH_MAX];
    while (!found && (e = readdir(d)) != NULL)
        if (numbered(e->d_name, "study_") >= 0 &&
            (size_t)snprintf(p, sizeof p, "%s/%s", path, e->d_name) < sizeof p && is_dir(p))
            found = 1;
    closedir(d);
    return found;
}

typedef struct import_ctx {
    const targets *tg;
    double budget_factor;
    trial_set *set;
    char *err;
    size_t errlen;
} import_ctx;

/* <dir>/study_<k>/<workload>/trial_<i>/eval_measurements.csv of one submission. */
static int import_submission(import_ctx *x, const char *dir, const char *submission)
{
    char **studies = NULL, **wls = NULL, **trials = NULL;
    size_t ns = 0, nw = 0, nt = 0;
    int rc = list_dirs(dir, &studies, &ns, x->err, x->errlen);
    if (rc < 0)
        return rc;
    char sp[PATH_MAX], wp[PATH_MAX], tp[PATH_MAX];
    for (size_t s = 0; s < ns; s++) {
        long study = numbered(studies[s], "study_");
        if (study < 0)
            continue;
        snprintf(sp, sizeof sp, "%s/%s", dir, studies[s]);
        if ((rc = list_dirs(sp, &wls, &nw, x->err, x->errlen)) < 0)
            goto error;
        for (size_t w = 0; w < nw; w++) {
            /* Strip AlgoPerf's framework suffix. */
            char name[256];
            snprintf(name, sizeof name, "%s", wls[w]);
            size_t ln = strlen(name);
            if (ln > 4 && strcmp(name + ln - 4, "_jax") == 0)
                name[ln - 4] = '\0';
            else if (ln > 8 && strcmp(name + ln - 8, "_pytorch") == 0)
                name[ln - 8] = '\0';
            const wl_target *tgt = targets_find(x->tg, name);
            snprintf(wp, sizeof wp, "%s/%s", sp, wls[w]);
            if (tgt == NULL) {
                tp__errf(x->err, x->errlen,
                         "%s: unknown workload %s: give a targets file that lists it "
                         "(trainperf export writes one)",
                         wp, name);
                rc = TP_ENOENT;
                goto error;
            }
            if ((rc = list_dirs(wp, &trials, &nt, x->err, x->errlen)) < 0)
                goto error;
            int scored =
                tgt->variant[0] == '\0' || in_list(x->tg->heldout, x->tg->num_heldout, tgt->name);
            for (size_t t = 0; t < nt; t++) {
                long i = numbered(trials[t], "trial_");
                if (i < 0)
                    continue;
                snprintf(tp, sizeof tp, "%s/%s/" TP_ALGOPERF_CSV, wp, trials[t]);
                if (!scored || access(tp, F_OK) != 0) {
                    x->set->t->num_skipped++;
                    continue;
                }
                double time;
                rc = csv_time_to_target(tp, tgt, tgt->budget * x->budget_factor, &time, x->err,
                                        x->errlen);
                if (rc < 0)
                    goto error;
                /* trial_<i> counts from 1; the reference's own test data has a trial_0. */
                if ((rc = set_add(x->set, submission, tgt->base, tgt->variant, (int)study,
                                  i > 0 ? (int)i - 1 : 0, time)) < 0) {
                    tp__errf(x->err, x->errlen, "%s: out of memory", tp);
                    goto error;
                }
            }
            free_strings(trials, nt);
            trials = NULL;
            nt = 0;
        }
        free_strings(wls, nw);
        wls = NULL;
        nw = 0;
    }

error:
    free_strings(trials, nt);
    free_strings(wls, nw);
    free_strings(studies, ns);
    return rc;
}

int tp_algoperf_import(const char *dir, const tp_algoperf_options *o, tp_algoperf_trials **out,
                       char *err, size_t errlen)
{
    assert(dir != NULL && out != NULL);
    *out = NULL;
    tp_algoperf_options opt = {0};
    if (o != NULL)
        opt = *o;
    targets tg = {0};
    trial_set set = {0};
    char **subs = NULL, **teams = NULL, **list = NULL;
    size_t nsub = 0, nteam = 0, nlist = 0;
    int rc = TP_OK;

    if (opt.ruleset != NULL && strcmp(opt.ruleset, "self") != 0 &&
        strcmp(opt.ruleset, "external") != 0) {
        tp__errf(err, errlen, "import: ruleset must be \"external\" or \"self\", not \"%s\"",
                 opt.ruleset);
        return TP_EINVAL;
    }
    if (!is_dir(dir)) {
        tp__errf(err, errlen, "%s: not a directory", dir);
        return TP_ENOENT;
    }
    if (opt.targets_path != NULL)
        rc = targets_load(&tg, opt.targets_path, err, errlen);
    else if ((rc = targets_builtin(&tg)) < 0)
        tp__errf(err, errlen, "import: out of memory");
    if (rc < 0)
        goto error;
    if (opt.heldout != NULL) {
        if (split_list(opt.heldout, &list, &nlist) < 0)
            goto nomem;
        for (size_t i = 0; i < nlist; i++) {
            const wl_target *w = targets_find(&tg, list[i]);
            if (w == NULL || w->variant[0] == '\0') {
                tp__errf(err, errlen, "import: held-out %s is not a variant workload of the %s",
                         list[i], opt.targets_path ? opt.targets_path : "built-in targets");
                rc = TP_EINVAL;
                goto error;
            }
        }
        free_strings(tg.heldout, tg.num_heldout);
        tg.heldout = list;
        tg.num_heldout = nlist;
        list = NULL;
        nlist = 0;
    }

    if ((set.t = calloc(1, sizeof *set.t)) == NULL)
        goto nomem;
    set.t->self_tuning = opt.ruleset != NULL && strcmp(opt.ruleset, "self") == 0;
    import_ctx x = {&tg, set.t->self_tuning ? TP_ALGOPERF_SELF_BUDGET : 1.0, &set, err, errlen};

    char p[PATH_MAX], q[PATH_MAX];
    size_t found = 0;
    if (has_study_dirs(dir)) {
        /* dir is a submission: name it after its last path component. */
        snprintf(p, sizeof p, "%s", dir);
        size_t lp = strlen(p);
        while (lp > 1 && p[lp - 1] == '/')
            p[--lp] = '\0';
        const char *base = strrchr(p, '/') ? strrchr(p, '/') + 1 : p;
        if ((rc = import_submission(&x, dir, base)) < 0)
            goto error;
        found++;
    } else {
        if ((rc = list_dirs(dir, &subs, &nsub, err, errlen)) < 0)
            goto error;
        for (size_t i = 0; i < nsub; i++) {
            snprintf(p, sizeof p, "%s/%s", dir, subs[i]);
            if (has_study_dirs(p)) {
                if ((rc = import_submission(&x, p, subs[i])) < 0)
                    goto error;
                found++;
                continue;
            }
            /* v0.5 scoring: <team>/<submission>/study_<k>. */
            if ((rc = list_dirs(p, &teams, &nteam, err, errlen)) < 0)
                goto error;
            for (size_t j = 0; j < nteam; j++) {
                snprintf(q, sizeof q, "%s/%s", p, teams[j]);
                if (!has_study_dirs(q))
                    continue;
                if ((rc = import_submission(&x, q, teams[j])) < 0)
                    goto error;
                found++;
            }
            free_strings(teams, nteam);
            teams = NULL;
            nteam = 0;
        }
    }
    if (found == 0) {
        tp__errf(err, errlen,
                 "%s: no AlgoPerf trials: expected "
                 "<submission>/study_<k>/<workload>/trial_<i>/" TP_ALGOPERF_CSV " below it",
                 dir);
        rc = TP_ENOENT;
        goto error;
    }
    targets_clear(&tg);
    free_strings(subs, nsub);
    *out = set.t;
    return TP_OK;

nomem:
    tp__errf(err, errlen, "import: out of memory");
    rc = TP_ENOMEM;
error:
    targets_clear(&tg);
    free_strings(subs, nsub);
    free_strings(teams, nteam);
    free_strings(list, nlist);
    tp_algoperf_trials_free(set.t);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Collect from the results store */

typedef struct sub_ruleset {
    char *submission;
    char *ruleset;
} sub_ruleset;

typedef struct collect_ctx {
    tp_results *db;
    const tp_algoperf_options *o;
    trial_set *set;
    char **heldout; /* NULL: every variant */
    size_t num_heldout;
    sub_ruleset *seen;
    size_t num_seen, cap_seen;
    /* for the time of the current trial */
    const tp_trial_summary *cur;
    double time;
    char *err;
    size_t errlen;
} collect_ctx;

static int collect_eval(const tp_eval_row *e, void *ud)
{
    collect_ctx *c = ud;
    double budget = isnan(c->cur->budget) ? INFINITY : c->cur->budget;
    if (isinf(c->time) && eval_counts(e->score, e->validation_metric, c->cur->maximize,
                                      c->cur->validation_target, budget))
        c->time = e->score;
    return 0;
}

static int note_ruleset(collect_ctx *c, const char *submission, const char *ruleset)
{
    for (size_t i = 0; i < c->num_seen; i++) {
        if (strcmp(c->seen[i].submission, submission) != 0)
            continue;
        if (strcmp(c->seen[i].ruleset, ruleset) == 0)
            return TP_OK;
        tp__errf(c->err, c->errlen,
                 "%s: submission %s has trials of both rulesets (%s and %s); the rulesets are "
                 "scored separately, so give the sweeps different submission names",
                 tp_results_path(c->db), submission, c->seen[i].ruleset, ruleset);
        return TP_EINVAL;
    }
    if (c->num_seen == c->cap_seen) {
        size_t nc = c->cap_seen ? 2 * c->cap_seen : 8;
        sub_ruleset *nv = realloc(c->seen, nc * sizeof *nv);
        if (nv == NULL)
            return TP_ENOMEM;
        c->seen = nv;
        c->cap_seen = nc;
    }
    sub_ruleset *s = &c->seen[c->num_seen];
    s->submission = strdup(submission);
    s->ruleset = strdup(ruleset);
    if (s->submission == NULL || s->ruleset == NULL) {
        free(s->submission);
        free(s->ruleset);
        return TP_ENOMEM;
    }
    c->num_seen++;
    return TP_OK;
}

static int collect_trial(const tp_trial_summary *t, void *ud)
{
    collect_ctx *c = ud;
    if (t->ruleset[0] == '\0') {
        c->set->t->num_skipped++;
        return 0;
    }
    if (strcmp(t->ruleset, "external") != 0 && strcmp(t->ruleset, "self") != 0) {
        tp__errf(c->err, c->errlen, "%s: trial %lld has an unknown ruleset \"%s\"",
                 tp_results_path(c->db), (long long)t->id, t->ruleset);
        return TP_EDB;
    }
    int rc = note_ruleset(c, t->submission, t->ruleset);
    if (rc == TP_ENOMEM)
        tp__errf(c->err, c->errlen, "collect: out of memory");
    if (rc < 0)
        return rc;
    if (c->o->ruleset != NULL && strcmp(c->o->ruleset, t->ruleset) != 0) {
        c->set->t->num_skipped++;
        return 0;
    }
    if (t->variant[0] != '\0' && c->heldout != NULL) {
        char *name = join_name(t->workload, t->variant);
        if (name == NULL) {
            tp__errf(c->err, c->errlen, "collect: out of memory");
            return TP_ENOMEM;
        }
        int keep = in_list(c->heldout, c->num_heldout, name);
        free(name);
        if (!keep) {
            c->set->t->num_skipped++;
            return 0;
        }
    }
    c->cur = t;
    c->time = INFINITY;
    if ((rc = tp_results_foreach_eval(c->db, t->id, collect_eval, c, c->err, c->errlen)) < 0)
        return rc;
    /* A failed trial did not reach the target, whatever its evals say before it failed. */
    if (t->status == TP_TRIAL_FAILED)
        c->time = INFINITY;
    if (strcmp(t->ruleset, "self") == 0)
        c->set->t->self_tuning = 1;
    if (set_add(c->set, t->submission, t->workload, t->variant, t->study, t->trial_index, c->time) <
        0) {
        tp__errf(c->err, c->errlen, "collect: out of memory");
        return TP_ENOMEM;
    }
    return 0;
}

int tp_algoperf_collect(tp_results *db, const tp_algoperf_options *o, tp_algoperf_trials **out,
                        char *err, size_t errlen)
{
    assert(db != NULL && out != NULL);
    *out = NULL;
    tp_algoperf_options opt = {0};
    if (o != NULL)
        opt = *o;
    trial_set set = {0};
    collect_ctx c = {.db = db, .o = &opt, .set = &set, .err = err, .errlen = errlen};
    int rc = TP_OK;

    if (opt.ruleset != NULL && strcmp(opt.ruleset, "self") != 0 &&
        strcmp(opt.ruleset, "external") != 0) {
        tp__errf(err, errlen, "collect: ruleset must be \"external\" or \"self\", not \"%s\"",
                 opt.ruleset);
        return TP_EINVAL;
    }
    if ((set.t = calloc(1, sizeof *set.t)) == NULL)
        goto nomem;
    if (opt.heldout != NULL && split_list(opt.heldout, &c.heldout, &c.num_heldout) < 0)
        goto nomem;
    if ((rc = tp_results_foreach_trial(db, NULL, 0, collect_trial, &c, err, errlen)) < 0)
        goto error;

    if (opt.ruleset == NULL) {
        const char *first = c.num_seen > 0 ? c.seen[0].ruleset : NULL;
        for (size_t i = 1; i < c.num_seen; i++) {
            if (strcmp(c.seen[i].ruleset, first) != 0) {
                tp__errf(err, errlen,
                         "%s: the database holds submissions of both rulesets (%s: %s, %s: %s); "
                         "score one ruleset at a time",
                         tp_results_path(db), c.seen[0].submission, first, c.seen[i].submission,
                         c.seen[i].ruleset);
                rc = TP_EINVAL;
                goto error;
            }
        }
    }
    if (c.heldout == NULL) {
        /* Every variant is scored, so there may be one per workload. */
        tp_algoperf_trials *t = set.t;
        for (size_t i = 0; i < t->num_trials; i++) {
            if (t->trials[i].variant[0] == '\0')
                continue;
            for (size_t j = 0; j < i; j++) {
                if (t->trials[j].variant[0] == '\0' ||
                    strcmp(t->trials[i].workload, t->trials[j].workload) != 0 ||
                    strcmp(t->trials[i].variant, t->trials[j].variant) == 0)
                    continue;
                tp__errf(err, errlen,
                         "%s: workload %s has trials of variants %s and %s; choose the held-out "
                         "one to score (heldout, e.g. %s_%s)",
                         tp_results_path(db), t->trials[i].workload, t->trials[j].variant,
                         t->trials[i].variant, t->trials[i].workload, t->trials[i].variant);
                rc = TP_EINVAL;
                goto error;
            }
        }
    }
    for (size_t i = 0; i < c.num_seen; i++) {
        free(c.seen[i].submission);
        free(c.seen[i].ruleset);
    }
    free(c.seen);
    free_strings(c.heldout, c.num_heldout);
    *out = set.t;
    return TP_OK;

nomem:
    tp__errf(err, errlen, "collect: out of memory");
    rc = TP_ENOMEM;
error:
    for (size_t i = 0; i < c.num_seen; i++) {
        free(c.seen[i].submission);
        free(c.seen[i].ruleset);
    }
    free(c.seen);
    free_strings(c.heldout, c.num_heldout);
    tp_algoperf_trials_free(set.t);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Export */

typedef struct export_item {
    int64_t id;
    char *dir;  /* <submission>/study_<k>/<workload>[_<variant>]/trial_<i> */
    char *name; /* <workload>[_<variant>] */
    char *base;
    char *metric;
    int maximize;
    int self_tuning;
    double target;
    double budget;
} export_item;

typedef struct export_ctx {
    tp_results *db;
    export_item *items;
    size_t n, cap;
    size_t num_oneoff;
    char *err;
    size_t errlen;
} export_ctx;

static void export_items_free(export_item *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].dir);
        free(v[i].name);
        free(v[i].base);
        free(v[i].metric);
    }
    free(v);
}

static int export_plan(const tp_trial_summary *t, void *ud)
{
    export_ctx *x = ud;
    if (t->ruleset[0] == '\0') {
        x->num_oneoff++;
        return 0;
    }
    const char *bad = !dir_name_ok(t->submission)                                  ? t->submission
                      : !dir_name_ok(t->workload)                                  ? t->workload
                      : (t->variant[0] != '\0' && strchr(t->variant, '/') != NULL) ? t->variant
                                                                                   : NULL;
    if (bad != NULL) {
        tp__errf(x->err, x->errlen,
                 "%s: trial %lld: \"%s\" cannot name a directory of AlgoPerf's layout",
                 tp_results_path(x->db), (long long)t->id, bad);
        return TP_EINVAL;
    }
    if (t->study < 0 || t->trial_index < 0) {
        tp__errf(x->err, x->errlen, "%s: trial %lld has study %d, trial %d", tp_results_path(x->db),
                 (long long)t->id, t->study, t->trial_index);
        return TP_EINVAL;
    }
    if (x->n == x->cap) {
        size_t nc = x->cap ? 2 * x->cap : 64;
        export_item *nv = realloc(x->items, nc * sizeof *nv);
        if (nv == NULL)
            goto nomem;
        x->items = nv;
        x->cap = nc;
    }
    export_item *e = &x->items[x->n];
    memset(e, 0, sizeof *e);
    e->id = t->id;
    e->maximize = t->maximize;
    e->self_tuning = strcmp(t->ruleset, "self") == 0;
    e->target = t->validation_target;
    e->budget = t->budget;
    e->name = join_name(t->workload, t->variant);
    e->base = strdup(t->workload);
    e->metric = strdup(t->metric);
    if (e->name == NULL || e->base == NULL || e->metric == NULL)
        goto nomem_item;
    size_t len = strlen(t->submission) + strlen(e->name) + 64;
    if ((e->dir = malloc(len)) == NULL)
        goto nomem_item;
    snprintf(e->dir, len, "%s/study_%d/%s/trial_%d", t->submission, t->study, e->name,
             t->trial_index + 1);
    x->n++;
    return 0;

nomem_item:
    free(e->name);
    free(e->base);
    free(e->metric);
    free(e->dir);
nomem:
    tp__errf(x->err, x->errlen, "export: out of memory");
    return TP_ENOMEM;
}

static int cmp_item_dir(const void *a, const void *b)
{
    return strcmp(((const export_item *)a)->dir, ((const export_item *)b)->dir);
}

static int cmp_item_name(const void *a, const void *b)
{
    return strcmp(((const export_item *)a)->name, ((const export_item *)b)->name);
}

/* The columns of eval_measurements.csv, sorted by name as AlgoPerf's logger writes them. */
enum col_src {
    COL_ACC_TIME,
    COL_STEP,
    COL_PREEMPT,
    COL_SCORE,
    COL_TEST_METRIC,
    COL_TEST_LOSS,
    COL_DURATION,
    COL_VAL_METRIC,
    COL_VAL_LOSS
};

typedef struct csv_col {
    char name[160];
    enum col_src src;
} csv_col;

static int cmp_col(const void *a, const void *b)
{
    return strcmp(((const csv_col *)a)->name, ((const csv_col *)b)->name);
}

static size_t csv_columns(const char *metric, csv_col *cols)
{
    size_t n = 0;
    int metric_is_loss = strcmp(metric, "loss") == 0;
    cols[n++] = (csv_col){"accumulated_submission_time", COL_ACC_TIME};
    cols[n++] = (csv_col){"global_step", COL_STEP};
    cols[n++] = (csv_col){"preemption_count", COL_PREEMPT};
    cols[n++] = (csv_col){"score", COL_SCORE};
    cols[n++] = (csv_col){"test/loss", metric_is_loss ? COL_TEST_METRIC : COL_TEST_LOSS};
    cols[n++] = (csv_col){"total_duration", COL_DURATION};
    cols[n++] = (csv_col){"validation/loss", metric_is_loss ? COL_VAL_METRIC : COL_VAL_LOSS};
    if (!metric_is_loss) {
        cols[n].src = COL_TEST_METRIC;
        snprintf(cols[n++].name, sizeof cols[0].name, "test/%s", metric);
        cols[n].src = COL_VAL_METRIC;
        snprintf(cols[n++].name, sizeof cols[0].name, "validation/%s", metric);
    }
    qsort(cols, n, sizeof *cols, cmp_col);
    return n;
}

typedef struct csv_writer {
    FILE *f;
    const csv_col *cols;
    size_t ncols;
} csv_writer;

static int write_eval(const tp_eval_row *e, void *ud)
{
    csv_writer *w = ud;
    char num[64];
    for (size_t i = 0; i < w->ncols; i++) {
        switch (w->cols[i].src) {
        case COL_STEP:
            snprintf(num, sizeof num, "%llu", (unsigned long long)e->global_step);
            break;
        case COL_PREEMPT:
            snprintf(num, sizeof num, "0");
            break;
        case COL_ACC_TIME:
        case COL_SCORE:
            fmt_double(num, sizeof num, e->score);
            break;
        case COL_TEST_METRIC:
            fmt_double(num, sizeof num, e->test_metric);
            break;
        case COL_TEST_LOSS:
            fmt_double(num, sizeof num, e->test_loss);
            break;
        case COL_DURATION:
            fmt_double(num, sizeof num, e->total_duration);
            break;
        case COL_VAL_METRIC:
            fmt_double(num, sizeof num, e->validation_metric);
            break;
        case COL_VAL_LOSS:
            fmt_double(num, sizeof num, e->validation_loss);
            break;
        }
        fputs(num, w->f);
        fputc(i + 1 < w->ncols ? ',' : '\n', w->f);
    }
    return 0;
}

static int export_trial(tp_results *db, const char *out_dir, const export_item *it, char *err,
                        size_t errlen)
{
    char dir[PATH_MAX], path[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s/%s", out_dir, it->dir) >= sizeof dir ||
        (size_t)snprintf(path, sizeof path, "%s/" TP_ALGOPERF_CSV, dir) >= sizeof path) {
        tp__errf(err, errlen, "%s/%s: path too long", out_dir, it->dir);
        return TP_EINVAL;
    }
    int rc = make_dirs(dir, err, errlen);
    if (rc < 0)
        return rc;
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        tp__errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return TP_EIO;
    }
    csv_col cols[9];
    size_t n = csv_columns(it->metric, cols);
    for (size_t i = 0; i < n; i++) {
        fputs(cols[i].name, f);
        fputc(i + 1 < n ? ',' : '\n', f);
    }
    csv_writer w = {f, cols, n};
    rc = tp_results_foreach_eval(db, it->id, write_eval, &w, err, errlen);
    int werr = ferror(f);
    if (fclose(f) != 0 || werr) {
        if (rc >= 0) {
            tp__errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            rc = TP_EIO;
        }
    }
    return rc;
}

static void json_put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* The targets file for the exported workloads (items sorted by name). */
static int export_targets(const char *path, const export_item *v, size_t n, char *err,
                          size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        tp__errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return TP_EIO;
    }
    char num[64];
    fputs("{\n  \"_comment\": \"trainperf export: targets of the exported workloads in the format "
          "of AlgoPerf's scoring/workload_targets.json; step_hint is not kept by trainperf\",\n"
          "  \"benchmark_version\": \"trainperf\",\n  \"base_workloads\": [",
          f);
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        int seen = 0; /* every base once, also one with only variant trials */
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(v[j].base, v[i].base) == 0;
        if (seen)
            continue;
        fputs(first ? "\n    " : ",\n    ", f);
        json_put_string(f, v[i].base);
        first = 0;
    }
    fputs(first ? "],\n  \"held_out_workloads\": [" : "\n  ],\n  \"held_out_workloads\": [", f);
    first = 1;
    for (size_t i = 0; i < n; i++) {
        if ((i > 0 && strcmp(v[i].name, v[i - 1].name) == 0) || !strcmp(v[i].name, v[i].base))
            continue;
        fputs(first ? "\n    " : ",\n    ", f);
        json_put_string(f, v[i].name);
        first = 0;
    }
    fputs(first ? "],\n  \"workloads\": {" : "\n  ],\n  \"workloads\": {", f);
    first = 1;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(v[i].name, v[i - 1].name) == 0)
            continue;
        fputs(first ? "\n    " : ",\n    ", f);
        first = 0;
        json_put_string(f, v[i].name);
        fputs(": {\"target_metric_name\": ", f);
        json_put_string(f, v[i].metric);
        fprintf(f, ", \"target_metric_goal\": \"%s\", \"validation_target_value\": ",
                v[i].maximize ? "maximize" : "minimize");
        fmt_double(num, sizeof num, v[i].target);
        fprintf(f, "%s, \"step_hint\": 0", isfinite(v[i].target) ? num : "null");
        if (isfinite(v[i].budget) && v[i].budget > 0) {
            fmt_double(num, sizeof num,
                       v[i].self_tuning ? v[i].budget / TP_ALGOPERF_SELF_BUDGET : v[i].budget);
            fprintf(f, ", \"max_allowed_runtime_sec\": %s", num);
        }
        fputc('}', f);
    }
    fputs(first ? "}\n}\n" : "\n  }\n}\n", f);
    int werr = ferror(f);
    if (fclose(f) != 0 || werr) {
        tp__errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return TP_EIO;
    }
    return TP_OK;
}

static int same_double(double a, double b)
{
    return a == b || (isnan(a) && isnan(b));
}

int tp_algoperf_export(tp_results *db, const char *out_dir, const char *targets_path,
                       size_t *num_trials, char *err, size_t errlen)
{
    assert(db != NULL && out_dir != NULL);
    if (num_trials != NULL)
        *num_trials = 0;
    export_ctx x = {.db = db, .err = err, .errlen = errlen};
    int rc = tp_results_foreach_trial(db, NULL, 0, export_plan, &x, err, errlen);
    if (rc < 0)
        goto error;
    if (x.n == 0) {
        tp__errf(err, errlen,
                 "%s: no sweep trials to export (%zu one-off run%s, which have no place in a "
                 "study)",
                 tp_results_path(db), x.num_oneoff, x.num_oneoff == 1 ? "" : "s");
        rc = TP_ENOENT;
        goto error;
    }

    /* No two trials in one directory; one metric, direction, target and budget per workload. */
    qsort(x.items, x.n, sizeof *x.items, cmp_item_dir);
    for (size_t i = 1; i < x.n; i++) {
        if (strcmp(x.items[i].dir, x.items[i - 1].dir) == 0) {
            tp__errf(err, errlen, "%s: trials %lld and %lld would both be exported to %s",
                     tp_results_path(db), (long long)x.items[i - 1].id, (long long)x.items[i].id,
                     x.items[i].dir);
            rc = TP_EINVAL;
            goto error;
        }
    }
    qsort(x.items, x.n, sizeof *x.items, cmp_item_name);
    for (size_t i = 1; i < x.n; i++) {
        const export_item *a = &x.items[i - 1], *b = &x.items[i];
        if (strcmp(a->name, b->name) != 0)
            continue;
        double ba = a->self_tuning ? a->budget / TP_ALGOPERF_SELF_BUDGET : a->budget;
        double bb = b->self_tuning ? b->budget / TP_ALGOPERF_SELF_BUDGET : b->budget;
        if (targets_path != NULL &&
            (strcmp(a->metric, b->metric) != 0 || a->maximize != b->maximize ||
             !same_double(a->target, b->target) || !same_double(ba, bb))) {
            tp__errf(err, errlen,
                     "%s: trials %lld and %lld of %s differ in metric, direction, validation "
                     "target or budget (%s %g %g s vs %s %g %g s); a targets file holds one",
                     tp_results_path(db), (long long)a->id, (long long)b->id, a->name, a->metric,
                     a->target, ba, b->metric, b->target, bb);
            rc = TP_EINVAL;
            goto error;
        }
    }

    if ((rc = make_dirs(out_dir, err, errlen)) < 0)
        goto error;
    for (size_t i = 0; i < x.n; i++)
        if ((rc = export_trial(db, out_dir, &x.items[i], err, errlen)) < 0)
            goto error;
    if (targets_path != NULL && (rc = export_targets(targets_path, x.items, x.n, err, errlen)) < 0)
        goto error;
    if (num_trials != NULL)
        *num_trials = x.n;

error:
    export_items_free(x.items, x.n);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Report */

static void fmt_cell(char *out, size_t len, double x, const char *fmt)
{
    if (isnan(x))
        snprintf(out, len, "-");
    else if (isinf(x))
        snprintf(out, len, "inf");
    else
        snprintf(out, len, fmt, x);
}

static int cmp_rank(const void *a, const void *b, const double *score)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    if (score[x] != score[y])
        return score[x] > score[y] ? -1 : 1;
    return (x > y) - (x < y);
}

int tp_algoperf_print_scores(FILE *f, const tp_score_table *t, const tp_score_options *o)
{
    assert(f != NULL && t != NULL);
    tp_score_options opt = {.self_tuning = 0, .heldout = 1, .max_ratio = 4.0};
    if (o != NULL)
        opt = *o;
    double m = opt.max_ratio > 1.0 ? opt.max_ratio : 4.0;
    size_t ns = t->num_submissions, nw = t->num_workloads;

    int any_variant = 0, wlw = 8, vw = 7;
    for (size_t w = 0; w < nw; w++) {
        if ((int)strlen(t->workloads[w]) > wlw)
            wlw = (int)strlen(t->workloads[w]);
        if (t->variant_name[w] != NULL) {
            any_variant = 1;
            if ((int)strlen(t->variant_name[w]) > vw)
                vw = (int)strlen(t->variant_name[w]);
        }
    }
    fprintf(f, "AlgoPerf scores: %s tuning, %zu submission%s, %zu workload%s, max ratio %g\n",
            opt.self_tuning ? "self" : "external", ns, ns == 1 ? "" : "s", nw, nw == 1 ? "" : "s",
            m);
    if (any_variant) {
        fputs("held-out variants:", f);
        for (size_t w = 0; w < nw; w++)
            if (t->variant_name[w] != NULL)
                fprintf(f, " %s_%s", t->workloads[w], t->variant_name[w]);
        fputs(" (a base counts only where its variant reached the target within the cut)\n", f);
    }

    char a[32], b[32], c[32], why[64];
    for (size_t s = 0; s < ns; s++) {
        fprintf(f, "\n%s  score %.4f\n", t->submissions[s], t->score[s]);
        fprintf(f, "  %-*s %12s %8s", wlw, "workload", "time s", "ratio");
        if (any_variant)
            fprintf(f, "  %-*s %12s", vw, "variant", "variant s");
        fputs("  note\n", f); /* why a time was cut; empty when it counts */
        for (size_t w = 0; w < nw; w++) {
            size_t i = s * nw + w;
            double raw = t->raw_time[i], best_raw = INFINITY;
            for (size_t k = 0; k < ns; k++)
                if (t->raw_time[k * nw + w] < best_raw)
                    best_raw = t->raw_time[k * nw + w];
            why[0] = '\0';
            if (isinf(raw))
                snprintf(why, sizeof why, "not reached");
            else if (raw > m * best_raw)
                snprintf(why, sizeof why, "over %gx the fastest", m);
            else if (isinf(t->time[i]) && t->variant_name[w] != NULL) {
                double v = t->variant_time[i];
                snprintf(why, sizeof why, "%s",
                         isnan(v)   ? "no variant trials"
                         : isinf(v) ? "variant not reached"
                                    : "variant over the cut");
            } else if (isinf(t->ratio[i]))
                snprintf(why, sizeof why, "over %gx the fastest", m);
            fmt_cell(a, sizeof a, raw, "%.2f");
            fmt_cell(b, sizeof b, t->ratio[i], "%.3f");
            fprintf(f, "  %-*s %12s %8s", wlw, t->workloads[w], a, b);
            if (any_variant) {
                fmt_cell(c, sizeof c, t->variant_name[w] ? t->variant_time[i] : NAN, "%.2f");
                fprintf(f, "  %-*s %12s", vw, t->variant_name[w] ? t->variant_name[w] : "-", c);
            }
            fprintf(f, "%s%s\n", why[0] ? "  " : "", why);
        }
    }

    if (ns > 0) {
        size_t *order = malloc(ns * sizeof *order);
        if (order == NULL)
            return TP_ENOMEM;
        for (size_t s = 0; s < ns; s++)
            order[s] = s;
        /* insertion sort: ranks best first, ties by name */
        for (size_t i = 1; i < ns; i++)
            for (size_t j = i; j > 0 && cmp_rank(&order[j], &order[j - 1], t->score) < 0; j--) {
                size_t tmp = order[j];
                order[j] = order[j - 1];
                order[j - 1] = tmp;
            }
        int sw = 10;
        for (size_t s = 0; s < ns; s++)
            if ((int)strlen(t->submissions[s]) > sw)
                sw = (int)strlen(t->submissions[s]);
        fprintf(f,
                "\nbenchmark score (1/%g of the integral of the performance profile from 1 "
                "to %g)\n",
                m - 1.0, m);
        for (size_t i = 0; i < ns; i++)
            fprintf(f, "  %2zu  %-*s %.4f\n", i + 1, sw, t->submissions[order[i]],
                    t->score[order[i]]);
        free(order);
    }
    fflush(f);
    return ferror(f) ? TP_EIO : TP_OK;
}
