/* SPDX-License-Identifier: MIT */
/* SDM internals shared by the core (sdm.c), the channels and the codec; the
 * socket channels and the crypto add src/sdm/sock.h. */
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
 * type, unknown type). */
int ivl__sdm_frame_decode(const uint8_t *buf, size_t len, struct ivl__sdm_frame *f);
/* The next inner frame of an opened SEALED_BATCH plaintext at *@off:
 * 1 (stored in @f, *@off advanced), 0 at the end, -EBADMSG if the rest is
 * not a whole frame or is a sealed one (an empty batch is malformed too:
 * call it first with *@off == 0). */
int ivl__sdm_batch_next(const uint8_t *buf, size_t len, size_t *off, struct ivl__sdm_frame *f);
void ivl__sdm_signal_encode(uint8_t out[IVL_SDM_SIGNAL_LEN], const struct ivl_sdm_signal *s);
int ivl__sdm_signal_decode(const struct ivl__sdm_frame *f, struct ivl_sdm_signal *s);

/* A signal to and from its wire structure (struct ivl_sdm_wire_signal):
 * inline, for the shared-memory rings' loops. */
static inline void ivl__sdm_signal_to_wire(uint8_t *out, const struct ivl_sdm_signal *s)
{
	struct ivl_sdm_wire_signal w = {
	    .type = s->type, .slave = s->slave, .payload = {s->payload[0], s->payload[1]}};

	__builtin_memcpy(out, &w, sizeof(w));
}

static inline void ivl__sdm_signal_from_wire(const uint8_t *in, struct ivl_sdm_signal *s)
{
	struct ivl_sdm_wire_signal w;

	__builtin_memcpy(&w, in, sizeof(w));
	s->type = w.type;
	s->slave = w.slave;
	s->payload[0] = w.payload[0];
	s->payload[1] = w.payload[1];
}
void ivl__sdm_hello_encode(uint8_t out[IVL_SDM_HELLO_LEN], uint16_t id);
int ivl__sdm_hello_decode(const struct ivl__sdm_frame *f, struct ivl__sdm_hello *h);
void ivl__sdm_welcome_encode(uint8_t out[IVL_SDM_WELCOME_LEN], const struct ivl__sdm_welcome *w);
int ivl__sdm_welcome_decode(const struct ivl__sdm_frame *f, struct ivl__sdm_welcome *w);
void ivl__sdm_refuse_encode(uint8_t out[IVL_SDM_REFUSE_LEN], uint16_t reason);
int ivl__sdm_refuse_decode(const struct ivl__sdm_frame *f, uint16_t *reason);
/* A refusal reason as the -errno a slave reports. */
int ivl__sdm_refusal_errno(uint16_t reason);
const char *ivl__sdm_refusal_name(uint16_t reason);

/* ---- the object ------------------------------------------------------------ */

/*
 * A channel: how signals move.  sdm.c owns the object, the routing rules,
 * the tables and the counters, and calls the channel only through its ops
 * (one const table per channel, chosen in ivl_sdm_new()).  A channel keeps
 * its own state in the object's priv[] area (priv_size bytes, zeroed) and
 * knows nothing of the other channels.
 */
struct ivl__sdm_chan_ops {
	const char *name;
	size_t priv_size;
	/* Check the channel's options (before anything is allocated). */
	int (*check)(const struct ivl_sdm_opts *o);
	/* Set up (epfd exists; priv is zeroed).  On failure stop() follows. */
	int (*start)(struct ivl_sdm *s, const struct ivl_sdm_opts *o);
	/* Release everything of the channel; also after a failed start(). */
	void (*stop)(struct ivl_sdm *s);
	/* One route-checked signal to one destination.  @more: further
	 * signals of one batch follow, the channel may hold them until
	 * flush().  0, -EAGAIN (full), -ENOENT (no such slave), -ENOTCONN,
	 * -EPIPE. */
	int (*send)(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, bool more);
	/* Send what a batch queued.  May be NULL (nothing is ever held). */
	int (*flush)(struct ivl_sdm *s);
	/* Optional: @n route-checked signals, none a broadcast, in one go,
	 * published before it returns (flush() is not called after it);
	 * returns how many were queued, or the first one's error. */
	int (*send_batch)(struct ivl_sdm *s, const struct ivl_sdm_signal *sigs, size_t n);
	/* ivl_sdm_process(): signals delivered, or -errno. */
	int (*process)(struct ivl_sdm *s);
	/* Master: whether slave @id (1..IVL_SDM_MAX_SLAVES) is registered. */
	bool (*present)(const struct ivl_sdm *s, uint16_t id);
	/* Master: registered slaves; NULL: s->current_slaves. */
	int (*count)(const struct ivl_sdm *s);
	/* Master: their IDs, ascending, into @ids (IVL_SDM_MAX_SLAVES);
	 * NULL: every ID for which present() holds. */
	size_t (*ids)(const struct ivl_sdm *s, uint16_t *ids);
	/* Master: 0 if slave @id can take one more signal, -EAGAIN, -ENOENT. */
	int (*room)(struct ivl_sdm *s, uint16_t id);
	/* Master: max_slaves is about to change (validated); may be NULL. */
	int (*set_max)(struct ivl_sdm *s, uint16_t max);
	/* The master's TCP port, -EINVAL if none; NULL: never one. */
	int (*port)(const struct ivl_sdm *s);
};

extern const struct ivl__sdm_chan_ops ivl__sdm_local_ops;
extern const struct ivl__sdm_chan_ops ivl__sdm_sock_ops; /* UNIX and TCP */
extern const struct ivl__sdm_chan_ops ivl__sdm_link_ops;

struct ivl_sdm {
	const struct ivl__sdm_chan_ops *ops;
	bool master;
	uint16_t max_slaves, current_slaves;
	uint16_t id;	  /* slave: assigned ID (0 = none yet) */
	uint16_t want_id; /* slave: ID to ask for */
	int state;	  /* see ivl_sdm_state() */
	int epfd;	  /* the pollable fd */
	int timerfd;	  /* periodic tick (ivl__sdm_timer_start()), or -1 */
	struct ivl_sdm_stats st;
	struct {
		ivl_sdm_handler_fn *fn;
		void *opaque;
	} handler[IVL_SDM_NTYPES];
	struct {
		ivl_sdm_action_fn *fn;
		void *opaque;
	} action[IVL_SDM_NTYPES];

	/* Receivers on shared memory (LOCAL, LINK): ivl__sdm_idle(). */
	uint32_t idle_calls, busy_calls;
	int64_t idle_since_ns; /* -1: not idle */

	/* Channels with a tick (UNIX, TCP, LINK): keepalive, reconnection. */
	uint32_t keepalive_ms, rc_min_ms, rc_max_ms, rc_delay_ms;
	int64_t next_connect_ms;
	int64_t timer_t0_ns, tick_ns; /* the timerfd expires at t0 + k * tick, k >= 1 */
	uint64_t timer_seen;	      /* expirations read from it so far */
	bool ever_welcomed;

	/* The channel's own state (ops->priv_size bytes). */
	_Alignas(16) unsigned char priv[];
};

int64_t ivl__sdm_now_ns(void);
int64_t ivl__sdm_now_ms(void);
/* Create the periodic timerfd (keepalive / 4, for a slave at most the
 * reconnection minimum) and add it to the epoll set with data.ptr NULL. */
int ivl__sdm_timer_start(struct ivl_sdm *sdm);
/* Whether the periodic timerfd has expired more often than it was read
 * (from the clock, no system call); read it (non-blocking). */
bool ivl__sdm_timer_due(const struct ivl_sdm *sdm);
int ivl__sdm_timer_drain(struct ivl_sdm *sdm);
/* LINK and LOCAL receivers: after a call that delivered @delivered, whether
 * to take the slow path (fds, doorbell arming); see sdm.c. */
#define IVL__SDM_QUIET_NS 50000
/* LINK and LOCAL receivers drain at most this many laps of one ring per
 * ivl_sdm_process() call: a producer that never stops cannot keep the
 * caller there, and a caller that polls its fd before each call pays one
 * system call per several thousand signals. */
#define IVL__SDM_RX_LAPS 4u
bool ivl__sdm_idle(struct ivl_sdm *sdm, int delivered);
/* Routing + action + handler for a received signal (from: connection ID). */
int ivl__sdm_deliver(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig, uint16_t from);
/* The same for @n signals in a row from one sender; returns how many were
 * delivered. */
int ivl__sdm_deliver_many(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sigs, unsigned n,
			  uint16_t from);
/* How many signals from @sigs on (n >= 1) name the same destination: a
 * master's batch goes to a channel's rings in such runs. */
static inline size_t ivl__sdm_same_dest(const struct ivl_sdm_signal *sigs, size_t n)
{
	size_t k = 1;

	while (k < n && sigs[k].slave == sigs[0].slave)
		k++;
	return k;
}

#endif
