/* SPDX-License-Identifier: MIT */
/* bench_admission's results and their reports (text tables and JSON). */
#ifndef IVL_BENCH_ADMISSION_H
#define IVL_BENCH_ADMISSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define ADM_MAX_RUNS 8
#define ADM_MAX_SERVER_ARGS 16

struct adm_opts {
	const char *server;
	unsigned peers;
	unsigned vectors[ADM_MAX_RUNS];
	unsigned nruns;
	unsigned sample;
	unsigned raw_iters;
	unsigned timeout_s;
	bool json;
	const char *server_log; /* NULL: a temporary file */
	char *server_args[ADM_MAX_SERVER_ARGS];
	unsigned nserver_args;
};

struct adm_sample {
	unsigned k;
	double handshake_us, settled_us, settled_med_us;
	uint64_t fds_moved;
	long server_fds, server_rss_kib;
	int64_t server_cpu_ns, bench_cpu_ns; /* cumulative since the start */
	double server_cpu_us, bench_cpu_us;  /* per admission in the window */
};

struct adm_result {
	unsigned vectors, peers;
	struct adm_sample *samples;
	unsigned nsamples;
	double *handshake_us, *settled_us; /* [k - 1] */
	uint64_t *fds_moved;		   /* [k - 1] */
	uint64_t fds_total;
	double wall_s;
	double load_start, load_end; /* 1-minute load average */
	int server_status;
};

/* Medians in ns, see raw-socket.h. */
struct adm_raw_set {
	double connect_accept_ns, scm_rights_ns, scm_send_ns, plain_msg_ns, eventfd_ns;
};

/* Measured before and after the runs; the ratios use the lower of the two. */
struct adm_raw {
	double connect_accept_ns, scm_rights_ns, scm_send_ns, plain_msg_ns, eventfd_ns;
	struct adm_raw_set before, after;
};

void adm_print_text(const struct adm_opts *o, const struct adm_raw *raw, struct adm_result *res,
		    unsigned nres);
void adm_print_json(const struct adm_opts *o, const struct adm_raw *raw, struct adm_result *res,
		    unsigned nres);

#endif
