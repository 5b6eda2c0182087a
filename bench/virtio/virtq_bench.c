/* SPDX-License-Identifier: MIT */
/*
 * One-way virtqueue throughput between two pinned threads, against the raw
 * primitives measured in the same run, interleaved round by round: a minimal
 * SPSC ring with the same data handling, and memcpy.
 *
 * What each contender does per message of S bytes (docs/PERFORMANCE.md):
 *  - producer (virtq driver / raw ring producer): copies its private S-byte
 *    message into a free buffer of the pool in the shared window (one memcpy
 *    of S bytes) and stores the sequence number over the buffer's first
 *    word, then publishes it (virtq: add_many + need_notify once per batch,
 *    or add per message with --one-call; buffers are taken back only when
 *    fewer than a batch are free, as the raw producer reads the tail);
 *  - consumer (virtq device / raw ring consumer): consumes the buffer in
 *    place, zero copy: sums every 64-bit word and checks the sum and the
 *    sequence number, then returns the buffer (virtq: pop_many, push_many
 *    and flush once per batch, or pop and push per message with
 *    --one-call).  --consume copy copies it out to a private buffer instead (a
 *    second memcpy; the reference stays one copy); --consume first reads
 *    only the sequence number (a diagnostic: the data never moves);
 *  - memcpy: one thread copies the same private message into the next
 *    buffer of the same pool and stamps it (one memcpy of S bytes per
 *    message, the same source and destination working set).
 *
 * Modes of the virtqueue: poll (the device never asks for kicks, both sides
 * spin), in-order (poll, with VIRTIO_F_IN_ORDER negotiated: the driver keeps
 * no free list and reads no used element), pool (in order and EVENT_IDX, the
 * driver's buffers a fixed pool added by count: ivl_virtq_pool_*, no iovec,
 * no token; the device never asks for a kick) and adaptive (EVENT_IDX; a
 * side that runs dry arms its event index and waits on its link in
 * IVL_WAIT_ADAPTIVE: spin 50 us, then sleep on a doorbell; the other side
 * rings through ivl_virtq_notify_link()).  The raw ring always polls: it is
 * the best a ring can do.
 *
 * Both rings publish (avail / head, used / tail) every min(32, pool / 4)
 * messages unless --batch says otherwise.
 *
 *   bench_virtq [--ms N] [--reps N] [--sizes 64,65536] [--pool-kib N]
 *               [--batch N] [--consume sum|copy|first] [--no-pin] [--one-call]
 * Exit 1 on a wrong message or a broken queue, never on timing.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ivlink/hub.h>
#include <ivlink/link.h>
#include <ivlink/mmio.h>
#include <ivlink/msi.h>
#include <ivlink/virtq.h>

#include "bench-util.h"
#include "primitives.h"

#define NUM 256
#define BATCH 32
#define MAXREPS 64
#define RING_BYTES 65536 /* window bytes before the buffer pool */

static int run_ms = 200, reps = 7, pool_kib = 2048, batch_opt;
static bool pin = true;
/* --one-call: one buffer per call on both sides (driver: ivl_virtq_add /
 * ivl_virtq_get_used; device: ivl_virtq_pop / ivl_virtq_push) instead of a
 * batch per call (ivl_virtq_add_many / ivl_virtq_get_used_many;
 * ivl_virtq_pop_many / ivl_virtq_push_many). */
static bool one_call;
/* What the consumer does with a message (--consume). */
static enum { C_SUM, C_COPY, C_FIRST } consume_how;
static const char *const consume_desc[] = {
    "reads the buffer in place, checks seq + sum of all words (1 memcpy per message)",
    "copies the buffer out, checks seq + sum of all words (2 memcpy per message)",
    "DIAGNOSTIC: reads only the first word (seq), the rest of the data never moves",
};

static void die(const char *what)
{
	fprintf(stderr, "bench_virtq: %s\n", what);
	exit(1);
}

/* An empty poll: after a while give the CPU away, so that on an
 * oversubscribed machine the thread we wait for can run (same policy for
 * every polling contender). */
static void idle(unsigned *spins)
{
	if (++*spins >= 256) {
		sched_yield();
		*spins = 0;
	}
}

static void pin_to(int cpu)
{
	if (pin)
		bench_pin_self(cpu);
}

/* The virtqueue contenders come first (NVQ of them). */
enum kind { VQ_POLL, VQ_ADAPT, VQ_IN_ORDER, VQ_POOL, RAW, MEMCPY, NKINDS, NVQ = RAW };
static const char *const kind_name[NKINDS] = {"virtq-poll", "virtq-adaptive", "virtq-in-order",
					      "virtq-pool", "raw-ring", "memcpy"};

struct run {
	char *win;
	uint64_t win_size;
	size_t msg;
	char *slots;	   /* the buffer pool: nslots buffers of msg bytes */
	unsigned nslots;   /* a power of two */
	uint64_t base_sum; /* sum of the message's words after the first */
	_Atomic bool stop;
	uint64_t produced;
	bool adaptive;
	struct ivl_link *la, *lb; /* driver's and device's links */
	struct ivl_virtq *drv, *dev;
	/* the consumer's progress, stored once per batch: its own cache
	 * line, away from what the producer reads for every message */
	_Alignas(64) _Atomic uint64_t consumed;
	/* raw ring: indices on their own cache lines */
	_Alignas(64) _Atomic uint64_t head;
	_Alignas(64) _Atomic uint64_t tail;
	_Alignas(64) char pad;
};

/* Both sides of both rings publish (avail / head, used / tail) after at most
 * BATCH messages and a quarter of the pool, so that large messages
 * pipeline instead of filling the pool first. */
static unsigned pub_batch(const struct run *r)
{
	if (batch_opt)
		return batch_opt < (int)r->nslots ? (unsigned)batch_opt : r->nslots;
	unsigned b = r->nslots / 4 < BATCH ? r->nslots / 4 : BATCH;
	return b ? b : 1;
}

/* ---- the data handling shared by every contender ------------------------ */

/* Producer: copy the private message into the buffer (1 memcpy), then stamp
 * the sequence number over its first word.  (Stamping the private message
 * first and copying it after defeats store forwarding: the copy's load then
 * waits for every earlier store to drain, the previous message's payload
 * included, and the harness itself, not the ring, serializes the cache
 * misses.) */
static void produce(char *dst, const char *msg, size_t n, uint64_t seq)
{
	memcpy(dst, msg, n);
	memcpy(dst, &seq, 8);
}

/* Two 64-bit lanes (SSE2, the x86-64 baseline); may_alias: the buffer is
 * plain bytes. */
typedef uint64_t u64x2 __attribute__((vector_size(16), aligned(8), may_alias));

/* Sum of the message's 64-bit words (n is a multiple of 32, the buffer
 * 8-byte aligned), in SIMD lanes so that reading, not adding, is what
 * costs. */
static uint64_t sum_words(const char *p, size_t n)
{
	u64x2 a = {0, 0}, b = {0, 0};
	for (size_t i = 0; i < n; i += 32) {
		a += *(const u64x2 *)(p + i);
		b += *(const u64x2 *)(p + i + 16);
	}
	a += b;
	return a[0] + a[1];
}

/* Consumer: read the whole buffer once (in place, or by copying it out),
 * check the sequence number and the sum of every word. */
static void consume(const struct run *r, char *priv, const char *buf, uint64_t expect)
{
	const char *p = buf;
	if (consume_how == C_FIRST) {
		uint64_t seq;
		memcpy(&seq, buf, 8);
		if (seq != expect)
			die("wrong message");
		return;
	}
	if (consume_how == C_COPY) {
		memcpy(priv, buf, r->msg);
		p = priv;
	}
	uint64_t seq;
	memcpy(&seq, p, 8);
	if (seq != expect || sum_words(p, r->msg) != r->base_sum + seq)
		die("wrong message");
}

/* ---- virtqueue -------------------------------------------------------------- */

/* A side that ran dry waits for the other's doorbell (adaptive mode). */
static void vq_sleep(struct ivl_virtq *q, struct ivl_link *l)
{
	struct ivl_link_event ev[8];
	int r = ivl_virtq_enable_notify(q);
	if (r == 0 && ivl_link_wait(l, ev, 8, 10) < 0)
		die("link wait");
	ivl_virtq_disable_notify(q);
}

static void *vq_consumer(void *arg)
{
	struct run *r = arg;
	pin_to(1);
	char *priv = aligned_alloc(64, r->msg);
	uint64_t expect = 0;
	static struct iovec iov[NUM][2];
	unsigned batch = pub_batch(r);
	unsigned spins = 0;
	uint16_t ida = (uint16_t)ivl_link_id(r->la);
	ivl_virtq_disable_notify(r->dev);
	struct ivl_virtq_elem e[NUM];
	uint16_t heads[NUM];
	for (unsigned i = 0; i < NUM; i++)
		e[i] = (struct ivl_virtq_elem){.iov = iov[i], .iov_max = 2};
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		int n = 0;
		if (one_call)
			while ((unsigned)n < batch && ivl_virtq_pop(r->dev, &e[n]) == 1)
				n++;
		else
			n = ivl_virtq_pop_many(r->dev, e, batch);
		if (n < 0)
			die("virtq: pop");
		for (int i = 0; i < n; i++) {
			if (e[i].iov[0].iov_len != r->msg || e[i].out_num != 1)
				die("virtq: wrong chain");
			consume(r, priv, e[i].iov[0].iov_base, expect);
			expect++;
			heads[i] = e[i].head;
			if (one_call && ivl_virtq_push(r->dev, e[i].head, 0) < 0)
				die("virtq: push");
		}
		if (!one_call && n > 0 && ivl_virtq_push_many(r->dev, heads, NULL, (unsigned)n) != n)
			die("virtq: push_many");
		if (n) {
			ivl_virtq_flush(r->dev);
			atomic_store_explicit(&r->consumed, expect, memory_order_relaxed);
			if (r->adaptive && ivl_virtq_notify_link(r->dev, r->lb, ida, 0) < 0)
				die("virtq: interrupt");
			spins = 0;
		} else if (r->adaptive) {
			vq_sleep(r->dev, r->lb);
		} else {
			idle(&spins);
		}
	}
	free(priv);
	return NULL;
}

static void vq_producer(struct run *r, char *msg, int64_t end)
{
	/* Free buffers in a FIFO: the one returned longest ago is reused
	 * first (as the raw ring does by construction). */
	int freelist[NUM], nfree = (int)r->nslots;
	unsigned fhead = 0, ftail = r->nslots;
	for (int i = 0; i < nfree; i++)
		freelist[i] = i;
	uint64_t seq = 0;
	unsigned iter = 0, spins = 0;
	uint16_t idb = (uint16_t)ivl_link_id(r->lb);
	unsigned batch = pub_batch(r);
	if (r->adaptive)
		ivl_virtq_disable_notify(r->drv);
	for (;;) {
		void *toks[NUM];
		int got = 0;
		/* Take buffers back only when fewer than a batch are free, as
		 * the raw producer reads the consumer's tail only then. */
		uint32_t len;
		if (nfree < (int)batch && one_call)
			while (ivl_virtq_get_used(r->drv, &toks[got], &len) == 1)
				got++;
		else if (nfree < (int)batch)
			got = ivl_virtq_get_used_many(r->drv, toks, NULL, NUM);
		if (got < 0)
			die("virtq: get_used_many");
		for (int i = 0; i < got; i++)
			freelist[ftail++ % NUM] = (int)(uintptr_t)toks[i] - 1, nfree++;
		if (nfree == 0) {
			if (r->adaptive)
				vq_sleep(r->drv, r->la);
			else
				idle(&spins);
		}
		struct iovec v[NUM];
		unsigned k = 0;
		for (; k < batch && nfree > 0; k++) {
			int s = freelist[fhead++ % NUM];
			nfree--;
			char *b = r->slots + (size_t)s * r->msg;
			produce(b, msg, r->msg, seq);
			v[k] = (struct iovec){b, r->msg};
			toks[k] = (void *)(uintptr_t)(s + 1);
			if (one_call && ivl_virtq_add(r->drv, &v[k], 1, NULL, 0, toks[k]) < 0)
				die("virtq: add failed");
			seq++;
		}
		if (!one_call && k && ivl_virtq_add_many(r->drv, v, k, false, toks) != (int)k)
			die("virtq: add_many failed");
		/* Publish the batch (one avail->idx store), and kick if the
		 * device asked for it (never in poll mode). */
		if (ivl_virtq_notify_link(r->drv, r->la, idb, 0) < 0)
			die("virtq: kick");
		if ((++iter & 63) == 0 && bu_now_ns() >= end)
			break;
	}
	r->produced = seq;
}

/* The buffer pool (ivl_virtq_pool_*, IN_ORDER): the pool's buffer i is the
 * run's slot i; the producer fills the next free ones and adds them by
 * count.  Same batching and take-back policy as vq_producer(). */
static void pool_producer(struct run *r, char *msg, int64_t end)
{
	uint64_t seq = 0;
	unsigned iter = 0, spins = 0, next, batch = pub_batch(r);
	uint16_t idb = (uint16_t)ivl_link_id(r->lb);
	int room = ivl_virtq_pool_room(r->drv, &next);
	if (room < 0)
		die("virtq: pool_room");
	for (;;) {
		if ((unsigned)room < batch) {
			int got = ivl_virtq_pool_get_used(r->drv, NULL, NULL, r->nslots);
			if (got < 0)
				die("virtq: pool_get_used");
			room += got;
		}
		if (room == 0)
			idle(&spins);
		unsigned k = (unsigned)room < batch ? (unsigned)room : batch;
		for (unsigned j = 0; j < k; j++, seq++)
			produce(r->slots + (size_t)((next + j) & (r->nslots - 1)) * r->msg, msg,
				r->msg, seq);
		if (k && ivl_virtq_pool_add(r->drv, NULL, k, false) != (int)k)
			die("virtq: pool_add failed");
		next = (next + k) & (r->nslots - 1);
		room -= (int)k;
		if (ivl_virtq_notify_link(r->drv, r->la, idb, 0) < 0)
			die("virtq: kick");
		if ((++iter & 63) == 0 && bu_now_ns() >= end)
			break;
	}
	r->produced = seq;
}

/* ---- raw SPSC ring ---------------------------------------------------------- */

static void *raw_consumer(void *arg)
{
	struct run *r = arg;
	pin_to(1);
	char *priv = aligned_alloc(64, r->msg);
	uint64_t t = 0, h = 0;
	unsigned spins = 0, batch = pub_batch(r);
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		/* Acquire: pairs with the producer's release of head.  Re-read
		 * only when caught up (as ivl_virtq_pop). */
		if (h == t)
			h = atomic_load_explicit(&r->head, memory_order_acquire);
		if (h == t) {
			idle(&spins);
			continue;
		}
		for (unsigned n = 0; t != h && n < batch; n++) {
			consume(r, priv, r->slots + (size_t)(t & (r->nslots - 1)) * r->msg, t);
			t++;
		}
		/* Release: the slots are read before the producer reuses them;
		 * pairs with the producer's acquire of tail. */
		atomic_store_explicit(&r->tail, t, memory_order_release);
		atomic_store_explicit(&r->consumed, t, memory_order_relaxed);
	}
	free(priv);
	return NULL;
}

static void raw_producer(struct run *r, char *msg, int64_t end)
{
	uint64_t h = 0, t = 0;
	unsigned iter = 0, spins = 0;
	unsigned batch = pub_batch(r);
	for (;;) {
		if (r->nslots - (h - t) < batch)
			t = atomic_load_explicit(&r->tail, memory_order_acquire);
		unsigned k = 0;
		while (k < batch && h - t < r->nslots) {
			produce(r->slots + (size_t)(h & (r->nslots - 1)) * r->msg, msg, r->msg, h);
			h++;
			k++;
		}
		if (k == 0)
			idle(&spins);
		atomic_store_explicit(&r->head, h, memory_order_release);
		if ((++iter & 63) == 0 && bu_now_ns() >= end)
			break;
	}
	r->produced = h;
}

/* ---- one measurement -------------------------------------------------------- */

/* Messages per second of contender @k over one --ms interval. */
static double measure(struct run *r, char *msg, enum kind k)
{
	atomic_store(&r->stop, false);
	atomic_store(&r->consumed, 0);
	atomic_store(&r->head, 0);
	atomic_store(&r->tail, 0);
	pin_to(0);
	if (k == MEMCPY) {
		uint64_t n = 0;
		int64_t t0 = bu_now_ns(), end = t0 + (int64_t)run_ms * 1000000;
		for (;;) {
			produce(r->slots + (n & (r->nslots - 1)) * r->msg, msg, r->msg, n);
			n++;
			if ((n & 63) == 0 && bu_now_ns() >= end)
				break;
		}
		int64_t t1 = bu_now_ns();
		return (double)n / ((double)(t1 - t0) / 1e9);
	}
	r->adaptive = k == VQ_ADAPT;
	if (k != RAW) {
		/* A pool has one buffer per ring entry: the ring is the pool's
		 * size. */
		struct ivl_virtq_opts o = {.role = IVL_VIRTQ_DRIVER,
					   .num = k == VQ_POOL ? r->nslots : NUM,
					   .init = true,
					   .defer_publish = true};
		if (r->adaptive)
			o.features = IVL_VIRTQ_F_EVENT_IDX;
		if (k == VQ_IN_ORDER || k == VQ_POOL)
			o.features = IVL_VIRTQ_F_IN_ORDER;
		/* The pool with EVENT_IDX as well: the driver's kick check then
		 * reads avail_event, which a polling device never writes,
		 * instead of used->flags, on the line of used->idx that the
		 * device's flush has just taken (a miss after the fence, every
		 * batch). */
		if (k == VQ_POOL)
			o.features |= IVL_VIRTQ_F_EVENT_IDX;
		ivl_virtq_layout_default(o.num, 0, 0, &o.layout);
		if (ivl_virtq_new(&r->drv, r->win, r->win_size, &o) < 0)
			die("virtq_new driver");
		if (k == VQ_POOL &&
		    ivl_virtq_pool_set(r->drv, (uint64_t)(r->slots - r->win), (uint32_t)r->msg) < 0)
			die("virtq_pool_set");
		o.role = IVL_VIRTQ_DEVICE;
		o.init = false;
		if (ivl_virtq_new(&r->dev, r->win, r->win_size, &o) < 0)
			die("virtq_new device");
	}
	pthread_t th;
	if (pthread_create(&th, NULL, k == RAW ? raw_consumer : vq_consumer, r))
		die("pthread_create");
	int64_t t0 = bu_now_ns(), end = t0 + (int64_t)run_ms * 1000000;
	if (k == RAW)
		raw_producer(r, msg, end);
	else if (k == VQ_POOL)
		pool_producer(r, msg, end);
	else
		vq_producer(r, msg, end);
	/* Count what the consumer got within the interval. */
	uint64_t got = atomic_load(&r->consumed);
	int64_t t1 = bu_now_ns();
	atomic_store(&r->stop, true);
	if (ivl_link_ring(r->la, (uint16_t)ivl_link_id(r->lb), 0) < 0)
		die("link ring");
	pthread_join(th, NULL);
	if (k != RAW) {
		if (ivl_virtq_broken(r->drv) || ivl_virtq_broken(r->dev))
			die("virtq broken");
		ivl_virtq_free(r->drv);
		ivl_virtq_free(r->dev);
		r->drv = r->dev = NULL;
	}
	return (double)got / ((double)(t1 - t0) / 1e9);
}

/* ---- set-up and report ------------------------------------------------------ */

static void setup_links(struct ivl_hub **hub, struct run *r, uint64_t need)
{
	uint64_t size = 1 << 20, app = 0;
	for (;;) {
		struct ivl_link_event ev[8];
		if (ivl_hub_new(hub, size, 2, 1) < 0 || ivl_hub_join(*hub, "driver", &r->la) < 0 ||
		    ivl_hub_join(*hub, "device", &r->lb) < 0)
			die("local hub");
		r->win = ivl_link_app_area(r->la, &app);
		if (app >= need) {
			while (ivl_link_process(r->la, ev, 8) > 0 ||
			       ivl_link_process(r->lb, ev, 8) > 0)
				;
			if (ivl_link_set_wait_mode(r->la, IVL_WAIT_ADAPTIVE, 0) < 0 ||
			    ivl_link_set_wait_mode(r->lb, IVL_WAIT_ADAPTIVE, 0) < 0)
				die("wait mode");
			r->win_size = app;
			return;
		}
		ivl_link_free(r->la);
		ivl_link_free(r->lb);
		ivl_hub_free(*hub);
		size <<= 1;
	}
}

static void bench_size(size_t msgsz)
{
	struct run *r = aligned_alloc(64, sizeof(*r));
	if (!r)
		die("out of memory");
	memset(r, 0, sizeof(*r));
	r->msg = msgsz;
	/* The buffer pool: up to one buffer per ring entry, at most
	 * --pool-kib in all (the same pool for every contender). */
	r->nslots = NUM;
	while (r->nslots > 1 && (uint64_t)r->nslots * msgsz > (uint64_t)pool_kib * 1024)
		r->nslots /= 2;
	struct ivl_hub *hub;
	setup_links(&hub, r, RING_BYTES + (uint64_t)r->nslots * msgsz);
	r->slots = r->win + RING_BYTES;
	memset(r->slots, 0, (size_t)r->nslots * msgsz);
	/* The producer's private message: a pattern, its first word the
	 * sequence number. */
	char *msg = aligned_alloc(64, msgsz);
	if (!msg)
		die("out of memory");
	for (size_t i = 0; i < msgsz; i++)
		msg[i] = (char)(i * 7 + 3);
	r->base_sum = sum_words(msg, msgsz);
	uint64_t w0;
	memcpy(&w0, msg, 8);
	r->base_sum -= w0;

	double v[NKINDS][MAXREPS], x_raw[NVQ][MAXREPS], x_memcpy[NVQ][MAXREPS];
	/* Interleaved, so that drift in machine load hits every contender. */
	for (int i = 0; i < reps; i++) {
		for (int k = 0; k < NKINDS; k++)
			v[k][i] = measure(r, msg, (enum kind)k);
		for (int k = 0; k < NVQ; k++) {
			x_raw[k][i] = v[k][i] / v[RAW][i];
			x_memcpy[k][i] = v[k][i] / v[MEMCPY][i];
		}
	}
	printf("\n%zu B messages, pool %u x %zu B = %zu KiB, publish every %u\n", msgsz, r->nslots,
	       msgsz, (size_t)r->nslots * msgsz / 1024, pub_batch(r));
	printf("  %-15s %14s %10s %12s %12s %10s %10s\n", "contender", "msg/s median", "GB/s",
	       "min msg/s", "max msg/s", "/ raw", "/ memcpy");
	for (int k = 0; k < NKINDS; k++) {
		double s[MAXREPS], lo = v[k][0], hi = v[k][0];
		for (int i = 0; i < reps; i++) {
			s[i] = v[k][i];
			lo = v[k][i] < lo ? v[k][i] : lo;
			hi = v[k][i] > hi ? v[k][i] : hi;
		}
		double m = bu_median(s, (size_t)reps);
		printf("  %-15s %14.0f %10.2f %12.0f %12.0f", kind_name[k], m, m * msgsz / 1e9, lo,
		       hi);
		if (k < NVQ)
			printf(" %9.1f%% %9.1f%%", 100 * bu_median(x_raw[k], (size_t)reps),
			       100 * bu_median(x_memcpy[k], (size_t)reps));
		printf("\n");
	}
	ivl_link_free(r->la);
	ivl_link_free(r->lb);
	ivl_hub_free(hub);
	free(msg);
	free(r);
}

int main(int argc, char **argv)
{
	size_t sizes[8] = {64, 65536};
	int nsizes = 2;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--ms") && i + 1 < argc)
			run_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--pool-kib") && i + 1 < argc)
			pool_kib = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
			batch_opt = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--consume") && i + 1 < argc &&
			 !strcmp(argv[i + 1], "copy"))
			consume_how = C_COPY, i++;
		else if (!strcmp(argv[i], "--consume") && i + 1 < argc &&
			 !strcmp(argv[i + 1], "first"))
			consume_how = C_FIRST, i++;
		else if (!strcmp(argv[i], "--consume") && i + 1 < argc &&
			 !strcmp(argv[i + 1], "sum"))
			consume_how = C_SUM, i++;
		else if (!strcmp(argv[i], "--no-pin"))
			pin = false;
		else if (!strcmp(argv[i], "--one-call"))
			one_call = true;
		else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
			nsizes = 0;
			for (char *s = strtok(argv[++i], ","); s && nsizes < 8;
			     s = strtok(NULL, ","))
				sizes[nsizes++] = strtoul(s, NULL, 0);
		} else {
			fprintf(stderr, "usage: bench_virtq [--ms N] [--reps N] [--sizes a,b] "
					"[--pool-kib N] [--batch N] [--consume sum|copy|first] "
					"[--no-pin] [--one-call]\n");
			return 2;
		}
	}
	if (run_ms < 1 || reps < 1 || reps > MAXREPS || pool_kib < 1 || nsizes < 1 || batch_opt < 0)
		die("bad --ms, --reps, --pool-kib, --batch or --sizes");
	for (int i = 0; i < nsizes; i++)
		if (sizes[i] < 64 || sizes[i] > (1u << 20) || sizes[i] % 32)
			die("sizes must be multiples of 32 in 64..1048576");
	printf("# bench_virtq: %s, %ld cpus, %s, load %.2f\n", bu_cpu_model(), bu_nproc(),
	       bu_kernel(), bu_loadavg());
	printf("# ring %d, %d rounds x %d ms interleaved, threads %s\n", NUM, reps, run_ms,
	       pin ? "pinned to 2 cpus" : "not pinned");
	printf("# producer: 1 memcpy of its private message into a pool buffer, then stamps seq\n"
	       "#           in it; virtq driver: %s\n"
	       "# consumer: %s; virtq device: %s\n"
	       "# memcpy:   1 thread, the same memcpy + stamp into the next buffer of the same\n"
	       "#           pool (same source, same destination working set)\n"
	       "# virtq-poll: no notifications; virtq-adaptive: EVENT_IDX + link doorbells,\n"
	       "#           spin 50 us then sleep; virtq-in-order: poll with VIRTIO_F_IN_ORDER;\n"
	       "#           virtq-pool: in order with EVENT_IDX, a pool of fixed buffers added\n"
	       "#           by count (ivl_virtq_pool_*); raw-ring: always polls\n"
	       "# ratios: median over rounds of (virtq / contender of the same round)\n",
	       one_call ? "add / get_used per buffer (--one-call)"
			: "add_many / get_used_many per batch",
	       consume_desc[consume_how],
	       one_call ? "pop / push per buffer" : "pop_many / push_many per batch");
	for (int i = 0; i < nsizes; i++)
		bench_size(sizes[i]);
	return 0;
}
