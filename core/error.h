/*
 * error.h - the one helper every core module uses to write an error message into a caller's
 * buffer (STYLE: functions return a negative TP_E... code and describe it in err).
 */
#ifndef TP_CORE_ERROR_H
#define TP_CORE_ERROR_H

#include <stddef.h>

#include <trainperf/trainperf.h> /* TP_PRINTF */

/* printf into err (errlen bytes, always terminated); a NULL or empty buffer is ignored. */
void tp__errf(char *err, size_t errlen, const char *fmt, ...) TP_PRINTF(3, 4);

#endif /* TP_CORE_ERROR_H */
