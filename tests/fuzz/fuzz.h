/* SPDX-License-Identifier: MIT */
/* The libFuzzer entry point every harness defines; standalone_main.c calls
 * it on files when libFuzzer is not linked in. */
#ifndef IVL_FUZZ_H
#define IVL_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* abort() with a message: a broken invariant is a finding, even in builds
 * without sanitizers (and with NDEBUG). */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
