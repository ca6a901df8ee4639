/*
 * sandbox.c - the worker's confinement (see sandbox.h): resource limits, no-new-privileges and
 * the parent-death signal; the seccomp allow-list; the async-signal-safe reports a denied call
 * or a hit limit turns into; the record of a refused host->alloc.
 *
 * The allow-list was taken from strace of real trials (fmnist_mlp with adamw, sgd and the
 * schedules, --threads 1, 2 and 4) from the filter's point on, plus what glibc does on the paths
 * those runs did not take (creating a thread, abort, isatty, reading a limit). Each entry says
 * why it is there. Everything not listed is trapped.
 *
 * Not here: the order of operations in a trial (worker.c), the host's classification of a
 * worker's end (runner.c).
 */
#define _GNU_SOURCE
#include "core/sandbox.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include <seccomp.h>

#include "core/error.h"
#include "core/events.h"
#include "core/results.h" /* tp_trial_status */

#if TP_SANDBOX_ASAN
#include <sanitizer/common_interface_defs.h> /* __sanitizer_symbolize_pc */
#endif

#define CPU_HARD_GRACE  10 /* seconds between SIGXCPU and the kernel's SIGKILL */
#define MAX_NR          512
#define NAME_LEN        24
#define EXIT_STATUS     1
#define X32_SYSCALL_BIT 0x40000000 /* x86_64's x32 ABI: same audit arch, this bit in the number */

/* A violation report is one END frame written with one write(2): atomic on a pipe. */
#define FRAME_SIZE (sizeof(tp_event_header) + sizeof(tp_event_end))
_Static_assert(FRAME_SIZE <= PIPE_BUF, "an END frame must fit one atomic pipe write");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
               "the signal handlers read atomics: they must be lock-free");

/* -- state the signal handlers read ---------------------------------------------------------- */

/* Syscall names by number, resolved before the filter: libseccomp's resolver allocates. */
static char g_names[MAX_NR][NAME_LEN];
static uint32_t g_native_arch;
static volatile sig_atomic_t g_event_fd = -1;
static _Atomic uint64_t g_steps;
static _Atomic uint32_t g_evals;
enum { END_OPEN, END_BY_WORKER, END_BY_REPORT };
static atomic_int g_end = END_OPEN;
static char g_cpu_msg[TP_ERROR_MESSAGE_MAX];
static char g_fsize_msg[TP_ERROR_MESSAGE_MAX];

/* -- state for the worker ---------------------------------------------------------------------- */

static int g_active;
static uint64_t g_as_limit; /* the address-space limit in force, 0: none */
static struct {
    char who[64];
    uint64_t bytes;
    uint64_t count;
} g_oom;

/* -- async-signal-safe reporting ------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t cap, len;
} sbuf;

static void put_str(sbuf *b, const char *s)
{
    while (*s && b->len + 1 < b->cap)
        b->p[b->len++] = *s++;
    b->p[b->len] = '\0';
}

static void put_num(sbuf *b, uint64_t v, unsigned base)
{
    char d[24];
    int n = 0;
    do {
        d[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v && n < (int)sizeof d);
    char one[2] = {0, 0};
    while (n) {
        one[0] = d[--n];
        put_str(b, one);
    }
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* One END for the host (first: it is what counts), one line for the log, then the process ends.
 * Only one thread reports: a second one waits for the first to end the process; after the worker's
 * own END, only the log hears of it (the host's stream already has its one END). */
static _Noreturn void report_and_exit(int reason, const char *msg)
{
    int expected = END_OPEN;
    int mine = atomic_compare_exchange_strong(&g_end, &expected, END_BY_REPORT);
    if (!mine && expected == END_BY_REPORT)
        for (;;) {
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
        }
    int fd = g_event_fd;
    if (mine && fd >= 0) {
        tp_event_end e;
        memset(&e, 0, sizeof e);
        e.status = TP_TRIAL_FAILED;
        e.reason = reason;
        e.steps = atomic_load_explicit(&g_steps, memory_order_relaxed);
        e.num_evals = atomic_load_explicit(&g_evals, memory_order_relaxed);
        e.time_to_target = INFINITY;
        e.best_validation_metric = NAN;
        sbuf m = {e.message, sizeof e.message, 0};
        put_str(&m, msg);
        tp_event_header h = {TP_EVENT_MAGIC, TP_EVENT_END, (uint32_t)sizeof e};
        unsigned char frame[FRAME_SIZE];
        memcpy(frame, &h, sizeof h);
        memcpy(frame + sizeof h, &e, sizeof e);
        ssize_t w;
        do
            w = write(fd, frame, sizeof frame);
        while (w < 0 && errno == EINTR);
    }
    char line[TP_ERROR_MESSAGE_MAX + 64];
    sbuf b = {line, sizeof line, 0};
    put_str(&b, "trainperf-worker: ");
    put_str(&b, msg);
    if (!mine)
        put_str(&b, " (after the trial's end was reported)");
    put_str(&b, "\n");
    write_all(2, line, b.len);
    _exit(EXIT_STATUS);
}

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    char msg[TP_ERROR_MESSAGE_MAX];
    sbuf b = {msg, sizeof msg, 0};
    int nr = si->si_syscall;
    put_str(&b, "sandbox violation: ");
    if ((uint32_t)si->si_arch != g_native_arch) {
        put_str(&b, "system call ");
        put_num(&b, (uint32_t)nr, 10);
        put_str(&b, " of a foreign ABI (audit arch 0x");
        put_num(&b, (uint32_t)si->si_arch, 16);
        put_str(&b, ") denied");
    } else if (nr & X32_SYSCALL_BIT) {
        put_str(&b, "system call ");
        put_num(&b, (uint32_t)nr & ~(uint32_t)X32_SYSCALL_BIT, 10);
        put_str(&b, " of the x32 ABI denied");
    } else {
        put_str(&b, nr >= 0 && nr < MAX_NR && g_names[nr][0] ? g_names[nr] : "system call");
        put_str(&b, " (");
        put_num(&b, (uint32_t)nr, 10);
        put_str(&b, ") denied");
    }
    put_str(&b, ": a submission may compute, allocate memory, use threads and write to "
                "stdout/stderr, but not open files, start processes, use the network or change "
                "limits");
    report_and_exit(TP_ESANDBOX, msg);
}

static void on_limit(int sig)
{
    if (sig == SIGXCPU)
        report_and_exit(TP_ETIMEOUT, g_cpu_msg);
    report_and_exit(TP_EIO, g_fsize_msg);
}

static int install(int sig, int with_info, char *err, size_t errlen)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigfillset(&sa.sa_mask);
    if (with_info) {
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO;
    } else {
        sa.sa_handler = on_limit;
    }
    if (sigaction(sig, &sa, NULL) < 0) {
        tp__errf(err, errlen, "sandbox: sigaction(%s): %s", strsignal(sig), strerror(errno));
        return TP_ESYS;
    }
    return TP_OK;
}

void tp_sandbox_note_progress(uint64_t steps, uint32_t num_evals)
{
    atomic_store_explicit(&g_steps, steps, memory_order_relaxed);
    atomic_store_explicit(&g_evals, num_evals, memory_order_relaxed);
}

int tp_sandbox_claim_end(void)
{
    int expected = END_OPEN;
    if (atomic_compare_exchange_strong(&g_end, &expected, END_BY_WORKER) ||
        expected == END_BY_WORKER)
        return 1;
    for (;;) { /* a report is being written; its thread ends the process */
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
}

/* -- limits ---------------------------------------------------------------------------------- */

static void format_bytes(char *out, size_t len, uint64_t bytes)
{
    static const char *units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    uint64_t v = bytes;
    while (u < 4 && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    snprintf(out, len, "%" PRIu64 " %s", v, units[u]);
}

void tp_sandbox_limits_default(tp_sandbox_limits *l, double budget, int threads)
{
    memset(l, 0, sizeof *l);
    l->address_space = TP_SANDBOX_DEFAULT_ADDRESS_SPACE;
    if (isfinite(budget) && budget > 0 && budget < 1e9)
        l->cpu_seconds = (uint64_t)ceil((threads > 1 ? threads : 1) * (6 * budget + 300));
    l->open_files = TP_SANDBOX_DEFAULT_OPEN_FILES;
    l->processes = TP_SANDBOX_DEFAULT_PROCESSES;
    l->file_size = TP_SANDBOX_DEFAULT_FILE_SIZE;
}

/* Set a limit, never above the hard limit in force (root could raise it; a budget should not). */
static int set_limit(int res, const char *name, uint64_t soft, uint64_t hard, char *err,
                     size_t errlen)
{
    struct rlimit r;
    if (getrlimit(res, &r) < 0) {
        tp__errf(err, errlen, "sandbox: getrlimit(%s): %s", name, strerror(errno));
        return TP_ESYS;
    }
    if (r.rlim_max != RLIM_INFINITY) {
        soft = soft < r.rlim_max ? soft : r.rlim_max;
        hard = hard < r.rlim_max ? hard : r.rlim_max;
    }
    r.rlim_cur = soft;
    r.rlim_max = hard;
    if (setrlimit(res, &r) < 0) {
        tp__errf(err, errlen, "sandbox: setrlimit(%s, %" PRIu64 "): %s", name, soft,
                 strerror(errno));
        return TP_ESYS;
    }
    return TP_OK;
}

int tp_sandbox_limit(const tp_sandbox_limits *l, int event_fd, char *err, size_t errlen)
{
    int rc;
    g_event_fd = event_fd;
    snprintf(g_cpu_msg, sizeof g_cpu_msg,
             "CPU time limit exceeded: the worker used all of its %" PRIu64
             " CPU seconds (all threads together): a runaway submission",
             l->cpu_seconds);
    char size[32];
    format_bytes(size, sizeof size, l->file_size);
    snprintf(g_fsize_msg, sizeof g_fsize_msg,
             "the trial log reached its size limit of %s: the submission writes too much to "
             "stdout/stderr",
             size);
    if ((rc = install(SIGXCPU, 0, err, errlen)) < 0 || (rc = install(SIGXFSZ, 0, err, errlen)) < 0)
        return rc;

    if ((rc = set_limit(RLIMIT_CORE, "RLIMIT_CORE", 0, 0, err, errlen)) < 0)
        return rc;
    if (l->address_space && !TP_SANDBOX_ASAN) {
        rc = set_limit(RLIMIT_AS, "RLIMIT_AS", l->address_space, l->address_space, err, errlen);
        if (rc < 0)
            return rc;
        struct rlimit r;
        getrlimit(RLIMIT_AS, &r);
        g_as_limit = r.rlim_cur == RLIM_INFINITY ? 0 : r.rlim_cur;
    }
    if (l->cpu_seconds && (rc = set_limit(RLIMIT_CPU, "RLIMIT_CPU", l->cpu_seconds,
                                          l->cpu_seconds + CPU_HARD_GRACE, err, errlen)) < 0)
        return rc;
    if (l->open_files && (rc = set_limit(RLIMIT_NOFILE, "RLIMIT_NOFILE", l->open_files,
                                         l->open_files, err, errlen)) < 0)
        return rc;
    if (l->processes) {
        struct sysinfo si;
        uint64_t n = (sysinfo(&si) == 0 ? si.procs : 0) + l->processes;
        if ((rc = set_limit(RLIMIT_NPROC, "RLIMIT_NPROC", n, n, err, errlen)) < 0)
            return rc;
    }
    if (l->file_size &&
        (rc = set_limit(RLIMIT_FSIZE, "RLIMIT_FSIZE", l->file_size, l->file_size, err, errlen)) < 0)
        return rc;

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        tp__errf(err, errlen, "sandbox: prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
        return TP_ESYS;
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
        tp__errf(err, errlen, "sandbox: prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
        return TP_ESYS;
    }
    /* The signal is only sent for a parent that dies from now on. */
    if (l->parent > 0 && getppid() != l->parent) {
        tp__errf(err, errlen, "the host (pid %ld) exited before the worker was set up",
                 (long)l->parent);
        return TP_ESYS;
    }
    return TP_OK;
}

/* -- the filter ------------------------------------------------------------------------------ */

/* Allowed whatever their arguments. */
static const int allow_any[] = {
    /* Memory: malloc, OpenBLAS buffers, thread stacks, dlclose at teardown, glibc's free
     * (madvise/munmap of trimmed arenas). */
    SCMP_SYS(mmap),
    SCMP_SYS(munmap),
    SCMP_SYS(mprotect), /* thread stack guard pages, malloc arena growth */
    SCMP_SYS(mremap),   /* realloc of large blocks */
    SCMP_SYS(brk),      /* the main arena */
    SCMP_SYS(madvise),  /* MADV_DONTNEED of an exiting thread's stack, arena trimming */
    SCMP_SYS(mbind),    /* OpenBLAS binds each thread's 128 MiB buffer (MPOL_PREFERRED) */
    SCMP_SYS(membarrier),
    /* Threads and their synchronisation: OpenBLAS's workers spin with sched_yield and sleep
     * on futexes; glibc registers robust lists and rseq areas in every new thread. */
    SCMP_SYS(futex),
    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),
    SCMP_SYS(sched_yield),
    SCMP_SYS(sched_getaffinity), /* thread-count probes (OpenBLAS, sysconf fallback) */
    SCMP_SYS(gettid),
    SCMP_SYS(getpid),
    SCMP_SYS(getppid),
    /* Clocks (the process CPU clock is a real syscall, called twice per step) and sleeping. */
    SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_getres),
    SCMP_SYS(gettimeofday),
    SCMP_SYS(time),
    SCMP_SYS(nanosleep),
    SCMP_SYS(clock_nanosleep),
    /* Signals: masks (glibc blocks all signals around thread creation and exit), returning from
     * a handler, restarting an interrupted sleep, alternate stacks. */
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(sigaltstack),
    /* Files already open: closing, seeking and fstat on a descriptor (no path). */
    SCMP_SYS(close),
    SCMP_SYS(lseek),
    SCMP_SYS(fstat),
    /* Reading a limit (setrlimit is not here; prlimit64 below only reads). */
    SCMP_SYS(getrlimit),
    SCMP_SYS(sysinfo),   /* glibc's qsort sizes its buffer by the physical memory */
    SCMP_SYS(getrandom), /* glibc's arc4random, hash seeds */
    SCMP_SYS(exit),      /* a thread ends */
    SCMP_SYS(exit_group),
};

static int add(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned n,
               const struct scmp_arg_cmp *cmp, char *err, size_t errlen)
{
    int rc = seccomp_rule_add_array(ctx, action, nr, n, cmp);
    if (rc < 0) {
        char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        tp__errf(err, errlen, "sandbox: cannot add the seccomp rule for %s: %s", name ? name : "?",
                 strerror(-rc));
        free(name);
        return TP_ESYS;
    }
    return TP_OK;
}

#define ADD(action, nr, ...)                                                                       \
    do {                                                                                           \
        const struct scmp_arg_cmp cmp_[] = {__VA_ARGS__};                                          \
        if ((rc = add(ctx, (action), (nr), sizeof cmp_ / sizeof *cmp_, cmp_, err, errlen)) < 0)    \
            goto error;                                                                            \
    } while (0)

/* The clone flags glibc's pthread_create passes (plus the obsolete CLONE_DETACHED and the exit
 * signal byte): a new thread of this process, nothing else. */
#define THREAD_FLAGS                                                                               \
    (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |            \
     CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID |              \
     CLONE_DETACHED | CSIGNAL)

static int build_filter(scmp_filter_ctx ctx, int event_fd, char *err, size_t errlen)
{
    int rc;
    for (size_t i = 0; i < sizeof allow_any / sizeof *allow_any; i++)
        if ((rc = add(ctx, SCMP_ACT_ALLOW, allow_any[i], 0, NULL, err, errlen)) < 0)
            return rc;

    /* Output: the trial log (stdout, stderr) and the host's event pipe, nothing else. */
    int fds[3] = {1, 2, event_fd};
    for (int i = 0; i < (event_fd >= 0 ? 3 : 2); i++) {
        ADD(SCMP_ACT_ALLOW, SCMP_SYS(write), SCMP_A0(SCMP_CMP_EQ, (uint64_t)fds[i]));
        ADD(SCMP_ACT_ALLOW, SCMP_SYS(writev), SCMP_A0(SCMP_CMP_EQ, (uint64_t)fds[i]));
    }
    /* isatty() (stdio asks it of a character device). */
    ADD(SCMP_ACT_ALLOW, SCMP_SYS(ioctl), SCMP_A1(SCMP_CMP_EQ, TCGETS));
    /* Signal handlers, except SIGSYS's: the violation report must stay in place. The 64-bit
     * comparisons leave no high-bit alias of 31 through: 1..30, 32..63 and 64. */
    ADD(SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), SCMP_A0(SCMP_CMP_LT, SIGSYS));
    ADD(SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), SCMP_A0(SCMP_CMP_MASKED_EQ, ~(uint64_t)0x1f, 0x20));
    ADD(SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), SCMP_A0(SCMP_CMP_EQ, 64));
    /* Threads: clone only with CLONE_THREAD and the flags above (no fork, no namespaces, no
     * vfork). glibc tries clone3 first, whose flags sit in memory the filter cannot read:
     * ENOSYS makes it fall back to clone. */
    ADD(SCMP_ACT_ALLOW, SCMP_SYS(clone),
        SCMP_A0(SCMP_CMP_MASKED_EQ, ~(uint64_t)THREAD_FLAGS | CLONE_THREAD, CLONE_THREAD));
    if ((rc = add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0, NULL, err, errlen)) < 0)
        return rc;
    /* Reading this process's limits (getrlimit is prlimit64(0, r, NULL, old) in glibc). */
    ADD(SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), SCMP_A0(SCMP_CMP_EQ, 0), SCMP_A2(SCMP_CMP_EQ, 0));
    /* Signals to this process only: abort() and raise() are tgkill(getpid(), gettid(), sig). */
    uint64_t self = (uint64_t)getpid();
    ADD(SCMP_ACT_ALLOW, SCMP_SYS(tgkill), SCMP_A0(SCMP_CMP_EQ, self));
    ADD(SCMP_ACT_ALLOW, SCMP_SYS(kill), SCMP_A0(SCMP_CMP_EQ, self));
    /* Pinning the calling thread. */
    ADD(SCMP_ACT_ALLOW, SCMP_SYS(sched_setaffinity), SCMP_A0(SCMP_CMP_EQ, 0));
    /* fstat is newfstatat(fd, "", AT_EMPTY_PATH) in glibc, but the path could name any file
     * and the filter cannot read it: fail softly (stdio then uses a default buffer size). */
    if ((rc = add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(newfstatat), 0, NULL, err, errlen)) < 0 ||
        (rc = add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(statx), 0, NULL, err, errlen)) < 0)
        return rc;
    return TP_OK;
error:
    return rc;
}

#if TP_SANDBOX_ASAN
/* LeakSanitizer's exit-time check stops the world with ptrace, prctl and /proc, which the
 * filter denies. It runs from atexit, registered when the process started; this runs before
 * it (registered later) and ends the process as exit() would have, without the check. */
static void exit_without_leak_check(int status, void *arg)
{
    (void)arg;
    fflush(NULL);
    _exit(status);
}
#endif

int tp_sandbox_enter(int event_fd, char *err, size_t errlen)
{
    int rc;
    g_event_fd = event_fd;
    g_native_arch = seccomp_arch_native();
    for (int nr = 0; nr < MAX_NR; nr++) {
        char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        snprintf(g_names[nr], NAME_LEN, "%s", name ? name : "");
        free(name);
    }
    if ((rc = install(SIGSYS, 1, err, errlen)) < 0)
        return rc;
#if TP_SANDBOX_ASAN
    /* A sanitizer report symbolizes lazily, reading every loaded module's file: make it load
     * them now, while files can be opened, so a report raised inside the filter stays whole
     * instead of ending at a violation. */
    char sym[256];
    __sanitizer_symbolize_pc(__builtin_return_address(0), "%p %F %L", sym, sizeof sym);
#endif

    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
    if (!ctx) {
        tp__errf(err, errlen, "sandbox: seccomp_init failed (out of memory?)");
        return TP_ESYS;
    }
    /* Calls through another ABI (int 0x80, x32) are trapped and reported too. */
    if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_TRAP)) < 0 ||
        (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0) {
        tp__errf(err, errlen, "sandbox: seccomp_attr_set: %s", strerror(-rc));
        rc = TP_ESYS;
        goto error;
    }
    if ((rc = build_filter(ctx, event_fd, err, errlen)) < 0)
        goto error;
    if ((rc = seccomp_load(ctx)) < 0) {
        tp__errf(err, errlen,
                 "sandbox: the kernel refused the seccomp filter: %s (a kernel without "
                 "CONFIG_SECCOMP_FILTER, or a container that forbids seccomp)",
                 strerror(-rc));
        rc = TP_ESYS;
        goto error;
    }
    seccomp_release(ctx);
    g_active = 1;
#if TP_SANDBOX_ASAN
    on_exit(exit_without_leak_check, NULL);
#endif
    return TP_OK;
error:
    seccomp_release(ctx);
    return rc;
}

int tp_sandbox_active(void)
{
    return g_active;
}

/* -- out of memory --------------------------------------------------------------------------- */

void tp_sandbox_note_oom(const char *who, uint64_t bytes)
{
    if (g_oom.count++ == 0) {
        snprintf(g_oom.who, sizeof g_oom.who, "%s", who ? who : "?");
        g_oom.bytes = bytes;
    }
}

int tp_sandbox_oom(char *msg, size_t msglen)
{
    if (g_oom.count == 0)
        return 0;
    char limit[96], size[32];
    if (g_as_limit) {
        format_bytes(size, sizeof size, g_as_limit);
        snprintf(limit, sizeof limit, "address-space limit %s, the worker's --memory-limit", size);
    } else if (TP_SANDBOX_ASAN) {
        snprintf(limit, sizeof limit, "no address-space limit in AddressSanitizer builds");
    } else {
        snprintf(limit, sizeof limit, "no address-space limit: the machine is out of memory");
    }
    char more[48] = "";
    if (g_oom.count > 1)
        snprintf(more, sizeof more, " (and %" PRIu64 " later request(s))", g_oom.count - 1);
    tp__errf(msg, msglen,
             "plugin %s ran out of memory: host->alloc(%" PRIu64 " bytes) was refused%s (%s)",
             g_oom.who, g_oom.bytes, more, limit);
    return 1;
}

/* -- options --------------------------------------------------------------------------------- */

int tp_sandbox_parse_bytes(const char *s, uint64_t *bytes, char *err, size_t errlen)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == '+')
        goto bad;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        goto bad;
    unsigned shift = 0;
    switch (*end) {
    case 'K':
    case 'k':
        shift = 10;
        break;
    case 'M':
    case 'm':
        shift = 20;
        break;
    case 'G':
    case 'g':
        shift = 30;
        break;
    case 'T':
    case 't':
        shift = 40;
        break;
    case '\0':
        break;
    default:
        goto bad;
    }
    if (shift) {
        end++;
        if (!strcmp(end, "iB") || !strcmp(end, "B"))
            end += strlen(end);
    }
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        goto bad;
    *bytes = (uint64_t)v << shift;
    return TP_OK;
bad:
    tp__errf(err, errlen,
             "bad memory size '%s': expected bytes with an optional K, M, G or T suffix (binary "
             "units), or 0 for no limit",
             s ? s : "");
    return TP_EINVAL;
}
