/* SPDX-License-Identifier: MIT */
/*
 * The live-upgrade state reader, ivl_server_restore() (docs/upgrade.md).
 * Its state names fds, so the input edits a real state instead of being
 * one.  A server in this process (a memfd region, 2 vectors, two
 * connected peers, one with half a hello) is saved once.  Each input is a
 * list of (offset:16, byte) edits applied to a copy of that state, which is
 * then restored.  Every fd of the process is backed up at start and put
 * back after each input, so a state that adopted and closed fds cannot
 * hurt the next one.  Invariants: a restore returns 0 or a negative errno,
 * never crashes; after the fds are put back, the fd count is what it was
 * (nothing leaked); the empty input (the state unchanged) restores.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>

#include "fuzz.h"
#include "fuzz_fds.h"

#define BACKUP_BASE 600
#define FD_LIMIT 512 /* new fds stay below the backups */
#define MAXFD 128

static struct {
	bool ready;
	uint8_t *state;
	size_t len;
	int fd[MAXFD], backup[MAXFD], flags[MAXFD], n;
	char dir[64], sock[96];
	struct ivl_server_opts o;
	struct ivl_server *srv;
} g;

static void cleanup(void)
{
	char lock[128];

	snprintf(lock, sizeof(lock), "%s.lock", g.sock);
	unlink(g.sock);
	unlink(lock);
	rmdir(g.dir);
}

static void setup(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct rlimit rl;
	DIR *d;
	struct dirent *e;
	int c1, c2, sfd, i;
	off_t size;

	if (g.ready)
		return;
	g.ready = true;
	snprintf(g.dir, sizeof(g.dir), "/tmp/ivl-fuzz-state-XXXXXX");
	FUZZ_CHECK(mkdtemp(g.dir));
	atexit(cleanup);
	snprintf(g.sock, sizeof(g.sock), "%s/sock", g.dir);
	g.o.socket_path = g.sock;
	g.o.listen_fd = -1;
	g.o.vectors = 2;
	g.o.max_peers = 8;
	g.o.region.kind = IVL_REGION_MEMFD;
	g.o.region.name = "fuzz-state";
	g.o.region.size = 1 << 16;
	FUZZ_CHECK(ivl_server_new(&g.srv, &g.o) == 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g.sock);
	c1 = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c2 = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(c1 >= 0 && c2 >= 0);
	FUZZ_CHECK(connect(c1, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	FUZZ_CHECK(connect(c2, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	{
		uint32_t magic = IVL_HELLO_MAGIC;
		FUZZ_CHECK(write(c2, &magic, sizeof(magic)) == sizeof(magic));
	}
	for (i = 0; i < 8; i++)
		ivl_server_process(g.srv);
	sfd = ivl_server_save(g.srv);
	FUZZ_CHECK(sfd >= 0);
	size = lseek(sfd, 0, SEEK_END);
	FUZZ_CHECK(size > 0);
	g.len = (size_t)size;
	FUZZ_CHECK((g.state = malloc(g.len)));
	FUZZ_CHECK(pread(sfd, g.state, g.len, 0) == (ssize_t)g.len);
	ivl_server_save_abort(g.srv, sfd);

	/* Back up every fd (the server's, the peers', stdio, the fuzzer's)
	 * above the limit that restore() can name. */
	FUZZ_CHECK((d = opendir("/proc/self/fd")));
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (e->d_name[0] == '.' || fd == dirfd(d) || g.n == MAXFD)
			continue;
		g.fd[g.n++] = fd;
	}
	closedir(d);
	for (i = 0; i < g.n; i++) {
		g.flags[i] = fcntl(g.fd[i], F_GETFD);
		g.backup[i] = fcntl(g.fd[i], F_DUPFD_CLOEXEC, BACKUP_BASE);
		FUZZ_CHECK(g.flags[i] >= 0 && g.backup[i] >= 0);
	}
	FUZZ_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	rl.rlim_cur = FD_LIMIT;
	FUZZ_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
}

/* Put every fd back as it was; close what an input left below the limit. */
static void put_back(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int i;

	FUZZ_CHECK(d);
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);
		bool known = fd == dirfd(d) || fd >= BACKUP_BASE;

		for (i = 0; !known && i < g.n; i++)
			known = g.fd[i] == fd;
		if (e->d_name[0] != '.' && !known)
			close(fd);
	}
	closedir(d);
	for (i = 0; i < g.n; i++)
		FUZZ_CHECK(dup3(g.backup[i], g.fd[i], g.flags[i] & FD_CLOEXEC ? O_CLOEXEC : 0) ==
			   g.fd[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int baseline = -1;
	struct ivl_server *t = NULL;
	uint8_t *buf;
	int mfd, ret;
	size_t i;

	setup();
	if (baseline < 0)
		baseline = fuzz_count_fds();
	FUZZ_CHECK((buf = malloc(g.len)));
	memcpy(buf, g.state, g.len);
	for (i = 0; i + 3 <= size && i < 3 * 64; i += 3)
		buf[(data[i] | (size_t)data[i + 1] << 8) % g.len] = data[i + 2];
	mfd = memfd_create("fuzz-state", MFD_CLOEXEC);
	FUZZ_CHECK(mfd >= 0);
	FUZZ_CHECK(write(mfd, buf, g.len) == (ssize_t)g.len);
	free(buf);
	ret = ivl_server_restore(&t, &g.o, mfd);
	FUZZ_CHECK(ret == 0 || (ret < 0 && ret > -4096));
	FUZZ_CHECK(ret < 0 || t);
	if (size < 3)
		FUZZ_CHECK(ret == 0); /* the saved state itself */
	if (t)
		ivl_server_free(t);
	put_back();
	FUZZ_CHECK(fuzz_count_fds() == baseline);
	return 0;
}
