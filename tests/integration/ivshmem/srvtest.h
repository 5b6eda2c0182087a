/* SPDX-License-Identifier: MIT */
/* Client-side helpers for the server integration tests: a raw ivshmem peer
 * that reads messages with bounded waits. */
#ifndef IVL_SRVTEST_H
#define IVL_SRVTEST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "testutil.h"
#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>

#define ST_TIMEOUT 5000 /* ms, for anything that should happen at once */

struct st_peer {
	int sock;
	struct ivl_msg_reader r;
	int id;
	int shm_fd; /* from the handshake, or -1 */
};

/* Connect (non-blocking socket); asserts success. */
void st_connect(struct st_peer *p, const char *sock);
void st_close(struct st_peer *p);

/* Next message within @timeout_ms: 1 (in *m, fd owned by the caller), 0 on
 * timeout, -ECONNRESET at end of stream, other -errno. */
int st_recv(struct st_peer *p, struct ivl_msg *m, int timeout_ms);

/* Assert that the next message is @value, with an fd iff @with_fd; the fd
 * is closed unless @keep_fd, in which case it is returned. */
int st_expect(struct st_peer *p, int64_t value, bool with_fd, bool keep_fd);

/*
 * Read a whole handshake (§1) and check it: version 0, an ID, the shm fd,
 * then @vectors fds for each ID in @others (in order), then @vectors fds
 * for the own ID.  The shm fd is kept in p->shm_fd.  Returns the ID.
 */
int st_handshake(struct st_peer *p, unsigned vectors, const int *others, size_t n_others);
/* As st_handshake(), keeping fds: those of others[i]'s vector v in
 * other_fds[i * vectors + v], the own ones in own[] (either NULL: closed). */
int st_handshake_keep(struct st_peer *p, unsigned vectors, const int *others, size_t n_others,
		      int *other_fds, int *own);
/* The @vectors messages of @id's join (or of my own vectors), each with an
 * fd, kept in fds[] (NULL: closed). */
void st_expect_join(struct st_peer *p, int id, unsigned vectors, int *fds);
/* As st_handshake(), for a server that may still hold other peers (say a
 * readiness probe whose leave it has not seen yet): their vectors and
 * leaves are skipped until @vectors of my own are in.  Returns my ID. */
int st_handshake_any(struct st_peer *p, unsigned vectors);

/* The server must refuse the connection: the version and IVL_EXT_REFUSED,
 * then EOF (returns the reason, a positive errno), or EOF alone (out of fds
 * at accept(); returns 0). */
int st_expect_refused(struct st_peer *p);

/* Nothing more arrives within @ms (used only where the server has already
 * had every chance to send: e.g. after a later message was seen). */
void st_expect_quiet(struct st_peer *p, int ms);

/* Unique names for this test process. */
const char *st_shm_name(const char *tag);
const char *st_sock(const char *tag);
/* True once /dev/shm/<name> is gone. */
bool st_shm_exists(const char *name);

/* Spawn the server on @sock with @args (NULL terminated), logging to @log
 * (required), with a hard RLIMIT_NOFILE of @nofile if nonzero; wait until it
 * logged that it serves (<= 10 s). */
pid_t st_start(const char *sock, const char *log, unsigned nofile, char *const args[]);

/* The same, running the server as @uid (and gid @uid) when root. */
pid_t st_start_as(const char *sock, const char *log, unsigned nofile, uid_t uid,
		  char *const args[]);

/* Stop @pid (SIGTERM, then SIGKILL) at exit if it is still running:
 * st_start() does this for its servers. */
void st_track(pid_t pid);

/* SIGTERM the server and check that it exits 0 within bounds. */
void st_stop(pid_t pid);

/* SIGKILL the server @pid on @sock (its object @shm, or NULL) and wait
 * (<= 10 s) until what it held is free again: its reader process, which
 * the kernel kills when the keeper dies, shares the listening socket and
 * the locks of @sock.lock and @shm until it is gone.  A server started on
 * the same names right after would otherwise find them "in use". */
void st_kill(pid_t pid, const char *sock, const char *shm);

#endif
