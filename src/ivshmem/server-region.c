/* SPDX-License-Identifier: MIT */
/*
 * The server's shared memory: creating it, telling a stale object (left by
 * a server that died) from one in use, and formatting the ivlink header
 * (PROTOCOLS.md §4).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

	if (ro->kind == IVL_REGION_SHM) {
		if (asprintf(name, "/%s", n + (n[0] == '/')) < 0)
			return -ENOMEM;
		return shm_open(*name, O_RDONLY | O_CLOEXEC, 0);
	}
	if (!(*name = strdup(n)))
		return -ENOMEM;
	return open(n, O_RDONLY | O_CLOEXEC);
}

/*
 * An existing object: stale if it carries an ivlink header of a server that
 * has stopped (CLOSED) or whose process is gone.  Returns 1 (stale), 0 (in
 * use or not ours to judge), or -errno (-ENOENT: it does not exist).
 */
static int probe_existing(const struct ivl_region_opts *ro, char **name, pid_t *owner)
{
	struct ivl_shm_header h;
	struct stat st;
	void *p;
	int fd, ret, guard;

	*owner = 0;
	fd = open_name(ro, name);
	if (fd < 0) {
		ret = fd == -ENOMEM ? fd : -errno;
		free(*name);
		*name = NULL;
		return ret;
	}
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)IVL_SHM_PAGE * 2) {
		ivl__close(fd);
		return 0;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	ivl__close(fd);
	if (p == MAP_FAILED)
		return 0;
	/* Whoever has it open may shrink it while we look. */
	guard = ivl__guard_add(p, (size_t)st.st_size);
	ret = ivl_shm_validate(p, (uint64_t)st.st_size, &h);
	if (ret == 0 || ret == -ESHUTDOWN)
		*owner = (pid_t)((const struct ivl_shm_header *)p)->server_pid;
	ivl__guard_del(guard);
	munmap(p, (size_t)st.st_size);
	if (ret == -ESHUTDOWN)
		return 1;
	if (ret < 0)
		return 0;
	if (*owner <= 0 || (kill(*owner, 0) < 0 && errno == ESRCH))
		return 1;
	return 0;
}

int ivl__server_open_region(struct ivl_server *s, const struct ivl_server_opts *o)
{
	struct ivl_region_opts ro = o->region;
	char *name = NULL;
	pid_t owner;
	bool stale;
	int ret;

	if (ro.kind != IVL_REGION_SHM && ro.kind != IVL_REGION_FILE)
		return ivl_region_open(&s->region, &ro);
	if (!ro.name || !*ro.name)
		return -EINVAL;
	ret = probe_existing(&ro, &name, &owner);
	if (ret == -ENOENT) {
		ro.flags |= IVL_REGION_CREATE | IVL_REGION_EXCL;
		return ivl_region_open(&s->region, &ro);
	}
	if (ret < 0) {
		ivl__err("cannot open %s: %s", ro.name, strerror(-ret));
		return ret;
	}
	stale = ret == 1;
	if (stale) {
		ivl__notice("%s is left over from a server that stopped (pid %ld): reusing it",
			    ro.name, (long)owner);
		ro.flags &= ~(IVL_REGION_CREATE | IVL_REGION_EXCL | IVL_REGION_NO_RESIZE);
	} else if (o->force) {
		ivl__warn("%s exists; reusing it as forced", ro.name);
		/* Its current users may have it mapped: never resize it. */
		ro.flags &= ~(IVL_REGION_CREATE | IVL_REGION_EXCL);
		ro.flags |= IVL_REGION_NO_RESIZE;
	} else {
		if (owner > 0)
			ivl__err("%s is in use by a running server (pid %ld)", ro.name,
				 (long)owner);
		else
			ivl__err("%s already exists (not made by a running ivlink-server?); "
				 "remove it or force its reuse",
				 ro.name);
		free(name);
		return -EEXIST;
	}
	ret = ivl_region_open(&s->region, &ro);
	if (ret < 0) {
		free(name);
		return ret;
	}
	s->reused_name = name;
	s->reused_kind = ro.kind;
	s->reused_forced = !stale;
	return 0;
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
