/* SPDX-License-Identifier: MIT */
/*
 * The UNIX and TCP channels (docs/sdm.md): the master listens, slaves
 * connect, every connection runs (optionally) the secure handshake, then
 * hello/welcome, then signals and keepalives.  All sockets are non-blocking
 * and live in the object's epoll set; connections are freed only at the end
 * of ivl_sdm_process(), so a handler that sends can never free what the
 * event loop is still looking at.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "core/internal.h"
#include "sdm-internal.h"

/* ---- addresses ---------------------------------------------------------- */

static int unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len)
{
	size_t n = strlen(path);

	if (n >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return false;
}

static int resolve(const char *host, uint16_t port, bool passive, struct addrinfo **res)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
	char serv[8];
	int r;

	hints.ai_flags = passive ? AI_PASSIVE : 0;
	snprintf(serv, sizeof(serv), "%u", port);
	r = getaddrinfo(host, serv, &hints, res);
	if (r == EAI_SYSTEM)
		return -errno;
	return r ? -EHOSTUNREACH : 0;
}

/* ---- connections ------------------------------------------------------------ */

static struct ivl__sdm_conn *conn_new(struct ivl_sdm *s, int fd, enum ivl__sdm_conn_state st)
{
	struct ivl__sdm_conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev = {.events = EPOLLIN};

	if (!c)
		return NULL;
	c->fd = fd;
	c->state = st;
	c->born_ms = c->last_rx_ms = c->last_tx_ms = ivl__sdm_now_ms();
	if (st == IVL__C_CONNECTING) {
		ev.events |= EPOLLOUT;
		c->want_out = true;
	}
	ev.data.ptr = c;
	memcpy(c->sec.psk, s->key, sizeof(c->sec.psk));
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		ivl__sdm_sec_wipe(&c->sec);
		free(c);
		return NULL;
	}
	return c;
}

static void conn_free(struct ivl_sdm *s, struct ivl__sdm_conn *c)
{
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	ivl__close(c->fd);
	if (s->dirty == c)
		s->dirty = NULL;
	if (s->master && c->state == IVL__C_UP && s->slaves[c->id] == c) {
		s->slaves[c->id] = NULL;
		s->current_slaves--;
		ivl__info("sdm: slave %u left", c->id);
	}
	ivl__sdm_sec_wipe(&c->sec);
	free(c);
}

static void conn_kill(struct ivl_sdm *s, struct ivl__sdm_conn *c, const char *why)
{
	if (!c->dead) {
		ivl__debug("sdm: dropping connection (slave %u): %s", c->id, why ? why : "closed");
		c->dead = true;
		if (why)
			s->st.conn_dropped++;
	}
}

/* Only a change costs a system call: the data path (everything sent at
 * once) never touches the epoll set. */
static void set_out_interest(struct ivl_sdm *s, struct ivl__sdm_conn *c, bool want)
{
	struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};

	if (c->want_out == want)
		return;
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->want_out = want;
}

/* Keyed v2: seal the staged inner frames as one SEALED_BATCH, if the
 * output buffer has room for it (else -EAGAIN: they stay staged). */
static int seal_staged(struct ivl_sdm *s, struct ivl__sdm_conn *c)
{
	int n;

	if (!c->ptx_len)
		return 0;
	if (IVL__SDM_TXBUF - c->tx_len < IVL_SDM_MAX_FRAME)
		return -EAGAIN;
	n = ivl__sdm_sec_seal_batch(&c->sec, c->ptx, c->ptx_len, c->tx + c->tx_len,
				    IVL__SDM_TXBUF - c->tx_len);
	if (n < 0) {
		conn_kill(s, c, "sealing failed");
		return -EPIPE;
	}
	c->tx_len += (size_t)n;
	c->ptx_len = 0;
	return 0;
}

/* Send what is queued with as few send() calls as the socket allows. */
static int flush(struct ivl_sdm *s, struct ivl__sdm_conn *c)
{
	size_t off = 0;

	if (seal_staged(s, c) == -EPIPE)
		return -EPIPE;
	if (c->tx_len == 0)
		return 0;

	while (off < c->tx_len) {
		ssize_t n = send(c->fd, c->tx + off, c->tx_len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			conn_kill(s, c, NULL);
			return -EPIPE;
		}
		off += (size_t)n;
	}
	if (off) {
		memmove(c->tx, c->tx + off, c->tx_len - off);
		c->tx_len -= off;
		c->last_tx_ms = ivl__sdm_now_ms();
		/* Room again for frames that were staged behind a full buffer. */
		if (c->ptx_len && c->tx_len == 0)
			return flush(s, c);
	}
	set_out_interest(s, c, c->tx_len > 0);
	return 0;
}

/* Queue one frame (sealed once the secure stream is up) without sending. */
static int conn_queue(struct ivl_sdm *s, struct ivl__sdm_conn *c, uint8_t type, const void *p,
		      size_t len)
{
	uint8_t plain[IVL_SDM_HDR_LEN + IVL_SDM_MAX_PAYLOAD];
	int n;

	if (c->dead)
		return -EPIPE;
	if (c->sec.ready && c->sec.version >= 2) {
		/* Staged, sealed by flush() with the rest of the batch. */
		if (c->ptx_len + IVL_SDM_HDR_LEN + len > sizeof(c->ptx)) {
			n = seal_staged(s, c);
			if (n == -EAGAIN) {
				n = flush(s, c);
				if (n == 0 && c->ptx_len)
					n = -EAGAIN;
			}
			if (n < 0)
				return n;
		}
		n = ivl__sdm_frame_encode(c->ptx + c->ptx_len, sizeof(c->ptx) - c->ptx_len, type, p,
					  len);
		if (n < 0)
			return n;
		c->ptx_len += (size_t)n;
		return 0;
	}
	/* Check room before sealing: a sealed frame that is not sent would
	 * desynchronise the stream. */
	if (IVL__SDM_TXBUF - c->tx_len < IVL_SDM_MAX_FRAME) {
		n = flush(s, c);
		if (n < 0)
			return n;
		if (IVL__SDM_TXBUF - c->tx_len < IVL_SDM_MAX_FRAME)
			return -EAGAIN;
	}
	if (c->sec.ready) {
		n = ivl__sdm_frame_encode(plain, sizeof(plain), type, p, len);
		if (n < 0)
			return n;
		n = ivl__sdm_sec_seal(&c->sec, plain, (size_t)n, c->tx + c->tx_len,
				      IVL__SDM_TXBUF - c->tx_len);
	} else {
		n = ivl__sdm_frame_encode(c->tx + c->tx_len, IVL__SDM_TXBUF - c->tx_len, type, p,
					  len);
	}
	if (n < 0)
		return n;
	c->tx_len += (size_t)n;
	return 0;
}

/* Queue one frame and send it at once. */
static int conn_send(struct ivl_sdm *s, struct ivl__sdm_conn *c, uint8_t type, const void *p,
		     size_t len)
{
	int r = conn_queue(s, c, type, p, len);

	return r < 0 ? r : flush(s, c);
}

static void refuse(struct ivl_sdm *s, struct ivl__sdm_conn *c, uint16_t reason)
{
	uint8_t p[IVL_SDM_REFUSE_LEN];

	ivl__sdm_refuse_encode(p, reason);
	conn_send(s, c, IVL_SDM_F_REFUSE, p, sizeof(p));
	s->st.conn_refused++;
	ivl__info("sdm: refused a slave: %s", ivl__sdm_refusal_name(reason));
	c->dead = true;
}

/* ---- master side ---------------------------------------------------------- */

static uint16_t admit(struct ivl_sdm *s, uint16_t want, uint16_t *reason)
{
	uint16_t id = want;

	if (id > s->max_slaves) {
		*reason = IVL_SDM_R_BAD_ID;
		return 0;
	}
	if (s->current_slaves >= s->max_slaves) {
		*reason = IVL_SDM_R_FULL;
		return 0;
	}
	if (id == 0) {
		for (id = 1; id <= s->max_slaves && s->slaves[id]; id++)
			;
		if (id > s->max_slaves) {
			*reason = IVL_SDM_R_FULL;
			return 0;
		}
	} else if (s->slaves[id]) {
		*reason = IVL_SDM_R_ID_TAKEN;
		return 0;
	}
	return id;
}

static void master_hello(struct ivl_sdm *s, struct ivl__sdm_conn *c, const struct ivl__sdm_frame *f)
{
	struct ivl__sdm_hello h;
	struct ivl__sdm_welcome w;
	uint8_t p[IVL_SDM_WELCOME_LEN];
	uint16_t reason = 0, id;

	if (ivl__sdm_hello_decode(f, &h) < 0)
		return conn_kill(s, c, "bad hello");
	if (h.version != IVL_SDM_FRAME_VERSION)
		return refuse(s, c, IVL_SDM_R_BAD_VERSION);
	id = admit(s, h.id, &reason);
	if (!id)
		return refuse(s, c, reason);
	w = (struct ivl__sdm_welcome){.version = IVL_SDM_FRAME_VERSION,
				      .id = id,
				      .max_slaves = s->max_slaves,
				      .keepalive_ms = s->keepalive_ms};
	ivl__sdm_welcome_encode(p, &w);
	c->id = id;
	c->state = IVL__C_UP;
	s->slaves[id] = c;
	s->current_slaves++;
	s->st.conn_accepted++;
	ivl__info("sdm: slave %u joined", id);
	conn_send(s, c, IVL_SDM_F_WELCOME, p, sizeof(p));
}

/* ---- slave side ------------------------------------------------------------- */

static bool fatal(int err)
{
	return err == -EACCES || err == -EPROTONOSUPPORT;
}

static void slave_lost(struct ivl_sdm *s, int why)
{
	int64_t now = ivl__sdm_now_ms();

	if (!fatal(s->state))
		s->state = why;
	s->next_connect_ms = now + s->rc_delay_ms;
	s->rc_delay_ms = s->rc_delay_ms > s->rc_max_ms / 2 ? s->rc_max_ms : s->rc_delay_ms * 2;
}

static void slave_send_hello(struct ivl_sdm *s, struct ivl__sdm_conn *c)
{
	uint8_t p[IVL_SDM_HELLO_LEN];

	ivl__sdm_hello_encode(p, s->want_id);
	c->state = IVL__C_WELCOME;
	conn_send(s, c, IVL_SDM_F_HELLO, p, sizeof(p));
}

static void slave_connected(struct ivl_sdm *s, struct ivl__sdm_conn *c)
{
	uint8_t p[IVL_SDM_KX_HELLO_LEN];

	if (s->have_key) {
		if (ivl__sdm_sec_client_hello(&c->sec, p) < 0)
			return conn_kill(s, c, "key generation failed");
		c->state = IVL__C_KX_REPLY;
		conn_send(s, c, IVL_SDM_F_KX_HELLO, p, sizeof(p));
	} else {
		slave_send_hello(s, c);
	}
}

static void slave_refused(struct ivl_sdm *s, struct ivl__sdm_conn *c,
			  const struct ivl__sdm_frame *f)
{
	uint16_t reason;

	if (ivl__sdm_refuse_decode(f, &reason) < 0)
		return conn_kill(s, c, "bad refusal");
	s->state = ivl__sdm_refusal_errno(reason);
	ivl__warn("sdm: the master refused us: %s", ivl__sdm_refusal_name(reason));
	c->dead = true;
}

static void slave_welcome(struct ivl_sdm *s, struct ivl__sdm_conn *c,
			  const struct ivl__sdm_frame *f)
{
	struct ivl__sdm_welcome w;

	if (ivl__sdm_welcome_decode(f, &w) < 0 || w.version != IVL_SDM_FRAME_VERSION ||
	    (s->want_id && w.id != s->want_id))
		return conn_kill(s, c, "bad welcome");
	c->state = IVL__C_UP;
	s->id = s->want_id = w.id;
	s->max_slaves = w.max_slaves;
	/* The master judges liveness with its own period: follow it. */
	if (w.keepalive_ms >= 10 && w.keepalive_ms <= 60000)
		s->keepalive_ms = w.keepalive_ms;
	s->state = 0;
	s->rc_delay_ms = s->rc_min_ms;
	if (s->ever_welcomed)
		s->st.reconnects++;
	s->ever_welcomed = true;
	ivl__info("sdm: registered as slave %u", w.id);
}

/* ---- frames -------------------------------------------------------------- */

/* A frame of the registered or hello phase (plaintext or opened). */
static int inner_frame(struct ivl_sdm *s, struct ivl__sdm_conn *c, const struct ivl__sdm_frame *f)
{
	struct ivl_sdm_signal sig;

	switch (c->state) {
	case IVL__C_HELLO:
		if (f->type != IVL_SDM_F_HELLO)
			break;
		master_hello(s, c, f);
		return 0;
	case IVL__C_WELCOME:
		if (f->type == IVL_SDM_F_REFUSE) {
			slave_refused(s, c, f);
			return 0;
		}
		if (f->type != IVL_SDM_F_WELCOME)
			break;
		slave_welcome(s, c, f);
		return 0;
	case IVL__C_UP:
		if (f->type == IVL_SDM_F_PING)
			return 0;
		if (f->type != IVL_SDM_F_SIGNAL || ivl__sdm_signal_decode(f, &sig) < 0)
			break;
		return ivl__sdm_deliver(s, &sig, s->master ? c->id : IVL_SDM_MASTER);
	default:
		break;
	}
	conn_kill(s, c, "unexpected frame");
	return 0;
}

static int handshake_frame(struct ivl_sdm *s, struct ivl__sdm_conn *c,
			   const struct ivl__sdm_frame *f)
{
	uint8_t out[IVL_SDM_KX_REPLY_LEN];
	int r;

	switch (c->state) {
	case IVL__C_KX_HELLO:
		/* A slave without the key: tell it why, then close. */
		if (f->type == IVL_SDM_F_HELLO) {
			refuse(s, c, IVL_SDM_R_UNAUTHENTICATED);
			return 0;
		}
		if (f->type != IVL_SDM_F_KX_HELLO)
			break;
		r = ivl__sdm_sec_server_reply(&c->sec, f, out);
		if (r == -EPROTONOSUPPORT)
			refuse(s, c, IVL_SDM_R_BAD_VERSION);
		if (r < 0)
			break;
		c->state = IVL__C_KX_AUTH;
		conn_send(s, c, IVL_SDM_F_KX_REPLY, out, IVL_SDM_KX_REPLY_LEN);
		return 0;
	case IVL__C_KX_AUTH:
		if (f->type != IVL_SDM_F_KX_AUTH)
			break;
		if (ivl__sdm_sec_server_finish(&c->sec, f) < 0) {
			refuse(s, c, IVL_SDM_R_UNAUTHENTICATED);
			s->st.conn_dropped++;
			return 0;
		}
		c->secure = true;
		c->state = IVL__C_HELLO;
		return 0;
	case IVL__C_KX_REPLY:
		if (f->type == IVL_SDM_F_REFUSE) {
			slave_refused(s, c, f);
			return 0;
		}
		if (f->type != IVL_SDM_F_KX_REPLY)
			break;
		r = ivl__sdm_sec_client_auth(&c->sec, f, out);
		if (r == -EACCES) {
			s->state = -EACCES;
			ivl__err("sdm: the master failed authentication (wrong key?)");
		}
		if (r < 0)
			break;
		c->secure = true;
		/* KX_AUTH itself travels in the clear: it carries the header
		 * the master needs to open everything that follows. */
		c->sec.ready = false;
		conn_send(s, c, IVL_SDM_F_KX_AUTH, out, IVL_SDM_KX_AUTH_LEN);
		c->sec.ready = true;
		slave_send_hello(s, c);
		return 0;
	case IVL__C_HELLO:
		/* A master without a key cannot authenticate anyone. */
		if (f->type == IVL_SDM_F_KX_HELLO) {
			refuse(s, c, IVL_SDM_R_UNAUTHENTICATED);
			return 0;
		}
		return inner_frame(s, c, f);
	default:
		if (s->have_key && f->type == IVL_SDM_F_HELLO) {
			refuse(s, c, IVL_SDM_R_UNAUTHENTICATED);
			return 0;
		}
		return inner_frame(s, c, f);
	}
	conn_kill(s, c, "handshake failed");
	return 0;
}

static int one_frame(struct ivl_sdm *s, struct ivl__sdm_conn *c, const struct ivl__sdm_frame *f)
{
	uint8_t plain[IVL_SDM_BATCH_PLAIN];
	struct ivl__sdm_frame in;
	int n;

	if (!c->sec.ready)
		return handshake_frame(s, c, f);
	/* Once the stream is up nothing travels in the clear. */
	n = ivl__sdm_sec_open(&c->sec, f, plain, sizeof(plain));
	if (n < 0) {
		conn_kill(s, c, "frame failed authentication");
		return 0;
	}
	if (f->type == IVL_SDM_F_SEALED_BATCH) {
		size_t off = 0;
		int k = 0, delivered = 0;

		while (!c->dead && (k = ivl__sdm_batch_next(plain, (size_t)n, &off, &in)) > 0)
			delivered += inner_frame(s, c, &in);
		if (!c->dead && k < 0)
			conn_kill(s, c, "malformed batch");
		return delivered;
	}
	if (ivl__sdm_frame_decode(plain, (size_t)n, &in) != n || in.type == IVL_SDM_F_SEALED) {
		conn_kill(s, c, "malformed inner frame");
		return 0;
	}
	return inner_frame(s, c, &in);
}

/*
 * Read and handle every complete frame.  The epoll set is level-triggered,
 * so a read that does not fill the buffer ends the loop: what arrives later
 * makes the fd readable again, and the common case (one burst) costs one
 * recv() instead of a second one that only says EAGAIN.
 */
static int conn_read(struct ivl_sdm *s, struct ivl__sdm_conn *c, bool *got)
{
	int delivered = 0;

	while (!c->dead) {
		size_t room = sizeof(c->rx) - c->rx_len;
		ssize_t n = recv(c->fd, c->rx + c->rx_len, room, MSG_DONTWAIT);
		size_t off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			conn_kill(s, c, n < 0 ? "receive error" : NULL);
			break;
		}
		c->rx_len += (size_t)n;
		c->last_rx_ms = ivl__sdm_now_ms();
		*got = true;
		while (!c->dead) {
			struct ivl__sdm_frame f;
			int len = ivl__sdm_frame_decode(c->rx + off, c->rx_len - off, &f);

			if (len < 0)
				conn_kill(s, c, "malformed frame");
			if (len <= 0)
				break;
			delivered += one_frame(s, c, &f);
			off += (size_t)len;
		}
		memmove(c->rx, c->rx + off, c->rx_len - off);
		c->rx_len -= off;
		if ((size_t)n < room)
			break;
	}
	return delivered;
}

/* ---- connect / accept ---------------------------------------------------- */

static void slave_connect(struct ivl_sdm *s)
{
	struct ivl__sdm_conn *c;
	struct addrinfo *ai = NULL;
	struct sockaddr_un sun;
	struct sockaddr *sa;
	socklen_t salen;
	int fd, r;

	if (s->channel == IVL_SDM_CHAN_UNIX) {
		if (unix_addr(s->path, &sun, &salen) < 0)
			return;
		sa = (struct sockaddr *)&sun;
	} else {
		if (resolve(s->host, s->port, false, &ai) < 0) {
			slave_lost(s, -EHOSTUNREACH);
			return;
		}
		sa = ai->ai_addr;
		salen = ai->ai_addrlen;
	}
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (sa->sa_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	r = connect(fd, sa, salen);
	if (r < 0 && errno != EINPROGRESS)
		goto fail;
	c = conn_new(s, fd, IVL__C_CONNECTING);
	if (!c)
		goto fail;
	s->up = c;
	if (ai)
		freeaddrinfo(ai);
	if (r == 0) {
		c->state = IVL__C_KX_REPLY;
		set_out_interest(s, c, false);
		slave_connected(s, c);
	}
	return;
fail:
	ivl__close(fd);
	if (ai)
		freeaddrinfo(ai);
	slave_lost(s, -ENOTCONN);
}

static void master_accept(struct ivl_sdm *s)
{
	for (;;) {
		struct ivl__sdm_conn *c, **v;
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		/* Bound what unregistered peers can make us hold. */
		if (s->nconns >= (size_t)s->current_slaves + IVL__SDM_MAX_PENDING) {
			ivl__close(fd);
			s->st.conn_dropped++;
			continue;
		}
		if (s->channel == IVL_SDM_CHAN_TCP)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
		v = realloc(s->conns, (s->nconns + 1) * sizeof(*v));
		if (!v) {
			ivl__close(fd);
			continue;
		}
		s->conns = v;
		c = conn_new(s, fd, s->have_key ? IVL__C_KX_HELLO : IVL__C_HELLO);
		if (!c) {
			ivl__close(fd);
			continue;
		}
		s->conns[s->nconns++] = c;
	}
}

static int master_listen(struct ivl_sdm *s)
{
	struct addrinfo *ai = NULL;
	struct sockaddr_un sun;
	struct sockaddr_storage ss;
	struct sockaddr *sa;
	socklen_t salen;
	struct stat sb;
	int r;

	if (s->channel == IVL_SDM_CHAN_UNIX) {
		r = unix_addr(s->path, &sun, &salen);
		if (r)
			return r;
		/* A stale socket from a dead master; never remove anything else. */
		if (lstat(s->path, &sb) == 0 && S_ISSOCK(sb.st_mode))
			unlink(s->path);
		sa = (struct sockaddr *)&sun;
	} else {
		r = resolve(s->host, s->port, true, &ai);
		if (r)
			return r;
		sa = ai->ai_addr;
		salen = ai->ai_addrlen;
		if (!s->have_key && !s->insecure && !is_loopback(sa))
			r = -EPERM;
	}
	if (r == 0) {
		s->lfd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (s->lfd < 0)
			r = -errno;
	}
	if (r == 0 && sa->sa_family != AF_UNIX)
		setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int));
	if (r == 0 && (bind(s->lfd, sa, salen) < 0 || listen(s->lfd, 64) < 0))
		r = -errno;
	if (r == 0 && sa->sa_family != AF_UNIX) {
		salen = sizeof(ss);
		if (getsockname(s->lfd, (struct sockaddr *)&ss, &salen) < 0)
			r = -errno;
		else
			s->port = ntohs(ss.ss_family == AF_INET
					    ? ((struct sockaddr_in *)&ss)->sin_port
					    : ((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	if (ai)
		freeaddrinfo(ai);
	if (r == 0 && epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd,
				&(struct epoll_event){.events = EPOLLIN, .data.ptr = s}) < 0)
		r = -errno;
	return r;
}

int ivl__sdm_sock_start(struct ivl_sdm *s, const struct ivl_sdm_opts *o)
{
	if (sodium_init() < 0)
		return -EIO;
	s->have_key = o->key != NULL;
	if (o->key)
		memcpy(s->key, o->key, IVL_SDM_KEY_LEN);
	s->insecure = o->insecure;
	s->rc_delay_ms = s->rc_min_ms;
	if (o->channel == IVL_SDM_CHAN_UNIX) {
		struct sockaddr_un sun;
		socklen_t len;
		int r = unix_addr(o->path, &sun, &len);

		if (r)
			return r;
		s->path = strdup(o->path);
		if (!s->path)
			return -ENOMEM;
	} else {
		s->host = strdup(o->host);
		if (!s->host)
			return -ENOMEM;
		s->port = o->port;
	}
	if (s->master) {
		s->slaves = calloc(IVL_SDM_MAX_SLAVES + 1, sizeof(*s->slaves));
		if (!s->slaves)
			return -ENOMEM;
		return master_listen(s);
	}
	if (o->channel == IVL_SDM_CHAN_TCP && !s->have_key && !o->insecure) {
		struct addrinfo *ai;
		bool lo;
		int r = resolve(s->host, s->port, false, &ai);

		if (r)
			return r;
		lo = is_loopback(ai->ai_addr);
		freeaddrinfo(ai);
		if (!lo)
			return -EPERM;
	}
	slave_connect(s);
	return 0;
}

void ivl__sdm_sock_stop(struct ivl_sdm *s)
{
	for (size_t i = 0; i < s->nconns; i++)
		conn_free(s, s->conns[i]);
	free(s->conns);
	s->conns = NULL;
	s->nconns = 0;
	if (s->up)
		conn_free(s, s->up);
	s->up = NULL;
	if (s->lfd >= 0 && s->channel == IVL_SDM_CHAN_UNIX && s->path)
		unlink(s->path);
	s->lfd = ivl__close(s->lfd);
	free(s->slaves);
	free(s->path);
	free(s->host);
}

int ivl__sdm_sock_flush(struct ivl_sdm *s)
{
	struct ivl__sdm_conn *c = s->dirty;

	s->dirty = NULL;
	return c ? flush(s, c) : 0;
}

int ivl__sdm_sock_send(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, bool more)
{
	struct ivl__sdm_conn *c;
	uint8_t p[IVL_SDM_SIGNAL_LEN];
	int r;

	if (s->master) {
		c = s->slaves[sig->slave];
		if (!c || c->dead)
			return -ENOENT;
	} else {
		c = s->up;
		if (!c || c->dead || c->state != IVL__C_UP)
			return -ENOTCONN;
	}
	/* A batch to several slaves: one send() per run of the same slave. */
	if (s->dirty && s->dirty != c)
		ivl__sdm_sock_flush(s);
	ivl__sdm_signal_encode(p, sig);
	r = conn_queue(s, c, IVL_SDM_F_SIGNAL, p, sizeof(p));
	if (r < 0)
		return r;
	if (more) {
		s->dirty = c;
		return 0;
	}
	s->dirty = NULL;
	return flush(s, c);
}

int ivl__sdm_sock_room(struct ivl_sdm *s, uint16_t id)
{
	struct ivl__sdm_conn *c = s->slaves[id];

	if (!c || c->dead)
		return -ENOENT;
	if (IVL__SDM_TXBUF - c->tx_len >= IVL_SDM_MAX_FRAME)
		return 0;
	if (flush(s, c) < 0)
		return -ENOENT;
	return IVL__SDM_TXBUF - c->tx_len >= IVL_SDM_MAX_FRAME ? 0 : -EAGAIN;
}

/* Keepalives, dead peers, handshake deadlines. */
static void conn_tick(struct ivl_sdm *s, struct ivl__sdm_conn *c, int64_t now)
{
	int64_t dead = 3 * (int64_t)s->keepalive_ms;

	if (c->dead)
		return;
	if (c->state != IVL__C_UP) {
		if (now - c->born_ms > dead)
			conn_kill(s, c, "handshake timeout");
		return;
	}
	if (now - c->last_rx_ms > dead) {
		s->st.keepalive_timeouts++;
		conn_kill(s, c, "keepalive timeout");
		return;
	}
	/* last_tx_ms moves when bytes leave: frames still queued will tell the
	 * peer we are alive once it reads, a PING would only queue behind. */
	if (c->tx_len == 0 && now - c->last_tx_ms >= s->keepalive_ms)
		conn_send(s, c, IVL_SDM_F_PING, NULL, 0);
}

static void reap(struct ivl_sdm *s)
{
	size_t j = 0;

	for (size_t i = 0; i < s->nconns; i++) {
		if (s->conns[i]->dead)
			conn_free(s, s->conns[i]);
		else
			s->conns[j++] = s->conns[i];
	}
	s->nconns = j;
	if (s->up && s->up->dead) {
		bool was_up = s->up->state == IVL__C_UP;

		conn_free(s, s->up);
		s->up = NULL;
		if (was_up || s->state == 0 || s->state == -EINPROGRESS)
			slave_lost(s, -ENOTCONN);
		else
			slave_lost(s, s->state);
	}
}

/* The only connection, registered, with nothing left to send: see
 * ivl__sdm_sock_process(). */
static struct ivl__sdm_conn *sole_conn(struct ivl_sdm *s)
{
	struct ivl__sdm_conn *c = s->master ? (s->nconns == 1 ? s->conns[0] : NULL) : s->up;

	return c && c->state == IVL__C_UP && !c->dead && c->tx_len == 0 ? c : NULL;
}

int ivl__sdm_sock_process(struct ivl_sdm *s)
{
	struct epoll_event ev[32];
	struct ivl__sdm_conn *sole = sole_conn(s);
	int64_t now = ivl__sdm_now_ms();
	bool got = false;
	int n, delivered = 0;

	/*
	 * Fast path for one connection (a slave; a master with one slave):
	 * read it directly instead of asking epoll which fd is ready, which
	 * saves a system call per signal.  Only when it brought data and the
	 * periodic work is not due: an empty read, a closed connection, the
	 * timer, new connections and pending output all take the full path
	 * below, at the latest one tick later (the epoll fd stays readable
	 * for them meanwhile).
	 */
	if (sole && now < s->next_full_ms) {
		delivered = conn_read(s, sole, &got);
		if (got && !sole->dead)
			return delivered;
		/*
		 * A slave's epoll set holds only this connection and the
		 * timer: with nothing read, nothing to send and the timer not
		 * due, epoll has nothing to tell.  (A master's also holds the
		 * listening socket, so it always asks.)
		 */
		if (!s->master && !sole->dead && !ivl__sdm_timer_due(s))
			return delivered;
	}
	s->next_full_ms = now + (s->keepalive_ms / 4 ? s->keepalive_ms / 4 : 1);
	n = epoll_wait(s->epfd, ev, IVL_ARRAY_SIZE(ev), 0);
	if (n < 0 && errno != EINTR)
		return -errno;
	for (int i = 0; i < n; i++) {
		struct ivl__sdm_conn *c = ev[i].data.ptr;

		if (!c) {
			int r = ivl__sdm_timer_drain(s);

			if (r < 0)
				return r;
			continue;
		}
		if (ev[i].data.ptr == s) {
			master_accept(s);
			continue;
		}
		if (c->dead)
			continue;
		if (c->state == IVL__C_CONNECTING) {
			int err = 0;
			socklen_t len = sizeof(err);

			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
				conn_kill(s, c, NULL);
				continue;
			}
			set_out_interest(s, c, false);
			slave_connected(s, c);
			continue;
		}
		if (ev[i].events & EPOLLOUT)
			flush(s, c);
		if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			delivered += conn_read(s, c, &got);
	}
	now = ivl__sdm_now_ms();
	for (size_t i = 0; i < s->nconns; i++)
		conn_tick(s, s->conns[i], now);
	if (s->up)
		conn_tick(s, s->up, now);
	reap(s);
	if (!s->master && !s->up && !fatal(s->state) && now >= s->next_connect_ms)
		slave_connect(s);
	if (!s->master && fatal(s->state))
		return s->state;
	return delivered;
}
