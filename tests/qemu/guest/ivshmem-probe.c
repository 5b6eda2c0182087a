/* SPDX-License-Identifier: MIT */
/*
 * ivshmem-probe: a static guest program for the real-QEMU tests.
 *
 * Finds an ivshmem PCI device (1af4:1110), maps its registers (BAR0) and
 * shared memory (BAR2) either through sysfs resource files or through
 * VFIO, and performs the checks asked for on the command line.  Every
 * result is printed as one "IVL-..." line on stdout (the serial console),
 * which the host script greps.  Exit status 0 means every requested check
 * passed.
 *
 * Without VFIO the device never interrupts (QEMU drops doorbells while
 * MSI-X is disabled), so waiting for interrupts requires -V.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/vfio.h>

#define IVSHMEM_VENDOR 0x1af4
#define IVSHMEM_DEVICE 0x1110

/* BAR0 register offsets (docs/device.md) */
#define REG_INTRMASK 0x00
#define REG_INTRSTATUS 0x04
#define REG_IVPOSITION 0x08
#define REG_DOORBELL 0x0c

#define MAX_VECTORS 64
#define MAX_RINGS 64

struct dev {
	char bdf[NAME_MAX + 1];
	/* sysfs mode: BAR0 mapped; the register block need not be page aligned */
	volatile uint8_t *regs;
	void *regs_map;
	size_t regs_map_len;
	/* vfio mode */
	int container, group, device;
	uint64_t bar0_off;
	/* both */
	uint8_t *shm;
	uint64_t shm_size;
	int nvec;
	int efd[MAX_VECTORS];
};

struct opts {
	const char *bdf;
	int vfio;
	long expect_id;
	int have_expect_id;
	uint64_t expect_size;
	long long write_off, verify_off, waitmem_off;
	size_t len;
	unsigned seed;
	uint32_t rings[MAX_RINGS];
	int nrings;
	int wait_vecs[MAX_VECTORS];
	int nwait;
	int vectors;
	int timeout_ms;
	int ring_after_irq;
};

static void fail(const char *what, int err)
{
	printf("IVL-ERROR: %s: %s\n", what, strerror(err));
	fflush(stdout);
}

static int read_sysfs_hex(const char *dir, const char *file, unsigned long *out)
{
	char path[PATH_MAX], buf[64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	errno = 0;
	*out = strtoul(buf, NULL, 16);
	return errno ? -errno : 0;
}

static int find_device(char *bdf, size_t len)
{
	DIR *d = opendir("/sys/bus/pci/devices");
	struct dirent *e;
	int rc = -ENODEV;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char dir[PATH_MAX];
		unsigned long v, dv;

		if (e->d_name[0] == '.')
			continue;
		snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s", e->d_name);
		if (read_sysfs_hex(dir, "vendor", &v) || read_sysfs_hex(dir, "device", &dv))
			continue;
		if (v == IVSHMEM_VENDOR && dv == IVSHMEM_DEVICE) {
			snprintf(bdf, len, "%s", e->d_name);
			rc = 0;
			break;
		}
	}
	closedir(d);
	return rc;
}

/* --- register access ---------------------------------------------------- */

static int reg_read(struct dev *dv, unsigned off, uint32_t *val)
{
	if (dv->regs) {
		*val = *(volatile uint32_t *)(dv->regs + off);
		return 0;
	}
	if (pread(dv->device, val, 4, (off_t)(dv->bar0_off + off)) != 4)
		return errno ? -errno : -EIO;
	return 0;
}

static int reg_write(struct dev *dv, unsigned off, uint32_t val)
{
	if (dv->regs) {
		*(volatile uint32_t *)(dv->regs + off) = val;
		return 0;
	}
	if (pwrite(dv->device, &val, 4, (off_t)(dv->bar0_off + off)) != 4)
		return errno ? -errno : -EIO;
	return 0;
}

/* --- sysfs mode --------------------------------------------------------- */

static int sysfs_open(struct dev *dv)
{
	char dir[PATH_MAX], path[PATH_MAX + 16];
	unsigned long long start[3], end[3], flags;
	long page = sysconf(_SC_PAGESIZE);
	struct stat st;
	FILE *f;
	int fd, i;
	void *p;

	snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s", dv->bdf);

	/* Firmware normally enables decoding; make sure anyway. */
	snprintf(path, sizeof(path), "%s/enable", dir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			fail("enable", errno);
		close(fd);
	}

	/* The mapping starts at BAR0's page; its offset inside it comes from "resource". */
	snprintf(path, sizeof(path), "%s/resource", dir);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	for (i = 0; i < 3; i++) {
		if (fscanf(f, "%llx %llx %llx", &start[i], &end[i], &flags) != 3) {
			fclose(f);
			return -EIO;
		}
	}
	fclose(f);

	snprintf(path, sizeof(path), "%s/resource0", dir);
	fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dv->regs_map_len = (size_t)page;
	p = mmap(NULL, dv->regs_map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	dv->regs_map = p;
	dv->regs = (volatile uint8_t *)p + (start[0] & (unsigned long long)(page - 1));

	snprintf(path, sizeof(path), "%s/resource2", dir);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -errno;
	}
	dv->shm_size = (uint64_t)st.st_size;
	if (dv->shm_size != end[2] - start[2] + 1)
		printf("IVL-WARN: resource2 size %" PRIu64 " != BAR2 range %llu\n", dv->shm_size,
		       end[2] - start[2] + 1);
	p = mmap(NULL, dv->shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	dv->shm = p;
	return 0;
}

/* --- vfio mode ---------------------------------------------------------- */

static int vfio_region(struct dev *dv, unsigned index, struct vfio_region_info *ri)
{
	memset(ri, 0, sizeof(*ri));
	ri->argsz = sizeof(*ri);
	ri->index = index;
	if (ioctl(dv->device, VFIO_DEVICE_GET_REGION_INFO, ri) < 0)
		return -errno;
	return 0;
}

static int vfio_open(struct dev *dv)
{
	struct vfio_group_status gs = { .argsz = sizeof(gs) };
	struct vfio_region_info ri;
	char link[PATH_MAX], target[PATH_MAX], path[PATH_MAX + 16];
	const char *grp;
	ssize_t n;
	uint16_t cmd;
	int rc;
	void *p;

	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/iommu_group", dv->bdf);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	grp = strrchr(target, '/');
	grp = grp ? grp + 1 : target;

	dv->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (dv->container < 0)
		return -errno;
	if (ioctl(dv->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
		return -EPROTO;
	if (ioctl(dv->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) != 1)
		return -EOPNOTSUPP;

	snprintf(path, sizeof(path), "/dev/vfio/%s", grp);
	dv->group = open(path, O_RDWR | O_CLOEXEC);
	if (dv->group < 0)
		return -errno;
	if (ioctl(dv->group, VFIO_GROUP_GET_STATUS, &gs) < 0)
		return -errno;
	if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		printf("IVL-ERROR: iommu group %s not viable (other devices not bound to vfio)\n",
		       grp);
		return -EBUSY;
	}
	if (ioctl(dv->group, VFIO_GROUP_SET_CONTAINER, &dv->container) < 0)
		return -errno;
	/* EPERM here means no interrupt remapping: intel-iommu,intremap=on */
	if (ioctl(dv->container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU) < 0)
		return -errno;
	dv->device = ioctl(dv->group, VFIO_GROUP_GET_DEVICE_FD, dv->bdf);
	if (dv->device < 0)
		return -errno;

	/* Registers through pread/pwrite: a 256-byte BAR is often not mmap-able. */
	rc = vfio_region(dv, VFIO_PCI_BAR0_REGION_INDEX, &ri);
	if (rc)
		return rc;
	if (ri.size < 16)
		return -EINVAL;
	dv->bar0_off = ri.offset;

	rc = vfio_region(dv, VFIO_PCI_BAR2_REGION_INDEX, &ri);
	if (rc)
		return rc;
	if (!(ri.flags & VFIO_REGION_INFO_FLAG_MMAP) || ri.size == 0)
		return -ENOTSUP;
	p = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, dv->device, (off_t)ri.offset);
	if (p == MAP_FAILED)
		return -errno;
	dv->shm = p;
	dv->shm_size = ri.size;

	/*
	 * QEMU delivers MSI-X through the device's bus-master address space,
	 * which is disabled until the guest sets Bus Master Enable.
	 */
	rc = vfio_region(dv, VFIO_PCI_CONFIG_REGION_INDEX, &ri);
	if (rc)
		return rc;
	if (pread(dv->device, &cmd, 2, (off_t)(ri.offset + 4)) != 2)
		return -EIO;
	cmd |= 0x4 | 0x2; /* bus master, memory space */
	if (pwrite(dv->device, &cmd, 2, (off_t)(ri.offset + 4)) != 2)
		return -EIO;
	return 0;
}

static int vfio_irqs(struct dev *dv, int want)
{
	struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = VFIO_PCI_MSIX_IRQ_INDEX };
	struct vfio_irq_set *set;
	size_t sz;
	int i, n;

	if (ioctl(dv->device, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0)
		return -errno;
	n = (int)ii.count;
	printf("IVL-MSIX: %d vector(s)\n", n);
	if (n <= 0)
		return -ENOTSUP;
	if (want > 0 && want < n)
		n = want;
	if (n > MAX_VECTORS)
		n = MAX_VECTORS;

	sz = sizeof(*set) + (size_t)n * sizeof(int32_t);
	set = calloc(1, sz);
	if (!set)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		dv->efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (dv->efd[i] < 0) {
			int e = errno;

			free(set);
			return -e;
		}
		((int32_t *)(void *)set->data)[i] = dv->efd[i];
	}
	dv->nvec = n;
	set->argsz = (uint32_t)sz;
	set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_MSIX_IRQ_INDEX;
	set->start = 0;
	set->count = (uint32_t)n;
	if (ioctl(dv->device, VFIO_DEVICE_SET_IRQS, set) < 0) {
		int e = errno;

		free(set);
		return -e;
	}
	free(set);
	printf("IVL-MSIX: enabled %d eventfd(s)\n", n);
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until every vector in want[] has fired at least once, bounded. */
static int wait_irqs(struct dev *dv, const int *want, int nwant, int timeout_ms)
{
	struct pollfd pfd[MAX_VECTORS];
	int seen[MAX_VECTORS] = { 0 };
	long long deadline = now_ms() + timeout_ms;
	int i, missing;

	for (i = 0; i < nwant; i++) {
		if (want[i] < 0 || want[i] >= dv->nvec) {
			printf("IVL-ERROR: vector %d not enabled (%d enabled)\n", want[i],
			       dv->nvec);
			return -EINVAL;
		}
	}
	for (;;) {
		long long left;
		int r;

		missing = 0;
		for (i = 0; i < nwant; i++)
			missing += !seen[want[i]];
		if (!missing)
			return 0;
		left = deadline - now_ms();
		if (left <= 0)
			break;
		for (i = 0; i < dv->nvec; i++) {
			pfd[i].fd = dv->efd[i];
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		r = poll(pfd, (nfds_t)dv->nvec, (int)left);
		if (r < 0 && errno != EINTR)
			return -errno;
		for (i = 0; r > 0 && i < dv->nvec; i++) {
			uint64_t cnt;

			if (!(pfd[i].revents & POLLIN))
				continue;
			if (read(dv->efd[i], &cnt, sizeof(cnt)) != sizeof(cnt))
				continue;
			seen[i] += (int)cnt;
			printf("IVL-IRQ %d count=%" PRIu64 "\n", i, cnt);
			fflush(stdout);
		}
	}
	for (i = 0; i < nwant; i++)
		if (!seen[want[i]])
			printf("IVL-IRQ-MISSING %d\n", want[i]);
	return -ETIMEDOUT;
}

/* --- memory patterns ---------------------------------------------------- */

static uint8_t pattern(unsigned seed, size_t i)
{
	/* position-dependent so that a shifted or partial copy is caught */
	return (uint8_t)((i * 131u + seed * 7u + (i >> 8)) & 0xff);
}

static int range_ok(struct dev *dv, long long off, size_t len)
{
	if (off < 0 || (uint64_t)off > dv->shm_size || len > dv->shm_size - (uint64_t)off) {
		printf("IVL-ERROR: range %lld+%zu outside BAR2 (%" PRIu64 ")\n", off, len,
		       dv->shm_size);
		return 0;
	}
	return 1;
}

static size_t mismatch(struct dev *dv, long long off, size_t len, unsigned seed)
{
	volatile uint8_t *m = dv->shm + off;
	size_t i;

	for (i = 0; i < len; i++)
		if (m[i] != pattern(seed, i))
			return i;
	return len;
}

static void usage(void)
{
	puts("usage: ivshmem-probe [-d BDF] [-V] [-i ID] [-s SIZE] [-n LEN] [-p SEED]\n"
	     "          [-w OFF] [-c OFF] [-m OFF] [-v NVEC] [-e VEC]... [-r PEER:VEC]...\n"
	     "          [-R] [-t MS]\n"
	     "  -d BDF       device (default: first 1af4:1110)\n"
	     "  -V           use VFIO (device bound to vfio-pci) instead of sysfs\n"
	     "  -i ID        expect IVPosition == ID\n"
	     "  -s SIZE      expect BAR2 size == SIZE bytes\n"
	     "  -w OFF       write LEN pattern bytes (seed SEED) at OFF\n"
	     "  -c OFF       verify LEN pattern bytes (seed SEED) at OFF\n"
	     "  -m OFF       wait (poll, bounded) until the pattern appears at OFF\n"
	     "  -v NVEC      enable NVEC MSI-X vectors (VFIO; default all)\n"
	     "  -e VEC       wait for an interrupt on VEC (VFIO; repeatable)\n"
	     "  -r PEER:VEC  ring PEER's vector VEC (repeatable)\n"
	     "  -R           enable MSI-X (VFIO) even without -e; rings always come after it\n"
	     "  -t MS        bound for -e and -m (default 10000)");
}

static int parse(int argc, char **argv, struct opts *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->write_off = o->verify_off = o->waitmem_off = -1;
	o->len = 4096;
	o->seed = 1;
	o->timeout_ms = 10000;
	while ((c = getopt(argc, argv, "d:Vi:s:w:c:m:n:p:v:e:r:Rt:h")) != -1) {
		char *end = NULL;
		unsigned long peer, vec;

		errno = 0;
		switch (c) {
		case 'd':
			o->bdf = optarg;
			break;
		case 'V':
			o->vfio = 1;
			break;
		case 'i':
			o->expect_id = strtol(optarg, &end, 0);
			o->have_expect_id = 1;
			break;
		case 's':
			o->expect_size = strtoull(optarg, &end, 0);
			break;
		case 'w':
			o->write_off = strtoll(optarg, &end, 0);
			break;
		case 'c':
			o->verify_off = strtoll(optarg, &end, 0);
			break;
		case 'm':
			o->waitmem_off = strtoll(optarg, &end, 0);
			break;
		case 'n':
			o->len = strtoull(optarg, &end, 0);
			break;
		case 'p':
			o->seed = (unsigned)strtoul(optarg, &end, 0);
			break;
		case 'v':
			o->vectors = (int)strtol(optarg, &end, 0);
			break;
		case 'e':
			if (o->nwait == MAX_VECTORS)
				return -E2BIG;
			o->wait_vecs[o->nwait++] = (int)strtol(optarg, &end, 0);
			break;
		case 'r':
			peer = strtoul(optarg, &end, 0);
			if (*end != ':' || peer > 0xffff)
				return -EINVAL;
			vec = strtoul(end + 1, &end, 0);
			if (vec > 0xffff || o->nrings == MAX_RINGS)
				return -EINVAL;
			o->rings[o->nrings++] = (uint32_t)(peer << 16 | vec);
			break;
		case 'R':
			o->ring_after_irq = 1;
			break;
		case 't':
			o->timeout_ms = (int)strtol(optarg, &end, 0);
			break;
		default:
			usage();
			return -EINVAL;
		}
		if (errno || (end && *end)) {
			printf("IVL-ERROR: bad argument -%c %s\n", c, optarg);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		usage();
		return -EINVAL;
	}
	return 0;
}

static int ring_all(struct dev *dv, const struct opts *o)
{
	int i, rc;

	for (i = 0; i < o->nrings; i++) {
		rc = reg_write(dv, REG_DOORBELL, o->rings[i]);
		if (rc) {
			fail("doorbell write", -rc);
			return rc;
		}
		printf("IVL-RING peer=%u vector=%u\n", o->rings[i] >> 16, o->rings[i] & 0xffff);
	}
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct dev dv;
	struct opts o;
	uint32_t id;
	int rc, bad = 0, i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&dv, 0, sizeof(dv));
	dv.container = dv.group = dv.device = -1;
	for (i = 0; i < MAX_VECTORS; i++)
		dv.efd[i] = -1;

	if (parse(argc, argv, &o))
		return 2;

	if (o.bdf) {
		snprintf(dv.bdf, sizeof(dv.bdf), "%s", o.bdf);
	} else if ((rc = find_device(dv.bdf, sizeof(dv.bdf)))) {
		fail("no ivshmem device (1af4:1110)", -rc);
		return 1;
	}
	rc = o.vfio ? vfio_open(&dv) : sysfs_open(&dv);
	if (rc) {
		fail(o.vfio ? "vfio open" : "sysfs open", -rc);
		return 1;
	}
	printf("IVL-DEVICE %s mode=%s\n", dv.bdf, o.vfio ? "vfio" : "sysfs");

	if ((rc = reg_read(&dv, REG_IVPOSITION, &id))) {
		fail("IVPosition read", -rc);
		return 1;
	}
	printf("IVL-ID %d\n", (int32_t)id);
	printf("IVL-BAR2 %" PRIu64 "\n", dv.shm_size);
	if (o.have_expect_id && (int32_t)id != o.expect_id) {
		printf("IVL-CHECK-FAIL id %d != expected %ld\n", (int32_t)id, o.expect_id);
		bad = 1;
	}
	if (o.expect_size && dv.shm_size != o.expect_size) {
		printf("IVL-CHECK-FAIL bar2 %" PRIu64 " != expected %" PRIu64 "\n", dv.shm_size,
		       o.expect_size);
		bad = 1;
	}

	if (o.write_off >= 0) {
		if (!range_ok(&dv, o.write_off, o.len))
			return 1;
		for (size_t k = 0; k < o.len; k++)
			dv.shm[o.write_off + (long long)k] = pattern(o.seed, k);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		printf("IVL-WROTE off=%lld len=%zu seed=%u\n", o.write_off, o.len, o.seed);
	}
	if (o.verify_off >= 0) {
		size_t at;

		if (!range_ok(&dv, o.verify_off, o.len))
			return 1;
		at = mismatch(&dv, o.verify_off, o.len, o.seed);
		if (at == o.len) {
			printf("IVL-VERIFY-OK off=%lld len=%zu seed=%u\n", o.verify_off, o.len,
			       o.seed);
		} else {
			printf("IVL-CHECK-FAIL verify off=%lld byte %zu\n", o.verify_off, at);
			bad = 1;
		}
	}
	if (o.waitmem_off >= 0) {
		long long deadline = now_ms() + o.timeout_ms;
		size_t at;

		if (!range_ok(&dv, o.waitmem_off, o.len))
			return 1;
		while ((at = mismatch(&dv, o.waitmem_off, o.len, o.seed)) != o.len &&
		       now_ms() < deadline)
			usleep(10000);
		if (at == o.len) {
			printf("IVL-MEM-OK off=%lld len=%zu seed=%u\n", o.waitmem_off, o.len,
			       o.seed);
		} else {
			printf("IVL-CHECK-FAIL mem off=%lld byte %zu (timeout)\n", o.waitmem_off,
			       at);
			bad = 1;
		}
	}

	if (o.vfio && (o.nwait || o.vectors || o.ring_after_irq)) {
		rc = vfio_irqs(&dv, o.vectors);
		if (rc) {
			fail("MSI-X setup", -rc);
			return 1;
		}
	} else if (o.nwait) {
		printf("IVL-ERROR: waiting for interrupts needs -V (no MSI-X without VFIO)\n");
		return 1;
	}
	/* Ring after MSI-X is live, so the peer's reply cannot be dropped. */
	if (ring_all(&dv, &o))
		return 1;
	if (o.nwait) {
		rc = wait_irqs(&dv, o.wait_vecs, o.nwait, o.timeout_ms);
		if (rc) {
			printf("IVL-CHECK-FAIL irq wait: %s\n", strerror(-rc));
			bad = 1;
		} else {
			printf("IVL-IRQ-OK %d vector(s)\n", o.nwait);
		}
	}

	/* The kernel releases the mappings, eventfds and VFIO fds at exit. */
	printf("IVL-PROBE-%s\n", bad ? "FAIL" : "OK");
	return bad;
}
