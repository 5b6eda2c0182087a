/* SPDX-License-Identifier: MIT */
/* Helpers for the ivlink CLI tests: run the built ivlink with bounded waits. */
#ifndef IVL_CLITEST_H
#define IVL_CLITEST_H

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "testutil.h"

#define CT_TIMEOUT 10000 /* ms: anything that should finish at once */

/* Run "ivlink ARGS..." (NULL terminated) to completion; returns its exit
 * status and fills *out / *err (malloc'd, may be NULL to discard). */
int ct_run(char **out, char **err, ...);

/* Spawn "ivlink ARGS..." (NULL terminated) with stdout+stderr to @log. */
pid_t ct_spawn(const char *log, ...);

/* Poll "ivlink -S sock peers --json" until a peer named @name is listed
 * (<= CT_TIMEOUT); returns its ID (asserts it appears). */
int ct_wait_peer(const char *sock, const char *name);

/* Parse @text as JSON; asserts success. */
json_t *ct_json(const char *text);

/* Wait up to CT_TIMEOUT for @path to contain @needle; returns the file. */
char *ct_wait_file(const char *path, const char *needle);

#endif
