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
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/workqueue.h>
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

struct vivl_info {
	u64 id, window_offset, window_size;
	u32 virtio_id, status, flags;
	u16 num_queues, msi_vectors;
	char backend[64];
};

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

static const char *vivl_type_name(u32 virtio_id)
{
	switch (virtio_id) {
	case IVL_TRANSPORT_VIRTIO_CONSOLE:
		return "console";
	case IVL_TRANSPORT_VIRTIO_SDM:
		return "sdm";
	default:
		return "unknown";
	}
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

/* "console" [pty|unix|loop] */
static ssize_t create_store(struct device *dev, struct device_attribute *attr,
			    const char *buf, size_t count)
{
	static const char *const backends[] = { "default", "pty", "unix", "loop" };
	struct vivl *v = dev_get_drvdata(dev);
	struct ivl_transport_create c = {};
	struct ivl_transport_info w;
	struct vivl_info i;
	char word[16], kind[16] = "";
	u32 reason = 0, backend = IVL_TRANSPORT_CONSOLE_DEFAULT, k;
	int ret;

	if (count >= 64 || sscanf(buf, "%15s %15s", word, kind) < 1)
		return -EINVAL;
	if (strcmp(word, "console"))
		return -EINVAL;
	if (kind[0]) {
		for (k = 0; k < ARRAY_SIZE(backends) && strcmp(kind, backends[k]); k++)
			;
		if (k == ARRAY_SIZE(backends))
			return -EINVAL;
		backend = k;
	}
	c.virtio_id = cpu_to_le32(IVL_TRANSPORT_VIRTIO_CONSOLE);
	c.param[0] = cpu_to_le32(backend);
	mutex_lock(&v->lock);
	ret = vivl_begin(v);
	if (!ret)
		ret = vivl_cmd_exact(v, 0, IVL_TRANSPORT_CLASS_MGMT, IVL_TRANSPORT_MGMT_CREATE,
				     &c, sizeof(c), &w, sizeof(w), &reason);
	if (!ret)
		ret = vivl_parse_info(v, &w, &i);
	mutex_unlock(&v->lock);
	if (ret == -EREMOTEIO)
		dev_warn(dev, "CREATE console: refused (%s)\n", vivl_reason(reason));
	if (ret)
		return ret;
	dev_info(dev, "created device %llu: %s, window %#llx+%#llx, %s\n", i.id,
		 vivl_type_name(i.virtio_id), i.window_offset, i.window_size, i.backend);
	return count;
}
static DEVICE_ATTR_WO(create);

static ssize_t destroy_store(struct device *dev, struct device_attribute *attr,
			     const char *buf, size_t count)
{
	struct vivl *v = dev_get_drvdata(dev);
	u32 reason = 0;
	u64 id;
	int ret;

	ret = kstrtou64(buf, 0, &id);
	if (ret || id == 0)
		return -EINVAL;
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

	/* No new wait step, and none running. */
	cancel_delayed_work_sync(&v->wait_work);
	/* A command in flight ends first (bounded by timeout_ms). */
	mutex_lock(&v->lock);
	v->gone = true;
	v->ready = false;
	mutex_unlock(&v->lock);
	if (v->vector_taken)
		ivl_ivshmem_free_vector(v->d, vector);
	mutex_destroy(&v->lock);
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
MODULE_DESCRIPTION("ivlink: the transport virtqueue (virtio over ivshmem) in a guest");
