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

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Exact (or, for SEALED, bounded) payload length of each type; a length
 * outside the rule is malformed, so a peer cannot make us buffer more than
 * IVL__SDM_MAX_FRAME bytes. */
static bool length_ok(uint8_t type, size_t len)
{
	switch (type) {
	case IVL__SDM_F_HELLO:
		return len == IVL__SDM_HELLO_LEN;
	case IVL__SDM_F_WELCOME:
		return len == IVL__SDM_WELCOME_LEN;
	case IVL__SDM_F_REFUSE:
		return len == IVL__SDM_REFUSE_LEN;
	case IVL__SDM_F_SIGNAL:
		return len == IVL__SDM_SIGNAL_LEN;
	case IVL__SDM_F_PING:
		return len == 0;
	case IVL__SDM_F_KX_HELLO:
		return len == IVL__SDM_KX_HELLO_LEN;
	case IVL__SDM_F_KX_REPLY:
		return len == IVL__SDM_KX_REPLY_LEN;
	case IVL__SDM_F_KX_AUTH:
		return len == IVL__SDM_KX_AUTH_LEN;
	case IVL__SDM_F_SEALED:
		return len >= IVL__SDM_SEAL_OVERHEAD + IVL__SDM_HDR_LEN &&
		       len <= IVL__SDM_MAX_SEALED;
	case IVL__SDM_F_SEALED_BATCH:
		return len >= IVL__SDM_SEAL_OVERHEAD + IVL__SDM_HDR_LEN &&
		       len <= IVL__SDM_MAX_BATCH_SEALED;
	default:
		return false;
	}
}

int ivl__sdm_frame_encode(uint8_t *out, size_t room, uint8_t type, const void *payload, size_t len)
{
	if (len > UINT16_MAX || room < IVL__SDM_HDR_LEN || len > room - IVL__SDM_HDR_LEN)
		return -EMSGSIZE;
	out[0] = type;
	out[1] = 0;
	put16(out + 2, (uint16_t)len);
	if (len)
		memcpy(out + IVL__SDM_HDR_LEN, payload, len);
	return (int)(IVL__SDM_HDR_LEN + len);
}

int ivl__sdm_frame_decode(const uint8_t *buf, size_t len, struct ivl__sdm_frame *f)
{
	uint16_t plen;

	if (len < IVL__SDM_HDR_LEN)
		return 0;
	plen = get16(buf + 2);
	/* Judge the header before waiting for the payload: a bad length must
	 * not make us wait for bytes that will never make sense. */
	if (buf[1] != 0 || !length_ok(buf[0], plen))
		return -EBADMSG;
	if (len - IVL__SDM_HDR_LEN < plen)
		return 0;
	f->type = buf[0];
	f->len = plen;
	f->payload = buf + IVL__SDM_HDR_LEN;
	return (int)(IVL__SDM_HDR_LEN + plen);
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
	if (n <= 0 || f->type == IVL__SDM_F_SEALED || f->type == IVL__SDM_F_SEALED_BATCH)
		return -EBADMSG;
	*off += (size_t)n;
	return 1;
}

void ivl__sdm_signal_encode(uint8_t out[IVL__SDM_SIGNAL_LEN], const struct ivl_sdm_signal *s)
{
	put32(out, s->type);
	put32(out + 4, s->slave);
	put32(out + 8, s->payload[0]);
	put32(out + 12, s->payload[1]);
}

int ivl__sdm_signal_decode(const struct ivl__sdm_frame *f, struct ivl_sdm_signal *s)
{
	if (f->type != IVL__SDM_F_SIGNAL || f->len != IVL__SDM_SIGNAL_LEN)
		return -EBADMSG;
	s->type = get32(f->payload);
	s->slave = get32(f->payload + 4);
	s->payload[0] = get32(f->payload + 8);
	s->payload[1] = get32(f->payload + 12);
	return 0;
}

void ivl__sdm_hello_encode(uint8_t out[IVL__SDM_HELLO_LEN], uint16_t id)
{
	put16(out, IVL__SDM_VERSION);
	put16(out + 2, id);
	put32(out + 4, 0);
}

int ivl__sdm_hello_decode(const struct ivl__sdm_frame *f, struct ivl__sdm_hello *h)
{
	if (f->type != IVL__SDM_F_HELLO || f->len != IVL__SDM_HELLO_LEN)
		return -EBADMSG;
	h->version = get16(f->payload);
	h->id = get16(f->payload + 2);
	/* Flags are reserved: a version 1 peer sends 0. */
	if (get32(f->payload + 4) != 0)
		return -EBADMSG;
	return 0;
}

void ivl__sdm_welcome_encode(uint8_t out[IVL__SDM_WELCOME_LEN], const struct ivl__sdm_welcome *w)
{
	put16(out, w->version);
	put16(out + 2, w->id);
	put16(out + 4, w->max_slaves);
	put16(out + 6, 0);
	put32(out + 8, w->keepalive_ms);
}

int ivl__sdm_welcome_decode(const struct ivl__sdm_frame *f, struct ivl__sdm_welcome *w)
{
	if (f->type != IVL__SDM_F_WELCOME || f->len != IVL__SDM_WELCOME_LEN)
		return -EBADMSG;
	w->version = get16(f->payload);
	w->id = get16(f->payload + 2);
	w->max_slaves = get16(f->payload + 4);
	w->keepalive_ms = get32(f->payload + 8);
	if (get16(f->payload + 6) != 0 || w->id == 0 || w->id > IVL_SDM_MAX_SLAVES)
		return -EBADMSG;
	return 0;
}

void ivl__sdm_refuse_encode(uint8_t out[IVL__SDM_REFUSE_LEN], uint16_t reason)
{
	put16(out, IVL__SDM_VERSION);
	put16(out + 2, reason);
}

int ivl__sdm_refuse_decode(const struct ivl__sdm_frame *f, uint16_t *reason)
{
	if (f->type != IVL__SDM_F_REFUSE || f->len != IVL__SDM_REFUSE_LEN)
		return -EBADMSG;
	*reason = get16(f->payload + 2);
	return 0;
}

int ivl__sdm_refusal_errno(uint16_t reason)
{
	switch (reason) {
	case IVL__SDM_R_FULL:
		return -EUSERS;
	case IVL__SDM_R_ID_TAKEN:
		return -EADDRINUSE;
	case IVL__SDM_R_BAD_VERSION:
		return -EPROTONOSUPPORT;
	case IVL__SDM_R_UNAUTHENTICATED:
		return -EACCES;
	case IVL__SDM_R_BAD_ID:
		return -ERANGE;
	default:
		return -ECONNREFUSED;
	}
}

const char *ivl__sdm_refusal_name(uint16_t reason)
{
	switch (reason) {
	case IVL__SDM_R_FULL:
		return "full";
	case IVL__SDM_R_ID_TAKEN:
		return "ID taken";
	case IVL__SDM_R_BAD_VERSION:
		return "bad version";
	case IVL__SDM_R_UNAUTHENTICATED:
		return "unauthenticated";
	case IVL__SDM_R_BAD_ID:
		return "ID out of range";
	default:
		return "unknown";
	}
}
