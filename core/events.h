/*
 * events.h - the event protocol from a worker to the host, over a pipe (the worker's fd 3).
 *
 * A stream of frames: a 12-byte header {magic "TPEV", type, payload size} and a fixed-size
 * payload per type, in the machine's byte order (both ends are on one machine). The host
 * trusts nothing: the decoder checks magic, type, exact size, finite numbers, terminated
 * strings and that steps and times never go backwards, and fails the trial on anything else.
 *
 * Not here: what the host does with events (runner.c) and the worker's sending policy.
 */
#ifndef TP_CORE_EVENTS_H
#define TP_CORE_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include <trainperf/trainperf.h>

#define TP_EVENT_MAGIC 0x56455054u /* "TPEV" little-endian */

typedef enum tp_event_type {
    TP_EVENT_HELLO = 1,    /* the trial is set up; untimed init done */
    TP_EVENT_PROGRESS = 2, /* periodic, after steps */
    TP_EVENT_EVAL = 3,     /* one eval's results */
    TP_EVENT_END = 4,      /* how the trial ended; the last event */
    TP_EVENT_SHARPNESS = 5 /* one (preconditioned) sharpness measurement (diagnostics) */
} tp_event_type;

typedef struct tp_event_header {
    uint32_t magic;
    uint32_t type;
    uint32_t size;
} tp_event_header;

typedef struct tp_event_hello {
    uint64_t num_params;
    uint64_t train_size;
    uint64_t step_hint;
    uint32_t batch_size;
    uint32_t threads;
    double budget;
    double init_seconds; /* wall seconds of untimed setup */
} tp_event_hello;

typedef struct tp_event_progress {
    uint64_t step;
    double submission_time; /* timing clock */
    double total_duration;  /* wall since the loop started */
} tp_event_progress;

typedef struct tp_event_eval {
    uint64_t global_step;
    uint32_t eval_index;
    int32_t validation_reached;
    int32_t test_reached;
    int32_t pad;
    double score;
    double submission_time_wall;
    double submission_time_cpu;
    double total_duration;
    double validation_metric;
    double validation_loss;
    double test_metric;
    double test_loss;
} tp_event_eval;

typedef struct tp_event_sharpness {
    uint64_t step;            /* steps taken when measured (0: at initialization) */
    uint32_t iters;           /* Lanczos products */
    int32_t threshold_kind;   /* 0: none known, 1: bounds sharpness, 2: preconditioned */
    uint64_t grads;           /* full-batch gradient evaluations */
    double loss;              /* full-batch loss over the fixed examples */
    double sharpness;         /* NaN when not measured */
    double precond_sharpness; /* NaN without a preconditioner */
    double threshold;         /* NaN when none is known */
    double lr;                /* the last update's learning rate (learning_rate x factor) */
    double seconds;           /* wall seconds of the measurement */
} tp_event_sharpness;

typedef struct tp_event_end {
    int32_t status; /* tp_trial_status */
    int32_t reason; /* TP_OK or TP_E... */
    uint64_t steps;
    uint32_t num_evals;
    uint32_t pad;
    double submission_time_wall;
    double submission_time_cpu;
    double time_to_target;         /* +inf when not reached */
    double best_validation_metric; /* NaN when no eval */
    double wall_time;
    char message[TP_ERROR_MESSAGE_MAX];
} tp_event_end;

typedef struct tp_event {
    tp_event_type type;
    union {
        tp_event_hello hello;
        tp_event_progress progress;
        tp_event_eval eval;
        tp_event_end end;
        tp_event_sharpness sharpness;
    } u;
} tp_event;

/* Write one frame to fd (EINTR and short writes handled). TP_EIO on failure. */
int tp_event_write(int fd, tp_event_type type, const void *payload, size_t size);

/* The host's incremental decoder. */
typedef struct tp_event_decoder {
    unsigned char buf[sizeof(tp_event_header) + sizeof(tp_event_end)];
    size_t have;
    int seen_hello, seen_end;
    uint64_t last_step;
    double last_time;
    uint32_t next_eval_index;
} tp_event_decoder;

void tp_event_decoder_init(tp_event_decoder *d);
/* Feed bytes; fn is called for every complete, valid event. Returns 0, fn's negative return,
 * or TP_EPROTO with a message at the first invalid byte (the decoder is then dead). */
int tp_event_decoder_feed(tp_event_decoder *d, const void *data, size_t len,
                          int (*fn)(const tp_event *ev, void *ud), void *ud, char *err,
                          size_t errlen);

#endif /* TP_CORE_EVENTS_H */
