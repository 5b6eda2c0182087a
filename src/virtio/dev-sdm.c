/* SPDX-License-Identifier: MIT */
/*
 * The managed SDM device (virtio device ID 21, PROTOCOLS.md §5), bridged to
 * the SDM library: each device is an SDM master or slave on the channel the
 * device host was started with (UNIX, TCP or a local bus).
 *
 *  - queue 0 hg_vq (device -> driver): each delivered signal fills one
 *    buffer with 16 bytes {le32 type, le32 slave, le32 payload[2]}; on a
 *    master `slave` is the sender's ID.  Signals wait (up to 64) for
 *    buffers; beyond that they are dropped (and logged).
 *  - queue 1 gh_vq (driver -> device): a buffer's first 16 readable bytes
 *    are a signal to send; if it has a writable part, the device writes the
 *    result there as le32 (0 or -errno of ivl_sdm_send()).
 *  - config {u8 master; u8 reserved; le16 max_slaves; le16 current_slaves};
 *    a master's driver may write max_slaves.
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
#define PENDING 64u

struct sdmdev {
	struct ivl_sdm *sdm;
	char chan[80];
	struct ivl_sdm_signal pend[PENDING];
	unsigned head, count;
};

static void on_signal(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig, uint16_t from,
		      void *opaque)
{
	struct ivl__tdev *d = opaque;
	struct sdmdev *s = d->priv;
	(void)sdm;
	if (s->count == PENDING) {
		ivl__info("transport: SDM device %llu: no buffers, signal dropped",
			  (unsigned long long)d->id);
		return;
	}
	struct ivl_sdm_signal *p = &s->pend[(s->head + s->count++) % PENDING];
	*p = *sig;
	p->slave = from;
}

/* "unix:PATH" / "tcp:HOST:PORT" into @o (pointers into @buf). */
static int parse_channel(const char *spec, char *buf, size_t bufsz, struct ivl_sdm_options *o)
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
	free(s);
	d->priv = NULL;
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

static int sdm_init(struct ivl__tdev *d, const struct ivl_tp_create *c,
		    const struct ivl_mgmt_opts *mo)
{
	struct ivl_sdm_options o = {0};
	if (c->param[0] > IVL_TP_SDM_MASTER || c->param[1] > IVL_SDM_MAX_SLAVES || c->param[2])
		return -EINVAL;
	o.master = c->param[0] == IVL_TP_SDM_MASTER;
	if (o.master)
		o.max_slaves = (uint16_t)(c->param[1] ? c->param[1] : 8);
	else
		o.id = (uint16_t)c->param[1];
	struct sdmdev *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	d->priv = s;
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
		r = ivl__mgmt_watch(d->m, ivl_sdm_get_fd(s->sdm), EPOLLIN);
	if (r < 0) {
		sdm_fini(d);
		return r == -ERANGE || r == -EINVAL ? -EINVAL : r;
	}
	snprintf(d->backend, sizeof(d->backend), "sdm-%s:%.50s", o.master ? "master" : "slave",
		 mo->sdm_channel ? mo->sdm_channel : "local");
	sdm_config_read(d);
	return 0;
}

static void sdm_reset(struct ivl__tdev *d)
{
	struct sdmdev *s = d->priv;
	s->count = 0;
}

static int sdm_serve(struct ivl__tdev *d)
{
	struct sdmdev *s = d->priv;
	struct iovec iov[8];
	struct ivl_virtq_elem e = {.iov = iov, .iov_max = 8};
	int n = 0;
	(void)ivl_sdm_process(s->sdm);
	while (ivl__tdev_pop(d, GHQ, &e) == 1) {
		uint8_t w[16];
		int32_t res = -EINVAL;
		if (ivl__elem_read(&e, w, sizeof(w)) == sizeof(w)) {
			struct ivl_sdm_signal sig = {
			    .type = ivl__le32(w),
			    .slave = ivl__le32(w + 4),
			    .payload = {ivl__le32(w + 8), ivl__le32(w + 12)},
			};
			res = ivl_sdm_send(s->sdm, &sig);
		}
		uint8_t rb[4];
		ivl__put32(rb, (uint32_t)res);
		ivl__tdev_done(d, GHQ, e.head, (uint32_t)ivl__elem_write(&e, rb, sizeof(rb)));
		n++;
	}
	while (s->count > 0 && ivl__tdev_pop(d, HGQ, &e) == 1) {
		const struct ivl_sdm_signal *sig = &s->pend[s->head];
		uint8_t w[16];
		ivl__put32(w, sig->type);
		ivl__put32(w + 4, sig->slave);
		ivl__put32(w + 8, sig->payload[0]);
		ivl__put32(w + 12, sig->payload[1]);
		size_t k = ivl__elem_write(&e, w, sizeof(w));
		if (k < sizeof(w)) /* the driver gave a buffer too small */
			ivl__info("transport: SDM device %llu: signal truncated to %zu bytes",
				  (unsigned long long)d->id, k);
		s->head = (s->head + 1) % PENDING;
		s->count--;
		ivl__tdev_done(d, HGQ, e.head, (uint32_t)k);
		n++;
	}
	return n;
}

static int sdm_timeout(struct ivl__tdev *d)
{
	struct sdmdev *s = d->priv;
	return ivl_sdm_timeout_ms(s->sdm);
}

static bool sdm_writable(uint32_t off, uint32_t len)
{
	return off == 2 && len == 2;
}

static void sdm_config_write(struct ivl__tdev *d, uint32_t off, uint32_t len)
{
	struct sdmdev *s = d->priv;
	(void)off;
	(void)len;
	if (ivl_sdm_set_max_slaves(s->sdm, ivl__le16(d->config + 2)) < 0)
		ivl__info("transport: device %llu: max_slaves refused", (unsigned long long)d->id);
	sdm_config_read(d); /* the value in effect */
}

const struct ivl__tdev_type ivl__sdm_type = {
    .virtio_id = IVL_TP_VIRTIO_SDM,
    .name = "sdm",
    .nqueues = 2,
    .config_size = sizeof(struct ivl_tp_sdm_config),
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
