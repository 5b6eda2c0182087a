/* SPDX-License-Identifier: MIT */
/*
 * The ivlink shared-memory header (docs/protocol.md §2, layout in proto.h).
 *
 * The server writes it once, state last; everybody else maps memory that any
 * peer (or a guest) can scribble on at any time, so a reader takes one copy,
 * checks the copy, and from then on uses only the copy's numbers.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>

#define HDR_ALIGN 8 /* 64-bit atomics in the header and the peer table */

IVL_EXPORT int ivl_shm_format(void *base, uint64_t size, uint32_t max_peers, uint32_t vectors,
			      uint64_t epoch, uint32_t features)
{
	struct ivl_shm_header *h = base;
	uint64_t hsize;

	if (!base || ((uintptr_t)base % HDR_ALIGN) != 0)
		return -EINVAL;
	if (vectors < 1 || vectors > IVL_MAX_VECTORS)
		return -EINVAL;
	if (max_peers < 1 || max_peers > IVL_MAX_PEER_ID + 1u)
		return -EINVAL;
	hsize = ivl_shm_header_size(max_peers);
	if (size < hsize || size - hsize < IVL_SHM_PAGE)
		return -ENOSPC;

	/* Announce the rewrite before touching anything else, so a reader
	 * that looks while we work sees FORMATTING rather than a stale READY
	 * with half-written fields (it re-checks state after its copy). */
	__atomic_store_n(&h->state, IVL_SHM_FORMATTING, __ATOMIC_SEQ_CST);
	memset((char *)base + sizeof(h->magic), 0, (size_t)hsize - sizeof(h->magic));
	h->magic = IVL_SHM_MAGIC;
	h->version = IVL_SHM_VERSION;
	h->header_size = (uint32_t)hsize;
	h->region_size = size;
	h->epoch = epoch;
	h->max_peers = max_peers;
	h->vectors = vectors;
	h->peer_table_offset = IVL_SHM_PEER_TABLE_OFFSET;
	h->peer_entry_size = sizeof(struct ivl_shm_peer);
	h->features = features;
	h->server_pid = (uint32_t)getpid();
	/* Publishes every field above: pairs with the acquire load of state
	 * in ivl_shm_validate(). */
	__atomic_store_n(&h->state, IVL_SHM_READY, __ATOMIC_RELEASE);
	return 0;
}

/* Every check against the local copy @c; @size is the mapped size. */
static int check_layout(const struct ivl_shm_header *c, uint64_t size)
{
	uint64_t table_end;

	if (c->region_size != size)
		return -EPROTO;
	if (c->header_size == 0 || c->header_size % IVL_SHM_PAGE != 0 || c->header_size > size ||
	    size - c->header_size < IVL_SHM_PAGE)
		return -EPROTO;
	if (c->peer_entry_size != sizeof(struct ivl_shm_peer))
		return -EPROTO;
	if (c->max_peers < 1 || c->max_peers > IVL_MAX_PEER_ID + 1u)
		return -EPROTO;
	if (c->vectors < 1 || c->vectors > IVL_MAX_VECTORS)
		return -EPROTO;
	if (c->peer_table_offset < sizeof(struct ivl_shm_header) ||
	    c->peer_table_offset % HDR_ALIGN != 0)
		return -EPROTO;
	/* 32-bit operands, 64-bit arithmetic: cannot overflow. */
	table_end =
	    (uint64_t)c->peer_table_offset + (uint64_t)c->max_peers * (uint64_t)c->peer_entry_size;
	if (table_end > c->header_size)
		return -EPROTO;
	return 0;
}

IVL_EXPORT int ivl_shm_validate(const void *base, uint64_t size, struct ivl_shm_header *copy)
{
	/* The state is written by others while we look; casting away const
	 * only lets us use the atomic load, nothing is stored. */
	struct ivl_shm_header *h = (struct ivl_shm_header *)(uintptr_t)base;
	struct ivl_shm_header c;
	uint32_t state, again;
	int ret;

	if (!base || ((uintptr_t)base % HDR_ALIGN) != 0)
		return -EINVAL;
	if (size < sizeof(struct ivl_shm_header))
		return -ENOENT;

	/* Pairs with the release store of READY in ivl_shm_format() (and of
	 * CLOSED by the server): the fields we copy next are at least as new
	 * as the state we saw. */
	state = __atomic_load_n(&h->state, __ATOMIC_ACQUIRE);
	memcpy(&c, base, sizeof(c));
	/* Orders the copy before the second look at state, so a rewrite
	 * that began during the copy is noticed (a one-sided seqlock). */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	again = __atomic_load_n(&h->state, __ATOMIC_RELAXED);

	if (c.magic != IVL_SHM_MAGIC)
		return -ENOENT;
	if (c.version != IVL_SHM_VERSION) {
		ivl__debug("shm header: layout version %u, not %u", c.version, IVL_SHM_VERSION);
		return -EPROTO;
	}
	switch (state) {
	case IVL_SHM_READY:
		break;
	case IVL_SHM_FORMATTING:
		return -EAGAIN;
	case IVL_SHM_CLOSED:
		return -ESHUTDOWN;
	default:
		ivl__debug("shm header: bad state %u", state);
		return -EPROTO;
	}
	if (again != state)
		return again == IVL_SHM_CLOSED ? -ESHUTDOWN : -EAGAIN;
	ret = check_layout(&c, size);
	if (ret < 0) {
		ivl__debug("shm header: inconsistent layout");
		return ret;
	}
	if (copy) {
		memcpy(copy, &c, sizeof(c));
		__atomic_store_n(&copy->state, state, __ATOMIC_RELAXED);
	}
	return 0;
}

IVL_EXPORT struct ivl_shm_peer *ivl_shm_peer(void *base, const struct ivl_shm_header *valid,
					     uint32_t id)
{
	if (!base || !valid || id >= valid->max_peers)
		return NULL;
	/* @valid is a copy that passed ivl_shm_validate(): the entry lies
	 * inside the header (offset + max_peers * entry_size <= header_size). */
	return (struct ivl_shm_peer *)((char *)base + valid->peer_table_offset +
				       (uint64_t)id * valid->peer_entry_size);
}
