/*
 * tp_wltest.h - scaffolding shared by the workload unit tests (test_fmnist_mlp.c,
 * test_fmnist_resnet.c, test_fmnist_vit.c, test_kjv_lm.c): skipping when the Fashion-MNIST files
 * are not installed, creating a workload from test options (and the small Fashion-MNIST instance
 * a test group shares), looking a tensor up by name, the loss recomputed from the per-example
 * losses, and the check that a batch split into chunks and halves gives the loss, per-example
 * losses and gradient of the whole batch, and that evaluate on the training split agrees with
 * loss_and_grad.
 *
 * The functions fail the running cmocka test (fail_msg, assert_*) rather than return errors;
 * the header includes <cmocka.h> with the headers it needs first.
 *
 * Not here: anything about one workload's model (tensor tables, init statistics, finite
 * differences), the tests of real processes (tp_test.h).
 */
#ifndef TP_TESTS_TP_WLTEST_H
#define TP_TESTS_TP_WLTEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/nn/workload.h"

/* 1 when dir holds the Fashion-MNIST training images (train-images-idx3-ubyte.gz), else 0. */
int tp_wltest_have_fmnist(const char *dir);

/* Skip the running test, with a message, when the Fashion-MNIST files are not in dir (the
 * dataset-fashion-mnist package installs them in /usr/share/datasets/fashion-mnist). A macro so
 * that cmocka reports the skip at the test's own line. */
#define TP_WLTEST_REQUIRE_FMNIST(dir)                                                              \
    do {                                                                                           \
        if (!tp_wltest_have_fmnist(dir)) {                                                         \
            print_message("skipped: %s missing (install dataset-fashion-mnist)\n", (dir));         \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* Create the registered workload `name` from opts[0..n), with cfg as the config file named in
 * its error messages. The workload's code (0 or a negative TP_E...), *w on success; fails the
 * test when no workload of that name is registered. */
int tp_wltest_create(const char *name, const char *cfg, const tp_wl_option *opts, size_t n,
                     tp_workload **w, char *err, size_t errlen);
/* tp_wltest_create that must succeed: fails the test with the workload's message otherwise. */
tp_workload *tp_wltest_create_ok(const char *name, const char *cfg, const tp_wl_option *opts,
                                 size_t n);

/* For a cmocka group setup: create the Fashion-MNIST workload `name` on 2000 train, 1000
 * validation and 500 test examples (the options at lines 4 to 6 of cfg) into *w. 0 with *w NULL
 * when the files are not in dir (the tests that use it skip with TP_WLTEST_REQUIRE_FMNIST);
 * otherwise the workload's code, with its message printed when it fails. */
int tp_wltest_create_fmnist_small(const char *name, const char *cfg, const char *dir,
                                  tp_workload **w);
/* Free *w (NULL is a no-op) and set it to NULL: the group teardown of the above. */
void tp_wltest_free(tp_workload **w);

/* The tensor of w called name; NULL when w has none. */
const tp_tensor_info *tp_wltest_tensor(const tp_workload *w, const char *name);

/* The batch's loss in double, the mean of weight_i * per_i over the n per-example losses that
 * loss_and_grad writes into per (n floats; weights 1 when wts == NULL). No gradient is asked
 * for. Fails the test when loss_and_grad fails. */
double tp_wltest_loss_at(tp_workload *w, const float *params, const uint32_t *idx, const float *wts,
                         uint32_t n, const tp_loss_opts *o, uint64_t seed, float *per);

/* A batch of n indices into the training split (i * 7919 mod train, so they repeat) with
 * weights 0, 1, 2, ..., against its two halves of h = n / 2 rows each, all with NULL opts:
 * - its loss is the mean of w_i l_i over the per-example losses, to within
 *   mean_atol + mean_rtol * loss;
 * - its loss is the mean of the halves' losses and its first h per-example losses are the
 *   first half's (relative 1e-6 and 1e-5);
 * - its gradient is the mean of the halves' gradients to within 1e-5 of its largest entry.
 * Pick n larger than the workload's chunk so that the chunks' sums are what is checked.
 * Then evaluate(TP_SPLIT_TRAIN) covers `train` examples and its loss is, to relative 1e-5,
 * loss_and_grad's over all of them; its result goes into *ev when ev != NULL. */
void tp_wltest_check_chunks(tp_workload *w, const float *params, uint32_t n, uint32_t h,
                            uint64_t train, double mean_atol, double mean_rtol, tp_eval_result *ev);

#endif /* TP_TESTS_TP_WLTEST_H */
