/* SPDX-License-Identifier: MIT */
/*
 * The host backend against the real ivlink-server, with every peer in its
 * own process: rings between every pair on every vector, joins and leaves,
 * a peer killed, the server stopped, a raw server, and 100 peers at once.
 *
 * Children synchronize through barriers in the shared region itself (atomic
 * counters in the application area) and report through their exit status;
 * every wait is bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include <ivlink/link.h>

#define VECS 4
#define MAX_KIDS 100

/* Child-side checks: no cmocka (no longjmp across fork), just an exit. */
#define CK(c)                                                                                      \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "child %d: %s:%d: %s\n", me, __FILE__, __LINE__, #c);      \
			_exit(1);                                                                  \
		}                                                                                  \
	} while (0)

enum scenario { MATRIX, KILLED, SERVER_TERM };

struct plan {
	enum scenario what;
	int kids;
	bool raw;   /* server --raw */
	bool leave; /* the last kid leaves, the others must see it */
	int notify; /* pipe to the parent, or -1 */
	const char *sock;
};

/* What a child saw. */
struct tally {
	uint64_t bells[IVL_MAX_VECTORS];
	uint8_t joined[IVL_MAX_PEER_ID + 1];
	uint8_t left[IVL_MAX_PEER_ID + 1];
	int njoined, nleft, down;
};

static struct tally t;
static int me;

/* Parent side: what a failed test must not leave running. */
static pid_t server_pid = -1;
static pid_t kid_pids[MAX_KIDS];
static int nkids;

/* Region layout used by the test: barrier counters, then the kids' IDs. */
static _Atomic uint32_t *counter(struct ivl_link *l, int i)
{
	return (_Atomic uint32_t *)((char *)ivl_link_app_area(l, NULL) + 64 * i);
}

static _Atomic uint32_t *slot(struct ivl_link *l, int kid)
{
	return (_Atomic uint32_t *)((char *)ivl_link_app_area(l, NULL) + 4096 + 4 * kid);
}

/* Take events for up to @ms. */
static int pump(struct ivl_link *l, int ms)
{
	struct ivl_link_event ev[64];
	int n = ivl_link_wait(l, ev, 64, ms);

	for (int i = 0; i < n; i++) {
		switch (ev[i].type) {
		case IVL_LINK_JOIN:
			CK(!t.joined[ev[i].peer]);
			t.joined[ev[i].peer] = 1;
			t.left[ev[i].peer] = 0;
			t.njoined++;
			break;
		case IVL_LINK_LEAVE:
			CK(t.joined[ev[i].peer]);
			t.joined[ev[i].peer] = 0;
			t.left[ev[i].peer] = 1;
			t.njoined--;
			t.nleft++;
			break;
		case IVL_LINK_DOORBELL:
			CK(ev[i].vector < VECS && ev[i].count >= 1);
			t.bells[ev[i].vector] += ev[i].count;
			break;
		case IVL_LINK_DOWN:
			t.down++;
			break;
		}
	}
	return n;
}

#define UNTIL(l, cond, ms)                                                                         \
	do {                                                                                       \
		int64_t end_ = tu_now_ms() + (ms);                                                 \
		while (!(cond)) {                                                                  \
			CK(tu_now_ms() < end_);                                                    \
			CK(pump((l), 20) >= 0);                                                    \
		}                                                                                  \
	} while (0)

/* All @n kids reach barrier @i; events keep being taken meanwhile, so the
 * server never sees us stop reading. */
static void barrier(struct ivl_link *l, int i, uint32_t n, int ms)
{
	atomic_fetch_add(counter(l, i), 1);
	UNTIL(l, atomic_load(counter(l, i)) >= n, ms);
}

static struct ivl_link *connect_kid(const struct plan *p)
{
	struct ivl_link_host_opts o = {.socket_path = p->sock, .timeout_ms = 20000};
	struct ivl_link *l;
	char name[16];
	int r;

	snprintf(name, sizeof(name), "kid%d", me);
	o.name = name;
	r = ivl_link_host_new(&l, &o);
	if (r < 0)
		fprintf(stderr, "child %d: connect: %s\n", me, strerror(-r));
	CK(r == 0);
	CK(ivl_link_vectors(l) == VECS);
	CK((ivl_link_header(l) == NULL) == p->raw);
	atomic_store(slot(l, me), (uint32_t)ivl_link_id(l) + 1);
	return l;
}

static int id_of(struct ivl_link *l, int kid)
{
	return (int)atomic_load(slot(l, kid)) - 1;
}

/* Counts are weighted by sender so that a missing pair shows (small runs):
 * kid j rings each vector 2^j times, so the sum names the senders. */
static uint64_t weight(const struct plan *p, int kid)
{
	return p->kids <= 8 ? 1ull << kid : 1;
}

static void ring_others(struct ivl_link *l, const struct plan *p, const bool *alive)
{
	for (int k = 0; k < p->kids; k++) {
		if (k == me || !alive[k])
			continue;
		for (int v = 0; v < VECS; v++)
			for (uint64_t r = 0; r < weight(p, me); r++)
				CK(ivl_link_ring(l, (uint16_t)id_of(l, k), (uint16_t)v) == 0);
	}
}

static void expect_bells(struct ivl_link *l, const struct plan *p, const bool *alive)
{
	uint64_t want = 0;

	for (int k = 0; k < p->kids; k++)
		if (k != me && alive[k])
			want += weight(p, k);
	UNTIL(l,
	      t.bells[0] >= want && t.bells[1] >= want && t.bells[2] >= want && t.bells[3] >= want,
	      30000);
	/* Exactly: nothing more may trickle in. */
	CK(pump(l, 50) >= 0);
	for (int v = 0; v < VECS; v++) {
		if (t.bells[v] != want)
			fprintf(stderr, "child %d: vector %d: %llu bells, want %llu\n", me, v,
				(unsigned long long)t.bells[v], (unsigned long long)want);
		CK(t.bells[v] == want);
		t.bells[v] = 0;
	}
}

/* Every other kid is joined, and nobody else (the server's readiness probe
 * may show up and leave first). */
static bool all_joined(struct ivl_link *l, const struct plan *p)
{
	for (int k = 0; k < p->kids; k++)
		if (k != me && !t.joined[id_of(l, k)])
			return false;
	return t.njoined == p->kids - 1;
}

static void kid_main(const struct plan *p)
{
	struct ivl_link *l = connect_kid(p);
	bool alive[MAX_KIDS];
	int n = p->kids, long_ms = 30000 + 300 * n;
	uint16_t ids[MAX_KIDS];

	for (int k = 0; k < n; k++)
		alive[k] = true;
	barrier(l, 0, (uint32_t)n, long_ms);
	UNTIL(l, all_joined(l, p), long_ms);
	CK(ivl_link_peers(l, ids, MAX_KIDS) == n - 1);
	for (int k = 0; k < n; k++) {
		char name[16];

		if (k == me)
			continue;
		CK(ivl_link_peer_vectors(l, (uint16_t)id_of(l, k)) == VECS);
		snprintf(name, sizeof(name), "kid%d", k);
		CK(strcmp(ivl_link_peer_name(l, (uint16_t)id_of(l, k)), p->raw ? "" : name) == 0);
	}
	barrier(l, 1, (uint32_t)n, long_ms);

	switch (p->what) {
	case MATRIX:
		ring_others(l, p, alive);
		barrier(l, 2, (uint32_t)n, long_ms);
		expect_bells(l, p, alive);
		barrier(l, 3, (uint32_t)n, long_ms);
		if (!p->leave)
			break;
		if (me == n - 1)
			break; /* leave */
		UNTIL(l, t.left[id_of(l, n - 1)], 20000);
		CK(ivl_link_peers(l, ids, MAX_KIDS) == n - 2);
		CK(ivl_link_ring(l, (uint16_t)id_of(l, n - 1), 0) == -ENOENT);
		barrier(l, 4, (uint32_t)n - 1, long_ms);
		break;
	case KILLED:
		if (me == n - 1) {
			/* The victim: tell the parent, wait for the kill. */
			CK(write(p->notify, "k", 1) == 1);
			sleep(60);
			_exit(1);
		}
		UNTIL(l, t.left[id_of(l, n - 1)], 20000);
		alive[n - 1] = false;
		CK(ivl_link_peers(l, ids, MAX_KIDS) == n - 2);
		/* The survivors still ring each other. */
		ring_others(l, p, alive);
		barrier(l, 2, (uint32_t)n - 1, long_ms);
		expect_bells(l, p, alive);
		barrier(l, 3, (uint32_t)n - 1, long_ms);
		break;
	case SERVER_TERM: {
		struct ivl_link_event ev;

		CK(write(p->notify, "t", 1) == 1);
		UNTIL(l, t.down, 20000);
		CK(t.down == 1);
		CK(ivl_link_process(l, &ev, 1) == -ENOTCONN);
		CK(ivl_link_ring(l, (uint16_t)id_of(l, (me + 1) % n), 0) == -ENOTCONN);
		break;
	}
	}
	ivl_link_free(l);
	_exit(0);
}

static pid_t spawn_kid(const struct plan *p, int idx)
{
	pid_t pid = fork();

	if (pid == 0) {
		me = idx;
		kid_main(p);
	}
	if (pid > 0 && nkids < MAX_KIDS)
		kid_pids[nkids++] = pid;
	return pid;
}

/* Teardown: kill whatever a failed assertion left behind. */
static int cleanup(void **state)
{
	(void)state;
	for (int i = 0; i < nkids; i++)
		if (kid_pids[i] > 0)
			tu_kill(kid_pids[i]);
	nkids = 0;
	if (server_pid > 0)
		tu_kill(server_pid);
	server_pid = -1;
	return 0;
}

static pid_t start_server(const char *sock, bool raw, const char *max_peers)
{
	const char *log = tu_path(tu_tmpdir(), "server.log");
	pid_t pid;

	if (raw)
		pid = tu_start_server(sock, log, "--memfd", "-l", "4M", "-n", "4", "--raw",
				      "--max-peers", max_peers, NULL);
	else
		pid = tu_start_server(sock, log, "--memfd", "-l", "4M", "-n", "4", "--max-peers",
				      max_peers, NULL);
	assert_true(pid > 0);
	server_pid = pid;
	return pid;
}

static void stop_server(pid_t server)
{
	int st;

	kill(server, SIGTERM);
	st = tu_wait(server, 10000);
	server_pid = -1;
	assert_true(st >= 0);
}

/* Read @n notification bytes from the kids (bounded). */
static void read_notes(int fd, int n)
{
	char c;

	for (int i = 0; i < n; i++) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		assert_int_equal(poll(&pf, 1, 60000), 1);
		assert_int_equal(read(fd, &c, 1), 1);
	}
}

static void reap_kids(pid_t *kids, int n, int skip)
{
	int failed = 0;

	for (int i = 0; i < n; i++) {
		int st;

		if (i == skip)
			continue;
		st = tu_wait(kids[i], 120000);
		for (int k = 0; k < nkids; k++)
			if (kid_pids[k] == kids[i])
				kid_pids[k] = -1; /* reaped */
		if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "kid %d: status %d\n", i, st);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void run_matrix(int kids, bool raw, bool leave, const char *max_peers)
{
	static int n;
	char name[32];
	struct plan p = {.what = MATRIX, .kids = kids, .raw = raw, .leave = leave, .notify = -1};
	pid_t server, pids[MAX_KIDS];

	snprintf(name, sizeof(name), "m%d.sock", n++);
	p.sock = tu_path(tu_tmpdir(), name);
	server = start_server(p.sock, raw, max_peers);
	for (int i = 0; i < kids; i++) {
		pids[i] = spawn_kid(&p, i);
		assert_true(pids[i] > 0);
	}
	reap_kids(pids, kids, -1);
	stop_server(server);
}

static void three_peers_every_pair(void **state)
{
	(void)state;
	run_matrix(3, false, true, "16");
}

static void raw_server(void **state)
{
	(void)state;
	run_matrix(3, true, true, "16");
}

static void hundred_peers(void **state)
{
	(void)state;
	run_matrix(100, false, false, "128");
}

static void killed_peer(void **state)
{
	struct plan p = {.what = KILLED, .kids = 3};
	int pfd[2];
	pid_t server, pids[3];

	(void)state;
	p.sock = tu_path(tu_tmpdir(), "killed.sock");
	server = start_server(p.sock, false, "16");
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	p.notify = pfd[1];
	for (int i = 0; i < 3; i++)
		assert_true((pids[i] = spawn_kid(&p, i)) > 0);
	close(pfd[1]);
	read_notes(pfd[0], 1);
	tu_kill(pids[2]);
	kid_pids[2] = -1;
	close(pfd[0]);
	reap_kids(pids, 3, 2);
	stop_server(server);
}

static void server_terminated(void **state)
{
	struct plan p = {.what = SERVER_TERM, .kids = 2};
	int pfd[2];
	pid_t server, pids[2];

	(void)state;
	p.sock = tu_path(tu_tmpdir(), "term.sock");
	server = start_server(p.sock, false, "16");
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	p.notify = pfd[1];
	for (int i = 0; i < 2; i++)
		assert_true((pids[i] = spawn_kid(&p, i)) > 0);
	close(pfd[1]);
	read_notes(pfd[0], 2);
	close(pfd[0]);
	stop_server(server);
	reap_kids(pids, 2, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(three_peers_every_pair, cleanup),
	    cmocka_unit_test_teardown(raw_server, cleanup),
	    cmocka_unit_test_teardown(killed_peer, cleanup),
	    cmocka_unit_test_teardown(server_terminated, cleanup),
	    cmocka_unit_test_teardown(hundred_peers, cleanup),
	};

	/* A dying server must not take the test with it. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
