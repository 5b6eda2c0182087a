/* SPDX-License-Identifier: MIT */
/* ivlink dump / peek / poke: bounds-checked access to the shared region. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define ADDRESSING                                                                                 \
	"OFFSET is relative to the application area (after the ivlink header, or\n"                \
	"the region start for a raw region) unless --absolute is given.\n"

const char dump_usage[] =
    "Usage: ivlink dump [--offset O] [--length L] [--absolute]\n"
    "\n"
    "Print part of the shared region in 'hexdump -C' style; by default the\n"
    "first 256 bytes of the application area.\n" ADDRESSING "\n"
    "Options:\n"
    "  -o, --offset O     start at O (decimal or 0x hex)\n"
    "  -l, --length L     L bytes (default 256, clipped to the area)\n"
    "  -a, --absolute     offsets from the region start (alias --raw-offset)\n";

const char peek_usage[] = "Usage: ivlink peek [--length L | --u8|--u16|--u32|--u64 [--count N]]\n"
			  "                   [--absolute] OFFSET\n"
			  "\n"
			  "Read L bytes (default 16) at OFFSET and print them in hex, or N\n"
			  "little-endian integers of the given width.\n" ADDRESSING "\n"
			  "Options:\n"
			  "  -l, --length L              bytes to read\n"
			  "      --u8/--u16/--u32/--u64  read integers of this width\n"
			  "  -n, --count N               integers to read (default 1)\n"
			  "  -a, --absolute              offsets from the region start\n";

const char poke_usage[] =
    "Usage: ivlink poke [--u8|--u16|--u32|--u64] [--absolute [--force]] OFFSET VALUE\n"
    "       ivlink poke [--absolute [--force]] OFFSET --bytes HEX\n"
    "       ivlink poke [--absolute [--force]] OFFSET --string S [--nul]\n"
    "\n"
    "Write an integer (little-endian, default --u32), raw bytes or a string at\n"
    "OFFSET.\n" ADDRESSING "Writes into the ivlink header are refused unless --absolute --force.\n"
    "\n"
    "Options:\n"
    "      --u8/--u16/--u32/--u64  width of VALUE\n"
    "      --bytes HEX             bytes such as deadbeef or de:ad:be:ef\n"
    "      --string S              the bytes of S\n"
    "      --nul                   with --string: also write the final NUL\n"
    "  -a, --absolute              offsets from the region start\n"
    "      --force                 allow writing into the ivlink header\n";

enum {
	OPT_OFFSET = 1,
	OPT_LENGTH,
	OPT_ABSOLUTE,
	OPT_FORCE,
	OPT_U8,
	OPT_U16,
	OPT_U32,
	OPT_U64,
	OPT_COUNT,
	OPT_BYTES,
	OPT_STRING,
	OPT_NUL,
};

static const struct opt dump_opts[] = {
    {"offset", 'o', OPT_ARG, OPT_OFFSET},
    {"length", 'l', OPT_ARG, OPT_LENGTH},
    {"absolute", 'a', OPT_FLAG, OPT_ABSOLUTE},
    {"raw-offset", 0, OPT_FLAG, OPT_ABSOLUTE},
    {0},
};

static const struct opt peek_opts[] = {
    {"length", 'l', OPT_ARG, OPT_LENGTH},
    {"absolute", 'a', OPT_FLAG, OPT_ABSOLUTE},
    {"raw-offset", 0, OPT_FLAG, OPT_ABSOLUTE},
    {"u8", 0, OPT_FLAG, OPT_U8},
    {"u16", 0, OPT_FLAG, OPT_U16},
    {"u32", 0, OPT_FLAG, OPT_U32},
    {"u64", 0, OPT_FLAG, OPT_U64},
    {"count", 'n', OPT_ARG, OPT_COUNT},
    {0},
};

static const struct opt poke_opts[] = {
    {"absolute", 'a', OPT_FLAG, OPT_ABSOLUTE},
    {"raw-offset", 0, OPT_FLAG, OPT_ABSOLUTE},
    {"force", 0, OPT_FLAG, OPT_FORCE},
    {"u8", 0, OPT_FLAG, OPT_U8},
    {"u16", 0, OPT_FLAG, OPT_U16},
    {"u32", 0, OPT_FLAG, OPT_U32},
    {"u64", 0, OPT_FLAG, OPT_U64},
    {"bytes", 0, OPT_ARG, OPT_BYTES},
    {"string", 0, OPT_ARG, OPT_STRING},
    {"nul", 0, OPT_FLAG, OPT_NUL},
    {0},
};

/* Largest region the library maps (2^40): bounds every length. */
#define MAX_LEN (1ull << 40)

void mem_args_release(struct mem_args *a)
{
	free(a->data);
	a->data = NULL;
	a->data_len = 0;
}

static int mem_parse(struct cli_global *g, int argc, char **argv, struct mem_args *a,
		     const struct opt *opts, const char **pos, int maxpos, int *npos)
{
	struct optparse p;
	const char *val, *hex = NULL, *str = NULL;
	bool nul = false, have_count = false;
	int id, r;

	memset(a, 0, sizeof(*a));
	a->count = 1;
	*npos = 0;
	optparse_init(&p, argc, argv, g->cmd);
	while ((id = opt_next(&p, opts, cli_common_opts, &val)) != -1) {
		switch (id) {
		case -2:
			return -2;
		case 0:
			if (*npos == maxpos)
				return cli_usage_error(g->cmd, "unexpected argument '%s'", val);
			pos[(*npos)++] = val;
			break;
		case OPT_OFFSET:
			if (parse_num_arg(g->cmd, "offset", val, 0, MAX_LEN, &a->offset))
				return -2;
			break;
		case OPT_LENGTH:
			if (parse_num_arg(g->cmd, "length", val, 1, MAX_LEN, &a->length))
				return -2;
			a->have_length = true;
			break;
		case OPT_COUNT:
			if (parse_num_arg(g->cmd, "count", val, 1, 1u << 20, &a->count))
				return -2;
			have_count = true;
			break;
		case OPT_ABSOLUTE:
			a->absolute = true;
			break;
		case OPT_FORCE:
			a->force = true;
			break;
		case OPT_U8:
		case OPT_U16:
		case OPT_U32:
		case OPT_U64:
			if (a->width)
				return cli_usage_error(g->cmd, "more than one integer width given");
			a->width = 1u << (id - OPT_U8);
			break;
		case OPT_BYTES:
			hex = val;
			break;
		case OPT_STRING:
			str = val;
			break;
		case OPT_NUL:
			nul = true;
			break;
		default:
			if ((r = cli_common_apply(g, id, val)))
				return r;
		}
	}
	if (cli_check_mapped(g))
		return -2;
	if (a->force && !a->absolute)
		return cli_usage_error(g->cmd, "--force only makes sense with --absolute");
	if (have_count && !a->width)
		return cli_usage_error(g->cmd, "--count needs --u8/--u16/--u32/--u64");
	if (a->width && a->have_length && opts == peek_opts)
		return cli_usage_error(g->cmd, "--length and an integer width exclude each other");
	if (hex && str)
		return cli_usage_error(g->cmd, "--bytes and --string exclude each other");
	if (nul && !str)
		return cli_usage_error(g->cmd, "--nul needs --string");
	if ((hex || str) && a->width)
		return cli_usage_error(g->cmd, "an integer width does not apply to --%s",
				       hex ? "bytes" : "string");
	if (hex && parse_hex_bytes(hex, &a->data, &a->data_len) < 0)
		return cli_usage_error(g->cmd, "invalid hex bytes '%s'", hex);
	if (str) {
		a->data_len = strlen(str) + (nul ? 1 : 0);
		if (!a->data_len)
			return cli_usage_error(g->cmd, "empty string");
		a->data = malloc(a->data_len);
		if (!a->data)
			return cli_usage_error(g->cmd, "out of memory");
		memcpy(a->data, str, a->data_len);
	}
	return 0;
}

int dump_parse(struct cli_global *g, int argc, char **argv, struct mem_args *a)
{
	const char *pos[1];
	int n;

	return mem_parse(g, argc, argv, a, dump_opts, pos, 0, &n);
}

int peek_parse(struct cli_global *g, int argc, char **argv, struct mem_args *a)
{
	const char *pos[1];
	int n, r;

	r = mem_parse(g, argc, argv, a, peek_opts, pos, 1, &n);
	if (r)
		return r;
	if (n < 1)
		return cli_usage_error(g->cmd, "expected OFFSET");
	return parse_num_arg(g->cmd, "offset", pos[0], 0, MAX_LEN, &a->offset);
}

int poke_parse(struct cli_global *g, int argc, char **argv, struct mem_args *a)
{
	const char *pos[2];
	int n, r;

	r = mem_parse(g, argc, argv, a, poke_opts, pos, 2, &n);
	if (r)
		goto fail;
	r = -2;
	if (n < 1) {
		cli_usage_error(g->cmd, "expected OFFSET");
		goto fail;
	}
	if (parse_num_arg(g->cmd, "offset", pos[0], 0, MAX_LEN, &a->offset))
		goto fail;
	if (a->data && n == 2) {
		cli_usage_error(g->cmd, "VALUE and --bytes/--string exclude each other");
		goto fail;
	}
	if (!a->data) {
		if (n < 2) {
			cli_usage_error(g->cmd, "expected VALUE, --bytes or --string");
			goto fail;
		}
		if (!a->width)
			a->width = 4;
		if (parse_num_arg(g->cmd, "value", pos[1], 0,
				  a->width == 8 ? UINT64_MAX : (1ull << (8 * a->width)) - 1,
				  &a->ival))
			goto fail;
	}
	return 0;
fail:
	mem_args_release(a);
	return r;
}

/*
 * Map (offset, len) in the user's coordinates to a region offset, checking
 * bounds without overflow.  Prints why on failure.
 */
static int locate(const struct cli_global *g, const struct target *t, const struct mem_args *a,
		  uint64_t off, uint64_t len, uint64_t *abs)
{
	uint64_t start = a->absolute ? 0 : t->app_off;
	uint64_t limit = a->absolute ? t->size : t->app_size;

	if (off > limit || len > limit - off) {
		cli_err(g,
			"offset 0x%" PRIx64 " + length %" PRIu64 " is outside the %s (%" PRIu64
			" bytes)",
			off, len, a->absolute ? "region" : "application area", limit);
		return -ERANGE;
	}
	*abs = start + off;
	return 0;
}

static void hexdump_line(uint64_t addr, const uint8_t *b, size_t n)
{
	printf("%08" PRIx64 " ", addr);
	for (size_t i = 0; i < 16; i++) {
		if (i == 8)
			putchar(' ');
		if (i < n)
			printf(" %02x", b[i]);
		else
			printf("   ");
	}
	printf("  |");
	for (size_t i = 0; i < n; i++)
		putchar(b[i] >= 0x20 && b[i] < 0x7f ? b[i] : '.');
	printf("|\n");
}

static int do_dump(const struct cli_global *g, struct target *t, const struct mem_args *a)
{
	uint64_t abs, len, limit = a->absolute ? t->size : t->app_size;
	uint8_t prev[16];
	bool have_prev = false, starred = false;

	if (a->have_length) {
		len = a->length;
	} else {
		/* Default: 256 bytes, or what is left of the area. */
		len = a->offset < limit ? limit - a->offset : 0;
		if (len > 256)
			len = 256;
		if (!len)
			len = 1; /* let locate() report the bad offset */
	}
	if (locate(g, t, a, a->offset, len, &abs))
		return EXIT_FAIL;
	if (g->json) {
		char *hex = malloc(len * 2 + 1);
		json_t *o;

		if (!hex) {
			cli_err(g, "out of memory");
			return EXIT_FAIL;
		}
		for (uint64_t i = 0; i < len; i++)
			snprintf(hex + 2 * i, 3, "%02x", t->base[abs + i]);
		hex[len * 2] = '\0';
		o = json_pack("{s:I, s:I, s:b, s:s}", "offset", (json_int_t)a->offset, "length",
			      (json_int_t)len, "absolute", a->absolute, "hex", hex);
		free(hex);
		return json_print(o, false);
	}
	for (uint64_t i = 0; i < len; i += 16) {
		size_t n = len - i < 16 ? (size_t)(len - i) : 16;
		uint8_t line[16];

		/* A snapshot per line: peers may write while we print. */
		memcpy(line, t->base + abs + i, n);
		if (have_prev && n == 16 && !memcmp(line, prev, 16) && i + 16 < len) {
			if (!starred)
				printf("*\n");
			starred = true;
			continue;
		}
		starred = false;
		hexdump_line(a->offset + i, line, n);
		memcpy(prev, line, n);
		have_prev = n == 16;
	}
	printf("%08" PRIx64 "\n", a->offset + len);
	return fflush(stdout) == EOF ? EXIT_FAIL : EXIT_OK;
}

/* Aligned integers are read and written in one access, so a concurrent
 * peer never sees a torn value; unaligned ones fall back to bytes. */
static uint64_t load_le(const uint8_t *p, unsigned w)
{
	uint64_t v = 0;

	if (((uintptr_t)p & (w - 1)) == 0) {
		switch (w) {
		case 2:
			return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
		case 4:
			return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
		case 8:
			return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE);
		}
	}
	for (unsigned i = 0; i < w; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void store_le(uint8_t *p, unsigned w, uint64_t v)
{
	if (((uintptr_t)p & (w - 1)) == 0) {
		switch (w) {
		case 2:
			__atomic_store_n((uint16_t *)p, (uint16_t)v, __ATOMIC_RELEASE);
			return;
		case 4:
			__atomic_store_n((uint32_t *)p, (uint32_t)v, __ATOMIC_RELEASE);
			return;
		case 8:
			__atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE);
			return;
		}
	}
	for (unsigned i = 0; i < w; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int do_peek(const struct cli_global *g, struct target *t, const struct mem_args *a)
{
	uint64_t abs, len;

	len = a->width ? a->count * a->width : (a->have_length ? a->length : 16);
	if (locate(g, t, a, a->offset, len, &abs))
		return EXIT_FAIL;
	if (a->width) {
		json_t *vals = g->json ? json_array() : NULL;

		for (uint64_t i = 0; i < a->count; i++) {
			uint64_t v = load_le(t->base + abs + i * a->width, a->width);

			if (vals)
				json_array_append_new(vals, json_integer((json_int_t)v));
			else
				printf("0x%0*" PRIx64 " %" PRIu64 "\n", (int)a->width * 2, v, v);
		}
		if (vals)
			return json_print(json_pack("{s:I, s:i, s:o}", "offset",
						    (json_int_t)a->offset, "width",
						    (int)a->width * 8, "values", vals),
					  false);
		return fflush(stdout) == EOF ? EXIT_FAIL : EXIT_OK;
	}
	if (g->json) {
		char *hex = malloc(len * 2 + 1);
		json_t *o;

		if (!hex)
			return EXIT_FAIL;
		for (uint64_t i = 0; i < len; i++)
			snprintf(hex + 2 * i, 3, "%02x", t->base[abs + i]);
		hex[len * 2] = '\0';
		o = json_pack("{s:I, s:s}", "offset", (json_int_t)a->offset, "hex", hex);
		free(hex);
		return json_print(o, false);
	}
	for (uint64_t i = 0; i < len; i++)
		printf("%02x%c", t->base[abs + i], (i + 1 == len || i % 16 == 15) ? '\n' : ' ');
	return fflush(stdout) == EOF ? EXIT_FAIL : EXIT_OK;
}

static int do_poke(const struct cli_global *g, struct target *t, const struct mem_args *a)
{
	uint64_t abs, len = a->data ? a->data_len : a->width;

	if (locate(g, t, a, a->offset, len, &abs))
		return EXIT_FAIL;
	if (t->has_header && abs < t->hdr.header_size && !a->force) {
		cli_err(g,
			"refusing to write into the ivlink header (0..0x%x); "
			"use --absolute --force",
			t->hdr.header_size);
		return EXIT_FAIL;
	}
	if (a->data)
		memcpy(t->base + abs, a->data, a->data_len);
	else
		store_le(t->base + abs, a->width, a->ival);
	if (g->json)
		return json_print(json_pack("{s:I, s:I, s:b}", "offset", (json_int_t)a->offset,
					    "length", (json_int_t)len, "absolute", a->absolute),
				  false);
	printf("wrote %" PRIu64 " byte%s at %s0x%" PRIx64 "\n", len, len == 1 ? "" : "s",
	       a->absolute ? "region offset " : "app offset ", a->offset);
	return fflush(stdout) == EOF ? EXIT_FAIL : EXIT_OK;
}

typedef int (*mem_parse_fn)(struct cli_global *, int, char **, struct mem_args *);
typedef int (*mem_run_fn)(const struct cli_global *, struct target *, const struct mem_args *);

static int mem_main(struct cli_global *g, int argc, char **argv, mem_parse_fn parse, mem_run_fn run)
{
	struct mem_args a;
	struct target t;
	int r;

	r = parse(g, argc, argv, &a);
	if (r == CLI_HELP) {
		mem_args_release(&a);
		return print_command_help(find_command(g->cmd));
	}
	if (r)
		return EXIT_USAGE;
	cli_log_setup(g);
	if (target_open(g, &t)) {
		mem_args_release(&a);
		return EXIT_FAIL;
	}
	r = run(g, &t, &a);
	target_close(&t);
	mem_args_release(&a);
	return r;
}

int dump_main(struct cli_global *g, int argc, char **argv)
{
	return mem_main(g, argc, argv, dump_parse, do_dump);
}

int peek_main(struct cli_global *g, int argc, char **argv)
{
	return mem_main(g, argc, argv, peek_parse, do_peek);
}

int poke_main(struct cli_global *g, int argc, char **argv)
{
	return mem_main(g, argc, argv, poke_parse, do_poke);
}
