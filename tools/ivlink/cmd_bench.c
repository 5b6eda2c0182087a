/* SPDX-License-Identifier: MIT */
/* ivlink bench: the doorbell benchmark of bench/lib/doorbell.c, in the CLI. */
#include <stdio.h>
#include <stdint.h>

#include "common.h"
#include "doorbell.h"

const char bench_usage[] =
	"Usage: ivlink bench [--iters N] [--burst N] [--idle-ms MS] [--spin-ns NS] [--json]\n"
	"\n"
	"Measure doorbells on this machine, in one run: round-trip latency (p50/p99)\n"
	"of the raw wake-up primitives (eventfd, futex, pipe, UNIX socket, a polled\n"
	"cache line) and of ivlink links in each wait mode (interrupt, poll,\n"
	"adaptive); burst throughput to a busy receiver with eventfd writes per\n"
	"doorbell; the CPU use of an idle receiver.  Results are ratios to the\n"
	"primitives: compare those between machines, not absolute times.  Runs in\n"
	"this process (two threads, a local hub); needs no server.  Takes about a\n"
	"minute with the defaults (20000 round trips, a burst of 1000000, 2000 ms\n"
	"idle, spin budget 50000 ns).\n";

enum { OPT_ITERS = 1, OPT_BURST, OPT_IDLE, OPT_SPIN };

static const struct opt bench_opts[] = {
	{ "iters", 0, OPT_ARG, OPT_ITERS },
	{ "burst", 0, OPT_ARG, OPT_BURST },
	{ "idle-ms", 0, OPT_ARG, OPT_IDLE },
	{ "spin-ns", 0, OPT_ARG, OPT_SPIN },
	{ NULL, 0, OPT_FLAG, 0 },
};

static const char *const bench_flag[] = { NULL, "--iters", "--burst", "--idle-ms", "--spin-ns" };

/* Parse into @args (bench_doorbell's own argv, "bench" first, at most 10
 * entries); @args may be NULL to check only. */
static int parse(struct cli_global *g, int argc, char **argv, char **args, int *nargs)
{
	struct optparse p;
	const char *val;
	uint64_t v;
	int id, r, n = 1;

	optparse_init(&p, argc, argv, g->cmd);
	while ((id = opt_next(&p, bench_opts, cli_common_opts, &val)) != -1) {
		if (id == -2)
			return -2;
		if (id == 0)
			return cli_usage_error(g->cmd, "unexpected argument '%s'", val);
		if (id >= OPT_ITERS && id <= OPT_SPIN) {
			if (parse_num_arg(g->cmd, bench_flag[id] + 2, val, 1, 100000000, &v))
				return -2;
			if (args && n < 9) {
				args[n++] = (char *)bench_flag[id];
				args[n++] = (char *)val;
			}
		} else if ((r = cli_common_apply(g, id, val))) {
			return r;
		}
	}
	if (args) {
		args[0] = (char *)"bench";
		if (g->json)
			args[n++] = (char *)"--json";
		args[n] = NULL;
		*nargs = n;
	}
	return 0;
}

int bench_parse(struct cli_global *g, int argc, char **argv)
{
	return parse(g, argc, argv, NULL, NULL);
}

int bench_main(struct cli_global *g, int argc, char **argv)
{
	char *args[12];
	int n = 0, r;

	r = parse(g, argc, argv, args, &n);
	if (r == CLI_HELP)
		return print_command_help(find_command("bench"));
	if (r)
		return EXIT_USAGE;
	return bench_doorbell_main(n, args) == 0 ? EXIT_OK : EXIT_FAIL;
}
