/* SPDX-License-Identifier: MIT */
/*
 * The ivshmem PCI device as a library component (docs/device.md): the BAR0
 * register block (IntrMask, IntrStatus, IVPosition, Doorbell; seed 001),
 * the BAR2 memory, and pin or MSI-X interrupts, for a VMM, an emulator or a
 * processor simulator that needs its own ivshmem-doorbell device.
 *
 * The model owns no fds and runs no loop.  The embedder
 *  - routes the guest's BAR0 accesses to ivl_ivshmem_read() / _write();
 *  - maps BAR2 (the memory it passed in) into the guest;
 *  - calls ivl_ivshmem_doorbell() when one of the device's own vectors
 *    was rung (an eventfd of an ivshmem server became readable);
 *  - calls ivl_ivshmem_set_position() once the server told the ID;
 *  - in MSI mode, mirrors the guest's MSI-X enable bit and per-vector mask
 *    bits (its own BAR1 / capability emulation) with _set_msix() / _mask();
 * and gets back ops->ring() for Doorbell writes the model accepted and
 * ops->irq() for pin level changes and MSI vectors.  The link layer has a
 * ready-made backing: ivl_link_device_new() in <ivlink/link-device.h>.
 *
 * Thread safety: every function may be called from any thread concurrently
 * with every other except ivl_ivshmem_free() (vCPU threads access
 * registers while another thread delivers doorbells).  Register state is
 * guarded by one mutex; ops->irq() is called with it held, so the levels and
 * vectors it reports are in the order the state changed, and it must not
 * call back into the device.  ops->ring() and ops->peer_vectors() are
 * called without it.
 */
#ifndef IVLINK_IVSHMEM_H
#define IVLINK_IVSHMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ivlink/proto/ivshmem.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Vectors a device may have (the MSI-X table of QEMU's device is sized by
 * vectors=; ivlink's limit per peer is IVL_MAX_VECTORS). */
#define IVL_IVSHMEM_MAX_VECTORS 64u

enum ivl_ivshmem_irq_mode {
	/* MSI-X (ivshmem-doorbell): vector n of an incoming doorbell raises
	 * MSI-X vector n; IntrStatus is untouched. */
	IVL_IVSHMEM_MSI = 0,
	/* Pin (INTx, the 2010 specification's "regular interrupts"): an
	 * incoming doorbell on any vector sets IntrStatus to 1; the line is
	 * level-triggered: high while (IntrStatus & IntrMask) != 0. */
	IVL_IVSHMEM_PIN,
};

enum ivl_ivshmem_irq_kind {
	IVL_IVSHMEM_IRQ_PIN = 1, /* @arg: the new line level, 0 or 1 */
	IVL_IVSHMEM_IRQ_MSI,	 /* @arg: the MSI-X vector to raise */
};

struct ivl_ivshmem_ops {
	/* A Doorbell write the model accepted: ring @vector of @peer.  A
	 * negative return counts as a dropped doorbell.  Required. */
	int (*ring)(void *ctx, uint16_t peer, uint16_t vector);
	/* Vectors @peer has now (0: unknown peer); decides which Doorbell
	 * writes are dropped.  NULL: every peer has the device's vectors. */
	unsigned (*peer_vectors)(void *ctx, uint16_t peer);
	/* An interrupt: a pin level change or an MSI-X vector (kind above).
	 * Called with the device lock held.  Required. */
	void (*irq)(void *ctx, enum ivl_ivshmem_irq_kind kind, unsigned arg);
};

struct ivl_ivshmem_opts {
	enum ivl_ivshmem_irq_mode mode;
	unsigned vectors; /* the device's own vectors, 1..64 */
	void *bar2;	  /* the shared memory (borrowed; may be NULL) */
	uint64_t bar2_size;
	const struct ivl_ivshmem_ops *ops; /* copied */
	void *ctx;			       /* passed to every op */
};

struct ivl_ivshmem;

/* Counters since creation (each exact; together they are no snapshot). */
struct ivl_ivshmem_stats {
	uint64_t reads, writes;	  /* register accesses, good or bad */
	uint64_t bad_size;	  /* size not 4 or 8 (narrow reads still served), or unaligned */
	uint64_t bad_offset;	  /* 0x10..0xff and beyond BAR0 */
	uint64_t read_write_only; /* reads of Doorbell (return 0) */
	uint64_t write_read_only; /* writes to IVPosition (ignored) */
	uint64_t rings;		  /* Doorbell writes passed to ops->ring() */
	uint64_t drop_not_ready;  /* Doorbell writes before IVPosition was set */
	uint64_t drop_peer;	  /* ... to a peer with no vectors */
	uint64_t drop_vector;	  /* ... to a vector the peer lacks */
	uint64_t drop_ring;	  /* ... that ops->ring() refused */
	uint64_t doorbells_in;	  /* ivl_ivshmem_doorbell() calls */
	uint64_t in_drop_vector;  /* ... for a vector >= the device's */
	uint64_t in_drop_msix;	  /* ... in MSI mode with MSI-X disabled */
	uint64_t msi_raised;	  /* MSI-X vectors raised (ops->irq) */
	uint64_t msi_pending;	  /* ... deferred because the vector was masked */
	uint64_t pin_raised;	  /* pin level changes 0 -> 1 */
	uint64_t pin_lowered;	  /* pin level changes 1 -> 0 */
};

/*
 * Create a device: IVPosition not ready, IntrMask and IntrStatus 0, MSI-X
 * disabled and every vector unmasked.  Errors: -EINVAL (no ops, ring or
 * irq missing, vectors outside 1..64, unknown mode, bar2_size without
 * bar2, NULL @out), -ENOMEM.  The ops are copied; @cfg->bar2 and ctx are
 * borrowed and must outlive the device.  *out is the caller's
 * (ivl_ivshmem_free()).
 */
int ivl_ivshmem_new(struct ivl_ivshmem **out, const struct ivl_ivshmem_opts *cfg);
/* NULL is a no-op.  The pin is not lowered: the embedder owns the line. */
void ivl_ivshmem_free(struct ivl_ivshmem *dev);

/*
 * A guest read of @size bytes at BAR0 offset @off.  Sizes 4 and 8 at
 * naturally aligned offsets are served (8 = two 32-bit reads, the lower
 * offset first, little-endian), as are 1 and 2 bytes inside one register
 * (the register's read effect happens, e.g. reading any byte of IntrStatus
 * clears it); anything else reads 0 and is counted (docs/device.md).
 */
uint64_t ivl_ivshmem_read(struct ivl_ivshmem *dev, uint64_t off, unsigned size);
/* A guest write.  Sizes 4 and 8 (two 32-bit writes, lower offset first);
 * narrower or unaligned writes are ignored and counted. */
void ivl_ivshmem_write(struct ivl_ivshmem *dev, uint64_t off, uint64_t val, unsigned size);

/* One of the device's own vectors was rung (the embedder read its
 * eventfd; several rings may be coalesced into one call, as an eventfd
 * counter does).  Returns 1 if it raised or latched an interrupt, 0 if it
 * was dropped (and counted).  Errors: -EINVAL (NULL @dev). */
int ivl_ivshmem_doorbell(struct ivl_ivshmem *dev, unsigned vector);

/* IVPosition: @id 0..65535 once the server sent it, -1: not ready again.
 * Returns 0.  Errors: -EINVAL (NULL @dev, any other @id). */
int ivl_ivshmem_set_position(struct ivl_ivshmem *dev, int id);

/* MSI mode: the guest set or cleared the MSI-X Enable bit.  While it is
 * clear, incoming doorbells are dropped (what QEMU's ivshmem-doorbell
 * does).  Disabling forgets pending vectors.  Returns 0.  Errors: -EINVAL
 * (NULL @dev, pin mode). */
int ivl_ivshmem_set_msix(struct ivl_ivshmem *dev, bool enabled);
/* MSI mode: the guest masked or unmasked @vector (MSI-X table entry or the
 * function mask).  A masked vector latches a pending bit instead of
 * raising; unmasking raises it.  Returns 0.  Errors: -EINVAL (NULL @dev,
 * pin mode), -ERANGE (@vector >= the device's vectors). */
int ivl_ivshmem_mask(struct ivl_ivshmem *dev, unsigned vector, bool masked);
/* The Pending Bit Array: bit n = vector n pending (MSI mode). */
uint64_t ivl_ivshmem_pending(struct ivl_ivshmem *dev);

/* Device reset (PCI reset or power-on): IntrMask and IntrStatus 0 (the pin
 * drops if it was high), MSI-X disabled, masks and pending bits cleared.
 * IVPosition and the memory are kept: they belong to the server's
 * connection, not to the function. */
void ivl_ivshmem_reset(struct ivl_ivshmem *dev);

/* Returns the current pin level (0 or 1; always 0 in MSI mode and for a
 * NULL @dev); cannot fail. */
int ivl_ivshmem_pin(struct ivl_ivshmem *dev);
/* BAR2: the memory given at creation (borrowed from the embedder), and its
 * size.  The getters below return 0 / NULL / IVL_IVSHMEM_MSI for a NULL
 * @dev. */
void *ivl_ivshmem_bar2(const struct ivl_ivshmem *dev, uint64_t *size);
unsigned ivl_ivshmem_vectors(const struct ivl_ivshmem *dev);
enum ivl_ivshmem_irq_mode ivl_ivshmem_mode(const struct ivl_ivshmem *dev);
void ivl_ivshmem_get_stats(struct ivl_ivshmem *dev, struct ivl_ivshmem_stats *st);

#ifdef __cplusplus
}
#endif
#endif
