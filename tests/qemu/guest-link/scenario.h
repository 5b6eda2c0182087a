/* SPDX-License-Identifier: MIT */
/*
 * The guest conformance scenarios (link, pair, raw, hostile), written only
 * against the public link API, on a link someone else opened: a real
 * ivshmem PCI device inside a QEMU guest (ivl-guest-test.c) or the ivshmem
 * device model in process (tests/integration/link/test_model_conformance.c).
 * Both print the same "GUEST-..." lines and are held to the same checks.
 *
 *   link     wait for each peer to JOIN (peer table), ring each on all its
 *            vectors, wait for a doorbell on each of my vectors, then wait
 *            for each peer to LEAVE.  With ack_off >= 0, a peer acknowledges
 *            each vector it got (bit VEC of the 64-bit word at application
 *            offset ack_off + 8 * its ID) and what is not acknowledged is
 *            rung again every 250 ms: a peer's entry turns READY before
 *            this guest's device has the peer's eventfds from the server,
 *            and the device drops a doorbell to a vector it has no eventfd
 *            for yet;
 *   pair     as link without the LEAVE wait (two guests ringing each other);
 *   raw      a server with --raw: no header, no peers, peer_vectors(any) =
 *            the device's vectors, and the whole region still zero;
 *   hostile  wait for the peers, then write garbage over the whole ivlink
 *            header and peer table, then ring the peers' vector 0 once more
 *            (before any rescan: the device drops nothing it can deliver).
 */
#ifndef IVL_GUEST_SCENARIO_H
#define IVL_GUEST_SCENARIO_H

#include <stdio.h>

#include <ivlink/link.h>

#define SCN_MAX_PEERS 8

struct scn_opts {
	const char *mode;		/* link | pair | raw | hostile */
	long expect_id;			/* -1: not checked */
	unsigned long long expect_size; /* 0: not checked */
	long expect_vectors;		/* -1: not checked */
	unsigned peers[SCN_MAX_PEERS];
	int npeers;
	int timeout_ms;	   /* for the whole scenario */
	long long ack_off; /* -1: no acknowledgements */
	FILE *out;	   /* NULL: stdout */
};

/* Defaults: nothing checked, no peers, 60 s, no acks, stdout. */
void scn_opts_init(struct scn_opts *o);

/* Run o->mode on @l (not freed).  Returns the number of failed checks (an
 * unknown mode counts as one). */
int scn_run(struct ivl_link *l, const struct scn_opts *o);

#endif
