/*
 * tp_test.c - see tp_test.h.
 */
#define _GNU_SOURCE
#include "tp_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tp_test_tmpdir(char *dir, size_t len, const char *name)
{
    static char asan[1024];
    const char *old = getenv("ASAN_OPTIONS");
    if (!old || !strstr(old, "handle_segv=0")) {
        snprintf(asan, sizeof asan, "%s%shandle_segv=0", old ? old : "", old && *old ? ":" : "");
        setenv("ASAN_OPTIONS", asan, 1);
    }
    if ((size_t)snprintf(dir, len, "/tmp/tp_%s_XXXXXX", name) >= len)
        return -1;
    return mkdtemp(dir) ? 0 : -1;
}

int tp_test_tmpdir_remove(const char *dir)
{
    if (getenv("TP_KEEP_TMP") || !dir[0])
        return 0;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}
