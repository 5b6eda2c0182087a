/* SPDX-License-Identifier: MIT */
/*
 * Fd and memory budgets of ivlink-server (issue: a peer that stops reading
 * pinned the server's fds until nobody could join).  A join and a leave of
 * the same peer cancel out in a queue not yet sent, so no queue holds the
 * eventfds of a peer that left; a peer over its own bound is dropped alone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostile.h"

#define CYCLES 5000

static pid_t start(const char *tag, unsigned nofile, char *const extra[], const char **log)
{
	char *args[32];
	char name[64];
	int n = 0;

	args[n++] = "-v";
	args[n++] = "-M";
	args[n++] = (char *)st_shm_name(tag);
	while (extra && *extra)
		args[n++] = *extra++;
	args[n] = NULL;
	snprintf(name, sizeof(name), "%s.log", tag);
	*log = strdup(tu_path(tu_tmpdir(), name));
	return st_start(st_sock(tag), *log, nofile, args);
}

/*
 * One peer that never reads, one honest peer that reads everything, and
 * CYCLES newcomers that join, read their handshake and leave.  Before the
 * fix each cycle pinned an eventfd in the stuck peer's queue: with 2048 fds
 * the server refused newcomers after about 2000 cycles.
 */
static void stuck_peer_join_leave(void **state)
{
	const char *log;
	struct st_peer stuck, honest, x;
	int ids[2], base, after, mine = tu_count_fds();
	long rss0, rss1;
	int64_t t0;
	pid_t pid;

	(void)state;
	pid = start("stuck", 2048, (char *[]){NULL}, &log);
	st_connect(&stuck, st_sock("stuck"));
	assert_true(ho_wait_log(log, "peer 0 joined", ST_TIMEOUT));
	ids[0] = 0;
	st_connect(&honest, st_sock("stuck"));
	ids[1] = st_handshake(&honest, 1, ids, 1);
	base = ho_count_fds(pid);
	rss0 = ho_rss_kib(pid);
	assert_true(base > 0);

	t0 = tu_now_ms();
	for (int i = 0; i < CYCLES; i++) {
		int id;

		st_connect(&x, st_sock("stuck"));
		id = st_handshake(&x, 1, ids, 2);
		st_close(&x);
		st_expect(&honest, id, true, false);
		st_expect(&honest, id, false, false);
	}
	after = ho_wait_fds(pid, base, ST_TIMEOUT);
	rss1 = ho_rss_kib(pid);
	print_message("server fds %d before, %d after %d join/leave cycles (%lld ms); "
		      "RSS %ld KiB -> %ld KiB\n",
		      base, after, CYCLES, (long long)(tu_now_ms() - t0), rss0, rss1);
	assert_int_equal(after, base);
	assert_false(ho_log_has(log, "refusing"));

	/* A newcomer is admitted and everyone hears of it. */
	st_connect(&x, st_sock("stuck"));
	st_handshake(&x, 1, ids, 2);
	st_expect(&honest, x.id, true, false);
	st_close(&x);
	st_expect(&honest, x.id, false, false);

	/* The stuck peer was never told of a peer that came and went: it
	 * still gets its own handshake first when it finally reads. */
	st_handshake(&stuck, 1, NULL, 0);
	st_expect(&stuck, ids[1], true, false);
	st_close(&stuck);
	st_expect(&honest, ids[0], false, false);
	st_close(&honest);
	assert_int_equal(ho_wait_fds(pid, base - 4, ST_TIMEOUT), base - 4);
	st_stop(pid);
	free((void *)log);
	assert_int_equal(tu_count_fds(), mine);
}

/*
 * --max-queue-fds: a peer that does not read while peers keep joining is
 * dropped once more than that many fds wait for it, alone and named in the
 * log; everyone else keeps working.
 */
static void fd_bound_drops_stuck_peer(void **state)
{
	enum { MAX = 30, V = 32 };
	static struct st_peer p[MAX];
	const char *log;
	struct st_peer stuck;
	int ids[MAX + 1], n = 0, base, mine = tu_count_fds();
	int64_t t0, t1 = -1;
	pid_t pid;

	(void)state;
	pid = start("bound", 0,
		    (char *[]){"-n", "32", "--max-peers", "32", "--max-queue-fds", "64", NULL},
		    &log);
	base = ho_count_fds(pid);
	st_connect(&stuck, st_sock("bound"));
	assert_true(ho_wait_log(log, "peer 0 joined", ST_TIMEOUT));
	ids[0] = 0;
	t0 = tu_now_ms();
	while (n < MAX) {
		char joined[32];
		bool drop_now;

		/* IDs are handed out round-robin: the newcomer is n + 1.  The
		 * join that puts the stuck peer over its budget is logged
		 * before the newcomer's own line; that newcomer never hears
		 * of the stuck peer (its announcement is cancelled). */
		st_connect(&p[n], st_sock("bound"));
		snprintf(joined, sizeof(joined), "peer %d joined", n + 1);
		assert_true(ho_wait_log(log, joined, ST_TIMEOUT));
		drop_now = t1 < 0 && ho_log_has(log, "fds queued");
		if (drop_now)
			t1 = tu_now_ms();
		ids[n + 1] = st_handshake(&p[n], V, t1 < 0 ? ids : ids + 1,
					  (size_t)(t1 < 0 ? n + 1 : n));
		assert_int_equal(ids[n + 1], n + 1);
		for (int i = 0; i < n; i++) {
			for (int v = 0; v < V; v++)
				st_expect(&p[i], ids[n + 1], true, false);
			if (drop_now)
				st_expect(&p[i], 0, false, false);
		}
		n++;
		if (t1 >= 0 && n >= 3)
			break;
	}
	assert_true(t1 >= 0);
	print_message("stuck peer dropped after %d joins of %d vectors, %lld ms into the "
		      "attack\n",
		      n, V, (long long)(t1 - t0));
	assert_true(ho_log_has(log, "dropping peer 0 (pid"));
	assert_true(ho_log_has(log, "fds queued"));
	for (int i = 0; i < n; i++)
		st_expect_quiet(&p[i], 10);
	for (int i = 0; i < n; i++)
		st_close(&p[i]);
	st_close(&stuck);
	assert_int_equal(ho_wait_fds(pid, base, ST_TIMEOUT), base);
	st_stop(pid);
	free((void *)log);
	assert_int_equal(tu_count_fds(), mine);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(stuck_peer_join_leave),
	    cmocka_unit_test(fd_bound_drops_stuck_peer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
