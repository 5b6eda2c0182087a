/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * What virtio_ivlink believes of the bytes others write (docs/guest-virtio.md):
 * the region's header and where it puts the management area, a transport
 * command's answer (used length, ack, ERR), a device's info (QUERY, CREATE),
 * a LIST answer, and the `create` line written to sysfs.  Pure functions of
 * their arguments, with no kernel state, so that tests/fuzz/fuzz_kvirtio.c
 * compiles this very code in userspace.  The includer provides u8, u16,
 * u32, u64, bool, le16/32/64_to_cpu(), cpu_to_le32/64(),
 * get_unaligned_le32/64(), memcpy(), memset(), strcmp(), strlen(),
 * strsep(), strscpy(), kstrtou32() and the errno values used (the kernel's
 * own, or the harness's).
 */
#ifndef VIRTIO_IVLINK_WIRE_H
#define VIRTIO_IVLINK_WIRE_H

#include <ivlink/proto/shm.h>
#include <ivlink/proto/transport.h>

/* The command buffer (IVL_TRANSPORT_CMDBUF_SIZE): the command, then the
 * answer's half from VIVL_IN_OFF. */
#define VIVL_IN_OFF 4096u	/* answer half of the command buffer */
#define VIVL_IN_MAX (IVL_TRANSPORT_CMDBUF_SIZE - VIVL_IN_OFF)

/* ---- the region's header ------------------------------------------------------ */

/* Where the management area is, from a checked header (region offsets). */
struct vivl_layout {
	u32 max_peers;		/* peer table entries, inside the header */
	u64 header_size;	/* the app area starts here */
	u64 mgmt_off, mgmt_size; /* the management area: the rest of the region */
};

/*
 * @h: a copy of the region's header; @state: its state word, read (acquire)
 * before the copy was taken; @region_size: the mapped size (at least
 * sizeof(*@h)); @area: the management area's offset in the app area (the
 * module parameter).  0 and *@l filled; -EAGAIN: not formatted (yet);
 * -ENODEV: the header is not valid (docs/protocol.md §2); -ERANGE: @area is
 * not 8-aligned or leaves less than IVL_TRANSPORT_AREA_MIN bytes of the app
 * area (l->max_peers and l->header_size are filled).
 */
static inline int vivl_header_check(const struct ivl_shm_header *h, u32 state, u64 region_size,
				    u64 area, struct vivl_layout *l)
{
	u64 hsize = le32_to_cpu(h->header_size), app;
	u32 max_peers = le32_to_cpu(h->max_peers);

	if (le64_to_cpu(h->magic) != IVL_SHM_MAGIC || state != IVL_SHM_READY)
		return -EAGAIN;
	if (le32_to_cpu(h->version) != IVL_SHM_VERSION ||
	    le64_to_cpu(h->region_size) > region_size ||
	    le32_to_cpu(h->peer_table_offset) != IVL_SHM_PEER_TABLE_OFFSET ||
	    le32_to_cpu(h->peer_entry_size) != sizeof(struct ivl_shm_peer) ||
	    max_peers == 0 || max_peers > 65536 || hsize % IVL_SHM_PAGE ||
	    hsize < ivl_shm_header_size(max_peers) || hsize > region_size)
		return -ENODEV;
	l->max_peers = max_peers;
	l->header_size = hsize;
	app = region_size - hsize;
	if (area % 8 || area > app || app - area < IVL_TRANSPORT_AREA_MIN)
		return -ERANGE;
	l->mgmt_off = hsize + area;
	l->mgmt_size = app - area;
	return 0;
}

/* ---- a command's answer --------------------------------------------------------- */

/* The used length the device wrote: an answer of 4 (the ack) up to
 * VIVL_IN_MAX bytes.  Checked before anything is copied. */
static inline bool vivl_used_len_ok(u32 len)
{
	return len >= 4 && len <= VIVL_IN_MAX;
}

/*
 * An answer copied out of shared memory: @ans, @len bytes (vivl_used_len_ok).
 * OK: the length of in[] (after the 4-byte ack); ERR: exactly 8 bytes,
 * -EREMOTEIO with the reason in *@reason (when not NULL); anything else
 * -EPROTO.
 */
static inline int vivl_answer_parse(const u8 *ans, u32 len, u32 *reason)
{
	u32 ack = get_unaligned_le32(ans);

	if (ack == IVL_TRANSPORT_ERR) {
		if (len != 8)
			return -EPROTO;
		if (reason)
			*reason = get_unaligned_le32(ans + 4);
		return -EREMOTEIO;
	}
	if (ack != IVL_TRANSPORT_OK)
		return -EPROTO;
	return len - 4;
}

/* ---- managed devices ------------------------------------------------------------- */

/* A managed device as QUERY/CREATE describe it (checked). */
struct vivl_info {
	u64 id, window_offset, window_size;
	u32 virtio_id, status, flags;
	u16 num_queues, msi_vectors, driver_peer;
	char backend[64];
};

/* Decode and check an ivl_transport_info: a device ID, the window inside
 * the @mgmt_size-byte area after the transport's own, at most
 * IVL_TRANSPORT_MAX_QUEUES queues.  0 or -EPROTO. */
static inline int vivl_info_parse(const struct ivl_transport_info *w, u64 mgmt_size,
				  struct vivl_info *i)
{
	i->id = le64_to_cpu(w->device_id);
	i->virtio_id = le32_to_cpu(w->virtio_id);
	i->status = le32_to_cpu(w->status);
	i->window_offset = le64_to_cpu(w->window_offset);
	i->window_size = le64_to_cpu(w->window_size);
	i->num_queues = le16_to_cpu(w->num_queues);
	i->msi_vectors = le16_to_cpu(w->msi_vectors);
	i->flags = le32_to_cpu(w->flags);
	i->driver_peer = le16_to_cpu(w->driver_peer);
	memcpy(i->backend, w->backend, sizeof(i->backend));
	i->backend[sizeof(i->backend) - 1] = '\0';
	if (i->id == 0 || i->window_offset < IVL_TRANSPORT_WINDOWS_OFF ||
	    i->window_offset > mgmt_size ||
	    i->window_size > mgmt_size - i->window_offset ||
	    i->num_queues > IVL_TRANSPORT_MAX_QUEUES)
		return -EPROTO;
	return 0;
}

/*
 * LIST's in[] (@in, @len bytes, after the ack): a count, a reserved word,
 * then whole entries, no more than count (≤ IVL_TRANSPORT_MAX_DEVICES).
 * Up to @max IDs into @ids; how many, or -EPROTO.
 */
static inline int vivl_list_parse(const u8 *in, int len, u64 *ids, unsigned int max)
{
	const unsigned int esz = sizeof(struct ivl_transport_list_entry);
	unsigned int count, have, k;

	if (len < 8 || (len - 8) % esz)
		return -EPROTO;
	count = get_unaligned_le32(in);
	have = (len - 8) / esz;
	if (count > IVL_TRANSPORT_MAX_DEVICES || have > count)
		return -EPROTO;
	for (k = 0; k < have && k < max; k++)
		ids[k] = get_unaligned_le64(in + 8 + k * esz);
	return have < max ? have : max;
}

/* ---- the create line ------------------------------------------------------------ */

/*
 * Device types a guest can create from sysfs: `echo "TYPE [NAME] [ARG...]"
 * > create`.  For a type with a backend name (has_name), the first word is
 * CREATE's backend argument (docs/transport.md §3), which the device host
 * looks up in its own configuration.  Argument k fills create.param[k]: a
 * word of kw[k] (its index) when kw[k] is set, else a decimal number;
 * missing arguments are 0.
 */
struct vivl_ctype {
	const char *name;
	u32 virtio_id;
	u64 window; /* rings and bounce buffers */
	bool has_name;
	const char *const *kw[3];
};

/* A CREATE command's out part: the struct and the backend argument. */
struct vivl_create {
	struct ivl_transport_create c;
	char arg[IVL_TRANSPORT_CREATE_ARG_MAX];
	size_t len; /* bytes to send */
};
static_assert(offsetof(struct vivl_create, arg) == sizeof(struct ivl_transport_create),
	      "the argument follows the struct");

/* Parse "TYPE [NAME] [ARG...]" (@buf, @count bytes) into @cr against the
 * @ntypes types of @types: the type's index, or -EINVAL. */
static inline int vivl_create_parse(const struct vivl_ctype *types, unsigned int ntypes,
				    const char *buf, size_t count, struct vivl_create *cr)
{
	struct ivl_transport_create *c = &cr->c;
	char line[64], *p = line, *w;
	const struct vivl_ctype *t;
	unsigned int k, n, nparam = sizeof(c->param) / sizeof(c->param[0]);
	int idx = -1;
	u32 val;

	if (count >= sizeof(line))
		return -EINVAL;
	memcpy(line, buf, count);
	line[count] = 0;
	w = strsep(&p, " \t\n");
	for (k = 0; w && k < ntypes; k++)
		if (!strcmp(w, types[k].name))
			idx = k;
	if (idx < 0)
		return -EINVAL;
	t = &types[idx];
	memset(cr, 0, sizeof(*cr));
	c->virtio_id = cpu_to_le32(t->virtio_id);
	c->window_size = cpu_to_le64(t->window);
	cr->len = sizeof(*c);
	if (t->has_name) {
		do
			w = strsep(&p, " \t\n");
		while (w && !*w);
		if (!w || strscpy(cr->arg, w, sizeof(cr->arg)) < 0)
			return -EINVAL;
		cr->len += strlen(cr->arg) + 1;
	}
	n = 0;
	while ((w = strsep(&p, " \t\n"))) {
		if (!*w)
			continue;
		if (n == nparam)
			return -EINVAL;
		if (t->kw[n]) {
			for (val = 0; t->kw[n][val] && strcmp(w, t->kw[n][val]); val++)
				;
			if (!t->kw[n][val])
				return -EINVAL;
		} else if (kstrtou32(w, 10, &val)) {
			return -EINVAL;
		}
		c->param[n++] = cpu_to_le32(val);
	}
	return idx;
}

#endif
