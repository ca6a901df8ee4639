/*
 * fuzz_searchspace.c - libFuzzer target for core/searchspace.c: tp_search_space_load in both
 * formats and tp_search_space_points (with core/mt19937.c behind the Halton sequence).
 *
 * Each input is written twice, as <tmp>/input.json and <tmp>/input.cfg, and loaded from both:
 * the loader picks its parser by extension, and trying both keeps every seed (JSON or
 * libconfig) a real-looking file while each parser also sees the other's syntax. A JSON text
 * fails at once in libconfig and the reverse, so this costs little.
 *
 * For every space that loads, a few points are drawn: dict form n = 1 .. 12 (chosen from the
 * input), list form n = 1, all of them and one too many (TP_ERANGE). Checked beyond "no crash,
 * no leak, no undefined behaviour":
 *   - a failed load leaves *out all zero and writes a message;
 *   - a loaded space keeps searchspace.h's promises: valid unique names, finite numbers,
 *     min <= max, min > 0 under log, non-empty feasible points and fixed points;
 *   - every point string reads back with tp_kv_parse (that is how a trial receives it, as
 *     --hparams) with the dimensions' names in file order; fixed values and feasible values
 *     come back exactly, ranges give finite numbers; Halton coordinates lie in [0, 1).
 *
 * Not here: sweep.c's assignment of points to studies.
 */
#define _POSIX_C_SOURCE 200809L

#include "core/config.h" /* tp_kv_parse */
#include "core/searchspace.h"
#include "fuzz_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ERR_LEN = 512, MAX_DICT_POINTS = 12 };

static int valid_name(const char *s)
{
    if (s == NULL || !(*s >= 'a' && *s <= 'z'))
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(s);
}

static void check_space(const tp_search_space *ss, const char *path)
{
    FUZZ_CHECK(ss->file != NULL && strcmp(ss->file, path) == 0);
    if (ss->is_list) {
        FUZZ_CHECK(ss->num_dims == 0 && ss->num_fixed > 0);
        for (size_t i = 0; i < ss->num_fixed; i++) {
            FUZZ_CHECK(ss->fixed_count[i] > 0);
            for (size_t k = 0; k < ss->fixed_count[i]; k++) {
                FUZZ_CHECK(valid_name(ss->fixed_names[i][k]));
                FUZZ_CHECK(isfinite(ss->fixed_values[i][k]));
                for (size_t j = 0; j < k; j++)
                    FUZZ_CHECK(strcmp(ss->fixed_names[i][k], ss->fixed_names[i][j]) != 0);
            }
        }
        return;
    }
    FUZZ_CHECK(ss->num_dims > 0 && ss->num_fixed == 0);
    for (size_t i = 0; i < ss->num_dims; i++) {
        const tp_ss_dim *d = &ss->dims[i];
        FUZZ_CHECK(valid_name(d->name));
        FUZZ_CHECK(d->line > 0);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(d->name, ss->dims[j].name) != 0);
        switch (d->kind) {
        case TP_SS_LOG:
            FUZZ_CHECK(d->min > 0);
            /* fall through */
        case TP_SS_LINEAR:
            FUZZ_CHECK(isfinite(d->min) && isfinite(d->max) && d->min <= d->max);
            break;
        case TP_SS_FEASIBLE:
            FUZZ_CHECK(d->num_points > 0 && d->points != NULL);
            for (size_t k = 0; k < d->num_points; k++)
                FUZZ_CHECK(isfinite(d->points[k]));
            break;
        default:
            FUZZ_CHECK(!"a dimension of no known kind");
        }
    }
}

static int is_feasible(const tp_ss_dim *d, double v)
{
    for (size_t k = 0; k < d->num_points; k++)
        if (d->points[k] == v)
            return 1;
    return 0;
}

/* Point `s` read back as --hparams: the names of dims/fixed point in order, the values exact
 * where the space fixes them. */
static void check_point(const tp_search_space *ss, size_t index, const char *s)
{
    tp_kv_list l;
    char err[ERR_LEN] = "";
    int rc = tp_kv_parse(s, &l, err, sizeof err);
    if (rc != TP_OK)
        fprintf(stderr, "point %zu \"%s\" does not read back: %s\n", index, s, err);
    FUZZ_CHECK(rc == TP_OK);
    if (ss->is_list) {
        FUZZ_CHECK(l.count == ss->fixed_count[index]);
        for (size_t k = 0; k < l.count; k++) {
            FUZZ_CHECK(strcmp(l.items[k].key, ss->fixed_names[index][k]) == 0);
            FUZZ_CHECK(l.items[k].value == ss->fixed_values[index][k]);
        }
    } else {
        FUZZ_CHECK(l.count == ss->num_dims);
        for (size_t k = 0; k < l.count; k++) {
            const tp_ss_dim *d = &ss->dims[k];
            FUZZ_CHECK(strcmp(l.items[k].key, d->name) == 0);
            if (d->kind == TP_SS_FEASIBLE)
                FUZZ_CHECK(is_feasible(d, l.items[k].value));
            else
                FUZZ_CHECK(isfinite(l.items[k].value));
        }
    }
    tp_kv_free(&l);
}

static void draw_points(const tp_search_space *ss, size_t n, int expect_rc)
{
    char **points = (char **)&points; /* not NULL: the call must reset it */
    char err[ERR_LEN] = "";
    int rc = tp_search_space_points(ss, n, &points, err, sizeof err);
    FUZZ_CHECK(rc == expect_rc);
    if (rc != TP_OK) {
        fuzz_check_message(err, sizeof err);
        FUZZ_CHECK(points == NULL);
        return;
    }
    FUZZ_CHECK((n == 0) == (points == NULL));
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(points[i] != NULL);
        check_point(ss, i, points[i]);
        free(points[i]);
    }
    free(points);
}

static void check_halton(size_t dims, size_t n)
{
    double *u = malloc(dims * n * sizeof *u);
    char err[ERR_LEN] = "";
    FUZZ_CHECK(u != NULL);
    FUZZ_CHECK(tp_halton_points(dims, n, u, err, sizeof err) == TP_OK);
    for (size_t i = 0; i < dims * n; i++)
        FUZZ_CHECK(u[i] >= 0.0 && u[i] < 1.0);
    free(u);
}

static void fuzz_load(const char *path, const uint8_t *data, size_t size)
{
    tp_search_space ss;
    char err[ERR_LEN] = "";
    fuzz_write_file(path, data, size);
    int rc = tp_search_space_load(path, &ss, err, sizeof err);
    if (rc != TP_OK) {
        FUZZ_CHECK(rc < 0);
        fuzz_check_message(err, sizeof err);
        FUZZ_CHECK(fuzz_is_zero(&ss, sizeof ss));
        tp_search_space_free(&ss);
        return;
    }
    check_space(&ss, path);
    if (ss.is_list) {
        draw_points(&ss, 0, TP_OK);
        draw_points(&ss, 1, TP_OK);
        draw_points(&ss, ss.num_fixed, TP_OK);
        draw_points(&ss, ss.num_fixed + 1, TP_ERANGE);
    } else {
        size_t n = (size_t)(fuzz_hash(data, size) % MAX_DICT_POINTS) + 1;
        draw_points(&ss, n, TP_OK);
        check_halton(ss.num_dims, n);
    }
    tp_search_space_free(&ss);
    tp_search_space_free(&ss); /* free of a zeroed struct is a no-op */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_leaks_begin();
    fuzz_load(fuzz_tmp_path("input.json"), data, size);
    fuzz_load(fuzz_tmp_path("input.cfg"), data, size);
    fuzz_leaks_end();
    return 0;
}
