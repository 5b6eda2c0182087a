/* SPDX-License-Identifier: MIT */
/*
 * The ivshmem message codec (docs/protocol.md §1): 8-byte little-endian signed
 * values on a UNIX stream socket, each optionally carrying one fd.
 *
 * The stream is byte-oriented, so a message can arrive in pieces and its fd
 * rides on whichever piece the kernel delivers first.  The reader therefore
 * never asks the kernel for more than the current message still needs: an fd
 * that arrives with a read always belongs to the message being assembled.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/internal.h"
#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>

/*
 * A hostile sender may attach many fds to one byte; the kernel installs as
 * many as fit here and reports MSG_CTRUNC for the rest (which it releases
 * itself).  Room for several lets us see and close a small burst ourselves;
 * any count above one is a protocol error either way.  Credentials
 * and a pidfd get their own room, so an owner that sets SO_PASSCRED or
 * SO_PASSPIDFD loses nothing.
 */
#define MAX_RX_FDS 16

/* Linux >= 6.5 may attach a pidfd when SO_PASSPIDFD is set; it is an fd we
 * would own, so it must be closed even though we never ask for one. */
#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif

static void encode(uint8_t out[IVL_MSG_SIZE], int64_t value)
{
	uint64_t u = (uint64_t)value;
	int i;

	for (i = 0; i < IVL_MSG_SIZE; i++)
		out[i] = (uint8_t)(u >> (8 * i));
}

static int64_t decode(const uint8_t in[IVL_MSG_SIZE])
{
	uint64_t u = 0;
	int i;

	for (i = 0; i < IVL_MSG_SIZE; i++)
		u |= (uint64_t)in[i] << (8 * i);
	/* Two's complement conversion without implementation-defined casts
	 * of out-of-range values. */
	if (u >> 63)
		return -(int64_t)(~u) - 1;
	return (int64_t)u;
}

static void close_fds(const int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		ivl__close(fds[i]);
}

IVL_EXPORT int ivl_msg_send(int sock, int64_t value, int fd)
{
	uint8_t buf[IVL_MSG_SIZE];
	union {
		char space[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (sock < 0)
		return -EBADF;
	encode(buf, value);
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.space;
		mh.msg_controllen = sizeof(ctl.space);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n != IVL_MSG_SIZE) {
		/* An 8-byte write to a UNIX stream socket is a single skb and
		 * goes whole or not at all; if it ever did not, the stream is
		 * out of step and the connection must go. */
		ivl__err("ivshmem: short send (%zd of %d bytes)", n, IVL_MSG_SIZE);
		return -EIO;
	}
	return 0;
}

IVL_EXPORT void ivl_msg_reader_init(struct ivl_msg_reader *r)
{
	memset(r->buf, 0, sizeof(r->buf));
	r->have = 0;
	r->fd = -1;
}

IVL_EXPORT void ivl_msg_reader_reset(struct ivl_msg_reader *r)
{
	if (!r)
		return;
	r->fd = ivl__close(r->fd);
	r->have = 0;
}

IVL_EXPORT size_t ivl_msg_reader_want(const struct ivl_msg_reader *r)
{
	/* A corrupted 'have' must not turn into a huge read size. */
	if (r->have >= IVL_MSG_SIZE)
		return IVL_MSG_SIZE;
	return IVL_MSG_SIZE - r->have;
}

IVL_EXPORT int ivl_msg_reader_feed(struct ivl_msg_reader *r, const void *data, size_t len,
				   const int *fds, size_t nfds, struct ivl_msg *out)
{
	if (!r || !out || !data || (nfds && !fds) || r->have >= IVL_MSG_SIZE || len == 0 ||
	    len > ivl_msg_reader_want(r)) {
		/* The fds are ours from the moment of the call. */
		if (fds)
			close_fds(fds, nfds);
		return -EINVAL;
	}
	if (nfds > 1 || (nfds == 1 && r->fd >= 0)) {
		ivl__warn("ivshmem: more than one fd attached to one message");
		close_fds(fds, nfds);
		ivl_msg_reader_reset(r);
		return -EPROTO;
	}
	if (nfds == 1) {
		if (fds[0] < 0) {
			ivl_msg_reader_reset(r);
			return -EINVAL;
		}
		r->fd = fds[0];
	}
	memcpy(r->buf + r->have, data, len);
	r->have += len;
	if (r->have < IVL_MSG_SIZE)
		return 0;
	out->value = decode(r->buf);
	out->fd = r->fd;
	r->fd = -1;
	r->have = 0;
	return 1;
}

/* Collect the fds of every cmsg into @fds (up to @max); returns the count. */
static size_t take_fds(struct msghdr *mh, int *fds, size_t max)
{
	struct cmsghdr *c;
	size_t n = 0;

	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t len, k, i;

		if (c->cmsg_level != SOL_SOCKET ||
		    (c->cmsg_type != SCM_RIGHTS && c->cmsg_type != SCM_PIDFD)) {
			/* e.g. SCM_CREDENTIALS if the owner set SO_PASSCRED:
			 * no fds, nothing to release. */
			continue;
		}
		if (c->cmsg_len < CMSG_LEN(0))
			continue;
		len = c->cmsg_len - CMSG_LEN(0);
		k = len / sizeof(int);
		for (i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (c->cmsg_type == SCM_PIDFD) {
				/* Not part of the protocol: drop it here. */
				ivl__close(fd);
				continue;
			}
			if (n < max)
				fds[n++] = fd;
			else
				ivl__close(fd);
		}
	}
	return n;
}

IVL_EXPORT int ivl_msg_recv(int sock, struct ivl_msg_reader *r, struct ivl_msg *out)
{
	if (!r || !out)
		return -EINVAL;
	for (;;) {
		uint8_t buf[IVL_MSG_SIZE];
		union {
			char space[CMSG_SPACE(MAX_RX_FDS * sizeof(int)) +
				   CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {.iov_base = buf, .iov_len = ivl_msg_reader_want(r)};
		struct msghdr mh = {
		    .msg_iov = &iov,
		    .msg_iovlen = 1,
		    .msg_control = ctl.space,
		    .msg_controllen = sizeof(ctl.space),
		};
		int fds[MAX_RX_FDS];
		size_t nfds;
		ssize_t n;
		int ret;

		do
			n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return -errno;
		nfds = take_fds(&mh, fds, MAX_RX_FDS);
		if (mh.msg_flags & MSG_CTRUNC) {
			ivl__warn("ivshmem: control data truncated (too many fds)");
			close_fds(fds, nfds);
			ivl_msg_reader_reset(r);
			return -EPROTO;
		}
		if (n == 0) {
			int mid = r->have > 0;

			close_fds(fds, nfds);
			ivl_msg_reader_reset(r);
			if (mid) {
				ivl__warn("ivshmem: connection closed inside a message");
				return -EPROTO;
			}
			return -ECONNRESET;
		}
		ret = ivl_msg_reader_feed(r, buf, (size_t)n, fds, nfds, out);
		if (ret != 0)
			return ret;
	}
}
