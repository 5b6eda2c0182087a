/* SPDX-License-Identifier: MIT */
/*
 * "Say why": a refused ivlink peer learns the reason and prints it (issue:
 * it only saw a closed connection), and `ivlink listen` prints its own ID.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostile.h"

static void refused_peer_learns_why(void **state)
{
	char sock[256], log[256], other[16];
	char *out = NULL, *err = NULL;
	struct st_peer a, b;
	int mine = tu_count_fds();
	pid_t pid;

	(void)state;
	if (!tu_cli_bin())
		skip();
	snprintf(sock, sizeof(sock), "%s", st_sock("why"));
	snprintf(log, sizeof(log), "%s", tu_path(tu_tmpdir(), "why.log"));
	pid = st_start(sock, log, 0,
		       (char *[]){"-M", (char *)st_shm_name("why"), "--max-peers", "1", NULL});
	st_connect(&a, sock);
	st_handshake(&a, 1, NULL, 0);
	/* On the wire: the reason in place of an ID. */
	st_connect(&b, sock);
	assert_int_equal(st_expect_refused(&b), EUSERS);
	st_close(&b);
	/* And in words, from the CLI. */
	{
		char *argv[] = {(char *)tu_cli_bin(), "-S", sock, "peers", NULL};
		assert_int_not_equal(tu_run(argv, 10000, &out, &err), 0);
	}
	assert_non_null(err);
	if (!strstr(err, "refused this peer: it is full"))
		fail_msg("stderr: %s", err);
	free(out);
	free(err);
	st_close(&a);
	st_stop(pid);

	/* Not allowed. */
	snprintf(other, sizeof(other), "%u", (unsigned)getuid() + 4242);
	snprintf(log, sizeof(log), "%s", tu_path(tu_tmpdir(), "why2.log"));
	pid = st_start(sock, log, 0,
		       (char *[]){"-M", (char *)st_shm_name("why2"), "--allow-uid", other, NULL});
	{
		char *argv[] = {(char *)tu_cli_bin(), "-S", sock, "peers", NULL};
		assert_int_not_equal(tu_run(argv, 10000, &out, &err), 0);
	}
	if (!err || !strstr(err, "not allowed"))
		fail_msg("stderr: %s", err ? err : "(none)");
	free(out);
	free(err);
	st_stop(pid);
	assert_int_equal(tu_count_fds(), mine);
}

static void listen_prints_its_id(void **state)
{
	char sock[256], log[256];
	char *out = NULL, *err = NULL;
	struct st_peer a;
	int mine = tu_count_fds();
	pid_t pid;

	(void)state;
	if (!tu_cli_bin())
		skip();
	snprintf(sock, sizeof(sock), "%s", st_sock("self"));
	snprintf(log, sizeof(log), "%s", tu_path(tu_tmpdir(), "self.log"));
	pid = st_start(sock, log, 0, (char *[]){"-M", (char *)st_shm_name("self"), NULL});
	st_connect(&a, sock);
	st_handshake(&a, 1, NULL, 0);
	{
		char *argv[] = {(char *)tu_cli_bin(), "-S", sock, "listen", "--timeout", "0.2",
				NULL};
		assert_int_equal(tu_run(argv, 10000, &out, &err), 0);
	}
	assert_non_null(out);
	if (strncmp(out, "self peer 1\n", 12) != 0)
		fail_msg("stdout: %s", out);
	free(out);
	free(err);
	st_expect(&a, 1, true, false);
	st_expect(&a, 1, false, false);
	{
		char *argv[] = {(char *)tu_cli_bin(), "--json", "-S", sock, "listen", "--timeout",
				"0.2", NULL};
		assert_int_equal(tu_run(argv, 10000, &out, &err), 0);
	}
	assert_non_null(out);
	if (!strstr(out, "\"event\":\"self\"") || !strstr(out, "\"peer\":2"))
		fail_msg("stdout: %s", out);
	free(out);
	free(err);
	st_close(&a);
	st_stop(pid);
	assert_int_equal(tu_count_fds(), mine);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(refused_peer_learns_why),
	    cmocka_unit_test(listen_prints_its_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
