/* SPDX-License-Identifier: MIT */
/*
 * The managed console (virtio device ID 3, one port, no MULTIPORT): queue 0
 * receiveq (device -> driver), queue 1 transmitq (driver -> device).  The
 * byte stream is bridged to a backend on the device host: a PTY (the host
 * keeps the slave side open so the master never hangs up), a UNIX socket
 * (console-ID.sock in the host's console directory; the newest client wins),
 * or a loop (what the driver sends comes back, for tests and the demo).
 * Transmitted bytes wait in the ring while a UNIX console has no client, and
 * while its client does not read (a full socket buffer: the device keeps
 * the buffer and goes on when the socket is writable, so nothing is lost).
 * Bytes that a PTY or the loop cannot take at once are dropped (logged at
 * debug level): nobody may be reading a PTY (the host holds its slave
 * side), and the loop's reader is the driver itself.  Received bytes wait
 * in the backend until the driver gives receive buffers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/internal.h"
#include "transport-internal.h"

#define RXQ 0u
#define TXQ 1u
#define IOV_MAX_ 16u
#define LOOP_SIZE 65536u
#define F_EMERG_WRITE (1ull << 2) /* VIRTIO_CONSOLE_F_EMERG_WRITE */

struct console {
	unsigned mode;
	int fd;	    /* PTY master or listening socket */
	int slave;  /* PTY slave, kept open */
	int client; /* UNIX client */
	char path[108];
	uint8_t *loop;
	size_t loop_len;
	struct iovec iov[IOV_MAX_];
	struct ivl_virtq_elem held; /* a receive buffer waiting for bytes */
	bool have_held;
	/* A transmit buffer a UNIX client has not taken all of yet: out
	 * segment tx_seg from byte tx_off on. */
	struct iovec tx_iov[IOV_MAX_];
	struct ivl_virtq_elem tx;
	bool have_tx;
	unsigned tx_seg;
	size_t tx_off;
};

static int data_fd(const struct console *c)
{
	return c->mode == IVL_TRANSPORT_CONSOLE_PTY ? c->fd : c->client;
}

static int open_pty(struct ivl__tdev *d, struct console *c)
{
	c->fd = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (c->fd < 0 || grantpt(c->fd) < 0 || unlockpt(c->fd) < 0)
		return -errno;
	char name[64];
	if (ptsname_r(c->fd, name, sizeof(name)) != 0)
		return -errno;
	c->slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (c->slave < 0)
		return -errno;
	snprintf(d->backend, sizeof(d->backend), "pty:%.58s", name);
	return ivl__mgmt_watch(d->m, c->fd, 0);
}

static int open_unix(struct ivl__tdev *d, struct console *c, const char *dir)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (!dir)
		return -ENOTSUP;
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/console-%llu.sock", dir,
			 (unsigned long long)d->id);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	unlink(sa.sun_path);
	if (bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(c->fd, 4) < 0)
		return -errno;
	memcpy(c->path, sa.sun_path, sizeof(c->path));
	snprintf(d->backend, sizeof(d->backend), "unix:%.58s", c->path);
	return ivl__mgmt_watch(d->m, c->fd, EPOLLIN);
}

static void con_fini(struct ivl__tdev *d)
{
	struct console *c = d->priv;
	if (!c)
		return;
	if (c->fd >= 0)
		(void)ivl__mgmt_watch(d->m, c->fd, 0);
	if (c->client >= 0)
		(void)ivl__mgmt_watch(d->m, c->client, 0);
	ivl__close(c->fd);
	ivl__close(c->slave);
	ivl__close(c->client);
	if (c->path[0])
		unlink(c->path);
	free(c->loop);
	free(c);
	d->priv = NULL;
}

static int con_init(struct ivl__tdev *d, const struct ivl_transport_create *cr, const char *arg,
		    const struct ivl_transport_device_opts *o)
{
	if (arg)
		return -EINVAL;
	unsigned mode = cr->param[0] ? cr->param[0] : o->default_console;
	if (!mode)
		mode = IVL_TRANSPORT_CONSOLE_LOOP;
	if (mode > IVL_TRANSPORT_CONSOLE_LOOP || cr->param[1] || cr->param[2])
		return -EINVAL;
	struct console *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->mode = mode;
	c->fd = c->slave = c->client = -1;
	c->held.iov = c->iov;
	c->held.iov_max = IOV_MAX_;
	d->priv = c;
	int r = 0;
	if (mode == IVL_TRANSPORT_CONSOLE_PTY)
		r = open_pty(d, c);
	else if (mode == IVL_TRANSPORT_CONSOLE_UNIX)
		r = open_unix(d, c, o->console_dir);
	else if (!(c->loop = malloc(LOOP_SIZE)))
		r = -ENOMEM;
	else
		snprintf(d->backend, sizeof(d->backend), "loop");
	if (r < 0) {
		con_fini(d);
		return r;
	}
	/* struct virtio_console_config: cols, rows, max_nr_ports, emerg_wr. */
	ivl__put16(d->config, 80);
	ivl__put16(d->config + 2, 25);
	ivl__put32(d->config + 4, 1);
	return 0;
}

static void con_reset(struct ivl__tdev *d)
{
	struct console *c = d->priv;
	c->have_held = false;
	c->have_tx = false;
	c->loop_len = 0;
}

static void drop_client(struct ivl__tdev *d, struct console *c)
{
	if (c->client < 0)
		return;
	(void)ivl__mgmt_watch(d->m, c->client, 0);
	c->client = ivl__close(c->client);
}

/* Write what the backend takes now.  UNIX: returns the bytes taken (the
 * caller keeps the rest).  PTY and loop: the rest is dropped; returns @n. */
static size_t sink(struct ivl__tdev *d, struct console *c, const uint8_t *p, size_t n)
{
	size_t want = n;
	if (c->mode == IVL_TRANSPORT_CONSOLE_LOOP) {
		size_t k = n < LOOP_SIZE - c->loop_len ? n : LOOP_SIZE - c->loop_len;
		memcpy(c->loop + c->loop_len, p, k);
		c->loop_len += k;
		n -= k;
		if (n)
			ivl__debug("transport: console %llu: %zu bytes dropped (loop full)",
				   (unsigned long long)d->id, n);
		return want;
	}
	int fd = data_fd(c);
	while (n > 0 && fd >= 0) {
		ssize_t w = c->mode == IVL_TRANSPORT_CONSOLE_PTY
				? write(fd, p, n)
				: send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w < 0 && errno != EAGAIN && c->mode == IVL_TRANSPORT_CONSOLE_UNIX)
				drop_client(d, c);
			break;
		}
		p += w;
		n -= (size_t)w;
	}
	if (c->mode == IVL_TRANSPORT_CONSOLE_UNIX)
		return want - n;
	if (n)
		ivl__debug("transport: console %llu: %zu bytes dropped (backend full)",
			   (unsigned long long)d->id, n);
	return want;
}

/* Transmit buffers to the backend; returns buffers used.  A buffer a
 * UNIX client did not take whole stays in c->tx until it does. */
static int serve_tx(struct ivl__tdev *d, struct console *c)
{
	int n = 0;
	if (!ivl__tdev_queue(d, TXQ))
		c->have_tx = false; /* the queue went away with its buffers */
	for (;;) {
		if (c->mode == IVL_TRANSPORT_CONSOLE_UNIX && c->client < 0)
			break; /* keep the bytes in the ring until a client connects */
		if (!c->have_tx) {
			c->tx = (struct ivl_virtq_elem){.iov = c->tx_iov, .iov_max = IOV_MAX_};
			if (ivl__tdev_pop(d, TXQ, &c->tx) != 1)
				break;
			c->have_tx = true;
			c->tx_seg = 0;
			c->tx_off = 0;
		}
		while (c->tx_seg < c->tx.out_num) {
			const struct iovec *v = &c->tx_iov[c->tx_seg];
			size_t left = v->iov_len - c->tx_off;
			size_t w = sink(d, c, (const uint8_t *)v->iov_base + c->tx_off, left);
			if (w < left) {
				c->tx_off += w;
				return n; /* the client's socket is full */
			}
			c->tx_seg++;
			c->tx_off = 0;
		}
		c->have_tx = false;
		ivl__tdev_done(d, TXQ, c->tx.head, 0);
		n++;
	}
	return n;
}

/* Fill receive buffers from the backend; returns buffers used. */
static int serve_rx(struct ivl__tdev *d, struct console *c)
{
	int n = 0;
	for (;;) {
		if (!c->have_held) {
			if (ivl__tdev_pop(d, RXQ, &c->held) != 1)
				break;
			c->have_held = true;
			if (c->held.in_len == 0) { /* nothing to fill: give it back */
				c->have_held = false;
				ivl__tdev_done(d, RXQ, c->held.head, 0);
				continue;
			}
		}
		ssize_t r;
		if (c->mode == IVL_TRANSPORT_CONSOLE_LOOP) {
			if (!c->loop_len)
				break;
			r = (ssize_t)ivl__elem_write(&c->held, c->loop, c->loop_len);
			memmove(c->loop, c->loop + r, c->loop_len - (size_t)r);
			c->loop_len -= (size_t)r;
		} else {
			int fd = data_fd(c);
			if (fd < 0)
				break;
			r = readv(fd, c->held.iov + c->held.out_num, (int)c->held.in_num);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				if (c->mode == IVL_TRANSPORT_CONSOLE_UNIX && (r == 0 || errno != EAGAIN))
					drop_client(d, c);
				break;
			}
		}
		c->have_held = false;
		ivl__tdev_done(d, RXQ, c->held.head, (uint32_t)r);
		n++;
	}
	return n;
}

static int con_serve(struct ivl__tdev *d)
{
	struct console *c = d->priv;
	if (c->mode == IVL_TRANSPORT_CONSOLE_UNIX) {
		int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			drop_client(d, c);
			c->client = fd;
		}
	}
	if (!ivl__tdev_queue(d, RXQ))
		c->have_held = false; /* the queue went away with its buffers */
	int n = serve_tx(d, c);
	n += serve_rx(d, c);
	/* Level-triggered: listen for bytes only while a buffer waits, for
	 * room only while a transmit buffer waits. */
	if (data_fd(c) >= 0)
		(void)ivl__mgmt_watch(d->m, data_fd(c),
				      (c->have_held ? EPOLLIN : 0) |
					  (c->have_tx && c->mode == IVL_TRANSPORT_CONSOLE_UNIX ? EPOLLOUT : 0));
	return n;
}

/* emerg_wr, once VIRTIO_CONSOLE_F_EMERG_WRITE was negotiated. */
static bool con_writable(const struct ivl__tdev *d, uint32_t off, uint32_t len)
{
	return off == 8 && len == 4 && (d->drv_features & F_EMERG_WRITE);
}

static int con_config_write(struct ivl__tdev *d, uint32_t off, uint32_t len)
{
	(void)off;
	(void)len;
	uint8_t ch = d->config[8];
	sink(d, d->priv, &ch, 1);
	memset(d->config + 8, 0, 4);
	return 0;
}

const struct ivl__tdev_type ivl__console_type = {
    .virtio_id = IVL_TRANSPORT_VIRTIO_CONSOLE,
    .name = "console",
    .nqueues = 2,
    .features = F_EMERG_WRITE,
    .config_size = 12,
    .window_default = 65536,
    .init = con_init,
    .fini = con_fini,
    .reset = con_reset,
    .serve = con_serve,
    .config_write = con_config_write,
    .config_writable = con_writable,
};
