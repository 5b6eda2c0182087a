/* SPDX-License-Identifier: MIT */
/*
 * Live upgrade (docs/upgrade.md): the whole server state, written into a
 * sealed memfd so that a new program image can take over every connection,
 * ID, eventfd, unsent message, the listener, the region and its locks.
 *
 * The state is read back as untrusted input: every count is bounded by the
 * bytes present, every ID and index by its table, and every fd must be
 * open, of the expected type, and named once.
 *
 * Layout (host byte order; the reader is the same machine): struct st_head,
 * the four strings (their lengths in the head, no NUL), the fd table
 * (int32 each), then per peer a struct st_peer, its vector indexes (uint32
 * each) and its unsent messages (struct st_msg each).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/internal.h"
#include "ivshmem/server-internal.h"

#define ST_MAGIC "IVLSRVS1"
#define ST_VERSION 1u
#define ST_MAX_BYTES (1ull << 30)
#define NO_FD UINT32_MAX

struct st_head {
	char magic[8];
	uint32_t version;
	uint32_t head_size;
	uint64_t total;
	uint32_t vectors, max_peers, id_limit, raw;
	uint32_t next_id, serial, generation, npeers;
	uint64_t max_queue, max_queue_fds;
	uint64_t accepted, refused, dropped, messages_sent;
	int32_t lfd, sock_lock, region_fd, region_lock;
	uint32_t shm_idx, nfd;
	uint32_t bound, reused_kind, reused_forced, region_kind, region_lost;
	uint32_t len_sock_path, len_sock_lock_path, len_reused_name, len_region_name,
	    len_region_desc;
	uint32_t pad;
	struct ivl_shm_header valid;
};

struct st_peer {
	uint32_t id, serial;
	int32_t sock, pid;
	uint32_t uid, gid, state, nvec;
	uint64_t qlen, qlimit, qfdlimit, qfds, handshake_left;
	uint32_t hello_have, hello_done;
	uint8_t hello[sizeof(struct ivl_wire_hello)];
	char name[IVL_NAME_LEN + 1];
	uint8_t hello_sock; /* 0 in states written before it existed */
	uint8_t pad[6];
};

struct st_msg {
	int64_t value;
	uint32_t fd_idx; /* NO_FD or an index into the fd table */
	uint32_t pad;
};

/* ---- writing ---------------------------------------------------------- */

struct wbuf {
	uint8_t *b;
	size_t len, cap;
	int err;
};

static void put(struct wbuf *w, const void *p, size_t n)
{
	if (w->err || !n)
		return;
	if (w->len + n > w->cap) {
		size_t ncap = w->cap ? w->cap : 4096;
		uint8_t *nb;

		while (ncap < w->len + n)
			ncap *= 2;
		if (!(nb = realloc(w->b, ncap))) {
			w->err = -ENOMEM;
			return;
		}
		w->b = nb;
		w->cap = ncap;
	}
	memcpy(w->b + w->len, p, n);
	w->len += n;
}

static void put_str(struct wbuf *w, const char *str)
{
	if (str)
		put(w, str, strlen(str));
}

static uint32_t slen(const char *str)
{
	return str ? (uint32_t)strlen(str) : 0;
}

/* Give every distinct ivl__sfd an index (mark = index + 1). */
static void mark_fd(struct ivl__sfd *f, struct ivl__sfd ***tab, uint32_t *n, uint32_t *cap,
		    int *err)
{
	if (!f || f->mark || *err)
		return;
	if (*n == *cap) {
		uint32_t ncap = *cap ? *cap * 2 : 64;
		struct ivl__sfd **nt = realloc(*tab, ncap * sizeof(**tab));

		if (!nt) {
			*err = -ENOMEM;
			return;
		}
		*tab = nt;
		*cap = ncap;
	}
	(*tab)[(*n)++] = f;
	f->mark = *n;
}

static int set_cloexec(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0)
		return -errno;
	fl = on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC;
	return fcntl(fd, F_SETFD, fl) < 0 ? -errno : 0;
}

/* Every fd the state names, for FD_CLOEXEC. */
static void each_kept_fd(struct ivl_server *s, bool cloexec)
{
	uint32_t i, v;
	size_t k;

	set_cloexec(s->lfd, cloexec);
	if (s->sock_lock >= 0)
		set_cloexec(s->sock_lock, cloexec);
	set_cloexec(ivl_region_fd(s->region), cloexec);
	if (s->region_lock >= 0)
		set_cloexec(s->region_lock, cloexec);
	set_cloexec(s->shm->fd, cloexec);
	for (i = 0; i < s->id_limit; i++) {
		struct ivl__speer *p = s->peers[i];

		if (!p)
			continue;
		set_cloexec(p->sock, cloexec);
		for (v = 0; v < p->nvec; v++)
			set_cloexec(p->vec[v]->fd, cloexec);
		for (k = 0; k < p->qlen; k++) {
			struct ivl__sfd *f = p->q[(p->qhead + k) % p->qcap].fd;
			if (f)
				set_cloexec(f->fd, cloexec);
		}
	}
}

static int serialize(struct ivl_server *s, struct wbuf *w)
{
	struct ivl__sfd **tab = NULL;
	uint32_t nfd = 0, cap = 0, i, v;
	enum ivl_region_kind rkind = 0;
	const char *rname = ivl__region_unlink_name(s->region, &rkind);
	struct st_head h;
	int err = 0;
	size_t k;

	mark_fd(s->shm, &tab, &nfd, &cap, &err);
	for (i = 0; i < s->id_limit; i++) {
		struct ivl__speer *p = s->peers[i];

		if (!p)
			continue;
		for (v = 0; v < p->nvec; v++)
			mark_fd(p->vec[v], &tab, &nfd, &cap, &err);
		for (k = 0; k < p->qlen; k++)
			mark_fd(p->q[(p->qhead + k) % p->qcap].fd, &tab, &nfd, &cap, &err);
	}
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, ST_MAGIC, sizeof(h.magic));
	h.version = ST_VERSION;
	h.head_size = sizeof(h);
	h.vectors = s->vectors;
	h.max_peers = s->max_peers;
	h.id_limit = s->id_limit;
	h.raw = s->raw;
	h.next_id = s->next_id;
	h.serial = s->serial;
	h.generation = s->generation + 1;
	h.npeers = s->npeers;
	h.max_queue = s->max_queue;
	h.max_queue_fds = s->max_queue_fds;
	h.accepted = s->accepted;
	h.refused = s->refused;
	h.dropped = s->dropped;
	h.messages_sent = s->messages_sent;
	h.lfd = s->lfd;
	h.sock_lock = s->sock_lock;
	h.region_fd = ivl_region_fd(s->region);
	h.region_lock = s->region_lock;
	h.shm_idx = s->shm->mark - 1;
	h.nfd = nfd;
	h.bound = s->bound;
	h.reused_kind = s->reused_kind;
	h.reused_forced = s->reused_forced;
	h.region_kind = rkind;
	h.region_lost = s->region_lost;
	h.len_sock_path = slen(s->sock_path);
	h.len_sock_lock_path = slen(s->sock_lock_path);
	h.len_reused_name = slen(s->reused_name);
	h.len_region_name = slen(rname);
	h.len_region_desc = slen(ivl_region_describe(s->region));
	memcpy(&h.valid, &s->valid, sizeof(h.valid));
	put(w, &h, sizeof(h));
	put_str(w, s->sock_path);
	put_str(w, s->sock_lock_path);
	put_str(w, s->reused_name);
	put_str(w, rname);
	put_str(w, ivl_region_describe(s->region));
	for (i = 0; i < nfd; i++) {
		int32_t fd = tab[i]->fd;
		put(w, &fd, sizeof(fd));
	}
	for (i = 0; i < s->id_limit; i++) {
		struct ivl__speer *p = s->peers[i];
		struct st_peer sp;

		if (!p)
			continue;
		memset(&sp, 0, sizeof(sp));
		sp.id = p->id;
		sp.serial = p->serial;
		sp.sock = p->sock;
		sp.pid = p->pid;
		sp.uid = p->uid;
		sp.gid = p->gid;
		sp.state = p->state;
		sp.nvec = p->nvec;
		sp.qlen = p->qlen;
		sp.qlimit = p->qlimit;
		sp.qfdlimit = p->qfdlimit;
		sp.qfds = p->qfds;
		sp.handshake_left = p->handshake_left;
		sp.hello_have = (uint32_t)p->hello_have;
		sp.hello_done = p->hello_done;
		sp.hello_sock = p->hello_sock;
		memcpy(sp.hello, p->hello, sizeof(sp.hello));
		memcpy(sp.name, p->name, sizeof(sp.name));
		put(w, &sp, sizeof(sp));
		for (v = 0; v < p->nvec; v++) {
			uint32_t idx = p->vec[v]->mark - 1;
			put(w, &idx, sizeof(idx));
		}
		for (k = 0; k < p->qlen; k++) {
			const struct ivl__smsg *m = &p->q[(p->qhead + k) % p->qcap];
			struct st_msg sm = {m->value, m->fd ? m->fd->mark - 1 : NO_FD, 0};
			put(w, &sm, sizeof(sm));
		}
	}
	for (i = 0; i < nfd; i++)
		tab[i]->mark = 0;
	free(tab);
	if (!w->err && w->len >= sizeof(h))
		((struct st_head *)(void *)w->b)->total = w->len;
	return err ? err : w->err;
}

IVL_EXPORT int ivl_server_save(struct ivl_server *s)
{
	struct wbuf w = {0};
	size_t off = 0;
	int fd, ret;

	if (!s || s->lfd < 0 || !s->region || !s->shm)
		return -EINVAL;
	/* The reader goes first, with what it reported before it stopped;
	 * the new image starts its own. */
	ivl__reader_stop(s, true);
	/* Drops and flushes first: the state holds no doomed peer. */
	ivl__server_settle(s);
	ret = serialize(s, &w);
	if (ret < 0) {
		free(w.b);
		goto fail;
	}
	fd = memfd_create("ivlink-server-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		ret = -errno;
		free(w.b);
		goto fail;
	}
	while (off < w.len) {
		ssize_t n = write(fd, w.b + off, w.len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			free(w.b);
			ivl__close(fd);
			goto fail;
		}
		off += (size_t)n;
	}
	free(w.b);
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0 ||
	    set_cloexec(fd, false) < 0) {
		ret = -errno;
		ivl__close(fd);
		goto fail;
	}
	each_kept_fd(s, false);
	return fd;
fail:
	if (s->separate_reader)
		ivl__reader_restart(s);
	return ret;
}

IVL_EXPORT void ivl_server_save_abort(struct ivl_server *s, int state_fd)
{
	ivl__close(state_fd);
	if (s) {
		each_kept_fd(s, true);
		if (s->separate_reader)
			ivl__reader_restart(s);
	}
}

/* ---- reading (untrusted) ---------------------------------------------- */

struct rbuf {
	const uint8_t *b;
	size_t len, off;
};

static const void *take(struct rbuf *r, size_t n)
{
	const void *p;

	if (n > r->len - r->off)
		return NULL;
	p = r->b + r->off;
	r->off += n;
	return p;
}

/* Copy the next @n bytes out (the records follow strings: unaligned). */
static bool take_copy(struct rbuf *r, void *dst, size_t n)
{
	const void *p = take(r, n);

	if (p)
		memcpy(dst, p, n);
	return p != NULL;
}

static int take_str(struct rbuf *r, uint32_t len, char **out)
{
	const char *p;

	*out = NULL;
	if (!len)
		return 0;
	if (len > 4096 || !(p = take(r, len)) || memchr(p, 0, len))
		return -EINVAL;
	return (*out = strndup(p, len)) ? 0 : -ENOMEM;
}

enum fd_type { FD_SOCK, FD_EVENT, FD_FILE };

static int check_fd(int fd, enum fd_type type, int maxfd)
{
	char path[64], link[64];
	struct stat st;
	ssize_t n;

	if (fd < 0 || fd >= maxfd || fcntl(fd, F_GETFD) < 0 || fstat(fd, &st) < 0)
		return -EBADF;
	switch (type) {
	case FD_SOCK:
		return S_ISSOCK(st.st_mode) ? 0 : -EBADF;
	case FD_FILE:
		return S_ISREG(st.st_mode) ? 0 : -EBADF;
	case FD_EVENT:
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			return -EBADF;
		link[n] = 0;
		return strcmp(link, "anon_inode:[eventfd]") ? -EBADF : 0;
	}
	return -EBADF;
}

/* Each fd is named once in the whole state. */
struct fdset {
	uint8_t *seen;
	int max;
};

static int claim(struct fdset *fs, int fd, enum fd_type type)
{
	int ret = check_fd(fd, type, fs->max);

	if (ret < 0)
		return ret;
	if (fs->seen[fd])
		return -EINVAL;
	fs->seen[fd] = 1;
	return set_cloexec(fd, true);
}

static int read_all(int fd, struct rbuf *r)
{
	struct stat st;
	uint8_t *b;
	size_t off = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size < (off_t)sizeof(struct st_head) || (uint64_t)st.st_size > ST_MAX_BYTES)
		return -EINVAL;
	if (!(b = malloc((size_t)st.st_size)))
		return -ENOMEM;
	while (off < (size_t)st.st_size) {
		ssize_t n = pread(fd, b + off, (size_t)st.st_size - off, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(b);
			return -EINVAL;
		}
		off += (size_t)n;
	}
	r->b = b;
	r->len = off;
	r->off = 0;
	return 0;
}

/* Take over an inherited lock file @fd (< 0: none) into *@dst: -EBADF if
 * it is not an open file of ours to claim, -EADDRINUSE (or -errno) if the
 * lock on it is not ours. */
static int adopt_lock(struct ivl_server *s, struct fdset *fs, int fd, int *dst)
{
	if (fd < 0)
		return 0;
	if (claim(fs, fd, FD_FILE) < 0)
		return -EBADF;
	*dst = fd;
	s->nfds++;
	return ivl__lock_fd(fd) < 0 ? -EADDRINUSE : 0;
}

#define BAD(why)                                                                                   \
	do {                                                                                       \
		ivl__err("inherited server state: %s", why);                                       \
		ret = ret < 0 && ret != -EINVAL ? ret : -EINVAL;                                   \
		goto fail;                                                                         \
	} while (0)

static int restore_peer(struct ivl_server *s, struct rbuf *r, struct fdset *fs,
			struct ivl__sfd **tab, uint8_t *owned, uint32_t nfd)
{
	struct st_peer spc;
	const struct st_peer *sp = take_copy(r, &spc, sizeof(spc)) ? &spc : NULL;
	struct ivl__speer *p;
	struct epoll_event ev;
	uint32_t v;
	uint64_t k, fds = 0;
	int ret = 0;

	if (!sp)
		return -EINVAL;
	if (sp->id >= s->id_limit || s->peers[sp->id] || sp->nvec != s->vectors ||
	    sp->state < IVL_PEER_JOINED || sp->state > IVL_PEER_READY ||
	    sp->hello_have > sizeof(sp->hello) || sp->hello_done > 1 ||
	    (sp->hello_done && sp->hello_have != sizeof(sp->hello)) ||
	    sp->hello_sock > sizeof(sp->hello) || (sp->hello_sock && !sp->hello_done) ||
	    sp->qlimit == 0 ||
	    sp->qlimit > (1ull << 31) || sp->qlen > sp->qlimit ||
	    sp->handshake_left > sp->qlen || sp->qfdlimit > (1ull << 31) ||
	    sp->serial == 0)
		return -EINVAL;
	if (!(p = calloc(1, sizeof(*p))) || !(p->vec = calloc(s->vectors, sizeof(*p->vec)))) {
		free(p);
		return -ENOMEM;
	}
	p->id = (uint16_t)sp->id;
	p->serial = sp->serial;
	p->sock = -1;
	p->pid = sp->pid;
	p->uid = sp->uid;
	p->gid = sp->gid;
	p->state = (uint8_t)sp->state;
	p->qlimit = sp->qlimit;
	p->qfdlimit = sp->qfdlimit;
	p->handshake_left = sp->handshake_left;
	p->hello_have = sp->hello_have;
	p->hello_done = sp->hello_done;
	p->hello_sock = sp->hello_sock;
	memcpy(p->hello, sp->hello, sizeof(p->hello));
	ivl__sanitize_name(p->name, sp->name, IVL_NAME_LEN);
	if (p->hello_done && ivl__hello_check(p->hello, p->hello_have, p->name) != 1)
		ret = -EINVAL;
	else if (!p->hello_done && ivl__hello_check(p->hello, p->hello_have, p->name) < 0)
		ret = -EINVAL;
	for (v = 0; !ret && v < sp->nvec; v++) {
		uint32_t idx;

		/* An eventfd (not the region, index 0) of this peer only. */
		if (!take_copy(r, &idx, sizeof(idx)) || idx >= nfd || idx == 0 || owned[idx])
			ret = -EINVAL;
		else {
			owned[idx] = 1;
			p->vec[p->nvec++] = tab[idx];
			tab[idx]->refs++;
		}
	}
	/* A count is believed only as far as the bytes behind it go: a
	 * hostile qlen must not allocate gigabytes before the first record
	 * is read. */
	if (!ret && sp->qlen > (r->len - r->off) / sizeof(struct st_msg))
		ret = -EINVAL;
	if (!ret && sp->qlen) {
		if (!(p->q = calloc((size_t)sp->qlen, sizeof(*p->q))))
			ret = -ENOMEM;
		p->qcap = (size_t)sp->qlen;
	}
	for (k = 0; !ret && k < sp->qlen; k++) {
		struct st_msg mc;
		const struct st_msg *m = take_copy(r, &mc, sizeof(mc)) ? &mc : NULL;

		/* What the server sends (§1): the region with -1, a vector
		 * with its owner's ID, else the version, an ID or an
		 * extension message. */
		if (!m || (m->fd_idx != NO_FD && m->fd_idx >= nfd) ||
		    (m->fd_idx == 0 && m->value != -1) ||
		    (m->fd_idx != NO_FD && m->fd_idx > 0 &&
		     (m->value < 0 || m->value >= (int64_t)s->id_limit)) ||
		    (m->fd_idx == NO_FD && !IVL_EXT_IS(m->value) &&
		     (m->value < 0 || m->value >= (int64_t)s->id_limit))) {
			ret = -EINVAL;
			break;
		}
		p->q[k].value = m->value;
		if (m->fd_idx != NO_FD) {
			p->q[k].fd = tab[m->fd_idx];
			tab[m->fd_idx]->refs++;
			fds++;
		}
		p->qlen++;
	}
	if (!ret && fds != sp->qfds)
		ret = -EINVAL;
	p->qfds = (size_t)fds;
	if (!ret && (ret = claim(fs, sp->sock, FD_SOCK)) == 0) {
		ev.events = ivl__peer_events(s, false);
		ev.data.u64 = IVL__EV_PEER_DATA(p->serial, p->id);
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, sp->sock, &ev) < 0)
			ret = -errno;
		else {
			p->sock = sp->sock;
			s->nfds++;
		}
	}
	if (ret < 0) {
		/* Inherited sockets and eventfds are the caller's to close:
		 * never close a peer's socket for a broken state. */
		if (p->sock >= 0)
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, p->sock, NULL), s->nfds--;
		p->sock = -1;
		ivl__peer_free(s, p);
		return ret;
	}
	s->peers[p->id] = p;
	s->npeers++;
	return 0;
}

/* A name from the state (NULL: none) is the region name of @o: the shm
 * name with or without its '/', or the file path. */
static bool same_name(const char *n, const struct ivl_server_opts *o)
{
	const char *want = o->region.name;

	if (!n)
		return true;
	if (!want)
		return false;
	if (o->region.kind == IVL_REGION_SHM) {
		n += n[0] == '/';
		want += want[0] == '/';
	}
	return !strcmp(n, want);
}

IVL_EXPORT int ivl_server_restore(struct ivl_server **out, const struct ivl_server_opts *o,
				  int state_fd)
{
	struct ivl_server_opts so;
	struct rbuf r = {0};
	struct fdset fs = {0};
	struct ivl__sfd **tab = NULL;
	struct st_head hc = {0};
	_Alignas(8) struct ivl_shm_header vcopy;
	char *region_name = NULL, *region_desc = NULL;
	struct rlimit rl;
	uint32_t i;
	int ret = 0, lr, shm_fd;
	struct ivl_server *s = NULL;
	size_t queued = 0;
	uint8_t *owned = NULL;

	if (out)
		*out = NULL;
	if (!out || !o || state_fd < 0) {
		ivl__close(state_fd);
		return -EINVAL;
	}
	ret = read_all(state_fd, &r);
	ivl__close(state_fd);
	if (ret < 0)
		BAD("cannot read it");
	if (!take_copy(&r, &hc, sizeof(hc)))
		BAD("too short");
	if (memcmp(hc.magic, ST_MAGIC, sizeof(hc.magic)) || hc.version != ST_VERSION ||
	    hc.head_size != sizeof(hc) || hc.total != r.len)
		BAD("not a state of this version");
	if (hc.vectors < 1 || hc.vectors > IVL_MAX_VECTORS || hc.max_peers < 1 ||
	    hc.max_peers > IVL_MAX_PEER_ID + 1u || hc.raw > 1 ||
	    hc.id_limit != (hc.raw ? IVL_MAX_PEER_ID + 1u : hc.max_peers) ||
	    hc.next_id >= hc.id_limit || hc.npeers > hc.max_peers || hc.nfd < 1 ||
	    hc.nfd > (uint64_t)hc.npeers * hc.vectors + 1 || hc.shm_idx != 0 || hc.bound > 1 ||
	    hc.reused_forced > 1 || hc.region_lost > 1 || hc.max_queue < 1 ||
	    hc.max_queue > (1ull << 31) || hc.max_queue_fds < 1 ||
	    hc.max_queue_fds > (1ull << 31) ||
	    (hc.region_kind != IVL_REGION_SHM && hc.region_kind != IVL_REGION_MEMFD &&
	     hc.region_kind != IVL_REGION_FILE && hc.region_kind != IVL_REGION_DIR) ||
	    (hc.len_reused_name &&
	     hc.reused_kind != IVL_REGION_SHM && hc.reused_kind != IVL_REGION_FILE))
		BAD("inconsistent limits");
	if (o->vectors != hc.vectors || (o->max_peers ? o->max_peers : 256) != hc.max_peers ||
	    o->raw != (bool)hc.raw)
		ivl__warn("the command line asks for other vectors, peers or header than the "
			  "running server: the running server's are kept (a restart changes "
			  "them)");
	so = *o;
	so.vectors = hc.vectors;
	so.max_peers = hc.max_peers;
	so.raw = hc.raw;
	so.max_queue = hc.max_queue;
	so.max_queue_fds = hc.max_queue_fds;
	ret = ivl__server_alloc(&s, &so);
	if (ret < 0)
		BAD("cannot allocate the server");
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		BAD("no fd limit");
	fs.max = rl.rlim_cur > (1u << 24) ? (1 << 24) : (int)rl.rlim_cur;
	if (!(fs.seen = calloc((size_t)fs.max, 1)))
		BAD("out of memory");
	/* Our own fds are not the state's to name. */
	fs.seen[s->epfd < fs.max ? s->epfd : 0] = 1;
	fs.seen[s->tfd < fs.max ? s->tfd : 0] = 1;
	fs.seen[s->reserve_fd < fs.max ? s->reserve_fd : 0] = 1;
	if ((ret = take_str(&r, hc.len_sock_path, &s->sock_path)) < 0 ||
	    (ret = take_str(&r, hc.len_sock_lock_path, &s->sock_lock_path)) < 0 ||
	    (ret = take_str(&r, hc.len_reused_name, &s->reused_name)) < 0 ||
	    (ret = take_str(&r, hc.len_region_name, &region_name)) < 0 ||
	    (ret = take_str(&r, hc.len_region_desc, &region_desc)) < 0)
		BAD("bad names");
	/* Names are removed on exit: each must be the one the command line
	 * gives, and the socket's must be the listener's own address. */
	if (s->sock_path && (!o->socket_path || strcmp(s->sock_path, o->socket_path)))
		BAD("another socket path than the command line's");
	if ((hc.sock_lock >= 0) != (s->sock_lock_path != NULL) ||
	    (s->sock_lock_path &&
	     (!s->sock_path || strncmp(s->sock_lock_path, s->sock_path, strlen(s->sock_path)) ||
	      strcmp(s->sock_lock_path + strlen(s->sock_path), ".lock"))))
		BAD("the socket lock is not <socket>.lock");
	if (!same_name(s->reused_name, o) || !same_name(region_name, o))
		BAD("another shared memory name than the command line's");
	for (char *c = region_desc; c && *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
	/* The region first: its size checks the header copy. */
	if ((ret = claim(&fs, hc.region_fd, FD_FILE)) < 0)
		BAD("the region fd is not an open file");
	ret = ivl__region_adopt(&s->region, hc.region_fd, (enum ivl_region_kind)hc.region_kind,
				region_name, region_desc);
	if (ret < 0)
		BAD("cannot map the region");
	s->nfds++;
	if (!hc.raw) {
		memcpy(&vcopy, &hc.valid, sizeof(vcopy));
		if (ivl_shm_validate(&vcopy, ivl_region_size(s->region), &s->valid) < 0 ||
		    s->valid.max_peers != hc.max_peers || s->valid.vectors != hc.vectors)
			BAD("the header copy does not fit the region");
	}
	if ((lr = adopt_lock(s, &fs, hc.region_lock, &s->region_lock)) < 0)
		BAD(lr == -EBADF ? "the region lock is not an open file"
				 : "the region lock is not ours");
	if ((lr = adopt_lock(s, &fs, hc.sock_lock, &s->sock_lock)) < 0)
		BAD(lr == -EBADF ? "the socket lock is not an open file"
				 : "the socket lock is not ours");
	if ((ret = claim(&fs, hc.lfd, FD_SOCK)) < 0)
		BAD("the listener is not an open socket");
	s->lfd = hc.lfd;
	s->nfds++;
	{
		int fl = fcntl(s->lfd, F_GETFL);
		int v = 0;
		socklen_t len = sizeof(v);

		if (getsockopt(s->lfd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 || !v || fl < 0 ||
		    fcntl(s->lfd, F_SETFL, fl | O_NONBLOCK) < 0)
			BAD("the listener does not listen");
	}
	if (hc.bound) {
		struct sockaddr_un sa;
		socklen_t len = sizeof(sa);

		memset(&sa, 0, sizeof(sa));
		if (!s->sock_path || getsockname(s->lfd, (struct sockaddr *)&sa, &len) < 0 ||
		    sa.sun_family != AF_UNIX || strncmp(sa.sun_path, s->sock_path, sizeof(sa.sun_path)))
			BAD("the listener is not bound to the socket path");
	}
	s->bound = hc.bound;
	s->reused_kind = (enum ivl_region_kind)hc.reused_kind;
	s->reused_forced = hc.reused_forced;
	s->region_lost = hc.region_lost;
	/* The fd table: [0] the region fd passed to peers, then eventfds. */
	if (hc.nfd > (r.len - r.off) / sizeof(int32_t))
		BAD("truncated fd table");
	if (!(tab = calloc(hc.nfd, sizeof(*tab))))
		BAD("out of memory");
	for (i = 0; i < hc.nfd; i++) {
		int32_t fd;

		if (!take_copy(&r, &fd, sizeof(fd)))
			BAD("truncated fd table");
		if ((ret = claim(&fs, fd, i ? FD_EVENT : FD_FILE)) < 0)
			BAD(i ? "an eventfd is not an open eventfd" : "the shared region fd is bad");
		if (!(tab[i] = ivl__sfd_new(s, fd)))
			BAD("out of memory");
	}
	shm_fd = tab[0]->fd;
	{
		struct stat a, b;

		if (fstat(shm_fd, &a) < 0 || fstat(ivl_region_fd(s->region), &b) < 0 ||
		    a.st_dev != b.st_dev || a.st_ino != b.st_ino)
			BAD("the fd passed to peers is not the region");
	}
	s->shm = tab[0];
	s->shm->refs++;
	if (!(owned = calloc(hc.nfd, 1)))
		BAD("out of memory");
	for (i = 0; i < hc.npeers; i++) {
		ret = restore_peer(s, &r, &fs, tab, owned, hc.nfd);
		if (ret < 0)
			BAD("a bad peer record");
	}
	for (i = 1; i < hc.nfd; i++)
		if (!owned[i])
			BAD("an eventfd of no peer");
	free(owned);
	owned = NULL;
	if (r.off != r.len)
		BAD("trailing bytes");
	/* Every eventfd belongs to a peer (the table holds only referenced
	 * fds); drop the table's own references. */
	for (i = 0; i < hc.nfd; i++) {
		if (tab[i]->refs < 2)
			BAD("an fd nobody uses");
		ivl__sfd_unref(s, tab[i]);
	}
	free(tab);
	tab = NULL;
	s->next_id = hc.next_id;
	s->serial = hc.serial;
	s->generation = hc.generation;
	s->accepted = hc.accepted;
	s->refused = hc.refused;
	s->dropped = hc.dropped;
	s->messages_sent = hc.messages_sent;
	for (i = 0; i < s->id_limit; i++)
		if (s->peers[i] && s->peers[i]->serial > s->serial)
			BAD("a peer serial from the future");
	if ((ret = ivl__server_watch(s)) < 0)
		BAD("epoll");
	free(fs.seen);
	free((void *)r.b);
	free(region_name);
	free(region_desc);
	/* Unsent messages go out now: mark every peer with a queue. */
	for (i = 0; i < s->id_limit; i++)
		if (s->peers[i] && s->peers[i]->qlen) {
			queued += s->peers[i]->qlen;
			ivl__peer_mark_dirty(s, s->peers[i]);
		}
	ivl__info("upgrade #%u: serving %s on %s again: %u peers and %zu unsent messages kept",
		  s->generation, ivl_region_describe(s->region),
		  s->sock_path ? s->sock_path : "(inherited socket)", s->npeers, queued);
	ivl__server_settle(s);
	/* Never fatal here: the peers are ours now.  A reader that cannot
	 * start is retried on the timer. */
	if (s->separate_reader)
		ivl__reader_restart(s);
	*out = s;
	return 0;
fail:
	free(owned);
	if (tab) {
		for (i = 0; i < hc.nfd && tab[i]; i++)
			ivl__sfd_unref(s, tab[i]);
		free(tab);
	}
	if (s) {
		/* Remove nothing on the strength of a broken state. */
		s->bound = false;
		free(s->reused_name);
		s->reused_name = NULL;
		memset(&s->valid, 0, sizeof(s->valid));
		if (s->region)
			ivl__region_forget_name(s->region);
		ivl__close(s->sock_lock);
		s->sock_lock = -1;
		ivl_server_free(s);
	}
	free(fs.seen);
	free((void *)r.b);
	free(region_name);
	free(region_desc);
	return ret < 0 ? ret : -EINVAL;
}
