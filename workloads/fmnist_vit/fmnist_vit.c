/*
 * fmnist_vit.c - the fmnist_vit workload: a small Vision Transformer on Fashion-MNIST, the
 * analog of AlgoPerf's imagenet_vit (ViT-S/16). Metric: accuracy (higher is better).
 *
 * Data. Exactly fmnist_mlp's (same files, split and transform): the 60,000 training images
 * split by a permutation seeded with data.split_seed into train (50,000) and validation
 * (10,000), the 10,000 t10k images as test, data.*_limit to keep the first N of a split, bytes
 * in memory standardised on the fly with the train file's pixel mean and deviation. Patchify
 * happens in the data path: a batch is gathered straight into (n, T, P * P) patch rows (patch
 * pixels in row-major order, patches in row-major order over the image), so the patch
 * embedding is a dense layer and no convolution is needed (the reference's stride-P VALID conv
 * is the same map).
 *
 * Model (defaults in brackets; P = model.patch_size [7], T = (28 / P)^2 tokens [16],
 * D = model.width [64], H = model.heads [4], F = model.mlp_dim [4 D = 256], L = model.depth [4]):
 *   patch.weight (P*P, D), patch.bias (D)           tokens = patches @ W + b     (n, T, D)
 *   pos_embed (T, D)                                tokens += pos_embed (broadcast over n)
 *   dropout
 *   L encoder blocks, pre-LN (model.norm "pre_ln"):
 *     y = LN1(x); x = x + dropout(MHSA(y)); y = LN2(x); x = x + dropout(MLP(y))
 *   or post-LN ("post_ln", AlgoPerf's variant):
 *     x = LN1(x + dropout(MHSA(x))); x = LN2(x + dropout(MLP(x)))
 *   encoder_norm (pre-LN only; a post-LN encoder already ends on a LayerNorm, as in AlgoPerf)
 *   pooling: "gap" the mean over tokens (n, D), or "map" multi-head attention pooling: a
 *     learned probe (1, 1, D) attends over the tokens (Tq = 1), z = a + MLP(LN(a)) (n, D)
 *   pre_logits (D, R) + tanh when model.rep_size R > 0 (AlgoPerf's rep_size; 0 by default)
 *   head (D or R, 10)                               logits                       (n, 10)
 * MHSA: separate query / key / value (D, D) projections with biases, softmax(q k^T / sqrt(D/H))
 * per head, an output (D, D) projection with bias (Flax's MultiHeadDotProductAttention). MLP:
 * gelu(x W1 + b1) -> dropout -> W2 + b2 with W1 (D, F), or, model.mlp = "glu", a GeGLU from
 * one fused projection W1 = [Wg | Wl] (D, 2F): gelu(x Wg + bg) * (x Wl + bl) -> dropout -> W2.
 * LayerNorm eps 1e-6 (Flax's default). GELU is the tanh approximation (jax.nn.gelu's default).
 * Loss: softmax cross-entropy with the submission's label smoothing.
 *
 * Dropout (tp_loss_opts.dropout_rate, off in TP_LOSS_EVAL_MODE) where AlgoPerf's ViT has it:
 * on the tokens after the position embedding, on each attention output and each MLP output
 * before its residual add, and inside each encoder MLP after the activation. None in the MAP
 * head (the reference calls its MlpBlock deterministically) and none on attention weights.
 *
 * Init, as Flax's / AlgoPerf's ViT, each tensor from its own stream tp_rng_seed2(seed, index
 * in the table): dense kernels (attention, MLP, MAP head) xavier-uniform over (fan_in,
 * fan_out), the fused GeGLU kernel as its two (D, F) halves; patch embedding LeCun normal
 * truncated at 2 std (Flax's Conv default); pre_logits LeCun normal truncated (Flax's Dense
 * default); learned position embeddings normal(0.02); MAP probe xavier-uniform over (1, D);
 * head kernel ZERO (AlgoPerf's head_zeroinit = True); every bias zero (the reference draws the
 * MLP biases from normal(1e-6), indistinguishable); LayerNorm scales 1, shifts 0.
 *
 * Differences from AlgoPerf's imagenet_vit model, on purpose or for want of an op:
 *   - position embeddings are learned by default; model.posemb = "sincos2d" gives the
 *     reference's fixed 2-D sin-cos embedding (MoCo v3 layout, temperature 10,000) instead.
 *   - no pre_logits layer by default (model.rep_size = D restores the reference's).
 *   - the "glu" MLP is the standard GeGLU, gelu(x Wg) * (x Wl). The reference's is
 *     h * (h W2 + b2) with h = gelu(x W1 + b1) (its second projection reads the activated
 *     hidden, (F, F)); expressing that needs an elementwise product of two tensors, which the
 *     engine does not have (tp_glu multiplies two halves of one).
 *
 * Batches larger than a chunk are processed chunk by chunk, gradients accumulating, so memory
 * stays bounded whatever the batch (evaluation is the same with no gradient).
 *
 * Not here: targets, budget and the variants' settings (fmnist_vit.cfg, read by the host); data
 * augmentation (none, like fmnist_mlp); attention dropout.
 */
#include "workloads/fmnist_vit/fmnist_vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/nn/nn.h"
#include "core/nn/rng.h"
#include "workloads/common/fmnist_data.h"
#include "workloads/common/options.h"

#define FV_NAME        "fmnist_vit"
#define FV_SIDE        28
#define FV_PIXELS      784
#define FV_CLASSES     10
#define FV_TRAIN_ALL   60000 /* train-images-idx3-ubyte: train + validation */
#define FV_VALIDATION  10000
#define FV_TEST        10000
#define FV_MAX_DEPTH   12
#define FV_MAX_WIDTH   1024
#define FV_MAX_TENSORS (3 + 16 * FV_MAX_DEPTH + 2 + 15 + 4)
#define FV_CHUNK       256 /* rows per forward/backward chunk in training */
#define FV_EVAL_CHUNK  500 /* rows per forward chunk in evaluation */
#define FV_LN_EPS      1e-6f
#define FV_PIXEL_MEAN  0.2860f
#define FV_PIXEL_STD   0.3530f
#define FV_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define FV_PACKAGE     "dataset-fashion-mnist"
#define FV_NONE        UINT32_MAX /* a tensor index that is not there */

/* How a tensor is initialised. */
enum {
    INIT_ZERO = 0,
    INIT_ONE,
    INIT_XAVIER,       /* uniform, limit sqrt(6 / (fan_in + fan_out)) */
    INIT_LECUN_TRUNC,  /* normal std sqrt(1 / fan_in) / 0.8796, truncated at 2 std */
    INIT_NORMAL_POSEMB /* normal(0.02) */
};

typedef struct attn_ix {
    uint32_t wq, bq, wk, bk, wv, bv, wo, bo;
} attn_ix;

typedef struct mlp_ix {
    uint32_t w1, b1, w2, b2;
} mlp_ix;

typedef struct block_ix {
    uint32_t ln1s, ln1b;
    attn_ix attn;
    uint32_t ln2s, ln2b;
    mlp_ix mlp;
} block_ix;

typedef struct vit {
    tp_workload base;
    /* Geometry. */
    uint32_t patch, grid, tokens, patch_pixels; /* P, 28 / P, T, P * P */
    uint32_t width, depth, heads, mlp_dim, rep_size;
    int glu, post_ln, map, learned_pos;
    /* Data. */
    tp_fmnist_data data;         /* the images and labels, split by split */
    uint32_t pix_dst[FV_PIXELS]; /* pixel r * 28 + c -> its place in the (T, P * P) rows */
    float *posemb_fixed;         /* (T, D) sin-cos table, or NULL when learned */
    /* Parameters: the table and where each part of the model is in it. */
    tp_tensor_info tensors[FV_MAX_TENSORS];
    char names[FV_MAX_TENSORS][40];
    uint8_t init[FV_MAX_TENSORS];
    float fan_in[FV_MAX_TENSORS], fan_out[FV_MAX_TENSORS];
    uint32_t patch_w, patch_b, pos;
    block_ix blocks[FV_MAX_DEPTH];
    uint32_t enc_s, enc_b;
    uint32_t probe, map_ln_s, map_ln_b;
    attn_ix map_attn;
    mlp_ix map_mlp;
    uint32_t pre_w, pre_b, head_w, head_b;
    tp_graph *g;
} vit;

static const char *const mlp_names[] = {"gelu", "glu", NULL};
static const char *const norm_names[] = {"pre_ln", "post_ln", NULL};
static const char *const pool_names[] = {"gap", "map", NULL};
static const char *const posemb_names[] = {"learned", "sincos2d", NULL};

/* ---------------------------------------------------------------------------------------- */
/* Data (as fmnist_mlp's) */

/* The shared loader (workloads/common/fmnist_data.c), and the split sizes it gives. */
static int load_data(vit *w, const tp_wl_params *p, const char *dir, uint64_t split_seed,
                     const int64_t limit[3], char *err, size_t errlen)
{
    int rc = tp_fmnist_data_load(&w->data, p, w->base.name, dir, split_seed, limit, err, errlen);
    for (int s = 0; rc == 0 && s < 3; s++)
        w->base.split_size[s] = w->data.size[s];
    return rc;
}

/* x (n, T, P * P) = the standardised pixels of rows idx[i] (or first + i when idx is NULL),
 * cut into patches: pixel j of an image goes to x[i][pix_dst[j]]. */
static void gather(const vit *w, float *x, const uint8_t *img, const uint32_t *idx, uint64_t first,
                   uint32_t n)
{
    const float a = 1.0f / (255.0f * FV_PIXEL_STD), b = -FV_PIXEL_MEAN / FV_PIXEL_STD;
    const uint32_t *dst_of = w->pix_dst;
    for (uint32_t i = 0; idx && i < TP_FMNIST_PREFETCH && i < n; i++)
        tp_fmnist_prefetch_row(img + idx[i] * (uint64_t)FV_PIXELS);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *src = img + (idx ? idx[i] : first + i) * (uint64_t)FV_PIXELS;
        float *dst = x + (uint64_t)i * FV_PIXELS;
        if (idx && i + TP_FMNIST_PREFETCH < n)
            tp_fmnist_prefetch_row(img + idx[i + TP_FMNIST_PREFETCH] * (uint64_t)FV_PIXELS);
        for (int j = 0; j < FV_PIXELS; j++)
            dst[dst_of[j]] = (float)src[j] * a + b;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Parameter layout */

typedef struct layout {
    vit *w;
    tp_param_spec specs[FV_MAX_TENSORS];
    uint32_t n;
} layout;

/* Append tensor `prefix``suffix` of shape (d0[, d1[, d2]]) (ndim from the nonzero dims);
 * returns its index. */
static uint32_t add_tensor(layout *L, const char *prefix, const char *suffix, tp_param_role role,
                           int init, uint32_t d0, uint32_t d1, uint32_t d2, float fan_in,
                           float fan_out)
{
    vit *w = L->w;
    uint32_t i = L->n++;
    snprintf(w->names[i], sizeof w->names[i], "%s%s", prefix, suffix);
    uint32_t ndim = d2 ? 3 : d1 ? 2 : 1;
    L->specs[i] = (tp_param_spec){w->names[i], role, ndim, {d0, d1 ? d1 : 1, d2 ? d2 : 1, 1}};
    w->init[i] = (uint8_t)init;
    w->fan_in[i] = fan_in;
    w->fan_out[i] = fan_out;
    return i;
}

/* A dense layer (in, out) with bias. */
static void add_dense(layout *L, const char *prefix, uint32_t in, uint32_t out, int init,
                      float fan_in, float fan_out, uint32_t *wi, uint32_t *bi)
{
    *wi = add_tensor(L, prefix, ".weight", TP_PARAM_ROLE_WEIGHT, init, in, out, 0, fan_in, fan_out);
    *bi = add_tensor(L, prefix, ".bias", TP_PARAM_ROLE_BIAS, INIT_ZERO, out, 0, 0, 0, 0);
}

static void add_layernorm(layout *L, const char *prefix, uint32_t *si, uint32_t *bi)
{
    uint32_t D = L->w->width;
    *si = add_tensor(L, prefix, ".scale", TP_PARAM_ROLE_NORM_SCALE, INIT_ONE, D, 0, 0, 0, 0);
    *bi = add_tensor(L, prefix, ".bias", TP_PARAM_ROLE_NORM_BIAS, INIT_ZERO, D, 0, 0, 0, 0);
}

static void add_attention(layout *L, const char *prefix, attn_ix *a)
{
    char p[40];
    uint32_t D = L->w->width;
    const char *part[4] = {"query", "key", "value", "out"};
    uint32_t *ix[4][2] = {{&a->wq, &a->bq}, {&a->wk, &a->bk}, {&a->wv, &a->bv}, {&a->wo, &a->bo}};
    for (int k = 0; k < 4; k++) {
        snprintf(p, sizeof p, "%s.%s", prefix, part[k]);
        add_dense(L, p, D, D, INIT_XAVIER, (float)D, (float)D, ix[k][0], ix[k][1]);
    }
}

/* The encoder MLP (glu: the fused GeGLU projection), or the MAP head's (never GLU). */
static void add_mlp(layout *L, const char *prefix, int glu, mlp_ix *m)
{
    char p[40];
    uint32_t D = L->w->width, F = L->w->mlp_dim;
    snprintf(p, sizeof p, "%s.fc1", prefix);
    /* GeGLU: [Wg | Wl] (D, 2F), each half xavier over (D, F) as two Flax Dense layers. */
    add_dense(L, p, D, glu ? 2 * F : F, INIT_XAVIER, (float)D, (float)F, &m->w1, &m->b1);
    snprintf(p, sizeof p, "%s.fc2", prefix);
    add_dense(L, p, F, D, INIT_XAVIER, (float)F, (float)D, &m->w2, &m->b2);
}

static int build_layout(vit *w, char *err, size_t errlen)
{
    layout *L = calloc(1, sizeof *L);
    if (!L) {
        snprintf(err, errlen, FV_NAME ": out of memory");
        return TP_ENOMEM;
    }
    L->w = w;
    uint32_t D = w->width, T = w->tokens, PP = w->patch_pixels;
    add_dense(L, "patch", PP, D, INIT_LECUN_TRUNC, (float)PP, (float)D, &w->patch_w, &w->patch_b);
    w->pos = w->learned_pos ? add_tensor(L, "pos_embed", "", TP_PARAM_ROLE_EMBEDDING,
                                         INIT_NORMAL_POSEMB, T, D, 0, 0, 0)
                            : FV_NONE;
    char p[40];
    for (uint32_t l = 0; l < w->depth; l++) {
        block_ix *b = &w->blocks[l];
        snprintf(p, sizeof p, "block%u.ln1", l);
        add_layernorm(L, p, &b->ln1s, &b->ln1b);
        snprintf(p, sizeof p, "block%u.attn", l);
        add_attention(L, p, &b->attn);
        snprintf(p, sizeof p, "block%u.ln2", l);
        add_layernorm(L, p, &b->ln2s, &b->ln2b);
        snprintf(p, sizeof p, "block%u.mlp", l);
        add_mlp(L, p, w->glu, &b->mlp);
    }
    w->enc_s = w->enc_b = FV_NONE;
    if (!w->post_ln)
        add_layernorm(L, "encoder_norm", &w->enc_s, &w->enc_b);
    w->probe = w->map_ln_s = w->map_ln_b = FV_NONE;
    if (w->map) {
        /* The probe is a learned query token: role "other" (not a matrix to precondition). */
        w->probe = add_tensor(L, "map.probe", "", TP_PARAM_ROLE_OTHER, INIT_XAVIER, 1, 1, D, 1.0f,
                              (float)D);
        add_attention(L, "map.attn", &w->map_attn);
        add_layernorm(L, "map.ln", &w->map_ln_s, &w->map_ln_b);
        add_mlp(L, "map.mlp", 0, &w->map_mlp);
    }
    uint32_t head_in = D;
    w->pre_w = w->pre_b = FV_NONE;
    if (w->rep_size) {
        add_dense(L, "pre_logits", D, w->rep_size, INIT_LECUN_TRUNC, (float)D, (float)w->rep_size,
                  &w->pre_w, &w->pre_b);
        head_in = w->rep_size;
    }
    add_dense(L, "head", head_in, FV_CLASSES, INIT_ZERO, 0, 0, &w->head_w, &w->head_b);

    w->base.num_tensors = L->n;
    w->base.tensors = w->tensors;
    int rc = tp_params_layout(w->tensors, L->specs, L->n, &w->base.num_params, err, errlen);
    free(L);
    return rc;
}

/* The fixed 2-D sin-cos position embedding of AlgoPerf's ViT (posemb_sincos_2d, MoCo v3):
 * token t = (r, c) on the grid, omega_k = 10000^(-k / (D/4 - 1)), k < D/4, and the row is
 * [sin(c omega), cos(c omega), sin(r omega), cos(r omega)]. */
static void sincos2d(float *pe, uint32_t grid, uint32_t D)
{
    uint32_t q = D / 4;
    for (uint32_t r = 0; r < grid; r++)
        for (uint32_t c = 0; c < grid; c++) {
            float *row = pe + (uint64_t)(r * grid + c) * D;
            for (uint32_t k = 0; k < q; k++) {
                double omega = 1.0 / pow(10000.0, (double)k / (double)(q - 1));
                row[k] = (float)sin(c * omega);
                row[q + k] = (float)cos(c * omega);
                row[2 * q + k] = (float)sin(r * omega);
                row[3 * q + k] = (float)cos(r * omega);
            }
        }
}

/* ---------------------------------------------------------------------------------------- */
/* Model */

/* One forward pass's context. */
typedef struct fwd {
    vit *w;
    tp_graph *g;
    const float *params;
    float *grad;    /* NULL: no gradient */
    uint32_t flags; /* TP_TENSOR_GRAD_OVERWRITE on the first chunk */
    float dropout;
    uint64_t seed;
    uint32_t site; /* dropout sites so far, each with its own mask */
} fwd;

/* A view of parameter tensor i. */
static tp_tensor *param(fwd *f, uint32_t i)
{
    const tp_tensor_info *t = &f->w->tensors[i];
    return tp_tensor_view(f->g, (float *)f->params + t->offset,
                          f->grad ? f->grad + t->offset : NULL, t->ndim, t->shape, f->flags);
}

static tp_tensor *dropout(fwd *f, tp_tensor *x)
{
    uint32_t site = f->site++;
    if (f->dropout <= 0.0f)
        return x;
    return tp_dropout(f->g, x, f->dropout, tp_mix64(f->seed ^ tp_mix64(site + 1)));
}

static tp_tensor *layernorm(fwd *f, tp_tensor *x, uint32_t s, uint32_t b)
{
    return tp_layernorm(f->g, x, param(f, s), param(f, b), FV_LN_EPS);
}

/* Multi-head attention of queries from xq (B or 1, Tq, D) over xkv (B, Tk, D) -> (B, Tq, D). */
static tp_tensor *attention(fwd *f, tp_tensor *xq, tp_tensor *xkv, const attn_ix *a)
{
    tp_graph *g = f->g;
    tp_tensor *q = tp_linear(g, xq, param(f, a->wq), param(f, a->bq), TP_ACT_NONE);
    tp_tensor *k = tp_linear(g, xkv, param(f, a->wk), param(f, a->bk), TP_ACT_NONE);
    tp_tensor *v = tp_linear(g, xkv, param(f, a->wv), param(f, a->bv), TP_ACT_NONE);
    tp_tensor *o = tp_attention(g, q, k, v, f->w->heads, 1.0f, 0); /* (B, Tq, D) */
    return tp_linear(g, o, param(f, a->wo), param(f, a->bo), TP_ACT_NONE);
}

/* x (..., D) -> (..., D) through the MLP; inner dropout when use_dropout. */
static tp_tensor *mlp(fwd *f, tp_tensor *x, const mlp_ix *m, int glu, int use_dropout)
{
    tp_graph *g = f->g;
    tp_tensor *h;
    if (glu)
        h = tp_glu(g, tp_linear(g, x, param(f, m->w1), param(f, m->b1), TP_ACT_NONE),
                   TP_ACT_GELU); /* (..., 2F) -> (..., F) */
    else
        h = tp_linear(g, x, param(f, m->w1), param(f, m->b1), TP_ACT_GELU); /* (..., F) */
    if (use_dropout)
        h = dropout(f, h);
    return tp_linear(g, h, param(f, m->w2), param(f, m->b2), TP_ACT_NONE);
}

/* patches (n, T, P * P) -> logits (n, 10). */
static tp_tensor *vit_forward(fwd *f, tp_tensor *patches, uint32_t n)
{
    vit *w = f->w;
    tp_graph *g = f->g;
    uint32_t D = w->width, T = w->tokens;
    tp_tensor *x = tp_linear(g, patches, param(f, w->patch_w), param(f, w->patch_b),
                             TP_ACT_NONE); /* (n, T, D) */
    tp_tensor *pos = w->learned_pos ? param(f, w->pos)
                                    : tp_tensor_view(g, w->posemb_fixed, NULL, 2,
                                                     (uint32_t[]){T, D}, 0); /* (T, D) */
    x = dropout(f, tp_add(g, x, pos));
    for (uint32_t l = 0; l < w->depth; l++) {
        const block_ix *b = &w->blocks[l];
        if (w->post_ln) {
            x = tp_add(g, x, dropout(f, attention(f, x, x, &b->attn)));
            x = layernorm(f, x, b->ln1s, b->ln1b);
            x = tp_add(g, x, dropout(f, mlp(f, x, &b->mlp, w->glu, 1)));
            x = layernorm(f, x, b->ln2s, b->ln2b);
        } else {
            tp_tensor *y = layernorm(f, x, b->ln1s, b->ln1b);
            x = tp_add(g, x, dropout(f, attention(f, y, y, &b->attn)));
            y = layernorm(f, x, b->ln2s, b->ln2b);
            x = tp_add(g, x, dropout(f, mlp(f, y, &b->mlp, w->glu, 1)));
        }
    }
    if (!w->post_ln)
        x = layernorm(f, x, w->enc_s, w->enc_b);
    tp_tensor *z; /* (n, D) */
    if (w->map) {
        tp_tensor *a = attention(f, param(f, w->probe), x, &w->map_attn); /* (n, 1, D) */
        tp_tensor *m = mlp(f, layernorm(f, a, w->map_ln_s, w->map_ln_b), &w->map_mlp, 0, 0);
        z = tp_reshape(g, tp_add(g, a, m), 2, (uint32_t[]){n, D});
    } else {
        z = tp_token_mean(g, x);
    }
    if (w->rep_size)
        z = tp_linear(g, z, param(f, w->pre_w), param(f, w->pre_b), TP_ACT_TANH);  /* (n, R) */
    return tp_linear(g, z, param(f, w->head_w), param(f, w->head_b), TP_ACT_NONE); /* (n, 10) */
}

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
static int run_chunk(vit *w, const chunk_args *a, tp_tensor **per, tp_tensor **logits, char *err,
                     size_t errlen)
{
    tp_graph *g = w->g;
    tp_graph_reset(g);
    tp_tensor *x = tp_tensor_new(g, 3, (uint32_t[]){a->n, w->tokens, w->patch_pixels}, 0);
    int32_t *labels = tp_graph_alloc(g, a->n * sizeof *labels); /* (n) */
    if (x && labels) {
        gather(w, x->data, w->data.img[a->split], a->idx, a->first, a->n);
        const uint8_t *lab = w->data.lab[a->split];
        for (uint32_t i = 0; i < a->n; i++)
            labels[i] = lab[a->idx ? a->idx[i] : a->first + i];
    }
    fwd f = {
        .w = w,
        .g = g,
        .params = a->params,
        .grad = a->grad,
        .flags = a->grad_overwrite ? TP_TENSOR_GRAD_OVERWRITE : 0,
        .dropout = a->dropout,
        .seed = a->dropout_seed,
    };
    tp_tensor *h = vit_forward(&f, x, a->n);
    tp_tensor *losses = tp_softmax_xent(g, h, labels, a->smoothing); /* (n) */
    tp_tensor *loss = tp_sum(g, losses, a->weights, a->scale);       /* (1) */
    int rc = a->grad ? tp_graph_backward(g, loss, err, errlen) : tp_graph_status(g, err, errlen);
    if (rc)
        return rc;
    *per = losses;
    *logits = h;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The vtable */

/* Normal numbers truncated to [-2, 2] (redrawn outside), times std. */
static void fill_truncated_normal(float *p, uint64_t n, double std, tp_rng *r)
{
    for (uint64_t i = 0; i < n; i++) {
        double z;
        do
            z = tp_rng_normal(r);
        while (fabs(z) > 2.0);
        p[i] = (float)(std * z);
    }
}

static int fv_init_params(tp_workload *base, uint64_t seed, float *params, char *err, size_t errlen)
{
    vit *w = (vit *)base;
    if (!params) {
        snprintf(err, errlen, FV_NAME ".init_params: params is NULL");
        return TP_EINVAL;
    }
    for (uint32_t i = 0; i < w->base.num_tensors; i++) {
        const tp_tensor_info *t = &w->tensors[i];
        float *p = params + t->offset;
        tp_rng r;
        tp_rng_seed2(&r, seed, i);
        switch (w->init[i]) {
        case INIT_ZERO:
            memset(p, 0, t->numel * sizeof(float));
            break;
        case INIT_ONE:
            for (uint64_t k = 0; k < t->numel; k++)
                p[k] = 1.0f;
            break;
        case INIT_XAVIER:
            tp_fill_uniform(p, t->numel, sqrtf(6.0f / (w->fan_in[i] + w->fan_out[i])), &r);
            break;
        case INIT_LECUN_TRUNC:
            /* Flax's variance_scaling(1, fan_in, truncated_normal): the std of a standard
             * normal truncated at 2 is 0.87962566, corrected for. */
            fill_truncated_normal(p, t->numel, sqrt(1.0 / w->fan_in[i]) / 0.87962566103423978, &r);
            break;
        case INIT_NORMAL_POSEMB:
            tp_fill_normal(p, t->numel, 0.02f, &r);
            break;
        }
    }
    return 0;
}

static int fv_loss_and_grad(tp_workload *base, const float *params, const uint32_t *idx,
                            const float *weights, uint32_t n, const tp_loss_opts *opts,
                            uint64_t dropout_seed, float *grad, double *loss, float *per_example,
                            char *err, size_t errlen)
{
    vit *w = (vit *)base;
    if (!params || !idx || n == 0) {
        snprintf(err, errlen, FV_NAME ".loss_and_grad: %s",
                 !params ? "params is NULL"
                 : !idx  ? "idx is NULL"
                         : "the batch is empty");
        return TP_EINVAL;
    }
    uint64_t size = w->base.split_size[TP_SPLIT_TRAIN];
    for (uint32_t i = 0; i < n; i++)
        if (idx[i] >= size) {
            snprintf(err, errlen,
                     FV_NAME ".loss_and_grad: index %u at batch position %u is out of range: "
                             "the training split has %llu examples",
                     idx[i], i, (unsigned long long)size);
            return TP_ERANGE;
        }
    float smoothing = 0.0f, rate = 0.0f;
    int eval_mode = 0;
    if (TP_FIELD_PRESENT(opts, tp_loss_opts, label_smoothing))
        smoothing = opts->label_smoothing;
    if (TP_FIELD_PRESENT(opts, tp_loss_opts, dropout_rate))
        rate = opts->dropout_rate;
    if (TP_FIELD_PRESENT(opts, tp_loss_opts, flags))
        eval_mode = (opts->flags & TP_LOSS_EVAL_MODE) != 0;
    if (!(smoothing >= 0.0f && smoothing < 1.0f) || !(rate >= 0.0f && rate < 1.0f)) {
        snprintf(err, errlen,
                 FV_NAME ".loss_and_grad: label_smoothing %g and dropout_rate %g must both be "
                         "in [0, 1)",
                 (double)smoothing, (double)rate);
        return TP_EINVAL;
    }
    if (eval_mode)
        rate = 0.0f;

    double total = 0.0;
    for (uint32_t start = 0; start < n; start += FV_CHUNK) {
        uint32_t m = n - start < FV_CHUNK ? n - start : FV_CHUNK;
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
            .dropout = rate,
            .dropout_seed = tp_mix64(dropout_seed + start / FV_CHUNK),
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

static int fv_evaluate(tp_workload *base, const float *params, tp_split split, tp_eval_result *out,
                       char *err, size_t errlen)
{
    vit *w = (vit *)base;
    if (!params || !out || (unsigned)split > TP_SPLIT_TEST) {
        snprintf(err, errlen, FV_NAME ".evaluate: %s",
                 !params ? "params is NULL"
                 : !out  ? "out is NULL"
                         : "no such split");
        return TP_EINVAL;
    }
    uint64_t size = w->base.split_size[split];
    uint64_t correct = 0;
    double total = 0.0;
    for (uint64_t start = 0; start < size; start += FV_EVAL_CHUNK) {
        uint32_t m = (uint32_t)(size - start < FV_EVAL_CHUNK ? size - start : FV_EVAL_CHUNK);
        chunk_args a = {.params = params, .split = split, .first = start, .n = m, .scale = 1.0f};
        tp_tensor *per, *logits;
        int rc = run_chunk(w, &a, &per, &logits, err, errlen);
        if (rc)
            return rc;
        const uint8_t *lab = w->data.lab[split] + start;
        for (uint32_t i = 0; i < m; i++) {
            const float *z = logits->data + (uint64_t)i * FV_CLASSES; /* (10) */
            int best = 0;
            for (int k = 1; k < FV_CLASSES; k++)
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

static void fv_free(tp_workload *base)
{
    vit *w = (vit *)base;
    if (!w)
        return;
    tp_graph_free(w->g);
    tp_fmnist_data_free(&w->data);
    free(w->posemb_fixed);
    free(w);
}

static const tp_workload_vtable fv_vtable = {
    .init_params = fv_init_params,
    .loss_and_grad = fv_loss_and_grad,
    .evaluate = fv_evaluate,
    .free = fv_free,
};

/* ---------------------------------------------------------------------------------------- */
/* Creation */

/* The rules between options that the table cannot say; 0 or TP_ECONFIG. */
static int check_geometry(const tp_wl_params *p, int64_t patch, int64_t width, int64_t heads,
                          int sincos, char *err, size_t errlen)
{
    char at[512];
    if (FV_SIDE % patch) {
        snprintf(err, errlen,
                 "%s: a patch size of %lld does not tile the 28 x 28 images; use a divisor of "
                 "28 (4: 49 tokens of 16 pixels, 7: 16 tokens of 49, 14: 4 tokens of 196)",
                 tp_wl_option_where(p, "model.patch_size", at, sizeof at), (long long)patch);
        return TP_ECONFIG;
    }
    if (width % heads) {
        snprintf(err, errlen,
                 "%s: %lld heads do not divide model.width %lld; every head needs the same "
                 "share of the width",
                 tp_wl_option_where(p, "model.heads", at, sizeof at), (long long)heads,
                 (long long)width);
        return TP_ECONFIG;
    }
    if (sincos && (width % 4 || width < 8)) {
        snprintf(err, errlen,
                 "%s: the sincos2d position embedding needs a width that is a multiple of 4 "
                 "and at least 8, not %lld",
                 tp_wl_option_where(p, "model.width", at, sizeof at), (long long)width);
        return TP_ECONFIG;
    }
    return 0;
}

static int fv_create(const tp_wl_params *p, tp_workload **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *dir = FV_DEFAULT_DIR;
    int64_t split_seed = 0, limit[3] = {0, 0, 0};
    int64_t patch = 7, width = 64, depth = 4, heads = 4, mlp_dim = 0, rep_size = 0;
    int mlp_kind = 0, norm = 0, pool = 0, posemb = 0;
    const double big = 9007199254740992.0; /* 2^53 */
    const tp_opt_spec specs[] = {
        {"data.dir", TP_OPT_STRING, 0, 0, NULL, &dir},
        {"data.split_seed", TP_OPT_INT, 0, big, NULL, &split_seed},
        {"data.train_limit", TP_OPT_INT, 0, FV_TRAIN_ALL, NULL, &limit[0]},
        {"data.validation_limit", TP_OPT_INT, 0, FV_TRAIN_ALL, NULL, &limit[1]},
        {"data.test_limit", TP_OPT_INT, 0, FV_TEST, NULL, &limit[2]},
        {"model.patch_size", TP_OPT_INT, 1, FV_SIDE, NULL, &patch},
        {"model.width", TP_OPT_INT, 1, FV_MAX_WIDTH, NULL, &width},
        {"model.depth", TP_OPT_INT, 0, FV_MAX_DEPTH, NULL, &depth},
        {"model.heads", TP_OPT_INT, 1, FV_MAX_WIDTH, NULL, &heads},
        {"model.mlp_dim", TP_OPT_INT, 0, 4 * FV_MAX_WIDTH, NULL, &mlp_dim},
        {"model.rep_size", TP_OPT_INT, 0, FV_MAX_WIDTH, NULL, &rep_size},
        {"model.mlp", TP_OPT_CHOICE, 0, 0, mlp_names, &mlp_kind},
        {"model.norm", TP_OPT_CHOICE, 0, 0, norm_names, &norm},
        {"model.pool", TP_OPT_CHOICE, 0, 0, pool_names, &pool},
        {"model.posemb", TP_OPT_CHOICE, 0, 0, posemb_names, &posemb},
    };
    int rc = tp_wl_options_parse(p, FV_NAME, specs, sizeof specs / sizeof specs[0], err, errlen);
    if (rc || (rc = check_geometry(p, patch, width, heads, posemb == 1, err, errlen)))
        return rc;

    vit *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, FV_NAME ": out of memory");
        return TP_ENOMEM;
    }
    w->base.vt = &fv_vtable;
    w->base.name = FV_NAME;
    w->base.metric = "accuracy";
    w->base.maximize = 1;
    w->patch = (uint32_t)patch;
    w->grid = FV_SIDE / w->patch;
    w->tokens = w->grid * w->grid;
    w->patch_pixels = w->patch * w->patch;
    w->width = (uint32_t)width;
    w->depth = (uint32_t)depth;
    w->heads = (uint32_t)heads;
    w->mlp_dim = mlp_dim ? (uint32_t)mlp_dim : 4 * w->width;
    w->rep_size = (uint32_t)rep_size;
    w->glu = mlp_kind == 1;
    w->post_ln = norm == 1;
    w->map = pool == 1;
    w->learned_pos = posemb == 0;
    for (uint32_t r = 0; r < FV_SIDE; r++)
        for (uint32_t c = 0; c < FV_SIDE; c++) {
            uint32_t t = (r / w->patch) * w->grid + c / w->patch;
            uint32_t k = (r % w->patch) * w->patch + c % w->patch;
            w->pix_dst[r * FV_SIDE + c] = t * w->patch_pixels + k;
        }
    if (!w->learned_pos) {
        w->posemb_fixed = malloc((size_t)w->tokens * w->width * sizeof(float));
        if (!w->posemb_fixed) {
            fv_free(&w->base);
            snprintf(err, errlen, FV_NAME ": out of memory");
            return TP_ENOMEM;
        }
        sincos2d(w->posemb_fixed, w->grid, w->width);
    }
    if ((rc = build_layout(w, err, errlen)) ||
        (rc = load_data(w, p, dir, (uint64_t)split_seed, limit, err, errlen)) ||
        (rc = tp_graph_init(&w->g, (size_t)64 << 20, err, errlen))) {
        fv_free(&w->base);
        return rc;
    }
    *out = &w->base;
    return 0;
}

const tp_workload_desc tp_fmnist_vit_desc = {
    .name = FV_NAME,
    .description = "ViT (7x7 patches, width 64, depth 4, 4 heads) on Fashion-MNIST "
                   "(AlgoPerf's imagenet_vit analog)",
    .create = fv_create,
    .metric = "accuracy",
    .maximize = 1,
};
