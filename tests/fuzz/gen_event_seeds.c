/*
 * gen_event_seeds.c - writes the seed corpus of fuzz_events: event streams made with the
 * worker's own encoder (tp_event_write), valid trials and the kinds of broken stream the
 * decoder must refuse, each prefixed with the two split bytes fuzz_events reads first.
 *
 *   gen_event_seeds DIR    writes DIR/<name>.bin (DIR must exist)
 *
 * The frames are in this machine's byte order and struct layout, as the protocol is; the
 * checked-in seeds come from x86-64 Linux. Not here: anything the fuzzer derives itself.
 */
#define _POSIX_C_SOURCE 200809L

#include "core/events.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *out_dir;

/* A seed being written. */
typedef struct seed {
    int fd;
    const char *name;
} seed;

static void die(const char *what, const char *name)
{
    fprintf(stderr, "gen_event_seeds: %s %s: %s\n", what, name, strerror(errno));
    exit(1);
}

static seed seed_open(const char *name, unsigned split)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.bin", out_dir, name);
    seed s = {open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644), name};
    if (s.fd < 0)
        die("cannot write", path);
    unsigned char prefix[2] = {(unsigned char)(split & 0xff), (unsigned char)(split >> 8)};
    if (write(s.fd, prefix, 2) != 2)
        die("cannot write", path);
    return s;
}

static void seed_frame(seed *s, tp_event_type type, const void *payload, size_t size)
{
    if (tp_event_write(s->fd, type, payload, size) != TP_OK)
        die("cannot write a frame of", s->name);
}

static void seed_raw(seed *s, const void *bytes, size_t n)
{
    if (write(s->fd, bytes, n) != (ssize_t)n)
        die("cannot write", s->name);
}

static void seed_close(seed *s)
{
    close(s->fd);
}

/* ---------------------------------------------------------------------------------------- */
/* Events of a plausible trial */

static tp_event_hello hello(void)
{
    tp_event_hello h = {.num_params = 335114,
                        .train_size = 55000,
                        .step_hint = 4000,
                        .batch_size = 128,
                        .threads = 1,
                        .budget = 30.0,
                        .init_seconds = 0.42};
    return h;
}

static tp_event_progress progress(uint64_t step, double t)
{
    tp_event_progress p = {.step = step, .submission_time = t, .total_duration = t * 1.05};
    return p;
}

static tp_event_eval eval(uint32_t index, uint64_t step, double t, double metric)
{
    tp_event_eval e = {.global_step = step,
                       .eval_index = index,
                       .validation_reached = metric >= 0.885,
                       .test_reached = metric >= 0.885,
                       .score = t,
                       .submission_time_wall = t,
                       .submission_time_cpu = t * 0.98,
                       .total_duration = t * 1.05,
                       .validation_metric = metric,
                       .validation_loss = 1.0 - metric,
                       .test_metric = metric - 0.01,
                       .test_loss = 1.02 - metric};
    return e;
}

static tp_event_end end(int32_t status, int32_t reason, uint64_t steps, uint32_t evals, double ttt,
                        const char *message)
{
    tp_event_end e;
    memset(&e, 0, sizeof e);
    e.status = status;
    e.reason = reason;
    e.steps = steps;
    e.num_evals = evals;
    e.submission_time_wall = 3.5;
    e.submission_time_cpu = 3.4;
    e.time_to_target = ttt;
    e.best_validation_metric = evals ? 0.89 : NAN;
    e.wall_time = 4.1;
    snprintf(e.message, sizeof e.message, "%s", message);
    return e;
}

/* hello, progress and evals of a trial that reaches its target at the third eval. */
static void trial_body(seed *s)
{
    tp_event_hello h = hello();
    seed_frame(s, TP_EVENT_HELLO, &h, sizeof h);
    for (uint32_t i = 0; i < 3; i++) {
        tp_event_progress p = progress(500 * (i + 1), 1.0 * (i + 1) - 0.1);
        seed_frame(s, TP_EVENT_PROGRESS, &p, sizeof p);
        tp_event_eval e = eval(i, 500 * (i + 1), 1.0 * (i + 1), 0.8 + 0.04 * i);
        seed_frame(s, TP_EVENT_EVAL, &e, sizeof e);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_event_seeds DIR\n");
        return 2;
    }
    out_dir = argv[1];
    tp_event_hello h = hello();
    tp_event_progress p = progress(10, 0.5);

    /* A whole trial, split inside the second frame's header. */
    seed s = seed_open("trial_reached", 12 + sizeof(tp_event_hello) + 5);
    trial_body(&s);
    tp_event_end e = end(1, TP_OK, 1500, 3, 3.0, "");
    seed_frame(&s, TP_EVENT_END, &e, sizeof e);
    seed_close(&s);

    /* Budget exhausted before the target: time_to_target is +inf. */
    s = seed_open("trial_budget", 12 + sizeof(tp_event_hello) + 12 + 3);
    trial_body(&s);
    e = end(2, TP_OK, 1500, 3, INFINITY, "budget exhausted");
    seed_frame(&s, TP_EVENT_END, &e, sizeof e);
    seed_close(&s);

    /* A worker that fails during setup: an end without a hello. */
    s = seed_open("setup_failed", 40);
    e = end(3, TP_EINVAL, 0, 0, INFINITY, "model.hidden_width: must be an integer > 0, got -3");
    seed_frame(&s, TP_EVENT_END, &e, sizeof e);
    seed_close(&s);

    /* A stream cut off inside a frame (the worker was killed). */
    s = seed_open("truncated", 7);
    seed_frame(&s, TP_EVENT_HELLO, &h, sizeof h);
    seed_raw(&s, &(tp_event_header){TP_EVENT_MAGIC, TP_EVENT_PROGRESS, sizeof p}, 12);
    seed_raw(&s, &p, 9);
    seed_close(&s);

    /* Not an event stream at all. */
    s = seed_open("bad_magic", 3);
    seed_raw(&s, "worker says hello on fd 3\n", 26);
    seed_close(&s);

    /* A known type with the wrong size. */
    s = seed_open("bad_size", 0);
    seed_raw(&s, &(tp_event_header){TP_EVENT_MAGIC, TP_EVENT_HELLO, sizeof h + 8}, 12);
    seed_raw(&s, &h, sizeof h);
    seed_close(&s);

    /* Progress before hello. */
    s = seed_open("progress_first", 12);
    seed_frame(&s, TP_EVENT_PROGRESS, &p, sizeof p);
    seed_close(&s);

    /* Steps going backwards. */
    s = seed_open("step_backwards", 100);
    seed_frame(&s, TP_EVENT_HELLO, &h, sizeof h);
    seed_frame(&s, TP_EVENT_PROGRESS, &p, sizeof p);
    tp_event_progress back = progress(5, 0.6);
    seed_frame(&s, TP_EVENT_PROGRESS, &back, sizeof back);
    seed_close(&s);

    /* An eval index that skips one. */
    s = seed_open("eval_skip", 60);
    seed_frame(&s, TP_EVENT_HELLO, &h, sizeof h);
    tp_event_eval ev = eval(1, 10, 1.0, 0.5);
    seed_frame(&s, TP_EVENT_EVAL, &ev, sizeof ev);
    seed_close(&s);

    /* A NaN metric. */
    s = seed_open("eval_nan", 200);
    seed_frame(&s, TP_EVENT_HELLO, &h, sizeof h);
    ev = eval(0, 10, 1.0, NAN);
    seed_frame(&s, TP_EVENT_EVAL, &ev, sizeof ev);
    seed_close(&s);

    /* An end whose message fills its buffer without a terminating NUL. */
    s = seed_open("end_unterminated", 1);
    seed_frame(&s, TP_EVENT_HELLO, &h, sizeof h);
    e = end(4, TP_ECRASH, 0, 0, INFINITY, "");
    memset(e.message, 'A', sizeof e.message);
    seed_frame(&s, TP_EVENT_END, &e, sizeof e);
    seed_close(&s);

    /* A frame after the end event. */
    s = seed_open("after_end", 12 + sizeof h + 12 + sizeof e);
    seed_frame(&s, TP_EVENT_HELLO, &h, sizeof h);
    e = end(1, TP_OK, 0, 0, 0.0, "");
    seed_frame(&s, TP_EVENT_END, &e, sizeof e);
    seed_frame(&s, TP_EVENT_PROGRESS, &p, sizeof p);
    seed_close(&s);

    /* Two hellos. */
    s = seed_open("two_hellos", 30);
    seed_frame(&s, TP_EVENT_HELLO, &h, sizeof h);
    seed_frame(&s, TP_EVENT_HELLO, &h, sizeof h);
    seed_close(&s);

    /* Hello alone (the worker was killed before its first progress). */
    s = seed_open("hello_only", 12);
    seed_frame(&s, TP_EVENT_HELLO, &h, sizeof h);
    seed_close(&s);
    return 0;
}
