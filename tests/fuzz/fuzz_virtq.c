/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the device side of a split virtqueue (docs/virtio.md): the input
 * becomes the whole window (rings, indirect tables, buffers) of a ring whose
 * size, features (IN_ORDER included) and start index come from the first
 * bytes.  Whatever pop (or pop_many, in batches the input chooses) accepts
 * must point inside the window and respect the caller's iovec array;
 * whatever it refuses must leave the queue broken.  The driver side's
 * get_used (and, in order, a buffer pool's) reads the same hostile memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/mmio.h>
#include <ivlink/msi.h>
#include <ivlink/virtq.h>

#include "fuzz.h"

#define WIN 65536u
#define HDR 4

/* What pop / pop_many accepted: inside the window, within the caller's
 * iovec array, lengths that add up. */
static void check_elem(char *win, unsigned num, const struct ivl_virtq_elem *e, unsigned iov_max)
{
	FUZZ_CHECK(e->head < num);
	FUZZ_CHECK(e->out_num + e->in_num <= iov_max);
	uint64_t total = 0;
	for (unsigned i = 0; i < e->out_num + e->in_num; i++) {
		char *b = e->iov[i].iov_base;
		FUZZ_CHECK(b >= win && e->iov[i].iov_len <= WIN &&
			   (size_t)(b - win) <= WIN - e->iov[i].iov_len);
		total += e->iov[i].iov_len;
		/* Touch the piece: ASan checks the bounds for real. */
		if (e->iov[i].iov_len)
			(void)*(volatile char *)(b + e->iov[i].iov_len - 1);
	}
	FUZZ_CHECK(total == e->out_len + e->in_len && total <= UINT32_MAX);
}

#define BATCH 8

/* @batch 0: pop / push one by one; else pop_many / push_many of up to
 * @batch chains per call. */
static void device(char *win, unsigned num, uint64_t feat, uint16_t start, unsigned iov_max,
		   unsigned batch)
{
	struct ivl_virtq_opts o = {
	    .role = IVL_VIRTQ_DEVICE, .num = num, .features = feat, .start_idx = start};
	FUZZ_CHECK(ivl_virtq_layout_default(num, 0, 0, &o.layout) > 0);
	struct ivl_virtq *q;
	FUZZ_CHECK(ivl_virtq_new(&q, win, WIN, &o) == 0);
	static struct iovec iov[BATCH][64];
	struct ivl_virtq_elem e[BATCH];
	uint16_t heads[BATCH];
	uint32_t lens[BATCH];
	int popped = 0;
	/* More pops than the ring holds: the avail index bounds them. */
	for (unsigned k = 0; k < num + 4; k++) {
		for (unsigned i = 0; i < BATCH; i++)
			e[i] = (struct ivl_virtq_elem){.iov = iov[i], .iov_max = iov_max};
		int r = batch ? ivl_virtq_pop_many(q, e, batch) : ivl_virtq_pop(q, e);
		if (r == 0 || r == -ENOBUFS)
			break;
		if (r < 0) {
			FUZZ_CHECK(ivl_virtq_broken(q) == r);
			FUZZ_CHECK(ivl_virtq_pop(q, e) == -EIO);
			FUZZ_CHECK(ivl_virtq_pop_many(q, e, BATCH) == -EIO);
			break;
		}
		FUZZ_CHECK(r >= 1 && (unsigned)r <= (batch ? batch : 1));
		for (int i = 0; i < r; i++) {
			check_elem(win, num, &e[i], iov_max);
			heads[i] = e[i].head;
			lens[i] = (uint32_t)e[i].in_len;
		}
		popped += r;
		/* Good chains before a bad one are popped; the queue is then
		 * broken and takes nothing back. */
		int broken = ivl_virtq_broken(q);
		if (batch)
			FUZZ_CHECK(ivl_virtq_push_many(q, heads, lens, (unsigned)r) ==
				   (broken ? -EIO : r));
		else
			FUZZ_CHECK(ivl_virtq_push(q, heads[0], lens[0]) == (broken ? -EIO : 0));
		if (broken)
			break;
		if (k & 1)
			FUZZ_CHECK(ivl_virtq_flush(q) == 0);
	}
	if (!ivl_virtq_broken(q)) {
		FUZZ_CHECK(ivl_virtq_flush(q) == 0);
		FUZZ_CHECK(ivl_virtq_need_notify(q) >= 0);
		FUZZ_CHECK(ivl_virtq_enable_notify(q) >= 0);
		ivl_virtq_disable_notify(q);
	}
	/* More than num only if the queue stayed healthy and the driver's
	 * index moved on: it cannot here (the memory is fixed). */
	FUZZ_CHECK(popped <= (int)num);
	ivl_virtq_free(q);
}

static void driver(char *win, unsigned num, uint64_t feat, uint16_t start)
{
	struct ivl_virtq_opts o = {.role = IVL_VIRTQ_DRIVER,
				   .num = num,
				   .features = feat,
				   .start_idx = start,
				   .indirect_max = 4};
	FUZZ_CHECK(ivl_virtq_layout_default(num, 4, 0, &o.layout) > 0);
	struct ivl_virtq *q;
	if (ivl_virtq_new(&q, win, WIN, &o) < 0)
		return; /* indirect tables may not fit a large ring */
	/* One buffer in flight, then whatever the "device" wrote. */
	struct iovec v = {win + WIN - 64, 64};
	int head = ivl_virtq_add(q, &v, 1, NULL, 0, win);
	FUZZ_CHECK(head >= 0);
	void *tok;
	uint32_t len;
	for (unsigned k = 0; k < num + 2; k++) {
		/* With IN_ORDER, a length is read from the used element only
		 * when asked for: both ways. */
		int r = ivl_virtq_get_used(q, &tok, (k & 1) ? NULL : &len);
		if (r <= 0) {
			FUZZ_CHECK(r == 0 || ivl_virtq_broken(q) == r);
			break;
		}
		FUZZ_CHECK(tok == win);
	}
	(void)ivl_virtq_need_notify(q);
	ivl_virtq_free(q);
}

/* IN_ORDER: a pool of fixed buffers on the same hostile memory. */
static void pool_driver(char *win, unsigned num, uint64_t feat, uint16_t start)
{
	struct ivl_virtq_opts o = {
	    .role = IVL_VIRTQ_DRIVER, .num = num, .features = feat, .start_idx = start};
	FUZZ_CHECK(ivl_virtq_layout_default(num, 0, 0, &o.layout) > 0);
	struct ivl_virtq *q;
	FUZZ_CHECK(ivl_virtq_new(&q, win, WIN, &o) == 0);
	FUZZ_CHECK(ivl_virtq_pool_set(q, WIN / 2, 64) == 0);
	FUZZ_CHECK(ivl_virtq_pool_add(q, NULL, 2, false) == (num < 2 ? 1 : 2));
	unsigned total = 0, first;
	uint32_t lens[4];
	for (unsigned k = 0; k < num + 2; k++) {
		int r = ivl_virtq_pool_get_used(q, &first, (k & 1) ? NULL : lens, 4);
		if (r <= 0) {
			FUZZ_CHECK(r == 0 || ivl_virtq_broken(q) == r || r == -EIO);
			break;
		}
		FUZZ_CHECK(first == total % num);
		total += (unsigned)r;
		FUZZ_CHECK(total <= 2);
	}
	ivl_virtq_free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < HDR)
		return 0;
	unsigned num = 1u << (data[0] % 10); /* 1..512: rings fit the window */
	uint64_t feat = ((data[1] & 1) ? IVL_VIRTQ_F_INDIRECT_DESC : 0) |
			((data[1] & 2) ? IVL_VIRTQ_F_EVENT_IDX : 0) |
			((data[0] / 10u / (BATCH + 1)) & 1 ? IVL_VIRTQ_F_IN_ORDER : 0);
	unsigned iov_max = 1 + (data[1] >> 2) % 64;
	uint16_t start = (uint16_t)(data[2] | data[3] << 8);
	char *win = malloc(WIN);
	FUZZ_CHECK(win);
	size_t n = size - HDR < WIN ? size - HDR : WIN;
	memset(win, 0, WIN);
	memcpy(win, data + HDR, n);
	/* One by one, or in batches of 1..8 (the batch verbs share pop's and
	 * push's checks; the fuzzer reaches both the same way). */
	device(win, num, feat, start, iov_max, (data[0] / 10u) % (BATCH + 1));
	memset(win, 0, WIN);
	memcpy(win, data + HDR, n);
	driver(win, num, feat, start);
	if (feat & IVL_VIRTQ_F_IN_ORDER) {
		memset(win, 0, WIN);
		memcpy(win, data + HDR, n);
		pool_driver(win, num, feat, start);
	}
	free(win);
	return 0;
}
