/* SPDX-License-Identifier: MIT */
/*
 * Doorbell primitives on eventfds.  A doorbell vector is one eventfd:
 * ringing writes the 8-byte value 1, receiving reads until empty.
 * Thread safety: all functions are safe on the same fd from any thread.
 */
#ifndef IVLINK_EVENTFD_H
#define IVLINK_EVENTFD_H

#include <stdint.h>

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

#ifdef __cplusplus
}
#endif
#endif
