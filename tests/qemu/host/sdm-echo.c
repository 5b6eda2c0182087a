/* SPDX-License-Identifier: MIT */
/*
 * sdm-echo: an SDM slave on a UNIX channel that sends every IRQ it gets
 * back to the master, payload unchanged; the far end of the guest-sdm
 * round-trip measurement (run-guest-sdm-test.sh rtt).  Prints "echo
 * registered ID" once registered; runs until SIGTERM.
 *
 * usage: sdm-echo PATH
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <ivlink/sdm.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_irq(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig, uint16_t from, void *op)
{
	struct ivl_sdm_signal back = {.type = IVL_SDM_IRQ, .slave = IVL_SDM_MASTER,
				      .payload = {sig->payload[0], sig->payload[1]}};
	int r;

	(void)from;
	(void)op;
	/* Backpressure (-EAGAIN) is brief here: one signal in flight. */
	while ((r = ivl_sdm_send(sdm, &back)) == -EAGAIN && !stop)
		(void)ivl_sdm_process(sdm);
	if (r < 0)
		fprintf(stderr, "sdm-echo: send: %s\n", strerror(-r));
}

int main(int argc, char **argv)
{
	struct ivl_sdm_opts o = {.channel = IVL_SDM_CHAN_UNIX};
	struct ivl_sdm *s;
	bool said = false;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: sdm-echo PATH\n");
		return 2;
	}
	o.path = argv[1];
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	setvbuf(stdout, NULL, _IOLBF, 0);
	r = ivl_sdm_new(&s, &o);
	if (r == 0)
		r = ivl_sdm_set_handler(s, IVL_SDM_IRQ, on_irq, NULL);
	if (r < 0) {
		fprintf(stderr, "sdm-echo: %s\n", strerror(-r));
		return 1;
	}
	while (!stop) {
		struct pollfd p = {.fd = ivl_sdm_get_fd(s), .events = POLLIN};
		int t = ivl_sdm_timeout_ms(s);

		(void)poll(&p, 1, t < 0 || t > 100 ? 100 : t);
		(void)ivl_sdm_process(s);
		if (!said && ivl_sdm_id(s) > 0) {
			printf("echo registered %d\n", ivl_sdm_id(s));
			said = true;
		}
	}
	ivl_sdm_free(s);
	return 0;
}
