/* SPDX-License-Identifier: MIT */
/*
 * The Signal Distribution Module (SDM): master/slave inter-processor signals
 * (IRQ, BOOT, RESET with a 64-bit payload) over a local bus, UNIX or TCP
 * sockets or a link.  docs/sdm.md describes the model, the normative wire
 * format and handshake.
 *
 * Model: one master (ID 0) and up to max_slaves slaves (IDs 1..max_slaves).
 * The master may signal any connected slave; a slave may signal only the
 * master.  Routing is enforced by the sender (ivl_sdm_send() refuses) and by
 * the receiver (a frame whose `slave` field does not match the connection it
 * arrived on is dropped and counted in stats.dropped_forged).
 *
 * No event loop: ivl_sdm_get_fd() returns one pollable fd (readable when
 * there is work); call ivl_sdm_process() when it is readable, or at least
 * every ivl_sdm_timeout_ms() milliseconds (keepalives, dead peer detection
 * and reconnection are driven from there).  Handlers and actions run inside
 * ivl_sdm_process(), on the caller's thread.
 *
 * Thread safety: one ivl_sdm object must be used by one thread at a time.
 * Different objects, including objects attached to one ivl_sdm_bus, may be
 * used from different threads (the bus has its own lock).  Handlers must
 * not call ivl_sdm_free() on the object they are running for.
 *
 * Errors: every fallible call returns -errno (>= 0 on success).
 */
#ifndef IVLINK_SDM_H
#define IVLINK_SDM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Signal types (docs/sdm.md: the seed's enum order, RESET added). */
enum ivl_sdm_type {
	IVL_SDM_IRQ = 0,
	IVL_SDM_BOOT = 1,
	IVL_SDM_RESET = 2,
};
#define IVL_SDM_NTYPES 3u

/* The master's ID; slaves are 1..max_slaves. */
#define IVL_SDM_MASTER 0u
/* Reserved destination of a broadcast (master only): every registered slave
 * (the seed's mailbox use case, docs/sdm.md "Broadcast").  Never on a wire:
 * each slave receives an ordinary signal whose `slave` is its own ID. */
#define IVL_SDM_ALL 0xffffffffu
/* Largest max_slaves this implementation accepts (the wire field is 16 bits). */
#define IVL_SDM_MAX_SLAVES 1024u
/* LINK channel ring lengths (ivl_sdm_opts.link_ring). */
#define IVL_SDM_LINK_RING_MIN 16u
#define IVL_SDM_LINK_RING_MAX 4096u
#define IVL_SDM_LINK_RING_DEFAULT 1024u
/* Size of a pre-shared key. */
#define IVL_SDM_KEY_LEN 32u

/* A signal in host byte order (on every wire: 16 bytes, 4 x le32). */
struct ivl_sdm_signal {
	uint32_t type;	/* enum ivl_sdm_type */
	uint32_t slave; /* destination when sent by the master, 0 from a slave */
	uint32_t payload[2];
};

/* The device configuration of the seed (docs/sdm.md). */
struct ivl_sdm_config {
	bool master;
	uint16_t max_slaves;
	uint16_t current_slaves; /* master: connected slaves, exact; slave: 0 */
};

enum ivl_sdm_channel {
	IVL_SDM_CHAN_LOCAL = 0, /* objects of one process on an ivl_sdm_bus */
	IVL_SDM_CHAN_UNIX = 1,	/* master listens on a UNIX socket path */
	IVL_SDM_CHAN_TCP = 2,	/* master listens on host:port */
	IVL_SDM_CHAN_LINK = 3,	/* mailboxes in an ivlink link's app area */
};

struct ivl_sdm;
struct ivl_sdm_bus;
struct ivl_link;

/* Options of ivl_sdm_new().  Zero-initialise, then set what you need. */
struct ivl_sdm_opts {
	bool master;
	/* Master: initial max_slaves, 1..IVL_SDM_MAX_SLAVES. */
	uint16_t max_slaves;
	/* Slave: the ID asked for (0: any free ID).  After a welcome the
	 * assigned ID is asked for again on every reconnection. */
	uint16_t id;
	enum ivl_sdm_channel channel;
	/* LOCAL: the bus (borrowed; must outlive the object). */
	struct ivl_sdm_bus *bus;
	/* UNIX: the socket path.  A master unlinks a stale socket first. */
	const char *path;
	/* TCP: host (numeric or name) and port; a master may pass port 0 and
	 * read the bound port with ivl_sdm_tcp_port(). */
	const char *host;
	uint16_t port;
	/* UNIX/TCP: pre-shared key (IVL_SDM_KEY_LEN bytes, copied), or NULL.
	 * With a key every connection is mutually authenticated and every
	 * frame encrypted and authenticated.  On TCP a key is required unless
	 * the address is loopback or @insecure is set (else -EPERM). */
	const uint8_t *key;
	bool insecure;
	/* Keepalive period (default 1000 ms); a peer silent for 3 periods is
	 * dead.  Slaves reconnect with exponential backoff from
	 * reconnect_min_ms (default 50) to reconnect_max_ms (default 2000). */
	uint32_t keepalive_ms;
	uint32_t reconnect_min_ms, reconnect_max_ms;
	/* LINK: the link (borrowed; must outlive the object, and the SDM
	 * takes over its events: do not call ivl_link_process() on it), the
	 * offset of the SDM area in the link's app area (multiple of 8; the
	 * master formats it), and, for a slave, the master's link peer ID.
	 * The area holds 64 + (64 + 2 * (128 + 16 * link_ring)) * (capacity + 1)
	 * bytes (docs/sdm.md §5); a master needs capacity >= max_slaves (else
	 * -ENOSPC) and max_slaves can later be raised only up to the capacity
	 * (-ERANGE).  Liveness comes from the link's join/leave events (no
	 * keepalive), there is no key: the link's memory is as trusted as its
	 * peers.  The SDM turns coalescing on for the link
	 * (ivl_link_set_coalescing()): its doorbells are only hints. */
	struct ivl_link *link;
	uint64_t link_offset;
	uint16_t link_master;
	/* LINK master: signals per ring (each direction of each slot), a power
	 * of two in IVL_SDM_LINK_RING_MIN..MAX (else -EINVAL); 0: the largest
	 * up to IVL_SDM_LINK_RING_DEFAULT with which the area holds
	 * max_slaves slots.  Slaves read it from the area. */
	uint32_t link_ring;
};

/* Counters (monotonic, per object). */
struct ivl_sdm_stats {
	uint64_t sent;		  /* signals accepted by ivl_sdm_send() */
	uint64_t received;	  /* signals delivered (handler or not) */
	uint64_t dropped_forged;  /* routing violated by the remote end */
	uint64_t dropped_invalid; /* unknown type */
	uint64_t dropped_action;  /* an action returned < 0 */
	uint64_t conn_accepted;	  /* master: slaves welcomed */
	uint64_t conn_refused;	  /* master: refusals sent */
	uint64_t conn_dropped;	  /* malformed/unauthenticated/dead connections */
	uint64_t keepalive_timeouts;
	uint64_t reconnects; /* slave: successful welcomes after the first */
};

/*
 * Handler: runs in ivl_sdm_process() for each delivered signal of its type.
 * @from is the sender's ID (0 for the master).  @sig is valid only during
 * the call.
 */
typedef void ivl_sdm_handler_fn(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig,
				uint16_t from, void *opaque);
/*
 * Action: for BOOT and RESET, runs before the handler ("do the hardware
 * action, then forward the signal").  Return 0 to forward the signal to the
 * handler, < 0 to drop it (counted in dropped_action).
 */
typedef int ivl_sdm_action_fn(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig, uint16_t from,
			      void *opaque);

/* ---- local bus ---------------------------------------------------------- */

/* A bus for LOCAL objects of one process.  Errors: -EINVAL (NULL @out),
 * -ENOMEM.  *out is the caller's: free it only after every object on it.
 * ivl_sdm_bus_free(NULL) is a no-op.  A bus may be shared by threads. */
int ivl_sdm_bus_new(struct ivl_sdm_bus **out);
void ivl_sdm_bus_free(struct ivl_sdm_bus *bus);

/* ---- objects ------------------------------------------------------------ */

/*
 * Create a master or a slave.  A master listens (UNIX/TCP) or registers on
 * the bus at once.  A LOCAL slave registers at once; a UNIX/TCP slave
 * connects in the background (ivl_sdm_state() tells when it is welcome).
 * Errors: -EINVAL (bad options), -ERANGE (max_slaves/id out of range),
 * -EPERM (TCP without key on a non-loopback address and not insecure),
 * -EEXIST (LOCAL: the bus already has a master), -ENOENT (LOCAL slave: no
 * master), -EUSERS (LOCAL slave: max_slaves reached), -EADDRINUSE (LOCAL
 * slave: ID taken; or the socket address), -ENOMEM, socket errors.
 * On success *out is owned by the caller (ivl_sdm_free()).
 */
int ivl_sdm_new(struct ivl_sdm **out, const struct ivl_sdm_opts *opt);
/* Close connections, leave the bus, remove a master's UNIX socket.  NULL ok. */
void ivl_sdm_free(struct ivl_sdm *sdm);

/* Returns the pollable fd (owned by the object; do not close), readable
 * when ivl_sdm_process() has work, or -EINVAL for NULL. */
int ivl_sdm_get_fd(const struct ivl_sdm *sdm);
/* Returns the milliseconds until ivl_sdm_process() must run even if the fd
 * is quiet (the keepalive period; -1: never, LOCAL), or -EINVAL for NULL. */
int ivl_sdm_timeout_ms(const struct ivl_sdm *sdm);

/*
 * Do all pending work without blocking: accept and handshake, read frames,
 * run actions and handlers, keepalives, dead peer detection, reconnection.
 * Returns the number of signals delivered (>= 0), or a fatal error:
 * -EACCES (slave: authentication failed), -EPROTONOSUPPORT (slave: the
 * master speaks another version).  Per-connection errors are not fatal: the
 * connection is dropped and counted.  With a single connection (a slave, a
 * master with one slave) a call that finds signals on it may handle only
 * those; the rest (accept, timers, pending output) then waits for the next
 * call, at most keepalive_ms / 4 later, and the fd stays readable for it.
 */
int ivl_sdm_process(struct ivl_sdm *sdm);

/*
 * Send a signal (copied).  Routing: a master sends to sig->slave in
 * 1..IVL_SDM_MAX_SLAVES, or to IVL_SDM_ALL; a slave must set sig->slave = 0.
 * Returns 0 (unicast), or for IVL_SDM_ALL the number of slaves the signal
 * was queued for (0 when none is registered).
 * Errors: -EINVAL (type >= IVL_SDM_NTYPES, master to ID 0 or beyond the
 * limit), -EPERM (a slave addressing anything but the master, including
 * IVL_SDM_ALL), -ENOENT (master: that slave is not connected), -ENOTCONN
 * (slave: not registered with a master), -EAGAIN (the connection's send
 * buffer is full), -EPIPE.  A signal is never silently dropped by the
 * sender.
 *
 * Broadcast (IVL_SDM_ALL): all or nothing with respect to backpressure.
 * The set of destinations is the slaves registered when the call starts;
 * if any of them has no room for one more signal the call returns -EAGAIN
 * and sends nothing, else every one of them gets exactly one signal (one
 * frame per connection, one send() per connection on UNIX/TCP, one
 * doorbell per slave on LINK), with `slave` set to its own ID and `from`
 * 0, like any signal of the master.  A slave that leaves during the call
 * does not get it (and is not counted); a slave that registers during the
 * call does not get it either (on LOCAL, where another thread may join
 * concurrently, it gets it only if it was registered when the set was
 * taken).  One broadcast counts as one signal in stats.sent.
 */
int ivl_sdm_send(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig);

/*
 * Send @n signals (copied) in order, with the same rules and errors as
 * ivl_sdm_send() for each (a broadcast is one signal), but batched: on UNIX and TCP the frames of a run
 * of signals to one destination leave in one send() (a batch costs about
 * one system call, not one per signal); on LINK one doorbell per run.
 * Returns how many signals were accepted, from the first: @n, or fewer if
 * signal k failed (signals k.. are not sent: typically -EAGAIN, call
 * ivl_sdm_process() when the fd is readable and send the rest again).
 * If the first one fails, returns its error.  -EINVAL if @sigs is NULL or
 * @n is 0 or above INT_MAX; -EPIPE if the connection broke while the batch
 * was written (the signals of this call may or may not have arrived).
 */
int ivl_sdm_send_batch(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sigs, size_t n);

/* Install (or with NULL remove) the handler of @type.  Errors: -EINVAL. */
int ivl_sdm_set_handler(struct ivl_sdm *sdm, uint32_t type, ivl_sdm_handler_fn *fn, void *opaque);
/* Install the action of BOOT or RESET.  Errors: -EINVAL (IRQ or unknown). */
int ivl_sdm_set_action(struct ivl_sdm *sdm, uint32_t type, ivl_sdm_action_fn *fn, void *opaque);

/* Fill the caller's @cfg.  Returns 0.  Errors: -EINVAL (NULL argument). */
int ivl_sdm_get_config(const struct ivl_sdm *sdm, struct ivl_sdm_config *cfg);
/*
 * Set max_slaves.  Returns 0.  Errors: -EINVAL (NULL, a slave), -ERANGE
 * (outside 1..IVL_SDM_MAX_SLAVES; LINK: above the area's capacity).
 * Lowering it below current_slaves keeps the connected slaves but refuses
 * new ones (and IDs above the new value) until there is room again.
 */
int ivl_sdm_set_max_slaves(struct ivl_sdm *sdm, uint16_t max_slaves);

/* Returns the own ID: 0 for a master, the assigned ID of a welcomed slave;
 * -ENOTCONN (slave not welcome now), -EINVAL (NULL). */
int ivl_sdm_id(const struct ivl_sdm *sdm);
/* Master: whether slave @id is connected (false on a slave or for NULL). */
bool ivl_sdm_slave_present(const struct ivl_sdm *sdm, uint16_t id);
/*
 * Returns the connection state: 0 when usable (a master always, a welcomed
 * slave), -EINVAL for NULL,
 * else why not: -EINPROGRESS (connecting), -ENOTCONN (lost, will retry),
 * -EUSERS (refused: master full; retrying), -EADDRINUSE (refused: ID
 * taken; retrying), -EACCES (authentication failed; fatal),
 * -EPROTONOSUPPORT (version; fatal).
 */
int ivl_sdm_state(const struct ivl_sdm *sdm);
/* Copy the counters to the caller's @st.  Returns 0.  Errors: -EINVAL. */
int ivl_sdm_get_stats(const struct ivl_sdm *sdm, struct ivl_sdm_stats *st);
/* Returns the bound port of a TCP master (useful with port 0); -EINVAL for
 * anything else. */
int ivl_sdm_tcp_port(const struct ivl_sdm *sdm);

/* "irq", "boot", "reset" (static strings) or NULL; and the reverse, case
 * insensitive: Returns the type, or -EINVAL (unknown or NULL).  Any
 * thread. */
const char *ivl_sdm_type_name(uint32_t type);
int ivl_sdm_type_from_name(const char *name);

/*
 * Read a key file: exactly 32 bytes of binary, or 64 hex digits with an
 * optional trailing newline, into the caller's @key.  Errors: -EINVAL
 * (NULL argument, not a regular file, wrong format), -EPERM (group or
 * others have any permission on the file), open/read errors.  Any thread.
 */
int ivl_sdm_load_key(const char *path, uint8_t key[IVL_SDM_KEY_LEN]);

#ifdef __cplusplus
}
#endif

#endif
