/* SPDX-License-Identifier: MIT */
/*
 * The link: one peer's view of a shared region and of the doorbells of the
 * other peers.  Backends: host (a peer of an ivshmem server: ivlink-server or
 * QEMU's), local (in process, for tests and simulations); guest (the ivshmem
 * PCI device) comes later.  Code written against this API runs on all.
 *
 * The library runs no loop: ivl_link_get_fd() is readable when
 * ivl_link_process() has something to report; ivl_link_wait() blocks.
 *
 * Thread safety: a link is used by one thread at a time, except
 * ivl_link_ring(), ivl_link_broadcast() and ivl_link_get_stats(), which may
 * be called from any thread concurrently with everything but
 * ivl_link_free().
 *
 * Ownership: *out of a constructor is the caller's (ivl_link_free()).
 * Pointers a link returns (region, app area, header copy, peer names) and
 * its fd belong to the link and stay valid until ivl_link_free(), unless
 * said otherwise.  The region is shared with the peers: its bytes may
 * change at any time and are read as hostile input.
 */
#ifndef IVLINK_LINK_H
#define IVLINK_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ivlink/proto/shm.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ivl_link;

enum ivl_link_event_type {
	IVL_LINK_JOIN = 1,  /* .peer joined (its vectors are ringable) */
	IVL_LINK_LEAVE,     /* .peer left */
	IVL_LINK_DOORBELL,  /* my .vector was rung (.count >= 1 coalesced) */
	IVL_LINK_DOWN,      /* the server went away; only free() is left */
};

struct ivl_link_event {
	enum ivl_link_event_type type;
	uint16_t peer;
	uint16_t vector;
	uint32_t count;
};

struct ivl_link_host_opts {
	const char *socket_path; /* NULL: /tmp/ivshmem_socket */
	unsigned vectors;        /* vectors kept per peer; 0: all the server
				  * offers (up to 64) */
	const char *name;        /* sent in the hello (ivlink servers only) */
	bool no_hello;           /* never send the hello */
	int timeout_ms;          /* handshake bound; 0: 5000, -1: forever */
};

/*
 * Connect to an ivshmem server and complete the handshake (blocking, bounded
 * by timeout_ms), map the region, and, on an ivlink server, validate the
 * header and send the hello.  Against QEMU's server (no header) the end of
 * the handshake is the first moment the socket has nothing more to read
 * after my own vectors arrived.
 * Errors: -ENOENT / -ECONNREFUSED (no server), -ENAMETOOLONG, -ETIMEDOUT,
 * -EPROTONOSUPPORT (server version), -EPROTO (protocol violation or bad
 * region), -ECONNRESET (server closed: full, refused), -EUSERS (refused:
 * the server is full), -EACCES (refused: this user is not allowed), -EMFILE
 * (refused: the server is out of file descriptors), -EINVAL (NULL @out,
 * vectors > 64, timeout_ms < -1, empty socket_path), -EIO (the hello could
 * not be written whole), -ENOMEM, -errno.  @opts may be NULL (defaults)
 * and is only read during the call.
 */
int ivl_link_host_new(struct ivl_link **out, const struct ivl_link_host_opts *opts);

/* ---- guest backend: the ivshmem PCI device inside a VM (docs/guest.md) -- */

struct ivl_link_guest_opts {
	const char *device; /* NULL or "auto": the first 1af4:1110 device; or a
			     * PCI address "0000:00:02.0" */
	bool no_vfio;       /* map sysfs resource0/2 and poll even if the device
			     * is bound to vfio-pci (the kernel driver, when
			     * bound, is used regardless) */
	int timeout_ms;     /* bound for IVPosition to become valid and the
			     * header READY; 0: 5000 */
};

/*
 * Open the ivshmem device: through ivlink's kernel driver when the device is
 * bound to ivlink_ivshmem (MSI-X eventfds are my vectors, any guest), else
 * through VFIO when it is bound to vfio-pci (the same, needs an IOMMU),
 * otherwise through sysfs (no interrupts: waits poll).  With the kernel
 * driver, a hot-unplugged device ends the link with IVL_LINK_DOWN.  My ID is IVPosition; ring() writes the Doorbell register.  The peer
 * set comes from the ivlink header's peer table, rescanned every 20 ms
 * (JOIN/LEAVE events; a new generation is LEAVE then JOIN).  Without a header
 * (a raw server) there is no peer set: peers() returns 0, ring() accepts any
 * ID, and peer_vectors() returns the device's vector count for every ID.
 * An ivshmem-plain device maps memory; ring() then reaches only a target
 * that polls its pending bits (myself included) and fails with -ENOTSUP for
 * one that sleeps on an interrupt.
 * A JOIN means the peer is READY in the table, not that this guest's QEMU
 * has read the peer's eventfds yet: until it has, the device drops doorbells
 * to that peer without an error, so first contact needs an acknowledgement
 * in shared memory (docs/guest.md).
 * Errors: -ENODEV (no ivshmem device), -EINVAL (bad address, NULL @out,
 * timeout_ms < 0), -EACCES (no permission), -ETIMEDOUT (IVPosition never valid), -EPROTO
 * (IVPosition beyond 65535; the kernel driver's ABI version or region size
 * unusable), -EBUSY (VFIO: the IOMMU group is not viable), -EIO (a BAR
 * that cannot be read or has a bad size), -ENAMETOOLONG (sysfs path),
 * -ENOMEM, -errno of open/mmap/ioctl.  @opts may be NULL (defaults).
 */
int ivl_link_guest_new(struct ivl_link **out, const struct ivl_link_guest_opts *opts);

/*
 * How a guest link reaches its device: "kernel" (ivlink_ivshmem.ko,
 * interrupts without an IOMMU), "vfio" (vfio-pci, MSI-X eventfds), "sysfs"
 * (BAR files, waits poll) or "model" (an in-process device model); NULL
 * for a link of another backend.  A static string; any thread.
 */
const char *ivl_link_guest_access(const struct ivl_link *l);

/* ---- plain backend: a serverless region (docs/plain.md) ----------------- */

struct ivl_plain_opts;

/*
 * Open the region as ivl_plain_open() does (create or open, claim and
 * format, or wait for READY), then register in its peer table: the lowest
 * free entry becomes my ID, READY with @name (may be NULL).  Other plain
 * links see me JOIN (table rescanned every 20 ms), and LEAVE when I am
 * freed; an entry of a peer that crashed stays until the object is
 * recreated.  One vector per peer and no doorbells: ring() sets the
 * target's pending bit, which its ivl_link_wait() polls (no_irq, as a guest
 * without VFIO), and fails with -ENOTSUP for a target that does not poll.
 * ivl_link_get_fd() wakes only for JOIN/LEAVE, so receive rings with
 * ivl_link_wait().
 * Errors: those of ivl_plain_open(), -EPROTO also when the header was
 * formatted by a server (no IVL_FEAT_PLAIN: its peer table is the server's),
 * -ENOSPC (peer table full), -ENOMEM.
 */
int ivl_link_plain_new(struct ivl_link **out, const struct ivl_plain_opts *opts,
		       const char *name);

/* ---- the peer API ------------------------------------------------------ */

/* Returns my peer ID (0..65535), or -EINVAL for NULL. */
int ivl_link_id(const struct ivl_link *l);
/* Vectors per peer this link uses (0 for NULL). */
unsigned ivl_link_vectors(const struct ivl_link *l);

/* The whole shared region (NULL and *size 0 for a NULL link). */
void *ivl_link_region(const struct ivl_link *l, uint64_t *size);
/* The application area: after the ivlink header, or the whole region when
 * there is none. */
void *ivl_link_app_area(const struct ivl_link *l, uint64_t *size);
/* The link's validated copy of the header (its numbers cannot change under
 * the caller), or NULL for a raw region. */
const struct ivl_shm_header *ivl_link_header(const struct ivl_link *l);

/* The IDs of the peers currently known (me excluded), ascending.  Returns
 * the count (which may exceed @max: then only @max are stored), or -EINVAL
 * (NULL @l, NULL @ids with @max > 0). */
int ivl_link_peers(const struct ivl_link *l, uint16_t *ids, size_t max);
/* Number of ringable vectors of @peer; 0 if unknown. */
unsigned ivl_link_peer_vectors(const struct ivl_link *l, uint16_t peer);
/* The name @peer gave in its hello ("" if none or unknown); returns a
 * pointer into a buffer of @l that stays valid until the next call. */
const char *ivl_link_peer_name(struct ivl_link *l, uint16_t peer);

/*
 * Ring @vector of @peer (my own ID is allowed: a self-ring).
 * Errors: -EINVAL (NULL @l), -ENOTCONN (the link is down), -ENOENT (no
 * such peer), -ERANGE (no such vector; always for @vector >= 64),
 * -ENOTSUP (guest and plain backends: the target sleeps on an interrupt
 * that this backend cannot raise), -EIO (host backend: the doorbell was
 * rung, but another process shrank the shared memory, whose lost pages now
 * read as zeros here; see ivl_region_check()), -errno of the doorbell
 * (eventfd write).
 */
int ivl_link_ring(struct ivl_link *l, uint16_t peer, uint16_t vector);
/* Ring @vector of every other peer.  Returns how many were rung (0 when
 * alone; peers that left meanwhile are skipped), or, when none could be
 * rung, the first error of ivl_link_ring(); -EINVAL, -ENOTCONN, -ERANGE
 * as there, -ENOMEM (more than 256 peers and no memory for the list). */
int ivl_link_broadcast(struct ivl_link *l, uint16_t vector);

/* Returns an fd readable when ivl_link_process() has events (owned by the
 * link: poll it, never read or close it), or -EINVAL for NULL. */
int ivl_link_get_fd(const struct ivl_link *l);

/*
 * Without blocking, collect up to @max events.  Returns the number stored
 * (0: nothing now), or -errno: -EINVAL (NULL @l, NULL @ev with @max > 0),
 * -ENOTCONN after IVL_LINK_DOWN (the event itself is returned once), or
 * the backend's -errno (reading its fds).
 *
 * Event order (docs/protocol.md §4).  Doorbells carry no sender; JOIN and
 * LEAVE come by another path.  Events are handed out so that, per peer:
 *  - every doorbell a peer rang before it left is delivered before its
 *    LEAVE, on every backend (exact counts where the backend counts: host
 *    and local without coalescing); a LEAVE is the last word of a peer.
 *    One exception: on the guest backend a doorbell that exists only as an
 *    interrupt still in flight in the VMM (coalescing off, or a sender that
 *    does not set pending bits, e.g. QEMU's own ivshmem peers) may come
 *    after the LEAVE; with coalescing on, ivlink senders' rings are
 *    pending bits, which are covered;
 *  - a peer's JOIN is delivered before its doorbells on the local backend,
 *    and on the host backend when ivlink-server could write the JOIN to this
 *    peer's socket before the newcomer finished its handshake (a receiver
 *    so far behind that the server queues its messages may see a
 *    newcomer's doorbell first).  On the guest and plain backends the peer
 *    table is scanned every 20 ms, so a newcomer's first doorbells can come
 *    before its JOIN.  First contact with a newcomer should therefore be
 *    acknowledged through shared memory (docs/guest.md);
 *  - JOIN and LEAVE of one ID alternate, and DOWN is the last event.
 * A LEAVE may be held back for one more collection of my vectors, so it can
 * come one call later than the doorbells that precede it.
 */
int ivl_link_process(struct ivl_link *l, struct ivl_link_event *ev, size_t max);

/* As ivl_link_process(), but block up to @timeout_ms (-1: forever) for at
 * least one event.  Returns the count (0 on time-out) or -errno: -EINTR
 * when a signal arrived, -EINVAL (NULL @l or @ev, @max 0, @timeout_ms <
 * -1), -ENOTCONN (down), the backend's -errno.
 *
 * While coalescing, a wait woken from the kernel leaves the link busy
 * (AWAKE, docs/protocol.md §3) until the caller is done with what it
 * returned: senders meanwhile only set pending bits and skip the doorbell.
 * Done is the next ivl_link_wait() (it re-checks before it blocks), the
 * next ivl_link_process() or ivl_link_done().  An application that blocks
 * on ivl_link_get_fd() after a wait calls one of the last two first. */
int ivl_link_wait(struct ivl_link *l, struct ivl_link_event *ev, size_t max, int timeout_ms);

/*
 * Done with the events of the last ivl_link_wait(): publish "asleep" and
 * clear my pending bits, so that the next ring makes a real doorbell.  Rings
 * made before this call are not reported: look at your work once more after
 * it, then block (on ivl_link_get_fd() in an own loop, or in a wait).  The
 * alternative, ivl_link_process(), reports them as events instead.  A no-op
 * when not busy.  Returns 0.  Errors: -EINVAL (NULL @l).
 */
int ivl_link_done(struct ivl_link *l);

/* ---- wait modes and coalescing (docs/protocol.md §3) ------------------- */

enum ivl_wait_mode {
	/* Block in the kernel (eventfd / MSI-X eventfd) for every wait. */
	IVL_WAIT_INTERRUPT = 0,
	/* Spin on my pending bits in the shared header: no system call, no
	 * VM exit, one CPU busy while waiting. */
	IVL_WAIT_POLL,
	/* Spin for spin_ns, then publish "asleep", re-check, and block. */
	IVL_WAIT_ADAPTIVE,
};

/*
 * Choose how ivl_link_wait() waits; @spin_ns is the adaptive budget (0: the
 * default, IVL_SPIN_DEFAULT_NS).  May be called at any time by the owning
 * thread.  POLL and ADAPTIVE turn coalescing on (below).  In those modes the
 * link counts as busy between two ivl_link_wait() calls, so senders only set
 * bits: an application that blocks on ivl_link_get_fd() in its own loop must
 * use INTERRUPT mode (switching back to it publishes "asleep" at once).
 * Without a header (raw region) every ring is a real doorbell and
 * POLL/ADAPTIVE spin on the eventfds instead.  Returns 0.  Errors: -EINVAL
 * (NULL @l, unknown mode).
 */
int ivl_link_set_wait_mode(struct ivl_link *l, enum ivl_wait_mode mode, uint32_t spin_ns);

/*
 * Take part in doorbell coalescing as a receiver (off by default).  When on,
 * senders that use ivlink set my pending bit and make a real doorbell only
 * if the bit was clear and I may be asleep; a DOORBELL event's count then
 * means "at least once" (and, rarely, a ring racing with the drain is
 * reported twice) instead of the exact eventfd count.  Senders outside
 * ivlink (QEMU guests with other drivers) are unaffected: they always ring.
 * Returns 0.  Errors: -EINVAL (NULL @l); -ENOTSUP when there is no header
 * or my ID is beyond its peer table (on), or when the backend has no
 * interrupts (off).
 */
int ivl_link_set_coalescing(struct ivl_link *l, bool on);
/* The current wait mode (IVL_WAIT_INTERRUPT for NULL). */
enum ivl_wait_mode ivl_link_wait_mode(const struct ivl_link *l);

#define IVL_SPIN_DEFAULT_NS 50000u

struct ivl_link_stats {
	uint64_t rings;     /* ivl_link_ring() calls that succeeded (broadcast counts each peer) */
	uint64_t doorbells; /* of those, real doorbells (eventfd or register writes) */
	uint64_t coalesced; /* rings that needed no doorbell */
	uint64_t wakeups;   /* times a wait blocked in the kernel */
	uint64_t spins;     /* waits satisfied while spinning */
};

/* Counters since the link was created into the caller's @st (zeros for a
 * NULL link); any thread (values may be torn across fields, each one is
 * exact). */
void ivl_link_get_stats(const struct ivl_link *l, struct ivl_link_stats *st);

/* Leave and free.  NULL is a no-op. */
void ivl_link_free(struct ivl_link *l);

#ifdef __cplusplus
}
#endif
#endif
