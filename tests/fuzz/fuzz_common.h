/*
 * fuzz_common.h - what the libFuzzer targets under tests/fuzz/ share: a private temporary
 * directory for the inputs of loaders that read files by path, and checks that turn a broken
 * contract into a crash libFuzzer records.
 *
 * Not here: the targets themselves (fuzz_*.c) and the corpus (corpus/<target>/).
 */
#ifndef TP_FUZZ_COMMON_H
#define TP_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* A contract the code under test broke: print what and where, then abort so that libFuzzer
 * keeps the input as a crash. Not for bad input, which the code must reject with an error. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__FILE__, __LINE__, #cond);                                                  \
    } while (0)

_Noreturn void fuzz_fail(const char *file, int line, const char *what);

/* "<dir>/<name>" inside this process's temporary directory, created on first use under
 * $TMPDIR, else /dev/shm, else /tmp, and removed (with the files named through it) at exit.
 * The returned string is owned by the helper and lives until exit. */
const char *fuzz_tmp_path(const char *name);

/* Replace the file at path with data[size]; aborts when the file cannot be written (the
 * fuzzer would otherwise test nothing). */
void fuzz_write_file(const char *path, const uint8_t *data, size_t size);

/* Around each input of a target that parses libconfig: begin starts recording the heap blocks
 * allocated, end frees those still live that libconfig's lexer allocated. libconfig 1.5 (Debian
 * 12) leaks a string token its parser discards while recovering from a syntax error
 * (hyperrealm/libconfig issue 142, fixed upstream by pull request 155). Left alone, that leak
 * makes libFuzzer suspect every such input and, after 1000 suspicions, stop looking for leaks
 * after each input; freed here, a leak of trainperf's code is still reported with the input
 * that caused it. */
void fuzz_leaks_begin(void);
void fuzz_leaks_end(void);

/* An error message as the project promises them: written (non-empty) and terminated within
 * its buffer. */
void fuzz_check_message(const char *err, size_t errlen);

/* 1 when the n bytes at p are all zero ("*out is left empty" after a failed load). */
int fuzz_is_zero(const void *p, size_t n);

/* FNV-1a of data[size]: a stable way to derive small choices (how many points, where to split)
 * from the input itself. */
uint64_t fuzz_hash(const uint8_t *data, size_t size);

#endif /* TP_FUZZ_COMMON_H */
