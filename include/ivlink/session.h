/* SPDX-License-Identifier: MIT */
/*
 * The peer side of the ivshmem protocol as a pure state machine: messages
 * in (<ivlink/msg.h>), validated events out.  No I/O; the fuzz target of
 * the peer side.  Normative text: docs/protocol.md §1-§2.
 * Thread safety: one session is used by one thread at a time.
 */
#ifndef IVLINK_SESSION_H
#define IVLINK_SESSION_H

#include <stdint.h>

#include <ivlink/msg.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ivl_session_event_type {
	IVL_SESSION_NONE = 0,
	IVL_SESSION_ID,          /* .peer = my ID */
	IVL_SESSION_SHM,         /* .fd = shared-memory fd (now the caller's) */
	IVL_SESSION_PEER_VECTOR, /* .peer, .vector, .fd: an fd for ringing a peer */
	IVL_SESSION_OWN_VECTOR,  /* .vector, .fd: an fd of my own vector */
	IVL_SESSION_PEER_LEFT,   /* .peer left; its fds must be closed */
	IVL_SESSION_WELCOME,     /* ivlink server: .vectors, .features */
};

struct ivl_session_event {
	enum ivl_session_event_type type;
	uint16_t peer;
	uint16_t vector;
	int fd;
	uint32_t vectors;
	uint32_t features;
};

struct ivl_session;

/*
 * @max_vectors: how many vectors this peer keeps per peer (1..64); extra
 * fds are closed and ignored, as QEMU does.  Errors: -EINVAL (NULL @out,
 * max_vectors out of range), -ENOMEM.  *out is the caller's: free it with
 * ivl_session_free().
 */
int ivl_session_new(struct ivl_session **out, unsigned max_vectors);
/* Free the session and close every fd it still holds.  NULL is a no-op. */
void ivl_session_free(struct ivl_session *cs);

/*
 * Validate one message against the protocol (version 0 first, then my ID,
 * then the shm fd exactly once, then peer notifications) and translate it.
 * Ownership of msg->fd passes to the session: it is handed on in ev->fd or
 * closed.  Returns 1 (ev filled), 0 (message consumed, no event: e.g. an
 * extra vector fd that was closed), or an error after which the session is
 * dead: -EPROTONOSUPPORT (version), -EPROTO (anything out of order or out of
 * range, or a leave for an unknown peer), -ECONNREFUSED (IVL_EXT_REFUSED),
 * -EINVAL (NULL argument; msg->fd is closed all the same).
 */
int ivl_session_input(struct ivl_session *cs, struct ivl_msg *msg,
		 struct ivl_session_event *ev);

/* Returns my ID (0..65535), or -1 until the ID arrived. */
int ivl_session_id(const struct ivl_session *cs);
/* Vectors received so far for @peer (own ID included), 0 if unknown. */
unsigned ivl_session_peer_vectors(const struct ivl_session *cs, uint16_t peer);

#ifdef __cplusplus
}
#endif
#endif
