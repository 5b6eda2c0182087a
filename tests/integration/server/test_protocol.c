/* SPDX-License-Identifier: MIT */
/*
 * ivlink-server from a raw client's point of view (docs/protocol.md §1, §2):
 * exact message order and values, fd counts, join and leave notifications,
 * the hello/welcome extension and the header's peer table.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "srvtest.h"
#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>

static pid_t start(const char *tag, char *vectors, char *const extra[])
{
	char *args[32];
	int n = 0;

	args[n++] = "-M";
	args[n++] = (char *)st_shm_name(tag);
	args[n++] = "-n";
	args[n++] = vectors;
	while (extra && *extra)
		args[n++] = *extra++;
	args[n] = NULL;
	char log[64];

	snprintf(log, sizeof(log), "%s.log", tag);
	return st_start(st_sock(tag), tu_path(tu_tmpdir(), log), 0, args);
}

/* Read a join notification: @id, @vectors times, each with an fd. */
static void expect_join(struct st_peer *p, int id, unsigned vectors)
{
	for (unsigned v = 0; v < vectors; v++)
		st_expect(p, id, true, false);
}

static void handshake_order(unsigned vectors)
{
	char nv[8];
	struct st_peer a, b, c, d;
	struct stat st;
	pid_t pid;
	int ids[3];

	snprintf(nv, sizeof(nv), "%u", vectors);
	pid = start(vectors == 1 ? "order1" : "order4", nv, NULL);

	st_connect(&a, st_sock(vectors == 1 ? "order1" : "order4"));
	ids[0] = st_handshake(&a, vectors, NULL, 0);
	/* A fresh server hands out IDs from 0, round-robin. */
	assert_int_equal(ids[0], 0);
	assert_int_equal(fstat(a.shm_fd, &st), 0);
	assert_true(st.st_size == 4 << 20);

	st_connect(&b, st_sock(vectors == 1 ? "order1" : "order4"));
	ids[1] = st_handshake(&b, vectors, ids, 1);
	assert_int_equal(ids[1], 1);
	expect_join(&a, ids[1], vectors);

	st_connect(&c, st_sock(vectors == 1 ? "order1" : "order4"));
	ids[2] = st_handshake(&c, vectors, ids, 2);
	assert_int_equal(ids[2], 2);
	expect_join(&a, ids[2], vectors);
	expect_join(&b, ids[2], vectors);

	/* Leave: the ID alone, no fd, to everyone left. */
	st_close(&b);
	st_expect(&a, ids[1], false, false);
	st_expect(&c, ids[1], false, false);

	/* The freed ID 1 is not reused at once: the next one is 3. */
	st_connect(&d, st_sock(vectors == 1 ? "order1" : "order4"));
	{
		int others[2] = {ids[0], ids[2]};
		assert_int_equal(st_handshake(&d, vectors, others, 2), 3);
	}
	expect_join(&a, 3, vectors);
	expect_join(&c, 3, vectors);
	st_expect_quiet(&a, 50);

	st_close(&a);
	st_expect(&c, ids[0], false, false);
	st_expect(&d, ids[0], false, false);
	st_close(&c);
	st_close(&d);
	st_stop(pid);
	assert_false(st_shm_exists(st_shm_name(vectors == 1 ? "order1" : "order4")));
}

static void handshake_1_vector(void **state)
{
	(void)state;
	handshake_order(1);
}

static void handshake_4_vectors(void **state)
{
	(void)state;
	handshake_order(4);
}

/* The fds are real eventfds, and A's fd for B's vector v is B's own
 * vector v: ringing one is seen on the other. */
static void eventfds_are_shared(void **state)
{
	struct st_peer a, b;
	int a_own[4], a_to_b[4], b_to_a[4], b_own[4];
	pid_t pid;
	unsigned v;

	(void)state;
	pid = start("evfd", "4", NULL);
	st_connect(&a, st_sock("evfd"));
	st_expect(&a, 0, false, false);
	st_expect(&a, 0, false, false);
	a.shm_fd = st_expect(&a, -1, true, true);
	for (v = 0; v < 4; v++)
		a_own[v] = st_expect(&a, 0, true, true);
	st_connect(&b, st_sock("evfd"));
	st_expect(&b, 0, false, false);
	st_expect(&b, 1, false, false);
	b.shm_fd = st_expect(&b, -1, true, true);
	for (v = 0; v < 4; v++)
		b_to_a[v] = st_expect(&b, 0, true, true);
	for (v = 0; v < 4; v++)
		b_own[v] = st_expect(&b, 1, true, true);
	for (v = 0; v < 4; v++)
		a_to_b[v] = st_expect(&a, 1, true, true);

	for (v = 0; v < 4; v++) {
		uint64_t cnt;

		assert_int_equal(ivl_eventfd_ring(a_to_b[v]), 0);
		assert_int_equal(ivl_eventfd_drain(b_own[v], &cnt), 1);
		assert_true(cnt == 1);
		/* Only that vector. */
		for (unsigned w = 0; w < 4; w++)
			assert_int_equal(ivl_eventfd_drain(b_own[w], NULL), 0);
		assert_int_equal(ivl_eventfd_ring(b_to_a[v]), 0);
		assert_int_equal(ivl_eventfd_drain(a_own[v], NULL), 1);
	}
	for (v = 0; v < 4; v++) {
		close(a_own[v]);
		close(a_to_b[v]);
		close(b_to_a[v]);
		close(b_own[v]);
	}
	st_close(&a);
	st_close(&b);
	st_stop(pid);
}

static void fill_hello(struct ivl_wire_hello *h, const char *name)
{
	memset(h, 0, sizeof(*h));
	h->magic = IVL_HELLO_MAGIC;
	h->version = IVL_HELLO_VERSION;
	h->size = sizeof(*h);
	h->features = IVL_FEAT_HELLO | IVL_FEAT_NAMES;
	memcpy(h->name, name, strnlen(name, IVL_NAME_LEN));
}

static void send_all(int sock, const void *buf, size_t len)
{
	assert_int_equal(send(sock, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Bounded wait for a peer table entry to reach @state. */
static void wait_state(struct ivl_shm_peer *e, uint32_t state)
{
	int64_t end = tu_now_ms() + ST_TIMEOUT;

	while (__atomic_load_n(&e->state, __ATOMIC_ACQUIRE) != state) {
		if (tu_now_ms() > end)
			fail_msg("peer entry state %u, expected %u", __atomic_load_n(&e->state, __ATOMIC_SEQ_CST), state);
		usleep(1000);
	}
}

static void hello_and_peer_table(void **state)
{
	struct st_peer a, b;
	struct ivl_wire_hello h;
	struct ivl_shm_header hdr;
	struct ivl_shm_peer *ea, *eb;
	struct stat st;
	void *base;
	int ids[1];
	uint32_t features = IVL_FEAT_HELLO | IVL_FEAT_NAMES;

	(void)state;
	pid_t pid = start("hello", "2", NULL);

	st_connect(&a, st_sock("hello"));
	ids[0] = st_handshake(&a, 2, NULL, 0);
	assert_int_equal(fstat(a.shm_fd, &st), 0);
	base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, a.shm_fd, 0);
	assert_true(base != MAP_FAILED);
	assert_int_equal(ivl_shm_validate(base, (uint64_t)st.st_size, &hdr), 0);
	assert_int_equal(hdr.vectors, 2);
	assert_int_equal(hdr.max_peers, 256);
	assert_true(hdr.features & IVL_FEAT_HELLO);
	assert_int_equal(hdr.server_pid, pid);

	ea = ivl_shm_peer(base, &hdr, (uint32_t)ids[0]);
	assert_non_null(ea);
	wait_state(ea, IVL_PEER_READY);
	assert_int_equal(__atomic_load_n(&ea->generation, __ATOMIC_SEQ_CST), 1);
	assert_int_equal(ea->pid, getpid());
	assert_int_equal(ea->uid, getuid());
	assert_int_equal(ea->vectors, 2);
	assert_int_equal(ea->name[0], 0);

	/* Hello: answered by WELCOME (vectors | features << 16). */
	fill_hello(&h, "alpha");
	send_all(a.sock, &h, sizeof(h));
	st_expect(&a, IVL_EXT_MSG(IVL_EXT_WELCOME, 2 | (features << 16)), false, false);
	assert_string_equal(ea->name, "alpha");

	/* A hello in two pieces, with a byte to sanitize. */
	st_connect(&b, st_sock("hello"));
	fill_hello(&h, "b\001ta");
	send_all(b.sock, &h, 10);
	assert_int_equal(st_handshake(&b, 2, ids, 1), 1);
	expect_join(&a, 1, 2);
	usleep(20000); /* let the server see the first piece on its own */
	send_all(b.sock, (char *)&h + 10, sizeof(h) - 10);
	st_expect(&b, IVL_EXT_MSG(IVL_EXT_WELCOME, 2 | (features << 16)), false, false);
	eb = ivl_shm_peer(base, &hdr, 1);
	wait_state(eb, IVL_PEER_READY);
	assert_string_equal(eb->name, "b?ta");
	assert_int_equal(__atomic_load_n(&eb->generation, __ATOMIC_SEQ_CST), 1);

	/* Leave: ABSENT in the table, announced without fd. */
	st_close(&b);
	st_expect(&a, 1, false, false);
	wait_state(eb, IVL_PEER_ABSENT);
	assert_int_equal(__atomic_load_n(&ea->state, __ATOMIC_SEQ_CST), IVL_PEER_READY);

	/* Round-robin: ID 2 next, its first generation. */
	st_connect(&b, st_sock("hello"));
	assert_int_equal(st_handshake(&b, 2, ids, 1), 2);
	wait_state(ivl_shm_peer(base, &hdr, 2), IVL_PEER_READY);
	assert_int_equal(__atomic_load_n(&ivl_shm_peer(base, &hdr, 2)->generation, __ATOMIC_SEQ_CST), 1);
	expect_join(&a, 2, 2);

	st_close(&b);
	st_close(&a);
	st_stop(pid);
	/* Our mapping outlives the object: the header says CLOSED. */
	assert_int_equal(ivl_shm_validate(base, (uint64_t)st.st_size, NULL), -ESHUTDOWN);
	munmap(base, (size_t)st.st_size);
}

/* Drain until end of stream (bounded); fds are closed. */
static void expect_eof(struct st_peer *p)
{
	int64_t end = tu_now_ms() + ST_TIMEOUT;

	for (;;) {
		struct ivl_msg m;
		int ret = st_recv(p, &m, 100);

		if (ret == 1) {
			if (m.fd >= 0)
				close(m.fd);
		} else if (ret == -ECONNRESET) {
			return;
		} else if (ret != 0) {
			fail_msg("error %d while waiting for end of stream", ret);
		}
		if (tu_now_ms() > end)
			fail_msg("the server did not close the connection");
	}
}

/* What a misbehaving peer may write: each one drops that peer only. */
static void bad_writer(const char *tag, void (*misbehave)(struct st_peer *))
{
	struct st_peer a, b, g, c;
	int ids[3];
	pid_t pid = start(tag, "1", NULL);

	st_connect(&a, st_sock(tag));
	ids[0] = st_handshake(&a, 1, NULL, 0);
	st_connect(&b, st_sock(tag));
	ids[1] = st_handshake(&b, 1, ids, 1);
	expect_join(&a, ids[1], 1);
	st_connect(&g, st_sock(tag));
	ids[2] = st_handshake(&g, 1, ids, 2);
	expect_join(&a, ids[2], 1);
	expect_join(&b, ids[2], 1);

	misbehave(&g);
	expect_eof(&g);
	st_expect(&a, ids[2], false, false);
	st_expect(&b, ids[2], false, false);

	/* The others still work. */
	st_connect(&c, st_sock(tag));
	st_handshake(&c, 1, ids, 2);
	expect_join(&a, c.id, 1);
	expect_join(&b, c.id, 1);
	st_close(&a);
	st_close(&b);
	st_close(&c);
	st_close(&g);
	st_stop(pid);
}

static void write_garbage(struct st_peer *g)
{
	send_all(g->sock, "garbage!", 8);
}

static void write_two_hellos(struct st_peer *g)
{
	struct ivl_wire_hello h;

	fill_hello(&h, "twice");
	send_all(g->sock, &h, sizeof(h));
	st_expect(g, IVL_EXT_MSG(IVL_EXT_WELCOME, 1 | ((IVL_FEAT_HELLO | IVL_FEAT_NAMES) << 16)),
		  false, false);
	send_all(g->sock, &h, sizeof(h));
}

static void write_bad_version(struct st_peer *g)
{
	struct ivl_wire_hello h;

	fill_hello(&h, "future");
	h.version = 99;
	send_all(g->sock, &h, sizeof(h));
}

static void write_fd(struct st_peer *g)
{
	assert_int_equal(ivl_msg_send(g->sock, 0, 1), 0);
}

static void garbage_drops_peer(void **state)
{
	(void)state;
	bad_writer("garbage", write_garbage);
}

static void second_hello_drops_peer(void **state)
{
	(void)state;
	bad_writer("hello2", write_two_hellos);
}

static void bad_hello_version_drops_peer(void **state)
{
	(void)state;
	bad_writer("hellov", write_bad_version);
}

static void sent_fd_drops_peer(void **state)
{
	(void)state;
	bad_writer("sentfd", write_fd);
}

/* Read a handshake without knowing who is there; returns the ID and stores
 * the other IDs seen (in order) into @others. */
static int handshake_any(struct st_peer *p, unsigned vectors, int *others, size_t *n_others)
{
	struct ivl_msg m;
	unsigned own = 0;

	*n_others = 0;
	st_expect(p, 0, false, false);
	assert_int_equal(st_recv(p, &m, ST_TIMEOUT), 1);
	p->id = (int)m.value;
	p->shm_fd = st_expect(p, -1, true, true);
	while (own < vectors) {
		assert_int_equal(st_recv(p, &m, ST_TIMEOUT), 1);
		assert_true(m.fd >= 0);
		close(m.fd);
		if (m.value == p->id) {
			own++;
			continue;
		}
		assert_int_equal(own, 0);
		if (!*n_others || others[*n_others - 1] != m.value)
			others[(*n_others)++] = (int)m.value;
	}
	return p->id;
}

/* Non-blocking drain; returns true if a leave of @who was seen. */
static bool drain(struct st_peer *p, int who)
{
	struct ivl_msg m;
	bool seen = false;

	while (st_recv(p, &m, 0) == 1) {
		if (m.fd >= 0)
			close(m.fd);
		else if (m.value == who)
			seen = true;
	}
	return seen;
}

/* A peer that never reads must not hold up anybody: the others get their
 * whole handshakes, in which the silent peer is still listed. */
static void silent_peer_does_not_block(void **state)
{
	enum { N = 20 };
	static struct st_peer r[N];
	struct st_peer silent;
	int others[N + 1];
	size_t n;

	(void)state;
	pid_t pid = start("silent", "64", NULL);
	st_connect(&silent, st_sock("silent"));
	for (int k = 0; k < N; k++) {
		st_connect(&r[k], st_sock("silent"));
		handshake_any(&r[k], 64, others, &n);
		assert_int_equal(n, (size_t)k + 1);
		assert_int_equal(others[0], 0); /* the silent one */
		for (int j = 0; j < k; j++) {
			assert_int_equal(others[j + 1], r[j].id);
			assert_false(drain(&r[j], 0));
		}
	}
	/* When it goes, everyone hears of it. */
	st_close(&silent);
	for (int k = 0; k < N; k++) {
		int64_t end = tu_now_ms() + ST_TIMEOUT;
		while (!drain(&r[k], 0))
			if (tu_now_ms() > end)
				fail_msg("peer %d not told of the silent peer's leave", r[k].id);
	}
	for (int k = 0; k < N; k++)
		st_close(&r[k]);
	st_stop(pid);
}

/* With a small --max-queue, the silent peer is dropped and its leave is
 * announced; the readers are not affected. */
static void silent_peer_dropped(void **state)
{
	enum { N = 40 };
	static struct st_peer r[N];
	char *extra[] = {"--max-queue", "64", NULL};
	struct st_peer silent;
	int others[N + 1];
	size_t n;
	int k;
	bool seen = false;

	(void)state;
	pid_t pid = start("dropq", "64", extra);
	st_connect(&silent, st_sock("dropq"));
	for (k = 0; k < N && !seen; k++) {
		st_connect(&r[k], st_sock("dropq"));
		handshake_any(&r[k], 64, others, &n);
		for (int j = 0; j < k; j++)
			if (drain(&r[j], 0) && j == 0)
				seen = true;
	}
	for (int64_t end = tu_now_ms() + ST_TIMEOUT; !seen && tu_now_ms() < end; usleep(1000))
		seen = drain(&r[0], 0);
	assert_true(seen);
	expect_eof(&silent);
	/* The readers are all still there: one more joins and everyone
	 * connected sees it. */
	{
		struct st_peer z;
		st_connect(&z, st_sock("dropq"));
		handshake_any(&z, 64, others, &n);
		assert_int_equal(n, (size_t)k);
		st_close(&z);
	}
	for (int j = 0; j < k; j++)
		st_close(&r[j]);
	st_close(&silent);
	st_stop(pid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(handshake_1_vector),
	    cmocka_unit_test(handshake_4_vectors),
	    cmocka_unit_test(eventfds_are_shared),
	    cmocka_unit_test(hello_and_peer_table),
	    cmocka_unit_test(garbage_drops_peer),
	    cmocka_unit_test(second_hello_drops_peer),
	    cmocka_unit_test(bad_hello_version_drops_peer),
	    cmocka_unit_test(sent_fd_drops_peer),
	    cmocka_unit_test(silent_peer_does_not_block),
	    cmocka_unit_test(silent_peer_dropped),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
