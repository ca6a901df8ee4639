/*
 * tp_test.h - scaffolding shared by the tests that run real trainperf processes: a temporary
 * directory per test program (kept for a look when TP_KEEP_TMP is set) and the environment
 * their workers need in sanitizer builds.
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

#endif /* TP_TESTS_TP_TEST_H */
