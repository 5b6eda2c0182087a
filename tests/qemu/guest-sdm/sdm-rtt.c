/* SPDX-License-Identifier: MIT */
/*
 * sdm-rtt: SDM round trips from a guest to a host slave that echoes
 * (tests/qemu/host/sdm-echo.c), for run-guest-sdm-test.sh rtt.  A static
 * guest program.
 *
 *   sdm-rtt kernel N   through virtio_sdm.ko: write() 16 bytes to
 *                      /dev/sdm0, read() the 20-byte echo
 *   sdm-rtt user N     through ivlink's userspace driver on the ivshmem
 *                      device (ivlink_ivshmem.ko; virtio_ivlink.ko must
 *                      not be loaded): create an SDM master over the
 *                      transport virtqueue, drive hg_vq and gh_vq itself
 *
 * Both send IRQ {seq, 0} to slave 1 and wait for the echo, interrupt
 * driven (read() blocks / ivl_link_wait()), after one warm-up exchange
 * that also waits (bounded) for the slave to register.  Prints "RTT MODE
 * n=N median_ns=X mean_ns=Y min_ns=Z"; exit 0 iff every echo matched.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/link.h>
#include <ivlink/proto/transport.h>
#include <ivlink/transport.h>
#include <ivlink/virtq.h>

#define MAXN 100000
static int64_t ns[MAXN];

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *mode, int n)
{
	int64_t sum = 0;
	for (int i = 0; i < n; i++)
		sum += ns[i];
	qsort(ns, (size_t)n, sizeof(ns[0]), cmp64);
	printf("RTT %s n=%d median_ns=%lld mean_ns=%lld min_ns=%lld\n", mode, n, (long long)ns[n / 2],
	       (long long)(sum / n), (long long)ns[0]);
}

static void fill(struct ivl_sdm_wire_signal *w, uint32_t seq)
{
	memset(w, 0, sizeof(*w));
	w->type = 0; /* IRQ; little-endian machines only (proto/common.h) */
	w->slave = 1;
	w->payload[0] = seq;
}

/* ---- kernel ------------------------------------------------------------------ */

static int kernel_rtt(int n)
{
	struct ivl_sdm_wire_signal w;
	struct ivl_transport_sdm_rx r;
	int fd = open("/dev/sdm0", O_RDWR);
	if (fd < 0) {
		perror("sdm-rtt: /dev/sdm0");
		return 1;
	}
	/* Warm-up: ENOENT until the echo slave has registered (60 s). */
	fill(&w, 0xffffffffu);
	for (int k = 0; write(fd, &w, sizeof(w)) != sizeof(w); k++) {
		if (errno != ENOENT || k == 600) {
			perror("sdm-rtt: warm-up write");
			return 1;
		}
		usleep(100000);
	}
	if (read(fd, &r, sizeof(r)) != sizeof(r)) {
		perror("sdm-rtt: warm-up read");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		fill(&w, (uint32_t)i);
		int64_t t0 = now_ns();
		if (write(fd, &w, sizeof(w)) != sizeof(w) || read(fd, &r, sizeof(r)) != sizeof(r)) {
			perror("sdm-rtt: round trip");
			return 1;
		}
		ns[i] = now_ns() - t0;
		if (r.sig.payload[0] != (uint32_t)i || r.from != 1) {
			printf("RTT-ERROR kernel: echo %u from %u, expected %d from 1\n", r.sig.payload[0], r.from, i);
			return 1;
		}
	}
	close(fd);
	report("kernel", n);
	return 0;
}

/* ---- userspace driver ------------------------------------------------------------ */

#define NRX 8
#define SLOT 32

struct user {
	struct ivl_link *l;
	struct ivl_transport_driver *d;
	struct ivl_virtq *q[2];
	char *buf;
};

static int fail(const char *what, int r)
{
	printf("RTT-ERROR user: %s: %s\n", what, strerror(-r));
	return 1;
}

/* Send one signal to slave 1 and wait for its result and for one record;
 * *res the device's result, *got the record's payload[0] (or -1). */
static int exchange(struct user *u, uint32_t seq, int32_t *res, int64_t *got, int64_t deadline)
{
	char *sb = u->buf + NRX * SLOT;
	struct iovec out = {sb, 16}, in = {sb + 16, 4};
	bool done = false;
	int r;

	fill((struct ivl_sdm_wire_signal *)sb, seq);
	*got = -1;
	if ((r = ivl_virtq_add(u->q[1], &out, 1, &in, 1, sb)) < 0)
		return r;
	ivl_transport_driver_kick(u->d, u->q[1]);
	while (now_ns() < deadline) {
		void *tok;
		uint32_t len;
		while ((r = ivl_virtq_get_used(u->q[1], &tok, &len)) == 1) {
			memcpy(res, sb + 16, 4);
			done = true;
		}
		while (r >= 0 && (r = ivl_virtq_get_used(u->q[0], &tok, &len)) == 1) {
			const struct ivl_transport_sdm_rx *rx = tok;
			if (len == sizeof(*rx))
				*got = rx->sig.payload[0];
			struct iovec rin = {tok, sizeof(*rx)};
			ivl_virtq_add(u->q[0], NULL, 0, &rin, 1, tok);
			ivl_transport_driver_kick(u->d, u->q[0]);
		}
		if (r < 0)
			return r;
		if (done && (*res < 0 || *got >= 0))
			return 0;
		struct ivl_link_event ev[8];
		ivl_link_wait(u->l, ev, 8, 20);
	}
	return -ETIMEDOUT;
}

static int user_rtt(int n)
{
	struct ivl_link_guest_opts go = {.timeout_ms = 10000};
	struct ivl_transport_driver_opts to = {.timeout_ms = 20000};
	struct ivl_transport_create cr = {.virtio_id = IVL_TRANSPORT_VIRTIO_SDM,
					  .param = {IVL_TRANSPORT_SDM_MASTER, 4}};
	struct ivl_transport_info info;
	struct user u = {0};
	uint32_t reason = 0;
	unsigned nq;
	void *bufv;
	uint64_t bsz;
	int32_t res;
	int64_t got;
	int r;

	if ((r = ivl_link_guest_new(&u.l, &go)) < 0)
		return fail("open device", r);
	if ((r = ivl_transport_driver_new(&u.d, u.l, &to)) < 0)
		return fail("find the device host", r);
	if ((r = ivl_transport_driver_create(u.d, &cr, &info, &reason)) < 0)
		return fail("create", r);
	if ((r = ivl_transport_driver_setup(u.d, info.device_id, 16, u.q, 2, &nq, &bufv, &bsz, &reason)) < 0)
		return fail("setup", r);
	u.buf = bufv;
	for (int i = 0; i < NRX; i++) {
		struct iovec in = {u.buf + i * SLOT, sizeof(struct ivl_transport_sdm_rx)};
		if ((r = ivl_virtq_add(u.q[0], NULL, 0, &in, 1, u.buf + i * SLOT)) < 0)
			return fail("post hg_vq", r);
	}
	ivl_transport_driver_kick(u.d, u.q[0]);
	printf("RTT-USER-MASTER %llu\n", (unsigned long long)info.device_id);
	/* Warm-up: -ENOENT until the echo slave has registered (60 s). */
	int64_t end = now_ns() + 60000000000LL;
	do {
		if ((r = exchange(&u, 0xffffffffu, &res, &got, end)) < 0)
			return fail("warm-up", r);
		if (res == -ENOENT)
			usleep(100000);
	} while (res == -ENOENT && now_ns() < end);
	if (res != 0 || got != 0xffffffffu)
		return fail("warm-up result", res < 0 ? res : -EPROTO);
	for (int i = 0; i < n; i++) {
		int64_t t0 = now_ns();
		if ((r = exchange(&u, (uint32_t)i, &res, &got, t0 + 10000000000LL)) < 0)
			return fail("round trip", r);
		ns[i] = now_ns() - t0;
		if (res != 0 || got != i) {
			printf("RTT-ERROR user: result %d echo %lld, expected %d\n", res, (long long)got, i);
			return 1;
		}
	}
	report("user", n);
	if ((r = ivl_transport_driver_destroy(u.d, info.device_id, &reason)) < 0)
		return fail("destroy", r);
	ivl_virtq_free(u.q[0]);
	ivl_virtq_free(u.q[1]);
	ivl_transport_driver_free(u.d);
	ivl_link_free(u.l);
	return 0;
}

int main(int argc, char **argv)
{
	int n = argc == 3 ? atoi(argv[2]) : 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (n <= 0 || n > MAXN) {
		fprintf(stderr, "usage: sdm-rtt kernel|user N (1..%d)\n", MAXN);
		return 2;
	}
	if (!strcmp(argv[1], "kernel"))
		return kernel_rtt(n);
	if (!strcmp(argv[1], "user"))
		return user_rtt(n);
	fprintf(stderr, "sdm-rtt: unknown mode %s\n", argv[1]);
	return 2;
}
