/* SPDX-License-Identifier: (GPL-2.0-only WITH Linux-syscall-note) OR MIT */
/*
 * The transport virtqueue's formats (seed 002): the management area's
 * control block and layout, the commands and responses of every class, and
 * the managed devices' configuration spaces.  Normative text:
 * docs/transport.md §1-§5 (indexed in docs/protocol.md §7).  All fields
 * little-endian; the control block's fields marked "atomic" are host-order
 * integers (ivlink runs on little-endian machines only) updated with
 * __atomic builtins, as in <ivlink/proto/shm.h>.
 */
#ifndef IVLINK_PROTO_TRANSPORT_H
#define IVLINK_PROTO_TRANSPORT_H

#include <ivlink/proto/common.h>
#include <ivlink/proto/sdm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the management area (docs/transport.md §2) -------------------------- */

#define IVL_TRANSPORT_MAGIC 0x4d54564cu /* "LVTM" little-endian */
#define IVL_TRANSPORT_VERSION 1u
/* Offsets inside the management area (a part of the link's app area). */
#define IVL_TRANSPORT_CTL_OFF 0u	  /* struct ivl_transport_ctl */
#define IVL_TRANSPORT_RING_OFF 4096u	  /* the transport virtqueue */
#define IVL_TRANSPORT_RING_NUM 16u	  /* its size */
#define IVL_TRANSPORT_CMDBUF_OFF 16384u  /* command buffers (driver-owned) */
#define IVL_TRANSPORT_CMDBUF_SIZE 8192u  /* one command + response slot */
#define IVL_TRANSPORT_WINDOWS_OFF 65536u /* device windows start here */
/* The transport queue's window: from IVL_TRANSPORT_RING_OFF to the first device
 * window; its ring is at window offset 0 (ivl_virtq_layout_default), the
 * command buffers at IVL_TRANSPORT_CMDBUF_OFF - IVL_TRANSPORT_RING_OFF. */
#define IVL_TRANSPORT_TQ_WINDOW (IVL_TRANSPORT_WINDOWS_OFF - IVL_TRANSPORT_RING_OFF)
#define IVL_TRANSPORT_GRANULE 65536u	      /* windows are multiples of this */
#define IVL_TRANSPORT_AREA_MIN (2u * 65536u) /* control + one window */
#define IVL_TRANSPORT_MAX_DEVICES 64u
#define IVL_TRANSPORT_MAX_QUEUES 8u

/* The control block at the start of the management area.  The device host
 * writes magic..host_vector at start; a driver writes owner..driver_vector. */
struct ivl_transport_ctl {
	__u32 magic;	  /* atomic: IVL_TRANSPORT_MAGIC once the host
			   * serves (release), 0 when it stops */
	__le16 version; /* IVL_TRANSPORT_VERSION */
	__le16 host_peer;
	__le16 host_vector; /* the doorbell that kicks every queue */
	__le16 reserved0;
	__le32 host_epoch; /* changes on every host start */
	__le64 area_size;  /* bytes of the management area */
	__u32 owner;	     /* atomic: driver peer + 1 holding the transport
			      * queue, 0: free (compare-and-swap) */
	__u32 generation;    /* atomic: bumped (release) after a driver
			      * re-initialised the ring */
	__u16 driver_peer;   /* atomic: written before generation */
	__u16 driver_vector; /* atomic: doorbell for transport-queue answers */
	__le32 reserved1;
};
IVL_PROTO_SIZE(struct ivl_transport_ctl, 40);
IVL_PROTO_OFFSET(struct ivl_transport_ctl, owner, 24);

/* ---- commands (docs/transport.md §3) ------------------------------------- */

/* VIRTIO_F_TRANSPT_VQ (seed 002: "The management device MUST offer feature
 * bit VIRTIO_F_TRANSPT_VQ"): offered by device_id 0 (FEATURES GET_DEVICE on
 * device 0).  The seed assigns no number; ivlink uses bit 63, outside the
 * transport range of every virtio version (24..41) and not used by the
 * management device for anything else (docs/transport.md §3.1). */
#define IVL_TRANSPORT_F_TRANSPT_VQ (1ull << 63)

/* Driver-written header; the class's structure follows. */
struct ivl_transport_cmd {
	__le64 device_id;
	__le16 class_;
	__le16 command;
	__le32 reserved; /* 0; makes out[] 8-byte aligned */
};
IVL_PROTO_SIZE(struct ivl_transport_cmd, 16);

/* Device-written answer; on ERR, in[] is a struct ivl_transport_err. */
struct ivl_transport_resp {
	__le32 ack;
};
IVL_PROTO_SIZE(struct ivl_transport_resp, 4);

#define IVL_TRANSPORT_OK 0u
#define IVL_TRANSPORT_ERR 1u

struct ivl_transport_err {
	__le32 reason;
};
IVL_PROTO_SIZE(struct ivl_transport_err, 4);

/* Reason codes of an ERR answer. */
enum ivl_transport_reason {
	IVL_TRANSPORT_E_LENGTH = 1,	    /* out[] too short or too long for the command */
	IVL_TRANSPORT_E_CLASS = 2,	    /* unknown class */
	IVL_TRANSPORT_E_COMMAND = 3,	    /* unknown command in the class */
	IVL_TRANSPORT_E_NO_DEVICE = 4,	    /* no managed device with that ID */
	IVL_TRANSPORT_E_DEVICE_ID = 5,	    /* wrong ID kind: 0 where a managed device
				     * is needed (DESTROY, QUERY, QUEUE, CONFIG,
				     * MSI), or != 0 for CREATE/LIST */
	IVL_TRANSPORT_E_VIRTIO_ID = 6,	    /* device type not offered by this host */
	IVL_TRANSPORT_E_NO_SPACE = 7,	    /* no free device slot or window space */
	IVL_TRANSPORT_E_QUEUE = 8,	    /* queue index >= the device's queues */
	IVL_TRANSPORT_E_STATE = 9,	    /* not allowed in the current status */
	IVL_TRANSPORT_E_VALUE = 10,	    /* a field has an invalid value */
	IVL_TRANSPORT_E_WINDOW = 11,	    /* a ring outside the device's window */
	IVL_TRANSPORT_E_VECTOR = 12,	    /* MSI vector >= the device's table */
	IVL_TRANSPORT_E_NOT_SHARING = 13,  /* MAP_* on a non-sharing MSI table */
	IVL_TRANSPORT_E_BACKEND = 14,	    /* the device's backend failed */
	IVL_TRANSPORT_E_RESERVED = 15,	    /* a reserved field is not 0 */
	IVL_TRANSPORT_E_IN_SPACE = 16,	    /* the driver's in[] is too small */
	IVL_TRANSPORT_E_MSI_DISABLED = 17, /* an interrupt needs MSI enabled */
	IVL_TRANSPORT_E_LAST = IVL_TRANSPORT_E_MSI_DISABLED,
};
/* Their short names ("length", "class", ...): ivl_transport_reason_name()
 * in <ivlink/transport.h>. */

/* Classes and commands. */
enum {
	IVL_TRANSPORT_CLASS_MGMT = 0, /* device management */
	IVL_TRANSPORT_CLASS_FEATURES = 1,
	IVL_TRANSPORT_CLASS_STATUS = 2, /* device status and reset */
	IVL_TRANSPORT_CLASS_QUEUE = 3,
	IVL_TRANSPORT_CLASS_CONFIG = 4, /* configuration space */
	IVL_TRANSPORT_CLASS_MSI = 5,
};
enum {
	IVL_TRANSPORT_MGMT_CREATE = 1,	 /* id 0; out create, in info */
	IVL_TRANSPORT_MGMT_DESTROY = 2, /* id N; no data */
	IVL_TRANSPORT_MGMT_LIST = 3,	 /* id 0; in list_resp + entries */
	IVL_TRANSPORT_MGMT_QUERY = 4,	 /* id N; in info */
};
enum {
	IVL_TRANSPORT_FEAT_GET_DEVICE = 1, /* in le64 */
	IVL_TRANSPORT_FEAT_SET_DRIVER = 2, /* out le64 */
	IVL_TRANSPORT_FEAT_GET_DRIVER = 3, /* in le64 */
};
enum {
	IVL_TRANSPORT_STATUS_GET = 1,	 /* in le32 */
	IVL_TRANSPORT_STATUS_SET = 2,	 /* out le32 */
	IVL_TRANSPORT_STATUS_RESET = 3, /* no data */
};
enum {
	IVL_TRANSPORT_QUEUE_GET_MAX = 1,    /* out queue_sel, in le32 max size */
	IVL_TRANSPORT_QUEUE_SET_SIZE = 2,   /* out queue_val (value = size) */
	IVL_TRANSPORT_QUEUE_SET_ADDR = 3,   /* out queue_addr */
	IVL_TRANSPORT_QUEUE_ENABLE = 4,     /* out queue_val (value 1 enable, 0 off) */
	IVL_TRANSPORT_QUEUE_RESET = 5,	     /* out queue_sel */
	IVL_TRANSPORT_QUEUE_GET_NOTIFY = 6, /* out queue_sel, in notify */
};
enum {
	IVL_TRANSPORT_CONFIG_READ = 1,	      /* out config_rw, in bytes */
	IVL_TRANSPORT_CONFIG_WRITE = 2,      /* out config_rw + bytes */
	IVL_TRANSPORT_CONFIG_GENERATION = 3, /* in le32 */
};
enum {
	IVL_TRANSPORT_MSI_GET_NUM = 1,	   /* in le32 */
	IVL_TRANSPORT_MSI_CONFIGURE = 2,  /* out msi_cfg */
	IVL_TRANSPORT_MSI_MASK = 3,	   /* out msi_vec */
	IVL_TRANSPORT_MSI_UNMASK = 4,	   /* out msi_vec */
	IVL_TRANSPORT_MSI_PENDING = 5,	   /* out msi_vec, in le32 (0/1) */
	IVL_TRANSPORT_MSI_MAP_CONFIG = 6, /* out msi_vec (NO_VECTOR unmaps) */
	IVL_TRANSPORT_MSI_MAP_QUEUE = 7,  /* out queue_val (value = vector) */
	IVL_TRANSPORT_MSI_ENABLE = 8,
	IVL_TRANSPORT_MSI_DISABLE = 9,
};

/* Console backends (create.param[0] of a console). */
enum {
	IVL_TRANSPORT_CONSOLE_DEFAULT = 0, /* the host's choice (serve options) */
	IVL_TRANSPORT_CONSOLE_PTY = 1,
	IVL_TRANSPORT_CONSOLE_UNIX = 2,
	IVL_TRANSPORT_CONSOLE_LOOP = 3, /* what the driver sends comes back */
};
/* SDM roles (create.param[0] of an SDM device); param[1]: master:
 * max_slaves, slave: the ID asked for (0: any). */
enum {
	IVL_TRANSPORT_SDM_SLAVE = 0,
	IVL_TRANSPORT_SDM_MASTER = 1,
};

#define IVL_TRANSPORT_CREATE_F_MSI_SHARING 1u
/* Offered to one driver: the device's driver_peer starts as the peer in
 * bits 16..31 of flags (IVL_TRANSPORT_CREATE_FOR(peer)) instead of the
 * creator, so that driver finds it in LIST (docs/transport.md §4). */
#define IVL_TRANSPORT_CREATE_F_FOR_PEER 2u
#define IVL_TRANSPORT_CREATE_FOR(peer) (IVL_TRANSPORT_CREATE_F_FOR_PEER | ((__u32)(peer) << 16))

/* CREATE's out part may go on after struct ivl_transport_create with a
 * backend argument of 1..IVL_TRANSPORT_CREATE_ARG_MAX bytes, NUL-terminated
 * within them (a name the device host looks up in its own configuration:
 * docs/transport.md §5; types without one refuse it). */
#define IVL_TRANSPORT_CREATE_ARG_MAX 64u

struct ivl_transport_create {
	__le32 virtio_id;   /* 3 console, 21 SDM */
	__le32 flags;	      /* IVL_TRANSPORT_CREATE_F_* */
	__le64 window_size; /* 0: the device type's default */
	__le32 msi_vectors; /* 0: queues + 1 */
	__le32 param[3];    /* per device type, see above */
};
IVL_PROTO_SIZE(struct ivl_transport_create, 32);

/* Where a managed device lives.  Offsets are from the management area. */
struct ivl_transport_info {
	__le64 device_id;
	__le32 virtio_id;
	__le32 status;
	__le64 window_offset;
	__le64 window_size;
	__le16 num_queues;
	__le16 msi_vectors;
	__le32 flags;
	__le16 driver_peer; /* the last peer that configured it */
	__le16 reserved[3];
	char backend[64]; /* NUL-terminated, e.g. "pty:/dev/pts/3" */
};
IVL_PROTO_SIZE(struct ivl_transport_info, 112);

struct ivl_transport_list_resp {
	__le32 count; /* devices; as many struct ivl_transport_list_entry follow
			 * as fit in in[] */
	__le32 reserved;
};
IVL_PROTO_SIZE(struct ivl_transport_list_resp, 8);
struct ivl_transport_list_entry {
	__le64 device_id;
	__le32 virtio_id;
	__le32 status;
};
IVL_PROTO_SIZE(struct ivl_transport_list_entry, 16);

struct ivl_transport_queue_sel {
	__le16 queue;
	__le16 reserved;
};
IVL_PROTO_SIZE(struct ivl_transport_queue_sel, 4);
struct ivl_transport_queue_val {
	__le16 queue;
	__le16 reserved;
	__le32 value;
};
IVL_PROTO_SIZE(struct ivl_transport_queue_val, 8);
struct ivl_transport_queue_addr {
	__le16 queue;
	__le16 reserved[3];
	__le64 desc, avail, used; /* offsets in the device's window */
};
IVL_PROTO_SIZE(struct ivl_transport_queue_addr, 32);
struct ivl_transport_notify {
	__le16 peer;	 /* ring this peer's */
	__le16 vector; /* doorbell to kick the queue */
};
IVL_PROTO_SIZE(struct ivl_transport_notify, 4);
struct ivl_transport_config_rw {
	__le32 offset;
	__le32 length; /* 1..IVL_TRANSPORT_CONFIG_MAX */
};
IVL_PROTO_SIZE(struct ivl_transport_config_rw, 8);
#define IVL_TRANSPORT_CONFIG_MAX 256u
struct ivl_transport_msi_vec {
	__le32 vector;
};
IVL_PROTO_SIZE(struct ivl_transport_msi_vec, 4);
struct ivl_transport_msi_cfg {
	__le32 vector;
	__le32 data;	  /* the doorbell vector of the destination */
	__le64 address; /* the destination peer */
};
IVL_PROTO_SIZE(struct ivl_transport_msi_cfg, 16);

/* Device types (virtio device IDs). */
#define IVL_TRANSPORT_VIRTIO_NET 1u
#define IVL_TRANSPORT_VIRTIO_BLK 2u
#define IVL_TRANSPORT_VIRTIO_CONSOLE 3u
#define IVL_TRANSPORT_VIRTIO_RNG 4u
#define IVL_TRANSPORT_VIRTIO_SDM 21u

/* SDM configuration space (seed 000, docs/sdm.md), little-endian. */
struct ivl_transport_sdm_config {
	__u8 master;
	__u8 reserved;
	__le16 max_slaves; /* writable on a master */
	__le16 current_slaves;
};
IVL_PROTO_SIZE(struct ivl_transport_sdm_config, 6);
IVL_PROTO_OFFSET(struct ivl_transport_sdm_config, current_slaves, 4);

/*
 * SDM queues (docs/transport.md §5).  gh_vq (queue 1): a buffer's readable
 * part starts with the seed's SDMSignalData (struct ivl_sdm_wire_signal,
 * `slave` IVL_TRANSPORT_SDM_ALL broadcasts from a master); its writable part,
 * when present, receives the le32 result (0, the number of slaves a
 * broadcast reached, or a negative errno).  hg_vq (queue 0): each signal
 * fills one buffer with this, 20 bytes when the buffer has room, else the
 * seed's 16 (no `from`).
 */
struct ivl_transport_sdm_rx {
	struct ivl_sdm_wire_signal sig; /* 0 `slave`: the receiver's ID, 0 on a master */
	__le32 from;			/* 16 the sender's ID, 0 = the master */
};
IVL_PROTO_SIZE(struct ivl_transport_sdm_rx, 20);
IVL_PROTO_OFFSET(struct ivl_transport_sdm_rx, from, 16);
#define IVL_TRANSPORT_SDM_RESULT_LEN 4u
#define IVL_TRANSPORT_SDM_ALL 0xffffffffu /* = IVL_SDM_ALL of <ivlink/sdm.h> */

#ifdef __cplusplus
}
#endif
#endif
