/* SPDX-License-Identifier: MIT */
/*
 * The host backend against servers written here: a scripted thread that
 * accepts one connection and sends exactly what a scenario says, hostile or
 * not.  Checks errors, fd hygiene, and that nothing is ever written to a
 * server whose region has no ivlink header.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"
#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>
#include <ivlink/link.h>
#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>

enum fdkind { F_NONE, F_EVENTFD, F_MEMFD };
/* H_STALE: a good header nobody holds the lock of (its server died). */
enum hdrkind { H_RAW, H_GOOD, H_GARBAGE, H_CLOSED, H_NOHELLO, H_STALE };

struct step {
	int64_t value;
	enum fdkind fd;
	uint64_t size; /* memfd */
	enum hdrkind hdr;
};

struct fake {
	const struct step *steps;
	size_t n;
	bool keep;	   /* leave the connection open for the test */
	bool answer_hello; /* read a hello, then send a welcome */
	bool send_partial; /* end with 3 bytes of a message */
	bool eof;	   /* close right after the script */
	int eof_delay_ms;  /* ... after this pause */
	int lfd, conn;
	int kept[256]; /* our copies of the eventfds sent */
	int nkept;
	ssize_t got; /* bytes the peer wrote before closing */
	struct ivl_wire_hello hello;
	pthread_t th;
	bool joined;
	int lockfd; /* the region lock a live ivlink-server holds */
};

static int send_msg(int sock, int64_t value, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec iov = {.iov_base = &value, .iov_len = sizeof(value)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (fd >= 0) {
		struct cmsghdr *c;

		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == sizeof(value) ? 0 : -errno;
}

static int make_memfd(struct fake *f, uint64_t size, enum hdrkind hdr)
{
	int fd = memfd_create("fake", MFD_CLOEXEC);
	void *base;

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		abort();
	if (hdr == H_RAW)
		return fd;
	if (hdr != H_STALE && f->lockfd < 0) {
		/* As ivlink-server: an OFD write lock on a description of
		 * its own, held while it serves. */
		struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		f->lockfd = open(path, O_RDWR | O_CLOEXEC);
		if (f->lockfd < 0 || fcntl(f->lockfd, F_OFD_SETLK, &fl) < 0)
			abort();
	}
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		abort();
	if (hdr != H_RAW &&
	    ivl_shm_format(base, size, 16, 2, 1,
			   hdr == H_NOHELLO ? 0 : IVL_FEAT_HELLO | IVL_FEAT_NAMES) < 0) {
		munmap(base, size); /* too small for a header: stays raw */
		return fd;
	}
	if (hdr == H_GARBAGE) {
		struct ivl_shm_header *h = base;
		h->header_size = 12345;
		h->peer_table_offset = 0xfffffff0u;
	} else if (hdr == H_CLOSED) {
		__atomic_store_n(&((struct ivl_shm_header *)base)->state, IVL_SHM_CLOSED, __ATOMIC_SEQ_CST);
	}
	munmap(base, size);
	return fd;
}

static int wait_in(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	if (wait_in(f->lfd, 10000) != 1)
		return NULL;
	f->conn = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (f->conn < 0)
		return NULL;
	for (size_t i = 0; i < f->n; i++) {
		const struct step *s = &f->steps[i];
		int fd = -1;

		if (s->fd == F_EVENTFD)
			fd = ivl_eventfd_new();
		else if (s->fd == F_MEMFD)
			fd = make_memfd(f, s->size, s->hdr);
		send_msg(f->conn, s->value, fd);
		if (s->fd == F_EVENTFD && f->keep && f->nkept < 256)
			f->kept[f->nkept++] = fd;
		else if (fd >= 0)
			close(fd);
	}
	if (f->send_partial)
		send(f->conn, "\0\0\0", 3, MSG_NOSIGNAL);
	if (f->eof) {
		if (f->eof_delay_ms)
			usleep((useconds_t)f->eof_delay_ms * 1000);
		shutdown(f->conn, SHUT_WR);
	}
	if (f->answer_hello) {
		if (wait_in(f->conn, 10000) == 1 &&
		    recv(f->conn, &f->hello, sizeof(f->hello), MSG_WAITALL) == sizeof(f->hello))
			send_msg(f->conn, IVL_EXT_MSG(IVL_EXT_WELCOME, 2 | (IVL_FEAT_HELLO << 16)),
				 -1);
	}
	if (f->keep)
		return NULL;
	/* The peer closes after a failed handshake: count what it wrote. */
	for (;;) {
		char buf[256];
		ssize_t k;

		if (wait_in(f->conn, 10000) != 1)
			break;
		k = read(f->conn, buf, sizeof(buf));
		if (k <= 0)
			break;
		f->got += k;
	}
	close(f->conn);
	f->conn = -1;
	return NULL;
}

static const char *sock_path(void)
{
	static int n;
	char name[32];

	snprintf(name, sizeof(name), "fake%d.sock", n++);
	return tu_path(tu_tmpdir(), name);
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static void fake_start(struct fake *f, const char *path)
{
	f->lfd = listen_on(path);
	f->conn = -1;
	f->lockfd = -1;
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

/* The script has been played (the connection may stay open). */
static void fake_join(struct fake *f)
{
	if (!f->joined)
		pthread_join(f->th, NULL);
	f->joined = true;
}

static void fake_stop(struct fake *f)
{
	fake_join(f);
	for (int i = 0; i < f->nkept; i++)
		close(f->kept[i]);
	f->nkept = 0;
	if (f->conn >= 0)
		close(f->conn);
	f->conn = -1;
	if (f->lockfd >= 0)
		close(f->lockfd);
	f->lockfd = -1;
	close(f->lfd);
}

#define ID(v)                                                                                      \
	{                                                                                          \
		(v), F_NONE, 0, 0                                                                  \
	}
#define VEC(v)                                                                                     \
	{                                                                                          \
		(v), F_EVENTFD, 0, 0                                                               \
	}
#define SHM(sz, h)                                                                                 \
	{                                                                                          \
		-1, F_MEMFD, (sz), (h)                                                             \
	}

/* Run one hostile script; the link must fail with @want, leak nothing, and
 * write nothing. */
enum end { END_WAIT, END_EOF, END_PARTIAL };

static void expect_failure(const struct step *steps, size_t n, enum end end, int want, bool hello)
{
	struct fake f = {
	    .steps = steps, .n = n, .send_partial = end == END_PARTIAL, .eof = end != END_WAIT};
	struct ivl_link_host_opts o = {.timeout_ms = 5000};
	struct ivl_link *l = (void *)1;
	const char *path = sock_path();
	int fds;

	fake_start(&f, path);
	fds = tu_count_fds();
	o.socket_path = path;
	assert_int_equal(ivl_link_host_new(&l, &o), want);
	assert_null(l);
	fake_stop(&f);
	/* A hello only where the header invites one. */
	assert_int_equal(f.got, hello ? (ssize_t)sizeof(struct ivl_wire_hello) : 0);
	/* The listening socket is gone too now. */
	assert_int_equal(tu_count_fds(), fds - 1);
}

static void hostile_servers(void **state)
{
	static const struct step bad_version[] = {ID(1)};
	static const struct step garbage[] = {ID(0), ID(0x4141414141414141ll)};
	static const struct step negative[] = {ID(0), ID(3), SHM(1 << 16, H_RAW), ID(-7)};
	static const struct step out_of_order[] = {ID(0), ID(3), VEC(1), SHM(1 << 16, H_RAW)};
	static const struct step vec_before_id[] = {ID(0), VEC(1)};
	static const struct step not_pow2[] = {ID(0), ID(3), SHM(12345, H_RAW), VEC(3)};
	static const struct step two_shm[] = {
	    ID(0), ID(3), SHM(1 << 16, H_RAW), VEC(1), SHM(1 << 16, H_RAW), VEC(3),
	};
	static const struct step bad_header[] = {ID(0), ID(3), SHM(1 << 20, H_GARBAGE), VEC(3)};
	static const struct step closed_header[] = {ID(0), ID(3), SHM(1 << 20, H_CLOSED), VEC(3)};
	static const struct step eof_after_id[] = {ID(0), ID(3)};
	static const struct step fd_on_version[] = {VEC(0)};
	static const struct step leave_unknown[] = {ID(0), ID(3), SHM(1 << 16, H_RAW), ID(9),
						    VEC(3)};
	static const struct step refused[] = {
	    ID(0),
	    ID(3),
	    SHM(1 << 20, H_GOOD),
	    {IVL_EXT_MSG(IVL_EXT_REFUSED, EPERM), F_NONE, 0, 0},
	};

	(void)state;
	expect_failure(bad_version, 1, END_WAIT, -EPROTONOSUPPORT, false);
	expect_failure(garbage, 2, END_WAIT, -EPROTO, false);
	expect_failure(negative, 4, END_WAIT, -EPROTO, false);
	expect_failure(out_of_order, 4, END_WAIT, -EPROTO, false);
	expect_failure(vec_before_id, 2, END_WAIT, -EPROTO, false);
	expect_failure(not_pow2, 4, END_WAIT, -EPROTO, false);
	expect_failure(two_shm, 6, END_WAIT, -EPROTO, false);
	expect_failure(bad_header, 4, END_WAIT, -EPROTO, false);
	expect_failure(closed_header, 4, END_WAIT, -ECONNRESET, false);
	expect_failure(eof_after_id, 2, END_EOF, -ECONNRESET, false);
	expect_failure(eof_after_id, 2, END_PARTIAL, -EPROTO, false);
	expect_failure(fd_on_version, 1, END_WAIT, -EPROTO, false);
	expect_failure(leave_unknown, 5, END_WAIT, -EPROTO, false);
	expect_failure(refused, 4, END_WAIT, -ECONNRESET, true);
}

static void no_server(void **state)
{
	struct ivl_link_host_opts o = {.timeout_ms = 2000};
	struct ivl_link *l = (void *)1;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char longpath[200];
	int fd, fds = tu_count_fds();

	(void)state;
	o.socket_path = tu_path(tu_tmpdir(), "missing.sock");
	assert_int_equal(ivl_link_host_new(&l, &o), -ENOENT);
	assert_null(l);

	/* A socket file nobody listens on. */
	o.socket_path = tu_path(tu_tmpdir(), "dead.sock");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", o.socket_path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(ivl_link_host_new(&l, &o), -ECONNREFUSED);
	close(fd);

	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	o.socket_path = longpath;
	assert_int_equal(ivl_link_host_new(&l, &o), -ENAMETOOLONG);
	o.socket_path = "";
	assert_int_equal(ivl_link_host_new(&l, &o), -EINVAL);
	o.socket_path = tu_path(tu_tmpdir(), "missing.sock");
	o.vectors = 65;
	assert_int_equal(ivl_link_host_new(&l, &o), -EINVAL);
	o.vectors = 0;
	o.timeout_ms = -2;
	assert_int_equal(ivl_link_host_new(&l, &o), -EINVAL);
	assert_int_equal(ivl_link_host_new(NULL, &o), -EINVAL);
	assert_int_equal(tu_count_fds(), fds);
}

static void silent_server(void **state)
{
	struct ivl_link_host_opts o = {.timeout_ms = 300};
	struct ivl_link *l = (void *)1;
	const char *path = sock_path();
	int lfd = listen_on(path), fds = tu_count_fds();

	(void)state;
	/* Connected (the backlog takes us) but never a byte. */
	o.socket_path = path;
	assert_int_equal(ivl_link_host_new(&l, &o), -ETIMEDOUT);
	assert_null(l);
	assert_int_equal(tu_count_fds(), fds);
	close(lfd);
}

#define RINGS 5000

struct ringer {
	struct ivl_link *l;
	uint16_t peer, vector;
	atomic_int errors;
};

static void *ring_thread(void *arg)
{
	struct ringer *r = arg;

	for (int i = 0; i < RINGS; i++)
		if (ivl_link_ring(r->l, r->peer, r->vector) != 0)
			atomic_fetch_add(&r->errors, 1);
	return NULL;
}

/* Take events until one of @type arrives (bounded). */
static struct ivl_link_event wait_for(struct ivl_link *l, enum ivl_link_event_type type)
{
	struct ivl_link_event ev;
	int64_t end = tu_now_ms() + 10000;

	while (tu_now_ms() < end) {
		int n = ivl_link_wait(l, &ev, 1, 1000);
		assert_true(n >= 0);
		if (n == 1 && ev.type == type)
			return ev;
	}
	fail_msg("event %d never came", type);
	return ev;
}

static void raw_server_works_silently(void **state)
{
	/* Version, my ID 2, a raw region, peer 0 with 2 vectors, mine. */
	static const struct step hs[] = {
	    ID(0), ID(2), SHM(1 << 16, H_RAW), VEC(0), VEC(0), VEC(2), VEC(2),
	};
	struct fake f = {.steps = hs, .n = 7, .keep = true};
	struct ivl_link_host_opts o = {.timeout_ms = 5000, .name = "never-sent", .vectors = 2};
	struct ivl_link *l;
	struct ivl_link_event ev;
	const char *path = sock_path();
	uint16_t ids[4];
	uint64_t cnt, size;
	char buf[8];
	int fds, e5[2];

	(void)state;
	fake_start(&f, path);
	fds = tu_count_fds();
	o.socket_path = path;
	assert_int_equal(ivl_link_host_new(&l, &o), 0);
	fake_join(&f);
	assert_int_equal(ivl_link_id(l), 2);
	assert_int_equal(ivl_link_vectors(l), 2);
	assert_null(ivl_link_header(l));
	assert_ptr_equal(ivl_link_app_area(l, &size), ivl_link_region(l, NULL));
	assert_true(size == 1 << 16);
	assert_int_equal(ivl_link_peers(l, ids, 4), 1);
	assert_int_equal(ids[0], 0);
	assert_string_equal(ivl_link_peer_name(l, 0), "");
	ev = wait_for(l, IVL_LINK_JOIN);
	assert_int_equal(ev.peer, 0);

	/* Ringing peer 0's vector 1 writes the fd the server handed out. */
	assert_int_equal(ivl_link_ring(l, 0, 1), 0);
	assert_int_equal(ivl_eventfd_drain(f.kept[1], &cnt), 1);
	assert_true(cnt == 1);
	assert_int_equal(ivl_eventfd_drain(f.kept[0], &cnt), 0);
	assert_int_equal(ivl_link_ring(l, 0, 2), -ERANGE);
	assert_int_equal(ivl_link_ring(l, 1, 0), -ENOENT);
	/* Rings from several threads at once all land. */
	{
		pthread_t th[4];
		struct ringer r = {.l = l, .peer = 0, .vector = 1};

		for (int i = 0; i < 4; i++)
			assert_int_equal(pthread_create(&th[i], NULL, ring_thread, &r), 0);
		for (int i = 0; i < 4; i++)
			assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(atomic_load(&r.errors), 0);
		assert_int_equal(ivl_eventfd_drain(f.kept[1], &cnt), 1);
		assert_true(cnt == 4 * RINGS);
	}
	/* A ring on my vector 0 (as peer 0 would do). */
	assert_int_equal(ivl_eventfd_ring(f.kept[2]), 0);
	ev = wait_for(l, IVL_LINK_DOORBELL);
	assert_int_equal(ev.vector, 0);
	assert_int_equal(ev.count, 1);

	/* Peer 5 joins with 2 vectors (a third is closed), peer 0 leaves. */
	for (int i = 0; i < 2; i++) {
		e5[i] = ivl_eventfd_new();
		assert_int_equal(send_msg(f.conn, 5, e5[i]), 0);
	}
	assert_int_equal(send_msg(f.conn, 5, f.kept[0]), 0);
	ev = wait_for(l, IVL_LINK_JOIN);
	assert_int_equal(ev.peer, 5);
	assert_int_equal(ivl_link_peer_vectors(l, 5), 2);
	assert_int_equal(ivl_link_ring(l, 5, 1), 0);
	assert_int_equal(ivl_eventfd_drain(e5[1], &cnt), 1);
	assert_int_equal(send_msg(f.conn, 0, -1), 0);
	ev = wait_for(l, IVL_LINK_LEAVE);
	assert_int_equal(ev.peer, 0);
	assert_int_equal(ivl_link_ring(l, 0, 0), -ENOENT);
	assert_int_equal(ivl_link_peers(l, ids, 4), 1);
	assert_int_equal(ids[0], 5);

	/* Never a byte towards a server without an ivlink header. */
	assert_int_equal(recv(f.conn, buf, sizeof(buf), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);

	/* The server goes away: DOWN once, then -ENOTCONN. */
	close(f.conn);
	f.conn = -1;
	ev = wait_for(l, IVL_LINK_DOWN);
	assert_int_equal(ivl_link_process(l, &ev, 1), -ENOTCONN);
	assert_int_equal(ivl_link_ring(l, 5, 0), -ENOTCONN);
	ivl_link_free(l);
	close(e5[0]);
	close(e5[1]);
	fake_stop(&f);
	assert_int_equal(tu_count_fds(), fds - 1);
}

static void hello_on_ivlink_header(void **state)
{
	static const struct step hs[] = {
	    ID(0), ID(1), SHM(1 << 20, H_GOOD), VEC(0), VEC(0), VEC(1), VEC(1),
	};
	struct fake f = {.steps = hs, .n = 7, .keep = true, .answer_hello = true};
	struct ivl_link_host_opts o = {.timeout_ms = 5000, .name = "peer-name"};
	struct ivl_link *l;
	const struct ivl_shm_header *h;
	uint64_t size;
	char *app;
	int fds;

	(void)state;
	o.socket_path = strdup(sock_path());
	fake_start(&f, o.socket_path);
	fds = tu_count_fds();
	assert_int_equal(ivl_link_host_new(&l, &o), 0);
	fake_join(&f);
	assert_true(f.hello.magic == IVL_HELLO_MAGIC);
	assert_int_equal(f.hello.version, IVL_HELLO_VERSION);
	assert_int_equal(f.hello.size, sizeof(struct ivl_wire_hello));
	assert_true(f.hello.features & IVL_FEAT_HELLO);
	assert_memory_equal(f.hello.name, "peer-name\0", 10);
	h = ivl_link_header(l);
	assert_non_null(h);
	app = ivl_link_app_area(l, &size);
	assert_true(app == (char *)ivl_link_region(l, NULL) + h->header_size);
	assert_true(size == (1 << 20) - h->header_size);
	assert_int_equal(ivl_link_vectors(l), 2);
	assert_int_equal(ivl_link_peers(l, NULL, 0), 1);
	/* Peer 0's name as the server would have stored it, with bytes a
	 * hostile writer put there: shown sanitized. */
	{
		struct ivl_shm_peer *e = ivl_shm_peer(ivl_link_region(l, NULL), h, 0);
		memcpy(e->name, "\x01odd\xffname-that-fills-all-32-bytes", 32);
		assert_string_equal(ivl_link_peer_name(l, 0), "?odd?name-that-fills-all-32-byte");
		assert_string_equal(ivl_link_peer_name(l, 9), "");
	}
	fake_stop(&f);
	ivl_link_free(l);
	free((void *)o.socket_path);
	assert_int_equal(tu_count_fds(), fds - 1);
}

static void no_hello_option(void **state)
{
	/* An ivlink header, but the user asked for no hello: the handshake
	 * ends as with QEMU's server and nothing is written. */
	static const struct step hs[] = {ID(0), ID(4), SHM(1 << 20, H_GOOD), VEC(4)};
	static const struct step hs2[] = {ID(0), ID(4), SHM(1 << 20, H_NOHELLO), VEC(4)};
	const struct step *scripts[2] = {hs, hs2};

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct fake f = {.steps = scripts[i], .n = 4, .keep = true};
		struct ivl_link_host_opts o = {.timeout_ms = 5000, .no_hello = i == 0};
		struct ivl_link *l;
		char buf[8];

		o.socket_path = sock_path();
		fake_start(&f, o.socket_path);
		assert_int_equal(ivl_link_host_new(&l, &o), 0);
		fake_join(&f);
		assert_non_null(ivl_link_header(l));
		assert_int_equal(ivl_link_id(l), 4);
		assert_int_equal(ivl_link_vectors(l), 1);
		assert_int_equal(recv(f.conn, buf, sizeof(buf), MSG_DONTWAIT), -1);
		assert_int_equal(errno, EAGAIN);
		ivl_link_free(l);
		fake_stop(&f);
	}
}

/* Deterministic pseudo-random scripts: plausible openings, then anything.
 * Whatever comes, the link fails cleanly or works until DOWN, and no fd
 * stays behind. */
static uint32_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*s >> 33);
}

static void random_step(uint64_t *seed, struct step *st, int pos, int me)
{
	static const uint64_t sizes[] = {1 << 12, 1 << 16, 1 << 20, 12345, 3 << 12};
	static const enum hdrkind hdrs[] = {H_RAW, H_GOOD, H_GARBAGE, H_CLOSED, H_NOHELLO};
	uint32_t r = rnd(seed) % 100;

	memset(st, 0, sizeof(*st));
	/* Mostly the right message for the position, so scripts get deep. */
	if (pos == 0 && r < 90)
		return; /* version 0 */
	if (pos == 1 && r < 90) {
		st->value = me;
		return;
	}
	if (pos == 2 && r < 85) {
		st->value = -1;
		st->fd = F_MEMFD;
		st->size = sizes[rnd(seed) % 5];
		st->hdr = hdrs[rnd(seed) % 5];
		return;
	}
	if (r < 40) {
		st->value = me;
		st->fd = F_EVENTFD;
	} else if (r < 70) {
		st->value = rnd(seed) % 4;
		st->fd = F_EVENTFD;
	} else if (r < 80) {
		st->value = rnd(seed) % 4; /* a leave, known or not */
	} else if (r < 85) {
		st->value = IVL_EXT_MSG(rnd(seed) % 4, rnd(seed));
	} else if (r < 90) {
		st->value = (int64_t)((uint64_t)rnd(seed) << 32 | rnd(seed));
	} else if (r < 95) {
		st->value = -1;
		st->fd = F_MEMFD;
		st->size = 1 << 16;
	} else {
		st->value = 65536 + rnd(seed) % 10;
		st->fd = rnd(seed) % 2 ? F_EVENTFD : F_NONE;
	}
}

static void random_servers(void **state)
{
	uint64_t seed = 0x1f1e1d1c;
	int fds = tu_count_fds(), created = 0;

	(void)state;
	for (int iter = 0; iter < 300; iter++) {
		struct step steps[16];
		size_t n = 3 + rnd(&seed) % 13;
		int me = (int)(rnd(&seed) % 4);
		struct fake f;
		struct ivl_link_host_opts o = {.timeout_ms = 3000, .vectors = rnd(&seed) % 3};
		struct ivl_link *l = NULL;
		int r;

		for (size_t i = 0; i < n; i++)
			random_step(&seed, &steps[i], (int)i, me);
		memset(&f, 0, sizeof(f));
		f.steps = steps;
		f.n = n;
		f.eof = true;
		/* Sometimes long enough for a handshake to end first. */
		f.eof_delay_ms = rnd(&seed) % 4 ? 0 : 40;
		f.answer_hello = rnd(&seed) % 2;
		o.socket_path = sock_path();
		fake_start(&f, o.socket_path);
		r = ivl_link_host_new(&l, &o);
		if (r == 0) {
			struct ivl_link_event ev[16];
			int64_t end = tu_now_ms() + 5000;

			created++;
			/* The server has closed: DOWN must come. */
			for (;;) {
				int k = ivl_link_wait(l, ev, 16, 1000);
				if (k < 0) {
					assert_int_equal(k, -ENOTCONN);
					break;
				}
				assert_true(tu_now_ms() < end);
				for (int i = 0; i < k; i++)
					assert_true(ev[i].type >= IVL_LINK_JOIN &&
						    ev[i].type <= IVL_LINK_DOWN);
			}
			ivl_link_free(l);
		} else {
			assert_null(l);
			assert_true(r == -EPROTO || r == -EPROTONOSUPPORT || r == -ECONNRESET ||
				    r == -ETIMEDOUT);
		}
		fake_stop(&f);
		assert_int_equal(tu_count_fds(), fds);
	}
	/* The generator does reach working links. */
	assert_true(created > 0);
}

/* A header left by an ivlink-server that died, served now by a server that
 * knows nothing of it (QEMU's after a crash of ours): no server holds the
 * region's lock, so the header is not trusted and no hello is written (QEMU's
 * server would drop us for it); the region is used raw. */
static void stale_header_is_raw(void **state)
{
	static const struct step hs[] = {ID(0), ID(4), SHM(1 << 20, H_STALE), VEC(4)};
	struct fake f = {.steps = hs, .n = 4, .keep = true};
	struct ivl_link_host_opts o = {.timeout_ms = 5000, .name = "x"};
	struct ivl_link *l;
	char buf[8];
	int fds;

	(void)state;
	o.socket_path = sock_path();
	fake_start(&f, o.socket_path);
	fds = tu_count_fds();
	assert_int_equal(ivl_link_host_new(&l, &o), 0);
	fake_join(&f);
	assert_null(ivl_link_header(l));
	assert_int_equal(ivl_link_id(l), 4);
	assert_int_equal(recv(f.conn, buf, sizeof(buf), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	ivl_link_free(l);
	fake_stop(&f);
	assert_int_equal(tu_count_fds(), fds - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(hostile_servers),	      cmocka_unit_test(no_server),
	    cmocka_unit_test(silent_server),	      cmocka_unit_test(raw_server_works_silently),
	    cmocka_unit_test(hello_on_ivlink_header), cmocka_unit_test(no_hello_option),
	    cmocka_unit_test(random_servers),	      cmocka_unit_test(stale_header_is_raw),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
