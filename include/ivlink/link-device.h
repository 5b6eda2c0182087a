/* SPDX-License-Identifier: MIT */
/*
 * An ivshmem device model (<ivlink/ivshmem.h>) whose server connection is
 * a link: what a VMM or simulator embeds to give its guest an
 * ivshmem-doorbell device on an ivlink server.  Implemented in the link
 * layer (src/link/devmodel.c); docs/device.md.
 *
 * Thread safety: as the model's (<ivlink/ivshmem.h>): every call from any
 * thread, except ivl_link_device_free(); ivl_link_device_deliver() may run
 * in one thread while vCPU threads access the model's registers.
 */
#ifndef IVLINK_LINK_DEVICE_H
#define IVLINK_LINK_DEVICE_H

#include <stddef.h>

#include <ivlink/ivshmem.h>
#include <ivlink/link.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ivl_link_device;

struct ivl_link_device_opts {
	enum ivl_ivshmem_irq_mode mode;
	unsigned vectors; /* 0: the link's vectors (at most 64) */
	/* Interrupts of the device (see struct ivl_ivshmem_ops.irq). */
	void (*irq)(void *ctx, enum ivl_ivshmem_irq_kind kind, unsigned arg);
	void *ctx;
};

/*
 * A device whose server connection is @link (typically ivl_link_host_new()):
 * BAR2 is the link's region, IVPosition its ID (ready at once), a Doorbell
 * write becomes a plain doorbell to that peer (no coalescing: the guest's
 * driver does its own, as against QEMU), and a peer or vector the link does
 * not know is dropped.  The link stays the caller's: it must outlive the
 * device, and its DOORBELL events are handed to ivl_link_device_deliver().
 * Errors: -EINVAL (NULL argument, no irq, bad mode, vectors > 64),
 * -ENOMEM.  *out is the caller's (ivl_link_device_free()).
 */
int ivl_link_device_new(struct ivl_link_device **out, struct ivl_link *link,
		     const struct ivl_link_device_opts *opts);
/* The model, to route BAR0 accesses to and to set MSI-X state on (owned by
 * the device, valid until ivl_link_device_free(); NULL for NULL). */
struct ivl_ivshmem *ivl_link_device_model(const struct ivl_link_device *ld);
/* Feed events the caller got from ivl_link_process()/_wait() on the
 * backing link: each DOORBELL goes to ivl_ivshmem_doorbell(); others
 * are ignored.  Returns the number of interrupts raised or latched, or
 * -EINVAL (NULL @ld, NULL @ev with @n > 0).  Any thread. */
int ivl_link_device_deliver(struct ivl_link_device *ld, const struct ivl_link_event *ev, size_t n);
/* NULL is a no-op; the link is not freed. */
void ivl_link_device_free(struct ivl_link_device *ld);

#ifdef __cplusplus
}
#endif
#endif
