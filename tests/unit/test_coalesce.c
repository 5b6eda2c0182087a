/* SPDX-License-Identifier: MIT */
/* Coalescing: single-threaded semantics, then a race test that proves no
 * wakeup is lost and none is invented. */
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>

static void non_coalescing_receiver_always_rung(void **state)
{
	struct ivl_shm_peer p;

	(void)state;
	memset(&p, 0, sizeof(p));
	assert_int_equal(ivl_coalesce_mark(&p, 3), 1);
	assert_int_equal(ivl_coalesce_mark(&p, 3), 1);
	assert_true(__atomic_load_n(&p.pending, __ATOMIC_SEQ_CST) == 0); /* nobody would clear it */
	__atomic_store_n(&p.waiting, 77, __ATOMIC_SEQ_CST);              /* hostile value */
	assert_int_equal(ivl_coalesce_mark(&p, 3), 1);
	assert_int_equal(ivl_coalesce_mark(&p, 64), 1);
}

static void awake_receiver_is_not_rung(void **state)
{
	struct ivl_shm_peer p;

	(void)state;
	memset(&p, 0, sizeof(p));
	ivl_coalesce_wake(&p);
	assert_int_equal(ivl_coalesce_mark(&p, 0), 0);
	assert_int_equal(ivl_coalesce_mark(&p, 5), 0);
	assert_true(ivl_coalesce_take(&p) == ((1ull << 0) | (1ull << 5)));
	assert_true(ivl_coalesce_take(&p) == 0);
}

static void sleeping_receiver_rung_once(void **state)
{
	struct ivl_shm_peer p;

	(void)state;
	memset(&p, 0, sizeof(p));
	ivl_coalesce_wake(&p);
	assert_true(ivl_coalesce_sleep(&p) == 0);
	assert_int_equal(__atomic_load_n(&p.waiting, __ATOMIC_SEQ_CST), IVL_WAITING_ASLEEP);
	assert_int_equal(ivl_coalesce_mark(&p, 2), 1); /* first: ring */
	assert_int_equal(ivl_coalesce_mark(&p, 2), 0); /* same bit: coalesced */
	assert_int_equal(ivl_coalesce_mark(&p, 4), 1); /* other bit, asleep */
	ivl_coalesce_wake(&p);
	assert_true(ivl_coalesce_take(&p) == ((1ull << 2) | (1ull << 4)));
}

static void sleep_sees_pending_work(void **state)
{
	struct ivl_shm_peer p;

	(void)state;
	memset(&p, 0, sizeof(p));
	ivl_coalesce_wake(&p);
	assert_int_equal(ivl_coalesce_mark(&p, 1), 0);
	/* The bit arrived before we slept: sleep must refuse and hand it over. */
	assert_true(ivl_coalesce_sleep(&p) == (1ull << 1));
	assert_int_equal(__atomic_load_n(&p.waiting, __ATOMIC_SEQ_CST), IVL_WAITING_AWAKE);
	ivl_coalesce_off(&p);
	assert_int_equal(ivl_coalesce_mark(&p, 1), 1);
}

/* ---- race test ---------------------------------------------------------- */

#define MAX_SENDERS 3
#define RINGS 20000

struct race {
	struct ivl_shm_peer peer;
	int efd;
	_Atomic uint64_t delivered[MAX_SENDERS];
	unsigned senders;
	_Atomic int stop;
	_Atomic int failed;
	_Atomic uint64_t doorbells;
};

struct sender_arg {
	struct race *r;
	unsigned idx;
};

static void *sender(void *p)
{
	struct sender_arg *a = p;
	struct race *r = a->r;
	unsigned seed = a->idx * 7919u + 1;

	for (int i = 0; i < RINGS && !atomic_load(&r->failed); i++) {
		uint64_t before = atomic_load(&r->delivered[a->idx]);
		int64_t deadline;

		if (ivl_coalesce_mark(&r->peer, a->idx)) {
			atomic_fetch_add(&r->doorbells, 1);
			if (ivl_eventfd_ring(r->efd) < 0)
				atomic_store(&r->failed, 1);
		}
		/* A lost wakeup would leave us here until the deadline. */
		deadline = tu_now_ms() + 10000;
		while (atomic_load(&r->delivered[a->idx]) == before) {
			if (tu_now_ms() > deadline) {
				/* Lost: fail, and wake the receiver for good. */
				atomic_store(&r->failed, 2);
				ivl_eventfd_ring(r->efd);
				return NULL;
			}
			if ((rand_r(&seed) & 15) == 0)
				usleep(rand_r(&seed) % 50);
			else
				sched_yield();
		}
	}
	return NULL;
}

static void deliver(struct race *r, uint64_t bits)
{
	for (unsigned i = 0; i < r->senders; i++)
		if (bits & (1ull << i))
			atomic_fetch_add(&r->delivered[i], 1);
	if (bits >> r->senders)
		atomic_store(&r->failed, 3); /* a bit nobody set: invented */
}

static void race(unsigned senders)
{
	struct race *r = calloc(1, sizeof(*r));
	struct sender_arg args[MAX_SENDERS];
	pthread_t th[MAX_SENDERS];
	unsigned seed = 42;
	int done;

	r->senders = senders;
	r->efd = ivl_eventfd_new();
	assert_true(r->efd >= 0);
	ivl_coalesce_wake(&r->peer);
	for (unsigned i = 0; i < senders; i++) {
		args[i] = (struct sender_arg){ r, i };
		assert_int_equal(pthread_create(&th[i], NULL, sender, &args[i]), 0);
	}
	/* The receiver switches between polling and sleeping at random. */
	do {
		uint64_t bits = ivl_coalesce_take(&r->peer);

		if (bits) {
			deliver(r, bits);
		} else if (rand_r(&seed) & 1) {
			sched_yield(); /* polling */
		} else {
			bits = ivl_coalesce_sleep(&r->peer);
			if (bits) {
				deliver(r, bits);
			} else {
				struct pollfd pfd = { .fd = r->efd, .events = POLLIN };
				/* No time-out: a lost wakeup blocks here until
				 * the waiting sender's deadline rescues us. */
				poll(&pfd, 1, -1);
				ivl_eventfd_drain(r->efd, NULL);
				ivl_coalesce_wake(&r->peer);
			}
		}
		done = 1;
		for (unsigned i = 0; i < senders; i++)
			if (atomic_load(&r->delivered[i]) < RINGS)
				done = 0;
	} while (!done && !atomic_load(&r->failed));
	for (unsigned i = 0; i < senders; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(atomic_load(&r->failed), 0);
	for (unsigned i = 0; i < senders; i++)
		assert_true(atomic_load(&r->delivered[i]) == RINGS); /* none invented */
	/* Coalescing must actually have saved doorbells. */
	assert_true(atomic_load(&r->doorbells) < (uint64_t)senders * RINGS);
	print_message("%d rings, %llu doorbells\n", senders * RINGS,
		      (unsigned long long)atomic_load(&r->doorbells));
	close(r->efd);
	free(r);
}

/* One sender: any lost wakeup blocks at once (nobody else rings). */
static void no_lost_wakeup_one_sender(void **state)
{
	(void)state;
	race(1);
}

/* Several senders: bits coalesce across senders; none may be lost or made up. */
static void no_lost_or_invented_wakeups(void **state)
{
	(void)state;
	race(3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(non_coalescing_receiver_always_rung),
		cmocka_unit_test(awake_receiver_is_not_rung),
		cmocka_unit_test(sleeping_receiver_rung_once),
		cmocka_unit_test(sleep_sees_pending_work),
		cmocka_unit_test(no_lost_wakeup_one_sender),
		cmocka_unit_test(no_lost_or_invented_wakeups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
