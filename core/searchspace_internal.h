/*
 * searchspace_internal.h - the pieces of core/searchspace.c that its unit test checks one by
 * one: the mapping of a Halton coordinate to a hyperparameter value, the shortest exact
 * printing of a value, and the Halton sequence with a chosen row order. Internal to core/
 * (tp__ prefix); callers outside core/ use core/searchspace.h.
 */
#ifndef TP_CORE_SEARCHSPACE_INTERNAL_H
#define TP_CORE_SEARCHSPACE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/searchspace.h"

/* The seed of the MT19937 that orders the rows of tp_halton_points: the order is the
 * reference's after numpy.random.seed(TP__HALTON_ROW_SEED) (see searchspace.c). */
#define TP__HALTON_ROW_SEED 0u

/* The value of dimension `dim` at Halton coordinate u in [0, 1), by the reference's formulas:
 * LOG min * exp(u * log(max / min)), LINEAR u * (max - min) + min, FEASIBLE
 * points[floor(u * num_points)]. */
double tp__ss_value(const tp_ss_dim *dim, double u);

/* v (finite) with the fewest significant digits (1..17, "%.*g") that strtod reads back as
 * exactly v; buf should hold 32 bytes. */
void tp__ss_format(double v, char *buf, size_t n);

/* tp_halton_points with the row order chosen: shuffle_rows 0 keeps the sequence order (points
 * 101, 102, ... of the sequence), 1 shuffles the rows as numpy.random.shuffle does after
 * numpy.random.seed(row_seed). */
int tp__halton_points_ordered(size_t dims, size_t n, int shuffle_rows, uint32_t row_seed,
                              double *out, char *err, size_t errlen);

#endif /* TP_CORE_SEARCHSPACE_INTERNAL_H */
