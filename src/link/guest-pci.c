/* SPDX-License-Identifier: MIT */
/*
 * The guest backend's PCI side: finding the ivshmem device in sysfs, telling
 * ivshmem-doorbell from ivshmem-plain, and mapping BAR0/BAR2 through the
 * sysfs resource files when VFIO is not used (no interrupts then: QEMU drops
 * doorbells while MSI-X is off, docs/device.md).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ivlink/uapi/ivshmem-drv.h>

#include "core/internal.h"
#include "link/guest-internal.h"

#define PCI_CAP_MSIX 0x11
#define PCI_CFG_LEN 256

const char *ivl__guest_sysfs_root(void)
{
	/* A test hook; ignored in set-user-ID programs. */
	const char *r = secure_getenv("IVL_SYSFS_PCI");

	return r && *r ? r : "/sys/bus/pci/devices";
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* @n hex digits of @s, exactly. */
static bool hexfield(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (hexval((unsigned char)s[i]) < 0)
			return false;
	return true;
}

int ivl__guest_parse_bdf(const char *s, char out[13])
{
	char buf[13];
	size_t len;

	if (!s)
		return -EINVAL;
	len = strlen(s);
	if (len == 7) { /* bb:dd.f, domain 0 */
		memcpy(buf, "0000:", 5);
		memcpy(buf + 5, s, 8);
	} else if (len == 12) {
		memcpy(buf, s, 13);
	} else {
		return -EINVAL;
	}
	if (!hexfield(buf, 4) || buf[4] != ':' || !hexfield(buf + 5, 2) || buf[7] != ':' ||
	    !hexfield(buf + 8, 2) || buf[10] != '.' || buf[11] < '0' || buf[11] > '7')
		return -EINVAL;
	/* Device numbers stop at 0x1f. */
	if (hexval((unsigned char)buf[8]) * 16 + hexval((unsigned char)buf[9]) > 0x1f)
		return -EINVAL;
	for (int i = 0; i < 12; i++)
		buf[i] = (char)tolower((unsigned char)buf[i]);
	memcpy(out, buf, 13);
	return 0;
}

static int read_hex_file(const char *bdf, const char *file, unsigned long *out)
{
	char path[PATH_MAX], buf[32];
	ssize_t n;
	char *end;
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s/%s", ivl__guest_sysfs_root(), bdf, file) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	ivl__close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	errno = 0;
	*out = strtoul(buf, &end, 16);
	return errno || end == buf ? -EIO : 0;
}

static bool is_ivshmem(const char *bdf)
{
	unsigned long v, d;

	return !read_hex_file(bdf, "vendor", &v) && !read_hex_file(bdf, "device", &d) &&
	       v == IVL_IVSHMEM_VENDOR_ID && d == IVL_IVSHMEM_DEVICE_ID;
}

int ivl__guest_find(const char *want, char bdf[13])
{
	struct dirent *e;
	char best[13] = "";
	DIR *d;
	int r;

	if (want && *want && strcmp(want, "auto")) {
		r = ivl__guest_parse_bdf(want, bdf);
		if (r < 0) {
			ivl__err("link: '%s' is not a PCI address (like 0000:00:02.0)", want);
			return r;
		}
		if (!is_ivshmem(bdf)) {
			ivl__err("link: no ivshmem device (1af4:1110) at %s", bdf);
			return -ENODEV;
		}
		return 0;
	}
	d = opendir(ivl__guest_sysfs_root());
	if (!d) {
		r = -errno;
		ivl__err("link: cannot list PCI devices in %s: %s", ivl__guest_sysfs_root(),
			 strerror(-r));
		return r == -ENOENT ? -ENODEV : r;
	}
	/* The lowest address: the same device on every call, whatever order
	 * readdir() returns. */
	while ((e = readdir(d))) {
		char c[13];

		if (ivl__guest_parse_bdf(e->d_name, c) < 0 || strcmp(c, e->d_name))
			continue;
		if ((!best[0] || strcmp(c, best) < 0) && is_ivshmem(c))
			memcpy(best, c, sizeof(best));
	}
	closedir(d);
	if (!best[0]) {
		ivl__err("link: no ivshmem device (PCI 1af4:1110) in this machine");
		return -ENODEV;
	}
	memcpy(bdf, best, sizeof(best));
	return 0;
}

/* Table size of the MSI-X capability in config space; 0 when there is none
 * (ivshmem-plain).  The capability list is walked as untrusted data:
 * bounded steps, pointers inside the 256 bytes. */
static unsigned msix_count(const char *bdf)
{
	uint8_t cfg[PCI_CFG_LEN];
	char path[PATH_MAX];
	unsigned ptr;
	ssize_t n;
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s/config", ivl__guest_sysfs_root(), bdf) >=
	    (int)sizeof(path))
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	memset(cfg, 0, sizeof(cfg));
	n = pread(fd, cfg, sizeof(cfg), 0);
	ivl__close(fd);
	if (n < 0x40 || !(cfg[0x06] & 0x10)) /* status: capability list */
		return 0;
	ptr = cfg[0x34] & 0xfcu;
	for (int steps = 0; steps < 48 && ptr >= 0x40 && ptr + 4 <= (unsigned)n; steps++) {
		if (cfg[ptr] == PCI_CAP_MSIX)
			return ((unsigned)cfg[ptr + 2] | (unsigned)cfg[ptr + 3] << 8) % 0x800u + 1;
		ptr = cfg[ptr + 1] & 0xfcu;
	}
	return 0;
}

/* The kernel driver bound to @bdf ("" if none). */
static void driver_of(const char *bdf, char *out, size_t len)
{
	char path[PATH_MAX], target[PATH_MAX];
	const char *base;
	ssize_t n;

	out[0] = '\0';
	if (snprintf(path, sizeof(path), "%s/%s/driver", ivl__guest_sysfs_root(), bdf) >=
	    (int)sizeof(path))
		return;
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0)
		return;
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	n = (ssize_t)strlen(base);
	if ((size_t)n >= len)
		n = (ssize_t)len - 1;
	memcpy(out, base, (size_t)n);
	out[n] = '\0';
}

/* ---- sysfs resource mapping --------------------------------------------- */

struct sysfs_dev {
	void *regs_map;
	size_t regs_len;
	volatile uint8_t *regs;
	void *bar2;
	uint64_t bar2_size;
	char desc[40];
};

static uint32_t mmio_read32(void *ctx, unsigned off)
{
	struct sysfs_dev *s = ctx;

	if (off > IVL_IVSHMEM_BAR0_SIZE - 4 || off % 4)
		return 0xffffffffu;
	return *(volatile uint32_t *)(s->regs + off);
}

static void mmio_write32(void *ctx, unsigned off, uint32_t val)
{
	struct sysfs_dev *s = ctx;

	if (off > IVL_IVSHMEM_BAR0_SIZE - 4 || off % 4)
		return;
	*(volatile uint32_t *)(s->regs + off) = val;
}

static const struct ivl__guest_regs mmio_regs = {mmio_read32, mmio_write32};

static void sysfs_release(void *ctx)
{
	struct sysfs_dev *s = ctx;

	if (s->regs_map)
		munmap(s->regs_map, s->regs_len);
	if (s->bar2)
		munmap(s->bar2, s->bar2_size);
	free(s);
}

static int open_resource(const char *bdf, const char *file, int *fd)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/%s/%s", ivl__guest_sysfs_root(), bdf, file) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	*fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (*fd >= 0)
		return 0;
	if (errno == EACCES || errno == EPERM) {
		ivl__err("link: %s: permission denied (mapping a PCI BAR needs root)", path);
		return -EACCES;
	}
	ivl__err("link: cannot open %s: %s", path, strerror(errno));
	return -errno;
}

/* BAR0's offset inside its page, from the "resource" file's first line. */
static uint64_t bar0_page_offset(const char *bdf, long page)
{
	unsigned long long start = 0, end = 0, flags = 0;
	char path[PATH_MAX];
	FILE *f;

	if (snprintf(path, sizeof(path), "%s/%s/resource", ivl__guest_sysfs_root(), bdf) >=
	    (int)sizeof(path))
		return 0;
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llx %llx %llx", &start, &end, &flags) != 3)
		start = 0;
	fclose(f);
	return start & (unsigned long long)(page - 1);
}

static int sysfs_open(const char *bdf, struct ivl__guest_dev *dev)
{
	long page = sysconf(_SC_PAGESIZE);
	struct sysfs_dev *s;
	struct stat st;
	uint64_t off;
	int fd, ret;
	void *p;

	if (page <= 0)
		page = 4096;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	ret = open_resource(bdf, "resource0", &fd);
	if (ret < 0)
		goto fail;
	off = bar0_page_offset(bdf, page);
	if (off > (uint64_t)page - IVL_IVSHMEM_BAR0_SIZE)
		off = 0;
	s->regs_len = (size_t)page;
	p = mmap(NULL, s->regs_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ret = p == MAP_FAILED ? -errno : 0;
	ivl__close(fd);
	if (ret < 0) {
		ivl__err("link: %s: cannot map BAR0: %s", bdf, strerror(-ret));
		goto fail;
	}
	s->regs_map = p;
	s->regs = (volatile uint8_t *)p + off;
	ret = open_resource(bdf, "resource2", &fd);
	if (ret < 0)
		goto fail;
	if (fstat(fd, &st) < 0 || st.st_size <= 0 ||
	    ((uint64_t)st.st_size & ((uint64_t)st.st_size - 1))) {
		ret = -EIO;
		ivl__err("link: %s: BAR2 has no usable size", bdf);
		ivl__close(fd);
		goto fail;
	}
	s->bar2_size = (uint64_t)st.st_size;
	p = mmap(NULL, s->bar2_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ret = p == MAP_FAILED ? -errno : 0;
	ivl__close(fd);
	if (ret < 0) {
		ivl__err("link: %s: cannot map BAR2: %s", bdf, strerror(-ret));
		goto fail;
	}
	s->bar2 = p;
	snprintf(s->desc, sizeof(s->desc), "%s (sysfs)", bdf);
	dev->regs = &mmio_regs;
	dev->ctx = s;
	dev->bar2 = s->bar2;
	dev->bar2_size = s->bar2_size;
	dev->release = sysfs_release;
	dev->desc = s->desc;
	return 0;
fail:
	sysfs_release(s);
	return ret;
}

int ivl__guest_open(const char *bdf, bool no_vfio, struct ivl__guest_dev *dev)
{
	unsigned nvec = msix_count(bdf);
	char drv[64];
	int ret;

	memset(dev, 0, sizeof(*dev));
	if (!nvec)
		ivl__warn("link: %s is an ivshmem-plain device (no MSI-X, no doorbell): "
			  "shared memory works, ring() fails with ENOTSUP",
			  bdf);
	driver_of(bdf, drv, sizeof(drv));
	/* Preference: ivlink's kernel driver (interrupts, no IOMMU needed),
	 * then VFIO, then sysfs and polling (docs/guest.md §2). */
	if (!strcmp(drv, IVL_DRV_NAME))
		return ivl__kdrv_open(bdf, dev);
	if (!no_vfio && nvec && !strcmp(drv, "vfio-pci")) {
		ret = ivl__vfio_open(bdf, nvec, dev);
		dev->access = "vfio";
	} else {
		if (nvec && !no_vfio)
			ivl__info("link: %s is bound neither to %s nor to vfio-pci (driver "
				  "'%s'): mapping it through sysfs, doorbells are received by "
				  "polling",
				  bdf, IVL_DRV_NAME, drv);
		ret = sysfs_open(bdf, dev);
		dev->access = "sysfs";
	}
	if (ret < 0)
		return ret;
	dev->dev_vectors = nvec > IVL_MAX_VECTORS ? IVL_MAX_VECTORS : nvec;
	return 0;
}
