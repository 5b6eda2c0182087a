/* SPDX-License-Identifier: MIT */
/*
 * ivl-host-peer: the host side of the real-QEMU doorbell test, written
 * against the public link API (ivl_link_host_new), so the test also
 * exercises the library against a real QEMU guest.
 *
 * Steps, in this order (each optional):
 *   1. connect to the server (-S), print "HOST-ID <n>", check -i;
 *   2. write a pattern at -w OFF (the guest polls for it: "host is ready");
 *   3. wait until every vector given with -e has been rung (bounded by -t);
 *      with -a OFF, acknowledge each one as it arrives: set bit VEC of the
 *      64-bit word at application-area offset OFF + 8 * my ID (the guest
 *      re-rings what is not acknowledged: see ivl-guest-test -A);
 *   4. verify the guest's pattern at -c OFF;
 *   5. ring every PEER:VEC given with -r.
 * Exit status 0 when every requested check passed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/link.h>

#define MAX_ITEMS 64

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Must match the guest's ivshmem-probe.c pattern(). */
static uint8_t pattern(unsigned seed, size_t i)
{
	return (uint8_t)((i * 131u + seed * 7u + (i >> 8)) & 0xff);
}

static int range_ok(uint64_t size, long long off, size_t len)
{
	return off >= 0 && (uint64_t)off <= size && len <= size - (uint64_t)off;
}

static void usage(void)
{
	fputs("usage: ivl-host-peer -S SOCKET [-i ID] [-w OFF] [-c OFF] [-n LEN]\n"
	      "          [-p WSEED] [-q CSEED] [-e VEC]... [-r PEER:VEC]... [-t MS]\n"
	      "          [-a ACK-OFF] [-f FILE: ring only once FILE exists]\n",
	      stderr);
}

int main(int argc, char **argv)
{
	struct ivl_link_host_opts lo = { .name = "qemu-test-host", .timeout_ms = 5000 };
	struct ivl_link *l = NULL;
	long long woff = -1, coff = -1, aoff = -1, deadline;
	long expect_id = -1;
	size_t len = 4096;
	unsigned wseed = 2, cseed = 3;
	int waitv[MAX_ITEMS], nwait = 0, seen[64] = { 0 };
	uint32_t rings[MAX_ITEMS];
	int nrings = 0, c, rc, bad = 0;
	uint64_t size, app_size;
	const char *go_file = NULL;
	uint8_t *mem;
	void *app;
	long long app_off;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt(argc, argv, "S:i:w:c:n:p:q:e:r:t:a:f:h")) != -1) {
		char *end = NULL;
		unsigned long peer, vec;

		errno = 0;
		switch (c) {
		case 'S':
			lo.socket_path = optarg;
			break;
		case 'i':
			expect_id = strtol(optarg, &end, 0);
			break;
		case 'w':
			woff = strtoll(optarg, &end, 0);
			break;
		case 'c':
			coff = strtoll(optarg, &end, 0);
			break;
		case 'n':
			len = strtoull(optarg, &end, 0);
			break;
		case 'p':
			wseed = (unsigned)strtoul(optarg, &end, 0);
			break;
		case 'q':
			cseed = (unsigned)strtoul(optarg, &end, 0);
			break;
		case 'e':
			if (nwait == MAX_ITEMS)
				return 2;
			waitv[nwait] = (int)strtol(optarg, &end, 0);
			if (waitv[nwait] < 0 || waitv[nwait] > 63)
				return 2;
			nwait++;
			break;
		case 'r':
			peer = strtoul(optarg, &end, 0);
			if (*end != ':' || peer > 0xffff || nrings == MAX_ITEMS)
				return 2;
			vec = strtoul(end + 1, &end, 0);
			if (vec > 0xffff)
				return 2;
			rings[nrings++] = (uint32_t)(peer << 16 | vec);
			break;
		case 't':
			lo.timeout_ms = (int)strtol(optarg, &end, 0);
			break;
		case 'a':
			aoff = strtoll(optarg, &end, 0);
			break;
		case 'f':
			go_file = optarg;
			break;
		default:
			usage();
			return 2;
		}
		if (errno || (end && *end)) {
			usage();
			return 2;
		}
	}
	if (!lo.socket_path || optind != argc) {
		usage();
		return 2;
	}

	rc = ivl_link_host_new(&l, &lo);
	if (rc) {
		printf("HOST-ERROR connect %s: %s\n", lo.socket_path, strerror(-rc));
		return 1;
	}
	mem = ivl_link_region(l, &size);
	printf("HOST-ID %d vectors=%u region=%" PRIu64 "\n", ivl_link_id(l), ivl_link_vectors(l),
	       size);
	/* The test's offsets must not scribble on the ivlink header. */
	app = ivl_link_app_area(l, &app_size);
	app_off = (long long)((uint8_t *)app - mem);
	printf("HOST-APP off=%lld size=%" PRIu64 "\n", app_off, app_size);
	if ((woff >= 0 && woff < app_off) || (coff >= 0 && coff < app_off)) {
		printf("HOST-ERROR offsets must be >= the application area (%lld)\n", app_off);
		goto out_fail;
	}
	if (aoff >= 0 && (aoff % 8 || !range_ok(app_size, aoff, 8 * 65536))) {
		printf("HOST-ERROR ack offset %lld: not 8-aligned or past the application area\n",
		       aoff);
		goto out_fail;
	}
	if (expect_id >= 0 && ivl_link_id(l) != expect_id) {
		printf("HOST-CHECK-FAIL id %d != expected %ld\n", ivl_link_id(l), expect_id);
		bad = 1;
	}

	if (woff >= 0) {
		if (!range_ok(size, woff, len)) {
			printf("HOST-ERROR write range outside the region\n");
			goto out_fail;
		}
		for (size_t i = 0; i < len; i++)
			mem[woff + (long long)i] = pattern(wseed, i);
		/* Pairs with nothing formal: the guest polls the bytes themselves. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		printf("HOST-WROTE off=%lld len=%zu seed=%u\n", woff, len, wseed);
	}

	deadline = now_ms() + (lo.timeout_ms > 0 ? lo.timeout_ms : 5000);
	for (;;) {
		struct ivl_link_event ev[16];
		int missing = 0, n;
		long long left;

		for (int i = 0; i < nwait; i++)
			missing += !seen[waitv[i]];
		if (!missing)
			break;
		left = deadline - now_ms();
		if (left <= 0) {
			for (int i = 0; i < nwait; i++)
				if (!seen[waitv[i]])
					printf("HOST-DOORBELL-MISSING %d\n", waitv[i]);
			bad = 1;
			break;
		}
		n = ivl_link_wait(l, ev, 16, (int)left);
		if (n == -EINTR)
			continue;
		if (n < 0) {
			printf("HOST-ERROR wait: %s\n", strerror(-n));
			goto out_fail;
		}
		for (int i = 0; i < n; i++) {
			switch (ev[i].type) {
			case IVL_LINK_JOIN:
				printf("HOST-JOIN %u\n", ev[i].peer);
				break;
			case IVL_LINK_LEAVE:
				printf("HOST-LEAVE %u\n", ev[i].peer);
				break;
			case IVL_LINK_DOORBELL:
				printf("HOST-DOORBELL vector=%u count=%u\n", ev[i].vector,
				       ev[i].count);
				if (ev[i].vector < 64)
					seen[ev[i].vector] += (int)ev[i].count;
				if (aoff >= 0 && ev[i].vector < 64)
					__atomic_fetch_or((uint64_t *)((uint8_t *)app + aoff) +
							      ivl_link_id(l),
							  1ull << ev[i].vector, __ATOMIC_RELEASE);
				break;
			case IVL_LINK_DOWN:
				printf("HOST-ERROR server went away\n");
				goto out_fail;
			}
		}
	}
	if (nwait && !bad)
		printf("HOST-DOORBELL-OK %d vector(s)\n", nwait);

	if (coff >= 0) {
		size_t i;

		if (!range_ok(size, coff, len)) {
			printf("HOST-ERROR verify range outside the region\n");
			goto out_fail;
		}
		for (i = 0; i < len; i++)
			if (((volatile uint8_t *)mem)[coff + (long long)i] != pattern(cseed, i))
				break;
		if (i == len) {
			printf("HOST-VERIFY-OK off=%lld len=%zu seed=%u\n", coff, len, cseed);
		} else {
			printf("HOST-CHECK-FAIL verify off=%lld byte %zu\n", coff, i);
			bad = 1;
		}
	}

	/* -f: ring only once the script created the file (bounded by -t). */
	while (go_file && access(go_file, F_OK) != 0) {
		struct ivl_link_event ev[16];

		if (now_ms() >= deadline) {
			printf("HOST-CHECK-FAIL %s never appeared\n", go_file);
			goto out_fail;
		}
		if (ivl_link_wait(l, ev, 16, 50) < 0) {
			printf("HOST-ERROR wait while waiting for %s\n", go_file);
			goto out_fail;
		}
	}
	for (int i = 0; i < nrings; i++) {
		rc = ivl_link_ring(l, (uint16_t)(rings[i] >> 16), (uint16_t)(rings[i] & 0xffff));
		if (rc) {
			printf("HOST-CHECK-FAIL ring %u:%u: %s\n", rings[i] >> 16,
			       rings[i] & 0xffff, strerror(-rc));
			bad = 1;
		} else {
			printf("HOST-RING peer=%u vector=%u\n", rings[i] >> 16, rings[i] & 0xffff);
		}
	}

	ivl_link_free(l);
	printf("HOST-%s\n", bad ? "FAIL" : "OK");
	return bad;

out_fail:
	ivl_link_free(l);
	printf("HOST-FAIL\n");
	return 1;
}
