/* SPDX-License-Identifier: MIT */
/*
 * The LOCAL channel: SDM objects of one process on an ivl_sdm_bus.
 *
 * Each slave ID has a slot owned by the bus (allocated at its first
 * admission, freed with the bus, so no object's lifetime is in the data
 * path) with two lock-free single-producer/single-consumer rings of
 * signals: master->slave, consumed by the slave, and slave->master,
 * consumed by the master, which looks at every live slot.  A batch of
 * sends writes the entries, then the head once (release); a receiver
 * copies a chunk out, then its tail once (release).
 *
 * Each object also has an eventfd in its epoll set, rung only for a
 * receiver that may sleep: it "arms" (drains the eventfd, sets its armed
 * flag, then looks at its rings again) when it has found nothing for a
 * while (ivl__sdm_idle(): a caller blocked in poll() comes straight back
 * meanwhile, as the eventfd is still readable), and the first sender that sees the flag takes it
 * and rings, under the bus lock (the lock keeps the object alive while its fd is written). Lost
 * wake-ups are excluded by the Dekker pattern on two seq_cst fences: receiver: store(armed, 1);
 * fence; load(head) sender:   store(head);     fence; load(armed) A busy receiver therefore costs
 * its senders no system call.
 *
 * The bus lock also covers admission (the same rules as the socket
 * channels: full, ID taken, ID out of range) and departures.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/internal.h"
#include "sdm-internal.h"

#define LRING_LEN 1024u /* signals per ring */
#define RX_CHUNK 64u	/* signals copied out per release of tail */

struct lring {
	_Alignas(64) _Atomic uint32_t head; /* the producer's */
	_Alignas(64) _Atomic uint32_t tail; /* the consumer's */
	_Alignas(64) struct ivl_sdm_signal ent[LRING_LEN];
};

struct ivl__sdm_lslot {
	struct lring m2s, s2m;
	_Atomic bool live;  /* a slave holds the ID (written under the lock) */
	_Atomic bool armed; /* the slave wants a doorbell */
};

/* The channel's state, in the object's priv[]. */
struct local_chan {
	struct ivl_sdm_bus *bus;
	int evfd;		      /* doorbell of our rings */
	struct ivl__sdm_lslot *lslot; /* slave: our slot (owned by the bus) */
	struct lring *tx;	      /* the ring a batch is filling, or NULL */
	uint16_t tx_id;		      /* its destination */
	uint32_t tx_head, tx_room;    /* its private head, free entries */
};

static struct local_chan *local_of(const struct ivl_sdm *s)
{
	return (struct local_chan *)(void *)s->priv;
}

struct ivl_sdm_bus {
	pthread_mutex_t lock;
	struct ivl_sdm *master;
	struct ivl_sdm *slaves[IVL_SDM_MAX_SLAVES + 1];
	/* Written under the lock, read without it by the master. */
	struct ivl__sdm_lslot *_Atomic slot[IVL_SDM_MAX_SLAVES + 1];
	_Atomic unsigned hi;	   /* highest ID ever admitted */
	_Atomic bool master_live;  /* a master is on the bus */
	_Atomic bool master_armed; /* the master wants a doorbell */
	unsigned count;
};

IVL_EXPORT int ivl_sdm_bus_new(struct ivl_sdm_bus **out)
{
	struct ivl_sdm_bus *b;

	if (!out)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	pthread_mutex_init(&b->lock, NULL);
	*out = b;
	return 0;
}

IVL_EXPORT void ivl_sdm_bus_free(struct ivl_sdm_bus *b)
{
	if (!b)
		return;
	for (unsigned i = 0; i <= IVL_SDM_MAX_SLAVES; i++)
		free(atomic_load_explicit(&b->slot[i], memory_order_relaxed));
	pthread_mutex_destroy(&b->lock);
	free(b);
}

/* Under the lock. */
static int admit(struct ivl_sdm_bus *b, struct ivl_sdm *s)
{
	struct local_chan *lc = local_of(s);
	struct ivl_sdm *m = b->master;
	struct ivl__sdm_lslot *sl;
	uint16_t id = s->want_id;

	if (!m)
		return -ENOENT;
	if (id > m->max_slaves)
		return -ERANGE;
	if (b->count >= m->max_slaves)
		return -EUSERS;
	if (id == 0) {
		for (id = 1; id <= m->max_slaves && b->slaves[id]; id++)
			;
		if (id > m->max_slaves)
			return -EUSERS;
	} else if (b->slaves[id]) {
		return -EADDRINUSE;
	}
	sl = atomic_load_explicit(&b->slot[id], memory_order_relaxed);
	if (!sl) {
		sl = ivl__zalloc_lines(sizeof(*sl));
		if (!sl)
			return -ENOMEM;
		/* Release: pairs with the master's acquire in master_drain(). */
		atomic_store_explicit(&b->slot[id], sl, memory_order_release);
	}
	/* A new incarnation of the ID: whatever the master sent the previous
	 * one is not ours (we are the consumer; the master sends only while
	 * the slot is live). */
	atomic_store_explicit(&sl->m2s.tail, atomic_load(&sl->m2s.head), memory_order_relaxed);
	atomic_store_explicit(&sl->armed, true, memory_order_relaxed);
	/* Release: the reset above before the master sees the slot live. */
	atomic_store_explicit(&sl->live, true, memory_order_release);
	if (id > atomic_load_explicit(&b->hi, memory_order_relaxed))
		atomic_store_explicit(&b->hi, id, memory_order_release);
	b->slaves[id] = s;
	b->count++;
	s->id = id;
	lc->lslot = sl;
	s->max_slaves = m->max_slaves;
	s->state = 0;
	m->st.conn_accepted++;
	return 0;
}

static int local_start(struct ivl_sdm *s, const struct ivl_sdm_opts *o)
{
	struct local_chan *lc = local_of(s);
	struct ivl_sdm_bus *b = o->bus;
	int r = 0;

	lc->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (lc->evfd < 0)
		return -errno;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, lc->evfd, &(struct epoll_event){.events = EPOLLIN}) <
	    0)
		return -errno;
	pthread_mutex_lock(&b->lock);
	if (s->master) {
		if (b->master) {
			r = -EEXIST;
		} else {
			b->master = s;
			/* Armed: the first signal rings (we may be in poll()). */
			atomic_store_explicit(&b->master_armed, true, memory_order_relaxed);
			atomic_store_explicit(&b->master_live, true, memory_order_release);
		}
	} else {
		r = admit(b, s);
		if (r == -EUSERS || r == -EADDRINUSE || r == -ERANGE)
			b->master->st.conn_refused++;
	}
	pthread_mutex_unlock(&b->lock);
	if (r == 0)
		lc->bus = b;
	return r;
}

static void local_stop(struct ivl_sdm *s)
{
	struct local_chan *lc = local_of(s);
	struct ivl_sdm_bus *b = lc->bus;

	if (b) {
		pthread_mutex_lock(&b->lock);
		if (s->master) {
			b->master = NULL;
			atomic_store_explicit(&b->master_live, false, memory_order_relaxed);
			/* Slaves stay on the bus but lose their master: their
			 * sends fail with -ENOTCONN. */
			for (unsigned i = 1; i <= IVL_SDM_MAX_SLAVES; i++)
				if (b->slaves[i]) {
					b->slaves[i]->state = -ENOTCONN;
					b->slaves[i] = NULL;
					atomic_store_explicit(
					    &atomic_load_explicit(&b->slot[i], memory_order_relaxed)
						 ->live,
					    false, memory_order_relaxed);
				}
			b->count = 0;
		} else if (s->id && b->slaves[s->id] == s) {
			b->slaves[s->id] = NULL;
			atomic_store_explicit(&lc->lslot->live, false, memory_order_relaxed);
			b->count--;
		}
		pthread_mutex_unlock(&b->lock);
		lc->bus = NULL;
	}
	ivl__close(lc->evfd);
}

/* The sender's side of a doorbell, after publishing (see the top). */
static void maybe_ring(struct ivl_sdm_bus *b, _Atomic bool *armed, uint16_t id)
{
	static const uint64_t one = 1;
	struct ivl_sdm *dst;

	/* Pairs with the fence in arm() (Dekker). */
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(armed, memory_order_relaxed) ||
	    !atomic_exchange_explicit(armed, false, memory_order_relaxed))
		return;
	pthread_mutex_lock(&b->lock);
	dst = id == IVL_SDM_MASTER ? b->master : b->slaves[id];
	/* An EAGAIN would only mean the counter is already readable. */
	if (dst && write(local_of(dst)->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		ivl__debug("sdm: doorbell of %u: %s", id, strerror(errno));
	pthread_mutex_unlock(&b->lock);
}

/* Publish a batch's entries and ring their receiver if it sleeps. */
static void tx_publish(struct ivl_sdm *s)
{
	struct local_chan *lc = local_of(s);
	struct lring *r = lc->tx;

	if (!r)
		return;
	/* Release: pairs with the acquire of head in rx_drain(). */
	atomic_store_explicit(&r->head, lc->tx_head, memory_order_release);
	lc->tx = NULL;
	if (s->master)
		maybe_ring(
		    lc->bus,
		    &atomic_load_explicit(&lc->bus->slot[lc->tx_id], memory_order_relaxed)->armed,
		    lc->tx_id);
	else
		maybe_ring(lc->bus, &lc->bus->master_armed, IVL_SDM_MASTER);
}

/* Queue up to @n signals for one destination: how many fit (> 0), or
 * -EAGAIN when the ring is full.  The consumer's tail is read once per
 * lap (tx_room counts down), the entries are copied in one go. */
static int tx_put(struct ivl_sdm *s, struct lring *r, uint16_t id, const struct ivl_sdm_signal *sig,
		  size_t n)
{
	struct local_chan *lc = local_of(s);
	uint32_t at, first;

	if (lc->tx != r) {
		tx_publish(s);
		lc->tx = r;
		lc->tx_id = id;
		lc->tx_head = atomic_load_explicit(&r->head, memory_order_relaxed);
		lc->tx_room = 0;
	}
	if (lc->tx_room < n) {
		/* Acquire: pairs with the release of tail in rx_drain(). */
		lc->tx_room = LRING_LEN -
			      (lc->tx_head - atomic_load_explicit(&r->tail, memory_order_acquire));
		if (!lc->tx_room)
			return -EAGAIN;
	}
	if (n > lc->tx_room)
		n = lc->tx_room;
	at = lc->tx_head % LRING_LEN;
	first = LRING_LEN - at < n ? LRING_LEN - at : (uint32_t)n;
	memcpy(&r->ent[at], sig, first * sizeof(*sig));
	memcpy(&r->ent[0], sig + first, (n - first) * sizeof(*sig));
	lc->tx_head += (uint32_t)n;
	lc->tx_room -= (uint32_t)n;
	return (int)n;
}

static int local_send_batch(struct ivl_sdm *s, const struct ivl_sdm_signal *sigs, size_t n)
{
	struct local_chan *lc = local_of(s);
	struct ivl_sdm_bus *b = lc->bus;
	size_t i = 0;
	int r = 0;

	if (!b)
		return s->master ? -ENOENT : -ENOTCONN;
	while (i < n) {
		if (s->master) {
			uint16_t id = (uint16_t)sigs[i].slave;
			/* Acquire: pairs with the release in admit(). */
			struct ivl__sdm_lslot *sl =
			    atomic_load_explicit(&b->slot[id], memory_order_acquire);

			r = sl && atomic_load_explicit(&sl->live, memory_order_acquire)
				? tx_put(s, &sl->m2s, id, &sigs[i],
					 ivl__sdm_same_dest(&sigs[i], n - i))
				: -ENOENT;
		} else if (s->state != 0 ||
			   !atomic_load_explicit(&b->master_live, memory_order_relaxed)) {
			r = -ENOTCONN;
		} else {
			r = tx_put(s, &lc->lslot->s2m, IVL_SDM_MASTER, &sigs[i], n - i);
		}
		if (r < 0)
			break;
		i += (size_t)r;
	}
	tx_publish(s);
	return i ? (int)i : r;
}

/* Copy out, release, deliver: at most IVL__SDM_RX_LAPS laps per call. */
static int rx_drain(struct ivl_sdm *s, struct lring *r, uint16_t from)
{
	struct ivl_sdm_signal copy[RX_CHUNK];
	uint32_t budget = IVL__SDM_RX_LAPS * LRING_LEN;
	int delivered = 0;

	while (budget) {
		uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
		/* Acquire: pairs with the release in tx_publish(). */
		uint32_t n = atomic_load_explicit(&r->head, memory_order_acquire) - tail;

		if (!n)
			break;
		if (n > RX_CHUNK)
			n = RX_CHUNK;
		for (uint32_t i = 0; i < n; i++)
			copy[i] = r->ent[(tail + i) % LRING_LEN];
		/* Release: pairs with the acquire of tail in tx_put(). */
		atomic_store_explicit(&r->tail, tail + n, memory_order_release);
		budget -= n < budget ? n : budget;
		delivered += ivl__sdm_deliver_many(s, copy, n, from);
	}
	return delivered;
}

static int drain_all(struct ivl_sdm *s)
{
	struct local_chan *lc = local_of(s);
	struct ivl_sdm_bus *b = lc->bus;
	unsigned hi;
	int delivered = 0;

	if (!b)
		return 0;
	if (!s->master)
		return lc->lslot ? rx_drain(s, &lc->lslot->m2s, IVL_SDM_MASTER) : 0;
	/* Acquire: pairs with the release in admit(). */
	hi = atomic_load_explicit(&b->hi, memory_order_acquire);
	for (unsigned id = 1; id <= hi; id++) {
		struct ivl__sdm_lslot *sl =
		    atomic_load_explicit(&b->slot[id], memory_order_acquire);

		/* A slot that is not live may still hold what its slave sent
		 * before it left: delivered, as a socket's last frames are. */
		if (sl)
			delivered += rx_drain(s, &sl->s2m, (uint16_t)id);
	}
	return delivered;
}

/* Going idle: drain the eventfd, arm, look again (see the top). */
static int arm(struct ivl_sdm *s)
{
	struct local_chan *lc = local_of(s);
	_Atomic bool *armed = s->master ? &lc->bus->master_armed : &lc->lslot->armed;
	uint64_t v;

	if (atomic_load_explicit(armed, memory_order_relaxed))
		return 0; /* nobody rang since we armed: the eventfd is empty */
	if (read(lc->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	atomic_store_explicit(armed, true, memory_order_relaxed);
	/* Pairs with the fence in maybe_ring() (Dekker). */
	atomic_thread_fence(memory_order_seq_cst);
	return drain_all(s);
}

static int local_process(struct ivl_sdm *s)
{
	struct local_chan *lc = local_of(s);
	int delivered = drain_all(s);

	if (!ivl__sdm_idle(s, delivered) || !lc->bus || (!s->master && !lc->lslot))
		return delivered;
	return arm(s);
}

static bool local_present(const struct ivl_sdm *s, uint16_t id)
{
	struct local_chan *lc = local_of(s);
	struct ivl_sdm_bus *b = lc->bus;
	bool r;

	if (!b)
		return false;
	pthread_mutex_lock(&b->lock);
	r = b->slaves[id] != NULL;
	pthread_mutex_unlock(&b->lock);
	return r;
}

static int local_count(const struct ivl_sdm *s)
{
	struct local_chan *lc = local_of(s);
	struct ivl_sdm_bus *b = lc->bus;
	int r;

	if (!b)
		return 0;
	pthread_mutex_lock(&b->lock);
	r = (int)b->count;
	pthread_mutex_unlock(&b->lock);
	return r;
}

static size_t local_ids(const struct ivl_sdm *s, uint16_t *ids)
{
	struct local_chan *lc = local_of(s);
	struct ivl_sdm_bus *b = lc->bus;
	size_t n = 0;

	if (!b)
		return 0;
	pthread_mutex_lock(&b->lock);
	for (uint16_t id = 1; id <= IVL_SDM_MAX_SLAVES; id++)
		if (b->slaves[id])
			ids[n++] = id;
	pthread_mutex_unlock(&b->lock);
	return n;
}

static int local_room(struct ivl_sdm *s, uint16_t id)
{
	struct local_chan *lc = local_of(s);
	struct ivl_sdm_bus *b = lc->bus;
	struct ivl__sdm_lslot *sl;
	struct lring *r;
	uint32_t head;

	if (!b || id > IVL_SDM_MAX_SLAVES)
		return -ENOENT;
	/* Acquire: pairs with the release in admit(). */
	sl = atomic_load_explicit(&b->slot[id], memory_order_acquire);
	if (!sl || !atomic_load_explicit(&sl->live, memory_order_acquire))
		return -ENOENT;
	r = &sl->m2s;
	/* Only the master pushes (a batch in progress counts with its
	 * private head); the slave only pops: the room seen stays. */
	head = lc->tx == r ? lc->tx_head : atomic_load_explicit(&r->head, memory_order_relaxed);
	return head - atomic_load_explicit(&r->tail, memory_order_acquire) >= LRING_LEN ? -EAGAIN
											: 0;
}

/* One signal: a batch of one (published at once, there is nothing to
 * flush). */
static int local_send(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, bool more)
{
	int r = local_send_batch(s, sig, 1);

	(void)more;
	return r < 0 ? r : 0;
}

static int local_check(const struct ivl_sdm_opts *o)
{
	return o->bus ? 0 : -EINVAL;
}

const struct ivl__sdm_chan_ops ivl__sdm_local_ops = {
    .name = "local",
    .priv_size = sizeof(struct local_chan),
    .check = local_check,
    .start = local_start,
    .stop = local_stop,
    .send = local_send,
    .send_batch = local_send_batch,
    .process = local_process,
    .present = local_present,
    .count = local_count,
    .ids = local_ids,
    .room = local_room,
};
