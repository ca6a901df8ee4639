/*
 * bad_args.c - the hostile-submission suite's host-API prober: an optimizer that calls every
 * function of the tp_host table with arguments the host can detect as bad (NULL and forged
 * contexts, NULL buffers, out-of-range indices, struct sizes too small or too large, loss
 * options out of range, sizes past any memory), in init and again in its first update (inside
 * the sandbox, on the clock), and then trains with plain SGD. The trial must complete: the
 * host API returns errors and never crashes. A bad call the host accepts makes the fixture
 * return TP_EPLUGIN naming the call, so the test says which check is missing.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <trainperf/trainperf.h>

#define LEARNING_RATE 0.1f

typedef struct sgd {
    float *grad; /* (num_params) */
    uint64_t n;
} sgd;

/* A context the host never handed out: readable memory that is not one of its contexts. */
static uint64_t forged_mem[16];
#define FORGED ((tp_ctx *)forged_mem)

typedef struct probe {
    int accepted; /* bad calls the host did not refuse */
    char first[200];
} probe;

#define EXPECT(pr, cond, what)                                                                     \
    do {                                                                                           \
        if (!(cond) && (pr)->accepted++ == 0)                                                      \
            snprintf((pr)->first, sizeof(pr)->first, "%s", what);                                  \
    } while (0)

static void probe_params(probe *pr, const tp_host *h, tp_ctx *ctx)
{
    EXPECT(pr, h->param_tensor_count(NULL) == 0, "param_tensor_count(NULL)");
    EXPECT(pr, h->param_tensor_count(FORGED) == 0, "param_tensor_count(forged ctx)");
    uint32_t count = h->param_tensor_count(ctx);

    tp_tensor_info ti;
    TP_STRUCT_INIT(&ti, tp_tensor_info);
    EXPECT(pr, h->param_tensor_info(NULL, 0, &ti) < 0, "param_tensor_info(NULL ctx)");
    EXPECT(pr, h->param_tensor_info(FORGED, 0, &ti) < 0, "param_tensor_info(forged ctx)");
    EXPECT(pr, h->param_tensor_info(ctx, 0, NULL) < 0, "param_tensor_info(out NULL)");
    EXPECT(pr, h->param_tensor_info(ctx, count, &ti) < 0, "param_tensor_info(index == count)");
    EXPECT(pr, h->param_tensor_info(ctx, UINT32_MAX, &ti) < 0, "param_tensor_info(UINT32_MAX)");
    ti.struct_size = 0;
    EXPECT(pr, h->param_tensor_info(ctx, 0, &ti) < 0, "param_tensor_info(struct_size 0)");
    ti.struct_size = 4;
    EXPECT(pr, h->param_tensor_info(ctx, 0, &ti) < 0, "param_tensor_info(struct_size 4)");

    /* A struct that says it is 16 bytes: the host writes 16 bytes and not one more. */
    union {
        tp_tensor_info ti;
        unsigned char bytes[sizeof(tp_tensor_info) + 64];
    } small;
    memset(&small, 0xab, sizeof small);
    small.ti.struct_size = 16;
    int rc = h->param_tensor_info(ctx, 0, &small.ti);
    int intact = 1;
    for (size_t i = 16; i < sizeof small.bytes; i++)
        intact &= small.bytes[i] == 0xab;
    EXPECT(pr, rc == TP_OK && intact, "param_tensor_info(struct_size 16) wrote past 16 bytes");
    /* One that says it is a MiB: the host writes what it knows, no more. */
    memset(&small, 0xab, sizeof small);
    small.ti.struct_size = 1u << 20;
    rc = h->param_tensor_info(ctx, 0, &small.ti);
    intact = 1;
    for (size_t i = sizeof(tp_tensor_info); i < sizeof small.bytes; i++)
        intact &= small.bytes[i] == 0xab;
    EXPECT(pr, rc == TP_OK && intact, "param_tensor_info(struct_size 1 MiB) wrote past the struct");

    uint64_t n = 0;
    EXPECT(pr, h->params(NULL, &n) == NULL, "params(NULL ctx)");
    EXPECT(pr, h->params(FORGED, &n) == NULL, "params(forged ctx)");
    EXPECT(pr, h->params(ctx, NULL) != NULL, "params(ctx, NULL count) refused a valid call");
}

static void probe_loss(probe *pr, const tp_host *h, tp_ctx *ctx, float *grad)
{
    const tp_train_state *ts = h->train_state(ctx);
    uint32_t idx[4] = {0, 1, 2, 3};
    float losses[4];
    double loss;
    tp_batch b;
    TP_STRUCT_INIT(&b, tp_batch);
    b.size = 4;
    b.capacity = 4;
    b.idx = idx;

    EXPECT(pr, h->loss_and_grad(NULL, NULL, &b, NULL, grad, &loss) < 0, "loss_and_grad(NULL ctx)");
    EXPECT(pr, h->loss_and_grad(FORGED, NULL, &b, NULL, grad, &loss) < 0,
           "loss_and_grad(forged ctx)");
    EXPECT(pr, h->loss_and_grad(ctx, NULL, NULL, NULL, grad, &loss) < 0,
           "loss_and_grad(NULL batch)");
    tp_batch bad = b;
    bad.struct_size = 0;
    EXPECT(pr, h->loss_and_grad(ctx, NULL, &bad, NULL, grad, &loss) < 0,
           "loss_and_grad(batch struct_size 0)");
    bad = b;
    bad.size = 0;
    EXPECT(pr, h->loss_and_grad(ctx, NULL, &bad, NULL, grad, &loss) < 0,
           "loss_and_grad(empty batch)");
    bad = b;
    bad.idx = NULL;
    EXPECT(pr, h->loss_and_grad(ctx, NULL, &bad, NULL, grad, &loss) < 0,
           "loss_and_grad(batch idx NULL)");
    uint32_t far[4] = {0, 1, ts ? (uint32_t)ts->train_size : 0xffffffffu, 0xffffffffu};
    bad = b;
    bad.idx = far;
    EXPECT(pr, h->loss_and_grad(ctx, NULL, &bad, NULL, grad, &loss) < 0,
           "loss_and_grad(index out of range)");
    EXPECT(pr, h->per_example_loss(ctx, NULL, &bad, NULL, losses) < 0,
           "per_example_loss(index out of range)");

    const float bad_smoothing[] = {2.0f, 1.0f, -0.5f, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_smoothing / sizeof *bad_smoothing; i++) {
        tp_loss_opts o;
        TP_STRUCT_INIT(&o, tp_loss_opts);
        o.label_smoothing = bad_smoothing[i];
        EXPECT(pr, h->loss_and_grad(ctx, NULL, &b, &o, grad, &loss) < 0,
               "loss_and_grad(label_smoothing out of [0, 1))");
        o.label_smoothing = 0;
        o.dropout_rate = bad_smoothing[i];
        EXPECT(pr, h->loss_and_grad(ctx, NULL, &b, &o, grad, &loss) < 0,
               "loss_and_grad(dropout_rate out of [0, 1))");
    }
    /* Loss options that claim to be huge: the host reads the fields it knows. */
    tp_loss_opts big;
    TP_STRUCT_INIT(&big, tp_loss_opts);
    big.struct_size = 1u << 20;
    EXPECT(pr, h->loss_and_grad(ctx, NULL, &b, &big, NULL, NULL) == TP_OK,
           "loss_and_grad(opts struct_size 1 MiB, no grad, no loss) refused a valid call");

    EXPECT(pr, h->per_example_loss(NULL, NULL, &b, NULL, losses) < 0, "per_example_loss(NULL ctx)");
    EXPECT(pr, h->per_example_loss(ctx, NULL, &b, NULL, NULL) < 0, "per_example_loss(losses NULL)");
    EXPECT(pr, h->per_example_loss(ctx, NULL, NULL, NULL, losses) < 0,
           "per_example_loss(NULL batch)");
}

static void probe_rest(probe *pr, const tp_host *h, tp_ctx *ctx)
{
    uint32_t idx[4];
    EXPECT(pr, h->next_indices(NULL, 4, idx) < 0, "next_indices(NULL ctx)");
    EXPECT(pr, h->next_indices(FORGED, 4, idx) < 0, "next_indices(forged ctx)");
    EXPECT(pr, h->next_indices(ctx, 4, NULL) < 0, "next_indices(idx NULL)");
    EXPECT(pr, h->next_indices(ctx, 0, NULL) == TP_OK, "next_indices(0, NULL) refused");

    /* The vector kernels return nothing: they must just not crash. */
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8] = {0};
    h->vec_axpy(8, 1.0f, NULL, y);
    h->vec_axpy(8, 1.0f, x, NULL);
    h->vec_scale(8, 2.0f, NULL);
    h->vec_copy(8, NULL, y);
    h->vec_copy(8, x, NULL);
    EXPECT(pr, isnan(h->vec_dot(8, NULL, y)), "vec_dot(NULL x)");
    EXPECT(pr, isnan(h->vec_dot(8, x, NULL)), "vec_dot(NULL y)");
    EXPECT(pr, isnan(h->vec_nrm2(8, NULL)), "vec_nrm2(NULL)");
    EXPECT(pr, h->gemm(0, 0, 2, 2, 2, 1.0f, NULL, x, 0.0f, y) < 0, "gemm(a NULL)");
    EXPECT(pr, h->gemm(0, 0, 2, 2, 2, 1.0f, x, NULL, 0.0f, y) < 0, "gemm(b NULL)");
    EXPECT(pr, h->gemm(0, 0, 2, 2, 2, 1.0f, x, x, 0.0f, NULL) < 0, "gemm(c NULL)");
    EXPECT(pr, h->gemm(0, 0, UINT32_MAX, 2, 2, 1.0f, x, x, 0.0f, y) < 0, "gemm(m > INT_MAX)");

    EXPECT(pr, h->rng_u64(NULL) == 0, "rng_u64(NULL)");
    EXPECT(pr, h->rng_uniform(FORGED) == 0, "rng_uniform(forged ctx)");
    EXPECT(pr, h->rng_normal(NULL) == 0, "rng_normal(NULL)");

    EXPECT(pr, h->alloc(NULL, 64) == NULL, "alloc(NULL ctx)");
    EXPECT(pr, h->alloc(FORGED, 64) == NULL, "alloc(forged ctx)");
    EXPECT(pr, h->alloc(ctx, SIZE_MAX) == NULL, "alloc(SIZE_MAX)");
    EXPECT(pr, h->alloc(ctx, SIZE_MAX - 63) == NULL, "alloc(SIZE_MAX - 63)");
    float *p = h->alloc(ctx, 256);
    EXPECT(pr, p != NULL, "alloc(256) refused");
    h->free(ctx, NULL);
    h->free(NULL, p);
    h->free(FORGED, p);
    h->free(ctx, x);     /* not the host's */
    h->free(ctx, p + 1); /* inside a block */
    h->free(ctx, p);
    h->free(ctx, p); /* twice */

    const char *volatile no_format = NULL;
    h->log(NULL, TP_LOG_INFO, "bad_args: log with a NULL context (%d)", 1);
    h->log(FORGED, TP_LOG_INFO, "bad_args: log with a forged context (%d)", 2);
    h->log(ctx, (tp_log_level)99, "bad_args: log with level 99 (%d)", 3);
    h->log(ctx, TP_LOG_INFO, no_format, 4);

    EXPECT(pr, h->train_state(NULL) == NULL, "train_state(NULL)");
    EXPECT(pr, h->train_state(FORGED) == NULL, "train_state(forged ctx)");
    double v;
    EXPECT(pr, h->hparam(NULL, "learning_rate", &v) < 0, "hparam(NULL ctx)");
    EXPECT(pr, h->hparam(FORGED, "learning_rate", &v) < 0, "hparam(forged ctx)");
    EXPECT(pr, h->hparam(ctx, NULL, &v) < 0, "hparam(name NULL)");
    EXPECT(pr, h->hparam(ctx, "learning_rate", NULL) < 0, "hparam(value NULL)");
    EXPECT(pr, h->hparam(ctx, "never_declared", &v) == TP_ENOENT, "hparam(undeclared)");
}

static int probe_all(const tp_host *h, tp_ctx *ctx, float *grad, const char *where, tp_error *err)
{
    probe pr;
    memset(&pr, 0, sizeof pr);
    probe_params(&pr, h, ctx);
    probe_loss(&pr, h, ctx, grad);
    probe_rest(&pr, h, ctx);
    if (pr.accepted == 0)
        return TP_OK;
    snprintf(err->message, sizeof err->message,
             "in %s, the host accepted %d bad call(s), first: %s", where, pr.accepted, pr.first);
    return TP_EPLUGIN;
}

static int bad_args_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    sgd *s = host->alloc(ctx, sizeof *s);
    if (!s)
        return TP_ENOMEM;
    host->params(ctx, &s->n);
    s->grad = host->alloc(ctx, s->n * sizeof(float));
    if (!s->grad) {
        host->free(ctx, s);
        return TP_ENOMEM;
    }
    *state = s;
    return probe_all(host, ctx, s->grad, "init", err);
}

static void bad_args_destroy(void *state, const tp_host *host, tp_ctx *ctx)
{
    sgd *s = state;
    host->free(ctx, s->grad);
    host->free(ctx, s);
}

static int bad_args_update(void *state, const tp_host *host, tp_ctx *ctx, const tp_update_args *a,
                           tp_error *err)
{
    sgd *s = state;
    if (a->step == 0) {
        int rc = probe_all(host, ctx, s->grad, "update", err);
        if (rc != TP_OK)
            return rc;
    }
    double loss;
    int rc = host->loss_and_grad(ctx, NULL, a->batch, NULL, s->grad, &loss);
    if (rc != TP_OK) {
        snprintf(err->message, sizeof err->message, "loss_and_grad failed");
        return rc;
    }
    host->vec_axpy(s->n, -LEARNING_RATE * (float)a->lr_factor, s->grad, host->params(ctx, NULL));
    return TP_OK;
}

static const tp_plugin_desc desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = "bad_args",
    .kind = TP_PLUGIN_OPTIMIZER,
    .description = "calls every host function with bad arguments, then trains (tests/sandbox)",
    .init = bad_args_init,
    .update = bad_args_update,
    .destroy = bad_args_destroy,
};

TP_PLUGIN_ENTRY(index)
{
    return index == 0 ? &desc : NULL;
}
