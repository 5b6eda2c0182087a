/* SPDX-License-Identifier: MIT */
/*
 * ivl-guest-test: a static guest program written only against the public
 * link API (ivl_link_guest_new & co.), for run-link-test.sh.  Every result is
 * one "GUEST-..." line on stdout (the serial console); exit 0 iff every
 * check passed.
 *
 * usage: ivl-guest-test MODE [-d DEV] [-i ID] [-s SIZE] [-v VECTORS]
 *                      [-P PEER]... [-t MS] [-N] [-A ACK-OFF]
 *   link     wait for each -P peer to JOIN (peer table), ring each on all
 *            its vectors, wait for a doorbell on each of my vectors, then
 *            wait for each -P peer to LEAVE.  With -A, a peer acknowledges
 *            each vector it got (ivl-host-peer -a: bit VEC of the 64-bit
 *            word at application offset ACK-OFF + 8 * its ID) and what is
 *            not acknowledged is rung again every 250 ms: a peer's entry
 *            turns READY before this guest's QEMU has read the peer's
 *            eventfds from the server, and the device drops a doorbell to a
 *            vector it has no eventfd for yet;
 *   pair     as link without the LEAVE wait (two guests ringing each other);
 *   raw      a server with --raw: no header, no peers, peer_vectors(any) =
 *            the device's vectors, and the whole region still zero;
 *   hostile  wait for the -P peers, then write garbage over the whole ivlink
 *            header and peer table, then ring -P peers' vector 0 once more
 *            (before any rescan: the device drops nothing it can deliver).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ivlink/link.h>

#define MAX_P 8

static int failures;

static void check(int ok, const char *what)
{
	printf("GUEST-%s %s\n", ok ? "CHECK-OK" : "CHECK-FAIL", what);
	fflush(stdout);
	if (!ok)
		failures++;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct state {
	struct ivl_link *l;
	int joined[65536 / 32 + 1];
	uint64_t rung_mask; /* my vectors that got a doorbell */
};

static void note(struct state *s, const struct ivl_link_event *e)
{
	switch (e->type) {
	case IVL_LINK_JOIN:
		printf("GUEST-JOIN %u vectors=%u\n", e->peer, ivl_link_peer_vectors(s->l, e->peer));
		s->joined[e->peer / 32] |= 1 << (e->peer % 32);
		break;
	case IVL_LINK_LEAVE:
		printf("GUEST-LEAVE %u\n", e->peer);
		s->joined[e->peer / 32] &= ~(1 << (e->peer % 32));
		break;
	case IVL_LINK_DOORBELL:
		printf("GUEST-DOORBELL vector=%u count=%u\n", e->vector, e->count);
		if (e->vector < 64)
			s->rung_mask |= 1ull << e->vector;
		break;
	case IVL_LINK_DOWN:
		printf("GUEST-DOWN\n");
		break;
	}
	fflush(stdout);
}

/* Process events until @done(s, arg) or the deadline. */
static int pump(struct state *s, long long deadline, int (*done)(struct state *, const void *),
		const void *arg)
{
	struct ivl_link_event ev[16];

	while (!done(s, arg)) {
		long long left = deadline - now_ms();
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = ivl_link_wait(s->l, ev, 16, (int)(left > 1000 ? 1000 : left));
		if (n < 0 && n != -EINTR)
			return n;
		for (int i = 0; i < n; i++)
			note(s, &ev[i]);
	}
	return 0;
}

struct plist {
	int n;
	unsigned ids[MAX_P];
	int want_joined;
};

/* Ring every vector of every -P peer not yet acknowledged (all with !acks). */
static int ring_unacked(struct state *s, const struct plist *pl, const volatile uint64_t *acks,
			int *rings)
{
	int unacked = 0;

	for (int i = 0; i < pl->n; i++) {
		unsigned nv = ivl_link_peer_vectors(s->l, (uint16_t)pl->ids[i]);
		uint64_t got = acks ? __atomic_load_n(&acks[pl->ids[i]], __ATOMIC_ACQUIRE) : 0;

		for (unsigned v = 0; v < nv && v < 64; v++) {
			int rr;

			if (got >> v & 1)
				continue;
			unacked++;
			rr = ivl_link_ring(s->l, (uint16_t)pl->ids[i], (uint16_t)v);
			if (!*rings || rr)
				printf("GUEST-RING %u %u -> %d\n", pl->ids[i], v, rr);
			if (rr)
				failures++;
		}
	}
	(*rings)++;
	fflush(stdout);
	return unacked;
}

static int peers_done(struct state *s, const void *arg)
{
	const struct plist *p = arg;

	for (int i = 0; i < p->n; i++) {
		int j = !!(s->joined[p->ids[i] / 32] & (1 << (p->ids[i] % 32)));
		if (j != p->want_joined)
			return 0;
	}
	return 1;
}

static int vectors_done(struct state *s, const void *arg)
{
	unsigned n = *(const unsigned *)arg;
	uint64_t all = n >= 64 ? ~0ull : (1ull << n) - 1;

	return (s->rung_mask & all) == all;
}

/*
 * A peer's entry turns READY when its QEMU connects, long before its
 * program enabled MSI-X; a doorbell sent before that is dropped.  So each
 * guest raises a flag in the application area once its link is up and rings
 * only peers whose flag is up.
 */
#define READY_MAGIC 0x59444552u /* "REDY" */
static int ready_handshake(struct state *s, const struct plist *pl, long long deadline)
{
	uint64_t size;
	volatile uint32_t *flags = ivl_link_app_area(s->l, &size);
	int me = ivl_link_id(s->l);

	if (!flags || size < 4 * 65536 || me < 0)
		return -EINVAL;
	flags[me] = READY_MAGIC;
	for (;;) {
		struct ivl_link_event ev[16];
		int all = 1, n;

		for (int i = 0; i < pl->n; i++)
			all &= flags[pl->ids[i]] == READY_MAGIC;
		if (all) {
			printf("GUEST-PEERS-READY\n");
			return 0;
		}
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		n = ivl_link_wait(s->l, ev, 16, 10);
		for (int i = 0; i < n; i++)
			note(s, &ev[i]);
	}
}

int main(int argc, char **argv)
{
	struct ivl_link_guest_opts o = {.timeout_ms = 10000};
	struct state s;
	struct plist pl = {0};
	long expect_id = -1, expect_vec = -1;
	unsigned long long expect_size = 0;
	int timeout = 60000, c, r = 0;
	long long ack_off = -1;
	const char *mode;
	long long deadline;
	uint64_t size;
	char msg[128];

	if (argc < 2) {
		fprintf(stderr, "usage: ivl-guest-test link|pair|raw|hostile [options]\n");
		return 2;
	}
	mode = argv[1];
	optind = 2;
	while ((c = getopt(argc, argv, "d:i:s:v:P:t:NA:")) != -1) {
		switch (c) {
		case 'd':
			o.device = optarg;
			break;
		case 'i':
			expect_id = strtol(optarg, NULL, 0);
			break;
		case 's':
			expect_size = strtoull(optarg, NULL, 0);
			break;
		case 'v':
			expect_vec = strtol(optarg, NULL, 0);
			break;
		case 'P':
			if (pl.n < MAX_P)
				pl.ids[pl.n++] = (unsigned)strtoul(optarg, NULL, 0) & 0xffff;
			break;
		case 't':
			timeout = atoi(optarg);
			break;
		case 'N':
			o.no_vfio = true;
			break;
		case 'A':
			ack_off = strtoll(optarg, NULL, 0);
			break;
		default:
			return 2;
		}
	}
	memset(&s, 0, sizeof(s));
	r = ivl_link_guest_new(&s.l, &o);
	if (r < 0) {
		printf("GUEST-ERROR ivl_link_guest_new: %s\n", strerror(-r));
		return 1;
	}
	deadline = now_ms() + timeout;
	ivl_link_region(s.l, &size);
	printf("GUEST-ID %d\nGUEST-BAR2 %" PRIu64 "\nGUEST-VECTORS %u\nGUEST-HEADER %s\n",
	       ivl_link_id(s.l), size, ivl_link_vectors(s.l), ivl_link_header(s.l) ? "yes" : "no");
	if (expect_id >= 0)
		check(ivl_link_id(s.l) == expect_id, "id");
	if (expect_size)
		check(size == expect_size, "bar2-size");
	if (expect_vec >= 0)
		check(ivl_link_vectors(s.l) == (unsigned)expect_vec, "vectors");
	printf("GUEST-READY\n");
	fflush(stdout);

	if (!strcmp(mode, "raw")) {
		uint16_t ids[4];
		const unsigned char *p = ivl_link_region(s.l, &size);
		uint64_t nz = 0;

		check(ivl_link_header(s.l) == NULL, "raw-no-header");
		check(ivl_link_peers(s.l, ids, 4) == 0, "raw-no-peers");
		check(ivl_link_peer_vectors(s.l, 7) == ivl_link_vectors(s.l) &&
			  ivl_link_vectors(s.l) > 0,
		      "raw-peer-vectors-any-id");
		/* A ring to an absent ID is accepted and dropped by the device. */
		check(ivl_link_ring(s.l, 9, 0) == 0, "raw-ring-absent-id");
		for (uint64_t i = 0; i < size; i++)
			nz += p[i] != 0;
		snprintf(msg, sizeof(msg), "raw-region-untouched (%" PRIu64 " nonzero bytes)", nz);
		check(nz == 0, msg);
	} else if (!strcmp(mode, "link") || !strcmp(mode, "pair") || !strcmp(mode, "hostile")) {
		unsigned mine = ivl_link_vectors(s.l);

		check(ivl_link_header(s.l) != NULL, "header");
		pl.want_joined = 1;
		r = pump(&s, deadline, peers_done, &pl);
		check(r == 0, "peers-joined");
		if (!strcmp(mode, "hostile")) {
			const struct ivl_shm_header *h = ivl_link_header(s.l);
			unsigned char *p = ivl_link_region(s.l, &size);
			uint32_t x = 0x9e3779b9u;

			if (h) {
				for (uint64_t i = 0; i < h->header_size; i++) {
					x ^= x << 13;
					x ^= x >> 17;
					x ^= x << 5;
					p[i] = (unsigned char)x;
				}
				printf("GUEST-HOSTILE wrote %u garbage bytes\n", h->header_size);
			}
			for (int i = 0; i < pl.n; i++) {
				r = ivl_link_ring(s.l, (uint16_t)pl.ids[i], 0);
				printf("GUEST-RING %u 0 -> %d\n", pl.ids[i], r);
			}
			/* The rescans meet the garbage: they must not crash. */
			struct ivl_link_event ev[16];
			long long end = now_ms() + 500;
			while (now_ms() < end) {
				int n = ivl_link_wait(s.l, ev, 16, 100);
				for (int i = 0; i < n; i++)
					note(&s, &ev[i]);
			}
			printf("GUEST-HOSTILE-DONE\n");
		} else {
			if (!strcmp(mode, "pair"))
				r = ready_handshake(&s, &pl, deadline);
			if (r == 0) {
				const volatile uint64_t *acks = NULL;
				int rounds = 0;

				if (ack_off >= 0) {
					uint64_t asz;
					uint8_t *app = ivl_link_app_area(s.l, &asz);

					if (app && ack_off % 8 == 0 &&
					    (uint64_t)ack_off + 8 * 65536 <= asz)
						acks = (const volatile uint64_t *)(app + ack_off);
					else
						check(0, "ack-offset-in-app-area");
				}
				while (ring_unacked(&s, &pl, acks, &rounds) && acks) {
					long long slice = now_ms() + 250;

					if (slice > deadline)
						slice = deadline;
					r = pump(&s, slice, vectors_done, &mine);
					if (r != -ETIMEDOUT && r != 0)
						break;
					if (now_ms() >= deadline)
						break;
					if (r == 0) {
						/* mine all rung: wait for the acks */
						struct ivl_link_event ev[16];
						int n = ivl_link_wait(s.l, ev, 16, 50);

						for (int k = 0; k < n; k++)
							note(&s, &ev[k]);
					}
				}
				if (acks)
					printf("GUEST-RING-ROUNDS %d\n", rounds);
			}
			fflush(stdout);
			r = pump(&s, deadline, vectors_done, &mine);
			snprintf(msg, sizeof(msg), "doorbells-on-all-%u-vectors", mine);
			check(r == 0 && mine > 0, msg);
			if (!strcmp(mode, "link")) {
				pl.want_joined = 0;
				r = pump(&s, deadline, peers_done, &pl);
				check(r == 0, "peers-left");
			}
		}
	} else {
		printf("GUEST-ERROR unknown mode %s\n", mode);
		failures++;
	}
	ivl_link_free(s.l);
	printf("GUEST-%s\n", failures ? "FAIL" : "PASS");
	fflush(stdout);
	return failures ? 1 : 0;
}
