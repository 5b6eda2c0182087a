/* SPDX-License-Identifier: MIT */
/* Helpers the programs share (tools/, bench/ and their tests); not part of
 * libivlink's ABI. */
#ifndef IVL_TOOLS_UTIL_H
#define IVL_TOOLS_UTIL_H

#include <stdint.h>

/* Parse "4M", "1G", "65536", "8GiB", "0x1000" (K/M/G/T are binary
 * multiples, with an optional "iB" or "B").  Returns 0 and *out, or
 * -EINVAL (not a size) / -ERANGE (beyond 2^64 - 1). */
int tool_parse_size(const char *s, uint64_t *out);

/* Raise RLIMIT_NOFILE's soft limit to the hard limit (or to fs.nr_open when
 * the hard limit is unlimited).  Returns the new soft limit or -errno. */
long tool_raise_nofile(void);

/* 1 if @v is a nonzero power of two. */
static inline int tool_is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

#endif
