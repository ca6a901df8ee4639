/*
 * fmnist_mlp.c - the fmnist_mlp workload: a multilayer perceptron on Fashion-MNIST, the analog
 * of AlgoPerf's MNIST development workload. Metric: accuracy (higher is better).
 *
 * Data. The four gzip'd IDX files of the Debian package dataset-fashion-mnist (data.dir). The
 * 60,000 training images are split by a permutation seeded with data.split_seed (tp_rng) into
 * train (the first 50,000 of the permutation) and validation (the other 10,000); the 10,000
 * t10k images are the test split. data.{train,validation,test}_limit keep only the first N of
 * a split (0: all), for tests. Images stay bytes in memory (55 MB); a batch is gathered by
 * index and converted on the fly to x = (p / 255 - 0.2860) / 0.3530, the mean and standard
 * deviation of the pixels of all 60,000 train-file images, fixed constants so every split, seed
 * and subset sees the same transform; or, with data.standardize = "pixel", to each pixel's own
 * mean and standard deviation over the kept training examples (the Edge of Stability setup:
 * a small full-batch subset, standardised per pixel).
 *
 * Model. 784 -> hidden_width x depth (activation relu / tanh / gelu) -> 10, each layer a fused
 * linear + bias + activation with its weight stored (in, out): "fc1.weight" (784, 256),
 * "fc1.bias" (256), ..., "fc3.weight" (256, 10), "fc3.bias" (10). Dropout (tp_loss_opts) after
 * every hidden activation in training mode. Loss: softmax cross-entropy with the submission's
 * label smoothing, or MSE against one-hot targets (sum over the 10 outputs / 2; label smoothing
 * does not apply to it).
 *
 * Init. Each weight from its own stream tp_rng_seed2(seed, layer): normal with std
 * sqrt(2 / fan_in) (He) for layers followed by ReLU or GELU, sqrt(1 / fan_in) (LeCun) for
 * layers followed by tanh and for the output layer; biases 0.
 *
 * Batches larger than a chunk of rows are processed chunk by chunk, gradients accumulating, so
 * memory stays bounded whatever the batch (evaluation is the same with no gradient).
 *
 * Not here: variants (a later issue), targets and budget (fmnist_mlp.cfg, read by the host).
 */
#include "workloads/fmnist_mlp/fmnist_mlp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn/nn.h"
#include "core/nn/rng.h"
#include "workloads/common/fmnist_data.h"
#include "workloads/common/options.h"

#define FM_NAME        "fmnist_mlp"
#define FM_PIXELS      784
#define FM_CLASSES     10
#define FM_TRAIN_ALL   60000 /* train-images-idx3-ubyte: train + validation */
#define FM_VALIDATION  10000
#define FM_TEST        10000
#define FM_MAX_DEPTH   16
#define FM_MAX_WIDTH   16384
#define FM_CHUNK       2048 /* rows per forward/backward chunk */
#define FM_PIXEL_MEAN  0.2860f
#define FM_PIXEL_STD   0.3530f
#define FM_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define FM_PACKAGE     "dataset-fashion-mnist"

enum { FM_LOSS_XENT = 0, FM_LOSS_MSE = 1 };

typedef struct fmnist {
    tp_workload base;
    uint32_t width, depth;
    tp_act act;
    int loss;
    float pix_a[FM_PIXELS], pix_b[FM_PIXELS]; /* x_j = pixel_j * pix_a[j] + pix_b[j] */
    tp_fmnist_data data;                      /* the images and labels, split by split */
    uint32_t layer_in[FM_MAX_DEPTH + 1], layer_out[FM_MAX_DEPTH + 1];
    tp_tensor_info tensors[2 * (FM_MAX_DEPTH + 1)];
    char names[2 * (FM_MAX_DEPTH + 1)][24];
    tp_graph *g;
} fmnist;

static const char *const activation_names[] = {"relu", "tanh", "gelu", NULL};
static const tp_act activation_values[] = {TP_ACT_RELU, TP_ACT_TANH, TP_ACT_GELU};
static const char *const loss_names[] = {"cross_entropy", "mse", NULL};
enum { FM_STD_GLOBAL = 0, FM_STD_PIXEL = 1 };
static const char *const standardize_names[] = {"global", "pixel", NULL};

/* ---------------------------------------------------------------------------------------- */
/* Data */

/* The shared loader (workloads/common/fmnist_data.c), and the split sizes it gives. */
static int load_data(fmnist *w, const tp_wl_params *p, const char *dir, uint64_t split_seed,
                     const int64_t limit[3], char *err, size_t errlen)
{
    int rc = tp_fmnist_data_load(&w->data, p, w->base.name, dir, split_seed, limit, err, errlen);
    for (int s = 0; rc == 0 && s < 3; s++)
        w->base.split_size[s] = w->data.size[s];
    return rc;
}

/* The standardisation: the fixed dataset constants ("global"), or the mean and standard
 * deviation of each pixel over the kept training examples ("pixel", as the Edge of Stability
 * experiments standardise their subset); a pixel constant over them maps to 0. */
static void set_standardization(fmnist *w, int kind)
{
    for (int j = 0; j < FM_PIXELS; j++) {
        w->pix_a[j] = 1.0f / (255.0f * FM_PIXEL_STD);
        w->pix_b[j] = -FM_PIXEL_MEAN / FM_PIXEL_STD;
    }
    const uint64_t n = w->base.split_size[TP_SPLIT_TRAIN];
    if (kind != FM_STD_PIXEL || n == 0)
        return;
    for (int j = 0; j < FM_PIXELS; j++) {
        double sum = 0.0, sq = 0.0;
        for (uint64_t i = 0; i < n; i++) {
            double v = w->data.img[TP_SPLIT_TRAIN][i * FM_PIXELS + j] / 255.0;
            sum += v;
            sq += v * v;
        }
        double mean = sum / n, var = sq / n - mean * mean;
        double sd = var > 1e-12 ? sqrt(var) : 0.0;
        w->pix_a[j] = sd > 0.0 ? (float)(1.0 / (255.0 * sd)) : 0.0f;
        w->pix_b[j] = sd > 0.0 ? (float)(-mean / sd) : 0.0f;
    }
}

/* x (n, 784) = standardised pixels of rows idx[i] (or first + i when idx is NULL). */
static void gather(const fmnist *w, float *x, const uint8_t *img, const uint32_t *idx,
                   uint64_t first, uint32_t n)
{
    const float *restrict a = w->pix_a, *restrict b = w->pix_b;
    /* Rows are scattered over 39 MB: keep the next TP_FMNIST_PREFETCH rows on their way from memory
     * while converting this one. */
    for (uint32_t i = 0; idx && i < TP_FMNIST_PREFETCH && i < n; i++)
        tp_fmnist_prefetch_row(img + idx[i] * (uint64_t)FM_PIXELS);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *src = img + (idx ? idx[i] : first + i) * (uint64_t)FM_PIXELS;
        float *dst = x + (uint64_t)i * FM_PIXELS;
        if (idx && i + TP_FMNIST_PREFETCH < n)
            tp_fmnist_prefetch_row(img + idx[i + TP_FMNIST_PREFETCH] * (uint64_t)FM_PIXELS);
        for (int j = 0; j < FM_PIXELS; j++)
            dst[j] = (float)src[j] * a[j] + b[j];
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Model */

typedef struct chunk_args {
    const float *params;
    float *grad;        /* NULL: no gradient */
    int grad_overwrite; /* the first chunk overwrites grad, later ones add */
    tp_split split;
    const uint32_t *idx; /* rows of the split, or NULL for first .. first + n */
    uint64_t first;
    uint32_t n;
    const float *weights; /* (n) or NULL */
    float scale;          /* the loss is scale * sum_i w_i l_i */
    float smoothing;
    float dropout;
    uint64_t dropout_seed;
} chunk_args;

/* Forward (and backward when a->grad) of one chunk; *per gets the (n) per-example losses and
 * *logits the (n, 10) outputs, both valid until the next chunk. */
static int run_chunk(fmnist *w, const chunk_args *a, tp_tensor **per, tp_tensor **logits, char *err,
                     size_t errlen)
{
    tp_graph *g = w->g;
    tp_graph_reset(g);
    tp_tensor *x = tp_tensor_new(g, 2, (uint32_t[]){a->n, FM_PIXELS}, 0); /* (n, 784) */
    int32_t *labels = tp_graph_alloc(g, a->n * sizeof *labels);           /* (n) */
    if (x && labels) {
        gather(w, x->data, w->data.img[a->split], a->idx, a->first, a->n);
        const uint8_t *lab = w->data.lab[a->split];
        for (uint32_t i = 0; i < a->n; i++)
            labels[i] = lab[a->idx ? a->idx[i] : a->first + i];
    }
    uint32_t flags = a->grad_overwrite ? TP_TENSOR_GRAD_OVERWRITE : 0;
    tp_tensor *h = x;
    for (uint32_t l = 0; l <= w->depth; l++) {
        const tp_tensor_info *tw = &w->tensors[2 * l], *tb = &w->tensors[2 * l + 1];
        float *pw = (float *)a->params + tw->offset, *pb = (float *)a->params + tb->offset;
        tp_tensor *W = tp_tensor_view(g, pw, a->grad ? a->grad + tw->offset : NULL, 2, tw->shape,
                                      flags); /* (in, out) */
        tp_tensor *b = tp_tensor_view(g, pb, a->grad ? a->grad + tb->offset : NULL, 1, tb->shape,
                                      flags); /* (out) */
        int hidden = l < w->depth;
        h = tp_linear(g, h, W, b, hidden ? w->act : TP_ACT_NONE); /* (n, out) */
        if (hidden && a->dropout > 0.0f)
            h = tp_dropout(g, h, a->dropout, tp_mix64(a->dropout_seed ^ tp_mix64(l + 1)));
    }
    tp_tensor *losses = w->loss == FM_LOSS_XENT ? tp_softmax_xent(g, h, labels, a->smoothing)
                                                : tp_mse(g, h, labels, NULL); /* (n) */
    tp_tensor *loss = tp_sum(g, losses, a->weights, a->scale);                /* (1) */
    int rc = a->grad ? tp_graph_backward(g, loss, err, errlen) : tp_graph_status(g, err, errlen);
    if (rc)
        return rc;
    *per = losses;
    *logits = h;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The vtable */

static int fm_init_params(tp_workload *base, uint64_t seed, float *params, char *err, size_t errlen)
{
    fmnist *w = (fmnist *)base;
    if (!params) {
        snprintf(err, errlen, "fmnist_mlp.init_params: params is NULL");
        return TP_EINVAL;
    }
    for (uint32_t l = 0; l <= w->depth; l++) {
        const tp_tensor_info *tw = &w->tensors[2 * l], *tb = &w->tensors[2 * l + 1];
        int he = l < w->depth && (w->act == TP_ACT_RELU || w->act == TP_ACT_GELU);
        float std = sqrtf((he ? 2.0f : 1.0f) / (float)w->layer_in[l]);
        tp_rng r;
        tp_rng_seed2(&r, seed, l);
        tp_fill_normal(params + tw->offset, tw->numel, std, &r);
        memset(params + tb->offset, 0, tb->numel * sizeof(float));
    }
    return 0;
}

static int fm_loss_and_grad(tp_workload *base, const float *params, const uint32_t *idx,
                            const float *weights, uint32_t n, const tp_loss_opts *opts,
                            uint64_t dropout_seed, float *grad, double *loss, float *per_example,
                            char *err, size_t errlen)
{
    fmnist *w = (fmnist *)base;
    if (!params || !idx || n == 0) {
        snprintf(err, errlen, "fmnist_mlp.loss_and_grad: %s",
                 !params ? "params is NULL"
                 : !idx  ? "idx is NULL"
                         : "the batch is empty");
        return TP_EINVAL;
    }
    uint64_t size = w->base.split_size[TP_SPLIT_TRAIN];
    for (uint32_t i = 0; i < n; i++)
        if (idx[i] >= size) {
            snprintf(err, errlen,
                     "fmnist_mlp.loss_and_grad: index %u at batch position %u is out of range: "
                     "the training split has %llu examples",
                     idx[i], i, (unsigned long long)size);
            return TP_ERANGE;
        }
    float smoothing = 0.0f, dropout = 0.0f;
    int eval_mode = 0;
    if (TP_FIELD_PRESENT(opts, tp_loss_opts, label_smoothing))
        smoothing = opts->label_smoothing;
    if (TP_FIELD_PRESENT(opts, tp_loss_opts, dropout_rate))
        dropout = opts->dropout_rate;
    if (TP_FIELD_PRESENT(opts, tp_loss_opts, flags))
        eval_mode = (opts->flags & TP_LOSS_EVAL_MODE) != 0;
    if (!(smoothing >= 0.0f && smoothing < 1.0f) || !(dropout >= 0.0f && dropout < 1.0f)) {
        snprintf(err, errlen,
                 "fmnist_mlp.loss_and_grad: label_smoothing %g and dropout_rate %g must both be "
                 "in [0, 1)",
                 (double)smoothing, (double)dropout);
        return TP_EINVAL;
    }
    if (eval_mode)
        dropout = 0.0f;

    double total = 0.0;
    for (uint32_t start = 0; start < n; start += FM_CHUNK) {
        uint32_t m = n - start < FM_CHUNK ? n - start : FM_CHUNK;
        chunk_args a = {
            .params = params,
            .grad = grad,
            .grad_overwrite = start == 0,
            .split = TP_SPLIT_TRAIN,
            .idx = idx + start,
            .n = m,
            .weights = weights ? weights + start : NULL,
            .scale = (float)(1.0 / n),
            .smoothing = smoothing,
            .dropout = dropout,
            .dropout_seed = tp_mix64(dropout_seed + start / FM_CHUNK),
        };
        tp_tensor *per, *logits;
        int rc = run_chunk(w, &a, &per, &logits, err, errlen);
        if (rc)
            return rc;
        for (uint32_t i = 0; i < m; i++)
            total += (weights ? (double)weights[start + i] : 1.0) * per->data[i];
        if (per_example)
            memcpy(per_example + start, per->data, m * sizeof(float));
    }
    if (loss)
        *loss = total / n;
    return 0;
}

static int fm_evaluate(tp_workload *base, const float *params, tp_split split, tp_eval_result *out,
                       char *err, size_t errlen)
{
    fmnist *w = (fmnist *)base;
    if (!params || !out || (unsigned)split > TP_SPLIT_TEST) {
        snprintf(err, errlen, "fmnist_mlp.evaluate: %s",
                 !params ? "params is NULL"
                 : !out  ? "out is NULL"
                         : "no such split");
        return TP_EINVAL;
    }
    uint64_t size = w->base.split_size[split];
    uint64_t correct = 0;
    double total = 0.0;
    for (uint64_t start = 0; start < size; start += 1000) {
        uint32_t m = (uint32_t)(size - start < 1000 ? size - start : 1000);
        chunk_args a = {.params = params, .split = split, .first = start, .n = m, .scale = 1.0f};
        tp_tensor *per, *logits;
        int rc = run_chunk(w, &a, &per, &logits, err, errlen);
        if (rc)
            return rc;
        const uint8_t *lab = w->data.lab[split] + start;
        for (uint32_t i = 0; i < m; i++) {
            const float *z = logits->data + (uint64_t)i * FM_CLASSES; /* (10) */
            int best = 0;
            for (int k = 1; k < FM_CLASSES; k++)
                if (z[k] > z[best])
                    best = k;
            correct += best == lab[i];
            total += per->data[i];
        }
    }
    out->metric = size ? (double)correct / (double)size : 0.0;
    out->loss = size ? total / (double)size : 0.0;
    out->examples = size;
    return 0;
}

static void fm_free(tp_workload *base)
{
    fmnist *w = (fmnist *)base;
    if (!w)
        return;
    tp_graph_free(w->g);
    tp_fmnist_data_free(&w->data);
    free(w);
}

static const tp_workload_vtable fm_vtable = {
    .init_params = fm_init_params,
    .loss_and_grad = fm_loss_and_grad,
    .evaluate = fm_evaluate,
    .free = fm_free,
};

/* ---------------------------------------------------------------------------------------- */
/* Creation */

static int fm_create(const tp_wl_params *p, tp_workload **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *dir = FM_DEFAULT_DIR;
    int64_t split_seed = 0, limit[3] = {0, 0, 0}, width = 256, depth = 2;
    int act = 0, loss = FM_LOSS_XENT, standardize = FM_STD_GLOBAL;
    const double big = 9007199254740992.0; /* 2^53 */
    const tp_opt_spec specs[] = {
        {"data.dir", TP_OPT_STRING, 0, 0, NULL, &dir},
        {"data.split_seed", TP_OPT_INT, 0, big, NULL, &split_seed},
        {"data.train_limit", TP_OPT_INT, 0, FM_TRAIN_ALL, NULL, &limit[0]},
        {"data.validation_limit", TP_OPT_INT, 0, FM_TRAIN_ALL, NULL, &limit[1]},
        {"data.test_limit", TP_OPT_INT, 0, FM_TEST, NULL, &limit[2]},
        {"data.standardize", TP_OPT_CHOICE, 0, 0, standardize_names, &standardize},
        {"model.hidden_width", TP_OPT_INT, 1, FM_MAX_WIDTH, NULL, &width},
        {"model.depth", TP_OPT_INT, 0, FM_MAX_DEPTH, NULL, &depth},
        {"model.activation", TP_OPT_CHOICE, 0, 0, activation_names, &act},
        {"model.loss", TP_OPT_CHOICE, 0, 0, loss_names, &loss},
    };
    int rc = tp_wl_options_parse(p, FM_NAME, specs, sizeof specs / sizeof specs[0], err, errlen);
    if (rc)
        return rc;

    fmnist *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "fmnist_mlp: out of memory");
        return TP_ENOMEM;
    }
    w->base.vt = &fm_vtable;
    w->base.name = FM_NAME;
    w->base.metric = "accuracy";
    w->base.maximize = 1;
    w->width = (uint32_t)width;
    w->depth = (uint32_t)depth;
    w->act = activation_values[act];
    w->loss = loss;

    tp_param_spec specs_p[2 * (FM_MAX_DEPTH + 1)];
    for (uint32_t l = 0; l <= w->depth; l++) {
        w->layer_in[l] = l == 0 ? FM_PIXELS : w->width;
        w->layer_out[l] = l == w->depth ? FM_CLASSES : w->width;
        snprintf(w->names[2 * l], sizeof w->names[0], "fc%u.weight", l + 1);
        snprintf(w->names[2 * l + 1], sizeof w->names[0], "fc%u.bias", l + 1);
        specs_p[2 * l] = (tp_param_spec){
            w->names[2 * l], TP_PARAM_ROLE_WEIGHT, 2, {w->layer_in[l], w->layer_out[l], 1, 1}};
        specs_p[2 * l + 1] =
            (tp_param_spec){w->names[2 * l + 1], TP_PARAM_ROLE_BIAS, 1, {w->layer_out[l], 1, 1, 1}};
    }
    w->base.num_tensors = 2 * (w->depth + 1);
    w->base.tensors = w->tensors;
    if ((rc = tp_params_layout(w->tensors, specs_p, w->base.num_tensors, &w->base.num_params, err,
                               errlen)) ||
        (rc = load_data(w, p, dir, (uint64_t)split_seed, limit, err, errlen)) ||
        (rc = tp_graph_init(&w->g, (size_t)16 << 20, err, errlen))) {
        fm_free(&w->base);
        return rc;
    }
    set_standardization(w, standardize);
    *out = &w->base;
    return 0;
}

const tp_workload_desc tp_fmnist_mlp_desc = {
    .name = FM_NAME,
    .description = "MLP 784-256-256-10 on Fashion-MNIST (AlgoPerf's MNIST dev workload analog)",
    .create = fm_create,
    .metric = "accuracy",
    .maximize = 1,
};
