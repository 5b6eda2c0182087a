/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the SDM frame decoder and handshake (docs/sdm.md §2-§4).  The first
 * byte picks a target, the rest is what a remote end sends:
 *   0: the frame decoder and every payload decoder, over a byte stream;
 *   1: the secure handshake, server side (KX_HELLO, KX_AUTH, SEALED...);
 *   2: the secure handshake, client side (KX_REPLY after our KX_HELLO);
 *   3/4: a real master (plain / keyed) on a UNIX socket: the bytes arrive
 *        as one slave connection, through the whole state machine;
 *   5: the plaintext of a SEALED_BATCH (keyed framing v2), frame by frame,
 *      then sealed and opened again, and replayed.
 * Invariants: decoded frames stay within their limits, a signal re-encodes
 * to its bytes, nothing authenticates without the key, the master's
 * current_slaves equals its registered connections and drops to 0 once
 * the connection is gone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/internal.h"
#include "fuzz.h"
#include "sdm/sock.h"

static void decode_stream(const uint8_t *d, size_t n)
{
	size_t off = 0;

	while (off < n) {
		struct ivl__sdm_frame f;
		struct ivl_sdm_signal sig;
		struct ivl__sdm_hello h;
		struct ivl__sdm_welcome w;
		uint16_t reason;
		int len = ivl__sdm_frame_decode(d + off, n - off, &f);

		if (len <= 0)
			return;
		FUZZ_CHECK((size_t)len <= IVL_SDM_MAX_FRAME && (size_t)len <= n - off);
		FUZZ_CHECK((size_t)len == IVL_SDM_HDR_LEN + f.len);
		if (ivl__sdm_signal_decode(&f, &sig) == 0) {
			uint8_t p[IVL_SDM_SIGNAL_LEN];

			ivl__sdm_signal_encode(p, &sig);
			FUZZ_CHECK(!memcmp(p, f.payload, sizeof(p)));
		}
		(void)ivl__sdm_hello_decode(&f, &h);
		if (ivl__sdm_welcome_decode(&f, &w) == 0)
			FUZZ_CHECK(w.id >= 1 && w.id <= IVL_SDM_MAX_SLAVES);
		if (ivl__sdm_refuse_decode(&f, &reason) == 0)
			FUZZ_CHECK(ivl__sdm_refusal_errno(reason) < 0);
		off += (size_t)len;
	}
}

static void server_side(const uint8_t *d, size_t n)
{
	struct ivl__sdm_sec s = {0};
	uint8_t out[IVL_SDM_KX_REPLY_LEN], plain[IVL_SDM_HDR_LEN + IVL_SDM_MAX_PAYLOAD];
	size_t off = 0;
	int step = 0;

	memset(s.psk, 0x5a, sizeof(s.psk));
	while (off < n) {
		struct ivl__sdm_frame f;
		int len = ivl__sdm_frame_decode(d + off, n - off, &f), r;

		if (len <= 0)
			break;
		off += (size_t)len;
		if (step == 0) {
			if (ivl__sdm_sec_server_reply(&s, &f, out) < 0)
				break;
		} else if (step == 1) {
			/* The client proof covers our fresh key: no input can
			 * know it. */
			r = ivl__sdm_sec_server_finish(&s, &f);
			FUZZ_CHECK(r < 0);
			break;
		}
		step++;
	}
	(void)plain;
	ivl__sdm_sec_wipe(&s);
}

static void client_side(const uint8_t *d, size_t n)
{
	struct ivl__sdm_sec s = {0};
	uint8_t hello[IVL_SDM_KX_HELLO_LEN], auth[IVL_SDM_KX_AUTH_LEN];
	struct ivl__sdm_frame f;

	memset(s.psk, 0x5a, sizeof(s.psk));
	FUZZ_CHECK(ivl__sdm_sec_client_hello(&s, hello) == 0);
	if (ivl__sdm_frame_decode(d, n, &f) > 0)
		FUZZ_CHECK(ivl__sdm_sec_client_auth(&s, &f, auth) < 0);
	ivl__sdm_sec_wipe(&s);
}

static struct ivl_sdm *masters[2];
static char paths[2][108];

static void cleanup(void)
{
	for (int i = 0; i < 2; i++)
		ivl_sdm_free(masters[i]);
}

static struct ivl_sdm *master(int keyed)
{
	static const uint8_t key[IVL_SDM_KEY_LEN] = {1, 2, 3};
	struct ivl_sdm_opts o = {
	    .master = true, .max_slaves = 2, .channel = IVL_SDM_CHAN_UNIX, .keepalive_ms = 1000};

	if (masters[keyed])
		return masters[keyed];
	snprintf(paths[keyed], sizeof(paths[keyed]), "/tmp/ivl-fuzz-sdm-%d-%d.sock", (int)getpid(),
		 keyed);
	o.path = paths[keyed];
	o.key = keyed ? key : NULL;
	FUZZ_CHECK(ivl_sdm_new(&masters[keyed], &o) == 0);
	if (!masters[0] || !masters[1])
		atexit(cleanup);
	return masters[keyed];
}

static void through_master(int keyed, const uint8_t *d, size_t n)
{
	struct ivl_sdm *m = master(keyed);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct ivl_sdm_config c;
	int fd, i;

	memcpy(sun.sun_path, paths[keyed], strlen(paths[keyed]) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	if (n > 60000)
		n = 60000;
	/* Small inputs fit the socket buffer; the master reads as we go. */
	for (size_t off = 0; off < n;) {
		ssize_t w = send(fd, d + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0)
			break;
		off += (size_t)w;
		ivl_sdm_process(m);
	}
	shutdown(fd, SHUT_WR);
	for (i = 0; i < 200 && ivl__sock(m)->nconns; i++)
		ivl_sdm_process(m);
	close(fd);
	for (i = 0; i < 200 && ivl__sock(m)->nconns; i++)
		ivl_sdm_process(m);
	FUZZ_CHECK(ivl__sock(m)->nconns == 0);
	FUZZ_CHECK(ivl_sdm_get_config(m, &c) == 0 && c.current_slaves == 0);
	if (keyed) {
		struct ivl_sdm_stats st;

		/* Without the key nothing can register on the keyed master. */
		ivl_sdm_get_stats(m, &st);
		FUZZ_CHECK(st.conn_accepted == 0);
	}
}

/* The opened plaintext of a SEALED_BATCH (keyed framing v2): whole inner
 * frames, none sealed, nothing left over; and a sealed-then-opened round
 * trip gives the same bytes. */
static void batch_plain(const uint8_t *d, size_t n)
{
	struct ivl__sdm_frame f;
	size_t off = 0, frames = 0;
	int r;

	while ((r = ivl__sdm_batch_next(d, n, &off, &f)) > 0) {
		FUZZ_CHECK(off <= n);
		FUZZ_CHECK(f.type != IVL_SDM_F_SEALED && f.type != IVL_SDM_F_SEALED_BATCH);
		FUZZ_CHECK(f.payload + f.len == d + off);
		frames++;
	}
	FUZZ_CHECK(r < 0 || (off == n && frames > 0));
	if (r == 0 && n <= IVL_SDM_BATCH_PLAIN) {
		struct ivl__sdm_sec a = {0}, b = {0};
		uint8_t sealed[IVL_SDM_MAX_FRAME], plain[IVL_SDM_BATCH_PLAIN];
		uint8_t hdr[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
		uint8_t key[crypto_secretstream_xchacha20poly1305_KEYBYTES] = {7};
		struct ivl__sdm_frame sf;
		int len;

		crypto_secretstream_xchacha20poly1305_init_push(&a.tx, hdr, key);
		crypto_secretstream_xchacha20poly1305_init_pull(&b.rx, hdr, key);
		a.ready = b.ready = true;
		a.version = b.version = IVL_SDM_KX_VERSION;
		len = ivl__sdm_sec_seal_batch(&a, d, n, sealed, sizeof(sealed));
		FUZZ_CHECK(len > 0);
		FUZZ_CHECK(ivl__sdm_frame_decode(sealed, (size_t)len, &sf) == len);
		FUZZ_CHECK(ivl__sdm_sec_open(&b, &sf, plain, sizeof(plain)) == (int)n);
		FUZZ_CHECK(!memcmp(plain, d, n));
		/* Replayed: the stream has moved on, it must not open. */
		FUZZ_CHECK(ivl__sdm_sec_open(&b, &sf, plain, sizeof(plain)) < 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || sodium_init() < 0)
		return 0;
	switch (data[0] % 6) {
	case 5:
		batch_plain(data + 1, size - 1);
		break;
	case 0:
		decode_stream(data + 1, size - 1);
		break;
	case 1:
		server_side(data + 1, size - 1);
		break;
	case 2:
		client_side(data + 1, size - 1);
		break;
	default:
		through_master(data[0] % 6 == 4, data + 1, size - 1);
	}
	return 0;
}
