/* SPDX-License-Identifier: MIT */
/*
 * The SDM object: options, routing rules (docs/sdm.md), the action and
 * handler tables, configuration and counters, and the broadcast.  Channels
 * (local.c, sock.c, link.c) only move signals; everything a signal must
 * obey is decided here.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>

#include "core/internal.h"
#include "sdm-internal.h"

int64_t ivl__sdm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t ivl__sdm_now_ms(void)
{
	return ivl__sdm_now_ns() / 1000000;
}

/* Computed from the clock: the timerfd started after timer_t0_ns, so our
 * idea of its expirations is never behind the kernel's. */
bool ivl__sdm_timer_due(const struct ivl_sdm *s)
{
	int64_t since = ivl__sdm_now_ns() - s->timer_t0_ns;

	return s->tick_ns <= 0 || since < 0 || (uint64_t)(since / s->tick_ns) > s->timer_seen;
}

/*
 * Whether a receiver on shared memory has been idle long enough to look at
 * its fds and arm its doorbell: IVL__SDM_QUIET_NS after its last delivery,
 * judged every IDLE_EVERY empty calls (the clock is not free in a VM:
 * kvm-clock costs more than a ring scan).  A caller that spins never gets
 * there while signals flow; one that polls its fd comes back at once (the
 * fd stays readable), so this is the longest it spins before sleeping.
 */
#define IDLE_EVERY 16u

bool ivl__sdm_idle(struct ivl_sdm *s, int delivered)
{
	int64_t now;

	if (delivered) {
		s->idle_calls = 0;
		s->idle_since_ns = -1;
		return false;
	}
	/* The first empty call, then every IDLE_EVERY-th: a fresh object
	 * (idle since 0) takes the slow path at once. */
	if (++s->idle_calls % IDLE_EVERY != 1)
		return false;
	now = ivl__sdm_now_ns();
	if (s->idle_since_ns < 0) {
		s->idle_since_ns = now;
		return false;
	}
	return now - s->idle_since_ns >= IVL__SDM_QUIET_NS;
}

int ivl__sdm_timer_drain(struct ivl_sdm *s)
{
	uint64_t ticks;
	ssize_t r = read(s->timerfd, &ticks, sizeof(ticks));

	if (r < 0 && errno != EAGAIN)
		return -errno;
	if (r == sizeof(ticks))
		s->timer_seen += ticks;
	return 0;
}

IVL_EXPORT const char *ivl_sdm_type_name(uint32_t type)
{
	static const char *const names[IVL_SDM_NTYPES] = {"irq", "boot", "reset"};

	return type < IVL_SDM_NTYPES ? names[type] : NULL;
}

IVL_EXPORT int ivl_sdm_type_from_name(const char *name)
{
	if (!name)
		return -EINVAL;
	for (uint32_t t = 0; t < IVL_SDM_NTYPES; t++)
		if (!strcasecmp(name, ivl_sdm_type_name(t)))
			return (int)t;
	return -EINVAL;
}

/* The one place that looks at the channel kind: its ops table. */
static const struct ivl__sdm_chan_ops *chan_ops(enum ivl_sdm_channel c)
{
	switch (c) {
	case IVL_SDM_CHAN_LOCAL:
		return &ivl__sdm_local_ops;
	case IVL_SDM_CHAN_UNIX:
	case IVL_SDM_CHAN_TCP:
		return &ivl__sdm_sock_ops;
	case IVL_SDM_CHAN_LINK:
		return &ivl__sdm_link_ops;
	default:
		return NULL;
	}
}

static int check_options(const struct ivl_sdm_opts *o, const struct ivl__sdm_chan_ops *ops)
{
	if (o->master) {
		if (o->max_slaves < 1 || o->max_slaves > IVL_SDM_MAX_SLAVES)
			return -ERANGE;
	} else if (o->id > IVL_SDM_MAX_SLAVES) {
		return -ERANGE;
	}
	return ops ? ops->check(o) : -EINVAL;
}

int ivl__sdm_timer_start(struct ivl_sdm *s)
{
	struct itimerspec its = {0};
	long tick = s->keepalive_ms / 4 ? s->keepalive_ms / 4 : 1;

	/* Slaves also need it for the reconnection backoff. */
	if (!s->master && tick > (long)s->rc_min_ms)
		tick = (long)s->rc_min_ms;
	s->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->timerfd < 0)
		return -errno;
	/* A periodic tick drives keepalives, dead-peer detection and
	 * reconnection without the caller computing deadlines. */
	its.it_interval.tv_sec = tick / 1000;
	its.it_interval.tv_nsec = (tick % 1000) * 1000000L;
	its.it_value = its.it_interval;
	/* Taken before the kernel's start: our idea of the next expiry is
	 * never later than the real one (ivl__sdm_timer_due()). */
	s->tick_ns = (int64_t)tick * 1000000;
	s->timer_t0_ns = ivl__sdm_now_ns();
	if (timerfd_settime(s->timerfd, 0, &its, NULL) < 0 ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->timerfd,
		      &(struct epoll_event){.events = EPOLLIN, .data.ptr = NULL}) < 0)
		return -errno;
	return 0;
}

IVL_EXPORT int ivl_sdm_new(struct ivl_sdm **out, const struct ivl_sdm_opts *opt)
{
	const struct ivl__sdm_chan_ops *ops;
	struct ivl_sdm *s;
	int r;

	if (!out || !opt)
		return -EINVAL;
	*out = NULL;
	ops = chan_ops(opt->channel);
	r = check_options(opt, ops);
	if (r)
		return r;
	/* Whole cache lines of its own: the two ends of an in-process channel
	 * (a master and a slave in two threads) write their objects for every
	 * batch, and two objects side by side on the heap would share a line.
	 * (bench_sdm's local channel lost a third of its rate, or not,
	 * depending on what the heap held before.) */
	s = ivl__zalloc_lines(sizeof(*s) + ops->priv_size);
	if (!s)
		return -ENOMEM;
	s->master = opt->master;
	s->max_slaves = opt->master ? opt->max_slaves : 0;
	s->want_id = opt->master ? 0 : opt->id;
	s->state = opt->master ? 0 : -EINPROGRESS;
	s->timerfd = -1;
	s->keepalive_ms = opt->keepalive_ms ? opt->keepalive_ms : 1000;
	s->rc_min_ms = opt->reconnect_min_ms ? opt->reconnect_min_ms : 50;
	s->rc_max_ms = opt->reconnect_max_ms ? opt->reconnect_max_ms : 2000;
	if (s->rc_max_ms < s->rc_min_ms)
		s->rc_max_ms = s->rc_min_ms;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		r = -errno;
		free(s);
		return r;
	}
	/* From here on ivl_sdm_free() undoes everything, start included. */
	s->ops = ops;
	r = ops->start(s, opt);
	if (r) {
		ivl_sdm_free(s);
		return r;
	}
	*out = s;
	return 0;
}

IVL_EXPORT void ivl_sdm_free(struct ivl_sdm *s)
{
	if (!s)
		return;
	s->ops->stop(s);
	ivl__close(s->timerfd);
	ivl__close(s->epfd);
	free(s);
}

IVL_EXPORT int ivl_sdm_get_fd(const struct ivl_sdm *s)
{
	return s ? s->epfd : -EINVAL;
}

IVL_EXPORT int ivl_sdm_timeout_ms(const struct ivl_sdm *s)
{
	if (!s)
		return -EINVAL;
	/* Without a tick (LOCAL) nothing is timed; a channel's tick is in the
	 * epoll set already, this is only a safety net for callers that poll
	 * with a timeout. */
	return s->timerfd < 0 ? -1 : (int)s->keepalive_ms;
}

IVL_EXPORT int ivl_sdm_process(struct ivl_sdm *s)
{
	if (!s)
		return -EINVAL;
	return s->ops->process(s);
}

/* Sender-side routing: a slave signals only the master, the master only a
 * slave ID in range. */
static int route_check(const struct ivl_sdm *s, const struct ivl_sdm_signal *sig)
{
	if (sig->type >= IVL_SDM_NTYPES)
		return -EINVAL;
	if (!s->master)
		return sig->slave == IVL_SDM_MASTER ? 0 : -EPERM;
	if (sig->slave == IVL_SDM_ALL)
		return 0;
	if (sig->slave == IVL_SDM_MASTER || sig->slave > IVL_SDM_MAX_SLAVES)
		return -EINVAL;
	return 0;
}

static int chan_flush(struct ivl_sdm *s)
{
	return s->ops->flush ? s->ops->flush(s) : 0;
}

/* Master: the IDs of the registered slaves, ascending; returns how many. */
static size_t slave_ids(struct ivl_sdm *s, uint16_t *ids)
{
	size_t n = 0;

	if (s->ops->ids)
		return s->ops->ids(s, ids);
	for (uint16_t id = 1; id <= IVL_SDM_MAX_SLAVES; id++)
		if (s->ops->present(s, id))
			ids[n++] = id;
	return n;
}

/*
 * IVL_SDM_ALL (docs/sdm.md "Broadcast"): the destinations are the slaves
 * registered now; room is checked for all of them before anything is
 * queued, so backpressure makes the whole broadcast fail (-EAGAIN) rather
 * than reach half of them.  Only the master queues signals towards its
 * slaves, so the room seen here is still there when we queue (the slaves
 * only drain).  A slave gone in between is skipped.  Returns how many
 * slaves it was queued for.
 */
static int broadcast(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, bool more)
{
	uint16_t ids[IVL_SDM_MAX_SLAVES];
	size_t n = slave_ids(s, ids), k = 0;
	int reached = 0, r;

	for (size_t i = 0; i < n; i++) {
		r = s->ops->room(s, ids[i]);
		if (r == -EAGAIN)
			return r;
		if (r == 0)
			ids[k++] = ids[i];
	}
	for (size_t i = 0; i < k; i++) {
		struct ivl_sdm_signal one = *sig;

		one.slave = ids[i];
		/* One frame per slave; the channel sends each connection's
		 * frames in one write when it moves to the next one. */
		r = s->ops->send(s, &one, more || i + 1 < k);
		if (r == 0)
			reached++;
		else if (r != -ENOENT && r != -EPIPE)
			ivl__warn("sdm: broadcast to slave %u failed: %d", ids[i], r);
	}
	return reached;
}

/* A channel that takes batches whole (LOCAL, LINK), without broadcasts: the
 * route-checked prefix of @ok signals goes in one call; @r is the error of
 * the signal after it, if any. */
static int whole_batch(struct ivl_sdm *s, const struct ivl_sdm_signal *sigs, size_t ok, int r)
{
	int q;

	if (!ok)
		return r;
	q = s->ops->send_batch(s, sigs, ok);
	if (q > 0)
		s->st.sent += (uint64_t)q;
	return q;
}

IVL_EXPORT int ivl_sdm_send(struct ivl_sdm *s, const struct ivl_sdm_signal *sig)
{
	int r, f;

	if (!s || !sig)
		return -EINVAL;
	if (sig->slave != IVL_SDM_ALL) {
		r = ivl_sdm_send_batch(s, sig, 1);
		return r < 0 ? r : 0;
	}
	r = route_check(s, sig);
	if (r)
		return r;
	r = broadcast(s, sig, false);
	f = chan_flush(s);
	if (r < 0)
		return r;
	s->st.sent++;
	return f < 0 && r == 0 ? f : r;
}

IVL_EXPORT int ivl_sdm_send_batch(struct ivl_sdm *s, const struct ivl_sdm_signal *sigs, size_t n)
{
	size_t i;
	int r = 0, f;

	if (!s || !sigs || n == 0 || n > INT_MAX)
		return -EINVAL;
	if (s->ops->send_batch) {
		/* The route-checked prefix in one call, unless a broadcast
		 * comes first. */
		for (i = 0;
		     i < n && sigs[i].slave != IVL_SDM_ALL && !(r = route_check(s, &sigs[i])); i++)
			;
		if (i == n || sigs[i].slave != IVL_SDM_ALL)
			return whole_batch(s, sigs, i, r);
		r = 0;
	}
	for (i = 0; i < n; i++) {
		r = route_check(s, &sigs[i]);
		if (!r && sigs[i].slave == IVL_SDM_ALL)
			r = broadcast(s, &sigs[i], i + 1 < n) < 0 ? -EAGAIN : 0;
		else if (!r)
			r = s->ops->send(s, &sigs[i], i + 1 < n);
		if (r)
			break;
	}
	/* Whatever was queued goes out now, in one write per destination. */
	f = chan_flush(s);
	if (f < 0 && i > 0)
		return f;
	s->st.sent += i;
	return i > 0 ? (int)i : r;
}

static inline int deliver_one(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, uint16_t from)
{
	/* Receiver-side routing: a slave's signal must name the master; the
	 * master's signal must name us.  Anything else is forged. */
	if ((s->master && sig->slave != IVL_SDM_MASTER) ||
	    (!s->master && (from != IVL_SDM_MASTER || sig->slave != s->id))) {
		s->st.dropped_forged++;
		ivl__debug("sdm: dropped a forged signal from %u to %u", from, sig->slave);
		return 0;
	}
	if (sig->type >= IVL_SDM_NTYPES) {
		s->st.dropped_invalid++;
		return 0;
	}
	if (s->action[sig->type].fn &&
	    s->action[sig->type].fn(s, sig, from, s->action[sig->type].opaque) < 0) {
		s->st.dropped_action++;
		return 0;
	}
	s->st.received++;
	if (s->handler[sig->type].fn)
		s->handler[sig->type].fn(s, sig, from, s->handler[sig->type].opaque);
	return 1;
}

int ivl__sdm_deliver(struct ivl_sdm *s, const struct ivl_sdm_signal *sig, uint16_t from)
{
	return deliver_one(s, sig, from);
}

/* A chunk copied out of a shared-memory ring: one call, the same checks
 * for each signal. */
int ivl__sdm_deliver_many(struct ivl_sdm *s, const struct ivl_sdm_signal *sigs, unsigned n,
			  uint16_t from)
{
	int delivered = 0;

	for (unsigned i = 0; i < n; i++)
		delivered += deliver_one(s, &sigs[i], from);
	return delivered;
}

IVL_EXPORT int ivl_sdm_set_handler(struct ivl_sdm *s, uint32_t type, ivl_sdm_handler_fn *fn,
				   void *opaque)
{
	if (!s || type >= IVL_SDM_NTYPES)
		return -EINVAL;
	s->handler[type].fn = fn;
	s->handler[type].opaque = opaque;
	return 0;
}

IVL_EXPORT int ivl_sdm_set_action(struct ivl_sdm *s, uint32_t type, ivl_sdm_action_fn *fn,
				  void *opaque)
{
	if (!s || (type != IVL_SDM_BOOT && type != IVL_SDM_RESET))
		return -EINVAL;
	s->action[type].fn = fn;
	s->action[type].opaque = opaque;
	return 0;
}

IVL_EXPORT int ivl_sdm_get_config(const struct ivl_sdm *s, struct ivl_sdm_config *cfg)
{
	if (!s || !cfg)
		return -EINVAL;
	cfg->master = s->master;
	cfg->max_slaves = s->max_slaves;
	if (!s->master)
		cfg->current_slaves = 0;
	else if (s->ops->count)
		cfg->current_slaves = (uint16_t)s->ops->count(s);
	else
		cfg->current_slaves = s->current_slaves;
	return 0;
}

IVL_EXPORT int ivl_sdm_set_max_slaves(struct ivl_sdm *s, uint16_t max_slaves)
{
	if (!s || !s->master)
		return -EINVAL;
	if (max_slaves < 1 || max_slaves > IVL_SDM_MAX_SLAVES)
		return -ERANGE;
	if (s->ops->set_max) {
		int r = s->ops->set_max(s, max_slaves);

		if (r)
			return r;
	}
	/* Connected slaves stay (even above the new limit): admission alone
	 * looks at max_slaves. */
	s->max_slaves = max_slaves;
	return 0;
}

IVL_EXPORT int ivl_sdm_id(const struct ivl_sdm *s)
{
	if (!s)
		return -EINVAL;
	if (s->master)
		return 0;
	return s->state == 0 ? s->id : -ENOTCONN;
}

IVL_EXPORT bool ivl_sdm_slave_present(const struct ivl_sdm *s, uint16_t id)
{
	if (!s || !s->master || id == 0 || id > IVL_SDM_MAX_SLAVES)
		return false;
	return s->ops->present(s, id);
}

IVL_EXPORT int ivl_sdm_state(const struct ivl_sdm *s)
{
	return s ? s->state : -EINVAL;
}

IVL_EXPORT int ivl_sdm_get_stats(const struct ivl_sdm *s, struct ivl_sdm_stats *st)
{
	if (!s || !st)
		return -EINVAL;
	*st = s->st;
	return 0;
}

IVL_EXPORT int ivl_sdm_tcp_port(const struct ivl_sdm *s)
{
	if (!s || !s->master || !s->ops->port)
		return -EINVAL;
	return s->ops->port(s);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

IVL_EXPORT int ivl_sdm_load_key(const char *path, uint8_t key[IVL_SDM_KEY_LEN])
{
	uint8_t buf[2 * IVL_SDM_KEY_LEN + 3];
	struct stat sb;
	ssize_t n;
	size_t len = 0;
	int fd, r = 0;

	if (!path || !key)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	/* A secret readable by others is not a secret. */
	if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
		r = -EPERM;
		goto out;
	}
	while (len < sizeof(buf)) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len == IVL_SDM_KEY_LEN) {
		memcpy(key, buf, IVL_SDM_KEY_LEN);
	} else {
		if (len > 2 * IVL_SDM_KEY_LEN && buf[2 * IVL_SDM_KEY_LEN] == '\n')
			len--;
		if (len != 2 * IVL_SDM_KEY_LEN) {
			r = -EINVAL;
			goto out;
		}
		for (size_t i = 0; i < IVL_SDM_KEY_LEN; i++) {
			int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);

			if (hi < 0 || lo < 0) {
				r = -EINVAL;
				goto out;
			}
			key[i] = (uint8_t)(hi << 4 | lo);
		}
	}
out:
	sodium_memzero(buf, sizeof(buf));
	ivl__close(fd);
	return r;
}
