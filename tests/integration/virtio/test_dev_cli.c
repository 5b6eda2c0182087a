/* SPDX-License-Identifier: MIT */
/*
 * Managed devices across processes (docs/transport.md): ivlink-server, a
 * device host (`ivlink dev serve`), and drivers in other processes: create
 * a console bridged to a UNIX socket, attach `ivlink console` to it, send
 * bytes both ways, list, destroy, an entropy device, block devices on the
 * host's image (by name and path, one writer, unknown names refused), and
 * the errors of the CLI.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static const char *dir, *sock;
static pid_t server = -1, host = -1;

static int cli(char **out, char **err, ...)
{
	char *argv[16] = {(char *)tu_cli_bin(), "-S", (char *)sock};
	int n = 3;
	va_list ap;
	va_start(ap, err);
	while (n < 15 && (argv[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return tu_run(argv, 20000, out, err);
}

/* Wait (bounded) until @path contains @what. */
static bool file_has(const char *path, const char *what, int ms)
{
	int64_t end = tu_now_ms() + ms;
	do {
		char *s = tu_read_file(path);
		bool yes = s && strstr(s, what);
		free(s);
		if (yes)
			return true;
		usleep(20000);
	} while (tu_now_ms() < end);
	return false;
}

static int setup(void **state)
{
	(void)state;
	if (!tu_server_bin() || !tu_cli_bin())
		skip();
	dir = tu_tmpdir();
	sock = tu_path(dir, "s.sock");
	server = tu_start_server(sock, tu_path(dir, "server.log"), "--memfd", "-l", "4M", NULL);
	assert_true(server > 0);
	static char sdm[300], blk[300];
	snprintf(sdm, sizeof(sdm), "unix:%s/sdm.sock", dir);
	snprintf(blk, sizeof(blk), "disk=%s/disk.img", dir);
	int fd = open(blk + 5, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
	close(fd);
	char *argv[] = {(char *)tu_cli_bin(), "-S", (char *)sock, "dev", "serve", "--console-dir",
			(char *)dir, "--sdm", sdm, "--blk", blk, "--switch", "sw0", NULL};
	host = tu_spawn(argv, tu_path(dir, "host.log"));
	assert_true(host > 0);
	assert_true(file_has(tu_path(dir, "host.log"), "serving on peer", 10000));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (host > 0) {
		kill(host, SIGTERM);
		int st = tu_wait(host, 5000);
		host = -1;
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	if (server > 0)
		tu_kill(server);
	server = -1;
	return 0;
}

/* `ivlink console ID` with stdin from a pipe (returned in *in) and stdout
 * into @log. */
static pid_t spawn_console(const char *id, const char *log, int *in)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t self = getpid(), pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		tu_child_init(self);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd < 0 || dup2(p[0], 0) < 0 || dup2(fd, 1) < 0)
			_exit(127);
		execl(tu_cli_bin(), tu_cli_bin(), "-S", sock, "console", id, (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	*in = p[1];
	return pid;
}

static void test_console(void **state)
{
	(void)state;
	char *out = NULL, *err = NULL;
	assert_int_equal(cli(&out, &err, "dev", "create", "console", "--backend", "unix", NULL), 0);
	char path[256];
	unsigned id = 0;
	assert_int_equal(sscanf(out, "%u console unix:%255s", &id, path), 2);
	assert_int_equal(id, 1);
	free(out);
	free(err);

	/* The socket side connects first, then the driver attaches. */
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", path);
	assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	const char *clog = tu_path(dir, "console.log");
	int in;
	pid_t con = spawn_console("1", clog, &in);
	const char msg[] = "bytes from the driver\n";
	assert_int_equal(write(in, msg, sizeof(msg) - 1), (ssize_t)sizeof(msg) - 1);
	char buf[256];
	size_t got = 0;
	int64_t end = tu_now_ms() + 10000;
	while (got < sizeof(msg) - 1 && tu_now_ms() < end) {
		struct pollfd p = {.fd = s, .events = POLLIN};
		if (poll(&p, 1, 100) == 1) {
			ssize_t n = read(s, buf + got, sizeof(buf) - 1 - got);
			assert_true(n > 0);
			got += (size_t)n;
		}
	}
	buf[got] = 0;
	assert_string_equal(buf, msg);
	/* And back: socket -> device -> driver's stdout. */
	const char back[] = "bytes from the socket side";
	assert_int_equal(write(s, back, sizeof(back) - 1), (ssize_t)sizeof(back) - 1);
	assert_true(file_has(clog, back, 10000));
	/* The device is live while attached. */
	assert_int_equal(cli(&out, NULL, "--json", "dev", "list", NULL), 0);
	assert_non_null(strstr(out, "\"status\": 15"));
	free(out);
	/* End of input: the console exits 0. */
	close(in);
	int st = tu_wait(con, 10000);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(s);

	assert_int_equal(cli(&out, NULL, "dev", "list", NULL), 0);
	assert_non_null(strstr(out, "console"));
	free(out);
	assert_int_equal(cli(NULL, NULL, "dev", "destroy", "1", NULL), 0);
	assert_int_equal(cli(NULL, &err, "dev", "destroy", "1", NULL), 1);
	assert_non_null(strstr(err, "no-device"));
	free(err);
	assert_int_equal(cli(&out, NULL, "--json", "dev", "list", NULL), 0);
	assert_non_null(strstr(out, "\"devices\": []"));
	free(out);
	assert_int_equal(access(path, F_OK), -1); /* the socket went with it */
}

static void test_sdm_and_errors(void **state)
{
	(void)state;
	char *out = NULL, *err = NULL;
	assert_int_equal(cli(&out, NULL, "--json", "dev", "create", "sdm", "--master",
			     "--max-slaves", "4", NULL),
			 0);
	assert_non_null(strstr(out, "\"virtio_id\": 21"));
	free(out);
	/* A slave device on the same channel: two managed SDM devices talk. */
	assert_int_equal(cli(&out, NULL, "dev", "create", "sdm", "--slave", NULL), 0);
	free(out);
	assert_int_equal(cli(&out, NULL, "dev", "list", NULL), 0);
	assert_non_null(strstr(out, "sdm-master"));
	assert_non_null(strstr(out, "sdm-slave"));
	free(out);
	/* An entropy device: created, listed, destroyed. */
	assert_int_equal(cli(&out, NULL, "dev", "create", "rng", NULL), 0);
	unsigned id = 0;
	assert_int_equal(sscanf(out, "%u rng getrandom", &id), 1);
	free(out);
	assert_int_equal(cli(&out, NULL, "--json", "dev", "list", NULL), 0);
	assert_non_null(strstr(out, "\"type\": \"rng\""));
	free(out);
	char ids[24];
	snprintf(ids, sizeof(ids), "%u", id);
	assert_int_equal(cli(NULL, NULL, "dev", "destroy", ids, NULL), 0);
	assert_int_equal(cli(&out, NULL, "dev", "list", NULL), 0);
	assert_null(strstr(out, "rng"));
	free(out);
	assert_int_equal(cli(NULL, NULL, "dev", "create", "rng", "--master", NULL), 2);
	/* A block device on the image the host was given, by name or path. */
	assert_int_equal(cli(&out, NULL, "dev", "create", "blk", "--name", "disk", "--window",
			     "1048576", NULL),
			 0);
	assert_int_equal(sscanf(out, "%u blk disk bad=0 range=0 unsupp=0 err=0", &id), 1);
	free(out);
	char img[300];
	snprintf(img, sizeof(img), "%s/disk.img", dir);
	assert_int_equal(cli(NULL, &err, "dev", "create", "blk", "--file", img, "--window", "1048576", NULL), 1);
	assert_non_null(strstr(err, "backend")); /* in use */
	free(err);
	snprintf(ids, sizeof(ids), "%u", id);
	assert_int_equal(cli(&out, NULL, "dev", "list", NULL), 0);
	assert_non_null(strstr(out, "blk      0x0    disk bad=0"));
	free(out);
	assert_int_equal(cli(NULL, NULL, "dev", "destroy", ids, NULL), 0);
	assert_int_equal(cli(&out, NULL, "dev", "create", "blk", "--file", img, "--ro", "--window",
			     "1048576", NULL),
			 0);
	assert_non_null(strstr(out, " blk disk,ro bad=0"));
	free(out);
	/* Names the host was not given are refused; nothing else is opened. */
	assert_int_equal(cli(NULL, &err, "dev", "create", "blk", "--name", "other", "--window", "1048576", NULL), 1);
	assert_non_null(strstr(err, "value"));
	free(err);
	assert_int_equal(cli(NULL, &err, "dev", "create", "blk", "--file", "/etc/passwd", "--window", "1048576", NULL), 1);
	assert_non_null(strstr(err, "value"));
	free(err);
	assert_int_equal(cli(NULL, NULL, "dev", "create", "blk", NULL), 2);
	assert_int_equal(cli(NULL, NULL, "dev", "create", "blk", "--name", "a b", NULL), 2);
	assert_int_equal(cli(NULL, NULL, "dev", "create", "rng", "--ro", NULL), 2);
	assert_int_equal(cli(NULL, NULL, "dev", "serve", "--blk", "x", NULL), 2);
	/* A net device on the host's switch; names the host was not given are
	 * refused by the host. */
	assert_int_equal(cli(&out, NULL, "dev", "create", "net", "--switch", "sw0", "--window",
			     "65536", NULL),
			 0);
	assert_int_equal(sscanf(out, "%u net switch:sw0 tx=0 rx=0 drop=0 bad=0", &id), 1);
	free(out);
	assert_int_equal(cli(&out, NULL, "dev", "list", NULL), 0);
	assert_non_null(strstr(out, " net "));
	free(out);
	snprintf(ids, sizeof(ids), "%u", id);
	assert_int_equal(cli(NULL, NULL, "dev", "destroy", ids, NULL), 0);
	assert_int_equal(cli(NULL, &err, "dev", "create", "net", "--switch", "sw1", "--window",
			     "65536", NULL),
			 1);
	assert_non_null(strstr(err, "backend"));
	free(err);
	assert_int_equal(cli(NULL, &err, "dev", "create", "net", "--tap", "eth0", "--window",
			     "65536", NULL),
			 1);
	assert_non_null(strstr(err, "backend"));
	free(err);
	assert_int_equal(cli(NULL, NULL, "dev", "create", "net", NULL), 2);
	assert_int_equal(cli(NULL, NULL, "dev", "create", "net", "--switch", "a", "--tap", "b", NULL), 2);
	assert_int_equal(cli(NULL, NULL, "dev", "create", "net", "--switch", "a/b", NULL), 2);
	assert_int_equal(cli(NULL, NULL, "dev", "create", "net", "--switch", "a", "--mtu", "67", NULL), 2);
	assert_int_equal(cli(NULL, NULL, "dev", "create", "console", "--tap", "b", NULL), 2);
	/* Usage errors: exit 2. */
	assert_int_equal(cli(NULL, NULL, "dev", "create", "disk", NULL), 2);
	assert_int_equal(cli(NULL, NULL, "dev", "create", "sdm", NULL), 2);
	assert_int_equal(cli(NULL, NULL, "dev", "destroy", NULL), 2);
	assert_int_equal(cli(NULL, NULL, "console", NULL), 2);
	assert_int_equal(cli(NULL, NULL, "dev", "list", "--backend", "pty", NULL), 2);
	/* Not a console. */
	assert_int_equal(cli(NULL, &err, "console", "1", NULL), 1);
	free(err);
	/* Nobody serves another area: -ENODEV after the timeout. */
	assert_int_equal(
	    cli(NULL, &err, "dev", "list", "--offset", "1048576", "--timeout", "0.3", NULL), 1);
	assert_non_null(strstr(err, "no device host"));
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_console),
	    cmocka_unit_test(test_sdm_and_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
