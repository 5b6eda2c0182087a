/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the ivshmem device model's register path (docs/device.md): byte 0
 * picks the interrupt mode (bit 7) and the vectors (low 6 bits + 1); then
 * 12-byte operations [kind][offset lo][offset hi][size][value le64]: guest
 * reads and writes at any offset and size, incoming doorbells, IVPosition,
 * MSI-X enable and masks, reset, and a check of the pin against the
 * registers.  Invariants (abort on violation): pin reports alternate and
 * match the pin; no pin in MSI mode; MSI vectors and rings stay in range;
 * IVPosition and IntrMask read back what was set; a masked or disabled
 * vector never raises; the access counters count every access.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/ivshmem.h>
#include <ivlink/link-device.h>

#include "fuzz.h"

struct shadow {
	unsigned vectors;
	bool pin_mode;
	int level; /* the last pin report */
	int position;
	uint32_t mask; /* IntrMask as the guest wrote it */
	bool msix;
	uint64_t masked;
	uint64_t reads, writes;
};

static unsigned peer_vectors(void *ctx, uint16_t peer)
{
	(void)ctx;
	return peer < 4 ? peer + 1u : 0; /* peer n has n + 1 vectors */
}

static int ring(void *ctx, uint16_t peer, uint16_t vector)
{
	(void)ctx;
	FUZZ_CHECK(vector < peer_vectors(NULL, peer));
	return peer == 2 ? -1 : 0;
}

static void irq(void *ctx, enum ivl_ivshmem_irq_kind kind, unsigned arg)
{
	struct shadow *s = ctx;

	if (kind == IVL_IVSHMEM_IRQ_PIN) {
		FUZZ_CHECK(s->pin_mode);
		FUZZ_CHECK(arg == (unsigned)!s->level);
		s->level = (int)arg;
		return;
	}
	FUZZ_CHECK(kind == IVL_IVSHMEM_IRQ_MSI);
	FUZZ_CHECK(!s->pin_mode && s->msix);
	FUZZ_CHECK(arg < s->vectors);
	FUZZ_CHECK(!(s->masked >> arg & 1));
}

static const struct ivl_ivshmem_ops ops = {
    .ring = ring, .peer_vectors = peer_vectors, .irq = irq};

/* IntrMask after a write of @size bytes of @val at @off (the model's
 * documented rules: 4 and 8 bytes, naturally aligned, inside BAR0). */
static void shadow_write(struct shadow *s, uint64_t off, unsigned size, uint64_t val)
{
	if (off >= IVL_IVSHMEM_BAR0_SIZE || (size != 4 && size != 8) || off % size)
		return;
	if (off == IVL_IVSHMEM_INTRMASK)
		s->mask = (uint32_t)val;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct shadow s = {.position = -1};
	struct ivl_ivshmem_opts cfg = {.ops = &ops, .ctx = &s};
	struct ivl_ivshmem_stats st;
	struct ivl_ivshmem *d;

	if (!size)
		return 0;
	s.pin_mode = data[0] & 0x80;
	s.vectors = (data[0] & 0x3fu) + 1;
	cfg.mode = s.pin_mode ? IVL_IVSHMEM_PIN : IVL_IVSHMEM_MSI;
	cfg.vectors = s.vectors;
	FUZZ_CHECK(ivl_ivshmem_new(&d, &cfg) == 0);
	for (size_t i = 1; i + 12 <= size; i += 12) {
		const uint8_t *op = data + i;
		uint64_t off = op[1] | (uint64_t)op[2] << 8, val = 0;
		unsigned sz = op[3];

		for (int k = 0; k < 8; k++)
			val |= (uint64_t)op[4 + k] << (8 * k);
		if (op[2] & 0x80) /* now and then far beyond BAR0 */
			off = val;
		switch (op[0] % 9) {
		case 0:
			ivl_ivshmem_read(d, off, sz);
			s.reads++;
			break;
		case 1:
			ivl_ivshmem_write(d, off, val, sz);
			shadow_write(&s, off, sz, val);
			s.writes++;
			break;
		case 2: /* an aligned 32-bit write: the common case */
			off &= 0xfc;
			ivl_ivshmem_write(d, off, val, 4);
			shadow_write(&s, off, 4, val);
			s.writes++;
			break;
		case 3:
			ivl_ivshmem_doorbell(d, (unsigned)(val % 80));
			break;
		case 4: {
			int id = (int)(val % 65538) - 1; /* -1..65536 */
			int r = ivl_ivshmem_set_position(d, id);

			FUZZ_CHECK((r == 0) == (id <= 65535));
			if (r == 0)
				s.position = id;
			break;
		}
		case 5:
			if (ivl_ivshmem_set_msix(d, val & 1) == 0)
				s.msix = val & 1;
			else
				FUZZ_CHECK(s.pin_mode);
			break;
		case 6: {
			unsigned v = (unsigned)(val >> 8) % 70;
			bool m = val & 1, ok = !s.pin_mode && v < s.vectors;
			int r;

			/* Unmasking may raise the pending vector at once: the
			 * shadow says unmasked before the call. */
			if (ok && !m)
				s.masked &= ~(1ull << v);
			r = ivl_ivshmem_mask(d, v, m);
			FUZZ_CHECK(ok ? r == 0 : r < 0);
			if (ok && m)
				s.masked |= 1ull << v;
			break;
		}
		case 7:
			ivl_ivshmem_reset(d);
			s.mask = 0;
			s.msix = false;
			s.masked = 0;
			break;
		case 8: {
			/* The pin is what the registers say (reading IntrStatus
			 * acknowledges: the pin drops). */
			int pin = ivl_ivshmem_pin(d);
			uint32_t m = (uint32_t)ivl_ivshmem_read(d, IVL_IVSHMEM_INTRMASK, 4);
			uint32_t st32 =
			    (uint32_t)ivl_ivshmem_read(d, IVL_IVSHMEM_INTRSTATUS, 4);

			s.reads += 2;
			FUZZ_CHECK(m == s.mask);
			FUZZ_CHECK(pin == (s.pin_mode && (st32 & m) != 0));
			FUZZ_CHECK(ivl_ivshmem_pin(d) == 0);
			break;
		}
		}
		FUZZ_CHECK(ivl_ivshmem_pin(d) == s.level);
		FUZZ_CHECK(!(ivl_ivshmem_pending(d) &
			     ~(s.vectors >= 64 ? ~0ull : (1ull << s.vectors) - 1)));
		FUZZ_CHECK(ivl_ivshmem_read(d, IVL_IVSHMEM_IVPOSITION, 4) ==
			   (uint32_t)s.position);
		s.reads++;
	}
	ivl_ivshmem_get_stats(d, &st);
	FUZZ_CHECK(st.reads == s.reads && st.writes == s.writes);
	FUZZ_CHECK(st.pin_raised - st.pin_lowered == (uint64_t)s.level);
	FUZZ_CHECK(st.rings + st.drop_not_ready + st.drop_peer + st.drop_vector + st.drop_ring <=
		   st.writes * 2);
	ivl_ivshmem_free(d);
	return 0;
}
