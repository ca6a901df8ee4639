/*
 * fmnist_data.h - the Fashion-MNIST dataset as fmnist_mlp, fmnist_resnet and fmnist_vit load
 * it: the four gzip'd IDX files of Debian's dataset-fashion-mnist (data.dir), checked; the
 * 60,000 training images split by a permutation seeded with data.split_seed into train (the
 * first 50,000) and validation (the other 10,000); the 10,000 t10k images as test;
 * data.{train,validation,test}_limit keeping the first N of a split. Images stay bytes (55 MB
 * at most), in split order, backed by 2 MB pages where the kernel offers them (batches read
 * random rows: a cache miss each, not also a TLB miss).
 *
 * Not here: the transform to floats and the models (each workload's own).
 */
#ifndef TP_WORKLOADS_FMNIST_DATA_H
#define TP_WORKLOADS_FMNIST_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "core/nn/workload.h"

#define TP_FMNIST_SIDE        28
#define TP_FMNIST_PIXELS      784
#define TP_FMNIST_CLASSES     10
#define TP_FMNIST_TRAIN_ALL   60000 /* train-images-idx3-ubyte: train + validation */
#define TP_FMNIST_VALIDATION  10000
#define TP_FMNIST_TEST        10000
#define TP_FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define TP_FMNIST_PACKAGE     "dataset-fashion-mnist"
#define TP_FMNIST_PREFETCH    4 /* rows a gather keeps on their way from memory */

typedef struct tp_fmnist_data {
    uint8_t *images;       /* (train + validation + test, 784), split by split */
    uint8_t *labels;       /* (train + validation + test) */
    const uint8_t *img[3]; /* (size[s], 784) per tp_split */
    const uint8_t *lab[3]; /* (size[s]) */
    uint64_t size[3];      /* examples per tp_split */
} tp_fmnist_data;

/* Load into *d (zeroed first). limit[s] == 0 keeps the whole split. Errors name the option
 * (p's file and line) and, for missing files, the package to install; `workload` names the
 * caller in out-of-memory messages. 0, TP_ENOENT, TP_EDATA, TP_ECONFIG or TP_ENOMEM, with *d
 * zeroed on error. */
int tp_fmnist_data_load(tp_fmnist_data *d, const tp_wl_params *p, const char *workload,
                        const char *dir, uint64_t split_seed, const int64_t limit[3], char *err,
                        size_t errlen);
/* Zeroes d; a zeroed one is a no-op. */
void tp_fmnist_data_free(tp_fmnist_data *d);

/* Start loading image row `row` (784 bytes) into the cache. */
static inline void tp_fmnist_prefetch_row(const uint8_t *row)
{
    for (int k = 0; k < TP_FMNIST_PIXELS; k += 64)
        __builtin_prefetch(row + k);
}

#endif /* TP_WORKLOADS_FMNIST_DATA_H */
