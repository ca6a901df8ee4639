/*
 * plugin.h - the plugin loader: dlopen a submission .so, walk its descriptors, check them
 * against the SDK ABI, and call its entry points through libffi with the call signatures of
 * the plugin's SDK version.
 *
 * The loader refuses a bad plugin with a message naming the file, the symbol and the reason
 * ("plugins/x.so: tp_plugin_entry(0) 'adamw': update: required for an optimizer, is NULL"),
 * and never crashes on it. Refused: not a shared object, no discovery symbol, another SDK
 * major or a newer minor, a struct_size smaller than its version's, a missing required entry
 * point, a duplicate plugin id, a hyperparameter declared twice, a bad id or hparam name, a
 * default outside [min, max], an entry point given for another kind.
 *
 * Not here: the sandbox (the worker's job). The host process never dlopens submissions; the
 * worker does, and `trainperf check` runs the loader inside a worker.
 */
#ifndef TP_CORE_PLUGIN_H
#define TP_CORE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <trainperf/trainperf.h>

/* A hyperparameter declaration, copied out of the plugin into host memory. */
typedef struct tp_hparam_info {
    const char *name;
    tp_hparam_type type;
    double default_value;
    double min_value;
    double max_value;
    const char *help; /* "" when the plugin gave none */
} tp_hparam_info;

/* One plugin (one descriptor), checked. Fields are read-only for users. */
typedef struct tp_plugin {
    const char *id;
    tp_plugin_kind kind;
    const char *description; /* "" when none */
    const char *path;        /* the .so it came from */
    uint32_t sdk_version;    /* the descriptor's */
    uint32_t index;          /* its index in tp_plugin_entry */
    uint32_t num_hparams;
    const tp_hparam_info *hparams;
    struct tp__plugin_impl *impl; /* function pointers and ffi call interfaces */
} tp_plugin;

typedef struct tp_plugin_lib tp_plugin_lib;

/* Load and check every descriptor of one .so (RTLD_NOW | RTLD_LOCAL). On any problem nothing
 * stays loaded and err says what. */
int tp_plugin_lib_open(const char *path, tp_plugin_lib **out, char *err, size_t errlen);
void tp_plugin_lib_close(tp_plugin_lib *lib); /* close(NULL) is a no-op */
uint32_t tp_plugin_lib_count(const tp_plugin_lib *lib);
const tp_plugin *tp_plugin_lib_get(const tp_plugin_lib *lib, uint32_t i);

/* A set of libraries, e.g. everything in plugins/. Ids are unique across the set. */
typedef struct tp_plugin_set tp_plugin_set;

int tp_plugin_set_init(tp_plugin_set **out);
void tp_plugin_set_free(tp_plugin_set *set); /* closes every library; free(NULL) no-op */
/* Add one .so; refused (and not added) if it fails to load or repeats an id of the set. */
int tp_plugin_set_add_file(tp_plugin_set *set, const char *path, char *err, size_t errlen);
/* Add every *.so in dir (sorted by name). A file that is refused is reported through
 * on_error(path, message, ud) and skipped; returns the number of files refused (>= 0) or a
 * negative code when dir cannot be read. */
int tp_plugin_set_add_dir(tp_plugin_set *set, const char *dir,
                          void (*on_error)(const char *path, const char *msg, void *ud), void *ud,
                          char *err, size_t errlen);
/* Find a plugin by id (and kind; 0 = any kind). NULL when absent. */
const tp_plugin *tp_plugin_set_find(const tp_plugin_set *set, const char *id, tp_plugin_kind kind);
uint32_t tp_plugin_set_count(const tp_plugin_set *set);
const tp_plugin *tp_plugin_set_get(const tp_plugin_set *set, uint32_t i);

/* Which entry points a plugin has (non-NULL). */
typedef enum tp_plugin_fn {
    TP_PLUGIN_FN_GET_BATCH_SIZE,
    TP_PLUGIN_FN_INIT,
    TP_PLUGIN_FN_UPDATE,
    TP_PLUGIN_FN_PREPARE_FOR_EVAL,
    TP_PLUGIN_FN_PRECONDITION,
    TP_PLUGIN_FN_DESTROY,
    TP_PLUGIN_FN_LR_FACTOR,
    TP_PLUGIN_FN_SELECT_BATCH,
    TP_PLUGIN_FN_COUNT
} tp_plugin_fn;

int tp_plugin_has(const tp_plugin *p, tp_plugin_fn fn);
const char *tp_plugin_fn_name(tp_plugin_fn fn);       /* "update" */
const char *tp_plugin_kind_name(tp_plugin_kind kind); /* "optimizer" */

/* Calls through libffi. Each returns what the plugin returned, or TP_ENOTSUP when the entry
 * point is absent (destroy: nothing). `err` must be a tp_error the caller initialised with
 * TP_STRUCT_INIT; the call zeroes its message first. */
int tp_plugin_call_get_batch_size(const tp_plugin *p, const char *workload, uint32_t hint,
                                  uint32_t *batch_size, tp_error *err);
int tp_plugin_call_init(const tp_plugin *p, const tp_host *host, tp_ctx *ctx, void **state,
                        tp_error *err);
int tp_plugin_call_update(const tp_plugin *p, void *state, const tp_host *host, tp_ctx *ctx,
                          const tp_update_args *args, tp_error *err);
int tp_plugin_call_prepare_for_eval(const tp_plugin *p, void *state, const tp_host *host,
                                    tp_ctx *ctx, tp_error *err);
int tp_plugin_call_precondition(const tp_plugin *p, void *state, const tp_host *host, tp_ctx *ctx,
                                const float *v, float *out, tp_error *err);
void tp_plugin_call_destroy(const tp_plugin *p, void *state, const tp_host *host, tp_ctx *ctx);
int tp_plugin_call_lr_factor(const tp_plugin *p, void *state, const tp_host *host, tp_ctx *ctx,
                             uint64_t step, double *factor, tp_error *err);
int tp_plugin_call_select_batch(const tp_plugin *p, void *state, const tp_host *host, tp_ctx *ctx,
                                tp_batch *batch, tp_error *err);

#endif /* TP_CORE_PLUGIN_H */
