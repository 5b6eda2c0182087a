/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * What virtio_sdm believes of its device (docs/guest-sdm.md): the checks on
 * a signal the device delivered on hg_vq and on the result it wrote for a
 * send on gh_vq.  Pure functions of the bytes and the used length, with no
 * kernel state, so that tests/fuzz/fuzz_vsdm.c compiles this very code in
 * userspace; the includer provides u32, s32, le32_to_cpu(), MAX_ERRNO and
 * EIO (the kernel's own, or the harness's).
 */
#ifndef VIRTIO_SDM_WIRE_H
#define VIRTIO_SDM_WIRE_H

#include <ivlink/proto/transport.h>

/* The SDM library's numbers as the wire carries them (<ivlink/sdm.h> is
 * userspace's; the values are docs/sdm.md §1's). */
#define IVL_SDM_NTYPES_WIRE 3u
#define IVL_SDM_BOOT_WIRE 1u
#define IVL_SDM_RESET_WIRE 2u
#define IVL_SDM_MAX_SLAVES_WIRE 1024
#define VSDM_FROM_UNKNOWN 0xffffffffu	/* a 16-byte delivery on a master */

/* A received signal, checked, host order. */
struct vsdm_rec {
	u32 type, slave, payload[2], from;
};

/*
 * A delivered signal: @len is the used length the device wrote (untrusted),
 * @b the whole 20-byte buffer (only its first @len bytes are the device's
 * answer).  16 bytes are the seed's record without `from`; 20 carry it.
 * On a master: slave 0, from 1..1024 (or unknown with 16 bytes); on a
 * slave: from 0 (the master), slave 1..1024.  True: *@r holds the signal;
 * false: drop it (*@r holds what was read, for the log).
 */
static inline bool vsdm_rx_parse(const struct ivl_transport_sdm_rx *b, unsigned int len,
				 bool master, struct vsdm_rec *r)
{
	r->type = le32_to_cpu(b->sig.type);
	r->slave = le32_to_cpu(b->sig.slave);
	r->payload[0] = le32_to_cpu(b->sig.payload[0]);
	r->payload[1] = le32_to_cpu(b->sig.payload[1]);
	r->from = 0;
	if (len == sizeof(*b))
		r->from = le32_to_cpu(b->from);
	else if (len == sizeof(b->sig))
		r->from = master ? VSDM_FROM_UNKNOWN : 0;
	else
		return false;
	if (r->type >= IVL_SDM_NTYPES_WIRE)
		return false;
	if (master)
		return r->slave == 0 && (r->from == VSDM_FROM_UNKNOWN ||
					 (r->from >= 1 && r->from <= IVL_SDM_MAX_SLAVES_WIRE));
	return r->from == 0 && r->slave >= 1 && r->slave <= IVL_SDM_MAX_SLAVES_WIRE;
}

/* A send's result: 0, the count of slaves a broadcast reached, or -errno,
 * into *@r.  False, and *@r = -EIO: a used length short of it or any other
 * value. */
static inline bool vsdm_result_parse(__le32 result, unsigned int len, int *r)
{
	s32 v = (s32)le32_to_cpu(result);

	*r = -EIO;
	if (len < IVL_TRANSPORT_SDM_RESULT_LEN || v > IVL_SDM_MAX_SLAVES_WIRE || v < -MAX_ERRNO)
		return false;
	*r = v;
	return true;
}

#endif
