/* SPDX-License-Identifier: MIT */
/*
 * The managed network's L2 switch and transmit checks (src/virtio/
 * net-switch.c): learning, flooding, bounded per-port FIFOs, order kept
 * per port, a port that stops reading costs only itself, a port's
 * addresses forgotten when it leaves; every refused header counted.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "virtio/net-switch.h"

#define MAC(x) {0x02, 0, 0, 0, 0, (x)}
static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* A frame dst <- src with a 32-bit sequence number as payload. */
static size_t frame(uint8_t *f, const uint8_t *dst, uint8_t src, uint32_t seq)
{
	const uint8_t s[6] = MAC(src);
	memcpy(f, dst, 6);
	memcpy(f + 6, s, 6);
	f[12] = 0x88;
	f[13] = 0xb5; /* local experimental ethertype */
	memcpy(f + 14, &seq, 4);
	memset(f + 18, (int)seq, 42);
	return 60;
}

static uint32_t take(struct ivl__nsw_port *p)
{
	size_t len;
	const uint8_t *f = ivl__nsw_peek(p, &len);
	assert_non_null(f);
	assert_int_equal(len, 60);
	uint32_t seq;
	memcpy(&seq, f + 14, 4);
	ivl__nsw_pop(p);
	return seq;
}

static void test_learn_flood(void **state)
{
	(void)state;
	struct ivl__nsw *sw;
	struct ivl__nsw_port *p[3];
	struct ivl__nsw_stats st;
	uint8_t f[64];
	size_t len;
	assert_int_equal(ivl__nsw_new(&sw, ""), -EINVAL);
	assert_int_equal(ivl__nsw_new(&sw, "0123456789abcdef"), -EINVAL);
	assert_int_equal(ivl__nsw_new(&sw, "sw0"), 0);
	assert_string_equal(ivl__nsw_name(sw), "sw0");
	for (int i = 0; i < 3; i++)
		assert_int_equal(ivl__nsw_port_add(sw, 1518, &p[i]), 0);
	assert_int_equal(ivl__nsw_ports(sw), 3);

	/* Unknown unicast floods to every other port, once each. */
	const uint8_t to2[6] = MAC(2);
	assert_int_equal(ivl__nsw_input(p[0], f, frame(f, to2, 1, 100)), 2);
	assert_true(ivl__nsw_take_arrived(p[1]));
	assert_false(ivl__nsw_take_arrived(p[1]));
	assert_int_equal(take(p[1]), 100);
	assert_int_equal(take(p[2]), 100);
	assert_null(ivl__nsw_peek(p[0], &len));
	assert_null(ivl__nsw_peek(p[1], &len));
	/* Port 1 answers from MAC 2: learnt; port 0's MAC 1 is known: only
	 * port 0 gets it. */
	const uint8_t to1[6] = MAC(1);
	assert_int_equal(ivl__nsw_input(p[1], f, frame(f, to1, 2, 101)), 1);
	assert_int_equal(take(p[0]), 101);
	assert_null(ivl__nsw_peek(p[2], &len));
	/* Now MAC 2 is known too. */
	assert_int_equal(ivl__nsw_input(p[0], f, frame(f, to2, 1, 102)), 1);
	assert_int_equal(take(p[1]), 102);
	assert_null(ivl__nsw_peek(p[2], &len));
	/* Broadcast and multicast flood. */
	assert_int_equal(ivl__nsw_input(p[2], f, frame(f, bcast, 3, 103)), 2);
	const uint8_t mcast[6] = {0x01, 0x00, 0x5e, 0, 0, 1};
	assert_int_equal(ivl__nsw_input(p[2], f, frame(f, mcast, 3, 104)), 2);
	assert_int_equal(take(p[0]), 103);
	assert_int_equal(take(p[0]), 104);
	assert_int_equal(take(p[1]), 103);
	assert_int_equal(take(p[1]), 104);
	/* A frame for the sender's own address goes nowhere. */
	assert_int_equal(ivl__nsw_input(p[0], f, frame(f, to1, 1, 105)), 0);
	for (int i = 0; i < 3; i++)
		assert_null(ivl__nsw_peek(p[i], &len));
	/* MAC 2 moves to port 2: learnt there. */
	assert_int_equal(ivl__nsw_input(p[2], f, frame(f, to1, 2, 106)), 1);
	assert_int_equal(take(p[0]), 106);
	assert_int_equal(ivl__nsw_input(p[0], f, frame(f, to2, 1, 107)), 1);
	assert_int_equal(take(p[2]), 107);
	/* Short frames and multicast sources are refused and counted. */
	assert_int_equal(ivl__nsw_input(p[0], f, 13), -EINVAL);
	frame(f, to2, 1, 108);
	f[6] = 0x03;
	assert_int_equal(ivl__nsw_input(p[0], f, 60), -EINVAL);
	ivl__nsw_port_stats(p[0], &st);
	assert_int_equal(st.drop_bad, 2);
	assert_int_equal(st.in, 4);
	/* A port that leaves takes its addresses: MAC 2 floods again. */
	ivl__nsw_port_del(p[2]);
	assert_int_equal(ivl__nsw_input(p[0], f, frame(f, to2, 1, 109)), 1);
	assert_int_equal(take(p[1]), 109);
	ivl__nsw_free(sw);
}

/* Port 2 never reads: its FIFO fills to IVL__NSW_QMAX and drops, counted;
 * port 1, reading, gets every frame in order; nothing waits. */
static void test_stalled_port(void **state)
{
	(void)state;
	struct ivl__nsw *sw;
	struct ivl__nsw_port *p[3];
	struct ivl__nsw_stats st;
	uint8_t f[64];
	size_t len;
	assert_int_equal(ivl__nsw_new(&sw, "sw1"), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ivl__nsw_port_add(sw, 1518, &p[i]), 0);
	uint32_t next = 0;
	for (uint32_t s = 0; s < 3 * IVL__NSW_QMAX; s++) {
		assert_int_equal(ivl__nsw_input(p[0], f, frame(f, bcast, 1, s)), 2);
		if (s % 3 == 2) /* port 1 reads in bursts */
			while (ivl__nsw_peek(p[1], &len))
				assert_int_equal(take(p[1]), next++);
	}
	while (ivl__nsw_peek(p[1], &len))
		assert_int_equal(take(p[1]), next++);
	assert_int_equal(next, 3 * IVL__NSW_QMAX);
	ivl__nsw_port_stats(p[1], &st);
	assert_int_equal(st.drop_full, 0);
	assert_int_equal(st.out, 3 * IVL__NSW_QMAX);
	ivl__nsw_port_stats(p[2], &st);
	assert_int_equal(st.queued, IVL__NSW_QMAX);
	assert_int_equal(st.drop_full, 2 * IVL__NSW_QMAX);
	/* The stalled port holds the oldest frames, in order. */
	for (uint32_t s = 0; s < IVL__NSW_QMAX; s++)
		assert_int_equal(take(p[2]), s);
	/* Frames beyond a port's size are dropped for it alone. */
	assert_int_equal(ivl__nsw_port_add(sw, 59, &p[2]), 0);
	assert_int_equal(ivl__nsw_input(p[0], f, frame(f, bcast, 1, 7)), 3);
	ivl__nsw_port_stats(p[2], &st);
	assert_int_equal(st.drop_big, 1);
	assert_null(ivl__nsw_peek(p[2], &len));
	assert_int_equal(take(p[1]), 7);
	ivl__nsw_free(sw); /* frees the ports and their queued frames */
}

static void test_tx_check(void **state)
{
	(void)state;
	uint8_t b[12 + 1518 + 1] = {0};
	const uint8_t *fr;
	size_t fl;
	assert_int_equal(ivl__net_tx_check(b, 25, 1500, &fr, &fl), IVL__NET_BAD_SHORT);
	assert_int_equal(ivl__net_tx_check(b, 26, 1500, &fr, &fl), IVL__NET_OK);
	assert_ptr_equal(fr, b + 12);
	assert_int_equal(fl, 14);
	assert_int_equal(ivl__net_tx_check(b, 12 + 1518, 1500, &fr, &fl), IVL__NET_OK);
	assert_int_equal(ivl__net_tx_check(b, 12 + 1519, 1500, &fr, &fl), IVL__NET_BAD_LONG);
	assert_int_equal(ivl__net_tx_check(b, 12 + 1519, 1501, &fr, &fl), IVL__NET_OK);
	b[0] = 1; /* NEEDS_CSUM */
	assert_int_equal(ivl__net_tx_check(b, 60, 1500, &fr, &fl), IVL__NET_BAD_FLAGS);
	b[0] = 0;
	b[1] = 1; /* GSO_TCPV4 */
	assert_int_equal(ivl__net_tx_check(b, 60, 1500, &fr, &fl), IVL__NET_BAD_GSO);
	b[1] = 0;
	b[12 + 6] = 1; /* multicast source */
	assert_int_equal(ivl__net_tx_check(b, 60, 1500, &fr, &fl), IVL__NET_BAD_SRC);
	b[12 + 6] = 0;
	memset(b + 2, 0xff, 10); /* meaningless on transmit: ignored */
	assert_int_equal(ivl__net_tx_check(b, 60, 1500, &fr, &fl), IVL__NET_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_learn_flood),
	    cmocka_unit_test(test_stalled_port),
	    cmocka_unit_test(test_tx_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
