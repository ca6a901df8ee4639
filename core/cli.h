/*
 * cli.h - the `trainperf` command line: run, check, list, results, help.
 */
#ifndef TP_CORE_CLI_H
#define TP_CORE_CLI_H

int tp_cli_main(int argc, char **argv);

#endif /* TP_CORE_CLI_H */
