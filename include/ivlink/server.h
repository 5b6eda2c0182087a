/* SPDX-License-Identifier: MIT */
/*
 * The ivshmem server core (ivlink-server is a thin program around it): a
 * wire-compatible replacement for QEMU's ivshmem-server with the ivlink
 * header, hellos, admission limits, fd budgets and live upgrade.
 * Normative text: docs/protocol.md; upgrade: docs/upgrade.md.
 * Thread safety: one server is used by one thread at a time; the getters
 * (peers, stats, region) too.  ivl_server_new() and ivl_server_restore()
 * change the process umask for a moment (to create the socket's lock file
 * 0600): call them before other threads create files.
 */
#ifndef IVLINK_SERVER_H
#define IVLINK_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ivlink/proto/shm.h>
#include <ivlink/region.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ivl_server;

struct ivl_server_opts {
	const char *socket_path;   /* required unless listen_fd >= 0 */
	int listen_fd;             /* >= 0: already bound and listening (socket
				    * activation); the server takes ownership */
	mode_t socket_mode;        /* 0 means 0600 */
	struct ivl_region_opts region; /* the shared memory to create */
	unsigned vectors;          /* 1..64 */
	unsigned max_peers;        /* admission limit; 0 means 256 */
	bool raw;                  /* no ivlink header: region untouched */
	bool force;                /* reuse an existing, non-stale shm object */
	const uid_t *allow_uids;   /* if either list is non-empty, a peer must */
	size_t n_allow_uids;       /* match one uid or one gid (SO_PEERCRED) */
	const gid_t *allow_gids;
	size_t n_allow_gids;
	size_t max_queue;          /* queued messages per peer before it is
				    * dropped as unresponsive; 0: default */
	size_t max_queue_fds;      /* fds queued per peer beyond its handshake
				    * before it is dropped; 0: default
				    * (vectors * max_peers, which a live peer
				    * never reaches) */
	bool keep_data;            /* a stale object taken over keeps its
				    * bytes; default: zeroed (a new object is
				    * zero anyway; a forced one is never
				    * zeroed) */
};

/*
 * Create the region (formatted unless raw), bind the socket and start
 * listening.  An existing socket path is probed: a live server gives
 * -EADDRINUSE, a stale socket is removed.  An existing shm or file object
 * gives -EEXIST unless it carries an ivlink header and no running server
 * holds its lock (stale: reused, zeroed unless keep_data), or @force is set
 * (reused as it is); one a running server holds is -EEXIST even so.  A listen_fd of 0 with a socket_path is taken for
 * zero-initialised options (not a listener: ignored, stdin stays open).
 * Errors: -EINVAL (NULL argument, no socket_path and no listen_fd, vectors
 * outside 1..64, max_peers > 65536, an allow list count without its
 * array, a region name missing), -ENOTSOCK (listen_fd is not a listening
 * socket; closed), -ENAMETOOLONG (socket path > 107 bytes), -EADDRINUSE (a
 * live server answers on the socket or holds its lock file), -EEXIST (the
 * path is not a socket; the shm object exists and is not stale, or a
 * running server holds it), -EAGAIN (the lock file or the shm object was
 * replaced while starting), -ENOMEM, the errors of ivl_region_open() and
 * ivl_shm_format(), other -errno of socket/bind/listen/epoll.  On error
 * nothing the call created is left behind (socket path, lock file, shm
 * name), and listen_fd is closed (except for the -EINVAL of NULL
 * arguments).  *out is the caller's: ivl_server_free().
 */
int ivl_server_new(struct ivl_server **out, const struct ivl_server_opts *opts);

/* Returns one pollable fd (an epoll fd, owned by the server: do not close
 * it): readable when process() has work; -EINVAL for NULL. */
int ivl_server_get_fd(const struct ivl_server *s);

/*
 * Do all pending work without blocking: accept peers, send queued messages,
 * read hellos, detect departures.  A failing peer is dropped; the server and
 * the other peers go on.  Returns 0, or -errno for a failure of the server
 * itself (epoll broken), after which it should be freed; -EINVAL for NULL.
 * EINTR counts as nothing to do.
 */
int ivl_server_process(struct ivl_server *s);

struct ivl_server_peer_info {
	uint16_t id;
	uint8_t state; /* enum ivl_peer_state */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	char name[IVL_NAME_LEN + 1];
	size_t queued; /* messages not yet sent */
};

struct ivl_server_stats {
	unsigned peers;
	uint64_t accepted, refused, dropped; /* dropped: misbehaving/slow */
	uint64_t messages_sent;
	unsigned fds_in_use;
};

/* Fill up to @max entries of the caller's @info (may be NULL with max 0),
 * ascending ID.  Returns the number of peers (which may exceed @max), or
 * -EINVAL for a NULL server.  The stats and region getters cannot fail;
 * the region stays the server's (valid until ivl_server_free()). */
int ivl_server_peers(const struct ivl_server *s, struct ivl_server_peer_info *info, size_t max);
void ivl_server_get_stats(const struct ivl_server *s, struct ivl_server_stats *st);
const struct ivl_region *ivl_server_region(const struct ivl_server *s);

/*
 * Live upgrade (docs/upgrade.md).  ivl_server_save() writes the whole state
 * (every peer's ID, socket, eventfds, hello and unsent messages; the
 * listener; the region, its name and the header copy; both locks; the
 * counters) into a new memfd, seals it, and clears FD_CLOEXEC on it and on
 * every fd the state names, so that an execve() keeps them all.  Pending
 * drops and flushes are done first.  Returns the memfd (the caller's), or
 * -errno with the server unchanged (-EINVAL, -ENOMEM, -EIO for a short
 * write, -errno of memfd_create/write/fcntl).  The server stays usable: if the exec does not happen,
 * ivl_server_save_abort() sets FD_CLOEXEC again and closes the memfd.
 *
 * ivl_server_restore() rebuilds a server, in the new program image, from
 * such a memfd (ownership taken).  The state is untrusted input: every
 * count, ID, index, length and fd (open, of the right type, named once, the
 * locks still ours) is checked; on any failure it returns -EINVAL (or
 * -ENOMEM, -errno), logs why, and removes no name.  Vectors, max_peers, raw
 * and the queue limits are the running server's (a warning says so if
 * @opts asks otherwise); the allow lists come from @opts.  Unsent messages
 * are sent from the first call on.  Peers see nothing: no leave, no join.
 */
int ivl_server_save(struct ivl_server *s);
void ivl_server_save_abort(struct ivl_server *s, int state_fd);
int ivl_server_restore(struct ivl_server **out, const struct ivl_server_opts *opts,
		       int state_fd);

/* Mark the header CLOSED, close every peer, remove the socket path (if the
 * server bound it) and the shm/file name (if it created it), free.  NULL is
 * a no-op. */
void ivl_server_free(struct ivl_server *s);

#ifdef __cplusplus
}
#endif
#endif
