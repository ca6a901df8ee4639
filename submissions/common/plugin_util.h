/*
 * plugin_util.h - small helpers every baseline plugin needs, header-only (static inline) so
 * each plugin stays one self-contained .so built against the SDK alone:
 *
 *   sub_fail      write "<id>: <message>" into err and return the code;
 *   sub_hparam    read one declared hyperparameter (a failure is a host bug, said as such);
 *   sub_loss_opts read label_smoothing and dropout_rate into the tp_loss_opts of the training
 *                 loss (AlgoPerf: regularisation is the submission's);
 *   sub_grad      call host->loss_and_grad and turn a failure into a message.
 *
 * Not here: anything optimizer-specific (see adam.h for Adam's moments).
 */
#ifndef TP_SUBMISSIONS_PLUGIN_UTIL_H
#define TP_SUBMISSIONS_PLUGIN_UTIL_H

#include <stdarg.h>
#include <stdio.h>

#include <trainperf/trainperf.h>

/* The two regularisation hyperparameters every optimizer declares last (AlgoPerf: the
 * submission owns label smoothing and dropout); sub_loss_opts reads them. */
#define SUB_LOSS_HPARAM_DECLS                                                                      \
    {sizeof(tp_hparam_decl),                                                                       \
     TP_SDK_VERSION,                                                                               \
     "label_smoothing",                                                                            \
     TP_HPARAM_FLOAT,                                                                              \
     0.0,                                                                                          \
     0.0,                                                                                          \
     0.99,                                                                                         \
     "label smoothing of the training loss"},                                                      \
    {                                                                                              \
        sizeof(tp_hparam_decl), TP_SDK_VERSION, "dropout_rate", TP_HPARAM_FLOAT, 0.0, 0.0, 0.99,   \
            "dropout rate where the model has dropout"                                             \
    }

static inline int sub_fail(tp_error *err, const char *id, int code, const char *fmt, ...)
    TP_PRINTF(4, 5);

static inline int sub_fail(tp_error *err, const char *id, int code, const char *fmt, ...)
{
    if (err != NULL) {
        int k = snprintf(err->message, sizeof err->message, "%s: ", id);
        if (k < 0 || (size_t)k >= sizeof err->message)
            return code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message + k, sizeof err->message - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return code;
}

static inline int sub_hparam(const tp_host *host, tp_ctx *ctx, const char *id, const char *name,
                             double *out, tp_error *err)
{
    int rc = host->hparam(ctx, name, out);
    if (rc != TP_OK)
        return sub_fail(err, id, rc, "host->hparam(\"%s\") failed: %s", name, tp_strerror(rc));
    return TP_OK;
}

/* The training-loss options from the declared label_smoothing and dropout_rate. */
static inline int sub_loss_opts(const tp_host *host, tp_ctx *ctx, const char *id,
                                tp_loss_opts *opts, tp_error *err)
{
    double ls = 0.0, dropout = 0.0;
    int rc;
    if ((rc = sub_hparam(host, ctx, id, "label_smoothing", &ls, err)) != TP_OK ||
        (rc = sub_hparam(host, ctx, id, "dropout_rate", &dropout, err)) != TP_OK)
        return rc;
    TP_STRUCT_INIT(opts, tp_loss_opts);
    opts->label_smoothing = (float)ls;
    opts->dropout_rate = (float)dropout;
    opts->flags = 0;
    return TP_OK;
}

/* grad = gradient of the batch loss at `params` (NULL: the current parameters). */
static inline int sub_grad(const tp_host *host, tp_ctx *ctx, const char *id, const float *params,
                           const tp_batch *batch, const tp_loss_opts *opts, float *grad,
                           double *loss, tp_error *err)
{
    int rc = host->loss_and_grad(ctx, params, batch, opts, grad, loss);
    if (rc != TP_OK)
        return sub_fail(err, id, rc, "host->loss_and_grad failed: %s", tp_strerror(rc));
    return TP_OK;
}

/* Check the host table and get the parameter buffer at init: TP_EABI for a host without
 * hparam(), TP_ESTATE without parameters. */
static inline int sub_init_params(const tp_host *host, tp_ctx *ctx, const char *id, uint64_t *n,
                                  tp_error *err)
{
    if (!TP_FIELD_PRESENT(host, tp_host, hparam))
        return sub_fail(err, id, TP_EABI, "host table too old: no hparam()");
    *n = 0;
    if (host->params(ctx, n) == NULL || *n == 0)
        return sub_fail(err, id, TP_ESTATE, "host->params() gave no parameter buffer");
    return TP_OK;
}

/* The parameter buffer at update, checked against the size seen at init. */
static inline float *sub_update_params(const tp_host *host, tp_ctx *ctx, const char *id,
                                       const tp_update_args *args, uint64_t n_init, tp_error *err,
                                       int *rc)
{
    uint64_t n = 0;
    float *theta;
    *rc = TP_OK;
    if (args == NULL || args->batch == NULL) {
        *rc = sub_fail(err, id, TP_EINVAL, "update called without a batch");
        return NULL;
    }
    theta = host->params(ctx, &n);
    if (theta == NULL || n != n_init) {
        *rc = sub_fail(err, id, TP_ESTATE, "parameter buffer changed size since init");
        return NULL;
    }
    return theta;
}

/* The start of most updates: the parameter buffer (checked as sub_update_params does) and the
 * gradient of the step's batch at it, written into grad. NULL with *rc on failure; nothing
 * has changed then. */
static inline float *sub_update_begin(const tp_host *host, tp_ctx *ctx, const char *id,
                                      const tp_update_args *args, uint64_t n_init,
                                      const tp_loss_opts *opts, float *grad, tp_error *err, int *rc)
{
    double loss = 0.0;
    float *theta = sub_update_params(host, ctx, id, args, n_init, err, rc);
    if (theta != NULL &&
        (*rc = sub_grad(host, ctx, id, NULL, args->batch, opts, grad, &loss, err)) != TP_OK)
        return NULL;
    return theta;
}

#endif /* TP_SUBMISSIONS_PLUGIN_UTIL_H */
