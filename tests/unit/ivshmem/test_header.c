/* SPDX-License-Identifier: MIT */
/* The shared-memory header (docs/protocol.md §2): format, validate, peer table. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testutil.h"
#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>

#define MiB (1ull << 20)

struct map {
	void *base;
	uint64_t size;
};

/* A region with a PROT_NONE page after it: a read past the end crashes. */
static struct map mkmap(uint64_t size)
{
	struct map m = {NULL, size};
	char *p = mmap(NULL, size + 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	assert_int_equal(mprotect(p, size, PROT_READ | PROT_WRITE), 0);
	m.base = p;
	return m;
}

static void unmap(struct map m)
{
	munmap(m.base, m.size + 4096);
}

static struct ivl_shm_header *hdr(struct map m)
{
	return m.base;
}

static void round_trip(void **state)
{
	struct map m = mkmap(MiB);
	struct ivl_shm_header c;
	struct ivl_shm_peer *p;
	uint32_t i;

	(void)state;
	/* Garbage first: formatting must not depend on what was there. */
	memset(m.base, 0xa5, m.size);
	assert_int_equal(ivl_shm_format(m.base, m.size, 256, 4, 42, IVL_FEAT_HELLO), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(ivl_shm_validate(m.base, m.size, &c), 0);
	assert_true(c.magic == IVL_SHM_MAGIC);
	assert_int_equal(c.version, IVL_SHM_VERSION);
	assert_int_equal(c.header_size, ivl_shm_header_size(256));
	assert_int_equal(c.header_size, 20480);
	assert_true(c.region_size == MiB);
	assert_true(c.epoch == 42);
	assert_int_equal(c.max_peers, 256);
	assert_int_equal(c.vectors, 4);
	assert_int_equal(c.peer_table_offset, IVL_SHM_PEER_TABLE_OFFSET);
	assert_int_equal(c.peer_entry_size, sizeof(struct ivl_shm_peer));
	assert_int_equal(c.features, IVL_FEAT_HELLO);
	assert_int_equal(c.server_pid, (uint32_t)getpid());
	assert_int_equal(__atomic_load_n(&c.state, __ATOMIC_SEQ_CST), IVL_SHM_READY);
	assert_int_equal(ivl_shm_validate(m.base, m.size, NULL), 0);

	/* The whole header area is zeroed, the application area untouched. */
	for (i = sizeof(struct ivl_shm_header); i < c.header_size; i++)
		if (((unsigned char *)m.base)[i] != 0)
			fail_msg("byte %u not zeroed", i);
	assert_int_equal(((unsigned char *)m.base)[c.header_size], 0xa5);

	p = ivl_shm_peer(m.base, &c, 0);
	assert_ptr_equal(p, (char *)m.base + 128);
	p = ivl_shm_peer(m.base, &c, 255);
	assert_ptr_equal(p, (char *)m.base + 128 + 255 * 64);
	assert_int_equal(__atomic_load_n(&p->state, __ATOMIC_SEQ_CST), IVL_PEER_ABSENT);
	assert_null(ivl_shm_peer(m.base, &c, 256));
	assert_null(ivl_shm_peer(m.base, &c, UINT32_MAX));
	assert_null(ivl_shm_peer(NULL, &c, 0));
	assert_null(ivl_shm_peer(m.base, NULL, 0));
	unmap(m);
}

static void format_limits(void **state)
{
	struct map m = mkmap(8 * MiB);
	struct ivl_shm_header c;

	(void)state;
	assert_int_equal(ivl_shm_format(m.base, m.size, 16, 0, 1, 0), -EINVAL);
	assert_int_equal(ivl_shm_format(m.base, m.size, 16, 65, 1, 0), -EINVAL);
	assert_int_equal(ivl_shm_format(m.base, m.size, 0, 1, 1, 0), -EINVAL);
	assert_int_equal(ivl_shm_format(m.base, m.size, 65537, 1, 1, 0), -EINVAL);
	assert_int_equal(ivl_shm_format(NULL, m.size, 1, 1, 1, 0), -EINVAL);
	/* One page of header needs a second page of application area. */
	assert_int_equal(ivl_shm_format(m.base, 4096, 1, 1, 1, 0), -ENOSPC);
	assert_int_equal(ivl_shm_format(m.base, 100, 1, 1, 1, 0), -ENOSPC);
	assert_int_equal(ivl_shm_format(m.base, 8192, 1, 1, 1, 0), 0);
	assert_int_equal(ivl_shm_validate(m.base, 8192, &c), 0);
	assert_int_equal(c.header_size, 4096);
	/* 62 peers still fit one page (128 + 62 * 64 = 4096), 63 do not. */
	assert_int_equal(ivl_shm_header_size(62), 4096);
	assert_int_equal(ivl_shm_format(m.base, 8192, 62, 1, 1, 0), 0);
	assert_int_equal(ivl_shm_format(m.base, 8192, 63, 1, 1, 0), -ENOSPC);
	/* Every possible ID, every vector. */
	assert_int_equal(ivl_shm_format(m.base, m.size, 65536, 64, UINT64_MAX, UINT32_MAX), 0);
	assert_int_equal(ivl_shm_validate(m.base, m.size, &c), 0);
	assert_int_equal(c.max_peers, 65536);
	assert_int_equal(c.vectors, 64);
	assert_true(c.epoch == UINT64_MAX);
	assert_ptr_equal(ivl_shm_peer(m.base, &c, 65535), (char *)m.base + 128 + 65535ull * 64);
	assert_int_equal(ivl_shm_format(m.base, 4 * MiB, 65536, 1, 1, 0), -ENOSPC);
	unmap(m);
}

static void raw_and_tiny(void **state)
{
	struct map m = mkmap(64 * 1024);

	(void)state;
	/* A raw ivshmem region is zero: no header. */
	assert_int_equal(ivl_shm_validate(m.base, m.size, NULL), -ENOENT);
	memset(m.base, 0xff, m.size);
	assert_int_equal(ivl_shm_validate(m.base, m.size, NULL), -ENOENT);
	assert_int_equal(ivl_shm_format(m.base, m.size, 8, 1, 1, 0), 0);
	/* Too small to hold even the fixed part. */
	assert_int_equal(ivl_shm_validate(m.base, 127, NULL), -ENOENT);
	assert_int_equal(ivl_shm_validate(m.base, 0, NULL), -ENOENT);
	assert_int_equal(ivl_shm_validate(NULL, m.size, NULL), -EINVAL);
	unmap(m);
}

enum field {
	F_MAGIC,
	F_VERSION,
	F_STATE,
	F_HEADER_SIZE,
	F_REGION_SIZE,
	F_MAX_PEERS,
	F_VECTORS,
	F_TABLE_OFFSET,
	F_ENTRY_SIZE,
};

struct corruption {
	enum field field;
	uint64_t value;
	int expect;
};

static void set_field(struct ivl_shm_header *h, enum field f, uint64_t v)
{
	switch (f) {
	case F_MAGIC:
		h->magic = v;
		break;
	case F_VERSION:
		h->version = (uint32_t)v;
		break;
	case F_STATE:
		__atomic_store_n(&h->state, (uint32_t)v, __ATOMIC_SEQ_CST);
		break;
	case F_HEADER_SIZE:
		h->header_size = (uint32_t)v;
		break;
	case F_REGION_SIZE:
		h->region_size = v;
		break;
	case F_MAX_PEERS:
		h->max_peers = (uint32_t)v;
		break;
	case F_VECTORS:
		h->vectors = (uint32_t)v;
		break;
	case F_TABLE_OFFSET:
		h->peer_table_offset = (uint32_t)v;
		break;
	case F_ENTRY_SIZE:
		h->peer_entry_size = (uint32_t)v;
		break;
	}
}

/* Region 64 KiB, 16 peers: header 4096 (128 + 16*64 = 1152, rounded up). */
static const struct corruption corruptions[] = {
    {F_MAGIC, 0, -ENOENT},
    {F_MAGIC, IVL_SHM_MAGIC ^ 1, -ENOENT},
    {F_MAGIC, IVL_SHM_MAGIC << 8, -ENOENT},
    {F_VERSION, 0, -EPROTO},
    {F_VERSION, 2, -EPROTO},
    {F_VERSION, UINT32_MAX, -EPROTO},
    {F_STATE, IVL_SHM_FORMATTING, -EAGAIN},
    {F_STATE, IVL_SHM_CLOSED, -ESHUTDOWN},
    {F_STATE, 3, -EPROTO},
    {F_STATE, UINT32_MAX, -EPROTO},
    {F_HEADER_SIZE, 0, -EPROTO},
    {F_HEADER_SIZE, 4097, -EPROTO},
    {F_HEADER_SIZE, 2048, -EPROTO},
    {F_HEADER_SIZE, 64 * 1024, -EPROTO},  /* no application area */
    {F_HEADER_SIZE, 128 * 1024, -EPROTO}, /* beyond the region */
    {F_HEADER_SIZE, 0xfffff000u, -EPROTO},
    {F_REGION_SIZE, 32 * 1024, -EPROTO},
    {F_REGION_SIZE, 128 * 1024, -EPROTO},
    {F_REGION_SIZE, UINT64_MAX, -EPROTO},
    {F_REGION_SIZE, 0, -EPROTO},
    {F_MAX_PEERS, 0, -EPROTO},
    {F_MAX_PEERS, 63, -EPROTO}, /* 128 + 63*64 > 4096 */
    {F_MAX_PEERS, 65537, -EPROTO},
    {F_MAX_PEERS, UINT32_MAX, -EPROTO},	 /* would overflow 32 bits */
    {F_MAX_PEERS, 0x04000000u, -EPROTO}, /* * 64 wraps to 0 in 32 bits */
    {F_VECTORS, 0, -EPROTO},
    {F_VECTORS, 65, -EPROTO},
    {F_VECTORS, UINT32_MAX, -EPROTO},
    {F_TABLE_OFFSET, 0, -EPROTO}, /* overlaps the fixed fields */
    {F_TABLE_OFFSET, 64, -EPROTO},
    {F_TABLE_OFFSET, 132, -EPROTO},		   /* misaligned atomics */
    {F_TABLE_OFFSET, 4096 - 16 * 64 + 8, -EPROTO}, /* table runs past the header */
    {F_TABLE_OFFSET, UINT32_MAX - 7, -EPROTO},
    {F_ENTRY_SIZE, 0, -EPROTO},
    {F_ENTRY_SIZE, 32, -EPROTO},
    {F_ENTRY_SIZE, 128, -EPROTO},
    {F_ENTRY_SIZE, UINT32_MAX, -EPROTO},
};

static void every_corruption(void **state)
{
	struct map m = mkmap(64 * 1024);
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(corruptions) / sizeof(corruptions[0]); i++) {
		const struct corruption *k = &corruptions[i];
		struct ivl_shm_header c;

		assert_int_equal(ivl_shm_format(m.base, m.size, 16, 2, 7, 0), 0);
		assert_int_equal(ivl_shm_validate(m.base, m.size, NULL), 0);
		set_field(hdr(m), k->field, k->value);
		memset(&c, 0x77, sizeof(c));
		if (ivl_shm_validate(m.base, m.size, &c) != k->expect)
			fail_msg("corruption %zu (field %d = %llu): got %d, want %d", i, k->field,
				 (unsigned long long)k->value,
				 ivl_shm_validate(m.base, m.size, NULL), k->expect);
	}
	/* Still valid variants: a later table inside the header, and unknown
	 * feature bits (for forward compatibility). */
	assert_int_equal(ivl_shm_format(m.base, m.size, 16, 2, 7, 0), 0);
	hdr(m)->peer_table_offset = 4096 - 16 * 64;
	hdr(m)->features = 0xffff0000u;
	assert_int_equal(ivl_shm_validate(m.base, m.size, NULL), 0);
	/* Right fields, wrong size passed in by the caller. */
	assert_int_equal(ivl_shm_validate(m.base, 32 * 1024, NULL), -EPROTO);
	unmap(m);
}

/* Torn or hostile values everywhere: random fixed fields, then whatever
 * validate accepts must keep every peer entry inside the header. */
static void random_values_never_escape(void **state)
{
	struct map m = mkmap(64 * 1024);
	unsigned seed = 12345;
	int i, accepted = 0;

	(void)state;
	for (i = 0; i < 20000; i++) {
		struct ivl_shm_header *h = hdr(m);
		struct ivl_shm_header c;
		uint32_t *w = (uint32_t *)m.base;
		int j, ret;

		assert_int_equal(ivl_shm_format(m.base, m.size, 16, 2, 7, 0), 0);
		/* Scramble 1..3 of the 32-bit words after magic/version with
		 * small or random values. */
		for (j = 0; j < 1 + i % 3; j++) {
			unsigned word = 3 + (unsigned)rand_r(&seed) % 13;
			uint32_t v = (unsigned)rand_r(&seed);

			if (rand_r(&seed) & 1)
				v %= 70000;
			if (word == 13) /* state: keep it READY most of the time */
				v = (rand_r(&seed) & 7) ? IVL_SHM_READY : v;
			w[word] = v;
		}
		ret = ivl_shm_validate(m.base, m.size, &c);
		assert_true(ret == 0 || ret == -EPROTO || ret == -EAGAIN || ret == -ESHUTDOWN);
		if (ret == 0) {
			struct ivl_shm_peer *last;

			accepted++;
			assert_true(c.header_size < m.size);
			last = ivl_shm_peer(m.base, &c, c.max_peers - 1);
			assert_non_null(last);
			assert_true((char *)(last + 1) <= (char *)m.base + c.header_size);
			assert_true((char *)ivl_shm_peer(m.base, &c, 0) >=
				    (char *)m.base + sizeof(*h));
			assert_null(ivl_shm_peer(m.base, &c, c.max_peers));
			/* The copy, not the memory, is what was checked. */
			assert_true(c.region_size == m.size);
		}
	}
	/* Some scrambles hit only harmless fields (epoch, features, pid). */
	assert_true(accepted > 0);
	unmap(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip),
	    cmocka_unit_test(format_limits),
	    cmocka_unit_test(raw_and_tiny),
	    cmocka_unit_test(every_corruption),
	    cmocka_unit_test(random_values_never_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
