/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the SDM link channel's mailboxes (docs/sdm.md §5): a master and a
 * slave on a local hub, registered, with 16-entry rings; then the input is
 * a program of 4-byte steps a hostile peer of the link runs meanwhile:
 *   op 0: write the next bytes over the area at an offset (header, slot
 *         owners and statuses, ring indices, entries: anything);
 *   op 1/2: the master / the slave processes;
 *   op 3/4: the master / the slave sends a batch of up to 40 signals;
 *   op 5: the hostile peer rings the master or the slave.
 * Invariants: nothing reads or writes outside the area (ASan), no call
 * hangs, process() returns >= 0 or -ENOTCONN, a batch never reports more
 * signals than asked, current_slaves stays within 0..max_slaves, and the
 * fd count is the same after the input.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/hub.h>
#include <ivlink/link.h>
#include <ivlink/sdm.h>

#include "fuzz.h"

#define AREA 16384u

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void check_process(struct ivl_sdm *s)
{
	int r = ivl_sdm_process(s);

	FUZZ_CHECK(r >= 0 || r == -ENOTCONN || r == -ERANGE || r == -EUSERS ||
		   r == -EADDRINUSE);
}

static void send_some(struct ivl_sdm *s, bool master, unsigned n, uint8_t tag)
{
	struct ivl_sdm_signal v[40];
	int r;

	n = n % 40 + 1;
	for (unsigned i = 0; i < n; i++)
		v[i] = (struct ivl_sdm_signal){IVL_SDM_IRQ, master ? 1u : 0u, {tag, i}};
	r = ivl_sdm_send_batch(s, v, n);
	FUZZ_CHECK(r <= (int)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct ivl_hub *hub = NULL;
	struct ivl_link *ml = NULL, *sl = NULL, *evil = NULL;
	struct ivl_sdm *m = NULL, *s = NULL;
	struct ivl_sdm_opts o = {.master = true,
				    .max_slaves = 2,
				    .channel = IVL_SDM_CHAN_LINK,
				    .reconnect_min_ms = 1,
				    .reconnect_max_ms = 2,
				    .link_ring = 16};
	struct ivl_sdm_config c;
	uint8_t *area;
	uint64_t size;
	int fds = count_fds();

	if (ivl_hub_new(&hub, 1u << 16, 4, 1) || ivl_hub_join(hub, "m", &ml) ||
	    ivl_hub_join(hub, "s", &sl) || ivl_hub_join(hub, "evil", &evil))
		goto out;
	o.link = ml;
	if (ivl_sdm_new(&m, &o))
		goto out;
	o.master = false;
	o.link = sl;
	o.link_master = (uint16_t)ivl_link_id(ml);
	o.link_ring = 0;
	if (ivl_sdm_new(&s, &o))
		goto out;
	for (int i = 0; i < 100 && ivl_sdm_state(s) != 0; i++) {
		check_process(m);
		check_process(s);
	}
	area = ivl_link_app_area(evil, &size);
	FUZZ_CHECK(area && size >= AREA);
	for (size_t off = 0; off + 4 <= n; off += 4) {
		uint8_t op = d[off] % 6;
		uint16_t at = (uint16_t)(d[off + 1] | d[off + 2] << 8);

		switch (op) {
		case 0: {
			/* Bytes d[off+3..] up to 16, at an offset in the area. */
			size_t len = d[off + 3] % 16 + 1;

			if (off + 4 + len > n)
				len = n - off - 4;
			memcpy(area + at % (AREA - 16), d + off + 4, len);
			off += len;
			break;
		}
		case 1:
			check_process(m);
			break;
		case 2:
			check_process(s);
			break;
		case 3:
			send_some(m, true, at, d[off + 3]);
			break;
		case 4:
			send_some(s, false, at, d[off + 3]);
			break;
		case 5:
			ivl_link_ring(evil, (uint16_t)ivl_link_id(at & 1 ? sl : ml), 0);
			break;
		}
		FUZZ_CHECK(ivl_sdm_get_config(m, &c) == 0);
		FUZZ_CHECK(c.current_slaves <= c.max_slaves);
	}
out:
	ivl_sdm_free(s);
	ivl_sdm_free(m);
	ivl_link_free(evil);
	ivl_link_free(sl);
	ivl_link_free(ml);
	ivl_hub_free(hub);
	FUZZ_CHECK(count_fds() == fds);
	return 0;
}
