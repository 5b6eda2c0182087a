/* SPDX-License-Identifier: MIT */
/*
 * The managed entropy device (virtio-rng, device ID 4): one queue,
 * requestq (driver -> device, device-writable buffers).  Every writable
 * byte of a buffer is filled from getrandom(2) (the kernel's CSPRNG); the
 * used length is the number of bytes written.  No feature bits, no
 * configuration space, no backend argument, no parameters.
 *
 * Chains are hostile input: the ring layer refuses pieces outside the
 * device's window (and breaks this device only); a chain with readable
 * pieces is a driver error and is given back with 0 bytes written (and
 * counted), as is a chain with nothing writable.  getrandom() is called
 * with GRND_NONBLOCK: before the host's pool is initialised the buffer
 * waits and is retried after RETRY_MS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include "core/internal.h"
#include "transport-internal.h"

#define REQQ 0u
#define IOV_MAX_ 16u
#define RETRY_MS 50
/* Chains served per ivl_transport_device_process(): the others wait for
 * the next round, so one device cannot hold the loop. */
#define BATCH 64

struct rng {
	struct iovec iov[IOV_MAX_];
	struct ivl_virtq_elem held; /* waiting for the pool */
	bool have_held, starved, more;
	uint64_t bytes, bad;
};

static int rng_init(struct ivl__tdev *d, const struct ivl_transport_create *c, const char *arg,
		    const struct ivl_transport_device_opts *o)
{
	(void)o;
	if (arg || c->param[0] || c->param[1] || c->param[2])
		return -EINVAL;
	struct rng *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->held.iov = r->iov;
	r->held.iov_max = IOV_MAX_;
	d->priv = r;
	snprintf(d->backend, sizeof(d->backend), "getrandom");
	return 0;
}

static void rng_fini(struct ivl__tdev *d)
{
	free(d->priv);
	d->priv = NULL;
}

static void rng_reset(struct ivl__tdev *d)
{
	struct rng *r = d->priv;
	r->have_held = r->starved = false;
}

/* Fill the writable pieces of @e; the bytes written, or -EAGAIN when the
 * pool is not ready yet (nothing written). */
static ssize_t fill(const struct ivl_virtq_elem *e)
{
	size_t n = 0;
	for (unsigned i = e->out_num; i < e->out_num + e->in_num; i++) {
		uint8_t *p = e->iov[i].iov_base;
		size_t left = e->iov[i].iov_len;
		while (left) {
			ssize_t k = getrandom(p, left, GRND_NONBLOCK);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0 && errno == EAGAIN && n == 0)
				return -EAGAIN;
			if (k <= 0) /* EAGAIN midway (the pool cannot un-initialise) */
				return (ssize_t)n;
			p += k;
			left -= (size_t)k;
			n += (size_t)k;
		}
	}
	return (ssize_t)n;
}

static int rng_serve(struct ivl__tdev *d)
{
	struct rng *r = d->priv;
	int served = 0;
	if (!ivl__tdev_queue(d, REQQ))
		r->have_held = false; /* the queue went away with its buffers */
	r->starved = r->more = false;
	while (served < BATCH) {
		if (!r->have_held) {
			if (ivl__tdev_pop(d, REQQ, &r->held) != 1)
				break;
			r->have_held = true;
		}
		ssize_t n = 0;
		if (r->held.out_num || !r->held.in_len) {
			r->bad++;
			ivl__debug("transport: rng %llu: chain %u without writable-only pieces "
				   "(%llu so far)",
				   (unsigned long long)d->id, r->held.head, (unsigned long long)r->bad);
		} else if ((n = fill(&r->held)) < 0) {
			r->starved = true;
			break;
		}
		r->have_held = false;
		r->bytes += (uint64_t)n;
		ivl__tdev_done(d, REQQ, r->held.head, (uint32_t)n);
		served++;
	}
	r->more = served == BATCH;
	return served;
}

static int rng_timeout(struct ivl__tdev *d)
{
	const struct rng *r = d->priv;
	if (r->more)
		return 0; /* BATCH served, more may wait */
	return r->starved && r->have_held ? RETRY_MS : -1;
}

const struct ivl__tdev_type ivl__rng_type = {
    .virtio_id = IVL_TRANSPORT_VIRTIO_RNG,
    .name = "rng",
    .nqueues = 1,
    .config_size = 0,
    .window_default = 65536,
    .init = rng_init,
    .fini = rng_fini,
    .reset = rng_reset,
    .serve = rng_serve,
    .timeout_ms = rng_timeout,
};
