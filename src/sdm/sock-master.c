/* SPDX-License-Identifier: MIT */
/*
 * The master side of the UNIX and TCP channels (docs/sdm.md §3.1): the
 * listening socket, accepting connections (bounded while unregistered) and
 * admission of a HELLO (WELCOME or REFUSE).
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

static uint16_t admit(struct ivl_sdm *s, uint16_t want, uint16_t *reason)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);
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
		for (id = 1; id <= s->max_slaves && sk->slaves[id]; id++)
			;
		if (id > s->max_slaves) {
			*reason = IVL_SDM_R_FULL;
			return 0;
		}
	} else if (sk->slaves[id]) {
		*reason = IVL_SDM_R_ID_TAKEN;
		return 0;
	}
	return id;
}

void ivl__sdm_master_hello(struct ivl_sdm *s, struct ivl__sdm_conn *c,
			   const struct ivl__sdm_frame *f)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);
	struct ivl__sdm_hello h;
	struct ivl__sdm_welcome w;
	uint8_t p[IVL_SDM_WELCOME_LEN];
	uint16_t reason = 0, id;

	if (ivl__sdm_hello_decode(f, &h) < 0)
		return ivl__sdm_conn_kill(s, c, "bad hello");
	if (h.version != IVL_SDM_FRAME_VERSION)
		return ivl__sdm_conn_refuse(s, c, IVL_SDM_R_BAD_VERSION);
	id = admit(s, h.id, &reason);
	if (!id)
		return ivl__sdm_conn_refuse(s, c, reason);
	w = (struct ivl__sdm_welcome){.version = IVL_SDM_FRAME_VERSION,
				      .id = id,
				      .max_slaves = s->max_slaves,
				      .keepalive_ms = s->keepalive_ms};
	ivl__sdm_welcome_encode(p, &w);
	c->id = id;
	c->state = IVL__C_UP;
	sk->slaves[id] = c;
	s->current_slaves++;
	s->st.conn_accepted++;
	ivl__info("sdm: slave %u joined", id);
	ivl__sdm_conn_send(s, c, IVL_SDM_F_WELCOME, p, sizeof(p));
}

void ivl__sdm_master_accept(struct ivl_sdm *s)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);

	for (;;) {
		struct ivl__sdm_conn *c, **v;
		int fd = accept4(sk->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		/* Bound what unregistered peers can make us hold. */
		if (sk->nconns >= (size_t)s->current_slaves + IVL__SDM_MAX_PENDING) {
			ivl__close(fd);
			s->st.conn_dropped++;
			continue;
		}
		if (sk->tcp)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
		v = realloc(sk->conns, (sk->nconns + 1) * sizeof(*v));
		if (!v) {
			ivl__close(fd);
			continue;
		}
		sk->conns = v;
		c = ivl__sdm_conn_new(s, fd, sk->have_key ? IVL__C_KX_HELLO : IVL__C_HELLO);
		if (!c) {
			ivl__close(fd);
			continue;
		}
		sk->conns[sk->nconns++] = c;
	}
}

int ivl__sdm_master_listen(struct ivl_sdm *s)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);
	struct addrinfo *ai = NULL;
	struct sockaddr_un sun;
	struct sockaddr_storage ss;
	struct sockaddr *sa;
	socklen_t salen;
	struct stat sb;
	int r;

	if (!sk->tcp) {
		r = ivl__sdm_unix_addr(sk->path, &sun, &salen);
		if (r)
			return r;
		/* A stale socket from a dead master; never remove anything else. */
		if (lstat(sk->path, &sb) == 0 && S_ISSOCK(sb.st_mode))
			unlink(sk->path);
		sa = (struct sockaddr *)&sun;
	} else {
		r = ivl__sdm_resolve(sk->host, sk->port, true, &ai);
		if (r)
			return r;
		sa = ai->ai_addr;
		salen = ai->ai_addrlen;
		if (!sk->have_key && !sk->insecure && !ivl__sdm_is_loopback(sa))
			r = -EPERM;
	}
	if (r == 0) {
		sk->lfd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (sk->lfd < 0)
			r = -errno;
	}
	if (r == 0 && sa->sa_family != AF_UNIX)
		setsockopt(sk->lfd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int));
	if (r == 0 && (bind(sk->lfd, sa, salen) < 0 || listen(sk->lfd, 64) < 0))
		r = -errno;
	if (r == 0 && sa->sa_family != AF_UNIX) {
		salen = sizeof(ss);
		if (getsockname(sk->lfd, (struct sockaddr *)&ss, &salen) < 0)
			r = -errno;
		else
			sk->port = ntohs(ss.ss_family == AF_INET
					     ? ((struct sockaddr_in *)&ss)->sin_port
					     : ((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	if (ai)
		freeaddrinfo(ai);
	if (r == 0 && epoll_ctl(s->epfd, EPOLL_CTL_ADD, sk->lfd,
				&(struct epoll_event){.events = EPOLLIN, .data.ptr = s}) < 0)
		r = -errno;
	return r;
}
