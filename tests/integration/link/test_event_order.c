/* SPDX-License-Identifier: MIT */
/*
 * The event-order contract of the link API (link.h, docs/protocol.md §4),
 * on every backend: a peer rings and leaves (exits, frees its link, or is
 * SIGKILLed) while the receiver is busy or while it is collecting, and the
 * receiver must be handed every doorbell it is owed before that peer's
 * LEAVE, and the peer's JOIN before any of them.
 *
 * Exact counts where the backend has them (eventfds, no coalescing): the
 * doorbells before the LEAVE add up to the rings.  With coalescing (pending
 * bits) a doorbell means "at least once": every rung vector is reported
 * before the LEAVE.  Each case runs many rounds: the race it guards against
 * used to lose in most runs on a loaded machine.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include <ivlink/ivshmem.h>
#include <ivlink/link-device.h>
#include <ivlink/hub.h>
#include <ivlink/link.h>
#include <ivlink/plain.h>

#include "link/guest-internal.h"

#define VECS 4
#define RINGS 200
#define ROUNDS 40

/* What the receiver saw of one peer, up to and including its LEAVE. */
struct seen {
	uint64_t counts[VECS];
	bool joined, left;
	int early; /* doorbells before the peer's JOIN */
};

/*
 * Take events from @l until @peer's LEAVE (bounded).  Doorbells carry no
 * sender: every doorbell counts for @peer, the only one ringing.  With
 * @join, a doorbell before @peer's JOIN is counted as early.
 */
static void collect(struct ivl_link *l, uint16_t peer, bool join, struct seen *s)
{
	int64_t end = tu_now_ms() + 10000;

	memset(s, 0, sizeof(*s));
	s->joined = !join;
	while (!s->left && tu_now_ms() < end) {
		struct ivl_link_event ev[8]; /* small: exercises the queue */
		int n = ivl_link_wait(l, ev, 8, 100);

		assert_true(n >= 0);
		for (int i = 0; i < n; i++) {
			switch (ev[i].type) {
			case IVL_LINK_JOIN:
				if (ev[i].peer == peer)
					s->joined = true;
				break;
			case IVL_LINK_DOORBELL:
				assert_false(s->left);
				if (!s->joined)
					s->early++;
				if (ev[i].vector < VECS)
					s->counts[ev[i].vector] += ev[i].count;
				break;
			case IVL_LINK_LEAVE:
				if (ev[i].peer == peer) {
					assert_true(s->joined);
					s->left = true;
					/* Nothing of this peer may follow, and
					 * the rest of this batch is some other
					 * round's business: stop here. */
					assert_int_equal(i, n - 1);
				}
				break;
			default:
				fail_msg("unexpected event %d", ev[i].type);
			}
		}
	}
	assert_true(s->left);
}

/* Wait (bounded) for @peer's JOIN; nothing else may come meanwhile. */
static void collect_join(struct ivl_link *l, uint16_t peer)
{
	int64_t end = tu_now_ms() + 10000;

	while (tu_now_ms() < end) {
		struct ivl_link_event ev;
		int n = ivl_link_wait(l, &ev, 1, 100);

		assert_true(n >= 0);
		if (n == 0)
			continue;
		assert_int_equal(ev.type, IVL_LINK_JOIN);
		assert_int_equal(ev.peer, peer);
		return;
	}
	fail_msg("peer %u never joined", peer);
}

static void expect_exact(const struct seen *s, unsigned rings)
{
	uint64_t total = 0;

	for (unsigned v = 0; v < VECS; v++)
		total += s->counts[v];
	if (total != rings || s->early)
		fail_msg("%llu of %u doorbells before the LEAVE, %d before the JOIN",
			 (unsigned long long)total, rings, s->early);
}

static void expect_each(const struct seen *s, unsigned nvec)
{
	for (unsigned v = 0; v < nvec; v++)
		if (!s->counts[v])
			fail_msg("vector %u rung but not reported before the LEAVE", v);
}

/* ---- host backend: a real server, the ringer in its own process ------------ */

enum ending { END_FREE, END_EXIT, END_KILL };

/* A ringer process: connects, writes its ID to @id_fd, waits for a byte on
 * @go_fd, rings @target @rings times round the vectors, and ends @how. */
static pid_t start_ringer(const char *sock, uint16_t target, unsigned rings, enum ending how,
			  int go_fd, int id_fd)
{
	pid_t parent = getpid(), pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct ivl_link_host_opts o = {
		    .socket_path = sock, .vectors = VECS, .name = "ringer", .timeout_ms = 5000};
		struct ivl_link *l;
		char c;

		tu_child_init(parent);
		if (ivl_link_host_new(&l, &o) < 0)
			_exit(10);
		uint16_t id = (uint16_t)ivl_link_id(l);
		if (write(id_fd, &id, sizeof(id)) != sizeof(id) || read(go_fd, &c, 1) != 1)
			_exit(11);
		for (unsigned i = 0; i < rings; i++)
			if (ivl_link_ring(l, target, (uint16_t)(i % VECS)) < 0)
				_exit(12);
		if (how == END_KILL)
			raise(SIGKILL);
		if (how == END_FREE)
			ivl_link_free(l);
		_exit(0); /* END_EXIT: the kernel closes everything */
	}
	return pid;
}

struct ringer {
	pid_t pid;
	uint16_t id;
	int go[2], idp[2];
};

static void ringer_start(struct ringer *rg, const char *sock, struct ivl_link *target,
			 enum ending how)
{
	assert_int_equal(pipe(rg->go), 0);
	assert_int_equal(pipe(rg->idp), 0);
	rg->pid = start_ringer(sock, (uint16_t)ivl_link_id(target), RINGS, how, rg->go[0],
			       rg->idp[1]);
	assert_int_equal(read(rg->idp[0], &rg->id, sizeof(rg->id)), sizeof(rg->id));
}

static void ringer_go(struct ringer *rg)
{
	assert_int_equal(write(rg->go[1], "g", 1), 1);
}

/* Wait until it has ended @how. */
static void ringer_reap(struct ringer *rg, enum ending how)
{
	int st;

	st = tu_wait(rg->pid, 10000);
	if (how == END_KILL)
		assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	else
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (int i = 0; i < 2; i++) {
		close(rg->go[i]);
		close(rg->idp[i]);
	}
}

/* Let it ring and end; wait until it has. */
static void ringer_finish(struct ringer *rg, enum ending how)
{
	ringer_go(rg);
	ringer_reap(rg, how);
}

static void host_round(const char *sock, struct ivl_link *r, bool coalesce, enum ending how,
		       bool busy)
{
	struct ringer rg;
	struct seen s;

	ringer_start(&rg, sock, r, how);
	if (busy) {
		/* The receiver takes nothing until the ringer has rung and
		 * is gone, so the LEAVE is there as early as it can be. */
		ringer_finish(&rg, how);
		collect(r, rg.id, true, &s);
	} else {
		/* The receiver collects while the ringer rings and ends. */
		ringer_go(&rg);
		collect(r, rg.id, true, &s);
		ringer_reap(&rg, how);
	}
	if (coalesce)
		expect_each(&s, VECS);
	else
		expect_exact(&s, RINGS);
}

/* Rings of a peer that left are all delivered before its LEAVE, and while
 * a concurrent receiver collects too. */
static void host_backend(void **state)
{
	const char *dir = tu_tmpdir(), *sock = tu_path(dir, "sock");
	struct ivl_link_host_opts o = {
	    .socket_path = sock, .vectors = VECS, .name = "receiver", .timeout_ms = 5000};
	struct ivl_link *r;
	pid_t server;
	int fds;

	(void)state;
	server = tu_start_server(sock, tu_path(dir, "server.log"), "--memfd", "-l", "1M", "-n",
				 "4", NULL);
	assert_true(server > 0);
	fds = tu_count_fds();
	for (int coalesce = 0; coalesce < 2; coalesce++) {
		assert_int_equal(ivl_link_host_new(&r, &o), 0);
		if (coalesce)
			assert_int_equal(ivl_link_set_coalescing(r, true), 0);
		for (int i = 0; i < ROUNDS; i++)
			host_round(sock, r, coalesce, (enum ending)(i % 3), i % 2 == 0);
		ivl_link_free(r);
	}
	assert_int_equal(tu_count_fds(), fds);
	tu_kill(server);
}

/* ---- local backend: ringers are threads ------------------------------------ */

struct lring {
	struct ivl_hub *hub;
	uint16_t target;
	unsigned rings;
	atomic_int *gate; /* 0: wait, 1: go */
	int err;
};

static void *local_ringer(void *arg)
{
	struct lring *lr = arg;
	struct ivl_link *l;

	if ((lr->err = ivl_hub_join(lr->hub, "ringer", &l)) < 0)
		return NULL;
	while (lr->gate && !atomic_load(lr->gate))
		sched_yield();
	for (unsigned i = 0; i < lr->rings && !lr->err; i++)
		lr->err = ivl_link_ring(l, lr->target, (uint16_t)(i % VECS));
	ivl_link_free(l);
	return NULL;
}

static void local_backend(void **state)
{
	struct ivl_hub *hub;
	struct ivl_link *r;
	uint16_t ringer_id;

	(void)state;
	assert_int_equal(ivl_hub_new(&hub, 1 << 20, 8, VECS), 0);
	assert_int_equal(ivl_hub_join(hub, "receiver", &r), 0);
	ringer_id = ivl_link_id(r) == 0 ? 1 : 0; /* the lowest free ID */
	for (int coalesce = 0; coalesce < 2; coalesce++) {
		if (coalesce)
			assert_int_equal(ivl_link_set_coalescing(r, true), 0);
		for (int i = 0; i < ROUNDS * 2; i++) {
			atomic_int gate = 0;
			struct lring lr = {hub, (uint16_t)ivl_link_id(r), RINGS, &gate, 0};
			bool busy = i % 2 == 0;
			struct seen s;
			pthread_t t;

			assert_int_equal(pthread_create(&t, NULL, local_ringer, &lr), 0);
			atomic_store(&gate, 1);
			/* Busy: collect after the ringer is gone; else while it
			 * joins, rings and leaves. */
			if (busy)
				pthread_join(t, NULL);
			collect(r, ringer_id, true, &s);
			if (!busy)
				pthread_join(t, NULL);
			assert_int_equal(lr.err, 0);
			if (coalesce)
				expect_each(&s, VECS);
			else
				expect_exact(&s, RINGS);
		}
	}
	ivl_link_free(r);
	ivl_hub_free(hub);
}

/*
 * An ID reused before the receiver looks: JOIN, LEAVE, JOIN, LEAVE of the
 * same ID, in that order, and every ring of both holders before the first
 * LEAVE.  (The second holder's rings may come before its JOIN: doorbells
 * carry no sender, docs/protocol.md §4.)
 */
static void local_id_reuse(void **state)
{
	struct ivl_hub *hub;
	struct ivl_link *r;
	struct ivl_link_event ev[64];
	enum ivl_link_event_type order[4] = {IVL_LINK_JOIN, IVL_LINK_LEAVE, IVL_LINK_JOIN,
					     IVL_LINK_LEAVE};
	uint64_t before_first_leave = 0;
	int k = 0;

	(void)state;
	assert_int_equal(ivl_hub_new(&hub, 1 << 20, 4, VECS), 0);
	assert_int_equal(ivl_hub_join(hub, "receiver", &r), 0);
	for (int holder = 0; holder < 2; holder++) {
		struct lring lr = {hub, (uint16_t)ivl_link_id(r), RINGS, NULL, 0};

		local_ringer(&lr);
		assert_int_equal(lr.err, 0);
	}
	while (k < 4) {
		int n = ivl_link_wait(r, ev, 64, 2000);

		assert_true(n > 0);
		for (int i = 0; i < n; i++) {
			if (ev[i].type == IVL_LINK_DOORBELL) {
				assert_true(k < 2); /* all before the second JOIN */
				before_first_leave += k < 2 ? ev[i].count : 0;
				continue;
			}
			assert_true(k < 4);
			assert_int_equal(ev[i].type, order[k]);
			assert_int_equal(ev[i].peer, 1);
			k++;
		}
	}
	assert_int_equal(before_first_leave, 2 * RINGS);
	ivl_link_free(r);
	ivl_hub_free(hub);
}

/* ---- plain backend: rings are pending bits, leaves come from the table ---- */

static void plain_backend(void **state)
{
	const char *path = tu_path(tu_tmpdir(), "plain");
	struct ivl_plain_opts o = {
	    .kind = IVL_REGION_FILE, .name = path, .size = 1 << 20, .max_peers = 4};
	struct ivl_link *r, *p;

	(void)state;
	assert_int_equal(ivl_link_plain_new(&r, &o, "receiver"), 0);
	for (int i = 0; i < ROUNDS; i++) {
		struct seen s;

		assert_int_equal(ivl_link_plain_new(&p, &o, "ringer"), 0);
		/* A peer that comes and goes between two scans of the table is
		 * never seen at all: let the receiver see it first. */
		collect_join(r, (uint16_t)ivl_link_id(p));
		for (unsigned k = 0; k < RINGS; k++)
			assert_int_equal(ivl_link_ring(p, (uint16_t)ivl_link_id(r), 0), 0);
		uint16_t id = (uint16_t)ivl_link_id(p);
		ivl_link_free(p);
		collect(r, id, false, &s);
		expect_each(&s, ivl_link_vectors(r));
	}
	ivl_link_free(r);
}

/* ---- guest backend: the ivshmem device model over a real server ---------- */

/*
 * A guest receives through its VMM: interrupts in flight there may come
 * late, so the guarantee holds for what the pending bits carry (coalescing
 * on, ivlink senders).  The ringer is a host process that rings and ends.
 */
static void guest_backend(void **state)
{
	const char *dir = tu_tmpdir(), *sock = tu_path(dir, "gsock");
	struct ivl_link_host_opts ho = {
	    .socket_path = sock, .vectors = VECS, .name = "guest", .timeout_ms = 5000};
	struct tu_pump p = {0};
	struct ivl_link *g;
	pid_t server;

	(void)state;
	server = tu_start_server(sock, tu_path(dir, "gserver.log"), "--memfd", "-l", "1M", "-n",
				 "4", NULL);
	assert_true(server > 0);
	assert_int_equal(ivl_link_host_new(&p.backing, &ho), 0);
	assert_int_equal(ivl__link_guest_over_model(&g, &p.ld, p.backing, 5000), 0);
	assert_int_equal(tu_pump_start(&p), 0);
	assert_int_equal(ivl_link_set_coalescing(g, true), 0);
	for (int i = 0; i < ROUNDS / 2; i++) {
		enum ending how = (enum ending)(i % 3);
		struct ringer rg;
		struct seen s;

		ringer_start(&rg, sock, g, how);
		/* The table is scanned now and then: see the peer first. */
		collect_join(g, rg.id);
		ringer_finish(&rg, how);
		collect(g, rg.id, false, &s);
		expect_each(&s, VECS);
	}
	tu_pump_stop(&p);
	ivl_link_free(g);
	ivl_link_free(p.backing);
	tu_kill(server);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(host_backend),  cmocka_unit_test(local_backend),
	    cmocka_unit_test(local_id_reuse), cmocka_unit_test(plain_backend),
	    cmocka_unit_test(guest_backend),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
