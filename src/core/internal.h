/* SPDX-License-Identifier: MIT */
/* Internal helpers shared by every layer: export marker, logging, misc. */
#ifndef IVL_CORE_INTERNAL_H
#define IVL_CORE_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ivlink/log.h>
#include <ivlink/region.h>

/* Public functions are defined with IVL_EXPORT; everything else is hidden. */
#define IVL_EXPORT __attribute__((visibility("default")))

#define IVL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* printf-like logging through the installed callback; cheap when off. */
/* 1 if @v is a nonzero power of two. */
int ivl__is_pow2(uint64_t v);

void ivl__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ivl__err(...) ivl__log(IVL_LOG_ERR, __VA_ARGS__)
#define ivl__warn(...) ivl__log(IVL_LOG_WARNING, __VA_ARGS__)
#define ivl__notice(...) ivl__log(IVL_LOG_NOTICE, __VA_ARGS__)
#define ivl__info(...) ivl__log(IVL_LOG_INFO, __VA_ARGS__)
#define ivl__debug(...) ivl__log(IVL_LOG_DEBUG, __VA_ARGS__)

/* @bytes of zeroed memory on whole 64-byte cache lines of its own (free()
 * it), or NULL: for objects that threads on two CPUs write, so that
 * neighbours on the heap share no line with them. */
static inline void *ivl__zalloc_lines(size_t bytes)
{
	size_t n = ((bytes ? bytes : 1) + 63) & ~(size_t)63;
	void *p = aligned_alloc(64, n);

	if (p)
		memset(p, 0, n);
	return p;
}

/* close() that keeps errno and ignores fd < 0; returns -1 for "fd = ...". */
static inline int ivl__close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return -1;
}

/* The spin-wait hint of the CPU (pause/yield). */
static inline void ivl__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

/* Copy a NUL-padded name of IVL_NAME_LEN bytes into @dst (len+1 bytes),
 * replacing non-printable bytes with '?': names come from peers. */
void ivl__sanitize_name(char *dst, const char *src, size_t len);

/* guard.c: keep a SIGBUS in a mapping of an object that a peer can shrink
 * from killing the process.  add() returns a slot (>= 0) or -errno; lost()
 * tells whether pages of the mapping were replaced by zero pages after a
 * shrink; del() before munmap(). */
int ivl__guard_add(void *base, size_t size);
bool ivl__guard_lost(int slot);
void ivl__guard_del(int slot);

/* region.c: liveness from locks.  A running ivlink-server holds an OFD
 * write lock on the region (and on "<socket>.lock") for its whole life.
 * lock_fd() takes it without waiting: 0, -EADDRINUSE (held by another open
 * file description), -errno.  fd_locked() tells whether anyone holds it:
 * 1, 0, or -errno. */
int ivl__lock_fd(int fd);
int ivl__fd_locked(int fd);

/* region.c, for the server's live upgrade: the name a region removes on
 * ivl_region_unlink() (NULL: none) and its kind; and a region rebuilt from
 * an inherited @fd (ownership taken, closed on error) that keeps that name
 * and description. */
const char *ivl__region_unlink_name(const struct ivl_region *r, enum ivl_region_kind *kind);
void ivl__region_forget_name(struct ivl_region *r);
int ivl__region_adopt(struct ivl_region **out, int fd, enum ivl_region_kind kind,
		      const char *unlink_name, const char *desc);

#endif
