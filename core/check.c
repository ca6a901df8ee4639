/*
 * check.c - the report of `trainperf check FILE` (check.h): load the .so with the plugin loader
 * and print either every descriptor it holds, with its entry points and a table of its
 * hyperparameters, or every problem the loader found.
 *
 * Not here: loading and checking (plugin.c), the sandboxed smoke trial and the worker's command
 * line.
 */
#include "core/check.h"

#include <string.h>

#include "core/plugin.h"
#include "core/plugin_abi.h"

#define TP__CHECK_NUM_MAX      32 /* bytes of one formatted number */
#define TP__CHECK_MAX_PROBLEMS 64 /* problems printed; the rest are counted */

typedef struct tp__check_problems {
    FILE *out;
    uint32_t count;
} tp__check_problems;

static void tp__check_problem(int code, const char *msg, void *ud)
{
    tp__check_problems *cp = ud;
    (void)code;
    if (cp->count++ < TP__CHECK_MAX_PROBLEMS)
        fprintf(cp->out, "problem: %s\n", msg);
}

/* A hyperparameter value as the table shows it: integers without a fraction. */
static void tp__check_value(char *buf, size_t cap, tp_hparam_type type, double v)
{
    if (type == TP_HPARAM_INT && v > -1e15 && v < 1e15)
        snprintf(buf, cap, "%.0f", v);
    else
        snprintf(buf, cap, "%.6g", v);
}

static int tp__check_max(int a, size_t b)
{
    return (size_t)a > b ? a : (int)b;
}

/* One row of the table, without trailing blanks when there is no help. */
static void tp__check_row(FILE *out, int wname, int wtype, int wdef, int wmin, int wmax,
                          const char *name, const char *type, const char *def, const char *lo,
                          const char *hi, const char *help)
{
    if (help[0] != '\0')
        fprintf(out, "    %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", wname, name, wtype, type, wdef, def,
                wmin, lo, wmax, hi, help);
    else
        fprintf(out, "    %-*s  %-*s  %-*s  %-*s  %s\n", wname, name, wtype, type, wdef, def, wmin,
                lo, hi);
}

static void tp__check_hparams(const tp_plugin *p, FILE *out)
{
    if (p->num_hparams == 0) {
        fprintf(out, "  hyperparameters: none\n");
        return;
    }
    /* Column widths from the longest entry of each column. */
    int wname = 4, wtype = 4, wdef = 7, wmin = 3, wmax = 3;
    char num[TP__CHECK_NUM_MAX];
    for (uint32_t j = 0; j < p->num_hparams; j++) {
        const tp_hparam_info *h = &p->hparams[j];
        wname = tp__check_max(wname, strlen(h->name));
        wtype = tp__check_max(wtype, strlen(h->type == TP_HPARAM_INT ? "int" : "float"));
        tp__check_value(num, sizeof num, h->type, h->default_value);
        wdef = tp__check_max(wdef, strlen(num));
        tp__check_value(num, sizeof num, h->type, h->min_value);
        wmin = tp__check_max(wmin, strlen(num));
        tp__check_value(num, sizeof num, h->type, h->max_value);
        wmax = tp__check_max(wmax, strlen(num));
    }
    fprintf(out, "  hyperparameters:\n");
    tp__check_row(out, wname, wtype, wdef, wmin, wmax, "name", "type", "default", "min", "max",
                  "help");
    for (uint32_t j = 0; j < p->num_hparams; j++) {
        const tp_hparam_info *h = &p->hparams[j];
        char def[TP__CHECK_NUM_MAX], lo[TP__CHECK_NUM_MAX], hi[TP__CHECK_NUM_MAX];
        tp__check_value(def, sizeof def, h->type, h->default_value);
        tp__check_value(lo, sizeof lo, h->type, h->min_value);
        tp__check_value(hi, sizeof hi, h->type, h->max_value);
        tp__check_row(out, wname, wtype, wdef, wmin, wmax, h->name,
                      h->type == TP_HPARAM_INT ? "int" : "float", def, lo, hi, h->help);
    }
}

static void tp__check_plugin(const tp_plugin *p, FILE *out)
{
    fprintf(out, "%s(%u) '%s': %s, SDK %u.%u\n", TP_PLUGIN_ENTRY_SYMBOL, p->index, p->id,
            tp_plugin_kind_name(p->kind), TP_SDK_VERSION_MAJOR_OF(p->sdk_version),
            TP_SDK_VERSION_MINOR_OF(p->sdk_version));
    if (p->description[0] != '\0')
        fprintf(out, "  description: %s\n", p->description);
    fprintf(out, "  entry points:");
    for (int f = 0; f < TP_PLUGIN_FN_COUNT; f++) {
        if (tp_plugin_has(p, (tp_plugin_fn)f))
            fprintf(out, " %s", tp_plugin_fn_name((tp_plugin_fn)f));
    }
    fprintf(out, "\n  optional, absent:");
    int any = 0;
    for (int f = 0; f < TP_PLUGIN_FN_COUNT; f++) {
        if (tp__abi_use_of(p->kind, (tp_plugin_fn)f) == TP__ABI_OPTIONAL &&
            !tp_plugin_has(p, (tp_plugin_fn)f)) {
            fprintf(out, " %s", tp_plugin_fn_name((tp_plugin_fn)f));
            any = 1;
        }
    }
    fprintf(out, "%s\n", any ? "" : " none");
    tp__check_hparams(p, out);
}

int tp_check_plugin_file(const char *path, FILE *out)
{
    tp_plugin_lib *lib = NULL;
    fprintf(out, "checking %s\n", path != NULL ? path : "(null)");
    tp__check_problems cp = {out, 0};
    int rc = tp__plugin_lib_load(path, tp__check_problem, &cp, &lib);
    if (rc != 0) {
        if (cp.count > TP__CHECK_MAX_PROBLEMS)
            fprintf(out, "(%u more problems not shown)\n", cp.count - TP__CHECK_MAX_PROBLEMS);
        fprintf(out, "REFUSED (%s: %s): %u problem%s\n", tp_err_name(rc), tp_strerror(rc), cp.count,
                cp.count == 1 ? "" : "s");
        return rc;
    }
    uint32_t n = tp_plugin_lib_count(lib);
    for (uint32_t i = 0; i < n; i++)
        tp__check_plugin(tp_plugin_lib_get(lib, i), out);
    fprintf(out, "OK: %u plugin%s\n", n, n == 1 ? "" : "s");
    tp_plugin_lib_close(lib);
    return 0;
}
