/* SPDX-License-Identifier: MIT */
/* ivlink: the table of subcommands, the global options, help, and a
 * parse-only entry point for fuzzing.  Each subcommand lives in its own
 * cmd_*.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static int help_main(struct cli_global *g, int argc, char **argv);

static const char help_usage[] = "Usage: ivlink help [COMMAND]\n"
				 "\n"
				 "Show the list of commands, or the help of COMMAND.\n";

static int help_parse(struct cli_global *g, int argc, char **argv, const char **name);

/* Parse-only wrappers: validate a command line, keep nothing. */
static int ring_check(struct cli_global *g, int argc, char **argv)
{
	struct ring_args a;

	return ring_parse(g, argc, argv, &a);
}

static int listen_check(struct cli_global *g, int argc, char **argv)
{
	struct listen_args a;

	return listen_parse(g, argc, argv, &a);
}

#define MEM_CHECK(x)                                                                               \
	static int x##_check(struct cli_global *g, int argc, char **argv)                          \
	{                                                                                          \
		struct mem_args a;                                                                 \
		int r = x##_parse(g, argc, argv, &a);                                              \
		mem_args_release(&a);                                                              \
		return r;                                                                          \
	}
MEM_CHECK(dump)
MEM_CHECK(peek)
MEM_CHECK(poke)

/* ivlink sdm (cmd_sdm.c). */
extern const char sdm_usage[];
int sdm_main(struct cli_global *g, int argc, char **argv);
int sdm_check(struct cli_global *g, int argc, char **argv);

/* ivlink dev, ivlink console (cmd_dev.c). */
extern const char dev_usage[], console_usage[];
int dev_main(struct cli_global *g, int argc, char **argv);
int dev_check(struct cli_global *g, int argc, char **argv);
int console_main(struct cli_global *g, int argc, char **argv);
int console_check(struct cli_global *g, int argc, char **argv);

static int help_check(struct cli_global *g, int argc, char **argv)
{
	const char *name;

	return help_parse(g, argc, argv, &name);
}

static const struct command commands[] = {
    {"peers", "list the peers connected to the server", peers_usage, peers_main, simple_parse},
    {"info", "show the region, its header and the peer table", info_usage, info_main, simple_parse},
    {"ring", "ring a doorbell of a peer, or of every peer", ring_usage, ring_main, ring_check},
    {"listen", "print join, leave and doorbell events as they arrive", listen_usage, listen_main,
     listen_check},
    {"dump", "hexdump part of the shared region", dump_usage, dump_main, dump_check},
    {"peek", "read bytes or integers from the shared region", peek_usage, peek_main, peek_check},
    {"poke", "write bytes, a string or an integer into the shared region", poke_usage, poke_main,
     poke_check},
    {"demo", "run a server and three peers in this process and show them talk", demo_usage,
     demo_main, simple_parse},
    {"sdm", "run or drive a Signal Distribution Module master or slave", sdm_usage, sdm_main,
     sdm_check},
    {"bench", "measure doorbell latency, coalescing and idle cost on this machine", bench_usage,
     bench_main, bench_parse},
    {"dev", "serve managed virtio devices, or create, list and destroy them", dev_usage,
     dev_main, dev_check},
    {"console", "attach the terminal to a managed console", console_usage, console_main,
     console_check},
    {"help", "show help for a command", help_usage, help_main, help_check},
};

const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

int print_command_help(const struct command *c)
{
	fputs(c->usage, stdout);
	fputs("\nCommon options: -S/--socket PATH, --device auto|BDF, --shm NAME, --file PATH, "
	      "--plain PATH[:SIZE], "
	      "--json, "
	      "-v/--verbose, -h/--help\n",
	      stdout);
	return fflush(stdout) == EOF ? EXIT_FAIL : EXIT_OK;
}

void print_main_help(void)
{
	printf("Usage: ivlink [OPTIONS] COMMAND [ARGS]\n"
	       "\n"
	       "Inspect and drive ivshmem/ivlink shared memory and doorbells.\n"
	       "\n"
	       "Options:\n"
	       "  -S, --socket PATH  server socket (default: $IVLINK_SOCKET or %s)\n"
	       "      --shm NAME     map the POSIX shm object NAME instead of connecting\n"
	       "      --file PATH    map the file PATH instead of connecting\n"
	       "      --plain PATH[:SIZE]  serverless: create or open the file PATH, format\n"
	       "                     its ivlink header once (docs/plain.md)\n"
	       "      --device DEV   in a guest: use the ivshmem PCI device DEV (auto, or an\n"
	       "                     address like 0000:00:03.0; default: $IVLINK_DEVICE)\n"
	       "      --json         print data as JSON\n"
	       "  -v, --verbose      log what the library does to stderr\n"
	       "  -h, --help         show this help\n"
	       "      --version      show the version\n"
	       "\n"
	       "Commands:\n",
	       CLI_DEFAULT_SOCKET);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		printf("  %-8s %s\n", commands[i].name, commands[i].summary);
	printf("\nRun 'ivlink COMMAND --help' for the options of a command.\n");
	fflush(stdout);
}

static int help_parse(struct cli_global *g, int argc, char **argv, const char **name)
{
	struct optparse p;
	const char *val;
	int id;

	*name = NULL;
	optparse_init(&p, argc, argv, g->cmd);
	while ((id = opt_next(&p, NULL, cli_common_opts, &val)) != -1) {
		if (id == -2)
			return -2;
		if (id == OPT_C_HELP)
			return CLI_HELP;
		if (id != 0)
			continue; /* other common options do not matter here */
		if (*name)
			return cli_usage_error(g->cmd, "unexpected argument '%s'", val);
		*name = val;
	}
	if (*name && !find_command(*name))
		return cli_usage_error(g->cmd, "unknown command '%s'", *name);
	return 0;
}

static int help_main(struct cli_global *g, int argc, char **argv)
{
	const char *name;
	int r = help_parse(g, argc, argv, &name);

	if (r == CLI_HELP)
		return print_command_help(find_command("help"));
	if (r)
		return EXIT_USAGE;
	if (!name) {
		print_main_help();
		return EXIT_OK;
	}
	return print_command_help(find_command(name));
}

/* Parse the options before the command; *cmd_index is the command's index
 * in argv (argc when missing).  Returns 0, CLI_HELP, CLI_VERSION or -2. */
int cli_parse_global(struct cli_global *g, int argc, char **argv, int *cmd_index)
{
	static const struct opt global_only[] = {
	    {"version", 0, OPT_FLAG, OPT_C_VERSION},
	    {0},
	};
	struct optparse p;
	const char *val;
	int id, r;

	optparse_init(&p, argc, argv, "ivlink");
	p.i = 1;
	*cmd_index = argc;
	while ((id = opt_next(&p, global_only, cli_common_opts, &val)) != -1) {
		if (id == -2)
			return -2;
		if (id == 0) {
			*cmd_index = p.i - 1;
			break;
		}
		if (id == OPT_C_VERSION)
			return CLI_VERSION;
		r = cli_common_apply(g, id, val);
		if (r)
			return r;
	}
	return 0;
}

int cli_parse_only(int argc, char **argv)
{
	struct cli_global g = {.cmd = "ivlink", .socket = CLI_DEFAULT_SOCKET};
	const struct command *c;
	int idx, r;

	r = cli_parse_global(&g, argc, argv, &idx);
	if (r < 0)
		return EXIT_USAGE;
	if (r)
		return EXIT_OK;
	if (idx >= argc)
		return cli_usage_error("ivlink", "no command given"), EXIT_USAGE;
	c = find_command(argv[idx]);
	if (!c)
		return cli_usage_error("ivlink", "unknown command '%s'", argv[idx]), EXIT_USAGE;
	g.cmd = c->name;
	return c->parse(&g, argc - idx - 1, argv + idx + 1) < 0 ? EXIT_USAGE : EXIT_OK;
}
