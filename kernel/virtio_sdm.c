// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio_sdm: a guest driver for the Signal Distribution Module, virtio
 * device 21 (seed 000; ivlink's device side: docs/transport.md §5; the
 * driver's user ABI: docs/guest-sdm.md).
 *
 *  - config {u8 master; u8 0; le16 max_slaves; le16 current_slaves}: read
 *    at probe and on every configuration change interrupt; sysfs on the
 *    character device (/sys/class/misc/sdmN/): master, max_slaves
 *    (writable on a master), current_slaves.
 *  - /dev/sdmN: write() sends whole 16-byte SDMSignalData records on gh_vq,
 *    one at a time, and returns when the device has written each one's
 *    le32 result; read() returns whole 20-byte records (the signal, then
 *    le32 `from`) received on hg_vq; poll().
 *  - BOOT and RESET raise a KOBJ_CHANGE uevent on /dev/sdmN (SDM_TYPE,
 *    SDM_FROM, SDM_SLAVE, SDM_PAYLOAD0/1).
 *  - a mailbox controller (virtio_sdm.h): channel 0 is the broadcast
 *    on a master, the master on a slave; channel k is slave k on a master.
 *
 * Everything the device writes (used lengths, the result, every field of
 * a received signal) is checked: a bad one is dropped and counted, never
 * trusted.  Removal wakes every blocked reader and writer (-ENODEV); the
 * state lives until the last open file is closed.
 */
#include <linux/idr.h>
#include <linux/kref.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include <linux/mailbox_controller.h>

#include "virtio_sdm.h"
#include "virtio_sdm_wire.h"

struct vsdm;

/* One signal in flight on gh_vq. */
struct vsdm_tx {
	struct ivl_sdm_wire_signal sig;	/* device-readable */
	__le32 result;			/* device-writable */
	void (*complete)(struct vsdm *s, struct vsdm_tx *t, int result);
};

/* A mailbox channel's state (con_priv). */
struct vsdm_mchan {
	struct vsdm *s;
	u32 slave;		/* destination: IVL_TRANSPORT_SDM_ALL, 0, or k */
	bool bound;		/* rx_lock */
	int fail;		/* a local refusal to report from fail_work */
	struct work_struct fail_work;
	struct vsdm_tx tx;
};

struct vsdm {
	struct virtio_device *vdev;
	struct kref ref;		/* the device, and each open file */
	int index;			/* N of /dev/sdmN */
	char name[16];
	struct miscdevice misc;
	struct virtqueue *hgq, *ghq;
	bool master;
	bool dead;			/* removed: under rx_lock and tx_lock */

	struct mutex cfg_mutex;		/* the cached configuration */
	u8 cfg_master;
	u16 max_slaves, current_slaves;
	struct work_struct config_work;

	spinlock_t tx_lock;		/* gh_vq */
	struct mutex tx_mutex;		/* writers, one signal at a time */
	wait_queue_head_t txwait;
	struct vsdm_tx sync;		/* the writers' buffer */
	bool sync_busy;			/* it is with the device */
	int sync_res;

	spinlock_t rx_lock;		/* hg_vq, rxq, ev, open_count */
	struct ivl_transport_sdm_rx *rxbuf;
	unsigned int nrx;
	struct vsdm_rec *rxq;		/* for readers, while open */
	unsigned int rxq_size, rxq_head, rxq_count;
	unsigned int open_count;
	wait_queue_head_t rxwait;
	struct vsdm_rec ev[32];		/* BOOT/RESET waiting for uevent_work */
	unsigned int ev_head, ev_count;
	struct work_struct uevent_work;
	u64 rx_total, bad_rx, ev_lost;

	struct mbox_controller mbox;
	struct mbox_chan *chans;
	struct vsdm_mchan *mchans;
	bool mbox_on;
	struct list_head node;		/* sdm_list */
};

static void vsdm_event(struct vsdm *s, const struct vsdm_rec *r);
static void vsdm_mbox_rx(struct vsdm *s, const struct vsdm_rec *r);
static int vsdm_tx_start(struct vsdm *s, struct vsdm_tx *t);
static int sdm_check(struct vsdm *s, u32 type, u32 slave);

static unsigned int queue_len = 256;
module_param(queue_len, uint, 0444);
MODULE_PARM_DESC(queue_len, "signals held for readers of /dev/sdmN before hg_vq is left full (default 256, 16..4096)");

static unsigned int mbox_slaves = 16;
module_param(mbox_slaves, uint, 0444);
MODULE_PARM_DESC(mbox_slaves, "mailbox channels to slaves on a master (default 16, 0..1024)");

static unsigned int send_timeout_ms = 10000;
module_param(send_timeout_ms, uint, 0644);
MODULE_PARM_DESC(send_timeout_ms, "how long write() waits for the device's result, ms (default 10000)");

static DEFINE_IDA(sdm_ida);
static DEFINE_MUTEX(sdm_list_lock);	/* sdm_list */
static LIST_HEAD(sdm_list);

/* ---- lifetime ------------------------------------------------------------------ */

static void sdm_release_kref(struct kref *k)
{
	struct vsdm *s = container_of(k, struct vsdm, ref);

	ida_free(&sdm_ida, s->index);
	kfree(s->rxq);
	kfree(s->rxbuf);
	kfree(s->chans);
	kfree(s->mchans);
	kfree(s);
}

static void sdm_put(struct vsdm *s)
{
	kref_put(&s->ref, sdm_release_kref);
}

/* ---- gh_vq: sending ------------------------------------------------------------- */

/*
 * Queue @t (its signal already filled) on gh_vq.  Any context; the
 * result comes back through sdm_tx_done().
 */
static int vsdm_tx_start(struct vsdm *s, struct vsdm_tx *t)
{
	struct scatterlist out, in, *sgs[2] = { &out, &in };
	unsigned long flags;
	int ret;

	sg_init_one(&out, &t->sig, sizeof(t->sig));
	sg_init_one(&in, &t->result, sizeof(t->result));
	t->result = cpu_to_le32(0);
	spin_lock_irqsave(&s->tx_lock, flags);
	if (s->dead) {
		ret = -ENODEV;
	} else {
		ret = virtqueue_add_sgs(s->ghq, sgs, 1, 1, t, GFP_ATOMIC);
		if (ret == 0)
			virtqueue_kick(s->ghq);
	}
	spin_unlock_irqrestore(&s->tx_lock, flags);
	return ret == -ENOSPC ? -EAGAIN : ret;
}

/* The device's le32 result, which it controls: a used length short of it
 * or a value that is neither a count of slaves nor an errno is -EIO. */
static int sdm_tx_result(struct vsdm *s, struct vsdm_tx *t, unsigned int len)
{
	int r;

	if (!vsdm_result_parse(t->result, len, &r))
		dev_warn_ratelimited(&s->vdev->dev, "gh_vq: bad result (length %u, value %d)\n",
				     len, (s32)le32_to_cpu(t->result));
	return r;
}

static void sdm_ghq_done(struct virtqueue *vq)
{
	struct vsdm *s = vq->vdev->priv;
	struct vsdm_tx *t;
	unsigned long flags;
	unsigned int len;

	for (;;) {
		spin_lock_irqsave(&s->tx_lock, flags);
		/* Removed: writers see `dead`, the mailbox is going away. */
		t = s->dead ? NULL : virtqueue_get_buf(vq, &len);
		spin_unlock_irqrestore(&s->tx_lock, flags);
		if (!t)
			break;
		t->complete(s, t, sdm_tx_result(s, t, len));
	}
}

static void sdm_sync_complete(struct vsdm *s, struct vsdm_tx *t, int r)
{
	WRITE_ONCE(s->sync_res, r);
	/* Pairs with the acquire in sdm_send_one()'s wait condition. */
	smp_store_release(&s->sync_busy, false);
	wake_up_all(&s->txwait);
}

/* The seed's rules (000: Device Operation), checked before the device
 * sees the signal so that a refusal is a clear errno. */
static int sdm_check(struct vsdm *s, u32 type, u32 slave)
{
	if (type >= IVL_SDM_NTYPES_WIRE)
		return -EINVAL;
	if (!s->master)	/* a slave signals the master only, slave field 0 */
		return slave == 0 ? 0 : -EPERM;
	if (slave == IVL_TRANSPORT_SDM_ALL)
		return 0;
	if (slave == 0)	/* the master does not signal itself */
		return -EINVAL;
	return slave <= IVL_SDM_MAX_SLAVES_WIRE ? 0 : -EINVAL;
}

/* Until the writers' buffer is back from the device: 0, -ENODEV
 * (removed), -ETIMEDOUT (send_timeout_ms: it stays with the device, the
 * next writer waits for it again) or -ERESTARTSYS. */
static int sdm_wait_sync(struct vsdm *s)
{
	long r;

	r = wait_event_interruptible_timeout(s->txwait, !smp_load_acquire(&s->sync_busy) ||
					     READ_ONCE(s->dead),
					     msecs_to_jiffies(send_timeout_ms));
	if (r < 0)
		return r;
	if (READ_ONCE(s->dead))
		return -ENODEV;
	return r ? 0 : -ETIMEDOUT;
}

/* One signal from a writer; returns the device's result (>= 0) or -errno.
 * Sleeps; serialised by tx_mutex. */
static int sdm_send_one(struct vsdm *s, const struct ivl_sdm_wire_signal *w)
{
	int ret;

	ret = sdm_check(s, le32_to_cpu(w->type), le32_to_cpu(w->slave));
	if (ret)
		return ret;
	/* A writer interrupted earlier may have left its buffer with the
	 * device: wait for it to come back before reusing it. */
	ret = sdm_wait_sync(s);
	if (ret)
		return ret;
	s->sync.sig = *w;
	s->sync_busy = true;
	ret = vsdm_tx_start(s, &s->sync);
	if (ret) {
		s->sync_busy = false;
		return ret;
	}
	ret = sdm_wait_sync(s);
	/* Interrupted or timed out: the signal may or may not have gone. */
	return ret ? ret : READ_ONCE(s->sync_res);
}

/* ---- hg_vq: receiving ----------------------------------------------------------- */

static int sdm_rx_post(struct vsdm *s, struct ivl_transport_sdm_rx *b)
{
	struct scatterlist sg;

	sg_init_one(&sg, b, sizeof(*b));
	return virtqueue_add_inbuf(s->hgq, &sg, 1, b, GFP_ATOMIC);
}

/* Validate one delivered signal; false: dropped (counted, logged). */
static bool sdm_rx_valid(struct vsdm *s, const struct ivl_transport_sdm_rx *b,
			 unsigned int len, struct vsdm_rec *r)
{
	if (vsdm_rx_parse(b, len, s->master, r))
		return true;
	s->bad_rx++;
	dev_warn_ratelimited(&s->vdev->dev,
			     "hg_vq: dropped a malformed signal (length %u, type %u, slave %u, from %u; %llu so far)\n",
			     len, r->type, r->slave, r->from, (unsigned long long)s->bad_rx);
	return false;
}

/*
 * Take what the device delivered, while the readers' queue has room (a
 * full queue leaves the buffers with us and the device holds the rest:
 * backpressure, nothing dropped).  Called from the interrupt and by
 * readers that made room.
 */
static void sdm_rx_drain(struct vsdm *s)
{
	struct ivl_transport_sdm_rx *b;
	struct vsdm_rec r;
	unsigned long flags;
	unsigned int len;
	bool got = false, kick = false;

	spin_lock_irqsave(&s->rx_lock, flags);
	while (!s->dead && s->rxq_count < s->rxq_size) {
		b = virtqueue_get_buf(s->hgq, &len);
		if (!b)
			break;
		if (sdm_rx_valid(s, b, len, &r)) {
			s->rx_total++;
			if (s->open_count) {
				s->rxq[(s->rxq_head + s->rxq_count) % s->rxq_size] = r;
				s->rxq_count++;
				got = true;
			}
			vsdm_event(s, &r);
		}
		if (sdm_rx_post(s, b) == 0)
			kick = true;
	}
	if (kick)
		virtqueue_kick(s->hgq);
	spin_unlock_irqrestore(&s->rx_lock, flags);
	if (got)
		wake_up_interruptible_poll(&s->rxwait, EPOLLIN | EPOLLRDNORM);
}

static void sdm_hgq_done(struct virtqueue *vq)
{
	sdm_rx_drain(vq->vdev->priv);
}

/* ---- uevents (BOOT, RESET) ---------------------------------------------------- */

static void sdm_uevent_work(struct work_struct *work)
{
	struct vsdm *s = container_of(work, struct vsdm, uevent_work);
	static const char *const names[] = { "IRQ", "BOOT", "RESET" };
	char type[24], from[24], slave[24], p0[32], p1[32];
	char *envp[] = { type, from, slave, p0, p1, NULL };
	struct vsdm_rec r;
	unsigned long flags;

	for (;;) {
		spin_lock_irqsave(&s->rx_lock, flags);
		if (!s->ev_count || s->dead) {
			spin_unlock_irqrestore(&s->rx_lock, flags);
			return;
		}
		r = s->ev[s->ev_head];
		s->ev_head = (s->ev_head + 1) % ARRAY_SIZE(s->ev);
		s->ev_count--;
		spin_unlock_irqrestore(&s->rx_lock, flags);
		snprintf(type, sizeof(type), "SDM_TYPE=%s", names[r.type]);
		if (r.from == VSDM_FROM_UNKNOWN)
			snprintf(from, sizeof(from), "SDM_FROM=unknown");
		else
			snprintf(from, sizeof(from), "SDM_FROM=%u", r.from);
		snprintf(slave, sizeof(slave), "SDM_SLAVE=%u", r.slave);
		snprintf(p0, sizeof(p0), "SDM_PAYLOAD0=0x%08x", r.payload[0]);
		snprintf(p1, sizeof(p1), "SDM_PAYLOAD1=0x%08x", r.payload[1]);
		kobject_uevent_env(&s->misc.this_device->kobj, KOBJ_CHANGE, envp);
	}
}

/* A received signal, for the uevent and the mailbox; rx_lock held. */
static void vsdm_event(struct vsdm *s, const struct vsdm_rec *r)
{
	if (r->type == IVL_SDM_BOOT_WIRE || r->type == IVL_SDM_RESET_WIRE) {
		if (s->ev_count == ARRAY_SIZE(s->ev)) {
			s->ev_lost++;
			dev_warn_ratelimited(&s->vdev->dev,
					     "%llu BOOT/RESET uevents lost (queue full)\n",
					     (unsigned long long)s->ev_lost);
		} else {
			s->ev[(s->ev_head + s->ev_count) % ARRAY_SIZE(s->ev)] = *r;
			s->ev_count++;
			schedule_work(&s->uevent_work);
		}
	}
	vsdm_mbox_rx(s, r);
}

/* ---- configuration ------------------------------------------------------------ */

static void sdm_config_read(struct vsdm *s)
{
	u8 master;
	u16 max, cur;

	virtio_cread(s->vdev, struct ivl_transport_sdm_config, master, &master);
	virtio_cread_le(s->vdev, struct ivl_transport_sdm_config, max_slaves, &max);
	virtio_cread_le(s->vdev, struct ivl_transport_sdm_config, current_slaves, &cur);
	mutex_lock(&s->cfg_mutex);
	s->cfg_master = master;
	s->max_slaves = max;
	s->current_slaves = cur;
	mutex_unlock(&s->cfg_mutex);
}

static void sdm_config_work(struct work_struct *work)
{
	struct vsdm *s = container_of(work, struct vsdm, config_work);

	sdm_config_read(s);
	sysfs_notify(&s->misc.this_device->kobj, NULL, "current_slaves");
	sysfs_notify(&s->misc.this_device->kobj, NULL, "max_slaves");
}

static void sdm_config_changed(struct virtio_device *vdev)
{
	struct vsdm *s = vdev->priv;

	/* Called under the config lock with interrupts off: reading the
	 * configuration takes transport commands, which sleep. */
	schedule_work(&s->config_work);
}

static struct vsdm *dev_to_sdm(struct device *dev)
{
	struct miscdevice *m = dev_get_drvdata(dev);

	return container_of(m, struct vsdm, misc);
}

static ssize_t master_show(struct device *dev, struct device_attribute *a, char *buf)
{
	return sysfs_emit(buf, "%u\n", dev_to_sdm(dev)->master ? 1 : 0);
}
static DEVICE_ATTR_RO(master);

/* A cached configuration field, as config_work last read it. */
static ssize_t sdm_show_cfg(struct vsdm *s, const u16 *field, char *buf)
{
	unsigned int v;

	mutex_lock(&s->cfg_mutex);
	v = *field;
	mutex_unlock(&s->cfg_mutex);
	return sysfs_emit(buf, "%u\n", v);
}

static ssize_t current_slaves_show(struct device *dev, struct device_attribute *a, char *buf)
{
	struct vsdm *s = dev_to_sdm(dev);

	return sdm_show_cfg(s, &s->current_slaves, buf);
}
static DEVICE_ATTR_RO(current_slaves);

static ssize_t max_slaves_show(struct device *dev, struct device_attribute *a, char *buf)
{
	struct vsdm *s = dev_to_sdm(dev);

	return sdm_show_cfg(s, &s->max_slaves, buf);
}

/* A master's max_slaves, 1..1024; the device may refuse a value (it then
 * keeps the old one, which is read back): -EINVAL. */
static ssize_t max_slaves_store(struct device *dev, struct device_attribute *a,
				const char *buf, size_t count)
{
	struct vsdm *s = dev_to_sdm(dev);
	u16 v, now;
	int ret;

	if (!s->master)
		return -EPERM;
	ret = kstrtou16(buf, 0, &v);
	if (ret)
		return ret;
	if (v == 0 || v > IVL_SDM_MAX_SLAVES_WIRE)
		return -ERANGE;
	mutex_lock(&s->cfg_mutex);
	if (READ_ONCE(s->dead)) {
		mutex_unlock(&s->cfg_mutex);
		return -ENODEV;
	}
	virtio_cwrite_le(s->vdev, struct ivl_transport_sdm_config, max_slaves, &v);
	virtio_cread_le(s->vdev, struct ivl_transport_sdm_config, max_slaves, &now);
	s->max_slaves = now;
	mutex_unlock(&s->cfg_mutex);
	return now == v ? (ssize_t)count : -EINVAL;
}
static DEVICE_ATTR_RW(max_slaves);

static ssize_t stats_show(struct device *dev, struct device_attribute *a, char *buf)
{
	struct vsdm *s = dev_to_sdm(dev);

	return sysfs_emit(buf, "received %llu malformed %llu uevents_lost %llu\n",
			  (unsigned long long)READ_ONCE(s->rx_total),
			  (unsigned long long)READ_ONCE(s->bad_rx),
			  (unsigned long long)READ_ONCE(s->ev_lost));
}
static DEVICE_ATTR_RO(stats);

static struct attribute *sdm_attrs[] = {
	&dev_attr_master.attr,
	&dev_attr_max_slaves.attr,
	&dev_attr_current_slaves.attr,
	&dev_attr_stats.attr,
	NULL,
};
ATTRIBUTE_GROUPS(sdm);

/* ---- /dev/sdmN ------------------------------------------------------------------- */

static struct vsdm *file_sdm(struct file *f)
{
	return f->private_data;
}

static int sdm_open(struct inode *inode, struct file *f)
{
	struct miscdevice *m = f->private_data; /* set by misc_open */
	struct vsdm *s = container_of(m, struct vsdm, misc);
	unsigned long flags;

	spin_lock_irqsave(&s->rx_lock, flags);
	if (s->dead) {
		spin_unlock_irqrestore(&s->rx_lock, flags);
		return -ENODEV;
	}
	s->open_count++;
	kref_get(&s->ref);
	spin_unlock_irqrestore(&s->rx_lock, flags);
	f->private_data = s;
	return stream_open(inode, f);
}

static int sdm_release(struct inode *inode, struct file *f)
{
	struct vsdm *s = file_sdm(f);
	unsigned long flags;

	spin_lock_irqsave(&s->rx_lock, flags);
	/* The last reader gone: what is queued has nobody to go to. */
	if (--s->open_count == 0)
		s->rxq_count = 0;
	spin_unlock_irqrestore(&s->rx_lock, flags);
	if (!READ_ONCE(s->dead))
		sdm_rx_drain(s);
	sdm_put(s);
	return 0;
}

static bool sdm_readable(struct vsdm *s)
{
	return READ_ONCE(s->rxq_count) || READ_ONCE(s->dead);
}

/* Whole records of struct ivl_transport_sdm_rx (20 bytes) only. */
static ssize_t sdm_read(struct file *f, char __user *ubuf, size_t count, loff_t *pos)
{
	struct vsdm *s = file_sdm(f);
	struct ivl_transport_sdm_rx out;
	struct vsdm_rec r;
	unsigned long flags;
	size_t done = 0;
	int ret;

	if (count < sizeof(out))
		return -EINVAL;
	for (;;) {
		spin_lock_irqsave(&s->rx_lock, flags);
		if (s->rxq_count || s->dead)
			break;
		spin_unlock_irqrestore(&s->rx_lock, flags);
		if (f->f_flags & O_NONBLOCK)
			return -EAGAIN;
		ret = wait_event_interruptible(s->rxwait, sdm_readable(s));
		if (ret)
			return ret;
	}
	while (s->rxq_count && count - done >= sizeof(out)) {
		r = s->rxq[s->rxq_head];
		s->rxq_head = (s->rxq_head + 1) % s->rxq_size;
		s->rxq_count--;
		spin_unlock_irqrestore(&s->rx_lock, flags);
		out.sig.type = cpu_to_le32(r.type);
		out.sig.slave = cpu_to_le32(r.slave);
		out.sig.payload[0] = cpu_to_le32(r.payload[0]);
		out.sig.payload[1] = cpu_to_le32(r.payload[1]);
		out.from = cpu_to_le32(r.from);
		if (copy_to_user(ubuf + done, &out, sizeof(out))) {
			/* The record is lost to a bad buffer: the caller's. */
			if (!done)
				done = -EFAULT;
			goto out;
		}
		done += sizeof(out);
		spin_lock_irqsave(&s->rx_lock, flags);
	}
	if (!done && s->dead) {
		spin_unlock_irqrestore(&s->rx_lock, flags);
		return -ENODEV;
	}
	spin_unlock_irqrestore(&s->rx_lock, flags);
out:
	/* Room was made: take what the device left waiting. */
	if (!READ_ONCE(s->dead))
		sdm_rx_drain(s);
	return done;
}

/* Whole records of struct ivl_sdm_wire_signal (16 bytes), sent in order;
 * a refusal of the first is its -errno, of a later one a short count. */
static ssize_t sdm_write(struct file *f, const char __user *ubuf, size_t count, loff_t *pos)
{
	struct vsdm *s = file_sdm(f);
	struct ivl_sdm_wire_signal w;
	size_t done = 0;
	int ret = 0;

	if (count == 0 || count % sizeof(w))
		return -EINVAL;
	if (mutex_lock_interruptible(&s->tx_mutex))
		return -ERESTARTSYS;
	while (done < count) {
		if (copy_from_user(&w, ubuf + done, sizeof(w))) {
			ret = -EFAULT;
			break;
		}
		ret = sdm_send_one(s, &w);
		if (ret < 0)
			break;
		done += sizeof(w);
	}
	mutex_unlock(&s->tx_mutex);
	return done ? (ssize_t)done : ret;
}

static __poll_t sdm_poll(struct file *f, poll_table *wait)
{
	struct vsdm *s = file_sdm(f);
	__poll_t m = 0;

	poll_wait(f, &s->rxwait, wait);
	if (READ_ONCE(s->dead))
		return EPOLLHUP | EPOLLERR;
	if (READ_ONCE(s->rxq_count))
		m |= EPOLLIN | EPOLLRDNORM;
	if (!smp_load_acquire(&s->sync_busy))
		m |= EPOLLOUT | EPOLLWRNORM;
	return m;
}

static const struct file_operations sdm_fops = {
	.owner = THIS_MODULE,
	.open = sdm_open,
	.release = sdm_release,
	.read = sdm_read,
	.write = sdm_write,
	.poll = sdm_poll,
	.llseek = no_llseek,
};

/* ---- mailbox controller ------------------------------------------------------ */

static void vsdm_mbox_tx_complete(struct vsdm *s, struct vsdm_tx *t, int r)
{
	struct vsdm_mchan *mc = container_of(t, struct vsdm_mchan, tx);

	mbox_chan_txdone(&s->chans[mc - s->mchans], r);
}

/* A refusal found in send_data, which runs under the channel's lock:
 * reported from here, as the device's results are. */
static void vsdm_mbox_fail_work(struct work_struct *work)
{
	struct vsdm_mchan *mc = container_of(work, struct vsdm_mchan, fail_work);

	mbox_chan_txdone(&mc->s->chans[mc - mc->s->mchans], mc->fail);
}

static int vsdm_mbox_send(struct mbox_chan *chan, void *data)
{
	struct vsdm_mchan *mc = chan->con_priv;
	const struct virtio_sdm_msg *m = data;
	struct vsdm *s = mc->s;
	int ret;

	mc->tx.sig.type = cpu_to_le32(m->type);
	mc->tx.sig.slave = cpu_to_le32(mc->slave);
	mc->tx.sig.payload[0] = cpu_to_le32(m->payload[0]);
	mc->tx.sig.payload[1] = cpu_to_le32(m->payload[1]);
	ret = sdm_check(s, m->type, mc->slave);
	if (!ret)
		ret = vsdm_tx_start(s, &mc->tx);
	/* -EAGAIN (gh_vq full) leaves the message queued for the next try;
	 * anything else is this message's result. */
	if (ret && ret != -EAGAIN) {
		mc->fail = ret;
		schedule_work(&mc->fail_work);
		ret = 0;
	}
	return ret;
}

static int vsdm_mbox_startup(struct mbox_chan *chan)
{
	struct vsdm_mchan *mc = chan->con_priv;
	unsigned long flags;

	spin_lock_irqsave(&mc->s->rx_lock, flags);
	mc->bound = true;
	spin_unlock_irqrestore(&mc->s->rx_lock, flags);
	return 0;
}

static void vsdm_mbox_shutdown(struct mbox_chan *chan)
{
	struct vsdm_mchan *mc = chan->con_priv;
	unsigned long flags;

	spin_lock_irqsave(&mc->s->rx_lock, flags);
	mc->bound = false;
	spin_unlock_irqrestore(&mc->s->rx_lock, flags);
	cancel_work_sync(&mc->fail_work);
}

static const struct mbox_chan_ops vsdm_mbox_ops = {
	.send_data = vsdm_mbox_send,
	.startup = vsdm_mbox_startup,
	.shutdown = vsdm_mbox_shutdown,
};

/* A received signal to the channel of its sender; rx_lock held. */
static void vsdm_mbox_rx(struct vsdm *s, const struct vsdm_rec *r)
{
	struct virtio_sdm_msg m;
	unsigned int k;

	if (!s->mbox_on)
		return;
	k = s->master ? r->from : 0;
	if (k >= (unsigned int)s->mbox.num_chans || (s->master && k == 0))
		return;	/* no channel for it (or `from` unknown) */
	if (!s->mchans[k].bound)
		return;
	m.type = r->type;
	m.from = r->from;
	m.payload[0] = r->payload[0];
	m.payload[1] = r->payload[1];
	mbox_chan_received_data(&s->chans[k], &m);
}

static int vsdm_mbox_init(struct vsdm *s)
{
	unsigned int n = s->master ? 1 + min(mbox_slaves, (unsigned int)IVL_SDM_MAX_SLAVES_WIRE) : 1;
	unsigned int k;

	s->chans = kcalloc(n, sizeof(*s->chans), GFP_KERNEL);
	s->mchans = kcalloc(n, sizeof(*s->mchans), GFP_KERNEL);
	if (!s->chans || !s->mchans)
		return -ENOMEM;
	for (k = 0; k < n; k++) {
		s->mchans[k].s = s;
		s->mchans[k].slave = !s->master ? 0 : k ? k : IVL_TRANSPORT_SDM_ALL;
		s->mchans[k].tx.complete = vsdm_mbox_tx_complete;
		INIT_WORK(&s->mchans[k].fail_work, vsdm_mbox_fail_work);
		s->chans[k].con_priv = &s->mchans[k];
	}
	s->mbox.dev = &s->vdev->dev;
	s->mbox.ops = &vsdm_mbox_ops;
	s->mbox.chans = s->chans;
	s->mbox.num_chans = n;
	s->mbox.txdone_irq = true;
	return 0;
}

static int vsdm_mbox_register(struct vsdm *s)
{
	int ret = mbox_controller_register(&s->mbox);

	if (ret)
		return ret;
	s->mbox_on = true;
	mutex_lock(&sdm_list_lock);
	list_add_tail(&s->node, &sdm_list);
	mutex_unlock(&sdm_list_lock);
	return 0;
}

static void vsdm_mbox_unregister(struct vsdm *s)
{
	unsigned long flags;

	mutex_lock(&sdm_list_lock);
	list_del(&s->node);
	mutex_unlock(&sdm_list_lock);
	spin_lock_irqsave(&s->rx_lock, flags);
	s->mbox_on = false;
	spin_unlock_irqrestore(&s->rx_lock, flags);
	mbox_controller_unregister(&s->mbox);
}

struct mbox_chan *virtio_sdm_mbox_chan(unsigned int index, unsigned int chan)
{
	struct mbox_chan *c = ERR_PTR(-ENODEV);
	struct vsdm *s;

	mutex_lock(&sdm_list_lock);
	list_for_each_entry(s, &sdm_list, node)
		if (s->index == (int)index && chan < (unsigned int)s->mbox.num_chans)
			c = &s->chans[chan];
	mutex_unlock(&sdm_list_lock);
	return c;
}
EXPORT_SYMBOL_GPL(virtio_sdm_mbox_chan);

/* ---- probe / remove ------------------------------------------------------------ */

static int sdm_find_vqs(struct vsdm *s)
{
	vq_callback_t *cbs[] = { sdm_hgq_done, sdm_ghq_done };
	static const char *const names[] = { "hg_vq", "gh_vq" };
	struct virtqueue *vqs[2];
	int ret;

	ret = virtio_find_vqs(s->vdev, 2, vqs, cbs, names, NULL);
	if (ret)
		return ret;
	s->hgq = vqs[0];
	s->ghq = vqs[1];
	return 0;
}

static int sdm_probe(struct virtio_device *vdev)
{
	struct vsdm *s;
	unsigned int k, nrx;
	int ret;

	if (!vdev->config->get) {
		dev_err(&vdev->dev, "the transport has no configuration space\n");
		return -EINVAL;
	}
	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	kref_init(&s->ref);
	s->vdev = vdev;
	spin_lock_init(&s->tx_lock);
	spin_lock_init(&s->rx_lock);
	mutex_init(&s->tx_mutex);
	mutex_init(&s->cfg_mutex);
	init_waitqueue_head(&s->rxwait);
	init_waitqueue_head(&s->txwait);
	INIT_WORK(&s->config_work, sdm_config_work);
	INIT_WORK(&s->uevent_work, sdm_uevent_work);
	s->sync.complete = sdm_sync_complete;
	s->rxq_size = clamp(queue_len, 16u, 4096u);
	ret = ida_alloc(&sdm_ida, GFP_KERNEL);
	if (ret < 0) {
		kfree(s);
		return ret;
	}
	s->index = ret;
	vdev->priv = s;
	s->rxq = kcalloc(s->rxq_size, sizeof(*s->rxq), GFP_KERNEL);
	ret = -ENOMEM;
	if (!s->rxq)
		goto err_put;
	sdm_config_read(s);
	if (s->cfg_master > 1) {
		dev_err(&vdev->dev, "config: master is %u, not 0 or 1\n", s->cfg_master);
		ret = -EPROTO;
		goto err_put;
	}
	s->master = s->cfg_master;
	ret = sdm_find_vqs(s);
	if (ret)
		goto err_put;
	/* Every hg_vq descriptor gets a receive buffer. */
	nrx = min(virtqueue_get_vring_size(s->hgq), 64u);
	s->rxbuf = kcalloc(nrx, sizeof(*s->rxbuf), GFP_KERNEL);
	ret = -ENOMEM;
	if (!s->rxbuf)
		goto err_vqs;
	s->nrx = nrx;
	snprintf(s->name, sizeof(s->name), "sdm%d", s->index);
	s->misc.minor = MISC_DYNAMIC_MINOR;
	s->misc.name = s->name;
	s->misc.fops = &sdm_fops;
	s->misc.parent = &vdev->dev;
	s->misc.groups = sdm_groups;
	s->misc.mode = 0600;
	ret = vsdm_mbox_init(s);
	if (ret)
		goto err_vqs;
	virtio_device_ready(vdev);
	for (k = 0; k < nrx; k++) {
		ret = sdm_rx_post(s, &s->rxbuf[k]);
		if (ret)
			goto err_reset;
	}
	virtqueue_kick(s->hgq);
	ret = misc_register(&s->misc);
	if (ret)
		goto err_reset;
	ret = vsdm_mbox_register(s);
	if (ret)
		goto err_misc;
	dev_info(&vdev->dev, "/dev/%s: SDM %s, max_slaves %u, current_slaves %u\n", s->name,
		 s->master ? "master" : "slave", s->max_slaves, s->current_slaves);
	return 0;

err_misc:
	misc_deregister(&s->misc);
err_reset:
	s->dead = true;
	virtio_reset_device(vdev);
	while (virtqueue_detach_unused_buf(s->hgq))
		;
err_vqs:
	vdev->config->del_vqs(vdev);
err_put:
	vdev->priv = NULL;
	sdm_put(s);
	return ret;
}

static void sdm_remove(struct virtio_device *vdev)
{
	struct vsdm *s = vdev->priv;
	unsigned long flags;

	spin_lock_irqsave(&s->rx_lock, flags);
	spin_lock(&s->tx_lock);
	s->dead = true;
	spin_unlock(&s->tx_lock);
	spin_unlock_irqrestore(&s->rx_lock, flags);
	/* Blocked readers and writers see `dead` and return -ENODEV; no
	 * queue is touched from here on but below. */
	wake_up_all(&s->rxwait);
	wake_up_all(&s->txwait);
	cancel_work_sync(&s->config_work);
	cancel_work_sync(&s->uevent_work);
	virtio_reset_device(vdev);
	while (virtqueue_detach_unused_buf(s->hgq))
		;
	while (virtqueue_detach_unused_buf(s->ghq))
		;
	vdev->config->del_vqs(vdev);
	/* No interrupt any more: no tx completion races the mailbox's end. */
	vsdm_mbox_unregister(s);
	misc_deregister(&s->misc);
	vdev->priv = NULL;
	sdm_put(s);
}

static const struct virtio_device_id sdm_id_table[] = {
	{ IVL_TRANSPORT_VIRTIO_SDM, VIRTIO_DEV_ANY_ID },
	{ 0 },
};
MODULE_DEVICE_TABLE(virtio, sdm_id_table);

static struct virtio_driver sdm_driver = {
	.driver.name = KBUILD_MODNAME,
	.driver.owner = THIS_MODULE,
	.id_table = sdm_id_table,
	.probe = sdm_probe,
	.remove = sdm_remove,
	.config_changed = sdm_config_changed,
};
module_virtio_driver(sdm_driver);

MODULE_DESCRIPTION("virtio Signal Distribution Module driver (device 21): /dev/sdmN, mailbox, uevents");
MODULE_LICENSE("GPL");
