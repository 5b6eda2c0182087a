/* SPDX-License-Identifier: MIT */
/*
 * Doorbell primitives on eventfds.  A doorbell vector is one eventfd:
 * ringing writes the 8-byte value 1, receiving reads until empty.
 * Thread safety: all functions are safe on the same fd from any thread.
 */
#ifndef IVLINK_NOTIFY_H
#define IVLINK_NOTIFY_H

#include <stdint.h>

#include <ivlink/proto.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A new eventfd with EFD_CLOEXEC | EFD_NONBLOCK; returns the fd or -errno. */
int ivl_eventfd_new(void);

/* Ring: write 1.  A full counter (EAGAIN) already means "pending" and counts
 * as success.  Returns 0 or -errno (-EBADF, -EINVAL for a non-eventfd...). */
int ivl_eventfd_ring(int fd);

/* Consume all pending rings of a non-blocking eventfd.  Returns 1 if it was
 * rung (and stores the counter in *count if count is not NULL), 0 if not,
 * or -errno. */
int ivl_eventfd_drain(int fd, uint64_t *count);

/*
 * Doorbell coalescing (docs/protocol.md §3): the level-triggered per-peer
 * bitmask.  These operate on a peer-table entry in shared memory, which any
 * peer may scribble on: hostile values cost at most a spurious doorbell or
 * a missed one, which receivers bound by sleeping with a time-out.
 * Thread safety: lock-free; any number of senders, one receiver per entry.
 */

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
