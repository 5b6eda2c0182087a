/* SPDX-License-Identifier: MIT */
/*
 * Raw wake-up primitives, measured as round trips between two threads:
 * the yardsticks every ivlink doorbell number is divided by.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/internal.h"
#include "primitives.h"

static cpu_set_t startup_cpus;

__attribute__((constructor)) static void save_startup_cpus(void)
{
	if (sched_getaffinity(0, sizeof(startup_cpus), &startup_cpus) != 0)
		CPU_ZERO(&startup_cpus);
}

void bench_pin_self(int cpu)
{
	int n = 0, count = CPU_COUNT(&startup_cpus);
	cpu_set_t one;

	if (!count)
		return;
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &startup_cpus) && n++ == cpu % count) {
			CPU_ZERO(&one);
			CPU_SET(i, &one);
			sched_setaffinity(0, sizeof(one), &one);
			return;
		}
}

/* ---- a generic two-thread ping-pong driver ---------------------------- */

struct pp {
	const struct bench_prim *prim;
	void *ctx;
	unsigned iters;
	uint64_t *samples; /* ns per round trip */
};

static void *pong_thread(void *p)
{
	struct pp *pp = p;

	bench_pin_self(1);
	for (unsigned i = 0; i < pp->iters; i++) {
		pp->prim->wait(pp->ctx, 1);
		pp->prim->signal(pp->ctx, 0);
	}
	return NULL;
}

int bench_prim_run(const struct bench_prim *prim, unsigned iters, uint64_t *samples)
{
	struct pp pp = { prim, NULL, iters, samples };
	pthread_t th;
	int ret;

	ret = prim->setup(&pp.ctx);
	if (ret < 0)
		return ret;
	if (pthread_create(&th, NULL, pong_thread, &pp) != 0) {
		prim->teardown(pp.ctx);
		return -EAGAIN;
	}
	bench_pin_self(0);
	for (unsigned i = 0; i < iters; i++) {
		uint64_t t0 = bench_now_ns();
		prim->signal(pp.ctx, 1);
		prim->wait(pp.ctx, 0);
		samples[i] = bench_now_ns() - t0;
	}
	pthread_join(th, NULL);
	prim->teardown(pp.ctx);
	return 0;
}

/* ---- eventfd ----------------------------------------------------------- */

struct efd_ctx {
	int fd[2];
};

static int efd_setup(void **out)
{
	struct efd_ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->fd[0] = eventfd(0, EFD_CLOEXEC);
	c->fd[1] = eventfd(0, EFD_CLOEXEC);
	if (c->fd[0] < 0 || c->fd[1] < 0) {
		close(c->fd[0]);
		close(c->fd[1]);
		free(c);
		return -errno;
	}
	*out = c;
	return 0;
}

static void efd_signal(void *p, int side)
{
	struct efd_ctx *c = p;
	uint64_t one = 1;

	if (write(c->fd[side], &one, sizeof(one)) < 0)
		abort();
}

static void efd_wait(void *p, int side)
{
	struct efd_ctx *c = p;
	uint64_t v;

	if (read(c->fd[side], &v, sizeof(v)) < 0)
		abort();
}

static void efd_teardown(void *p)
{
	struct efd_ctx *c = p;

	close(c->fd[0]);
	close(c->fd[1]);
	free(c);
}

/* ---- futex ------------------------------------------------------------- */

struct futex_ctx {
	_Atomic uint32_t word[2];
};

static int futex_setup(void **out)
{
	struct futex_ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	*out = c;
	return 0;
}

static void futex_signal(void *p, int side)
{
	struct futex_ctx *c = p;

	atomic_store_explicit(&c->word[side], 1, memory_order_release);
	syscall(SYS_futex, &c->word[side], FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void futex_wait(void *p, int side)
{
	struct futex_ctx *c = p;

	while (!atomic_exchange_explicit(&c->word[side], 0, memory_order_acquire))
		syscall(SYS_futex, &c->word[side], FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

static void futex_teardown(void *p)
{
	free(p);
}

/* ---- pipe -------------------------------------------------------------- */

struct pipe_ctx {
	int p[2][2];
};

static int pipe_setup(void **out)
{
	struct pipe_ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	if (pipe2(c->p[0], O_CLOEXEC) < 0 || pipe2(c->p[1], O_CLOEXEC) < 0) {
		free(c);
		return -errno;
	}
	*out = c;
	return 0;
}

static void pipe_signal(void *p, int side)
{
	struct pipe_ctx *c = p;
	char b = 1;

	if (write(c->p[side][1], &b, 1) != 1)
		abort();
}

static void pipe_wait(void *p, int side)
{
	struct pipe_ctx *c = p;
	char b;

	if (read(c->p[side][0], &b, 1) != 1)
		abort();
}

static void pipe_teardown(void *p)
{
	struct pipe_ctx *c = p;

	for (int i = 0; i < 2; i++) {
		close(c->p[i][0]);
		close(c->p[i][1]);
	}
	free(c);
}

/* ---- UNIX stream socket ------------------------------------------------ */

static int unix_setup(void **out)
{
	struct pipe_ctx *c = calloc(1, sizeof(*c));
	int sv[2];

	if (!c)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		free(c);
		return -errno;
	}
	/* side 1 reads sv[1] (written through sv[0]) and vice versa */
	c->p[1][0] = sv[1];
	c->p[1][1] = sv[0];
	c->p[0][0] = sv[0];
	c->p[0][1] = sv[1];
	*out = c;
	return 0;
}

static void unix_teardown(void *p)
{
	struct pipe_ctx *c = p;

	close(c->p[0][0]);
	close(c->p[0][1]);
	free(c);
}

/* ---- polled cache line --------------------------------------------------- */

struct poll_ctx {
	_Alignas(64) _Atomic uint32_t flag[2];
	char pad[56];
};

/* A zeroed context on lines of its own (both CPUs write it). */
static int zalloc_ctx(void **out, size_t align, size_t size)
{
	void *c = aligned_alloc(align, size);

	if (!c)
		return -ENOMEM;
	memset(c, 0, size);
	*out = c;
	return 0;
}

static int poll_setup(void **out)
{
	return zalloc_ctx(out, 64, sizeof(struct poll_ctx));
}

static void poll_signal(void *p, int side)
{
	struct poll_ctx *c = p;

	atomic_store_explicit(&c->flag[side], 1, memory_order_release);
}

static void poll_wait(void *p, int side)
{
	struct poll_ctx *c = p;

	while (!atomic_load_explicit(&c->flag[side], memory_order_acquire))
		ivl__cpu_relax();
	atomic_store_explicit(&c->flag[side], 0, memory_order_relaxed);
}

/* ---- the seed's level-triggered bitmask, raw ---------------------------- */

/*
 * The link round trip of bench_doorbell with no library in between, in the
 * same memory layout: the sender stores a value on its own line, then rings
 * by the doorbell bitmask of the ivshmem review (seed 003, docs/protocol.md
 * §3): it checks the receiver's entry and, when the bit is clear, ORs it in
 * (an atomic read-modify-write: several senders share the word).  The
 * receiver polls its word, clears what it saw (atomic again: senders may be
 * ORing more), then reads the value.  The two 64-byte entries sit side by
 * side as in the peer table, the two values on adjacent lines as in the
 * link test's application area (the layout matters: docs/PERFORMANCE.md).
 * It tells what the protocol's own operations cost against the polled
 * line, the cheapest doorbell there is, and what the library adds on top.
 */
struct bitmask_ctx {
	struct {
		_Alignas(64) _Atomic uint64_t pending; /* the receiver's word */
	} entry[2];
	struct {
		_Alignas(64) _Atomic uint32_t value; /* the message */
		uint32_t sent;			     /* sender's last value */
	} msg[2];
	struct {
		_Alignas(128) uint32_t seen; /* receiver's last value (private) */
	} rx[2];
};

static int bitmask_setup(void **out)
{
	return zalloc_ctx(out, 128, sizeof(struct bitmask_ctx));
}

static void bitmask_signal(void *p, int side)
{
	struct bitmask_ctx *c = p;

	atomic_store_explicit(&c->msg[side].value, ++c->msg[side].sent, memory_order_release);
	if (!(atomic_load_explicit(&c->entry[side].pending, memory_order_relaxed) & 1))
		atomic_fetch_or_explicit(&c->entry[side].pending, 1, memory_order_seq_cst);
}

static void bitmask_wait(void *p, int side)
{
	struct bitmask_ctx *c = p;

	for (;;) {
		while (!atomic_load_explicit(&c->entry[side].pending, memory_order_relaxed))
			ivl__cpu_relax();
		atomic_exchange_explicit(&c->entry[side].pending, 0, memory_order_acquire);
		uint32_t v = atomic_load_explicit(&c->msg[side].value, memory_order_acquire);
		if (v != c->rx[side].seen) {
			c->rx[side].seen = v;
			return;
		}
	}
}

const struct bench_prim bench_prims[] = {
	{ "eventfd", efd_setup, efd_signal, efd_wait, efd_teardown },
	{ "futex", futex_setup, futex_signal, futex_wait, futex_teardown },
	{ "pipe", pipe_setup, pipe_signal, pipe_wait, pipe_teardown },
	{ "unix-socket", unix_setup, pipe_signal, pipe_wait, unix_teardown },
	{ "polled-cache-line", poll_setup, poll_signal, poll_wait, futex_teardown },
	{ "bitmask-doorbell", bitmask_setup, bitmask_signal, bitmask_wait, futex_teardown },
	{ NULL, NULL, NULL, NULL, NULL },
};
