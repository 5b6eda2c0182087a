/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/ivshmem.h>
#include <ivlink/link-device.h>
#include <ivlink/link.h>

#include "testutil.h"

int64_t tu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char tmpdir[256];
static pid_t tmpdir_owner;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	remove(p);
	return 0;
}

static void rm_tmpdir(void)
{
	if (tmpdir[0] && getpid() == tmpdir_owner)
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tu_tmpdir(void)
{
	const char *base = getenv("TMPDIR");

	if (tmpdir[0])
		return tmpdir;
	snprintf(tmpdir, sizeof(tmpdir), "%s/ivltest.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		abort();
	}
	tmpdir_owner = getpid();
	atexit(rm_tmpdir);
	return tmpdir;
}

const char *tu_path(const char *dir, const char *name)
{
	static char bufs[16][512];
	static unsigned next;
	char *b = bufs[next++ % 16];

	snprintf(b, 512, "%s/%s", dir, name);
	return b;
}

static const char *bin_from_env(const char *var)
{
	const char *p = getenv(var);

	if (!p || !*p) {
		fprintf(stderr, "%s is not set: run through meson test\n", var);
		skip();
	}
	return p;
}

const char *tu_server_bin(void)
{
	return bin_from_env("IVL_SERVER_BIN");
}

const char *tu_cli_bin(void)
{
	return bin_from_env("IVL_CLI_BIN");
}

void tu_child_init(pid_t parent)
{
	/* Kept across execve; checked after, in case the parent is gone. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
}

pid_t tu_spawn(char *const argv[], const char *log)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		tu_child_init(parent);
		int fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		if (log) {
			int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
			if (lfd >= 0) {
				dup2(lfd, 1);
				dup2(lfd, 2);
			}
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int tu_wait(pid_t pid, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (tu_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -ETIMEDOUT;
		}
		usleep(2000);
	}
}

void tu_kill(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

int tu_wait_socket(const char *sock, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	do {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		/* A probe connection is a real peer to the server: it joins and
		 * leaves at once, which a fresh server tolerates. */
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			return 0;
		}
		close(fd);
		usleep(5000);
	} while (tu_now_ms() < end);
	return -ETIMEDOUT;
}

pid_t tu_start_server(const char *sock, const char *log, ...)
{
	char *argv[64];
	int n = 0;
	va_list ap;
	const char *a;
	pid_t pid;

	argv[n++] = (char *)tu_server_bin();
	argv[n++] = (char *)"-S";
	argv[n++] = (char *)sock;
	va_start(ap, log);
	while ((a = va_arg(ap, const char *)) && n < 62)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	pid = tu_spawn(argv, log);
	if (pid < 0)
		return pid;
	if (tu_wait_socket(sock, 10000) < 0) {
		tu_kill(pid);
		return -ETIMEDOUT;
	}
	return pid;
}

/* Drain both pipes until EOF or the deadline. */
static int collect(int ofd, int efd, char **out, char **err, int64_t end)
{
	struct { int fd; char *buf; size_t len, cap; } s[2] = { { ofd, NULL, 0, 0 }, { efd, NULL, 0, 0 } };
	int open_fds = 2, ret = 0;

	while (open_fds > 0) {
		struct pollfd p[2];
		int n = 0, r, i;
		int64_t left = end - tu_now_ms();

		if (left <= 0) {
			ret = -ETIMEDOUT;
			break;
		}
		for (i = 0; i < 2; i++)
			if (s[i].fd >= 0)
				p[n++] = (struct pollfd){ .fd = s[i].fd, .events = POLLIN };
		r = poll(p, n, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		for (i = 0; i < 2; i++) {
			char tmp[4096];
			ssize_t k;
			if (s[i].fd < 0)
				continue;
			k = read(s[i].fd, tmp, sizeof(tmp));
			if (k < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (k <= 0) {
				close(s[i].fd);
				s[i].fd = -1;
				open_fds--;
				continue;
			}
			if (s[i].len + (size_t)k + 1 > s[i].cap) {
				s[i].cap = (s[i].len + (size_t)k + 1) * 2;
				s[i].buf = realloc(s[i].buf, s[i].cap);
			}
			memcpy(s[i].buf + s[i].len, tmp, (size_t)k);
			s[i].len += (size_t)k;
		}
	}
	for (int i = 0; i < 2; i++) {
		if (s[i].fd >= 0)
			close(s[i].fd);
		if (!s[i].buf)
			s[i].buf = calloc(1, 1);
		else
			s[i].buf[s[i].len] = '\0';
	}
	if (out)
		*out = s[0].buf;
	else
		free(s[0].buf);
	if (err)
		*err = s[1].buf;
	else
		free(s[1].buf);
	return ret;
}

int tu_run(char *const argv[], int timeout_ms, char **out, char **err)
{
	int op[2], ep[2], status, ret;
	int64_t end = tu_now_ms() + timeout_ms;
	pid_t parent = getpid(), pid;

	if (pipe2(op, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	if (pipe2(ep, O_CLOEXEC | O_NONBLOCK) < 0) {
		close(op[0]);
		close(op[1]);
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		close(op[0]); close(op[1]); close(ep[0]); close(ep[1]);
		return ret;
	}
	if (pid == 0) {
		tu_child_init(parent);
		int fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		dup2(op[1], 1);
		dup2(ep[1], 2);
		execv(argv[0], argv);
		_exit(127);
	}
	close(op[1]);
	close(ep[1]);
	ret = collect(op[0], ep[0], out, err, end);
	if (ret == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return -ETIMEDOUT;
	}
	status = tu_wait(pid, (int)(end - tu_now_ms() > 0 ? end - tu_now_ms() : 1));
	if (status < 0)
		return status;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

char *tu_read_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	char tmp[4096];

	if (!f)
		return NULL;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			buf = realloc(buf, cap);
		}
		memcpy(buf + len, tmp, n);
		len += n;
	}
	fclose(f);
	if (!buf)
		buf = calloc(1, 1);
	else
		buf[len] = '\0';
	return buf;
}

int tu_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

static void *pump_main(void *arg)
{
	struct tu_pump *p = arg;
	struct ivl_link_event ev[16];

	while (!atomic_load(&p->stop)) {
		int n = ivl_link_wait(p->backing, ev, 16, 20);

		if (n > 0)
			ivl_link_device_deliver(p->ld, ev, (size_t)n);
	}
	return NULL;
}

int tu_pump_start(struct tu_pump *p)
{
	atomic_init(&p->stop, false);
	return -pthread_create(&p->thread, NULL, pump_main, p);
}

void tu_pump_stop(struct tu_pump *p)
{
	atomic_store(&p->stop, true);
	pthread_join(p->thread, NULL);
}
