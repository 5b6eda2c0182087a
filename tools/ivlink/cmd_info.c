/* SPDX-License-Identifier: MIT */
/* ivlink info: the region, its header and the peer table. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

const char info_usage[] =
    "Usage: ivlink info [--json]\n"
    "\n"
    "Show the shared region (size, description), its ivlink header (magic,\n"
    "version, epoch, max_peers, vectors, header size, application area) or\n"
    "\"raw (no ivlink header)\", my peer ID and the non-absent entries of the\n"
    "peer table; in a guest (--device), how the device is reached (access:\n"
    "kernel driver, vfio or sysfs polling).  Connects to the server, or maps\n"
    "--shm NAME / --file PATH.\n";

static json_t *info_json(struct target *t)
{
	json_t *o = json_object(), *peers = json_array();
	char epoch[24];

	json_object_set_new(o, "source", json_string(t->desc));
	json_object_set_new(o, "region_size", json_integer((json_int_t)t->size));
	if (t->link) {
		json_object_set_new(o, "id", json_integer(ivl_link_id(t->link)));
		json_object_set_new(o, "vectors", json_integer(ivl_link_vectors(t->link)));
	} else if (t->has_header) {
		json_object_set_new(o, "vectors", json_integer(t->hdr.vectors));
	}
	json_object_set_new(o, "header_state", json_string(t->header_note));
	json_object_set_new(o, "app_offset", json_integer((json_int_t)t->app_off));
	json_object_set_new(o, "app_size", json_integer((json_int_t)t->app_size));
	if (ivl_link_guest_access(t->link))
		json_object_set_new(o, "access", json_string(ivl_link_guest_access(t->link)));
	if (!t->has_header) {
		json_object_set_new(o, "header", json_null());
		json_object_set_new(o, "peers", peers);
		return o;
	}
	/* As text: JSON readers often hold integers in doubles. */
	snprintf(epoch, sizeof(epoch), "0x%016" PRIx64, (uint64_t)t->hdr.epoch);
	json_object_set_new(
	    o, "header",
	    json_pack("{s:b, s:I, s:s, s:I, s:I, s:I, s:I, s:I}", "magic_ok", 1, "version",
		      (json_int_t)t->hdr.version, "epoch", epoch, "max_peers",
		      (json_int_t)t->hdr.max_peers, "vectors", (json_int_t)t->hdr.vectors,
		      "header_size", (json_int_t)t->hdr.header_size, "features",
		      (json_int_t)t->hdr.features, "server_pid", (json_int_t)t->hdr.server_pid));
	for (uint32_t id = 0; id < t->hdr.max_peers; id++) {
		struct peer_view v;
		char pending[24];

		if (!target_peer(t, id, &v) || v.state == IVL_PEER_ABSENT)
			continue;
		snprintf(pending, sizeof(pending), "0x%016" PRIx64, v.pending);
		json_array_append_new(
		    peers, json_pack("{s:I, s:s, s:I, s:I, s:I, s:I, s:s, s:s}", "id",
				     (json_int_t)id, "state", peer_state_name(v.state),
				     "generation", (json_int_t)v.generation, "vectors",
				     (json_int_t)v.vectors, "pid", (json_int_t)v.pid, "uid",
				     (json_int_t)v.uid, "pending", pending, "name", v.name));
	}
	json_object_set_new(o, "peers", peers);
	return o;
}

/* What each way of reaching a guest device means for the user. */
static const char *access_text(const char *a)
{
	if (!strcmp(a, "kernel"))
		return "kernel (ivlink_ivshmem driver: MSI-X interrupts)";
	if (!strcmp(a, "vfio"))
		return "vfio (vfio-pci: MSI-X interrupts)";
	if (!strcmp(a, "sysfs"))
		return "sysfs (no interrupt driver: doorbells received by polling)";
	return a;
}

static int info_text(struct target *t)
{
	printf("source:       %s\n", t->desc);
	if (ivl_link_guest_access(t->link))
		printf("access:       %s\n", access_text(ivl_link_guest_access(t->link)));
	printf("region size:  %" PRIu64 " bytes\n", t->size);
	if (t->link)
		printf("my id:        %d (%u vectors)\n", ivl_link_id(t->link),
		       ivl_link_vectors(t->link));
	if (!t->has_header) {
		printf("header:       %s\n", t->header_note);
		printf("app area:     offset 0x%" PRIx64 ", %" PRIu64 " bytes\n", t->app_off,
		       t->app_size);
		return fflush(stdout) == EOF ? EXIT_FAIL : EXIT_OK;
	}
	printf("header:       ivlink, magic ok, %s\n", t->header_note);
	printf("  version:    %u\n", t->hdr.version);
	printf("  epoch:      0x%016" PRIx64 "\n", (uint64_t)t->hdr.epoch);
	printf("  max peers:  %u\n", t->hdr.max_peers);
	printf("  vectors:    %u\n", t->hdr.vectors);
	printf("  features:   0x%x\n", t->hdr.features);
	printf("  server pid: %u\n", t->hdr.server_pid);
	printf("  size:       %u bytes\n", t->hdr.header_size);
	printf("app area:     offset 0x%" PRIx64 ", %" PRIu64 " bytes\n", t->app_off, t->app_size);
	printf("peers:\n");
	printf("  %-6s %-8s %-5s %-7s %-8s %-18s %s\n", "ID", "STATE", "GEN", "VECTORS", "PID",
	       "PENDING", "NAME");
	for (uint32_t id = 0; id < t->hdr.max_peers; id++) {
		struct peer_view v;

		if (!target_peer(t, id, &v) || v.state == IVL_PEER_ABSENT)
			continue;
		printf("  %-6u %-8s %-5u %-7u %-8u 0x%016" PRIx64 " %s%s\n", id,
		       peer_state_name(v.state), v.generation, v.vectors, v.pid, v.pending, v.name,
		       t->link && (int)id == ivl_link_id(t->link) ? " (me)" : "");
	}
	return fflush(stdout) == EOF ? EXIT_FAIL : EXIT_OK;
}

int info_main(struct cli_global *g, int argc, char **argv)
{
	struct target t;
	int r;

	r = simple_parse(g, argc, argv);
	if (r == CLI_HELP)
		return print_command_help(find_command("info"));
	if (r)
		return EXIT_USAGE;
	cli_log_setup(g);
	if (target_open(g, &t))
		return EXIT_FAIL;
	r = g->json ? json_print(info_json(&t), false) : info_text(&t);
	target_close(&t);
	return r;
}
