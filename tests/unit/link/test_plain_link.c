/* SPDX-License-Identifier: MIT */
/* The plain backend (docs/plain.md): self-registration, JOIN/LEAVE from the
 * peer table, rings as polled pending bits, -ENOTSUP and -ENOSPC. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>
#include <ivlink/link.h>
#include <ivlink/plain.h>

#define MiB (1ull << 20)

/* Wait (bounded) for an event of @type from @peer; other events are
 * skipped.  Returns the event's count, or fails the test. */
static uint32_t expect(struct ivl_link *l, enum ivl_link_event_type type, int peer)
{
	int64_t end = tu_now_ms() + 5000;

	while (tu_now_ms() < end) {
		struct ivl_link_event ev[8];
		int n = ivl_link_wait(l, ev, 8, 100);

		assert_true(n >= 0);
		for (int i = 0; i < n; i++)
			if (ev[i].type == type && (peer < 0 || ev[i].peer == peer))
				return ev[i].count;
	}
	fail_msg("no event %d from peer %d", type, peer);
	return 0;
}

static struct ivl_plain_opts opts(const char *path)
{
	struct ivl_plain_opts o = {
	    .kind = IVL_REGION_FILE, .name = path, .size = MiB, .max_peers = 3};

	return o;
}

static void two_peers(void **state)
{
	const char *path = tu_path(tu_tmpdir(), "pair");
	struct ivl_plain_opts o = opts(path);
	struct ivl_link *a, *b;
	uint16_t ids[4];

	(void)state;
	assert_int_equal(ivl_link_plain_new(&a, &o, "alpha"), 0);
	assert_int_equal(ivl_link_id(a), 0);
	assert_int_equal(ivl_link_vectors(a), 1);
	assert_non_null(ivl_link_header(a));
	assert_int_equal(ivl_link_peers(a, ids, 4), 0);
	o.size = 0; /* the second peer takes the object's size */
	assert_int_equal(ivl_link_plain_new(&b, &o, "beta"), 0);
	assert_int_equal(ivl_link_id(b), 1);
	/* b sees a at once (its first scan), a sees b on a rescan. */
	expect(b, IVL_LINK_JOIN, 0);
	expect(a, IVL_LINK_JOIN, 1);
	assert_int_equal(ivl_link_peers(a, ids, 4), 1);
	assert_int_equal(ids[0], 1);
	assert_string_equal(ivl_link_peer_name(a, 1), "beta");
	assert_int_equal(ivl_link_peer_vectors(a, 1), 1);

	/* Rings are pending bits polled by the target's wait. */
	assert_int_equal(ivl_link_ring(b, 0, 0), 0);
	assert_true(expect(a, IVL_LINK_DOORBELL, -1) >= 1);
	assert_int_equal(ivl_link_ring(a, 1, 0), 0);
	assert_true(expect(b, IVL_LINK_DOORBELL, -1) >= 1);
	assert_int_equal(ivl_link_ring(a, 2, 0), -ENOENT);
	assert_int_equal(ivl_link_ring(a, 1, 1), -ERANGE);
	assert_int_equal(ivl_link_broadcast(b, 0), 1);
	expect(a, IVL_LINK_DOORBELL, -1);

	/* Both see the same application area. */
	{
		uint64_t sa, sb;
		char *pa = ivl_link_app_area(a, &sa), *pb = ivl_link_app_area(b, &sb);

		assert_true(sa == sb && sa > 0);
		memcpy(pa, "shared", 7);
		assert_string_equal(pb, "shared");
	}

	ivl_link_free(b);
	expect(a, IVL_LINK_LEAVE, 1);
	assert_int_equal(ivl_link_peers(a, ids, 4), 0);
	/* The freed slot is taken again, with a new generation. */
	assert_int_equal(ivl_link_plain_new(&b, &o, NULL), 0);
	assert_int_equal(ivl_link_id(b), 1);
	expect(a, IVL_LINK_JOIN, 1);
	ivl_link_free(b);
	ivl_link_free(a);
	unlink(path);
}

static void not_polling_and_full(void **state)
{
	const char *path = tu_path(tu_tmpdir(), "full");
	struct ivl_plain_opts o = opts(path);
	struct ivl_link *a, *b, *c;
	struct ivl_region *r;
	struct ivl_shm_header h;
	struct ivl_shm_peer *e;

	(void)state;
	assert_int_equal(ivl_link_plain_new(&a, &o, "a"), 0);
	/* A peer that registered by hand and does not poll (waiting NONE):
	 * it cannot be reached without a doorbell. */
	assert_int_equal(ivl_plain_open(&r, &o, &h), 0);
	e = ivl_shm_peer(ivl_region_base(r), &h, 1);
	assert_non_null(e);
	e->vectors = 1;
	__atomic_store_n(&e->state, IVL_PEER_READY, __ATOMIC_SEQ_CST);
	expect(a, IVL_LINK_JOIN, 1);
	assert_int_equal(ivl_link_ring(a, 1, 0), -ENOTSUP);
	/* Entries 0 and 1 taken, 2 free, then the table (3) is full. */
	assert_int_equal(ivl_link_plain_new(&b, &o, "b"), 0);
	assert_int_equal(ivl_link_id(b), 2);
	assert_int_equal(ivl_link_plain_new(&c, &o, "c"), -ENOSPC);
	assert_null(c);
	/* Open errors pass through. */
	o.size = 2 * MiB;
	assert_int_equal(ivl_link_plain_new(&c, &o, "c"), -EINVAL);
	assert_int_equal(ivl_link_plain_new(&c, NULL, "c"), -EINVAL);
	ivl_link_free(b);
	ivl_link_free(a);
	ivl_region_free(r);
	unlink(path);
}

static void server_region_refused(void **state)
{
	const char *path = tu_path(tu_tmpdir(), "server");
	struct ivl_plain_opts o = opts(path);
	struct ivl_shm_header h;
	struct ivl_region *r, *r2;
	struct ivl_link *l;

	(void)state;
	/* A region as ivlink-server formats it (no IVL_FEAT_PLAIN): plain
	 * opens it, but a plain link must not take IDs from its table. */
	assert_true(ivl_plain_open(&r, &o, &h) >= 0);
	assert_int_equal(ivl_shm_format(ivl_region_base(r), ivl_region_size(r), 4, 2, 7,
					IVL_FEAT_HELLO | IVL_FEAT_NAMES),
			 0);
	assert_int_equal(ivl_plain_open(&r2, &o, &h), 0);
	assert_false(h.features & IVL_FEAT_PLAIN);
	ivl_region_free(r2);
	assert_int_equal(ivl_link_plain_new(&l, &o, "x"), -EPROTO);
	assert_null(l);
	ivl_region_free(r);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(two_peers),
	    cmocka_unit_test(not_polling_and_full),
	    cmocka_unit_test(server_region_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
