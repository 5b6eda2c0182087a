/* SPDX-License-Identifier: MIT */
/*
 * ivl-virtio-guest: a static guest program for run-virtio-test.sh, written
 * against the public API only.  Over the ivshmem PCI device it finds the
 * device host serving the management area, creates a console bridged to a
 * UNIX socket on the host through the transport virtqueue, sets it up,
 * sends a line and waits for the host's answer, then lists and destroys
 * the console.  Every step prints one "GUEST-..." line; exit 0 iff all
 * passed.
 *
 * usage: ivl-virtio-guest [-t MS]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/link.h>
#include <ivlink/transport.h>
#include <ivlink/mmio.h>
#include <ivlink/msi.h>
#include <ivlink/virtq.h>

#define SLOT 512
static const char hello[] = "hello from the guest\n";
static const char answer[] = "hello from the host";

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(const char *what, int r, uint32_t reason)
{
	printf("GUEST-ERROR %s: %s%s%s\n", what, strerror(-r), r == -EREMOTEIO ? " reason " : "",
	       r == -EREMOTEIO ? ivl_transport_reason_name(reason) : "");
	return 1;
}

int main(int argc, char **argv)
{
	struct ivl_link_guest_opts go = {.timeout_ms = 10000};
	int timeout_ms = 60000, c;
	while ((c = getopt(argc, argv, "t:")) != -1)
		if (c == 't')
			timeout_ms = atoi(optarg);
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct ivl_link *l;
	int r = ivl_link_guest_new(&l, &go);
	if (r < 0)
		return fail("open device", r, 0);
	printf("GUEST-ID %d\n", ivl_link_id(l));
	/* Waits for the host's control block and for its peer to be READY. */
	struct ivl_transport_driver_opts to = {.timeout_ms = timeout_ms / 2};
	struct ivl_transport_driver *d;
	if ((r = ivl_transport_driver_new(&d, l, &to)) < 0)
		return fail("find the device host", r, 0);
	uint32_t reason = 0;
	struct ivl_transport_create cr = {.virtio_id = IVL_TRANSPORT_VIRTIO_CONSOLE,
				   .param = {IVL_TRANSPORT_CONSOLE_UNIX}};
	struct ivl_transport_info info;
	if ((r = ivl_transport_driver_create(d, &cr, &info, &reason)) < 0)
		return fail("create", r, reason);
	printf("GUEST-CONSOLE-ID %llu %s\n", (unsigned long long)info.device_id, info.backend);
	struct ivl_virtq *q[2] = {0};
	unsigned nq;
	void *bufv;
	uint64_t bsz;
	if ((r = ivl_transport_driver_setup(d, info.device_id, 16, q, 2, &nq, &bufv, &bsz, &reason)) < 0)
		return fail("setup", r, reason);
	printf("GUEST-SETUP queues=%u\n", nq);
	char *buf = bufv;
	/* Receive buffers 0..3, the line to send in slot 4. */
	for (int i = 0; i < 4; i++) {
		struct iovec in = {buf + i * SLOT, SLOT};
		if ((r = ivl_virtq_add(q[0], NULL, 0, &in, 1, buf + i * SLOT)) < 0)
			return fail("post rx", r, 0);
	}
	memcpy(buf + 4 * SLOT, hello, sizeof(hello) - 1);
	struct iovec out = {buf + 4 * SLOT, sizeof(hello) - 1};
	if ((r = ivl_virtq_add(q[1], &out, 1, NULL, 0, buf + 4 * SLOT)) < 0)
		return fail("send", r, 0);
	ivl_transport_driver_kick(d, q[0]);
	ivl_transport_driver_kick(d, q[1]);
	/* Collect what arrives; the rings are polled too (a doorbell to or
	 * from a peer this QEMU has not fully learned yet can be lost). */
	char got[1024];
	size_t n = 0;
	bool sent = false;
	int64_t end = now_ms() + timeout_ms / 2;
	while (now_ms() < end && !(sent && memmem(got, n, answer, sizeof(answer) - 1))) {
		void *tok;
		uint32_t len;
		while ((r = ivl_virtq_get_used(q[1], &tok, &len)) == 1)
			if (!sent) {
				sent = true;
				printf("GUEST-SENT %zu bytes\n", sizeof(hello) - 1);
			}
		while ((r = ivl_virtq_get_used(q[0], &tok, &len)) == 1) {
			if (len > SLOT)
				return fail("rx length", -EPROTO, 0);
			size_t k = len < sizeof(got) - n ? len : sizeof(got) - n;
			memcpy(got + n, tok, k);
			n += k;
			struct iovec in = {tok, SLOT};
			ivl_virtq_add(q[0], NULL, 0, &in, 1, tok);
			ivl_transport_driver_kick(d, q[0]);
		}
		if (r < 0)
			return fail("used ring", r, 0);
		struct ivl_link_event ev[8];
		ivl_link_wait(l, ev, 8, 20);
	}
	if (!sent || !memmem(got, n, answer, sizeof(answer) - 1)) {
		printf("GUEST-ERROR exchange: sent=%d, received %zu bytes\n", sent, n);
		return 1;
	}
	printf("GUEST-RECEIVED %.*s\n", (int)strcspn(got, "\n"), got);
	struct ivl_transport_list_entry e[4];
	if ((r = ivl_transport_driver_list(d, e, 4, &reason)) < 0)
		return fail("list", r, reason);
	printf("GUEST-LIST %d\n", r);
	if ((r = ivl_transport_driver_destroy(d, info.device_id, &reason)) < 0)
		return fail("destroy", r, reason);
	if ((r = ivl_transport_driver_destroy(d, info.device_id, &reason)) != -EREMOTEIO ||
	    reason != IVL_TRANSPORT_E_NO_DEVICE) {
		printf("GUEST-ERROR a second destroy: %d reason %u\n", r, reason);
		return 1;
	}
	printf("GUEST-DESTROYED %llu\n", (unsigned long long)info.device_id);
	ivl_virtq_free(q[0]);
	ivl_virtq_free(q[1]);
	ivl_transport_driver_free(d);
	ivl_link_free(l);
	printf("GUEST-DONE\n");
	return 0;
}
