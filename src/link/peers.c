/* SPDX-License-Identifier: MIT */
/*
 * The sparse table of peer vector fds the backends share (see
 * link-internal.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>

#include "core/internal.h"
#include "link/link-internal.h"

/* ---- peer table ------------------------------------------------------- */

int ivl__pt_init(struct ivl__peer_table *t)
{
	memset(t, 0, sizeof(*t));
	return -pthread_rwlock_init(&t->lock, NULL);
}

static void peer_close(struct ivl__peer *p)
{
	for (unsigned v = 0; v < p->nfds; v++)
		ivl__close(p->fds[v]);
}

void ivl__pt_fini(struct ivl__peer_table *t)
{
	for (unsigned pg = 0; pg < 256; pg++) {
		struct ivl__pt_page *page =
		    atomic_load_explicit(&t->pages[pg], memory_order_relaxed);

		if (!page)
			continue;
		for (unsigned i = 0; i < IVL__PT_PAGE; i++) {
			struct ivl__peer *p = page->peer[i];
			if (p) {
				peer_close(p);
				free(p);
			}
		}
		free(page);
		atomic_store_explicit(&t->pages[pg], NULL, memory_order_relaxed);
	}
	t->count = 0;
	pthread_rwlock_destroy(&t->lock);
}

/* Under the lock. */
static struct ivl__peer *lookup(const struct ivl__peer_table *t, unsigned id)
{
	struct ivl__pt_page *page =
	    atomic_load_explicit(&t->pages[id / IVL__PT_PAGE], memory_order_relaxed);

	return page ? page->peer[id % IVL__PT_PAGE] : NULL;
}

int ivl__pt_add(struct ivl__peer_table *t, uint16_t peer, uint16_t vector, int fd)
{
	struct ivl__pt_page *page;
	struct ivl__peer *p;
	int ret;

	pthread_rwlock_wrlock(&t->lock);
	page = atomic_load_explicit(&t->pages[peer >> 8], memory_order_relaxed);
	if (!page) {
		page = calloc(1, sizeof(*page));
		if (!page) {
			ret = -ENOMEM;
			goto fail;
		}
		/* Release: pairs with the acquire in ivl__pt_vectors(). */
		atomic_store_explicit(&t->pages[peer >> 8], page, memory_order_release);
	}
	p = page->peer[peer & 0xff];
	if (vector != (p ? p->nfds : 0) || vector >= IVL_MAX_VECTORS) {
		ret = -EPROTO;
		goto fail;
	}
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p) {
			ret = -ENOMEM;
			goto fail;
		}
		page->peer[peer & 0xff] = p;
		t->count++;
	}
	p->fds[p->nfds++] = fd;
	atomic_store_explicit(&page->nvec[peer & 0xff], (uint8_t)p->nfds, memory_order_relaxed);
	ret = (int)p->nfds;
	pthread_rwlock_unlock(&t->lock);
	return ret;
fail:
	pthread_rwlock_unlock(&t->lock);
	ivl__close(fd);
	return ret;
}

int ivl__pt_remove(struct ivl__peer_table *t, uint16_t peer)
{
	struct ivl__pt_page *page;
	struct ivl__peer *p;
	int ret;

	pthread_rwlock_wrlock(&t->lock);
	p = lookup(t, peer);
	if (!p) {
		pthread_rwlock_unlock(&t->lock);
		return -ENOENT;
	}
	page = atomic_load_explicit(&t->pages[peer >> 8], memory_order_relaxed);
	atomic_store_explicit(&page->nvec[peer & 0xff], 0, memory_order_relaxed);
	page->peer[peer & 0xff] = NULL;
	t->count--;
	pthread_rwlock_unlock(&t->lock);
	/* Unreachable for readers now: close outside the lock. */
	ret = p->joined ? 1 : 0;
	peer_close(p);
	free(p);
	return ret;
}

int ivl__pt_mark_joined(struct ivl__peer_table *t, uint16_t peer, unsigned need)
{
	struct ivl__peer *p;
	int ret = 0;

	/* Only the owner writes the flag; readers of it take the read lock. */
	pthread_rwlock_wrlock(&t->lock);
	p = lookup(t, peer);
	if (p && !p->joined && p->nfds >= need && p->nfds > 0) {
		p->joined = true;
		ret = 1;
	}
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

int ivl__pt_ring(struct ivl__peer_table *t, uint16_t peer, uint16_t vector)
{
	struct ivl__peer *p;
	int ret;

	pthread_rwlock_rdlock(&t->lock);
	p = lookup(t, peer);
	if (!p)
		ret = -ENOENT;
	else if (vector >= p->nfds)
		ret = -ERANGE;
	else
		ret = ivl_eventfd_ring(p->fds[vector]);
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

int ivl__pt_list(struct ivl__peer_table *t, int skip, uint16_t *ids, size_t max)
{
	size_t n = 0;

	pthread_rwlock_rdlock(&t->lock);
	for (unsigned pg = 0; pg < 256; pg++) {
		struct ivl__pt_page *page =
		    atomic_load_explicit(&t->pages[pg], memory_order_relaxed);

		for (unsigned i = 0; page && i < IVL__PT_PAGE; i++) {
			struct ivl__peer *p = page->peer[i];
			unsigned id = pg * IVL__PT_PAGE + i;

			if (!p || !p->joined || (int)id == skip)
				continue;
			if (n < max)
				ids[n] = (uint16_t)id;
			n++;
		}
	}
	pthread_rwlock_unlock(&t->lock);
	return (int)n;
}

/* Without the lock (see struct ivl__pt_page): a peer that leaves meanwhile
 * may still be counted, as it could have left right after a locked look. */
unsigned ivl__pt_vectors(struct ivl__peer_table *t, uint16_t peer)
{
	/* Acquire: pairs with the release in ivl__pt_add(). */
	struct ivl__pt_page *page =
	    atomic_load_explicit(&t->pages[peer >> 8], memory_order_acquire);

	return page ? atomic_load_explicit(&page->nvec[peer & 0xff], memory_order_relaxed) : 0;
}

void ivl__pt_foreach(struct ivl__peer_table *t,
		     void (*fn)(void *ctx, uint16_t id, struct ivl__peer *p), void *ctx)
{
	pthread_rwlock_wrlock(&t->lock);
	for (unsigned pg = 0; pg < 256; pg++) {
		struct ivl__pt_page *page =
		    atomic_load_explicit(&t->pages[pg], memory_order_relaxed);

		for (unsigned i = 0; page && i < IVL__PT_PAGE; i++)
			if (page->peer[i])
				fn(ctx, (uint16_t)(pg * IVL__PT_PAGE + i), page->peer[i]);
	}
	pthread_rwlock_unlock(&t->lock);
}
