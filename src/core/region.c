/* SPDX-License-Identifier: MIT */
/*
 * Shared-memory regions.  QEMU maps the region as a PCI BAR, which must be a
 * power of two: a region of any other size would make QEMU abort, so it is
 * refused here (or rounded up when the caller asks).
 */
#include <ctype.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <ivlink/region.h>

#include "core/internal.h"

#define REGION_MAX_SIZE (1ull << 40)

struct ivl_region {
	int fd;
	void *base;
	uint64_t size;
	enum ivl_region_kind kind;
	char *unlink_name; /* shm name or path we may unlink, or NULL */
	int guard;	   /* guard.c slot if the object can shrink, or -1 */
	char desc[256];
};

int ivl__is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static uint64_t round_pow2(uint64_t v)
{
	uint64_t p = 1;

	while (p < v && p < REGION_MAX_SIZE)
		p <<= 1;
	return p;
}

static int check_size(uint64_t *size, unsigned flags)
{
	if (*size == 0 || *size > REGION_MAX_SIZE) {
		ivl__err("region size %llu out of range (1 byte .. 1 TiB)",
			 (unsigned long long)*size);
		return -EINVAL;
	}
	if (!ivl__is_pow2(*size)) {
		if (!(flags & IVL_REGION_ROUND_UP)) {
			ivl__err("region size %llu is not a power of two (QEMU would abort)",
				 (unsigned long long)*size);
			return -EINVAL;
		}
		*size = round_pow2(*size);
	}
	return 0;
}

static int map_region(struct ivl_region *r)
{
	void *p;
	int seals;

	if (r->size > SIZE_MAX)
		return -EFBIG;
	p = mmap(NULL, (size_t)r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	r->base = p;
	/* Sealed against shrinking (our memfds): no SIGBUS possible.  Else a
	 * peer may ftruncate() the object under us: guard the mapping. */
	seals = fcntl(r->fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK))
		r->guard = ivl__guard_add(p, (size_t)r->size);
	return 0;
}

/* A memfd of ours: its size is final, and nobody may change that or undo
 * the seals (F_SEAL_SEAL).  A memfd made without MFD_ALLOW_SEALING (old
 * kernels) stays unsealed and is guarded like a shm object. */
static void seal_memfd(struct ivl_region *r)
{
	if (fcntl(r->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		ivl__debug("cannot seal %s: %s", r->desc, strerror(errno));
}

/* Give the object its size: grow/shrink a fresh one, check an existing one. */
static int size_object(struct ivl_region *r, bool created, unsigned flags)
{
	struct stat st;

	if (fstat(r->fd, &st) < 0)
		return -errno;
	if (!created && (flags & IVL_REGION_NO_RESIZE)) {
		if ((uint64_t)st.st_size != r->size) {
			ivl__err("%s has size %lld, expected %llu", r->desc, (long long)st.st_size,
				 (unsigned long long)r->size);
			return -EINVAL;
		}
		return 0;
	}
	if ((uint64_t)st.st_size == r->size)
		return 0;
	if (ftruncate(r->fd, (off_t)r->size) < 0) {
		int err = -errno;
		ivl__err("cannot size %s to %llu bytes: %s", r->desc,
			 (unsigned long long)r->size, strerror(-err));
		return err;
	}
	return 0;
}

static int open_object(struct ivl_region *r, const struct ivl_region_opts *o, bool *created)
{
	mode_t mode = o->mode ? o->mode : 0600;
	int oflags = O_RDWR | O_CLOEXEC;
	char *name = NULL;

	*created = false;
	if (o->flags & IVL_REGION_CREATE)
		oflags |= O_CREAT;
	if (o->flags & IVL_REGION_EXCL)
		oflags |= O_EXCL;

	switch (o->kind) {
	case IVL_REGION_SHM:
		/* shm_open wants "/name" with no further slash. */
		if (!o->name || !*o->name || strchr(o->name + (o->name[0] == '/'), '/'))
			return -EINVAL;
		if (strlen(o->name) >= NAME_MAX)
			return -ENAMETOOLONG;
		if (asprintf(&name, "/%s", o->name + (o->name[0] == '/')) < 0)
			return -ENOMEM;
		snprintf(r->desc, sizeof(r->desc), "shm:%.240s", name);
		if (o->flags & IVL_REGION_CREATE) {
			/* Try exclusive first so we know whether we created it. */
			r->fd = shm_open(name, oflags | O_EXCL, mode);
			if (r->fd >= 0)
				*created = true;
			else if (errno == EEXIST && !(o->flags & IVL_REGION_EXCL))
				r->fd = shm_open(name, oflags & ~O_CREAT, mode);
		} else {
			r->fd = shm_open(name, oflags, mode);
		}
		break;
	case IVL_REGION_FILE:
		if (!o->name || !*o->name)
			return -EINVAL;
		if (strlen(o->name) >= PATH_MAX)
			return -ENAMETOOLONG;
		snprintf(r->desc, sizeof(r->desc), "file:%.240s", o->name);
		if (!(name = strdup(o->name)))
			return -ENOMEM;
		if (o->flags & IVL_REGION_CREATE) {
			r->fd = open(name, oflags | O_EXCL, mode);
			if (r->fd >= 0)
				*created = true;
			else if (errno == EEXIST && !(o->flags & IVL_REGION_EXCL))
				r->fd = open(name, oflags & ~O_CREAT);
		} else {
			r->fd = open(name, oflags);
		}
		break;
	case IVL_REGION_DIR:
		/* QEMU's -m: an unnamed file in that directory (hugetlbfs). */
		if (!o->name || !*o->name)
			return -EINVAL;
		snprintf(r->desc, sizeof(r->desc), "dir:%.240s", o->name);
		r->fd = open(o->name, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
		if (r->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR)) {
			/* hugetlbfs lacks O_TMPFILE: mkstemp + unlink. */
			if (asprintf(&name, "%s/ivlink.XXXXXX", o->name) < 0)
				return -ENOMEM;
			r->fd = mkostemp(name, O_CLOEXEC);
			if (r->fd >= 0)
				unlink(name);
			free(name);
			name = NULL;
		}
		*created = r->fd >= 0;
		break;
	case IVL_REGION_MEMFD:
		snprintf(r->desc, sizeof(r->desc), "memfd:%.64s", o->name ? o->name : "ivlink");
		r->fd = memfd_create(o->name ? o->name : "ivlink",
				     MFD_CLOEXEC | MFD_ALLOW_SEALING |
				     ((o->flags & IVL_REGION_HUGETLB) ? MFD_HUGETLB : 0));
		if (r->fd < 0 && errno == EINVAL && (o->flags & IVL_REGION_HUGETLB) == 0)
			r->fd = memfd_create("ivlink", MFD_CLOEXEC);
		*created = r->fd >= 0;
		break;
	default:
		return -EINVAL;
	}
	if (r->fd < 0) {
		int err = -errno;
		ivl__err("cannot open %s: %s", r->desc, strerror(-err));
		free(name);
		return err;
	}
	if (*created)
		r->unlink_name = name;
	else
		free(name);
	return 0;
}

IVL_EXPORT int ivl_region_open(struct ivl_region **out, const struct ivl_region_opts *o)
{
	struct ivl_region *r;
	bool created = false;
	int ret;

	if (!out || !o)
		return -EINVAL;
	*out = NULL;
	if (!(r = calloc(1, sizeof(*r))))
		return -ENOMEM;
	r->fd = -1;
	r->guard = -1;
	r->kind = o->kind;
	r->size = o->size;
	ret = check_size(&r->size, o->flags);
	if (ret < 0)
		goto fail;
	ret = open_object(r, o, &created);
	if (ret < 0)
		goto fail;
	ret = size_object(r, created, o->flags);
	if (ret < 0)
		goto fail;
	if (o->kind == IVL_REGION_MEMFD)
		seal_memfd(r);
	ret = map_region(r);
	if (ret < 0) {
		ivl__err("cannot map %s (%llu bytes): %s", r->desc,
			 (unsigned long long)r->size, strerror(-ret));
		goto fail;
	}
	*out = r;
	return 0;
fail:
	if (created)
		ivl_region_unlink(r);
	ivl_region_free(r);
	return ret;
}

IVL_EXPORT int ivl_region_from_fd(struct ivl_region **out, int fd)
{
	struct ivl_region *r;
	struct stat st;
	int ret;

	if (!out) {
		ivl__close(fd);
		return -EINVAL;
	}
	*out = NULL;
	if (fd < 0)
		return -EBADF;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		ivl__close(fd);
		return ret;
	}
	if (st.st_size <= 0 || !ivl__is_pow2((uint64_t)st.st_size) ||
	    (uint64_t)st.st_size > REGION_MAX_SIZE) {
		ivl__err("shared-memory fd has size %lld: not a power of two in 1 .. 1 TiB",
			 (long long)st.st_size);
		ivl__close(fd);
		return -EINVAL;
	}
	if (!(r = calloc(1, sizeof(*r)))) {
		ivl__close(fd);
		return -ENOMEM;
	}
	r->fd = fd;
	r->guard = -1;
	r->size = (uint64_t)st.st_size;
	snprintf(r->desc, sizeof(r->desc), "fd:%d", fd);
	ret = map_region(r);
	if (ret < 0) {
		ivl__err("cannot map received region (%llu bytes): %s",
			 (unsigned long long)r->size, strerror(-ret));
		ivl_region_free(r);
		return ret;
	}
	*out = r;
	return 0;
}

const char *ivl__region_unlink_name(const struct ivl_region *r, enum ivl_region_kind *kind)
{
	*kind = r->kind;
	return r->unlink_name;
}

void ivl__region_forget_name(struct ivl_region *r)
{
	free(r->unlink_name);
	r->unlink_name = NULL;
}

int ivl__region_adopt(struct ivl_region **out, int fd, enum ivl_region_kind kind,
		      const char *unlink_name, const char *desc)
{
	struct ivl_region *r;
	int ret = ivl_region_from_fd(&r, fd);

	if (ret < 0)
		return ret;
	r->kind = kind;
	if (unlink_name && !(r->unlink_name = strdup(unlink_name))) {
		ivl_region_free(r);
		return -ENOMEM;
	}
	if (desc && *desc)
		snprintf(r->desc, sizeof(r->desc), "%s", desc);
	*out = r;
	return 0;
}

IVL_EXPORT void *ivl_region_base(const struct ivl_region *r)
{
	return r ? r->base : NULL;
}

IVL_EXPORT uint64_t ivl_region_size(const struct ivl_region *r)
{
	return r ? r->size : 0;
}

IVL_EXPORT int ivl_region_fd(const struct ivl_region *r)
{
	return r ? r->fd : -EINVAL;
}

IVL_EXPORT const char *ivl_region_describe(const struct ivl_region *r)
{
	return r ? r->desc : "";
}

int ivl__lock_fd(int fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	return errno == EACCES || errno == EAGAIN ? -EADDRINUSE : -errno;
}

int ivl__fd_locked(int fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	return fl.l_type != F_UNLCK;
}

IVL_EXPORT int ivl_region_check(const struct ivl_region *r)
{
	if (!r)
		return -EINVAL;
	return ivl__guard_lost(r->guard) ? -EIO : 0;
}

IVL_EXPORT int ivl_region_sealed(const struct ivl_region *r)
{
	int seals;

	if (!r)
		return -EINVAL;
	seals = fcntl(r->fd, F_GET_SEALS);
	return seals >= 0 && (seals & F_SEAL_SHRINK) && (seals & F_SEAL_GROW);
}

IVL_EXPORT int ivl_region_unlink(struct ivl_region *r)
{
	int ret = 0;

	if (!r || !r->unlink_name)
		return 0;
	if (r->kind == IVL_REGION_SHM)
		ret = shm_unlink(r->unlink_name);
	else
		ret = unlink(r->unlink_name);
	ret = ret < 0 ? -errno : 0;
	free(r->unlink_name);
	r->unlink_name = NULL;
	return ret;
}

IVL_EXPORT void ivl_region_free(struct ivl_region *r)
{
	if (!r)
		return;
	if (r->base) {
		ivl__guard_del(r->guard);
		munmap(r->base, (size_t)r->size);
	}
	ivl__close(r->fd);
	free(r->unlink_name);
	free(r);
}
