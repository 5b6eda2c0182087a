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
 * MODE: link | pair | raw | hostile (scenario.h); -i, -s, -v: expected ID,
 * BAR2 size and vectors; -P: the peers; -t: the scenario's bound; -N: no
 * VFIO; -A: the peers acknowledge doorbells at this application offset.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/link.h>

#include "scenario.h"

int main(int argc, char **argv)
{
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
	while ((c = getopt(argc, argv, "d:i:s:v:P:t:NA:")) != -1) {
		switch (c) {
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
	failures = scn_run(l, &so);
	ivl_link_free(l);
	printf("GUEST-%s\n", failures ? "FAIL" : "PASS");
	fflush(stdout);
	return failures ? 1 : 0;
}
