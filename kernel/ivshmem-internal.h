/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ivlink_ivshmem.ko internals shared by main.c (PCI, interrupts, the
 * in-kernel API) and fops.c (the character device).
 *
 * Locking:
 *  - @rw (rw_semaphore) orders @dead against mmap faults and ioctls: the
 *    removal sets @dead and zaps the mappings under the write lock, so a
 *    fault that saw the device alive has finished inserting its PFN before
 *    the zap, and a later one maps the dead page; @gone (read(), poll())
 *    is set after the zap: who sees it finds the mappings dead already;
 *  - lock order: rw, files_mutex, irq_lock;
 *  - RCU orders @dead against ivl_ivshmem_ring() (any context) and the
 *    BAR0 mapping: the removal waits a grace period before unmapping it;
 *  - @irq_lock (spinlock, taken in the interrupt handler) guards the open
 *    files' pending masks and every vector's eventfd and kernel handler;
 *  - @files_mutex guards the list of open files for the removal's zap
 *    (unmap_mapping_range() sleeps).
 */
#ifndef IVLINK_IVSHMEM_INTERNAL_H
#define IVLINK_IVSHMEM_INTERNAL_H

#include <linux/auxiliary_bus.h>
#include <linux/eventfd.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/miscdevice.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>
#include <linux/wait.h>

#include <ivlink/uapi/ivshmem-drv.h>

#include "ivlink_ivshmem.h"

struct ivl_vec {
	struct ivl_ivshmem *d;
	unsigned int index;
	struct eventfd_ctx *efd;	/* bound by user space, or NULL */
	struct file *owner;		/* the open file that bound @efd */
	ivl_ivshmem_handler_t fn;	/* in-kernel user, or NULL */
	void *ctx;
};

struct ivl_ivshmem {
	struct kref ref;
	struct pci_dev *pdev;
	struct miscdevice misc;
	u32 index;
	char name[32];
	bool registered;
	struct auxiliary_device adev;	/* for in-kernel clients */
	bool adev_added;

	void __iomem *regs;		/* BAR0 */
	resource_size_t regs_start, regs_len;
	bool regs_mmap;			/* the BAR0 page is ours alone */
	struct resource *regs_pad;	/* the rest of that page, reserved */
	void *shm;			/* BAR2, write-back */
	resource_size_t shm_start, shm_len;
	unsigned int nvec;
	u32 revision;

	struct rw_semaphore rw;
	bool dead;
	bool gone;
	spinlock_t irq_lock;
	struct mutex files_mutex;
	struct list_head files;
	wait_queue_head_t wq;
	struct ivl_vec vec[IVL_DRV_MAX_VECTORS];
};

struct ivl_file {
	struct ivl_ivshmem *d;
	struct file *filp;
	struct list_head node;		/* in d->files */
	u64 pending;			/* under d->irq_lock */
};

extern const struct file_operations ivl_fops;
extern const struct attribute_group *ivl_groups[];

void ivl_ivshmem_release(struct kref *ref);
bool ivl_dead(struct ivl_ivshmem *d);
/* Any context; the caller checked the arguments. */
int ivl_ring(struct ivl_ivshmem *d, u32 peer, u32 vector);
/* The page that replaces every mapping once the device is gone. */
unsigned long ivl_dead_pfn(void);

#endif
