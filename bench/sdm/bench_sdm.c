/* SPDX-License-Identifier: MIT */
/*
 * SDM benchmark: round-trip latency and one-way batched signals per second
 * on each channel, next to a raw socket ping-pong / stream with frames of
 * the same size, measured in the same run and interleaved with it (raw,
 * then SDM, per case and per run), so that both see the same machine load.
 *
 * Two threads pinned to two CPUs (bench_pin_self): the master in the main
 * thread, the slave in a second one.  Both wait the same way as the raw
 * baseline they are compared with: "block" sleeps in poll() (SDM) or
 * read() (raw), "spin" calls ivl_sdm_process() (SDM) or recv(MSG_DONTWAIT)
 * (raw) in a loop.
 *   rtt:   the master sends an IRQ, the slave's handler answers with an
 *          IRQ, the master waits for it; median over --iters round trips.
 *   rate:  the master sends --count IRQs (--shm-count on local and link,
 *          and through the raw in-process queue) with ivl_sdm_send_batch()
 *          in batches of --batch; time until the slave has handled the last
 *          one.  Raw: write() of --batch frames at a time, the reader
 *          reads what is there.
 * Each figure is the median over --runs runs; a ratio is the median of the
 * per-run ratios SDM / raw.  Frame sizes: 20 bytes (a plaintext SIGNAL
 * frame) and 41 bytes (a sealed one, for the keyed channels).  link has no
 * socket: it is shown against the raw UNIX numbers (the claim to check:
 * shared memory beats a socket); local against a raw in-process queue
 * (two spinning SPSC rings of 16-byte entries between the same threads).
 *
 * Usage: bench_sdm [--runs N] [--iters N] [--count N] [--shm-count N] [--batch N]
 *                  [--wait block|spin|both] [--case NAME] [--json]
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ivlink/hub.h>
#include <ivlink/link.h>
#include <ivlink/sdm.h>
#include <sodium.h>

#include "../bench-util.h"
#include "primitives.h"

#define MAX_RUNS 64
#define MAX_BATCH 1024
#define DEADLINE_NS 20000000000LL

static unsigned iters = 2000, count = 200000, batch = 64, runs = 5;
/* One-way runs of the shared-memory channels and of the raw in-process
 * queue: long enough to be in steady state (a 200000-signal run of a
 * channel moving 10^8 signals/s lasts 2 ms, mostly thread wake-up). */
static unsigned shm_count = 20000000;

static unsigned rate_count(enum ivl_sdm_channel ch)
{
	return ch == IVL_SDM_CHAN_LOCAL || ch == IVL_SDM_CHAN_LINK ? shm_count : count;
}
static bool json;

/* ---- SDM pairs ------------------------------------------------------------ */

struct side {
	struct ivl_sdm *sdm;
	unsigned got;
	bool reply, stop;
	int err;
};

/* Each side on its own cache lines: the slave's handler counts every
 * signal in s.got while the master reads m.sdm for every batch it sends.
 * Sharing a line, they cost a line transfer per batch and per signal, or
 * not, depending on where the stack put the struct (runs fell into two
 * groups, 0.33 and 0.48 x the raw queue, by process). */
struct pair {
	struct ivl_sdm_bus *bus;
	struct ivl_hub *hub;
	struct ivl_link *ml, *sl;
	enum ivl_sdm_channel ch;
	bool spin;
	unsigned want; /* rate: the slave stops after this many */
	_Alignas(64) struct side m;
	_Alignas(64) struct side s;
	_Alignas(64) atomic_bool ready, done;
	int64_t t_end;
};

static void on_irq_m(struct ivl_sdm *sdm, const struct ivl_sdm_signal *g, uint16_t f, void *o)
{
	(void)sdm, (void)g, (void)f;
	((struct side *)o)->got++;
}

static void on_irq_s(struct ivl_sdm *sdm, const struct ivl_sdm_signal *g, uint16_t f, void *o)
{
	struct side *s = o;
	struct ivl_sdm_signal back = {IVL_SDM_IRQ, 0, {g->payload[0], 0}};
	int r;

	(void)f;
	s->got++;
	if (s->reply && (r = ivl_sdm_send(sdm, &back)) < 0)
		s->err = r;
}

static void on_reset_s(struct ivl_sdm *sdm, const struct ivl_sdm_signal *g, uint16_t f, void *o)
{
	(void)sdm, (void)g, (void)f;
	((struct side *)o)->stop = true;
}

/* Process until *ctr >= want or *stop; block in poll() unless spinning. */
static int drive(struct ivl_sdm *sdm, bool spin, const unsigned *ctr, unsigned want,
		 const bool *stop)
{
	struct pollfd pf = {.fd = ivl_sdm_get_fd(sdm), .events = POLLIN};
	int64_t end = bu_now_ns() + DEADLINE_NS;

	/* The loop of an application: wait for the fd, then process.  The
	 * clock only now and then: in a VM it costs more than a ring scan. */
	for (unsigned i = 0;; i++) {
		int r;

		if (*ctr >= want || (stop && *stop))
			return 0;
		if (i % 1024 == 0 && bu_now_ns() > end)
			return -ETIMEDOUT;
		if (!spin && poll(&pf, 1, 100) < 0 && errno != EINTR)
			return -errno;
		r = ivl_sdm_process(sdm);
		if (r < 0)
			return r;
	}
}

static int make_pair(struct pair *p, enum ivl_sdm_channel ch, const char *path, const uint8_t *key)
{
	struct ivl_sdm_opts o = {.master = true,
				    .max_slaves = 1,
				    .channel = ch,
				    .path = path,
				    .host = "127.0.0.1",
				    .key = key};
	int r;

	memset(p, 0, sizeof(*p));
	p->ch = ch;
	if (ch == IVL_SDM_CHAN_LOCAL && (r = ivl_sdm_bus_new(&p->bus)))
		return r;
	o.bus = p->bus;
	if (ch == IVL_SDM_CHAN_LINK) {
		if ((r = ivl_hub_new(&p->hub, 1u << 20, 2, 1)) ||
		    (r = ivl_hub_join(p->hub, "master", &p->ml)) ||
		    (r = ivl_hub_join(p->hub, "slave", &p->sl)))
			return r;
		o.link = p->ml;
		o.link_master = (uint16_t)ivl_link_id(p->ml);
	}
	if ((r = ivl_sdm_new(&p->m.sdm, &o)))
		return r;
	if (ch == IVL_SDM_CHAN_TCP)
		o.port = (uint16_t)ivl_sdm_tcp_port(p->m.sdm);
	o.master = false;
	o.link = p->sl;
	if ((r = ivl_sdm_new(&p->s.sdm, &o)))
		return r;
	ivl_sdm_set_handler(p->m.sdm, IVL_SDM_IRQ, on_irq_m, &p->m);
	ivl_sdm_set_handler(p->s.sdm, IVL_SDM_IRQ, on_irq_s, &p->s);
	ivl_sdm_set_handler(p->s.sdm, IVL_SDM_RESET, on_reset_s, &p->s);
	for (int64_t end = bu_now_ns() + 5000000000LL; ivl_sdm_state(p->s.sdm) != 0;) {
		ivl_sdm_process(p->m.sdm);
		ivl_sdm_process(p->s.sdm);
		if (bu_now_ns() > end)
			return -ETIMEDOUT;
	}
	return 0;
}

/* What a failed measurement leaves behind, to tell a stall from a drop. */
static void explain(const struct pair *p, const char *what)
{
	struct ivl_sdm_stats m = {0}, s = {0};

	ivl_sdm_get_stats(p->m.sdm, &m);
	ivl_sdm_get_stats(p->s.sdm, &s);
	fprintf(stderr,
		"bench_sdm: %s failed: master got %u, sent %llu, dropped %llu, keepalive %llu; "
		"slave got %u, state %d, sent %llu, dropped %llu, keepalive %llu, err %d\n",
		what, p->m.got, (unsigned long long)m.sent, (unsigned long long)m.conn_dropped,
		(unsigned long long)m.keepalive_timeouts, p->s.got, ivl_sdm_state(p->s.sdm),
		(unsigned long long)s.sent, (unsigned long long)s.conn_dropped,
		(unsigned long long)s.keepalive_timeouts, p->s.err);
}

static void free_pair(struct pair *p)
{
	ivl_sdm_free(p->s.sdm);
	ivl_sdm_free(p->m.sdm);
	ivl_sdm_bus_free(p->bus);
	ivl_link_free(p->sl);
	ivl_link_free(p->ml);
	ivl_hub_free(p->hub);
}

static void *slave_thread(void *arg)
{
	struct pair *p = arg;

	bench_pin_self(1);
	atomic_store(&p->ready, true);
	p->s.err = drive(p->s.sdm, p->spin, &p->s.got, p->want, &p->s.stop);
	p->t_end = bu_now_ns();
	atomic_store(&p->done, true);
	return NULL;
}

static int start_slave(struct pair *p, pthread_t *th, bool spin, bool reply, unsigned want)
{
	p->spin = spin;
	p->s.reply = reply;
	p->s.stop = false;
	p->s.got = p->m.got = 0;
	p->want = want;
	atomic_store(&p->ready, false);
	atomic_store(&p->done, false);
	if (pthread_create(th, NULL, slave_thread, p))
		return -EAGAIN;
	while (!atomic_load(&p->ready))
		sched_yield();
	return 0;
}

static int sdm_rtt(struct pair *p, bool spin, double *ns)
{
	double *v = calloc(iters, sizeof(double));
	struct ivl_sdm_signal to_s = {IVL_SDM_IRQ, 1, {0, 2}};
	struct ivl_sdm_signal stop = {IVL_SDM_RESET, 1, {0, 0}};
	pthread_t th;
	int r;

	if (!v)
		return -ENOMEM;
	r = start_slave(p, &th, spin, true, ~0u);
	if (r)
		return free(v), r;
	for (unsigned i = 0; i < iters && !r; i++) {
		int64_t t0 = bu_now_ns();

		to_s.payload[0] = i;
		r = ivl_sdm_send(p->m.sdm, &to_s);
		if (!r)
			r = drive(p->m.sdm, spin, &p->m.got, i + 1, NULL);
		v[i] = (double)(bu_now_ns() - t0);
	}
	if (ivl_sdm_send(p->m.sdm, &stop) < 0)
		p->s.stop = true; /* racy but only on a failure path: the slave times out */
	pthread_join(th, NULL);
	*ns = bu_median(v, iters);
	free(v);
	return r ? r : p->s.err;
}

static int sdm_rate(struct pair *p, bool spin, double *per_s)
{
	static struct ivl_sdm_signal sigs[MAX_BATCH];
	unsigned sent = 0;
	pthread_t th;
	int64_t t0;
	int r;

	unsigned total = rate_count(p->ch);

	for (unsigned i = 0; i < batch; i++)
		sigs[i] = (struct ivl_sdm_signal){IVL_SDM_IRQ, 1, {i, 0}};
	r = start_slave(p, &th, spin, false, total);
	if (r)
		return r;
	t0 = bu_now_ns();
	while (sent < total && !r) {
		unsigned n = total - sent < batch ? total - sent : batch;

		r = ivl_sdm_send_batch(p->m.sdm, sigs, n);
		if (r > 0) {
			sent += (unsigned)r;
			r = 0;
		} else if (r == -EAGAIN) {
			/* Full.  A socket's fd becomes readable when it can take
			 * more (process() then flushes); a link ring has no such
			 * wake-up, so wait for the slave to drain it. */
			if (spin)
				; /* as the raw queue's producer: spin */
			else if (p->ch == IVL_SDM_CHAN_LINK || p->ch == IVL_SDM_CHAN_LOCAL)
				sched_yield();
			else
				poll(&(struct pollfd){.fd = ivl_sdm_get_fd(p->m.sdm),
						      .events = POLLIN},
				     1, 100);
			r = ivl_sdm_process(p->m.sdm);
			r = r < 0 ? r : 0;
		}
	}
	/* What the socket has not taken yet goes out from process(). */
	while (!r && !atomic_load(&p->done)) {
		if (!spin)
			poll(&(struct pollfd){.fd = ivl_sdm_get_fd(p->m.sdm), .events = POLLIN}, 1,
			     10);
		r = ivl_sdm_process(p->m.sdm);
		r = r < 0 ? r : 0;
	}
	pthread_join(th, NULL);
	*per_s = total / ((double)(p->t_end - t0) / 1e9);
	return r ? r : p->s.err;
}

/* ---- raw baselines ---------------------------------------------------------- */

struct raw {
	int fd[2];
	bool spin;
	size_t fs; /* frame size */
	atomic_bool ready;
	int64_t t_end;
	int err;
};

static int raw_pair(bool tcp, int fd[2])
{
	struct sockaddr_in in = {.sin_family = AF_INET};
	socklen_t len = sizeof(in);
	int l, r = 0;

	if (!tcp)
		return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd) ? -errno : 0;
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&in, sizeof(in)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&in, &len))
		return -errno;
	fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(fd[0], (struct sockaddr *)&in, sizeof(in)))
		r = -errno;
	fd[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	close(l);
	if (r || fd[1] < 0)
		return r ? r : -errno;
	setsockopt(fd[0], IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	setsockopt(fd[1], IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	return 0;
}

/* Read exactly @n bytes, blocking or spinning. */
static int readn(int fd, bool spin, void *buf, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t r = recv(fd, (char *)buf + off, n - off, spin ? MSG_DONTWAIT : 0);

		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			return -EIO;
		off += (size_t)r;
	}
	return 0;
}

static int writen(int fd, const void *buf, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t r = send(fd, (const char *)buf + off, n - off, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -EIO;
		off += (size_t)r;
	}
	return 0;
}

static void *raw_echo(void *arg)
{
	struct raw *w = arg;
	char b[64] = {0};

	bench_pin_self(1);
	atomic_store(&w->ready, true);
	for (;;) {
		if ((w->err = readn(w->fd[1], w->spin, b, w->fs)) || b[0] == 'R')
			break;
		if ((w->err = writen(w->fd[1], b, w->fs)))
			break;
	}
	return NULL;
}

static void *raw_sink(void *arg)
{
	struct raw *w = arg;
	static char b[65536];
	size_t want = (size_t)count * w->fs;

	bench_pin_self(1);
	atomic_store(&w->ready, true);
	for (size_t got = 0; got < want;) {
		ssize_t r = recv(w->fd[1], b, sizeof(b) < want - got ? sizeof(b) : want - got,
				 w->spin ? MSG_DONTWAIT : 0);

		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0) {
			w->err = -EIO;
			break;
		}
		got += (size_t)r;
	}
	w->t_end = bu_now_ns();
	return NULL;
}

static int raw_run(bool tcp, bool spin, size_t fs, bool rate, double *out)
{
	struct raw w = {.spin = spin, .fs = fs};
	static char b[MAX_BATCH * 64];
	double *v = rate ? NULL : calloc(iters, sizeof(double));
	pthread_t th;
	int r = raw_pair(tcp, w.fd);
	int64_t t0;

	if (r || (!rate && !v))
		return free(v), r ? r : -ENOMEM;
	memset(b, 0, sizeof(b));
	if (pthread_create(&th, NULL, rate ? raw_sink : raw_echo, &w)) {
		r = -EAGAIN;
		goto out;
	}
	while (!atomic_load(&w.ready))
		sched_yield();
	t0 = bu_now_ns();
	if (rate) {
		for (unsigned sent = 0; sent < count && !r; sent += batch) {
			unsigned n = count - sent < batch ? count - sent : batch;

			r = writen(w.fd[0], b, n * fs);
		}
	} else {
		for (unsigned i = 0; i < iters && !r; i++) {
			int64_t t = bu_now_ns();

			r = writen(w.fd[0], b, fs);
			if (!r)
				r = readn(w.fd[0], spin, b, fs);
			v[i] = (double)(bu_now_ns() - t);
		}
		b[0] = 'R';
		if (writen(w.fd[0], b, fs) < 0)
			shutdown(w.fd[0], SHUT_RDWR);
		b[0] = 0;
	}
	pthread_join(th, NULL);
	if (!r)
		r = w.err;
	*out = rate ? count / ((double)(w.t_end - t0) / 1e9) : bu_median(v, iters);
out:
	free(v);
	close(w.fd[0]);
	close(w.fd[1]);
	return r;
}

/* ---- raw in-process queue (the baseline of the local channel) ---------------- */

/*
 * Two single-producer/single-consumer rings of 16-byte entries between the
 * two threads, the fastest in-process handoff there is: the producer
 * writes a batch, then its head (release); the consumer reads the head
 * (acquire), copies the entries out, then its tail (release).  It always
 * spins (no sleeping, no system call), in both wait modes.
 */
#define RQ_LEN 1024u

struct rq_ring {
	_Alignas(64) atomic_uint head;
	_Alignas(64) atomic_uint tail;
	_Alignas(64) uint32_t ent[RQ_LEN][4];
};

struct rq {
	struct rq_ring a2b, b2a;
	bool rate;
	atomic_bool ready;
	int64_t t_end;
	volatile uint32_t sink;
};

static void rq_put(struct rq_ring *r, const uint32_t (*v)[4], unsigned n)
{
	unsigned h = atomic_load_explicit(&r->head, memory_order_relaxed);

	while (RQ_LEN - (h - atomic_load_explicit(&r->tail, memory_order_acquire)) < n)
		;
	for (unsigned i = 0; i < n; i++)
		memcpy(r->ent[(h + i) % RQ_LEN], v[i], 16);
	atomic_store_explicit(&r->head, h + n, memory_order_release);
}

/* Take what is there (at most 64); returns how many, the last in *last. */
static unsigned rq_get(struct rq_ring *r, uint32_t *last)
{
	unsigned t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	unsigned n = atomic_load_explicit(&r->head, memory_order_acquire) - t;
	uint32_t copy[64][4];

	if (n > 64)
		n = 64;
	for (unsigned i = 0; i < n; i++)
		memcpy(copy[i], r->ent[(t + i) % RQ_LEN], 16);
	atomic_store_explicit(&r->tail, t + n, memory_order_release);
	if (n)
		*last = copy[n - 1][2];
	return n;
}

static void *rq_peer(void *arg)
{
	struct rq *q = arg;
	uint32_t v[1][4] = {{0, 1, 0, 0}}, last = 0;
	unsigned got = 0, want = q->rate ? shm_count : iters;

	bench_pin_self(1);
	atomic_store(&q->ready, true);
	while (got < want) {
		unsigned n = rq_get(&q->a2b, &last);

		got += n;
		if (n && !q->rate) {
			v[0][2] = last;
			rq_put(&q->b2a, (const uint32_t (*)[4])v, 1);
		}
	}
	q->sink = last;
	q->t_end = bu_now_ns();
	return NULL;
}

static int raw_queue_run(bool rate, double *out)
{
	static uint32_t v[MAX_BATCH][4];
	struct rq *q = aligned_alloc(64, sizeof(struct rq));
	double *t = rate ? NULL : calloc(iters, sizeof(double));
	pthread_t th;
	int64_t t0;
	uint32_t last = 0;

	if (!q || (!rate && !t))
		return free(q), free(t), -ENOMEM;
	memset(q, 0, sizeof(*q));
	q->rate = rate;
	if (pthread_create(&th, NULL, rq_peer, q))
		return free(q), free(t), -EAGAIN;
	while (!atomic_load(&q->ready))
		sched_yield();
	t0 = bu_now_ns();
	if (rate) {
		for (unsigned sent = 0; sent < shm_count; sent += batch)
			rq_put(&q->a2b, (const uint32_t (*)[4])v,
			       shm_count - sent < batch ? shm_count - sent : batch);
	} else {
		for (unsigned i = 0; i < iters; i++) {
			int64_t t1 = bu_now_ns();

			v[0][2] = i;
			rq_put(&q->a2b, (const uint32_t (*)[4])v, 1);
			while (!rq_get(&q->b2a, &last))
				;
			t[i] = (double)(bu_now_ns() - t1);
		}
	}
	pthread_join(th, NULL);
	*out = rate ? shm_count / ((double)(q->t_end - t0) / 1e9) : bu_median(t, iters);
	free(t);
	free(q);
	return 0;
}

/* ---- the table ---------------------------------------------------------------- */

static const struct bcase {
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
#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* Per case: [0] SDM, [1] raw, [2] ratio; rtt and rate; one value per run. */
struct result {
	double rtt[3][MAX_RUNS], rate[3][MAX_RUNS];
	bool ok;
};

/* A fresh pair for one measurement (a pair's counters start at zero). */
static int with_pair(const struct bcase *c, bool spin, const char *path, const uint8_t *key,
		     int (*fn)(struct pair *, bool, double *), const char *what, double *out)
{
	struct pair p;
	int r = make_pair(&p, c->ch, path, c->keyed ? key : NULL);

	if (r)
		fprintf(stderr, "bench_sdm: %s: setup failed\n", c->name);
	else if ((r = fn(&p, spin, out)))
		explain(&p, what);
	free_pair(&p);
	return r;
}

static int run_case(const struct bcase *c, bool spin, const char *path, const uint8_t *key,
		    struct result *res, unsigned run)
{
	size_t fs = c->keyed ? 41 : 20;
	int r;

	if (c->ch == IVL_SDM_CHAN_LOCAL) {
		/* One process: against the raw in-process queue. */
		if ((r = raw_queue_run(false, &res->rtt[1][run])) ||
		    (r = raw_queue_run(true, &res->rate[1][run])))
			return r;
	} else if ((r = raw_run(c->tcp, spin, fs, false, &res->rtt[1][run])) ||
		   (r = raw_run(c->tcp, spin, fs, true, &res->rate[1][run]))) {
		return r;
	}
	if (
	    (r = with_pair(c, spin, path, key, sdm_rtt, "round trip", &res->rtt[0][run])) ||
	    (r = with_pair(c, spin, path, key, sdm_rate, "one-way", &res->rate[0][run])))
		return r;
	res->rtt[2][run] = res->rtt[0][run] / res->rtt[1][run];
	res->rate[2][run] = res->rate[0][run] / res->rate[1][run];
	return 0;
}

static double med(const double *v, unsigned n)
{
	double tmp[MAX_RUNS];

	memcpy(tmp, v, n * sizeof(double));
	return bu_median(tmp, n);
}

/* The same medians as the table, one JSON object per wait mode. */
static int report_json(bool spin, const struct result *res)
{
	static bool first = true;
	bool first_case = true;

	printf("%s{\"wait\": \"%s\", \"cases\": [", first ? "" : ", ", spin ? "spin" : "block");
	first = false;
	for (size_t i = 0; i < NCASES; i++) {
		if (!res[i].ok)
			continue;
		printf("%s{\"name\": \"%s\", \"frame\": %u, \"rtt_ns\": %.0f, \"raw_rtt_ns\": %.0f, "
		       "\"rtt_ratio\": %.3f, \"signals_per_s\": %.0f, \"raw_per_s\": %.0f, "
		       "\"rate_ratio\": %.3f}",
		       first_case ? "" : ", ", cases[i].name, cases[i].keyed ? 41 : 20,
		       med(res[i].rtt[0], runs), med(res[i].rtt[1], runs), med(res[i].rtt[2], runs),
		       med(res[i].rate[0], runs), med(res[i].rate[1], runs),
		       med(res[i].rate[2], runs));
		first_case = false;
	}
	printf("]}");
	return 0;
}

static int report(bool spin, const char *path, const uint8_t *key, const char *only)
{
	static struct result res[NCASES];
	int fail = 0;

	for (size_t i = 0; i < NCASES; i++)
		res[i].ok = !only || !strcmp(only, cases[i].name);
	for (unsigned run = 0; run < runs; run++)
		for (size_t i = 0; i < NCASES; i++) {
			int r;

			if (!res[i].ok)
				continue;
			r = run_case(&cases[i], spin, path, key, &res[i], run);
			if (r) {
				fprintf(stderr, "bench_sdm: %s (%s): %s\n", cases[i].name,
					spin ? "spin" : "block", strerror(-r));
				res[i].ok = false;
				fail = 1;
			}
		}
	if (json)
		return report_json(spin, res) | fail;
	printf("\nwait=%s: %u run(s), medians; ratios are medians of per-run SDM/raw\n",
	       spin ? "spin" : "block", runs);
	printf("%-9s %3s %9s %9s %7s  %12s %12s %7s\n", "channel", "B", "rtt ns", "raw ns",
	       "x raw", "signals/s", "raw/s", "/ raw");
	for (size_t i = 0; i < NCASES; i++) {
		if (!res[i].ok)
			continue;
		printf("%-9s %3u %9.0f %9.0f %7.2f  %12.0f %12.0f %7.2f\n", cases[i].name,
		       cases[i].keyed ? 41 : 20, med(res[i].rtt[0], runs), med(res[i].rtt[1], runs),
		       med(res[i].rtt[2], runs), med(res[i].rate[0], runs),
		       med(res[i].rate[1], runs), med(res[i].rate[2], runs));
	}
	/* The targets of the SDM issue, judged on these medians. */
	for (size_t i = 0; i < NCASES; i++) {
		if (!res[i].ok)
			continue;
		if (!strcmp(cases[i].name, "unix") || !strcmp(cases[i].name, "tcp"))
			printf("target rtt <= 1.3 x raw on %s: %.2f x, %s\n", cases[i].name,
			       med(res[i].rtt[2], runs),
			       med(res[i].rtt[2], runs) <= 1.3 ? "met" : "NOT met");
		if (!strcmp(cases[i].name, "unix"))
			printf("target >= 1M signals/s one-way on unix (batch %u): %.2f M/s, %s\n",
			       batch, med(res[i].rate[0], runs) / 1e6,
			       med(res[i].rate[0], runs) >= 1e6 ? "met" : "NOT met");
	}
	return fail;
}

int main(int argc, char **argv)
{
	const char *wait = "both", *only = NULL;
	char dir[256], path[300];
	uint8_t key[IVL_SDM_KEY_LEN];
	int fail = 0;

	for (int i = 1; i < argc; i += 2) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
			i--;
		} else if (i + 1 >= argc) {
			iters = 0;
		} else if (!strcmp(argv[i], "--iters"))
			iters = (unsigned)strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--count"))
			count = (unsigned)strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--shm-count"))
			shm_count = (unsigned)strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--batch"))
			batch = (unsigned)strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--runs"))
			runs = (unsigned)strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--wait"))
			wait = argv[i + 1];
		else if (!strcmp(argv[i], "--case"))
			only = argv[i + 1];
		else
			iters = 0;
	}
	if (!iters || !count || !shm_count || !batch || batch > MAX_BATCH || !runs || runs > MAX_RUNS ||
	    (strcmp(wait, "block") && strcmp(wait, "spin") && strcmp(wait, "both")) ||
	    sodium_init() < 0) {
		fprintf(stderr, "usage: bench_sdm [--runs 1..%u] [--iters N] [--count N] "
				"[--shm-count N] [--batch 1..%u] [--wait block|spin|both] [--case NAME] [--json]\n",
			MAX_RUNS, MAX_BATCH);
		return 2;
	}
	randombytes_buf(key, sizeof(key));
	if (bu_mkdtemp(dir, sizeof(dir), "bench-sdm") < 0)
		return 1;
	snprintf(path, sizeof(path), "%s/sdm.sock", dir);
	bench_pin_self(0);
	if (json) {
		printf("{\"cpu\": ");
		bu_json_str(stdout, bu_cpu_model());
		printf(", \"cpus\": %ld, \"kernel\": ", bu_nproc());
		bu_json_str(stdout, bu_kernel());
		printf(", \"load_start\": %.2f, \"runs\": %u, \"iters\": %u, \"count\": %u, "
		       "\"shm_count\": %u, \"batch\": %u, \"modes\": [",
		       bu_loadavg(), runs, iters, count, shm_count, batch);
	} else {
		printf("SDM vs raw sockets: %s, %ld CPUs, kernel %s, load average %.2f\n",
		       bu_cpu_model(), bu_nproc(), bu_kernel(), bu_loadavg());
		printf("two threads on two CPUs; %u round trips, %u signals (%u on local, link and "
		       "the raw queue) in batches of %u\n",
		       iters, count, shm_count, batch);
	}
	if (strcmp(wait, "spin"))
		fail |= report(false, path, key, only);
	if (strcmp(wait, "block"))
		fail |= report(true, path, key, only);
	if (json)
		printf("], \"load_end\": %.2f, \"ok\": %s}\n", bu_loadavg(),
		       fail ? "false" : "true");
	else
		printf("load average at the end %.2f\n", bu_loadavg());
	bu_rmdir(dir);
	return fail;
}
