/* SPDX-License-Identifier: MIT */
/*
 * The server's parser of the optional peer hello (docs/protocol.md §1.4),
 * fed the way the server feeds it: every prefix of what a peer sent, as the
 * bytes trickle in.  Invariants: a verdict never changes once reached
 * (error or complete), completion happens exactly at 48 bytes, and a
 * completed name is printable ASCII of at most 32 bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/proto/shm.h>

#include "fuzz.h"
#include "ivshmem/server-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[IVL_NAME_LEN + 1];
	int verdict = 0;

	if (size > 2 * sizeof(struct ivl_wire_hello))
		size = 2 * sizeof(struct ivl_wire_hello);
	for (size_t have = 0; have <= size; have++) {
		int r;

		memset(name, 'X', sizeof(name));
		r = ivl__hello_check(data, have, name);
		FUZZ_CHECK(r == 0 || r == 1 || r == -EPROTO || r == -EPROTONOSUPPORT);
		if (verdict < 0) {
			/* The server stops at the first error; a longer
			 * prefix must not turn it into a success. */
			FUZZ_CHECK(r < 0);
			continue;
		}
		if (verdict == 1) {
			FUZZ_CHECK(r != 1 || have == sizeof(struct ivl_wire_hello));
			continue;
		}
		if (r == 1) {
			size_t n = strnlen(name, sizeof(name));

			FUZZ_CHECK(have == sizeof(struct ivl_wire_hello));
			FUZZ_CHECK(n <= IVL_NAME_LEN);
			for (size_t i = 0; i < n; i++)
				FUZZ_CHECK(name[i] >= 0x20 && name[i] < 0x7f);
		}
		if (r != 0)
			verdict = r;
	}
	return 0;
}
