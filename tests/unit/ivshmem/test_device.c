/* SPDX-License-Identifier: MIT */
/*
 * The ivshmem device model (src/ivshmem/device.c, docs/device.md): every
 * register x read/write x access size in both interrupt modes from one
 * table, pin level under mask/unmask races, MSI-X delivery per vector with
 * masking, hostile accesses, and the link-backed device over a local hub.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/ivshmem.h>
#include <ivlink/link-device.h>
#include <ivlink/hub.h>
#include <ivlink/link.h>

#include "testutil.h"

#define SELF 3

/* ---- a recording embedder --------------------------------------------------- */

struct rec {
	int nring;
	uint16_t ring_peer[16], ring_vec[16];
	int nirq;
	enum ivl_ivshmem_irq_kind kind[64];
	unsigned arg[64];
};

/* Peers 1 and SELF have 4 vectors; peer 2 has 4 but its ring fails. */
static unsigned fake_peer_vectors(void *ctx, uint16_t peer)
{
	(void)ctx;
	return peer == 1 || peer == 2 || peer == SELF ? 4 : 0;
}

static int fake_ring(void *ctx, uint16_t peer, uint16_t vector)
{
	struct rec *r = ctx;

	if (peer == 2)
		return -EIO;
	if (r->nring < 16) {
		r->ring_peer[r->nring] = peer;
		r->ring_vec[r->nring] = vector;
	}
	r->nring++;
	return 0;
}

static void fake_irq(void *ctx, enum ivl_ivshmem_irq_kind kind, unsigned arg)
{
	struct rec *r = ctx;

	if (r->nirq < 64) {
		r->kind[r->nirq] = kind;
		r->arg[r->nirq] = arg;
	}
	r->nirq++;
}

static const struct ivl_ivshmem_ops fake_ops = {
    .ring = fake_ring,
    .peer_vectors = fake_peer_vectors,
    .irq = fake_irq,
};

static struct ivl_ivshmem *new_dev(enum ivl_ivshmem_irq_mode mode, unsigned vectors,
				       struct rec *r)
{
	struct ivl_ivshmem_opts cfg = {
	    .mode = mode, .vectors = vectors, .ops = &fake_ops, .ctx = r};
	struct ivl_ivshmem *d;

	memset(r, 0, sizeof(*r));
	assert_int_equal(ivl_ivshmem_new(&d, &cfg), 0);
	return d;
}

/* ---- the register table ------------------------------------------------------ */

/*
 * Before each row: IVPosition = SELF (or not ready), IntrMask = 1 and
 * IntrStatus = 1 (so in pin mode the line is high), all by the guest's own
 * 32-bit writes.  Then one access; then the read value, the registers (read
 * back with 32-bit reads), the pin, the counters and the rings are checked.
 * The pin column is for pin mode; in MSI mode the pin never moves.
 */
struct row {
	const char *what;
	char op; /* 'r' or 'w' */
	uint64_t off;
	unsigned size;
	uint64_t val; /* written, or expected from a read */
	bool not_ready;
	uint32_t mask, status; /* after */
	int pin;	       /* after (pin mode) */
	/* counter deltas */
	unsigned bad_size, bad_offset, rwo, wro, rings, d_ready, d_peer, d_vec, d_ring;
	int ring_peer, ring_vec; /* the (last) ring made, -1: none */
};

#define DB(peer, vec) ((uint64_t)(peer) << 16 | (vec))

/* clang-format off */
static const struct row rows[] = {
 /* reads, 32 bits */
 {"R IntrMask",		'r', 0x00, 4, 1,	false, 1, 1, 1, .ring_peer = -1},
 {"R IntrStatus clears",	'r', 0x04, 4, 1,	false, 1, 0, 0, .ring_peer = -1},
 {"R IVPosition",	'r', 0x08, 4, SELF,	false, 1, 1, 1, .ring_peer = -1},
 {"R IVPosition not ready",'r', 0x08, 4, 0xffffffff, true, 1, 1, 1, .ring_peer = -1},
 {"R Doorbell (write-only)",'r', 0x0c, 4, 0,	false, 1, 1, 1, .rwo = 1, .ring_peer = -1},
 {"R 0x10",		'r', 0x10, 4, 0,	false, 1, 1, 1, .bad_offset = 1, .ring_peer = -1},
 {"R 0xfc",		'r', 0xfc, 4, 0,	false, 1, 1, 1, .bad_offset = 1, .ring_peer = -1},
 {"R 0x100",		'r', 0x100, 4, 0,	false, 1, 1, 1, .bad_offset = 1, .ring_peer = -1},
 {"R 2^64-4",		'r', UINT64_MAX - 3, 4, 0, false, 1, 1, 1, .bad_offset = 1, .ring_peer = -1},
 {"R unaligned 4 @2",	'r', 0x02, 4, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"R unaligned 4 @6",	'r', 0x06, 4, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 /* reads, 8 bits */
 {"R8 IntrMask byte 0",	'r', 0x00, 1, 1,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"R8 IntrMask byte 1",	'r', 0x01, 1, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"R8 IntrStatus byte 0",	'r', 0x04, 1, 1,	false, 1, 0, 0, .bad_size = 1, .ring_peer = -1},
 {"R8 IntrStatus byte 3 clears",'r', 0x07, 1, 0, false, 1, 0, 0, .bad_size = 1, .ring_peer = -1},
 {"R8 IVPosition",	'r', 0x08, 1, SELF,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"R8 Doorbell",		'r', 0x0f, 1, 0,	false, 1, 1, 1, .bad_size = 1, .rwo = 1, .ring_peer = -1},
 /* reads, 16 bits */
 {"R16 IntrMask",	'r', 0x00, 2, 1,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"R16 IntrStatus hi",	'r', 0x06, 2, 0,	false, 1, 0, 0, .bad_size = 1, .ring_peer = -1},
 {"R16 IVPosition hi nr",	'r', 0x0a, 2, 0xffff,	true, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"R16 Doorbell",	'r', 0x0c, 2, 0,	false, 1, 1, 1, .bad_size = 1, .rwo = 1, .ring_peer = -1},
 {"R16 unaligned @1",	'r', 0x01, 2, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 /* reads, 64 bits: two 32-bit reads, lower first */
 {"R64 IntrMask+IntrStatus",'r', 0x00, 8, 1 | 1ull << 32, false, 1, 0, 0, .ring_peer = -1},
 {"R64 IVPosition+Doorbell",'r', 0x08, 8, SELF, false, 1, 1, 1, .rwo = 1, .ring_peer = -1},
 {"R64 unaligned @4",	'r', 0x04, 8, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"R64 0xf8",		'r', 0xf8, 8, 0,	false, 1, 1, 1, .bad_offset = 2, .ring_peer = -1},
 /* odd sizes */
 {"R size 0",		'r', 0x00, 0, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"R size 3",		'r', 0x00, 3, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"R size 16",		'r', 0x00, 16, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 /* writes, 32 bits */
 {"W IntrMask 0 lowers",	'w', 0x00, 4, 0,	false, 0, 1, 0, .ring_peer = -1},
 {"W IntrMask other bits",'w', 0x00, 4, 0xfffffffe, false, 0xfffffffe, 1, 0, .ring_peer = -1},
 {"W IntrStatus 0",	'w', 0x04, 4, 0,	false, 1, 0, 0, .ring_peer = -1},
 {"W IntrStatus bit 31",	'w', 0x04, 4, 0x80000000, false, 1, 0x80000000, 0, .ring_peer = -1},
 {"W IntrStatus 3",	'w', 0x04, 4, 3,	false, 1, 3, 1, .ring_peer = -1},
 {"W IVPosition (read-only)",'w', 0x08, 4, 7,	false, 1, 1, 1, .wro = 1, .ring_peer = -1},
 {"W Doorbell 1:2",	'w', 0x0c, 4, DB(1, 2),	false, 1, 1, 1, .rings = 1, .ring_peer = 1, .ring_vec = 2},
 {"W Doorbell self",	'w', 0x0c, 4, DB(SELF, 3), false, 1, 1, 1, .rings = 1, .ring_peer = SELF, .ring_vec = 3},
 {"W Doorbell vector 4",	'w', 0x0c, 4, DB(1, 4),	false, 1, 1, 1, .d_vec = 1, .ring_peer = -1},
 {"W Doorbell vector 0x102",'w', 0x0c, 4, DB(1, 0x102), false, 1, 1, 1, .d_vec = 1, .ring_peer = -1},
 {"W Doorbell vector 0xffff",'w', 0x0c, 4, DB(1, 0xffff), false, 1, 1, 1, .d_vec = 1, .ring_peer = -1},
 {"W Doorbell absent peer",'w', 0x0c, 4, DB(9, 0),	false, 1, 1, 1, .d_peer = 1, .ring_peer = -1},
 {"W Doorbell peer 65535",'w', 0x0c, 4, DB(0xffff, 0), false, 1, 1, 1, .d_peer = 1, .ring_peer = -1},
 {"W Doorbell ring fails",'w', 0x0c, 4, DB(2, 0),	false, 1, 1, 1, .d_ring = 1, .ring_peer = -1},
 {"W Doorbell not ready",	'w', 0x0c, 4, DB(1, 0),	true, 1, 1, 1, .d_ready = 1, .ring_peer = -1},
 {"W 0x10",		'w', 0x10, 4, 1,	false, 1, 1, 1, .bad_offset = 1, .ring_peer = -1},
 {"W 0x100",		'w', 0x100, 4, 0,	false, 1, 1, 1, .bad_offset = 1, .ring_peer = -1},
 {"W unaligned @2",	'w', 0x02, 4, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"W unaligned @0xe",	'w', 0x0e, 4, DB(1, 0),	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 /* writes, 8 and 16 bits: ignored */
 {"W8 IntrMask",		'w', 0x00, 1, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"W8 IntrStatus",	'w', 0x04, 1, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"W8 IVPosition",	'w', 0x08, 1, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"W8 Doorbell byte 1",	'w', 0x0d, 1, 1,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"W16 IntrMask",	'w', 0x00, 2, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"W16 IntrStatus",	'w', 0x04, 2, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"W16 IVPosition",	'w', 0x08, 2, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"W16 Doorbell hi",	'w', 0x0e, 2, 1,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 /* writes, 64 bits: two 32-bit writes, lower first */
 {"W64 IntrMask+IntrStatus",'w', 0x00, 8, 1 | 0ull << 32, false, 1, 0, 0, .ring_peer = -1},
 {"W64 IVPosition+Doorbell",'w', 0x08, 8, 5 | DB(1, 1) << 32, false, 1, 1, 1, .wro = 1, .rings = 1, .ring_peer = 1, .ring_vec = 1},
 {"W64 unaligned @4",	'w', 0x04, 8, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
 {"W size 5",		'w', 0x00, 5, 0,	false, 1, 1, 1, .bad_size = 1, .ring_peer = -1},
};
/* clang-format on */

static void run_row(const struct row *r, enum ivl_ivshmem_irq_mode mode)
{
	struct ivl_ivshmem_stats a, b;
	struct rec rec;
	struct ivl_ivshmem *d = new_dev(mode, 4, &rec);
	int pin = mode == IVL_IVSHMEM_PIN ? r->pin : 0;
	char msg[160];

	snprintf(msg, sizeof(msg), "%s (%s mode)", r->what,
		 mode == IVL_IVSHMEM_PIN ? "pin" : "MSI");
	if (!r->not_ready)
		assert_int_equal(ivl_ivshmem_set_position(d, SELF), 0);
	ivl_ivshmem_write(d, IVL_IVSHMEM_INTRMASK, 1, 4);
	ivl_ivshmem_write(d, IVL_IVSHMEM_INTRSTATUS, 1, 4);
	assert_int_equal(ivl_ivshmem_pin(d), mode == IVL_IVSHMEM_PIN);
	ivl_ivshmem_get_stats(d, &a);
	rec.nring = 0;
	if (r->op == 'r') {
		uint64_t v = ivl_ivshmem_read(d, r->off, r->size);
		if (v != r->val)
			fail_msg("%s: read 0x%llx, want 0x%llx", msg, (unsigned long long)v,
				 (unsigned long long)r->val);
	} else {
		ivl_ivshmem_write(d, r->off, r->val, r->size);
	}
	if (ivl_ivshmem_pin(d) != pin)
		fail_msg("%s: pin %d, want %d", msg, ivl_ivshmem_pin(d), pin);
	ivl_ivshmem_get_stats(d, &b);
#define DELTA(f, want)                                                                             \
	do {                                                                                       \
		if (b.f - a.f != (want))                                                           \
			fail_msg("%s: %s +%llu, want +%u", msg, #f,                                \
				 (unsigned long long)(b.f - a.f), (unsigned)(want));               \
	} while (0)
	DELTA(bad_size, r->bad_size);
	DELTA(bad_offset, r->bad_offset);
	DELTA(read_write_only, r->rwo);
	DELTA(write_read_only, r->wro);
	DELTA(rings, r->rings);
	DELTA(drop_not_ready, r->d_ready);
	DELTA(drop_peer, r->d_peer);
	DELTA(drop_vector, r->d_vec);
	DELTA(drop_ring, r->d_ring);
	DELTA(reads, r->op == 'r');
	DELTA(writes, r->op == 'w');
#undef DELTA
	if (r->ring_peer < 0) {
		if (rec.nring)
			fail_msg("%s: %d rings made, want none", msg, rec.nring);
	} else if (rec.nring != 1 || rec.ring_peer[0] != r->ring_peer ||
		   rec.ring_vec[0] != r->ring_vec) {
		fail_msg("%s: rings %d (%u:%u), want %d:%d", msg, rec.nring, rec.ring_peer[0],
			 rec.ring_vec[0], r->ring_peer, r->ring_vec);
	}
	/* The registers after the access; IVPosition never changes. */
	if (ivl_ivshmem_read(d, IVL_IVSHMEM_INTRMASK, 4) != r->mask)
		fail_msg("%s: IntrMask 0x%llx, want 0x%x", msg,
			 (unsigned long long)ivl_ivshmem_read(d, IVL_IVSHMEM_INTRMASK, 4),
			 r->mask);
	uint64_t st = ivl_ivshmem_read(d, IVL_IVSHMEM_INTRSTATUS, 4);
	if (st != r->status)
		fail_msg("%s: IntrStatus 0x%llx, want 0x%x", msg, (unsigned long long)st,
			 r->status);
	assert_int_equal(ivl_ivshmem_read(d, IVL_IVSHMEM_IVPOSITION, 4),
			 r->not_ready ? IVL_IVSHMEM_NOT_READY : SELF);
	/* Every pin report alternates, starting with the preset's raise, and
	 * the last one is the pin now (after the status read above: 0). */
	if (mode == IVL_IVSHMEM_PIN) {
		int level = 0;

		for (int i = 0; i < rec.nirq; i++) {
			assert_int_equal(rec.kind[i], IVL_IVSHMEM_IRQ_PIN);
			assert_int_equal(rec.arg[i], !level);
			level = !level;
		}
		assert_int_equal(level, ivl_ivshmem_pin(d));
		assert_int_equal(level, 0);
	} else {
		assert_int_equal(rec.nirq, 0);
	}
	ivl_ivshmem_free(d);
}

static void register_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		run_row(&rows[i], IVL_IVSHMEM_PIN);
		run_row(&rows[i], IVL_IVSHMEM_MSI);
	}
}

/* ---- pin mode ------------------------------------------------------------------ */

static void pin_semantics(void **state)
{
	struct rec r;
	struct ivl_ivshmem *d = new_dev(IVL_IVSHMEM_PIN, 2, &r);
	struct ivl_ivshmem_stats st;

	(void)state;
	/* Reset state: mask 0, so a doorbell sets status but not the line. */
	assert_int_equal(ivl_ivshmem_doorbell(d, 1), 1);
	assert_int_equal(ivl_ivshmem_pin(d), 0);
	assert_int_equal(r.nirq, 0);
	/* Level-triggered: enabling bit 0 raises the line at once. */
	ivl_ivshmem_write(d, IVL_IVSHMEM_INTRMASK, 1, 4);
	assert_int_equal(ivl_ivshmem_pin(d), 1);
	assert_int_equal(r.nirq, 1);
	/* A second doorbell while high: status stays 1, no new report. */
	ivl_ivshmem_doorbell(d, 0);
	assert_int_equal(r.nirq, 1);
	/* Masking lowers, unmasking raises again: status is still 1. */
	ivl_ivshmem_write(d, IVL_IVSHMEM_INTRMASK, 0, 4);
	ivl_ivshmem_write(d, IVL_IVSHMEM_INTRMASK, 1, 4);
	assert_int_equal(r.nirq, 3);
	assert_int_equal(r.arg[1], 0);
	assert_int_equal(r.arg[2], 1);
	/* Reading status acknowledges. */
	assert_int_equal(ivl_ivshmem_read(d, IVL_IVSHMEM_INTRSTATUS, 4), 1);
	assert_int_equal(ivl_ivshmem_pin(d), 0);
	assert_int_equal(ivl_ivshmem_read(d, IVL_IVSHMEM_INTRSTATUS, 4), 0);
	/* A vector the device lacks is dropped; MSI-only calls refuse. */
	assert_int_equal(ivl_ivshmem_doorbell(d, 2), 0);
	assert_int_equal(ivl_ivshmem_pin(d), 0);
	assert_int_equal(ivl_ivshmem_set_msix(d, true), -EINVAL);
	assert_int_equal(ivl_ivshmem_mask(d, 0, true), -EINVAL);
	/* Reset drops a high line and clears the mask. */
	ivl_ivshmem_doorbell(d, 0);
	assert_int_equal(ivl_ivshmem_pin(d), 1);
	ivl_ivshmem_reset(d);
	assert_int_equal(ivl_ivshmem_pin(d), 0);
	assert_int_equal(ivl_ivshmem_read(d, IVL_IVSHMEM_INTRMASK, 4), 0);
	ivl_ivshmem_get_stats(d, &st);
	assert_int_equal(st.doorbells_in, 4);
	assert_int_equal(st.in_drop_vector, 1);
	assert_int_equal(st.pin_raised, 3);
	assert_int_equal(st.pin_lowered, 3);
	assert_int_equal(st.msi_raised, 0);
	ivl_ivshmem_free(d);
}

/* ---- pin level under races --------------------------------------------------- */

#define RACE_N 20000

struct race {
	struct ivl_ivshmem *d;
	/* Reported by irq() under the device lock: no lock of our own. */
	int level, reports, bad;
	atomic_int go;
};

static void race_irq(void *ctx, enum ivl_ivshmem_irq_kind kind, unsigned arg)
{
	struct race *r = ctx;

	if (kind != IVL_IVSHMEM_IRQ_PIN || arg != (unsigned)!r->level)
		r->bad++; /* a report that changes nothing, or not a pin */
	r->level = (int)arg;
	r->reports++;
}

static int no_ring(void *ctx, uint16_t peer, uint16_t vector)
{
	(void)ctx, (void)peer, (void)vector;
	return 0;
}

static void *masker(void *arg)
{
	struct race *r = arg;

	while (!atomic_load(&r->go))
		;
	for (unsigned i = 0; i < RACE_N; i++)
		ivl_ivshmem_write(r->d, IVL_IVSHMEM_INTRMASK, i & 1, 4);
	return NULL;
}

static void *ringer(void *arg)
{
	struct race *r = arg;

	while (!atomic_load(&r->go))
		;
	for (unsigned i = 0; i < RACE_N; i++)
		ivl_ivshmem_doorbell(r->d, i % 2);
	return NULL;
}

static void *acker(void *arg)
{
	struct race *r = arg;

	while (!atomic_load(&r->go))
		;
	for (unsigned i = 0; i < RACE_N; i++)
		ivl_ivshmem_read(r->d, IVL_IVSHMEM_INTRSTATUS, 4);
	return NULL;
}

static void pin_races(void **state)
{
	static const struct ivl_ivshmem_ops ops = {.ring = no_ring, .irq = race_irq};
	struct race r = {0};
	struct ivl_ivshmem_opts cfg = {
	    .mode = IVL_IVSHMEM_PIN, .vectors = 2, .ops = &ops, .ctx = &r};
	struct ivl_ivshmem_stats st;
	pthread_t t[3];
	void *(*fn[3])(void *) = {masker, ringer, acker};

	(void)state;
	assert_int_equal(ivl_ivshmem_new(&r.d, &cfg), 0);
	atomic_init(&r.go, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, fn[i], &r), 0);
	atomic_store(&r.go, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	/* Quiescent: every report alternated, the last is the pin, and the
	 * pin is what the registers say. */
	assert_int_equal(r.bad, 0);
	assert_int_equal(r.level, ivl_ivshmem_pin(r.d));
	ivl_ivshmem_get_stats(r.d, &st);
	assert_int_equal(st.pin_raised + st.pin_lowered, (uint64_t)r.reports);
	assert_int_equal(st.pin_raised - st.pin_lowered, (uint64_t)r.level);
	assert_int_equal(st.doorbells_in, RACE_N);
	{
		uint32_t mask = (uint32_t)ivl_ivshmem_read(r.d, IVL_IVSHMEM_INTRMASK, 4);
		int pin = ivl_ivshmem_pin(r.d);
		uint32_t status = (uint32_t)ivl_ivshmem_read(r.d, IVL_IVSHMEM_INTRSTATUS, 4);

		assert_int_equal(mask, (RACE_N - 1) & 1);
		assert_int_equal(pin, (status & mask) != 0);
		assert_int_equal(ivl_ivshmem_pin(r.d), 0); /* the read acknowledged */
	}
	ivl_ivshmem_free(r.d);
}

/* ---- MSI-X ------------------------------------------------------------------ */

static void msi_per_vector(void **state)
{
	struct rec r;
	struct ivl_ivshmem *d = new_dev(IVL_IVSHMEM_MSI, 8, &r);
	struct ivl_ivshmem_stats st;

	(void)state;
	/* MSI-X not enabled by the guest: dropped (QEMU's ivshmem-doorbell). */
	for (unsigned v = 0; v < 8; v++)
		assert_int_equal(ivl_ivshmem_doorbell(d, v), 0);
	assert_int_equal(r.nirq, 0);
	assert_int_equal(ivl_ivshmem_read(d, IVL_IVSHMEM_INTRSTATUS, 4), 0);
	assert_int_equal(ivl_ivshmem_set_msix(d, true), 0);
	/* Each vector raises its own MSI-X vector, in order, and no status. */
	for (unsigned v = 0; v < 8; v++)
		assert_int_equal(ivl_ivshmem_doorbell(d, 7 - v), 1);
	assert_int_equal(r.nirq, 8);
	for (unsigned i = 0; i < 8; i++) {
		assert_int_equal(r.kind[i], IVL_IVSHMEM_IRQ_MSI);
		assert_int_equal(r.arg[i], 7 - i);
	}
	assert_int_equal(ivl_ivshmem_read(d, IVL_IVSHMEM_INTRSTATUS, 4), 0);
	assert_int_equal(ivl_ivshmem_pin(d), 0);
	/* A vector beyond the device's is dropped, whatever its size. */
	assert_int_equal(ivl_ivshmem_doorbell(d, 8), 0);
	assert_int_equal(ivl_ivshmem_doorbell(d, 0x100), 0);
	assert_int_equal(ivl_ivshmem_doorbell(d, ~0u), 0);
	assert_int_equal(r.nirq, 8);
	/* Masked: latched in the PBA (twice = once), raised on unmask. */
	assert_int_equal(ivl_ivshmem_mask(d, 3, true), 0);
	assert_int_equal(ivl_ivshmem_doorbell(d, 3), 1);
	assert_int_equal(ivl_ivshmem_doorbell(d, 3), 1);
	assert_int_equal(ivl_ivshmem_doorbell(d, 4), 1);
	assert_int_equal(ivl_ivshmem_pending(d), 1u << 3);
	assert_int_equal(r.nirq, 9);
	assert_int_equal(r.arg[8], 4);
	assert_int_equal(ivl_ivshmem_mask(d, 3, false), 0);
	assert_int_equal(r.nirq, 10);
	assert_int_equal(r.arg[9], 3);
	assert_int_equal(ivl_ivshmem_pending(d), 0);
	assert_int_equal(ivl_ivshmem_mask(d, 8, true), -ERANGE);
	/* Disabling MSI-X forgets what was pending. */
	ivl_ivshmem_mask(d, 5, true);
	ivl_ivshmem_doorbell(d, 5);
	assert_int_equal(ivl_ivshmem_pending(d), 1u << 5);
	ivl_ivshmem_set_msix(d, false);
	assert_int_equal(ivl_ivshmem_pending(d), 0);
	ivl_ivshmem_set_msix(d, true);
	ivl_ivshmem_mask(d, 5, false);
	assert_int_equal(r.nirq, 10);
	/* Reset: MSI-X off again. */
	ivl_ivshmem_reset(d);
	assert_int_equal(ivl_ivshmem_doorbell(d, 0), 0);
	ivl_ivshmem_get_stats(d, &st);
	assert_int_equal(st.msi_raised, 10);
	assert_int_equal(st.msi_pending, 3);
	assert_int_equal(st.in_drop_msix, 9);
	assert_int_equal(st.in_drop_vector, 3);
	assert_int_equal(st.pin_raised, 0);
	ivl_ivshmem_free(d);
}

/* ---- arguments and accessors --------------------------------------------------- */

static void arguments(void **state)
{
	struct rec r;
	struct ivl_ivshmem_ops no_irq = {.ring = fake_ring};
	struct ivl_ivshmem_opts cfg = {.vectors = 1, .ops = &fake_ops, .ctx = &r};
	struct ivl_ivshmem *d;
	struct ivl_ivshmem_stats st;
	char mem[64];
	uint64_t size;

	(void)state;
	assert_int_equal(ivl_ivshmem_new(NULL, &cfg), -EINVAL);
	assert_int_equal(ivl_ivshmem_new(&d, NULL), -EINVAL);
	cfg.vectors = 0;
	assert_int_equal(ivl_ivshmem_new(&d, &cfg), -EINVAL);
	cfg.vectors = 65;
	assert_int_equal(ivl_ivshmem_new(&d, &cfg), -EINVAL);
	cfg.vectors = 64;
	cfg.bar2_size = 4096;
	assert_int_equal(ivl_ivshmem_new(&d, &cfg), -EINVAL);
	cfg.mode = (enum ivl_ivshmem_irq_mode)7;
	cfg.bar2 = mem;
	cfg.bar2_size = sizeof(mem);
	assert_int_equal(ivl_ivshmem_new(&d, &cfg), -EINVAL);
	cfg.mode = IVL_IVSHMEM_MSI;
	cfg.ops = &no_irq;
	assert_int_equal(ivl_ivshmem_new(&d, &cfg), -EINVAL);
	cfg.ops = &fake_ops;
	assert_int_equal(ivl_ivshmem_new(&d, &cfg), 0);
	assert_ptr_equal(ivl_ivshmem_bar2(d, &size), mem);
	assert_int_equal(size, sizeof(mem));
	assert_int_equal(ivl_ivshmem_vectors(d), 64);
	assert_int_equal(ivl_ivshmem_mode(d), IVL_IVSHMEM_MSI);
	assert_int_equal(ivl_ivshmem_set_position(d, -2), -EINVAL);
	assert_int_equal(ivl_ivshmem_set_position(d, 65536), -EINVAL);
	assert_int_equal(ivl_ivshmem_set_position(d, 65535), 0);
	assert_int_equal(ivl_ivshmem_read(d, IVL_IVSHMEM_IVPOSITION, 4), 65535);
	assert_int_equal(ivl_ivshmem_set_position(d, -1), 0);
	assert_int_equal(ivl_ivshmem_read(d, IVL_IVSHMEM_IVPOSITION, 4), IVL_IVSHMEM_NOT_READY);
	ivl_ivshmem_free(d);
	/* NULL device: harmless. */
	assert_int_equal(ivl_ivshmem_read(NULL, 0, 4), 0);
	ivl_ivshmem_write(NULL, 0, 0, 4);
	assert_int_equal(ivl_ivshmem_doorbell(NULL, 0), -EINVAL);
	assert_int_equal(ivl_ivshmem_set_position(NULL, 0), -EINVAL);
	assert_null(ivl_ivshmem_bar2(NULL, &size));
	assert_int_equal(size, 0);
	ivl_ivshmem_get_stats(NULL, &st);
	assert_int_equal(st.reads, 0);
	ivl_ivshmem_reset(NULL);
	ivl_ivshmem_free(NULL);
}

/* ---- the link-backed device over a local hub -------------------------------- */

struct msi_rec {
	int n;
	unsigned v[16];
};

static void msi_irq(void *ctx, enum ivl_ivshmem_irq_kind kind, unsigned arg)
{
	struct msi_rec *m = ctx;

	if (kind == IVL_IVSHMEM_IRQ_MSI && m->n < 16)
		m->v[m->n++] = arg;
}

/* Wait (bounded) for events on @l; returns the number of DOORBELL events
 * for @vector. */
static int doorbells_on(struct ivl_link *l, unsigned vector, struct ivl_link_event *ev, int *n)
{
	int hits = 0;

	*n = ivl_link_wait(l, ev, 16, 2000);
	for (int i = 0; i < *n; i++)
		hits += ev[i].type == IVL_LINK_DOORBELL && ev[i].vector == vector;
	return hits;
}

static void link_backed(void **state)
{
	struct ivl_hub *hub;
	struct ivl_link *a, *b;
	struct ivl_link_device *ld;
	struct msi_rec m = {0};
	struct ivl_link_device_opts o = {.mode = IVL_IVSHMEM_MSI, .irq = msi_irq, .ctx = &m};
	struct ivl_ivshmem *d;
	struct ivl_ivshmem_stats st;
	struct ivl_link_event ev[16];
	uint64_t size;
	int n;

	(void)state;
	assert_int_equal(ivl_hub_new(&hub, 1u << 20, 4, 4), 0);
	assert_int_equal(ivl_hub_join(hub, "dev", &a), 0);
	assert_int_equal(ivl_hub_join(hub, "peer", &b), 0);
	assert_int_equal(ivl_link_device_new(NULL, a, &o), -EINVAL);
	o.irq = NULL;
	assert_int_equal(ivl_link_device_new(&ld, a, &o), -EINVAL);
	o.irq = msi_irq;
	assert_int_equal(ivl_link_device_new(&ld, a, &o), 0);
	d = ivl_link_device_model(ld);
	/* BAR2 is the region, IVPosition the ID, vectors the link's. */
	assert_ptr_equal(ivl_ivshmem_bar2(d, &size), ivl_link_region(a, NULL));
	assert_int_equal(size, 1u << 20);
	assert_int_equal(ivl_ivshmem_read(d, IVL_IVSHMEM_IVPOSITION, 4), ivl_link_id(a));
	assert_int_equal(ivl_ivshmem_vectors(d), 4);
	/* The guest rings b's vector 2 through the Doorbell register. */
	ivl_ivshmem_write(d, IVL_IVSHMEM_DOORBELL, DB(ivl_link_id(b), 2), 4);
	assert_int_equal(doorbells_on(b, 2, ev, &n), 1);
	/* Absent peer and absent vector: dropped, counted, nothing rung. */
	ivl_ivshmem_write(d, IVL_IVSHMEM_DOORBELL, DB(3, 0), 4);
	ivl_ivshmem_write(d, IVL_IVSHMEM_DOORBELL, DB(ivl_link_id(b), 4), 4);
	ivl_ivshmem_get_stats(d, &st);
	assert_int_equal(st.rings, 1);
	assert_int_equal(st.drop_peer, 1);
	assert_int_equal(st.drop_vector, 1);
	/* b rings a: the events of a, delivered, raise MSI-X vector 1 once
	 * MSI-X is enabled. */
	ivl_ivshmem_set_msix(d, true);
	assert_int_equal(ivl_link_ring(b, (uint16_t)ivl_link_id(a), 1), 0);
	n = 0;
	for (int64_t end = tu_now_ms() + 2000; !m.n && tu_now_ms() < end;) {
		n = ivl_link_wait(a, ev, 16, 100);
		if (n > 0)
			ivl_link_device_deliver(ld, ev, (size_t)n);
	}
	assert_int_equal(m.n, 1);
	assert_int_equal(m.v[0], 1);
	assert_int_equal(ivl_link_device_deliver(ld, NULL, 1), -EINVAL);
	assert_int_equal(ivl_link_device_deliver(ld, ev, 0), 0);
	ivl_link_device_free(ld);
	ivl_link_device_free(NULL);
	ivl_link_free(b);
	ivl_link_free(a);
	ivl_hub_free(hub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(register_table), cmocka_unit_test(pin_semantics),
	    cmocka_unit_test(pin_races),      cmocka_unit_test(msi_per_vector),
	    cmocka_unit_test(arguments),      cmocka_unit_test(link_backed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
