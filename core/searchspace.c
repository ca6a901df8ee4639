/*
 * searchspace.c - a submission's hyperparameter search space (AlgoPerf's
 * tuning_search_space.json, or its libconfig twin) and the quasi-random search over it: the
 * scrambled, shifted Halton sequence of the reference (algoperf/halton.py, after arXiv
 * 1706.03200) and its generate_search mapping; see searchspace.h and BENCHMARK.md §5.
 *
 * The quasi-random search, as the reference does it:
 *   - bases: for d dimensions, list the odd primes below 1000 k for k = 1, 2, ... until there
 *     are at least d + 1 of them; drop the largest and take the d just below it, in ascending
 *     order; dimension j (file order) gets the j-th (d = 3: 977, 983, 991);
 *   - per base p: an MT19937 seeded with p as numpy's RandomState(p) shuffles [1, ..., p-1];
 *     the digit permutation is [0] followed by it; then the same generator draws the shift
 *     s = random_sample();
 *   - point i = 1 .. n + 100 in that dimension: with i's base-p digits d_0 (lowest), d_1, ...,
 *     num = 0 then num += perm[d_k] / p^(k+1) for k = 0, 1, ... (lowest digit first), and the
 *     coordinate is fmod(num + s, 1); the first 100 points are dropped;
 *   - the n rows are shuffled with numpy's global RandomState (numpy.random.shuffle);
 *   - generate_search maps each row onto the dimensions in file order: log scaling
 *     min * exp(u * log(max / min)), linear u * (max - min) + min, feasible points
 *     points[floor(u * len)].
 * The same IEEE operations in the same order give bit-identical coordinates (the build is ISO
 * C, so no multiply-add is fused); exp and log come from the C library, as Python's math does.
 *
 * Row order. The reference never seeds numpy's global state before it shuffles the rows, so its
 * order differs from run to run; only the SET of points is reproducible. What is guaranteed
 * here: the set, and, as a fixed order, exactly the reference's order after
 * numpy.random.seed(TP__HALTON_ROW_SEED = 0) (legacy shuffle: for i = n-1 down to 1, swap row
 * i with row j, j drawn in [0, i] by masked rejection on 32-bit outputs).
 *
 * Files. The reference reads the JSON as it is; here it is read with jansson (keys keep file
 * order, duplicate keys are refused, all numbers read as doubles) and checked more strictly
 * than the reference does:
 *   - names are lowercase letters, digits and '_', starting with a letter (the reference
 *     makes each name a Python identifier; trainperf passes points as --hparams lists);
 *   - a dimension is either {min, max, scaling} or {feasible_points}, nothing else; scaling is
 *     "log" or "linear" (the reference treats any other word as linear); min <= max; min > 0
 *     under log; feasible points and fixed values are finite numbers (the reference accepts
 *     any JSON value);
 *   - an empty space or an empty list of points is an error (the reference fails on both).
 * The list form's points may name different hyperparameters (searchspace.h; the reference
 * would refuse names that differ from the first point's), and asking for more points than the
 * file lists is TP_ERANGE (the reference quietly runs fewer trials).
 *
 * Errors. Every error in a file reads "<file>:<line>: <key path>: <what is wrong and what is
 * expected>" (the form core/config.c uses). Key paths: "learning_rate", "learning_rate.min",
 * "dropout_rate.feasible_points[1]", "[2].learning_rate" (list form), "search space" for the
 * JSON top level; in .cfg files they start at the setting: "search_space.learning_rate.min",
 * "search_space[2].learning_rate". A missing key is reported at the line of the object that
 * should hold it. Syntax errors read "<file>:<line>: syntax error: <parser's words>" (JSON
 * adds " (column <c>)"); non-finite numbers in JSON (1e400) are jansson syntax errors. A file
 * that cannot be read gives "<file>: cannot read: <strerror>" (TP_EIO).
 *
 * Lines in JSON. jansson keeps no positions for values, so a line is found again in the raw
 * text: since the text parsed, it is valid JSON, and a value is reached from the root by the
 * index of each member (objects keep file order) or element along its path; a small scanner
 * skips that many members or elements at each level (strings with their escapes, nested
 * brackets, scalars) counting newlines, and the line is that of the member's key (or of the
 * element). Keys are never compared, so escapes in keys cannot mislead it.
 *
 * Not here: how points are assigned to studies (sweep.c); non-numeric feasible points
 * (strings, booleans), which the reference allows and trainperf's numeric hyperparameters
 * cannot carry; libconfig @include.
 */
#define _POSIX_C_SOURCE 200809L

#include "core/searchspace.h"
#include "core/config.h"
#include "core/error.h"
#include "core/mt19937.h"
#include "core/searchspace_internal.h"

#include <trainperf/trainperf.h>

#include <errno.h>
#include <jansson.h>
#include <libconfig.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------------------------------- */
/* Small helpers */

void tp__ss_format(double v, char *buf, size_t n)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        double back = strtod(buf, NULL);
        if (back == v && signbit(back) == signbit(v))
            return;
    }
}

/* Lowercase letters, digits and '_', starting with a letter. */
static int valid_name(const char *s)
{
    if (!(*s >= 'a' && *s <= 'z'))
        return 0;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Levenshtein distance, for "did you mean" on unknown keys (keys up to 31 characters). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 31 || lb > 31)
        return SIZE_MAX;
    size_t prev[32], cur[32];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

/* ---------------------------------------------------------------------------------------- */
/* The scrambled, shifted Halton sequence */

enum { HALTON_SKIP = 100 };

/* The bases for d dimensions (see the file comment); primes[d] is malloc'd by the caller. */
static int halton_primes(size_t d, uint32_t *primes)
{
    for (size_t k = 1;; k++) {
        if (k > SIZE_MAX / 1000)
            return TP_ERANGE;
        size_t limit = 1000 * k; /* odd primes below limit */
        unsigned char *composite = calloc(limit, 1);
        if (composite == NULL)
            return TP_ENOMEM;
        size_t count = 0;
        for (size_t i = 3; i < limit; i += 2) {
            if (composite[i])
                continue;
            count++;
            for (size_t m = i * i; m < limit; m += 2 * i)
                composite[m] = 1;
        }
        if (count >= d + 1) {
            /* The odd primes in ascending order are indexed 0 .. count-1; take count-d-1 ..
             * count-2. */
            size_t idx = 0, got = 0;
            for (size_t i = 3; i < limit && got < d; i += 2) {
                if (composite[i])
                    continue;
                if (idx >= count - d - 1)
                    primes[got++] = (uint32_t)i;
                idx++;
            }
            free(composite);
            return TP_OK;
        }
        free(composite);
    }
}

/* Column `col` (points skip+1 .. skip+n of base p), into col[n]. perm holds p entries. */
static void halton_column(uint32_t p, size_t n, uint32_t *perm, double *col)
{
    tp__mt19937 rng;
    tp__mt19937_seed(&rng, p);
    perm[0] = 0;
    for (uint32_t k = 1; k < p; k++)
        perm[k] = k;
    tp__mt19937_shuffle_u32(&rng, perm + 1, (size_t)p - 1);
    double shift = tp__mt19937_double(&rng);

    for (size_t r = 0; r < n; r++) {
        uint64_t i = (uint64_t)(r + HALTON_SKIP + 1);
        uint64_t denom = p; /* stays below 2^53 while used: i < 2^32 + 101 */
        double num = 0.0;
        while (i != 0) {
            num += (double)perm[i % p] / (double)denom;
            denom *= p;
            i /= p;
        }
        col[r] = fmod(num + shift, 1.0);
    }
}

int tp__halton_points_ordered(size_t dims, size_t n, int shuffle_rows, uint32_t row_seed,
                              double *out, char *err, size_t errlen)
{
    uint32_t *primes = NULL, *perm = NULL, *order = NULL;
    double *col = NULL;
    int rc = TP_OK;

    if (dims == 0 || (out == NULL && n > 0)) {
        tp__errf(err, errlen, "halton: %s",
                 dims == 0 ? "dims must be >= 1" : "out is NULL (it must hold n * dims doubles)");
        return TP_EINVAL;
    }
    if (n > (size_t)UINT32_MAX - HALTON_SKIP - 1 ||
        (n > 0 && dims > SIZE_MAX / 2 / sizeof(double) / n)) {
        tp__errf(err, errlen, "halton: %zu points of %zu dimensions is too many", n, dims);
        return TP_ERANGE;
    }
    if (n == 0)
        return TP_OK;

    primes = malloc(dims * sizeof *primes);
    col = malloc(n * sizeof *col);
    order = malloc(n * sizeof *order);
    if (primes == NULL || col == NULL || order == NULL) {
        rc = TP_ENOMEM;
        goto error;
    }
    if ((rc = halton_primes(dims, primes)) != TP_OK)
        goto error;
    perm = malloc((size_t)primes[dims - 1] * sizeof *perm); /* the largest base */
    if (perm == NULL) {
        rc = TP_ENOMEM;
        goto error;
    }

    /* Row r of the result is row order[r] of the sequence. */
    for (size_t r = 0; r < n; r++)
        order[r] = (uint32_t)r;
    if (shuffle_rows) {
        tp__mt19937 rows;
        tp__mt19937_seed(&rows, row_seed);
        tp__mt19937_shuffle_u32(&rows, order, n);
    }

    for (size_t d = 0; d < dims; d++) {
        halton_column(primes[d], n, perm, col);
        for (size_t r = 0; r < n; r++)
            out[r * dims + d] = col[order[r]];
    }

    free(primes);
    free(perm);
    free(order);
    free(col);
    return TP_OK;

error:
    tp__errf(err, errlen, "halton: %s for %zu points of %zu dimensions",
             rc == TP_ENOMEM ? "out of memory" : "too many dimensions", n, dims);
    free(primes);
    free(perm);
    free(order);
    free(col);
    return rc;
}

int tp_halton_points(size_t dims, size_t n, double *out, char *err, size_t errlen)
{
    return tp__halton_points_ordered(dims, n, 1, TP__HALTON_ROW_SEED, out, err, errlen);
}

double tp__ss_value(const tp_ss_dim *dim, double u)
{
    switch (dim->kind) {
    case TP_SS_LOG:
        return dim->min * exp(u * log(dim->max / dim->min));
    case TP_SS_LINEAR:
        return u * (dim->max - dim->min) + dim->min;
    case TP_SS_FEASIBLE: {
        /* u < 1 keeps the index below num_points; the clamps only guard bad input. */
        double k = floor(u * (double)dim->num_points);
        size_t i = k > 0 ? (size_t)k : 0;
        if (i >= dim->num_points)
            i = dim->num_points - 1;
        return dim->points[i];
    }
    }
    return NAN;
}

/* ---------------------------------------------------------------------------------------- */
/* A view of one value in either file format */

typedef enum node_type {
    NODE_NUMBER,
    NODE_STRING,
    NODE_BOOL,
    NODE_NULL,
    NODE_OBJECT, /* JSON object, libconfig group */
    NODE_ARRAY,  /* JSON array, libconfig array (scalars) */
    NODE_LIST    /* libconfig list (anything) */
} node_type;

enum { NODE_MAX_DEPTH = 8 };

typedef struct node {
    const json_t *j;           /* JSON, or */
    const config_setting_t *c; /* libconfig */
    size_t at[NODE_MAX_DEPTH]; /* JSON: member or element index at each level from the root */
    int depth;
    const char *name; /* key in the parent object; NULL for an element or the root */
    char path[256];   /* "learning_rate.feasible_points[1]"; "" for the JSON root */
} node;

typedef struct loader {
    const char *file; /* as the caller named it */
    int is_cfg;
    const char *text; /* JSON: the raw text, for lines */
    size_t text_len;
    tp_search_space *ss;
    char *err;
    size_t errlen;
} loader;

static node_type node_typeof(const node *n)
{
    if (n->c != NULL) {
        switch (config_setting_type(n->c)) {
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64:
        case CONFIG_TYPE_FLOAT:
            return NODE_NUMBER;
        case CONFIG_TYPE_STRING:
            return NODE_STRING;
        case CONFIG_TYPE_BOOL:
            return NODE_BOOL;
        case CONFIG_TYPE_ARRAY:
            return NODE_ARRAY;
        case CONFIG_TYPE_LIST:
            return NODE_LIST;
        default:
            return NODE_OBJECT;
        }
    }
    switch (json_typeof(n->j)) {
    case JSON_OBJECT:
        return NODE_OBJECT;
    case JSON_ARRAY:
        return NODE_ARRAY;
    case JSON_STRING:
        return NODE_STRING;
    case JSON_INTEGER:
    case JSON_REAL:
        return NODE_NUMBER;
    case JSON_TRUE:
    case JSON_FALSE:
        return NODE_BOOL;
    default:
        return NODE_NULL;
    }
}

static double node_number(const node *n)
{
    if (n->c != NULL)
        return config_setting_type(n->c) == CONFIG_TYPE_FLOAT
                   ? config_setting_get_float(n->c)
                   : (double)config_setting_get_int64(n->c);
    return json_number_value(n->j);
}

static const char *node_string(const node *n)
{
    return n->c != NULL ? config_setting_get_string(n->c) : json_string_value(n->j);
}

static int node_bool(const node *n)
{
    return n->c != NULL ? config_setting_get_bool(n->c) : json_is_true(n->j);
}

static size_t node_length(const node *n)
{
    if (n->c != NULL)
        return (size_t)config_setting_length(n->c);
    return json_is_object(n->j) ? json_object_size(n->j) : json_array_size(n->j);
}

/* Child i of an object, array or list, with its name and key path. */
static void node_child(const node *parent, size_t i, node *child)
{
    memset(child, 0, sizeof *child);
    if (parent->c != NULL) {
        child->c = config_setting_get_elem(parent->c, (unsigned)i);
        child->name = config_setting_name(child->c);
    } else if (json_is_object(parent->j)) {
        void *it = json_object_iter((json_t *)parent->j);
        for (size_t k = 0; k < i && it != NULL; k++)
            it = json_object_iter_next((json_t *)parent->j, it);
        child->j = json_object_iter_value(it);
        child->name = json_object_iter_key(it);
    } else {
        child->j = json_array_get(parent->j, i);
    }
    memcpy(child->at, parent->at, sizeof child->at);
    child->depth = parent->depth;
    if (child->depth < NODE_MAX_DEPTH)
        child->at[child->depth] = i;
    child->depth++;
    if (child->name != NULL)
        snprintf(child->path, sizeof child->path, "%s%s%.80s", parent->path,
                 parent->path[0] != '\0' ? "." : "", child->name);
    else
        snprintf(child->path, sizeof child->path, "%s[%zu]", parent->path, i);
}

/* JSON line finding (see the file comment): a scanner over text that jansson accepted. */
typedef struct jscan {
    const char *p, *end;
    int line;
} jscan;

static void js_space(jscan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) {
        if (*s->p == '\n')
            s->line++;
        s->p++;
    }
}

/* At the opening quote; ends after the closing one. */
static void js_string(jscan *s)
{
    s->p++;
    while (s->p < s->end && *s->p != '"') {
        if (*s->p == '\\' && s->p + 1 < s->end)
            s->p++;
        s->p++;
    }
    if (s->p < s->end)
        s->p++;
}

static void js_value(jscan *s)
{
    js_space(s);
    if (s->p >= s->end)
        return;
    if (*s->p == '"') {
        js_string(s);
        return;
    }
    if (*s->p == '{' || *s->p == '[') {
        int depth = 0;
        do {
            char ch = *s->p;
            if (ch == '"') {
                js_string(s);
                continue;
            }
            if (ch == '{' || ch == '[')
                depth++;
            else if (ch == '}' || ch == ']')
                depth--;
            else if (ch == '\n')
                s->line++;
            s->p++;
        } while (s->p < s->end && depth > 0);
        return;
    }
    /* A number or a literal: up to the next separator. */
    while (s->p < s->end && *s->p != ',' && *s->p != ']' && *s->p != '}' && *s->p != ' ' &&
           *s->p != '\t' && *s->p != '\n' && *s->p != '\r')
        s->p++;
}

static void js_skip_char(jscan *s, char ch)
{
    js_space(s);
    if (s->p < s->end && *s->p == ch)
        s->p++;
}

static int json_line(const loader *L, const node *n)
{
    jscan s = {L->text, L->text + L->text_len, 1};
    js_space(&s);
    int line = s.line;
    for (int d = 0; d < n->depth && d < NODE_MAX_DEPTH; d++) {
        js_space(&s);
        if (s.p >= s.end || (*s.p != '{' && *s.p != '['))
            break;
        int is_object = *s.p == '{';
        s.p++;
        for (size_t k = 0; k < n->at[d]; k++) {
            if (is_object) {
                js_space(&s);
                js_string(&s);
                js_skip_char(&s, ':');
            }
            js_value(&s);
            js_skip_char(&s, ',');
        }
        js_space(&s);
        line = s.line;
        if (is_object) {
            js_string(&s);
            js_skip_char(&s, ':');
        }
    }
    return line;
}

static int node_line(const loader *L, const node *n)
{
    if (n->c != NULL) {
        int line = (int)config_setting_source_line(n->c);
        return line > 0 ? line : 1;
    }
    return json_line(L, n);
}

/* "got ..." text: numbers as shortest exact decimals, strings quoted, aggregates by kind. */
static void node_describe(const loader *L, const node *n, char *buf, size_t len)
{
    switch (node_typeof(n)) {
    case NODE_NUMBER:
        tp__ss_format(node_number(n), buf, len);
        break;
    case NODE_STRING: {
        const char *s = node_string(n);
        snprintf(buf, len, "\"%.60s\"%s", s, strlen(s) > 60 ? "..." : "");
        break;
    }
    case NODE_BOOL:
        snprintf(buf, len, "%s", node_bool(n) ? "true" : "false");
        break;
    case NODE_NULL:
        snprintf(buf, len, "null");
        break;
    case NODE_OBJECT:
        if (L->is_cfg)
            snprintf(buf, len, "%s", node_length(n) == 0 ? "an empty group" : "a group");
        else
            snprintf(buf, len, "%s", node_length(n) == 0 ? "an empty object" : "an object");
        break;
    case NODE_ARRAY:
        snprintf(buf, len, "%s", node_length(n) == 0 ? "an empty array" : "an array");
        break;
    case NODE_LIST:
        snprintf(buf, len, "%s", node_length(n) == 0 ? "an empty list" : "a list");
        break;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Errors */

/* "<file>:<line of n>: <path of n>[.<child>]: <why>". Returns TP_ECONFIG. */
static int fail_at(const loader *L, const node *n, const char *child, const char *fmt, ...)
    TP_PRINTF(4, 5);

static int fail_at(const loader *L, const node *n, const char *child, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    const char *path = n->path[0] != '\0' ? n->path : child != NULL ? "" : "search space";
    tp__errf(L->err, L->errlen, "%s:%d: %s%s%s: %s", L->file, node_line(L, n), path,
             child != NULL && n->path[0] != '\0' ? "." : "", child != NULL ? child : "", why);
    return TP_ECONFIG;
}

static int fail_value(const loader *L, const node *n, const char *expect)
{
    char got[96];
    node_describe(L, n, got, sizeof got);
    return fail_at(L, n, NULL, "must be %s, got %s", expect, got);
}

static int fail_nomem(const loader *L)
{
    tp__errf(L->err, L->errlen, "%s: out of memory reading the search space", L->file);
    return TP_ENOMEM;
}

/* What the two formats expect, in their own syntax. */
typedef struct syntax {
    const char *top, *dim, *point, *points, *number, *scaling;
} syntax;

static const syntax json_syntax = {
    "an object of dimensions {\"<name>\": {...}, ...} or an array of points "
    "[{\"<name>\": <number>, ...}, ...]",
    "an object {\"min\": <number>, \"max\": <number>, \"scaling\": \"log\" or \"linear\"} or "
    "{\"feasible_points\": [<number>, ...]}",
    "a non-empty object of hyperparameter values {\"<name>\": <number>, ...}",
    "a non-empty array of numbers [<number>, ...]",
    "a finite number",
    "\"log\" or \"linear\"",
};

static const syntax cfg_syntax = {
    "a group of dimensions { <name> = {...}; ... } or a list of points "
    "( { <name> = <number>; ... }, ... )",
    "a group { min = <number>; max = <number>; scaling = \"log\" or \"linear\"; } or "
    "{ feasible_points = [<number>, ...]; }",
    "a non-empty group of hyperparameter values { <name> = <number>; ... }",
    "a non-empty array or list of numbers [<number>, ...]",
    "a finite number",
    "\"log\" or \"linear\"",
};

static const syntax *syntax_of(const loader *L)
{
    return L->is_cfg ? &cfg_syntax : &json_syntax;
}

static int check_name(const loader *L, const node *n)
{
    if (valid_name(n->name))
        return TP_OK;
    return fail_at(L, n, NULL,
                   "invalid hyperparameter name; names are lowercase letters, digits and '_', "
                   "starting with a letter");
}

/* A finite number into *out, or the error. */
static int get_number(const loader *L, const node *n, double *out)
{
    if (node_typeof(n) != NODE_NUMBER || !isfinite(node_number(n)))
        return fail_value(L, n, syntax_of(L)->number);
    *out = node_number(n);
    return TP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* The dict form: dimensions */

enum { K_MIN, K_MAX, K_SCALING, K_FEASIBLE, K_COUNT };
static const char *const dim_keys[K_COUNT] = {"min", "max", "scaling", "feasible_points"};

static int fail_unknown_key(const loader *L, const node *n)
{
    char hint[96] = "";
    size_t best = 3;
    for (int k = 0; k < K_COUNT; k++) {
        size_t d = edit_distance(n->name, dim_keys[k]);
        if (d < best) {
            best = d;
            snprintf(hint, sizeof hint, " (did you mean \"%s\"?)", dim_keys[k]);
        }
    }
    return fail_at(L, n, NULL, "unknown key%s; expected one of: min, max, scaling, feasible_points",
                   hint);
}

static int load_feasible(const loader *L, const node *fp, tp_ss_dim *dim)
{
    node_type t = node_typeof(fp);
    size_t count = node_length(fp);
    if ((t != NODE_ARRAY && t != NODE_LIST) || count == 0)
        return fail_value(L, fp, syntax_of(L)->points);
    dim->points = malloc(count * sizeof *dim->points);
    if (dim->points == NULL)
        return fail_nomem(L);
    for (size_t i = 0; i < count; i++) {
        node e;
        node_child(fp, i, &e);
        int rc = get_number(L, &e, &dim->points[i]);
        if (rc != TP_OK)
            return rc;
    }
    dim->num_points = count;
    dim->kind = TP_SS_FEASIBLE;
    return TP_OK;
}

static int load_range(const loader *L, const node *d, const node *keys[K_COUNT], tp_ss_dim *dim)
{
    static const char *const missing[K_SCALING + 1] = {
        "missing; must be a finite number (the low end of the range)",
        "missing; must be a finite number (the high end of the range)",
        "missing; must be \"log\" or \"linear\" (or give feasible_points instead)",
    };
    for (int k = K_MIN; k <= K_SCALING; k++)
        if (keys[k] == NULL)
            return fail_at(L, d, dim_keys[k], "%s", missing[k]);

    int rc;
    if ((rc = get_number(L, keys[K_MIN], &dim->min)) != TP_OK ||
        (rc = get_number(L, keys[K_MAX], &dim->max)) != TP_OK)
        return rc;
    const node *sc = keys[K_SCALING];
    if (node_typeof(sc) != NODE_STRING)
        return fail_value(L, sc, syntax_of(L)->scaling);
    if (strcmp(node_string(sc), "log") == 0) {
        dim->kind = TP_SS_LOG;
    } else if (strcmp(node_string(sc), "linear") == 0) {
        dim->kind = TP_SS_LINEAR;
    } else {
        char got[96];
        node_describe(L, sc, got, sizeof got);
        return fail_at(L, sc, NULL, "unknown scaling %s; expected \"log\" or \"linear\"", got);
    }

    char lo[32], hi[32];
    tp__ss_format(dim->min, lo, sizeof lo);
    tp__ss_format(dim->max, hi, sizeof hi);
    if (dim->min > dim->max)
        return fail_at(L, keys[K_MAX], NULL, "must be >= min (%s), got %s", lo, hi);
    if (dim->kind == TP_SS_LOG && !(dim->min > 0))
        return fail_at(L, keys[K_MIN], NULL,
                       "must be > 0 with \"log\" scaling, got %s; use \"linear\" scaling for a "
                       "range that reaches 0 or below",
                       lo);
    if (dim->kind == TP_SS_LOG && !isfinite(log(dim->max / dim->min)))
        return fail_at(L, keys[K_MAX], NULL, "max / min (%s / %s) overflows; narrow the range", hi,
                       lo);
    if (dim->kind == TP_SS_LINEAR && !isfinite(dim->max - dim->min))
        return fail_at(L, keys[K_MAX], NULL, "max - min (%s - %s) overflows; narrow the range", hi,
                       lo);
    return TP_OK;
}

static int load_dim(const loader *L, const node *d, tp_ss_dim *dim)
{
    int rc;
    if ((rc = check_name(L, d)) != TP_OK)
        return rc;
    if (node_typeof(d) != NODE_OBJECT)
        return fail_value(L, d, syntax_of(L)->dim);

    node children[K_COUNT];
    const node *keys[K_COUNT] = {NULL};
    size_t count = node_length(d);
    for (size_t i = 0; i < count; i++) {
        node c;
        node_child(d, i, &c);
        int k = 0;
        while (k < K_COUNT && strcmp(c.name, dim_keys[k]) != 0)
            k++;
        if (k == K_COUNT)
            return fail_unknown_key(L, &c);
        children[k] = c;
        keys[k] = &children[k];
    }

    dim->name = strdup(d->name);
    if (dim->name == NULL)
        return fail_nomem(L);
    dim->line = node_line(L, d);

    if (keys[K_FEASIBLE] != NULL) {
        for (int k = K_MIN; k <= K_SCALING; k++)
            if (keys[k] != NULL)
                return fail_at(L, keys[k], NULL,
                               "cannot be combined with feasible_points; a dimension is either a "
                               "range (min, max, scaling) or a list of feasible_points");
        return load_feasible(L, keys[K_FEASIBLE], dim);
    }
    return load_range(L, d, keys, dim);
}

static int load_dict(const loader *L, const node *root)
{
    tp_search_space *ss = L->ss;
    size_t count = node_length(root);
    if (count == 0)
        return fail_at(L, root, NULL, "has no hyperparameters; expected at least one dimension, %s",
                       syntax_of(L)->dim);
    ss->dims = calloc(count, sizeof *ss->dims);
    if (ss->dims == NULL)
        return fail_nomem(L);
    ss->num_dims = count; /* zeroed entries free cleanly */
    for (size_t i = 0; i < count; i++) {
        node d;
        node_child(root, i, &d);
        int rc = load_dim(L, &d, &ss->dims[i]);
        if (rc != TP_OK)
            return rc;
    }
    return TP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* The list form: fixed points */

static int load_list(const loader *L, const node *root)
{
    tp_search_space *ss = L->ss;
    size_t count = node_length(root);
    ss->is_list = 1;
    if (count == 0)
        return fail_at(L, root, NULL, "has no points; expected at least one point, %s",
                       syntax_of(L)->point);
    ss->fixed_count = calloc(count, sizeof *ss->fixed_count);
    ss->fixed_names = calloc(count, sizeof *ss->fixed_names);
    ss->fixed_values = calloc(count, sizeof *ss->fixed_values);
    if (ss->fixed_count == NULL || ss->fixed_names == NULL || ss->fixed_values == NULL)
        return fail_nomem(L);
    ss->num_fixed = count;

    for (size_t i = 0; i < count; i++) {
        node p;
        node_child(root, i, &p);
        size_t k_count = node_typeof(&p) == NODE_OBJECT ? node_length(&p) : 0;
        if (node_typeof(&p) != NODE_OBJECT || k_count == 0)
            return fail_value(L, &p, syntax_of(L)->point);
        ss->fixed_names[i] = calloc(k_count, sizeof *ss->fixed_names[i]);
        ss->fixed_values[i] = calloc(k_count, sizeof *ss->fixed_values[i]);
        if (ss->fixed_names[i] == NULL || ss->fixed_values[i] == NULL)
            return fail_nomem(L);
        ss->fixed_count[i] = k_count;
        for (size_t k = 0; k < k_count; k++) {
            node v;
            node_child(&p, k, &v);
            int rc;
            if ((rc = check_name(L, &v)) != TP_OK ||
                (rc = get_number(L, &v, &ss->fixed_values[i][k])) != TP_OK)
                return rc;
            ss->fixed_names[i][k] = strdup(v.name);
            if (ss->fixed_names[i][k] == NULL)
                return fail_nomem(L);
        }
    }
    return TP_OK;
}

static int load_root(const loader *L, const node *root)
{
    switch (node_typeof(root)) {
    case NODE_OBJECT:
        return load_dict(L, root);
    case NODE_LIST:
        return load_list(L, root);
    case NODE_ARRAY:
        /* A JSON array is the list form; a libconfig array holds only scalars. */
        if (!L->is_cfg || node_length(root) == 0)
            return load_list(L, root);
        /* fall through */
    default:
        return fail_value(L, root, syntax_of(L)->top);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Loading a file */

/* The whole file, NUL-terminated; TP_EIO with the message on failure. */
static int read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    size_t used = 0, cap = 0;
    struct stat st;
    if (fp == NULL || (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode))) {
        tp__errf(err, errlen, "%s: cannot read: %s", path, strerror(fp ? EISDIR : errno));
        if (fp != NULL)
            fclose(fp);
        return TP_EIO;
    }
    for (;;) {
        if (cap - used < 4096) {
            cap = cap ? 2 * cap : 8192;
            char *grown = realloc(buf, cap);
            if (grown == NULL) {
                tp__errf(err, errlen, "%s: out of memory reading the file", path);
                free(buf);
                fclose(fp);
                return TP_ENOMEM;
            }
            buf = grown;
        }
        size_t got = fread(buf + used, 1, cap - used - 1, fp);
        used += got;
        if (got == 0)
            break;
    }
    if (ferror(fp)) {
        tp__errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        free(buf);
        fclose(fp);
        return TP_EIO;
    }
    fclose(fp);
    buf[used] = '\0';
    *text = buf;
    *len = used;
    return TP_OK;
}

static int load_json(loader *L)
{
    json_error_t jerr;
    json_t *root =
        json_loadb(L->text, L->text_len,
                   JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
    if (root == NULL) {
        tp__errf(L->err, L->errlen, "%s:%d: syntax error: %s (column %d)", L->file,
                 jerr.line > 0 ? jerr.line : 1, jerr.text, jerr.column > 0 ? jerr.column : 1);
        return TP_ECONFIG;
    }
    node top;
    memset(&top, 0, sizeof top);
    top.j = root;
    int rc = load_root(L, &top);
    json_decref(root);
    return rc;
}

static int load_cfg(loader *L)
{
    config_t cfg;
    int rc = tp__config_refuse_include(L->file, L->text, L->err, L->errlen);
    if (rc != TP_OK)
        return rc;
    config_init(&cfg);
    if (config_read_string(&cfg, L->text) != CONFIG_TRUE) {
        const char *text = config_error_text(&cfg) ? config_error_text(&cfg) : "unknown error";
        tp__errf(L->err, L->errlen, "%s:%d: syntax error: %s", L->file, config_error_line(&cfg),
                 text);
        rc = TP_ECONFIG;
        goto done;
    }

    const config_setting_t *root = config_root_setting(&cfg), *space = NULL;
    int n = config_setting_length(root);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        if (strcmp(config_setting_name(s), "search_space") == 0) {
            space = s;
            continue;
        }
        size_t d = edit_distance(config_setting_name(s), "search_space");
        tp__errf(L->err, L->errlen, "%s:%d: %s: unknown key%s; expected search_space", L->file,
                 (int)config_setting_source_line(s), config_setting_name(s),
                 d < 4 ? " (did you mean \"search_space\"?)" : "");
        rc = TP_ECONFIG;
        goto done;
    }
    if (space == NULL) {
        tp__errf(L->err, L->errlen, "%s:1: search_space: missing; must be %s", L->file,
                 cfg_syntax.top);
        rc = TP_ECONFIG;
        goto done;
    }
    node top;
    memset(&top, 0, sizeof top);
    top.c = space;
    snprintf(top.path, sizeof top.path, "search_space");
    rc = load_root(L, &top);

done:
    config_destroy(&cfg);
    return rc;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls > lx && strcmp(s + ls - lx, suffix) == 0;
}

int tp_search_space_load(const char *path, tp_search_space *out, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (out == NULL || path == NULL) {
        tp__errf(err, errlen, "tp_search_space_load: %s is NULL", out == NULL ? "out" : "path");
        return TP_EINVAL;
    }
    memset(out, 0, sizeof *out);
    int is_json = has_suffix(path, ".json"), is_cfg = has_suffix(path, ".cfg");
    if (!is_json && !is_cfg) {
        tp__errf(err, errlen,
                 "%s: unknown search space format; expected a .json (AlgoPerf's "
                 "tuning_search_space.json) or a .cfg (libconfig) file",
                 path);
        return TP_EINVAL;
    }
    if ((rc = read_file(path, &text, &len, err, errlen)) != TP_OK)
        return rc;
    out->file = strdup(path);
    if (out->file == NULL) {
        tp__errf(err, errlen, "%s: out of memory", path);
        rc = TP_ENOMEM;
        goto error;
    }

    loader L = {path, is_cfg, text, len, out, err, errlen};
    rc = is_cfg ? load_cfg(&L) : load_json(&L);
    if (rc != TP_OK)
        goto error;
    free(text);
    return TP_OK;

error:
    free(text);
    tp_search_space_free(out);
    return rc;
}

void tp_search_space_free(tp_search_space *ss)
{
    if (ss == NULL)
        return;
    for (size_t i = 0; i < ss->num_dims; i++) {
        free(ss->dims[i].name);
        free(ss->dims[i].points);
    }
    free(ss->dims);
    for (size_t i = 0; i < ss->num_fixed; i++) {
        for (size_t k = 0; k < ss->fixed_count[i]; k++)
            free(ss->fixed_names[i][k]);
        free(ss->fixed_names[i]);
        free(ss->fixed_values[i]);
    }
    free(ss->fixed_count);
    free(ss->fixed_names);
    free(ss->fixed_values);
    free(ss->file);
    memset(ss, 0, sizeof *ss);
}

/* ---------------------------------------------------------------------------------------- */
/* Points */

/* "name=value,name=value" from names[count] and values[count]; NULL when out of memory. */
static char *join_point(size_t count, const char *(*name_at)(const void *, size_t), const void *ctx,
                        const double *values)
{
    char(*texts)[32] = malloc((count ? count : 1) * sizeof *texts);
    if (texts == NULL)
        return NULL;
    size_t len = 1;
    for (size_t k = 0; k < count; k++) {
        tp__ss_format(values[k], texts[k], sizeof texts[k]);
        len += strlen(name_at(ctx, k)) + 1 + strlen(texts[k]) + (k > 0);
    }
    char *s = malloc(len), *p = s;
    if (s != NULL) {
        for (size_t k = 0; k < count; k++)
            p += sprintf(p, "%s%s=%s", k > 0 ? "," : "", name_at(ctx, k), texts[k]);
        *p = '\0';
    }
    free(texts);
    return s;
}

static const char *dim_name_at(const void *ctx, size_t k)
{
    return ((const tp_ss_dim *)ctx)[k].name;
}

static const char *fixed_name_at(const void *ctx, size_t k)
{
    return ((char *const *)ctx)[k];
}

int tp_search_space_points(const tp_search_space *ss, size_t n, char ***points, char *err,
                           size_t errlen)
{
    char **list = NULL;
    double *u = NULL, *values = NULL;
    size_t made = 0;
    int rc = TP_OK;

    if (points != NULL)
        *points = NULL;
    if (ss == NULL || points == NULL || (!ss->is_list && ss->num_dims == 0) ||
        (ss->is_list && ss->num_fixed == 0)) {
        tp__errf(err, errlen, "tp_search_space_points: %s",
                 ss == NULL || points == NULL ? "ss or points is NULL"
                                              : "the search space is empty (not loaded?)");
        return TP_EINVAL;
    }
    const char *file = ss->file != NULL ? ss->file : "search space";
    if (ss->is_list && n > ss->num_fixed) {
        tp__errf(err, errlen,
                 "%s: %zu points asked for, but the file lists only %zu fixed points; ask for at "
                 "most %zu trials or add points to the file",
                 file, n, ss->num_fixed, ss->num_fixed);
        return TP_ERANGE;
    }
    if (n == 0)
        return TP_OK;

    list = calloc(n, sizeof *list);
    if (list == NULL)
        goto nomem;

    if (ss->is_list) {
        for (made = 0; made < n; made++) {
            list[made] = join_point(ss->fixed_count[made], fixed_name_at, ss->fixed_names[made],
                                    ss->fixed_values[made]);
            if (list[made] == NULL)
                goto nomem;
        }
    } else {
        size_t d = ss->num_dims;
        if (d > SIZE_MAX / sizeof(double) / n) {
            rc = TP_ERANGE;
            tp__errf(err, errlen, "%s: %zu points of %zu dimensions is too many", file, n, d);
            goto error;
        }
        u = malloc(n * d * sizeof *u);
        values = malloc(d * sizeof *values);
        if (u == NULL || values == NULL)
            goto nomem;
        if ((rc = tp_halton_points(d, n, u, err, errlen)) != TP_OK)
            goto error;
        for (made = 0; made < n; made++) {
            for (size_t k = 0; k < d; k++)
                values[k] = tp__ss_value(&ss->dims[k], u[made * d + k]);
            list[made] = join_point(d, dim_name_at, ss->dims, values);
            if (list[made] == NULL)
                goto nomem;
        }
    }
    free(u);
    free(values);
    *points = list;
    return TP_OK;

nomem:
    tp__errf(err, errlen, "%s: out of memory making %zu points", file, n);
    rc = TP_ENOMEM;
error:
    for (size_t i = 0; list != NULL && i < n; i++)
        free(list[i]);
    free(list);
    free(u);
    free(values);
    return rc;
}
