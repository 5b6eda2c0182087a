/* SPDX-License-Identifier: MIT */
/*
 * MSI vectors with mask/pending bits and the event -> vector map of the
 * virtio-mmio MSI proposal (seed 004; docs/virtio.md §3), in sharing and
 * non-sharing modes.  Thread safety: one table is used by one thread at a
 * time; the deliver callback runs on the calling thread, inside the call.
 */
#ifndef IVLINK_MSI_H
#define IVLINK_MSI_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IVL_MSI_NO_VECTOR 0xffffffffu

/* A vector's message: ivlink reads address as the destination peer and data
 * as the doorbell vector. */
struct ivl_msi_vector {
	uint64_t address;
	uint32_t data;
	bool masked;
	bool pending;
};

/* Deliver one message; a negative return leaves the vector pending. */
typedef int ivl_msi_deliver_fn(void *opaque, uint32_t vector, uint64_t address, uint32_t data);

struct ivl_msi;

/*
 * A table of @nvec vectors (1..2048) for a device with @nqueues queues.
 * Non-sharing (@sharing false): vector 0 is the configuration change, vector
 * n is queue n-1, fixed, so @nvec must exceed @nqueues (seed 004: "a number
 * of vectors greater than the maximum number of virtqueues"; fewer would
 * leave queues without an interrupt, so it is refused, never accepted and
 * silently lossy).  Sharing: every event starts unmapped (NO_VECTOR) and
 * @nvec must be at least 2 (seed 004).  Starts disabled, every vector
 * unmasked, zero.  Errors: -EINVAL (including those vector counts, NULL
 * @out), -ENOMEM.  @deliver (may be NULL: deliveries then succeed and go
 * nowhere) and @opaque are borrowed.  *out is the caller's
 * (ivl_msi_free(); NULL is a no-op).
 */
int ivl_msi_new(struct ivl_msi **out, unsigned nvec, unsigned nqueues, bool sharing,
		ivl_msi_deliver_fn *deliver, void *opaque);
void ivl_msi_free(struct ivl_msi *m);

/* Getters and switches cannot fail (0 / false for NULL; NULL is ignored). */
unsigned ivl_msi_num(const struct ivl_msi *m);
bool ivl_msi_sharing(const struct ivl_msi *m);
bool ivl_msi_enabled(const struct ivl_msi *m);
void ivl_msi_enable(struct ivl_msi *m);
/* Disabling keeps the table (and pending bits). */
void ivl_msi_disable(struct ivl_msi *m);
/* Device reset: disabled, table zeroed, maps back to their start (sharing:
 * all unmapped; non-sharing: the fixed map). */
void ivl_msi_reset(struct ivl_msi *m);

/* The per-vector calls (configure, mask, get into the caller's @out).
 * Returns 0.  Errors: -EINVAL (NULL argument, vector >= num). */
int ivl_msi_configure(struct ivl_msi *m, uint32_t vector, uint64_t address, uint32_t data);
int ivl_msi_mask(struct ivl_msi *m, uint32_t vector);
int ivl_msi_get(const struct ivl_msi *m, uint32_t vector, struct ivl_msi_vector *out);
/* Unmask; a pending message is delivered now when MSI is enabled (once).
 * Returns 1 if delivered, 0 if not, or -errno: -EINVAL (as above), or the
 * callback's error (the vector stays pending). */
int ivl_msi_unmask(struct ivl_msi *m, uint32_t vector);

/*
 * A ready-made ivl_msi_deliver_fn for @opaque = a struct ivl_link *: rings
 * doorbell @data of peer @address (docs/virtio.md, MSI).  Errors: -EINVAL
 * (address or data beyond 16 bits), and those of ivl_link_ring().
 */
int ivl_msi_link_deliver(void *opaque, uint32_t vector, uint64_t address, uint32_t data);

/* Map an event to a vector.  Returns 0.  Errors: -EINVAL (NULL @m;
 * @vector neither < num nor IVL_MSI_NO_VECTOR; @queue >= nqueues), -EPERM
 * (below).  @vector < num or IVL_MSI_NO_VECTOR (unmap).  Sharing mode: any vector.
 * Non-sharing mode (seed 004: "Device MUST support unmapping any event
 * type"): only IVL_MSI_NO_VECTOR (unmap) or the event's fixed vector (map it
 * back); any other vector is -EPERM.  An unmapped event raises nothing
 * (ivl_msi_raise_*() return -ENOENT): the driver asked not to be
 * interrupted for it. */
int ivl_msi_map_config(struct ivl_msi *m, uint32_t vector);
int ivl_msi_map_queue(struct ivl_msi *m, unsigned queue, uint32_t vector);
/* The vector of an event, or IVL_MSI_NO_VECTOR (also for NULL or a bad
 * queue). */
uint32_t ivl_msi_config_vector(const struct ivl_msi *m);
uint32_t ivl_msi_queue_vector(const struct ivl_msi *m, unsigned queue);

/*
 * Raise an event: find its vector and deliver, or record it pending when
 * the vector is masked.  Returns 1 delivered, 0 pending, or -errno:
 * -EAGAIN (MSI disabled: use the single interrupt), -ENOENT (the event has
 * no vector), -EINVAL (bad queue), or the callback's error (left pending).
 */
int ivl_msi_raise_config(struct ivl_msi *m);
int ivl_msi_raise_queue(struct ivl_msi *m, unsigned queue);

#ifdef __cplusplus
}
#endif
#endif
