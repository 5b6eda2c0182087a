/* SPDX-License-Identifier: MIT */
/*
 * What a server does to the bytes of its region (issue: a restarted server
 * kept the previous application data; as a drop-in for QEMU's server it
 * wrote its header over offset 0).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostile.h"

#define SIZE (1 << 20)
#define SPOT (SIZE / 2)

/* Connect, map, return the byte at SPOT and write @v there. */
static int peek_poke(const char *sock, int v)
{
	struct st_peer p;
	unsigned char *m;
	int old;

	st_connect(&p, sock);
	st_handshake_any(&p, 1);
	m = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, p.shm_fd, 0);
	assert_true(m != MAP_FAILED);
	old = m[SPOT];
	m[SPOT] = (unsigned char)v;
	munmap(m, SIZE);
	st_close(&p);
	return old;
}

static void restart_zeroes_unless_keep_data(void **state)
{
	const char *shm = st_shm_name("zero");
	char sock[256], log[3][256];
	int mine = tu_count_fds();
	pid_t pid;

	(void)state;
	snprintf(sock, sizeof(sock), "%s", st_sock("zero"));
	for (int i = 0; i < 3; i++)
		snprintf(log[i], sizeof(log[i]), "%s/zero%d.log", tu_tmpdir(), i);
	pid = st_start(sock, log[0], 0, (char *[]){"-M", (char *)shm, "-l", "1M", NULL});
	assert_int_equal(peek_poke(sock, 0x5a), 0);
	st_kill(pid, sock, shm);
	/* Taken over after a crash: zeroed. */
	pid = st_start(sock, log[1], 0, (char *[]){"-M", (char *)shm, "-l", "1M", NULL});
	assert_int_equal(peek_poke(sock, 0x6b), 0);
	st_kill(pid, sock, shm);
	/* --keep-data: the bytes survive. */
	pid = st_start(sock, log[2], 0,
		       (char *[]){"-M", (char *)shm, "-l", "1M", "--keep-data", NULL});
	assert_int_equal(peek_poke(sock, 0), 0x6b);
	st_stop(pid);
	assert_false(st_shm_exists(shm));
	assert_int_equal(tu_count_fds(), mine);
}

/* Run as "ivshmem-server": raw, QEMU's defaults, offset 0 untouched. */
static void drop_in_leaves_offset_0(void **state)
{
	const char *shm = st_shm_name("dropin");
	char bin[256], sock[256], log[256];
	struct st_peer p;
	uint64_t *m;
	int mine = tu_count_fds(), st;
	pid_t pid;

	(void)state;
	snprintf(bin, sizeof(bin), "%s", tu_path(tu_tmpdir(), "ivshmem-server"));
	snprintf(sock, sizeof(sock), "%s", st_sock("dropin"));
	snprintf(log, sizeof(log), "%s", tu_path(tu_tmpdir(), "dropin.log"));
	assert_int_equal(symlink(tu_server_bin(), bin), 0);
	{
		char *argv[] = {bin, "-F", "-S", sock, "-M", (char *)shm, "-l", "1M", NULL};
		pid = tu_spawn(argv, log);
	}
	assert_true(pid > 0);
	assert_true(ho_wait_log(log, "serving", 10000));
	assert_true(ho_log_has(log, ", raw"));
	st_connect(&p, sock);
	st_handshake_any(&p, 1);
	m = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, p.shm_fd, 0);
	assert_true(m != MAP_FAILED);
	for (int i = 0; i < 4096 / 8; i++)
		assert_true(m[i] == 0);
	munmap(m, SIZE);
	st_close(&p);
	kill(pid, SIGTERM);
	st = tu_wait(pid, 10000);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	unlink(bin);
	assert_int_equal(tu_count_fds(), mine);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(restart_zeroes_unless_keep_data),
	    cmocka_unit_test(drop_in_leaves_offset_0),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
