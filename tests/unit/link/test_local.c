/* SPDX-License-Identifier: MIT */
/* The peer API over the local backend: joins, leaves, doorbells, waiting,
 * the header's peer table, and ringing from many threads. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>
#include <ivlink/hub.h>
#include <ivlink/link.h>

#define REGION (1u << 20)
#define VECS 4
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Doorbell counts per vector, and the joins and leaves seen. */
struct seen {
	uint64_t bells[IVL_MAX_VECTORS];
	uint64_t total;
	int joins[16], njoins;
	int leaves[16], nleaves;
	int downs;
};

/* Take every event available now (bounded). */
static void drain(struct ivl_link *l, struct seen *s)
{
	struct ivl_link_event ev[8];
	int n;

	memset(s, 0, sizeof(*s));
	for (int round = 0; round < 1000; round++) {
		n = ivl_link_process(l, ev, ARRAY_SIZE(ev));
		if (n == -ENOTCONN)
			return;
		assert_true(n >= 0);
		if (n == 0)
			return;
		for (int i = 0; i < n; i++) {
			switch (ev[i].type) {
			case IVL_LINK_JOIN:
				if (s->njoins < 16)
					s->joins[s->njoins] = ev[i].peer;
				s->njoins++;
				break;
			case IVL_LINK_LEAVE:
				if (s->nleaves < 16)
					s->leaves[s->nleaves] = ev[i].peer;
				s->nleaves++;
				break;
			case IVL_LINK_DOORBELL:
				assert_true(ev[i].vector < IVL_MAX_VECTORS);
				assert_true(ev[i].count >= 1);
				s->bells[ev[i].vector] += ev[i].count;
				s->total += ev[i].count;
				break;
			case IVL_LINK_DOWN:
				s->downs++;
				break;
			}
		}
	}
	fail_msg("events never stopped");
}

static int has(const int *a, int n, int v)
{
	for (int i = 0; i < n && i < 16; i++)
		if (a[i] == v)
			return 1;
	return 0;
}

struct three {
	struct ivl_hub *hub;
	struct ivl_link *l[3];
};

static void three_up(struct three *t)
{
	static const char *names[3] = {"alpha", "beta", "gamma"};

	assert_int_equal(ivl_hub_new(&t->hub, REGION, 8, VECS), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ivl_hub_join(t->hub, names[i], &t->l[i]), 0);
		assert_int_equal(ivl_link_id(t->l[i]), i);
		assert_int_equal(ivl_link_vectors(t->l[i]), VECS);
	}
}

static void three_down(struct three *t)
{
	for (int i = 0; i < 3; i++)
		ivl_link_free(t->l[i]);
	ivl_hub_free(t->hub);
}

static void joins_seen_by_all(void **state)
{
	struct three t;
	struct seen s;
	uint16_t ids[4];

	(void)state;
	three_up(&t);
	for (int i = 0; i < 3; i++) {
		drain(t.l[i], &s);
		assert_int_equal(s.njoins, 2);
		for (int j = 0; j < 3; j++)
			if (j != i)
				assert_true(has(s.joins, s.njoins, j));
		assert_int_equal(s.total, 0);
		assert_int_equal(ivl_link_peers(t.l[i], ids, 4), 2);
		assert_int_equal(ivl_link_peers(t.l[i], NULL, 0), 2);
		assert_true(ids[0] < ids[1]);
		assert_int_not_equal(ids[0], i);
		assert_int_not_equal(ids[1], i);
	}
	assert_string_equal(ivl_link_peer_name(t.l[2], 0), "alpha");
	assert_string_equal(ivl_link_peer_name(t.l[0], 1), "beta");
	assert_string_equal(ivl_link_peer_name(t.l[0], 2), "gamma");
	assert_string_equal(ivl_link_peer_name(t.l[0], 7), "");
	assert_int_equal(ivl_link_peer_vectors(t.l[0], 1), VECS);
	assert_int_equal(ivl_link_peer_vectors(t.l[0], 7), 0);
	three_down(&t);
}

static void ring_every_pair(void **state)
{
	struct three t;
	struct seen s;

	(void)state;
	three_up(&t);
	for (int i = 0; i < 3; i++)
		drain(t.l[i], &s);
	for (int from = 0; from < 3; from++)
		for (int to = 0; to < 3; to++)
			for (int v = 0; v < VECS; v++) {
				/* Twice: counts add up in the eventfd. */
				assert_int_equal(
				    ivl_link_ring(t.l[from], (uint16_t)to, (uint16_t)v), 0);
				assert_int_equal(
				    ivl_link_ring(t.l[from], (uint16_t)to, (uint16_t)v), 0);
				for (int k = 0; k < 3; k++) {
					drain(t.l[k], &s);
					assert_int_equal(s.njoins + s.nleaves + s.downs, 0);
					if (k != to) {
						assert_int_equal(s.total, 0);
						continue;
					}
					assert_int_equal(s.total, 2);
					assert_int_equal(s.bells[v], 2);
				}
			}
	three_down(&t);
}

static void broadcast_and_self(void **state)
{
	struct three t;
	struct seen s;

	(void)state;
	three_up(&t);
	for (int i = 0; i < 3; i++)
		drain(t.l[i], &s);
	assert_int_equal(ivl_link_broadcast(t.l[0], 2), 2);
	drain(t.l[0], &s);
	assert_int_equal(s.total, 0);
	for (int i = 1; i < 3; i++) {
		drain(t.l[i], &s);
		assert_int_equal(s.total, 1);
		assert_int_equal(s.bells[2], 1);
	}
	assert_int_equal(ivl_link_broadcast(t.l[0], VECS), -ERANGE);
	/* A self-ring is a doorbell like any other. */
	assert_int_equal(ivl_link_ring(t.l[1], 1, 3), 0);
	drain(t.l[1], &s);
	assert_int_equal(s.total, 1);
	assert_int_equal(s.bells[3], 1);
	three_down(&t);
}

static void leave_and_reuse(void **state)
{
	struct three t;
	struct seen s;
	struct ivl_link *again, *next;
	const struct ivl_shm_header *h;
	struct ivl_shm_header copy;
	struct ivl_shm_peer *e;
	uint16_t ids[4];

	(void)state;
	three_up(&t);
	for (int i = 0; i < 3; i++)
		drain(t.l[i], &s);
	h = ivl_link_header(t.l[0]);
	assert_non_null(h);
	assert_int_equal(ivl_shm_validate(ivl_link_region(t.l[0], NULL), REGION, &copy), 0);
	assert_int_equal(memcmp(&copy, h, offsetof(struct ivl_shm_header, state)), 0);
	e = ivl_shm_peer(ivl_link_region(t.l[0], NULL), h, 1);
	assert_int_equal(__atomic_load_n(&e->state, __ATOMIC_SEQ_CST), IVL_PEER_READY);
	assert_int_equal(__atomic_load_n(&e->generation, __ATOMIC_SEQ_CST), 1);
	assert_int_equal(e->pid, getpid());

	ivl_link_free(t.l[1]);
	t.l[1] = NULL;
	assert_int_equal(__atomic_load_n(&e->state, __ATOMIC_SEQ_CST), IVL_PEER_ABSENT);
	for (int i = 0; i < 3; i += 2) {
		drain(t.l[i], &s);
		assert_int_equal(s.nleaves, 1);
		assert_int_equal(s.leaves[0], 1);
		assert_int_equal(s.njoins, 0);
		assert_int_equal(ivl_link_peers(t.l[i], ids, 4), 1);
		assert_int_equal(ids[0], i == 0 ? 2 : 0);
	}
	assert_int_equal(ivl_link_ring(t.l[0], 1, 0), -ENOENT);
	assert_int_equal(ivl_link_broadcast(t.l[0], 0), 1);

	/* The lowest free ID comes back, with a new generation. */
	assert_int_equal(ivl_hub_join(t.hub, "delta", &again), 0);
	assert_int_equal(ivl_link_id(again), 1);
	assert_int_equal(__atomic_load_n(&e->generation, __ATOMIC_SEQ_CST), 2);
	assert_string_equal(ivl_link_peer_name(t.l[0], 1), "delta");
	assert_int_equal(ivl_hub_join(t.hub, NULL, &next), 0);
	assert_int_equal(ivl_link_id(next), 3);
	drain(t.l[0], &s);
	assert_int_equal(s.njoins, 2);
	assert_true(has(s.joins, 2, 1) && has(s.joins, 2, 3));
	assert_string_equal(ivl_link_peer_name(t.l[0], 3), "");
	ivl_link_free(next);
	t.l[1] = again;
	three_down(&t);
}

static void hub_full_and_errors(void **state)
{
	struct ivl_hub *hub;
	struct ivl_link *a, *b, *c = (void *)1;

	(void)state;
	assert_int_equal(ivl_hub_new(&hub, REGION, 2, 2), 0);
	assert_int_equal(ivl_hub_join(hub, "a", &a), 0);
	assert_int_equal(ivl_hub_join(hub, "b", &b), 0);
	assert_int_equal(ivl_hub_join(hub, "c", &c), -ENOSPC);
	assert_null(c);
	assert_int_equal(ivl_link_ring(a, 2, 0), -ENOENT);
	assert_int_equal(ivl_link_ring(a, 65535, 0), -ENOENT);
	assert_int_equal(ivl_link_ring(a, 1, 2), -ERANGE);
	assert_int_equal(ivl_link_ring(a, 1, 64), -ERANGE);
	assert_int_equal(ivl_link_ring(a, 1, 1), 0);
	assert_int_equal(ivl_link_ring(NULL, 1, 1), -EINVAL);
	assert_int_equal(ivl_link_process(a, NULL, 4), -EINVAL);
	ivl_link_free(b);
	assert_int_equal(ivl_hub_join(hub, "c", &c), 0);
	assert_int_equal(ivl_link_id(c), 1);
	ivl_link_free(c);
	ivl_link_free(a);
	ivl_hub_free(hub);

	hub = (void *)1;
	assert_int_equal(ivl_hub_new(&hub, 3 << 20, 4, 1), -EINVAL);
	assert_null(hub);
	assert_int_equal(ivl_hub_new(&hub, REGION, 4, 0), -EINVAL);
	assert_int_equal(ivl_hub_new(&hub, REGION, 4, 65), -EINVAL);
	assert_int_equal(ivl_hub_new(&hub, REGION, 0, 1), -EINVAL);
	/* The header would leave no application page. */
	assert_int_equal(ivl_hub_new(&hub, 8192, 64, 1), -ENOSPC);
	ivl_hub_free(NULL);
	ivl_link_free(NULL);
}

static void wait_and_fd(void **state)
{
	struct ivl_hub *hub;
	struct ivl_link *a, *b;
	struct ivl_link_event ev[4];
	struct pollfd p;

	(void)state;
	assert_int_equal(ivl_hub_new(&hub, REGION, 4, 2), 0);
	assert_int_equal(ivl_hub_join(hub, "a", &a), 0);
	/* Nothing happened to a: the wait times out. */
	assert_int_equal(ivl_link_wait(a, ev, 4, 20), 0);
	assert_int_equal(ivl_link_wait(a, ev, 4, 0), 0);
	p = (struct pollfd){.fd = ivl_link_get_fd(a), .events = POLLIN};
	assert_int_equal(poll(&p, 1, 0), 0);

	assert_int_equal(ivl_hub_join(hub, "b", &b), 0);
	/* A queued event makes the fd readable, as a doorbell does. */
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(ivl_link_wait(a, ev, 1, 5000), 1);
	assert_int_equal(ev[0].type, IVL_LINK_JOIN);
	assert_int_equal(ev[0].peer, 1);
	assert_int_equal(poll(&p, 1, 0), 0);

	assert_int_equal(ivl_link_ring(b, 0, 1), 0);
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(ivl_link_wait(a, ev, 4, -1), 1);
	assert_int_equal(ev[0].type, IVL_LINK_DOORBELL);
	assert_int_equal(ev[0].vector, 1);
	assert_int_equal(ev[0].count, 1);
	assert_int_equal(poll(&p, 1, 0), 0);
	assert_int_equal(ivl_link_process(a, ev, 0), 0);

	ivl_link_free(b);
	ivl_link_free(a);
	ivl_hub_free(hub);
}

static void on_usr1(int sig)
{
	(void)sig;
}

static void *poke_later(void *arg)
{
	usleep(50000);
	pthread_kill(*(pthread_t *)arg, SIGUSR1);
	return NULL;
}

static void wait_interrupted(void **state)
{
	struct ivl_hub *hub;
	struct ivl_link *a;
	struct ivl_link_event ev[4];
	struct sigaction sa = {.sa_handler = on_usr1}, old;
	pthread_t self = pthread_self(), th;

	(void)state;
	assert_int_equal(ivl_hub_new(&hub, REGION, 2, 1), 0);
	assert_int_equal(ivl_hub_join(hub, "a", &a), 0);
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	assert_int_equal(pthread_create(&th, NULL, poke_later, &self), 0);
	/* The signal ends the wait long before its time-out. */
	assert_int_equal(ivl_link_wait(a, ev, 4, 20000), -EINTR);
	pthread_join(th, NULL);
	sigaction(SIGUSR1, &old, NULL);
	ivl_link_free(a);
	ivl_hub_free(hub);
}

static void app_area(void **state)
{
	struct ivl_hub *hub;
	struct ivl_link *a, *b;
	uint64_t rsize, asize;
	char *base, *app, *app_b;
	const struct ivl_shm_header *h;

	(void)state;
	assert_int_equal(ivl_hub_new(&hub, REGION, 100, 3), 0);
	assert_int_equal(ivl_hub_join(hub, "a", &a), 0);
	assert_int_equal(ivl_hub_join(hub, "b", &b), 0);
	base = ivl_link_region(a, &rsize);
	app = ivl_link_app_area(a, &asize);
	h = ivl_link_header(a);
	assert_non_null(h);
	assert_true(h->magic == IVL_SHM_MAGIC);
	assert_true(rsize == REGION);
	assert_true(h->header_size == ivl_shm_header_size(100));
	assert_true(app - base == (ptrdiff_t)h->header_size);
	assert_true(asize == REGION - h->header_size);
	assert_int_equal(h->vectors, 3);
	assert_int_equal(h->max_peers, 100);
	/* Both links see the same memory. */
	app_b = ivl_link_app_area(b, NULL);
	strcpy(app, "hello across links");
	assert_string_equal(app_b, "hello across links");
	ivl_link_free(b);
	ivl_link_free(a);
	ivl_hub_free(hub);
}

static void hub_free_downs_links(void **state)
{
	struct ivl_hub *hub;
	struct ivl_link *a, *b;
	struct ivl_link_event ev[8];
	struct seen s;
	char *app;
	int n, fds = tu_count_fds();

	(void)state;
	assert_int_equal(ivl_hub_new(&hub, REGION, 4, 2), 0);
	assert_int_equal(ivl_hub_join(hub, "a", &a), 0);
	assert_int_equal(ivl_hub_join(hub, "b", &b), 0);
	drain(a, &s);
	ivl_hub_free(hub);
	n = ivl_link_wait(b, ev, 8, 5000);
	assert_true(n >= 1);
	assert_int_equal(ev[n - 1].type, IVL_LINK_DOWN);
	assert_int_equal(ivl_link_process(b, ev, 8), -ENOTCONN);
	assert_int_equal(ivl_link_wait(b, ev, 8, 10), -ENOTCONN);
	assert_int_equal(ivl_link_ring(a, 1, 0), -ENOTCONN);
	drain(a, &s);
	assert_int_equal(s.downs, 1);
	/* The region outlives the hub handle while links use it. */
	app = ivl_link_app_area(a, NULL);
	app[0] = 'x';
	ivl_link_free(a);
	ivl_link_free(b);
	assert_int_equal(tu_count_fds(), fds);
}

/* ---- ringing from many threads ----------------------------------------- */

#define THREADS 8
#define RINGS 20000

struct ringer {
	struct ivl_link *l;
	uint16_t to;
	pthread_barrier_t *start;
	int errors;
};

static void *ring_thread(void *arg)
{
	struct ringer *r = arg;

	pthread_barrier_wait(r->start);
	for (int i = 0; i < RINGS; i++)
		if (ivl_link_ring(r->l, r->to, 1) != 0)
			r->errors++;
	return NULL;
}

static void concurrent_rings(void **state)
{
	struct ivl_hub *hub;
	struct ivl_link *rx, *tx[2];
	struct ringer rs[THREADS];
	pthread_t th[THREADS];
	pthread_barrier_t start;
	struct ivl_link_event ev[16];
	uint64_t total = 0;
	int64_t end;

	(void)state;
	assert_int_equal(ivl_hub_new(&hub, REGION, 4, 2), 0);
	assert_int_equal(ivl_hub_join(hub, "rx", &rx), 0);
	assert_int_equal(ivl_hub_join(hub, "tx0", &tx[0]), 0);
	assert_int_equal(ivl_hub_join(hub, "tx1", &tx[1]), 0);
	assert_int_equal(pthread_barrier_init(&start, NULL, THREADS + 1), 0);
	/* Two sender links, several threads on each: ring is the one call
	 * that may run concurrently on one link. */
	for (int i = 0; i < THREADS; i++) {
		rs[i] = (struct ringer){.l = tx[i % 2], .to = 0, .start = &start};
		assert_int_equal(pthread_create(&th[i], NULL, ring_thread, &rs[i]), 0);
	}
	pthread_barrier_wait(&start);
	/* Receive while they ring. */
	end = tu_now_ms() + 30000;
	while (total < (uint64_t)THREADS * RINGS && tu_now_ms() < end) {
		int n = ivl_link_wait(rx, ev, ARRAY_SIZE(ev), 1000);
		assert_true(n >= 0);
		for (int i = 0; i < n; i++)
			if (ev[i].type == IVL_LINK_DOORBELL) {
				assert_int_equal(ev[i].vector, 1);
				total += ev[i].count;
			}
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(rs[i].errors, 0);
	}
	/* Nothing more may come: every ring counted exactly once. */
	assert_int_equal(ivl_link_wait(rx, ev, ARRAY_SIZE(ev), 0), 0);
	assert_true(total == (uint64_t)THREADS * RINGS);
	pthread_barrier_destroy(&start);
	ivl_link_free(tx[1]);
	ivl_link_free(tx[0]);
	ivl_link_free(rx);
	ivl_hub_free(hub);
}

/* Joins and leaves on other threads while rings fly. */
struct churner {
	struct ivl_hub *hub;
	atomic_bool *stop;
	int errors;
};

static void *churn_thread(void *arg)
{
	struct churner *c = arg;

	while (!atomic_load(c->stop)) {
		struct ivl_link *l;
		int r = ivl_hub_join(c->hub, "churn", &l);
		if (r == -ENOSPC)
			continue;
		if (r < 0) {
			c->errors++;
			break;
		}
		ivl_link_free(l);
	}
	return NULL;
}

static void rings_during_churn(void **state)
{
	struct ivl_hub *hub;
	struct ivl_link *a;
	struct churner c;
	pthread_t th;
	atomic_bool stop;
	struct seen s;
	long joins = 0, leaves = 0;

	(void)state;
	atomic_init(&stop, false);
	assert_int_equal(ivl_hub_new(&hub, REGION, 4, 2), 0);
	assert_int_equal(ivl_hub_join(hub, "a", &a), 0);
	c = (struct churner){.hub = hub, .stop = &stop};
	assert_int_equal(pthread_create(&th, NULL, churn_thread, &c), 0);
	for (int i = 0; i < 20000; i++) {
		int r = ivl_link_ring(a, 1, 1);
		assert_true(r == 0 || r == -ENOENT);
		if (i % 1000 == 0) {
			drain(a, &s);
			joins += s.njoins;
			leaves += s.nleaves;
		}
	}
	atomic_store(&stop, true);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(c.errors, 0);
	drain(a, &s);
	joins += s.njoins;
	leaves += s.nleaves;
	assert_int_equal(joins, leaves);
	/* Every join was followed by its leave. */
	assert_int_equal(ivl_link_peers(a, NULL, 0), 0);
	ivl_link_free(a);
	ivl_hub_free(hub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(joins_seen_by_all),    cmocka_unit_test(ring_every_pair),
	    cmocka_unit_test(broadcast_and_self),   cmocka_unit_test(leave_and_reuse),
	    cmocka_unit_test(hub_full_and_errors),  cmocka_unit_test(wait_and_fd),
	    cmocka_unit_test(wait_interrupted),	    cmocka_unit_test(app_area),
	    cmocka_unit_test(hub_free_downs_links), cmocka_unit_test(concurrent_rings),
	    cmocka_unit_test(rings_during_churn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
