/* SPDX-License-Identifier: MIT */
/*
 * Serverless mode ("ivshmem-plain"): peers that share only a memory object,
 * with no server and no doorbells.  The first peer to claim the object
 * formats the ivlink header; every other peer waits until it is READY.
 * Normative text: docs/plain.md.
 *
 * The formatter is decided by an atomic claim of the header's magic word
 * (0 -> IVL_SHM_CLAIM_TAG | pid), not by who created the object, so an
 * object created by someone else (QEMU's memory-backend-file creates its
 * file itself) and left all zero is formatted exactly once.
 *
 * Thread safety: the functions keep no global state; two threads may race
 * on the same object as two processes do.
 */
#ifndef IVLINK_PLAIN_H
#define IVLINK_PLAIN_H

#include <stdint.h>
#include <sys/types.h>

#include <ivlink/proto/shm.h>
#include <ivlink/region.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Flags for ivl_plain_opts.flags. */
#define IVL_PLAIN_NO_CREATE (1u << 0) /* the object must exist (-ENOENT) */

#define IVL_PLAIN_DEFAULT_PEERS 64u
#define IVL_PLAIN_DEFAULT_TIMEOUT_MS 5000

struct ivl_plain_opts {
	enum ivl_region_kind kind; /* IVL_REGION_FILE (a path, e.g. on /dev/shm
				    * or hugetlbfs) or IVL_REGION_SHM (a POSIX
				    * shm name) */
	const char *name;
	uint64_t size;	    /* a power of two; 0: the existing object's size */
	unsigned flags;	    /* IVL_PLAIN_* */
	mode_t mode;	    /* for a created object; 0 means 0600 */
	uint32_t max_peers; /* peer-table entries if we format; 0: 64 */
	int timeout_ms;	    /* bound for every wait; 0: 5000, -1: forever */
};

/* Bits of a successful result. */
#define IVL_PLAIN_CREATED (1 << 0)   /* this call created the object (O_EXCL) */
#define IVL_PLAIN_FORMATTED (1 << 1) /* this call won the claim and formatted */

/*
 * Create or open the object (O_CREAT | O_EXCL first, then a plain open),
 * check its size, map it whole, and run ivl_plain_attach() on it.
 *
 * Sizes: the object's size must be a power of two of at least the header
 * plus one page.  A creator gives the object @size.  An opener waits (up to
 * timeout_ms) while the object's size is still 0 (its creator has not sized
 * it yet), then requires the object's size to equal @size when @size is
 * nonzero.  fstat() is compared before anything is mapped, so nothing past
 * the end of the object is ever touched.
 *
 * On success *out owns the fd and the mapping, *hdr (optional) receives the
 * validated header copy, and the result is a mask of IVL_PLAIN_CREATED and
 * IVL_PLAIN_FORMATTED (>= 0).  The object keeps its name: remove it with
 * unlink()/shm_unlink() when no peer needs it any more.
 * Errors: -EINVAL (bad options; sizes that disagree: the log names both),
 * -ENOENT (NO_CREATE and missing, or size 0 and missing), -ETIMEDOUT (the
 * object stayed empty, or a claim was held without becoming READY: the log
 * names the claimer), -EPROTO (the object holds something that is neither
 * zero nor a valid ivlink header), -ESHUTDOWN (a header marked CLOSED by its
 * server), -ENAMETOOLONG, -EACCES, -ENOMEM, other -errno.
 */
int ivl_plain_open(struct ivl_region **out, const struct ivl_plain_opts *opts,
		   struct ivl_shm_header *hdr);

/*
 * The claim protocol on memory that is already mapped (e.g. an ivshmem-plain
 * BAR inside a guest): return at once if a valid header is READY; if the
 * magic word is 0, claim it and format (the whole region is zeroed first:
 * header by the format, the application area by memset); if another claim
 * or a format is in progress, poll until READY or timeout_ms.  Only
 * max_peers and timeout_ms of @opts are used (NULL: defaults).
 * Returns IVL_PLAIN_FORMATTED when this call formatted, 0 when someone else
 * had, or the errors of ivl_plain_open() that concern the contents
 * (-EINVAL when the header's region_size differs from @size, -ETIMEDOUT,
 * -EPROTO, -ESHUTDOWN).  *hdr (optional) gets the validated copy.
 */
int ivl_plain_attach(void *base, uint64_t size, const struct ivl_plain_opts *opts,
		     struct ivl_shm_header *hdr);

#ifdef __cplusplus
}
#endif
#endif
