/* SPDX-License-Identifier: MIT */
/*
 * The peer API (ARCHITECTURE.md "link"): argument checks, the parts every
 * backend shares (own-vector draining, the event queue, waiting, broadcast,
 * the header's peer names) and dispatch to the backend's ops.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include <ivlink/ivshmem.h>
#include <ivlink/notify.h>

#include "core/internal.h"
#include "link/link-internal.h"

/* ---- shared with the backends ------------------------------------------ */

int ivl__link_init(struct ivl_link *l, const struct ivl__link_ops *ops)
{
	int ret;

	l->ops = ops;
	l->id = -1;
	l->epfd = -1;
	for (unsigned v = 0; v < IVL_MAX_VECTORS; v++)
		l->own_fds[v] = -1;
	atomic_init(&l->dead, false);
	ret = ivl__evq_init(&l->q);
	if (ret < 0)
		return ret;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		ret = -errno;
		ivl__evq_fini(&l->q);
		return ret;
	}
	ret = ivl__link_watch(l, l->q.efd, IVL__TAG_QUEUE);
	if (ret < 0) {
		l->epfd = ivl__close(l->epfd);
		ivl__evq_fini(&l->q);
	}
	return ret;
}

void ivl__link_fini(struct ivl_link *l)
{
	l->epfd = ivl__close(l->epfd);
	ivl__evq_fini(&l->q);
}

int ivl__link_watch(struct ivl_link *l, int fd, uint32_t tag)
{
	struct epoll_event e = {.events = EPOLLIN, .data.u64 = tag};

	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

void ivl__link_unwatch(struct ivl_link *l, int fd)
{
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
}

int ivl__link_add_own(struct ivl_link *l, unsigned v, int fd)
{
	int ret;

	if (v >= IVL_MAX_VECTORS || l->own_fds[v] >= 0)
		return -EINVAL;
	ret = ivl__link_watch(l, fd, v);
	if (ret < 0)
		return ret;
	l->own_fds[v] = fd;
	return 0;
}

void ivl__link_set_down(struct ivl_link *l)
{
	if (atomic_exchange(&l->dead, true))
		return;
	ivl__evq_push(&l->q, IVL_LINK_DOWN, 0, 0, 0);
}

/* ---- the peer API ------------------------------------------------------ */

IVL_EXPORT int ivl_link_id(const struct ivl_link *l)
{
	return l ? l->id : -EINVAL;
}

IVL_EXPORT unsigned ivl_link_vectors(const struct ivl_link *l)
{
	return l ? l->vectors : 0;
}

IVL_EXPORT void *ivl_link_region(const struct ivl_link *l, uint64_t *size)
{
	if (size)
		*size = l ? l->size : 0;
	return l ? l->base : NULL;
}

IVL_EXPORT void *ivl_link_app_area(const struct ivl_link *l, uint64_t *size)
{
	if (!l) {
		if (size)
			*size = 0;
		return NULL;
	}
	/* header_size < size was checked by ivl_shm_validate() on our copy. */
	if (l->has_header) {
		if (size)
			*size = l->size - l->hdr.header_size;
		return (char *)l->base + l->hdr.header_size;
	}
	if (size)
		*size = l->size;
	return l->base;
}

IVL_EXPORT const struct ivl_shm_header *ivl_link_header(const struct ivl_link *l)
{
	/* Our validated copy, not the live header: its numbers cannot change
	 * under the caller (peers may scribble on shared memory). */
	return l && l->has_header ? &l->hdr : NULL;
}

IVL_EXPORT int ivl_link_peers(const struct ivl_link *l, uint16_t *ids, size_t max)
{
	if (!l || (!ids && max))
		return -EINVAL;
	return l->ops->peers(l, ids, max);
}

IVL_EXPORT unsigned ivl_link_peer_vectors(const struct ivl_link *l, uint16_t peer)
{
	return l ? l->ops->peer_vectors(l, peer) : 0;
}

IVL_EXPORT const char *ivl_link_peer_name(struct ivl_link *l, uint16_t peer)
{
	char raw[IVL_NAME_LEN];
	struct ivl_shm_peer *e;

	if (!l)
		return "";
	l->name_buf[0] = '\0';
	if (!l->has_header || ((int)peer != l->id && !l->ops->peer_vectors(l, peer)))
		return l->name_buf;
	/* The entry is in the validated table; its bytes are anybody's, and
	 * may change under us: copy once, then sanitize the copy. */
	e = ivl_shm_peer(l->base, &l->hdr, peer);
	if (!e)
		return l->name_buf;
	memcpy(raw, e->name, sizeof(raw));
	ivl__sanitize_name(l->name_buf, raw, sizeof(raw));
	return l->name_buf;
}

IVL_EXPORT int ivl_link_ring(struct ivl_link *l, uint16_t peer, uint16_t vector)
{
	if (!l)
		return -EINVAL;
	if (atomic_load_explicit(&l->dead, memory_order_relaxed))
		return -ENOTCONN;
	if (vector >= IVL_MAX_VECTORS)
		return -ERANGE;
	return l->ops->ring(l, peer, vector);
}

IVL_EXPORT int ivl_link_broadcast(struct ivl_link *l, uint16_t vector)
{
	uint16_t small[256], *ids = small;
	int n, rung = 0, ret = 0;

	if (!l)
		return -EINVAL;
	if (atomic_load_explicit(&l->dead, memory_order_relaxed))
		return -ENOTCONN;
	if (vector >= IVL_MAX_VECTORS)
		return -ERANGE;
	n = l->ops->peers(l, small, IVL_ARRAY_SIZE(small));
	if (n > (int)IVL_ARRAY_SIZE(small)) {
		/* Peers may come and go meanwhile: ring those we got. */
		ids = malloc((size_t)n * sizeof(*ids));
		if (!ids)
			return -ENOMEM;
		int m = l->ops->peers(l, ids, (size_t)n);
		if (m < n)
			n = m;
	}
	for (int i = 0; i < n; i++) {
		int r = l->ops->ring(l, ids[i], vector);
		if (r == 0)
			rung++;
		else if (r != -ENOENT && !ret)
			ret = r; /* a peer that left meanwhile is no failure */
	}
	if (ids != small)
		free(ids);
	/* Partial success counts; an error only when nobody was rung. */
	return rung || !ret ? rung : ret;
}

IVL_EXPORT int ivl_link_get_fd(const struct ivl_link *l)
{
	return l ? l->epfd : -EINVAL;
}

/* Drain my own vectors that epoll reports ready, let the backend read its
 * input, and queue what they produce. */
static void collect(struct ivl_link *l)
{
	struct epoll_event es[IVL_MAX_VECTORS + 4];
	int n = epoll_wait(l->epfd, es, IVL_ARRAY_SIZE(es), 0);

	for (int i = 0; i < n; i++) {
		uint64_t tag = es[i].data.u64, count;
		int r;

		if (tag == IVL__TAG_INPUT) {
			if (l->ops->input)
				l->ops->input(l);
			continue;
		}
		if (tag >= IVL_MAX_VECTORS || l->own_fds[tag] < 0)
			continue;
		r = ivl_eventfd_drain(l->own_fds[tag], &count);
		if (r > 0)
			ivl__evq_push(&l->q, IVL_LINK_DOORBELL, (uint16_t)(l->id < 0 ? 0 : l->id),
				      (uint16_t)tag,
				      count > UINT32_MAX ? UINT32_MAX : (uint32_t)count);
	}
}

IVL_EXPORT int ivl_link_process(struct ivl_link *l, struct ivl_link_event *ev, size_t max)
{
	size_t n;

	if (!l || (!ev && max))
		return -EINVAL;
	if (l->down)
		return -ENOTCONN;
	if (!max)
		return 0;
	/* Fetch more only when the queue cannot fill @ev by itself: keeps the
	 * queue bounded however slowly the caller takes events. */
	if (ivl__evq_len(&l->q) < max)
		collect(l);
	n = ivl__evq_pop(&l->q, ev, max);
	if (n && ev[n - 1].type == IVL_LINK_DOWN)
		l->down = true;
	return (int)n;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

IVL_EXPORT int ivl_link_wait(struct ivl_link *l, struct ivl_link_event *ev, size_t max,
			     int timeout_ms)
{
	int64_t end = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;

	if (!l || !ev || !max || timeout_ms < -1)
		return -EINVAL;
	for (;;) {
		struct pollfd p = {.fd = l->epfd, .events = POLLIN};
		int left = -1, r;

		r = ivl_link_process(l, ev, max);
		if (r != 0)
			return r;
		if (timeout_ms >= 0) {
			int64_t d = end - now_ms();
			if (d <= 0)
				return 0;
			left = d > INT32_MAX ? INT32_MAX : (int)d;
		}
		r = poll(&p, 1, left);
		if (r < 0)
			return -errno;
		if (r == 0 && timeout_ms >= 0 && end - now_ms() <= 0)
			return 0;
	}
}

IVL_EXPORT void ivl_link_free(struct ivl_link *l)
{
	if (l)
		l->ops->destroy(l);
}
