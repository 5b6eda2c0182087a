/* SPDX-License-Identifier: MIT */
/*
 * Doorbell benchmark: in one run, (a) round-trip latency of the raw wake-up
 * primitives and of ivlink links in each wait mode, (b) burst throughput of
 * doorbells to a busy receiver with eventfd writes per doorbell, (c) CPU use
 * of an idle receiver.  Results are reported as ratios to the primitives
 * measured in the same run: absolute numbers drift on a shared VM.
 *
 *   bench_doorbell [--iters N] [--burst N] [--idle-ms MS] [--json]
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/ivlink.h>

#include "doorbell.h"
#include "primitives.h"

/* ---- (a) link round trips ---------------------------------------------- */

struct rt {
	struct ivl_link *a, *b;
	unsigned iters;
	uint64_t *samples;
	_Atomic uint32_t *ping, *pong; /* in the shared region */
	int failed;
};

/*
 * Wait (in the link's wait mode) until *@slot == @want.  The value in shared
 * memory is the message; doorbells only wake us.  With coalescing on, a
 * doorbell is an "at least once" hint and may repeat, so counting doorbells
 * would be wrong: real applications, like this one, check their data.
 */
static int wait_value(struct ivl_link *l, _Atomic uint32_t *slot, uint32_t want)
{
	struct ivl_link_event ev[8];

	/* acquire: pairs with the release store of the other side. */
	while (atomic_load_explicit(slot, memory_order_acquire) != want) {
		int n = ivl_link_wait(l, ev, 8, 5000);
		if (n < 0)
			return n;
		if (n == 0 && atomic_load_explicit(slot, memory_order_acquire) != want)
			return -ETIMEDOUT;
	}
	return 0;
}

static void *rt_responder(void *p)
{
	struct rt *rt = p;

	bench_pin_self(1);
	for (uint32_t i = 1; i <= rt->iters; i++) {
		if (wait_value(rt->b, rt->ping, i) < 0) {
			rt->failed = 1;
			break;
		}
		atomic_store_explicit(rt->pong, i, memory_order_release);
		if (ivl_link_ring(rt->b, (uint16_t)ivl_link_id(rt->a), 0) < 0) {
			rt->failed = 1;
			break;
		}
	}
	return NULL;
}

int bench_link_roundtrip(enum ivl_wait_mode mode, uint32_t spin_ns, unsigned iters,
			 uint64_t *samples)
{
	struct ivl_hub *hub = NULL;
	struct rt rt = { .iters = iters, .samples = samples };
	struct ivl_link_event ev[8];
	pthread_t th;
	uint64_t size;
	int ret;

	ret = ivl_hub_new(&hub, 1 << 20, 4, 1);
	if (ret < 0)
		return ret;
	if ((ret = ivl_hub_join(hub, "ping", &rt.a)) < 0 ||
	    (ret = ivl_hub_join(hub, "pong", &rt.b)) < 0)
		goto out;
	/* Two cache lines apart: each is written by one side only. */
	rt.ping = ivl_link_app_area(rt.a, &size);
	rt.pong = rt.ping + 16;
	atomic_store(rt.ping, 0);
	atomic_store(rt.pong, 0);
	/* Drain the join events before timing. */
	while (ivl_link_process(rt.a, ev, 8) > 0)
		;
	while (ivl_link_process(rt.b, ev, 8) > 0)
		;
	if ((ret = ivl_link_set_coalescing(rt.a, true)) < 0 ||
	    (ret = ivl_link_set_coalescing(rt.b, true)) < 0 ||
	    (ret = ivl_link_set_wait_mode(rt.a, mode, spin_ns)) < 0 ||
	    (ret = ivl_link_set_wait_mode(rt.b, mode, spin_ns)) < 0)
		goto out;
	if (pthread_create(&th, NULL, rt_responder, &rt) != 0) {
		ret = -EAGAIN;
		goto out;
	}
	bench_pin_self(0);
	for (uint32_t i = 1; i <= iters && !rt.failed; i++) {
		uint64_t t0 = bench_now_ns();
		atomic_store_explicit(rt.ping, i, memory_order_release);
		if ((ret = ivl_link_ring(rt.a, (uint16_t)ivl_link_id(rt.b), 0)) < 0 ||
		    (ret = wait_value(rt.a, rt.pong, i)) < 0) {
			rt.failed = 1;
			break;
		}
		samples[i - 1] = bench_now_ns() - t0;
	}
	pthread_join(th, NULL);
	if (rt.failed && ret >= 0)
		ret = -EIO;
out:
	ivl_link_free(rt.a);
	ivl_link_free(rt.b);
	ivl_hub_free(hub);
	return ret;
}

/* ---- (b) burst to a busy receiver --------------------------------------- */

struct burst {
	struct ivl_link *rx;
	_Atomic int stop;
	uint64_t received;
};

static void *burst_receiver(void *p)
{
	struct burst *b = p;
	struct ivl_link_event ev[16];

	bench_pin_self(1);
	while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
		int n = ivl_link_wait(b->rx, ev, 16, 100);
		for (int i = 0; i < n; i++)
			if (ev[i].type == IVL_LINK_DOORBELL)
				b->received += ev[i].count;
	}
	return NULL;
}

/* A hub with a sender and a coalescing receiver in @mode (the sender has
 * seen the receiver join). */
static int coalescing_pair(struct ivl_hub **hub, struct ivl_link **tx, struct ivl_link **rx,
			   enum ivl_wait_mode mode, uint32_t spin_ns)
{
	struct ivl_link_event ev[8];
	int ret = ivl_hub_new(hub, 1 << 20, 4, 1);

	if (ret < 0 || (ret = ivl_hub_join(*hub, "tx", tx)) < 0 ||
	    (ret = ivl_hub_join(*hub, "rx", rx)) < 0)
		return ret;
	while (ivl_link_process(*tx, ev, 8) > 0)
		;
	if ((ret = ivl_link_set_coalescing(*rx, true)) < 0)
		return ret;
	return ivl_link_set_wait_mode(*rx, mode, spin_ns);
}

int bench_link_burst(enum ivl_wait_mode mode, uint32_t spin_ns, unsigned rings,
		     struct bench_burst_result *res)
{
	struct ivl_hub *hub = NULL;
	struct ivl_link *tx = NULL;
	struct burst b = { 0 };
	struct ivl_link_stats st;
	uint64_t t0, t1;
	pthread_t th;
	int ret;

	memset(res, 0, sizeof(*res));
	if ((ret = coalescing_pair(&hub, &tx, &b.rx, mode, spin_ns)) < 0)
		goto out;
	if (pthread_create(&th, NULL, burst_receiver, &b) != 0) {
		ret = -EAGAIN;
		goto out;
	}
	usleep(20000); /* let the receiver settle into its wait */
	bench_pin_self(0);
	ivl_link_get_stats(tx, &st);
	res->doorbells_before = st.doorbells;
	t0 = bench_now_ns();
	for (unsigned i = 0; i < rings; i++)
		if ((ret = ivl_link_ring(tx, (uint16_t)ivl_link_id(b.rx), 0)) < 0)
			break;
	t1 = bench_now_ns();
	usleep(20000);
	atomic_store(&b.stop, 1);
	pthread_join(th, NULL);
	ivl_link_get_stats(tx, &st);
	res->rings = rings;
	res->ns = t1 - t0;
	res->eventfd_writes = st.doorbells - res->doorbells_before;
	res->received = b.received;
out:
	ivl_link_free(tx);
	ivl_link_free(b.rx);
	ivl_hub_free(hub);
	return ret < 0 ? ret : 0;
}

/* ---- (e) a receiver busy with each batch ------------------------------- */

struct busy {
	struct ivl_link *rx;
	_Atomic int stop;
	unsigned work_ns;
	uint64_t batches;
};

static void *busy_receiver(void *p)
{
	struct busy *b = p;
	struct ivl_link_event ev[16];

	bench_pin_self(1);
	while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
		int n = ivl_link_wait(b->rx, ev, 16, 100);
		bool rung = false;

		for (int i = 0; i < n; i++)
			rung |= ev[i].type == IVL_LINK_DOORBELL;
		if (!rung)
			continue;
		/* Work on the batch; rings meanwhile should cost nothing. */
		b->batches++;
		for (uint64_t end = bench_now_ns() + b->work_ns; bench_now_ns() < end;)
			;
	}
	return NULL;
}

int bench_link_busy(unsigned bursts, unsigned per_burst, unsigned gap_ns, unsigned work_ns,
		    struct bench_busy_result *res)
{
	struct ivl_hub *hub = NULL;
	struct ivl_link *tx = NULL;
	struct busy b = { .work_ns = work_ns };
	struct ivl_link_stats st0, st;
	pthread_t th;
	int ret;

	memset(res, 0, sizeof(*res));
	if ((ret = coalescing_pair(&hub, &tx, &b.rx, IVL_WAIT_INTERRUPT, 0)) < 0)
		goto out;
	if (pthread_create(&th, NULL, busy_receiver, &b) != 0) {
		ret = -EAGAIN;
		goto out;
	}
	usleep(20000); /* let the receiver settle into its wait */
	bench_pin_self(0);
	ivl_link_get_stats(tx, &st0);
	for (unsigned k = 0; k < bursts && ret >= 0; k++) {
		for (unsigned i = 0; i < per_burst && ret >= 0; i++) {
			ret = ivl_link_ring(tx, (uint16_t)ivl_link_id(b.rx), 0);
			for (uint64_t end = bench_now_ns() + gap_ns; bench_now_ns() < end;)
				;
		}
		/* Quiet: the receiver finishes and falls asleep. */
		usleep(2000);
	}
	ivl_link_get_stats(tx, &st);
	res->bursts = bursts;
	usleep(20000);
	atomic_store(&b.stop, 1);
	pthread_join(th, NULL);
	res->rings = st.rings - st0.rings;
	res->eventfd_writes = st.doorbells - st0.doorbells;
	res->batches = b.batches;
out:
	ivl_link_free(tx);
	ivl_link_free(b.rx);
	ivl_hub_free(hub);
	return ret < 0 ? ret : 0;
}

/* The baseline: one eventfd write per doorbell, receiver draining. */
struct raw_burst {
	int fd;
	_Atomic int stop;
};

static void *raw_receiver(void *p)
{
	struct raw_burst *r = p;

	bench_pin_self(1);
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed))
		ivl_eventfd_drain(r->fd, NULL);
	return NULL;
}

int bench_raw_burst(unsigned rings, uint64_t *ns)
{
	struct raw_burst r = { .fd = ivl_eventfd_new() };
	pthread_t th;
	uint64_t t0;

	if (r.fd < 0)
		return r.fd;
	if (pthread_create(&th, NULL, raw_receiver, &r) != 0) {
		close(r.fd);
		return -EAGAIN;
	}
	bench_pin_self(0);
	t0 = bench_now_ns();
	for (unsigned i = 0; i < rings; i++)
		ivl_eventfd_ring(r.fd);
	*ns = bench_now_ns() - t0;
	atomic_store(&r.stop, 1);
	pthread_join(th, NULL);
	close(r.fd);
	return 0;
}

/* The contended-RMW floor: one shared line, two threads, one RMW each. */
struct raw_rmw {
	_Alignas(64) _Atomic uint64_t line;
	_Alignas(64) _Atomic int stop;
	uint64_t taken;
};

static void *rmw_receiver(void *p)
{
	struct raw_rmw *r = p;

	bench_pin_self(1);
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed))
		if (atomic_load_explicit(&r->line, memory_order_relaxed) &&
		    atomic_exchange_explicit(&r->line, 0, memory_order_acquire))
			r->taken++;
	return NULL;
}

int bench_raw_rmw_burst(unsigned rings, uint64_t *ns)
{
	struct raw_rmw *r = aligned_alloc(64, sizeof(*r));
	pthread_t th;
	uint64_t t0;

	if (!r)
		return -ENOMEM;
	memset(r, 0, sizeof(*r));
	if (pthread_create(&th, NULL, rmw_receiver, r) != 0) {
		free(r);
		return -EAGAIN;
	}
	bench_pin_self(0);
	t0 = bench_now_ns();
	for (unsigned i = 0; i < rings; i++)
		atomic_fetch_or_explicit(&r->line, 1, memory_order_seq_cst);
	*ns = bench_now_ns() - t0;
	atomic_store(&r->stop, 1);
	pthread_join(th, NULL);
	free(r);
	return 0;
}

/* ---- (c) idle receiver CPU ---------------------------------------------- */

struct idle {
	struct ivl_link *rx;
	unsigned ms;
	uint64_t cpu_ns;
};

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *idle_receiver(void *p)
{
	struct idle *id = p;
	struct ivl_link_event ev[8];
	uint64_t end = bench_now_ns() + (uint64_t)id->ms * 1000000u, c0 = thread_cpu_ns();

	while (bench_now_ns() < end) {
		uint64_t left_ms = (end - bench_now_ns()) / 1000000u;
		ivl_link_wait(id->rx, ev, 8, (int)(left_ms ? left_ms : 1));
	}
	id->cpu_ns = thread_cpu_ns() - c0;
	return NULL;
}

int bench_link_idle(enum ivl_wait_mode mode, uint32_t spin_ns, unsigned ms, double *cpu_pct)
{
	struct ivl_hub *hub = NULL;
	struct idle id = { .ms = ms };
	pthread_t th;
	int ret;

	ret = ivl_hub_new(&hub, 1 << 20, 2, 1);
	if (ret < 0)
		return ret;
	if ((ret = ivl_hub_join(hub, "idle", &id.rx)) < 0)
		goto out;
	if ((ret = ivl_link_set_coalescing(id.rx, true)) < 0 ||
	    (ret = ivl_link_set_wait_mode(id.rx, mode, spin_ns)) < 0)
		goto out;
	if (pthread_create(&th, NULL, idle_receiver, &id) != 0) {
		ret = -EAGAIN;
		goto out;
	}
	pthread_join(th, NULL);
	*cpu_pct = 100.0 * (double)id.cpu_ns / ((double)ms * 1e6);
out:
	ivl_link_free(id.rx);
	ivl_hub_free(hub);
	return ret;
}
