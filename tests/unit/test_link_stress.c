/* SPDX-License-Identifier: MIT */
/*
 * Coalescing under races, through the link API: several sender threads
 * (each with its own link and its own vector) ring one receiver that switches
 * wait modes and coalescing at random, "processes" each batch of events for
 * a random while (woken from the kernel it stays AWAKE meanwhile: senders
 * only set bits and skip their doorbells) and declares itself done either
 * implicitly (its next wait), with ivl_link_process(), or with
 * ivl_link_done() followed by a re-check of its work.  Each sender posts
 * work (a counter) before every ring.  Proves:
 *  - no lost wakeup: after every ring, the receiver sees that sender's work
 *    (each sender waits for it, bounded);
 *  - nothing invented: a vector nobody rings is never delivered, and a
 *    vector's deliveries never exceed its rings plus its real doorbells
 *    (a ring is delivered once through its bit, at most once more through
 *    its eventfd write: the documented "at least once").
 * Each sender rings up to IVL_STRESS_RINGS times (default 100000) or for
 * IVL_STRESS_SECONDS (default 20), whichever ends first: every ring is a
 * round trip through the scheduler, so on a loaded machine a fixed count
 * would measure the load, not the races.  A lower bound on the rings done
 * keeps the test meaningful; a lost wakeup still fails at its own 10 s
 * delivery deadline.
 */
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include <ivlink/hub.h>
#include <ivlink/link.h>

#define SENDERS 3
#define UNRUNG SENDERS      /* a vector nobody rings */
#define STOP (SENDERS + 1)   /* rung by each sender when it is done */

/* link.c: a blocked wait re-checks at least this often (defence against a
 * peer that rewrites my waiting state).  It would also hide a lost wakeup
 * as mere latency, so this test turns it off. */
extern int ivl__sleep_slice_ms;

struct stress {
	struct ivl_link *rx;
	struct ivl_link *tx[SENDERS];
	unsigned rings;
	int64_t until_ms;
	unsigned done[SENDERS]; /* rings each sender made */
	_Atomic uint64_t delivered[SENDERS + 1];
	_Atomic uint64_t posted[SENDERS], seen[SENDERS]; /* the senders' work */
	_Atomic int done_senders;
	_Atomic int failed;
};

struct targ {
	struct stress *s;
	unsigned idx;
};

static void *sender(void *p)
{
	struct targ *a = p;
	struct stress *s = a->s;
	uint16_t rx = (uint16_t)ivl_link_id(s->rx);
	unsigned seed = 977u * (a->idx + 1);

	for (unsigned i = 0; i < s->rings && !atomic_load(&s->failed); i++) {
		uint64_t mine;
		int64_t deadline;

		if (tu_now_ms() > s->until_ms)
			break;
		/* Work first (seq_cst), then the ring. */
		mine = atomic_fetch_add(&s->posted[a->idx], 1) + 1;
		if (ivl_link_ring(s->tx[a->idx], rx, (uint16_t)a->idx) < 0) {
			atomic_store(&s->failed, 1);
			break;
		}
		s->done[a->idx]++;
		deadline = tu_now_ms() + 10000;
		while (atomic_load(&s->seen[a->idx]) < mine) {
			if (tu_now_ms() > deadline) {
				atomic_store(&s->failed, 2); /* lost */
				break;
			}
			if ((rand_r(&seed) & 31) == 0)
				usleep(rand_r(&seed) % 30);
			else
				sched_yield();
		}
	}
	atomic_fetch_add(&s->done_senders, 1);
	/* Another vector, so it cannot be coalesced into a lost one. */
	ivl_link_ring(s->tx[a->idx], rx, STOP);
	return NULL;
}

/* Deliveries: counted, and the senders' work they announce is seen. */
static void count(struct stress *s, const struct ivl_link_event *ev, int n)
{
	for (int i = 0; i < n; i++) {
		if (ev[i].type != IVL_LINK_DOORBELL || ev[i].vector > UNRUNG)
			continue;
		atomic_fetch_add(&s->delivered[ev[i].vector], 1);
		if (ev[i].vector < SENDERS)
			atomic_store(&s->seen[ev[i].vector], atomic_load(&s->posted[ev[i].vector]));
	}
}

static void stress(void **state)
{
	struct ivl_hub *hub;
	struct stress *s = calloc(1, sizeof(*s));
	struct targ args[SENDERS];
	pthread_t th[SENDERS];
	struct ivl_link_event ev[16];
	const char *env = getenv("IVL_STRESS_RINGS"), *secs = getenv("IVL_STRESS_SECONDS");
	unsigned seed = 7, switches = 0;
	uint64_t rung_total = 0;

	(void)state;
	s->rings = env ? (unsigned)strtoul(env, NULL, 10) : 100000;
	s->until_ms = tu_now_ms() + 1000 * (secs ? strtol(secs, NULL, 10) : 20);
	ivl__sleep_slice_ms = -1;
	assert_int_equal(ivl_hub_new(&hub, 1 << 20, 8, STOP + 1), 0);
	assert_int_equal(ivl_hub_join(hub, "rx", &s->rx), 0);
	for (unsigned i = 0; i < SENDERS; i++)
		assert_int_equal(ivl_hub_join(hub, "tx", &s->tx[i]), 0);
	assert_int_equal(ivl_link_set_coalescing(s->rx, true), 0);
	for (unsigned i = 0; i < SENDERS; i++) {
		args[i] = (struct targ){ s, i };
		assert_int_equal(pthread_create(&th[i], NULL, sender, &args[i]), 0);
	}
	while (atomic_load(&s->done_senders) < SENDERS) {
		/* No time-out: a lost wakeup blocks here for good, the
		 * senders' deadlines expire, and meson's time-out fails us. */
		int n = ivl_link_wait(s->rx, ev, 16, -1);

		assert_true(n >= 0);
		count(s, ev, n);
		if ((rand_r(&seed) % 4) == 0) {
			/* Busy with the batch for a while: rings meanwhile
			 * find the bit held. */
			for (volatile unsigned k = rand_r(&seed) % 20000; k; k--)
				;
		}
		switch (rand_r(&seed) % 3) {
		case 0:
			/* Done explicitly, then look at the work once more,
			 * as an application about to poll its fd would. */
			assert_int_equal(ivl_link_done(s->rx), 0);
			for (unsigned v = 0; v < SENDERS; v++)
				atomic_store(&s->seen[v], atomic_load(&s->posted[v]));
			/* Sometimes block on the fd in an own loop, as an
			 * application may after done: a ring after done must
			 * make it readable (no time-out: a lost wakeup hangs). */
			if (ivl_link_wait_mode(s->rx) == IVL_WAIT_INTERRUPT && (rand_r(&seed) & 1) &&
			    atomic_load(&s->done_senders) == 0) {
				struct pollfd p = { .fd = ivl_link_get_fd(s->rx), .events = POLLIN };

				while (poll(&p, 1, -1) < 0)
					;
			}
			break;
		case 1:
			/* Done by a non-blocking process(): its events count. */
			n = ivl_link_process(s->rx, ev, 16);
			assert_true(n >= 0);
			count(s, ev, n);
			break;
		default:
			break; /* done at the next wait */
		}
		if ((rand_r(&seed) % 64) == 0) {
			/* Mode switches while rings are in flight. */
			enum ivl_wait_mode m = (enum ivl_wait_mode)(rand_r(&seed) % 3);
			assert_int_equal(ivl_link_set_wait_mode(s->rx, m, 1000 + rand_r(&seed) % 20000), 0);
			if (m == IVL_WAIT_INTERRUPT)
				assert_int_equal(ivl_link_set_coalescing(s->rx, rand_r(&seed) & 1), 0);
			switches++;
		}
	}
	for (unsigned i = 0; i < SENDERS; i++)
		pthread_join(th[i], NULL);
	/* Whatever is still queued (duplicates) counts too. */
	ivl_link_set_coalescing(s->rx, false);
	for (int n; (n = ivl_link_process(s->rx, ev, 16)) > 0;)
		for (int i = 0; i < n; i++)
			if (ev[i].type == IVL_LINK_DOORBELL && ev[i].vector <= UNRUNG)
				atomic_fetch_add(&s->delivered[ev[i].vector], 1);

	assert_int_equal(atomic_load(&s->failed), 0);
	assert_true(atomic_load(&s->delivered[UNRUNG]) == 0);
	for (unsigned i = 0; i < SENDERS; i++) {
		struct ivl_link_stats st;

		ivl_link_get_stats(s->tx[i], &st);
		assert_true(st.rings == s->done[i] + 1ull); /* + the STOP ring */
		assert_true(s->done[i] >= (s->rings < 1000 ? s->rings : 1000));
		assert_true(atomic_load(&s->seen[i]) == s->done[i]);
		assert_true(atomic_load(&s->delivered[i]) <= st.rings + st.doorbells);
		rung_total += st.doorbells;
		print_message("sender %u: %llu rings, %llu doorbells, %llu delivered\n", i,
			      (unsigned long long)st.rings, (unsigned long long)st.doorbells,
			      (unsigned long long)atomic_load(&s->delivered[i]));
	}
	print_message("%u mode switches; %llu real doorbells for %llu rings\n", switches,
		      (unsigned long long)rung_total,
		      (unsigned long long)s->done[0] + s->done[1] + s->done[2]);
	for (unsigned i = 0; i < SENDERS; i++)
		ivl_link_free(s->tx[i]);
	ivl_link_free(s->rx);
	ivl_hub_free(hub);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stress),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
