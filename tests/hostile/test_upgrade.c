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

#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>
#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>

#include "hostile.h"

#define VEC 16
#define UPGRADES 25
#define MAXJ (UPGRADES + 1)



static void wait_upgrade(const char *log, unsigned gen)
{
	char needle[64];

	snprintf(needle, sizeof(needle), "upgrade #%u:", gen);
	if (!ho_wait_log(log, needle, 20000))
		fail_msg("the server did not log \"%s\"", needle);
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
	assert_int_equal(st_handshake_keep(&a, VEC, NULL, 0, NULL, a_own), 0);
	st_connect(&b, sock);
	assert_int_equal(st_handshake_keep(&b, VEC, (int[]){0}, 1, NULL, b_own), 1);
	st_expect_join(&a, 1, VEC, a_to_b);
	lis = tu_spawn(largv, llog);
	assert_true(lis > 0);
	st_expect_join(&a, 2, VEC, a_to_l);
	st_expect_join(&b, 2, VEC, NULL);
	assert_true(ho_wait_log(llog, "self peer 2", ST_TIMEOUT));
	l_id = 2;
	/* The stuck peer says hello: its welcome (an extension message)
	 * waits in its queue with everything else. */
	st_connect(&s, sock);
	{
		struct ivl_wire_hello h = {.magic = IVL_HELLO_MAGIC,
					   .version = IVL_HELLO_VERSION,
					   .size = sizeof(h),
					   .features = IVL_FEAT_HELLO};

		memcpy(h.name, "stuck", 5);
		assert_int_equal(write(s.sock, &h, sizeof(h)), sizeof(h));
	}
	st_expect_join(&a, 3, VEC, NULL);
	st_expect_join(&b, 3, VEC, NULL);
	assert_true(ho_wait_log(llog, "join peer 3", ST_TIMEOUT));
	assert_true(ho_wait_log(slog, "peer 3 is \"stuck\"", ST_TIMEOUT));
	for (i = 0; i < 4; i++)
		others[i] = i;
	before = ho_count_fds(srv);

	for (i = 0; i < UPGRADES; i++) {
		int id = 4 + i, to_a = -1, ofd[(4 + UPGRADES) * VEC];

		/* A newcomer connects, then the upgrade starts, then the
		 * doorbells: all three in flight at once. */
		st_connect(&j[i], sock);
		assert_int_equal(kill(srv, SIGUSR2), 0);
		assert_int_equal(ivl_eventfd_ring(a_to_b[i % VEC]), 0);
		assert_int_equal(ivl_eventfd_ring(a_to_l[0]), 0);
		wait_upgrade(slog, (unsigned)i + 1);
		ho_alive(srv);

		/* Keep vector 0 of peer 0 (others[0]); close the rest. */
		assert_int_equal(st_handshake_keep(&j[i], VEC, others, id, ofd, NULL), id);
		to_a = ofd[0];
		for (int k = 1; k < id * VEC; k++)
			close(ofd[k]);
		others[id] = id;
		st_expect_join(&a, id, VEC, NULL);
		st_expect_join(&b, id, VEC, NULL);
		/* The newcomer rings an old peer with the vector it was
		 * handed after the upgrade. */
		assert_true(to_a >= 0);
		assert_int_equal(ivl_eventfd_ring(to_a), 0);
		close(to_a);
		assert_int_equal(ho_take_count(a_own[0]), 1);
		assert_int_equal(ho_take_count(b_own[i % VEC]), 1);
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
	st_handshake(&s, VEC, (int[]){0, 1, 2}, 3);
	assert_int_equal(s.id, 3);
	{
		struct ivl_msg m;

		assert_int_equal(st_recv(&s, &m, ST_TIMEOUT), 1);
		assert_true(m.fd < 0 && IVL_EXT_IS(m.value) &&
			    IVL_EXT_OP(m.value) == IVL_EXT_WELCOME);
	}
	for (i = 0; i < UPGRADES; i++)
		st_expect_join(&s, 4 + i, VEC, NULL);
	st_expect_quiet(&s, 50);

	/* The ivlink host peer: every doorbell, every join once, no leave. */
	{
		int64_t end = tu_now_ms() + ST_TIMEOUT;

		while (ho_listen_doorbells(llog, 0) < UPGRADES && tu_now_ms() < end)
			usleep(5000);
		assert_int_equal(ho_listen_doorbells(llog, 0), UPGRADES);
		assert_true(ho_wait_log(llog, "join peer 28", ST_TIMEOUT));
		assert_int_equal(ho_count_lines(llog, "leave", true), 0);
		assert_int_equal(ho_count_lines(llog, "down", true), 0);
		for (i = 3; i < 4 + UPGRADES; i++) {
			char pre[32];

			snprintf(pre, sizeof(pre), "join peer %d ", i);
			assert_int_equal(ho_count_lines(llog, pre, true), 1);
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

static void copy_file(const char *from, const char *to)
{
	char *argv[] = {"/bin/cp", (char *)from, (char *)to, NULL};

	assert_int_equal(tu_run(argv, 10000, NULL, NULL), 0);
}

/*
 * The binary on disk is what runs after an upgrade, and an exec that fails
 * leaves the old server running: a copy of the server is made unexecutable,
 * upgraded (refused, still serving), then replaced by a new file the way a
 * package upgrade does (rename), and upgraded again.
 */
static void exec_failure_keeps_serving(void **state)
{
	const char *dir = tu_tmpdir();
	const char *sock = st_sock("upgf"), *shm = st_shm_name("upgf");
	char bin[300], fresh[300], slog[300], exe[300], link[64];
	char *argv[] = {bin, "-S", (char *)sock, "-M", (char *)shm, "-l", "1M", NULL};
	struct st_peer a, b, c;
	int mine = tu_count_fds(), base;
	ssize_t n;
	pid_t srv;

	(void)state;
	snprintf(bin, sizeof(bin), "%s", tu_path(dir, "ivlink-server-copy"));
	snprintf(fresh, sizeof(fresh), "%s", tu_path(dir, "ivlink-server-new"));
	snprintf(slog, sizeof(slog), "%s", tu_path(dir, "upgf-server.log"));
	copy_file(tu_server_bin(), bin);
	srv = tu_spawn(argv, slog);
	assert_true(srv > 0);
	st_track(srv);
	assert_true(ho_wait_log(slog, "serving", 10000));
	st_connect(&a, sock);
	assert_int_equal(st_handshake(&a, 1, NULL, 0), 0);
	base = ho_count_fds(srv);

	assert_int_equal(chmod(bin, 0600), 0);
	assert_int_equal(kill(srv, SIGUSR2), 0);
	assert_true(ho_wait_log(slog, "cannot upgrade", 10000));
	ho_alive(srv);
	/* Still serving, with the same fds: the state memfd is gone and
	 * everything is close-on-exec again. */
	assert_int_equal(ho_count_fds(srv), base);
	st_connect(&b, sock);
	assert_int_equal(st_handshake(&b, 1, (int[]){0}, 1), 1);
	st_expect(&a, 1, true, false);

	/* A new binary replaces the file: the upgrade runs it. */
	copy_file(tu_server_bin(), fresh);
	assert_int_equal(rename(fresh, bin), 0);
	assert_int_equal(kill(srv, SIGUSR2), 0);
	wait_upgrade(slog, 1);
	ho_alive(srv);
	snprintf(link, sizeof(link), "/proc/%ld/exe", (long)srv);
	n = readlink(link, exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = 0;
	assert_string_equal(exe, bin); /* not "... (deleted)" */
	st_connect(&c, sock);
	assert_int_equal(st_handshake(&c, 1, (int[]){0, 1}, 2), 2);
	st_expect(&a, 2, true, false);
	st_expect(&b, 2, true, false);
	st_close(&c);
	st_expect(&a, 2, false, false);
	st_expect(&b, 2, false, false);
	assert_int_equal(ho_wait_fds(srv, base + 2, ST_TIMEOUT), base + 2);
	st_close(&a);
	st_close(&b);
	st_stop(srv);
	unlink(bin);
	assert_int_equal(tu_count_fds(), mine);
}

/*
 * The new image reads the state as untrusted input.  A real state (a
 * server in this process with two peers) is corrupted one field at a
 * time; each copy is restored in a child process, which must return an
 * error or a valid server, never crash.  The server must also refuse a
 * state fd that is garbage.
 */
static void corrupt_state_is_refused(void **state)
{
	const char *sock = st_sock("upgc"), *shm = st_shm_name("upgc");
	struct ivl_server_opts o = {.socket_path = sock, .listen_fd = -1, .vectors = 2};
	struct ivl_server *srv;
	struct st_peer a, b;
	unsigned char *good;
	unsigned refused = 0, taken = 0;
	int fd, mine = tu_count_fds();
	off_t size;
	size_t off;

	(void)state;
	o.region.kind = IVL_REGION_SHM;
	o.region.name = shm;
	o.region.size = 1 << 20;
	o.region.flags = IVL_REGION_CREATE;
	assert_int_equal(ivl_server_new(&srv, &o), 0);
	st_connect(&a, sock);
	st_connect(&b, sock);
	for (int i = 0; i < 20; i++)
		ivl_server_process(srv);
	fd = ivl_server_save(srv);
	assert_true(fd >= 0);
	size = lseek(fd, 0, SEEK_END);
	assert_true(size > 0);
	assert_non_null(good = malloc((size_t)size));
	assert_int_equal(pread(fd, good, (size_t)size, 0), size);
	ivl_server_save_abort(srv, fd);

	/* Every byte of the head and the first records, and a sample of the
	 * rest: set to 0xff, flipped, zeroed. */
	for (off = 0; off < (size_t)size; off += off < 512 ? 1 : 13) {
		for (int how = 0; how < 3; how++) {
			unsigned char *bad = malloc((size_t)size);
			int st, mfd;
			pid_t pid;

			assert_non_null(bad);
			memcpy(bad, good, (size_t)size);
			bad[off] = how == 0 ? 0xff : how == 1 ? (unsigned char)~bad[off] : 0;
			mfd = memfd_create("bad-state", MFD_CLOEXEC);
			assert_true(mfd >= 0);
			assert_int_equal(write(mfd, bad, (size_t)size), size);
			free(bad);
			pid = fork();
			assert_true(pid >= 0);
			if (pid == 0) {
				struct ivl_server *t = NULL;

				_exit(ivl_server_restore(&t, &o, mfd) == 0 ? 0 : 3);
			}
			close(mfd);
			assert_int_equal(waitpid(pid, &st, 0), pid);
			if (!WIFEXITED(st))
				fail_msg("restore crashed on byte %zu (way %d): signal %d", off,
					 how, WTERMSIG(st));
			if (WEXITSTATUS(st) == 3)
				refused++;
			else
				taken++;
		}
	}
	printf("# corrupted states: %u refused, %u accepted (counters, pids, names)\n",
	       refused, taken);
	assert_true(refused > 0);
	/* The server in this process is untouched by all that. */
	ivl_server_process(srv);
	st_close(&a);
	st_close(&b);
	for (int i = 0; i < 20; i++)
		ivl_server_process(srv);
	free(good);
	ivl_server_free(srv);
	assert_int_equal(tu_count_fds(), mine);

	/* Garbage in the variable, and an fd that is not open. */
	{
		char *argv[] = {(char *)tu_server_bin(), "-S", (char *)sock, "-M", (char *)shm,
				NULL};
		const char *vals[] = {"999", "abc", "-1", NULL};

		for (int i = 0; vals[i]; i++) {
			char *out = NULL, *err = NULL;
			int ret;

			setenv("IVLINK_SERVER_STATE_FD", vals[i], 1);
			ret = tu_run(argv, 10000, &out, &err);
			unsetenv("IVLINK_SERVER_STATE_FD");
			assert_true(ret > 0 && ret < 128);
			assert_non_null(err);
			assert_non_null(strstr(err, "IVLINK_SERVER_STATE_FD"));
			free(out);
			free(err);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(upgrade_mid_traffic),
	    cmocka_unit_test(exec_failure_keeps_serving),
	    cmocka_unit_test(corrupt_state_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
