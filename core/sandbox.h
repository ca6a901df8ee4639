/*
 * sandbox.h - the worker's confinement (issue 4): resource limits, no-new-privileges, death
 * with the host, and a seccomp filter (libseccomp) that lets a training step, the worker's own
 * reporting and teardown run and stops everything else. Also where a trial's hitting a limit is
 * reported: a denied system call, the CPU-time limit, the log-size limit (each as the END event
 * the host expects) and a refused host->alloc (recorded here, reported by the worker).
 *
 * The worker MUST call, in this order, from its main thread:
 *
 *   tp_sandbox_limit   once the budget is known and BEFORE loading data or dlopen()ing plugins,
 *                      so the limits and no-new-privileges cover every line of submission code,
 *                      constructors included;
 *   tp_sandbox_enter   once the workload data is loaded and the plugins are dlopen()ed (the
 *                      last things that open files), and BEFORE the first call into a plugin
 *                      (get_batch_size, init), so every entry point, the timed loop, evals and
 *                      destroy run inside the filter.
 *
 * Known limit: a plugin's ELF constructors run at dlopen(), before the filter. They run with
 * the limits and no-new-privileges already in place, but could open files or start processes.
 * Nothing the worker does moves them after the filter (dlopen needs open and mmap of the file).
 *
 * CI runs as root: RLIMIT_NPROC does not bind root and root may raise its own limits, so the
 * limits are a budget (they turn runaways into clear failures) and the boundary is the filter,
 * which denies setrlimit/prlimit64 writes, plus the host's wall-clock watchdog.
 *
 * The filter (see sandbox.c for each entry and why it is there) allows memory management,
 * futexes and threads (clone with CLONE_THREAD only), clocks and sleeping, signal masks and
 * handlers (except SIGSYS's), write/writev to fds 1, 2 and the event fd only, isatty, reading
 * limits, and exit. Anything else - open/openat, socket and friends, execve, fork/vfork and clone
 * without CLONE_THREAD, ptrace, setrlimit/prlimit64 writes, kill of another process, mount, a
 * foreign syscall ABI, ... - is trapped: the SIGSYS handler writes one END event (status failed,
 * reason TP_ESANDBOX, message "sandbox violation: <name> (<nr>) denied...") to the event fd with
 * a single write(2), a line to stderr, and _exit(1)s. Three calls are refused softly with an
 * errno because libc copes: clone3 (ENOSYS: glibc then creates threads with clone, whose flags
 * the filter can read) and newfstatat/statx (EACCES: they take a path the filter cannot read;
 * stdio then picks a default buffer size).
 *
 * Not here: what a trial does (worker.c), how the host classifies endings (runner.c). A plugin
 * shares the worker's address space: it can write forged events to the event fd or corrupt the
 * worker's memory; the host's decoder and watchdog, not this file, handle a lying worker.
 */
#ifndef TP_CORE_SANDBOX_H
#define TP_CORE_SANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* 1 in AddressSanitizer builds (GCC's __SANITIZE_ADDRESS__, clang's __has_feature), which the
 * sandbox treats differently without relaxing the filter: no RLIMIT_AS (the shadow memory
 * reserves terabytes of address space); the symbolizer loads every module before the filter,
 * so a report raised inside it stays whole; a sandboxed process exits without LeakSanitizer's
 * exit-time check, which stops the world with ptrace, prctl and /proc (leak-check a worker by
 * hand with --no-sandbox). Known limit: GCC's separate UBSan runtime initialises at its first
 * report by reading /proc/self/exe, so a UBSan report inside the filter ends as a violation
 * naming readlink (the trial fails either way; --no-sandbox shows the report). */
#if defined(__SANITIZE_ADDRESS__)
#define TP_SANDBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TP_SANDBOX_ASAN 1
#endif
#endif
#ifndef TP_SANDBOX_ASAN
#define TP_SANDBOX_ASAN 0
#endif

/* Resource limits; 0 leaves a limit as it is. RLIMIT_CORE is always set to 0. */
typedef struct tp_sandbox_limits {
    uint64_t address_space; /* RLIMIT_AS bytes; ignored in AddressSanitizer builds, whose
                               shadow memory reserves terabytes of address space */
    uint64_t cpu_seconds;   /* RLIMIT_CPU soft limit (SIGXCPU, reported as TP_ETIMEOUT); the
                               hard limit, SIGKILL, is 10 s later */
    uint64_t open_files;    /* RLIMIT_NOFILE */
    uint64_t processes;     /* RLIMIT_NPROC headroom: the limit is the machine's current task
                               count plus this (RLIMIT_NPROC counts every thread of the user,
                               so an absolute small number would stop threads on a busy
                               machine; the filter is what forbids new processes) */
    uint64_t file_size;     /* RLIMIT_FSIZE: how far the trial log may grow (SIGXFSZ, reported
                               as TP_EIO) */
    pid_t parent;           /* the host's pid, read at the worker's start: when the parent is no
                               longer it after PR_SET_PDEATHSIG, the host died before the worker
                               could ask to die with it; 0 skips the check */
} tp_sandbox_limits;

#define TP_SANDBOX_DEFAULT_ADDRESS_SPACE ((uint64_t)16 << 30)
#define TP_SANDBOX_DEFAULT_OPEN_FILES    64
#define TP_SANDBOX_DEFAULT_PROCESSES     256
#define TP_SANDBOX_DEFAULT_FILE_SIZE     ((uint64_t)1 << 30)

/* The defaults for a trial: 16 GiB of address space; CPU time of `threads` x (6 x budget + 300)
 * seconds: RLIMIT_CPU sums all threads (idle OpenBLAS threads spin), and the limit stays above
 * the host's default wall-clock limits (at most 5 x budget + 120 s, for the steps clock) so the
 * host's watchdog, not this, ends a slow trial, and this ends a runaway nobody watches; 64 open
 * files; 256 tasks of headroom; a 1 GiB log. `parent` is left 0. */
void tp_sandbox_limits_default(tp_sandbox_limits *l, double budget, int threads);

/* Set the limits, PR_SET_NO_NEW_PRIVS and PR_SET_PDEATHSIG (SIGKILL), and install the SIGXCPU
 * and SIGXFSZ handlers that report on event_fd (-1: stderr only). TP_ESYS with a message when a
 * call fails or the parent already died (the worker should then just end). */
int tp_sandbox_limit(const tp_sandbox_limits *l, int event_fd, char *err, size_t errlen);

/* Install the SIGSYS handler and load the seccomp filter on every thread of the process
 * (SECCOMP_FILTER_FLAG_TSYNC: OpenBLAS's threads exist already). event_fd (>= 3, or -1 for no
 * events) is the one fd besides 1 and 2 the process may write to. Irreversible. TP_ESYS with a
 * message when the kernel refuses the filter. */
int tp_sandbox_enter(int event_fd, char *err, size_t errlen);

/* 1 after a successful tp_sandbox_enter in this process. */
int tp_sandbox_active(void);

/* What the worker last told the host, for a violation report to be a valid END event (its
 * steps may not go back, its eval count must match). Async-signal-safe, cheap: call it
 * before sending each PROGRESS and after sending each EVAL event. */
void tp_sandbox_note_progress(uint64_t steps, uint32_t num_evals);

/* The worker is about to write its own END event. Returns 1 when it may; when a violation
 * report is being written by another thread, waits for it to end the process. After this call a
 * violation (at teardown) writes only to stderr, so the stream still has one END. */
int tp_sandbox_claim_end(void);

/* Record that a memory request was refused (host->alloc failed): `who` (a plugin id) asked for
 * `bytes`. The first refusal is kept; later ones are counted. */
void tp_sandbox_note_oom(const char *who, uint64_t bytes);

/* 0 when no request was refused; else 1 and a sentence for the END message ("plugin adamw ran
 * out of memory: host->alloc(N bytes) was refused (address-space limit 16 GiB, ...)"). */
int tp_sandbox_oom(char *msg, size_t msglen);

/* Parse a memory size "16G", "512M", "4096K", "1073741824" (binary units) into bytes; 0 is
 * allowed and means no limit. TP_EINVAL with a message otherwise. */
int tp_sandbox_parse_bytes(const char *s, uint64_t *bytes, char *err, size_t errlen);

#endif /* TP_CORE_SANDBOX_H */
