/* SPDX-License-Identifier: MIT */
/* SDM routing rules and configuration semantics, on the LOCAL channel. */
#include <errno.h>
#include <string.h>

#include "testutil.h"
#include <ivlink/sdm.h>

struct rec {
	unsigned n;
	struct ivl_sdm_signal last;
	uint16_t from;
	unsigned actions;
	int action_ret;
	unsigned order; /* 1 if the action ran before the handler */
};

static void on_sig(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, uint16_t from, void *op)
{
	struct rec *r = op;

	(void)s;
	r->n++;
	r->last = *sig;
	r->from = from;
	if (r->actions)
		r->order = 1;
}

static int on_action(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, uint16_t from, void *op)
{
	struct rec *r = op;

	(void)s;
	(void)sig;
	(void)from;
	r->actions++;
	return r->action_ret;
}

static struct ivl_sdm *mk(struct ivl_sdm_bus *b, bool master, uint16_t max, uint16_t id, int *err)
{
	struct ivl_sdm_opts o = {
	    .master = master, .max_slaves = max, .id = id, .channel = IVL_SDM_CHAN_LOCAL, .bus = b};
	struct ivl_sdm *s = NULL;

	*err = ivl_sdm_new(&s, &o);
	return s;
}

static void options(void **state)
{
	struct ivl_sdm_opts o = {.master = true, .max_slaves = 0, .channel = IVL_SDM_CHAN_LOCAL};
	struct ivl_sdm_bus *b;
	struct ivl_sdm *s = (void *)1;

	(void)state;
	assert_int_equal(ivl_sdm_bus_new(&b), 0);
	assert_int_equal(ivl_sdm_new(&s, &o), -ERANGE);
	assert_null(s);
	o.max_slaves = 2;
	assert_int_equal(ivl_sdm_new(&s, &o), -EINVAL); /* no bus */
	o.bus = b;
	o.channel = 9;
	assert_int_equal(ivl_sdm_new(&s, &o), -EINVAL);
	o.channel = IVL_SDM_CHAN_LOCAL;
	o.master = false;
	assert_int_equal(ivl_sdm_new(&s, &o), -ENOENT); /* no master yet */
	o.master = true;
	o.max_slaves = IVL_SDM_MAX_SLAVES + 1;
	assert_int_equal(ivl_sdm_new(&s, &o), -ERANGE);
	assert_int_equal(ivl_sdm_new(NULL, &o), -EINVAL);
	ivl_sdm_free(NULL);
	ivl_sdm_bus_free(NULL);
	ivl_sdm_bus_free(b);
}

static void routing(void **state)
{
	struct ivl_sdm_bus *b;
	struct ivl_sdm *m, *s1, *s2;
	struct rec rm = {0}, r1 = {0}, r2 = {0};
	struct ivl_sdm_signal sig = {.type = IVL_SDM_IRQ, .slave = 1, .payload = {5, 6}};
	int err;

	(void)state;
	assert_int_equal(ivl_sdm_bus_new(&b), 0);
	m = mk(b, true, 4, 0, &err);
	assert_int_equal(err, 0);
	assert_null(mk(b, true, 4, 0, &err));
	assert_int_equal(err, -EEXIST);
	s1 = mk(b, false, 0, 0, &err);
	assert_int_equal(err, 0);
	s2 = mk(b, false, 0, 3, &err);
	assert_int_equal(err, 0);
	assert_int_equal(ivl_sdm_id(m), 0);
	assert_int_equal(ivl_sdm_id(s1), 1);
	assert_int_equal(ivl_sdm_id(s2), 3);
	ivl_sdm_set_handler(m, IVL_SDM_IRQ, on_sig, &rm);
	ivl_sdm_set_handler(s1, IVL_SDM_IRQ, on_sig, &r1);
	ivl_sdm_set_handler(s2, IVL_SDM_IRQ, on_sig, &r2);

	/* Master -> slave 1 with payload. */
	assert_int_equal(ivl_sdm_send(m, &sig), 0);
	assert_int_equal(ivl_sdm_process(s2), 0);
	assert_int_equal(ivl_sdm_process(s1), 1);
	assert_int_equal(r1.n, 1);
	assert_int_equal(r1.from, 0);
	assert_int_equal(r1.last.payload[0], 5);
	assert_int_equal(r1.last.payload[1], 6);
	assert_int_equal(r2.n, 0);

	/* Slave -> master. */
	sig.slave = 0;
	sig.payload[0] = 77;
	assert_int_equal(ivl_sdm_send(s2, &sig), 0);
	assert_int_equal(ivl_sdm_process(m), 1);
	assert_int_equal(rm.n, 1);
	assert_int_equal(rm.from, 3);
	assert_int_equal(rm.last.payload[0], 77);

	/* Slave -> slave is refused locally. */
	sig.slave = 1;
	assert_int_equal(ivl_sdm_send(s2, &sig), -EPERM);
	assert_int_equal(ivl_sdm_process(s1), 0);
	assert_int_equal(r1.n, 1);
	/* Master -> itself, -> absent slave, -> out of range, bad type. */
	sig.slave = 0;
	assert_int_equal(ivl_sdm_send(m, &sig), -EINVAL);
	sig.slave = 2;
	assert_int_equal(ivl_sdm_send(m, &sig), -ENOENT);
	sig.slave = IVL_SDM_MAX_SLAVES + 1;
	assert_int_equal(ivl_sdm_send(m, &sig), -EINVAL);
	sig.slave = 1;
	sig.type = 3;
	assert_int_equal(ivl_sdm_send(m, &sig), -EINVAL);
	assert_int_equal(ivl_sdm_set_handler(m, 3, on_sig, NULL), -EINVAL);
	assert_int_equal(ivl_sdm_set_action(m, IVL_SDM_IRQ, on_action, NULL), -EINVAL);

	/* Slave left: the master's send fails, current_slaves follows. */
	ivl_sdm_free(s1);
	sig.type = IVL_SDM_IRQ;
	assert_int_equal(ivl_sdm_send(m, &sig), -ENOENT);
	assert_false(ivl_sdm_slave_present(m, 1));
	assert_true(ivl_sdm_slave_present(m, 3));

	/* Master gone: the slave's send fails with -ENOTCONN. */
	ivl_sdm_free(m);
	sig.slave = 0;
	assert_int_equal(ivl_sdm_send(s2, &sig), -ENOTCONN);
	assert_int_equal(ivl_sdm_state(s2), -ENOTCONN);
	ivl_sdm_free(s2);
	ivl_sdm_bus_free(b);
}

static void config_semantics(void **state)
{
	struct ivl_sdm_bus *b;
	struct ivl_sdm *m, *s[4];
	struct ivl_sdm_config c;
	struct ivl_sdm_stats st;
	int err;

	(void)state;
	assert_int_equal(ivl_sdm_bus_new(&b), 0);
	m = mk(b, true, 3, 0, &err);
	assert_non_null(m);
	assert_int_equal(ivl_sdm_get_config(m, &c), 0);
	assert_true(c.master);
	assert_int_equal(c.max_slaves, 3);
	assert_int_equal(c.current_slaves, 0);
	for (int i = 0; i < 3; i++) {
		s[i] = mk(b, false, 0, 0, &err);
		assert_int_equal(err, 0);
	}
	assert_int_equal(ivl_sdm_get_config(m, &c), 0);
	assert_int_equal(c.current_slaves, 3);
	/* Full. */
	assert_null(mk(b, false, 0, 0, &err));
	assert_int_equal(err, -EUSERS);
	/* ID taken (after raising the limit). */
	assert_int_equal(ivl_sdm_set_max_slaves(m, 5), 0);
	assert_null(mk(b, false, 0, 2, &err));
	assert_int_equal(err, -EADDRINUSE);
	assert_null(mk(b, false, 0, 6, &err));
	assert_int_equal(err, -ERANGE);
	/* Lowering below current keeps everybody, refuses newcomers. */
	assert_int_equal(ivl_sdm_set_max_slaves(m, 1), 0);
	assert_int_equal(ivl_sdm_get_config(m, &c), 0);
	assert_int_equal(c.max_slaves, 1);
	assert_int_equal(c.current_slaves, 3);
	assert_true(ivl_sdm_slave_present(m, 3));
	assert_null(mk(b, false, 0, 0, &err));
	assert_int_equal(err, -EUSERS);
	ivl_sdm_free(s[0]);
	ivl_sdm_free(s[1]);
	assert_int_equal(ivl_sdm_get_config(m, &c), 0);
	assert_int_equal(c.current_slaves, 1);
	assert_null(mk(b, false, 0, 0, &err)); /* 1 >= 1: still full */
	assert_int_equal(err, -EUSERS);
	ivl_sdm_free(s[2]);
	s[3] = mk(b, false, 0, 0, &err);
	assert_int_equal(err, 0);
	assert_int_equal(ivl_sdm_id(s[3]), 1);
	assert_int_equal(ivl_sdm_set_max_slaves(m, 0), -ERANGE);
	assert_int_equal(ivl_sdm_set_max_slaves(s[3], 4), -EINVAL);
	assert_int_equal(ivl_sdm_get_config(s[3], &c), 0);
	assert_false(c.master);
	assert_int_equal(c.current_slaves, 0);
	assert_int_equal(ivl_sdm_get_stats(m, &st), 0);
	assert_int_equal(st.conn_accepted, 4);
	assert_int_equal(st.conn_refused, 5);
	ivl_sdm_free(s[3]);
	ivl_sdm_free(m);
	ivl_sdm_bus_free(b);
}

static void actions(void **state)
{
	struct ivl_sdm_bus *b;
	struct ivl_sdm *m, *s;
	struct rec r = {0};
	struct ivl_sdm_signal sig = {.type = IVL_SDM_BOOT, .slave = 1, .payload = {0x1000, 0}};
	struct ivl_sdm_stats st;
	int err;

	(void)state;
	assert_int_equal(ivl_sdm_bus_new(&b), 0);
	m = mk(b, true, 2, 0, &err);
	s = mk(b, false, 0, 1, &err);
	assert_non_null(s);
	ivl_sdm_set_action(s, IVL_SDM_BOOT, on_action, &r);
	ivl_sdm_set_handler(s, IVL_SDM_BOOT, on_sig, &r);
	assert_int_equal(ivl_sdm_send(m, &sig), 0);
	assert_int_equal(ivl_sdm_process(s), 1);
	assert_int_equal(r.actions, 1);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.order, 1);
	/* A failing action drops the signal before the application. */
	r.action_ret = -EIO;
	assert_int_equal(ivl_sdm_send(m, &sig), 0);
	assert_int_equal(ivl_sdm_process(s), 0);
	assert_int_equal(r.actions, 2);
	assert_int_equal(r.n, 1);
	assert_int_equal(ivl_sdm_get_stats(s, &st), 0);
	assert_int_equal(st.dropped_action, 1);
	assert_int_equal(st.received, 1);
	/* RESET has an action slot too; IRQ has no action. */
	assert_int_equal(ivl_sdm_set_action(s, IVL_SDM_RESET, on_action, &r), 0);
	/* Many signals in one process() (more than one drain batch). */
	r.action_ret = 0;
	sig.type = IVL_SDM_IRQ;
	for (int i = 0; i < 200; i++)
		assert_int_equal(ivl_sdm_send(m, &sig), 0);
	assert_int_equal(ivl_sdm_process(s), 200);
	ivl_sdm_free(s);
	ivl_sdm_free(m);
	ivl_sdm_bus_free(b);
}

/* IVL_SDM_ALL (seed 000's mailbox): every registered slave gets the signal
 * with its payload, as a signal of the master naming itself; only the
 * master may broadcast; backpressure on one slave fails the whole
 * broadcast; a slave gone is skipped, the others still get it. */
static void broadcast(void **state)
{
	struct ivl_sdm_bus *b;
	struct ivl_sdm *m, *sl[3], *late;
	struct rec rm = {0}, r[3] = {{0}}, rl = {0};
	struct ivl_sdm_signal sig = {.type = IVL_SDM_IRQ, .slave = IVL_SDM_ALL, .payload = {7, 9}};
	struct ivl_sdm_stats st;
	int err;

	(void)state;
	assert_int_equal(ivl_sdm_bus_new(&b), 0);
	m = mk(b, true, 8, 0, &err);
	assert_non_null(m);
	ivl_sdm_set_handler(m, IVL_SDM_IRQ, on_sig, &rm);
	/* Nobody registered: reaches nobody, not an error. */
	assert_int_equal(ivl_sdm_send(m, &sig), 0);
	for (int i = 0; i < 3; i++) {
		sl[i] = mk(b, false, 0, (uint16_t)(2 * i + 1), &err);
		assert_int_equal(err, 0);
		ivl_sdm_set_handler(sl[i], IVL_SDM_IRQ, on_sig, &r[i]);
		ivl_sdm_set_handler(sl[i], IVL_SDM_BOOT, on_sig, &r[i]);
	}
	assert_int_equal(ivl_sdm_send(m, &sig), 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ivl_sdm_process(sl[i]), 1);
		assert_int_equal(r[i].n, 1);
		assert_int_equal(r[i].from, 0);
		assert_int_equal(r[i].last.slave, (uint32_t)(2 * i + 1));
		assert_int_equal(r[i].last.payload[0], 7);
		assert_int_equal(r[i].last.payload[1], 9);
		assert_int_equal(ivl_sdm_process(sl[i]), 0); /* exactly one */
	}
	/* A slave may not broadcast. */
	assert_int_equal(ivl_sdm_send(sl[0], &sig), -EPERM);
	assert_int_equal(ivl_sdm_process(m), 0);
	assert_int_equal(rm.n, 0);
	/* BOOT to all, within a batch between unicasts. */
	{
		struct ivl_sdm_signal v[3] = {{IVL_SDM_IRQ, 1, {1, 0}},
					      {IVL_SDM_BOOT, IVL_SDM_ALL, {0x1000, 0}},
					      {IVL_SDM_IRQ, 5, {2, 0}}};

		assert_int_equal(ivl_sdm_send_batch(m, v, 3), 3);
	}
	assert_int_equal(ivl_sdm_process(sl[0]), 2);
	assert_int_equal(ivl_sdm_process(sl[1]), 1);
	assert_int_equal(ivl_sdm_process(sl[2]), 2);
	assert_int_equal(r[1].last.type, IVL_SDM_BOOT);
	assert_int_equal(r[2].last.payload[0], 2);
	/* Slave 3's inbox full: the broadcast fails as a whole. */
	{
		struct ivl_sdm_signal u = {IVL_SDM_IRQ, 3, {0, 0}};
		int k = 0;

		while (ivl_sdm_send(m, &u) == 0)
			k++;
		assert_true(k > 0);
		assert_int_equal(ivl_sdm_send(m, &u), -EAGAIN);
	}
	assert_int_equal(ivl_sdm_send(m, &sig), -EAGAIN);
	assert_int_equal(ivl_sdm_process(sl[0]), 0);
	assert_int_equal(ivl_sdm_process(sl[2]), 0);
	assert_true(ivl_sdm_process(sl[1]) > 0); /* drained */
	r[1].n = 0;
	assert_int_equal(ivl_sdm_send(m, &sig), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ivl_sdm_process(sl[i]), 1);
	/* Slave 1 gone, slave 2 new: the broadcast follows the registry. */
	ivl_sdm_free(sl[0]);
	sl[0] = NULL;
	late = mk(b, false, 0, 2, &err);
	assert_int_equal(err, 0);
	ivl_sdm_set_handler(late, IVL_SDM_IRQ, on_sig, &rl);
	assert_int_equal(ivl_sdm_send(m, &sig), 3);
	assert_int_equal(ivl_sdm_process(late), 1);
	assert_int_equal(rl.last.slave, 2);
	assert_int_equal(ivl_sdm_process(sl[1]), 1);
	assert_int_equal(ivl_sdm_process(sl[2]), 1);
	assert_int_equal(ivl_sdm_get_stats(m, &st), 0);
	assert_int_equal(ivl_sdm_get_stats(late, &st), 0);
	assert_int_equal(st.dropped_forged, 0);
	ivl_sdm_free(late);
	for (int i = 1; i < 3; i++)
		ivl_sdm_free(sl[i]);
	ivl_sdm_free(m);
	ivl_sdm_bus_free(b);
}

/* In-order check of one slave's signals: payload[0] counts up from 0. */
struct seq {
	uint32_t next;
	unsigned bad;
};

static void on_seq(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, uint16_t from, void *op)
{
	struct seq *q = op;

	(void)s, (void)from;
	q->bad += sig->payload[0] != q->next;
	q->next++;
}

/* A master's batch goes to its rings in runs of one destination: runs to
 * several slaves interleaved, a run that wraps the ring, a batch larger
 * than the room, and a batch stopping at a slave that is not there. */
static const uint16_t dest[] = {1, 1, 2, 2, 2, 1, 3, 3, 1, 2};
#define NDEST (int)(sizeof(dest) / sizeof(dest[0]))
static void batch_runs(void **state)
{
	static struct ivl_sdm_signal v[1100];
	struct ivl_sdm_bus *b;
	struct ivl_sdm *m, *sl[3];
	struct seq q[3] = {{0}};
	uint32_t per[3] = {0};
	int err, got;

	(void)state;
	assert_int_equal(ivl_sdm_bus_new(&b), 0);
	m = mk(b, true, 4, 0, &err);
	assert_non_null(m);
	for (int i = 0; i < 3; i++) {
		sl[i] = mk(b, false, 0, (uint16_t)(i + 1), &err);
		assert_int_equal(err, 0);
		ivl_sdm_set_handler(sl[i], IVL_SDM_IRQ, on_seq, &q[i]);
	}
	for (int k = 0; k < NDEST; k++)
		v[k] = (struct ivl_sdm_signal){IVL_SDM_IRQ, dest[k], {per[dest[k] - 1]++, 0}};
	assert_int_equal(ivl_sdm_send_batch(m, v, NDEST), NDEST);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ivl_sdm_process(sl[i]), (int)per[i]);
		assert_int_equal(q[i].bad, 0);
	}
	/* Slave 1: its ring index is now 4; 1000 more, then a batch of 100
	 * that crosses the end of the 1024-entry ring. */
	for (unsigned k = 0; k < 1000; k++)
		v[k] = (struct ivl_sdm_signal){IVL_SDM_IRQ, 1, {per[0]++, 0}};
	assert_int_equal(ivl_sdm_send_batch(m, v, 1000), 1000);
	assert_int_equal(ivl_sdm_process(sl[0]), 1000);
	for (unsigned k = 0; k < 100; k++)
		v[k] = (struct ivl_sdm_signal){IVL_SDM_IRQ, 1, {per[0]++, 0}};
	assert_int_equal(ivl_sdm_send_batch(m, v, 100), 100);
	assert_int_equal(ivl_sdm_process(sl[0]), 100);
	assert_int_equal(q[0].bad, 0);
	assert_int_equal(q[0].next, per[0]);
	/* More than the ring holds: what fits, then -EAGAIN. */
	for (unsigned k = 0; k < 1100; k++)
		v[k] = (struct ivl_sdm_signal){IVL_SDM_IRQ, 2, {per[1] + k, 0}};
	got = ivl_sdm_send_batch(m, v, 1100);
	assert_true(got > 0 && got < 1100);
	per[1] += (uint32_t)got;
	assert_int_equal(ivl_sdm_send_batch(m, v, 1), -EAGAIN);
	assert_int_equal(ivl_sdm_process(sl[1]), got);
	assert_int_equal(q[1].bad, 0);
	/* Slave 3 leaves: a batch stops at its first signal. */
	ivl_sdm_free(sl[2]);
	sl[2] = NULL;
	v[0] = (struct ivl_sdm_signal){IVL_SDM_IRQ, 1, {per[0]++, 0}};
	v[1] = (struct ivl_sdm_signal){IVL_SDM_IRQ, 1, {per[0]++, 0}};
	v[2] = (struct ivl_sdm_signal){IVL_SDM_IRQ, 3, {0, 0}};
	v[3] = (struct ivl_sdm_signal){IVL_SDM_IRQ, 1, {per[0], 0}};
	assert_int_equal(ivl_sdm_send_batch(m, v, 4), 2);
	assert_int_equal(ivl_sdm_send_batch(m, &v[2], 2), -ENOENT);
	assert_int_equal(ivl_sdm_process(sl[0]), 2);
	assert_int_equal(q[0].bad, 0);
	for (int i = 0; i < 2; i++)
		ivl_sdm_free(sl[i]);
	ivl_sdm_free(m);
	ivl_sdm_bus_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(options),
	    cmocka_unit_test(routing),
	    cmocka_unit_test(config_semantics),
	    cmocka_unit_test(actions),
	    cmocka_unit_test(broadcast),
	    cmocka_unit_test(batch_runs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
