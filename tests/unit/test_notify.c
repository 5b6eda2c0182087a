/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <signal.h>
#include <unistd.h>

#include "testutil.h"
#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>

static void ring_then_drain(void **state)
{
	uint64_t count = 0;
	int fd = ivl_eventfd_new();

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ivl_eventfd_drain(fd, &count), 0);
	assert_int_equal(ivl_eventfd_ring(fd), 0);
	assert_int_equal(ivl_eventfd_ring(fd), 0);
	assert_int_equal(ivl_eventfd_ring(fd), 0);
	assert_int_equal(ivl_eventfd_drain(fd, &count), 1);
	assert_int_equal(count, 3);
	assert_int_equal(ivl_eventfd_drain(fd, &count), 0);
	assert_int_equal(count, 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
}

static void saturated_counter_counts_as_pending(void **state)
{
	uint64_t big = UINT64_MAX - 1, count;
	int fd = ivl_eventfd_new();

	(void)state;
	assert_int_equal(write(fd, &big, sizeof(big)), sizeof(big));
	assert_int_equal(ivl_eventfd_ring(fd), 0); /* EAGAIN inside: still ok */
	assert_int_equal(ivl_eventfd_drain(fd, &count), 1);
	assert_true(count == UINT64_MAX - 1);
	close(fd);
}

static void bad_fds_are_errors(void **state)
{
	int p[2];

	(void)state;
	assert_int_equal(ivl_eventfd_ring(-1), -EBADF);
	assert_int_equal(ivl_eventfd_drain(-1, NULL), -EBADF);
	assert_int_equal(pipe(p), 0);
	close(p[0]); /* writing to a pipe with no reader: EPIPE, not a crash */
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(ivl_eventfd_ring(p[1]), -EPIPE);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ring_then_drain),
		cmocka_unit_test(saturated_counter_counts_as_pending),
		cmocka_unit_test(bad_fds_are_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
