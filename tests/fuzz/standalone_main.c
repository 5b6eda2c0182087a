/* SPDX-License-Identifier: MIT */
/*
 * main() for builds without libFuzzer (gcc, or clang without -Dfuzz): run
 * the harness once on every file named on the command line or found in a
 * named directory (recursively), so the seed corpus and every reproducer
 * stay regression tests everywhere.  Arguments starting with '-' are
 * libFuzzer options and are ignored.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define MAX_FILE (16u << 20)

static int replay_file(const char *path)
{
	struct stat st;
	uint8_t *buf;
	size_t have = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "fuzz-replay: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > MAX_FILE) {
		fprintf(stderr, "fuzz-replay: %s: too large\n", path);
		close(fd);
		return -1;
	}
	/* One spare byte so an empty file still gets a valid pointer. */
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -1;
	}
	while (have < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	LLVMFuzzerTestOneInput(buf, have);
	free(buf);
	return 0;
}

static int replay(const char *path, unsigned *count, int depth)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	int ret = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "fuzz-replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		if (replay_file(path) < 0)
			return -1;
		(*count)++;
		return 0;
	}
	if (depth > 8)
		return 0;
	d = opendir(path);
	if (!d) {
		fprintf(stderr, "fuzz-replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		char sub[PATH_MAX];

		if (e->d_name[0] == '.')
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) >= (int)sizeof(sub))
			continue;
		if (replay(sub, count, depth + 1) < 0)
			ret = -1;
	}
	closedir(d);
	return ret;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	int i, ret = 0;

	for (i = 1; i < argc; i++) {
		if (argv[i][0] == '-')
			continue;
		if (replay(argv[i], &count, 0) < 0)
			ret = 1;
	}
	printf("fuzz-replay: %u inputs replayed\n", count);
	if (count == 0) {
		fprintf(stderr, "fuzz-replay: no inputs found\n");
		return 1;
	}
	return ret;
}
