/* SPDX-License-Identifier: MIT */
/*
 * What the files of the UNIX and TCP channels share (docs/sdm.md §3-§4):
 *   sock.c         the channel's ops: start/stop, send/flush/room, the
 *                  event loop, keepalives and reaping, addresses;
 *   sock-conn.c    one connection: buffers, sealing, send and receive, and
 *                  the frame dispatch of the handshake and registered phases;
 *   sock-master.c  the master side: listen, accept, admission (HELLO);
 *   sock-slave.c   the slave side: connect, backoff, KX_HELLO/HELLO, WELCOME
 *                  and REFUSE.
 * Nothing here is seen outside these files.
 */
#ifndef IVL_SDM_SOCK_H
#define IVL_SDM_SOCK_H

#include <sys/socket.h>

#include "sdm-internal.h"

/* Receive buffer: many frames per recv() (a burst of signals costs one
 * system call per buffer, not one per frame); at least two maximal frames. */
#define IVL__SDM_RXBUF 16384u
_Static_assert(IVL__SDM_RXBUF >= 2 * IVL_SDM_MAX_FRAME, "rx buffer holds a frame");
#define IVL__SDM_TXBUF 65536u
/* Master: unregistered connections held at most beyond the slaves. */
#define IVL__SDM_MAX_PENDING 64u

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

/* ---- connections (sock-conn.c) ------------------------------------------- */

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

/* The channel's state, in the object's priv[]. */
struct ivl__sdm_sock {
	bool tcp;
	bool have_key, insecure;
	uint8_t key[IVL_SDM_KEY_LEN];
	int64_t next_full_ms; /* process() runs its full path at the latest then */
	int lfd;	      /* master: listening socket */
	char *path;
	char *host;
	uint16_t port;
	struct ivl__sdm_conn **conns; /* master: every connection */
	size_t nconns;
	struct ivl__sdm_conn **slaves; /* master: by ID, registered only */
	struct ivl__sdm_conn *up;      /* slave: the connection */
	struct ivl__sdm_conn *dirty;   /* frames queued by a batch, not yet flushed */
};

static inline struct ivl__sdm_sock *ivl__sock(const struct ivl_sdm *s)
{
	return (struct ivl__sdm_sock *)(void *)s->priv;
}

struct ivl__sdm_conn *ivl__sdm_conn_new(struct ivl_sdm *s, int fd, enum ivl__sdm_conn_state st);
void ivl__sdm_conn_free(struct ivl_sdm *s, struct ivl__sdm_conn *c);
/* Mark @c for reaping; @why (NULL: an orderly close) counts a drop. */
void ivl__sdm_conn_kill(struct ivl_sdm *s, struct ivl__sdm_conn *c, const char *why);
void ivl__sdm_conn_out_interest(struct ivl_sdm *s, struct ivl__sdm_conn *c, bool want);
/* Send what is queued (0, or -EPIPE: the connection broke). */
int ivl__sdm_conn_flush(struct ivl_sdm *s, struct ivl__sdm_conn *c);
/* Queue one frame (sealed once the secure stream is up) without sending;
 * -EAGAIN if the buffers are full, -EPIPE. */
int ivl__sdm_conn_queue(struct ivl_sdm *s, struct ivl__sdm_conn *c, uint8_t type, const void *p,
			size_t len);
/* Queue one frame and send it at once. */
int ivl__sdm_conn_send(struct ivl_sdm *s, struct ivl__sdm_conn *c, uint8_t type, const void *p,
		       size_t len);
/* Master: send REFUSE(@reason), count it, and close after it. */
void ivl__sdm_conn_refuse(struct ivl_sdm *s, struct ivl__sdm_conn *c, uint16_t reason);
/* Read and handle every complete frame; *@got: bytes arrived.  Returns
 * the signals delivered. */
int ivl__sdm_conn_read(struct ivl_sdm *s, struct ivl__sdm_conn *c, bool *got);

/* ---- addresses (sock.c) ------------------------------------------------- */

struct sockaddr_un;
struct addrinfo;
int ivl__sdm_unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len);
int ivl__sdm_resolve(const char *host, uint16_t port, bool passive, struct addrinfo **res);
bool ivl__sdm_is_loopback(const struct sockaddr *sa);

/* ---- master side (sock-master.c) ---------------------------------------- */

int ivl__sdm_master_listen(struct ivl_sdm *s);
void ivl__sdm_master_accept(struct ivl_sdm *s);
/* A HELLO on connection @c: WELCOME it or REFUSE it (docs/sdm.md §3.1). */
void ivl__sdm_master_hello(struct ivl_sdm *s, struct ivl__sdm_conn *c,
			   const struct ivl__sdm_frame *f);

/* ---- slave side (sock-slave.c) ------------------------------------------ */

/* Errors after which a slave stops trying (bad version, wrong key). */
bool ivl__sdm_fatal(int err);
/* The connection is gone: record @why, schedule the next attempt. */
void ivl__sdm_slave_lost(struct ivl_sdm *s, int why);
void ivl__sdm_slave_connect(struct ivl_sdm *s);
/* The connection is established: start the handshake. */
void ivl__sdm_slave_connected(struct ivl_sdm *s, struct ivl__sdm_conn *c);
/* Keyed: KX_REPLY verified, KX_AUTH sent: now HELLO. */
void ivl__sdm_slave_send_hello(struct ivl_sdm *s, struct ivl__sdm_conn *c);
void ivl__sdm_slave_refused(struct ivl_sdm *s, struct ivl__sdm_conn *c,
			    const struct ivl__sdm_frame *f);
void ivl__sdm_slave_welcome(struct ivl_sdm *s, struct ivl__sdm_conn *c,
			    const struct ivl__sdm_frame *f);

#endif
