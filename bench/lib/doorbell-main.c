/* SPDX-License-Identifier: MIT */
/*
 * The doorbell suite: runs every measurement of doorbell.c and the raw
 * primitives in one process and reports ratios (table or JSON).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <jansson.h>

#include "doorbell.h"
#include "primitives.h"

static const char usage[] =
	"Usage: bench_doorbell [--iters N] [--burst N] [--idle-ms MS] [--spin-ns NS] [--json]\n"
	"\n"
	"Round-trip latency (p50/p99) of the raw wake-up primitives and of ivlink links\n"
	"in each wait mode, burst throughput of doorbells to a busy receiver with\n"
	"eventfd writes per doorbell, an idle receiver's CPU use, and the eventfd\n"
	"writes rings cost while an interrupt-mode receiver is busy with a batch;\n"
	"all in one run, reported as ratios to the primitives (--burst / 5000 bursts\n"
	"of 50 rings for the busy receiver).\n";

static const char *mode_name[] = { "interrupt", "poll", "adaptive" };

struct lat {
	const char *name;
	double p50_us, p99_us;
	int err;
};

static int measure_prim(const struct bench_prim *p, unsigned iters, uint64_t *buf, struct lat *out)
{
	out->name = p->name;
	out->err = bench_prim_run(p, iters, buf);
	if (out->err < 0)
		return out->err;
	out->p50_us = bench_percentile(buf, iters, 50) / 1e3;
	out->p99_us = bench_percentile(buf, iters, 99) / 1e3;
	return 0;
}

static int report(int err, const char *what, const char *mode)
{
	fprintf(stderr, "bench_doorbell: %s %s: %s\n", what, mode, strerror(-err));
	return 1;
}

/*
 * The target ratios, measured interleaved: on a shared VM the cost of a
 * wake-up drifts by tens of percent between runs seconds apart, so each of
 * @rounds rounds measures the raw primitive and the link mode back to back
 * and the median of the per-round ratios is reported (with min and max).
 */
struct ratio {
	const char *what;
	double median, min, max;
	int err;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void set_ratio(struct ratio *out, double *r, unsigned n, int err);

static const struct bench_prim *find_prim(const char *name)
{
	for (const struct bench_prim *p = bench_prims; p->name; p++)
		if (!strcmp(p->name, name))
			return p;
	return NULL;
}

/* p50 of one run of @prim, or of the link in @mode when @prim is NULL. */
static int p50_of(const struct bench_prim *prim, enum ivl_wait_mode mode, uint32_t spin_ns,
		  unsigned iters, uint64_t *buf, double *out)
{
	int e = prim ? bench_prim_run(prim, iters, buf)
		     : bench_link_roundtrip(mode, spin_ns, iters, buf);

	if (e < 0)
		return e;
	*out = (double)bench_percentile(buf, iters, 50);
	return 0;
}

/* Per round: the primitive @prim_name, then the link in @mode (or, when
 * @vs_prim is set, that second primitive); the ratio is second / first. */
static void interleaved(const char *prim_name, const char *vs_prim, enum ivl_wait_mode mode,
			uint32_t spin_ns, unsigned iters, unsigned rounds, uint64_t *buf,
			struct ratio *out)
{
	const struct bench_prim *prim = find_prim(prim_name);
	const struct bench_prim *vs = vs_prim ? find_prim(vs_prim) : NULL;
	double r[64];
	unsigned n = 0;

	out->err = prim && (vs || !vs_prim) ? 0 : -ENOENT;
	if (rounds > 64)
		rounds = 64;
	for (unsigned i = 0; i < rounds && !out->err; i++) {
		double a, b;

		if ((out->err = p50_of(prim, mode, spin_ns, iters, buf, &a)) < 0 ||
		    (out->err = p50_of(vs, mode, spin_ns, iters, buf, &b)) < 0)
			break;
		if (a > 0)
			r[n++] = b / a;
	}
	set_ratio(out, r, n, out->err);
}

static void set_ratio(struct ratio *out, double *r, unsigned n, int err)
{
	out->err = err;
	if (!n) {
		out->median = out->min = out->max = 0;
		if (!out->err)
			out->err = -EIO;
		return;
	}
	qsort(r, n, sizeof(r[0]), cmp_double);
	out->median = r[n / 2];
	out->min = r[0];
	out->max = r[n - 1];
}

/*
 * The burst targets, interleaved the same way: each round bursts @rings
 * doorbells through the two floors (one eventfd write per doorbell; one
 * contended atomic RMW per doorbell) and through a link in poll and in
 * adaptive mode, back to back.  out[]: poll / RMW, adaptive / RMW, poll /
 * eventfd, adaptive / eventfd (rate ratios: above 1 is faster).
 */
static void interleaved_burst(uint32_t spin_ns, unsigned rings, unsigned rounds,
			      struct ratio out[4])
{
	double r[4][64];
	unsigned n = 0;
	int err = 0;

	if (rounds > 64)
		rounds = 64;
	for (unsigned i = 0; i < rounds && !err; i++) {
		uint64_t rmw = 0, efd = 0;
		struct bench_burst_result b[2];

		if ((err = bench_raw_rmw_burst(rings, &rmw)) < 0 ||
		    (err = bench_raw_burst(rings, &efd)) < 0 ||
		    (err = bench_link_burst(IVL_WAIT_POLL, spin_ns, rings, &b[0])) < 0 ||
		    (err = bench_link_burst(IVL_WAIT_ADAPTIVE, spin_ns, rings, &b[1])) < 0)
			break;
		if (!b[0].ns || !b[1].ns)
			continue;
		for (int m = 0; m < 2; m++) {
			r[m][n] = (double)rmw / (double)b[m].ns;
			r[2 + m][n] = (double)efd / (double)b[m].ns;
		}
		n++;
	}
	for (int k = 0; k < 4; k++)
		set_ratio(&out[k], r[k], n, err);
}

static double find_p50(const struct lat *l, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(l[i].name, name) && !l[i].err)
			return l[i].p50_us;
	return 0;
}

/* Eventfd writes beyond the one that wakes the sleeping receiver at the
 * start of each burst, per ring made while it was busy. */
static double busy_extra(const struct bench_busy_result *b, bool per_burst)
{
	uint64_t busy_rings = b->rings > b->bursts ? b->rings - b->bursts : 0;
	uint64_t extra = b->eventfd_writes > b->bursts ? b->eventfd_writes - b->bursts : 0;

	if (per_burst)
		return b->bursts ? (double)extra / (double)b->bursts : 0;
	return busy_rings ? (double)extra / (double)busy_rings : 0;
}

int bench_doorbell_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "iters", required_argument, NULL, 'i' }, { "burst", required_argument, NULL, 'b' },
		{ "idle-ms", required_argument, NULL, 'd' }, { "spin-ns", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },          { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned iters = 20000, burst = 1000000, idle_ms = 2000, spin_ns = IVL_SPIN_DEFAULT_NS;
	struct lat lats[16];
	size_t nl = 0;
	struct bench_burst_result br[3];
	uint64_t raw_ns = 0, rmw_ns = 0, *buf;
	double idle[3] = { 0 };
	int json = 0, c, ret = 0;
	struct utsname un;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		char *end;
		unsigned long v = 0;

		if (c == 'j') {
			json = 1;
			continue;
		}
		if (c == 'h') {
			fputs(usage, stdout);
			return 0;
		}
		if (c == '?')
			return 2;
		v = strtoul(optarg, &end, 10);
		if (*end || !v || v > 100000000) {
			fprintf(stderr, "bench_doorbell: bad number '%s'\n", optarg);
			return 2;
		}
		if (c == 'i')
			iters = (unsigned)v;
		else if (c == 'b')
			burst = (unsigned)v;
		else if (c == 'd')
			idle_ms = (unsigned)v;
		else if (c == 's')
			spin_ns = (unsigned)v;
	}
	buf = calloc(iters, sizeof(*buf));
	if (!buf)
		return 1;

	/* (a) latency: primitives first, links after, same process. */
	for (const struct bench_prim *p = bench_prims; p->name; p++)
		measure_prim(p, iters, buf, &lats[nl++]);
	static const char *link_name[] = { "link-interrupt", "link-poll", "link-adaptive" };
	for (int m = 0; m < 3; m++) {
		struct lat *l = &lats[nl++];
		l->name = link_name[m];
		l->err = bench_link_roundtrip((enum ivl_wait_mode)m, spin_ns, iters, buf);
		if (!l->err) {
			l->p50_us = bench_percentile(buf, iters, 50) / 1e3;
			l->p99_us = bench_percentile(buf, iters, 99) / 1e3;
		} else {
			ret = report(l->err, "round trip", mode_name[m]);
		}
	}
	/* (b) burst */
	if ((c = bench_raw_burst(burst, &raw_ns)) < 0)
		ret = report(c, "raw burst", "");
	if ((c = bench_raw_rmw_burst(burst, &rmw_ns)) < 0)
		ret = report(c, "contended RMW burst", "");
	for (int m = 0; m < 3; m++)
		if ((c = bench_link_burst((enum ivl_wait_mode)m, spin_ns, burst, &br[m])) < 0)
			ret = report(c, "burst", mode_name[m]);
	/* (e) a receiver busy with each batch, the sender ringing on */
	struct bench_busy_result busy = { 0 };
	unsigned busy_bursts = burst / 5000 ? burst / 5000 : 1;
	if ((c = bench_link_busy(busy_bursts, 50, 2000, 50000, &busy)) < 0)
		ret = report(c, "busy receiver", "interrupt");
	/* (c) idle CPU */
	for (int m = 0; m < 3; m++)
		if ((c = bench_link_idle((enum ivl_wait_mode)m, spin_ns, idle_ms, &idle[m])) < 0)
			ret = report(c, "idle", mode_name[m]);

	/* (d) the target ratios, interleaved (see interleaved()). */
	struct ratio rat[4] = { { .what = "link-interrupt / eventfd" },
				{ .what = "link-adaptive / polled-cache-line" },
				{ .what = "link-adaptive / bitmask-doorbell" },
				{ .what = "bitmask-doorbell / polled-cache-line" } };
	unsigned riters = iters / 4 ? iters / 4 : 1;
	interleaved("eventfd", NULL, IVL_WAIT_INTERRUPT, spin_ns, riters, 9, buf, &rat[0]);
	interleaved("polled-cache-line", NULL, IVL_WAIT_ADAPTIVE, spin_ns, riters, 9, buf, &rat[1]);
	interleaved("bitmask-doorbell", NULL, IVL_WAIT_ADAPTIVE, spin_ns, riters, 9, buf, &rat[2]);
	interleaved("polled-cache-line", "bitmask-doorbell", IVL_WAIT_ADAPTIVE, spin_ns, riters, 9,
		    buf, &rat[3]);
	for (int k = 0; k < 4; k++)
		if (rat[k].err)
			ret = report(rat[k].err, "interleaved", rat[k].what);
	struct ratio brat[4] = { { .what = "link-poll burst / contended RMW" },
				 { .what = "link-adaptive burst / contended RMW" },
				 { .what = "link-poll burst / eventfd write" },
				 { .what = "link-adaptive burst / eventfd write" } };
	unsigned bround = burst / 10 ? burst / 10 : 1;
	interleaved_burst(spin_ns, bround, 9, brat);
	if (brat[0].err)
		ret = report(brat[0].err, "interleaved", "burst");

	double efd = find_p50(lats, nl, "eventfd"), pol = find_p50(lats, nl, "polled-cache-line");
	double raw_rate = raw_ns ? burst / (raw_ns / 1e9) : 0;
	double rmw_rate = rmw_ns ? burst / (rmw_ns / 1e9) : 0;
	uname(&un);

	if (json) {
		json_t *root = json_object(), *jl = json_array(), *jb = json_array(), *ji = json_array();
		json_object_set_new(root, "machine", json_sprintf("%s %s, %ld CPUs", un.sysname,
								  un.release, sysconf(_SC_NPROCESSORS_ONLN)));
		json_object_set_new(root, "iters", json_integer(iters));
		json_object_set_new(root, "spin_ns", json_integer(spin_ns));
		for (size_t i = 0; i < nl; i++)
			json_array_append_new(jl, json_pack("{s:s, s:f, s:f, s:f, s:f, s:i}", "name",
							    lats[i].name, "p50_us", lats[i].p50_us,
							    "p99_us", lats[i].p99_us,
							    "x_eventfd", efd ? lats[i].p50_us / efd : 0,
							    "x_polled", pol ? lats[i].p50_us / pol : 0,
							    "error", lats[i].err));
		json_object_set_new(root, "latency", jl);
		json_object_set_new(root, "raw_eventfd_burst_per_s", json_real(raw_rate));
		json_object_set_new(root, "raw_contended_rmw_burst_per_s", json_real(rmw_rate));
		for (int m = 0; m < 3; m++) {
			double rate = br[m].ns ? br[m].rings / (br[m].ns / 1e9) : 0;
			json_array_append_new(
				jb, json_pack("{s:s, s:f, s:f, s:f, s:f, s:I}", "mode", mode_name[m],
					      "doorbells_per_s", rate, "x_raw", raw_rate ? rate / raw_rate : 0,
					      "x_rmw", rmw_rate ? rate / rmw_rate : 0,
					      "eventfd_writes_per_doorbell",
					      br[m].rings ? (double)br[m].eventfd_writes / br[m].rings : 0,
					      "received_count", (json_int_t)br[m].received));
			json_array_append_new(ji, json_pack("{s:s, s:f}", "mode", mode_name[m],
							    "cpu_percent", idle[m]));
		}
		json_object_set_new(root, "burst", jb);
		json_t *jr = json_array();
		for (int k = 0; k < 4; k++)
			json_array_append_new(jr, json_pack("{s:s, s:f, s:f, s:f}", "ratio",
							    rat[k].what, "median", rat[k].median,
							    "min", rat[k].min, "max", rat[k].max));
		json_object_set_new(root, "interleaved_p50_ratios", jr);
		json_t *jbr = json_array();
		for (int k = 0; k < 4; k++)
			json_array_append_new(jbr, json_pack("{s:s, s:f, s:f, s:f}", "ratio",
							     brat[k].what, "median", brat[k].median,
							     "min", brat[k].min, "max", brat[k].max));
		json_object_set_new(root, "interleaved_burst_ratios", jbr);
		json_object_set_new(root, "idle", ji);
		json_object_set_new(
			root, "busy_receiver",
			json_pack("{s:I, s:I, s:I, s:I, s:f, s:f}", "bursts", (json_int_t)busy.bursts,
				  "rings", (json_int_t)busy.rings, "eventfd_writes",
				  (json_int_t)busy.eventfd_writes, "batches", (json_int_t)busy.batches,
				  "busy_eventfd_writes_per_ring", busy_extra(&busy, false),
				  "busy_eventfd_writes_per_burst", busy_extra(&busy, true)));
		json_dumpf(root, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(root);
	} else {
		printf("doorbell benchmark: %s %s, %ld CPUs; %u round trips each, spin budget %u ns\n\n",
		       un.sysname, un.release, sysconf(_SC_NPROCESSORS_ONLN), iters, spin_ns);
		printf("(a) round trip            p50 us    p99 us   x eventfd  x polled\n");
		for (size_t i = 0; i < nl; i++) {
			if (lats[i].err) {
				printf("    %-20s  error %d\n", lats[i].name, lats[i].err);
				continue;
			}
			printf("    %-20s %8.2f  %8.2f  %9.2f  %8.2f\n", lats[i].name, lats[i].p50_us,
			       lats[i].p99_us, efd ? lats[i].p50_us / efd : 0,
			       pol ? lats[i].p50_us / pol : 0);
		}
		printf("\n(b) burst of %u doorbells to a busy receiver\n", burst);
		printf("    %-20s %12.0f /s   1.00 x   1.0000 eventfd writes/doorbell\n",
		       "raw eventfd", raw_rate);
		printf("    %-20s %12.0f /s %6.2f x   0 eventfd writes (the floor: 1 contended "
		       "atomic RMW per doorbell)\n",
		       "contended RMW", rmw_rate, raw_rate ? rmw_rate / raw_rate : 0);
		for (int m = 0; m < 3; m++) {
			double rate = br[m].ns ? br[m].rings / (br[m].ns / 1e9) : 0;
			printf("    link-%-15s %12.0f /s %6.2f x   %.4f eventfd writes/doorbell\n",
			       mode_name[m], rate, raw_rate ? rate / raw_rate : 0,
			       br[m].rings ? (double)br[m].eventfd_writes / br[m].rings : 0);
		}
		printf("\n(c) idle receiver, %u ms without traffic\n", idle_ms);
		for (int m = 0; m < 3; m++)
			printf("    link-%-15s %6.3f %% of a CPU\n", mode_name[m], idle[m]);
		printf("\n(e) busy receiver (interrupt mode, 50 us of work per batch): bursts of "
		       "50 rings 2 us apart\n");
		printf("    %llu bursts, %llu rings, %llu batches, %llu eventfd writes: beyond the "
		       "wake-ups, %.4f per ring made while busy, %.3f per burst\n",
		       (unsigned long long)busy.bursts, (unsigned long long)busy.rings,
		       (unsigned long long)busy.batches, (unsigned long long)busy.eventfd_writes,
		       busy_extra(&busy, false), busy_extra(&busy, true));
		printf("\n(d) p50 ratios measured interleaved, 9 rounds of %u round trips\n", riters);
		for (int k = 0; k < 4; k++)
			printf("    %-36s median %.2f  (min %.2f, max %.2f)\n", rat[k].what,
			       rat[k].median, rat[k].min, rat[k].max);
		printf("\n(f) burst rate ratios measured interleaved, 9 rounds of %u doorbells\n",
		       bround);
		for (int k = 0; k < 4; k++)
			printf("    %-36s median %.2f  (min %.2f, max %.2f)\n", brat[k].what,
			       brat[k].median, brat[k].min, brat[k].max);
	}
	free(buf);
	return ret;
}
