/* SPDX-License-Identifier: MIT */
/*
 * The ivshmem layer: the server <-> peer message codec, the peer-side
 * protocol state machine, the shared-memory header, and the server core.
 * Formats: <ivlink/proto.h>; normative text: docs/protocol.md.
 */
#ifndef IVLINK_IVSHMEM_H
#define IVLINK_IVSHMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ivlink/proto.h>
#include <ivlink/region.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- message codec ---------------------------------------------------- */

/* One decoded message.  fd is -1 when none was attached; otherwise the
 * holder of the struct owns it. */
struct ivl_msg {
	int64_t value;
	int fd;
};

/*
 * Send one message (and @fd if >= 0, which stays owned by the caller) with
 * one sendmsg().  Returns 0; -EAGAIN when the socket is full (nothing was
 * sent); -ETOOMANYREFS when the kernel's in-flight fd limit is hit (nothing
 * was sent); -EPIPE / -ECONNRESET / other -errno.  Never raises SIGPIPE.
 */
int ivl_msg_send(int sock, int64_t value, int fd);

/*
 * Stream reassembly.  Messages may arrive split; the fd of a message arrives
 * with one of its bytes.  Thread safety: none (one reader per socket).
 */
struct ivl_msg_reader {
	uint8_t buf[IVL_MSG_SIZE];
	size_t have; /* bytes of the current message so far */
	int fd;      /* fd received for the current message, or -1 */
};

void ivl_msg_reader_init(struct ivl_msg_reader *r);
/* Close any fd held for an incomplete message and start over. */
void ivl_msg_reader_reset(struct ivl_msg_reader *r);
/* How many bytes complete the current message (1..8). */
size_t ivl_msg_reader_want(const struct ivl_msg_reader *r);

/*
 * Feed @len bytes (1 <= len <= want) and the @nfds fds that arrived with
 * them.  Ownership of every fd passes to the reader at once.
 * Returns 1 when a message is complete (*out filled, its fd now owned by the
 * caller), 0 when more bytes are needed, -EINVAL for a bad length, -EPROTO
 * when a message would carry more than one fd (all of them closed).
 */
int ivl_msg_reader_feed(struct ivl_msg_reader *r, const void *data, size_t len,
			const int *fds, size_t nfds, struct ivl_msg *out);

/*
 * Read from a non-blocking socket with recvmsg(MSG_CMSG_CLOEXEC), reading
 * only what the current message needs, and feed the reader.
 * Returns 1 with *out filled; -EAGAIN when nothing more is available now;
 * -ECONNRESET on end of stream (-EPROTO if it ended inside a message);
 * -EPROTO for a bad fd attachment or truncated control data; other -errno.
 */
int ivl_msg_recv(int sock, struct ivl_msg_reader *r, struct ivl_msg *out);

/* ---- peer-side protocol state machine --------------------------------- */

enum ivl_cs_event_type {
	IVL_CS_NONE = 0,
	IVL_CS_ID,          /* .peer = my ID */
	IVL_CS_SHM,         /* .fd = shared-memory fd (now the caller's) */
	IVL_CS_PEER_VECTOR, /* .peer, .vector, .fd: an fd for ringing a peer */
	IVL_CS_OWN_VECTOR,  /* .vector, .fd: an fd of my own vector */
	IVL_CS_PEER_LEFT,   /* .peer left; its fds must be closed */
	IVL_CS_WELCOME,     /* ivlink server: .vectors, .features */
};

struct ivl_cs_event {
	enum ivl_cs_event_type type;
	uint16_t peer;
	uint16_t vector;
	int fd;
	uint32_t vectors;
	uint32_t features;
};

struct ivl_client_session;

/*
 * @max_vectors: how many vectors this peer keeps per peer (1..64); extra
 * fds are closed and ignored, as QEMU does.  Errors: -EINVAL, -ENOMEM.
 */
int ivl_cs_new(struct ivl_client_session **out, unsigned max_vectors);
void ivl_cs_free(struct ivl_client_session *cs);

/*
 * Validate one message against the protocol (version 0 first, then my ID,
 * then the shm fd exactly once, then peer notifications) and translate it.
 * Ownership of msg->fd passes to the session: it is handed on in ev->fd or
 * closed.  Returns 1 (ev filled), 0 (message consumed, no event: e.g. an
 * extra vector fd that was closed), or an error after which the session is
 * dead: -EPROTONOSUPPORT (version), -EPROTO (anything out of order or out of
 * range, or a leave for an unknown peer), -ECONNREFUSED (IVL_EXT_REFUSED).
 */
int ivl_cs_input(struct ivl_client_session *cs, struct ivl_msg *msg,
		 struct ivl_cs_event *ev);

/* -1 until the ID arrived. */
int ivl_cs_my_id(const struct ivl_client_session *cs);
/* Vectors received so far for @peer (own ID included), 0 if unknown. */
unsigned ivl_cs_peer_vectors(const struct ivl_client_session *cs, uint16_t peer);

/* ---- shared-memory header (§4) ---------------------------------------- */

/*
 * Format the ivlink header at the start of @base (@size bytes): zero the
 * header, fill in every field, set state READY last (release).
 * Errors: -EINVAL (vectors 0 or > 64, max_peers 0 or > 65536), -ENOSPC (the
 * header would not leave at least one page of application area).
 */
int ivl_shm_format(void *base, uint64_t size, uint32_t max_peers, uint32_t vectors,
		   uint64_t epoch, uint32_t features);

/*
 * Check an untrusted header (read with acquire on state): magic, version,
 * READY state, sizes consistent with @size, table inside the header, header
 * page aligned and smaller than the region.  Returns 0 and a validated copy
 * of the fixed fields in *copy (may be NULL), -ENOENT if no ivlink header is
 * there (raw region), -EAGAIN if still formatting, -ESHUTDOWN if CLOSED,
 * -EPROTO if it is present but inconsistent or of another version.
 */
int ivl_shm_validate(const void *base, uint64_t size, struct ivl_shm_header *copy);

/* The peer entry for @id, or NULL if out of the validated table. */
struct ivl_shm_peer *ivl_shm_peer(void *base, const struct ivl_shm_header *valid, uint32_t id);

/* ---- server core ------------------------------------------------------ */

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
 * -EADDRINUSE, a stale socket is removed.  An existing shm object gives
 * -EEXIST unless its header names a server process that is gone (stale) or
 * @force is set.  Errors: -EINVAL, -ENAMETOOLONG (socket path > 107
 * bytes), -EADDRINUSE, -EEXIST, region errors, -errno.
 */
int ivl_server_new(struct ivl_server **out, const struct ivl_server_opts *opts);

/* One pollable fd (an epoll fd): readable when process() has work. */
int ivl_server_get_fd(const struct ivl_server *s);

/*
 * Do all pending work without blocking: accept peers, send queued messages,
 * read hellos, detect departures.  A failing peer is dropped; the server and
 * the other peers go on.  Returns 0, or -errno for a failure of the server
 * itself (epoll broken), after which it should be freed.
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

/* Fill up to @max entries, ascending ID; returns the number of peers. */
int ivl_server_peers(const struct ivl_server *s, struct ivl_server_peer_info *info, size_t max);
void ivl_server_get_stats(const struct ivl_server *s, struct ivl_server_stats *st);
const struct ivl_region *ivl_server_region(const struct ivl_server *s);

/*
 * Live upgrade (docs/upgrade.md).  ivl_server_save() writes the whole state
 * (every peer's ID, socket, eventfds, hello and unsent messages; the
 * listener; the region, its name and the header copy; both locks; the
 * counters) into a new memfd, seals it, and clears FD_CLOEXEC on it and on
 * every fd the state names, so that an execve() keeps them all.  Pending
 * drops and flushes are done first.  Returns the memfd, or -errno with the
 * server unchanged.  The server stays usable: if the exec does not happen,
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

/* Raise RLIMIT_NOFILE's soft limit to the hard limit.  Returns the new soft
 * limit or -errno. */
long ivl_raise_nofile(void);

#ifdef __cplusplus
}
#endif
#endif
