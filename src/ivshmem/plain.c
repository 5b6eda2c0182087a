/* SPDX-License-Identifier: MIT */
/*
 * Serverless mode (include/ivlink/plain.h, docs/plain.md): peers that share
 * only a memory object agree on who formats the ivlink header by claiming
 * its magic word with one compare-and-swap, 0 -> IVL_SHM_CLAIM(pid).
 *
 * Why the magic word: ivl_shm_format() rewrites every header byte after the
 * magic and stores IVL_SHM_MAGIC last but one (state READY is last), so the
 * claim stays visible until the header is complete and a zero object, no
 * matter who created it, has exactly one winner.  The object's contents are
 * hostile: every look at the header goes through ivl_shm_validate() on a
 * copy, and the only raw read is the magic word itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>
#include <ivlink/plain.h>

#include "core/internal.h"

#define REGION_MAX_SIZE (1ull << 40)
#define NAP_US 1000

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(void)
{
	struct timespec ts = {.tv_nsec = NAP_US * 1000L};

	nanosleep(&ts, NULL);
}

static int64_t deadline_of(const struct ivl_plain_opts *o)
{
	int t = o && o->timeout_ms ? o->timeout_ms : IVL_PLAIN_DEFAULT_TIMEOUT_MS;

	return t < 0 ? INT64_MAX : now_ms() + t;
}

static uint32_t peers_of(const struct ivl_plain_opts *o)
{
	return o && o->max_peers ? o->max_peers : IVL_PLAIN_DEFAULT_PEERS;
}

/* The magic word as a 64-bit atomic (proto.h asserts lock-free 64-bit
 * atomics); the field itself is plain because the server writes it so. */
static _Atomic uint64_t *magic_word(void *base)
{
	return (_Atomic uint64_t *)base;
}

/* A region this small could never hold a header and one page of app area. */
static int check_size(uint64_t size, uint32_t max_peers, const char *what)
{
	uint64_t need = ivl_shm_header_size(max_peers) + IVL_SHM_PAGE;

	if (!ivl__is_pow2(size) || size > REGION_MAX_SIZE || size < need) {
		ivl__err("plain: %s has %llu bytes: need a power of two of %llu .. 2^40", what,
			 (unsigned long long)size, (unsigned long long)need);
		return -EINVAL;
	}
	return 0;
}

/* Zero the application area of an object we did not just create.  With an
 * fd, punching a hole zeroes without committing memory; otherwise (a guest's
 * BAR, a file system without hole punching) write the zeros. */
static void zero_app(void *base, uint64_t size, uint64_t off, int fd)
{
	if (fd >= 0 && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
				 (off_t)(size - off)) == 0)
		return;
	memset((char *)base + off, 0, (size_t)(size - off));
}

/* We hold the claim: zero, format, publish.  The claim word stays in place
 * until ivl_shm_format() stores the magic; state READY (release) is last. */
static int format_claimed(void *base, uint64_t size, uint32_t max_peers, int fd, bool fresh)
{
	struct timespec ts;
	uint64_t epoch;
	int r;

	if (!fresh)
		zero_app(base, size, ivl_shm_header_size(max_peers), fd);
	clock_gettime(CLOCK_REALTIME, &ts);
	epoch = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	r = ivl_shm_format(base, size, max_peers, 1, epoch, IVL_FEAT_NAMES | IVL_FEAT_PLAIN);
	if (r < 0) {
		/* Give the claim back so that the others do not wait in vain:
		 * only possible before the magic was written, which is the
		 * only way format fails (argument checks). */
		atomic_store_explicit(magic_word(base), 0, memory_order_release);
		return r;
	}
	return 0;
}

/* A header that fails validation with -EPROTO: say why in terms of sizes
 * when that is the reason (the commonest mismatch between peers). */
static int explain_invalid(const void *base, uint64_t size)
{
	uint64_t recorded;
	uint32_t version;

	/* Torn or hostile values only change the message. */
	memcpy(&recorded, (const char *)base + offsetof(struct ivl_shm_header, region_size),
	       sizeof(recorded));
	memcpy(&version, (const char *)base + offsetof(struct ivl_shm_header, version),
	       sizeof(version));
	if (version == IVL_SHM_VERSION && recorded != size) {
		ivl__err("plain: the header records a region of %llu bytes but the object has "
			 "%llu",
			 (unsigned long long)recorded, (unsigned long long)size);
		return -EINVAL;
	}
	ivl__err("plain: the object holds an invalid ivlink header");
	return -EPROTO;
}

static int attach(void *base, uint64_t size, const struct ivl_plain_opts *o,
		  struct ivl_shm_header *hdr, int fd, bool fresh)
{
	uint32_t max_peers = peers_of(o);
	int64_t deadline = deadline_of(o);
	uint64_t magic = 0;
	int r;

	if (!base || ((uintptr_t)base % 8) != 0 || max_peers > IVL_MAX_PEER_ID + 1u)
		return -EINVAL;
	r = check_size(size, max_peers, "the region");
	if (r < 0)
		return r;
	for (;;) {
		uint64_t zero = 0;

		r = ivl_shm_validate(base, size, hdr);
		if (r == 0)
			return 0;
		/* A formatter stores the magic before the other fields and
		 * state READY last: while state says FORMATTING, a layout that
		 * does not check out yet is work in progress, not an error. */
		if (r == -EPROTO &&
		    __atomic_load_n(&((struct ivl_shm_header *)base)->state, __ATOMIC_ACQUIRE) != IVL_SHM_FORMATTING) {
			/* It may have become READY since the first look:
			 * judge a copy taken after that. */
			r = ivl_shm_validate(base, size, hdr);
			if (r == 0)
				return 0;
			if (r == -EPROTO)
				return explain_invalid(base, size);
		}
		if (r == -EPROTO)
			r = -EAGAIN;
		if (r == -ESHUTDOWN) {
			ivl__err("plain: the header is marked closed by the server that owned it");
			return r;
		}
		if (r != -EAGAIN && r != -ENOENT)
			return r;
		/* Acquire pairs with the release of a claim given back by a
		 * failed format_claimed(); only the value steers us here. */
		magic = atomic_load_explicit(magic_word(base), memory_order_acquire);
		if (magic == 0) {
			/* acq_rel: a successful claim orders our formatting
			 * after it; a failed one re-reads the winner's word. */
			if (atomic_compare_exchange_strong_explicit(
				magic_word(base), &zero, IVL_SHM_CLAIM((uint32_t)getpid()),
				memory_order_acq_rel, memory_order_acquire)) {
				r = format_claimed(base, size, max_peers, fd, fresh);
				if (r < 0)
					return r;
				r = ivl_shm_validate(base, size, hdr);
				return r < 0 ? r : IVL_PLAIN_FORMATTED;
			}
			continue;
		}
		if (magic != IVL_SHM_MAGIC && !IVL_SHM_IS_CLAIM(magic)) {
			ivl__err("plain: the object is neither zero nor an ivlink region (magic "
				 "0x%016llx)",
				 (unsigned long long)magic);
			return -EPROTO;
		}
		if (now_ms() >= deadline)
			break;
		nap();
	}
	if (IVL_SHM_IS_CLAIM(magic))
		ivl__err("plain: the header was claimed by pid %u but never became ready (a "
			 "crashed formatter? remove the object and start again)",
			 (unsigned)(uint32_t)magic);
	else
		ivl__err("plain: the header is still being formatted");
	return -ETIMEDOUT;
}

IVL_EXPORT int ivl_plain_attach(void *base, uint64_t size, const struct ivl_plain_opts *opts,
				struct ivl_shm_header *hdr)
{
	if (opts && opts->timeout_ms < -1)
		return -EINVAL;
	return attach(base, size, opts, hdr, -1, false);
}

/* ---- the object ---------------------------------------------------------- */

static int open_object(const struct ivl_plain_opts *o, char *desc, size_t dlen, bool *created)
{
	mode_t mode = o->mode ? o->mode : 0600;
	int fl = O_RDWR | O_CLOEXEC, fd;
	char shm[NAME_MAX + 2];

	*created = false;
	if (!o->name || !*o->name)
		return -EINVAL;
	if (o->kind == IVL_REGION_SHM) {
		const char *n = o->name + (o->name[0] == '/');

		if (!*n || strchr(n, '/'))
			return -EINVAL;
		if (strlen(n) >= NAME_MAX)
			return -ENAMETOOLONG;
		snprintf(shm, sizeof(shm), "/%s", n);
		snprintf(desc, dlen, "shm:%s", shm);
	} else if (o->kind == IVL_REGION_FILE) {
		if (strlen(o->name) >= PATH_MAX)
			return -ENAMETOOLONG;
		snprintf(desc, dlen, "file:%s", o->name);
	} else {
		return -EINVAL;
	}
	for (int tries = 0; tries < 100; tries++) {
		bool excl = o->size && !(o->flags & IVL_PLAIN_NO_CREATE);
		int f = fl | (excl ? O_CREAT | O_EXCL : 0);

		fd = o->kind == IVL_REGION_SHM ? shm_open(shm, f, mode) : open(o->name, f, mode);
		if (fd >= 0) {
			*created = excl;
			return fd;
		}
		if (!excl || errno != EEXIST)
			break;
		/* It exists: open it.  If it vanished in between, try again. */
		fd = o->kind == IVL_REGION_SHM ? shm_open(shm, fl, 0) : open(o->name, fl);
		if (fd >= 0)
			return fd;
		if (errno != ENOENT)
			break;
	}
	fd = -errno;
	ivl__err("plain: cannot open %s: %s", desc, strerror(-fd));
	return fd;
}

/* The object's size, once its creator has set it. */
static int object_size(int fd, const struct ivl_plain_opts *o, const char *desc, uint64_t *size)
{
	int64_t deadline = deadline_of(o);
	struct stat st;

	for (;;) {
		if (fstat(fd, &st) < 0)
			return -errno;
		if (st.st_size != 0)
			break;
		if (now_ms() >= deadline) {
			ivl__err("plain: %s stayed empty (size 0): its creator never sized it",
				 desc);
			return -ETIMEDOUT;
		}
		nap();
	}
	*size = (uint64_t)st.st_size;
	if (o->size && *size != o->size) {
		ivl__err("plain: %s has %llu bytes, asked for %llu", desc,
			 (unsigned long long)*size, (unsigned long long)o->size);
		return -EINVAL;
	}
	return 0;
}

IVL_EXPORT int ivl_plain_open(struct ivl_region **out, const struct ivl_plain_opts *opts,
			      struct ivl_shm_header *hdr)
{
	struct ivl_region *r = NULL;
	char desc[PATH_MAX + 8];
	bool created = false;
	uint64_t size = 0;
	int fd, ret;

	if (!out || !opts || opts->timeout_ms < -1)
		return -EINVAL;
	*out = NULL;
	if (opts->max_peers > IVL_MAX_PEER_ID + 1u)
		return -EINVAL;
	if (opts->size && check_size(opts->size, peers_of(opts), "the requested size") < 0)
		return -EINVAL;
	fd = open_object(opts, desc, sizeof(desc), &created);
	if (fd < 0)
		return fd;
	if (created && ftruncate(fd, (off_t)opts->size) < 0) {
		ret = -errno;
		ivl__err("plain: cannot size %s to %llu bytes: %s", desc,
			 (unsigned long long)opts->size, strerror(-ret));
		/* Nobody can use an empty object: take the name back. */
		if (opts->kind == IVL_REGION_SHM)
			shm_unlink(desc + strlen("shm:"));
		else
			unlink(opts->name);
		goto fail;
	}
	ret = object_size(fd, opts, desc, &size);
	if (ret < 0)
		goto fail;
	ret = check_size(size, peers_of(opts), desc);
	if (ret < 0)
		goto fail;
	/* from_fd maps exactly fstat's size, which we just checked. */
	ret = ivl_region_from_fd(&r, fd);
	fd = -1;
	if (ret < 0)
		goto fail;
	if (ivl_region_size(r) != size) {
		ivl__err("plain: %s changed size while being opened", desc);
		ret = -EINVAL;
		goto fail;
	}
	/* A freshly sized object reads as zeros (ftruncate), so the creator
	 * need not zero it; anybody else does. */
	ret = attach(ivl_region_base(r), size, opts, hdr, ivl_region_fd(r), created);
	if (ret < 0)
		goto fail;
	ivl__debug("plain: %s, %llu bytes%s%s", desc, (unsigned long long)size,
		   created ? ", created" : "", ret & IVL_PLAIN_FORMATTED ? ", formatted" : "");
	*out = r;
	return ret | (created ? IVL_PLAIN_CREATED : 0);
fail:
	ivl__close(fd);
	ivl_region_free(r);
	return ret;
}
