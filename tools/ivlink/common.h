/* SPDX-License-Identifier: MIT */
/*
 * The ivlink CLI: shared declarations.  Each subcommand lives in its own
 * cmd_*.c with a parse step (argv -> args struct, no side effects, callable
 * from a fuzz harness) separate from its run step.
 */
#ifndef IVLINK_CLI_COMMON_H
#define IVLINK_CLI_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <ivlink/ivlink.h>

#include "tools/common/util.h"

/* Exit codes (STYLE.md rule 7). */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Returned by parse functions when --help was asked for. */
#define CLI_HELP 1
/* Returned by cli_parse_global() for --version. */
#define CLI_VERSION 3

#define CLI_DEFAULT_SOCKET "/tmp/ivshmem_socket"
#define CLI_PEER_NAME "ivlink-cli"

/* Options valid before the command and after it. */
struct cli_global {
	const char *socket; /* -S; default from $IVLINK_SOCKET */
	const char *shm;    /* --shm NAME: map an shm object, no server */
	const char *file;   /* --file PATH: map a file, no server */
	const char *plain;  /* --plain PATH[:SIZE]: serverless mode (docs/plain.md) */
	const char *device; /* --device auto|BDF: the ivshmem PCI device (in a
			     * guest); default from $IVLINK_DEVICE; the last
			     * of -S and --device wins */
	bool json;
	int verbose;
	const char *cmd; /* the running subcommand, for messages */
};

/* ---- option parsing ------------------------------------------------------ */

enum opt_kind { OPT_FLAG, OPT_ARG };

struct opt {
	const char *name; /* long name without "--" */
	char short_name;  /* 0: none */
	enum opt_kind kind;
	int id; /* > 0 */
};

/* Ids of the common options, accepted by every command. */
enum {
	OPT_C_HELP = 1000,
	OPT_C_JSON,
	OPT_C_SOCKET,
	OPT_C_SHM,
	OPT_C_FILE,
	OPT_C_DEVICE,
	OPT_C_VERBOSE,
	OPT_C_VERSION, /* only before the command */
	OPT_C_PLAIN,
};

struct optparse {
	int argc;
	char **argv;
	int i;		  /* next argv index */
	bool only_args;	  /* after "--" */
	const char *what; /* "ivlink" or the command, for messages */
};

void optparse_init(struct optparse *p, int argc, char **argv, const char *what);

/*
 * Next element.  Returns the option's id (with *val set for OPT_ARG),
 * 0 for a positional argument (*val), -1 at the end, or -2 after printing a
 * usage error.  @opts and @common are tables ending with a zero entry;
 * either may be NULL.
 */
int opt_next(struct optparse *p, const struct opt *opts, const struct opt *common,
	     const char **val);

extern const struct opt cli_common_opts[];

/* Apply a common option to @g.  Returns 0, CLI_HELP, or -2 (usage). */
int cli_common_apply(struct cli_global *g, int id, const char *val);

/* "ivlink: CMD: message" usage error plus a hint; returns -2. */
int cli_usage_error(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- numbers: strict (decimal or 0x hex, no sign, no junk) --------------- */

/* Returns 0, -EINVAL (not a number) or -ERANGE (outside [min, max]). */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Seconds with up to 3 decimals ("2", "0.25") into milliseconds. */
int parse_seconds_ms(const char *s, uint64_t max_ms, uint64_t *out);
/* Parse or print a usage error naming @what; returns 0 or -2. */
int parse_num_arg(const char *cmd, const char *what, const char *s, uint64_t min, uint64_t max,
		  uint64_t *out);

/* Hex bytes "deadbeef", "de:ad:be:ef" or "de ad be ef" into a malloc'd
 * buffer.  Returns 0 or -EINVAL. */
int parse_hex_bytes(const char *s, uint8_t **out, size_t *len);

/* ---- output ---------------------------------------------------------------- */

/* "ivlink: CMD: message" on stderr. */
void cli_err(const struct cli_global *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Print @j (reference stolen) on stdout: indented, or compact for one-line
 * streams.  Returns 0 or EXIT_FAIL. */
int json_print(json_t *j, bool compact);

/* Copy an untrusted NUL-padded name into @dst (len + 1 bytes), printable
 * ASCII only. */
void cli_sanitize(char *dst, const char *src, size_t len);

const char *peer_state_name(uint32_t state);

/* ---- the target: a link to a server, or a mapped region ------------------ */

struct target {
	struct ivl_link *link;	   /* connected mode */
	struct ivl_region *region; /* --shm / --file mode */
	uint8_t *base;
	uint64_t size;
	bool has_header;	   /* a usable ivlink header */
	struct ivl_shm_header hdr; /* validated copy when has_header */
	const char *header_note;   /* why there is none, or its state */
	uint64_t app_off, app_size;
	char desc[4200];
};

/* Split --plain's PATH[:SIZE] (SIZE as tool_parse_size(); 0 when absent)
 * into @path.  Returns 0 or -EINVAL / -ENAMETOOLONG / -ERANGE. */
int cli_plain_split(const char *spec, char *path, size_t len, uint64_t *size);
/* At most one of --shm, --file and --plain; else a usage error (-2). */
int cli_check_mapped(const struct cli_global *g);

/* Connect to the server as a host peer named @name. */
int cli_connect(const struct cli_global *g, const char *name, struct ivl_link **out);

/* Open what the global options designate: --shm, --file, or a connection.
 * Prints the error; returns 0 or EXIT_FAIL. */
int target_open(const struct cli_global *g, struct target *t);
void target_close(struct target *t);

/* A snapshot of one peer-table entry (untrusted data, name sanitized). */
struct peer_view {
	uint32_t state, generation, vectors, pid, uid;
	uint64_t pending;
	char name[IVL_NAME_LEN + 1];
};
/* false if there is no header or @id is outside its table. */
bool target_peer(const struct target *t, uint32_t id, struct peer_view *v);

/* The name of @id as the link knows it, else from the peer table; "" if
 * none.  @out has IVL_NAME_LEN + 1 bytes. */
void link_peer_name(struct ivl_link *l, uint16_t id, char *out);

/* Install the library's log callback according to -v. */
void cli_log_setup(const struct cli_global *g);

/* ---- commands ------------------------------------------------------------ */

struct command {
	const char *name;
	const char *summary;
	const char *usage; /* full --help text */
	int (*main)(struct cli_global *g, int argc, char **argv);
	/* Parse only: 0, CLI_HELP or -2; no side effects but messages. */
	int (*parse)(struct cli_global *g, int argc, char **argv);
};

const struct command *find_command(const char *name);
int print_command_help(const struct command *c);
void print_main_help(void);

/* Parse a whole command line (argv[0] is the program) without running it:
 * the entry point of an argv fuzz harness.  Returns the exit status a usage
 * error would give (2) or 0. */
int cli_parse_only(int argc, char **argv);

#define DECLARE_CMD(x)                                                                             \
	extern const char x##_usage[];                                                             \
	int x##_main(struct cli_global *g, int argc, char **argv)
DECLARE_CMD(peers);
DECLARE_CMD(info);
DECLARE_CMD(ring);
DECLARE_CMD(listen);
DECLARE_CMD(dump);
DECLARE_CMD(peek);
DECLARE_CMD(poke);
DECLARE_CMD(demo);
DECLARE_CMD(bench);
int bench_parse(struct cli_global *g, int argc, char **argv);

/* Parse layers (no side effects beyond *g and *args). */
struct ring_args {
	bool all_peers, all_vectors;
	uint16_t peer, vector;
	uint64_t count;
};
int ring_parse(struct cli_global *g, int argc, char **argv, struct ring_args *a);

enum { LISTEN_JOIN = 1, LISTEN_LEAVE = 2, LISTEN_DOORBELL = 4, LISTEN_DOWN = 8, LISTEN_SELF = 16 };
struct listen_args {
	uint64_t count;	     /* 0: unlimited */
	uint64_t timeout_ms; /* 0: none */
	unsigned types;	     /* LISTEN_* mask */
	const char *name;
};
int listen_parse(struct cli_global *g, int argc, char **argv, struct listen_args *a);

struct mem_args {
	bool absolute, force;
	uint64_t offset;
	bool have_length;
	uint64_t length;
	unsigned width; /* peek/poke: 0 (bytes), 1, 2, 4 or 8 */
	uint64_t count; /* peek: values to read */
	uint64_t ival;	/* poke: the integer */
	uint8_t *data;	/* poke --bytes / --string: malloc'd */
	size_t data_len;
};
int dump_parse(struct cli_global *g, int argc, char **argv, struct mem_args *a);
int peek_parse(struct cli_global *g, int argc, char **argv, struct mem_args *a);
int poke_parse(struct cli_global *g, int argc, char **argv, struct mem_args *a);
void mem_args_release(struct mem_args *a);

/* Simple commands with only common options. */
int simple_parse(struct cli_global *g, int argc, char **argv);

int cli_parse_global(struct cli_global *g, int argc, char **argv, int *cmd_index);

#endif
