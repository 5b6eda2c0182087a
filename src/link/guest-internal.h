/* SPDX-License-Identifier: MIT */
/*
 * The guest backend (docs/guest.md): this program runs inside a VM and
 * talks to the ivshmem-doorbell PCI device (docs/device.md).
 *
 * Layers, each replaceable on its own:
 *  - the register seam (struct ivl__guest_regs): every BAR0 access of the
 *    backend goes through read32/write32, so the same backend drives a
 *    mmap'ed BAR (sysfs resource0), VFIO's pread/pwrite, or a software
 *    model of the device (unit tests, a future emulated device);
 *  - the device (guest-pci.c: finding it, sysfs mapping; guest-vfio.c:
 *    VFIO container/group/device, MSI-X eventfds);
 *  - the link (guest.c): IVPosition, Doorbell writes, and the peer set read
 *    from the ivlink header's peer table, rescanned on a timer because a
 *    guest has no server socket to tell it about joins and leaves.
 */
#ifndef IVL_GUEST_INTERNAL_H
#define IVL_GUEST_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ivlink/link-device.h>
#include <ivlink/link.h>
#include <ivlink/proto/ivshmem.h>
#include <ivlink/proto/shm.h>

/* BAR0 registers: IVL_IVSHMEM_* of <ivlink/proto/ivshmem.h> (docs/device.md),
 * 32-bit little-endian accesses. */

/*
 * The register seam.  @off is a byte offset into BAR0, a multiple of 4 below
 * IVL_IVSHMEM_BAR0_SIZE.  write32 may be called from any thread (ring() is), so an
 * implementation keeps no unlocked state of its own; read32 returns
 * 0xffffffff when the access failed (what a vanished PCI device reads as).
 */
struct ivl__guest_regs {
	uint32_t (*read32)(void *ctx, unsigned off);
	void (*write32)(void *ctx, unsigned off, uint32_t val);
};

/* Everything the link needs from a device, however it was reached. */
struct ivl__guest_dev {
	const struct ivl__guest_regs *regs;
	void *ctx;
	void *bar2;	      /* the shared memory */
	uint64_t bar2_size;   /* a power of two */
	unsigned dev_vectors; /* MSI-X vectors of the device (0: ivshmem-plain) */
	/* One eventfd per vector (borrowed, nonblocking) when interrupts are
	 * delivered (VFIO MSI-X); nirq == 0: none, the link polls. */
	const int *irq_fds;
	unsigned nirq;
	/* Called once by ivl_link_free() (and on a failed construction) to
	 * unmap and close what belongs to the device; may be NULL. */
	void (*release)(void *ctx);
	const char *desc; /* for log lines, e.g. "0000:00:03.0 (vfio)" */
	/* How the device is reached: "kernel" (ivlink_ivshmem.ko), "vfio",
	 * "sysfs"; NULL: a model (ivl_link_guest_access()). */
	const char *access;
	/* With watch_hup, hup_fd (borrowed) turns POLLHUP when the device is
	 * removed: the link then reports IVL_LINK_DOWN. */
	bool watch_hup;
	int hup_fd;
};

/*
 * Build a guest link over @dev: wait (bounded by @timeout_ms, 0: 5000) for
 * IVPosition to be valid and for the header to be READY (a raw region is
 * accepted at once), register the interrupt fds, arm the rescan timer and
 * queue a JOIN for every peer already in the table.  On failure
 * dev->release is called.  Errors: -ETIMEDOUT (IVPosition stays -1),
 * -EPROTO (IVPosition out of range), -ENOMEM, -errno.
 */
int ivl__link_guest_new_with_regs(struct ivl_link **out, const struct ivl__guest_dev *dev,
				  int timeout_ms);

/*
 * A guest link whose device is the ivshmem model (src/link/devmodel.c)
 * backed by @backing: MSI mode with MSI-X enabled, one eventfd per vector as
 * VFIO would give.  *ld_out is the model: the caller hands it the DOORBELL
 * events of @backing (ivl_link_device_deliver()) and must stop doing so before
 * ivl_link_free(*out), which frees the model too.  Errors as
 * ivl__link_guest_new_with_regs(), and -EINVAL.
 */
struct ivl_link_device;
int ivl__link_guest_over_model(struct ivl_link **out, struct ivl_link_device **ld_out,
			       struct ivl_link *backing, int timeout_ms);

/* ---- the peer-table scanner (pure; unit-tested) --------------------------- */

/*
 * The last seen view of every ID of the validated table, one atomic word per
 * ID so that ring() on any thread reads it without a lock:
 *   bit 40: present (state JOINED or READY), bits 32..39: ringable vectors
 *   (min of the entry's and the header's), bits 0..31: generation.
 */
struct ivl__guest_scan {
	_Atomic uint64_t *snap;
	uint32_t n;	  /* = validated max_peers */
	unsigned vectors; /* the header's vectors per peer (validated) */
	int self;	  /* my ID, never reported */
};

#define IVL__SCAN_PRESENT (1ull << 40)
#define IVL__SCAN_VECS(w) ((unsigned)(((w) >> 32) & 0xffu))

int ivl__guest_scan_init(struct ivl__guest_scan *s, const struct ivl_shm_header *valid, int self);
void ivl__guest_scan_fini(struct ivl__guest_scan *s);
/*
 * Compare the live table at @base (described by the validated @valid) with
 * the last view and call @emit(ctx, JOIN or LEAVE, id) for each change: a
 * peer that appeared, vanished, or whose generation changed (LEAVE then
 * JOIN).  Every field is read as hostile data: unknown states count as
 * absent, vectors are clamped.  Returns the number of events emitted.
 */
int ivl__guest_scan_run(struct ivl__guest_scan *s, void *base, const struct ivl_shm_header *valid,
			void (*emit)(void *ctx, enum ivl_link_event_type t, uint16_t id),
			void *ctx);
/* Ringable vectors of @id now (0: absent or unknown). */
unsigned ivl__guest_scan_vectors(const struct ivl__guest_scan *s, uint32_t id);
/* Present IDs except self, ascending; returns the full count. */
int ivl__guest_scan_list(const struct ivl__guest_scan *s, uint16_t *ids, size_t max);

/* ---- the PCI side (guest-pci.c) ------------------------------------------- */

/* "0000:00:02.0" or "00:02.0" -> canonical "dddd:bb:dd.f" in @out (13
 * bytes).  -EINVAL for anything else. */
int ivl__guest_parse_bdf(const char *s, char out[13]);

/* The sysfs root, "/sys/bus/pci/devices" unless $IVL_SYSFS_PCI (tests). */
const char *ivl__guest_sysfs_root(void);

/* Find the device: @want NULL or "auto": the lowest 1af4:1110 address.
 * -ENODEV when none (or @want is not one), -EINVAL for a bad address. */
int ivl__guest_find(const char *want, char bdf[13]);

/* Open the device at @bdf and fill @dev.  @no_vfio: never use VFIO.
 * -EACCES without permission, -ENODEV, -errno. */
int ivl__guest_open(const char *bdf, bool no_vfio, struct ivl__guest_dev *dev);

/* ---- ivlink's kernel driver (guest-kdrv.c) ------------------------------ */

/* "/dev/ivlink-ivshmemN" of the device at @bdf (from sysfs); -ENODEV. */
int ivl__kdrv_node(const char *bdf, char *path, size_t len);
/* Open @bdf through ivlink_ivshmem.ko: map BAR2 (and the BAR0 page when
 * the driver allows it), bind one eventfd per MSI-X vector. */
int ivl__kdrv_open(const char *bdf, struct ivl__guest_dev *dev);

/* ---- VFIO (guest-vfio.c) ------------------------------------------------ */

/* Open @bdf through VFIO (type 1 IOMMU), map BAR2, set Bus Master Enable
 * and enable up to @want MSI-X vectors (one eventfd each). */
int ivl__vfio_open(const char *bdf, unsigned want, struct ivl__guest_dev *dev);

#endif
