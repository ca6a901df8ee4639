/*
 * tp_wltest.c - see tp_wltest.h.
 */
#include "tp_wltest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/nn/nn.h"

int tp_wltest_have_fmnist(const char *dir)
{
    char path[1024];
    struct stat st;
    if ((size_t)snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir) >= sizeof path)
        return 0;
    return stat(path, &st) == 0;
}

int tp_wltest_create(const char *name, const char *cfg, const tp_wl_option *opts, size_t n,
                     tp_workload **w, char *err, size_t errlen)
{
    const tp_workload_desc *d = tp_workload_find(name);
    if (!d)
        fail_msg("no workload \"%s\" is registered (workloads/registry.c)", name);
    tp_wl_params p = {cfg, opts, n};
    return d->create(&p, w, err, errlen);
}

tp_workload *tp_wltest_create_ok(const char *name, const char *cfg, const tp_wl_option *opts,
                                 size_t n)
{
    char err[2048];
    tp_workload *w = NULL;
    int rc = tp_wltest_create(name, cfg, opts, n, &w, err, sizeof err);
    if (rc)
        fail_msg("create: %s (%s)", err, tp_err_name(rc));
    return w;
}

int tp_wltest_create_fmnist_small(const char *name, const char *cfg, const char *dir,
                                  tp_workload **w)
{
    *w = NULL;
    if (!tp_wltest_have_fmnist(dir))
        return 0;
    tp_wl_option o[] = {
        {"data.train_limit", NULL, 2000, 4},
        {"data.validation_limit", NULL, 1000, 5},
        {"data.test_limit", NULL, 500, 6},
    };
    char err[1024];
    int rc = tp_wltest_create(name, cfg, o, 3, w, err, sizeof err);
    if (rc)
        print_message("setup: %s\n", err);
    return rc;
}

void tp_wltest_free(tp_workload **w)
{
    if (*w)
        (*w)->vt->free(*w);
    *w = NULL;
}

const tp_tensor_info *tp_wltest_tensor(const tp_workload *w, const char *name)
{
    for (uint32_t i = 0; i < w->num_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return &w->tensors[i];
    return NULL;
}

double tp_wltest_loss_at(tp_workload *w, const float *params, const uint32_t *idx, const float *wts,
                         uint32_t n, const tp_loss_opts *o, uint64_t seed, float *per)
{
    char err[512];
    double loss;
    int rc =
        w->vt->loss_and_grad(w, params, idx, wts, n, o, seed, NULL, &loss, per, err, sizeof err);
    if (rc)
        fail_msg("loss_and_grad: %s", err);
    double s = 0.0;
    for (uint32_t i = 0; i < n; i++)
        s += (wts ? wts[i] : 1.0) * per[i];
    return s / n;
}

void tp_wltest_check_chunks(tp_workload *w, const float *params, uint32_t n, uint32_t h,
                            uint64_t train, double mean_atol, double mean_rtol, tp_eval_result *ev)
{
    /* The halves are weighted 1/2 each below. */
    assert_true(h > 0 && n == 2 * h && train > 0 && train <= UINT32_MAX);
    char err[512];
    uint64_t np = w->num_params;
    float *g = tp_params_alloc(np), *ga = tp_params_alloc(np), *gb = tp_params_alloc(np);
    uint32_t *idx = malloc(n * sizeof *idx);
    float *wts = malloc(n * sizeof *wts), *per = malloc(n * sizeof *per),
          *per_a = malloc(h * sizeof *per_a);
    assert_true(g && ga && gb && idx && wts && per && per_a);
    for (uint32_t i = 0; i < n; i++) {
        idx[i] = (uint32_t)((uint64_t)i * 7919 % train);
        wts[i] = (float)(i % 3);
    }
    double l, la, lb;
    assert_int_equal(
        w->vt->loss_and_grad(w, params, idx, wts, n, NULL, 0, g, &l, per, err, sizeof err), 0);
    assert_int_equal(
        w->vt->loss_and_grad(w, params, idx, wts, h, NULL, 0, ga, &la, per_a, err, sizeof err), 0);
    assert_int_equal(w->vt->loss_and_grad(w, params, idx + h, wts + h, h, NULL, 0, gb, &lb, NULL,
                                          err, sizeof err),
                     0);
    /* The loss is the mean of w_i l_i; per-example losses are unweighted. */
    double s = 0.0;
    for (uint32_t i = 0; i < n; i++)
        s += (double)wts[i] * per[i];
    assert_true(fabs(l - s / n) < mean_atol + mean_rtol * l);
    assert_true(fabs(l - 0.5 * (la + lb)) < 1e-6 * fabs(l));
    for (uint32_t i = 0; i < h; i++)
        assert_true(fabsf(per[i] - per_a[i]) <= 1e-5f * fabsf(per[i]));
    double max_diff = 0.0, max_g = 0.0;
    for (uint64_t i = 0; i < np; i++) {
        max_diff = fmax(max_diff, fabs(g[i] - 0.5 * ((double)ga[i] + gb[i])));
        max_g = fmax(max_g, fabs(g[i]));
    }
    print_message("chunked gradient vs two halves: max difference %.3g (max |g| %.3g)\n", max_diff,
                  max_g);
    assert_true(max_diff < 1e-5 * max_g);
    free(idx);
    free(wts);
    free(per);
    free(per_a);
    tp_params_free(g);
    tp_params_free(ga);
    tp_params_free(gb);

    /* evaluate on the training split agrees with loss_and_grad over all of it. */
    uint32_t *all = malloc(train * sizeof *all);
    float *per_all = malloc(train * sizeof *per_all);
    assert_true(all && per_all);
    for (uint64_t i = 0; i < train; i++)
        all[i] = (uint32_t)i;
    assert_int_equal(w->vt->loss_and_grad(w, params, all, NULL, (uint32_t)train, NULL, 0, NULL, &l,
                                          per_all, err, sizeof err),
                     0);
    tp_eval_result r;
    assert_int_equal(w->vt->evaluate(w, params, TP_SPLIT_TRAIN, &r, err, sizeof err), 0);
    assert_int_equal(r.examples, train);
    print_message("train split: evaluate %.6f, loss_and_grad %.6f over %llu examples\n", r.loss, l,
                  (unsigned long long)train);
    assert_true(fabs(r.loss - l) < 1e-5 * l);
    free(all);
    free(per_all);
    if (ev)
        *ev = r;
}
