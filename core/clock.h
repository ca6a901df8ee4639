/*
 * clock.h - the two clocks of a trial: wall time (CLOCK_MONOTONIC, AlgoPerf's definition) and
 * process CPU time (CLOCK_PROCESS_CPUTIME_ID, stabler on a shared machine). A trial times
 * itself on one of them (the "timing clock") and records both.
 *
 * A tp_clock is an interface so the timing rules can be tested on a fake clock.
 */
#ifndef TP_CORE_CLOCK_H
#define TP_CORE_CLOCK_H

#include <stdint.h>

typedef enum tp_clock_kind {
    TP_CLOCK_WALL = 0,
    TP_CLOCK_CPU = 1,
    /* Virtual time: every step counts TP_CLOCK_STEP_SECONDS of submission time and nothing
     * else takes any, so a trial's times, eval schedule and score are the same on every run
     * (for reproducibility checks and tests; not a benchmark of speed). */
    TP_CLOCK_STEPS = 2
} tp_clock_kind;

#define TP_CLOCK_STEP_SECONDS 0.001

typedef struct tp_time {
    double wall; /* seconds */
    double cpu;  /* seconds */
} tp_time;

typedef struct tp_clock {
    void (*read)(void *ud, tp_time *t);
    void *ud;
} tp_clock;

/* The real clocks. */
extern const tp_clock tp_clock_system;

double tp_clock_wall_now(void);
double tp_clock_cpu_now(void);
/* The value of the timing clock in t. */
static inline double tp_time_pick(const tp_time *t, tp_clock_kind k)
{
    return k == TP_CLOCK_CPU ? t->cpu : t->wall;
}
/* A trial's submission time on clock k (any other value: wall) from what the results keep:
 * the steps clock's virtual seconds, else the CPU or wall seconds. */
static inline double tp_clock_submission_time(int k, uint64_t steps, double wall, double cpu)
{
    return k == TP_CLOCK_STEPS ? (double)steps * TP_CLOCK_STEP_SECONDS
           : k == TP_CLOCK_CPU ? cpu
                               : wall;
}
const char *tp_clock_kind_name(tp_clock_kind k); /* "wall" / "cpu" / "steps" */
/* Parse "wall" / "cpu" / "steps"; -1 when none. */
int tp_clock_kind_parse(const char *s);

#endif /* TP_CORE_CLOCK_H */
