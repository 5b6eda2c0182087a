/* SPDX-License-Identifier: MIT */
/*
 * ivl-hostile-guest: the hostile guest of run-guest-hostile-test.sh, a
 * static program over the ivshmem PCI device (VFIO) written against the
 * public API.  It drives the transport virtqueue itself and creates four
 * devices on the device host: "gp", a well-behaved net port on switch sw0
 * (10.77.0.2: answers ARP and ICMP echo, so the well-behaved guest A has a
 * peer on the switch), "hn", a second net port on sw0 for the attack, and
 * two blk devices on its own images: "h" (read-write) and "hro" (served
 * read-only).  A's first ping of 1000 bytes starts the attack; while it
 * runs, gp keeps answering A's other pings (at least three of them before
 * the attack ends), and answers that first ping when it is over.  Each hostile request is one HOSTILE-STEP line
 * saying what came back (status byte, used length, which refusal counter
 * of the device's backend string moved: exactly the documented one, by
 * one) or, for chains the ring refuses, that the device set
 * DEVICE_NEEDS_RESET without answering (the device is then set up again
 * and used).  Then it prints its expected counters (HOSTILE-EXPECT) and
 * exits at A's ping of 1002 bytes.  Exit 0 iff every step got the
 * documented answer (docs/transport.md §5, Block and Net).
 *
 * usage: ivl-hostile-guest [-t SECONDS]
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/link.h>
#include <ivlink/transport.h>
#include <ivlink/virtq.h>

#define D_NEXT 1u
#define D_WRITE 2u
#define D_INDIRECT 4u
#define VS_NEEDS_RESET 64u

#define T_IN 0u
#define T_OUT 1u
#define T_FLUSH 4u
#define T_GET_ID 8u
#define T_DISCARD 11u
#define T_WZEROES 13u
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2
#define HOSTILE_BYTE 0xee /* every byte a refused write carries */

enum { C_BAD, C_RANGE, C_UNSUPP, C_ERR, C_N, C_NONE = -1 };
static const char *const cname[] = {"bad", "range", "unsupp", "err"};

struct dev {
	const char *name;
	uint64_t id;
	uint8_t *win;
	uint64_t win_size;
	unsigned qnum, nq;
	struct ivl_virtq *q[2];
	struct ivl_virtq_layout lay[2];
	uint64_t ring_end[2];
	uint8_t *buf;
	uint64_t bsz, bump;
	uint64_t seen[C_N]; /* the backend's counters at the last look */
	uint64_t want[C_N]; /* what this program's requests should have made them */
	uint64_t tx;	    /* net: the tx= counter */
	unsigned broken;    /* times the ring was refused (DEVICE_NEEDS_RESET) */
};

static struct ivl_link *L;
static struct ivl_transport_driver *D;
static uint8_t *area;
static uint16_t host_peer, host_vector;
static int nfail;
static int64_t deadline;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put16(uint8_t *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }

static void die(const char *what, int r, uint32_t reason)
{
	printf("HOSTILE-ERROR %s: %s%s%s\n", what, strerror(-r), r == -EREMOTEIO ? " reason " : "",
	       r == -EREMOTEIO ? ivl_transport_reason_name(reason) : "");
	exit(1);
}

static void kick(void) { (void)ivl_link_ring(L, host_peer, host_vector); }

/* ---- the well-behaved port gp: ARP and ICMP echo for 10.77.0.2 ------------------ */

#define GP_BUFS 16
#define GP_BUF 2048
static struct dev gp;
static uint8_t gp_mac[6];
static const uint8_t gp_ip[4] = {10, 77, 0, 2};
static uint8_t *gp_tx;
static bool gp_txbusy[GP_BUFS];
static bool attack_started, attack_done, bye;
static unsigned echoes, echoes_during, leaked, control, gp_txfull;
static uint8_t trigger[GP_BUF]; /* A's echo request that started the attack */
static size_t trigger_ihl, trigger_total;

static void mac_of(const struct dev *v, uint8_t *mac)
{
	const uint8_t m[6] = {0x02, 0x69, 0x76, (uint8_t)(v->id >> 16), (uint8_t)(v->id >> 8), (uint8_t)v->id};
	memcpy(mac, m, 6);
}

/* Send @len frame bytes from gp (header of zeroes in front). */
static void gp_send(const uint8_t *f, size_t len)
{
	unsigned i = 0;
	while (i < GP_BUFS && gp_txbusy[i])
		i++;
	if (i == GP_BUFS || len + 12 > GP_BUF) {
		gp_txfull++;
		return;
	}
	uint8_t *b = gp_tx + i * GP_BUF;
	memset(b, 0, 12);
	memcpy(b + 12, f, len);
	struct iovec o = {b, len + 12};
	if (ivl_virtq_add(gp.q[1], &o, 1, NULL, 0, b) >= 0) { /* the head index */
		gp_txbusy[i] = true;
		ivl_transport_driver_kick(D, gp.q[1]);
	} else {
		gp_txfull++;
	}
}

static uint16_t csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* Answer the echo request @f (IP header @ihl bytes, @total IP bytes). */
static void echo_reply(const uint8_t *f, size_t ihl, size_t total)
{
	uint8_t r[GP_BUF];
	memcpy(r, f, 14 + total);
	memcpy(r, f + 6, 6);
	memcpy(r + 6, gp_mac, 6);
	memcpy(r + 26, f + 30, 4); /* addresses swapped: the IP checksum stays */
	memcpy(r + 30, f + 26, 4);
	uint8_t *icmp = r + 14 + ihl;
	icmp[0] = 0; /* echo reply */
	icmp[2] = icmp[3] = 0;
	uint16_t c = csum(icmp, total - ihl);
	icmp[2] = (uint8_t)(c >> 8);
	icmp[3] = (uint8_t)c;
	gp_send(r, 14 + total);
}

static void gp_frame(const uint8_t *f, size_t len)
{
	uint8_t r[42];
	uint16_t type = len >= 14 ? (uint16_t)(f[12] << 8 | f[13]) : 0;
	if (type == 0x88b5) { /* what hn sends refused: must never arrive */
		leaked++;
		return;
	}
	if (type == 0x88b6 && len >= 30 && !memcmp(f + 14, "HOSTILE-CONTROL", 15)) {
		control++;
		return;
	}
	if (type == 0x0806 && len >= 42 && f[21] == 1 && !memcmp(f + 38, gp_ip, 4)) {
		memcpy(r, f + 6, 6); /* to the asker */
		memcpy(r + 6, gp_mac, 6);
		memcpy(r + 12, f + 12, 8); /* ethertype, hardware and protocol */
		r[20] = 0;
		r[21] = 2; /* reply */
		memcpy(r + 22, gp_mac, 6);
		memcpy(r + 28, gp_ip, 4);
		memcpy(r + 32, f + 22, 10); /* the asker's MAC and IP */
		gp_send(r, 42);
		return;
	}
	if (type != 0x0800 || len < 14 + 20 + 8)
		return;
	size_t ihl = (size_t)(f[14] & 15) * 4, total = (size_t)(f[16] << 8 | f[17]);
	if (ihl < 20 || total < ihl + 8 || 14 + total > len || f[23] != 1 || memcmp(f + 30, gp_ip, 4) ||
	    f[14 + ihl] != 8)
		return;
	size_t payload = total - ihl - 8;
	echoes++;
	if (payload == 1000 && !attack_started) {
		/* A's signal: the attack starts; the answer waits for its end. */
		attack_started = true;
		memcpy(trigger, f, 14 + total);
		trigger_ihl = ihl;
		trigger_total = total;
		printf("HOSTILE-ATTACK start (echo %u from A)\n", echoes);
		return;
	}
	if (attack_started && !attack_done)
		echoes_during++;
	if (payload == 1002)
		bye = true;
	echo_reply(f, ihl, total);
}

/* Serve gp without blocking: frames in, transmit buffers back. */
static void gp_serve(void)
{
	void *tok;
	uint32_t len;
	bool rx = false;
	while (ivl_virtq_get_used(gp.q[1], &tok, &len) == 1)
		gp_txbusy[((uint8_t *)tok - gp_tx) / GP_BUF] = false;
	while (ivl_virtq_get_used(gp.q[0], &tok, &len) == 1) {
		if (len > 12 && len <= GP_BUF)
			gp_frame((uint8_t *)tok + 12, len - 12);
		struct iovec in = {tok, GP_BUF};
		ivl_virtq_add(gp.q[0], NULL, 0, &in, 1, tok);
		rx = true;
	}
	if (rx)
		ivl_transport_driver_kick(D, gp.q[0]);
}

/* Wait a little for doorbells (rings are polled anyway), serving gp. */
static void idle(int ms)
{
	struct ivl_link_event ev[8];
	gp_serve();
	ivl_link_wait(L, ev, 8, ms);
	gp_serve();
	if (now_ms() > deadline) {
		printf("HOSTILE-ERROR out of time\n");
		exit(1);
	}
}

/* ---- devices ------------------------------------------------------------------ */

static void create(struct dev *v, uint32_t virtio_id, const char *arg, uint64_t window, unsigned qnum)
{
	struct ivl_transport_create cr = {.virtio_id = virtio_id, .window_size = window};
	struct ivl_transport_info info;
	uint32_t reason = 0;
	int r = ivl_transport_driver_create_arg(D, &cr, arg, &info, &reason);
	if (r < 0)
		die(arg, r, reason);
	v->id = info.device_id;
	v->win = area + info.window_offset;
	v->win_size = info.window_size;
	v->qnum = qnum;
	printf("HOSTILE-DEVICE %s id=%llu %s window=%llu\n", v->name, (unsigned long long)v->id, info.backend,
	       (unsigned long long)v->win_size);
}

/* (Re)start the device: reset, negotiate, rings at the start of the window. */
static void setup(struct dev *v)
{
	uint32_t reason = 0;
	void *b;
	for (unsigned i = 0; i < 2; i++) {
		ivl_virtq_free(v->q[i]);
		v->q[i] = NULL;
	}
	int r = ivl_transport_driver_setup(D, v->id, v->qnum, v->q, 2, &v->nq, &b, &v->bsz, &reason);
	if (r < 0)
		die(v->name, r, reason);
	uint64_t cur = 0;
	for (unsigned i = 0; i < v->nq; i++) { /* the layout ivl_transport_driver_setup() uses */
		uint64_t sz = ivl_virtq_layout_default(ivl_virtq_num(v->q[i]), 0, cur, &v->lay[i]);
		v->ring_end[i] = cur + sz;
		cur += (sz + 63) & ~63ull;
	}
	v->buf = b;
	if (v->buf != v->win + cur)
		die("ring layout", -EPROTO, 0);
}

static void query(const struct dev *v, struct ivl_transport_info *info)
{
	uint32_t reason = 0;
	int r = ivl_transport_driver_query(D, v->id, info, &reason);
	if (r < 0)
		die("query", r, reason);
}

static uint64_t counter(const char *s, const char *key)
{
	char k[16];
	snprintf(k, sizeof(k), " %s=", key);
	const char *p = strstr(s, k);
	return p ? strtoull(p + strlen(k), NULL, 10) : ~0ull;
}

/* Which counter moved since the last look: C_NONE, a C_* (by exactly one),
 * or -2 (something else). */
static int moved(struct dev *v, const char **backend)
{
	static struct ivl_transport_info info;
	query(v, &info);
	*backend = info.backend;
	int which = C_NONE;
	for (int c = 0; c < C_N; c++) {
		uint64_t now = counter(info.backend, cname[c]);
		if (now == ~0ull)
			continue; /* net: only bad= */
		if (now == v->seen[c] + 1 && which == C_NONE)
			which = c;
		else if (now != v->seen[c])
			which = -2;
		v->seen[c] = now;
	}
	v->tx = counter(info.backend, "tx");
	return which;
}

/* Window memory for one request, bump-allocated from the buffer area. */
static uint8_t *wbuf(struct dev *v, size_t len, int fill)
{
	uint64_t at = (v->bump + 15) & ~15ull;
	if (at + len > v->bsz)
		die("buffer space", -ENOSPC, 0);
	v->bump = at + len;
	memset(v->buf + at, fill, len);
	return v->buf + at;
}

/* Post one chain on queue @qi and wait (bounded) for it to be used. */
static int roundtrip(struct dev *v, unsigned qi, const struct iovec *out, unsigned nout, const struct iovec *in,
		     unsigned nin, uint32_t *used)
{
	void *tok;
	int r = ivl_virtq_add(v->q[qi], out, nout, in, nin, v);
	if (r < 0)
		return r;
	ivl_transport_driver_kick(D, v->q[qi]);
	int64_t end = now_ms() + 30000, rekick = now_ms() + 500;
	while ((r = ivl_virtq_get_used(v->q[qi], &tok, used)) == 0 && now_ms() < end) {
		idle(10);
		if (now_ms() > rekick) { /* a doorbell is a hint: ring again */
			kick();
			rekick = now_ms() + 500;
		}
	}
	return r == 1 ? 0 : r == 0 ? -ETIMEDOUT : r;
}

static void step(struct dev *v, const char *what, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void step(struct dev *v, const char *what, bool ok, const char *fmt, ...)
{
	va_list ap;
	printf("HOSTILE-STEP %s %s: ", v->name, what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" -> %s\n", ok ? "ok" : "FAIL");
	nfail += !ok;
}

static const char *stname(int s)
{
	return s == S_OK ? "OK" : s == S_IOERR ? "IOERR" : s == S_UNSUPP ? "UNSUPP" : "?";
}

/* ---- blk ------------------------------------------------------------------------ */

static struct iovec hdr(struct dev *v, uint32_t type, uint64_t sector)
{
	uint8_t *h = wbuf(v, 16, 0);
	put32(h, type);
	put64(h + 8, sector);
	return (struct iovec){h, 16};
}

/*
 * A blk request of readable pieces @out and writable pieces @in (the status
 * byte is the last writable byte, when there is one): expect @want_st
 * (-1: no answer, used length 0), used length @want_used, counter @kind
 * moved by one (C_NONE: none).
 */
static void blk(struct dev *v, const char *what, struct iovec *out, unsigned nout, struct iovec *in, unsigned nin,
		int want_st, uint32_t want_used, int kind)
{
	uint32_t used = ~0u;
	int r = roundtrip(v, 0, out, nout, in, nin, &used);
	int st = nin && in[nin - 1].iov_len ? ((uint8_t *)in[nin - 1].iov_base)[in[nin - 1].iov_len - 1] : -1;
	const char *be;
	int m = moved(v, &be);
	bool ok = r == 0 && used == want_used && (want_st < 0 || st == want_st) && m == kind;
	step(v, what, ok, "status=%s used=%u counter=%s [%s]%s%s", want_st < 0 ? "none" : stname(st), used,
	     kind == C_NONE ? "none" : cname[kind], be, r ? " error " : "", r ? strerror(-r) : "");
	if (kind >= 0)
		v->want[kind]++;
	v->bump = 0;
}

/* The usual request: header, @din writable / @dout readable data bytes
 * (filled with HOSTILE_BYTE), status. */
static void blk_simple(struct dev *v, const char *what, uint32_t type, uint64_t sector, size_t dout, size_t din,
		       int want_st, uint32_t want_used, int kind)
{
	struct iovec out[2] = {hdr(v, type, sector)}, in[2];
	unsigned no = 1, ni = 0;
	if (dout)
		out[no++] = (struct iovec){wbuf(v, dout, HOSTILE_BYTE), dout};
	if (din)
		in[ni++] = (struct iovec){wbuf(v, din, 0), din};
	in[ni++] = (struct iovec){wbuf(v, 1, 0xff), 1};
	blk(v, what, out, no, in, ni, want_st, want_used, kind);
}

static void blk_legit(struct dev *h, uint64_t cap)
{
	/* The last sector: written with 0x5a, read back. */
	struct iovec out[2] = {hdr(h, T_OUT, cap - 1), {wbuf(h, 512, 0x5a), 512}};
	struct iovec st = {wbuf(h, 1, 0xff), 1};
	blk(h, "write-last-sector", out, 2, &st, 1, S_OK, 1, C_NONE);
	/* Header split 5 + 3 + 8, data 100 + 412, status apart: still valid. */
	uint8_t *hb = wbuf(h, 16, 0);
	put32(hb, T_IN);
	put64(hb + 8, cap - 1);
	struct iovec o3[3] = {{hb, 5}, {hb + 5, 3}, {hb + 8, 8}};
	uint8_t *d = wbuf(h, 512, 0);
	struct iovec in[3] = {{d, 100}, {d + 100, 412}, {wbuf(h, 1, 0xff), 1}};
	uint32_t used;
	int r = roundtrip(h, 0, o3, 3, in, 3, &used);
	bool same = true;
	for (unsigned i = 0; i < 512; i++)
		same &= d[i] == 0x5a;
	const char *be;
	int m = moved(h, &be);
	step(h, "read-last-sector-split-header", r == 0 && used == 513 && *(uint8_t *)in[2].iov_base == S_OK && same &&
						     m == C_NONE,
	     "status=%s used=%u data=%s [%s]", stname(*(uint8_t *)in[2].iov_base), used,
	     same ? "the 0x5a written" : "WRONG", be);
	h->bump = 0;
	/* GET_ID: the image's name, NUL-padded. */
	uint8_t *id = wbuf(h, 20, 0xff);
	struct iovec gi[2] = {{id, 20}, {wbuf(h, 1, 0xff), 1}};
	struct iovec go = hdr(h, T_GET_ID, 0);
	r = roundtrip(h, 0, &go, 1, gi, 2, &used);
	m = moved(h, &be);
	step(h, "get-id", r == 0 && used == 21 && !strcmp((char *)id, h->name) && m == C_NONE, "id='%.20s' used=%u",
	     (char *)id, used);
	h->bump = 0;
}

static void blk_hostile(struct dev *h, uint64_t cap)
{
	/* Out of range: IOERR, counted "range", nothing touched. */
	blk_simple(h, "read-past-end", T_IN, cap, 0, 512, S_IOERR, 1, C_RANGE);
	blk_simple(h, "read-across-end", T_IN, cap - 1, 0, 1024, S_IOERR, 1, C_RANGE);
	blk_simple(h, "write-sector-2^64-1", T_OUT, ~0ull, 512, 0, S_IOERR, 1, C_RANGE);
	blk_simple(h, "write-sector-2^55", T_OUT, 1ull << 55, 512, 0, S_IOERR, 1, C_RANGE);
	blk_simple(h, "read-capacity+1-sectors", T_IN, 0, 0, (cap + 1) * 512, S_IOERR, 1, C_RANGE);
	/* Malformed: IOERR, counted "bad". */
	blk_simple(h, "read-partial-sector", T_IN, 0, 0, 100, S_IOERR, 1, C_BAD);
	blk_simple(h, "write-partial-sector", T_OUT, 2, 700, 0, S_IOERR, 1, C_BAD);
	blk_simple(h, "write-with-writable-data", T_OUT, 3, 512, 512, S_IOERR, 1, C_BAD);
	blk_simple(h, "read-with-readable-data", T_IN, 4, 512, 512, S_IOERR, 1, C_BAD);
	blk_simple(h, "flush-with-data", T_FLUSH, 0, 512, 0, S_IOERR, 1, C_BAD);
	blk_simple(h, "get-id-with-readable-data", T_GET_ID, 0, 512, 20, S_IOERR, 1, C_BAD);
	uint8_t *sh = wbuf(h, 8, 0);
	struct iovec shout = {sh, 8}, shin = {wbuf(h, 513, 0xff), 513};
	blk(h, "short-header-8-bytes", &shout, 1, &shin, 1, S_IOERR, 1, C_BAD);
	struct iovec nost = hdr(h, T_IN, 0);
	blk(h, "no-status-byte", &nost, 1, NULL, 0, -1, 0, C_BAD);
	/* Unsupported: UNSUPP, counted "unsupp" (discard and write-zeroes
	 * were not negotiated). */
	blk_simple(h, "type-0x99", 0x99, 0, 0, 0, S_UNSUPP, 1, C_UNSUPP);
	blk_simple(h, "discard-not-negotiated", T_DISCARD, 0, 16, 0, S_UNSUPP, 1, C_UNSUPP);
	blk_simple(h, "write-zeroes-not-negotiated", T_WZEROES, 0, 16, 0, S_UNSUPP, 1, C_UNSUPP);
	/* Still served: the last sector reads back as written. */
	blk_simple(h, "read-last-sector-after", T_IN, cap - 1, 0, 512, S_OK, 513, C_NONE);
}

/* ---- chains the ring refuses ------------------------------------------------------- */

static uint8_t *desc(struct dev *v, unsigned qi, unsigned i) { return v->win + v->lay[qi].desc + 16 * i; }

static void put_desc(struct dev *v, unsigned qi, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t *d = desc(v, qi, i);
	put64(d, addr);
	put32(d + 8, len);
	put16(d + 12, flags);
	put16(d + 14, next);
}

/* Publish @head in the avail ring, the index moved by @advance. */
static void publish(struct dev *v, unsigned qi, uint16_t head, uint16_t advance)
{
	uint8_t *a = v->win + v->lay[qi].avail;
	uint16_t idx = get16(a + 2), num = (uint16_t)ivl_virtq_num(v->q[qi]);
	put16(a + 4 + 2 * (idx % num), head);
	__atomic_store_n((uint16_t *)(a + 2), htole16((uint16_t)(idx + advance)), __ATOMIC_RELEASE);
}

enum ring_kind {
	R_LOOP,
	R_OUTSIDE,
	R_HUGE_LEN,
	R_NEXT_RANGE,
	R_HEAD_RANGE,
	R_AVAIL_JUMP,
	R_INDIRECT,
	R_TOO_MANY,
	R_GARBAGE,
};
static const char *const rname[] = {"chain-loop", "descriptor-outside-window", "length-2^32-1",
				    "next-index-past-ring", "head-index-past-ring", "avail-index-jump",
				    "indirect-not-negotiated", "too-many-pieces", "ring-memory-garbage"};

/* Send a chain the ring must refuse; the device must set NEEDS_RESET,
 * answer nothing and count nothing; then it is set up again. */
static void ring_step(struct dev *v, unsigned qi, enum ring_kind k, bool poke_rx)
{
	uint8_t *u = v->win + v->lay[qi].used;
	uint16_t used0 = get16(u + 2), num = (uint16_t)ivl_virtq_num(v->q[qi]);
	uint64_t b = (uint64_t)(v->buf - v->win); /* a harmless buffer offset */
	uint16_t w = qi == 0 && poke_rx ? D_WRITE : 0; /* rx chains are writable */
	switch (k) {
	case R_LOOP:
		put_desc(v, qi, 0, b, 16, w | D_NEXT, 1);
		put_desc(v, qi, 1, b + 16, 16, w | D_NEXT, 0);
		publish(v, qi, 0, 1);
		break;
	case R_OUTSIDE:
		put_desc(v, qi, 0, v->win_size + 4096, 16, w, 0);
		publish(v, qi, 0, 1);
		break;
	case R_HUGE_LEN:
		put_desc(v, qi, 0, b, 0xffffffffu, w, 0);
		publish(v, qi, 0, 1);
		break;
	case R_NEXT_RANGE:
		put_desc(v, qi, 0, b, 16, w | D_NEXT, (uint16_t)(num + 500));
		publish(v, qi, 0, 1);
		break;
	case R_HEAD_RANGE:
		publish(v, qi, (uint16_t)(num + 999), 1);
		break;
	case R_AVAIL_JUMP:
		put_desc(v, qi, 0, b, 16, w, 0);
		publish(v, qi, 0, (uint16_t)(num + 1000));
		break;
	case R_INDIRECT:
		put_desc(v, qi, 0, b, 32, D_INDIRECT, 0);
		publish(v, qi, 0, 1);
		break;
	case R_TOO_MANY: { /* more pieces than the device takes in one chain */
		static struct iovec p[72];
		unsigned n = qi == 1 ? 33 : 70;
		for (unsigned i = 0; i < n; i++)
			p[i] = (struct iovec){wbuf(v, 16, 0), 16};
		if (ivl_virtq_add(v->q[qi], p, n - 1, p + n - 1, 1, v) < 0)
			die("add a long chain", -EIO, 0);
		break;
	}
	case R_GARBAGE: /* everything the ring is: descriptors, avail, used */
		memset(v->win + v->lay[qi].desc, 0xa5, v->ring_end[qi] - v->lay[qi].desc);
		used0 = get16(u + 2);
		break;
	}
	kick();
	if (poke_rx) { /* rx chains are popped when a frame waits: send one */
		static const uint8_t bc[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0x88, 0xb6};
		uint8_t f[60];
		memcpy(f, bc, sizeof(f));
		memcpy(f + 6, gp_mac, 6);
		gp_send(f, sizeof(f));
	}
	struct ivl_transport_info info;
	int64_t end = now_ms() + 30000, rekick = now_ms() + 500;
	for (query(v, &info); !(info.status & VS_NEEDS_RESET) && now_ms() < end; query(v, &info)) {
		idle(20);
		if (now_ms() > rekick) {
			kick();
			rekick = now_ms() + 500;
		}
	}
	const char *be;
	int m = moved(v, &be);
	bool ok = (info.status & VS_NEEDS_RESET) && get16(u + 2) == used0 && m == C_NONE;
	step(v, rname[k], ok, "queue %u: status=0x%x%s, used index %s, counters unchanged=%s [%s]", qi,
	     (unsigned)info.status, info.status & VS_NEEDS_RESET ? " (DEVICE_NEEDS_RESET)" : "",
	     get16(u + 2) == used0 ? "unchanged" : "MOVED", m == C_NONE ? "yes" : "NO", be);
	v->broken++;
	v->bump = 0;
	setup(v);
}

/* ---- net ---------------------------------------------------------------------------- */

/* A frame from hn: net header @flags/@gso, then an Ethernet frame of
 * @flen bytes (broadcast, ethertype 0x88b5, source @src). */
static struct iovec frame(struct dev *v, uint8_t flags, uint8_t gso, size_t flen, const uint8_t *src)
{
	uint8_t *b = wbuf(v, 12 + flen, 0);
	b[0] = flags;
	b[1] = gso;
	if (flen >= 14) {
		memset(b + 12, 0xff, 6);
		memcpy(b + 18, src, 6);
		b[24] = 0x88;
		b[25] = 0xb5;
	}
	return (struct iovec){b, 12 + flen};
}

/* A transmit chain that must be refused: used 0, "bad" by one, tx not. */
static void tx_bad(struct dev *v, const char *what, struct iovec *out, unsigned nout, struct iovec *in, unsigned nin)
{
	uint32_t used = ~0u;
	uint64_t tx0 = v->tx;
	int r = roundtrip(v, 1, out, nout, in, nin, &used);
	const char *be;
	int m = moved(v, &be);
	step(v, what, r == 0 && used == 0 && m == C_BAD && v->tx == tx0, "used=%u counter=%s [%s]", used,
	     m == C_BAD ? "bad" : "OTHER", be);
	v->want[C_BAD]++;
	v->bump = 0;
}

static void net_hostile(struct dev *n)
{
	uint8_t src[6], mcast[6] = {0x01, 0x00, 0x5e, 0, 0, 1};
	mac_of(n, src);
	struct iovec f, p[32];
	f = frame(n, 0, 0, 10, src);
	tx_bad(n, "frame-10-bytes", &f, 1, NULL, 0);
	f = frame(n, 0, 0, 0, src);
	tx_bad(n, "header-only", &f, 1, NULL, 0);
	f = frame(n, 0, 0, 1500 + 18 + 1, src);
	tx_bad(n, "frame-mtu+19", &f, 1, NULL, 0);
	for (unsigned i = 0; i < 30; i++)
		p[i] = (struct iovec){wbuf(n, 2000, 0x11), 2000};
	tx_bad(n, "chain-60000-bytes-30-pieces", p, 30, NULL, 0);
	f = frame(n, 1, 0, 60, src);
	tx_bad(n, "flags-needs-csum", &f, 1, NULL, 0);
	f = frame(n, 0, 1, 60, src);
	tx_bad(n, "gso-tcpv4", &f, 1, NULL, 0);
	f = frame(n, 0, 0, 60, src);
	struct iovec w = {wbuf(n, 64, 0), 64};
	tx_bad(n, "writable-piece-in-tx", &f, 1, &w, 1);
	f = frame(n, 0, 0, 60, mcast);
	tx_bad(n, "multicast-source", &f, 1, NULL, 0);

	/* A valid frame split in five pieces (the header too): reaches gp. */
	uint8_t *c = wbuf(n, 12 + 60, 0);
	memcpy(c + 12, gp_mac, 6);
	memcpy(c + 18, src, 6);
	c[24] = 0x88;
	c[25] = 0xb6;
	memcpy(c + 26, "HOSTILE-CONTROL", 15);
	struct iovec cp[5] = {{c, 5}, {c + 5, 7}, {c + 12, 14}, {c + 26, 30}, {c + 56, 16}};
	uint32_t used;
	uint64_t tx0 = n->tx;
	unsigned ctl0 = control;
	int r = roundtrip(n, 1, cp, 5, NULL, 0, &used);
	int64_t end = now_ms() + 20000;
	while (control == ctl0 && now_ms() < end)
		idle(10);
	const char *be;
	int m = moved(n, &be);
	step(n, "valid-frame-in-5-pieces", r == 0 && m == C_NONE && n->tx == tx0 + 1 && control == ctl0 + 1,
	     "tx counted, gp received it: %s [%s]", control == ctl0 + 1 ? "yes" : "NO", be);
	n->bump = 0;

	/* Receive buffers the device cannot use, then a good one; a frame
	 * (gp's broadcast) makes the device take them. */
	struct iovec ro = {wbuf(n, 16, 0), 16}, rw = {wbuf(n, 2048, 0), 2048};
	struct iovec tiny = {wbuf(n, 8, 0), 8}, good = {wbuf(n, 2048, 0), 2048};
	void *tok[3] = {&ro, &tiny, &good}, *t;
	if (ivl_virtq_add(n->q[0], &ro, 1, &rw, 1, tok[0]) < 0 || ivl_virtq_add(n->q[0], NULL, 0, &tiny, 1, tok[1]) < 0 ||
	    ivl_virtq_add(n->q[0], NULL, 0, &good, 1, tok[2]) < 0)
		die("post rx", -EIO, 0);
	ivl_transport_driver_kick(D, n->q[0]);
	uint8_t bcf[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	memcpy(bcf + 6, gp_mac, 6);
	bcf[12] = 0x88;
	bcf[13] = 0xb6;
	gp_send(bcf, sizeof(bcf));
	uint32_t lens[3] = {~0u, ~0u, ~0u};
	unsigned got = 0;
	end = now_ms() + 20000;
	while (got < 3 && now_ms() < end) {
		while (got < 3 && ivl_virtq_get_used(n->q[0], &t, &lens[got]) == 1) {
			if (t != tok[got])
				lens[got] = ~0u - 1;
			got++;
		}
		idle(10);
	}
	m = moved(n, &be);
	n->want[C_BAD] += 2;
	/* Two refusals show as bad += 2: moved() reports that as -2. */
	bool two = m == -2 && n->seen[C_BAD] == n->want[C_BAD];
	step(n, "rx-readable-piece+rx-8-bytes", got == 3 && lens[0] == 0 && lens[1] == 0 && lens[2] > 12 && two,
	     "used lengths %u %u, then a frame of %u in the good buffer; bad +2: %s [%s]", lens[0], lens[1], lens[2],
	     two ? "yes" : "NO", be);
	n->bump = 0;
}

int main(int argc, char **argv)
{
	int secs = 240, c;
	while ((c = getopt(argc, argv, "t:")) != -1)
		if (c == 't')
			secs = atoi(optarg);
	setvbuf(stdout, NULL, _IOLBF, 0);
	deadline = now_ms() + secs * 1000ll;
	struct ivl_link_guest_opts go = {.timeout_ms = 10000};
	int r = ivl_link_guest_new(&L, &go);
	if (r < 0)
		die("open device", r, 0);
	struct ivl_transport_driver_opts to = {.timeout_ms = 20000};
	if ((r = ivl_transport_driver_new(&D, L, &to)) < 0)
		die("find the device host", r, 0);
	uint64_t asz;
	area = ivl_transport_driver_area(D, &asz);
	const struct ivl_transport_ctl *ctl = (const void *)area;
	host_peer = le16toh(ctl->host_peer);
	host_vector = le16toh(ctl->host_vector);
	printf("HOSTILE-ID %d host peer %u\n", ivl_link_id(L), host_peer);

	/* gp first: A pings it before the attack starts. */
	gp.name = "gp";
	create(&gp, IVL_TRANSPORT_VIRTIO_NET, "switch:sw0", 256 << 10, 64);
	setup(&gp);
	mac_of(&gp, gp_mac);
	uint8_t *rxb = wbuf(&gp, GP_BUFS * GP_BUF, 0);
	gp_tx = wbuf(&gp, GP_BUFS * GP_BUF, 0);
	for (unsigned i = 0; i < GP_BUFS; i++) {
		struct iovec in = {rxb + i * GP_BUF, GP_BUF};
		if (ivl_virtq_add(gp.q[0], NULL, 0, &in, 1, in.iov_base) < 0)
			die("post gp rx", -EIO, 0);
	}
	ivl_transport_driver_kick(D, gp.q[0]);
	struct dev h = {.name = "h"}, hro = {.name = "hro"}, hn = {.name = "hn"};
	create(&h, IVL_TRANSPORT_VIRTIO_BLK, "h", 2 << 20, 128);
	create(&hro, IVL_TRANSPORT_VIRTIO_BLK, "hro", 256 << 10, 16);
	create(&hn, IVL_TRANSPORT_VIRTIO_NET, "switch:sw0", 256 << 10, 64);
	setup(&h);
	setup(&hro);
	setup(&hn);
	uint8_t cfg[8], sel[8];
	uint32_t reason;
	uint64_t cap[2];
	struct dev *blks[2] = {&h, &hro};
	for (unsigned i = 0; i < 2; i++) {
		put32(sel, 0);
		put32(sel + 4, 8);
		r = ivl_transport_driver_cmd(D, blks[i]->id, IVL_TRANSPORT_CLASS_CONFIG, IVL_TRANSPORT_CONFIG_READ, sel, 8,
					     cfg, 8, &reason);
		if (r != 8)
			die("read capacity", r < 0 ? r : -EPROTO, reason);
		memcpy(&cap[i], cfg, 8);
		cap[i] = le64toh(cap[i]);
	}
	printf("HOSTILE-READY capacity h=%llu hro=%llu sectors; waiting for A's first 1000-byte ping\n",
	       (unsigned long long)cap[0], (unsigned long long)cap[1]);
	while (!attack_started)
		idle(20);

	const char *be;
	(void)moved(&h, &be);
	(void)moved(&hro, &be);
	(void)moved(&hn, &be);
	blk_legit(&h, cap[0]);
	blk_hostile(&h, cap[0]);
	/* The read-only image: a write fails ("err"), past the end is "range". */
	blk_simple(&hro, "write-read-only", T_OUT, 0, 512, 0, S_IOERR, 1, C_ERR);
	blk_simple(&hro, "read-past-end", T_IN, cap[1], 0, 512, S_IOERR, 1, C_RANGE);
	blk_simple(&hro, "read-sector-0", T_IN, 0, 0, 512, S_OK, 513, C_NONE);
	net_hostile(&hn);
	for (enum ring_kind k = R_LOOP; k <= R_GARBAGE; k++)
		ring_step(&h, 0, k, false);
	blk_simple(&h, "read-after-reset", T_IN, cap[0] - 1, 0, 512, S_OK, 513, C_NONE);
	ring_step(&hn, 1, R_TOO_MANY, false);
	ring_step(&hn, 0, R_LOOP, true);
	ring_step(&hn, 1, R_GARBAGE, false);
	struct iovec f = frame(&hn, 0, 0, 10, gp_mac);
	tx_bad(&hn, "frame-10-bytes-after-reset", &f, 1, NULL, 0);
	/* A's pings were answered amid the attack: wait for three. */
	while (echoes_during < 3)
		idle(20);
	attack_done = true;
	echo_reply(trigger, trigger_ihl, trigger_total);
	struct dev *all[3] = {&h, &hro, &hn};
	for (unsigned i = 0; i < 3; i++) {
		struct dev *v = all[i];
		struct ivl_transport_info info;
		query(v, &info);
		bool same = true;
		for (int k = 0; k < C_N; k++)
			same &= counter(info.backend, cname[k]) == v->want[k] ||
				(counter(info.backend, cname[k]) == ~0ull && k != C_BAD);
		printf("HOSTILE-EXPECT %s id=%llu bad=%llu range=%llu unsupp=%llu err=%llu broken=%u\n", v->name,
		       (unsigned long long)v->id, (unsigned long long)v->want[C_BAD],
		       (unsigned long long)v->want[C_RANGE], (unsigned long long)v->want[C_UNSUPP],
		       (unsigned long long)v->want[C_ERR], v->broken);
		printf("HOSTILE-COUNTERS %s [%s] %s\n", v->name, info.backend, same ? "as expected" : "DIFFERENT");
		nfail += !same;
	}
	printf("HOSTILE-GP id=%llu echoes=%u during-attack=%u leaked=%u tx-full=%u\n", (unsigned long long)gp.id, echoes,
	       echoes_during, leaked, gp_txfull);
	nfail += leaked != 0;
	printf("HOSTILE-DONE %d failed\n", nfail);
	while (!bye)
		idle(20);
	/* The answer to the last ping leaves before we go. */
	int64_t end = now_ms() + 5000;
	for (bool busy = true; busy && now_ms() < end;) {
		idle(10);
		busy = false;
		for (unsigned i = 0; i < GP_BUFS; i++)
			busy |= gp_txbusy[i];
	}
	printf(nfail ? "HOSTILE-FAILED %d\n" : "HOSTILE-PASS\n", nfail);
	return nfail != 0;
}
