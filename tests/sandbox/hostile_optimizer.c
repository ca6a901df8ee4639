/*
 * hostile_optimizer.c - the hostile-submission suite's optimizer fixtures: plain SGD that, at
 * update step HOSTILE_STEP (after the first eval is committed), does one thing a submission
 * must not do. Built once per case with HOSTILE_ACT (an `act` below) and HOSTILE_ID (the
 * plugin id) defined by tests/sandbox.cmake; test_sandbox.c says what the host must make of
 * each.
 *
 * The acts aim at the real targets but stop short of damage when nothing stops them (before
 * the worker's sandbox lands, or if it regresses): /etc/passwd and the dataset file are only
 * opened for writing, never written; the fork case forks a bounded number of children that
 * wait to be killed with the worker's process group; the allocation case gives up at a cap
 * (TP_HOSTILE_ALLOC_CAP_MB, default 4096) instead of exhausting the machine: run it under a
 * smaller memory limit (the host's memory_limit). Each then returns
 * TP_EPLUGIN with "not stopped" in its message, so the test fails saying what got through.
 * Only the results database, a test's own file, is really overwritten when the open succeeds.
 *
 * Not here: the data-selection fixture (hostile_select.c) and the host-API prober
 * (bad_args.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <trainperf/trainperf.h>

enum act {
    ACT_NONE,         /* trains normally, qsorts a copy of the parameters at HOSTILE_STEP (with
                         HUGE_DESC: a huge descriptor struct_size) */
    ACT_SEGV_INIT,    /* NULL store in init */
    ACT_SEGV_UPDATE,  /* NULL store in update */
    ACT_ABORT,        /* abort() */
    ACT_EXIT,         /* exit(0) mid-training */
    ACT_ERROR,        /* returns TP_EINVAL with a message: a plain plugin error */
    ACT_LOOP,         /* spins forever */
    ACT_SLEEP,        /* nanosleep forever */
    ACT_ALLOC,        /* host->alloc until refused, then TP_ENOMEM */
    ACT_FORK,         /* fork repeatedly */
    ACT_OPEN_PASSWD,  /* /etc/passwd for writing */
    ACT_OPEN_DB,      /* the results database ($TP_HOSTILE_RESULTS_DB) for writing */
    ACT_OPEN_DATASET, /* a dataset file ($TP_HOSTILE_DATASET_FILE) for writing */
    ACT_SOCKET,       /* a TCP socket */
    ACT_EXEC,         /* execve /bin/sh */
    ACT_GARBAGE,      /* garbage to every file descriptor 0..1023, the event pipe included */
    ACT_NAN,          /* fills the parameters with NaN */
    ACT_COMPLETE0     /* TP_TRAINING_COMPLETE at step 0 */
};

#ifndef HOSTILE_ACT
#error "build with -DHOSTILE_ACT=ACT_... -DHOSTILE_ID=\"...\" (tests/sandbox.cmake)"
#endif
#ifndef HOSTILE_STEP
#define HOSTILE_STEP 3
#endif
#define LEARNING_RATE 0.1f
#define CHUNK_MB      64

typedef struct sgd {
    float *grad; /* (num_params) */
    uint64_t n;
} sgd;

/* Zero, but not a constant the compiler can see through. */
static volatile uintptr_t zero_address;

/* Not instrumented in sanitizer builds: a real third-party plugin would just crash, and the
 * sanitizers would otherwise turn the NULL store into their own report and exit. */
__attribute__((no_sanitize_undefined, no_sanitize_address, noinline)) static void segfault(void)
{
    volatile int *p = (volatile int *)zero_address;
    *p = 42; /* SIGSEGV */
}

static int fail(tp_error *err, int code, const char *fmt, const char *what)
{
    snprintf(err->message, sizeof err->message, fmt, what);
    return code;
}

static int hostile_init(const tp_host *host, tp_ctx *ctx, void **state, tp_error *err)
{
    if (HOSTILE_ACT == ACT_SEGV_INIT)
        segfault();
    sgd *s = host->alloc(ctx, sizeof *s);
    if (!s)
        return fail(err, TP_ENOMEM, "%s", "no memory for the state");
    host->params(ctx, &s->n);
    s->grad = host->alloc(ctx, s->n * sizeof(float));
    if (!s->grad) {
        host->free(ctx, s);
        return fail(err, TP_ENOMEM, "%s", "no memory for the gradient");
    }
    *state = s;
    return TP_OK;
}

static void hostile_destroy(void *state, const tp_host *host, tp_ctx *ctx)
{
    sgd *s = state;
    host->free(ctx, s->grad);
    host->free(ctx, s);
}

/* host->alloc in CHUNK_MB pieces, chained through their first bytes, until it says no. */
static int allocate_until_refused(const tp_host *host, tp_ctx *ctx, tp_error *err)
{
    const char *cap_env = getenv("TP_HOSTILE_ALLOC_CAP_MB");
    size_t cap_mb = cap_env ? (size_t)strtoull(cap_env, NULL, 10) : 4096;
    void *head = NULL;
    size_t got_mb = 0;
    int refused = 0;
    while (got_mb < cap_mb) {
        void **block = host->alloc(ctx, (size_t)CHUNK_MB << 20);
        if (!block) {
            refused = 1;
            break;
        }
        *block = head;
        head = block;
        got_mb += CHUNK_MB;
    }
    while (head) {
        void *next = *(void **)head;
        host->free(ctx, head);
        head = next;
    }
    char what[96];
    snprintf(what, sizeof what, "%zu MiB", got_mb);
    if (!refused)
        return fail(err, TP_EPLUGIN, "host->alloc was not stopped: it granted %s", what);
    return fail(err, TP_ENOMEM, "host->alloc refused after %s", what);
}

static int fork_repeatedly(tp_error *err)
{
    char children[32];
    for (int i = 0; i < 32; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (;;)
                pause(); /* killed with the worker's process group */
        }
        if (pid < 0)
            return fail(err, TP_EPLUGIN, "fork failed instead of being trapped: %s",
                        strerror(errno));
        snprintf(children, sizeof children, "%d", i + 1);
    }
    return fail(err, TP_EPLUGIN, "fork was not stopped: %s children", children);
}

/* Open `path` for writing; `overwrite`: also clobber its first bytes. */
static int open_for_writing(const char *path, int overwrite, tp_error *err)
{
    if (!path)
        return fail(err, TP_EPLUGIN, "%s", "the test did not say which file to open");
    int fd = open(path, overwrite ? O_WRONLY | O_CLOEXEC : O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return fail(err, TP_EPLUGIN, "open failed instead of being trapped: %s", strerror(errno));
    if (overwrite && pwrite(fd, "hostile!", 8, 0) != 8)
        (void)0; /* the attempt is what counts */
    close(fd);
    return fail(err, TP_EPLUGIN, "opening %s for writing was not stopped", path);
}

static int open_socket(tp_error *err)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return fail(err, TP_EPLUGIN, "socket failed instead of being trapped: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(9); /* discard */
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)connect(fd, (struct sockaddr *)&a, sizeof a);
    close(fd);
    return fail(err, TP_EPLUGIN, "%s", "a TCP socket was not stopped");
}

/* The event pipe first: its garbage reaches the host before anything the sandbox could stop
 * (writes to other fds are trapped), so the host must judge the stream itself. */
static void write_garbage_everywhere(void)
{
    static const char junk[] = "\xde\xad\xbe\xef this is not a trainperf event \xff\xfe\n";
    ssize_t w = write(3, junk, sizeof junk - 1);
    for (int fd = 0; fd < 1024; fd++)
        if (fd != 3)
            w = write(fd, junk, sizeof junk - 1);
    (void)w;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* What a benign submission may do with libc: qsort a large array (glibc's qsort asks the
 * kernel for the memory size, sysinfo(2), before sorting more than 1 KiB). */
static int sort_gradient_copy(sgd *s, const tp_host *host, tp_ctx *ctx, tp_error *err)
{
    size_t n = s->n < 65536 ? (size_t)s->n : 65536;
    float *copy = malloc(n * sizeof *copy);
    if (!copy)
        return fail(err, TP_ENOMEM, "%s", "no memory for the sort");
    memcpy(copy, host->params(ctx, NULL), n * sizeof *copy);
    qsort(copy, n, sizeof *copy, cmp_float);
    int sorted = 1;
    for (size_t i = 1; i < n; i++)
        sorted &= copy[i - 1] <= copy[i];
    free(copy);
    return sorted ? TP_OK : fail(err, TP_EPLUGIN, "%s", "qsort did not sort");
}

static int hostile_act(sgd *s, const tp_host *host, tp_ctx *ctx, tp_error *err)
{
    switch ((enum act)HOSTILE_ACT) {
    case ACT_SEGV_UPDATE:
        segfault();
        break;
    case ACT_ABORT:
        abort();
    case ACT_EXIT:
        exit(0);
    case ACT_ERROR:
        return fail(err, TP_EINVAL, "%s", "hostile: refusing to train");
    case ACT_LOOP: {
        volatile unsigned long spin = 0;
        for (;;)
            spin++;
    }
    case ACT_SLEEP:
        for (;;) {
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
        }
    case ACT_ALLOC:
        return allocate_until_refused(host, ctx, err);
    case ACT_FORK:
        return fork_repeatedly(err);
    case ACT_OPEN_PASSWD:
        return open_for_writing("/etc/passwd", 0, err);
    case ACT_OPEN_DB:
        return open_for_writing(getenv("TP_HOSTILE_RESULTS_DB"), 1, err);
    case ACT_OPEN_DATASET:
        return open_for_writing(getenv("TP_HOSTILE_DATASET_FILE"), 0, err);
    case ACT_SOCKET:
        return open_socket(err);
    case ACT_EXEC:
        execl("/bin/sh", "sh", "-c", "echo hostile: a shell got through; exit 0", (char *)NULL);
        return fail(err, TP_EPLUGIN, "execve failed instead of being trapped: %s", strerror(errno));
    case ACT_GARBAGE:
        write_garbage_everywhere();
        break;
    case ACT_NONE:
        return sort_gradient_copy(s, host, ctx, err);
    default:
        break;
    }
    return TP_OK;
}

static int hostile_update(void *state, const tp_host *host, tp_ctx *ctx, const tp_update_args *a,
                          tp_error *err)
{
    sgd *s = state;
    if (HOSTILE_ACT == ACT_COMPLETE0 && a->step == 0)
        return TP_TRAINING_COMPLETE;
    if (HOSTILE_ACT == ACT_NAN && a->step >= HOSTILE_STEP) {
        float *p = host->params(ctx, NULL);
        for (uint64_t i = 0; i < s->n; i++)
            p[i] = NAN;
        return TP_OK;
    }
    if (a->step == HOSTILE_STEP) {
        int rc = hostile_act(s, host, ctx, err);
        if (rc != TP_OK)
            return rc;
    }
    double loss;
    int rc = host->loss_and_grad(ctx, NULL, a->batch, NULL, s->grad, &loss);
    if (rc != TP_OK)
        return fail(err, rc, "%s", "loss_and_grad failed");
    host->vec_axpy(s->n, -LEARNING_RATE * (float)a->lr_factor, s->grad, host->params(ctx, NULL));
    return TP_OK;
}

#ifdef HUGE_DESC
/* A descriptor that claims a whole MiB: the loader must read only the fields it knows. */
#define DESC_SIZE (1u << 20)
#else
#define DESC_SIZE ((uint32_t)sizeof(tp_plugin_desc))
#endif

static const tp_plugin_desc desc = {
    .struct_size = DESC_SIZE,
    .sdk_version = TP_SDK_VERSION,
    .id = HOSTILE_ID,
    .kind = TP_PLUGIN_OPTIMIZER,
    .description = "a hostile-submission fixture (tests/sandbox)",
    .init = hostile_init,
    .update = hostile_update,
    .destroy = hostile_destroy,
};

TP_PLUGIN_ENTRY(index)
{
    return index == 0 ? &desc : NULL;
}
