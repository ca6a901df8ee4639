/*
 * report.h - what a person reads after a study (the terminal table is algoperf_io.c's): the
 * performance-profile plot (BENCHMARK.md §6) as SVG and PNG, and one self-contained HTML report
 * (scores, times to target, the profile, validation curves per workload, the sharpness of the
 * trials that measured it, every trial with its status and failure message), and the plot of one
 * trial's (preconditioned) sharpness against its stability threshold (BENCHMARK.md §9).
 *
 * Plots are drawn with PLplot (devices "svg" from libplplot17 and "pngcairo" from
 * plplot-driver-cairo). PLplot keeps global state, so every call here takes one process-wide
 * lock, draws into a stream of its own and ends it; PLplot never opens a file (output goes to
 * memory, and this module writes the file), never prompts, and never exits the process: a missing
 * driver is reported as TP_ENOTSUP with the package to install.
 *
 * Calls from several threads are safe (plots are drawn one at a time). PLplot itself still
 * prints a line to stderr when a driver fails to load.
 *
 * Files are written whole or not at all (a temporary file in the same directory, then rename);
 * the directory must exist. Every function returns 0 or a negative TP_E... code with a message
 * in err.
 *
 * Not here: computing scores (core/score.c), reading AlgoPerf directories (core/algoperf_io.c),
 * command-line parsing (core/cli.c).
 */
#ifndef TP_CORE_REPORT_H
#define TP_CORE_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/results.h"
#include "core/score.h"

/* The performance profiles of a score table: rho_s(tau) for tau in [1, 4] as one step curve per
 * submission (its own color and line style), a legend with each submission and its score, axis
 * labels and a title (960 x 640). Writes an SVG file to svg_path and a PNG file to png_path;
 * either may be NULL (not both); both are drawn before either is written. TP_EINVAL when the
 * table has no submissions or no workloads, TP_ENOTSUP when a PLplot device is missing, TP_EIO
 * when a file cannot be written. */
int tp_report_profile(const tp_score_table *score, const char *svg_path, const char *png_path,
                      char *err, size_t errlen);

/* One trial's sharpness measurements (tp_results_foreach_sharpness) against the step: the
 * preconditioned sharpness when the trial measured it, the plain sharpness when it measured
 * that, and the stability threshold (dashed; a series, as the learning rate may follow a
 * schedule), with a legend, axis labels and a title naming the workload, optimizer and trial
 * (880 x 520). The y axis runs from 0 to 1.5x the largest threshold when one is known (the few
 * huge preconditioned values of the first steps are cut off, and the plot says how many), else
 * it holds every value; it is logarithmic instead of linear when the main series
 * (preconditioned sharpness when measured) and the threshold span more than two decades.
 * Writes an SVG file to svg_path and a PNG file to png_path; either may be NULL (not both); both
 * are drawn before either is written. TP_ENOENT for an unknown trial or one without
 * measurements (the message says to run it with --sharpness-every), TP_ENOTSUP when a PLplot
 * device is missing, TP_EIO when a file cannot be written. */
int tp_report_sharpness(tp_results *db, int64_t trial_id, const char *svg_path,
                        const char *png_path, char *err, size_t errlen);

/* One self-contained HTML file at out_path (no external resources): when it was made and from
 * which database, the score table (score per submission; time to target and ratio to the
 * fastest per workload) when score is not NULL, the profile plot, a validation-metric vs
 * submission-time plot per workload (and variant) with one curve per trial colored by
 * submission and the validation target as a horizontal line, a "Training dynamics" section
 * when some trial measured its sharpness (the plot of tp_report_sharpness and a summary line
 * per trial, for the first 24 such trials), and a table of every trial with its status and
 * failure message. score may be NULL when there is nothing to score; text from the database is
 * HTML-escaped. */
int tp_report_html(tp_results *db, const tp_score_table *score, const char *out_path, char *err,
                   size_t errlen);

#endif /* TP_CORE_REPORT_H */
