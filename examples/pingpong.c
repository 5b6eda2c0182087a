/* SPDX-License-Identifier: MIT */
/*
 * Two peers of one ivlink-server bounce a counter through shared memory,
 * with a doorbell each way.  Run the server, then this program twice:
 *
 *   ivlink-server -S /tmp/pp.sock -l 1M -n 1 &
 *   ./pingpong /tmp/pp.sock 100000 adaptive &   # the first one waits
 *   ./pingpong /tmp/pp.sock 100000 adaptive
 *
 * The peer with the lower ID serves the ball.  Wait modes: interrupt, poll,
 * adaptive.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ivlink/ivlink.h>

static int fail(const char *what, int err)
{
	fprintf(stderr, "pingpong: %s: %s\n", what, strerror(-err));
	return 1;
}

/* Wait for a doorbell on vector 0; note joins and leaves meanwhile. */
static int wait_ball(struct ivl_link *l, int *other)
{
	struct ivl_link_event ev[8];

	for (;;) {
		int n = ivl_link_wait(l, ev, 8, 10000);
		if (n < 0)
			return n;
		if (n == 0)
			return -ETIMEDOUT;
		for (int i = 0; i < n; i++) {
			if (ev[i].type == IVL_LINK_JOIN && *other < 0)
				*other = ev[i].peer;
			else if (ev[i].type == IVL_LINK_LEAVE && ev[i].peer == *other)
				return -ECONNRESET;
			else if (ev[i].type == IVL_LINK_DOWN)
				return -ENOTCONN;
			else if (ev[i].type == IVL_LINK_DOORBELL && ev[i].vector == 0)
				return 0;
		}
	}
}

int main(int argc, char **argv)
{
	struct ivl_link_host_opts o = { .name = "pingpong" };
	enum ivl_wait_mode mode = IVL_WAIT_INTERRUPT;
	unsigned long rounds = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000;
	struct ivl_link *l;
	_Atomic uint64_t *ball;
	uint64_t size;
	struct timespec t0, t1;
	int other = -1, rung = 0, first, r;

	if (argc < 2) {
		fprintf(stderr, "usage: pingpong SOCKET [ROUNDS] [interrupt|poll|adaptive]\n");
		return 2;
	}
	if (argc > 3)
		mode = !strcmp(argv[3], "poll") ? IVL_WAIT_POLL
		       : !strcmp(argv[3], "adaptive") ? IVL_WAIT_ADAPTIVE : IVL_WAIT_INTERRUPT;
	o.socket_path = argv[1];
	if ((r = ivl_link_host_new(&l, &o)) < 0)
		return fail("connect", r);
	if ((r = ivl_link_set_wait_mode(l, mode, 0)) < 0)
		return fail("wait mode", r);
	ball = ivl_link_app_area(l, &size);
	/* Learn the other peer: an existing one arrives as a JOIN event. */
	while (other < 0) {
		struct ivl_link_event ev[8];
		int n = ivl_link_wait(l, ev, 8, 30000);
		if (n <= 0)
			return fail("waiting for the other peer", n ? n : -ETIMEDOUT);
		for (int i = 0; i < n; i++) {
			if (ev[i].type == IVL_LINK_JOIN)
				other = ev[i].peer;
			/* The other side may serve as soon as it sees us. */
			if (ev[i].type == IVL_LINK_DOORBELL && ev[i].vector == 0)
				rung = 1;
		}
	}
	printf("I am peer %d, playing with peer %d (%s)\n", ivl_link_id(l), other,
	       ivl_link_peer_name(l, (uint16_t)other));
	/*
	 * The ball's value says whose turn it is: in round i the lower ID moves
	 * it from 2i to 2i+1, the other from 2i+1 to 2i+2.  A doorbell only
	 * means "look again": doorbells are delivered at least once (a wait
	 * mode that polls the pending bits can report one twice), so the value
	 * in shared memory, not the count of doorbells, decides.
	 */
	first = ivl_link_id(l) < other;
	if (first)
		atomic_store(ball, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned long i = 0; i < rounds; i++) {
		uint64_t want = 2 * (uint64_t)i + (first ? 0 : 1);

		/* The second player's first look waits for a doorbell: the
		 * value left by an earlier game means nothing before that. */
		while ((i == 0 && !first && !rung) || atomic_load(ball) != want) {
			rung = 1;
			if ((r = wait_ball(l, &other)) < 0)
				return fail("waiting for the ball", r);
		}
		atomic_store(ball, want + 1);
		r = ivl_link_ring(l, (uint16_t)other, 0);
		/* The last move ends the game: the other player may have
		 * seen it in shared memory and left before this ring. */
		if (r == -ENOENT && !first && i + 1 == rounds)
			break;
		if (r < 0)
			return fail("ring", r);
	}
	/* The first player stays for the second's last move, so that both
	 * report the whole game. */
	while (first && rounds && atomic_load(ball) != 2 * (uint64_t)rounds)
		if ((r = wait_ball(l, &other)) < 0)
			return fail("waiting for the last move", r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%lu rounds, ball at %llu, %.2f us per round trip\n", rounds,
	       (unsigned long long)atomic_load(ball),
	       ((t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3) / rounds);
	ivl_link_free(l);
	return 0;
}
