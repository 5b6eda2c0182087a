/* SPDX-License-Identifier: MIT */
/*
 * Level-triggered doorbell coalescing (docs/protocol.md §3, after Arnd
 * Bergmann's review of the ivshmem proposal).
 *
 * The lost-wakeup argument is the Dekker pattern, all on seq_cst operations:
 *   sender:   fetch_or(pending, bit)   then load(waiting)
 *   receiver: store(waiting, ASLEEP)   then load(pending)
 * In the single total order of seq_cst operations one of the two loads comes
 * after the other side's write: either the sender sees ASLEEP and rings, or
 * the receiver sees the bit and does not block.
 */
#include <ivlink/notify.h>

#include "core/internal.h"

IVL_EXPORT int ivl_coalesce_mark(struct ivl_shm_peer *t, unsigned vector)
{
	uint64_t bit, old;
	uint32_t w;

	if (vector >= 64)
		return 1;
	/* A receiver that does not coalesce never clears bits: do not set
	 * them, just ring.  Relaxed: a stale NONE only costs one extra ring. */
	w = atomic_load_explicit(&t->waiting, memory_order_relaxed);
	if (w != IVL_WAITING_AWAKE && w != IVL_WAITING_ASLEEP)
		return 1;
	bit = 1ull << vector;
	/* seq_cst: releases the sender's data to ivl_coalesce_take()'s acquire,
	 * and orders before the load of waiting below (Dekker, see top). */
	old = atomic_fetch_or_explicit(&t->pending, bit, memory_order_seq_cst);
	if (old & bit)
		return 0; /* an earlier ring is still unhandled: it covers us */
	/* Pairs with the seq_cst store of ASLEEP in ivl_coalesce_sleep(). */
	w = atomic_load_explicit(&t->waiting, memory_order_seq_cst);
	return w != IVL_WAITING_AWAKE;
}

IVL_EXPORT uint64_t ivl_coalesce_take(struct ivl_shm_peer *self)
{
	/* Cheap check first: polling receivers call this in a loop, and a
	 * plain load keeps the line shared instead of bouncing it. */
	if (!atomic_load_explicit(&self->pending, memory_order_relaxed))
		return 0;
	/* acquire: pairs with the senders' seq_cst fetch_or. */
	return atomic_exchange_explicit(&self->pending, 0, memory_order_acquire);
}

IVL_EXPORT uint64_t ivl_coalesce_sleep(struct ivl_shm_peer *self)
{
	uint64_t bits;

	/* Pairs with the sender's seq_cst load of waiting (Dekker). */
	atomic_store_explicit(&self->waiting, IVL_WAITING_ASLEEP, memory_order_seq_cst);
	bits = atomic_load_explicit(&self->pending, memory_order_seq_cst);
	if (!bits)
		return 0;
	atomic_store_explicit(&self->waiting, IVL_WAITING_AWAKE, memory_order_relaxed);
	return atomic_exchange_explicit(&self->pending, 0, memory_order_acquire);
}

IVL_EXPORT void ivl_coalesce_wake(struct ivl_shm_peer *self)
{
	/* Relaxed: senders that still see ASLEEP only ring once more. */
	atomic_store_explicit(&self->waiting, IVL_WAITING_AWAKE, memory_order_relaxed);
}

IVL_EXPORT void ivl_coalesce_off(struct ivl_shm_peer *self)
{
	atomic_store_explicit(&self->waiting, IVL_WAITING_NONE, memory_order_seq_cst);
}
