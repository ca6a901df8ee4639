/*
 * plugin_abi.h - what the loader knows about each released SDK version, and the loader
 * internals that `trainperf check` shares. Internal to core/ (plugin.c and check.c).
 *
 * Per SDK version (major, minor): the size of a tp_plugin_desc and of a tp_hparam_decl at that
 * version (a plugin's struct_size must be at least that much, and the host reads no more than
 * that much), which entry points the version has, where each sits in the descriptor and its
 * libffi call signature. Per plugin kind: which entry points are required, optional or
 * forbidden.
 *
 * Not here: loading and checking a descriptor, and calling it (plugin.c); printing (check.c).
 */
#ifndef TP_CORE_PLUGIN_ABI_H
#define TP_CORE_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#include <ffi.h>

#include "core/plugin.h"

/* How an entry point relates to a plugin kind (the table in trainperf.h). */
typedef enum tp__abi_use {
    TP__ABI_FORBIDDEN = 0, /* MUST be NULL for this kind */
    TP__ABI_OPTIONAL = 1,
    TP__ABI_REQUIRED = 2
} tp__abi_use;

/* The call signature of one entry point at one SDK version. */
typedef struct tp__abi_sig {
    size_t offset;   /* of the function pointer in tp_plugin_desc */
    ffi_type *rtype; /* NULL when the version does not have this entry point */
    unsigned nargs;
    ffi_type **args; /* (nargs) */
} tp__abi_sig;

/* One released SDK version. Rows are never edited once released; a minor that changes
 * nothing a plugin writes needs no row (the row of the nearest older minor applies). */
typedef struct tp__abi_version {
    uint32_t version;        /* TP_SDK_MAKE_VERSION(major, minor) */
    size_t desc_size;        /* bytes of tp_plugin_desc at this version */
    size_t hparam_size;      /* bytes of tp_hparam_decl at this version */
    const tp__abi_sig *sigs; /* (TP_PLUGIN_FN_COUNT), indexed by tp_plugin_fn */
} tp__abi_version;

/* The row for a plugin built against `sdk_version`: same major as the host, the newest row
 * whose minor is at most the plugin's. NULL when the host has none (another major). The
 * caller refuses minors newer than TP_SDK_VERSION_MINOR before asking. */
const tp__abi_version *tp__abi_lookup(uint32_t sdk_version);

/* Whether `fn` is required, optional or forbidden for `kind` (a valid kind). */
tp__abi_use tp__abi_use_of(tp_plugin_kind kind, tp_plugin_fn fn);

/* ---------------------------------------------------------------------------------------- */
/* Loader internals shared with check.c */

/* Called once per problem the loader finds, in order; `code` is a negative TP_E... code and
 * `msg` the full message ("path: tp_plugin_entry(0) 'x': update: ..."), valid during the call. */
typedef void (*tp__plugin_problem_fn)(int code, const char *msg, void *ud);

/* tp_plugin_lib_open, but reporting every problem it finds (it goes on checking the other
 * fields and descriptors after a problem where that is safe) instead of only the first.
 * Returns the first problem's code; *out is NULL then. */
int tp__plugin_lib_load(const char *path, tp__plugin_problem_fn on_problem, void *ud,
                        tp_plugin_lib **out);

#endif /* TP_CORE_PLUGIN_ABI_H */
