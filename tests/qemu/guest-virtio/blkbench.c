/* SPDX-License-Identifier: MIT */
/*
 * blkbench DEV MIB OPS: in a guest, time O_DIRECT I/O on block device DEV
 * in one process (no process start per I/O): sequential 1 MiB writes then
 * reads over the first MIB MiB, then OPS random 4 KiB writes then reads at
 * offsets from a fixed LCG inside that range.  Prints one line
 * "BLKBENCH dev=DEV seq_write_mbs=... seq_read_mbs=... rand_write_mbs=...
 * rand_read_mbs=..." (MB = 10^6 bytes).  Built static by
 * tests/qemu/bench-guest-blk.sh; a measurement, not a test.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* MB/s of @n transfers of @bs bytes at offsets from @off(k). */
static double run(int fd, int write, size_t bs, unsigned n, uint64_t span, int random,
		  uint8_t *buf)
{
	uint64_t x = 12345;
	double t0 = now();
	for (unsigned k = 0; k < n; k++) {
		uint64_t off = (uint64_t)k * bs;
		if (random) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			off = (x >> 33) % (span / bs) * bs;
		}
		ssize_t r = write ? pwrite(fd, buf, bs, (off_t)off) : pread(fd, buf, bs, (off_t)off);
		if (r != (ssize_t)bs) {
			perror(write ? "pwrite" : "pread");
			exit(1);
		}
	}
	return (double)n * (double)bs / 1e6 / (now() - t0);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: blkbench DEV MIB OPS\n");
		return 2;
	}
	char path[128];
	snprintf(path, sizeof(path), "/dev/%s", argv[1]);
	unsigned mib = (unsigned)atoi(argv[2]), ops = (unsigned)atoi(argv[3]);
	int fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	uint8_t *buf = aligned_alloc(4096, 1 << 20);
	if (fd < 0 || !buf || !mib || !ops) {
		perror(path);
		return 1;
	}
	memset(buf, 0x5a, 1 << 20);
	uint64_t span = (uint64_t)mib << 20;
	double sw = run(fd, 1, 1 << 20, mib, span, 0, buf);
	double sr = run(fd, 0, 1 << 20, mib, span, 0, buf);
	double rw = run(fd, 1, 4096, ops, span, 1, buf);
	double rr = run(fd, 0, 4096, ops, span, 1, buf);
	printf("BLKBENCH dev=%s mib=%u ops=%u seq_write_mbs=%.1f seq_read_mbs=%.1f "
	       "rand_write_mbs=%.2f rand_read_mbs=%.2f\n",
	       argv[1], mib, ops, sw, sr, rw, rr);
	close(fd);
	return 0;
}
