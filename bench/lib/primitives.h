/* SPDX-License-Identifier: MIT */
/* Raw wake-up primitives and small timing helpers shared by the benchmarks. */
#ifndef IVL_BENCH_PRIMITIVES_H
#define IVL_BENCH_PRIMITIVES_H

#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* A one-bit wake-up channel in each direction between two threads:
 * signal(side) wakes the thread that waits on the same side. */
struct bench_prim {
	const char *name;
	int (*setup)(void **ctx);
	void (*signal)(void *ctx, int side);
	void (*wait)(void *ctx, int side);
	void (*teardown)(void *ctx);
};

extern const struct bench_prim bench_prims[]; /* NULL-name terminated */

/* Ping-pong @iters round trips; samples[i] = ns of round trip i. */
int bench_prim_run(const struct bench_prim *prim, unsigned iters, uint64_t *samples);

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Pin the calling thread to the @cpu-th CPU (modulo their number) of the
 * CPUs the process was allowed at start-up; best effort.  (Not the calling
 * thread's current mask: a thread created by a pinned thread inherits its
 * single CPU, and both ends of a ping-pong would share it.) */
void bench_pin_self(int cpu);

static int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts @v in place; returns the @pct percentile (0..100). */
static inline uint64_t bench_percentile(uint64_t *v, unsigned n, double pct)
{
	unsigned idx;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), bench_cmp_u64);
	idx = (unsigned)((pct / 100.0) * (n - 1) + 0.5);
	return v[idx < n ? idx : n - 1];
}

#endif
