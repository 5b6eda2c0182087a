// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio_ivlink: the driver side of ivlink's transport virtqueue (seed
 * 002, docs/transport.md, docs/guest-virtio.md) in a guest kernel, on the
 * ivshmem driver's in-kernel API (ivlink_ivshmem.h).
 *
 * It binds as an auxiliary driver to every ivshmem-doorbell device of
 * ivlink_ivshmem.ko, finds the ivlink header and the management area in
 * the region, waits (bounded) for a device host, and then sends commands
 * on the transport virtqueue: one at a time, answered by an interrupt on
 * one of the device's MSI-X vectors, and polled every 20 ms besides
 * (doorbells are hints).  sysfs on the auxiliary device: `devices` (LIST
 * and QUERY), `create` and `destroy` (CREATE, DESTROY).
 *
 * The region is shared with every peer of the link: nothing read from it
 * is trusted.  Header and answers are copied out and checked before use;
 * ring indices and lengths are bounded; a hostile or vanished host gives
 * -EPROTO, -ETIMEDOUT or -ENODEV, never a crash or an unbounded wait.
 */
#include <linux/auxiliary_bus.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/dma-map-ops.h>
#include <linux/genalloc.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
#include <asm/unaligned.h>

#include <ivlink/proto/shm.h>
#include <ivlink/proto/transport.h>

#include "ivlink_ivshmem.h"

static unsigned long long area;
module_param(area, ullong, 0444);
MODULE_PARM_DESC(area, "app-area offset of the management area (default 0, as `ivlink dev serve --offset`)");
static unsigned int vector;
module_param(vector, uint, 0444);
MODULE_PARM_DESC(vector, "the device's MSI-X vector for transport answers (default 0)");
static unsigned int timeout_ms = 5000;
module_param(timeout_ms, uint, 0644);
MODULE_PARM_DESC(timeout_ms, "bound of one command, ms (default 5000)");
static unsigned int wait_host_ms = 60000;
module_param(wait_host_ms, uint, 0444);
MODULE_PARM_DESC(wait_host_ms, "how long probe waits for a device host, ms (default 60000)");

#define VIVL_POLL_MS 20		/* the used ring is looked at this often */
#define VIVL_WAIT_STEP_MS 100	/* the host's magic is looked for this often */
#define VIVL_IN_OFF 4096u	/* answer half of the command buffer */
#define VIVL_IN_MAX (IVL_TRANSPORT_CMDBUF_SIZE - VIVL_IN_OFF)
#define VIVL_OUT_MAX (VIVL_IN_OFF - sizeof(struct ivl_transport_cmd))

/* virtio device status bits and VERSION_1 (virtio 1.x §2.1, §6). */
#define VIVL_S_ACKNOWLEDGE 1u
#define VIVL_S_DRIVER 2u
#define VIVL_S_DRIVER_OK 4u
#define VIVL_S_FEATURES_OK 8u
#define VIVL_F_VERSION_1 (1ull << 32)
#define VIVL_MGMT_FEATURES (IVL_TRANSPORT_F_TRANSPT_VQ | VIVL_F_VERSION_1)

/* The transport ring's layout in its window (docs/transport.md §2:
 * 16 entries, no ring features, ivl_virtq_layout_default(16, 0, 0)). */
#define VIVL_DESC_OFF 0u
#define VIVL_AVAIL_OFF (16u * IVL_TRANSPORT_RING_NUM)
#define VIVL_USED_OFF ALIGN(VIVL_AVAIL_OFF + 6u + 2u * IVL_TRANSPORT_RING_NUM, 64)
#define VIVL_RING_END ALIGN(VIVL_USED_OFF + 6u + 8u * IVL_TRANSPORT_RING_NUM, 64)
#define VIVL_CMD_WOFF (IVL_TRANSPORT_CMDBUF_OFF - IVL_TRANSPORT_RING_OFF)
#define VIVL_DESC_F_NEXT 1u
#define VIVL_DESC_F_WRITE 2u

struct vivl_desc {
	__le64 addr;
	__le32 len;
	__le16 flags;
	__le16 next;
};

#define VIVL_QUEUE_MAX 32u	/* entries per queue of a managed device */
#define VIVL_CONSOLE_WINDOW (512u * 1024) /* rings and bounce buffers */

struct vivl;

/* A managed device as QUERY/CREATE describe it (checked). */
struct vivl_info {
	u64 id, window_offset, window_size;
	u32 virtio_id, status, flags;
	u16 num_queues, msi_vectors;
	char backend[64];
};

/* A managed device registered with the virtio core. */
struct vivl_vdev {
	struct virtio_device vdev;
	struct device dma;	/* vdev's parent: DMA ops over the window */
	struct vivl *v;
	struct vivl_info info;
	u8 *win;
	struct gen_pool *pool;
	struct xarray bounces;	/* window offset -> struct vivl_bounce */
	struct virtqueue *vqs[IVL_TRANSPORT_MAX_QUEUES];
	unsigned int vec[IVL_TRANSPORT_MAX_QUEUES + 1];
	unsigned int nvec;
	struct list_head node;
};

/* Who an ivshmem vector of mine interrupts: a device's configuration
 * (queue -1) or one of its queues. */
struct vivl_irq {
	struct vivl_vdev *vd;
	int queue;
};

struct vivl {
	struct auxiliary_device *adev;
	struct ivl_ivshmem *d;
	u8 *region;
	u64 region_size;
	/* Copied from the validated header. */
	u32 max_peers;
	u8 *mgmt;		/* the management area */
	u64 mgmt_size;
	struct ivl_transport_ctl *ctl;
	u8 *win;		/* the transport queue's window */
	u16 me;			/* my peer ID (IVPosition) */
	u16 host_peer, host_vector;
	bool vector_taken;

	struct delayed_work wait_work;
	unsigned int waited_ms;

	struct mutex lock;	/* one command at a time; fields below */
	bool ready;		/* a device host was found and negotiated */
	bool gone;		/* remove() has begun */
	bool ring_ok;		/* my ring is the current generation */
	u32 epoch;		/* host_epoch when device 0 was negotiated */
	u32 gen;
	u16 avail_idx, used_idx;
	struct completion answered;
	u8 *ans;		/* VIVL_IN_MAX: the answer, copied out */
	u64 vec_used;		/* ivshmem vectors given to devices */

	struct vivl_irq irq[64];
	struct mutex vdevs_lock;	/* vdevs */
	struct list_head vdevs;
};

/* ---- shared memory --------------------------------------------------------- */

/* Little-endian shared words (ivlink runs little-endian only; proto/common.h),
 * accessed atomically where several peers update them. */
/* The peer table entry of @peer, or NULL when outside the table. */
static struct ivl_shm_peer *vivl_peer(struct vivl *v, u32 peer)
{
	if (peer >= v->max_peers)
		return NULL;
	return (struct ivl_shm_peer *)(v->region + IVL_SHM_PEER_TABLE_OFFSET +
				       (size_t)peer * sizeof(struct ivl_shm_peer));
}

/* Is @peer on the link (joined or ready) with more than @vec vectors? */
static bool vivl_peer_has(struct vivl *v, u32 peer, u32 vec)
{
	struct ivl_shm_peer *e = vivl_peer(v, peer);
	u32 st;

	if (!e)
		return false;
	st = READ_ONCE(e->state);
	if (st != IVL_PEER_JOINED && st != IVL_PEER_READY)
		return false;
	return vec < le32_to_cpu(READ_ONCE(e->vectors));
}

/*
 * Copy the region's header out, check it (docs/protocol.md §3), and locate
 * the management area.  0, -EAGAIN (not formatted yet) or -ENODEV.
 */
static int vivl_map_area(struct vivl *v)
{
	struct ivl_shm_header h;
	u64 hsize, app, rest;
	u32 state;

	if (v->region_size < sizeof(h))
		return -ENODEV;
	/* Pairs with the server's release store of state = READY. */
	state = smp_load_acquire((u32 *)(v->region + offsetof(struct ivl_shm_header, state)));
	memcpy(&h, v->region, sizeof(h));
	if (le64_to_cpu(h.magic) != IVL_SHM_MAGIC || state != IVL_SHM_READY)
		return -EAGAIN;
	hsize = le32_to_cpu(h.header_size);
	v->max_peers = le32_to_cpu(h.max_peers);
	if (le32_to_cpu(h.version) != IVL_SHM_VERSION ||
	    le64_to_cpu(h.region_size) > v->region_size ||
	    le32_to_cpu(h.peer_table_offset) != IVL_SHM_PEER_TABLE_OFFSET ||
	    le32_to_cpu(h.peer_entry_size) != sizeof(struct ivl_shm_peer) ||
	    v->max_peers == 0 || v->max_peers > 65536 || hsize % IVL_SHM_PAGE ||
	    hsize < ivl_shm_header_size(v->max_peers) || hsize > v->region_size) {
		dev_err(&v->adev->dev, "the ivlink header is not valid\n");
		return -ENODEV;
	}
	app = v->region_size - hsize;
	if (area % 8 || area > app || app - area < IVL_TRANSPORT_AREA_MIN) {
		dev_err(&v->adev->dev, "area=%llu: outside the %llu-byte app area or too small\n",
			area, app);
		return -ENODEV;
	}
	rest = app - area;
	v->mgmt = v->region + hsize + area;
	v->mgmt_size = rest;
	v->ctl = (struct ivl_transport_ctl *)v->mgmt;
	v->win = v->mgmt + IVL_TRANSPORT_RING_OFF;
	return 0;
}

/* A device host serves the area: magic (acquire), version, a present host
 * peer with its kick vector.  Records host_peer/host_vector. */
static bool vivl_host_ok(struct vivl *v)
{
	u16 peer, vec;

	/* Pairs with the host's release store of the magic. */
	if (smp_load_acquire(&v->ctl->magic) != IVL_TRANSPORT_MAGIC ||
	    le16_to_cpu(READ_ONCE(v->ctl->version)) != IVL_TRANSPORT_VERSION)
		return false;
	peer = le16_to_cpu(READ_ONCE(v->ctl->host_peer));
	vec = le16_to_cpu(READ_ONCE(v->ctl->host_vector));
	if (!vivl_peer_has(v, peer, vec))
		return false;
	v->host_peer = peer;
	v->host_vector = vec;
	return true;
}

/*
 * Kick the host with ivlink's coalescing (seed 003, docs/protocol.md §3):
 * a host that coalesces gets its pending bit set, and a doorbell only when
 * the bit was clear and it may be asleep; any other host a doorbell.
 */
static int vivl_kick(struct vivl *v)
{
	struct ivl_shm_peer *e = vivl_peer(v, v->host_peer);
	u64 bit, old, cur;
	u32 w;

	/* host_vector is below the host's vector count, which is the
	 * host's to write: bound the shift here. */
	if (e && v->host_vector < 64) {
		bit = 1ull << v->host_vector;
		w = READ_ONCE(e->waiting);
		if (w == IVL_WAITING_AWAKE || w == IVL_WAITING_ASLEEP) {
			/* Fully ordered: publishes the ring to the host's
			 * acquire of its bits, and orders before the load of
			 * waiting (pairs with its store of ASLEEP). */
			cur = READ_ONCE(e->pending);
			do {
				old = cur;
				cur = cmpxchg64(&e->pending, old, old | bit);
			} while (cur != old);
			if (old & bit)
				return 0;
			if (READ_ONCE(e->waiting) == IVL_WAITING_AWAKE)
				return 0;
		}
	}
	return ivl_ivshmem_ring(v->d, v->host_peer, v->host_vector);
}

/* ---- the transport virtqueue ------------------------------------------------ */

/* The queue lock (docs/transport.md §2, 1): owner 0 -> me + 1, taken over
 * from a peer that left or from my own ID (an earlier load of mine). */
static int vivl_lock(struct vivl *v, unsigned long end)
{
	u32 *owner = &v->ctl->owner;
	u32 mine = (u32)v->me + 1, cur;

	for (;;) {
		cur = cmpxchg(owner, 0, mine);
		if (cur == 0)
			return 0;
		if ((cur == mine || cur > 65536 || !vivl_peer_has(v, cur - 1, 0)) &&
		    cmpxchg(owner, cur, mine) == cur)
			return 0;
		if (time_after(jiffies, end))
			return -EBUSY;
		if (!vivl_host_ok(v))
			return -ENODEV;
		usleep_range(1000, 2000);
	}
}

static void vivl_unlock(struct vivl *v)
{
	/* Fully ordered: my reads of the answer come before the release. */
	cmpxchg(&v->ctl->owner, (u32)v->me + 1, 0);
}

/* Re-initialise the ring unless it is still mine (§2, 2). */
static void vivl_ensure_ring(struct vivl *v)
{
	u32 gen = smp_load_acquire(&v->ctl->generation);

	if (v->ring_ok && gen == v->gen && gen != 0 &&
	    READ_ONCE(v->ctl->driver_peer) == v->me &&
	    READ_ONCE(v->ctl->driver_vector) == vector)
		return;
	WRITE_ONCE(v->ctl->driver_peer, v->me);
	WRITE_ONCE(v->ctl->driver_vector, vector);
	memset(v->win, 0, VIVL_RING_END);
	v->avail_idx = 0;
	v->used_idx = 0;
	v->gen = gen + 1 ? gen + 1 : 1;
	/* Publishes the zeroed ring and driver_peer/vector (pairs with the
	 * host's acquire load of generation). */
	smp_store_release(&v->ctl->generation, v->gen);
	v->ring_ok = true;
}

static void vivl_answer_irq(void *ctx, unsigned int vec)
{
	struct vivl *v = ctx;

	complete(&v->answered);
}

/* Wait for the used ring to move: the answer's length, or -errno. */
static int vivl_wait_used(struct vivl *v, unsigned long end, u32 *len)
{
	__le16 *used_idx = (__le16 *)(v->win + VIVL_USED_OFF + 2);
	u8 *elem;
	u16 idx;
	u32 id;

	for (;;) {
		idx = le16_to_cpu(READ_ONCE(*used_idx));
		if (idx != v->used_idx) {
			/* The used element after its index (pairs with the
			 * host's release of used->idx). */
			smp_rmb();
			if ((u16)(idx - v->used_idx) != 1)
				return -EPROTO; /* one chain in flight, at most one answer */
			elem = v->win + VIVL_USED_OFF + 4 +
			       8 * (v->used_idx % IVL_TRANSPORT_RING_NUM);
			id = le32_to_cpu(READ_ONCE(*(__le32 *)elem));
			*len = le32_to_cpu(READ_ONCE(*(__le32 *)(elem + 4)));
			v->used_idx = idx;
			return id == 0 ? 0 : -EPROTO;
		}
		if (!vivl_host_ok(v))
			return -ENODEV;
		if (time_after(jiffies, end))
			return -ETIMEDOUT;
		/* Doorbells are hints: look at least every VIVL_POLL_MS. */
		wait_for_completion_timeout(&v->answered, msecs_to_jiffies(VIVL_POLL_MS));
	}
}

/*
 * One command (docs/transport.md §3) with v->lock held: @out_len bytes of
 * @out after the header; the answer's in[] (validated: ack OK, length) is
 * copied to @in (at most @in_max bytes).  Returns the bytes of in[] the
 * host answered (may exceed @in_max: callers check exact lengths), or
 * -EREMOTEIO with *@reason set on ERR, -EPROTO for a malformed answer,
 * -ETIMEDOUT, -EBUSY (the queue stayed locked), -ENODEV (no host).
 */
static int vivl_cmd(struct vivl *v, u64 id, u16 cls, u16 cmd, const void *out,
		    size_t out_len, void *in, size_t in_max, u32 *reason)
{
	struct ivl_transport_cmd hdr = {
		.device_id = cpu_to_le64(id),
		.class_ = cpu_to_le16(cls),
		.command = cpu_to_le16(cmd),
	};
	struct vivl_desc *desc = (struct vivl_desc *)(v->win + VIVL_DESC_OFF);
	__le16 *avail = (__le16 *)(v->win + VIVL_AVAIL_OFF);
	u8 *buf = v->win + VIVL_CMD_WOFF;
	unsigned long end = jiffies + msecs_to_jiffies(timeout_ms);
	u32 len = 0, ack;
	int ret;

	lockdep_assert_held(&v->lock);
	if (out_len > VIVL_OUT_MAX || v->gone)
		return v->gone ? -ENODEV : -EMSGSIZE;
	if (!vivl_host_ok(v))
		return -ENODEV;
	ret = vivl_lock(v, end);
	if (ret)
		return ret;
	vivl_ensure_ring(v);
	memcpy(buf, &hdr, sizeof(hdr));
	if (out_len)
		memcpy(buf + sizeof(hdr), out, out_len);
	desc[0].addr = cpu_to_le64(VIVL_CMD_WOFF);
	desc[0].len = cpu_to_le32(sizeof(hdr) + out_len);
	desc[0].flags = cpu_to_le16(VIVL_DESC_F_NEXT);
	desc[0].next = cpu_to_le16(1);
	desc[1].addr = cpu_to_le64(VIVL_CMD_WOFF + VIVL_IN_OFF);
	desc[1].len = cpu_to_le32(VIVL_IN_MAX);
	desc[1].flags = cpu_to_le16(VIVL_DESC_F_WRITE);
	desc[1].next = 0;
	WRITE_ONCE(avail[2 + v->avail_idx % IVL_TRANSPORT_RING_NUM], 0);
	v->avail_idx++;
	reinit_completion(&v->answered);
	/* The chain before its index (pairs with the host's acquire). */
	smp_wmb();
	WRITE_ONCE(avail[1], cpu_to_le16(v->avail_idx));
	/* The index before the kick's reads of waiting (vivl_kick). */
	smp_mb();
	ret = vivl_kick(v);
	if (!ret)
		ret = vivl_wait_used(v, end, &len);
	if (!ret && (len < 4 || len > VIVL_IN_MAX))
		ret = -EPROTO;
	if (ret) {
		/* A command may still be in flight: a new ring next time. */
		v->ring_ok = false;
		vivl_unlock(v);
		return ret;
	}
	/* Copy the answer out of shared memory before reading it. */
	memcpy(v->ans, buf + VIVL_IN_OFF, len);
	vivl_unlock(v);
	ack = get_unaligned_le32(v->ans);
	if (ack == IVL_TRANSPORT_ERR) {
		if (len != 8)
			return -EPROTO;
		if (reason)
			*reason = get_unaligned_le32(v->ans + 4);
		return -EREMOTEIO;
	}
	if (ack != IVL_TRANSPORT_OK)
		return -EPROTO;
	len -= 4;
	if (in_max)
		memcpy(in, v->ans + 4, min_t(size_t, len, in_max));
	return len;
}

/* A command whose answer must be exactly @in_len bytes (0: none). */
static int vivl_cmd_exact(struct vivl *v, u64 id, u16 cls, u16 cmd, const void *out,
			  size_t out_len, void *in, size_t in_len, u32 *reason)
{
	int ret = vivl_cmd(v, id, cls, cmd, out, out_len, in, in_len, reason);

	if (ret < 0)
		return ret;
	return ret == in_len ? 0 : -EPROTO;
}

static const char *const vivl_reasons[] = {
	"?", "length", "class", "command", "no-device", "device-id", "virtio-id",
	"no-space", "queue", "state", "value", "window", "vector", "not-sharing",
	"backend", "reserved", "in-space", "msi-disabled",
};

static const char *vivl_reason(u32 r)
{
	return r < ARRAY_SIZE(vivl_reasons) ? vivl_reasons[r] : "unknown";
}

/*
 * The management device's own negotiation (docs/transport.md §3.1): it
 * must offer VIRTIO_F_TRANSPT_VQ and VERSION_1; bring it to DRIVER_OK
 * unless another driver did.
 */
static int vivl_negotiate(struct vivl *v)
{
	const u32 want = VIVL_S_ACKNOWLEDGE | VIVL_S_DRIVER | VIVL_S_FEATURES_OK |
			 VIVL_S_DRIVER_OK;
	__le64 f;
	__le32 st;
	u32 reason = 0;
	int ret;

	ret = vivl_cmd_exact(v, 0, IVL_TRANSPORT_CLASS_FEATURES, IVL_TRANSPORT_FEAT_GET_DEVICE,
			     NULL, 0, &f, sizeof(f), &reason);
	if (ret == -EREMOTEIO ||
	    (!ret && (le64_to_cpu(f) & VIVL_MGMT_FEATURES) != VIVL_MGMT_FEATURES)) {
		dev_err(&v->adev->dev, "the management device does not offer VIRTIO_F_TRANSPT_VQ\n");
		return -EOPNOTSUPP;
	}
	if (ret)
		return ret;
	ret = vivl_cmd_exact(v, 0, IVL_TRANSPORT_CLASS_STATUS, IVL_TRANSPORT_STATUS_GET,
			     NULL, 0, &st, sizeof(st), NULL);
	if (ret || (le32_to_cpu(st) & want) == want)
		return ret;
	if (!(le32_to_cpu(st) & VIVL_S_FEATURES_OK)) {
		f = cpu_to_le64(VIVL_MGMT_FEATURES);
		ret = vivl_cmd_exact(v, 0, IVL_TRANSPORT_CLASS_FEATURES,
				     IVL_TRANSPORT_FEAT_SET_DRIVER, &f, sizeof(f), NULL, 0, NULL);
		/* Another driver may have got to FEATURES_OK meanwhile. */
		if (ret && ret != -EREMOTEIO)
			return ret;
	}
	st = cpu_to_le32(want);
	ret = vivl_cmd_exact(v, 0, IVL_TRANSPORT_CLASS_STATUS, IVL_TRANSPORT_STATUS_SET,
			     &st, sizeof(st), NULL, 0, &reason);
	if (ret == -EREMOTEIO) {
		dev_err(&v->adev->dev, "the management device refused DRIVER_OK (%s)\n",
			vivl_reason(reason));
		return -EPROTO;
	}
	return ret;
}

/*
 * Before a request, with v->lock held: find the device host (the region's
 * header, my IVPosition, the control block) if not done yet, and negotiate
 * its management device when it is new: the first one, or one that
 * started again since (a new host_epoch).  0, -ENODEV (no device host
 * now), -EOPNOTSUPP (it offers no transport virtqueue) or a command's
 * error.
 */
static int vivl_begin(struct vivl *v)
{
	u32 pos, epoch;
	bool first = !v->ready;
	int ret;

	if (v->gone || !ivl_ivshmem_alive(v->d))
		return -ENODEV;
	if (!v->ctl) {
		pos = ivl_ivshmem_position(v->d);
		if (pos > U16_MAX)
			return -ENODEV;
		v->me = pos;
		if (vivl_map_area(v))
			return -ENODEV;
	}
	if (!vivl_host_ok(v))
		return -ENODEV;
	epoch = le32_to_cpu(READ_ONCE(v->ctl->host_epoch));
	if (v->ready && epoch == v->epoch)
		return 0;
	/* On failure the epoch stays old: the next request tries again. */
	ret = vivl_negotiate(v);
	if (ret)
		return ret;
	v->epoch = epoch;
	v->ready = true;
	if (first)
		dev_info(&v->adev->dev,
			 "transport virtqueue: peer %u, device host peer %u (vector %u), area %#llx+%#llx\n",
			 v->me, v->host_peer, v->host_vector, area, v->mgmt_size);
	else
		dev_info(&v->adev->dev, "a new device host (peer %u, epoch %#x)\n",
			 v->host_peer, epoch);
	return 0;
}

/* ---- managed devices ----------------------------------------------------------- */

/* Decode and check an ivl_transport_info: the window inside the area. */
static int vivl_parse_info(struct vivl *v, const struct ivl_transport_info *w,
			   struct vivl_info *i)
{
	i->id = le64_to_cpu(w->device_id);
	i->virtio_id = le32_to_cpu(w->virtio_id);
	i->status = le32_to_cpu(w->status);
	i->window_offset = le64_to_cpu(w->window_offset);
	i->window_size = le64_to_cpu(w->window_size);
	i->num_queues = le16_to_cpu(w->num_queues);
	i->msi_vectors = le16_to_cpu(w->msi_vectors);
	i->flags = le32_to_cpu(w->flags);
	memcpy(i->backend, w->backend, sizeof(i->backend));
	i->backend[sizeof(i->backend) - 1] = '\0';
	if (i->id == 0 || i->window_offset < IVL_TRANSPORT_WINDOWS_OFF ||
	    i->window_offset > v->mgmt_size ||
	    i->window_size > v->mgmt_size - i->window_offset ||
	    i->num_queues > IVL_TRANSPORT_MAX_QUEUES)
		return -EPROTO;
	return 0;
}

static int vivl_query(struct vivl *v, u64 id, struct vivl_info *i, u32 *reason)
{
	struct ivl_transport_info w;
	int ret;

	ret = vivl_cmd_exact(v, id, IVL_TRANSPORT_CLASS_MGMT, IVL_TRANSPORT_MGMT_QUERY,
			     NULL, 0, &w, sizeof(w), reason);
	if (!ret)
		ret = vivl_parse_info(v, &w, i);
	if (!ret && i->id != id)
		ret = -EPROTO;
	return ret;
}

/* LIST: up to @max IDs into @ids; the number of devices, or -errno. */
static int vivl_list(struct vivl *v, u64 *ids, unsigned int max)
{
	const struct ivl_transport_list_entry *e;
	unsigned int count, have, k;
	int ret;

	ret = vivl_cmd(v, 0, IVL_TRANSPORT_CLASS_MGMT, IVL_TRANSPORT_MGMT_LIST, NULL, 0,
		       NULL, 0, NULL);
	if (ret < 0)
		return ret;
	/* The answer is in v->ans after the ack (copied, ret bytes). */
	if (ret < 8 || (ret - 8) % sizeof(*e))
		return -EPROTO;
	count = get_unaligned_le32(v->ans + 4);
	have = (ret - 8) / sizeof(*e);
	if (count > IVL_TRANSPORT_MAX_DEVICES || have > count)
		return -EPROTO;
	for (k = 0; k < have && k < max; k++) {
		e = (const struct ivl_transport_list_entry *)(v->ans + 4 + 8 + k * sizeof(*e));
		ids[k] = get_unaligned_le64(&e->device_id);
	}
	return min(have, max);
}

/*
 * Device types a guest can create from sysfs: `echo "TYPE [NAME] [ARG...]"
 * > create`.  For a type with a backend name (has_name), the first word is
 * CREATE's backend argument (docs/transport.md §3), which the device host
 * looks up in its own configuration.  Argument k fills create.param[k]: a
 * word of kw[k] (its index) when kw[k] is set, else a decimal number;
 * missing arguments are 0.
 */
struct vivl_ctype {
	const char *name;
	u32 virtio_id;
	u64 window; /* rings and bounce buffers */
	bool has_name;
	const char *const *kw[3];
};

/* A CREATE command's out part: the struct and the backend argument. */
struct vivl_create {
	struct ivl_transport_create c;
	char arg[IVL_TRANSPORT_CREATE_ARG_MAX];
	size_t len; /* bytes to send */
};
static_assert(offsetof(struct vivl_create, arg) == sizeof(struct ivl_transport_create));

static const char *const vivl_console_kw[] = { "default", "pty", "unix", "loop", NULL };
static const char *const vivl_sdm_kw[] = { "slave", "master", NULL };

static const struct vivl_ctype vivl_ctypes[] = {
	{ "console", IVL_TRANSPORT_VIRTIO_CONSOLE, VIVL_CONSOLE_WINDOW, false, { vivl_console_kw } },
	{ "rng", IVL_TRANSPORT_VIRTIO_RNG, 256u * 1024, false, {} },
	{ "sdm", IVL_TRANSPORT_VIRTIO_SDM, 256u * 1024, false, { vivl_sdm_kw } },
	/* net: rings, 256 receive buffers of up to a page, in-flight frames */
	{ "net", IVL_TRANSPORT_VIRTIO_NET, 4u << 20, true, {} },
};

static const char *vivl_type_name(u32 virtio_id)
{
	unsigned int k;

	for (k = 0; k < ARRAY_SIZE(vivl_ctypes); k++)
		if (vivl_ctypes[k].virtio_id == virtio_id)
			return vivl_ctypes[k].name;
	return "unknown";
}

/* Parse "TYPE [NAME] [ARG...]" into @cr; the type, or an ERR_PTR. */
static const struct vivl_ctype *vivl_parse_create(const char *buf, size_t count,
						  struct vivl_create *cr)
{
	struct ivl_transport_create *c = &cr->c;
	char line[64], *p = line, *w;
	const struct vivl_ctype *t = NULL;
	unsigned int k, n;
	u32 val;

	if (count >= sizeof(line))
		return ERR_PTR(-EINVAL);
	memcpy(line, buf, count);
	line[count] = 0;
	w = strsep(&p, " \t\n");
	for (k = 0; w && k < ARRAY_SIZE(vivl_ctypes); k++)
		if (!strcmp(w, vivl_ctypes[k].name))
			t = &vivl_ctypes[k];
	if (!t)
		return ERR_PTR(-EINVAL);
	memset(cr, 0, sizeof(*cr));
	c->virtio_id = cpu_to_le32(t->virtio_id);
	c->window_size = cpu_to_le64(t->window);
	cr->len = sizeof(*c);
	if (t->has_name) {
		do
			w = strsep(&p, " \t\n");
		while (w && !*w);
		if (!w || strscpy(cr->arg, w, sizeof(cr->arg)) < 0)
			return ERR_PTR(-EINVAL);
		cr->len += strlen(cr->arg) + 1;
	}
	n = 0;
	while ((w = strsep(&p, " \t\n"))) {
		if (!*w)
			continue;
		if (n == ARRAY_SIZE(c->param))
			return ERR_PTR(-EINVAL);
		if (t->kw[n]) {
			for (val = 0; t->kw[n][val] && strcmp(w, t->kw[n][val]); val++)
				;
			if (!t->kw[n][val])
				return ERR_PTR(-EINVAL);
		} else if (kstrtou32(w, 10, &val)) {
			return ERR_PTR(-EINVAL);
		}
		c->param[n++] = cpu_to_le32(val);
	}
	return t;
}

/* Log every managed device the host has (at probe). */
static void vivl_log_devices(struct vivl *v)
{
	u64 ids[IVL_TRANSPORT_MAX_DEVICES];
	struct vivl_info i;
	int n, k, ret;

	n = vivl_list(v, ids, ARRAY_SIZE(ids));
	if (n < 0) {
		dev_warn(&v->adev->dev, "LIST: %d\n", n);
		return;
	}
	dev_info(&v->adev->dev, "%d managed device(s)\n", n);
	for (k = 0; k < n; k++) {
		ret = vivl_query(v, ids[k], &i, NULL);
		if (ret) {
			dev_warn(&v->adev->dev, "QUERY %llu: %d\n", ids[k], ret);
			continue;
		}
		dev_info(&v->adev->dev,
			 "device %llu: %s (virtio %u), status %#x, window %#llx+%#llx, %u queues, %u MSI vectors, %s\n",
			 i.id, vivl_type_name(i.virtio_id), i.virtio_id, i.status,
			 i.window_offset, i.window_size, i.num_queues, i.msi_vectors,
			 i.backend);
	}
}

/* ---- managed devices as virtio devices ------------------------------------------ */

/*
 * Each managed device this guest creates is registered with the virtio
 * core.  Its parent is a device of ours whose DMA ops allocate from, and
 * bounce into, the device's window: DMA addresses are window offsets (the
 * host offers VIRTIO_F_ACCESS_PLATFORM), and no memory of the guest is
 * ever named to the host.  The bounce records live in kernel memory.
 */
struct vivl_bounce {
	struct page *page;
	unsigned long offset;
	size_t size;
	enum dma_data_direction dir;
};

static struct vivl_vdev *vivl_dma_vdev(struct device *dev)
{
	return container_of(dev, struct vivl_vdev, dma);
}

static void *vivl_dma_alloc(struct device *dev, size_t size, dma_addr_t *dma, gfp_t gfp,
			    unsigned long attrs)
{
	struct vivl_vdev *vd = vivl_dma_vdev(dev);
	unsigned long a = size ? gen_pool_alloc(vd->pool, size) : 0;

	if (!a)
		return NULL;
	memset((void *)a, 0, size);
	*dma = a - (unsigned long)vd->win;
	return (void *)a;
}

static void vivl_dma_free(struct device *dev, size_t size, void *cpu, dma_addr_t dma,
			  unsigned long attrs)
{
	gen_pool_free(vivl_dma_vdev(dev)->pool, (unsigned long)cpu, size);
}

static dma_addr_t vivl_dma_map_page(struct device *dev, struct page *page, unsigned long offset,
				    size_t size, enum dma_data_direction dir,
				    unsigned long attrs)
{
	struct vivl_vdev *vd = vivl_dma_vdev(dev);
	struct vivl_bounce *b;
	unsigned long a, flags;
	dma_addr_t off;
	int ret;

	if (!size)
		return DMA_MAPPING_ERROR;
	b = kmalloc(sizeof(*b), GFP_ATOMIC);
	if (!b)
		return DMA_MAPPING_ERROR;
	a = gen_pool_alloc(vd->pool, size);
	if (!a) {
		kfree(b);
		return DMA_MAPPING_ERROR;
	}
	off = a - (unsigned long)vd->win;
	*b = (struct vivl_bounce){ .page = page, .offset = offset, .size = size, .dir = dir };
	if (dir == DMA_TO_DEVICE || dir == DMA_BIDIRECTIONAL)
		memcpy((void *)a, page_address(page) + offset, size);
	xa_lock_irqsave(&vd->bounces, flags);
	ret = xa_err(__xa_store(&vd->bounces, off, b, GFP_ATOMIC));
	xa_unlock_irqrestore(&vd->bounces, flags);
	if (ret) {
		gen_pool_free(vd->pool, a, size);
		kfree(b);
		return DMA_MAPPING_ERROR;
	}
	return off;
}

static void vivl_dma_unmap_page(struct device *dev, dma_addr_t dma, size_t size,
				enum dma_data_direction dir, unsigned long attrs)
{
	struct vivl_vdev *vd = vivl_dma_vdev(dev);
	struct vivl_bounce *b;
	unsigned long flags;

	xa_lock_irqsave(&vd->bounces, flags);
	b = __xa_erase(&vd->bounces, dma);
	xa_unlock_irqrestore(&vd->bounces, flags);
	if (!b)
		return;
	/* What the device wrote: copied out of the window, at most the
	 * mapped size whatever the used ring says. */
	if (b->dir == DMA_FROM_DEVICE || b->dir == DMA_BIDIRECTIONAL)
		memcpy(page_address(b->page) + b->offset, vd->win + dma, b->size);
	gen_pool_free(vd->pool, (unsigned long)vd->win + dma, b->size);
	kfree(b);
}

static void vivl_dma_sync(struct device *dev, dma_addr_t dma, size_t size, bool to_cpu)
{
	struct vivl_vdev *vd = vivl_dma_vdev(dev);
	struct vivl_bounce *b;
	unsigned long flags;

	xa_lock_irqsave(&vd->bounces, flags);
	b = xa_load(&vd->bounces, dma);
	if (b) {
		size = min(size, b->size);
		if (to_cpu && b->dir != DMA_TO_DEVICE)
			memcpy(page_address(b->page) + b->offset, vd->win + dma, size);
		else if (!to_cpu && b->dir != DMA_FROM_DEVICE)
			memcpy(vd->win + dma, page_address(b->page) + b->offset, size);
	}
	xa_unlock_irqrestore(&vd->bounces, flags);
}

static void vivl_dma_sync_cpu(struct device *dev, dma_addr_t dma, size_t size,
			      enum dma_data_direction dir)
{
	vivl_dma_sync(dev, dma, size, true);
}

static void vivl_dma_sync_dev(struct device *dev, dma_addr_t dma, size_t size,
			      enum dma_data_direction dir)
{
	vivl_dma_sync(dev, dma, size, false);
}

static const struct dma_map_ops vivl_dma_ops = {
	.alloc = vivl_dma_alloc,
	.free = vivl_dma_free,
	.map_page = vivl_dma_map_page,
	.unmap_page = vivl_dma_unmap_page,
	.sync_single_for_cpu = vivl_dma_sync_cpu,
	.sync_single_for_device = vivl_dma_sync_dev,
};

static struct vivl_vdev *to_vd(struct virtio_device *vdev)
{
	return container_of(vdev, struct vivl_vdev, vdev);
}

/* A command on the device, taking the lock (virtio core context: process). */
static int vivl_vd_cmd(struct vivl_vdev *vd, u16 cls, u16 cmd, const void *out,
		       size_t out_len, void *in, size_t in_len)
{
	struct vivl *v = vd->v;
	u32 reason = 0;
	int ret;

	mutex_lock(&v->lock);
	ret = v->gone ? -ENODEV : vivl_cmd_exact(v, vd->info.id, cls, cmd, out, out_len, in,
						 in_len, &reason);
	mutex_unlock(&v->lock);
	if (ret == -EREMOTEIO)
		dev_warn(&vd->vdev.dev, "class %u command %u: refused (%s)\n", cls, cmd,
			 vivl_reason(reason));
	return ret;
}

static void vivl_get(struct virtio_device *vdev, unsigned int offset, void *buf,
		     unsigned int len)
{
	struct ivl_transport_config_rw rw = {
		.offset = cpu_to_le32(offset), .length = cpu_to_le32(len) };

	if (!len || len > IVL_TRANSPORT_CONFIG_MAX ||
	    vivl_vd_cmd(to_vd(vdev), IVL_TRANSPORT_CLASS_CONFIG, IVL_TRANSPORT_CONFIG_READ,
			&rw, sizeof(rw), buf, len))
		memset(buf, 0, len);
}

static void vivl_set(struct virtio_device *vdev, unsigned int offset, const void *buf,
		     unsigned int len)
{
	u8 out[sizeof(struct ivl_transport_config_rw) + IVL_TRANSPORT_CONFIG_MAX];
	struct ivl_transport_config_rw rw = {
		.offset = cpu_to_le32(offset), .length = cpu_to_le32(len) };

	if (!len || len > IVL_TRANSPORT_CONFIG_MAX)
		return;
	memcpy(out, &rw, sizeof(rw));
	memcpy(out + sizeof(rw), buf, len);
	vivl_vd_cmd(to_vd(vdev), IVL_TRANSPORT_CLASS_CONFIG, IVL_TRANSPORT_CONFIG_WRITE, out,
		    sizeof(rw) + len, NULL, 0);
}

static u32 vivl_generation(struct virtio_device *vdev)
{
	__le32 g = 0;

	vivl_vd_cmd(to_vd(vdev), IVL_TRANSPORT_CLASS_CONFIG, IVL_TRANSPORT_CONFIG_GENERATION,
		    NULL, 0, &g, sizeof(g));
	return le32_to_cpu(g);
}

static u8 vivl_get_status(struct virtio_device *vdev)
{
	__le32 st;

	if (vivl_vd_cmd(to_vd(vdev), IVL_TRANSPORT_CLASS_STATUS, IVL_TRANSPORT_STATUS_GET,
			NULL, 0, &st, sizeof(st)))
		return VIRTIO_CONFIG_S_FAILED;
	return le32_to_cpu(st) & 0xff;
}

static void vivl_reset(struct virtio_device *vdev)
{
	vivl_vd_cmd(to_vd(vdev), IVL_TRANSPORT_CLASS_STATUS, IVL_TRANSPORT_STATUS_RESET, NULL,
		    0, NULL, 0);
}

static void vivl_set_status(struct virtio_device *vdev, u8 status)
{
	__le32 st = cpu_to_le32(status);

	if (!status) {
		vivl_reset(vdev);
		return;
	}
	vivl_vd_cmd(to_vd(vdev), IVL_TRANSPORT_CLASS_STATUS, IVL_TRANSPORT_STATUS_SET, &st,
		    sizeof(st), NULL, 0);
}

static u64 vivl_get_features(struct virtio_device *vdev)
{
	__le64 f = 0;

	vivl_vd_cmd(to_vd(vdev), IVL_TRANSPORT_CLASS_FEATURES, IVL_TRANSPORT_FEAT_GET_DEVICE,
		    NULL, 0, &f, sizeof(f));
	return le64_to_cpu(f);
}

static int vivl_finalize_features(struct virtio_device *vdev)
{
	__le64 f;

	vring_transport_features(vdev);
	/* Without ACCESS_PLATFORM the ring would hand guest-physical
	 * addresses to the host: nothing works, and that must not happen. */
	if (!__virtio_test_bit(vdev, VIRTIO_F_ACCESS_PLATFORM) ||
	    !__virtio_test_bit(vdev, VIRTIO_F_VERSION_1)) {
		dev_err(&vdev->dev, "the host does not offer ACCESS_PLATFORM and VERSION_1\n");
		return -ENODEV;
	}
	f = cpu_to_le64(vdev->features);
	return vivl_vd_cmd(to_vd(vdev), IVL_TRANSPORT_CLASS_FEATURES,
			   IVL_TRANSPORT_FEAT_SET_DRIVER, &f, sizeof(f), NULL, 0);
}

static const char *vivl_bus_name(struct virtio_device *vdev)
{
	return dev_name(&to_vd(vdev)->v->adev->dev);
}

static bool vivl_vq_notify(struct virtqueue *vq)
{
	return !vivl_kick(to_vd(vq->vdev)->v);
}

/* An ivshmem vector of a managed device: its configuration or one queue. */
static void vivl_vd_irq(void *ctx, unsigned int vec)
{
	struct vivl *v = ctx;
	struct vivl_irq *e = &v->irq[vec];

	if (!e->vd)
		return;
	if (e->queue < 0)
		virtio_config_changed(&e->vd->vdev);
	else if (e->vd->vqs[e->queue])
		vring_interrupt(0, e->vd->vqs[e->queue]);
}

static void vivl_free_irqs(struct vivl_vdev *vd)
{
	struct vivl *v = vd->v;
	unsigned int k;

	for (k = 0; k < vd->nvec; k++) {
		ivl_ivshmem_free_vector(v->d, vd->vec[k]);
		v->irq[vd->vec[k]].vd = NULL;
		mutex_lock(&v->lock);
		v->vec_used &= ~BIT_ULL(vd->vec[k]);
		mutex_unlock(&v->lock);
	}
	vd->nvec = 0;
}

static void vivl_del_vqs(struct virtio_device *vdev)
{
	struct vivl_vdev *vd = to_vd(vdev);
	unsigned int q;

	/* No interrupt reaches a queue being deleted. */
	vivl_free_irqs(vd);
	for (q = 0; q < ARRAY_SIZE(vd->vqs); q++) {
		if (vd->vqs[q])
			vring_del_virtqueue(vd->vqs[q]);
		vd->vqs[q] = NULL;
	}
}

static int vivl_setup_vq(struct vivl_vdev *vd, unsigned int q, vq_callback_t *cb,
			 const char *name, bool ctx, struct virtqueue **out)
{
	struct ivl_transport_queue_sel sel = { .queue = cpu_to_le16(q) };
	struct ivl_transport_queue_val val = { .queue = cpu_to_le16(q) };
	struct ivl_transport_queue_addr addr = { .queue = cpu_to_le16(q) };
	struct virtqueue *vq;
	__le32 max;
	u32 num;
	int ret;

	ret = vivl_vd_cmd(vd, IVL_TRANSPORT_CLASS_QUEUE, IVL_TRANSPORT_QUEUE_GET_MAX, &sel,
			  sizeof(sel), &max, sizeof(max));
	if (ret)
		return ret;
	num = min_t(u32, le32_to_cpu(max), VIVL_QUEUE_MAX);
	if (!num)
		return -EPROTO;
	num = rounddown_pow_of_two(num);
	vq = vring_create_virtqueue(q, num, SMP_CACHE_BYTES, &vd->vdev, true, true, ctx,
				    vivl_vq_notify, cb, name);
	if (!vq)
		return -ENOMEM;
	val.value = cpu_to_le32(virtqueue_get_vring_size(vq));
	ret = vivl_vd_cmd(vd, IVL_TRANSPORT_CLASS_QUEUE, IVL_TRANSPORT_QUEUE_SET_SIZE, &val,
			  sizeof(val), NULL, 0);
	addr.desc = cpu_to_le64(virtqueue_get_desc_addr(vq));
	addr.avail = cpu_to_le64(virtqueue_get_avail_addr(vq));
	addr.used = cpu_to_le64(virtqueue_get_used_addr(vq));
	if (!ret)
		ret = vivl_vd_cmd(vd, IVL_TRANSPORT_CLASS_QUEUE, IVL_TRANSPORT_QUEUE_SET_ADDR,
				  &addr, sizeof(addr), NULL, 0);
	val.value = cpu_to_le32(1);
	if (!ret)
		ret = vivl_vd_cmd(vd, IVL_TRANSPORT_CLASS_QUEUE, IVL_TRANSPORT_QUEUE_ENABLE,
				  &val, sizeof(val), NULL, 0);
	if (ret) {
		vring_del_virtqueue(vq);
		return ret;
	}
	*out = vq;
	return 0;
}

/*
 * Non-sharing MSI (seed 004): MSI vector 0 is the configuration, vector
 * q + 1 queue q; each is one of this guest's free ivshmem vectors, and
 * the device's table sends it to my IVPosition.
 */
static int vivl_setup_msi(struct vivl_vdev *vd, unsigned int nvqs)
{
	struct vivl *v = vd->v;
	struct ivl_transport_msi_cfg cfg;
	unsigned int k, vec, want = nvqs + 1, n = min(ivl_ivshmem_vectors(v->d), 64u);
	int ret = 0;

	if (want > vd->info.msi_vectors)
		return -ENOSPC;
	for (k = 0; k < want; k++) {
		mutex_lock(&v->lock);
		for (vec = 0; vec < n; vec++)
			if (vec != vector && !(v->vec_used & BIT_ULL(vec)))
				break;
		if (vec < n)
			v->vec_used |= BIT_ULL(vec);
		mutex_unlock(&v->lock);
		if (vec >= n) {
			dev_err(&vd->vdev.dev, "not enough free ivshmem vectors (%u needed)\n", want);
			return -ENOSPC;
		}
		v->irq[vec].queue = (int)k - 1;
		v->irq[vec].vd = vd;
		ret = ivl_ivshmem_request_vector(v->d, vec, vivl_vd_irq, v);
		if (ret) {
			v->irq[vec].vd = NULL;
			mutex_lock(&v->lock);
			v->vec_used &= ~BIT_ULL(vec);
			mutex_unlock(&v->lock);
			return ret;
		}
		vd->vec[vd->nvec++] = vec;
		cfg = (struct ivl_transport_msi_cfg){ .vector = cpu_to_le32(k),
						      .data = cpu_to_le32(vec),
						      .address = cpu_to_le64(v->me) };
		ret = vivl_vd_cmd(vd, IVL_TRANSPORT_CLASS_MSI, IVL_TRANSPORT_MSI_CONFIGURE, &cfg,
				  sizeof(cfg), NULL, 0);
		if (ret)
			return ret;
	}
	return vivl_vd_cmd(vd, IVL_TRANSPORT_CLASS_MSI, IVL_TRANSPORT_MSI_ENABLE, NULL, 0, NULL,
			   0);
}

static int vivl_find_vqs(struct virtio_device *vdev, unsigned int nvqs, struct virtqueue *vqs[],
			 vq_callback_t *callbacks[], const char *const names[], const bool *ctx,
			 struct irq_affinity *desc)
{
	struct vivl_vdev *vd = to_vd(vdev);
	unsigned int q, made = 0;
	int ret = 0;

	if (nvqs > vd->info.num_queues || nvqs > ARRAY_SIZE(vd->vqs))
		return -EINVAL;
	for (q = 0; q < nvqs && !ret; q++) {
		vqs[q] = NULL;
		if (!names[q])
			continue;
		ret = vivl_setup_vq(vd, made, callbacks[q], names[q], ctx ? ctx[q] : false,
				    &vd->vqs[made]);
		if (!ret)
			vqs[q] = vd->vqs[made++];
	}
	if (!ret)
		ret = vivl_setup_msi(vd, made);
	if (ret)
		vivl_del_vqs(vdev);
	return ret;
}

static const struct virtio_config_ops vivl_config_ops = {
	.get = vivl_get,
	.set = vivl_set,
	.generation = vivl_generation,
	.get_status = vivl_get_status,
	.set_status = vivl_set_status,
	.reset = vivl_reset,
	.find_vqs = vivl_find_vqs,
	.del_vqs = vivl_del_vqs,
	.get_features = vivl_get_features,
	.finalize_features = vivl_finalize_features,
	.bus_name = vivl_bus_name,
};

static void vivl_dma_release(struct device *dev)
{
	struct vivl_vdev *vd = vivl_dma_vdev(dev);
	struct vivl_bounce *b;
	unsigned long i;

	xa_for_each(&vd->bounces, i, b)
		kfree(b);
	xa_destroy(&vd->bounces);
	/* gen_pool_destroy() must not see live allocations: a driver that
	 * leaked a mapping leaves the pool (not the window) behind. */
	if (vd->pool && gen_pool_avail(vd->pool) == gen_pool_size(vd->pool))
		gen_pool_destroy(vd->pool);
	else if (vd->pool)
		pr_warn("virtio_ivlink: device %llu: DMA mappings left, pool not freed\n",
			vd->info.id);
	kfree(vd);
}

static void vivl_vdev_release(struct device *dev)
{
	struct vivl_vdev *vd = container_of(dev, struct vivl_vdev, vdev.dev);

	put_device(&vd->dma);
}

/* Register a managed device with the virtio core (no v->lock held: the
 * driver's probe sends commands). */
static int vivl_vdev_add(struct vivl *v, const struct vivl_info *i)
{
	struct vivl_vdev *vd;
	int ret;

	vd = kzalloc(sizeof(*vd), GFP_KERNEL);
	if (!vd)
		return -ENOMEM;
	vd->v = v;
	vd->info = *i;
	vd->win = v->mgmt + i->window_offset;
	xa_init_flags(&vd->bounces, XA_FLAGS_LOCK_IRQ);
	device_initialize(&vd->dma);
	vd->dma.parent = &v->adev->dev;
	vd->dma.release = vivl_dma_release;
	vd->dma.coherent_dma_mask = DMA_BIT_MASK(64);
	vd->dma.dma_mask = &vd->dma.coherent_dma_mask;
	set_dma_ops(&vd->dma, &vivl_dma_ops);
	ret = dev_set_name(&vd->dma, "%s.dev%llu", dev_name(&v->adev->dev), i->id);
	vd->pool = gen_pool_create(6, -1);
	if (!ret && !vd->pool)
		ret = -ENOMEM;
	if (!ret)
		ret = gen_pool_add(vd->pool, (unsigned long)vd->win, i->window_size, -1);
	if (!ret)
		ret = device_add(&vd->dma);
	if (ret) {
		put_device(&vd->dma);
		return ret;
	}
	vd->vdev.dev.parent = &vd->dma;
	vd->vdev.dev.release = vivl_vdev_release;
	vd->vdev.config = &vivl_config_ops;
	vd->vdev.id.device = i->virtio_id;
	vd->vdev.id.vendor = VIRTIO_DEV_ANY_ID;
	get_device(&vd->dma); /* the virtio device's, dropped by its release */
	ret = register_virtio_device(&vd->vdev);
	if (ret) {
		put_device(&vd->vdev.dev);
		device_unregister(&vd->dma);
		return ret;
	}
	mutex_lock(&v->vdevs_lock);
	list_add_tail(&vd->node, &v->vdevs);
	mutex_unlock(&v->vdevs_lock);
	return 0;
}

/* Unregister (the driver is removed, the device reset), then forget. */
static void vivl_vdev_del(struct vivl_vdev *vd)
{
	struct device *dma = &vd->dma;

	unregister_virtio_device(&vd->vdev);
	device_unregister(dma);
}

/* The registered device with @id, taken off the list; NULL if none. */
static struct vivl_vdev *vivl_vdev_take(struct vivl *v, u64 id)
{
	struct vivl_vdev *vd, *found = NULL;

	mutex_lock(&v->vdevs_lock);
	list_for_each_entry(vd, &v->vdevs, node) {
		if (vd->info.id == id) {
			found = vd;
			list_del(&vd->node);
			break;
		}
	}
	mutex_unlock(&v->vdevs_lock);
	return found;
}

/* ---- probe: wait for the device host ------------------------------------------ */

static void vivl_wait_host(struct work_struct *work)
{
	struct vivl *v = container_of(to_delayed_work(work), struct vivl, wait_work);
	int ret;

	mutex_lock(&v->lock);
	ret = vivl_begin(v);
	if (!ret)
		vivl_log_devices(v);
	mutex_unlock(&v->lock);
	if (ret == -EOPNOTSUPP)
		return;
	if (ret && ret != -ENODEV)
		dev_warn(&v->adev->dev, "the device host's management device: %d\n", ret);
	if (!ret)
		return;
	v->waited_ms += VIVL_WAIT_STEP_MS;
	if (v->waited_ms >= wait_host_ms) {
		dev_warn(&v->adev->dev, "no device host after %u ms: the next request looks again\n",
			 v->waited_ms);
		return;
	}
	schedule_delayed_work(&v->wait_work, msecs_to_jiffies(VIVL_WAIT_STEP_MS));
}

/* ---- sysfs ---------------------------------------------------------------------- */

static ssize_t devices_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct vivl *v = dev_get_drvdata(dev);
	u64 ids[IVL_TRANSPORT_MAX_DEVICES];
	struct vivl_info i;
	int n, k, ret;
	ssize_t len = 0;

	mutex_lock(&v->lock);
	n = vivl_begin(v);
	if (!n)
		n = vivl_list(v, ids, ARRAY_SIZE(ids));
	for (k = 0; k < n; k++) {
		ret = vivl_query(v, ids[k], &i, NULL);
		if (ret == -EREMOTEIO)
			continue; /* destroyed since the LIST */
		if (ret) {
			n = ret;
			break;
		}
		if (len >= PAGE_SIZE - 1)
			break; /* sysfs_emit_at() takes one page */
		len += sysfs_emit_at(buf, len, "%llu %s %u %#x %#llx %#llx %u %s\n", i.id,
				     vivl_type_name(i.virtio_id), i.virtio_id, i.status,
				     i.window_offset, i.window_size, i.num_queues, i.backend);
	}
	mutex_unlock(&v->lock);
	return n < 0 ? n : len;
}
static DEVICE_ATTR_RO(devices);

/* "TYPE [ARG...]", see vivl_ctypes */
static ssize_t create_store(struct device *dev, struct device_attribute *attr,
			    const char *buf, size_t count)
{
	struct vivl *v = dev_get_drvdata(dev);
	const struct vivl_ctype *t;
	struct vivl_create c;
	struct ivl_transport_info w;
	struct vivl_info i;
	u32 reason = 0;
	int ret;

	t = vivl_parse_create(buf, count, &c);
	if (IS_ERR(t))
		return PTR_ERR(t);
	mutex_lock(&v->lock);
	ret = vivl_begin(v);
	if (!ret)
		ret = vivl_cmd_exact(v, 0, IVL_TRANSPORT_CLASS_MGMT, IVL_TRANSPORT_MGMT_CREATE,
				     &c, c.len, &w, sizeof(w), &reason);
	if (!ret)
		ret = vivl_parse_info(v, &w, &i);
	mutex_unlock(&v->lock);
	if (ret == -EREMOTEIO)
		dev_warn(dev, "CREATE %s: refused (%s)\n", t->name, vivl_reason(reason));
	if (ret)
		return ret;
	dev_info(dev, "created device %llu: %s, window %#llx+%#llx, %s\n", i.id,
		 vivl_type_name(i.virtio_id), i.window_offset, i.window_size, i.backend);
	ret = vivl_vdev_add(v, &i);
	if (ret) {
		dev_err(dev, "device %llu: not registered with virtio (%d): destroyed\n", i.id,
			ret);
		mutex_lock(&v->lock);
		if (!v->gone)
			vivl_cmd_exact(v, i.id, IVL_TRANSPORT_CLASS_MGMT,
				       IVL_TRANSPORT_MGMT_DESTROY, NULL, 0, NULL, 0, NULL);
		mutex_unlock(&v->lock);
		return ret;
	}
	return count;
}
static DEVICE_ATTR_WO(create);

static ssize_t destroy_store(struct device *dev, struct device_attribute *attr,
			     const char *buf, size_t count)
{
	struct vivl *v = dev_get_drvdata(dev);
	struct vivl_vdev *vd;
	u32 reason = 0;
	u64 id;
	int ret;

	ret = kstrtou64(buf, 0, &id);
	if (ret || id == 0)
		return -EINVAL;
	/* The virtio driver goes first (it resets the device). */
	vd = vivl_vdev_take(v, id);
	if (vd)
		vivl_vdev_del(vd);
	mutex_lock(&v->lock);
	ret = vivl_begin(v);
	if (!ret)
		ret = vivl_cmd_exact(v, id, IVL_TRANSPORT_CLASS_MGMT, IVL_TRANSPORT_MGMT_DESTROY,
				     NULL, 0, NULL, 0, &reason);
	mutex_unlock(&v->lock);
	if (ret == -EREMOTEIO) {
		dev_warn(dev, "DESTROY %llu: refused (%s)\n", id, vivl_reason(reason));
		return reason == IVL_TRANSPORT_E_NO_DEVICE ? -ENOENT : -EREMOTEIO;
	}
	if (ret)
		return ret;
	dev_info(dev, "destroyed device %llu\n", id);
	return count;
}
static DEVICE_ATTR_WO(destroy);

static struct attribute *vivl_attrs[] = {
	&dev_attr_devices.attr,
	&dev_attr_create.attr,
	&dev_attr_destroy.attr,
	NULL,
};
ATTRIBUTE_GROUPS(vivl);

/* ---- the auxiliary driver --------------------------------------------------------- */

static int vivl_probe(struct auxiliary_device *adev, const struct auxiliary_device_id *id)
{
	struct ivl_ivshmem *d = ivl_ivshmem_from_aux(adev);
	struct vivl *v;
	int ret;

	if (vector >= ivl_ivshmem_vectors(d)) {
		dev_err(&adev->dev, "vector=%u: the device has %u MSI-X vectors\n", vector,
			ivl_ivshmem_vectors(d));
		return -ENODEV;
	}
	v = devm_kzalloc(&adev->dev, sizeof(*v), GFP_KERNEL);
	if (!v)
		return -ENOMEM;
	v->ans = devm_kzalloc(&adev->dev, VIVL_IN_MAX, GFP_KERNEL);
	if (!v->ans)
		return -ENOMEM;
	v->adev = adev;
	v->d = d;
	v->region = ivl_ivshmem_region(d, &v->region_size);
	if (!v->region || v->region_size < IVL_SHM_PAGE)
		return -ENODEV;
	mutex_init(&v->lock);
	mutex_init(&v->vdevs_lock);
	INIT_LIST_HEAD(&v->vdevs);
	init_completion(&v->answered);
	INIT_DELAYED_WORK(&v->wait_work, vivl_wait_host);
	ret = ivl_ivshmem_request_vector(d, vector, vivl_answer_irq, v);
	if (ret) {
		dev_err(&adev->dev, "vector %u: %d\n", vector, ret);
		return ret;
	}
	v->vector_taken = true;
	auxiliary_set_drvdata(adev, v);
	schedule_delayed_work(&v->wait_work, 0);
	return 0;
}

static void vivl_remove(struct auxiliary_device *adev)
{
	struct vivl *v = auxiliary_get_drvdata(adev);

	struct vivl_vdev *vd;

	/* No new wait step, and none running. */
	cancel_delayed_work_sync(&v->wait_work);
	/* Every virtio driver goes while commands still work (sysfs is
	 * gone already: no new device).  The devices stay on the host. */
	for (;;) {
		mutex_lock(&v->vdevs_lock);
		vd = list_first_entry_or_null(&v->vdevs, struct vivl_vdev, node);
		if (vd)
			list_del(&vd->node);
		mutex_unlock(&v->vdevs_lock);
		if (!vd)
			break;
		vivl_vdev_del(vd);
	}
	/* A command in flight ends first (bounded by timeout_ms). */
	mutex_lock(&v->lock);
	v->gone = true;
	v->ready = false;
	mutex_unlock(&v->lock);
	if (v->vector_taken)
		ivl_ivshmem_free_vector(v->d, vector);
	mutex_destroy(&v->lock);
	mutex_destroy(&v->vdevs_lock);
}

static const struct auxiliary_device_id vivl_ids[] = {
	{ .name = IVL_IVSHMEM_AUX_NAME },
	{}
};
MODULE_DEVICE_TABLE(auxiliary, vivl_ids);

static struct auxiliary_driver vivl_driver = {
	.name = "transport",
	.probe = vivl_probe,
	.remove = vivl_remove,
	.id_table = vivl_ids,
	.driver = {
		.dev_groups = vivl_groups,
	},
};
module_auxiliary_driver(vivl_driver);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ivlink: virtio devices over the transport virtqueue (ivshmem) in a guest");
