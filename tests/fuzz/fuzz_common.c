/*
 * fuzz_common.c - see fuzz_common.h.
 *
 * The temporary directory is made once per process (mkdtemp), so parallel fuzzing jobs never
 * share a file; RAM-backed /dev/shm keeps the write-then-load of every input cheap. The files
 * are rewritten in place for each input, never accumulated.
 *
 * Also here, for every target: the sanitizers' default options (a smaller ASan quarantine,
 * LeakSanitizer suppressions for libconfig's own leak) and the per-input freeing of that leak's
 * blocks, found through sanitizer malloc/free hooks and ASan's allocation stacks.
 *
 * Not here: anything specific to one target.
 */
#define _GNU_SOURCE /* dladdr */

#include "fuzz_common.h"

#include <dlfcn.h>
#include <link.h> /* ElfW */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sanitizer/allocator_interface.h>
#include <sanitizer/asan_interface.h>

enum { MAX_FILES = 8 };

static char tmp_dir[4096];
static char *tmp_files[MAX_FILES];
static size_t num_tmp_files;

void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
    abort();
}

static void remove_tmp(void)
{
    for (size_t i = 0; i < num_tmp_files; i++) {
        unlink(tmp_files[i]);
        free(tmp_files[i]);
    }
    num_tmp_files = 0;
    if (tmp_dir[0] != '\0')
        rmdir(tmp_dir);
    tmp_dir[0] = '\0';
}

static int is_dir(const char *path)
{
    struct stat st;
    return path != NULL && path[0] != '\0' && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void make_tmp_dir(void)
{
    const char *env = getenv("TMPDIR");
    const char *base = is_dir(env) ? env : is_dir("/dev/shm") ? "/dev/shm" : "/tmp";
    int n = snprintf(tmp_dir, sizeof tmp_dir, "%s/tpfuzz-XXXXXX", base);
    if (n < 0 || (size_t)n >= sizeof tmp_dir || mkdtemp(tmp_dir) == NULL) {
        fprintf(stderr, "fuzz: cannot make a temporary directory under %s: %s\n", base,
                strerror(errno));
        abort();
    }
    atexit(remove_tmp);
}

const char *fuzz_tmp_path(const char *name)
{
    if (tmp_dir[0] == '\0')
        make_tmp_dir();
    size_t len = strlen(tmp_dir) + 1 + strlen(name) + 1;
    for (size_t i = 0; i < num_tmp_files; i++)
        if (strlen(tmp_files[i]) + 1 == len &&
            strcmp(tmp_files[i] + strlen(tmp_dir) + 1, name) == 0)
            return tmp_files[i];
    if (num_tmp_files == MAX_FILES) {
        fprintf(stderr, "fuzz: more than %d temporary files asked for\n", MAX_FILES);
        abort();
    }
    char *path = malloc(len);
    if (path == NULL)
        abort();
    snprintf(path, len, "%s/%s", tmp_dir, name);
    tmp_files[num_tmp_files++] = path;
    return path;
}

void fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
            abort();
        }
        off += (size_t)n;
    }
    close(fd);
}

void fuzz_check_message(const char *err, size_t errlen)
{
    FUZZ_CHECK(memchr(err, '\0', errlen) != NULL);
    FUZZ_CHECK(err[0] != '\0');
}

int fuzz_is_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* libconfig's lexer leak (see fuzz_leaks_begin) */

/* The blocks allocated during an input and not yet freed: an open-addressing set filled by
 * sanitizer malloc/free hooks, which must not allocate. Slots of an older input are stale by
 * their generation, so nothing is cleared between inputs. Past half full, the input is not
 * tracked any further (libFuzzer then judges it alone). */
enum { TRACK_SLOTS = 1 << 16, TRACK_MAX = TRACK_SLOTS / 2 };

typedef struct track_slot {
    const volatile void *p;
    uint32_t gen;
    uint32_t live; /* 0: freed since (a tombstone) */
} track_slot;

static track_slot track[TRACK_SLOTS];
static uint32_t track_used[TRACK_MAX]; /* slots filled during this input */
static size_t track_count;
static uint32_t track_gen;
static int tracking, track_overflow;

static size_t track_hash(const volatile void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x & (TRACK_SLOTS - 1);
}

static void on_malloc(const volatile void *p, size_t size)
{
    (void)size;
    if (!tracking || track_overflow)
        return;
    if (track_count == TRACK_MAX) {
        track_overflow = 1;
        return;
    }
    size_t i = track_hash(p);
    while (track[i].gen == track_gen && track[i].live)
        i = (i + 1) & (TRACK_SLOTS - 1);
    if (track[i].gen != track_gen)
        track_used[track_count++] = (uint32_t)i;
    track[i] = (track_slot){p, track_gen, 1};
}

static void on_free(const volatile void *p)
{
    if (!tracking || track_overflow)
        return;
    for (size_t i = track_hash(p); track[i].gen == track_gen; i = (i + 1) & (TRACK_SLOTS - 1))
        if (track[i].p == p && track[i].live) {
            track[i].live = 0;
            return;
        }
}

/* 1 when the block at p was allocated by libconfig's lexer: the caller of the allocator (frame
 * 1 of its allocation stack; frame 0 is AddressSanitizer's malloc) lies inside strbuf_append or
 * libconfig_yylex, bounds checked with the symbol's size so that a static function after them
 * does not pass for them. */
static int from_libconfig_lexer(void *p)
{
    void *trace[2];
    int tid;
    if (__asan_get_alloc_stack(p, trace, 2, &tid) < 2)
        return 0;
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if (dladdr1(trace[1], &info, (void **)&sym, RTLD_DL_SYMENT) == 0 || sym == NULL ||
        info.dli_sname == NULL)
        return 0;
    uintptr_t pc = (uintptr_t)trace[1], start = (uintptr_t)info.dli_saddr;
    if (pc < start || pc >= start + sym->st_size)
        return 0;
    return strcmp(info.dli_sname, "strbuf_append") == 0 ||
           strcmp(info.dli_sname, "libconfig_yylex") == 0;
}

void fuzz_leaks_begin(void)
{
    static int installed;
    if (!installed) {
        __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
        installed = 1;
    }
    track_gen++;
    track_count = 0;
    track_overflow = 0;
    tracking = 1;
}

void fuzz_leaks_end(void)
{
    tracking = 0;
    if (track_overflow)
        return;
    for (size_t k = 0; k < track_count; k++) {
        track_slot *s = &track[track_used[k]];
        if (s->live && from_libconfig_lexer((void *)s->p))
            free((void *)s->p);
    }
}

/* LeakSanitizer's suppressions, built in so that a crash reproduces without options: the same
 * libconfig leak, for the blocks fuzz_leaks_end did not free (an input past TRACK_MAX blocks)
 * when LeakSanitizer checks at exit. Nothing of trainperf's allocates through the lexer; a
 * config_t left undestroyed would still be reported through its settings. */
const char *__lsan_default_suppressions(void);

const char *__lsan_default_suppressions(void)
{
    return "leak:strbuf_append\n"
           "leak:libconfig_yylex\n";
}

/* AddressSanitizer's defaults: a quarantine of 8 MB instead of 256 MB. One input allocates far
 * less, so a use after free within an input is still caught, and the heap LeakSanitizer scans
 * after every input that leaves memory allocated (libconfig's leak above) stays small: the
 * config target runs about twice as fast. */
const char *__asan_default_options(void);

const char *__asan_default_options(void)
{
    return "quarantine_size_mb=8";
}

uint64_t fuzz_hash(const uint8_t *data, size_t size)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < size; i++) {
        h ^= data[i];
        h *= 1099511628211ull;
    }
    return h;
}
