/*
 * main.c - the trainperf host executable; everything is in cli.c.
 */
#include "core/cli.h"

int main(int argc, char **argv)
{
    return tp_cli_main(argc, argv);
}
