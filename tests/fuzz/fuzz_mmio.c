/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the virtio-mmio model: the input is a sequence of 8-byte operations
 * [kind][offset lo][offset hi][size][value le32] - guest reads and writes
 * at any offset and size, pokes into the window (so ready queues see hostile
 * rings), and device-side actions (serve a queue, config change, needs
 * reset).  Invariants: no crash, callbacks stay inside the config space,
 * InterruptStatus never grows while MSI is enabled.
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
#define CFG 24u

static uint8_t config[CFG];

static void cfg_cb(void *o, uint32_t off, unsigned size)
{
	FUZZ_CHECK(off < CFG && size <= CFG - off);
}

static int deliver(void *o, uint32_t vec, uint64_t addr, uint32_t data)
{
	FUZZ_CHECK(vec < 8);
	return (data & 0xff) == 0xee ? -EAGAIN : 0;
}

static void serve(struct ivl_mmio *m, unsigned q)
{
	struct ivl_virtq *vq = ivl_mmio_queue(m, q);
	if (!vq)
		return;
	struct iovec iov[8];
	for (int k = 0; k < 4; k++) {
		struct ivl_virtq_elem e = {.iov = iov, .iov_max = 8};
		int r = ivl_virtq_pop(vq, &e);
		if (r <= 0) {
			if (r < 0 && r != -ENOBUFS)
				ivl_mmio_needs_reset(m);
			break;
		}
		ivl_virtq_push(vq, e.head, 0);
	}
	ivl_virtq_flush(vq);
	ivl_mmio_notify_queue(m, q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *win = calloc(1, WIN);
	FUZZ_CHECK(win);
	memset(config, 0, sizeof(config));
	uint8_t mode = size ? data[0] : 0;
	struct ivl_mmio_opts o = {
	    .device_id = 21,
	    .features = (1ull << 28) | (1ull << 29),
	    .num_queues = 2,
	    .queue_num_max = 64,
	    .msi_vectors = (mode & 1) ? 8 : 0,
	    .msi_sharing = mode & 2,
	    .window = win,
	    .window_size = WIN,
	    .window_base = 0x10000,
	    .config = config,
	    .config_size = CFG,
	    .config_read = cfg_cb,
	    .config_write = cfg_cb,
	    .msi_deliver = deliver,
	};
	struct ivl_mmio *m;
	FUZZ_CHECK(ivl_mmio_new(&m, &o) == 0);
	uint32_t isr = 0;
	for (size_t i = 1; i + 8 <= size; i += 8) {
		const uint8_t *p = data + i;
		uint32_t off = (uint32_t)(p[1] | p[2] << 8) & 0x1ff;
		unsigned sz = p[3] % 9;
		uint32_t v = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
			     (uint32_t)p[7] << 24;
		switch (p[0] % 8) {
		case 0:
		case 1:
			(void)ivl_mmio_read(m, off, sz);
			break;
		case 2:
		case 3:
			ivl_mmio_write(m, off, v, sz);
			break;
		case 4: /* poke the window */
			memcpy(win + ((uint32_t)(p[1] | p[2] << 8) & (WIN - 4)), &v, 4);
			break;
		case 5:
			serve(m, p[1] & 1);
			break;
		case 6:
			ivl_mmio_config_changed(m);
			break;
		case 7:
			ivl_mmio_needs_reset(m);
			break;
		}
		uint32_t now = ivl_mmio_read(m, 0x060, 4);
		if (ivl_msi_enabled(ivl_mmio_msi(m)))
			FUZZ_CHECK((now & ~isr) == 0);
		isr = now;
		FUZZ_CHECK(ivl_mmio_read(m, 0x000, 4) == IVL_MMIO_MAGIC);
	}
	ivl_mmio_free(m);
	free(win);
	return 0;
}
