/* SPDX-License-Identifier: MIT */
/*
 * SDM over UNIX and TCP (plain and with a key), in one process: a master and
 * three slaves through real sockets, plus raw sockets that play a forging,
 * malformed, tampering, replaying or silent slave.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdmtest.h"
#include "sdm/sock.h"

/* Keepalive period.  A test thread descheduled for 3 periods without
 * calling process() loses its connections; 500 ms keeps that out of reach
 * of a loaded machine while a silent peer is still found in 1.5 s. */
#define KA_MS 500

struct world {
	int chan;
	bool keyed;
	char path[100];
	uint16_t port;
	uint8_t key[32];
	struct ivl_sdm *m, *s[8];
	struct rec rm, rs[8];
};

static void pump_once(struct world *w)
{
	sdm_pump(w->m, w->s, 8, 10);
}

static void pump_for(struct world *w, int ms)
{
	int64_t end = tu_now_ms() + ms;

	while (tu_now_ms() < end)
		pump_once(w);
}

static void fill_opts(struct world *w, struct ivl_sdm_opts *o, const uint8_t *key)
{
	memset(o, 0, sizeof(*o));
	o->channel = w->chan;
	o->path = w->path;
	o->host = "127.0.0.1";
	o->port = w->port;
	o->key = key;
	o->keepalive_ms = KA_MS;
	o->reconnect_min_ms = 20;
	o->reconnect_max_ms = 200;
}

static struct ivl_sdm *slave(struct world *w, uint16_t id, const uint8_t *key)
{
	struct ivl_sdm_opts o;
	struct ivl_sdm *s = NULL;

	fill_opts(w, &o, key);
	o.id = id;
	assert_int_equal(ivl_sdm_new(&s, &o), 0);
	return s;
}

static void setup_world(struct world *w, int chan, bool keyed)
{
	struct ivl_sdm_opts o;

	memset(w, 0, sizeof(*w));
	w->chan = chan;
	w->keyed = keyed;
	snprintf(w->path, sizeof(w->path), "%s", tu_path(tu_tmpdir(), keyed ? "sdm-k" : "sdm"));
	randombytes_buf(w->key, sizeof(w->key));
	fill_opts(w, &o, keyed ? w->key : NULL);
	o.master = true;
	o.max_slaves = 3;
	assert_int_equal(ivl_sdm_new(&w->m, &o), 0);
	if (chan == IVL_SDM_CHAN_TCP) {
		w->port = (uint16_t)ivl_sdm_tcp_port(w->m);
		assert_true(w->port > 0);
	}
	ivl_sdm_set_handler(w->m, IVL_SDM_IRQ, on_sig, &w->rm);
	for (int i = 0; i < 3; i++) {
		w->s[i] = slave(w, 0, keyed ? w->key : NULL);
		for (uint32_t t = 0; t < IVL_SDM_NTYPES; t++)
			ivl_sdm_set_handler(w->s[i], t, on_sig, &w->rs[i]);
		ivl_sdm_set_action(w->s[i], IVL_SDM_BOOT, on_action, &w->rs[i]);
		ivl_sdm_set_action(w->s[i], IVL_SDM_RESET, on_action, &w->rs[i]);
	}
}

static uint16_t current(struct world *w)
{
	struct ivl_sdm_config c;

	ivl_sdm_get_config(w->m, &c);
	return c.current_slaves;
}

static void teardown_world(struct world *w)
{
	for (int i = 0; i < 8; i++)
		ivl_sdm_free(w->s[i]);
	ivl_sdm_free(w->m);
}

/* A raw client socket to the master. */
static int raw_connect(struct world *w)
{
	int fd;

	if (w->chan == IVL_SDM_CHAN_UNIX) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};

		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		memcpy(sun.sun_path, w->path, strlen(w->path) + 1);
		assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	} else {
		struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(w->port)};

		in.sin_addr.s_addr = htonl(0x7f000001);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(fd, (struct sockaddr *)&in, sizeof(in)), 0);
	}
	return fd;
}

static void raw_send(int fd, uint8_t type, const void *p, size_t len)
{
	uint8_t buf[256];
	int n = ivl__sdm_frame_encode(buf, sizeof(buf), type, p, len);

	assert_true(n > 0);
	assert_int_equal(send(fd, buf, (size_t)n, MSG_NOSIGNAL), n);
}

/* Read one frame (pumping the world meanwhile) into buf; returns its length. */
static int raw_recv(struct world *w, int fd, uint8_t *buf, size_t room, struct ivl__sdm_frame *f)
{
	size_t len = 0;
	int64_t end = tu_now_ms() + 5000;

	while (tu_now_ms() < end) {
		ssize_t n;
		int r = ivl__sdm_frame_decode(buf, len, f);

		if (r != 0)
			return r;
		pump_once(w);
		n = recv(fd, buf + len, room - len, MSG_DONTWAIT);
		if (n == 0)
			return -ECONNRESET;
		if (n > 0)
			len += (size_t)n;
	}
	return -ETIMEDOUT;
}

/* Handshake as a keyed raw slave; leaves @sec ready. */
/* The secure handshake as a slave speaking keyed framing @version. */
static void raw_secure(struct world *w, int fd, struct ivl__sdm_sec *sec, uint16_t version)
{
	uint8_t hello[IVL_SDM_KX_HELLO_LEN], auth[IVL_SDM_KX_AUTH_LEN], buf[256];
	struct ivl__sdm_frame f;

	memset(sec, 0, sizeof(*sec));
	memcpy(sec->psk, w->key, 32);
	assert_int_equal(ivl__sdm_sec_client_hello(sec, hello), 0);
	hello[0] = (uint8_t)version;
	sec->version = version;
	raw_send(fd, IVL_SDM_F_KX_HELLO, hello, sizeof(hello));
	assert_true(raw_recv(w, fd, buf, sizeof(buf), &f) > 0);
	assert_int_equal(ivl__sdm_sec_client_auth(sec, &f, auth), 0);
	raw_send(fd, IVL_SDM_F_KX_AUTH, auth, sizeof(auth));
}

static int sealed(struct ivl__sdm_sec *sec, uint8_t type, const void *p, size_t len, uint8_t *out)
{
	uint8_t plain[64];
	int n = ivl__sdm_frame_encode(plain, sizeof(plain), type, p, len);

	return ivl__sdm_sec_seal(sec, plain, (size_t)n, out, 256);
}

/* Connect, run the secure handshake with keyed framing @version, send a
 * sealed HELLO; returns the socket. */
static int raw_register(struct world *w, struct ivl__sdm_sec *sec, uint16_t version)
{
	uint8_t p[IVL_SDM_HELLO_LEN], out[256];
	int fd = raw_connect(w), n;

	raw_secure(w, fd, sec, version);
	ivl__sdm_hello_encode(p, 0);
	n = sealed(sec, IVL_SDM_F_HELLO, p, IVL_SDM_HELLO_LEN, out);
	assert_int_equal(send(fd, out, (size_t)n, MSG_NOSIGNAL), n);
	return fd;
}

/* A SEALED_BATCH of @n signals, plus @junk bytes of a partial frame. */
static int sealed_batch(struct ivl__sdm_sec *sec, const struct ivl_sdm_signal *sig, int n,
			size_t junk, uint8_t *out)
{
	uint8_t plain[256], p[IVL_SDM_SIGNAL_LEN];
	size_t len = 0;

	for (int i = 0; i < n; i++) {
		ivl__sdm_signal_encode(p, sig);
		len += (size_t)ivl__sdm_frame_encode(plain + len, sizeof(plain) - len,
						     IVL_SDM_F_SIGNAL, p, sizeof(p));
	}
	memset(plain + len, IVL_SDM_F_SIGNAL, junk);
	return ivl__sdm_sec_seal_batch(sec, plain, len + junk, out, 256);
}

static void scenario(struct world *w)
{
	struct ivl_sdm_signal sig;
	struct ivl_sdm_stats st;
	struct ivl_sdm *extra;

	/* Three slaves register, get IDs 1..3; current_slaves is exact. */
	assert_true(PUMP_UNTIL(w, current(w) == 3 && !ivl_sdm_state(w->s[0]) &&
				      !ivl_sdm_state(w->s[1]) && !ivl_sdm_state(w->s[2])));
	for (int i = 0; i < 3; i++)
		assert_true(ivl_sdm_id(w->s[i]) >= 1 && ivl_sdm_id(w->s[i]) <= 3);

	/* BOOT each slave with an entry address; the action runs first. */
	for (int i = 0; i < 3; i++) {
		sig = (struct ivl_sdm_signal){
		    IVL_SDM_BOOT, (uint32_t)ivl_sdm_id(w->s[i]), {0x80000000u + (uint32_t)i, 0}};
		assert_int_equal(ivl_sdm_send(w->m, &sig), 0);
	}
	assert_true(PUMP_UNTIL(w, w->rs[0].n[1] && w->rs[1].n[1] && w->rs[2].n[1]));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(w->rs[i].actions, 1);
		assert_int_equal(w->rs[i].last.payload[0], 0x80000000u + (uint32_t)i);
	}

	/* IRQ with payload master -> slave and slave -> master. */
	sig = (struct ivl_sdm_signal){IVL_SDM_IRQ, (uint32_t)ivl_sdm_id(w->s[1]), {0xabcd, 0x1234}};
	assert_int_equal(ivl_sdm_send(w->m, &sig), 0);
	assert_true(PUMP_UNTIL(w, w->rs[1].n[0] == 1));
	assert_int_equal(w->rs[1].last.payload[1], 0x1234);
	assert_int_equal(w->rs[0].n[0], 0);
	sig = (struct ivl_sdm_signal){IVL_SDM_IRQ, 0, {42, 43}};
	assert_int_equal(ivl_sdm_send(w->s[2], &sig), 0);
	assert_true(PUMP_UNTIL(w, w->rm.n[0] == 1));
	assert_int_equal(w->rm.from, ivl_sdm_id(w->s[2]));
	assert_int_equal(w->rm.last.payload[0], 42);

	/* RESET. */
	sig = (struct ivl_sdm_signal){IVL_SDM_RESET, (uint32_t)ivl_sdm_id(w->s[0]), {0, 0}};
	assert_int_equal(ivl_sdm_send(w->m, &sig), 0);
	assert_true(PUMP_UNTIL(w, w->rs[0].n[2] == 1));
	assert_int_equal(w->rs[0].actions, 2);

	/* Slave to slave refused at the sender. */
	sig = (struct ivl_sdm_signal){IVL_SDM_IRQ, 2, {0, 0}};
	assert_int_equal(ivl_sdm_send(w->s[0], &sig), -EPERM);

	/* A fourth slave: refused, full. */
	extra = w->s[3] = slave(w, 0, w->keyed ? w->key : NULL);
	assert_true(PUMP_UNTIL(w, ivl_sdm_state(extra) == -EUSERS));
	assert_int_equal(current(w), 3);
	ivl_sdm_free(extra);
	w->s[3] = NULL;

	/* A slave goes away: absent-slave error; it comes back with its ID. */
	{
		int id = ivl_sdm_id(w->s[1]);

		ivl_sdm_free(w->s[1]);
		w->s[1] = NULL;
		assert_true(PUMP_UNTIL(w, current(w) == 2));
		sig = (struct ivl_sdm_signal){IVL_SDM_IRQ, (uint32_t)id, {0, 0}};
		assert_int_equal(ivl_sdm_send(w->m, &sig), -ENOENT);
		w->s[1] = slave(w, (uint16_t)id, w->keyed ? w->key : NULL);
		ivl_sdm_set_handler(w->s[1], IVL_SDM_IRQ, on_sig, &w->rs[1]);
		assert_true(PUMP_UNTIL(w, current(w) == 3 && ivl_sdm_id(w->s[1]) == id));
		assert_int_equal(ivl_sdm_send(w->m, &sig), 0);
		assert_true(PUMP_UNTIL(w, w->rs[1].n[0] == 2));
	}

	/* The master goes away: slaves notice, then reconnect with their IDs
	 * to a new master on the same address. */
	{
		struct ivl_sdm_opts o;
		int ids[3];

		for (int i = 0; i < 3; i++)
			ids[i] = ivl_sdm_id(w->s[i]);
		ivl_sdm_free(w->m);
		w->m = NULL;
		fill_opts(w, &o, w->keyed ? w->key : NULL);
		o.master = true;
		o.max_slaves = 3;
		{
			int64_t end = tu_now_ms() + 5000;

			while (ivl_sdm_state(w->s[0]) == 0 && tu_now_ms() < end) {
				poll(NULL, 0, 10);
				ivl_sdm_process(w->s[0]);
			}
		}
		assert_int_equal(ivl_sdm_state(w->s[0]), -ENOTCONN);
		sig = (struct ivl_sdm_signal){IVL_SDM_IRQ, 0, {0, 0}};
		assert_int_equal(ivl_sdm_send(w->s[0], &sig), -ENOTCONN);
		assert_int_equal(ivl_sdm_new(&w->m, &o), 0);
		assert_true(PUMP_UNTIL(w, current(w) == 3 && !ivl_sdm_state(w->s[0]) &&
					      !ivl_sdm_state(w->s[1]) && !ivl_sdm_state(w->s[2])));
		for (int i = 0; i < 3; i++)
			assert_int_equal(ivl_sdm_id(w->s[i]), ids[i]);
		assert_int_equal(ivl_sdm_get_stats(w->s[0], &st), 0);
		assert_true(st.reconnects >= 1);
	}
}

/* Raw misbehaving slaves against a plaintext master. */
static void hostile_plain(struct world *w)
{
	struct ivl_sdm_stats st0, st;
	uint8_t buf[256], p[16];
	struct ivl__sdm_frame f;
	struct ivl_sdm_signal sig;
	int fd;

	ivl_sdm_free(w->s[2]);
	w->s[2] = NULL;
	assert_true(PUMP_UNTIL(w, current(w) == 2));
	ivl_sdm_get_stats(w->m, &st0);

	/* Forged: registered as some ID, claims to address slave 1. */
	fd = raw_connect(w);
	ivl__sdm_hello_encode(p, 0);
	raw_send(fd, IVL_SDM_F_HELLO, p, IVL_SDM_HELLO_LEN);
	assert_true(raw_recv(w, fd, buf, sizeof(buf), &f) > 0);
	assert_int_equal(f.type, IVL_SDM_F_WELCOME);
	assert_int_equal(current(w), 3);
	sig = (struct ivl_sdm_signal){IVL_SDM_IRQ, 1, {1, 1}};
	ivl__sdm_signal_encode(p, &sig);
	raw_send(fd, IVL_SDM_F_SIGNAL, p, 16);
	ivl_sdm_get_stats(w->m, &st);
	assert_true(PUMP_UNTIL(
	    w, (ivl_sdm_get_stats(w->m, &st), st.dropped_forged == st0.dropped_forged + 1)));
	assert_int_equal(st.received, st0.received);
	/* Malformed: that connection only is dropped. */
	raw_send(fd, 77, NULL, 0);
	assert_true(PUMP_UNTIL(w, current(w) == 2));
	ivl_sdm_get_stats(w->m, &st);
	assert_int_equal(st.conn_dropped, st0.conn_dropped + 1);
	close(fd);
	assert_true(!ivl_sdm_state(w->s[0]) && !ivl_sdm_state(w->s[1]));

	/* Silent: welcomed, then says nothing; keepalive detects it. */
	fd = raw_connect(w);
	ivl__sdm_hello_encode(p, 0);
	raw_send(fd, IVL_SDM_F_HELLO, p, IVL_SDM_HELLO_LEN);
	assert_true(PUMP_UNTIL(w, current(w) == 3));
	assert_true(PUMP_UNTIL(w, current(w) == 2));
	ivl_sdm_get_stats(w->m, &st);
	assert_true(st.keepalive_timeouts >= 1);
	close(fd);

	/* A plaintext master refuses a keyed hello as unauthenticated. */
	fd = raw_connect(w);
	{
		struct ivl__sdm_sec sec = {0};
		uint8_t h[IVL_SDM_KX_HELLO_LEN];
		uint16_t reason;

		ivl__sdm_sec_client_hello(&sec, h);
		raw_send(fd, IVL_SDM_F_KX_HELLO, h, sizeof(h));
		assert_true(raw_recv(w, fd, buf, sizeof(buf), &f) > 0);
		assert_int_equal(ivl__sdm_refuse_decode(&f, &reason), 0);
		assert_int_equal(reason, IVL_SDM_R_UNAUTHENTICATED);
	}
	close(fd);
	/* Bad version. */
	fd = raw_connect(w);
	ivl__sdm_hello_encode(p, 0);
	p[0] = 9;
	raw_send(fd, IVL_SDM_F_HELLO, p, IVL_SDM_HELLO_LEN);
	{
		uint16_t reason;

		assert_true(raw_recv(w, fd, buf, sizeof(buf), &f) > 0);
		assert_int_equal(ivl__sdm_refuse_decode(&f, &reason), 0);
		assert_int_equal(reason, IVL_SDM_R_BAD_VERSION);
	}
	close(fd);
}

/* Raw misbehaving slaves against a keyed master. */
static void hostile_keyed(struct world *w)
{
	struct ivl_sdm_stats st0, st;
	struct ivl__sdm_sec sec;
	uint8_t buf[256], p[16], out[256];
	struct ivl__sdm_frame f;
	struct ivl_sdm_signal sig = {IVL_SDM_IRQ, 0, {7, 7}};
	struct ivl_sdm *bad;
	uint8_t wrong[32];
	int fd, n;

	ivl_sdm_free(w->s[2]);
	w->s[2] = NULL;
	assert_true(PUMP_UNTIL(w, current(w) == 2));

	/* Wrong key: refused, fatal for that slave, nothing registered. */
	memcpy(wrong, w->key, 32);
	wrong[0] ^= 0x80;
	bad = w->s[3] = slave(w, 0, wrong);
	assert_true(PUMP_UNTIL(w, ivl_sdm_state(bad) == -EACCES));
	assert_int_equal(ivl_sdm_process(bad), -EACCES);
	assert_int_equal(current(w), 2);
	ivl_sdm_free(bad);
	w->s[3] = NULL;
	/* No key at all against a keyed master. */
	bad = w->s[3] = slave(w, 0, NULL);
	assert_true(PUMP_UNTIL(w, ivl_sdm_state(bad) == -EACCES));
	ivl_sdm_free(bad);
	w->s[3] = NULL;

	/* Tampered frame: the master drops the connection.  This slave speaks
	 * keyed framing version 1: the master answers with single SEALED
	 * frames, never a batch. */
	ivl_sdm_get_stats(w->m, &st0);
	fd = raw_register(w, &sec, 1);
	assert_true(raw_recv(w, fd, buf, sizeof(buf), &f) > 0);
	assert_int_equal(f.type, IVL_SDM_F_SEALED);
	assert_true(PUMP_UNTIL(w, current(w) == 3));
	ivl__sdm_signal_encode(p, &sig);
	n = sealed(&sec, IVL_SDM_F_SIGNAL, p, 16, out);
	out[n - 3] ^= 0x10;
	assert_int_equal(send(fd, out, (size_t)n, MSG_NOSIGNAL), n);
	assert_true(PUMP_UNTIL(w, current(w) == 2));
	ivl_sdm_get_stats(w->m, &st);
	assert_int_equal(st.received, st0.received);
	assert_int_equal(st.conn_dropped, st0.conn_dropped + 1);
	close(fd);

	/* Replayed frame: the first copy is delivered, the second drops.  This
	 * slave speaks version 2: the master's WELCOME comes as a batch, and
	 * a replayed batch drops the connection just the same. */
	ivl_sdm_get_stats(w->m, &st0);
	fd = raw_register(w, &sec, 2);
	assert_true(raw_recv(w, fd, buf, sizeof(buf), &f) > 0);
	assert_int_equal(f.type, IVL_SDM_F_SEALED_BATCH);
	assert_int_equal(current(w), 3);
	ivl__sdm_signal_encode(p, &sig);
	n = sealed(&sec, IVL_SDM_F_SIGNAL, p, 16, out);
	assert_int_equal(send(fd, out, (size_t)n, MSG_NOSIGNAL), n);
	assert_true(PUMP_UNTIL(w, (ivl_sdm_get_stats(w->m, &st), st.received == st0.received + 1)));
	n = sealed_batch(&sec, &sig, 3, 0, out);
	assert_true(n > 0);
	assert_int_equal(send(fd, out, (size_t)n, MSG_NOSIGNAL), n);
	assert_true(PUMP_UNTIL(w, (ivl_sdm_get_stats(w->m, &st), st.received == st0.received + 4)));
	assert_int_equal(send(fd, out, (size_t)n, MSG_NOSIGNAL), n);
	assert_true(PUMP_UNTIL(w, current(w) == 2));
	ivl_sdm_get_stats(w->m, &st);
	assert_int_equal(st.received, st0.received + 4);
	close(fd);

	/* A batch whose last frame is partial: authentic but malformed, the
	 * connection drops (the whole frames before it were delivered). */
	ivl_sdm_get_stats(w->m, &st0);
	fd = raw_register(w, &sec, 2);
	assert_true(PUMP_UNTIL(w, current(w) == 3));
	n = sealed_batch(&sec, &sig, 1, 3, out);
	assert_int_equal(send(fd, out, (size_t)n, MSG_NOSIGNAL), n);
	assert_true(PUMP_UNTIL(w, current(w) == 2));
	ivl_sdm_get_stats(w->m, &st);
	assert_int_equal(st.received, st0.received + 1);
	assert_int_equal(st.conn_dropped, st0.conn_dropped + 1);
	/* Plaintext after the stream is up is also fatal for the connection. */
	close(fd);
	pump_for(w, 20);
}

/* Checks that payload[0] counts up from 0: signals arrive in order. */
struct seq {
	unsigned n, bad;
};

static void on_seq(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, uint16_t from, void *op)
{
	struct seq *q = op;

	(void)s, (void)from;
	if (sig->payload[0] != q->n)
		q->bad++;
	q->n++;
}

/* ivl_sdm_send_batch(): the rules of ivl_sdm_send() per signal, a prefix
 * sent on error, runs to several slaves, back-pressure, order. */
static void batching(struct world *w)
{
	static struct ivl_sdm_signal v[512];
	struct seq q = {0};
	uint32_t id0 = (uint32_t)ivl_sdm_id(w->s[0]), id1 = (uint32_t)ivl_sdm_id(w->s[1]);
	unsigned n1 = w->rs[1].n[IVL_SDM_IRQ], nm = w->rm.n[IVL_SDM_IRQ];
	unsigned sent = 0, total = 5000;
	int r;

	ivl_sdm_set_handler(w->s[0], IVL_SDM_IRQ, on_seq, &q);
	/* The scenario replaced the master. */
	ivl_sdm_set_handler(w->m, IVL_SDM_IRQ, on_sig, &w->rm);
	assert_int_equal(ivl_sdm_send_batch(w->m, v, 0), -EINVAL);
	assert_int_equal(ivl_sdm_send_batch(w->m, NULL, 1), -EINVAL);
	/* The master addressing ID 0 stops the batch; what precedes is sent. */
	v[0] = (struct ivl_sdm_signal){IVL_SDM_IRQ, id0, {0, 0}};
	v[1] = (struct ivl_sdm_signal){IVL_SDM_IRQ, 0, {1, 0}};
	v[2] = (struct ivl_sdm_signal){IVL_SDM_IRQ, id0, {1, 0}};
	assert_int_equal(ivl_sdm_send_batch(w->m, v, 3), 1);
	assert_int_equal(ivl_sdm_send_batch(w->m, v + 1, 2), -EINVAL);
	/* Runs to two slaves in one batch. */
	v[0] = (struct ivl_sdm_signal){IVL_SDM_IRQ, id0, {1, 0}};
	v[1] = (struct ivl_sdm_signal){IVL_SDM_IRQ, id1, {77, 0}};
	v[2] = (struct ivl_sdm_signal){IVL_SDM_IRQ, id0, {2, 0}};
	assert_int_equal(ivl_sdm_send_batch(w->m, v, 3), 3);
	assert_true(PUMP_UNTIL(w, q.n == 3 && w->rs[1].n[IVL_SDM_IRQ] == n1 + 1));
	assert_int_equal(q.bad, 0);
	assert_int_equal(w->rs[1].last.payload[0], 77);
	/* Thousands in batches: more than the buffers hold, so the sender
	 * meets -EAGAIN or a short count; nothing lost, nothing reordered. */
	while (sent < total) {
		unsigned k = total - sent < 512 ? total - sent : 512;

		for (unsigned i = 0; i < k; i++)
			v[i] = (struct ivl_sdm_signal){IVL_SDM_IRQ, id0, {3 + sent + i, 0}};
		r = ivl_sdm_send_batch(w->m, v, k);
		if (r == -EAGAIN) {
			pump_once(w);
			continue;
		}
		assert_true(r > 0 && (unsigned)r <= k);
		sent += (unsigned)r;
	}
	assert_true(PUMP_UNTIL(w, q.n == 3 + total));
	assert_int_equal(q.bad, 0);
	/* A slave's batch: to the master only. */
	v[0] = (struct ivl_sdm_signal){IVL_SDM_IRQ, 0, {5, 0}};
	v[1] = (struct ivl_sdm_signal){IVL_SDM_IRQ, 0, {6, 0}};
	v[2] = (struct ivl_sdm_signal){IVL_SDM_IRQ, 2, {7, 0}};
	assert_int_equal(ivl_sdm_send_batch(w->s[1], v, 3), 2);
	assert_int_equal(ivl_sdm_send_batch(w->s[1], v + 2, 1), -EPERM);
	assert_true(PUMP_UNTIL(w, w->rm.n[IVL_SDM_IRQ] == nm + 2));
	assert_int_equal(w->rm.last.payload[0], 6);
	ivl_sdm_set_handler(w->s[0], IVL_SDM_IRQ, on_sig, &w->rs[0]);
}

/* IVL_SDM_ALL over sockets: one frame per slave connection, each naming
 * its slave; a slave may not; a slave whose connection is backed up makes
 * the broadcast fail as a whole (nothing queued for the others). */
static void broadcasting(struct world *w)
{
	struct ivl_sdm_signal all = {IVL_SDM_IRQ, IVL_SDM_ALL, {41, 42}};
	struct ivl_sdm_signal u = {IVL_SDM_IRQ, (uint32_t)ivl_sdm_id(w->s[0]), {0, 0}};
	unsigned before[3], flood = 0;
	int n = current(w);

	assert_int_equal(n, 3);
	for (int i = 0; i < 3; i++)
		before[i] = w->rs[i].n[IVL_SDM_IRQ];
	assert_int_equal(ivl_sdm_send(w->s[1], &all), -EPERM);
	assert_int_equal(ivl_sdm_send(w->m, &all), 3);
	assert_true(PUMP_UNTIL(w, w->rs[0].n[IVL_SDM_IRQ] == before[0] + 1 &&
				      w->rs[1].n[IVL_SDM_IRQ] == before[1] + 1 &&
				      w->rs[2].n[IVL_SDM_IRQ] == before[2] + 1));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(w->rs[i].last.slave, (uint32_t)ivl_sdm_id(w->s[i]));
		assert_int_equal(w->rs[i].last.payload[0], 41);
		assert_int_equal(w->rs[i].from, 0);
	}
	/* Slave 0 does not read: its connection fills up (small socket
	 * buffers, so that this takes well under a keepalive period, plus the
	 * sender's queue), then the broadcast is refused. */
	{
		int small = 4096;

		assert_int_equal(setsockopt(ivl__sock(w->m)->slaves[u.slave]->fd, SOL_SOCKET,
					    SO_SNDBUF, &small, sizeof(small)),
				 0);
		assert_int_equal(setsockopt(ivl__sock(w->s[0])->up->fd, SOL_SOCKET, SO_RCVBUF,
					    &small, sizeof(small)),
				 0);
	}
	/* Flood slave 0 until refused, then broadcast.  Over TCP, ACKs still
	 * in flight can free room in the socket between the two sends; the
	 * broadcast then goes to all three, and the flood goes on until a
	 * broadcast meets slave 0 backed up. */
	unsigned through = 0;
	for (unsigned round = 0;; round++) {
		struct ivl__sdm_conn *c0 = ivl__sock(w->m)->slaves[u.slave];
		int r;

		while (ivl_sdm_send(w->m, &u) == 0) {
			flood++;
			assert_true(flood < 10000000u);
		}
		/* Refused means no room: a flush whose send made room leaves
		 * no staged (keyed) frame behind that would fit. */
		assert_true(IVL__SDM_TXBUF - c0->tx_len < IVL_SDM_MAX_FRAME);
		if (round < 3) {
			/* Slave 0 reads once: the next send finds the room
			 * that opens only by sending part of what waits. */
			assert_true(ivl_sdm_process(w->s[0]) >= 0);
			usleep(20000);
			continue;
		}
		r = ivl_sdm_send(w->m, &all);
		if (r == -EAGAIN)
			break;
		assert_int_equal(r, 3);
		assert_true(++through < 1000);
	}
	/* Nothing was queued for the others, sealed or staged. */
	for (int i = 1; i < 3; i++) {
		struct ivl__sdm_conn *c = ivl__sock(w->m)->slaves[ivl_sdm_id(w->s[i])];

		assert_int_equal(c->tx_len, 0);
		assert_int_equal(c->ptx_len, 0);
	}
	assert_true(PUMP_UNTIL(w, w->rs[0].n[IVL_SDM_IRQ] == before[0] + 1 + flood + through &&
				      w->rs[1].n[IVL_SDM_IRQ] == before[1] + 1 + through &&
				      w->rs[2].n[IVL_SDM_IRQ] == before[2] + 1 + through));
	assert_int_equal(ivl_sdm_send(w->m, &all), 3);
	assert_true(PUMP_UNTIL(w, w->rs[0].n[IVL_SDM_IRQ] == before[0] + 2 + flood + through &&
				      w->rs[1].n[IVL_SDM_IRQ] == before[1] + 2 + through &&
				      w->rs[2].n[IVL_SDM_IRQ] == before[2] + 2 + through));
}

/* Count how often @sdm's fd wakes a poll() loop in @ms with no traffic. */
static unsigned idle_wakeups(struct ivl_sdm *sdm, int ms)
{
	struct pollfd p = {.fd = ivl_sdm_get_fd(sdm), .events = POLLIN};
	int64_t end = tu_now_ms() + ms;
	unsigned n = 0;

	while (tu_now_ms() < end) {
		if (poll(&p, 1, 20) > 0)
			n++;
		assert_true(ivl_sdm_process(sdm) >= 0);
	}
	return n;
}

/* An idle object's fd is readable only for its periodic tick (every
 * keepalive / 4 = 125 ms here), never continuously: the single-connection
 * fast path must not leave work behind that keeps poll() spinning. */
static void idle(struct world *w)
{
	struct ivl_sdm_signal sig = {IVL_SDM_IRQ, (uint32_t)ivl_sdm_id(w->s[0]), {1, 2}};
	struct ivl_sdm *one[1];
	unsigned wm, ws;

	/* A master with one slave and that slave: both take the fast path. */
	for (int i = 1; i < 8; i++) {
		ivl_sdm_free(w->s[i]);
		w->s[i] = NULL;
	}
	one[0] = w->s[0];
	assert_true(PUMP_UNTIL(w, current(w) == 1));
	assert_int_equal(ivl_sdm_send(w->m, &sig), 0);
	for (int k = 0; k < 20; k++)
		sdm_pump(w->m, one, 1, 5);
	/* 400 ms hold 8 ticks each, plus PINGs; a spinning fd wakes thousands
	 * of times. */
	wm = idle_wakeups(w->m, 400);
	ws = idle_wakeups(w->s[0], 400);
	assert_true(wm < 60);
	assert_true(ws < 60);
}

static void run(int chan, bool keyed)
{
	struct world w;

	setup_world(&w, chan, keyed);
	scenario(&w);
	batching(&w);
	broadcasting(&w);
	if (keyed)
		hostile_keyed(&w);
	else
		hostile_plain(&w);
	idle(&w);
	teardown_world(&w);
}

static void unix_plain(void **state)
{
	(void)state;
	run(IVL_SDM_CHAN_UNIX, false);
}

static void unix_keyed(void **state)
{
	(void)state;
	run(IVL_SDM_CHAN_UNIX, true);
}

static void tcp_plain(void **state)
{
	(void)state;
	run(IVL_SDM_CHAN_TCP, false);
}

static void tcp_keyed(void **state)
{
	(void)state;
	run(IVL_SDM_CHAN_TCP, true);
}

static void tcp_needs_key(void **state)
{
	struct ivl_sdm_opts o = {.master = true,
				 .max_slaves = 2,
				 .channel = IVL_SDM_CHAN_TCP,
				 .host = "0.0.0.0",
				 .port = 0};
	struct ivl_sdm *m = NULL;
	int fds = tu_count_fds();

	(void)state;
	assert_int_equal(ivl_sdm_new(&m, &o), -EPERM);
	assert_null(m);
	assert_int_equal(tu_count_fds(), fds);
	o.insecure = true;
	assert_int_equal(ivl_sdm_new(&m, &o), 0);
	ivl_sdm_free(m);
	o.master = false;
	o.insecure = false;
	o.host = "192.0.2.1";
	o.port = 9;
	assert_int_equal(ivl_sdm_new(&m, &o), -EPERM);
	assert_int_equal(tu_count_fds(), fds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(unix_plain),    cmocka_unit_test(unix_keyed),
	    cmocka_unit_test(tcp_plain),     cmocka_unit_test(tcp_keyed),
	    cmocka_unit_test(tcp_needs_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
