/* SPDX-License-Identifier: MIT */
/* The ivlink CLI: connecting to a server, or mapping a region directly. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

/* In a guest: the ivshmem PCI device instead of a server socket. */
static int guest_connect(const struct cli_global *g, struct ivl_link **out)
{
	struct ivl_link_guest_opts o = {.device = g->device, .timeout_ms = 5000};
	int r = ivl_link_guest_new(out, &o);

	if (r >= 0)
		return 0;
	switch (r) {
	case -ENODEV:
		cli_err(g, "no ivshmem device%s%s (PCI 1af4:1110; is this a guest with "
			   "-device ivshmem-doorbell?)",
			strcmp(g->device, "auto") ? " at " : "",
			strcmp(g->device, "auto") ? g->device : "");
		break;
	case -EINVAL:
		cli_err(g, "invalid device '%s' (auto, or a PCI address like 0000:00:03.0)",
			g->device);
		break;
	case -EACCES:
		cli_err(g, "device %s: permission denied (run as root)", g->device);
		break;
	case -ETIMEDOUT:
		cli_err(g, "device %s: no peer ID (IVPosition): is QEMU's chardev connected to "
			   "a server?",
			g->device);
		break;
	default:
		cli_err(g, "cannot open device %s: %s", g->device, strerror(-r));
	}
	return r;
}

/* Serverless: register in the region's peer table (docs/plain.md). */
static int plain_connect(const struct cli_global *g, const char *name, struct ivl_link **out)
{
	struct ivl_plain_opts o = {.kind = IVL_REGION_FILE};
	char path[4096];
	int r;

	if (cli_plain_split(g->plain, path, sizeof(path), &o.size) < 0) {
		cli_err(g, "invalid --plain '%s' (PATH[:SIZE])", g->plain);
		return -EINVAL;
	}
	o.name = path;
	r = ivl_link_plain_new(out, &o, name);
	if (r < 0)
		cli_err(g, "cannot join plain:%s: %s%s", path, strerror(-r),
			r == -ENOSPC ? " (peer table full)" : "");
	return r;
}

int cli_connect(const struct cli_global *g, const char *name, struct ivl_link **out)
{
	struct ivl_link_host_opts o = {
	    .socket_path = g->socket,
	    .name = name,
	    .timeout_ms = 5000,
	};
	int r;

	if (g->device)
		return guest_connect(g, out);
	if (g->plain)
		return plain_connect(g, name, out);
	r = ivl_link_host_new(out, &o);

	if (r >= 0)
		return 0;
	switch (r) {
	case -ENOENT:
	case -ECONNREFUSED:
		cli_err(g, "cannot connect to %s: %s (is ivlink-server running? see -S)", g->socket,
			strerror(-r));
		break;
	case -ECONNRESET:
		cli_err(g, "%s: the server closed the connection (full, or refused this peer)",
			g->socket);
		break;
	case -EUSERS:
		cli_err(g, "%s: the server refused this peer: it is full", g->socket);
		break;
	case -EACCES:
		cli_err(g, "%s: the server refused this peer: this user is not allowed",
			g->socket);
		break;
	case -EMFILE:
		cli_err(g, "%s: the server refused this peer: it is out of file descriptors",
			g->socket);
		break;
	case -ETIMEDOUT:
		cli_err(g, "%s: the server did not complete the handshake in time", g->socket);
		break;
	case -EPROTONOSUPPORT:
		cli_err(g, "%s: unsupported server protocol version", g->socket);
		break;
	case -EPROTO:
		cli_err(g, "%s: protocol violation or invalid shared region", g->socket);
		break;
	default:
		cli_err(g, "cannot connect to %s: %s", g->socket, strerror(-r));
	}
	return r;
}

/* The fixed fields only: state is atomic and not ours to snapshot here. */
static void copy_header(struct ivl_shm_header *dst, const struct ivl_shm_header *src)
{
	memset(dst, 0, sizeof(*dst));
	memcpy(dst, src, offsetof(struct ivl_shm_header, state));
	dst->server_pid = src->server_pid;
}

/*
 * Without a server the header may be CLOSED (the server stopped) or still
 * FORMATTING, which ivl_shm_validate() rejects; its fixed fields are still
 * worth showing, so check just what locating the app area needs.
 */
static bool header_fallback(struct target *t)
{
	struct ivl_shm_header h;

	if (t->size < sizeof(h))
		return false;
	copy_header(&h, (const struct ivl_shm_header *)t->base);
	if (h.magic != IVL_SHM_MAGIC || h.version != IVL_SHM_VERSION)
		return false;
	if (!h.header_size || h.header_size % IVL_SHM_PAGE || h.header_size >= t->size)
		return false;
	if (h.max_peers > IVL_MAX_PEER_ID + 1u || h.vectors > IVL_MAX_VECTORS)
		return false;
	if (h.peer_entry_size != sizeof(struct ivl_shm_peer) || h.peer_table_offset < sizeof(h) ||
	    (uint64_t)h.peer_table_offset + (uint64_t)h.max_peers * h.peer_entry_size >
		h.header_size)
		return false;
	copy_header(&t->hdr, &h);
	return true;
}

static void find_header(struct target *t)
{
	int r = ivl_shm_validate(t->base, t->size, &t->hdr);

	t->has_header = false;
	t->app_off = 0;
	t->app_size = t->size;
	switch (r) {
	case 0:
		t->has_header = true;
		t->header_note = "ready";
		break;
	case -ENOENT:
		t->header_note = "raw (no ivlink header)";
		return;
	case -ESHUTDOWN:
		t->header_note = "closed (server stopped)";
		t->has_header = header_fallback(t);
		break;
	case -EAGAIN:
		t->header_note = "formatting";
		t->has_header = header_fallback(t);
		break;
	default:
		t->header_note = "invalid ivlink header";
		return;
	}
	if (t->has_header) {
		t->app_off = t->hdr.header_size;
		t->app_size = t->size - t->hdr.header_size;
	}
}

static int open_mapped(const struct cli_global *g, struct target *t)
{
	int fd, r;

	if (g->shm) {
		const char *n = g->shm[0] == '/' ? g->shm + 1 : g->shm;
		char name[256];

		if (!*n || strchr(n, '/') || strlen(n) + 2 > sizeof(name)) {
			cli_err(g, "invalid shm name '%s'", g->shm);
			return EXIT_FAIL;
		}
		snprintf(name, sizeof(name), "/%s", n);
		fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
		snprintf(t->desc, sizeof(t->desc), "shm:%s", name);
	} else {
		fd = open(g->file, O_RDWR | O_CLOEXEC);
		snprintf(t->desc, sizeof(t->desc), "file:%s", g->file);
	}
	if (fd < 0) {
		cli_err(g, "cannot open %s: %s", t->desc, strerror(errno));
		return EXIT_FAIL;
	}
	r = ivl_region_from_fd(&t->region, fd);
	if (r < 0) {
		cli_err(g, "cannot map %s: %s%s", t->desc, strerror(-r),
			r == -EINVAL ? " (size must be a nonzero power of two)" : "");
		return EXIT_FAIL;
	}
	t->base = ivl_region_base(t->region);
	t->size = ivl_region_size(t->region);
	find_header(t);
	return 0;
}

int cli_plain_split(const char *spec, char *path, size_t len, uint64_t *size)
{
	const char *colon = strrchr(spec, ':');
	size_t n = strlen(spec);
	int r;

	*size = 0;
	/* "PATH:SIZE" when what follows the last colon is a size; a path may
	 * itself contain colons. */
	if (colon) {
		r = tool_parse_size(colon + 1, size);
		if (r == -ERANGE)
			return r;
		if (r == 0)
			n = (size_t)(colon - spec);
	}
	if (!n)
		return -EINVAL;
	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(path, spec, n);
	path[n] = '\0';
	return 0;
}

int cli_check_mapped(const struct cli_global *g)
{
	if (!!g->shm + !!g->file + !!g->plain > 1)
		return cli_usage_error(g->cmd, "--shm, --file and --plain exclude each other");
	return 0;
}

/* Serverless mode: create or open, format or wait (docs/plain.md).  The
 * library's log line names the sizes or the claimer when it fails. */
static int open_plain(const struct cli_global *g, struct target *t)
{
	struct ivl_plain_opts o = {.kind = IVL_REGION_FILE};
	char path[4096];
	int r;

	if (cli_plain_split(g->plain, path, sizeof(path), &o.size) < 0) {
		cli_err(g, "invalid --plain '%s' (PATH[:SIZE])", g->plain);
		return EXIT_FAIL;
	}
	o.name = path;
	snprintf(t->desc, sizeof(t->desc), "plain:%s", path);
	r = ivl_plain_open(&t->region, &o, &t->hdr);
	if (r < 0) {
		cli_err(g, "cannot open %s: %s%s", t->desc, strerror(-r),
			r == -ENOENT && !o.size ? " (give PATH:SIZE to create it)" : "");
		return EXIT_FAIL;
	}
	if (g->verbose)
		fprintf(stderr, "ivlink: %s: %s%s\n", t->desc,
			r & IVL_PLAIN_CREATED ? "created, " : "",
			r & IVL_PLAIN_FORMATTED ? "formatted the header" : "header was ready");
	t->base = ivl_region_base(t->region);
	t->size = ivl_region_size(t->region);
	t->has_header = true;
	t->header_note = "ready";
	t->app_off = t->hdr.header_size;
	t->app_size = t->size - t->hdr.header_size;
	return 0;
}

int target_open(const struct cli_global *g, struct target *t)
{
	const char *d;

	memset(t, 0, sizeof(*t));
	if (g->plain)
		return open_plain(g, t);
	if (g->shm || g->file)
		return open_mapped(g, t);
	if (cli_connect(g, CLI_PEER_NAME, &t->link) < 0)
		return EXIT_FAIL;
	t->base = ivl_link_region(t->link, &t->size);
	if (ivl_link_header(t->link)) {
		/* The link validated the header; the copy is ours to keep. */
		copy_header(&t->hdr, ivl_link_header(t->link));
		t->has_header = true;
		t->header_note = "ready";
		t->app_off = t->hdr.header_size;
		t->app_size = t->size - t->hdr.header_size;
	} else {
		t->header_note = "raw (no ivlink header)";
		t->app_off = 0;
		t->app_size = t->size;
	}
	if (g->device) {
		snprintf(t->desc, sizeof(t->desc), "device:%s", g->device);
		return 0;
	}
	d = g->socket;
	snprintf(t->desc, sizeof(t->desc), "server:%s", d);
	return 0;
}

void target_close(struct target *t)
{
	ivl_link_free(t->link);
	ivl_region_free(t->region);
	memset(t, 0, sizeof(*t));
}

bool target_peer(const struct target *t, uint32_t id, struct peer_view *v)
{
	struct ivl_shm_peer *e;
	char raw[IVL_NAME_LEN];

	if (!t->has_header || id >= t->hdr.max_peers)
		return false;
	e = ivl_shm_peer(t->base, &t->hdr, id);
	if (!e)
		return false;
	/* A display snapshot: fields may change under us, nothing is derived
	 * from them, so relaxed loads suffice. */
	v->state = __atomic_load_n(&e->state, __ATOMIC_RELAXED);
	v->generation = __atomic_load_n(&e->generation, __ATOMIC_RELAXED);
	v->pending = __atomic_load_n(&e->pending, __ATOMIC_RELAXED);
	v->vectors = e->vectors;
	v->pid = e->pid;
	v->uid = e->uid;
	memcpy(raw, e->name, sizeof(raw));
	cli_sanitize(v->name, raw, sizeof(raw));
	return true;
}

void cli_log_setup(const struct cli_global *g)
{
	ivl_log_set(ivl_log_stderr, (void *)"ivlink",
		    g->verbose > 1 ? IVL_LOG_DEBUG
		    : g->verbose   ? IVL_LOG_INFO
				   : IVL_LOG_WARNING);
}

void link_peer_name(struct ivl_link *l, uint16_t id, char *out)
{
	const char *nm = ivl_link_peer_name(l, id);
	const struct ivl_shm_header *h = ivl_link_header(l);
	struct ivl_shm_peer *e;
	uint64_t size;
	char raw[IVL_NAME_LEN];

	out[0] = '\0';
	if (nm && *nm) {
		cli_sanitize(out, nm, strnlen(nm, IVL_NAME_LEN));
		return;
	}
	/* The hello may not have been announced yet; the table may know. */
	if (!h || !(e = ivl_shm_peer(ivl_link_region(l, &size), h, id)))
		return;
	memcpy(raw, e->name, sizeof(raw));
	cli_sanitize(out, raw, sizeof(raw));
}
