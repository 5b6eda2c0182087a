/* SPDX-License-Identifier: MIT */
/*
 * ivl-plain-guest: a static guest program for run-plain-test.sh, written
 * against the public API only.  It opens the ivshmem-plain device with the
 * guest backend (no VFIO, no doorbells), runs the serverless claim protocol
 * on BAR2 (ivl_plain_attach), then talks to the host through memory alone:
 *
 *   app + 0x1000  the pattern PATTERN (the host checks it)
 *   app + 0x104   a nonce derived from the header's epoch
 *   app + 0x100   GUEST_FLAG, stored last with release
 *   app + 0x200   the host's answer: nonce + 1 (polled with acquire)
 *
 * Every result is one "GUEST-..." line on stdout (the serial console); exit
 * 0 iff every check passed.
 *
 * usage: ivl-plain-guest [-s SIZE] [-t MS] [-W] [-F 0|1]
 *   -s: expected BAR2 size; -t: bound for every wait (default 30000);
 *   -W: wait until somebody else claimed the header before attaching (the
 *   host formats); -F: expect this guest (1) or somebody else (0) to format.
 */
#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ivlink/link.h>
#include <ivlink/log.h>
#include <ivlink/plain.h>

#define GUEST_FLAG 0x600d0001u
#define PATTERN "ivlink-plain-guest-pattern"

static int failures;

static void check(bool ok, const char *what)
{
	printf("GUEST-CHECK-%s %s\n", ok ? "OK" : "FAIL", what);
	if (!ok)
		failures++;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	struct ivl_link_guest_opts go = {.no_vfio = true, .timeout_ms = 10000};
	struct ivl_plain_opts po = {0};
	struct ivl_shm_header h;
	struct ivl_link *l = NULL;
	unsigned long long want_size = 0;
	int timeout = 30000, expect_fmt = -1, c, r;
	bool wait_claim = false;
	uint64_t size;
	uint8_t *base, *app;
	uint32_t nonce;
	int64_t end;

	while ((c = getopt(argc, argv, "s:t:WF:")) != -1) {
		switch (c) {
		case 's':
			want_size = strtoull(optarg, NULL, 0);
			break;
		case 't':
			timeout = atoi(optarg);
			break;
		case 'W':
			wait_claim = true;
			break;
		case 'F':
			expect_fmt = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: ivl-plain-guest [-s SIZE] [-t MS] [-W] [-F 0|1]\n");
			return 2;
		}
	}
	ivl_log_set(ivl_log_stderr, (void *)"guest", IVL_LOG_INFO);
	r = ivl_link_guest_new(&l, &go);
	if (r < 0) {
		printf("GUEST-ERROR ivl_link_guest_new: %s\n", strerror(-r));
		return 1;
	}
	base = ivl_link_region(l, &size);
	printf("GUEST-PLAIN-LINK id=%d size=%llu access=%s\n", ivl_link_id(l),
	       (unsigned long long)size, ivl_link_guest_access(l));
	check(!want_size || size == want_size, "bar2-size");
	/* No doorbells: ringing another peer fails (-ENOTSUP without a
	 * header, -ENOENT with one: nobody is in the peer table). */
	r = ivl_link_ring(l, 7, 0);
	printf("GUEST-PLAIN-RING peer=7 rc=%d\n", r);
	check(r == -ENOTSUP || r == -ENOENT, "ring-fails");
	printf("GUEST-READY\n");
	fflush(stdout);

	end = now_ms() + timeout;
	if (wait_claim) {
		/* The host formats: look at the magic word only until it is
		 * nonzero (a claim or a header), then attach like anybody. */
		_Atomic uint64_t *magic = (_Atomic uint64_t *)(void *)base;

		while (!atomic_load_explicit(magic, memory_order_acquire) && now_ms() < end)
			nap_ms(5);
	}
	po.timeout_ms = timeout;
	r = ivl_plain_attach(base, size, &po, &h);
	if (r < 0) {
		printf("GUEST-ERROR ivl_plain_attach: %s\n", strerror(-r));
		ivl_link_free(l);
		return 1;
	}
	printf("GUEST-PLAIN-HEADER formatted=%d epoch=0x%016llx header_size=%u max_peers=%u "
	       "features=0x%x\n",
	       r & IVL_PLAIN_FORMATTED ? 1 : 0, (unsigned long long)h.epoch, h.header_size,
	       h.max_peers, h.features);
	if (expect_fmt >= 0)
		check(!!(r & IVL_PLAIN_FORMATTED) == !!expect_fmt, "formatter");
	check(h.region_size == size && (h.features & IVL_FEAT_PLAIN), "header");

	/* The validated copy bounds the app area: header_size < size. */
	app = base + h.header_size;
	nonce = (uint32_t)(h.epoch ^ (h.epoch >> 32)) | 1u;
	memcpy(app + 0x1000, PATTERN, sizeof(PATTERN));
	memcpy(app + 0x104, &nonce, sizeof(nonce));
	/* Publishes the pattern and the nonce: pairs with the host's read of
	 * the flag before it reads them. */
	atomic_store_explicit((_Atomic uint32_t *)(void *)(app + 0x100), GUEST_FLAG,
			      memory_order_release);
	printf("GUEST-PLAIN-WROTE nonce=0x%08x\n", nonce);
	fflush(stdout);

	for (;;) {
		uint32_t ans = atomic_load_explicit((_Atomic uint32_t *)(void *)(app + 0x200),
						    memory_order_acquire);

		if (ans == nonce + 1) {
			printf("GUEST-PLAIN-ANSWER 0x%08x\n", ans);
			check(true, "answer");
			break;
		}
		if (now_ms() >= end) {
			printf("GUEST-ERROR no answer from the host (last 0x%08x)\n", ans);
			failures++;
			break;
		}
		nap_ms(5);
	}
	ivl_link_free(l);
	printf("GUEST-PLAIN-DONE failures=%d\n", failures);
	return failures ? 1 : 0;
}
