/* SPDX-License-Identifier: MIT */
/* The doorbell benchmark's measurements, shared by bench_doorbell and
 * `ivlink bench`. */
#ifndef IVL_BENCH_DOORBELL_H
#define IVL_BENCH_DOORBELL_H

#include <stdint.h>

#include <ivlink/link.h>

struct bench_burst_result {
	uint64_t rings, ns, eventfd_writes, received, doorbells_before;
};

/* Round trips between two local links in @mode; samples[i] in ns. */
int bench_link_roundtrip(enum ivl_wait_mode mode, uint32_t spin_ns, unsigned iters,
			 uint64_t *samples);
/* @rings doorbells as fast as possible to a receiver in @mode. */
int bench_link_burst(enum ivl_wait_mode mode, uint32_t spin_ns, unsigned rings,
		     struct bench_burst_result *res);
struct bench_busy_result {
	uint64_t bursts, rings, eventfd_writes, batches;
};

/* A receiver in INTERRUPT mode that works @work_ns on every batch of
 * events; the sender rings @per_burst times @gap_ns apart (longer than the
 * work, so it keeps ringing while the receiver works), then pauses long
 * enough for the receiver to fall asleep; @bursts times.  The first ring
 * of a burst must wake the receiver (one eventfd write); every other write
 * is a ring made while the receiver was busy (docs/protocol.md §3, "the
 * bit stays set until the receiver is done"). */
int bench_link_busy(unsigned bursts, unsigned per_burst, unsigned gap_ns, unsigned work_ns,
		    struct bench_busy_result *res);
/* The same with one eventfd write per doorbell. */
int bench_raw_burst(unsigned rings, uint64_t *ns);
/* The floor of any doorbell to a busy receiver that shares memory: the sender
 * does @rings seq_cst atomic fetch_or on one cache line while the receiver
 * thread, on the other CPU, takes the bits with an atomic exchange whenever
 * it sees them set (what ivl_coalesce_mark() / ivl_coalesce_take() do, with
 * nothing else around them). */
int bench_raw_rmw_burst(unsigned rings, uint64_t *ns);
/* CPU share (percent of one CPU) of a receiver waiting @ms with no traffic. */
int bench_link_idle(enum ivl_wait_mode mode, uint32_t spin_ns, unsigned ms, double *cpu_pct);

/* The whole suite: prints a table, or JSON when @json.  0 or -errno. */
int bench_doorbell_main(int argc, char **argv);

#endif
