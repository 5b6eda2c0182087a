/* SPDX-License-Identifier: MIT */
/* ivlink CLI against a real ivlink-server, with other peers played by
 * child "ivlink listen" processes. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"

#define REGION_SIZE 1048576
#define VECTORS 2

struct fixture {
	const char *sock;
	pid_t server;
	pid_t watcher; /* a listening peer named "watcher" */
	int watcher_id;
};

static int setup(void **state)
{
	static struct fixture f;
	const char *dir = tu_tmpdir();

	f.sock = tu_path(dir, "ivshmem.sock");
	f.server = tu_start_server(f.sock, tu_path(dir, "server.log"), "--memfd", "-l", "1M", "-n",
				   "2", NULL);
	if (f.server < 0)
		return -1;
	/* Bounded by --timeout in case this test process dies. */
	f.watcher = ct_spawn(tu_path(dir, "watcher.log"), "-S", f.sock, "listen", "--name",
			     "watcher", "--timeout", "120", NULL);
	if (f.watcher < 0)
		return -1;
	f.watcher_id = ct_wait_peer(f.sock, "watcher");
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f) {
		tu_kill(f->watcher);
		tu_kill(f->server);
	}
	return 0;
}

static void test_peers(void **state)
{
	struct fixture *f = *state;
	char *out, *err;
	json_t *j, *p;
	size_t i;
	bool found = false;

	assert_int_equal(ct_run(&out, &err, "-S", f->sock, "peers", NULL), 0);
	assert_non_null(strstr(out, "watcher"));
	assert_non_null(strstr(out, "ready"));
	assert_null(strstr(out, "ivlink-cli")); /* itself excluded */
	free(out);
	free(err);

	assert_int_equal(ct_run(&out, &err, "--json", "-S", f->sock, "peers", NULL), 0);
	j = ct_json(out);
	assert_true(json_is_array(j));
	json_array_foreach(j, i, p)
	{
		if (strcmp(json_string_value(json_object_get(p, "name")), "watcher"))
			continue;
		found = true;
		assert_int_equal(json_integer_value(json_object_get(p, "id")), f->watcher_id);
		assert_int_equal(json_integer_value(json_object_get(p, "vectors")), VECTORS);
		assert_string_equal(json_string_value(json_object_get(p, "state")), "ready");
		assert_int_equal(json_integer_value(json_object_get(p, "pid")), f->watcher);
		assert_true(json_integer_value(json_object_get(p, "generation")) >= 1);
	}
	assert_true(found);
	json_decref(j);
	free(out);
	free(err);
}

static void test_info(void **state)
{
	struct fixture *f = *state;
	char *out, *err;
	json_t *j, *h, *p;
	size_t i;
	bool found = false;

	assert_int_equal(ct_run(&out, &err, "-S", f->sock, "info", NULL), 0);
	assert_non_null(strstr(out, "magic ok"));
	assert_non_null(strstr(out, "1048576"));
	assert_non_null(strstr(out, "watcher"));
	assert_non_null(strstr(out, "(me)"));
	free(out);
	free(err);

	assert_int_equal(ct_run(&out, &err, "-S", f->sock, "info", "--json", NULL), 0);
	j = ct_json(out);
	assert_int_equal(json_integer_value(json_object_get(j, "region_size")), REGION_SIZE);
	assert_int_equal(json_integer_value(json_object_get(j, "vectors")), VECTORS);
	assert_true(json_integer_value(json_object_get(j, "id")) >= 0);
	h = json_object_get(j, "header");
	assert_true(json_is_object(h));
	assert_true(json_is_true(json_object_get(h, "magic_ok")));
	assert_int_equal(json_integer_value(json_object_get(h, "vectors")), VECTORS);
	assert_int_equal(json_integer_value(json_object_get(h, "header_size")),
			 json_integer_value(json_object_get(j, "app_offset")));
	assert_int_equal(json_integer_value(json_object_get(j, "app_offset")) +
			     json_integer_value(json_object_get(j, "app_size")),
			 REGION_SIZE);
	json_array_foreach(json_object_get(j, "peers"), i, p)
	{
		const char *n = json_string_value(json_object_get(p, "name"));
		if (n && !strcmp(n, "watcher")) {
			found = true;
			assert_int_equal(json_integer_value(json_object_get(p, "id")),
					 f->watcher_id);
		}
	}
	assert_true(found);
	json_decref(j);
	free(out);
	free(err);
}

/* Start "listen --count 1 --json --type doorbell" as @name, ring it with
 * @ring_args, and check the doorbell it reports. */
static void ring_and_listen(struct fixture *f, const char *name, const char *peer,
			    const char *vector, int want_vector)
{
	const char *log = tu_path(tu_tmpdir(), name);
	char idtxt[16], *out, *err, *line;
	json_t *j;
	pid_t pid;
	int id, st;

	unlink(log);
	pid = ct_spawn(log, "-S", f->sock, "listen", "--count", "1", "--json", "--type", "doorbell",
		       "--name", name, "--timeout", "60", NULL);
	assert_true(pid > 0);
	id = ct_wait_peer(f->sock, name);
	snprintf(idtxt, sizeof(idtxt), "%d", id);
	assert_int_equal(
	    ct_run(&out, &err, "-S", f->sock, "ring", peer ? peer : idtxt, vector, NULL), 0);
	assert_non_null(strstr(out, "rang"));
	free(out);
	free(err);
	st = tu_wait(pid, CT_TIMEOUT);
	assert_true(st >= 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	out = tu_read_file(log);
	assert_non_null(out);
	line = strtok(out, "\n");
	assert_non_null(line);
	j = ct_json(line);
	assert_string_equal(json_string_value(json_object_get(j, "event")), "doorbell");
	assert_int_equal(json_integer_value(json_object_get(j, "vector")), want_vector);
	assert_true(json_integer_value(json_object_get(j, "count")) >= 1);
	json_decref(j);
	assert_null(strtok(NULL, "\n")); /* exactly one event, then exit */
	free(out);
}

static void test_ring(void **state)
{
	struct fixture *f = *state;

	ring_and_listen(f, "bell1", NULL, "1", 1);
	ring_and_listen(f, "bell0", NULL, "0", 0);
	/* A broadcast reaches the listener too. */
	ring_and_listen(f, "bellall", "all", "1", 1);
}

static void test_ring_errors(void **state)
{
	struct fixture *f = *state;
	char *out, *err, idtxt[16];

	/* The watcher has 2 vectors: 5 is valid syntax but not ringable. */
	snprintf(idtxt, sizeof(idtxt), "%d", f->watcher_id);
	assert_int_equal(ct_run(&out, &err, "-S", f->sock, "ring", idtxt, "5", NULL), 1);
	assert_non_null(strstr(err, "no vector 5"));
	free(out);
	free(err);
	assert_int_equal(ct_run(&out, &err, "-S", f->sock, "ring", "60000", "0", NULL), 1);
	assert_non_null(strstr(err, "no peer 60000"));
	free(out);
	free(err);
}

static void test_poke_peek_dump(void **state)
{
	struct fixture *f = *state;
	char *out, *err;
	json_t *j;

	assert_int_equal(ct_run(&out, &err, "-S", f->sock, "poke", "0x100", "0xcafef00d", NULL), 0);
	assert_non_null(strstr(out, "wrote 4 bytes"));
	free(out);
	free(err);
	assert_int_equal(ct_run(&out, NULL, "-S", f->sock, "peek", "0x100", "--u32", NULL), 0);
	assert_non_null(strstr(out, "0xcafef00d"));
	free(out);
	assert_int_equal(
	    ct_run(NULL, NULL, "-S", f->sock, "poke", "0x108", "--string", "ivlink!", NULL), 0);
	assert_int_equal(
	    ct_run(&out, NULL, "-S", f->sock, "peek", "0x108", "--length", "7", "--json", NULL), 0);
	j = ct_json(out);
	assert_string_equal(json_string_value(json_object_get(j, "hex")), "69766c696e6b21");
	json_decref(j);
	free(out);
	assert_int_equal(
	    ct_run(&out, NULL, "-S", f->sock, "dump", "--offset", "0x100", "--length", "16", NULL),
	    0);
	assert_non_null(strstr(out, "00000100  0d f0 fe ca 00 00 00 00  69 76 6c 69 6e 6b 21 00"));
	assert_non_null(strstr(out, "|........ivlink!.|"));
	free(out);
	assert_int_equal(
	    ct_run(&out, NULL, "-S", f->sock, "peek", "0x100", "--u64", "--json", NULL), 0);
	j = ct_json(out);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "values"), 0)),
			 0xcafef00dll);
	json_decref(j);
	free(out);
}

static void test_out_of_range(void **state)
{
	struct fixture *f = *state;
	char *out, *err, off[32];
	json_t *j;
	json_int_t app_size;

	assert_int_equal(ct_run(&out, NULL, "-S", f->sock, "info", "--json", NULL), 0);
	j = ct_json(out);
	app_size = json_integer_value(json_object_get(j, "app_size"));
	json_decref(j);
	free(out);
	assert_true(app_size > 0 && app_size < REGION_SIZE);

	snprintf(off, sizeof(off), "%lld", (long long)app_size - 3);
	assert_int_equal(ct_run(&out, &err, "-S", f->sock, "peek", off, "--u32", NULL), 1);
	assert_non_null(strstr(err, "outside the application area"));
	assert_string_equal(out, "");
	free(out);
	free(err);
	assert_int_equal(ct_run(&out, &err, "-S", f->sock, "poke", "--absolute", "0", "1", NULL),
			 1);
	assert_non_null(strstr(err, "header"));
	free(out);
	free(err);
	assert_int_equal(
	    ct_run(&out, &err, "-S", f->sock, "dump", "--absolute", "--offset", "1048576", NULL),
	    1);
	assert_non_null(strstr(err, "outside the region"));
	free(out);
	free(err);
}

static void test_listen_limits(void **state)
{
	struct fixture *f = *state;
	char *out, *err;
	pid_t pid;
	int st;

	/* --timeout alone: exits 0 with whatever it saw. */
	assert_int_equal(ct_run(&out, &err, "-S", f->sock, "listen", "--timeout", "0.2", "--type",
				"doorbell", NULL),
			 0);
	free(out);
	free(err);
	/* No limits: SIGTERM ends it with status 0. */
	pid = ct_spawn(tu_path(tu_tmpdir(), "sigterm.log"), "-S", f->sock, "listen", "--name",
		       "sigterm", NULL);
	assert_true(pid > 0);
	ct_wait_peer(f->sock, "sigterm");
	assert_int_equal(kill(pid, SIGTERM), 0);
	st = tu_wait(pid, CT_TIMEOUT);
	assert_true(st >= 0 && WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void listen_one(struct fixture *f, const char *type, const char *name, const char *expect)
{
	const char *log = tu_path(tu_tmpdir(), name);
	int64_t end = tu_now_ms() + CT_TIMEOUT;
	char *s;
	pid_t pid;
	int st = -1;

	pid = ct_spawn(log, "-S", f->sock, "listen", "--count", "1", "--type", type, "--name", name,
		       "--timeout", "60", NULL);
	assert_true(pid > 0);
	/* A join listener reports the peers already there (the watcher) at
	 * once; a leave listener needs a peer to come and go after it joined,
	 * which each "info" run is, until the listener is done. */
	while (tu_now_ms() < end) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			break;
		st = -1;
		assert_int_equal(ct_run(NULL, NULL, "-S", f->sock, "info", NULL), 0);
		usleep(10000);
	}
	if (st < 0)
		st = tu_wait(pid, CT_TIMEOUT);
	assert_true(st >= 0 && WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	s = tu_read_file(log);
	assert_non_null(s);
	assert_non_null(strstr(s, expect));
	free(s);
}

static void test_join_leave_events(void **state)
{
	struct fixture *f = *state;

	listen_one(f, "join", "joinwatch", "join peer");
	listen_one(f, "leave", "leavewatch", "leave peer");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_peers),	   cmocka_unit_test(test_info),
	    cmocka_unit_test(test_ring),	   cmocka_unit_test(test_ring_errors),
	    cmocka_unit_test(test_poke_peek_dump), cmocka_unit_test(test_out_of_range),
	    cmocka_unit_test(test_listen_limits),  cmocka_unit_test(test_join_leave_events),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
