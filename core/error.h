/*
 * error.h - the one helper every core module uses to write an error message into a caller's
 * buffer (STYLE: functions return a negative TP_E... code and describe it in err).
 */
#ifndef TP_CORE_ERROR_H
#define TP_CORE_ERROR_H

#include <stddef.h>

#include <trainperf/trainperf.h> /* TP_PRINTF */

/* Why a trial failed, beyond the SDK's codes: host-side reasons stored in the results'
 * `reason` column. They are not part of the plugin contract, so they live here, not in
 * trainperf.h (whose released versions are frozen). */
#define TP_REASON_MAP(XX)                                                                          \
    XX(ESANDBOX, -101, "sandbox violation: a system call the sandbox denies")                      \
    XX(EEXITED, -102, "the worker exited before reporting how the trial ended")                    \
    XX(ESILENT, -103, "the worker stopped sending events")

enum tp_reason {
#define TP__REASON_ENUM(name, value, msg) TP_##name = (value),
    TP_REASON_MAP(TP__REASON_ENUM)
#undef TP__REASON_ENUM
};

/* The name ("TP_ESANDBOX", "TP_ECRASH", ...) and description of any failure reason: the
 * host-side ones above and the SDK's codes. */
const char *tp__reason_name(int code);
const char *tp__reason_text(int code);

/* printf into err (errlen bytes, always terminated); a NULL or empty buffer is ignored. */
void tp__errf(char *err, size_t errlen, const char *fmt, ...) TP_PRINTF(3, 4);

#endif /* TP_CORE_ERROR_H */
