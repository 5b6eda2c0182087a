/* SPDX-License-Identifier: MIT */
/*
 * The ivlink shared-memory header and peer table: format, validate, look up
 * (layout: <ivlink/proto/shm.h>; normative text: docs/protocol.md §4).
 * Thread safety: the functions keep no state; the memory they work on is
 * shared with other processes and is treated as hostile when read.
 */
#ifndef IVLINK_SHM_H
#define IVLINK_SHM_H

#include <stdint.h>

#include <ivlink/proto/shm.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Format the ivlink header at the start of @base (@size bytes): zero the
 * header, fill in every field, set state READY last (release).
 * Errors: -EINVAL (@base NULL or not 64-byte aligned, vectors 0 or > 64,
 * max_peers 0 or > 65536), -ENOSPC (the header would not leave at least
 * one page of application area).
 */
int ivl_shm_format(void *base, uint64_t size, uint32_t max_peers, uint32_t vectors,
		   uint64_t epoch, uint32_t features);

/*
 * Check an untrusted header (read with acquire on state): magic, version,
 * READY state, sizes consistent with @size, table inside the header, header
 * page aligned and smaller than the region.  Returns 0 and a validated copy
 * of the fixed fields in *copy (may be NULL), -ENOENT if no ivlink header is
 * there (raw region, or @size smaller than a header), -EAGAIN if still
 * formatting (or rewritten while it was read), -ESHUTDOWN if CLOSED,
 * -EPROTO if it is present but inconsistent or of another version,
 * -EINVAL if @base is NULL or not 64-byte aligned.
 */
int ivl_shm_validate(const void *base, uint64_t size, struct ivl_shm_header *copy);

/* The peer entry for @id, or NULL if out of the validated table.  @valid
 * must be a copy filled by ivl_shm_validate() for this @base; the result
 * points into the shared memory (valid while it is mapped, written by
 * others: read it with __atomic builtins). */
struct ivl_shm_peer *ivl_shm_peer(void *base, const struct ivl_shm_header *valid, uint32_t id);

#ifdef __cplusplus
}
#endif
#endif
