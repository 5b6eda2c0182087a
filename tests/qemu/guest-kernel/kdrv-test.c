/* SPDX-License-Identifier: MIT */
/*
 * kdrv-test: a static guest program for run-kernel-test.sh that drives
 * ivlink_ivshmem.ko through its user ABI only (<ivlink/uapi/ivshmem-drv.h>).
 * Every result is one "KDRV-..." line on stdout (the serial console).
 *
 * usage: kdrv-test MODE [-d NODE] [-n COUNT] [-t MS]
 *   abi     GET_INFO against sysfs; partial mappings of BAR2 (offset and
 *           length checked, private and out-of-range maps refused); the
 *           BAR0 page (IVPosition read through it); bad ioctls refused;
 *           a self-doorbell on every vector through the eventfd bound to
 *           it, rung both by the mapped Doorbell and by IVL_DRV_RING, and
 *           through read()/poll() of the pending mask;
 *   cycle   open, bind, ring myself on every vector, see them, close
 *           (for the reload loop: one call per module load);
 *   unplug  open, map BAR0 and BAR2 (the vectors are bound by an `ivlink
 *           listen` run beside: binding one fails with EBUSY), print
 *           KDRV-UNPLUG-READY, then wait (up to -t) for the device to go:
 *           poll() must report POLLHUP, every call ENODEV, and the old
 *           mappings read all-ones and take writes without a signal;
 *   wait    -o OFF -v VALUE: wait (up to -t) until the 32-bit word at BAR2
 *           offset OFF holds VALUE (the host's go-ahead);
 *   set     -o OFF -v VALUE: store VALUE there (the guest's answer);
 *   bench   -n self-doorbell round trips each way (guest -> QEMU ->
 *           guest): mapped Doorbell + eventfd, IVL_DRV_RING + eventfd,
 *           mapped Doorbell + read(); prints ns per round trip.
 * Exit 0 iff every check passed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/uapi/ivshmem-drv.h>

static int failures;
static const char *node = "/dev/" IVL_DRV_NODE_PREFIX "0";
static long count = 1000;
static int timeout_ms = 60000;
static unsigned long long word_off;
static uint32_t word_val;
static long page;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (cond) {                                                \
			printf("KDRV-OK ");                                \
		} else {                                                   \
			printf("KDRV-FAIL ");                              \
			failures++;                                        \
		}                                                          \
		printf(__VA_ARGS__);                                       \
		printf("\n");                                              \
		fflush(stdout);                                            \
	} while (0)

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int open_dev(struct ivl_drv_info *info)
{
	int fd = open(node, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		printf("KDRV-FAIL open %s: %s\n", node, strerror(errno));
		failures++;
		return -1;
	}
	memset(info, 0, sizeof(*info));
	info->argsz = sizeof(*info);
	if (ioctl(fd, IVL_DRV_GET_INFO, info) < 0) {
		printf("KDRV-FAIL GET_INFO: %s\n", strerror(errno));
		failures++;
		close(fd);
		return -1;
	}
	return fd;
}

static unsigned long long sysfs_num(const char *attr)
{
	char path[256], buf[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/misc/%s/%s", strrchr(node, '/') + 1, attr);
	f = fopen(path, "re");
	if (!f || !fgets(buf, sizeof(buf), f)) {
		if (f)
			fclose(f);
		return ~0ull;
	}
	fclose(f);
	return strtoull(buf, NULL, 0);
}

/* Wait for eventfd @efd (nonblocking) to count; bounded by timeout_ms. */
static bool wait_efd(int efd, int ms)
{
	struct pollfd p = {.fd = efd, .events = POLLIN};
	uint64_t v;

	if (poll(&p, 1, ms) != 1)
		return false;
	return read(efd, &v, sizeof(v)) == sizeof(v) && v > 0;
}

static int bind_all(int fd, const struct ivl_drv_info *info, int *efd)
{
	for (unsigned v = 0; v < info->vectors; v++) {
		struct ivl_drv_eventfd b = {.vector = v};

		efd[v] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		b.fd = efd[v];
		if (efd[v] < 0 || ioctl(fd, IVL_DRV_SET_EVENTFD, &b) < 0)
			return -errno;
	}
	return 0;
}

static void ring_ioctl(int fd, uint32_t peer, uint32_t v)
{
	struct ivl_drv_ring r = {.peer = peer, .vector = v};

	if (ioctl(fd, IVL_DRV_RING, &r) < 0) {
		printf("KDRV-FAIL RING: %s\n", strerror(errno));
		failures++;
	}
}

static volatile uint32_t *map_regs(int fd, const struct ivl_drv_info *info)
{
	void *p;

	if (!(info->flags & IVL_DRV_INFO_REGS_MMAP))
		return NULL;
	p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)IVL_DRV_MMAP_REGS);
	if (p == MAP_FAILED)
		return NULL;
	return (volatile uint32_t *)((char *)p + info->regs_offset);
}

static void mode_abi(void)
{
	struct ivl_drv_info info;
	volatile uint32_t *regs;
	int fd, efd[IVL_DRV_MAX_VECTORS];
	uint64_t size, mask;
	uint8_t *whole, *part;
	void *p;

	fd = open_dev(&info);
	if (fd < 0)
		return;
	size = info.region_size;
	CHECK(info.abi_version == IVL_DRV_ABI_VERSION, "abi-version %u", info.abi_version);
	printf("KDRV-INFO ivposition=%u region_size=%" PRIu64 " vectors=%u revision=%u flags=%#x\n",
	       info.ivposition, size, info.vectors, info.revision, info.flags);
	CHECK(sysfs_num("ivposition") == info.ivposition, "sysfs-ivposition %llu",
	      sysfs_num("ivposition"));
	CHECK(sysfs_num("region_size") == size, "sysfs-region-size %llu", sysfs_num("region_size"));
	CHECK(sysfs_num("vectors") == info.vectors, "sysfs-vectors %llu", sysfs_num("vectors"));
	CHECK(sysfs_num("revision") == info.revision, "sysfs-revision %llu", sysfs_num("revision"));

	/* Partial mapping: the second half's first page, seen through the
	 * whole mapping too. */
	whole = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	part = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    (off_t)(size / 2));
	CHECK(whole != MAP_FAILED && part != MAP_FAILED, "map-whole-and-part");
	if (whole != MAP_FAILED && part != MAP_FAILED) {
		*(volatile uint32_t *)(part + 16) = 0x5eed1234;
		CHECK(*(volatile uint32_t *)(whole + size / 2 + 16) == 0x5eed1234,
		      "partial-map-aliases-whole");
		*(volatile uint32_t *)(whole + size / 2 + 16) = 0;
		munmap(part, (size_t)page * 2);
		/* The last page alone is fine; one more page is not. */
		p = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, (off_t)(size - page));
		CHECK(p != MAP_FAILED, "map-last-page");
		if (p != MAP_FAILED)
			munmap(p, (size_t)page);
		p = mmap(NULL, (size_t)page * 2, PROT_READ, MAP_SHARED, fd,
			 (off_t)(size - page));
		CHECK(p == MAP_FAILED && errno == EINVAL, "map-past-end-refused");
		p = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, (off_t)size);
		CHECK(p == MAP_FAILED && errno == EINVAL, "map-at-end-refused");
		p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		CHECK(p == MAP_FAILED && errno == EINVAL, "map-private-refused");
		p = mmap(NULL, (size_t)page * 2, PROT_READ, MAP_SHARED, fd,
			 (off_t)IVL_DRV_MMAP_REGS);
		CHECK(p == MAP_FAILED && errno == EINVAL, "map-regs-two-pages-refused");
		munmap(whole, size);
	}
	regs = map_regs(fd, &info);
	if (info.flags & IVL_DRV_INFO_REGS_MMAP) {
		CHECK(regs != NULL, "map-regs-page");
		if (regs)
			CHECK(regs[IVL_IVSHMEM_IVPOSITION / 4] == info.ivposition,
			      "regs-ivposition %u", regs[IVL_IVSHMEM_IVPOSITION / 4]);
	} else {
		printf("KDRV-NOTE the BAR0 page is not mappable on this machine\n");
	}
	{
		struct ivl_drv_ring bad = {.peer = 0x10000, .vector = 0};
		struct ivl_drv_eventfd be = {.vector = info.vectors, .fd = -1};

		CHECK(ioctl(fd, IVL_DRV_RING, &bad) < 0 && errno == EINVAL, "ring-bad-peer-refused");
		CHECK(ioctl(fd, IVL_DRV_SET_EVENTFD, &be) < 0 && errno == EINVAL,
		      "eventfd-bad-vector-refused");
		be.vector = 0;
		be.fd = 0; /* stdin: not an eventfd */
		CHECK(ioctl(fd, IVL_DRV_SET_EVENTFD, &be) < 0 && errno == EINVAL,
		      "eventfd-not-eventfd-refused");
		CHECK(ioctl(fd, _IO(IVL_DRV_IOC_TYPE, 0x7f)) < 0 && errno == ENOTTY,
		      "unknown-ioctl-refused");
		CHECK(read(fd, &mask, 4) < 0 && errno == EINVAL, "short-read-refused");
	}
	if (!(info.flags & IVL_DRV_INFO_DOORBELL) || info.ivposition > 0xffff) {
		CHECK(false, "doorbell device with a position");
		close(fd);
		return;
	}
	if (bind_all(fd, &info, efd) < 0) {
		CHECK(false, "bind-eventfds: %s", strerror(errno));
		close(fd);
		return;
	}
	/* A second open file cannot steal a bound vector. */
	{
		int fd2 = open(node, O_RDWR | O_CLOEXEC);
		struct ivl_drv_eventfd b = {.vector = 0, .fd = efd[0]};

		CHECK(fd2 >= 0 && ioctl(fd2, IVL_DRV_SET_EVENTFD, &b) < 0 && errno == EBUSY,
		      "eventfd-owned-by-other-file-busy");
		close(fd2);
	}
	for (unsigned v = 0; v < info.vectors; v++) {
		bool got;

		/* Drain the pending mask first. */
		fcntl(fd, F_SETFL, O_NONBLOCK);
		while (read(fd, &mask, 8) == 8)
			;
		fcntl(fd, F_SETFL, 0);
		if (regs) {
			regs[IVL_IVSHMEM_DOORBELL / 4] = info.ivposition << 16 | v;
			CHECK(wait_efd(efd[v], 10000), "self-doorbell-mmap-eventfd vector=%u", v);
		}
		ring_ioctl(fd, info.ivposition, v);
		got = wait_efd(efd[v], 10000);
		CHECK(got, "self-doorbell-ioctl-eventfd vector=%u", v);
		{
			struct pollfd pf = {.fd = fd, .events = POLLIN};

			CHECK(poll(&pf, 1, 10000) == 1 && (pf.revents & POLLIN),
			      "poll-pending vector=%u", v);
			mask = 0;
			CHECK(read(fd, &mask, 8) == 8 && (mask & (1ull << v)),
			      "read-mask vector=%u mask=%#" PRIx64, v, mask);
		}
	}
	close(fd);
	for (unsigned v = 0; v < info.vectors; v++)
		close(efd[v]);
}

static void mode_cycle(void)
{
	struct ivl_drv_info info;
	int fd, efd[IVL_DRV_MAX_VECTORS];
	unsigned got = 0;

	fd = open_dev(&info);
	if (fd < 0)
		return;
	if (bind_all(fd, &info, efd) < 0) {
		CHECK(false, "cycle-bind: %s", strerror(errno));
	} else {
		for (unsigned v = 0; v < info.vectors; v++) {
			ring_ioctl(fd, info.ivposition, v);
			got += wait_efd(efd[v], 10000);
		}
		if (got != info.vectors)
			CHECK(false, "cycle-doorbells %u of %u", got, info.vectors);
	}
	close(fd);
	for (unsigned v = 0; v < info.vectors; v++)
		close(efd[v]);
}

static void mode_unplug(void)
{
	struct ivl_drv_info info;
	volatile uint32_t *regs;
	struct pollfd pf;
	int fd, efd[IVL_DRV_MAX_VECTORS];
	uint64_t mask;
	uint8_t *shm;
	int r;

	fd = open_dev(&info);
	if (fd < 0)
		return;
	shm = mmap(NULL, info.region_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	regs = map_regs(fd, &info);
	CHECK(shm != MAP_FAILED, "unplug-setup");
	if (shm == MAP_FAILED)
		return;
	efd[0] = eventfd(0, EFD_CLOEXEC);
	{
		/* Until the listener has bound vector 0, binding succeeds:
		 * undo and try again (bounded). */
		struct ivl_drv_eventfd b = {.vector = 0, .fd = efd[0]};
		struct ivl_drv_eventfd un = {.vector = 0, .fd = -1};
		int tries = 0;

		while (ioctl(fd, IVL_DRV_SET_EVENTFD, &b) == 0 && tries++ < 600) {
			ioctl(fd, IVL_DRV_SET_EVENTFD, &un);
			usleep(50000);
		}
		CHECK(errno == EBUSY, "unplug-vectors-held-by-listen");
	}
	(void)shm[0]; /* fault it in: the removal must zap it */
	if (regs)
		(void)regs[IVL_IVSHMEM_IVPOSITION / 4];
	printf("KDRV-UNPLUG-READY\n");
	fflush(stdout);
	pf.fd = fd;
	pf.events = POLLIN;
	for (;;) {
		r = poll(&pf, 1, timeout_ms);
		if (r <= 0 || (pf.revents & (POLLHUP | POLLERR)))
			break;
		while (read(fd, &mask, 8) == 8 && !(pf.revents & POLLHUP))
			break;
	}
	CHECK(r == 1 && (pf.revents & POLLHUP), "unplug-pollhup revents=%#x", pf.revents);
	CHECK(ioctl(fd, IVL_DRV_GET_INFO, &info) < 0 && errno == ENODEV, "unplug-ioctl-enodev");
	CHECK(read(fd, &mask, 8) < 0 && errno == ENODEV, "unplug-read-enodev");
	CHECK(*(volatile uint32_t *)shm == 0xffffffffu, "unplug-bar2-reads-ones");
	*(volatile uint32_t *)shm = 0; /* swallowed, no signal */
	if (regs) {
		CHECK(regs[IVL_IVSHMEM_IVPOSITION / 4] == 0xffffffffu, "unplug-regs-read-ones");
		regs[IVL_IVSHMEM_DOORBELL / 4] = 0;
	}
	CHECK(mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED &&
		      errno == ENODEV,
	      "unplug-mmap-enodev");
	close(fd);
	printf("KDRV-UNPLUG-CLOSED\n");
}

static void mode_wait(bool set)
{
	struct ivl_drv_info info;
	volatile uint32_t *w;
	uint8_t *shm;
	int fd, waited = 0;

	fd = open_dev(&info);
	if (fd < 0)
		return;
	if (word_off > info.region_size - 4 || word_off % 4) {
		CHECK(false, "wait-offset %llu", word_off);
		close(fd);
		return;
	}
	shm = mmap(NULL, info.region_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (shm == MAP_FAILED) {
		CHECK(false, "wait-map: %s", strerror(errno));
		close(fd);
		return;
	}
	w = (volatile uint32_t *)(shm + word_off);
	if (set)
		*w = word_val;
	while (*w != word_val && waited < timeout_ms) {
		usleep(10000);
		waited += 10;
	}
	CHECK(*w == word_val, "wait-word %#x at %#llx", word_val, word_off);
	munmap(shm, info.region_size);
	close(fd);
}

static void report(const char *what, int64_t ns, long n)
{
	printf("KDRV-BENCH %s n=%ld ns_per_rt=%" PRId64 "\n", what, n, n ? ns / n : 0);
}

/* One self-doorbell round trip of each way: 0 mapped Doorbell + eventfd,
 * 1 IVL_DRV_RING + eventfd, 2 mapped Doorbell + read(). */
static bool round_trip(int way, int fd, volatile uint32_t *regs, uint32_t pos, int efd)
{
	uint64_t mask;

	if (way == 1) {
		ring_ioctl(fd, pos, 0);
		return wait_efd(efd, 10000);
	}
	regs[IVL_IVSHMEM_DOORBELL / 4] = pos << 16;
	if (way == 0)
		return wait_efd(efd, 10000);
	if (read(fd, &mask, 8) != 8)
		return false;
	/* The eventfd counted too: drain it, outside the timing's point. */
	wait_efd(efd, 0);
	return true;
}

static void mode_bench(void)
{
	static const char *const names[] = {"mmap-ring+eventfd", "ioctl-ring+eventfd",
					    "mmap-ring+read"};
	struct ivl_drv_info info;
	volatile uint32_t *regs;
	int fd, efd[IVL_DRV_MAX_VECTORS];
	int64_t ns[3] = {0}, t;
	long done[3] = {0};
	int ways;

	fd = open_dev(&info);
	if (fd < 0)
		return;
	regs = map_regs(fd, &info);
	if (bind_all(fd, &info, efd) < 0 || !info.vectors) {
		CHECK(false, "bench-bind");
		return;
	}
	ways = regs ? 3 : 1;
	/* Blocks of 50 round trips of each way in turn: every way sees the
	 * same phases of a loaded host. */
	for (long i = 0; i < count; i += 50) {
		for (int w = 0; w < 3; w++) {
			int way = ways == 3 ? w : 1;

			if (ways == 1 && w)
				break;
			t = now_ns();
			for (int k = 0; k < 50 && i + k < count; k++) {
				if (!round_trip(way, fd, regs, info.ivposition, efd[0])) {
					CHECK(false, "bench-round-trip %s", names[way]);
					close(fd);
					return;
				}
				done[way]++;
			}
			ns[way] += now_ns() - t;
		}
	}
	for (int w = 0; w < 3; w++)
		if (done[w])
			report(names[w], ns[w], done[w]);
	close(fd);
}

int main(int argc, char **argv)
{
	int c;

	if (argc < 2) {
		fprintf(stderr, "usage: kdrv-test abi|cycle|unplug|bench [-d NODE] [-n N] [-t MS]\n");
		return 2;
	}
	page = sysconf(_SC_PAGESIZE);
	optind = 2;
	while ((c = getopt(argc, argv, "d:n:t:o:v:")) != -1) {
		switch (c) {
		case 'o':
			word_off = strtoull(optarg, NULL, 0);
			break;
		case 'v':
			word_val = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'd':
			node = optarg;
			break;
		case 'n':
			count = strtol(optarg, NULL, 0);
			break;
		case 't':
			timeout_ms = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (!strcmp(argv[1], "abi"))
		mode_abi();
	else if (!strcmp(argv[1], "cycle"))
		mode_cycle();
	else if (!strcmp(argv[1], "unplug"))
		mode_unplug();
	else if (!strcmp(argv[1], "wait"))
		mode_wait(false);
	else if (!strcmp(argv[1], "set"))
		mode_wait(true);
	else if (!strcmp(argv[1], "bench"))
		mode_bench();
	else
		return 2;
	printf("KDRV-%s %s\n", failures ? "FAIL" : "PASS", argv[1]);
	return failures ? 1 : 0;
}
