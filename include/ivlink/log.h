/* SPDX-License-Identifier: MIT */
/*
 * ivlink logging: the library never writes to stderr or syslog itself.  It
 * reports through one process-wide callback, with syslog(3) priorities.
 */
#ifndef IVLINK_LOG_H
#define IVLINK_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

/* Priorities, numerically equal to syslog's LOG_ERR .. LOG_DEBUG. */
enum {
	IVL_LOG_ERR = 3,
	IVL_LOG_WARNING = 4,
	IVL_LOG_NOTICE = 5,
	IVL_LOG_INFO = 6,
	IVL_LOG_DEBUG = 7,
};

/* @msg is a NUL-terminated line without trailing newline (at most 511
 * bytes: longer messages are truncated), valid only during the call.  The
 * callback may run on any thread that calls into the library, concurrently
 * with itself. */
typedef void ivl_log_fn(void *opaque, int level, const char *msg);

/*
 * Install @fn (NULL: discard everything, the default) for messages of
 * priority @max_level or more urgent.  @opaque is borrowed and handed to
 * every call of @fn.  Thread safety: call it before other
 * threads use the library, or accept that a concurrent message may still go
 * to the previous callback.
 */
void ivl_log_set(ivl_log_fn *fn, void *opaque, int max_level);

/* A ready-made callback that writes "<N>msg\n" (sd-daemon prefix) to stderr
 * when @opaque is NULL, or "prefix: msg\n" when @opaque is a string
 * (borrowed: it must outlive the installation).  Any thread (stdio locks
 * the stream). */
void ivl_log_stderr(void *opaque, int level, const char *msg);

#ifdef __cplusplus
}
#endif
#endif
