/*
 * main.c - the trainperf host executable; everything is in cli.c.
 */
#include "core/cli.h"

#if defined(__SANITIZE_ADDRESS__)
/* LeakSanitizer (the sanitizer build): PLplot's cairo device lays text out with pango, which
 * leaves fontconfig's caches unreachable at exit, once per process that draws a PNG (`score
 * --plot`, `report`, `sharpness`); and PLplot keeps a string of its own. Those two, nothing
 * else, as tests/unit/test_report.c does for the same calls. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\nleak:plstrdup\n";
}
#endif

int main(int argc, char **argv)
{
    return tp_cli_main(argc, argv);
}
