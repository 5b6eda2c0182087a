/* SPDX-License-Identifier: MIT */
/*
 * ivlink-server as a program: command line, start-up checks (stale and live
 * sockets and shared memory), permissions, signals and clean-up, daemon mode.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "srvtest.h"

static const char *logf_(const char *tag)
{
	static char b[8][64];
	static unsigned n;
	char *p = b[n++ % 8];

	snprintf(p, 64, "%s.log", tag);
	return tu_path(tu_tmpdir(), p);
}

/* Run the server to completion (for start-up failures). */
static int run_server(char **err, char *const args[])
{
	char *argv[32];
	int n = 0, ret;

	argv[n++] = (char *)tu_server_bin();
	while (args && *args)
		argv[n++] = *args++;
	argv[n] = NULL;
	ret = tu_run(argv, 10000, NULL, err);
	return ret;
}

static void expect_exit(int want, const char *needle, char *const args[])
{
	char *err = NULL;
	int ret = run_server(&err, args);

	if (ret != want || (needle && !strstr(err, needle)))
		fail_msg("exit %d (want %d), stderr:\n%s", ret, want, err);
	/* Every error line names the program. */
	if (want && !strstr(err, "ivlink-server: "))
		fail_msg("no 'ivlink-server: ' prefix in:\n%s", err);
	free(err);
}

static void stop_with(int sig)
{
	const char *name = st_shm_name(sig == SIGTERM ? "term" : "int");
	const char *sock = st_sock(sig == SIGTERM ? "term" : "int");
	char *args[] = {"-M", (char *)name, NULL};
	struct st_peer a;
	int status;
	pid_t pid = st_start(sock, logf_(sig == SIGTERM ? "term" : "int"), 0, args);

	st_connect(&a, sock);
	st_handshake(&a, 1, NULL, 0);
	assert_true(st_shm_exists(name));
	assert_int_equal(kill(pid, sig), 0);
	status = tu_wait(pid, 10000);
	assert_true(status >= 0 && WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(access(sock, F_OK), -1);
	assert_false(st_shm_exists(name));
	/* Connected peers are disconnected. */
	{
		struct ivl_msg m;
		assert_int_equal(st_recv(&a, &m, ST_TIMEOUT), -ECONNRESET);
	}
	st_close(&a);
}

static void sigterm_cleans_up(void **state)
{
	(void)state;
	stop_with(SIGTERM);
}

static void sigint_cleans_up(void **state)
{
	(void)state;
	stop_with(SIGINT);
}

/* A socket file nobody listens on. */
static void make_stale_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
}

static void stale_socket_taken_over(void **state)
{
	const char *sock = st_sock("stale");
	char *args[] = {"-M", (char *)st_shm_name("stale"), NULL};
	struct st_peer a;

	(void)state;
	make_stale_socket(sock);
	pid_t pid = st_start(sock, logf_("stale"), 0, args);
	st_connect(&a, sock);
	st_handshake(&a, 1, NULL, 0);
	st_close(&a);
	st_stop(pid);
}

static void live_socket_refused(void **state)
{
	const char *sock = st_sock("live");
	char *args[] = {"-M", (char *)st_shm_name("live"), NULL};
	char *args2[] = {"-S", (char *)sock, "-M", (char *)st_shm_name("live2"), NULL};
	struct st_peer a;

	(void)state;
	pid_t pid = st_start(sock, logf_("live"), 0, args);
	expect_exit(1, "in use", args2);
	assert_false(st_shm_exists(st_shm_name("live2")));
	/* The first server is untouched and its socket still there.  (The
	 * loser's probe was a peer that joined and left: whether our
	 * handshake still lists it is a race, so look at the start only.) */
	st_connect(&a, sock);
	st_expect(&a, 0, false, false);
	{
		struct ivl_msg m;
		assert_int_equal(st_recv(&a, &m, ST_TIMEOUT), 1);
		assert_true(m.fd < 0 && m.value >= 0);
	}
	st_expect(&a, -1, true, false);
	st_close(&a);
	st_stop(pid);
}

static void not_a_socket_refused(void **state)
{
	const char *path = tu_path(tu_tmpdir(), "plainfile");
	char *args[] = {"-S", (char *)path, "-M", (char *)st_shm_name("plain"), NULL};
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	expect_exit(1, "not a socket", args);
	assert_int_equal(access(path, F_OK), 0);
}

static void shm_of_live_server_refused(void **state)
{
	const char *name = st_shm_name("shmlive");
	char *args[] = {"-M", (char *)name, NULL};
	char *args2[] = {"-S", (char *)st_sock("shmlive2"), "-M", (char *)name, NULL};
	struct st_peer a;

	(void)state;
	pid_t pid = st_start(st_sock("shmlive"), logf_("shmlive"), 0, args);
	expect_exit(1, "in use by a running server", args2);
	/* The loser removed its own socket, not the winner's object. */
	assert_int_equal(access(st_sock("shmlive2"), F_OK), -1);
	assert_true(st_shm_exists(name));
	st_connect(&a, st_sock("shmlive"));
	st_handshake(&a, 1, NULL, 0);
	st_close(&a);
	st_stop(pid);
}

static void foreign_shm_refused_unless_forced(void **state)
{
	const char *name = st_shm_name("foreign");
	char shm[80];
	char *args[] = {"-S", (char *)st_sock("foreign"), "-M", (char *)name, NULL};
	char *forced[] = {"-M", (char *)name, "--force", NULL};
	int fd;

	(void)state;
	snprintf(shm, sizeof(shm), "/%s", name);
	fd = shm_open(shm, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4 << 20), 0);
	close(fd);
	expect_exit(1, "already exists", args);
	assert_true(st_shm_exists(name));
	pid_t pid = st_start(st_sock("foreign"), logf_("foreign"), 0, forced);
	st_stop(pid);
	assert_false(st_shm_exists(name));
}

static void stale_shm_reused(void **state)
{
	const char *name = st_shm_name("crash");
	const char *sock = st_sock("crash");
	char *args[] = {"-M", (char *)name, NULL};
	struct st_peer a;

	(void)state;
	pid_t pid = st_start(sock, logf_("crash"), 0, args);
	st_kill(pid, sock, name); /* SIGKILL: socket and object left behind */
	assert_int_equal(access(sock, F_OK), 0);
	assert_true(st_shm_exists(name));
	pid = st_start(sock, logf_("crash2"), 0, args);
	st_connect(&a, sock);
	st_handshake(&a, 1, NULL, 0);
	{
		struct ivl_shm_header h;
		void *p = mmap(NULL, 4 << 20, PROT_READ, MAP_SHARED, a.shm_fd, 0);
		assert_true(p != MAP_FAILED);
		assert_int_equal(ivl_shm_validate(p, 4 << 20, &h), 0);
		assert_int_equal(h.server_pid, pid);
		munmap(p, 4 << 20);
	}
	st_close(&a);
	st_stop(pid);
	assert_false(st_shm_exists(name));
	assert_int_equal(access(sock, F_OK), -1);
}

static void size_must_be_power_of_two(void **state)
{
	const char *name = st_shm_name("size");
	char *bad[] = {"-S", (char *)st_sock("size"), "-M", (char *)name, "-l", "3M", NULL};
	char *round[] = {"-M", (char *)name, "-l", "3M", "--round-up", NULL};
	char path[128];
	struct stat st;

	(void)state;
	expect_exit(2, "power of two", bad);
	assert_false(st_shm_exists(name));
	expect_exit(2, "not a size", (char *[]){"-l", "lots", NULL});
	pid_t pid = st_start(st_sock("size"), logf_("size"), 0, round);
	snprintf(path, sizeof(path), "/dev/shm/%s", name);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size == 4 << 20);
	st_stop(pid);
}

static void sparse_8g_file(void **state)
{
	const char *file = tu_path(tu_tmpdir(), "big.shm");
	char *args[] = {"--shm-file", (char *)file, "-l", "8G", NULL};
	struct st_peer a;
	struct stat st;

	(void)state;
	pid_t pid = st_start(st_sock("big"), logf_("big"), 0, args);
	st_connect(&a, st_sock("big"));
	st_handshake(&a, 1, NULL, 0);
	assert_int_equal(fstat(a.shm_fd, &st), 0);
	assert_true(st.st_size == 8ll << 30);
	assert_true(st.st_blocks * 512ll < 64ll << 20); /* sparse */
	{
		void *p = mmap(NULL, 8ull << 30, PROT_READ, MAP_SHARED, a.shm_fd, 0);
		assert_true(p != MAP_FAILED);
		assert_int_equal(ivl_shm_validate(p, 8ull << 30, NULL), 0);
		munmap(p, 8ull << 30);
	}
	st_close(&a);
	st_stop(pid);
	assert_int_equal(access(file, F_OK), -1);
}

static void usage_errors(void **state)
{
	char *err = NULL;

	(void)state;
	expect_exit(2, NULL, (char *[]){"--bogus", NULL});
	expect_exit(2, "1 to 64", (char *[]){"-n", "0", NULL});
	expect_exit(2, "1 to 64", (char *[]){"-n", "65", NULL});
	expect_exit(2, "1 to 64", (char *[]){"--vectors", "two", NULL});
	expect_exit(2, "octal", (char *[]){"--mode", "999", NULL});
	expect_exit(2, "no such user", (char *[]){"--allow-uid", "no-such-user-ivl", NULL});
	expect_exit(2, "conflicts", (char *[]){"--memfd", "-M", "x", NULL});
	expect_exit(2, "unexpected", (char *[]){"stray", NULL});
	assert_int_equal(run_server(&err, (char *[]){"--help", NULL}), 0);
	free(err);
	{
		char *argv[] = {(char *)tu_server_bin(), "--version", NULL};
		char *out = NULL;
		assert_int_equal(tu_run(argv, 10000, &out, NULL), 0);
		assert_non_null(strstr(out, "ivlink-server "));
		free(out);
	}
}

static void socket_path_too_long(void **state)
{
	char path[200];
	char *args[] = {"-S", path, "-M", (char *)st_shm_name("long"), NULL};

	(void)state;
	memset(path, 'x', sizeof(path));
	snprintf(path, sizeof(path), "%s/", tu_tmpdir());
	path[strlen(path)] = 'x';
	path[120] = '\0';
	expect_exit(1, "too long", args);
	assert_false(st_shm_exists(st_shm_name("long")));
}

static void modes_are_private(void **state)
{
	const char *name = st_shm_name("mode");
	char *args[] = {"-M", (char *)name, NULL};
	char *args2[] = {"-M", (char *)name, "--mode", "0660", NULL};
	char path[128];
	struct stat st;
	pid_t pid;

	(void)state;
	pid = st_start(st_sock("mode"), logf_("mode"), 0, args);
	assert_int_equal(stat(st_sock("mode"), &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(path, sizeof(path), "/dev/shm/%s", name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	st_stop(pid);

	pid = st_start(st_sock("mode2"), logf_("mode2"), 0, args2);
	assert_int_equal(stat(st_sock("mode2"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	st_stop(pid);
}

static void daemon_with_pid_file(void **state)
{
	const char *sock = st_sock("daemon");
	const char *pidf = tu_path(tu_tmpdir(), "daemon.pid");
	char *args[] = {
	    "-D", "-p", (char *)pidf, "-S", (char *)sock, "-M", (char *)st_shm_name("daemon"),
	    NULL};
	struct st_peer a;
	char *text;
	long dpid;
	int status;

	(void)state;
	/* Become the daemon's reaper so its exit status can be checked. */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	expect_exit(0, NULL, args);
	text = tu_read_file(pidf);
	assert_non_null(text);
	dpid = strtol(text, NULL, 10);
	free(text);
	assert_true(dpid > 1);
	st_track((pid_t)dpid);
	assert_int_equal(kill((pid_t)dpid, 0), 0);
	/* Ready when the parent returned: no waiting needed. */
	st_connect(&a, sock);
	st_handshake(&a, 1, NULL, 0);
	st_close(&a);
	assert_int_equal(kill((pid_t)dpid, SIGTERM), 0);
	status = tu_wait((pid_t)dpid, 10000);
	assert_true(status >= 0 && WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(access(pidf, F_OK), -1);
	assert_int_equal(access(sock, F_OK), -1);
	assert_false(st_shm_exists(st_shm_name("daemon")));
	prctl(PR_SET_CHILD_SUBREAPER, 0);
}

/* -D reports start-up failures through its exit status. */
static void daemon_start_failure(void **state)
{
	char *args[] = {
	    "-D",    "-S", (char *)st_sock("dfail"),	 "-n", "2", "-l", "4M", "--max-peers",
	    "65536", "-M", (char *)st_shm_name("dfail"), NULL};

	(void)state;
	expect_exit(1, "region too small", args);
	assert_int_equal(access(st_sock("dfail"), F_OK), -1);
}

/* systemd socket activation: the server serves the inherited listener and
 * leaves its path alone on exit (it did not create it). */
static void socket_activation(void **state)
{
	const char *act = "/usr/bin/systemd-socket-activate";
	const char *sock = st_sock("activated");
	char *argv[] = {(char *)act, "-l",	   (char *)sock, (char *)tu_server_bin(),
			"-S",	     (char *)sock, "-M",	 (char *)st_shm_name("activated"),
			NULL};
	struct st_peer a;
	pid_t pid;

	(void)state;
	if (!HAVE_LIBSYSTEMD || access(act, X_OK) < 0)
		skip();
	pid = tu_spawn(argv, logf_("activated"));
	assert_true(pid > 0);
	st_track(pid);
	/* Connect as soon as it listens (bind comes before listen, so the
	 * path appears early); that connection starts the server. */
	for (int64_t end = tu_now_ms() + 10000;; usleep(2000)) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			memset(&a, 0, sizeof(a));
			a.sock = fd;
			a.shm_fd = -1;
			ivl_msg_reader_init(&a.r);
			assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
			break;
		}
		close(fd);
		if (tu_now_ms() > end) {
			tu_kill(pid);
			fail_msg("systemd-socket-activate did not listen");
		}
	}
	st_handshake(&a, 1, NULL, 0);
	st_close(&a);
	st_stop(pid);
	assert_int_equal(access(sock, F_OK), 0);
	assert_false(st_shm_exists(st_shm_name("activated")));
	unlink(sock);
}

/* Read datagrams from the fake notify socket until one contains @needle. */
static bool notified(int fd, const char *needle)
{
	int64_t end = tu_now_ms() + ST_TIMEOUT;

	while (tu_now_ms() < end) {
		char buf[512];
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		if (strstr(buf, needle))
			return true;
	}
	return false;
}

/* Type=notify: READY=1 once serving, and the peer count as STATUS. */
static void sd_notify_status(void **state)
{
	const char *nsock = tu_path(tu_tmpdir(), "notify.dgram");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char *args[] = {"-M", (char *)st_shm_name("notify"), NULL};
	struct st_peer a;
	int fd;
	pid_t pid;

	(void)state;
	if (!HAVE_LIBSYSTEMD)
		skip();
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", nsock);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", nsock, 1);
	pid = st_start(st_sock("notify"), logf_("notify"), 0, args);
	unsetenv("NOTIFY_SOCKET");
	assert_true(notified(fd, "READY=1"));
	st_connect(&a, st_sock("notify"));
	st_handshake(&a, 1, NULL, 0);
	assert_true(notified(fd, "STATUS=1 peer connected"));
	st_close(&a);
	assert_true(notified(fd, "STATUS=0 peers connected"));
	st_stop(pid);
	assert_true(notified(fd, "STOPPING=1"));
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sigterm_cleans_up),
	    cmocka_unit_test(sigint_cleans_up),
	    cmocka_unit_test(stale_socket_taken_over),
	    cmocka_unit_test(live_socket_refused),
	    cmocka_unit_test(not_a_socket_refused),
	    cmocka_unit_test(shm_of_live_server_refused),
	    cmocka_unit_test(foreign_shm_refused_unless_forced),
	    cmocka_unit_test(stale_shm_reused),
	    cmocka_unit_test(size_must_be_power_of_two),
	    cmocka_unit_test(sparse_8g_file),
	    cmocka_unit_test(usage_errors),
	    cmocka_unit_test(socket_path_too_long),
	    cmocka_unit_test(modes_are_private),
	    cmocka_unit_test(daemon_with_pid_file),
	    cmocka_unit_test(daemon_start_failure),
	    cmocka_unit_test(socket_activation),
	    cmocka_unit_test(sd_notify_status),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
