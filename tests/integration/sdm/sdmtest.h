/* SPDX-License-Identifier: MIT */
/* What the in-process SDM tests share: a recorder of delivered signals and
 * actions, and a bounded pump of a master and its slaves. */
#ifndef IVL_SDMTEST_H
#define IVL_SDMTEST_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "testutil.h"
#include "sdm/sdm-internal.h"

struct rec {
	unsigned n[IVL_SDM_NTYPES];
	struct ivl_sdm_signal last;
	uint16_t from;
	unsigned actions;
};

/* Handler: count and remember the signal (opaque: a struct rec). */
static inline void on_sig(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, uint16_t from,
			  void *op)
{
	struct rec *r = op;

	(void)s;
	r->n[sig->type]++;
	r->last = *sig;
	r->from = from;
}

/* BOOT/RESET action: count it and let the signal through. */
static inline int on_action(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, uint16_t from,
			    void *op)
{
	(void)s, (void)sig, (void)from;
	((struct rec *)op)->actions++;
	return 0;
}

/* Wait up to @ms for any of the instances' fds, then process them all.
 * Slots of @slaves may be NULL. */
static inline void sdm_pump(struct ivl_sdm *master, struct ivl_sdm **slaves, size_t n, int ms)
{
	struct pollfd p[16];
	nfds_t k = 0;

	p[k++] = (struct pollfd){ .fd = ivl_sdm_get_fd(master), .events = POLLIN };
	for (size_t i = 0; i < n && k < 16; i++)
		if (slaves[i])
			p[k++] = (struct pollfd){ .fd = ivl_sdm_get_fd(slaves[i]), .events = POLLIN };
	poll(p, k, ms);
	ivl_sdm_process(master);
	for (size_t i = 0; i < n; i++)
		if (slaves[i])
			ivl_sdm_process(slaves[i]);
}

/* Pump until cond or 5 s; evaluates to cond. */
#define PUMP_UNTIL(w, cond)                                                                        \
	({                                                                                         \
		int64_t end_ = tu_now_ms() + 5000;                                                 \
		while (!(cond) && tu_now_ms() < end_)                                              \
			pump_once(w);                                                              \
		(cond);                                                                            \
	})

#endif
