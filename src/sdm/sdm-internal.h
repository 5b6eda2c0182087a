/* SPDX-License-Identifier: MIT */
/* SDM internals shared by the core, the channels, the codec and the crypto. */
#ifndef IVL_SDM_INTERNAL_H
#define IVL_SDM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include <ivlink/proto/sdm.h>
#include <ivlink/sdm.h>

/* ---- wire format: <ivlink/proto/sdm.h>, docs/sdm.md -------------------- */

struct ivl__sdm_frame {
	uint8_t type;
	uint16_t len;
	const uint8_t *payload; /* points into the parsed buffer */
};

struct ivl__sdm_hello {
	uint16_t version, id;
};
struct ivl__sdm_welcome {
	uint16_t version, id, max_slaves;
	uint32_t keepalive_ms;
};

/* Encode a frame header + payload into @out (room for HDR + len).  Returns
 * the total length or -EMSGSIZE. */
int ivl__sdm_frame_encode(uint8_t *out, size_t room, uint8_t type, const void *payload, size_t len);
/* Parse one frame from @buf.  Returns its total length, 0 if more bytes are
 * needed, -EBADMSG if malformed (flags != 0, length over the limit of its
 * type, unknown type).  @secure_outer: the limits of the outer (sealed)
 * layer apply. */
int ivl__sdm_frame_decode(const uint8_t *buf, size_t len, struct ivl__sdm_frame *f);
/* The next inner frame of an opened SEALED_BATCH plaintext at *@off:
 * 1 (stored in @f, *@off advanced), 0 at the end, -EBADMSG if the rest is
 * not a whole frame or is a sealed one (an empty batch is malformed too:
 * call it first with *@off == 0). */
int ivl__sdm_batch_next(const uint8_t *buf, size_t len, size_t *off, struct ivl__sdm_frame *f);
void ivl__sdm_signal_encode(uint8_t out[IVL_SDM_SIGNAL_LEN], const struct ivl_sdm_signal *s);
int ivl__sdm_signal_decode(const struct ivl__sdm_frame *f, struct ivl_sdm_signal *s);
void ivl__sdm_hello_encode(uint8_t out[IVL_SDM_HELLO_LEN], uint16_t id);
int ivl__sdm_hello_decode(const struct ivl__sdm_frame *f, struct ivl__sdm_hello *h);
void ivl__sdm_welcome_encode(uint8_t out[IVL_SDM_WELCOME_LEN], const struct ivl__sdm_welcome *w);
int ivl__sdm_welcome_decode(const struct ivl__sdm_frame *f, struct ivl__sdm_welcome *w);
void ivl__sdm_refuse_encode(uint8_t out[IVL_SDM_REFUSE_LEN], uint16_t reason);
int ivl__sdm_refuse_decode(const struct ivl__sdm_frame *f, uint16_t *reason);
/* A refusal reason as the -errno a slave reports. */
int ivl__sdm_refusal_errno(uint16_t reason);
const char *ivl__sdm_refusal_name(uint16_t reason);

/* ---- secure channel (secure.c) -------------------------------------------- */

struct ivl__sdm_sec {
	uint8_t psk[IVL_SDM_KEY_LEN];
	uint8_t pk[crypto_kx_PUBLICKEYBYTES], sk[crypto_kx_SECRETKEYBYTES];
	uint8_t peer_pk[crypto_kx_PUBLICKEYBYTES];
	crypto_secretstream_xchacha20poly1305_state tx, rx;
	bool ready;	  /* both streams initialised */
	uint16_t version; /* keyed framing version in use: 1, or 2 (batches) */
};

/* Client: fresh ephemeral key; fills the KX_HELLO payload. */
int ivl__sdm_sec_client_hello(struct ivl__sdm_sec *s, uint8_t out[IVL_SDM_KX_HELLO_LEN]);
/* Server: check a KX_HELLO, derive keys, fill the KX_REPLY payload.
 * -EPROTONOSUPPORT (version), -EBADMSG. */
int ivl__sdm_sec_server_reply(struct ivl__sdm_sec *s, const struct ivl__sdm_frame *hello,
			      uint8_t out[IVL_SDM_KX_REPLY_LEN]);
/* Client: verify the server's proof, derive keys, fill KX_AUTH.  -EACCES. */
int ivl__sdm_sec_client_auth(struct ivl__sdm_sec *s, const struct ivl__sdm_frame *reply,
			     uint8_t out[IVL_SDM_KX_AUTH_LEN]);
/* Server: verify the client's proof.  -EACCES. */
int ivl__sdm_sec_server_finish(struct ivl__sdm_sec *s, const struct ivl__sdm_frame *auth);
/* Seal a plaintext inner frame into a SEALED frame in @out.  Returns its
 * length or -errno. */
int ivl__sdm_sec_seal(struct ivl__sdm_sec *s, const uint8_t *in, size_t len, uint8_t *out,
		      size_t room);
/* Seal @len bytes of whole inner frames (<= IVL_SDM_BATCH_PLAIN) into a
 * SEALED_BATCH frame in @out.  Returns its length or -errno. */
int ivl__sdm_sec_seal_batch(struct ivl__sdm_sec *s, const uint8_t *in, size_t len, uint8_t *out,
			    size_t room);
/* Open a SEALED or SEALED_BATCH frame's payload into @out (room for the
 * largest plaintext of its type).  Returns the plaintext length; -EBADMSG
 * on any forgery, replay, reordering or truncation (the stream is then
 * dead). */
int ivl__sdm_sec_open(struct ivl__sdm_sec *s, const struct ivl__sdm_frame *f, uint8_t *out,
		      size_t room);
void ivl__sdm_sec_wipe(struct ivl__sdm_sec *s);

/* ---- the object ------------------------------------------------------------ */

/* Receive buffer: many frames per recv() (a burst of signals costs one
 * system call per buffer, not one per frame); at least two maximal frames. */
#define IVL__SDM_RXBUF 16384u
_Static_assert(IVL__SDM_RXBUF >= 2 * IVL_SDM_MAX_FRAME, "rx buffer holds a frame");
#define IVL__SDM_TXBUF 65536u
#define IVL__SDM_MAX_PENDING 64u

enum ivl__sdm_conn_state {
	IVL__C_CONNECTING, /* client: non-blocking connect in flight */
	IVL__C_KX_REPLY,   /* client: waiting for KX_REPLY */
	IVL__C_WELCOME,	   /* client: HELLO sent, waiting for WELCOME */
	IVL__C_KX_HELLO,   /* server: waiting for KX_HELLO */
	IVL__C_KX_AUTH,	   /* server: waiting for KX_AUTH */
	IVL__C_HELLO,	   /* server: waiting for HELLO */
	IVL__C_UP,	   /* registered */
};

struct ivl__sdm_conn {
	int fd;
	enum ivl__sdm_conn_state state;
	uint16_t id; /* the slave's ID once registered (master side) */
	bool secure;
	bool dead;     /* to be closed by the owner */
	bool want_out; /* EPOLLOUT is in the epoll set (tx_len > 0) */
	int64_t last_rx_ms, last_tx_ms, born_ms;
	size_t rx_len, tx_len, ptx_len;
	uint8_t rx[IVL__SDM_RXBUF];
	uint8_t tx[IVL__SDM_TXBUF];
	uint8_t ptx[IVL_SDM_BATCH_PLAIN]; /* v2: inner frames not sealed yet */
	struct ivl__sdm_sec sec;
};


struct ivl_sdm {
	bool master;
	enum ivl_sdm_channel channel;
	uint16_t max_slaves, current_slaves;
	uint16_t id;	  /* slave: assigned ID (0 = none yet) */
	uint16_t want_id; /* slave: ID to ask for */
	int state;	  /* see ivl_sdm_state() */
	int epfd;	  /* the pollable fd */
	int timerfd;	  /* periodic tick for keepalive and reconnection */
	struct ivl_sdm_stats st;
	struct {
		ivl_sdm_handler_fn *fn;
		void *opaque;
	} handler[IVL_SDM_NTYPES];
	struct {
		ivl_sdm_action_fn *fn;
		void *opaque;
	} action[IVL_SDM_NTYPES];

	/* LOCAL */
	struct ivl_sdm_bus *bus;
	int evfd;			/* doorbell of our rings */
	struct ivl__sdm_lslot *lslot;	/* slave: our slot (owned by the bus) */
	uint16_t local_tx_id;		/* the batch's destination (local.c) */
	uint32_t idle_calls, busy_calls; /* ivl__sdm_idle(), link.c */
	int64_t idle_since_ns;		 /* -1: not idle */

	/* UNIX/TCP */
	bool have_key, insecure;
	uint8_t key[IVL_SDM_KEY_LEN];
	uint32_t keepalive_ms, rc_min_ms, rc_max_ms, rc_delay_ms;
	int64_t next_connect_ms;
	int64_t next_full_ms; /* process() runs its full path at the latest then */
	int64_t timer_t0_ns, tick_ns; /* the timerfd expires at t0 + k * tick, k >= 1 */
	uint64_t timer_seen;	      /* expirations read from it so far */
	int lfd; /* master: listening socket */
	char *path;
	char *host;
	uint16_t port;
	struct ivl__sdm_conn **conns; /* master: every connection */
	size_t nconns;
	struct ivl__sdm_conn **slaves; /* master: by ID, registered only */
	struct ivl__sdm_conn *up;      /* slave: the connection */
	struct ivl__sdm_conn *dirty;   /* frames queued by a batch, not yet flushed */
	bool ever_welcomed;

	/* LINK */
	struct ivl_link *link; /* borrowed */
	void *link_area;       /* shared: hostile */
	uint64_t link_size;    /* bytes of the area from link_offset on */
	uint16_t link_self, link_master, link_capacity, link_slot;
	uint16_t link_hi;      /* master: highest ID ever registered */
	uint32_t link_ring_len; /* entries per ring (a slave: from the area) */
	uint32_t *link_peer; /* master: by ID, link peer + 1 of registered slaves */
	int32_t link_ring_peer; /* a batch's doorbell still to ring, or -1 */
	void *link_tx;		/* the ring a batch is filling, or NULL (also LOCAL) */
	uint32_t link_tx_head, link_tx_room; /* its private head, free entries */
};

int64_t ivl__sdm_now_ns(void);
int64_t ivl__sdm_now_ms(void);
/* Whether the periodic timerfd has expired more often than it was read
 * (from the clock, no system call); read it (non-blocking). */
bool ivl__sdm_timer_due(const struct ivl_sdm *sdm);
int ivl__sdm_timer_drain(struct ivl_sdm *sdm);
/* LINK and LOCAL receivers: after a call that delivered @delivered, whether
 * to take the slow path (fds, doorbell arming); see sdm.c. */
#define IVL__SDM_QUIET_NS 50000
bool ivl__sdm_idle(struct ivl_sdm *sdm, int delivered);
/* Routing + action + handler for a received signal (from: connection ID). */
int ivl__sdm_deliver(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig, uint16_t from);

/* local.c */
int ivl__sdm_local_attach(struct ivl_sdm *sdm, struct ivl_sdm_bus *bus);
void ivl__sdm_local_detach(struct ivl_sdm *sdm);
/* Send @n signals (already route-checked) under one lock; returns how many
 * were queued, or the first one's error. */
int ivl__sdm_local_send_batch(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sigs, size_t n);
int ivl__sdm_local_process(struct ivl_sdm *sdm);
bool ivl__sdm_local_present(const struct ivl_sdm *sdm, uint16_t id);
int ivl__sdm_local_count(const struct ivl_sdm *sdm);
/* Master: the registered slaves' IDs into @ids (IVL_SDM_MAX_SLAVES). */
size_t ivl__sdm_local_ids(const struct ivl_sdm *sdm, uint16_t *ids);
/* Master: 0 if slave @id can take one more signal, -EAGAIN, -ENOENT. */
int ivl__sdm_local_room(const struct ivl_sdm *sdm, uint16_t id);

/* link.c */
int ivl__sdm_link_start(struct ivl_sdm *sdm, const struct ivl_sdm_opts *opt);
void ivl__sdm_link_stop(struct ivl_sdm *sdm);
/* @more: further signals of one batch follow; the doorbell may wait for
 * ivl__sdm_link_flush(). */
int ivl__sdm_link_send(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig, bool more);
int ivl__sdm_link_flush(struct ivl_sdm *sdm);
int ivl__sdm_link_process(struct ivl_sdm *sdm);
int ivl__sdm_link_set_max(struct ivl_sdm *sdm, uint16_t max);
/* Master: 0 if slave @id's mailbox has room for one signal, -EAGAIN, -ENOENT. */
int ivl__sdm_link_room(struct ivl_sdm *sdm, uint16_t id);

/* sock.c */
int ivl__sdm_sock_start(struct ivl_sdm *sdm, const struct ivl_sdm_opts *opt);
void ivl__sdm_sock_stop(struct ivl_sdm *sdm);
/* @more: further signals of one batch follow; the frame may stay queued
 * until ivl__sdm_sock_flush() (one send() for the whole batch). */
int ivl__sdm_sock_send(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig, bool more);
int ivl__sdm_sock_flush(struct ivl_sdm *sdm);
int ivl__sdm_sock_process(struct ivl_sdm *sdm);
/* Master: 0 if slave @id's send buffer has room for one frame (after
 * trying to flush it), -EAGAIN, -ENOENT (not connected, or it broke). */
int ivl__sdm_sock_room(struct ivl_sdm *sdm, uint16_t id);

#endif
