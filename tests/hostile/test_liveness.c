/* SPDX-License-Identifier: MIT */
/*
 * Liveness from locks, never from shared bytes (issue: a peer that wrote
 * "closed" or a dead pid into the header made a second server reformat the
 * live region and unlink it; two servers started at once on one stale
 * socket could both run).  A running server holds OFD locks on its region
 * and on "<socket>.lock".
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostile.h"

#define RACES 50

/* Paths that outlive tu_path()'s ring of 16 buffers (freed at exit). */
static const char *keep(const char *path)
{
	static char *kept[64];
	static unsigned n;

	for (unsigned i = 0; i < n; i++)
		if (!strcmp(kept[i], path))
			return kept[i];
	assert_true(n < 64);
	assert_non_null(kept[n] = strdup(path));
	return kept[n++];
}

static const char *logpath(const char *tag)
{
	char name[64];

	snprintf(name, sizeof(name), "%s.log", tag);
	return keep(tu_path(tu_tmpdir(), name));
}

static pid_t spawn_server(const char *sock, const char *shm, const char *log)
{
	char *argv[] = {(char *)tu_server_bin(), "-S", (char *)sock, "-M", (char *)shm, "-l", "1M",
			NULL};
	pid_t pid = tu_spawn(argv, log);

	assert_true(pid > 0);
	return pid;
}

/* Scribble "closed" and a dead pid over a live server's header. */
static void forged_header_liveness(void **state)
{
	const char *shm = st_shm_name("forged"), *sa = keep(st_sock("forged-a"));
	const char *sb = keep(st_sock("forged-b"));
	struct ivl_shm_header *h;
	struct st_peer p, q;
	uint64_t epoch;
	int mine = tu_count_fds(), st;
	pid_t a, b;

	(void)state;
	a = st_start(sa, logpath("forged-a"), 0, (char *[]){"-M", (char *)shm, NULL});
	st_connect(&p, sa);
	st_handshake_any(&p, 1);
	h = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, p.shm_fd, 0);
	assert_true(h != MAP_FAILED);
	epoch = h->epoch;
	__atomic_store_n(&h->state, IVL_SHM_CLOSED, __ATOMIC_SEQ_CST);
	h->server_pid = 0x7ffffff0u;

	/* A second server on the same object: refused, nothing touched. */
	b = spawn_server(sb, shm, logpath("forged-b"));
	st = tu_wait(b, 10000);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
	assert_true(ho_log_has(logpath("forged-b"), "in use by a running server"));
	assert_true(st_shm_exists(shm));
	assert_true(h->epoch == epoch);
	assert_int_equal(access(sb, F_OK), -1);

	/* The first one still serves, with its own object. */
	st_connect(&q, sa);
	st_handshake(&q, 1, (int[]){p.id}, 1);
	st_expect(&p, q.id, true, false);
	st_close(&q);
	st_expect(&p, q.id, false, false);
	munmap(h, 4 << 20);
	st_close(&p);
	st_stop(a);
	assert_false(st_shm_exists(shm));
	assert_int_equal(tu_count_fds(), mine);
}

/* A server that died is replaced without --force: its locks died with it,
 * whatever its header says. */
static void dead_server_is_replaced(void **state)
{
	const char *shm = st_shm_name("dead"), *sock = keep(st_sock("dead"));
	struct st_peer p;
	int mine = tu_count_fds();
	pid_t a, b;

	(void)state;
	a = st_start(sock, logpath("dead-a"), 0, (char *[]){"-M", (char *)shm, NULL});
	st_connect(&p, sock);
	st_handshake_any(&p, 1);
	st_close(&p);
	tu_kill(a);
	b = st_start(sock, logpath("dead-b"), 0, (char *[]){"-M", (char *)shm, NULL});
	assert_true(ho_log_has(logpath("dead-b"), "left over"));
	st_connect(&p, sock);
	st_handshake_any(&p, 1);
	st_close(&p);
	st_stop(b);
	assert_false(st_shm_exists(shm));
	assert_int_equal(tu_count_fds(), mine);
}

/* A socket file nobody listens on, as a SIGKILLed server leaves it. */
static void stale_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
}

/* Two servers started together on one stale socket and one object, RACES
 * times: exactly one runs, the other exits with a message, and nothing of
 * the winner is removed. */
static void two_servers_race(void **state)
{
	const char *shm = st_shm_name("race"), *sock = keep(st_sock("race"));
	char lockpath[256];
	int mine = tu_count_fds();

	(void)state;
	snprintf(lockpath, sizeof(lockpath), "%s.lock", sock);
	for (int i = 0; i < RACES; i++) {
		const char *la = logpath("race-a"), *lb = logpath("race-b");
		pid_t s[2], winner = -1;
		struct st_peer p;
		int st = 0, loser = -1;

		unlink(la);
		unlink(lb);
		stale_socket(sock);
		s[0] = spawn_server(sock, shm, la);
		s[1] = spawn_server(sock, shm, lb);
		for (int64_t end = tu_now_ms() + 10000; loser < 0; usleep(2000)) {
			for (int k = 0; k < 2 && loser < 0; k++)
				if (waitpid(s[k], &st, WNOHANG) == s[k])
					loser = k;
			if (tu_now_ms() > end)
				fail_msg("race %d: both servers still run", i);
		}
		winner = s[1 - loser];
		if (!WIFEXITED(st) || WEXITSTATUS(st) == 0)
			fail_msg("race %d: the loser exited with status %#x", i, st);
		assert_true(ho_log_has(loser ? lb : la, "another server is running") ||
			    ho_log_has(loser ? lb : la, "in use by a running server"));
		/* The winner serves, its files in place.  The socket listens
		 * before the region exists (a peer that connects early waits
		 * in the backlog), so look for the files once a handshake has
		 * shown the server serving. */
		assert_int_equal(tu_wait_socket(sock, 10000), 0);
		st_connect(&p, sock);
		/* The readiness probe above joined too: it may not be gone
		 * yet. */
		st_handshake_any(&p, 1);
		st_close(&p);
		assert_true(st_shm_exists(shm));
		assert_int_equal(access(lockpath, F_OK), 0);
		assert_int_equal(kill(winner, 0), 0);
		assert_int_equal(kill(winner, SIGTERM), 0);
		st = tu_wait(winner, 10000);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		assert_false(st_shm_exists(shm));
		assert_int_equal(access(sock, F_OK), -1);
		assert_int_equal(access(lockpath, F_OK), -1);
	}
	assert_int_equal(tu_count_fds(), mine);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(forged_header_liveness),
	    cmocka_unit_test(dead_server_is_replaced),
	    cmocka_unit_test(two_servers_race),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
