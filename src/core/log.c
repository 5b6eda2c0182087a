/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

/*
 * One sink behind a sequence lock: ivl_log_set() (serialized by a mutex)
 * makes the count odd, stores the fields, makes it even again; ivl__log()
 * copies the fields and retries when the count was odd or moved, so a
 * callback is always called with the opaque pointer and level it was
 * installed with, never a mix of two ivl_log_set() calls.  The fields are
 * atomics (relaxed) so that the copy racing with a store is defined.
 */
static struct {
	_Atomic(ivl_log_fn *) fn;
	_Atomic(void *) opaque;
	_Atomic int max_level;
} sink;
static _Atomic unsigned sink_seq;
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;

IVL_EXPORT void ivl_log_set(ivl_log_fn *fn, void *opaque, int max_level)
{
	unsigned seq;

	pthread_mutex_lock(&sink_lock);
	seq = atomic_load_explicit(&sink_seq, memory_order_relaxed);
	atomic_store_explicit(&sink_seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&sink.fn, fn, memory_order_relaxed);
	atomic_store_explicit(&sink.opaque, opaque, memory_order_relaxed);
	atomic_store_explicit(&sink.max_level, max_level, memory_order_relaxed);
	atomic_store_explicit(&sink_seq, seq + 2, memory_order_release);
	pthread_mutex_unlock(&sink_lock);
}

IVL_EXPORT void ivl_log_stderr(void *opaque, int level, const char *msg)
{
	if (opaque)
		fprintf(stderr, "%s: %s\n", (const char *)opaque, msg);
	else
		fprintf(stderr, "<%d>%s\n", level, msg);
}

void ivl__log(int level, const char *fmt, ...)
{
	ivl_log_fn *fn;
	void *opaque;
	int max_level, saved = errno;
	unsigned seq;
	char buf[512];
	va_list ap;

	for (;;) {
		seq = atomic_load_explicit(&sink_seq, memory_order_acquire);
		fn = atomic_load_explicit(&sink.fn, memory_order_relaxed);
		opaque = atomic_load_explicit(&sink.opaque, memory_order_relaxed);
		max_level = atomic_load_explicit(&sink.max_level, memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		if (!(seq & 1) && atomic_load_explicit(&sink_seq, memory_order_relaxed) == seq)
			break;
		ivl__cpu_relax();
	}
	if (!fn || level > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fn(opaque, level, buf);
	errno = saved;
}

void ivl__sanitize_name(char *dst, const char *src, size_t len)
{
	size_t i;

	for (i = 0; i < len && src[i]; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
}
