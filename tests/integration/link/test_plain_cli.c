/* SPDX-License-Identifier: MIT */
/* ivlink --plain (docs/plain.md): create and format, open, size mismatch,
 * memory commands, and ring/listen between two CLI peers with no server. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* Run "ivlink ARGS..." (NULL terminated); returns the exit status. */
static int cli(char **out, char **err, ...)
{
	char *argv[16];
	int n = 0, rc;
	va_list ap;

	argv[n++] = (char *)tu_cli_bin();
	va_start(ap, err);
	while (n < 15 && (argv[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	rc = tu_run(argv, 10000, out, err);
	return rc;
}

static void create_open_mismatch(void **state)
{
	char spec[4200], spec2[4200];
	const char *path = tu_path(tu_tmpdir(), "obj");
	char *out, *err;

	(void)state;
	if (!tu_cli_bin())
		skip();
	snprintf(spec, sizeof(spec), "%s:1M", path);
	assert_int_equal(cli(&out, &err, "-v", "--plain", spec, "info", NULL), 0);
	assert_non_null(strstr(err, "created, formatted the header"));
	assert_non_null(strstr(out, "ready"));
	free(out);
	free(err);
	/* Open again, with and without the size. */
	assert_int_equal(cli(&out, &err, "-v", "--plain", spec, "info", NULL), 0);
	assert_non_null(strstr(err, "header was ready"));
	free(out);
	free(err);
	/* Memory commands. */
	assert_int_equal(
	    cli(NULL, NULL, "--plain", path, "poke", "--u32", "0x40", "0xfeedbeef", NULL), 0);
	assert_int_equal(cli(&out, NULL, "--plain", path, "peek", "--u32", "0x40", NULL), 0);
	assert_non_null(strstr(out, "0xfeedbeef"));
	free(out);
	/* Sizes disagree: exit 1 and both sizes named. */
	snprintf(spec2, sizeof(spec2), "%s:2M", path);
	assert_int_equal(cli(NULL, &err, "--plain", spec2, "info", NULL), 1);
	assert_non_null(strstr(err, "has 1048576 bytes, asked for 2097152"));
	free(err);
	/* Usage errors: a bad size, two mapped targets. */
	assert_int_equal(cli(NULL, NULL, "--plain", "x:99999999999999999999", "info", NULL), 2);
	assert_int_equal(cli(NULL, NULL, "--plain", ":1M", "info", NULL), 2);
	assert_int_equal(cli(NULL, NULL, "--plain", path, "--file", path, "info", NULL), 2);
	/* Missing object without a size. */
	assert_int_equal(cli(NULL, &err, "--plain", tu_path(tu_tmpdir(), "nope"), "info", NULL), 1);
	assert_non_null(strstr(err, "give PATH:SIZE"));
	free(err);
}

static void ring_and_listen(void **state)
{
	char spec[4200];
	const char *path = tu_path(tu_tmpdir(), "bell");
	const char *log = tu_path(tu_tmpdir(), "listen.log");
	char *argv[] = {(char *)tu_cli_bin(), "--plain",   spec, "listen", "--count", "1", "--type",
			"doorbell",	      "--timeout", "20", NULL};
	char *out = NULL, *text;
	int64_t end;
	pid_t pid;
	int st;

	(void)state;
	if (!tu_cli_bin())
		skip();
	snprintf(spec, sizeof(spec), "%s:1M", path);
	pid = tu_spawn(argv, log);
	assert_true(pid > 0);
	/* The listener registered itself as peer 0. */
	end = tu_now_ms() + 10000;
	while (tu_now_ms() < end) {
		free(out);
		out = NULL;
		if (cli(&out, NULL, "--plain", path, "peers", NULL) == 0 &&
		    strstr(out, "ivlink-cli"))
			break;
		usleep(20000);
	}
	assert_non_null(out);
	assert_non_null(strstr(out, "ivlink-cli"));
	free(out);
	assert_int_equal(cli(&out, NULL, "--plain", path, "ring", "0", "0", NULL), 0);
	assert_non_null(strstr(out, "rang peer 0 vector 0"));
	free(out);
	st = tu_wait(pid, 20000);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	text = tu_read_file(log);
	assert_non_null(text);
	assert_non_null(strstr(text, "doorbell vector 0"));
	free(text);
	/* The listener left: the ringer now takes ID 0 itself, and there is
	 * no peer 1 to ring. */
	assert_int_equal(cli(NULL, NULL, "--plain", path, "ring", "1", "0", NULL), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(create_open_mismatch),
	    cmocka_unit_test(ring_and_listen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
