/* SPDX-License-Identifier: MIT */
/*
 * The CLI's SDM master and slaves as separate processes: boot, IRQ with
 * payload both ways, reset, slave-to-slave refused, max_slaves exceeded,
 * kill -9 of a slave and its return with the same ID, a wrong key refused.
 * Over UNIX (plain) and TCP on loopback (keyed).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

struct proc {
	pid_t pid;
	char log[256];
};

static const char *dir;
static char master_addr[256];
static const char *key_arg;
static bool on_link; /* slaves need --master-peer */
static char master_peer[16];
static pid_t spawned[64];
static unsigned nspawned;

/* A failed assertion leaves the daemons running: kill them at exit. */
static void kill_all(void)
{
	for (unsigned i = 0; i < nspawned; i++)
		if (kill(spawned[i], 0) == 0)
			tu_kill(spawned[i]);
}

static char *ctl(int n)
{
	static char buf[4][256];
	static int i;
	char *b = buf[i++ % 4];

	snprintf(b, 256, "%s/c%d.ctl", dir, n);
	return b;
}

static void spawn(struct proc *p, char **argv, const char *name)
{
	snprintf(p->log, sizeof(p->log), "%s/%s.log", dir, name);
	unlink(p->log);
	p->pid = tu_spawn(argv, p->log);
	assert_true(p->pid > 0);
	if (!nspawned)
		atexit(kill_all);
	if (nspawned < 64)
		spawned[nspawned++] = p->pid;
}

static void start_master(struct proc *p)
{
	char *argv[16] = {
	    (char *)tu_cli_bin(), "sdm", "master",    "--listen", master_addr, "--max-slaves", "3",
	    "--keepalive",	  "300", "--control", ctl(0)};
	int n = 11;

	if (key_arg) {
		argv[n++] = "--key";
		argv[n++] = (char *)key_arg;
	}
	argv[n] = NULL;
	spawn(p, argv, "master");
	assert_int_equal(tu_wait_socket(ctl(0), 10000), 0);
	if (on_link) {
		/* Its link peer ID, for the slaves' --master-peer. */
		char *log = tu_read_file(p->log), *l = log ? strstr(log, "listening ") : NULL;

		assert_non_null(l);
		snprintf(master_peer, sizeof(master_peer), "%d", atoi(l + 10));
		free(log);
	}
}

static void start_slave(struct proc *p, int id, const char *key)
{
	char ids[16], boot[512], irq[512], name[32];
	char *argv[20] = {
	    (char *)tu_cli_bin(), "sdm", "slave",    "--connect", master_addr, "--control", ctl(id),
	    "--on-boot",	  boot,	 "--on-irq", irq};
	int n = 11;

	snprintf(ids, sizeof(ids), "%d", id);
	snprintf(boot, sizeof(boot), "echo boot $SDM_SLAVE $SDM_PAYLOAD0 >> %s/hook%d", dir, id);
	snprintf(irq, sizeof(irq), "echo irq $SDM_SLAVE $SDM_PAYLOAD0 $SDM_PAYLOAD1 >> %s/hook%d",
		 dir, id);
	if (id <= 3) {
		argv[n++] = "--id";
		argv[n++] = ids;
	}
	if (key) {
		argv[n++] = "--key";
		argv[n++] = (char *)key;
	}
	if (on_link) {
		argv[n++] = "--master-peer";
		argv[n++] = master_peer;
	}
	argv[n] = NULL;
	snprintf(name, sizeof(name), "slave%d", id);
	spawn(p, argv, name);
}

/* Run "ivlink sdm ARGS... --control C"; returns the exit status. */
static int ctl_run(const char *c, char **out, char **err, const char *a0, const char *a1,
		   const char *a2, const char *a3, const char *a4)
{
	char *argv[12] = {(char *)tu_cli_bin(), "--json",    "sdm",
			  (char *)a0,		"--control", (char *)c};
	const char *rest[] = {a1, a2, a3, a4};
	int n = 6;

	for (int i = 0; i < 4 && rest[i]; i++)
		argv[n++] = (char *)rest[i];
	argv[n] = NULL;
	return tu_run(argv, 10000, out, err);
}

static int current_slaves(void)
{
	char *out = NULL;
	const char *p;
	int v = -1;

	if (ctl_run(ctl(0), &out, NULL, "status", NULL, NULL, NULL, NULL) == 0 && out &&
	    (p = strstr(out, "\"current_slaves\": ")))
		v = atoi(p + 18);
	free(out);
	return v;
}

static bool wait_current(int want)
{
	int64_t end = tu_now_ms() + 10000;

	while (tu_now_ms() < end) {
		if (current_slaves() == want)
			return true;
		poll(NULL, 0, 50);
	}
	return false;
}

static bool wait_file(const char *path, const char *text)
{
	int64_t end = tu_now_ms() + 10000;

	while (tu_now_ms() < end) {
		char *s = tu_read_file(path);
		bool ok = s && strstr(s, text);

		free(s);
		if (ok)
			return true;
		poll(NULL, 0, 20);
	}
	return false;
}

static const char *hook(int id)
{
	static char b[256];

	snprintf(b, sizeof(b), "%s/hook%d", dir, id);
	return b;
}

static void scenario(void)
{
	struct proc m, s[5];
	char *err = NULL;
	int st;

	start_master(&m);
	for (int i = 1; i <= 3; i++)
		start_slave(&s[i], i, key_arg);
	assert_true(wait_current(3));

	/* Boot the three slaves: the --on-boot action runs with the fields. */
	for (int i = 1; i <= 3; i++) {
		char id[4], want[64];

		snprintf(id, sizeof(id), "%d", i);
		assert_int_equal(ctl_run(ctl(0), NULL, NULL, "send", "boot", id, "4096", "0"), 0);
		snprintf(want, sizeof(want), "boot %d 4096", i);
		assert_true(wait_file(hook(i), want));
	}
	/* IRQ with payload, master -> slave 2 and slave 1 -> master. */
	assert_int_equal(ctl_run(ctl(0), NULL, NULL, "send", "irq", "2", "5", "6"), 0);
	assert_true(wait_file(hook(2), "irq 2 5 6"));
	assert_int_equal(ctl_run(ctl(1), NULL, NULL, "send", "irq", "0", "7", "8"), 0);
	assert_true(wait_file(m.log, "irq from 1 to 0 payload 0x00000007 0x00000008"));
	/* RESET reaches slave 3. */
	assert_int_equal(ctl_run(ctl(0), NULL, NULL, "send", "reset", "3", NULL, NULL), 0);
	assert_true(wait_file(s[3].log, "reset from 0 to 3"));
	/* IRQ to all (seed 000's mailbox): each slave gets it once, naming
	 * itself; a slave may not broadcast. */
	{
		char *out = NULL;

		assert_int_equal(ctl_run(ctl(0), &out, NULL, "send", "irq", "all", "11", "12"), 0);
		assert_non_null(out);
		assert_non_null(strstr(out, "\"slaves\": 3"));
		free(out);
		for (int i = 1; i <= 3; i++) {
			char want[64];

			snprintf(want, sizeof(want), "irq %d 11 12", i);
			assert_true(wait_file(hook(i), want));
		}
		assert_int_equal(ctl_run(ctl(0), NULL, NULL, "send", "boot", "all", "8192", "0"), 0);
		for (int i = 1; i <= 3; i++) {
			char want[64];

			snprintf(want, sizeof(want), "boot %d 8192", i);
			assert_true(wait_file(hook(i), want));
		}
		assert_int_equal(ctl_run(ctl(1), NULL, &err, "send", "irq", "all", NULL, NULL), 1);
		assert_non_null(strstr(err, "never 'all'"));
		free(err);
		err = NULL;
	}
	/* Slave to slave: refused by the sender. */
	assert_int_equal(ctl_run(ctl(1), NULL, &err, "send", "irq", "2", NULL, NULL), 1);
	assert_non_null(strstr(err, "only signal the master"));
	free(err);
	err = NULL;

	/* A fourth slave is refused: full. */
	start_slave(&s[4], 4, key_arg);
	assert_true(wait_file(s[4].log, "Too many users"));
	assert_int_equal(current_slaves(), 3);
	tu_kill(s[4].pid);

	/* kill -9 slave 2: the master sees it go, a signal to it fails
	 * clearly, and a new process gets ID 2 back. */
	tu_kill(s[2].pid);
	assert_true(wait_current(2));
	assert_int_equal(ctl_run(ctl(0), NULL, &err, "send", "irq", "2", "1", "1"), 1);
	assert_non_null(strstr(err, "not connected"));
	free(err);
	err = NULL;
	unlink(hook(2));
	start_slave(&s[2], 2, key_arg);
	assert_true(wait_current(3));
	assert_int_equal(ctl_run(ctl(0), NULL, NULL, "send", "irq", "2", "9", "10"), 0);
	assert_true(wait_file(hook(2), "irq 2 9 10"));

	/* A wrong key is refused and the slave gives up. */
	if (key_arg) {
		char wrong[256];
		int fd;

		snprintf(wrong, sizeof(wrong), "%s/wrong.key", dir);
		fd = open(wrong, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_int_equal(
		    write(fd, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
			  65),
		    65);
		close(fd);
		tu_kill(s[3].pid);
		assert_true(wait_current(2));
		start_slave(&s[4], 3, wrong);
		st = tu_wait(s[4].pid, 10000);
		assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1);
		assert_true(wait_file(s[4].log, "authentication failed"));
		assert_int_equal(current_slaves(), 2);
		s[3].pid = -1;
	}

	/* SIGTERM: clean exit, control socket removed. */
	for (int i = 1; i <= 3; i++)
		if (s[i].pid > 0) {
			kill(s[i].pid, SIGTERM);
			st = tu_wait(s[i].pid, 10000);
			assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		}
	kill(m.pid, SIGTERM);
	st = tu_wait(m.pid, 10000);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(access(ctl(0), F_OK), -1);
}

static void cli_unix(void **state)
{
	(void)state;
	if (!tu_cli_bin())
		skip();
	dir = tu_tmpdir();
	snprintf(master_addr, sizeof(master_addr), "unix:%s/m.sock", dir);
	key_arg = NULL;
	scenario();
}

static void cli_tcp_keyed(void **state)
{
	static char key[256];
	int fd;

	(void)state;
	if (!tu_cli_bin())
		skip();
	dir = tu_tmpdir();
	for (int i = 1; i <= 4; i++)
		unlink(hook(i));
	snprintf(key, sizeof(key), "%s/psk.key", dir);
	fd = open(key, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	{
		uint8_t k[32];

		for (int i = 0; i < 32; i++)
			k[i] = (uint8_t)(rand() ^ (i * 31));
		assert_int_equal(write(fd, k, 32), 32);
	}
	close(fd);
	key_arg = key;
	/* A free loopback port, asked from the kernel (the master is a
	 * separate process, so it cannot tell us what it bound). */
	{
		struct sockaddr_in in = {.sin_family = AF_INET};
		socklen_t len = sizeof(in);

		in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(bind(fd, (struct sockaddr *)&in, sizeof(in)), 0);
		assert_int_equal(getsockname(fd, (struct sockaddr *)&in, &len), 0);
		close(fd);
		snprintf(master_addr, sizeof(master_addr), "tcp:127.0.0.1:%u", ntohs(in.sin_port));
	}
	scenario();
}

/* The link channel through a real ivlink-server. */
static void cli_link(void **state)
{
	char sock[200], shm[64];
	pid_t srv;

	(void)state;
	if (!tu_cli_bin() || !tu_server_bin())
		skip();
	dir = tu_tmpdir();
	for (int i = 1; i <= 4; i++)
		unlink(hook(i));
	snprintf(sock, sizeof(sock), "%s/srv.sock", dir);
	snprintf(shm, sizeof(shm), "ivl-sdm-test-%d", (int)getpid());
	srv = tu_start_server(sock, NULL, "-M", shm, "-l", "1M", NULL);
	assert_true(srv > 0);
	snprintf(master_addr, sizeof(master_addr), "link:%s", sock);
	key_arg = NULL;
	on_link = true;
	scenario();
	on_link = false;
	kill(srv, SIGTERM);
	if (tu_wait(srv, 5000) < 0)
		tu_kill(srv);
	shm_unlink(shm); /* in case the server could not */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(cli_unix),
	    cmocka_unit_test(cli_tcp_keyed),
	    cmocka_unit_test(cli_link),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
