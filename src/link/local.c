/* SPDX-License-Identifier: MIT */
/*
 * The local backend: several links in one process share a memfd region
 * formatted with the ivlink header, and ring each other through real
 * eventfds, so that code tested here meets the same fds, epoll behaviour
 * and header contents as against a server.
 *
 * The hub plays the server: it hands out IDs (lowest free), keeps the
 * header's peer table as the server does, and announces joins and leaves by
 * pushing events on the other links' queues.  Lifetime: the hub handle and
 * every link hold a reference; the region lives until the last is dropped,
 * so a link's pointers into it stay valid after ivl_hub_free().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/hub.h>
#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>
#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>
#include <ivlink/region.h>

#include "core/internal.h"
#include "link/link-internal.h"

struct local_link;

struct ivl_hub {
	/* Write-locked by join, leave and free; read-locked by ring and
	 * peer queries from any thread. */
	pthread_rwlock_t lock;
	struct ivl_region *region;
	struct ivl_shm_header hdr; /* validated copy */
	unsigned max_peers;
	unsigned vectors;
	struct local_link **slots;
	/* slots[i] is a live peer: written under the write lock, read
	 * without any lock by local_peer_vectors() (every ring asks). */
	atomic_bool *present;
	atomic_uint refs;
	bool closed;
};

struct local_link {
	struct ivl_link l;
	struct ivl_hub *hub;
	int fds[IVL_MAX_VECTORS]; /* my vectors; owned here */
};

static struct local_link *to_local(const struct ivl_link *l)
{
	return (struct local_link *)(uintptr_t)l;
}

static void hub_unref(struct ivl_hub *hub)
{
	if (atomic_fetch_sub(&hub->refs, 1) != 1)
		return;
	pthread_rwlock_destroy(&hub->lock);
	ivl_region_free(hub->region);
	free(hub->slots);
	free(hub->present);
	free(hub);
}

IVL_EXPORT int ivl_hub_new(struct ivl_hub **out, uint64_t size, unsigned max_peers,
				 unsigned vectors)
{
	struct ivl_region_opts ro = {
	    .kind = IVL_REGION_MEMFD, .name = "ivlink-local", .size = size};
	struct ivl_hub *hub;
	struct timespec ts;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!max_peers || max_peers > IVL_MAX_PEER_ID + 1u || !vectors || vectors > IVL_MAX_VECTORS)
		return -EINVAL;
	hub = calloc(1, sizeof(*hub));
	if (!hub)
		return -ENOMEM;
	hub->slots = calloc(max_peers, sizeof(*hub->slots));
	hub->present = calloc(max_peers, sizeof(*hub->present));
	ret = hub->slots && hub->present ? -pthread_rwlock_init(&hub->lock, NULL) : -ENOMEM;
	if (ret < 0) {
		free(hub->slots);
		free(hub->present);
		free(hub);
		return ret;
	}
	atomic_init(&hub->refs, 1);
	hub->max_peers = max_peers;
	hub->vectors = vectors;
	ret = ivl_region_open(&hub->region, &ro);
	if (ret < 0)
		goto fail;
	clock_gettime(CLOCK_REALTIME, &ts);
	ret = ivl_shm_format(ivl_region_base(hub->region), size, max_peers, vectors,
			     (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
			     IVL_FEAT_NAMES);
	if (ret < 0)
		goto fail;
	ret = ivl_shm_validate(ivl_region_base(hub->region), size, &hub->hdr);
	if (ret < 0)
		goto fail;
	*out = hub;
	return 0;
fail:
	hub_unref(hub);
	return ret;
}

IVL_EXPORT void ivl_hub_free(struct ivl_hub *hub)
{
	struct ivl_shm_header *h;

	if (!hub)
		return;
	pthread_rwlock_wrlock(&hub->lock);
	hub->closed = true;
	for (unsigned i = 0; i < hub->max_peers; i++) {
		atomic_store_explicit(&hub->present[i], false, memory_order_relaxed);
		if (hub->slots[i])
			ivl__link_set_down(&hub->slots[i]->l);
	}
	h = ivl_region_base(hub->region);
	/* Pairs with the acquire load of state in ivl_shm_validate(). */
	__atomic_store_n(&h->state, IVL_SHM_CLOSED, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&hub->lock);
	hub_unref(hub);
}

/* Fill in my peer-table entry as the server does: fields first, then the
 * state with release (pairs with readers' acquire load of state). */
static void entry_join(struct ivl_hub *hub, unsigned id, const char *name)
{
	struct ivl_shm_peer *e = ivl_shm_peer(ivl_region_base(hub->region), &hub->hdr, id);

	__atomic_store_n(&e->state, IVL_PEER_JOINED, __ATOMIC_RELAXED);
	__atomic_fetch_add(&e->generation, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&e->pending, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->waiting, 0, __ATOMIC_RELAXED);
	e->vectors = hub->vectors;
	e->pid = (uint32_t)getpid();
	e->uid = (uint32_t)getuid();
	memset(e->name, 0, sizeof(e->name));
	if (name)
		memcpy(e->name, name, strnlen(name, IVL_NAME_LEN));
	__atomic_store_n(&e->state, IVL_PEER_READY, __ATOMIC_RELEASE);
}

static void entry_leave(struct ivl_hub *hub, unsigned id)
{
	struct ivl_shm_peer *e = ivl_shm_peer(ivl_region_base(hub->region), &hub->hdr, id);

	__atomic_store_n(&e->state, IVL_PEER_LEAVING, __ATOMIC_RELAXED);
	memset(e->name, 0, sizeof(e->name));
	e->pid = 0;
	e->uid = 0;
	/* Pairs with readers' acquire load of state: they see the cleared
	 * fields with ABSENT. */
	__atomic_store_n(&e->state, IVL_PEER_ABSENT, __ATOMIC_RELEASE);
}

static int local_ring(struct ivl_link *l, uint16_t peer, uint16_t vector)
{
	struct ivl_hub *hub = to_local(l)->hub;
	int ret;

	pthread_rwlock_rdlock(&hub->lock);
	if (hub->closed)
		ret = -ENOTCONN;
	else if (peer >= hub->max_peers || !hub->slots[peer])
		ret = -ENOENT;
	else if (vector >= hub->vectors)
		ret = -ERANGE;
	else
		ret = ivl_eventfd_ring(hub->slots[peer]->fds[vector]);
	pthread_rwlock_unlock(&hub->lock);
	return ret;
}

static int local_peers(const struct ivl_link *l, uint16_t *ids, size_t max)
{
	struct ivl_hub *hub = to_local(l)->hub;
	size_t n = 0;

	pthread_rwlock_rdlock(&hub->lock);
	for (unsigned i = 0; i < hub->max_peers && !hub->closed; i++) {
		if (!hub->slots[i] || (int)i == l->id)
			continue;
		if (n < max)
			ids[n] = (uint16_t)i;
		n++;
	}
	pthread_rwlock_unlock(&hub->lock);
	return (int)n;
}

/* Without the lock: a peer that leaves meanwhile may still be counted, as
 * it could have left right after a locked look. */
static unsigned local_peer_vectors(const struct ivl_link *l, uint16_t peer)
{
	struct ivl_hub *hub = to_local(l)->hub;

	return peer < hub->max_peers &&
		       atomic_load_explicit(&hub->present[peer], memory_order_relaxed)
		   ? hub->vectors
		   : 0;
}

static void local_destroy(struct ivl_link *l)
{
	struct local_link *ll = to_local(l);
	struct ivl_hub *hub = ll->hub;

	pthread_rwlock_wrlock(&hub->lock);
	if (l->id >= 0 && hub->slots[l->id] == ll) {
		hub->slots[l->id] = NULL;
		atomic_store_explicit(&hub->present[l->id], false, memory_order_relaxed);
		if (!hub->closed) {
			entry_leave(hub, (unsigned)l->id);
			for (unsigned i = 0; i < hub->max_peers; i++)
				if (hub->slots[i])
					ivl__evq_push(&hub->slots[i]->l.q, IVL_LINK_LEAVE,
						      (uint16_t)l->id, 0, 0);
		}
	}
	pthread_rwlock_unlock(&hub->lock);
	/* No ring can reach my fds now: the slot is empty. */
	for (unsigned v = 0; v < IVL_MAX_VECTORS; v++)
		ivl__close(ll->fds[v]);
	ivl__link_fini(l);
	free(ll);
	hub_unref(hub);
}

static const struct ivl__link_ops local_ops = {
    .name = "local",
    .ring = local_ring,
    .peers = local_peers,
    .peer_vectors = local_peer_vectors,
    .destroy = local_destroy,
};

IVL_EXPORT int ivl_hub_join(struct ivl_hub *hub, const char *name,
				  struct ivl_link **out)
{
	struct local_link *ll;
	unsigned id, v;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!hub)
		return -EINVAL;
	ll = calloc(1, sizeof(*ll));
	if (!ll)
		return -ENOMEM;
	for (v = 0; v < IVL_MAX_VECTORS; v++)
		ll->fds[v] = -1;
	ret = ivl__link_init(&ll->l, &local_ops);
	if (ret < 0) {
		free(ll);
		return ret;
	}
	ll->hub = hub;
	atomic_fetch_add(&hub->refs, 1);
	for (v = 0; v < hub->vectors; v++) {
		ret = ivl_eventfd_new();
		if (ret < 0)
			goto fail;
		ll->fds[v] = ret;
		ret = ivl__link_add_own(&ll->l, v, ll->fds[v]);
		if (ret < 0)
			goto fail;
	}
	ll->l.vectors = hub->vectors;
	ll->l.base = ivl_region_base(hub->region);
	ll->l.size = ivl_region_size(hub->region);
	ll->l.hdr = hub->hdr;
	ll->l.has_header = true;

	pthread_rwlock_wrlock(&hub->lock);
	if (hub->closed) {
		pthread_rwlock_unlock(&hub->lock);
		ret = -ENOTCONN;
		goto fail;
	}
	for (id = 0; id < hub->max_peers && hub->slots[id]; id++)
		;
	if (id == hub->max_peers) {
		pthread_rwlock_unlock(&hub->lock);
		ret = -ENOSPC;
		goto fail;
	}
	ll->l.id = (int)id;
	entry_join(hub, id, name);
	/* Everybody learns of everybody through events, initial peers
	 * included, as with the host backend. */
	for (unsigned i = 0; i < hub->max_peers; i++) {
		if (!hub->slots[i])
			continue;
		ivl__evq_push(&hub->slots[i]->l.q, IVL_LINK_JOIN, (uint16_t)id, 0, 0);
		ivl__evq_push(&ll->l.q, IVL_LINK_JOIN, (uint16_t)i, 0, 0);
	}
	hub->slots[id] = ll;
	atomic_store_explicit(&hub->present[id], true, memory_order_relaxed);
	pthread_rwlock_unlock(&hub->lock);
	*out = &ll->l;
	return 0;
fail:
	ll->l.id = -1;
	local_destroy(&ll->l);
	return ret;
}
