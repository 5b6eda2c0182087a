/* SPDX-License-Identifier: MIT */
/*
 * ivlink dev / ivlink console: what cmd_dev.c and cmd_console.c share, and
 * the managed-console step of ivlink demo.
 */
#ifndef IVL_CLI_DEV_H
#define IVL_CLI_DEV_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"

/* Set by SIGINT/SIGTERM once dev_catch_stop() installed the handlers. */
extern volatile sig_atomic_t dev_stop;
void dev_catch_stop(void);
/* Print "ivlink: WHAT: why" (with the transport's reason code when the
 * device answered ERR); returns EXIT_FAIL. */
int dev_fail(struct cli_global *g, const char *what, int r, uint32_t reason);
/* Bridge the terminal to console @id until detach or error. */
int console_attach(struct cli_global *g, struct ivl_link *l, struct ivl_transport_driver *d, uint64_t id);
/*
 * The demo's step: create a console on a device host serving the management
 * area at @offset/@size of the server at @sock, pass a line, destroy it;
 * narrates to @out (NULL: quiet).  < 0 with @why on a failed expectation.
 */
int dev_demo_console(const char *sock, uint64_t offset, uint64_t size, FILE *out, char *why,
		     size_t why_len);

#endif
