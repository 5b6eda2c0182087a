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
#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>

#include "core/internal.h"

IVL_EXPORT int ivl_coalesce_mark(struct ivl_shm_peer *t, unsigned vector)
{
	uint64_t bit, old;
	uint32_t w;

	if (vector >= 64)
		return 1;
	/* A receiver that does not coalesce never clears bits: do not set
	 * them, just ring.  Relaxed: a stale NONE only costs one extra ring. */
	w = __atomic_load_n(&t->waiting, __ATOMIC_RELAXED);
	if (w != IVL_WAITING_AWAKE && w != IVL_WAITING_ASLEEP)
		return 1;
	bit = 1ull << vector;
	/* seq_cst: releases the sender's data to ivl_coalesce_take()'s acquire,
	 * and orders before the load of waiting below (Dekker, see top). */
	old = __atomic_fetch_or(&t->pending, bit, __ATOMIC_SEQ_CST);
	if (old & bit)
		return 0; /* an earlier ring is still unhandled: it covers us */
	/* Pairs with the seq_cst store of ASLEEP in ivl_coalesce_sleep(). */
	w = __atomic_load_n(&t->waiting, __ATOMIC_SEQ_CST);
	return w != IVL_WAITING_AWAKE;
}

IVL_EXPORT uint64_t ivl_coalesce_take(struct ivl_shm_peer *self)
{
	/* Cheap check first: polling receivers call this in a loop, and a
	 * plain load keeps the line shared instead of bouncing it. */
	if (!__atomic_load_n(&self->pending, __ATOMIC_RELAXED))
		return 0;
	/* acquire: pairs with the senders' seq_cst fetch_or. */
	return __atomic_exchange_n(&self->pending, 0, __ATOMIC_ACQUIRE);
}

IVL_EXPORT uint64_t ivl_coalesce_sleep(struct ivl_shm_peer *self)
{
	uint64_t bits;

	/* Pairs with the sender's seq_cst load of waiting (Dekker). */
	__atomic_store_n(&self->waiting, IVL_WAITING_ASLEEP, __ATOMIC_SEQ_CST);
	bits = __atomic_load_n(&self->pending, __ATOMIC_SEQ_CST);
	if (!bits)
		return 0;
	__atomic_store_n(&self->waiting, IVL_WAITING_AWAKE, __ATOMIC_RELAXED);
	return __atomic_exchange_n(&self->pending, 0, __ATOMIC_ACQUIRE);
}

IVL_EXPORT void ivl_coalesce_wake(struct ivl_shm_peer *self)
{
	/* Relaxed: senders that still see ASLEEP only ring once more. */
	__atomic_store_n(&self->waiting, IVL_WAITING_AWAKE, __ATOMIC_RELAXED);
}

IVL_EXPORT void ivl_coalesce_off(struct ivl_shm_peer *self)
{
	__atomic_store_n(&self->waiting, IVL_WAITING_NONE, __ATOMIC_SEQ_CST);
}
