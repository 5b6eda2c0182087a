/* SPDX-License-Identifier: MIT */
/* ivlink CLI without a separate server: help, usage errors, strict numbers,
 * the demo, a missing server, and direct region access (--file). */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ivlink/ivlink.h>

#include "clitest.h"

static const char *const commands[] = {
    "peers", "info", "ring", "listen", "dump", "peek", "poke", "demo", "help",
};

static void test_help(void **state)
{
	char *out, *err;
	char usage[64];

	(void)state;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		snprintf(usage, sizeof(usage), "Usage: ivlink %s", commands[i]);
		assert_int_equal(ct_run(&out, &err, commands[i], "--help", NULL), 0);
		assert_non_null(strstr(out, usage));
		free(out);
		free(err);
		assert_int_equal(ct_run(&out, &err, commands[i], "-h", NULL), 0);
		assert_non_null(strstr(out, usage));
		free(out);
		free(err);
		assert_int_equal(ct_run(&out, &err, "help", commands[i], NULL), 0);
		assert_non_null(strstr(out, usage));
		free(out);
		free(err);
	}
	assert_int_equal(ct_run(&out, NULL, "--help", NULL), 0);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		assert_non_null(strstr(out, commands[i]));
	free(out);
	assert_int_equal(ct_run(&out, NULL, "help", NULL), 0);
	assert_non_null(strstr(out, "Commands:"));
	free(out);
	assert_int_equal(ct_run(&out, NULL, "--version", NULL), 0);
	assert_non_null(strstr(out, ivl_version_string()));
	free(out);
}

/* Usage errors: exit 2, "ivlink: ..." on stderr with a hint. */
static void expect_usage(const char *needle, ...)
{
	char *argv[32], *out, *err;
	const char *a;
	int n = 0, rc;
	va_list ap;

	argv[n++] = (char *)tu_cli_bin();
	va_start(ap, needle);
	while ((a = va_arg(ap, const char *)) && n < 31)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	rc = tu_run(argv, CT_TIMEOUT, &out, &err);
	if (rc != 2 || !strstr(err, needle) || !strstr(err, "Try 'ivlink") ||
	    strncmp(err, "ivlink: ", 8))
		fprintf(stderr, "%s %s: rc %d, stderr: %s\n", argv[1], n > 2 ? argv[2] : "", rc,
			err);
	assert_int_equal(rc, 2);
	assert_non_null(strstr(err, needle));
	assert_non_null(strstr(err, "Try 'ivlink"));
	assert_int_equal(strncmp(err, "ivlink: ", 8), 0);
	assert_string_equal(out, "");
	free(out);
	free(err);
}

static void test_usage_errors(void **state)
{
	(void)state;
	expect_usage("no command", NULL);
	expect_usage("unknown command 'frobnicate'", "frobnicate", NULL);
	expect_usage("unknown option '--bogus'", "--bogus", "peers", NULL);
	expect_usage("unknown option '-q'", "-q", NULL);
	expect_usage("unknown option '--bogus'", "peers", "--bogus", NULL);
	expect_usage("unknown option '--bogus'", "demo", "--bogus", NULL);
	expect_usage("unexpected argument", "info", "extra", NULL);
	expect_usage("needs a value", "-S", NULL);
	expect_usage("needs a value", "ring", "--count", NULL);
	expect_usage("expected PEER and VECTOR", "ring", "1", NULL);
	expect_usage("expected OFFSET", "peek", NULL);
	expect_usage("expected VALUE", "poke", "0", NULL);
	expect_usage("invalid hex", "poke", "0", "--bytes", "abc", NULL);
	expect_usage("invalid hex", "poke", "0", "--bytes", "zz", NULL);
	expect_usage("exclude", "poke", "0", "1", "--string", "x", NULL);
	expect_usage("--force", "poke", "--force", "0", "1", NULL);
	expect_usage("invalid event types", "listen", "--type", "join,,leave", NULL);
	expect_usage("takes no value", "info", "--json=yes", NULL);
	expect_usage("exclude each other", "--shm", "x", "--file", "y", "info", NULL);
	expect_usage("unknown command", "help", "nosuch", NULL);
}

static void test_bad_numbers(void **state)
{
	(void)state;
	expect_usage("invalid peer '1x'", "ring", "1x", "0", NULL);
	expect_usage("invalid peer ''", "ring", "", "0", NULL);
	expect_usage("unknown option '-1'", "ring", "-1", "0", NULL);
	expect_usage("invalid peer '+1'", "ring", "+1", "0", NULL);
	expect_usage("invalid peer ' 1'", "ring", " 1", "0", NULL);
	expect_usage("peer '65536' out of range", "ring", "65536", "0", NULL);
	expect_usage("vector '64' out of range", "ring", "0", "64", NULL);
	expect_usage("invalid vector '0x'", "ring", "0", "0x", NULL);
	expect_usage("count '0' out of range", "ring", "--count", "0", "0", "0", NULL);
	expect_usage("out of range", "ring", "--count", "99999999999999999999999", "0", "0", NULL);
	expect_usage("invalid count '2.5'", "listen", "--count", "2.5", NULL);
	expect_usage("invalid timeout", "listen", "--timeout", "abc", NULL);
	expect_usage("invalid timeout", "listen", "--timeout", "0", NULL);
	expect_usage("invalid timeout", "listen", "--timeout", "1.2345", NULL);
	expect_usage("invalid offset", "peek", "12abc", NULL);
	expect_usage("length '0' out of range", "dump", "--length", "0", NULL);
	expect_usage("value '256' out of range", "poke", "--u8", "0", "256", NULL);
	expect_usage("value '0x10000' out of range", "poke", "--u16", "0", "0x10000", NULL);
	expect_usage("invalid value '1e3'", "poke", "0", "1e3", NULL);
}

static void test_demo(void **state)
{
	char *out, *err;
	json_t *j;

	(void)state;
	assert_int_equal(ct_run(&out, &err, "demo", NULL), 0);
	for (const char *const *w =
		 (const char *const[]){"alice joins", "bob joins", "carol joins", "sees join: bob",
				       "sees join: carol", NULL};
	     *w; w++)
		assert_non_null(strstr(out, *w));
	assert_non_null(strstr(out, "alice rings bob, vector 0"));
	assert_non_null(strstr(out, "bob rings alice, vector 1"));
	assert_non_null(strstr(out, "carol rings everyone, vector 1"));
	assert_non_null(strstr(out, "bob: doorbell on vector 1"));
	assert_non_null(strstr(out, "alice: doorbell on vector 0"));
	assert_non_null(strstr(out, "bob reads \"hello bob"));
	assert_non_null(strstr(out, "alice sees carol (peer"));
	assert_non_null(strstr(out, "bob sees carol (peer"));
	assert_non_null(strstr(out, "slave 2: boot action ran, then the handler"));
	assert_non_null(strstr(out, "master: irq from slave"));
	assert_non_null(strstr(out, "slave 1 -> slave 2: refused locally"));
	assert_non_null(strstr(out, "every expected event was observed"));
	assert_null(strstr(out, "MISSING"));
	assert_string_equal(err, "");
	free(out);
	free(err);

	assert_int_equal(ct_run(&out, NULL, "demo", "--json", NULL), 0);
	j = ct_json(out);
	assert_true(json_is_true(json_object_get(j, "ok")));
	assert_int_equal(json_array_size(json_object_get(j, "missing")), 0);
	/* Every expected step is there, and each one passed. */
	{
		static const char *const want[] = {"server", "join", "doorbells", "message", "leave",
						   "sdm",    "console", "shutdown"};
		json_t *steps = json_object_get(j, "steps"), *step;
		size_t i;

		assert_true(json_is_array(steps));
		for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
			bool found = false;

			json_array_foreach(steps, i, step) {
				const char *name = json_string_value(json_object_get(step, "name"));

				if (name && !strcmp(name, want[w]))
					found = true;
			}
			assert_true(found);
		}
		json_array_foreach(steps, i, step)
			assert_true(json_is_true(json_object_get(step, "ok")));
	}
	/* The socket directory is gone after a clean shutdown. */
	{
		char dir[512];
		const char *sock = json_string_value(json_object_get(j, "socket"));
		struct stat st;

		assert_non_null(sock);
		snprintf(dir, sizeof(dir), "%s", sock);
		*strrchr(dir, '/') = '\0';
		assert_int_equal(stat(dir, &st), -1);
	}
	json_decref(j);
	free(out);
}

static void test_no_server(void **state)
{
	const char *sock = tu_path(tu_tmpdir(), "no-such-socket");
	static const char *const cmds[][3] = {
	    {"peers"}, {"info"}, {"ring", "0", "0"}, {"listen", "--count", "1"}, {"dump"},
	};
	char *out, *err;

	(void)state;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_int_equal(
		    ct_run(&out, &err, "-S", sock, cmds[i][0], cmds[i][1], cmds[i][2], NULL), 1);
		assert_non_null(strstr(err, sock));
		assert_non_null(strstr(err, "cannot connect"));
		assert_int_equal(strncmp(err, "ivlink: ", 8), 0);
		free(out);
		free(err);
	}
	/* $IVLINK_SOCKET is the default. */
	setenv("IVLINK_SOCKET", sock, 1);
	assert_int_equal(ct_run(&out, &err, "peers", NULL), 1);
	assert_non_null(strstr(err, sock));
	free(out);
	free(err);
	unsetenv("IVLINK_SOCKET");
	/* No such shm object or file. */
	assert_int_equal(ct_run(&out, &err, "--shm", "ivlink-cli-test-none", "info", NULL), 1);
	assert_non_null(strstr(err, "ivlink-cli-test-none"));
	free(out);
	free(err);
}

/* A region file for --file tests; @format: with an ivlink header. */
static const char *make_region(const char *name, uint64_t size, bool format)
{
	const char *path = tu_path(tu_tmpdir(), name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	void *p;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (format) {
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		assert_true(p != MAP_FAILED);
		assert_int_equal(ivl_shm_format(p, size, 4, 2, 42, 0), 0);
		munmap(p, size);
	}
	close(fd);
	return path;
}

static void test_file_raw(void **state)
{
	const char *path = make_region("raw.region", 65536, false);
	char *out, *err;
	json_t *j;

	(void)state;
	assert_int_equal(ct_run(&out, &err, "--file", path, "info", "--json", NULL), 0);
	j = ct_json(out);
	assert_int_equal(json_integer_value(json_object_get(j, "region_size")), 65536);
	assert_true(json_is_null(json_object_get(j, "header")));
	assert_int_equal(json_integer_value(json_object_get(j, "app_offset")), 0);
	json_decref(j);
	free(out);
	free(err);

	assert_int_equal(ct_run(NULL, NULL, "--file", path, "poke", "0x10", "0x11223344", NULL), 0);
	assert_int_equal(ct_run(&out, NULL, "--file", path, "peek", "0x10", "--u32", NULL), 0);
	assert_non_null(strstr(out, "0x11223344"));
	free(out);
	assert_int_equal(ct_run(&out, NULL, "--file", path, "peek", "0x10", "--length", "4", NULL),
			 0);
	assert_string_equal(out, "44 33 22 11\n");
	free(out);
	assert_int_equal(
	    ct_run(NULL, NULL, "poke", "--file", path, "0x20", "--string", "hi there", NULL), 0);
	assert_int_equal(
	    ct_run(NULL, NULL, "poke", "--file", path, "0x30", "--bytes", "de:ad:be:ef", NULL), 0);
	assert_int_equal(ct_run(&out, NULL, "--file", path, "dump", "--length", "0x40", NULL), 0);
	assert_non_null(strstr(out, "00000010  44 33 22 11 00"));
	assert_non_null(strstr(out, "|hi there........|"));
	assert_non_null(strstr(out, "00000030  de ad be ef"));
	free(out);
	/* The last word is in range, one byte further is not. */
	assert_int_equal(ct_run(NULL, NULL, "--file", path, "peek", "65532", "--u32", NULL), 0);
	assert_int_equal(ct_run(&out, &err, "--file", path, "peek", "65533", "--u32", NULL), 1);
	assert_non_null(strstr(err, "outside"));
	free(out);
	free(err);
	assert_int_equal(ct_run(&out, &err, "--file", path, "poke", "65536", "--u8", "1", NULL), 1);
	assert_non_null(strstr(err, "outside"));
	free(out);
	free(err);
	assert_int_equal(
	    ct_run(&out, &err, "--file", path, "dump", "--offset", "0xffffffffff", NULL), 1);
	assert_non_null(strstr(err, "outside"));
	free(out);
	free(err);
}

static void test_file_header(void **state)
{
	const char *path = make_region("fmt.region", 1 << 16, true);
	uint64_t hsize = ivl_shm_header_size(4);
	char *out, *err, abs[32];
	json_t *j;

	(void)state;
	assert_int_equal(ct_run(&out, &err, "--file", path, "info", "--json", NULL), 0);
	j = ct_json(out);
	assert_int_equal(json_integer_value(json_object_get(j, "app_offset")), (json_int_t)hsize);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(j, "header"), "vectors")), 2);
	json_decref(j);
	free(out);
	free(err);

	/* Relative offset 0 is the first byte after the header. */
	snprintf(abs, sizeof(abs), "%llu", (unsigned long long)hsize);
	assert_int_equal(ct_run(NULL, NULL, "--file", path, "poke", "--u8", "0", "0xab", NULL), 0);
	assert_int_equal(
	    ct_run(&out, NULL, "--file", path, "peek", "--absolute", abs, "--length", "1", NULL),
	    0);
	assert_string_equal(out, "ab\n");
	free(out);
	/* The header is protected unless --absolute --force. */
	assert_int_equal(
	    ct_run(&out, &err, "--file", path, "poke", "--absolute", "0x40", "1", NULL), 1);
	assert_non_null(strstr(err, "header"));
	free(out);
	free(err);
	assert_int_equal(
	    ct_run(NULL, NULL, "--file", path, "poke", "--absolute", "--force", "0x40", "1", NULL),
	    0);
	/* Past the app area, relative to it. */
	snprintf(abs, sizeof(abs), "%llu", (unsigned long long)((1 << 16) - hsize));
	assert_int_equal(ct_run(&out, &err, "--file", path, "peek", abs, NULL), 1);
	assert_non_null(strstr(err, "application area"));
	free(out);
	free(err);
}

/* After a server stopped its header says CLOSED: still shown, still used to
 * find the application area. */
static void test_file_closed(void **state)
{
	const char *path = make_region("closed.region", 1 << 16, true);
	struct ivl_shm_header *h;
	char *out, *err;
	json_t *j;
	int fd;

	(void)state;
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	h = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(h != MAP_FAILED);
	__atomic_store_n(&h->state, IVL_SHM_CLOSED, __ATOMIC_RELEASE);
	munmap(h, 1 << 16);
	close(fd);
	assert_int_equal(ct_run(&out, &err, "--file", path, "info", "--json", NULL), 0);
	j = ct_json(out);
	assert_string_equal(json_string_value(json_object_get(j, "header_state")),
			    "closed (server stopped)");
	assert_int_equal(json_integer_value(json_object_get(j, "app_offset")),
			 (json_int_t)ivl_shm_header_size(4));
	json_decref(j);
	free(out);
	free(err);
	assert_int_equal(ct_run(&out, &err, "--file", path, "peers", NULL), 0);
	assert_non_null(strstr(out, "(no other peers)"));
	free(out);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_help),	cmocka_unit_test(test_usage_errors),
	    cmocka_unit_test(test_bad_numbers), cmocka_unit_test(test_demo),
	    cmocka_unit_test(test_no_server),	cmocka_unit_test(test_file_raw),
	    cmocka_unit_test(test_file_header), cmocka_unit_test(test_file_closed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
