/* SPDX-License-Identifier: MIT */
/*
 * Conformance of the virtio-mmio v2 model: the driver sequences of virtio
 * 1.x §3.1 and §4.2.3 (initialization, feature negotiation with the
 * FEATURES_OK re-read, queue setup, notifications, the single interrupt with
 * InterruptStatus/ACK) and the MSI registers of seed 004 (docs/virtio.md §4) in both
 * modes.  Invalid accesses must be ignored and counted.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include <ivlink/mmio.h>
#include <ivlink/msi.h>
#include <ivlink/virtq.h>

#define WIN (1u << 20)
#define GPA 0x40000000ull /* guest-physical address of the window */

enum {
	MAGIC = 0x000,
	VERSION = 0x004,
	DEVICE_ID = 0x008,
	VENDOR_ID = 0x00c,
	DEV_FEAT = 0x010,
	DEV_FEAT_SEL = 0x014,
	DRV_FEAT = 0x020,
	DRV_FEAT_SEL = 0x024,
	QSEL = 0x030,
	QNUM_MAX = 0x034,
	QNUM = 0x038,
	QREADY = 0x044,
	QNOTIFY = 0x050,
	ISR = 0x060,
	ACK = 0x064,
	STATUS = 0x070,
	QDESC_LO = 0x080,
	QDESC_HI = 0x084,
	QDRV_LO = 0x090,
	QDRV_HI = 0x094,
	QDEV_LO = 0x0a0,
	QDEV_HI = 0x0a4,
	MSI_NUM = 0x0c0,
	MSI_STATE = 0x0c4,
	MSI_CMD = 0x0c8,
	MSI_SEL = 0x0d0,
	MSI_ALO = 0x0d4,
	MSI_AHI = 0x0d8,
	MSI_DATA = 0x0dc,
	CFG_GEN = 0x0fc,
	CFG = 0x100,
};
enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8, S_NEEDS_RESET = 64 };
enum { C_ENABLE = 1, C_DISABLE, C_CONFIGURE, C_MASK, C_UNMASK, C_MAP_CONFIG, C_MAP_QUEUE };

struct fx {
	struct ivl_mmio *m;
	char *win;
	uint8_t config[16];
	int notified[4];
	int level, level_changes;
	int cfg_reads, cfg_writes;
	uint32_t last_status;
	int msis;
	uint32_t msi_vec[32];
	uint64_t msi_addr[32];
	uint32_t msi_data[32];
};

static void cb_notify(void *o, unsigned q)
{
	((struct fx *)o)->notified[q]++;
}
static void cb_level(void *o, bool level)
{
	struct fx *f = o;
	f->level = level;
	f->level_changes++;
}
static void cb_cfg_read(void *o, uint32_t off, unsigned size)
{
	((struct fx *)o)->cfg_reads++;
}
static void cb_cfg_write(void *o, uint32_t off, unsigned size)
{
	((struct fx *)o)->cfg_writes++;
}
static void cb_status(void *o, uint32_t s)
{
	((struct fx *)o)->last_status = s;
}
static int cb_msi(void *o, uint32_t vec, uint64_t addr, uint32_t data)
{
	struct fx *f = o;
	if (f->msis < 32) {
		f->msi_vec[f->msis] = vec;
		f->msi_addr[f->msis] = addr;
		f->msi_data[f->msis] = data;
	}
	f->msis++;
	return 0;
}

#define OFFERED ((1ull << 28) | (1ull << 29) | (1ull << 3))

static struct fx *fx_new(unsigned msi_vectors, bool sharing)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->win = aligned_alloc(4096, WIN);
	assert_non_null(f->win);
	memset(f->win, 0, WIN);
	for (int i = 0; i < 16; i++)
		f->config[i] = (uint8_t)(0x10 + i);
	struct ivl_mmio_opts o = {
	    .device_id = 21,
	    .vendor_id = 0x1af4,
	    .features = OFFERED,
	    .num_queues = 2,
	    .queue_num_max = 256,
	    .msi_vectors = msi_vectors,
	    .msi_sharing = sharing,
	    .window = f->win,
	    .window_size = WIN,
	    .window_base = GPA,
	    .config = f->config,
	    .config_size = sizeof(f->config),
	    .opaque = f,
	    .config_read = cb_cfg_read,
	    .config_write = cb_cfg_write,
	    .queue_notify = cb_notify,
	    .status_changed = cb_status,
	    .irq_level = cb_level,
	    .msi_deliver = cb_msi,
	};
	assert_int_equal(ivl_mmio_new(&f->m, &o), 0);
	return f;
}

static void fx_free(struct fx *f)
{
	ivl_mmio_free(f->m);
	free(f->win);
	free(f);
}

static uint32_t rd(struct fx *f, uint32_t off)
{
	return ivl_mmio_read(f->m, off, 4);
}
static void wr(struct fx *f, uint32_t off, uint32_t v)
{
	ivl_mmio_write(f->m, off, v, 4);
}
static struct ivl_mmio_stats stats(struct fx *f)
{
	struct ivl_mmio_stats s;
	ivl_mmio_get_stats(f->m, &s);
	return s;
}

/* §3.1.1 up to FEATURES_OK; returns the re-read status. */
static uint32_t negotiate(struct fx *f, uint64_t want)
{
	wr(f, STATUS, 0);
	assert_int_equal(rd(f, STATUS), 0);
	wr(f, STATUS, S_ACK);
	wr(f, STATUS, S_ACK | S_DRIVER);
	wr(f, DEV_FEAT_SEL, 0);
	uint64_t offered = rd(f, DEV_FEAT);
	wr(f, DEV_FEAT_SEL, 1);
	offered |= (uint64_t)rd(f, DEV_FEAT) << 32;
	assert_true(offered & (1ull << 32));
	wr(f, DRV_FEAT_SEL, 0);
	wr(f, DRV_FEAT, (uint32_t)want);
	wr(f, DRV_FEAT_SEL, 1);
	wr(f, DRV_FEAT, (uint32_t)(want >> 32));
	wr(f, STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	return rd(f, STATUS);
}

static void setup_queue(struct fx *f, unsigned q, unsigned num, struct ivl_virtq_layout *l)
{
	assert_true(ivl_virtq_layout_default(num, 0, 65536ull * (q + 1), l) > 0);
	wr(f, QSEL, q);
	assert_int_equal(rd(f, QREADY), 0);
	assert_true(rd(f, QNUM_MAX) >= num);
	wr(f, QNUM, num);
	uint64_t d = GPA + l->desc, a = GPA + l->avail, u = GPA + l->used;
	wr(f, QDESC_LO, (uint32_t)d);
	wr(f, QDESC_HI, (uint32_t)(d >> 32));
	wr(f, QDRV_LO, (uint32_t)a);
	wr(f, QDRV_HI, (uint32_t)(a >> 32));
	wr(f, QDEV_LO, (uint32_t)u);
	wr(f, QDEV_HI, (uint32_t)(u >> 32));
	wr(f, QREADY, 1);
	assert_int_equal(rd(f, QREADY), 1);
}

/* A driver-side ring for queue @q, initialized before QueueReady. */
static struct ivl_virtq *driver_q(struct fx *f, unsigned q, unsigned num, uint64_t feat)
{
	struct ivl_virtq_opts o = {
	    .role = IVL_VIRTQ_DRIVER, .num = num, .features = feat, .init = true};
	assert_true(ivl_virtq_layout_default(num, 0, 65536ull * (q + 1), &o.layout) > 0);
	struct ivl_virtq *vq;
	assert_int_equal(ivl_virtq_new(&vq, f->win, WIN, &o), 0);
	return vq;
}

/* A full init; returns the driver ring of queue 0. */
static struct ivl_virtq *init_device(struct fx *f, uint64_t feat)
{
	assert_int_equal(rd(f, MAGIC), 0x74726976);
	assert_int_equal(rd(f, VERSION), 2);
	assert_int_equal(rd(f, DEVICE_ID), 21);
	assert_int_equal(rd(f, VENDOR_ID), 0x1af4);
	assert_true(negotiate(f, feat) & S_FEATURES_OK);
	struct ivl_virtq *vq = driver_q(f, 0, 64, feat & ((1ull << 28) | (1ull << 29)));
	struct ivl_virtq_layout l;
	setup_queue(f, 0, 64, &l);
	wr(f, STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	assert_int_equal(rd(f, STATUS), S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	assert_int_equal(f->last_status, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	return vq;
}

/* One buffer through queue 0: add, notify, device serves, interrupt. */
static int one_request(struct fx *f, struct ivl_virtq *vq)
{
	struct iovec v = {f->win + WIN / 2, 8};
	assert_true(ivl_virtq_add(vq, &v, 1, NULL, 0, f) >= 0);
	int before = f->notified[0];
	if (ivl_virtq_need_notify(vq))
		wr(f, QNOTIFY, 0);
	assert_int_equal(f->notified[0], before + 1);
	struct ivl_virtq *dq = ivl_mmio_queue(f->m, 0);
	assert_non_null(dq);
	struct iovec iov[4];
	struct ivl_virtq_elem e = {.iov = iov, .iov_max = 4};
	assert_int_equal(ivl_virtq_pop(dq, &e), 1);
	assert_ptr_equal(iov[0].iov_base, f->win + WIN / 2);
	assert_int_equal(ivl_virtq_push(dq, e.head, 0), 0);
	assert_int_equal(ivl_virtq_flush(dq), 0);
	int r = ivl_mmio_notify_queue(f->m, 0);
	void *tok;
	uint32_t len;
	assert_int_equal(ivl_virtq_get_used(vq, &tok, &len), 1);
	assert_ptr_equal(tok, f);
	return r;
}

static void test_init_and_intx(void **state)
{
	struct fx *f = fx_new(0, false);
	struct ivl_virtq *vq = init_device(f, (1ull << 32) | (1ull << 3));
	assert_int_equal(ivl_mmio_driver_features(f->m), (1ull << 32) | (1ull << 3));
	assert_int_equal(rd(f, MSI_NUM), 0);
	assert_int_equal(rd(f, MSI_STATE), 0);
	/* Single interrupt: InterruptStatus bit 0, level up until ACKed. */
	assert_int_equal(one_request(f, vq), 1);
	assert_int_equal(rd(f, ISR), 1);
	assert_int_equal(f->level, 1);
	assert_int_equal(ivl_mmio_config_changed(f->m), 1);
	assert_int_equal(rd(f, ISR), 3);
	assert_int_equal(rd(f, CFG_GEN), 1);
	wr(f, ACK, 1);
	assert_int_equal(rd(f, ISR), 2);
	assert_int_equal(f->level, 1);
	wr(f, ACK, 2);
	assert_int_equal(rd(f, ISR), 0);
	assert_int_equal(f->level, 0);
	assert_int_equal(f->level_changes, 2);
	struct ivl_mmio_stats s = stats(f);
	assert_int_equal(s.bad_access, 0); /* MSI registers read 0 without MSI */
	assert_int_equal(s.bad_sequence, 0);
	/* Reset: everything back to zero, queues gone. */
	wr(f, STATUS, 0);
	assert_int_equal(rd(f, STATUS), 0);
	assert_int_equal(f->last_status, 0);
	assert_null(ivl_mmio_queue(f->m, 0));
	wr(f, QSEL, 0);
	assert_int_equal(rd(f, QREADY), 0);
	assert_int_equal(ivl_mmio_driver_features(f->m), 0);
	ivl_virtq_free(vq);
	fx_free(f);
}

static void test_features(void **state)
{
	struct fx *f = fx_new(0, false);
	/* Not offered: FEATURES_OK does not stick. */
	uint32_t s = negotiate(f, (1ull << 32) | (1ull << 5));
	assert_int_equal(s & S_FEATURES_OK, 0);
	assert_int_equal(stats(f).bad_sequence, 1);
	/* No VERSION_1 on a version 2 device: refused as well. */
	s = negotiate(f, 1ull << 3);
	assert_int_equal(s & S_FEATURES_OK, 0);
	/* DRIVER_OK without FEATURES_OK is ignored. */
	wr(f, STATUS, S_ACK | S_DRIVER | S_DRIVER_OK);
	assert_int_equal(rd(f, STATUS) & S_DRIVER_OK, 0);
	/* A good set; afterwards DriverFeatures is frozen. */
	s = negotiate(f, (1ull << 32) | (1ull << 28));
	assert_true(s & S_FEATURES_OK);
	uint64_t before = stats(f).bad_sequence;
	wr(f, DRV_FEAT_SEL, 0);
	wr(f, DRV_FEAT, 0xffffffff);
	assert_int_equal(stats(f).bad_sequence, before + 1);
	assert_int_equal(ivl_mmio_driver_features(f->m), (1ull << 32) | (1ull << 28));
	/* Clearing a status bit without a reset is ignored. */
	wr(f, STATUS, S_ACK);
	assert_true(rd(f, STATUS) & S_FEATURES_OK);
	/* Feature words beyond 63 read as 0. */
	wr(f, DEV_FEAT_SEL, 2);
	assert_int_equal(rd(f, DEV_FEAT), 0);
	fx_free(f);
}

static void test_queue_setup(void **state)
{
	struct fx *f = fx_new(0, false);
	/* QueueReady before FEATURES_OK: refused. */
	wr(f, QSEL, 0);
	wr(f, QNUM, 64);
	wr(f, QREADY, 1);
	assert_int_equal(rd(f, QREADY), 0);
	assert_true(negotiate(f, 1ull << 32) & S_FEATURES_OK);
	/* A queue that does not exist: QueueNumMax 0, writes ignored. */
	wr(f, QSEL, 5);
	assert_int_equal(rd(f, QNUM_MAX), 0);
	uint64_t bs = stats(f).bad_sequence;
	wr(f, QNUM, 64);
	wr(f, QREADY, 1);
	assert_int_equal(rd(f, QREADY), 0);
	assert_int_equal(stats(f).bad_sequence, bs + 2);
	/* QueueNum: too big, not a power of two. */
	wr(f, QSEL, 1);
	wr(f, QNUM, 512);
	wr(f, QNUM, 100);
	assert_int_equal(stats(f).bad_sequence, bs + 4);
	/* Addresses outside the window or below its base. */
	wr(f, QNUM, 64);
	wr(f, QDESC_LO, 0x1000);
	wr(f, QDESC_HI, 0);
	wr(f, QREADY, 1);
	assert_int_equal(rd(f, QREADY), 0);
	uint64_t far = GPA + WIN - 64;
	wr(f, QDESC_LO, (uint32_t)GPA);
	wr(f, QDRV_LO, (uint32_t)far);
	wr(f, QDEV_LO, (uint32_t)(GPA + 8192));
	wr(f, QREADY, 1);
	assert_int_equal(rd(f, QREADY), 0);
	assert_int_equal(stats(f).bad_sequence, bs + 6);
	/* A good queue; its registers are frozen while ready. */
	struct ivl_virtq_layout l;
	setup_queue(f, 1, 64, &l);
	assert_non_null(ivl_mmio_queue(f->m, 1));
	wr(f, QNUM, 32);
	assert_int_equal(stats(f).bad_sequence, bs + 7);
	/* QueueNotify of a queue that is not ready, or does not exist. */
	wr(f, QNOTIFY, 0);
	wr(f, QNOTIFY, 7);
	assert_int_equal(stats(f).bad_sequence, bs + 9);
	wr(f, QNOTIFY, 1);
	assert_int_equal(f->notified[1], 1);
	/* QueueReady 0 releases it. */
	wr(f, QREADY, 0);
	assert_int_equal(rd(f, QREADY), 0);
	assert_null(ivl_mmio_queue(f->m, 1));
	fx_free(f);
}

static void test_bad_access(void **state)
{
	struct fx *f = fx_new(4, false);
	assert_int_equal(ivl_mmio_read(f->m, MAGIC, 2), 0);
	assert_int_equal(ivl_mmio_read(f->m, MAGIC + 1, 4), 0);
	assert_int_equal(ivl_mmio_read(f->m, 0x0e0, 4), 0);   /* hole */
	assert_int_equal(ivl_mmio_read(f->m, MSI_CMD, 4), 0); /* write-only */
	assert_int_equal(ivl_mmio_read(f->m, ACK, 4), 0);
	assert_int_equal(ivl_mmio_read(f->m, CFG + 16, 1), 0); /* past config */
	assert_int_equal(ivl_mmio_read(f->m, CFG + 14, 4), 0);
	assert_int_equal(ivl_mmio_read(f->m, CFG, 8), 0);
	assert_int_equal(ivl_mmio_read(f->m, UINT64_MAX, 4), 0);
	assert_int_equal(stats(f).bad_access, 9);
	ivl_mmio_write(f->m, MAGIC, 1, 4);
	ivl_mmio_write(f->m, STATUS, 1, 1);
	ivl_mmio_write(f->m, QNUM_MAX, 1, 4);
	ivl_mmio_write(f->m, CFG + 15, 0xffff, 2);
	assert_int_equal(stats(f).bad_access, 13);
	assert_int_equal(rd(f, STATUS), 0);
	assert_int_equal(f->cfg_writes, 0);
	/* MSI command out of range. */
	wr(f, MSI_CMD, 99);
	wr(f, MSI_SEL, 4);
	wr(f, MSI_CMD, C_CONFIGURE);
	assert_int_equal(stats(f).bad_sequence, 2);
	fx_free(f);
}

static void test_config_space(void **state)
{
	struct fx *f = fx_new(0, false);
	assert_int_equal(ivl_mmio_read(f->m, CFG, 1), 0x10);
	assert_int_equal(ivl_mmio_read(f->m, CFG + 2, 2), 0x1312);
	assert_int_equal(ivl_mmio_read(f->m, CFG + 12, 4), 0x1f1e1d1c);
	assert_int_equal(f->cfg_reads, 3);
	ivl_mmio_write(f->m, CFG + 4, 0xaabbccdd, 4);
	assert_int_equal(f->config[4], 0xdd);
	assert_int_equal(f->config[7], 0xaa);
	assert_int_equal(f->cfg_writes, 1);
	/* The generation moves with every device-side change. */
	uint32_t g = rd(f, CFG_GEN);
	ivl_mmio_config_changed(f->m);
	assert_int_equal(rd(f, CFG_GEN), g + 1);
	assert_int_equal(stats(f).bad_access, 0);
	fx_free(f);
}

/* Configure vector @v with (peer, doorbell) = (100+v, v). */
static void msi_configure(struct fx *f, uint32_t v)
{
	wr(f, MSI_SEL, v);
	wr(f, MSI_ALO, 100 + v);
	wr(f, MSI_AHI, 1);
	wr(f, MSI_DATA, v);
	wr(f, MSI_CMD, C_CONFIGURE);
}

/* Seed 004's vector counts: non-sharing needs more vectors than queues,
 * sharing at least 2; anything else is refused at creation. */
static void test_msi_counts(void **state)
{
	struct ivl_mmio *m = NULL;
	struct ivl_mmio_opts o = {
	    .device_id = 21, .num_queues = 2, .queue_num_max = 16, .msi_vectors = 2};

	(void)state;
	assert_int_equal(ivl_mmio_new(&m, &o), -EINVAL);
	o.msi_sharing = true;
	o.msi_vectors = 1;
	assert_int_equal(ivl_mmio_new(&m, &o), -EINVAL);
	o.msi_vectors = 2;
	assert_int_equal(ivl_mmio_new(&m, &o), 0);
	ivl_mmio_free(m);
	o.msi_sharing = false;
	o.msi_vectors = 3;
	assert_int_equal(ivl_mmio_new(&m, &o), 0);
	ivl_mmio_free(m);
}

static void test_msi_non_sharing(void **state)
{
	struct fx *f = fx_new(3, false);
	struct ivl_virtq *vq = init_device(f, 1ull << 32);
	assert_int_equal(rd(f, MSI_NUM), 3);
	assert_int_equal(rd(f, MSI_STATE), 0);
	for (uint32_t v = 0; v < 3; v++)
		msi_configure(f, v);
	wr(f, MSI_CMD, C_ENABLE);
	assert_int_equal(rd(f, MSI_STATE), 1);
	/* Queue 0 -> vector 1; InterruptStatus untouched, ACK ignored. */
	assert_int_equal(one_request(f, vq), 1);
	assert_int_equal(f->msis, 1);
	assert_int_equal(f->msi_vec[0], 1);
	assert_int_equal(f->msi_addr[0], (1ull << 32) | 101);
	assert_int_equal(f->msi_data[0], 1);
	assert_int_equal(rd(f, ISR), 0);
	assert_int_equal(f->level_changes, 0);
	wr(f, ACK, 3);
	assert_int_equal(rd(f, ISR), 0);
	/* Config change -> vector 0. */
	assert_int_equal(ivl_mmio_config_changed(f->m), 1);
	assert_int_equal(f->msis, 2);
	assert_int_equal(f->msi_vec[1], 0);
	/* MAP_* to another vector are ignored (and counted) in non-sharing
	 * mode. */
	uint64_t bs = stats(f).bad_sequence;
	wr(f, MSI_SEL, 2);
	wr(f, MSI_CMD, C_MAP_CONFIG);
	wr(f, QSEL, 0);
	wr(f, MSI_CMD, C_MAP_QUEUE);
	assert_int_equal(stats(f).bad_sequence, bs + 2);
	assert_int_equal(ivl_mmio_config_changed(f->m), 1);
	assert_int_equal(f->msi_vec[2], 0);
	/* Seed 004: "Device MUST support unmapping any event type
	 * (NO_VECTOR)" -- in non-sharing mode too; the fixed vector maps the
	 * event back. */
	wr(f, MSI_SEL, IVL_MSI_NO_VECTOR);
	wr(f, QSEL, 0);
	wr(f, MSI_CMD, C_MAP_QUEUE);
	wr(f, MSI_CMD, C_MAP_CONFIG);
	assert_int_equal(stats(f).bad_sequence, bs + 2);
	assert_int_equal(one_request(f, vq), 0);
	assert_int_equal(ivl_mmio_config_changed(f->m), 0);
	assert_int_equal(f->msis, 3);
	assert_int_equal(rd(f, ISR), 0);
	wr(f, MSI_SEL, 1);
	wr(f, MSI_CMD, C_MAP_QUEUE);
	wr(f, MSI_SEL, 0);
	wr(f, MSI_CMD, C_MAP_CONFIG);
	assert_int_equal(stats(f).bad_sequence, bs + 2);
	assert_int_equal(one_request(f, vq), 1);
	assert_int_equal(f->msi_vec[3], 1);
	f->msis = 3; /* the checks below count from the interrupts before */
	/* Masked then unmasked: the interrupt arrives exactly once. */
	wr(f, MSI_SEL, 1);
	wr(f, MSI_CMD, C_MASK);
	assert_int_equal(one_request(f, vq), 1);
	assert_int_equal(one_request(f, vq), 1);
	assert_int_equal(f->msis, 3);
	struct ivl_msi_vector mv;
	assert_int_equal(ivl_msi_get(ivl_mmio_msi(f->m), 1, &mv), 0);
	assert_true(mv.masked && mv.pending);
	wr(f, MSI_CMD, C_UNMASK);
	assert_int_equal(f->msis, 4);
	assert_int_equal(f->msi_vec[3], 1);
	wr(f, MSI_CMD, C_UNMASK);
	assert_int_equal(f->msis, 4);
	/* DISABLE falls back to the single interrupt. */
	wr(f, MSI_CMD, C_DISABLE);
	assert_int_equal(rd(f, MSI_STATE), 0);
	assert_int_equal(one_request(f, vq), 1);
	assert_int_equal(rd(f, ISR), 1);
	assert_int_equal(f->msis, 4);
	wr(f, ACK, 1);
	/* Reset clears msi_enabled; the next setup starts from the fallback. */
	wr(f, MSI_CMD, C_ENABLE);
	assert_int_equal(rd(f, MSI_STATE), 1);
	ivl_virtq_free(vq);
	wr(f, STATUS, 0);
	assert_int_equal(rd(f, MSI_STATE), 0);
	assert_int_equal(ivl_msi_get(ivl_mmio_msi(f->m), 1, &mv), 0);
	assert_int_equal(mv.address, 0);
	vq = init_device(f, 1ull << 32);
	assert_int_equal(one_request(f, vq), 1);
	assert_int_equal(rd(f, ISR), 1);
	assert_int_equal(f->msis, 4);
	ivl_virtq_free(vq);
	fx_free(f);
}

static void test_msi_sharing(void **state)
{
	struct fx *f = fx_new(2, true);
	struct ivl_virtq *vq = init_device(f, 1ull << 32);
	assert_int_equal(rd(f, MSI_NUM), 2);
	assert_int_equal(rd(f, MSI_STATE), 2);
	msi_configure(f, 0);
	msi_configure(f, 1);
	wr(f, MSI_CMD, C_ENABLE);
	assert_int_equal(rd(f, MSI_STATE), 3);
	/* Unmapped: no interrupt at all, and no InterruptStatus either. */
	assert_int_equal(one_request(f, vq), 0);
	assert_int_equal(f->msis, 0);
	assert_int_equal(rd(f, ISR), 0);
	/* Config and queue 0 share vector 1; queue 1 on vector 0. */
	wr(f, MSI_SEL, 1);
	wr(f, MSI_CMD, C_MAP_CONFIG);
	wr(f, QSEL, 0);
	wr(f, MSI_CMD, C_MAP_QUEUE);
	wr(f, MSI_SEL, 0);
	wr(f, QSEL, 1);
	wr(f, MSI_CMD, C_MAP_QUEUE);
	assert_int_equal(ivl_msi_queue_vector(ivl_mmio_msi(f->m), 1), 0);
	assert_int_equal(one_request(f, vq), 1);
	assert_int_equal(ivl_mmio_config_changed(f->m), 1);
	assert_int_equal(f->msis, 2);
	assert_int_equal(f->msi_vec[0], 1);
	assert_int_equal(f->msi_vec[1], 1);
	assert_int_equal(f->msi_data[1], 1);
	/* Out-of-range vector: ignored and counted; NO_VECTOR unmaps. */
	uint64_t bs = stats(f).bad_sequence;
	wr(f, MSI_SEL, 2);
	wr(f, MSI_CMD, C_MAP_CONFIG);
	assert_int_equal(stats(f).bad_sequence, bs + 1);
	assert_int_equal(ivl_msi_config_vector(ivl_mmio_msi(f->m)), 1);
	wr(f, MSI_SEL, 0xffffffff);
	wr(f, MSI_CMD, C_MAP_CONFIG);
	assert_int_equal(ivl_mmio_config_changed(f->m), 0);
	assert_int_equal(f->msis, 2);
	/* Masked shared vector: two events, one delivery on unmask. */
	wr(f, MSI_SEL, 1);
	wr(f, MSI_CMD, C_MASK);
	assert_int_equal(one_request(f, vq), 1);
	assert_int_equal(one_request(f, vq), 1);
	assert_int_equal(f->msis, 2);
	wr(f, MSI_CMD, C_UNMASK);
	assert_int_equal(f->msis, 3);
	wr(f, MSI_CMD, C_UNMASK);
	assert_int_equal(f->msis, 3);
	/* Device needs reset: status bit and a config event (unmapped now,
	 * so nothing delivered), then reset clears both. */
	assert_int_equal(ivl_mmio_needs_reset(f->m), 0);
	assert_true(rd(f, STATUS) & S_NEEDS_RESET);
	wr(f, STATUS, 0);
	assert_int_equal(rd(f, STATUS), 0);
	assert_int_equal(rd(f, MSI_STATE), 2);
	assert_int_equal(ivl_msi_queue_vector(ivl_mmio_msi(f->m), 0), IVL_MSI_NO_VECTOR);
	ivl_virtq_free(vq);
	fx_free(f);
}

static void test_event_idx_through_mmio(void **state)
{
	/* EVENT_IDX negotiated through the registers reaches the ring. */
	struct fx *f = fx_new(0, false);
	struct ivl_virtq *vq = init_device(f, (1ull << 32) | (1ull << 29));
	assert_int_equal(ivl_virtq_enable_notify(vq), 0);
	assert_int_equal(one_request(f, vq), 1);
	wr(f, ACK, 1);
	/* The driver stops asking: the event it armed last fires once, then
	 * used_event stays behind and nothing more comes. */
	ivl_virtq_disable_notify(vq);
	assert_int_equal(one_request(f, vq), 1);
	wr(f, ACK, 1);
	assert_int_equal(one_request(f, vq), 0);
	assert_int_equal(one_request(f, vq), 0);
	assert_int_equal(rd(f, ISR), 0);
	ivl_virtq_free(vq);
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_init_and_intx), cmocka_unit_test(test_features),
	    cmocka_unit_test(test_queue_setup),	  cmocka_unit_test(test_bad_access),
	    cmocka_unit_test(test_config_space),  cmocka_unit_test(test_msi_counts), cmocka_unit_test(test_msi_non_sharing),
	    cmocka_unit_test(test_msi_sharing),	  cmocka_unit_test(test_event_idx_through_mmio),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
