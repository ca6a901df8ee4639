/*
 * worker_main.c - trainperf-worker: the process that runs one trial (or checks one plugin) on
 * behalf of the host. Users do not run it directly; `trainperf run` and `trainperf check`
 * spawn it. Usage:
 *
 *   trainperf-worker run --workload-config FILE --plugins DIR --optimizer ID
 *                        [--schedule ID] [--selection ID] [--hparams k=v,...] [--set k=v]...
 *                        [--seed N] [--clock wall|cpu] [--max-steps N] [--threads N]
 *                        [--event-fd FD]
 *   trainperf-worker check PLUGIN.so
 *   trainperf-worker list DIR
 */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/plugin.h"
#include "core/worker.h"

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: trainperf-worker run --workload-config FILE --plugins DIR "
                    "--optimizer ID [options]\n"
                    "       trainperf-worker check PLUGIN.so\n"
                    "(spawned by `trainperf run` / `trainperf check`; see `trainperf help`)\n");
    return 2;
}

static int cmd_run(int argc, char **argv)
{
    tp_worker_args a;
    memset(&a, 0, sizeof a);
    a.threads = 1;
    a.event_fd = -1;
    a.clock = TP_CLOCK_WALL;
    enum {
        O_CFG = 256,
        O_PLUGINS,
        O_OPT,
        O_SCHED,
        O_SEL,
        O_HP,
        O_SET,
        O_SEED,
        O_CLOCK,
        O_MAXSTEPS,
        O_THREADS,
        O_FD
    };
    static const struct option opts[] = {
        {"workload-config", required_argument, 0, O_CFG},
        {"plugins", required_argument, 0, O_PLUGINS},
        {"optimizer", required_argument, 0, O_OPT},
        {"schedule", required_argument, 0, O_SCHED},
        {"selection", required_argument, 0, O_SEL},
        {"hparams", required_argument, 0, O_HP},
        {"set", required_argument, 0, O_SET},
        {"seed", required_argument, 0, O_SEED},
        {"clock", required_argument, 0, O_CLOCK},
        {"max-steps", required_argument, 0, O_MAXSTEPS},
        {"threads", required_argument, 0, O_THREADS},
        {"event-fd", required_argument, 0, O_FD},
        {0, 0, 0, 0},
    };
    uint64_t v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_CFG:
            a.workload_config = optarg;
            break;
        case O_PLUGINS:
            a.plugin_dir = optarg;
            break;
        case O_OPT:
            a.optimizer = optarg;
            break;
        case O_SCHED:
            a.schedule = optarg;
            break;
        case O_SEL:
            a.selection = optarg;
            break;
        case O_HP:
            a.hparams = optarg;
            break;
        case O_SET:
            if (a.num_overrides == TP_WORKER_MAX_OVERRIDES) {
                fprintf(stderr, "trainperf-worker: too many --set options\n");
                return 2;
            }
            a.overrides[a.num_overrides++] = optarg;
            break;
        case O_SEED:
            if (parse_u64(optarg, &a.seed) < 0)
                goto bad;
            break;
        case O_CLOCK: {
            int k = tp_clock_kind_parse(optarg);
            if (k < 0)
                goto bad;
            a.clock = (tp_clock_kind)k;
            break;
        }
        case O_MAXSTEPS:
            if (parse_u64(optarg, &a.max_steps) < 0)
                goto bad;
            break;
        case O_THREADS:
            if (parse_u64(optarg, &v) < 0 || v < 1 || v > 256)
                goto bad;
            a.threads = (int)v;
            break;
        case O_FD:
            if (parse_u64(optarg, &v) < 0 || v > 1 << 20)
                goto bad;
            a.event_fd = (int)v;
            break;
        default:
            return usage();
        }
    }
    if (!a.workload_config || !a.plugin_dir || !a.optimizer || optind != argc)
        return usage();
    return tp_worker_run(&a) < 0 ? 1 : 0;
bad:
    fprintf(stderr, "trainperf-worker: bad value for --%s: '%s'\n", argv[optind - 1] + 2, optarg);
    return 2;
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
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(argv[1], "check") == 0 && argc == 3)
        return tp_check_plugin_file(argv[2], stdout) < 0 ? 1 : 0;
    if (strcmp(argv[1], "list") == 0 && argc == 3)
        return cmd_list(argv[2]);
    return usage();
}
