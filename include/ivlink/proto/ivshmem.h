/* SPDX-License-Identifier: (GPL-2.0-only WITH Linux-syscall-note) OR MIT */
/*
 * The ivshmem formats: the server -> peer messages of QEMU's ivshmem-server
 * protocol, ivlink's extension messages and hello, and the BAR0 registers
 * of the ivshmem PCI device (1af4:1110).  Normative text: docs/protocol.md
 * §1 (messages, hello) and §5 (BAR0 registers).
 */
#ifndef IVLINK_PROTO_IVSHMEM_H
#define IVLINK_PROTO_IVSHMEM_H

#include <ivlink/proto/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- server -> peer messages (QEMU compatible) ------------------------- */

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
 * refused either way, reports a bad ID instead of a closed connection).
 * Encoded as a negative value below -1: the top 16 bits are IVL_EXT_TAG,
 * then a 16-bit opcode and a 32-bit argument.
 */
#define IVL_EXT_TAG 0xC1F1u
#define IVL_EXT_MSG(op, arg) \
	((__s64)(((__u64)IVL_EXT_TAG << 48) | ((__u64)((op) & 0xffffu) << 32) | \
		 (__u64)(__u32)(arg)))
#define IVL_EXT_IS(v) ((__u64)(v) >> 48 == IVL_EXT_TAG)
#define IVL_EXT_OP(v) ((unsigned)(((__u64)(v) >> 32) & 0xffffu))
#define IVL_EXT_ARG(v) ((__u32)(__u64)(v))

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
	__le32 magic;	 /* IVL_HELLO_MAGIC */
	__le16 version;	 /* IVL_HELLO_VERSION */
	__le16 size;	 /* sizeof(struct ivl_wire_hello) */
	__le32 features; /* IVL_FEAT_* the peer understands */
	__le32 reserved; /* 0 */
	char name[IVL_NAME_LEN];
};
IVL_PROTO_SIZE(struct ivl_wire_hello, 48);
IVL_PROTO_OFFSET(struct ivl_wire_hello, features, 8);
IVL_PROTO_OFFSET(struct ivl_wire_hello, name, 16);

/* Feature bits (hello, welcome, header). */
#define IVL_FEAT_HELLO (1u << 0) /* the server reads hellos */
#define IVL_FEAT_NAMES (1u << 1) /* the peer table carries names */
#define IVL_FEAT_PLAIN (1u << 2) /* serverless: formatted by a peer (docs/plain.md) */

/* ---- the ivshmem PCI device: BAR0 registers (seed 001) ------------------ */

/* 32-bit registers at these BAR0 offsets. */
#define IVL_IVSHMEM_INTRMASK 0x00u
#define IVL_IVSHMEM_INTRSTATUS 0x04u
#define IVL_IVSHMEM_IVPOSITION 0x08u
#define IVL_IVSHMEM_DOORBELL 0x0cu
#define IVL_IVSHMEM_BAR0_SIZE 0x100u
/* IVPosition while the device has no ID (ivshmem-plain, not connected). */
#define IVL_IVSHMEM_NOT_READY 0xffffffffu
/* A Doorbell write: the destination peer in bits 16..31, the vector in
 * bits 0..15. */
#define IVL_IVSHMEM_DOORBELL_VALUE(peer, vector) \
	(((__u32)(__u16)(peer) << 16) | (__u32)(__u16)(vector))
/* PCI IDs of the device. */
#define IVL_IVSHMEM_VENDOR_ID 0x1af4u
#define IVL_IVSHMEM_DEVICE_ID 0x1110u

#ifdef __cplusplus
}
#endif
#endif
