/*
 * worker_main.c - trainperf-worker: the process that runs one trial (or checks one plugin) on
 * behalf of the host. Users do not run it directly; `trainperf run` and `trainperf check`
 * spawn it. Usage:
 *
 *   trainperf-worker run --workload-config FILE --plugins DIR --optimizer ID
 *                        [--schedule ID] [--selection ID] [--hparams k=v,...] [--set k=v]...
 *                        [--seed N] [--clock wall|cpu] [--max-steps N] [--threads N]
 *                        [--event-fd FD] [--memory-limit BYTES[K|M|G|T]] [--no-sandbox]
 *   trainperf-worker check PLUGIN.so
 *   trainperf-worker list DIR
 *
 * `run` confines itself before any submission code runs (sandbox.h): --memory-limit sets the
 * address-space limit (default 16G, 0: none); --no-sandbox, for debugging by hand only, runs
 * without limits or seccomp filter. The host passes neither.
 */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/check.h"
#include "core/plugin.h"
#include "core/sandbox.h"
#include "core/spec.h"
#include "core/worker.h"

static int usage(void)
{
    fprintf(stderr, "usage: trainperf-worker run --workload-config FILE --plugins DIR "
                    "--optimizer ID [options]\n"
                    "       trainperf-worker check PLUGIN.so\n"
                    "(spawned by `trainperf run` / `trainperf check`; see `trainperf help`)\n");
    return 2;
}

static int cmd_run(int argc, char **argv, pid_t parent)
{
    tp_worker_args a;
    memset(&a, 0, sizeof a);
    tp_spec_init(&a.spec);
    a.event_fd = -1;
    a.memory_limit = -1;
    a.parent = parent;
    enum { O_FD = 1, O_MEM, O_NOSANDBOX };
    /* The spec's options (without their terminator), then the worker's own. */
    struct option opts[TP_SPEC_NUM_OPTIONS + 3];
    memcpy(opts, tp_spec_options, (TP_SPEC_NUM_OPTIONS - 1) * sizeof *opts);
    opts[TP_SPEC_NUM_OPTIONS - 1] = (struct option){"event-fd", required_argument, 0, O_FD};
    opts[TP_SPEC_NUM_OPTIONS] = (struct option){"memory-limit", required_argument, 0, O_MEM};
    opts[TP_SPEC_NUM_OPTIONS + 1] = (struct option){"no-sandbox", no_argument, 0, O_NOSANDBOX};
    opts[TP_SPEC_NUM_OPTIONS + 2] = (struct option){0, 0, 0, 0};
    char err[512];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (tp_spec_is_option(c)) {
            if (tp_spec_set(&a.spec, c, optarg, err, sizeof err) < 0) {
                fprintf(stderr, "trainperf-worker: %s\n", err);
                return 2;
            }
        } else if (c == O_FD) {
            char *end;
            long fd = strtol(optarg, &end, 10);
            if (*end || fd < 0 || fd > 1 << 20) {
                fprintf(stderr, "trainperf-worker: --event-fd: bad value '%s'\n", optarg);
                return 2;
            }
            a.event_fd = (int)fd;
        } else if (c == O_MEM) {
            uint64_t bytes;
            if (tp_sandbox_parse_bytes(optarg, &bytes, err, sizeof err) < 0) {
                fprintf(stderr, "trainperf-worker: --memory-limit: %s\n", err);
                return 2;
            }
            if (bytes > (uint64_t)INT64_MAX) {
                fprintf(stderr, "trainperf-worker: --memory-limit: '%s' is too large\n", optarg);
                return 2;
            }
            a.memory_limit = (int64_t)bytes;
        } else if (c == O_NOSANDBOX) {
            a.no_sandbox = 1;
        } else {
            return usage();
        }
    }
    if (!a.spec.workload_config || !a.spec.plugin_dir || !a.spec.optimizer || optind != argc)
        return usage();
    return tp_worker_run(&a) < 0 ? 1 : 0;
}

static void on_refused(const char *path, const char *msg, void *ud)
{
    int *bad = ud;
    (*bad)++;
    printf("  REFUSED %s\n          %s\n", path, msg);
}

/* Every plugin in dir with its kind and file; refused files with the reason. */
static int cmd_list(const char *dir)
{
    tp_plugin_set *set;
    char err[1024];
    int bad = 0;
    if (tp_plugin_set_init(&set) < 0)
        return 1;
    int rc = tp_plugin_set_add_dir(set, dir, on_refused, &bad, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "trainperf: %s\n", err);
        tp_plugin_set_free(set);
        return 1;
    }
    printf("  %-20s %-15s %-8s %s\n", "id", "kind", "sdk", "file");
    for (uint32_t i = 0; i < tp_plugin_set_count(set); i++) {
        const tp_plugin *p = tp_plugin_set_get(set, i);
        char ver[16];
        snprintf(ver, sizeof ver, "%u.%u", TP_SDK_VERSION_MAJOR_OF(p->sdk_version),
                 TP_SDK_VERSION_MINOR_OF(p->sdk_version));
        printf("  %-20s %-15s %-8s %s\n", p->id, tp_plugin_kind_name(p->kind), ver, p->path);
    }
    if (tp_plugin_set_count(set) == 0 && bad == 0)
        printf("  (none: build the project or drop a plugin .so here)\n");
    tp_plugin_set_free(set);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    /* Who started us, read first: the sandbox checks the host is still the parent once it has
     * asked to die with it. */
    pid_t parent = getppid();
    /* The trial log: line-buffered stdout, its buffer allocated now (stdio would fstat the fd
     * on first use, which the sandbox denies). */
    setvbuf(stdout, NULL, _IOLBF, BUFSIZ);
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(argc - 1, argv + 1, parent);
    if (strcmp(argv[1], "check") == 0 && argc == 3)
        return tp_check_plugin_file(argv[2], stdout) < 0 ? 1 : 0;
    if (strcmp(argv[1], "list") == 0 && argc == 3)
        return cmd_list(argv[2]);
    return usage();
}
