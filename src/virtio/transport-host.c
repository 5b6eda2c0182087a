/* SPDX-License-Identifier: MIT */
/*
 * The device host: serves the management device on a link
 * (docs/transport.md §2).  The control block at the start of the management
 * area says who serves; the transport virtqueue follows at a fixed offset.
 * A driver re-initialises the ring, bumps `generation` (release) and kicks;
 * the host then re-attaches its device-role ring (acquire).  Every kick
 * doorbell serves the transport queue and every live device queue:
 * doorbells are hints, the rings are the truth.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include <ivlink/link.h>

#include "core/internal.h"
#include "transport-internal.h"

struct ivl_transport_host {
	struct ivl_link *link;
	struct ivl_transport_device *m;
	struct ivl_transport_ctl *ctl;
	uint8_t *area;
	uint64_t area_size;
	struct ivl_virtq *tq;
	uint32_t gen;
	uint16_t drv_peer, drv_vector;
	int epfd;
	uint8_t cmd[IVL_TRANSPORT_CMDBUF_SIZE];
	uint8_t resp[IVL_TRANSPORT_CMDBUF_SIZE];
};

int ivl__tp_area(struct ivl_link *link, uint64_t offset, uint64_t size, unsigned vector,
		 uint8_t **area, uint64_t *area_size)
{
	uint64_t app_size;
	uint8_t *app;
	if (!link || vector >= ivl_link_vectors(link) || offset % 8)
		return -EINVAL;
	app = ivl_link_app_area(link, &app_size);
	if (!app || offset > app_size)
		return -ENOSPC;
	if (!size)
		size = app_size - offset;
	if (size > app_size - offset || size < IVL_TRANSPORT_AREA_MIN)
		return -ENOSPC;
	*area = app + offset;
	*area_size = size;
	return 0;
}

static void attach_ring(struct ivl_transport_host *h, uint32_t gen)
{
	struct ivl_virtq_opts o = {.role = IVL_VIRTQ_DEVICE, .num = IVL_TRANSPORT_RING_NUM};
	ivl_virtq_free(h->tq);
	h->tq = NULL;
	h->gen = gen;
	h->drv_peer = __atomic_load_n(&h->ctl->driver_peer, __ATOMIC_RELAXED);
	h->drv_vector = __atomic_load_n(&h->ctl->driver_vector, __ATOMIC_RELAXED);
	ivl_virtq_layout_default(IVL_TRANSPORT_RING_NUM, 0, 0, &o.layout);
	if (ivl_virtq_new(&h->tq, h->area + IVL_TRANSPORT_RING_OFF, IVL_TRANSPORT_TQ_WINDOW, &o) < 0)
		h->tq = NULL;
}

/* Answer every command on the transport queue; returns how many. */
static int serve_transport(struct ivl_transport_host *h)
{
	/* Pairs with the driver's release store after it initialised the
	 * ring. */
	uint32_t gen = __atomic_load_n(&h->ctl->generation, __ATOMIC_ACQUIRE);
	if (gen == 0)
		return 0; /* a driver is re-initialising */
	if (gen != h->gen || !h->tq)
		attach_ring(h, gen);
	if (!h->tq || ivl_virtq_broken(h->tq))
		return 0; /* wait for a new generation */
	struct iovec iov[16];
	struct ivl_virtq_elem e = {.iov = iov, .iov_max = 16};
	int n = 0, r;
	while ((r = ivl_virtq_pop(h->tq, &e)) == 1) {
		size_t got = ivl__elem_read(&e, h->cmd, sizeof(h->cmd));
		size_t rmax = e.in_len < sizeof(h->resp) ? (size_t)e.in_len : sizeof(h->resp);
		size_t len = 0;
		ivl__mgmt_set_caller(h->m, h->drv_peer);
		if (e.out_len > sizeof(h->cmd) && rmax >= 8) {
			ivl__put32(h->resp, IVL_TRANSPORT_ERR);
			ivl__put32(h->resp + 4, IVL_TRANSPORT_E_LENGTH);
			len = 8;
		} else
			len = ivl_transport_device_exec(h->m, h->cmd, got, h->resp, rmax);
		len = ivl__elem_write(&e, h->resp, len);
		if (ivl_virtq_push(h->tq, e.head, (uint32_t)len) < 0)
			break;
		n++;
	}
	if (r < 0)
		ivl__warn("transport: transport queue of peer %u broken (%d)", h->drv_peer, r);
	if (ivl_virtq_flush(h->tq) == 0)
		(void)ivl_virtq_notify_link(h->tq, h->link, h->drv_peer, h->drv_vector);
	return n;
}

IVL_EXPORT int ivl_transport_host_process(struct ivl_transport_host *h)
{
	struct ivl_link_event ev[32];
	int r, n = 0;
	if (!h)
		return -EINVAL;
	while ((r = ivl_link_process(h->link, ev, IVL_ARRAY_SIZE(ev))) > 0) {
		for (int i = 0; i < r; i++) {
			if (ev[i].type == IVL_LINK_LEAVE)
				ivl_transport_device_peer_left(h->m, ev[i].peer);
			else if (ev[i].type == IVL_LINK_DOWN)
				return -ENOTCONN;
		}
	}
	if (r < 0)
		return r;
	n += serve_transport(h);
	r = ivl_transport_device_process(h->m);
	return r < 0 ? r : n + r;
}

static int watch(int epfd, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

IVL_EXPORT int ivl_transport_host_new(struct ivl_transport_host **out, struct ivl_link *link,
				 const struct ivl_transport_host_opts *opts)
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
		return r;
	struct ivl_transport_host *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->link = link;
	h->area = area;
	h->area_size = size;
	h->ctl = (struct ivl_transport_ctl *)(h->area + IVL_TRANSPORT_CTL_OFF);
	h->epfd = -1;
	struct ivl_transport_device_opts mo = opts->dev;
	mo.area = h->area;
	mo.area_size = size;
	mo.msi_deliver = ivl_msi_link_deliver;
	mo.msi_opaque = link;
	mo.host_peer = (uint16_t)ivl_link_id(link);
	mo.host_vector = opts->vector;
	r = ivl_transport_device_new(&h->m, &mo);
	if (r == 0) {
		h->epfd = epoll_create1(EPOLL_CLOEXEC);
		r = h->epfd < 0 ? -errno : 0;
	}
	if (r == 0)
		r = watch(h->epfd, ivl_link_get_fd(link));
	if (r == 0)
		r = watch(h->epfd, ivl_transport_device_get_fd(h->m));
	if (r < 0) {
		ivl_transport_host_free(h);
		return r;
	}
	/* Publish: everything before the magic (release; drivers acquire it). */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	memset(h->ctl, 0, sizeof(*h->ctl));
	h->ctl->version = IVL_TRANSPORT_VERSION;
	h->ctl->host_peer = mo.host_peer;
	h->ctl->host_vector = opts->vector;
	h->ctl->host_epoch = (uint32_t)(ts.tv_nsec ^ ts.tv_sec);
	h->ctl->area_size = size;
	__atomic_store_n(&h->ctl->magic, IVL_TRANSPORT_MAGIC, __ATOMIC_RELEASE);
	*out = h;
	return 0;
}

IVL_EXPORT void ivl_transport_host_free(struct ivl_transport_host *h)
{
	if (!h)
		return;
	if (h->m)
		__atomic_store_n(&h->ctl->magic, 0, __ATOMIC_RELEASE);
	ivl_virtq_free(h->tq);
	ivl_transport_device_free(h->m);
	ivl__close(h->epfd);
	free(h);
}

IVL_EXPORT int ivl_transport_host_get_fd(const struct ivl_transport_host *h)
{
	return h ? h->epfd : -EINVAL;
}

IVL_EXPORT int ivl_transport_host_timeout_ms(const struct ivl_transport_host *h)
{
	return h ? ivl_transport_device_timeout_ms(h->m) : -1;
}

IVL_EXPORT struct ivl_transport_device *ivl_transport_host_device(struct ivl_transport_host *h)
{
	return h ? h->m : NULL;
}
