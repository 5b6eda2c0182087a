/* SPDX-License-Identifier: MIT */
/* ivlink peers: who else is connected. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

const char peers_usage[] =
    "Usage: ivlink peers [--json]\n"
    "\n"
    "Connect to the server as a peer named \"" CLI_PEER_NAME "\" and list the other\n"
    "peers: ID, vectors and, when the region has an ivlink header, the state,\n"
    "generation, pid and name from its peer table.  With --shm or --file, list\n"
    "the non-absent entries of the peer table instead.\n";

struct peer_row {
	uint32_t id;
	unsigned vectors;
	bool has_entry;
	struct peer_view v;
	char link_name[IVL_NAME_LEN + 1];
};

/* Let the link absorb whatever the server sent after the handshake. */
static int drain(struct ivl_link *l)
{
	struct ivl_link_event ev[32];
	int n, rounds = 0;

	do {
		n = ivl_link_process(l, ev, 32);
	} while (n > 0 && ++rounds < 1024);
	return n < 0 ? n : 0;
}

static int collect_link(struct target *t, struct peer_row **rows, size_t *nrows)
{
	uint16_t *ids;
	int n, m;

	if (drain(t->link) < 0)
		return -ENOTCONN;
	/* Every possible ID fits: no second call racing with joins. */
	n = IVL_MAX_PEER_ID + 1;
	ids = calloc((size_t)n, sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	m = ivl_link_peers(t->link, ids, (size_t)n);
	if (m > n)
		m = n;
	*rows = m < 0 ? NULL : calloc((size_t)m + 1, sizeof(**rows));
	if (!*rows) {
		free(ids);
		return m < 0 ? m : -ENOMEM;
	}
	for (int i = 0; i < m; i++) {
		struct peer_row *r = &(*rows)[i];

		r->id = ids[i];
		r->vectors = ivl_link_peer_vectors(t->link, ids[i]);
		r->has_entry = target_peer(t, ids[i], &r->v);
		link_peer_name(t->link, ids[i], r->link_name);
	}
	*nrows = (size_t)m;
	free(ids);
	return 0;
}

static int collect_table(struct target *t, struct peer_row **rows, size_t *nrows)
{
	size_t n = 0;

	*rows = NULL;
	if (!t->has_header)
		return -ENOENT;
	*rows = calloc(t->hdr.max_peers + 1u, sizeof(**rows));
	if (!*rows)
		return -ENOMEM;
	for (uint32_t id = 0; id < t->hdr.max_peers; id++) {
		struct peer_row *r = &(*rows)[n];

		if (!target_peer(t, id, &r->v) || r->v.state == IVL_PEER_ABSENT)
			continue;
		r->id = id;
		r->vectors = r->v.vectors;
		r->has_entry = true;
		snprintf(r->link_name, sizeof(r->link_name), "%s", r->v.name);
		n++;
	}
	*nrows = n;
	return 0;
}

static int print_rows(const struct cli_global *g, const struct peer_row *rows, size_t n)
{
	if (g->json) {
		json_t *a = json_array();

		for (size_t i = 0; i < n; i++) {
			const struct peer_row *r = &rows[i];
			json_t *o = json_pack("{s:I, s:I, s:s}", "id", (json_int_t)r->id, "vectors",
					      (json_int_t)r->vectors, "name",
					      r->link_name[0] ? r->link_name : r->v.name);

			if (o && r->has_entry) {
				json_object_set_new(o, "state",
						    json_string(peer_state_name(r->v.state)));
				json_object_set_new(o, "generation", json_integer(r->v.generation));
				json_object_set_new(o, "pid", json_integer(r->v.pid));
				json_object_set_new(o, "uid", json_integer(r->v.uid));
			}
			json_array_append_new(a, o);
		}
		return json_print(a, false);
	}
	printf("%-6s %-7s %-8s %-5s %-8s %s\n", "ID", "VECTORS", "STATE", "GEN", "PID", "NAME");
	for (size_t i = 0; i < n; i++) {
		const struct peer_row *r = &rows[i];

		if (r->has_entry)
			printf("%-6u %-7u %-8s %-5u %-8u %s\n", r->id, r->vectors,
			       peer_state_name(r->v.state), r->v.generation, r->v.pid,
			       r->link_name[0] ? r->link_name : r->v.name);
		else
			printf("%-6u %-7u %-8s %-5s %-8s %s\n", r->id, r->vectors, "-", "-", "-",
			       r->link_name);
	}
	if (!n)
		printf("(no other peers)\n");
	return fflush(stdout) == EOF ? EXIT_FAIL : EXIT_OK;
}

int peers_main(struct cli_global *g, int argc, char **argv)
{
	struct target t;
	struct peer_row *rows = NULL;
	size_t n = 0;
	int r, ret = EXIT_FAIL;

	r = simple_parse(g, argc, argv);
	if (r == CLI_HELP)
		return print_command_help(find_command("peers"));
	if (r)
		return EXIT_USAGE;
	cli_log_setup(g);
	if (target_open(g, &t))
		return EXIT_FAIL;
	r = t.link ? collect_link(&t, &rows, &n) : collect_table(&t, &rows, &n);
	if (r == -ENOENT)
		cli_err(g, "%s has no ivlink header: no peer table to show", t.desc);
	else if (r == -ENOTCONN)
		cli_err(g, "%s: the server went away", g->socket);
	else if (r < 0)
		cli_err(g, "%s", strerror(-r));
	else
		ret = print_rows(g, rows, n);
	free(rows);
	target_close(&t);
	return ret;
}
