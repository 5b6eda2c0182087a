/* SPDX-License-Identifier: MIT */
/*
 * Crash survival (docs/upgrade.md): the process that parses peer input is
 * not the one that holds the state.
 *
 * The keeper (the server process) holds every fd and the whole state and
 * sends every message; it never reads a byte a peer wrote.  The reader, a
 * fork() of the keeper, gets each peer socket over a SOCK_SEQPACKET
 * socketpair (SCM_RIGHTS) and reads it: the optional hello, fds, anything
 * after the hello, EOF.  It reports fixed-size records, which the keeper
 * treats as untrusted.  The reader MSG_PEEKs until a whole hello is there
 * and consumes it only after its HELLO record is written, so a reader
 * killed in between leaves the bytes for the next one, which is told which
 * bytes to expect (struct ivl__rd_peer).  A dead reader is reaped and
 * replaced by a new fork that gets every live socket again.
 *
 * The reader runs after fork() without exec: it calls no malloc (its table
 * is mmap()ed) and no logging, and exits only with a status for the
 * keeper to log.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "ivshmem/server-internal.h"

#define HELLO_LEN ((unsigned)sizeof(struct ivl_wire_hello))
#define RD_CHAN 3	     /* the reader's channel fd */
#define RECORDS_PER_CALL 256 /* per process() call, so peers are not starved */
#define RESTART_WINDOW_MS 10000
#define RESTART_BURST 50
#define RESTART_DELAY_MS 1000

/* Exit statuses of a reader, for the keeper's log. */
enum {
	RD_EXIT_KEEPER_GONE = 0,
	RD_EXIT_SETUP = 2,   /* signals, fds, epoll */
	RD_EXIT_CHANNEL = 3, /* the channel failed */
	RD_EXIT_PROTOCOL = 4, /* a message from the keeper made no sense */
	RD_EXIT_MEMORY = 5,
};

/* ---- the reader (child) ------------------------------------------------- */

struct rd_ent {
	uint32_t serial;
	uint16_t id;
	uint8_t used, state, have;
	uint8_t hello[sizeof(struct ivl_wire_hello)];
};

struct rd {
	int ep;
	struct rd_ent *tab; /* indexed by fd */
	size_t cap;
};

static struct rd_ent *rd_slot(struct rd *r, int fd)
{
	if (fd < 0)
		return NULL;
	if ((size_t)fd >= r->cap) {
		size_t ncap = r->cap ? r->cap : 256;
		void *n;

		while (ncap <= (size_t)fd)
			ncap *= 2;
		n = r->tab ? mremap(r->tab, r->cap * sizeof(*r->tab), ncap * sizeof(*r->tab),
				    MREMAP_MAYMOVE)
			   : mmap(NULL, ncap * sizeof(*r->tab), PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (n == MAP_FAILED)
			return NULL;
		r->tab = n;
		r->cap = ncap;
	}
	return &r->tab[fd];
}

static void rd_report(const struct rd_ent *e, uint32_t type, uint16_t reason, const uint8_t *hello)
{
	struct ivl__rd_rec rec;

	memset(&rec, 0, sizeof(rec));
	rec.type = type;
	rec.serial = e->serial;
	rec.id = e->id;
	rec.reason = reason;
	if (hello)
		memcpy(rec.hello, hello, sizeof(rec.hello));
	for (;;) {
		ssize_t n = send(RD_CHAN, &rec, sizeof(rec), MSG_NOSIGNAL);

		if (n == (ssize_t)sizeof(rec))
			return;
		if (n < 0 && errno == EINTR)
			continue;
		_exit(n < 0 && errno == EPIPE ? RD_EXIT_KEEPER_GONE : RD_EXIT_CHANNEL);
	}
}

/* Report, and close the reader's copy of the socket.  The keeper's copy
 * keeps the connection open until the keeper acts on the record. */
static void rd_forget(struct rd *r, int fd, struct rd_ent *e, uint32_t type, uint16_t reason)
{
	rd_report(e, type, reason, NULL);
	epoll_ctl(r->ep, EPOLL_CTL_DEL, fd, NULL); /* the keeper holds the file */
	close(fd);
	e->used = 0;
}

unsigned ivl__close_passed_fds(struct msghdr *mh)
{
	struct cmsghdr *cm;
	unsigned n = 0;

	for (cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t k = 0; k < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int), sizeof(fd));
			close(fd);
			n++;
		}
	}
	return n;
}

/* Take @len peeked bytes for good. */
static bool rd_consume(int fd, size_t len)
{
	uint8_t buf[sizeof(struct ivl_wire_hello)];
	ssize_t n;

	do
		n = recv(fd, buf, len, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)len;
}

static void rd_peer(struct rd *r, int fd, uint32_t events)
{
	struct rd_ent *e = (size_t)fd < r->cap ? &r->tab[fd] : NULL;
	bool hup = events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);

	if (!e || !e->used)
		return;
	/* Every round ends the peer, waits (edge-triggered: new bytes
	 * wake us), or moves the state forward: at most three rounds. */
	for (;;) {
		uint8_t buf[sizeof(struct ivl_wire_hello)], h[sizeof(struct ivl_wire_hello)];
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(16 * sizeof(int))];
		} c;
		size_t want = HELLO_LEN - e->have ? HELLO_LEN - e->have : 1;
		struct iovec iov = {buf, want};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = c.b,
				    .msg_controllen = sizeof(c.b)};
		char name[IVL_NAME_LEN + 1];
		ssize_t n = recvmsg(fd, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		int ret;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			if (errno == ECONNRESET)
				rd_forget(r, fd, e, IVL__RD_EOF, 0);
			else
				rd_forget(r, fd, e, IVL__RD_DROP, IVL__RD_WHY_RECV);
			return;
		}
		if (ivl__close_passed_fds(&mh) || (mh.msg_flags & MSG_CTRUNC)) {
			rd_forget(r, fd, e, IVL__RD_DROP, IVL__RD_WHY_FDS);
			return;
		}
		if (n == 0) {
			rd_forget(r, fd, e, IVL__RD_EOF, 0);
			return;
		}
		if (e->state == IVL__RD_EXPECT) {
			memcpy(h, e->hello, e->have);
			memcpy(h + e->have, buf, (size_t)n);
			ret = ivl__hello_check(h, e->have + (size_t)n, name);
			if (ret < 0) {
				rd_forget(r, fd, e, IVL__RD_DROP,
					  ret == -EPROTO ? IVL__RD_WHY_NOT_HELLO
							 : IVL__RD_WHY_VERSION);
				return;
			}
			if (ret == 0) {
				if (hup) /* left halfway through its hello */
					rd_forget(r, fd, e, IVL__RD_EOF, 0);
				return;
			}
			/* Reported first, consumed after: a reader killed in
			 * between leaves the bytes to the next one. */
			rd_report(e, IVL__RD_HELLO, 0, h);
			memcpy(e->hello, h, sizeof(h));
			e->state = IVL__RD_DONE;
		} else if (e->have < HELLO_LEN) {
			/* A reported hello may still be in the socket (its
			 * reader died before consuming it). */
			if (memcmp(buf, e->hello + e->have, (size_t)n)) {
				rd_forget(r, fd, e, IVL__RD_DROP, IVL__RD_WHY_AFTER);
				return;
			}
			if ((size_t)n < want) {
				if (hup)
					rd_forget(r, fd, e, IVL__RD_EOF, 0);
				return;
			}
		} else {
			rd_forget(r, fd, e, IVL__RD_DROP, IVL__RD_WHY_AFTER);
			return;
		}
		if (!rd_consume(fd, want)) {
			rd_forget(r, fd, e, IVL__RD_DROP, IVL__RD_WHY_RECV);
			return;
		}
		e->have = HELLO_LEN;
		rd_report(e, IVL__RD_CONSUMED, 0, NULL);
	}
}

/* Sockets handed over by the keeper (trusted, but checked). */
static void rd_take(struct rd *r)
{
	for (;;) {
		struct ivl__rd_peer m;
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(4 * sizeof(int))];
		} c;
		struct iovec iov = {&m, sizeof(m)};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = c.b,
				    .msg_controllen = sizeof(c.b)};
		struct cmsghdr *cm = NULL;
		struct epoll_event ev;
		struct rd_ent *e;
		int fd = -1;
		ssize_t n = recvmsg(RD_CHAN, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
			_exit(n == 0 ? RD_EXIT_KEEPER_GONE : RD_EXIT_CHANNEL);
		cm = CMSG_FIRSTHDR(&mh);
		if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)) && !CMSG_NXTHDR(&mh, cm))
			memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
		else
			ivl__close_passed_fds(&mh);
		if (fd < 0 || n != (ssize_t)sizeof(m) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
		    m.state > IVL__RD_DONE || m.have > HELLO_LEN)
			_exit(RD_EXIT_PROTOCOL);
		if (!(e = rd_slot(r, fd)))
			_exit(RD_EXIT_MEMORY);
		e->serial = m.serial;
		e->id = m.id;
		e->state = m.state;
		e->have = m.have;
		memcpy(e->hello, m.hello, sizeof(e->hello));
		e->used = 1;
		/* Edge-triggered: a peeked, incomplete hello does not wake
		 * us again until more bytes (or EOF) arrive.  Adding a
		 * socket that is already readable reports it at once. */
		ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
		ev.data.u64 = (uint64_t)fd;
		if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			_exit(RD_EXIT_SETUP);
	}
}

__attribute__((noreturn)) static void reader_main(int chan, pid_t keeper, void *map, size_t map_len)
{
	struct rd r = {.ep = -1};
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = RD_CHAN};
	sigset_t none;
	int sig;

	/* Nothing of the keeper's signal set-up applies here: default
	 * actions (SIGTERM kills a reader too), nothing blocked. */
	for (sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigaction(sig, &sa, NULL); /* fails harmlessly for KILL, STOP */
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != keeper)
		_exit(RD_EXIT_KEEPER_GONE);
	/* Hold nothing but the channel (and stdio): no listener, eventfd,
	 * lock or region, and no mapping of the region either. */
	if (map)
		munmap(map, map_len);
	if (chan != RD_CHAN && dup2(chan, RD_CHAN) < 0)
		_exit(RD_EXIT_SETUP);
	/* Not even the caller's stdio: a daemon's start-up pipe or a test's
	 * output pipe would stay open.  The keeper logs how a reader ended. */
	{
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(RD_EXIT_SETUP);
	}
	if (close_range(RD_CHAN + 1, ~0u, 0) < 0)
		_exit(RD_EXIT_SETUP);
	r.ep = epoll_create1(EPOLL_CLOEXEC);
	if (r.ep < 0 || epoll_ctl(r.ep, EPOLL_CTL_ADD, RD_CHAN, &ev) < 0)
		_exit(RD_EXIT_SETUP);
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(r.ep, evs, (int)IVL_ARRAY_SIZE(evs), -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			_exit(RD_EXIT_SETUP);
		for (int i = 0; i < n; i++) {
			int fd = (int)evs[i].data.u64;

			if (fd == RD_CHAN) {
				if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
					rd_take(&r);
			} else {
				rd_peer(&r, fd, evs[i].events);
			}
		}
	}
}

/* ---- the keeper ------------------------------------------------------- */

static const char *const why_text[] = {
    [IVL__RD_WHY_NOT_HELLO] = "wrote something that is not a hello",
    [IVL__RD_WHY_VERSION] = "hello of unknown version or size",
    [IVL__RD_WHY_FDS] = "sent file descriptors",
    [IVL__RD_WHY_AFTER] = "wrote data after its hello",
    [IVL__RD_WHY_RECV] = "receive failed",
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ivl__reader_record(struct ivl_server *s, const void *buf, size_t len)
{
	struct ivl__rd_rec r;
	struct ivl__speer *p;
	char name[IVL_NAME_LEN + 1];

	if (len != sizeof(r))
		return -EPROTO;
	memcpy(&r, buf, sizeof(r));
	if (r.type < IVL__RD_HELLO || r.type > IVL__RD_DROP || r.id >= s->id_limit ||
	    (r.type == IVL__RD_DROP) != (r.reason != 0) || r.reason > IVL__RD_WHY_MAX)
		return -EPROTO;
	p = s->peers[r.id];
	if (!p || p->serial != r.serial || p->doomed) {
		/* A peer that left (the keeper saw its hang-up first, or
		 * dropped it): normal.  A serial never given out is not. */
		if (r.serial == 0 || r.serial > s->serial)
			return -EPROTO;
		s->rd_stale++;
		return 1;
	}
	if (!p->handed)
		return -EPROTO; /* this reader was never given the socket */
	switch (r.type) {
	case IVL__RD_HELLO:
		/* One per peer and reader: a new reader is told the hello
		 * is done and never reports it again. */
		if (p->hello_done || ivl__hello_check(r.hello, sizeof(r.hello), name) != 1 ||
		    memcmp(r.hello, p->hello, p->hello_have))
			return -EPROTO;
		p->hello_sock = (uint8_t)(HELLO_LEN - p->hello_have);
		memcpy(p->hello, r.hello, sizeof(p->hello));
		p->hello_have = HELLO_LEN;
		memcpy(p->name, name, sizeof(p->name));
		ivl__peer_hello_done(s, p);
		return 0;
	case IVL__RD_CONSUMED:
		if (!p->hello_done || !p->hello_sock)
			return -EPROTO;
		p->hello_sock = 0;
		return 0;
	case IVL__RD_EOF:
		ivl__peer_doom(s, p, NULL);
		return 0;
	default: /* IVL__RD_DROP */
		if (r.reason != IVL__RD_WHY_RECV)
			s->dropped++;
		ivl__peer_doom(s, p, why_text[r.reason]);
		return 0;
	}
}

static void chan_want_out(struct ivl_server *s, bool out)
{
	struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0),
				 .data.u64 = IVL__EV_READER << 56};

	if (s->rd_want_out != out && epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->rd_chan, &ev) == 0)
		s->rd_want_out = out;
}

static int send_peer(struct ivl_server *s, struct ivl__speer *p)
{
	struct ivl__rd_peer m;
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} c;
	struct iovec iov = {&m, sizeof(m)};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b, .msg_controllen = sizeof(c.b)};
	struct cmsghdr *cm;

	memset(&m, 0, sizeof(m));
	memset(&c, 0, sizeof(c));
	m.serial = p->serial;
	m.id = p->id;
	if (p->hello_done) {
		m.state = IVL__RD_DONE;
		m.have = (uint8_t)(HELLO_LEN - p->hello_sock);
		memcpy(m.hello, p->hello, sizeof(m.hello));
	} else {
		m.state = IVL__RD_EXPECT;
		m.have = (uint8_t)p->hello_have;
		memcpy(m.hello, p->hello, p->hello_have);
	}
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &p->sock, sizeof(int));
	for (;;) {
		ssize_t n = sendmsg(s->rd_chan, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n == (ssize_t)sizeof(m))
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : -EIO;
	}
}

void ivl__reader_handoff(struct ivl_server *s)
{
	uint32_t i;

	if (s->rd_chan < 0 || !s->rd_handoff)
		return;
	for (i = 0; i < s->id_limit; i++) {
		struct ivl__speer *p = s->peers[i];
		int ret;

		if (!p || p->handed || p->doomed)
			continue;
		ret = send_peer(s, p);
		if (ret == -ETOOMANYREFS) {
			/* The in-flight fd budget recovers as the reader
			 * takes its sockets: retry on the timer. */
			ivl__server_arm_timer(s, 20);
			return;
		}
		if (ret == -EAGAIN || ret == -ENOBUFS) {
			chan_want_out(s, true);
			return;
		}
		if (ret < 0) /* the reader is gone: its EOF comes next */
			return;
		p->handed = true;
	}
	s->rd_handoff = false;
	chan_want_out(s, false);
}

int ivl__reader_adopt(struct ivl_server *s, int chan, pid_t pid)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = IVL__EV_READER << 56};
	uint32_t i;

	if (s->rd_chan >= 0 || s->rd_pid > 0)
		ivl__reader_stop(s, true);
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, chan, &ev) < 0) {
		int err = -errno;

		ivl__close(chan);
		if (pid > 0) {
			kill(pid, SIGKILL);
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
		return err;
	}
	s->rd_chan = chan;
	s->rd_pid = pid;
	s->rd_want_out = false;
	s->rd_restart_due = false;
	s->nfds++;
	s->rd_starts++;
	for (i = 0; i < s->id_limit; i++)
		if (s->peers[i])
			s->peers[i]->handed = false;
	s->rd_handoff = true;
	ivl__info("reader pid %ld started (#%u)", (long)pid, s->rd_starts);
	ivl__reader_handoff(s);
	return 0;
}

int ivl__reader_start(struct ivl_server *s)
{
	pid_t keeper = getpid(), pid;
	int sv[2], fl, ret;

	if (s->rd_chan >= 0)
		return 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		ret = -errno;
		ivl__err("cannot start a reader: socketpair: %s", strerror(-ret));
		return ret;
	}
	fl = fcntl(sv[0], F_GETFL);
	if (fl < 0 || fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) < 0 || (pid = fork()) < 0) {
		ret = -errno;
		ivl__err("cannot start a reader: %s", strerror(-ret));
		ivl__close(sv[0]);
		ivl__close(sv[1]);
		return ret;
	}
	if (pid == 0)
		reader_main(sv[1], keeper, s->region ? ivl_region_base(s->region) : NULL,
			    s->region ? (size_t)ivl_region_size(s->region) : 0);
	ivl__close(sv[1]);
	return ivl__reader_adopt(s, sv[0], pid);
}

/* Reap the reader; @killed: we killed it (not worth a warning). */
static void reap(struct ivl_server *s, bool killed)
{
	pid_t pid = s->rd_pid, r;
	int st = 0;

	s->rd_pid = 0;
	if (pid <= 0)
		return;
	kill(pid, SIGKILL); /* our unreaped child: its pid cannot be reused */
	do
		r = waitpid(pid, &st, 0);
	while (r < 0 && errno == EINTR);
	if (killed)
		ivl__debug("reader pid %ld stopped", (long)pid);
	else if (r != pid)
		ivl__warn("reader pid %ld is gone", (long)pid);
	else if (WIFSIGNALED(st))
		ivl__warn("reader pid %ld was killed by signal %d", (long)pid, WTERMSIG(st));
	else
		ivl__warn("reader pid %ld exited with status %d", (long)pid, WEXITSTATUS(st));
}

/* Read one record from the channel: 1 (applied or ignored), 0 (nothing
 * more now), -EPIPE (end of the channel), -EPROTO (a bad record). */
static int read_record(struct ivl_server *s)
{
	uint8_t b[sizeof(struct ivl__rd_rec) + 1];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(16 * sizeof(int))];
	} c;
	struct iovec iov = {b, sizeof(b)};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b, .msg_controllen = sizeof(c.b)};
	ssize_t n;

	do
		n = recvmsg(s->rd_chan, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n <= 0)
		return -EPIPE;
	if (ivl__close_passed_fds(&mh) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		return -EPROTO;
	return ivl__reader_record(s, b, (size_t)n) < 0 ? -EPROTO : 1;
}

static void close_chan(struct ivl_server *s)
{
	if (s->rd_chan < 0)
		return;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->rd_chan, NULL);
	s->rd_chan = ivl__close(s->rd_chan);
	s->rd_want_out = false;
	s->nfds--;
}

void ivl__reader_stop(struct ivl_server *s, bool drain)
{
	reap(s, true);
	/* The reader is dead: what it wrote before is all there is, and
	 * each hello it consumed was reported first. */
	while (drain && s->rd_chan >= 0) {
		int ret = read_record(s);

		if (ret == -EPROTO)
			s->rd_bad++;
		if (ret <= 0)
			break;
	}
	close_chan(s);
}

/* Start the next reader on the retry timer. */
static void restart_later(struct ivl_server *s)
{
	if (!s->rd_restart_due)
		ivl__warn("no reader: the next one starts in %d ms", RESTART_DELAY_MS);
	s->rd_restart_due = true;
	ivl__server_arm_timer(s, RESTART_DELAY_MS);
}

void ivl__reader_restart(struct ivl_server *s)
{
	int64_t now = now_ms();

	if (!s->separate_reader)
		return; /* an adopted channel of a test: nothing to fork */
	if (now - s->rd_window_ms > RESTART_WINDOW_MS) {
		s->rd_window_ms = now;
		s->rd_window_n = 0;
	}
	if (++s->rd_window_n > RESTART_BURST || ivl__reader_start(s) < 0)
		restart_later(s);
}

void ivl__reader_timer(struct ivl_server *s)
{
	if (s->rd_restart_due && s->rd_chan < 0) {
		s->rd_restart_due = false;
		if (ivl__reader_start(s) < 0)
			restart_later(s);
	}
	ivl__reader_handoff(s);
}

void ivl__reader_event(struct ivl_server *s, uint32_t events)
{
	int i;

	if (s->rd_chan < 0)
		return;
	if (events & EPOLLOUT)
		ivl__reader_handoff(s);
	for (i = 0; i < RECORDS_PER_CALL; i++) {
		int ret = read_record(s);

		if (ret == 0)
			return;
		if (ret == -EPROTO) {
			s->rd_bad++;
			ivl__warn("reader pid %ld sent a malformed or forged record: replacing it",
				  (long)s->rd_pid);
			reap(s, true);
			close_chan(s);
			ivl__reader_restart(s);
			return;
		}
		if (ret == -EPIPE) {
			/* Died (or closed its end): every record it wrote
			 * was read above. */
			reap(s, false);
			close_chan(s);
			ivl__reader_restart(s);
			return;
		}
	}
}
