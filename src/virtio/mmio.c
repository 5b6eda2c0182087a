/* SPDX-License-Identifier: MIT */
/*
 * A virtio-mmio version 2 device, at register level (virtio 1.x §4.2.2),
 * plus the MSI registers of seed 004 (docs/virtio.md §4) (0x0c0..0x0dc, where virtio 1.2
 * would put QueueReset and the shared-memory registers; this model has
 * neither).  Everything the guest writes is data: wrong offsets and sizes
 * read as 0 or are ignored, writes at the wrong time are ignored, and both
 * are counted.  Queue addresses are guest-physical; they become offsets into
 * the device's window and are checked there by ivl_virtq_new().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include <ivlink/mmio.h>
#include <ivlink/msi.h>
#include <ivlink/virtq.h>

enum {
	R_MAGIC = 0x000,
	R_VERSION = 0x004,
	R_DEVICE_ID = 0x008,
	R_VENDOR_ID = 0x00c,
	R_DEV_FEATURES = 0x010,
	R_DEV_FEATURES_SEL = 0x014,
	R_DRV_FEATURES = 0x020,
	R_DRV_FEATURES_SEL = 0x024,
	R_QUEUE_SEL = 0x030,
	R_QUEUE_NUM_MAX = 0x034,
	R_QUEUE_NUM = 0x038,
	R_QUEUE_READY = 0x044,
	R_QUEUE_NOTIFY = 0x050,
	R_INT_STATUS = 0x060,
	R_INT_ACK = 0x064,
	R_STATUS = 0x070,
	R_QUEUE_DESC_LO = 0x080,
	R_QUEUE_DESC_HI = 0x084,
	R_QUEUE_DRIVER_LO = 0x090,
	R_QUEUE_DRIVER_HI = 0x094,
	R_QUEUE_DEVICE_LO = 0x0a0,
	R_QUEUE_DEVICE_HI = 0x0a4,
	R_MSI_VEC_NUM = 0x0c0,
	R_MSI_STATE = 0x0c4,
	R_MSI_CMD = 0x0c8,
	R_MSI_VEC_SEL = 0x0d0,
	R_MSI_ADDR_LO = 0x0d4,
	R_MSI_ADDR_HI = 0x0d8,
	R_MSI_DATA = 0x0dc,
	R_CONFIG_GEN = 0x0fc,
	R_CONFIG = 0x100,
};

enum {
	MSI_ENABLE = 1,
	MSI_DISABLE,
	MSI_CONFIGURE,
	MSI_MASK,
	MSI_UNMASK,
	MSI_MAP_CONFIG,
	MSI_MAP_QUEUE
};

#define S_ACKNOWLEDGE 1u
#define S_DRIVER 2u
#define S_DRIVER_OK 4u
#define S_FEATURES_OK 8u
#define S_NEEDS_RESET 64u
#define S_FAILED 128u
#define F_VERSION_1 (1ull << 32)
#define INT_VRING 1u
#define INT_CONFIG 2u
#define CONFIG_MAX (0x1000 - R_CONFIG)

struct mq {
	uint32_t num;
	bool ready;
	uint64_t desc, driver, device;
	struct ivl_virtq *vq;
};

struct ivl_mmio {
	struct ivl_mmio_opts o;
	uint64_t dev_features;
	uint64_t drv_features;
	uint32_t dev_sel, drv_sel, queue_sel;
	uint32_t status;
	uint32_t isr;
	uint32_t config_gen;
	struct mq q[IVL_MMIO_MAX_QUEUES];
	struct ivl_msi *msi;
	uint32_t msi_sel, msi_addr_lo, msi_addr_hi, msi_data;
	struct ivl_mmio_stats st;
};

IVL_EXPORT int ivl_mmio_new(struct ivl_mmio **out, const struct ivl_mmio_opts *o)
{
	if (!out || !o)
		return -EINVAL;
	*out = NULL;
	unsigned n = o->queue_num_max;
	if (o->num_queues == 0 || o->num_queues > IVL_MMIO_MAX_QUEUES || n == 0 ||
	    n > IVL_VIRTQ_MAX_SIZE || (n & (n - 1)) || o->config_size > CONFIG_MAX ||
	    (o->config_size && !o->config) || (o->window_size && !o->window))
		return -EINVAL;
	struct ivl_mmio *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->o = *o;
	m->dev_features = o->features | F_VERSION_1;
	if (o->msi_vectors) {
		int r = ivl_msi_new(&m->msi, o->msi_vectors, o->num_queues, o->msi_sharing,
				    o->msi_deliver, o->opaque);
		if (r < 0) {
			free(m);
			return r;
		}
	}
	*out = m;
	return 0;
}

static void drop_queues(struct ivl_mmio *m)
{
	for (unsigned i = 0; i < IVL_MMIO_MAX_QUEUES; i++) {
		ivl_virtq_free(m->q[i].vq);
		memset(&m->q[i], 0, sizeof(m->q[i]));
	}
}

IVL_EXPORT void ivl_mmio_free(struct ivl_mmio *m)
{
	if (!m)
		return;
	drop_queues(m);
	ivl_msi_free(m->msi);
	free(m);
}

static void set_isr(struct ivl_mmio *m, uint32_t isr)
{
	bool was = m->isr != 0;
	m->isr = isr;
	if (was != (isr != 0) && m->o.irq_level)
		m->o.irq_level(m->o.opaque, isr != 0);
}

/* virtio 1.x §4.2.3.1: writing 0 to Status resets the device. */
static void reset(struct ivl_mmio *m)
{
	drop_queues(m);
	m->drv_features = 0;
	m->dev_sel = m->drv_sel = m->queue_sel = 0;
	m->status = 0;
	m->msi_sel = m->msi_addr_lo = m->msi_addr_hi = m->msi_data = 0;
	ivl_msi_reset(m->msi);
	set_isr(m, 0);
	if (m->o.status_changed)
		m->o.status_changed(m->o.opaque, 0);
}

static struct mq *sel_queue(struct ivl_mmio *m)
{
	return m->queue_sel < m->o.num_queues ? &m->q[m->queue_sel] : NULL;
}

static int seq_err(struct ivl_mmio *m, const char *why)
{
	m->st.bad_sequence++;
	ivl__debug("mmio: ignored: %s", why);
	return 0;
}

static void write_status(struct ivl_mmio *m, uint32_t v)
{
	if (v == 0) {
		reset(m);
		return;
	}
	uint32_t keep = m->status & S_NEEDS_RESET; /* owned by the device */
	v &= 0xff & ~S_NEEDS_RESET;
	/* §2.1.2: the driver never clears a bit it set (except by reset). */
	if ((m->status & ~S_NEEDS_RESET) & ~v) {
		seq_err(m, "status bit cleared without reset");
		return;
	}
	uint32_t added = v & ~m->status;
	if ((added & S_FEATURES_OK)) {
		/* §3.1.1: only a subset of what we offer, and VERSION_1 (no
		 * legacy interface on version 2).  Refusing = not latching
		 * FEATURES_OK, which the driver sees when it re-reads. */
		if ((m->drv_features & ~m->dev_features) || !(m->drv_features & F_VERSION_1)) {
			seq_err(m, "features not acceptable");
			v &= ~S_FEATURES_OK;
		}
	}
	if ((added & S_DRIVER_OK) && !(v & S_FEATURES_OK)) {
		seq_err(m, "DRIVER_OK without FEATURES_OK");
		v &= ~S_DRIVER_OK;
	}
	m->status = v | keep;
	if (m->o.status_changed)
		m->o.status_changed(m->o.opaque, m->status);
}

static void queue_ready(struct ivl_mmio *m, struct mq *q, uint32_t v)
{
	if (!v) {
		ivl_virtq_free(q->vq);
		q->vq = NULL;
		q->ready = false;
		return;
	}
	if (q->ready)
		return;
	if (!(m->status & S_FEATURES_OK) || q->num == 0) {
		seq_err(m, "QueueReady before FEATURES_OK or QueueNum");
		return;
	}
	uint64_t b = m->o.window_base;
	if (q->desc < b || q->driver < b || q->device < b) {
		seq_err(m, "queue address below the window");
		return;
	}
	struct ivl_virtq_opts vo = {
	    .role = IVL_VIRTQ_DEVICE,
	    .num = q->num,
	    .features = m->drv_features & (IVL_VIRTQ_F_INDIRECT_DESC | IVL_VIRTQ_F_EVENT_IDX),
	    .layout = {.desc = q->desc - b, .avail = q->driver - b, .used = q->device - b},
	};
	if (!m->o.window || ivl_virtq_new(&q->vq, m->o.window, m->o.window_size, &vo) < 0) {
		seq_err(m, "queue addresses outside the window");
		return;
	}
	q->ready = true;
}

static void msi_cmd(struct ivl_mmio *m, uint32_t cmd)
{
	struct ivl_msi *msi = m->msi;
	int r = 0;
	switch (cmd) {
	case MSI_ENABLE:
		ivl_msi_enable(msi);
		break;
	case MSI_DISABLE:
		ivl_msi_disable(msi);
		break;
	case MSI_CONFIGURE:
		r = ivl_msi_configure(msi, m->msi_sel,
				      (uint64_t)m->msi_addr_hi << 32 | m->msi_addr_lo, m->msi_data);
		break;
	case MSI_MASK:
		r = ivl_msi_mask(msi, m->msi_sel);
		break;
	case MSI_UNMASK:
		r = ivl_msi_unmask(msi, m->msi_sel);
		if (r == -EINVAL)
			break;
		r = 0; /* a failed delivery stays pending; not the guest's fault */
		break;
	case MSI_MAP_CONFIG:
		r = ivl_msi_map_config(msi, m->msi_sel);
		break;
	case MSI_MAP_QUEUE:
		r = ivl_msi_map_queue(msi, m->queue_sel, m->msi_sel);
		break;
	default:
		r = -EINVAL;
	}
	if (r < 0)
		seq_err(m, "MSI command refused");
}

static void set_half(uint64_t *v, bool hi, uint32_t x)
{
	*v = hi ? (*v & 0xffffffffull) | (uint64_t)x << 32 : (*v & ~0xffffffffull) | x;
}

static bool config_access(struct ivl_mmio *m, uint64_t offset, unsigned size, uint32_t *off)
{
	if (offset < R_CONFIG || (size != 1 && size != 2 && size != 4))
		return false;
	uint64_t o = offset - R_CONFIG;
	if (o > m->o.config_size || size > m->o.config_size - o)
		return false;
	*off = (uint32_t)o;
	return true;
}

IVL_EXPORT uint32_t ivl_mmio_read(struct ivl_mmio *m, uint64_t offset, unsigned size)
{
	if (!m)
		return 0;
	uint32_t off;
	if (offset >= R_CONFIG) {
		if (!config_access(m, offset, size, &off))
			goto bad;
		if (m->o.config_read)
			m->o.config_read(m->o.opaque, off, size);
		uint32_t v = 0;
		/* Config fields are little-endian in the buffer (virtio 1.x). */
		for (unsigned i = 0; i < size; i++)
			v |= (uint32_t)((const uint8_t *)m->o.config)[off + i] << (8 * i);
		return v;
	}
	if (size != 4 || (offset & 3))
		goto bad;
	struct mq *q = sel_queue(m);
	switch (offset) {
	case R_MAGIC:
		return IVL_MMIO_MAGIC;
	case R_VERSION:
		return 2;
	case R_DEVICE_ID:
		return m->o.device_id;
	case R_VENDOR_ID:
		return m->o.vendor_id;
	case R_DEV_FEATURES:
		return m->dev_sel == 0	 ? (uint32_t)m->dev_features
		       : m->dev_sel == 1 ? (uint32_t)(m->dev_features >> 32)
					 : 0;
	case R_QUEUE_NUM_MAX:
		/* 0: the selected queue does not exist (§4.2.2). */
		return q ? m->o.queue_num_max : 0;
	case R_QUEUE_READY:
		return q && q->ready;
	case R_INT_STATUS:
		return m->isr;
	case R_STATUS:
		return m->status;
	case R_CONFIG_GEN:
		return m->config_gen;
	case R_MSI_VEC_NUM:
		return m->msi ? ivl_msi_num(m->msi) : 0;
	case R_MSI_STATE:
		return m->msi ? (uint32_t)ivl_msi_enabled(m->msi) |
				    (uint32_t)ivl_msi_sharing(m->msi) << 1
			      : 0;
	default:
		break;
	}
bad:
	m->st.bad_access++;
	return 0;
}

static bool queue_writable(struct ivl_mmio *m, struct mq *q)
{
	if (!q || q->ready) {
		seq_err(m, "queue register of a missing or ready queue");
		return false;
	}
	return true;
}

IVL_EXPORT void ivl_mmio_write(struct ivl_mmio *m, uint64_t offset, uint32_t v, unsigned size)
{
	if (!m)
		return;
	uint32_t off;
	if (offset >= R_CONFIG) {
		if (!config_access(m, offset, size, &off))
			goto bad;
		for (unsigned i = 0; i < size; i++)
			((uint8_t *)m->o.config)[off + i] = (uint8_t)(v >> (8 * i));
		if (m->o.config_write)
			m->o.config_write(m->o.opaque, off, size);
		return;
	}
	if (size != 4 || (offset & 3))
		goto bad;
	struct mq *q = sel_queue(m);
	switch (offset) {
	case R_DEV_FEATURES_SEL:
		m->dev_sel = v;
		return;
	case R_DRV_FEATURES:
		if (m->status & S_FEATURES_OK) {
			seq_err(m, "DriverFeatures after FEATURES_OK");
			return;
		}
		if (m->drv_sel <= 1)
			set_half(&m->drv_features, m->drv_sel == 1, v);
		else if (v)
			seq_err(m, "DriverFeatures beyond bit 63");
		return;
	case R_DRV_FEATURES_SEL:
		m->drv_sel = v;
		return;
	case R_QUEUE_SEL:
		m->queue_sel = v;
		return;
	case R_QUEUE_NUM:
		if (!queue_writable(m, q))
			return;
		if (v == 0 || v > m->o.queue_num_max || (v & (v - 1))) {
			seq_err(m, "QueueNum not a power of two <= QueueNumMax");
			return;
		}
		q->num = v;
		return;
	case R_QUEUE_READY:
		if (!q) {
			seq_err(m, "QueueReady of a missing queue");
			return;
		}
		queue_ready(m, q, v);
		return;
	case R_QUEUE_NOTIFY:
		if (v >= m->o.num_queues || !m->q[v].ready) {
			seq_err(m, "QueueNotify of a queue not ready");
			return;
		}
		if (m->o.queue_notify)
			m->o.queue_notify(m->o.opaque, v);
		return;
	case R_INT_ACK:
		/* With MSI enabled InterruptStatus stays 0 and ACK is ignored. */
		if (!ivl_msi_enabled(m->msi))
			set_isr(m, m->isr & ~v);
		return;
	case R_STATUS:
		write_status(m, v);
		return;
	case R_QUEUE_DESC_LO:
	case R_QUEUE_DESC_HI:
		if (queue_writable(m, q))
			set_half(&q->desc, offset == R_QUEUE_DESC_HI, v);
		return;
	case R_QUEUE_DRIVER_LO:
	case R_QUEUE_DRIVER_HI:
		if (queue_writable(m, q))
			set_half(&q->driver, offset == R_QUEUE_DRIVER_HI, v);
		return;
	case R_QUEUE_DEVICE_LO:
	case R_QUEUE_DEVICE_HI:
		if (queue_writable(m, q))
			set_half(&q->device, offset == R_QUEUE_DEVICE_HI, v);
		return;
	default:
		break;
	}
	if (m->msi) {
		switch (offset) {
		case R_MSI_CMD:
			msi_cmd(m, v);
			return;
		case R_MSI_VEC_SEL:
			m->msi_sel = v;
			return;
		case R_MSI_ADDR_LO:
			m->msi_addr_lo = v;
			return;
		case R_MSI_ADDR_HI:
			m->msi_addr_hi = v;
			return;
		case R_MSI_DATA:
			m->msi_data = v;
			return;
		default:
			break;
		}
	}
bad:
	m->st.bad_access++;
}

IVL_EXPORT uint32_t ivl_mmio_status(const struct ivl_mmio *m)
{
	return m ? m->status : 0;
}

IVL_EXPORT uint64_t ivl_mmio_driver_features(const struct ivl_mmio *m)
{
	return m ? m->drv_features : 0;
}

IVL_EXPORT void ivl_mmio_get_stats(const struct ivl_mmio *m, struct ivl_mmio_stats *out)
{
	if (m && out)
		*out = m->st;
}

IVL_EXPORT struct ivl_msi *ivl_mmio_msi(struct ivl_mmio *m)
{
	return m ? m->msi : NULL;
}

IVL_EXPORT struct ivl_virtq *ivl_mmio_queue(struct ivl_mmio *m, unsigned queue)
{
	if (!m || queue >= m->o.num_queues || !m->q[queue].ready)
		return NULL;
	return m->q[queue].vq;
}

/* An event: through its MSI vector when MSI is on, else the ISR bit and the
 * interrupt line.  An unmapped event (NO_VECTOR) is suppressed by choice of
 * the driver. */
static int raise_event(struct ivl_mmio *m, bool config, unsigned queue)
{
	if (ivl_msi_enabled(m->msi)) {
		int r = config ? ivl_msi_raise_config(m->msi) : ivl_msi_raise_queue(m->msi, queue);
		if (r == -ENOENT)
			return 0;
		return r < 0 ? r : 1;
	}
	set_isr(m, m->isr | (config ? INT_CONFIG : INT_VRING));
	return 1;
}

IVL_EXPORT int ivl_mmio_notify_queue(struct ivl_mmio *m, unsigned queue)
{
	struct ivl_virtq *vq = ivl_mmio_queue(m, queue);
	if (!vq)
		return -EINVAL;
	int r = ivl_virtq_need_notify(vq);
	if (r <= 0)
		return r;
	return raise_event(m, false, queue);
}

IVL_EXPORT int ivl_mmio_config_changed(struct ivl_mmio *m)
{
	if (!m)
		return -EINVAL;
	m->config_gen++;
	return raise_event(m, true, 0);
}

IVL_EXPORT int ivl_mmio_needs_reset(struct ivl_mmio *m)
{
	if (!m)
		return -EINVAL;
	m->status |= S_NEEDS_RESET;
	/* §2.1.2: a configuration change notification once DRIVER_OK is set. */
	if (m->status & S_DRIVER_OK)
		return raise_event(m, true, 0);
	return 0;
}
