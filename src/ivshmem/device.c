/* SPDX-License-Identifier: MIT */
/*
 * The ivshmem device model (include/ivlink/ivshmem-dev.h, docs/device.md):
 * BAR0's four registers, pin and MSI-X interrupts.  Everything a guest
 * writes is data: any offset, size and value is answered, counted when it is
 * not what docs/device.md describes, and never trusted as an index.
 *
 * Locking: one mutex guards IntrMask, IntrStatus, the pin level, the MSI-X
 * enable, mask and pending bits, so the pin level is always a function of
 * the state it was computed from, and ops->irq() (called under the lock)
 * sees level changes in order.  IVPosition is an atomic: the Doorbell path
 * reads it without the lock because ops->ring() and ops->peer_vectors() run
 * unlocked (they reach other objects and may take their own locks).
 * Counters are relaxed atomics: each is exact, a set of them is no
 * snapshot.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <ivlink/ivshmem.h>
#include <ivlink/link-device.h>

#include "core/internal.h"

#define NSTATS (sizeof(struct ivl_ivshmem_stats) / sizeof(uint64_t))

struct ivl_ivshmem {
	enum ivl_ivshmem_irq_mode mode;
	unsigned vectors;
	void *bar2;
	uint64_t bar2_size;
	struct ivl_ivshmem_ops ops;
	void *ctx;
	atomic_int position; /* -1: not ready */

	pthread_mutex_t lock;
	uint32_t intrmask, intrstatus;
	int pin;	  /* the level last reported */
	bool msix;	  /* MSI-X Enable, as the guest set it */
	uint64_t masked;  /* MSI-X vector mask bits */
	uint64_t pending; /* MSI-X Pending Bit Array */

	/* struct ivl_ivshmem_stats, field by field. */
	_Atomic uint64_t st[NSTATS];
};

/* Counter index of a field of struct ivl_ivshmem_stats. */
#define ST(field) (offsetof(struct ivl_ivshmem_stats, field) / sizeof(uint64_t))

static void count(struct ivl_ivshmem *d, size_t idx)
{
	atomic_fetch_add_explicit(&d->st[idx], 1, memory_order_relaxed);
}

static uint64_t vec_bit(unsigned v)
{
	return (uint64_t)1 << v;
}

/* Re-evaluate the level-triggered pin (lock held).  In MSI mode the pin is
 * never driven, as in QEMU's ivshmem-doorbell. */
static void update_pin(struct ivl_ivshmem *d)
{
	int level;

	if (d->mode != IVL_IVSHMEM_PIN)
		return;
	level = (d->intrstatus & d->intrmask) != 0;
	if (level == d->pin)
		return;
	d->pin = level;
	count(d, level ? ST(pin_raised) : ST(pin_lowered));
	d->ops.irq(d->ctx, IVL_IVSHMEM_IRQ_PIN, (unsigned)level);
}

/* Raise MSI-X vector @v or latch it (lock held). */
static void raise_msi(struct ivl_ivshmem *d, unsigned v)
{
	if (d->masked & vec_bit(v)) {
		d->pending |= vec_bit(v);
		count(d, ST(msi_pending));
		return;
	}
	count(d, ST(msi_raised));
	d->ops.irq(d->ctx, IVL_IVSHMEM_IRQ_MSI, v);
}

IVL_EXPORT int ivl_ivshmem_new(struct ivl_ivshmem **out,
				   const struct ivl_ivshmem_opts *cfg)
{
	struct ivl_ivshmem *d;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!cfg || !cfg->ops || !cfg->ops->ring || !cfg->ops->irq || !cfg->vectors ||
	    cfg->vectors > IVL_IVSHMEM_MAX_VECTORS ||
	    (cfg->mode != IVL_IVSHMEM_MSI && cfg->mode != IVL_IVSHMEM_PIN) ||
	    (cfg->bar2_size && !cfg->bar2))
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	if (pthread_mutex_init(&d->lock, NULL) != 0) {
		free(d);
		return -ENOMEM;
	}
	d->mode = cfg->mode;
	d->vectors = cfg->vectors;
	d->bar2 = cfg->bar2;
	d->bar2_size = cfg->bar2 ? cfg->bar2_size : 0;
	d->ops = *cfg->ops;
	d->ctx = cfg->ctx;
	atomic_init(&d->position, -1);
	for (size_t i = 0; i < NSTATS; i++)
		atomic_init(&d->st[i], 0);
	*out = d;
	return 0;
}

IVL_EXPORT void ivl_ivshmem_free(struct ivl_ivshmem *dev)
{
	if (!dev)
		return;
	pthread_mutex_destroy(&dev->lock);
	free(dev);
}

/* ---- BAR0 ----------------------------------------------------------------- */

/* One 32-bit read of an aligned offset below the BAR0 size. */
static uint32_t read32(struct ivl_ivshmem *d, unsigned off)
{
	uint32_t v;

	switch (off) {
	case IVL_IVSHMEM_INTRMASK:
		pthread_mutex_lock(&d->lock);
		v = d->intrmask;
		pthread_mutex_unlock(&d->lock);
		return v;
	case IVL_IVSHMEM_INTRSTATUS:
		/* Reading clears every bit; the line follows at once. */
		pthread_mutex_lock(&d->lock);
		v = d->intrstatus;
		d->intrstatus = 0;
		update_pin(d);
		pthread_mutex_unlock(&d->lock);
		return v;
	case IVL_IVSHMEM_IVPOSITION:
		return (uint32_t)atomic_load_explicit(&d->position, memory_order_relaxed);
	case IVL_IVSHMEM_DOORBELL:
		count(d, ST(read_write_only));
		return 0;
	default:
		count(d, ST(bad_offset));
		return 0;
	}
}

static void doorbell(struct ivl_ivshmem *d, uint32_t val)
{
	uint16_t peer = (uint16_t)(val >> 16), vector = (uint16_t)val;
	unsigned nv;

	/* Before the server answered there is no peer to reach. */
	if (atomic_load_explicit(&d->position, memory_order_relaxed) < 0) {
		count(d, ST(drop_not_ready));
		return;
	}
	nv = d->ops.peer_vectors ? d->ops.peer_vectors(d->ctx, peer) : d->vectors;
	if (!nv) {
		count(d, ST(drop_peer));
		return;
	}
	/* All 16 bits of the vector field count (QEMU 7.2 uses 8). */
	if (vector >= nv) {
		count(d, ST(drop_vector));
		return;
	}
	if (d->ops.ring(d->ctx, peer, vector) < 0) {
		count(d, ST(drop_ring));
		return;
	}
	count(d, ST(rings));
}

static void write32(struct ivl_ivshmem *d, unsigned off, uint32_t val)
{
	switch (off) {
	case IVL_IVSHMEM_INTRMASK:
		pthread_mutex_lock(&d->lock);
		d->intrmask = val;
		update_pin(d);
		pthread_mutex_unlock(&d->lock);
		return;
	case IVL_IVSHMEM_INTRSTATUS:
		/* As in QEMU: the guest may set or clear status bits. */
		pthread_mutex_lock(&d->lock);
		d->intrstatus = val;
		update_pin(d);
		pthread_mutex_unlock(&d->lock);
		return;
	case IVL_IVSHMEM_IVPOSITION:
		count(d, ST(write_read_only));
		return;
	case IVL_IVSHMEM_DOORBELL:
		doorbell(d, val);
		return;
	default:
		count(d, ST(bad_offset));
		return;
	}
}

/* 0: serve; -1: counted and refused.  Sizes 1, 2, 4, 8, naturally aligned,
 * inside BAR0. */
static int check_access(struct ivl_ivshmem *d, uint64_t off, unsigned size)
{
	if (off >= IVL_IVSHMEM_BAR0_SIZE) {
		count(d, ST(bad_offset));
		return -1;
	}
	if ((size != 1 && size != 2 && size != 4 && size != 8) || off % size) {
		count(d, ST(bad_size));
		return -1;
	}
	return 0;
}

IVL_EXPORT uint64_t ivl_ivshmem_read(struct ivl_ivshmem *dev, uint64_t off, unsigned size)
{
	unsigned o = (unsigned)off;
	uint32_t v;

	if (!dev)
		return 0;
	count(dev, ST(reads));
	if (check_access(dev, off, size) < 0)
		return 0;
	if (size == 8)
		return read32(dev, o) | (uint64_t)read32(dev, o + 4) << 32;
	if (size == 4)
		return read32(dev, o);
	/* A narrow read: the bytes of the one register it falls in, with that
	 * register's read effect. */
	count(dev, ST(bad_size));
	v = read32(dev, o & ~3u);
	v >>= (o & 3u) * 8;
	return size == 1 ? (v & 0xffu) : (v & 0xffffu);
}

IVL_EXPORT void ivl_ivshmem_write(struct ivl_ivshmem *dev, uint64_t off, uint64_t val,
				      unsigned size)
{
	unsigned o = (unsigned)off;

	if (!dev)
		return;
	count(dev, ST(writes));
	if (check_access(dev, off, size) < 0)
		return;
	if (size < 4) {
		/* Half a Doorbell would ring a peer nobody named. */
		count(dev, ST(bad_size));
		return;
	}
	write32(dev, o, (uint32_t)val);
	if (size == 8)
		write32(dev, o + 4, (uint32_t)(val >> 32));
}

/* ---- the embedder's side -------------------------------------------------- */

IVL_EXPORT int ivl_ivshmem_doorbell(struct ivl_ivshmem *dev, unsigned vector)
{
	int ret = 1;

	if (!dev)
		return -EINVAL;
	count(dev, ST(doorbells_in));
	if (vector >= dev->vectors) {
		count(dev, ST(in_drop_vector));
		return 0;
	}
	pthread_mutex_lock(&dev->lock);
	if (dev->mode == IVL_IVSHMEM_PIN) {
		/* Status becomes 1 whichever vector rang (QEMU writes 1). */
		dev->intrstatus = 1;
		update_pin(dev);
	} else if (!dev->msix) {
		count(dev, ST(in_drop_msix));
		ret = 0;
	} else {
		raise_msi(dev, vector);
	}
	pthread_mutex_unlock(&dev->lock);
	return ret;
}

IVL_EXPORT int ivl_ivshmem_set_position(struct ivl_ivshmem *dev, int id)
{
	if (!dev || id < -1 || id > 65535)
		return -EINVAL;
	atomic_store_explicit(&dev->position, id, memory_order_relaxed);
	return 0;
}

IVL_EXPORT int ivl_ivshmem_set_msix(struct ivl_ivshmem *dev, bool enabled)
{
	if (!dev || dev->mode != IVL_IVSHMEM_MSI)
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	dev->msix = enabled;
	if (!enabled)
		dev->pending = 0;
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

IVL_EXPORT int ivl_ivshmem_mask(struct ivl_ivshmem *dev, unsigned vector, bool masked)
{
	if (!dev || dev->mode != IVL_IVSHMEM_MSI)
		return -EINVAL;
	if (vector >= dev->vectors)
		return -ERANGE;
	pthread_mutex_lock(&dev->lock);
	if (masked) {
		dev->masked |= vec_bit(vector);
	} else {
		dev->masked &= ~vec_bit(vector);
		if (dev->pending & vec_bit(vector)) {
			dev->pending &= ~vec_bit(vector);
			raise_msi(dev, vector);
		}
	}
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

IVL_EXPORT uint64_t ivl_ivshmem_pending(struct ivl_ivshmem *dev)
{
	uint64_t p;

	if (!dev)
		return 0;
	pthread_mutex_lock(&dev->lock);
	p = dev->pending;
	pthread_mutex_unlock(&dev->lock);
	return p;
}

IVL_EXPORT void ivl_ivshmem_reset(struct ivl_ivshmem *dev)
{
	if (!dev)
		return;
	pthread_mutex_lock(&dev->lock);
	dev->intrmask = 0;
	dev->intrstatus = 0;
	update_pin(dev);
	dev->msix = false;
	dev->masked = 0;
	dev->pending = 0;
	pthread_mutex_unlock(&dev->lock);
}

IVL_EXPORT int ivl_ivshmem_pin(struct ivl_ivshmem *dev)
{
	int p;

	if (!dev)
		return 0;
	pthread_mutex_lock(&dev->lock);
	p = dev->pin;
	pthread_mutex_unlock(&dev->lock);
	return p;
}

IVL_EXPORT void *ivl_ivshmem_bar2(const struct ivl_ivshmem *dev, uint64_t *size)
{
	if (size)
		*size = dev ? dev->bar2_size : 0;
	return dev ? dev->bar2 : NULL;
}

IVL_EXPORT unsigned ivl_ivshmem_vectors(const struct ivl_ivshmem *dev)
{
	return dev ? dev->vectors : 0;
}

IVL_EXPORT enum ivl_ivshmem_irq_mode ivl_ivshmem_mode(const struct ivl_ivshmem *dev)
{
	return dev ? dev->mode : IVL_IVSHMEM_MSI;
}

IVL_EXPORT void ivl_ivshmem_get_stats(struct ivl_ivshmem *dev,
					  struct ivl_ivshmem_stats *st)
{
	uint64_t *f = (uint64_t *)st;

	if (!st)
		return;
	for (size_t i = 0; i < NSTATS; i++)
		f[i] = dev ? atomic_load_explicit(&dev->st[i], memory_order_relaxed) : 0;
}
