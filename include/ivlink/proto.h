/* SPDX-License-Identifier: MIT */
/*
 * ivlink wire and shared-memory formats.  Normative text: docs/protocol.md.
 *
 * Everything here is little-endian with fixed-width fields and explicit
 * padding; sizes and offsets are checked at compile time.  ivlink supports
 * little-endian hosts only (checked below), so the shared-memory structures
 * are accessed in place with C11 atomics.
 */
#ifndef IVLINK_PROTO_H
#define IVLINK_PROTO_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ivlink supports little-endian hosts only"
#endif

/* ---- 1. ivshmem server -> peer protocol (QEMU compatible) ------------- */

/* Every message is one 8-byte little-endian signed integer, optionally
 * carrying one fd with SCM_RIGHTS. */
#define IVL_MSG_SIZE 8
#define IVL_PROTOCOL_VERSION 0 /* first message */
#define IVL_MSG_SHM (-1)       /* with the shared-memory fd */
#define IVL_MAX_PEER_ID 65535  /* peer IDs are 0..65535 */
#define IVL_MAX_VECTORS 64     /* per peer; one pending bit each (§3) */

/*
 * ivlink extension messages, server -> peer.  Sent to a peer that sent an
 * ivl_wire_hello first, with one exception: a newcomer the server refuses
 * gets IVL_EXT_REFUSED in place of its ID, then the connection closes (QEMU,
 * refused either way, reports a bad ID instead of a closed connection).  Encoded as a negative
 * value below -1: the top 16 bits are IVL_EXT_TAG, then a 16-bit opcode and a
 * 32-bit argument.
 */
#define IVL_EXT_TAG 0xC1F1u
#define IVL_EXT_MSG(op, arg) \
	((int64_t)(((uint64_t)IVL_EXT_TAG << 48) | ((uint64_t)((op) & 0xffffu) << 32) | \
		   (uint64_t)(uint32_t)(arg)))
#define IVL_EXT_IS(v) ((uint64_t)(v) >> 48 == IVL_EXT_TAG)
#define IVL_EXT_OP(v) ((unsigned)(((uint64_t)(v) >> 32) & 0xffffu))
#define IVL_EXT_ARG(v) ((uint32_t)(uint64_t)(v))

enum {
	/* Answer to a hello: arg = vectors per peer (bits 0..15) | server
	 * feature bits (bits 16..31).  Always arrives after the whole initial
	 * handshake, so it also marks the handshake's end. */
	IVL_EXT_WELCOME = 1,
	/* Refused: arg = positive errno (EUSERS: full, EACCES: not allowed,
	 * EMFILE: the server is out of fds).  The server closes. */
	IVL_EXT_REFUSED = 2,
};

/*
 * Peer -> server hello (optional, ivlink servers only).  A peer may send it
 * only when the region starts with a valid ivl_shm_header whose features
 * include IVL_FEAT_HELLO: QEMU's ivshmem-server drops any peer that writes to
 * its socket.  A server never waits for a hello.
 */
#define IVL_HELLO_MAGIC 0x484c5649u /* "IVLH" */
#define IVL_HELLO_VERSION 1
#define IVL_NAME_LEN 32 /* NUL padded, not necessarily NUL terminated */

struct ivl_wire_hello {
	uint32_t magic;    /* IVL_HELLO_MAGIC */
	uint16_t version;  /* IVL_HELLO_VERSION */
	uint16_t size;     /* sizeof(struct ivl_wire_hello) */
	uint32_t features; /* IVL_FEAT_* the peer understands */
	uint32_t reserved; /* 0 */
	char name[IVL_NAME_LEN];
};
_Static_assert(sizeof(struct ivl_wire_hello) == 48, "hello size");
_Static_assert(offsetof(struct ivl_wire_hello, name) == 16, "hello.name");

/* Feature bits (hello, welcome, header). */
#define IVL_FEAT_HELLO (1u << 0) /* the server reads hellos */
#define IVL_FEAT_NAMES (1u << 1) /* the peer table carries names */
#define IVL_FEAT_PLAIN (1u << 2) /* serverless: formatted by a peer (docs/plain.md) */

/* ---- 4. ivlink shared-memory header, layout version 1 ------------------ */

#define IVL_SHM_MAGIC 0x31484b4e494c5649ull /* "IVLINKH1" in memory order */
#define IVL_SHM_VERSION 1
#define IVL_SHM_PAGE 4096u /* header_size is a multiple of this */

enum ivl_shm_state {
	IVL_SHM_FORMATTING = 0, /* not usable yet */
	IVL_SHM_READY = 1,      /* all fields valid */
	IVL_SHM_CLOSED = 2,     /* the server has stopped */
};

struct ivl_shm_header {
	uint64_t magic;             /* 0x00 IVL_SHM_MAGIC */
	uint32_t version;           /* 0x08 IVL_SHM_VERSION */
	uint32_t header_size;       /* 0x0c bytes; app area starts here */
	uint64_t region_size;       /* 0x10 bytes, power of two */
	uint64_t epoch;             /* 0x18 new on every server start */
	uint32_t max_peers;         /* 0x20 entries in the peer table */
	uint32_t vectors;           /* 0x24 vectors per peer, <= 64 */
	uint32_t peer_table_offset; /* 0x28 from the region start */
	uint32_t peer_entry_size;   /* 0x2c sizeof(struct ivl_shm_peer) */
	uint32_t features;          /* 0x30 IVL_FEAT_* of the server */
	_Atomic uint32_t state;     /* 0x34 enum ivl_shm_state; written last
				     * with release, read with acquire */
	uint32_t server_pid;        /* 0x38 for stale-object detection */
	uint32_t reserved0;         /* 0x3c */
	uint8_t reserved[64];       /* 0x40 */
};
_Static_assert(sizeof(struct ivl_shm_header) == 128, "header size");
_Static_assert(offsetof(struct ivl_shm_header, state) == 0x34, "header.state");

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
	IVL_WAITING_NONE = 0,   /* not coalescing: always ring */
	IVL_WAITING_AWAKE = 1,  /* coalescing, running or polling: set pending only */
	IVL_WAITING_ASLEEP = 2, /* coalescing, blocked: pending + doorbell */
};

struct ivl_shm_peer {
	_Atomic uint32_t state;      /* 0x00 enum ivl_peer_state */
	_Atomic uint32_t generation; /* 0x04 +1 on every join of this ID */
	_Atomic uint64_t pending;    /* 0x08 bit v: vector v rung, unhandled */
	_Atomic uint32_t waiting;    /* 0x10 enum ivl_waiting (§3) */
	uint32_t vectors;            /* 0x14 this peer's vector count */
	uint32_t pid;                /* 0x18 from SO_PEERCRED, 0 if unknown */
	uint32_t uid;                /* 0x1c from SO_PEERCRED */
	char name[IVL_NAME_LEN];     /* 0x20 from the hello; "" if none */
};
_Static_assert(sizeof(struct ivl_shm_peer) == 64, "peer entry size");
_Static_assert(offsetof(struct ivl_shm_peer, pending) == 0x08, "peer.pending");
_Static_assert(offsetof(struct ivl_shm_peer, name) == 0x20, "peer.name");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
	       "shared-memory atomics must be lock-free");

#define IVL_SHM_PEER_TABLE_OFFSET 128u

/* Header bytes for @max_peers entries, rounded up to IVL_SHM_PAGE. */
static inline uint64_t ivl_shm_header_size(uint32_t max_peers)
{
	uint64_t n = IVL_SHM_PEER_TABLE_OFFSET + (uint64_t)max_peers * sizeof(struct ivl_shm_peer);
	return (n + IVL_SHM_PAGE - 1) / IVL_SHM_PAGE * IVL_SHM_PAGE;
}

#ifdef __cplusplus
}
#endif
#endif
