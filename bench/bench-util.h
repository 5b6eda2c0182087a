/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the benchmarks in bench/: a monotonic clock, summary
 * statistics, a least-squares line, what /proc says about another process,
 * and a child process with its output in a log file.  Not part of libivlink.
 */
#ifndef IVL_BENCH_UTIL_H
#define IVL_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t bu_now_ns(void);

/* The @q quantile (0..1, nearest rank) of @n values; @v is reordered.
 * Returns 0 when n == 0. */
double bu_quantile(double *v, size_t n, double q);
static inline double bu_median(double *v, size_t n)
{
	return bu_quantile(v, n, 0.5);
}
double bu_mean(const double *v, size_t n);

/* y = a + b*x by least squares; r2 is the coefficient of determination.
 * Returns -EINVAL with fewer than two distinct x. */
struct bu_line {
	double a, b, r2;
};
int bu_linfit(const double *x, const double *y, size_t n, struct bu_line *out);

/* VmRSS of @pid in KiB, or -errno. */
long bu_proc_rss_kib(pid_t pid);
/* Number of open fds of @pid (entries of /proc/PID/fd), or -errno. */
long bu_proc_fds(pid_t pid);

/* CPU time @pid's main thread has run, in ns (/proc/PID/schedstat; 0 for
 * this process's own main thread), or -errno. */
int64_t bu_proc_cpu_ns(pid_t pid);

/* A private directory under $TMPDIR or /tmp; @buf gets its path. */
int bu_mkdtemp(char *buf, size_t len, const char *prefix);
/* Remove every plain entry of @dir and @dir itself; errors are ignored. */
void bu_rmdir(const char *dir);

/* fork+exec @argv with stdin from /dev/null and stdout+stderr into @log
 * (created).  Returns the pid or -errno. */
pid_t bu_spawn(char *const argv[], const char *log);
/* Send @sig, wait up to @timeout_ms; returns the wait status, or -ETIMEDOUT
 * after SIGKILLing and reaping it. */
int bu_stop(pid_t pid, int sig, int timeout_ms);
/* 1 if @pid has exited (reaped, *status filled), 0 if it still runs. */
int bu_exited(pid_t pid, int *status);
/* Copy the file @path to @out (for showing a child's log on failure). */
void bu_cat(const char *path, FILE *out);

/* Connect a blocking AF_UNIX stream socket to @path (CLOEXEC); fd or -errno. */
int bu_unix_connect(const char *path);
/* Wait until @path accepts connections while @pid runs; 0, -ECHILD if it
 * exited, -ETIMEDOUT. */
int bu_wait_socket(const char *path, pid_t pid, int timeout_ms);

/* The one line of `uname -r`, `nproc` and the CPU model (static storage). */
const char *bu_kernel(void);
long bu_nproc(void);
const char *bu_cpu_model(void);


/* The 1-minute load average (/proc/loadavg), or -1: a busy machine makes
 * wall-clock numbers meaningless, so reports show it. */
double bu_loadavg(void);

/* Print @s as a JSON string literal. */
void bu_json_str(FILE *f, const char *s);

#endif
