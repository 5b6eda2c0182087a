/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/common/util.h"
#include "testutil.h"
#include "core/internal.h"
#include <ivlink/region.h>

static void parse_sizes(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(tool_parse_size("4M", &v), 0);
	assert_true(v == 4ull << 20);
	assert_int_equal(tool_parse_size("8GiB", &v), 0);
	assert_true(v == 8ull << 30);
	assert_int_equal(tool_parse_size("65536", &v), 0);
	assert_true(v == 65536);
	assert_int_equal(tool_parse_size("1k", &v), 0);
	assert_true(v == 1024);
	assert_int_equal(tool_parse_size("0x1000", &v), 0);
	assert_true(v == 4096);
	assert_int_equal(tool_parse_size("", &v), -EINVAL);
	assert_int_equal(tool_parse_size("-4M", &v), -EINVAL);
	assert_int_equal(tool_parse_size("4Q", &v), -EINVAL);
	assert_int_equal(tool_parse_size("4 M", &v), -EINVAL);
	assert_int_equal(tool_parse_size("99999999999999999999", &v), -ERANGE);
	assert_int_equal(tool_parse_size("99999999999T", &v), -ERANGE);
	assert_int_equal(tool_parse_size(NULL, &v), -EINVAL);
}

static void pow2(void **state)
{
	(void)state;
	assert_false(ivl__is_pow2(0));
	assert_true(ivl__is_pow2(1));
	assert_true(ivl__is_pow2(1ull << 40));
	assert_false(ivl__is_pow2(3 << 20));
}

static void memfd_round_trip(void **state)
{
	struct ivl_region *r, *r2;
	struct ivl_region_opts o = { .kind = IVL_REGION_MEMFD, .name = "t", .size = 1 << 16 };
	int fd;

	(void)state;
	assert_int_equal(ivl_region_open(&r, &o), 0);
	assert_true(ivl_region_size(r) == 1 << 16);
	memset(ivl_region_base(r), 0x5a, 1 << 16);
	/* A second mapping through a received fd sees the same bytes. */
	fd = fcntl(ivl_region_fd(r), F_DUPFD_CLOEXEC, 0);
	assert_int_equal(ivl_region_from_fd(&r2, fd), 0);
	assert_int_equal(((unsigned char *)ivl_region_base(r2))[12345], 0x5a);
	((unsigned char *)ivl_region_base(r2))[7] = 1;
	assert_int_equal(((unsigned char *)ivl_region_base(r))[7], 1);
	ivl_region_free(r2);
	ivl_region_free(r);
	ivl_region_free(NULL);
}

static void refuses_bad_sizes(void **state)
{
	struct ivl_region *r = (void *)1;
	struct ivl_region_opts o = { .kind = IVL_REGION_MEMFD, .size = 3 << 20 };

	(void)state;
	assert_int_equal(ivl_region_open(&r, &o), -EINVAL);
	assert_null(r);
	o.size = 0;
	assert_int_equal(ivl_region_open(&r, &o), -EINVAL);
	o.size = 1ull << 41;
	assert_int_equal(ivl_region_open(&r, &o), -EINVAL);
	o.size = 3 << 20;
	o.flags = IVL_REGION_ROUND_UP;
	assert_int_equal(ivl_region_open(&r, &o), 0);
	assert_true(ivl_region_size(r) == 4 << 20);
	ivl_region_free(r);
}

static void from_fd_validates(void **state)
{
	struct ivl_region *r;
	int fd = memfd_create("odd", MFD_CLOEXEC);

	(void)state;
	assert_int_equal(ftruncate(fd, 3 * 4096), 0);
	assert_int_equal(ivl_region_from_fd(&r, fd), -EINVAL); /* fd closed */
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	fd = memfd_create("empty", MFD_CLOEXEC);
	assert_int_equal(ivl_region_from_fd(&r, fd), -EINVAL);
	assert_int_equal(ivl_region_from_fd(&r, -1), -EBADF);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_int_equal(ivl_region_from_fd(&r, fd), -EINVAL);
}

static void shm_create_excl_unlink(void **state)
{
	char name[64];
	struct ivl_region *r, *r2;
	struct ivl_region_opts o = { .kind = IVL_REGION_SHM, .size = 1 << 20,
				     .flags = IVL_REGION_CREATE | IVL_REGION_EXCL };
	struct stat st;

	(void)state;
	snprintf(name, sizeof(name), "ivltest-%d", (int)getpid());
	o.name = name;
	assert_int_equal(ivl_region_open(&r, &o), 0);
	assert_int_equal(fstat(ivl_region_fd(r), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(ivl_region_open(&r2, &o), -EEXIST);
	/* Without EXCL, an existing object is opened; NO_RESIZE checks size. */
	o.flags = IVL_REGION_CREATE | IVL_REGION_NO_RESIZE;
	o.size = 2 << 20;
	assert_int_equal(ivl_region_open(&r2, &o), -EINVAL);
	o.size = 1 << 20;
	assert_int_equal(ivl_region_open(&r2, &o), 0);
	ivl_region_free(r2);
	assert_int_equal(ivl_region_unlink(r), 0);
	o.flags = 0;
	assert_int_equal(ivl_region_open(&r2, &o), -ENOENT);
	ivl_region_free(r);
	o.name = "a/b";
	assert_int_equal(ivl_region_open(&r2, &o), -EINVAL);
}

/* Far beyond QEMU's server's 1 GiB limit: sparse, so nearly free. */
static void sparse_8g_file(void **state)
{
	struct ivl_region *r;
	struct ivl_region_opts o = { .kind = IVL_REGION_FILE, .size = 8ull << 30,
				     .flags = IVL_REGION_CREATE | IVL_REGION_EXCL };
	unsigned char *p;
	struct stat st;

	(void)state;
	o.name = tu_path(tu_tmpdir(), "big");
	assert_int_equal(ivl_region_open(&r, &o), 0);
	assert_true(ivl_region_size(r) == 8ull << 30);
	p = ivl_region_base(r);
	p[0] = 1;
	p[(8ull << 30) - 1] = 2;
	p[(4ull << 30) + 17] = 3;
	assert_int_equal(fstat(ivl_region_fd(r), &st), 0);
	assert_true((uint64_t)st.st_size == 8ull << 30);
	assert_true((uint64_t)st.st_blocks * 512 < (64ull << 20)); /* sparse */
	assert_int_equal(ivl_region_unlink(r), 0);
	ivl_region_free(r);
}

static void dir_kind_makes_unlinked_file(void **state)
{
	struct ivl_region *r;
	struct ivl_region_opts o = { .kind = IVL_REGION_DIR, .size = 1 << 20 };

	(void)state;
	o.name = tu_tmpdir();
	assert_int_equal(ivl_region_open(&r, &o), 0);
	assert_true(ivl_region_size(r) == 1 << 20);
	ivl_region_free(r);
	o.name = "/nonexistent/dir";
	assert_true(ivl_region_open(&r, &o) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_sizes),
		cmocka_unit_test(pow2),
		cmocka_unit_test(memfd_round_trip),
		cmocka_unit_test(refuses_bad_sizes),
		cmocka_unit_test(from_fd_validates),
		cmocka_unit_test(shm_create_excl_unlink),
		cmocka_unit_test(sparse_8g_file),
		cmocka_unit_test(dir_kind_makes_unlinked_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
