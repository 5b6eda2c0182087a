/* SPDX-License-Identifier: MIT */
/*
 * The LINK channel (docs/sdm.md §5): signals travel through mailboxes in
 * the application area of an ivlink link, and a doorbell (vector 0) is the
 * interrupt.  The master formats the area; a slave claims a slot (its ID)
 * with a compare-and-swap and rings the master, which welcomes or refuses
 * it in the slot's status word and rings back.  Each slot has two
 * single-producer/single-consumer rings (master->slave, slave->master) of
 * ring_len signals, chosen by the master; both ends batch: one head store
 * and one doorbell per batch sent, one tail store per chunk received.
 * Liveness comes from the link's JOIN/LEAVE events.
 *
 * Everything in the area is written by other peers: indices, owners and
 * statuses are checked before use and signals are copied out before they
 * are decoded.  A slot whose ring indices are impossible is unregistered,
 * and the master repairs whatever else a peer scribbled (master_scan()),
 * so that the channel recovers by itself once the scribbling stops.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <ivlink/link.h>

#include "core/internal.h"
#include "sdm-internal.h"

/* Layout: <ivlink/proto/sdm.h> (docs/sdm.md §5). */
#define AREA_HDR sizeof(struct ivl_sdm_link_area)
#define SLOT_HDR sizeof(struct ivl_sdm_link_slot)
#define RING_HDR sizeof(struct ivl_sdm_link_ring)
#define RX_CHUNK 64u /* signals copied out per release of tail */

#define ST_PENDING IVL_SDM_LINK_PENDING
#define ST_WELCOME IVL_SDM_LINK_WELCOME
#define ST_REFUSED IVL_SDM_LINK_REFUSED

/* What the master stored in a slot's status for its current owner: a
 * status it did not store there was scribbled (master_admit(), master_scan()). */
struct said {
	uint32_t owner, status;
};

/* The channel's state, in the object's priv[]. */
struct link_chan {
	struct ivl_link *link; /* borrowed */
	void *area;	       /* shared: hostile */
	uint64_t size;	       /* bytes of the area from link_offset on */
	uint16_t self, master_peer, capacity, slot;
	uint16_t hi;		      /* master: highest ID ever registered */
	uint32_t ring_len;	      /* entries per ring (a slave: from the area) */
	uint32_t *peer;		      /* master: by ID, link peer + 1 of registered slaves */
	struct said *said;	      /* master: by ID, what it last stored in the slot */
	int32_t ring_peer;	      /* a batch's doorbell still to ring, or -1 */
	struct ivl_sdm_link_ring *tx; /* the ring a batch is filling, or NULL */
	uint32_t tx_head, tx_room;    /* its private head, free entries */
};

static struct link_chan *link_of(const struct ivl_sdm *s)
{
	return (struct link_chan *)(void *)s->priv;
}

static struct ivl_sdm_link_area *area_of(struct ivl_sdm *s)
{
	struct link_chan *lk = link_of(s);

	return lk->area;
}

static size_t slot_size(unsigned ring_len)
{
	return (size_t)IVL_SDM_LINK_SLOT_SIZE(ring_len);
}

static size_t area_size(unsigned capacity, unsigned ring_len)
{
	return (size_t)IVL_SDM_LINK_AREA_SIZE(capacity, ring_len);
}

/* How many slots an area of @size holds with rings of @ring_len. */
static unsigned capacity_of(uint64_t size, unsigned ring_len)
{
	uint64_t n =
	    size < area_size(1, ring_len) ? 0 : (size - AREA_HDR) / slot_size(ring_len) - 1;

	return n > IVL_SDM_MAX_SLAVES ? IVL_SDM_MAX_SLAVES : (unsigned)n;
}

static struct ivl_sdm_link_slot *slot_at(struct ivl_sdm *s, unsigned id)
{
	struct link_chan *lk = link_of(s);

	return (struct ivl_sdm_link_slot *)((uint8_t *)lk->area + AREA_HDR +
					    id * slot_size(lk->ring_len));
}

/* dir 0: master -> slave, 1: slave -> master. */
static struct ivl_sdm_link_ring *ring_of(struct ivl_sdm *s, struct ivl_sdm_link_slot *sl,
					 unsigned dir)
{
	struct link_chan *lk = link_of(s);

	return (struct ivl_sdm_link_ring *)((uint8_t *)sl + SLOT_HDR +
					    dir * IVL_SDM_LINK_RING_SIZE(lk->ring_len));
}

static uint8_t *entry(struct ivl_sdm *s, struct ivl_sdm_link_ring *r, uint32_t i)
{
	struct link_chan *lk = link_of(s);

	return (uint8_t *)r + RING_HDR + (size_t)(i & (lk->ring_len - 1)) * IVL_SDM_SIGNAL_LEN;
}

static void ring_reset(struct ivl_sdm_link_ring *r)
{
	__atomic_store_n(&r->head, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&r->tail, 0, __ATOMIC_RELAXED);
}

/*
 * Producer side, batched: entries are written at a private head and made
 * visible all at once by tx_publish() (one release store per batch).  The
 * free room is computed from the consumer's tail once and then counted
 * down, so a batch reads the consumer's cache line at most once per lap.
 */
static void tx_publish(struct ivl_sdm *s)
{
	struct link_chan *lk = link_of(s);
	struct ivl_sdm_link_ring *r = lk->tx;

	if (!r)
		return;
	/* Release: pairs with the acquire of head in rx_drain(), publishing
	 * every entry written since the last publish. */
	__atomic_store_n(&r->head, lk->tx_head, __ATOMIC_RELEASE);
	lk->tx = NULL;
}

/* Queue up to @n signals: how many fit (> 0), -EAGAIN full, -EPROTO
 * impossible indices. */
static int tx_put(struct ivl_sdm *s, struct ivl_sdm_link_ring *r, const struct ivl_sdm_signal *sig,
		  size_t n)
{
	struct link_chan *lk = link_of(s);

	if (lk->tx != r) {
		tx_publish(s);
		lk->tx = r;
		/* Our own index (the area is shared: checked below). */
		lk->tx_head = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
		lk->tx_room = 0;
	}
	if (lk->tx_room < n) {
		/* Acquire: pairs with the release of tail in rx_drain(): the
		 * consumer's copies of those entries are done. */
		uint32_t used = lk->tx_head - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);

		if (used > lk->ring_len)
			return -EPROTO;
		lk->tx_room = lk->ring_len - used;
		if (!lk->tx_room)
			return -EAGAIN;
	}
	if (n > lk->tx_room)
		n = lk->tx_room;
	for (size_t i = 0; i < n; i++)
		ivl__sdm_signal_to_wire(entry(s, r, lk->tx_head + (uint32_t)i), &sig[i]);
	lk->tx_head += (uint32_t)n;
	lk->tx_room -= (uint32_t)n;
	return (int)n;
}

/*
 * Consumer side, batched: one acquire of head, up to RX_CHUNK entries
 * copied out, one release of tail, then the copies are decoded and
 * delivered (handlers may send, and take their time, without holding the
 * producer back).  At most IVL__SDM_RX_LAPS laps per call, so a producer
 * that never stops cannot keep us here.  Returns the number delivered, or
 * -EPROTO on impossible indices.
 */
static int rx_drain(struct ivl_sdm *s, struct ivl_sdm_link_ring *r, uint16_t from)
{
	struct link_chan *lk = link_of(s);
	struct ivl_sdm_signal copy[RX_CHUNK];
	uint32_t budget = IVL__SDM_RX_LAPS * lk->ring_len;
	int delivered = 0;

	while (budget) {
		uint32_t tail = __atomic_load_n(&r->tail, __ATOMIC_RELAXED);
		/* Acquire: pairs with the release in tx_publish(). */
		uint32_t n = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) - tail;

		if (n == 0)
			break;
		if (n > lk->ring_len)
			return -EPROTO;
		if (n > RX_CHUNK)
			n = RX_CHUNK;
		if (n > budget)
			n = budget;
		for (uint32_t i = 0; i < n; i++)
			ivl__sdm_signal_from_wire(entry(s, r, tail + i), &copy[i]);
		/* Release: pairs with the acquire of tail in tx_put(): the
		 * entries may be reused only after our copies. */
		__atomic_store_n(&r->tail, tail + n, __ATOMIC_RELEASE);
		budget -= n;
		delivered += ivl__sdm_deliver_many(s, copy, n, from);
	}
	return delivered;
}

static bool peer_alive(struct ivl_sdm *s, uint32_t peer)
{
	struct link_chan *lk = link_of(s);

	return peer <= UINT16_MAX && ivl_link_peer_vectors(lk->link, (uint16_t)peer) > 0;
}

/* ---- master ---------------------------------------------------------------- */

/* The area header as the master formats it; the magic last (release: pairs
 * with area_ready()'s acquire). */
static void master_write_header(struct ivl_sdm *s)
{
	struct link_chan *lk = link_of(s);
	struct ivl_sdm_link_area *a = area_of(s);

	__atomic_store_n(&a->magic, 0, __ATOMIC_RELAXED);
	a->version = IVL_SDM_LINK_VERSION;
	a->capacity = lk->capacity;
	a->master_peer = lk->self;
	a->ring_len = (uint16_t)lk->ring_len;
	__atomic_store_n(&a->max_slaves, s->max_slaves, __ATOMIC_RELAXED);
	memset(a->reserved, 0, sizeof(a->reserved));
	__atomic_store_n(&a->magic, IVL_SDM_LINK_MAGIC, __ATOMIC_RELEASE);
}

/* Whether the header still says what master_write_header() wrote. */
static bool master_header_ok(struct ivl_sdm *s)
{
	struct link_chan *lk = link_of(s);
	struct ivl_sdm_link_area *a = area_of(s);

	return __atomic_load_n(&a->magic, __ATOMIC_RELAXED) == IVL_SDM_LINK_MAGIC &&
	       __atomic_load_n(&a->version, __ATOMIC_RELAXED) == IVL_SDM_LINK_VERSION &&
	       __atomic_load_n(&a->capacity, __ATOMIC_RELAXED) == lk->capacity &&
	       __atomic_load_n(&a->master_peer, __ATOMIC_RELAXED) == lk->self &&
	       __atomic_load_n(&a->ring_len, __ATOMIC_RELAXED) == lk->ring_len &&
	       __atomic_load_n(&a->max_slaves, __ATOMIC_RELAXED) == s->max_slaves;
}

static void master_unregister(struct ivl_sdm *s, uint16_t id, bool dropped)
{
	struct link_chan *lk = link_of(s);
	struct ivl_sdm_link_slot *sl = slot_at(s, id);

	if (lk->peer[id]) {
		lk->peer[id] = 0;
		s->current_slaves--;
		if (dropped)
			s->st.conn_dropped++;
		ivl__info("sdm: slave %u left", id);
	}
	lk->said[id] = (struct said){0, ST_PENDING};
	/* A batch in progress on its ring is void (its head would be
	 * published into the reset ring). */
	if (lk->tx == ring_of(s, sl, 0)) {
		lk->tx = NULL;
		lk->ring_peer = -1;
	}
	ring_reset(ring_of(s, sl, 0));
	ring_reset(ring_of(s, sl, 1));
	__atomic_store_n(&sl->status, ST_PENDING, __ATOMIC_RELAXED);
	/* Release: the reset above is visible before the slot looks free
	 * (pairs with the claimant's acquire CAS). */
	__atomic_store_n(&sl->owner, 0, __ATOMIC_RELEASE);
}

static void master_refuse(struct ivl_sdm *s, uint16_t id, uint32_t owner, uint16_t reason)
{
	struct link_chan *lk = link_of(s);

	lk->said[id] = (struct said){owner, IVL_SDM_LINK_REFUSAL(reason)};
	/* Release: pairs with the slave's acquire of status. */
	__atomic_store_n(&slot_at(s, id)->status, lk->said[id].status, __ATOMIC_RELEASE);
	s->st.conn_refused++;
	ivl_link_ring(lk->link, (uint16_t)(owner - 1), 0);
}

/* A new owner of slot @id: admit it (§3.1 rules) or refuse it. */
static void master_admit(struct ivl_sdm *s, uint16_t id, uint32_t owner)
{
	struct link_chan *lk = link_of(s);
	struct ivl_sdm_link_slot *sl = slot_at(s, id);
	uint32_t st = __atomic_load_n(&sl->status, __ATOMIC_RELAXED);

	/* Not a live peer (also a scribbled owner): reset, whatever the
	 * status says. */
	if (!peer_alive(s, owner - 1) || owner - 1 == (uint32_t)lk->self) {
		master_unregister(s, id, true);
		return;
	}
	/* One slot per link peer: a second claim in the name of a
	 * registered slave's peer is a scribble. */
	for (unsigned j = 1; j <= lk->hi; j++)
		if (j != id && lk->peer[j] == owner) {
			master_unregister(s, id, true);
			return;
		}
	if (st != ST_PENDING) {
		/* Our refusal, still waiting for this owner to let go; any
		 * other status is not ours: reset the slot, the claimant
		 * claims again. */
		if (st != lk->said[id].status || owner != lk->said[id].owner)
			master_unregister(s, id, true);
		return;
	}
	if (id > s->max_slaves) {
		master_refuse(s, id, owner, IVL_SDM_R_BAD_ID);
		return;
	}
	if (s->current_slaves >= s->max_slaves) {
		master_refuse(s, id, owner, IVL_SDM_R_FULL);
		return;
	}
	/* Whatever the rings hold from before the claim (a scribble) is
	 * not the new slave's: it writes nothing before our WELCOME. */
	ring_reset(ring_of(s, sl, 0));
	ring_reset(ring_of(s, sl, 1));
	lk->said[id] = (struct said){owner, ST_WELCOME};
	lk->peer[id] = owner;
	s->current_slaves++;
	s->st.conn_accepted++;
	if (id > lk->hi)
		lk->hi = id;
	ivl__info("sdm: slave %u joined (link peer %u)", id, owner - 1);
	/* Release: pairs with the slave's acquire of status. */
	__atomic_store_n(&sl->status, ST_WELCOME, __ATOMIC_RELEASE);
	ivl_link_ring(lk->link, (uint16_t)(owner - 1), 0);
}

/* A registered slave's slot: WELCOME, and master->slave indices that make
 * sense (slave->master: rx_drain() checks them). */
static bool master_slot_ok(struct ivl_sdm *s, struct ivl_sdm_link_slot *sl)
{
	struct link_chan *lk = link_of(s);
	struct ivl_sdm_link_ring *r = ring_of(s, sl, 0);

	return __atomic_load_n(&sl->status, __ATOMIC_RELAXED) == ST_WELCOME &&
	       __atomic_load_n(&r->head, __ATOMIC_RELAXED) -
		       __atomic_load_n(&r->tail, __ATOMIC_RELAXED) <=
		   lk->ring_len;
}

/*
 * Look at the slots: with @claims every slot (new claims need a doorbell
 * or an event to be noticed), else only those of registered slaves (the
 * fast path of a busy master).  A claim is judged by master_admit().
 *
 * With @repair (once per tick: the checks cost a few cache lines per slot)
 * the master also repairs what a peer scribbled (docs/sdm.md §5,
 * "Recovery"): the area header is rewritten, a free slot's status put back
 * to PENDING, a registered slot whose status or indices are wrong is reset
 * (its slave claims it again).  Signals in a reset slot's rings are lost
 * and the reset is counted in conn_dropped.
 */
static int master_scan(struct ivl_sdm *s, bool claims, bool repair)
{
	struct link_chan *lk = link_of(s);
	int delivered = 0;
	unsigned last = claims ? lk->capacity : lk->hi;

	if (repair && !master_header_ok(s)) {
		ivl__debug("sdm: the link area's header was overwritten: rewritten");
		master_write_header(s);
		/* Slaves waiting for a valid area retry on this doorbell. */
		ivl_link_broadcast(lk->link, 0);
	}

	for (uint16_t id = 1; id <= last; id++) {
		struct ivl_sdm_link_slot *sl;
		uint32_t owner;
		int r;

		if (!claims && !lk->peer[id])
			continue;
		sl = slot_at(s, id);
		/* Acquire: pairs with the claimant's CAS (its ring indices
		 * are reset by us, nothing else to publish). */
		owner = __atomic_load_n(&sl->owner, __ATOMIC_ACQUIRE);
		if (lk->peer[id] && (owner != lk->peer[id] || (repair && !master_slot_ok(s, sl)))) {
			master_unregister(s, id, true); /* slot stolen or scribbled */
			continue;
		}
		if (!owner) {
			/* A free slot's status is PENDING (a claimant expects
			 * it); put back anything else. */
			if (repair && __atomic_load_n(&sl->status, __ATOMIC_RELAXED) != ST_PENDING)
				__atomic_store_n(&sl->status, ST_PENDING, __ATOMIC_RELAXED);
			continue;
		}
		if (!lk->peer[id]) {
			master_admit(s, id, owner);
			if (!lk->peer[id])
				continue;
		}
		r = rx_drain(s, ring_of(s, sl, 1), id);
		if (r < 0)
			master_unregister(s, id, true);
		else
			delivered += r;
	}
	return delivered;
}

static void master_peer_left(struct ivl_sdm *s, uint16_t peer)
{
	struct link_chan *lk = link_of(s);

	for (uint16_t id = 1; id <= lk->capacity; id++)
		if (lk->peer[id] == (uint32_t)peer + 1u ||
		    __atomic_load_n(&slot_at(s, id)->owner, __ATOMIC_RELAXED) ==
			(uint32_t)peer + 1u)
			master_unregister(s, id, false);
	/* Freed room: let refused slaves try again. */
	ivl_link_broadcast(lk->link, 0);
}

/* ---- slave ------------------------------------------------------------------ */

static void slave_release(struct ivl_sdm *s)
{
	struct link_chan *lk = link_of(s);
	uint32_t me = (uint32_t)lk->self + 1;

	if (lk->slot) {
		struct ivl_sdm_link_slot *sl = slot_at(s, lk->slot);
		uint32_t expect = me;

		/* Leave it PENDING for the next claimant (we own it, so the
		 * master does not write it now), then give it back if it is
		 * still ours. */
		__atomic_store_n(&sl->status, ST_PENDING, __ATOMIC_RELAXED);
		__atomic_compare_exchange_n(&sl->owner, &expect, 0, false, __ATOMIC_RELEASE,
					    __ATOMIC_RELAXED);
		lk->slot = 0;
	}
}

static bool ring_len_ok(uint32_t n)
{
	return n >= IVL_SDM_LINK_RING_MIN && n <= IVL_SDM_LINK_RING_MAX && !(n & (n - 1));
}

/*
 * Whether the master has formatted the area; a slave then takes the ring
 * length from it (checked: a power of two in range) and computes how many
 * slots fit in its own mapping with it.
 */
static bool area_ready(struct ivl_sdm *s)
{
	struct link_chan *lk = link_of(s);
	struct ivl_sdm_link_area *a = area_of(s);
	unsigned len, cap, acap;

	/* Acquire: pairs with the master's release store of magic after
	 * formatting.  Each field is read once: a peer may change it under
	 * us. */
	if (__atomic_load_n(&a->magic, __ATOMIC_ACQUIRE) != IVL_SDM_LINK_MAGIC ||
	    __atomic_load_n(&a->version, __ATOMIC_RELAXED) != IVL_SDM_LINK_VERSION ||
	    __atomic_load_n(&a->master_peer, __ATOMIC_RELAXED) != lk->master_peer)
		return false;
	len = __atomic_load_n(&a->ring_len, __ATOMIC_RELAXED);
	acap = __atomic_load_n(&a->capacity, __ATOMIC_RELAXED);
	if (!ring_len_ok(len))
		return false;
	cap = capacity_of(lk->size, len);
	if (!cap)
		return false;
	lk->ring_len = len;
	lk->capacity = (uint16_t)(acap < cap ? acap : cap);
	return true;
}

static void slave_claim(struct ivl_sdm *s)
{
	struct link_chan *lk = link_of(s);
	struct ivl_sdm_link_area *a = area_of(s);
	uint32_t me = (uint32_t)lk->self + 1;
	uint32_t cap, max;

	if (lk->slot || ivl__sdm_now_ms() < s->next_connect_ms || !area_ready(s) ||
	    !peer_alive(s, lk->master_peer))
		return;
	/* Clamped by area_ready() to what our mapping holds. */
	cap = lk->capacity;
	max = __atomic_load_n(&a->max_slaves, __ATOMIC_RELAXED);
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
		 * slave_release (a free slot's status is already PENDING).
		 * Already ours (a scribble wrote our ID): adopt it, the master
		 * judges it as any claim. */
		if (__atomic_compare_exchange_n(&slot_at(s, id)->owner, &expect, me, false,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED) ||
		    expect == me) {
			lk->slot = (uint16_t)id;
			ivl_link_ring(lk->link, lk->master_peer, 0);
			return;
		}
	}
	s->state = s->want_id ? -EADDRINUSE : -EUSERS;
}

/* Whether the area, if valid, still has the geometry we use (a scribbled
 * one with a valid magic may have misled our claim). */
static bool slave_geometry_ok(struct ivl_sdm *s)
{
	struct link_chan *lk = link_of(s);
	uint32_t len = lk->ring_len;
	uint16_t cap = lk->capacity;
	bool ok;

	if (!area_ready(s))
		return true; /* invalid: the master is rewriting it, wait */
	ok = lk->ring_len == len && lk->slot <= lk->capacity;
	/* Keep using what our claim was made with until we let go. */
	lk->ring_len = len;
	lk->capacity = cap;
	return ok;
}

/* Our slot, if we still own it; else back to unregistered. */
static struct ivl_sdm_link_slot *slave_slot(struct ivl_sdm *s)
{
	struct link_chan *lk = link_of(s);
	struct ivl_sdm_link_slot *sl = slot_at(s, lk->slot);

	if (__atomic_load_n(&sl->owner, __ATOMIC_RELAXED) != (uint32_t)lk->self + 1) {
		/* The master reset our slot (it restarted, or dropped us). */
		lk->slot = 0;
		s->state = -ENOTCONN;
		return NULL;
	}
	return sl;
}

static int slave_drain(struct ivl_sdm *s, struct ivl_sdm_link_slot *sl)
{
	int r = rx_drain(s, ring_of(s, sl, 0), IVL_SDM_MASTER);

	if (r < 0) {
		s->st.conn_dropped++;
		slave_release(s);
		s->state = -ENOTCONN;
		return 0;
	}
	return r;
}

static int slave_poll(struct ivl_sdm *s)
{
	struct link_chan *lk = link_of(s);
	struct ivl_sdm_link_area *a = area_of(s);
	struct ivl_sdm_link_slot *sl;
	uint32_t st;

	if (!lk->slot) {
		slave_claim(s);
		if (!lk->slot)
			return 0;
	}
	sl = slave_slot(s);
	if (!sl)
		return 0;
	/* Not welcomed yet, and the area now says another geometry than the
	 * one we claimed with (we read a scribbled header): our claim is not
	 * where the master looks.  Let go; claim again. */
	if (s->state != 0 && !slave_geometry_ok(s)) {
		uint32_t expect = (uint32_t)lk->self + 1;

		__atomic_compare_exchange_n(&sl->owner, &expect, 0, false, __ATOMIC_RELEASE,
					    __ATOMIC_RELAXED);
		lk->slot = 0;
		return 0;
	}
	/* Acquire: pairs with the master's release of status. */
	st = __atomic_load_n(&sl->status, __ATOMIC_ACQUIRE);
	/* A refusal with a reason the master does not give was not written
	 * by the master: wait for it to reset the slot. */
	if ((st & 0xff) == ST_REFUSED && (st >> 8) >= IVL_SDM_R_FULL &&
	    (st >> 8) <= IVL_SDM_R_BAD_ID) {
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
		s->id = s->want_id = lk->slot;
		s->max_slaves = (uint16_t)__atomic_load_n(&a->max_slaves, __ATOMIC_RELAXED);
		if (s->ever_welcomed)
			s->st.reconnects++;
		s->ever_welcomed = true;
		s->state = 0;
	}
	return slave_drain(s, sl);
}

/* ---- channel entry points ----------------------------------------------- */

/* The ring length a master uses: the option, or the largest default that
 * leaves room for max_slaves slots. */
static int pick_ring_len(uint64_t size, uint32_t want, uint16_t max_slaves)
{
	unsigned len;

	if (want)
		return ring_len_ok(want) ? (int)want : -EINVAL;
	for (len = IVL_SDM_LINK_RING_DEFAULT; len > IVL_SDM_LINK_RING_MIN; len /= 2)
		if (capacity_of(size, len) >= max_slaves)
			break;
	return (int)len;
}

static int link_start(struct ivl_sdm *s, const struct ivl_sdm_opts *o)
{
	struct link_chan *lk = link_of(s);
	uint64_t size;
	void *base = ivl_link_app_area(o->link, &size);
	int self = ivl_link_id(o->link), len;

	lk->ring_peer = -1;
	if (!base || self < 0 || o->link_offset > size || (o->link_offset & 7))
		return -EINVAL;
	len = ivl__sdm_timer_start(s);
	if (len)
		return len;
	size -= o->link_offset;
	lk->link = o->link;
	lk->self = (uint16_t)self;
	lk->area = (uint8_t *)base + o->link_offset;
	lk->size = size;
	lk->master_peer = o->master ? (uint16_t)self : o->link_master;
	s->rc_delay_ms = s->rc_min_ms;
	len = pick_ring_len(size, o->master ? o->link_ring : 0, s->max_slaves);
	if (len < 0)
		return len;
	lk->ring_len = (uint32_t)len;
	/* Capacity: what the area holds, at most the protocol limit (a slave
	 * recomputes both from the area's header, area_ready()). */
	lk->capacity = (uint16_t)capacity_of(size, lk->ring_len);
	if (!lk->capacity)
		return -ENOSPC;
	/* Doorbells are hints here (the receiver always scans its rings):
	 * let senders skip them while our bit is still set. */
	ivl_link_set_coalescing(lk->link, true);
	if (o->master) {
		struct ivl_sdm_link_area *a = area_of(s);

		if (s->max_slaves > lk->capacity)
			return -ENOSPC;
		lk->peer = calloc(lk->capacity + 1u, sizeof(*lk->peer));
		if (!lk->peer)
			return -ENOMEM;
		lk->said = calloc(lk->capacity + 1u, sizeof(*lk->said));
		if (!lk->said)
			return -ENOMEM;
		__atomic_store_n(&a->magic, 0, __ATOMIC_RELAXED);
		memset((uint8_t *)a + sizeof(uint32_t), 0,
		       area_size(lk->capacity, lk->ring_len) - sizeof(uint32_t));
		master_write_header(s);
		/* Slaves that came first retry on this doorbell. */
		ivl_link_broadcast(lk->link, 0);
	}
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, ivl_link_get_fd(lk->link),
		      &(struct epoll_event){.events = EPOLLIN}) < 0)
		return -errno;
	if (!o->master)
		slave_poll(s);
	return 0;
}

static void link_stop(struct ivl_sdm *s)
{
	struct link_chan *lk = link_of(s);

	if (lk->area && !s->master)
		slave_release(s);
	if (lk->area && s->master && area_of(s))
		__atomic_store_n(&area_of(s)->magic, 0, __ATOMIC_RELAXED);
	free(lk->peer);
	lk->peer = NULL;
	free(lk->said);
	lk->said = NULL;
}

/* Publish the batch and ring its doorbell (one per run of signals to one
 * peer: the receiver drains its whole ring on any doorbell). */
static int link_flush(struct ivl_sdm *s)
{
	struct link_chan *lk = link_of(s);
	int32_t peer = lk->ring_peer;
	int r;

	tx_publish(s);
	if (peer < 0)
		return 0;
	lk->ring_peer = -1;
	/* The head store above is released before the doorbell's seq_cst
	 * read-modify-write of the pending bit, which the receiver takes
	 * with acquire before it scans (docs/protocol.md §3). */
	r = ivl_link_ring(lk->link, (uint16_t)peer, 0);
	return r == -ENOENT ? (s->master ? -ENOENT : -ENOTCONN) : r;
}

/*
 * Queue a run of @n signals to one destination (sigs[0]'s): how many were
 * queued (> 0), or -errno.  A run to another peer than the batch's first
 * publishes and rings for the batch so far.
 */
static int send_run(struct ivl_sdm *s, const struct ivl_sdm_signal *sigs, size_t n)
{
	struct link_chan *lk = link_of(s);
	struct ivl_sdm_link_ring *ring;
	uint16_t peer;
	int r;

	if (s->master) {
		if (sigs[0].slave > lk->capacity || !lk->peer[sigs[0].slave])
			return -ENOENT;
		peer = (uint16_t)(lk->peer[sigs[0].slave] - 1);
		ring = ring_of(s, slot_at(s, sigs[0].slave), 0);
	} else {
		if (s->state != 0 || !lk->slot)
			return -ENOTCONN;
		peer = lk->master_peer;
		ring = ring_of(s, slot_at(s, lk->slot), 1);
	}
	if (lk->ring_peer >= 0 && lk->ring_peer != peer)
		link_flush(s);
	r = tx_put(s, ring, sigs, n);
	if (r == -EPROTO) {
		/* Impossible indices in our own ring: reset it (master) or let
		 * go of the slot and claim it again (slave). */
		lk->tx = NULL;
		lk->ring_peer = -1;
		s->st.conn_dropped++;
		if (s->master) {
			master_unregister(s, (uint16_t)sigs[0].slave, false);
		} else {
			slave_release(s);
			s->state = -ENOTCONN;
		}
		return -EPIPE;
	}
	if (r > 0)
		lk->ring_peer = peer;
	return r;
}

static int link_send(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, bool more)
{
	int r = send_run(s, sig, 1);

	if (r < 0)
		return r;
	return more ? 0 : link_flush(s);
}

/* A batch without broadcasts: runs of one destination, one doorbell per
 * peer (link_flush()). */
static int link_send_batch(struct ivl_sdm *s, const struct ivl_sdm_signal *sigs, size_t n)
{
	size_t i = 0;
	int r = 0, f;

	while (i < n) {
		size_t k = s->master ? ivl__sdm_same_dest(&sigs[i], n - i) : n - i;

		r = send_run(s, &sigs[i], k);
		if (r < 0)
			break;
		i += (size_t)r;
	}
	f = link_flush(s);
	if (f < 0 && i > 0)
		return f;
	return i ? (int)i : r;
}

static int link_room(struct ivl_sdm *s, uint16_t id)
{
	struct link_chan *lk = link_of(s);
	struct ivl_sdm_link_ring *r;
	uint32_t head;

	if (id > lk->capacity || !lk->peer[id])
		return -ENOENT;
	r = ring_of(s, slot_at(s, id), 0);
	/* Only we push (a batch in progress counts with its private head);
	 * the slave only pops: the room seen stays. */
	head = lk->tx == r ? lk->tx_head : __atomic_load_n(&r->head, __ATOMIC_RELAXED);
	head -= __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
	if (head > lk->ring_len) {
		/* Impossible indices: reset (see link_send()). */
		s->st.conn_dropped++;
		master_unregister(s, id, false);
		return -ENOENT;
	}
	return head == lk->ring_len ? -EAGAIN : 0;
}

/*
 * The fast path: a scan of the registered rings alone, no system call.
 * The link's events (doorbells, joins, leaves) wait while signals flow:
 * until ivl__sdm_idle() says the receiver has been idle for a while, or,
 * while busy, until the timer is due (looked at every BUSY_CHECK calls).
 * Then the full path: the link's events first, then a full scan, so that
 * a signal published before a doorbell we consume is seen.
 *
 * Skipping the link's events loses no wake-up: our pending bit stays set,
 * and the eventfd write of the sender that set it stays unread, so the fd
 * stays readable (a caller blocked in poll() comes straight back).
 * Meanwhile senders find the bit set and skip the eventfd write: a busy
 * receiver costs them no system call.
 */
#define BUSY_CHECK 256u

static int fast_scan(struct ivl_sdm *s)
{
	struct link_chan *lk = link_of(s);
	struct ivl_sdm_link_slot *sl;

	if (s->master)
		return master_scan(s, false, false);
	if (s->state != 0 || !lk->slot || !(sl = slave_slot(s)))
		return 0;
	return slave_drain(s, sl);
}

static int link_process(struct ivl_sdm *s)
{
	struct link_chan *lk = link_of(s);
	struct ivl_link_event ev[32];
	int n, delivered = fast_scan(s);
	bool tick;

	if (!ivl__sdm_idle(s, delivered) &&
	    (!delivered || ++s->busy_calls % BUSY_CHECK || !ivl__sdm_timer_due(s)))
		return delivered;
	/* The tick wakes us for backoff retries and repairs, and a busy
	 * receiver for the link's events now and then. */
	tick = ivl__sdm_timer_due(s);
	if (tick) {
		int r = ivl__sdm_timer_drain(s);

		if (r < 0)
			return r;
	}
	while ((n = ivl_link_process(lk->link, ev, IVL_ARRAY_SIZE(ev))) > 0) {
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
			else if (ev[i].peer == lk->master_peer) {
				lk->slot = 0;
				s->state = -ENOTCONN;
			}
		}
		if (n < (int)IVL_ARRAY_SIZE(ev))
			break;
	}
	if (n < 0 && n != -EAGAIN)
		return n;
	/* Doorbells are coalesced: any event means "look at everything". */
	delivered += s->master ? master_scan(s, true, tick) : slave_poll(s);
	return delivered;
}

static int link_set_max(struct ivl_sdm *s, uint16_t max)
{
	struct link_chan *lk = link_of(s);

	if (max > lk->capacity)
		return -ERANGE;
	__atomic_store_n(&area_of(s)->max_slaves, max, __ATOMIC_RELAXED);
	return 0;
}

static bool link_present(const struct ivl_sdm *s, uint16_t id)
{
	struct link_chan *lk = link_of(s);

	return id <= lk->capacity && lk->peer && lk->peer[id] != 0;
}

static int link_check(const struct ivl_sdm_opts *o)
{
	return o->link ? 0 : -EINVAL;
}

const struct ivl__sdm_chan_ops ivl__sdm_link_ops = {
    .name = "link",
    .priv_size = sizeof(struct link_chan),
    .check = link_check,
    .start = link_start,
    .stop = link_stop,
    .send = link_send,
    .send_batch = link_send_batch,
    .flush = link_flush,
    .process = link_process,
    .present = link_present,
    .room = link_room,
    .set_max = link_set_max,
};
