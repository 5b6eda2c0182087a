/* SPDX-License-Identifier: MIT */
/*
 * The link's event queue, and the order in which events leave it
 * (docs/protocol.md §4, "Event order").
 *
 * Doorbells carry no sender: an eventfd or a pending bit only says "some
 * peer rang this vector".  JOIN and LEAVE come by another path (a server
 * socket, a peer-table scan, the local hub).  To deliver them in an order
 * that respects happened-before per peer, the queue counts *drains*: a
 * drain is one collection of everything my vectors hold (eventfds and
 * pending bits).  Every event is stamped with the number of the last drain
 * begun when it was pushed.
 *
 *  - A LEAVE may leave the queue only once a drain that *began after it was
 *    pushed* has completed.  The peer rang before it left, the leave was
 *    pushed after that, so that drain holds every ring of the peer: the
 *    doorbells it yields are inserted before the LEAVE.
 *  - Doorbells collected by a drain are inserted before the first LEAVE (or
 *    DOWN) in the queue, and after every JOIN in it: a JOIN already queued
 *    may belong to a peer whose first ring is in this drain.  A JOIN queued
 *    behind a LEAVE of the same ID (the ID was reused) keeps its place
 *    behind that LEAVE: the per-peer order of JOIN and LEAVE is never
 *    broken, and doorbells of the new holder in that drain come first.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>

#include "core/internal.h"
#include "link/link-internal.h"

int ivl__evq_init(struct ivl__evq *q)
{
	int ret;

	memset(q, 0, sizeof(*q));
	atomic_init(&q->alen, 0);
	atomic_init(&q->begun, 0);
	q->efd = ivl_eventfd_new();
	if (q->efd < 0)
		return q->efd;
	ret = pthread_mutex_init(&q->lock, NULL);
	if (ret) {
		q->efd = ivl__close(q->efd);
		return -ret;
	}
	return 0;
}

void ivl__evq_fini(struct ivl__evq *q)
{
	pthread_mutex_destroy(&q->lock);
	free(q->it);
	q->it = NULL;
	q->efd = ivl__close(q->efd);
}

static struct ivl__evq_item *at(struct ivl__evq *q, size_t i)
{
	return &q->it[(q->head + i) % q->cap];
}

/* Make room for @more items; the queue is linear (head 0) afterwards. */
static int reserve(struct ivl__evq *q, size_t more)
{
	size_t cap = q->cap ? q->cap : 16, i;
	struct ivl__evq_item *it;

	if (more > SIZE_MAX / 2 - q->len)
		return -ENOMEM;
	if (q->len + more <= q->cap)
		return 0;
	while (cap < q->len + more)
		cap *= 2;
	if (cap > SIZE_MAX / sizeof(*it))
		return -ENOMEM;
	it = malloc(cap * sizeof(*it));
	if (!it)
		return -ENOMEM;
	for (i = 0; i < q->len; i++)
		it[i] = *at(q, i);
	free(q->it);
	q->it = it;
	q->cap = cap;
	q->head = 0;
	return 0;
}

static void set_len(struct ivl__evq *q, size_t len)
{
	/* Under the lock, so a concurrent push cannot ring in between and
	 * lose its wake-up: efd is readable exactly while len > 0. */
	if (len && !q->len)
		ivl_eventfd_ring(q->efd);
	else if (!len && q->len)
		ivl_eventfd_drain(q->efd, NULL);
	q->len = len;
	atomic_store_explicit(&q->alen, len, memory_order_release);
}

int ivl__evq_push(struct ivl__evq *q, enum ivl_link_event_type type, uint16_t peer, uint16_t vector,
		  uint32_t count)
{
	int ret = 0;

	pthread_mutex_lock(&q->lock);
	if (q->closed)
		goto out;
	ret = reserve(q, 1);
	if (ret < 0)
		goto out;
	*at(q, q->len) = (struct ivl__evq_item){
	    .ev = { .type = type, .peer = peer, .vector = vector, .count = count },
	    /* seq_cst: ordered after whatever the pusher did before (the
	     * peer's last ring happened before its leave was pushed). */
	    .gen = atomic_load_explicit(&q->begun, memory_order_seq_cst),
	};
	set_len(q, q->len + 1);
	if (type == IVL_LINK_DOWN)
		q->closed = true;
out:
	pthread_mutex_unlock(&q->lock);
	return ret;
}

uint32_t ivl__evq_drain_begin(struct ivl__evq *q)
{
	/* seq_cst: a push that read the old number precedes, in the single
	 * total order, every read of my vectors that follows. */
	return atomic_fetch_add_explicit(&q->begun, 1, memory_order_seq_cst) + 1;
}

void ivl__evq_drain_done(struct ivl__evq *q, uint32_t drain)
{
	q->done = drain;
}

/* A LEAVE pushed during or after the last completed drain must wait for
 * the next one: rings of that peer may not have been collected yet. */
static bool held(const struct ivl__evq *q, const struct ivl__evq_item *it)
{
	return it->ev.type == IVL_LINK_LEAVE && (int32_t)(q->done - it->gen) <= 0;
}

static size_t pop_ready(struct ivl__evq *q, struct ivl_link_event *ev, size_t max)
{
	size_t n = 0;

	while (n < max && n < q->len && !held(q, at(q, n))) {
		ev[n] = at(q, n)->ev;
		n++;
	}
	q->head = q->cap ? (q->head + n) % q->cap : 0;
	set_len(q, q->len - n);
	return n;
}

/* Is queue item @i a JOIN that a LEAVE of the same ID, between @from and
 * @i, keeps in place? */
static bool join_pinned(struct ivl__evq *q, size_t from, size_t i)
{
	uint16_t peer = at(q, i)->ev.peer;

	for (size_t j = from; j < i; j++)
		if (at(q, j)->ev.type == IVL_LINK_LEAVE && at(q, j)->ev.peer == peer)
			return true;
	return false;
}

static bool hoisted(struct ivl__evq *q, size_t first, size_t i)
{
	return at(q, i)->ev.type == IVL_LINK_JOIN && !join_pinned(q, first, i);
}

/* Insert @n doorbells at their place (see the top of this file). */
static int insert_doorbells(struct ivl__evq *q, const struct ivl_link_event *db, size_t n)
{
	size_t first, i, k = 0, len = q->len;
	struct ivl__evq_item *out;
	int ret;

	ret = reserve(q, n);
	if (ret < 0)
		return ret;
	out = malloc(q->cap * sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (first = 0; first < len; first++) {
		enum ivl_link_event_type t = at(q, first)->ev.type;

		if (t == IVL_LINK_LEAVE || t == IVL_LINK_DOWN)
			break;
		out[k++] = *at(q, first);
	}
	for (i = first; i < len; i++)
		if (hoisted(q, first, i))
			out[k++] = *at(q, i);
	for (i = 0; i < n; i++)
		out[k++] = (struct ivl__evq_item){ .ev = db[i] };
	for (i = first; i < len; i++)
		if (!hoisted(q, first, i))
			out[k++] = *at(q, i);
	free(q->it);
	q->it = out;
	q->head = 0;
	set_len(q, k);
	return 0;
}

size_t ivl__evq_take(struct ivl__evq *q, const struct ivl_link_event *db, size_t ndb,
		     struct ivl_link_event *ev, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&q->lock);
	if (ndb && insert_doorbells(q, db, ndb) < 0) {
		/* Out of memory: early doorbells are the lesser harm (a LEAVE
		 * never overtakes them). */
		n = ndb < max ? ndb : max;
		memcpy(ev, db, n * sizeof(*ev));
		for (size_t i = n; i < ndb; i++)
			if (reserve(q, 1) == 0) {
				*at(q, q->len) = (struct ivl__evq_item){ .ev = db[i] };
				set_len(q, q->len + 1);
			}
		pthread_mutex_unlock(&q->lock);
		return n;
	}
	n += pop_ready(q, ev + n, max - n);
	pthread_mutex_unlock(&q->lock);
	return n;
}

size_t ivl__evq_pop(struct ivl__evq *q, struct ivl_link_event *ev, size_t max)
{
	return ivl__evq_take(q, NULL, 0, ev, max);
}

size_t ivl__evq_len(struct ivl__evq *q)
{
	return atomic_load_explicit(&q->alen, memory_order_acquire);
}
