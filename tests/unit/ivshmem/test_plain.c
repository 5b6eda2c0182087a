/* SPDX-License-Identifier: MIT */
/* Serverless mode (docs/plain.md): create-or-open, the formatter claim, sizes. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>
#include <ivlink/plain.h>

#define MiB (1ull << 20)

static struct ivl_plain_opts file_opts(const char *path, uint64_t size)
{
	struct ivl_plain_opts o = {.kind = IVL_REGION_FILE, .name = path, .size = size};

	return o;
}

/* A file of @size bytes as QEMU's memory-backend-file leaves it: all zero. */
static void make_zero_file(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

/* Write @len bytes at @off of a file. */
static void write_at(const char *path, uint64_t off, const void *p, size_t len)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void fresh_then_open(void **state)
{
	const char *path = tu_path(tu_tmpdir(), "fresh");
	struct ivl_plain_opts o = file_opts(path, MiB);
	struct ivl_shm_header a, b;
	struct ivl_region *r1, *r2, *r3;
	uint8_t *app;
	int ret;

	(void)state;
	ret = ivl_plain_open(&r1, &o, &a);
	assert_int_equal(ret, IVL_PLAIN_CREATED | IVL_PLAIN_FORMATTED);
	assert_true(a.magic == IVL_SHM_MAGIC);
	assert_true(a.region_size == MiB);
	assert_int_equal(a.max_peers, IVL_PLAIN_DEFAULT_PEERS);
	assert_int_equal(a.vectors, 1);
	assert_true(a.features & IVL_FEAT_PLAIN);
	assert_int_equal(a.server_pid, (uint32_t)getpid());

	/* The second opener finds it ready and formats nothing. */
	ret = ivl_plain_open(&r2, &o, &b);
	assert_int_equal(ret, 0);
	assert_memory_equal(&a, &b, sizeof(a));
	/* Size 0: take the object's size. */
	o.size = 0;
	ret = ivl_plain_open(&r3, &o, NULL);
	assert_int_equal(ret, 0);
	assert_true(ivl_region_size(r3) == MiB);

	/* One object: a write through one mapping shows in the others. */
	app = (uint8_t *)ivl_region_base(r1) + a.header_size;
	app[0] = 0x5a;
	assert_int_equal(((uint8_t *)ivl_region_base(r2))[a.header_size], 0x5a);
	assert_int_equal(((uint8_t *)ivl_region_base(r3))[a.header_size], 0x5a);
	ivl_region_free(r3);
	ivl_region_free(r2);
	ivl_region_free(r1);
	unlink(path);
}

static void sizes_must_agree(void **state)
{
	const char *path = tu_path(tu_tmpdir(), "sizes");
	struct ivl_plain_opts o = file_opts(path, MiB);
	struct ivl_shm_header h;
	struct ivl_region *r;
	int fd;

	(void)state;
	assert_int_equal(ivl_plain_open(&r, &o, &h), IVL_PLAIN_CREATED | IVL_PLAIN_FORMATTED);
	ivl_region_free(r);
	/* The opener asks for another size than the object has. */
	o.size = 2 * MiB;
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -EINVAL);
	assert_null(r);
	/* The object grew behind the header's back: the header records 1 MiB
	 * in a 2 MiB object. */
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 2 * MiB), 0);
	close(fd);
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -EINVAL);
	o.size = 0;
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -EINVAL);
	/* Bad requested sizes never reach the object. */
	o.size = 3 * MiB;
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -EINVAL);
	o.size = 4096; /* no room for the header and a page */
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -EINVAL);
	/* An existing object of a size no peer could use. */
	make_zero_file(path, 3 * MiB);
	o.size = 0;
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -EINVAL);
	unlink(path);
}

static void zero_object_is_formatted_once(void **state)
{
	const char *path = tu_path(tu_tmpdir(), "qemu-made");
	struct ivl_plain_opts o = file_opts(path, MiB);
	struct ivl_shm_header h, h2;
	struct ivl_region *r, *r2;
	uint8_t junk[64];
	const uint8_t *app;

	(void)state;
	/* Created by somebody else, never formatted; stale bytes in the app
	 * area (but not in the magic word) are zeroed by the formatter. */
	make_zero_file(path, MiB);
	memset(junk, 0xa5, sizeof(junk));
	write_at(path, MiB - sizeof(junk), junk, sizeof(junk));
	o.flags = IVL_PLAIN_NO_CREATE;
	assert_int_equal(ivl_plain_open(&r, &o, &h), IVL_PLAIN_FORMATTED);
	app = ivl_region_base(r);
	for (uint64_t i = h.header_size; i < MiB; i++)
		if (app[i])
			fail_msg("app byte %llu is 0x%02x, not zero", (unsigned long long)i,
				 app[i]);
	o.flags = 0;
	assert_int_equal(ivl_plain_open(&r2, &o, &h2), 0);
	assert_true(h2.epoch == h.epoch);
	ivl_region_free(r2);
	ivl_region_free(r);
	unlink(path);
}

static void stuck_claim_times_out(void **state)
{
	const char *path = tu_path(tu_tmpdir(), "stuck");
	struct ivl_plain_opts o = file_opts(path, MiB);
	uint64_t claim = IVL_SHM_CLAIM(4242);
	struct ivl_region *r;
	int64_t t0;

	(void)state;
	make_zero_file(path, MiB);
	write_at(path, 0, &claim, sizeof(claim));
	o.timeout_ms = 100;
	t0 = tu_now_ms();
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -ETIMEDOUT);
	assert_null(r);
	/* Bounded: it gave up, it did not take the claim over. */
	assert_true(tu_now_ms() - t0 < 10000);
	o.flags = IVL_PLAIN_NO_CREATE;
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -ETIMEDOUT);
	unlink(path);
}

static void empty_and_missing(void **state)
{
	const char *path = tu_path(tu_tmpdir(), "empty");
	struct ivl_plain_opts o = file_opts(path, MiB);
	struct ivl_region *r;

	(void)state;
	/* Missing and not to be created, or created without a size. */
	o.flags = IVL_PLAIN_NO_CREATE;
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -ENOENT);
	o.flags = 0;
	o.size = 0;
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -ENOENT);
	/* Created by a peer that never sized it. */
	make_zero_file(path, 0);
	o.size = MiB;
	o.timeout_ms = 50;
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -ETIMEDOUT);
	unlink(path);
}

static void foreign_contents(void **state)
{
	const char *path = tu_path(tu_tmpdir(), "foreign");
	struct ivl_plain_opts o = file_opts(path, MiB);
	struct ivl_shm_header h;
	struct ivl_region *r;
	uint64_t word = 0x1122334455667788ull;
	uint32_t st = IVL_SHM_CLOSED;
	uint32_t peers = 0;

	(void)state;
	/* Not zero, not ours: refused, not overwritten. */
	make_zero_file(path, MiB);
	write_at(path, 0, &word, sizeof(word));
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -EPROTO);
	/* A header whose server stopped. */
	unlink(path);
	assert_true(ivl_plain_open(&r, &o, &h) >= 0);
	ivl_region_free(r);
	write_at(path, offsetof(struct ivl_shm_header, state), &st, sizeof(st));
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -ESHUTDOWN);
	/* Magic written, the rest not yet, state FORMATTING: a formatter at
	 * work (the magic is stored before the version), so wait, do not
	 * fail; the same bytes with state READY are an invalid header. */
	unlink(path);
	make_zero_file(path, MiB);
	word = IVL_SHM_MAGIC;
	write_at(path, 0, &word, sizeof(word));
	o.timeout_ms = 50;
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -ETIMEDOUT);
	st = IVL_SHM_READY;
	write_at(path, offsetof(struct ivl_shm_header, state), &st, sizeof(st));
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -EPROTO);
	o.timeout_ms = 0;
	/* A hostile layout (no peers). */
	unlink(path);
	assert_true(ivl_plain_open(&r, &o, &h) >= 0);
	ivl_region_free(r);
	write_at(path, offsetof(struct ivl_shm_header, max_peers), &peers, sizeof(peers));
	assert_int_equal(ivl_plain_open(&r, &o, NULL), -EPROTO);
	unlink(path);
}

static void shm_objects(void **state)
{
	char name[64];
	struct ivl_plain_opts o = {.kind = IVL_REGION_SHM, .size = MiB};
	struct ivl_region *r1, *r2;
	struct ivl_shm_header a, b;

	(void)state;
	snprintf(name, sizeof(name), "ivlink-test-plain-%d", (int)getpid());
	o.name = name;
	assert_int_equal(ivl_plain_open(&r1, &o, &a), IVL_PLAIN_CREATED | IVL_PLAIN_FORMATTED);
	assert_int_equal(ivl_plain_open(&r2, &o, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	ivl_region_free(r2);
	ivl_region_free(r1);
	assert_int_equal(shm_unlink(name), 0);
	o.name = "a/b";
	assert_int_equal(ivl_plain_open(&r1, &o, NULL), -EINVAL);
	o.kind = IVL_REGION_MEMFD;
	assert_int_equal(ivl_plain_open(&r1, &o, NULL), -EINVAL);
}

static void attach_mapped(void **state)
{
	struct ivl_plain_opts o = {.max_peers = 8, .timeout_ms = 50};
	struct ivl_shm_header a, b;
	void *m = mmap(NULL, MiB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	(void)state;
	assert_true(m != MAP_FAILED);
	memset((char *)m + MiB / 2, 0x77, 4096);
	assert_int_equal(ivl_plain_attach(m, MiB, &o, &a), IVL_PLAIN_FORMATTED);
	assert_int_equal(a.max_peers, 8);
	assert_int_equal(((uint8_t *)m)[MiB / 2], 0);
	assert_int_equal(ivl_plain_attach(m, MiB, NULL, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	/* Formatted for 1 MiB, looked at as 512 KiB: sizes disagree. */
	assert_int_equal(ivl_plain_attach(m, MiB / 2, &o, NULL), -EINVAL);
	/* A claim held by someone else: bounded wait. */
	memset(m, 0, 4096);
	*(uint64_t *)m = IVL_SHM_CLAIM(1);
	assert_int_equal(ivl_plain_attach(m, MiB, &o, NULL), -ETIMEDOUT);
	/* Bad arguments. */
	assert_int_equal(ivl_plain_attach(NULL, MiB, &o, NULL), -EINVAL);
	assert_int_equal(ivl_plain_attach((char *)m + 1, MiB / 2, &o, NULL), -EINVAL);
	assert_int_equal(ivl_plain_attach(m, 3 * MiB / 4, &o, NULL), -EINVAL);
	munmap(m, MiB);
}

/* Threads racing on one mapping, many rounds: exactly one formatter, and
 * no loser ever mistakes a header being written for an invalid one. */
struct racer {
	void *m;
	atomic_int *go;
	int ret;
	struct ivl_shm_header h;
};

static void *race_thread(void *arg)
{
	struct racer *r = arg;
	struct ivl_plain_opts o = {.max_peers = 1, .timeout_ms = 10000};

	while (!atomic_load(r->go))
		;
	r->ret = ivl_plain_attach(r->m, 8192, &o, &r->h);
	return NULL;
}

static void attach_race_threads(void **state)
{
	void *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	atomic_int go;

	(void)state;
	assert_true(m != MAP_FAILED);
	for (int round = 0; round < 1000; round++) {
		struct racer r[2] = {{.m = m, .go = &go}, {.m = m, .go = &go}};
		pthread_t t[2];

		memset(m, 0, 8192);
		atomic_init(&go, 0);
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&t[i], NULL, race_thread, &r[i]), 0);
		atomic_store(&go, 1);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		if (r[0].ret < 0 || r[1].ret < 0)
			fail_msg("round %d: %d / %d", round, r[0].ret, r[1].ret);
		assert_int_equal(r[0].ret + r[1].ret, IVL_PLAIN_FORMATTED);
		assert_memory_equal(&r[0].h, &r[1].h, sizeof(r[0].h));
	}
	munmap(m, 8192);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fresh_then_open),
	    cmocka_unit_test(sizes_must_agree),
	    cmocka_unit_test(zero_object_is_formatted_once),
	    cmocka_unit_test(stuck_claim_times_out),
	    cmocka_unit_test(empty_and_missing),
	    cmocka_unit_test(foreign_contents),
	    cmocka_unit_test(shm_objects),
	    cmocka_unit_test(attach_mapped),
	    cmocka_unit_test(attach_race_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
