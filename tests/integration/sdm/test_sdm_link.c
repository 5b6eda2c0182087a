/* SPDX-License-Identifier: MIT */
/*
 * SDM over the LINK channel, on a local hub: a master and three slaves
 * (boot, IRQ with payload both ways, reset, slave-to-slave refused,
 * max_slaves exceeded, a slave's link gone and back with its ID), plus a
 * hostile slave writing the shared mailboxes directly (forged signal,
 * impossible ring indices).
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>

#include "sdmtest.h"
#include <ivlink/hub.h>
#include <ivlink/link.h>

#define REGION (1u << 18)
/* The default ring length (the master sets none). */
#define RING IVL_SDM_LINK_RING_DEFAULT

struct world {
	struct ivl_hub *hub;
	struct ivl_link *ml, *sl[6];
	struct ivl_sdm *m, *s[6];
	struct rec rm, rs[6];
};

static void pump_once(struct world *w)
{
	sdm_pump(w->m, w->s, 6, 5);
}

static uint16_t current(struct world *w)
{
	struct ivl_sdm_config c;

	ivl_sdm_get_config(w->m, &c);
	return c.current_slaves;
}

static void add_slave(struct world *w, int i, uint16_t id)
{
	struct ivl_sdm_opts o = {
	    .channel = IVL_SDM_CHAN_LINK, .id = id, .reconnect_min_ms = 10, .reconnect_max_ms = 50};

	assert_int_equal(ivl_hub_join(w->hub, "slave", &w->sl[i]), 0);
	o.link = w->sl[i];
	o.link_master = (uint16_t)ivl_link_id(w->ml);
	assert_int_equal(ivl_sdm_new(&w->s[i], &o), 0);
	for (uint32_t t = 0; t < IVL_SDM_NTYPES; t++)
		ivl_sdm_set_handler(w->s[i], t, on_sig, &w->rs[i]);
	ivl_sdm_set_action(w->s[i], IVL_SDM_BOOT, on_action, &w->rs[i]);
	ivl_sdm_set_action(w->s[i], IVL_SDM_RESET, on_action, &w->rs[i]);
}

static void del_slave(struct world *w, int i)
{
	ivl_sdm_free(w->s[i]);
	ivl_link_free(w->sl[i]);
	w->s[i] = NULL;
	w->sl[i] = NULL;
}

static void link_channel(void **state)
{
	struct ivl_sdm_opts o = {.master = true, .max_slaves = 3, .channel = IVL_SDM_CHAN_LINK};
	struct world w;
	struct ivl_sdm_signal sig;
	struct ivl_sdm_stats st;

	(void)state;
	memset(&w, 0, sizeof(w));
	assert_int_equal(ivl_hub_new(&w.hub, REGION, 8, 1), 0);
	assert_int_equal(ivl_hub_join(w.hub, "master", &w.ml), 0);
	o.link = w.ml;
	o.max_slaves = 3;
	assert_int_equal(ivl_sdm_new(&w.m, &o), 0);
	ivl_sdm_set_handler(w.m, IVL_SDM_IRQ, on_sig, &w.rm);
	for (int i = 0; i < 3; i++)
		add_slave(&w, i, 0);
	assert_true(PUMP_UNTIL(&w, current(&w) == 3 && !ivl_sdm_state(w.s[0]) &&
				       !ivl_sdm_state(w.s[1]) && !ivl_sdm_state(w.s[2])));

	/* Boot everyone; the action runs. */
	for (int i = 0; i < 3; i++) {
		sig = (struct ivl_sdm_signal){
		    IVL_SDM_BOOT, (uint32_t)ivl_sdm_id(w.s[i]), {0x1000u + (uint32_t)i, 0}};
		assert_int_equal(ivl_sdm_send(w.m, &sig), 0);
	}
	assert_true(PUMP_UNTIL(&w, w.rs[0].n[1] && w.rs[1].n[1] && w.rs[2].n[1]));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(w.rs[i].actions, 1);
		assert_int_equal(w.rs[i].last.payload[0], 0x1000u + (uint32_t)i);
	}
	/* IRQ both ways. */
	sig = (struct ivl_sdm_signal){IVL_SDM_IRQ, (uint32_t)ivl_sdm_id(w.s[1]), {11, 12}};
	assert_int_equal(ivl_sdm_send(w.m, &sig), 0);
	assert_true(PUMP_UNTIL(&w, w.rs[1].n[0] == 1));
	assert_int_equal(w.rs[1].last.payload[1], 12);
	assert_int_equal(w.rs[0].n[0] + w.rs[2].n[0], 0);
	sig = (struct ivl_sdm_signal){IVL_SDM_IRQ, 0, {21, 22}};
	assert_int_equal(ivl_sdm_send(w.s[2], &sig), 0);
	assert_true(PUMP_UNTIL(&w, w.rm.n[0] == 1));
	assert_int_equal(w.rm.from, ivl_sdm_id(w.s[2]));
	assert_int_equal(w.rm.last.payload[0], 21);
	/* More than a ring's worth, with the consumer keeping up. */
	for (unsigned k = 0; k < RING + 40; k++) {
		int r;

		while ((r = ivl_sdm_send(w.s[0], &sig)) == -EAGAIN)
			pump_once(&w);
		assert_int_equal(r, 0);
	}
	assert_true(PUMP_UNTIL(&w, w.rm.n[0] == RING + 41));
	/* A batch fills the ring at most (RING entries), one doorbell. */
	{
		static struct ivl_sdm_signal v[RING + 40];
		int r;

		for (unsigned k = 0; k < RING + 40; k++)
			v[k] = sig;
		r = ivl_sdm_send_batch(w.s[0], v, RING + 40);
		/* Single-threaded: nobody drains before the ring is full. */
		assert_int_equal(r, RING);
		assert_int_equal(ivl_sdm_send_batch(w.s[0], v, 40), -EAGAIN);
		assert_true(PUMP_UNTIL(&w, w.rm.n[0] == 2 * RING + 41));
	}
	/* A master's batch in runs to several slaves: each run goes to its
	 * slave's ring, in order. */
	{
		static const int to[] = {0, 0, 1, 2, 2, 0, 1};
		struct ivl_sdm_signal v[7];
		unsigned before[3], want[3] = {0};

		for (int i = 0; i < 3; i++)
			before[i] = w.rs[i].n[0];
		for (unsigned k = 0; k < 7; k++) {
			v[k] = (struct ivl_sdm_signal){
			    IVL_SDM_IRQ, (uint32_t)ivl_sdm_id(w.s[to[k]]), {k, 0}};
			want[to[k]]++;
		}
		assert_int_equal(ivl_sdm_send_batch(w.m, v, 7), 7);
		assert_true(PUMP_UNTIL(&w, w.rs[0].n[0] == before[0] + want[0] &&
					       w.rs[1].n[0] == before[1] + want[1] &&
					       w.rs[2].n[0] == before[2] + want[2]));
		assert_int_equal(w.rs[0].last.payload[0], 5);
		assert_int_equal(w.rs[1].last.payload[0], 6);
		assert_int_equal(w.rs[2].last.payload[0], 4);
	}
	/* Reset. */
	sig = (struct ivl_sdm_signal){IVL_SDM_RESET, (uint32_t)ivl_sdm_id(w.s[0]), {0, 0}};
	assert_int_equal(ivl_sdm_send(w.m, &sig), 0);
	assert_true(PUMP_UNTIL(&w, w.rs[0].n[2] == 1));
	/* Slave to slave refused. */
	sig = (struct ivl_sdm_signal){IVL_SDM_IRQ, 2, {0, 0}};
	assert_int_equal(ivl_sdm_send(w.s[0], &sig), -EPERM);

	/* Broadcast (seed 000's mailbox): one signal in each slave's mailbox,
	 * naming that slave; only the master may; a full mailbox fails the
	 * whole broadcast and nothing is queued anywhere. */
	{
		unsigned before[3];
		struct ivl_sdm_signal all = {IVL_SDM_IRQ, IVL_SDM_ALL, {31, 32}};
		struct ivl_sdm_signal u = {IVL_SDM_IRQ, (uint32_t)ivl_sdm_id(w.s[0]), {0, 0}};

		for (int i = 0; i < 3; i++)
			before[i] = w.rs[i].n[0];
		assert_int_equal(ivl_sdm_send(w.s[1], &all), -EPERM);
		assert_int_equal(ivl_sdm_send(w.m, &all), 3);
		assert_true(PUMP_UNTIL(&w, w.rs[0].n[0] == before[0] + 1 &&
					       w.rs[1].n[0] == before[1] + 1 &&
					       w.rs[2].n[0] == before[2] + 1));
		for (int i = 0; i < 3; i++) {
			assert_int_equal(w.rs[i].last.slave, (uint32_t)ivl_sdm_id(w.s[i]));
			assert_int_equal(w.rs[i].last.payload[1], 32);
			assert_int_equal(w.rs[i].from, 0);
		}
		/* Nobody drains in between: RING fill slave 0's mailbox. */
		for (unsigned k = 0; k < RING; k++)
			assert_int_equal(ivl_sdm_send(w.m, &u), 0);
		assert_int_equal(ivl_sdm_send(w.m, &u), -EAGAIN);
		assert_int_equal(ivl_sdm_send(w.m, &all), -EAGAIN);
		assert_true(PUMP_UNTIL(&w, w.rs[0].n[0] == before[0] + RING + 1));
		assert_int_equal(w.rs[1].n[0], before[1] + 1);
		assert_int_equal(w.rs[2].n[0], before[2] + 1);
		assert_int_equal(ivl_sdm_send(w.m, &all), 3);
		assert_true(PUMP_UNTIL(&w, w.rs[0].n[0] == before[0] + RING + 2 &&
					       w.rs[1].n[0] == before[1] + 2 &&
					       w.rs[2].n[0] == before[2] + 2));
	}

	/* Fourth slave: refused, full. */
	add_slave(&w, 3, 0);
	assert_true(PUMP_UNTIL(&w, ivl_sdm_state(w.s[3]) == -EUSERS));
	assert_int_equal(current(&w), 3);
	del_slave(&w, 3);

	/* A slave's link goes away; it comes back with the same ID. */
	{
		int id = ivl_sdm_id(w.s[1]);

		del_slave(&w, 1);
		assert_true(PUMP_UNTIL(&w, current(&w) == 2));
		sig = (struct ivl_sdm_signal){IVL_SDM_IRQ, (uint32_t)id, {0, 0}};
		assert_int_equal(ivl_sdm_send(w.m, &sig), -ENOENT);
		w.rs[1] = (struct rec){0};
		add_slave(&w, 1, (uint16_t)id);
		assert_true(PUMP_UNTIL(&w, current(&w) == 3 && ivl_sdm_id(w.s[1]) == id));
		assert_int_equal(ivl_sdm_send(w.m, &sig), 0);
		assert_true(PUMP_UNTIL(&w, w.rs[1].n[0] == 1));
	}

	/* Hostile: slave 3's mailbox is written directly with a forged
	 * destination, then with impossible indices. */
	{
		uint64_t size;
		uint8_t *area = ivl_link_app_area(w.sl[2], &size);
		int id = ivl_sdm_id(w.s[2]);
		/* Layout of docs/sdm.md §5, <ivlink/proto/sdm.h>: header,
		 * slots; slot: owner, status, m2s ring, s2m ring; ring: head,
		 * tail, entries. */
		uint16_t len = ((struct ivl_sdm_link_area *)(void *)area)->ring_len;
		size_t ring = IVL_SDM_LINK_RING_SIZE(len);
		uint8_t *s2m = area + sizeof(struct ivl_sdm_link_area) +
			       IVL_SDM_LINK_SLOT_SIZE(len) * (size_t)id +
			       sizeof(struct ivl_sdm_link_slot) + ring;
		_Atomic uint32_t *head = (_Atomic uint32_t *)s2m;
		struct ivl_sdm_signal forged = {IVL_SDM_IRQ, 1, {66, 66}};
		uint32_t h = atomic_load(head);

		assert_int_equal(len, IVL_SDM_LINK_RING_DEFAULT);
		ivl_sdm_get_stats(w.m, &st);
		ivl__sdm_signal_encode(s2m + sizeof(struct ivl_sdm_link_ring) +
					   sizeof(struct ivl_sdm_wire_signal) * (h % len),
				       &forged);
		atomic_store(head, h + 1);
		ivl_link_ring(w.sl[2], (uint16_t)ivl_link_id(w.ml), 0);
		{
			uint64_t before = st.dropped_forged;

			assert_true(PUMP_UNTIL(
			    &w, (ivl_sdm_get_stats(w.m, &st), st.dropped_forged == before + 1)));
		}
		assert_int_equal(w.rm.n[0], 2 * RING + 41);
		atomic_store(head, atomic_load(head) + len + 1);
		ivl_link_ring(w.sl[2], (uint16_t)ivl_link_id(w.ml), 0);
		assert_true(PUMP_UNTIL(&w, current(&w) == 2));
		ivl_sdm_get_stats(w.m, &st);
		assert_true(st.conn_dropped >= 1);
	}

	/* Config: raising max_slaves beyond what the area holds fails. */
	assert_int_equal(ivl_sdm_set_max_slaves(w.m, IVL_SDM_MAX_SLAVES), -ERANGE);
	assert_int_equal(ivl_sdm_set_max_slaves(w.m, 5), 0);

	for (int i = 0; i < 6; i++)
		if (w.s[i])
			del_slave(&w, i);
	ivl_sdm_free(w.m);
	ivl_link_free(w.ml);
	ivl_hub_free(w.hub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(link_channel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
