/* SPDX-License-Identifier: MIT */
/*
 * The managed SDM device (virtio device ID 21, seed 000, docs/transport.md
 * §5), bridged to the SDM library: each device is an SDM master or slave on
 * the channel the device host was started with (UNIX, TCP or a local bus).
 *
 *  - queue 0 hg_vq (device -> driver): each delivered signal fills one
 *    buffer with the seed's SDMSignalData, 16 bytes {le32 type, le32 slave,
 *    le32 payload[2]}, `slave` as the seed defines it: the destination, so
 *    the device's own ID on a slave and 0 on a master; then, if the buffer
 *    has room, le32 `from` (the sender's ID, 0 for the master; an ivlink
 *    addition, since the seed's layout does not tell a master who sent).
 *  - No signal is dropped: signals wait for hg_vq buffers in a bounded
 *    hold; while HOLD_RESUME or more wait the device stops reading the
 *    channel (backpressure: the senders' buffers fill and their sends fail
 *    with -EAGAIN).  One ivl_sdm_process() can deliver more than the hold's
 *    headroom only on a socket flood; what does not fit is counted per
 *    source and reported (warning log), never silently gone.
 *  - queue 1 gh_vq (driver -> device): a buffer's first 16 readable bytes
 *    are a signal to send (`slave` IVL_SDM_ALL broadcasts, master only); if
 *    it has a writable part, the device writes the result there as le32:
 *    the return of ivl_sdm_send() (0, the number of slaves reached by a
 *    broadcast, or -errno).
 *  - config {u8 master; u8 reserved; le16 max_slaves; le16 current_slaves};
 *    a master's driver may write max_slaves; any other write, or a value
 *    the SDM refuses, answers ERR (value).  A change of current_slaves
 *    seen after processing the channel raises a configuration change.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <ivlink/sdm.h>

#include "core/internal.h"
#include "transport-internal.h"

#define HGQ 0u
#define GHQ 1u
/* Signals held for hg_vq; the channel is read only while fewer than
 * HOLD_RESUME wait, which leaves HOLD - HOLD_RESUME for one process(). */
#define HOLD 4096u
#define HOLD_RESUME 1024u

struct held {
	struct ivl_sdm_signal sig;
	uint16_t from;
};

struct sdmdev {
	struct ivl_sdm *sdm;
	bool master, reading;
	char chan[80];
	struct held *hold;
	unsigned head, count;
	uint64_t *lost; /* by source ID, IVL_SDM_MAX_SLAVES + 1 */
};

static void lose(struct ivl__tdev *d, uint16_t from, const char *why)
{
	struct sdmdev *s = d->priv;
	/* The library's IDs are <= IVL_SDM_MAX_SLAVES; stay in bounds anyway. */
	uint64_t n = ++s->lost[from <= IVL_SDM_MAX_SLAVES ? from : 0];

	/* 1, 2, 4, 8...: every source is reported, a flood does not flood
	 * the log. */
	if ((n & (n - 1)) == 0)
		ivl__warn("transport: SDM device %llu: %s: %llu signal%s from %u lost so far",
			  (unsigned long long)d->id, why, (unsigned long long)n, n == 1 ? "" : "s",
			  from);
}

static void on_signal(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig, uint16_t from,
		      void *opaque)
{
	struct ivl__tdev *d = opaque;
	struct sdmdev *s = d->priv;
	(void)sdm;
	if (s->count == HOLD) {
		lose(d, from, "no hg_vq buffers and the hold is full");
		return;
	}
	struct held *h = &s->hold[(s->head + s->count++) % HOLD];
	h->sig = *sig;
	h->from = from;
}

/* "unix:PATH" / "tcp:HOST:PORT" into @o (pointers into @buf). */
static int parse_channel(const char *spec, char *buf, size_t bufsz, struct ivl_sdm_opts *o)
{
	if (strlen(spec) >= bufsz)
		return -ENAMETOOLONG;
	strcpy(buf, spec);
	if (!strncmp(buf, "unix:", 5) && buf[5]) {
		o->channel = IVL_SDM_CHAN_UNIX;
		o->path = buf + 5;
		return 0;
	}
	char *colon = strrchr(buf, ':');
	if (strncmp(buf, "tcp:", 4) || !colon || colon < buf + 5)
		return -EINVAL;
	*colon = '\0';
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end || !colon[1] || port > 65535)
		return -EINVAL;
	o->channel = IVL_SDM_CHAN_TCP;
	o->host = buf + 4;
	o->port = (uint16_t)port;
	return 0;
}

static void sdm_fini(struct ivl__tdev *d)
{
	struct sdmdev *s = d->priv;
	if (!s)
		return;
	if (s->sdm)
		(void)ivl__mgmt_watch(d->m, ivl_sdm_get_fd(s->sdm), 0);
	ivl_sdm_free(s->sdm);
	free(s->hold);
	free(s->lost);
	free(s);
	d->priv = NULL;
}

/* Backpressure: read the channel only while the hold has room. */
static int set_reading(struct ivl__tdev *d, bool on)
{
	struct sdmdev *s = d->priv;
	if (s->reading == on)
		return 0;
	s->reading = on;
	return ivl__mgmt_watch(d->m, ivl_sdm_get_fd(s->sdm), on ? EPOLLIN : 0);
}

static void sdm_config_read(struct ivl__tdev *d)
{
	struct sdmdev *s = d->priv;
	struct ivl_sdm_config cfg;
	if (ivl_sdm_get_config(s->sdm, &cfg) < 0)
		return;
	d->config[0] = cfg.master;
	d->config[1] = 0;
	ivl__put16(d->config + 2, cfg.max_slaves);
	ivl__put16(d->config + 4, cfg.current_slaves);
}

static int sdm_init(struct ivl__tdev *d, const struct ivl_transport_create *c, const char *arg,
		    const struct ivl_transport_device_opts *mo)
{
	struct ivl_sdm_opts o = {0};
	if (arg || c->param[0] > IVL_TRANSPORT_SDM_MASTER || c->param[1] > IVL_SDM_MAX_SLAVES || c->param[2])
		return -EINVAL;
	o.master = c->param[0] == IVL_TRANSPORT_SDM_MASTER;
	if (o.master)
		o.max_slaves = (uint16_t)(c->param[1] ? c->param[1] : 8);
	else
		o.id = (uint16_t)c->param[1];
	struct sdmdev *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	d->priv = s;
	s->master = o.master;
	s->hold = calloc(HOLD, sizeof(*s->hold));
	s->lost = calloc(IVL_SDM_MAX_SLAVES + 1, sizeof(*s->lost));
	if (!s->hold || !s->lost) {
		sdm_fini(d);
		return -ENOMEM;
	}
	int r;
	if (mo->sdm_channel)
		r = parse_channel(mo->sdm_channel, s->chan, sizeof(s->chan), &o);
	else if (mo->sdm_bus) {
		o.channel = IVL_SDM_CHAN_LOCAL;
		o.bus = mo->sdm_bus;
		r = 0;
	} else
		r = -ENOTSUP;
	if (r == 0)
		r = ivl_sdm_new(&s->sdm, &o);
	for (uint32_t t = 0; r == 0 && t < IVL_SDM_NTYPES; t++)
		r = ivl_sdm_set_handler(s->sdm, t, on_signal, d);
	if (r == 0)
		r = set_reading(d, true);
	if (r < 0) {
		sdm_fini(d);
		return r == -ERANGE || r == -EINVAL ? -EINVAL : r;
	}
	snprintf(d->backend, sizeof(d->backend), "sdm-%s:%.50s", o.master ? "master" : "slave",
		 mo->sdm_channel ? mo->sdm_channel : "local");
	sdm_config_read(d);
	return 0;
}

/* The driver reset the device: signals still held have nobody to go to;
 * they are counted and reported like any other loss. */
static void sdm_reset(struct ivl__tdev *d)
{
	struct sdmdev *s = d->priv;
	uint32_t drop[IVL_SDM_MAX_SLAVES + 1] = {0};
	for (; s->count; s->count--, s->head = (s->head + 1) % HOLD) {
		uint16_t from = s->hold[s->head].from;
		from = from <= IVL_SDM_MAX_SLAVES ? from : 0;
		drop[from]++;
		s->lost[from]++;
	}
	s->head = 0;
	for (unsigned id = 0; id <= IVL_SDM_MAX_SLAVES; id++)
		if (drop[id])
			ivl__warn("transport: SDM device %llu: reset: %u signal%s from %u dropped "
				  "(%llu lost from it so far)",
				  (unsigned long long)d->id, drop[id], drop[id] == 1 ? "" : "s", id,
				  (unsigned long long)s->lost[id]);
}

static int sdm_serve(struct ivl__tdev *d)
{
	struct sdmdev *s = d->priv;
	struct iovec iov[8];
	struct ivl_virtq_elem e = {.iov = iov, .iov_max = 8};
	int n = 0;
	/* Backpressured: the channel is not read at all (on UNIX/TCP no
	 * keepalive goes out either, so a driver that posts no hg_vq buffer
	 * for three keepalive periods loses its connection, which the peers
	 * see as this SDM leaving). */
	if (s->reading) {
		(void)ivl_sdm_process(s->sdm);
		/* A slave joined or left: current_slaves changed, which the
		 * driver learns from a configuration change interrupt. */
		uint16_t before = ivl__le16(d->config + 4);
		sdm_config_read(d);
		if (ivl__le16(d->config + 4) != before)
			ivl__tdev_config_changed(d);
	}
	while (ivl__tdev_pop(d, GHQ, &e) == 1) {
		struct ivl_sdm_wire_signal w;
		int32_t res = -EINVAL;
		if (ivl__elem_read(&e, &w, sizeof(w)) == sizeof(w)) {
			struct ivl_sdm_signal sig = {
			    .type = ivl__le32(&w.type),
			    .slave = ivl__le32(&w.slave),
			    .payload = {ivl__le32(&w.payload[0]), ivl__le32(&w.payload[1])},
			};
			res = ivl_sdm_send(s->sdm, &sig);
		}
		uint8_t rb[IVL_TRANSPORT_SDM_RESULT_LEN];
		ivl__put32(rb, (uint32_t)res);
		ivl__tdev_done(d, GHQ, e.head, (uint32_t)ivl__elem_write(&e, rb, sizeof(rb)));
		n++;
	}
	while (s->count > 0 && ivl__tdev_pop(d, HGQ, &e) == 1) {
		const struct held *h = &s->hold[s->head];
		struct ivl_transport_sdm_rx w;
		ivl__put32(&w.sig.type, h->sig.type);
		/* The seed's `slave`: the destination (0 on a master). */
		ivl__put32(&w.sig.slave, s->master ? IVL_SDM_MASTER : h->sig.slave);
		ivl__put32(&w.sig.payload[0], h->sig.payload[0]);
		ivl__put32(&w.sig.payload[1], h->sig.payload[1]);
		ivl__put32(&w.from, h->from);
		size_t k = ivl__elem_write(&e, &w, e.in_len >= sizeof(w) ? sizeof(w) : IVL_SDM_SIGNAL_LEN);
		if (k < IVL_SDM_SIGNAL_LEN) /* the driver gave a buffer too small */
			ivl__info("transport: SDM device %llu: signal truncated to %zu bytes",
				  (unsigned long long)d->id, k);
		s->head = (s->head + 1) % HOLD;
		s->count--;
		ivl__tdev_done(d, HGQ, e.head, (uint32_t)k);
		n++;
	}
	(void)set_reading(d, s->count < HOLD_RESUME);
	return n;
}

static int sdm_timeout(struct ivl__tdev *d)
{
	struct sdmdev *s = d->priv;
	return ivl_sdm_timeout_ms(s->sdm);
}

/* max_slaves, on a master only. */
static bool sdm_writable(const struct ivl__tdev *d, uint32_t off, uint32_t len)
{
	const struct sdmdev *s = d->priv;
	return s->master && off == 2 && len == 2;
}

static int sdm_config_write(struct ivl__tdev *d, uint32_t off, uint32_t len)
{
	struct sdmdev *s = d->priv;
	(void)off;
	(void)len;
	int r = ivl_sdm_set_max_slaves(s->sdm, ivl__le16(d->config + 2));
	if (r < 0)
		ivl__info("transport: device %llu: max_slaves %u refused (%d)",
			  (unsigned long long)d->id, ivl__le16(d->config + 2), r);
	sdm_config_read(d); /* the value in effect */
	return r;
}

const struct ivl__tdev_type ivl__sdm_type = {
    .virtio_id = IVL_TRANSPORT_VIRTIO_SDM,
    .name = "sdm",
    .nqueues = 2,
    .config_size = sizeof(struct ivl_transport_sdm_config),
    .window_default = 65536,
    .init = sdm_init,
    .fini = sdm_fini,
    .reset = sdm_reset,
    .serve = sdm_serve,
    .timeout_ms = sdm_timeout,
    .config_read = sdm_config_read,
    .config_write = sdm_config_write,
    .config_writable = sdm_writable,
};
