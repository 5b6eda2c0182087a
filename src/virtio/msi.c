/* SPDX-License-Identifier: MIT */
/*
 * MSI vectors and the event->vector map (seed 004, the virtio-mmio MSI
 * proposal v2; docs/virtio.md).  A vector is (address, data, masked, pending); ivlink
 * reads address as the destination peer and data as its doorbell vector,
 * but this table only stores and delivers them through a callback.
 *
 * Unlike the proposal, a masked vector never loses an event: it records
 * pending, and UNMASK delivers it once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include <ivlink/mmio.h>
#include <ivlink/msi.h>
#include <ivlink/virtq.h>

#define MAX_VECTORS 2048u

struct ivl_msi {
	unsigned nvec;
	unsigned nqueues;
	bool sharing;
	bool enabled;
	ivl_msi_deliver_fn *deliver;
	void *opaque;
	uint32_t config_vec; /* the map (non-sharing: fixed or NO_VECTOR) */
	uint32_t *queue_vec; /* the map, nqueues entries */
	struct ivl_msi_vector *vec;
};

/* The fixed vector of an event in non-sharing mode: config 0, queue q
 * q + 1 (ivl_msi_new() guarantees nvec > nqueues). */
static uint32_t fixed_vec(bool config, unsigned queue)
{
	return config ? 0 : queue + 1;
}

static void clear_maps(struct ivl_msi *m)
{
	m->config_vec = m->sharing ? IVL_MSI_NO_VECTOR : fixed_vec(true, 0);
	for (unsigned i = 0; i < m->nqueues; i++)
		m->queue_vec[i] = m->sharing ? IVL_MSI_NO_VECTOR : fixed_vec(false, i);
}

IVL_EXPORT int ivl_msi_new(struct ivl_msi **out, unsigned nvec, unsigned nqueues, bool sharing,
			   ivl_msi_deliver_fn *deliver, void *opaque)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (nvec == 0 || nvec > MAX_VECTORS || nqueues > 65536)
		return -EINVAL;
	/* Seed 004's vector counts: one per event without sharing, at least
	 * two with it. */
	if (sharing ? nvec < 2 : nvec <= nqueues)
		return -EINVAL;
	struct ivl_msi *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->nvec = nvec;
	m->nqueues = nqueues;
	m->sharing = sharing;
	m->deliver = deliver;
	m->opaque = opaque;
	m->vec = calloc(nvec, sizeof(*m->vec));
	m->queue_vec = calloc(nqueues ? nqueues : 1, sizeof(*m->queue_vec));
	if (!m->vec || !m->queue_vec) {
		ivl_msi_free(m);
		return -ENOMEM;
	}
	clear_maps(m);
	*out = m;
	return 0;
}

IVL_EXPORT void ivl_msi_free(struct ivl_msi *m)
{
	if (!m)
		return;
	free(m->vec);
	free(m->queue_vec);
	free(m);
}

IVL_EXPORT unsigned ivl_msi_num(const struct ivl_msi *m)
{
	return m ? m->nvec : 0;
}

IVL_EXPORT bool ivl_msi_sharing(const struct ivl_msi *m)
{
	return m && m->sharing;
}

IVL_EXPORT bool ivl_msi_enabled(const struct ivl_msi *m)
{
	return m && m->enabled;
}

IVL_EXPORT void ivl_msi_enable(struct ivl_msi *m)
{
	if (m)
		m->enabled = true;
}

IVL_EXPORT void ivl_msi_disable(struct ivl_msi *m)
{
	if (m)
		m->enabled = false;
}

IVL_EXPORT void ivl_msi_reset(struct ivl_msi *m)
{
	if (!m)
		return;
	m->enabled = false;
	memset(m->vec, 0, m->nvec * sizeof(*m->vec));
	clear_maps(m);
}

IVL_EXPORT int ivl_msi_configure(struct ivl_msi *m, uint32_t vector, uint64_t address,
				 uint32_t data)
{
	if (!m || vector >= m->nvec)
		return -EINVAL;
	m->vec[vector].address = address;
	m->vec[vector].data = data;
	return 0;
}

IVL_EXPORT int ivl_msi_mask(struct ivl_msi *m, uint32_t vector)
{
	if (!m || vector >= m->nvec)
		return -EINVAL;
	m->vec[vector].masked = true;
	return 0;
}

static int deliver(struct ivl_msi *m, uint32_t vector)
{
	struct ivl_msi_vector *v = &m->vec[vector];
	if (m->deliver) {
		int r = m->deliver(m->opaque, vector, v->address, v->data);
		if (r < 0) {
			v->pending = true; /* retried by the next raise or unmask */
			return r;
		}
	}
	v->pending = false;
	return 1;
}

IVL_EXPORT int ivl_msi_unmask(struct ivl_msi *m, uint32_t vector)
{
	if (!m || vector >= m->nvec)
		return -EINVAL;
	m->vec[vector].masked = false;
	if (m->vec[vector].pending && m->enabled)
		return deliver(m, vector);
	return 0;
}

IVL_EXPORT int ivl_msi_get(const struct ivl_msi *m, uint32_t vector, struct ivl_msi_vector *out)
{
	if (!m || !out || vector >= m->nvec)
		return -EINVAL;
	*out = m->vec[vector];
	return 0;
}

/* Sharing: any vector.  Non-sharing: NO_VECTOR, or the fixed one back. */
static int map_check(const struct ivl_msi *m, uint32_t vector, uint32_t fixed)
{
	if (vector != IVL_MSI_NO_VECTOR && vector >= m->nvec)
		return -EINVAL;
	if (!m->sharing && vector != IVL_MSI_NO_VECTOR && vector != fixed)
		return -EPERM;
	return 0;
}

IVL_EXPORT int ivl_msi_map_config(struct ivl_msi *m, uint32_t vector)
{
	if (!m)
		return -EINVAL;
	int r = map_check(m, vector, fixed_vec(true, 0));
	if (r == 0)
		m->config_vec = vector;
	return r;
}

IVL_EXPORT int ivl_msi_map_queue(struct ivl_msi *m, unsigned queue, uint32_t vector)
{
	if (!m || queue >= m->nqueues)
		return -EINVAL;
	int r = map_check(m, vector, fixed_vec(false, queue));
	if (r == 0)
		m->queue_vec[queue] = vector;
	return r;
}

IVL_EXPORT uint32_t ivl_msi_config_vector(const struct ivl_msi *m)
{
	return m ? m->config_vec : IVL_MSI_NO_VECTOR;
}

IVL_EXPORT uint32_t ivl_msi_queue_vector(const struct ivl_msi *m, unsigned queue)
{
	if (!m || queue >= m->nqueues)
		return IVL_MSI_NO_VECTOR;
	return m->queue_vec[queue];
}

static int raise_vec(struct ivl_msi *m, uint32_t vector)
{
	if (!m->enabled)
		return -EAGAIN;
	if (vector == IVL_MSI_NO_VECTOR || vector >= m->nvec)
		return -ENOENT;
	if (m->vec[vector].masked) {
		m->vec[vector].pending = true;
		return 0;
	}
	return deliver(m, vector);
}

IVL_EXPORT int ivl_msi_raise_config(struct ivl_msi *m)
{
	if (!m)
		return -EINVAL;
	return raise_vec(m, ivl_msi_config_vector(m));
}

IVL_EXPORT int ivl_msi_raise_queue(struct ivl_msi *m, unsigned queue)
{
	if (!m || queue >= m->nqueues)
		return -EINVAL;
	return raise_vec(m, ivl_msi_queue_vector(m, queue));
}
