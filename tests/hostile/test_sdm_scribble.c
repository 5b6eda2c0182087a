/* SPDX-License-Identifier: MIT */
/*
 * Issue #11 item 7: a peer that scribbles the SDM LINK channel's mailboxes
 * (the area header, slot owners and statuses, ring heads and tails) must not
 * take the channel down for good.  A master and two slaves on a local hub
 * exchange signals while a thread writes random bytes and words over those
 * control fields; once it stops, signals must flow again both ways between
 * the master and each slave within one second, with nothing foreign
 * delivered after that, over several rounds.  The recovery time of each
 * round is printed (median and maximum at the end).
 *
 * Ring entries are left alone: a peer that writes entries can inject
 * signals by design (docs/sdm.md §5, "Trust"), which no receiver can tell
 * from real ones.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hostile.h"
#include <ivlink/hub.h>
#include <ivlink/link.h>
#include <ivlink/proto/sdm.h>
#include <ivlink/sdm.h>

#define ROUNDS 12
#define SLAVES 2
#define RECOVER_MS 1000 /* the requirement */
#define TAG 0x5c000000u /* payload[0]: TAG | round << 8 | phase */

struct world {
	struct ivl_hub *hub;
	struct ivl_link *ml, *sl[SLAVES];
	struct ivl_sdm *m, *s[SLAVES];
	/* What arrived with the current round's "after" tag. */
	unsigned m_from[SLAVES + 1], s_got[SLAVES];
	unsigned foreign; /* deliveries after recovery not sent by us */
	uint32_t want;	  /* the current tag */
	bool strict;	  /* recovered: anything untagged is foreign */
	uint32_t next_seq[SLAVES + 1], seen_seq_m[SLAVES + 1], seen_seq_s[SLAVES];
};

struct scribbler {
	uint8_t *area;
	size_t ring; /* bytes of one ring */
	unsigned capacity;
	atomic_bool stop;
	unsigned long writes;
	uint64_t seed;
};

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* A random control field of the area: the header, a slot's owner or
 * status, a ring's head or tail. */
static uint8_t *target(struct scribbler *sc)
{
	uint64_t r = rnd(&sc->seed);
	size_t slot = sizeof(struct ivl_sdm_link_slot) + 2 * sc->ring;
	/* Half of the writes on the slaves' slots (and the next one). */
	unsigned id = 1 + (unsigned)(r >> 8) % ((r >> 40) & 1 ? SLAVES + 1 : sc->capacity);
	uint8_t *sl = sc->area + sizeof(struct ivl_sdm_link_area) + id * slot;

	switch (r % 8) {
	case 0:
		return sc->area + (r >> 32) % sizeof(struct ivl_sdm_link_area);
	case 1:
		return sl + offsetof(struct ivl_sdm_link_slot, owner);
	case 2:
		return sl + offsetof(struct ivl_sdm_link_slot, status);
	default: {
		uint8_t *ring = sl + sizeof(struct ivl_sdm_link_slot) + ((r >> 16) & 1) * sc->ring;

		return ring + ((r >> 17) & 1 ? offsetof(struct ivl_sdm_link_ring, tail)
					     : offsetof(struct ivl_sdm_link_ring, head));
	}
	}
}

static void *scribble(void *arg)
{
	struct scribbler *sc = arg;

	while (!atomic_load_explicit(&sc->stop, memory_order_relaxed)) {
		uint8_t *p = target(sc);
		uint64_t v = rnd(&sc->seed);

		/* Whole words (aligned: every target is) and single bytes. */
		if (v & 1)
			__atomic_store_n((uint32_t *)(void *)((uintptr_t)p & ~(uintptr_t)3),
					 (uint32_t)(v >> 32), __ATOMIC_RELAXED);
		else
			__atomic_store_n(p, (uint8_t)(v >> 8), __ATOMIC_RELAXED);
		sc->writes++;
		if (sc->writes % 64 == 0)
			sched_yield();
	}
	return NULL;
}

static void on_master(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, uint16_t from, void *op)
{
	struct world *w = op;

	(void)s;
	if (from == 0 || from > SLAVES || (sig->payload[0] & 0xff000000u) != TAG) {
		w->foreign += w->strict;
		return;
	}
	if (sig->payload[0] == w->want) {
		w->m_from[from]++;
		if (w->strict && sig->payload[1] != w->seen_seq_m[from]++)
			w->foreign++; /* out of order or twice */
	}
}

static void on_slave(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, uint16_t from, void *op)
{
	struct world *w = op;
	int id = ivl_sdm_id(s);

	if (id < 1 || id > SLAVES || from != 0 || (sig->payload[0] & 0xff000000u) != TAG) {
		w->foreign += w->strict;
		return;
	}
	if (sig->payload[0] == w->want) {
		w->s_got[id - 1]++;
		if (w->strict && sig->payload[1] != w->seen_seq_s[id - 1]++)
			w->foreign++;
	}
}

static void pump(struct world *w, int ms)
{
	struct pollfd p[SLAVES + 1];

	p[0] = (struct pollfd){.fd = ivl_sdm_get_fd(w->m), .events = POLLIN};
	for (int i = 0; i < SLAVES; i++)
		p[i + 1] = (struct pollfd){.fd = ivl_sdm_get_fd(w->s[i]), .events = POLLIN};
	poll(p, SLAVES + 1, ms);
	ivl_sdm_process(w->m);
	for (int i = 0; i < SLAVES; i++)
		ivl_sdm_process(w->s[i]);
}

/* One signal each way between the master and every registered slave,
 * tagged @tag; errors (not registered, full, reset) are expected while
 * the channel recovers. */
static void exchange(struct world *w, uint32_t tag)
{
	for (int i = 0; i < SLAVES; i++) {
		int id = ivl_sdm_id(w->s[i]);
		struct ivl_sdm_signal sig = {IVL_SDM_IRQ, 0, {tag, 0}};

		if (id < 1)
			continue;
		sig.payload[1] = w->next_seq[id];
		if (ivl_sdm_send(w->s[i], &sig) == 0)
			w->next_seq[id]++;
		sig.slave = (uint32_t)id;
		sig.payload[1] = w->next_seq[0] + 0x10000u * (uint32_t)id;
		ivl_sdm_send(w->m, &sig);
	}
}

static bool flowing(const struct world *w)
{
	for (int i = 0; i < SLAVES; i++)
		if (!w->m_from[i + 1] || !w->s_got[i])
			return false;
	return true;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

static void scribble_and_recover(void **state)
{
	struct ivl_sdm_opts o = {
	    .master = true, .max_slaves = SLAVES, .channel = IVL_SDM_CHAN_LINK};
	struct world w = {0};
	struct scribbler sc = {.seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)time(NULL)};
	long took[ROUNDS];
	uint64_t size;
	int fds = tu_count_fds();

	(void)state;
	assert_int_equal(ivl_hub_new(&w.hub, 1u << 18, 4, 1), 0);
	assert_int_equal(ivl_hub_join(w.hub, "master", &w.ml), 0);
	o.link = w.ml;
	assert_int_equal(ivl_sdm_new(&w.m, &o), 0);
	ivl_sdm_set_handler(w.m, IVL_SDM_IRQ, on_master, &w);
	for (int i = 0; i < SLAVES; i++) {
		struct ivl_sdm_opts so = {.channel = IVL_SDM_CHAN_LINK};

		assert_int_equal(ivl_hub_join(w.hub, "slave", &w.sl[i]), 0);
		so.link = w.sl[i];
		so.link_master = (uint16_t)ivl_link_id(w.ml);
		assert_int_equal(ivl_sdm_new(&w.s[i], &so), 0);
		ivl_sdm_set_handler(w.s[i], IVL_SDM_IRQ, on_slave, &w);
	}
	{
		int64_t end = tu_now_ms() + 5000;

		while (tu_now_ms() < end && (ivl_sdm_state(w.s[0]) || ivl_sdm_state(w.s[1])))
			pump(&w, 5);
		assert_int_equal(ivl_sdm_state(w.s[0]), 0);
		assert_int_equal(ivl_sdm_state(w.s[1]), 0);
	}
	sc.area = ivl_link_app_area(w.ml, &size);
	sc.capacity = (unsigned)__atomic_load_n(&((struct ivl_sdm_link_area *)sc.area)->capacity,
						__ATOMIC_RELAXED);
	sc.ring = IVL_SDM_LINK_RING_SIZE(
	    __atomic_load_n(&((struct ivl_sdm_link_area *)sc.area)->ring_len, __ATOMIC_RELAXED));
	assert_true(sc.capacity > SLAVES);
	assert_true(IVL_SDM_LINK_AREA_SIZE(sc.capacity, (sc.ring - 128) / 16) <= size);

	for (int round = 0; round < ROUNDS; round++) {
		pthread_t th;
		int64_t t0, until;
		struct ivl_sdm_stats st;

		/* Scribble for 50..300 ms while traffic flows. */
		w.strict = false;
		w.want = TAG | (uint32_t)round << 8 | 1;
		atomic_store(&sc.stop, false);
		assert_int_equal(pthread_create(&th, NULL, scribble, &sc), 0);
		until = tu_now_ms() + 50 + (int64_t)(rnd(&sc.seed) % 250);
		while (tu_now_ms() < until) {
			exchange(&w, TAG | (uint32_t)round << 8);
			pump(&w, 1);
		}
		atomic_store(&sc.stop, true);
		pthread_join(th, NULL);

		/* Recovery: signals sent from now on, both ways, each slave. */
		t0 = tu_now_ms();
		memset(w.m_from, 0, sizeof(w.m_from));
		memset(w.s_got, 0, sizeof(w.s_got));
		while (!flowing(&w) && tu_now_ms() - t0 <= RECOVER_MS) {
			exchange(&w, w.want);
			pump(&w, 2);
		}
		took[round] = (long)(tu_now_ms() - t0);
		ivl_sdm_get_stats(w.m, &st);
		printf("round %d: %lu writes, recovered in %ld ms (master: %lu dropped, %lu "
		       "forged, %lu invalid so far)\n",
		       round, sc.writes, took[round], (unsigned long)st.conn_dropped,
		       (unsigned long)st.dropped_forged, (unsigned long)st.dropped_invalid);
		assert_true(flowing(&w));

		/* Recovered: from now on exactly what is sent arrives, once, in
		 * order, and nothing else. */
		w.want = TAG | (uint32_t)round << 8 | 2;
		w.strict = true;
		memset(w.m_from, 0, sizeof(w.m_from));
		memset(w.s_got, 0, sizeof(w.s_got));
		for (int i = 0; i <= SLAVES; i++)
			w.next_seq[i] = 0;
		memset(w.seen_seq_m, 0, sizeof(w.seen_seq_m));
		memset(w.seen_seq_s, 0, sizeof(w.seen_seq_s));
		for (int k = 0; k < 50; k++) {
			struct ivl_sdm_signal sig = {IVL_SDM_IRQ, 0, {w.want, (uint32_t)k}};

			for (int i = 0; i < SLAVES; i++) {
				while (ivl_sdm_send(w.s[i], &sig) == -EAGAIN)
					pump(&w, 1);
				sig.slave = (uint32_t)ivl_sdm_id(w.s[i]);
				while (ivl_sdm_send(w.m, &sig) == -EAGAIN)
					pump(&w, 1);
				sig.slave = 0;
			}
		}
		{
			int64_t end = tu_now_ms() + 5000;
			bool all = false;

			while (!all && tu_now_ms() < end) {
				pump(&w, 2);
				all = true;
				for (int i = 0; i < SLAVES; i++)
					all = all && w.m_from[i + 1] == 50 && w.s_got[i] == 50;
			}
			assert_true(all);
		}
		assert_int_equal(w.foreign, 0);
	}

	qsort(took, ROUNDS, sizeof(took[0]), cmp_long);
	printf("recovery over %d rounds: median %ld ms, max %ld ms\n", ROUNDS, took[ROUNDS / 2],
	       took[ROUNDS - 1]);
	for (int i = 0; i < SLAVES; i++) {
		ivl_sdm_free(w.s[i]);
		ivl_link_free(w.sl[i]);
	}
	ivl_sdm_free(w.m);
	ivl_link_free(w.ml);
	ivl_hub_free(w.hub);
	assert_int_equal(tu_count_fds(), fds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(scribble_and_recover),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
