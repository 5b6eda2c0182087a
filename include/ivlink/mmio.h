/* SPDX-License-Identifier: MIT */
/*
 * A register-level virtio-mmio version 2 device model with the MSI
 * registers of seed 004, for a VMM or simulator that traps guest MMIO
 * (docs/virtio.md).  Thread safety: one model is used by one thread at a
 * time.
 */
#ifndef IVLINK_MMIO_H
#define IVLINK_MMIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ivlink/msi.h>
#include <ivlink/virtq.h>

#ifdef __cplusplus
extern "C" {
#endif

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

/* Errors: -EINVAL (bad options, NULL argument), -ENOMEM, and those of
 * ivl_msi_new().  The options are copied; window, config and opaque are
 * borrowed and must outlive the model.  *out is the caller's
 * (ivl_mmio_free(); NULL is a no-op). */
int ivl_mmio_new(struct ivl_mmio **out, const struct ivl_mmio_opts *opts);
void ivl_mmio_free(struct ivl_mmio *m);

/* A guest access at @offset of @size bytes (1, 2, 4; registers below 0x100
 * are 4 only).  Invalid accesses read 0 / are ignored and counted. */
uint32_t ivl_mmio_read(struct ivl_mmio *m, uint64_t offset, unsigned size);
void ivl_mmio_write(struct ivl_mmio *m, uint64_t offset, uint32_t value, unsigned size);

uint32_t ivl_mmio_status(const struct ivl_mmio *m);
uint64_t ivl_mmio_driver_features(const struct ivl_mmio *m);
void ivl_mmio_get_stats(const struct ivl_mmio *m, struct ivl_mmio_stats *out);
/* The model's MSI table (owned by the model), NULL without MSI. */
struct ivl_msi *ivl_mmio_msi(struct ivl_mmio *m);
/* The device-role virtqueue of a ready queue, or NULL.  Owned by the model
 * (freed on reset / QueueReady=0). */
struct ivl_virtq *ivl_mmio_queue(struct ivl_mmio *m, unsigned queue);

/* Device: after flushing used buffers, interrupt the driver if the ring
 * asks for it (MSI vector or InterruptStatus bit 0).  Returns 1 if an
 * interrupt was raised or left pending, 0 if suppressed, or -errno:
 * -EINVAL (NULL @m, no such queue or not ready), -EIO (broken queue), the
 * MSI callback's error. */
int ivl_mmio_notify_queue(struct ivl_mmio *m, unsigned queue);
/* Device: the configuration changed: ConfigGeneration moves and the driver
 * is interrupted (MSI config vector or InterruptStatus bit 1).  Returns 1
 * if an interrupt was raised or left pending, 0 if suppressed (the config
 * event is unmapped), or -errno: -EINVAL (NULL), the MSI callback's
 * error. */
int ivl_mmio_config_changed(struct ivl_mmio *m);
/* Device: something broke (e.g. a hostile ring): set DEVICE_NEEDS_RESET and,
 * once DRIVER_OK is set, raise a configuration change.  Returns as
 * ivl_mmio_config_changed() (0 before DRIVER_OK). */
int ivl_mmio_needs_reset(struct ivl_mmio *m);

#ifdef __cplusplus
}
#endif
#endif
