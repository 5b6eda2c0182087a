/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <sys/wait.h>
#include <poll.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostile.h"

int ho_count_fds(pid_t pid)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	if (!(dir = opendir(path)))
		return -errno;
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

int ho_wait_fds(pid_t pid, int want, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	int n;

	while ((n = ho_count_fds(pid)) > want && tu_now_ms() < end)
		usleep(5000);
	return n;
}

bool ho_log_has(const char *log, const char *needle)
{
	char *text = tu_read_file(log);
	bool found = text && strstr(text, needle);

	free(text);
	return found;
}

bool ho_wait_log(const char *log, const char *needle, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;

	for (;;) {
		if (ho_log_has(log, needle))
			return true;
		if (tu_now_ms() > end)
			return false;
		usleep(5000);
	}
}

long ho_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if (!(f = fopen(path, "re")))
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

uint64_t ho_take_count(int efd)
{
	uint64_t n = 0;
	struct pollfd pfd = {.fd = efd, .events = POLLIN};

	/* A doorbell is an eventfd write by the ringer: it is there. */
	if (poll(&pfd, 1, 0) != 1 || read(efd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

unsigned ho_count_lines(const char *log, const char *needle, bool prefix)
{
	char *text = tu_read_file(log), *line;
	unsigned n = 0;

	for (line = text; line && *line;) {
		char *nl = strchr(line, '\n');

		if (nl)
			*nl = 0;
		n += prefix ? !strncmp(line, needle, strlen(needle)) : strstr(line, needle) != NULL;
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	return n;
}

unsigned long ho_listen_doorbells(const char *log, int vector)
{
	char *text = tu_read_file(log), *line;
	unsigned long sum = 0;

	for (line = text; line && *line;) {
		unsigned vv, c;
		char *nl = strchr(line, '\n');

		if (sscanf(line, "doorbell vector %u count %u", &vv, &c) == 2 &&
		    (vector < 0 || vv == (unsigned)vector))
			sum += c;
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	return sum;
}

void ho_alive(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, WNOHANG) == pid)
		fail_msg("the server died: %s %d", WIFSIGNALED(st) ? "signal" : "exit",
			 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}
