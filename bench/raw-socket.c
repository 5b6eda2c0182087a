/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench-util.h"
#include "raw-socket.h"

/* A few untimed rounds first so that page faults and cold caches of the
 * first calls do not count. */
#define WARMUP 64

static double finish(double *t, unsigned n)
{
	double m = bu_median(t, n);

	free(t);
	return m;
}

double raw_unix_connect_accept_ns(const char *path, unsigned iters)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	double *t;
	int l, ret = 0;

	if (iters == 0 || strlen(path) >= sizeof(sa.sun_path))
		return -EINVAL;
	strcpy(sa.sun_path, path);
	t = calloc(iters, sizeof(*t));
	if (!t)
		return -ENOMEM;
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 16) < 0) {
		ret = -errno;
		goto out;
	}
	for (unsigned i = 0; i < iters + WARMUP; i++) {
		int64_t t0 = bu_now_ns();
		int c, a;

		c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c < 0) {
			ret = -errno;
			goto out;
		}
		/* The backlog has room, so connect() completes at once, then
		 * accept4() finds the connection queued. */
		if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    (a = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			ret = -errno;
			close(c);
			goto out;
		}
		close(a);
		close(c);
		if (i >= WARMUP)
			t[i - WARMUP] = (double)(bu_now_ns() - t0);
	}
out:
	if (l >= 0)
		close(l);
	unlink(path);
	if (ret < 0) {
		free(t);
		return ret;
	}
	return finish(t, iters);
}

/* Send 8 bytes (with @fd if >= 0) on @s and receive them on @r, closing any
 * fd that arrives; *sent is the clock when sendmsg() returned.  0 or -errno. */
static int one_msg(int s, int r, int fd, int64_t *sent)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	int64_t v = 1;
	struct iovec iov = {.iov_base = &v, .iov_len = sizeof(v)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;
	ssize_t n;

	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	n = sendmsg(s, &mh, MSG_NOSIGNAL);
	*sent = bu_now_ns();
	if (n != (ssize_t)sizeof(v))
		return n < 0 ? -errno : -EIO;

	memset(&u, 0, sizeof(u));
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof(u.buf);
	n = recvmsg(r, &mh, MSG_CMSG_CLOEXEC);
	if (n != (ssize_t)sizeof(v))
		return n < 0 ? -errno : -EIO;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int got;

			memcpy(&got, CMSG_DATA(c), sizeof(int));
			close(got);
		}
	}
	return 0;
}

static double msg_loop(unsigned iters, int with_fd, double *send_ns)
{
	int sv[2], efd = -1, ret = 0;
	double *t, *ts;

	if (iters == 0)
		return -EINVAL;
	t = calloc(iters, sizeof(*t));
	ts = calloc(iters, sizeof(*ts));
	if (!t || !ts) {
		free(t);
		free(ts);
		return -ENOMEM;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		free(t);
		free(ts);
		return -errno;
	}
	if (with_fd) {
		efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (efd < 0) {
			ret = -errno;
			goto out;
		}
	}
	for (unsigned i = 0; i < iters + WARMUP; i++) {
		int64_t t0 = bu_now_ns(), sent;

		ret = one_msg(sv[0], sv[1], efd, &sent);
		if (ret < 0)
			goto out;
		if (i >= WARMUP) {
			t[i - WARMUP] = (double)(bu_now_ns() - t0);
			ts[i - WARMUP] = (double)(sent - t0);
		}
	}
out:
	if (efd >= 0)
		close(efd);
	close(sv[0]);
	close(sv[1]);
	if (ret < 0) {
		free(t);
		free(ts);
		return ret;
	}
	if (send_ns)
		*send_ns = bu_median(ts, iters);
	free(ts);
	return finish(t, iters);
}

double raw_scm_rights_msg_ns(unsigned iters, double *send_ns)
{
	return msg_loop(iters, 1, send_ns);
}

double raw_plain_msg_ns(unsigned iters)
{
	return msg_loop(iters, 0, NULL);
}

double raw_eventfd_ns(unsigned iters)
{
	double *t;

	if (iters == 0)
		return -EINVAL;
	t = calloc(iters, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (unsigned i = 0; i < iters + WARMUP; i++) {
		int64_t t0 = bu_now_ns();
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

		if (fd < 0) {
			int e = -errno;

			free(t);
			return e;
		}
		close(fd);
		if (i >= WARMUP)
			t[i - WARMUP] = (double)(bu_now_ns() - t0);
	}
	return finish(t, iters);
}
