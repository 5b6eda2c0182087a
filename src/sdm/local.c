/* SPDX-License-Identifier: MIT */
/*
 * The LOCAL channel: SDM objects of one process on an ivl_sdm_bus.  Each
 * object has an inbox (a bounded ring under the bus lock) and an eventfd in
 * its epoll set; a send enqueues and rings the eventfd, the destination's
 * ivl_sdm_process() drains.  Admission follows the same rules as the socket
 * channels (full, ID taken, ID out of range).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "core/internal.h"
#include "sdm-internal.h"

struct ivl_sdm_bus {
	pthread_mutex_t lock;
	struct ivl_sdm *master;
	struct ivl_sdm *slaves[IVL_SDM_MAX_SLAVES + 1];
	unsigned count;
};

IVL_EXPORT int ivl_sdm_bus_new(struct ivl_sdm_bus **out)
{
	struct ivl_sdm_bus *b;

	if (!out)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	pthread_mutex_init(&b->lock, NULL);
	*out = b;
	return 0;
}

IVL_EXPORT void ivl_sdm_bus_free(struct ivl_sdm_bus *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

static int admit(struct ivl_sdm_bus *b, struct ivl_sdm *s)
{
	struct ivl_sdm *m = b->master;
	uint16_t id = s->want_id;

	if (!m)
		return -ENOENT;
	if (id > m->max_slaves)
		return -ERANGE;
	if (b->count >= m->max_slaves)
		return -EUSERS;
	if (id == 0) {
		for (id = 1; id <= m->max_slaves && b->slaves[id]; id++)
			;
		if (id > m->max_slaves)
			return -EUSERS;
	} else if (b->slaves[id]) {
		return -EADDRINUSE;
	}
	b->slaves[id] = s;
	b->count++;
	s->id = id;
	s->max_slaves = m->max_slaves;
	s->state = 0;
	m->st.conn_accepted++;
	return 0;
}

int ivl__sdm_local_attach(struct ivl_sdm *s, struct ivl_sdm_bus *b)
{
	int r = 0;

	s->inbox = calloc(IVL__SDM_INBOX, sizeof(*s->inbox));
	if (!s->inbox)
		return -ENOMEM;
	s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->evfd < 0)
		return -errno;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->evfd, &(struct epoll_event){.events = EPOLLIN}) <
	    0)
		return -errno;
	pthread_mutex_lock(&b->lock);
	if (s->master) {
		if (b->master)
			r = -EEXIST;
		else
			b->master = s;
	} else {
		r = admit(b, s);
		if (r == -EUSERS || r == -EADDRINUSE || r == -ERANGE)
			b->master->st.conn_refused++;
	}
	pthread_mutex_unlock(&b->lock);
	if (r == 0)
		s->bus = b;
	return r;
}

void ivl__sdm_local_detach(struct ivl_sdm *s)
{
	struct ivl_sdm_bus *b = s->bus;

	if (b) {
		pthread_mutex_lock(&b->lock);
		if (s->master) {
			b->master = NULL;
			/* Slaves stay on the bus but lose their master: their
			 * sends fail with -ENOTCONN. */
			for (unsigned i = 1; i <= IVL_SDM_MAX_SLAVES; i++)
				if (b->slaves[i]) {
					b->slaves[i]->state = -ENOTCONN;
					b->slaves[i] = NULL;
				}
			b->count = 0;
		} else if (s->id && b->slaves[s->id] == s) {
			b->slaves[s->id] = NULL;
			b->count--;
		}
		pthread_mutex_unlock(&b->lock);
		s->bus = NULL;
	}
	ivl__close(s->evfd);
	free(s->inbox);
	s->inbox = NULL;
}

static int enqueue(struct ivl_sdm *dst, const struct ivl_sdm_signal *sig, uint16_t from)
{
	uint64_t one = 1;

	if (dst->inbox_count == IVL__SDM_INBOX)
		return -EAGAIN;
	dst->inbox[(dst->inbox_head + dst->inbox_count) % IVL__SDM_INBOX] =
	    (struct ivl__sdm_msg){.sig = *sig, .from = from};
	dst->inbox_count++;
	/* Overflow of the eventfd counter is impossible at this rate; an
	 * EAGAIN would only mean it is already readable. */
	if (write(dst->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

int ivl__sdm_local_send(struct ivl_sdm *s, const struct ivl_sdm_signal *sig)
{
	struct ivl_sdm_bus *b = s->bus;
	int r;

	if (!b)
		return s->master ? -ENOENT : -ENOTCONN;
	pthread_mutex_lock(&b->lock);
	if (s->master) {
		struct ivl_sdm *dst = b->slaves[sig->slave];

		r = dst ? enqueue(dst, sig, IVL_SDM_MASTER) : -ENOENT;
	} else if (s->state != 0 || !b->master) {
		r = -ENOTCONN;
	} else {
		r = enqueue(b->master, sig, s->id);
	}
	pthread_mutex_unlock(&b->lock);
	return r;
}

int ivl__sdm_local_process(struct ivl_sdm *s)
{
	struct ivl__sdm_msg batch[64];
	uint64_t v;
	int delivered = 0;
	size_t n;

	if (read(s->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	/* Handlers run without the bus lock (they may send), so drain in
	 * batches. */
	do {
		n = 0;
		if (s->bus)
			pthread_mutex_lock(&s->bus->lock);
		while (n < IVL_ARRAY_SIZE(batch) && s->inbox_count) {
			batch[n++] = s->inbox[s->inbox_head];
			s->inbox_head = (s->inbox_head + 1) % IVL__SDM_INBOX;
			s->inbox_count--;
		}
		if (s->bus)
			pthread_mutex_unlock(&s->bus->lock);
		for (size_t i = 0; i < n; i++)
			delivered += ivl__sdm_deliver(s, &batch[i].sig, batch[i].from);
	} while (n == IVL_ARRAY_SIZE(batch));
	return delivered;
}

bool ivl__sdm_local_present(const struct ivl_sdm *s, uint16_t id)
{
	struct ivl_sdm_bus *b = s->bus;
	bool r;

	if (!b)
		return false;
	pthread_mutex_lock(&b->lock);
	r = b->slaves[id] != NULL;
	pthread_mutex_unlock(&b->lock);
	return r;
}

int ivl__sdm_local_count(const struct ivl_sdm *s)
{
	struct ivl_sdm_bus *b = s->bus;
	int r;

	if (!b)
		return 0;
	pthread_mutex_lock(&b->lock);
	r = (int)b->count;
	pthread_mutex_unlock(&b->lock);
	return r;
}

size_t ivl__sdm_local_ids(const struct ivl_sdm *s, uint16_t *ids)
{
	struct ivl_sdm_bus *b = s->bus;
	size_t n = 0;

	if (!b)
		return 0;
	pthread_mutex_lock(&b->lock);
	for (uint16_t id = 1; id <= IVL_SDM_MAX_SLAVES; id++)
		if (b->slaves[id])
			ids[n++] = id;
	pthread_mutex_unlock(&b->lock);
	return n;
}

int ivl__sdm_local_room(const struct ivl_sdm *s, uint16_t id)
{
	struct ivl_sdm_bus *b = s->bus;
	int r;

	if (!b)
		return -ENOENT;
	pthread_mutex_lock(&b->lock);
	if (!b->slaves[id])
		r = -ENOENT;
	else
		r = b->slaves[id]->inbox_count < IVL__SDM_INBOX ? 0 : -EAGAIN;
	pthread_mutex_unlock(&b->lock);
	return r;
}
