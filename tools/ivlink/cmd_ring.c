/* SPDX-License-Identifier: MIT */
/* ivlink ring: ring doorbells. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

const char ring_usage[] =
    "Usage: ivlink ring [--count N] PEER VECTOR|all\n"
    "       ivlink ring [--count N] all VECTOR|all\n"
    "\n"
    "Connect to the server and ring VECTOR of PEER (every vector with 'all'),\n"
    "or of every other peer with 'all' as PEER (a broadcast).\n"
    "\n"
    "Options:\n"
    "  -n, --count N   ring each doorbell N times (1..1000000, default 1);\n"
    "                  the receiver may see fewer, coalesced events\n";

enum { OPT_COUNT = 1 };

static const struct opt ring_opts[] = {
    {"count", 'n', OPT_ARG, OPT_COUNT},
    {0},
};

int ring_parse(struct cli_global *g, int argc, char **argv, struct ring_args *a)
{
	const char *pos[2], *val;
	struct optparse p;
	uint64_t v;
	int id, r, npos = 0;

	memset(a, 0, sizeof(*a));
	a->count = 1;
	optparse_init(&p, argc, argv, g->cmd);
	while ((id = opt_next(&p, ring_opts, cli_common_opts, &val)) != -1) {
		if (id == -2)
			return -2;
		if (id == 0) {
			if (npos == 2)
				return cli_usage_error(g->cmd, "unexpected argument '%s'", val);
			pos[npos++] = val;
		} else if (id == OPT_COUNT) {
			if (parse_num_arg(g->cmd, "count", val, 1, 1000000, &a->count))
				return -2;
		} else if ((r = cli_common_apply(g, id, val))) {
			return r;
		}
	}
	if (npos < 2)
		return cli_usage_error(g->cmd, "expected PEER and VECTOR");
	if (!strcmp(pos[0], "all")) {
		a->all_peers = true;
	} else {
		if (parse_num_arg(g->cmd, "peer", pos[0], 0, IVL_MAX_PEER_ID, &v))
			return -2;
		a->peer = (uint16_t)v;
	}
	if (!strcmp(pos[1], "all")) {
		a->all_vectors = true;
	} else {
		if (parse_num_arg(g->cmd, "vector", pos[1], 0, IVL_MAX_VECTORS - 1, &v))
			return -2;
		a->vector = (uint16_t)v;
	}
	if (g->shm || g->file)
		return cli_usage_error(g->cmd, "ringing needs a server, not --shm/--file");
	return 0;
}

/* Ring one (peer, vector) or broadcast one vector, count times. */
static int ring_one(const struct cli_global *g, struct ivl_link *l, const struct ring_args *a,
		    uint16_t vector, json_t *out)
{
	int rung = 0;

	for (uint64_t i = 0; i < a->count; i++) {
		int r = a->all_peers ? ivl_link_broadcast(l, vector)
				     : ivl_link_ring(l, a->peer, vector);

		if (r == -ENOENT) {
			cli_err(g, "no peer %u", a->peer);
			return -1;
		}
		if (r == -ERANGE) {
			cli_err(g, "peer %u has no vector %u (it has %u)", a->peer, vector,
				ivl_link_peer_vectors(l, a->peer));
			return -1;
		}
		if (r < 0) {
			cli_err(g, "ringing vector %u: %s", vector, strerror(-r));
			return -1;
		}
		rung = a->all_peers ? r : 1;
	}
	if (g->json) {
		json_t *o =
		    json_pack("{s:i, s:I}", "vector", vector, "count", (json_int_t)a->count);

		if (a->all_peers)
			json_object_set_new(o, "peers_rung", json_integer(rung));
		else
			json_object_set_new(o, "peer", json_integer(a->peer));
		json_array_append_new(out, o);
	} else if (a->all_peers) {
		printf("rang vector %u of %d peer%s, %llu time%s\n", vector, rung,
		       rung == 1 ? "" : "s", (unsigned long long)a->count,
		       a->count == 1 ? "" : "s");
	} else {
		printf("rang peer %u vector %u, %llu time%s\n", a->peer, vector,
		       (unsigned long long)a->count, a->count == 1 ? "" : "s");
	}
	return 0;
}

int ring_main(struct cli_global *g, int argc, char **argv)
{
	struct ring_args a;
	struct ivl_link *l;
	struct ivl_link_event ev[16];
	json_t *out = NULL;
	unsigned nvec;
	int r, ret = EXIT_FAIL;

	r = ring_parse(g, argc, argv, &a);
	if (r == CLI_HELP)
		return print_command_help(find_command("ring"));
	if (r)
		return EXIT_USAGE;
	cli_log_setup(g);
	if (cli_connect(g, CLI_PEER_NAME, &l) < 0)
		return EXIT_FAIL;
	/* Absorb what arrived after the handshake so the peer list is current. */
	for (int i = 0; i < 64 && ivl_link_process(l, ev, 16) > 0; i++)
		;
	if (!a.all_peers && !ivl_link_peer_vectors(l, a.peer) && a.peer != ivl_link_id(l)) {
		cli_err(g, "no peer %u", a.peer);
		goto out;
	}
	nvec = a.all_peers ? ivl_link_vectors(l)
			   : (a.peer == ivl_link_id(l) ? ivl_link_vectors(l)
						       : ivl_link_peer_vectors(l, a.peer));
	if (g->json)
		out = json_array();
	if (a.all_vectors) {
		for (unsigned v = 0; v < nvec; v++)
			if (ring_one(g, l, &a, (uint16_t)v, out) < 0)
				goto out;
	} else if (ring_one(g, l, &a, a.vector, out) < 0) {
		goto out;
	}
	ret = EXIT_OK;
	if (out) {
		ret = json_print(out, false);
		out = NULL;
	} else if (fflush(stdout) == EOF) {
		ret = EXIT_FAIL;
	}
out:
	json_decref(out);
	ivl_link_free(l);
	return ret;
}
