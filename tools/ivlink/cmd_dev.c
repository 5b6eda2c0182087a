/* SPDX-License-Identifier: MIT */
/*
 * ivlink dev: serve managed virtio devices on a link (a device host), and
 * create, list and destroy them through the transport virtqueue; the
 * parsing of ivlink console, which runs in cmd_console.c
 * (docs/transport.md).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dev.h"

int dev_main(struct cli_global *g, int argc, char **argv);
int dev_check(struct cli_global *g, int argc, char **argv);
int console_main(struct cli_global *g, int argc, char **argv);
int console_check(struct cli_global *g, int argc, char **argv);

#define AREA_OPTS                                                                                  \
	"      --offset N         the management area's offset in the application area\n"          \
	"                         (default 0; device host and drivers must agree)\n"               \
	"      --size N           its size (default: the rest of the application area)\n"          \
	"      --vector N         my doorbell vector (default 0)\n"                                \
	"      --timeout SECONDS  bound for each command (default 5)\n"

const char dev_usage[] =
    "Usage: ivlink dev serve [--console-dir DIR] [--console pty|unix|loop]\n"
    "                        [--sdm unix:PATH|tcp:HOST:PORT] [--no-rng]\n"
    "                        [--blk NAME=PATH[,ro]]... [--switch NAME]... [--tap IFNAME]...\n"
    "                        [AREA OPTIONS]\n"
    "       ivlink dev create console [--backend pty|unix|loop] [--window BYTES]\n"
    "                                 [--for PEER]\n"
    "       ivlink dev create sdm (--master [--max-slaves N] | --slave [--id N])\n"
    "                             [--for PEER]\n"
    "       ivlink dev create rng [--window BYTES] [--for PEER]\n"
    "       ivlink dev create blk (--name NAME | --file PATH) [--ro] [--window BYTES]\n"
    "                             [--for PEER]\n"
    "       ivlink dev create net (--switch NAME | --tap IFNAME) [--mtu N]\n"
    "                             [--window BYTES] [--for PEER]\n"
    "       ivlink dev list\n"
    "       ivlink dev destroy ID\n"
    "\n"
    "serve runs a device host on the link: the management device and its\n"
    "transport virtqueue in the management area, until SIGINT/SIGTERM.\n"
    "Consoles are bridged to a PTY, a UNIX socket DIR/console-ID.sock, or a\n"
    "loop; SDM devices are masters or slaves on the --sdm channel; entropy\n"
    "devices (rng) fill the driver's buffers from getrandom(2); block devices\n"
    "(blk) serve the images given with --blk, and only those: a blk device\n"
    "names its image by NAME (or by its PATH as given to serve); net devices\n"
    "are ports of a built-in L2 switch or attached to an existing TAP\n"
    "interface, each named with --switch / --tap at serve (a driver can only\n"
    "name one of those).\n"
    "create, list and destroy are commands on the transport virtqueue of the\n"
    "device host serving the area; create prints the new device's ID.\n"
    "\n"
    "Options:\n"
    "      --console-dir DIR  serve: allow UNIX-socket consoles, listening in DIR\n"
    "      --console KIND     serve: the backend of a console created without\n"
    "                         --backend (default loop)\n"
    "      --sdm ADDR         serve: the channel of SDM devices (none: refused)\n"
    "      --no-rng           serve: refuse entropy devices\n"
    "      --blk NAME=PATH[,ro]  serve: an image blk devices may use (a file or\n"
    "                         block device; ,ro: read-only); repeatable\n"
    "      --switch NAME      serve: offer switch NAME (1..15 bytes; repeatable);\n"
    "                         create net: join it\n"
    "      --tap IFNAME       serve: offer the existing TAP interface IFNAME\n"
    "                         (repeatable); create net: attach to it\n"
    "      --mtu N            create net: 68..65521 (default 1500)\n"
    "      --backend KIND     create console: pty, unix or loop (default: the\n"
    "                         host's)\n"
    "      --window BYTES     create: the device's window (default 64 KiB;\n"
    "                         net 4 MiB)\n"
    "      --for PEER         create: offer the device to the driver on PEER (a\n"
    "                         guest's virtio_ivlink registers it when it loads or\n"
    "                         rescans); default: this program drives it\n"
    "      --master, --slave  create sdm: the role\n"
    "      --max-slaves N     create sdm --master: 1..1024 (default 8)\n"
    "      --id N             create sdm --slave: the ID to ask for (default any)\n"
    "      --name NAME        create blk: the image the host serves as NAME\n"
    "      --file PATH        create blk: the image the host serves from PATH\n"
    "      --ro               create blk: read-only\n" AREA_OPTS;

const char console_usage[] =
    "Usage: ivlink console ID [AREA OPTIONS]\n"
    "\n"
    "Drive managed console ID: what is typed goes to the device, what the device\n"
    "sends is printed.  On a terminal the input is raw; Ctrl-] detaches.  When\n"
    "the input is not a terminal, the command ends after end of input once the\n"
    "device has taken everything (and answers arriving within 200 ms printed).\n"
    "\n"
    "Options:\n" AREA_OPTS;

enum { D_SERVE = 1, D_CREATE, D_LIST, D_DESTROY, D_CONSOLE };
#define DEV_BLK_MAX 16u

#define NET_NAMES_MAX 16

struct dev_args {
	int mode;
	uint64_t offset, size, vector, timeout_ms, window, max_slaves, id, for_peer, mtu;
	const char *switches[NET_NAMES_MAX], *taps[NET_NAMES_MAX];
	unsigned nswitches, ntaps;
	bool has_for;
	const char *console_dir, *sdm;
	bool no_rng, ro;
	/* serve --blk; create blk --name / --file (canonical) */
	struct ivl_transport_blk_image blk[DEV_BLK_MAX];
	char blk_path[DEV_BLK_MAX][PATH_MAX], blk_name[DEV_BLK_MAX][IVL_TRANSPORT_CREATE_ARG_MAX];
	char blk_arg[IVL_TRANSPORT_CREATE_ARG_MAX];
	unsigned nblk;
	unsigned console, backend; /* IVL_TRANSPORT_CONSOLE_* */
	uint32_t virtio_id;
	int role; /* -1 unset, IVL_TRANSPORT_SDM_* */
};

enum {
	O_OFF = 1,
	O_SIZE,
	O_VEC,
	O_TMO,
	O_CDIR,
	O_CON,
	O_SDM,
	O_BACK,
	O_WIN,
	O_MASTER,
	O_SLAVE,
	O_MAXS,
	O_ID,
	O_FOR,
	O_NORNG,
	O_BLK,
	O_NAME,
	O_FILE,
	O_RO,
	O_SWITCH,
	O_TAP,
	O_MTU
};

static const struct opt dev_opts[] = {
    {"offset", 0, OPT_ARG, O_OFF},
    {"size", 0, OPT_ARG, O_SIZE},
    {"vector", 0, OPT_ARG, O_VEC},
    {"timeout", 0, OPT_ARG, O_TMO},
    {"console-dir", 0, OPT_ARG, O_CDIR},
    {"console", 0, OPT_ARG, O_CON},
    {"sdm", 0, OPT_ARG, O_SDM},
    {"backend", 0, OPT_ARG, O_BACK},
    {"window", 0, OPT_ARG, O_WIN},
    {"master", 0, OPT_FLAG, O_MASTER},
    {"slave", 0, OPT_FLAG, O_SLAVE},
    {"max-slaves", 0, OPT_ARG, O_MAXS},
    {"id", 0, OPT_ARG, O_ID},
    {"for", 0, OPT_ARG, O_FOR},
    {"no-rng", 0, OPT_FLAG, O_NORNG},
    {"blk", 0, OPT_ARG, O_BLK},
    {"name", 0, OPT_ARG, O_NAME},
    {"file", 0, OPT_ARG, O_FILE},
    {"ro", 0, OPT_FLAG, O_RO},
    {"switch", 0, OPT_ARG, O_SWITCH},
    {"tap", 0, OPT_ARG, O_TAP},
    {"mtu", 0, OPT_ARG, O_MTU},
    {0},
};

/* A blk image's name: what a guest writes after "blk" in sysfs, so one
 * word of [A-Za-z0-9._-]. */
static bool blk_name_ok(const char *s, size_t n)
{
	if (n == 0 || n >= IVL_TRANSPORT_CREATE_ARG_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

/* serve --blk NAME=PATH[,ro]: the path made canonical (it must exist). */
static int parse_blk(const char *cmd, const char *val, struct dev_args *a)
{
	const char *eq = strchr(val, '=');
	if (!eq || !blk_name_ok(val, (size_t)(eq - val)))
		return cli_usage_error(cmd, "--blk needs NAME=PATH[,ro], NAME of 1-63 letters, "
					    "digits, '.', '_' or '-'");
	if (a->nblk == DEV_BLK_MAX)
		return cli_usage_error(cmd, "at most %u --blk images", DEV_BLK_MAX);
	char path[PATH_MAX];
	size_t n = strlen(eq + 1);
	bool ro = n > 3 && !strcmp(eq + 1 + n - 3, ",ro");
	if (ro)
		n -= 3;
	if (n == 0 || n >= sizeof(path))
		return cli_usage_error(cmd, "--blk %s: bad path", val);
	memcpy(path, eq + 1, n);
	path[n] = 0;
	unsigned k = a->nblk;
	if (!realpath(path, a->blk_path[k]))
		return cli_usage_error(cmd, "--blk %s: %s", val, strerror(errno));
	char *name = a->blk_name[k];
	memcpy(name, val, (size_t)(eq - val));
	name[eq - val] = 0;
	for (unsigned i = 0; i < k; i++)
		if (!strcmp(a->blk[i].name, name))
			return cli_usage_error(cmd, "--blk %s: the name is given twice", val);
	a->blk[k] = (struct ivl_transport_blk_image){
	    .name = name, .path = a->blk_path[k], .read_only = ro};
	a->nblk++;
	return 0;
}

static int backend_kind(const char *s)
{
	return !strcmp(s, "pty")    ? IVL_TRANSPORT_CONSOLE_PTY
	       : !strcmp(s, "unix") ? IVL_TRANSPORT_CONSOLE_UNIX
	       : !strcmp(s, "loop") ? IVL_TRANSPORT_CONSOLE_LOOP
				    : -1;
}

/* Which options each mode takes (bit per O_*). */
static const unsigned allowed[] = {
    [D_SERVE] = 1u << O_CDIR | 1u << O_CON | 1u << O_SDM | 1u << O_NORNG | 1u << O_BLK |
		1u << O_SWITCH | 1u << O_TAP,
    [D_CREATE] = 1u << O_BACK | 1u << O_WIN | 1u << O_MASTER | 1u << O_SLAVE | 1u << O_MAXS |
		 1u << O_ID | 1u << O_FOR | 1u << O_NAME | 1u << O_FILE | 1u << O_RO | 1u << O_SWITCH |
		 1u << O_TAP | 1u << O_MTU,
    [D_LIST] = 0,
    [D_DESTROY] = 0,
    [D_CONSOLE] = 0,
};

static int dev_parse(struct cli_global *g, int argc, char **argv, struct dev_args *a, bool console)
{
	const char *pos[3];
	unsigned npos = 0, seen = 0;
	struct optparse p;
	const char *val;
	int id, r, k;

	memset(a, 0, sizeof(*a));
	a->timeout_ms = 5000;
	a->role = -1;
	a->mode = console ? D_CONSOLE : 0;
	optparse_init(&p, argc, argv, g->cmd);
	while ((id = opt_next(&p, dev_opts, cli_common_opts, &val)) != -1) {
		if (id == -2)
			return -2;
		if (id > 0 && id < 32)
			seen |= 1u << id;
		switch (id) {
		case 0:
			if (npos == 3)
				return cli_usage_error(g->cmd, "unexpected argument '%s'", val);
			pos[npos++] = val;
			break;
		case O_OFF:
		case O_SIZE:
			if (parse_num_arg(g->cmd, id == O_OFF ? "offset" : "size", val, 0,
					  UINT64_MAX / 2, id == O_OFF ? &a->offset : &a->size))
				return -2;
			break;
		case O_VEC:
			if (parse_num_arg(g->cmd, "vector", val, 0, 63, &a->vector))
				return -2;
			break;
		case O_TMO:
			if (parse_seconds_ms(val, 3600000, &a->timeout_ms) || !a->timeout_ms)
				return cli_usage_error(g->cmd, "bad --timeout '%s'", val);
			break;
		case O_CDIR:
			a->console_dir = val;
			break;
		case O_NORNG:
			a->no_rng = true;
			break;
		case O_BLK:
			if ((r = parse_blk(g->cmd, val, a)))
				return r;
			break;
		case O_RO:
			a->ro = true;
			break;
		case O_NAME:
			if (!blk_name_ok(val, strlen(val)))
				return cli_usage_error(g->cmd, "bad --name '%s'", val);
			snprintf(a->blk_arg, sizeof(a->blk_arg), "%s", val);
			break;
		case O_FILE: {
			/* The host matches the canonical path it was given. */
			char path[PATH_MAX];
			if (!realpath(val, path))
				return cli_usage_error(g->cmd, "--file %s: %s", val, strerror(errno));
			if (strlen(path) >= sizeof(a->blk_arg))
				return cli_usage_error(g->cmd,
						       "--file %s: the path is longer than %u bytes "
						       "(use --name)",
						       path, IVL_TRANSPORT_CREATE_ARG_MAX - 1);
			memcpy(a->blk_arg, path, strlen(path) + 1);
			break;
		}
		case O_SWITCH:
		case O_TAP: {
			unsigned *n = id == O_SWITCH ? &a->nswitches : &a->ntaps;
			size_t len = strlen(val);
			if (len == 0 || len > 15 || strpbrk(val, " \t\n/:"))
				return cli_usage_error(g->cmd, "bad %s name '%s' (1..15 bytes)",
						       id == O_SWITCH ? "switch" : "TAP", val);
			if (*n == NET_NAMES_MAX)
				return cli_usage_error(g->cmd, "at most %d of --%s", NET_NAMES_MAX,
						       id == O_SWITCH ? "switch" : "tap");
			(id == O_SWITCH ? a->switches : a->taps)[(*n)++] = val;
			break;
		}
		case O_MTU:
			if (parse_num_arg(g->cmd, "mtu", val, 68, 65521, &a->mtu))
				return -2;
			break;
		case O_SDM:
			if (strncmp(val, "unix:", 5) && strncmp(val, "tcp:", 4))
				return cli_usage_error(g->cmd,
						       "--sdm needs unix:PATH or tcp:HOST:PORT");
			a->sdm = val;
			break;
		case O_CON:
		case O_BACK:
			if ((k = backend_kind(val)) < 0)
				return cli_usage_error(g->cmd, "unknown console backend '%s'", val);
			*(id == O_CON ? &a->console : &a->backend) = (unsigned)k;
			break;
		case O_FOR:
			if (parse_num_arg(g->cmd, "for", val, 0, 0xffff, &a->for_peer))
				return -2;
			a->has_for = true;
			break;
		case O_WIN:
			if (parse_num_arg(g->cmd, "window", val, 1, 64ull << 20, &a->window))
				return -2;
			break;
		case O_MASTER:
		case O_SLAVE:
			if (a->role >= 0)
				return cli_usage_error(g->cmd,
						       "--master and --slave exclude each other");
			a->role = id == O_MASTER ? IVL_TRANSPORT_SDM_MASTER : IVL_TRANSPORT_SDM_SLAVE;
			break;
		case O_MAXS:
		case O_ID:
			if (parse_num_arg(g->cmd, id == O_MAXS ? "max-slaves" : "id", val, 1,
					  IVL_SDM_MAX_SLAVES,
					  id == O_MAXS ? &a->max_slaves : &a->id))
				return -2;
			break;
		default:
			if ((r = cli_common_apply(g, id, val)))
				return r;
		}
	}
	unsigned first = 0;
	if (!console) {
		static const char *const names[] = {NULL, "serve", "create", "list", "destroy"};
		if (!npos)
			return cli_usage_error(g->cmd,
					       "no mode given (serve, create, list, destroy)");
		for (int i = 1; i <= D_DESTROY; i++)
			if (!strcmp(pos[0], names[i]))
				a->mode = i;
		if (!a->mode)
			return cli_usage_error(g->cmd, "unknown mode '%s'", pos[0]);
		first = 1;
	}
	unsigned extra = seen & ~(1u << O_OFF | 1u << O_SIZE | 1u << O_VEC | 1u << O_TMO);
	if (extra & ~allowed[a->mode])
		return cli_usage_error(g->cmd, "an option does not apply to this mode");
	unsigned want = a->mode == D_CREATE || a->mode == D_DESTROY || a->mode == D_CONSOLE;
	if (npos - first > want)
		return cli_usage_error(g->cmd, "unexpected argument '%s'", pos[npos - 1]);
	if (npos - first < want)
		return cli_usage_error(g->cmd, "missing argument (%s)",
				       a->mode == D_CREATE ? "console, sdm, rng, blk or net" : "ID");
	if (a->mode == D_DESTROY || a->mode == D_CONSOLE)
		return parse_num_arg(g->cmd, "ID", pos[first], 1, UINT64_MAX, &a->id);
	if (a->mode != D_CREATE)
		return 0;
	if (strcmp(pos[first], "blk") && (seen & (1u << O_NAME | 1u << O_FILE | 1u << O_RO)))
		return cli_usage_error(g->cmd, "--name, --file and --ro are for blk");
	unsigned net_opts = 1u << O_SWITCH | 1u << O_TAP | 1u << O_MTU;
	if (!strcmp(pos[first], "net")) {
		a->virtio_id = IVL_TRANSPORT_VIRTIO_NET;
		if (a->nswitches + a->ntaps != 1)
			return cli_usage_error(g->cmd, "net needs one --switch NAME or --tap IFNAME");
		if (seen & ~(net_opts | 1u << O_WIN | 1u << O_FOR | 1u << O_OFF | 1u << O_SIZE |
			     1u << O_VEC | 1u << O_TMO))
			return cli_usage_error(g->cmd, "console or SDM options on a net device");
	} else if (seen & net_opts)
		return cli_usage_error(g->cmd, "--switch, --tap and --mtu are for net devices");
	else if (!strcmp(pos[first], "console")) {
		a->virtio_id = IVL_TRANSPORT_VIRTIO_CONSOLE;
		if (seen & (1u << O_MASTER | 1u << O_SLAVE | 1u << O_MAXS | 1u << O_ID))
			return cli_usage_error(g->cmd, "SDM options on a console");
	} else if (!strcmp(pos[first], "sdm")) {
		a->virtio_id = IVL_TRANSPORT_VIRTIO_SDM;
		if (a->role < 0 || (seen & 1u << O_BACK))
			return cli_usage_error(g->cmd,
					       "sdm needs --master or --slave (no --backend)");
		if ((a->role == IVL_TRANSPORT_SDM_MASTER && a->id) ||
		    (a->role == IVL_TRANSPORT_SDM_SLAVE && a->max_slaves))
			return cli_usage_error(g->cmd,
					       "--max-slaves is for masters, --id for slaves");
	} else if (!strcmp(pos[first], "blk")) {
		a->virtio_id = IVL_TRANSPORT_VIRTIO_BLK;
		if (!!(seen & 1u << O_NAME) == !!(seen & 1u << O_FILE))
			return cli_usage_error(g->cmd, "blk needs --name NAME or --file PATH");
		if (seen & (1u << O_BACK | 1u << O_MASTER | 1u << O_SLAVE | 1u << O_MAXS | 1u << O_ID))
			return cli_usage_error(g->cmd, "blk takes --name or --file, --ro, --window");
	} else if (!strcmp(pos[first], "rng")) {
		a->virtio_id = IVL_TRANSPORT_VIRTIO_RNG;
		if (seen & ~(1u << O_WIN | 1u << O_FOR | 1u << O_OFF | 1u << O_SIZE | 1u << O_VEC |
			     1u << O_TMO))
			return cli_usage_error(g->cmd, "rng takes no options but --window and --for");
	} else
		return cli_usage_error(g->cmd, "unknown device type '%s' (console, sdm, rng, blk, net)",
				       pos[first]);
	return 0;
}

int dev_check(struct cli_global *g, int argc, char **argv)
{
	struct dev_args a;
	return dev_parse(g, argc, argv, &a, false);
}

int console_check(struct cli_global *g, int argc, char **argv)
{
	struct dev_args a;
	return dev_parse(g, argc, argv, &a, true);
}

/* ---- running ---------------------------------------------------------------- */

volatile sig_atomic_t dev_stop;

static void on_stop(int sig)
{
	(void)sig;
	dev_stop = 1;
}

void dev_catch_stop(void)
{
	struct sigaction sa = {.sa_handler = on_stop};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static const char *type_name(uint32_t vid)
{
	return vid == IVL_TRANSPORT_VIRTIO_CONSOLE ? "console"
	       : vid == IVL_TRANSPORT_VIRTIO_SDM   ? "sdm"
	       : vid == IVL_TRANSPORT_VIRTIO_RNG   ? "rng"
	       : vid == IVL_TRANSPORT_VIRTIO_BLK   ? "blk"
	       : vid == IVL_TRANSPORT_VIRTIO_NET   ? "net"
						   : "?";
}

static int serve(struct cli_global *g, const struct dev_args *a, struct ivl_link *l)
{
	struct ivl_transport_host_opts o = {
	    .area_offset = a->offset, .area_size = a->size, .vector = (uint16_t)a->vector};
	struct ivl_transport_host *h;
	o.dev.console_dir = a->console_dir;
	o.dev.default_console = a->console;
	o.dev.sdm_channel = a->sdm;
	o.dev.no_sdm = !a->sdm;
	o.dev.no_rng = a->no_rng;
	o.dev.blk = a->blk;
	o.dev.nblk = a->nblk;
	o.dev.net_switches = a->switches;
	o.dev.n_net_switches = a->nswitches;
	o.dev.net_taps = a->taps;
	o.dev.n_net_taps = a->ntaps;
	for (unsigned i = 0; i < a->nswitches; i++)
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(a->switches[i], a->switches[j])) {
				cli_err(g, "switch %s given twice", a->switches[i]);
				return EXIT_FAIL;
			}
	int r = ivl_transport_host_new(&h, l, &o);
	if (r < 0) {
		cli_err(g, "cannot serve: %s", strerror(-r));
		return EXIT_FAIL;
	}
	dev_catch_stop();
	if (g->json)
		json_print(json_pack("{s:s, s:i, s:I}", "event", "serving", "peer", ivl_link_id(l),
				     "offset", (json_int_t)a->offset),
			   true);
	else
		printf("serving on peer %d\n", ivl_link_id(l));
	fflush(stdout);
	struct pollfd p = {.fd = ivl_transport_host_get_fd(h), .events = POLLIN};
	while (!dev_stop && r >= 0) {
		int t = ivl_transport_host_timeout_ms(h);
		poll(&p, 1, t < 0 || t > 100 ? 100 : t);
		r = ivl_transport_host_process(h);
	}
	ivl_transport_host_free(h);
	if (r < 0) {
		cli_err(g, "serving stopped: %s", strerror(-r));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

int dev_fail(struct cli_global *g, const char *what, int r, uint32_t reason)
{
	if (r == -EREMOTEIO)
		cli_err(g, "%s: refused by the device host: %s", what, ivl_transport_reason_name(reason));
	else if (r == -ENODEV)
		cli_err(g, "%s: no device host serves this area (ivlink dev serve)", what);
	else
		cli_err(g, "%s: %s", what, strerror(-r));
	return EXIT_FAIL;
}

static int create(struct cli_global *g, const struct dev_args *a, struct ivl_transport_driver *d)
{
	struct ivl_transport_create c = {.virtio_id = a->virtio_id, .window_size = a->window};
	if (a->has_for)
		c.flags = IVL_TRANSPORT_CREATE_FOR(a->for_peer);
	struct ivl_transport_info info;
	uint32_t reason = 0;
	char arg[IVL_TRANSPORT_CREATE_ARG_MAX] = "";
	if (a->virtio_id == IVL_TRANSPORT_VIRTIO_NET) {
		c.param[0] = (uint32_t)a->mtu;
		snprintf(arg, sizeof(arg), "%s:%s", a->nswitches ? "switch" : "tap",
			 a->nswitches ? a->switches[0] : a->taps[0]);
	} else if (a->virtio_id == IVL_TRANSPORT_VIRTIO_CONSOLE)
		c.param[0] = a->backend;
	else if (a->virtio_id == IVL_TRANSPORT_VIRTIO_BLK) {
		c.param[0] = a->ro;
		snprintf(arg, sizeof(arg), "%s", a->blk_arg);
	} else if (a->virtio_id == IVL_TRANSPORT_VIRTIO_SDM) {
		c.param[0] = (uint32_t)a->role;
		c.param[1] = (uint32_t)(a->role == IVL_TRANSPORT_SDM_MASTER ? a->max_slaves : a->id);
	}
	int r = ivl_transport_driver_create_arg(d, &c, arg[0] ? arg : NULL, &info, &reason);
	if (r < 0)
		return dev_fail(g, "create", r, reason);
	if (g->json)
		return json_print(json_pack("{s:I, s:s, s:i, s:s, s:I, s:I}", "id",
					    (json_int_t)info.device_id, "type",
					    type_name(info.virtio_id), "virtio_id", info.virtio_id,
					    "backend", info.backend, "window_offset",
					    (json_int_t)info.window_offset, "window_size",
					    (json_int_t)info.window_size),
				  false);
	printf("%llu %s %s\n", (unsigned long long)info.device_id, type_name(info.virtio_id),
	       info.backend);
	return EXIT_OK;
}

static int list(struct cli_global *g, struct ivl_transport_driver *d)
{
	struct ivl_transport_list_entry e[IVL_TRANSPORT_MAX_DEVICES];
	uint32_t reason = 0;
	int n = ivl_transport_driver_list(d, e, IVL_TRANSPORT_MAX_DEVICES, &reason);
	if (n < 0)
		return dev_fail(g, "list", n, reason);
	json_t *arr = g->json ? json_array() : NULL;
	if (!g->json)
		printf("%-6s %-8s %-6s %-40s\n", "ID", "TYPE", "STATUS", "BACKEND");
	for (int i = 0; i < n && i < (int)IVL_TRANSPORT_MAX_DEVICES; i++) {
		struct ivl_transport_info info;
		char be[sizeof(info.backend)] = "";
		if (ivl_transport_driver_query(d, e[i].device_id, &info, &reason) == 0)
			cli_sanitize(be, info.backend, sizeof(info.backend) - 1);
		if (arr)
			json_array_append_new(arr, json_pack("{s:I, s:s, s:i, s:i, s:s}", "id",
							     (json_int_t)e[i].device_id, "type",
							     type_name(e[i].virtio_id), "virtio_id",
							     e[i].virtio_id, "status", e[i].status,
							     "backend", be));
		else
			printf("%-6llu %-8s 0x%-4x %-40s\n", (unsigned long long)e[i].device_id,
			       type_name(e[i].virtio_id), e[i].status, be);
	}
	return arr ? json_print(json_pack("{s:o}", "devices", arr), false) : EXIT_OK;
}

int dev_main(struct cli_global *g, int argc, char **argv)
{
	struct dev_args a;
	struct ivl_link *l = NULL;
	struct ivl_transport_driver *d = NULL;
	int r = dev_parse(g, argc, argv, &a, !strcmp(g->cmd, "console")), ret = EXIT_FAIL;

	if (r == CLI_HELP)
		return print_command_help(find_command(g->cmd));
	if (r)
		return EXIT_USAGE;
	cli_log_setup(g);
	if (cli_connect(g, a.mode == D_SERVE ? "ivlink-dev" : CLI_PEER_NAME, &l) < 0)
		return EXIT_FAIL;
	if (a.mode == D_SERVE) {
		ret = serve(g, &a, l);
		goto cleanup;
	}
	struct ivl_transport_driver_opts o = {.area_offset = a.offset,
				  .area_size = a.size,
				  .vector = (uint16_t)a.vector,
				  .timeout_ms = (int)a.timeout_ms};
	r = ivl_transport_driver_new(&d, l, &o);
	if (r < 0) {
		ret = dev_fail(g, "transport", r, 0);
		goto cleanup;
	}
	uint32_t reason = 0;
	switch (a.mode) {
	case D_CREATE:
		ret = create(g, &a, d);
		break;
	case D_LIST:
		ret = list(g, d);
		break;
	case D_DESTROY:
		r = ivl_transport_driver_destroy(d, a.id, &reason);
		ret = r < 0 ? dev_fail(g, "destroy", r, reason) : EXIT_OK;
		break;
	default:
		ret = console_attach(g, l, d, a.id);
	}
cleanup:
	ivl_transport_driver_free(d);
	ivl_link_free(l);
	return ret;
}

int console_main(struct cli_global *g, int argc, char **argv)
{
	return dev_main(g, argc, argv);
}
