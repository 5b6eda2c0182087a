/* SPDX-License-Identifier: MIT */
/* The peer-side protocol state machine (docs/protocol.md §1). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "testutil.h"
#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>

static int mkeventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	assert_true(fd >= 0);
	return fd;
}

static void assert_closed(int fd)
{
	errno = 0;
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
}

/* Feed one message; returns ivl_session_input's result. */
static int in(struct ivl_session *cs, int64_t v, int fd, struct ivl_session_event *ev)
{
	struct ivl_msg m = {.value = v, .fd = fd};
	int ret = ivl_session_input(cs, &m, ev);

	/* Ownership always passes to the session. */
	assert_int_equal(m.fd, -1);
	return ret;
}

/* Feed a message with a fresh fd; on failure checks the fd was closed. */
static int in_fd(struct ivl_session *cs, int64_t v, struct ivl_session_event *ev)
{
	int fd = mkeventfd();
	int ret = in(cs, v, fd, ev);

	if (ret == 1 && ev->fd == fd)
		return ret;
	assert_closed(fd);
	return ret;
}

static struct ivl_session *handshake(unsigned max_vectors, uint16_t id)
{
	struct ivl_session *cs;
	struct ivl_session_event ev;

	assert_int_equal(ivl_session_new(&cs, max_vectors), 0);
	assert_int_equal(ivl_session_id(cs), -1);
	assert_int_equal(in(cs, 0, -1, &ev), 0);
	assert_int_equal(in(cs, id, -1, &ev), 1);
	assert_int_equal(ev.type, IVL_SESSION_ID);
	assert_int_equal(ev.peer, id);
	assert_int_equal(ivl_session_id(cs), id);
	assert_int_equal(in_fd(cs, -1, &ev), 1);
	assert_int_equal(ev.type, IVL_SESSION_SHM);
	assert_true(ev.fd >= 0);
	close(ev.fd);
	return cs;
}

/* After an error the session answers every message with that error and
 * closes whatever fd comes with it. */
static void assert_dead(struct ivl_session *cs, int err)
{
	struct ivl_session_event ev;

	assert_int_equal(in(cs, 0, -1, &ev), err);
	assert_int_equal(in_fd(cs, 1, &ev), err);
	assert_int_equal(in_fd(cs, -1, &ev), err);
	assert_int_equal(ev.type, IVL_SESSION_NONE);
}

/* Exactly what QEMU's ivshmem-server sends to peer 3 when peers 1 and 5 are
 * connected, with 2 vectors. */
static void qemu_order(void **state)
{
	struct ivl_session *cs;
	struct ivl_session_event ev;
	int base = tu_count_fds();
	unsigned v;

	(void)state;
	cs = handshake(2, 3);
	for (v = 0; v < 2; v++) {
		assert_int_equal(in_fd(cs, 1, &ev), 1);
		assert_int_equal(ev.type, IVL_SESSION_PEER_VECTOR);
		assert_int_equal(ev.peer, 1);
		assert_int_equal(ev.vector, v);
		close(ev.fd);
	}
	for (v = 0; v < 2; v++) {
		assert_int_equal(in_fd(cs, 5, &ev), 1);
		assert_int_equal(ev.type, IVL_SESSION_PEER_VECTOR);
		assert_int_equal(ev.peer, 5);
		assert_int_equal(ev.vector, v);
		close(ev.fd);
	}
	for (v = 0; v < 2; v++) {
		assert_int_equal(in_fd(cs, 3, &ev), 1);
		assert_int_equal(ev.type, IVL_SESSION_OWN_VECTOR);
		assert_int_equal(ev.peer, 3);
		assert_int_equal(ev.vector, v);
		close(ev.fd);
	}
	assert_int_equal(ivl_session_peer_vectors(cs, 1), 2);
	assert_int_equal(ivl_session_peer_vectors(cs, 5), 2);
	assert_int_equal(ivl_session_peer_vectors(cs, 3), 2);
	assert_int_equal(ivl_session_peer_vectors(cs, 4), 0);

	/* Later: peer 65535 joins, peer 1 leaves. */
	assert_int_equal(in_fd(cs, 65535, &ev), 1);
	assert_int_equal(ev.type, IVL_SESSION_PEER_VECTOR);
	assert_int_equal(ev.peer, 65535);
	assert_int_equal(ev.vector, 0);
	close(ev.fd);
	assert_int_equal(in(cs, 1, -1, &ev), 1);
	assert_int_equal(ev.type, IVL_SESSION_PEER_LEFT);
	assert_int_equal(ev.peer, 1);
	assert_int_equal(ev.fd, -1);
	assert_int_equal(ivl_session_peer_vectors(cs, 1), 0);
	ivl_session_free(cs);
	ivl_session_free(NULL);
	assert_int_equal(tu_count_fds(), base);
}

static void rejoin_resets_vectors(void **state)
{
	struct ivl_session *cs = handshake(4, 0);
	struct ivl_session_event ev;
	int round;

	(void)state;
	for (round = 0; round < 3; round++) {
		unsigned v;

		for (v = 0; v < 4; v++) {
			assert_int_equal(in_fd(cs, 9, &ev), 1);
			assert_int_equal(ev.vector, v);
			close(ev.fd);
		}
		assert_int_equal(in(cs, 9, -1, &ev), 1);
		assert_int_equal(ev.type, IVL_SESSION_PEER_LEFT);
		/* Gone: a second leave is for an unknown peer. */
		assert_int_equal(ivl_session_peer_vectors(cs, 9), 0);
	}
	assert_int_equal(in(cs, 9, -1, &ev), -EPROTO);
	assert_dead(cs, -EPROTO);
	ivl_session_free(cs);
}

static void extra_vectors_closed(void **state)
{
	struct ivl_session *cs = handshake(2, 7);
	struct ivl_session_event ev;
	int base = tu_count_fds();
	int i;

	(void)state;
	for (i = 0; i < 5; i++) {
		int ret = in_fd(cs, 2, &ev);

		assert_int_equal(ret, i < 2 ? 1 : 0);
		if (ret == 1)
			close(ev.fd);
		else
			assert_int_equal(ev.type, IVL_SESSION_NONE);
	}
	/* Own vectors too. */
	for (i = 0; i < 4; i++) {
		int ret = in_fd(cs, 7, &ev);

		assert_int_equal(ret, i < 2 ? 1 : 0);
		if (ret == 1) {
			assert_int_equal(ev.type, IVL_SESSION_OWN_VECTOR);
			close(ev.fd);
		}
	}
	assert_int_equal(ivl_session_peer_vectors(cs, 2), 2);
	assert_int_equal(ivl_session_peer_vectors(cs, 7), 2);
	assert_int_equal(tu_count_fds(), base);
	/* A peer that sent extras still leaves normally. */
	assert_int_equal(in(cs, 2, -1, &ev), 1);
	assert_int_equal(ev.type, IVL_SESSION_PEER_LEFT);
	ivl_session_free(cs);
}

static void bad_version(void **state)
{
	static const int64_t versions[] = {1, -1, 2, INT64_MAX, INT64_MIN};
	struct ivl_session *cs;
	struct ivl_session_event ev;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		assert_int_equal(ivl_session_new(&cs, 1), 0);
		assert_int_equal(in(cs, versions[i], -1, &ev), -EPROTONOSUPPORT);
		assert_dead(cs, -EPROTONOSUPPORT);
		ivl_session_free(cs);
	}
	/* With an fd: the fd is closed, the error is the version's. */
	assert_int_equal(ivl_session_new(&cs, 1), 0);
	assert_int_equal(in_fd(cs, 3, &ev), -EPROTONOSUPPORT);
	ivl_session_free(cs);
	/* Version 0 with an fd is malformed. */
	assert_int_equal(ivl_session_new(&cs, 1), 0);
	assert_int_equal(in_fd(cs, 0, &ev), -EPROTO);
	assert_dead(cs, -EPROTO);
	ivl_session_free(cs);
}

static void bad_id(void **state)
{
	static const int64_t ids[] = {65536,	 -1,	    -2,
				      INT64_MAX, INT64_MIN, IVL_EXT_MSG(IVL_EXT_WELCOME, 1)};
	struct ivl_session *cs;
	struct ivl_session_event ev;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		assert_int_equal(ivl_session_new(&cs, 1), 0);
		assert_int_equal(in(cs, 0, -1, &ev), 0);
		assert_int_equal(in(cs, ids[i], -1, &ev), -EPROTO);
		assert_dead(cs, -EPROTO);
		assert_int_equal(ivl_session_id(cs), -1);
		ivl_session_free(cs);
	}
	/* A valid ID with an fd. */
	assert_int_equal(ivl_session_new(&cs, 1), 0);
	assert_int_equal(in(cs, 0, -1, &ev), 0);
	assert_int_equal(in_fd(cs, 4, &ev), -EPROTO);
	ivl_session_free(cs);
	/* The extremes are fine. */
	ivl_session_free(handshake(1, 0));
	ivl_session_free(handshake(1, 65535));
}

static void out_of_order(void **state)
{
	struct ivl_session *cs;
	struct ivl_session_event ev;

	(void)state;
	/* A peer vector where the shm is due. */
	assert_int_equal(ivl_session_new(&cs, 1), 0);
	assert_int_equal(in(cs, 0, -1, &ev), 0);
	assert_int_equal(in(cs, 1, -1, &ev), 1);
	assert_int_equal(in_fd(cs, 2, &ev), -EPROTO);
	assert_dead(cs, -EPROTO);
	ivl_session_free(cs);

	/* The shm message without its fd. */
	assert_int_equal(ivl_session_new(&cs, 1), 0);
	assert_int_equal(in(cs, 0, -1, &ev), 0);
	assert_int_equal(in(cs, 1, -1, &ev), 1);
	assert_int_equal(in(cs, -1, -1, &ev), -EPROTO);
	ivl_session_free(cs);

	/* The shm before the ID. */
	assert_int_equal(ivl_session_new(&cs, 1), 0);
	assert_int_equal(in(cs, 0, -1, &ev), 0);
	assert_int_equal(in_fd(cs, -1, &ev), -EPROTO);
	ivl_session_free(cs);

	/* An extension message before the shm. */
	assert_int_equal(ivl_session_new(&cs, 1), 0);
	assert_int_equal(in(cs, 0, -1, &ev), 0);
	assert_int_equal(in(cs, 1, -1, &ev), 1);
	assert_int_equal(in(cs, IVL_EXT_MSG(IVL_EXT_WELCOME, 1), -1, &ev), -EPROTO);
	ivl_session_free(cs);

	/* Anything before the version is taken as a version. */
	assert_int_equal(ivl_session_new(&cs, 1), 0);
	assert_int_equal(in_fd(cs, -1, &ev), -EPROTONOSUPPORT);
	ivl_session_free(cs);
}

static void second_shm(void **state)
{
	struct ivl_session *cs = handshake(1, 1);
	struct ivl_session_event ev;

	(void)state;
	assert_int_equal(in_fd(cs, -1, &ev), -EPROTO);
	assert_dead(cs, -EPROTO);
	ivl_session_free(cs);
	/* -1 without an fd after the handshake is no better. */
	cs = handshake(1, 1);
	assert_int_equal(in(cs, -1, -1, &ev), -EPROTO);
	ivl_session_free(cs);
}

static void bad_leaves(void **state)
{
	struct ivl_session *cs = handshake(1, 1);
	struct ivl_session_event ev;

	(void)state;
	assert_int_equal(in(cs, 2, -1, &ev), -EPROTO);
	assert_dead(cs, -EPROTO);
	ivl_session_free(cs);

	/* Our own departure, even after our vectors arrived. */
	cs = handshake(1, 1);
	assert_int_equal(in_fd(cs, 1, &ev), 1);
	close(ev.fd);
	assert_int_equal(in(cs, 1, -1, &ev), -EPROTO);
	ivl_session_free(cs);
}

static void out_of_range(void **state)
{
	static const int64_t bad[] = {
	    65536, 1ll << 40, INT64_MAX, -2, -65536, INT64_MIN, (int64_t)0xC1F0000000000001ull};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ivl_session *cs = handshake(1, 1);
		struct ivl_session_event ev;

		assert_int_equal(in(cs, bad[i], -1, &ev), -EPROTO);
		ivl_session_free(cs);
		cs = handshake(1, 1);
		assert_int_equal(in_fd(cs, bad[i], &ev), -EPROTO);
		ivl_session_free(cs);
	}
}

static void extensions(void **state)
{
	struct ivl_session *cs = handshake(4, 2);
	struct ivl_session_event ev;

	(void)state;
	/* Vectors 4, features HELLO|NAMES. */
	assert_int_equal(in(cs, IVL_EXT_MSG(IVL_EXT_WELCOME, 0x00030004), -1, &ev), 1);
	assert_int_equal(ev.type, IVL_SESSION_WELCOME);
	assert_int_equal(ev.vectors, 4);
	assert_int_equal(ev.features, IVL_FEAT_HELLO | IVL_FEAT_NAMES);
	assert_int_equal(ev.fd, -1);
	/* Peer traffic goes on afterwards. */
	assert_int_equal(in_fd(cs, 8, &ev), 1);
	close(ev.fd);
	/* Only one welcome. */
	assert_int_equal(in(cs, IVL_EXT_MSG(IVL_EXT_WELCOME, 4), -1, &ev), -EPROTO);
	ivl_session_free(cs);

	/* A known reason is kept, any other is a plain refusal. */
	cs = handshake(4, 2);
	assert_int_equal(in(cs, IVL_EXT_MSG(IVL_EXT_REFUSED, EACCES), -1, &ev), -EACCES);
	assert_dead(cs, -EACCES);
	ivl_session_free(cs);
	cs = handshake(4, 2);
	assert_int_equal(in(cs, IVL_EXT_MSG(IVL_EXT_REFUSED, EINVAL), -1, &ev), -ECONNREFUSED);
	assert_dead(cs, -ECONNREFUSED);
	ivl_session_free(cs);
	/* In place of the ID: a refused newcomer. */
	assert_int_equal(ivl_session_new(&cs, 4), 0);
	assert_int_equal(in(cs, IVL_PROTOCOL_VERSION, -1, &ev), 0);
	assert_int_equal(in(cs, IVL_EXT_MSG(IVL_EXT_REFUSED, EUSERS), -1, &ev), -EUSERS);
	assert_dead(cs, -EUSERS);
	ivl_session_free(cs);

	/* Welcome with an impossible vector count. */
	cs = handshake(4, 2);
	assert_int_equal(in(cs, IVL_EXT_MSG(IVL_EXT_WELCOME, 0), -1, &ev), -EPROTO);
	ivl_session_free(cs);
	cs = handshake(4, 2);
	assert_int_equal(in(cs, IVL_EXT_MSG(IVL_EXT_WELCOME, 65), -1, &ev), -EPROTO);
	ivl_session_free(cs);
	/* Unknown opcode. */
	cs = handshake(4, 2);
	assert_int_equal(in(cs, IVL_EXT_MSG(99, 0), -1, &ev), -EPROTO);
	ivl_session_free(cs);
	/* An fd on an extension message. */
	cs = handshake(4, 2);
	assert_int_equal(in_fd(cs, IVL_EXT_MSG(IVL_EXT_WELCOME, 1), &ev), -EPROTO);
	ivl_session_free(cs);
}

static void bad_arguments(void **state)
{
	struct ivl_session *cs = (void *)1;
	struct ivl_session_event ev;
	struct ivl_msg m;
	int fd;

	(void)state;
	assert_int_equal(ivl_session_new(&cs, 0), -EINVAL);
	assert_null(cs);
	assert_int_equal(ivl_session_new(&cs, 65), -EINVAL);
	assert_int_equal(ivl_session_new(NULL, 1), -EINVAL);
	assert_int_equal(ivl_session_new(&cs, 64), 0);
	fd = mkeventfd();
	m.value = 0;
	m.fd = fd;
	assert_int_equal(ivl_session_input(cs, &m, NULL), -EINVAL);
	assert_closed(fd);
	assert_int_equal(ivl_session_input(cs, NULL, &ev), -EINVAL);
	/* Caller mistakes do not kill the session. */
	assert_int_equal(in(cs, 0, -1, &ev), 0);
	assert_int_equal(ivl_session_id(NULL), -1);
	assert_int_equal(ivl_session_peer_vectors(NULL, 0), 0);
	ivl_session_free(cs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(qemu_order),
	    cmocka_unit_test(rejoin_resets_vectors),
	    cmocka_unit_test(extra_vectors_closed),
	    cmocka_unit_test(bad_version),
	    cmocka_unit_test(bad_id),
	    cmocka_unit_test(out_of_order),
	    cmocka_unit_test(second_shm),
	    cmocka_unit_test(bad_leaves),
	    cmocka_unit_test(out_of_range),
	    cmocka_unit_test(extensions),
	    cmocka_unit_test(bad_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
