/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the CLI's command-line parsing: the input is split
 * at NUL bytes into arguments and parsed, without running anything.  Run
 * with -close_fd_mask=2 to silence the usage messages.  Without libFuzzer,
 * tests/fuzz/standalone_main.c replays the seeds of
 * corpus/cli_argv as a test.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[MAX_ARGS + 2];
	char *buf = malloc(size + 1), *p, *end;
	int argc = 0, r;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = (char *)"ivlink";
	for (p = buf, end = buf + size; p < end && argc <= MAX_ARGS; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	r = cli_parse_only(argc, argv);
	free(buf);
	/* A parse either succeeds or is a usage error: never anything else. */
	if (r != 0 && r != 2)
		abort();
	return 0;
}
