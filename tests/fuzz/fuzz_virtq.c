/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the device side of a split virtqueue (docs/virtio.md): the input
 * becomes the whole window (rings, indirect tables, buffers) of a ring whose
 * size, features and start index come from the first bytes.  Whatever pop
 * accepts must point inside the window and respect the caller's iovec
 * array; whatever it refuses must leave the queue broken.  The driver side's
 * get_used reads the same hostile memory.
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

static void device(char *win, unsigned num, uint64_t feat, uint16_t start, unsigned iov_max)
{
	struct ivl_virtq_opts o = {
	    .role = IVL_VIRTQ_DEVICE, .num = num, .features = feat, .start_idx = start};
	FUZZ_CHECK(ivl_virtq_layout_default(num, 0, 0, &o.layout) > 0);
	struct ivl_virtq *q;
	FUZZ_CHECK(ivl_virtq_new(&q, win, WIN, &o) == 0);
	struct iovec iov[64];
	int popped = 0;
	/* More pops than the ring holds: the avail index bounds them. */
	for (unsigned k = 0; k < num + 4; k++) {
		struct ivl_virtq_elem e = {.iov = iov, .iov_max = iov_max};
		int r = ivl_virtq_pop(q, &e);
		if (r == 0 || r == -ENOBUFS)
			break;
		if (r < 0) {
			FUZZ_CHECK(ivl_virtq_broken(q) == r);
			FUZZ_CHECK(ivl_virtq_pop(q, &e) == -EIO);
			break;
		}
		FUZZ_CHECK(r == 1 && e.head < num);
		FUZZ_CHECK(e.out_num + e.in_num <= iov_max);
		uint64_t total = 0;
		for (unsigned i = 0; i < e.out_num + e.in_num; i++) {
			char *b = iov[i].iov_base;
			FUZZ_CHECK(b >= win && iov[i].iov_len <= WIN &&
				   (size_t)(b - win) <= WIN - iov[i].iov_len);
			total += iov[i].iov_len;
			/* Touch the piece: ASan checks the bounds for real. */
			if (iov[i].iov_len)
				(void)*(volatile char *)(b + iov[i].iov_len - 1);
		}
		FUZZ_CHECK(total == e.out_len + e.in_len && total <= UINT32_MAX);
		popped++;
		FUZZ_CHECK(ivl_virtq_push(q, e.head, (uint32_t)e.in_len) == 0);
		if (k & 1)
			FUZZ_CHECK(ivl_virtq_flush(q) == 0);
	}
	if (!ivl_virtq_broken(q)) {
		FUZZ_CHECK(ivl_virtq_flush(q) == 0);
		FUZZ_CHECK(ivl_virtq_need_notify(q) >= 0);
		FUZZ_CHECK(ivl_virtq_enable_notify(q) >= 0);
		ivl_virtq_disable_notify(q);
	}
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
		int r = ivl_virtq_get_used(q, &tok, &len);
		if (r <= 0) {
			FUZZ_CHECK(r == 0 || ivl_virtq_broken(q) == r);
			break;
		}
		FUZZ_CHECK(tok == win);
	}
	(void)ivl_virtq_need_notify(q);
	ivl_virtq_free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < HDR)
		return 0;
	unsigned num = 1u << (data[0] % 10); /* 1..512: rings fit the window */
	uint64_t feat = ((data[1] & 1) ? IVL_VIRTQ_F_INDIRECT_DESC : 0) |
			((data[1] & 2) ? IVL_VIRTQ_F_EVENT_IDX : 0);
	unsigned iov_max = 1 + (data[1] >> 2) % 64;
	uint16_t start = (uint16_t)(data[2] | data[3] << 8);
	char *win = malloc(WIN);
	FUZZ_CHECK(win);
	size_t n = size - HDR < WIN ? size - HDR : WIN;
	memset(win, 0, WIN);
	memcpy(win, data + HDR, n);
	device(win, num, feat, start, iov_max);
	memset(win, 0, WIN);
	memcpy(win, data + HDR, n);
	driver(win, num, feat, start);
	free(win);
	return 0;
}
