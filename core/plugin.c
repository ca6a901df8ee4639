/*
 * plugin.c - the plugin loader of core/plugin.h: dlopen a submission .so (RTLD_NOW |
 * RTLD_LOCAL), walk the descriptors its tp_plugin_entry returns, check each against the SDK
 * contract, copy what the host keeps (ids, names, help, hyperparameters) into host memory,
 * prepare one libffi call interface per entry point with the signatures of the plugin's SDK
 * version, and call through them. Also tp_plugin_set, the libraries a worker has loaded.
 *
 * Every problem is reported with the file, the symbol or field and the reason, and loading goes
 * on checking where that is safe so `trainperf check` can list them all; tp_plugin_lib_open
 * keeps the first. Nothing here reads a descriptor field past the descriptor's struct_size,
 * nor past the size of the descriptor at the plugin's SDK version (a bigger struct_size is
 * accepted and its tail ignored).
 *
 * Not here: the per-version ABI tables (plugin_abi.c), printing a plugin (check.c), the
 * sandbox and the tp_host table (the worker). A garbage pointer inside a descriptor (an id that
 * points nowhere) cannot be detected and crashes the process that loads it: that is why the
 * worker, never the host, loads submissions.
 */
#define _POSIX_C_SOURCE 200809L

#include "core/plugin.h"
#include "core/error.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/plugin_abi.h"

#define TP__PLUGIN_MAX_DESCS   256   /* descriptors per .so */
#define TP__PLUGIN_MAX_HPARAMS 1024  /* hyperparameters per plugin */
#define TP__PLUGIN_MAX_HSTRIDE 65536 /* a tp_hparam_decl bigger than this is garbage */
#define TP__PLUGIN_NAME_MAX    63    /* ids and hyperparameter names */
#define TP__PLUGIN_TEXT_MAX    1024  /* description and help are cut after this many bytes */
#define TP__PLUGIN_MSG_MAX     1024

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define TP__ELF_LITTLE_ENDIAN 0
#else
#define TP__ELF_LITTLE_ENDIAN 1
#endif

/* What the host keeps of one descriptor: its entry points and their call interfaces. */
struct tp__plugin_impl {
    const tp__abi_version *abi;
    void (*fn[TP_PLUGIN_FN_COUNT])(void);
    ffi_cif cif[TP_PLUGIN_FN_COUNT];
};

struct tp_plugin_lib {
    char *path;
    void *handle;
    uint32_t count;
    tp_plugin *plugins;            /* (count) */
    struct tp__plugin_impl *impls; /* (count) */
};

struct tp_plugin_set {
    tp_plugin_lib **libs; /* (nlibs) in the order they were added */
    uint32_t nlibs;
    uint32_t cap;
};

/* ---------------------------------------------------------------------------------------- */
/* Names */

static const char *const tp__fn_names[TP_PLUGIN_FN_COUNT] = {
    [TP_PLUGIN_FN_GET_BATCH_SIZE] = "get_batch_size",
    [TP_PLUGIN_FN_INIT] = "init",
    [TP_PLUGIN_FN_UPDATE] = "update",
    [TP_PLUGIN_FN_PREPARE_FOR_EVAL] = "prepare_for_eval",
    [TP_PLUGIN_FN_PRECONDITION] = "precondition",
    [TP_PLUGIN_FN_DESTROY] = "destroy",
    [TP_PLUGIN_FN_LR_FACTOR] = "lr_factor",
    [TP_PLUGIN_FN_SELECT_BATCH] = "select_batch",
};

const char *tp_plugin_fn_name(tp_plugin_fn fn)
{
    return (unsigned)fn < TP_PLUGIN_FN_COUNT ? tp__fn_names[fn] : "unknown";
}

const char *tp_plugin_kind_name(tp_plugin_kind kind)
{
    switch ((int)kind) {
    case TP_PLUGIN_OPTIMIZER:
        return "optimizer";
    case TP_PLUGIN_SCHEDULE:
        return "schedule";
    case TP_PLUGIN_DATA_SELECTION:
        return "data selection";
    default:
        return "unknown";
    }
}

/* "an optimizer", for messages. */
static const char *tp__kind_with_article(tp_plugin_kind kind)
{
    return kind == TP_PLUGIN_OPTIMIZER  ? "an optimizer"
           : kind == TP_PLUGIN_SCHEDULE ? "a schedule"
                                        : "a data selection";
}

/* ---------------------------------------------------------------------------------------- */
/* Problems */

typedef struct tp__load {
    const char *path;
    tp__plugin_problem_fn on_problem;
    void *ud;
    int code;          /* the first problem's code; 0 while there is none */
    uint32_t problems; /* how many were found */
} tp__load;

/* Report a problem: "path: " followed by the formatted text. */
static void tp__problem(tp__load *ld, int code, const char *fmt, ...) TP_PRINTF(3, 4);

static void tp__problem(tp__load *ld, int code, const char *fmt, ...)
{
    if (ld->code == 0)
        ld->code = code;
    ld->problems++;
    if (ld->on_problem == NULL)
        return;
    char msg[TP__PLUGIN_MSG_MAX];
    int n = snprintf(msg, sizeof msg, "%s: ", ld->path);
    if (n < 0 || (size_t)n >= sizeof msg)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    ld->on_problem(code, msg, ld->ud);
}

/* Quote an untrusted string for a message: at most `max` bytes of it, non-printable bytes as
 * \xNN, "..." when it goes on. */
static const char *tp__quote(char *buf, size_t cap, const char *s, size_t max)
{
    size_t o = 0;
    size_t i = 0;
    buf[o++] = '"';
    for (; s[i] != '\0' && i < max && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    }
    if (s[i] != '\0' && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* 1 when s is 1..TP__PLUGIN_NAME_MAX characters of [a-z0-9_] (plus '.' and '-' for ids). */
static int tp__valid_name(const char *s, int is_id)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n >= TP__PLUGIN_NAME_MAX)
            return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              (is_id && (c == '.' || c == '-'))))
            return 0;
    }
    return n > 0;
}

/* A host copy of a plugin's text, cut at TP__PLUGIN_TEXT_MAX bytes; "" for NULL. */
static char *tp__copy_text(const char *s)
{
    if (s == NULL)
        return strdup("");
    return strndup(s, TP__PLUGIN_TEXT_MAX);
}

/* ---------------------------------------------------------------------------------------- */
/* Checking one descriptor */

/* Check the hyperparameter declarations of descriptor `d` (the host's copy of it) and copy
 * them into p. `where` is "tp_plugin_entry(i) 'id'". Returns TP_ENOMEM or 0. */
static int tp__load_hparams(tp__load *ld, const char *where, const tp__abi_version *abi,
                            const tp_plugin_desc *d, tp_plugin *p)
{
    char q[96];
    uint32_t num = d->num_hparams;
    if (num == 0)
        return 0;
    if (num > TP__PLUGIN_MAX_HPARAMS) {
        tp__problem(ld, TP_EPLUGIN, "%s: num_hparams: %u is more than the %d a plugin may declare",
                    where, num, TP__PLUGIN_MAX_HPARAMS);
        return 0;
    }
    if (d->hparams == NULL) {
        tp__problem(ld, TP_EPLUGIN, "%s: hparams: is NULL, but num_hparams is %u", where, num);
        return 0;
    }

    /* The array stride is hparams[0].struct_size: a plugin built against a later minor has
     * bigger elements, and the host must step over the fields it does not know. */
    const char *base = (const char *)d->hparams;
    uint32_t stride;
    memcpy(&stride, base, sizeof stride);
    if (stride < abi->hparam_size) {
        tp__problem(ld, TP_EABI,
                    "%s: hparams[0].struct_size: %u bytes, smaller than the %zu of an SDK %u.%u "
                    "tp_hparam_decl: fill it with TP_STRUCT_INIT(&decl, tp_hparam_decl) or "
                    "sizeof(tp_hparam_decl)",
                    where, stride, abi->hparam_size, TP_SDK_VERSION_MAJOR_OF(abi->version),
                    TP_SDK_VERSION_MINOR_OF(abi->version));
        return 0;
    }
    if (stride > TP__PLUGIN_MAX_HSTRIDE) {
        tp__problem(ld, TP_EABI,
                    "%s: hparams[0].struct_size: %u bytes is not a tp_hparam_decl size (more than "
                    "%d): fill it with TP_STRUCT_INIT(&decl, tp_hparam_decl)",
                    where, stride, TP__PLUGIN_MAX_HSTRIDE);
        return 0;
    }
    for (uint32_t j = 1; j < num; j++) {
        uint32_t sz;
        memcpy(&sz, base + (size_t)j * stride, sizeof sz);
        if (sz != stride) {
            tp__problem(ld, TP_EABI,
                        "%s: hparams[%u].struct_size: %u, but hparams[0].struct_size is %u: the "
                        "array stride is hparams[0].struct_size, so every element must have it",
                        where, j, sz, stride);
            return 0;
        }
    }

    tp_hparam_info *infos = calloc(num, sizeof *infos);
    if (infos == NULL)
        return TP_ENOMEM;
    p->hparams = infos;
    p->num_hparams = num;

    size_t n = stride < abi->hparam_size ? stride : abi->hparam_size;
    for (uint32_t j = 0; j < num; j++) {
        tp_hparam_decl h;
        memset(&h, 0, sizeof h);
        memcpy(&h, base + (size_t)j * stride, n);
        tp_hparam_info *info = &infos[j];

        char hw[256];
        snprintf(hw, sizeof hw, "%s: hparams[%u]", where, j);
        if (TP_SDK_VERSION_MAJOR_OF(h.sdk_version) != TP_SDK_VERSION_MAJOR) {
            tp__problem(
                ld, TP_EABI,
                "%s.sdk_version: %u.%u, but the descriptor is SDK %u.%u: fill it with "
                "TP_STRUCT_INIT(&decl, tp_hparam_decl)",
                hw, TP_SDK_VERSION_MAJOR_OF(h.sdk_version), TP_SDK_VERSION_MINOR_OF(h.sdk_version),
                TP_SDK_VERSION_MAJOR_OF(d->sdk_version), TP_SDK_VERSION_MINOR_OF(d->sdk_version));
        }
        if (h.name == NULL) {
            tp__problem(ld, TP_EPLUGIN, "%s.name: is NULL: every hyperparameter needs a name", hw);
            continue;
        }
        if (!tp__valid_name(h.name, 0)) {
            tp__problem(ld, TP_EPLUGIN,
                        "%s.name: %s is not a valid name: use 1 to %d characters of [a-z0-9_]", hw,
                        tp__quote(q, sizeof q, h.name, TP__PLUGIN_NAME_MAX + 1),
                        TP__PLUGIN_NAME_MAX);
            continue;
        }
        info->name = strdup(h.name);
        info->help = tp__copy_text(h.help);
        if (info->name == NULL || info->help == NULL)
            return TP_ENOMEM;
        info->type = h.type;
        info->default_value = h.default_value;
        info->min_value = h.min_value;
        info->max_value = h.max_value;

        snprintf(hw, sizeof hw, "%s: hparams[%u] '%s'", where, j, h.name);
        for (uint32_t k = 0; k < j; k++) {
            if (infos[k].name != NULL && strcmp(infos[k].name, h.name) == 0) {
                tp__problem(ld, TP_EPLUGIN,
                            "%s: declared twice (also hparams[%u]): names are unique within a "
                            "plugin",
                            hw, k);
                break;
            }
        }
        if (h.type != TP_HPARAM_FLOAT && h.type != TP_HPARAM_INT)
            tp__problem(ld, TP_EPLUGIN,
                        "%s: type: %d is not a hyperparameter type (%d float, %d int)", hw,
                        (int)h.type, TP_HPARAM_FLOAT, TP_HPARAM_INT);
        if (isnan(h.min_value) || isnan(h.max_value)) {
            tp__problem(ld, TP_EPLUGIN, "%s: %s: is NaN: give a number (it may be +-INFINITY)", hw,
                        isnan(h.min_value) ? "min_value" : "max_value");
            continue;
        }
        if (h.min_value > h.max_value) {
            tp__problem(ld, TP_EPLUGIN,
                        "%s: min_value %g is greater than max_value %g: the range is inverted", hw,
                        h.min_value, h.max_value);
            continue;
        }
        if (!isfinite(h.default_value) || h.default_value < h.min_value ||
            h.default_value > h.max_value) {
            tp__problem(ld, TP_EPLUGIN,
                        "%s: default_value %g is outside [min_value %g, max_value %g]", hw,
                        h.default_value, h.min_value, h.max_value);
            continue;
        }
        if (h.type == TP_HPARAM_INT && h.default_value != floor(h.default_value))
            tp__problem(ld, TP_EPLUGIN, "%s: default_value %g is not an integer, but type is int",
                        hw, h.default_value);
    }
    return 0;
}

/* Check descriptor `src` (tp_plugin_entry(i)) and fill lib->plugins[i] / lib->impls[i].
 * Returns TP_ENOMEM or 0; problems go to ld. */
static int tp__load_desc(tp__load *ld, tp_plugin_lib *lib, uint32_t i, const tp_plugin_desc *src)
{
    tp_plugin *p = &lib->plugins[i];
    struct tp__plugin_impl *im = &lib->impls[i];
    p->impl = im;
    p->index = i;
    p->path = lib->path;

    char where[128];
    char q[96];
    snprintf(where, sizeof where, "%s(%u)", TP_PLUGIN_ENTRY_SYMBOL, i);

    /* The two header fields every version has, read before anything else. */
    uint32_t hdr[2];
    memcpy(hdr, src, sizeof hdr);
    uint32_t size = hdr[0];
    uint32_t version = hdr[1];
    uint32_t major = TP_SDK_VERSION_MAJOR_OF(version);
    uint32_t minor = TP_SDK_VERSION_MINOR_OF(version);
    p->sdk_version = version;
    if (major != TP_SDK_VERSION_MAJOR) {
        tp__problem(ld, TP_EABI,
                    "%s: sdk_version: built against SDK %u.%u, this host speaks %d.x: rebuild "
                    "against the SDK %d.%d header (trainperf.h)",
                    where, major, minor, TP_SDK_VERSION_MAJOR, TP_SDK_VERSION_MAJOR,
                    TP_SDK_VERSION_MINOR);
        return 0;
    }
    if (minor > TP_SDK_VERSION_MINOR) {
        tp__problem(ld, TP_EABI,
                    "%s: sdk_version: built against SDK %u.%u, newer than this host's %d.%d: "
                    "rebuild against the SDK %d.%d header (trainperf.h) or update trainperf",
                    where, major, minor, TP_SDK_VERSION_MAJOR, TP_SDK_VERSION_MINOR,
                    TP_SDK_VERSION_MAJOR, TP_SDK_VERSION_MINOR);
        return 0;
    }
    const tp__abi_version *abi = tp__abi_lookup(version);
    if (abi == NULL) {
        tp__problem(ld, TP_EABI, "%s: sdk_version: %u.%u has no ABI table in this host", where,
                    major, minor);
        return 0;
    }
    im->abi = abi;
    if (size < abi->desc_size) {
        tp__problem(ld, TP_EABI,
                    "%s: struct_size: %u bytes, smaller than the %zu of an SDK %u.%u "
                    "tp_plugin_desc: set it with TP_STRUCT_INIT(&desc, tp_plugin_desc) or "
                    "sizeof(tp_plugin_desc)",
                    where, size, abi->desc_size, major, minor);
        return 0;
    }

    /* Read what the plugin's version has; fields a later version appended are absent. */
    tp_plugin_desc d;
    memset(&d, 0, sizeof d);
    memcpy(&d, src, abi->desc_size);

    if (d.id == NULL) {
        tp__problem(ld, TP_EPLUGIN, "%s: id: is NULL: every plugin needs a stable id", where);
    } else if (!tp__valid_name(d.id, 1)) {
        tp__problem(ld, TP_EPLUGIN,
                    "%s: id: %s is not a valid id: use 1 to %d characters of [a-z0-9_.-]", where,
                    tp__quote(q, sizeof q, d.id, TP__PLUGIN_NAME_MAX + 1), TP__PLUGIN_NAME_MAX);
    } else {
        p->id = strdup(d.id);
        if (p->id == NULL)
            return TP_ENOMEM;
        snprintf(where, sizeof where, "%s(%u) '%s'", TP_PLUGIN_ENTRY_SYMBOL, i, d.id);
        for (uint32_t k = 0; k < i; k++) {
            if (lib->plugins[k].id != NULL && strcmp(lib->plugins[k].id, d.id) == 0) {
                tp__problem(ld, TP_EPLUGIN,
                            "%s: id: also the id of %s(%u): plugin ids must be unique", where,
                            TP_PLUGIN_ENTRY_SYMBOL, k);
                break;
            }
        }
    }
    p->description = tp__copy_text(d.description);
    if (p->description == NULL)
        return TP_ENOMEM;

    int kind = (int)d.kind;
    p->kind = d.kind;
    if (kind != TP_PLUGIN_OPTIMIZER && kind != TP_PLUGIN_SCHEDULE &&
        kind != TP_PLUGIN_DATA_SELECTION) {
        tp__problem(ld, TP_EABI,
                    "%s: kind: %d is not a plugin kind (%d optimizer, %d schedule, %d data "
                    "selection)",
                    where, kind, TP_PLUGIN_OPTIMIZER, TP_PLUGIN_SCHEDULE, TP_PLUGIN_DATA_SELECTION);
    } else {
        for (int f = 0; f < TP_PLUGIN_FN_COUNT; f++) {
            const tp__abi_sig *sig = &abi->sigs[f];
            if (sig->rtype == NULL || sig->offset + sizeof im->fn[f] > abi->desc_size)
                continue; /* not in this version */
            memcpy(&im->fn[f], (const char *)&d + sig->offset, sizeof im->fn[f]);
            tp__abi_use use = tp__abi_use_of(d.kind, (tp_plugin_fn)f);
            if (use == TP__ABI_REQUIRED && im->fn[f] == NULL)
                tp__problem(ld, TP_EABI, "%s: %s: required for %s, is NULL", where, tp__fn_names[f],
                            tp__kind_with_article(d.kind));
            if (use == TP__ABI_FORBIDDEN && im->fn[f] != NULL)
                tp__problem(ld, TP_EABI,
                            "%s: %s: set, but %s has no %s: leave it NULL (or make it a "
                            "separate plugin of the right kind)",
                            where, tp__fn_names[f], tp__kind_with_article(d.kind), tp__fn_names[f]);
            if (im->fn[f] == NULL)
                continue;
            ffi_status st =
                ffi_prep_cif(&im->cif[f], FFI_DEFAULT_ABI, sig->nargs, sig->rtype, sig->args);
            if (st != FFI_OK)
                tp__problem(ld, TP_EABI, "%s: %s: libffi cannot prepare the call (status %d)",
                            where, tp__fn_names[f], (int)st);
        }
    }

    return tp__load_hparams(ld, where, abi, &d, p);
}

/* ---------------------------------------------------------------------------------------- */
/* Libraries */

#if defined(__x86_64__)
#define TP__ELF_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define TP__ELF_MACHINE EM_AARCH64
#elif defined(__i386__)
#define TP__ELF_MACHINE EM_386
#elif defined(__riscv)
#define TP__ELF_MACHINE EM_RISCV
#elif defined(__powerpc64__)
#define TP__ELF_MACHINE EM_PPC64
#endif

/* Why dlopen may have refused `path`, from its ELF header, as " (it is ...)"; "" when the
 * header looks right. dlerror alone is unhelpful for some cases (glibc reports a .so built for
 * another architecture as "No such file or directory"). */
static const char *tp__elf_diagnosis(const char *path, char *buf, size_t cap)
{
    unsigned char h[64];
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return buf;
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    if (n < 20 || memcmp(h, ELFMAG, SELFMAG) != 0) {
        snprintf(buf, cap, " (it is not an ELF file)");
        return buf;
    }
    const unsigned char cls = sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32;
    const unsigned char data = TP__ELF_LITTLE_ENDIAN ? ELFDATA2LSB : ELFDATA2MSB;
    if (h[EI_CLASS] != cls || h[EI_DATA] != data) {
        snprintf(buf, cap, " (it is a %s-bit %s-endian ELF file, this host is %s-bit %s-endian)",
                 h[EI_CLASS] == ELFCLASS64 ? "64" : "32",
                 h[EI_DATA] == ELFDATA2MSB ? "big" : "little", cls == ELFCLASS64 ? "64" : "32",
                 TP__ELF_LITTLE_ENDIAN ? "little" : "big");
        return buf;
    }
    uint16_t type, machine; /* e_type and e_machine, at the same place in both classes */
    memcpy(&type, h + 16, sizeof type);
    memcpy(&machine, h + 18, sizeof machine);
#ifdef TP__ELF_MACHINE
    if (machine != TP__ELF_MACHINE) {
        snprintf(buf, cap,
                 " (it is built for another architecture: ELF machine %u, this host's is %u)",
                 machine, (unsigned)TP__ELF_MACHINE);
        return buf;
    }
#endif
    if (type == ET_EXEC)
        snprintf(buf, cap, " (it is an executable)");
    else if (type == ET_REL)
        snprintf(buf, cap, " (it is an object file, not linked)");
    return buf;
}

void tp_plugin_lib_close(tp_plugin_lib *lib)
{
    if (lib == NULL)
        return;
    for (uint32_t i = 0; lib->plugins != NULL && i < lib->count; i++) {
        tp_plugin *p = &lib->plugins[i];
        for (uint32_t j = 0; p->hparams != NULL && j < p->num_hparams; j++) {
            free((void *)p->hparams[j].name);
            free((void *)p->hparams[j].help);
        }
        free((void *)p->hparams);
        free((void *)p->id);
        free((void *)p->description);
    }
    free(lib->plugins);
    free(lib->impls);
    if (lib->handle != NULL)
        dlclose(lib->handle);
    free(lib->path);
    free(lib);
}

int tp__plugin_lib_load(const char *path, tp__plugin_problem_fn on_problem, void *ud,
                        tp_plugin_lib **out)
{
    tp__load ld = {path != NULL ? path : "(null)", on_problem, ud, 0, 0};
    tp_plugin_lib *lib = NULL;
    char *dlpath = NULL;
    const tp_plugin_desc **descs = NULL;
    *out = NULL;

    if (path == NULL || *path == '\0') {
        tp__problem(&ld, TP_EINVAL, "no plugin path given");
        goto error;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        tp__problem(&ld, e == ENOENT ? TP_ENOENT : TP_EIO, "cannot open: %s", strerror(e));
        goto error;
    }
    if (S_ISDIR(st.st_mode)) {
        tp__problem(&ld, TP_EINVAL, "is a directory, not a plugin .so");
        goto error;
    }

    lib = calloc(1, sizeof *lib);
    descs = calloc(TP__PLUGIN_MAX_DESCS, sizeof *descs);
    /* dlopen searches the library path for a name without a slash: load the file named. */
    dlpath = malloc(strlen(path) + 3);
    if (lib == NULL || descs == NULL || dlpath == NULL || (lib->path = strdup(path)) == NULL)
        goto nomem;
    strcpy(dlpath, strchr(path, '/') != NULL ? "" : "./");
    strcat(dlpath, path);

    dlerror();
    lib->handle = dlopen(dlpath, RTLD_NOW | RTLD_LOCAL);
    if (lib->handle == NULL) {
        const char *e = dlerror();
        char why[160];
        tp__problem(&ld, TP_EABI,
                    "dlopen: %s%s: not a shared object this machine can load; build it as a "
                    "plugin (a MODULE library) against the trainperf SDK, on this machine",
                    e != NULL ? e : "unknown error", tp__elf_diagnosis(path, why, sizeof why));
        goto error;
    }
    dlerror();
    void *sym = dlsym(lib->handle, TP_PLUGIN_ENTRY_SYMBOL);
    if (sym == NULL) {
        tp__problem(&ld, TP_EABI,
                    "%s: symbol not found: a plugin must export it (define it with "
                    "TP_PLUGIN_ENTRY(index), which gives it default visibility)",
                    TP_PLUGIN_ENTRY_SYMBOL);
        goto error;
    }
    tp_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry);

    uint32_t n = 0;
    for (;; n++) {
        const tp_plugin_desc *d = entry(n);
        if (d == NULL)
            break;
        if (n == TP__PLUGIN_MAX_DESCS) {
            tp__problem(&ld, TP_EPLUGIN,
                        "%s(%u): not NULL: a .so may hold at most %d plugins, and %s must "
                        "return NULL past the last one",
                        TP_PLUGIN_ENTRY_SYMBOL, n, TP__PLUGIN_MAX_DESCS, TP_PLUGIN_ENTRY_SYMBOL);
            goto error;
        }
        descs[n] = d;
    }
    if (n == 0) {
        tp__problem(&ld, TP_EPLUGIN, "%s(0): returned NULL: the library declares no plugin",
                    TP_PLUGIN_ENTRY_SYMBOL);
        goto error;
    }

    lib->plugins = calloc(n, sizeof *lib->plugins);
    lib->impls = calloc(n, sizeof *lib->impls);
    if (lib->plugins == NULL || lib->impls == NULL)
        goto nomem;
    lib->count = n;
    for (uint32_t i = 0; i < n; i++) {
        if (tp__load_desc(&ld, lib, i, descs[i]) != 0)
            goto nomem;
    }
    if (ld.code != 0)
        goto error;

    free(descs);
    free(dlpath);
    *out = lib;
    return 0;

nomem:
    tp__problem(&ld, TP_ENOMEM, "out of memory while loading");
error:
    free(descs);
    free(dlpath);
    tp_plugin_lib_close(lib);
    return ld.code != 0 ? ld.code : TP_EPLUGIN;
}

/* Keeps the first problem's message for tp_plugin_lib_open. */
typedef struct tp__first_problem {
    char *buf;
    size_t len;
    uint32_t count;
} tp__first_problem;

static void tp__keep_first(int code, const char *msg, void *ud)
{
    tp__first_problem *fp = ud;
    (void)code;
    if (fp->count++ == 0 && fp->buf != NULL && fp->len > 0)
        snprintf(fp->buf, fp->len, "%s", msg);
}

int tp_plugin_lib_open(const char *path, tp_plugin_lib **out, char *err, size_t errlen)
{
    tp__first_problem fp = {err, errlen, 0};
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    int rc = tp__plugin_lib_load(path, tp__keep_first, &fp, out);
    if (rc != 0 && fp.count > 1 && err != NULL && errlen > 0) {
        size_t used = strlen(err);
        snprintf(err + used, errlen - used,
                 " (and %u more problems: `trainperf check` lists them all)", fp.count - 1);
    }
    return rc;
}

uint32_t tp_plugin_lib_count(const tp_plugin_lib *lib)
{
    return lib != NULL ? lib->count : 0;
}

const tp_plugin *tp_plugin_lib_get(const tp_plugin_lib *lib, uint32_t i)
{
    return lib != NULL && i < lib->count ? &lib->plugins[i] : NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Sets */

int tp_plugin_set_init(tp_plugin_set **out)
{
    *out = calloc(1, sizeof **out);
    return *out != NULL ? 0 : TP_ENOMEM;
}

void tp_plugin_set_free(tp_plugin_set *set)
{
    if (set == NULL)
        return;
    for (uint32_t i = 0; i < set->nlibs; i++)
        tp_plugin_lib_close(set->libs[i]);
    free(set->libs);
    free(set);
}

int tp_plugin_set_add_file(tp_plugin_set *set, const char *path, char *err, size_t errlen)
{
    tp_plugin_lib *lib = NULL;
    int rc = tp_plugin_lib_open(path, &lib, err, errlen);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < lib->count; i++) {
        const tp_plugin *p = &lib->plugins[i];
        const tp_plugin *other = tp_plugin_set_find(set, p->id, 0);
        if (other != NULL) {
            tp__errf(err, errlen,
                     "%s: %s(%u) '%s': id: already loaded from %s (%s(%u)): plugin ids must be "
                     "unique across all loaded plugins; rename one",
                     path, TP_PLUGIN_ENTRY_SYMBOL, i, p->id, other->path, TP_PLUGIN_ENTRY_SYMBOL,
                     other->index);
            rc = TP_EPLUGIN;
            goto error;
        }
    }
    if (set->nlibs == set->cap) {
        uint32_t cap = set->cap != 0 ? 2 * set->cap : 8;
        tp_plugin_lib **libs = realloc(set->libs, cap * sizeof *libs);
        if (libs == NULL) {
            tp__errf(err, errlen, "%s: out of memory", path);
            rc = TP_ENOMEM;
            goto error;
        }
        set->libs = libs;
        set->cap = cap;
    }
    set->libs[set->nlibs++] = lib;
    return 0;

error:
    tp_plugin_lib_close(lib);
    return rc;
}

static int tp__cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int tp_plugin_set_add_dir(tp_plugin_set *set, const char *dir,
                          void (*on_error)(const char *path, const char *msg, void *ud), void *ud,
                          char *err, size_t errlen)
{
    char **names = NULL;
    size_t count = 0;
    size_t cap = 0;
    char *path = NULL;
    int refused = 0;
    int rc = 0;

    DIR *d = opendir(dir);
    if (d == NULL) {
        int e = errno;
        tp__errf(err, errlen, "%s: cannot read the plugin folder: %s", dir, strerror(e));
        return e == ENOENT ? TP_ENOENT : TP_EIO;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                tp__errf(err, errlen, "%s: cannot read the plugin folder: %s", dir,
                         strerror(errno));
                rc = TP_EIO;
                goto done;
            }
            break;
        }
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 4 || strcmp(de->d_name + len - 3, ".so") != 0)
            continue;
        if (count == cap) {
            size_t ncap = cap != 0 ? 2 * cap : 16;
            char **n = realloc(names, ncap * sizeof *n);
            if (n == NULL)
                goto nomem;
            names = n;
            cap = ncap;
        }
        if ((names[count] = strdup(de->d_name)) == NULL)
            goto nomem;
        count++;
    }
    if (count > 0)
        qsort(names, count, sizeof *names, tp__cmp_names);

    for (size_t i = 0; i < count; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *np = realloc(path, len);
        if (np == NULL)
            goto nomem;
        path = np;
        snprintf(path, len, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
            continue; /* a folder or a device named *.so is not a plugin */
        char msg[TP__PLUGIN_MSG_MAX + 128];
        if (tp_plugin_set_add_file(set, path, msg, sizeof msg) != 0) {
            refused++;
            if (on_error != NULL)
                on_error(path, msg, ud);
        }
    }
    rc = refused;
    goto done;

nomem:
    tp__errf(err, errlen, "%s: out of memory while scanning the plugin folder", dir);
    rc = TP_ENOMEM;
done:
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    free(path);
    closedir(d);
    return rc;
}

const tp_plugin *tp_plugin_set_find(const tp_plugin_set *set, const char *id, tp_plugin_kind kind)
{
    if (set == NULL || id == NULL)
        return NULL;
    for (uint32_t i = 0; i < set->nlibs; i++) {
        const tp_plugin_lib *lib = set->libs[i];
        for (uint32_t j = 0; j < lib->count; j++) {
            const tp_plugin *p = &lib->plugins[j];
            if (strcmp(p->id, id) == 0 && (kind == 0 || p->kind == kind))
                return p;
        }
    }
    return NULL;
}

uint32_t tp_plugin_set_count(const tp_plugin_set *set)
{
    uint32_t n = 0;
    for (uint32_t i = 0; set != NULL && i < set->nlibs; i++)
        n += set->libs[i]->count;
    return n;
}

const tp_plugin *tp_plugin_set_get(const tp_plugin_set *set, uint32_t i)
{
    for (uint32_t k = 0; set != NULL && k < set->nlibs; k++) {
        if (i < set->libs[k]->count)
            return &set->libs[k]->plugins[i];
        i -= set->libs[k]->count;
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Calls */

int tp_plugin_has(const tp_plugin *p, tp_plugin_fn fn)
{
    return p != NULL && p->impl != NULL && (unsigned)fn < TP_PLUGIN_FN_COUNT &&
           p->impl->fn[fn] != NULL;
}

/* Before a call: the host owns `err` (a whole tp_error, whatever its struct_size says), so the
 * message is cleared in full and the header set to the host's. */
static inline void tp__err_begin(tp_error *err)
{
    err->struct_size = (uint32_t)sizeof *err;
    err->sdk_version = TP_SDK_VERSION;
    memset(err->message, 0, sizeof err->message);
}

/* After a call: whatever the plugin wrote, the message is a terminated string. */
static inline void tp__err_end(tp_error *err)
{
    err->struct_size = (uint32_t)sizeof *err;
    err->sdk_version = TP_SDK_VERSION;
    err->message[sizeof err->message - 1] = '\0';
}

/* Call entry point fn of p with the argument addresses `args`; returns what it returned, or
 * TP_ENOTSUP when the plugin does not have it. */
static inline int tp__call(const tp_plugin *p, tp_plugin_fn fn, void **args, tp_error *err)
{
    tp__err_begin(err);
    if (p == NULL || p->impl == NULL)
        return TP_EINVAL;
    struct tp__plugin_impl *im = p->impl;
    if (im->fn[fn] == NULL)
        return TP_ENOTSUP;
    ffi_arg rc = 0;
    ffi_call(&im->cif[fn], im->fn[fn], &rc, args);
    tp__err_end(err);
    return (int)(int32_t)rc;
}

/* Each call below gives a plugin a scratch tp_error when the caller passes none: a plugin may
 * always write its message. The argument arrays hold the addresses of the parameters, in the
 * order of the entry point's signature (plugin_abi.c); nothing is allocated per call. */

int tp_plugin_call_get_batch_size(const tp_plugin *p, const char *workload, uint32_t hint,
                                  uint32_t *batch_size, tp_error *err)
{
    tp_error scratch;
    if (err == NULL)
        err = &scratch;
    void *args[] = {&workload, &hint, &batch_size, &err};
    return tp__call(p, TP_PLUGIN_FN_GET_BATCH_SIZE, args, err);
}

int tp_plugin_call_init(const tp_plugin *p, const tp_host *host, tp_ctx *ctx, void **state,
                        tp_error *err)
{
    tp_error scratch;
    if (err == NULL)
        err = &scratch;
    void *args[] = {&host, &ctx, &state, &err};
    return tp__call(p, TP_PLUGIN_FN_INIT, args, err);
}

int tp_plugin_call_update(const tp_plugin *p, void *state, const tp_host *host, tp_ctx *ctx,
                          const tp_update_args *args, tp_error *err)
{
    tp_error scratch;
    if (err == NULL)
        err = &scratch;
    void *a[] = {&state, &host, &ctx, &args, &err};
    return tp__call(p, TP_PLUGIN_FN_UPDATE, a, err);
}

int tp_plugin_call_prepare_for_eval(const tp_plugin *p, void *state, const tp_host *host,
                                    tp_ctx *ctx, tp_error *err)
{
    tp_error scratch;
    if (err == NULL)
        err = &scratch;
    void *args[] = {&state, &host, &ctx, &err};
    return tp__call(p, TP_PLUGIN_FN_PREPARE_FOR_EVAL, args, err);
}

int tp_plugin_call_precondition(const tp_plugin *p, void *state, const tp_host *host, tp_ctx *ctx,
                                const float *v, float *out, tp_error *err)
{
    tp_error scratch;
    if (err == NULL)
        err = &scratch;
    void *args[] = {&state, &host, &ctx, &v, &out, &err};
    return tp__call(p, TP_PLUGIN_FN_PRECONDITION, args, err);
}

void tp_plugin_call_destroy(const tp_plugin *p, void *state, const tp_host *host, tp_ctx *ctx)
{
    if (!tp_plugin_has(p, TP_PLUGIN_FN_DESTROY))
        return;
    void *args[] = {&state, &host, &ctx};
    ffi_call(&p->impl->cif[TP_PLUGIN_FN_DESTROY], p->impl->fn[TP_PLUGIN_FN_DESTROY], NULL, args);
}

int tp_plugin_call_lr_factor(const tp_plugin *p, void *state, const tp_host *host, tp_ctx *ctx,
                             uint64_t step, double *factor, tp_error *err)
{
    tp_error scratch;
    if (err == NULL)
        err = &scratch;
    void *args[] = {&state, &host, &ctx, &step, &factor, &err};
    return tp__call(p, TP_PLUGIN_FN_LR_FACTOR, args, err);
}

int tp_plugin_call_select_batch(const tp_plugin *p, void *state, const tp_host *host, tp_ctx *ctx,
                                tp_batch *batch, tp_error *err)
{
    tp_error scratch;
    if (err == NULL)
        err = &scratch;
    void *args[] = {&state, &host, &ctx, &batch, &err};
    return tp__call(p, TP_PLUGIN_FN_SELECT_BATCH, args, err);
}
