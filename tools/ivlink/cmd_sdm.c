/* SPDX-License-Identifier: MIT */
/*
 * ivlink sdm: run an SDM master or slave, and drive a running one through
 * its control socket (docs/sdm.md §7).  This file: the command line (usage,
 * options, parsing, addresses); cmd_sdm.h lists the others.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "cmd_sdm.h"

/* Entry points for the command table (commands.c). */
int sdm_main(struct cli_global *g, int argc, char **argv);
int sdm_check(struct cli_global *g, int argc, char **argv);

const char sdm_usage[] =
    "Usage: ivlink sdm master --listen ADDR --max-slaves N [OPTIONS]\n"
    "       ivlink sdm slave --connect ADDR [--id N] [OPTIONS]\n"
    "       ivlink sdm send [--control PATH] TYPE SLAVE [P0 P1]\n"
    "       ivlink sdm status [--control PATH] [--json]\n"
    "       ivlink sdm max-slaves [--control PATH] N\n"
    "\n"
    "Run a Signal Distribution Module master or slave (docs/sdm.md), or drive a\n"
    "running one through its control socket.  ADDR is unix:PATH,\n"
    "tcp:HOST:PORT or link:SOCKET (an ivlink-server socket: mailboxes in the\n"
    "shared memory, doorbells as interrupts).  TYPE is irq, boot or reset;\n"
    "SLAVE is the destination ID (0, the master, when the daemon is a\n"
    "slave), or 'all' (master only): every registered slave, in one\n"
    "broadcast that reaches all of them or, if one is backed up, none;\n"
    "P0 and P1 are 32-bit payload words.  master and slave print one line per signal received\n"
    "and per slave joining or leaving (JSON with --json) until SIGINT/SIGTERM.\n"
    "\n"
    "Options:\n"
    "      --listen ADDR      master: where slaves connect\n"
    "      --connect ADDR     slave: the master's address\n"
    "      --max-slaves N     master: 1..1024\n"
    "      --id N             slave: the ID to ask for (default: any)\n"
    "      --master-peer N    slave on link: the master's link peer ID (printed\n"
    "                         by the master as 'listening N'; default 0)\n"
    "      --key FILE         pre-shared key: 32 bytes, binary or 64 hex digits,\n"
    "                         mode 0600; authenticates and encrypts every frame\n"
    "      --insecure         allow TCP without --key on a non-loopback address\n"
    "      --keepalive MS     keepalive period (default 1000; dead after 3)\n"
    "      --control PATH     control socket (default $IVLINK_SDM_CONTROL or\n"
    "                         " SDM_DEFAULT_CONTROL ")\n"
    "      --on-boot CMD      run CMD (sh -c) before a BOOT reaches the\n"
    "                         application; a failing CMD drops the signal\n"
    "      --on-reset CMD     the same for RESET\n"
    "      --on-irq CMD       run CMD for each IRQ\n"
    "                         CMD gets SDM_TYPE, SDM_SLAVE, SDM_FROM,\n"
    "                         SDM_PAYLOAD0, SDM_PAYLOAD1 in its environment\n";

enum {
	O_LISTEN = 1,
	O_CONNECT,
	O_MAX,
	O_ID,
	O_KEY,
	O_INSECURE,
	O_KA,
	O_CONTROL,
	O_BOOT,
	O_RESET,
	O_IRQ,
	O_MPEER,
};

static const struct opt sdm_opts[] = {
    {"listen", 0, OPT_ARG, O_LISTEN},
    {"connect", 0, OPT_ARG, O_CONNECT},
    {"max-slaves", 0, OPT_ARG, O_MAX},
    {"id", 0, OPT_ARG, O_ID},
    {"key", 0, OPT_ARG, O_KEY},
    {"insecure", 0, OPT_FLAG, O_INSECURE},
    {"keepalive", 0, OPT_ARG, O_KA},
    {"control", 0, OPT_ARG, O_CONTROL},
    {"on-boot", 0, OPT_ARG, O_BOOT},
    {"on-reset", 0, OPT_ARG, O_RESET},
    {"on-irq", 0, OPT_ARG, O_IRQ},
    {"master-peer", 0, OPT_ARG, O_MPEER},
    {0},
};

static int parse_mode(const char *s, enum sdm_mode *m)
{
	static const char *const names[] = {"master", "slave", "send", "status", "max-slaves"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i])) {
			*m = (enum sdm_mode)(i + 1);
			return 0;
		}
	return -EINVAL;
}

static int sdm_parse(struct cli_global *g, int argc, char **argv, struct sdm_args *a)
{
	const char *pos[4];
	unsigned npos = 0;
	struct optparse p;
	const char *val;
	int id, r;

	memset(a, 0, sizeof(*a));
	a->control = getenv("IVLINK_SDM_CONTROL");
	if (!a->control || !*a->control)
		a->control = SDM_DEFAULT_CONTROL;
	optparse_init(&p, argc, argv, g->cmd);
	while ((id = opt_next(&p, sdm_opts, cli_common_opts, &val)) != -1) {
		switch (id) {
		case -2:
			return -2;
		case 0:
			if (!a->mode) {
				if (parse_mode(val, &a->mode))
					return cli_usage_error(g->cmd, "unknown mode '%s'", val);
			} else if (npos < 4) {
				pos[npos++] = val;
			} else {
				return cli_usage_error(g->cmd, "unexpected argument '%s'", val);
			}
			break;
		case O_LISTEN:
		case O_CONNECT:
			a->addr = val;
			break;
		case O_MAX:
			if (parse_num_arg(g->cmd, "max-slaves", val, 1, IVL_SDM_MAX_SLAVES,
					  &a->max_slaves))
				return -2;
			break;
		case O_ID:
			if (parse_num_arg(g->cmd, "id", val, 1, IVL_SDM_MAX_SLAVES, &a->id))
				return -2;
			break;
		case O_KEY:
			a->key = val;
			break;
		case O_INSECURE:
			a->insecure = true;
			break;
		case O_KA:
			if (parse_num_arg(g->cmd, "keepalive", val, 10, 60000, &a->keepalive))
				return -2;
			break;
		case O_CONTROL:
			a->control = val;
			break;
		case O_MPEER:
			if (parse_num_arg(g->cmd, "master-peer", val, 0, UINT16_MAX,
					  &a->master_peer))
				return -2;
			break;
		case O_BOOT:
			a->hook[IVL_SDM_BOOT] = val;
			break;
		case O_RESET:
			a->hook[IVL_SDM_RESET] = val;
			break;
		case O_IRQ:
			a->hook[IVL_SDM_IRQ] = val;
			break;
		default:
			if ((r = cli_common_apply(g, id, val)))
				return r;
		}
	}
	if (!a->mode)
		return cli_usage_error(g->cmd, "no mode given (master, slave, send, status)");
	if (strlen(a->control) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return cli_usage_error(g->cmd, "control path too long");
	switch (a->mode) {
	case SDM_MASTER:
		if (!a->addr || !a->max_slaves)
			return cli_usage_error(g->cmd, "master needs --listen and --max-slaves");
		if (a->id)
			return cli_usage_error(g->cmd, "--id is for slaves");
		break;
	case SDM_SLAVE:
		if (!a->addr)
			return cli_usage_error(g->cmd, "slave needs --connect");
		if (a->max_slaves)
			return cli_usage_error(g->cmd, "--max-slaves is for masters");
		break;
	case SDM_SEND:
		if (npos != 2 && npos != 4)
			return cli_usage_error(g->cmd, "send needs TYPE SLAVE [P0 P1]");
		r = ivl_sdm_type_from_name(pos[0]);
		if (r < 0)
			return cli_usage_error(g->cmd, "unknown signal type '%s'", pos[0]);
		a->type = (uint64_t)r;
		if (!strcmp(pos[1], "all"))
			a->slave = IVL_SDM_ALL;
		else if (parse_num_arg(g->cmd, "slave", pos[1], 0, IVL_SDM_MAX_SLAVES, &a->slave))
			return -2;
		for (unsigned i = 2; i < npos; i++)
			if (parse_num_arg(g->cmd, "payload", pos[i], 0, UINT32_MAX, &a->p[i - 2]))
				return -2;
		return 0;
	case SDM_MAX:
		if (npos != 1)
			return cli_usage_error(g->cmd, "max-slaves needs N");
		return parse_num_arg(g->cmd, "max-slaves", pos[0], 1, IVL_SDM_MAX_SLAVES,
				     &a->max_slaves);
	case SDM_STATUS:
		break;
	}
	if (npos)
		return cli_usage_error(g->cmd, "unexpected argument '%s'", pos[0]);
	if ((a->mode == SDM_SEND || a->mode == SDM_STATUS) && (a->addr || a->key))
		return cli_usage_error(g->cmd, "this mode only talks to the control socket");
	return 0;
}

int sdm_check(struct cli_global *g, int argc, char **argv)
{
	struct sdm_args a;

	return sdm_parse(g, argc, argv, &a);
}

/* ---- addresses ------------------------------------------------------------ */

/* unix:PATH or tcp:HOST:PORT ([v6]:PORT) into options; @buf holds the host. */
int sdm_parse_addr(const char *s, struct ivl_sdm_opts *o, char *buf, size_t room)
{
	const char *colon;
	uint64_t port;
	size_t hlen;

	if (!strncmp(s, "unix:", 5) && s[5]) {
		o->channel = IVL_SDM_CHAN_UNIX;
		o->path = s + 5;
		return 0;
	}
	if (!strncmp(s, "link:", 5) && s[5]) {
		o->channel = IVL_SDM_CHAN_LINK;
		o->path = s + 5; /* the ivlink-server socket, connected by the caller */
		return 0;
	}
	if (strncmp(s, "tcp:", 4))
		return -EINVAL;
	s += 4;
	colon = strrchr(s, ':');
	if (!colon || colon == s || parse_u64(colon + 1, 0, 65535, &port))
		return -EINVAL;
	hlen = (size_t)(colon - s);
	if (s[0] == '[' && hlen > 2 && s[hlen - 1] == ']') {
		s++;
		hlen -= 2;
	}
	if (hlen >= room)
		return -EINVAL;
	memcpy(buf, s, hlen);
	buf[hlen] = 0;
	o->channel = IVL_SDM_CHAN_TCP;
	o->host = buf;
	o->port = (uint16_t)port;
	return 0;
}

int sdm_main(struct cli_global *g, int argc, char **argv)
{
	struct sdm_args a;
	int r = sdm_parse(g, argc, argv, &a);

	if (r == CLI_HELP)
		return print_command_help(find_command("sdm"));
	if (r)
		return EXIT_USAGE;
	if (a.mode == SDM_MASTER || a.mode == SDM_SLAVE)
		return sdm_run_daemon(g, &a);
	return sdm_run_client(g, &a);
}
