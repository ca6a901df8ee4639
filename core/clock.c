/*
 * clock.c - wall and process-CPU clocks (see clock.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "core/clock.h"

#include <string.h>
#include <time.h>

static double ts_seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double tp_clock_wall_now(void)
{
    return ts_seconds(CLOCK_MONOTONIC);
}

double tp_clock_cpu_now(void)
{
    return ts_seconds(CLOCK_PROCESS_CPUTIME_ID);
}

static void system_read(void *ud, tp_time *t)
{
    (void)ud;
    t->wall = tp_clock_wall_now();
    t->cpu = tp_clock_cpu_now();
}

const tp_clock tp_clock_system = {system_read, NULL};

const char *tp_clock_kind_name(tp_clock_kind k)
{
    return k == TP_CLOCK_CPU ? "cpu" : k == TP_CLOCK_STEPS ? "steps" : "wall";
}

int tp_clock_kind_parse(const char *s)
{
    if (s && strcmp(s, "wall") == 0)
        return TP_CLOCK_WALL;
    if (s && strcmp(s, "cpu") == 0)
        return TP_CLOCK_CPU;
    if (s && strcmp(s, "steps") == 0)
        return TP_CLOCK_STEPS;
    return -1;
}
