/* SPDX-License-Identifier: MIT */
/*
 * The driver side of the transport virtqueue (docs/transport.md §2-§4):
 * the queue lock in the control block, ring (re-)initialisation, commands
 * and their answers, and the set-up of a managed device's queues and MSI
 * vectors.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ivlink/link.h>

#include "core/internal.h"
#include "transport-internal.h"

#define IN_OFF 4096u /* answer half of the command buffer */

struct ivl_transport_driver {
	struct ivl_link *link;
	uint8_t *area;
	uint64_t area_size;
	struct ivl_transport_ctl *ctl;
	uint16_t me, vector, host_peer, host_vector;
	int timeout_ms;
	struct ivl_virtq *tq;
	uint32_t gen;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool peer_present(struct ivl_link *l, uint16_t peer)
{
	return ivl_link_peer_vectors(l, peer) > 0;
}

/* Wait up to @ms for link events; -ENOTCONN when the link is down. */
static int pump(struct ivl_link *l, int ms)
{
	struct ivl_link_event ev[16];
	int r = ivl_link_wait(l, ev, IVL_ARRAY_SIZE(ev), ms);
	for (int i = 0; i < r; i++)
		if (ev[i].type == IVL_LINK_DOWN)
			return -ENOTCONN;
	return r < 0 && r != -EINTR ? r : 0;
}

static bool host_ok(struct ivl_transport_driver *d)
{
	/* Pairs with the host's release store of the magic. */
	if (__atomic_load_n(&d->ctl->magic, __ATOMIC_ACQUIRE) != IVL_TRANSPORT_MAGIC ||
	    d->ctl->version != IVL_TRANSPORT_VERSION)
		return false;
	d->host_peer = d->ctl->host_peer;
	d->host_vector = d->ctl->host_vector;
	return peer_present(d->link, d->host_peer) &&
	       d->host_vector < ivl_link_peer_vectors(d->link, d->host_peer);
}

static int negotiate(struct ivl_transport_driver *d);

IVL_EXPORT int ivl_transport_driver_new(struct ivl_transport_driver **out, struct ivl_link *link,
			    const struct ivl_transport_driver_opts *opts)
{
	uint8_t *area;
	uint64_t size;
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!opts)
		return -EINVAL;
	int r = ivl__tp_area(link, opts->area_offset, opts->area_size, opts->vector, &area, &size);
	if (r < 0)
		return r == -ENOSPC ? -ENODEV : r;
	struct ivl_transport_driver *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->link = link;
	d->area = area;
	d->area_size = size;
	d->ctl = (struct ivl_transport_ctl *)d->area;
	d->me = (uint16_t)ivl_link_id(link);
	d->vector = opts->vector;
	d->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 5000;
	int64_t end = now_ms() + d->timeout_ms;
	while (!host_ok(d) && r == 0) {
		if (now_ms() >= end)
			r = -ENODEV;
		else
			r = pump(link, 20);
	}
	if (r == 0)
		r = negotiate(d);
	if (r < 0) {
		ivl_transport_driver_free(d);
		return r;
	}
	*out = d;
	return 0;
}

IVL_EXPORT void ivl_transport_driver_free(struct ivl_transport_driver *d)
{
	if (!d)
		return;
	ivl_virtq_free(d->tq);
	free(d);
}

IVL_EXPORT void *ivl_transport_driver_area(const struct ivl_transport_driver *d, uint64_t *size)
{
	if (size)
		*size = d ? d->area_size : 0;
	return d ? d->area : NULL;
}

/* The queue lock: owner = peer + 1, taken over from a peer that left. */
static int lock(struct ivl_transport_driver *d, int64_t end)
{
	uint32_t mine = (uint32_t)d->me + 1;
	for (;;) {
		uint32_t cur = 0;
		if (__atomic_compare_exchange_n(&d->ctl->owner, &cur, mine, false, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return 0;
		/* My own ID: a previous process of mine died holding it. */
		bool dead =
		    cur == mine || cur > 65536 || !peer_present(d->link, (uint16_t)(cur - 1));
		if (dead && __atomic_compare_exchange_n(&d->ctl->owner, &cur, mine, false,
							__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return 0;
		if (now_ms() >= end)
			return -EBUSY;
		int r = pump(d->link, 2);
		if (r < 0)
			return r;
	}
}

static void unlock(struct ivl_transport_driver *d)
{
	uint32_t mine = (uint32_t)d->me + 1;
	__atomic_compare_exchange_n(&d->ctl->owner, &mine, 0, false, __ATOMIC_RELEASE,
				    __ATOMIC_RELAXED);
}

/* Re-initialise the ring unless I was the last to use it. */
static int ensure_ring(struct ivl_transport_driver *d)
{
	uint32_t gen = __atomic_load_n(&d->ctl->generation, __ATOMIC_ACQUIRE);
	if (d->tq && !ivl_virtq_broken(d->tq) && gen == d->gen && gen != 0 &&
	    d->ctl->driver_peer == d->me && d->ctl->driver_vector == d->vector)
		return 0;
	ivl_virtq_free(d->tq);
	d->tq = NULL;
	d->ctl->driver_peer = d->me;
	d->ctl->driver_vector = d->vector;
	struct ivl_virtq_opts o = {.role = IVL_VIRTQ_DRIVER, .num = IVL_TRANSPORT_RING_NUM, .init = true};
	ivl_virtq_layout_default(IVL_TRANSPORT_RING_NUM, 0, 0, &o.layout);
	int r = ivl_virtq_new(&d->tq, d->area + IVL_TRANSPORT_RING_OFF, IVL_TRANSPORT_TQ_WINDOW, &o);
	if (r < 0)
		return r;
	/* Never 0 (no ring yet).  A host that reads the old value while the
	 * ring is being zeroed may break its ring; it re-attaches on the new
	 * generation. */
	d->gen = gen + 1;
	if (d->gen == 0)
		d->gen = 1;
	/* Publishes the zeroed ring and driver_peer/vector (the host's
	 * acquire load of generation pairs with it). */
	__atomic_store_n(&d->ctl->generation, d->gen, __ATOMIC_RELEASE);
	return 0;
}

static int wait_answer(struct ivl_transport_driver *d, int64_t end, uint32_t *len)
{
	for (;;) {
		void *tok;
		int r = ivl_virtq_get_used(d->tq, &tok, len);
		if (r != 0)
			return r < 0 ? r : 0;
		if (!host_ok(d))
			return -ENODEV;
		int64_t left = end - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		/* Doorbells are hints: look at the ring at least every 20 ms. */
		r = pump(d->link, left < 20 ? (int)left : 20);
		if (r < 0)
			return r;
	}
}

IVL_EXPORT int ivl_transport_driver_cmd(struct ivl_transport_driver *d, uint64_t device_id, uint16_t class_,
			    uint16_t command, const void *out, size_t out_len, void *in,
			    size_t in_max, uint32_t *reason)
{
	if (!d || (out_len && !out) || (in_max && !in))
		return -EINVAL;
	if (out_len > IN_OFF - sizeof(struct ivl_transport_cmd))
		return -EMSGSIZE;
	int64_t end = now_ms() + d->timeout_ms;
	int r = lock(d, end);
	if (r < 0)
		return r;
	r = ensure_ring(d);
	uint8_t *buf = d->area + IVL_TRANSPORT_CMDBUF_OFF;
	uint32_t len = 0;
	if (r == 0) {
		ivl__put64(buf, device_id);
		ivl__put16(buf + 8, class_);
		ivl__put16(buf + 10, command);
		ivl__put32(buf + 12, 0);
		if (out_len)
			memcpy(buf + sizeof(struct ivl_transport_cmd), out, out_len);
		struct iovec o = {buf, sizeof(struct ivl_transport_cmd) + out_len};
		struct iovec i = {buf + IN_OFF, IVL_TRANSPORT_CMDBUF_SIZE - IN_OFF};
		r = ivl_virtq_add(d->tq, &o, 1, &i, 1, d);
	}
	if (r >= 0)
		r = ivl_virtq_notify_link(d->tq, d->link, d->host_peer, d->host_vector);
	if (r >= 0)
		r = wait_answer(d, end, &len);
	if (r < 0) {
		/* The ring may hold a command in flight: start afresh next time. */
		ivl_virtq_free(d->tq);
		d->tq = NULL;
		unlock(d);
		return r;
	}
	/* Copy the answer out of shared memory before reading it. */
	uint8_t ans[IVL_TRANSPORT_CMDBUF_SIZE - IN_OFF];
	if (len > sizeof(ans))
		len = 0;
	memcpy(ans, buf + IN_OFF, len);
	unlock(d);
	if (len < 4)
		return -EPROTO;
	uint32_t ack = ivl__le32(ans);
	if (ack == IVL_TRANSPORT_ERR) {
		if (len < 8)
			return -EPROTO;
		if (reason)
			*reason = ivl__le32(ans + 4);
		return -EREMOTEIO;
	}
	if (ack != IVL_TRANSPORT_OK)
		return -EPROTO;
	size_t n = len - 4 < in_max ? len - 4 : in_max;
	if (n)
		memcpy(in, ans + 4, n);
	return (int)n;
}

/* ---- helpers --------------------------------------------------------------- */

static void parse_info(const uint8_t *p, struct ivl_transport_info *info)
{
	memset(info, 0, sizeof(*info));
	info->device_id = ivl__le64(p + offsetof(struct ivl_transport_info, device_id));
	info->virtio_id = ivl__le32(p + offsetof(struct ivl_transport_info, virtio_id));
	info->status = ivl__le32(p + offsetof(struct ivl_transport_info, status));
	info->window_offset = ivl__le64(p + offsetof(struct ivl_transport_info, window_offset));
	info->window_size = ivl__le64(p + offsetof(struct ivl_transport_info, window_size));
	info->num_queues = ivl__le16(p + offsetof(struct ivl_transport_info, num_queues));
	info->msi_vectors = ivl__le16(p + offsetof(struct ivl_transport_info, msi_vectors));
	info->flags = ivl__le32(p + offsetof(struct ivl_transport_info, flags));
	info->driver_peer = ivl__le16(p + offsetof(struct ivl_transport_info, driver_peer));
	memcpy(info->backend, p + offsetof(struct ivl_transport_info, backend), sizeof(info->backend));
	info->backend[sizeof(info->backend) - 1] = '\0';
}

static int info_cmd(struct ivl_transport_driver *d, uint64_t id, uint16_t c, const void *out, size_t out_len,
		    struct ivl_transport_info *info, uint32_t *reason)
{
	uint8_t b[sizeof(struct ivl_transport_info)];
	int r = ivl_transport_driver_cmd(d, id, IVL_TRANSPORT_CLASS_MGMT, c, out, out_len, b, sizeof(b), reason);
	if (r < 0)
		return r;
	if (r != (int)sizeof(b))
		return -EPROTO;
	if (info)
		parse_info(b, info);
	return 0;
}

IVL_EXPORT int ivl_transport_driver_create(struct ivl_transport_driver *d, const struct ivl_transport_create *c,
			       struct ivl_transport_info *info, uint32_t *reason)
{
	return ivl_transport_driver_create_arg(d, c, NULL, info, reason);
}

IVL_EXPORT int ivl_transport_driver_create_arg(struct ivl_transport_driver *d, const struct ivl_transport_create *c,
					       const char *arg, struct ivl_transport_info *info, uint32_t *reason)
{
	size_t alen = arg ? strlen(arg) + 1 : 0;
	if (!c || alen == 1 || alen > IVL_TRANSPORT_CREATE_ARG_MAX)
		return -EINVAL;
	uint8_t b[sizeof(*c) + IVL_TRANSPORT_CREATE_ARG_MAX];
	ivl__put32(b, c->virtio_id);
	ivl__put32(b + 4, c->flags);
	ivl__put64(b + 8, c->window_size);
	ivl__put32(b + 16, c->msi_vectors);
	for (int i = 0; i < 3; i++)
		ivl__put32(b + 20 + 4 * i, c->param[i]);
	if (alen)
		memcpy(b + sizeof(*c), arg, alen);
	return info_cmd(d, 0, IVL_TRANSPORT_MGMT_CREATE, b, sizeof(*c) + alen, info, reason);
}

IVL_EXPORT int ivl_transport_driver_query(struct ivl_transport_driver *d, uint64_t id, struct ivl_transport_info *info,
			      uint32_t *reason)
{
	return info_cmd(d, id, IVL_TRANSPORT_MGMT_QUERY, NULL, 0, info, reason);
}

IVL_EXPORT int ivl_transport_driver_destroy(struct ivl_transport_driver *d, uint64_t id, uint32_t *reason)
{
	int r =
	    ivl_transport_driver_cmd(d, id, IVL_TRANSPORT_CLASS_MGMT, IVL_TRANSPORT_MGMT_DESTROY, NULL, 0, NULL, 0, reason);
	return r < 0 ? r : 0;
}

IVL_EXPORT int ivl_transport_driver_list(struct ivl_transport_driver *d, struct ivl_transport_list_entry *e, size_t max,
			     uint32_t *reason)
{
	uint8_t b[IVL_TRANSPORT_CMDBUF_SIZE - IN_OFF];
	if (!e && max)
		return -EINVAL;
	int r =
	    ivl_transport_driver_cmd(d, 0, IVL_TRANSPORT_CLASS_MGMT, IVL_TRANSPORT_MGMT_LIST, NULL, 0, b, sizeof(b), reason);
	if (r < 0)
		return r;
	if (r < 8 || (r - 8) % 16)
		return -EPROTO;
	uint32_t count = ivl__le32(b);
	size_t have = (size_t)(r - 8) / 16;
	if (count > IVL_TRANSPORT_MAX_DEVICES || have > count)
		return -EPROTO;
	for (size_t i = 0; i < have && i < max; i++) {
		const uint8_t *p = b + 8 + 16 * i;
		e[i].device_id = ivl__le64(p);
		e[i].virtio_id = ivl__le32(p + 8);
		e[i].status = ivl__le32(p + 12);
	}
	return (int)count;
}

IVL_EXPORT int ivl_transport_driver_kick(struct ivl_transport_driver *d, struct ivl_virtq *q)
{
	if (!d || !q)
		return -EINVAL;
	return ivl_virtq_notify_link(q, d->link, d->host_peer, d->host_vector);
}

/* ---- a managed device's set-up ----------------------------------------------- */

static int cmd32(struct ivl_transport_driver *d, uint64_t id, uint16_t cls, uint16_t c, uint32_t v, bool has_v,
		 uint32_t *reason)
{
	uint8_t b[4];
	ivl__put32(b, v);
	int r = ivl_transport_driver_cmd(d, id, cls, c, has_v ? b : NULL, has_v ? 4 : 0, NULL, 0, reason);
	return r < 0 ? r : 0;
}

static int get32(struct ivl_transport_driver *d, uint64_t id, uint16_t cls, uint16_t c, const void *out,
		 size_t out_len, uint32_t *v, uint32_t *reason)
{
	uint8_t b[4];
	int r = ivl_transport_driver_cmd(d, id, cls, c, out, out_len, b, sizeof(b), reason);
	if (r < 0)
		return r;
	if (r != 4)
		return -EPROTO;
	*v = ivl__le32(b);
	return 0;
}

/*
 * The management device (device_id 0) MUST offer VIRTIO_F_TRANSPT_VQ (seed
 * 002); a host that does not (an ERR answer, as from hosts before it was
 * offered, or the bit missing) is refused.  Then the usual negotiation:
 * accept TRANSPT_VQ and VERSION_1, status up to DRIVER_OK.  Every driver of
 * the host shares device 0, so each step is skipped when done already (and
 * a SET_DRIVER that finds FEATURES_OK set by another driver is fine).
 */
static int negotiate(struct ivl_transport_driver *d)
{
	const uint32_t want = IVL__VS_ACKNOWLEDGE | IVL__VS_DRIVER | IVL__VS_FEATURES_OK |
			      IVL__VS_DRIVER_OK;
	uint8_t b[8];
	uint32_t st = 0, reason = 0;
	int r = ivl_transport_driver_cmd(d, 0, IVL_TRANSPORT_CLASS_FEATURES, IVL_TRANSPORT_FEAT_GET_DEVICE, NULL, 0, b,
			     sizeof(b), &reason);

	if (r == -EREMOTEIO || (r == 8 && (ivl__le64(b) & IVL_TRANSPORT_MGMT_FEATURES) !=
					      IVL_TRANSPORT_MGMT_FEATURES)) {
		ivl__warn("transport: the management device does not offer VIRTIO_F_TRANSPT_VQ");
		return -EOPNOTSUPP;
	}
	if (r < 0)
		return r;
	if (r != 8)
		return -EPROTO;
	r = get32(d, 0, IVL_TRANSPORT_CLASS_STATUS, IVL_TRANSPORT_STATUS_GET, NULL, 0, &st, NULL);
	if (r < 0 || (st & want) == want)
		return r;
	if (!(st & IVL__VS_FEATURES_OK)) {
		ivl__put64(b, IVL_TRANSPORT_MGMT_FEATURES);
		r = ivl_transport_driver_cmd(d, 0, IVL_TRANSPORT_CLASS_FEATURES, IVL_TRANSPORT_FEAT_SET_DRIVER, b, sizeof(b),
				 NULL, 0, NULL);
		if (r < 0 && r != -EREMOTEIO)
			return r;
	}
	r = cmd32(d, 0, IVL_TRANSPORT_CLASS_STATUS, IVL_TRANSPORT_STATUS_SET, want, true, &reason);
	if (r == -EREMOTEIO) {
		ivl__warn("transport: the management device refused DRIVER_OK (%s)",
			  ivl_transport_reason_name(reason));
		return -EPROTO;
	}
	return r;
}

static int setup_queue(struct ivl_transport_driver *d, const struct ivl_transport_info *info, unsigned q,
		       unsigned qnum, uint64_t *cur, struct ivl_virtq **vq, uint32_t *reason)
{
	uint8_t b[32] = {0};
	uint32_t max;
	ivl__put16(b, (uint16_t)q);
	int r =
	    get32(d, info->device_id, IVL_TRANSPORT_CLASS_QUEUE, IVL_TRANSPORT_QUEUE_GET_MAX, b, 4, &max, reason);
	if (r < 0)
		return r;
	unsigned num = qnum < max ? qnum : max;
	while (num & (num - 1))
		num &= num - 1;
	if (!num)
		return -EPROTO;
	struct ivl_virtq_opts o = {
	    .role = IVL_VIRTQ_DRIVER, .num = num, .init = true, .features = IVL_VIRTQ_F_EVENT_IDX};
	uint64_t sz = ivl_virtq_layout_default(num, 0, *cur, &o.layout);
	if (!sz || sz > info->window_size - *cur)
		return -ENOSPC;
	ivl__put32(b + 4, num);
	r = ivl_transport_driver_cmd(d, info->device_id, IVL_TRANSPORT_CLASS_QUEUE, IVL_TRANSPORT_QUEUE_SET_SIZE, b, 8, NULL,
			 0, reason);
	if (r < 0)
		return r;
	ivl__put32(b + 4, 0);
	ivl__put64(b + 8, o.layout.desc);
	ivl__put64(b + 16, o.layout.avail);
	ivl__put64(b + 24, o.layout.used);
	r = ivl_transport_driver_cmd(d, info->device_id, IVL_TRANSPORT_CLASS_QUEUE, IVL_TRANSPORT_QUEUE_SET_ADDR, b, 32, NULL,
			 0, reason);
	/* The driver initialises the ring before the device attaches. */
	if (r >= 0)
		r = ivl_virtq_new(vq, d->area + info->window_offset, info->window_size, &o);
	if (r < 0)
		return r;
	ivl__put32(b + 4, 1);
	r = ivl_transport_driver_cmd(d, info->device_id, IVL_TRANSPORT_CLASS_QUEUE, IVL_TRANSPORT_QUEUE_ENABLE, b, 8, NULL, 0,
			 reason);
	if (r < 0) {
		ivl_virtq_free(*vq);
		*vq = NULL;
		return r;
	}
	*cur += (sz + 63) & ~63ull;
	return 0;
}

static int msi_vector(struct ivl_transport_driver *d, uint64_t id, uint32_t vec, uint32_t *reason)
{
	uint8_t b[16];
	ivl__put32(b, vec);
	ivl__put32(b + 4, d->vector);
	ivl__put64(b + 8, d->me);
	int r = ivl_transport_driver_cmd(d, id, IVL_TRANSPORT_CLASS_MSI, IVL_TRANSPORT_MSI_CONFIGURE, b, 16, NULL, 0, reason);
	return r < 0 ? r : 0;
}

IVL_EXPORT int ivl_transport_driver_setup(struct ivl_transport_driver *d, uint64_t id, unsigned qnum,
			      struct ivl_virtq **queues, unsigned max_queues, unsigned *nqueues,
			      void **buf, uint64_t *buf_size, uint32_t *reason)
{
	struct ivl_transport_info info;
	uint32_t st, nvec = 0;
	uint64_t feat = 0, cur = 0;
	unsigned made = 0;
	if (!d || !queues || !nqueues || qnum == 0)
		return -EINVAL;
	int r = ivl_transport_driver_query(d, id, &info, reason);
	if (r == 0 && (info.num_queues > max_queues || info.window_offset > d->area_size ||
		       info.window_size > d->area_size - info.window_offset))
		r = info.num_queues > max_queues ? -ENOSPC : -EPROTO;
	const uint16_t S = IVL_TRANSPORT_CLASS_STATUS;
	if (r == 0)
		r = cmd32(d, id, S, IVL_TRANSPORT_STATUS_RESET, 0, false, reason);
	if (r == 0)
		r = cmd32(d, id, S, IVL_TRANSPORT_STATUS_SET, IVL__VS_ACKNOWLEDGE | IVL__VS_DRIVER, true,
			  reason);
	if (r == 0) {
		uint8_t b[8];
		r = ivl_transport_driver_cmd(d, id, IVL_TRANSPORT_CLASS_FEATURES, IVL_TRANSPORT_FEAT_GET_DEVICE, NULL, 0, b,
				 8, reason);
		if (r >= 0 && r != 8)
			r = -EPROTO;
		if (r >= 0) {
			feat = ivl__le64(b) & (IVL__VIRTIO_F_VERSION_1 | IVL_VIRTQ_F_EVENT_IDX);
			ivl__put64(b, feat);
			r = ivl_transport_driver_cmd(d, id, IVL_TRANSPORT_CLASS_FEATURES, IVL_TRANSPORT_FEAT_SET_DRIVER, b, 8,
					 NULL, 0, reason);
		}
		if (r >= 0 && feat != (IVL__VIRTIO_F_VERSION_1 | IVL_VIRTQ_F_EVENT_IDX))
			r = -ENOTSUP;
		r = r < 0 ? r : 0;
	}
	if (r == 0)
		r = cmd32(d, id, S, IVL_TRANSPORT_STATUS_SET,
			  IVL__VS_ACKNOWLEDGE | IVL__VS_DRIVER | IVL__VS_FEATURES_OK, true, reason);
	for (unsigned q = 0; r == 0 && q < info.num_queues; q++) {
		r = setup_queue(d, &info, q, qnum, &cur, &queues[q], reason);
		made += r == 0;
	}
	/* Non-sharing map: vector 0 = configuration, vector q + 1 = queue q. */
	if (r == 0)
		r = get32(d, id, IVL_TRANSPORT_CLASS_MSI, IVL_TRANSPORT_MSI_GET_NUM, NULL, 0, &nvec, reason);
	for (uint32_t v = 0; r == 0 && v < nvec && v <= info.num_queues; v++)
		r = msi_vector(d, id, v, reason);
	if (r == 0)
		r = cmd32(d, id, IVL_TRANSPORT_CLASS_MSI, IVL_TRANSPORT_MSI_ENABLE, 0, false, reason);
	if (r == 0)
		r = cmd32(d, id, S, IVL_TRANSPORT_STATUS_SET,
			  IVL__VS_ACKNOWLEDGE | IVL__VS_DRIVER | IVL__VS_FEATURES_OK |
			      IVL__VS_DRIVER_OK,
			  true, reason);
	if (r == 0)
		r = get32(d, id, S, IVL_TRANSPORT_STATUS_GET, NULL, 0, &st, reason);
	if (r == 0 && !(st & IVL__VS_DRIVER_OK))
		r = -EPROTO;
	if (r < 0) {
		for (unsigned q = 0; q < made; q++) {
			ivl_virtq_free(queues[q]);
			queues[q] = NULL;
		}
		return r;
	}
	*nqueues = info.num_queues;
	if (buf)
		*buf = d->area + info.window_offset + cur;
	if (buf_size)
		*buf_size = info.window_size - cur;
	return 0;
}
