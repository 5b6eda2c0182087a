/* SPDX-License-Identifier: MIT */
/*
 * The guest backend's link (guest-internal.h): IVPosition is my ID, a
 * Doorbell register write rings, MSI-X eventfds (VFIO) are my vectors, and
 * the peer set is whatever the ivlink header's peer table says, rescanned
 * every SCAN_MS because nothing else tells a guest that a peer came or went.
 *
 * The table lives in memory every peer (and every other guest) can write,
 * so it only ever decides what we report and whom ring() accepts, never a
 * memory access: bounds come from our validated copy of the header.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>

#include "core/internal.h"
#include "link/guest-internal.h"
#include "link/link-internal.h"

#define DEFAULT_TIMEOUT_MS 5000
#define SCAN_MS 20
#define IVPOSITION_INVALID 0xffffffffu

struct guest_link {
	struct ivl_link l;
	struct ivl__guest_dev dev;
	struct ivl__guest_scan scan;
	int tfd; /* rescan timer, IVL__TAG_INPUT */
};

static struct guest_link *to_guest(const struct ivl_link *l)
{
	return (struct guest_link *)(uintptr_t)l;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* ---- the peer-table scanner ------------------------------------------- */

int ivl__guest_scan_init(struct ivl__guest_scan *s, const struct ivl_shm_header *valid, int self)
{
	memset(s, 0, sizeof(*s));
	s->self = self;
	if (!valid)
		return 0;
	s->n = valid->max_peers;
	s->vectors = valid->vectors > IVL_MAX_VECTORS ? IVL_MAX_VECTORS : valid->vectors;
	if (!s->n)
		return 0;
	s->snap = calloc(s->n, sizeof(*s->snap));
	if (!s->snap) {
		s->n = 0;
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < s->n; i++)
		atomic_init(&s->snap[i], 0);
	return 0;
}

void ivl__guest_scan_fini(struct ivl__guest_scan *s)
{
	free(s->snap);
	s->snap = NULL;
	s->n = 0;
}

static uint64_t entry_word(struct ivl_shm_peer *e, unsigned hdr_vectors)
{
	uint32_t st, gen, v;

	/* Pairs with the server's release store of state after it filled in
	 * the entry: generation and vectors are those of this join.  A peer
	 * scribbling on the entry can still tear them; that only changes what
	 * we report, never what we touch. */
	st = __atomic_load_n(&e->state, __ATOMIC_ACQUIRE);
	if (st != IVL_PEER_JOINED && st != IVL_PEER_READY)
		return 0;
	gen = __atomic_load_n(&e->generation, __ATOMIC_RELAXED);
	v = *(volatile uint32_t *)&e->vectors;
	if (v > hdr_vectors)
		v = hdr_vectors;
	return IVL__SCAN_PRESENT | (uint64_t)v << 32 | gen;
}

int ivl__guest_scan_run(struct ivl__guest_scan *s, void *base, const struct ivl_shm_header *valid,
			void (*emit)(void *ctx, enum ivl_link_event_type t, uint16_t id), void *ctx)
{
	int events = 0;

	if (!s->snap || !base || !valid)
		return 0;
	for (uint32_t id = 0; id < s->n && id <= IVL_MAX_PEER_ID; id++) {
		struct ivl_shm_peer *e;
		uint64_t old, now;
		bool was, is, regen;

		if ((int)id == s->self)
			continue;
		e = ivl_shm_peer(base, valid, id);
		if (!e)
			break;
		now = entry_word(e, s->vectors);
		old = atomic_load_explicit(&s->snap[id], memory_order_relaxed);
		if (old == now)
			continue;
		/* ring() on other threads reads single words; no ordering with
		 * anything else is needed. */
		atomic_store_explicit(&s->snap[id], now, memory_order_relaxed);
		was = old & IVL__SCAN_PRESENT;
		is = now & IVL__SCAN_PRESENT;
		regen = was && is && (uint32_t)old != (uint32_t)now;
		if (was && (!is || regen)) {
			emit(ctx, IVL_LINK_LEAVE, (uint16_t)id);
			events++;
		}
		if (is && (!was || regen)) {
			emit(ctx, IVL_LINK_JOIN, (uint16_t)id);
			events++;
		}
	}
	return events;
}

unsigned ivl__guest_scan_vectors(const struct ivl__guest_scan *s, uint32_t id)
{
	uint64_t w;

	if (!s->snap || id >= s->n || (int)id == s->self)
		return 0;
	w = atomic_load_explicit(&s->snap[id], memory_order_relaxed);
	return w & IVL__SCAN_PRESENT ? IVL__SCAN_VECS(w) : 0;
}

int ivl__guest_scan_list(const struct ivl__guest_scan *s, uint16_t *ids, size_t max)
{
	int n = 0;

	for (uint32_t id = 0; id < s->n && id <= IVL_MAX_PEER_ID; id++) {
		if ((int)id == s->self)
			continue;
		if (!(atomic_load_explicit(&s->snap[id], memory_order_relaxed) & IVL__SCAN_PRESENT))
			continue;
		if ((size_t)n < max)
			ids[n] = (uint16_t)id;
		n++;
	}
	return n;
}

/* ---- the backend -------------------------------------------------------- */

static void push_event(void *ctx, enum ivl_link_event_type t, uint16_t id)
{
	struct ivl_link *l = ctx;

	ivl__evq_push(&l->q, t, id, 0, 0);
}

static int guest_ring(struct ivl_link *l, uint16_t peer, uint16_t vector)
{
	struct guest_link *g = to_guest(l);
	unsigned n;

	if (!g->dev.dev_vectors)
		return -ENOTSUP; /* ivshmem-plain: no Doorbell register */
	if (!l->has_header) {
		n = g->dev.dev_vectors; /* the device drops what nobody takes */
	} else if ((int)peer == l->id) {
		n = l->vectors;
	} else {
		if (peer >= g->scan.n ||
		    !(atomic_load_explicit(&g->scan.snap[peer], memory_order_relaxed) &
		      IVL__SCAN_PRESENT))
			return -ENOENT;
		n = ivl__guest_scan_vectors(&g->scan, peer);
	}
	if (vector >= n)
		return -ERANGE;
	/* One 32-bit store: the device takes destination and vector at once. */
	g->dev.regs->write32(g->dev.ctx, IVL_IVSHMEM_DOORBELL, IVL_IVSHMEM_DOORBELL_VALUE(peer, vector));
	return 0;
}

static int guest_peers(const struct ivl_link *l, uint16_t *ids, size_t max)
{
	return l->has_header ? ivl__guest_scan_list(&to_guest(l)->scan, ids, max) : 0;
}

static unsigned guest_peer_vectors(const struct ivl_link *l, uint16_t peer)
{
	const struct guest_link *g = to_guest(l);

	if (!l->has_header)
		return g->dev.dev_vectors; /* documented: no peer set, any ID */
	if ((int)peer == l->id)
		return l->vectors;
	return ivl__guest_scan_vectors(&g->scan, peer);
}

/* The device was removed (the kernel driver hung its fd up). */
static bool device_gone(struct guest_link *g)
{
	struct pollfd p = {.fd = g->dev.hup_fd};

	return g->dev.watch_hup && poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR));
}

static void guest_input(struct ivl_link *l)
{
	struct guest_link *g = to_guest(l);

	if (device_gone(g)) {
		ivl__warn("link: %s: the device was removed", g->dev.desc);
		ivl__link_unwatch(l, g->dev.hup_fd);
		g->dev.watch_hup = false;
		ivl__link_set_down(l);
		return;
	}
	if (g->tfd < 0)
		return;
	ivl__link_timer_drain(g->tfd);
	ivl__guest_scan_run(&g->scan, l->base, &l->hdr, push_event, l);
}

/* Only POLLHUP/POLLERR (always reported by epoll): the device fd is
 * readable on every doorbell, which the eventfds already carry. */
static int watch_hup(struct guest_link *g)
{
	struct epoll_event ev = {.events = 0, .data.u32 = IVL__TAG_INPUT};

	if (!g->dev.watch_hup)
		return 0;
	return epoll_ctl(g->l.epfd, EPOLL_CTL_ADD, g->dev.hup_fd, &ev) < 0 ? -errno : 0;
}

static void guest_destroy(struct ivl_link *l)
{
	struct guest_link *g = to_guest(l);

	g->tfd = ivl__close(g->tfd);
	ivl__guest_scan_fini(&g->scan);
	/* The epoll set goes first: the device's release closes the eventfds
	 * it still watches. */
	ivl__link_fini(l);
	if (g->dev.release)
		g->dev.release(g->dev.ctx);
	free(g);
}

static const struct ivl__link_ops guest_ops = {
    .name = "guest",
    .ring = guest_ring,
    .peers = guest_peers,
    .peer_vectors = guest_peer_vectors,
    .input = guest_input,
    .destroy = guest_destroy,
};

static int wait_position(struct guest_link *g, int64_t deadline)
{
	for (;;) {
		uint32_t pos = g->dev.regs->read32(g->dev.ctx, IVL_IVSHMEM_IVPOSITION);

		if (pos != IVPOSITION_INVALID) {
			if (pos > IVL_MAX_PEER_ID) {
				ivl__err("link: %s: IVPosition %u is not a peer ID", g->dev.desc,
					 pos);
				return -EPROTO;
			}
			return (int)pos;
		}
		if (now_ms() >= deadline) {
			ivl__err("link: %s: IVPosition still -1: is the chardev connected to a "
				 "server?",
				 g->dev.desc);
			return -ETIMEDOUT;
		}
		nap_ms(2);
	}
}

/* A header that never becomes usable leaves a raw link: the memory and the
 * Doorbell still work, there is just no peer set. */
static void find_header(struct guest_link *g, int64_t deadline)
{
	struct ivl_link *l = &g->l;
	int r;

	for (;;) {
		r = ivl_shm_validate(l->base, l->size, &l->hdr);
		if (r != -EAGAIN || now_ms() >= deadline)
			break;
		nap_ms(5);
	}
	l->has_header = r == 0;
	if (r == 0 || r == -ENOENT)
		return;
	ivl__warn("link: %s: %s ivlink header; using the region raw (no peer set)", g->dev.desc,
		  r == -EAGAIN	    ? "still formatting"
		  : r == -ESHUTDOWN ? "closed"
				    : "invalid");
}

static int arm_timer(struct guest_link *g)
{
	int fd = ivl__link_watch_timer(&g->l, SCAN_MS);

	if (fd < 0)
		return fd;
	g->tfd = fd;
	return 0;
}

int ivl__link_guest_new_with_regs(struct ivl_link **out, const struct ivl__guest_dev *dev,
				  int timeout_ms)
{
	struct guest_link *g;
	int64_t deadline;
	unsigned own;
	int ret;

	if (!out || !dev || !dev->regs || !dev->bar2 || !dev->bar2_size || timeout_ms < 0 ||
	    dev->nirq > IVL_MAX_VECTORS || (dev->nirq && !dev->irq_fds)) {
		if (dev && dev->release)
			dev->release(dev->ctx);
		return -EINVAL;
	}
	*out = NULL;
	deadline = now_ms() + (timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS);
	g = calloc(1, sizeof(*g));
	if (!g) {
		if (dev->release)
			dev->release(dev->ctx);
		return -ENOMEM;
	}
	g->dev = *dev;
	if (!g->dev.desc)
		g->dev.desc = "ivshmem";
	g->tfd = -1;
	ret = ivl__link_init(&g->l, &guest_ops);
	if (ret < 0) {
		if (dev->release)
			dev->release(dev->ctx);
		free(g);
		return ret;
	}
	g->l.base = g->dev.bar2;
	g->l.size = g->dev.bar2_size;
	ret = wait_position(g, deadline);
	if (ret < 0)
		goto fail;
	g->l.id = ret;
	find_header(g, deadline);
	g->l.vectors = g->dev.dev_vectors > IVL_MAX_VECTORS ? IVL_MAX_VECTORS : g->dev.dev_vectors;
	if (g->l.has_header && g->l.hdr.vectors < g->l.vectors)
		g->l.vectors = g->l.hdr.vectors;
	own = g->dev.nirq < g->l.vectors ? g->dev.nirq : g->l.vectors;
	for (unsigned v = 0; v < own; v++) {
		ret = ivl__link_add_own(&g->l, v, g->dev.irq_fds[v]);
		if (ret < 0)
			goto fail;
	}
	if (!own) {
		g->l.no_irq = true;
		if (g->dev.dev_vectors)
			ivl__info("link: %s: no interrupts (no VFIO): doorbells are received by "
				  "polling%s",
				  g->dev.desc,
				  g->l.has_header ? " the pending bits"
						  : "; without an ivlink header none arrive");
	}
	ret = ivl__guest_scan_init(&g->scan, g->l.has_header ? &g->l.hdr : NULL, g->l.id);
	if (ret < 0)
		goto fail;
	ret = watch_hup(g);
	if (ret < 0)
		goto fail;
	if (g->l.has_header) {
		ret = arm_timer(g);
		if (ret < 0)
			goto fail;
		ivl__guest_scan_run(&g->scan, g->l.base, &g->l.hdr, push_event, &g->l);
	}
	ivl__debug("link: guest peer %d on %s, %u vectors (%u with interrupts), %s region of "
		   "%llu bytes",
		   g->l.id, g->dev.desc, g->l.vectors, own, g->l.has_header ? "ivlink" : "raw",
		   (unsigned long long)g->l.size);
	*out = &g->l;
	return 0;
fail:
	guest_destroy(&g->l);
	return ret;
}

IVL_EXPORT const char *ivl_link_guest_access(const struct ivl_link *l)
{
	if (!l || l->ops != &guest_ops)
		return NULL;
	return to_guest(l)->dev.access ? to_guest(l)->dev.access : "model";
}

IVL_EXPORT int ivl_link_guest_new(struct ivl_link **out, const struct ivl_link_guest_opts *opts)
{
	static const struct ivl_link_guest_opts defaults;
	const struct ivl_link_guest_opts *o = opts ? opts : &defaults;
	struct ivl__guest_dev dev;
	char bdf[13];
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (o->timeout_ms < 0)
		return -EINVAL;
	ret = ivl__guest_find(o->device, bdf);
	if (ret < 0)
		return ret;
	ret = ivl__guest_open(bdf, o->no_vfio, &dev);
	if (ret < 0)
		return ret;
	return ivl__link_guest_new_with_regs(out, &dev, o->timeout_ms);
}
