/* SPDX-License-Identifier: MIT */
/*
 * The ivshmem device model (src/ivshmem/device.c) backed by a link, and a
 * guest link over such a model (docs/device.md, "one driver, two devices").
 *
 * The link plays the part of QEMU's chardev connection to the server: its
 * region is BAR2, its ID IVPosition, its peer table decides which Doorbell
 * writes reach somebody, and a Doorbell write is one plain doorbell through
 * the backend (ops->ring, not ivl_link_ring(): coalescing is the guest
 * driver's business, and doing it twice on the same pending bit would
 * swallow the doorbell the driver meant to make).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <ivlink/ivshmem.h>
#include <ivlink/link-device.h>

#include "core/internal.h"
#include "link/guest-internal.h"
#include "link/link-internal.h"

struct ivl_link_device {
	struct ivl_link *l;
	struct ivl_ivshmem *dev;
	void (*irq)(void *ctx, enum ivl_ivshmem_irq_kind kind, unsigned arg);
	void *ctx;
};

static int ld_ring(void *ctx, uint16_t peer, uint16_t vector)
{
	struct ivl_link *l = ((struct ivl_link_device *)ctx)->l;

	if (atomic_load_explicit(&l->dead, memory_order_relaxed))
		return -ENOTCONN;
	return l->ops->ring(l, peer, vector);
}

static unsigned ld_peer_vectors(void *ctx, uint16_t peer)
{
	struct ivl_link *l = ((struct ivl_link_device *)ctx)->l;

	return l->ops->peer_vectors(l, peer);
}

static void ld_irq(void *ctx, enum ivl_ivshmem_irq_kind kind, unsigned arg)
{
	struct ivl_link_device *ld = ctx;

	ld->irq(ld->ctx, kind, arg);
}

static const struct ivl_ivshmem_ops ld_ops = {
    .ring = ld_ring,
    .peer_vectors = ld_peer_vectors,
    .irq = ld_irq,
};

IVL_EXPORT int ivl_link_device_new(struct ivl_link_device **out, struct ivl_link *link,
				const struct ivl_link_device_opts *opts)
{
	struct ivl_ivshmem_opts cfg = {0};
	struct ivl_link_device *ld;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!link || !opts || !opts->irq || opts->vectors > IVL_IVSHMEM_MAX_VECTORS)
		return -EINVAL;
	ld = calloc(1, sizeof(*ld));
	if (!ld)
		return -ENOMEM;
	ld->l = link;
	ld->irq = opts->irq;
	ld->ctx = opts->ctx;
	cfg.mode = opts->mode;
	cfg.vectors = opts->vectors ? opts->vectors : link->vectors;
	if (cfg.vectors > IVL_IVSHMEM_MAX_VECTORS)
		cfg.vectors = IVL_IVSHMEM_MAX_VECTORS;
	cfg.bar2 = link->base;
	cfg.bar2_size = link->size;
	cfg.ops = &ld_ops;
	cfg.ctx = ld;
	ret = ivl_ivshmem_new(&ld->dev, &cfg);
	if (ret < 0) {
		free(ld);
		return ret;
	}
	ivl_ivshmem_set_position(ld->dev, link->id);
	*out = ld;
	return 0;
}

IVL_EXPORT struct ivl_ivshmem *ivl_link_device_model(const struct ivl_link_device *ld)
{
	return ld ? ld->dev : NULL;
}

IVL_EXPORT int ivl_link_device_deliver(struct ivl_link_device *ld, const struct ivl_link_event *ev,
				    size_t n)
{
	int raised = 0;

	if (!ld || (n && !ev))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (ev[i].type == IVL_LINK_DOORBELL &&
		    ivl_ivshmem_doorbell(ld->dev, ev[i].vector) > 0)
			raised++;
	return raised;
}

IVL_EXPORT void ivl_link_device_free(struct ivl_link_device *ld)
{
	if (!ld)
		return;
	ivl_ivshmem_free(ld->dev);
	free(ld);
}

/* ---- a guest link over the model ----------------------------------------- */

/* What VFIO is for a real device: MSI-X vector n writes eventfd n. */
struct model_guest {
	struct ivl_link_device *ld;
	unsigned n;
	int efd[IVL_IVSHMEM_MAX_VECTORS];
};

static void mg_irq(void *ctx, enum ivl_ivshmem_irq_kind kind, unsigned arg)
{
	struct model_guest *mg = ctx;
	uint64_t one = 1;

	if (kind != IVL_IVSHMEM_IRQ_MSI || arg >= mg->n)
		return;
	/* A full counter (2^64-2 pending) is no lost interrupt. */
	if (write(mg->efd[arg], &one, sizeof(one)) < 0 && errno != EAGAIN)
		ivl__debug("link: model interrupt %u: eventfd write failed", arg);
}

static uint32_t mg_read32(void *ctx, unsigned off)
{
	struct model_guest *mg = ctx;

	return (uint32_t)ivl_ivshmem_read(mg->ld->dev, off, 4);
}

static void mg_write32(void *ctx, unsigned off, uint32_t val)
{
	struct model_guest *mg = ctx;

	ivl_ivshmem_write(mg->ld->dev, off, val, 4);
}

static const struct ivl__guest_regs mg_regs = {
    .read32 = mg_read32,
    .write32 = mg_write32,
};

static void mg_release(void *ctx)
{
	struct model_guest *mg = ctx;

	ivl_link_device_free(mg->ld);
	for (unsigned v = 0; v < mg->n; v++)
		ivl__close(mg->efd[v]);
	free(mg);
}

int ivl__link_guest_over_model(struct ivl_link **out, struct ivl_link_device **ld_out,
			       struct ivl_link *backing, int timeout_ms)
{
	struct ivl_link_device_opts o = {.mode = IVL_IVSHMEM_MSI, .irq = mg_irq};
	struct ivl__guest_dev gd = {0};
	struct model_guest *mg;
	int ret;

	if (!out || !ld_out || !backing || timeout_ms < 0)
		return -EINVAL;
	*out = NULL;
	*ld_out = NULL;
	mg = calloc(1, sizeof(*mg));
	if (!mg)
		return -ENOMEM;
	o.ctx = mg;
	mg->n =
	    backing->vectors > IVL_IVSHMEM_MAX_VECTORS ? IVL_IVSHMEM_MAX_VECTORS : backing->vectors;
	for (unsigned v = 0; v < IVL_IVSHMEM_MAX_VECTORS; v++)
		mg->efd[v] = -1;
	for (unsigned v = 0; v < mg->n; v++) {
		mg->efd[v] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (mg->efd[v] < 0) {
			ret = -errno;
			goto fail;
		}
	}
	ret = mg->n ? ivl_link_device_new(&mg->ld, backing, &o) : -EINVAL;
	if (ret < 0)
		goto fail;
	/* What the guest's VFIO driver does before it waits: enable MSI-X. */
	ivl_ivshmem_set_msix(mg->ld->dev, true);
	gd.regs = &mg_regs;
	gd.ctx = mg;
	gd.bar2 = ivl_ivshmem_bar2(mg->ld->dev, &gd.bar2_size);
	gd.dev_vectors = mg->n;
	gd.irq_fds = mg->efd;
	gd.nirq = mg->n;
	gd.release = mg_release;
	gd.desc = "ivshmem model";
	*ld_out = mg->ld;
	/* On failure the constructor calls mg_release. */
	ret = ivl__link_guest_new_with_regs(out, &gd, timeout_ms);
	if (ret < 0)
		*ld_out = NULL;
	return ret;
fail:
	mg_release(mg);
	return ret;
}
