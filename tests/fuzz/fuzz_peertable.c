/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the guest backend's reader of the peer table (docs/protocol.md §2):
 * inside a QEMU guest the peer set comes only from shared memory, which any
 * peer can scribble on.  The first bytes choose the table size, the vector
 * count and my ID; the rest is written over the peer table in chunks, with a
 * scan after each.  Invariants: events alternate per ID (JOIN only for an
 * absent ID, LEAVE only for a present one), my own ID never appears,
 * ringable vectors never exceed the header's, and the listed peers are
 * exactly those the events left present.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>

#include "fuzz.h"
#include "link/guest-internal.h"

#define REGION (1u << 16)
#define MAX_PEERS 64u

struct model {
	bool present[MAX_PEERS];
	int self;
	unsigned events;
};

static void emit(void *ctx, enum ivl_link_event_type t, uint16_t id)
{
	struct model *m = ctx;

	FUZZ_CHECK(id < MAX_PEERS);
	FUZZ_CHECK((int)id != m->self);
	if (t == IVL_LINK_JOIN) {
		FUZZ_CHECK(!m->present[id]);
		m->present[id] = true;
	} else {
		FUZZ_CHECK(t == IVL_LINK_LEAVE);
		FUZZ_CHECK(m->present[id]);
		m->present[id] = false;
	}
	m->events++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *base;
	struct ivl_shm_header valid;
	struct ivl__guest_scan scan;
	struct model m = { { false }, 0, 0 };
	uint32_t max_peers, vectors, table;
	uint16_t ids[MAX_PEERS];
	size_t off = 3;
	char *t;
	int n, count;

	if (size < 3)
		return 0;
	if (!base) {
		base = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		FUZZ_CHECK(base != MAP_FAILED);
	}
	max_peers = 1 + data[0] % MAX_PEERS;
	vectors = 1 + data[1] % IVL_MAX_VECTORS;
	m.self = data[2] % max_peers;
	FUZZ_CHECK(ivl_shm_format(base, REGION, max_peers, vectors, 1, IVL_FEAT_HELLO) == 0);
	FUZZ_CHECK(ivl_shm_validate(base, REGION, &valid) == 0);
	FUZZ_CHECK(ivl__guest_scan_init(&scan, &valid, m.self) == 0);
	t = base + valid.peer_table_offset;
	table = max_peers * (uint32_t)sizeof(struct ivl_shm_peer);
	/* Chunks: a 2-byte offset into the table, a length byte, the bytes. */
	while (off + 3 <= size) {
		uint32_t at = ((uint32_t)data[off] | (uint32_t)data[off + 1] << 8) % table;
		size_t len = data[off + 2];

		off += 3;
		if (len > size - off)
			len = size - off;
		if (len > table - at)
			len = table - at;
		memcpy(t + at, data + off, len);
		off += len;
		n = ivl__guest_scan_run(&scan, base, &valid, emit, &m);
		FUZZ_CHECK(n >= 0);
		for (uint32_t id = 0; id < max_peers; id++) {
			unsigned v = ivl__guest_scan_vectors(&scan, id);
			FUZZ_CHECK(v <= vectors);
			FUZZ_CHECK(!v || m.present[id] || (int)id == m.self);
		}
		FUZZ_CHECK(ivl__guest_scan_vectors(&scan, max_peers) == 0);
		count = ivl__guest_scan_list(&scan, ids, MAX_PEERS);
		n = 0;
		for (uint32_t id = 0; id < max_peers; id++)
			n += m.present[id];
		FUZZ_CHECK(count == n);
		for (int i = 0; i < count; i++)
			FUZZ_CHECK(ids[i] < MAX_PEERS && m.present[ids[i]]);
	}
	ivl__guest_scan_fini(&scan);
	return 0;
}
