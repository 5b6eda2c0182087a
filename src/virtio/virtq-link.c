/* SPDX-License-Identifier: MIT */
/*
 * Where virtio meets a link: a virtqueue notification and an MSI message are
 * both doorbells (docs/virtio.md §1, §3).  Kept apart so the ring, MSI and
 * mmio code have no link dependency (the fuzz harnesses build them alone).
 */
#include <errno.h>

#include "core/internal.h"
#include <ivlink/link.h>
#include <ivlink/mmio.h>
#include <ivlink/msi.h>
#include <ivlink/virtq.h>

IVL_EXPORT int ivl_virtq_notify_link(struct ivl_virtq *q, struct ivl_link *link, uint16_t peer,
				     uint16_t vector)
{
	if (!link)
		return -EINVAL;
	int r = ivl_virtq_need_notify(q);
	if (r <= 0)
		return r;
	r = ivl_link_ring(link, peer, vector);
	return r < 0 ? r : 1;
}

IVL_EXPORT int ivl_msi_link_deliver(void *opaque, uint32_t vector, uint64_t address, uint32_t data)
{
	if (!opaque || address > UINT16_MAX || data > UINT16_MAX)
		return -EINVAL;
	return ivl_link_ring(opaque, (uint16_t)address, (uint16_t)data);
}
