/* SPDX-License-Identifier: MIT */
/* The ivlink CLI: option parsing, strict numbers, output helpers. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

const struct opt cli_common_opts[] = {
    {"help", 'h', OPT_FLAG, OPT_C_HELP},
    {"json", 0, OPT_FLAG, OPT_C_JSON},
    {"socket", 'S', OPT_ARG, OPT_C_SOCKET},
    {"shm", 0, OPT_ARG, OPT_C_SHM},
    {"file", 0, OPT_ARG, OPT_C_FILE},
    {"plain", 0, OPT_ARG, OPT_C_PLAIN},
    {"device", 0, OPT_ARG, OPT_C_DEVICE},
    {"verbose", 'v', OPT_FLAG, OPT_C_VERBOSE},
    {0},
};

void optparse_init(struct optparse *p, int argc, char **argv, const char *what)
{
	*p = (struct optparse){.argc = argc, .argv = argv, .i = 0, .what = what};
}

static const struct opt *find_long(const struct opt *t, const char *name, size_t len)
{
	for (; t && t->id; t++)
		if (strlen(t->name) == len && !strncmp(t->name, name, len))
			return t;
	return NULL;
}

static const struct opt *find_short(const struct opt *t, char c)
{
	for (; t && t->id; t++)
		if (t->short_name && t->short_name == c)
			return t;
	return NULL;
}

int cli_usage_error(const char *what, const char *fmt, ...)
{
	va_list ap;

	if (strcmp(what, "ivlink"))
		fprintf(stderr, "ivlink: %s: ", what);
	else
		fprintf(stderr, "ivlink: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (!strcmp(what, "ivlink"))
		fprintf(stderr, "\nTry 'ivlink --help'.\n");
	else
		fprintf(stderr, "\nTry 'ivlink %s --help'.\n", what);
	return -2;
}

int opt_next(struct optparse *p, const struct opt *opts, const struct opt *common, const char **val)
{
	const struct opt *o;
	const char *a, *eq;

	*val = NULL;
	if (p->i >= p->argc)
		return -1;
	a = p->argv[p->i++];
	if (!a)
		return -1;
	if (p->only_args || a[0] != '-' || a[1] == '\0') {
		*val = a;
		return 0;
	}
	if (!strcmp(a, "--")) {
		p->only_args = true;
		return opt_next(p, opts, common, val);
	}
	if (a[1] == '-') {
		size_t len;

		eq = strchr(a + 2, '=');
		len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
		o = find_long(opts, a + 2, len);
		if (!o)
			o = find_long(common, a + 2, len);
		if (!o)
			return cli_usage_error(p->what, "unknown option '%s'", a);
		if (o->kind == OPT_FLAG) {
			if (eq)
				return cli_usage_error(p->what, "option '--%s' takes no value",
						       o->name);
			return o->id;
		}
		if (eq) {
			*val = eq + 1;
			return o->id;
		}
	} else {
		/* Short options stand alone ("-v", "-S path", "-Spath"): the
		 * CLI has too few of them for clustering to be worth it. */
		o = find_short(opts, a[1]);
		if (!o)
			o = find_short(common, a[1]);
		if (!o)
			return cli_usage_error(p->what, "unknown option '%s'", a);
		if (o->kind == OPT_FLAG) {
			if (a[2])
				return cli_usage_error(p->what, "unknown option '%s'", a);
			return o->id;
		}
		if (a[2]) {
			*val = a + 2;
			return o->id;
		}
	}
	if (p->i >= p->argc || !p->argv[p->i])
		return cli_usage_error(p->what, "option '--%s' needs a value", o->name);
	*val = p->argv[p->i++];
	return o->id;
}

int cli_common_apply(struct cli_global *g, int id, const char *val)
{
	switch (id) {
	case OPT_C_HELP:
		return CLI_HELP;
	case OPT_C_JSON:
		g->json = true;
		return 0;
	case OPT_C_SOCKET:
		if (!*val)
			return cli_usage_error(g->cmd, "empty socket path");
		g->socket = val;
		/* The last of -S and --device wins; -S also beats $IVLINK_DEVICE. */
		g->device = NULL;
		return 0;
	case OPT_C_SHM:
		if (!*val)
			return cli_usage_error(g->cmd, "empty shm name");
		g->shm = val;
		return 0;
	case OPT_C_FILE:
		if (!*val)
			return cli_usage_error(g->cmd, "empty file path");
		g->file = val;
		return 0;
	case OPT_C_PLAIN: {
		char path[4096];
		uint64_t size;

		if (cli_plain_split(val, path, sizeof(path), &size) < 0)
			return cli_usage_error(g->cmd, "invalid --plain '%s' (PATH[:SIZE])", val);
		g->plain = val;
		return 0;
	}
	case OPT_C_DEVICE:
		if (!*val)
			return cli_usage_error(g->cmd, "empty device (auto or a PCI address)");
		g->device = val;
		return 0;
	case OPT_C_VERBOSE:
		g->verbose++;
		return 0;
	default:
		return cli_usage_error(g->cmd, "option not valid here");
	}
}

int simple_parse(struct cli_global *g, int argc, char **argv)
{
	struct optparse p;
	const char *val;
	int id, r;

	optparse_init(&p, argc, argv, g->cmd);
	while ((id = opt_next(&p, NULL, cli_common_opts, &val)) != -1) {
		if (id == -2)
			return -2;
		if (id == 0)
			return cli_usage_error(g->cmd, "unexpected argument '%s'", val);
		r = cli_common_apply(g, id, val);
		if (r)
			return r;
	}
	return cli_check_mapped(g);
}

/* ---- numbers ------------------------------------------------------------- */

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	unsigned base = 10;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
		if (!*p)
			return -EINVAL;
	}
	for (; *p; p++) {
		unsigned d;

		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = (unsigned)(*p - 'A' + 10);
		else
			return -EINVAL;
		if (v > (UINT64_MAX - d) / base)
			return -ERANGE;
		v = v * base + d;
	}
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_seconds_ms(const char *s, uint64_t max_ms, uint64_t *out)
{
	uint64_t whole = 0, frac = 0;
	unsigned ndig = 0, nfrac = 0;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++, ndig++) {
		if (whole > UINT64_MAX / 10 / 1000)
			return -ERANGE;
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, nfrac++) {
			if (nfrac >= 3)
				return -EINVAL; /* finer than a millisecond */
			frac = frac * 10 + (uint64_t)(*p - '0');
		}
		if (!nfrac)
			return -EINVAL;
	}
	if (*p || !ndig)
		return -EINVAL;
	while (nfrac++ < 3)
		frac *= 10;
	whole = whole * 1000 + frac;
	if (whole > max_ms)
		return -ERANGE;
	*out = whole;
	return 0;
}

int parse_num_arg(const char *cmd, const char *what, const char *s, uint64_t min, uint64_t max,
		  uint64_t *out)
{
	int r = parse_u64(s, min, max, out);

	if (r == -ERANGE)
		return cli_usage_error(cmd, "%s '%s' out of range (%llu..%llu)", what, s,
				       (unsigned long long)min, (unsigned long long)max);
	if (r < 0)
		return cli_usage_error(cmd, "invalid %s '%s' (expected an integer)", what, s);
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int parse_hex_bytes(const char *s, uint8_t **out, size_t *len)
{
	size_t n = 0, cap = strlen(s) / 2 + 1;
	uint8_t *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	while (*s) {
		int hi, lo;

		if (*s == ':' || *s == ' ' || *s == '-') {
			/* A separator sits between two bytes, never at an end. */
			if (!n || !s[1] || s[1] == ':' || s[1] == ' ' || s[1] == '-')
				goto bad;
			s++;
			continue;
		}
		hi = hexval(s[0]);
		lo = hi < 0 ? -1 : hexval(s[1]);
		if (lo < 0)
			goto bad;
		buf[n++] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	if (!n)
		goto bad;
	*out = buf;
	*len = n;
	return 0;
bad:
	free(buf);
	return -EINVAL;
}

/* ---- output -------------------------------------------------------------- */

void cli_err(const struct cli_global *g, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "ivlink: %s: ", g && g->cmd ? g->cmd : "error");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int json_print(json_t *j, bool compact)
{
	int r;

	if (!j)
		return EXIT_FAIL;
	r = json_dumpf(j, stdout, compact ? JSON_COMPACT : JSON_INDENT(2));
	json_decref(j);
	if (r < 0 || fputc('\n', stdout) == EOF || fflush(stdout) == EOF)
		return EXIT_FAIL;
	return 0;
}

void cli_sanitize(char *dst, const char *src, size_t len)
{
	size_t i;

	for (i = 0; i < len && src[i]; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = '\0';
}

const char *peer_state_name(uint32_t state)
{
	switch (state) {
	case IVL_PEER_ABSENT:
		return "absent";
	case IVL_PEER_JOINED:
		return "joined";
	case IVL_PEER_READY:
		return "ready";
	case IVL_PEER_LEAVING:
		return "leaving";
	default:
		return "invalid";
	}
}
