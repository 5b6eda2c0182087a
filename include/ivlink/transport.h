/* SPDX-License-Identifier: MIT */
/*
 * The transport virtqueue (seed 002; normative description:
 * docs/transport.md).  A *management device* (device_id 0) on a device host
 * serves commands on a transport virtqueue; with them a driver creates,
 * configures and destroys *managed devices* (console, SDM), each with its
 * own window of the shared region and its own MSI table.
 *
 *  - Wire format: the ivl_tp_* structures below, little-endian, fixed width.
 *  - ivl_mgmt: the device side.  ivl_mgmt_exec() is the pure command decoder
 *    (the fuzz target); ivl_mgmt_new_link() serves it on an ivlink link.
 *  - ivl_tdrv: the driver side over a link: commands, and the set-up of a
 *    managed device's queues and MSI vectors.
 *
 * Thread safety: each object is used by one thread at a time.
 */
#ifndef IVLINK_TRANSPORT_H
#define IVLINK_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ivl_link;
struct ivl_virtq;
struct ivl_sdm_bus;

/* ---- the management area (docs/transport.md §2) -------------------------- */

#define IVL_TP_MAGIC 0x4d54564cu /* "LVTM" little-endian */
#define IVL_TP_VERSION 1u
/* Offsets inside the management area (a part of the link's app area). */
#define IVL_TP_CTL_OFF 0u	  /* struct ivl_tp_ctl */
#define IVL_TP_RING_OFF 4096u	  /* the transport virtqueue */
#define IVL_TP_RING_NUM 16u	  /* its size */
#define IVL_TP_CMDBUF_OFF 16384u  /* command buffers (driver-owned) */
#define IVL_TP_CMDBUF_SIZE 8192u  /* one command + response slot */
#define IVL_TP_WINDOWS_OFF 65536u /* device windows start here */
/* The transport queue's window: from IVL_TP_RING_OFF to the first device
 * window; its ring is at window offset 0 (ivl_virtq_layout_default), the
 * command buffers at IVL_TP_CMDBUF_OFF - IVL_TP_RING_OFF. */
#define IVL_TP_TQ_WINDOW (IVL_TP_WINDOWS_OFF - IVL_TP_RING_OFF)
#define IVL_TP_GRANULE 65536u	      /* windows are multiples of this */
#define IVL_TP_AREA_MIN (2u * 65536u) /* control + one window */
#define IVL_TP_MAX_DEVICES 64u
#define IVL_TP_MAX_QUEUES 8u

/* The control block at the start of the management area.  The device host
 * writes magic..host_vector at start; a driver writes owner..driver_vector. */
struct ivl_tp_ctl {
	uint32_t magic;	  /* IVL_TP_MAGIC once the host serves */
	uint16_t version; /* IVL_TP_VERSION */
	uint16_t host_peer;
	uint16_t host_vector; /* the doorbell that kicks every queue */
	uint16_t reserved0;
	uint32_t host_epoch; /* changes on every host start */
	uint64_t area_size;  /* bytes of the management area */
	uint32_t owner;	     /* driver peer + 1 holding the transport queue,
			      * 0: free (atomic compare-and-swap) */
	uint32_t generation; /* bumped (release) after a driver re-initialised
			      * the ring */
	uint16_t driver_peer;
	uint16_t driver_vector; /* doorbell for transport-queue answers */
	uint32_t reserved1;
};
_Static_assert(sizeof(struct ivl_tp_ctl) == 40, "ivl_tp_ctl size");
_Static_assert(offsetof(struct ivl_tp_ctl, owner) == 24, "ivl_tp_ctl owner");

/* ---- commands (docs/transport.md §3) ------------------------------------- */

/* VIRTIO_F_TRANSPT_VQ (seed 002: "The management device MUST offer feature
 * bit VIRTIO_F_TRANSPT_VQ"): offered by device_id 0 (FEATURES GET_DEVICE on
 * device 0).  The seed assigns no number; ivlink uses bit 63, outside the
 * transport range of every virtio version (24..41) and not used by the
 * management device for anything else (docs/transport.md §3.1). */
#define IVL_TP_F_TRANSPT_VQ (1ull << 63)

/* Driver-written header; the class's structure follows. */
struct ivl_tp_cmd {
	uint64_t device_id;
	uint16_t class_;
	uint16_t command;
	uint32_t reserved; /* 0; makes out[] 8-byte aligned */
};
_Static_assert(sizeof(struct ivl_tp_cmd) == 16, "ivl_tp_cmd size");

/* Device-written answer; on ERR, in[] is a struct ivl_tp_err. */
struct ivl_tp_resp {
	uint32_t ack;
};
_Static_assert(sizeof(struct ivl_tp_resp) == 4, "ivl_tp_resp size");

#define IVL_TP_OK 0u
#define IVL_TP_ERR 1u

struct ivl_tp_err {
	uint32_t reason;
};

/* Reason codes of an ERR answer. */
enum ivl_tp_reason {
	IVL_TP_E_LENGTH = 1,	    /* out[] too short or too long for the command */
	IVL_TP_E_CLASS = 2,	    /* unknown class */
	IVL_TP_E_COMMAND = 3,	    /* unknown command in the class */
	IVL_TP_E_NO_DEVICE = 4,	    /* no managed device with that ID */
	IVL_TP_E_DEVICE_ID = 5,	    /* wrong ID kind: 0 where a managed device
				     * is needed (DESTROY, QUERY, QUEUE, CONFIG,
				     * MSI), or != 0 for CREATE/LIST */
	IVL_TP_E_VIRTIO_ID = 6,	    /* device type not offered by this host */
	IVL_TP_E_NO_SPACE = 7,	    /* no free device slot or window space */
	IVL_TP_E_QUEUE = 8,	    /* queue index >= the device's queues */
	IVL_TP_E_STATE = 9,	    /* not allowed in the current status */
	IVL_TP_E_VALUE = 10,	    /* a field has an invalid value */
	IVL_TP_E_WINDOW = 11,	    /* a ring outside the device's window */
	IVL_TP_E_VECTOR = 12,	    /* MSI vector >= the device's table */
	IVL_TP_E_NOT_SHARING = 13,  /* MAP_* on a non-sharing MSI table */
	IVL_TP_E_BACKEND = 14,	    /* the device's backend failed */
	IVL_TP_E_RESERVED = 15,	    /* a reserved field is not 0 */
	IVL_TP_E_IN_SPACE = 16,	    /* the driver's in[] is too small */
	IVL_TP_E_MSI_DISABLED = 17, /* an interrupt needs MSI enabled */
	IVL_TP_E_LAST = IVL_TP_E_MSI_DISABLED,
};
/* A short name ("length", "class", ...) or "unknown". */
const char *ivl_tp_reason_name(uint32_t reason);

/* Classes and commands. */
enum {
	IVL_TP_CLASS_MGMT = 0, /* device management */
	IVL_TP_CLASS_FEATURES = 1,
	IVL_TP_CLASS_STATUS = 2, /* device status and reset */
	IVL_TP_CLASS_QUEUE = 3,
	IVL_TP_CLASS_CONFIG = 4, /* configuration space */
	IVL_TP_CLASS_MSI = 5,
};
enum {
	IVL_TP_MGMT_CREATE = 1,	 /* id 0; out create, in create_resp */
	IVL_TP_MGMT_DESTROY = 2, /* id N; no data */
	IVL_TP_MGMT_LIST = 3,	 /* id 0; in list_resp + entries */
	IVL_TP_MGMT_QUERY = 4,	 /* id N; in info */
};
enum {
	IVL_TP_FEAT_GET_DEVICE = 1, /* in le64 */
	IVL_TP_FEAT_SET_DRIVER = 2, /* out le64 */
	IVL_TP_FEAT_GET_DRIVER = 3, /* in le64 */
};
enum {
	IVL_TP_STATUS_GET = 1,	 /* in le32 */
	IVL_TP_STATUS_SET = 2,	 /* out le32 */
	IVL_TP_STATUS_RESET = 3, /* no data */
};
enum {
	IVL_TP_QUEUE_GET_MAX = 1,    /* out queue_sel, in le32 max size */
	IVL_TP_QUEUE_SET_SIZE = 2,   /* out queue_val (value = size) */
	IVL_TP_QUEUE_SET_ADDR = 3,   /* out queue_addr */
	IVL_TP_QUEUE_ENABLE = 4,     /* out queue_val (value 1 enable, 0 off) */
	IVL_TP_QUEUE_RESET = 5,	     /* out queue_sel */
	IVL_TP_QUEUE_GET_NOTIFY = 6, /* out queue_sel, in notify */
};
enum {
	IVL_TP_CONFIG_READ = 1,	      /* out config_rw, in bytes */
	IVL_TP_CONFIG_WRITE = 2,      /* out config_rw + bytes */
	IVL_TP_CONFIG_GENERATION = 3, /* in le32 */
};
enum {
	IVL_TP_MSI_GET_NUM = 1,	   /* in le32 */
	IVL_TP_MSI_CONFIGURE = 2,  /* out msi_cfg */
	IVL_TP_MSI_MASK = 3,	   /* out msi_vec */
	IVL_TP_MSI_UNMASK = 4,	   /* out msi_vec */
	IVL_TP_MSI_PENDING = 5,	   /* out msi_vec, in le32 (0/1) */
	IVL_TP_MSI_MAP_CONFIG = 6, /* out msi_vec (NO_VECTOR unmaps) */
	IVL_TP_MSI_MAP_QUEUE = 7,  /* out queue_val (value = vector) */
	IVL_TP_MSI_ENABLE = 8,
	IVL_TP_MSI_DISABLE = 9,
};

/* Console backends (create.param[0] of a console). */
enum {
	IVL_TP_CONSOLE_DEFAULT = 0, /* the host's choice (serve options) */
	IVL_TP_CONSOLE_PTY = 1,
	IVL_TP_CONSOLE_UNIX = 2,
	IVL_TP_CONSOLE_LOOP = 3, /* what the driver sends comes back */
};
/* SDM roles (create.param[0] of an SDM device); param[1]: master:
 * max_slaves, slave: the ID asked for (0: any). */
enum {
	IVL_TP_SDM_SLAVE = 0,
	IVL_TP_SDM_MASTER = 1,
};

#define IVL_TP_CREATE_F_MSI_SHARING 1u

struct ivl_tp_create {
	uint32_t virtio_id;   /* 3 console, 21 SDM */
	uint32_t flags;	      /* IVL_TP_CREATE_F_* */
	uint64_t window_size; /* 0: the device type's default */
	uint32_t msi_vectors; /* 0: queues + 1 */
	uint32_t param[3];    /* per device type, see above */
};
_Static_assert(sizeof(struct ivl_tp_create) == 32, "ivl_tp_create size");

/* Where a managed device lives.  Offsets are from the management area. */
struct ivl_tp_info {
	uint64_t device_id;
	uint32_t virtio_id;
	uint32_t status;
	uint64_t window_offset;
	uint64_t window_size;
	uint16_t num_queues;
	uint16_t msi_vectors;
	uint32_t flags;
	uint16_t driver_peer; /* the last peer that configured it */
	uint16_t reserved[3];
	char backend[64]; /* NUL-terminated, e.g. "pty:/dev/pts/3" */
};
_Static_assert(sizeof(struct ivl_tp_info) == 112, "ivl_tp_info size");

struct ivl_tp_list_resp {
	uint32_t count; /* devices; as many struct ivl_tp_list_entry follow
			 * as fit in in[] */
	uint32_t reserved;
};
struct ivl_tp_list_entry {
	uint64_t device_id;
	uint32_t virtio_id;
	uint32_t status;
};
_Static_assert(sizeof(struct ivl_tp_list_entry) == 16, "list entry size");

struct ivl_tp_queue_sel {
	uint16_t queue;
	uint16_t reserved;
};
struct ivl_tp_queue_val {
	uint16_t queue;
	uint16_t reserved;
	uint32_t value;
};
struct ivl_tp_queue_addr {
	uint16_t queue;
	uint16_t reserved[3];
	uint64_t desc, avail, used; /* offsets in the device's window */
};
_Static_assert(sizeof(struct ivl_tp_queue_addr) == 32, "queue_addr size");
struct ivl_tp_notify {
	uint16_t peer;	 /* ring this peer's */
	uint16_t vector; /* doorbell to kick the queue */
};
struct ivl_tp_config_rw {
	uint32_t offset;
	uint32_t length; /* 1..IVL_TP_CONFIG_MAX */
};
#define IVL_TP_CONFIG_MAX 256u
struct ivl_tp_msi_vec {
	uint32_t vector;
};
struct ivl_tp_msi_cfg {
	uint32_t vector;
	uint32_t data;	  /* the doorbell vector of the destination */
	uint64_t address; /* the destination peer */
};
_Static_assert(sizeof(struct ivl_tp_msi_cfg) == 16, "msi_cfg size");

/* Device types. */
#define IVL_TP_VIRTIO_CONSOLE 3u
#define IVL_TP_VIRTIO_SDM 21u

/* SDM configuration space (seed 000, docs/sdm.md), little-endian. */
struct ivl_tp_sdm_config {
	uint8_t master;
	uint8_t reserved;
	uint16_t max_slaves; /* writable on a master */
	uint16_t current_slaves;
};
_Static_assert(sizeof(struct ivl_tp_sdm_config) == 6, "sdm config size");

/* ---- device side ---------------------------------------------------------- */

struct ivl_mgmt;

struct ivl_mgmt_opts {
	/* The management area: @area of @area_size bytes (>= IVL_TP_AREA_MIN). */
	void *area;
	uint64_t area_size;
	/* Refuse to create consoles / SDM devices (IVL_TP_E_VIRTIO_ID). */
	bool no_console, no_sdm;
	/* Console backends.  default_console: IVL_TP_CONSOLE_* used for
	 * DEFAULT (0: LOOP).  console_dir: where UNIX-socket consoles listen
	 * (console-ID.sock); NULL: UNIX consoles are refused. */
	unsigned default_console;
	const char *console_dir;
	/* SDM channel for managed SDM devices: "unix:PATH", "tcp:HOST:PORT"
	 * (no key: TCP only on loopback), or NULL for the local bus @sdm_bus
	 * (both NULL: creating an SDM device fails with IVL_TP_E_BACKEND). */
	const char *sdm_channel;
	struct ivl_sdm_bus *sdm_bus;
	/* Where MSI messages go (NULL: nowhere, every delivery fails). */
	int (*msi_deliver)(void *opaque, uint32_t vector, uint64_t address, uint32_t data);
	void *msi_opaque;
	uint16_t host_peer, host_vector; /* answered by QUEUE_GET_NOTIFY */
};

/*
 * A management device over @opts->area (no link).  Errors: -EINVAL,
 * -ENOMEM.  Free with ivl_mgmt_free() (destroys every managed device).
 */
int ivl_mgmt_new(struct ivl_mgmt **out, const struct ivl_mgmt_opts *opts);
void ivl_mgmt_free(struct ivl_mgmt *m);

/*
 * Execute one command: @cmd (@cmd_len bytes, hostile) -> the answer in
 * @resp (@resp_max bytes).  Returns the answer's length (>= 4 when
 * resp_max >= 8: ack, and on ERR the reason), or 0 when resp_max < 8.
 */
size_t ivl_mgmt_exec(struct ivl_mgmt *m, const void *cmd, size_t cmd_len, void *resp,
		     size_t resp_max);

/* Readable when ivl_mgmt_process() has backend work (an epoll fd). */
int ivl_mgmt_get_fd(const struct ivl_mgmt *m);
/* Milliseconds until ivl_mgmt_process() must run anyway (-1: never). */
int ivl_mgmt_timeout_ms(const struct ivl_mgmt *m);
/*
 * Serve every managed device without blocking: backends, and the queues of
 * every device with DRIVER_OK (call it after a kick doorbell).  Returns the
 * number of buffers served, or -errno on a fatal error.  A hostile queue
 * breaks only its device (status DEVICE_NEEDS_RESET).
 */
int ivl_mgmt_process(struct ivl_mgmt *m);
/* Reset every device last configured by @peer (it left the link). */
void ivl_mgmt_peer_left(struct ivl_mgmt *m, uint16_t peer);
/* Number of managed devices. */
unsigned ivl_mgmt_count(const struct ivl_mgmt *m);

/* ---- device host on a link ------------------------------------------------ */

struct ivl_mgmt_host;

struct ivl_mgmt_host_opts {
	uint64_t area_offset; /* in the link's app area, 8-byte aligned */
	uint64_t area_size;   /* 0: the rest of the app area */
	uint16_t vector;      /* my kick doorbell (default 0) */
	/* Passed to the management device (area, msi_*, host_* are set
	 * here). */
	struct ivl_mgmt_opts dev;
};

/*
 * Serve the management device on @link (borrowed; the host takes over its
 * events: do not call ivl_link_process() on it).  Publishes the control
 * block.  Errors: -EINVAL, -ENOSPC (area too small), -ENOMEM.
 */
int ivl_mgmt_host_new(struct ivl_mgmt_host **out, struct ivl_link *link,
		      const struct ivl_mgmt_host_opts *opts);
/* Clears the control block's magic, destroys the devices.  NULL ok. */
void ivl_mgmt_host_free(struct ivl_mgmt_host *h);
/* An epoll fd: readable when ivl_mgmt_host_process() has work. */
int ivl_mgmt_host_get_fd(const struct ivl_mgmt_host *h);
int ivl_mgmt_host_timeout_ms(const struct ivl_mgmt_host *h);
/*
 * Without blocking: link events, transport-queue commands, device queues,
 * backends.  Returns commands + buffers served, or -errno (-ENOTCONN when
 * the link went down).
 */
int ivl_mgmt_host_process(struct ivl_mgmt_host *h);
struct ivl_mgmt *ivl_mgmt_host_mgmt(struct ivl_mgmt_host *h);

/* ---- driver side ------------------------------------------------------------ */

struct ivl_tdrv;

struct ivl_tdrv_opts {
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
 * offer IVL_TP_F_TRANSPT_VQ and VERSION_1 (else -EOPNOTSUPP: not a
 * management device), the driver accepts both and sets its status to
 * DRIVER_OK (skipped when another driver did it already).
 * Errors: -ENODEV (no host serves the area), -EOPNOTSUPP, -EPROTO,
 * -ETIMEDOUT, -EBUSY, -EINVAL, -ENOMEM.
 */
int ivl_tdrv_new(struct ivl_tdrv **out, struct ivl_link *link, const struct ivl_tdrv_opts *opts);
/* Managed devices stay.  NULL ok. */
void ivl_tdrv_free(struct ivl_tdrv *d);

/*
 * One command, blocking until the answer (bounded by timeout_ms).  Returns
 * the length of in[] copied to @in (<= in_max), -EREMOTEIO for ERR (the
 * reason in *reason when not NULL), -ETIMEDOUT, -EBUSY (a live driver held
 * the queue for the whole timeout), -ENODEV (the host left), -EPROTO
 * (malformed answer),
 * -EMSGSIZE (out_len too big), -errno.
 */
int ivl_tdrv_cmd(struct ivl_tdrv *d, uint64_t device_id, uint16_t class_, uint16_t command,
		 const void *out, size_t out_len, void *in, size_t in_max, uint32_t *reason);

/* Helpers (same errors).  @create's fields in host byte order. */
int ivl_tdrv_create(struct ivl_tdrv *d, const struct ivl_tp_create *create,
		    struct ivl_tp_info *info, uint32_t *reason);
int ivl_tdrv_destroy(struct ivl_tdrv *d, uint64_t id, uint32_t *reason);
int ivl_tdrv_query(struct ivl_tdrv *d, uint64_t id, struct ivl_tp_info *info, uint32_t *reason);
/* Up to @max entries; returns the device count. */
int ivl_tdrv_list(struct ivl_tdrv *d, struct ivl_tp_list_entry *e, size_t max, uint32_t *reason);

/* The management area as the driver maps it. */
void *ivl_tdrv_area(const struct ivl_tdrv *d, uint64_t *size);

/*
 * Drive managed device @id: reset, features (the device's, minus
 * unsupported ones), one ring of @qnum entries per queue at the start of
 * the window, MSI vector q+1 of queue q -> (my peer, opts.vector), MSI
 * enabled, DRIVER_OK.  *queues gets the driver-role rings (caller frees
 * them with ivl_virtq_free()); *buf / *buf_size the rest of the window for
 * buffers.  Errors as ivl_tdrv_cmd(), -ENOSPC (window too small).
 */
int ivl_tdrv_setup(struct ivl_tdrv *d, uint64_t id, unsigned qnum, struct ivl_virtq **queues,
		   unsigned max_queues, unsigned *nqueues, void **buf, uint64_t *buf_size,
		   uint32_t *reason);
/* Kick the host after adding buffers to a managed device's queue. */
int ivl_tdrv_kick(struct ivl_tdrv *d, struct ivl_virtq *q);

#ifdef __cplusplus
}
#endif

#endif
