/* SPDX-License-Identifier: MIT */
/*
 * What the link backends share: the common part of every link, the backend
 * ops table, the event queue and the peer table.
 *
 * Shape of a link: one epoll fd (the fd the user polls) watching
 *  - my own vector fds (tag = vector number), drained by link.c;
 *  - an event queue's eventfd, readable while events wait to be returned;
 *  - whatever the backend needs (the server socket for host: tag
 *    IVL__TAG_INPUT, handled by ops->input()).
 * Backends turn their input into events pushed on the queue; link.c drains
 * doorbells and pops events.  A future guest backend (ivshmem PCI device via
 * VFIO: MSI-X eventfds as own vectors, Doorbell register writes for ring) and
 * wait modes or coalescing (docs/protocol.md §3: a check of the target's pending
 * bit in the header before ops->ring, a poll mode that keeps "waiting" clear)
 * fit the same mould: they change ops->ring and what link.c does around it,
 * not the API.
 */
#ifndef IVL_LINK_INTERNAL_H
#define IVL_LINK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ivlink/link.h>
#include <ivlink/proto/shm.h>

/* epoll tags; vectors use 0..IVL_MAX_VECTORS-1. */
#define IVL__TAG_QUEUE 0x10000u
#define IVL__TAG_INPUT 0x10001u

/* ---- event queue (evq.c) --------------------------------------------- */

/*
 * FIFO of events, pushed by the owner's process() or by other threads (the
 * local hub announcing joins), popped by the owner.  efd is readable while
 * the queue is not empty, so a queued event keeps the link's fd readable.
 * Once DOWN is pushed, nothing else is accepted: DOWN is always the last.
 *
 * Event order (evq.c, docs/protocol.md §4): the owner brackets every
 * collection of its vectors (eventfds and pending bits) with
 * ivl__evq_drain_begin() and ivl__evq_drain_done(), and hands the doorbells
 * it collected to ivl__evq_take(), which puts them after the queued JOINs
 * and before the queued LEAVEs, and holds back each LEAVE until a drain
 * begun after it was pushed has completed.
 */
struct ivl__evq_item {
	struct ivl_link_event ev;
	uint32_t gen; /* drains begun when pushed */
};

struct ivl__evq {
	pthread_mutex_t lock;
	struct ivl__evq_item *it;
	size_t head, len, cap;
	atomic_size_t alen;    /* len, for a look without the lock */
	_Atomic uint32_t begun; /* drains begun */
	uint32_t done;         /* last drain completed (owner only) */
	int efd;
	bool closed;
};

int ivl__evq_init(struct ivl__evq *q);
void ivl__evq_fini(struct ivl__evq *q);
/* -ENOMEM, or 0 (also when dropped because DOWN was queued).  Any thread. */
int ivl__evq_push(struct ivl__evq *q, enum ivl_link_event_type type, uint16_t peer, uint16_t vector,
		  uint32_t count);
/* Owner only: a collection of my vectors begins (returns its number) and
 * is complete.  What was pushed before the begin and rang before it is in
 * the collection. */
uint32_t ivl__evq_drain_begin(struct ivl__evq *q);
void ivl__evq_drain_done(struct ivl__evq *q, uint32_t drain);
/* Owner only: insert @ndb doorbells (may be 0) at their place, then pop up
 * to @max events that may be delivered now. */
size_t ivl__evq_take(struct ivl__evq *q, const struct ivl_link_event *db, size_t ndb,
		     struct ivl_link_event *ev, size_t max);
size_t ivl__evq_pop(struct ivl__evq *q, struct ivl_link_event *ev, size_t max);
/* Queued events (deliverable or held); lock-free. */
size_t ivl__evq_len(struct ivl__evq *q);

/* ---- peer table ------------------------------------------------------- */

/*
 * Sparse map peer ID -> vector fds (IDs up to 65535, 64 vectors each): 256
 * pages of 256 slots, allocated as peers appear.  Readers (ring, from any
 * thread) hold the read lock while they write to an fd, so a writer (the
 * owner's process(), under the write lock) never closes an fd in use.
 */
struct ivl__peer {
	unsigned nfds;
	bool joined; /* JOIN reported */
	int fds[IVL_MAX_VECTORS];
};

#define IVL__PT_PAGE 256u /* peers per page of the table */

struct ivl__pt_page {
	struct ivl__peer *peer[IVL__PT_PAGE];
	/* peer[i]'s fd count, or 0: written under the write lock, read
	 * without any lock by ivl__pt_vectors() (every ring asks). */
	_Atomic uint8_t nvec[IVL__PT_PAGE];
};

struct ivl__peer_table {
	pthread_rwlock_t lock;
	/* Allocated under the write lock, published with release, freed
	 * only by ivl__pt_fini(). */
	struct ivl__pt_page *_Atomic pages[256];
	unsigned count;
};

int ivl__pt_init(struct ivl__peer_table *t);
/* Closes every fd. */
void ivl__pt_fini(struct ivl__peer_table *t);
/* Append @fd as the next vector of @peer (ownership passes in all cases).
 * Returns the peer's new fd count, -EPROTO if @vector is not the next one,
 * -ENOMEM. */
int ivl__pt_add(struct ivl__peer_table *t, uint16_t peer, uint16_t vector, int fd);
/* Forget @peer and close its fds.  Returns 1 if it had been reported
 * joined, 0 if not, -ENOENT if unknown. */
int ivl__pt_remove(struct ivl__peer_table *t, uint16_t peer);
/* Set the joined flag if @peer has >= @need fds; returns 1 if it was just
 * set. */
int ivl__pt_mark_joined(struct ivl__peer_table *t, uint16_t peer, unsigned need);
/* Any thread: -ENOENT, -ERANGE, or the eventfd write's result. */
int ivl__pt_ring(struct ivl__peer_table *t, uint16_t peer, uint16_t vector);
/* Joined peers except @skip, ascending; returns the count. */
int ivl__pt_list(struct ivl__peer_table *t, int skip, uint16_t *ids, size_t max);
unsigned ivl__pt_vectors(struct ivl__peer_table *t, uint16_t peer);
/* Call @fn for every peer (under the write lock); for reporting initial
 * peers. */
void ivl__pt_foreach(struct ivl__peer_table *t,
		     void (*fn)(void *ctx, uint16_t id, struct ivl__peer *p), void *ctx);

/* ---- the link ---------------------------------------------------------- */

struct ivl__link_ops {
	const char *name;
	/* Any thread. */
	int (*ring)(struct ivl_link *l, uint16_t peer, uint16_t vector);
	/* Joined peers except me, ascending; any thread. */
	int (*peers)(const struct ivl_link *l, uint16_t *ids, size_t max);
	/* Any thread, and takes no lock: every ring asks it. */
	unsigned (*peer_vectors)(const struct ivl_link *l, uint16_t peer);
	/* IVL__TAG_INPUT became readable: read it, push events (DOWN on a
	 * fatal error, then stop watching).  May be NULL. */
	void (*input)(struct ivl_link *l);
	/* Release everything of the backend, then ivl__link_fini(), free. */
	void (*destroy)(struct ivl_link *l);
};

struct ivl_link {
	const struct ivl__link_ops *ops;
	int id;
	unsigned vectors;
	void *base;
	uint64_t size;
	bool has_header;
	struct ivl_shm_header hdr; /* validated copy, if has_header */
	int epfd;
	struct ivl__evq q;
	/* Borrowed: the backend owns these fds.  Drained by process(). */
	int own_fds[IVL_MAX_VECTORS];
	/* Set when DOWN is queued (ring from other threads sees it). */
	atomic_bool dead;
	/* DOWN was returned: process() says -ENOTCONN from now on. */
	bool down;
	/* Wait mode and coalescing (docs/protocol.md §3), owned by link.c. */
	enum ivl_wait_mode mode;
	uint32_t spin_ns;
	/* The backend has no interrupts at all (a guest without VFIO): my
	 * entry stays AWAKE so senders set pending bits, and waits poll. */
	bool no_irq;
	/* Coalescing was asked for (set_coalescing, or a spinning mode). */
	bool want_coalesce;
	/* I published a waiting state in my entry (set by link.c). */
	bool coalescing;
	/* My vectors are watched edge-triggered (coalescing); edges[v] counts
	 * the edges seen, to read the counter now and then. */
	bool edge;
	uint32_t edges[IVL_MAX_VECTORS];
	/* A blocked wait was woken and published AWAKE: senders skip their
	 * doorbells until I am done (link.c, declare_done()). */
	bool busy;
	struct {
		_Atomic uint64_t doorbells, coalesced, wakeups, spins; /* rings: the sum */
	} st;
	char name_buf[IVL_NAME_LEN + 1];
};

/* Set up the common part (epoll fd, queue); -errno. */
int ivl__link_init(struct ivl_link *l, const struct ivl__link_ops *ops);
void ivl__link_fini(struct ivl_link *l);
/* Watch @fd in the link's epoll set with @tag. */
int ivl__link_watch(struct ivl_link *l, int fd, uint32_t tag);
void ivl__link_unwatch(struct ivl_link *l, int fd);
/* A periodic timerfd of @period_ms (nonzero) watched with IVL__TAG_INPUT, for
 * backends that rescan the peer table; returns the fd (owned by the caller)
 * or -errno.  ivl__link_timer_drain() reads its expirations. */
int ivl__link_watch_timer(struct ivl_link *l, unsigned period_ms);
void ivl__link_timer_drain(int fd);
/* Register my own vector @v's fd (borrowed) and watch it. */
int ivl__link_add_own(struct ivl_link *l, unsigned v, int fd);
/* Queue DOWN once and mark the link dead. */
void ivl__link_set_down(struct ivl_link *l);

#endif
