/* SPDX-License-Identifier: MIT */
/* The ivshmem message codec over real socketpairs (docs/protocol.md §1). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "testutil.h"
#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>
#include <ivlink/log.h>

struct pair {
	int tx, rx;
};

static struct pair mkpair(void)
{
	int sv[2];
	struct pair p;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	p.tx = sv[0];
	p.rx = sv[1];
	return p;
}

static void closepair(struct pair p)
{
	if (p.tx >= 0)
		close(p.tx);
	if (p.rx >= 0)
		close(p.rx);
}

static int mkeventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	assert_true(fd >= 0);
	return fd;
}

/* Raw sendmsg of @len bytes with @nfds fds in one SCM_RIGHTS cmsg. */
static void raw_send(int sock, const void *data, size_t len, const int *fds, size_t nfds)
{
	union {
		char space[CMSG_SPACE(32 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	assert_true(nfds <= 32);
	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.space;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

static void le_bytes(uint8_t out[8], int64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		out[i] = (uint8_t)((uint64_t)v >> (8 * i));
}

/* Both fds name the same eventfd: a write on one is read on the other. */
static void assert_same_eventfd(int a, int b)
{
	uint64_t one = 1, got = 0;

	assert_int_equal(write(a, &one, sizeof(one)), sizeof(one));
	assert_int_equal(read(b, &got, sizeof(got)), sizeof(got));
	assert_true(got == 1);
}

static void assert_closed(int fd)
{
	errno = 0;
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
}

static void round_trip(void **state)
{
	static const int64_t values[] = {
	    0,	       1,     -1,
	    65535,     65536, INT64_MIN,
	    INT64_MAX, -2,    IVL_EXT_MSG(IVL_EXT_WELCOME, 0x00030004)};
	struct pair p = mkpair();
	struct ivl_msg_reader r;
	struct ivl_msg m;
	int efd = mkeventfd();
	size_t i;

	(void)state;
	ivl_msg_reader_init(&r);
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), -EAGAIN);
	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		int with_fd = i % 2;

		assert_int_equal(ivl_msg_send(p.tx, values[i], with_fd ? efd : -1), 0);
		assert_int_equal(ivl_msg_recv(p.rx, &r, &m), 1);
		assert_true(m.value == values[i]);
		if (with_fd) {
			assert_true(m.fd >= 0);
			assert_true(m.fd != efd);
			/* MSG_CMSG_CLOEXEC */
			assert_int_equal(fcntl(m.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
			assert_same_eventfd(m.fd, efd);
			close(m.fd);
		} else {
			assert_int_equal(m.fd, -1);
		}
	}
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), -EAGAIN);
	close(efd);
	closepair(p);
}

static void wire_is_little_endian(void **state)
{
	struct pair p = mkpair();
	struct ivl_msg_reader r;
	struct ivl_msg m;
	uint8_t b[8], want[8] = {8, 7, 6, 5, 4, 3, 2, 1};
	uint8_t minus1[8];

	(void)state;
	assert_int_equal(ivl_msg_send(p.tx, 0x0102030405060708ll, -1), 0);
	assert_int_equal(recv(p.rx, b, sizeof(b), 0), 8);
	assert_memory_equal(b, want, 8);
	memset(minus1, 0xff, sizeof(minus1));
	assert_int_equal(send(p.tx, minus1, 8, 0), 8);
	ivl_msg_reader_init(&r);
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), 1);
	assert_true(m.value == -1);
	assert_int_equal(m.fd, -1);
	closepair(p);
}

/* One byte per write, the fd on a middle byte: like a slow or hostile
 * sender, or a kernel that splits. */
static void split_bytes_fd_in_middle(void **state)
{
	struct pair p = mkpair();
	struct ivl_msg_reader r;
	struct ivl_msg m;
	uint8_t b[8];
	int efd = mkeventfd();
	int fd_at;

	(void)state;
	for (fd_at = 0; fd_at < 8; fd_at += 3) {
		int i;

		ivl_msg_reader_init(&r);
		le_bytes(b, -1);
		for (i = 0; i < 8; i++) {
			if (i == fd_at)
				raw_send(p.tx, &b[i], 1, &efd, 1);
			else
				assert_int_equal(send(p.tx, &b[i], 1, MSG_NOSIGNAL), 1);
			if (i < 7) {
				assert_int_equal(ivl_msg_recv(p.rx, &r, &m), -EAGAIN);
				assert_int_equal(ivl_msg_reader_want(&r), (size_t)(7 - i));
			}
		}
		assert_int_equal(ivl_msg_recv(p.rx, &r, &m), 1);
		assert_true(m.value == -1);
		assert_true(m.fd >= 0);
		assert_same_eventfd(m.fd, efd);
		close(m.fd);
	}
	close(efd);
	closepair(p);
}

/* A read never crosses a message boundary, so an fd lands on the right one
 * even when two messages share one skb. */
static void fd_belongs_to_its_message(void **state)
{
	struct pair p = mkpair();
	struct ivl_msg_reader r;
	struct ivl_msg m;
	uint8_t b[16];
	int efd = mkeventfd();

	(void)state;
	ivl_msg_reader_init(&r);
	/* A's first half alone, then A's second half + all of B with an fd:
	 * the fd arrives with A's bytes, so it is A's. */
	le_bytes(b, 7);
	le_bytes(b + 8, 9);
	assert_int_equal(send(p.tx, b, 4, 0), 4);
	raw_send(p.tx, b + 4, 12, &efd, 1);
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), 1);
	assert_true(m.value == 7);
	assert_true(m.fd >= 0);
	close(m.fd);
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), 1);
	assert_true(m.value == 9);
	assert_int_equal(m.fd, -1);

	/* Two whole messages in one write, no fd: still two messages. */
	le_bytes(b, 1);
	le_bytes(b + 8, 2);
	assert_int_equal(send(p.tx, b, 16, 0), 16);
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), 1);
	assert_true(m.value == 1);
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), 1);
	assert_true(m.value == 2);
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), -EAGAIN);
	close(efd);
	closepair(p);
}

static void two_fds_one_cmsg(void **state)
{
	struct pair p = mkpair();
	struct ivl_msg_reader r;
	struct ivl_msg m = {0, -1};
	uint8_t b[8];
	int fds[2], base;

	(void)state;
	fds[0] = mkeventfd();
	fds[1] = mkeventfd();
	ivl_msg_reader_init(&r);
	base = tu_count_fds();
	le_bytes(b, 3);
	raw_send(p.tx, b, 8, fds, 2);
	/* Both are in flight now: drop ours so only received copies remain. */
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), -EPROTO);
	assert_int_equal(tu_count_fds(), base - 2);
	closepair(p);
}

static void two_fds_two_bytes(void **state)
{
	struct pair p = mkpair();
	struct ivl_msg_reader r;
	struct ivl_msg m;
	uint8_t b[8];
	int f1 = mkeventfd(), f2 = mkeventfd(), base;

	(void)state;
	ivl_msg_reader_init(&r);
	le_bytes(b, 3);
	raw_send(p.tx, b, 4, &f1, 1);
	raw_send(p.tx, b + 4, 4, &f2, 1);
	close(f1);
	close(f2);
	base = tu_count_fds();
	/* The first fd is held by the reader, the second one is one too many:
	 * both must be closed. */
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), -EPROTO);
	assert_int_equal(tu_count_fds(), base);
	assert_int_equal(r.fd, -1);
	closepair(p);
}

static char last_log[512];

static void capture_log(void *opaque, int level, const char *msg)
{
	(void)opaque;
	(void)level;
	snprintf(last_log, sizeof(last_log), "%s", msg);
}

static void ctrunc_closes_everything(void **state)
{
	struct pair p = mkpair();
	struct ivl_msg_reader r;
	struct ivl_msg m;
	uint8_t b[8];
	int fds[32], base, i;

	(void)state;
	ivl_msg_reader_init(&r);
	base = tu_count_fds();
	for (i = 0; i < 32; i++)
		fds[i] = mkeventfd();
	le_bytes(b, 1);
	raw_send(p.tx, b, 8, fds, 32);
	for (i = 0; i < 32; i++)
		close(fds[i]);
	last_log[0] = 0;
	ivl_log_set(capture_log, NULL, IVL_LOG_DEBUG);
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), -EPROTO);
	ivl_log_set(NULL, NULL, 0);
	/* The kernel could not deliver them all: the truncation path. */
	assert_non_null(strstr(last_log, "truncated"));
	assert_int_equal(tu_count_fds(), base);
	closepair(p);
}

static void eof_handling(void **state)
{
	struct pair p = mkpair();
	struct ivl_msg_reader r;
	struct ivl_msg m;
	uint8_t b[8];
	int efd = mkeventfd(), base;

	(void)state;
	/* EOF on a message boundary: a clean end. */
	ivl_msg_reader_init(&r);
	assert_int_equal(ivl_msg_send(p.tx, 5, -1), 0);
	close(p.tx);
	p.tx = -1;
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), 1);
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), -ECONNRESET);
	closepair(p);

	/* EOF inside a message that already carried an fd. */
	p = mkpair();
	ivl_msg_reader_init(&r);
	le_bytes(b, 5);
	raw_send(p.tx, b, 3, &efd, 1);
	close(efd);
	close(p.tx);
	p.tx = -1;
	base = tu_count_fds();
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), -EPROTO);
	assert_int_equal(tu_count_fds(), base);
	assert_int_equal(r.fd, -1);
	assert_int_equal(r.have, 0);
	closepair(p);
}

static void other_cmsgs_ignored(void **state)
{
	struct pair p = mkpair();
	struct ivl_msg_reader r;
	struct ivl_msg m;
	int on = 1, efd = mkeventfd();

	(void)state;
	/* With SO_PASSCRED every read carries SCM_CREDENTIALS as well. */
	assert_int_equal(setsockopt(p.rx, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
	ivl_msg_reader_init(&r);
	assert_int_equal(ivl_msg_send(p.tx, 42, efd), 0);
	assert_int_equal(ivl_msg_send(p.tx, 43, -1), 0);
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), 1);
	assert_true(m.value == 42);
	assert_true(m.fd >= 0);
	assert_same_eventfd(m.fd, efd);
	close(m.fd);
	assert_int_equal(ivl_msg_recv(p.rx, &r, &m), 1);
	assert_true(m.value == 43);
	assert_int_equal(m.fd, -1);
	close(efd);
	closepair(p);
}

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif

/* Linux >= 6.5 attaches a pidfd to every read when SO_PASSPIDFD is set:
 * fds the protocol never mentions, which must not pile up. */
static void pidfds_closed(void **state)
{
	struct pair p = mkpair();
	struct ivl_msg_reader r;
	struct ivl_msg m;
	uint8_t b[8];
	int on = 1, efd = mkeventfd(), base, i;

	(void)state;
	if (setsockopt(p.rx, SOL_SOCKET, SO_PASSPIDFD, &on, sizeof(on)) < 0) {
		closepair(p);
		close(efd);
		skip();
	}
	assert_int_equal(setsockopt(p.rx, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
	ivl_msg_reader_init(&r);
	base = tu_count_fds();
	le_bytes(b, 11);
	for (i = 0; i < 8; i++) {
		if (i == 5)
			raw_send(p.tx, &b[i], 1, &efd, 1);
		else
			assert_int_equal(send(p.tx, &b[i], 1, 0), 1);
		assert_int_equal(ivl_msg_recv(p.rx, &r, &m), i < 7 ? -EAGAIN : 1);
	}
	assert_true(m.value == 11);
	assert_true(m.fd >= 0);
	assert_same_eventfd(m.fd, efd);
	close(m.fd);
	assert_int_equal(tu_count_fds(), base);
	close(efd);
	closepair(p);
}

static void feed_api(void **state)
{
	struct ivl_msg_reader r;
	struct ivl_msg m;
	uint8_t b[8];
	int f1, f2;

	(void)state;
	ivl_msg_reader_init(&r);
	assert_int_equal(ivl_msg_reader_want(&r), 8);
	le_bytes(b, -123456789);
	/* Bad lengths close the fds handed in. */
	f1 = mkeventfd();
	assert_int_equal(ivl_msg_reader_feed(&r, b, 0, &f1, 1, &m), -EINVAL);
	assert_closed(f1);
	f1 = mkeventfd();
	assert_int_equal(ivl_msg_reader_feed(&r, b, 9, &f1, 1, &m), -EINVAL);
	assert_closed(f1);

	f1 = mkeventfd();
	assert_int_equal(ivl_msg_reader_feed(&r, b, 5, &f1, 1, &m), 0);
	assert_int_equal(ivl_msg_reader_want(&r), 3);
	assert_int_equal(ivl_msg_reader_feed(&r, b + 5, 4, NULL, 0, &m), -EINVAL);
	assert_int_equal(ivl_msg_reader_feed(&r, b + 5, 3, NULL, 0, &m), 1);
	assert_true(m.value == -123456789);
	assert_int_equal(m.fd, f1);
	close(f1);

	/* reset() closes the fd of an incomplete message. */
	f1 = mkeventfd();
	assert_int_equal(ivl_msg_reader_feed(&r, b, 1, &f1, 1, &m), 0);
	ivl_msg_reader_reset(&r);
	assert_closed(f1);
	assert_int_equal(ivl_msg_reader_want(&r), 8);

	/* A second fd for the same message. */
	f1 = mkeventfd();
	f2 = mkeventfd();
	assert_int_equal(ivl_msg_reader_feed(&r, b, 2, &f1, 1, &m), 0);
	assert_int_equal(ivl_msg_reader_feed(&r, b + 2, 2, &f2, 1, &m), -EPROTO);
	assert_closed(f1);
	assert_closed(f2);
	assert_int_equal(ivl_msg_reader_want(&r), 8);
}

static void send_errors(void **state)
{
	struct pair p = mkpair();
	int i, ret = 0;

	(void)state;
	/* Fill the socket: -EAGAIN, never a partial message. */
	for (i = 0; i < 100000; i++) {
		ret = ivl_msg_send(p.tx, i, -1);
		if (ret < 0)
			break;
	}
	assert_int_equal(ret, -EAGAIN);
	close(p.rx);
	p.rx = -1;
	/* No SIGPIPE: the default action would kill this test. */
	assert_int_equal(ivl_msg_send(p.tx, 1, -1), -EPIPE);
	assert_int_equal(ivl_msg_send(-1, 1, -1), -EBADF);
	closepair(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip),
	    cmocka_unit_test(wire_is_little_endian),
	    cmocka_unit_test(split_bytes_fd_in_middle),
	    cmocka_unit_test(fd_belongs_to_its_message),
	    cmocka_unit_test(two_fds_one_cmsg),
	    cmocka_unit_test(two_fds_two_bytes),
	    cmocka_unit_test(ctrunc_closes_everything),
	    cmocka_unit_test(eof_handling),
	    cmocka_unit_test(other_cmsgs_ignored),
	    cmocka_unit_test(pidfds_closed),
	    cmocka_unit_test(feed_api),
	    cmocka_unit_test(send_errors),
	};

	signal(SIGPIPE, SIG_DFL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
