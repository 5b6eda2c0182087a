/* SPDX-License-Identifier: MIT */
/* ivlink listen: print link events as they arrive. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common.h"

const char listen_usage[] =
    "Usage: ivlink listen [--count N] [--timeout SEC] [--type TYPES] [--name NAME]\n"
    "\n"
    "Connect to the server as a peer and print one line per event (join, leave,\n"
    "doorbell with its vector and coalesced count, down), flushed at once; with\n"
    "--json one JSON object per line.  The first line, \"self peer ID\" (event\n"
    "\"self\"), gives this peer's own ID; it is not counted by --count.  Runs\n"
    "until N events were printed, SEC seconds passed, or SIGINT/SIGTERM arrived\n"
    "(exit 0 in all three cases).\n"
    "\n"
    "Options:\n"
    "  -n, --count N       stop after N printed events (1..1000000000)\n"
    "  -t, --timeout SEC   stop after SEC seconds (decimals allowed: 0.5)\n"
    "      --type TYPES    print only these: comma-separated self, join, leave,\n"
    "                      doorbell, down (default: all)\n"
    "      --name NAME     the peer name sent to the server (default " CLI_PEER_NAME ")\n";

enum { OPT_COUNT = 1, OPT_TIMEOUT, OPT_TYPE, OPT_NAME };

static const struct opt listen_opts[] = {
    {"count", 'n', OPT_ARG, OPT_COUNT},
    {"timeout", 't', OPT_ARG, OPT_TIMEOUT},
    {"type", 0, OPT_ARG, OPT_TYPE},
    {"name", 0, OPT_ARG, OPT_NAME},
    {0},
};

static int parse_types(const char *s, unsigned *out)
{
	static const struct {
		const char *n;
		unsigned bit;
	} names[] = {
	    {"join", LISTEN_JOIN},
	    {"leave", LISTEN_LEAVE},
	    {"doorbell", LISTEN_DOORBELL},
	    {"down", LISTEN_DOWN},
	    {"self", LISTEN_SELF},
	};
	unsigned mask = 0;

	while (*s) {
		size_t len = strcspn(s, ","), i;

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strlen(names[i].n) == len && !strncmp(names[i].n, s, len))
				break;
		if (i == sizeof(names) / sizeof(names[0]))
			return -EINVAL;
		mask |= names[i].bit;
		s += len;
		if (*s == ',' && !*++s)
			return -EINVAL;
	}
	if (!mask)
		return -EINVAL;
	*out = mask;
	return 0;
}

int listen_parse(struct cli_global *g, int argc, char **argv, struct listen_args *a)
{
	struct optparse p;
	const char *val;
	int id, r;

	memset(a, 0, sizeof(*a));
	a->types = LISTEN_JOIN | LISTEN_LEAVE | LISTEN_DOORBELL | LISTEN_DOWN | LISTEN_SELF;
	a->name = CLI_PEER_NAME;
	optparse_init(&p, argc, argv, g->cmd);
	while ((id = opt_next(&p, listen_opts, cli_common_opts, &val)) != -1) {
		switch (id) {
		case -2:
			return -2;
		case 0:
			return cli_usage_error(g->cmd, "unexpected argument '%s'", val);
		case OPT_COUNT:
			if (parse_num_arg(g->cmd, "count", val, 1, 1000000000, &a->count))
				return -2;
			break;
		case OPT_TIMEOUT:
			r = parse_seconds_ms(val, 86400000ull * 365, &a->timeout_ms);
			if (r < 0 || !a->timeout_ms)
				return cli_usage_error(g->cmd, "invalid timeout '%s' (seconds > 0)",
						       val);
			break;
		case OPT_TYPE:
			if (parse_types(val, &a->types) < 0)
				return cli_usage_error(g->cmd, "invalid event types '%s'", val);
			break;
		case OPT_NAME:
			if (strlen(val) > IVL_NAME_LEN)
				return cli_usage_error(g->cmd, "name longer than %d bytes",
						       IVL_NAME_LEN);
			a->name = val;
			break;
		default:
			if ((r = cli_common_apply(g, id, val)))
				return r;
		}
	}
	if (g->shm || g->file)
		return cli_usage_error(g->cmd, "listening needs a server, not --shm/--file");
	return 0;
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned type_bit(enum ivl_link_event_type t)
{
	switch (t) {
	case IVL_LINK_JOIN:
		return LISTEN_JOIN;
	case IVL_LINK_LEAVE:
		return LISTEN_LEAVE;
	case IVL_LINK_DOORBELL:
		return LISTEN_DOORBELL;
	case IVL_LINK_DOWN:
		return LISTEN_DOWN;
	}
	return 0;
}

static int print_event(const struct cli_global *g, struct ivl_link *l,
		       const struct ivl_link_event *e)
{
	char name[IVL_NAME_LEN + 1] = "";

	if (e->type == IVL_LINK_JOIN)
		link_peer_name(l, e->peer, name);
	if (g->json) {
		json_t *o;

		switch (e->type) {
		case IVL_LINK_JOIN:
			o = json_pack("{s:s, s:i, s:i, s:s}", "event", "join", "peer", e->peer,
				      "vectors", (int)ivl_link_peer_vectors(l, e->peer), "name",
				      name);
			break;
		case IVL_LINK_LEAVE:
			o = json_pack("{s:s, s:i}", "event", "leave", "peer", e->peer);
			break;
		case IVL_LINK_DOORBELL:
			o = json_pack("{s:s, s:i, s:I}", "event", "doorbell", "vector", e->vector,
				      "count", (json_int_t)e->count);
			break;
		default:
			o = json_pack("{s:s}", "event", "down");
		}
		return json_print(o, true);
	}
	switch (e->type) {
	case IVL_LINK_JOIN:
		printf("join peer %u vectors %u%s%s\n", e->peer, ivl_link_peer_vectors(l, e->peer),
		       name[0] ? " name " : "", name);
		break;
	case IVL_LINK_LEAVE:
		printf("leave peer %u\n", e->peer);
		break;
	case IVL_LINK_DOORBELL:
		printf("doorbell vector %u count %u\n", e->vector, e->count);
		break;
	default:
		printf("down\n");
	}
	return fflush(stdout) == EOF ? EXIT_FAIL : EXIT_OK;
}

static int print_self(const struct cli_global *g, struct ivl_link *l)
{
	if (g->json)
		return json_print(json_pack("{s:s, s:i}", "event", "self", "peer", ivl_link_id(l)),
				  true);
	printf("self peer %d\n", ivl_link_id(l));
	return fflush(stdout) == EOF ? EXIT_FAIL : EXIT_OK;
}

static int run(const struct cli_global *g, const struct listen_args *a, struct ivl_link *l)
{
	int64_t end = a->timeout_ms ? now_ms() + (int64_t)a->timeout_ms : 0;
	uint64_t printed = 0;
	struct ivl_link_event ev[32];

	for (;;) {
		int wait_ms = 200, n;

		if (stop_signal)
			return EXIT_OK;
		if (end) {
			int64_t left = end - now_ms();

			if (left <= 0)
				return EXIT_OK;
			if (left < wait_ms)
				wait_ms = (int)left;
		}
		/* Short slices: a signal landing just before the wait must
		 * not leave us blocked until the next event. */
		n = ivl_link_wait(l, ev, 32, wait_ms);
		if (n == -EINTR)
			continue;
		if (n < 0) {
			cli_err(g, "%s: %s", g->socket,
				n == -ENOTCONN ? "the server went away" : strerror(-n));
			return EXIT_FAIL;
		}
		for (int i = 0; i < n; i++) {
			if (a->types & type_bit(ev[i].type)) {
				if (print_event(g, l, &ev[i]))
					return EXIT_FAIL;
				printed++;
				if (a->count && printed >= a->count)
					return EXIT_OK;
			}
			if (ev[i].type == IVL_LINK_DOWN) {
				if (g->device)
					cli_err(g, "device %s: the device was removed", g->device);
				else
					cli_err(g, "%s: the server went away", g->socket);
				return EXIT_FAIL;
			}
		}
	}
}

int listen_main(struct cli_global *g, int argc, char **argv)
{
	struct listen_args a;
	struct sigaction sa = {.sa_handler = on_signal};
	struct ivl_link *l;
	int r;

	r = listen_parse(g, argc, argv, &a);
	if (r == CLI_HELP)
		return print_command_help(find_command("listen"));
	if (r)
		return EXIT_USAGE;
	cli_log_setup(g);
	/* No SA_RESTART: the wait must return -EINTR. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (cli_connect(g, a.name, &l) < 0)
		return EXIT_FAIL;
	if (g->verbose)
		fprintf(stderr, "ivlink: listen: listening as peer %d on %s\n", ivl_link_id(l),
			g->socket);
	r = a.types & LISTEN_SELF ? print_self(g, l) : EXIT_OK;
	if (r == EXIT_OK)
		r = run(g, &a, l);
	ivl_link_free(l);
	return r;
}
