/*
 * events.c - encoding and validating worker events (see events.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "core/events.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static size_t payload_size(uint32_t type)
{
    switch (type) {
    case TP_EVENT_HELLO:
        return sizeof(tp_event_hello);
    case TP_EVENT_PROGRESS:
        return sizeof(tp_event_progress);
    case TP_EVENT_EVAL:
        return sizeof(tp_event_eval);
    case TP_EVENT_END:
        return sizeof(tp_event_end);
    case TP_EVENT_SHARPNESS:
        return sizeof(tp_event_sharpness);
    default:
        return 0;
    }
}

int tp_event_write(int fd, tp_event_type type, const void *payload, size_t size)
{
    unsigned char frame[sizeof(tp_event_header) + sizeof(tp_event_end)];
    if (size != payload_size(type))
        return TP_EINVAL;
    tp_event_header h = {TP_EVENT_MAGIC, (uint32_t)type, (uint32_t)size};
    memcpy(frame, &h, sizeof h);
    memcpy(frame + sizeof h, payload, size);
    size_t total = sizeof h + size, off = 0;
    while (off < total) {
        ssize_t n = write(fd, frame + off, total - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return TP_EIO;
        off += (size_t)n;
    }
    return TP_OK;
}

void tp_event_decoder_init(tp_event_decoder *d)
{
    memset(d, 0, sizeof *d);
    d->last_time = -INFINITY;
}

/* Every double must be finite, except the ones a field's meaning lets be inf/NaN. */
static int finite_nonneg(double x)
{
    return isfinite(x) && x >= 0;
}

static int check_event(tp_event_decoder *d, const tp_event *ev, char *err, size_t errlen)
{
    if (d->seen_end) {
        snprintf(err, errlen, "event after the end event");
        return TP_EPROTO;
    }
    /* A worker that fails during setup ends without a hello. */
    if (ev->type != TP_EVENT_HELLO && ev->type != TP_EVENT_END && !d->seen_hello) {
        snprintf(err, errlen, "event type %d before hello", ev->type);
        return TP_EPROTO;
    }
    switch (ev->type) {
    case TP_EVENT_HELLO: {
        const tp_event_hello *h = &ev->u.hello;
        if (d->seen_hello || h->batch_size == 0 || h->num_params == 0 ||
            !finite_nonneg(h->budget) || !finite_nonneg(h->init_seconds)) {
            snprintf(err, errlen, "invalid hello event");
            return TP_EPROTO;
        }
        d->seen_hello = 1;
        return 0;
    }
    case TP_EVENT_PROGRESS: {
        const tp_event_progress *p = &ev->u.progress;
        if (!finite_nonneg(p->submission_time) || !finite_nonneg(p->total_duration) ||
            p->step < d->last_step || p->submission_time < d->last_time) {
            snprintf(err, errlen, "invalid progress event (step %llu, time %g)",
                     (unsigned long long)p->step, p->submission_time);
            return TP_EPROTO;
        }
        d->last_step = p->step;
        d->last_time = p->submission_time;
        return 0;
    }
    case TP_EVENT_EVAL: {
        const tp_event_eval *e = &ev->u.eval;
        int ok = e->eval_index == d->next_eval_index && e->global_step >= d->last_step &&
                 finite_nonneg(e->score) && e->score >= d->last_time &&
                 finite_nonneg(e->submission_time_wall) && finite_nonneg(e->submission_time_cpu) &&
                 finite_nonneg(e->total_duration) && isfinite(e->validation_metric) &&
                 isfinite(e->validation_loss) && isfinite(e->test_metric) &&
                 isfinite(e->test_loss) && (e->validation_reached & ~1) == 0 &&
                 (e->test_reached & ~1) == 0;
        if (!ok) {
            snprintf(err, errlen, "invalid eval event (index %u, step %llu)", e->eval_index,
                     (unsigned long long)e->global_step);
            return TP_EPROTO;
        }
        d->next_eval_index++;
        d->last_step = e->global_step;
        d->last_time = e->score;
        return 0;
    }
    case TP_EVENT_SHARPNESS: {
        const tp_event_sharpness *s = &ev->u.sharpness;
        /* NaN marks what was not measured; infinities and negative times are not numbers a
         * measurement gives. */
        int ok = s->step >= d->last_step && isfinite(s->loss) && !isinf(s->sharpness) &&
                 !isinf(s->precond_sharpness) && !isinf(s->threshold) && s->threshold_kind >= 0 &&
                 s->threshold_kind <= 2 && finite_nonneg(s->seconds) && !(s->lr < 0) &&
                 !isinf(s->lr);
        if (!ok) {
            snprintf(err, errlen, "invalid sharpness event (step %llu)",
                     (unsigned long long)s->step);
            return TP_EPROTO;
        }
        d->last_step = s->step;
        return 0;
    }
    case TP_EVENT_END: {
        const tp_event_end *e = &ev->u.end;
        int ok = e->status >= 1 && e->status <= 4 && e->reason <= 0 && e->steps >= d->last_step &&
                 e->num_evals == d->next_eval_index && finite_nonneg(e->submission_time_wall) &&
                 finite_nonneg(e->submission_time_cpu) && finite_nonneg(e->wall_time) &&
                 !isnan(e->time_to_target) && e->time_to_target >= 0 &&
                 memchr(e->message, '\0', sizeof e->message) != NULL;
        if (!ok) {
            snprintf(err, errlen, "invalid end event (status %d, reason %d)", e->status, e->reason);
            return TP_EPROTO;
        }
        d->seen_end = 1;
        return 0;
    }
    }
    snprintf(err, errlen, "unknown event type %d", (int)ev->type);
    return TP_EPROTO;
}

int tp_event_decoder_feed(tp_event_decoder *d, const void *data, size_t len,
                          int (*fn)(const tp_event *ev, void *ud), void *ud, char *err,
                          size_t errlen)
{
    const unsigned char *p = data;
    tp_event_header h;
    while (len > 0) {
        /* Per frame, not per call: bytes after the end may arrive in the same read. */
        if (d->seen_end) {
            snprintf(err, errlen, "data after the end of the event stream");
            return TP_EPROTO;
        }
        if (d->have < sizeof h) {
            /* Header: validated as soon as it is complete, before its size is trusted. */
            size_t take = sizeof h - d->have;
            take = take < len ? take : len;
            memcpy(d->buf + d->have, p, take);
            d->have += take;
            p += take;
            len -= take;
            if (d->have < sizeof h)
                break;
            memcpy(&h, d->buf, sizeof h);
            size_t want = payload_size(h.type);
            if (h.magic != TP_EVENT_MAGIC || want == 0 || h.size != want) {
                snprintf(err, errlen,
                         "bad frame header (magic 0x%08x, type %u, size %u): not a trainperf "
                         "event stream",
                         h.magic, h.type, h.size);
                d->have = 0;
                d->seen_end = 1;
                return TP_EPROTO;
            }
            continue;
        }
        memcpy(&h, d->buf, sizeof h);
        size_t take = sizeof h + h.size - d->have;
        take = take < len ? take : len;
        memcpy(d->buf + d->have, p, take);
        d->have += take;
        p += take;
        len -= take;
        if (d->have < sizeof h + h.size)
            break;
        tp_event ev;
        memset(&ev, 0, sizeof ev);
        ev.type = (tp_event_type)h.type;
        memcpy(&ev.u, d->buf + sizeof h, h.size);
        d->have = 0;
        int rc = check_event(d, &ev, err, errlen);
        if (rc < 0) {
            d->seen_end = 1;
            return rc;
        }
        rc = fn ? fn(&ev, ud) : 0;
        if (rc < 0)
            return rc;
    }
    return 0;
}
