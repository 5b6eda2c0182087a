/* SPDX-License-Identifier: MIT */
/* The log sink: messages reach the callback installed, with its own opaque
 * pointer and level, also while another thread replaces the sink. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "testutil.h"
#include "core/internal.h"

static atomic_uint mismatches, calls_a, calls_b;
static const char tag_a[] = "a", tag_b[] = "b";

static void sink_a(void *opaque, int level, const char *msg)
{
	if (opaque != tag_a || level > IVL_LOG_INFO || strcmp(msg, "x 7"))
		atomic_fetch_add(&mismatches, 1);
	atomic_fetch_add(&calls_a, 1);
}

static void sink_b(void *opaque, int level, const char *msg)
{
	if (opaque != tag_b || level > IVL_LOG_WARNING || strcmp(msg, "x 7"))
		atomic_fetch_add(&mismatches, 1);
	atomic_fetch_add(&calls_b, 1);
}

static atomic_bool stop;

static void *logger(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		ivl__log(IVL_LOG_WARNING, "x %d", 7);
		ivl__log(IVL_LOG_INFO, "x %d", 7);
		ivl__log(IVL_LOG_DEBUG, "x %d", 7);
	}
	return NULL;
}

static void installs_and_filters(void **state)
{
	(void)state;
	atomic_store(&calls_a, 0);
	ivl_log_set(sink_a, (void *)tag_a, IVL_LOG_INFO);
	ivl__log(IVL_LOG_DEBUG, "x %d", 7);
	assert_int_equal(atomic_load(&calls_a), 0);
	ivl__log(IVL_LOG_INFO, "x %d", 7);
	assert_int_equal(atomic_load(&calls_a), 1);
	ivl_log_set(NULL, NULL, IVL_LOG_DEBUG);
	ivl__log(IVL_LOG_ERR, "x %d", 7);
	assert_int_equal(atomic_load(&calls_a), 1);
	assert_int_equal(atomic_load(&mismatches), 0);
}

/* Two loggers while the sink flips between two (callback, opaque, level)
 * triples: every call must see one whole triple. */
static void replaced_while_logging(void **state)
{
	pthread_t t[2];

	(void)state;
	atomic_store(&stop, false);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, logger, NULL), 0);
	for (int i = 0; i < 200000; i++) {
		if (i & 1)
			ivl_log_set(sink_a, (void *)tag_a, IVL_LOG_INFO);
		else
			ivl_log_set(sink_b, (void *)tag_b, IVL_LOG_WARNING);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ivl_log_set(NULL, NULL, 0);
	assert_int_equal(atomic_load(&mismatches), 0);
	assert_true(atomic_load(&calls_a) + atomic_load(&calls_b) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(installs_and_filters),
		cmocka_unit_test(replaced_while_logging),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
