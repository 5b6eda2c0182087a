/* SPDX-License-Identifier: MIT */
/*
 * ivlink sdm: run an SDM master or slave, and drive a running one through
 * its control socket (docs/sdm.md §7).
 *
 * Control protocol: a UNIX stream socket (mode 0600); the client sends one
 * line ("send TYPE SLAVE P0 P1", "status" or "max-slaves N"), the daemon
 * answers one JSON line and closes.  SLAVE "all" travels as 4294967295
 * (IVL_SDM_ALL); the answer then carries "slaves": how many it reached.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ivlink/sdm.h>

#include "common.h"

#define SDM_DEFAULT_CONTROL "/tmp/ivlink-sdm.ctl"

/* Entry points for the command table (commands.c). */
int sdm_main(struct cli_global *g, int argc, char **argv);
int sdm_check(struct cli_global *g, int argc, char **argv);

const char sdm_usage[] =
    "Usage: ivlink sdm master --listen ADDR --max-slaves N [OPTIONS]\n"
    "       ivlink sdm slave --connect ADDR [--id N] [OPTIONS]\n"
    "       ivlink sdm send [--control PATH] TYPE SLAVE [P0 P1]\n"
    "       ivlink sdm status [--control PATH] [--json]\n"
    "       ivlink sdm max-slaves [--control PATH] N\n"
    "\n"
    "Run a Signal Distribution Module master or slave (docs/sdm.md), or drive a\n"
    "running one through its control socket.  ADDR is unix:PATH,\n"
    "tcp:HOST:PORT or link:SOCKET (an ivlink-server socket: mailboxes in the\n"
    "shared memory, doorbells as interrupts).  TYPE is irq, boot or reset;\n"
    "SLAVE is the destination ID (0, the master, when the daemon is a\n"
    "slave), or 'all' (master only): every registered slave, in one\n"
    "broadcast that reaches all of them or, if one is backed up, none;\n"
    "P0 and P1 are 32-bit payload words.  master and slave print one line per signal received\n"
    "and per slave joining or leaving (JSON with --json) until SIGINT/SIGTERM.\n"
    "\n"
    "Options:\n"
    "      --listen ADDR      master: where slaves connect\n"
    "      --connect ADDR     slave: the master's address\n"
    "      --max-slaves N     master: 1..1024\n"
    "      --id N             slave: the ID to ask for (default: any)\n"
    "      --master-peer N    slave on link: the master's link peer ID (printed\n"
    "                         by the master as 'listening N'; default 0)\n"
    "      --key FILE         pre-shared key: 32 bytes, binary or 64 hex digits,\n"
    "                         mode 0600; authenticates and encrypts every frame\n"
    "      --insecure         allow TCP without --key on a non-loopback address\n"
    "      --keepalive MS     keepalive period (default 1000; dead after 3)\n"
    "      --control PATH     control socket (default $IVLINK_SDM_CONTROL or\n"
    "                         " SDM_DEFAULT_CONTROL ")\n"
    "      --on-boot CMD      run CMD (sh -c) before a BOOT reaches the\n"
    "                         application; a failing CMD drops the signal\n"
    "      --on-reset CMD     the same for RESET\n"
    "      --on-irq CMD       run CMD for each IRQ\n"
    "                         CMD gets SDM_TYPE, SDM_SLAVE, SDM_FROM,\n"
    "                         SDM_PAYLOAD0, SDM_PAYLOAD1 in its environment\n";

enum sdm_mode { SDM_MASTER = 1, SDM_SLAVE, SDM_SEND, SDM_STATUS, SDM_MAX };

struct sdm_args {
	enum sdm_mode mode;
	const char *addr, *key, *control;
	const char *hook[IVL_SDM_NTYPES];
	bool insecure;
	uint64_t max_slaves, id, keepalive, master_peer;
	uint64_t type, slave, p[2];
};

enum {
	O_LISTEN = 1,
	O_CONNECT,
	O_MAX,
	O_ID,
	O_KEY,
	O_INSECURE,
	O_KA,
	O_CONTROL,
	O_BOOT,
	O_RESET,
	O_IRQ,
	O_MPEER,
};

static const struct opt sdm_opts[] = {
    {"listen", 0, OPT_ARG, O_LISTEN},
    {"connect", 0, OPT_ARG, O_CONNECT},
    {"max-slaves", 0, OPT_ARG, O_MAX},
    {"id", 0, OPT_ARG, O_ID},
    {"key", 0, OPT_ARG, O_KEY},
    {"insecure", 0, OPT_FLAG, O_INSECURE},
    {"keepalive", 0, OPT_ARG, O_KA},
    {"control", 0, OPT_ARG, O_CONTROL},
    {"on-boot", 0, OPT_ARG, O_BOOT},
    {"on-reset", 0, OPT_ARG, O_RESET},
    {"on-irq", 0, OPT_ARG, O_IRQ},
    {"master-peer", 0, OPT_ARG, O_MPEER},
    {0},
};

static int parse_mode(const char *s, enum sdm_mode *m)
{
	static const char *const names[] = {"master", "slave", "send", "status", "max-slaves"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i])) {
			*m = (enum sdm_mode)(i + 1);
			return 0;
		}
	return -EINVAL;
}

static int sdm_parse(struct cli_global *g, int argc, char **argv, struct sdm_args *a)
{
	const char *pos[4];
	unsigned npos = 0;
	struct optparse p;
	const char *val;
	int id, r;

	memset(a, 0, sizeof(*a));
	a->control = getenv("IVLINK_SDM_CONTROL");
	if (!a->control || !*a->control)
		a->control = SDM_DEFAULT_CONTROL;
	optparse_init(&p, argc, argv, g->cmd);
	while ((id = opt_next(&p, sdm_opts, cli_common_opts, &val)) != -1) {
		switch (id) {
		case -2:
			return -2;
		case 0:
			if (!a->mode) {
				if (parse_mode(val, &a->mode))
					return cli_usage_error(g->cmd, "unknown mode '%s'", val);
			} else if (npos < 4) {
				pos[npos++] = val;
			} else {
				return cli_usage_error(g->cmd, "unexpected argument '%s'", val);
			}
			break;
		case O_LISTEN:
		case O_CONNECT:
			a->addr = val;
			break;
		case O_MAX:
			if (parse_num_arg(g->cmd, "max-slaves", val, 1, IVL_SDM_MAX_SLAVES,
					  &a->max_slaves))
				return -2;
			break;
		case O_ID:
			if (parse_num_arg(g->cmd, "id", val, 1, IVL_SDM_MAX_SLAVES, &a->id))
				return -2;
			break;
		case O_KEY:
			a->key = val;
			break;
		case O_INSECURE:
			a->insecure = true;
			break;
		case O_KA:
			if (parse_num_arg(g->cmd, "keepalive", val, 10, 60000, &a->keepalive))
				return -2;
			break;
		case O_CONTROL:
			a->control = val;
			break;
		case O_MPEER:
			if (parse_num_arg(g->cmd, "master-peer", val, 0, UINT16_MAX,
					  &a->master_peer))
				return -2;
			break;
		case O_BOOT:
			a->hook[IVL_SDM_BOOT] = val;
			break;
		case O_RESET:
			a->hook[IVL_SDM_RESET] = val;
			break;
		case O_IRQ:
			a->hook[IVL_SDM_IRQ] = val;
			break;
		default:
			if ((r = cli_common_apply(g, id, val)))
				return r;
		}
	}
	if (!a->mode)
		return cli_usage_error(g->cmd, "no mode given (master, slave, send, status)");
	if (strlen(a->control) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return cli_usage_error(g->cmd, "control path too long");
	switch (a->mode) {
	case SDM_MASTER:
		if (!a->addr || !a->max_slaves)
			return cli_usage_error(g->cmd, "master needs --listen and --max-slaves");
		if (a->id)
			return cli_usage_error(g->cmd, "--id is for slaves");
		break;
	case SDM_SLAVE:
		if (!a->addr)
			return cli_usage_error(g->cmd, "slave needs --connect");
		if (a->max_slaves)
			return cli_usage_error(g->cmd, "--max-slaves is for masters");
		break;
	case SDM_SEND:
		if (npos != 2 && npos != 4)
			return cli_usage_error(g->cmd, "send needs TYPE SLAVE [P0 P1]");
		r = ivl_sdm_type_from_name(pos[0]);
		if (r < 0)
			return cli_usage_error(g->cmd, "unknown signal type '%s'", pos[0]);
		a->type = (uint64_t)r;
		if (!strcmp(pos[1], "all"))
			a->slave = IVL_SDM_ALL;
		else if (parse_num_arg(g->cmd, "slave", pos[1], 0, IVL_SDM_MAX_SLAVES, &a->slave))
			return -2;
		for (unsigned i = 2; i < npos; i++)
			if (parse_num_arg(g->cmd, "payload", pos[i], 0, UINT32_MAX, &a->p[i - 2]))
				return -2;
		return 0;
	case SDM_MAX:
		if (npos != 1)
			return cli_usage_error(g->cmd, "max-slaves needs N");
		return parse_num_arg(g->cmd, "max-slaves", pos[0], 1, IVL_SDM_MAX_SLAVES,
				     &a->max_slaves);
	case SDM_STATUS:
		break;
	}
	if (npos)
		return cli_usage_error(g->cmd, "unexpected argument '%s'", pos[0]);
	if ((a->mode == SDM_SEND || a->mode == SDM_STATUS) && (a->addr || a->key))
		return cli_usage_error(g->cmd, "this mode only talks to the control socket");
	return 0;
}

int sdm_check(struct cli_global *g, int argc, char **argv)
{
	struct sdm_args a;

	return sdm_parse(g, argc, argv, &a);
}

/* ---- addresses ------------------------------------------------------------ */

/* unix:PATH or tcp:HOST:PORT ([v6]:PORT) into options; @buf holds the host. */
static int parse_addr(const char *s, struct ivl_sdm_opts *o, char *buf, size_t room)
{
	const char *colon;
	uint64_t port;
	size_t hlen;

	if (!strncmp(s, "unix:", 5) && s[5]) {
		o->channel = IVL_SDM_CHAN_UNIX;
		o->path = s + 5;
		return 0;
	}
	if (!strncmp(s, "link:", 5) && s[5]) {
		o->channel = IVL_SDM_CHAN_LINK;
		o->path = s + 5; /* the ivlink-server socket, connected by the caller */
		return 0;
	}
	if (strncmp(s, "tcp:", 4))
		return -EINVAL;
	s += 4;
	colon = strrchr(s, ':');
	if (!colon || colon == s || parse_u64(colon + 1, 0, 65535, &port))
		return -EINVAL;
	hlen = (size_t)(colon - s);
	if (s[0] == '[' && hlen > 2 && s[hlen - 1] == ']') {
		s++;
		hlen -= 2;
	}
	if (hlen >= room)
		return -EINVAL;
	memcpy(buf, s, hlen);
	buf[hlen] = 0;
	o->channel = IVL_SDM_CHAN_TCP;
	o->host = buf;
	o->port = (uint16_t)port;
	return 0;
}

/* ---- hooks and events ---------------------------------------------------- */

struct daemon {
	const struct cli_global *g;
	const struct sdm_args *a;
	struct ivl_sdm *sdm;
	int ctl;
	bool *present;
};

static int run_hook(const char *cmd, const struct ivl_sdm_signal *sig, uint16_t from)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char v[32];

		setenv("SDM_TYPE", ivl_sdm_type_name(sig->type), 1);
		snprintf(v, sizeof(v), "%u", sig->slave);
		setenv("SDM_SLAVE", v, 1);
		snprintf(v, sizeof(v), "%u", from);
		setenv("SDM_FROM", v, 1);
		snprintf(v, sizeof(v), "%u", sig->payload[0]);
		setenv("SDM_PAYLOAD0", v, 1);
		snprintf(v, sizeof(v), "%u", sig->payload[1]);
		setenv("SDM_PAYLOAD1", v, 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -ECANCELED;
}

static int on_action(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, uint16_t from, void *op)
{
	struct daemon *d = op;

	(void)s;
	return run_hook(d->a->hook[sig->type], sig, from);
}

static void on_signal_rx(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, uint16_t from,
			 void *op)
{
	struct daemon *d = op;

	(void)s;
	if (d->g->json)
		json_print(json_pack("{s:s, s:s, s:i, s:i, s:I, s:I}", "event", "signal", "type",
				     ivl_sdm_type_name(sig->type), "from", from, "slave",
				     (int)sig->slave, "payload0", (json_int_t)sig->payload[0],
				     "payload1", (json_int_t)sig->payload[1]),
			   true);
	else
		printf("%s from %u to %u payload 0x%08x 0x%08x\n", ivl_sdm_type_name(sig->type),
		       from, sig->slave, sig->payload[0], sig->payload[1]);
	fflush(stdout);
	if (sig->type == IVL_SDM_IRQ && d->a->hook[IVL_SDM_IRQ])
		run_hook(d->a->hook[IVL_SDM_IRQ], sig, from);
}

static void print_event(const struct daemon *d, const char *what, int id)
{
	if (d->g->json)
		json_print(json_pack("{s:s, s:i}", "event", what, "id", id), true);
	else
		printf("%s %d\n", what, id);
	fflush(stdout);
}

/* Master: report joins and leaves by comparing presence. */
static void watch_slaves(struct daemon *d)
{
	for (uint16_t i = 1; i <= IVL_SDM_MAX_SLAVES; i++) {
		bool now = ivl_sdm_slave_present(d->sdm, i);

		if (now != d->present[i])
			print_event(d, now ? "join" : "leave", i);
		d->present[i] = now;
	}
}

/* ---- control socket -------------------------------------------------------- */

static int ctl_listen(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat sb;
	int fd;

	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(path, 0600) < 0 ||
	    listen(fd, 8) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static json_t *status_json(struct daemon *d)
{
	struct ivl_sdm_config c;
	struct ivl_sdm_stats st;
	json_t *o, *sl = json_array();
	int state = ivl_sdm_state(d->sdm);

	ivl_sdm_get_config(d->sdm, &c);
	ivl_sdm_get_stats(d->sdm, &st);
	if (c.master)
		for (uint16_t i = 1; i <= IVL_SDM_MAX_SLAVES; i++)
			if (ivl_sdm_slave_present(d->sdm, i))
				json_array_append_new(sl, json_integer(i));
	o = json_pack("{s:b, s:s, s:i, s:s, s:i, s:i, s:o}", "ok", 1, "role",
		      c.master ? "master" : "slave", "id", ivl_sdm_id(d->sdm), "state",
		      state ? strerror(-state) : "up", "max_slaves", c.max_slaves, "current_slaves",
		      c.current_slaves, "slaves", sl);
	json_object_set_new(
	    o, "stats",
	    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "sent",
		      (json_int_t)st.sent, "received", (json_int_t)st.received, "dropped_forged",
		      (json_int_t)st.dropped_forged, "dropped_invalid",
		      (json_int_t)st.dropped_invalid, "dropped_action",
		      (json_int_t)st.dropped_action, "conn_accepted", (json_int_t)st.conn_accepted,
		      "conn_refused", (json_int_t)st.conn_refused, "conn_dropped",
		      (json_int_t)st.conn_dropped, "keepalive_timeouts",
		      (json_int_t)st.keepalive_timeouts, "reconnects", (json_int_t)st.reconnects));
	return o;
}

static const char *send_error(int r)
{
	switch (r) {
	case -ENOENT:
		return "that slave is not connected";
	case -ENOTCONN:
		return "not registered with a master";
	case -EPERM:
		return "a slave may only signal the master (SLAVE 0), never 'all'";
	case -EINVAL:
		return "invalid signal (the master cannot signal ID 0)";
	case -EAGAIN:
		return "send buffer full (for 'all': of at least one slave; nothing sent), try again";
	case -EBADMSG:
		return "malformed control request";
	default:
		return strerror(-r);
	}
}

static json_t *err_json(int r)
{
	return json_pack("{s:b, s:i, s:s}", "ok", 0, "error", -r, "message", send_error(r));
}

static json_t *ctl_command(struct daemon *d, char *line)
{
	struct ivl_sdm_signal sig = {0};
	char type[16];
	unsigned long long sl, p0, p1, max;
	int t, r;

	if (!strcmp(line, "status"))
		return status_json(d);
	if (sscanf(line, "max-slaves %llu", &max) == 1) {
		r = max <= 0xffff ? ivl_sdm_set_max_slaves(d->sdm, (uint16_t)max) : -ERANGE;
		return r ? err_json(r) : json_pack("{s:b}", "ok", 1);
	}
	if (sscanf(line, "send %15s %llu %llu %llu", type, &sl, &p0, &p1) != 4)
		return err_json(-EBADMSG);
	t = ivl_sdm_type_from_name(type);
	if (t < 0 || sl > UINT32_MAX || p0 > UINT32_MAX || p1 > UINT32_MAX)
		return err_json(-EINVAL);
	sig = (struct ivl_sdm_signal){(uint32_t)t, (uint32_t)sl, {(uint32_t)p0, (uint32_t)p1}};
	r = ivl_sdm_send(d->sdm, &sig);
	if (r < 0)
		return err_json(r);
	if (sig.slave == IVL_SDM_ALL)
		return json_pack("{s:b, s:i}", "ok", 1, "slaves", r);
	return json_pack("{s:b}", "ok", 1);
}

/* One short request per connection; local clients only, so a 1 s receive
 * timeout bounds how long a stuck client can hold the loop. */
static void ctl_serve(struct daemon *d)
{
	struct timeval tv = {.tv_sec = 1};
	char line[256];
	size_t len = 0;
	json_t *resp;
	char *s;
	int fd;

	fd = accept4(d->ctl, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (len < sizeof(line) - 1) {
		ssize_t n = recv(fd, line + len, sizeof(line) - 1 - len, 0);

		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(line, '\n', len))
			break;
	}
	line[len] = 0;
	line[strcspn(line, "\r\n")] = 0;
	resp = ctl_command(d, line);
	s = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
	json_decref(resp);
	if (s) {
		send(fd, s, strlen(s), MSG_NOSIGNAL);
		send(fd, "\n", 1, MSG_NOSIGNAL);
		free(s);
	}
	close(fd);
}

/* ---- modes ------------------------------------------------------------------ */

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

static int run_daemon(struct cli_global *g, const struct sdm_args *a)
{
	struct ivl_sdm_opts o = {0};
	uint8_t key[IVL_SDM_KEY_LEN];
	char host[256];
	struct daemon d = {.g = g, .a = a, .ctl = -1};
	struct ivl_link *link = NULL;
	int r, prev_state = 1, ret = EXIT_FAIL;

	r = parse_addr(a->addr, &o, host, sizeof(host));
	if (r) {
		cli_err(g, "invalid address '%s' (unix:PATH, tcp:HOST:PORT or link:SOCKET)",
			a->addr);
		return EXIT_USAGE;
	}
	if (a->key) {
		r = ivl_sdm_load_key(a->key, key);
		if (r) {
			cli_err(g, "key %s: %s", a->key,
				r == -EPERM ? "readable by others (chmod 600)" : strerror(-r));
			return EXIT_FAIL;
		}
		o.key = key;
	}
	o.master = a->mode == SDM_MASTER;
	o.max_slaves = (uint16_t)a->max_slaves;
	o.id = (uint16_t)a->id;
	o.insecure = a->insecure;
	o.keepalive_ms = (uint32_t)a->keepalive;
	cli_log_setup(g);
	if (o.channel == IVL_SDM_CHAN_LINK) {
		struct cli_global lg = *g;

		if (a->key)
			cli_err(g, "warning: --key does not apply to link: (shared memory)");
		lg.socket = o.path;
		if (cli_connect(&lg, o.master ? "sdm-master" : "sdm-slave", &link) < 0)
			goto out;
		o.link = link;
		o.link_master = (uint16_t)a->master_peer;
	}
	d.present = calloc(IVL_SDM_MAX_SLAVES + 1, sizeof(bool));
	if (!d.present)
		goto out;
	r = ivl_sdm_new(&d.sdm, &o);
	memset(key, 0, sizeof(key));
	if (r) {
		cli_err(g, "%s: %s", a->addr,
			r == -EPERM ? "TCP beyond loopback needs --key (or --insecure)"
				    : strerror(-r));
		goto out;
	}
	for (uint32_t t = 0; t < IVL_SDM_NTYPES; t++)
		ivl_sdm_set_handler(d.sdm, t, on_signal_rx, &d);
	if (a->hook[IVL_SDM_BOOT])
		ivl_sdm_set_action(d.sdm, IVL_SDM_BOOT, on_action, &d);
	if (a->hook[IVL_SDM_RESET])
		ivl_sdm_set_action(d.sdm, IVL_SDM_RESET, on_action, &d);
	/* Before the control socket exists, so that a script waiting for the
	 * socket can read the master's link peer ID from this line. */
	if (o.master)
		print_event(&d, "listening", link ? ivl_link_id(link) : 0);
	d.ctl = ctl_listen(a->control);
	if (d.ctl < 0) {
		cli_err(g, "control socket %s: %s", a->control, strerror(-d.ctl));
		goto out;
	}
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	signal(SIGPIPE, SIG_IGN);
	while (!stop_signal) {
		struct pollfd p[2] = {{.fd = ivl_sdm_get_fd(d.sdm), .events = POLLIN},
				      {.fd = d.ctl, .events = POLLIN}};
		int state;

		poll(p, 2, ivl_sdm_timeout_ms(d.sdm));
		r = ivl_sdm_process(d.sdm);
		if (r < 0 && r != -EINTR) {
			cli_err(g, "%s",
				r == -EACCES ? "authentication failed (wrong key?)" : strerror(-r));
			goto out;
		}
		if (p[1].revents & POLLIN)
			ctl_serve(&d);
		if (o.master) {
			watch_slaves(&d);
			continue;
		}
		state = ivl_sdm_state(d.sdm);
		if (state != prev_state) {
			if (state == 0)
				print_event(&d, "registered", ivl_sdm_id(d.sdm));
			else if (state != -EINPROGRESS)
				cli_err(g, "not registered: %s", strerror(-state));
		}
		prev_state = state;
	}
	ret = EXIT_OK;
out:
	if (d.ctl >= 0) {
		close(d.ctl);
		unlink(a->control);
	}
	ivl_sdm_free(d.sdm);
	ivl_link_free(link);
	free(d.present);
	return ret;
}

static int run_client(struct cli_global *g, const struct sdm_args *a)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 5};
	char req[128], resp[4096];
	size_t len = 0;
	json_t *j, *ok;
	int fd, ret = EXIT_FAIL;

	if (a->mode == SDM_SEND)
		snprintf(req, sizeof(req), "send %s %llu %llu %llu\n",
			 ivl_sdm_type_name((uint32_t)a->type), (unsigned long long)a->slave,
			 (unsigned long long)a->p[0], (unsigned long long)a->p[1]);
	else if (a->mode == SDM_MAX)
		snprintf(req, sizeof(req), "max-slaves %llu\n", (unsigned long long)a->max_slaves);
	else
		snprintf(req, sizeof(req), "status\n");
	memcpy(sun.sun_path, a->control, strlen(a->control) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		cli_err(g, "control socket %s: %s", a->control, strerror(errno));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		cli_err(g, "control socket: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t n = recv(fd, resp + len, sizeof(resp) - 1 - len, 0);

		if (n <= 0 || (len += (size_t)n) == sizeof(resp) - 1)
			break;
	}
	resp[len] = 0;
	j = json_loads(resp, 0, NULL);
	ok = j ? json_object_get(j, "ok") : NULL;
	if (!json_is_boolean(ok)) {
		cli_err(g, "no valid answer from the control socket");
	} else if (!json_is_true(ok)) {
		cli_err(g, "%s", json_string_value(json_object_get(j, "message")));
	} else if (a->mode == SDM_STATUS && g->json) {
		json_object_del(j, "ok");
		ret = json_print(json_incref(j), false);
	} else if (a->mode == SDM_STATUS) {
		json_t *sl = json_object_get(j, "slaves"), *st = json_object_get(j, "stats"), *v;
		const char *k;
		size_t i;

		printf("role %s id %lld state %s\n", json_string_value(json_object_get(j, "role")),
		       json_integer_value(json_object_get(j, "id")),
		       json_string_value(json_object_get(j, "state")));
		printf("max_slaves %lld current_slaves %lld\n",
		       json_integer_value(json_object_get(j, "max_slaves")),
		       json_integer_value(json_object_get(j, "current_slaves")));
		printf("slaves");
		json_array_foreach(sl, i, v) printf(" %lld", json_integer_value(v));
		printf("\n");
		json_object_foreach(st, k, v) printf("%s %lld\n", k, json_integer_value(v));
		ret = fflush(stdout) == EOF ? EXIT_FAIL : EXIT_OK;
	} else if (a->mode == SDM_SEND && a->slave == IVL_SDM_ALL) {
		long long n = json_integer_value(json_object_get(j, "slaves"));

		if (g->json)
			printf("{\"slaves\": %lld}\n", n);
		else
			printf("sent to %lld slave%s\n", n, n == 1 ? "" : "s");
		ret = fflush(stdout) == EOF ? EXIT_FAIL : EXIT_OK;
	} else {
		ret = EXIT_OK;
	}
	json_decref(j);
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

int sdm_main(struct cli_global *g, int argc, char **argv)
{
	struct sdm_args a;
	int r = sdm_parse(g, argc, argv, &a);

	if (r == CLI_HELP)
		return print_command_help(find_command("sdm"));
	if (r)
		return EXIT_USAGE;
	if (a.mode == SDM_MASTER || a.mode == SDM_SLAVE)
		return run_daemon(g, &a);
	return run_client(g, &a);
}
