/* SPDX-License-Identifier: MIT */
/*
 * Crash survival (issue: if the process that parses peer input dies, a
 * fresh one takes over the same connections).  ivlink-server reads peer
 * input in a reader process; SIGKILL it 20 times with QEMU-protocol peers
 * and an ivlink host peer (`ivlink listen`) connected: no peer sees a
 * leave or a join it should not, every doorbell rung before, during and
 * after each kill arrives (counted exactly), newcomers get the right ID
 * and vectors, hellos sent while the reader is dead or after it restarted
 * are recorded and welcomed, a peer that leaves while the reader is dead
 * is seen leaving, and the fds of the server come back to their baseline.
 * Also: the keeper treats the reader's records as untrusted (garbage,
 * stale and forged records, fds, a lying reader process), and the time
 * from a SIGKILL to a new reader serving is printed (not asserted).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/eventfd.h>
#include <ivlink/server.h>
#include <ivlink/session.h>

#include "hostile.h"
#include "ivshmem/server-internal.h"

#define VEC 4
#define KILLS 20
#define LISTEN_ID 2

/* Wait for "reader pid N started (#@n)" in @log; returns N. */
static pid_t reader_pid(const char *log, unsigned n)
{
	char needle[64], *text, *hit, *line;
	long pid = -1;

	snprintf(needle, sizeof(needle), "started (#%u)", n);
	if (!ho_wait_log(log, needle, 20000))
		fail_msg("the server did not log \"%s\"", needle);
	text = tu_read_file(log);
	hit = text ? strstr(text, needle) : NULL;
	assert_non_null(hit);
	for (line = hit; line > text && line[-1] != '\n'; line--)
		;
	line = strstr(line, "reader pid ");
	assert_true(line && line < hit);
	pid = strtol(line + strlen("reader pid "), NULL, 10);
	free(text);
	assert_true(pid > 1);
	return (pid_t)pid;
}


static void expect_welcome(struct st_peer *p)
{
	struct ivl_msg m;

	assert_int_equal(st_recv(p, &m, ST_TIMEOUT), 1);
	assert_true(m.fd < 0 && IVL_EXT_IS(m.value) && IVL_EXT_OP(m.value) == IVL_EXT_WELCOME);
}

static void send_hello(struct st_peer *p, const char *name)
{
	struct ivl_wire_hello h = {.magic = IVL_HELLO_MAGIC,
				   .version = IVL_HELLO_VERSION,
				   .size = sizeof(h),
				   .features = IVL_FEAT_HELLO};

	memcpy(h.name, name, strlen(name));
	assert_int_equal(write(p->sock, &h, sizeof(h)), sizeof(h));
}





/*
 * Each round, the keeper is stopped (SIGSTOP) while the reader is killed,
 * so that "while the reader is dead" is a real window and not a race:
 * doorbells are rung, a hello is sent and a peer leaves in it.  Then the
 * keeper goes on (SIGCONT), and must notice, restart and lose nothing.
 */
static void reader_killed_repeatedly(void **state)
{
	const char *dir = tu_tmpdir();
	const char *sock = st_sock("rdk"), *shm = st_shm_name("rdk");
	char slog[300], llog[300], name[16], needle[64];
	char *largv[] = {(char *)tu_cli_bin(), "-S", (char *)sock, "listen", NULL};
	struct st_peer a, b, c[KILLS];
	int a_own[VEC], b_own[VEC], a_to_b[1][VEC], b_to_a[1][VEC], a_to_l[VEC];
	int mine = tu_count_fds(), base, i;
	long rss0, rss1;
	pid_t srv, lis, rp, old;

	(void)state;
	snprintf(slog, sizeof(slog), "%s", tu_path(dir, "rdk-server.log"));
	snprintf(llog, sizeof(llog), "%s", tu_path(dir, "rdk-listen.log"));
	srv = st_start(sock, slog, 0, (char *[]){"-M", (char *)shm, "-n", "4", "-l", "1M", NULL});
	rp = reader_pid(slog, 1);
	base = ho_count_fds(srv);
	assert_true(base > 0);

	st_connect(&a, sock);
	assert_int_equal(st_handshake_keep(&a, VEC, NULL, 0, NULL, a_own), 0);
	st_connect(&b, sock);
	assert_int_equal(st_handshake_keep(&b, VEC, (int[]){0}, 1, &b_to_a[0][0], b_own), 1);
	st_expect_join(&a, 1, VEC, a_to_b[0]);
	lis = tu_spawn(largv, llog);
	assert_true(lis > 0);
	st_expect_join(&a, LISTEN_ID, VEC, a_to_l);
	st_expect_join(&b, LISTEN_ID, VEC, NULL);
	assert_true(ho_wait_log(llog, "self peer 2", ST_TIMEOUT));
	assert_true(ho_wait_log(slog, "peer 2 is \"ivlink-cli\"", ST_TIMEOUT));
	rss0 = ho_rss_kib(srv);

	for (i = 0; i < KILLS; i++) {
		int others[4] = {0, 1, LISTEN_ID, -1}, n_others = 3, to_a[4][VEC];

		/* Before, during and after: one doorbell each time. */
		assert_int_equal(ivl_eventfd_ring(a_to_b[0][i % VEC]), 0);
		assert_int_equal(ivl_eventfd_ring(b_to_a[0][0]), 0);
		assert_int_equal(ivl_eventfd_ring(a_to_l[0]), 0);

		assert_int_equal(kill(srv, SIGSTOP), 0);
		assert_int_equal(kill(rp, SIGKILL), 0);
		assert_int_equal(ivl_eventfd_ring(a_to_b[0][i % VEC]), 0);
		assert_int_equal(ivl_eventfd_ring(b_to_a[0][0]), 0);
		assert_int_equal(ivl_eventfd_ring(a_to_l[0]), 0);
		/* The previous newcomer says hello while the reader is dead
		 * (every other round); the one before it leaves. */
		if (i >= 1 && (i - 1) % 2 == 0) {
			snprintf(name, sizeof(name), "c%d", i - 1);
			send_hello(&c[i - 1], name);
		}
		if (i >= 2)
			st_close(&c[i - 2]);
		assert_int_equal(kill(srv, SIGCONT), 0);

		old = rp;
		rp = reader_pid(slog, (unsigned)i + 2);
		assert_true(rp != old);
		ho_alive(srv);
		if (i >= 1 && (i - 1) % 2 == 1) {
			/* ... or after the new reader is up. */
			snprintf(name, sizeof(name), "c%d", i - 1);
			send_hello(&c[i - 1], name);
		}
		assert_int_equal(ivl_eventfd_ring(a_to_b[0][i % VEC]), 0);
		assert_int_equal(ivl_eventfd_ring(b_to_a[0][0]), 0);
		assert_int_equal(ivl_eventfd_ring(a_to_l[0]), 0);

		/* The peer that left is seen leaving, by everyone. */
		if (i >= 2) {
			st_expect(&a, 3 + i - 2, false, false);
			st_expect(&b, 3 + i - 2, false, false);
			st_expect(&c[i - 1], 3 + i - 2, false, false);
		}
		/* The hello is recorded and welcomed, once. */
		if (i >= 1) {
			snprintf(needle, sizeof(needle), "peer %d is \"c%d\"", 3 + i - 1, i - 1);
			assert_true(ho_wait_log(slog, needle, ST_TIMEOUT));
			expect_welcome(&c[i - 1]);
			others[n_others++] = 3 + i - 1;
		}
		/* A newcomer: the next ID, every live peer's vectors, and a
		 * doorbell to an old peer through them. */
		st_connect(&c[i], sock);
		assert_int_equal(st_handshake_keep(&c[i], VEC, others, n_others, &to_a[0][0], NULL), 3 + i);
		st_expect_join(&a, 3 + i, VEC, NULL);
		st_expect_join(&b, 3 + i, VEC, NULL);
		if (i >= 1)
			st_expect_join(&c[i - 1], 3 + i, VEC, NULL);
		assert_int_equal(ivl_eventfd_ring(to_a[0][1]), 0);
		for (int k = 0; k < n_others; k++)
			for (int v = 0; v < VEC; v++)
				close(to_a[k][v]);

		assert_int_equal(ho_take_count(b_own[i % VEC]), 3);
		assert_int_equal(ho_take_count(a_own[0]), 3);
		assert_int_equal(ho_take_count(a_own[1]), 1);
	}
	/* No leave or join anyone should not have seen. */
	st_expect_quiet(&a, 50);
	st_expect_quiet(&b, 50);
	st_expect_quiet(&c[KILLS - 2], 50);
	{
		int64_t end = tu_now_ms() + ST_TIMEOUT;

		while (ho_listen_doorbells(llog, -1) < 3 * KILLS && tu_now_ms() < end)
			usleep(5000);
		assert_int_equal(ho_listen_doorbells(llog, -1), 3 * KILLS);
		assert_true(ho_wait_log(llog, "join peer 22", ST_TIMEOUT));
		assert_int_equal(ho_count_lines(llog, "join peer", false), 2 + KILLS);
		assert_int_equal(ho_count_lines(llog, "leave peer", false), KILLS - 2);
		assert_int_equal(ho_count_lines(llog, "down", false), 0);
	}
	assert_int_equal(ho_count_lines(slog, "was killed by signal 9", false), KILLS);
	assert_int_equal(ho_count_lines(slog, "exited with status", false), 0);
	assert_int_equal(ho_count_lines(slog, "malformed", false), 0);
	assert_int_equal(ho_count_lines(slog, "dropping", false), 0);

	/* Departures still work, and every fd comes back, in the keeper
	 * and in the reader (stdio, channel, epoll). */
	rss1 = ho_rss_kib(srv);
	tu_kill(lis);
	st_close(&c[KILLS - 2]);
	st_close(&c[KILLS - 1]);
	for (i = 0; i < 3; i++) {
		struct ivl_msg m;

		assert_int_equal(st_recv(&b, &m, ST_TIMEOUT), 1);
		assert_true(m.fd < 0 && (m.value == LISTEN_ID || m.value >= 3 + KILLS - 2));
	}
	st_close(&a);
	st_close(&b);
	for (i = 0; i < VEC; i++) {
		close(a_own[i]);
		close(b_own[i]);
		close(a_to_b[0][i]);
		close(b_to_a[0][i]);
		close(a_to_l[i]);
	}
	assert_int_equal(ho_wait_fds(srv, base, ST_TIMEOUT), base);
	assert_int_equal(ho_wait_fds(rp, 5, ST_TIMEOUT), 5);
	printf("# %d reader kills: server fds %d at start and at the end; RSS %ld KiB before, "
	       "%ld KiB after\n",
	       KILLS, base, rss0, rss1);
	st_stop(srv);
	assert_int_equal(tu_count_fds(), mine);
}

static int cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

	return a < b ? -1 : a > b;
}

/*
 * The time from a SIGKILL of the reader to a new reader serving: a peer
 * sends its hello right after the kill, and the clock stops when its
 * welcome arrives (the new reader read it, the keeper answered).  Printed,
 * not asserted: speed belongs to bench/.
 */
static void restart_latency(void **state)
{
	const char *dir = tu_tmpdir();
	const char *sock = st_sock("rdl"), *shm = st_shm_name("rdl");
	char slog[300];
	int64_t us[25];
	int n = (int)(sizeof(us) / sizeof(us[0])), mine = tu_count_fds(), base;
	long rss0;
	pid_t srv, rp;

	(void)state;
	snprintf(slog, sizeof(slog), "%s", tu_path(dir, "rdl-server.log"));
	srv = st_start(sock, slog, 0, (char *[]){"-M", (char *)shm, "-l", "1M", NULL});
	rp = reader_pid(slog, 1);
	base = ho_count_fds(srv);
	rss0 = ho_rss_kib(srv);
	for (int i = 0; i < n; i++) {
		struct st_peer p;
		struct timespec t0, t1;

		/* The previous peer is gone (its fds are closed). */
		assert_int_equal(ho_wait_fds(srv, base, ST_TIMEOUT), base);
		st_connect(&p, sock);
		assert_int_equal(st_handshake(&p, 1, NULL, 0), i);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(kill(rp, SIGKILL), 0);
		send_hello(&p, "latency");
		expect_welcome(&p);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		us[i] = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
		rp = reader_pid(slog, (unsigned)i + 2);
		st_close(&p);
	}
	qsort(us, (size_t)n, sizeof(us[0]), cmp_i64);
	assert_int_equal(ho_wait_fds(srv, base, ST_TIMEOUT), base);
	printf("# reader SIGKILL to a hello welcomed by the new reader, %d kills: median %lld us, "
	       "min %lld us, max %lld us; server fds %d before and after, RSS %ld KiB before, "
	       "%ld KiB after\n",
	       n, (long long)us[n / 2], (long long)us[0], (long long)us[n - 1], base, rss0,
	       ho_rss_kib(srv));
	st_stop(srv);
	assert_int_equal(tu_count_fds(), mine);
}

/* ---- untrusted records -------------------------------------------------- */

static void pump(struct ivl_server *srv, int ms)
{
	int64_t end = tu_now_ms() + ms;

	do {
		struct pollfd pfd = {.fd = ivl_server_get_fd(srv), .events = POLLIN};

		poll(&pfd, 1, 5);
		assert_int_equal(ivl_server_process(srv), 0);
	} while (tu_now_ms() < end);
}

static struct ivl__rd_rec rec(uint32_t type, uint16_t id, uint32_t serial, uint16_t reason)
{
	struct ivl__rd_rec r;

	memset(&r, 0, sizeof(r));
	r.type = type;
	r.id = id;
	r.serial = serial;
	r.reason = reason;
	return r;
}

/* A fake reader process that sends @r (with an fd if @with_fd, @len
 * bytes) and waits to be killed. */
static pid_t fake_reader(int chan, const void *r, size_t len, bool with_fd)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int))];
		} c;
		struct iovec iov = {(void *)r, len};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		int fd = open("/dev/null", O_RDONLY);

		memset(&c, 0, sizeof(c));
		if (with_fd) {
			struct cmsghdr *cm;

			mh.msg_control = c.b;
			mh.msg_controllen = sizeof(c.b);
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		}
		if (sendmsg(chan, &mh, 0) < 0)
			_exit(1);
		for (;;)
			pause();
	}
	return pid;
}

static void untrusted_records(void **state)
{
	const char *sock = st_sock("rdr"), *shm = st_shm_name("rdr");
	struct ivl_server_opts o = {.socket_path = sock,
				    .listen_fd = -1,
				    .vectors = 2,
				    .separate_reader = true};
	struct ivl_server *srv;
	struct ivl_server_stats st0, st;
	struct st_peer a, b, c;
	struct ivl__rd_rec r;
	uint32_t sa, sb, sc;
	int mine = tu_count_fds();
	uint8_t junk[sizeof(r) + 8];

	(void)state;
	o.region.kind = IVL_REGION_SHM;
	o.region.name = shm;
	o.region.size = 1 << 20;
	o.region.flags = IVL_REGION_CREATE;
	assert_int_equal(ivl_server_new(&srv, &o), 0);
	st_connect(&a, sock);
	pump(srv, 20);
	assert_int_equal(st_handshake(&a, 2, NULL, 0), 0);
	st_connect(&b, sock);
	pump(srv, 20);
	assert_int_equal(st_handshake(&b, 2, (int[]){0}, 1), 1);
	st_expect(&a, 1, true, false);
	st_expect(&a, 1, true, false);
	st_connect(&c, sock);
	pump(srv, 20);
	assert_int_equal(st_handshake(&c, 2, (int[]){0, 1}, 2), 2);
	sa = srv->peers[0]->serial;
	sb = srv->peers[1]->serial;
	sc = srv->peers[2]->serial;
	st_close(&c);
	pump(srv, 50);
	for (int i = 0; i < 2; i++) {
		st_expect(&a, 2, true, false);
		st_expect(&b, 2, true, false);
	}
	st_expect(&a, 2, false, false);
	st_expect(&b, 2, false, false);
	ivl_server_get_stats(srv, &st0);
	assert_int_equal(st0.peers, 2);
	assert_true(st0.reader_pid > 0);

	/* Malformed: sizes, types, IDs, reasons, serials never given. */
	memset(junk, 0xa5, sizeof(junk));
	for (size_t len = 0; len <= sizeof(junk); len++)
		if (len != sizeof(r))
			assert_int_equal(ivl__reader_record(srv, junk, len), -EPROTO);
	r = rec(0, 0, sa, 0);
	assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), -EPROTO);
	r = rec(IVL__RD_DROP + 1, 0, sa, 0);
	assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), -EPROTO);
	r = rec(IVL__RD_EOF, 300, sa, 0); /* beyond the 256 IDs */
	assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), -EPROTO);
	r = rec(IVL__RD_EOF, 0, sa, 1);
	assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), -EPROTO);
	r = rec(IVL__RD_DROP, 0, sa, 0);
	assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), -EPROTO);
	r = rec(IVL__RD_DROP, 0, sa, IVL__RD_WHY_MAX + 1);
	assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), -EPROTO);
	r = rec(IVL__RD_EOF, 0, 0, 0);
	assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), -EPROTO);
	r = rec(IVL__RD_EOF, 0, sc + 1000, 0);
	assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), -EPROTO);
	/* Stale: about a peer that left, or another peer's serial. */
	r = rec(IVL__RD_EOF, 2, sc, 0);
	assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), 1);
	r = rec(IVL__RD_DROP, 0, sb, IVL__RD_WHY_AFTER);
	assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), 1);
	/* A hello that is not one, a consumed hello never reported. */
	r = rec(IVL__RD_HELLO, 0, sa, 0);
	memset(r.hello, 'x', sizeof(r.hello));
	assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), -EPROTO);
	r = rec(IVL__RD_CONSUMED, 0, sa, 0);
	assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), -EPROTO);
	/* Forged: about a peer this reader was never given. */
	srv->peers[1]->handed = false;
	r = rec(IVL__RD_EOF, 1, sb, 0);
	assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), -EPROTO);
	srv->peers[1]->handed = true;
	/* A hello, with a name to sanitize; then not twice. */
	{
		struct ivl_wire_hello h = {.magic = IVL_HELLO_MAGIC,
					   .version = IVL_HELLO_VERSION,
					   .size = sizeof(h)};

		memcpy(h.name, "bad\001name\n", 10);
		r = rec(IVL__RD_HELLO, 0, sa, 0);
		memcpy(r.hello, &h, sizeof(h));
		assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), 0);
		assert_string_equal(srv->peers[0]->name, "bad?name?");
		assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), -EPROTO);
		r = rec(IVL__RD_CONSUMED, 0, sa, 0);
		assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), 0);
		assert_int_equal(ivl__reader_record(srv, &r, sizeof(r)), -EPROTO);
		pump(srv, 20);
		st_expect(&a, IVL_EXT_MSG(IVL_EXT_WELCOME, 2 | ((IVL_FEAT_HELLO | IVL_FEAT_NAMES)
								   << 16)),
			  false, false);
	}
	ivl_server_get_stats(srv, &st);
	assert_int_equal(st.peers, 2);
	assert_int_equal(st.dropped, st0.dropped);

	/* Lying reader processes on a real channel: a short record, a record
	 * with an fd, an oversized one, a forged serial.  Each is replaced by
	 * a real reader; nobody is dropped. */
	for (int k = 0; k < 4; k++) {
		int sv[2];
		pid_t fake;
		unsigned starts;

		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
		assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
		r = rec(IVL__RD_EOF, 1, k == 3 ? sc + 7 : sb, 0);
		fake = fake_reader(sv[1], k == 2 ? (void *)junk : (void *)&r,
				   k == 0 ? sizeof(r) - 1 : k == 2 ? sizeof(junk) : sizeof(r),
				   k == 1);
		close(sv[1]);
		assert_int_equal(ivl__reader_adopt(srv, sv[0], fake), 0);
		ivl_server_get_stats(srv, &st);
		starts = st.reader_starts;
		for (int64_t end = tu_now_ms() + ST_TIMEOUT;
		     st.reader_starts == starts && tu_now_ms() < end;
		     ivl_server_get_stats(srv, &st))
			pump(srv, 5);
		assert_int_equal(st.reader_starts, starts + 1);
		assert_true(st.reader_pid > 0 && st.reader_pid != fake);
		/* Killed and reaped by the keeper. */
		assert_int_equal(kill(fake, 0), -1);
		assert_int_equal(errno, ESRCH);
	}
	ivl_server_get_stats(srv, &st);
	assert_int_equal(st.reader_refused, st0.reader_refused + 4);
	assert_int_equal(st.peers, 2);
	assert_int_equal(st.dropped, st0.dropped);
	/* A reader that reported a hello and died before consuming it: the
	 * next reader consumes exactly those bytes, and b is not dropped
	 * for them.  The test plays the first reader (it holds the channel;
	 * the process is a stand-in to be reaped). */
	{
		int sv[2];
		pid_t fake = fork();
		struct ivl_wire_hello h = {.magic = IVL_HELLO_MAGIC,
					   .version = IVL_HELLO_VERSION,
					   .size = sizeof(h),
					   .features = IVL_FEAT_HELLO};
		unsigned starts;

		assert_true(fake >= 0);
		if (fake == 0) {
			for (;;)
				pause();
		}
		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
		assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
		assert_int_equal(ivl__reader_adopt(srv, sv[0], fake), 0);
		pump(srv, 20);
		send_hello(&b, "b");
		memcpy(h.name, "b", 1);
		r = rec(IVL__RD_HELLO, 1, sb, 0);
		memcpy(r.hello, &h, sizeof(h));
		assert_int_equal(send(sv[1], &r, sizeof(r), 0), sizeof(r));
		pump(srv, 20);
		st_expect(&b, IVL_EXT_MSG(IVL_EXT_WELCOME,
					  2 | ((IVL_FEAT_HELLO | IVL_FEAT_NAMES) << 16)),
			  false, false);
		assert_string_equal(srv->peers[1]->name, "b");
		assert_int_equal(srv->peers[1]->hello_sock, sizeof(h));
		ivl_server_get_stats(srv, &st);
		starts = st.reader_starts;
		close(sv[1]); /* "dies" */
		for (int64_t end = tu_now_ms() + ST_TIMEOUT;
		     (st.reader_starts == starts ||
		      (srv->peers[1] && srv->peers[1]->hello_sock)) &&
		     tu_now_ms() < end;
		     ivl_server_get_stats(srv, &st))
			pump(srv, 5);
		assert_int_equal(st.reader_starts, starts + 1);
		assert_non_null(srv->peers[1]); /* not dropped for its own hello */
		assert_int_equal(srv->peers[1]->hello_sock, 0);
		assert_int_equal(kill(fake, 0), -1);
		st_expect_quiet(&b, 20);
		/* The bytes were consumed: one more is data after the hello. */
		assert_int_equal(write(b.sock, "x", 1), 1);
		pump(srv, 50);
		st_expect(&a, 1, false, false);
		assert_int_equal(st_recv(&b, &(struct ivl_msg){0}, ST_TIMEOUT), -ECONNRESET);
		ivl_server_get_stats(srv, &st);
		assert_int_equal(st.dropped, st0.dropped + 1);
	}
	st_expect_quiet(&a, 20);
	st_close(&a);
	st_close(&b);
	pump(srv, 50);
	ivl_server_get_stats(srv, &st);
	assert_int_equal(st.peers, 0);
	ivl_server_free(srv);
	assert_int_equal(tu_count_fds(), mine);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(reader_killed_repeatedly),
	    cmocka_unit_test(restart_latency),
	    cmocka_unit_test(untrusted_records),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
