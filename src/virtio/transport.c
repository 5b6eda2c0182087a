/* SPDX-License-Identifier: MIT */
/*
 * The management device (seed 002, docs/transport.md): the device
 * table, window allocation, per-device MSI tables, the management class
 * and the entry of the command decoder (the other classes are in
 * transport-cmd.c).  Every command is hostile data: it is checked in the
 * order of docs/transport.md §3 and answered ERR with a reason instead of
 * misbehaving.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "core/internal.h"
#include "transport-internal.h"

#define WINDOW_MAX (64ull << 20)

struct ivl_transport_device {
	struct ivl_transport_device_opts o;
	uint8_t *area;
	uint64_t ngran;
	uint8_t *gran_used; /* one byte per granule */
	struct ivl__tdev *dev[IVL_TRANSPORT_MAX_DEVICES];
	uint64_t next_id;
	int epfd;
	uint16_t caller; /* peer of the command being executed */
	/* The management device's own negotiation (device_id 0). */
	uint64_t self_features;
	uint32_t self_status;
	void *net; /* dev-net.c: the live switches */
};

static const struct ivl__tdev_type *const types[] = {&ivl__console_type, &ivl__sdm_type,
						     &ivl__rng_type, &ivl__blk_type,
						     &ivl__net_type};

IVL_EXPORT const char *ivl_transport_reason_name(uint32_t reason)
{
	static const char *const names[] = {
	    NULL,	 "length",	"class",   "command",  "no-device", "device-id",
	    "virtio-id", "no-space",	"queue",   "state",    "value",	    "window",
	    "vector",	 "not-sharing", "backend", "reserved", "in-space",  "msi-disabled",
	};
	return reason >= 1 && reason < IVL_ARRAY_SIZE(names) ? names[reason] : "unknown";
}

/* ---- devices ------------------------------------------------------------------ */

void ivl__tqueue_drop(struct ivl__tqueue *q)
{
	ivl_virtq_free(q->vq);
	memset(q, 0, sizeof(*q));
}

void ivl__tdev_reset(struct ivl__tdev *d)
{
	for (unsigned i = 0; i < IVL_TRANSPORT_MAX_QUEUES; i++)
		ivl__tqueue_drop(&d->q[i]);
	d->status = 0;
	d->drv_features = 0;
	ivl_msi_reset(d->msi);
	if (d->type->reset)
		d->type->reset(d);
}

static void dev_free(struct ivl_transport_device *m, unsigned slot)
{
	struct ivl__tdev *d = m->dev[slot];
	if (!d)
		return;
	for (unsigned i = 0; i < IVL_TRANSPORT_MAX_QUEUES; i++)
		ivl__tqueue_drop(&d->q[i]);
	if (d->type->fini)
		d->type->fini(d);
	ivl_msi_free(d->msi);
	memset(m->gran_used + (d->win_off - IVL_TRANSPORT_WINDOWS_OFF) / IVL_TRANSPORT_GRANULE, 0,
	       d->win_size / IVL_TRANSPORT_GRANULE);
	free(d);
	m->dev[slot] = NULL;
}

static struct ivl__tdev *dev_find(struct ivl_transport_device *m, uint64_t id, unsigned *slot)
{
	for (unsigned i = 0; i < IVL_TRANSPORT_MAX_DEVICES; i++)
		if (m->dev[i] && m->dev[i]->id == id) {
			if (slot)
				*slot = i;
			return m->dev[i];
		}
	return NULL;
}

/* First fit of @n granules; returns the first granule or -1. */
static int64_t gran_alloc(struct ivl_transport_device *m, uint64_t n)
{
	uint64_t run = 0;
	for (uint64_t i = 0; i < m->ngran; i++) {
		run = m->gran_used[i] ? 0 : run + 1;
		if (run == n) {
			memset(m->gran_used + i + 1 - n, 1, n);
			return (int64_t)(i + 1 - n);
		}
	}
	return -1;
}

static int msi_deliver(void *opaque, uint32_t vector, uint64_t address, uint32_t data)
{
	struct ivl__tdev *d = opaque;
	if (!d->m->o.msi_deliver)
		return -ENOTCONN;
	return d->m->o.msi_deliver(d->m->o.msi_opaque, vector, address, data);
}

struct ivl_virtq *ivl__tdev_queue(struct ivl__tdev *d, unsigned q)
{
	if (q >= d->type->nqueues ||
	    (d->status & (IVL__VS_DRIVER_OK | IVL__VS_NEEDS_RESET)) != IVL__VS_DRIVER_OK)
		return NULL;
	return d->q[q].vq;
}

int ivl__tdev_notify(struct ivl__tdev *d, unsigned q)
{
	int r = ivl_virtq_need_notify(d->q[q].vq);
	if (r <= 0)
		return r;
	r = ivl_msi_raise_queue(d->msi, q);
	return r < 0 && r != -ENOENT && r != -EAGAIN ? r : 1;
}

void ivl__tdev_config_changed(struct ivl__tdev *d)
{
	d->generation++;
	(void)ivl_msi_raise_config(d->msi);
}

void ivl__tdev_broken(struct ivl__tdev *d, int e)
{
	ivl__warn("transport: device %llu: queue broken (%d), needs reset",
		  (unsigned long long)d->id, e);
	d->status |= IVL__VS_NEEDS_RESET;
	ivl__tdev_config_changed(d);
}

size_t ivl__elem_read(const struct ivl_virtq_elem *e, void *dst, size_t max)
{
	size_t n = 0;
	for (unsigned i = 0; i < e->out_num && n < max; i++) {
		size_t k = e->iov[i].iov_len < max - n ? e->iov[i].iov_len : max - n;
		memcpy((uint8_t *)dst + n, e->iov[i].iov_base, k);
		n += k;
	}
	return n;
}

size_t ivl__elem_write(const struct ivl_virtq_elem *e, const void *src, size_t len)
{
	size_t n = 0;
	for (unsigned i = e->out_num; i < e->out_num + e->in_num && n < len; i++) {
		size_t k = e->iov[i].iov_len < len - n ? e->iov[i].iov_len : len - n;
		memcpy(e->iov[i].iov_base, (const uint8_t *)src + n, k);
		n += k;
	}
	return n;
}

int ivl__tdev_pop(struct ivl__tdev *d, unsigned q, struct ivl_virtq_elem *e)
{
	struct ivl_virtq *vq = ivl__tdev_queue(d, q);
	if (!vq)
		return 0;
	int r = ivl_virtq_pop(vq, e);
	if (r < 0)
		ivl__tdev_broken(d, r); /* -ENOBUFS too: no chain of ours is that long */
	return r;
}

void ivl__tdev_done(struct ivl__tdev *d, unsigned q, uint16_t head, uint32_t len)
{
	struct ivl_virtq *vq = d->q[q].vq;
	int r = ivl_virtq_push(vq, head, len);
	if (r == 0)
		r = ivl_virtq_flush(vq);
	if (r < 0)
		ivl__tdev_broken(d, r);
	else
		(void)ivl__tdev_notify(d, q);
}

/* ---- the management class ---------------------------------------------------------- */

static void fill_info(const struct ivl__tdev *d, uint8_t *p)
{
	memset(p, 0, sizeof(struct ivl_transport_info));
	ivl__put64(p + offsetof(struct ivl_transport_info, device_id), d->id);
	ivl__put32(p + offsetof(struct ivl_transport_info, virtio_id), d->type->virtio_id);
	ivl__put32(p + offsetof(struct ivl_transport_info, status), d->status);
	ivl__put64(p + offsetof(struct ivl_transport_info, window_offset), d->win_off);
	ivl__put64(p + offsetof(struct ivl_transport_info, window_size), d->win_size);
	ivl__put16(p + offsetof(struct ivl_transport_info, num_queues), (uint16_t)d->type->nqueues);
	ivl__put16(p + offsetof(struct ivl_transport_info, msi_vectors), (uint16_t)ivl_msi_num(d->msi));
	ivl__put32(p + offsetof(struct ivl_transport_info, flags), d->flags);
	ivl__put16(p + offsetof(struct ivl_transport_info, driver_peer), d->driver_peer);
	memcpy(p + offsetof(struct ivl_transport_info, backend), d->backend, sizeof(d->backend) - 1);
}

static int cmd_create(struct ivl_transport_device *m, const uint8_t *out, size_t len, struct ivl__ans *a)
{
	/* The struct, or the struct and a backend argument NUL-terminated
	 * within its IVL_TRANSPORT_CREATE_ARG_MAX bytes. */
	size_t alen = len - sizeof(struct ivl_transport_create);
	if (len < sizeof(struct ivl_transport_create) || alen > IVL_TRANSPORT_CREATE_ARG_MAX)
		return ivl__ans_err(a, IVL_TRANSPORT_E_LENGTH);
	char arg[IVL_TRANSPORT_CREATE_ARG_MAX];
	if (alen) {
		memcpy(arg, out + sizeof(struct ivl_transport_create), alen);
		if (!memchr(arg, 0, alen) || !arg[0])
			return ivl__ans_err(a, IVL_TRANSPORT_E_VALUE);
	}
	struct ivl_transport_create c = {
	    .virtio_id = ivl__le32(out),
	    .flags = ivl__le32(out + 4),
	    .window_size = ivl__le64(out + 8),
	    .msi_vectors = ivl__le32(out + 16),
	};
	for (int i = 0; i < 3; i++)
		c.param[i] = ivl__le32(out + 20 + 4 * i);
	if (!ivl__ans_room(a, sizeof(struct ivl_transport_info)))
		return ivl__ans_err(a, IVL_TRANSPORT_E_IN_SPACE);
	const struct ivl__tdev_type *t = NULL;
	for (size_t i = 0; i < IVL_ARRAY_SIZE(types); i++)
		if (types[i]->virtio_id == c.virtio_id)
			t = types[i];
	if (!t || (t == &ivl__console_type && m->o.no_console) ||
	    (t == &ivl__sdm_type && m->o.no_sdm) || (t == &ivl__rng_type && m->o.no_rng))
		return ivl__ans_err(a, IVL_TRANSPORT_E_VIRTIO_ID);
	/* Known flags; a peer in the upper half only with F_FOR_PEER. */
	if ((c.flags & 0xffffu & ~(IVL_TRANSPORT_CREATE_F_MSI_SHARING | IVL_TRANSPORT_CREATE_F_FOR_PEER)) ||
	    (!(c.flags & IVL_TRANSPORT_CREATE_F_FOR_PEER) && (c.flags >> 16)))
		return ivl__ans_err(a, IVL_TRANSPORT_E_VALUE);
	uint64_t wsz = c.window_size ? c.window_size : t->window_default;
	if (wsz > WINDOW_MAX)
		return ivl__ans_err(a, IVL_TRANSPORT_E_VALUE);
	wsz = (wsz + IVL_TRANSPORT_GRANULE - 1) / IVL_TRANSPORT_GRANULE * IVL_TRANSPORT_GRANULE;
	unsigned nvec = c.msi_vectors ? c.msi_vectors : t->nqueues + 1;
	bool sharing = c.flags & IVL_TRANSPORT_CREATE_F_MSI_SHARING;
	/* Seed 004's counts: non-sharing needs a vector per event (more than
	 * the queues), sharing at least 2 (ivl_msi_new() enforces the same). */
	if (nvec > 2048 || (sharing ? nvec < 2 : nvec <= t->nqueues))
		return ivl__ans_err(a, IVL_TRANSPORT_E_VALUE);
	unsigned slot = IVL_TRANSPORT_MAX_DEVICES;
	for (unsigned i = 0; i < IVL_TRANSPORT_MAX_DEVICES && slot == IVL_TRANSPORT_MAX_DEVICES; i++)
		if (!m->dev[i])
			slot = i;
	if (slot == IVL_TRANSPORT_MAX_DEVICES)
		return ivl__ans_err(a, IVL_TRANSPORT_E_NO_SPACE);
	struct ivl__tdev *d = calloc(1, sizeof(*d));
	if (!d)
		return ivl__ans_err(a, IVL_TRANSPORT_E_NO_SPACE);
	int64_t g = gran_alloc(m, wsz / IVL_TRANSPORT_GRANULE);
	if (g < 0) {
		free(d);
		return ivl__ans_err(a, IVL_TRANSPORT_E_NO_SPACE);
	}
	d->m = m;
	d->type = t;
	d->flags = c.flags;
	d->win_off = IVL_TRANSPORT_WINDOWS_OFF + (uint64_t)g * IVL_TRANSPORT_GRANULE;
	d->win_size = wsz;
	d->window = m->area + d->win_off;
	d->id = m->next_id;
	memset(d->window, 0, wsz);
	m->dev[slot] = d;
	if (ivl_msi_new(&d->msi, nvec, t->nqueues, c.flags & IVL_TRANSPORT_CREATE_F_MSI_SHARING,
			msi_deliver, d) < 0) {
		dev_free(m, slot);
		return ivl__ans_err(a, IVL_TRANSPORT_E_NO_SPACE);
	}
	int r = t->init(d, &c, alen ? arg : NULL, &m->o);
	if (r < 0) {
		ivl__info("transport: creating a %s failed: %d", t->name, r);
		dev_free(m, slot);
		return ivl__ans_err(a, r == -EINVAL || r == -ERANGE ? IVL_TRANSPORT_E_VALUE
								    : IVL_TRANSPORT_E_BACKEND);
	}
	m->next_id++;
	d->driver_peer = c.flags & IVL_TRANSPORT_CREATE_F_FOR_PEER ? (uint16_t)(c.flags >> 16) : m->caller;
	fill_info(d, a->buf + 4);
	ivl__info("transport: created %s device %llu (%s)", t->name, (unsigned long long)d->id,
		  d->backend);
	return ivl__ans_ok(a, sizeof(struct ivl_transport_info));
}

static int cmd_list(struct ivl_transport_device *m, struct ivl__ans *a)
{
	if (!ivl__ans_room(a, sizeof(struct ivl_transport_list_resp)))
		return ivl__ans_err(a, IVL_TRANSPORT_E_IN_SPACE);
	uint8_t *p = a->buf + 4 + sizeof(struct ivl_transport_list_resp);
	size_t n = sizeof(struct ivl_transport_list_resp);
	uint32_t count = 0;
	for (unsigned i = 0; i < IVL_TRANSPORT_MAX_DEVICES; i++) {
		const struct ivl__tdev *d = m->dev[i];
		if (!d)
			continue;
		count++;
		if (!ivl__ans_room(a, n + sizeof(struct ivl_transport_list_entry)))
			continue;
		ivl__put64(p, d->id);
		ivl__put32(p + 8, d->type->virtio_id);
		ivl__put32(p + 12, d->status);
		p += sizeof(struct ivl_transport_list_entry);
		n += sizeof(struct ivl_transport_list_entry);
	}
	ivl__put32(a->buf + 4, count);
	ivl__put32(a->buf + 8, 0);
	return ivl__ans_ok(a, n);
}

IVL_EXPORT size_t ivl_transport_device_exec(struct ivl_transport_device *m, const void *cmd, size_t cmd_len, void *resp,
				size_t resp_max)
{
	struct ivl__ans a = {.buf = resp, .max = resp_max};
	const uint8_t *p = cmd;
	if (!m || !resp || resp_max < 8)
		return 0;
	if (!cmd || cmd_len < sizeof(struct ivl_transport_cmd)) {
		ivl__ans_err(&a, IVL_TRANSPORT_E_LENGTH);
		return a.len;
	}
	uint64_t id = ivl__le64(p);
	uint16_t cls = ivl__le16(p + 8), c = ivl__le16(p + 10);
	const uint8_t *out = p + sizeof(struct ivl_transport_cmd);
	size_t len = cmd_len - sizeof(struct ivl_transport_cmd);
	unsigned slot = 0;
	struct ivl__tdev *d = NULL;

	if (cls > IVL_TRANSPORT_CLASS_MSI)
		ivl__ans_err(&a, IVL_TRANSPORT_E_CLASS);
	else if (cls == IVL_TRANSPORT_CLASS_MGMT && (c < IVL_TRANSPORT_MGMT_CREATE || c > IVL_TRANSPORT_MGMT_QUERY))
		ivl__ans_err(&a, IVL_TRANSPORT_E_COMMAND);
	else if (cls == IVL_TRANSPORT_CLASS_MGMT && (c == IVL_TRANSPORT_MGMT_CREATE || c == IVL_TRANSPORT_MGMT_LIST) &&
		 id != 0)
		ivl__ans_err(&a, IVL_TRANSPORT_E_DEVICE_ID);
	else if (id == 0 && (cls == IVL_TRANSPORT_CLASS_FEATURES || cls == IVL_TRANSPORT_CLASS_STATUS)) {
		if (ivl__le32(p + 12))
			ivl__ans_err(&a, IVL_TRANSPORT_E_RESERVED);
		else
			ivl__tp_self_cmd(&m->self_features, &m->self_status, cls, c, out, len, &a);
	} else if (!(cls == IVL_TRANSPORT_CLASS_MGMT &&
		     (c == IVL_TRANSPORT_MGMT_CREATE || c == IVL_TRANSPORT_MGMT_LIST)) &&
		   id == 0)
		ivl__ans_err(&a, IVL_TRANSPORT_E_DEVICE_ID);
	else if (id != 0 && !(d = dev_find(m, id, &slot)))
		ivl__ans_err(&a, IVL_TRANSPORT_E_NO_DEVICE);
	else if (ivl__le32(p + 12))
		ivl__ans_err(&a, IVL_TRANSPORT_E_RESERVED);
	else if (cls == IVL_TRANSPORT_CLASS_MGMT) {
		if (c == IVL_TRANSPORT_MGMT_CREATE)
			cmd_create(m, out, len, &a);
		else if (len)
			ivl__ans_err(&a, IVL_TRANSPORT_E_LENGTH);
		else if (c == IVL_TRANSPORT_MGMT_LIST)
			cmd_list(m, &a);
		else if (c == IVL_TRANSPORT_MGMT_DESTROY) {
			ivl__info("transport: destroyed device %llu", (unsigned long long)id);
			dev_free(m, slot);
			ivl__ans_ok(&a, 0);
		} else if (!ivl__ans_room(&a, sizeof(struct ivl_transport_info)))
			ivl__ans_err(&a, IVL_TRANSPORT_E_IN_SPACE);
		else {
			fill_info(d, a.buf + 4);
			ivl__ans_ok(&a, sizeof(struct ivl_transport_info));
		}
	} else
		ivl__tp_device_cmd(d, m->caller, cls, c, out, len, &a);
	return a.len;
}

/* ---- object ------------------------------------------------------------------------ */

IVL_EXPORT int ivl_transport_device_new(struct ivl_transport_device **out, const struct ivl_transport_device_opts *opts)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!opts || !opts->area || opts->area_size < IVL_TRANSPORT_AREA_MIN)
		return -EINVAL;
	if (opts->default_console > IVL_TRANSPORT_CONSOLE_LOOP)
		return -EINVAL;
	struct ivl_transport_device *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->o = *opts;
	m->area = opts->area;
	m->ngran = (opts->area_size - IVL_TRANSPORT_WINDOWS_OFF) / IVL_TRANSPORT_GRANULE;
	m->gran_used = calloc(m->ngran, 1);
	m->next_id = 1;
	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!m->gran_used || m->epfd < 0) {
		int e = m->epfd < 0 ? -errno : -ENOMEM;
		ivl_transport_device_free(m);
		return e;
	}
	*out = m;
	return 0;
}

IVL_EXPORT void ivl_transport_device_free(struct ivl_transport_device *m)
{
	if (!m)
		return;
	for (unsigned i = 0; i < IVL_TRANSPORT_MAX_DEVICES; i++)
		dev_free(m, i);
	ivl__close(m->epfd);
	free(m->gran_used);
	free(m);
}

void ivl__mgmt_notify(const struct ivl_transport_device *m, uint8_t out[4])
{
	ivl__put16(out, m->o.host_peer);
	ivl__put16(out + 2, m->o.host_vector);
}

void **ivl__mgmt_net(struct ivl_transport_device *m)
{
	return &m->net;
}

void ivl__mgmt_set_caller(struct ivl_transport_device *m, uint16_t peer)
{
	m->caller = peer;
}

int ivl__mgmt_watch(struct ivl_transport_device *m, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};
	/* Not registered at all when quiet: epoll reports a hang-up even
	 * with no events asked for, and a level-triggered hang-up nobody
	 * reads would wake the loop forever. */
	if (!events)
		return epoll_ctl(m->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != ENOENT ? -errno
											  : 0;
	if (epoll_ctl(m->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	return epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

IVL_EXPORT int ivl_transport_device_get_fd(const struct ivl_transport_device *m)
{
	return m ? m->epfd : -EINVAL;
}

IVL_EXPORT int ivl_transport_device_timeout_ms(const struct ivl_transport_device *m)
{
	int best = -1;
	for (unsigned i = 0; m && i < IVL_TRANSPORT_MAX_DEVICES; i++) {
		struct ivl__tdev *d = m->dev[i];
		int t = d && d->type->timeout_ms ? d->type->timeout_ms(d) : -1;
		if (t >= 0 && (best < 0 || t < best))
			best = t;
	}
	return best;
}

IVL_EXPORT int ivl_transport_device_process(struct ivl_transport_device *m)
{
	if (!m)
		return -EINVAL;
	int total = 0;
	for (unsigned i = 0; i < IVL_TRANSPORT_MAX_DEVICES; i++) {
		struct ivl__tdev *d = m->dev[i];
		if (!d || !d->type->serve)
			continue;
		int r = d->type->serve(d);
		if (r > 0)
			total += r;
	}
	return total;
}

IVL_EXPORT void ivl_transport_device_peer_left(struct ivl_transport_device *m, uint16_t peer)
{
	for (unsigned i = 0; m && i < IVL_TRANSPORT_MAX_DEVICES; i++)
		if (m->dev[i] && m->dev[i]->status && m->dev[i]->driver_peer == peer)
			ivl__tdev_reset(m->dev[i]);
}

IVL_EXPORT unsigned ivl_transport_device_count(const struct ivl_transport_device *m)
{
	unsigned n = 0;
	for (unsigned i = 0; m && i < IVL_TRANSPORT_MAX_DEVICES; i++)
		n += m->dev[i] != NULL;
	return n;
}
