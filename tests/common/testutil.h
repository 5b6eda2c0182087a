/* SPDX-License-Identifier: MIT */
/* Helpers for tests that start real processes.  Every wait is bounded. */
#ifndef IVL_TESTUTIL_H
#define IVL_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <cmocka.h>

/* Monotonic milliseconds. */
int64_t tu_now_ms(void);

/* A fresh private directory under $TMPDIR or /tmp, removed (recursively) at
 * exit.  Returns a static-lifetime path. */
const char *tu_tmpdir(void);

/* "$dir/name" in a static ring of buffers (valid for the next 16 calls). */
const char *tu_path(const char *dir, const char *name);

/* Paths of the built programs (from IVL_SERVER_BIN / IVL_CLI_BIN); the test
 * is skipped if unset. */
const char *tu_server_bin(void);
const char *tu_cli_bin(void);

/* In a freshly forked child of @parent: die with the parent (SIGKILL), so a
 * test that crashes or is killed leaves no server or peer behind. */
void tu_child_init(pid_t parent);

/* fork+exec argv (NULL terminated) with stdin from /dev/null and stdout and
 * stderr appended to @log (NULL: inherit).  Returns the pid or -errno. */
pid_t tu_spawn(char *const argv[], const char *log);

/* Wait up to @timeout_ms for @pid; returns its wait status, or -ETIMEDOUT
 * after SIGKILLing and reaping it. */
int tu_wait(pid_t pid, int timeout_ms);

/* Kill (SIGKILL) and reap, ignoring errors; for cleanup paths. */
void tu_kill(pid_t pid);

/* Start ivlink-server on @sock with extra args (NULL terminated varargs),
 * wait until it accepts connections (<= 10 s).  Returns the pid or -errno. */
pid_t tu_start_server(const char *sock, const char *log, ...);

/* Wait until a UNIX socket accepts connections; 0 or -ETIMEDOUT. */
int tu_wait_socket(const char *sock, int timeout_ms);

/* Run argv to completion within @timeout_ms, capturing stdout (malloc'd,
 * NUL terminated, into *out if out != NULL) and stderr (*err likewise).
 * Returns the exit status (0..255), 128+signal, or -errno/-ETIMEDOUT. */
int tu_run(char *const argv[], int timeout_ms, char **out, char **err);

/* Read a whole file (malloc'd, NUL terminated), or NULL. */
char *tu_read_file(const char *path);

/* Count open fds of this process. */
int tu_count_fds(void);

/* A thread that hands a backing link's doorbells to an ivshmem device model,
 * as QEMU's main loop does for a real device (ivl_link_device_deliver()). */
struct ivl_link;
struct ivl_link_device;
struct tu_pump {
	struct ivl_link *backing;
	struct ivl_link_device *ld;
	atomic_bool stop;
	pthread_t thread;
};
/* Start pumping (@p->backing and @p->ld set); 0 or -errno. */
int tu_pump_start(struct tu_pump *p);
void tu_pump_stop(struct tu_pump *p);

#endif
