/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues (virtio 1.x §2.7) in a window of a shared region, with the
 * layouts of <linux/virtio_ring.h>.  Every address in a ring is a byte offset
 * into the window.  The device side reads the rings as hostile input: each
 * descriptor is copied once before it is checked (the driver may rewrite it
 * concurrently), chain walks are bounded, and any violation breaks the queue
 * for good, as a device that sets DEVICE_NEEDS_RESET.
 *
 * The driver keeps its own free list and chain lengths in private memory, so
 * a device that scribbles on the descriptor table cannot corrupt them.
 *
 * With VIRTIO_F_IN_ORDER (virtio 1.1 §2.7) the device uses buffers in the
 * order they were made available and the driver takes descriptors in table
 * order, wrapping at the end.  The driver then needs no free list and no
 * used element to know which buffer came back: the n-th used is the n-th
 * made available.  Its private arrays are indexed by avail position instead
 * of by head, and a used index past what was published breaks the queue.
 */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <linux/virtio_ring.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include <ivlink/mmio.h>
#include <ivlink/msi.h>
#include <ivlink/virtq.h>

_Static_assert(sizeof(struct vring_desc) == 16, "virtio descriptor is 16 bytes");
_Static_assert(sizeof(struct vring_used_elem) == 8, "virtio used element is 8 bytes");
_Static_assert(offsetof(struct vring_avail, ring) == 4, "avail ring after flags, idx");
_Static_assert(offsetof(struct vring_used, ring) == 4, "used ring after flags, idx");

#define MAX_INDIRECT 65535u

struct ivl_virtq {
	enum ivl_virtq_role role;
	unsigned num;
	unsigned mask; /* num - 1 */
	bool event_idx;
	bool indirect;
	bool in_order;
	int broken;
	bool notify_on; /* we asked to be notified */
	char *win;
	uint64_t win_size;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	_Atomic uint16_t *used_event;  /* in the avail area, written by the driver */
	_Atomic uint16_t *avail_event; /* in the used area, written by the device */

	/* driver */
	struct vring_desc *ind; /* indirect tables: indirect_max per head */
	unsigned indirect_max;
	bool defer_publish;	/* add leaves avail->idx to publish() */
	uint16_t avail_idx;	/* entries added */
	uint16_t published_idx; /* last value stored to avail->idx */
	uint16_t kicked_idx;	/* published_idx at the last need_notify */
	uint16_t last_used;
	uint16_t used_shadow; /* used->idx as last read */
	unsigned free_head;   /* oldest free descriptor (valid if num_free);
			       * in order: the next one in table order */
	unsigned free_tail;   /* newest free descriptor (valid if num_free) */
	unsigned num_free;
	/* By head; in order, by avail position (idx & mask) instead, and next
	 * holds the position's head. */
	uint16_t *next;	 /* private chain links (mirror of desc[].next) */
	uint16_t *ndesc; /* descriptors used by each in-flight head */
	void **tokens;

	/* device */
	uint16_t last_avail;
	uint16_t avail_shadow;	 /* avail->idx as last read */
	uint16_t used_idx;	 /* including entries not yet flushed */
	uint16_t flushed_idx;	 /* last value stored to used->idx */
	uint16_t signalled_used; /* flushed_idx at the last need_notify */
	unsigned inflight;
	uint16_t *popped; /* in order: heads popped, by used position */

	/* driver, buffer pool (ivl_virtq_pool_set()): buffer i at window
	 * offset pool_off + i * pool_size, made available in table order */
	bool pool;
	uint32_t pool_size;
	uint64_t pool_off;
};

static _Atomic uint16_t *a16(void *p)
{
	return (_Atomic uint16_t *)p;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static bool valid_num(unsigned num)
{
	return num >= 1 && num <= IVL_VIRTQ_MAX_SIZE && (num & (num - 1)) == 0;
}

/* Is [off, off+len) inside the window?  Overflow-safe. */
static bool in_window(const struct ivl_virtq *q, uint64_t off, uint64_t len)
{
	return off <= q->win_size && len <= q->win_size - off;
}

/* virtio 1.x §2.7.10: notify when the event index lies in (old, new]. */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

static int break_queue(struct ivl_virtq *q, int err, const char *why)
{
	if (!q->broken) {
		q->broken = err;
		ivl__warn("virtq: %s ring broken: %s",
			  q->role == IVL_VIRTQ_DEVICE ? "device" : "driver", why);
	}
	return err;
}

IVL_EXPORT uint64_t ivl_virtq_layout_default(unsigned num, unsigned indirect_max, uint64_t offset,
					     struct ivl_virtq_layout *out)
{
	if (!valid_num(num) || (offset & 15) || indirect_max > MAX_INDIRECT || !out)
		return 0;
	uint64_t o = offset;
	out->desc = o;
	o += 16ull * num;
	out->avail = o;
	o += 6 + 2ull * num;
	/* The used ring is written by the other side: its own cache lines. */
	o = align_up(o, 64);
	out->used = o;
	o += 6 + 8ull * num;
	o = align_up(o, 64);
	out->indirect = indirect_max ? o : 0;
	o += 16ull * num * indirect_max;
	return o - offset;
}

static int check_part(const struct ivl_virtq *q, uint64_t off, uint64_t len, unsigned align)
{
	if (!in_window(q, off, len))
		return -EFAULT;
	if (((uintptr_t)q->win + off) % align)
		return -EFAULT;
	return 0;
}

IVL_EXPORT int ivl_virtq_new(struct ivl_virtq **out, void *window, uint64_t window_size,
			     const struct ivl_virtq_opts *o)
{
	if (!out || !window || !o)
		return -EINVAL;
	*out = NULL;
	if (!valid_num(o->num) || (o->role != IVL_VIRTQ_DRIVER && o->role != IVL_VIRTQ_DEVICE) ||
	    (o->features &
	     ~(IVL_VIRTQ_F_INDIRECT_DESC | IVL_VIRTQ_F_EVENT_IDX | IVL_VIRTQ_F_IN_ORDER)) ||
	    o->indirect_max > MAX_INDIRECT)
		return -EINVAL;

	/* One block for the object and the driver's private arrays, whole
	 * cache lines of its own: the two ends of a queue in one process
	 * (threads) then never share a line of private state, which both
	 * write for every buffer. */
	bool in_order = o->features & IVL_VIRTQ_F_IN_ORDER;
	size_t arrays = o->role == IVL_VIRTQ_DRIVER
			    ? (size_t)o->num * (sizeof(void *) + 2 * sizeof(uint16_t))
			: in_order ? (size_t)o->num * sizeof(uint16_t)
				   : 0;
	struct ivl_virtq *q = ivl__zalloc_lines(sizeof(struct ivl_virtq) + arrays);
	if (!q)
		return -ENOMEM;
	q->role = o->role;
	q->num = o->num;
	q->mask = o->num - 1;
	q->event_idx = o->features & IVL_VIRTQ_F_EVENT_IDX;
	q->indirect = o->features & IVL_VIRTQ_F_INDIRECT_DESC;
	q->in_order = in_order;
	if (in_order && o->role == IVL_VIRTQ_DEVICE)
		q->popped = (uint16_t *)(q + 1);
	q->win = window;
	q->win_size = window_size;
	q->notify_on = true;

	const struct ivl_virtq_layout *l = &o->layout;
	int r = check_part(q, l->desc, 16ull * q->num, 16);
	if (!r)
		r = check_part(q, l->avail, 6 + 2ull * q->num, 2);
	if (!r)
		r = check_part(q, l->used, 6 + 8ull * q->num, 4);
	if (!r && o->role == IVL_VIRTQ_DRIVER && q->indirect && o->indirect_max) {
		r = check_part(q, l->indirect, 16ull * q->num * o->indirect_max, 16);
		q->ind = (struct vring_desc *)(q->win + l->indirect);
		q->indirect_max = o->indirect_max;
	}
	if (r) {
		free(q);
		return r;
	}
	q->desc = (struct vring_desc *)(q->win + l->desc);
	q->avail = (struct vring_avail *)(q->win + l->avail);
	q->used = (struct vring_used *)(q->win + l->used);
	q->used_event = a16(&q->avail->ring[q->num]);
	q->avail_event = a16(&q->used->ring[q->num]);
	q->defer_publish = o->role == IVL_VIRTQ_DRIVER && o->defer_publish;
	q->avail_idx = q->published_idx = q->kicked_idx = q->last_used = q->used_shadow =
	    o->start_idx;
	q->last_avail = q->avail_shadow = q->used_idx = q->flushed_idx = q->signalled_used =
	    o->start_idx;

	if (o->role == IVL_VIRTQ_DRIVER) {
		/* struct ivl_virtq's size is a multiple of 8: the tokens first */
		q->tokens = (void **)(q + 1);
		q->next = (uint16_t *)(q->tokens + q->num);
		q->ndesc = q->next + q->num;
		for (unsigned i = 0; i < q->num; i++)
			q->next[i] = (uint16_t)(i + 1);
		q->num_free = q->num;
		q->free_tail = q->num - 1;
		if (o->init) {
			memset(q->desc, 0, 16ull * q->num);
			memset(q->avail, 0, 6 + 2ull * q->num);
			memset(q->used, 0, 6 + 8ull * q->num);
			atomic_store_explicit(a16(&q->avail->idx), htole16(o->start_idx),
					      memory_order_relaxed);
			atomic_store_explicit(a16(&q->used->idx), htole16(o->start_idx),
					      memory_order_relaxed);
			atomic_store_explicit(q->used_event, htole16(o->start_idx),
					      memory_order_relaxed);
			atomic_store_explicit(q->avail_event, htole16(o->start_idx),
					      memory_order_relaxed);
			/* Publication of the initialized rings to the device is the
			 * caller's handshake (QueueReady, a doorbell, a futex). */
			atomic_thread_fence(memory_order_release);
		}
	}
	*out = q;
	return 0;
}

IVL_EXPORT void ivl_virtq_free(struct ivl_virtq *q)
{
	if (!q)
		return;
	free(q); /* the arrays live in the same block */
}

IVL_EXPORT unsigned ivl_virtq_num(const struct ivl_virtq *q)
{
	return q ? q->num : 0;
}

IVL_EXPORT int ivl_virtq_broken(const struct ivl_virtq *q)
{
	return q ? q->broken : -EINVAL;
}

/* ---- driver ---------------------------------------------------------- */

/*
 * Shared ring entries the other side only reads are written only when they
 * change.  Buffers recycled in the same order get the same descriptors,
 * avail entries and used elements again; skipping the identical store keeps
 * the cache line shared by both CPUs instead of taking it back from the
 * reader for every message.  A peer that scribbled on an entry makes it
 * differ, so it is rewritten: what the peer sees is the same either way.
 *
 * The comparison reads the shared entry field by field against values held
 * in registers, never against a struct just built on the stack: loading a
 * 16-byte struct that was stored piecewise a moment ago defeats store
 * forwarding, and the load then waits until the whole store buffer drains,
 * including the caller's payload stores that are still waiting for their
 * cache lines (perf: three quarters of ivl_virtq_add()'s samples sat on that
 * load in bench_virtq with 64-byte messages).
 */
static void put_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	const uint64_t a = htole64(addr);
	const uint32_t l = htole32(len);
	const uint16_t f = htole16(flags), n = htole16(next);
	if (d->addr != a || d->len != l || d->flags != f || d->next != n) {
		d->addr = a;
		d->len = l;
		d->flags = f;
		d->next = n;
	}
}

static void put16(uint16_t *p, uint16_t v)
{
	if (*p != v)
		*p = v;
}

/* Driver: make every added entry visible to the device. */
static void publish(struct ivl_virtq *q)
{
	if (q->published_idx == q->avail_idx)
		return;
	q->published_idx = q->avail_idx;
	/* Release: the descriptors and ring entries written by add become
	 * visible before the new index; pairs with the load-acquire of
	 * avail->idx in ivl_virtq_pop(). */
	atomic_store_explicit(a16(&q->avail->idx), htole16(q->avail_idx), memory_order_release);
}

/* Is the piece [b, b + len) inside the window [w, w + wsize), with a length
 * that fits a descriptor?  Overflow-safe. */
static inline bool piece_ok(uintptr_t w, uint64_t wsize, uintptr_t b, size_t len)
{
	return b >= w && len <= UINT32_MAX && b - w <= wsize && len <= wsize - (b - w);
}

static int piece(const struct ivl_virtq *q, const struct iovec *v, uint64_t *off)
{
	uintptr_t b = (uintptr_t)v->iov_base, w = (uintptr_t)q->win;
	if (!piece_ok(w, q->win_size, b, v->iov_len))
		return -EFAULT;
	*off = b - w;
	return 0;
}

/* Private entries, like the shared ones (put_desc()), are written only when
 * they change: buffers recycled in order find the same values, and a store
 * that need not happen does not wait in the store buffer behind the
 * payload's. */
static inline void keep_ptr(void **p, void *v)
{
	if (*p != v)
		*p = v;
}

/*
 * Driver, IN_ORDER: @n buffers of one piece, one direct descriptor each,
 * descriptors taken in table order.  The same checks, in the same order, as
 * add_ones(), whose contract this keeps.  The queue's state lives in locals
 * for the loop (stores through the private arrays may alias the object as
 * far as the compiler knows) and is stored back once.
 */
static inline __attribute__((always_inline)) unsigned add_in_order(struct ivl_virtq *q,
								   const struct iovec *bufs,
								   unsigned n, uint16_t flags,
								   void *const *tokens, int *err)
{
	const uintptr_t w = (uintptr_t)q->win;
	const uint64_t wsize = q->win_size;
	struct vring_desc *const desc = q->desc;
	uint16_t *const ring = q->avail->ring, *const heads = q->next, *const ndesc = q->ndesc;
	void **const toks = q->tokens;
	const unsigned mask = q->mask;
	unsigned head = q->free_head, nfree = q->num_free, k = 0;
	uint16_t idx = q->avail_idx;

	*err = 0;
	for (; k < n; k++) {
		const uintptr_t b = (uintptr_t)bufs[k].iov_base;
		const size_t len = bufs[k].iov_len;
		if (!tokens[k]) {
			*err = -EINVAL;
			break;
		}
		if (!piece_ok(w, wsize, b, len)) {
			*err = -EFAULT;
			break;
		}
		if (!nfree) {
			*err = -ENOSPC;
			break;
		}
		const unsigned pos = idx & mask;
		put_desc(&desc[head], b - w, (uint32_t)len, flags, 0);
		put16(&heads[pos], (uint16_t)head);
		put16(&ndesc[pos], 1);
		keep_ptr(&toks[pos], tokens[k]);
		put16(&ring[pos], htole16((uint16_t)head));
		head = (head + 1) & mask;
		nfree--;
		idx++;
	}
	q->free_head = head;
	q->num_free = nfree;
	q->avail_idx = idx;
	return k;
}

/*
 * Driver: @n buffers of one piece, one direct descriptor each (the common
 * small message), tokens[k] each.  Returns how many were added, and in *err
 * the error of the one that stopped the loop (0 if none).  (Keeping the
 * queue's fields in locals for the loop saved 4 instructions per buffer in
 * add_many but cost 24 in the one-buffer ivl_virtq_add(): not worth it.)
 */
static inline __attribute__((always_inline)) unsigned add_ones(struct ivl_virtq *q,
							       const struct iovec *bufs, unsigned n,
							       uint16_t flags, void *const *tokens,
							       int *err)
{
	unsigned k = 0;

	*err = 0;
	for (; k < n; k++) {
		uint64_t off;
		if (!tokens[k]) {
			*err = -EINVAL;
			break;
		}
		if (piece(q, &bufs[k], &off)) {
			*err = -EFAULT;
			break;
		}
		if (!q->num_free) {
			*err = -ENOSPC;
			break;
		}
		uint16_t head = (uint16_t)q->free_head;
		/* next 0: see the chain case in ivl_virtq_add() */
		put_desc(&q->desc[head], off, (uint32_t)bufs[k].iov_len, flags, 0);
		q->free_head = q->next[head];
		q->num_free--;
		q->ndesc[head] = 1;
		q->tokens[head] = tokens[k];
		put16(&q->avail->ring[q->avail_idx & q->mask], htole16(head));
		q->avail_idx++;
	}
	return k;
}

static int add_chain(struct ivl_virtq *q, const struct iovec *out, unsigned nout,
		     const struct iovec *in, unsigned nin, void *token);

IVL_EXPORT int ivl_virtq_add(struct ivl_virtq *q, const struct iovec *out, unsigned nout,
			     const struct iovec *in, unsigned nin, void *token)
{
	if (!q || q->role != IVL_VIRTQ_DRIVER || !token || (nout && !out) || (nin && !in) ||
	    q->pool)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	int r;
	if ((nout == 1 && nin == 0) || (nout == 0 && nin == 1)) {
		uint16_t head = (uint16_t)q->free_head;
		const struct iovec *v = nout ? out : in;
		uint16_t fl = nout ? 0 : VRING_DESC_F_WRITE;
		if (q->in_order ? add_in_order(q, v, 1, fl, &token, &r)
				: add_ones(q, v, 1, fl, &token, &r))
			r = head;
	} else {
		r = add_chain(q, out, nout, in, nin, token);
	}
	if (r >= 0 && !q->defer_publish)
		publish(q);
	return r;
}

IVL_EXPORT int ivl_virtq_add_many(struct ivl_virtq *q, const struct iovec *bufs, unsigned n,
				  bool writable, void *const *tokens)
{
	if (!q || q->role != IVL_VIRTQ_DRIVER || (n && (!bufs || !tokens)) || q->pool)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	int err;
	uint16_t fl = writable ? VRING_DESC_F_WRITE : 0;
	unsigned k = q->in_order ? add_in_order(q, bufs, n, fl, tokens, &err)
				 : add_ones(q, bufs, n, fl, tokens, &err);
	if (k && !q->defer_publish)
		publish(q);
	return k ? (int)k : err;
}

/* Driver: any other shape (a chain, or one indirect table).  Out of line:
 * it keeps ivl_virtq_add()'s one-piece path free of its register saves. */
static __attribute__((noinline)) int add_chain(struct ivl_virtq *q, const struct iovec *out,
					       unsigned nout, const struct iovec *in, unsigned nin,
					       void *token)
{
	if (nout > UINT16_MAX || nin > UINT16_MAX || nout + nin == 0)
		return -EINVAL;
	unsigned n = nout + nin;
	uint64_t off;
	for (unsigned i = 0; i < n; i++)
		if (piece(q, i < nout ? &out[i] : &in[i - nout], &off))
			return -EFAULT;

	bool use_ind = q->ind && n > 1 && n <= q->indirect_max;
	unsigned need = use_ind ? 1 : n;
	if (q->num_free < need)
		return -ENOSPC;

	uint16_t head = (uint16_t)q->free_head;
	if (use_ind) {
		struct vring_desc *t = q->ind + (size_t)head * q->indirect_max;
		for (unsigned i = 0; i < n; i++) {
			const struct iovec *v = i < nout ? &out[i] : &in[i - nout];
			uint16_t fl = (i >= nout ? VRING_DESC_F_WRITE : 0) |
				      (i + 1 < n ? VRING_DESC_F_NEXT : 0);
			off = (uint64_t)((const char *)v->iov_base - q->win); /* checked above */
			put_desc(&t[i], off, (uint32_t)v->iov_len, fl,
				 (uint16_t)(i + 1 < n ? i + 1 : 0));
		}
		put_desc(&q->desc[head], (uint64_t)((char *)t - q->win), (uint32_t)(16 * n),
			 VRING_DESC_F_INDIRECT, 0);
		q->free_head = q->in_order ? (head + 1) & q->mask : q->next[head];
	} else {
		unsigned i = head;
		for (unsigned k = 0; k < n; k++) {
			const struct iovec *v = k < nout ? &out[k] : &in[k - nout];
			uint16_t fl = (k >= nout ? VRING_DESC_F_WRITE : 0) |
				      (k + 1 < n ? VRING_DESC_F_NEXT : 0);
			/* In order, the chain runs through the table and
			 * wraps (virtio 1.1 §2.7.5). */
			unsigned nx = q->in_order ? (i + 1) & q->mask : q->next[i];
			off = (uint64_t)((const char *)v->iov_base - q->win); /* checked above */
			/* next only when NEXT is set: the last one's link is
			 * our free list's business, and a constant 0 lets an
			 * unchanged descriptor stay unwritten. */
			put_desc(&q->desc[i], off, (uint32_t)v->iov_len, fl,
				 k + 1 < n ? (uint16_t)nx : 0);
			i = nx;
		}
		q->free_head = i;
	}
	q->num_free -= need;
	/* Bookkeeping by head, or, in order, by avail position. */
	unsigned slot = q->in_order ? q->avail_idx & q->mask : head;
	q->ndesc[slot] = (uint16_t)need;
	q->tokens[slot] = token;
	if (q->in_order)
		q->next[slot] = head;
	put16(&q->avail->ring[q->avail_idx & q->mask], htole16(head));
	q->avail_idx++;
	return head;
}

IVL_EXPORT int ivl_virtq_publish(struct ivl_virtq *q)
{
	if (!q || q->role != IVL_VIRTQ_DRIVER)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	publish(q);
	return 0;
}

/*
 * Driver: take up to @max used buffers into tokens[] (and lens[] when not
 * NULL).  Returns how many, or the error when the first one is bad (a bad
 * one after good ones breaks the queue and ends the batch: the next call
 * returns -EIO).  The private state lives in locals for the loop: stores
 * through the token and free-list arrays may alias the object's fields as
 * far as the compiler knows.
 */
static inline __attribute__((always_inline)) int take_used(struct ivl_virtq *q, void **tokens,
							   uint32_t *lens, unsigned max)
{
	uint16_t last = q->last_used, shadow = q->used_shadow;
	unsigned n = 0;
	int err = 0;
	const char *why = NULL;

	while (n < max) {
		if (shadow == last) {
			/* Acquire: pairs with the store-release of used->idx in
			 * ivl_virtq_flush(): every element before it is
			 * complete.  The index is re-read only when we caught
			 * up, so its cache line moves once per batch rather
			 * than once per buffer. */
			shadow =
			    le16toh(atomic_load_explicit(a16(&q->used->idx), memory_order_acquire));
			if ((uint16_t)(shadow - last) > q->num) {
				err = -EPROTO, why = "used index jumped";
				break;
			}
			if (shadow == last)
				break;
		}
		struct vring_used_elem e;
		memcpy(&e, &q->used->ring[last & q->mask], sizeof(e));
		uint32_t id = le32toh(e.id);
		void *tok = id < q->num ? q->tokens[id] : NULL;
		if (!tok) {
			err = -EPROTO, why = "used id not in flight";
			break;
		}
		tokens[n] = tok;
		if (lens)
			lens[n] = le32toh(e.len);
		q->tokens[id] = NULL;
		unsigned nd = q->ndesc[id], tail = id;
		for (unsigned k = 1; k < nd; k++)
			tail = q->next[tail];
		/* Freed descriptors join the end of the free list: in-order
		 * completions then reuse heads in ring order, so avail entries
		 * (and the descriptors of buffers recycled in order) keep their
		 * values. */
		if (q->num_free)
			q->next[q->free_tail] = (uint16_t)id;
		else
			q->free_head = id;
		q->free_tail = tail;
		q->num_free += nd;
		last++;
		n++;
	}
	q->last_used = last;
	q->used_shadow = shadow;
	if (n && q->event_idx && q->notify_on)
		/* Keep the event just ahead of what we consumed; ordered by the
		 * fence in need_notify on the device side. */
		atomic_store_explicit(q->used_event, htole16(last), memory_order_relaxed);
	if (err) {
		/* Keep the last good index seen: a broken queue answers -EIO. */
		q->used_shadow = last;
		int r = break_queue(q, err, why);
		return n ? (int)n : r;
	}
	return (int)n;
}

/*
 * Driver, IN_ORDER: the n-th buffer used is the n-th made available, so
 * used->idx alone says which came back, and no used element is read unless
 * the caller wants lengths: then every element must name its buffer's head
 * (a device may write only one element per batch, virtio 1.1 §2.7.8, but
 * the lengths of the others are then lost; ask such a device for none).
 * A used index beyond what was published, or a length asked of an element
 * that names another head, breaks the queue.  The token verbs and the
 * buffer pool share the three steps below.
 */

/* How many used buffers are there to take (used->idx re-read only when
 * every one seen was taken), or -EPROTO. */
static inline int in_order_ready(struct ivl_virtq *q)
{
	const uint16_t last = q->last_used;
	if (q->used_shadow == last) {
		/* Acquire: pairs with the store-release of used->idx in
		 * ivl_virtq_flush(). */
		uint16_t shadow =
		    le16toh(atomic_load_explicit(a16(&q->used->idx), memory_order_acquire));
		if ((uint16_t)(shadow - last) > (uint16_t)(q->published_idx - last))
			return break_queue(q, -EPROTO, "used index past the buffers published");
		q->used_shadow = shadow;
	}
	return (uint16_t)(q->used_shadow - last);
}

/* The length the device wrote into the buffer at used position @pos, which
 * must be @head's; false if its element names another head. */
static inline bool in_order_len(const struct ivl_virtq *q, unsigned pos, unsigned head,
				uint32_t *len)
{
	struct vring_used_elem e;
	memcpy(&e, &q->used->ring[pos], sizeof(e));
	if (le32toh(e.id) != head)
		return false;
	*len = le32toh(e.len);
	return true;
}

/* @k of the @n buffers there were taken: move on, keep the event index just
 * ahead, and break the queue if an element stopped them early. */
static inline int in_order_took(struct ivl_virtq *q, unsigned k, unsigned n)
{
	q->last_used = (uint16_t)(q->last_used + k);
	if (k && q->event_idx && q->notify_on)
		atomic_store_explicit(q->used_event, htole16(q->last_used), memory_order_relaxed);
	if (k == n)
		return (int)k;
	q->used_shadow = q->last_used;
	int r = break_queue(q, -EPROTO, "used element out of order");
	return k ? (int)k : r;
}

static inline __attribute__((always_inline)) int take_in_order(struct ivl_virtq *q, void **tokens,
							       uint32_t *lens, unsigned max)
{
	int ready = in_order_ready(q);
	if (ready < 0)
		return ready;
	const unsigned n = (unsigned)ready < max ? (unsigned)ready : max;
	const uint16_t last = q->last_used;
	unsigned k = 0, nfree = q->num_free;
	for (; k < n; k++) {
		const unsigned pos = (uint16_t)(last + k) & q->mask;
		if (lens && !in_order_len(q, pos, q->next[pos], &lens[k]))
			break;
		tokens[k] = q->tokens[pos];
		nfree += q->ndesc[pos];
	}
	q->num_free = nfree;
	return in_order_took(q, k, n);
}

IVL_EXPORT int ivl_virtq_get_used(struct ivl_virtq *q, void **token, uint32_t *len)
{
	if (!q || q->role != IVL_VIRTQ_DRIVER || !token || q->pool)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	return q->in_order ? take_in_order(q, token, len, 1) : take_used(q, token, len, 1);
}

IVL_EXPORT int ivl_virtq_get_used_many(struct ivl_virtq *q, void **tokens, uint32_t *lens,
				       unsigned max)
{
	if (!q || q->role != IVL_VIRTQ_DRIVER || (max && !tokens) || q->pool)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	return q->in_order ? take_in_order(q, tokens, lens, max) : take_used(q, tokens, lens, max);
}

/* ---- driver: a pool of fixed buffers ----------------------------------- */

IVL_EXPORT int ivl_virtq_pool_set(struct ivl_virtq *q, uint64_t offset, uint32_t size)
{
	if (!q || q->role != IVL_VIRTQ_DRIVER || !q->in_order || !size)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	/* Nothing in flight, nothing added: the pool starts a fresh lap. */
	if (q->pool || q->num_free != q->num || q->avail_idx != q->last_used)
		return -EBUSY;
	if ((uint64_t)size > UINT64_MAX / q->num || !in_window(q, offset, (uint64_t)size * q->num))
		return -EFAULT;
	q->pool = true;
	q->pool_off = offset;
	q->pool_size = size;
	return 0;
}

IVL_EXPORT int ivl_virtq_pool_room(const struct ivl_virtq *q, unsigned *next)
{
	if (!q || !q->pool)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	if (next)
		*next = q->free_head;
	return (int)q->num_free;
}

IVL_EXPORT int ivl_virtq_pool_add(struct ivl_virtq *q, const uint32_t *lens, unsigned n,
				  bool writable)
{
	if (!q || !q->pool)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	struct vring_desc *const desc = q->desc;
	uint16_t *const ring = q->avail->ring;
	const unsigned mask = q->mask;
	const uint16_t fl = writable ? VRING_DESC_F_WRITE : 0;
	unsigned head = q->free_head, k = 0;
	uint16_t idx = q->avail_idx;
	int err = 0;

	for (; k < n; k++) {
		uint32_t len = lens ? lens[k] : q->pool_size;
		if (len > q->pool_size) {
			err = -EINVAL;
			break;
		}
		if (k == q->num_free) {
			err = -ENOSPC;
			break;
		}
		/* The buffer is the descriptor's: no token, no private entry. */
		put_desc(&desc[head], q->pool_off + (uint64_t)head * q->pool_size, len, fl, 0);
		put16(&ring[idx & mask], htole16((uint16_t)head));
		head = (head + 1) & mask;
		idx++;
	}
	q->free_head = head;
	q->num_free -= k;
	q->avail_idx = idx;
	if (k && !q->defer_publish)
		publish(q);
	return k ? (int)k : err;
}

IVL_EXPORT int ivl_virtq_pool_get_used(struct ivl_virtq *q, unsigned *first, uint32_t *lens,
				       unsigned max)
{
	if (!q || !q->pool)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	int ready = in_order_ready(q);
	if (ready < 0)
		return ready;
	const unsigned n = (unsigned)ready < max ? (unsigned)ready : max;
	/* Each buffer in flight took the next descriptor: the oldest is as
	 * many behind the next free one as there are in flight. */
	const unsigned oldest = (q->free_head - (uint16_t)(q->avail_idx - q->last_used)) & q->mask;
	unsigned k = lens ? 0 : n;
	for (; k < n; k++)
		if (!in_order_len(q, (uint16_t)(q->last_used + k) & q->mask, (oldest + k) & q->mask,
				  &lens[k]))
			break;
	if (first)
		*first = oldest;
	q->num_free += k;
	return in_order_took(q, k, n);
}

/* ---- both roles: notification suppression ---------------------------- */

IVL_EXPORT int ivl_virtq_need_notify(struct ivl_virtq *q)
{
	if (!q)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	uint16_t old, cur;
	if (q->role == IVL_VIRTQ_DRIVER) {
		publish(q); /* a kick announces what the device can see */
		old = q->kicked_idx;
		cur = q->kicked_idx = q->published_idx;
	} else {
		old = q->signalled_used;
		cur = q->signalled_used = q->flushed_idx;
	}
	if (old == cur)
		return 0; /* nothing published since the last answer */
	/* Full fence: our index store (add / flush) must be globally visible
	 * before we read the peer's suppression state, and the peer's
	 * enable_notify fences between its state store and its index re-check;
	 * one of the two sides always sees the other (virtio 1.x §2.7.10). */
	atomic_thread_fence(memory_order_seq_cst);
	if (q->event_idx) {
		_Atomic uint16_t *ev = q->role == IVL_VIRTQ_DRIVER ? q->avail_event : q->used_event;
		uint16_t e = le16toh(atomic_load_explicit(ev, memory_order_relaxed));
		return need_event(e, cur, old);
	}
	uint16_t fl = le16toh(atomic_load_explicit(
	    a16(q->role == IVL_VIRTQ_DRIVER ? &q->used->flags : &q->avail->flags),
	    memory_order_relaxed));
	return q->role == IVL_VIRTQ_DRIVER ? !(fl & VRING_USED_F_NO_NOTIFY)
					   : !(fl & VRING_AVAIL_F_NO_INTERRUPT);
}

IVL_EXPORT int ivl_virtq_enable_notify(struct ivl_virtq *q)
{
	if (!q)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	bool drv = q->role == IVL_VIRTQ_DRIVER;
	q->notify_on = true;
	if (q->event_idx)
		atomic_store_explicit(drv ? q->used_event : q->avail_event,
				      htole16(drv ? q->last_used : q->last_avail),
				      memory_order_relaxed);
	else
		atomic_store_explicit(a16(drv ? &q->avail->flags : &q->used->flags), 0,
				      memory_order_relaxed);
	/* Full fence: pairs with the fence in the peer's need_notify (see
	 * there): the request above is visible before we re-check the index. */
	atomic_thread_fence(memory_order_seq_cst);
	uint16_t idx = le16toh(
	    atomic_load_explicit(a16(drv ? &q->used->idx : &q->avail->idx), memory_order_acquire));
	return idx != (drv ? q->last_used : q->last_avail);
}

IVL_EXPORT void ivl_virtq_disable_notify(struct ivl_virtq *q)
{
	if (!q || q->broken)
		return;
	q->notify_on = false;
	if (q->event_idx)
		return; /* the event index simply stays behind */
	bool drv = q->role == IVL_VIRTQ_DRIVER;
	atomic_store_explicit(a16(drv ? &q->avail->flags : &q->used->flags),
			      htole16(drv ? VRING_AVAIL_F_NO_INTERRUPT : VRING_USED_F_NO_NOTIFY),
			      memory_order_relaxed);
}

/* ---- device ---------------------------------------------------------- */

/* Walk the chain at @head, whose descriptor the caller already copied to
 * @first; fill e->iov up to iov_max but validate it whole.  Returns 0,
 * -ENOBUFS (valid but too long for the caller), or a hostile-ring error (the
 * caller breaks the queue). */
static __attribute__((noinline)) int walk(struct ivl_virtq *q, uint16_t head,
					  const struct vring_desc *first, struct ivl_virtq_elem *e,
					  const char **why)
{
	/* Bytes, not descriptors: an indirect table may be misaligned. */
	const char *table = (const char *)q->desc;
	unsigned tnum = q->num, i = head, count = 0, n = 0;
	bool indirect = false;
	uint64_t total = 0;

	e->head = head;
	e->out_num = e->in_num = 0;
	e->out_len = e->in_len = 0;
	for (;;) {
		struct vring_desc d;
		if (++count > tnum) {
			*why =
			    indirect ? "indirect chain longer than its table" : "descriptor loop";
			return -ELOOP;
		}
		/* One copy: the driver may rewrite the descriptor meanwhile. */
		if (first) {
			d = *first;
			first = NULL;
		} else {
			memcpy(&d, table + 16 * (size_t)i, sizeof(d));
		}
		uint64_t addr = le64toh(d.addr);
		uint32_t len = le32toh(d.len);
		uint16_t fl = le16toh(d.flags);

		if (fl & VRING_DESC_F_INDIRECT) {
			*why = "bad indirect descriptor";
			if (!q->indirect || indirect || (fl & VRING_DESC_F_NEXT))
				return -EPROTO;
			if (len == 0 || len % 16)
				return -EPROTO;
			if (!in_window(q, addr, len)) {
				*why = "indirect table outside the window";
				return -EFAULT;
			}
			table = q->win + addr;
			tnum = len / 16;
			indirect = true;
			count = 0;
			i = 0;
			continue;
		}
		if (!in_window(q, addr, len)) {
			*why = "buffer outside the window";
			return -EFAULT;
		}
		if (fl & VRING_DESC_F_WRITE) {
			e->in_num++;
			e->in_len += len;
		} else {
			if (e->in_num) {
				*why = "readable descriptor after a writable one";
				return -EPROTO;
			}
			e->out_num++;
			e->out_len += len;
		}
		total += len;
		if (total > UINT32_MAX) {
			*why = "chain length overflows";
			return -EMSGSIZE;
		}
		if (n < e->iov_max) {
			e->iov[n].iov_base = q->win + addr;
			e->iov[n].iov_len = len;
		}
		n++;
		if (!(fl & VRING_DESC_F_NEXT))
			break;
		i = le16toh(d.next);
		if (i >= tnum) {
			*why = "next index out of range";
			return -ERANGE;
		}
	}
	return n > e->iov_max ? -ENOBUFS : 0;
}

/*
 * Device, one chain per call: start fetching the buffer of an entry a few
 * places ahead, so that its cache-line transfer from the driver's CPU
 * overlaps the caller's work on this one (the caller almost always reads what
 * it pops).  (A batch prefetches each chain's buffer as it pops it: the
 * caller reads them only after the whole batch is popped.)  Only a hint: the
 * entry and its descriptor are read again, copied and checked when popped;
 * nothing read here is trusted or kept, and a prefetch never faults.
 * @last: the next entry to pop; @shadow: avail->idx as last read.
 */
#define PREFETCH_AHEAD 4u
static inline void prefetch_ahead(const struct ivl_virtq *q, uint16_t last, uint16_t shadow)
{
	/* Only in the steady state of a batch: fewer instructions than
	 * clamping the distance, and the last few of a batch need none. */
	if ((uint16_t)(shadow - last) < PREFETCH_AHEAD)
		return;
	uint16_t h = le16toh(
	    *(volatile uint16_t *)&q->avail->ring[(uint16_t)(last + PREFETCH_AHEAD - 1) & q->mask]);
	if (h >= q->num)
		return;
	uint64_t addr = le64toh(((volatile struct vring_desc *)q->desc)[h].addr);
	if (addr < q->win_size)
		__builtin_prefetch(q->win + addr);
}

/*
 * Device: pop up to @max chains into elems[0..].  The one implementation of
 * ivl_virtq_pop() (max 1) and ivl_virtq_pop_many(): every chain gets the
 * same checks, in the same order, whatever the batch.  Returns how many were
 * popped; when one fails, the error of the first, else the count of the
 * good ones before it, whose chains stay popped (the caller owns them as
 * from pop).  A hostile-ring error breaks the queue (the next call returns
 * -EIO); -ENOBUFS and -EINVAL (an element without room) consume nothing and
 * leave the queue healthy.  The queue's indices live in locals for the loop:
 * stores into the elements may alias the object as far as the compiler
 * knows.
 */
static inline __attribute__((always_inline)) int
take_avail(struct ivl_virtq *q, struct ivl_virtq_elem *elems, unsigned max)
{
	uint16_t last = q->last_avail, shadow = q->avail_shadow;
	unsigned n = 0;
	int err = 0;
	const char *why = "";

	while (n < max) {
		struct ivl_virtq_elem *e = &elems[n];
		if (e->iov_max && !e->iov) {
			err = -EINVAL;
			break;
		}
		if (shadow == last) {
			/* Acquire: pairs with the store-release of avail->idx in
			 * publish(): every ring entry and descriptor before it is
			 * written.  Re-read only when caught up (one cache-line
			 * move per batch). */
			uint16_t aidx = le16toh(
			    atomic_load_explicit(a16(&q->avail->idx), memory_order_acquire));
			if ((uint16_t)(aidx - last) > q->num) {
				err = -EOVERFLOW, why = "avail index jumped past the ring size";
				break;
			}
			shadow = aidx;
			if (aidx == last)
				break;
		}
		uint16_t head = le16toh(*(volatile uint16_t *)&q->avail->ring[last & q->mask]);
		if (head >= q->num) {
			err = -ERANGE, why = "head index out of range";
			break;
		}
		/* One copy: the driver may rewrite the descriptor meanwhile. */
		struct vring_desc d;
		memcpy(&d, &q->desc[head], sizeof(d));
		uint16_t fl = le16toh(d.flags);
		if (!(fl & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) && e->iov_max) {
			/* A chain of one direct descriptor (most small messages):
			 * the checks walk() makes for it, without the walk.  Its
			 * length is 32 bits, so the sum cannot overflow. */
			uint64_t addr = le64toh(d.addr);
			uint32_t len = le32toh(d.len);
			if (!in_window(q, addr, len)) {
				err = -EFAULT, why = "buffer outside the window";
				break;
			}
			bool wr = fl & VRING_DESC_F_WRITE;
			e->head = head;
			e->out_num = !wr;
			e->in_num = wr;
			e->out_len = wr ? 0 : len;
			e->in_len = wr ? len : 0;
			e->iov[0].iov_base = q->win + addr;
			e->iov[0].iov_len = len;
			/* A batch: start the buffer's transfer now, while the
			 * rest of the batch is popped (its address is checked;
			 * a hint, no extra read).  One at a time: see
			 * prefetch_ahead(). */
			if (max > 1)
				__builtin_prefetch(q->win + addr);
		} else {
			int r = walk(q, head, &d, e, &why);
			if (r < 0) {
				err = r;
				break;
			}
		}
		/* In order, the chain popped at this avail position must be
		 * pushed at the same used position (put_used() checks). */
		if (q->popped)
			q->popped[last & q->mask] = head;
		last++;
		n++;
		if (max == 1)
			prefetch_ahead(q, last, shadow);
	}
	q->last_avail = last;
	q->avail_shadow = shadow;
	q->inflight += n;
	if (n && q->event_idx && q->notify_on)
		/* Ordered against the driver by the fences of need_notify /
		 * enable_notify; a stale value only costs an extra kick. */
		atomic_store_explicit(q->avail_event, htole16(last), memory_order_relaxed);
	if (err) {
		if (err != -ENOBUFS && err != -EINVAL)
			err = break_queue(q, err, why);
		return n ? (int)n : err;
	}
	return (int)n;
}

IVL_EXPORT int ivl_virtq_pop(struct ivl_virtq *q, struct ivl_virtq_elem *e)
{
	/* An element with iov_max but no iov: -EINVAL from take_avail(). */
	if (!q || q->role != IVL_VIRTQ_DEVICE || !e)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	return take_avail(q, e, 1);
}

IVL_EXPORT int ivl_virtq_pop_many(struct ivl_virtq *q, struct ivl_virtq_elem *elems, unsigned max)
{
	if (!q || q->role != IVL_VIRTQ_DEVICE || (max && !elems))
		return -EINVAL;
	if (q->broken)
		return -EIO;
	return take_avail(q, elems, max);
}

/*
 * Device: record @n chains as used, heads[k] with lens[k] bytes written (0
 * for every one when @lens is NULL).  The one implementation of
 * ivl_virtq_push() (n 1) and ivl_virtq_push_many().  Returns how many were
 * recorded; when one fails (-EINVAL: head >= num, more pushes than popped,
 * or, with IN_ORDER, not the oldest chain popped and not yet pushed),
 * -EINVAL if it is the first, else the count of those before it.
 */
static inline __attribute__((always_inline)) int
put_used(struct ivl_virtq *q, const uint16_t *heads, const uint32_t *lens, unsigned n)
{
	struct vring_used_elem *ring = q->used->ring;
	uint16_t idx = q->used_idx;
	unsigned inflight = q->inflight, k = 0;

	for (; k < n; k++) {
		if (heads[k] >= q->num || inflight == 0 ||
		    (q->popped && heads[k] != q->popped[idx & q->mask]))
			break;
		const uint32_t id = htole32(heads[k]), l = htole32(lens ? lens[k] : 0);
		struct vring_used_elem *u = &ring[idx & q->mask];
		if (u->id != id || u->len != l) { /* see put_desc() */
			u->id = id;
			u->len = l;
		}
		idx++;
		inflight--;
	}
	q->used_idx = idx;
	q->inflight = inflight;
	return k || !n ? (int)k : -EINVAL;
}

IVL_EXPORT int ivl_virtq_push(struct ivl_virtq *q, uint16_t head, uint32_t len)
{
	if (!q || q->role != IVL_VIRTQ_DEVICE)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	int r = put_used(q, &head, &len, 1);
	return r < 0 ? r : 0;
}

IVL_EXPORT int ivl_virtq_push_many(struct ivl_virtq *q, const uint16_t *heads, const uint32_t *lens,
				   unsigned n)
{
	if (!q || q->role != IVL_VIRTQ_DEVICE || (n && !heads))
		return -EINVAL;
	if (q->broken)
		return -EIO;
	return put_used(q, heads, lens, n);
}

IVL_EXPORT int ivl_virtq_flush(struct ivl_virtq *q)
{
	if (!q || q->role != IVL_VIRTQ_DEVICE)
		return -EINVAL;
	if (q->broken)
		return -EIO;
	if (q->flushed_idx == q->used_idx)
		return 0;
	q->flushed_idx = q->used_idx;
	/* Release: the used elements and the data written into the buffers
	 * are visible before the index; pairs with the load-acquire in
	 * ivl_virtq_get_used(). */
	atomic_store_explicit(a16(&q->used->idx), htole16(q->used_idx), memory_order_release);
	return 0;
}
