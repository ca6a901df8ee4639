/*
 * trainperf.h - the trainperf submission SDK, version 1.1.
 *
 * This is the only header a trainperf submission includes. It defines the contract between the
 * trainperf worker (the "host") and a submission plugin: an optimizer, a learning-rate
 * schedule or a data-selection method, built as a shared object and loaded with dlopen().
 * A plugin links against nothing of trainperf: everything it may do goes through the
 * `tp_host` function table handed to it at each call (the SQLite loadable-extension pattern).
 *
 * The words MUST, MUST NOT, SHOULD and MAY are used as in RFC 2119.
 *
 * Discovery (the LV2 pattern)
 *   A plugin MUST export exactly one symbol, `tp_plugin_entry`, of type `tp_plugin_entry_fn`.
 *   The host calls it with index 0, 1, 2, ... until it returns NULL; each non-NULL return is a
 *   `tp_plugin_desc` describing one plugin. One .so MAY hold several plugins (an optimizer and
 *   its schedule, say). The descriptors and everything they point to MUST stay valid and
 *   unchanged until the .so is unloaded. `tp_plugin_entry` MUST NOT allocate, print or have
 *   other side effects; the host MAY call it more than once.
 *
 * Versioning
 *   Every struct that crosses the boundary starts with `uint32_t struct_size;
 *   uint32_t sdk_version;`. The writer of a struct fills both: `struct_size = sizeof(the
 *   struct as it knows it)` and `sdk_version = TP_SDK_VERSION`. Structs only ever grow at the
 *   end; a reader MUST NOT read a field past `struct_size` and MUST treat such a field as
 *   absent (NULL / zero). The host loads a plugin whose major version equals its own and whose
 *   minor version is at most its own; it refuses anything else with a message.
 *   Use TP_FIELD_PRESENT() to test for a field in a struct you did not write.
 *
 * Calls
 *   Every entry point returns an int: TP_OK (0) on success, TP_TRAINING_COMPLETE (> 0, from
 *   `update` only) to end the trial early, or a negative TP_E... code on error, in which case
 *   it SHOULD write a message into `err->message`. A plugin MUST NOT call exit(), abort() or
 *   longjmp() out of a call, and MUST NOT keep pointers it received in a call past the call's
 *   return unless this header says the pointer lives longer (`tp_host` and `tp_ctx` live for
 *   the whole trial; the parameter buffer lives for the whole trial).
 *   The host calls a plugin from one thread at a time. A plugin MAY use threads internally.
 *
 * Timing (AlgoPerf rules)
 *   `init` and `get_batch_size` are untimed. `select_batch`, `lr_factor`, `update` and
 *   `prepare_for_eval` run on the submission clock. `precondition` is only called by
 *   diagnostics, outside the clock. Evaluation is done by the host, untimed, on the parameter
 *   buffer as it is after `prepare_for_eval` (or after the last `update` if there is none).
 *
 * Rules of the benchmark (not enforced by the type system)
 *   A plugin MUST NOT recognise the workload to special-case it (the workload name is given to
 *   `get_batch_size` only, as in AlgoPerf), MUST NOT read data, labels or files on its own,
 *   and MUST NOT do work on the side outside its timed calls.
 */
#ifndef TRAINPERF_H
#define TRAINPERF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Versions */

#define TP_SDK_VERSION_MAJOR              1
#define TP_SDK_VERSION_MINOR              1
#define TP_SDK_MAKE_VERSION(major, minor) ((uint32_t)(((uint32_t)(major) << 16) | (minor)))
#define TP_SDK_VERSION                    TP_SDK_MAKE_VERSION(TP_SDK_VERSION_MAJOR, TP_SDK_VERSION_MINOR)
#define TP_SDK_VERSION_MAJOR_OF(v)        ((uint32_t)(v) >> 16)
#define TP_SDK_VERSION_MINOR_OF(v)        ((uint32_t)(v)&0xffffu)

/* True when `field` of the struct `*p` (written by someone else) lies within its struct_size. */
#define TP_FIELD_PRESENT(p, type, field)                                                           \
    ((p) != NULL && (p)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* Start a boundary struct you write: zero every field, then fill the two header fields.
 * TP_STRUCT_INIT(&batch, tp_batch); batch.size = ...; Fields you do not set stay 0 / NULL,
 * which every optional field of the SDK reads as "absent". */
#ifdef __cplusplus
#define TP_STRUCT_INIT(p, type)                                                                    \
    do {                                                                                           \
        *(p) = type();                                                                             \
        (p)->struct_size = (uint32_t)sizeof(type);                                                 \
        (p)->sdk_version = TP_SDK_VERSION;                                                         \
    } while (0)
#else
#define TP_STRUCT_INIT(p, type)                                                                    \
    do {                                                                                           \
        *(p) = (type){.struct_size = (uint32_t)sizeof(type), .sdk_version = TP_SDK_VERSION};       \
    } while (0)
#endif

#if defined(__GNUC__)
#define TP_EXPORT            __attribute__((visibility("default")))
#define TP_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define TP_EXPORT
#define TP_PRINTF(fmt, args)
#endif

/* ---------------------------------------------------------------------------------------- */
/* Status and error codes */

#define TP_OK 0
/* Returned by `update` to say the submission is done training; the trial ends after it. */
#define TP_TRAINING_COMPLETE 1

/* Negative error codes with their names and messages, generated from one list. */
#define TP_ERRNO_MAP(XX)                                                                           \
    XX(EINVAL, -1, "invalid argument")                                                             \
    XX(ENOMEM, -2, "out of memory")                                                                \
    XX(ERANGE, -3, "value out of range")                                                           \
    XX(ENOTSUP, -4, "operation not supported")                                                     \
    XX(ENOENT, -5, "not found")                                                                    \
    XX(EIO, -6, "input/output error")                                                              \
    XX(ESTATE, -7, "call not valid in this state")                                                 \
    XX(ENONFINITE, -8, "non-finite value")                                                         \
    XX(EPLUGIN, -9, "plugin error")                                                                \
    XX(EABI, -10, "incompatible plugin ABI")                                                       \
    XX(ECONFIG, -11, "invalid configuration")                                                      \
    XX(EDATA, -12, "dataset error")                                                                \
    XX(EPROTO, -13, "protocol violation")                                                          \
    XX(ECRASH, -14, "worker crashed")                                                              \
    XX(ETIMEOUT, -15, "time limit exceeded")                                                       \
    XX(EDB, -16, "results database error")                                                         \
    XX(ESYS, -17, "system call failed")

enum tp_errno {
#define TP__ERRNO_ENUM(name, value, msg) TP_##name = (value),
    TP_ERRNO_MAP(TP__ERRNO_ENUM)
#undef TP__ERRNO_ENUM
};

/* The symbolic name of a code ("TP_EINVAL"), or "TP_OK" / "TP_E?" for others. */
static inline const char *tp_err_name(int code)
{
    switch (code) {
#define TP__ERRNO_NAME(name, value, msg)                                                           \
    case (value):                                                                                  \
        return "TP_" #name;
        TP_ERRNO_MAP(TP__ERRNO_NAME)
#undef TP__ERRNO_NAME
    case TP_OK:
        return "TP_OK";
    case TP_TRAINING_COMPLETE:
        return "TP_TRAINING_COMPLETE";
    default:
        return "TP_E?";
    }
}

/* A one-line description of a code. */
static inline const char *tp_strerror(int code)
{
    switch (code) {
#define TP__ERRNO_MSG(name, value, msg)                                                            \
    case (value):                                                                                  \
        return msg;
        TP_ERRNO_MAP(TP__ERRNO_MSG)
#undef TP__ERRNO_MSG
    case TP_OK:
        return "success";
    case TP_TRAINING_COMPLETE:
        return "training complete";
    default:
        return "unknown error";
    }
}

#define TP_ERROR_MESSAGE_MAX 512

/* Where an entry point writes what went wrong. The host zeroes `message` before each call. */
typedef struct tp_error {
    uint32_t struct_size;
    uint32_t sdk_version;
    char message[TP_ERROR_MESSAGE_MAX];
} tp_error;

/* ---------------------------------------------------------------------------------------- */
/* Parameters, batches, train state */

/* What a parameter tensor is, so per-tensor rules (no weight decay on biases and norm scales,
 * Shampoo on matrices) can be written without knowing the model. */
typedef enum tp_param_role {
    TP_PARAM_ROLE_WEIGHT = 1,     /* matrix or kernel of a linear / conv layer */
    TP_PARAM_ROLE_BIAS = 2,       /* additive bias */
    TP_PARAM_ROLE_NORM_SCALE = 3, /* scale (gamma) of a normalisation layer */
    TP_PARAM_ROLE_NORM_BIAS = 4,  /* shift (beta) of a normalisation layer */
    TP_PARAM_ROLE_EMBEDDING = 5,  /* embedding table */
    TP_PARAM_ROLE_OTHER = 6
} tp_param_role;

#define TP_MAX_DIMS 4

/* One named tensor inside the flat parameter buffer. All parameters of a model live in one
 * contiguous float32 buffer; tensor i occupies [offset, offset + numel), row-major. */
typedef struct tp_tensor_info {
    uint32_t struct_size;
    uint32_t sdk_version;
    const char *name; /* stable, e.g. "fc1.weight"; valid for the whole trial */
    tp_param_role role;
    uint32_t ndim;
    uint32_t shape[TP_MAX_DIMS]; /* unused dims are 1 */
    uint64_t offset;             /* in floats, into the flat buffer */
    uint64_t numel;
} tp_tensor_info;

/* A batch is a list of indices into the training set (never the data itself) with optional
 * per-example weights. The loss of a batch is (1/size) * sum_i weight_i * loss_i, weight 1 when
 * `weights` is NULL. */
typedef struct tp_batch {
    uint32_t struct_size;
    uint32_t sdk_version;
    uint32_t size;     /* number of examples */
    uint32_t capacity; /* room in idx / weights when the host hands the buffers out */
    uint32_t *idx;     /* (size) indices in [0, train_size) */
    float *weights;    /* (size) or NULL */
} tp_batch;

/* Submission-side regularisation for one loss evaluation (AlgoPerf: the submission owns label
 * smoothing and dropout). Pass NULL for "none, training mode". */
typedef struct tp_loss_opts {
    uint32_t struct_size;
    uint32_t sdk_version;
    float label_smoothing; /* in [0, 1) */
    float dropout_rate;    /* in [0, 1); the workload applies it where its model has dropout */
    uint32_t flags;        /* TP_LOSS_... */
} tp_loss_opts;

/* Evaluate as in eval mode: no dropout, batch norm (where a model has it) uses running
 * statistics and does not update them. */
#define TP_LOSS_EVAL_MODE 0x1u

/* Read-only state of the trial, owned by the host; valid for the whole trial, updated by the
 * host between calls. Times are seconds of the trial's timing clock. */
typedef struct tp_train_state {
    uint32_t struct_size;
    uint32_t sdk_version;
    uint64_t step;          /* updates completed so far */
    uint64_t step_hint;     /* the workload's step hint (AlgoPerf `step_hint`) */
    double submission_time; /* accumulated submission (timed) seconds */
    double budget;          /* the submission time budget in seconds */
    double last_eval_time;  /* submission time at the last eval, 0 before the first */
    uint32_t num_evals;
    uint32_t batch_size;
    int32_t validation_target_reached;
    int32_t test_target_reached;
    double last_validation_metric; /* NaN before the first eval */
    double last_validation_loss;   /* NaN before the first eval */
    uint64_t train_size;           /* examples in the training set */
    uint64_t num_params;           /* floats in the flat parameter buffer */
} tp_train_state;

typedef enum tp_log_level {
    TP_LOG_DEBUG = 0,
    TP_LOG_INFO = 1,
    TP_LOG_WARN = 2,
    TP_LOG_ERROR = 3
} tp_log_level;

/* ---------------------------------------------------------------------------------------- */
/* The host function table */

/* Opaque handle of one plugin instance in one trial. Valid for the whole trial. */
typedef struct tp_ctx tp_ctx;

/*
 * Functions the host offers a plugin. Every function that can fail returns TP_OK or a negative
 * TP_E... code and never crashes on bad arguments it can detect (NULL pointers, sizes that do
 * not match, indices out of range). Buffers of "n floats" are the layout of the flat parameter
 * buffer (`num_params` floats).
 *
 * The table only grows at the end; test new functions with TP_FIELD_PRESENT(host, tp_host, fn).
 */
typedef struct tp_host {
    uint32_t struct_size;
    uint32_t sdk_version;

    /* -- parameters ----------------------------------------------------------------------- */

    /* Number of named tensors in the flat parameter buffer. */
    uint32_t (*param_tensor_count)(tp_ctx *ctx);
    /* Describe tensor i. The caller sets out->struct_size (TP_STRUCT_INIT); the host fills at
     * most that many bytes. */
    int (*param_tensor_info)(tp_ctx *ctx, uint32_t i, tp_tensor_info *out);
    /* The flat parameter buffer (*num_params floats, 64-byte aligned). The optimizer updates it
     * in place during `update` and `prepare_for_eval`. NULL only when ctx is invalid. */
    float *(*params)(tp_ctx *ctx, uint64_t *num_params);

    /* -- loss and gradients ---------------------------------------------------------------- */

    /* Mean loss of `batch` at `params` (NULL: the current parameters) and, when grad is not
     * NULL, its gradient written (not accumulated) into grad (num_params floats). May be
     * called any number of times per update (SAM-like methods call it twice). */
    int (*loss_and_grad)(tp_ctx *ctx, const float *params, const tp_batch *batch,
                         const tp_loss_opts *opts, float *grad, double *loss);
    /* Per-example losses (batch->size floats into `losses`), no gradient. Used by data
     * selection; costs one forward pass. */
    int (*per_example_loss)(tp_ctx *ctx, const float *params, const tp_batch *batch,
                            const tp_loss_opts *opts, float *losses);

    /* -- data ------------------------------------------------------------------------------ */

    /* Take the next n indices of the trial's infinite, seeded, pre-shuffled stream over the
     * training set (the input queue; reshuffled every epoch). */
    int (*next_indices)(tp_ctx *ctx, uint32_t n, uint32_t *idx);

    /* -- vector kernels (OpenBLAS; n floats each) ----------------------------------------- */

    void (*vec_axpy)(uint64_t n, float alpha, const float *x, float *y); /* y += alpha x */
    void (*vec_scale)(uint64_t n, float alpha, float *x);                /* x *= alpha */
    void (*vec_copy)(uint64_t n, const float *x, float *y);              /* y = x */
    double (*vec_dot)(uint64_t n, const float *x, const float *y);
    double (*vec_nrm2)(uint64_t n, const float *x);
    /* C (m x n) = alpha op(A) op(B) + beta C, row-major, op = transpose when trans_* != 0. */
    int (*gemm)(int trans_a, int trans_b, uint32_t m, uint32_t n, uint32_t k, float alpha,
                const float *a, const float *b, float beta, float *c);

    /* -- random numbers (seeded per trial and plugin; deterministic) ------------------------- */

    uint64_t (*rng_u64)(tp_ctx *ctx);
    double (*rng_uniform)(tp_ctx *ctx); /* in [0, 1) */
    double (*rng_normal)(tp_ctx *ctx);  /* standard normal */

    /* -- memory (tracked per plugin; 64-byte aligned; zeroed) ----------------------------- */

    void *(*alloc)(tp_ctx *ctx, size_t bytes);
    void (*free)(tp_ctx *ctx, void *p); /* free(ctx, NULL) is a no-op */

    /* -- logging (to the trial's log) ---------------------------------------------------- */

    void (*log)(tp_ctx *ctx, tp_log_level level, const char *fmt, ...) TP_PRINTF(3, 4);

    /* -- state and hyperparameters ----------------------------------------------------- */

    const tp_train_state *(*train_state)(tp_ctx *ctx);
    /* The value of a hyperparameter this plugin declared (the trial's value or the default).
     * TP_ENOENT when the plugin did not declare `name`. */
    int (*hparam)(tp_ctx *ctx, const char *name, double *value);

    /* -- linear algebra (SDK 1.1) ------------------------------------------------------ */

    /* Eigendecomposition of the symmetric n x n matrix `a` (row-major, double; it MUST
     * be symmetric: LAPACK reads one triangle) by LAPACK dsyevd from OpenBLAS.
     * On return `w` (n doubles) holds the eigenvalues in ascending order and `a` the
     * orthonormal eigenvectors as columns: a[i * n + k] is component i of the eigenvector of
     * w[k] (numpy.linalg.eigh's layout). For matrix roots (Shampoo's L^{-1/4}):
     * U diag(f(w)) U^T. TP_EINVAL for NULL pointers or n == 0, TP_ENOMEM, TP_ERANGE when
     * LAPACK does not converge or a holds a non-finite value (a and w are then unspecified).
     * Present from SDK 1.1: test with TP_FIELD_PRESENT(host, tp_host, sym_eig). */
    int (*sym_eig)(uint32_t n, double *a, double *w);
} tp_host;

/* ---------------------------------------------------------------------------------------- */
/* Plugin descriptors */

typedef enum tp_plugin_kind {
    TP_PLUGIN_OPTIMIZER = 1,
    TP_PLUGIN_SCHEDULE = 2,
    TP_PLUGIN_DATA_SELECTION = 3
} tp_plugin_kind;

typedef enum tp_hparam_type { TP_HPARAM_FLOAT = 1, TP_HPARAM_INT = 2 } tp_hparam_type;

/* A hyperparameter a plugin accepts. Names are unique within a plugin; the host routes a
 * trial's hyperparameter to every plugin of the submission that declares the name (so an
 * optimizer and a schedule may share one). Values are in [min_value, max_value]. */
typedef struct tp_hparam_decl {
    uint32_t struct_size;
    uint32_t sdk_version;
    const char *name; /* [a-z0-9_]+, e.g. "learning_rate", "one_minus_beta1" */
    tp_hparam_type type;
    double default_value;
    double min_value;
    double max_value;
    const char *help; /* one line, may be NULL */
} tp_hparam_decl;

/* Arguments of one update step. */
typedef struct tp_update_args {
    uint32_t struct_size;
    uint32_t sdk_version;
    uint64_t step;         /* 0-based index of this update */
    double lr_factor;      /* the schedule's factor for this step (1.0 with no schedule) */
    const tp_batch *batch; /* from the data selection */
} tp_update_args;

/*
 * One plugin. Which entry points are required depends on the kind:
 *   optimizer:       init, update                       (REQUIRED)
 *                    get_batch_size, prepare_for_eval, precondition, destroy (OPTIONAL)
 *   schedule:        lr_factor (REQUIRED); init, destroy (OPTIONAL)
 *   data selection:  select_batch (REQUIRED); init, destroy (OPTIONAL)
 * A plugin MUST leave every entry point that does not apply to its kind NULL.
 *
 * `state` is whatever `init` stored (NULL when there is no init); the host passes it back
 * unchanged and calls `destroy` once at the end of the trial, whatever happened.
 */
typedef struct tp_plugin_desc {
    uint32_t struct_size;
    uint32_t sdk_version;
    const char *id; /* stable id, [a-z0-9_.-]+, unique across all loaded plugins */
    tp_plugin_kind kind;
    const char *description; /* one line, may be NULL */
    const tp_hparam_decl
        *hparams; /* array of num_hparams; element stride = hparams[0].struct_size */
    uint32_t num_hparams;

    /* Untimed. The global batch size for `workload` (a base workload's name; variants get
     * their base's answer). `hint` is the workload's suggested batch size. Optional: without
     * it the host uses the hint. */
    int (*get_batch_size)(const char *workload, uint32_t hint, uint32_t *batch_size, tp_error *err);
    /* Untimed. Build the plugin's state (optimizer state, say) and store it in *state. */
    int (*init)(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err);
    /* Timed. One training step: compute gradients through host->loss_and_grad and update the
     * parameters in place. Return TP_TRAINING_COMPLETE to end training. */
    int (*update)(void *state, const tp_host *host, tp_ctx *ctx, const tp_update_args *args,
                  tp_error *err);
    /* Timed. Called when an eval is due; the parameters as left by this call are evaluated
     * (weight averaging). Training continues from the same buffer afterwards. */
    int (*prepare_for_eval)(void *state, const tp_host *host, tp_ctx *ctx, tp_error *err);
    /* Untimed, diagnostics only. out = P^{-1/2} v, n = num_params floats, for the
     * preconditioner P of the last update taken, held fixed (as in the Adaptive Edge of
     * Stability analysis): the update was theta -= lr_t * P^{-1} (momentum of gradients). It
     * MUST match the update rule exactly (where eps sits, bias correction) and MUST NOT change
     * the optimizer state. Return TP_ESTATE before the first update. */
    int (*precondition)(void *state, const tp_host *host, tp_ctx *ctx, const float *v, float *out,
                        tp_error *err);
    /* Free the state. Called once, also after errors; never with a state init did not set. */
    void (*destroy)(void *state, const tp_host *host, tp_ctx *ctx);

    /* Schedule, timed. The learning-rate factor for 0-based `step` (step_hint is in the train
     * state). */
    int (*lr_factor)(void *state, const tp_host *host, tp_ctx *ctx, uint64_t step, double *factor,
                     tp_error *err);

    /* Data selection, timed. Fill `batch` with exactly batch->capacity examples (set
     * batch->size); batch->idx and batch->weights point to host buffers of that capacity.
     * Set batch->weights = NULL for unweighted. */
    int (*select_batch)(void *state, const tp_host *host, tp_ctx *ctx, tp_batch *batch,
                        tp_error *err);
} tp_plugin_desc;

/* The discovery symbol. */
#define TP_PLUGIN_ENTRY_SYMBOL "tp_plugin_entry"
typedef const tp_plugin_desc *(*tp_plugin_entry_fn)(uint32_t index);

/* Define the discovery function in a plugin: TP_PLUGIN_ENTRY(index) { ... return NULL; } */
#define TP_PLUGIN_ENTRY(index_name)                                                                \
    TP_EXPORT const tp_plugin_desc *tp_plugin_entry(uint32_t index_name)

#ifdef __cplusplus
}
#endif

#endif /* TRAINPERF_H */
