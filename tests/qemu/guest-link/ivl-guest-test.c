/* SPDX-License-Identifier: MIT */
/*
 * ivl-guest-test: a static guest program written only against the public
 * link API, for run-link-test.sh: it opens the ivshmem PCI device
 * (ivl_link_guest_new) and runs one scenario of scenario.c on it.  Every
 * result is one "GUEST-..." line on stdout (the serial console); exit 0 iff
 * every check passed.  The same scenarios run in process against the
 * ivshmem device model (tests/integration/link/test_model_conformance.c).
 *
 * usage: ivl-guest-test MODE [-d DEV] [-i ID] [-s SIZE] [-v VECTORS]
 *                      [-P PEER]... [-t MS] [-N] [-A ACK-OFF]
 * MODE: link | pair | raw | hostile (scenario.h), or bench: -n self-doorbell
 * round trips (ring my own vector 0, wait for it: guest -> QEMU -> guest)
 * through whatever reaches the device, printed as "GUEST-BENCH access=A
 * n=N ns_per_rt=T" (run-kernel-test.sh bench); -i, -s, -v: expected ID,
 * BAR2 size and vectors; -P: the peers; -t: the scenario's bound; -N: no
 * VFIO; -A: the peers acknowledge doorbells at this application offset.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ivlink/link.h>

#include "scenario.h"

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Self-doorbell round trips on vector 0; 0 when all @n came back. */
static int bench(struct ivl_link *l, long n)
{
	uint16_t self = (uint16_t)ivl_link_id(l);
	struct ivl_link_event ev[8];
	int64_t t = now_ns();
	long i;

	for (i = 0; i < n; i++) {
		bool got = false;

		if (ivl_link_ring(l, self, 0) < 0)
			break;
		while (!got) {
			int k = ivl_link_wait(l, ev, 8, 10000);

			if (k <= 0)
				break;
			for (int j = 0; j < k; j++)
				got |= ev[j].type == IVL_LINK_DOORBELL && ev[j].vector == 0;
		}
		if (!got)
			break;
	}
	printf("GUEST-BENCH access=%s n=%ld ns_per_rt=%" PRId64 "\n", ivl_link_guest_access(l), i,
	       i ? (now_ns() - t) / i : 0);
	return i == n ? 0 : 1;
}

int main(int argc, char **argv)
{
	long count = 1000;
	struct ivl_link_guest_opts o = {.timeout_ms = 10000};
	struct scn_opts so;
	struct ivl_link *l;
	int c, r, failures;

	if (argc < 2) {
		fprintf(stderr, "usage: ivl-guest-test link|pair|raw|hostile [options]\n");
		return 2;
	}
	scn_opts_init(&so);
	so.mode = argv[1];
	optind = 2;
	while ((c = getopt(argc, argv, "d:i:s:v:P:t:NA:n:")) != -1) {
		switch (c) {
		case 'n':
			count = strtol(optarg, NULL, 0);
			break;
		case 'd':
			o.device = optarg;
			break;
		case 'i':
			so.expect_id = strtol(optarg, NULL, 0);
			break;
		case 's':
			so.expect_size = strtoull(optarg, NULL, 0);
			break;
		case 'v':
			so.expect_vectors = strtol(optarg, NULL, 0);
			break;
		case 'P':
			if (so.npeers < SCN_MAX_PEERS)
				so.peers[so.npeers++] = (unsigned)strtoul(optarg, NULL, 0) & 0xffff;
			break;
		case 't':
			so.timeout_ms = atoi(optarg);
			break;
		case 'N':
			o.no_vfio = true;
			break;
		case 'A':
			so.ack_off = strtoll(optarg, NULL, 0);
			break;
		default:
			return 2;
		}
	}
	r = ivl_link_guest_new(&l, &o);
	if (r < 0) {
		printf("GUEST-ERROR ivl_link_guest_new: %s\n", strerror(-r));
		return 1;
	}
	failures = strcmp(so.mode, "bench") ? scn_run(l, &so) : bench(l, count);
	ivl_link_free(l);
	printf("GUEST-%s\n", failures ? "FAIL" : "PASS");
	fflush(stdout);
	return failures ? 1 : 0;
}
