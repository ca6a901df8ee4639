/*
 * hostapi.c - the tp_host table and the session behind it (see hostapi.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "core/hostapi.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn/nn.h" /* tp_blas_sym_eig */
#include "core/nn/rng.h"
#include "core/sandbox.h" /* tp_sandbox_note_oom */

/* A tracked allocation: this header sits in the 64 bytes before the user's pointer. */
#define BLOCK_MAGIC 0x7470616c6c6f6331ULL /* "tpalloc1" */
typedef struct block {
    uint64_t magic;
    size_t bytes;
    struct block *prev, *next;
} block;
#define BLOCK_HEADER 64

struct tp_ctx {
    uint64_t magic;
    tp_session *s;
    char *id;
    char **names;
    double *values;
    uint32_t count;
    tp_rng rng;
    block *blocks;
    uint64_t live_blocks;
    tp_ctx *next;
};
#define CTX_MAGIC 0x7470637478303031ULL /* "tpctx001" */

struct tp_session {
    tp_workload *w;
    uint64_t seed;
    float *params;
    uint64_t num_params;
    tp_train_state ts;
    FILE *log;
    /* The input queue: a permutation of the training set, reshuffled every epoch. */
    uint32_t *perm;
    uint64_t perm_pos;
    tp_rng data_rng;
    uint64_t loss_calls; /* seeds dropout per call */
    tp_ctx *ctxs;
};

/* ---------------------------------------------------------------------------------------- */
/* Session */

int tp_session_create(const tp_session_config *p, tp_session **out, char *err, size_t errlen)
{
    *out = NULL;
    tp_workload *w = p->workload;
    if (!w || w->num_params == 0 || w->split_size[TP_SPLIT_TRAIN] == 0 ||
        w->split_size[TP_SPLIT_TRAIN] > UINT32_MAX) {
        snprintf(err, errlen, "session: workload has no parameters or no training data");
        return TP_EINVAL;
    }
    tp_session *s = calloc(1, sizeof *s);
    if (!s)
        goto nomem;
    s->w = w;
    s->seed = p->seed;
    s->log = p->log ? p->log : stderr;
    s->num_params = w->num_params;
    size_t bytes = (s->num_params * sizeof(float) + 63) & ~(size_t)63;
    if (posix_memalign((void **)&s->params, 64, bytes) != 0)
        goto nomem;
    memset(s->params, 0, bytes);
    int rc = w->vt->init_params(w, tp_mix64(p->seed ^ 0x1), s->params, err, errlen);
    if (rc < 0) {
        tp_session_free(s);
        return rc;
    }
    uint64_t n = w->split_size[TP_SPLIT_TRAIN];
    s->perm = malloc(n * sizeof *s->perm);
    if (!s->perm)
        goto nomem;
    for (uint64_t i = 0; i < n; i++)
        s->perm[i] = (uint32_t)i;
    tp_rng_seed2(&s->data_rng, p->seed, 0x64617461 /* "data" */);
    tp_rng_shuffle_u32(&s->data_rng, s->perm, n);

    tp_train_state *ts = &s->ts;
    TP_STRUCT_INIT(ts, tp_train_state);
    ts->step_hint = p->step_hint;
    ts->budget = p->budget;
    ts->batch_size = p->batch_size;
    ts->train_size = n;
    ts->num_params = s->num_params;
    ts->last_validation_metric = NAN;
    ts->last_validation_loss = NAN;
    *out = s;
    return TP_OK;
nomem:
    tp_session_free(s);
    snprintf(err, errlen, "session: out of memory");
    return TP_ENOMEM;
}

void tp_session_free(tp_session *s)
{
    if (!s)
        return;
    while (s->ctxs) {
        tp_ctx *c = s->ctxs;
        s->ctxs = c->next;
        tp_session_ctx_release(c);
        for (uint32_t i = 0; i < c->count; i++)
            free(c->names[i]);
        free(c->names);
        free(c->values);
        free(c->id);
        c->magic = 0;
        free(c);
    }
    free(s->params);
    free(s->perm);
    free(s);
}

tp_train_state *tp_session_train_state(tp_session *s)
{
    return &s->ts;
}

float *tp_session_params(tp_session *s)
{
    return s->params;
}

uint64_t tp_session_num_params(const tp_session *s)
{
    return s->num_params;
}

tp_ctx *tp_session_ctx_new(tp_session *s, const char *plugin_id, const char *const *names,
                           const double *values, uint32_t count)
{
    tp_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->magic = CTX_MAGIC;
    c->s = s;
    c->id = strdup(plugin_id);
    c->names = calloc(count ? count : 1, sizeof *c->names);
    c->values = calloc(count ? count : 1, sizeof *c->values);
    if (!c->id || !c->names || !c->values)
        goto fail;
    for (uint32_t i = 0; i < count; i++) {
        c->names[i] = strdup(names[i]);
        if (!c->names[i])
            goto fail;
        c->values[i] = values[i];
        c->count = i + 1;
    }
    uint64_t h = 1469598103934665603ULL; /* FNV-1a of the id: a per-plugin RNG stream */
    for (const char *p = plugin_id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    tp_rng_seed2(&c->rng, s->seed, h);
    c->next = s->ctxs;
    s->ctxs = c;
    return c;
fail:
    for (uint32_t i = 0; i < c->count; i++)
        free(c->names[i]);
    free(c->names);
    free(c->values);
    free(c->id);
    free(c);
    return NULL;
}

uint64_t tp_session_ctx_release(tp_ctx *c)
{
    uint64_t leaked = c->live_blocks;
    while (c->blocks) {
        block *b = c->blocks;
        c->blocks = b->next;
        b->magic = 0;
        free(b);
    }
    c->live_blocks = 0;
    return leaked;
}

/* ---------------------------------------------------------------------------------------- */
/* The table */

static tp_session *sess(tp_ctx *ctx)
{
    return ctx && ctx->magic == CTX_MAGIC ? ctx->s : NULL;
}

static void host_log(tp_ctx *ctx, tp_log_level level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    tp_session *s = sess(ctx);
    FILE *f = s ? s->log : stderr;
    if (!fmt)
        return;
    const char *lv = (unsigned)level < 4 ? names[level] : "log";
    fprintf(f, "[%s] %s: ", s ? ctx->id : "?", lv);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fflush(f);
}

#define CHECK(cond, code, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            host_log(ctx, TP_LOG_ERROR, __VA_ARGS__);                                              \
            return (code);                                                                         \
        }                                                                                          \
    } while (0)

static uint32_t host_param_tensor_count(tp_ctx *ctx)
{
    tp_session *s = sess(ctx);
    return s ? s->w->num_tensors : 0;
}

static int host_param_tensor_info(tp_ctx *ctx, uint32_t i, tp_tensor_info *out)
{
    tp_session *s = sess(ctx);
    CHECK(s, TP_EINVAL, "param_tensor_info: invalid context");
    CHECK(out, TP_EINVAL, "param_tensor_info: out is NULL");
    CHECK(i < s->w->num_tensors, TP_ERANGE, "param_tensor_info: index %u out of range (%u tensors)",
          i, s->w->num_tensors);
    CHECK(out->struct_size >= 8, TP_EINVAL,
          "param_tensor_info: out->struct_size not set (use TP_STRUCT_INIT)");
    tp_tensor_info t = s->w->tensors[i];
    size_t n = out->struct_size < sizeof t ? out->struct_size : sizeof t;
    t.struct_size = (uint32_t)n;
    t.sdk_version = TP_SDK_VERSION;
    memcpy(out, &t, n);
    return TP_OK;
}

static float *host_params(tp_ctx *ctx, uint64_t *num_params)
{
    tp_session *s = sess(ctx);
    if (!s)
        return NULL;
    if (num_params)
        *num_params = s->num_params;
    return s->params;
}

/* Copy what the caller's struct holds into a full local struct; absent fields keep defaults. */
static void read_opts(const tp_loss_opts *in, tp_loss_opts *o)
{
    memset(o, 0, sizeof *o);
    TP_STRUCT_INIT(o, tp_loss_opts);
    if (!in)
        return;
    if (TP_FIELD_PRESENT(in, tp_loss_opts, label_smoothing))
        o->label_smoothing = in->label_smoothing;
    if (TP_FIELD_PRESENT(in, tp_loss_opts, dropout_rate))
        o->dropout_rate = in->dropout_rate;
    if (TP_FIELD_PRESENT(in, tp_loss_opts, flags))
        o->flags = in->flags & ~TP_WL_LOSS_FROZEN_STATE; /* host-internal, not a plugin's */
}

static int check_batch(tp_ctx *ctx, const tp_batch *b, const char *fn)
{
    CHECK(b, TP_EINVAL, "%s: batch is NULL", fn);
    CHECK(TP_FIELD_PRESENT(b, tp_batch, weights), TP_EINVAL,
          "%s: batch->struct_size %u too small (use TP_STRUCT_INIT)", fn, b->struct_size);
    CHECK(b->size > 0 && b->idx, TP_EINVAL, "%s: empty batch or NULL idx", fn);
    return TP_OK;
}

static int run_loss(tp_ctx *ctx, const char *fn, const float *params, const tp_batch *batch,
                    const tp_loss_opts *opts, float *grad, double *loss, float *per_example)
{
    tp_session *s = sess(ctx);
    CHECK(s, TP_EINVAL, "%s: invalid context", fn);
    int rc = check_batch(ctx, batch, fn);
    if (rc < 0)
        return rc;
    tp_loss_opts o;
    read_opts(opts, &o);
    CHECK(o.label_smoothing >= 0 && o.label_smoothing < 1 && o.dropout_rate >= 0 &&
              o.dropout_rate < 1,
          TP_ERANGE, "%s: label_smoothing and dropout_rate must be in [0, 1)", fn);
    double l = 0;
    char err[TP_ERROR_MESSAGE_MAX] = "";
    uint64_t seed = tp_mix64(s->seed ^ tp_mix64(++s->loss_calls));
    rc = s->w->vt->loss_and_grad(s->w, params ? params : s->params, batch->idx, batch->weights,
                                 batch->size, &o, seed, grad, &l, per_example, err, sizeof err);
    CHECK(rc >= 0, rc, "%s: %s", fn, err);
    if (loss)
        *loss = l;
    return TP_OK;
}

static int host_loss_and_grad(tp_ctx *ctx, const float *params, const tp_batch *batch,
                              const tp_loss_opts *opts, float *grad, double *loss)
{
    return run_loss(ctx, "loss_and_grad", params, batch, opts, grad, loss, NULL);
}

static int host_per_example_loss(tp_ctx *ctx, const float *params, const tp_batch *batch,
                                 const tp_loss_opts *opts, float *losses)
{
    CHECK(losses, TP_EINVAL, "per_example_loss: losses is NULL");
    return run_loss(ctx, "per_example_loss", params, batch, opts, NULL, NULL, losses);
}

static int host_next_indices(tp_ctx *ctx, uint32_t n, uint32_t *idx)
{
    tp_session *s = sess(ctx);
    CHECK(s, TP_EINVAL, "next_indices: invalid context");
    CHECK(idx || n == 0, TP_EINVAL, "next_indices: idx is NULL");
    uint64_t size = s->ts.train_size;
    for (uint32_t i = 0; i < n; i++) {
        if (s->perm_pos == size) {
            tp_rng_shuffle_u32(&s->data_rng, s->perm, size);
            s->perm_pos = 0;
        }
        idx[i] = s->perm[s->perm_pos++];
    }
    return TP_OK;
}

/* BLAS takes int lengths: long vectors go in chunks. */
#define CHUNK ((uint64_t)1 << 30)

static void host_vec_axpy(uint64_t n, float alpha, const float *x, float *y)
{
    if (!x || !y)
        return;
    for (uint64_t o = 0; o < n; o += CHUNK)
        cblas_saxpy((int)(n - o < CHUNK ? n - o : CHUNK), alpha, x + o, 1, y + o, 1);
}

static void host_vec_scale(uint64_t n, float alpha, float *x)
{
    if (!x)
        return;
    for (uint64_t o = 0; o < n; o += CHUNK)
        cblas_sscal((int)(n - o < CHUNK ? n - o : CHUNK), alpha, x + o, 1);
}

static void host_vec_copy(uint64_t n, const float *x, float *y)
{
    if (x && y && n)
        memmove(y, x, n * sizeof *x);
}

static double host_vec_dot(uint64_t n, const float *x, const float *y)
{
    if (!x || !y)
        return NAN;
    double acc = 0;
    for (uint64_t o = 0; o < n; o += CHUNK)
        acc += cblas_dsdot((int)(n - o < CHUNK ? n - o : CHUNK), x + o, 1, y + o, 1);
    return acc;
}

static double host_vec_nrm2(uint64_t n, const float *x)
{
    return x ? sqrt(host_vec_dot(n, x, x)) : NAN;
}

static int host_gemm(int trans_a, int trans_b, uint32_t m, uint32_t n, uint32_t k, float alpha,
                     const float *a, const float *b, float beta, float *c)
{
    if (!a || !b || !c || m > INT_MAX || n > INT_MAX || k > INT_MAX)
        return TP_EINVAL;
    if (m == 0 || n == 0)
        return TP_OK;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a,
                trans_a ? (int)m : (int)k, b, trans_b ? (int)k : (int)n, beta, c, (int)n);
    return TP_OK;
}

static int host_sym_eig(uint32_t n, double *a, double *w)
{
    return tp_blas_sym_eig(n, a, w);
}

static uint64_t host_rng_u64(tp_ctx *ctx)
{
    return sess(ctx) ? tp_rng_u64(&ctx->rng) : 0;
}

static double host_rng_uniform(tp_ctx *ctx)
{
    return sess(ctx) ? tp_rng_uniform(&ctx->rng) : 0;
}

static double host_rng_normal(tp_ctx *ctx)
{
    return sess(ctx) ? tp_rng_normal(&ctx->rng) : 0;
}

/* A refused request is logged and recorded: if the trial then fails, the worker reports it as
 * out of memory (TP_ENOMEM) rather than as whatever the plugin made of the NULL. */
static void *host_alloc(tp_ctx *ctx, size_t bytes)
{
    if (!sess(ctx))
        return NULL;
    void *mem;
    if (bytes > ((size_t)1 << 40) || posix_memalign(&mem, 64, BLOCK_HEADER + bytes) != 0) {
        host_log(ctx, TP_LOG_ERROR, "alloc: %zu bytes refused: out of memory%s", bytes,
                 bytes > ((size_t)1 << 40) ? " (over 1 TiB in one request)" : "");
        tp_sandbox_note_oom(ctx->id, bytes);
        return NULL;
    }
    memset(mem, 0, BLOCK_HEADER + bytes);
    block *b = mem;
    b->magic = BLOCK_MAGIC;
    b->bytes = bytes;
    b->next = ctx->blocks;
    if (ctx->blocks)
        ctx->blocks->prev = b;
    ctx->blocks = b;
    ctx->live_blocks++;
    return (char *)mem + BLOCK_HEADER;
}

static void host_free(tp_ctx *ctx, void *p)
{
    if (!p || !sess(ctx))
        return;
    /* Only free what this context handed out: walk the list rather than trust the header. */
    block *b = (block *)((char *)p - BLOCK_HEADER);
    block *it = ctx->blocks;
    while (it && it != b)
        it = it->next;
    if (!it) {
        host_log(ctx, TP_LOG_ERROR, "free: %p was not allocated by this plugin's host->alloc", p);
        return;
    }
    if (b->prev)
        b->prev->next = b->next;
    else
        ctx->blocks = b->next;
    if (b->next)
        b->next->prev = b->prev;
    b->magic = 0;
    ctx->live_blocks--;
    free(b);
}

static const tp_train_state *host_train_state(tp_ctx *ctx)
{
    tp_session *s = sess(ctx);
    return s ? &s->ts : NULL;
}

static int host_hparam(tp_ctx *ctx, const char *name, double *value)
{
    CHECK(sess(ctx), TP_EINVAL, "hparam: invalid context");
    CHECK(name && value, TP_EINVAL, "hparam: name or value is NULL");
    for (uint32_t i = 0; i < ctx->count; i++) {
        if (strcmp(ctx->names[i], name) == 0) {
            *value = ctx->values[i];
            return TP_OK;
        }
    }
    return TP_ENOENT;
}

static const tp_host host_table = {
    .struct_size = sizeof(tp_host),
    .sdk_version = TP_SDK_VERSION,
    .param_tensor_count = host_param_tensor_count,
    .param_tensor_info = host_param_tensor_info,
    .params = host_params,
    .loss_and_grad = host_loss_and_grad,
    .per_example_loss = host_per_example_loss,
    .next_indices = host_next_indices,
    .vec_axpy = host_vec_axpy,
    .vec_scale = host_vec_scale,
    .vec_copy = host_vec_copy,
    .vec_dot = host_vec_dot,
    .vec_nrm2 = host_vec_nrm2,
    .gemm = host_gemm,
    .rng_u64 = host_rng_u64,
    .rng_uniform = host_rng_uniform,
    .rng_normal = host_rng_normal,
    .alloc = host_alloc,
    .free = host_free,
    .log = host_log,
    .train_state = host_train_state,
    .hparam = host_hparam,
    .sym_eig = host_sym_eig,
};

const tp_host *tp_hostapi_table(void)
{
    return &host_table;
}
