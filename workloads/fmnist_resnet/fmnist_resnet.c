/*
 * fmnist_resnet.c - the fmnist_resnet workload: a small ResNet with batch norm on
 * Fashion-MNIST, the analog of AlgoPerf's imagenet_resnet (ResNet-50 on ImageNet). Metric:
 * accuracy (higher is better).
 *
 * Data. As fmnist_mlp: the four gzip'd IDX files of the Debian package dataset-fashion-mnist
 * (data.dir); the 60,000 training images split by a permutation seeded with data.split_seed
 * into train (the first 50,000) and validation (the other 10,000); the 10,000 t10k images are
 * the test split; data.{train,validation,test}_limit keep the first N of a split (0: all), for
 * tests. A batch is gathered by index into (B, 28, 28, 1) NHWC floats,
 * x = (p / 255 - 0.2860) / 0.3530 (the pixel mean and standard deviation of the 60,000 train-file
 * images, fixed constants). No augmentation (the reference's random crops and flips are left
 * out: a few epochs of 28 x 28 images do not need them to reach the targets).
 *
 * Model (the reference's ResNet v1 with basic blocks, its ImageNet stem replaced by a CIFAR-
 * style one for 28 x 28 inputs). W = model.width, S = model.stages, N = model.blocks, act =
 * model.activation (relu / silu / gelu):
 *   stem:  conv 3x3 stride 1, 1 -> W channels, no bias; batch norm; act        (B, 28, 28, W)
 *   stage s = 0 .. S-1, W_s = W 2^s channels, N basic blocks each; the first block of stages
 *   s > 0 has stride 2 (28 -> 14 -> 7 -> 4, "SAME" padding as Flax's Conv):
 *     y = act(bn1(conv1 3x3 stride st (x)));  y = bn2(conv2 3x3 (y))
 *     r = x, or bn_proj(conv 1x1 stride st (x)) when the shape changes
 *     out = act(r + y)
 *   head:  global average pool (B, W_{S-1}); dense -> 10 logits with bias.
 * Convolutions have no bias (batch norm follows each). Loss: softmax cross-entropy with the
 * submission's label smoothing. Dropout: not applicable (the reference ResNet has none; a
 * dropout_rate is range-checked and ignored).
 *
 * Batch norm (momentum 0.9, eps 1e-5, as the reference's): in train mode each batch-norm layer
 * normalises with the statistics of its batch, over (B, H, W), and updates its running mean
 * and (biased) variance in place, running = 0.9 running + 0.1 batch; in eval mode
 * (TP_LOSS_EVAL_MODE, evaluate) it normalises with the running statistics and updates nothing;
 * with the host-internal TP_WL_LOSS_FROZEN_STATE (the sharpness diagnostics) it is train mode
 * that leaves the running statistics alone.
 * The running statistics are model state owned by the workload: not parameters, not in the
 * tensor table, reset (mean 0, variance 1) by init_params and at creation. Every train-mode
 * loss_and_grad call updates them, with or without a gradient (per-example losses for data
 * selection too), as every update_batch_norm=True forward of the reference does. Batches of
 * more than FR_CHUNK examples are processed in consecutive chunks of FR_CHUNK (the last one
 * smaller), each a batch-norm batch of its own (ghost batches, like the reference's per-device
 * batches) that updates the running statistics once.
 *
 * Init. Each tensor from its own stream tp_rng_seed2(seed, tensor index): conv kernels He
 * normal, std sqrt(2 / fan_in) with fan_in = KH KW C_in (the reference uses Flax's default,
 * truncated LeCun normal, 1 / sqrt(2) of that: with batch norm after every conv the forward
 * pass does not depend on the scale, an optimizer's relative step size does); batch-norm scale
 * 1 and shift 0, except the scale of the LAST batch norm of each block's residual branch (bn2),
 * which is model.bn_init_scale: 0 by default, as the reference's bn_init_scale = 0.0, so every
 * residual branch starts at zero (the large_bn_init variant sets 8, the reference's value);
 * the dense head normal with std 0.01 (the reference's nn.initializers.normal()), bias 0.
 *
 * Tensor table, in this order: "stem.conv.weight" (3, 3, 1, W), "stem.bn.scale" (W),
 * "stem.bn.bias" (W); per block "stage<s>.block<b>.conv1.weight" (3, 3, C_in, W_s), ".bn1.scale",
 * ".bn1.bias", ".conv2.weight" (3, 3, W_s, W_s), ".bn2.scale", ".bn2.bias" and, where the shape
 * changes, ".proj.weight" (1, 1, C_in, W_s), ".proj_bn.scale", ".proj_bn.bias" (s and b from
 * 1); "head.weight" (W_{S-1}, 10), "head.bias" (10). Conv kernels are HWIO.
 *
 * Not here: targets and budget (fmnist_resnet.cfg, read by the host); the engine's ops
 * (core/nn/conv.h).
 */
#include "workloads/fmnist_resnet/fmnist_resnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn/nn.h"
#include "core/nn/rng.h"
#include "workloads/common/fmnist_data.h"
#include "workloads/common/options.h"

#define FR_NAME        "fmnist_resnet"
#define FR_SIDE        28
#define FR_PIXELS      784
#define FR_CLASSES     10
#define FR_TRAIN_ALL   60000 /* train-images-idx3-ubyte: train + validation */
#define FR_VALIDATION  10000
#define FR_TEST        10000
#define FR_MAX_STAGES  4
#define FR_MAX_BLOCKS  8
#define FR_MAX_WIDTH   1024                                          /* channels of any stage */
#define FR_MAX_UNITS   (1 + FR_MAX_STAGES * (2 * FR_MAX_BLOCKS + 1)) /* conv + bn pairs */
#define FR_MAX_TENSORS (3 * FR_MAX_UNITS + 2)
#define FR_CHUNK       256 /* examples per forward/backward chunk: the batch-norm batch */
#define FR_BN_MOMENTUM 0.9f
#define FR_BN_EPS      1e-5f
#define FR_HEAD_STD    0.01f
#define FR_PIXEL_MEAN  0.2860f
#define FR_PIXEL_STD   0.3530f
#define FR_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define FR_PACKAGE     "dataset-fashion-mnist"

/* A convolution followed by its batch norm. */
typedef struct fr_unit {
    uint32_t k, stride; /* square kernel, equal strides */
    uint32_t cin, cout;
    uint32_t t;       /* tensors[t]: kernel (k, k, cin, cout); t + 1: scale; t + 2: shift */
    uint64_t state;   /* bn_state[state ..): running mean (cout), then running var (cout) */
    float scale_init; /* initial batch-norm scale */
} fr_unit;

/* A basic block: units conv1, conv2 and proj (0: identity shortcut; unit 0 is the stem). */
typedef struct fr_block {
    uint32_t conv1, conv2, proj;
} fr_block;

typedef struct fresnet {
    tp_workload base;
    uint32_t width, stages, blocks;
    tp_act act;
    float bn_init_scale;
    uint32_t num_units, num_blocks;
    fr_unit units[FR_MAX_UNITS];
    fr_block blk[FR_MAX_STAGES * FR_MAX_BLOCKS];
    uint32_t head;   /* tensors[head]: dense (C, 10); head + 1: bias (10) */
    float *bn_state; /* (bn_floats): per unit, running mean (C) then running var (C) */
    uint64_t bn_floats;
    tp_fmnist_data data; /* the images and labels, split by split */
    tp_tensor_info tensors[FR_MAX_TENSORS];
    char names[FR_MAX_TENSORS][40];
    tp_graph *g;
} fresnet;

static const char *const activation_names[] = {"relu", "silu", "gelu", NULL};
static const tp_act activation_values[] = {TP_ACT_RELU, TP_ACT_SILU, TP_ACT_GELU};

/* ---------------------------------------------------------------------------------------- */
/* Data (the same files, split and transform as fmnist_mlp) */

/* The shared loader (workloads/common/fmnist_data.c), and the split sizes it gives. */
static int load_data(fresnet *w, const tp_wl_params *p, const char *dir, uint64_t split_seed,
                     const int64_t limit[3], char *err, size_t errlen)
{
    int rc = tp_fmnist_data_load(&w->data, p, w->base.name, dir, split_seed, limit, err, errlen);
    for (int s = 0; rc == 0 && s < 3; s++)
        w->base.split_size[s] = w->data.size[s];
    return rc;
}

/* x (n, 28, 28, 1) = standardised pixels of rows idx[i] (or first + i when idx is NULL). */
static void gather(float *x, const uint8_t *img, const uint32_t *idx, uint64_t first, uint32_t n)
{
    const float a = 1.0f / (255.0f * FR_PIXEL_STD), b = -FR_PIXEL_MEAN / FR_PIXEL_STD;
    for (uint32_t i = 0; idx && i < TP_FMNIST_PREFETCH && i < n; i++)
        tp_fmnist_prefetch_row(img + idx[i] * (uint64_t)FR_PIXELS);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *src = img + (idx ? idx[i] : first + i) * (uint64_t)FR_PIXELS;
        float *dst = x + (uint64_t)i * FR_PIXELS;
        if (idx && i + TP_FMNIST_PREFETCH < n)
            tp_fmnist_prefetch_row(img + idx[i + TP_FMNIST_PREFETCH] * (uint64_t)FR_PIXELS);
        for (int j = 0; j < FR_PIXELS; j++)
            dst[j] = (float)src[j] * a + b;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Model */

typedef struct chunk_args {
    const float *params;
    float *grad;        /* NULL: no gradient */
    int grad_overwrite; /* the first chunk overwrites grad, later ones add */
    int train;          /* batch norm with batch statistics, updating the running ones */
    float bn_momentum;  /* FR_BN_MOMENTUM; 1 keeps the running statistics (frozen state) */
    tp_split split;
    const uint32_t *idx; /* rows of the split, or NULL for first .. first + n */
    uint64_t first;
    uint32_t n;
    const float *weights; /* (n) or NULL */
    float scale;          /* the loss is scale * sum_i w_i l_i */
    float smoothing;
} chunk_args;

/* A view of parameter tensor t (and its gradient when a->grad). */
static tp_tensor *param(fresnet *w, const chunk_args *a, uint32_t t)
{
    const tp_tensor_info *ti = &w->tensors[t];
    return tp_tensor_view(w->g, (float *)a->params + ti->offset,
                          a->grad ? a->grad + ti->offset : NULL, ti->ndim, ti->shape,
                          a->grad_overwrite ? TP_TENSOR_GRAD_OVERWRITE : 0);
}

/* act(bn(conv(x))) for unit u: x (n, H, W, cin) -> (n, ceil(H / stride), ceil(W / stride),
 * cout). */
static tp_tensor *conv_bn(fresnet *w, const chunk_args *a, tp_tensor *x, const fr_unit *u,
                          tp_act act)
{
    tp_graph *g = w->g;
    tp_tensor *h = tp_conv2d_same(g, x, param(w, a, u->t), NULL, u->stride, u->stride);
    float *mean = w->bn_state + u->state, *var = mean + u->cout;
    h = tp_batchnorm(g, h, param(w, a, u->t + 1), param(w, a, u->t + 2), mean, var, a->bn_momentum,
                     FR_BN_EPS, a->train);
    return tp_activation(g, h, act);
}

/* Forward (and backward when a->grad) of one chunk; *per gets the (n) per-example losses and
 * *logits the (n, 10) outputs, both valid until the next chunk. */
static int run_chunk(fresnet *w, const chunk_args *a, tp_tensor **per, tp_tensor **logits,
                     char *err, size_t errlen)
{
    tp_graph *g = w->g;
    tp_graph_reset(g);
    tp_tensor *x = tp_tensor_new(g, 4, (uint32_t[]){a->n, FR_SIDE, FR_SIDE, 1}, 0);
    int32_t *labels = tp_graph_alloc(g, a->n * sizeof *labels); /* (n) */
    if (x && labels) {
        gather(x->data, w->data.img[a->split], a->idx, a->first, a->n);
        const uint8_t *lab = w->data.lab[a->split];
        for (uint32_t i = 0; i < a->n; i++)
            labels[i] = lab[a->idx ? a->idx[i] : a->first + i];
    }
    tp_tensor *h = conv_bn(w, a, x, &w->units[0], w->act); /* (n, 28, 28, W) */
    for (uint32_t k = 0; k < w->num_blocks; k++) {
        const fr_block *b = &w->blk[k];
        tp_tensor *y = conv_bn(w, a, h, &w->units[b->conv1], w->act); /* (n, H', W', C') */
        y = conv_bn(w, a, y, &w->units[b->conv2], TP_ACT_NONE);       /* (n, H', W', C') */
        tp_tensor *r = b->proj ? conv_bn(w, a, h, &w->units[b->proj], TP_ACT_NONE) : h;
        h = tp_activation(g, tp_add(g, r, y), w->act); /* (n, H', W', C') */
    }
    h = tp_global_avgpool(g, h);                                                      /* (n, C) */
    h = tp_linear(g, h, param(w, a, w->head), param(w, a, w->head + 1), TP_ACT_NONE); /* (n, 10) */
    tp_tensor *losses = tp_softmax_xent(g, h, labels, a->smoothing);                  /* (n) */
    tp_tensor *loss = tp_sum(g, losses, a->weights, a->scale);                        /* (1) */
    int rc = a->grad ? tp_graph_backward(g, loss, err, errlen) : tp_graph_status(g, err, errlen);
    if (rc)
        return rc;
    *per = losses;
    *logits = h;
    return 0;
}

static void reset_bn_state(fresnet *w)
{
    for (uint32_t k = 0; k < w->num_units; k++) {
        const fr_unit *u = &w->units[k];
        float *mean = w->bn_state + u->state, *var = mean + u->cout;
        for (uint32_t c = 0; c < u->cout; c++) {
            mean[c] = 0.0f;
            var[c] = 1.0f;
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The vtable */

static int fr_init_params(tp_workload *base, uint64_t seed, float *params, char *err, size_t errlen)
{
    fresnet *w = (fresnet *)base;
    if (!params) {
        snprintf(err, errlen, FR_NAME ".init_params: params is NULL");
        return TP_EINVAL;
    }
    for (uint32_t k = 0; k < w->num_units; k++) {
        const fr_unit *u = &w->units[k];
        const tp_tensor_info *tk = &w->tensors[u->t], *ts = tk + 1, *tb = tk + 2;
        tp_rng r;
        tp_rng_seed2(&r, seed, u->t);
        tp_fill_normal(params + tk->offset, tk->numel, sqrtf(2.0f / (float)(u->k * u->k * u->cin)),
                       &r);
        for (uint64_t i = 0; i < ts->numel; i++)
            params[ts->offset + i] = u->scale_init;
        memset(params + tb->offset, 0, tb->numel * sizeof(float));
    }
    const tp_tensor_info *hw = &w->tensors[w->head], *hb = hw + 1;
    tp_rng r;
    tp_rng_seed2(&r, seed, w->head);
    tp_fill_normal(params + hw->offset, hw->numel, FR_HEAD_STD, &r);
    memset(params + hb->offset, 0, hb->numel * sizeof(float));
    reset_bn_state(w);
    return 0;
}

static int fr_loss_and_grad(tp_workload *base, const float *params, const uint32_t *idx,
                            const float *weights, uint32_t n, const tp_loss_opts *opts,
                            uint64_t dropout_seed, float *grad, double *loss, float *per_example,
                            char *err, size_t errlen)
{
    fresnet *w = (fresnet *)base;
    (void)dropout_seed; /* no dropout in this model */
    if (!params || !idx || n == 0) {
        snprintf(err, errlen, FR_NAME ".loss_and_grad: %s",
                 !params ? "params is NULL"
                 : !idx  ? "idx is NULL"
                         : "the batch is empty");
        return TP_EINVAL;
    }
    uint64_t size = w->base.split_size[TP_SPLIT_TRAIN];
    for (uint32_t i = 0; i < n; i++)
        if (idx[i] >= size) {
            snprintf(err, errlen,
                     FR_NAME ".loss_and_grad: index %u at batch position %u is out of range: "
                             "the training split has %llu examples",
                     idx[i], i, (unsigned long long)size);
            return TP_ERANGE;
        }
    float smoothing = 0.0f, dropout = 0.0f;
    int eval_mode = 0, frozen = 0;
    if (TP_FIELD_PRESENT(opts, tp_loss_opts, label_smoothing))
        smoothing = opts->label_smoothing;
    if (TP_FIELD_PRESENT(opts, tp_loss_opts, dropout_rate))
        dropout = opts->dropout_rate;
    if (TP_FIELD_PRESENT(opts, tp_loss_opts, flags)) {
        eval_mode = (opts->flags & TP_LOSS_EVAL_MODE) != 0;
        frozen = (opts->flags & TP_WL_LOSS_FROZEN_STATE) != 0;
    }
    if (!(smoothing >= 0.0f && smoothing < 1.0f) || !(dropout >= 0.0f && dropout < 1.0f)) {
        snprintf(err, errlen,
                 FR_NAME ".loss_and_grad: label_smoothing %g and dropout_rate %g must both be "
                         "in [0, 1)",
                 (double)smoothing, (double)dropout);
        return TP_EINVAL;
    }

    double total = 0.0;
    for (uint32_t start = 0; start < n; start += FR_CHUNK) {
        uint32_t m = n - start < FR_CHUNK ? n - start : FR_CHUNK;
        chunk_args a = {
            .params = params,
            .grad = grad,
            .grad_overwrite = start == 0,
            .train = !eval_mode,
            .bn_momentum = frozen ? 1.0f : FR_BN_MOMENTUM,
            .split = TP_SPLIT_TRAIN,
            .idx = idx + start,
            .n = m,
            .weights = weights ? weights + start : NULL,
            .scale = (float)(1.0 / n),
            .smoothing = smoothing,
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

static int fr_evaluate(tp_workload *base, const float *params, tp_split split, tp_eval_result *out,
                       char *err, size_t errlen)
{
    fresnet *w = (fresnet *)base;
    if (!params || !out || (unsigned)split > TP_SPLIT_TEST) {
        snprintf(err, errlen, FR_NAME ".evaluate: %s",
                 !params ? "params is NULL"
                 : !out  ? "out is NULL"
                         : "no such split");
        return TP_EINVAL;
    }
    uint64_t size = w->base.split_size[split];
    uint64_t correct = 0;
    double total = 0.0;
    for (uint64_t start = 0; start < size; start += FR_CHUNK) {
        uint32_t m = (uint32_t)(size - start < FR_CHUNK ? size - start : FR_CHUNK);
        chunk_args a = {.params = params,
                        .split = split,
                        .first = start,
                        .n = m,
                        .scale = 1.0f,
                        .bn_momentum = FR_BN_MOMENTUM};
        tp_tensor *per, *logits;
        int rc = run_chunk(w, &a, &per, &logits, err, errlen);
        if (rc)
            return rc;
        const uint8_t *lab = w->data.lab[split] + start;
        for (uint32_t i = 0; i < m; i++) {
            const float *z = logits->data + (uint64_t)i * FR_CLASSES; /* (10) */
            int best = 0;
            for (int k = 1; k < FR_CLASSES; k++)
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

static void fr_free(tp_workload *base)
{
    fresnet *w = (fresnet *)base;
    if (!w)
        return;
    tp_graph_free(w->g);
    free(w->bn_state);
    tp_fmnist_data_free(&w->data);
    free(w);
}

static const tp_workload_vtable fr_vtable = {
    .init_params = fr_init_params,
    .loss_and_grad = fr_loss_and_grad,
    .evaluate = fr_evaluate,
    .free = fr_free,
};

const float *tp_fmnist_resnet_bn_state(const tp_workload *base, uint64_t *n)
{
    if (!base || base->vt != &fr_vtable) {
        if (n)
            *n = 0;
        return NULL;
    }
    const fresnet *w = (const fresnet *)base;
    if (n)
        *n = w->bn_floats;
    return w->bn_state;
}

/* ---------------------------------------------------------------------------------------- */
/* Creation */

/* Append unit (conv k x k, cin -> cout, stride) with its three tensors named prefix.{conv,bn}
 * (conv_name, bn_name: "conv1" / "bn1", ...). */
static uint32_t add_unit(fresnet *w, tp_param_spec *specs, uint32_t *nt, const char *prefix,
                         const char *conv_name, const char *bn_name, uint32_t k, uint32_t cin,
                         uint32_t cout, uint32_t stride, float scale_init)
{
    uint32_t id = w->num_units++;
    fr_unit *u = &w->units[id];
    *u = (fr_unit){.k = k,
                   .stride = stride,
                   .cin = cin,
                   .cout = cout,
                   .t = *nt,
                   .state = w->bn_floats,
                   .scale_init = scale_init};
    w->bn_floats += 2 * (uint64_t)cout;
    snprintf(w->names[*nt], sizeof w->names[0], "%s.%s.weight", prefix, conv_name);
    snprintf(w->names[*nt + 1], sizeof w->names[0], "%s.%s.scale", prefix, bn_name);
    snprintf(w->names[*nt + 2], sizeof w->names[0], "%s.%s.bias", prefix, bn_name);
    specs[*nt] = (tp_param_spec){w->names[*nt], TP_PARAM_ROLE_WEIGHT, 4, {k, k, cin, cout}};
    specs[*nt + 1] =
        (tp_param_spec){w->names[*nt + 1], TP_PARAM_ROLE_NORM_SCALE, 1, {cout, 1, 1, 1}};
    specs[*nt + 2] =
        (tp_param_spec){w->names[*nt + 2], TP_PARAM_ROLE_NORM_BIAS, 1, {cout, 1, 1, 1}};
    *nt += 3;
    return id;
}

/* The units, blocks and tensor table of the configured network. */
static void build_model(fresnet *w, tp_param_spec *specs)
{
    uint32_t nt = 0;
    add_unit(w, specs, &nt, "stem", "conv", "bn", 3, 1, w->width, 1, 1.0f);
    uint32_t cin = w->width;
    for (uint32_t s = 0; s < w->stages; s++) {
        uint32_t cout = w->width << s;
        for (uint32_t b = 0; b < w->blocks; b++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "stage%u.block%u", s + 1, b + 1);
            uint32_t stride = s > 0 && b == 0 ? 2 : 1;
            fr_block *k = &w->blk[w->num_blocks++];
            k->conv1 = add_unit(w, specs, &nt, prefix, "conv1", "bn1", 3, cin, cout, stride, 1.0f);
            k->conv2 =
                add_unit(w, specs, &nt, prefix, "conv2", "bn2", 3, cout, cout, 1, w->bn_init_scale);
            k->proj = cin != cout || stride != 1 ? add_unit(w, specs, &nt, prefix, "proj",
                                                            "proj_bn", 1, cin, cout, stride, 1.0f)
                                                 : 0;
            cin = cout;
        }
    }
    w->head = nt;
    snprintf(w->names[nt], sizeof w->names[0], "head.weight");
    snprintf(w->names[nt + 1], sizeof w->names[0], "head.bias");
    specs[nt] = (tp_param_spec){w->names[nt], TP_PARAM_ROLE_WEIGHT, 2, {cin, FR_CLASSES, 1, 1}};
    specs[nt + 1] = (tp_param_spec){w->names[nt + 1], TP_PARAM_ROLE_BIAS, 1, {FR_CLASSES, 1, 1, 1}};
    w->base.num_tensors = nt + 2;
}

static int fr_create(const tp_wl_params *p, tp_workload **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *dir = FR_DEFAULT_DIR;
    int64_t split_seed = 0, limit[3] = {0, 0, 0}, width = 16, stages = 3, blocks = 1;
    int act = 0;
    double bn_init_scale = 0.0;
    const double big = 9007199254740992.0; /* 2^53 */
    const tp_opt_spec specs[] = {
        {"data.dir", TP_OPT_STRING, 0, 0, NULL, &dir},
        {"data.split_seed", TP_OPT_INT, 0, big, NULL, &split_seed},
        {"data.train_limit", TP_OPT_INT, 0, FR_TRAIN_ALL, NULL, &limit[0]},
        {"data.validation_limit", TP_OPT_INT, 0, FR_TRAIN_ALL, NULL, &limit[1]},
        {"data.test_limit", TP_OPT_INT, 0, FR_TEST, NULL, &limit[2]},
        {"model.width", TP_OPT_INT, 1, FR_MAX_WIDTH, NULL, &width},
        {"model.stages", TP_OPT_INT, 1, FR_MAX_STAGES, NULL, &stages},
        {"model.blocks", TP_OPT_INT, 1, FR_MAX_BLOCKS, NULL, &blocks},
        {"model.activation", TP_OPT_CHOICE, 0, 0, activation_names, &act},
        {"model.bn_init_scale", TP_OPT_NUMBER, -100.0, 100.0, NULL, &bn_init_scale},
    };
    int rc = tp_wl_options_parse(p, FR_NAME, specs, sizeof specs / sizeof specs[0], err, errlen);
    if (rc)
        return rc;
    if ((uint64_t)width << (stages - 1) > FR_MAX_WIDTH) {
        char at[512];
        snprintf(err, errlen,
                 "%s: %lld channels, doubled at each of the %lld stages, makes %lld in the last; "
                 "at most %d",
                 tp_wl_option_where(p, "model.width", at, sizeof at), (long long)width,
                 (long long)stages, (long long)(width << (stages - 1)), FR_MAX_WIDTH);
        return TP_ECONFIG;
    }

    fresnet *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, FR_NAME ": out of memory");
        return TP_ENOMEM;
    }
    w->base.vt = &fr_vtable;
    w->base.name = FR_NAME;
    w->base.metric = "accuracy";
    w->base.maximize = 1;
    w->width = (uint32_t)width;
    w->stages = (uint32_t)stages;
    w->blocks = (uint32_t)blocks;
    w->act = activation_values[act];
    w->bn_init_scale = (float)bn_init_scale;

    tp_param_spec pspecs[FR_MAX_TENSORS];
    build_model(w, pspecs);
    w->base.tensors = w->tensors;
    w->bn_state = malloc(w->bn_floats * sizeof(float));
    if (!w->bn_state) {
        snprintf(err, errlen, FR_NAME ": out of memory");
        fr_free(&w->base);
        return TP_ENOMEM;
    }
    reset_bn_state(w);
    if ((rc = tp_params_layout(w->tensors, pspecs, w->base.num_tensors, &w->base.num_params, err,
                               errlen)) ||
        (rc = load_data(w, p, dir, (uint64_t)split_seed, limit, err, errlen)) ||
        (rc = tp_graph_init(&w->g, (size_t)64 << 20, err, errlen))) {
        fr_free(&w->base);
        return rc;
    }
    *out = &w->base;
    return 0;
}

const tp_workload_desc tp_fmnist_resnet_desc = {
    .name = FR_NAME,
    .description = "ResNet with batch norm on Fashion-MNIST (AlgoPerf's imagenet_resnet analog)",
    .create = fr_create,
    .metric = "accuracy",
    .maximize = 1,
};
