/*
 * searchspace.h - a submission's hyperparameter search space and the quasi-random search over
 * it (BENCHMARK.md §5).
 *
 * Two file formats, chosen by extension:
 *   - AlgoPerf's tuning_search_space.json, accepted as it is, in both forms:
 *       dict form: {"learning_rate": {"min": 1e-4, "max": 1e-2, "scaling": "log"},
 *                   "warmup_factor": {"feasible_points": [0.05]}, ...}
 *                  one dimension per key in file order;
 *       list form: [{"learning_rate": 0.0017, "one_minus_beta1": 0.067, ...}, ...]
 *                  fixed points, the first num_trials used in order;
 *   - libconfig (.cfg): the same two forms,
 *       search_space = { learning_rate = { min = 1e-4; max = 1e-2; scaling = "log"; }; ... };
 *       search_space = ( { learning_rate = 0.0017; ... }, ... );
 * Every error names the file, the line and the key.
 *
 * Points of the dict form come from the scrambled, shifted Halton sequence of the reference
 * (algoperf/halton.py), reproducing its point set for the same search space.
 *
 * Not here: how points are assigned to studies (sweep.c).
 */
#ifndef TP_CORE_SEARCHSPACE_H
#define TP_CORE_SEARCHSPACE_H

#include <stddef.h>
#include <stdint.h>

typedef enum tp_ss_kind {
    TP_SS_LINEAR = 1,  /* a + u (b - a) */
    TP_SS_LOG = 2,     /* a exp(u ln(b / a)) */
    TP_SS_FEASIBLE = 3 /* points[floor(u * n)] */
} tp_ss_kind;

typedef struct tp_ss_dim {
    char *name;
    tp_ss_kind kind;
    double min, max; /* LINEAR, LOG */
    double *points;  /* FEASIBLE */
    size_t num_points;
    int line; /* in the file */
} tp_ss_dim;

typedef struct tp_search_space {
    char *file;
    int is_list;     /* list form: fixed points */
    tp_ss_dim *dims; /* dict form */
    size_t num_dims;
    /* list form: num_fixed points, each with its own names and values (names may differ
     * between points, as in AlgoPerf's files; each point's keys in file order) */
    size_t num_fixed;
    size_t *fixed_count;   /* num_fixed */
    char ***fixed_names;   /* [point][k] */
    double **fixed_values; /* [point][k] */
} tp_search_space;

/* Load a .json or .cfg search space. On error *out is left empty (safe to free). */
int tp_search_space_load(const char *path, tp_search_space *out, char *err, size_t errlen);
void tp_search_space_free(tp_search_space *ss); /* free of a zeroed struct is a no-op */

/* The first n hyperparameter points as "name=value,name=value" strings (malloc'd, caller
 * frees each and the array): dict form through the quasi-random search (the reference's
 * generate_search(search_space, n)), list form the first n fixed points (TP_ERANGE when the
 * file has fewer). Values are printed so that they read back exactly. */
int tp_search_space_points(const tp_search_space *ss, size_t n, char ***points, char *err,
                           size_t errlen);

/* The scrambled, shifted Halton sequence: n points of `dims` coordinates in [0, 1), row-major
 * (n x dims), as the reference generates them for a search of n trials (100 skipped points,
 * rows shuffled). */
int tp_halton_points(size_t dims, size_t n, double *out, char *err, size_t errlen);

#endif /* TP_CORE_SEARCHSPACE_H */
