/* SPDX-License-Identifier: MIT */
/*
 * The peer API (ARCHITECTURE.md "link"): argument checks, the parts every
 * backend shares (own-vector draining, the event queue, waiting, broadcast,
 * the header's peer names) and dispatch to the backend's ops.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>

#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>
#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>

#include "core/internal.h"
#include "link/link-internal.h"

/* ---- shared with the backends ------------------------------------------ */

int ivl__link_init(struct ivl_link *l, const struct ivl__link_ops *ops)
{
	int ret;

	l->ops = ops;
	l->id = -1;
	l->mode = IVL_WAIT_INTERRUPT;
	l->spin_ns = IVL_SPIN_DEFAULT_NS;
	atomic_init(&l->st.doorbells, 0);
	atomic_init(&l->st.coalesced, 0);
	atomic_init(&l->st.wakeups, 0);
	atomic_init(&l->st.spins, 0);
	l->epfd = -1;
	for (unsigned v = 0; v < IVL_MAX_VECTORS; v++)
		l->own_fds[v] = -1;
	atomic_init(&l->dead, false);
	ret = ivl__evq_init(&l->q);
	if (ret < 0)
		return ret;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		ret = -errno;
		ivl__evq_fini(&l->q);
		return ret;
	}
	ret = ivl__link_watch(l, l->q.efd, IVL__TAG_QUEUE);
	if (ret < 0) {
		l->epfd = ivl__close(l->epfd);
		ivl__evq_fini(&l->q);
	}
	return ret;
}

void ivl__link_fini(struct ivl_link *l)
{
	l->epfd = ivl__close(l->epfd);
	ivl__evq_fini(&l->q);
}

int ivl__link_watch(struct ivl_link *l, int fd, uint32_t tag)
{
	struct epoll_event e = {.events = EPOLLIN, .data.u64 = tag};

	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

int ivl__link_watch_timer(struct ivl_link *l, unsigned period_ms)
{
	struct itimerspec it = {
	    .it_interval = {.tv_sec = period_ms / 1000,
			    .tv_nsec = (long)(period_ms % 1000) * 1000000L},
	};
	int fd, ret;

	it.it_value = it.it_interval;
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (timerfd_settime(fd, 0, &it, NULL) < 0)
		ret = -errno;
	else
		ret = ivl__link_watch(l, fd, IVL__TAG_INPUT);
	if (ret < 0) {
		ivl__close(fd);
		return ret;
	}
	return fd;
}

void ivl__link_timer_drain(int fd)
{
	uint64_t expirations;

	/* Nonblocking; EAGAIN just means a spurious wakeup. */
	if (read(fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		ivl__debug("link: rescan timer: %s", strerror(errno));
}

void ivl__link_unwatch(struct ivl_link *l, int fd)
{
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
}

int ivl__link_add_own(struct ivl_link *l, unsigned v, int fd)
{
	struct epoll_event e = { .events = EPOLLIN | (l->edge ? EPOLLET : 0), .data.u64 = v };

	if (v >= IVL_MAX_VECTORS || l->own_fds[v] >= 0)
		return -EINVAL;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &e) < 0)
		return -errno;
	l->own_fds[v] = fd;
	return 0;
}

/*
 * With coalescing, a doorbell means "at least once" and its count does not
 * matter: my vectors are then watched edge-triggered (every eventfd write is
 * one edge), and a wake-up needs no read() of the eventfd.  The counters are
 * still read now and then (EDGE_READ_EVERY edges) so they never come near
 * saturation, where writes would stop producing edges.
 */
#define EDGE_READ_EVERY 1024u

static void set_edge(struct ivl_link *l, bool on)
{
	for (unsigned v = 0; v < IVL_MAX_VECTORS; v++) {
		struct epoll_event e = { .events = EPOLLIN | (on ? EPOLLET : 0), .data.u64 = v };

		if (l->own_fds[v] >= 0)
			epoll_ctl(l->epfd, EPOLL_CTL_MOD, l->own_fds[v], &e);
	}
	l->edge = on;
}

void ivl__link_set_down(struct ivl_link *l)
{
	if (atomic_exchange(&l->dead, true))
		return;
	ivl__evq_push(&l->q, IVL_LINK_DOWN, 0, 0, 0);
}

/* ---- the peer API ------------------------------------------------------ */

IVL_EXPORT int ivl_link_id(const struct ivl_link *l)
{
	return l ? l->id : -EINVAL;
}

IVL_EXPORT unsigned ivl_link_vectors(const struct ivl_link *l)
{
	return l ? l->vectors : 0;
}

IVL_EXPORT void *ivl_link_region(const struct ivl_link *l, uint64_t *size)
{
	if (size)
		*size = l ? l->size : 0;
	return l ? l->base : NULL;
}

IVL_EXPORT void *ivl_link_app_area(const struct ivl_link *l, uint64_t *size)
{
	if (!l) {
		if (size)
			*size = 0;
		return NULL;
	}
	/* header_size < size was checked by ivl_shm_validate() on our copy. */
	if (l->has_header) {
		if (size)
			*size = l->size - l->hdr.header_size;
		return (char *)l->base + l->hdr.header_size;
	}
	if (size)
		*size = l->size;
	return l->base;
}

IVL_EXPORT const struct ivl_shm_header *ivl_link_header(const struct ivl_link *l)
{
	/* Our validated copy, not the live header: its numbers cannot change
	 * under the caller (peers may scribble on shared memory). */
	return l && l->has_header ? &l->hdr : NULL;
}

IVL_EXPORT int ivl_link_peers(const struct ivl_link *l, uint16_t *ids, size_t max)
{
	if (!l || (!ids && max))
		return -EINVAL;
	return l->ops->peers(l, ids, max);
}

IVL_EXPORT unsigned ivl_link_peer_vectors(const struct ivl_link *l, uint16_t peer)
{
	return l ? l->ops->peer_vectors(l, peer) : 0;
}

IVL_EXPORT const char *ivl_link_peer_name(struct ivl_link *l, uint16_t peer)
{
	char raw[IVL_NAME_LEN];
	struct ivl_shm_peer *e;

	if (!l)
		return "";
	l->name_buf[0] = '\0';
	if (!l->has_header || ((int)peer != l->id && !l->ops->peer_vectors(l, peer)))
		return l->name_buf;
	/* The entry is in the validated table; its bytes are anybody's, and
	 * may change under us: copy once, then sanitize the copy. */
	e = ivl_shm_peer(l->base, &l->hdr, peer);
	if (!e)
		return l->name_buf;
	memcpy(raw, e->name, sizeof(raw));
	ivl__sanitize_name(l->name_buf, raw, sizeof(raw));
	return l->name_buf;
}

/* My entry in the live peer table, or NULL (raw region, ID beyond it). */
static struct ivl_shm_peer *entry_of(const struct ivl_link *l, int id)
{
	if (!l->has_header || id < 0)
		return NULL;
	return ivl_shm_peer(l->base, &l->hdr, (uint32_t)id);
}

/*
 * One ring with coalescing (docs/protocol.md §3): set the target's pending
 * bit and make the real doorbell only when the target may be asleep and the
 * bit was clear.  The peer and vector are checked first so that no bit is
 * set for an absent peer.
 */
static int ring_one(struct ivl_link *l, uint16_t peer, uint16_t vector)
{
	struct ivl_shm_peer *e = entry_of(l, peer);
	_Atomic uint64_t *kind = &l->st.doorbells;

	if (e) {
		unsigned nv = l->ops->peer_vectors(l, peer);

		if (!nv)
			return -ENOENT;
		if (vector >= nv)
			return -ERANGE;
		if (!ivl_coalesce_mark(e, vector))
			kind = &l->st.coalesced;
	}
	if (kind == &l->st.doorbells) {
		int ret = l->ops->ring(l, peer, vector);
		if (ret < 0)
			return ret;
	}
	/* One counter per ring (rings are their sum): each is a locked
	 * instruction on the sender's path. */
	atomic_fetch_add_explicit(kind, 1, memory_order_relaxed);
	return 0;
}

/* The checks every ring starts with: 0, or the error to return. */
static int ring_check(const struct ivl_link *l, uint16_t vector)
{
	if (!l)
		return -EINVAL;
	if (atomic_load_explicit(&l->dead, memory_order_relaxed))
		return -ENOTCONN;
	return vector >= IVL_MAX_VECTORS ? -ERANGE : 0;
}

IVL_EXPORT int ivl_link_ring(struct ivl_link *l, uint16_t peer, uint16_t vector)
{
	int ret = ring_check(l, vector);

	return ret < 0 ? ret : ring_one(l, peer, vector);
}

IVL_EXPORT int ivl_link_broadcast(struct ivl_link *l, uint16_t vector)
{
	uint16_t small[256], *ids = small;
	int n, rung = 0, ret = ring_check(l, vector);

	if (ret < 0)
		return ret;
	n = l->ops->peers(l, small, IVL_ARRAY_SIZE(small));
	if (n > (int)IVL_ARRAY_SIZE(small)) {
		/* Peers may come and go meanwhile: ring those we got. */
		ids = malloc((size_t)n * sizeof(*ids));
		if (!ids)
			return -ENOMEM;
		int m = l->ops->peers(l, ids, (size_t)n);
		if (m < n)
			n = m;
	}
	for (int i = 0; i < n; i++) {
		int r = ring_one(l, ids[i], vector);
		if (r == 0)
			rung++;
		else if (r != -ENOENT && !ret)
			ret = r; /* a peer that left meanwhile is no failure */
	}
	if (ids != small)
		free(ids);
	/* Partial success counts; an error only when nobody was rung. */
	return rung || !ret ? rung : ret;
}

IVL_EXPORT int ivl_link_get_fd(const struct ivl_link *l)
{
	return l ? l->epfd : -EINVAL;
}

/*
 * My entry while I take part in coalescing, else NULL.  On the first call
 * after opting in, publish my resting state: ASLEEP (senders ring the real
 * doorbell when my bit was clear, so the fd the caller polls becomes
 * readable), or AWAKE for a backend without interrupts (senders only set
 * bits, which every wait polls).  Until then my entry says NONE (the server
 * resets it at every join) and every ring is a real doorbell, with eventfd
 * counts that add up exactly, as with QEMU.
 */
static struct ivl_shm_peer *self_entry(struct ivl_link *l)
{
	struct ivl_shm_peer *me;

	if (!l->want_coalesce && !l->no_irq)
		return NULL;
	me = entry_of(l, l->id);
	if (me && !l->coalescing) {
		l->coalescing = true;
		if (l->no_irq) {
			ivl_coalesce_wake(me);
		} else {
			set_edge(l, true);
			__atomic_store_n(&me->waiting, IVL_WAITING_ASLEEP, __ATOMIC_SEQ_CST);
		}
	}
	return me;
}

/* The ID doorbell events carry: mine (eventfds do not say who rang). */
static uint16_t event_peer(const struct ivl_link *l)
{
	return (uint16_t)(l->id < 0 ? 0 : l->id);
}

/* Bits beyond my vectors are some peer's scribbles. */
static void merge_bits(const struct ivl_link *l, uint64_t bits, uint32_t *counts)
{
	for (unsigned v = 0; v < l->vectors && v < IVL_MAX_VECTORS; v++)
		if ((bits & (1ull << v)) && !counts[v])
			counts[v] = 1;
}

/*
 * Deliver the doorbells in @counts into @ev (up to @max), in order with the
 * queued events (evq.c).  The common case, nothing queued, touches no lock:
 * a JOIN pushed after the look belongs to a peer that could not have rung
 * before it, and a LEAVE pushed after it comes after these doorbells anyway.
 * Returns the count.
 */
static int deliver(struct ivl_link *l, const uint32_t *counts, struct ivl_link_event *ev,
		   size_t max)
{
	struct ivl_link_event db[IVL_MAX_VECTORS];
	size_t n = 0;

	for (unsigned v = 0; v < IVL_MAX_VECTORS; v++)
		if (counts[v])
			db[n++] = (struct ivl_link_event){ .type = IVL_LINK_DOORBELL,
							   .peer = event_peer(l),
							   .vector = (uint16_t)v,
							   .count = counts[v] };
	if (n <= max && !ivl__evq_len(&l->q)) {
		memcpy(ev, db, n * sizeof(*ev));
		return (int)n;
	}
	n = ivl__evq_take(&l->q, db, n, ev, max);
	if (n && ev[n - 1].type == IVL_LINK_DOWN)
		l->down = true; /* DOWN is the last event */
	return (int)n;
}

/*
 * Gather what is ready: my own vectors (from @es, the result of an
 * epoll_wait() the caller made after beginning drain @drain, or from a
 * non-blocking one), my pending bits, then the backend's input; store up to
 * @max events.  Doorbells go straight into @ev when nothing is queued, so
 * the common case touches no queue and no extra system call.
 *
 * The order matters twice.  Eventfds are drained *before* the bits are
 * taken, so a sender whose eventfd write we consumed has its bit taken too
 * (the reverse order could consume the write of a bit still set, and
 * strand it); a ring that races between the two may show up once more on
 * the next call: doorbells are "at least once" hints (docs/protocol.md §3).
 * And the backend's input (JOIN, LEAVE) is read *after* the collection, so
 * that a JOIN written before a ring we collected is read now and delivered
 * ahead of it, while a LEAVE read now waits for the next collection, which
 * holds every ring of that peer (evq.c).
 */
static int gather_drain(struct ivl_link *l, uint32_t drain, const struct epoll_event *es, int nes,
			struct ivl_link_event *ev, size_t max)
{
	struct epoll_event local[IVL_MAX_VECTORS + 4];
	uint32_t counts[IVL_MAX_VECTORS] = { 0 };
	struct ivl_shm_peer *me = self_entry(l);
	bool input = false;

	if (!es) {
		nes = epoll_wait(l->epfd, local, IVL_ARRAY_SIZE(local), 0);
		es = local;
	}
	for (int i = 0; i < nes; i++) {
		uint64_t tag = es[i].data.u64, count;

		if (tag == IVL__TAG_INPUT) {
			input = true;
			continue;
		}
		if (tag >= IVL_MAX_VECTORS || l->own_fds[tag] < 0)
			continue;
		if (l->edge && ++l->edges[tag] % EDGE_READ_EVERY) {
			counts[tag] = 1;
			continue;
		}
		if (ivl_eventfd_drain(l->own_fds[tag], &count) > 0)
			counts[tag] = count > UINT32_MAX ? UINT32_MAX : (uint32_t)count;
		else if (l->edge)
			counts[tag] = 1; /* the edge was a ring; a read raced it */
	}
	if (me)
		merge_bits(l, ivl_coalesce_take(me), counts);
	ivl__evq_drain_done(&l->q, drain);
	if (input && l->ops->input)
		l->ops->input(l);
	return deliver(l, counts, ev, max);
}

static int gather(struct ivl_link *l, struct ivl_link_event *ev, size_t max)
{
	return gather_drain(l, ivl__evq_drain_begin(&l->q), NULL, 0, ev, max);
}

/*
 * "The bit stays set until the receiver is done" (docs/protocol.md §3):
 * after a blocked wait is woken, my entry says AWAKE until I am done with
 * what the wait returned, so that rings made while I work set their bits
 * and skip the doorbell (an eventfd write, a VM exit in a guest).  Done is
 * the next ivl_link_wait() (which publishes ASLEEP and re-checks before it
 * blocks), ivl_link_process() called by the application, or
 * ivl_link_done(): publish ASLEEP, then a sequentially consistent look at
 * my bits (the Dekker pattern of coalesce.c); bits set before it are taken
 * by the next gather, later rings find ASLEEP and ring.
 */
static void declare_done(struct ivl_link *l)
{
	struct ivl_shm_peer *me;

	if (!l->busy)
		return;
	l->busy = false;
	me = entry_of(l, l->id);
	if (!me || !l->coalescing)
		return;
	/* Pairs with the sender's seq_cst load of waiting (Dekker). */
	__atomic_store_n(&me->waiting, IVL_WAITING_ASLEEP, __ATOMIC_SEQ_CST);
	(void)__atomic_load_n(&me->pending, __ATOMIC_SEQ_CST);
}

IVL_EXPORT int ivl_link_done(struct ivl_link *l)
{
	struct ivl_shm_peer *me;

	if (!l)
		return -EINVAL;
	if (!l->busy)
		return 0;
	declare_done(l);
	/* The caller re-checks its work next (link.h), which covers the
	 * rings folded into my bits: clear them, so that a later ring finds
	 * its bit clear and makes the doorbell a caller blocked on the fd
	 * needs.  Acquire: pairs with the senders' seq_cst fetch_or, so their
	 * work is visible to that re-check. */
	me = entry_of(l, l->id);
	if (me && l->coalescing)
		(void)ivl_coalesce_take(me);
	return 0;
}

IVL_EXPORT int ivl_link_process(struct ivl_link *l, struct ivl_link_event *ev, size_t max)
{
	size_t n;

	if (!l || (!ev && max))
		return -EINVAL;
	if (l->down)
		return -ENOTCONN;
	if (!max)
		return 0;
	declare_done(l);
	/* Fetch more only when the queue cannot fill @ev by itself: keeps the
	 * queue bounded however slowly the caller takes events. */
	if (ivl__evq_len(&l->q) < max)
		return gather(l, ev, max);
	n = ivl__evq_pop(&l->q, ev, max);
	if (!n) /* a LEAVE at the head waits for a collection */
		return gather(l, ev, max);
	if (ev[n - 1].type == IVL_LINK_DOWN)
		l->down = true;
	return (int)n;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* How often a spinning wait also looks at the fds (non-coalescing senders,
 * joins and leaves), in spin iterations. */
#define SPIN_FD_CHECK 256
/* A blocked wait re-checks at least this often (ms; -1: never): a hostile
 * peer may have rewritten my waiting state so that nobody rings me.  Not
 * static: the race test turns it off, as it would hide a lost wakeup. */
int ivl__sleep_slice_ms = 100;

/*
 * Spin until work shows up or @until_ns passes.  Returns > 0 (events), 0
 * (nothing by then), or -errno.  The fast path sees my pending bits and
 * turns them into events without a system call.
 */
static int spin(struct ivl_link *l, struct ivl_shm_peer *me, struct ivl_link_event *ev,
		size_t max, int64_t until_ns)
{
	unsigned i = 0;

	if (me && !l->no_irq)
		ivl_coalesce_wake(me);
	/* Spinning modes are AWAKE between waits by design (link.h). */
	l->busy = false;
	for (;;) {
		int r = 0;

		if (++i % SPIN_FD_CHECK == 0) {
			r = ivl_link_process(l, ev, max);
			if (r == 0 && now_ns() >= until_ns)
				return 0;
		} else if (me && __atomic_load_n(&me->pending, __ATOMIC_RELAXED)) {
			uint32_t counts[IVL_MAX_VECTORS] = { 0 };

			merge_bits(l, ivl_coalesce_take(me), counts);
			r = deliver(l, counts, ev, max);
		}
		if (r != 0) {
			if (r > 0)
				atomic_fetch_add_explicit(&l->st.spins, 1, memory_order_relaxed);
			return r;
		}
		ivl__cpu_relax();
	}
}

/* Block on the fd (or, without interrupts, nap) until work, @until_ns
 * (< 0: forever), or a signal.  The blocking epoll_wait() itself tells what
 * is ready, so a wake-up costs it alone while coalescing (edge-triggered
 * vectors), else it and one read per rung vector. */
static int block(struct ivl_link *l, struct ivl_shm_peer *me, struct ivl_link_event *ev,
		 size_t max, int64_t until_ns)
{
	struct epoll_event es[IVL_MAX_VECTORS + 4];

	for (;;) {
		int64_t left_ms = until_ns < 0 ? -1 : (until_ns - now_ns() + 999999) / 1000000;
		uint32_t drain;
		int slice, r;

		if (me && !l->no_irq) {
			l->busy = false; /* done: ASLEEP below */
			/* Publish ASLEEP, then re-check (Dekker, see coalesce.c).
			 * Bits the re-check took go back for gather() to take:
			 * only this thread consumes them. */
			uint64_t bits = ivl_coalesce_sleep(me);
			if (bits) {
				/* Not blocking after all: the re-check left
				 * AWAKE, busy as after a wake-up. */
				l->busy = true;
				__atomic_fetch_or(&me->pending, bits, __ATOMIC_RELAXED);
				if ((r = gather(l, ev, max)) != 0)
					return r;
			}
		}
		if (l->no_irq) {
			/* No interrupt will come: look, nap, look again. */
			struct timespec ts = { 0, 50000 };

			if ((r = ivl_link_process(l, ev, max)) != 0)
				return r;
			if (until_ns >= 0 && left_ms <= 0)
				return 0;
			nanosleep(&ts, NULL);
			continue;
		}
		slice = me ? ivl__sleep_slice_ms : -1;
		if (left_ms >= 0 && (slice < 0 || left_ms < slice))
			slice = (int)(left_ms > INT32_MAX ? INT32_MAX : left_ms);
		/* The collection begins before the wait: edges it reports are
		 * part of it (evq.c). */
		drain = ivl__evq_drain_begin(&l->q);
		r = epoll_wait(l->epfd, es, IVL_ARRAY_SIZE(es), slice);
		if (r < 0)
			return -errno;
		if (r > 0) {
			atomic_fetch_add_explicit(&l->st.wakeups, 1, memory_order_relaxed);
			/* Woken: AWAKE until done (declare_done()).  Before
			 * the gather, so that rings racing with it already
			 * skip the doorbell; the loop's ivl_coalesce_sleep()
			 * undoes it if the wake-up brought nothing. */
			if (me && !l->no_irq) {
				ivl_coalesce_wake(me);
				l->busy = true;
			}
		}
		/* Also after a time-out: my bits may have been set by senders
		 * a hostile peer fooled into not ringing. */
		r = r > 0 ? gather_drain(l, drain, es, r, ev, max) : ivl_link_process(l, ev, max);
		if (r != 0)
			return r;
		if (until_ns >= 0 && now_ns() >= until_ns)
			return 0;
	}
}

IVL_EXPORT int ivl_link_wait(struct ivl_link *l, struct ivl_link_event *ev, size_t max,
			     int timeout_ms)
{
	int64_t start = now_ns(), until;
	struct ivl_shm_peer *me;
	int r;

	if (!l || !ev || !max || timeout_ms < -1)
		return -EINVAL;
	if (l->down)
		return -ENOTCONN;
	until = timeout_ms < 0 ? -1 : start + (int64_t)timeout_ms * 1000000;
	me = self_entry(l);
	/* Queued events first (the blocking paths would see them too, but the
	 * spinning ones only now and then). */
	if (ivl__evq_len(&l->q) && (r = ivl_link_process(l, ev, max)) != 0)
		return r;
	switch (l->mode) {
	case IVL_WAIT_POLL:
		return spin(l, me, ev, max, until < 0 ? INT64_MAX : until);
	case IVL_WAIT_ADAPTIVE: {
		int64_t budget = start + (int64_t)l->spin_ns;
		r = spin(l, me, ev, max, until >= 0 && until < budget ? until : budget);
		if (r != 0 || (until >= 0 && now_ns() >= until))
			return r;
		return block(l, me, ev, max, until);
	}
	case IVL_WAIT_INTERRUPT:
	default:
		return block(l, me, ev, max, until);
	}
}

IVL_EXPORT int ivl_link_set_wait_mode(struct ivl_link *l, enum ivl_wait_mode mode,
				      uint32_t spin_ns)
{
	struct ivl_shm_peer *me;

	if (!l || (mode != IVL_WAIT_INTERRUPT && mode != IVL_WAIT_POLL &&
		   mode != IVL_WAIT_ADAPTIVE))
		return -EINVAL;
	l->mode = mode;
	l->spin_ns = spin_ns ? spin_ns : IVL_SPIN_DEFAULT_NS;
	/* Spinning pays off only if senders stop making system calls. */
	if (mode != IVL_WAIT_INTERRUPT)
		l->want_coalesce = true;
	me = self_entry(l);
	/* Back to interrupts: be ASLEEP at once, so that a caller who now
	 * blocks on the fd in its own loop is rung. */
	if (me && mode == IVL_WAIT_INTERRUPT && !l->no_irq)
		__atomic_store_n(&me->waiting, IVL_WAITING_ASLEEP, __ATOMIC_SEQ_CST);
	return 0;
}

IVL_EXPORT int ivl_link_set_coalescing(struct ivl_link *l, bool on)
{
	struct ivl_shm_peer *me;
	uint64_t bits;

	if (!l)
		return -EINVAL;
	if (on) {
		l->want_coalesce = true;
		return self_entry(l) ? 0 : -ENOTSUP;
	}
	if (l->no_irq)
		return -ENOTSUP; /* bits are all such a backend can receive */
	me = l->coalescing ? entry_of(l, l->id) : NULL;
	l->want_coalesce = false;
	l->coalescing = false;
	if (!me)
		return 0;
	ivl_coalesce_off(me);
	/* Back to exact counts: level-triggered, and what the edge mode left
	 * unread is reported now (as "at least once", the mode it came in). */
	set_edge(l, false);
	/* Marks made before the store above may have skipped the doorbell:
	 * deliver them now. */
	bits = ivl_coalesce_take(me);
	for (unsigned v = 0; v < IVL_MAX_VECTORS; v++) {
		bool rung = v < l->vectors && (bits & (1ull << v));

		if (l->own_fds[v] >= 0 && ivl_eventfd_drain(l->own_fds[v], NULL) > 0)
			rung = true;
		if (rung)
			ivl__evq_push(&l->q, IVL_LINK_DOORBELL, (uint16_t)l->id, (uint16_t)v, 1);
	}
	return 0;
}

IVL_EXPORT enum ivl_wait_mode ivl_link_wait_mode(const struct ivl_link *l)
{
	return l ? l->mode : IVL_WAIT_INTERRUPT;
}

IVL_EXPORT void ivl_link_get_stats(const struct ivl_link *l, struct ivl_link_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof(*st));
	if (!l)
		return;
	st->doorbells = atomic_load_explicit(&l->st.doorbells, memory_order_relaxed);
	st->coalesced = atomic_load_explicit(&l->st.coalesced, memory_order_relaxed);
	st->rings = st->doorbells + st->coalesced;
	st->wakeups = atomic_load_explicit(&l->st.wakeups, memory_order_relaxed);
	st->spins = atomic_load_explicit(&l->st.spins, memory_order_relaxed);
}

IVL_EXPORT void ivl_link_free(struct ivl_link *l)
{
	struct ivl_shm_peer *me;

	if (!l)
		return;
	/* Senders that still see my ID ring for real from now on: cheap,
	 * and a successor on this ID starts from the server's reset anyway. */
	me = l->coalescing ? entry_of(l, l->id) : NULL;
	if (me)
		ivl_coalesce_off(me);
	l->ops->destroy(l);
}
