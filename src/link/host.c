/* SPDX-License-Identifier: MIT */
/*
 * The host backend: this process is a peer of an ivshmem server
 * (ivlink-server, or QEMU's ivshmem-server), docs/protocol.md §1.
 *
 * The server is not trusted: its messages go through the client session
 * (which validates order and ranges), its region through
 * ivl_region_from_fd() and ivl_shm_validate(), and every failure ends in a
 * clean error (during the handshake) or IVL_LINK_DOWN (afterwards).
 *
 * QEMU's server drops a peer that writes to its socket, so nothing is ever
 * written unless the region carries an ivlink header that asks for a hello.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>
#include <ivlink/region.h>

#include "core/internal.h"
#include "link/link-internal.h"

#define DEFAULT_SOCKET "/tmp/ivshmem_socket"
#define DEFAULT_TIMEOUT_MS 5000
/* Messages read per process() call: a flooding server cannot keep us in
 * there forever; the socket stays readable, so nothing is lost. */
#define INPUT_BUDGET 1024
/* See raw_end(). */
#define RAW_GRACE_MS 20

struct host_link {
	struct ivl_link l;
	int sock;
	struct ivl_msg_reader rd;
	struct ivl_session *cs;
	struct ivl_region *region;
	struct ivl__peer_table pt;
	unsigned nown;
	unsigned peer_vecs; /* most vectors seen for another peer */
	bool hello_sent;
	bool welcomed;
	bool lost_logged;
};

static struct host_link *to_host(const struct ivl_link *l)
{
	return (struct host_link *)(uintptr_t)l;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left before @deadline (-1: none) for poll(); 0 when past. */
static int left_ms(int64_t deadline)
{
	int64_t d;

	if (deadline < 0)
		return -1;
	d = deadline - now_ms();
	if (d <= 0)
		return 0;
	return d > INT32_MAX ? INT32_MAX : (int)d;
}

/* Wait for @events on the socket; -ETIMEDOUT past the deadline. */
static int wait_sock(int sock, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = sock, .events = events};
		int t = left_ms(deadline), r;

		if (t == 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, t);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int connect_to(const char *path, int64_t deadline)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	int sock, ret;

	if (!len)
		return -EINVAL;
	if (len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, len + 1);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (sock < 0)
		return -errno;
	for (;;) {
		if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return sock;
		ret = -errno;
		if (ret == -EINTR)
			continue;
		if (ret == -EAGAIN) {
			/* The listen backlog is full: the server is busy,
			 * not absent.  Retry until the deadline. */
			if (left_ms(deadline) == 0) {
				ret = -ETIMEDOUT;
				break;
			}
			nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
			continue;
		}
		if (ret == -EINPROGRESS) {
			int err = 0;
			socklen_t elen = sizeof(err);

			ret = wait_sock(sock, POLLOUT, deadline);
			if (ret == 0 && getsockopt(sock, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
				ret = -errno;
			else if (ret == 0)
				ret = -err;
			if (ret == 0)
				return sock;
		}
		break;
	}
	ivl__close(sock);
	return ret;
}

static int send_hello(struct host_link *h, const char *name, int64_t deadline)
{
	struct ivl_wire_hello hello = {
	    .magic = IVL_HELLO_MAGIC,
	    .version = IVL_HELLO_VERSION,
	    .size = sizeof(hello),
	    .features = IVL_FEAT_HELLO | IVL_FEAT_NAMES,
	};
	size_t off = 0;

	if (name)
		memcpy(hello.name, name, strnlen(name, IVL_NAME_LEN));
	while (off < sizeof(hello)) {
		ssize_t n = send(h->sock, (char *)&hello + off, sizeof(hello) - off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int r = wait_sock(h->sock, POLLOUT, deadline);
			if (r < 0)
				return r;
			continue;
		}
		return n < 0 ? -errno : -EIO;
	}
	h->hello_sent = true;
	return 0;
}

/* The shm fd arrived: map it and look for an ivlink header. */
static int on_shm(struct host_link *h, int fd, const struct ivl_link_host_opts *o, int64_t deadline)
{
	int ret;

	if (h->region) { /* the session already refuses a second one */
		ivl__close(fd);
		return -EPROTO;
	}
	ret = ivl_region_from_fd(&h->region, fd);
	if (ret < 0) {
		ivl__warn("link: unusable shared memory from the server (%d)", ret);
		return ret == -EINVAL ? -EPROTO : ret;
	}
	h->l.base = ivl_region_base(h->region);
	h->l.size = ivl_region_size(h->region);
	ret = ivl_shm_validate(h->l.base, h->l.size, &h->l.hdr);
	switch (ret) {
	case 0:
		/* Liveness from the lock, never from the header's bytes: an
		 * ivlink-server that died left its header behind, and the
		 * server we talk to now (QEMU's, say) would drop us for a
		 * hello.  Such a header is not ours to trust. */
		if (ivl__fd_locked(ivl_region_fd(h->region)) == 0) {
			ivl__info("link: the region's ivlink header is stale (no ivlink server "
				  "holds it): using it as a raw region");
			return 0;
		}
		h->l.has_header = true;
		if ((h->l.hdr.features & IVL_FEAT_HELLO) && !o->no_hello)
			return send_hello(h, o->name, deadline);
		return 0;
	case -ENOENT:
		return 0; /* a raw region (QEMU's server, --raw) */
	case -ESHUTDOWN:
		return -ECONNRESET;
	default:
		/* Present but inconsistent, or still formatting although the
		 * server formats before it accepts anybody. */
		ivl__warn("link: bad shared-memory header (%d)", ret);
		return -EPROTO;
	}
}

/* Apply one session event after the handshake-specific parts. */
static int apply(struct host_link *h, const struct ivl_session_event *ev, bool handshake)
{
	int r;

	switch (ev->type) {
	case IVL_SESSION_ID:
		h->l.id = ev->peer;
		return 0;
	case IVL_SESSION_PEER_VECTOR:
		r = ivl__pt_add(&h->pt, ev->peer, ev->vector, ev->fd);
		if (r < 0)
			return r;
		if ((unsigned)r > h->peer_vecs)
			h->peer_vecs = (unsigned)r;
		/* Reported once all its vectors (as many as mine) are in;
		 * initial peers are reported when the handshake is over. */
		if (!handshake && ivl__pt_mark_joined(&h->pt, ev->peer, h->l.vectors) > 0)
			return ivl__evq_push(&h->l.q, IVL_LINK_JOIN, ev->peer, 0, 0);
		return 0;
	case IVL_SESSION_OWN_VECTOR:
		/* The table owns the fd (a self-ring goes through it too);
		 * the link watches it. */
		r = ivl__pt_add(&h->pt, ev->peer, ev->vector, ev->fd);
		if (r < 0)
			return r;
		r = ivl__link_add_own(&h->l, ev->vector, ev->fd);
		if (r < 0)
			return r;
		h->nown = (unsigned)ev->vector + 1;
		if (!handshake && h->nown > h->l.vectors)
			h->l.vectors = h->nown; /* a late own vector (raw server) */
		return 0;
	case IVL_SESSION_PEER_LEFT:
		r = ivl__pt_remove(&h->pt, ev->peer);
		if (r > 0)
			return ivl__evq_push(&h->l.q, IVL_LINK_LEAVE, ev->peer, 0, 0);
		return 0;
	case IVL_SESSION_WELCOME:
		if (!h->hello_sent || !handshake) {
			ivl__warn("link: unsolicited welcome from the server");
			return -EPROTO;
		}
		h->welcomed = true;
		return 0;
	case IVL_SESSION_SHM: /* handled by the caller; the session allows one */
	case IVL_SESSION_NONE:
		return 0;
	}
	return 0;
}

static void report_initial(void *ctx, uint16_t id, struct ivl__peer *p)
{
	struct host_link *h = ctx;

	/* A peer still arriving (it joined while we did) is reported by
	 * apply() once its last vector is in. */
	if ((int)id == h->l.id || p->joined || !p->nfds || p->nfds < h->l.vectors)
		return;
	p->joined = true;
	ivl__evq_push(&h->l.q, IVL_LINK_JOIN, id, 0, 0);
}

/*
 * Nothing to read right now.  Without a hello no welcome will come: QEMU's
 * server sends my vectors last, one message each, so the handshake is over
 * once mine are in and the socket is quiet.  Other peers tell how many
 * vectors to expect; alone, a short grace lets a burst in flight land.
 * Vectors arriving even later are still taken by process().
 * Returns 1 (over), 0 (more to read), or -errno.
 */
static int raw_end(struct host_link *h, int64_t deadline)
{
	int64_t grace;
	int r;

	if (h->hello_sent || !h->nown || h->nown < h->peer_vecs)
		return wait_sock(h->sock, POLLIN, deadline);
	if (h->peer_vecs)
		return 1;
	grace = now_ms() + RAW_GRACE_MS;
	if (deadline >= 0 && deadline < grace)
		grace = deadline;
	r = wait_sock(h->sock, POLLIN, grace);
	return r == -ETIMEDOUT ? 1 : r;
}

static int handshake(struct host_link *h, const struct ivl_link_host_opts *o, int64_t deadline)
{
	struct ivl_msg msg;
	struct ivl_session_event ev;
	int r;

	for (unsigned n = 1;; n++) {
		/* A server that never pauses must not keep us past the
		 * deadline either. */
		if (deadline >= 0 && n % 64 == 0 && now_ms() > deadline)
			return -ETIMEDOUT;
		r = ivl_msg_recv(h->sock, &h->rd, &msg);
		if (r == -EAGAIN) {
			r = raw_end(h, deadline);
			if (r > 0)
				break;
			if (r < 0)
				return r;
			continue;
		}
		if (r < 0)
			return r;
		r = ivl_session_input(h->cs, &msg, &ev);
		if (r < 0)
			/* A refusal with a known reason keeps it (-EUSERS,
			 * -EACCES, -EMFILE, -ENOMEM); any other refusal is
			 * a closed connection to our callers. */
			return r == -ECONNREFUSED ? -ECONNRESET : r;
		if (r == 0)
			continue;
		if (ev.type == IVL_SESSION_SHM)
			r = on_shm(h, ev.fd, o, deadline);
		else
			r = apply(h, &ev, true);
		if (r < 0)
			return r;
		if (h->welcomed)
			break;
	}
	if (!h->nown || h->l.id < 0 || !h->region) {
		ivl__warn("link: handshake ended without my vectors");
		return -EPROTO;
	}
	h->l.vectors = h->nown;
	ivl__pt_foreach(&h->pt, report_initial, h);
	return 0;
}

/* Someone shrank the region under us (see ivl_region_check()): say it
 * once; doorbells still ring, but the shared memory is gone. */
static int region_lost(struct host_link *h)
{
	if (!h->region || ivl_region_check(h->region) == 0)
		return 0;
	if (!h->lost_logged) {
		ivl__warn("link: the shared memory was shrunk by another process; "
			  "its lost pages read as zeros here");
		h->lost_logged = true;
	}
	return -EIO;
}

static void host_input(struct ivl_link *l)
{
	struct host_link *h = to_host(l);
	struct ivl_msg msg;
	struct ivl_session_event ev;
	int r = 0;

	if (h->sock < 0)
		return;
	region_lost(h);
	for (int i = 0; i < INPUT_BUDGET; i++) {
		r = ivl_msg_recv(h->sock, &h->rd, &msg);
		if (r == -EAGAIN)
			return;
		if (r < 0)
			break;
		r = ivl_session_input(h->cs, &msg, &ev);
		if (r < 0)
			break;
		if (r == 0)
			continue;
		if (ev.type == IVL_SESSION_SHM || ev.type == IVL_SESSION_ID) {
			ivl__close(ev.fd);
			r = -EPROTO;
			break;
		}
		r = apply(h, &ev, false);
		if (r < 0)
			break;
	}
	if (r >= 0)
		return;
	if (r == -ECONNRESET)
		ivl__info("link: the server closed the connection");
	else
		ivl__warn("link: connection to the server lost (%d)", r);
	/* Stop watching: a dead socket would keep the link's fd readable. */
	ivl__link_unwatch(l, h->sock);
	h->sock = ivl__close(h->sock);
	ivl__link_set_down(l);
}

static int host_ring(struct ivl_link *l, uint16_t peer, uint16_t vector)
{
	int ret = ivl__pt_ring(&to_host(l)->pt, peer, vector);

	return ret < 0 ? ret : region_lost(to_host(l));
}

static int host_peers(const struct ivl_link *l, uint16_t *ids, size_t max)
{
	return ivl__pt_list(&to_host(l)->pt, l->id, ids, max);
}

static unsigned host_peer_vectors(const struct ivl_link *l, uint16_t peer)
{
	return ivl__pt_vectors(&to_host(l)->pt, peer);
}

static void host_destroy(struct ivl_link *l)
{
	struct host_link *h = to_host(l);

	ivl__close(h->sock);
	ivl_msg_reader_reset(&h->rd);
	ivl_session_free(h->cs);
	ivl__pt_fini(&h->pt);
	ivl_region_free(h->region);
	ivl__link_fini(l);
	free(h);
}

static const struct ivl__link_ops host_ops = {
    .name = "host",
    .ring = host_ring,
    .peers = host_peers,
    .peer_vectors = host_peer_vectors,
    .input = host_input,
    .destroy = host_destroy,
};

IVL_EXPORT int ivl_link_host_new(struct ivl_link **out, const struct ivl_link_host_opts *opts)
{
	static const struct ivl_link_host_opts defaults;
	const struct ivl_link_host_opts *o = opts ? opts : &defaults;
	struct host_link *h;
	int64_t deadline;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (o->vectors > IVL_MAX_VECTORS || o->timeout_ms < -1)
		return -EINVAL;
	deadline = o->timeout_ms < 0
		       ? -1
		       : now_ms() + (o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS);

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->sock = -1;
	ivl_msg_reader_init(&h->rd);
	ret = ivl__pt_init(&h->pt);
	if (ret < 0) {
		free(h);
		return ret;
	}
	ret = ivl__link_init(&h->l, &host_ops);
	if (ret < 0) {
		ivl__pt_fini(&h->pt);
		free(h);
		return ret;
	}
	ret = ivl_session_new(&h->cs, o->vectors ? o->vectors : IVL_MAX_VECTORS);
	if (ret < 0)
		goto fail;
	ret = connect_to(o->socket_path ? o->socket_path : DEFAULT_SOCKET, deadline);
	if (ret < 0)
		goto fail;
	h->sock = ret;
	ret = handshake(h, o, deadline);
	if (ret < 0)
		goto fail;
	ret = ivl__link_watch(&h->l, h->sock, IVL__TAG_INPUT);
	if (ret < 0)
		goto fail;
	ivl__debug("link: peer %d of %s, %u vectors, %s region of %llu bytes", h->l.id,
		   o->socket_path ? o->socket_path : DEFAULT_SOCKET, h->l.vectors,
		   h->l.has_header ? "ivlink" : "raw", (unsigned long long)h->l.size);
	*out = &h->l;
	return 0;
fail:
	host_destroy(&h->l);
	return ret;
}
