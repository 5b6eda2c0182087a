/* SPDX-License-Identifier: MIT */
/*
 * Inside the management device: a managed device as the command decoder
 * (transport.c) keeps it, and the interface a device type (dev-console.c,
 * dev-sdm.c) implements.
 */
#ifndef IVL_VIRTIO_TRANSPORT_INTERNAL_H
#define IVL_VIRTIO_TRANSPORT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <ivlink/transport.h>
#include <ivlink/mmio.h>
#include <ivlink/msi.h>
#include <ivlink/virtq.h>

/* virtio device status bits (virtio 1.x §2.1). */
#define IVL__VS_ACKNOWLEDGE 1u
#define IVL__VS_DRIVER 2u
#define IVL__VS_DRIVER_OK 4u
#define IVL__VS_FEATURES_OK 8u
#define IVL__VS_NEEDS_RESET 64u
#define IVL__VS_FAILED 128u
#define IVL__VIRTIO_F_VERSION_1 (1ull << 32)
/* Addresses are window offsets, not guest-physical (virtio 1.x §6): a
 * guest kernel's virtio core then maps every buffer through the DMA API. */
#define IVL__VIRTIO_F_ACCESS_PLATFORM (1ull << 33)

#define IVL__TDEV_CONFIG_MAX 64u

struct ivl__tdev;

/* A device type.  Callbacks run inside ivl_transport_device_exec()/ivl_transport_device_process(). */
struct ivl__tdev_type {
	uint32_t virtio_id;
	const char *name;
	unsigned nqueues;
	uint64_t features; /* offered besides VERSION_1 and the ring features */
	uint32_t config_size;
	uint64_t window_default;
	/* Create the backend; fill d->config and d->backend.  @arg: CREATE's
	 * backend argument (NUL-terminated, untrusted), or NULL.  -errno fails
	 * the CREATE with IVL_TRANSPORT_E_BACKEND (IVL_TRANSPORT_E_VALUE for -EINVAL). */
	int (*init)(struct ivl__tdev *d, const struct ivl_transport_create *c, const char *arg,
		    const struct ivl_transport_device_opts *o);
	void (*fini)(struct ivl__tdev *d);
	/* The driver reset the device (its queues are gone). */
	void (*reset)(struct ivl__tdev *d);
	/* Serve queues and backend without blocking; buffers served. */
	int (*serve)(struct ivl__tdev *d);
	int (*timeout_ms)(struct ivl__tdev *d); /* NULL: -1 */
	/* Before a config read / after a config write.  config_write returns
	 * 0, or -errno when the device refuses the value (the command then
	 * answers IVL_TRANSPORT_E_VALUE and config_read restores the bytes). */
	void (*config_read)(struct ivl__tdev *d);
	int (*config_write)(struct ivl__tdev *d, uint32_t off, uint32_t len);
	/* Which config bytes the driver may write now (others:
	 * IVL_TRANSPORT_E_VALUE). */
	bool (*config_writable)(const struct ivl__tdev *d, uint32_t off, uint32_t len);
};

struct ivl__tqueue {
	unsigned num;
	uint64_t desc, avail, used;
	bool addr_set;
	struct ivl_virtq *vq; /* device role, while enabled */
};

struct ivl__tdev {
	struct ivl_transport_device *m;
	uint64_t id;
	const struct ivl__tdev_type *type;
	uint32_t status;
	uint64_t drv_features;
	uint32_t generation; /* config generation */
	uint8_t *window;
	uint64_t win_off, win_size;
	struct ivl_msi *msi;
	uint32_t flags;
	struct ivl__tqueue q[IVL_TRANSPORT_MAX_QUEUES];
	uint8_t config[IVL__TDEV_CONFIG_MAX];
	uint16_t driver_peer;
	uint64_t features; /* offered besides the type's (set by its init) */
	char backend[64];
	void *priv;
};

extern const struct ivl__tdev_type ivl__console_type;
extern const struct ivl__tdev_type ivl__sdm_type;
extern const struct ivl__tdev_type ivl__rng_type;
extern const struct ivl__tdev_type ivl__blk_type;
extern const struct ivl__tdev_type ivl__net_type;

/* The device-role ring of queue @q when the device is live (DRIVER_OK, not
 * NEEDS_RESET, queue enabled), else NULL. */
struct ivl_virtq *ivl__tdev_queue(struct ivl__tdev *d, unsigned q);
/* After a flush on queue @q: interrupt the driver (its MSI vector) if the
 * ring asks for it.  Returns 1, 0, or -errno (not fatal). */
int ivl__tdev_notify(struct ivl__tdev *d, unsigned q);
/* A queue broke (hostile ring): DEVICE_NEEDS_RESET and a config
 * interrupt. */
void ivl__tdev_broken(struct ivl__tdev *d, int err);
/* A config field changed on the device side: generation + interrupt. */
void ivl__tdev_config_changed(struct ivl__tdev *d);

/* The management area at app-area @offset (@size bytes, 0: the rest) of
 * @link, for an endpoint whose own doorbell is @vector.  Errors: -EINVAL (no
 * link, @vector beyond the link's, misaligned), -ENOSPC (outside or too
 * small). */
struct ivl_link;
int ivl__tp_area(struct ivl_link *link, uint64_t offset, uint64_t size, unsigned vector,
		 uint8_t **area, uint64_t *area_size);

/* The peer whose command ivl_transport_device_exec() runs (recorded as a device's
 * driver_peer by CREATE and STATUS_SET). */
void ivl__mgmt_set_caller(struct ivl_transport_device *m, uint16_t peer);

/* The doorbell that kicks this host's queues, as struct ivl_transport_notify. */
void ivl__mgmt_notify(const struct ivl_transport_device *m, uint8_t out[4]);

/* Copy from the readable pieces of @e into @dst (at most @max bytes), and
 * into its writable pieces from @src; both return the bytes copied. */
size_t ivl__elem_read(const struct ivl_virtq_elem *e, void *dst, size_t max);
size_t ivl__elem_write(const struct ivl_virtq_elem *e, const void *src, size_t len);
/* Pop the next chain of live queue @q into @e; 1, 0 (nothing or the queue
 * is not live), or < 0 after breaking the device. */
int ivl__tdev_pop(struct ivl__tdev *d, unsigned q, struct ivl_virtq_elem *e);
/* Push @head with @len, flush and notify. */
void ivl__tdev_done(struct ivl__tdev *d, unsigned q, uint16_t head, uint32_t len);

/* dev-net.c's slot for state shared by the net devices of @m (its
 * switches); NULL while no net device uses a switch. */
void **ivl__mgmt_net(struct ivl_transport_device *m);

/* Watch @fd (level-triggered) for @events (0: not at all for now), or
 * stop watching it before closing it.  Returns 0 or -errno. */
int ivl__mgmt_watch(struct ivl_transport_device *m, int fd, uint32_t events);

/* Little-endian accessors for unaligned wire data. */
static inline uint16_t ivl__le16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[0] | b[1] << 8);
}
static inline uint32_t ivl__le32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static inline uint64_t ivl__le64(const void *p)
{
	const uint8_t *b = p;
	return ivl__le32(b) | (uint64_t)ivl__le32(b + 4) << 32;
}
static inline void ivl__put16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}
static inline void ivl__put32(void *p, uint32_t v)
{
	uint8_t *b = p;
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}
static inline void ivl__put64(void *p, uint64_t v)
{
	ivl__put32(p, (uint32_t)v);
	ivl__put32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

/* ---- answers (docs/transport.md §3) -------------------------------------- */

struct ivl__ans {
	uint8_t *buf; /* ack, then in[]; at least 8 bytes */
	size_t max, len;
};

/* ERR with @reason (8 bytes); returns -1. */
static inline int ivl__ans_err(struct ivl__ans *a, uint32_t reason)
{
	ivl__put32(a->buf, IVL_TRANSPORT_ERR);
	ivl__put32(a->buf + 4, reason);
	a->len = 8;
	return -1;
}

/* OK with @n bytes of in[] already written at buf + 4; returns 0. */
static inline int ivl__ans_ok(struct ivl__ans *a, size_t n)
{
	ivl__put32(a->buf, IVL_TRANSPORT_OK);
	a->len = 4 + n;
	return 0;
}

static inline bool ivl__ans_room(const struct ivl__ans *a, size_t n)
{
	return a->max - 4 >= n;
}

static inline int ivl__ans_ok32(struct ivl__ans *a, uint32_t v)
{
	if (!ivl__ans_room(a, 4))
		return ivl__ans_err(a, IVL_TRANSPORT_E_IN_SPACE);
	ivl__put32(a->buf + 4, v);
	return ivl__ans_ok(a, 4);
}

static inline int ivl__ans_ok64(struct ivl__ans *a, uint64_t v)
{
	if (!ivl__ans_room(a, 8))
		return ivl__ans_err(a, IVL_TRANSPORT_E_IN_SPACE);
	ivl__put64(a->buf + 4, v);
	return ivl__ans_ok(a, 8);
}

/* transport-cmd.c: a command of classes 1..5 for device @d, sent by peer
 * @caller. */
int ivl__tp_device_cmd(struct ivl__tdev *d, uint16_t caller, uint16_t cls, uint16_t c,
		       const uint8_t *out, size_t len, struct ivl__ans *a);
/* transport-cmd.c: FEATURES or STATUS for the management device itself
 * (device_id 0): it offers IVL_TRANSPORT_MGMT_FEATURES; a reset clears only its
 * own status and driver features (managed devices are not touched).  Any
 * other class answers IVL_TRANSPORT_E_DEVICE_ID. */
#define IVL_TRANSPORT_MGMT_FEATURES (IVL_TRANSPORT_F_TRANSPT_VQ | IVL__VIRTIO_F_VERSION_1)
int ivl__tp_self_cmd(uint64_t *drv_features, uint32_t *status, uint16_t cls, uint16_t c,
		     const uint8_t *out, size_t len, struct ivl__ans *a);
/* transport.c: drop a queue's ring and settings; reset a device (status 0:
 * queues, features, MSI, the type's reset). */
void ivl__tqueue_drop(struct ivl__tqueue *q);
void ivl__tdev_reset(struct ivl__tdev *d);

#endif
