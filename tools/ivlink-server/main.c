/* SPDX-License-Identifier: MIT */
/*
 * ivlink-server: the ivshmem server daemon.  Command line compatible with
 * QEMU's ivshmem-server (same short options and defaults), wire compatible
 * with ivshmem-doorbell devices, plus the ivlink header and limits.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ivlink/log.h>
#include <ivlink/version.h>
#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>
#include <ivlink/log.h>
#include <ivlink/region.h>

#include "tools/common/util.h"
#include "config.h"
#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#define PROG "ivlink-server"
#define MAX_ALLOW 64
/* Set by a server that re-executes itself (SIGUSR2): the fd of its state. */
#define STATE_ENV "IVLINK_SERVER_STATE_FD"

struct config {
	struct ivl_server_opts so;
	bool daemonize;
	bool verbose;
	const char *pid_file;
	bool kind_set;
	uid_t uids[MAX_ALLOW];
	gid_t gids[MAX_ALLOW];
};

enum {
	OPT_SHM_FILE = 256,
	OPT_MEMFD,
	OPT_MAX_PEERS,
	OPT_RAW,
	OPT_FORCE,
	OPT_MODE,
	OPT_ALLOW_UID,
	OPT_ALLOW_GID,
	OPT_MAX_QUEUE,
	OPT_MAX_QUEUE_FDS,
	OPT_KEEP_DATA,
	OPT_HEADER,
	OPT_ROUND_UP,
};

static const struct option long_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"verbose", no_argument, NULL, 'v'},
    {"foreground", no_argument, NULL, 'F'},
    {"daemonize", no_argument, NULL, 'D'},
    {"pid-file", required_argument, NULL, 'p'},
    {"socket", required_argument, NULL, 'S'},
    {"shm", required_argument, NULL, 'M'},
    {"shm-dir", required_argument, NULL, 'm'},
    {"shm-file", required_argument, NULL, OPT_SHM_FILE},
    {"memfd", no_argument, NULL, OPT_MEMFD},
    {"size", required_argument, NULL, 'l'},
    {"vectors", required_argument, NULL, 'n'},
    {"max-peers", required_argument, NULL, OPT_MAX_PEERS},
    {"raw", no_argument, NULL, OPT_RAW},
    {"force", no_argument, NULL, OPT_FORCE},
    {"mode", required_argument, NULL, OPT_MODE},
    {"allow-uid", required_argument, NULL, OPT_ALLOW_UID},
    {"allow-gid", required_argument, NULL, OPT_ALLOW_GID},
    {"max-queue", required_argument, NULL, OPT_MAX_QUEUE},
    {"max-queue-fds", required_argument, NULL, OPT_MAX_QUEUE_FDS},
    {"keep-data", no_argument, NULL, OPT_KEEP_DATA},
    {"header", no_argument, NULL, OPT_HEADER},
    {"round-up", no_argument, NULL, OPT_ROUND_UP},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: " PROG " [OPTION]...\n"
		   "Serve a shared-memory region and doorbells to ivshmem peers (QEMU\n"
		   "ivshmem-doorbell devices, ivlink programs).\n\n"
		   "  -S, --socket PATH     listening socket (default /tmp/ivshmem_socket)\n"
		   "  -M, --shm NAME        POSIX shared memory object (default ivshmem)\n"
		   "  -m, --shm-dir DIR     an unlinked file in DIR (e.g. hugetlbfs)\n"
		   "      --shm-file PATH   a file, created if missing\n"
		   "      --memfd           an anonymous memfd\n"
		   "  -l, --size SIZE       region size, a power of two (default 4M)\n"
		   "      --round-up        round SIZE up to a power of two\n"
		   "  -n, --vectors N       doorbell vectors per peer, 1..64 (default 1)\n"
		   "      --max-peers N     admission limit and peer table size (default 256)\n"
		   "      --max-queue N     messages queued to a peer before it is dropped\n"
		   "      --max-queue-fds N fds queued to a peer before it is dropped\n"
		   "      --raw             leave the region untouched (no ivlink header;\n"
		   "                        the default when run as ivshmem-server)\n"
		   "      --header          write the ivlink header (the default as\n"
		   "                        ivlink-server)\n"
		   "      --keep-data       keep the bytes of a stale object taken over\n"
		   "                        (default: zeroed)\n"
		   "      --force           reuse an existing shared memory object\n"
		   "      --mode OCTAL      socket permissions (default 0600)\n"
		   "      --allow-uid USER  admit only these users (repeatable)\n"
		   "      --allow-gid GROUP admit only these groups (repeatable)\n"
		   "  -F, --foreground      stay in the foreground (default)\n"
		   "  -D, --daemonize       detach once the socket is ready\n"
		   "  -p, --pid-file FILE   write the server's pid to FILE\n"
		   "  -v, --verbose         debug logging\n"
		   "  -V, --version         print the version\n"
		   "  -h, --help            this help\n\n"
		   "Signals: SIGTERM/SIGINT/SIGHUP stop the server; SIGUSR2 re-executes\n"
		   "the binary on disk, keeping every peer, ID, eventfd and the region\n"
		   "(live upgrade).\n");
}

static int usage_error(const char *what, const char *why)
{
	fprintf(stderr, PROG ": %s: %s\n", what, why);
	fprintf(stderr, "Try '" PROG " --help'.\n");
	return 2;
}

static int parse_ulong(const char *s, unsigned long min, unsigned long max, int base,
		       unsigned long *out)
{
	unsigned long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, base);
	if (errno || *end || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static int parse_uid(const char *s, uid_t *out)
{
	unsigned long v;
	struct passwd *pw;

	if (parse_ulong(s, 0, UINT_MAX - 1, 10, &v) == 0) {
		*out = (uid_t)v;
		return 0;
	}
	if (!(pw = getpwnam(s)))
		return -ENOENT;
	*out = pw->pw_uid;
	return 0;
}

static int parse_gid(const char *s, gid_t *out)
{
	unsigned long v;
	struct group *gr;

	if (parse_ulong(s, 0, UINT_MAX - 1, 10, &v) == 0) {
		*out = (gid_t)v;
		return 0;
	}
	if (!(gr = getgrnam(s)))
		return -ENOENT;
	*out = gr->gr_gid;
	return 0;
}

static int set_kind(struct config *c, const char *opt, enum ivl_region_kind kind, const char *name)
{
	if (c->kind_set && c->so.region.kind != kind)
		return usage_error(opt, "conflicts with another shared-memory option");
	c->kind_set = true;
	c->so.region.kind = kind;
	c->so.region.name = name;
	return 0;
}

/* Make a relative path absolute; the copy lives until exit. */
static int absolute(const char **path)
{
	static char bufs[3][PATH_MAX];
	static unsigned n;
	char cwd[PATH_MAX];
	char *b;

	if (!*path || (*path)[0] == '/' || n == 3)
		return 0;
	b = bufs[n++];
	if (!getcwd(cwd, sizeof(cwd)) || snprintf(b, PATH_MAX, "%s/%s", cwd, *path) >= PATH_MAX)
		return -ENAMETOOLONG;
	*path = b;
	return 0;
}

/* Invoked as "ivshmem-server" (the symlink meson install makes)? */
static bool drop_in(const char *argv0)
{
	const char *base = argv0 ? strrchr(argv0, '/') : NULL;

	base = base ? base + 1 : argv0;
	return base && !strcmp(base, "ivshmem-server");
}

/* Returns -1 to go on, or the exit status. */
static int parse_args(struct config *c, int argc, char **argv)
{
	const char *size_arg = "4M";
	bool round_up = false;
	unsigned long v;
	int opt, ret;

	c->so.socket_path = "/tmp/ivshmem_socket";
	c->so.listen_fd = -1;
	c->so.region.kind = IVL_REGION_SHM;
	c->so.region.name = "ivshmem";
	c->so.vectors = 1;
	c->so.allow_uids = c->uids;
	c->so.allow_gids = c->gids;
	if (drop_in(argv[0])) {
		/* A drop-in for QEMU's ivshmem-server: its defaults, which
		 * leave the whole region, offset 0 included, to the guests;
		 * and it detaches unless -F. */
		c->so.raw = true;
		c->so.max_peers = IVL_MAX_PEER_ID + 1;
		c->daemonize = true;
	}
	while ((opt = getopt_long(argc, argv, "hVvFDp:S:M:m:l:n:", long_opts, NULL)) != -1) {
		ret = 0;
		switch (opt) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf(PROG " %s\n", IVL_VERSION_STRING);
			return 0;
		case 'v':
			c->verbose = true;
			break;
		case 'F':
			c->daemonize = false;
			break;
		case 'D':
			c->daemonize = true;
			break;
		case 'p':
			c->pid_file = optarg;
			break;
		case 'S':
			c->so.socket_path = optarg;
			break;
		case 'M':
			ret = set_kind(c, "--shm", IVL_REGION_SHM, optarg);
			break;
		case 'm':
			ret = set_kind(c, "--shm-dir", IVL_REGION_DIR, optarg);
			break;
		case OPT_SHM_FILE:
			ret = set_kind(c, "--shm-file", IVL_REGION_FILE, optarg);
			break;
		case OPT_MEMFD:
			ret = set_kind(c, "--memfd", IVL_REGION_MEMFD, "ivlink-server");
			break;
		case 'l':
			size_arg = optarg;
			break;
		case OPT_ROUND_UP:
			round_up = true;
			break;
		case 'n':
			if (parse_ulong(optarg, 1, IVL_MAX_VECTORS, 10, &v) < 0)
				return usage_error(optarg, "vectors must be a number from 1 to 64");
			c->so.vectors = (unsigned)v;
			break;
		case OPT_MAX_PEERS:
			if (parse_ulong(optarg, 1, IVL_MAX_PEER_ID + 1, 10, &v) < 0)
				return usage_error(optarg, "--max-peers must be 1..65536");
			c->so.max_peers = (unsigned)v;
			break;
		case OPT_MAX_QUEUE:
			if (parse_ulong(optarg, 1, 1ul << 30, 10, &v) < 0)
				return usage_error(optarg, "--max-queue must be 1..2^30");
			c->so.max_queue = v;
			break;
		case OPT_MAX_QUEUE_FDS:
			if (parse_ulong(optarg, 1, 1ul << 30, 10, &v) < 0)
				return usage_error(optarg, "--max-queue-fds must be 1..2^30");
			c->so.max_queue_fds = v;
			break;
		case OPT_RAW:
			c->so.raw = true;
			break;
		case OPT_HEADER:
			c->so.raw = false;
			break;
		case OPT_KEEP_DATA:
			c->so.keep_data = true;
			break;
		case OPT_FORCE:
			c->so.force = true;
			break;
		case OPT_MODE:
			if (parse_ulong(optarg, 0, 0777, 8, &v) < 0 || v == 0)
				return usage_error(optarg,
						   "--mode must be octal permissions, e.g. 0660");
			c->so.socket_mode = (mode_t)v;
			break;
		case OPT_ALLOW_UID:
			if (c->so.n_allow_uids == MAX_ALLOW)
				return usage_error(optarg, "too many --allow-uid");
			if (parse_uid(optarg, &c->uids[c->so.n_allow_uids]) < 0)
				return usage_error(optarg, "no such user");
			c->so.n_allow_uids++;
			break;
		case OPT_ALLOW_GID:
			if (c->so.n_allow_gids == MAX_ALLOW)
				return usage_error(optarg, "too many --allow-gid");
			if (parse_gid(optarg, &c->gids[c->so.n_allow_gids]) < 0)
				return usage_error(optarg, "no such group");
			c->so.n_allow_gids++;
			break;
		default:
			fprintf(stderr, "Try '" PROG " --help'.\n");
			return 2;
		}
		if (ret)
			return ret;
	}
	if (optind < argc)
		return usage_error(argv[optind], "unexpected argument");
	if (tool_parse_size(size_arg, &c->so.region.size) < 0 || c->so.region.size == 0)
		return usage_error(size_arg, "not a size (e.g. 4M, 1G, 65536)");
	if (!tool_is_pow2(c->so.region.size) && !round_up)
		return usage_error(size_arg, "the size must be a power of two (QEMU maps the "
					     "region as a PCI BAR); use --round-up to round it");
	if (round_up)
		c->so.region.flags |= IVL_REGION_ROUND_UP;
	/* -D changes to /, and the names are removed again on exit. */
	if (c->daemonize &&
	    (absolute(&c->pid_file) < 0 || absolute(&c->so.socket_path) < 0 ||
	     (c->so.region.kind == IVL_REGION_FILE && absolute(&c->so.region.name) < 0)))
		return usage_error("path", "too long");
	return -1;
}

static int write_pid_file(const char *path)
{
	char buf[32];
	int fd, n, ret = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n)
		ret = errno ? -errno : -EIO;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	return ret;
}

/* Fork; the parent waits until the child reports readiness on a pipe (one
 * byte) or fails (EOF), so start-up errors still reach the caller. */
static int daemonize(int *ready_fd)
{
	int p[2];
	pid_t pid;
	char b;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		int status;
		ssize_t n;

		close(p[1]);
		do {
			n = read(p[0], &b, 1);
		} while (n < 0 && errno == EINTR);
		if (n == 1)
			_exit(0);
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
			_exit(WEXITSTATUS(status) ? WEXITSTATUS(status) : 1);
		_exit(1);
	}
	close(p[0]);
	if (setsid() < 0)
		return -errno;
	*ready_fd = p[1];
	return 0;
}

static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

static const char *start_error(int err)
{
	switch (err) {
	case -EADDRINUSE:
		return "the socket is in use by another server";
	case -EEXIST:
		return "the shared memory exists and is in use (--force reuses it)";
	case -ENOSPC:
		return "the region is too small for the header (larger --size or fewer "
		       "--max-peers)";
	case -ENAMETOOLONG:
		return "socket path too long (at most 107 bytes)";
	default:
		return strerror(-err);
	}
}

static void notify_status(struct ivl_server *srv, unsigned *last_peers)
{
	struct ivl_server_stats st;

	ivl_server_get_stats(srv, &st);
	if (st.peers == *last_peers)
		return;
	*last_peers = st.peers;
#if HAVE_LIBSYSTEMD
	sd_notifyf(0, "STATUS=%u peer%s connected", st.peers, st.peers == 1 ? "" : "s");
#endif
}

/* The binary on disk: /proc/self/exe names the running image, which a
 * package upgrade has replaced (" (deleted)"); its path is the new one. */
static char exe_path[PATH_MAX];

static void find_exe(void)
{
	ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
	static const char del[] = " (deleted)";

	if (n <= 0) {
		exe_path[0] = 0;
		return;
	}
	exe_path[n] = 0;
	if ((size_t)n > sizeof(del) - 1 && !strcmp(exe_path + n - (sizeof(del) - 1), del))
		exe_path[n - (sizeof(del) - 1)] = 0;
}

/*
 * SIGUSR2: live upgrade (docs/upgrade.md).  The state goes into a sealed
 * memfd, every fd it names stays open across execve(), and the same pid
 * runs the binary on disk with the same arguments.  Returns only if the
 * exec failed: the server keeps running as before.
 */
static void upgrade(struct ivl_server *srv, char **argv)
{
	char num[16];
	int fd, err;

	if (!exe_path[0]) {
		fprintf(stderr, "<3>cannot upgrade: the path of the binary is unknown; still "
				"running\n");
		return;
	}
	fd = ivl_server_save(srv);
	if (fd < 0) {
		fprintf(stderr, "<3>cannot upgrade: cannot save the state: %s; still running\n",
			strerror(-fd));
		return;
	}
	snprintf(num, sizeof(num), "%d", fd);
	fprintf(stderr, "<5>upgrading: executing %s\n", exe_path);
#if HAVE_LIBSYSTEMD
	sd_notify(0, "RELOADING=1");
#endif
	if (setenv(STATE_ENV, num, 1) == 0)
		execv(exe_path, argv);
	err = errno;
	unsetenv(STATE_ENV);
	ivl_server_save_abort(srv, fd);
	fprintf(stderr, "<3>cannot upgrade: cannot execute %s: %s; still running\n", exe_path,
		strerror(err));
#if HAVE_LIBSYSTEMD
	sd_notifyf(0, "READY=1\nMAINPID=%lu", (unsigned long)getpid());
#endif
}

/* The state fd a previous image of this server left (STATE_ENV), or -1. */
static int inherited_state(void)
{
	const char *v = getenv(STATE_ENV);
	unsigned long fd;
	int ret = -1;

	if (!v)
		return -1;
	if (parse_ulong(v, 0, INT_MAX, 10, &fd) == 0 && fcntl((int)fd, F_GETFD) >= 0)
		ret = (int)fd;
	else
		fprintf(stderr, PROG ": %s=%s: not an open fd\n", STATE_ENV, v);
	unsetenv(STATE_ENV);
	return ret < 0 ? -2 : ret;
}

static int run(struct ivl_server *srv, int sfd, char **argv)
{
	unsigned last_peers = UINT_MAX;

	notify_status(srv, &last_peers);
	for (;;) {
		struct pollfd pfd[2] = {
		    {.fd = ivl_server_get_fd(srv), .events = POLLIN},
		    {.fd = sfd, .events = POLLIN},
		};
		int ret;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, PROG ": poll: %s\n", strerror(errno));
			return 1;
		}
		if (pfd[1].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGUSR2) {
					upgrade(srv, argv);
					continue;
				}
				fprintf(stderr, "<5>signal %u received, exiting\n", si.ssi_signo);
				return 0;
			}
		}
		ret = ivl_server_process(srv);
		if (ret < 0) {
			fprintf(stderr, PROG ": server failure: %s\n", strerror(-ret));
			return 1;
		}
		notify_status(srv, &last_peers);
	}
}

static int listen_fd_from_systemd(void)
{
#if HAVE_LIBSYSTEMD
	int n = sd_listen_fds(1);

	if (n == 1)
		return SD_LISTEN_FDS_START;
	if (n > 1)
		fprintf(stderr, "<4>%d sockets passed by systemd; using the first\n", n);
	if (n > 1)
		return SD_LISTEN_FDS_START;
#endif
	return -1;
}

int main(int argc, char **argv)
{
	static struct config cfg;
	struct ivl_server *srv = NULL;
	sigset_t mask;
	int ret, sfd = -1, ready_fd = -1, status = 1, state_fd;
	long nofile;

	ret = parse_args(&cfg, argc, argv);
	if (ret >= 0)
		return ret;
	ivl_log_set(ivl_log_stderr, NULL, cfg.verbose ? IVL_LOG_DEBUG : IVL_LOG_INFO);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    (sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		fprintf(stderr, PROG ": signalfd: %s\n", strerror(errno));
		return 1;
	}
	nofile = tool_raise_nofile();
	if (nofile < 0)
		fprintf(stderr, "<4>cannot raise the open file limit: %s\n",
			strerror((int)-nofile));
	else if (cfg.verbose)
		fprintf(stderr, "<7>open file limit: %ld\n", nofile);

	find_exe();
	state_fd = inherited_state();
	if (state_fd == -2)
		return 1;
	if (state_fd >= 0) {
		/* A live upgrade: same pid, already detached, same sockets.
		 * systemd's listen fds were kept inside the state. */
		ret = ivl_server_restore(&srv, &cfg.so, state_fd);
		if (ret < 0) {
			fprintf(stderr, PROG ": cannot take over the running server's state: %s\n",
				strerror(-ret));
			goto out;
		}
		goto ready;
	}
	if (cfg.daemonize && (ret = daemonize(&ready_fd)) < 0) {
		fprintf(stderr, PROG ": daemonize: %s\n", strerror(-ret));
		return 1;
	}
	cfg.so.listen_fd = listen_fd_from_systemd();
	ret = ivl_server_new(&srv, &cfg.so);
	if (ret < 0) {
		fprintf(stderr, PROG ": cannot start on %s: %s\n", cfg.so.socket_path,
			start_error(ret));
		goto out;
	}
	if (cfg.pid_file && (ret = write_pid_file(cfg.pid_file)) < 0) {
		fprintf(stderr, PROG ": %s: %s\n", cfg.pid_file, strerror(-ret));
		cfg.pid_file = NULL;
		goto out;
	}
ready:
#if HAVE_LIBSYSTEMD
	/* MAINPID: also right after a re-exec (same pid) and with -D. */
	sd_notifyf(0, "READY=1\nMAINPID=%lu", (unsigned long)getpid());
#endif
	if (ready_fd >= 0) {
		if (chdir("/") < 0)
			fprintf(stderr, "<4>chdir /: %s\n", strerror(errno));
		detach_stdio();
		if (write(ready_fd, "k", 1) != 1) {
			/* The parent is gone; carry on regardless. */
		}
		close(ready_fd);
		ready_fd = -1;
	}
	status = run(srv, sfd, argv);
#if HAVE_LIBSYSTEMD
	sd_notify(0, "STOPPING=1");
#endif
out:
	ivl_server_free(srv);
	if (cfg.pid_file)
		unlink(cfg.pid_file);
	if (ready_fd >= 0)
		close(ready_fd);
	close(sfd);
	return status;
}
