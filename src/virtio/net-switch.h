/* SPDX-License-Identifier: MIT */
/*
 * The managed network's frame path (docs/transport.md §5, Net): the checks of
 * a transmitted frame (its virtio_net_hdr and size), and the built-in L2
 * switch that joins net devices of one device host.
 *
 * The switch: ports, a forwarding table learnt from source MACs
 * (direct-mapped, IVL__NSW_FDB entries; a collision replaces the older
 * entry, so at worst a frame is flooded), unicast to the learnt port,
 * broadcast / multicast / unknown unicast flooded to every other port.
 * Each port has a bounded FIFO of frames waiting for its receiver
 * (IVL__NSW_QMAX frames and IVL__NSW_QBYTES bytes): a frame is copied
 * once per destination port, never twice to one port, and a port's
 * frames leave in the order they came; when a port's FIFO is full the
 * frame is dropped for that port only (counted) and nobody waits.
 *
 * Thread safety: a switch and its ports are used by one thread at a time.
 * Ownership: ports belong to their switch (ivl__nsw_free() frees them);
 * input frames are copied.
 */
#ifndef IVL_VIRTIO_NET_SWITCH_H
#define IVL_VIRTIO_NET_SWITCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IVL__NET_HDR_LEN 12u  /* struct virtio_net_hdr_v1 (VERSION_1) */
#define IVL__ETH_HLEN 14u
#define IVL__ETH_VLAN 4u      /* one 802.1Q tag on top of the MTU */
#define IVL__NET_MTU_MIN 68u
#define IVL__NET_MTU_MAX 65521u /* 14 + 4 + MTU <= 65539: fits a TAP read */
#define IVL__NET_MTU_DEFAULT 1500u

#define IVL__NSW_FDB 1024u
#define IVL__NSW_QMAX 256u
#define IVL__NSW_QBYTES (4u << 20)
#define IVL__NSW_NAME_MAX 16u /* with the NUL, as IFNAMSIZ */

/* Largest Ethernet frame (no virtio header) a device of @mtu carries. */
static inline size_t ivl__net_frame_max(uint32_t mtu)
{
	return IVL__ETH_HLEN + IVL__ETH_VLAN + (size_t)mtu;
}

/* Why a transmitted chain was refused. */
enum ivl__net_bad {
	IVL__NET_OK = 0,
	IVL__NET_BAD_SHORT,    /* shorter than header + Ethernet header */
	IVL__NET_BAD_LONG,     /* frame beyond the MTU */
	IVL__NET_BAD_FLAGS,    /* flags set (no checksum offload offered) */
	IVL__NET_BAD_GSO,      /* gso_type not NONE (no segmentation offered) */
	IVL__NET_BAD_SRC,      /* multicast source address */
	IVL__NET_BAD_WRITABLE, /* a writable piece in a transmit chain */
};

/*
 * Check a transmitted chain copied to @buf (@len bytes: virtio_net_hdr_v1
 * then the frame) for a device of @mtu.  Returns IVL__NET_OK with the
 * frame in *frame / *frame_len, or the reason.  Pure; any bytes.
 */
enum ivl__net_bad ivl__net_tx_check(const uint8_t *buf, size_t len, uint32_t mtu,
				    const uint8_t **frame, size_t *frame_len);

struct ivl__nsw;
struct ivl__nsw_port;

struct ivl__nsw_stats {
	uint64_t in;	    /* frames the port sent into the switch */
	uint64_t out;	    /* frames taken from the port's FIFO */
	uint64_t drop_full; /* frames for this port dropped: FIFO full */
	uint64_t drop_big;  /* frames for this port dropped: beyond its MTU */
	uint64_t drop_bad;  /* frames from this port refused (short, multicast source) */
	uint64_t queued;    /* frames in the FIFO now */
};

/* A switch named @name (1..15 bytes, copied).  Errors: -EINVAL, -ENOMEM. */
int ivl__nsw_new(struct ivl__nsw **out, const char *name);
/* Frees its ports too.  NULL ok. */
void ivl__nsw_free(struct ivl__nsw *sw);
const char *ivl__nsw_name(const struct ivl__nsw *sw);
unsigned ivl__nsw_ports(const struct ivl__nsw *sw);

/* A new port taking frames up to @frame_max bytes.  Errors: -ENOMEM. */
int ivl__nsw_port_add(struct ivl__nsw *sw, size_t frame_max, struct ivl__nsw_port **out);
/* Remove a port: its FIFO and the addresses learnt on it go.  NULL ok. */
void ivl__nsw_port_del(struct ivl__nsw_port *p);
struct ivl__nsw *ivl__nsw_port_switch(const struct ivl__nsw_port *p);

/* A frame (Ethernet header first, @len bytes) sent by port @p: learn its
 * source, forward or flood copies.  Returns how many ports got a copy,
 * or -EINVAL (a bad frame, counted in drop_bad). */
int ivl__nsw_input(struct ivl__nsw_port *p, const uint8_t *frame, size_t len);
/* The oldest frame waiting for @p (NULL: none). */
const uint8_t *ivl__nsw_peek(const struct ivl__nsw_port *p, size_t *len);
/* Drop the oldest frame of @p (after delivering it). */
void ivl__nsw_pop(struct ivl__nsw_port *p);
/* Did frames arrive since the last call?  Clears the flag. */
bool ivl__nsw_take_arrived(struct ivl__nsw_port *p);
bool ivl__nsw_arrived(const struct ivl__nsw_port *p);
void ivl__nsw_port_stats(const struct ivl__nsw_port *p, struct ivl__nsw_stats *st);

#endif
