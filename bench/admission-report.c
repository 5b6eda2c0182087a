/* SPDX-License-Identifier: MIT */
/* bench_admission's output: per-run tables or JSON, with the fitted lines
 * and the ratios to the raw primitives measured in the same run. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "bench-util.h"

struct summary {
	struct bu_line fds, rss, settled_k, settled_fd;
	double first_med_us, last_med_us;
	double rss_last_bytes;	     /* RSS growth per peer in the last window */
	double server_cpu_per_fd_ns; /* whole run */
};

static void summarize(const struct adm_result *res, struct summary *s)
{
	unsigned n = res->nsamples, np = res->peers;
	double *x = calloc(n > np ? n : np, sizeof(double));
	double *y = calloc(n > np ? n : np, sizeof(double));

	memset(s, 0, sizeof(*s));
	if (!x || !y)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		x[i] = res->samples[i].k;
		y[i] = (double)res->samples[i].server_fds;
	}
	bu_linfit(x, y, n, &s->fds);
	for (unsigned i = 0; i < n; i++)
		y[i] = (double)res->samples[i].server_rss_kib;
	bu_linfit(x, y, n, &s->rss);
	for (unsigned i = 0; i < np; i++) {
		x[i] = i + 1;
		y[i] = res->settled_us[i];
	}
	bu_linfit(x, y, np, &s->settled_k);
	for (unsigned i = 0; i < np; i++)
		x[i] = (double)res->fds_moved[i];
	bu_linfit(x, y, np, &s->settled_fd);
	s->first_med_us = n > 1 ? res->samples[1].settled_med_us : 0;
	s->last_med_us = res->samples[n - 1].settled_med_us;
	if (n > 1) {
		const struct adm_sample *a = &res->samples[n - 2], *b = &res->samples[n - 1];

		s->rss_last_bytes =
		    (double)(b->server_rss_kib - a->server_rss_kib) * 1024 / (b->k - a->k);
		if (res->fds_total)
			s->server_cpu_per_fd_ns =
			    (double)(b->server_cpu_ns - res->samples[0].server_cpu_ns) /
			    (double)res->fds_total;
	}
out:
	free(x);
	free(y);
}

static void raw_row(const char *name, double used, double before, double after)
{
	printf("  %-44s %8.0f %8.0f %8.0f\n", name, used, before, after);
}

void adm_print_text(const struct adm_opts *o, const struct adm_raw *raw, struct adm_result *res,
		    unsigned nres)
{
	printf("machine: %s, %ld CPUs, kernel %s\n", bu_cpu_model(), bu_nproc(), bu_kernel());
	printf("server:  %s\n\n", o->server);
	printf("raw primitives, medians in ns (used: the lower of before and after the runs):\n");
	printf("  %-44s %8s %8s %8s\n", "", "used", "before", "after");
	raw_row("UNIX socket+connect+accept, close both", raw->connect_accept_ns,
		raw->before.connect_accept_ns, raw->after.connect_accept_ns);
	raw_row("8-byte msg + SCM_RIGHTS fd: send+recv+close", raw->scm_rights_ns,
		raw->before.scm_rights_ns, raw->after.scm_rights_ns);
	raw_row("  of which the sendmsg() alone", raw->scm_send_ns, raw->before.scm_send_ns,
		raw->after.scm_send_ns);
	raw_row("8-byte msg without fd: send+recv", raw->plain_msg_ns, raw->before.plain_msg_ns,
		raw->after.plain_msg_ns);
	raw_row("eventfd()+close()", raw->eventfd_ns, raw->before.eventfd_ns,
		raw->after.eventfd_ns);
	for (unsigned i = 0; i < nres; i++) {
		struct adm_result *r = &res[i];
		struct summary s;

		summarize(r, &s);
		printf("\nvectors=%u peers=%u (%.1f s; load average %.2f at start, %.2f at end)\n",
		       r->vectors, r->peers, r->wall_s, r->load_start, r->load_end);
		printf("%6s %12s %11s %10s %9s %10s %10s %10s %10s\n", "k", "handshake_us",
		       "settled_us", "median_us", "fds_moved", "srv_cpu_us", "bench_cpu",
		       "server_fds", "server_rss");
		for (unsigned j = 0; j < r->nsamples; j++) {
			const struct adm_sample *sm = &r->samples[j];

			if (sm->k == 0)
				printf("%6u %12s %11s %10s %9s %10s %10s %10ld %10ld\n", 0u, "-",
				       "-", "-", "-", "-", "-", sm->server_fds, sm->server_rss_kib);
			else
				printf("%6u %12.1f %11.1f %10.1f %9llu %10.1f %10.1f %10ld %10ld\n",
				       sm->k, sm->handshake_us, sm->settled_us, sm->settled_med_us,
				       (unsigned long long)sm->fds_moved, sm->server_cpu_us,
				       sm->bench_cpu_us, sm->server_fds, sm->server_rss_kib);
		}
		printf("  (median_us: median settled time of the peers since the previous row;\n"
		       "   srv_cpu_us, bench_cpu: CPU time per admission over the same peers;\n"
		       "   server_rss: KiB)\n");
		printf("  server fds per peer:      %.2f (expected >= %u: socket + vectors)\n",
		       s.fds.b, r->vectors + 1);
		printf("  server RSS per peer:      %.0f bytes (fit r2 %.3f); last window %.0f "
		       "bytes\n",
		       s.rss.b * 1024, s.rss.r2, s.rss_last_bytes);
		printf("  server CPU per fd moved:  %.0f ns = %.2f x raw SCM_RIGHTS msg, "
		       "%.2f x its sendmsg()\n",
		       s.server_cpu_per_fd_ns, s.server_cpu_per_fd_ns / raw->scm_rights_ns,
		       s.server_cpu_per_fd_ns / raw->scm_send_ns);
		printf("  settled time vs k:        %.1f us + %.3f us * k (r2 %.3f)\n",
		       s.settled_k.a, s.settled_k.b, s.settled_k.r2);
		printf("  settled time per fd moved: %.0f ns = %.2f x raw SCM_RIGHTS msg\n",
		       s.settled_fd.b * 1e3, s.settled_fd.b * 1e3 / raw->scm_rights_ns);
		printf("  median settled, first %u: %.1f us = %.1f x raw connect+accept\n",
		       o->sample < r->peers ? o->sample : r->peers, s.first_med_us,
		       s.first_med_us * 1e3 / raw->connect_accept_ns);
		printf("  median settled, last %u:  %.1f us = %.1f x raw connect+accept\n",
		       o->sample < r->peers ? o->sample : r->peers, s.last_med_us,
		       s.last_med_us * 1e3 / raw->connect_accept_ns);
	}
}

static void json_raw(double ca, double scm, double send, double plain, double efd)
{
	printf("{\"unix_connect_accept\":%.1f,\"scm_rights_msg\":%.1f,\"scm_rights_send\":%.1f,"
	       "\"plain_msg\":%.1f,\"eventfd\":%.1f}",
	       ca, scm, send, plain, efd);
}

static void json_line(const char *name, const struct bu_line *l, bool comma)
{
	printf("\"%s\":{\"a\":%.6g,\"b\":%.6g,\"r2\":%.4f}%s", name, l->a, l->b, l->r2,
	       comma ? "," : "");
}

void adm_print_json(const struct adm_opts *o, const struct adm_raw *raw, struct adm_result *res,
		    unsigned nres)
{
	printf("{\"benchmark\":\"admission\",\"machine\":{\"cpu\":");
	bu_json_str(stdout, bu_cpu_model());
	printf(",\"nproc\":%ld,\"kernel\":", bu_nproc());
	bu_json_str(stdout, bu_kernel());
	printf("},\"server\":");
	bu_json_str(stdout, o->server);
	printf(",\"raw_ns\":");
	json_raw(raw->connect_accept_ns, raw->scm_rights_ns, raw->scm_send_ns, raw->plain_msg_ns,
		 raw->eventfd_ns);
	printf(",\"raw_ns_before\":");
	json_raw(raw->before.connect_accept_ns, raw->before.scm_rights_ns, raw->before.scm_send_ns,
		 raw->before.plain_msg_ns, raw->before.eventfd_ns);
	printf(",\"raw_ns_after\":");
	json_raw(raw->after.connect_accept_ns, raw->after.scm_rights_ns, raw->after.scm_send_ns,
		 raw->after.plain_msg_ns, raw->after.eventfd_ns);
	printf(",\"runs\":[");
	for (unsigned i = 0; i < nres; i++) {
		struct adm_result *r = &res[i];
		struct summary s;

		summarize(r, &s);
		printf("%s{\"vectors\":%u,\"peers\":%u,\"wall_s\":%.3f,\"loadavg_start\":%.2f,"
		       "\"loadavg_end\":%.2f,\"samples\":[",
		       i ? "," : "", r->vectors, r->peers, r->wall_s, r->load_start, r->load_end);
		for (unsigned j = 0; j < r->nsamples; j++) {
			const struct adm_sample *sm = &r->samples[j];

			printf("%s{\"k\":%u,\"handshake_us\":%.3f,\"settled_us\":%.3f,"
			       "\"settled_med_us\":%.3f,\"fds_moved\":%llu,"
			       "\"server_cpu_us\":%.3f,\"bench_cpu_us\":%.3f,\"server_fds\":%ld,"
			       "\"server_rss_kib\":%ld}",
			       j ? "," : "", sm->k, sm->handshake_us, sm->settled_us,
			       sm->settled_med_us, (unsigned long long)sm->fds_moved,
			       sm->server_cpu_us, sm->bench_cpu_us, sm->server_fds,
			       sm->server_rss_kib);
		}
		printf("],\"summary\":{");
		json_line("server_fds_vs_k", &s.fds, true);
		json_line("server_rss_kib_vs_k", &s.rss, true);
		json_line("settled_us_vs_k", &s.settled_k, true);
		json_line("settled_us_vs_fds_moved", &s.settled_fd, true);
		printf(
		    "\"server_rss_bytes_per_peer\":%.1f,\"server_rss_bytes_per_peer_last\":%.1f,"
		    "\"server_cpu_ns_per_fd\":%.1f,\"ratio_server_cpu_per_fd_to_scm_rights\":%.3f,"
		    "\"ratio_server_cpu_per_fd_to_scm_send\":%.3f,"
		    "\"server_fds_per_peer\":%.3f,"
		    "\"first_window_settled_med_us\":%.3f,\"last_window_settled_med_us\":%.3f,"
		    "\"ratio_ns_per_fd_to_scm_rights\":%.3f,"
		    "\"ratio_first_to_connect_accept\":%.3f,"
		    "\"ratio_last_to_connect_accept\":%.3f}}",
		    s.rss.b * 1024, s.rss_last_bytes, s.server_cpu_per_fd_ns,
		    s.server_cpu_per_fd_ns / raw->scm_rights_ns,
		    s.server_cpu_per_fd_ns / raw->scm_send_ns, s.fds.b, s.first_med_us,
		    s.last_med_us, s.settled_fd.b * 1e3 / raw->scm_rights_ns,
		    s.first_med_us * 1e3 / raw->connect_accept_ns,
		    s.last_med_us * 1e3 / raw->connect_accept_ns);
	}
	printf("]}\n");
}
