/* SPDX-License-Identifier: MIT */
/* SDM frame codec, handshake messages, the secure stream and key files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "sdm/sock.h"

static void signal_roundtrip(void **state)
{
	struct ivl_sdm_signal in = {.type = 2, .slave = 7, .payload = {0x11223344, 0xdeadbeef}};
	struct ivl_sdm_signal out;
	uint8_t buf[64], p[16];
	struct ivl__sdm_frame f;
	int n;

	(void)state;
	ivl__sdm_signal_encode(p, &in);
	/* Little-endian on the wire whatever the host. */
	assert_int_equal(p[0], 2);
	assert_int_equal(p[4], 7);
	assert_int_equal(p[8], 0x44);
	assert_int_equal(p[11], 0x11);
	assert_int_equal(p[12], 0xef);
	n = ivl__sdm_frame_encode(buf, sizeof(buf), IVL_SDM_F_SIGNAL, p, sizeof(p));
	assert_int_equal(n, 20);
	assert_int_equal(buf[0], IVL_SDM_F_SIGNAL);
	assert_int_equal(buf[1], 0);
	assert_int_equal(buf[2], 16);
	assert_int_equal(buf[3], 0);
	/* Partial input asks for more, never decodes. */
	for (int i = 0; i < n; i++)
		assert_int_equal(ivl__sdm_frame_decode(buf, (size_t)i, &f), 0);
	assert_int_equal(ivl__sdm_frame_decode(buf, (size_t)n, &f), n);
	assert_int_equal(ivl__sdm_signal_decode(&f, &out), 0);
	assert_memory_equal(&in, &out, sizeof(in));
}

static void frame_limits(void **state)
{
	uint8_t buf[8] = {0};
	struct ivl__sdm_frame f;

	(void)state;
	/* Unknown type, nonzero flags, wrong fixed length, oversized sealed. */
	buf[0] = 99;
	assert_int_equal(ivl__sdm_frame_decode(buf, 4, &f), -EBADMSG);
	buf[0] = IVL_SDM_F_PING;
	buf[1] = 1;
	assert_int_equal(ivl__sdm_frame_decode(buf, 4, &f), -EBADMSG);
	buf[1] = 0;
	assert_int_equal(ivl__sdm_frame_decode(buf, 4, &f), 4);
	buf[2] = 1;
	assert_int_equal(ivl__sdm_frame_decode(buf, 4, &f), -EBADMSG);
	buf[0] = IVL_SDM_F_SIGNAL;
	buf[2] = 15;
	assert_int_equal(ivl__sdm_frame_decode(buf, 4, &f), -EBADMSG);
	buf[0] = IVL_SDM_F_SEALED;
	buf[2] = 0xff;
	buf[3] = 0xff;
	assert_int_equal(ivl__sdm_frame_decode(buf, 4, &f), -EBADMSG);
	buf[2] = 3;
	buf[3] = 0;
	assert_int_equal(ivl__sdm_frame_decode(buf, 4, &f), -EBADMSG);
	assert_int_equal(ivl__sdm_frame_encode(buf, 8, IVL_SDM_F_SIGNAL, buf, 16), -EMSGSIZE);
}

static void hello_welcome_refuse(void **state)
{
	uint8_t p[16], buf[32];
	struct ivl__sdm_frame f;
	struct ivl__sdm_hello h;
	struct ivl__sdm_welcome w = {.version = 1, .id = 3, .max_slaves = 8, .keepalive_ms = 500};
	struct ivl__sdm_welcome w2;
	uint16_t reason;

	(void)state;
	ivl__sdm_hello_encode(p, 5);
	ivl__sdm_frame_encode(buf, sizeof(buf), IVL_SDM_F_HELLO, p, IVL_SDM_HELLO_LEN);
	assert_int_equal(ivl__sdm_frame_decode(buf, sizeof(buf), &f), 12);
	assert_int_equal(ivl__sdm_hello_decode(&f, &h), 0);
	assert_int_equal(h.version, IVL_SDM_FRAME_VERSION);
	assert_int_equal(h.id, 5);
	buf[4 + 4] = 1; /* reserved flags */
	assert_int_equal(ivl__sdm_hello_decode(&f, &h), -EBADMSG);

	ivl__sdm_welcome_encode(p, &w);
	f = (struct ivl__sdm_frame){.type = IVL_SDM_F_WELCOME, .len = 12, .payload = p};
	assert_int_equal(ivl__sdm_welcome_decode(&f, &w2), 0);
	assert_int_equal(w2.id, 3);
	assert_int_equal(w2.max_slaves, 8);
	assert_int_equal(w2.keepalive_ms, 500);
	p[2] = p[3] = 0; /* ID 0 is the master's */
	assert_int_equal(ivl__sdm_welcome_decode(&f, &w2), -EBADMSG);
	/* A signal is not a welcome. */
	f.type = IVL_SDM_F_SIGNAL;
	assert_int_equal(ivl__sdm_welcome_decode(&f, &w2), -EBADMSG);

	ivl__sdm_refuse_encode(p, IVL_SDM_R_ID_TAKEN);
	f = (struct ivl__sdm_frame){.type = IVL_SDM_F_REFUSE, .len = 4, .payload = p};
	assert_int_equal(ivl__sdm_refuse_decode(&f, &reason), 0);
	assert_int_equal(ivl__sdm_refusal_errno(reason), -EADDRINUSE);
	assert_int_equal(ivl__sdm_refusal_errno(IVL_SDM_R_FULL), -EUSERS);
	assert_int_equal(ivl__sdm_refusal_errno(IVL_SDM_R_UNAUTHENTICATED), -EACCES);
	assert_int_equal(ivl__sdm_refusal_errno(IVL_SDM_R_BAD_VERSION), -EPROTONOSUPPORT);
	assert_int_equal(ivl__sdm_refusal_errno(999), -ECONNREFUSED);
}

/* Run the handshake between two in-memory ends. */
static int handshake(struct ivl__sdm_sec *cl, struct ivl__sdm_sec *sv, uint8_t ckey, uint8_t skey)
{
	uint8_t h[IVL_SDM_KX_HELLO_LEN], rep[IVL_SDM_KX_REPLY_LEN], auth[IVL_SDM_KX_AUTH_LEN];
	struct ivl__sdm_frame f;
	int r;

	memset(cl, 0, sizeof(*cl));
	memset(sv, 0, sizeof(*sv));
	memset(cl->psk, ckey, sizeof(cl->psk));
	memset(sv->psk, skey, sizeof(sv->psk));
	assert_int_equal(ivl__sdm_sec_client_hello(cl, h), 0);
	f = (struct ivl__sdm_frame){IVL_SDM_F_KX_HELLO, sizeof(h), h};
	assert_int_equal(ivl__sdm_sec_server_reply(sv, &f, rep), 0);
	f = (struct ivl__sdm_frame){IVL_SDM_F_KX_REPLY, sizeof(rep), rep};
	r = ivl__sdm_sec_client_auth(cl, &f, auth);
	if (r)
		return r;
	f = (struct ivl__sdm_frame){IVL_SDM_F_KX_AUTH, sizeof(auth), auth};
	return ivl__sdm_sec_server_finish(sv, &f);
}

static void secure_stream(void **state)
{
	struct ivl__sdm_sec cl, sv;
	uint8_t plain[20], sealed[64], sealed2[64], out[IVL_SDM_HDR_LEN + IVL_SDM_MAX_PAYLOAD];
	struct ivl__sdm_frame f;
	int n, n2;

	(void)state;
	assert_int_equal(sodium_init() >= 0, 1);
	assert_int_equal(handshake(&cl, &sv, 0x42, 0x42), 0);
	memset(plain, 0, sizeof(plain));
	plain[0] = IVL_SDM_F_SIGNAL;
	plain[2] = 16;
	plain[8] = 9;
	n = ivl__sdm_sec_seal(&cl, plain, sizeof(plain), sealed, sizeof(sealed));
	assert_true(n > (int)sizeof(plain));
	assert_int_equal(ivl__sdm_frame_decode(sealed, (size_t)n, &f), n);
	assert_int_equal(ivl__sdm_sec_open(&sv, &f, out, sizeof(out)), (int)sizeof(plain));
	assert_memory_equal(out, plain, sizeof(plain));
	/* Replaying the same frame fails: secretstream's nonce moved on. */
	assert_int_equal(ivl__sdm_sec_open(&sv, &f, out, sizeof(out)), -EBADMSG);

	/* A modified frame fails. */
	assert_int_equal(handshake(&cl, &sv, 7, 7), 0);
	n = ivl__sdm_sec_seal(&cl, plain, sizeof(plain), sealed, sizeof(sealed));
	sealed[n - 1] ^= 1;
	assert_int_equal(ivl__sdm_frame_decode(sealed, (size_t)n, &f), n);
	assert_int_equal(ivl__sdm_sec_open(&sv, &f, out, sizeof(out)), -EBADMSG);

	/* Reordering fails: the second frame opened first. */
	assert_int_equal(handshake(&cl, &sv, 7, 7), 0);
	n = ivl__sdm_sec_seal(&cl, plain, sizeof(plain), sealed, sizeof(sealed));
	n2 = ivl__sdm_sec_seal(&cl, plain, sizeof(plain), sealed2, sizeof(sealed2));
	assert_int_equal(ivl__sdm_frame_decode(sealed2, (size_t)n2, &f), n2);
	assert_int_equal(ivl__sdm_sec_open(&sv, &f, out, sizeof(out)), -EBADMSG);
	(void)n;

	/* Wrong key: the client rejects the server's proof. */
	assert_int_equal(handshake(&cl, &sv, 1, 2), -EACCES);
	ivl__sdm_sec_wipe(&cl);
	ivl__sdm_sec_wipe(&sv);
}

static void key_files(void **state)
{
	const char *dir = tu_tmpdir();
	uint8_t key[32], raw[32];
	char hex[80];
	int fd;

	(void)state;
	for (int i = 0; i < 32; i++) {
		raw[i] = (uint8_t)(i * 7 + 1);
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	}
	fd = open(tu_path(dir, "bin"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, raw, 32), 32);
	close(fd);
	assert_int_equal(ivl_sdm_load_key(tu_path(dir, "bin"), key), 0);
	assert_memory_equal(key, raw, 32);

	strcat(hex, "\n");
	fd = open(tu_path(dir, "hex"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, hex, strlen(hex)), (ssize_t)strlen(hex));
	close(fd);
	memset(key, 0, sizeof(key));
	assert_int_equal(ivl_sdm_load_key(tu_path(dir, "hex"), key), 0);
	assert_memory_equal(key, raw, 32);

	fd = open(tu_path(dir, "short"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, hex, 10), 10);
	close(fd);
	assert_int_equal(ivl_sdm_load_key(tu_path(dir, "short"), key), -EINVAL);
	hex[5] = 'g';
	fd = open(tu_path(dir, "badhex"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, hex, 65), 65);
	close(fd);
	assert_int_equal(ivl_sdm_load_key(tu_path(dir, "badhex"), key), -EINVAL);
	chmod(tu_path(dir, "bin"), 0644);
	assert_int_equal(ivl_sdm_load_key(tu_path(dir, "bin"), key), -EPERM);
	assert_int_equal(ivl_sdm_load_key(tu_path(dir, "nope"), key), -ENOENT);
}

static void type_names(void **state)
{
	(void)state;
	assert_string_equal(ivl_sdm_type_name(IVL_SDM_BOOT), "boot");
	assert_null(ivl_sdm_type_name(3));
	assert_int_equal(ivl_sdm_type_from_name("RESET"), IVL_SDM_RESET);
	assert_int_equal(ivl_sdm_type_from_name("irq"), IVL_SDM_IRQ);
	assert_int_equal(ivl_sdm_type_from_name("nmi"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(signal_roundtrip),
	    cmocka_unit_test(frame_limits),
	    cmocka_unit_test(hello_welcome_refuse),
	    cmocka_unit_test(secure_stream),
	    cmocka_unit_test(key_files),
	    cmocka_unit_test(type_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
