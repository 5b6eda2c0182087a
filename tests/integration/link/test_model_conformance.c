/* SPDX-License-Identifier: MIT */
/*
 * One driver, two devices: the guest conformance scenarios that
 * tests/qemu/run-link-test.sh runs inside QEMU guests (scenario.c) run here
 * in process against the ivshmem device model, with the same expectations.
 *
 * Each "guest" is the guest backend driving the model through the register
 * seam (ivl__link_guest_over_model); the model's server connection is a
 * host link to a real ivlink-server, pumped by a thread the way QEMU's main
 * loop reads the device's eventfds.  Host peers are threads doing what
 * ivl-host-peer does (with -a: acknowledge each doorbell in shared memory).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ivlink/ivshmem.h>
#include <ivlink/link-device.h>
#include <ivlink/link.h>

#include "link/guest-internal.h"
#include "scenario.h"
#include "testutil.h"

#define REGION_SIZE (1024u * 1024u)
#define ACK_OFF 262144 /* as run-link-test.sh */
#define VECTORS 4

/* ---- one guest: backing host link + model + guest link ---------------------- */

struct guest {
	struct tu_pump pump; /* the model (.ld) and the device's server
			      * connection (.backing) */
	struct ivl_link *l;  /* the guest driver's link over the model */
	char *out; /* the scenario's GUEST-* lines */
	size_t outlen;
	struct scn_opts so;
	int failures;
};

/* Open guest @id (the ID it must get) for scenario @mode. */
static void guest_open(struct guest *g, const char *sock, const char *mode, long id)
{
	struct ivl_link_host_opts ho = {
	    .socket_path = sock, .vectors = VECTORS, .name = "model", .timeout_ms = 5000};

	memset(g, 0, sizeof(*g));
	assert_int_equal(ivl_link_host_new(&g->pump.backing, &ho), 0);
	assert_int_equal(
	    ivl__link_guest_over_model(&g->l, &g->pump.ld, g->pump.backing, 5000), 0);
	assert_int_equal(tu_pump_start(&g->pump), 0);
	scn_opts_init(&g->so);
	g->so.mode = mode;
	g->so.expect_id = id;
	g->so.timeout_ms = 30000;
}

static void *guest_run(void *arg)
{
	struct guest *g = arg;
	FILE *f = open_memstream(&g->out, &g->outlen);

	if (!f) {
		g->failures = 1;
		return NULL;
	}
	g->so.out = f;
	g->failures = scn_run(g->l, &g->so);
	fclose(f);
	fputs(g->out, stderr); /* the log of the run, as the serial console */
	return NULL;
}

static void guest_close(struct guest *g)
{
	tu_pump_stop(&g->pump);
	ivl_link_free(g->l); /* frees the model too */
	ivl_link_free(g->pump.backing);
	free(g->out);
}

/* A line of the scenario's output starting with @prefix. */
static int has_line(const struct guest *g, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *p = g->out; p && *p;) {
		const char *nl = strchr(p, '\n');

		if (!strncmp(p, prefix, n))
			return 1;
		if (!nl)
			break;
		p = nl + 1;
	}
	return 0;
}

static void expect(const struct guest *g, const char *prefix)
{
	if (!has_line(g, prefix))
		fail_msg("no line \"%s\" in the scenario's output", prefix);
}

static void expect_no_failures(const struct guest *g)
{
	assert_int_equal(g->failures, 0);
	assert_false(has_line(g, "GUEST-CHECK-FAIL"));
	assert_false(has_line(g, "GUEST-ERROR"));
}

/* ---- host peers (ivl-host-peer) -------------------------------------------- */

struct hpeer {
	const char *sock;
	uint64_t want;	   /* vectors that must be rung (-e) */
	bool ack;	   /* -a ACK_OFF */
	uint32_t rings[8]; /* PEER << 16 | VEC (-r) */
	int nrings;
	atomic_bool *go; /* ring only once set (-f); NULL: at once */
	uint64_t got;
	atomic_int id; /* -2: connecting, -1: failed */
	int ring_failures;
	pthread_t t;
};

static void *hpeer_main(void *arg)
{
	struct hpeer *h = arg;
	struct ivl_link_host_opts ho = {
	    .socket_path = h->sock, .vectors = VECTORS, .timeout_ms = 5000};
	struct ivl_link *l;
	struct ivl_link_event ev[16];
	int64_t deadline = tu_now_ms() + 30000;
	volatile uint64_t *acks = NULL;

	if (ivl_link_host_new(&l, &ho) < 0) {
		atomic_store(&h->id, -1);
		return NULL;
	}
	atomic_store(&h->id, ivl_link_id(l));
	if (h->ack) {
		uint64_t asz;
		uint8_t *app = ivl_link_app_area(l, &asz);

		if (app && ACK_OFF + 8 * 65536 <= asz)
			acks = (volatile uint64_t *)(app + ACK_OFF);
	}
	while ((h->got & h->want) != h->want && tu_now_ms() < deadline) {
		int n = ivl_link_wait(l, ev, 16, 50);

		for (int i = 0; i < n; i++) {
			if (ev[i].type != IVL_LINK_DOORBELL || ev[i].vector >= 64)
				continue;
			h->got |= 1ull << ev[i].vector;
			if (acks) /* pairs with the guest's acquire load */
				__atomic_or_fetch(&acks[h->id], 1ull << ev[i].vector,
						  __ATOMIC_RELEASE);
		}
	}
	while (h->go && !atomic_load(h->go) && tu_now_ms() < deadline)
		ivl_link_wait(l, ev, 16, 20);
	for (int i = 0; i < h->nrings; i++)
		if (ivl_link_ring(l, (uint16_t)(h->rings[i] >> 16), (uint16_t)h->rings[i]) < 0)
			h->ring_failures++;
	ivl_link_free(l);
	return NULL;
}

static void hpeer_start(struct hpeer *h)
{
	atomic_init(&h->id, -2);
	assert_int_equal(pthread_create(&h->t, NULL, hpeer_main, h), 0);
}

/* ---- the scenarios ------------------------------------------------------------ */

/* Is @sock a listening UNIX socket?  Asked of /proc/net/unix rather than
 * by connecting (as tu_wait_socket does): a probe would be given ID 0, and
 * the scenarios expect the IDs QEMU guests get. */
static int listening(const char *sock)
{
	char *t = tu_read_file("/proc/net/unix");
	int found = 0;

	for (char *p = t, *nl; p && *p && !found; p = nl + 1) {
		size_t n;

		nl = strchr(p, '\n');
		if (!nl)
			break;
		*nl = '\0';
		n = strlen(p);
		found = n > strlen(sock) && !strcmp(p + n - strlen(sock), sock) &&
			p[n - strlen(sock) - 1] == ' ' && strstr(p, " 00010000 ") != NULL;
	}
	free(t);
	return found;
}

static pid_t start_server(const char *sock, const char *extra)
{
	const char *log = tu_path(tu_tmpdir(), "server.log");
	char *argv[] = {
	    (char *)tu_server_bin(), "-S", (char *)sock, "--memfd", "-l", "1M", "-n", "4",
	    (char *)extra,	     NULL};
	pid_t pid;

	if (!argv[0])
		skip();
	pid = tu_spawn(argv, log);
	assert_true(pid > 0);
	for (int64_t end = tu_now_ms() + 10000; !listening(sock);) {
		if (tu_now_ms() > end) {
			tu_kill(pid);
			fail_msg("ivlink-server did not listen on %s", sock);
		}
		usleep(5000);
	}
	return pid;
}

static void stop_server(pid_t pid)
{
	assert_int_equal(kill(pid, 0), 0); /* it survived the scenario */
	tu_kill(pid);
}

/* run-link-test.sh's "link": guest 0, host peer 1 acknowledging. */
static void scenario_link(void **state)
{
	const char *sock = tu_path(tu_tmpdir(), "link.sock");
	pid_t srv = start_server(sock, NULL);
	struct hpeer h = {
	    .sock = sock, .want = 0xf, .ack = true, .nrings = 4, .rings = {0, 1, 2, 3}};
	struct ivl_ivshmem_stats st;
	struct guest g;
	char line[64];

	(void)state;
	guest_open(&g, sock, "link", 0);
	g.so.expect_size = REGION_SIZE;
	g.so.expect_vectors = VECTORS;
	g.so.peers[g.so.npeers++] = 1;
	g.so.ack_off = ACK_OFF;
	hpeer_start(&h);
	guest_run(&g);
	pthread_join(h.t, NULL);

	expect_no_failures(&g);
	expect(&g, "GUEST-CHECK-OK id");
	expect(&g, "GUEST-CHECK-OK bar2-size");
	expect(&g, "GUEST-CHECK-OK vectors");
	assert_int_equal(atomic_load(&h.id), 1);
	expect(&g, "GUEST-JOIN 1 vectors=4");
	assert_int_equal(h.got & 0xf, 0xf); /* HOST-DOORBELL vector=0..3 */
	assert_int_equal(h.ring_failures, 0);
	for (int v = 0; v < VECTORS; v++) {
		snprintf(line, sizeof(line), "GUEST-DOORBELL vector=%d ", v);
		expect(&g, line);
	}
	expect(&g, "GUEST-CHECK-OK doorbells-on-all-4-vectors");
	expect(&g, "GUEST-LEAVE 1");
	expect(&g, "GUEST-CHECK-OK peers-left");
	/* The device did the work: register writes became doorbells, and
	 * doorbells became MSI-X vectors. */
	ivl_ivshmem_get_stats(ivl_link_device_model(g.pump.ld), &st);
	assert_true(st.rings >= 4);
	assert_true(st.msi_raised >= 4);
	assert_int_equal(st.bad_size + st.bad_offset + st.write_read_only, 0);
	guest_close(&g);
	stop_server(srv);
}

/* "raw": ivlink-server --raw; no header, no peer set, region untouched. */
static void scenario_raw(void **state)
{
	const char *sock = tu_path(tu_tmpdir(), "raw.sock");
	pid_t srv = start_server(sock, "--raw");
	struct ivl_ivshmem_stats st;
	struct guest g;

	(void)state;
	guest_open(&g, sock, "raw", 0);
	g.so.expect_size = REGION_SIZE;
	g.so.expect_vectors = VECTORS;
	guest_run(&g);
	expect_no_failures(&g);
	expect(&g, "GUEST-CHECK-OK id");
	expect(&g, "GUEST-CHECK-OK bar2-size");
	expect(&g, "GUEST-CHECK-OK raw-no-header");
	expect(&g, "GUEST-CHECK-OK raw-no-peers");
	expect(&g, "GUEST-CHECK-OK raw-peer-vectors-any-id");
	expect(&g, "GUEST-CHECK-OK raw-ring-absent-id");
	expect(&g, "GUEST-CHECK-OK raw-region-untouched");
	/* The driver accepted the ring to absent ID 9; the device dropped it. */
	ivl_ivshmem_get_stats(ivl_link_device_model(g.pump.ld), &st);
	assert_int_equal(st.drop_peer, 1);
	assert_int_equal(st.rings, 0);
	guest_close(&g);
	stop_server(srv);
}

static void *guest_thread(void *arg)
{
	return guest_run(arg);
}

/* "pair": two guests (two models on one server) ring each other. */
static void scenario_pair(void **state)
{
	const char *sock = tu_path(tu_tmpdir(), "pair.sock");
	pid_t srv = start_server(sock, NULL);
	struct guest g[2];
	pthread_t t[2];

	(void)state;
	for (int i = 0; i < 2; i++) {
		guest_open(&g[i], sock, "pair", i);
		g[i].so.peers[g[i].so.npeers++] = (unsigned)(1 - i);
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, guest_thread, &g[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 2; i++) {
		expect_no_failures(&g[i]);
		expect(&g[i], i ? "GUEST-JOIN 0 vectors=4" : "GUEST-JOIN 1 vectors=4");
		expect(&g[i], "GUEST-CHECK-OK doorbells-on-all-4-vectors");
	}
	for (int i = 0; i < 2; i++)
		guest_close(&g[i]);
	stop_server(srv);
}

/* "hostile": garbage over the header; host peers 1 and 2 keep working. */
static void scenario_hostile(void **state)
{
	const char *sock = tu_path(tu_tmpdir(), "hostile.sock");
	pid_t srv = start_server(sock, NULL);
	atomic_bool go;
	struct hpeer h1 = {.sock = sock, .want = 1u << 1};
	struct hpeer h2 = {.sock = sock, .nrings = 1, .rings = {1u << 16 | 1}, .go = &go};
	struct guest g;

	(void)state;
	atomic_init(&go, false);
	guest_open(&g, sock, "hostile", 0);
	g.so.peers[g.so.npeers++] = 1;
	g.so.peers[g.so.npeers++] = 2;
	hpeer_start(&h1);
	/* h1 must be peer 1 (h2 rings 1:1): let it connect first. */
	for (int64_t end = tu_now_ms() + 10000; atomic_load(&h1.id) == -2 && tu_now_ms() < end;)
		usleep(1000);
	assert_int_equal(atomic_load(&h1.id), 1);
	hpeer_start(&h2);
	guest_run(&g);
	atomic_store(&go, true);
	pthread_join(h2.t, NULL);
	pthread_join(h1.t, NULL);
	expect_no_failures(&g);
	expect(&g, "GUEST-HOSTILE wrote ");
	expect(&g, "GUEST-HOSTILE-DONE");
	assert_int_equal(h2.ring_failures, 0);
	assert_true(h1.got & (1u << 1)); /* HOST-DOORBELL vector=1 */
	guest_close(&g);
	stop_server(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(scenario_link),
	    cmocka_unit_test(scenario_raw),
	    cmocka_unit_test(scenario_pair),
	    cmocka_unit_test(scenario_hostile),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
