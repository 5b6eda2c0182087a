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

#include "common.h"

const char demo_usage[] =
    "Usage: ivlink demo [--json]\n"
    "\n"
    "Start an ivshmem server inside this process (a 1 MiB memfd region with an\n"
    "ivlink header, 2 vectors, its socket in a fresh temporary directory),\n"
    "connect three host peers (alice, bob, carol) and show them: see each other\n"
    "join, ring doorbells both ways on every vector (alice -> bob, bob -> alice,\n"
    "carol -> everyone), pass a message through the shared region, see carol\n"
    "leave, run the Signal Distribution Module on the same link (a master boots\n"
    "two slaves, interrupts them with mailbox payloads and is interrupted back;\n"
    "a slave addressing a slave is refused), then shut down and remove the\n"
    "socket directory.  Each step is verified; exit 0 only if every expected\n"
    "event was observed.  --json prints a summary object instead of the\n"
    "narration.\n";

#define NPEERS 3
#define DEMO_VECTORS 2
#define DEMO_REGION (1u << 20)
#define STEP_TIMEOUT_MS 2000
/* Bounds the whole run even when every step times out. */
#define DEMO_TIMEOUT_MS 8000
#define DEMO_MSG_OFFSET 0

struct demo_peer {
	const char *name;
	struct ivl_link *link;
	int id;
	bool saw_join[NPEERS];
	bool saw_leave[NPEERS];
	uint32_t doorbells[IVL_MAX_VECTORS]; /* events since the last reset */
};

struct demo {
	const struct cli_global *g;
	char dir[256];
	char sock[300];
	struct ivl_server *server;
	pthread_t thread;
	bool thread_running;
	int stop_fd;
	atomic_int server_err;
	struct demo_peer p[NPEERS];
	json_t *missing; /* array of strings */
	json_t *steps;	 /* array of step summaries */
	json_t *sdm;	 /* what the sdm step observed, or NULL */
	unsigned events;
	int64_t deadline; /* of the whole demo, monotonic ms */
};

struct demo_step {
	const char *name;
	/* 0: done (check d->missing), < 0: fatal, skip the remaining steps. */
	int (*run)(struct demo *d);
};

static void say(struct demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct demo *d, const char *fmt, ...)
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

static void missing(struct demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void missing(struct demo *d, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(d->missing, json_string(buf));
	say(d, "  MISSING: %s", buf);
}

static int64_t now_ms(void)
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
		say(d, "  %s %s %s (peer %u), %u vectors", me->name,
		    j >= 0 && j < (int)(me - d->p) ? "finds already there:" : "sees join:", who,
		    e->peer, ivl_link_peer_vectors(me->link, e->peer));
		break;
	case IVL_LINK_LEAVE:
		for (j = 0; j < NPEERS; j++)
			if (d->p[j].id == e->peer)
				me->saw_leave[j] = true;
		say(d, "  %s sees %s (peer %u) leave", me->name, who, e->peer);
		break;
	case IVL_LINK_DOORBELL:
		if (e->vector < IVL_MAX_VECTORS)
			me->doorbells[e->vector] += 1;
		say(d, "  %s: doorbell on vector %u (count %u)", me->name, e->vector, e->count);
		break;
	case IVL_LINK_DOWN:
		say(d, "  %s: the server went away", me->name);
		break;
	}
}

typedef bool (*demo_cond)(struct demo *d, const void *arg);

/* Process every live link until @done holds or the step's time is up.
 * Returns true if @done held. */
static bool pump(struct demo *d, demo_cond done, const void *arg)
{
	int64_t end = now_ms() + STEP_TIMEOUT_MS;

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
		left = end - now_ms();
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
	say(d, "server: listening on %s (%s, %u KiB, %u vectors per peer)", d->sock,
	    ivl_region_describe(ivl_server_region(d->server)), DEMO_REGION / 1024, DEMO_VECTORS);
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
		say(d, "%s joins: connected as peer %d (%u vectors)", names[i], d->p[i].id,
		    ivl_link_vectors(d->p[i].link));
		if (pump(d, joined_upto, &i))
			continue;
		for (int a = 0; a <= i; a++)
			for (int b = 0; b <= i; b++) {
				if (a == b)
					continue;
				if (a < b && !d->p[a].saw_join[b])
					missing(d, "%s did not see %s join", d->p[a].name,
						d->p[b].name);
				else if (!knows(&d->p[a], d->p[b].id))
					missing(d, "%s does not know %s", d->p[a].name,
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
		say(d, "%s rings %s, vector %u", d->p[from].name, d->p[to].name, v);
		r = ivl_link_ring(d->p[from].link, (uint16_t)d->p[to].id, v);
	} else {
		say(d, "%s rings everyone, vector %u", d->p[from].name, v);
		r = ivl_link_broadcast(d->p[from].link, v);
		/* Everyone but the sender must hear it. */
		for (int i = 0, k = 0; i < NPEERS; i++)
			if (i != from)
				w.who[k++] = i;
		if (r >= 0 && r != NPEERS - 1)
			missing(d, "%s's broadcast on vector %u reached %d peers, not %d",
				d->p[from].name, v, r, NPEERS - 1);
	}
	if (r < 0) {
		missing(d, "%s could not ring vector %u: %s", d->p[from].name, v, strerror(-r));
		return 0;
	}
	if (pump(d, bells_seen, &w))
		return 0;
	for (int i = 0; i < 2; i++)
		if (w.who[i] >= 0 && !d->p[w.who[i]].doorbells[v])
			missing(d, "%s did not hear %s's doorbell on vector %u",
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
		missing(d, "no usable application area (alice %llu bytes, bob %llu bytes)",
			(unsigned long long)asize, (unsigned long long)bsize);
		return 0;
	}
	memcpy(a + DEMO_MSG_OFFSET, msg, sizeof(msg));
	/* Release: pairs with bob's acquire fence below; the doorbell is the
	 * signal that the message is complete. */
	atomic_thread_fence(memory_order_release);
	say(d, "alice writes \"%s\" at app offset %u and rings bob, vector 0", msg,
	    DEMO_MSG_OFFSET);
	reset_bells(d);
	if (ivl_link_ring(d->p[0].link, (uint16_t)d->p[1].id, 0) < 0 || !pump(d, bells_seen, &w)) {
		missing(d, "bob did not hear alice's message doorbell");
		return 0;
	}
	/* Acquire: pairs with alice's release fence above. */
	atomic_thread_fence(memory_order_acquire);
	memcpy(got, b + DEMO_MSG_OFFSET, sizeof(got));
	got[sizeof(got) - 1] = '\0';
	if (memcmp(got, msg, sizeof(msg))) {
		missing(d, "bob read \"%s\" instead of alice's message", got);
		return 0;
	}
	say(d, "bob reads \"%s\" through his own mapping: the region is shared", got);
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

	say(d, "carol leaves");
	ivl_link_free(d->p[2].link);
	d->p[2].link = NULL;
	if (pump(d, carol_gone, &carol))
		return 0;
	for (int i = 0; i < 2; i++)
		if (!d->p[i].saw_leave[2])
			missing(d, "%s did not see carol leave", d->p[i].name);
		else if (knows(&d->p[i], carol))
			missing(d, "%s still lists carol", d->p[i].name);
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
		missing(d, "the server failed: %s", strerror(-err));
	if (!d->dir[0])
		return 0;
	if (d->sock[0] && lstat(d->sock, &st) == 0) {
		missing(d, "the server left its socket %s behind", d->sock);
		unlink(d->sock);
	}
	if (rmdir(d->dir) < 0) {
		missing(d, "cannot remove %s: %s", d->dir, strerror(errno));
		return 0;
	}
	say(d, "shutdown: %s, %s removed", had_server ? "server stopped" : "no server was running",
	    d->dir);
	return 0;
}

/* ---- SDM over the link ---------------------------------------------------- */

/* Offset of the SDM mailboxes in the app area: past the message step's. */
#define DEMO_SDM_OFFSET 4096u
#define DEMO_SDM_SLAVES 2

struct demo_sdm_node {
	struct ivl_link *link;
	struct ivl_sdm *sdm;
	unsigned actions;	   /* BOOT actions run */
	bool boot_after_action;	   /* the BOOT handler found its action done */
	unsigned irqs;		   /* IRQs delivered */
	uint16_t from[DEMO_SDM_SLAVES + 1];
	struct ivl_sdm_signal last;
};

struct demo_sdm {
	struct demo_sdm_node n[DEMO_SDM_SLAVES + 1]; /* [0] the master */
};

static int demo_sdm_boot_action(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig,
				uint16_t from, void *opaque)
{
	struct demo_sdm_node *n = opaque;

	(void)sdm, (void)sig, (void)from;
	n->actions++;
	return 0;
}

static void demo_sdm_on_boot(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig, uint16_t from,
			     void *opaque)
{
	struct demo_sdm_node *n = opaque;

	(void)sdm, (void)from;
	n->boot_after_action = n->actions > 0;
	n->last = *sig;
}

static void demo_sdm_on_irq(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig, uint16_t from,
			    void *opaque)
{
	struct demo_sdm_node *n = opaque;

	(void)sdm;
	if (n->irqs < DEMO_SDM_SLAVES + 1)
		n->from[n->irqs] = from;
	n->irqs++;
	n->last = *sig;
}

/* Process the SDM objects until @done holds or the step's time is up. */
static bool demo_sdm_pump(struct demo *d, struct demo_sdm *x,
			  bool (*done)(const struct demo_sdm *x))
{
	int64_t end = now_ms() + STEP_TIMEOUT_MS;

	if (end > d->deadline)
		end = d->deadline;
	for (;;) {
		struct pollfd pf[DEMO_SDM_SLAVES + 1];

		for (int i = 0; i <= DEMO_SDM_SLAVES; i++) {
			ivl_sdm_process(x->n[i].sdm);
			pf[i] = (struct pollfd){.fd = ivl_sdm_get_fd(x->n[i].sdm), .events = POLLIN};
		}
		if (done(x))
			return true;
		if (now_ms() >= end)
			return false;
		if (poll(pf, DEMO_SDM_SLAVES + 1, 20) < 0 && errno != EINTR)
			return false;
	}
}

static bool demo_sdm_registered(const struct demo_sdm *x)
{
	struct ivl_sdm_config c;

	for (int i = 1; i <= DEMO_SDM_SLAVES; i++)
		if (ivl_sdm_state(x->n[i].sdm) != 0)
			return false;
	return ivl_sdm_get_config(x->n[0].sdm, &c) == 0 && c.current_slaves == DEMO_SDM_SLAVES;
}

static bool demo_sdm_booted(const struct demo_sdm *x)
{
	for (int i = 1; i <= DEMO_SDM_SLAVES; i++)
		if (x->n[i].last.type != IVL_SDM_BOOT)
			return false;
	return true;
}

static bool demo_sdm_slaves_irq(const struct demo_sdm *x)
{
	for (int i = 1; i <= DEMO_SDM_SLAVES; i++)
		if (!x->n[i].irqs)
			return false;
	return true;
}

static bool demo_sdm_master_irq(const struct demo_sdm *x)
{
	return x->n[0].irqs >= DEMO_SDM_SLAVES;
}

static int demo_sdm_nodes(struct demo *d, struct demo_sdm *x)
{
	static const char *const names[] = {"sdm-master", "sdm-slave1", "sdm-slave2"};
	struct ivl_sdm_options o = {.master = true,
				    .max_slaves = DEMO_SDM_SLAVES,
				    .channel = IVL_SDM_CHAN_LINK,
				    .link_offset = DEMO_SDM_OFFSET};

	for (int i = 0; i <= DEMO_SDM_SLAVES; i++) {
		struct ivl_link_host_opts lo = {
		    .socket_path = d->sock, .name = names[i], .timeout_ms = STEP_TIMEOUT_MS};
		struct demo_sdm_node *n = &x->n[i];
		int r = ivl_link_host_new(&n->link, &lo);

		if (r < 0) {
			n->link = NULL;
			missing(d, "%s cannot join the server: %s", names[i], strerror(-r));
			return r;
		}
		o.link = n->link;
		o.id = (uint16_t)i;
		if (i == 0)
			o.link_master = (uint16_t)ivl_link_id(n->link);
		r = ivl_sdm_new(&n->sdm, &o);
		if (r < 0) {
			missing(d, "%s: cannot start SDM on the link: %s", names[i], strerror(-r));
			return r;
		}
		o.master = false;
		ivl_sdm_set_handler(n->sdm, IVL_SDM_IRQ, demo_sdm_on_irq, n);
		if (i > 0) {
			ivl_sdm_set_action(n->sdm, IVL_SDM_BOOT, demo_sdm_boot_action, n);
			ivl_sdm_set_handler(n->sdm, IVL_SDM_BOOT, demo_sdm_on_boot, n);
		}
	}
	return 0;
}

static void demo_sdm_free(struct demo_sdm *x)
{
	/* The SDM objects borrow the links: free them first. */
	for (int i = 0; i <= DEMO_SDM_SLAVES; i++)
		ivl_sdm_free(x->n[i].sdm);
	for (int i = 0; i <= DEMO_SDM_SLAVES; i++)
		ivl_link_free(x->n[i].link);
}

/* A master and two slaves on the link channel: BOOT (action first), IRQ
 * with payload both ways, a slave addressing a slave refused locally. */
static int step_sdm(struct demo *d)
{
	struct demo_sdm x = {0};
	struct ivl_sdm_stats st;
	struct ivl_sdm_config cfg = {0};
	json_t *j = json_object(), *acts = json_array();
	int ok = 0, r;

	d->sdm = j;
	json_object_set_new(j, "channel", json_string("link"));
	json_object_set_new(j, "offset", json_integer(DEMO_SDM_OFFSET));
	if (demo_sdm_nodes(d, &x) < 0)
		goto out;
	say(d, "sdm: a master (link peer %d) and two slaves join the link; mailboxes at app "
	       "offset %u",
	    ivl_link_id(x.n[0].link), DEMO_SDM_OFFSET);
	if (!demo_sdm_pump(d, &x, demo_sdm_registered)) {
		missing(d, "the SDM slaves did not both register");
		goto out;
	}
	ivl_sdm_get_config(x.n[0].sdm, &cfg);
	say(d, "  slaves %d and %d registered, current_slaves %u", ivl_sdm_id(x.n[1].sdm),
	    ivl_sdm_id(x.n[2].sdm), cfg.current_slaves);
	json_object_set_new(j, "current_slaves", json_integer(cfg.current_slaves));
	ok++;

	for (uint32_t i = 1; i <= DEMO_SDM_SLAVES; i++) {
		struct ivl_sdm_signal boot = {IVL_SDM_BOOT, i, {0x80000000u, 0}};

		say(d, "sdm master boots slave %u at 0x%08x", i, boot.payload[0]);
		if ((r = ivl_sdm_send(x.n[0].sdm, &boot)) < 0)
			missing(d, "the master could not boot slave %u: %s", i, strerror(-r));
	}
	if (demo_sdm_pump(d, &x, demo_sdm_booted)) {
		for (int i = 1; i <= DEMO_SDM_SLAVES; i++) {
			if (!x.n[i].boot_after_action || x.n[i].actions != 1 ||
			    x.n[i].last.payload[0] != 0x80000000u)
				missing(d, "slave %d: the boot action did not run first", i);
			else
				say(d, "  slave %d: boot action ran, then the handler (entry 0x%08x)",
				    i, x.n[i].last.payload[0]);
		}
		ok++;
	} else {
		missing(d, "a BOOT signal did not arrive");
	}

	for (uint32_t i = 1; i <= DEMO_SDM_SLAVES; i++) {
		struct ivl_sdm_signal irq = {IVL_SDM_IRQ, i, {3, 16 + i}};

		say(d, "sdm master interrupts slave %u, mailbox payload %u %u", i, irq.payload[0],
		    irq.payload[1]);
		if ((r = ivl_sdm_send(x.n[0].sdm, &irq)) < 0)
			missing(d, "the master could not interrupt slave %u: %s", i, strerror(-r));
	}
	if (demo_sdm_pump(d, &x, demo_sdm_slaves_irq)) {
		for (uint32_t i = 1; i <= DEMO_SDM_SLAVES; i++) {
			const struct ivl_sdm_signal *g = &x.n[i].last;

			if (x.n[i].from[0] != IVL_SDM_MASTER || g->payload[0] != 3 ||
			    g->payload[1] != 16 + i)
				missing(d, "slave %u: wrong IRQ (from %u, payload %u %u)", i,
					x.n[i].from[0], g->payload[0], g->payload[1]);
			else
				say(d, "  slave %u: irq from the master, payload %u %u", i,
				    g->payload[0], g->payload[1]);
		}
		ok++;
	} else {
		missing(d, "an IRQ to a slave did not arrive");
	}

	for (uint32_t i = 1; i <= DEMO_SDM_SLAVES; i++) {
		struct ivl_sdm_signal irq = {IVL_SDM_IRQ, IVL_SDM_MASTER, {i, 0xabc}};

		say(d, "sdm slave %u interrupts the master, payload %u 0x%x", i, irq.payload[0],
		    irq.payload[1]);
		if ((r = ivl_sdm_send(x.n[i].sdm, &irq)) < 0)
			missing(d, "slave %u could not interrupt the master: %s", i, strerror(-r));
	}
	if (demo_sdm_pump(d, &x, demo_sdm_master_irq)) {
		unsigned seen = 0;

		for (int k = 0; k < DEMO_SDM_SLAVES; k++)
			if (x.n[0].from[k] >= 1 && x.n[0].from[k] <= DEMO_SDM_SLAVES)
				seen |= 1u << x.n[0].from[k];
		if (seen != 0x6u || x.n[0].last.payload[1] != 0xabc)
			missing(d, "the master's IRQs did not come from slaves 1 and 2");
		else
			say(d, "  master: irq from slave %u and from slave %u", x.n[0].from[0],
			    x.n[0].from[1]);
		ok++;
	} else {
		missing(d, "an IRQ to the master did not arrive");
	}

	/* Routing: a slave signals only the master, refused before any wire. */
	r = ivl_sdm_send(x.n[1].sdm, &(struct ivl_sdm_signal){IVL_SDM_IRQ, 2, {0, 0}});
	if (r != -EPERM) {
		missing(d, "slave 1 -> slave 2 was not refused (%d)", r);
	} else {
		say(d, "sdm slave 1 -> slave 2: refused locally (%s)", strerror(-r));
		json_object_set_new(j, "slave_to_slave", json_string("refused"));
		ok++;
	}
	if (ivl_sdm_get_stats(x.n[0].sdm, &st) == 0) {
		json_object_set_new(j, "master_received", json_integer((json_int_t)st.received));
		json_object_set_new(j, "master_sent", json_integer((json_int_t)st.sent));
		json_object_set_new(j, "dropped_forged",
				    json_integer((json_int_t)st.dropped_forged));
		if (st.sent != 2 * DEMO_SDM_SLAVES || st.received != DEMO_SDM_SLAVES ||
		    st.dropped_forged)
			missing(d, "master counters: sent %llu, received %llu, forged %llu",
				(unsigned long long)st.sent, (unsigned long long)st.received,
				(unsigned long long)st.dropped_forged);
	}
	for (int i = 1; i <= DEMO_SDM_SLAVES; i++)
		json_array_append_new(acts, json_integer(x.n[i].actions));
out:
	json_object_set_new(j, "boot_actions", acts);
	json_object_set_new(j, "checks_passed", json_integer(ok));
	demo_sdm_free(&x);
	return 0;
}

/* ---- a managed virtio console (cmd_dev.c) ----------------------------------- */

/* The management area: past the message and the SDM mailboxes. */
#define DEMO_DEV_OFFSET (256u << 10)
#define DEMO_DEV_SIZE (256u << 10)

int dev_demo_console(const char *sock, uint64_t offset, uint64_t size, FILE *out, char *why,
		     size_t why_len);

static int step_console(struct demo *d)
{
	char why[256] = "";

	if (dev_demo_console(d->sock, DEMO_DEV_OFFSET, DEMO_DEV_SIZE, d->g->json ? NULL : stdout,
			     why, sizeof(why)) < 0)
		missing(d, "managed console: %s", why);
	return 0;
}

static const struct demo_step demo_steps[] = {
    {"server", step_server},   {"join", step_join},   {"doorbells", step_doorbells},
    {"message", step_message}, {"leave", step_leave},
    {"sdm", step_sdm},
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
	d.deadline = now_ms() + DEMO_TIMEOUT_MS;
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
			missing(&d, "step %s failed", demo_steps[i].name);
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
		say(&d, "demo: every expected event was observed (%u events)", d.events);
	}
	for (i = 0; i < json_array_size(d.missing); i++)
		cli_err(g, "missing: %s", json_string_value(json_array_get(d.missing, i)));
	json_decref(d.steps);
	json_decref(d.missing);
	json_decref(d.sdm);
	return n ? EXIT_FAIL : EXIT_OK;
}
