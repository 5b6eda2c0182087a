/* SPDX-License-Identifier: MIT */
/*
 * Shared-memory regions: POSIX shm objects, memfds, files (hugetlbfs
 * included), or an fd received from a peer.  A region is one fd plus one
 * MAP_SHARED read/write mapping of its whole size.
 *
 * Ownership: a region owns its fd and its mapping; pointers into the
 * mapping (ivl_region_base()) and the fd stay valid until ivl_region_free().
 *
 * Thread safety: a region handle may be read (base, size, fd, describe,
 * check, sealed) from any thread; ivl_region_unlink() and ivl_region_free()
 * need exclusive access.
 */
#ifndef IVLINK_REGION_H
#define IVLINK_REGION_H

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ivl_region;

enum ivl_region_kind {
	IVL_REGION_SHM = 1, /* POSIX shm_open(name); name without '/' ok */
	IVL_REGION_MEMFD,   /* anonymous memfd; name is only a label */
	IVL_REGION_FILE,    /* a file path (e.g. on hugetlbfs) */
	IVL_REGION_DIR,     /* a new unlinked file in directory name (QEMU -m) */
};

/* Flags for ivl_region_opts.flags. */
#define IVL_REGION_CREATE (1u << 0)   /* create if missing (SHM, FILE) */
#define IVL_REGION_EXCL (1u << 1)     /* fail with -EEXIST if it exists */
#define IVL_REGION_ROUND_UP (1u << 2) /* round size up to a power of two
				       * instead of refusing it */
#define IVL_REGION_HUGETLB (1u << 3)  /* MEMFD: MFD_HUGETLB */
#define IVL_REGION_NO_RESIZE (1u << 4) /* existing object: keep its size;
					* -EINVAL if it differs from size */

struct ivl_region_opts {
	enum ivl_region_kind kind;
	const char *name; /* shm name, path, directory, or memfd label */
	uint64_t size;    /* bytes; a power of two unless ROUND_UP */
	unsigned flags;
	mode_t mode; /* for created objects; 0 means 0600 */
};

/*
 * Create or open a region and map it whole.  Sizes beyond 1 GiB and up to
 * 2^40 are fine; memory is allocated lazily (sparse).  CREATE and EXCL
 * apply to SHM and FILE; MEMFD and DIR always make a new object.  An
 * existing object of another size is resized to @size unless NO_RESIZE.
 * A created object is removed again if a later step fails.
 * Errors: -EINVAL (NULL @out or @opts, unknown kind, missing name, an SHM
 * name with an inner '/', size 0 or > 2^40, not a power of two without
 * ROUND_UP, NO_RESIZE and another size), -EEXIST (EXCL), -ENOENT (no
 * CREATE and missing), -EACCES, -ENAMETOOLONG, -ENOMEM / -ENOSPC (the
 * object could not be sized), -EFBIG (size beyond the address space),
 * other -errno of open/shm_open/memfd_create/ftruncate/mmap.
 * On success *out (the caller's, free with ivl_region_free()) owns the fd
 * and the mapping; on error *out is NULL.
 */
int ivl_region_open(struct ivl_region **out, const struct ivl_region_opts *opts);

/*
 * Wrap an fd received from a peer (or anywhere): fstat() gives the size,
 * which must be a nonzero power of two no larger than 2^40, then map it
 * read/write.  Takes ownership of @fd in all cases (closed on error).
 * Errors: -EINVAL (NULL @out; size 0, not a power of two or > 2^40),
 * -EBADF (@fd < 0), -ENOMEM, -EFBIG, -errno of fstat/mmap.
 */
int ivl_region_from_fd(struct ivl_region **out, int fd);

/* The mapping (valid until ivl_region_free()) and its size in bytes. */
void *ivl_region_base(const struct ivl_region *r);
uint64_t ivl_region_size(const struct ivl_region *r);
/* Returns the region's fd, still owned by the region (do not close it). */
int ivl_region_fd(const struct ivl_region *r);
/* A short description, e.g. "shm:/ivshmem" or "memfd:demo"; a string
 * inside the region, valid until ivl_region_free(). */
const char *ivl_region_describe(const struct ivl_region *r);

/*
 * Shrink safety.  Our memfds are sealed (F_SEAL_SHRINK | F_SEAL_GROW |
 * F_SEAL_SEAL): nobody can change their size.  A POSIX shm object, a file or
 * a received fd that is not sealed can be shrunk by any process that may
 * open it; an access beyond its new end would raise SIGBUS.  Such mappings
 * are guarded: the library installs a SIGBUS handler (once per process; a
 * SIGBUS outside a guarded mapping goes to the handler installed before it,
 * or kills the process as usual) that replaces the lost pages with private
 * zero pages, so the access completes and the process lives on.
 *
 * ivl_region_check() returns 0 while the region is intact, -EIO once pages
 * of it were lost to a shrink (they read as zeros and writes to them reach
 * nobody; the loss is final for this mapping), -EINVAL for NULL.
 * ivl_region_sealed() returns 1 if the object's size is sealed (against
 * both shrinking and growing), else 0, and -EINVAL for NULL.
 * Returns: as said above, no other errors.
 * Both are async-signal-safe and may be called from any thread.
 */
int ivl_region_check(const struct ivl_region *r);
int ivl_region_sealed(const struct ivl_region *r);

/* Remove the region's name from the file system (shm_unlink / unlink) if
 * this handle created the object (an object that already existed keeps its
 * name; so does a second call); the mapping stays valid.  Returns 0 (also
 * for NULL and when there is nothing to remove), or -errno of
 * shm_unlink()/unlink() (the name is forgotten either way). */
int ivl_region_unlink(struct ivl_region *r);

/* Unmap and close.  NULL is a no-op. */
void ivl_region_free(struct ivl_region *r);

#ifdef __cplusplus
}
#endif
#endif
