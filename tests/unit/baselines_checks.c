/*
 * baselines_checks.c - the shared checks of baselines_checks.h.
 */
#include "baselines_checks.h"

#include <setjmp.h>
#include <stdarg.h>

#include <cmocka.h>

#include <math.h>
#include <string.h>

int tb_libs_open(tb_lib *libs, const char *const *paths, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (tb_lib_open(&libs[k], paths[k]) != 0)
            return -1;
    return 0;
}

void tb_libs_close(tb_lib *libs, size_t n)
{
    for (size_t k = 0; k < n; k++)
        tb_lib_close(&libs[k]);
}

const tp_plugin_desc *tb_find(const tb_lib *libs, const char *const *paths, int lib, const char *id)
{
    const tp_plugin_desc *d = tb_lib_find(&libs[lib], id);
    if (d == NULL)
        fail_msg("%s: no plugin with id \"%s\"", paths[lib], id);
    return d;
}

const tp_hparam_decl *hparam_at(const tp_plugin_desc *d, uint32_t k)
{
    return (const tp_hparam_decl *)((const char *)d->hparams +
                                    (size_t)k * d->hparams[0].struct_size);
}

double mixed_err(double got, double want)
{
    return fabs(got - want) / fmax(1.0, fabs(want));
}

void step_io_init(step_io *io, uint64_t step, double factor)
{
    memset(io, 0, sizeof *io);
    TP_STRUCT_INIT(&io->batch, tp_batch);
    io->batch.size = io->batch.capacity = 8;
    io->batch.idx = io->idx;
    TP_STRUCT_INIT(&io->args, tp_update_args);
    io->args.step = step;
    io->args.lr_factor = factor;
    io->args.batch = &io->batch;
    TP_STRUCT_INIT(&io->err, tp_error);
}

double test_factor(uint64_t step)
{
    return 0.25 + 0.05 * (double)(step % 17);
}

double mock_grad(const tp_ctx *ctx, uint64_t i)
{
    return (double)(float)(ctx->a[i] * ((double)ctx->params[i] - ctx->c[i]));
}

void check_default(const tp_plugin_desc *d, const char *name, double want)
{
    for (uint32_t h = 0; h < d->num_hparams; h++) {
        if (strcmp(hparam_at(d, h)->name, name) == 0) {
            if (hparam_at(d, h)->default_value != want)
                fail_msg("plugin \"%s\": default of \"%s\" is %.17g, want %.17g", d->id, name,
                         hparam_at(d, h)->default_value, want);
            return;
        }
    }
    fail_msg("plugin \"%s\" does not declare hyperparameter \"%s\"", d->id, name);
}

void check_schedule(const tp_plugin_desc *d, uint64_t step_hint, const char *const *names,
                    const double *values, size_t num_hparams, const schedule_case *cases,
                    size_t num_cases)
{
    tp_ctx ctx;
    void *state = NULL;
    tp_error err;
    mock_ctx_init(&ctx, 10);
    ctx.desc = d;
    ctx.ts.step_hint = step_hint;
    for (size_t k = 0; k < num_hparams; k++)
        mock_set_hparam(&ctx, names[k], values[k]);
    TP_STRUCT_INIT(&err, tp_error);
    if (d->init != NULL)
        assert_int_equal(d->init(mock_host(), &ctx, &state, &err), TP_OK);
    assert_int_equal(ctx.hparam_unknown, 0);
    for (size_t k = 0; k < num_cases; k++) {
        double f = -1.0;
        assert_int_equal(d->lr_factor(state, mock_host(), &ctx, cases[k].step, &f, &err), TP_OK);
        if (fabs(f - cases[k].want) > 1e-12)
            fail_msg("%s step_hint=%llu (%zu hparams set): factor(%llu) = %.17g, want %.17g", d->id,
                     (unsigned long long)step_hint, num_hparams, (unsigned long long)cases[k].step,
                     f, cases[k].want);
    }
    if (d->destroy != NULL)
        d->destroy(state, mock_host(), &ctx);
    assert_int_equal(ctx.outstanding, 0);
    mock_ctx_free(&ctx);
}

void check_init_out_of_memory(const tp_plugin_desc *d)
{
    uint32_t needed;
    {
        tp_ctx ctx;
        tp_error err;
        void *state = NULL;
        mock_ctx_init(&ctx, 10);
        ctx.desc = d;
        TP_STRUCT_INIT(&err, tp_error);
        assert_int_equal(d->init(mock_host(), &ctx, &state, &err), TP_OK);
        needed = ctx.alloc_calls;
        d->destroy(state, mock_host(), &ctx);
        assert_int_equal(ctx.outstanding, 0);
        mock_ctx_free(&ctx);
    }
    assert_true(needed >= 1);
    for (uint32_t fail_at = 0; fail_at < needed; fail_at++) {
        tp_ctx ctx;
        tp_error err;
        void *sentinel = &ctx, *state = sentinel;
        mock_ctx_init(&ctx, 10);
        ctx.desc = d;
        ctx.fail_alloc_at = (int32_t)fail_at;
        TP_STRUCT_INIT(&err, tp_error);
        memset(err.message, 0, sizeof err.message);
        if (d->init(mock_host(), &ctx, &state, &err) != TP_ENOMEM)
            fail_msg("%s: init with allocation %u failing did not return TP_ENOMEM", d->id,
                     fail_at);
        assert_ptr_equal(state, sentinel);
        assert_int_equal(ctx.outstanding, 0);
        assert_int_equal(ctx.bad_frees, 0);
        mock_ctx_free(&ctx);
    }
}

void check_update_passes_host_errors(const tp_plugin_desc *d)
{
    tp_ctx ctx;
    void *state = NULL;
    step_io io;
    float before[10];
    mock_ctx_init(&ctx, 10);
    ctx.desc = d;
    step_io_init(&io, 0, 1.0);
    assert_int_equal(d->init(mock_host(), &ctx, &state, &io.err), TP_OK);
    memcpy(before, ctx.params, sizeof before);
    ctx.fail_grad = TP_EDATA;
    if (d->update(state, mock_host(), &ctx, &io.args, &io.err) != TP_EDATA)
        fail_msg("%s: update did not pass on the host's TP_EDATA", d->id);
    assert_memory_equal(before, ctx.params, sizeof before);
    if (d->precondition != NULL) {
        /* The failed step did not count as an update. */
        float out[10];
        assert_int_equal(d->precondition(state, mock_host(), &ctx, before, out, &io.err),
                         TP_ESTATE);
    }
    assert_int_equal(d->update(state, mock_host(), &ctx, &io.args, &io.err), TP_OK);
    d->destroy(state, mock_host(), &ctx);
    assert_int_equal(ctx.outstanding, 0);
    mock_ctx_free(&ctx);
}
