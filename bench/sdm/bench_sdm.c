/* SPDX-License-Identifier: MIT */
/*
 * SDM benchmark: round-trip latency (master IRQ -> slave, slave IRQ ->
 * master) and one-way signals per second on each channel (local, link on a
 * local hub, unix, tcp, with and without a key), next to a raw ping-pong / stream of the same frame
 * size on a socketpair and on TCP loopback, measured in the same run.
 * Single thread: both ends are driven by this loop, so the numbers are the
 * cost of the code path, not of scheduling between processes.
 *
 * Usage: bench_sdm [--iters N] [--count N]
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ivlink/link.h>
#include <ivlink/sdm.h>
#include <sodium.h>

#include "../bench-util.h"

static unsigned got_m, got_s;

static void on_m(struct ivl_sdm *s, const struct ivl_sdm_signal *g, uint16_t f, void *o)
{
	(void)s, (void)g, (void)f, (void)o;
	got_m++;
}

static void on_s(struct ivl_sdm *s, const struct ivl_sdm_signal *g, uint16_t f, void *o)
{
	(void)s, (void)g, (void)f, (void)o;
	got_s++;
}

/* Spin on process() with a generous bound; -ETIMEDOUT if it never comes. */
static int until(struct ivl_sdm *sdm, unsigned *ctr, unsigned want)
{
	int64_t end = bu_now_ns() + 5000000000LL;

	while (*ctr < want) {
		if (ivl_sdm_process(sdm) < 0 || bu_now_ns() > end)
			return -ETIMEDOUT;
	}
	return 0;
}

struct pair {
	struct ivl_sdm_bus *bus;
	struct ivl_local_hub *hub;
	struct ivl_link *ml, *sl;
	struct ivl_sdm *m, *s;
};

static int make_pair(struct pair *p, enum ivl_sdm_channel ch, const char *path, const uint8_t *key)
{
	struct ivl_sdm_options o = {.master = true,
				    .max_slaves = 1,
				    .channel = ch,
				    .path = path,
				    .host = "127.0.0.1",
				    .key = key};
	int r;

	memset(p, 0, sizeof(*p));
	if (ch == IVL_SDM_CHAN_LOCAL && (r = ivl_sdm_bus_new(&p->bus)))
		return r;
	o.bus = p->bus;
	if (ch == IVL_SDM_CHAN_LINK) {
		if ((r = ivl_local_hub_new(&p->hub, 1u << 20, 2, 1)) ||
		    (r = ivl_local_hub_join(p->hub, "master", &p->ml)) ||
		    (r = ivl_local_hub_join(p->hub, "slave", &p->sl)))
			return r;
		o.link = p->ml;
		o.link_master = (uint16_t)ivl_link_id(p->ml);
	}
	if ((r = ivl_sdm_new(&p->m, &o)))
		return r;
	if (ch == IVL_SDM_CHAN_TCP)
		o.port = (uint16_t)ivl_sdm_tcp_port(p->m);
	o.master = false;
	o.link = p->sl;
	if ((r = ivl_sdm_new(&p->s, &o)))
		return r;
	ivl_sdm_set_handler(p->m, IVL_SDM_IRQ, on_m, NULL);
	ivl_sdm_set_handler(p->s, IVL_SDM_IRQ, on_s, NULL);
	for (int64_t end = bu_now_ns() + 5000000000LL; ivl_sdm_state(p->s) != 0;) {
		ivl_sdm_process(p->m);
		ivl_sdm_process(p->s);
		if (bu_now_ns() > end)
			return -ETIMEDOUT;
	}
	return 0;
}

static void free_pair(struct pair *p)
{
	ivl_sdm_free(p->s);
	ivl_sdm_free(p->m);
	ivl_sdm_bus_free(p->bus);
	ivl_link_free(p->sl);
	ivl_link_free(p->ml);
	ivl_local_hub_free(p->hub);
}

static int sdm_rtt(struct pair *p, unsigned iters, double *ns)
{
	double *v = calloc(iters, sizeof(double));
	struct ivl_sdm_signal to_s = {IVL_SDM_IRQ, 1, {1, 2}}, to_m = {IVL_SDM_IRQ, 0, {3, 4}};
	int r = 0;

	if (!v)
		return -ENOMEM;
	for (unsigned i = 0; i < iters && !r; i++) {
		int64_t t0 = bu_now_ns();

		r = ivl_sdm_send(p->m, &to_s);
		if (!r)
			r = until(p->s, &got_s, got_s + 1);
		if (!r)
			r = ivl_sdm_send(p->s, &to_m);
		if (!r)
			r = until(p->m, &got_m, got_m + 1);
		v[i] = (double)(bu_now_ns() - t0);
	}
	*ns = bu_median(v, iters);
	free(v);
	return r;
}

static int sdm_rate(struct pair *p, unsigned count, double *per_s)
{
	struct ivl_sdm_signal sig = {IVL_SDM_IRQ, 1, {1, 2}};
	unsigned target = got_s + count, sent = 0;
	int64_t t0 = bu_now_ns(), end = t0 + 20000000000LL;

	while (got_s < target) {
		while (sent < count) {
			int r = ivl_sdm_send(p->m, &sig);

			if (r == -EAGAIN)
				break;
			if (r)
				return r;
			sent++;
		}
		ivl_sdm_process(p->m); /* flushes what the socket refused */
		ivl_sdm_process(p->s);
		if (bu_now_ns() > end)
			return -ETIMEDOUT;
	}
	*per_s = count / ((double)(bu_now_ns() - t0) / 1e9);
	return 0;
}

static int raw_pair(bool tcp, int fd[2])
{
	struct sockaddr_in in = {.sin_family = AF_INET};
	socklen_t len = sizeof(in);
	int l;

	if (!tcp)
		return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd) ? -errno : 0;
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&in, sizeof(in)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&in, &len))
		return -errno;
	fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(fd[0], (struct sockaddr *)&in, sizeof(in)))
		return -errno;
	fd[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	close(l);
	setsockopt(fd[0], IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	setsockopt(fd[1], IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	return fd[1] < 0 ? -errno : 0;
}

static int readn(int fd, void *buf, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t r = read(fd, (char *)buf + off, n - off);

		if (r <= 0)
			return -EIO;
		off += (size_t)r;
	}
	return 0;
}

/* 20 bytes, the size of a plaintext SIGNAL frame, each way. */
static int raw_rtt(bool tcp, unsigned iters, double *ns)
{
	double *v = calloc(iters, sizeof(double));
	char b[20] = {0};
	int fd[2], r = raw_pair(tcp, fd);

	if (!v || r)
		return free(v), r ? r : -ENOMEM;
	for (unsigned i = 0; i < iters && !r; i++) {
		int64_t t0 = bu_now_ns();

		if (write(fd[0], b, 20) != 20 || readn(fd[1], b, 20) || write(fd[1], b, 20) != 20 ||
		    readn(fd[0], b, 20))
			r = -EIO;
		v[i] = (double)(bu_now_ns() - t0);
	}
	*ns = bu_median(v, iters);
	free(v);
	close(fd[0]);
	close(fd[1]);
	return r;
}

static int raw_rate(bool tcp, unsigned count, double *per_s)
{
	char b[20 * 64] = {0}, in[20 * 64];
	int fd[2], r = raw_pair(tcp, fd);
	int64_t t0 = bu_now_ns();

	if (r)
		return r;
	for (unsigned done = 0; done < count && !r; done += 64)
		if (write(fd[0], b, sizeof(b)) != (ssize_t)sizeof(b) ||
		    readn(fd[1], in, sizeof(in)))
			r = -EIO;
	*per_s = (count + 63) / 64 * 64 / ((double)(bu_now_ns() - t0) / 1e9);
	close(fd[0]);
	close(fd[1]);
	return r;
}

int main(int argc, char **argv)
{
	unsigned iters = 2000, count = 100000;
	char dir[256], path[300];
	uint8_t key[IVL_SDM_KEY_LEN];
	double raw_unix_rtt, raw_tcp_rtt, raw_unix_rate, raw_tcp_rate;
	static const struct {
		const char *name;
		enum ivl_sdm_channel ch;
		bool keyed, tcp;
	} cases[] = {
	    {"local", IVL_SDM_CHAN_LOCAL, false, false},
	    {"link", IVL_SDM_CHAN_LINK, false, false},
	    {"unix", IVL_SDM_CHAN_UNIX, false, false},
	    {"unix+key", IVL_SDM_CHAN_UNIX, true, false},
	    {"tcp", IVL_SDM_CHAN_TCP, false, true},
	    {"tcp+key", IVL_SDM_CHAN_TCP, true, true},
	};
	int r, fail = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--iters"))
			iters = (unsigned)strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--count"))
			count = (unsigned)strtoul(argv[i + 1], NULL, 0);
	}
	if (!iters || !count || sodium_init() < 0) {
		fprintf(stderr, "bench_sdm: bad arguments\n");
		return 2;
	}
	randombytes_buf(key, sizeof(key));
	if (bu_mkdtemp(dir, sizeof(dir), "bench-sdm") < 0)
		return 1;
	snprintf(path, sizeof(path), "%s/sdm.sock", dir);
	if (raw_rtt(false, iters, &raw_unix_rtt) || raw_rtt(true, iters, &raw_tcp_rtt) ||
	    raw_rate(false, count, &raw_unix_rate) || raw_rate(true, count, &raw_tcp_rate)) {
		fprintf(stderr, "bench_sdm: raw baseline failed\n");
		bu_rmdir(dir);
		return 1;
	}
	printf("SDM, one thread driving both ends; %u round trips, %u signals\n", iters, count);
	printf(
	    "raw 20-byte ping-pong: unix %.0f ns, tcp %.0f ns; stream: unix %.0f/s, tcp %.0f/s\n",
	    raw_unix_rtt, raw_tcp_rtt, raw_unix_rate, raw_tcp_rate);
	printf("%-9s %12s %8s %14s %8s\n", "channel", "rtt ns", "x raw", "signals/s", "/ raw");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pair p;
		double rtt = 0, rate = 0;
		double base_rtt = cases[i].tcp ? raw_tcp_rtt : raw_unix_rtt;
		double base_rate = cases[i].tcp ? raw_tcp_rate : raw_unix_rate;

		r = make_pair(&p, cases[i].ch, path, cases[i].keyed ? key : NULL);
		if (!r)
			r = sdm_rtt(&p, iters, &rtt);
		if (!r)
			r = sdm_rate(&p, count, &rate);
		free_pair(&p);
		if (r) {
			fprintf(stderr, "bench_sdm: %s: %s\n", cases[i].name, strerror(-r));
			fail = 1;
			continue;
		}
		printf("%-9s %12.0f %8.2f %14.0f %8.2f\n", cases[i].name, rtt, rtt / base_rtt, rate,
		       rate / base_rate);
	}
	bu_rmdir(dir);
	return fail;
}
