/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "srvtest.h"

void st_connect(struct st_peer *p, const char *sock)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(p, 0, sizeof(*p));
	p->id = -1;
	p->shm_fd = -1;
	ivl_msg_reader_init(&p->r);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	p->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(p->sock >= 0);
	assert_int_equal(connect(p->sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
}

void st_close(struct st_peer *p)
{
	if (p->sock >= 0)
		close(p->sock);
	if (p->shm_fd >= 0)
		close(p->shm_fd);
	ivl_msg_reader_reset(&p->r);
	p->sock = p->shm_fd = -1;
}

int st_recv(struct st_peer *p, struct ivl_msg *m, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;

	for (;;) {
		struct pollfd pfd = {.fd = p->sock, .events = POLLIN};
		int64_t left;
		int ret = ivl_msg_recv(p->sock, &p->r, m);

		if (ret != -EAGAIN)
			return ret;
		left = end - tu_now_ms();
		if (left <= 0)
			return 0;
		poll(&pfd, 1, (int)left);
	}
}

int st_expect(struct st_peer *p, int64_t value, bool with_fd, bool keep_fd)
{
	struct ivl_msg m;
	int ret = st_recv(p, &m, ST_TIMEOUT);

	if (ret != 1)
		fail_msg("expected message %lld%s, got error %d", (long long)value,
			 with_fd ? " with fd" : "", ret);
	if (m.value != value || (m.fd >= 0) != with_fd)
		fail_msg("expected %lld%s, got %lld%s", (long long)value, with_fd ? " with fd" : "",
			 (long long)m.value, m.fd >= 0 ? " with fd" : "");
	if (m.fd >= 0 && !keep_fd) {
		close(m.fd);
		m.fd = -1;
	}
	return m.fd;
}

/* The version, my ID and the region: the start of every handshake. */
static void handshake_head(struct st_peer *p)
{
	struct ivl_msg m;

	st_expect(p, 0, false, false);
	assert_int_equal(st_recv(p, &m, ST_TIMEOUT), 1);
	assert_true(m.fd < 0);
	assert_true(m.value >= 0 && m.value <= 65535);
	p->id = (int)m.value;
	p->shm_fd = st_expect(p, -1, true, true);
}

int st_handshake_keep(struct st_peer *p, unsigned vectors, const int *others, size_t n_others,
		      int *other_fds, int *own)
{
	size_t i;

	handshake_head(p);
	for (i = 0; i < n_others; i++)
		st_expect_join(p, others[i], vectors, other_fds ? other_fds + i * vectors : NULL);
	st_expect_join(p, p->id, vectors, own);
	return p->id;
}

int st_handshake(struct st_peer *p, unsigned vectors, const int *others, size_t n_others)
{
	return st_handshake_keep(p, vectors, others, n_others, NULL, NULL);
}

void st_expect_join(struct st_peer *p, int id, unsigned vectors, int *fds)
{
	for (unsigned v = 0; v < vectors; v++) {
		int fd = st_expect(p, id, true, fds != NULL);

		if (fds)
			fds[v] = fd;
	}
}

int st_handshake_any(struct st_peer *p, unsigned vectors)
{
	struct ivl_msg m;
	unsigned own = 0;

	handshake_head(p);
	/* Other peers' vectors (and leaves) may come first, in any number. */
	while (own < vectors) {
		assert_int_equal(st_recv(p, &m, ST_TIMEOUT), 1);
		assert_true(m.value >= 0 && m.value <= 65535);
		if (m.value == p->id) {
			assert_true(m.fd >= 0);
			own++;
		}
		if (m.fd >= 0)
			close(m.fd);
	}
	return p->id;
}

int st_expect_refused(struct st_peer *p)
{
	struct ivl_msg m;
	int ret = st_recv(p, &m, ST_TIMEOUT), why = 0;

	/* The version, then the reason in place of the ID (§1.5); or, out
	 * of fds at accept(), nothing at all. */
	if (ret == 1 && m.value == IVL_PROTOCOL_VERSION && m.fd < 0) {
		ret = st_recv(p, &m, ST_TIMEOUT);
		if (ret != 1 || !IVL_EXT_IS(m.value) || IVL_EXT_OP(m.value) != IVL_EXT_REFUSED ||
		    m.fd >= 0)
			fail_msg("expected a refusal with its reason, got %d / %lld", ret,
				 (long long)m.value);
		why = (int)IVL_EXT_ARG(m.value);
		ret = st_recv(p, &m, ST_TIMEOUT);
	}
	if (ret == 1)
		fail_msg("expected a refusal, got message %lld", (long long)m.value);
	assert_int_equal(ret, -ECONNRESET);
	return why;
}

void st_expect_quiet(struct st_peer *p, int ms)
{
	struct ivl_msg m;
	int ret = st_recv(p, &m, ms);

	if (ret == 1)
		fail_msg("unexpected message %lld", (long long)m.value);
	assert_int_equal(ret, 0);
}

const char *st_shm_name(const char *tag)
{
	static char bufs[8][64];
	static unsigned n;
	char *b = bufs[n++ % 8];

	snprintf(b, 64, "ivltest-%ld-%s", (long)getpid(), tag);
	return b;
}

const char *st_sock(const char *tag)
{
	return tu_path(tu_tmpdir(), tag);
}

bool st_shm_exists(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/dev/shm/%s", name);
	return access(path, F_OK) == 0;
}

/* Children still running when the test program exits (a failed assertion
 * skips the test's own clean-up) get SIGTERM, so they remove their sockets
 * and shared memory, then SIGKILL.  waitpid() only reaches our own
 * unreaped children, so a recycled pid is never hit. */
static pid_t tracked[256];
static unsigned n_tracked;

static void reap_tracked(void)
{
	for (unsigned i = 0; i < n_tracked; i++) {
		pid_t pid = tracked[i];

		if (waitpid(pid, NULL, WNOHANG) != 0)
			continue;
		kill(pid, SIGTERM);
		if (tu_wait(pid, 2000) < 0)
			tu_kill(pid);
	}
	n_tracked = 0;
}

void st_track(pid_t pid)
{
	if (!n_tracked)
		atexit(reap_tracked);
	if (pid > 0 && n_tracked < sizeof(tracked) / sizeof(tracked[0]))
		tracked[n_tracked++] = pid;
}

pid_t st_start(const char *sock, const char *log, unsigned nofile, char *const args[])
{
	return st_start_as(sock, log, nofile, (uid_t)-1, args);
}

pid_t st_start_as(const char *sock, const char *log, unsigned nofile, uid_t uid, char *const args[])
{
	char *argv[64];
	int n = 0;
	pid_t pid;

	argv[n++] = (char *)tu_server_bin();
	argv[n++] = (char *)"-S";
	argv[n++] = (char *)sock;
	while (args && *args && n < 63)
		argv[n++] = *args++;
	argv[n] = NULL;
	pid_t parent = getpid();

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd;

		tu_child_init(parent);
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		{
			int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
			if (lfd >= 0) {
				dup2(lfd, 1);
				dup2(lfd, 2);
			}
		}
		if (nofile) {
			struct rlimit rl = {nofile, nofile};
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		if (uid != (uid_t)-1 &&
		    (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 || setuid(uid) < 0))
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	st_track(pid);
	/* Wait for the start-up line rather than probing the socket: a
	 * probe would be a peer, and its leave could race with the test's
	 * first peer. */
	for (int64_t end = tu_now_ms() + 10000;; usleep(5000)) {
		char *text = tu_read_file(log);
		bool up = text && strstr(text, "serving ");

		free(text);
		if (up)
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			fail_msg("server exited during start-up (log %s)", log);
		if (tu_now_ms() > end) {
			tu_kill(pid);
			fail_msg("server did not start (log %s)", log);
		}
	}
}

/* True when nobody holds an OFD lock on @path (or it does not exist). */
static bool st_unlocked(const char *path)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	int fd = open(path, O_RDWR | O_CLOEXEC);
	bool free_;

	if (fd < 0)
		return errno == ENOENT;
	free_ = fcntl(fd, F_OFD_SETLK, &fl) == 0;
	close(fd); /* drops the lock if taken */
	return free_;
}

void st_kill(pid_t pid, const char *sock, const char *shm)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char lock[sizeof(sa.sun_path) + 8], obj[128];

	tu_kill(pid);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	snprintf(lock, sizeof(lock), "%s.lock", sock);
	snprintf(obj, sizeof(obj), "/dev/shm/%s", shm ? shm : "");
	for (int64_t end = tu_now_ms() + 10000;; usleep(5000)) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool listening;

		assert_true(fd >= 0);
		listening = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (!listening && st_unlocked(lock) && (!shm || st_unlocked(obj)))
			return;
		if (tu_now_ms() > end)
			fail_msg("what server %d held on %s is still in use after 10 s", (int)pid,
				 sock);
	}
}

void st_stop(pid_t pid)
{
	int status;

	assert_int_equal(kill(pid, SIGTERM), 0);
	status = tu_wait(pid, 10000);
	assert_true(status >= 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}
