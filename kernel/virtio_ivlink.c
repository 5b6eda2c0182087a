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
#include <linux/cpu.h>
#include <linux/delay.h>
#include <linux/dma-map-ops.h>
#include <linux/genalloc.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timer.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/workqueue.h>
#include <asm/unaligned.h>

#include <ivlink/proto/shm.h>
#include <ivlink/proto/transport.h>

#include "ivlink_ivshmem.h"
#include "virtio_ivlink_wire.h"

static unsigned long long area;
module_param(area, ullong, 0444);
MODULE_PARM_DESC(area, "app-area offset of the management area (default 0, as `ivlink dev serve --offset`)");
static unsigned int vector;
module_param(vector, uint, 0444);
MODULE_PARM_DESC(vector, "the device's MSI-X vector for transport answers (default 0)");
static unsigned int timeout_ms = 5000;
module_param(timeout_ms, uint, 0644);
MODULE_PARM_DESC(timeout_ms, "bound of one command, ms (default 5000)");

#define VIVL_POLL_MS 20		/* the used ring is looked at this often */
#define VIVL_WATCH_MS 100	/* the device host's liveness is looked at this often */
#define VIVL_LIST_EVERY 10	/* ... and its device list every 10th time */
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
#define VIVL_CONSOLE_WINDOW (256u * 1024) /* rings, 32 receive pages, transmits */

struct vivl;

/* A managed device registered with the virtio core. */
struct vivl_vdev {
	struct virtio_device vdev;
	struct device dma;	/* vdev's parent: DMA ops over the window */
	struct vivl *v;
	struct vivl_info info;
	u32 epoch;		/* the device host's host_epoch at creation */
	u8 status;		/* the last status set (what a gone host had) */
	u8 *win;
	struct gen_pool *pool;	/* the window, in VIVL_DMA_GRANULE units */
	struct vivl_bounce *maps; /* streaming mappings, by window offset / granule */
	size_t nmaps;
	struct virtqueue *vqs[IVL_TRANSPORT_MAX_QUEUES];
	unsigned int vec[IVL_TRANSPORT_MAX_QUEUES + 1];
	unsigned int nvec;
	struct list_head node;
	spinlock_t give_lock;	/* one vivl_give_back() at a time */
};

/* Who an ivshmem vector of mine interrupts: a device's configuration
 * (VIVL_IRQ_CONFIG), one of its queues, or all of them (VIVL_IRQ_QUEUES,
 * MSI sharing mode). */
#define VIVL_IRQ_CONFIG (-1)
#define VIVL_IRQ_QUEUES (-2)
struct vivl_irq {
	struct vivl_vdev *vd;
	int queue;
};

/*
 * A watchdog on one CPU: virtio_console spins, interrupts off, until the
 * device gives a transmit buffer back, so a device host that dies
 * mid-write stops that CPU's timers and work for good.  A pinned timer on
 * every CPU looks at the device host (shared memory reads only) and, when
 * it is gone, breaks the devices from a work item on its own CPU, which
 * ends such spins (the watcher removes the devices afterwards).
 */
struct vivl_dog {
	struct timer_list timer;
	struct work_struct work;
	struct vivl *v;
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

	/* Finds the device host, registers what it offers, and removes the
	 * devices of a host that is gone or of devices destroyed by others. */
	struct delayed_work watch_work;
	unsigned int ticks;
	bool host_seen;		/* the host was there last time */
	/* Serialises what registers or removes virtio devices: create,
	 * destroy, scans, the watcher. */
	struct mutex reg_lock;
	bool scanned;		/* the host of scanned_epoch was scanned */
	u32 scanned_epoch;

	struct mutex lock;	/* one command at a time; fields below */
	bool ready;		/* a device host was found and negotiated */
	unsigned int negotiated; /* how many times */
	bool gone;		/* remove() has begun */
	bool ring_ok;		/* my ring is the current generation */
	u32 epoch;		/* host_epoch when device 0 was negotiated */
	u32 gen;
	u16 avail_idx, used_idx;
	struct completion answered;
	u8 *ans;		/* VIVL_IN_MAX: the answer, copied out */
	u64 vec_used;		/* ivshmem vectors taken: the transport's and devices' */

	struct vivl_irq irq[64];
	struct mutex vdevs_lock;	/* vdevs */
	struct list_head vdevs;
	atomic_t nvdevs;		/* registered, for the watchdogs */
	struct vivl_dog __percpu *dogs;
	bool dogs_stop;
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
	struct vivl_layout l;
	u32 state;
	int ret;

	if (v->region_size < sizeof(h))
		return -ENODEV;
	/* Pairs with the server's release store of state = READY. */
	state = smp_load_acquire((u32 *)(v->region + offsetof(struct ivl_shm_header, state)));
	memcpy(&h, v->region, sizeof(h));
	ret = vivl_header_check(&h, state, v->region_size, area, &l);
	if (ret == -EAGAIN)
		return ret;
	if (ret == -ENODEV)
		dev_err(&v->adev->dev, "the ivlink header is not valid\n");
	if (ret == -ERANGE)
		dev_err(&v->adev->dev, "area=%llu: outside the %llu-byte app area or too small\n",
			area, v->region_size - l.header_size);
	if (ret)
		return -ENODEV;
	v->max_peers = l.max_peers;
	v->mgmt = v->region + l.mgmt_off;
	v->mgmt_size = l.mgmt_size;
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
 * Lockless (any context): the device host of @epoch still serves: the
 * control block's magic and epoch, its peer present with its kick vector.
 * Read-only; for the watchdogs and kicks, which may not take v->lock.
 */
static bool vivl_host_alive(struct vivl *v, u32 epoch)
{
	struct ivl_transport_ctl *ctl = READ_ONCE(v->ctl);

	if (!ctl)
		return false;
	return smp_load_acquire(&ctl->magic) == IVL_TRANSPORT_MAGIC &&
	       le32_to_cpu(READ_ONCE(ctl->host_epoch)) == epoch &&
	       vivl_peer_has(v, le16_to_cpu(READ_ONCE(ctl->host_peer)),
			     le16_to_cpu(READ_ONCE(ctl->host_vector)));
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
	u32 len = 0;
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
	if (!ret && !vivl_used_len_ok(len))
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
	ret = vivl_answer_parse(v->ans, len, reason);
	if (ret > 0 && in_max)
		memcpy(in, v->ans + 4, min_t(size_t, ret, in_max));
	return ret;
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
	if (!v->negotiated++)
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
	return vivl_info_parse(w, v->mgmt_size, i);
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
	int ret;

	ret = vivl_cmd(v, 0, IVL_TRANSPORT_CLASS_MGMT, IVL_TRANSPORT_MGMT_LIST, NULL, 0,
		       NULL, 0, NULL);
	if (ret < 0)
		return ret;
	/* The answer is in v->ans after the ack (copied, ret bytes). */
	return vivl_list_parse(v->ans + 4, ret, ids, max);
}

/* Device types a guest can create from sysfs (struct vivl_ctype in
 * virtio_ivlink_wire.h). */
static const char *const vivl_console_kw[] = { "default", "pty", "unix", "loop", NULL };
static const char *const vivl_sdm_kw[] = { "slave", "master", NULL };

static const struct vivl_ctype vivl_ctypes[] = {
	{ "console", IVL_TRANSPORT_VIRTIO_CONSOLE, VIVL_CONSOLE_WINDOW, false, { vivl_console_kw } },
	{ "rng", IVL_TRANSPORT_VIRTIO_RNG, 256u * 1024, false, {} },
	{ "sdm", IVL_TRANSPORT_VIRTIO_SDM, 256u * 1024, false, { vivl_sdm_kw } },
	{ "blk", IVL_TRANSPORT_VIRTIO_BLK, 8u << 20, true, {} }, /* bounces: 8 MiB in flight */
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
	int k = vivl_create_parse(vivl_ctypes, ARRAY_SIZE(vivl_ctypes), buf, count, cr);

	return k < 0 ? ERR_PTR(k) : &vivl_ctypes[k];
}

/* ---- managed devices as virtio devices ------------------------------------------ */

/*
 * Each managed device this guest creates is registered with the virtio
 * core.  Its parent is a device of ours whose DMA ops allocate from, and
 * bounce into, the device's window: DMA addresses are window offsets (the
 * host offers VIRTIO_F_ACCESS_PLATFORM), and no memory of the guest is
 * ever named to the host.
 *
 * The window is a gen_pool of VIVL_DMA_GRANULE units (first fit).  The
 * record of a streaming mapping (the guest's page, offset, size and
 * direction) lives in guest memory, in vd->maps[] at the index of its
 * window offset / granule: a map or unmap costs one pool allocation or
 * free and one copy, no allocation of its own and no lock (the pool hands
 * an offset to one mapping at a time; its record is written after the
 * allocation and cleared before the free).  A record of size 0 is no
 * mapping (free space, or a coherent allocation: rings).
 */
#define VIVL_DMA_SHIFT 9
#define VIVL_DMA_GRANULE (1u << VIVL_DMA_SHIFT)
/* The largest window a host gives (docs/transport.md §1): a larger one,
 * from a hostile host, is used only this far (records: 3 MiB at most). */
#define VIVL_DMA_WINDOW_MAX (64ull << 20)

struct vivl_bounce {
	struct page *page;
	unsigned long offset;
	u32 size;
	u32 dir; /* enum dma_data_direction */
};

static struct vivl_vdev *vivl_dma_vdev(struct device *dev)
{
	return container_of(dev, struct vivl_vdev, dma);
}

/* The live streaming mapping that starts at window offset @dma, or NULL. */
static struct vivl_bounce *vivl_dma_find(struct vivl_vdev *vd, dma_addr_t dma)
{
	struct vivl_bounce *b;

	if (dma & (VIVL_DMA_GRANULE - 1) || dma >> VIVL_DMA_SHIFT >= vd->nmaps)
		return NULL;
	b = &vd->maps[dma >> VIVL_DMA_SHIFT];
	return b->size ? b : NULL;
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
	unsigned long a;
	dma_addr_t off;

	/* No larger than the pool, and the size fits the record. */
	if (!size || size > VIVL_DMA_WINDOW_MAX)
		return DMA_MAPPING_ERROR;
	a = gen_pool_alloc(vd->pool, size);
	if (!a)
		return DMA_MAPPING_ERROR;
	off = a - (unsigned long)vd->win;
	b = &vd->maps[off >> VIVL_DMA_SHIFT];
	b->page = page;
	b->offset = offset;
	b->dir = dir;
	if (dir == DMA_TO_DEVICE || dir == DMA_BIDIRECTIONAL)
		memcpy((void *)a, page_address(page) + offset, size);
	WRITE_ONCE(b->size, size);
	return off;
}

static void vivl_dma_unmap_page(struct device *dev, dma_addr_t dma, size_t size,
				enum dma_data_direction dir, unsigned long attrs)
{
	struct vivl_vdev *vd = vivl_dma_vdev(dev);
	struct vivl_bounce *b = vivl_dma_find(vd, dma);
	u32 n;

	if (!b)
		return;
	n = b->size;
	/* What the device wrote: copied out of the window, the mapped size
	 * whatever the used ring says. */
	if (b->dir == DMA_FROM_DEVICE || b->dir == DMA_BIDIRECTIONAL)
		memcpy(page_address(b->page) + b->offset, vd->win + dma, n);
	WRITE_ONCE(b->size, 0);
	gen_pool_free(vd->pool, (unsigned long)vd->win + dma, n);
}

static void vivl_dma_sync(struct device *dev, dma_addr_t dma, size_t size, bool to_cpu)
{
	struct vivl_vdev *vd = vivl_dma_vdev(dev);
	struct vivl_bounce *b = vivl_dma_find(vd, dma);

	if (!b)
		return;
	size = min_t(size_t, size, b->size);
	if (to_cpu && b->dir != DMA_TO_DEVICE)
		memcpy(page_address(b->page) + b->offset, vd->win + dma, size);
	else if (!to_cpu && b->dir != DMA_FROM_DEVICE)
		memcpy(vd->win + dma, page_address(b->page) + b->offset, size);
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
	/* Only the device host that created the device: IDs start again at
	 * 1 with a new host (a new host_epoch). */
	if (v->gone || !v->ready || vd->epoch != v->epoch ||
	    le32_to_cpu(READ_ONCE(v->ctl->host_epoch)) != vd->epoch)
		ret = -ENODEV;
	else
		ret = vivl_cmd_exact(v, vd->info.id, cls, cmd, out, out_len, in, in_len, &reason);
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

/* The device's status; with its device host gone, the last one set
 * (a reset then reads 0, as the virtio core expects on removal). */
static u8 vivl_get_status(struct virtio_device *vdev)
{
	struct vivl_vdev *vd = to_vd(vdev);
	__le32 st;

	if (vivl_vd_cmd(vd, IVL_TRANSPORT_CLASS_STATUS, IVL_TRANSPORT_STATUS_GET, NULL, 0, &st,
			sizeof(st)))
		return READ_ONCE(vd->status);
	return le32_to_cpu(st) & 0xff;
}

static void vivl_reset(struct virtio_device *vdev)
{
	WRITE_ONCE(to_vd(vdev)->status, 0);
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
	WRITE_ONCE(to_vd(vdev)->status, status);
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

/*
 * A device host that is gone (its peer left) and not replaced (same
 * host_epoch) serves nobody's window any more: give the buffers made
 * available on @vq back as used, with nothing written, as a device that
 * drops them would (buffers are used in order on a console's transmitq).
 * A new host zeroes a window when it gives it to a device.
 */
static void __vivl_give_back(struct virtqueue *vq)
{
	const struct vring *r = virtqueue_get_vring(vq);
	struct virtio_device *vdev = vq->vdev;
	u16 used, want, head, k;

	want = virtio16_to_cpu(vdev, READ_ONCE(r->avail->idx));
	used = virtio16_to_cpu(vdev, READ_ONCE(r->used->idx));
	for (; used != want; used++) {
		k = used & (r->num - 1);
		head = virtio16_to_cpu(vdev, READ_ONCE(r->avail->ring[k]));
		WRITE_ONCE(r->used->ring[k].id, cpu_to_virtio32(vdev, head));
		WRITE_ONCE(r->used->ring[k].len, 0);
	}
	/* The elements before the index (the driver reads them after it). */
	virtio_wmb(true);
	WRITE_ONCE(r->used->idx, cpu_to_virtio16(vdev, want));
	/* And every later buffer kicks (it comes back through the kick's
	 * wait): the dead host's EVENT_IDX avail_event or NO_NOTIFY flag
	 * would otherwise let a write skip the kick and spin for good. */
	WRITE_ONCE(vring_avail_event(r), cpu_to_virtio16(vdev, want));
	WRITE_ONCE(r->used->flags, 0);
	virtio_mb(true);
}

/* With give_lock: the queues are not deleted meanwhile (vivl_del_vqs()). */
static void vivl_give_back(struct vivl_vdev *vd, unsigned int q)
{
	unsigned long flags;

	spin_lock_irqsave(&vd->give_lock, flags);
	if (vd->vqs[q] && le32_to_cpu(READ_ONCE(vd->v->ctl->host_epoch)) == vd->epoch)
		__vivl_give_back(vd->vqs[q]);
	spin_unlock_irqrestore(&vd->give_lock, flags);
}

/*
 * virtio_console hands each console write to the device and then spins,
 * interrupts off and its locks held, until the device gives the buffer
 * back, or the queue is broken; in that second case it frees the buffer
 * while it is still on the queue, and frees it again when the device is
 * removed.  So a console's transmitq is never broken here.  Its kick does
 * the wait itself, where it can see the device host: until the host has
 * used what is available; when the host is gone, the buffers are given
 * back (vivl_give_back()) and the console is removed by the watcher.
 */
static bool vivl_wait_consumed(struct vivl_vdev *vd, struct virtqueue *vq, bool kicked)
{
	const struct vring *r = virtqueue_get_vring(vq);
	u16 want = virtio16_to_cpu(vq->vdev, READ_ONCE(r->avail->idx));

	while (virtio16_to_cpu(vq->vdev, READ_ONCE(r->used->idx)) != want) {
		if (!kicked || !vivl_host_alive(vd->v, vd->epoch)) {
			if (le32_to_cpu(READ_ONCE(vd->v->ctl->host_epoch)) != vd->epoch)
				return false; /* a new host already: not our window */
			vivl_give_back(vd, vq->index);
			return true;
		}
		cpu_relax();
	}
	return true;
}

/* false breaks the queue (virtio core): no device host to kick. */
static bool vivl_vq_notify(struct virtqueue *vq)
{
	struct vivl_vdev *vd = to_vd(vq->vdev);
	bool kicked = vivl_host_alive(vd->v, vd->epoch) && !vivl_kick(vd->v);

	if (vd->info.virtio_id == IVL_TRANSPORT_VIRTIO_CONSOLE && vq->index == 1)
		return vivl_wait_consumed(vd, vq, kicked);
	return kicked;
}

/*
 * Break a device whose host is gone.  Not a console (vivl_wait_consumed()):
 * its transmit buffers are given back instead, which also ends a write
 * whose kick the ring suppressed (EVENT_IDX) and that spins on another
 * CPU; a new host already (another epoch) owns the window: not touched.
 */
static void vivl_break(struct vivl_vdev *vd)
{
	if (vd->info.virtio_id != IVL_TRANSPORT_VIRTIO_CONSOLE)
		virtio_break_device(&vd->vdev);
	else
		vivl_give_back(vd, 1);
}

static void vivl_dog_work(struct work_struct *work)
{
	struct vivl *v = container_of(work, struct vivl_dog, work)->v;
	struct vivl_vdev *vd;

	mutex_lock(&v->vdevs_lock);
	list_for_each_entry(vd, &v->vdevs, node)
		if (!vivl_host_alive(v, vd->epoch))
			vivl_break(vd);
	mutex_unlock(&v->vdevs_lock);
}

static void vivl_dog_bark(struct timer_list *t)
{
	struct vivl_dog *dog = from_timer(dog, t, timer);
	struct vivl *v = dog->v;

	if (atomic_read(&v->nvdevs) && !vivl_host_alive(v, READ_ONCE(v->epoch)))
		queue_work_on(smp_processor_id(), system_highpri_wq, &dog->work);
	if (!READ_ONCE(v->dogs_stop))
		mod_timer(&dog->timer, jiffies + msecs_to_jiffies(VIVL_WATCH_MS));
}

static int vivl_dogs_start(struct vivl *v)
{
	struct vivl_dog *dog;
	int cpu;

	v->dogs = alloc_percpu(struct vivl_dog);
	if (!v->dogs)
		return -ENOMEM;
	for_each_possible_cpu(cpu) {
		dog = per_cpu_ptr(v->dogs, cpu);
		dog->v = v;
		timer_setup(&dog->timer, vivl_dog_bark, TIMER_PINNED);
		INIT_WORK(&dog->work, vivl_dog_work);
	}
	cpus_read_lock();
	for_each_online_cpu(cpu) {
		dog = per_cpu_ptr(v->dogs, cpu);
		dog->timer.expires = jiffies + msecs_to_jiffies(VIVL_WATCH_MS);
		add_timer_on(&dog->timer, cpu);
	}
	cpus_read_unlock();
	return 0;
}

static void vivl_dogs_stop(struct vivl *v)
{
	struct vivl_dog *dog;
	int cpu;

	if (!v->dogs)
		return;
	WRITE_ONCE(v->dogs_stop, true);
	for_each_possible_cpu(cpu) {
		dog = per_cpu_ptr(v->dogs, cpu);
		del_timer_sync(&dog->timer);
		cancel_work_sync(&dog->work);
	}
	free_percpu(v->dogs);
	v->dogs = NULL;
}

/* An ivshmem vector of a managed device: its configuration or one queue. */
static void vivl_vd_irq(void *ctx, unsigned int vec)
{
	struct vivl *v = ctx;
	struct vivl_irq *e = &v->irq[vec];

	unsigned int q;

	if (!e->vd)
		return;
	if (e->queue == VIVL_IRQ_CONFIG) {
		virtio_config_changed(&e->vd->vdev);
	} else if (e->queue == VIVL_IRQ_QUEUES) {
		for (q = 0; q < ARRAY_SIZE(e->vd->vqs); q++)
			if (e->vd->vqs[q])
				vring_interrupt(0, e->vd->vqs[q]);
	} else if (e->vd->vqs[e->queue]) {
		vring_interrupt(0, e->vd->vqs[e->queue]);
	}
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
	struct virtqueue *vq;
	unsigned long flags;
	unsigned int q;

	/* No interrupt reaches a queue being deleted, nor a give-back. */
	vivl_free_irqs(vd);
	for (q = 0; q < ARRAY_SIZE(vd->vqs); q++) {
		spin_lock_irqsave(&vd->give_lock, flags);
		vq = vd->vqs[q];
		vd->vqs[q] = NULL;
		spin_unlock_irqrestore(&vd->give_lock, flags);
		if (vq)
			vring_del_virtqueue(vq);
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
 * The doorbell vectors others can ring on me: my MSI-X vectors, as far as
 * the server gave me eventfds for them (my peer table entry), at most 64.
 */
static unsigned int vivl_my_vectors(struct vivl *v)
{
	struct ivl_shm_peer *e = vivl_peer(v, v->me);
	unsigned int n = min(ivl_ivshmem_vectors(v->d), 64u);

	return e ? min_t(u32, n, le32_to_cpu(READ_ONCE(e->vectors))) : 0;
}

/* How many ivshmem vectors of mine are free for devices. */
static unsigned int vivl_free_vectors(struct vivl *v)
{
	unsigned int n = vivl_my_vectors(v), used;

	if (!n)
		return 0;
	mutex_lock(&v->lock);
	used = hweight64(v->vec_used & GENMASK_ULL(n - 1, 0));
	mutex_unlock(&v->lock);
	return n - used;
}

/*
 * Give MSI vector @msi of @vd's table one of my free ivshmem vectors,
 * interrupting @queue (a queue or VIVL_IRQ_*): the table sends it to my
 * IVPosition with that vector as data.
 */
static int vivl_take_vector(struct vivl_vdev *vd, unsigned int msi, int queue)
{
	struct vivl *v = vd->v;
	struct ivl_transport_msi_cfg cfg;
	unsigned int vec, n = vivl_my_vectors(v);
	int ret;

	mutex_lock(&v->lock);
	for (vec = 0; vec < n; vec++)
		if (!(v->vec_used & BIT_ULL(vec)))
			break;
	if (vec < n)
		v->vec_used |= BIT_ULL(vec);
	mutex_unlock(&v->lock);
	if (vec >= n)
		return -ENOSPC;
	v->irq[vec].queue = queue;
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
	cfg = (struct ivl_transport_msi_cfg){ .vector = cpu_to_le32(msi),
					      .data = cpu_to_le32(vec),
					      .address = cpu_to_le64(v->me) };
	return vivl_vd_cmd(vd, IVL_TRANSPORT_CLASS_MSI, IVL_TRANSPORT_MSI_CONFIGURE, &cfg,
			   sizeof(cfg), NULL, 0);
}

/*
 * The device's MSI table (seeds 002, 004).  Non-sharing: MSI vector 0 is
 * the configuration, vector q + 1 queue q, each on an ivshmem vector of
 * its own.  Sharing (created so when this guest had too few vectors):
 * vector 0 the configuration, vector 1 every queue (MAP_CONFIG,
 * MAP_QUEUE).  Then MSI ENABLE, before DRIVER_OK.
 */
static int vivl_setup_msi(struct vivl_vdev *vd, unsigned int nvqs)
{
	struct ivl_transport_queue_val map = {};
	struct ivl_transport_msi_vec cv = {};
	unsigned int k;
	int ret;

	if (vd->info.flags & IVL_TRANSPORT_CREATE_F_MSI_SHARING) {
		if (vd->info.msi_vectors < 2)
			return -ENOSPC;
		ret = vivl_take_vector(vd, 0, VIVL_IRQ_CONFIG);
		if (!ret)
			ret = vivl_take_vector(vd, 1, VIVL_IRQ_QUEUES);
		if (!ret)
			ret = vivl_vd_cmd(vd, IVL_TRANSPORT_CLASS_MSI, IVL_TRANSPORT_MSI_MAP_CONFIG,
					  &cv, sizeof(cv), NULL, 0);
		map.value = cpu_to_le32(1);
		for (k = 0; k < nvqs && !ret; k++) {
			map.queue = cpu_to_le16(k);
			ret = vivl_vd_cmd(vd, IVL_TRANSPORT_CLASS_MSI, IVL_TRANSPORT_MSI_MAP_QUEUE,
					  &map, sizeof(map), NULL, 0);
		}
	} else {
		if (nvqs + 1 > vd->info.msi_vectors)
			return -ENOSPC;
		for (k = 0, ret = 0; k <= nvqs && !ret; k++)
			ret = vivl_take_vector(vd, k, k ? (int)k - 1 : VIVL_IRQ_CONFIG);
	}
	if (ret == -ENOSPC)
		dev_err(&vd->vdev.dev, "not enough free ivshmem MSI-X vectors\n");
	if (ret)
		return ret;
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

	kvfree(vd->maps);
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
static int vivl_vdev_add(struct vivl *v, const struct vivl_info *i, u32 epoch)
{
	struct vivl_vdev *vd;
	u64 dsize;
	int ret;

	vd = kzalloc(sizeof(*vd), GFP_KERNEL);
	if (!vd)
		return -ENOMEM;
	vd->v = v;
	vd->info = *i;
	vd->epoch = epoch;
	spin_lock_init(&vd->give_lock);
	vd->win = v->mgmt + i->window_offset;
	device_initialize(&vd->dma);
	vd->dma.parent = &v->adev->dev;
	vd->dma.release = vivl_dma_release;
	vd->dma.coherent_dma_mask = DMA_BIT_MASK(64);
	vd->dma.dma_mask = &vd->dma.coherent_dma_mask;
	set_dma_ops(&vd->dma, &vivl_dma_ops);
	ret = dev_set_name(&vd->dma, "%s.dev%llu", dev_name(&v->adev->dev), i->id);
	vd->pool = gen_pool_create(VIVL_DMA_SHIFT, -1);
	dsize = min_t(u64, i->window_size, VIVL_DMA_WINDOW_MAX);
	vd->nmaps = DIV_ROUND_UP(dsize, VIVL_DMA_GRANULE);
	vd->maps = kvcalloc(vd->nmaps, sizeof(*vd->maps), GFP_KERNEL);
	if (!ret && (!vd->pool || !vd->maps))
		ret = -ENOMEM;
	if (!ret)
		ret = gen_pool_add(vd->pool, (unsigned long)vd->win, dsize, -1);
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
	atomic_inc(&v->nvdevs);
	return 0;
}

/* Unregister (the driver is removed, the device reset), then forget. */
static void vivl_vdev_del(struct vivl_vdev *vd)
{
	struct device *dma = &vd->dma;

	atomic_dec(&vd->v->nvdevs);
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

/* ---- the device host: offered devices, liveness ----------------------------------- */

static bool vivl_registered(struct vivl *v, u64 id)
{
	struct vivl_vdev *vd;
	bool found = false;

	mutex_lock(&v->vdevs_lock);
	list_for_each_entry(vd, &v->vdevs, node)
		found |= vd->info.id == id;
	mutex_unlock(&v->vdevs_lock);
	return found;
}

/*
 * Register what the device host offers this guest: every listed device
 * whose driver_peer is me and that is reset (created for me with
 * `ivlink dev create --for`, or mine before this driver was loaded), not
 * registered yet.  Each device is logged.  With reg_lock held.
 */
static int vivl_scan(struct vivl *v)
{
	u64 ids[IVL_TRANSPORT_MAX_DEVICES];
	struct vivl_info i;
	u32 epoch;
	int n, k, ret;

	mutex_lock(&v->lock);
	n = vivl_begin(v);
	if (!n)
		n = vivl_list(v, ids, ARRAY_SIZE(ids));
	epoch = v->epoch;
	mutex_unlock(&v->lock);
	if (n < 0)
		return n;
	for (k = 0; k < n; k++) {
		if (vivl_registered(v, ids[k]))
			continue;
		mutex_lock(&v->lock);
		ret = v->ready && v->epoch == epoch ? vivl_query(v, ids[k], &i, NULL) : -ENODEV;
		mutex_unlock(&v->lock);
		if (ret == -EREMOTEIO)
			continue; /* destroyed since the LIST */
		if (ret)
			return ret;
		dev_info(&v->adev->dev,
			 "device %llu: %s (virtio %u), status %#x, window %#llx+%#llx, %u queues, %u MSI vectors, driver peer %u, %s\n",
			 i.id, vivl_type_name(i.virtio_id), i.virtio_id, i.status,
			 i.window_offset, i.window_size, i.num_queues, i.msi_vectors,
			 i.driver_peer, i.backend);
		/* Reset, or reset and acknowledged again (the virtio core does
		 * that when a driver is unbound). */
		if (i.driver_peer != v->me || (i.status & ~VIVL_S_ACKNOWLEDGE))
			continue;
		ret = vivl_vdev_add(v, &i, epoch);
		if (ret)
			dev_err(&v->adev->dev, "device %llu: not registered with virtio (%d)\n",
				i.id, ret);
		else
			dev_info(&v->adev->dev, "device %llu: offered to this guest, registered\n",
				 i.id);
	}
	return 0;
}

/*
 * Remove the registered devices that have no device host any more: all
 * of them when @alive is false, else those of another host_epoch than
 * @epoch and, with @ids (@n of them listed), those no longer listed
 * (destroyed by another peer).  Each is broken first, so its driver's
 * waits end, then unregistered.  With reg_lock held.
 */
static void vivl_drop(struct vivl *v, bool alive, u32 epoch, const u64 *ids, int n)
{
	struct vivl_vdev *vd, *tmp;
	LIST_HEAD(stale);
	bool listed;
	int k;

	mutex_lock(&v->vdevs_lock);
	list_for_each_entry_safe(vd, tmp, &v->vdevs, node) {
		listed = !ids;
		for (k = 0; k < n && !listed; k++)
			listed = ids[k] == vd->info.id;
		if (!alive || vd->epoch != epoch || !listed)
			list_move_tail(&vd->node, &stale);
	}
	mutex_unlock(&v->vdevs_lock);
	list_for_each_entry_safe(vd, tmp, &stale, node) {
		list_del(&vd->node);
		dev_warn(&v->adev->dev, "device %llu: %s: removed\n", vd->info.id,
			 alive && vd->epoch == epoch ? "destroyed by another peer"
						     : "its device host is gone");
		vivl_break(vd);
		vivl_vdev_del(vd);
	}
}

static void vivl_watch(struct work_struct *work)
{
	struct vivl *v = container_of(to_delayed_work(work), struct vivl, watch_work);
	u64 ids[IVL_TRANSPORT_MAX_DEVICES];
	bool alive, list;
	u32 epoch = 0;
	int n = -1;

	mutex_lock(&v->reg_lock);
	mutex_lock(&v->lock);
	if (!v->ctl)
		vivl_begin(v); /* maps the area once the header is ready */
	alive = v->ctl && !v->gone && ivl_ivshmem_alive(v->d) && vivl_host_ok(v);
	if (alive)
		epoch = le32_to_cpu(READ_ONCE(v->ctl->host_epoch));
	if (!alive && v->host_seen)
		dev_warn(&v->adev->dev, "the device host (peer %u) is gone\n", v->host_peer);
	if (!alive)
		v->ready = false;
	v->host_seen = alive;
	list = alive && v->ready && epoch == v->epoch && !list_empty(&v->vdevs) &&
	       ++v->ticks % VIVL_LIST_EVERY == 0;
	if (list)
		n = vivl_list(v, ids, ARRAY_SIZE(ids));
	mutex_unlock(&v->lock);
	vivl_drop(v, alive, epoch, n >= 0 ? ids : NULL, n);
	/* Each host (host_epoch) is scanned once for what it offers; a scan
	 * that found no host (-ENODEV) is tried again. */
	if (alive && (!v->scanned || epoch != v->scanned_epoch)) {
		n = vivl_scan(v);
		if (n && n != -ENODEV)
			dev_warn(&v->adev->dev, "the device host's devices: %d\n", n);
		if (n != -ENODEV) {
			v->scanned = true;
			v->scanned_epoch = epoch;
		}
	}
	mutex_unlock(&v->reg_lock);
	schedule_delayed_work(&v->watch_work, msecs_to_jiffies(VIVL_WATCH_MS));
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

/* CREATE with v->lock held: the new device, checked, in @i. */
static int vivl_create(struct vivl *v, const struct vivl_create *c, struct vivl_info *i,
		       u32 *reason)
{
	struct ivl_transport_info w;
	int ret;

	ret = vivl_begin(v);
	if (!ret)
		ret = vivl_cmd_exact(v, 0, IVL_TRANSPORT_CLASS_MGMT, IVL_TRANSPORT_MGMT_CREATE,
				     c, c->len, &w, sizeof(w), reason);
	if (!ret)
		ret = vivl_parse_info(v, &w, i);
	return ret;
}

static void vivl_destroy_cmd(struct vivl *v, u64 id)
{
	mutex_lock(&v->lock);
	if (!v->gone)
		vivl_cmd_exact(v, id, IVL_TRANSPORT_CLASS_MGMT, IVL_TRANSPORT_MGMT_DESTROY, NULL, 0,
			       NULL, 0, NULL);
	mutex_unlock(&v->lock);
}

/*
 * "TYPE [NAME] [ARG...]", see vivl_ctypes.  The device gets an MSI table
 * without sharing (a vector per event, seed 004) when this guest has
 * enough free vectors for it, else it is created again with sharing.
 */
static ssize_t create_store(struct device *dev, struct device_attribute *attr,
			    const char *buf, size_t count)
{
	struct vivl *v = dev_get_drvdata(dev);
	const struct vivl_ctype *t;
	struct vivl_create c;
	struct vivl_info i;
	u32 reason = 0, epoch;
	int ret;

	t = vivl_parse_create(buf, count, &c);
	if (IS_ERR(t))
		return PTR_ERR(t);
	mutex_lock(&v->reg_lock);
	mutex_lock(&v->lock);
	ret = vivl_create(v, &c, &i, &reason);
	epoch = v->epoch;
	mutex_unlock(&v->lock);
	if (!ret && i.num_queues + 1u > vivl_free_vectors(v)) {
		vivl_destroy_cmd(v, i.id);
		c.c.flags = cpu_to_le32(IVL_TRANSPORT_CREATE_F_MSI_SHARING);
		c.c.msi_vectors = cpu_to_le32(2);
		mutex_lock(&v->lock);
		ret = vivl_create(v, &c, &i, &reason);
		epoch = v->epoch;
		mutex_unlock(&v->lock);
	}
	if (ret == -EREMOTEIO)
		dev_warn(dev, "CREATE %s: refused (%s)\n", t->name, vivl_reason(reason));
	if (ret)
		goto out;
	dev_info(dev, "created device %llu: %s, window %#llx+%#llx, %s%s\n", i.id,
		 vivl_type_name(i.virtio_id), i.window_offset, i.window_size, i.backend,
		 i.flags & IVL_TRANSPORT_CREATE_F_MSI_SHARING ? ", MSI sharing" : "");
	ret = vivl_vdev_add(v, &i, epoch);
	if (ret) {
		dev_err(dev, "device %llu: not registered with virtio (%d): destroyed\n", i.id,
			ret);
		vivl_destroy_cmd(v, i.id);
	}
out:
	mutex_unlock(&v->reg_lock);
	return ret ? ret : count;
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
	mutex_lock(&v->reg_lock);
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
	mutex_unlock(&v->reg_lock);
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

/* Any write: register what the device host offers now (vivl_scan). */
static ssize_t rescan_store(struct device *dev, struct device_attribute *attr,
			    const char *buf, size_t count)
{
	struct vivl *v = dev_get_drvdata(dev);
	int ret;

	mutex_lock(&v->reg_lock);
	ret = vivl_scan(v);
	mutex_unlock(&v->reg_lock);
	return ret ? ret : count;
}
static DEVICE_ATTR_WO(rescan);

static struct attribute *vivl_attrs[] = {
	&dev_attr_devices.attr,
	&dev_attr_create.attr,
	&dev_attr_destroy.attr,
	&dev_attr_rescan.attr,
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
	mutex_init(&v->reg_lock);
	INIT_LIST_HEAD(&v->vdevs);
	init_completion(&v->answered);
	INIT_DELAYED_WORK(&v->watch_work, vivl_watch);
	ret = ivl_ivshmem_request_vector(d, vector, vivl_answer_irq, v);
	if (ret) {
		dev_err(&adev->dev, "vector %u: %d\n", vector, ret);
		return ret;
	}
	v->vector_taken = true;
	if (vector < 64)
		v->vec_used = BIT_ULL(vector);
	ret = vivl_dogs_start(v);
	if (ret) {
		ivl_ivshmem_free_vector(d, vector);
		return ret;
	}
	auxiliary_set_drvdata(adev, v);
	schedule_delayed_work(&v->watch_work, 0);
	return 0;
}

static void vivl_remove(struct auxiliary_device *adev)
{
	struct vivl *v = auxiliary_get_drvdata(adev);

	struct vivl_vdev *vd;

	/* No watcher step now or later (it re-arms itself: the _sync
	 * variant stops that too). */
	cancel_delayed_work_sync(&v->watch_work);
	/* Every virtio driver goes while commands still work (sysfs is
	 * gone already: no new device).  The devices stay on the host. */
	mutex_lock(&v->reg_lock);
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
	mutex_unlock(&v->reg_lock);
	/* A command in flight ends first (bounded by timeout_ms). */
	mutex_lock(&v->lock);
	v->gone = true;
	v->ready = false;
	mutex_unlock(&v->lock);
	vivl_dogs_stop(v);
	if (v->vector_taken)
		ivl_ivshmem_free_vector(v->d, vector);
	mutex_destroy(&v->lock);
	mutex_destroy(&v->vdevs_lock);
	mutex_destroy(&v->reg_lock);
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
