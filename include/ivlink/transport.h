/* SPDX-License-Identifier: MIT */
/*
 * The transport virtqueue (seed 002; normative description:
 * docs/transport.md).  A *management device* (device_id 0) on a device host
 * serves commands on a transport virtqueue; with them a driver creates,
 * configures and destroys *managed devices* (console, SDM), each with its
 * own window of the shared region and its own MSI table.
 *
 *  - Wire format: <ivlink/proto/transport.h>.
 *  - ivl_transport_device: the device side.  ivl_transport_device_exec()
 *    is the pure command decoder (the fuzz target).
 *  - ivl_transport_host: serves a transport device on an ivlink link.
 *  - ivl_transport_driver: the driver side over a link: commands, and the
 *    set-up of a managed device's queues and MSI vectors.
 *
 * Thread safety: each object is used by one thread at a time;
 * ivl_transport_reason_name() from any thread.
 * Ownership: the links, areas and buses passed in are borrowed and must
 * outlive the object; what a constructor returns in *out is the caller's
 * (the matching _free(), NULL is a no-op); the fds returned by _get_fd()
 * belong to the object.
 */
#ifndef IVLINK_TRANSPORT_H
#define IVLINK_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ivlink/msi.h>
#include <ivlink/proto/transport.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ivl_link;
struct ivl_virtq;
struct ivl_sdm_bus;

/* The name of a reason code ("length", "no-device", ...), "unknown" for
 * any other value.  A static string; any thread. */
const char *ivl_transport_reason_name(uint32_t reason);


/* ---- device side ---------------------------------------------------------- */

struct ivl_transport_device;

/* A block image the device host may serve (virtio-blk, docs/transport.md
 * §5).  A blk CREATE names it by its backend argument: equal to @name, or
 * to @path (so a CLI may pass the canonical path).  Nothing else is ever
 * opened: the argument comes from a possibly hostile driver. */
struct ivl_transport_blk_image {
	const char *name; /* 1..63 bytes, unique among the images */
	const char *path; /* a regular file or a block device, opened at CREATE */
	bool read_only;	  /* served read-only whatever the driver asks */
};

struct ivl_transport_device_opts {
	/* The management area: @area of @area_size bytes (>= IVL_TRANSPORT_AREA_MIN). */
	void *area;
	uint64_t area_size;
	/* Refuse to create consoles / SDM devices / entropy devices
	 * (IVL_TRANSPORT_E_VIRTIO_ID). */
	bool no_console, no_sdm, no_rng;
	/* Console backends.  default_console: IVL_TRANSPORT_CONSOLE_* used for
	 * DEFAULT (0: LOOP).  console_dir: where UNIX-socket consoles listen
	 * (console-ID.sock); NULL: UNIX consoles are refused. */
	unsigned default_console;
	const char *console_dir;
	/* SDM channel for managed SDM devices: "unix:PATH", "tcp:HOST:PORT"
	 * (no key: TCP only on loopback), or NULL for the local bus @sdm_bus
	 * (both NULL: creating an SDM device fails with IVL_TRANSPORT_E_BACKEND). */
	const char *sdm_channel;
	struct ivl_sdm_bus *sdm_bus;
	/* The block images blk devices may serve (@nblk entries, borrowed
	 * with their strings; none: every blk CREATE answers ERR value). */
	const struct ivl_transport_blk_image *blk;
	unsigned nblk;
	/* Net backends (docs/transport.md §5, Net): a net device's CREATE
	 * argument "switch:NAME" or "tap:IFNAME" must name one of these
	 * (borrowed arrays of names, 1..15 bytes each; none: net devices are
	 * refused with IVL_TRANSPORT_E_BACKEND).  Switches are built in;
	 * a TAP interface must exist already (it is attached, never made). */
	const char *const *net_switches;
	unsigned n_net_switches;
	const char *const *net_taps;
	unsigned n_net_taps;
	/* Where MSI messages go (NULL: nowhere, every delivery fails). */
	ivl_msi_deliver_fn *msi_deliver;
	void *msi_opaque;
	uint16_t host_peer, host_vector; /* answered by QUEUE_GET_NOTIFY */
};

/*
 * A management device over @opts->area (no link).  The options are
 * copied (console_dir, sdm_channel and blk are borrowed).  Errors: -EINVAL
 * (NULL argument, no area, area_size < IVL_TRANSPORT_AREA_MIN, unknown
 * default_console), -ENOMEM, -errno of epoll_create1().  Free with
 * ivl_transport_device_free() (destroys every managed device).
 */
int ivl_transport_device_new(struct ivl_transport_device **out, const struct ivl_transport_device_opts *opts);
void ivl_transport_device_free(struct ivl_transport_device *m);

/*
 * Execute one command: @cmd (@cmd_len bytes, hostile) -> the answer in
 * @resp (@resp_max bytes).  Returns the answer's length (>= 4 when
 * resp_max >= 8: ack, and on ERR the reason), or 0 when resp_max < 8.
 * Cannot fail otherwise: every problem of the command is an ERR answer.
 */
size_t ivl_transport_device_exec(struct ivl_transport_device *m, const void *cmd, size_t cmd_len, void *resp,
		     size_t resp_max);

/* Returns an epoll fd, readable when ivl_transport_device_process() has
 * backend work, or -EINVAL for NULL. */
int ivl_transport_device_get_fd(const struct ivl_transport_device *m);
/* Returns the milliseconds until ivl_transport_device_process() must run
 * anyway (-1: never, also for NULL); cannot fail. */
int ivl_transport_device_timeout_ms(const struct ivl_transport_device *m);
/*
 * Serve every managed device without blocking: backends, and the queues of
 * every device with DRIVER_OK (call it after a kick doorbell).  Returns the
 * number of buffers served, or -EINVAL for NULL.  A device's errors are
 * not fatal: a hostile queue breaks only its device (status
 * DEVICE_NEEDS_RESET).
 */
int ivl_transport_device_process(struct ivl_transport_device *m);
/* Reset every device last configured by @peer (it left the link). */
void ivl_transport_device_peer_left(struct ivl_transport_device *m, uint16_t peer);
/* Number of managed devices (0 for NULL). */
unsigned ivl_transport_device_count(const struct ivl_transport_device *m);

/* ---- device host on a link ------------------------------------------------ */

struct ivl_transport_host;

struct ivl_transport_host_opts {
	uint64_t area_offset; /* in the link's app area, 8-byte aligned */
	uint64_t area_size;   /* 0: the rest of the app area */
	uint16_t vector;      /* my kick doorbell (default 0) */
	/* Passed to the management device (area, msi_*, host_* are set
	 * here). */
	struct ivl_transport_device_opts dev;
};

/*
 * Serve the management device on @link (borrowed; the host takes over its
 * events: do not call ivl_link_process() on it).  Publishes the control
 * block.  Errors: -EINVAL (NULL argument, vector beyond the link's,
 * area_offset not a multiple of 8), -ENOSPC (area too small or beyond
 * the app area),
 * -ENOMEM, -errno of epoll, the errors of ivl_transport_device_new().
 */
int ivl_transport_host_new(struct ivl_transport_host **out, struct ivl_link *link,
		      const struct ivl_transport_host_opts *opts);
/* Clears the control block's magic, destroys the devices.  NULL ok. */
void ivl_transport_host_free(struct ivl_transport_host *h);
/* Returns an epoll fd, readable when ivl_transport_host_process() has
 * work, or -EINVAL for NULL. */
int ivl_transport_host_get_fd(const struct ivl_transport_host *h);
/* Returns as ivl_transport_device_timeout_ms() (-1 for NULL). */
int ivl_transport_host_timeout_ms(const struct ivl_transport_host *h);
/*
 * Without blocking: link events, transport-queue commands, device queues,
 * backends.  Returns commands + buffers served, or -errno (-ENOTCONN when
 * the link went down, -EINVAL for NULL, the errors of ivl_link_process()).
 */
int ivl_transport_host_process(struct ivl_transport_host *h);
/* The management device the host serves (owned by the host). */
struct ivl_transport_device *ivl_transport_host_device(struct ivl_transport_host *h);

/* ---- driver side ------------------------------------------------------------ */

struct ivl_transport_driver;

struct ivl_transport_driver_opts {
	uint64_t area_offset; /* as the host's */
	uint64_t area_size;   /* 0: the rest of the app area */
	uint16_t vector;      /* my doorbell for answers and interrupts */
	int timeout_ms;	      /* per command and for the queue lock; 0: 5000 */
};

/*
 * A driver for the host serving @link's area: waits (bounded) for the
 * control block.  @link is borrowed; the driver reads its events while
 * waiting for answers (doorbells on other vectors are dropped).  Each
 * command takes the transport queue's lock for its duration (a dead
 * owner's lock is taken over) and re-initialises the ring when another
 * driver used it meanwhile, so drivers in several processes take turns.
 * Then it negotiates with the management device (device_id 0): it must
 * offer IVL_TRANSPORT_F_TRANSPT_VQ and VERSION_1 (else -EOPNOTSUPP: not a
 * management device), the driver accepts both and sets its status to
 * DRIVER_OK (skipped when another driver did it already).
 * Errors: -ENODEV (no host serves the area within timeout_ms, or the area
 * lies outside the app area), -EOPNOTSUPP, -EPROTO, -ETIMEDOUT, -EBUSY,
 * -EINVAL (NULL argument, vector beyond the link's, misaligned offset),
 * -ENOTCONN (the link went down), -ENOMEM, the errors of ivl_link_wait().
 */
int ivl_transport_driver_new(struct ivl_transport_driver **out, struct ivl_link *link, const struct ivl_transport_driver_opts *opts);
/* Managed devices stay.  NULL ok. */
void ivl_transport_driver_free(struct ivl_transport_driver *d);

/*
 * One command, blocking until the answer (bounded by timeout_ms).  Returns
 * the length of in[] copied to @in (<= in_max), -EREMOTEIO for ERR (the
 * reason in *reason when not NULL), -ETIMEDOUT, -EBUSY (a live driver held
 * the queue for the whole timeout), -ENODEV (the host left), -EPROTO
 * (malformed answer), -EMSGSIZE (out_len too big), -EINVAL (NULL @d, or
 * NULL @out with out_len > 0), -ENOTCONN (the link went down), -errno of
 * the link.  @out is copied; @in is the caller's buffer.
 */
int ivl_transport_driver_cmd(struct ivl_transport_driver *d, uint64_t device_id, uint16_t class_, uint16_t command,
		 const void *out, size_t out_len, void *in, size_t in_max, uint32_t *reason);

/* Helpers.  Returns 0 (list: the device count), or the errors of
 * ivl_transport_driver_cmd(); -EINVAL (NULL @create), -EPROTO (an answer
 * of the wrong size).  @create's fields in host byte order; @info is
 * filled when not NULL. */
int ivl_transport_driver_create(struct ivl_transport_driver *d, const struct ivl_transport_create *create,
		    struct ivl_transport_info *info, uint32_t *reason);
int ivl_transport_driver_destroy(struct ivl_transport_driver *d, uint64_t id, uint32_t *reason);
int ivl_transport_driver_query(struct ivl_transport_driver *d, uint64_t id, struct ivl_transport_info *info, uint32_t *reason);
/* Up to @max entries into the caller's @e (may be NULL when @max is 0).
 * Returns the device count (which may exceed @max), or the errors above;
 * -EINVAL when @e is NULL and @max is not 0. */
int ivl_transport_driver_list(struct ivl_transport_driver *d, struct ivl_transport_list_entry *e, size_t max, uint32_t *reason);
/* ivl_transport_driver_create() with a backend argument @arg (NULL: none; else 1 to
 * IVL_TRANSPORT_CREATE_ARG_MAX - 1 bytes, copied), which the device type
 * looks up in the host's configuration (docs/transport.md §5).  Returns 0 or
 * the errors of ivl_transport_driver_create(); -EINVAL also for an empty or too long
 * @arg. */
int ivl_transport_driver_create_arg(struct ivl_transport_driver *d, const struct ivl_transport_create *create,
				    const char *arg, struct ivl_transport_info *info, uint32_t *reason);

/* The management area as the driver maps it (inside the link's region). */
void *ivl_transport_driver_area(const struct ivl_transport_driver *d, uint64_t *size);

/*
 * Drive managed device @id: reset, features (the device's, minus
 * unsupported ones), one ring of @qnum entries per queue at the start of
 * the window, MSI vector q+1 of queue q -> (my peer, opts.vector), MSI
 * enabled, DRIVER_OK.  *queues gets the driver-role rings (caller frees
 * them with ivl_virtq_free()); *buf / *buf_size the rest of the window for
 * buffers.  Returns 0.  Errors as ivl_transport_driver_cmd(), -EINVAL
 * (NULL @d, @queues or @nqueues, @qnum 0), -ENOSPC (window too small, or
 * more queues than @max_queues), -ENOTSUP (the device does not offer
 * VERSION_1 and EVENT_IDX), -EPROTO; on error no queue is left allocated.
 */
int ivl_transport_driver_setup(struct ivl_transport_driver *d, uint64_t id, unsigned qnum, struct ivl_virtq **queues,
		   unsigned max_queues, unsigned *nqueues, void **buf, uint64_t *buf_size,
		   uint32_t *reason);
/* Kick the host after adding buffers to a managed device's queue.  Returns
 * as ivl_virtq_notify_link(): 1 rung, 0 suppressed, -errno; -EINVAL for
 * NULL. */
int ivl_transport_driver_kick(struct ivl_transport_driver *d, struct ivl_virtq *q);

#ifdef __cplusplus
}
#endif

#endif
