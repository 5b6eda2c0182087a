/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the managed network's frame path (src/virtio/dev-net.c,
 * net-switch.c): three net devices on one switch, driven through their
 * rings in-process.  A transmits what the input says; B (MRG_RXBUF) and
 * C (without) give receive buffers of the sizes the input says.  Records
 * [op][le16 length][payload]:
 *   op 0: A transmits payload (header + frame) in 1..3 readable pieces,
 *         split at payload[0], payload[1]; op 4: the same with a writable
 *         piece after them
 *   op 1: B posts receive buffers, one per payload byte (size 1 + 8 * b)
 *   op 2: C posts the same
 *   op 3: serve, then take every used buffer back (length 0: a buffer
 *         too small for a header, given back unused)
 * Invariants: no crash or leak; the devices stay live (a hostile frame
 * never breaks them); a used receive length never exceeds its buffer; the
 * frames B and C get are frames A sent and the header check accepted, in
 * the order sent, none twice.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/transport.h>
#include <ivlink/virtq.h>

#include "fuzz.h"
#include "virtio/net-switch.h"

#define AREA (1u << 20)
#define WIN (256u << 10)
#define QN 64u
#define RXB 0x4000u  /* receive slot i at RXB + 2048 * i */
#define TXB 0x24000u /* transmit slot i at TXB + 2112 * i */
#define TXN 48u
#define SENT_MAX 256u

static uint8_t area[AREA] __attribute__((aligned(4096)));

struct dev {
	uint64_t id;
	uint8_t *win;
	struct ivl_virtq *q[2];
	size_t len[QN]; /* posted receive slots: their sizes (0: free) */
	size_t seen;	/* index into sent[] of the next frame it may get */
	unsigned tx_next, tx_out; /* transmit slots: next, in flight */
	uint8_t frame[65536];
	size_t flen, left; /* a frame being put together (MRG_RXBUF) */
};

static struct ivl_transport_device *m;
static uint8_t *sent[SENT_MAX];
static size_t sent_len[SENT_MAX], nsent;

static int deliver(void *o, uint32_t v, uint64_t a, uint32_t d)
{
	(void)o, (void)v, (void)a, (void)d;
	return 0;
}

static uint32_t cmd(uint64_t id, uint16_t cls, uint16_t c, const void *out, size_t len, void *in)
{
	uint8_t b[256], r[256];
	struct ivl_transport_cmd h = {.device_id = id, .class_ = cls, .command = c};
	memcpy(b, &h, sizeof(h));
	if (len)
		memcpy(b + sizeof(h), out, len);
	size_t n = ivl_transport_device_exec(m, b, sizeof(h) + len, r, sizeof(r));
	FUZZ_CHECK(n >= 4);
	if (in)
		memcpy(in, r + 4, n - 4);
	return r[0];
}

static bool make(struct dev *d, uint64_t features)
{
	uint8_t b[sizeof(struct ivl_transport_create) + 16] = {0};
	struct ivl_transport_create c = {.virtio_id = IVL_TRANSPORT_VIRTIO_NET, .window_size = WIN};
	struct ivl_transport_info info;
	memcpy(b, &c, sizeof(c));
	memcpy(b + sizeof(c), "switch:sw0", 11);
	if (cmd(0, IVL_TRANSPORT_CLASS_MGMT, IVL_TRANSPORT_MGMT_CREATE, b, sizeof(c) + 11, &info))
		return false;
	d->id = info.device_id;
	d->win = area + info.window_offset;
	uint32_t st = 3;
	features |= (1ull << 32) | IVL_VIRTQ_F_EVENT_IDX;
	bool ok = !cmd(d->id, IVL_TRANSPORT_CLASS_STATUS, IVL_TRANSPORT_STATUS_SET, &st, 4, NULL) &&
		  !cmd(d->id, IVL_TRANSPORT_CLASS_FEATURES, IVL_TRANSPORT_FEAT_SET_DRIVER, &features,
		       8, NULL);
	st = 11;
	ok = ok && !cmd(d->id, IVL_TRANSPORT_CLASS_STATUS, IVL_TRANSPORT_STATUS_SET, &st, 4, NULL);
	uint64_t off = 0;
	for (uint16_t q = 0; ok && q < 2; q++) {
		struct ivl_virtq_opts o = {.role = IVL_VIRTQ_DRIVER, .num = QN, .init = true,
					   .features = IVL_VIRTQ_F_EVENT_IDX};
		uint64_t sz = ivl_virtq_layout_default(QN, 0, off, &o.layout);
		struct ivl_transport_queue_val sq = {.queue = q, .value = QN}, en = {.queue = q, .value = 1};
		struct ivl_transport_queue_addr qa = {
		    .queue = q, .desc = o.layout.desc, .avail = o.layout.avail, .used = o.layout.used};
		ok = !cmd(d->id, IVL_TRANSPORT_CLASS_QUEUE, IVL_TRANSPORT_QUEUE_SET_SIZE, &sq, 8, NULL) &&
		     !cmd(d->id, IVL_TRANSPORT_CLASS_QUEUE, IVL_TRANSPORT_QUEUE_SET_ADDR, &qa, 32, NULL) &&
		     ivl_virtq_new(&d->q[q], d->win, WIN, &o) == 0 &&
		     !cmd(d->id, IVL_TRANSPORT_CLASS_QUEUE, IVL_TRANSPORT_QUEUE_ENABLE, &en, 8, NULL);
		off += (sz + 63) & ~63ull;
	}
	ok = ok && !cmd(d->id, IVL_TRANSPORT_CLASS_MSI, IVL_TRANSPORT_MSI_ENABLE, NULL, 0, NULL);
	st = 15;
	return ok && !cmd(d->id, IVL_TRANSPORT_CLASS_STATUS, IVL_TRANSPORT_STATUS_SET, &st, 4, NULL);
}

static bool live(const struct dev *d)
{
	uint32_t st = 0;
	cmd(d->id, IVL_TRANSPORT_CLASS_STATUS, IVL_TRANSPORT_STATUS_GET, NULL, 0, &st);
	return st == 15;
}

/* A whole frame arrived at @d: it must be a later frame A sent. */
static void got_frame(struct dev *d, const uint8_t *f, size_t len)
{
	size_t j = d->seen;
	while (j < nsent && (sent_len[j] != len || memcmp(sent[j], f, len)))
		j++;
	FUZZ_CHECK(j < nsent || nsent == SENT_MAX);
	d->seen = j + 1;
}

static void take_rx(struct dev *d, bool mrg)
{
	void *tok;
	uint32_t len;
	while (ivl_virtq_get_used(d->q[0], &tok, &len) == 1) {
		size_t i = (size_t)(uintptr_t)tok - 1;
		FUZZ_CHECK(i < QN && d->len[i] && len <= d->len[i]);
		d->len[i] = 0;
		const uint8_t *p = d->win + RXB + 2048 * i;
		if (!d->left && len == 0)
			continue; /* a buffer too small for a header, given back */
		if (!d->left) { /* the first buffer of a frame */
			/* Mergeable: the header may be all the first buffer holds. */
			FUZZ_CHECK(len >= IVL__NET_HDR_LEN + (mrg ? 0 : IVL__ETH_HLEN));
			unsigned nb = p[10] | p[11] << 8;
			FUZZ_CHECK(mrg ? nb >= 1 : nb == 1);
			d->left = nb;
			d->flen = 0;
			p += IVL__NET_HDR_LEN;
			len -= IVL__NET_HDR_LEN;
		}
		FUZZ_CHECK(d->flen + len <= sizeof(d->frame));
		memcpy(d->frame + d->flen, p, len);
		d->flen += len;
		if (--d->left == 0)
			got_frame(d, d->frame, d->flen);
	}
}

static void post(struct dev *d, const uint8_t *sizes, size_t n)
{
	for (size_t k = 0, i = 0; k < n; k++) {
		while (i < QN && d->len[i])
			i++;
		if (i == QN)
			return;
		struct iovec v = {d->win + RXB + 2048 * i, 1 + 8 * (size_t)sizes[k]};
		if (ivl_virtq_add(d->q[0], NULL, 0, &v, 1, (void *)(uintptr_t)(i + 1)) < 0)
			return;
		d->len[i] = v.iov_len;
	}
}

static void transmit(struct dev *a, const uint8_t *p, size_t n, bool writable)
{
	if (n < 2)
		return;
	size_t s1 = p[0] % (n - 1), s2 = s1 + p[1] % (n - 1 - s1 + 1);
	p += 2;
	n -= 2;
	s1 = s1 < n ? s1 : n;
	s2 = s2 < n ? s2 : n;
	if (a->tx_out == TXN)
		return;
	uint8_t *t = a->win + TXB + 2112 * a->tx_next;
	memcpy(t, p, n);
	struct iovec out[3], in = {t + n, 16};
	unsigned k = 0;
	if (s1)
		out[k++] = (struct iovec){t, s1};
	if (s2 > s1)
		out[k++] = (struct iovec){t + s1, s2 - s1};
	if (n > s2)
		out[k++] = (struct iovec){t + s2, n - s2};
	if (!k || ivl_virtq_add(a->q[1], out, k, &in, writable, (void *)1) < 0)
		return;
	a->tx_next = (a->tx_next + 1) % TXN;
	a->tx_out++;
	const uint8_t *f;
	size_t fl;
	if (!writable && nsent < SENT_MAX &&
	    ivl__net_tx_check(p, n, IVL__NET_MTU_DEFAULT, &f, &fl) == IVL__NET_OK) {
		sent[nsent] = malloc(fl);
		FUZZ_CHECK(sent[nsent]);
		memcpy(sent[nsent], f, fl);
		sent_len[nsent++] = fl;
	}
}

static void serve(struct dev *dv)
{
	int n = 0;
	do
		ivl_transport_device_process(m);
	while (ivl_transport_device_timeout_ms(m) == 0 && ++n < 64);
	void *tok;
	uint32_t len;
	while (ivl_virtq_get_used(dv[0].q[1], &tok, &len) == 1) {
		FUZZ_CHECK(len == 0);
		dv[0].tx_out--;
	}
	take_rx(&dv[1], true);
	take_rx(&dv[2], false);
	for (int i = 0; i < 3; i++)
		FUZZ_CHECK(live(&dv[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const sw[] = {"sw0"};
	static struct dev dv[3];
	struct ivl_transport_device_opts o = {.area = area,
					      .area_size = AREA,
					      .msi_deliver = deliver,
					      .net_switches = sw,
					      .n_net_switches = 1};
	if (ivl_transport_device_new(&m, &o) < 0)
		return 0;
	memset(dv, 0, sizeof(dv));
	nsent = 0;
	FUZZ_CHECK(make(&dv[0], 0) && make(&dv[1], 1ull << 15) && make(&dv[2], 0));
	size_t i = 0;
	while (i + 3 <= size) {
		uint8_t op = data[i];
		size_t len = (size_t)(data[i + 1] | data[i + 2] << 8);
		i += 3;
		len = len < size - i ? len : size - i;
		const uint8_t *p = data + i;
		i += len;
		switch (op % 5) {
		case 0:
		case 4:
			transmit(&dv[0], p, len < 2048 ? len : 2048, op % 5 == 4);
			break;
		case 1:
		case 2:
			post(&dv[op % 5], p, len);
			break;
		default:
			serve(dv);
		}
	}
	serve(dv);
	for (int k = 0; k < 3; k++)
		for (int q = 0; q < 2; q++)
			ivl_virtq_free(dv[k].q[q]);
	ivl_transport_device_free(m);
	for (size_t k = 0; k < nsent; k++)
		free(sent[k]);
	return 0;
}
