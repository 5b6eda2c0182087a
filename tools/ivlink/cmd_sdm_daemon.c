/* SPDX-License-Identifier: MIT */
/*
 * ivlink sdm master / slave: the run loop of a daemon, its hooks
 * (--on-boot, --on-reset, --on-irq) and the events it prints.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd_sdm.h"

/* ---- hooks and events ---------------------------------------------------- */

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
	struct sdm_daemon *d = op;

	(void)s;
	return run_hook(d->a->hook[sig->type], sig, from);
}

static void on_signal_rx(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, uint16_t from,
			 void *op)
{
	struct sdm_daemon *d = op;

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

void sdm_print_event(const struct sdm_daemon *d, const char *what, int id)
{
	if (d->g->json)
		json_print(json_pack("{s:s, s:i}", "event", what, "id", id), true);
	else
		printf("%s %d\n", what, id);
	fflush(stdout);
}

/* Master: report joins and leaves by comparing presence. */
static void watch_slaves(struct sdm_daemon *d)
{
	for (uint16_t i = 1; i <= IVL_SDM_MAX_SLAVES; i++) {
		bool now = ivl_sdm_slave_present(d->sdm, i);

		if (now != d->present[i])
			sdm_print_event(d, now ? "join" : "leave", i);
		d->present[i] = now;
	}
}

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

int sdm_run_daemon(struct cli_global *g, const struct sdm_args *a)
{
	struct ivl_sdm_opts o = {0};
	uint8_t key[IVL_SDM_KEY_LEN];
	char host[256];
	struct sdm_daemon d = {.g = g, .a = a, .ctl = -1};
	struct ivl_link *link = NULL;
	int r, prev_state = 1, ret = EXIT_FAIL;

	r = sdm_parse_addr(a->addr, &o, host, sizeof(host));
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
		sdm_print_event(&d, "listening", link ? ivl_link_id(link) : 0);
	d.ctl = sdm_ctl_listen(a->control);
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
			sdm_ctl_serve(&d);
		if (o.master) {
			watch_slaves(&d);
			continue;
		}
		state = ivl_sdm_state(d.sdm);
		if (state != prev_state) {
			if (state == 0)
				sdm_print_event(&d, "registered", ivl_sdm_id(d.sdm));
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
