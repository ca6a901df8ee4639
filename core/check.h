/*
 * check.h - `trainperf check FILE`: load one plugin .so with the loader and print what it
 * holds (every descriptor: id, kind, SDK version, description, entry points present, and its
 * hyperparameters as a table) or every problem the loader finds in it.
 *
 * It runs inside a worker process (`trainperf-worker check FILE`), never in the host: loading
 * a plugin runs its code. Not here: the sandboxed smoke trial `trainperf check` also runs.
 */
#ifndef TP_CORE_CHECK_H
#define TP_CORE_CHECK_H

#include <stdio.h>

/* Print the report for the plugin file `path` to `out`. Returns 0 when the loader accepts the
 * file, else the loader's negative TP_E... code (TP_EABI, TP_EPLUGIN, TP_ENOENT, ...) after
 * printing each problem on its own line. */
int tp_check_plugin_file(const char *path, FILE *out);

#endif /* TP_CORE_CHECK_H */
