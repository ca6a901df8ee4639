/*
 * fmnist_data.c - the Fashion-MNIST loader shared by the fmnist_* workloads (fmnist_data.h).
 */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include "workloads/common/fmnist_data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "core/nn/rng.h"
#include "workloads/common/idx.h"
#include "workloads/common/options.h"

static int load_file(const tp_wl_params *p, const char *dir, const char *file, uint32_t ndim,
                     tp_idx *out, char *err, size_t errlen)
{
    char path[4096], at[512], msg[4400];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int rc = tp_idx_read_u8(path, ndim, out, msg, sizeof msg);
    if (rc == TP_ENOENT)
        snprintf(err, errlen,
                 "%s: %s; the Fashion-MNIST files come with the Debian package " TP_FMNIST_PACKAGE
                 " (apt-get install " TP_FMNIST_PACKAGE ")",
                 tp_wl_option_where(p, "data.dir", at, sizeof at), msg);
    else if (rc)
        snprintf(err, errlen, "%s: %s", tp_wl_option_where(p, "data.dir", at, sizeof at), msg);
    return rc;
}

/* Check an images / labels pair: n images of 28 x 28, n labels < 10. */
static int check_pair(const char *dir, const char *what, const tp_idx *img, const tp_idx *lab,
                      uint32_t n, char *err, size_t errlen)
{
    if (img->dims[0] != n || img->dims[1] != TP_FMNIST_SIDE || img->dims[2] != TP_FMNIST_SIDE ||
        lab->dims[0] != n) {
        snprintf(err, errlen,
                 "%s: the %s files hold %u images of %u x %u and %u labels; Fashion-MNIST has "
                 "%u of 28 x 28 (reinstall " TP_FMNIST_PACKAGE "?)",
                 dir, what, img->dims[0], img->dims[1], img->dims[2], lab->dims[0], n);
        return TP_EDATA;
    }
    for (uint32_t i = 0; i < n; i++)
        if (lab->data[i] >= TP_FMNIST_CLASSES) {
            snprintf(err, errlen, "%s: %s label %u is %u, not a class in [0, 10)", dir, what, i,
                     lab->data[i]);
            return TP_EDATA;
        }
    return 0;
}

/* The image array backed by 2 MB pages where the kernel offers them (batches read random
 * rows: a cache miss each, not also a TLB miss). Plain memory otherwise. */
static void *alloc_huge(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    size_t size = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, size);
#ifdef MADV_HUGEPAGE
    if (p)
        madvise(p, size, MADV_HUGEPAGE); /* advice only: failure changes nothing */
#endif
    return p;
}

/* Decode the four files, split, apply the limits. */
int tp_fmnist_data_load(tp_fmnist_data *d, const tp_wl_params *p, const char *workload,
                        const char *dir, uint64_t split_seed, const int64_t limit[3], char *err,
                        size_t errlen)
{
    memset(d, 0, sizeof *d);
    char at[512];
    struct stat st;
    int e = stat(dir, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (e) {
        snprintf(
            err, errlen,
            "%s: the Fashion-MNIST directory %s: %s; install the Debian package " TP_FMNIST_PACKAGE
            " (apt-get install " TP_FMNIST_PACKAGE
            "), which puts the files in " TP_FMNIST_DEFAULT_DIR
            ", or point data.dir at a directory holding train-images-idx3-ubyte.gz, "
            "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
            "t10k-labels-idx1-ubyte.gz",
            tp_wl_option_where(p, "data.dir", at, sizeof at), dir,
            e == ENOENT ? "does not exist" : strerror(e));
        return TP_ENOENT;
    }
    tp_idx ti = {0}, tl = {0}, si = {0}, sl = {0};
    int rc;
    if ((rc = load_file(p, dir, "train-images-idx3-ubyte.gz", 3, &ti, err, errlen)) ||
        (rc = load_file(p, dir, "train-labels-idx1-ubyte.gz", 1, &tl, err, errlen)) ||
        (rc = load_file(p, dir, "t10k-images-idx3-ubyte.gz", 3, &si, err, errlen)) ||
        (rc = load_file(p, dir, "t10k-labels-idx1-ubyte.gz", 1, &sl, err, errlen)) ||
        (rc = check_pair(dir, "train", &ti, &tl, TP_FMNIST_TRAIN_ALL, err, errlen)) ||
        (rc = check_pair(dir, "t10k", &si, &sl, TP_FMNIST_TEST, err, errlen)))
        goto done;

    uint64_t full[3] = {TP_FMNIST_TRAIN_ALL - TP_FMNIST_VALIDATION, TP_FMNIST_VALIDATION,
                        TP_FMNIST_TEST};
    uint64_t size[3];
    for (int s = 0; s < 3; s++)
        size[s] = limit[s] ? (uint64_t)limit[s] : full[s];
    static const char *const limit_keys[3] = {"data.train_limit", "data.validation_limit",
                                              "data.test_limit"};
    for (int s = 0; s < 3; s++)
        if (size[s] > full[s]) {
            snprintf(err, errlen, "%s: %llu is more than the %llu examples of the split",
                     tp_wl_option_where(p, limit_keys[s], at, sizeof at),
                     (unsigned long long)size[s], (unsigned long long)full[s]);
            rc = TP_ECONFIG;
            goto done;
        }

    uint64_t total = size[0] + size[1] + size[2];
    d->images = alloc_huge(total * TP_FMNIST_PIXELS);
    d->labels = malloc(total);
    uint32_t *perm = malloc(TP_FMNIST_TRAIN_ALL * sizeof *perm);
    if (!d->images || !d->labels || !perm) {
        free(perm);
        snprintf(err, errlen, "%s: out of memory for the dataset (%llu bytes)", workload,
                 (unsigned long long)(total * (TP_FMNIST_PIXELS + 1)));
        rc = TP_ENOMEM;
        goto done;
    }
    for (uint32_t i = 0; i < TP_FMNIST_TRAIN_ALL; i++)
        perm[i] = i;
    tp_rng r;
    tp_rng_seed(&r, split_seed);
    tp_rng_shuffle_u32(&r, perm, TP_FMNIST_TRAIN_ALL);

    /* Rows in split order: train = perm[0, 50000), validation = perm[50000, 60000). */
    uint64_t row = 0;
    const uint32_t *src_rows[2] = {perm, perm + full[0]};
    for (int s = 0; s < 3; s++) {
        d->img[s] = d->images + row * TP_FMNIST_PIXELS;
        d->lab[s] = d->labels + row;
        for (uint64_t i = 0; i < size[s]; i++, row++) {
            uint64_t src = s < 2 ? src_rows[s][i] : i;
            const tp_idx *img = s < 2 ? &ti : &si, *lab = s < 2 ? &tl : &sl;
            memcpy(d->images + row * TP_FMNIST_PIXELS, img->data + src * TP_FMNIST_PIXELS,
                   TP_FMNIST_PIXELS);
            d->labels[row] = lab->data[src];
        }
        d->size[s] = size[s];
    }
    free(perm);
    rc = 0;
done:
    if (rc)
        tp_fmnist_data_free(d);
    tp_idx_free(&ti);
    tp_idx_free(&tl);
    tp_idx_free(&si);
    tp_idx_free(&sl);
    return rc;
}

void tp_fmnist_data_free(tp_fmnist_data *d)
{
    if (!d)
        return;
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}
