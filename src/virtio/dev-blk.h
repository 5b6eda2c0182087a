/* SPDX-License-Identifier: MIT */
/*
 * The virtio-blk request engine of dev-blk.c, on its own so that the fuzz
 * harness (tests/fuzz/fuzz_blk.c) runs every request path against a real
 * file without a transport around it.
 */
#ifndef IVL_VIRTIO_DEV_BLK_H
#define IVL_VIRTIO_DEV_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include <ivlink/virtq.h>

/* virtio 1.x §5.2: request types, status, features. */
#define IVL__BLK_T_IN 0u
#define IVL__BLK_T_OUT 1u
#define IVL__BLK_T_FLUSH 4u
#define IVL__BLK_T_GET_ID 8u
#define IVL__BLK_T_DISCARD 11u
#define IVL__BLK_T_WRITE_ZEROES 13u
#define IVL__BLK_S_OK 0u
#define IVL__BLK_S_IOERR 1u
#define IVL__BLK_S_UNSUPP 2u
#define IVL__BLK_HDR 16u    /* le32 type, le32 reserved, le64 sector */
#define IVL__BLK_SEG 16u    /* discard/write-zeroes: le64 sector, le32 num, le32 flags */
#define IVL__BLK_ID_BYTES 20u
#define IVL__BLK_SEG_MAX 32u      /* data pieces per request (config seg_max) */
#define IVL__BLK_SIZE_MAX 65536u  /* bytes per data piece (config size_max) */
#define IVL__BLK_DZ_SEG_MAX 16u   /* ranges per discard / write-zeroes */
#define IVL__BLK_DZ_SECTORS (1u << 22) /* sectors per range (2 GiB) */

struct ivl__blk_counts {
	uint64_t reads, writes, flushes, discards, zeroes, ids;
	uint64_t bad;	 /* malformed chains (layout, lengths, directions) */
	uint64_t range;	 /* sectors outside the image */
	uint64_t unsupp; /* unknown or unnegotiated request types, flags */
	uint64_t ioerr;	 /* host I/O errors, writes to a read-only image */
};

struct ivl__blk_img {
	int fd;
	uint64_t capacity; /* 512-byte sectors */
	bool ro;
	bool discard, wzeroes; /* fallocate works for them (offered) */
	bool zero_range;       /* FALLOC_FL_ZERO_RANGE works (else holes) */
	bool flush;	       /* the driver negotiated VIRTIO_BLK_F_FLUSH */
	bool failed;	       /* a write or sync failed: writes are refused */
	char id[IVL__BLK_ID_BYTES];
	struct ivl__blk_counts n;
};

/*
 * Serve one popped chain @e (hostile) on @b: validate its layout (a
 * 16-byte readable header first, the status byte as the last writable
 * byte, data in the direction of the type, lengths in 512-byte sectors,
 * sectors inside the image), do the I/O, write the status.  Returns the
 * used length (bytes written into the chain: data + status), or 0 when the
 * chain has nowhere to put a status (counted as bad).  Never touches the
 * file outside sectors [0, capacity).
 */
uint32_t ivl__blk_request(struct ivl__blk_img *b, const struct ivl_virtq_elem *e);

#endif
