/* SPDX-License-Identifier: MIT */
/*
 * virtio over ivlink (docs/virtio.md; seed 004 for MSI):
 *
 *  - ivl_virtq: split virtqueues (virtio 1.x, the layouts of
 *    <linux/virtio_ring.h>) inside a *window* of a shared region.  Ring and
 *    buffer addresses are byte offsets into the window; every one is checked.
 *    Driver verbs: add, need_notify (kick), get_used.  Device verbs: pop,
 *    push, flush, need_notify.  The device side treats the rings as hostile.
 *  - ivl_msi: an MSI vector table with mask/pending and the event->vector map
 *    of the virtio-mmio MSI proposal (sharing and non-sharing modes).
 *  - ivl_mmio: a register-level virtio-mmio version 2 device model with the
 *    MSI registers, for a VMM or simulator that traps guest MMIO.
 *
 * Thread safety: each object is used by one thread at a time.  The two ends
 * of a virtqueue (an ivl_virtq in the driver role and one in the device role
 * on the same memory) may run in different threads or processes.
 */
#ifndef IVLINK_VIRTIO_H
#define IVLINK_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ivl_link;

/* ---- split virtqueues ---------------------------------------------------- */

#define IVL_VIRTQ_MAX_SIZE 32768u

/* Feature bits of a ring (the virtio bit numbers, as a mask). */
#define IVL_VIRTQ_F_INDIRECT_DESC (1ull << 28) /* VIRTIO_RING_F_INDIRECT_DESC */
#define IVL_VIRTQ_F_EVENT_IDX (1ull << 29)     /* VIRTIO_RING_F_EVENT_IDX */

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
 * Errors: -EINVAL (bad num, features, role), -EFAULT (layout outside the
 * window or misaligned), -ENOMEM.
 */
int ivl_virtq_new(struct ivl_virtq **out, void *window, uint64_t window_size,
		  const struct ivl_virtq_opts *opts);
/* NULL is a no-op. */
void ivl_virtq_free(struct ivl_virtq *q);

unsigned ivl_virtq_num(const struct ivl_virtq *q);
/* 0 if healthy, else the (negative) error that broke the queue.  A broken
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
 * or ivl_virtq_need_notify().
 * Errors: -EINVAL (no pieces, NULL token, wrong role), -EFAULT (a piece
 * outside the window), -ENOSPC (not enough free descriptors), -EIO (broken).
 */
int ivl_virtq_add(struct ivl_virtq *q, const struct iovec *out, unsigned nout,
		  const struct iovec *in, unsigned nin, void *token);
/*
 * Driver: take one used buffer.  Returns 1 with *token and *len (bytes the
 * device wrote), 0 if none, or -errno: -EPROTO when the device returned an
 * id that is not in flight or a used index that jumps too far (the queue
 * breaks), -EIO (broken).
 */
int ivl_virtq_get_used(struct ivl_virtq *q, void **token, uint32_t *len);
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
 * returns 1 when work already arrived since (the caller must process it
 * rather than sleep), 0 otherwise, or -EIO.  With EVENT_IDX, enable arms the
 * event index at the next entry and disable is a no-op.
 */
int ivl_virtq_enable_notify(struct ivl_virtq *q);
void ivl_virtq_disable_notify(struct ivl_virtq *q);

/*
 * need_notify, and when it says so, ring @vector of @peer on @link.
 * Returns 1 if rung, 0 if suppressed, or -errno from either.
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
/* Device: record chain @head as used with @len bytes written; not visible
 * to the driver before ivl_virtq_flush().  Errors: -EINVAL (head >= num,
 * or more pushes than popped), -EIO. */
int ivl_virtq_push(struct ivl_virtq *q, uint16_t head, uint32_t len);
/* Device: publish every pushed entry (store-release of used->idx). */
int ivl_virtq_flush(struct ivl_virtq *q);

/* ---- MSI vectors and the event map (seed 004, docs/virtio.md §3) -------- */

#define IVL_MSI_NO_VECTOR 0xffffffffu

/* A vector's message: ivlink reads address as the destination peer and data
 * as the doorbell vector. */
struct ivl_msi_vector {
	uint64_t address;
	uint32_t data;
	bool masked;
	bool pending;
};

/* Deliver one message; a negative return leaves the vector pending. */
typedef int ivl_msi_deliver_fn(void *opaque, uint32_t vector, uint64_t address, uint32_t data);

struct ivl_msi;

/*
 * A table of @nvec vectors (1..2048) for a device with @nqueues queues.
 * Non-sharing (@sharing false): vector 0 is the configuration change, vector
 * n is queue n-1, fixed, so @nvec must exceed @nqueues (seed 004: "a number
 * of vectors greater than the maximum number of virtqueues"; fewer would
 * leave queues without an interrupt, so it is refused, never accepted and
 * silently lossy).  Sharing: every event starts unmapped (NO_VECTOR) and
 * @nvec must be at least 2 (seed 004).  Starts disabled, every vector
 * unmasked, zero.  Errors: -EINVAL (including those vector counts),
 * -ENOMEM.
 */
int ivl_msi_new(struct ivl_msi **out, unsigned nvec, unsigned nqueues, bool sharing,
		ivl_msi_deliver_fn *deliver, void *opaque);
void ivl_msi_free(struct ivl_msi *m);

unsigned ivl_msi_num(const struct ivl_msi *m);
bool ivl_msi_sharing(const struct ivl_msi *m);
bool ivl_msi_enabled(const struct ivl_msi *m);
void ivl_msi_enable(struct ivl_msi *m);
/* Disabling keeps the table (and pending bits). */
void ivl_msi_disable(struct ivl_msi *m);
/* Device reset: disabled, table zeroed, maps back to their start (sharing:
 * all unmapped; non-sharing: the fixed map). */
void ivl_msi_reset(struct ivl_msi *m);

/* Errors of the per-vector calls: -EINVAL (vector >= num). */
int ivl_msi_configure(struct ivl_msi *m, uint32_t vector, uint64_t address, uint32_t data);
int ivl_msi_mask(struct ivl_msi *m, uint32_t vector);
/* Unmask; a pending message is delivered now when MSI is enabled (once).
 * Returns 1 if delivered, 0 if not, or -errno (from the callback too). */
int ivl_msi_unmask(struct ivl_msi *m, uint32_t vector);
int ivl_msi_get(const struct ivl_msi *m, uint32_t vector, struct ivl_msi_vector *out);

/*
 * A ready-made ivl_msi_deliver_fn for @opaque = a struct ivl_link *: rings
 * doorbell @data of peer @address (docs/virtio.md, MSI).  Errors: -EINVAL
 * (address or data beyond 16 bits), and those of ivl_link_ring().
 */
int ivl_msi_link_deliver(void *opaque, uint32_t vector, uint64_t address, uint32_t data);

/* Map an event to a vector.  @vector < num or IVL_MSI_NO_VECTOR (unmap),
 * else -EINVAL; @queue < nqueues, else -EINVAL.  Sharing mode: any vector.
 * Non-sharing mode (seed 004: "Device MUST support unmapping any event
 * type"): only IVL_MSI_NO_VECTOR (unmap) or the event's fixed vector (map it
 * back); any other vector is -EPERM.  An unmapped event raises nothing
 * (ivl_msi_raise_*() return -ENOENT): the driver asked not to be
 * interrupted for it. */
int ivl_msi_map_config(struct ivl_msi *m, uint32_t vector);
int ivl_msi_map_queue(struct ivl_msi *m, unsigned queue, uint32_t vector);
/* The vector of an event, or IVL_MSI_NO_VECTOR. */
uint32_t ivl_msi_config_vector(const struct ivl_msi *m);
uint32_t ivl_msi_queue_vector(const struct ivl_msi *m, unsigned queue);

/*
 * Raise an event: find its vector and deliver, or record it pending when
 * the vector is masked.  Returns 1 delivered, 0 pending, or -errno:
 * -EAGAIN (MSI disabled: use the single interrupt), -ENOENT (the event has
 * no vector), -EINVAL (bad queue), or the callback's error (left pending).
 */
int ivl_msi_raise_config(struct ivl_msi *m);
int ivl_msi_raise_queue(struct ivl_msi *m, unsigned queue);

/* ---- virtio-mmio version 2 register model -------------------------------- */

#define IVL_MMIO_MAGIC 0x74726976u
#define IVL_MMIO_MAX_QUEUES 64u

/* What the device model is told.  All callbacks are optional. */
struct ivl_mmio_opts {
	uint32_t device_id;
	uint32_t vendor_id;
	uint64_t features;	/* offered; VIRTIO_F_VERSION_1 (bit 32) is
				 * always added */
	unsigned num_queues;	/* 1..IVL_MMIO_MAX_QUEUES */
	unsigned queue_num_max; /* power of two 1..32768 */
	unsigned msi_vectors;	/* 0: no MSI (MsiVecNum reads 0) */
	bool msi_sharing;
	/* The memory the driver's queue addresses point to: guest physical
	 * address window_base..window_base+window_size maps to window. */
	void *window;
	uint64_t window_size;
	uint64_t window_base;
	/* Device configuration space at 0x100, config_size bytes (<= 3840). */
	void *config;
	size_t config_size;
	void *opaque;
	/* Before a config read / after a config write of @size at @off. */
	void (*config_read)(void *opaque, uint32_t off, unsigned size);
	void (*config_write)(void *opaque, uint32_t off, unsigned size);
	/* The driver wrote QueueNotify for a ready queue. */
	void (*queue_notify)(void *opaque, unsigned queue);
	/* The status changed (0: reset, after the model reset itself). */
	void (*status_changed)(void *opaque, uint32_t status);
	/* The level of the single interrupt line (no MSI). */
	void (*irq_level)(void *opaque, bool level);
	ivl_msi_deliver_fn *msi_deliver;
};

/* Counters of what the model refused (never fatal). */
struct ivl_mmio_stats {
	uint64_t bad_access;   /* unknown offset, wrong size, read of a W
				* register or write of an R one */
	uint64_t bad_sequence; /* a valid register at the wrong time or with a
				* bad value (e.g. QueueNum too big, queue
				* addresses outside the window, MSI command
				* out of range, MAP_* in non-sharing mode) */
};

struct ivl_mmio;

/* Errors: -EINVAL (bad options), -ENOMEM. */
int ivl_mmio_new(struct ivl_mmio **out, const struct ivl_mmio_opts *opts);
void ivl_mmio_free(struct ivl_mmio *m);

/* A guest access at @offset of @size bytes (1, 2, 4; registers below 0x100
 * are 4 only).  Invalid accesses read 0 / are ignored and counted. */
uint32_t ivl_mmio_read(struct ivl_mmio *m, uint64_t offset, unsigned size);
void ivl_mmio_write(struct ivl_mmio *m, uint64_t offset, uint32_t value, unsigned size);

uint32_t ivl_mmio_status(const struct ivl_mmio *m);
uint64_t ivl_mmio_driver_features(const struct ivl_mmio *m);
void ivl_mmio_get_stats(const struct ivl_mmio *m, struct ivl_mmio_stats *out);
struct ivl_msi *ivl_mmio_msi(struct ivl_mmio *m); /* NULL without MSI */
/* The device-role virtqueue of a ready queue, or NULL.  Owned by the model
 * (freed on reset / QueueReady=0). */
struct ivl_virtq *ivl_mmio_queue(struct ivl_mmio *m, unsigned queue);

/* Device: after flushing used buffers, interrupt the driver if the ring
 * asks for it (MSI vector or InterruptStatus bit 0).  Returns 1 if an
 * interrupt was raised or left pending, 0 if suppressed, or -errno. */
int ivl_mmio_notify_queue(struct ivl_mmio *m, unsigned queue);
/* Device: the configuration changed: ConfigGeneration moves and the driver
 * is interrupted (MSI config vector or InterruptStatus bit 1). */
int ivl_mmio_config_changed(struct ivl_mmio *m);
/* Device: something broke (e.g. a hostile ring): set DEVICE_NEEDS_RESET and
 * raise a configuration change. */
int ivl_mmio_needs_reset(struct ivl_mmio *m);

#ifdef __cplusplus
}
#endif

#endif
