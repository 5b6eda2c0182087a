/* SPDX-License-Identifier: MIT */
/*
 * bench_admission: what it costs ivlink-server to admit the k-th peer.
 *
 * The server runs as a child process.  Peers are connected one at a time by
 * this process, each a minimal ivshmem client (the codec of <ivlink/ivshmem.h>
 * and nothing else) that checks the order of the handshake and closes every
 * fd as soon as it is counted: 1000 peers with 4 vectors would otherwise hold
 * 4 million fds here.  Every peer's socket is drained all the time so the
 * server never has to queue for a slow reader.
 *
 * For the k-th peer two times are taken from connect():
 *   handshake - the new peer holds its own N vectors (end of its handshake);
 *   settled   - in addition every earlier peer got its N fds for the new one.
 * Admitting peer k moves 1 + (2k - 1) * N fds, so both grow with k.  Server
 * RSS and fd count are sampled from /proc every --sample peers, in a quiet
 * moment (after settled).  Raw kernel primitives measured in the same run
 * give the scale (STYLE.md).  See bench/README.md and docs/PERFORMANCE.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>

#include "tools/common/util.h"
#include "admission.h"
#include "bench-util.h"
#include "raw-socket.h"

#define ADMIT_TIMEOUT_MS 20000

struct peer {
	int fd;
	int id;		 /* -1 until the ID message */
	unsigned msgs;	 /* messages so far */
	unsigned own;	 /* fds of my own vectors */
	uint64_t others; /* fds for ringing other peers */
	struct ivl_msg_reader rd;
};

struct run {
	const struct adm_opts *o;
	struct adm_result *res;
	int64_t deadline;
	char dir[256], sock[300], log[4096];
	pid_t server;
	int ep;
	struct peer *p;
	unsigned np;
	uint64_t others_total, fds_total;
	uint8_t id_used[65536];
};

/* ---- the minimal peer -------------------------------------------------- */

static int on_msg(struct run *r, struct peer *p, const struct ivl_msg *m)
{
	unsigned n = p->msgs++;
	int64_t v = m->value;

	if (m->fd >= 0) {
		r->fds_total++;
		close(m->fd);
	}
	if (n == 0)
		return v == IVL_PROTOCOL_VERSION && m->fd < 0 ? 0 : -EPROTO;
	if (n == 1) {
		if (v < 0 || v > IVL_MAX_PEER_ID || m->fd >= 0 || r->id_used[v])
			return -EPROTO;
		p->id = (int)v;
		r->id_used[v] = 1;
		return 0;
	}
	if (n == 2)
		return v == IVL_MSG_SHM && m->fd >= 0 ? 0 : -EPROTO;
	if (v < 0 || v > IVL_MAX_PEER_ID)
		return -EPROTO;
	if (m->fd < 0) {
		/* Nobody leaves during the run: the server dropped a peer. */
		fprintf(stderr, "bench: peer %d was told that peer %lld left\n", p->id,
			(long long)v);
		return -EPROTO;
	}
	if (v == p->id) {
		if (++p->own > r->res->vectors)
			return -EPROTO;
	} else {
		p->others++;
		r->others_total++;
	}
	return 0;
}

static int drain(struct run *r, struct peer *p)
{
	struct ivl_msg m;
	int ret;

	while ((ret = ivl_msg_recv(p->fd, &p->rd, &m)) == 1) {
		ret = on_msg(r, p, &m);
		if (ret < 0) {
			fprintf(stderr, "bench: peer %d: protocol violation at message %u\n", p->id,
				p->msgs);
			return ret;
		}
	}
	if (ret == -EAGAIN)
		return 0;
	fprintf(stderr, "bench: peer %d (connection %u): %s\n", p->id, (unsigned)(p - r->p) + 1,
		strerror(-ret));
	return ret;
}

/* Wait up to @timeout_ms for readable peers and drain them.  0 or -errno;
 * -ECHILD if the server is gone. */
static int pump(struct run *r, int timeout_ms)
{
	struct epoll_event ev[256];
	int n, status;

	n = epoll_wait(r->ep, ev, 256, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0 && bu_exited(r->server, &status)) {
		r->res->server_status = status;
		r->server = -1;
		fprintf(stderr, "bench: the server exited\n");
		return -ECHILD;
	}
	for (int i = 0; i < n; i++) {
		int ret = drain(r, &r->p[ev[i].data.u32]);

		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Connect peer number k (r->np + 1) and wait until it and the earlier peers
 * know each other; fills the k-th times. */
static int admit(struct run *r)
{
	struct peer *p = &r->p[r->np];
	unsigned k = r->np + 1, nv = r->res->vectors;
	uint64_t want = (uint64_t)k * (k - 1) * nv, fds0 = r->fds_total;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct epoll_event ev = {.events = EPOLLIN};
	int64_t t0, t_hs = 0, end;
	int ret;

	strcpy(sa.sun_path, r->sock);
	*p = (struct peer){.fd = -1, .id = -1};
	ivl_msg_reader_init(&p->rd);
	p->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		return -errno;
	r->np++;

	t0 = bu_now_ns();
	if (connect(p->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    fcntl(p->fd, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	ev.data.u32 = k - 1;
	if (epoll_ctl(r->ep, EPOLL_CTL_ADD, p->fd, &ev) < 0)
		return -errno;

	end = t0 + (int64_t)ADMIT_TIMEOUT_MS * 1000000;
	if (end > r->deadline)
		end = r->deadline;
	for (;;) {
		int64_t now = bu_now_ns();

		if (!t_hs && p->own == nv)
			t_hs = now;
		if (t_hs && r->others_total == want)
			break;
		if (r->others_total > want) {
			fprintf(stderr, "bench: more peer notifications than peers (%llu > %llu)\n",
				(unsigned long long)r->others_total, (unsigned long long)want);
			return -EPROTO;
		}
		if (now >= end) {
			fprintf(stderr,
				"bench: peer %u not admitted in time (own vectors %u/%u, "
				"notifications %llu/%llu)\n",
				k, p->own, nv, (unsigned long long)r->others_total,
				(unsigned long long)want);
			return -ETIMEDOUT;
		}
		ret = pump(r, 100);
		if (ret < 0)
			return ret;
	}
	r->res->handshake_us[k - 1] = (double)(t_hs - t0) / 1e3;
	r->res->settled_us[k - 1] = (double)(bu_now_ns() - t0) / 1e3;
	r->res->fds_moved[k - 1] = r->fds_total - fds0;
	return 0;
}

static int take_sample(struct run *r, unsigned k, unsigned prev_k)
{
	struct adm_result *res = r->res;
	struct adm_sample *s = &res->samples[res->nsamples];
	double win[1024];
	unsigned n = 0;

	*s = (struct adm_sample){.k = k};
	s->server_fds = bu_proc_fds(r->server);
	s->server_rss_kib = bu_proc_rss_kib(r->server);
	s->server_cpu_ns = bu_proc_cpu_ns(r->server);
	s->bench_cpu_ns = bu_proc_cpu_ns(0);
	if (s->server_fds < 0 || s->server_rss_kib < 0 || s->server_cpu_ns < 0 ||
	    s->bench_cpu_ns < 0) {
		fprintf(stderr, "bench: cannot read /proc/%ld of the server\n", (long)r->server);
		return -ESRCH;
	}
	if (k > 0) {
		const struct adm_sample *prev = s - 1;

		s->server_cpu_us =
		    (double)(s->server_cpu_ns - prev->server_cpu_ns) / 1e3 / (k - prev_k);
		s->bench_cpu_us =
		    (double)(s->bench_cpu_ns - prev->bench_cpu_ns) / 1e3 / (k - prev_k);
		s->handshake_us = res->handshake_us[k - 1];
		s->settled_us = res->settled_us[k - 1];
		s->fds_moved = res->fds_moved[k - 1];
		for (unsigned i = prev_k; i < k && n < 1024; i++)
			win[n++] = res->settled_us[i];
		s->settled_med_us = bu_median(win, n);
	}
	res->nsamples++;
	return 0;
}

/* ---- one run: a server with @vectors, then peers 1..N ------------------ */

static int start_server(struct run *r)
{
	const struct adm_opts *o = r->o;
	char size[32], vec[16], maxp[16];
	char *argv[16 + ADM_MAX_SERVER_ARGS];
	uint64_t rsize = 1u << 20;
	unsigned n = 0;
	int ret;

	/* Room for the header's peer table plus at least one page of
	 * application area, as a power of two. */
	while (rsize < 2 * ivl_shm_header_size(o->peers + 16))
		rsize <<= 1;
	snprintf(size, sizeof(size), "%llu", (unsigned long long)rsize);
	snprintf(vec, sizeof(vec), "%u", r->res->vectors);
	snprintf(maxp, sizeof(maxp), "%u", o->peers + 16);
	argv[n++] = (char *)o->server;
	argv[n++] = (char *)"-S";
	argv[n++] = r->sock;
	argv[n++] = (char *)"-l";
	argv[n++] = size;
	argv[n++] = (char *)"-n";
	argv[n++] = vec;
	argv[n++] = (char *)"--max-peers";
	argv[n++] = maxp;
	argv[n++] = (char *)"--memfd";
	for (unsigned i = 0; i < o->nserver_args; i++)
		argv[n++] = o->server_args[i];
	argv[n] = NULL;

	r->server = bu_spawn(argv, r->log);
	if (r->server < 0)
		return (int)r->server;
	ret = bu_wait_socket(r->sock, r->server, 10000);
	if (ret == -ECHILD) {
		/* Already reaped by bu_wait_socket(). */
		r->server = -1;
		fprintf(stderr, "bench: %s exited before listening on %s\n", o->server, r->sock);
		return ret;
	}
	if (ret < 0) {
		fprintf(stderr, "bench: %s did not start listening on %s: %s\n", o->server, r->sock,
			strerror(-ret));
		return ret;
	}
	/* Let the server finish with the probe connection before the baseline. */
	usleep(100000);
	return 0;
}

static int check_result(const struct run *r)
{
	const struct adm_result *res = r->res;
	unsigned nv = res->vectors, k = res->peers;
	const struct adm_sample *first = &res->samples[0], *last = &res->samples[res->nsamples - 1];

	for (unsigned i = 0; i < r->np; i++) {
		const struct peer *p = &r->p[i];

		if (p->own != nv || p->others != (uint64_t)(k - 1) * nv) {
			fprintf(stderr, "bench: peer %d holds %u/%u own and %llu/%llu other fds\n",
				p->id, p->own, nv, (unsigned long long)p->others,
				(unsigned long long)(k - 1) * nv);
			return -EPROTO;
		}
	}
	/* The server must keep every peer's socket and its N eventfds. */
	if (last->server_fds - first->server_fds < (long)k * (nv + 1)) {
		fprintf(stderr, "bench: server fds grew by %ld for %u peers, expected >= %u\n",
			last->server_fds - first->server_fds, k, k * (nv + 1));
		return -EPROTO;
	}
	return 0;
}

static int run_one(const struct adm_opts *o, struct adm_result *res)
{
	struct run *r;
	unsigned prev_k = 0;
	int64_t t_start = bu_now_ns();
	int ret, status;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->o = o;
	r->res = res;
	r->server = -1;
	r->ep = -1;
	r->deadline = t_start + (int64_t)o->timeout_s * 1000000000;
	res->peers = o->peers;
	res->server_status = -1;
	res->load_start = bu_loadavg();
	res->samples = calloc(o->peers / o->sample + 3, sizeof(*res->samples));
	res->handshake_us = calloc(o->peers, sizeof(double));
	res->settled_us = calloc(o->peers, sizeof(double));
	res->fds_moved = calloc(o->peers, sizeof(uint64_t));
	r->p = calloc(o->peers, sizeof(*r->p));
	if (!res->samples || !res->handshake_us || !res->settled_us || !res->fds_moved || !r->p) {
		ret = -ENOMEM;
		goto out;
	}
	ret = bu_mkdtemp(r->dir, sizeof(r->dir), "ivlbench");
	if (ret < 0)
		goto out;
	snprintf(r->sock, sizeof(r->sock), "%s/sock", r->dir);
	if (o->server_log)
		snprintf(r->log, sizeof(r->log), "%s", o->server_log);
	else
		snprintf(r->log, sizeof(r->log), "%s/server.log", r->dir);
	r->ep = epoll_create1(EPOLL_CLOEXEC);
	if (r->ep < 0) {
		ret = -errno;
		goto out;
	}
	ret = start_server(r);
	if (ret < 0)
		goto out;
	ret = take_sample(r, 0, 0);
	for (unsigned k = 1; ret == 0 && k <= o->peers; k++) {
		ret = admit(r);
		if (ret == 0 && (k % o->sample == 0 || k == o->peers)) {
			ret = take_sample(r, k, prev_k);
			prev_k = k;
		}
	}
	if (ret == 0)
		ret = check_result(r);
	res->fds_total = r->fds_total;
out:
	if (r->server > 0) {
		/* Stop the server before closing the peers, so that it does not
		 * announce a thousand departures to the rest. */
		status = bu_stop(r->server, SIGTERM, 5000);
		if (status < 0) {
			fprintf(stderr, "bench: stopping the server: %s\n",
				status == -ETIMEDOUT ? "SIGTERM ignored for 5 s"
						     : strerror(-status));
			if (ret == 0)
				ret = status;
		} else {
			res->server_status = status;
			if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) &&
			    !(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM)) {
				fprintf(stderr, "bench: the server ended with status 0x%x\n",
					status);
				if (ret == 0)
					ret = -EPROTO;
			}
		}
	}
	if (ret < 0 && r->dir[0]) {
		fprintf(stderr, "bench: server log (%s):\n", r->log);
		bu_cat(r->log, stderr);
	}
	for (unsigned i = 0; i < r->np; i++) {
		ivl_msg_reader_reset(&r->p[i].rd);
		if (r->p[i].fd >= 0)
			close(r->p[i].fd);
	}
	if (r->ep >= 0)
		close(r->ep);
	if (r->dir[0])
		bu_rmdir(r->dir);
	free(r->p);
	free(r);
	res->wall_s = (double)(bu_now_ns() - t_start) / 1e9;
	res->load_end = bu_loadavg();
	return ret;
}

/* ---- main -------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: bench_admission [options] [SERVER]\n"
	    "  -p, --peers N         peers to admit per run (default 1000)\n"
	    "  -n, --vectors LIST    vectors per peer, one run each (default 1,4)\n"
	    "  -s, --sample N        sample the server every N peers (default 50)\n"
	    "  -r, --raw-iters N     repetitions of the raw primitives (default 20000)\n"
	    "  -t, --timeout SEC     bound on each run (default 600)\n"
	    "  -a, --server-arg ARG  extra argument for the server (repeatable)\n"
	    "  -l, --server-log FILE append the server's output to FILE and keep it\n"
	    "  -j, --json            print JSON instead of tables\n"
	    "SERVER defaults to $IVL_SERVER_BIN, then build/tools/ivlink-server/ivlink-server.\n");
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max || s[0] == '-')
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int parse_vectors(char *s, struct adm_opts *o)
{
	o->nruns = 0;
	for (char *save = NULL, *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (o->nruns == ADM_MAX_RUNS ||
		    parse_uint(t, 1, IVL_MAX_VECTORS, &o->vectors[o->nruns]))
			return -EINVAL;
		o->nruns++;
	}
	return o->nruns ? 0 : -EINVAL;
}

static int parse_args(int argc, char **argv, struct adm_opts *o)
{
	static const struct option lo[] = {
	    {"peers", required_argument, NULL, 'p'},
	    {"vectors", required_argument, NULL, 'n'},
	    {"sample", required_argument, NULL, 's'},
	    {"raw-iters", required_argument, NULL, 'r'},
	    {"timeout", required_argument, NULL, 't'},
	    {"server-arg", required_argument, NULL, 'a'},
	    {"server-log", required_argument, NULL, 'l'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int c;

	*o = (struct adm_opts){.peers = 1000,
			       .vectors = {1, 4},
			       .nruns = 2,
			       .sample = 50,
			       .raw_iters = 20000,
			       .timeout_s = 600};
	while ((c = getopt_long(argc, argv, "p:n:s:r:t:a:l:jh", lo, NULL)) != -1) {
		int bad = 0;

		switch (c) {
		case 'p':
			bad = parse_uint(optarg, 1, 60000, &o->peers);
			break;
		case 'n':
			bad = parse_vectors(optarg, o);
			break;
		case 's':
			bad = parse_uint(optarg, 1, 1000, &o->sample);
			break;
		case 'r':
			bad = parse_uint(optarg, 10, 10000000, &o->raw_iters);
			break;
		case 't':
			bad = parse_uint(optarg, 1, 86400, &o->timeout_s);
			break;
		case 'a':
			if (o->nserver_args == ADM_MAX_SERVER_ARGS)
				bad = 1;
			else
				o->server_args[o->nserver_args++] = optarg;
			break;
		case 'l':
			o->server_log = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
		if (bad) {
			fprintf(stderr, "bench: bad value for -%c: %s\n", c, optarg);
			return -EINVAL;
		}
	}
	if (optind < argc - 1)
		return -EINVAL;
	o->server = optind < argc ? argv[optind] : getenv("IVL_SERVER_BIN");
	if (!o->server || !*o->server)
		o->server = "build/tools/ivlink-server/ivlink-server";
	return 0;
}

/* The raw primitives, measured in this process. */
static int measure_raw(struct adm_raw_set *r, unsigned iters)
{
	char dir[256], path[300];

	if (bu_mkdtemp(dir, sizeof(dir), "ivlbench") < 0) {
		perror("bench: mkdtemp");
		return -EIO;
	}
	snprintf(path, sizeof(path), "%s/raw.sock", dir);
	r->connect_accept_ns = raw_unix_connect_accept_ns(path, iters / 10 + 10);
	r->scm_rights_ns = raw_scm_rights_msg_ns(iters, &r->scm_send_ns);
	r->plain_msg_ns = raw_plain_msg_ns(iters);
	r->eventfd_ns = raw_eventfd_ns(iters);
	bu_rmdir(dir);
	if (r->connect_accept_ns <= 0 || r->scm_rights_ns <= 0 || r->scm_send_ns <= 0 ||
	    r->plain_msg_ns <= 0 || r->eventfd_ns <= 0) {
		fprintf(stderr, "bench: measuring the raw primitives failed\n");
		return -EIO;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct adm_result res[ADM_MAX_RUNS] = {0};
	struct adm_raw raw;
	struct adm_opts o;
	long lim;
	int ret = 0;

	if (parse_args(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	if (access(o.server, X_OK) < 0) {
		fprintf(stderr, "bench: %s: %s\n", o.server, strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	/* One socket per peer here, plus the fds of one message in flight. */
	lim = tool_raise_nofile();
	if (lim < 0 || (unsigned long)lim < o.peers + 64ul) {
		fprintf(stderr, "bench: RLIMIT_NOFILE %ld is too low for %u peers\n", lim, o.peers);
		return 1;
	}

	if (measure_raw(&raw.before, o.raw_iters) < 0)
		return 1;
	for (unsigned i = 0; i < o.nruns && ret == 0; i++) {
		res[i].vectors = o.vectors[i];
		ret = run_one(&o, &res[i]);
		if (ret < 0)
			fprintf(stderr, "bench: run with %u vectors failed: %s\n", o.vectors[i],
				strerror(-ret));
	}
	if (ret == 0 && measure_raw(&raw.after, o.raw_iters) < 0)
		ret = -EIO;
	if (ret == 0) {
		/* A median can only be inflated by other activity, so the lower
		 * of the two is the better estimate of the primitive's cost. */
		raw.connect_accept_ns =
		    fmin(raw.before.connect_accept_ns, raw.after.connect_accept_ns);
		raw.scm_rights_ns = fmin(raw.before.scm_rights_ns, raw.after.scm_rights_ns);
		raw.scm_send_ns = fmin(raw.before.scm_send_ns, raw.after.scm_send_ns);
		raw.plain_msg_ns = fmin(raw.before.plain_msg_ns, raw.after.plain_msg_ns);
		raw.eventfd_ns = fmin(raw.before.eventfd_ns, raw.after.eventfd_ns);
		if (o.json)
			adm_print_json(&o, &raw, res, o.nruns);
		else
			adm_print_text(&o, &raw, res, o.nruns);
	}
	for (unsigned i = 0; i < o.nruns; i++) {
		free(res[i].samples);
		free(res[i].handshake_us);
		free(res[i].settled_us);
		free(res[i].fds_moved);
	}
	return ret == 0 ? 0 : 1;
}
