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

/* Pin the calling thread to @cpu modulo the CPUs we may use; best effort. */
static inline void bench_pin_self(int cpu)
{
	cpu_set_t set;
	int n = 0, i;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return;
	for (i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set) && n++ == cpu % CPU_COUNT(&set)) {
			CPU_ZERO(&set);
			CPU_SET(i, &set);
			sched_setaffinity(0, sizeof(set), &set);
			return;
		}
}

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
