/* SPDX-License-Identifier: MIT */
/*
 * ivlink demo: the state shared by its steps (cmd_demo.c runs them; the
 * SDM step lives in demo_sdm.c, the managed console in cmd_dev.c).
 */
#ifndef IVL_CLI_DEMO_H
#define IVL_CLI_DEMO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dev.h"

#define NPEERS 3
#define DEMO_VECTORS 2
#define DEMO_REGION (1u << 20)
#define STEP_TIMEOUT_MS 2000
/* Bounds the whole run even when every step times out. */
#define DEMO_TIMEOUT_MS 8000
#define DEMO_MSG_OFFSET 0

struct demo_peer {
	const char *name;
	struct ivl_link *link;
	int id;
	bool saw_join[NPEERS];
	bool saw_leave[NPEERS];
	uint32_t doorbells[IVL_MAX_VECTORS]; /* events since the last reset */
};

struct demo {
	const struct cli_global *g;
	char dir[256];
	char sock[300];
	struct ivl_server *server;
	pthread_t thread;
	bool thread_running;
	int stop_fd;
	atomic_int server_err;
	struct demo_peer p[NPEERS];
	json_t *missing; /* array of strings */
	json_t *steps;	 /* array of step summaries */
	json_t *sdm;	 /* what the sdm step observed, or NULL */
	unsigned events;
	int64_t deadline; /* of the whole demo, monotonic ms */
};

struct demo_step {
	const char *name;
	/* 0: done (check d->missing), < 0: fatal, skip the remaining steps. */
	int (*run)(struct demo *d);
};

/* Narrate (unless --json). */
void demo_say(struct demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Record an expectation that was not met (and narrate it). */
void demo_missing(struct demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t demo_now_ms(void);

/* The steps outside cmd_demo.c. */
int step_sdm(struct demo *d);

#endif
