/* SPDX-License-Identifier: MIT */
/*
 * The ivshmem server core (PROTOCOLS.md §1 and §4): owns the region and the
 * listening socket, admits peers, and runs without blocking from one epoll
 * fd.  Per-peer work lives in server-peer.c.
 *
 * Thread safety: none; one thread drives a server.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#include "core/internal.h"
#include "ivshmem/server-internal.h"

#define DEFAULT_MAX_PEERS 256
#define DEFAULT_MAX_QUEUE 65536
#define ACCEPT_BATCH 64 /* per process() call, so peers' I/O is not starved */

/* Probe an existing socket path: a live server answers connect(). */
static int claim_socket_path(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		ivl__err("%s exists and is not a socket", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, path, strlen(path));
	ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	ret = ret < 0 ? -errno : 0;
	ivl__close(fd);
	if (ret == 0 || ret == -EAGAIN || ret == -EINPROGRESS) {
		ivl__err("%s is in use: another server is running", path);
		return -EADDRINUSE;
	}
	if (ret != -ECONNREFUSED) {
		ivl__err("cannot probe %s: %s", path, strerror(-ret));
		return ret;
	}
	ivl__info("removing stale socket %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/*
 * "<socket>.lock", OFD-locked for the server's life: two servers started at
 * once on one path are serialized here, before either probes, unlinks or
 * binds the socket.  The lock file is removed by its holder on exit; a
 * server that locked a file unlinked meanwhile tries again.
 */
static int lock_socket_path(struct ivl_server *s, const char *path)
{
	struct stat a, b;
	int tries, fd, ret;

	if (asprintf(&s->sock_lock_path, "%s.lock", path) < 0) {
		s->sock_lock_path = NULL;
		return -ENOMEM;
	}
	for (tries = 0; tries < 16; tries++) {
		mode_t old = umask(0077);

		fd = open(s->sock_lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		umask(old);
		if (fd < 0) {
			ret = -errno;
			ivl__err("cannot open %s: %s", s->sock_lock_path, strerror(-ret));
			return ret;
		}
		ret = ivl__lock_fd(fd);
		if (ret < 0) {
			ivl__close(fd);
			if (ret == -EADDRINUSE)
				ivl__err("%s is in use: another server is running (it holds %s)",
					 path, s->sock_lock_path);
			return ret;
		}
		if (fstat(fd, &a) == 0 && stat(s->sock_lock_path, &b) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
			s->sock_lock = fd;
			s->nfds++;
			return 0;
		}
		ivl__close(fd); /* removed by the server that held it: again */
	}
	return -EAGAIN;
}

static int bind_socket(struct ivl_server *s, const char *path, mode_t mode)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	mode_t old;
	int fd, ret;

	ret = lock_socket_path(s, path);
	if (ret < 0)
		return ret;
	ret = claim_socket_path(path);
	if (ret < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, path, strlen(path));
	/* Never expose the socket more widely than asked, not even for the
	 * moment between bind() and chmod().  umask is per process: a
	 * program that creates files from other threads meanwhile gets 077
	 * for them too (stricter, never looser). */
	old = umask(0077);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	ret = ret < 0 ? -errno : 0;
	umask(old);
	if (ret < 0) {
		ivl__err("cannot bind %s: %s", path, strerror(-ret));
		ivl__close(fd);
		return ret;
	}
	s->bound = true;
	s->lfd = fd;
	s->nfds++;
	if (chmod(path, mode) < 0) {
		ret = -errno;
		ivl__err("cannot chmod %s: %s", path, strerror(-ret));
		return ret;
	}
	if (listen(fd, SOMAXCONN) < 0) {
		ret = -errno;
		ivl__err("cannot listen on %s: %s", path, strerror(-ret));
		return ret;
	}
	return 0;
}

static int epoll_add(struct ivl_server *s, int fd, uint64_t data)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = data};

	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static bool is_listener(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

static int copy_opts(struct ivl_server *s, const struct ivl_server_opts *o)
{
	s->vectors = o->vectors;
	s->max_peers = o->max_peers ? o->max_peers : DEFAULT_MAX_PEERS;
	s->max_queue = o->max_queue ? o->max_queue : DEFAULT_MAX_QUEUE;
	/* Join announcements of peers that left are cancelled, so a queue
	 * holds at most one set of vectors per live peer: the default is a
	 * bound no live peer reaches, however slow. */
	s->max_queue_fds = o->max_queue_fds ? o->max_queue_fds
					    : (size_t)o->vectors * s->max_peers;
	s->raw = o->raw;
	if (s->vectors < 1 || s->vectors > IVL_MAX_VECTORS) {
		ivl__err("vectors must be 1..%d, not %u", IVL_MAX_VECTORS, o->vectors);
		return -EINVAL;
	}
	if (s->max_peers > IVL_MAX_PEER_ID + 1) {
		ivl__err("max_peers must be 1..%d, not %u", IVL_MAX_PEER_ID + 1, s->max_peers);
		return -EINVAL;
	}
	/* With a header, an ID indexes its peer table (§4). */
	s->id_limit = s->raw ? IVL_MAX_PEER_ID + 1 : s->max_peers;
	if (!(s->peers = calloc(s->id_limit, sizeof(*s->peers))))
		return -ENOMEM;
	if (o->n_allow_uids) {
		if (!o->allow_uids || !(s->allow_uids = calloc(o->n_allow_uids, sizeof(uid_t))))
			return o->allow_uids ? -ENOMEM : -EINVAL;
		memcpy(s->allow_uids, o->allow_uids, o->n_allow_uids * sizeof(uid_t));
		s->n_allow_uids = o->n_allow_uids;
	}
	if (o->n_allow_gids) {
		if (!o->allow_gids || !(s->allow_gids = calloc(o->n_allow_gids, sizeof(gid_t))))
			return o->allow_gids ? -ENOMEM : -EINVAL;
		memcpy(s->allow_gids, o->allow_gids, o->n_allow_gids * sizeof(gid_t));
		s->n_allow_gids = o->n_allow_gids;
	}
	return 0;
}

int ivl__server_alloc(struct ivl_server **out, const struct ivl_server_opts *o)
{
	struct ivl_server *s = calloc(1, sizeof(*s));
	int ret;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->epfd = s->tfd = s->reserve_fd = s->region_lock = s->sock_lock = s->lfd = -1;
	ret = copy_opts(s, o);
	if (ret < 0)
		goto fail;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (s->epfd < 0 || s->tfd < 0 || s->reserve_fd < 0) {
		ret = -errno;
		goto fail;
	}
	s->nfds += 3;
	*out = s;
	return 0;
fail:
	ivl_server_free(s);
	return ret;
}

int ivl__server_watch(struct ivl_server *s)
{
	int ret = epoll_add(s, s->lfd, IVL__EV_LISTEN << 56);

	return ret < 0 ? ret : epoll_add(s, s->tfd, IVL__EV_TIMER << 56);
}

IVL_EXPORT int ivl_server_new(struct ivl_server **out, const struct ivl_server_opts *o)
{
	struct ivl_server *s;
	int ret, fd, lfd;

	if (out)
		*out = NULL;
	if (!out || !o)
		return -EINVAL;
	lfd = o->listen_fd;
	if (lfd == 0 && o->socket_path && !is_listener(0))
		/* Zero-initialised options with a path: fd 0 is stdin, not
		 * an inherited listener; leave it alone. */
		lfd = -1;
	if (lfd < 0 && (!o->socket_path || !*o->socket_path))
		return -EINVAL;
	if (lfd >= 0 && !is_listener(lfd)) {
		ivl__err("fd %d is not a listening socket", lfd);
		if (lfd > 0)
			ivl__close(lfd);
		return -ENOTSOCK;
	}
	if (lfd < 0 && strlen(o->socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		ivl__err("socket path is longer than %zu bytes",
			 sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return -ENAMETOOLONG;
	}
	ret = ivl__server_alloc(&s, o);
	if (ret < 0) {
		ivl__close(lfd);
		return ret;
	}
	s->lfd = lfd;
	if (s->lfd >= 0)
		s->nfds++;
	if (o->socket_path && !(s->sock_path = strdup(o->socket_path))) {
		ret = -ENOMEM;
		goto fail;
	}
	if (s->lfd >= 0) {
		/* Socket activation: the listener is ready; only make it
		 * non-blocking, as accept() must never wait. */
		int fl = fcntl(s->lfd, F_GETFL);
		if (fl < 0 || fcntl(s->lfd, F_SETFL, fl | O_NONBLOCK) < 0) {
			ret = -errno;
			goto fail;
		}
	} else {
		ret = bind_socket(s, o->socket_path, o->socket_mode ? o->socket_mode : 0600);
		if (ret < 0)
			goto fail;
	}
	ret = ivl__server_open_region(s, o);
	if (ret < 0)
		goto fail;
	s->nfds++; /* the region's own fd */
	ret = ivl__server_lock_region(s);
	if (ret < 0)
		goto fail;
	if (s->reused_name && !s->reused_forced && !o->keep_data)
		ivl__server_zero(s);
	if (!s->raw) {
		ret = ivl__server_format(s);
		if (ret < 0)
			goto fail;
	}
	fd = fcntl(ivl_region_fd(s->region), F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto fail;
	}
	if (!(s->shm = ivl__sfd_new(s, fd))) {
		ivl__close(fd);
		ret = -ENOMEM;
		goto fail;
	}
	if ((ret = ivl__server_watch(s)) < 0)
		goto fail;
	ivl__info("serving %s on %s: %u vectors, up to %u peers%s", ivl_region_describe(s->region),
		  s->sock_path ? s->sock_path : "(inherited socket)", s->vectors, s->max_peers,
		  s->raw ? ", raw" : "");
	*out = s;
	return 0;
fail:
	if (s->reused_forced) {
		/* Forced onto an object in use: it is not ours to remove. */
		free(s->reused_name);
		s->reused_name = NULL;
	}
	ivl_server_free(s);
	return ret;
}

IVL_EXPORT int ivl_server_get_fd(const struct ivl_server *s)
{
	return s ? s->epfd : -EINVAL;
}

static bool allowed(const struct ivl_server *s, const struct ucred *cr)
{
	size_t i;

	if (!s->n_allow_uids && !s->n_allow_gids)
		return true;
	for (i = 0; i < s->n_allow_uids; i++)
		if (s->allow_uids[i] == cr->uid)
			return true;
	for (i = 0; i < s->n_allow_gids; i++)
		if (s->allow_gids[i] == cr->gid)
			return true;
	return false;
}

static void pause_listen(struct ivl_server *s)
{
	struct epoll_event ev = {.events = 0, .data.u64 = IVL__EV_LISTEN << 56};

	if (!s->listen_paused && epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->lfd, &ev) == 0)
		s->listen_paused = true;
	ivl__server_arm_timer(s, 100);
}

/* Out of fds: give up the reserve fd to accept and close the pending
 * connection, so the listener does not stay readable forever. */
static void refuse_at_emfile(struct ivl_server *s, int err)
{
	int fd;

	s->refused++;
	ivl__warn("refusing a peer: out of file descriptors (%s)", strerror(err));
	if (s->reserve_fd < 0) {
		pause_listen(s);
		return;
	}
	ivl__close(s->reserve_fd);
	s->reserve_fd = -1;
	fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
	ivl__close(fd);
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (s->reserve_fd < 0) {
		s->nfds--;
		pause_listen(s);
	}
}

/* Tell a refused newcomer why (PROTOCOLS.md §1.5): the version, then
 * IVL_EXT_REFUSED in place of its ID.  Its socket is new and empty, so the
 * two messages fit; a failure only loses the reason. */
static void refuse(struct ivl_server *s, int fd, int why)
{
	s->refused++;
	if (ivl_msg_send(fd, IVL_PROTOCOL_VERSION, -1) == 0)
		ivl_msg_send(fd, IVL_EXT_MSG(IVL_EXT_REFUSED, (uint32_t)why), -1);
	ivl__close(fd);
}

static void admit(struct ivl_server *s, int fd)
{
	struct ucred cr = {0, (uid_t)-1, (gid_t)-1};
	socklen_t len = sizeof(cr);
	int ret;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		ivl__warn("refusing a peer: no credentials: %s", strerror(errno));
		refuse(s, fd, EACCES);
		return;
	}
	if (!allowed(s, &cr)) {
		ivl__warn("refusing peer pid %ld: uid %ld / gid %ld not allowed", (long)cr.pid,
			  (long)cr.uid, (long)cr.gid);
		refuse(s, fd, EACCES);
		return;
	}
	if (s->npeers >= s->max_peers) {
		ivl__warn("refusing peer pid %ld: %u peers connected, the maximum", (long)cr.pid,
			  s->npeers);
		refuse(s, fd, EUSERS);
		return;
	}
	ret = ivl__peer_join(s, fd, cr.pid, cr.uid, cr.gid);
	if (ret == 0)
		return;
	/* peer_join() said why in the log: no free ID, no eventfd, ... */
	refuse(s, fd, ret == -EUSERS ? EUSERS : ret == -ENOMEM ? ENOMEM : EMFILE);
}

static void do_accept(struct ivl_server *s)
{
	int i;

	for (i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			switch (errno) {
			case EAGAIN:
				return;
			case EINTR:
			case ECONNABORTED:
				continue;
			case EMFILE:
			case ENFILE:
				refuse_at_emfile(s, errno);
				return;
			default:
				ivl__warn("accept failed: %s", strerror(errno));
				/* ENOBUFS and the like: back off a little. */
				pause_listen(s);
				return;
			}
		}
		admit(s, fd);
		/* Settle here so a dropped peer's leave is announced before
		 * the next newcomer's handshake is built. */
		ivl__server_settle(s);
	}
}

static void on_timer(struct ivl_server *s)
{
	uint64_t n;
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = IVL__EV_LISTEN << 56};

	if (read(s->tfd, &n, sizeof(n)) < 0 && errno == EAGAIN)
		return;
	s->timer_armed = false;
	ivl__server_unblock(s);
	if (s->listen_paused) {
		if (s->reserve_fd < 0 &&
		    (s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
			s->nfds++;
		if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->lfd, &ev) == 0)
			s->listen_paused = false;
		else
			ivl__server_arm_timer(s, 100);
	}
}

IVL_EXPORT int ivl_server_process(struct ivl_server *s)
{
	struct epoll_event ev[64];
	int n, i;

	if (!s)
		return -EINVAL;
	n = epoll_wait(s->epfd, ev, (int)IVL_ARRAY_SIZE(ev), 0);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < n; i++) {
		switch (IVL__EV_KIND(ev[i].data.u64)) {
		case IVL__EV_LISTEN:
			do_accept(s);
			break;
		case IVL__EV_TIMER:
			on_timer(s);
			break;
		case IVL__EV_PEER:
			ivl__peer_event(s, ev[i].data.u64, ev[i].events);
			break;
		}
	}
	ivl__server_settle(s);
	if (!s->region_lost && ivl_region_check(s->region) < 0) {
		struct stat st;

		s->region_lost = true;
		ivl__warn("%s was shrunk by another process (now %lld bytes): its lost pages "
			  "read as zeros in the server; doorbells keep working, newcomers "
			  "cannot map it",
			  ivl_region_describe(s->region),
			  fstat(ivl_region_fd(s->region), &st) == 0 ? (long long)st.st_size
								       : -1ll);
	}
	return 0;
}

IVL_EXPORT int ivl_server_peers(const struct ivl_server *s, struct ivl_server_peer_info *info,
				size_t max)
{
	size_t n = 0;
	uint32_t i;

	if (!s)
		return -EINVAL;
	for (i = 0; i < s->id_limit; i++) {
		const struct ivl__speer *p = s->peers[i];

		if (!p)
			continue;
		if (info && n < max) {
			struct ivl_server_peer_info *d = &info[n];

			memset(d, 0, sizeof(*d));
			d->id = p->id;
			d->state = p->state;
			d->pid = p->pid;
			d->uid = p->uid;
			d->gid = p->gid;
			memcpy(d->name, p->name, sizeof(d->name));
			d->queued = p->qlen;
		}
		n++;
	}
	return (int)n;
}

IVL_EXPORT void ivl_server_get_stats(const struct ivl_server *s, struct ivl_server_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof(*st));
	if (!s)
		return;
	st->peers = s->npeers;
	st->accepted = s->accepted;
	st->refused = s->refused;
	st->dropped = s->dropped;
	st->messages_sent = s->messages_sent;
	st->fds_in_use = s->nfds;
}

IVL_EXPORT const struct ivl_region *ivl_server_region(const struct ivl_server *s)
{
	return s ? s->region : NULL;
}

IVL_EXPORT void ivl_server_free(struct ivl_server *s)
{
	uint32_t i;

	if (!s)
		return;
	if (s->region && !s->raw && s->valid.magic) {
		struct ivl_shm_header *h = ivl_region_base(s->region);
		/* Release pairs with ivl_shm_validate()'s acquire: peers
		 * that see CLOSED stop using the table. */
		__atomic_store_n(&h->state, IVL_SHM_CLOSED, __ATOMIC_RELEASE);
	}
	for (i = 0; s->peers && i < s->id_limit; i++) {
		struct ivl__speer *p = s->peers[i];

		if (!p)
			continue;
		s->peers[i] = NULL;
		ivl__peer_set_state(s, p, IVL_PEER_ABSENT);
		ivl__peer_free(s, p);
	}
	ivl__sfd_unref(s, s->shm);
	if (s->region) {
		ivl_region_unlink(s->region);
		if (s->reused_name) {
			if (s->reused_kind == IVL_REGION_SHM)
				shm_unlink(s->reused_name);
			else
				unlink(s->reused_name);
		}
		ivl_region_free(s->region);
	}
	free(s->reused_name);
	if (s->bound && s->sock_path)
		unlink(s->sock_path);
	/* Unlinked while still held: a server waiting on this path finds
	 * the file gone and makes a new one. */
	if (s->sock_lock >= 0)
		unlink(s->sock_lock_path);
	free(s->sock_lock_path);
	ivl__close(s->sock_lock);
	ivl__close(s->region_lock);
	ivl__close(s->lfd);
	ivl__close(s->epfd);
	ivl__close(s->tfd);
	ivl__close(s->reserve_fd);
	free(s->sock_path);
	free(s->peers);
	free(s->allow_uids);
	free(s->allow_gids);
	free(s);
}
