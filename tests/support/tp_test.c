/*
 * tp_test.c - see tp_test.h.
 */
#define _GNU_SOURCE
#include "tp_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int tp_test_tmpdir(char *dir, size_t len, const char *name)
{
    static char asan[1024];
    const char *old = getenv("ASAN_OPTIONS");
    if (!old || !strstr(old, "handle_segv=0")) {
        snprintf(asan, sizeof asan, "%s%shandle_segv=0", old ? old : "", old && *old ? ":" : "");
        setenv("ASAN_OPTIONS", asan, 1);
    }
    if ((size_t)snprintf(dir, len, "/tmp/tp_%s_XXXXXX", name) >= len)
        return -1;
    return mkdtemp(dir) ? 0 : -1;
}

int tp_test_tmpdir_remove(const char *dir)
{
    if (getenv("TP_KEEP_TMP") || !dir[0])
        return 0;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int tp_test_trainperf(const char *out_path, const char *const *args)
{
    char *argv[96];
    int n = 0;
    argv[n++] = TP_TEST_BINARY_DIR "/trainperf";
    for (int i = 0; args[i] && n < 95; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        FILE *f = freopen(out_path, "w", stdout);
        if (!f || dup2(fileno(stdout), 2) < 0)
            _exit(99);
        execv(argv[0], argv);
        _exit(98);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int tp_test_file_contains(const char *path, const char *needle)
{
    static char buf[1 << 18];
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

void tp_test_show_file(const char *path)
{
    char line[1024];
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        fprintf(stderr, "    | %s", line);
    if (f)
        fclose(f);
}
