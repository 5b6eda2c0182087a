/* SPDX-License-Identifier: MIT */
/*
 * A peer shrinks the shared memory (issue: ftruncate(shm_fd, 0) by any peer
 * killed the server and every library peer with SIGBUS).  Our memfds are
 * sealed, so the shrink itself fails; a POSIX shm object cannot be sealed,
 * so every process of ours that maps it must survive the shrink: the
 * server, `ivlink listen`, `ivlink dev serve` and an SDM link master.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ivlink/link.h>
#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>
#include <ivlink/region.h>

#include "hostile.h"

/* A sealed memfd cannot be shrunk nor grown, and its seals are final. */
static void memfd_is_sealed(void **state)
{
	struct st_peer a;
	const char *log = tu_path(tu_tmpdir(), "memfd.log");
	int seals, mine = tu_count_fds();
	pid_t pid;

	(void)state;
	pid = st_start(st_sock("memfd"), log, 0, (char *[]){"--memfd", NULL});
	st_connect(&a, st_sock("memfd"));
	st_handshake_any(&a, 1);
	seals = fcntl(a.shm_fd, F_GET_SEALS);
	assert_true(seals >= 0);
	assert_true(seals & F_SEAL_SHRINK);
	assert_true(seals & F_SEAL_GROW);
	assert_true(seals & F_SEAL_SEAL);
	assert_int_equal(ftruncate(a.shm_fd, 0), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(a.shm_fd, 8 << 20), -1);
	st_close(&a);
	st_stop(pid);
	assert_int_equal(tu_count_fds(), mine);
}

/* Read messages until the peer's own vectors (value == its ID) arrived;
 * keep every fd of the other peers in @fds. */
static int take_all(struct st_peer *p, int *fds, int max)
{
	struct ivl_msg m;
	int n = 0, own = 0;

	st_expect(p, 0, false, false);
	assert_int_equal(st_recv(p, &m, ST_TIMEOUT), 1);
	p->id = (int)m.value;
	p->shm_fd = st_expect(p, -1, true, true);
	while (!own) {
		assert_int_equal(st_recv(p, &m, ST_TIMEOUT), 1);
		assert_true(m.fd >= 0);
		if (m.value == p->id) {
			close(m.fd);
			own = 1;
		} else if (n < max) {
			fds[n++] = m.fd;
		} else {
			close(m.fd);
		}
	}
	return n;
}

static pid_t spawn_cli(const char *log, char *const args[])
{
	char *argv[32];
	int n = 0;
	pid_t pid;

	argv[n++] = (char *)tu_cli_bin();
	while (*args)
		argv[n++] = *args++;
	argv[n] = NULL;
	pid = tu_spawn(argv, log);
	assert_true(pid > 0);
	return pid;
}

static int open_shm(const char *shm)
{
	char path[300];

	snprintf(path, sizeof(path), "/dev/shm%s%s", shm[0] == '/' ? "" : "/", shm);
	return open(path, O_RDWR | O_CLOEXEC);
}

static void alive(pid_t pid, const char *what)
{
	int st;

	if (waitpid(pid, &st, WNOHANG) == pid)
		fail_msg("%s died: %s %d", what, WIFSIGNALED(st) ? "signal" : "exit",
			 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

static void shrink_shm_to_zero(void **state)
{
	const char *dir = tu_tmpdir();
	const char *sock = st_sock("shrink"), *shm = st_shm_name("shrink");
	const char *slog = tu_path(dir, "shrink-server.log");
	char sdm[300], ctl[300];
	struct st_peer a, b;
	int fds[16], n, mine = tu_count_fds(), base, before, shmfd;
	pid_t srv, listen, dev, master;

	(void)state;
	if (!tu_cli_bin())
		skip();
	srv = st_start(sock, slog, 0, (char *[]){"-M", (char *)shm, "-l", "1M", NULL});
	base = ho_count_fds(srv);
	listen = spawn_cli(tu_path(dir, "listen.log"),
			   (char *[]){"-S", (char *)sock, "listen", NULL});
	snprintf(sdm, sizeof(sdm), "unix:%s/sdm.sock", dir);
	dev = spawn_cli(tu_path(dir, "dev.log"), (char *[]){"-S", (char *)sock, "dev", "serve",
							    "--console-dir", (char *)dir,
							    "--sdm", sdm, NULL});
	assert_true(ho_wait_log(tu_path(dir, "dev.log"), "serving on peer", 10000));
	snprintf(sdm, sizeof(sdm), "link:%s", sock);
	snprintf(ctl, sizeof(ctl), "%s/master.ctl", dir);
	master = spawn_cli(tu_path(dir, "master.log"),
			   (char *[]){"sdm", "master", "--listen", sdm, "--max-slaves", "3",
				      "--control", ctl, NULL});
	assert_int_equal(tu_wait_socket(ctl, 10000), 0);
	assert_true(ho_wait_log(slog, "peer 2 joined", ST_TIMEOUT));
	/* Joined is not mapped: `ivlink listen` prints its ID once it has
	 * mapped the region (on a loaded machine it could otherwise get the
	 * region only after the shrink, refuse it, and leave). */
	assert_true(ho_wait_log(tu_path(dir, "listen.log"), "self peer", ST_TIMEOUT));

	/* The attacker: an ordinary peer with the others' doorbells. */
	st_connect(&a, sock);
	n = take_all(&a, fds, 16);
	assert_int_equal(n, 3);
	before = ho_count_fds(srv);
	shmfd = open_shm(shm);
	assert_true(shmfd >= 0);
	assert_int_equal(ftruncate(shmfd, 0), 0);
	close(shmfd);

	/* Everyone touches the region: the server at the next join (its
	 * header entry), the others at a doorbell (pending bits). */
	st_connect(&b, sock);
	st_handshake(&b, 1, (int[]){0, 1, 2, a.id}, 4);
	st_expect(&a, b.id, true, false);
	for (int i = 0; i < n; i++) {
		assert_int_equal(ivl_eventfd_ring(fds[i]), 0);
		close(fds[i]);
	}
	st_close(&b);
	st_expect(&a, b.id, false, false);
	assert_true(ho_wait_log(slog, "was shrunk", ST_TIMEOUT));
	alive(srv, "the server");
	alive(listen, "ivlink listen");
	alive(dev, "ivlink dev serve");
	alive(master, "the SDM link master");

	/* The server still admits peers and announces them. */
	st_connect(&b, sock);
	st_handshake(&b, 1, (int[]){0, 1, 2, a.id}, 4);
	st_expect(&a, b.id, true, false);
	st_close(&b);
	st_expect(&a, b.id, false, false);
	alive(srv, "the server");
	/* Everyone has processed the doorbell and two joins and leaves since
	 * the shrink by now (the server sent them before b's handshake). */
	assert_true(ho_wait_log(tu_path(dir, "listen.log"), "leave peer 5", ST_TIMEOUT));
	assert_true(ho_wait_log(tu_path(dir, "listen.log"), "doorbell vector 0", ST_TIMEOUT));
	alive(listen, "ivlink listen");
	alive(dev, "ivlink dev serve");
	alive(master, "the SDM link master");
	print_message("server fds %d before the shrink, %d after\n", before,
		      ho_wait_fds(srv, before, ST_TIMEOUT));
	assert_int_equal(ho_count_fds(srv), before);

	tu_kill(listen);
	tu_kill(dev);
	tu_kill(master);
	for (int i = 0, seen = 0; i < 3; i++) {
		struct ivl_msg m;

		assert_int_equal(st_recv(&a, &m, ST_TIMEOUT), 1);
		assert_true(m.fd < 0 && m.value >= 0 && m.value < 3);
		assert_false(seen & (1 << m.value));
		seen |= 1 << m.value;
	}
	st_close(&a);
	assert_int_equal(ho_wait_fds(srv, base, ST_TIMEOUT), base);
	st_stop(srv);
	assert_int_equal(tu_count_fds(), mine);
}

/* In process: a library call on a shrunk region returns -EIO, the access
 * itself completes (zeros), and an intact region is unaffected. */
static void library_calls_return_eio(void **state)
{
	const char *sock = st_sock("eio"), *shm = st_shm_name("eio");
	const char *log = tu_path(tu_tmpdir(), "eio.log");
	struct ivl_link_host_opts o = {.socket_path = sock, .name = "eio"};
	struct ivl_link *a, *b;
	struct ivl_region *r;
	struct ivl_region_opts ro = {.kind = IVL_REGION_SHM, .size = 1 << 20,
				     .flags = IVL_REGION_CREATE | IVL_REGION_EXCL};
	struct ivl_link_event ev[16];
	char name[64];
	volatile uint64_t *word;
	int mine = tu_count_fds(), shmfd;
	pid_t srv;

	(void)state;
	/* A region of our own: touch it after a shrink. */
	snprintf(name, sizeof(name), "%s-own", shm);
	ro.name = name;
	assert_int_equal(ivl_region_open(&r, &ro), 0);
	assert_int_equal(ivl_region_sealed(r), 0);
	assert_int_equal(ivl_region_check(r), 0);
	word = (volatile uint64_t *)((char *)ivl_region_base(r) + 8192);
	*word = 42;
	assert_int_equal(ftruncate(ivl_region_fd(r), 4096), 0);
	assert_int_equal(*word, 0); /* SIGBUS without the guard */
	*word = 7;
	assert_int_equal(*word, 7);
	assert_int_equal(ivl_region_check(r), -EIO);
	/* The page before the new end is still shared. */
	*(volatile uint64_t *)ivl_region_base(r) = 1;
	ivl_region_unlink(r);
	ivl_region_free(r);

	srv = st_start(sock, log, 0, (char *[]){"-M", (char *)shm, "-l", "1M", NULL});
	assert_int_equal(ivl_link_host_new(&a, &o), 0);
	assert_int_equal(ivl_link_host_new(&b, &o), 0);
	for (int64_t end = tu_now_ms() + ST_TIMEOUT; ivl_link_peers(a, NULL, 0) < 1;)
		assert_true(ivl_link_wait(a, ev, 16, (int)(end - tu_now_ms())) >= 0);
	assert_int_equal(ivl_link_ring(a, (uint16_t)ivl_link_id(b), 0), 0);
	shmfd = open_shm(shm);
	assert_int_equal(ftruncate(shmfd, 0), 0);
	close(shmfd);
	assert_int_equal(ivl_link_ring(a, (uint16_t)ivl_link_id(b), 0), -EIO);
	assert_true(ivl_link_wait(b, ev, 16, ST_TIMEOUT) >= 0);
	assert_int_equal(ivl_link_ring(b, (uint16_t)ivl_link_id(a), 0), -EIO);
	ivl_link_free(a);
	ivl_link_free(b);
	st_stop(srv);
	assert_int_equal(tu_count_fds(), mine);
}

/* A SIGBUS outside every guarded mapping still kills, as without us. */
static void foreign_sigbus_still_kills(void **state)
{
	char path[300];
	pid_t pid;
	int st;

	(void)state;
	snprintf(path, sizeof(path), "%s/foreign", tu_tmpdir());
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ivl_region *r;
		struct ivl_region_opts ro = {.kind = IVL_REGION_MEMFD, .size = 1 << 16};
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		volatile char *p;

		/* cmocka catches SIGBUS itself: be a plain process, whose
		 * SIGBUS handler (installed below) chains to the default. */
		signal(SIGBUS, SIG_DFL);
		/* The handler is installed (a guarded region exists)... */
		ro.kind = IVL_REGION_FILE;
		ro.name = path;
		ro.flags = IVL_REGION_CREATE;
		if (fd < 0 || ivl_region_open(&r, &ro) < 0)
			_exit(3);
		/* ...but this mapping is not ours. */
		p = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED || ftruncate(fd, 0) < 0)
			_exit(4);
		p[8192] = 1;
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGBUS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    /* First: no guarded region exists in this process yet. */
	    cmocka_unit_test(foreign_sigbus_still_kills),
	    cmocka_unit_test(memfd_is_sealed),
	    cmocka_unit_test(shrink_shm_to_zero),
	    cmocka_unit_test(library_calls_return_eio),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
