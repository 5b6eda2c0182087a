/* SPDX-License-Identifier: MIT */
/* The MSI vector table and event map on its own (seed 004, docs/virtio.md §3). */
#include <errno.h>
#include <string.h>

#include "testutil.h"
#include <ivlink/hub.h>
#include <ivlink/link.h>
#include <ivlink/mmio.h>
#include <ivlink/msi.h>
#include <ivlink/virtq.h>

struct rec {
	int n;
	uint32_t vector[64];
	uint64_t addr[64];
	uint32_t data[64];
	int fail; /* fail the next deliveries */
};

static int deliver(void *opaque, uint32_t vector, uint64_t address, uint32_t data)
{
	struct rec *r = opaque;
	if (r->fail) {
		r->fail--;
		return -EAGAIN;
	}
	if (r->n < 64) {
		r->vector[r->n] = vector;
		r->addr[r->n] = address;
		r->data[r->n] = data;
	}
	r->n++;
	return 0;
}

static void test_non_sharing(void **state)
{
	struct rec rec = {0};
	struct ivl_msi *m;
	assert_int_equal(ivl_msi_new(&m, 0, 2, false, deliver, &rec), -EINVAL);
	/* Seed 004: non-sharing needs more vectors than queues (fewer would
	 * leave queues without an interrupt), sharing at least 2. */
	assert_int_equal(ivl_msi_new(&m, 3, 4, false, deliver, &rec), -EINVAL);
	assert_int_equal(ivl_msi_new(&m, 4, 4, false, deliver, &rec), -EINVAL);
	assert_int_equal(ivl_msi_new(&m, 1, 4, true, deliver, &rec), -EINVAL);
	assert_int_equal(ivl_msi_new(&m, 3, 2, false, deliver, &rec), 0);
	assert_int_equal(ivl_msi_num(m), 3);
	assert_false(ivl_msi_sharing(m));
	assert_false(ivl_msi_enabled(m));
	/* Fixed map: 0 config, n queue n-1. */
	assert_int_equal(ivl_msi_config_vector(m), 0);
	assert_int_equal(ivl_msi_queue_vector(m, 0), 1);
	assert_int_equal(ivl_msi_queue_vector(m, 1), 2);
	assert_int_equal(ivl_msi_queue_vector(m, 2), IVL_MSI_NO_VECTOR);
	assert_int_equal(ivl_msi_queue_vector(m, 4), IVL_MSI_NO_VECTOR);
	assert_int_equal(ivl_msi_map_queue(m, 0, 2), -EPERM);
	assert_int_equal(ivl_msi_map_config(m, 2), -EPERM);
	assert_int_equal(ivl_msi_queue_vector(m, 0), 1);

	for (uint32_t v = 0; v < 3; v++)
		assert_int_equal(ivl_msi_configure(m, v, 10 + v, 20 + v), 0);
	assert_int_equal(ivl_msi_configure(m, 3, 0, 0), -EINVAL);
	/* Disabled: the caller falls back to the single interrupt. */
	assert_int_equal(ivl_msi_raise_queue(m, 0), -EAGAIN);
	ivl_msi_enable(m);
	assert_int_equal(ivl_msi_raise_queue(m, 1), 1);
	assert_int_equal(ivl_msi_raise_config(m), 1);
	assert_int_equal(ivl_msi_raise_queue(m, 2), -EINVAL);
	assert_int_equal(ivl_msi_raise_queue(m, 9), -EINVAL);
	assert_int_equal(rec.n, 2);
	assert_int_equal(rec.vector[0], 2);
	assert_int_equal(rec.addr[0], 12);
	assert_int_equal(rec.data[0], 22);
	assert_int_equal(rec.vector[1], 0);

	/* Masked: pending, never lost; unmask delivers exactly once. */
	assert_int_equal(ivl_msi_mask(m, 1), 0);
	assert_int_equal(ivl_msi_raise_queue(m, 0), 0);
	assert_int_equal(ivl_msi_raise_queue(m, 0), 0);
	struct ivl_msi_vector v;
	assert_int_equal(ivl_msi_get(m, 1, &v), 0);
	assert_true(v.masked && v.pending);
	assert_int_equal(rec.n, 2);
	assert_int_equal(ivl_msi_unmask(m, 1), 1);
	assert_int_equal(rec.n, 3);
	assert_int_equal(rec.vector[2], 1);
	assert_int_equal(ivl_msi_unmask(m, 1), 0);
	assert_int_equal(rec.n, 3);
	assert_int_equal(ivl_msi_get(m, 1, &v), 0);
	assert_false(v.masked || v.pending);

	/* A failed delivery stays pending and is retried by unmask. */
	rec.fail = 1;
	assert_int_equal(ivl_msi_raise_queue(m, 0), -EAGAIN);
	assert_int_equal(ivl_msi_get(m, 1, &v), 0);
	assert_true(v.pending);
	assert_int_equal(ivl_msi_unmask(m, 1), 1);
	assert_int_equal(rec.n, 4);

	/* Pending while disabled is delivered by an unmask after enable. */
	ivl_msi_mask(m, 0);
	assert_int_equal(ivl_msi_raise_config(m), 0);
	ivl_msi_disable(m);
	assert_int_equal(ivl_msi_unmask(m, 0), 0);
	assert_int_equal(rec.n, 4);
	ivl_msi_mask(m, 0);
	ivl_msi_enable(m);
	assert_int_equal(ivl_msi_unmask(m, 0), 1);
	assert_int_equal(rec.n, 5);

	/* Seed 004: "Device MUST support unmapping any event type
	 * (NO_VECTOR)", in non-sharing mode too; the fixed vector maps it
	 * back, any other vector is refused. */
	assert_int_equal(ivl_msi_map_queue(m, 1, IVL_MSI_NO_VECTOR), 0);
	assert_int_equal(ivl_msi_queue_vector(m, 1), IVL_MSI_NO_VECTOR);
	assert_int_equal(ivl_msi_raise_queue(m, 1), -ENOENT);
	assert_int_equal(ivl_msi_map_config(m, IVL_MSI_NO_VECTOR), 0);
	assert_int_equal(ivl_msi_raise_config(m), -ENOENT);
	assert_int_equal(rec.n, 5);
	assert_int_equal(ivl_msi_raise_queue(m, 0), 1); /* the others still work */
	assert_int_equal(ivl_msi_map_queue(m, 1, 1), -EPERM);
	assert_int_equal(ivl_msi_map_queue(m, 1, 3), -EINVAL);
	assert_int_equal(ivl_msi_map_queue(m, 1, 2), 0);
	assert_int_equal(ivl_msi_raise_queue(m, 1), 1);
	assert_int_equal(rec.vector[6], 2);
	assert_int_equal(ivl_msi_map_queue(m, 0, IVL_MSI_NO_VECTOR), 0);

	ivl_msi_reset(m);
	assert_int_equal(ivl_msi_config_vector(m), 0); /* the fixed map again */
	assert_int_equal(ivl_msi_queue_vector(m, 0), 1);
	assert_false(ivl_msi_enabled(m));
	assert_int_equal(ivl_msi_get(m, 2, &v), 0);
	assert_int_equal(v.address, 0);
	assert_int_equal(ivl_msi_get(m, 3, &v), -EINVAL);
	ivl_msi_free(m);
	ivl_msi_free(NULL);
}

static void test_sharing(void **state)
{
	struct rec rec = {0};
	struct ivl_msi *m;
	assert_int_equal(ivl_msi_new(&m, 2, 4, true, deliver, &rec), 0);
	assert_true(ivl_msi_sharing(m));
	ivl_msi_configure(m, 0, 100, 1);
	ivl_msi_configure(m, 1, 200, 2);
	ivl_msi_enable(m);
	/* Nothing is mapped at first. */
	assert_int_equal(ivl_msi_config_vector(m), IVL_MSI_NO_VECTOR);
	assert_int_equal(ivl_msi_raise_config(m), -ENOENT);
	assert_int_equal(ivl_msi_raise_queue(m, 3), -ENOENT);
	/* Any event on any vector; several events on one. */
	assert_int_equal(ivl_msi_map_config(m, 1), 0);
	assert_int_equal(ivl_msi_map_queue(m, 0, 1), 0);
	assert_int_equal(ivl_msi_map_queue(m, 3, 0), 0);
	assert_int_equal(ivl_msi_map_queue(m, 4, 0), -EINVAL);
	assert_int_equal(ivl_msi_map_queue(m, 1, 2), -EINVAL);
	assert_int_equal(ivl_msi_map_config(m, 7), -EINVAL);
	assert_int_equal(ivl_msi_raise_config(m), 1);
	assert_int_equal(ivl_msi_raise_queue(m, 0), 1);
	assert_int_equal(ivl_msi_raise_queue(m, 3), 1);
	assert_int_equal(ivl_msi_raise_queue(m, 1), -ENOENT);
	assert_int_equal(rec.n, 3);
	assert_int_equal(rec.vector[0], 1);
	assert_int_equal(rec.vector[1], 1);
	assert_int_equal(rec.vector[2], 0);
	assert_int_equal(rec.addr[2], 100);
	/* Two events on a masked shared vector: one pending bit, one delivery. */
	ivl_msi_mask(m, 1);
	assert_int_equal(ivl_msi_raise_config(m), 0);
	assert_int_equal(ivl_msi_raise_queue(m, 0), 0);
	assert_int_equal(ivl_msi_unmask(m, 1), 1);
	assert_int_equal(rec.n, 4);
	/* NO_VECTOR unmaps. */
	assert_int_equal(ivl_msi_map_config(m, IVL_MSI_NO_VECTOR), 0);
	assert_int_equal(ivl_msi_raise_config(m), -ENOENT);
	ivl_msi_reset(m);
	assert_int_equal(ivl_msi_queue_vector(m, 0), IVL_MSI_NO_VECTOR);
	ivl_msi_free(m);
}

/* The ivlink meaning of a message: address = peer, data = doorbell. */
static void test_link_deliver(void **state)
{
	struct ivl_hub *hub;
	struct ivl_link *dev, *drv;
	assert_int_equal(ivl_hub_new(&hub, 1 << 20, 4, 4), 0);
	assert_int_equal(ivl_hub_join(hub, "device", &dev), 0);
	assert_int_equal(ivl_hub_join(hub, "driver", &drv), 0);
	struct ivl_msi *m;
	assert_int_equal(ivl_msi_new(&m, 2, 1, false, ivl_msi_link_deliver, dev), 0);
	assert_int_equal(ivl_msi_configure(m, 0, (uint64_t)ivl_link_id(drv), 3), 0);
	assert_int_equal(ivl_msi_configure(m, 1, (uint64_t)ivl_link_id(drv), 2), 0);
	ivl_msi_enable(m);
	assert_int_equal(ivl_msi_raise_queue(m, 0), 1);
	assert_int_equal(ivl_msi_raise_config(m), 1);
	int seen2 = 0, seen3 = 0;
	int64_t end = tu_now_ms() + 5000;
	while ((!seen2 || !seen3) && tu_now_ms() < end) {
		struct ivl_link_event ev[8];
		int n = ivl_link_wait(drv, ev, 8, 100);
		for (int i = 0; i < n; i++)
			if (ev[i].type == IVL_LINK_DOORBELL) {
				seen2 += ev[i].vector == 2;
				seen3 += ev[i].vector == 3;
			}
	}
	assert_true(seen2 && seen3);
	/* Beyond 16 bits, or a vector the peer lacks: an error, kept pending. */
	assert_int_equal(ivl_msi_configure(m, 1, 1ull << 20, 2), 0);
	assert_int_equal(ivl_msi_raise_queue(m, 0), -EINVAL);
	assert_int_equal(ivl_msi_configure(m, 1, (uint64_t)ivl_link_id(drv), 9), 0);
	assert_true(ivl_msi_raise_queue(m, 0) < 0);
	struct ivl_msi_vector v;
	assert_int_equal(ivl_msi_get(m, 1, &v), 0);
	assert_true(v.pending);
	ivl_msi_free(m);
	ivl_link_free(dev);
	ivl_link_free(drv);
	ivl_hub_free(hub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_non_sharing),
	    cmocka_unit_test(test_sharing),
	    cmocka_unit_test(test_link_deliver),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
