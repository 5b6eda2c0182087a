/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The in-kernel API of ivlink_ivshmem.ko for other modules (the virtio
 * transport, the SDM driver): find a device, get its shared memory, take
 * over one of its MSI-X vectors, ring a peer.  docs/guest.md §6.3.
 *
 * Lifetime: ivl_ivshmem_get() takes a reference that keeps the structure
 * (and the kernel mapping of the region) alive until ivl_ivshmem_put().
 * When the PCI device is removed first, every call below fails with
 * -ENODEV, vector handlers are no longer called once ivl_ivshmem_alive()
 * turns false, and the region mapping no longer reaches the shared memory
 * (it reads whatever the bus returns): stop using it then.
 *
 * Clients that must know when the device goes away bind to it instead as
 * an auxiliary driver (<linux/auxiliary_bus.h>) with the id name
 * IVL_IVSHMEM_AUX_NAME: every device has an auxiliary device
 * "ivlink_ivshmem.region.<index>", and the driver core calls the client's
 * remove() before the device is removed (unplug, unbind or module unload),
 * while every call below still works.  Between its probe() and the return
 * of its remove(), ivl_ivshmem_from_aux() is valid without a reference.
 */
#ifndef IVLINK_IVSHMEM_KAPI_H
#define IVLINK_IVSHMEM_KAPI_H

#include <linux/types.h>

struct auxiliary_device;
struct ivl_ivshmem;

/* The auxiliary device id name in-kernel clients match. */
#define IVL_IVSHMEM_AUX_NAME "ivlink_ivshmem.region"

/* Called in hard interrupt context; may call ivl_ivshmem_ring(). */
typedef void (*ivl_ivshmem_handler_t)(void *ctx, unsigned int vector);

/* The device with node index @index (/dev/ivlink-ivshmem<index>), with a
 * reference; NULL when there is none or it is being removed. */
struct ivl_ivshmem *ivl_ivshmem_get(unsigned int index);
/* Drop the reference of ivl_ivshmem_get().  NULL is a no-op. */
void ivl_ivshmem_put(struct ivl_ivshmem *d);
/* The device of an auxiliary device a client was probed with. */
struct ivl_ivshmem *ivl_ivshmem_from_aux(struct auxiliary_device *adev);

bool ivl_ivshmem_alive(struct ivl_ivshmem *d);
/* The kernel mapping (write-back) of BAR2 and its size in bytes. */
void *ivl_ivshmem_region(struct ivl_ivshmem *d, u64 *size);
/* IVPosition now (0xffffffff: none), and the MSI-X vectors enabled. */
u32 ivl_ivshmem_position(struct ivl_ivshmem *d);
unsigned int ivl_ivshmem_vectors(struct ivl_ivshmem *d);

/*
 * Call @fn(@ctx, @vector) from the vector's interrupt handler, in addition
 * to what user space bound.  -EINVAL (no such vector), -EBUSY (a handler is
 * set), -ENODEV (removed).  ivl_ivshmem_free_vector() returns once @fn is
 * no longer running and will not be called again.  Process context.
 */
int ivl_ivshmem_request_vector(struct ivl_ivshmem *d, unsigned int vector,
			       ivl_ivshmem_handler_t fn, void *ctx);
void ivl_ivshmem_free_vector(struct ivl_ivshmem *d, unsigned int vector);

/* Write the Doorbell register: any context.  -ENODEV (removed),
 * -EOPNOTSUPP (ivshmem-plain), -EINVAL (@peer or @vector > 65535). */
int ivl_ivshmem_ring(struct ivl_ivshmem *d, u32 peer, u32 vector);

#endif
