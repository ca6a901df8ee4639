/*
 * test_sandbox.c - the worker's sandbox module (core/sandbox.c) on its own: each case forks a
 * child that confines itself with a pipe as its event fd and then does allowed work (memory,
 * threads, clocks, signals to itself, stdout) and exits 0, or tries one denied thing (open,
 * socket, fork, execve, ptrace, setrlimit, replacing the SIGSYS handler, signalling another
 * process, writing to another fd, a foreign syscall ABI). The parent decodes what came down the
 * pipe with the host's decoder: a denied call must end the child with exactly one valid END
 * event (failed, TP_ESANDBOX, the syscall's name in the message) and exit status 1. Also the
 * limits (core dumps off, open files, address space, CPU time, log size, no-new-privileges,
 * death with the parent), the out-of-memory record fed by host->alloc, and the --memory-limit
 * parser.
 *
 * Not here: whole trials in a sandboxed worker (tests/integration, tests/sandbox).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/events.h"
#include "core/hostapi.h"
#include "core/results.h" /* tp_trial_status */
#include "core/sandbox.h"

#define ASAN TP_SANDBOX_ASAN

/* -- running a case in a child --------------------------------------------------------------- */

typedef struct result {
    int exited, code;  /* WIFEXITED, WEXITSTATUS */
    int signaled, sig; /* WIFSIGNALED, WTERMSIG */
    int ends;          /* END events decoded */
    int others;        /* other events */
    tp_event_end end;  /* the last END */
    int decode_rc;     /* the decoder's verdict on the whole stream */
    char decode_err[256];
} result;

static int collect(const tp_event *ev, void *ud)
{
    result *r = ud;
    if (ev->type == TP_EVENT_END) {
        r->ends++;
        r->end = ev->u.end;
    } else {
        r->others++;
    }
    return 0;
}

/* Fork; the child runs body(event_fd) with stderr into `stderr_path` (NULL: silenced; the
 * violation reports write a line there) and exits 0 if body returns. The parent decodes the
 * pipe until EOF and reaps. */
static void run_logged(void (*body)(int fd), result *r, const char *stderr_path)
{
    memset(r, 0, sizeof *r);
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        int log = open(stderr_path ? stderr_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (log < 0 || dup2(log, 2) < 0)
            _exit(99);
        close(log);
        body(p[1]);
        _exit(0);
    }
    close(p[1]);
    tp_event_decoder d;
    tp_event_decoder_init(&d);
    unsigned char buf[4096];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n > 0);
        if (r->decode_rc == 0)
            r->decode_rc = tp_event_decoder_feed(&d, buf, (size_t)n, collect, r, r->decode_err,
                                                 sizeof r->decode_err);
    }
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    r->exited = WIFEXITED(st);
    r->code = r->exited ? WEXITSTATUS(st) : -1;
    r->signaled = WIFSIGNALED(st);
    r->sig = r->signaled ? WTERMSIG(st) : 0;
}

static void run(void (*body)(int fd), result *r)
{
    run_logged(body, r, NULL);
}

static void enter(int fd)
{
    char err[512];
    if (tp_sandbox_enter(fd, err, sizeof err) < 0) {
        fprintf(stdout, "tp_sandbox_enter: %s\n", err);
        _exit(90);
    }
}

/* A denied call: one valid END (failed, `reason`, message containing `needle`), exit 1. */
static void expect_report(const result *r, int reason, const char *needle)
{
    if (r->decode_rc != 0)
        fail_msg("the stream is invalid: %s", r->decode_err);
    assert_int_equal(r->ends, 1);
    assert_int_equal(r->end.status, TP_TRIAL_FAILED);
    if (r->end.reason != reason)
        fail_msg("reason %s, expected %s (message: %s)", tp__reason_name(r->end.reason),
                 tp__reason_name(reason), r->end.message);
    if (!strstr(r->end.message, needle))
        fail_msg("message '%s' does not contain '%s'", r->end.message, needle);
    assert_true(r->exited);
    assert_int_equal(r->code, 1);
}

static void expect_violation(void (*body)(int fd), const char *syscall_name)
{
    result r;
    run(body, &r);
    char needle[64];
    snprintf(needle, sizeof needle, "sandbox violation: %s (", syscall_name);
    expect_report(&r, TP_ESANDBOX, needle);
    assert_non_null(strstr(r.end.message, ") denied"));
    assert_true(isinf(r.end.time_to_target));
}

/* -- allowed work ---------------------------------------------------------------------------- */

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
    (void)sig;
    got_usr1 = 1;
}

static void *thread_work(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    double *v = malloc(n * sizeof *v);
    if (!v)
        return NULL;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (v[i] = (double)i);
    free(v);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    sched_yield();
    return s > 0 ? arg : NULL;
}

static void body_allowed(int fd)
{
    enter(fd);
    /* Memory: big blocks through malloc (mmap'd), realloc (mremap), small ones (brk). */
    size_t big = (size_t)64 << 20;
    char *p = malloc(big);
    if (!p)
        _exit(10);
    memset(p, 1, big);
    p = realloc(p, 2 * big);
    if (!p)
        _exit(11);
    memset(p + big, 2, big);
    free(p);
    for (int i = 0; i < 1000; i++)
        free(malloc(100 + i));
    void *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m, 4096, PROT_READ) < 0 || munmap(m, 1 << 20) < 0)
        _exit(12);
    /* Threads. */
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, thread_work, (void *)(uintptr_t)(100000 + i)) != 0)
            _exit(13);
    for (int i = 0; i < 4; i++) {
        void *ret;
        if (pthread_join(t[i], &ret) != 0 || ret != (void *)(uintptr_t)(100000 + i))
            _exit(14);
    }
    /* Clocks. */
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0 || clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
        _exit(15);
    /* Output: stdout through stdio (whose first use stats the fd: refused softly), raw
     * stderr, isatty. */
    printf("sandboxed child: stdout works\n");
    if (fflush(stdout) != 0)
        _exit(16);
    if (write(2, "x\n", 2) != 2)
        _exit(17);
    (void)isatty(1);
    /* A signal to itself, with a handler of its own. */
    if (signal(SIGUSR1, on_usr1) == SIG_ERR || raise(SIGUSR1) != 0 || !got_usr1)
        _exit(18);
    /* Reading a limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        _exit(19);
    /* Soft denials: stat by path, clone3. */
    struct stat st;
    if (stat("/etc/passwd", &st) == 0 || errno != EACCES)
        _exit(20);
    if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
        _exit(21);
    if (!tp_sandbox_active())
        _exit(22);
}

static void test_allowed_work_runs(void **state)
{
    (void)state;
    result r;
    run(body_allowed, &r);
    if (!r.exited || r.code != 0)
        fail_msg("the child %s %d (a code from body_allowed, or a signal); END: %s",
                 r.exited ? "exited with" : "was killed by signal", r.exited ? r.code : r.sig,
                 r.ends ? r.end.message : "none");
    assert_int_equal(r.ends, 0);
    assert_int_equal(r.decode_rc, 0);
}

/* -- denied calls ---------------------------------------------------------------------------- */

static void body_open(int fd)
{
    enter(fd);
    open("/etc/passwd", O_RDONLY);
}

static void body_socket(int fd)
{
    enter(fd);
    socket(AF_INET, SOCK_STREAM, 0);
}

static void body_fork(int fd)
{
    enter(fd);
    if (fork() == 0)
        _exit(0);
}

static void body_execve(int fd)
{
    enter(fd);
    char *argv[] = {"/bin/true", NULL};
    char *envp[] = {NULL};
    execve(argv[0], argv, envp);
}

static void body_ptrace(int fd)
{
    enter(fd);
    ptrace(PTRACE_TRACEME, 0, NULL, NULL);
}

static void body_setrlimit(int fd)
{
    enter(fd);
    struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
    setrlimit(RLIMIT_AS, &rl);
}

static void body_sigsys_handler(int fd)
{
    enter(fd);
    signal(SIGSYS, SIG_DFL);
}

/* SIGSYS with high bits set: the kernel reads an int, the filter must not read "not 31". */
static void body_sigsys_alias(int fd)
{
    enter(fd);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    syscall(SYS_rt_sigaction, (long)0x10000001fLL, &sa, NULL, 8L);
}

static void body_kill_parent(int fd)
{
    enter(fd);
    kill(getppid(), 0);
}

static void body_write_other_fd(int fd)
{
    int other = open("/dev/null", O_WRONLY);
    enter(fd);
    if (write(other, "x", 1) == 1)
        _exit(0);
}

static void *open_in_thread(void *arg)
{
    (void)arg;
    open("/etc/hostname", O_RDONLY);
    return NULL;
}

static void body_thread_open(int fd)
{
    enter(fd);
    pthread_t t;
    if (pthread_create(&t, NULL, open_in_thread, NULL) != 0)
        _exit(30);
    pthread_join(t, NULL);
}

static void test_open_denied(void **state)
{
    (void)state;
    expect_violation(body_open, "openat");
}

static void test_socket_denied(void **state)
{
    (void)state;
    expect_violation(body_socket, "socket");
}

static void test_fork_denied(void **state)
{
    (void)state;
    expect_violation(body_fork, "clone");
}

static void test_execve_denied(void **state)
{
    (void)state;
    expect_violation(body_execve, "execve");
}

static void test_ptrace_denied(void **state)
{
    (void)state;
    expect_violation(body_ptrace, "ptrace");
}

static void test_setrlimit_denied(void **state)
{
    (void)state;
    expect_violation(body_setrlimit, "prlimit64");
}

static void test_sigsys_handler_kept(void **state)
{
    (void)state;
    expect_violation(body_sigsys_handler, "rt_sigaction");
    expect_violation(body_sigsys_alias, "rt_sigaction");
}

static void test_kill_other_denied(void **state)
{
    (void)state;
    expect_violation(body_kill_parent, "kill");
}

static void test_write_other_fd_denied(void **state)
{
    (void)state;
    expect_violation(body_write_other_fd, "write");
}

static void test_violation_in_a_thread(void **state)
{
    (void)state;
    expect_violation(body_thread_open, "openat");
}

#if defined(__x86_64__)
/* getpid through the i386 ABI (int 0x80): another audit arch, which the filter traps too. */
static void body_int80(int fd)
{
    enter(fd);
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
    (void)ret;
}

/* getpid through the x32 ABI: x86_64's audit arch with bit 30 set in the number. */
static void body_x32(int fd)
{
    enter(fd);
    syscall(0x40000000L | SYS_getpid);
}

static void test_foreign_abi_denied(void **state)
{
    (void)state;
    result r;
    run(body_x32, &r);
    expect_report(&r, TP_ESANDBOX, "sandbox violation: system call 39 of the x32 ABI denied");

    run(body_int80, &r);
    /* Kernels without IA-32 emulation fault on int 0x80 before seccomp sees it. */
    if (r.signaled && r.sig == SIGSEGV && r.ends == 0)
        return;
    expect_report(&r, TP_ESANDBOX, "of a foreign ABI (audit arch 0x40000003) denied");
}
#endif

/* exit() inside the filter: atexit handlers, stdio flushed, the status kept (in ASan builds
 * without LeakSanitizer's exit-time check, which the filter would stop). */
static void body_exit(int fd)
{
    enter(fd);
    printf("sandboxed child: exiting with 3\n"); /* buffered until exit() flushes it */
    exit(3);
}

static void test_exit_inside(void **state)
{
    (void)state;
    result r;
    run(body_exit, &r);
    if (r.ends)
        fail_msg("END: %s", r.end.message);
    assert_true(r.exited);
    assert_int_equal(r.code, 3);
}

/* -- the report ------------------------------------------------------------------------------ */

static void body_progress_then_open(int fd)
{
    enter(fd);
    tp_sandbox_note_progress(42, 0);
    open("/etc/passwd", O_RDONLY);
}

static void body_end_then_open(int fd)
{
    enter(fd);
    if (!tp_sandbox_claim_end())
        _exit(40);
    tp_event_end e;
    memset(&e, 0, sizeof e);
    e.status = TP_TRIAL_COMPLETE;
    e.time_to_target = INFINITY;
    e.best_validation_metric = NAN;
    snprintf(e.message, sizeof e.message, "done");
    if (tp_event_write(fd, TP_EVENT_END, &e, sizeof e) < 0)
        _exit(41);
    open("/etc/passwd", O_RDONLY); /* at teardown: only the log hears of it */
}

static void test_report_carries_progress(void **state)
{
    (void)state;
    result r;
    run(body_progress_then_open, &r);
    expect_report(&r, TP_ESANDBOX, "openat");
    assert_int_equal(r.end.steps, 42);
    assert_int_equal(r.end.num_evals, 0);
}

static void test_one_end_only(void **state)
{
    (void)state;
    result r;
    run(body_end_then_open, &r);
    assert_int_equal(r.decode_rc, 0);
    assert_int_equal(r.ends, 1);
    assert_int_equal(r.end.status, TP_TRIAL_COMPLETE);
    assert_string_equal(r.end.message, "done");
    assert_true(r.exited);
    assert_int_equal(r.code, 1);
}

#if ASAN
/* A sanitizer report raised inside the filter stays whole: the symbolizer read the modules
 * before the filter went on. */
static void body_heap_overflow(int fd)
{
    enter(fd);
    /* Sizes out of the compiler's sight: UBSan's object-size check would report first, and
     * GCC's separate UBSan runtime initialises lazily (a known limit, see sandbox.h). */
    volatile size_t size = 16;
    volatile char *p = malloc(size);
    p[size] = 1;
}

static void test_asan_report_whole(void **state)
{
    (void)state;
    char path[] = "/tmp/tp_sandbox_asan_XXXXXX";
    int f = mkstemp(path);
    assert_true(f >= 0);
    close(f);
    result r;
    run_logged(body_heap_overflow, &r, path);
    char buf[16384] = "";
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    size_t n = fread(buf, 1, sizeof buf - 1, in);
    buf[n] = '\0';
    fclose(in);
    unlink(path);
    if (r.ends)
        fail_msg("END: %s\nstderr:\n%s", r.end.message, buf);
    if (!strstr(buf, "SUMMARY: AddressSanitizer: heap-buffer-overflow") ||
        !strstr(buf, "in body_heap_overflow") || strstr(buf, "sandbox violation"))
        fail_msg("not a whole AddressSanitizer report (exit %d, signal %d):\n%s", r.code, r.sig,
                 buf);
}
#endif

/* -- limits ---------------------------------------------------------------------------------- */

static int limit_is(int res, rlim_t soft, rlim_t hard)
{
    struct rlimit rl;
    return getrlimit(res, &rl) == 0 && rl.rlim_cur == soft && rl.rlim_max == hard;
}

static void body_limits(int fd)
{
    struct rlimit as_before;
    getrlimit(RLIMIT_AS, &as_before);
    tp_sandbox_limits l;
    tp_sandbox_limits_default(&l, 10.0, 2);
    l.parent = getppid();
    char err[512];
    if (tp_sandbox_limit(&l, fd, err, sizeof err) < 0) {
        printf("tp_sandbox_limit: %s\n", err);
        _exit(50);
    }
    if (!limit_is(RLIMIT_CORE, 0, 0))
        _exit(51);
    if (!limit_is(RLIMIT_NOFILE, TP_SANDBOX_DEFAULT_OPEN_FILES, TP_SANDBOX_DEFAULT_OPEN_FILES))
        _exit(52);
    if (ASAN ? !limit_is(RLIMIT_AS, as_before.rlim_cur, as_before.rlim_max)
             : !limit_is(RLIMIT_AS, TP_SANDBOX_DEFAULT_ADDRESS_SPACE,
                         TP_SANDBOX_DEFAULT_ADDRESS_SPACE))
        _exit(53);
    if (!limit_is(RLIMIT_CPU, 2 * (6 * 10 + 300), 2 * (6 * 10 + 300) + 10)) /* 2 threads */
        _exit(54);
    if (!limit_is(RLIMIT_FSIZE, TP_SANDBOX_DEFAULT_FILE_SIZE, TP_SANDBOX_DEFAULT_FILE_SIZE))
        _exit(55);
    struct rlimit np;
    if (getrlimit(RLIMIT_NPROC, &np) < 0 || np.rlim_cur == RLIM_INFINITY ||
        np.rlim_cur < TP_SANDBOX_DEFAULT_PROCESSES)
        _exit(56);
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
        _exit(57);
    int sig = 0;
    if (prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0) < 0 || sig != SIGKILL)
        _exit(58);
    /* Threads still start under the process limit. */
    pthread_t t;
    if (pthread_create(&t, NULL, thread_work, (void *)(uintptr_t)1000) != 0 ||
        pthread_join(t, NULL) != 0)
        _exit(59);
}

static void test_limits_applied(void **state)
{
    (void)state;
    result r;
    run(body_limits, &r);
    if (!r.exited || r.code != 0)
        fail_msg("body_limits: %s %d", r.exited ? "exit code" : "signal",
                 r.exited ? r.code : r.sig);
    assert_int_equal(r.ends, 0);
}

static void body_parent_mismatch(int fd)
{
    tp_sandbox_limits l;
    memset(&l, 0, sizeof l);
    l.parent = getpid(); /* never its own parent: as if the host had died already */
    char err[512] = "";
    int rc = tp_sandbox_limit(&l, fd, err, sizeof err);
    _exit(rc == TP_ESYS && strstr(err, "exited before the worker was set up") ? 0 : 60);
}

static void test_parent_already_gone(void **state)
{
    (void)state;
    result r;
    run(body_parent_mismatch, &r);
    assert_true(r.exited);
    assert_int_equal(r.code, 0);
}

/* The worker dies with its parent: the test adopts orphans (subreaper), a middle process
 * starts a grandchild that sets the limits with the middle as its parent, and exits. */
static void test_dies_with_parent(void **state)
{
    (void)state;
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(stdout);
    pid_t middle = fork();
    assert_true(middle >= 0);
    if (middle == 0) {
        close(p[0]);
        int ready[2];
        if (pipe(ready) < 0)
            _exit(70);
        pid_t self = getpid();
        pid_t grand = fork();
        if (grand == 0) {
            tp_sandbox_limits l;
            memset(&l, 0, sizeof l);
            l.parent = self;
            char err[512];
            if (tp_sandbox_limit(&l, -1, err, sizeof err) < 0)
                _exit(71);
            char c = 'r';
            if (write(ready[1], &c, 1) != 1)
                _exit(72);
            for (;;)
                pause();
        }
        char c;
        if (grand < 0 || read(ready[0], &c, 1) != 1)
            _exit(73);
        if (write(p[1], &grand, sizeof grand) != sizeof grand)
            _exit(74);
        _exit(0);
    }
    close(p[1]);
    pid_t grand = 0;
    assert_int_equal(read(p[0], &grand, sizeof grand), sizeof grand);
    close(p[0]);
    int st;
    assert_int_equal(waitpid(middle, &st, 0), middle);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(waitpid(grand, &st, 0), grand);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
}

static void body_cpu_runaway(int fd)
{
    tp_sandbox_limits l;
    memset(&l, 0, sizeof l);
    l.cpu_seconds = 1;
    char err[512];
    if (tp_sandbox_limit(&l, fd, err, sizeof err) < 0)
        _exit(80);
    enter(fd);
    tp_sandbox_note_progress(7, 0);
    for (volatile uint64_t i = 0;; i++)
        ;
}

static void test_cpu_limit_reported(void **state)
{
    (void)state;
    result r;
    run(body_cpu_runaway, &r);
    expect_report(&r, TP_ETIMEOUT, "CPU time limit exceeded");
    assert_int_equal(r.end.steps, 7);
}

static void body_log_flood(int fd)
{
    char path[] = "/tmp/tp_sandbox_log_XXXXXX";
    int log = mkstemp(path);
    if (log < 0 || dup2(log, 1) < 0)
        _exit(81);
    unlink(path);
    tp_sandbox_limits l;
    memset(&l, 0, sizeof l);
    l.file_size = 4096;
    char err[512];
    if (tp_sandbox_limit(&l, fd, err, sizeof err) < 0)
        _exit(82);
    enter(fd);
    char block[1024];
    memset(block, 'x', sizeof block);
    for (int i = 0; i < 8; i++)
        if (write(1, block, sizeof block) < 0)
            break;
}

static void test_log_limit_reported(void **state)
{
    (void)state;
    result r;
    run(body_log_flood, &r);
    expect_report(&r, TP_EIO, "size limit of 4 KiB");
}

/* -- out of memory --------------------------------------------------------------------------- */

#define N_TRAIN 4

static int fake_init(tp_workload *w, uint64_t seed, float *params, char *err, size_t errlen)
{
    return 0;
}

static int fake_loss(tp_workload *w, const float *params, const uint32_t *idx, const float *weights,
                     uint32_t n, const tp_loss_opts *opts, uint64_t dropout_seed, float *grad,
                     double *loss, float *per_example, char *err, size_t errlen)
{
    *loss = 0;
    return 0;
}

static int fake_eval(tp_workload *w, const float *params, tp_split split, tp_eval_result *out,
                     char *err, size_t errlen)
{
    return 0;
}

static void fake_free(tp_workload *w)
{
}

static const tp_workload_vtable fake_vt = {fake_init, fake_loss, fake_eval, fake_free};

/* host->alloc refused, once past 1 TiB and once (outside ASan) past a 1 GiB address-space
 * limit: the first refusal is recorded with the plugin and the size, the limit is named. */
static void body_oom(int fd)
{
    char msg[512];
    if (tp_sandbox_oom(msg, sizeof msg))
        _exit(90);
    tp_sandbox_limits l;
    memset(&l, 0, sizeof l);
    l.address_space = (uint64_t)1 << 30;
    char err[512];
    if (tp_sandbox_limit(&l, fd, err, sizeof err) < 0)
        _exit(91);
    static const tp_tensor_info tensors[1] = {{.name = "w"}};
    tp_workload w = {&fake_vt, "fake", "loss", 0, {N_TRAIN, 1, 1}, 8, 1, tensors};
    tp_session_config sc = {.workload = &w, .seed = 1, .batch_size = 2, .budget = 1};
    tp_session *s;
    if (tp_session_create(&sc, &s, err, sizeof err) < 0)
        _exit(92);
    tp_ctx *ctx = tp_session_ctx_new(s, "greedy", NULL, NULL, 0);
    const tp_host *h = tp_hostapi_table();
    if (!ctx)
        _exit(93);
    void *small = h->alloc(ctx, 1024);
    if (!small)
        _exit(94);
    h->free(ctx, small);
    if (tp_sandbox_oom(msg, sizeof msg))
        _exit(95);
    uint64_t ask = ASAN ? ((uint64_t)1 << 40) + 1 : (uint64_t)2 << 30;
    if (h->alloc(ctx, ask) != NULL)
        _exit(96);
    if (h->alloc(ctx, ((uint64_t)1 << 40) + 1) != NULL)
        _exit(97);
    if (!tp_sandbox_oom(msg, sizeof msg))
        _exit(98);
    char want[128];
    snprintf(want, sizeof want, "plugin greedy ran out of memory: host->alloc(%llu bytes)",
             (unsigned long long)ask);
    if (!strstr(msg, want) || !strstr(msg, "and 1 later request"))
        _exit(99);
    if (!ASAN && !strstr(msg, "address-space limit 1 GiB"))
        _exit(100);
    tp_session_free(s);
}

static void test_oom_recorded(void **state)
{
    (void)state;
    result r;
    run(body_oom, &r);
    assert_true(r.exited);
    assert_int_equal(r.code, 0);
}

/* -- --memory-limit -------------------------------------------------------------------------- */

static void test_parse_bytes(void **state)
{
    (void)state;
    char err[256];
    uint64_t b;
    assert_int_equal(tp_sandbox_parse_bytes("16G", &b, err, sizeof err), 0);
    assert_true(b == (uint64_t)16 << 30);
    assert_int_equal(tp_sandbox_parse_bytes("512MiB", &b, err, sizeof err), 0);
    assert_true(b == (uint64_t)512 << 20);
    assert_int_equal(tp_sandbox_parse_bytes("4k", &b, err, sizeof err), 0);
    assert_true(b == 4096);
    assert_int_equal(tp_sandbox_parse_bytes("1T", &b, err, sizeof err), 0);
    assert_true(b == (uint64_t)1 << 40);
    assert_int_equal(tp_sandbox_parse_bytes("123", &b, err, sizeof err), 0);
    assert_true(b == 123);
    assert_int_equal(tp_sandbox_parse_bytes("0", &b, err, sizeof err), 0);
    assert_true(b == 0);
    const char *bad[] = {"", "-1", "+5", "G", "12X", "12GB2", "99999999999T", "1.5G"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(tp_sandbox_parse_bytes(bad[i], &b, err, sizeof err), TP_EINVAL);
        assert_non_null(strstr(err, "bad memory size"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed_work_runs),
        cmocka_unit_test(test_open_denied),
        cmocka_unit_test(test_socket_denied),
        cmocka_unit_test(test_fork_denied),
        cmocka_unit_test(test_execve_denied),
        cmocka_unit_test(test_ptrace_denied),
        cmocka_unit_test(test_setrlimit_denied),
        cmocka_unit_test(test_sigsys_handler_kept),
        cmocka_unit_test(test_kill_other_denied),
        cmocka_unit_test(test_write_other_fd_denied),
        cmocka_unit_test(test_violation_in_a_thread),
#if defined(__x86_64__)
        cmocka_unit_test(test_foreign_abi_denied),
#endif
#if ASAN
        cmocka_unit_test(test_asan_report_whole),
#endif
        cmocka_unit_test(test_exit_inside),
        cmocka_unit_test(test_report_carries_progress),
        cmocka_unit_test(test_one_end_only),
        cmocka_unit_test(test_limits_applied),
        cmocka_unit_test(test_parent_already_gone),
        cmocka_unit_test(test_dies_with_parent),
        cmocka_unit_test(test_cpu_limit_reported),
        cmocka_unit_test(test_log_limit_reported),
        cmocka_unit_test(test_oom_recorded),
        cmocka_unit_test(test_parse_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
