/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

struct log_sink {
	ivl_log_fn *fn;
	void *opaque;
	int max_level;
};

/* Replaced whole, so a concurrent reader sees an old or a new sink, never a
 * mix: the pointer store (release) pairs with the load (acquire) in
 * ivl__log().  Old sinks are kept (two slots alternate) because a reader may
 * still hold one; ivl_log_set() is documented as a set-up call. */
static struct log_sink sinks[2];
static _Atomic(struct log_sink *) current;
static int next_slot;

IVL_EXPORT void ivl_log_set(ivl_log_fn *fn, void *opaque, int max_level)
{
	struct log_sink *s = &sinks[next_slot];

	next_slot ^= 1;
	s->fn = fn;
	s->opaque = opaque;
	s->max_level = max_level;
	atomic_store_explicit(&current, fn ? s : NULL, memory_order_release);
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
	struct log_sink *s = atomic_load_explicit(&current, memory_order_acquire);
	char buf[512];
	va_list ap;
	int saved = errno;

	if (!s || level > s->max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->fn(s->opaque, level, buf);
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
