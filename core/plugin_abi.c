/*
 * plugin_abi.c - the per-SDK-version ABI tables of the plugin loader (see plugin_abi.h): the
 * descriptor and hyperparameter sizes of every released SDK version, the libffi signature of
 * every entry point at that version, and the kind / entry point table of trainperf.h.
 *
 * How to release SDK 1.1 when it appends fields: freeze the 1.0 header under tests/compat/
 * (already done), add a row below with the new sizes and a signature array that lists the new
 * entry points too, and leave the 1.0 row as it is. Sizes are written as "end of the last field
 * of that version", so they stay right when the current header grows.
 *
 * Not here: anything that touches a plugin (plugin.c).
 */
#include "core/plugin_abi.h"

/* The end of `field` in `type`: the size of the struct as a version ending at that field
 * writes it. */
#define TP__FIELD_END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* ---------------------------------------------------------------------------------------- */
/* SDK 1.0 call signatures (trainperf.h 1.0, frozen in tests/compat/v1.0) */

/* int get_batch_size(const char *workload, uint32_t hint, uint32_t *batch_size, tp_error *) */
static ffi_type *tp__args_1_0_get_batch_size[] = {&ffi_type_pointer, &ffi_type_uint32,
                                                  &ffi_type_pointer, &ffi_type_pointer};
/* int init(const tp_host *, tp_ctx *, void **state, tp_error *) */
static ffi_type *tp__args_1_0_init[] = {&ffi_type_pointer, &ffi_type_pointer, &ffi_type_pointer,
                                        &ffi_type_pointer};
/* int update(void *state, const tp_host *, tp_ctx *, const tp_update_args *, tp_error *) */
static ffi_type *tp__args_1_0_update[] = {&ffi_type_pointer, &ffi_type_pointer, &ffi_type_pointer,
                                          &ffi_type_pointer, &ffi_type_pointer};
/* int prepare_for_eval(void *state, const tp_host *, tp_ctx *, tp_error *) */
static ffi_type *tp__args_1_0_prepare_for_eval[] = {&ffi_type_pointer, &ffi_type_pointer,
                                                    &ffi_type_pointer, &ffi_type_pointer};
/* int precondition(void *state, const tp_host *, tp_ctx *, const float *v, float *out,
 *                  tp_error *) */
static ffi_type *tp__args_1_0_precondition[] = {&ffi_type_pointer, &ffi_type_pointer,
                                                &ffi_type_pointer, &ffi_type_pointer,
                                                &ffi_type_pointer, &ffi_type_pointer};
/* void destroy(void *state, const tp_host *, tp_ctx *) */
static ffi_type *tp__args_1_0_destroy[] = {&ffi_type_pointer, &ffi_type_pointer, &ffi_type_pointer};
/* int lr_factor(void *state, const tp_host *, tp_ctx *, uint64_t step, double *factor,
 *               tp_error *) */
static ffi_type *tp__args_1_0_lr_factor[] = {&ffi_type_pointer, &ffi_type_pointer,
                                             &ffi_type_pointer, &ffi_type_uint64,
                                             &ffi_type_pointer, &ffi_type_pointer};
/* int select_batch(void *state, const tp_host *, tp_ctx *, tp_batch *, tp_error *) */
static ffi_type *tp__args_1_0_select_batch[] = {
    &ffi_type_pointer, &ffi_type_pointer, &ffi_type_pointer, &ffi_type_pointer, &ffi_type_pointer};

#define TP__SIG(field, rtype, args)                                                                \
    {                                                                                              \
        offsetof(tp_plugin_desc, field), &(rtype), sizeof(args) / sizeof((args)[0]), (args)        \
    }

static const tp__abi_sig tp__sigs_1_0[TP_PLUGIN_FN_COUNT] = {
    [TP_PLUGIN_FN_GET_BATCH_SIZE] =
        TP__SIG(get_batch_size, ffi_type_sint32, tp__args_1_0_get_batch_size),
    [TP_PLUGIN_FN_INIT] = TP__SIG(init, ffi_type_sint32, tp__args_1_0_init),
    [TP_PLUGIN_FN_UPDATE] = TP__SIG(update, ffi_type_sint32, tp__args_1_0_update),
    [TP_PLUGIN_FN_PREPARE_FOR_EVAL] =
        TP__SIG(prepare_for_eval, ffi_type_sint32, tp__args_1_0_prepare_for_eval),
    [TP_PLUGIN_FN_PRECONDITION] = TP__SIG(precondition, ffi_type_sint32, tp__args_1_0_precondition),
    [TP_PLUGIN_FN_DESTROY] = TP__SIG(destroy, ffi_type_void, tp__args_1_0_destroy),
    [TP_PLUGIN_FN_LR_FACTOR] = TP__SIG(lr_factor, ffi_type_sint32, tp__args_1_0_lr_factor),
    [TP_PLUGIN_FN_SELECT_BATCH] = TP__SIG(select_batch, ffi_type_sint32, tp__args_1_0_select_batch),
};

/* ---------------------------------------------------------------------------------------- */
/* Released versions, oldest first */

static const tp__abi_version tp__abi_versions[] = {
    {TP_SDK_MAKE_VERSION(1, 0), TP__FIELD_END(tp_plugin_desc, select_batch),
     TP__FIELD_END(tp_hparam_decl, help), tp__sigs_1_0},
    /* 1.1 added host->sym_eig to the host table only: descriptors and entry points are 1.0's. */
    {TP_SDK_MAKE_VERSION(1, 1), TP__FIELD_END(tp_plugin_desc, select_batch),
     TP__FIELD_END(tp_hparam_decl, help), tp__sigs_1_0},
};

#define TP__ABI_NVERSIONS (sizeof(tp__abi_versions) / sizeof(tp__abi_versions[0]))

const tp__abi_version *tp__abi_lookup(uint32_t sdk_version)
{
    const tp__abi_version *best = NULL;
    for (size_t i = 0; i < TP__ABI_NVERSIONS; i++) {
        const tp__abi_version *v = &tp__abi_versions[i];
        if (TP_SDK_VERSION_MAJOR_OF(v->version) != TP_SDK_VERSION_MAJOR_OF(sdk_version))
            continue;
        if (TP_SDK_VERSION_MINOR_OF(v->version) > TP_SDK_VERSION_MINOR_OF(sdk_version))
            continue;
        if (best == NULL || v->version > best->version)
            best = v;
    }
    return best;
}

/* ---------------------------------------------------------------------------------------- */
/* Entry points by kind (the table above tp_plugin_desc in trainperf.h) */

static const unsigned char tp__abi_uses[][TP_PLUGIN_FN_COUNT] = {
    [TP_PLUGIN_OPTIMIZER] =
        {
            [TP_PLUGIN_FN_GET_BATCH_SIZE] = TP__ABI_OPTIONAL,
            [TP_PLUGIN_FN_INIT] = TP__ABI_REQUIRED,
            [TP_PLUGIN_FN_UPDATE] = TP__ABI_REQUIRED,
            [TP_PLUGIN_FN_PREPARE_FOR_EVAL] = TP__ABI_OPTIONAL,
            [TP_PLUGIN_FN_PRECONDITION] = TP__ABI_OPTIONAL,
            [TP_PLUGIN_FN_DESTROY] = TP__ABI_OPTIONAL,
        },
    [TP_PLUGIN_SCHEDULE] =
        {
            [TP_PLUGIN_FN_INIT] = TP__ABI_OPTIONAL,
            [TP_PLUGIN_FN_DESTROY] = TP__ABI_OPTIONAL,
            [TP_PLUGIN_FN_LR_FACTOR] = TP__ABI_REQUIRED,
        },
    [TP_PLUGIN_DATA_SELECTION] =
        {
            [TP_PLUGIN_FN_INIT] = TP__ABI_OPTIONAL,
            [TP_PLUGIN_FN_DESTROY] = TP__ABI_OPTIONAL,
            [TP_PLUGIN_FN_SELECT_BATCH] = TP__ABI_REQUIRED,
        },
};

tp__abi_use tp__abi_use_of(tp_plugin_kind kind, tp_plugin_fn fn)
{
    size_t k = (size_t)kind;
    if (k == 0 || k >= sizeof(tp__abi_uses) / sizeof(tp__abi_uses[0]) ||
        (unsigned)fn >= TP_PLUGIN_FN_COUNT)
        return TP__ABI_FORBIDDEN;
    return (tp__abi_use)tp__abi_uses[k][fn];
}
