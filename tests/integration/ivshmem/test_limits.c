/* SPDX-License-Identifier: MIT */
/*
 * Admission limits of ivlink-server: access control, --max-peers, peer IDs
 * and file descriptors.  A refused newcomer is closed without a message;
 * the peers already there keep working.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "srvtest.h"

static pid_t start(const char *tag, unsigned nofile, char *const extra[])
{
	char *args[32];
	char log[64];
	int n = 0;

	args[n++] = "-M";
	args[n++] = (char *)st_shm_name(tag);
	while (extra && *extra)
		args[n++] = *extra++;
	args[n] = NULL;
	snprintf(log, sizeof(log), "%s.log", tag);
	return st_start(st_sock(tag), tu_path(tu_tmpdir(), log), nofile, args);
}

static bool log_has(const char *tag, const char *needle)
{
	char log[64];
	char *text;
	bool found;

	snprintf(log, sizeof(log), "%s.log", tag);
	text = tu_read_file(tu_path(tu_tmpdir(), log));
	found = text && strstr(text, needle);
	free(text);
	return found;
}

static void allow_uid(void **state)
{
	char other[16], mine[16];
	struct st_peer a;
	pid_t pid;

	(void)state;
	snprintf(other, sizeof(other), "%u", (unsigned)getuid() + 4242);
	snprintf(mine, sizeof(mine), "%u", (unsigned)getuid());

	pid = start("uidno", 0, (char *[]){"--allow-uid", other, NULL});
	st_connect(&a, st_sock("uidno"));
	st_expect_refused(&a);
	st_close(&a);
	assert_true(log_has("uidno", "not allowed"));
	st_stop(pid);

	pid = start("uidyes", 0, (char *[]){"--allow-uid", other, "--allow-uid", mine, NULL});
	st_connect(&a, st_sock("uidyes"));
	st_handshake(&a, 1, NULL, 0);
	st_close(&a);
	st_stop(pid);

	/* A matching group is enough. */
	snprintf(mine, sizeof(mine), "%u", (unsigned)getgid());
	pid = start("gidyes", 0, (char *[]){"--allow-uid", other, "--allow-gid", mine, NULL});
	st_connect(&a, st_sock("gidyes"));
	st_handshake(&a, 1, NULL, 0);
	st_close(&a);
	st_stop(pid);
}

/* --max-peers 2 (so also a 2-entry peer table and IDs 0..1). */
static void max_peers(void **state)
{
	struct st_peer a, b, c, d;
	int ids[2];
	pid_t pid;

	(void)state;
	pid = start("maxp", 0, (char *[]){"--max-peers", "2", NULL});
	st_connect(&a, st_sock("maxp"));
	ids[0] = st_handshake(&a, 1, NULL, 0);
	st_connect(&b, st_sock("maxp"));
	ids[1] = st_handshake(&b, 1, ids, 1);
	st_expect(&a, ids[1], true, false);

	st_connect(&c, st_sock("maxp"));
	st_expect_refused(&c);
	st_close(&c);
	assert_true(log_has("maxp", "maximum"));

	/* The others never heard of it, and still work. */
	st_close(&b);
	st_expect(&a, ids[1], false, false);
	st_connect(&d, st_sock("maxp"));
	/* Only ID 1 is free in a 2-entry table. */
	assert_int_equal(st_handshake(&d, 1, ids, 1), ids[1]);
	st_expect(&a, ids[1], true, false);
	st_expect_quiet(&a, 50);
	st_close(&a);
	st_close(&d);
	st_stop(pid);
}

/* Round-robin IDs with --raw (IDs 0..65535 whatever --max-peers is), and
 * wrap-around in a small table. */
static void id_allocation(void **state)
{
	struct st_peer p[4];
	pid_t pid;

	(void)state;
	pid = start("rawids", 0, (char *[]){"--raw", "--max-peers", "3", NULL});
	st_connect(&p[0], st_sock("rawids"));
	assert_int_equal(st_handshake(&p[0], 1, NULL, 0), 0);
	st_connect(&p[1], st_sock("rawids"));
	assert_int_equal(st_handshake(&p[1], 1, (int[]){0}, 1), 1);
	st_expect(&p[0], 1, true, false);
	st_close(&p[1]);
	st_expect(&p[0], 1, false, false);
	st_connect(&p[2], st_sock("rawids"));
	assert_int_equal(st_handshake(&p[2], 1, (int[]){0}, 1), 2);
	st_expect(&p[0], 2, true, false);
	st_connect(&p[3], st_sock("rawids"));
	assert_int_equal(st_handshake(&p[3], 1, (int[]){0, 2}, 2), 3);
	st_connect(&p[1], st_sock("rawids"));
	st_expect_refused(&p[1]); /* three peers: full */
	st_close(&p[1]);
	for (int i = 0; i < 4; i++)
		if (i != 1)
			st_close(&p[i]);
	st_stop(pid);

	/* Formatted, 3-entry table: IDs wrap 0 1 2 -> 1 (after 2, first free). */
	pid = start("wrapids", 0, (char *[]){"--max-peers", "3", NULL});
	st_connect(&p[0], st_sock("wrapids"));
	assert_int_equal(st_handshake(&p[0], 1, NULL, 0), 0);
	st_connect(&p[1], st_sock("wrapids"));
	assert_int_equal(st_handshake(&p[1], 1, (int[]){0}, 1), 1);
	st_connect(&p[2], st_sock("wrapids"));
	assert_int_equal(st_handshake(&p[2], 1, (int[]){0, 1}, 2), 2);
	st_close(&p[1]);
	st_expect(&p[0], 1, true, false);
	st_expect(&p[0], 2, true, false);
	st_expect(&p[0], 1, false, false);
	st_connect(&p[1], st_sock("wrapids"));
	assert_int_equal(st_handshake(&p[1], 1, (int[]){0, 2}, 2), 1);
	for (int i = 0; i < 3; i++)
		st_close(&p[i]);
	st_stop(pid);
}

/*
 * Under a hard open-file limit of 64 the server runs out of descriptors
 * after a few peers (each costs a socket and 4 eventfds).  Newcomers are
 * refused; the peers already in keep getting join and leave notifications,
 * and a departure makes room again.
 */
static void exhaust(const char *tag, unsigned nofile, unsigned vectors)
{
	enum { MAX = 64 };
	static struct st_peer p[MAX];
	int ids[MAX];
	int n = 0, i;
	bool refused = false;
	char nv[8];
	pid_t pid;

	snprintf(nv, sizeof(nv), "%u", vectors);
	pid = start(tag, nofile, (char *[]){"-n", nv, NULL});
	while (n < MAX && !refused) {
		struct ivl_msg m;
		int ret;

		st_connect(&p[n], st_sock(tag));
		ret = st_recv(&p[n], &m, ST_TIMEOUT);
		if (ret == -ECONNRESET) {
			refused = true;
			st_close(&p[n]);
			break;
		}
		assert_int_equal(ret, 1);
		assert_true(m.value == 0 && m.fd < 0);
		/* Rest of the handshake: ID, shm, then the others; or the
		 * reason of a refusal in place of the ID. */
		{
			unsigned v;
			assert_int_equal(st_recv(&p[n], &m, ST_TIMEOUT), 1);
			if (IVL_EXT_IS(m.value)) {
				assert_int_equal(IVL_EXT_OP(m.value), IVL_EXT_REFUSED);
				assert_int_equal(IVL_EXT_ARG(m.value), EMFILE);
				refused = true;
				st_close(&p[n]);
				break;
			}
			p[n].id = ids[n] = (int)m.value;
			p[n].shm_fd = st_expect(&p[n], -1, true, true);
			for (i = 0; i < n; i++)
				for (v = 0; v < vectors; v++)
					st_expect(&p[n], ids[i], true, false);
			for (v = 0; v < vectors; v++)
				st_expect(&p[n], ids[n], true, false);
		}
		for (i = 0; i < n; i++)
			for (unsigned v = 0; v < vectors; v++)
				st_expect(&p[i], ids[n], true, false);
		n++;
	}
	assert_true(refused);
	assert_true(n >= 2);
	assert_true(log_has(tag, "refusing"));
	/* A few more attempts: all refused, nobody else hears of them. */
	for (i = 0; i < 3; i++) {
		struct st_peer x;
		st_connect(&x, st_sock(tag));
		st_expect_refused(&x);
		st_close(&x);
	}
	/* A departure is announced to all and frees room for one more. */
	st_close(&p[n - 1]);
	for (i = 0; i < n - 1; i++)
		st_expect(&p[i], ids[n - 1], false, false);
	st_connect(&p[n - 1], st_sock(tag));
	st_handshake(&p[n - 1], vectors, ids, (size_t)n - 1);
	for (i = 0; i < n - 1; i++) {
		for (unsigned v = 0; v < vectors; v++)
			st_expect(&p[i], p[n - 1].id, true, false);
		st_expect_quiet(&p[i], 20);
	}
	for (i = 0; i < n; i++)
		st_close(&p[i]);
	st_stop(pid);
}

static void fd_exhaustion(void **state)
{
	(void)state;
	exhaust("nofile", 64, 4);
}

/* With one vector a peer costs two fds, so with one of two limits of
 * different parity the server runs out exactly at accept(): the spare-fd
 * path must refuse the peer without spinning on the listener. */
static void fd_exhaustion_at_accept(void **state)
{
	(void)state;
	exhaust("nofile64", 64, 1);
	exhaust("nofile65", 65, 1);
	assert_true(log_has("nofile64", "out of file descriptors") ||
		    log_has("nofile65", "out of file descriptors"));
}

/*
 * The kernel limits the fds a user has in flight on UNIX sockets to its
 * RLIMIT_NOFILE (root is exempt, so the server runs as nobody here).  A
 * peer that does not read pins the server's budget; sends then fail with
 * ETOOMANYREFS, which the server must wait out, not treat as fatal: once
 * the slow peer reads, every handshake completes, in order.
 */
static void inflight_fd_limit(void **state)
{
	char dir[] = "/tmp/ivltest-nobody.XXXXXX";
	char sock[64], log[64];
	struct st_peer a, b, c;
	int ids[2];
	pid_t pid;

	(void)state;
	if (geteuid() != 0)
		skip(); /* an unprivileged user: cannot switch to nobody */
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0777), 0);
	snprintf(sock, sizeof(sock), "%s/sock", dir);
	snprintf(log, sizeof(log), "%s/log", dir);
	pid =
	    st_start_as(sock, log, 256, 65534,
			(char *[]){"-v", "-n", "64", "-M", (char *)st_shm_name("inflight"), NULL});
	st_connect(&a, sock);
	ids[0] = st_handshake(&a, 64, NULL, 0);
	/* From here on, a reads nothing for a while. */
	st_connect(&b, sock);
	ids[1] = st_handshake(&b, 64, ids, 1);
	st_connect(&c, sock);
	/* c's handshake cannot all be in flight while a sits on >128 fds:
	 * wait until the server has hit the limit, then let a read. */
	for (int64_t end = tu_now_ms() + ST_TIMEOUT;; usleep(2000)) {
		char *text = tu_read_file(log);
		bool hit = text && strstr(text, "in-flight fd limit");
		free(text);
		if (hit)
			break;
		if (tu_now_ms() > end)
			fail_msg("the in-flight fd limit was never reached");
	}
	for (unsigned v = 0; v < 64; v++)
		st_expect(&a, ids[1], true, false);
	st_handshake(&c, 64, ids, 2);
	for (unsigned v = 0; v < 64; v++) {
		st_expect(&a, c.id, true, false);
		st_expect(&b, c.id, true, false);
	}
	st_close(&a);
	st_expect(&b, ids[0], false, false);
	st_expect(&c, ids[0], false, false);
	st_close(&b);
	st_close(&c);
	st_stop(pid);
	unlink(log);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(allow_uid),
	    cmocka_unit_test(max_peers),
	    cmocka_unit_test(id_allocation),
	    cmocka_unit_test(fd_exhaustion),
	    cmocka_unit_test(fd_exhaustion_at_accept),
	    cmocka_unit_test(inflight_fd_limit),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
