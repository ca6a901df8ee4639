/*
 * baselines_checks.h - checks shared by the tests of the baseline submissions (test_baselines.c
 * and the test_baselines_<family>.c files beside it), on top of the mock host of
 * test_baselines_host.h. They assert with cmocka, so they run inside a cmocka test.
 *
 *   - tb_libs_open / tb_find: the plugin files of a test group and their descriptors;
 *   - step_io: one update's batch, args and error struct;
 *   - mixed_err / OPT_TOL: the comparison of float parameters with a double reference;
 *   - test_factor / mock_grad: the varying schedule factor and the gradient the mock hands out;
 *   - check_default: a declared hyperparameter default;
 *   - check_schedule / CHECK_SCHEDULE: a schedule's factor at given steps;
 *   - check_init_out_of_memory / check_update_passes_host_errors: the failure paths every
 *     optimizer (and every plugin with an init) must survive.
 */
#ifndef BASELINES_CHECKS_H
#define BASELINES_CHECKS_H

#include <stddef.h>
#include <stdint.h>

#include "test_baselines_host.h"

/* Open the n plugin files at paths into libs (a test group's setup): 0, or -1 with a message
 * on stderr. */
int tb_libs_open(tb_lib *libs, const char *const *paths, size_t n);
void tb_libs_close(tb_lib *libs, size_t n);
/* The descriptor with this id in libs[lib]; fails the test when there is none. */
const tp_plugin_desc *tb_find(const tb_lib *libs, const char *const *paths, int lib,
                              const char *id);

/* Tolerance of the optimizer comparisons, in mixed_err units: float parameters carry ~6e-8
 * relative rounding per step; the plugins compute in float, the references in double. */
#define OPT_TOL 1e-6

/* Declaration k of d's hyperparameters (the stride is the plugin's struct_size). */
const tp_hparam_decl *hparam_at(const tp_plugin_desc *d, uint32_t k);

/* |got - want| / max(1, |want|), the comparison every optimizer test uses. */
double mixed_err(double got, double want);

/* A tp_update_args / tp_batch pair for step `step` with schedule factor `factor`. */
typedef struct step_io {
    uint32_t idx[8];
    tp_batch batch;
    tp_update_args args;
    tp_error err;
} step_io;

void step_io_init(step_io *io, uint64_t step, double factor);

/* The schedule factor the optimizer tests feed in: varies so lr_factor is really used. */
double test_factor(uint64_t step);

/* The gradient the mock hands out at the plugin's current (float) parameters, in double. */
double mock_grad(const tp_ctx *ctx, uint64_t i);

/* d declares `name` with default `want` (fails the test otherwise). */
void check_default(const tp_plugin_desc *d, const char *name, double want);

typedef struct schedule_case {
    uint64_t step;
    double want;
} schedule_case;

/* Run schedule d with step_hint over the cases (|factor - want| <= 1e-12). The hparams are
 * set first: num_hparams name/value pairs (names NULL-free). */
void check_schedule(const tp_plugin_desc *d, uint64_t step_hint, const char *const *names,
                    const double *values, size_t num_hparams, const schedule_case *cases,
                    size_t num_cases);

/* check_schedule with warmup_factor only (< 0: the declared default). */
#define CHECK_SCHEDULE(d, hint, wf, ...)                                                           \
    do {                                                                                           \
        const schedule_case cs_[] = {__VA_ARGS__};                                                 \
        const char *const wn_[] = {"warmup_factor"};                                               \
        const double wv_[] = {(wf)};                                                               \
        check_schedule(d, hint, wn_, wv_, (wf) >= 0.0 ? 1 : 0, cs_, sizeof cs_ / sizeof cs_[0]);   \
    } while (0)

/* Fail each of d->init's allocations in turn: init returns TP_ENOMEM, leaves *state alone and
 * nothing allocated. */
void check_init_out_of_memory(const tp_plugin_desc *d);

/* Optimizer d with a failing loss_and_grad: update returns the host's code and leaves the
 * parameters alone, and the failed step does not count as an update. */
void check_update_passes_host_errors(const tp_plugin_desc *d);

#endif /* BASELINES_CHECKS_H */
