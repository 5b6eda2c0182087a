/* SPDX-License-Identifier: MIT */
/*
 * ivlink demo: an embedded server and three host peers in one process,
 * narrated and verified step by step.  Every expectation is checked against
 * the events actually observed; every wait is bounded.
 *
 * Design: the server runs in its own thread (poll + ivl_server_process) so
 * that the blocking handshake of ivl_link_host_new() can be driven while
 * the main thread owns the three links.  The server object is touched only
 * by that thread between its start and its join.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

const char demo_usage[] =
    "Usage: ivlink demo [--json]\n"
    "\n"
    "Start an ivshmem server inside this process (a 1 MiB memfd region with an\n"
    "ivlink header, 2 vectors, its socket in a fresh temporary directory),\n"
    "connect three host peers (alice, bob, carol) and show them: see each other\n"
    "join, ring doorbells both ways on every vector (alice -> bob, bob -> alice,\n"
    "carol -> everyone), pass a message through the shared region, see carol\n"
    "leave, run the Signal Distribution Module on the same link (a master boots\n"
    "two slaves, interrupts both with one mailbox broadcast and is interrupted back;\n"
    "a slave addressing a slave is refused), create a managed virtio console\n"
    "through the transport virtqueue and pass a line through it, then shut\n"
    "down and remove the socket directory.  Each step is verified; exit 0 only\n"
    "if every expected event was observed.  --json prints a summary object\n"
    "instead of the narration.\n";

void demo_say(struct demo *d, const char *fmt, ...)
{
	va_list ap;

	if (d->g->json)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

void demo_missing(struct demo *d, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(d->missing, json_string(buf));
	demo_say(d, "  MISSING: %s", buf);
}

int64_t demo_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the server thread --------------------------------------------------- */

static void *server_thread(void *arg)
{
	struct demo *d = arg;
	struct pollfd pf[2] = {
	    {.fd = ivl_server_get_fd(d->server), .events = POLLIN},
	    {.fd = d->stop_fd, .events = POLLIN},
	};

	for (;;) {
		int r = poll(pf, 2, 100);

		if (r < 0 && errno != EINTR) {
			atomic_store(&d->server_err, -errno);
			break;
		}
		if (pf[1].revents)
			break;
		r = ivl_server_process(d->server);
		if (r < 0) {
			atomic_store(&d->server_err, r);
			break;
		}
	}
	return NULL;
}

static void server_stop(struct demo *d)
{
	uint64_t one = 1;

	if (d->thread_running) {
		if (write(d->stop_fd, &one, sizeof(one)) != sizeof(one))
			cli_err(d->g, "cannot stop the server thread: %s", strerror(errno));
		pthread_join(d->thread, NULL);
		d->thread_running = false;
	}
	ivl_server_free(d->server);
	d->server = NULL;
}

/* ---- observing events ---------------------------------------------------- */

static int peer_index(const struct demo *d, uint16_t id)
{
	for (int i = 0; i < NPEERS; i++)
		if (d->p[i].link && d->p[i].id == id)
			return i;
	return -1;
}

/* Gone peers keep their ID in d->p[i].id for naming leave events. */
static const char *peer_label(const struct demo *d, uint16_t id, char *buf, size_t len)
{
	for (int i = 0; i < NPEERS; i++)
		if (d->p[i].id == id)
			return d->p[i].name;
	snprintf(buf, len, "peer %u", id);
	return buf;
}

static void record(struct demo *d, struct demo_peer *me, const struct ivl_link_event *e)
{
	char buf[32];
	const char *who = peer_label(d, e->peer, buf, sizeof(buf));
	int j;

	d->events++;
	switch (e->type) {
	case IVL_LINK_JOIN:
		j = peer_index(d, e->peer);
		if (j >= 0)
			me->saw_join[j] = true;
		demo_say(d, "  %s %s %s (peer %u), %u vectors", me->name,
			 j >= 0 && j < (int)(me - d->p) ? "finds already there:" : "sees join:",
			 who, e->peer, ivl_link_peer_vectors(me->link, e->peer));
		break;
	case IVL_LINK_LEAVE:
		for (j = 0; j < NPEERS; j++)
			if (d->p[j].id == e->peer)
				me->saw_leave[j] = true;
		demo_say(d, "  %s sees %s (peer %u) leave", me->name, who, e->peer);
		break;
	case IVL_LINK_DOORBELL:
		if (e->vector < IVL_MAX_VECTORS)
			me->doorbells[e->vector] += 1;
		demo_say(d, "  %s: doorbell on vector %u (count %u)", me->name, e->vector,
			 e->count);
		break;
	case IVL_LINK_DOWN:
		demo_say(d, "  %s: the server went away", me->name);
		break;
	}
}

typedef bool (*demo_cond)(struct demo *d, const void *arg);

/* Process every live link until @done holds or the step's time is up.
 * Returns true if @done held. */
static bool pump(struct demo *d, demo_cond done, const void *arg)
{
	int64_t end = demo_now_ms() + STEP_TIMEOUT_MS;

	if (end > d->deadline)
		end = d->deadline;

	for (;;) {
		struct pollfd pf[NPEERS];
		int n = 0;
		int64_t left;

		for (int i = 0; i < NPEERS; i++) {
			struct ivl_link_event ev[16];
			int k;

			if (!d->p[i].link)
				continue;
			while ((k = ivl_link_process(d->p[i].link, ev, 16)) > 0)
				for (int e = 0; e < k; e++)
					record(d, &d->p[i], &ev[e]);
			pf[n] =
			    (struct pollfd){.fd = ivl_link_get_fd(d->p[i].link), .events = POLLIN};
			n++;
		}
		if (done(d, arg))
			return true;
		left = end - demo_now_ms();
		if (left <= 0 || atomic_load(&d->server_err))
			return false;
		if (poll(pf, (nfds_t)n, (int)(left < 50 ? left : 50)) < 0 && errno != EINTR)
			return false;
	}
}

static bool knows(struct demo_peer *me, int other_id)
{
	uint16_t ids[64];
	int n = ivl_link_peers(me->link, ids, 64);

	for (int i = 0; i < n && i < 64; i++)
		if (ids[i] == other_id)
			return true;
	return false;
}

/* ---- the steps ----------------------------------------------------------- */

static int step_server(struct demo *d)
{
	const char *tmp = getenv("TMPDIR");
	struct ivl_server_opts o = {
	    .listen_fd = -1,
	    .region = {.kind = IVL_REGION_MEMFD, .name = "ivlink-demo", .size = DEMO_REGION},
	    .vectors = DEMO_VECTORS,
	    .max_peers = 8,
	};
	int r;

	/* A socket path has at most 107 bytes: a deep $TMPDIR cannot hold it. */
	if (!tmp || !*tmp || strlen(tmp) + sizeof("/ivlink-demo.XXXXXX/ivshmem.sock") > 108)
		tmp = "/tmp";
	snprintf(d->dir, sizeof(d->dir), "%s/ivlink-demo.XXXXXX", tmp);
	if (!mkdtemp(d->dir)) {
		r = -errno;
		cli_err(d->g, "cannot create a directory %s: %s", d->dir, strerror(-r));
		d->dir[0] = '\0';
		return r;
	}
	snprintf(d->sock, sizeof(d->sock), "%s/ivshmem.sock", d->dir);
	o.socket_path = d->sock;
	r = ivl_server_new(&d->server, &o);
	if (r < 0) {
		cli_err(d->g, "starting the embedded server on %s: %s", d->sock, strerror(-r));
		return r;
	}
	d->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (d->stop_fd < 0)
		return -errno;
	r = pthread_create(&d->thread, NULL, server_thread, d);
	if (r) {
		cli_err(d->g, "pthread_create: %s", strerror(r));
		return -r;
	}
	d->thread_running = true;
	demo_say(d, "server: listening on %s (%s, %u KiB, %u vectors per peer)", d->sock,
		 ivl_region_describe(ivl_server_region(d->server)), DEMO_REGION / 1024,
		 DEMO_VECTORS);
	return 0;
}

/* Peers 0..*upto know each other: earlier peers learn of a later one by a
 * join event; a later one finds the earlier ones in its handshake. */
static bool joined_upto(struct demo *d, const void *arg)
{
	int upto = *(const int *)arg;

	for (int i = 0; i <= upto; i++)
		for (int j = 0; j <= upto; j++) {
			if (i == j)
				continue;
			if (i < j && !d->p[i].saw_join[j])
				return false;
			if (!knows(&d->p[i], d->p[j].id))
				return false;
		}
	return true;
}

static int step_join(struct demo *d)
{
	static const char *const names[NPEERS] = {"alice", "bob", "carol"};

	for (int i = 0; i < NPEERS; i++) {
		struct ivl_link_host_opts o = {
		    .socket_path = d->sock,
		    .name = names[i],
		    .timeout_ms = STEP_TIMEOUT_MS,
		};
		int r = ivl_link_host_new(&d->p[i].link, &o);

		if (r < 0) {
			cli_err(d->g, "%s cannot connect to %s: %s", names[i], d->sock,
				strerror(-r));
			d->p[i].link = NULL;
			return r;
		}
		d->p[i].id = ivl_link_id(d->p[i].link);
		demo_say(d, "%s joins: connected as peer %d (%u vectors)", names[i], d->p[i].id,
			 ivl_link_vectors(d->p[i].link));
		if (pump(d, joined_upto, &i))
			continue;
		for (int a = 0; a <= i; a++)
			for (int b = 0; b <= i; b++) {
				if (a == b)
					continue;
				if (a < b && !d->p[a].saw_join[b])
					demo_missing(d, "%s did not see %s join", d->p[a].name,
						     d->p[b].name);
				else if (!knows(&d->p[a], d->p[b].id))
					demo_missing(d, "%s does not know %s", d->p[a].name,
						     d->p[b].name);
			}
	}
	return 0;
}

struct bell_wait {
	int who[2]; /* peers that must see a doorbell, -1 for none */
	uint16_t vector;
};

static bool bells_seen(struct demo *d, const void *arg)
{
	const struct bell_wait *w = arg;

	for (int i = 0; i < 2; i++)
		if (w->who[i] >= 0 && !d->p[w->who[i]].doorbells[w->vector])
			return false;
	return true;
}

static void reset_bells(struct demo *d)
{
	for (int i = 0; i < NPEERS; i++)
		memset(d->p[i].doorbells, 0, sizeof(d->p[i].doorbells));
}

/* @to < 0: broadcast.  Waits for the doorbell at each expected receiver. */
static int ring_and_check(struct demo *d, int from, int to, uint16_t v)
{
	struct bell_wait w = {.who = {to, -1}, .vector = v};
	int r;

	reset_bells(d);
	if (to >= 0) {
		demo_say(d, "%s rings %s, vector %u", d->p[from].name, d->p[to].name, v);
		r = ivl_link_ring(d->p[from].link, (uint16_t)d->p[to].id, v);
	} else {
		demo_say(d, "%s rings everyone, vector %u", d->p[from].name, v);
		r = ivl_link_broadcast(d->p[from].link, v);
		/* Everyone but the sender must hear it. */
		for (int i = 0, k = 0; i < NPEERS; i++)
			if (i != from)
				w.who[k++] = i;
		if (r >= 0 && r != NPEERS - 1)
			demo_missing(d, "%s's broadcast on vector %u reached %d peers, not %d",
				     d->p[from].name, v, r, NPEERS - 1);
	}
	if (r < 0) {
		demo_missing(d, "%s could not ring vector %u: %s", d->p[from].name, v,
			     strerror(-r));
		return 0;
	}
	if (pump(d, bells_seen, &w))
		return 0;
	for (int i = 0; i < 2; i++)
		if (w.who[i] >= 0 && !d->p[w.who[i]].doorbells[v])
			demo_missing(d, "%s did not hear %s's doorbell on vector %u",
				     d->p[w.who[i]].name, d->p[from].name, v);
	return 0;
}

static int step_doorbells(struct demo *d)
{
	for (uint16_t v = 0; v < DEMO_VECTORS; v++) {
		ring_and_check(d, 0, 1, v);
		ring_and_check(d, 1, 0, v);
		ring_and_check(d, 2, -1, v);
	}
	return 0;
}

static int step_message(struct demo *d)
{
	static const char msg[] = "hello bob, this is alice";
	struct bell_wait w = {.who = {1, -1}, .vector = 0};
	uint64_t asize, bsize;
	char *a = ivl_link_app_area(d->p[0].link, &asize);
	const char *b = ivl_link_app_area(d->p[1].link, &bsize);
	char got[sizeof(msg)];

	if (!a || !b || asize < DEMO_MSG_OFFSET + sizeof(msg) || bsize != asize) {
		demo_missing(d, "no usable application area (alice %llu bytes, bob %llu bytes)",
			     (unsigned long long)asize, (unsigned long long)bsize);
		return 0;
	}
	memcpy(a + DEMO_MSG_OFFSET, msg, sizeof(msg));
	/* Release: pairs with bob's acquire fence below; the doorbell is the
	 * signal that the message is complete. */
	atomic_thread_fence(memory_order_release);
	demo_say(d, "alice writes \"%s\" at app offset %u and rings bob, vector 0", msg,
		 DEMO_MSG_OFFSET);
	reset_bells(d);
	if (ivl_link_ring(d->p[0].link, (uint16_t)d->p[1].id, 0) < 0 || !pump(d, bells_seen, &w)) {
		demo_missing(d, "bob did not hear alice's message doorbell");
		return 0;
	}
	/* Acquire: pairs with alice's release fence above. */
	atomic_thread_fence(memory_order_acquire);
	memcpy(got, b + DEMO_MSG_OFFSET, sizeof(got));
	got[sizeof(got) - 1] = '\0';
	if (memcmp(got, msg, sizeof(msg))) {
		demo_missing(d, "bob read \"%s\" instead of alice's message", got);
		return 0;
	}
	demo_say(d, "bob reads \"%s\" through his own mapping: the region is shared", got);
	return 0;
}

static bool carol_gone(struct demo *d, const void *arg)
{
	int carol = *(const int *)arg;

	for (int i = 0; i < 2; i++)
		if (!d->p[i].saw_leave[2] || knows(&d->p[i], carol))
			return false;
	return true;
}

static int step_leave(struct demo *d)
{
	int carol = d->p[2].id;

	demo_say(d, "carol leaves");
	ivl_link_free(d->p[2].link);
	d->p[2].link = NULL;
	if (pump(d, carol_gone, &carol))
		return 0;
	for (int i = 0; i < 2; i++)
		if (!d->p[i].saw_leave[2])
			demo_missing(d, "%s did not see carol leave", d->p[i].name);
		else if (knows(&d->p[i], carol))
			demo_missing(d, "%s still lists carol", d->p[i].name);
	return 0;
}

static int step_shutdown(struct demo *d)
{
	struct stat st;
	int err = atomic_load(&d->server_err);
	bool had_server = d->server != NULL;

	for (int i = 0; i < NPEERS; i++) {
		ivl_link_free(d->p[i].link);
		d->p[i].link = NULL;
	}
	server_stop(d);
	if (d->stop_fd >= 0)
		close(d->stop_fd);
	d->stop_fd = -1;
	if (err)
		demo_missing(d, "the server failed: %s", strerror(-err));
	if (!d->dir[0])
		return 0;
	if (d->sock[0] && lstat(d->sock, &st) == 0) {
		demo_missing(d, "the server left its socket %s behind", d->sock);
		unlink(d->sock);
	}
	if (rmdir(d->dir) < 0) {
		demo_missing(d, "cannot remove %s: %s", d->dir, strerror(errno));
		return 0;
	}
	demo_say(d, "shutdown: %s, %s removed",
		 had_server ? "server stopped" : "no server was running", d->dir);
	return 0;
}

/* ---- a managed virtio console (cmd_dev.c) ----------------------------------- */

/* The management area: past the message and the SDM mailboxes. */
#define DEMO_DEV_OFFSET (256u << 10)
#define DEMO_DEV_SIZE (256u << 10)

static int step_console(struct demo *d)
{
	char why[256] = "";

	if (dev_demo_console(d->sock, DEMO_DEV_OFFSET, DEMO_DEV_SIZE, d->g->json ? NULL : stdout,
			     why, sizeof(why)) < 0)
		demo_missing(d, "managed console: %s", why);
	return 0;
}

static const struct demo_step demo_steps[] = {
    {"server", step_server},   {"join", step_join},   {"doorbells", step_doorbells},
    {"message", step_message}, {"leave", step_leave}, {"sdm", step_sdm},
    {"console", step_console},
};

int demo_main(struct cli_global *g, int argc, char **argv)
{
	struct demo d = {.g = g, .stop_fd = -1};
	json_t *summary;
	size_t n, i;
	bool fatal = false;
	int r;

	r = simple_parse(g, argc, argv);
	if (r == CLI_HELP)
		return print_command_help(find_command("demo"));
	if (r)
		return EXIT_USAGE;
	cli_log_setup(g);
	d.p[0].name = "alice";
	d.p[1].name = "bob";
	d.p[2].name = "carol";
	for (i = 0; i < NPEERS; i++)
		d.p[i].id = -1;
	d.deadline = demo_now_ms() + DEMO_TIMEOUT_MS;
	d.missing = json_array();
	d.steps = json_array();
	for (i = 0; i < sizeof(demo_steps) / sizeof(demo_steps[0]); i++) {
		n = json_array_size(d.missing);
		if (fatal) {
			json_array_append_new(d.steps,
					      json_pack("{s:s, s:b, s:b}", "name",
							demo_steps[i].name, "ok", 0, "skipped", 1));
			continue;
		}
		if (demo_steps[i].run(&d) < 0) {
			fatal = true;
			demo_missing(&d, "step %s failed", demo_steps[i].name);
		}
		json_array_append_new(d.steps, json_pack("{s:s, s:b}", "name", demo_steps[i].name,
							 "ok", json_array_size(d.missing) == n));
	}
	/* Always: the shutdown cleans up whatever the steps created. */
	n = json_array_size(d.missing);
	step_shutdown(&d);
	json_array_append_new(d.steps, json_pack("{s:s, s:b}", "name", "shutdown", "ok",
						 json_array_size(d.missing) == n));
	n = json_array_size(d.missing);
	if (g->json) {
		summary =
		    json_pack("{s:b, s:s, s:i, s:i, s:I, s:o, s:O}", "ok", n == 0, "socket", d.sock,
			      "vectors", DEMO_VECTORS, "region_size", DEMO_REGION, "events",
			      (json_int_t)d.events, "steps", d.steps, "missing", d.missing);
		d.steps = NULL;
		if (d.sdm)
			json_object_set(summary, "sdm", d.sdm);
		if (json_print(summary, false))
			n = n ? n : 1;
	} else if (!n) {
		demo_say(&d, "demo: every expected event was observed (%u events)", d.events);
	}
	for (i = 0; i < json_array_size(d.missing); i++)
		cli_err(g, "missing: %s", json_string_value(json_array_get(d.missing, i)));
	json_decref(d.steps);
	json_decref(d.missing);
	json_decref(d.sdm);
	return n ? EXIT_FAIL : EXIT_OK;
}
