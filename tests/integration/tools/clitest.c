/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clitest.h"

#define MAX_ARGS 48

static void build_argv(char **argv, va_list ap)
{
	const char *a;
	int n = 0;

	argv[n++] = (char *)tu_cli_bin();
	while ((a = va_arg(ap, const char *)) && n < MAX_ARGS - 1)
		argv[n++] = (char *)a;
	argv[n] = NULL;
}

int ct_run(char **out, char **err, ...)
{
	char *argv[MAX_ARGS];
	va_list ap;

	va_start(ap, err);
	build_argv(argv, ap);
	va_end(ap);
	return tu_run(argv, CT_TIMEOUT, out, err);
}

pid_t ct_spawn(const char *log, ...)
{
	char *argv[MAX_ARGS];
	va_list ap;

	va_start(ap, log);
	build_argv(argv, ap);
	va_end(ap);
	return tu_spawn(argv, log);
}

json_t *ct_json(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	if (!j)
		fprintf(stderr, "bad JSON (%s): %s\n", e.text, text);
	assert_non_null(j);
	return j;
}

int ct_wait_peer(const char *sock, const char *name)
{
	int64_t end = tu_now_ms() + CT_TIMEOUT;

	do {
		char *out = NULL;
		int rc = ct_run(&out, NULL, "-S", sock, "peers", "--json", NULL);
		json_t *j = rc == 0 ? json_loads(out, 0, NULL) : NULL;
		size_t i;
		json_t *p;
		int id = -1;

		json_array_foreach(j, i, p)
		{
			const char *n = json_string_value(json_object_get(p, "name"));
			if (n && !strcmp(n, name))
				id = (int)json_integer_value(json_object_get(p, "id"));
		}
		json_decref(j);
		free(out);
		if (id >= 0)
			return id;
		usleep(20000);
	} while (tu_now_ms() < end);
	fail_msg("peer '%s' never showed up on %s", name, sock);
	return -1;
}

char *ct_wait_file(const char *path, const char *needle)
{
	int64_t end = tu_now_ms() + CT_TIMEOUT;

	for (;;) {
		char *s = tu_read_file(path);

		if (s && strstr(s, needle))
			return s;
		if (tu_now_ms() > end) {
			fprintf(stderr, "%s: no '%s' in:\n%s\n", path, needle, s ? s : "(none)");
			free(s);
			fail();
		}
		free(s);
		usleep(10000);
	}
}
