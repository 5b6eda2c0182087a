/* SPDX-License-Identifier: MIT */
/*
 * ivlink console: drive a managed console from the terminal, and the
 * managed console of ivlink demo (docs/transport.md).  Parsing is in
 * cmd_dev.c.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "dev.h"


/* ---- ivlink console ------------------------------------------------------------ */

#define SLOTS 8u
#define SLOT 512u

struct con {
	struct ivl_link *l;
	struct ivl_transport_driver *d;
	struct ivl_virtq *q[2];
	uint8_t *buf;
	bool tx_busy[SLOTS];
	unsigned tx_inflight;
};

static int post_rx(struct con *c, unsigned slot)
{
	struct iovec in = {c->buf + slot * SLOT, SLOT};
	int r = ivl_virtq_add(c->q[0], NULL, 0, &in, 1, (void *)(uintptr_t)(slot + 1));
	return r < 0 ? r : 0;
}

/* Take used buffers: print what arrived, free transmit slots. */
static int drain(struct con *c)
{
	void *tok;
	uint32_t len;
	int r;
	while ((r = ivl_virtq_get_used(c->q[0], &tok, &len)) == 1) {
		unsigned slot = (unsigned)(uintptr_t)tok - 1;
		if (slot >= SLOTS || len > SLOT)
			return -EPROTO;
		if (len && fwrite(c->buf + slot * SLOT, 1, len, stdout) != len)
			return -EIO;
		if ((r = post_rx(c, slot)) < 0)
			return r;
	}
	fflush(stdout);
	while (r == 0 && (r = ivl_virtq_get_used(c->q[1], &tok, &len)) == 1) {
		unsigned slot = (unsigned)(uintptr_t)tok - 1;
		if (slot >= SLOTS || !c->tx_busy[slot])
			return -EPROTO;
		c->tx_busy[slot] = false;
		c->tx_inflight--;
	}
	if (r < 0)
		return r;
	r = ivl_transport_driver_kick(c->d, c->q[0]);
	return r < 0 ? r : 0;
}

/* Read input into a free transmit slot; 1 at end of input or Ctrl-]. */
static int input(struct con *c, bool tty)
{
	unsigned slot = 0;
	while (c->tx_busy[slot])
		slot++;
	uint8_t *p = c->buf + (SLOTS + slot) * SLOT;
	ssize_t n = read(STDIN_FILENO, p, SLOT);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -errno;
	if (n == 0)
		return 1;
	bool detach = false;
	if (tty) {
		uint8_t *esc = memchr(p, 0x1d, (size_t)n);
		if (esc) {
			n = esc - p;
			detach = true;
		}
	}
	if (n > 0) {
		struct iovec out = {p, (size_t)n};
		int r = ivl_virtq_add(c->q[1], &out, 1, NULL, 0, (void *)(uintptr_t)(slot + 1));
		if (r < 0)
			return r;
		c->tx_busy[slot] = true;
		c->tx_inflight++;
		if ((r = ivl_transport_driver_kick(c->d, c->q[1])) < 0)
			return r;
	}
	return detach;
}

int console_attach(struct cli_global *g, struct ivl_link *l, struct ivl_transport_driver *d, uint64_t id)
{
	struct con c = {.l = l, .d = d};
	struct ivl_transport_info info;
	uint32_t reason = 0;
	unsigned nq;
	void *buf;
	uint64_t bsz;
	int r = ivl_transport_driver_query(d, id, &info, &reason);
	if (r == 0 && info.virtio_id != IVL_TRANSPORT_VIRTIO_CONSOLE) {
		cli_err(g, "device %llu is not a console", (unsigned long long)id);
		return EXIT_FAIL;
	}
	if (r == 0)
		r = ivl_transport_driver_setup(d, id, 16, c.q, 2, &nq, &buf, &bsz, &reason);
	if (r == 0 && bsz < 2 * SLOTS * SLOT)
		r = -ENOSPC;
	if (r < 0) {
		ivl_virtq_free(c.q[0]);
		ivl_virtq_free(c.q[1]);
		return dev_fail(g, "attach", r, reason);
	}
	c.buf = buf;
	for (unsigned i = 0; i < SLOTS && r == 0; i++)
		r = post_rx(&c, i);
	if (r == 0)
		r = ivl_transport_driver_kick(d, c.q[0]);
	bool tty = isatty(STDIN_FILENO);
	struct termios saved, raw;
	if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	} else
		tty = false;
	dev_catch_stop();
	bool eof = false;
	int64_t linger_end = -1;
	while (r >= 0 && !dev_stop) {
		struct pollfd p[2] = {{.fd = ivl_link_get_fd(l), .events = POLLIN},
				      {.fd = STDIN_FILENO, .events = POLLIN}};
		bool want_in = !eof && c.tx_inflight < SLOTS;
		if (poll(p, want_in ? 2 : 1, 50) < 0 && errno != EINTR)
			r = -errno;
		struct ivl_link_event ev[16];
		while (r >= 0 && ivl_link_process(l, ev, 16) > 0)
			;
		if (r >= 0)
			r = drain(&c);
		if (r >= 0 && want_in && (p[1].revents & (POLLIN | POLLHUP))) {
			int k = input(&c, tty);
			if (k < 0)
				r = k;
			else if (k == 1)
				eof = true;
		}
		if (eof && c.tx_inflight == 0) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
			if (linger_end < 0)
				linger_end = now + 200;
			else if (now >= linger_end)
				break;
		}
	}
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	ivl_virtq_free(c.q[0]);
	ivl_virtq_free(c.q[1]);
	if (r < 0)
		return dev_fail(g, "console", r, 0);
	return EXIT_OK;
}

/* ---- the demo's managed console (cmd_demo.c) ---------------------------------- */

struct demo_host {
	struct ivl_transport_host *h;
	_Atomic bool stop;
	_Atomic int err;
};

static void *demo_host_thread(void *arg)
{
	struct demo_host *dh = arg;
	struct pollfd p = {.fd = ivl_transport_host_get_fd(dh->h), .events = POLLIN};
	while (!dh->stop) {
		poll(&p, 1, 20);
		int r = ivl_transport_host_process(dh->h);
		if (r < 0) {
			dh->err = r;
			break;
		}
	}
	return NULL;
}

static int demo_link(const char *sock, const char *name, struct ivl_link **out)
{
	struct ivl_link_host_opts o = {.socket_path = sock, .name = name, .timeout_ms = 2000};
	return ivl_link_host_new(out, &o);
}

/* Wait (bounded) for a used buffer of @q, reading doorbells meanwhile. */
static int demo_used(struct ivl_link *l, struct ivl_virtq *q, uint32_t *len)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t end = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 2000;
	for (;;) {
		void *tok;
		int r = ivl_virtq_get_used(q, &tok, len);
		if (r != 0)
			return r;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 >= end)
			return -ETIMEDOUT;
		struct ivl_link_event ev[8];
		ivl_link_wait(l, ev, 8, 20);
	}
}

/*
 * A device host and a driver join the server at @sock; the driver creates a
 * console (loop backend) through the transport virtqueue in the management
 * area at app offset @offset (@size bytes), sets it up, sends a line and
 * reads it back, lists and destroys it.  Narration goes to @out (NULL: none);
 * on failure @why says what went wrong.  Returns 0 or -errno.
 */
int dev_demo_console(const char *sock, uint64_t offset, uint64_t size, FILE *out, char *why,
		     size_t why_len)
{
	static const char line[] = "hello through a managed virtio console";
	struct ivl_link *hl = NULL, *dl = NULL;
	struct ivl_transport_driver *d = NULL;
	struct ivl_virtq *q[2] = {0};
	struct demo_host dh = {0};
	pthread_t thr;
	bool running = false;
	const char *step = "connecting";
	uint32_t reason = 0, len = 0;
	int r = demo_link(sock, "devhost", &hl);
	if (r == 0)
		r = demo_link(sock, "driver", &dl);
	struct ivl_transport_host_opts ho = {.area_offset = offset, .area_size = size};
	if (r == 0 && (step = "serving", r = ivl_transport_host_new(&dh.h, hl, &ho)) == 0) {
		r = -pthread_create(&thr, NULL, demo_host_thread, &dh);
		running = r == 0;
	}
	if (r == 0 && out)
		fprintf(out, "devhost (peer %d) serves a management device at app offset %llu\n",
			ivl_link_id(hl), (unsigned long long)offset);
	struct ivl_transport_driver_opts dopt = {.area_offset = offset, .area_size = size, .timeout_ms = 2000};
	if (r == 0)
		step = "finding the device host", r = ivl_transport_driver_new(&d, dl, &dopt);
	struct ivl_transport_create c = {.virtio_id = IVL_TRANSPORT_VIRTIO_CONSOLE,
				  .param = {IVL_TRANSPORT_CONSOLE_LOOP}};
	struct ivl_transport_info info = {0};
	if (r == 0)
		step = "creating a console", r = ivl_transport_driver_create(d, &c, &info, &reason);
	if (r == 0 && out)
		fprintf(out,
			"driver (peer %d) creates console %llu on the transport virtqueue: "
			"window %llu KiB at %llu, backend %s\n",
			ivl_link_id(dl), (unsigned long long)info.device_id,
			(unsigned long long)info.window_size / 1024,
			(unsigned long long)info.window_offset, info.backend);
	unsigned nq;
	void *bufv = NULL;
	uint64_t bsz = 0;
	if (r == 0)
		step = "setting the console up",
		r = ivl_transport_driver_setup(d, info.device_id, 16, q, 2, &nq, &bufv, &bsz, &reason);
	uint8_t *buf = bufv;
	if (r == 0 && bsz < 1024)
		r = -ENOSPC;
	if (r == 0) {
		struct iovec rx = {buf, 512}, tx = {buf + 512, sizeof(line) - 1};
		memcpy(buf + 512, line, sizeof(line) - 1);
		step = "exchanging bytes";
		r = ivl_virtq_add(q[0], NULL, 0, &rx, 1, buf);
		if (r >= 0)
			r = ivl_virtq_add(q[1], &tx, 1, NULL, 0, buf + 512);
		if (r >= 0)
			r = ivl_transport_driver_kick(d, q[1]);
		if (r >= 0)
			r = demo_used(dl, q[0], &len);
		r = r < 0 ? r : r == 1 ? 0 : -EPROTO;
	}
	if (r == 0 && (len != sizeof(line) - 1 || memcmp(buf, line, len)))
		r = -EBADMSG;
	if (r == 0 && out)
		fprintf(out,
			"driver sends \"%s\" on the transmit queue and receives it back on "
			"the receive queue (MSI vectors as doorbells)\n",
			line);
	struct ivl_transport_list_entry e[4];
	if (r == 0)
		step = "listing", r = ivl_transport_driver_list(d, e, 4, &reason);
	if (r >= 0)
		r = r == 1 ? 0 : -EPROTO;
	if (r == 0)
		step = "destroying", r = ivl_transport_driver_destroy(d, info.device_id, &reason);
	if (r == 0 && out)
		fprintf(out, "driver lists 1 device and destroys console %llu\n",
			(unsigned long long)info.device_id);
	if (r < 0)
		snprintf(why, why_len, "%s: %s", step,
			 r == -EREMOTEIO ? ivl_transport_reason_name(reason) : strerror(-r));
	if (running) {
		dh.stop = true;
		pthread_join(thr, NULL);
		if (r == 0 && dh.err) {
			r = dh.err;
			snprintf(why, why_len, "device host: %s", strerror(-r));
		}
	}
	ivl_virtq_free(q[0]);
	ivl_virtq_free(q[1]);
	ivl_transport_driver_free(d);
	ivl_transport_host_free(dh.h);
	ivl_link_free(dl);
	ivl_link_free(hl);
	if (out)
		fflush(out);
	return r;
}
