/*
 * fs.c - see fs.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/fs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <trainperf/trainperf.h>

#include "core/error.h"

int tp__fs_mkdir_p(const char *path, char *err, size_t errlen)
{
    char p[PATH_MAX];
    if ((size_t)snprintf(p, sizeof p, "%s", path) >= sizeof p) {
        tp__errf(err, errlen, "%s: path too long", path);
        return TP_EINVAL;
    }
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            tp__errf(err, errlen, "cannot create directory %s: %s", p, strerror(errno));
            return TP_EIO;
        }
        *s = c;
        if (c == '\0')
            return TP_OK;
    }
}
