/* SPDX-License-Identifier: MIT */
/*
 * Live upgrade (issue: a restart of the server cost every peer, and QEMU
 * cannot reconnect).  SIGUSR2 makes ivlink-server re-execute the binary on
 * disk while keeping every connection, ID, eventfd, unsent message and the
 * region.  Raw ivshmem (QEMU protocol) peers and an ivlink host peer
 * (`ivlink listen`) stay connected across 25 upgrades with joins and
 * doorbells in flight; none of them sees a leave or a second join, a peer
 * that never reads gets its whole, unduplicated message stream afterwards,
 * and the server's fds come back to their baseline.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ivlink/ivshmem.h>
#include <ivlink/notify.h>

#include "hostile.h"

#define VEC 16
#define UPGRADES 25
#define MAXJ (UPGRADES + 1)

/* A handshake that keeps the fds asked for: vector @keep_v of peer
 * @keep_id in *keep_fd, and the own vectors in own[] (NULL: closed).  The
 * others' IDs must be @others in order. */
static int handshake_keep(struct st_peer *p, const int *others, int n_others, int keep_id,
			  int *keep_fd, int *own)
{
	int i, v;

	st_expect(p, 0, false, false);
	{
		struct ivl_msg m;

		assert_int_equal(st_recv(p, &m, ST_TIMEOUT), 1);
		assert_true(m.fd < 0 && m.value >= 0 && m.value <= 65535);
		p->id = (int)m.value;
	}
	p->shm_fd = st_expect(p, -1, true, true);
	for (i = 0; i < n_others; i++)
		for (v = 0; v < VEC; v++) {
			int fd = st_expect(p, others[i], true, true);

			if (keep_fd && others[i] == keep_id && v == 0)
				*keep_fd = fd;
			else
				close(fd);
		}
	for (v = 0; v < VEC; v++) {
		int fd = st_expect(p, p->id, true, true);

		if (own)
			own[v] = fd;
		else
			close(fd);
	}
	return p->id;
}

/* The join of @id: VEC messages with an fd; kept in fds[] unless NULL. */
static void expect_join(struct st_peer *p, int id, int *fds)
{
	for (int v = 0; v < VEC; v++) {
		int fd = st_expect(p, id, true, true);

		if (fds)
			fds[v] = fd;
		else
			close(fd);
	}
}

static uint64_t take_count(int efd)
{
	uint64_t n = 0;

	if (read(efd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

/* Sum of the doorbell counts `ivlink listen` printed for @vector. */
static unsigned long listen_doorbells(const char *log, unsigned vector)
{
	char *text = tu_read_file(log), *line;
	unsigned long sum = 0;

	for (line = text; line && *line;) {
		unsigned vv, c;
		char *nl = strchr(line, '\n');

		if (sscanf(line, "doorbell vector %u count %u", &vv, &c) == 2 && vv == vector)
			sum += c;
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	return sum;
}

static unsigned count_lines(const char *log, const char *prefix)
{
	char *text = tu_read_file(log), *line;
	unsigned n = 0;

	for (line = text; line && *line;) {
		char *nl = strchr(line, '\n');

		n += !strncmp(line, prefix, strlen(prefix));
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	return n;
}

static void wait_upgrade(const char *log, unsigned gen)
{
	char needle[64];

	snprintf(needle, sizeof(needle), "upgrade #%u:", gen);
	if (!ho_wait_log(log, needle, 20000))
		fail_msg("the server did not log \"%s\"", needle);
}

static void alive(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, WNOHANG) == pid)
		fail_msg("the server died: %s %d", WIFSIGNALED(st) ? "signal" : "exit",
			 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

static void upgrade_mid_traffic(void **state)
{
	const char *dir = tu_tmpdir();
	const char *sock = st_sock("upg"), *shm = st_shm_name("upg");
	char slog[300], llog[300];
	struct st_peer a, b, s, j[MAXJ];
	int a_to_b[VEC], a_to_l[VEC], b_own[VEC], a_own[VEC], others[8 + MAXJ];
	int mine = tu_count_fds(), base, before, i, l_id;
	char *largv[] = {(char *)tu_cli_bin(), "-S", (char *)sock, "listen", NULL};
	pid_t srv, lis;

	(void)state;
	snprintf(slog, sizeof(slog), "%s", tu_path(dir, "upg-server.log"));
	snprintf(llog, sizeof(llog), "%s", tu_path(dir, "upg-listen.log"));
	srv = st_start(sock, slog, 0, (char *[]){"-M", (char *)shm, "-n", "16", "-l", "1M", NULL});
	base = ho_count_fds(srv);

	/* Two QEMU-protocol peers, an ivlink host peer, and a peer that
	 * never reads. */
	st_connect(&a, sock);
	assert_int_equal(handshake_keep(&a, NULL, 0, -1, NULL, a_own), 0);
	st_connect(&b, sock);
	assert_int_equal(handshake_keep(&b, (int[]){0}, 1, -1, NULL, b_own), 1);
	expect_join(&a, 1, a_to_b);
	lis = tu_spawn(largv, llog);
	assert_true(lis > 0);
	expect_join(&a, 2, a_to_l);
	expect_join(&b, 2, NULL);
	assert_true(ho_wait_log(llog, "self peer 2", ST_TIMEOUT));
	l_id = 2;
	st_connect(&s, sock);
	expect_join(&a, 3, NULL);
	expect_join(&b, 3, NULL);
	assert_true(ho_wait_log(llog, "join peer 3", ST_TIMEOUT));
	for (i = 0; i < 4; i++)
		others[i] = i;
	before = ho_count_fds(srv);

	for (i = 0; i < UPGRADES; i++) {
		int id = 4 + i, to_a = -1;

		/* A newcomer connects, then the upgrade starts, then the
		 * doorbells: all three in flight at once. */
		st_connect(&j[i], sock);
		assert_int_equal(kill(srv, SIGUSR2), 0);
		assert_int_equal(ivl_eventfd_ring(a_to_b[i % VEC]), 0);
		assert_int_equal(ivl_eventfd_ring(a_to_l[0]), 0);
		wait_upgrade(slog, (unsigned)i + 1);
		alive(srv);

		assert_int_equal(handshake_keep(&j[i], others, id, 0, &to_a, NULL), id);
		others[id] = id;
		expect_join(&a, id, NULL);
		expect_join(&b, id, NULL);
		/* The newcomer rings an old peer with the vector it was
		 * handed after the upgrade. */
		assert_true(to_a >= 0);
		assert_int_equal(ivl_eventfd_ring(to_a), 0);
		close(to_a);
		assert_int_equal(take_count(a_own[0]), 1);
		assert_int_equal(take_count(b_own[i % VEC]), 1);
	}
	/* The peer that never reads had messages queued in the server when
	 * it was upgraded (its socket buffer holds a few hundred). */
	{
		char *text = tu_read_file(slog), *last = text ? strstr(text, "upgrade #25:") : NULL;
		unsigned long q = 0;

		assert_non_null(last);
		assert_non_null(strstr(last, "peers and "));
		q = strtoul(strstr(last, "peers and ") + strlen("peers and "), NULL, 10);
		printf("# unsent messages carried by the last upgrade: %lu\n", q);
		assert_true(q > 0);
		free(text);
	}
	/* Same IDs, same connections: nobody heard of a leave. */
	assert_int_equal(ho_count_fds(srv), before + UPGRADES * (1 + VEC));
	st_expect_quiet(&a, 50);
	st_expect_quiet(&b, 50);

	/* The peer that never read gets its whole stream now, once. */
	handshake_keep(&s, (int[]){0, 1, 2}, 3, -1, NULL, NULL);
	assert_int_equal(s.id, 3);
	for (i = 0; i < UPGRADES; i++)
		expect_join(&s, 4 + i, NULL);
	st_expect_quiet(&s, 50);

	/* The ivlink host peer: every doorbell, every join once, no leave. */
	{
		int64_t end = tu_now_ms() + ST_TIMEOUT;

		while (listen_doorbells(llog, 0) < UPGRADES && tu_now_ms() < end)
			usleep(5000);
		assert_int_equal(listen_doorbells(llog, 0), UPGRADES);
		assert_true(ho_wait_log(llog, "join peer 28", ST_TIMEOUT));
		assert_int_equal(count_lines(llog, "leave"), 0);
		assert_int_equal(count_lines(llog, "down"), 0);
		for (i = 3; i < 4 + UPGRADES; i++) {
			char pre[32];

			snprintf(pre, sizeof(pre), "join peer %d ", i);
			assert_int_equal(count_lines(llog, pre), 1);
		}
	}

	/* Departures still work, and every fd comes back. */
	tu_kill(lis);
	for (i = 0; i < UPGRADES; i++)
		st_close(&j[i]);
	st_close(&s);
	for (i = 0; i < 2 + UPGRADES; i++) {
		struct ivl_msg m;

		assert_int_equal(st_recv(&b, &m, ST_TIMEOUT), 1);
		assert_true(m.fd < 0 && m.value >= l_id && m.value < 4 + UPGRADES);
	}
	st_close(&a);
	st_close(&b);
	for (i = 0; i < VEC; i++) {
		close(a_to_b[i]);
		close(a_to_l[i]);
		close(a_own[i]);
		close(b_own[i]);
	}
	assert_int_equal(ho_wait_fds(srv, base, ST_TIMEOUT), base);
	printf("# %d upgrades: server fds %d at start, %d with 4+%d peers, %d at the end\n",
	       UPGRADES, base, ho_count_fds(srv) >= 0 ? before + UPGRADES * (1 + VEC) : -1,
	       UPGRADES, base);
	st_stop(srv);
	assert_int_equal(tu_count_fds(), mine);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(upgrade_mid_traffic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
