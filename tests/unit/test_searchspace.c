/*
 * test_searchspace.c - core/searchspace.c and core/mt19937.c against fixtures written by the
 * independent numpy implementation tests/tools/halton_reference.py (checked in under
 * tests/data/searchspace/; this test never runs Python):
 *   - MT19937 outputs and random_sample() doubles for seeds 5489, 977, 0, 1 and 2^32-1, across
 *     two regenerations of the state, exactly;
 *   - numpy's legacy shuffle (masked rejection draws) for sizes 1 .. 1025, exactly, with the
 *     next double showing that no draw more or fewer was taken;
 *   - Halton points for 1, 2, 3, 7 and 170 dimensions, n = 5 and 15, in the fixed row order and
 *     in sequence order: relative difference <= 1e-12 per coordinate (the max is printed; the
 *     operations are the reference's IEEE ones, so it is 0 on a conforming libm);
 *   - generate_search for the AdamW and SGD example spaces and a linear-scaling space, from
 *     .json and .cfg twins: names exactly, feasible values exactly, ranges within 1e-12
 *     relative;
 *   - the list form (first n in order, TP_ERANGE past the end), both formats;
 *   - the mapping formulas at u = 0 and u -> 1, the shortest exact printing of values;
 *   - one fixture per kind of error (tests/data/searchspace/bad/), each message checked whole:
 *     "<file>:<line>: <key path>: ...".
 *
 * Not here: how a sweep assigns points to studies (sweep.c's tests).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/mt19937.h"
#include "core/searchspace.h"
#include "core/searchspace_internal.h"
#include <trainperf/trainperf.h>

#define FIXTURES    TP_TEST_SOURCE_DIR "/tests/data/searchspace/"
#define SUBMISSIONS TP_TEST_SOURCE_DIR "/submissions/"

#define HALTON_RTOL 1e-12 /* relative, per coordinate and per range value */

static char err[1024];

/* ---------------------------------------------------------------------------------------- */
/* Fixture files: lines, '#' lines skipped */

typedef struct lines {
    char **line;
    size_t count;
} lines;

static lines read_lines(const char *path)
{
    lines L = {NULL, 0};
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        fail_msg("cannot open fixture %s: %s (run tests/tools/halton_reference.py?)", path,
                 strerror(errno));
    char buf[16384];
    while (fgets(buf, sizeof buf, fp) != NULL) {
        size_t n = strlen(buf);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = '\0';
        if (buf[0] == '#' || n == 0)
            continue;
        L.line = realloc(L.line, (L.count + 1) * sizeof *L.line);
        assert_non_null(L.line);
        L.line[L.count] = strdup(buf);
        assert_non_null(L.line[L.count]);
        L.count++;
    }
    fclose(fp);
    return L;
}

static void free_lines(lines *L)
{
    for (size_t i = 0; i < L->count; i++)
        free(L->line[i]);
    free(L->line);
}

/* Up to max whitespace-separated numbers from s. */
static size_t parse_doubles(const char *s, double *out, size_t max)
{
    size_t n = 0;
    char *end;
    while (n < max) {
        double v = strtod(s, &end);
        if (end == s)
            break;
        out[n++] = v;
        s = end;
    }
    return n;
}

static double rel_diff(double got, double want)
{
    if (got == want)
        return 0.0;
    double scale = fabs(want) > DBL_MIN ? fabs(want) : DBL_MIN;
    return fabs(got - want) / scale;
}

/* ---------------------------------------------------------------------------------------- */
/* MT19937 and numpy's legacy draws */

static void test_mt19937_outputs(void **state)
{
    lines L = read_lines(FIXTURES "mt19937.txt");
    size_t raw_lines = 0, double_lines = 0;
    for (size_t i = 0; i < L.count; i++) {
        char kind[16];
        unsigned long seed;
        int used = 0;
        assert_int_equal(sscanf(L.line[i], "%15s %lu%n", kind, &seed, &used), 2);
        const char *rest = L.line[i] + used;
        tp__mt19937 r;
        tp__mt19937_seed(&r, (uint32_t)seed);
        if (strcmp(kind, "raw") == 0) {
            char *end;
            unsigned long start = strtoul(rest, &end, 10);
            for (unsigned long k = 0; k < start; k++)
                tp__mt19937_next32(&r);
            rest = end;
            size_t n = 0;
            for (;;) {
                unsigned long want = strtoul(rest, &end, 10);
                if (end == rest)
                    break;
                rest = end;
                uint32_t got = tp__mt19937_next32(&r);
                if (got != want)
                    fail_msg("seed %lu output %lu: got %u, numpy %lu", seed, start + n, got, want);
                n++;
            }
            assert_int_equal(n, 10);
            raw_lines++;
        } else {
            assert_string_equal(kind, "double");
            double want[8];
            size_t n = parse_doubles(rest, want, 8);
            assert_int_equal(n, 6);
            for (size_t k = 0; k < n; k++) {
                double got = tp__mt19937_double(&r);
                if (got != want[k])
                    fail_msg("seed %lu random_sample %zu: got %.17g, numpy %.17g", seed, k, got,
                             want[k]);
            }
            double_lines++;
        }
    }
    assert_int_equal(raw_lines, 15);
    assert_int_equal(double_lines, 5);
    free_lines(&L);

    /* The well-known first output of MT19937 under the reference seed 5489. */
    tp__mt19937 r;
    tp__mt19937_seed(&r, 5489);
    assert_int_equal(tp__mt19937_next32(&r), 3499211612u);
}

static void test_mt19937_interval(void **state)
{
    tp__mt19937 a, b;
    tp__mt19937_seed(&a, 977);
    tp__mt19937_seed(&b, 977);
    /* [0, 0] draws nothing. */
    assert_int_equal(tp__mt19937_interval(&a, 0), 0);
    assert_int_equal(tp__mt19937_next32(&a), tp__mt19937_next32(&b));
    /* A bound of all ones takes each output as it is (no rejection). */
    assert_int_equal(tp__mt19937_interval(&a, UINT32_MAX), tp__mt19937_next32(&b));
    assert_int_equal(tp__mt19937_interval(&a, 255), tp__mt19937_next32(&b) & 255u);
    /* Any bound: in range. */
    for (uint32_t max = 1; max < 3000; max += 7)
        assert_true(tp__mt19937_interval(&a, max) <= max);
}

static void test_mt19937_shuffle(void **state)
{
    lines L = read_lines(FIXTURES "shuffle.txt");
    assert_int_equal(L.count, 9);
    for (size_t i = 0; i < L.count; i++) {
        unsigned long seed;
        size_t n;
        double after;
        int used = 0;
        assert_int_equal(sscanf(L.line[i], "%lu %zu %lf%n", &seed, &n, &after, &used), 3);
        uint32_t *x = malloc(n * sizeof *x);
        assert_non_null(x);
        for (size_t k = 0; k < n; k++)
            x[k] = (uint32_t)k;
        tp__mt19937 r;
        tp__mt19937_seed(&r, (uint32_t)seed);
        tp__mt19937_shuffle_u32(&r, x, n);
        const char *rest = L.line[i] + used;
        char *end;
        for (size_t k = 0; k < n; k++) {
            unsigned long want = strtoul(rest, &end, 10);
            assert_true(end != rest);
            rest = end;
            if (x[k] != want)
                fail_msg("seed %lu n %zu: position %zu is %u, numpy %lu", seed, n, k, x[k], want);
        }
        /* The same number of draws as numpy: the next double agrees. */
        assert_true(tp__mt19937_double(&r) == after);
        free(x);
    }
    free_lines(&L);
}

/* ---------------------------------------------------------------------------------------- */
/* Halton points */

static void check_halton(const char *file, size_t dims, size_t n, int shuffled)
{
    char path[512];
    snprintf(path, sizeof path, "%s%s", FIXTURES, file);
    lines L = read_lines(path);
    assert_int_equal(L.count, n);
    double *got = malloc(n * dims * sizeof *got), *want = malloc(dims * sizeof *want);
    assert_non_null(got);
    assert_non_null(want);
    int rc = shuffled ? tp_halton_points(dims, n, got, err, sizeof err)
                      : tp__halton_points_ordered(dims, n, 0, 0, got, err, sizeof err);
    if (rc != 0)
        fail_msg("%s", err);
    double worst = 0.0;
    for (size_t r = 0; r < n; r++) {
        assert_int_equal(parse_doubles(L.line[r], want, dims), dims);
        for (size_t d = 0; d < dims; d++) {
            double u = got[r * dims + d];
            assert_true(u >= 0.0 && u < 1.0);
            double rd = rel_diff(u, want[d]);
            if (rd > worst)
                worst = rd;
            if (rd > HALTON_RTOL)
                fail_msg("%s row %zu dim %zu: got %.17g, reference %.17g", file, r, d, u, want[d]);
        }
    }
    print_message("%-28s max relative difference %.3g\n", file, worst);
    free(got);
    free(want);
    free_lines(&L);
}

static void test_halton_fixtures(void **state)
{
    static const size_t dims[] = {1, 2, 3, 7}, ns[] = {5, 15};
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 2; j++) {
            char file[64];
            snprintf(file, sizeof file, "halton_d%zu_n%zu.txt", dims[i], ns[j]);
            check_halton(file, dims[i], ns[j], 1);
        }
    /* More dimensions than odd primes below 1000 - 1: bases come from below 2000. */
    check_halton("halton_d170_n5.txt", 170, 5, 1);
    /* Sequence order: points 101 .. 115, before the row shuffle. */
    check_halton("halton_d3_n15_sequence.txt", 3, 15, 0);
}

/* The row order is fixed; the first points of a longer search are not a prefix of it, but the
 * set of n points is the set of the sequence's points 101 .. 100 + n. */
static void test_halton_set(void **state)
{
    enum { D = 3, N = 15 };
    double shuffled[N * D], seq[N * D];
    assert_int_equal(tp_halton_points(D, N, shuffled, err, sizeof err), 0);
    assert_int_equal(tp__halton_points_ordered(D, N, 0, 0, seq, err, sizeof err), 0);
    for (size_t r = 0; r < N; r++) {
        size_t found = 0;
        for (size_t s = 0; s < N; s++)
            if (memcmp(&shuffled[r * D], &seq[s * D], sizeof(double) * D) == 0)
                found++;
        assert_int_equal(found, 1);
    }
    /* Another row seed: the same set, another order. */
    double other[N * D];
    assert_int_equal(tp__halton_points_ordered(D, N, 1, 12345, other, err, sizeof err), 0);
    assert_memory_not_equal(other, shuffled, sizeof other);
}

static void test_halton_errors(void **state)
{
    double out[4];
    assert_int_equal(tp_halton_points(0, 1, out, err, sizeof err), TP_EINVAL);
    assert_string_equal(err, "halton: dims must be >= 1");
    assert_int_equal(tp_halton_points(2, 1, NULL, err, sizeof err), TP_EINVAL);
    assert_int_equal(tp_halton_points(2, 0, NULL, err, sizeof err), 0);
    assert_int_equal(tp_halton_points(1, (size_t)UINT32_MAX, out, err, sizeof err), TP_ERANGE);
    assert_int_equal(tp_halton_points(SIZE_MAX / 4, 4, out, err, sizeof err), TP_ERANGE);
}

/* ---------------------------------------------------------------------------------------- */
/* The mapping and the printing */

static void test_mapping(void **state)
{
    const double below_one = nextafter(1.0, 0.0);
    tp_ss_dim lg = {.name = "lr", .kind = TP_SS_LOG, .min = 1e-4, .max = 1e-2};
    assert_true(tp__ss_value(&lg, 0.0) == 1e-4);
    assert_true(rel_diff(tp__ss_value(&lg, below_one), 1e-2) < 1e-14);
    assert_true(tp__ss_value(&lg, below_one) <= 1e-2 * (1 + 1e-15));
    assert_true(rel_diff(tp__ss_value(&lg, 0.5), 1e-3) < 1e-15); /* geometric midpoint */

    tp_ss_dim lin = {.name = "b", .kind = TP_SS_LINEAR, .min = -1.0, .max = 3.0};
    assert_true(tp__ss_value(&lin, 0.0) == -1.0);
    assert_true(tp__ss_value(&lin, 0.5) == 1.0);
    assert_true(tp__ss_value(&lin, below_one) < 3.0);
    assert_true(rel_diff(tp__ss_value(&lin, below_one), 3.0) < 1e-15);

    double pts[3] = {0.1, 0.2, 0.3};
    tp_ss_dim fp = {.name = "c", .kind = TP_SS_FEASIBLE, .points = pts, .num_points = 3};
    assert_true(tp__ss_value(&fp, 0.0) == 0.1);
    assert_true(tp__ss_value(&fp, nextafter(1.0 / 3.0, 0.0)) == 0.1);
    assert_true(tp__ss_value(&fp, 0.5) == 0.2);
    assert_true(tp__ss_value(&fp, 2.0 / 3.0) == 0.3); /* floor(2/3 * 3) = 2 in doubles */
    assert_true(tp__ss_value(&fp, below_one) == 0.3);
    double two[2] = {0.0, 0.1};
    tp_ss_dim fp2 = {.name = "d", .kind = TP_SS_FEASIBLE, .points = two, .num_points = 2};
    assert_true(tp__ss_value(&fp2, nextafter(0.5, 0.0)) == 0.0);
    assert_true(tp__ss_value(&fp2, 0.5) == 0.1);
    double one[1] = {0.999};
    tp_ss_dim fp1 = {.name = "e", .kind = TP_SS_FEASIBLE, .points = one, .num_points = 1};
    assert_true(tp__ss_value(&fp1, below_one) == 0.999);
}

static void test_format(void **state)
{
    static const struct {
        double v;
        const char *s;
    } cases[] = {
        {0.1, "0.1"},
        {1e-4, "0.0001"},
        {1.0, "1"},
        {0.0, "0"},
        {-0.0, "-0"},
        {0.0017486387539278373, "0.0017486387539278373"},
        {0.9955159689799007, "0.9955159689799007"},
        {1.0 / 3.0, "0.3333333333333333"},
        {5e-324, "5e-324"},
        {1e22, "1e+22"},
        {DBL_MAX, "1.7976931348623157e+308"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        tp__ss_format(cases[i].v, buf, sizeof buf);
        assert_string_equal(buf, cases[i].s);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Loading */

static void assert_empty(const tp_search_space *ss)
{
    static const tp_search_space zero;
    assert_memory_equal(ss, &zero, sizeof zero);
}

static void load_ok(const char *path, tp_search_space *ss)
{
    if (tp_search_space_load(path, ss, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static void test_load_dict(void **state)
{
    static const struct {
        const char *name;
        tp_ss_kind kind;
        double min, max;
        size_t num_points;
        double p0, p1;
        int json_line, cfg_line;
    } want[] = {
        {"learning_rate", TP_SS_LOG, 1e-4, 1e-2, 0, 0, 0, 2, 4},
        {"one_minus_beta1", TP_SS_LOG, 0.02, 0.5, 0, 0, 0, 3, 5},
        {"beta2", TP_SS_FEASIBLE, 0, 0, 1, 0.999, 0, 4, 6},
        {"warmup_factor", TP_SS_FEASIBLE, 0, 0, 1, 0.05, 0, 5, 7},
        {"weight_decay", TP_SS_LOG, 5e-3, 1.0, 0, 0, 0, 6, 8},
        {"label_smoothing", TP_SS_FEASIBLE, 0, 0, 2, 0.1, 0.2, 7, 9},
        {"dropout_rate", TP_SS_FEASIBLE, 0, 0, 2, 0.0, 0.1, 8, 10},
    };
    static const char *const files[] = {SUBMISSIONS "adamw/tuning_search_space.json",
                                        SUBMISSIONS "adamw/tuning_search_space.cfg"};
    for (int f = 0; f < 2; f++) {
        tp_search_space ss;
        load_ok(files[f], &ss);
        assert_string_equal(ss.file, files[f]);
        assert_int_equal(ss.is_list, 0);
        assert_int_equal(ss.num_dims, 7);
        assert_int_equal(ss.num_fixed, 0);
        for (size_t i = 0; i < 7; i++) {
            const tp_ss_dim *d = &ss.dims[i];
            assert_string_equal(d->name, want[i].name);
            assert_int_equal(d->kind, want[i].kind);
            assert_int_equal(d->line, f == 0 ? want[i].json_line : want[i].cfg_line);
            if (d->kind == TP_SS_FEASIBLE) {
                assert_int_equal(d->num_points, want[i].num_points);
                assert_true(d->points[0] == want[i].p0);
                if (d->num_points > 1)
                    assert_true(d->points[1] == want[i].p1);
            } else {
                assert_true(d->min == want[i].min);
                assert_true(d->max == want[i].max);
                assert_null(d->points);
            }
        }
        tp_search_space_free(&ss);
        assert_empty(&ss);
        tp_search_space_free(&ss); /* twice, and of a zeroed struct: a no-op */
    }
    tp_search_space_free(NULL);

    /* Integer bounds and points read as numbers; linear scaling. */
    tp_search_space ss;
    load_ok(FIXTURES "linear.cfg", &ss);
    assert_int_equal(ss.num_dims, 5);
    assert_int_equal(ss.dims[1].kind, TP_SS_LINEAR);
    assert_true(ss.dims[1].min == -1.0 && ss.dims[1].max == 1.0);
    assert_int_equal(ss.dims[2].num_points, 3);
    assert_true(ss.dims[2].points[2] == 3.0);
    tp_search_space_free(&ss);
}

/* generate_search(space, n) against the fixture: names exactly and in order, feasible values
 * exactly, range values within HALTON_RTOL. */
static void check_search(const char *space, const char *fixture, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s%s", FIXTURES, fixture);
    lines L = read_lines(path);
    assert_int_equal(L.count, n);
    tp_search_space ss;
    load_ok(space, &ss);
    char **pts = NULL;
    if (tp_search_space_points(&ss, n, &pts, err, sizeof err) != 0)
        fail_msg("%s", err);
    double worst = 0.0;
    for (size_t r = 0; r < n; r++) {
        const char *g = pts[r], *w = L.line[r];
        for (size_t k = 0; k < ss.num_dims; k++) {
            const tp_ss_dim *d = &ss.dims[k];
            size_t len = strlen(d->name);
            if (strncmp(g, d->name, len) != 0 || g[len] != '=' || strncmp(w, d->name, len) != 0 ||
                w[len] != '=')
                fail_msg("%s row %zu: \"%s\" vs reference \"%s\" at %s", space, r, pts[r],
                         L.line[r], d->name);
            char *ge, *we;
            double gv = strtod(g + len + 1, &ge), wv = strtod(w + len + 1, &we);
            double rd = rel_diff(gv, wv);
            if (rd > worst)
                worst = rd;
            if (d->kind == TP_SS_FEASIBLE ? gv != wv : rd > HALTON_RTOL)
                fail_msg("%s row %zu %s: got %.17g, reference %.17g", space, r, d->name, gv, wv);
            assert_true(*ge == (k + 1 < ss.num_dims ? ',' : '\0'));
            assert_true(*we == (k + 1 < ss.num_dims ? ',' : '\0'));
            g = ge + (*ge == ',');
            w = we + (*we == ',');
        }
    }
    print_message("%-28s %-40s max relative difference %.3g\n", fixture,
                  strstr(space, "/tests/") ? strstr(space, "/tests/") + 1
                                           : strstr(space, "/submissions/") + 1,
                  worst);
    for (size_t r = 0; r < n; r++)
        free(pts[r]);
    free(pts);
    tp_search_space_free(&ss);
    free_lines(&L);
}

static void test_generate_search(void **state)
{
    static const char *const spaces[][2] = {
        {"adamw", SUBMISSIONS "adamw/tuning_search_space"},
        {"sgd", SUBMISSIONS "sgd/tuning_search_space"},
        {"linear", FIXTURES "linear"},
    };
    static const size_t ns[] = {1, 5, 15};
    for (size_t s = 0; s < 3; s++)
        for (size_t j = 0; j < 3; j++)
            for (int cfg = 0; cfg < 2; cfg++) {
                char space[512], fixture[64];
                snprintf(space, sizeof space, "%s%s", spaces[s][1], cfg ? ".cfg" : ".json");
                snprintf(fixture, sizeof fixture, "%s_n%zu.txt", spaces[s][0], ns[j]);
                check_search(space, fixture, ns[j]);
            }
}

/* Printed values read back exactly, and the two formats give identical strings. */
static void test_points_exact(void **state)
{
    tp_search_space js, cs;
    load_ok(SUBMISSIONS "adamw/tuning_search_space.json", &js);
    load_ok(SUBMISSIONS "adamw/tuning_search_space.cfg", &cs);
    char **a = NULL, **b = NULL;
    assert_int_equal(tp_search_space_points(&js, 15, &a, err, sizeof err), 0);
    assert_int_equal(tp_search_space_points(&cs, 15, &b, err, sizeof err), 0);
    double u[15 * 7];
    assert_int_equal(tp_halton_points(7, 15, u, err, sizeof err), 0);
    for (size_t r = 0; r < 15; r++) {
        assert_string_equal(a[r], b[r]);
        const char *p = a[r];
        for (size_t k = 0; k < 7; k++) {
            p = strchr(p, '=') + 1;
            char *end;
            double v = strtod(p, &end);
            assert_true(v == tp__ss_value(&js.dims[k], u[r * 7 + k]));
            p = end;
        }
        free(a[r]);
        free(b[r]);
    }
    free(a);
    free(b);

    /* n = 0: no points, nothing to free. */
    a = (char **)&a;
    assert_int_equal(tp_search_space_points(&js, 0, &a, err, sizeof err), 0);
    assert_null(a);
    tp_search_space_free(&js);
    tp_search_space_free(&cs);

    /* A space that was never loaded. */
    tp_search_space zero = {0};
    assert_int_equal(tp_search_space_points(&zero, 1, &a, err, sizeof err), TP_EINVAL);
}

static void test_list_form(void **state)
{
    static const char *const want[] = {
        "dropout_rate=0,label_smoothing=0.1,learning_rate=0.0017486387539278373,"
        "one_minus_beta1=0.06733926164,beta2=0.9955159689799007,weight_decay=0.08121616522670176,"
        "warmup_factor=0.02",
        "learning_rate=0.001,warmup_factor=0.05",
        "learning_rate=0.0025,beta2=0.999,extra_1=-3",
    };
    static const char *const files[] = {FIXTURES "list.json", FIXTURES "list.cfg"};
    for (int f = 0; f < 2; f++) {
        tp_search_space ss;
        load_ok(files[f], &ss);
        assert_int_equal(ss.is_list, 1);
        assert_int_equal(ss.num_dims, 0);
        assert_int_equal(ss.num_fixed, 3);
        assert_int_equal(ss.fixed_count[0], 7);
        assert_int_equal(ss.fixed_count[1], 2);
        assert_int_equal(ss.fixed_count[2], 3);
        assert_string_equal(ss.fixed_names[2][2], "extra_1");
        assert_true(ss.fixed_values[2][2] == -3.0);
        assert_true(ss.fixed_values[0][2] == 0.0017486387539278373);

        for (size_t n = 1; n <= 3; n++) {
            char **pts = NULL;
            assert_int_equal(tp_search_space_points(&ss, n, &pts, err, sizeof err), 0);
            for (size_t r = 0; r < n; r++) {
                assert_string_equal(pts[r], want[r]);
                free(pts[r]);
            }
            free(pts);
        }
        char **pts = (char **)&pts;
        assert_int_equal(tp_search_space_points(&ss, 4, &pts, err, sizeof err), TP_ERANGE);
        assert_null(pts);
        char msg[1024];
        snprintf(msg, sizeof msg,
                 "%s: 4 points asked for, but the file lists only 3 fixed points; ask for at "
                 "most 3 trials or add points to the file",
                 files[f]);
        assert_string_equal(err, msg);
        tp_search_space_free(&ss);
        assert_empty(&ss);
    }
    /* The reference tool's first point agrees. */
    lines L = read_lines(FIXTURES "list_n1.txt");
    tp_search_space ss;
    load_ok(FIXTURES "list.json", &ss);
    char **pts = NULL;
    assert_int_equal(tp_search_space_points(&ss, 1, &pts, err, sizeof err), 0);
    assert_int_equal(L.count, 1);
    /* The tool prints 0.0 where trainperf prints 0; compare the values. */
    const char *g = pts[0], *w = L.line[0];
    for (size_t k = 0; k < ss.fixed_count[0]; k++) {
        g = strchr(g, '=') + 1;
        w = strchr(w, '=') + 1;
        char *ge, *we;
        assert_true(strtod(g, &ge) == strtod(w, &we));
        g = ge;
        w = we;
    }
    free(pts[0]);
    free(pts);
    tp_search_space_free(&ss);
    free_lines(&L);
}

/* ---------------------------------------------------------------------------------------- */
/* Errors: one fixture per kind, each message checked whole (syntax errors up to the parser's
 * own words) */

static void test_load_errors(void **state)
{
    static const struct {
        const char *file;
        const char *rest; /* after "<path>:" */
        int prefix_only;
    } cases[] = {
        /* JSON: the parser's errors */
        {"syntax.json", "3: syntax error: ", 1},
        {"overflow.json", "3: syntax error: real number overflow near '1e400' (column 32)", 0},
        {"duplicate.json",
         "4: syntax error: duplicate object key near '\"learning_rate\"' (column 17)", 0},
        /* JSON: the shape of the file */
        {"top_scalar.json",
         "2: search space: must be an object of dimensions {\"<name>\": {...}, ...} or an array "
         "of points [{\"<name>\": <number>, ...}, ...], got \"hello\"",
         0},
        {"empty_dict.json",
         "1: search space: has no hyperparameters; expected at least one dimension, an object "
         "{\"min\": <number>, \"max\": <number>, \"scaling\": \"log\" or \"linear\"} or "
         "{\"feasible_points\": [<number>, ...]}",
         0},
        {"empty_list.json",
         "2: search space: has no points; expected at least one point, a non-empty object of "
         "hyperparameter values {\"<name>\": <number>, ...}",
         0},
        /* JSON: dimensions */
        {"missing_min.json",
         "3: weight_decay.min: missing; must be a finite number (the low end of the range)", 0},
        {"min_gt_max.json", "6: learning_rate.max: must be >= min (0.01), got 0.0001", 0},
        {"log_nonpositive.json",
         "3: weight_decay.min: must be > 0 with \"log\" scaling, got 0; use \"linear\" scaling "
         "for a range that reaches 0 or below",
         0},
        {"unknown_scaling.json",
         "4: learning_rate.scaling: unknown scaling \"exp\"; expected \"log\" or \"linear\"", 0},
        {"empty_feasible.json",
         "4: dropout_rate.feasible_points: must be a non-empty array of numbers [<number>, ...], "
         "got an empty array",
         0},
        {"feasible_not_number.json",
         "4: dropout_rate.feasible_points[1]: must be a finite number, got \"0.1\"", 0},
        {"min_not_number.json", "2: learning_rate.min: must be a finite number, got \"1e-4\"", 0},
        {"unknown_key.json",
         "4: learning_rate.mni: unknown key (did you mean \"min\"?); expected one of: min, max, "
         "scaling, feasible_points",
         0},
        {"combined.json",
         "3: beta2.scaling: cannot be combined with feasible_points; a dimension is either a "
         "range (min, max, scaling) or a list of feasible_points",
         0},
        {"dim_not_object.json",
         "3: learning_rate: must be an object {\"min\": <number>, \"max\": <number>, "
         "\"scaling\": \"log\" or \"linear\"} or {\"feasible_points\": [<number>, ...]}, got 0.1",
         0},
        {"bad_name.json",
         "3: Learning\"Rate{: invalid hyperparameter name; names are lowercase letters, digits "
         "and '_', starting with a letter",
         0},
        /* JSON: the list form */
        {"point_not_object.json",
         "5: [2]: must be a non-empty object of hyperparameter values {\"<name>\": <number>, "
         "...}, got 3",
         0},
        {"empty_point.json",
         "2: [1]: must be a non-empty object of hyperparameter values {\"<name>\": <number>, "
         "...}, got an empty object",
         0},
        {"point_value_not_number.json", "1: [0].nested: must be a finite number, got an array", 0},
        {"point_value_bool.json", "2: [1].use_nesterov: must be a finite number, got true", 0},
        /* libconfig */
        {"syntax.cfg", "3: syntax error: ", 1},
        {"nonfinite.cfg", "4: search_space.learning_rate.max: must be a finite number, got inf", 0},
        {"missing_min.cfg",
         "3: search_space.weight_decay.min: missing; must be a finite number (the low end of the "
         "range)",
         0},
        {"min_gt_max.cfg", "4: search_space.learning_rate.max: must be >= min (0.01), got 0.0001",
         0},
        {"log_nonpositive.cfg",
         "3: search_space.weight_decay.min: must be > 0 with \"log\" scaling, got -1; use "
         "\"linear\" scaling for a range that reaches 0 or below",
         0},
        {"unknown_scaling.cfg",
         "3: search_space.learning_rate.scaling: unknown scaling \"exp\"; expected \"log\" or "
         "\"linear\"",
         0},
        {"scaling_not_string.cfg",
         "2: search_space.learning_rate.scaling: must be \"log\" or \"linear\", got true", 0},
        {"empty_feasible.cfg",
         "3: search_space.dropout_rate.feasible_points: must be a non-empty array or list of "
         "numbers [<number>, ...], got an empty array",
         0},
        {"feasible_not_number.cfg",
         "3: search_space.dropout_rate.feasible_points[1]: must be a finite number, got \"x\"", 0},
        {"unknown_key.cfg",
         "3: search_space.learning_rate.feasible: unknown key; expected one of: min, max, "
         "scaling, feasible_points",
         0},
        {"dim_not_object.cfg",
         "2: search_space.learning_rate: must be a group { min = <number>; max = <number>; "
         "scaling = \"log\" or \"linear\"; } or { feasible_points = [<number>, ...]; }, got an "
         "array",
         0},
        {"point_not_object.cfg",
         "3: search_space[1]: must be a non-empty group of hyperparameter values { <name> = "
         "<number>; ... }, got 3",
         0},
        {"point_value_not_number.cfg",
         "4: search_space[1].optimizer: must be a finite number, got \"adam\"", 0},
        {"unknown_top.cfg",
         "2: searchspace: unknown key (did you mean \"search_space\"?); expected search_space", 0},
        {"missing_top.cfg",
         "1: search_space: missing; must be a group of dimensions { <name> = {...}; ... } or a "
         "list of points ( { <name> = <number>; ... }, ... )",
         0},
        {"top_array.cfg",
         "1: search_space: must be a group of dimensions { <name> = {...}; ... } or a list of "
         "points ( { <name> = <number>; ... }, ... ), got an array",
         0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512], want[1024];
        snprintf(path, sizeof path, "%sbad/%s", FIXTURES, cases[i].file);
        snprintf(want, sizeof want, "%s:%s", path, cases[i].rest);
        tp_search_space ss;
        memset(err, 0, sizeof err);
        int rc = tp_search_space_load(path, &ss, err, sizeof err);
        print_message("%s -> %s\n", cases[i].file, err + strlen(FIXTURES "bad/"));
        assert_int_equal(rc, TP_ECONFIG);
        if (cases[i].prefix_only ? strncmp(err, want, strlen(want)) != 0 : strcmp(err, want) != 0)
            fail_msg("message\n  \"%s\"\nwanted\n  \"%s\"", err, want);
        assert_empty(&ss);
        tp_search_space_free(&ss);
    }
}

static void test_load_unreadable(void **state)
{
    tp_search_space ss;
    char want[1024];
    const char *path = FIXTURES "no_such_file.json";
    assert_int_equal(tp_search_space_load(path, &ss, err, sizeof err), TP_EIO);
    snprintf(want, sizeof want, "%s: cannot read: %s", path, strerror(ENOENT));
    assert_string_equal(err, want);
    assert_empty(&ss);

    path = FIXTURES "tuning_search_space.yaml";
    assert_int_equal(tp_search_space_load(path, &ss, err, sizeof err), TP_EINVAL);
    snprintf(want, sizeof want,
             "%s: unknown search space format; expected a .json (AlgoPerf's "
             "tuning_search_space.json) or a .cfg (libconfig) file",
             path);
    assert_string_equal(err, want);
    assert_empty(&ss);

    assert_int_equal(tp_search_space_load(NULL, &ss, err, sizeof err), TP_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt19937_outputs), cmocka_unit_test(test_mt19937_interval),
        cmocka_unit_test(test_mt19937_shuffle), cmocka_unit_test(test_halton_fixtures),
        cmocka_unit_test(test_halton_set),      cmocka_unit_test(test_halton_errors),
        cmocka_unit_test(test_mapping),         cmocka_unit_test(test_format),
        cmocka_unit_test(test_load_dict),       cmocka_unit_test(test_generate_search),
        cmocka_unit_test(test_points_exact),    cmocka_unit_test(test_list_form),
        cmocka_unit_test(test_load_errors),     cmocka_unit_test(test_load_unreadable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
