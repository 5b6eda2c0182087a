/* SPDX-License-Identifier: MIT */
/*
 * One connection of the UNIX and TCP channels (docs/sdm.md §3-§4): its
 * buffers, sealing (keyed framing v1 and v2), send and receive, and the
 * dispatch of the frames it receives by phase (handshake, hello/welcome,
 * registered).  Connections are freed only by their owner's reaping at the
 * end of ivl_sdm_process(), so a handler that sends can never free what the
 * event loop is still looking at.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "core/internal.h"
#include "sock.h"

struct ivl__sdm_conn *ivl__sdm_conn_new(struct ivl_sdm *s, int fd, enum ivl__sdm_conn_state st)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);
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
	memcpy(c->sec.psk, sk->key, sizeof(c->sec.psk));
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		ivl__sdm_sec_wipe(&c->sec);
		free(c);
		return NULL;
	}
	return c;
}

void ivl__sdm_conn_free(struct ivl_sdm *s, struct ivl__sdm_conn *c)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);

	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	ivl__close(c->fd);
	if (sk->dirty == c)
		sk->dirty = NULL;
	if (s->master && c->state == IVL__C_UP && sk->slaves[c->id] == c) {
		sk->slaves[c->id] = NULL;
		s->current_slaves--;
		ivl__info("sdm: slave %u left", c->id);
	}
	ivl__sdm_sec_wipe(&c->sec);
	free(c);
}

void ivl__sdm_conn_kill(struct ivl_sdm *s, struct ivl__sdm_conn *c, const char *why)
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
void ivl__sdm_conn_out_interest(struct ivl_sdm *s, struct ivl__sdm_conn *c, bool want)
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
		ivl__sdm_conn_kill(s, c, "sealing failed");
		return -EPIPE;
	}
	c->tx_len += (size_t)n;
	c->ptx_len = 0;
	return 0;
}

/* Send what is queued with as few send() calls as the socket allows.
 * Frames staged behind a full buffer are sealed as soon as a send makes
 * room for them, and sent in the same call: a flush that made room leaves
 * no staged frame that would fit. */
int ivl__sdm_conn_flush(struct ivl_sdm *s, struct ivl__sdm_conn *c)
{
	size_t off;

	do {
		off = 0;
		if (seal_staged(s, c) == -EPIPE)
			return -EPIPE;
		while (off < c->tx_len) {
			ssize_t n = send(c->fd, c->tx + off, c->tx_len - off,
					 MSG_NOSIGNAL | MSG_DONTWAIT);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n <= 0) {
				ivl__sdm_conn_kill(s, c, NULL);
				return -EPIPE;
			}
			off += (size_t)n;
		}
		if (off) {
			memmove(c->tx, c->tx + off, c->tx_len - off);
			c->tx_len -= off;
			c->last_tx_ms = ivl__sdm_now_ms();
		}
		/* Each round sends something or stops: bounded. */
	} while (off && c->ptx_len);
	ivl__sdm_conn_out_interest(s, c, c->tx_len > 0);
	return 0;
}

/* Queue one frame (sealed once the secure stream is up) without sending. */
int ivl__sdm_conn_queue(struct ivl_sdm *s, struct ivl__sdm_conn *c, uint8_t type, const void *p,
			size_t len)
{
	uint8_t plain[IVL_SDM_HDR_LEN + IVL_SDM_MAX_PAYLOAD];
	int n;

	if (c->dead)
		return -EPIPE;
	if (c->sec.ready && c->sec.version >= 2) {
		/* Staged, sealed by ivl__sdm_conn_flush() with the rest of the batch. */
		if (c->ptx_len + IVL_SDM_HDR_LEN + len > sizeof(c->ptx)) {
			n = seal_staged(s, c);
			if (n == -EAGAIN) {
				n = ivl__sdm_conn_flush(s, c);
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
		n = ivl__sdm_conn_flush(s, c);
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
int ivl__sdm_conn_send(struct ivl_sdm *s, struct ivl__sdm_conn *c, uint8_t type, const void *p,
		       size_t len)
{
	int r = ivl__sdm_conn_queue(s, c, type, p, len);

	return r < 0 ? r : ivl__sdm_conn_flush(s, c);
}

void ivl__sdm_conn_refuse(struct ivl_sdm *s, struct ivl__sdm_conn *c, uint16_t reason)
{
	uint8_t p[IVL_SDM_REFUSE_LEN];

	ivl__sdm_refuse_encode(p, reason);
	ivl__sdm_conn_send(s, c, IVL_SDM_F_REFUSE, p, sizeof(p));
	s->st.conn_refused++;
	ivl__info("sdm: refused a slave: %s", ivl__sdm_refusal_name(reason));
	c->dead = true;
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
		ivl__sdm_master_hello(s, c, f);
		return 0;
	case IVL__C_WELCOME:
		if (f->type == IVL_SDM_F_REFUSE) {
			ivl__sdm_slave_refused(s, c, f);
			return 0;
		}
		if (f->type != IVL_SDM_F_WELCOME)
			break;
		ivl__sdm_slave_welcome(s, c, f);
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
	ivl__sdm_conn_kill(s, c, "unexpected frame");
	return 0;
}

static int handshake_frame(struct ivl_sdm *s, struct ivl__sdm_conn *c,
			   const struct ivl__sdm_frame *f)
{
	struct ivl__sdm_sock *sk = ivl__sock(s);
	uint8_t out[IVL_SDM_KX_REPLY_LEN];
	int r;

	switch (c->state) {
	case IVL__C_KX_HELLO:
		/* A slave without the key: tell it why, then close. */
		if (f->type == IVL_SDM_F_HELLO) {
			ivl__sdm_conn_refuse(s, c, IVL_SDM_R_UNAUTHENTICATED);
			return 0;
		}
		if (f->type != IVL_SDM_F_KX_HELLO)
			break;
		r = ivl__sdm_sec_server_reply(&c->sec, f, out);
		if (r == -EPROTONOSUPPORT)
			ivl__sdm_conn_refuse(s, c, IVL_SDM_R_BAD_VERSION);
		if (r < 0)
			break;
		c->state = IVL__C_KX_AUTH;
		ivl__sdm_conn_send(s, c, IVL_SDM_F_KX_REPLY, out, IVL_SDM_KX_REPLY_LEN);
		return 0;
	case IVL__C_KX_AUTH:
		if (f->type != IVL_SDM_F_KX_AUTH)
			break;
		if (ivl__sdm_sec_server_finish(&c->sec, f) < 0) {
			ivl__sdm_conn_refuse(s, c, IVL_SDM_R_UNAUTHENTICATED);
			s->st.conn_dropped++;
			return 0;
		}
		c->secure = true;
		c->state = IVL__C_HELLO;
		return 0;
	case IVL__C_KX_REPLY:
		if (f->type == IVL_SDM_F_REFUSE) {
			ivl__sdm_slave_refused(s, c, f);
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
		ivl__sdm_conn_send(s, c, IVL_SDM_F_KX_AUTH, out, IVL_SDM_KX_AUTH_LEN);
		c->sec.ready = true;
		ivl__sdm_slave_send_hello(s, c);
		return 0;
	case IVL__C_HELLO:
		/* A master without a key cannot authenticate anyone. */
		if (f->type == IVL_SDM_F_KX_HELLO) {
			ivl__sdm_conn_refuse(s, c, IVL_SDM_R_UNAUTHENTICATED);
			return 0;
		}
		return inner_frame(s, c, f);
	default:
		if (sk->have_key && f->type == IVL_SDM_F_HELLO) {
			ivl__sdm_conn_refuse(s, c, IVL_SDM_R_UNAUTHENTICATED);
			return 0;
		}
		return inner_frame(s, c, f);
	}
	ivl__sdm_conn_kill(s, c, "handshake failed");
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
		ivl__sdm_conn_kill(s, c, "frame failed authentication");
		return 0;
	}
	if (f->type == IVL_SDM_F_SEALED_BATCH) {
		size_t off = 0;
		int k = 0, delivered = 0;

		while (!c->dead && (k = ivl__sdm_batch_next(plain, (size_t)n, &off, &in)) > 0)
			delivered += inner_frame(s, c, &in);
		if (!c->dead && k < 0)
			ivl__sdm_conn_kill(s, c, "malformed batch");
		return delivered;
	}
	if (ivl__sdm_frame_decode(plain, (size_t)n, &in) != n || in.type == IVL_SDM_F_SEALED) {
		ivl__sdm_conn_kill(s, c, "malformed inner frame");
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
int ivl__sdm_conn_read(struct ivl_sdm *s, struct ivl__sdm_conn *c, bool *got)
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
			ivl__sdm_conn_kill(s, c, n < 0 ? "receive error" : NULL);
			break;
		}
		c->rx_len += (size_t)n;
		c->last_rx_ms = ivl__sdm_now_ms();
		*got = true;
		while (!c->dead) {
			struct ivl__sdm_frame f;
			int len = ivl__sdm_frame_decode(c->rx + off, c->rx_len - off, &f);

			if (len < 0)
				ivl__sdm_conn_kill(s, c, "malformed frame");
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
