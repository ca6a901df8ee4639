/*
 * tp_test.h - scaffolding shared by the tests that run real trainperf processes: a temporary
 * directory per test program (kept for a look when TP_KEEP_TMP is set), the environment their
 * workers need in sanitizer builds, and running `trainperf` with its output in a file.
 */
#ifndef TP_TESTS_TP_TEST_H
#define TP_TESTS_TP_TEST_H

#include <stddef.h>

/* mkdtemp "/tmp/tp_<name>_XXXXXX" into dir, and turn off ASan's own SEGV handler for the
 * workers this test starts (a hostile plugin's crash must end its worker with the signal, as
 * in a normal build). 0 or -1. */
int tp_test_tmpdir(char *dir, size_t len, const char *name);
/* rm -rf dir, unless TP_KEEP_TMP is set. 0 or -1. */
int tp_test_tmpdir_remove(const char *dir);

/* Run the built `trainperf` with args (NULL-terminated, after the program name), its stdout
 * and stderr both to out_path. Its exit status; 128 + the signal when one killed it; -1 when it
 * could not be started. */
int tp_test_trainperf(const char *out_path, const char *const *args);
/* 1 when the file at path holds needle (its first 256 KiB), else 0. */
int tp_test_file_contains(const char *path, const char *needle);
/* The file at path on stderr, each line indented: a failed command's output in the test log. */
void tp_test_show_file(const char *path);

#endif /* TP_TESTS_TP_TEST_H */
