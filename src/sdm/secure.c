/* SPDX-License-Identifier: MIT */
/*
 * The SDM secure channel (docs/sdm.md §4), built only from libsodium
 * primitives:
 *   - crypto_kx with fresh ephemeral key pairs on both sides gives forward
 *     secret session keys;
 *   - each side proves knowledge of the pre-shared key with a keyed BLAKE2b
 *     (crypto_generichash) over both ephemeral public keys, so a man in the
 *     middle without the key can neither pass nor learn anything;
 *   - the final keys are the kx keys keyed with the PSK, so even an
 *     unauthenticated kx result is useless without it;
 *   - crypto_secretstream_xchacha20poly1305, one stream per direction,
 *     authenticates every frame and its position in the stream: a replayed,
 *     reordered, modified or dropped frame fails to open.
 */
#include <errno.h>
#include <string.h>

#include "core/internal.h"
#include "sock.h"

/* <ivlink/proto/sdm.h> states these lengths as numbers. */
_Static_assert(IVL_SDM_KX_PUBKEY_LEN == crypto_kx_PUBLICKEYBYTES, "kx public key length");
_Static_assert(IVL_SDM_SSHDR_LEN == crypto_secretstream_xchacha20poly1305_HEADERBYTES,
	       "secretstream header length");
_Static_assert(IVL_SDM_SEAL_OVERHEAD == crypto_secretstream_xchacha20poly1305_ABYTES,
	       "secretstream overhead");
_Static_assert(IVL_SDM_MAC_LEN == crypto_generichash_BYTES, "proof length");

static const char server_label[] = "ivlink-sdm v1 server proof";
static const char client_label[] = "ivlink-sdm v1 client proof";
static const char key_label[] = "ivlink-sdm v1 session key";

static void proof(const struct ivl__sdm_sec *s, const char *label, const uint8_t *cpk,
		  const uint8_t *spk, uint8_t out[IVL_SDM_MAC_LEN])
{
	crypto_generichash_state h;

	crypto_generichash_init(&h, s->psk, sizeof(s->psk), IVL_SDM_MAC_LEN);
	crypto_generichash_update(&h, (const uint8_t *)label, strlen(label));
	crypto_generichash_update(&h, cpk, crypto_kx_PUBLICKEYBYTES);
	crypto_generichash_update(&h, spk, crypto_kx_PUBLICKEYBYTES);
	crypto_generichash_final(&h, out, IVL_SDM_MAC_LEN);
}

/* Bind a kx session key to the PSK. */
static void bind_key(const struct ivl__sdm_sec *s, uint8_t key[crypto_kx_SESSIONKEYBYTES])
{
	crypto_generichash_state h;

	crypto_generichash_init(&h, s->psk, sizeof(s->psk), crypto_kx_SESSIONKEYBYTES);
	crypto_generichash_update(&h, (const uint8_t *)key_label, strlen(key_label));
	crypto_generichash_update(&h, key, crypto_kx_SESSIONKEYBYTES);
	crypto_generichash_final(&h, key, crypto_kx_SESSIONKEYBYTES);
}

int ivl__sdm_sec_client_hello(struct ivl__sdm_sec *s, uint8_t out[IVL_SDM_KX_HELLO_LEN])
{
	if (crypto_kx_keypair(s->pk, s->sk) != 0)
		return -EIO;
	/* We open batches: offer keyed framing version 2. */
	s->version = IVL_SDM_KX_VERSION;
	out[0] = (uint8_t)IVL_SDM_KX_VERSION;
	out[1] = (uint8_t)(IVL_SDM_KX_VERSION >> 8);
	out[2] = out[3] = 0;
	memcpy(out + 4, s->pk, crypto_kx_PUBLICKEYBYTES);
	return 0;
}

int ivl__sdm_sec_server_reply(struct ivl__sdm_sec *s, const struct ivl__sdm_frame *hello,
			      uint8_t out[IVL_SDM_KX_REPLY_LEN])
{
	uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
	uint16_t version;
	int r = 0;

	if (hello->type != IVL_SDM_F_KX_HELLO || hello->len != IVL_SDM_KX_HELLO_LEN)
		return -EBADMSG;
	version = (uint16_t)(hello->payload[0] | hello->payload[1] << 8);
	/* 1: one frame per SEALED; 2: the client also opens SEALED_BATCH. */
	if (version < 1 || version > IVL_SDM_KX_VERSION)
		return -EPROTONOSUPPORT;
	s->version = version;
	if (hello->payload[2] || hello->payload[3])
		return -EBADMSG;
	memcpy(s->peer_pk, hello->payload + 4, crypto_kx_PUBLICKEYBYTES);
	if (crypto_kx_keypair(s->pk, s->sk) != 0)
		return -EIO;
	/* Fails on a low-order client key: refuse rather than derive a
	 * predictable key. */
	if (crypto_kx_server_session_keys(rx, tx, s->pk, s->sk, s->peer_pk) != 0)
		return -EBADMSG;
	bind_key(s, rx);
	bind_key(s, tx);
	memcpy(out, s->pk, crypto_kx_PUBLICKEYBYTES);
	proof(s, server_label, s->peer_pk, s->pk, out + crypto_kx_PUBLICKEYBYTES);
	if (crypto_secretstream_xchacha20poly1305_init_push(
		&s->tx, out + crypto_kx_PUBLICKEYBYTES + IVL_SDM_MAC_LEN, tx) != 0)
		r = -EIO;
	/* rx is kept in sk's place until the client's stream header arrives:
	 * the ephemeral secret key is no longer needed. */
	memcpy(s->sk, rx, sizeof(rx));
	sodium_memzero(rx, sizeof(rx));
	sodium_memzero(tx, sizeof(tx));
	return r;
}

int ivl__sdm_sec_client_auth(struct ivl__sdm_sec *s, const struct ivl__sdm_frame *reply,
			     uint8_t out[IVL_SDM_KX_AUTH_LEN])
{
	uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
	uint8_t mac[IVL_SDM_MAC_LEN];
	const uint8_t *p = reply->payload;
	int r = 0;

	if (reply->type != IVL_SDM_F_KX_REPLY || reply->len != IVL_SDM_KX_REPLY_LEN)
		return -EBADMSG;
	memcpy(s->peer_pk, p, crypto_kx_PUBLICKEYBYTES);
	proof(s, server_label, s->pk, s->peer_pk, mac);
	if (sodium_memcmp(mac, p + crypto_kx_PUBLICKEYBYTES, IVL_SDM_MAC_LEN) != 0)
		return -EACCES;
	if (crypto_kx_client_session_keys(rx, tx, s->pk, s->sk, s->peer_pk) != 0)
		return -EBADMSG;
	bind_key(s, rx);
	bind_key(s, tx);
	if (crypto_secretstream_xchacha20poly1305_init_pull(
		&s->rx, p + crypto_kx_PUBLICKEYBYTES + IVL_SDM_MAC_LEN, rx) != 0) {
		r = -EBADMSG;
		goto out;
	}
	proof(s, client_label, s->pk, s->peer_pk, out);
	if (crypto_secretstream_xchacha20poly1305_init_push(&s->tx, out + IVL_SDM_MAC_LEN, tx) !=
	    0) {
		r = -EIO;
		goto out;
	}
	s->ready = true;
out:
	sodium_memzero(s->sk, sizeof(s->sk));
	sodium_memzero(rx, sizeof(rx));
	sodium_memzero(tx, sizeof(tx));
	return r;
}

int ivl__sdm_sec_server_finish(struct ivl__sdm_sec *s, const struct ivl__sdm_frame *auth)
{
	uint8_t mac[IVL_SDM_MAC_LEN];
	int r = 0;

	if (auth->type != IVL_SDM_F_KX_AUTH || auth->len != IVL_SDM_KX_AUTH_LEN)
		return -EBADMSG;
	proof(s, client_label, s->peer_pk, s->pk, mac);
	if (sodium_memcmp(mac, auth->payload, IVL_SDM_MAC_LEN) != 0)
		r = -EACCES;
	else if (crypto_secretstream_xchacha20poly1305_init_pull(
		     &s->rx, auth->payload + IVL_SDM_MAC_LEN, s->sk) != 0)
		r = -EBADMSG;
	else
		s->ready = true;
	sodium_memzero(s->sk, sizeof(s->sk));
	return r;
}

static int seal_as(struct ivl__sdm_sec *s, uint8_t type, const uint8_t *in, size_t len,
		   uint8_t *out, size_t room)
{
	unsigned long long clen;

	if (!s->ready)
		return -ENOTCONN;
	if (room < IVL_SDM_HDR_LEN + len + IVL_SDM_SEAL_OVERHEAD)
		return -EMSGSIZE;
	if (crypto_secretstream_xchacha20poly1305_push(&s->tx, out + IVL_SDM_HDR_LEN, &clen, in,
						       len, NULL, 0, 0) != 0)
		return -EIO;
	out[0] = type;
	out[1] = 0;
	out[2] = (uint8_t)clen;
	out[3] = (uint8_t)(clen >> 8);
	return (int)(IVL_SDM_HDR_LEN + clen);
}

int ivl__sdm_sec_seal(struct ivl__sdm_sec *s, const uint8_t *in, size_t len, uint8_t *out,
		      size_t room)
{
	if (len < IVL_SDM_HDR_LEN || len > IVL_SDM_HDR_LEN + IVL_SDM_MAX_PAYLOAD)
		return -EMSGSIZE;
	return seal_as(s, IVL_SDM_F_SEALED, in, len, out, room);
}

int ivl__sdm_sec_seal_batch(struct ivl__sdm_sec *s, const uint8_t *in, size_t len, uint8_t *out,
			    size_t room)
{
	if (s->version < 2)
		return -EPROTONOSUPPORT;
	if (len < IVL_SDM_HDR_LEN || len > IVL_SDM_BATCH_PLAIN)
		return -EMSGSIZE;
	return seal_as(s, IVL_SDM_F_SEALED_BATCH, in, len, out, room);
}

/*
 * Both kinds come from the same stream, so replay and reordering
 * protection covers batches and single frames alike: every message opens
 * only at its own position.
 */
int ivl__sdm_sec_open(struct ivl__sdm_sec *s, const struct ivl__sdm_frame *f, uint8_t *out,
		      size_t room)
{
	unsigned long long mlen;
	unsigned char tag;

	if (!s->ready || f->len < IVL_SDM_SEAL_OVERHEAD)
		return -EBADMSG;
	if (f->type != IVL_SDM_F_SEALED && (f->type != IVL_SDM_F_SEALED_BATCH || s->version < 2))
		return -EBADMSG;
	if (room < (size_t)f->len - IVL_SDM_SEAL_OVERHEAD)
		return -EMSGSIZE;
	if (crypto_secretstream_xchacha20poly1305_pull(&s->rx, out, &mlen, &tag, f->payload, f->len,
						       NULL, 0) != 0)
		return -EBADMSG;
	/* We never send a final or rekey tag: anything else is not ours. */
	if (tag != 0)
		return -EBADMSG;
	return (int)mlen;
}

void ivl__sdm_sec_wipe(struct ivl__sdm_sec *s)
{
	sodium_memzero(s, sizeof(*s));
}
