/* SPDX-License-Identifier: MIT */
/*
 * The plain backend: a link on a serverless region (docs/plain.md).  There
 * is no server to hand out IDs, so a peer registers itself: it claims the
 * lowest ABSENT entry of the peer table with a compare-and-swap (to LEAVING,
 * which scanners count as absent), fills the entry in, and publishes READY.
 * The peer set is then the table, rescanned like the guest backend's.
 *
 * There are no doorbells.  My entry says AWAKE from the start and the link
 * has no interrupts (no_irq), so link.c's coalescing turns a ring into a
 * pending bit that the target's ivl_link_wait() polls: rings between plain
 * links work, without a system call.  A target that does not poll (waiting
 * NONE: not a plain link) cannot be reached: ring() fails with -ENOTSUP.
 *
 * The table is memory every peer writes: a CAS only ever targets an entry
 * inside the validated copy's bounds, and what others wrote only changes
 * what we report.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>
#include <ivlink/link.h>
#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>
#include <ivlink/plain.h>

#include "core/internal.h"
#include "link/guest-internal.h"
#include "link/link-internal.h"

#define SCAN_MS 20

struct plain_link {
	struct ivl_link l;
	struct ivl_region *region;
	struct ivl__guest_scan scan;
	int tfd; /* rescan timer, IVL__TAG_INPUT */
	bool registered;
};

static struct plain_link *to_plain(const struct ivl_link *l)
{
	return (struct plain_link *)(uintptr_t)l;
}

static void push_event(void *ctx, enum ivl_link_event_type t, uint16_t id)
{
	ivl__evq_push(&((struct ivl_link *)ctx)->q, t, id, 0, 0);
}

/* Only reached when the target's entry asked for a real doorbell. */
static int plain_ring(struct ivl_link *l, uint16_t peer, uint16_t vector)
{
	(void)l;
	(void)peer;
	(void)vector;
	return -ENOTSUP;
}

static int plain_peers(const struct ivl_link *l, uint16_t *ids, size_t max)
{
	return ivl__guest_scan_list(&to_plain(l)->scan, ids, max);
}

static unsigned plain_peer_vectors(const struct ivl_link *l, uint16_t peer)
{
	if ((int)peer == l->id)
		return l->vectors;
	return ivl__guest_scan_vectors(&to_plain(l)->scan, peer);
}

static void plain_input(struct ivl_link *l)
{
	struct plain_link *p = to_plain(l);

	ivl__link_timer_drain(p->tfd);
	ivl__guest_scan_run(&p->scan, l->base, &l->hdr, push_event, l);
}

static void deregister(struct plain_link *p)
{
	struct ivl_shm_peer *e;

	if (!p->registered)
		return;
	e = ivl_shm_peer(p->l.base, &p->l.hdr, (uint32_t)p->l.id);
	/* LEAVING first, so nobody sees READY with a cleared entry; ABSENT
	 * (release) last makes the slot claimable again. */
	__atomic_store_n(&e->state, IVL_PEER_LEAVING, __ATOMIC_SEQ_CST);
	__atomic_store_n(&e->waiting, IVL_WAITING_NONE, __ATOMIC_RELAXED);
	__atomic_store_n(&e->pending, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->state, IVL_PEER_ABSENT, __ATOMIC_RELEASE);
	p->registered = false;
}

static void plain_destroy(struct ivl_link *l)
{
	struct plain_link *p = to_plain(l);

	deregister(p);
	p->tfd = ivl__close(p->tfd);
	ivl__guest_scan_fini(&p->scan);
	ivl__link_fini(l);
	ivl_region_free(p->region);
	free(p);
}

static const struct ivl__link_ops plain_ops = {
    .name = "plain",
    .ring = plain_ring,
    .peers = plain_peers,
    .peer_vectors = plain_peer_vectors,
    .input = plain_input,
    .destroy = plain_destroy,
};

/* Claim the lowest ABSENT entry and publish it READY; returns the ID or
 * -ENOSPC. */
static int register_self(struct plain_link *p, const char *name)
{
	const struct ivl_shm_header *h = &p->l.hdr;

	for (uint32_t id = 0; id < h->max_peers && id <= IVL_MAX_PEER_ID; id++) {
		struct ivl_shm_peer *e = ivl_shm_peer(p->l.base, h, id);
		uint32_t absent = IVL_PEER_ABSENT;

		if (!__atomic_compare_exchange_n(&e->state, &absent, IVL_PEER_LEAVING, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			continue;
		__atomic_fetch_add(&e->generation, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&e->pending, 0, __ATOMIC_RELAXED);
		/* Senders only set my bits; my waits poll them (no_irq). */
		__atomic_store_n(&e->waiting, IVL_WAITING_AWAKE, __ATOMIC_RELAXED);
		e->vectors = p->l.vectors;
		e->pid = (uint32_t)getpid();
		e->uid = (uint32_t)getuid();
		memset(e->name, 0, sizeof(e->name));
		if (name)
			memcpy(e->name, name, strnlen(name, sizeof(e->name)));
		/* Publishes the fields above: pairs with the scanners' acquire
		 * load of state. */
		__atomic_store_n(&e->state, IVL_PEER_READY, __ATOMIC_RELEASE);
		return (int)id;
	}
	ivl__err("link: plain: the peer table (%u entries) is full", h->max_peers);
	return -ENOSPC;
}

IVL_EXPORT int ivl_link_plain_new(struct ivl_link **out, const struct ivl_plain_opts *opts,
				  const char *name)
{
	struct plain_link *p;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!opts)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->tfd = -1;
	ret = ivl__link_init(&p->l, &plain_ops);
	if (ret < 0) {
		free(p);
		return ret;
	}
	ret = ivl_plain_open(&p->region, opts, &p->l.hdr);
	if (ret < 0)
		goto fail;
	if (!(p->l.hdr.features & IVL_FEAT_PLAIN)) {
		/* A server owns this table: its IDs are not ours to take. */
		ivl__err("link: plain: the region was formatted by a server; connect to it "
			 "instead");
		ret = -EPROTO;
		goto fail;
	}
	p->l.base = ivl_region_base(p->region);
	p->l.size = ivl_region_size(p->region);
	p->l.has_header = true;
	p->l.vectors = p->l.hdr.vectors > IVL_MAX_VECTORS ? IVL_MAX_VECTORS : p->l.hdr.vectors;
	p->l.no_irq = true;
	ret = register_self(p, name);
	if (ret < 0)
		goto fail;
	p->l.id = ret;
	p->registered = true;
	ret = ivl__guest_scan_init(&p->scan, &p->l.hdr, p->l.id);
	if (ret < 0)
		goto fail;
	ret = ivl__link_watch_timer(&p->l, SCAN_MS);
	if (ret < 0)
		goto fail;
	p->tfd = ret;
	/* The peers already there are reported as JOINs, as on a server. */
	ivl__guest_scan_run(&p->scan, p->l.base, &p->l.hdr, push_event, &p->l);
	ivl__debug("link: plain peer %d on %s, %llu bytes", p->l.id, ivl_region_describe(p->region),
		   (unsigned long long)p->l.size);
	*out = &p->l;
	return 0;
fail:
	plain_destroy(&p->l);
	return ret;
}
