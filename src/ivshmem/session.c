/* SPDX-License-Identifier: MIT */
/*
 * The peer side of the ivshmem server protocol (docs/protocol.md §1) as a pure
 * state machine: decoded messages in, events out, no I/O.
 *
 * Every message comes from the server, which we do not trust: anything out
 * of order or out of range kills the session, as QEMU's device does, and
 * every fd handed in is either passed on in an event or closed here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>

enum cs_state {
	CS_WANT_VERSION,
	CS_WANT_ID,
	CS_WANT_SHM,
	CS_RUNNING,
	CS_DEAD,
};

struct ivl_session {
	enum cs_state state;
	int error; /* the error that killed the session */
	int my_id; /* -1 until received */
	unsigned max_vectors;
	int welcomed;
	/*
	 * Vectors received per peer ID since it (re)joined, capped at
	 * max_vectors (<= 64, so a byte is enough); 0 means unknown.  Every
	 * ID is possible, so a flat table beats a map: 64 KiB, no allocation
	 * driven by the server.
	 */
	uint8_t vectors[IVL_MAX_PEER_ID + 1];
};

IVL_EXPORT int ivl_session_new(struct ivl_session **out, unsigned max_vectors)
{
	struct ivl_session *cs;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (max_vectors < 1 || max_vectors > IVL_MAX_VECTORS)
		return -EINVAL;
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	cs->state = CS_WANT_VERSION;
	cs->my_id = -1;
	cs->max_vectors = max_vectors;
	*out = cs;
	return 0;
}

IVL_EXPORT void ivl_session_free(struct ivl_session *cs)
{
	free(cs);
}

static int fail(struct ivl_session *cs, int fd, int err)
{
	ivl__close(fd);
	cs->state = CS_DEAD;
	cs->error = err;
	return err;
}

/* A peer ID with an fd: the next vector of that peer (maybe our own). */
static int on_vector(struct ivl_session *cs, uint16_t id, int fd, struct ivl_session_event *ev)
{
	unsigned have = cs->vectors[id];

	if (have >= cs->max_vectors) {
		/* More vectors than we were configured for: QEMU closes the
		 * extras and carries on, and so do we. */
		ivl__debug("ivshmem: peer %u: extra vector fd closed", id);
		ivl__close(fd);
		return 0;
	}
	cs->vectors[id] = (uint8_t)(have + 1);
	ev->type = (int)id == cs->my_id ? IVL_SESSION_OWN_VECTOR : IVL_SESSION_PEER_VECTOR;
	ev->peer = id;
	ev->vector = (uint16_t)have;
	ev->fd = fd;
	return 1;
}

/* A peer ID without an fd: that peer left. */
static int on_leave(struct ivl_session *cs, uint16_t id, struct ivl_session_event *ev)
{
	if ((int)id == cs->my_id) {
		ivl__warn("ivshmem: server announced our own departure");
		return fail(cs, -1, -EPROTO);
	}
	if (!cs->vectors[id]) {
		ivl__warn("ivshmem: leave of unknown peer %u", id);
		return fail(cs, -1, -EPROTO);
	}
	cs->vectors[id] = 0;
	ev->type = IVL_SESSION_PEER_LEFT;
	ev->peer = id;
	return 1;
}

/* The server said why it refused us (untrusted: only known reasons pass,
 * anything else is a plain refusal). */
static int refused(struct ivl_session *cs, uint32_t why)
{
	switch (why) {
	case EUSERS:  /* full: --max-peers, or no free ID */
	case EACCES:  /* --allow-uid / --allow-gid */
	case EMFILE:  /* the server is out of file descriptors */
	case ENOMEM:
		ivl__warn("ivshmem: the server refused this peer: %s", strerror((int)why));
		return fail(cs, -1, -(int)why);
	default:
		ivl__warn("ivshmem: the server refused this peer (reason %u)", why);
		return fail(cs, -1, -ECONNREFUSED);
	}
}

static int on_extension(struct ivl_session *cs, int64_t value, int fd,
			struct ivl_session_event *ev)
{
	uint32_t arg = IVL_EXT_ARG(value);

	if (fd >= 0) {
		ivl__warn("ivshmem: fd attached to an extension message");
		return fail(cs, fd, -EPROTO);
	}
	switch (IVL_EXT_OP(value)) {
	case IVL_EXT_WELCOME: {
		uint32_t vectors = arg & 0xffffu;

		if (cs->welcomed || vectors < 1 || vectors > IVL_MAX_VECTORS) {
			ivl__warn("ivshmem: bad or repeated welcome (vectors %u)", vectors);
			return fail(cs, -1, -EPROTO);
		}
		cs->welcomed = 1;
		ev->type = IVL_SESSION_WELCOME;
		ev->vectors = vectors;
		ev->features = arg >> 16;
		return 1;
	}
	case IVL_EXT_REFUSED:
		return refused(cs, arg);
	default:
		ivl__warn("ivshmem: unknown extension message %u", IVL_EXT_OP(value));
		return fail(cs, -1, -EPROTO);
	}
}

IVL_EXPORT int ivl_session_input(struct ivl_session *cs, struct ivl_msg *msg,
			    struct ivl_session_event *ev)
{
	int64_t v;
	int fd;

	if (!msg)
		return -EINVAL;
	fd = msg->fd;
	/* From here on the fd is ours, whatever happens. */
	msg->fd = -1;
	if (!cs || !ev) {
		ivl__close(fd);
		return -EINVAL;
	}
	v = msg->value;
	memset(ev, 0, sizeof(*ev));
	ev->type = IVL_SESSION_NONE;
	ev->fd = -1;

	switch (cs->state) {
	case CS_DEAD:
		ivl__close(fd);
		return cs->error;
	case CS_WANT_VERSION:
		if (v != IVL_PROTOCOL_VERSION) {
			ivl__warn("ivshmem: unsupported protocol version %lld", (long long)v);
			return fail(cs, fd, -EPROTONOSUPPORT);
		}
		if (fd >= 0)
			return fail(cs, fd, -EPROTO);
		cs->state = CS_WANT_ID;
		return 0;
	case CS_WANT_ID:
		if (IVL_EXT_IS(v) && v < IVL_MSG_SHM && IVL_EXT_OP(v) == IVL_EXT_REFUSED && fd < 0)
			return refused(cs, IVL_EXT_ARG(v));
		if (v < 0 || v > IVL_MAX_PEER_ID || fd >= 0) {
			ivl__warn("ivshmem: bad peer ID message %lld", (long long)v);
			return fail(cs, fd, -EPROTO);
		}
		cs->my_id = (int)v;
		cs->state = CS_WANT_SHM;
		ev->type = IVL_SESSION_ID;
		ev->peer = (uint16_t)v;
		return 1;
	case CS_WANT_SHM:
		if (v != IVL_MSG_SHM || fd < 0) {
			ivl__warn("ivshmem: expected the shared memory, got %lld%s", (long long)v,
				  fd < 0 ? " without fd" : "");
			return fail(cs, fd, -EPROTO);
		}
		cs->state = CS_RUNNING;
		ev->type = IVL_SESSION_SHM;
		ev->fd = fd;
		return 1;
	case CS_RUNNING:
		break;
	}

	if (v >= 0 && v <= IVL_MAX_PEER_ID) {
		if (fd >= 0)
			return on_vector(cs, (uint16_t)v, fd, ev);
		return on_leave(cs, (uint16_t)v, ev);
	}
	if (v < IVL_MSG_SHM && IVL_EXT_IS(v))
		return on_extension(cs, v, fd, ev);
	/* -1 again (a second shared memory), other negative values, or an ID
	 * beyond 65535: QEMU drops the connection for each of them. */
	ivl__warn("ivshmem: unexpected message %lld", (long long)v);
	return fail(cs, fd, -EPROTO);
}

IVL_EXPORT int ivl_session_id(const struct ivl_session *cs)
{
	return cs ? cs->my_id : -1;
}

IVL_EXPORT unsigned ivl_session_peer_vectors(const struct ivl_session *cs, uint16_t peer)
{
	return cs ? cs->vectors[peer] : 0;
}
