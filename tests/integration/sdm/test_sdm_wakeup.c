/* SPDX-License-Identifier: MIT */
/*
 * No lost wake-up on the shared-memory channels (LOCAL and LINK), in both
 * directions: the receiver runs in its own thread and sleeps in poll() on
 * its SDM fd whenever ivl_sdm_process() finds nothing; the sender sends
 * batches of random sizes and now and then waits until the receiver has
 * caught up and pauses for a random while, so that the receiver goes idle
 * and arms its doorbell at every possible moment relative to the next
 * batch (docs/sdm.md §2 and §5).
 *
 * The timers that would hide a lost wake-up are pushed out of reach
 * (keepalive and backoff periods of minutes), and a receiver whose poll()
 * finds nothing for 20 s while signals are outstanding fails the test: a
 * lost wake-up hangs, it cannot pass by luck.  Every signal arrives once,
 * in order.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sdmtest.h"
#include <ivlink/hub.h>
#include <ivlink/link.h>

#define ROUNDS 3000u
#define LONG_MS 600000u /* keepalive and backoff: out of the test's reach */

struct rx {
	struct ivl_sdm *sdm;
	atomic_uint got;
	unsigned want, bad_order;
	atomic_bool fail;
};

static void on_irq(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, uint16_t from, void *op)
{
	struct rx *r = op;
	unsigned n = atomic_load_explicit(&r->got, memory_order_relaxed);

	(void)s, (void)from;
	if (sig->payload[0] != n)
		r->bad_order++;
	/* Release: the sender waits for this count. */
	atomic_store_explicit(&r->got, n + 1, memory_order_release);
}

static void *receiver(void *arg)
{
	struct rx *r = arg;
	struct pollfd p = {.fd = ivl_sdm_get_fd(r->sdm), .events = POLLIN};

	while (atomic_load(&r->got) < r->want) {
		int n = ivl_sdm_process(r->sdm);

		if (n < 0) {
			atomic_store(&r->fail, true);
			break;
		}
		if (n > 0)
			continue;
		/* Nothing: sleep until the fd says there is work. */
		if (poll(&p, 1, 20000) == 0 && atomic_load(&r->got) < r->want) {
			atomic_store(&r->fail, true); /* a lost wake-up */
			break;
		}
	}
	return NULL;
}

static unsigned rnd(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 16;
}

/* Send ROUNDS batches from @tx to @rx (slave ID @to, 0: the master). */
static void flood(struct ivl_sdm *tx, struct ivl_sdm *rxs, uint16_t to)
{
	static struct ivl_sdm_signal v[64];
	struct rx r = {.sdm = rxs};
	unsigned seed = 12345, pace = 777, sent = 0;
	pthread_t th;

	for (unsigned k = 0; k < ROUNDS; k++)
		r.want += rnd(&seed) % 64 + 1;
	seed = 12345;
	ivl_sdm_set_handler(rxs, IVL_SDM_IRQ, on_irq, &r);
	assert_int_equal(pthread_create(&th, NULL, receiver, &r), 0);
	for (unsigned k = 0; k < ROUNDS && !atomic_load(&r.fail); k++) {
		unsigned n = rnd(&seed) % 64 + 1, done = 0;

		for (unsigned i = 0; i < n; i++)
			v[i] = (struct ivl_sdm_signal){IVL_SDM_IRQ, to, {sent + i, 0}};
		while (done < n && !atomic_load(&r.fail)) {
			int q = ivl_sdm_send_batch(tx, v + done, n - done);

			if (q == -EAGAIN) {
				ivl_sdm_process(tx);
				sched_yield();
				continue;
			}
			assert_true(q > 0);
			done += (unsigned)q;
		}
		sent += n;
		if (rnd(&pace) % 4 == 0) {
			/* Let the receiver catch up and go idle, then pause for
			 * a random number of iterations before the next batch. */
			unsigned spin = rnd(&pace) % 200000;

			while (atomic_load_explicit(&r.got, memory_order_acquire) < sent &&
			       !atomic_load(&r.fail))
				sched_yield();
			for (volatile unsigned i = 0; i < spin; i++)
				;
			if (rnd(&pace) % 8 == 0)
				sched_yield();
		}
	}
	pthread_join(th, NULL);
	assert_false(atomic_load(&r.fail));
	assert_int_equal(atomic_load(&r.got), r.want);
	assert_int_equal(r.bad_order, 0);
	ivl_sdm_set_handler(rxs, IVL_SDM_IRQ, NULL, NULL);
}

static void local_both_ways(void **state)
{
	struct ivl_sdm_bus *bus;
	struct ivl_sdm *m, *s;
	struct ivl_sdm_opts o = {.master = true, .max_slaves = 2, .channel = IVL_SDM_CHAN_LOCAL};

	(void)state;
	assert_int_equal(ivl_sdm_bus_new(&bus), 0);
	o.bus = bus;
	assert_int_equal(ivl_sdm_new(&m, &o), 0);
	o.master = false;
	assert_int_equal(ivl_sdm_new(&s, &o), 0);
	flood(m, s, (uint16_t)ivl_sdm_id(s));
	flood(s, m, 0);
	ivl_sdm_free(s);
	ivl_sdm_free(m);
	ivl_sdm_bus_free(bus);
}

static void link_both_ways(void **state)
{
	struct ivl_hub *hub;
	struct ivl_link *ml, *sl;
	struct ivl_sdm *m, *s;
	struct ivl_sdm_opts o = {.master = true,
				    .max_slaves = 2,
				    .channel = IVL_SDM_CHAN_LINK,
				    .keepalive_ms = LONG_MS,
				    .reconnect_min_ms = 10,
				    .reconnect_max_ms = 20};

	(void)state;
	assert_int_equal(ivl_hub_new(&hub, 1u << 20, 4, 1), 0);
	assert_int_equal(ivl_hub_join(hub, "m", &ml), 0);
	assert_int_equal(ivl_hub_join(hub, "s", &sl), 0);
	o.link = ml;
	o.link_ring = 64; /* small: the sender also meets a full ring */
	assert_int_equal(ivl_sdm_new(&m, &o), 0);
	o.master = false;
	o.link = sl;
	o.link_ring = 0;
	o.link_master = (uint16_t)ivl_link_id(ml);
	assert_int_equal(ivl_sdm_new(&s, &o), 0);
	for (int i = 0; i < 5000 && ivl_sdm_state(s) != 0; i++)
		sdm_pump(m, &s, 1, 1);
	assert_int_equal(ivl_sdm_state(s), 0);
	flood(m, s, (uint16_t)ivl_sdm_id(s));
	flood(s, m, 0);
	ivl_sdm_free(s);
	ivl_sdm_free(m);
	ivl_link_free(sl);
	ivl_link_free(ml);
	ivl_hub_free(hub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(local_both_ways),
	    cmocka_unit_test(link_both_ways),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
