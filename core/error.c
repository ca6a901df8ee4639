/*
 * error.c - see error.h.
 */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

void tp__errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
