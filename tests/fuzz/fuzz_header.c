/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the shared-memory header reader (docs/protocol.md §2): arbitrary bytes
 * become the start of a region of the next power-of-two size (at least two
 * pages, zero filled), followed by an inaccessible guard page.  Whatever
 * ivl_shm_validate() accepts must keep every peer entry inside the header;
 * then the same memory is formatted from input-derived parameters and must
 * validate back to exactly those parameters.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>

#include "core/internal.h"
#include "fuzz.h"

#define MIN_REGION 8192u
#define MAX_INPUT (1u << 20)
#define GUARD 4096u

static uint64_t region_size(size_t len)
{
	uint64_t s = MIN_REGION;

	while (s < len)
		s <<= 1;
	return s;
}

static void walk_peers(char *base, const struct ivl_shm_header *c)
{
	char name[IVL_NAME_LEN + 1];
	uint32_t id;

	for (id = 0; id < c->max_peers; id++) {
		struct ivl_shm_peer *p = ivl_shm_peer(base, c, id);

		FUZZ_CHECK(p);
		FUZZ_CHECK((char *)p >= base + sizeof(struct ivl_shm_header));
		FUZZ_CHECK((char *)(p + 1) <= base + c->header_size);
		FUZZ_CHECK(((uintptr_t)p & 7) == 0);
		/* Touch what a reader would: the guard page and ASan catch any
		 * entry outside the mapping. */
		(void)__atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
		(void)__atomic_load_n(&p->generation, __ATOMIC_RELAXED);
		(void)__atomic_load_n(&p->pending, __ATOMIC_RELAXED);
		(void)__atomic_load_n(&p->waiting, __ATOMIC_RELAXED);
		ivl__sanitize_name(name, p->name, IVL_NAME_LEN);
	}
	FUZZ_CHECK(!ivl_shm_peer(base, c, c->max_peers));
	FUZZ_CHECK(!ivl_shm_peer(base, c, UINT32_MAX));
}

static void check_validate(char *base, uint64_t size)
{
	struct ivl_shm_header c;
	int ret = ivl_shm_validate(base, size, &c);

	FUZZ_CHECK(ret == 0 || ret == -ENOENT || ret == -EAGAIN || ret == -ESHUTDOWN ||
		   ret == -EPROTO);
	if (ret != 0)
		return;
	FUZZ_CHECK(c.magic == IVL_SHM_MAGIC && c.version == IVL_SHM_VERSION);
	FUZZ_CHECK(__atomic_load_n(&c.state, __ATOMIC_SEQ_CST) == IVL_SHM_READY);
	FUZZ_CHECK(c.region_size == size);
	FUZZ_CHECK(c.header_size % IVL_SHM_PAGE == 0 && c.header_size < size);
	FUZZ_CHECK(c.vectors >= 1 && c.vectors <= IVL_MAX_VECTORS);
	FUZZ_CHECK(c.max_peers >= 1 && c.max_peers <= IVL_MAX_PEER_ID + 1u);
	walk_peers(base, &c);
}

/* Format with parameters taken from the input's last bytes (the first ones
 * are the header itself); a successful format must read back exactly. */
static void check_format(char *base, uint64_t size, const uint8_t *d, size_t len)
{
	uint8_t p[16] = {0};
	struct ivl_shm_header c;
	uint32_t max_peers, vectors, features;
	uint64_t epoch;
	int ret;

	if (len > sizeof(p)) {
		d += len - sizeof(p);
		len = sizeof(p);
	}
	memcpy(p, d, len);
	max_peers = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)(p[2] & 1) << 16;
	vectors = p[3] % 70;
	features = (uint32_t)p[4] | (uint32_t)p[5] << 8;
	memcpy(&epoch, p + 8, sizeof(epoch));

	ret = ivl_shm_format(base, size, max_peers, vectors, epoch, features);
	if (vectors < 1 || vectors > IVL_MAX_VECTORS || max_peers < 1 ||
	    max_peers > IVL_MAX_PEER_ID + 1u) {
		FUZZ_CHECK(ret == -EINVAL);
		return;
	}
	if (ivl_shm_header_size(max_peers) + IVL_SHM_PAGE > size) {
		FUZZ_CHECK(ret == -ENOSPC);
		return;
	}
	FUZZ_CHECK(ret == 0);
	FUZZ_CHECK(ivl_shm_validate(base, size, &c) == 0);
	FUZZ_CHECK(c.max_peers == max_peers && c.vectors == vectors && c.epoch == epoch &&
		   c.features == features && c.region_size == size &&
		   c.header_size == ivl_shm_header_size(max_peers));
	walk_peers(base, &c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t rsize;
	char *map;

	if (size > MAX_INPUT)
		return 0;
	rsize = region_size(size);
	map = mmap(NULL, rsize + GUARD, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	FUZZ_CHECK(map != MAP_FAILED);
	FUZZ_CHECK(mprotect(map, rsize, PROT_READ | PROT_WRITE) == 0);
	if (size)
		memcpy(map, data, size);

	check_validate(map, rsize);
	/* The same bytes seen through a smaller window: nothing may be read
	 * past the size the caller states. */
	check_validate(map + rsize - 128, 128);
	check_validate(map, size & ~(size_t)7);
	check_format(map, rsize, data, size);

	munmap(map, rsize + GUARD);
	return 0;
}
