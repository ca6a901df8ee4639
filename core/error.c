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

const char *tp__reason_name(int code)
{
    switch (code) {
#define TP__REASON_NAME(name, value, msg)                                                          \
    case (value):                                                                                  \
        return "TP_" #name;
        TP_REASON_MAP(TP__REASON_NAME)
#undef TP__REASON_NAME
    default:
        return tp_err_name(code);
    }
}

const char *tp__reason_text(int code)
{
    switch (code) {
#define TP__REASON_TEXT(name, value, msg)                                                          \
    case (value):                                                                                  \
        return msg;
        TP_REASON_MAP(TP__REASON_TEXT)
#undef TP__REASON_TEXT
    default:
        return tp_strerror(code);
    }
}
