/* SPDX-License-Identifier: (GPL-2.0-only WITH Linux-syscall-note) OR MIT */
/*
 * The Signal Distribution Module's wire formats: the frames of the UNIX and
 * TCP channels (plaintext and keyed), and the mailboxes of the LINK channel
 * in shared memory.  Normative text: docs/sdm.md §3-§5.
 *
 * Multi-byte fields are little-endian.  In the LINK area, fields marked
 * "atomic" are updated concurrently by several processes or VMs: access
 * them only with __atomic builtins (acquire/release as noted); they are
 * host-order integers, which on the little-endian machines ivlink supports
 * are little-endian in memory as well.  Every byte of the LINK area can be
 * written by any peer of the link: a reader validates everything.
 */
#ifndef IVLINK_PROTO_SDM_H
#define IVLINK_PROTO_SDM_H

#include <ivlink/proto/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- frames (UNIX and TCP, docs/sdm.md §3) --------------------------------- */

/* Version of HELLO / WELCOME / REFUSE. */
#define IVL_SDM_FRAME_VERSION 1u
/* Keyed framing version (KX_HELLO, §4.1): 1, or 2 with sealed batches. */
#define IVL_SDM_KX_VERSION 2u

/* Every frame: this header, then `len` bytes of payload. */
struct ivl_sdm_frame_hdr {
	__u8 type;   /* 0 enum ivl_sdm_frame_type */
	__u8 flags;  /* 1 MUST be 0 */
	__le16 len;  /* 2 payload bytes; fixed or bounded per type */
};
IVL_PROTO_SIZE(struct ivl_sdm_frame_hdr, 4);
IVL_PROTO_OFFSET(struct ivl_sdm_frame_hdr, len, 2);
#define IVL_SDM_HDR_LEN 4u

enum ivl_sdm_frame_type {
	IVL_SDM_F_HELLO = 1,	     /* slave -> master: struct ivl_sdm_hello_msg */
	IVL_SDM_F_WELCOME = 2,	     /* master -> slave: struct ivl_sdm_welcome_msg */
	IVL_SDM_F_REFUSE = 3,	     /* master -> slave: struct ivl_sdm_refuse_msg */
	IVL_SDM_F_SIGNAL = 4,	     /* either way: struct ivl_sdm_wire_signal */
	IVL_SDM_F_PING = 5,	     /* either way: keepalive, empty */
	IVL_SDM_F_KX_HELLO = 16,     /* keyed: struct ivl_sdm_kx_hello_msg */
	IVL_SDM_F_KX_REPLY = 17,     /* keyed: struct ivl_sdm_kx_reply_msg */
	IVL_SDM_F_KX_AUTH = 18,	     /* keyed: struct ivl_sdm_kx_auth_msg */
	IVL_SDM_F_SEALED = 19,	     /* keyed: one encrypted inner frame */
	IVL_SDM_F_SEALED_BATCH = 20, /* keyed v2: inner frames sealed as one */
};

/* REFUSE reasons. */
enum ivl_sdm_refusal {
	IVL_SDM_R_FULL = 1,
	IVL_SDM_R_ID_TAKEN = 2,
	IVL_SDM_R_BAD_VERSION = 3,
	IVL_SDM_R_UNAUTHENTICATED = 4,
	IVL_SDM_R_BAD_ID = 5,
};

/* A signal on the wire and in LINK ring entries (docs/sdm.md §1). */
struct ivl_sdm_wire_signal {
	__le32 type;	   /* 0x0 enum ivl_sdm_type */
	__le32 slave;	   /* 0x4 destination ID, 0 = the master */
	__le32 payload[2]; /* 0x8 */
};
IVL_PROTO_SIZE(struct ivl_sdm_wire_signal, 16);
IVL_PROTO_OFFSET(struct ivl_sdm_wire_signal, payload, 8);
#define IVL_SDM_SIGNAL_LEN 16u

struct ivl_sdm_hello_msg {
	__le16 version; /* 0 IVL_SDM_FRAME_VERSION */
	__le16 id;	/* 2 requested ID, 0 = any */
	__le32 flags;	/* 4 MUST be 0 */
};
IVL_PROTO_SIZE(struct ivl_sdm_hello_msg, 8);
IVL_PROTO_OFFSET(struct ivl_sdm_hello_msg, flags, 4);
#define IVL_SDM_HELLO_LEN 8u

struct ivl_sdm_welcome_msg {
	__le16 version;	     /* 0 IVL_SDM_FRAME_VERSION */
	__le16 id;	     /* 2 assigned ID, 1..1024 */
	__le16 max_slaves;   /* 4 */
	__le16 reserved;     /* 6 MUST be 0 */
	__le32 keepalive_ms; /* 8 the master's keepalive period */
};
IVL_PROTO_SIZE(struct ivl_sdm_welcome_msg, 12);
IVL_PROTO_OFFSET(struct ivl_sdm_welcome_msg, keepalive_ms, 8);
#define IVL_SDM_WELCOME_LEN 12u

struct ivl_sdm_refuse_msg {
	__le16 version; /* 0 IVL_SDM_FRAME_VERSION */
	__le16 reason;	/* 2 enum ivl_sdm_refusal */
};
IVL_PROTO_SIZE(struct ivl_sdm_refuse_msg, 4);
#define IVL_SDM_REFUSE_LEN 4u

/* ---- secure channel (docs/sdm.md §4) ----------------------------------------
 * The numbers are libsodium's (crypto_kx public keys, secretstream
 * xchacha20poly1305 header and tag); src/sdm/secure.c checks they match. */
#define IVL_SDM_KX_PUBKEY_LEN 32u  /* crypto_kx_PUBLICKEYBYTES */
#define IVL_SDM_MAC_LEN 32u	   /* BLAKE2b-256 proofs */
#define IVL_SDM_SSHDR_LEN 24u	   /* crypto_secretstream_..._HEADERBYTES */
#define IVL_SDM_SEAL_OVERHEAD 17u  /* crypto_secretstream_..._ABYTES */

struct ivl_sdm_kx_hello_msg {
	__le16 version;			 /* 0 keyed framing version, 1 or 2 */
	__le16 reserved;		 /* 2 0 */
	__u8 pk[IVL_SDM_KX_PUBKEY_LEN];	 /* 4 client ephemeral X25519 key */
};
IVL_PROTO_SIZE(struct ivl_sdm_kx_hello_msg, 36);
IVL_PROTO_OFFSET(struct ivl_sdm_kx_hello_msg, pk, 4);
#define IVL_SDM_KX_HELLO_LEN 36u

struct ivl_sdm_kx_reply_msg {
	__u8 pk[IVL_SDM_KX_PUBKEY_LEN];	  /* 0 server ephemeral key */
	__u8 proof[IVL_SDM_MAC_LEN];	  /* 32 server proof */
	__u8 header[IVL_SDM_SSHDR_LEN];	  /* 64 its push stream's header */
};
IVL_PROTO_SIZE(struct ivl_sdm_kx_reply_msg, 88);
IVL_PROTO_OFFSET(struct ivl_sdm_kx_reply_msg, header, 64);
#define IVL_SDM_KX_REPLY_LEN 88u

struct ivl_sdm_kx_auth_msg {
	__u8 proof[IVL_SDM_MAC_LEN];	/* 0 client proof */
	__u8 header[IVL_SDM_SSHDR_LEN]; /* 32 its push stream's header */
};
IVL_PROTO_SIZE(struct ivl_sdm_kx_auth_msg, 56);
#define IVL_SDM_KX_AUTH_LEN 56u

/* Largest plaintext payload of an inner frame (a SEALED's plaintext is at
 * most IVL_SDM_HDR_LEN + this). */
#define IVL_SDM_MAX_PAYLOAD 128u
#define IVL_SDM_MAX_SEALED (IVL_SDM_HDR_LEN + IVL_SDM_MAX_PAYLOAD + IVL_SDM_SEAL_OVERHEAD)
/* Keyed v2: a SEALED_BATCH carries up to this many plaintext bytes of whole
 * inner frames, sealed as one message. */
#define IVL_SDM_BATCH_PLAIN 2048u
#define IVL_SDM_MAX_BATCH_SEALED (IVL_SDM_BATCH_PLAIN + IVL_SDM_SEAL_OVERHEAD)
/* The largest frame of all (what a peer can make a receiver buffer). */
#define IVL_SDM_MAX_FRAME (IVL_SDM_HDR_LEN + IVL_SDM_MAX_BATCH_SEALED)

/* ---- LINK channel mailboxes (docs/sdm.md §5) --------------------------------
 *
 *   area header | slot 0 (unused) | slot 1 | ... | slot capacity
 *   slot:  struct ivl_sdm_link_slot, ring master->slave, ring slave->master
 *   ring:  struct ivl_sdm_link_ring, ring_len x struct ivl_sdm_wire_signal
 */
#define IVL_SDM_LINK_MAGIC 0x4c4d4453u /* "SDML" in memory order */
#define IVL_SDM_LINK_VERSION 2u

struct ivl_sdm_link_area {
	__u32 magic;	   /* 0x00 atomic: IVL_SDM_LINK_MAGIC, stored last by
			    * the master (release), read with acquire */
	__le16 version;	   /* 0x04 IVL_SDM_LINK_VERSION */
	__le16 capacity;   /* 0x06 slots 1..capacity, <= 1024 */
	__u32 max_slaves;  /* 0x08 atomic: the master's current max_slaves */
	__le16 master_peer; /* 0x0c the master's link peer ID */
	__le16 ring_len;   /* 0x0e entries per ring, a power of two, 16..4096 */
	__u8 reserved[48]; /* 0x10 0 */
};
IVL_PROTO_SIZE(struct ivl_sdm_link_area, 64);
IVL_PROTO_OFFSET(struct ivl_sdm_link_area, max_slaves, 0x08);
IVL_PROTO_OFFSET(struct ivl_sdm_link_area, ring_len, 0x0e);

/* Slot status (the low byte; a refusal carries its reason in bits 8..23). */
#define IVL_SDM_LINK_PENDING 0u
#define IVL_SDM_LINK_WELCOME 1u
#define IVL_SDM_LINK_REFUSED 2u
#define IVL_SDM_LINK_REFUSAL(reason) (IVL_SDM_LINK_REFUSED | (__u32)(reason) << 8)

struct ivl_sdm_link_slot {
	__u32 owner;	   /* 0x00 atomic: 0 free, else link peer ID + 1;
			    * claimed with a compare-and-swap from 0 */
	__u32 status;	   /* 0x04 atomic: IVL_SDM_LINK_PENDING, _WELCOME or
			    * IVL_SDM_LINK_REFUSAL(reason); release/acquire */
	__u8 reserved[56]; /* 0x08 0 */
};
IVL_PROTO_SIZE(struct ivl_sdm_link_slot, 64);
IVL_PROTO_OFFSET(struct ivl_sdm_link_slot, status, 0x04);

/* Head and tail on separate cache lines; the entries follow. */
struct ivl_sdm_link_ring {
	__u32 head;	     /* 0x00 atomic: written by the producer (release) */
	__u8 reserved0[60];  /* 0x04 */
	__u32 tail;	     /* 0x40 atomic: written by the consumer (release) */
	__u8 reserved1[60];  /* 0x44 */
};
IVL_PROTO_SIZE(struct ivl_sdm_link_ring, 128);
IVL_PROTO_OFFSET(struct ivl_sdm_link_ring, tail, 0x40);

/* Bytes of one ring, of one slot, and of an area, for @len entries per ring
 * and @cap slots. */
#define IVL_SDM_LINK_RING_SIZE(len) \
	(sizeof(struct ivl_sdm_link_ring) + (__u64)(len) * sizeof(struct ivl_sdm_wire_signal))
#define IVL_SDM_LINK_SLOT_SIZE(len) \
	(sizeof(struct ivl_sdm_link_slot) + 2 * IVL_SDM_LINK_RING_SIZE(len))
#define IVL_SDM_LINK_AREA_SIZE(cap, len) \
	(sizeof(struct ivl_sdm_link_area) + ((__u64)(cap) + 1) * IVL_SDM_LINK_SLOT_SIZE(len))

#ifdef __cplusplus
}
#endif
#endif
