/*
 * bench_step.c - times training steps of a workload exactly as a trainperf worker runs them
 * (data selection plugin + optimizer plugin through the loader's libffi calls and the host API
 * table, on fresh batches of the real data), and the single-thread cblas_sgemm rate on the
 * model's own GEMM shapes. Prints one JSON object. Driven by bench_fmnist_mlp.py; never run
 * by ctest.
 *
 *   bench_step [--steps N] [--warmup N] [--batch B] [--optimizer ID] [--hparams k=v,...]
 *              [--plugins DIR] [--workload-config FILE] [--sgemm]
 *   bench_step --blas-suggest    print the OPENBLAS_CORETYPE a trainperf host would give its
 *                                workers here (empty when OpenBLAS's own choice is right)
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/hostapi.h"
#include "core/nn/nn.h"
#include "core/plugin.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Median seconds of one sgemm C(m,n) = op(A) op(B) over reps calls. */
static double time_sgemm(int ta, int tb, int m, int n, int k, int reps)
{
    float *a = calloc((size_t)m * k, sizeof *a), *b = calloc((size_t)k * n, sizeof *b);
    float *c = calloc((size_t)m * n, sizeof *c);
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)k * n; i++)
        b[i] = (float)(i % 5) * 0.1f;
    double *t = malloc(sizeof *t * reps);
    for (int r = -5; r < reps; r++) {
        double t0 = tp_clock_wall_now();
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c, n);
        double t1 = tp_clock_wall_now();
        if (r >= 0)
            t[r] = t1 - t0;
    }
    double med = median(t, reps);
    free(a);
    free(b);
    free(c);
    free(t);
    return med;
}

int main(int argc, char **argv)
{
    int steps = 500, warmup = 100, sgemm = 0;
    uint32_t batch = 128;
    const char *opt = "adamw", *hp = "learning_rate=0.001,weight_decay=0.01";
    const char *plugins = TP_BENCH_PLUGIN_DIR;
    const char *cfgpath = TP_BENCH_SOURCE_DIR "/workloads/fmnist_mlp/fmnist_mlp.cfg";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
            warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--optimizer") && i + 1 < argc)
            opt = argv[++i];
        else if (!strcmp(argv[i], "--hparams") && i + 1 < argc)
            hp = argv[++i];
        else if (!strcmp(argv[i], "--plugins") && i + 1 < argc)
            plugins = argv[++i];
        else if (!strcmp(argv[i], "--workload-config") && i + 1 < argc)
            cfgpath = argv[++i];
        else if (!strcmp(argv[i], "--sgemm"))
            sgemm = 1;
        else if (!strcmp(argv[i], "--blas-suggest")) {
            const char *core = tp_blas_suggested_coretype();
            printf("%s\n", core ? core : "");
            return 0;
        } else {
            fprintf(stderr, "bench_step: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (steps < 1 || warmup < 0 || batch < 1)
        return 2;
    openblas_set_num_threads(1);

    char err[1024];
    tp_workload_config cfg;
    memset(&cfg, 0, sizeof cfg);
    tp_workload *w = NULL;
    tp_plugin_set *set = NULL;
    tp_session *s = NULL;
    tp_kv_list kv = {0};
    if (tp_config_load_workload(cfgpath, &cfg, err, sizeof err) < 0)
        goto fail;
    const tp_workload_desc *wd = tp_workload_find(cfg.name);
    tp_wl_params wp = {cfg.file, cfg.options, cfg.num_options};
    if (!wd || wd->create(&wp, &w, err, sizeof err) < 0)
        goto fail;
    tp_plugin_set_init(&set);
    if (tp_plugin_set_add_dir(set, plugins, NULL, NULL, err, sizeof err) < 0)
        goto fail;
    const tp_plugin *po = tp_plugin_set_find(set, opt, TP_PLUGIN_OPTIMIZER);
    const tp_plugin *ps = tp_plugin_set_find(set, "next_batch", TP_PLUGIN_DATA_SELECTION);
    if (!po || !ps) {
        snprintf(err, sizeof err, "plugins %s / next_batch not found in %s", opt, plugins);
        goto fail;
    }
    tp_session_config sc = {.workload = w,
                            .seed = 0,
                            .batch_size = batch,
                            .step_hint = cfg.step_hint,
                            .budget = cfg.budget};
    if (tp_session_create(&sc, &s, err, sizeof err) < 0)
        goto fail;
    if (tp_kv_parse(hp, &kv, err, sizeof err) < 0)
        goto fail;
    const char *names[64];
    double values[64];
    for (uint32_t i = 0; i < po->num_hparams && i < 64; i++) {
        const tp_kv *g = tp_kv_find(&kv, po->hparams[i].name);
        names[i] = po->hparams[i].name;
        values[i] = g ? g->value : po->hparams[i].default_value;
    }
    tp_ctx *co = tp_session_ctx_new(s, po->id, names, values, po->num_hparams);
    tp_ctx *cs = tp_session_ctx_new(s, ps->id, NULL, NULL, 0);
    const tp_host *host = tp_hostapi_table();
    tp_error e;
    TP_STRUCT_INIT(&e, tp_error);
    void *ostate = NULL, *sstate = NULL;
    if (tp_plugin_call_init(po, host, co, &ostate, &e) < 0 ||
        (tp_plugin_has(ps, TP_PLUGIN_FN_INIT) &&
         tp_plugin_call_init(ps, host, cs, &sstate, &e) < 0)) {
        snprintf(err, sizeof err, "plugin init: %s", e.message);
        goto fail;
    }
    uint32_t *idx = calloc(batch, sizeof *idx);
    float *wts = calloc(batch, sizeof *wts);
    double *t = malloc(sizeof *t * (size_t)steps);
    /* The bare gradient of the same batch, timed beside every step (alternating which goes
     * first, so cache warmth favours neither): the optimizer's own cost is step - gradient. */
    double *tg = malloc(sizeof *tg * (size_t)steps), *td = malloc(sizeof *td * (size_t)steps);
    float *scratch = malloc(sizeof *scratch * (size_t)w->num_params);
    if (!idx || !wts || !t || !tg || !td || !scratch) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    tp_train_state *ts = tp_session_train_state(s);
    for (int i = -warmup; i < steps; i++) {
        tp_batch b;
        TP_STRUCT_INIT(&b, tp_batch);
        b.capacity = batch;
        b.idx = idx;
        b.weights = wts;
        tp_update_args a;
        TP_STRUCT_INIT(&a, tp_update_args);
        a.step = ts->step;
        a.lr_factor = 1.0;
        a.batch = &b;
        double loss = 0, tgrad = 0, tstep = 0, t0 = tp_clock_wall_now();
        if (tp_plugin_call_select_batch(ps, sstate, host, cs, &b, &e) < 0) {
            snprintf(err, sizeof err, "select_batch: %s", e.message);
            goto fail;
        }
        double t1 = tp_clock_wall_now();
        for (int k = 0; k < 2; k++) {
            double u0 = tp_clock_wall_now();
            int rc;
            if ((k == 0) == (i % 2 == 0))
                rc = host->loss_and_grad(co, NULL, &b, NULL, scratch, &loss);
            else
                rc = tp_plugin_call_update(po, ostate, host, co, &a, &e);
            double u1 = tp_clock_wall_now();
            if (rc < 0) {
                snprintf(err, sizeof err, "step: %s", e.message);
                goto fail;
            }
            *((k == 0) == (i % 2 == 0) ? &tgrad : &tstep) = u1 - u0;
        }
        ts->step++;
        if (i >= 0) {
            t[i] = (t1 - t0) + tstep;
            tg[i] = tgrad;
            td[i] = tstep - tgrad;
        }
    }
    double over_mean = 0;
    for (int i = 0; i < steps; i++)
        over_mean += td[i] / steps;
    double step_med = median(t, steps), grad_med = median(tg, steps), over_med = median(td, steps);
    tp_plugin_call_destroy(po, ostate, host, co);

    /* FLOPs of one step: forward and weight gradients of every linear layer, input gradients
     * of all but the first (the data needs none). */
    double flops = 0;
    char blas[256];
    tp_blas_check(blas, sizeof blas);
    printf("{\"workload\": \"%s\", \"optimizer\": \"%s\", \"batch\": %u, \"params\": %llu, "
           "\"step_median_s\": %.9g, \"blas\": \"%s\"",
           cfg.name, opt, batch, (unsigned long long)w->num_params, step_med, blas);
    printf(", \"grad_median_s\": %.9g, \"overhead_median_s\": %.9g, \"overhead_mean_s\": %.9g",
           grad_med, over_med, over_mean);
    uint32_t layers = 0;
    uint32_t dims[16][2];
    for (uint32_t i = 0; i < w->num_tensors && layers < 16; i++)
        if (w->tensors[i].role == TP_PARAM_ROLE_WEIGHT && w->tensors[i].ndim == 2) {
            dims[layers][0] = w->tensors[i].shape[0];
            dims[layers][1] = w->tensors[i].shape[1];
            layers++;
        }
    for (uint32_t l = 0; l < layers; l++) {
        double mn = (double)dims[l][0] * dims[l][1];
        flops += 2.0 * batch * mn * (l == 0 ? 2 : 3);
    }
    printf(", \"flops_per_step\": %.6g", flops);
    if (sgemm) {
        /* The same GEMMs in isolation: the floor a step cannot beat. A weight is stored
         * (in, out) or (out, in); in a chain of layers the out of one is the in of the next,
         * which tells the orientation. Timed as forward y = x W, dW = x^T dy, dx = dy W^T. */
        int in_out = layers < 2 || dims[0][1] == dims[1][0];
        double floor_s = 0;
        for (uint32_t l = 0; l < layers; l++) {
            int in = (int)(in_out ? dims[l][0] : dims[l][1]);
            int out = (int)(in_out ? dims[l][1] : dims[l][0]);
            floor_s += time_sgemm(0, 0, (int)batch, out, in, 50);
            floor_s += time_sgemm(1, 0, in, out, (int)batch, 50);
            if (l > 0)
                floor_s += time_sgemm(0, 1, (int)batch, in, out, 50);
        }
        double big = time_sgemm(0, 0, 1024, 1024, 1024, 10);
        printf(", \"sgemm_floor_s\": %.9g, \"sgemm_shapes_gflops\": %.4g, "
               "\"sgemm_1024_gflops\": %.4g",
               floor_s, flops / floor_s * 1e-9, 2.0 * 1024 * 1024 * 1024 / big * 1e-9);
    }
    printf("}\n");
    free(idx);
    free(wts);
    free(t);
    free(tg);
    free(td);
    free(scratch);
    tp_kv_free(&kv);
    tp_session_free(s);
    tp_plugin_set_free(set);
    w->vt->free(w);
    tp_config_free_workload(&cfg);
    return 0;
fail:
    fprintf(stderr, "bench_step: %s\n", err);
    return 1;
}
