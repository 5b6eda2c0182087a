/* SPDX-License-Identifier: MIT */
/*
 * A virtqueue between two processes over a real ivlink link: ivlink-server
 * owns the region, the parent is the driver, a forked child the device, and
 * doorbells are the notifications (vector 0: kick, vector 1: used).  Both
 * sides use EVENT_IDX and indirect descriptors; every reply is checked.
 * Then the same with IN_ORDER and the driver's buffers a pool of fixed
 * buffers (ivl_virtq_pool_*): the device checks every message's data and
 * order.  Every wait is bounded; the child reports through its exit status.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include <ivlink/link.h>
#include <ivlink/mmio.h>
#include <ivlink/msi.h>
#include <ivlink/virtq.h>

#define NUM 64
#define MSGS 3000
#define SLOTS 48
#define SLOT_SZ 512
#define BUF_OFF 65536
#define STOP 0xffffffffu
#define V_KICK 0
#define V_USED 1

#define CK(c)                                                                                      \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "device: %s:%d: %s\n", __FILE__, __LINE__, #c);            \
			_exit(1);                                                                  \
		}                                                                                  \
	} while (0)

static pid_t server_pid = -1, child_pid = -1;
/* The second test: IN_ORDER, and the driver's buffers a pool. */
static bool pool_mode;

static const struct ivl_virtq_opts *ring_opts(enum ivl_virtq_role role)
{
	static struct ivl_virtq_opts o;
	memset(&o, 0, sizeof(o));
	o.role = role;
	o.num = NUM;
	o.features = IVL_VIRTQ_F_EVENT_IDX | IVL_VIRTQ_F_INDIRECT_DESC |
		     (pool_mode ? IVL_VIRTQ_F_IN_ORDER : 0);
	o.indirect_max = 4;
	o.init = role == IVL_VIRTQ_DRIVER;
	ivl_virtq_layout_default(NUM, 4, 0, &o.layout);
	return &o;
}

static struct ivl_link *connect_to(const char *sock)
{
	struct ivl_link_host_opts o = {.socket_path = sock, .timeout_ms = 10000};
	struct ivl_link *l = NULL;
	if (ivl_link_host_new(&l, &o) < 0)
		return NULL;
	return l;
}

/* Doorbells seen by any wait, so none is lost to a wait for something else. */
static bool rung[4];

static void pump(struct ivl_link *l, int ms)
{
	struct ivl_link_event ev[16];
	int n = ivl_link_wait(l, ev, 16, ms);
	for (int i = 0; i < n; i++)
		if (ev[i].type == IVL_LINK_DOORBELL && ev[i].vector < 4)
			rung[ev[i].vector] = true;
}

/* Wait (bounded) until another peer is known; returns its ID or -1. */
static int other_peer(struct ivl_link *l)
{
	int64_t end = tu_now_ms() + 10000;
	uint16_t id;
	while (tu_now_ms() < end) {
		if (ivl_link_peers(l, &id, 1) >= 1)
			return id;
		pump(l, 100);
	}
	return -1;
}

/* Block (bounded) for a doorbell on @vector; 0 or -ETIMEDOUT. */
static int wait_bell(struct ivl_link *l, uint16_t vector, int ms)
{
	int64_t end = tu_now_ms() + ms;
	while (!rung[vector] && tu_now_ms() < end)
		pump(l, 100);
	if (!rung[vector])
		return -ETIMEDOUT;
	rung[vector] = false;
	return 0;
}

static uint32_t sum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = s * 31 + p[i];
	return s;
}

static void device_main(const char *sock)
{
	struct ivl_link *l = connect_to(sock);
	CK(l);
	int drv = other_peer(l);
	CK(drv >= 0);
	uint64_t wsz;
	char *win = ivl_link_app_area(l, &wsz);
	/* The first kick says the driver initialized the ring. */
	CK(wait_bell(l, V_KICK, 10000) == 0);
	struct ivl_virtq *q;
	CK(ivl_virtq_new(&q, win, wsz, ring_opts(IVL_VIRTQ_DEVICE)) == 0);
	uint32_t next_seq = 0;
	for (;;) {
		ivl_virtq_disable_notify(q);
		int r;
		struct iovec iov[8];
		struct ivl_virtq_elem e = {.iov = iov, .iov_max = 8};
		bool stop = false;
		while (pool_mode && (r = ivl_virtq_pop(q, &e)) == 1) {
			/* Pool buffer e.head, in order: seq, then seq % 300
			 * bytes of pattern. */
			CK(e.out_num == 1 && e.in_num == 0 && iov[0].iov_len == SLOT_SZ);
			CK((char *)iov[0].iov_base == win + BUF_OFF + (size_t)e.head * SLOT_SZ);
			uint32_t seq;
			memcpy(&seq, iov[0].iov_base, 4);
			CK(seq == STOP || seq == next_seq);
			for (size_t i = 0; seq != STOP && i < seq % 300; i++)
				CK(((char *)iov[0].iov_base)[8 + i] == (char)(seq + i));
			next_seq++;
			CK(ivl_virtq_push(q, e.head, 0) == 0);
			stop |= seq == STOP;
		}
		while (!pool_mode && (r = ivl_virtq_pop(q, &e)) == 1) {
			CK(e.out_num == 2 && e.in_num == 1 && iov[0].iov_len == 4);
			CK(iov[2].iov_len == 8);
			uint32_t seq, reply[2];
			memcpy(&seq, iov[0].iov_base, 4);
			reply[0] = seq;
			reply[1] = sum(iov[1].iov_base, iov[1].iov_len);
			memcpy(iov[2].iov_base, reply, 8);
			CK(ivl_virtq_push(q, e.head, 8) == 0);
			stop |= seq == STOP;
		}
		CK(r == 0);
		CK(ivl_virtq_flush(q) == 0);
		CK(ivl_virtq_notify_link(q, l, (uint16_t)drv, V_USED) >= 0);
		if (stop)
			break;
		/* Re-arm; sleep only if nothing arrived meanwhile. */
		if (ivl_virtq_enable_notify(q) == 0)
			CK(wait_bell(l, V_KICK, 10000) == 0);
	}
	ivl_virtq_free(q);
	ivl_link_free(l);
	_exit(0);
}

/* The server, the device child, and the parent's link and driver queue. */
struct parent {
	struct ivl_link *l;
	int dev;
	char *win;
	uint64_t wsz;
	struct ivl_virtq *q;
};

static void start(struct parent *p, const char *sock_name)
{
	const char *dir = tu_tmpdir();
	const char *sock = tu_path(dir, sock_name);
	server_pid = tu_start_server(sock, tu_path(dir, "server.log"), "--memfd", "-l", "4M", "-n",
				     "4", NULL);
	assert_true(server_pid > 0);
	child_pid = fork();
	assert_true(child_pid >= 0);
	if (child_pid == 0)
		device_main(sock);
	p->l = connect_to(sock);
	assert_non_null(p->l);
	p->dev = other_peer(p->l);
	assert_true(p->dev >= 0);
	p->win = ivl_link_app_area(p->l, &p->wsz);
	assert_true(p->wsz >= BUF_OFF + NUM * SLOT_SZ);
	assert_int_equal(ivl_virtq_new(&p->q, p->win, p->wsz, ring_opts(IVL_VIRTQ_DRIVER)), 0);
}

/* The child's verdict, then the parent's side freed. */
static void finish(struct parent *p)
{
	int st = tu_wait(child_pid, 10000);
	child_pid = -1;
	assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ivl_virtq_free(p->q);
	ivl_link_free(p->l);
}

static void test_two_processes(void **state)
{
	struct parent pp;
	start(&pp, "vq.sock");
	struct ivl_link *l = pp.l;
	int dev = pp.dev;
	char *win = pp.win;
	struct ivl_virtq *q = pp.q;

	int free_slots[SLOTS], nfree = SLOTS;
	uint32_t expect[SLOTS];
	for (int i = 0; i < SLOTS; i++)
		free_slots[i] = i;
	uint32_t sent = 0, done = 0, kicks = 0;
	bool stop_sent = false;
	while (!stop_sent || done < sent) {
		/* Fill: seq in one piece, a payload of seq % 300 bytes in a
		 * second, an 8-byte reply in the third. */
		while (!stop_sent && nfree > 0) {
			int s = free_slots[nfree - 1];
			char *b = win + BUF_OFF + (size_t)s * SLOT_SZ;
			uint32_t seq = sent == MSGS ? STOP : sent;
			size_t plen = seq == STOP ? 1 : seq % 300;
			memcpy(b, &seq, 4);
			for (size_t i = 0; i < plen; i++)
				b[8 + i] = (char)(seq + i);
			expect[s] = sum((uint8_t *)b + 8, plen);
			struct iovec out[2] = {{b, 4}, {b + 8, plen}};
			struct iovec in = {b + 8 + 320, 8};
			int r = ivl_virtq_add(q, out, 2, &in, 1, (void *)(uintptr_t)(s + 1));
			if (r == -ENOSPC)
				break;
			assert_true(r >= 0);
			nfree--;
			sent++;
			stop_sent = seq == STOP;
		}
		int r = ivl_virtq_notify_link(q, l, (uint16_t)dev, V_KICK);
		assert_true(r >= 0);
		kicks += r;
		/* Drain, then sleep on the used doorbell if nothing is back. */
		void *tok;
		uint32_t len;
		int got = 0;
		while ((r = ivl_virtq_get_used(q, &tok, &len)) == 1) {
			int s = (int)(uintptr_t)tok - 1;
			assert_true(s >= 0 && s < SLOTS);
			char *b = win + BUF_OFF + (size_t)s * SLOT_SZ;
			uint32_t seq, reply[2];
			memcpy(&seq, b, 4);
			memcpy(reply, b + 8 + 320, 8);
			assert_int_equal(len, 8);
			assert_int_equal(reply[0], seq);
			assert_int_equal(reply[1], expect[s]);
			free_slots[nfree++] = s;
			done++;
			got++;
		}
		assert_int_equal(r, 0);
		if (!got && ivl_virtq_enable_notify(q) == 0)
			assert_int_equal(wait_bell(l, V_USED, 10000), 0);
	}
	assert_int_equal(done, MSGS + 1);
	/* EVENT_IDX must have suppressed at least some kicks. */
	assert_true(kicks >= 1 && kicks <= done);
	finish(&pp);
}

/* The driver's buffers are a pool: filled in place, added and taken back
 * by count, in order; the device checks each message. */
static void test_two_processes_pool(void **state)
{
	struct parent pp;
	pool_mode = true;
	start(&pp, "vqp.sock");
	struct ivl_link *l = pp.l;
	int dev = pp.dev;
	char *win = pp.win;
	struct ivl_virtq *q = pp.q;
	assert_int_equal(ivl_virtq_pool_set(q, BUF_OFF, SLOT_SZ), 0);

	uint32_t sent = 0, done = 0;
	unsigned back_next = 0;
	bool stop_sent = false;
	while (!stop_sent || done < sent) {
		unsigned next;
		int room = ivl_virtq_pool_room(q, &next);
		assert_true(room >= 0 && room <= NUM);
		/* Fill up to 7 at a time in place, then add them by count. */
		int k = 0;
		for (; !stop_sent && k < room && k < 7; k++) {
			char *b = win + BUF_OFF + (size_t)((next + (unsigned)k) % NUM) * SLOT_SZ;
			uint32_t seq = sent == MSGS ? STOP : sent;
			memcpy(b, &seq, 4);
			for (size_t i = 0; seq != STOP && i < seq % 300; i++)
				b[8 + i] = (char)(seq + i);
			sent++;
			stop_sent = seq == STOP;
		}
		if (k)
			assert_int_equal(ivl_virtq_pool_add(q, NULL, (unsigned)k, false), k);
		assert_true(ivl_virtq_notify_link(q, l, (uint16_t)dev, V_KICK) >= 0);
		unsigned first;
		uint32_t lens[NUM];
		int got = ivl_virtq_pool_get_used(q, &first, lens, NUM);
		assert_true(got >= 0);
		if (got) {
			assert_int_equal(first, back_next);
			for (int i = 0; i < got; i++)
				assert_int_equal(lens[i], 0);
			back_next = (back_next + (unsigned)got) % NUM;
			done += (unsigned)got;
		} else if (!k && ivl_virtq_enable_notify(q) == 0) {
			assert_int_equal(wait_bell(l, V_USED, 10000), 0);
		}
	}
	assert_int_equal(done, MSGS + 1);
	finish(&pp);
	pool_mode = false;
}

static int teardown(void **state)
{
	if (child_pid > 0)
		tu_kill(child_pid);
	if (server_pid > 0)
		tu_kill(server_pid);
	child_pid = server_pid = -1;
	return 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_two_processes, teardown),
	    cmocka_unit_test_teardown(test_two_processes_pool, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
