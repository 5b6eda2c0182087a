/* SPDX-License-Identifier: MIT */
/* Helpers shared by the hostile tests: fd counts of other processes and log
 * searches, every wait bounded. */
#ifndef IVL_HOSTILE_H
#define IVL_HOSTILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "srvtest.h"

/* Open fds of process @pid (from /proc/<pid>/fd), or -errno. */
int ho_count_fds(pid_t pid);

/* Wait up to @timeout_ms until @pid has at most @want fds open; returns the
 * last count seen. */
int ho_wait_fds(pid_t pid, int want, int timeout_ms);

/* True if the file @log contains @needle. */
bool ho_log_has(const char *log, const char *needle);

/* Wait up to @timeout_ms for @needle to appear in @log. */
bool ho_wait_log(const char *log, const char *needle, int timeout_ms);

/* Resident set size of @pid in KiB, or -errno. */
long ho_rss_kib(pid_t pid);

/* The count of a doorbell eventfd, taken now (0 if it was not rung). */
uint64_t ho_take_count(int efd);

/* Lines of @log that contain @needle (@prefix: that start with it). */
unsigned ho_count_lines(const char *log, const char *needle, bool prefix);

/* Sum of the doorbell counts `ivlink listen` printed in @log, for @vector
 * (-1: every vector). */
unsigned long ho_listen_doorbells(const char *log, int vector);

/* Fail the test if the server @pid has exited (reaping it). */
void ho_alive(pid_t pid);

#endif
