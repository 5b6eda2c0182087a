/* SPDX-License-Identifier: MIT */
/*
 * Wire compatibility with the real thing: QEMU's ivshmem-doorbell device
 * reads the version, its ID and the shared memory while the device is
 * realized (QEMU exits if any of it is wrong), then join and leave
 * notifications at run time (logged as errors if wrong).  Skipped when
 * qemu-system-x86_64 is not installed.  The guests never run (-S).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "srvtest.h"

#define QEMU "/usr/bin/qemu-system-x86_64"

struct qemu {
	pid_t pid;
	int qmp;
	char log[300];
};

/* Read QMP lines until one contains @needle; returns a malloc'd copy of
 * everything read, or NULL on timeout/EOF. */
static char *qmp_until(int fd, const char *needle)
{
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap);
	int64_t end = tu_now_ms() + 10000;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		buf[len] = '\0';
		if (strstr(buf, needle))
			return buf;
		if (tu_now_ms() > end || len + 1 >= cap)
			break;
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(fd, buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	free(buf);
	return NULL;
}

static void qmp_cmd(int fd, const char *cmd)
{
	size_t n = strlen(cmd);

	assert_int_equal(write(fd, cmd, n), (ssize_t)n);
}

static void qemu_start(struct qemu *q, const char *sock, const char *tag)
{
	char qmp[sizeof(((struct sockaddr_un *)0)->sun_path)], chardev[300], qmparg[300];
	char *argv[] = {QEMU,
			"-M",
			"q35",
			"-accel",
			"tcg",
			"-display",
			"none",
			"-S",
			"-monitor",
			"none",
			"-serial",
			"none",
			"-nodefaults",
			"-chardev",
			chardev,
			"-device",
			"ivshmem-doorbell,chardev=ivs,vectors=2",
			"-qmp",
			qmparg,
			NULL};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char *r;

	assert_true(strlen(tu_path(tu_tmpdir(), tag)) < sizeof(qmp));
	snprintf(qmp, sizeof(qmp), "%s", tu_path(tu_tmpdir(), tag));
	snprintf(q->log, sizeof(q->log), "%s.log", qmp);
	snprintf(chardev, sizeof(chardev), "socket,path=%s,id=ivs", sock);
	snprintf(qmparg, sizeof(qmparg), "unix:%s,server=on,wait=off", qmp);
	q->pid = tu_spawn(argv, q->log);
	assert_true(q->pid > 0);
	st_track(q->pid);
	/* QMP listens only once the machine, device included, is built. */
	memcpy(sa.sun_path, qmp, sizeof(qmp));
	for (int64_t end = tu_now_ms() + 20000;; usleep(10000)) {
		q->qmp = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(q->qmp, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		close(q->qmp);
		if (waitpid(q->pid, NULL, WNOHANG) == q->pid) {
			char *log = tu_read_file(q->log);
			fail_msg("QEMU exited during start-up:\n%s", log ? log : "");
		}
		if (tu_now_ms() > end) {
			tu_kill(q->pid);
			fail_msg("QEMU did not start");
		}
	}
	assert_non_null(r = qmp_until(q->qmp, "QMP"));
	free(r);
	qmp_cmd(q->qmp, "{\"execute\":\"qmp_capabilities\"}\n");
	assert_non_null(r = qmp_until(q->qmp, "return"));
	free(r);
}

/* The ivshmem device (1af4:1110) is on the bus. */
static void qemu_check_device(struct qemu *q)
{
	char *r;

	qmp_cmd(q->qmp, "{\"execute\":\"query-pci\"}\n");
	r = qmp_until(q->qmp, "\"return\"");
	assert_non_null(r);
	assert_non_null(strstr(r, "\"device\": 4368"));
	free(r);
}

static void qemu_quit(struct qemu *q)
{
	int status;
	char *log;

	qmp_cmd(q->qmp, "{\"execute\":\"quit\"}\n");
	status = tu_wait(q->pid, 10000);
	close(q->qmp);
	assert_true(status >= 0 && WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* Any protocol complaint of the device ends up here. */
	log = tu_read_file(q->log);
	if (log && strstr(log, "qemu-system-x86_64:"))
		fail_msg("QEMU complained:\n%s", log);
	free(log);
}

static void qemu_doorbell_peers(void **state)
{
	const char *sock = st_sock("qemu");
	char *args[] = {"-n", "2", "-M", (char *)st_shm_name("qemu"), NULL};
	struct qemu q0, q1;
	struct st_peer a;
	pid_t pid;

	(void)state;
	if (access(QEMU, X_OK) < 0)
		skip();
	pid = st_start(sock, tu_path(tu_tmpdir(), "qemu-server.log"), 0, args);
	st_connect(&a, sock);
	assert_int_equal(st_handshake(&a, 2, NULL, 0), 0);

	qemu_start(&q0, sock, "qmp0");
	st_expect(&a, 1, true, false);
	st_expect(&a, 1, true, false);
	qemu_check_device(&q0);

	/* The second guest learns about a and q0; q0 learns about it. */
	qemu_start(&q1, sock, "qmp1");
	st_expect(&a, 2, true, false);
	st_expect(&a, 2, true, false);
	qemu_check_device(&q1);

	qemu_quit(&q1);
	st_expect(&a, 2, false, false);
	/* One more round trip, so q0 has seen the leave as well. */
	qemu_check_device(&q0);
	st_close(&a);
	qemu_check_device(&q0);
	qemu_quit(&q0);
	st_stop(pid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(qemu_doorbell_peers),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
