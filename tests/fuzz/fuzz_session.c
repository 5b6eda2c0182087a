/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the peer side of the ivshmem protocol: untrusted server bytes and fd
 * attachments -> message reader -> session state machine.
 *
 * Input layout:
 *   byte 0        bits 0..5: max_vectors - 1; bit 7: go through a real
 *                 socketpair and ivl_msg_recv() instead of feeding directly;
 *                 bit 6 (socket only): SO_PASSCRED, so every read also
 *                 carries a credentials cmsg
 *   then chunks:  one control byte c, then (c & 7) + 1 data bytes;
 *                 (c >> 3) & 3 = fds attached: 0, 1, 2, or 32 (more than
 *                 the receiver's control buffer holds)
 * The fds are dups of one eventfd.  Every input must end with no fd leaked
 * and every event consistent with the protocol (docs/protocol.md §1).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>

#include "fuzz.h"
#include "fuzz_fds.h"

#define MANY_FDS 32

struct model {
	struct ivl_session *cs;
	unsigned max_vectors;
	int ids, shms, welcomes;
	int dead; /* the error that killed the session, or 0 */
};

static int template_fd(void)
{
	static int fd = -1;
	char what[64];
	char path[32];
	ssize_t n;

	if (fd < 0)
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	FUZZ_CHECK(fd >= 0);
	/* The template lives for the whole run: if its number now names
	 * anything else, somebody closed an fd it did not own (a double
	 * close), and dups of it would be sent around as if they were
	 * eventfds. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, what, sizeof(what) - 1);
	FUZZ_CHECK(n > 0);
	what[n] = 0;
	if (strcmp(what, "anon_inode:[eventfd]")) {
		fprintf(stderr, "template fd %d is now %s: closed by someone else\n", fd, what);
		abort();
	}
	return fd;
}

static void check_event(struct model *m, int ret, const struct ivl_session_event *ev)
{
	int me = ivl_session_id(m->cs);

	if (m->dead) {
		FUZZ_CHECK(ret == m->dead);
		FUZZ_CHECK(ev->fd == -1);
		return;
	}
	if (ret < 0) {
		FUZZ_CHECK(ret == -EPROTO || ret == -EPROTONOSUPPORT || ret == -ECONNREFUSED ||
			   ret == -EUSERS || ret == -EACCES || ret == -EMFILE || ret == -ENOMEM);
		FUZZ_CHECK(ev->fd == -1);
		m->dead = ret;
		return;
	}
	if (ret == 0) {
		FUZZ_CHECK(ev->type == IVL_SESSION_NONE && ev->fd == -1);
		return;
	}
	FUZZ_CHECK(ret == 1);
	switch (ev->type) {
	case IVL_SESSION_ID:
		FUZZ_CHECK(m->ids++ == 0 && ev->peer == me && ev->fd == -1);
		break;
	case IVL_SESSION_SHM:
		FUZZ_CHECK(m->ids == 1 && m->shms++ == 0 && ev->fd >= 0);
		break;
	case IVL_SESSION_PEER_VECTOR:
	case IVL_SESSION_OWN_VECTOR:
		FUZZ_CHECK(m->shms == 1 && ev->fd >= 0);
		FUZZ_CHECK((ev->type == IVL_SESSION_OWN_VECTOR) == (ev->peer == me));
		FUZZ_CHECK(ev->vector < m->max_vectors);
		FUZZ_CHECK(ivl_session_peer_vectors(m->cs, ev->peer) == ev->vector + 1u);
		break;
	case IVL_SESSION_PEER_LEFT:
		FUZZ_CHECK(m->shms == 1 && ev->fd == -1 && ev->peer != me);
		FUZZ_CHECK(ivl_session_peer_vectors(m->cs, ev->peer) == 0);
		break;
	case IVL_SESSION_WELCOME:
		FUZZ_CHECK(m->shms == 1 && m->welcomes++ == 0 && ev->fd == -1);
		FUZZ_CHECK(ev->vectors >= 1 && ev->vectors <= IVL_MAX_VECTORS);
		break;
	default:
		FUZZ_CHECK(0);
	}
}

static void deliver(struct model *m, struct ivl_msg *msg)
{
	struct ivl_session_event ev;
	int ret = ivl_session_input(m->cs, msg, &ev);

	FUZZ_CHECK(msg->fd == -1);
	check_event(m, ret, &ev);
	/* The consumer's side of ownership: an fd in an event is ours. */
	if (ret == 1 && ev.fd >= 0)
		close(ev.fd);
}

static size_t chunk_fds(uint8_t c)
{
	static const size_t n[4] = {0, 1, 2, MANY_FDS};

	return n[(c >> 3) & 3];
}

static void dup_fds(int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		fds[i] = fcntl(template_fd(), F_DUPFD_CLOEXEC, 0);
		FUZZ_CHECK(fds[i] >= 0);
	}
}

static void run_direct(struct model *m, const uint8_t *data, size_t size)
{
	struct ivl_msg_reader r;
	size_t i = 0;

	ivl_msg_reader_init(&r);
	while (i < size) {
		uint8_t c = data[i++];
		size_t len = (size_t)(c & 7) + 1, nfds = chunk_fds(c);
		int fds[MANY_FDS];
		struct ivl_msg msg;
		int ret;

		if (len > ivl_msg_reader_want(&r))
			len = ivl_msg_reader_want(&r);
		if (len > size - i)
			len = size - i;
		if (len == 0)
			break;
		dup_fds(fds, nfds);
		ret = ivl_msg_reader_feed(&r, data + i, len, fds, nfds, &msg);
		i += len;
		if (ret == 1)
			deliver(m, &msg);
		else
			FUZZ_CHECK(ret == 0 || (ret == -EPROTO && nfds >= 1));
	}
	ivl_msg_reader_reset(&r);
}

static void send_chunk(int sock, const uint8_t *p, size_t len, size_t nfds)
{
	union {
		char space[CMSG_SPACE(MANY_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	int fds[MANY_FDS];
	size_t i;

	dup_fds(fds, nfds);
	if (nfds) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.space;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	FUZZ_CHECK(sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len);
	for (i = 0; i < nfds; i++)
		close(fds[i]);
}

/* Read everything available; returns the last ivl_msg_recv() result. */
static int drain(struct model *m, int sock, struct ivl_msg_reader *r)
{
	for (;;) {
		struct ivl_msg msg;
		int ret = ivl_msg_recv(sock, r, &msg);

		if (ret == 1) {
			deliver(m, &msg);
			continue;
		}
		FUZZ_CHECK(ret == -EAGAIN || ret == -EPROTO || ret == -ECONNRESET);
		if (ret == -EPROTO)
			continue; /* the reader started over: keep going */
		return ret;
	}
}

static void run_socket(struct model *m, const uint8_t *data, size_t size, int passcred)
{
	struct ivl_msg_reader r;
	int sv[2];
	size_t i = 0;

	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	if (passcred)
		FUZZ_CHECK(
		    setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &passcred, sizeof(passcred)) == 0);
	ivl_msg_reader_init(&r);
	while (i < size) {
		uint8_t c = data[i++];
		size_t len = (size_t)(c & 7) + 1;

		if (len > size - i)
			len = size - i;
		if (len == 0)
			break;
		/* No clamping to the message boundary: the socket may
		 * deliver a chunk in any split, and the reader must cope. */
		send_chunk(sv[0], data + i, len, chunk_fds(c));
		i += len;
		FUZZ_CHECK(drain(m, sv[1], &r) == -EAGAIN);
	}
	close(sv[0]);
	/* The end of the stream must come out as -ECONNRESET.  The kernel may
	 * release the closed end a moment later (a deferred final fput), so
	 * -EAGAIN is retried after a poll, bounded: a second, not a hang. */
	{
		int ret, tries = 0;

		while ((ret = drain(m, sv[1], &r)) == -EAGAIN && tries++ < 100) {
			struct pollfd p = {.fd = sv[1], .events = POLLIN | POLLRDHUP};

			poll(&p, 1, 10);
		}
		FUZZ_CHECK(ret == -ECONNRESET);
	}
	ivl_msg_reader_reset(&r);
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model m;
	int before;

	if (size < 1)
		return 0;
	template_fd();
	before = fuzz_count_fds();
	memset(&m, 0, sizeof(m));
	m.max_vectors = (data[0] & 63u) + 1;
	FUZZ_CHECK(ivl_session_new(&m.cs, m.max_vectors) == 0);
	if (data[0] & 0x80)
		run_socket(&m, data + 1, size - 1, !!(data[0] & 0x40));
	else
		run_direct(&m, data + 1, size - 1);
	ivl_session_free(m.cs);
	/* Every fd the "server" sent was either handed to us in an event
	 * (and closed above) or closed by the library. */
	FUZZ_CHECK(fuzz_count_fds() == before);
	return 0;
}
