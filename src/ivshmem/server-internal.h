/* SPDX-License-Identifier: MIT */
/*
 * Server core internals shared by server.c (set-up, event loop, admission)
 * and server-peer.c (per-peer queues, handshake, hello, departure).
 */
#ifndef IVL_IVSHMEM_SERVER_INTERNAL_H
#define IVL_IVSHMEM_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>

/*
 * A reference-counted fd.  Queued messages hold a reference on the fd they
 * will pass, so an eventfd of a peer that left stays open (and its number is
 * not reused) until every message naming it was sent or discarded.  This was
 * chosen over dup() per message: a join of a peer with N vectors would cost
 * N fds per connected peer while queued, which an fd-starved server cannot
 * afford.
 */
struct ivl__sfd {
	int fd;
	unsigned refs;
	uint32_t mark; /* server-state.c: index + 1 while saving, else 0 */
};

struct ivl__smsg {
	int64_t value;
	struct ivl__sfd *fd; /* NULL: no fd attached */
};

struct ivl__speer {
	uint16_t id;
	uint32_t serial; /* tells a reused ID's epoll events from stale ones */
	int sock;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	uint8_t state; /* enum ivl_peer_state, also kept when raw */

	struct ivl__sfd **vec; /* own vectors 0..nvec-1 */
	unsigned nvec;

	/* Output ring. */
	struct ivl__smsg *q;
	size_t qcap, qhead, qlen;
	size_t qlimit;
	size_t qfds;	  /* messages in the queue that carry an fd */
	size_t qfdlimit;
	size_t handshake_left; /* messages of the initial handshake not sent */
	bool want_out;	       /* EPOLLOUT armed */
	bool blocked;	       /* -ETOOMANYREFS: waiting for the retry timer */
	bool dirty;	       /* on the flush list */
	bool doomed;	       /* on the drop list */
	struct ivl__speer *next_dirty;
	struct ivl__speer *next_doomed;
	const char *doom_reason;

	/* Optional hello (struct ivl_wire_hello), read without blocking. */
	uint8_t hello[sizeof(struct ivl_wire_hello)];
	size_t hello_have;
	bool hello_done;
	char name[IVL_NAME_LEN + 1];
};

struct ivl_server {
	int epfd;
	int lfd;
	int tfd;	/* retry timer: -ETOOMANYREFS and paused accept */
	int reserve_fd; /* spare fd, given up to refuse a peer at EMFILE */
	char *sock_path;
	bool bound; /* we created sock_path */
	bool timer_armed;
	bool listen_paused;

	struct ivl_region *region;
	int region_lock; /* own description of the region, OFD-locked */
	int sock_lock;	 /* "<socket>.lock", OFD-locked */
	char *sock_lock_path;
	char *reused_name; /* shm name / path we took over (unlinked on free) */
	enum ivl_region_kind reused_kind;
	bool reused_forced; /* --force, not stale */
	bool raw;
	bool region_lost; /* shrunk under us: logged once */
	struct ivl_shm_header valid; /* validated copy after formatting */
	struct ivl__sfd *shm;

	unsigned vectors;
	unsigned max_peers;
	uint32_t id_limit; /* IDs are 0..id_limit-1 */
	uint32_t next_id;  /* round-robin cursor */
	uint32_t serial;
	struct ivl__speer **peers; /* indexed by ID */
	unsigned npeers;
	size_t max_queue;
	size_t max_queue_fds;

	uid_t *allow_uids;
	size_t n_allow_uids;
	gid_t *allow_gids;
	size_t n_allow_gids;

	struct ivl__speer *dirty;
	struct ivl__speer *doomed;
	unsigned nblocked;

	uint64_t accepted, refused, dropped, messages_sent;
	unsigned nfds; /* fds owned by the server, shared ones included */
	uint32_t generation; /* live upgrades so far (server-state.c) */
};

/* epoll_event.data.u64: the kind in the top byte; peers add serial and ID. */
#define IVL__EV_LISTEN 1ull
#define IVL__EV_TIMER 2ull
#define IVL__EV_PEER 3ull
#define IVL__EV_KIND(u) ((u) >> 56)
#define IVL__EV_PEER_DATA(serial, id)                                                              \
	((IVL__EV_PEER << 56) | ((uint64_t)(uint32_t)(serial) << 16) | (uint16_t)(id))

/* server.c: a server with its options copied and its epoll fd, timer and
 * reserve fd made, nothing else (-errno; freed on error); then watch its
 * listener and timer. */
int ivl__server_alloc(struct ivl_server **out, const struct ivl_server_opts *o);
int ivl__server_watch(struct ivl_server *s);

/* server-region.c: create or take over the region; write the header. */
int ivl__server_open_region(struct ivl_server *s, const struct ivl_server_opts *o);
int ivl__server_format(struct ivl_server *s);
int ivl__server_lock_region(struct ivl_server *s);
/* Zero the whole region (a stale object taken over starts as a new one). */
void ivl__server_zero(struct ivl_server *s);

/* server-peer.c */
struct ivl__sfd *ivl__sfd_new(struct ivl_server *s, int fd);
void ivl__sfd_unref(struct ivl_server *s, struct ivl__sfd *f);
int ivl__peer_join(struct ivl_server *s, int sock, pid_t pid, uid_t uid, gid_t gid);
void ivl__peer_event(struct ivl_server *s, uint64_t data, uint32_t events);
void ivl__peer_mark_dirty(struct ivl_server *s, struct ivl__speer *p);
void ivl__peer_doom(struct ivl_server *s, struct ivl__speer *p, const char *why);
void ivl__peer_free(struct ivl_server *s, struct ivl__speer *p);
/* Flush dirty peers and drop doomed ones until nothing is left to do. */
void ivl__server_settle(struct ivl_server *s);
/* The retry timer fired: unblock peers stuck on -ETOOMANYREFS. */
void ivl__server_unblock(struct ivl_server *s);
/* Check the first @have bytes of a hello (untrusted).  Returns 0 (fine so
 * far, incomplete), 1 (complete and valid; @name filled, sanitized),
 * -EPROTO (not a hello), -EPROTONOSUPPORT (unknown version or size). */
int ivl__hello_check(const void *buf, size_t have, char name[IVL_NAME_LEN + 1]);
void ivl__server_arm_timer(struct ivl_server *s, unsigned ms);
void ivl__peer_set_state(struct ivl_server *s, struct ivl__speer *p, uint8_t state);

#endif
