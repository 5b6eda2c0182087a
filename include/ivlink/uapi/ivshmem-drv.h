/* SPDX-License-Identifier: (GPL-2.0-only WITH Linux-syscall-note) OR MIT */
/*
 * The user ABI of ivlink_ivshmem.ko, the guest kernel driver of the ivshmem
 * PCI device (1af4:1110).  Normative text: docs/guest.md §6.
 *
 * One character device per PCI device, /dev/ivlink-ivshmemN (mode 0600).
 *
 *   ioctl(IVL_DRV_GET_INFO)     IVPosition, region size, vectors, revision
 *   ioctl(IVL_DRV_SET_EVENTFD)  bind (fd >= 0) or unbind (fd = -1) an eventfd
 *                               to one MSI-X vector, as VFIO_DEVICE_SET_IRQS
 *   ioctl(IVL_DRV_RING)         write the Doorbell register
 *   read(8 bytes) / poll()      the vectors that fired since this open file
 *                               last read (a __u64 mask, vector v = bit v)
 *   mmap(offset 0 .. size)      all or part of BAR2 (the shared memory)
 *   mmap(IVL_DRV_MMAP_REGS)     the page holding BAR0 (registers), when
 *                               IVL_DRV_INFO_REGS_MMAP is set
 *
 * Errors (errno of the call), besides EFAULT for a bad user pointer:
 *   GET_INFO     EINVAL (argsz smaller than struct ivl_drv_info)
 *   SET_EVENTFD  EINVAL (vector >= vectors, fd < -1), EBUSY (another open
 *                file owns that vector), EBADF/EINVAL (fd is no eventfd)
 *   RING         EOPNOTSUPP (ivshmem-plain: no Doorbell), EINVAL (peer or
 *                vector above 65535)
 *   read         EINVAL (fewer than 8 bytes), EAGAIN (O_NONBLOCK, nothing
 *                fired), EINTR (a signal; nothing lost)
 *   mmap         EINVAL (not MAP_SHARED, beyond BAR2, the BAR0 page when it
 *                cannot be mapped or with more than one page)
 *   other ioctls ENOTTY
 * Ownership: a bound eventfd is referenced by the driver until it is
 * unbound or the binding file is closed; the pending mask is per open file.
 * Thread safety: every call may come from any thread; the driver locks.
 *
 * After the device is removed (hot-unplug) every call fails with ENODEV,
 * poll() reports POLLHUP | POLLERR, and existing mappings read all-ones
 * and swallow writes (a dummy page) instead of raising SIGBUS.
 *
 * Only <linux/types.h>, <linux/ioctl.h> and ivlink's wire formats: the
 * same header compiles in the kernel module, in userspace C11 and in C++.
 */
#ifndef IVLINK_UAPI_IVSHMEM_DRV_H
#define IVLINK_UAPI_IVSHMEM_DRV_H

#include <linux/ioctl.h>
#include <linux/types.h>

#include <ivlink/proto/ivshmem.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on an incompatible change; GET_INFO reports it. */
#define IVL_DRV_ABI_VERSION 1

/* The kernel module's name (/sys/bus/pci/drivers/<this>). */
#define IVL_DRV_NAME "ivlink_ivshmem"
/* Device nodes are /dev/<IVL_DRV_NODE_PREFIX>N. */
#define IVL_DRV_NODE_PREFIX "ivlink-ivshmem"

/* Vectors the driver handles at most: one bit each in the pending mask. */
#define IVL_DRV_MAX_VECTORS 64

/* The mmap offset of the BAR0 page; BAR2 is at offset 0.  Page aligned,
 * above any BAR2 the driver accepts (< 2^40 bytes). */
#define IVL_DRV_MMAP_REGS (1ULL << 40)

/* BAR0 registers: IVL_IVSHMEM_* of <ivlink/proto/ivshmem.h>. */

/* ivl_drv_info.flags */
#define IVL_DRV_INFO_DOORBELL (1u << 0)	  /* ivshmem-doorbell (MSI-X) */
#define IVL_DRV_INFO_REGS_MMAP (1u << 1)  /* the BAR0 page can be mmap'ed */

/* IVPosition when the device has none (ivshmem-plain, not connected). */
#define IVL_DRV_NO_POSITION 0xffffffffu

struct ivl_drv_info {
	__u32 argsz;	   /* in: sizeof(struct ivl_drv_info) */
	__u32 abi_version; /* out: IVL_DRV_ABI_VERSION */
	__u32 flags;	   /* out: IVL_DRV_INFO_* */
	__u32 ivposition;  /* out: IVPosition read now (or NO_POSITION) */
	__u64 region_size; /* out: BAR2 bytes */
	__u32 vectors;	   /* out: MSI-X vectors enabled (0: ivshmem-plain) */
	__u32 revision;	   /* out: PCI revision ID */
	__u32 regs_offset; /* out: BAR0's offset inside its mmap'ed page */
	__u32 reserved;	   /* out: 0 */
};

struct ivl_drv_eventfd {
	__u32 vector; /* < ivl_drv_info.vectors */
	__s32 fd;     /* an eventfd, or -1 to unbind */
};

struct ivl_drv_ring {
	__u32 peer;   /* 0..65535 */
	__u32 vector; /* 0..65535: the device drops what the peer lacks */
};

#define IVL_DRV_IOC_TYPE 0xB7
#define IVL_DRV_GET_INFO _IOWR(IVL_DRV_IOC_TYPE, 0x00, struct ivl_drv_info)
#define IVL_DRV_SET_EVENTFD _IOW(IVL_DRV_IOC_TYPE, 0x01, struct ivl_drv_eventfd)
#define IVL_DRV_RING _IOW(IVL_DRV_IOC_TYPE, 0x02, struct ivl_drv_ring)

#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
#define IVL_DRV_ASSERT(c, m) static_assert(c, m)
#else
#define IVL_DRV_ASSERT(c, m) _Static_assert(c, m)
#endif
IVL_DRV_ASSERT(sizeof(struct ivl_drv_info) == 40, "ivl_drv_info is 40 bytes");
IVL_DRV_ASSERT(sizeof(struct ivl_drv_eventfd) == 8, "ivl_drv_eventfd is 8 bytes");
IVL_DRV_ASSERT(sizeof(struct ivl_drv_ring) == 8, "ivl_drv_ring is 8 bytes");
#undef IVL_DRV_ASSERT

#endif
