/* SPDX-License-Identifier: MIT */
/*
 * The server's shared memory: creating it, telling a stale object (left by
 * a server that died) from one in use, and formatting the ivlink header
 * (PROTOCOLS.md §4).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "ivshmem/server-internal.h"

static int open_name(const struct ivl_region_opts *ro, char **name)
{
	const char *n = ro->name;
	int fd;

	if (ro->kind == IVL_REGION_SHM) {
		if (asprintf(name, "/%s", n + (n[0] == '/')) < 0)
			return -ENOMEM;
		fd = shm_open(*name, O_RDWR | O_CLOEXEC, 0);
	} else {
		if (!(*name = strdup(n)))
			return -ENOMEM;
		fd = open(n, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	}
	return fd < 0 ? -errno : fd;
}

/*
 * An existing object: who holds it is told by its lock, never by its bytes
 * (any peer can write those).  Opens it and tries to take the lock a
 * running server holds for its whole life.  Returns the locked fd (the
 * object is free: stale if it is ours), -EADDRINUSE (a running server holds
 * it), or -errno (-ENOENT: it does not exist).  *@ours tells whether it
 * carries an ivlink header: that identifies the object as ours, it does not
 * say whether it is alive.  An object being created by another server has
 * no header until that server holds the lock and formats it.
 */
static int probe_existing(const struct ivl_region_opts *ro, char **name, bool *ours,
			  off_t *size)
{
	uint64_t magic = 0;
	struct stat st;
	int fd, ret;

	*ours = false;
	fd = open_name(ro, name);
	if (fd < 0) {
		free(*name);
		*name = NULL;
		return fd;
	}
	ret = ivl__lock_fd(fd);
	if (ret < 0 || fstat(fd, &st) < 0) {
		ret = ret < 0 ? ret : -errno;
		ivl__close(fd);
		return ret;
	}
	*size = st.st_size;
	/* pread, not a mapping: a peer may shrink it while we look. */
	if (pread(fd, &magic, sizeof(magic), 0) == (ssize_t)sizeof(magic))
		*ours = magic == IVL_SHM_MAGIC;
	return fd;
}

int ivl__server_open_region(struct ivl_server *s, const struct ivl_server_opts *o)
{
	struct ivl_region_opts ro = o->region;
	struct stat a, b;
	char *name = NULL;
	off_t size = 0;
	bool ours;
	int ret, fd;

	if (ro.kind != IVL_REGION_SHM && ro.kind != IVL_REGION_FILE)
		return ivl_region_open(&s->region, &ro);
	if (!ro.name || !*ro.name)
		return -EINVAL;
	fd = probe_existing(&ro, &name, &ours, &size);
	if (fd == -ENOENT) {
		ro.flags |= IVL_REGION_CREATE | IVL_REGION_EXCL;
		return ivl_region_open(&s->region, &ro);
	}
	if (fd == -EADDRINUSE) {
		ivl__err("%s is in use by a running server (it holds its lock)", ro.name);
		free(name);
		return -EEXIST;
	}
	if (fd < 0) {
		ivl__err("cannot open %s: %s", ro.name, strerror(-fd));
		free(name);
		return fd;
	}
	if (ours) {
		ivl__notice("%s is left over from a server that stopped: reusing it", ro.name);
		ro.flags &= ~(IVL_REGION_CREATE | IVL_REGION_EXCL | IVL_REGION_NO_RESIZE);
	} else if (o->force) {
		ivl__warn("%s exists; reusing it as forced", ro.name);
		/* Its current users may have it mapped: never resize it,
		 * unless it is empty (a shrunk leftover nobody can use). */
		ro.flags &= ~(IVL_REGION_CREATE | IVL_REGION_EXCL);
		if (size)
			ro.flags |= IVL_REGION_NO_RESIZE;
	} else {
		ivl__err("%s already exists (%lld bytes, no ivlink header, no server holds it); "
			 "remove it or force its reuse",
			 ro.name, (long long)size);
		ivl__close(fd);
		free(name);
		return -EEXIST;
	}
	ret = ivl_region_open(&s->region, &ro);
	if (ret == 0 && (fstat(fd, &a) < 0 || fstat(ivl_region_fd(s->region), &b) < 0 ||
			 a.st_dev != b.st_dev || a.st_ino != b.st_ino)) {
		ivl__err("%s was replaced while the server started", ro.name);
		ret = -EAGAIN;
	}
	if (ret < 0) {
		ivl__close(fd);
		free(name);
		return ret;
	}
	s->region_lock = fd;
	s->nfds++;
	s->reused_name = name;
	s->reused_kind = ro.kind;
	s->reused_forced = !ours;
	return 0;
}

/* Hold the region's lock for the server's life, on an open file description
 * of its own (the fd passed to peers shares its description with them, and
 * a lock on it would outlive the server in every QEMU that keeps it). */
int ivl__server_lock_region(struct ivl_server *s)
{
	char path[64];
	int fd, ret;

	if (s->region_lock >= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", ivl_region_fd(s->region));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		ivl__err("cannot reopen %s to lock it: %s", ivl_region_describe(s->region),
			 strerror(-ret));
		return ret;
	}
	/* We just created it.  Another server probing it holds the lock for
	 * the few system calls of its probe (then refuses it: no header yet):
	 * wait that out, briefly. */
	for (int i = 0; (ret = ivl__lock_fd(fd)) == -EADDRINUSE && i < 100; i++)
		usleep(1000);
	if (ret < 0) {
		ivl__err("%s: %s", ivl_region_describe(s->region),
			 ret == -EADDRINUSE ? "locked by another server" : strerror(-ret));
		ivl__close(fd);
		return ret == -EADDRINUSE ? -EEXIST : ret;
	}
	s->region_lock = fd;
	s->nfds++;
	return 0;
}

void ivl__server_zero(struct ivl_server *s)
{
	uint64_t size = ivl_region_size(s->region);

	/* Punching a hole zeroes without shrinking (whoever still maps it
	 * sees zeros, no SIGBUS) and gives the memory back, so a sparse
	 * region stays sparse.  tmpfs, hugetlbfs and most file systems do
	 * it; elsewhere write the zeros. */
	if (fallocate(ivl_region_fd(s->region), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
		      (off_t)size) == 0) {
		ivl__info("%s: zeroed (--keep-data keeps it)", ivl_region_describe(s->region));
		return;
	}
	ivl__debug("cannot punch a hole in %s (%s): writing zeros",
		   ivl_region_describe(s->region), strerror(errno));
	memset(ivl_region_base(s->region), 0, (size_t)size);
	ivl__info("%s: zeroed (--keep-data keeps it)", ivl_region_describe(s->region));
}

int ivl__server_format(struct ivl_server *s)
{
	void *base = ivl_region_base(s->region);
	uint64_t size = ivl_region_size(s->region);
	uint64_t epoch;
	int ret;

	if (getrandom(&epoch, sizeof(epoch), GRND_NONBLOCK) != sizeof(epoch)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		epoch =
		    ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 48);
	}
	ret = ivl_shm_format(base, size, s->max_peers, s->vectors, epoch,
			     IVL_FEAT_HELLO | IVL_FEAT_NAMES);
	if (ret < 0) {
		ivl__err("cannot format %s for %u peers: %s", ivl_region_describe(s->region),
			 s->max_peers, ret == -ENOSPC ? "region too small" : strerror(-ret));
		return ret;
	}
	ret = ivl_shm_validate(base, size, &s->valid);
	if (ret < 0) {
		ivl__err("the freshly formatted header does not validate: %s", strerror(-ret));
		return ret;
	}
	return 0;
}
