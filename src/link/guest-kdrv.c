/* SPDX-License-Identifier: MIT */
/*
 * The guest backend through ivlink's own kernel driver (kernel/,
 * ivlink_ivshmem.ko; ABI in <ivlink/uapi/ivshmem-drv.h>, docs/guest.md §6):
 * interrupts in any guest, with or without an IOMMU.  One eventfd per MSI-X
 * vector, bound with IVL_DRV_SET_EVENTFD; BAR2 mapped whole; the Doorbell
 * rung by a store into the mapped BAR0 page when the driver allows that
 * mapping, else by the IVL_DRV_RING ioctl.
 *
 * When the device is hot-unplugged the driver turns the device fd to
 * POLLHUP (guest.c then reports IVL_LINK_DOWN) and the mappings to an
 * all-ones page, so nothing here faults.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ivlink/uapi/ivshmem-drv.h>

#include "core/internal.h"
#include "link/guest-internal.h"

_Static_assert(IVL_IVSHMEM_IVPOSITION == IVL_IVSHMEM_IVPOSITION &&
		       IVL_IVSHMEM_DOORBELL == IVL_IVSHMEM_DOORBELL,
	       "one register map");

struct kdrv {
	int fd;
	struct ivl_drv_info info;
	void *regs_map; /* the BAR0 page, or NULL: registers by ioctl */
	volatile uint8_t *regs;
	long page;
	void *bar2;
	unsigned nirq;
	int efd[IVL_MAX_VECTORS];
	char desc[48];
};

static uint32_t kdrv_read32(void *ctx, unsigned off)
{
	struct kdrv *k = ctx;
	struct ivl_drv_info info = {.argsz = sizeof(info)};

	if (off > IVL_IVSHMEM_BAR0_SIZE - 4 || off % 4)
		return 0xffffffffu;
	if (k->regs)
		return *(volatile uint32_t *)(k->regs + off);
	/* Without the page only IVPosition is readable (GET_INFO reads it
	 * live); a removed device fails, which reads as all-ones. */
	if (off != IVL_IVSHMEM_IVPOSITION || ioctl(k->fd, IVL_DRV_GET_INFO, &info) < 0)
		return 0xffffffffu;
	return info.ivposition;
}

static void kdrv_write32(void *ctx, unsigned off, uint32_t val)
{
	struct kdrv *k = ctx;
	struct ivl_drv_ring r = {.peer = val >> 16, .vector = val & 0xffffu};

	if (off > IVL_IVSHMEM_BAR0_SIZE - 4 || off % 4)
		return;
	if (k->regs) {
		*(volatile uint32_t *)(k->regs + off) = val;
		return;
	}
	/* A failed doorbell is lost like a dropped one (the seam has no
	 * error path); the driver fails only for a removed device. */
	if (off == IVL_IVSHMEM_DOORBELL && ioctl(k->fd, IVL_DRV_RING, &r) < 0)
		ivl__debug("link: %s: ring: %s", k->desc, strerror(errno));
}

static const struct ivl__guest_regs kdrv_regs = {kdrv_read32, kdrv_write32};

static void kdrv_release(void *ctx)
{
	struct kdrv *k = ctx;

	if (k->regs_map)
		munmap(k->regs_map, (size_t)k->page);
	if (k->bar2)
		munmap(k->bar2, k->info.region_size);
	/* Closing the device unbinds its eventfds. */
	ivl__close(k->fd);
	for (unsigned i = 0; i < k->nirq; i++)
		ivl__close(k->efd[i]);
	free(k);
}

int ivl__kdrv_node(const char *bdf, char *path, size_t len)
{
	char dir[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int ret = -ENODEV;

	/* The misc device's class directory under the PCI device. */
	if (snprintf(dir, sizeof(dir), "%s/%s/misc", ivl__guest_sysfs_root(), bdf) >=
	    (int)sizeof(dir))
		return -ENAMETOOLONG;
	d = opendir(dir);
	if (!d)
		return -ENODEV;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, IVL_DRV_NODE_PREFIX, strlen(IVL_DRV_NODE_PREFIX)))
			continue;
		ret = snprintf(path, len, "/dev/%s", e->d_name) >= (int)len ? -ENAMETOOLONG : 0;
		break;
	}
	closedir(d);
	return ret;
}

static int bind_irqs(struct kdrv *k)
{
	unsigned n = k->info.vectors < IVL_MAX_VECTORS ? k->info.vectors : IVL_MAX_VECTORS;

	for (; k->nirq < n; k->nirq++) {
		struct ivl_drv_eventfd b = {.vector = k->nirq};
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

		if (fd < 0)
			return -errno;
		k->efd[k->nirq] = fd;
		b.fd = fd;
		if (ioctl(k->fd, IVL_DRV_SET_EVENTFD, &b) < 0) {
			int e = errno;

			ivl__close(fd);
			return -e;
		}
	}
	return 0;
}

int ivl__kdrv_open(const char *bdf, struct ivl__guest_dev *dev)
{
	struct kdrv *k = calloc(1, sizeof(*k));
	char node[PATH_MAX];
	void *p;
	int ret;

	if (!k)
		return -ENOMEM;
	k->fd = -1;
	k->page = sysconf(_SC_PAGESIZE);
	if (k->page <= 0)
		k->page = 4096;
	ret = ivl__kdrv_node(bdf, node, sizeof(node));
	if (ret < 0) {
		ivl__err("link: %s is bound to %s but has no device node", bdf, IVL_DRV_NAME);
		goto fail;
	}
	k->fd = open(node, O_RDWR | O_CLOEXEC);
	if (k->fd < 0) {
		ret = errno == EPERM || errno == EACCES ? -EACCES : -errno;
		ivl__err("link: %s: %s", node, strerror(errno));
		goto fail;
	}
	k->info.argsz = sizeof(k->info);
	if (ioctl(k->fd, IVL_DRV_GET_INFO, &k->info) < 0) {
		ret = -errno;
		ivl__err("link: %s: IVL_DRV_GET_INFO: %s", node, strerror(errno));
		goto fail;
	}
	/* The driver is trusted, but not to be the version we were built
	 * for. */
	if (k->info.abi_version != IVL_DRV_ABI_VERSION || !k->info.region_size ||
	    (k->info.region_size & (k->info.region_size - 1)) ||
	    k->info.region_size > SIZE_MAX) {
		ivl__err("link: %s: driver ABI %u (want %u), region %llu bytes", node,
			 k->info.abi_version, IVL_DRV_ABI_VERSION,
			 (unsigned long long)k->info.region_size);
		ret = -EPROTO;
		goto fail;
	}
	p = mmap(NULL, k->info.region_size, PROT_READ | PROT_WRITE, MAP_SHARED, k->fd, 0);
	if (p == MAP_FAILED) {
		ret = -errno;
		ivl__err("link: %s: cannot map BAR2: %s", node, strerror(errno));
		goto fail;
	}
	k->bar2 = p;
	if ((k->info.flags & IVL_DRV_INFO_REGS_MMAP) &&
	    k->info.regs_offset <= (uint64_t)k->page - IVL_IVSHMEM_BAR0_SIZE) {
		p = mmap(NULL, (size_t)k->page, PROT_READ | PROT_WRITE, MAP_SHARED, k->fd,
			 (off_t)IVL_DRV_MMAP_REGS);
		if (p != MAP_FAILED) {
			k->regs_map = p;
			k->regs = (volatile uint8_t *)p + k->info.regs_offset;
		}
	}
	if (k->info.flags & IVL_DRV_INFO_DOORBELL) {
		ret = bind_irqs(k);
		if (ret < 0) {
			ivl__err("link: %s: cannot bind the MSI-X eventfds: %s", node,
				 strerror(-ret));
			goto fail;
		}
	}
	snprintf(k->desc, sizeof(k->desc), "%s (%s)", bdf, IVL_DRV_NAME);
	dev->regs = &kdrv_regs;
	dev->ctx = k;
	dev->bar2 = k->bar2;
	dev->bar2_size = k->info.region_size;
	dev->dev_vectors = k->info.vectors > IVL_MAX_VECTORS ? IVL_MAX_VECTORS : k->info.vectors;
	dev->irq_fds = k->efd;
	dev->nirq = k->nirq;
	dev->release = kdrv_release;
	dev->desc = k->desc;
	dev->access = "kernel";
	dev->hup_fd = k->fd;
	dev->watch_hup = true;
	return 0;
fail:
	kdrv_release(k);
	return ret;
}
