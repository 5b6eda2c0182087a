/* SPDX-License-Identifier: MIT */
/*
 * The LINK channel (docs/sdm.md §5): signals travel through mailboxes in
 * the application area of an ivlink link, and a doorbell (vector 0) is the
 * interrupt.  The master formats the area; a slave claims a slot (its ID)
 * with a compare-and-swap and rings the master, which welcomes or refuses
 * it in the slot's status word and rings back.  Each slot has two
 * single-producer/single-consumer rings of 16 signals: master->slave and
 * slave->master.  Liveness comes from the link's JOIN/LEAVE events.
 *
 * Everything in the area is written by other peers: indices, owners and
 * statuses are checked before use and signals are copied out before they
 * are decoded.  A slot whose ring indices are impossible is unregistered.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <ivlink/link.h>

#include "core/internal.h"
#include "sdm-internal.h"

#define AREA_MAGIC 0x4c4d4453u /* "SDML" */
#define RING_LEN 16u

enum { ST_PENDING = 0, ST_WELCOME = 1, ST_REFUSED = 2 };

struct ring {
	_Atomic uint32_t head; /* written by the producer only */
	_Atomic uint32_t tail; /* written by the consumer only */
	uint8_t ent[RING_LEN][IVL__SDM_SIGNAL_LEN];
};

struct slot {
	_Atomic uint32_t owner;	 /* 0 free, else link peer ID + 1 */
	_Atomic uint32_t status; /* ST_* | reason << 8; written by the master */
	struct ring m2s, s2m;
};

struct area {
	_Atomic uint32_t magic; /* stored last by the master (release) */
	uint16_t version;
	uint16_t capacity;	     /* slots 1..capacity */
	_Atomic uint32_t max_slaves; /* the master's current max_slaves */
	uint16_t master_peer;
	uint16_t pad;
	struct slot slot[]; /* index 0 unused */
};

_Static_assert(sizeof(struct ring) == 8 + RING_LEN * 16, "ring layout");
_Static_assert(sizeof(struct slot) == 8 + 2 * sizeof(struct ring), "slot layout");
_Static_assert(sizeof(struct area) == 16, "area header layout");

static struct area *area_of(struct ivl_sdm *s)
{
	return s->link_area;
}

static size_t area_size(unsigned capacity)
{
	return sizeof(struct area) + (capacity + 1) * sizeof(struct slot);
}

static void ring_reset(struct ring *r)
{
	atomic_store_explicit(&r->head, 0, memory_order_relaxed);
	atomic_store_explicit(&r->tail, 0, memory_order_relaxed);
}

static int ring_push(struct ring *r, const struct ivl_sdm_signal *sig)
{
	/* Our own index: relaxed.  The consumer's tail: acquire, pairs with
	 * the release in ring_pop so its reads of the entry are done. */
	uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);

	if (head - tail >= RING_LEN)
		return head - tail == RING_LEN ? -EAGAIN : -EPROTO;
	ivl__sdm_signal_encode(r->ent[head % RING_LEN], sig);
	/* Release: pairs with the acquire of head in ring_pop, publishing the
	 * entry written above. */
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
	return 0;
}

/* Pop one signal; 0 empty, 1 popped, -EPROTO on impossible indices. */
static int ring_pop(struct ring *r, struct ivl_sdm_signal *sig)
{
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	/* Acquire: pairs with the release in ring_push. */
	uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	uint8_t copy[IVL__SDM_SIGNAL_LEN];
	struct ivl__sdm_frame f = {IVL__SDM_F_SIGNAL, IVL__SDM_SIGNAL_LEN, copy};

	if (head == tail)
		return 0;
	if (head - tail > RING_LEN)
		return -EPROTO;
	memcpy(copy, r->ent[tail % RING_LEN], sizeof(copy));
	/* Release: pairs with the acquire of tail in ring_push: the slot may
	 * be reused only after our copy. */
	atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
	ivl__sdm_signal_decode(&f, sig);
	return 1;
}

static bool peer_alive(struct ivl_sdm *s, uint32_t peer)
{
	return peer <= UINT16_MAX && ivl_link_peer_vectors(s->link, (uint16_t)peer) > 0;
}

/* ---- master ---------------------------------------------------------------- */

static void master_unregister(struct ivl_sdm *s, uint16_t id, bool dropped)
{
	struct slot *sl = &area_of(s)->slot[id];

	if (s->link_peer[id]) {
		s->link_peer[id] = 0;
		s->current_slaves--;
		if (dropped)
			s->st.conn_dropped++;
		ivl__info("sdm: slave %u left", id);
	}
	ring_reset(&sl->m2s);
	ring_reset(&sl->s2m);
	atomic_store_explicit(&sl->status, ST_PENDING, memory_order_relaxed);
	/* Release: the reset above is visible before the slot looks free
	 * (pairs with the claimant's acquire CAS). */
	atomic_store_explicit(&sl->owner, 0, memory_order_release);
}

static void master_refuse(struct ivl_sdm *s, struct slot *sl, uint32_t peer, uint16_t reason)
{
	/* Release: pairs with the slave's acquire of status. */
	atomic_store_explicit(&sl->status, ST_REFUSED | (uint32_t)reason << 8,
			      memory_order_release);
	s->st.conn_refused++;
	ivl_link_ring(s->link, (uint16_t)peer, 0);
}

/* Look at every slot: new claims, and signals of registered slaves. */
static int master_scan(struct ivl_sdm *s)
{
	struct area *a = area_of(s);
	int delivered = 0;

	for (uint16_t id = 1; id <= s->link_capacity; id++) {
		struct slot *sl = &a->slot[id];
		/* Acquire: pairs with the claimant's CAS (its ring indices
		 * are reset by us, nothing else to publish). */
		uint32_t owner = atomic_load_explicit(&sl->owner, memory_order_acquire);
		struct ivl_sdm_signal sig;
		int r;

		if (s->link_peer[id] && owner != s->link_peer[id]) {
			master_unregister(s, id, true); /* slot stolen: hostile */
			continue;
		}
		if (!owner)
			continue;
		if (!s->link_peer[id]) {
			uint32_t st = atomic_load_explicit(&sl->status, memory_order_relaxed);

			if ((st & 0xff) != ST_PENDING)
				continue; /* refused, waiting for the slave to let go */
			if (!peer_alive(s, owner - 1) || owner - 1 == (uint32_t)s->link_self) {
				master_unregister(s, id, true);
				continue;
			}
			if (id > s->max_slaves) {
				master_refuse(s, sl, owner - 1, IVL__SDM_R_BAD_ID);
				continue;
			}
			if (s->current_slaves >= s->max_slaves) {
				master_refuse(s, sl, owner - 1, IVL__SDM_R_FULL);
				continue;
			}
			s->link_peer[id] = owner;
			s->current_slaves++;
			s->st.conn_accepted++;
			ivl__info("sdm: slave %u joined (link peer %u)", id, owner - 1);
			/* Release: pairs with the slave's acquire of status. */
			atomic_store_explicit(&sl->status, ST_WELCOME, memory_order_release);
			ivl_link_ring(s->link, (uint16_t)(owner - 1), 0);
		}
		while ((r = ring_pop(&sl->s2m, &sig)) > 0)
			delivered += ivl__sdm_deliver(s, &sig, id);
		if (r < 0)
			master_unregister(s, id, true);
	}
	return delivered;
}

static void master_peer_left(struct ivl_sdm *s, uint16_t peer)
{
	for (uint16_t id = 1; id <= s->link_capacity; id++)
		if (s->link_peer[id] == (uint32_t)peer + 1u ||
		    atomic_load_explicit(&area_of(s)->slot[id].owner, memory_order_relaxed) ==
			(uint32_t)peer + 1u)
			master_unregister(s, id, false);
	/* Freed room: let refused slaves try again. */
	ivl_link_broadcast(s->link, 0);
}

/* ---- slave ------------------------------------------------------------------ */

static void slave_release(struct ivl_sdm *s)
{
	struct area *a = area_of(s);
	uint32_t me = (uint32_t)s->link_self + 1;

	if (s->link_slot) {
		uint32_t expect = me;

		/* Leave it PENDING for the next claimant (we own it, so the
		 * master does not write it now), then give it back if it is
		 * still ours. */
		atomic_store_explicit(&a->slot[s->link_slot].status, ST_PENDING,
				      memory_order_relaxed);
		atomic_compare_exchange_strong_explicit(&a->slot[s->link_slot].owner, &expect, 0,
							memory_order_release, memory_order_relaxed);
		s->link_slot = 0;
	}
}

static bool area_ready(struct ivl_sdm *s)
{
	struct area *a = area_of(s);

	/* Acquire: pairs with the master's release store of magic after
	 * formatting. */
	return atomic_load_explicit(&a->magic, memory_order_acquire) == AREA_MAGIC &&
	       a->version == 1 && a->master_peer == s->link_master;
}

static void slave_claim(struct ivl_sdm *s)
{
	struct area *a = area_of(s);
	uint32_t me = (uint32_t)s->link_self + 1;
	uint32_t cap, max;

	if (s->link_slot || ivl__sdm_now_ms() < s->next_connect_ms || !area_ready(s) ||
	    !peer_alive(s, s->link_master))
		return;
	/* Both come from shared memory: clamp to what our mapping holds. */
	cap = a->capacity < s->link_capacity ? a->capacity : s->link_capacity;
	max = atomic_load_explicit(&a->max_slaves, memory_order_relaxed);
	if (max > cap)
		max = cap;
	for (uint32_t id = s->want_id ? s->want_id : 1; id <= (s->want_id ? s->want_id : max);
	     id++) {
		uint32_t expect = 0;

		if (id > cap) {
			s->state = -ERANGE;
			return;
		}
		/* Acquire: pairs with the release in master_unregister and
		 * slave_release (a free slot's status is already PENDING). */
		if (atomic_compare_exchange_strong_explicit(&a->slot[id].owner, &expect, me,
							    memory_order_acq_rel,
							    memory_order_relaxed)) {
			s->link_slot = (uint16_t)id;
			ivl_link_ring(s->link, s->link_master, 0);
			return;
		}
	}
	s->state = s->want_id ? -EADDRINUSE : -EUSERS;
}

static int slave_poll(struct ivl_sdm *s)
{
	struct area *a = area_of(s);
	struct slot *sl;
	struct ivl_sdm_signal sig;
	uint32_t st;
	int r, delivered = 0;

	if (!s->link_slot) {
		slave_claim(s);
		if (!s->link_slot)
			return 0;
	}
	sl = &a->slot[s->link_slot];
	if (atomic_load_explicit(&sl->owner, memory_order_relaxed) != (uint32_t)s->link_self + 1) {
		/* The master reset our slot (it restarted, or dropped us). */
		s->link_slot = 0;
		s->state = -ENOTCONN;
		return 0;
	}
	/* Acquire: pairs with the master's release of status. */
	st = atomic_load_explicit(&sl->status, memory_order_acquire);
	if ((st & 0xff) == ST_REFUSED) {
		s->state = ivl__sdm_refusal_errno((uint16_t)(st >> 8));
		slave_release(s);
		/* Back off: a full master would refuse us again at once. */
		s->next_connect_ms = ivl__sdm_now_ms() + s->rc_delay_ms;
		s->rc_delay_ms =
		    s->rc_delay_ms > s->rc_max_ms / 2 ? s->rc_max_ms : s->rc_delay_ms * 2;
		return 0;
	}
	if ((st & 0xff) != ST_WELCOME)
		return 0;
	if (s->state != 0) {
		s->rc_delay_ms = s->rc_min_ms;
		s->id = s->want_id = s->link_slot;
		s->max_slaves =
		    (uint16_t)atomic_load_explicit(&a->max_slaves, memory_order_relaxed);
		if (s->ever_welcomed)
			s->st.reconnects++;
		s->ever_welcomed = true;
		s->state = 0;
	}
	while ((r = ring_pop(&sl->m2s, &sig)) > 0)
		delivered += ivl__sdm_deliver(s, &sig, IVL_SDM_MASTER);
	if (r < 0) {
		s->st.conn_dropped++;
		slave_release(s);
		s->state = -ENOTCONN;
	}
	return delivered;
}

/* ---- channel entry points ----------------------------------------------- */

int ivl__sdm_link_start(struct ivl_sdm *s, const struct ivl_sdm_options *o)
{
	uint64_t size;
	void *base = ivl_link_app_area(o->link, &size);
	int self = ivl_link_id(o->link);

	if (!base || self < 0 || o->link_offset > size || (o->link_offset & 7))
		return -EINVAL;
	size -= o->link_offset;
	s->link = o->link;
	s->link_self = (uint16_t)self;
	s->link_area = (uint8_t *)base + o->link_offset;
	s->link_master = o->master ? (uint16_t)self : o->link_master;
	s->rc_delay_ms = s->rc_min_ms;
	s->link_ring_peer = -1;
	/* Capacity: what the area holds, at most the protocol limit. */
	if (size < area_size(1))
		return -ENOSPC;
	s->link_capacity = (uint16_t)((size - sizeof(struct area)) / sizeof(struct slot) - 1);
	if (s->link_capacity > IVL_SDM_MAX_SLAVES)
		s->link_capacity = IVL_SDM_MAX_SLAVES;
	if (o->master) {
		struct area *a = area_of(s);

		if (s->max_slaves > s->link_capacity)
			return -ENOSPC;
		s->link_peer = calloc(s->link_capacity + 1u, sizeof(*s->link_peer));
		if (!s->link_peer)
			return -ENOMEM;
		atomic_store_explicit(&a->magic, 0, memory_order_relaxed);
		memset((uint8_t *)a + sizeof(uint32_t), 0,
		       area_size(s->link_capacity) - sizeof(uint32_t));
		a->version = 1;
		a->capacity = s->link_capacity;
		a->master_peer = s->link_self;
		atomic_store_explicit(&a->max_slaves, s->max_slaves, memory_order_relaxed);
		/* Release: the formatted area before the magic (pairs with
		 * area_ready's acquire). */
		atomic_store_explicit(&a->magic, AREA_MAGIC, memory_order_release);
		/* Slaves that came first retry on this doorbell. */
		ivl_link_broadcast(s->link, 0);
	}
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, ivl_link_get_fd(s->link),
		      &(struct epoll_event){.events = EPOLLIN}) < 0)
		return -errno;
	if (!o->master)
		slave_poll(s);
	return 0;
}

void ivl__sdm_link_stop(struct ivl_sdm *s)
{
	if (s->link_area && !s->master)
		slave_release(s);
	if (s->link_area && s->master && area_of(s))
		atomic_store_explicit(&area_of(s)->magic, 0, memory_order_relaxed);
	free(s->link_peer);
	s->link_peer = NULL;
}

/* Ring a batch's pending doorbell (one per run of signals to one peer:
 * the receiver drains its whole ring on any doorbell). */
int ivl__sdm_link_flush(struct ivl_sdm *s)
{
	int32_t peer = s->link_ring_peer;
	int r;

	if (peer < 0)
		return 0;
	s->link_ring_peer = -1;
	r = ivl_link_ring(s->link, (uint16_t)peer, 0);
	return r == -ENOENT ? (s->master ? -ENOENT : -ENOTCONN) : r;
}

int ivl__sdm_link_send(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, bool more)
{
	struct area *a = area_of(s);
	uint16_t peer;
	int r;

	if (s->master) {
		if (sig->slave > s->link_capacity || !s->link_peer[sig->slave])
			return -ENOENT;
		peer = (uint16_t)(s->link_peer[sig->slave] - 1);
		r = ring_push(&a->slot[sig->slave].m2s, sig);
	} else {
		if (s->state != 0 || !s->link_slot)
			return -ENOTCONN;
		peer = s->link_master;
		r = ring_push(&a->slot[s->link_slot].s2m, sig);
	}
	if (s->link_ring_peer >= 0 && s->link_ring_peer != peer)
		ivl__sdm_link_flush(s);
	if (r == -EPROTO)
		return -EPIPE;
	if (r)
		return r;
	s->link_ring_peer = peer;
	return more ? 0 : ivl__sdm_link_flush(s);
}

int ivl__sdm_link_room(struct ivl_sdm *s, uint16_t id)
{
	struct ring *r;

	if (id > s->link_capacity || !s->link_peer[id])
		return -ENOENT;
	r = &area_of(s)->slot[id].m2s;
	/* Only we push; the slave only pops: the room seen stays. */
	return atomic_load_explicit(&r->head, memory_order_relaxed) -
			       atomic_load_explicit(&r->tail, memory_order_acquire) ==
		       RING_LEN
		   ? -EAGAIN
		   : 0;
}

int ivl__sdm_link_process(struct ivl_sdm *s)
{
	struct ivl_link_event ev[32];
	uint64_t ticks;
	int n, delivered = 0;

	/* The tick only wakes us for backoff retries. */
	if (read(s->timerfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		return -errno;

	while ((n = ivl_link_process(s->link, ev, IVL_ARRAY_SIZE(ev))) > 0) {
		for (int i = 0; i < n; i++) {
			if (ev[i].type == IVL_LINK_DOWN) {
				if (!s->master)
					s->state = -ENOTCONN;
				return -ENOTCONN;
			}
			if (ev[i].type != IVL_LINK_LEAVE)
				continue;
			if (s->master)
				master_peer_left(s, ev[i].peer);
			else if (ev[i].peer == s->link_master) {
				s->link_slot = 0;
				s->state = -ENOTCONN;
			}
		}
		if (n < (int)IVL_ARRAY_SIZE(ev))
			break;
	}
	if (n < 0 && n != -EAGAIN)
		return n;
	/* Doorbells are coalesced: any event means "look at everything". */
	delivered = s->master ? master_scan(s) : slave_poll(s);
	return delivered;
}

int ivl__sdm_link_set_max(struct ivl_sdm *s, uint16_t max)
{
	if (max > s->link_capacity)
		return -ERANGE;
	atomic_store_explicit(&area_of(s)->max_slaves, max, memory_order_relaxed);
	return 0;
}
