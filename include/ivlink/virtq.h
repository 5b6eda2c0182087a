/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues (virtio 1.x, the layouts of <linux/virtio_ring.h>)
 * inside a *window* of a shared region (docs/virtio.md).  Ring and buffer
 * addresses are byte offsets into the window; every one is checked.  Driver
 * verbs: add, need_notify (kick), get_used.  Device verbs: pop, push, flush,
 * need_notify.  add, get_used, pop and push have batch forms (_many).  The
 * device side treats the rings as hostile.
 *
 * Thread safety: each object is used by one thread at a time.  The two ends
 * of a virtqueue (an ivl_virtq in the driver role and one in the device role
 * on the same memory) may run in different threads or processes.
 */
#ifndef IVLINK_VIRTQ_H
#define IVLINK_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ivl_link;

#define IVL_VIRTQ_MAX_SIZE 32768u

/* Feature bits of a ring (the virtio bit numbers, as a mask). */
#define IVL_VIRTQ_F_INDIRECT_DESC (1ull << 28) /* VIRTIO_RING_F_INDIRECT_DESC */
#define IVL_VIRTQ_F_EVENT_IDX (1ull << 29)     /* VIRTIO_RING_F_EVENT_IDX */
/* VIRTIO_F_IN_ORDER: the device uses buffers in the order they were made
 * available; the driver takes descriptors in table order.  Driver: no free
 * list, and used elements are read only for lengths (see
 * ivl_virtq_get_used_many()).  Device: ivl_virtq_push() must name the
 * oldest chain popped and not yet pushed. */
#define IVL_VIRTQ_F_IN_ORDER (1ull << 35)

/* Where the parts of a ring live: byte offsets into the window. */
struct ivl_virtq_layout {
	uint64_t desc;	   /* descriptor table, 16 * num, 16-byte aligned */
	uint64_t avail;	   /* driver area, 6 + 2 * num, 2-byte aligned */
	uint64_t used;	   /* device area, 6 + 8 * num, 4-byte aligned */
	uint64_t indirect; /* driver only: num tables of indirect_max
			    * descriptors (0 if indirect_max is 0) */
};

/*
 * The default layout of a ring of @num entries starting at window offset
 * @offset (16-byte aligned): descriptors, avail, then used and the indirect
 * tables each on their own 64-byte cache line.  Returns the total bytes, or
 * 0 if @num is not a power of two in 1..32768 or @offset is misaligned.
 */
uint64_t ivl_virtq_layout_default(unsigned num, unsigned indirect_max, uint64_t offset,
				  struct ivl_virtq_layout *out);

enum ivl_virtq_role {
	IVL_VIRTQ_DRIVER = 1, /* adds buffers, gets them back */
	IVL_VIRTQ_DEVICE,     /* pops chains, pushes them used */
};

struct ivl_virtq_opts {
	enum ivl_virtq_role role;
	unsigned num;	   /* power of two, 1..32768 */
	uint64_t features; /* IVL_VIRTQ_F_* negotiated */
	struct ivl_virtq_layout layout;
	unsigned indirect_max; /* driver: descriptors per indirect
				* table (0: never use indirect) */
	uint16_t start_idx;    /* the free-running index both sides
				* start from (0 normally; tests force
				* values near 65535) */
	bool init;	       /* driver: zero the rings and write the
				* start index (do it before the device
				* attaches, as before QueueReady) */
	bool defer_publish;    /* driver: ivl_virtq_add() does not store
				* avail->idx; ivl_virtq_publish() or
				* ivl_virtq_need_notify() does, once for
				* a whole batch of adds */
};

struct ivl_virtq;

/*
 * Attach to a ring in @window (@window_size bytes).  Checks the layout: size,
 * alignment, every part inside the window.  The device role writes nothing
 * at attach.
 * Errors: -EINVAL (bad num, features, role, NULL argument), -EFAULT
 * (layout outside the window or misaligned), -ENOMEM.  @window is
 * borrowed (it must stay mapped until ivl_virtq_free()); *out is the
 * caller's.
 */
int ivl_virtq_new(struct ivl_virtq **out, void *window, uint64_t window_size,
		  const struct ivl_virtq_opts *opts);
/* NULL is a no-op. */
void ivl_virtq_free(struct ivl_virtq *q);

unsigned ivl_virtq_num(const struct ivl_virtq *q);
/* Returns 0 if healthy, else the (negative) error that broke the queue
 * (-EINVAL for NULL).  A broken
 * queue answers every verb with -EIO; like DEVICE_NEEDS_RESET, only a new
 * ivl_virtq on re-initialized memory recovers. */
int ivl_virtq_broken(const struct ivl_virtq *q);

/*
 * Driver: expose a buffer made of @nout device-readable then @nin
 * device-writable pieces; every iov_base must point into the window.  Uses
 * one indirect table when INDIRECT_DESC is negotiated, indirect_max > 0 and
 * 1 < nout + nin <= indirect_max, else a chain of direct descriptors.
 * @token (not NULL) comes back from ivl_virtq_get_used().  The avail index is
 * published at once (store-release), unless the queue was made with
 * defer_publish: then the device sees the buffer after ivl_virtq_publish()
 * or ivl_virtq_need_notify().  Returns the index of the chain's head
 * descriptor (>= 0; 0 is a success too).
 * Errors: -EINVAL (no pieces, NULL token, wrong role), -EFAULT (a piece
 * outside the window), -ENOSPC (not enough free descriptors), -EIO (broken).
 */
int ivl_virtq_add(struct ivl_virtq *q, const struct iovec *out, unsigned nout,
		  const struct iovec *in, unsigned nin, void *token);
/*
 * Driver: ivl_virtq_add() for @n buffers of one piece each (bufs[i], all
 * device-readable, or all device-writable when @writable), token tokens[i]
 * (none NULL), with the checks of ivl_virtq_add() for each, in one call: the
 * per-call work is paid once per batch.  Publishes as ivl_virtq_add() does
 * (at once, or deferred).  Returns how many were added (they stop at the
 * first that fails), or that one's error when it is the first: -EINVAL,
 * -EFAULT, -ENOSPC, -EIO.  @bufs and @tokens are borrowed for the call.
 */
int ivl_virtq_add_many(struct ivl_virtq *q, const struct iovec *bufs, unsigned n, bool writable,
		       void *const *tokens);
/*
 * Driver: take one used buffer.  Returns 1 with *token and *len (bytes the
 * device wrote), 0 if none, or -errno: -EPROTO when the device returned an
 * id that is not in flight or a used index that jumps too far (the queue
 * breaks), -EIO (broken).  @len may be NULL.  With IN_ORDER, a used index
 * past what was published breaks the queue, and when @len is asked for, so
 * does a used element that does not name this buffer's head (a device that
 * writes one element per batch, as virtio allows, must be asked for none).
 */
int ivl_virtq_get_used(struct ivl_virtq *q, void **token, uint32_t *len);
/*
 * Driver: ivl_virtq_get_used() for up to @max buffers in one call: tokens[i]
 * and, when @lens is not NULL, lens[i].  Returns how many (0 if none), or
 * the error of the first (-EPROTO breaks the queue, -EIO when broken); a bad
 * used entry after good ones ends the batch with the good ones and breaks
 * the queue (the next call returns -EIO).
 */
int ivl_virtq_get_used_many(struct ivl_virtq *q, void **tokens, uint32_t *lens, unsigned max);
/*
 * Driver, a pool of fixed buffers (IN_ORDER only): buffer i of the pool is
 * the @size bytes at window offset @offset + i * @size, for i in 0..num-1,
 * and always goes out through descriptor i.  Buffers are made available in
 * table order and, the device using them in order, come back in the same
 * order, so neither side of the driver names them: no iovec, no token, no
 * free list; ivl_virtq_pool_room() says which is next.  For small
 * messages this costs the driver about what a raw ring costs; the device
 * sees ordinary descriptors and checks them all as usual.
 *
 * ivl_virtq_pool_set: on a driver queue with IN_ORDER negotiated, nothing
 * added yet or everything back.  From then on the queue is a pool: the
 * token verbs (add, add_many, get_used, get_used_many) answer -EINVAL.
 * Errors: -EINVAL (NULL, device role, no IN_ORDER, size 0), -EBUSY (buffers
 * in flight, or already a pool), -EFAULT (the pool outside the window),
 * -EIO (broken).
 */
int ivl_virtq_pool_set(struct ivl_virtq *q, uint64_t offset, uint32_t size);
/* Pool: returns how many buffers are free (>= 0), and in *next (if not
 * NULL) the index of the first of them; the free ones are *next, *next + 1,
 * ... modulo num.  Errors: -EINVAL (not a pool), -EIO (broken). */
int ivl_virtq_pool_room(const struct ivl_virtq *q, unsigned *next);
/*
 * Pool: make the next @n free buffers available, in order, device-readable
 * (or device-writable when @writable), lens[k] bytes of buffer k (at most
 * the pool's size; @lens NULL: the whole buffer each).  Publishes as
 * ivl_virtq_add() does (at once, or deferred).  Returns how many were
 * added (they stop at the first that fails), or that one's error when it
 * is the first: -EINVAL (not a pool, a length above the size), -ENOSPC
 * (no free buffer), -EIO.
 */
int ivl_virtq_pool_add(struct ivl_virtq *q, const uint32_t *lens, unsigned n, bool writable);
/*
 * Pool: take back up to @max used buffers.  Returns how many (0 if none),
 * the index of the first in *first (if not NULL; the others follow it
 * modulo num) and, when @lens is not NULL, the bytes the device wrote into
 * each (then every used element must name its buffer, as for
 * ivl_virtq_get_used() with IN_ORDER).  Errors: -EPROTO (a used index past
 * what was published, or an element naming another buffer when lengths are
 * asked for: the queue breaks; good ones before a bad element are returned
 * first), -EINVAL (not a pool), -EIO (broken).
 */
int ivl_virtq_pool_get_used(struct ivl_virtq *q, unsigned *first, uint32_t *lens, unsigned max);

/*
 * Driver: store-release avail->idx so that the device sees every buffer
 * added so far (needed only with defer_publish; a no-op when nothing is
 * new).  One store per batch instead of one per add: the device, polling
 * the index, pulls its cache line once per batch.  Returns 0, -EINVAL
 * (wrong role), -EIO (broken).
 */
int ivl_virtq_publish(struct ivl_virtq *q);

/*
 * Both roles: must the other side be notified about what was published
 * since the last call?  Driver: a kick after add (honours avail_event /
 * VRING_USED_F_NO_NOTIFY); publishes deferred adds first.  Device: an
 * interrupt after flush (honours used_event / VRING_AVAIL_F_NO_INTERRUPT).
 * Returns 1, 0, or -EIO.
 */
int ivl_virtq_need_notify(struct ivl_virtq *q);
/*
 * Both roles: ask (enable) or stop asking (disable) to be notified.  Enable
 * Returns 1 when work already arrived since (the caller must process it
 * rather than sleep), 0 otherwise, or -EIO (broken), -EINVAL (NULL).  With EVENT_IDX, enable arms
 * the event index at the next entry and disable is a no-op.
 */
int ivl_virtq_enable_notify(struct ivl_virtq *q);
void ivl_virtq_disable_notify(struct ivl_virtq *q);

/*
 * need_notify, and when it says so, ring @vector of @peer on @link.
 * Returns 1 if rung, 0 if suppressed, or -errno from either (-EINVAL for
 * a NULL @link).  @link is borrowed.
 */
int ivl_virtq_notify_link(struct ivl_virtq *q, struct ivl_link *link, uint16_t peer,
			  uint16_t vector);

/* A popped chain.  The caller provides iov[iov_max]; pop fills the
 * device-readable pieces first (out_num) then the writable ones (in_num),
 * each pointing into the window.  The element is plain caller memory. */
struct ivl_virtq_elem {
	uint16_t head;
	unsigned out_num;
	unsigned in_num;
	uint64_t out_len; /* sum of the readable lengths */
	uint64_t in_len;  /* sum of the writable lengths */
	struct iovec *iov;
	unsigned iov_max;
};

/*
 * Device: take the next available chain.  Returns 1 (popped), 0 (nothing
 * available), or -errno.  -ENOBUFS: the chain has more pieces than iov_max
 * (nothing consumed, the queue stays healthy).  Hostile rings break the queue:
 *   -EOVERFLOW  avail idx moved more than num past the last seen entry
 *   -ERANGE     a head or next index >= num
 *   -ELOOP      a chain longer than num, or an indirect chain longer than
 *               its table
 *   -EFAULT     an address/length outside the window (or wrapping)
 *   -EMSGSIZE   the lengths of one chain sum beyond 2^32 - 1
 *   -EPROTO     INDIRECT without the feature, indirect inside indirect,
 *               INDIRECT together with NEXT, a table length that is 0 or not
 *               a multiple of 16, a readable piece after a writable one
 *   -EIO        already broken
 */
int ivl_virtq_pop(struct ivl_virtq *q, struct ivl_virtq_elem *e);
/*
 * Device: ivl_virtq_pop() for up to @max chains in one call, into elems[0],
 * elems[1], ... (each element with its own iov / iov_max, filled as by pop).
 * Every chain gets exactly pop's checks (it is the same code: pop is this
 * verb with @max 1); the per-call work is paid once per batch, and with
 * EVENT_IDX avail_event is stored once, at the end.  Returns how many were
 * popped (0 if none), or, when the first chain fails, its error (those of
 * ivl_virtq_pop(), or -EINVAL for an element with iov_max but no iov).
 * A chain that fails after good ones ends the batch: the call returns the
 * good ones, which are popped and the caller's as from ivl_virtq_pop(); if
 * the failure was a hostile ring (any error but -ENOBUFS and -EINVAL), the
 * queue is broken as pop breaks it, so the next call returns -EIO and those
 * chains can no longer be pushed (as for chains popped one by one before a
 * bad one); after -ENOBUFS or -EINVAL nothing of the failing chain is
 * consumed and the next call meets it first.  @elems is borrowed for the
 * call; the iovecs point into the window.
 */
int ivl_virtq_pop_many(struct ivl_virtq *q, struct ivl_virtq_elem *elems, unsigned max);
/* Device: record chain @head as used with @len bytes written; not visible
 * to the driver before ivl_virtq_flush().  Errors: -EINVAL (NULL, driver
 * role, head >= num, or more pushes than popped; with IN_ORDER, a head
 * that is not the oldest chain popped and not yet pushed), -EIO.  Without
 * IN_ORDER @head is not checked against the chains popped: the driver
 * checks what it gets. */
int ivl_virtq_push(struct ivl_virtq *q, uint16_t head, uint32_t len);
/*
 * Device: ivl_virtq_push() for @n chains in one call: heads[k] with lens[k]
 * bytes written (0 for every one when @lens is NULL), with push's checks
 * for each (the same code: push is this verb with @n 1).  Returns how many
 * were recorded; they stop at the first that fails, whose error is returned
 * when it is the first (-EINVAL: head >= num or more pushes than popped;
 * -EIO broken; -EINVAL for NULL @q or @heads).  Nothing is visible to the
 * driver before ivl_virtq_flush().  @heads and @lens are borrowed for the
 * call.
 */
int ivl_virtq_push_many(struct ivl_virtq *q, const uint16_t *heads, const uint32_t *lens,
			unsigned n);
/* Device: publish every pushed entry (store-release of used->idx).
 * Returns 0.  Errors: -EINVAL (NULL, driver role), -EIO (broken). */
int ivl_virtq_flush(struct ivl_virtq *q);

#ifdef __cplusplus
}
#endif
#endif
