/* SPDX-License-Identifier: MIT */
/*
 * The guest kernel driver virtio_sdm's checks of what its device writes
 * (kernel/virtio_sdm_wire.h, compiled here as it is in the module): a
 * delivered signal and its used length, and a send's result.  Input: one
 * byte of flags (bit 0: the driver is a master), then records of 24 bytes:
 * a le32 used length and the 20-byte buffer the device filled.  Each
 * buffer is its own allocation of exactly 20 bytes, so a read past it is
 * an ASan finding.  The verdicts are compared with the rules of
 * docs/guest-sdm.md, stated here independently of the driver's code: a
 * record is taken iff its length is 16 or 20, its type is IRQ, BOOT or
 * RESET, and (master) it names slave 0 and comes from a slave 1..1024
 * (unknown with 16 bytes) or (slave) it comes from the master (0) to a
 * slave 1..1024; a taken record carries the buffer's values.  A result is
 * taken iff at least 4 bytes were written and it is a count 0..1024 or an
 * errno; anything else is -EIO.
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

typedef uint32_t u32;
typedef int32_t s32;
#define le32_to_cpu(x) le32toh(x)
#define MAX_ERRNO 4095

#include "../../kernel/virtio_sdm_wire.h"

static u32 word(const uint8_t *p)
{
	return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool master;
	size_t off;

	if (size < 1)
		return 0;
	master = data[0] & 1;
	for (off = 1; off + 24 <= size; off += 24) {
		const uint8_t *raw = data + off + 4;
		unsigned int len = word(data + off);
		struct ivl_transport_sdm_rx *b = malloc(sizeof(*b));
		u32 type = word(raw), slave = word(raw + 4), from = word(raw + 16);
		struct vsdm_rec r;
		bool want, got;
		s32 v = (s32)word(raw);
		int res;

		FUZZ_CHECK(b);
		memcpy(b, raw, sizeof(*b));
		got = vsdm_rx_parse(b, len, master, &r);
		if (len == 16 && master)
			from = VSDM_FROM_UNKNOWN;
		else if (len == 16)
			from = 0;
		want = (len == 16 || len == 20) && type <= 2 &&
		       (master ? slave == 0 && (from == VSDM_FROM_UNKNOWN ||
						(from >= 1 && from <= 1024))
			       : from == 0 && slave >= 1 && slave <= 1024);
		FUZZ_CHECK(got == want);
		if (got)
			FUZZ_CHECK(r.type == type && r.slave == slave && r.from == from &&
				   r.payload[0] == word(raw + 8) && r.payload[1] == word(raw + 12));

		want = len >= 4 && v >= -4095 && v <= 1024;
		got = vsdm_result_parse(b->sig.type, len, &res);
		FUZZ_CHECK(got == want);
		FUZZ_CHECK(res == (want ? v : -EIO));
		free(b);
	}
	return 0;
}
