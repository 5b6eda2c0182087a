/* SPDX-License-Identifier: MIT */
/*
 * The guest backend through VFIO: the only way a guest program receives
 * ivshmem doorbells as interrupts (MSI-X, one eventfd per vector).
 *
 * Facts this relies on (tests/qemu/README.md): VFIO needs an IOMMU with
 * interrupt remapping (q35 + intel-iommu,intremap=on, intel_iommu=on);
 * vfio-pci leaves Bus Master Enable clear and QEMU then drops MSI-X writes,
 * so we set it; a 256-byte BAR0 is not always mmap-able, so registers go
 * through pread/pwrite on the device fd.
 */
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

#include <linux/vfio.h>

#include "core/internal.h"
#include "link/guest-internal.h"

#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4

struct ivl__vfio {
	int container, group, device;
	uint64_t bar0_off;
	void *bar2;
	uint64_t bar2_size;
	unsigned nirq;
	int efd[IVL_MAX_VECTORS];
	char desc[40];
};

static uint32_t vfio_read32(void *ctx, unsigned off)
{
	struct ivl__vfio *v = ctx;
	uint32_t val;

	if (off > IVL_IVSHMEM_BAR0_SIZE - 4 || off % 4 ||
	    pread(v->device, &val, 4, (off_t)(v->bar0_off + off)) != 4)
		return 0xffffffffu;
	return val;
}

static void vfio_write32(void *ctx, unsigned off, uint32_t val)
{
	struct ivl__vfio *v = ctx;

	if (off > IVL_IVSHMEM_BAR0_SIZE - 4 || off % 4)
		return;
	/* A failed doorbell write is lost like a dropped doorbell; the
	 * register seam has no error path by design. */
	if (pwrite(v->device, &val, 4, (off_t)(v->bar0_off + off)) != 4)
		ivl__debug("link: %s: register write at %#x: %s", v->desc, off, strerror(errno));
}

static const struct ivl__guest_regs vfio_regs = {vfio_read32, vfio_write32};

static void vfio_release(void *ctx)
{
	struct ivl__vfio *v = ctx;

	if (v->bar2)
		munmap(v->bar2, v->bar2_size);
	/* Closing the device fd tears the MSI-X eventfd triggers down. */
	ivl__close(v->device);
	for (unsigned i = 0; i < v->nirq; i++)
		ivl__close(v->efd[i]);
	ivl__close(v->group);
	ivl__close(v->container);
	free(v);
}

static int region(struct ivl__vfio *v, unsigned index, struct vfio_region_info *ri)
{
	memset(ri, 0, sizeof(*ri));
	ri->argsz = sizeof(*ri);
	ri->index = index;
	return ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, ri) < 0 ? -errno : 0;
}

static int open_group(struct ivl__vfio *v, const char *bdf)
{
	struct vfio_group_status gs = {.argsz = sizeof(gs)};
	char link[PATH_MAX], target[PATH_MAX], path[PATH_MAX];
	const char *grp;
	ssize_t n;

	snprintf(link, sizeof(link), "%s/%s/iommu_group", ivl__guest_sysfs_root(), bdf);
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0) {
		ivl__err("link: %s has no IOMMU group (boot with intel_iommu=on, and give QEMU "
			 "-device intel-iommu,intremap=on)",
			 bdf);
		return -ENODEV;
	}
	target[n] = '\0';
	grp = strrchr(target, '/');
	grp = grp ? grp + 1 : target;
	v->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (v->container < 0) {
		int e = errno;
		ivl__err("link: /dev/vfio/vfio: %s", strerror(e));
		return e == EPERM ? -EACCES : -e;
	}
	if (ioctl(v->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
	    ioctl(v->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) != 1) {
		ivl__err("link: VFIO without the type 1 IOMMU API");
		return -ENOTSUP;
	}
	snprintf(path, sizeof(path), "/dev/vfio/%.32s", grp);
	v->group = open(path, O_RDWR | O_CLOEXEC);
	if (v->group < 0) {
		int e = errno;
		ivl__err("link: %s: %s", path, strerror(e));
		return e == EPERM ? -EACCES : -e;
	}
	if (ioctl(v->group, VFIO_GROUP_GET_STATUS, &gs) < 0)
		return -errno;
	if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		ivl__err("link: IOMMU group %s is not viable (bind all its devices to vfio-pci)",
			 grp);
		return -EBUSY;
	}
	if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container) < 0)
		return -errno;
	if (ioctl(v->container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU) < 0) {
		int e = errno;
		ivl__err("link: VFIO_SET_IOMMU: %s%s", strerror(e),
			 e == EPERM ? " (no interrupt remapping: -device intel-iommu,intremap=on)"
				    : "");
		return -e;
	}
	v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	return v->device < 0 ? -errno : 0;
}

static int map_bars(struct ivl__vfio *v)
{
	struct vfio_region_info ri;
	uint16_t cmd;
	void *p;
	int ret;

	ret = region(v, VFIO_PCI_BAR0_REGION_INDEX, &ri);
	if (ret < 0)
		return ret;
	if (ri.size < 16)
		return -EIO;
	v->bar0_off = ri.offset;
	ret = region(v, VFIO_PCI_BAR2_REGION_INDEX, &ri);
	if (ret < 0)
		return ret;
	if (!(ri.flags & VFIO_REGION_INFO_FLAG_MMAP) || !ri.size || (ri.size & (ri.size - 1)))
		return -ENOTSUP;
	p = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, v->device, (off_t)ri.offset);
	if (p == MAP_FAILED)
		return -errno;
	v->bar2 = p;
	v->bar2_size = ri.size;
	ret = region(v, VFIO_PCI_CONFIG_REGION_INDEX, &ri);
	if (ret < 0)
		return ret;
	if (pread(v->device, &cmd, 2, (off_t)(ri.offset + PCI_COMMAND)) != 2)
		return -EIO;
	cmd |= PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY;
	if (pwrite(v->device, &cmd, 2, (off_t)(ri.offset + PCI_COMMAND)) != 2)
		return -EIO;
	return 0;
}

static int enable_msix(struct ivl__vfio *v, unsigned want)
{
	struct vfio_irq_info ii = {.argsz = sizeof(ii), .index = VFIO_PCI_MSIX_IRQ_INDEX};
	struct vfio_irq_set *set;
	unsigned n;
	size_t sz;
	int ret = 0;

	if (ioctl(v->device, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0)
		return -errno;
	n = ii.count < want ? ii.count : want;
	if (n > IVL_MAX_VECTORS)
		n = IVL_MAX_VECTORS;
	if (!n)
		return 0;
	sz = sizeof(*set) + (size_t)n * sizeof(int32_t);
	set = calloc(1, sz);
	if (!set)
		return -ENOMEM;
	for (; v->nirq < n; v->nirq++) {
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

		if (fd < 0) {
			ret = -errno;
			goto out;
		}
		v->efd[v->nirq] = fd;
		memcpy(set->data + v->nirq * sizeof(int32_t), &fd, sizeof(int32_t));
	}
	set->argsz = (uint32_t)sz;
	set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_MSIX_IRQ_INDEX;
	set->start = 0;
	set->count = n;
	if (ioctl(v->device, VFIO_DEVICE_SET_IRQS, set) < 0)
		ret = -errno;
out:
	free(set);
	return ret;
}

int ivl__vfio_open(const char *bdf, unsigned want, struct ivl__guest_dev *dev)
{
	struct ivl__vfio *v = calloc(1, sizeof(*v));
	int ret;

	if (!v)
		return -ENOMEM;
	v->container = v->group = v->device = -1;
	ret = open_group(v, bdf);
	if (ret < 0)
		goto fail;
	ret = map_bars(v);
	if (ret < 0) {
		ivl__err("link: %s: cannot map the BARs through VFIO: %s", bdf, strerror(-ret));
		goto fail;
	}
	ret = enable_msix(v, want);
	if (ret < 0) {
		ivl__err("link: %s: cannot enable MSI-X: %s", bdf, strerror(-ret));
		goto fail;
	}
	snprintf(v->desc, sizeof(v->desc), "%s (vfio)", bdf);
	dev->regs = &vfio_regs;
	dev->ctx = v;
	dev->bar2 = v->bar2;
	dev->bar2_size = v->bar2_size;
	dev->irq_fds = v->efd;
	dev->nirq = v->nirq;
	dev->release = vfio_release;
	dev->desc = v->desc;
	return 0;
fail:
	vfio_release(v);
	return ret;
}
