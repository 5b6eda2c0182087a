/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the management device's command decoder (docs/transport.md): the
 * input is a sequence of records [op][le16 length][payload]:
 *   op 0: execute payload as a command (answer buffer 4 KiB)
 *   op 1: execute payload with an answer buffer of 8 + payload[0] % 128
 *   op 2: serve the devices (their rings hold whatever was poked)
 *   op 3: poke payload[4..] into the device windows at le32 payload[0..3]
 * Invariants: no crash or leak; every answer is OK within the buffer or
 * ERR of exactly 8 bytes with a known reason; created windows lie inside
 * the area, after the transport queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/sdm.h>
#include <ivlink/transport.h>

#include "fuzz.h"

#define AREA (1u << 20)

static uint8_t area[AREA] __attribute__((aligned(4096)));

static int deliver(void *o, uint32_t v, uint64_t a, uint32_t d)
{
	(void)o;
	(void)v;
	FUZZ_CHECK(a <= 0xffff && d <= 0xffff); /* CONFIGURE checked them */
	return 0;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void check_answer(const uint8_t *cmd, size_t clen, const uint8_t *r, size_t n, size_t max)
{
	FUZZ_CHECK(max < 8 ? n == 0 : n >= 4);
	if (n == 0)
		return;
	FUZZ_CHECK(n <= max);
	uint32_t ack;
	memcpy(&ack, r, 4);
	FUZZ_CHECK(ack == IVL_TRANSPORT_OK || ack == IVL_TRANSPORT_ERR);
	if (ack == IVL_TRANSPORT_ERR) {
		uint32_t reason;
		memcpy(&reason, r + 4, 4);
		FUZZ_CHECK(n == 8 && reason >= 1 && reason <= IVL_TRANSPORT_E_LAST);
		return;
	}
	/* A successful CREATE: the window is inside and after the queue. */
	if (clen >= 12 && cmd[8] == IVL_TRANSPORT_CLASS_MGMT && cmd[9] == 0 &&
	    cmd[10] == IVL_TRANSPORT_MGMT_CREATE && cmd[11] == 0) {
		FUZZ_CHECK(n == 4 + sizeof(struct ivl_transport_info));
		uint64_t off = rd64(r + 4 + offsetof(struct ivl_transport_info, window_offset));
		uint64_t sz = rd64(r + 4 + offsetof(struct ivl_transport_info, window_size));
		FUZZ_CHECK(off >= IVL_TRANSPORT_WINDOWS_OFF && sz > 0 && sz <= AREA && off <= AREA - sz);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t resp[4096];
	struct ivl_sdm_bus *bus = NULL;
	struct ivl_transport_device *m = NULL;
	if (ivl_sdm_bus_new(&bus) < 0)
		return 0;
	struct ivl_transport_device_opts o = {
	    .area = area, .area_size = AREA, .sdm_bus = bus, .msi_deliver = deliver};
	if (ivl_transport_device_new(&m, &o) < 0) {
		ivl_sdm_bus_free(bus);
		return 0;
	}
	size_t i = 0;
	while (i + 3 <= size) {
		uint8_t op = data[i] % 4;
		size_t len = (size_t)(data[i + 1] | data[i + 2] << 8);
		i += 3;
		if (len > size - i)
			len = size - i;
		const uint8_t *p = data + i;
		i += len;
		size_t max = sizeof(resp), n;
		switch (op) {
		case 1:
			max = len ? 8 + p[0] % 128 : 4;
			/* fall through */
		case 0:
			n = ivl_transport_device_exec(m, p, len, resp, max);
			check_answer(p, len, resp, n, max);
			break;
		case 2:
			FUZZ_CHECK(ivl_transport_device_process(m) >= 0);
			break;
		default:
			if (len >= 4) {
				uint32_t off;
				memcpy(&off, p, 4);
				off %= AREA - IVL_TRANSPORT_WINDOWS_OFF;
				size_t k = len - 4 < AREA - IVL_TRANSPORT_WINDOWS_OFF - off
					       ? len - 4
					       : AREA - IVL_TRANSPORT_WINDOWS_OFF - off;
				memcpy(area + IVL_TRANSPORT_WINDOWS_OFF + off, p + 4, k);
			}
		}
		FUZZ_CHECK(ivl_transport_device_count(m) <= IVL_TRANSPORT_MAX_DEVICES);
	}
	ivl_transport_device_free(m);
	ivl_sdm_bus_free(bus);
	return 0;
}
