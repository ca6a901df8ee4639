/*
 * online_batch_selection.c - loss-based online batch selection (after Loshchilov & Hutter,
 * "Online Batch Selection for Faster Training of Neural Networks", 2015, in its simplest
 * deterministic form), data selection id "online_batch_selection".
 *
 * Each step, with C = batch->capacity and f = candidate_factor:
 *   1. take M = floor(f * C) candidates, the next M indices of the trial's seeded stream
 *      (host->next_indices), so the stream is consumed f times as fast as by next_batch;
 *   2. score them with ONE host->per_example_loss call at the current parameters, in eval mode
 *      (TP_LOSS_EVAL_MODE: no dropout, so dropout noise does not decide which examples are
 *      hard) with the label smoothing of the training loss (this plugin's own declared
 *      label_smoothing; the host routes one value to every plugin that declares the name, so
 *      it is the optimizer's);
 *   3. keep the C candidates with the highest loss, unweighted (batch->weights = NULL). Ties go
 *      to the earlier candidate in the stream; a NaN loss ranks below every number. The batch
 *      lists the kept candidates in stream order.
 * With f = 1 it is next_batch with one wasted forward pass.
 *
 * Timing: select_batch runs on the submission clock (AlgoPerf times data_selection), so the
 * extra forward pass over M examples is paid for in the score, as it should be: the method
 * wins only if the harder batches save more steps than the scoring costs.
 *
 * Buffers: the candidates' indices, losses and ranking (M each) are allocated at init for the
 * train state's batch_size. If select_batch is later asked for a larger capacity (or the train
 * state had no batch size at init), they are reallocated once for the larger size, inside the
 * timed call, and the old ones freed; a smaller capacity reuses them. Freed in destroy.
 *
 * Not here: importance weights that would undo the selection's bias (the batch is the plain mean
 * over the kept examples, as in the paper's selection without reweighting), rank-based selection
 * probabilities, loss histories across steps.
 */
#include <math.h>
#include <stdio.h>

#include <trainperf/trainperf.h>

#include "../common/plugin_util.h"

#define ID "online_batch_selection"

/* More candidates than this many times the batch make no sense and risk overflow. */
#define OBS_MAX_FACTOR 64.0

static const tp_hparam_decl obs_hparams[] = {
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "candidate_factor", TP_HPARAM_FLOAT, 2.0, 1.0,
     OBS_MAX_FACTOR, "score floor(candidate_factor * batch) candidates, keep the hardest batch"},
    {sizeof(tp_hparam_decl), TP_SDK_VERSION, "label_smoothing", TP_HPARAM_FLOAT, 0.0, 0.0, 0.99,
     "label smoothing of the scoring loss (the training loss's)"},
};

/* One scored candidate. */
typedef struct obs_cand {
    float loss;
    uint32_t pos; /* position in the stream's candidate list */
} obs_cand;

typedef struct obs_state {
    double factor;     /* candidate_factor */
    uint32_t room;     /* candidates the buffers hold */
    uint32_t *idx;     /* (room) candidate indices, stream order */
    float *loss;       /* (room) their losses */
    obs_cand *rank;    /* (room) ranking scratch */
    uint8_t *keep;     /* (room) 1 for the kept candidates */
    tp_loss_opts opts; /* scoring: eval mode, the training label smoothing */
} obs_state;

/* Candidates for a batch of `capacity`: floor(f * C), at least C. */
static uint64_t obs_candidates(double factor, uint32_t capacity)
{
    const double m = floor(factor * (double)capacity);
    return m < (double)capacity ? capacity : (uint64_t)m;
}

static void obs_free_buffers(obs_state *s, const tp_host *host, tp_ctx *ctx)
{
    host->free(ctx, s->idx);
    host->free(ctx, s->loss);
    host->free(ctx, s->rank);
    host->free(ctx, s->keep);
    s->idx = NULL;
    s->loss = NULL;
    s->rank = NULL;
    s->keep = NULL;
    s->room = 0;
}

/* Buffers for m candidates; on failure the old ones are kept and TP_ENOMEM returned. */
static int obs_reserve(obs_state *s, const tp_host *host, tp_ctx *ctx, uint64_t m, tp_error *err)
{
    if (m <= s->room)
        return TP_OK;
    if (m > UINT32_MAX)
        return sub_fail(err, ID, TP_ERANGE, "%llu candidates do not fit a batch",
                        (unsigned long long)m);
    uint32_t *idx = host->alloc(ctx, m * sizeof *idx);
    float *loss = host->alloc(ctx, m * sizeof *loss);
    obs_cand *rank = host->alloc(ctx, m * sizeof *rank);
    uint8_t *keep = host->alloc(ctx, m * sizeof *keep);
    if (idx == NULL || loss == NULL || rank == NULL || keep == NULL) {
        host->free(ctx, idx);
        host->free(ctx, loss);
        host->free(ctx, rank);
        host->free(ctx, keep);
        return sub_fail(err, ID, TP_ENOMEM, "out of memory for %llu candidates",
                        (unsigned long long)m);
    }
    obs_free_buffers(s, host, ctx);
    s->idx = idx;
    s->loss = loss;
    s->rank = rank;
    s->keep = keep;
    s->room = (uint32_t)m;
    return TP_OK;
}

static int obs_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    double ls = 0.0;
    obs_state *s;
    int rc;

    if (!TP_FIELD_PRESENT(host, tp_host, hparam))
        return sub_fail(err, ID, TP_EABI, "host table too old: no hparam()");
    s = host->alloc(ctx, sizeof *s);
    if (s == NULL)
        return sub_fail(err, ID, TP_ENOMEM, "out of memory for the state");
    if ((rc = sub_hparam(host, ctx, ID, "candidate_factor", &s->factor, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, ID, "label_smoothing", &ls, err)) != TP_OK)
        goto error;
    if (!(s->factor >= 1.0 && s->factor <= OBS_MAX_FACTOR)) {
        rc = sub_fail(err, ID, TP_ERANGE, "candidate_factor %g is not in [1, %g]", s->factor,
                      OBS_MAX_FACTOR);
        goto error;
    }
    TP_STRUCT_INIT(&s->opts, tp_loss_opts);
    s->opts.label_smoothing = (float)ls;
    s->opts.dropout_rate = 0.0f;
    s->opts.flags = TP_LOSS_EVAL_MODE;

    const tp_train_state *ts = host->train_state(ctx);
    if (TP_FIELD_PRESENT(ts, tp_train_state, batch_size) && ts->batch_size > 0 &&
        (rc = obs_reserve(s, host, ctx, obs_candidates(s->factor, ts->batch_size), err)) != TP_OK)
        goto error;
    *state = s;
    return TP_OK;

error:
    obs_free_buffers(s, host, ctx);
    host->free(ctx, s);
    return rc;
}

/* < 0 when a ranks before b: highest loss first, NaN last, ties by stream position. A total
 * order, so the ranking does not depend on the sort algorithm. */
static int obs_cmp(const obs_cand *a, const obs_cand *b)
{
    const int na = isnan(a->loss), nb = isnan(b->loss);
    if (na != nb)
        return na - nb;
    if (!na && a->loss != b->loss)
        return a->loss > b->loss ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

/* Sift r[i] down the max-heap (by obs_cmp, "max" = ranks last) of the first n elements. */
static void obs_sift(obs_cand *r, uint32_t i, uint32_t n)
{
    for (;;) {
        uint32_t big = i;
        const uint64_t left = 2 * (uint64_t)i + 1, right = left + 1;
        if (left < n && obs_cmp(&r[left], &r[big]) > 0)
            big = (uint32_t)left;
        if (right < n && obs_cmp(&r[right], &r[big]) > 0)
            big = (uint32_t)right;
        if (big == i)
            return;
        const obs_cand t = r[i];
        r[i] = r[big];
        r[big] = t;
        i = big;
    }
}

/* Heapsort r[0..n) into rank order. Not libc's qsort: glibc's asks the kernel for the machine's
 * memory size (sysinfo) on arrays over 1 KiB, which the worker's sandbox does not allow. */
static void obs_sort(obs_cand *r, uint32_t n)
{
    for (uint32_t i = n / 2; i-- > 0;)
        obs_sift(r, i, n);
    for (uint32_t end = n; end-- > 1;) {
        const obs_cand t = r[0];
        r[0] = r[end];
        r[end] = t;
        obs_sift(r, 0, end);
    }
}

static int obs_select(void *state, const tp_host *host, tp_ctx *ctx, tp_batch *batch, tp_error *err)
{
    obs_state *s = state;
    int rc;

    if (batch == NULL || batch->idx == NULL || batch->capacity == 0)
        return sub_fail(err, ID, TP_EINVAL,
                        "select_batch needs a batch with capacity > 0 and an idx buffer");
    const uint32_t cap = batch->capacity;
    const uint64_t m64 = obs_candidates(s->factor, cap);
    if ((rc = obs_reserve(s, host, ctx, m64, err)) != TP_OK)
        return rc;
    const uint32_t m = (uint32_t)m64;

    rc = host->next_indices(ctx, m, s->idx);
    if (rc != TP_OK)
        return sub_fail(err, ID, rc, "host->next_indices(%u) failed: %s", m, tp_strerror(rc));

    tp_batch cand;
    TP_STRUCT_INIT(&cand, tp_batch);
    cand.size = m;
    cand.capacity = m;
    cand.idx = s->idx;
    cand.weights = NULL;
    rc = host->per_example_loss(ctx, NULL, &cand, &s->opts, s->loss);
    if (rc != TP_OK)
        return sub_fail(err, ID, rc, "host->per_example_loss over %u candidates failed: %s", m,
                        tp_strerror(rc));

    for (uint32_t j = 0; j < m; j++) {
        s->rank[j].loss = s->loss[j];
        s->rank[j].pos = j;
        s->keep[j] = 0;
    }
    obs_sort(s->rank, m);
    for (uint32_t k = 0; k < cap; k++)
        s->keep[s->rank[k].pos] = 1;
    uint32_t out = 0;
    for (uint32_t j = 0; j < m; j++)
        if (s->keep[j])
            batch->idx[out++] = s->idx[j];
    batch->size = cap;
    batch->weights = NULL;
    return TP_OK;
}

static void obs_destroy(void *state, const tp_host *host, tp_ctx *ctx)
{
    obs_state *s = state;
    if (s == NULL)
        return;
    obs_free_buffers(s, host, ctx);
    host->free(ctx, s);
}

static const tp_plugin_desc obs_desc = {
    .struct_size = sizeof(tp_plugin_desc),
    .sdk_version = TP_SDK_VERSION,
    .id = ID,
    .kind = TP_PLUGIN_DATA_SELECTION,
    .description = "score candidate_factor x batch candidates (one eval-mode forward pass), "
                   "keep the highest-loss batch",
    .hparams = obs_hparams,
    .num_hparams = sizeof obs_hparams / sizeof obs_hparams[0],
    .init = obs_init,
    .destroy = obs_destroy,
    .select_batch = obs_select,
};

TP_PLUGIN_ENTRY(i)
{
    return i == 0 ? &obs_desc : NULL;
}
