/* SPDX-License-Identifier: MIT */
/*
 * blkbench DEV MIB OPS [KIB]: in a guest, time O_DIRECT I/O on block
 * device DEV in one process (no process start per I/O): sequential KIB
 * KiB (default 1024) writes then reads over the first MIB MiB, then OPS
 * random 4 KiB writes then reads at offsets from a fixed LCG inside that
 * range.  Prints one line "BLKBENCH dev=DEV seq_write_mbs=...
 * seq_read_mbs=... rand_write_mbs=... rand_read_mbs=..." (MB = 10^6
 * bytes).
 * blkbench copy MIB: the guest CPU's copy rate, the reference for a
 * device whose data the guest copies (virtio_ivlink's bounce buffers):
 * MIB MiB copied 1 MiB at a time between two buffers, with "rep movsq"
 * (what the x86 kernel's memcpy runs on this CPU model) and with an
 * unrolled loop of 8-byte moves.  Prints "BLKBENCH copy repmovsq_mbs=...
 * loop_mbs=...".
 * Built static by tests/qemu/bench-guest-blk.sh; a measurement, not a test.
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

static void copy_rep(void *d, const void *s, size_t n)
{
#if defined(__x86_64__)
	size_t q = n / 8;
	__asm__ volatile("rep movsq" : "+D"(d), "+S"(s), "+c"(q) : : "memory");
#else
	memcpy(d, s, n);
#endif
}

static void copy_loop(void *d, const void *s, size_t n)
{
	volatile uint64_t *dd = d; /* volatile: not turned back into memcpy */
	const uint64_t *ss = s;
	for (size_t i = 0; i < n / 8; i += 8) {
		uint64_t a = ss[i], b = ss[i + 1], c = ss[i + 2], e = ss[i + 3];
		uint64_t f = ss[i + 4], g = ss[i + 5], h = ss[i + 6], k = ss[i + 7];
		dd[i] = a, dd[i + 1] = b, dd[i + 2] = c, dd[i + 3] = e;
		dd[i + 4] = f, dd[i + 5] = g, dd[i + 6] = h, dd[i + 7] = k;
	}
}

static double copy_rate(void (*fn)(void *, const void *, size_t), unsigned mib, uint8_t *a,
			uint8_t *b)
{
	double t0 = now();
	for (unsigned k = 0; k < mib; k++)
		fn(k & 1 ? a : b, k & 1 ? b : a, 1 << 20);
	return (double)mib * (1 << 20) / 1e6 / (now() - t0);
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "copy")) {
		unsigned mib = (unsigned)atoi(argv[2]);
		uint8_t *a = aligned_alloc(4096, 1 << 20), *b = aligned_alloc(4096, 1 << 20);
		if (!a || !b || !mib)
			return 1;
		memset(a, 0x5a, 1 << 20);
		memset(b, 0xa5, 1 << 20);
		double r = copy_rate(copy_rep, mib, a, b);
		double l = copy_rate(copy_loop, mib, a, b);
		printf("BLKBENCH copy mib=%u repmovsq_mbs=%.1f loop_mbs=%.1f\n", mib, r, l);
		return 0;
	}
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: blkbench DEV MIB OPS [KIB] | blkbench copy MIB\n");
		return 2;
	}
	char path[128];
	snprintf(path, sizeof(path), "/dev/%s", argv[1]);
	unsigned mib = (unsigned)atoi(argv[2]), ops = (unsigned)atoi(argv[3]);
	size_t bs = argc == 5 ? (size_t)atoi(argv[4]) << 10 : 1 << 20;
	int fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	uint8_t *buf = aligned_alloc(4096, 1 << 20);
	if (fd < 0 || !buf || !mib || !ops || bs < 4096 || bs > (1 << 20) || bs % 4096) {
		perror(path);
		return 1;
	}
	memset(buf, 0x5a, 1 << 20);
	uint64_t span = (uint64_t)mib << 20;
	unsigned nseq = (unsigned)(span / bs);
	double sw = run(fd, 1, bs, nseq, span, 0, buf);
	double sr = run(fd, 0, bs, nseq, span, 0, buf);
	double rw = run(fd, 1, 4096, ops, span, 1, buf);
	double rr = run(fd, 0, 4096, ops, span, 1, buf);
	printf("BLKBENCH dev=%s mib=%u ops=%u kib=%zu seq_write_mbs=%.1f seq_read_mbs=%.1f "
	       "rand_write_mbs=%.2f rand_read_mbs=%.2f\n",
	       argv[1], mib, ops, bs >> 10, sw, sr, rw, rr);
	close(fd);
	return 0;
}
