/*
 * fuzz_events.c - libFuzzer target for the host's event decoder (core/events.c,
 * tp_event_decoder_feed): the bytes a worker, which the host does not trust, writes to its
 * event pipe.
 *
 * Input: two bytes (little-endian) choose a split point, the rest is the stream. The stream is
 * decoded three times by fresh decoders: in one feed, in two feeds split at the chosen point
 * (split mod (length + 1)) and one byte per feed, as reads from a pipe may deliver it; a
 * caller stops feeding at the first error, as runner.c does.
 *
 * Checked beyond "no crash, no leak, no undefined behaviour":
 *   - how the bytes arrive does not matter: the three decodings deliver the same events and end
 *     with the same return code and message;
 *   - every event delivered keeps events.h's promises: a known type, hello at most once and
 *     first (an end may come without one), steps and times never going backwards, finite
 *     numbers, eval indices 0, 1, 2, ..., the end last, with a terminated message and the
 *     number of evals delivered;
 *   - a decoder that failed stays failed, and an error comes with a message.
 *
 * Seeds come from gen_event_seeds.c, which writes frames with tp_event_write.
 */
#define _POSIX_C_SOURCE 200809L

#include "core/events.h"
#include "fuzz_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { ERR_LEN = 512 };

/* What one decoding delivered. */
typedef struct outcome {
    int rc;
    char err[ERR_LEN];
    size_t num_events;
    uint64_t events_hash; /* over the events' bytes, in order */
    /* Promise checks across events */
    int seen_hello, seen_end;
    uint64_t last_step;
    double last_time;
    uint32_t evals;
} outcome;

static void outcome_init(outcome *o)
{
    memset(o, 0, sizeof *o);
    o->last_time = -INFINITY;
    o->events_hash = fuzz_hash(NULL, 0);
}

static int finite_nonneg(double x)
{
    return isfinite(x) && x >= 0;
}

static int on_event(const tp_event *ev, void *ud)
{
    outcome *o = ud;
    FUZZ_CHECK(!o->seen_end);
    switch (ev->type) {
    case TP_EVENT_HELLO:
        FUZZ_CHECK(!o->seen_hello);
        FUZZ_CHECK(ev->u.hello.batch_size > 0 && ev->u.hello.num_params > 0);
        FUZZ_CHECK(finite_nonneg(ev->u.hello.budget) && finite_nonneg(ev->u.hello.init_seconds));
        o->seen_hello = 1;
        break;
    case TP_EVENT_PROGRESS: {
        const tp_event_progress *p = &ev->u.progress;
        FUZZ_CHECK(o->seen_hello);
        FUZZ_CHECK(finite_nonneg(p->submission_time) && finite_nonneg(p->total_duration));
        FUZZ_CHECK(p->step >= o->last_step && p->submission_time >= o->last_time);
        o->last_step = p->step;
        o->last_time = p->submission_time;
        break;
    }
    case TP_EVENT_EVAL: {
        const tp_event_eval *e = &ev->u.eval;
        FUZZ_CHECK(o->seen_hello);
        FUZZ_CHECK(e->eval_index == o->evals);
        FUZZ_CHECK(e->global_step >= o->last_step && e->score >= o->last_time);
        FUZZ_CHECK(finite_nonneg(e->score) && finite_nonneg(e->submission_time_wall) &&
                   finite_nonneg(e->submission_time_cpu) && finite_nonneg(e->total_duration));
        FUZZ_CHECK(isfinite(e->validation_metric) && isfinite(e->validation_loss) &&
                   isfinite(e->test_metric) && isfinite(e->test_loss));
        FUZZ_CHECK((e->validation_reached == 0 || e->validation_reached == 1) &&
                   (e->test_reached == 0 || e->test_reached == 1));
        o->evals++;
        o->last_step = e->global_step;
        o->last_time = e->score;
        break;
    }
    case TP_EVENT_END: {
        const tp_event_end *e = &ev->u.end;
        FUZZ_CHECK(e->status >= 1 && e->status <= 4 && e->reason <= 0);
        FUZZ_CHECK(e->steps >= o->last_step && e->num_evals == o->evals);
        FUZZ_CHECK(finite_nonneg(e->submission_time_wall) &&
                   finite_nonneg(e->submission_time_cpu) && finite_nonneg(e->wall_time));
        FUZZ_CHECK(!isnan(e->time_to_target) && e->time_to_target >= 0);
        FUZZ_CHECK(memchr(e->message, '\0', sizeof e->message) != NULL);
        char copy[sizeof e->message];
        snprintf(copy, sizeof copy, "%s", e->message); /* what runner.c does with it */
        o->seen_end = 1;
        break;
    }
    default:
        FUZZ_CHECK(!"an event of no known type");
    }
    /* The hash chains each event's bytes (the decoder zeroes the struct before filling it). */
    uint64_t h = fuzz_hash((const uint8_t *)ev, sizeof *ev);
    o->events_hash = (o->events_hash ^ h) * 1099511628211ull;
    o->num_events++;
    return 0;
}

/* Feed data[len] in pieces of the given sizes (the last piece takes the rest), stopping at the
 * first error, and check that a failed decoder stays failed. */
static void decode(const uint8_t *data, size_t len, const size_t *pieces, size_t num_pieces,
                   outcome *o)
{
    tp_event_decoder d;
    tp_event_decoder_init(&d);
    outcome_init(o);
    size_t off = 0;
    for (size_t i = 0; i < num_pieces && o->rc == 0; i++) {
        size_t n = i + 1 == num_pieces ? len - off : pieces[i];
        o->rc = tp_event_decoder_feed(&d, data + off, n, on_event, o, o->err, sizeof o->err);
        off += n;
    }
    if (o->rc != 0) {
        FUZZ_CHECK(o->rc == TP_EPROTO);
        fuzz_check_message(o->err, sizeof o->err);
        size_t before = o->num_events;
        char err[ERR_LEN] = "";
        uint8_t more[sizeof(tp_event_header)] = {0};
        FUZZ_CHECK(tp_event_decoder_feed(&d, more, sizeof more, on_event, o, err, sizeof err) ==
                   TP_EPROTO);
        FUZZ_CHECK(o->num_events == before);
    }
}

static void decode_bytewise(const uint8_t *data, size_t len, outcome *o)
{
    tp_event_decoder d;
    tp_event_decoder_init(&d);
    outcome_init(o);
    for (size_t i = 0; i < len && o->rc == 0; i++)
        o->rc = tp_event_decoder_feed(&d, data + i, 1, on_event, o, o->err, sizeof o->err);
    /* An empty feed changes nothing. */
    if (o->rc == 0)
        FUZZ_CHECK(tp_event_decoder_feed(&d, data, 0, on_event, o, o->err, sizeof o->err) == 0);
}

static void same_outcome(const outcome *a, const outcome *b, const char *how)
{
    if (a->rc == b->rc && a->num_events == b->num_events && a->events_hash == b->events_hash &&
        strcmp(a->err, b->err) == 0)
        return;
    fprintf(stderr,
            "decoding in one feed and %s differ:\n"
            "  one feed: rc %d, %zu events, \"%s\"\n"
            "  %s: rc %d, %zu events, \"%s\"\n",
            how, a->rc, a->num_events, a->err, how, b->rc, b->num_events, b->err);
    FUZZ_CHECK(!"the decoding depends on how the bytes arrive");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t split = 0;
    if (size >= 2) {
        split = (size_t)data[0] | (size_t)data[1] << 8;
        data += 2;
        size -= 2;
    }
    split %= size + 1;

    outcome whole, two, bytes;
    decode(data, size, NULL, 1, &whole);
    size_t pieces[2] = {split, 0};
    decode(data, size, pieces, 2, &two);
    decode_bytewise(data, size, &bytes);
    same_outcome(&whole, &two, "in two feeds");
    same_outcome(&whole, &bytes, "one byte per feed");
    return 0;
}
