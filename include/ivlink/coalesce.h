/* SPDX-License-Identifier: MIT */
/*
 * Doorbell coalescing (docs/protocol.md §3): the level-triggered per-peer
 * bitmask.  These operate on a peer-table entry in shared memory, which any
 * peer may scribble on: hostile values cost at most a spurious doorbell or
 * a missed one, which receivers bound by sleeping with a time-out.
 * Thread safety: lock-free; any number of senders, one receiver per entry.
 * Ownership: the entries are the caller's pointers into a mapped region
 * (ivl_shm_peer()); none may be NULL.  None of these calls can fail.
 */
#ifndef IVLINK_COALESCE_H
#define IVLINK_COALESCE_H

#include <stdint.h>

#include <ivlink/proto/shm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Sender: mark @vector pending in @target.  Returns 1 when a real doorbell
 * (eventfd write or Doorbell register) is needed, 0 when it is coalesced
 * into one the receiver has yet to handle, or the receiver is awake.
 * Vectors >= 64 have no bit and always need the doorbell. */
int ivl_coalesce_mark(struct ivl_shm_peer *target, unsigned vector);

/* Receiver: take and clear the pending bits (acquire: the data the senders
 * wrote before marking is visible afterwards). */
uint64_t ivl_coalesce_take(struct ivl_shm_peer *self);

/* Receiver about to block: publish ASLEEP, then re-check.  Returns the bits
 * that arrived meanwhile (taken; the entry is AWAKE again: do not block), or
 * 0 (block now: any later mark will ring). */
uint64_t ivl_coalesce_sleep(struct ivl_shm_peer *self);

/* Receiver runs (woke, or polls): publish AWAKE. */
void ivl_coalesce_wake(struct ivl_shm_peer *self);

/* Receiver stops coalescing: senders always ring again. */
void ivl_coalesce_off(struct ivl_shm_peer *self);

#ifdef __cplusplus
}
#endif
#endif
