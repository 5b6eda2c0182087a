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

/* A new eventfd with EFD_CLOEXEC | EFD_NONBLOCK.  Returns the fd (the
 * caller's: close() it) or -errno of eventfd(2): -EMFILE, -ENFILE,
 * -ENOMEM, -ENODEV. */
int ivl_eventfd_new(void);

/* Ring: write 1 (retried on EINTR).  A full counter (EAGAIN) already
 * means "pending" and counts as success.  @fd stays the caller's.
 * Returns 0 or -errno of write(2) (-EBADF, -EINVAL for a non-eventfd, ...),
 * -EIO for a short write (@fd is no eventfd). */
int ivl_eventfd_ring(int fd);

/* Consume all pending rings of a non-blocking eventfd (one read: the whole
 * counter).  Returns 1 if it was rung (and stores the counter in *count if
 * count is not NULL), 0 if not (*count = 0), or -errno of read(2) (-EBADF,
 * ...), -EIO for a short read (@fd is no eventfd).  On a blocking fd that
 * was not rung the call blocks. */
int ivl_eventfd_drain(int fd, uint64_t *count);

#ifdef __cplusplus
}
#endif
#endif
