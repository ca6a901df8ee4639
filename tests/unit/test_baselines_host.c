/*
 * test_baselines_host.c - the mock tp_host and dlopen loader of test_baselines_host.h.
 */
#include "test_baselines_host.h"

#include "core/hostapi.h"

#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* The problem */

void mock_ctx_init(tp_ctx *ctx, uint64_t n)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->n = n;
    size_t bytes = (size_t)((n * sizeof(float) + 63) / 64 * 64);
    ctx->params = aligned_alloc(64, bytes);
    ctx->a = malloc(n * sizeof(double));
    ctx->c = malloc(n * sizeof(double));
    if (ctx->params == NULL || ctx->a == NULL || ctx->c == NULL) {
        fprintf(stderr, "mock_ctx_init: out of memory for %llu parameters\n",
                (unsigned long long)n);
        abort(); /* test harness only */
    }
    for (uint64_t i = 0; i < n; i++) {
        ctx->a[i] = 0.5 + 0.15 * (double)(i % 10);
        ctx->c[i] = sin((double)i + 1.0);
        ctx->params[i] = (float)(0.5 * cos(2.0 * (double)i));
    }
    if (n == 10) {
        /* fc.weight (2, 3) at 0, fc.bias (3) at 6, norm.scale (1) at 9. */
        static const char *names[] = {"fc.weight", "fc.bias", "norm.scale"};
        static const tp_param_role roles[] = {TP_PARAM_ROLE_WEIGHT, TP_PARAM_ROLE_BIAS,
                                              TP_PARAM_ROLE_NORM_SCALE};
        static const uint64_t offsets[] = {0, 6, 9}, numels[] = {6, 3, 1};
        for (uint32_t t = 0; t < 3; t++) {
            tp_tensor_info *ti = &ctx->tensors[t];
            TP_STRUCT_INIT(ti, tp_tensor_info);
            ti->name = names[t];
            ti->role = roles[t];
            ti->ndim = t == 0 ? 2 : 1;
            for (uint32_t d = 0; d < TP_MAX_DIMS; d++)
                ti->shape[d] = 1;
            ti->shape[0] = t == 0 ? 2 : (uint32_t)numels[t];
            ti->shape[1] = t == 0 ? 3 : 1;
            ti->offset = offsets[t];
            ti->numel = numels[t];
        }
        ctx->num_tensors = 3;
    } else {
        tp_tensor_info *ti = &ctx->tensors[0];
        TP_STRUCT_INIT(ti, tp_tensor_info);
        ti->name = "w";
        ti->role = TP_PARAM_ROLE_WEIGHT;
        ti->ndim = 1;
        for (uint32_t d = 0; d < TP_MAX_DIMS; d++)
            ti->shape[d] = 1;
        ti->shape[0] = (uint32_t)n;
        ti->numel = n;
        ctx->num_tensors = 1;
    }

    TP_STRUCT_INIT(&ctx->ts, tp_train_state);
    ctx->ts.step_hint = 1000;
    ctx->ts.budget = 100.0;
    ctx->ts.batch_size = 8;
    ctx->ts.last_validation_metric = NAN;
    ctx->ts.last_validation_loss = NAN;
    ctx->ts.train_size = 100;
    ctx->ts.num_params = n;
    ctx->rng = 0x9e3779b97f4a7c15ull;
    ctx->fail_alloc_at = -1;
}

void mock_ctx_free(tp_ctx *ctx)
{
    for (uint32_t k = 0; k < MOCK_MAX_ALLOCS; k++)
        free(ctx->allocs[k]);
    free(ctx->params);
    free(ctx->a);
    free(ctx->c);
    memset(ctx, 0, sizeof *ctx);
}

void mock_set_hparam(tp_ctx *ctx, const char *name, double value)
{
    for (uint32_t k = 0; k < ctx->num_hparams; k++) {
        if (strcmp(ctx->hparam_names[k], name) == 0) {
            ctx->hparam_values[k] = value;
            return;
        }
    }
    if (ctx->num_hparams == MOCK_MAX_HPARAMS) {
        fprintf(stderr, "mock_set_hparam: more than %d hparams\n", MOCK_MAX_HPARAMS);
        abort();
    }
    ctx->hparam_names[ctx->num_hparams] = name;
    ctx->hparam_values[ctx->num_hparams++] = value;
}

double mock_loss(const tp_ctx *ctx)
{
    double loss = 0.0;
    for (uint64_t i = 0; i < ctx->n; i++) {
        double d = (double)ctx->params[i] - ctx->c[i];
        loss += 0.5 * ctx->a[i] * d * d;
    }
    return loss;
}

/* ---------------------------------------------------------------------------------------- */
/* The host functions */

static uint32_t mock_param_tensor_count(tp_ctx *ctx)
{
    return ctx->num_tensors;
}

static int mock_param_tensor_info(tp_ctx *ctx, uint32_t i, tp_tensor_info *out)
{
    if (out == NULL || i >= ctx->num_tensors)
        return TP_EINVAL;
    size_t k = out->struct_size < sizeof *out ? out->struct_size : sizeof *out;
    memcpy(out, &ctx->tensors[i], k);
    out->struct_size = (uint32_t)k;
    return TP_OK;
}

static float *mock_params(tp_ctx *ctx, uint64_t *num_params)
{
    if (num_params != NULL)
        *num_params = ctx->n;
    return ctx->params;
}

static int mock_loss_and_grad(tp_ctx *ctx, const float *params, const tp_batch *batch,
                              const tp_loss_opts *opts, float *grad, double *loss)
{
    const float *p = params != NULL ? params : ctx->params;
    ctx->last_batch = batch;
    ctx->last_params_arg = params;
    ctx->last_opts_null = opts == NULL;
    if (opts != NULL)
        ctx->last_opts = *opts;
    if (ctx->fail_grad != 0) {
        int rc = ctx->fail_grad;
        ctx->fail_grad = 0;
        return rc;
    }
    if (batch == NULL)
        return TP_EINVAL;
    ctx->grad_calls++;
    if (ctx->freeze_grad && ctx->grad_calls > 1) {
        if (loss != NULL)
            *loss = ctx->last_loss;
        return TP_OK;
    }
    double l = 0.0;
    for (uint64_t i = 0; i < ctx->n; i++) {
        double d = (double)p[i] - ctx->c[i];
        l += 0.5 * ctx->a[i] * d * d;
        if (grad != NULL)
            grad[i] = (float)(ctx->a[i] * d);
    }
    ctx->last_loss = l;
    if (loss != NULL)
        *loss = l;
    return TP_OK;
}

static int mock_per_example_loss(tp_ctx *ctx, const float *params, const tp_batch *batch,
                                 const tp_loss_opts *opts, float *losses)
{
    if (batch == NULL || losses == NULL)
        return TP_EINVAL;
    ctx->per_example_calls++;
    ctx->per_example_examples += batch->size;
    if (ctx->example_loss != NULL) {
        for (uint32_t j = 0; j < batch->size; j++) {
            if (batch->idx[j] >= ctx->ts.train_size)
                return TP_ERANGE;
            losses[j] = ctx->example_loss[batch->idx[j]];
        }
        return TP_OK;
    }
    double l = 0.0;
    int rc = mock_loss_and_grad(ctx, params, batch, opts, NULL, &l);
    for (uint32_t j = 0; rc == TP_OK && j < batch->size; j++)
        losses[j] = (float)l;
    return rc;
}

static int mock_next_indices(tp_ctx *ctx, uint32_t n, uint32_t *idx)
{
    if (idx == NULL)
        return TP_EINVAL;
    for (uint32_t j = 0; j < n; j++)
        idx[j] = (uint32_t)(ctx->next_index++ % ctx->ts.train_size);
    return TP_OK;
}

static void mock_vec_axpy(uint64_t n, float alpha, const float *x, float *y)
{
    for (uint64_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

static void mock_vec_scale(uint64_t n, float alpha, float *x)
{
    for (uint64_t i = 0; i < n; i++)
        x[i] *= alpha;
}

static void mock_vec_copy(uint64_t n, const float *x, float *y)
{
    memmove(y, x, n * sizeof(float));
}

static double mock_vec_dot(uint64_t n, const float *x, const float *y)
{
    double s = 0.0;
    for (uint64_t i = 0; i < n; i++)
        s += (double)x[i] * y[i];
    return s;
}

static double mock_vec_nrm2(uint64_t n, const float *x)
{
    return sqrt(mock_vec_dot(n, x, x));
}

static int mock_gemm(int trans_a, int trans_b, uint32_t m, uint32_t n, uint32_t k, float alpha,
                     const float *a, const float *b, float beta, float *c)
{
    if (a == NULL || b == NULL || c == NULL)
        return TP_EINVAL;
    for (uint32_t i = 0; i < m; i++) {
        for (uint32_t j = 0; j < n; j++) {
            double s = 0.0;
            for (uint32_t l = 0; l < k; l++) {
                float av = trans_a ? a[(size_t)l * m + i] : a[(size_t)i * k + l];
                float bv = trans_b ? b[(size_t)j * k + l] : b[(size_t)l * n + j];
                s += (double)av * bv;
            }
            c[(size_t)i * n + j] =
                (float)(alpha * s + (beta == 0.0f ? 0.0 : beta * c[(size_t)i * n + j]));
        }
    }
    return TP_OK;
}

static uint64_t mock_rng_u64(tp_ctx *ctx)
{
    /* splitmix64 */
    uint64_t z = (ctx->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double mock_rng_uniform(tp_ctx *ctx)
{
    return (double)(mock_rng_u64(ctx) >> 11) * 0x1.0p-53;
}

static double mock_rng_normal(tp_ctx *ctx)
{
    double u1 = 1.0 - mock_rng_uniform(ctx), u2 = mock_rng_uniform(ctx);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void *mock_alloc(tp_ctx *ctx, size_t bytes)
{
    uint32_t call = ctx->alloc_calls++;
    if (ctx->fail_alloc_at >= 0 && (uint32_t)ctx->fail_alloc_at == call)
        return NULL;
    for (uint32_t k = 0; k < MOCK_MAX_ALLOCS; k++) {
        if (ctx->allocs[k] == NULL) {
            size_t rounded = (bytes + 63) / 64 * 64;
            void *p = aligned_alloc(64, rounded == 0 ? 64 : rounded);
            if (p == NULL)
                return NULL;
            memset(p, 0, rounded == 0 ? 64 : rounded);
            ctx->allocs[k] = p;
            ctx->outstanding++;
            return p;
        }
    }
    return NULL;
}

static void mock_free(tp_ctx *ctx, void *p)
{
    if (p == NULL)
        return;
    for (uint32_t k = 0; k < MOCK_MAX_ALLOCS; k++) {
        if (ctx->allocs[k] == p) {
            free(p);
            ctx->allocs[k] = NULL;
            ctx->outstanding--;
            return;
        }
    }
    ctx->bad_frees++;
}

static void mock_log(tp_ctx *ctx, tp_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[plugin log %d] ", (int)level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static const tp_train_state *mock_train_state(tp_ctx *ctx)
{
    return &ctx->ts;
}

static int mock_hparam(tp_ctx *ctx, const char *name, double *value)
{
    if (name == NULL || value == NULL)
        return TP_EINVAL;
    const tp_plugin_desc *d = ctx->desc;
    const tp_hparam_decl *decl = NULL;
    for (uint32_t k = 0; d != NULL && k < d->num_hparams; k++) {
        const tp_hparam_decl *h = (const tp_hparam_decl *)((const char *)d->hparams +
                                                           (size_t)k * d->hparams[0].struct_size);
        if (strcmp(h->name, name) == 0)
            decl = h;
    }
    if (decl == NULL) {
        ctx->hparam_unknown++;
        return TP_ENOENT;
    }
    *value = decl->default_value;
    for (uint32_t k = 0; k < ctx->num_hparams; k++)
        if (strcmp(ctx->hparam_names[k], name) == 0)
            *value = ctx->hparam_values[k];
    return TP_OK;
}

static const tp_host mock_host_table = {
    .struct_size = sizeof(tp_host),
    .sdk_version = TP_SDK_VERSION,
    .param_tensor_count = mock_param_tensor_count,
    .param_tensor_info = mock_param_tensor_info,
    .params = mock_params,
    .loss_and_grad = mock_loss_and_grad,
    .per_example_loss = mock_per_example_loss,
    .next_indices = mock_next_indices,
    .vec_axpy = mock_vec_axpy,
    .vec_scale = mock_vec_scale,
    .vec_copy = mock_vec_copy,
    .vec_dot = mock_vec_dot,
    .vec_nrm2 = mock_vec_nrm2,
    .gemm = mock_gemm,
    .rng_u64 = mock_rng_u64,
    .rng_uniform = mock_rng_uniform,
    .rng_normal = mock_rng_normal,
    .alloc = mock_alloc,
    .free = mock_free,
    .log = mock_log,
    .train_state = mock_train_state,
    .hparam = mock_hparam,
    .sym_eig = NULL, /* set from the real host table in mock_host() */
};

const tp_host *mock_host(void)
{
    static tp_host table;
    if (table.struct_size == 0) {
        table = mock_host_table;
        table.sym_eig = tp_hostapi_table()->sym_eig;
    }
    return &table;
}

/* ---------------------------------------------------------------------------------------- */
/* The loader */

int tb_lib_open(tb_lib *lib, const char *path)
{
    memset(lib, 0, sizeof *lib);
    lib->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib->handle == NULL) {
        fprintf(stderr, "tb_lib_open: %s: %s (was the plugin target built?)\n", path, dlerror());
        return -1;
    }
    /* POSIX: a data pointer from dlsym converts to a function pointer; go through memcpy so
     * ISO C compilers do not warn. */
    void *sym = dlsym(lib->handle, TP_PLUGIN_ENTRY_SYMBOL);
    if (sym == NULL) {
        fprintf(stderr, "tb_lib_open: %s: no symbol %s\n", path, TP_PLUGIN_ENTRY_SYMBOL);
        dlclose(lib->handle);
        lib->handle = NULL;
        return -1;
    }
    memcpy(&lib->entry, &sym, sizeof lib->entry);
    return 0;
}

void tb_lib_close(tb_lib *lib)
{
    if (lib->handle != NULL)
        dlclose(lib->handle);
    memset(lib, 0, sizeof *lib);
}

const tp_plugin_desc *tb_lib_find(const tb_lib *lib, const char *id)
{
    for (uint32_t i = 0; lib->entry != NULL && i < 64; i++) {
        const tp_plugin_desc *d = lib->entry(i);
        if (d == NULL)
            return NULL;
        if (strcmp(d->id, id) == 0)
            return d;
    }
    return NULL;
}
