/* SPDX-License-Identifier: MIT */
/*
 * The UNIX and TCP channels (docs/sdm.md §3-§4): the master listens, slaves
 * connect, every connection runs (optionally) the secure handshake, then
 * hello/welcome, then signals and keepalives.  All sockets are non-blocking
 * and live in the object's epoll set.  This file holds the channels' ops
 * (start and stop, send, flush and room, the event loop with its
 * keepalives and reaping) and address resolution; sock.h lists the others.
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
#include <unistd.h>

#include "core/internal.h"
#include "sock.h"

/* ---- addresses ---------------------------------------------------------- */

int ivl__sdm_unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len)
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

bool ivl__sdm_is_loopback(const struct sockaddr *sa)
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

int ivl__sdm_resolve(const char *host, uint16_t port, bool passive, struct addrinfo **res)
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

/* ---- the channel ---------------------------------------------------------- */

static int sock_start(struct ivl_sdm *s, const struct ivl_sdm_opts *o)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);
	int r;

	sk->lfd = -1;
	if (sodium_init() < 0)
		return -EIO;
	sk->have_key = o->key != NULL;
	if (o->key)
		memcpy(sk->key, o->key, IVL_SDM_KEY_LEN);
	sk->insecure = o->insecure;
	s->rc_delay_ms = s->rc_min_ms;
	sk->tcp = o->channel == IVL_SDM_CHAN_TCP;
	r = ivl__sdm_timer_start(s);
	if (r)
		return r;
	if (!sk->tcp) {
		struct sockaddr_un sun;
		socklen_t len;

		r = ivl__sdm_unix_addr(o->path, &sun, &len);
		if (r)
			return r;
		sk->path = strdup(o->path);
		if (!sk->path)
			return -ENOMEM;
	} else {
		sk->host = strdup(o->host);
		if (!sk->host)
			return -ENOMEM;
		sk->port = o->port;
	}
	if (s->master) {
		sk->slaves = calloc(IVL_SDM_MAX_SLAVES + 1, sizeof(*sk->slaves));
		if (!sk->slaves)
			return -ENOMEM;
		return ivl__sdm_master_listen(s);
	}
	if (sk->tcp && !sk->have_key && !o->insecure) {
		struct addrinfo *ai;
		bool lo;

		r = ivl__sdm_resolve(sk->host, sk->port, false, &ai);
		if (r)
			return r;
		lo = ivl__sdm_is_loopback(ai->ai_addr);
		freeaddrinfo(ai);
		if (!lo)
			return -EPERM;
	}
	ivl__sdm_slave_connect(s);
	return 0;
}

static void sock_stop(struct ivl_sdm *s)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);

	for (size_t i = 0; i < sk->nconns; i++)
		ivl__sdm_conn_free(s, sk->conns[i]);
	free(sk->conns);
	sk->conns = NULL;
	sk->nconns = 0;
	if (sk->up)
		ivl__sdm_conn_free(s, sk->up);
	sk->up = NULL;
	if (sk->lfd >= 0 && !sk->tcp && sk->path)
		unlink(sk->path);
	sk->lfd = ivl__close(sk->lfd);
	free(sk->slaves);
	free(sk->path);
	free(sk->host);
	sodium_memzero(sk->key, sizeof(sk->key));
}

static int sock_flush(struct ivl_sdm *s)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);
	struct ivl__sdm_conn *c = sk->dirty;

	sk->dirty = NULL;
	return c ? ivl__sdm_conn_flush(s, c) : 0;
}

static int sock_send(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, bool more)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);
	struct ivl__sdm_conn *c;
	uint8_t p[IVL_SDM_SIGNAL_LEN];
	int r;

	if (s->master) {
		c = sk->slaves[sig->slave];
		if (!c || c->dead)
			return -ENOENT;
	} else {
		c = sk->up;
		if (!c || c->dead || c->state != IVL__C_UP)
			return -ENOTCONN;
	}
	/* A batch to several slaves: one send() per run of the same slave. */
	if (sk->dirty && sk->dirty != c)
		sock_flush(s);
	ivl__sdm_signal_encode(p, sig);
	r = ivl__sdm_conn_queue(s, c, IVL_SDM_F_SIGNAL, p, sizeof(p));
	if (r < 0)
		return r;
	if (more) {
		sk->dirty = c;
		return 0;
	}
	sk->dirty = NULL;
	return ivl__sdm_conn_flush(s, c);
}

static int sock_room(struct ivl_sdm *s, uint16_t id)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);
	struct ivl__sdm_conn *c = sk->slaves[id];

	if (!c || c->dead)
		return -ENOENT;
	if (IVL__SDM_TXBUF - c->tx_len >= IVL_SDM_MAX_FRAME)
		return 0;
	if (ivl__sdm_conn_flush(s, c) < 0)
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
			ivl__sdm_conn_kill(s, c, "handshake timeout");
		return;
	}
	if (now - c->last_rx_ms > dead) {
		s->st.keepalive_timeouts++;
		ivl__sdm_conn_kill(s, c, "keepalive timeout");
		return;
	}
	/* last_tx_ms moves when bytes leave: frames still queued will tell the
	 * peer we are alive once it reads, a PING would only queue behind. */
	if (c->tx_len == 0 && now - c->last_tx_ms >= s->keepalive_ms)
		ivl__sdm_conn_send(s, c, IVL_SDM_F_PING, NULL, 0);
}

static void reap(struct ivl_sdm *s)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);
	size_t j = 0;

	for (size_t i = 0; i < sk->nconns; i++) {
		if (sk->conns[i]->dead)
			ivl__sdm_conn_free(s, sk->conns[i]);
		else
			sk->conns[j++] = sk->conns[i];
	}
	sk->nconns = j;
	if (sk->up && sk->up->dead) {
		bool was_up = sk->up->state == IVL__C_UP;

		ivl__sdm_conn_free(s, sk->up);
		sk->up = NULL;
		if (was_up || s->state == 0 || s->state == -EINPROGRESS)
			ivl__sdm_slave_lost(s, -ENOTCONN);
		else
			ivl__sdm_slave_lost(s, s->state);
	}
}

/* The only connection, registered, with nothing left to send: see
 * sock_process(). */
static struct ivl__sdm_conn *sole_conn(struct ivl_sdm *s)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);
	struct ivl__sdm_conn *c = s->master ? (sk->nconns == 1 ? sk->conns[0] : NULL) : sk->up;

	return c && c->state == IVL__C_UP && !c->dead && c->tx_len == 0 ? c : NULL;
}

static int sock_process(struct ivl_sdm *s)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);
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
	if (sole && now < sk->next_full_ms) {
		delivered = ivl__sdm_conn_read(s, sole, &got);
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
	sk->next_full_ms = now + (s->keepalive_ms / 4 ? s->keepalive_ms / 4 : 1);
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
			ivl__sdm_master_accept(s);
			continue;
		}
		if (c->dead)
			continue;
		if (c->state == IVL__C_CONNECTING) {
			int err = 0;
			socklen_t len = sizeof(err);

			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
				ivl__sdm_conn_kill(s, c, NULL);
				continue;
			}
			ivl__sdm_conn_out_interest(s, c, false);
			ivl__sdm_slave_connected(s, c);
			continue;
		}
		if (ev[i].events & EPOLLOUT)
			ivl__sdm_conn_flush(s, c);
		if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			delivered += ivl__sdm_conn_read(s, c, &got);
	}
	now = ivl__sdm_now_ms();
	for (size_t i = 0; i < sk->nconns; i++)
		conn_tick(s, sk->conns[i], now);
	if (sk->up)
		conn_tick(s, sk->up, now);
	reap(s);
	if (!s->master && !sk->up && !ivl__sdm_fatal(s->state) && now >= s->next_connect_ms)
		ivl__sdm_slave_connect(s);
	if (!s->master && ivl__sdm_fatal(s->state))
		return s->state;
	return delivered;
}

static bool sock_present(const struct ivl_sdm *s, uint16_t id)
{
	return ivl__sock(s)->slaves[id] != NULL;
}

static int sock_check(const struct ivl_sdm_opts *o)
{
	if (o->channel == IVL_SDM_CHAN_UNIX)
		return o->path && *o->path ? 0 : -EINVAL;
	return o->host && *o->host && (o->port || o->master) ? 0 : -EINVAL;
}

static int sock_port(const struct ivl_sdm *s)
{
	return ivl__sock(s)->tcp ? ivl__sock(s)->port : -EINVAL;
}

/* UNIX and TCP alike: they differ only in addressing (sk->tcp). */
const struct ivl__sdm_chan_ops ivl__sdm_sock_ops = {
    .name = "socket",
    .priv_size = sizeof(struct ivl__sdm_sock),
    .check = sock_check,
    .start = sock_start,
    .stop = sock_stop,
    .send = sock_send,
    .flush = sock_flush,
    .process = sock_process,
    .present = sock_present,
    .room = sock_room,
    .port = sock_port,
};
