/* SPDX-License-Identifier: MIT */
/*
 * The managed network device (virtio device ID 1, docs/transport.md §5, Net):
 * queue 0 receiveq, queue 1 transmitq, no control queue.  Features: MAC (a
 * locally administered 02:69:76:00:ID), MTU, STATUS (link always up),
 * MRG_RXBUF; no checksum or segmentation offload.  Every transmit chain is
 * copied out of the window once and checked there (ivl__net_tx_check());
 * a bad one is returned unused and counted, never breaks the device.
 *
 * Backends, named by CREATE's argument and looked up in the device host's
 * configuration (opts net_switches / net_taps), never opened as given:
 *  - "switch:NAME": a port of the built-in L2 switch NAME (net-switch.c),
 *    made when its first port joins and freed with its last;
 *  - "tap:IFNAME": an existing TAP interface, attached with IFF_TAP |
 *    IFF_NO_PI, non-blocking; a frame the interface cannot take at once is
 *    dropped (counted).
 * Received frames wait in the switch port's bounded FIFO (or, for a TAP,
 * in the kernel) until the driver gives receive buffers.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/internal.h"
#include "net-switch.h"
#include "transport-internal.h"

#define RXQ 0u
#define TXQ 1u
#define TX_IOV 32u
#define RX_IOV 24u
#define HELD_MAX 64u
#define BUDGET 256 /* chains per queue and serve: the others get their turn */
#define TAPBUF (65536u + 64u)

#define F_MTU (1ull << 3)
#define F_MAC (1ull << 5)
#define F_MRG_RXBUF (1ull << 15)
#define F_STATUS (1ull << 16)
#define S_LINK_UP 1u

enum { K_SWITCH = 1, K_TAP };

struct held {
	struct ivl_virtq_elem e;
	struct iovec iov[RX_IOV];
};

struct counters {
	uint64_t tx, rx, drop, bad;
};

struct net {
	int kind;
	uint32_t mtu;
	size_t frame_max;
	struct ivl__nsw_port *port;
	int tap;
	bool tap_watch;
	size_t tap_pending; /* a frame read from the TAP, waiting for buffers */
	struct held held[HELD_MAX]; /* receive buffers popped, not yet used */
	unsigned held_first, nheld;
	bool pushed[2]; /* used entries to flush per queue */
	bool again;	/* the budget ran out: serve again soon */
	struct counters c, shown;
	char name[IVL__NSW_NAME_MAX];
	uint8_t buf[TAPBUF]; /* a transmitted chain, or a TAP frame */
};

/* The device host's switches, made on demand: one slot per configured
 * name (ivl__mgmt_net()), freed when the last port leaves. */
struct switches {
	unsigned n, live;
	struct ivl__nsw *sw[];
};

/* The backend field of QUERY: "KIND:NAME tx=N rx=N drop=N bad=N" (drop:
 * frames for this device lost to a full FIFO, the MTU, too small buffers
 * or a full TAP; bad: chains refused). */
static void show(struct ivl__tdev *d, struct net *n)
{
	struct counters c = n->c;
	if (n->port) {
		struct ivl__nsw_stats st;
		ivl__nsw_port_stats(n->port, &st);
		c.drop += st.drop_full + st.drop_big;
	}
	if (!memcmp(&c, &n->shown, sizeof(c)) && d->backend[0])
		return;
	n->shown = c;
	snprintf(d->backend, sizeof(d->backend), "%s:%s tx=%llu rx=%llu drop=%llu bad=%llu",
		 n->kind == K_TAP ? "tap" : "switch", n->name, (unsigned long long)c.tx,
		 (unsigned long long)c.rx, (unsigned long long)c.drop, (unsigned long long)c.bad);
}

static int find_name(const char *const *names, unsigned count, const char *name)
{
	for (unsigned i = 0; names && i < count; i++)
		if (names[i] && !strcmp(names[i], name))
			return (int)i;
	return -1;
}

static int join_switch(struct ivl__tdev *d, struct net *n, const struct ivl_transport_device_opts *o)
{
	int i = find_name(o->net_switches, o->n_net_switches, n->name);
	if (i < 0)
		return -ENOENT;
	struct switches **sp = (struct switches **)ivl__mgmt_net(d->m);
	if (!*sp) {
		*sp = calloc(1, sizeof(**sp) + o->n_net_switches * sizeof((*sp)->sw[0]));
		if (!*sp)
			return -ENOMEM;
		(*sp)->n = o->n_net_switches;
	}
	struct switches *s = *sp;
	int r = 0;
	if (!s->sw[i] && (r = ivl__nsw_new(&s->sw[i], n->name)) == 0)
		s->live++;
	if (r == 0)
		r = ivl__nsw_port_add(s->sw[i], n->frame_max, &n->port);
	return r;
}

static void leave_switch(struct ivl__tdev *d, struct net *n)
{
	struct switches **sp = (struct switches **)ivl__mgmt_net(d->m), *s = *sp;
	struct ivl__nsw *sw = ivl__nsw_port_switch(n->port);
	ivl__nsw_port_del(n->port);
	n->port = NULL;
	if (ivl__nsw_ports(sw))
		return;
	for (unsigned i = 0; i < s->n; i++)
		if (s->sw[i] == sw)
			s->sw[i] = NULL;
	ivl__nsw_free(sw);
	if (--s->live == 0) {
		free(s);
		*sp = NULL;
	}
}

static int open_tap(struct ivl__tdev *d, struct net *n, const struct ivl_transport_device_opts *o)
{
	if (find_name(o->net_taps, o->n_net_taps, n->name) < 0)
		return -ENOENT;
	/* Attach only: TUNSETIFF would create a missing interface. */
	if (!if_nametoindex(n->name))
		return -ENODEV;
	n->tap = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (n->tap < 0)
		return -errno;
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI};
	memcpy(ifr.ifr_name, n->name, strlen(n->name));
	if (ioctl(n->tap, TUNSETIFF, &ifr) < 0)
		return -errno;
	return 0;
}

static void net_fini(struct ivl__tdev *d)
{
	struct net *n = d->priv;
	if (!n)
		return;
	if (n->port)
		leave_switch(d, n);
	if (n->tap >= 0) {
		(void)ivl__mgmt_watch(d->m, n->tap, 0);
		ivl__close(n->tap);
	}
	free(n);
	d->priv = NULL;
}

static int net_init(struct ivl__tdev *d, const struct ivl_transport_create *cr, const char *arg,
		    const struct ivl_transport_device_opts *o)
{
	const char *name = NULL;
	int kind = 0;
	if (!arg)
		return -EINVAL;
	if (!strncmp(arg, "switch:", 7)) {
		kind = K_SWITCH;
		name = arg + 7;
	} else if (!strncmp(arg, "tap:", 4)) {
		kind = K_TAP;
		name = arg + 4;
	}
	uint32_t mtu = cr->param[0] ? cr->param[0] : IVL__NET_MTU_DEFAULT;
	if (!kind || !name[0] || strlen(name) >= IVL__NSW_NAME_MAX || mtu < IVL__NET_MTU_MIN ||
	    mtu > IVL__NET_MTU_MAX || cr->param[1] || cr->param[2])
		return -EINVAL;
	struct net *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->kind = kind;
	n->mtu = mtu;
	n->frame_max = ivl__net_frame_max(mtu);
	n->tap = -1;
	memcpy(n->name, name, strlen(name));
	for (unsigned i = 0; i < HELD_MAX; i++) {
		n->held[i].e.iov = n->held[i].iov;
		n->held[i].e.iov_max = RX_IOV;
	}
	d->priv = n;
	int r = kind == K_SWITCH ? join_switch(d, n, o) : open_tap(d, n, o);
	if (r < 0) {
		ivl__info("transport: net backend %s refused: %d", arg, r);
		net_fini(d);
		return r;
	}
	/* struct virtio_net_config: mac[6], status, max_virtqueue_pairs, mtu. */
	static const uint8_t oui[3] = {0x02, 0x69, 0x76}; /* locally administered */
	memcpy(d->config, oui, 3);
	d->config[3] = (uint8_t)(d->id >> 16);
	d->config[4] = (uint8_t)(d->id >> 8);
	d->config[5] = (uint8_t)d->id;
	ivl__put16(d->config + 6, S_LINK_UP);
	ivl__put16(d->config + 8, 1);
	ivl__put16(d->config + 10, (uint16_t)mtu);
	show(d, n);
	return 0;
}

static void drop_frames(struct net *n)
{
	if (n->port)
		while (ivl__nsw_peek(n->port, &(size_t){0}))
			ivl__nsw_pop(n->port);
	n->tap_pending = 0;
}

static void net_reset(struct ivl__tdev *d)
{
	struct net *n = d->priv;
	n->nheld = 0;
	n->pushed[0] = n->pushed[1] = false;
	drop_frames(n);
}

/* Record @head used with @len on queue @q (flushed by flush()). */
static bool put_used(struct ivl__tdev *d, struct net *n, unsigned q, uint16_t head, uint32_t len)
{
	int r = ivl_virtq_push(d->q[q].vq, head, len);
	if (r < 0) {
		ivl__tdev_broken(d, r);
		return false;
	}
	n->pushed[q] = true;
	return true;
}

static void flush(struct ivl__tdev *d, struct net *n)
{
	for (unsigned q = 0; q < 2; q++) {
		if (!n->pushed[q])
			continue;
		n->pushed[q] = false;
		if (!ivl__tdev_queue(d, q))
			continue;
		int r = ivl_virtq_flush(d->q[q].vq);
		if (r < 0)
			ivl__tdev_broken(d, r);
		else
			(void)ivl__tdev_notify(d, q);
	}
}

static struct held *held_at(struct net *n, unsigned i)
{
	return &n->held[(n->held_first + i) % HELD_MAX];
}

/* Pop one more receive buffer; 1, or 0 when none (or the queue broke). */
static int hold_one(struct ivl__tdev *d, struct net *n)
{
	while (n->nheld < HELD_MAX) {
		struct held *h = held_at(n, n->nheld);
		if (ivl__tdev_pop(d, RXQ, &h->e) != 1)
			return 0;
		if (h->e.out_num == 0 && h->e.in_len >= IVL__NET_HDR_LEN) {
			n->nheld++;
			return 1;
		}
		/* A receive buffer the device cannot use: give it back. */
		n->c.bad++;
		if (!put_used(d, n, RXQ, h->e.head, 0))
			return 0;
	}
	return 0;
}

/* Copy bytes [@from, @from + @k) of the stream header + frame into the
 * writable pieces of @e. */
static void put_stream(const struct ivl_virtq_elem *e, const uint8_t *hdr, const uint8_t *frame,
		       size_t from, size_t k)
{
	for (unsigned i = e->out_num; i < e->out_num + e->in_num && k; i++) {
		uint8_t *dst = e->iov[i].iov_base;
		size_t room = e->iov[i].iov_len;
		while (room && k) {
			size_t m;
			if (from < IVL__NET_HDR_LEN) {
				m = IVL__NET_HDR_LEN - from;
				m = m < room ? m : room;
				m = m < k ? m : k;
				memcpy(dst, hdr + from, m);
			} else {
				m = room < k ? room : k;
				memcpy(dst, frame + (from - IVL__NET_HDR_LEN), m);
			}
			dst += m;
			room -= m;
			from += m;
			k -= m;
		}
	}
}

/*
 * Give frame @f (@len bytes) to the driver.  Returns 1 delivered, 0 not
 * now (wait for receive buffers), -1 dropped (it can never fit the
 * buffers the driver gives).
 */
static int deliver(struct ivl__tdev *d, struct net *n, const uint8_t *f, size_t len)
{
	bool mrg = d->drv_features & F_MRG_RXBUF;
	uint64_t need = IVL__NET_HDR_LEN + len, cap = 0;
	unsigned k = 0;
	if (len > n->frame_max) {
		n->c.drop++;
		return -1;
	}
	/* The buffers for this frame: one without MRG_RXBUF, else as many as
	 * it takes (at most HELD_MAX). */
	for (;;) {
		if (k == n->nheld && !hold_one(d, n))
			break;
		cap += held_at(n, k)->e.in_len;
		k++;
		if (cap >= need || !mrg)
			break;
	}
	if (cap < need) {
		if ((k == HELD_MAX || (!mrg && k == 1)) && ivl__tdev_queue(d, RXQ)) {
			n->c.drop++; /* buffers too small for this frame */
			return -1;
		}
		return 0;
	}
	uint8_t hdr[IVL__NET_HDR_LEN] = {0};
	ivl__put16(hdr + 10, (uint16_t)k); /* num_buffers (1 without MRG_RXBUF) */
	uint64_t done = 0;
	for (unsigned i = 0; i < k; i++) {
		const struct ivl_virtq_elem *e = &held_at(n, i)->e;
		uint64_t m = need - done < e->in_len ? need - done : e->in_len;
		put_stream(e, hdr, f, (size_t)done, (size_t)m);
		done += m;
		if (!put_used(d, n, RXQ, e->head, (uint32_t)m))
			return 0;
	}
	n->held_first = (n->held_first + k) % HELD_MAX;
	n->nheld -= k;
	n->c.rx++;
	return 1;
}

static void forward(struct ivl__tdev *d, struct net *n, const uint8_t *f, size_t len)
{
	(void)d;
	if (n->kind == K_SWITCH) {
		if (ivl__nsw_input(n->port, f, len) < 0)
			n->c.bad++;
		return;
	}
	ssize_t w;
	do
		w = write(n->tap, f, len);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)len)
		n->c.drop++; /* the interface is down or its queue is full */
}

static int serve_tx(struct ivl__tdev *d, struct net *n)
{
	struct iovec iov[TX_IOV];
	struct ivl_virtq_elem e = {.iov = iov, .iov_max = TX_IOV};
	int served = 0;
	while (served < BUDGET && ivl__tdev_pop(d, TXQ, &e) == 1) {
		enum ivl__net_bad why = IVL__NET_BAD_WRITABLE;
		const uint8_t *f = NULL;
		size_t flen = 0;
		served++;
		if (e.in_num == 0) {
			why = IVL__NET_BAD_LONG;
			if (e.out_len <= IVL__NET_HDR_LEN + n->frame_max) {
				size_t got = ivl__elem_read(&e, n->buf, (size_t)e.out_len);
				why = ivl__net_tx_check(n->buf, got, n->mtu, &f, &flen);
			}
		}
		if (!put_used(d, n, TXQ, e.head, 0))
			break;
		if (why != IVL__NET_OK) {
			n->c.bad++;
			ivl__debug("transport: net %llu: transmit chain refused (%d)",
				   (unsigned long long)d->id, (int)why);
			continue;
		}
		n->c.tx++;
		forward(d, n, f, flen);
	}
	if (served == BUDGET)
		n->again = true;
	return served;
}

static int serve_rx_switch(struct ivl__tdev *d, struct net *n)
{
	const uint8_t *f;
	size_t len;
	int served = 0;
	(void)ivl__nsw_take_arrived(n->port);
	if (!ivl__tdev_queue(d, RXQ))
		return 0; /* frames wait (bounded) until the driver is ready */
	while (served < BUDGET && (f = ivl__nsw_peek(n->port, &len))) {
		int r = deliver(d, n, f, len);
		if (r == 0)
			break;
		ivl__nsw_pop(n->port);
		served++;
	}
	if (served == BUDGET)
		n->again = true;
	return served;
}

static int serve_rx_tap(struct ivl__tdev *d, struct net *n)
{
	int served = 0;
	if (!ivl__tdev_queue(d, RXQ))
		n->tap_pending = 0;
	else
		while (served < BUDGET) {
			if (!n->tap_pending) {
				ssize_t r = read(n->tap, n->buf, sizeof(n->buf));
				if (r < 0 && errno == EINTR)
					continue;
				if (r <= 0)
					break;
				n->tap_pending = (size_t)r;
			}
			if (deliver(d, n, n->buf, n->tap_pending) == 0)
				break;
			n->tap_pending = 0;
			served++;
		}
	if (served == BUDGET)
		n->again = true;
	/* Level-triggered: read the TAP only while nothing waits for
	 * buffers (the driver's kick brings us back) and the queue is live. */
	bool want = !n->tap_pending && ivl__tdev_queue(d, RXQ);
	if (want != n->tap_watch && ivl__mgmt_watch(d->m, n->tap, want ? EPOLLIN : 0) == 0)
		n->tap_watch = want;
	return served;
}

static int net_serve(struct ivl__tdev *d)
{
	struct net *n = d->priv;
	n->again = false;
	if (!ivl__tdev_queue(d, RXQ))
		n->nheld = 0; /* the queue went away with its buffers */
	int r = serve_tx(d, n);
	r += n->kind == K_SWITCH ? serve_rx_switch(d, n) : serve_rx_tap(d, n);
	flush(d, n);
	show(d, n);
	return r;
}

static int net_timeout_ms(struct ivl__tdev *d)
{
	struct net *n = d->priv;
	/* Frames another port queued for us since our last turn, or work
	 * left over by the budget: serve again at once. */
	return n->again || (n->port && ivl__nsw_arrived(n->port)) ? 0 : -1;
}

const struct ivl__tdev_type ivl__net_type = {
    .virtio_id = IVL_TRANSPORT_VIRTIO_NET,
    .name = "net",
    .nqueues = 2,
    .features = F_MTU | F_MAC | F_MRG_RXBUF | F_STATUS,
    .config_size = 12,
    .window_default = 4u << 20,
    .init = net_init,
    .fini = net_fini,
    .reset = net_reset,
    .serve = net_serve,
    .timeout_ms = net_timeout_ms,
};
