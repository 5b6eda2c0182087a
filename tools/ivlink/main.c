/* SPDX-License-Identifier: MIT */
/* ivlink: the command-line tool's entry point. */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "common.h"

int main(int argc, char **argv)
{
	struct cli_global g = {.cmd = "ivlink"};
	const struct command *c;
	const char *env = getenv("IVLINK_SOCKET");
	int idx, r;

	g.socket = env && *env ? env : CLI_DEFAULT_SOCKET;
	env = getenv("IVLINK_DEVICE");
	if (env && *env)
		g.device = env;
	r = cli_parse_global(&g, argc, argv, &idx);
	if (r == -2)
		return EXIT_USAGE;
	if (r == CLI_HELP) {
		print_main_help();
		return EXIT_OK;
	}
	if (r == CLI_VERSION) {
		printf("ivlink %s (library %s)\n", IVL_VERSION_STRING, ivl_version_string());
		return EXIT_OK;
	}
	if (idx >= argc) {
		cli_usage_error("ivlink", "no command given");
		return EXIT_USAGE;
	}
	c = find_command(argv[idx]);
	if (!c) {
		cli_usage_error("ivlink", "unknown command '%s'", argv[idx]);
		return EXIT_USAGE;
	}
	/* Library messages: errors and warnings always, more with -v; the
	 * command calls it again once its own -v options are parsed. */
	cli_log_setup(&g);
	g.cmd = c->name;
	/* The command sees its own arguments only, from argv[0] on. */
	return c->main(&g, argc - idx - 1, argv + idx + 1);
}
