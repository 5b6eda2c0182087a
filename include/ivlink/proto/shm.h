/* SPDX-License-Identifier: (GPL-2.0-only WITH Linux-syscall-note) OR MIT */
/*
 * The ivlink shared-memory header and peer table (layout version 1), at
 * offset 0 of a region, and the claim word of serverless regions.
 * Normative text: docs/protocol.md §2 (header, peer table), §3 (the
 * coalescing fields) and docs/plain.md §2 (the claim word, indexed in
 * docs/protocol.md §6).
 *
 * Fields marked "atomic" are updated concurrently by several processes or
 * VMs: access them only with __atomic builtins (acquire/release as noted).
 * They are host-order integers: ivlink runs on little-endian machines only,
 * so they are little-endian in memory as well.  Every other field is written
 * once, before `state` becomes READY (release), and is little-endian.
 */
#ifndef IVLINK_PROTO_SHM_H
#define IVLINK_PROTO_SHM_H

#include <ivlink/proto/common.h>
#include <ivlink/proto/ivshmem.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IVL_SHM_MAGIC 0x31484b4e494c5649ull /* "IVLINKH1" in memory order */
#define IVL_SHM_VERSION 1
#define IVL_SHM_PAGE 4096u /* header_size is a multiple of this */
#define IVL_SHM_PEER_TABLE_OFFSET 128u

enum ivl_shm_state {
	IVL_SHM_FORMATTING = 0, /* not usable yet */
	IVL_SHM_READY = 1,	/* all fields valid */
	IVL_SHM_CLOSED = 2,	/* the server has stopped */
};

struct ivl_shm_header {
	__le64 magic;		  /* 0x00 IVL_SHM_MAGIC */
	__le32 version;		  /* 0x08 IVL_SHM_VERSION */
	__le32 header_size;	  /* 0x0c bytes; app area starts here */
	__le64 region_size;	  /* 0x10 bytes, power of two */
	__le64 epoch;		  /* 0x18 new on every server start */
	__le32 max_peers;	  /* 0x20 entries in the peer table */
	__le32 vectors;		  /* 0x24 vectors per peer, <= 64 */
	__le32 peer_table_offset; /* 0x28 from the region start */
	__le32 peer_entry_size;	  /* 0x2c sizeof(struct ivl_shm_peer) */
	__le32 features;	  /* 0x30 IVL_FEAT_* of the server */
	__u32 state;		  /* 0x34 atomic: enum ivl_shm_state; written
				   * last with release, read with acquire */
	__le32 server_pid;	  /* 0x38 informational (ivlink info); stale
				   * objects are told by the server's lock,
				   * never by this field (§1.5) */
	__le32 reserved0;	  /* 0x3c */
	__u8 reserved[64];	  /* 0x40 */
};
IVL_PROTO_SIZE(struct ivl_shm_header, 128);
IVL_PROTO_OFFSET(struct ivl_shm_header, max_peers, 0x20);
IVL_PROTO_OFFSET(struct ivl_shm_header, state, 0x34);
IVL_PROTO_OFFSET(struct ivl_shm_header, server_pid, 0x38);

enum ivl_peer_state {
	IVL_PEER_ABSENT = 0,
	IVL_PEER_JOINED = 1,  /* connected, handshake in flight */
	IVL_PEER_READY = 2,   /* handshake delivered: ringable */
	IVL_PEER_LEAVING = 3, /* disconnected, leave being announced */
};

/* Who needs a real doorbell (§3).  The server writes NONE at every join, so a
 * receiver that does not take part in coalescing (a QEMU guest with its own
 * driver, QEMU's ivshmem-client) always gets one. */
enum ivl_waiting {
	IVL_WAITING_NONE = 0,	/* not coalescing: always ring */
	IVL_WAITING_AWAKE = 1,	/* coalescing, running or polling: set pending only */
	IVL_WAITING_ASLEEP = 2, /* coalescing, blocked: pending + doorbell */
};

struct ivl_shm_peer {
	__u32 state;		 /* 0x00 atomic: enum ivl_peer_state */
	__u32 generation;	 /* 0x04 atomic: +1 on every join of this ID */
	__u64 pending;		 /* 0x08 atomic: bit v: vector v rung, unhandled */
	__u32 waiting;		 /* 0x10 atomic: enum ivl_waiting (§3) */
	__le32 vectors;		 /* 0x14 this peer's vector count */
	__le32 pid;		 /* 0x18 from SO_PEERCRED, 0 if unknown */
	__le32 uid;		 /* 0x1c from SO_PEERCRED */
	char name[IVL_NAME_LEN]; /* 0x20 from the hello; "" if none */
};
IVL_PROTO_SIZE(struct ivl_shm_peer, 64);
IVL_PROTO_OFFSET(struct ivl_shm_peer, pending, 0x08);
IVL_PROTO_OFFSET(struct ivl_shm_peer, waiting, 0x10);
IVL_PROTO_OFFSET(struct ivl_shm_peer, name, 0x20);

/* Header bytes for @max_peers entries, rounded up to IVL_SHM_PAGE. */
static inline __u64 ivl_shm_header_size(__u32 max_peers)
{
	__u64 n = IVL_SHM_PEER_TABLE_OFFSET + (__u64)max_peers * sizeof(struct ivl_shm_peer);
	return (n + IVL_SHM_PAGE - 1) / IVL_SHM_PAGE * IVL_SHM_PAGE;
}

/*
 * Serverless regions (docs/plain.md): the magic word while a formatter holds
 * the claim.  The high 32 bits are this tag ("CLAI" as a little-endian
 * word), the low 32 bits the claimer's pid (informative only: across VMs it
 * means nothing).  The claim is an atomic compare-and-swap 0 -> claim of the
 * 64-bit magic word.
 */
#define IVL_SHM_CLAIM_TAG 0x49414c43u
#define IVL_SHM_CLAIM(pid) ((__u64)IVL_SHM_CLAIM_TAG << 32 | (__u32)(pid))
#define IVL_SHM_IS_CLAIM(magic) ((__u64)(magic) >> 32 == IVL_SHM_CLAIM_TAG)

#ifdef __cplusplus
}
#endif
#endif
