/* SPDX-License-Identifier: MIT */
/*
 * The server core as a library (ivl_server_*), driven in-process: options
 * checking, process() never blocking, stats, the peer list, fd accounting
 * and the header on free.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tools/common/util.h"
#include "srvtest.h"
#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>

#include "ivshmem/server-internal.h"

static struct ivl_server_opts base_opts(const char *tag)
{
	struct ivl_server_opts o = {
	    .socket_path = st_sock(tag),
	    .listen_fd = -1,
	    .region = {.kind = IVL_REGION_MEMFD, .name = tag, .size = 1 << 20},
	    .vectors = 2,
	};
	return o;
}

/* Receive one message while driving the server from this thread. */
static int recv_pumped(struct ivl_server *s, struct st_peer *p, struct ivl_msg *m)
{
	int64_t end = tu_now_ms() + ST_TIMEOUT;

	for (;;) {
		struct pollfd pfd[2] = {{.fd = ivl_server_get_fd(s), .events = POLLIN},
					{.fd = p->sock, .events = POLLIN}};
		int ret;

		assert_int_equal(ivl_server_process(s), 0);
		ret = ivl_msg_recv(p->sock, &p->r, m);
		if (ret != -EAGAIN)
			return ret;
		if (tu_now_ms() > end)
			return 0;
		poll(pfd, 2, 10);
	}
}

static void expect_pumped(struct ivl_server *s, struct st_peer *p, int64_t value, bool fd)
{
	struct ivl_msg m;

	assert_int_equal(recv_pumped(s, p, &m), 1);
	assert_true(m.value == value);
	assert_int_equal(m.fd >= 0, fd);
	if (m.fd >= 0)
		close(m.fd);
}

static void handshake_pumped(struct ivl_server *s, struct st_peer *p, const int *others, size_t n,
			     unsigned vectors)
{
	struct ivl_msg m;

	expect_pumped(s, p, 0, false);
	assert_int_equal(recv_pumped(s, p, &m), 1);
	p->id = (int)m.value;
	expect_pumped(s, p, -1, true);
	for (size_t i = 0; i < n; i++)
		for (unsigned v = 0; v < vectors; v++)
			expect_pumped(s, p, others[i], true);
	for (unsigned v = 0; v < vectors; v++)
		expect_pumped(s, p, p->id, true);
}

static void bad_options(void **state)
{
	struct ivl_server *s = (struct ivl_server *)1;
	struct ivl_server_opts o = base_opts("badopts");
	char longpath[200];

	(void)state;
	assert_int_equal(ivl_server_new(&s, NULL), -EINVAL);
	assert_null(s);
	o.vectors = 0;
	assert_int_equal(ivl_server_new(&s, &o), -EINVAL);
	o.vectors = 65;
	assert_int_equal(ivl_server_new(&s, &o), -EINVAL);
	o = base_opts("badopts");
	o.max_peers = 65537;
	assert_int_equal(ivl_server_new(&s, &o), -EINVAL);
	o = base_opts("badopts");
	o.socket_path = NULL;
	assert_int_equal(ivl_server_new(&s, &o), -EINVAL);
	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	o.socket_path = longpath;
	assert_int_equal(ivl_server_new(&s, &o), -ENAMETOOLONG);
	/* max_peers too large for the region's header. */
	o = base_opts("badopts");
	o.region.size = 8192;
	o.max_peers = 256;
	assert_int_equal(ivl_server_new(&s, &o), -ENOSPC);
	assert_int_equal(access(st_sock("badopts"), F_OK), -1);
	/* An inherited fd must be a listening socket; it is ours either way. */
	o = base_opts("badopts");
	o.listen_fd = ivl_eventfd_new();
	assert_true(o.listen_fd > 0);
	assert_int_equal(ivl_server_new(&s, &o), -ENOTSOCK);
	assert_int_equal(fcntl(o.listen_fd, F_GETFD), -1);
	/* Nothing leaked and free(NULL) is fine. */
	ivl_server_free(NULL);
	assert_int_equal(ivl_server_process(NULL), -EINVAL);
}

static void stats_and_peers(void **state)
{
	struct ivl_server_opts o = base_opts("stats");
	struct ivl_server *s;
	struct ivl_server_stats st, st0;
	struct ivl_server_peer_info info[4];
	struct ivl_wire_hello h = {.magic = IVL_HELLO_MAGIC,
				   .version = IVL_HELLO_VERSION,
				   .size = sizeof(h),
				   .name = "api-peer"};
	struct st_peer a, b;
	const struct ivl_shm_header *hdr;
	struct ivl_shm_header valid;
	int fds_before = tu_count_fds();

	(void)state;
	assert_int_equal(ivl_server_new(&s, &o), 0);
	/* Nothing to do: process() returns at once. */
	assert_int_equal(ivl_server_process(s), 0);
	ivl_server_get_stats(s, &st0);
	assert_int_equal(st0.peers, 0);
	assert_true(st0.fds_in_use >= 5);
	hdr = ivl_region_base(ivl_server_region(s));
	assert_int_equal(ivl_shm_validate(hdr, 1 << 20, &valid), 0);
	assert_int_equal(valid.vectors, 2);
	assert_int_equal(valid.max_peers, 256);
	assert_int_equal(valid.server_pid, getpid());

	st_connect(&a, st_sock("stats"));
	handshake_pumped(s, &a, NULL, 0, 2);
	assert_int_equal(send(a.sock, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	expect_pumped(s, &a,
		      IVL_EXT_MSG(IVL_EXT_WELCOME, 2 | ((IVL_FEAT_HELLO | IVL_FEAT_NAMES) << 16)),
		      false);
	st_connect(&b, st_sock("stats"));
	handshake_pumped(s, &b, (int[]){a.id}, 1, 2);
	expect_pumped(s, &a, b.id, true);
	expect_pumped(s, &a, b.id, true);

	ivl_server_get_stats(s, &st);
	assert_int_equal(st.peers, 2);
	assert_true(st.accepted == 2);
	assert_true(st.refused == 0);
	/* Two sockets and four eventfds more. */
	assert_int_equal(st.fds_in_use, st0.fds_in_use + 6);
	/* 3 + 2 (a), 3 + 2 + 2 (b), b's join to a, and the welcome. */
	assert_true(st.messages_sent == 5 + 7 + 2 + 1);

	assert_int_equal(ivl_server_peers(s, NULL, 0), 2);
	assert_int_equal(ivl_server_peers(s, info, 1), 2);
	assert_int_equal(ivl_server_peers(s, info, 4), 2);
	assert_int_equal(info[0].id, a.id);
	assert_int_equal(info[1].id, b.id);
	assert_int_equal(info[0].state, IVL_PEER_READY);
	assert_int_equal(info[0].pid, getpid());
	assert_int_equal(info[0].uid, getuid());
	assert_string_equal(info[0].name, "api-peer");
	assert_string_equal(info[1].name, "");
	assert_int_equal(info[0].queued, 0);

	st_close(&b);
	expect_pumped(s, &a, b.id, false);
	ivl_server_get_stats(s, &st);
	assert_int_equal(st.peers, 1);
	assert_int_equal(st.fds_in_use, st0.fds_in_use + 3);
	st_close(&a);
	for (int64_t end = tu_now_ms() + ST_TIMEOUT; st.peers; usleep(1000)) {
		assert_int_equal(ivl_server_process(s), 0);
		ivl_server_get_stats(s, &st);
		assert_true(tu_now_ms() < end);
	}
	assert_int_equal(st.fds_in_use, st0.fds_in_use);

	/* Keep a mapping to look at the header after free. */
	{
		struct ivl_region *r;
		int fd = dup(ivl_region_fd(ivl_server_region(s)));
		assert_int_equal(ivl_region_from_fd(&r, fd), 0);
		ivl_server_free(s);
		assert_int_equal(ivl_shm_validate(ivl_region_base(r), 1 << 20, NULL), -ESHUTDOWN);
		ivl_region_free(r);
	}
	assert_int_equal(access(st_sock("stats"), F_OK), -1);
	assert_int_equal(tu_count_fds(), fds_before);
}

/* An inherited listener (socket activation) is used as is, and its path
 * is not removed on free. */
static void inherited_listener(void **state)
{
	struct ivl_server_opts o = base_opts("inherit");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ivl_server *s;
	struct st_peer a;
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	(void)state;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", st_sock("inherit"));
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 8), 0);
	o.listen_fd = lfd;
	o.raw = true;
	assert_int_equal(ivl_server_new(&s, &o), 0);
	st_connect(&a, st_sock("inherit"));
	handshake_pumped(s, &a, NULL, 0, 2);
	/* raw: the region is untouched */
	assert_int_equal(ivl_shm_validate(ivl_region_base(ivl_server_region(s)), 1 << 20, NULL),
			 -ENOENT);
	st_close(&a);
	ivl_server_free(s);
	assert_int_equal(access(st_sock("inherit"), F_OK), 0);
	unlink(st_sock("inherit"));
}

/* Zero-initialised options with a path must not take stdin as listener. */
static void zero_listen_fd_is_not_stdin(void **state)
{
	struct ivl_server_opts o = base_opts("zerofd");
	struct ivl_server *s;

	(void)state;
	o.listen_fd = 0;
	assert_int_equal(ivl_server_new(&s, &o), 0);
	assert_int_equal(access(st_sock("zerofd"), F_OK), 0);
	ivl_server_free(s);
	assert_true(fcntl(0, F_GETFD) >= 0);
}

/* The hello parser on its own: every prefix of a good hello is "so far
 * fine", garbage is refused from its first word. */
static void hello_parser(void **state)
{
	struct ivl_wire_hello h = {.magic = IVL_HELLO_MAGIC,
				   .version = IVL_HELLO_VERSION,
				   .size = sizeof(h),
				   .features = ~0u,
				   .reserved = 7};
	char name[IVL_NAME_LEN + 1];

	(void)state;
	memset(h.name, 'n', sizeof(h.name)); /* not NUL terminated */
	h.name[3] = '\n';
	for (size_t i = 0; i < sizeof(h); i++)
		assert_int_equal(ivl__hello_check(&h, i, name), 0);
	assert_int_equal(ivl__hello_check(&h, sizeof(h), name), 1);
	assert_int_equal(strlen(name), IVL_NAME_LEN);
	assert_int_equal(name[3], '?');
	assert_int_equal(ivl__hello_check(&h, sizeof(h) + 1, name), -EPROTO);
	assert_int_equal(ivl__hello_check("garbage!", 4, name), -EPROTO);
	h.version = 2;
	assert_int_equal(ivl__hello_check(&h, sizeof(h), name), -EPROTONOSUPPORT);
	h.version = IVL_HELLO_VERSION;
	h.size = 64;
	assert_int_equal(ivl__hello_check(&h, sizeof(h), name), -EPROTONOSUPPORT);
}

static void raise_nofile(void **state)
{
	struct rlimit rl;
	long n;

	(void)state;
	n = tool_raise_nofile();
	assert_true(n > 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true((rlim_t)n == rl.rlim_cur);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(bad_options),	  cmocka_unit_test(stats_and_peers),
	    cmocka_unit_test(inherited_listener), cmocka_unit_test(zero_listen_fd_is_not_stdin),
	    cmocka_unit_test(hello_parser),	  cmocka_unit_test(raise_nofile),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
