/* SPDX-License-Identifier: MIT */
/*
 * What the files of `ivlink sdm` share (docs/sdm.md §7):
 *   cmd_sdm.c          the command line: usage, options, parsing, addresses,
 *                      and the entry points of the command table;
 *   cmd_sdm_daemon.c   master and slave: the run loop, hooks, events printed;
 *   cmd_sdm_control.c  the control socket: the daemon's server and the
 *                      requests of send/status/max-slaves, with their output.
 */
#ifndef IVL_CLI_CMD_SDM_H
#define IVL_CLI_CMD_SDM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ivlink/sdm.h>

#include "common.h"

#define SDM_DEFAULT_CONTROL "/tmp/ivlink-sdm.ctl"

enum sdm_mode { SDM_MASTER = 1, SDM_SLAVE, SDM_SEND, SDM_STATUS, SDM_MAX };

struct sdm_args {
	enum sdm_mode mode;
	const char *addr, *key, *control;
	const char *hook[IVL_SDM_NTYPES];
	bool insecure;
	uint64_t max_slaves, id, keepalive, master_peer;
	uint64_t type, slave, p[2];
};

/* A running master or slave. */
struct sdm_daemon {
	const struct cli_global *g;
	const struct sdm_args *a;
	struct ivl_sdm *sdm;
	int ctl;
	bool *present;
};

/* unix:PATH, tcp:HOST:PORT ([v6]:PORT) or link:SOCKET into options; @buf
 * (@room bytes) holds the host.  -EINVAL. */
int sdm_parse_addr(const char *s, struct ivl_sdm_opts *o, char *buf, size_t room);
/* master / slave until SIGINT or SIGTERM; an exit status. */
int sdm_run_daemon(struct cli_global *g, const struct sdm_args *a);
/* One line of output: "WHAT ID", or JSON with --json. */
void sdm_print_event(const struct sdm_daemon *d, const char *what, int id);
/* The daemon's control socket at @path (mode 0600): its fd, or -errno. */
int sdm_ctl_listen(const char *path);
/* Answer one request on the control socket. */
void sdm_ctl_serve(struct sdm_daemon *d);
/* send / status / max-slaves: one request to a daemon; an exit status. */
int sdm_run_client(struct cli_global *g, const struct sdm_args *a);

#endif
