/*
 * test_events.c - the worker -> host event protocol: frames written by tp_event_write are
 * decoded whole, fed in one piece or one byte at a time; the decoder refuses garbage, wrong
 * sizes, non-finite numbers, time going backwards, eval indices out of order and anything
 * after the end event.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/events.h"

typedef struct sink {
    tp_event ev[16];
    int n;
} sink;

static int collect(const tp_event *ev, void *ud)
{
    sink *s = ud;
    if (s->n < 16)
        s->ev[s->n] = *ev;
    s->n++;
    return 0;
}

/* Write frames into a pipe and read the bytes back. */
static size_t frames(unsigned char *buf, size_t cap, int count, const tp_event_type *types,
                     const void *const *payloads, const size_t *sizes)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    for (int i = 0; i < count; i++)
        assert_int_equal(tp_event_write(fds[1], types[i], payloads[i], sizes[i]), TP_OK);
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], buf + n, cap - n)) > 0)
        n += (size_t)r;
    close(fds[0]);
    return n;
}

static tp_event_hello hello(void)
{
    tp_event_hello h = {.num_params = 100,
                        .train_size = 50,
                        .step_hint = 10,
                        .batch_size = 8,
                        .threads = 1,
                        .budget = 60,
                        .init_seconds = 0.5};
    return h;
}

static tp_event_eval eval(uint32_t index, uint64_t step, double score)
{
    tp_event_eval e = {.global_step = step,
                       .eval_index = index,
                       .score = score,
                       .submission_time_wall = score,
                       .submission_time_cpu = score,
                       .total_duration = score + 1,
                       .validation_metric = 0.5,
                       .validation_loss = 1.0,
                       .test_metric = 0.4,
                       .test_loss = 1.1};
    return e;
}

static tp_event_end end_ok(uint64_t steps, uint32_t evals)
{
    tp_event_end e;
    memset(&e, 0, sizeof e);
    e.status = 2;
    e.steps = steps;
    e.num_evals = evals;
    e.time_to_target = INFINITY;
    e.best_validation_metric = 0.5;
    snprintf(e.message, sizeof e.message, "done");
    return e;
}

static void test_roundtrip_whole_and_bytewise(void **state)
{
    (void)state;
    tp_event_hello h = hello();
    tp_event_progress p = {3, 1.5, 2.0};
    tp_event_eval e0 = eval(0, 1, 0.1), e1 = eval(1, 5, 2.5);
    tp_event_end end = end_ok(5, 2);
    tp_event_type types[] = {TP_EVENT_HELLO, TP_EVENT_EVAL, TP_EVENT_PROGRESS, TP_EVENT_EVAL,
                             TP_EVENT_END};
    const void *pl[] = {&h, &e0, &p, &e1, &end};
    size_t sz[] = {sizeof h, sizeof e0, sizeof p, sizeof e1, sizeof end};
    unsigned char buf[8192];
    size_t n = frames(buf, sizeof buf, 5, types, pl, sz);

    for (int bytewise = 0; bytewise < 2; bytewise++) {
        tp_event_decoder d;
        tp_event_decoder_init(&d);
        sink s = {.n = 0};
        char err[256] = "";
        if (bytewise) {
            for (size_t i = 0; i < n; i++)
                assert_int_equal(
                    tp_event_decoder_feed(&d, buf + i, 1, collect, &s, err, sizeof err), 0);
        } else {
            assert_int_equal(tp_event_decoder_feed(&d, buf, n, collect, &s, err, sizeof err), 0);
        }
        assert_int_equal(s.n, 5);
        assert_int_equal(s.ev[0].type, TP_EVENT_HELLO);
        assert_int_equal(s.ev[0].u.hello.batch_size, 8);
        assert_int_equal(s.ev[3].u.eval.global_step, 5);
        assert_true(s.ev[3].u.eval.score == 2.5);
        assert_string_equal(s.ev[4].u.end.message, "done");
        assert_true(isinf(s.ev[4].u.end.time_to_target));
    }
}

/* A sharpness event round-trips with its NaNs; one with an infinite value or going back in
 * steps is refused. */
static void test_sharpness_event(void **state)
{
    (void)state;
    tp_event_hello h = hello();
    tp_event_sharpness m0 = {.step = 0,
                             .loss = 2.0,
                             .sharpness = 5.0,
                             .precond_sharpness = NAN,
                             .threshold = NAN,
                             .lr = NAN,
                             .iters = 9,
                             .grads = 19,
                             .seconds = 0.5};
    tp_event_sharpness m1 = m0;
    m1.step = 10;
    m1.precond_sharpness = 370.0;
    m1.threshold = 380.0;
    m1.threshold_kind = 2;
    m1.lr = 1e-3;
    tp_event_type types[] = {TP_EVENT_HELLO, TP_EVENT_SHARPNESS, TP_EVENT_SHARPNESS};
    const void *pl[] = {&h, &m0, &m1};
    size_t sz[] = {sizeof h, sizeof m0, sizeof m1};
    unsigned char buf[4096];
    size_t n = frames(buf, sizeof buf, 3, types, pl, sz);
    tp_event_decoder d;
    tp_event_decoder_init(&d);
    sink s = {.n = 0};
    char err[256] = "";
    assert_int_equal(tp_event_decoder_feed(&d, buf, n, collect, &s, err, sizeof err), 0);
    assert_int_equal(s.n, 3);
    assert_true(isnan(s.ev[1].u.sharpness.precond_sharpness));
    assert_true(s.ev[2].u.sharpness.threshold == 380.0);

    tp_event_sharpness bad = m1;
    bad.sharpness = INFINITY;
    const void *pl2[] = {&h, &bad};
    tp_event_type t2[] = {TP_EVENT_HELLO, TP_EVENT_SHARPNESS};
    unsigned char buf2[4096];
    size_t n2 = frames(buf2, sizeof buf2, 2, t2, pl2, sz);
    tp_event_decoder_init(&d);
    assert_int_equal(tp_event_decoder_feed(&d, buf2, n2, collect, &s, err, sizeof err), TP_EPROTO);
    assert_non_null(strstr(err, "invalid sharpness event (step 10)"));

    const void *pl3[] = {&h, &m1, &m0}; /* step 10, then step 0 */
    n = frames(buf, sizeof buf, 3, types, pl3, sz);
    tp_event_decoder_init(&d);
    assert_int_equal(tp_event_decoder_feed(&d, buf, n, collect, &s, err, sizeof err), TP_EPROTO);
    assert_non_null(strstr(err, "step 0"));
}

/* Feed one stream; expect TP_EPROTO with `needle` in the message. */
static void expect_refused(int count, const tp_event_type *types, const void *const *pl,
                           const size_t *sz, const char *needle)
{
    unsigned char buf[8192];
    size_t n = frames(buf, sizeof buf, count, types, pl, sz);
    tp_event_decoder d;
    tp_event_decoder_init(&d);
    sink s = {.n = 0};
    char err[256] = "";
    assert_int_equal(tp_event_decoder_feed(&d, buf, n, collect, &s, err, sizeof err), TP_EPROTO);
    if (!strstr(err, needle))
        fail_msg("message '%s' lacks '%s'", err, needle);
}

static void test_refuses_garbage(void **state)
{
    (void)state;
    tp_event_decoder d;
    tp_event_decoder_init(&d);
    char err[256] = "";
    const char junk[] = "Hello from a plugin that printf'd to the event pipe\n";
    assert_int_equal(tp_event_decoder_feed(&d, junk, sizeof junk, collect, NULL, err, sizeof err),
                     TP_EPROTO);
    assert_non_null(strstr(err, "bad frame header"));
    /* The decoder stays dead. */
    assert_int_equal(tp_event_decoder_feed(&d, junk, 4, collect, NULL, err, sizeof err), TP_EPROTO);
}

static void test_refuses_wrong_size(void **state)
{
    (void)state;
    tp_event_header h = {TP_EVENT_MAGIC, TP_EVENT_EVAL, 1u << 30}; /* a huge size */
    tp_event_decoder d;
    tp_event_decoder_init(&d);
    char err[256] = "";
    /* Header split over two feeds: still checked before the size is trusted. */
    assert_int_equal(tp_event_decoder_feed(&d, &h, 6, collect, NULL, err, sizeof err), 0);
    assert_int_equal(
        tp_event_decoder_feed(&d, (char *)&h + 6, sizeof h - 6, collect, NULL, err, sizeof err),
        TP_EPROTO);
    assert_non_null(strstr(err, "size"));
}

static void test_refuses_bad_content(void **state)
{
    (void)state;
    tp_event_hello h = hello();
    tp_event_eval e0 = eval(0, 4, 2.0);

    tp_event_eval nan_eval = eval(0, 1, 0.1);
    nan_eval.validation_metric = NAN;
    tp_event_type t2[] = {TP_EVENT_HELLO, TP_EVENT_EVAL};
    const void *p2[] = {&h, &nan_eval};
    size_t s2[] = {sizeof h, sizeof nan_eval};
    expect_refused(2, t2, p2, s2, "invalid eval");

    tp_event_eval skipped = eval(1, 1, 0.1); /* index 1 before 0 */
    const void *p3[] = {&h, &skipped};
    expect_refused(2, t2, p3, s2, "index 1");

    tp_event_eval back = eval(1, 5, 1.0); /* time going backwards */
    tp_event_type t4[] = {TP_EVENT_HELLO, TP_EVENT_EVAL, TP_EVENT_EVAL};
    const void *p4[] = {&h, &e0, &back};
    size_t s4[] = {sizeof h, sizeof e0, sizeof back};
    expect_refused(3, t4, p4, s4, "invalid eval");

    tp_event_type t5[] = {TP_EVENT_EVAL};
    const void *p5[] = {&e0};
    size_t s5[] = {sizeof e0};
    expect_refused(1, t5, p5, s5, "before hello");

    tp_event_end end = end_ok(4, 1);
    tp_event_type t6[] = {TP_EVENT_HELLO, TP_EVENT_EVAL, TP_EVENT_END, TP_EVENT_EVAL};
    const void *p6[] = {&h, &e0, &end, &e0};
    size_t s6[] = {sizeof h, sizeof e0, sizeof end, sizeof e0};
    expect_refused(4, t6, p6, s6, "after the end");

    tp_event_end unterminated = end_ok(0, 0);
    memset(unterminated.message, 'x', sizeof unterminated.message);
    tp_event_type t7[] = {TP_EVENT_HELLO, TP_EVENT_END};
    const void *p7[] = {&h, &unterminated};
    size_t s7[] = {sizeof h, sizeof unterminated};
    expect_refused(2, t7, p7, s7, "invalid end");
}

static void test_setup_failure_ends_without_hello(void **state)
{
    (void)state;
    tp_event_end end = end_ok(0, 0);
    end.status = 4;
    end.reason = TP_ECONFIG;
    tp_event_type t[] = {TP_EVENT_END};
    const void *p[] = {&end};
    size_t sz[] = {sizeof end};
    unsigned char buf[4096];
    size_t n = frames(buf, sizeof buf, 1, t, p, sz);
    tp_event_decoder d;
    tp_event_decoder_init(&d);
    sink s = {.n = 0};
    char err[256] = "";
    assert_int_equal(tp_event_decoder_feed(&d, buf, n, collect, &s, err, sizeof err), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ev[0].u.end.reason, TP_ECONFIG);
}

/* Bytes after the end event are refused however the stream is split (found by fuzzing: one
 * trailing byte in the same read as the end used to be buffered silently). */
static void test_trailing_byte_after_end(void **state)
{
    (void)state;
    tp_event_hello h = hello();
    tp_event_end end = end_ok(0, 0);
    tp_event_type t[] = {TP_EVENT_HELLO, TP_EVENT_END};
    const void *p[] = {&h, &end};
    size_t sz[] = {sizeof h, sizeof end};
    unsigned char buf[4096];
    size_t n = frames(buf, sizeof buf, 2, t, p, sz);
    buf[n++] = 0x42;
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        tp_event_decoder d;
        tp_event_decoder_init(&d);
        sink s = {.n = 0};
        char err[256] = "";
        int rc = 0;
        if (bytewise)
            for (size_t i = 0; i < n && rc == 0; i++)
                rc = tp_event_decoder_feed(&d, buf + i, 1, collect, &s, err, sizeof err);
        else
            rc = tp_event_decoder_feed(&d, buf, n, collect, &s, err, sizeof err);
        assert_int_equal(rc, TP_EPROTO);
        assert_non_null(strstr(err, "after the end"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_whole_and_bytewise),
        cmocka_unit_test(test_sharpness_event),
        cmocka_unit_test(test_refuses_garbage),
        cmocka_unit_test(test_refuses_wrong_size),
        cmocka_unit_test(test_refuses_bad_content),
        cmocka_unit_test(test_setup_failure_ends_without_hello),
        cmocka_unit_test(test_trailing_byte_after_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
