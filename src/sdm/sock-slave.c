/* SPDX-License-Identifier: MIT */
/*
 * The slave side of the UNIX and TCP channels (docs/sdm.md §3.1-§3.2):
 * connecting, the handshake it starts (KX_HELLO or HELLO), WELCOME and
 * REFUSE, and the reconnection backoff.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/internal.h"
#include "sock.h"

bool ivl__sdm_fatal(int err)
{
	return err == -EACCES || err == -EPROTONOSUPPORT;
}

void ivl__sdm_slave_lost(struct ivl_sdm *s, int why)
{
	int64_t now = ivl__sdm_now_ms();

	if (!ivl__sdm_fatal(s->state))
		s->state = why;
	s->next_connect_ms = now + s->rc_delay_ms;
	s->rc_delay_ms = s->rc_delay_ms > s->rc_max_ms / 2 ? s->rc_max_ms : s->rc_delay_ms * 2;
}

void ivl__sdm_slave_send_hello(struct ivl_sdm *s, struct ivl__sdm_conn *c)
{
	uint8_t p[IVL_SDM_HELLO_LEN];

	ivl__sdm_hello_encode(p, s->want_id);
	c->state = IVL__C_WELCOME;
	ivl__sdm_conn_send(s, c, IVL_SDM_F_HELLO, p, sizeof(p));
}

void ivl__sdm_slave_connected(struct ivl_sdm *s, struct ivl__sdm_conn *c)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);
	uint8_t p[IVL_SDM_KX_HELLO_LEN];

	if (sk->have_key) {
		if (ivl__sdm_sec_client_hello(&c->sec, p) < 0)
			return ivl__sdm_conn_kill(s, c, "key generation failed");
		c->state = IVL__C_KX_REPLY;
		ivl__sdm_conn_send(s, c, IVL_SDM_F_KX_HELLO, p, sizeof(p));
	} else {
		ivl__sdm_slave_send_hello(s, c);
	}
}

void ivl__sdm_slave_refused(struct ivl_sdm *s, struct ivl__sdm_conn *c,
			    const struct ivl__sdm_frame *f)
{
	uint16_t reason;

	if (ivl__sdm_refuse_decode(f, &reason) < 0)
		return ivl__sdm_conn_kill(s, c, "bad refusal");
	s->state = ivl__sdm_refusal_errno(reason);
	ivl__warn("sdm: the master refused us: %s", ivl__sdm_refusal_name(reason));
	c->dead = true;
}

void ivl__sdm_slave_welcome(struct ivl_sdm *s, struct ivl__sdm_conn *c,
			    const struct ivl__sdm_frame *f)
{
	struct ivl__sdm_welcome w;

	if (ivl__sdm_welcome_decode(f, &w) < 0 || w.version != IVL_SDM_FRAME_VERSION ||
	    (s->want_id && w.id != s->want_id))
		return ivl__sdm_conn_kill(s, c, "bad welcome");
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

void ivl__sdm_slave_connect(struct ivl_sdm *s)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);
	struct ivl__sdm_conn *c;
	struct addrinfo *ai = NULL;
	struct sockaddr_un sun;
	struct sockaddr *sa;
	socklen_t salen;
	int fd, r;

	if (!sk->tcp) {
		if (ivl__sdm_unix_addr(sk->path, &sun, &salen) < 0)
			return;
		sa = (struct sockaddr *)&sun;
	} else {
		if (ivl__sdm_resolve(sk->host, sk->port, false, &ai) < 0) {
			ivl__sdm_slave_lost(s, -EHOSTUNREACH);
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
	c = ivl__sdm_conn_new(s, fd, IVL__C_CONNECTING);
	if (!c)
		goto fail;
	sk->up = c;
	if (ai)
		freeaddrinfo(ai);
	if (r == 0) {
		c->state = IVL__C_KX_REPLY;
		ivl__sdm_conn_out_interest(s, c, false);
		ivl__sdm_slave_connected(s, c);
	}
	return;
fail:
	ivl__close(fd);
	if (ai)
		freeaddrinfo(ai);
	ivl__sdm_slave_lost(s, -ENOTCONN);
}
