/* SPDX-License-Identifier: MIT */
/*
 * SDM frame codec (docs/sdm.md §2-§3): a 4-byte header {u8 type, u8 flags,
 * le16 length} and a payload whose length is fixed (or bounded) per type.
 * Everything here parses bytes a remote end controls.
 */
#include <errno.h>
#include <string.h>

#include "core/internal.h"
#include "sdm-internal.h"

/* Exact (or, for SEALED, bounded) payload length of each type; a length
 * outside the rule is malformed, so a peer cannot make us buffer more than
 * IVL_SDM_MAX_FRAME bytes. */
static bool length_ok(uint8_t type, size_t len)
{
	switch (type) {
	case IVL_SDM_F_HELLO:
		return len == IVL_SDM_HELLO_LEN;
	case IVL_SDM_F_WELCOME:
		return len == IVL_SDM_WELCOME_LEN;
	case IVL_SDM_F_REFUSE:
		return len == IVL_SDM_REFUSE_LEN;
	case IVL_SDM_F_SIGNAL:
		return len == IVL_SDM_SIGNAL_LEN;
	case IVL_SDM_F_PING:
		return len == 0;
	case IVL_SDM_F_KX_HELLO:
		return len == IVL_SDM_KX_HELLO_LEN;
	case IVL_SDM_F_KX_REPLY:
		return len == IVL_SDM_KX_REPLY_LEN;
	case IVL_SDM_F_KX_AUTH:
		return len == IVL_SDM_KX_AUTH_LEN;
	case IVL_SDM_F_SEALED:
		return len >= IVL_SDM_SEAL_OVERHEAD + IVL_SDM_HDR_LEN && len <= IVL_SDM_MAX_SEALED;
	case IVL_SDM_F_SEALED_BATCH:
		return len >= IVL_SDM_SEAL_OVERHEAD + IVL_SDM_HDR_LEN &&
		       len <= IVL_SDM_MAX_BATCH_SEALED;
	default:
		return false;
	}
}

int ivl__sdm_frame_encode(uint8_t *out, size_t room, uint8_t type, const void *payload, size_t len)
{
	if (len > UINT16_MAX || room < IVL_SDM_HDR_LEN || len > room - IVL_SDM_HDR_LEN)
		return -EMSGSIZE;
	memcpy(out, &(struct ivl_sdm_frame_hdr){.type = type, .len = (__le16)len},
	       sizeof(struct ivl_sdm_frame_hdr));
	if (len)
		memcpy(out + IVL_SDM_HDR_LEN, payload, len);
	return (int)(IVL_SDM_HDR_LEN + len);
}

int ivl__sdm_frame_decode(const uint8_t *buf, size_t len, struct ivl__sdm_frame *f)
{
	struct ivl_sdm_frame_hdr h;

	if (len < IVL_SDM_HDR_LEN)
		return 0;
	memcpy(&h, buf, sizeof(h));
	/* Judge the header before waiting for the payload: a bad length must
	 * not make us wait for bytes that will never make sense. */
	if (h.flags != 0 || !length_ok(h.type, h.len))
		return -EBADMSG;
	if (len - IVL_SDM_HDR_LEN < h.len)
		return 0;
	f->type = h.type;
	f->len = h.len;
	f->payload = buf + IVL_SDM_HDR_LEN;
	return (int)(IVL_SDM_HDR_LEN + h.len);
}

int ivl__sdm_batch_next(const uint8_t *buf, size_t len, size_t *off, struct ivl__sdm_frame *f)
{
	int n;

	if (*off > len)
		return -EBADMSG;
	if (*off == len)
		return *off ? 0 : -EBADMSG;
	/* Every frame of the batch is whole: a partial one is malformed, not
	 * "more bytes needed". */
	n = ivl__sdm_frame_decode(buf + *off, len - *off, f);
	if (n <= 0 || f->type == IVL_SDM_F_SEALED || f->type == IVL_SDM_F_SEALED_BATCH)
		return -EBADMSG;
	*off += (size_t)n;
	return 1;
}

/* The payloads are copied through their wire structures (ivlink is
 * little-endian only: the fields are read and written in place). */
void ivl__sdm_signal_encode(uint8_t out[IVL_SDM_SIGNAL_LEN], const struct ivl_sdm_signal *s)
{
	ivl__sdm_signal_to_wire(out, s);
}

int ivl__sdm_signal_decode(const struct ivl__sdm_frame *f, struct ivl_sdm_signal *s)
{
	if (f->type != IVL_SDM_F_SIGNAL || f->len != IVL_SDM_SIGNAL_LEN)
		return -EBADMSG;
	ivl__sdm_signal_from_wire(f->payload, s);
	return 0;
}

void ivl__sdm_hello_encode(uint8_t out[IVL_SDM_HELLO_LEN], uint16_t id)
{
	struct ivl_sdm_hello_msg m = {.version = IVL_SDM_FRAME_VERSION, .id = id};

	memcpy(out, &m, sizeof(m));
}

int ivl__sdm_hello_decode(const struct ivl__sdm_frame *f, struct ivl__sdm_hello *h)
{
	struct ivl_sdm_hello_msg m;

	if (f->type != IVL_SDM_F_HELLO || f->len != sizeof(m))
		return -EBADMSG;
	memcpy(&m, f->payload, sizeof(m));
	h->version = m.version;
	h->id = m.id;
	/* Flags are reserved: a version 1 peer sends 0. */
	return m.flags != 0 ? -EBADMSG : 0;
}

void ivl__sdm_welcome_encode(uint8_t out[IVL_SDM_WELCOME_LEN], const struct ivl__sdm_welcome *w)
{
	struct ivl_sdm_welcome_msg m = {.version = w->version,
					.id = w->id,
					.max_slaves = w->max_slaves,
					.keepalive_ms = w->keepalive_ms};

	memcpy(out, &m, sizeof(m));
}

int ivl__sdm_welcome_decode(const struct ivl__sdm_frame *f, struct ivl__sdm_welcome *w)
{
	struct ivl_sdm_welcome_msg m;

	if (f->type != IVL_SDM_F_WELCOME || f->len != sizeof(m))
		return -EBADMSG;
	memcpy(&m, f->payload, sizeof(m));
	w->version = m.version;
	w->id = m.id;
	w->max_slaves = m.max_slaves;
	w->keepalive_ms = m.keepalive_ms;
	if (m.reserved != 0 || w->id == 0 || w->id > IVL_SDM_MAX_SLAVES)
		return -EBADMSG;
	return 0;
}

void ivl__sdm_refuse_encode(uint8_t out[IVL_SDM_REFUSE_LEN], uint16_t reason)
{
	struct ivl_sdm_refuse_msg m = {.version = IVL_SDM_FRAME_VERSION, .reason = reason};

	memcpy(out, &m, sizeof(m));
}

int ivl__sdm_refuse_decode(const struct ivl__sdm_frame *f, uint16_t *reason)
{
	struct ivl_sdm_refuse_msg m;

	if (f->type != IVL_SDM_F_REFUSE || f->len != sizeof(m))
		return -EBADMSG;
	memcpy(&m, f->payload, sizeof(m));
	*reason = m.reason;
	return 0;
}

int ivl__sdm_refusal_errno(uint16_t reason)
{
	switch (reason) {
	case IVL_SDM_R_FULL:
		return -EUSERS;
	case IVL_SDM_R_ID_TAKEN:
		return -EADDRINUSE;
	case IVL_SDM_R_BAD_VERSION:
		return -EPROTONOSUPPORT;
	case IVL_SDM_R_UNAUTHENTICATED:
		return -EACCES;
	case IVL_SDM_R_BAD_ID:
		return -ERANGE;
	default:
		return -ECONNREFUSED;
	}
}

const char *ivl__sdm_refusal_name(uint16_t reason)
{
	switch (reason) {
	case IVL_SDM_R_FULL:
		return "full";
	case IVL_SDM_R_ID_TAKEN:
		return "ID taken";
	case IVL_SDM_R_BAD_VERSION:
		return "bad version";
	case IVL_SDM_R_UNAUTHENTICATED:
		return "unauthenticated";
	case IVL_SDM_R_BAD_ID:
		return "ID out of range";
	default:
		return "unknown";
	}
}
