/* SPDX-License-Identifier: MIT */
/*
 * The keeper's parser of the separate reader's records (docs/upgrade.md,
 * "Crash survival"): the reader parses hostile bytes and may be
 * compromised, so every record it sends is untrusted.  Each input builds a
 * server in this process (memfd region, 2 vectors, two connected peers)
 * whose reader channel is a socketpair held by the harness, then plays a
 * list of 8-byte steps, each one record:
 *
 *   [op] [id] [serial] [reason] [name x4]
 *   op & 7:      the record type (0..7: known and unknown)
 *   op & 0x08:   a valid hello (else name bytes repeated over it)
 *   op & 0x10:   through the channel (else ivl__reader_record() directly)
 *   op >> 5:     length: exact, or one of -1, +1, 0, 1, 7, 64, 200
 *
 * Invariants: a record is applied (0), ignored (1) or refused (-EPROTO),
 * never anything else; a refused record on the channel replaces the
 * channel; at most the two peers exist, their names are printable; no
 * fd leaks (the process's fd count is the same after every input).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ivlink/server.h>

#include "fuzz.h"
#include "fuzz_fds.h"
#include "ivshmem/server-internal.h"

static char dir[64], sock[96];

static void cleanup(void)
{
	char lock[128];

	snprintf(lock, sizeof(lock), "%s.lock", sock);
	unlink(sock);
	unlink(lock);
	rmdir(dir);
}

static int adopt(struct ivl_server *srv, int *harness_end)
{
	int sv[2];

	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
	FUZZ_CHECK(ivl__reader_adopt(srv, sv[0], 0) == 0);
	*harness_end = sv[1];
	return 0;
}

/* Take what the keeper handed over (closing the sockets), then close. */
static void drain_close(int fd)
{
	for (;;) {
		char b[256];
		union {
			struct cmsghdr h;
			char c[CMSG_SPACE(8 * sizeof(int))];
		} c;
		struct iovec iov = {b, sizeof(b)};
		struct msghdr mh = {
		    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.c, .msg_controllen = sizeof(c.c)};

		if (recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
			break;
		ivl__close_passed_fds(&mh);
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int lens[] = {0, -1, 1, 0, 1 - (int)sizeof(struct ivl__rd_rec),
				   7 - (int)sizeof(struct ivl__rd_rec), 64, 200};
	static int baseline = -1;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ivl_server_opts o = {.listen_fd = -1, .vectors = 2, .max_peers = 4};
	struct ivl_server *srv;
	int c1, c2, chan = -1, i;
	size_t k;

	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/ivl-fuzz-reader-XXXXXX");
		FUZZ_CHECK(mkdtemp(dir));
		atexit(cleanup);
		snprintf(sock, sizeof(sock), "%s/sock", dir);
	}
	if (baseline < 0)
		baseline = fuzz_count_fds();
	o.socket_path = sock;
	o.region.kind = IVL_REGION_MEMFD;
	o.region.name = "fuzz-reader";
	o.region.size = 1 << 16;
	FUZZ_CHECK(ivl_server_new(&srv, &o) == 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	c1 = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c2 = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(c1 >= 0 && c2 >= 0);
	FUZZ_CHECK(connect(c1, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	FUZZ_CHECK(connect(c2, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	for (i = 0; i < 4; i++)
		ivl_server_process(srv);
	FUZZ_CHECK(srv->npeers == 2);
	adopt(srv, &chan);

	for (k = 0; k + 8 <= size && k < 8 * 64; k += 8) {
		const uint8_t *st = data + k;
		uint8_t buf[sizeof(struct ivl__rd_rec) + 200];
		struct ivl__rd_rec r;
		int len = (int)sizeof(r) + lens[st[0] >> 5];

		memset(&r, 0, sizeof(r));
		r.type = st[0] & 7;
		r.id = st[1] % 6; /* 0..3 inside the table, 4 and 5 outside */
		r.serial = st[2];
		r.reason = st[3];
		for (size_t j = 0; j < sizeof(r.hello); j++)
			r.hello[j] = st[4 + j % 4];
		if (st[0] & 0x08) {
			struct ivl_wire_hello h = {.magic = IVL_HELLO_MAGIC,
						   .version = IVL_HELLO_VERSION,
						   .size = sizeof(h)};

			memcpy(h.name, st + 4, 4);
			memcpy(r.hello, &h, sizeof(h));
		}
		memset(buf, st[3], sizeof(buf));
		memcpy(buf, &r, sizeof(r));
		if (st[0] & 0x10) {
			if (srv->rd_chan < 0) {
				drain_close(chan);
				adopt(srv, &chan);
			}
			if (send(chan, buf, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) == len)
				ivl_server_process(srv);
		} else {
			int ret = ivl__reader_record(srv, buf, (size_t)len);

			FUZZ_CHECK(ret == 0 || ret == 1 || ret == -EPROTO);
			FUZZ_CHECK(len == (int)sizeof(r) || ret == -EPROTO);
			FUZZ_CHECK(r.type >= IVL__RD_HELLO && r.type <= IVL__RD_DROP ? 1 : ret == -EPROTO);
		}
		ivl_server_process(srv);
		FUZZ_CHECK(srv->npeers <= 2);
	}
	for (i = 0; i < 4; i++)
		ivl_server_process(srv);
	for (uint32_t id = 0; id < srv->id_limit; id++) {
		const struct ivl__speer *p = srv->peers[id];

		if (!p)
			continue;
		for (const char *c = p->name; *c; c++)
			FUZZ_CHECK(*c >= 0x20 && *c < 0x7f);
		FUZZ_CHECK(!p->hello_sock || p->hello_done);
	}
	ivl_server_free(srv);
	drain_close(chan);
	close(c1);
	close(c2);
	FUZZ_CHECK(fuzz_count_fds() == baseline);
	return 0;
}
