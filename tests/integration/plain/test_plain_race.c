/* SPDX-License-Identifier: MIT */
/*
 * Serverless mode (docs/plain.md): two real processes race to create and
 * format the same object, round after round.  Both are released at once by
 * closing the pipe they block on.  Every round must end with exactly one
 * formatter and with both processes seeing the same header bytes.
 *
 * Odd rounds start from an all-zero object that neither racer created (as
 * QEMU's memory-backend-file leaves it), so only the claim decides there.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>
#include <ivlink/plain.h>

#define ROUNDS 50
#define SIZE (1u << 20)

/* What a racer reports back. */
struct report {
	int32_t ret;
	uint32_t pid;
	uint8_t header[128]; /* the mapped header's first bytes, after READY */
	struct ivl_shm_header copy;
};

static void racer(const char *path, int gate, int out)
{
	struct ivl_plain_opts o = {
	    .kind = IVL_REGION_FILE, .name = path, .size = SIZE, .timeout_ms = 10000};
	struct report rep;
	struct ivl_region *r = NULL;
	char c;

	memset(&rep, 0, sizeof(rep));
	rep.pid = (uint32_t)getpid();
	/* Blocks until the parent closes the write end: both go at once. */
	if (read(gate, &c, 1) != 0)
		_exit(3);
	rep.ret = ivl_plain_open(&r, &o, &rep.copy);
	if (rep.ret >= 0)
		memcpy(rep.header, ivl_region_base(r), sizeof(rep.header));
	if (write(out, &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
		_exit(4);
	ivl_region_free(r);
	_exit(0);
}

static void read_report(int fd, struct report *rep)
{
	size_t got = 0;

	while (got < sizeof(*rep)) {
		ssize_t n = read(fd, (char *)rep + got, sizeof(*rep) - got);

		if (n <= 0)
			fail_msg("racer report: %s", n < 0 ? strerror(errno) : "EOF");
		got += (size_t)n;
	}
}

static void race(void **state)
{
	const char *dir = tu_tmpdir();
	unsigned claim_only = 0, creator_won = 0, other_won = 0;

	(void)state;
	for (int round = 0; round < ROUNDS; round++) {
		char name[32];
		const char *path;
		int gate[2], res[2][2];
		struct report rep[2];
		pid_t pid[2];
		int formatters = 0, creators = 0, winner = -1;

		snprintf(name, sizeof(name), "obj%d", round);
		path = tu_path(dir, name);
		if (round % 2) {
			int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

			assert_true(fd >= 0);
			assert_int_equal(ftruncate(fd, SIZE), 0);
			close(fd);
		}
		assert_int_equal(pipe2(gate, O_CLOEXEC), 0);
		for (int i = 0; i < 2; i++) {
			assert_int_equal(pipe2(res[i], O_CLOEXEC), 0);
			pid[i] = fork();
			assert_true(pid[i] >= 0);
			if (pid[i] == 0) {
				tu_child_init(getppid());
				close(gate[1]);
				racer(path, gate[0], res[i][1]);
			}
			close(res[i][1]);
		}
		close(gate[0]);
		close(gate[1]); /* the start signal */
		for (int i = 0; i < 2; i++) {
			int status = tu_wait(pid[i], 30000);

			read_report(res[i][0], &rep[i]);
			close(res[i][0]);
			assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
			if (rep[i].ret < 0)
				fail_msg("round %d racer %d: %s", round, i, strerror(-rep[i].ret));
			if (rep[i].ret & IVL_PLAIN_FORMATTED) {
				formatters++;
				winner = i;
			}
			if (rep[i].ret & IVL_PLAIN_CREATED)
				creators++;
		}
		if (formatters != 1)
			fail_msg("round %d: %d formatters", round, formatters);
		assert_int_equal(creators, round % 2 ? 0 : 1);
		/* Identical views: the same bytes and the same validated copy,
		 * and the header names the process that formatted it. */
		assert_memory_equal(rep[0].header, rep[1].header, sizeof(rep[0].header));
		assert_memory_equal(&rep[0].copy, &rep[1].copy, sizeof(rep[0].copy));
		assert_true(rep[0].copy.epoch != 0);
		assert_int_equal(rep[0].copy.server_pid, rep[winner].pid);
		assert_true(rep[0].copy.features & IVL_FEAT_PLAIN);
		if (round % 2)
			claim_only++;
		else if (rep[winner].ret & IVL_PLAIN_CREATED)
			creator_won++;
		else
			other_won++;
		unlink(path);
	}
	/* Informative: who won when one racer created the object. */
	printf("# %d rounds: %u from a zero object; creator formatted %u, opener %u\n", ROUNDS,
	       claim_only, creator_won, other_won);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(race),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
