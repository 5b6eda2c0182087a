/* SPDX-License-Identifier: MIT */
/* The link's internal peer table and event queue. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "link/link-internal.h"
#include "testutil.h"
#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>

static void sparse_table(void **state)
{
	struct ivl__peer_table t;
	uint16_t ids[8];
	uint64_t cnt;
	int fds[3], before = tu_count_fds();

	(void)state;
	assert_int_equal(ivl__pt_init(&t), 0);
	for (int i = 0; i < 3; i++)
		fds[i] = ivl_eventfd_new();
	/* The extremes of the ID space, vectors strictly in order. */
	assert_int_equal(ivl__pt_add(&t, 65535, 0, fds[0]), 1);
	assert_int_equal(ivl__pt_add(&t, 65535, 1, fds[1]), 2);
	assert_int_equal(ivl__pt_add(&t, 0, 0, fds[2]), 1);
	assert_int_equal(ivl__pt_add(&t, 0, 2, ivl_eventfd_new()), -EPROTO);
	assert_int_equal(ivl__pt_add(&t, 7, 1, ivl_eventfd_new()), -EPROTO);
	assert_int_equal(ivl__pt_vectors(&t, 7), 0);
	assert_int_equal(ivl__pt_ring(&t, 7, 0), -ENOENT);

	/* Not listed until reported joined. */
	assert_int_equal(ivl__pt_list(&t, -1, ids, 8), 0);
	assert_int_equal(ivl__pt_mark_joined(&t, 65535, 3), 0);
	assert_int_equal(ivl__pt_mark_joined(&t, 65535, 2), 1);
	assert_int_equal(ivl__pt_mark_joined(&t, 65535, 2), 0);
	assert_int_equal(ivl__pt_mark_joined(&t, 0, 1), 1);
	assert_int_equal(ivl__pt_list(&t, -1, ids, 8), 2);
	assert_int_equal(ids[0], 0);
	assert_int_equal(ids[1], 65535);
	assert_int_equal(ivl__pt_list(&t, 0, ids, 1), 1);
	assert_int_equal(ids[0], 65535);
	assert_int_equal(ivl__pt_list(&t, -1, NULL, 0), 2);

	assert_int_equal(ivl__pt_ring(&t, 65535, 1), 0);
	assert_int_equal(ivl__pt_ring(&t, 65535, 2), -ERANGE);
	assert_int_equal(ivl_eventfd_drain(fds[1], &cnt), 1);
	assert_true(cnt == 1);

	assert_int_equal(ivl__pt_remove(&t, 65535), 1);
	assert_int_equal(ivl__pt_remove(&t, 65535), -ENOENT);
	assert_int_equal(ivl__pt_ring(&t, 65535, 0), -ENOENT);
	/* The same ID starts over at vector 0. */
	assert_int_equal(ivl__pt_add(&t, 65535, 0, ivl_eventfd_new()), 1);
	assert_int_equal(ivl__pt_remove(&t, 65535), 0);
	ivl__pt_fini(&t);
	assert_int_equal(tu_count_fds(), before);
}

static void event_queue(void **state)
{
	struct ivl__evq q;
	struct ivl_link_event ev[64];
	struct pollfd p;

	(void)state;
	assert_int_equal(ivl__evq_init(&q), 0);
	p = (struct pollfd){.fd = q.efd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 0), 0);
	/* Growth past the first allocation keeps FIFO order across the wrap. */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 40; i++)
			assert_int_equal(ivl__evq_push(&q, IVL_LINK_DOORBELL, 0, (uint16_t)i, 1),
					 0);
		assert_int_equal(poll(&p, 1, 0), 1);
		assert_int_equal(ivl__evq_pop(&q, ev, 30), 30);
		assert_int_equal(ev[29].vector, 29);
		assert_int_equal(poll(&p, 1, 0), 1);
		assert_int_equal(ivl__evq_pop(&q, ev, 64), 10);
		assert_int_equal(ev[0].vector, 30);
		assert_int_equal(poll(&p, 1, 0), 0);
	}
	/* DOWN is the last event ever queued. */
	assert_int_equal(ivl__evq_push(&q, IVL_LINK_JOIN, 3, 0, 0), 0);
	assert_int_equal(ivl__evq_push(&q, IVL_LINK_DOWN, 0, 0, 0), 0);
	assert_int_equal(ivl__evq_push(&q, IVL_LINK_LEAVE, 3, 0, 0), 0);
	assert_int_equal(ivl__evq_len(&q), 2);
	assert_int_equal(ivl__evq_pop(&q, ev, 64), 2);
	assert_int_equal(ev[1].type, IVL_LINK_DOWN);
	ivl__evq_fini(&q);
}

/* The order evq.c promises, step by step. */
static void event_order(void **state)
{
	struct ivl__evq q;
	struct ivl_link_event ev[16];
	const struct ivl_link_event db[2] = {
	    {.type = IVL_LINK_DOORBELL, .vector = 0, .count = 3},
	    {.type = IVL_LINK_DOORBELL, .vector = 1, .count = 1},
	};
	uint32_t d;

	(void)state;
	assert_int_equal(ivl__evq_init(&q), 0);
	/* Pushed before any collection: a LEAVE waits for one. */
	assert_int_equal(ivl__evq_push(&q, IVL_LINK_JOIN, 5, 0, 0), 0);
	assert_int_equal(ivl__evq_push(&q, IVL_LINK_LEAVE, 5, 0, 0), 0);
	assert_int_equal(ivl__evq_pop(&q, ev, 16), 1);
	assert_int_equal(ev[0].type, IVL_LINK_JOIN);
	assert_int_equal(ivl__evq_pop(&q, ev, 16), 0);
	assert_int_equal(ivl__evq_len(&q), 1);
	/* A collection begun after it releases it, behind what it found;
	 * a JOIN of another peer queued behind the LEAVE is hoisted ahead of
	 * the doorbells, a JOIN of the same ID (reused) is not. */
	d = ivl__evq_drain_begin(&q);
	assert_int_equal(ivl__evq_push(&q, IVL_LINK_JOIN, 7, 0, 0), 0);
	assert_int_equal(ivl__evq_push(&q, IVL_LINK_JOIN, 5, 0, 0), 0);
	ivl__evq_drain_done(&q, d);
	assert_int_equal(ivl__evq_take(&q, db, 2, ev, 16), 5);
	assert_int_equal(ev[0].type, IVL_LINK_JOIN);
	assert_int_equal(ev[0].peer, 7);
	assert_int_equal(ev[1].type, IVL_LINK_DOORBELL);
	assert_int_equal(ev[1].count, 3);
	assert_int_equal(ev[2].type, IVL_LINK_DOORBELL);
	assert_int_equal(ev[3].type, IVL_LINK_LEAVE);
	assert_int_equal(ev[3].peer, 5);
	assert_int_equal(ev[4].type, IVL_LINK_JOIN);
	assert_int_equal(ev[4].peer, 5);
	/* A LEAVE pushed during a collection waits for the next one. */
	d = ivl__evq_drain_begin(&q);
	assert_int_equal(ivl__evq_push(&q, IVL_LINK_LEAVE, 7, 0, 0), 0);
	ivl__evq_drain_done(&q, d);
	assert_int_equal(ivl__evq_take(&q, db, 1, ev, 16), 1);
	assert_int_equal(ev[0].type, IVL_LINK_DOORBELL);
	/* Popped a little at a time, the rest keeps its place. */
	d = ivl__evq_drain_begin(&q);
	ivl__evq_drain_done(&q, d);
	assert_int_equal(ivl__evq_take(&q, db, 2, ev, 1), 1);
	assert_int_equal(ev[0].vector, 0);
	assert_int_equal(ivl__evq_pop(&q, ev, 16), 2);
	assert_int_equal(ev[0].vector, 1);
	assert_int_equal(ev[1].type, IVL_LINK_LEAVE);
	assert_int_equal(ivl__evq_len(&q), 0);
	ivl__evq_fini(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sparse_table),
	    cmocka_unit_test(event_queue), cmocka_unit_test(event_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
