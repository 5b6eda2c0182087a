/* SPDX-License-Identifier: MIT */
/*
 * ivlink demo, step "sdm": a master and two slaves of the Signal
 * Distribution Module on the demo's link (docs/sdm.md).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

/* ---- SDM over the link ---------------------------------------------------- */

/* Offset of the SDM mailboxes in the app area: past the message step's. */
#define DEMO_SDM_OFFSET 4096u
#define DEMO_SDM_SLAVES 2

struct demo_sdm_node {
	struct ivl_link *link;
	struct ivl_sdm *sdm;
	unsigned actions;	/* BOOT actions run */
	bool boot_after_action; /* the BOOT handler found its action done */
	unsigned irqs;		/* IRQs delivered */
	uint16_t from[DEMO_SDM_SLAVES + 1];
	struct ivl_sdm_signal last;
};

struct demo_sdm {
	struct demo_sdm_node n[DEMO_SDM_SLAVES + 1]; /* [0] the master */
};

static int demo_sdm_boot_action(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig,
				uint16_t from, void *opaque)
{
	struct demo_sdm_node *n = opaque;

	(void)sdm, (void)sig, (void)from;
	n->actions++;
	return 0;
}

static void demo_sdm_on_boot(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig, uint16_t from,
			     void *opaque)
{
	struct demo_sdm_node *n = opaque;

	(void)sdm, (void)from;
	n->boot_after_action = n->actions > 0;
	n->last = *sig;
}

static void demo_sdm_on_irq(struct ivl_sdm *sdm, const struct ivl_sdm_signal *sig, uint16_t from,
			    void *opaque)
{
	struct demo_sdm_node *n = opaque;

	(void)sdm;
	if (n->irqs < DEMO_SDM_SLAVES + 1)
		n->from[n->irqs] = from;
	n->irqs++;
	n->last = *sig;
}

/* Process the SDM objects until @done holds or the step's time is up. */
static bool demo_sdm_pump(struct demo *d, struct demo_sdm *x,
			  bool (*done)(const struct demo_sdm *x))
{
	int64_t end = demo_now_ms() + STEP_TIMEOUT_MS;

	if (end > d->deadline)
		end = d->deadline;
	for (;;) {
		struct pollfd pf[DEMO_SDM_SLAVES + 1];

		for (int i = 0; i <= DEMO_SDM_SLAVES; i++) {
			ivl_sdm_process(x->n[i].sdm);
			pf[i] =
			    (struct pollfd){.fd = ivl_sdm_get_fd(x->n[i].sdm), .events = POLLIN};
		}
		if (done(x))
			return true;
		if (demo_now_ms() >= end)
			return false;
		if (poll(pf, DEMO_SDM_SLAVES + 1, 20) < 0 && errno != EINTR)
			return false;
	}
}

static bool demo_sdm_registered(const struct demo_sdm *x)
{
	struct ivl_sdm_config c;

	for (int i = 1; i <= DEMO_SDM_SLAVES; i++)
		if (ivl_sdm_state(x->n[i].sdm) != 0)
			return false;
	return ivl_sdm_get_config(x->n[0].sdm, &c) == 0 && c.current_slaves == DEMO_SDM_SLAVES;
}

static bool demo_sdm_booted(const struct demo_sdm *x)
{
	for (int i = 1; i <= DEMO_SDM_SLAVES; i++)
		if (x->n[i].last.type != IVL_SDM_BOOT)
			return false;
	return true;
}

static bool demo_sdm_slaves_irq(const struct demo_sdm *x)
{
	for (int i = 1; i <= DEMO_SDM_SLAVES; i++)
		if (!x->n[i].irqs)
			return false;
	return true;
}

static bool demo_sdm_master_irq(const struct demo_sdm *x)
{
	return x->n[0].irqs >= DEMO_SDM_SLAVES;
}

static int demo_sdm_nodes(struct demo *d, struct demo_sdm *x)
{
	static const char *const names[] = {"sdm-master", "sdm-slave1", "sdm-slave2"};
	struct ivl_sdm_opts o = {.master = true,
				    .max_slaves = DEMO_SDM_SLAVES,
				    .channel = IVL_SDM_CHAN_LINK,
				    .link_offset = DEMO_SDM_OFFSET};

	for (int i = 0; i <= DEMO_SDM_SLAVES; i++) {
		struct ivl_link_host_opts lo = {
		    .socket_path = d->sock, .name = names[i], .timeout_ms = STEP_TIMEOUT_MS};
		struct demo_sdm_node *n = &x->n[i];
		int r = ivl_link_host_new(&n->link, &lo);

		if (r < 0) {
			n->link = NULL;
			demo_missing(d, "%s cannot join the server: %s", names[i], strerror(-r));
			return r;
		}
		o.link = n->link;
		o.id = (uint16_t)i;
		if (i == 0)
			o.link_master = (uint16_t)ivl_link_id(n->link);
		r = ivl_sdm_new(&n->sdm, &o);
		if (r < 0) {
			demo_missing(d, "%s: cannot start SDM on the link: %s", names[i],
				     strerror(-r));
			return r;
		}
		o.master = false;
		ivl_sdm_set_handler(n->sdm, IVL_SDM_IRQ, demo_sdm_on_irq, n);
		if (i > 0) {
			ivl_sdm_set_action(n->sdm, IVL_SDM_BOOT, demo_sdm_boot_action, n);
			ivl_sdm_set_handler(n->sdm, IVL_SDM_BOOT, demo_sdm_on_boot, n);
		}
	}
	return 0;
}

static void demo_sdm_free(struct demo_sdm *x)
{
	/* The SDM objects borrow the links: free them first. */
	for (int i = 0; i <= DEMO_SDM_SLAVES; i++)
		ivl_sdm_free(x->n[i].sdm);
	for (int i = 0; i <= DEMO_SDM_SLAVES; i++)
		ivl_link_free(x->n[i].link);
}

/* A master and two slaves on the link channel: BOOT (action first), IRQ
 * with payload both ways, a slave addressing a slave refused locally. */
int step_sdm(struct demo *d)
{
	struct demo_sdm x = {0};
	struct ivl_sdm_stats st;
	struct ivl_sdm_config cfg = {0};
	json_t *j = json_object(), *acts = json_array();
	int ok = 0, r;

	d->sdm = j;
	json_object_set_new(j, "channel", json_string("link"));
	json_object_set_new(j, "offset", json_integer(DEMO_SDM_OFFSET));
	if (demo_sdm_nodes(d, &x) < 0)
		goto out;
	demo_say(d,
		 "sdm: a master (link peer %d) and two slaves join the link; mailboxes at app "
		 "offset %u",
		 ivl_link_id(x.n[0].link), DEMO_SDM_OFFSET);
	if (!demo_sdm_pump(d, &x, demo_sdm_registered)) {
		demo_missing(d, "the SDM slaves did not both register");
		goto out;
	}
	ivl_sdm_get_config(x.n[0].sdm, &cfg);
	demo_say(d, "  slaves %d and %d registered, current_slaves %u", ivl_sdm_id(x.n[1].sdm),
		 ivl_sdm_id(x.n[2].sdm), cfg.current_slaves);
	json_object_set_new(j, "current_slaves", json_integer(cfg.current_slaves));
	ok++;

	for (uint32_t i = 1; i <= DEMO_SDM_SLAVES; i++) {
		struct ivl_sdm_signal boot = {IVL_SDM_BOOT, i, {0x80000000u, 0}};

		demo_say(d, "sdm master boots slave %u at 0x%08x", i, boot.payload[0]);
		if ((r = ivl_sdm_send(x.n[0].sdm, &boot)) < 0)
			demo_missing(d, "the master could not boot slave %u: %s", i, strerror(-r));
	}
	if (demo_sdm_pump(d, &x, demo_sdm_booted)) {
		for (int i = 1; i <= DEMO_SDM_SLAVES; i++) {
			if (!x.n[i].boot_after_action || x.n[i].actions != 1 ||
			    x.n[i].last.payload[0] != 0x80000000u)
				demo_missing(d, "slave %d: the boot action did not run first", i);
			else
				demo_say(
				    d,
				    "  slave %d: boot action ran, then the handler (entry 0x%08x)",
				    i, x.n[i].last.payload[0]);
		}
		ok++;
	} else {
		demo_missing(d, "a BOOT signal did not arrive");
	}

	/* The seed's mailbox: one broadcast interrupts every registered
	 * slave with the same payload. */
	{
		struct ivl_sdm_signal irq = {IVL_SDM_IRQ, IVL_SDM_ALL, {3, 16}};

		demo_say(d, "sdm master interrupts all slaves at once (broadcast), mailbox payload %u %u",
			 irq.payload[0], irq.payload[1]);
		if ((r = ivl_sdm_send(x.n[0].sdm, &irq)) < 0)
			demo_missing(d, "the master could not broadcast: %s", strerror(-r));
		else if (r != DEMO_SDM_SLAVES)
			demo_missing(d, "the broadcast reached %d slaves, not %d", r, DEMO_SDM_SLAVES);
		else
			json_object_set_new(j, "broadcast_slaves", json_integer(r));
	}
	if (demo_sdm_pump(d, &x, demo_sdm_slaves_irq)) {
		for (uint32_t i = 1; i <= DEMO_SDM_SLAVES; i++) {
			const struct ivl_sdm_signal *g = &x.n[i].last;

			if (x.n[i].from[0] != IVL_SDM_MASTER || x.n[i].irqs != 1 || g->slave != i ||
			    g->payload[0] != 3 || g->payload[1] != 16)
				demo_missing(d, "slave %u: wrong IRQ (from %u, payload %u %u)", i,
					     x.n[i].from[0], g->payload[0], g->payload[1]);
			else
				demo_say(d, "  slave %u: irq from the master, payload %u %u", i,
					 g->payload[0], g->payload[1]);
		}
		ok++;
	} else {
		demo_missing(d, "an IRQ to a slave did not arrive");
	}

	for (uint32_t i = 1; i <= DEMO_SDM_SLAVES; i++) {
		struct ivl_sdm_signal irq = {IVL_SDM_IRQ, IVL_SDM_MASTER, {i, 0xabc}};

		demo_say(d, "sdm slave %u interrupts the master, payload %u 0x%x", i,
			 irq.payload[0], irq.payload[1]);
		if ((r = ivl_sdm_send(x.n[i].sdm, &irq)) < 0)
			demo_missing(d, "slave %u could not interrupt the master: %s", i,
				     strerror(-r));
	}
	if (demo_sdm_pump(d, &x, demo_sdm_master_irq)) {
		unsigned seen = 0;

		for (int k = 0; k < DEMO_SDM_SLAVES; k++)
			if (x.n[0].from[k] >= 1 && x.n[0].from[k] <= DEMO_SDM_SLAVES)
				seen |= 1u << x.n[0].from[k];
		if (seen != 0x6u || x.n[0].last.payload[1] != 0xabc)
			demo_missing(d, "the master's IRQs did not come from slaves 1 and 2");
		else
			demo_say(d, "  master: irq from slave %u and from slave %u", x.n[0].from[0],
				 x.n[0].from[1]);
		ok++;
	} else {
		demo_missing(d, "an IRQ to the master did not arrive");
	}

	/* Routing: a slave signals only the master, refused before any wire. */
	r = ivl_sdm_send(x.n[1].sdm, &(struct ivl_sdm_signal){IVL_SDM_IRQ, 2, {0, 0}});
	if (r != -EPERM) {
		demo_missing(d, "slave 1 -> slave 2 was not refused (%d)", r);
	} else {
		demo_say(d, "sdm slave 1 -> slave 2: refused locally (%s)", strerror(-r));
		json_object_set_new(j, "slave_to_slave", json_string("refused"));
		ok++;
	}
	if (ivl_sdm_get_stats(x.n[0].sdm, &st) == 0) {
		json_object_set_new(j, "master_received", json_integer((json_int_t)st.received));
		json_object_set_new(j, "master_sent", json_integer((json_int_t)st.sent));
		json_object_set_new(j, "dropped_forged",
				    json_integer((json_int_t)st.dropped_forged));
		/* A boot per slave, then one broadcast (one signal in stats). */
		if (st.sent != DEMO_SDM_SLAVES + 1 || st.received != DEMO_SDM_SLAVES ||
		    st.dropped_forged)
			demo_missing(d, "master counters: sent %llu, received %llu, forged %llu",
				     (unsigned long long)st.sent, (unsigned long long)st.received,
				     (unsigned long long)st.dropped_forged);
	}
	for (int i = 1; i <= DEMO_SDM_SLAVES; i++)
		json_array_append_new(acts, json_integer(x.n[i].actions));
out:
	json_object_set_new(j, "boot_actions", acts);
	json_object_set_new(j, "checks_passed", json_integer(ok));
	demo_sdm_free(&x);
	return 0;
}
