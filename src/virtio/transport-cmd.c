/* SPDX-License-Identifier: MIT */
/*
 * The per-device command classes of the transport virtqueue
 * (docs/transport.md §3): features, status, queues, configuration space and
 * MSI.  Each command validates its length, reserved fields, values and the
 * device's state, and answers ERR with a reason instead of misbehaving.
 */
#include <errno.h>
#include <string.h>

#include "core/internal.h"
#include "transport-internal.h"

#define QUEUE_MAX 256u

/* The feature and status state machine of virtio 1.x §3.1, shared by the
 * managed devices and the management device (device_id 0). */
struct negotiation {
	uint64_t offered;
	uint64_t *drv_features;
	uint32_t *status;
};

static int cmd_features(struct negotiation n, uint16_t c, const uint8_t *out, size_t len,
			struct ivl__ans *a)
{
	switch (c) {
	case IVL_TRANSPORT_FEAT_GET_DEVICE:
	case IVL_TRANSPORT_FEAT_GET_DRIVER:
		if (len)
			return ivl__ans_err(a, IVL_TRANSPORT_E_LENGTH);
		return ivl__ans_ok64(a, c == IVL_TRANSPORT_FEAT_GET_DEVICE ? n.offered : *n.drv_features);
	case IVL_TRANSPORT_FEAT_SET_DRIVER: {
		if (len != 8)
			return ivl__ans_err(a, IVL_TRANSPORT_E_LENGTH);
		if (*n.status & IVL__VS_FEATURES_OK)
			return ivl__ans_err(a, IVL_TRANSPORT_E_STATE);
		uint64_t f = ivl__le64(out);
		if (f & ~n.offered)
			return ivl__ans_err(a, IVL_TRANSPORT_E_VALUE);
		*n.drv_features = f;
		return ivl__ans_ok(a, 0);
	}
	}
	return ivl__ans_err(a, IVL_TRANSPORT_E_COMMAND);
}

/*
 * STATUS_SET's checks.  Returns 0 and the bits to add in *add, 1 for a
 * reset (v == 0), or -(reason).  @msi_on: whether DRIVER_OK may be set
 * (a managed device's interrupts need MSI enabled).
 */
static int status_next(struct negotiation n, uint32_t v, bool msi_on, uint32_t *add)
{
	const uint32_t known = IVL__VS_ACKNOWLEDGE | IVL__VS_DRIVER | IVL__VS_DRIVER_OK |
			       IVL__VS_FEATURES_OK | IVL__VS_FAILED;
	if (v == 0)
		return 1;
	if (v & ~known)
		return -IVL_TRANSPORT_E_VALUE;
	uint32_t cur = *n.status & known;
	if (cur & ~v)
		return -IVL_TRANSPORT_E_STATE; /* clearing needs a reset */
	*add = v & ~cur;
	if ((*add & IVL__VS_FEATURES_OK) && !(*n.drv_features & IVL__VIRTIO_F_VERSION_1))
		return -IVL_TRANSPORT_E_VALUE;
	if ((*add & IVL__VS_DRIVER_OK) && !(v & IVL__VS_FEATURES_OK))
		return -IVL_TRANSPORT_E_STATE;
	if ((*add & IVL__VS_DRIVER_OK) && !msi_on)
		return -IVL_TRANSPORT_E_MSI_DISABLED;
	return 0;
}

static struct negotiation dev_negotiation(struct ivl__tdev *d)
{
	return (struct negotiation){
	    .offered = d->type->features | d->features | IVL__VIRTIO_F_VERSION_1 |
		       IVL_VIRTQ_F_EVENT_IDX |
		       IVL_VIRTQ_F_INDIRECT_DESC | IVL__VIRTIO_F_ACCESS_PLATFORM,
	    .drv_features = &d->drv_features,
	    .status = &d->status,
	};
}

static int cmd_status(struct ivl__tdev *d, uint16_t caller, uint16_t c, const uint8_t *out,
		      size_t len, struct ivl__ans *a)
{
	switch (c) {
	case IVL_TRANSPORT_STATUS_GET:
		if (len)
			return ivl__ans_err(a, IVL_TRANSPORT_E_LENGTH);
		return ivl__ans_ok32(a, d->status);
	case IVL_TRANSPORT_STATUS_RESET:
		if (len)
			return ivl__ans_err(a, IVL_TRANSPORT_E_LENGTH);
		ivl__tdev_reset(d);
		return ivl__ans_ok(a, 0);
	case IVL_TRANSPORT_STATUS_SET: {
		if (len != 4)
			return ivl__ans_err(a, IVL_TRANSPORT_E_LENGTH);
		uint32_t add = 0;
		int r = status_next(dev_negotiation(d), ivl__le32(out), ivl_msi_enabled(d->msi),
				    &add);
		if (r < 0)
			return ivl__ans_err(a, (uint32_t)-r);
		if (r == 1) {
			ivl__tdev_reset(d);
			return ivl__ans_ok(a, 0);
		}
		d->status |= add;
		d->driver_peer = caller;
		return ivl__ans_ok(a, 0);
	}
	}
	return ivl__ans_err(a, IVL_TRANSPORT_E_COMMAND);
}

int ivl__tp_self_cmd(uint64_t *drv_features, uint32_t *status, uint16_t cls, uint16_t c,
		     const uint8_t *out, size_t len, struct ivl__ans *a)
{
	struct negotiation n = {
	    .offered = IVL_TRANSPORT_MGMT_FEATURES, .drv_features = drv_features, .status = status};

	if (cls == IVL_TRANSPORT_CLASS_FEATURES)
		return cmd_features(n, c, out, len, a);
	if (cls != IVL_TRANSPORT_CLASS_STATUS)
		return ivl__ans_err(a, IVL_TRANSPORT_E_DEVICE_ID);
	switch (c) {
	case IVL_TRANSPORT_STATUS_GET:
		if (len)
			return ivl__ans_err(a, IVL_TRANSPORT_E_LENGTH);
		return ivl__ans_ok32(a, *status);
	case IVL_TRANSPORT_STATUS_RESET:
		if (len)
			return ivl__ans_err(a, IVL_TRANSPORT_E_LENGTH);
		*status = 0;
		*drv_features = 0;
		return ivl__ans_ok(a, 0);
	case IVL_TRANSPORT_STATUS_SET: {
		if (len != 4)
			return ivl__ans_err(a, IVL_TRANSPORT_E_LENGTH);
		uint32_t add = 0;
		/* The management device interrupts through the control
		 * block's driver doorbell, not MSI: DRIVER_OK needs no MSI. */
		int r = status_next(n, ivl__le32(out), true, &add);
		if (r < 0)
			return ivl__ans_err(a, (uint32_t)-r);
		if (r == 1) {
			*status = 0;
			*drv_features = 0;
		} else {
			*status |= add;
		}
		return ivl__ans_ok(a, 0);
	}
	}
	return ivl__ans_err(a, IVL_TRANSPORT_E_COMMAND);
}

/* Is [off, off + len) inside the window and @align-aligned? */
static int ring_part(const struct ivl__tdev *d, uint64_t off, uint64_t len, uint64_t align)
{
	if (off % align)
		return IVL_TRANSPORT_E_VALUE;
	if (off > d->win_size || len > d->win_size - off)
		return IVL_TRANSPORT_E_WINDOW;
	return 0;
}

static int cmd_queue(struct ivl__tdev *d, uint16_t c, const uint8_t *out, size_t len,
		     struct ivl__ans *a)
{
	size_t need = c == IVL_TRANSPORT_QUEUE_SET_ADDR			       ? 32
		      : c == IVL_TRANSPORT_QUEUE_SET_SIZE || c == IVL_TRANSPORT_QUEUE_ENABLE ? 8
									       : 4;
	if (c < IVL_TRANSPORT_QUEUE_GET_MAX || c > IVL_TRANSPORT_QUEUE_GET_NOTIFY)
		return ivl__ans_err(a, IVL_TRANSPORT_E_COMMAND);
	if (len != need)
		return ivl__ans_err(a, IVL_TRANSPORT_E_LENGTH);
	unsigned qi = ivl__le16(out);
	if (ivl__le16(out + 2) || (c == IVL_TRANSPORT_QUEUE_SET_ADDR && (ivl__le32(out + 4))))
		return ivl__ans_err(a, IVL_TRANSPORT_E_RESERVED);
	if (qi >= d->type->nqueues)
		return ivl__ans_err(a, IVL_TRANSPORT_E_QUEUE);
	struct ivl__tqueue *q = &d->q[qi];
	uint32_t v = need == 8 ? ivl__le32(out + 4) : 0;
	switch (c) {
	case IVL_TRANSPORT_QUEUE_GET_MAX:
		return ivl__ans_ok32(a, QUEUE_MAX);
	case IVL_TRANSPORT_QUEUE_GET_NOTIFY:
		if (!ivl__ans_room(a, 4))
			return ivl__ans_err(a, IVL_TRANSPORT_E_IN_SPACE);
		ivl__mgmt_notify(d->m, a->buf + 4);
		return ivl__ans_ok(a, 4);
	case IVL_TRANSPORT_QUEUE_RESET:
		ivl__tqueue_drop(q);
		return ivl__ans_ok(a, 0);
	case IVL_TRANSPORT_QUEUE_SET_SIZE:
		if (q->vq)
			return ivl__ans_err(a, IVL_TRANSPORT_E_STATE);
		if (v == 0 || v > QUEUE_MAX || (v & (v - 1)))
			return ivl__ans_err(a, IVL_TRANSPORT_E_VALUE);
		q->num = v;
		q->addr_set = false;
		return ivl__ans_ok(a, 0);
	case IVL_TRANSPORT_QUEUE_SET_ADDR: {
		if (q->vq || !q->num)
			return ivl__ans_err(a, IVL_TRANSPORT_E_STATE);
		uint64_t desc = ivl__le64(out + 8), avail = ivl__le64(out + 16),
			 used = ivl__le64(out + 24);
		int e;
		if ((e = ring_part(d, desc, 16ull * q->num, 16)) ||
		    (e = ring_part(d, avail, 6 + 2ull * q->num, 2)) ||
		    (e = ring_part(d, used, 6 + 8ull * q->num, 4)))
			return ivl__ans_err(a, (uint32_t)e);
		q->desc = desc;
		q->avail = avail;
		q->used = used;
		q->addr_set = true;
		return ivl__ans_ok(a, 0);
	}
	case IVL_TRANSPORT_QUEUE_ENABLE: {
		if (v > 1)
			return ivl__ans_err(a, IVL_TRANSPORT_E_VALUE);
		if (v == 0) {
			ivl_virtq_free(q->vq);
			q->vq = NULL;
			return ivl__ans_ok(a, 0);
		}
		if (q->vq || !q->addr_set || !(d->status & IVL__VS_FEATURES_OK))
			return ivl__ans_err(a, IVL_TRANSPORT_E_STATE);
		struct ivl_virtq_opts o = {
		    .role = IVL_VIRTQ_DEVICE,
		    .num = q->num,
		    .features =
			d->drv_features & (IVL_VIRTQ_F_EVENT_IDX | IVL_VIRTQ_F_INDIRECT_DESC),
		    .layout = {.desc = q->desc, .avail = q->avail, .used = q->used},
		};
		if (ivl_virtq_new(&q->vq, d->window, d->win_size, &o) < 0)
			return ivl__ans_err(a, IVL_TRANSPORT_E_WINDOW);
		return ivl__ans_ok(a, 0);
	}
	}
	return ivl__ans_err(a, IVL_TRANSPORT_E_COMMAND);
}

static int cmd_config(struct ivl__tdev *d, uint16_t c, const uint8_t *out, size_t len,
		      struct ivl__ans *a)
{
	if (c == IVL_TRANSPORT_CONFIG_GENERATION) {
		if (len)
			return ivl__ans_err(a, IVL_TRANSPORT_E_LENGTH);
		return ivl__ans_ok32(a, d->generation);
	}
	if (c != IVL_TRANSPORT_CONFIG_READ && c != IVL_TRANSPORT_CONFIG_WRITE)
		return ivl__ans_err(a, IVL_TRANSPORT_E_COMMAND);
	if (len < 8)
		return ivl__ans_err(a, IVL_TRANSPORT_E_LENGTH);
	uint32_t off = ivl__le32(out), n = ivl__le32(out + 4);
	if (c == IVL_TRANSPORT_CONFIG_WRITE ? len - 8 != n : len != 8)
		return ivl__ans_err(a, IVL_TRANSPORT_E_LENGTH);
	if (n == 0 || n > IVL_TRANSPORT_CONFIG_MAX || off > d->type->config_size ||
	    n > d->type->config_size - off)
		return ivl__ans_err(a, IVL_TRANSPORT_E_VALUE);
	if (c == IVL_TRANSPORT_CONFIG_READ) {
		if (!ivl__ans_room(a, n))
			return ivl__ans_err(a, IVL_TRANSPORT_E_IN_SPACE);
		if (d->type->config_read)
			d->type->config_read(d);
		memcpy(a->buf + 4, d->config + off, n);
		return ivl__ans_ok(a, n);
	}
	if (!d->type->config_writable || !d->type->config_writable(d, off, n))
		return ivl__ans_err(a, IVL_TRANSPORT_E_VALUE);
	memcpy(d->config + off, out + 8, n);
	if (d->type->config_write && d->type->config_write(d, off, n) < 0) {
		/* Refused, never ignored: the driver hears it, the config
		 * space shows the value in effect. */
		if (d->type->config_read)
			d->type->config_read(d);
		return ivl__ans_err(a, IVL_TRANSPORT_E_VALUE);
	}
	return ivl__ans_ok(a, 0);
}

static int cmd_msi(struct ivl__tdev *d, uint16_t c, const uint8_t *out, size_t len,
		   struct ivl__ans *a)
{
	static const uint8_t need[] = {0, 0, 16, 4, 4, 4, 4, 8, 0, 0};
	if (c < IVL_TRANSPORT_MSI_GET_NUM || c > IVL_TRANSPORT_MSI_DISABLE)
		return ivl__ans_err(a, IVL_TRANSPORT_E_COMMAND);
	if (len != need[c])
		return ivl__ans_err(a, IVL_TRANSPORT_E_LENGTH);
	uint32_t vec = len >= 4 ? ivl__le32(out) : 0;
	if (c == IVL_TRANSPORT_MSI_MAP_QUEUE) {
		if (ivl__le16(out + 2))
			return ivl__ans_err(a, IVL_TRANSPORT_E_RESERVED);
		if (ivl__le16(out) >= d->type->nqueues)
			return ivl__ans_err(a, IVL_TRANSPORT_E_QUEUE);
		vec = ivl__le32(out + 4);
	}
	bool any_vec = c == IVL_TRANSPORT_MSI_MAP_CONFIG || c == IVL_TRANSPORT_MSI_MAP_QUEUE;
	if (len && vec >= ivl_msi_num(d->msi) && !(any_vec && vec == IVL_MSI_NO_VECTOR))
		return ivl__ans_err(a, IVL_TRANSPORT_E_VECTOR);
	/* Non-sharing tables take only NO_VECTOR (unmap, seed 004) or the
	 * event's fixed vector (map it back). */
	if (c == IVL_TRANSPORT_MSI_MAP_CONFIG && ivl_msi_map_config(d->msi, vec) == -EPERM)
		return ivl__ans_err(a, IVL_TRANSPORT_E_NOT_SHARING);
	if (c == IVL_TRANSPORT_MSI_MAP_QUEUE && ivl_msi_map_queue(d->msi, ivl__le16(out), vec) == -EPERM)
		return ivl__ans_err(a, IVL_TRANSPORT_E_NOT_SHARING);
	struct ivl_msi_vector mv;
	switch (c) {
	case IVL_TRANSPORT_MSI_GET_NUM:
		return ivl__ans_ok32(a, ivl_msi_num(d->msi));
	case IVL_TRANSPORT_MSI_CONFIGURE: {
		uint32_t data = ivl__le32(out + 4);
		uint64_t addr = ivl__le64(out + 8);
		/* ivlink: address = a 16-bit peer, data = a 16-bit vector. */
		if (addr > UINT16_MAX || data > UINT16_MAX)
			return ivl__ans_err(a, IVL_TRANSPORT_E_VALUE);
		ivl_msi_configure(d->msi, vec, addr, data);
		return ivl__ans_ok(a, 0);
	}
	case IVL_TRANSPORT_MSI_MASK:
		ivl_msi_mask(d->msi, vec);
		return ivl__ans_ok(a, 0);
	case IVL_TRANSPORT_MSI_UNMASK:
		(void)ivl_msi_unmask(d->msi, vec); /* a failed delivery stays pending */
		return ivl__ans_ok(a, 0);
	case IVL_TRANSPORT_MSI_PENDING:
		ivl_msi_get(d->msi, vec, &mv);
		return ivl__ans_ok32(a, mv.pending);
	case IVL_TRANSPORT_MSI_MAP_CONFIG: /* done above */
	case IVL_TRANSPORT_MSI_MAP_QUEUE:
		return ivl__ans_ok(a, 0);
	case IVL_TRANSPORT_MSI_ENABLE:
		ivl_msi_enable(d->msi);
		return ivl__ans_ok(a, 0);
	default: /* IVL_TRANSPORT_MSI_DISABLE */
		/* Seed 002: managed devices have no legacy interrupt; with
		 * MSI disabled a live device's interrupts would vanish.  A
		 * reset (which also disables MSI) comes first. */
		if (d->status & IVL__VS_DRIVER_OK)
			return ivl__ans_err(a, IVL_TRANSPORT_E_STATE);
		ivl_msi_disable(d->msi);
		return ivl__ans_ok(a, 0);
	}
}

int ivl__tp_device_cmd(struct ivl__tdev *d, uint16_t caller, uint16_t cls, uint16_t c,
		       const uint8_t *out, size_t len, struct ivl__ans *a)
{
	switch (cls) {
	case IVL_TRANSPORT_CLASS_FEATURES:
		return cmd_features(dev_negotiation(d), c, out, len, a);
	case IVL_TRANSPORT_CLASS_STATUS:
		return cmd_status(d, caller, c, out, len, a);
	case IVL_TRANSPORT_CLASS_QUEUE:
		return cmd_queue(d, c, out, len, a);
	case IVL_TRANSPORT_CLASS_CONFIG:
		return cmd_config(d, c, out, len, a);
	case IVL_TRANSPORT_CLASS_MSI:
		return cmd_msi(d, c, out, len, a);
	}
	return ivl__ans_err(a, IVL_TRANSPORT_E_CLASS);
}
