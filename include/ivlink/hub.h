/* SPDX-License-Identifier: MIT */
/*
 * The local link backend: a hub of links inside one process, on a memfd
 * region, for tests and simulations.  Links made here behave as host links
 * (<ivlink/link.h>).
 *
 * Thread safety: the hub and its links may be used from different threads
 * (each link by one thread at a time, as <ivlink/link.h> says); join and
 * free serialize on an internal lock.  A hub is reference-counted by its
 * links: its memory lives until the last of them is freed.
 */
#ifndef IVLINK_HUB_H
#define IVLINK_HUB_H

#include <stdint.h>

#include <ivlink/link.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ivl_hub;

/* A memfd region of @size bytes (power of two), formatted with an ivlink
 * header for @max_peers peers of @vectors vectors each.  Returns 0 with
 * *out the caller's (ivl_hub_free()).  Errors: -EINVAL (NULL @out,
 * max_peers 0 or > 65536, vectors 0 or > 64, a bad size), -ENOSPC (@size
 * leaves no page after the header), -ENOMEM, the errors of
 * ivl_region_open(). */
int ivl_hub_new(struct ivl_hub **out, uint64_t size, unsigned max_peers,
		      unsigned vectors);
/* A new peer on the hub (lowest free ID), named @name (copied; may be
 * NULL).  Other links see IVL_LINK_JOIN; freeing the link makes them see
 * IVL_LINK_LEAVE.  Returns 0 with *out the caller's (ivl_link_free()).
 * Errors: -EINVAL (NULL argument), -ENOSPC (every ID taken), -ENOMEM,
 * -errno of eventfd/epoll (-EMFILE ...). */
int ivl_hub_join(struct ivl_hub *hub, const char *name, struct ivl_link **out);
/* Free the hub: every remaining link sees IVL_LINK_DOWN.  The links must
 * still be freed by their owners.  NULL is a no-op. */
void ivl_hub_free(struct ivl_hub *hub);

#ifdef __cplusplus
}
#endif
#endif
