/* SPDX-License-Identifier: MIT */
/* The guest conformance scenarios (scenario.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scenario.h"

struct state {
	struct ivl_link *l;
	FILE *out;
	int failures;
	int joined[65536 / 32 + 1];
	uint64_t rung_mask; /* my vectors that got a doorbell */
};

struct plist {
	int n;
	unsigned ids[SCN_MAX_PEERS];
	int want_joined;
};

void scn_opts_init(struct scn_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mode = "link";
	o->expect_id = -1;
	o->expect_vectors = -1;
	o->timeout_ms = 60000;
	o->ack_off = -1;
}

static void check(struct state *s, int ok, const char *what)
{
	fprintf(s->out, "GUEST-%s %s\n", ok ? "CHECK-OK" : "CHECK-FAIL", what);
	fflush(s->out);
	if (!ok)
		s->failures++;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void note(struct state *s, const struct ivl_link_event *e)
{
	switch (e->type) {
	case IVL_LINK_JOIN:
		fprintf(s->out, "GUEST-JOIN %u vectors=%u\n", e->peer,
			ivl_link_peer_vectors(s->l, e->peer));
		s->joined[e->peer / 32] |= 1 << (e->peer % 32);
		break;
	case IVL_LINK_LEAVE:
		fprintf(s->out, "GUEST-LEAVE %u\n", e->peer);
		s->joined[e->peer / 32] &= ~(1 << (e->peer % 32));
		break;
	case IVL_LINK_DOORBELL:
		fprintf(s->out, "GUEST-DOORBELL vector=%u count=%u\n", e->vector, e->count);
		if (e->vector < 64)
			s->rung_mask |= 1ull << e->vector;
		break;
	case IVL_LINK_DOWN:
		fprintf(s->out, "GUEST-DOWN\n");
		break;
	}
	fflush(s->out);
}

/* Wait up to @ms for events and note them. */
static void take(struct state *s, int ms)
{
	struct ivl_link_event ev[16];
	int n = ivl_link_wait(s->l, ev, 16, ms);

	for (int i = 0; i < n; i++)
		note(s, &ev[i]);
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

/* Ring every vector of every peer not yet acknowledged (all with !acks). */
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
				fprintf(s->out, "GUEST-RING %u %u -> %d\n", pl->ids[i], v, rr);
			if (rr)
				s->failures++;
		}
	}
	(*rings)++;
	fflush(s->out);
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
 * A peer's entry turns READY when its device connects, long before its
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
		int all = 1;

		for (int i = 0; i < pl->n; i++)
			all &= flags[pl->ids[i]] == READY_MAGIC;
		if (all) {
			fprintf(s->out, "GUEST-PEERS-READY\n");
			return 0;
		}
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		take(s, 10);
	}
}

static void run_raw(struct state *s)
{
	uint16_t ids[4];
	uint64_t size, nz = 0;
	const unsigned char *p = ivl_link_region(s->l, &size);
	char msg[128];

	check(s, ivl_link_header(s->l) == NULL, "raw-no-header");
	check(s, ivl_link_peers(s->l, ids, 4) == 0, "raw-no-peers");
	check(s,
	      ivl_link_peer_vectors(s->l, 7) == ivl_link_vectors(s->l) &&
		  ivl_link_vectors(s->l) > 0,
	      "raw-peer-vectors-any-id");
	/* A ring to an absent ID is accepted and dropped by the device. */
	check(s, ivl_link_ring(s->l, 9, 0) == 0, "raw-ring-absent-id");
	for (uint64_t i = 0; i < size; i++)
		nz += p[i] != 0;
	snprintf(msg, sizeof(msg), "raw-region-untouched (%" PRIu64 " nonzero bytes)", nz);
	check(s, nz == 0, msg);
}

static void run_hostile(struct state *s, const struct plist *pl)
{
	const struct ivl_shm_header *h = ivl_link_header(s->l);
	uint64_t size;
	unsigned char *p = ivl_link_region(s->l, &size);
	uint32_t x = 0x9e3779b9u;
	long long end;

	if (h) {
		uint32_t hs = h->header_size;

		for (uint64_t i = 0; i < hs; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			p[i] = (unsigned char)x;
		}
		fprintf(s->out, "GUEST-HOSTILE wrote %u garbage bytes\n", hs);
	}
	for (int i = 0; i < pl->n; i++) {
		int r = ivl_link_ring(s->l, (uint16_t)pl->ids[i], 0);
		fprintf(s->out, "GUEST-RING %u 0 -> %d\n", pl->ids[i], r);
	}
	/* The rescans meet the garbage: they must not crash. */
	end = now_ms() + 500;
	while (now_ms() < end)
		take(s, 100);
	fprintf(s->out, "GUEST-HOSTILE-DONE\n");
}

/* link / pair: ring the peers (re-ringing what is not acknowledged), wait
 * for a doorbell on each of my vectors, and (link) for the peers to leave. */
static void run_link(struct state *s, const struct scn_opts *o, struct plist *pl,
		     long long deadline)
{
	unsigned mine = ivl_link_vectors(s->l);
	char msg[128];
	int r = 0;

	if (!strcmp(o->mode, "pair"))
		r = ready_handshake(s, pl, deadline);
	if (r == 0) {
		const volatile uint64_t *acks = NULL;
		int rounds = 0;

		if (o->ack_off >= 0) {
			uint64_t asz;
			uint8_t *app = ivl_link_app_area(s->l, &asz);

			if (app && o->ack_off % 8 == 0 && (uint64_t)o->ack_off + 8 * 65536 <= asz)
				acks = (const volatile uint64_t *)(app + o->ack_off);
			else
				check(s, 0, "ack-offset-in-app-area");
		}
		while (ring_unacked(s, pl, acks, &rounds) && acks) {
			long long slice = now_ms() + 250;

			if (slice > deadline)
				slice = deadline;
			r = pump(s, slice, vectors_done, &mine);
			if (r != -ETIMEDOUT && r != 0)
				break;
			if (now_ms() >= deadline)
				break;
			if (r == 0)
				take(s, 50); /* mine all rung: wait for the acks */
		}
		if (acks)
			fprintf(s->out, "GUEST-RING-ROUNDS %d\n", rounds);
	}
	fflush(s->out);
	r = pump(s, deadline, vectors_done, &mine);
	snprintf(msg, sizeof(msg), "doorbells-on-all-%u-vectors", mine);
	check(s, r == 0 && mine > 0, msg);
	if (!strcmp(o->mode, "link")) {
		pl->want_joined = 0;
		r = pump(s, deadline, peers_done, pl);
		check(s, r == 0, "peers-left");
	}
}

int scn_run(struct ivl_link *l, const struct scn_opts *o)
{
	struct state *s;
	struct plist pl = {0};
	long long deadline = now_ms() + o->timeout_ms;
	uint64_t size;
	int failures;

	s = calloc(1, sizeof(*s));
	if (!s)
		return 1;
	s->l = l;
	s->out = o->out ? o->out : stdout;
	pl.n = o->npeers < SCN_MAX_PEERS ? o->npeers : SCN_MAX_PEERS;
	memcpy(pl.ids, o->peers, sizeof(pl.ids));
	ivl_link_region(l, &size);
	fprintf(s->out, "GUEST-ID %d\nGUEST-BAR2 %" PRIu64 "\nGUEST-VECTORS %u\nGUEST-HEADER %s\n",
		ivl_link_id(l), size, ivl_link_vectors(l), ivl_link_header(l) ? "yes" : "no");
	if (o->expect_id >= 0)
		check(s, ivl_link_id(l) == o->expect_id, "id");
	if (o->expect_size)
		check(s, size == o->expect_size, "bar2-size");
	if (o->expect_vectors >= 0)
		check(s, ivl_link_vectors(l) == (unsigned)o->expect_vectors, "vectors");
	fprintf(s->out, "GUEST-READY\n");
	fflush(s->out);

	if (!strcmp(o->mode, "raw")) {
		run_raw(s);
	} else if (!strcmp(o->mode, "link") || !strcmp(o->mode, "pair") ||
		   !strcmp(o->mode, "hostile")) {
		check(s, ivl_link_header(l) != NULL, "header");
		pl.want_joined = 1;
		check(s, pump(s, deadline, peers_done, &pl) == 0, "peers-joined");
		if (!strcmp(o->mode, "hostile"))
			run_hostile(s, &pl);
		else
			run_link(s, o, &pl, deadline);
	} else {
		fprintf(s->out, "GUEST-ERROR unknown mode %s\n", o->mode);
		s->failures++;
	}
	fflush(s->out);
	failures = s->failures;
	free(s);
	return failures;
}
