/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"

int64_t bu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bu_quantile(double *v, size_t n, double q)
{
	size_t i;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	if (q <= 0)
		return v[0];
	if (q >= 1)
		return v[n - 1];
	/* Nearest rank: the smallest value with at least q*n values <= it. */
	i = (size_t)ceil(q * (double)n);
	return v[i ? i - 1 : 0];
}

double bu_mean(const double *v, size_t n)
{
	double s = 0;

	for (size_t i = 0; i < n; i++)
		s += v[i];
	return n ? s / (double)n : 0;
}

int bu_linfit(const double *x, const double *y, size_t n, struct bu_line *out)
{
	double mx, my, sxx = 0, sxy = 0, syy = 0;

	if (n < 2)
		return -EINVAL;
	mx = bu_mean(x, n);
	my = bu_mean(y, n);
	for (size_t i = 0; i < n; i++) {
		sxx += (x[i] - mx) * (x[i] - mx);
		sxy += (x[i] - mx) * (y[i] - my);
		syy += (y[i] - my) * (y[i] - my);
	}
	if (sxx == 0)
		return -EINVAL;
	out->b = sxy / sxx;
	out->a = my - out->b * mx;
	out->r2 = syy == 0 ? 1 : (sxy * sxy) / (sxx * syy);
	return 0;
}

long bu_proc_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	}
	fclose(f);
	return kib;
}

long bu_proc_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	long n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int64_t bu_proc_cpu_ns(pid_t pid)
{
	char path[64];
	long long ns;
	FILE *f;
	int n;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%ld/schedstat", (long)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/schedstat");
	f = fopen(path, "re");
	if (!f)
		return -errno;
	n = fscanf(f, "%lld", &ns);
	fclose(f);
	return n == 1 ? ns : -EIO;
}

int bu_mkdtemp(char *buf, size_t len, const char *prefix)
{
	const char *base = getenv("TMPDIR");
	int n;

	n = snprintf(buf, len, "%s/%s.XXXXXX", base && *base ? base : "/tmp", prefix);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return mkdtemp(buf) ? 0 : -errno;
}

void bu_rmdir(const char *dir)
{
	char path[4096];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d) {
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) <
			    (int)sizeof(path))
				unlink(path);
		}
		closedir(d);
	}
	rmdir(dir);
}

pid_t bu_spawn(char *const argv[], const char *log)
{
	int out, in;
	pid_t pid;

	out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (out < 0)
		return -errno;
	in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		int e = -errno;

		close(out);
		return e;
	}
	pid = fork();
	if (pid == 0) {
		/* The caller may ignore SIGPIPE; exec would pass that on. */
		signal(SIGPIPE, SIG_DFL);
		/* dup2 clears CLOEXEC on the targets, as exec needs. */
		if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(127);
		execv(argv[0], argv);
		dprintf(2, "bench: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in);
	close(out);
	return pid < 0 ? -errno : pid;
}

int bu_exited(pid_t pid, int *status)
{
	pid_t r = waitpid(pid, status, WNOHANG);

	return r == pid || (r < 0 && errno == ECHILD);
}

int bu_stop(pid_t pid, int sig, int timeout_ms)
{
	int64_t end = bu_now_ns() + (int64_t)timeout_ms * 1000000;
	int status = 0;

	kill(pid, sig);
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0)
			return -errno;
		if (bu_now_ns() >= end)
			break;
		usleep(2000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -ETIMEDOUT;
}

void bu_cat(const char *path, FILE *out)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "re");

	if (!f)
		return;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, out);
	fclose(f);
}

int bu_unix_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

int bu_wait_socket(const char *path, pid_t pid, int timeout_ms)
{
	int64_t end = bu_now_ns() + (int64_t)timeout_ms * 1000000;
	int status;

	for (;;) {
		int fd = bu_unix_connect(path);

		if (fd >= 0) {
			/* A probe that the server sees as a peer joining and
			 * leaving at once: harmless, and before any measurement. */
			close(fd);
			return 0;
		}
		if (bu_exited(pid, &status))
			return -ECHILD;
		if (bu_now_ns() >= end)
			return -ETIMEDOUT;
		usleep(5000);
	}
}

const char *bu_kernel(void)
{
	static struct utsname u;

	if (uname(&u) < 0)
		return "unknown";
	return u.release;
}

long bu_nproc(void)
{
	return sysconf(_SC_NPROCESSORS_ONLN);
}

const char *bu_cpu_model(void)
{
	static char model[256] = "unknown";
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "re");

	if (!f)
		return model;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) || !colon)
			continue;
		colon++;
		colon += strspn(colon, " \t");
		colon[strcspn(colon, "\n")] = 0;
		snprintf(model, sizeof(model), "%s", colon);
		break;
	}
	fclose(f);
	return model;
}

double bu_loadavg(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "re");

	if (!f)
		return -1;
	if (fscanf(f, "%lf", &l) != 1)
		l = -1;
	fclose(f);
	return l;
}

void bu_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}
