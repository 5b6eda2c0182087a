/* SPDX-License-Identifier: MIT */
/*
 * Server side of one peer: its eventfds, the handshake of PROTOCOLS.md §1,
 * the output queue that keeps a slow reader from stalling the server, the
 * optional ivlink hello, and departure.
 *
 * Drops never recurse: a peer that must go is put on the drop list
 * ("doomed") and removed by ivl__server_settle(), whose leave announcements
 * may doom further peers (a full queue), which the same loop then removes.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>

#include "core/internal.h"
#include "ivshmem/server-internal.h"

struct ivl__sfd *ivl__sfd_new(struct ivl_server *s, int fd)
{
	struct ivl__sfd *f = malloc(sizeof(*f));

	if (!f)
		return NULL;
	f->fd = fd;
	f->refs = 1;
	f->mark = 0;
	s->nfds++;
	return f;
}

static struct ivl__sfd *sfd_ref(struct ivl__sfd *f)
{
	if (f)
		f->refs++;
	return f;
}

void ivl__sfd_unref(struct ivl_server *s, struct ivl__sfd *f)
{
	if (!f || --f->refs)
		return;
	ivl__close(f->fd);
	s->nfds--;
	free(f);
}

static struct ivl_shm_peer *shm_entry(struct ivl_server *s, uint16_t id)
{
	if (s->raw)
		return NULL;
	return ivl_shm_peer(ivl_region_base(s->region), &s->valid, id);
}

void ivl__peer_set_state(struct ivl_server *s, struct ivl__speer *p, uint8_t state)
{
	struct ivl_shm_peer *e = shm_entry(s, p->id);

	p->state = state;
	/* Release: a reader that sees the new state (acquire load of
	 * ivl_shm_peer.state in the link layer) also sees the fields written
	 * before it (vectors, pid, uid, generation, cleared bits). */
	if (e)
		__atomic_store_n(&e->state, state, __ATOMIC_RELEASE);
}

static void header_join(struct ivl_server *s, struct ivl__speer *p)
{
	struct ivl_shm_peer *e = shm_entry(s, p->id);

	if (!e)
		return;
	/* The entry is ABSENT (its previous occupant finished leaving), so
	 * readers ignore the fields until JOINED is published below. */
	e->vectors = p->nvec;
	e->pid = (uint32_t)p->pid;
	e->uid = (uint32_t)p->uid;
	memset(e->name, 0, sizeof(e->name));
	__atomic_store_n(&e->pending, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->waiting, 0, __ATOMIC_RELAXED);
	__atomic_fetch_add(&e->generation, 1, __ATOMIC_RELAXED);
	ivl__peer_set_state(s, p, IVL_PEER_JOINED);
}

void ivl__peer_mark_dirty(struct ivl_server *s, struct ivl__speer *p)
{
	if (p->dirty || p->doomed)
		return;
	p->dirty = true;
	p->next_dirty = s->dirty;
	s->dirty = p;
}

void ivl__peer_doom(struct ivl_server *s, struct ivl__speer *p, const char *why)
{
	if (p->doomed)
		return;
	p->doomed = true;
	p->doom_reason = why;
	p->next_doomed = s->doomed;
	s->doomed = p;
}

/* Queue entries a peer keeps allocated once its queue is empty. */
#define QUEUE_KEEP 64

/* Queue one message, taking a reference on @f.  A peer whose queue is full
 * is doomed instead: it is not reading, and the server must not grow
 * without bound on its behalf. */
static void enqueue(struct ivl_server *s, struct ivl__speer *p, int64_t value, struct ivl__sfd *f)
{
	if (p->doomed)
		return;
	if (p->qlen >= p->qlimit) {
		ivl__warn("peer %u (pid %ld%s%s): %zu messages queued and not read: dropping it",
			  p->id, (long)p->pid, p->name[0] ? ", " : "", p->name, p->qlen);
		s->dropped++;
		ivl__peer_doom(s, p, "output queue full");
		return;
	}
	if (f && p->qfds >= p->qfdlimit) {
		ivl__warn("peer %u (pid %ld%s%s): %zu fds queued and not read: dropping it", p->id,
			  (long)p->pid, p->name[0] ? ", " : "", p->name, p->qfds);
		s->dropped++;
		ivl__peer_doom(s, p, "fd budget exceeded");
		return;
	}
	if (p->qlen == p->qcap) {
		size_t ncap = p->qcap ? p->qcap * 2 : 16, i;
		struct ivl__smsg *nq;

		if (ncap > p->qlimit)
			ncap = p->qlimit;
		nq = calloc(ncap, sizeof(*nq));
		if (!nq) {
			ivl__warn("peer %u: out of memory for its queue: dropping it", p->id);
			s->dropped++;
			ivl__peer_doom(s, p, "out of memory");
			return;
		}
		for (i = 0; i < p->qlen; i++)
			nq[i] = p->q[(p->qhead + i) % p->qcap];
		free(p->q);
		p->q = nq;
		p->qcap = ncap;
		p->qhead = 0;
	}
	p->q[(p->qhead + p->qlen) % p->qcap] = (struct ivl__smsg){value, sfd_ref(f)};
	p->qlen++;
	p->qfds += f != NULL;
	ivl__peer_mark_dirty(s, p);
}

static int set_events(struct ivl_server *s, struct ivl__speer *p, bool out)
{
	struct epoll_event ev = {
	    .events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0),
	    .data.u64 = IVL__EV_PEER_DATA(p->serial, p->id),
	};

	if (p->want_out == out)
		return 0;
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, p->sock, &ev) < 0)
		return -errno;
	p->want_out = out;
	return 0;
}

void ivl__server_arm_timer(struct ivl_server *s, unsigned ms)
{
	struct itimerspec it = {.it_value = {ms / 1000, (long)(ms % 1000) * 1000000}};

	if (s->timer_armed)
		return;
	if (timerfd_settime(s->tfd, 0, &it, NULL) == 0)
		s->timer_armed = true;
	else
		ivl__err("cannot arm the retry timer: %s", strerror(errno));
}

/* Hand queued messages to the kernel until the socket is full. */
static void flush(struct ivl_server *s, struct ivl__speer *p)
{
	while (p->qlen && !p->blocked && !p->doomed) {
		struct ivl__smsg *m = &p->q[p->qhead];
		int ret = ivl_msg_send(p->sock, m->value, m->fd ? m->fd->fd : -1);

		if (ret == -EAGAIN) {
			if (set_events(s, p, true) < 0)
				ivl__peer_doom(s, p, "epoll failure");
			return;
		}
		if (ret == -ETOOMANYREFS) {
			/* The sender's in-flight fd budget is shared by all
			 * peers and recovers as they read: retry later. */
			ivl__debug("peer %u: in-flight fd limit reached, retrying", p->id);
			p->blocked = true;
			s->nblocked++;
			ivl__server_arm_timer(s, 20);
			return;
		}
		if (ret < 0) {
			ivl__peer_doom(s, p,
				       ret == -EPIPE || ret == -ECONNRESET ? NULL : "send failed");
			return;
		}
		p->qfds -= m->fd != NULL;
		ivl__sfd_unref(s, m->fd);
		m->fd = NULL;
		p->qhead = (p->qhead + 1) % p->qcap;
		p->qlen--;
		s->messages_sent++;
		if (p->handshake_left && --p->handshake_left == 0)
			ivl__peer_set_state(s, p, IVL_PEER_READY);
	}
	if (p->qlen)
		return;
	/* The handshake of the k-th peer queues ~2kN messages: give that
	 * memory back once it is sent, or every peer would keep O(k) bytes
	 * and the server O(k^2) (bench_admission showed 42 MiB at 1000 x 4). */
	if (p->qcap > QUEUE_KEEP) {
		free(p->q);
		p->q = NULL;
		p->qcap = 0;
		p->qhead = 0;
	}
	if (set_events(s, p, false) < 0)
		ivl__peer_doom(s, p, "epoll failure");
}

static struct ivl__speer *lookup(struct ivl_server *s, uint64_t data)
{
	uint32_t id = (uint16_t)data;
	uint32_t serial = (uint32_t)(data >> 16);
	struct ivl__speer *p;

	if (id >= s->id_limit)
		return NULL;
	p = s->peers[id];
	return p && p->serial == serial ? p : NULL;
}

int ivl__peer_join(struct ivl_server *s, int sock, pid_t pid, uid_t uid, gid_t gid)
{
	struct ivl__speer *p;
	struct epoll_event ev;
	uint32_t id, i;
	unsigned v;
	size_t hs;

	/* Round-robin after the last assigned ID: a departed peer's ID is
	 * reused as late as possible, so late messages about it (and guests
	 * that cached it) are unlikely to hit a newcomer. */
	for (i = 0; i < s->id_limit; i++) {
		id = (s->next_id + i) % s->id_limit;
		if (!s->peers[id])
			break;
	}
	if (i == s->id_limit) {
		ivl__warn("refusing peer pid %ld: no free peer ID", (long)pid);
		return -EUSERS;
	}
	if (!(p = calloc(1, sizeof(*p))) || !(p->vec = calloc(s->vectors, sizeof(*p->vec)))) {
		free(p);
		return -ENOMEM;
	}
	p->id = (uint16_t)id;
	p->serial = ++s->serial;
	p->sock = -1;
	p->pid = pid;
	p->uid = uid;
	p->gid = gid;
	for (v = 0; v < s->vectors; v++) {
		int fd = ivl_eventfd_new();

		if (fd < 0) {
			ivl__warn("refusing peer pid %ld: cannot create eventfd: %s", (long)pid,
				  strerror(-fd));
			ivl__peer_free(s, p);
			return fd;
		}
		if (!(p->vec[v] = ivl__sfd_new(s, fd))) {
			ivl__close(fd);
			ivl__peer_free(s, p);
			return -ENOMEM;
		}
		p->nvec++;
	}
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.u64 = IVL__EV_PEER_DATA(p->serial, p->id);
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, sock, &ev) < 0) {
		int err = -errno;
		ivl__warn("refusing peer pid %ld: epoll: %s", (long)pid, strerror(errno));
		ivl__peer_free(s, p);
		return err;
	}
	p->sock = sock;
	s->nfds++;

	/* The handshake may not count against max_queue: its length grows
	 * with the number of peers. */
	hs = 3 + (size_t)s->vectors * (s->npeers + 1);
	p->qlimit = hs + s->max_queue;
	p->qfdlimit = 1 + (size_t)s->vectors * (s->npeers + 1) + s->max_queue_fds;
	p->handshake_left = hs;
	s->peers[id] = p;
	s->npeers++;
	s->next_id = (id + 1) % s->id_limit;
	header_join(s, p);

	enqueue(s, p, IVL_PROTOCOL_VERSION, NULL);
	enqueue(s, p, id, NULL);
	enqueue(s, p, IVL_MSG_SHM, s->shm);
	for (i = 0; i < s->id_limit; i++) {
		struct ivl__speer *o = s->peers[i];

		if (!o || o == p)
			continue;
		for (v = 0; v < o->nvec; v++)
			enqueue(s, p, o->id, o->vec[v]);
		for (v = 0; v < p->nvec; v++)
			enqueue(s, o, id, p->vec[v]);
	}
	for (v = 0; v < p->nvec; v++)
		enqueue(s, p, id, p->vec[v]);
	s->accepted++;
	ivl__info("peer %u joined (pid %ld, uid %ld, %u vectors)", id, (long)pid, (long)uid,
		  p->nvec);
	return 0;
}

/* Detach a peer that is no longer in the table and release everything. */
void ivl__peer_free(struct ivl_server *s, struct ivl__speer *p)
{
	unsigned v;

	if (!p)
		return;
	if (p->sock >= 0) {
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, p->sock, NULL);
		ivl__close(p->sock);
		s->nfds--;
	}
	while (p->qlen) {
		ivl__sfd_unref(s, p->q[p->qhead].fd);
		p->qhead = (p->qhead + 1) % p->qcap;
		p->qlen--;
	}
	free(p->q);
	for (v = 0; v < p->nvec; v++)
		ivl__sfd_unref(s, p->vec[v]);
	free(p->vec);
	if (p->blocked)
		s->nblocked--;
	free(p);
}

static bool is_vector_of(const struct ivl__speer *p, const struct ivl__sfd *f)
{
	unsigned v;

	for (v = 0; f && v < p->nvec; v++)
		if (p->vec[v] == f)
			return true;
	return false;
}

/*
 * Remove from @o's queue, not yet sent, every message that passes one of
 * @gone's eventfds.  Returns how many were removed: all of @gone's vectors
 * means @o never heard of @gone, so its departure need not be announced
 * either.  No queue keeps an fd of a peer that left (issue: a peer that
 * never reads pinned the server's fds until nobody could join).
 */
static unsigned cancel_join(struct ivl_server *s, struct ivl__speer *o,
			    const struct ivl__speer *gone)
{
	size_t i, kept = 0, hs = o->handshake_left;
	unsigned removed = 0;

	if (!o->qfds)
		return 0;
	for (i = 0; i < o->qlen; i++) {
		struct ivl__smsg *m = &o->q[(o->qhead + i) % o->qcap];

		if (is_vector_of(gone, m->fd)) {
			if (i < hs)
				o->handshake_left--;
			o->qfds--;
			ivl__sfd_unref(s, m->fd);
			removed++;
			continue;
		}
		o->q[(o->qhead + kept) % o->qcap] = *m;
		kept++;
	}
	o->qlen = kept;
	return removed;
}

/* Departure (§1): announce the ID without fd to everyone left that heard of
 * the peer. */
static void peer_leave(struct ivl_server *s, struct ivl__speer *p)
{
	struct ivl_shm_peer *e = shm_entry(s, p->id);
	uint32_t i;

	if (p->doom_reason)
		ivl__warn("dropping peer %u (pid %ld): %s", p->id, (long)p->pid, p->doom_reason);
	else
		ivl__info("peer %u left", p->id);
	ivl__peer_set_state(s, p, IVL_PEER_LEAVING);
	s->peers[p->id] = NULL;
	s->npeers--;
	for (i = 0; i < s->id_limit; i++) {
		struct ivl__speer *o = s->peers[i];

		if (o && cancel_join(s, o, p) < p->nvec)
			enqueue(s, o, p->id, NULL);
	}
	if (e) {
		__atomic_store_n(&e->pending, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&e->waiting, 0, __ATOMIC_RELAXED);
		/* Release pairs with the reader's acquire of state. */
		__atomic_store_n(&e->state, IVL_PEER_ABSENT, __ATOMIC_RELEASE);
	}
	ivl__peer_free(s, p);
}

void ivl__server_settle(struct ivl_server *s)
{
	while (s->dirty || s->doomed) {
		while (s->doomed) {
			struct ivl__speer *p = s->doomed;

			s->doomed = p->next_doomed;
			if (p->dirty) {
				/* Unlink from the flush list before freeing. */
				struct ivl__speer **pp = &s->dirty;
				while (*pp != p)
					pp = &(*pp)->next_dirty;
				*pp = p->next_dirty;
			}
			peer_leave(s, p);
		}
		while (s->dirty) {
			struct ivl__speer *p = s->dirty;

			s->dirty = p->next_dirty;
			p->dirty = false;
			flush(s, p);
		}
	}
}

void ivl__server_unblock(struct ivl_server *s)
{
	uint32_t i;

	for (i = 0; i < s->id_limit && s->nblocked; i++) {
		struct ivl__speer *p = s->peers[i];

		if (p && p->blocked) {
			p->blocked = false;
			s->nblocked--;
			ivl__peer_mark_dirty(s, p);
		}
	}
}

int ivl__hello_check(const void *buf, size_t have, char name[IVL_NAME_LEN + 1])
{
	struct ivl_wire_hello h;
	uint32_t magic;

	if (have > sizeof(h))
		return -EPROTO;
	if (have < sizeof(magic))
		return 0;
	/* Reject garbage as early as its first word shows it. */
	memcpy(&magic, buf, sizeof(magic));
	if (magic != IVL_HELLO_MAGIC)
		return -EPROTO;
	if (have < sizeof(h))
		return 0;
	memcpy(&h, buf, sizeof(h));
	/* Unknown feature bits and reserved are ignored: a newer peer may
	 * offer more than this server knows. */
	if (h.version != IVL_HELLO_VERSION || h.size != sizeof(h))
		return -EPROTONOSUPPORT;
	ivl__sanitize_name(name, h.name, IVL_NAME_LEN);
	return 1;
}

static void hello_done(struct ivl_server *s, struct ivl__speer *p)
{
	struct ivl_shm_peer *e;
	uint32_t features = s->raw ? IVL_FEAT_HELLO : IVL_FEAT_HELLO | IVL_FEAT_NAMES;

	p->hello_done = true;
	if ((e = shm_entry(s, p->id)))
		/* Peers read names as untrusted bytes; no ordering needed. */
		memcpy(e->name, p->name, strlen(p->name));
	ivl__info("peer %u is \"%s\"", p->id, p->name);
	/* Queued behind the whole handshake, so it also marks its end. */
	enqueue(s, p, IVL_EXT_MSG(IVL_EXT_WELCOME, s->vectors | (features << 16)), NULL);
}

/* Input from a peer: EOF, or the optional hello; anything else is a
 * protocol violation that drops this peer only. */
static void peer_input(struct ivl_server *s, struct ivl__speer *p)
{
	int rounds;

	for (rounds = 0; rounds < 4 && !p->doomed; rounds++) {
		uint8_t buf[sizeof(struct ivl_wire_hello)];
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(16 * sizeof(int))];
		} c;
		size_t want = p->hello_done ? 1 : sizeof(p->hello) - p->hello_have;
		struct iovec iov = {buf, want};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = c.b,
				    .msg_controllen = sizeof(c.b)};
		struct cmsghdr *cm;
		bool fds = false;
		int ret;
		ssize_t n = recvmsg(p->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			ivl__peer_doom(s, p,
				       n < 0 && errno != ECONNRESET ? "receive failed" : NULL);
			return;
		}
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				size_t k, nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				for (k = 0; k < nfd; k++) {
					int fd;
					memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int), sizeof(fd));
					ivl__close(fd);
				}
				fds = true;
			}
		}
		if (fds || (mh.msg_flags & MSG_CTRUNC)) {
			s->dropped++;
			ivl__peer_doom(s, p, "sent file descriptors");
			return;
		}
		if (p->hello_done) {
			s->dropped++;
			ivl__peer_doom(s, p, "wrote data after its hello");
			return;
		}
		memcpy(p->hello + p->hello_have, buf, (size_t)n);
		p->hello_have += (size_t)n;
		ret = ivl__hello_check(p->hello, p->hello_have, p->name);
		if (ret < 0) {
			s->dropped++;
			ivl__peer_doom(s, p,
				       ret == -EPROTO ? "wrote something that is not a hello"
						      : "hello of unknown version or size");
			return;
		}
		if (ret == 1)
			hello_done(s, p);
	}
}

void ivl__peer_event(struct ivl_server *s, uint64_t data, uint32_t events)
{
	struct ivl__speer *p = lookup(s, data);

	if (!p || p->doomed)
		return; /* a peer that left earlier in this batch */
	if (events & EPOLLIN)
		peer_input(s, p);
	if (p->doomed)
		return;
	if (events & EPOLLOUT)
		ivl__peer_mark_dirty(s, p);
	if (events & (EPOLLHUP | EPOLLERR)) {
		/* EPOLLIN with EOF was handled above; a hang-up without
		 * readable data is the same departure. */
		ivl__peer_doom(s, p, (events & EPOLLERR) ? "socket error" : NULL);
	}
}
