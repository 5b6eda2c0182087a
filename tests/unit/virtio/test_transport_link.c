/* SPDX-License-Identifier: MIT */
/*
 * The transport virtqueue over a link (local backend): a device host in a
 * thread, drivers on other links of the same hub.  Commands travel on the
 * transport virtqueue, interrupts are MSI messages delivered as doorbells,
 * two drivers take turns on the queue, a managed console loops bytes back
 * and a managed SDM master talks to an SDM slave on the local bus.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "testutil.h"
#include <ivlink/hub.h>
#include <ivlink/link.h>
#include <ivlink/sdm.h>
#include <ivlink/transport.h>
#include <ivlink/mmio.h>
#include <ivlink/msi.h>
#include <ivlink/virtq.h>

#define AREA_OFF 65536u

struct host {
	struct ivl_link *link;
	struct ivl_transport_host *h;
	atomic_bool stop;
	int err;
};

static void *host_main(void *arg)
{
	struct host *hs = arg;
	struct pollfd p = {.fd = ivl_transport_host_get_fd(hs->h), .events = POLLIN};
	while (!atomic_load(&hs->stop)) {
		int t = ivl_transport_host_timeout_ms(hs->h);
		poll(&p, 1, t < 0 || t > 20 ? 20 : t);
		int r = ivl_transport_host_process(hs->h);
		if (r < 0) {
			hs->err = r;
			break;
		}
	}
	return NULL;
}

/* Wait (bounded) for a used buffer of @q, reading doorbells meanwhile. */
static int wait_used(struct ivl_link *l, struct ivl_virtq *q, void **tok, uint32_t *len)
{
	int64_t end = tu_now_ms() + 5000;
	while (tu_now_ms() < end) {
		int r = ivl_virtq_get_used(q, tok, len);
		if (r != 0)
			return r;
		struct ivl_link_event ev[8];
		ivl_link_wait(l, ev, 8, 20);
	}
	return -ETIMEDOUT;
}

struct world {
	struct ivl_hub *hub;
	struct ivl_sdm_bus *bus;
	struct host host;
	pthread_t thr;
	struct ivl_link *l1, *l2;
	struct ivl_transport_driver *d1, *d2;
};

static void world_up(struct world *w)
{
	memset(w, 0, sizeof(*w));
	assert_int_equal(ivl_hub_new(&w->hub, 4 << 20, 4, 4), 0);
	assert_int_equal(ivl_sdm_bus_new(&w->bus), 0);
	assert_int_equal(ivl_hub_join(w->hub, "host", &w->host.link), 0);
	assert_int_equal(ivl_hub_join(w->hub, "drv1", &w->l1), 0);
	assert_int_equal(ivl_hub_join(w->hub, "drv2", &w->l2), 0);
	struct ivl_transport_host_opts o = {.area_offset = AREA_OFF, .area_size = 2 << 20, .vector = 1};
	o.dev.sdm_bus = w->bus;
	assert_int_equal(ivl_transport_host_new(&w->host.h, w->host.link, &o), 0);
	assert_int_equal(pthread_create(&w->thr, NULL, host_main, &w->host), 0);
	struct ivl_transport_driver_opts d = {.area_offset = AREA_OFF, .area_size = 2 << 20, .vector = 2};
	assert_int_equal(ivl_transport_driver_new(&w->d1, w->l1, &d), 0);
	d.vector = 3;
	assert_int_equal(ivl_transport_driver_new(&w->d2, w->l2, &d), 0);
	/* Both drivers negotiated with device 0: TRANSPT_VQ accepted, DRIVER_OK. */
	{
		uint8_t b[8];

		assert_int_equal(ivl_transport_driver_cmd(w->d2, 0, IVL_TRANSPORT_CLASS_STATUS, IVL_TRANSPORT_STATUS_GET,
					      NULL, 0, b, 8, NULL),
				 4);
		assert_int_equal(b[0], 1 | 2 | 4 | 8);
		assert_int_equal(ivl_transport_driver_cmd(w->d1, 0, IVL_TRANSPORT_CLASS_FEATURES,
					      IVL_TRANSPORT_FEAT_GET_DRIVER, NULL, 0, b, 8, NULL),
				 8);
		assert_int_equal(b[7], 0x80); /* bit 63 */
	}
}

static void world_down(struct world *w)
{
	atomic_store(&w->host.stop, true);
	pthread_join(w->thr, NULL);
	assert_int_equal(w->host.err, 0);
	ivl_transport_driver_free(w->d1);
	ivl_transport_driver_free(w->d2);
	ivl_transport_host_free(w->host.h);
	ivl_link_free(w->host.link);
	ivl_link_free(w->l1);
	ivl_link_free(w->l2);
	ivl_sdm_bus_free(w->bus);
	ivl_hub_free(w->hub);
}

static void test_no_host(void **state)
{
	(void)state;
	struct ivl_hub *hub;
	struct ivl_link *l;
	struct ivl_transport_driver *d;
	assert_int_equal(ivl_hub_new(&hub, 1 << 20, 2, 2), 0);
	assert_int_equal(ivl_hub_join(hub, "x", &l), 0);
	struct ivl_transport_driver_opts o = {.timeout_ms = 100};
	assert_int_equal(ivl_transport_driver_new(&d, l, &o), -ENODEV);
	o.vector = 9;
	assert_int_equal(ivl_transport_driver_new(&d, l, &o), -EINVAL);
	ivl_link_free(l);
	ivl_hub_free(hub);
}

/* A host from before VIRTIO_F_TRANSPT_VQ was offered: it publishes the
 * control block and serves the transport queue, but answers FEATURES on
 * device 0 with ERR device-id (or, with @no_bit, OK without the bit). */
struct oldhost {
	struct ivl_link *link;
	uint8_t *area;
	bool no_bit;
	atomic_bool stop;
	int answered;
};

static void *oldhost_main(void *arg)
{
	struct oldhost *o = arg;
	struct ivl_transport_ctl *ctl = (struct ivl_transport_ctl *)o->area;
	struct ivl_virtq *q = NULL;
	uint32_t gen = 0;

	while (!atomic_load(&o->stop)) {
		struct ivl_link_event ev[8];
		struct iovec iov[4];
		struct ivl_virtq_elem e = {.iov = iov, .iov_max = 4};
		uint32_t g = __atomic_load_n(&ctl->generation, __ATOMIC_ACQUIRE);

		ivl_link_wait(o->link, ev, 8, 10);
		if (g && g != gen) {
			struct ivl_virtq_opts vo = {.role = IVL_VIRTQ_DEVICE, .num = IVL_TRANSPORT_RING_NUM};

			ivl_virtq_layout_default(IVL_TRANSPORT_RING_NUM, 0, 0, &vo.layout);
			ivl_virtq_free(q);
			q = NULL;
			gen = g;
			assert_int_equal(
			    ivl_virtq_new(&q, o->area + IVL_TRANSPORT_RING_OFF, IVL_TRANSPORT_TQ_WINDOW, &vo), 0);
		}
		while (q && ivl_virtq_pop(q, &e) == 1) {
			uint8_t ans[12] = {0};
			uint32_t n = 8;

			assert_int_equal(e.out_num, 1);
			assert_int_equal(e.in_num, 1);
			if (o->no_bit) {
				uint64_t f = 1ull << 32; /* VERSION_1 only */

				memcpy(ans + 4, &f, 8);
				n = 12;
			} else {
				ans[0] = IVL_TRANSPORT_ERR;
				ans[4] = IVL_TRANSPORT_E_DEVICE_ID;
			}
			memcpy(iov[1].iov_base, ans, n);
			assert_int_equal(ivl_virtq_push(q, e.head, n), 0);
			o->answered++;
		}
		if (q && ivl_virtq_flush(q) == 0)
			ivl_virtq_notify_link(q, o->link, ctl->driver_peer, ctl->driver_vector);
	}
	ivl_virtq_free(q);
	return NULL;
}

/* Seed 002: a management device MUST offer VIRTIO_F_TRANSPT_VQ; the
 * driver refuses one that does not. */
static void test_refuses_old_host(void **state)
{
	(void)state;
	for (int no_bit = 0; no_bit < 2; no_bit++) {
		struct ivl_hub *hub;
		struct ivl_link *drv;
		struct ivl_transport_driver *d = NULL;
		struct oldhost o = {.no_bit = no_bit};
		pthread_t t;
		uint64_t size;
		struct ivl_transport_ctl *ctl;

		assert_int_equal(ivl_hub_new(&hub, 4 << 20, 4, 4), 0);
		assert_int_equal(ivl_hub_join(hub, "old", &o.link), 0);
		assert_int_equal(ivl_hub_join(hub, "drv", &drv), 0);
		o.area = (uint8_t *)ivl_link_app_area(o.link, &size) + AREA_OFF;
		ctl = (struct ivl_transport_ctl *)o.area;
		memset(ctl, 0, sizeof(*ctl));
		ctl->version = IVL_TRANSPORT_VERSION;
		ctl->host_peer = (uint16_t)ivl_link_id(o.link);
		ctl->host_vector = 1;
		ctl->area_size = 2 << 20;
		__atomic_store_n(&ctl->magic, IVL_TRANSPORT_MAGIC, __ATOMIC_RELEASE);
		assert_int_equal(pthread_create(&t, NULL, oldhost_main, &o), 0);
		struct ivl_transport_driver_opts dopt = {
		    .area_offset = AREA_OFF, .area_size = 2 << 20, .vector = 2};
		assert_int_equal(ivl_transport_driver_new(&d, drv, &dopt), -EOPNOTSUPP);
		assert_null(d);
		atomic_store(&o.stop, true);
		pthread_join(t, NULL);
		assert_int_equal(o.answered, 1);
		ivl_link_free(drv);
		ivl_link_free(o.link);
		ivl_hub_free(hub);
	}
}

static void test_console(void **state)
{
	(void)state;
	struct world w;
	world_up(&w);
	struct ivl_transport_create c = {.virtio_id = IVL_TRANSPORT_VIRTIO_CONSOLE};
	struct ivl_transport_info info;
	uint32_t reason = 0;
	assert_int_equal(ivl_transport_driver_create(w.d1, &c, &info, &reason), 0);
	assert_int_equal(info.device_id, 1);
	assert_string_equal(info.backend, "loop");
	/* An invalid command is ERR with a reason, through the queue. */
	c.virtio_id = 99;
	assert_int_equal(ivl_transport_driver_create(w.d2, &c, NULL, &reason), -EREMOTEIO);
	assert_int_equal(reason, IVL_TRANSPORT_E_VIRTIO_ID);
	assert_int_equal(ivl_transport_driver_query(w.d1, 5, NULL, &reason), -EREMOTEIO);
	assert_int_equal(reason, IVL_TRANSPORT_E_NO_DEVICE);

	struct ivl_virtq *q[4] = {0};
	unsigned nq;
	void *bufv;
	uint64_t bsz;
	assert_int_equal(ivl_transport_driver_setup(w.d1, 1, 32, q, 4, &nq, &bufv, &bsz, &reason), 0);
	assert_int_equal(nq, 2);
	assert_true(bsz >= 8192);
	uint8_t *buf = bufv;
	/* 200 round trips of varying sizes through the loop backend. */
	uint32_t total = 0;
	for (int i = 0; i < 200; i++) {
		size_t n = 1 + (size_t)(i * 37) % 1000;
		for (size_t k = 0; k < n; k++)
			buf[4096 + k] = (uint8_t)(i + k);
		struct iovec rx = {buf, 2048}, tx = {buf + 4096, n};
		assert_true(ivl_virtq_add(q[0], NULL, 0, &rx, 1, (void *)1) >= 0);
		assert_true(ivl_virtq_add(q[1], &tx, 1, NULL, 0, (void *)2) >= 0);
		assert_true(ivl_transport_driver_kick(w.d1, q[0]) >= 0);
		assert_true(ivl_transport_driver_kick(w.d1, q[1]) >= 0);
		void *tok;
		uint32_t len;
		assert_int_equal(wait_used(w.l1, q[1], &tok, &len), 1);
		assert_int_equal(wait_used(w.l1, q[0], &tok, &len), 1);
		assert_int_equal(len, n);
		for (size_t k = 0; k < n; k++)
			assert_int_equal(buf[k], (uint8_t)(i + k));
		total += len;
	}
	assert_true(total > 0);
	/* The other driver takes its turn on the queue: list and destroy. */
	struct ivl_transport_list_entry e[4];
	assert_int_equal(ivl_transport_driver_list(w.d2, e, 4, &reason), 1);
	assert_int_equal(e[0].device_id, 1);
	assert_int_equal(e[0].status, 15);
	assert_int_equal(ivl_transport_driver_destroy(w.d2, 1, &reason), 0);
	assert_int_equal(ivl_transport_driver_list(w.d1, e, 4, &reason), 0);
	assert_int_equal(ivl_transport_driver_destroy(w.d1, 1, &reason), -EREMOTEIO);
	assert_int_equal(reason, IVL_TRANSPORT_E_NO_DEVICE);
	ivl_virtq_free(q[0]);
	ivl_virtq_free(q[1]);
	world_down(&w);
}

static struct ivl_sdm_signal got;
static int got_n;

static void on_sig(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, uint16_t from, void *o)
{
	(void)s;
	(void)from;
	(void)o;
	got = *sig;
	got_n++;
}

static void test_sdm(void **state)
{
	(void)state;
	struct world w;
	world_up(&w);
	struct ivl_transport_create c = {.virtio_id = IVL_TRANSPORT_VIRTIO_SDM, .param = {IVL_TRANSPORT_SDM_MASTER, 4}};
	struct ivl_transport_info info;
	uint32_t reason = 0;
	assert_int_equal(ivl_transport_driver_create(w.d1, &c, &info, &reason), 0);
	struct ivl_virtq *q[2];
	unsigned nq;
	void *bufv;
	uint64_t bsz;
	assert_int_equal(ivl_transport_driver_setup(w.d1, info.device_id, 16, q, 2, &nq, &bufv, &bsz, &reason),
			 0);
	uint8_t *buf = bufv;
	/* A slave on the same local bus. */
	struct ivl_sdm *slave;
	struct ivl_sdm_opts so = {.channel = IVL_SDM_CHAN_LOCAL, .bus = w.bus, .id = 1};
	assert_int_equal(ivl_sdm_new(&slave, &so), 0);
	assert_int_equal(ivl_sdm_set_handler(slave, IVL_SDM_IRQ, on_sig, NULL), 0);
	/* config: current_slaves = 1. */
	uint8_t cfg[8];
	struct ivl_transport_config_rw rw = {0, 6};
	assert_int_equal(ivl_transport_driver_cmd(w.d1, info.device_id, IVL_TRANSPORT_CLASS_CONFIG, IVL_TRANSPORT_CONFIG_READ,
				      &rw, 8, cfg, sizeof(cfg), &reason),
			 6);
	assert_int_equal(cfg[0], 1);
	assert_int_equal(cfg[2], 4);
	assert_int_equal(cfg[4], 1);
	/* Driver -> gh_vq -> master -> slave 1. */
	uint32_t sig[4] = {IVL_SDM_IRQ, 1, 0xabc, 0xdef};
	memcpy(buf, sig, 16);
	struct iovec out = {buf, 16}, res = {buf + 64, 4};
	assert_true(ivl_virtq_add(q[1], &out, 1, &res, 1, (void *)1) >= 0);
	assert_true(ivl_transport_driver_kick(w.d1, q[1]) >= 0);
	void *tok;
	uint32_t len;
	assert_int_equal(wait_used(w.l1, q[1], &tok, &len), 1);
	assert_int_equal(len, 4);
	int32_t rc;
	memcpy(&rc, buf + 64, 4);
	assert_int_equal(rc, 0);
	int64_t end = tu_now_ms() + 5000;
	while (got_n == 0 && tu_now_ms() < end) {
		struct pollfd p = {.fd = ivl_sdm_get_fd(slave), .events = POLLIN};
		poll(&p, 1, 20);
		ivl_sdm_process(slave);
	}
	assert_int_equal(got_n, 1);
	assert_int_equal(got.payload[0], 0xabc);
	/* A signal to an absent slave: the result says so. */
	sig[1] = 3;
	memcpy(buf, sig, 16);
	assert_true(ivl_virtq_add(q[1], &out, 1, &res, 1, (void *)1) >= 0);
	assert_true(ivl_transport_driver_kick(w.d1, q[1]) >= 0);
	assert_int_equal(wait_used(w.l1, q[1], &tok, &len), 1);
	memcpy(&rc, buf + 64, 4);
	assert_int_equal(rc, -ENOENT);
	/* Broadcast through the device (seed 000's mailbox): the result is
	 * the number of slaves reached. */
	got_n = 0;
	sig[0] = IVL_SDM_IRQ;
	sig[1] = IVL_SDM_ALL;
	sig[2] = 0x55;
	memcpy(buf, sig, 16);
	assert_true(ivl_virtq_add(q[1], &out, 1, &res, 1, (void *)1) >= 0);
	assert_true(ivl_transport_driver_kick(w.d1, q[1]) >= 0);
	assert_int_equal(wait_used(w.l1, q[1], &tok, &len), 1);
	memcpy(&rc, buf + 64, 4);
	assert_int_equal(rc, 1);
	end = tu_now_ms() + 5000;
	while (got_n == 0 && tu_now_ms() < end) {
		struct pollfd p = {.fd = ivl_sdm_get_fd(slave), .events = POLLIN};
		poll(&p, 1, 20);
		ivl_sdm_process(slave);
	}
	assert_int_equal(got_n, 1);
	assert_int_equal(got.slave, 1);
	assert_int_equal(got.payload[0], 0x55);
	/* Slave -> master -> hg_vq -> driver: `slave` as the seed says (0:
	 * the source is a slave); a 20-byte buffer also gets the sender. */
	struct iovec in = {buf + 128, 16};
	assert_true(ivl_virtq_add(q[0], NULL, 0, &in, 1, (void *)2) >= 0);
	assert_true(ivl_transport_driver_kick(w.d1, q[0]) >= 0);
	struct ivl_sdm_signal up = {.type = IVL_SDM_BOOT, .slave = 0, .payload = {7, 8}};
	assert_int_equal(ivl_sdm_send(slave, &up), 0);
	assert_int_equal(wait_used(w.l1, q[0], &tok, &len), 1);
	assert_int_equal(len, 16);
	memcpy(sig, buf + 128, 16);
	assert_int_equal(sig[0], IVL_SDM_BOOT);
	assert_int_equal(sig[1], 0);
	assert_int_equal(sig[2], 7);
	assert_int_equal(sig[3], 8);
	in.iov_len = 20;
	assert_true(ivl_virtq_add(q[0], NULL, 0, &in, 1, (void *)2) >= 0);
	assert_true(ivl_transport_driver_kick(w.d1, q[0]) >= 0);
	assert_int_equal(ivl_sdm_send(slave, &up), 0);
	assert_int_equal(wait_used(w.l1, q[0], &tok, &len), 1);
	assert_int_equal(len, 20);
	{
		uint32_t from;

		memcpy(&from, buf + 128 + 16, 4);
		assert_int_equal(from, 1);
	}

	/* No IPI is lost (virtio-SDM): with no hg_vq buffer the device holds
	 * the signals and, once its hold is busy, stops reading the channel:
	 * the slave's sends fail with -EAGAIN (backpressure).  Every signal
	 * the slave sent then reaches the driver, in order. */
	{
		struct ivl_sdm_signal seq = {.type = IVL_SDM_IRQ, .slave = 0};
		uint32_t sent = 0, seen = 0;
		int r = 0;

		for (unsigned tries = 0; tries < 2000000u; tries++) {
			seq.payload[0] = sent;
			r = ivl_sdm_send(slave, &seq);
			if (r == -EAGAIN)
				break;
			assert_int_equal(r, 0);
			sent++;
		}
		assert_int_equal(r, -EAGAIN);
		assert_true(sent > 64); /* the old device dropped beyond 64 */
		while (seen < sent) {
			struct iovec ins[16];
			unsigned k = 0;

			for (; k < 16; k++) {
				ins[k] = (struct iovec){buf + 1024 + 32 * k, 20};
				assert_true(ivl_virtq_add(q[0], NULL, 0, &ins[k], 1,
							  (void *)(uintptr_t)(k + 1)) >= 0);
			}
			assert_true(ivl_transport_driver_kick(w.d1, q[0]) >= 0);
			for (unsigned j = 0; j < k && seen < sent; j++) {
				uint32_t v[5];

				assert_int_equal(wait_used(w.l1, q[0], &tok, &len), 1);
				assert_int_equal(len, 20);
				memcpy(v, ins[(uintptr_t)tok - 1].iov_base, 20);
				assert_int_equal(v[2], seen);
				assert_int_equal(v[4], 1);
				seen++;
			}
			if (seen == sent)
				break;
		}
		assert_int_equal(seen, sent);
		/* The channel is read again: the next signal goes through. */
		seq.payload[0] = sent;
		assert_int_equal(ivl_sdm_send(slave, &seq), 0);
	}

	/* A config write the device does not take answers ERR: max_slaves 0
	 * on the master, anything on a slave device. */
	{
		uint8_t wr[10] = {2, 0, 0, 0, 2, 0, 0, 0, 0, 0};

		reason = 0;
		assert_int_equal(ivl_transport_driver_cmd(w.d1, info.device_id, IVL_TRANSPORT_CLASS_CONFIG,
					      IVL_TRANSPORT_CONFIG_WRITE, wr, 10, NULL, 0, &reason),
				 -EREMOTEIO);
		assert_int_equal(reason, IVL_TRANSPORT_E_VALUE);
		assert_int_equal(ivl_transport_driver_cmd(w.d1, info.device_id, IVL_TRANSPORT_CLASS_CONFIG,
					      IVL_TRANSPORT_CONFIG_READ, &rw, 8, cfg, sizeof(cfg), &reason),
				 6);
		assert_int_equal(cfg[2], 4); /* unchanged */
		wr[8] = 6;
		assert_int_equal(ivl_transport_driver_cmd(w.d1, info.device_id, IVL_TRANSPORT_CLASS_CONFIG,
					      IVL_TRANSPORT_CONFIG_WRITE, wr, 10, NULL, 0, &reason),
				 0);
	}

	/* A managed slave device (ID 2): the seed's `slave` is its own ID. */
	{
		struct ivl_transport_create cs = {.virtio_id = IVL_TRANSPORT_VIRTIO_SDM,
					   .param = {IVL_TRANSPORT_SDM_SLAVE, 2}};
		struct ivl_transport_info si;
		struct ivl_virtq *sq[2];
		void *sbufv;
		uint64_t sbsz;
		uint8_t wr[10] = {2, 0, 0, 0, 2, 0, 0, 0, 8, 0};

		assert_int_equal(ivl_transport_driver_create(w.d2, &cs, &si, &reason), 0);
		assert_int_equal(ivl_transport_driver_setup(w.d2, si.device_id, 16, sq, 2, &nq, &sbufv, &sbsz,
						&reason),
				 0);
		uint8_t *sbuf = sbufv;
		assert_int_equal(ivl_transport_driver_cmd(w.d2, si.device_id, IVL_TRANSPORT_CLASS_CONFIG,
					      IVL_TRANSPORT_CONFIG_WRITE, wr, 10, NULL, 0, &reason),
				 -EREMOTEIO);
		assert_int_equal(reason, IVL_TRANSPORT_E_VALUE);
		struct iovec sin = {sbuf + 128, 20};
		assert_true(ivl_virtq_add(sq[0], NULL, 0, &sin, 1, (void *)3) >= 0);
		assert_true(ivl_transport_driver_kick(w.d2, sq[0]) >= 0);
		uint32_t down[4] = {IVL_SDM_IRQ, 2, 0x77, 0x88};
		memcpy(buf, down, 16);
		assert_true(ivl_virtq_add(q[1], &out, 1, &res, 1, (void *)1) >= 0);
		assert_true(ivl_transport_driver_kick(w.d1, q[1]) >= 0);
		/* The slave device registers in the background: retry -ENOENT. */
		for (int k = 0; k < 250; k++) {
			assert_int_equal(wait_used(w.l1, q[1], &tok, &len), 1);
			memcpy(&rc, buf + 64, 4);
			if (rc != -ENOENT)
				break;
			poll(NULL, 0, 20);
			assert_true(ivl_virtq_add(q[1], &out, 1, &res, 1, (void *)1) >= 0);
			assert_true(ivl_transport_driver_kick(w.d1, q[1]) >= 0);
		}
		assert_int_equal(rc, 0);
		assert_int_equal(wait_used(w.l2, sq[0], &tok, &len), 1);
		assert_int_equal(len, 20);
		uint32_t v[5];
		memcpy(v, sbuf + 128, 20);
		assert_int_equal(v[0], IVL_SDM_IRQ);
		assert_int_equal(v[1], 2); /* before: 0, the sender */
		assert_int_equal(v[2], 0x77);
		assert_int_equal(v[4], 0);
		ivl_virtq_free(sq[0]);
		ivl_virtq_free(sq[1]);
	}
	ivl_sdm_free(slave);
	ivl_virtq_free(q[0]);
	ivl_virtq_free(q[1]);
	world_down(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_host),
	    cmocka_unit_test(test_refuses_old_host),
	    cmocka_unit_test(test_console),
	    cmocka_unit_test(test_sdm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
