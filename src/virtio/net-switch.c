/* SPDX-License-Identifier: MIT */
/*
 * The managed network's frame checks and built-in L2 switch (see
 * net-switch.h and docs/transport.md §5, Net).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "net-switch.h"

struct frame {
	struct frame *next;
	size_t len;
	uint8_t data[];
};

struct ivl__nsw_port {
	struct ivl__nsw *sw;
	struct ivl__nsw_port *next;
	size_t frame_max;
	struct frame *head, *tail;
	size_t qbytes;
	bool arrived;
	struct ivl__nsw_stats st;
};

struct fdb_entry {
	uint8_t mac[6];
	struct ivl__nsw_port *port; /* NULL: empty */
};

struct ivl__nsw {
	char name[IVL__NSW_NAME_MAX];
	struct ivl__nsw_port *ports;
	unsigned nports;
	struct fdb_entry fdb[IVL__NSW_FDB];
};

enum ivl__net_bad ivl__net_tx_check(const uint8_t *buf, size_t len, uint32_t mtu,
				    const uint8_t **frame, size_t *frame_len)
{
	if (len < IVL__NET_HDR_LEN + IVL__ETH_HLEN)
		return IVL__NET_BAD_SHORT;
	if (len - IVL__NET_HDR_LEN > ivl__net_frame_max(mtu))
		return IVL__NET_BAD_LONG;
	/* struct virtio_net_hdr_v1: flags, gso_type, hdr_len, gso_size,
	 * csum_start, csum_offset, num_buffers.  Without CSUM and the GSO
	 * features only flags 0 and GSO_NONE are valid; the other fields have
	 * no meaning on transmit and are ignored. */
	if (buf[0])
		return IVL__NET_BAD_FLAGS;
	if (buf[1])
		return IVL__NET_BAD_GSO;
	if (buf[IVL__NET_HDR_LEN + 6] & 1)
		return IVL__NET_BAD_SRC;
	*frame = buf + IVL__NET_HDR_LEN;
	*frame_len = len - IVL__NET_HDR_LEN;
	return IVL__NET_OK;
}

int ivl__nsw_new(struct ivl__nsw **out, const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (n == 0 || n >= IVL__NSW_NAME_MAX)
		return -EINVAL;
	struct ivl__nsw *sw = calloc(1, sizeof(*sw));
	if (!sw)
		return -ENOMEM;
	memcpy(sw->name, name, n);
	*out = sw;
	return 0;
}

void ivl__nsw_free(struct ivl__nsw *sw)
{
	if (!sw)
		return;
	while (sw->ports)
		ivl__nsw_port_del(sw->ports);
	free(sw);
}

const char *ivl__nsw_name(const struct ivl__nsw *sw)
{
	return sw->name;
}

unsigned ivl__nsw_ports(const struct ivl__nsw *sw)
{
	return sw->nports;
}

int ivl__nsw_port_add(struct ivl__nsw *sw, size_t frame_max, struct ivl__nsw_port **out)
{
	struct ivl__nsw_port *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->sw = sw;
	p->frame_max = frame_max;
	p->next = sw->ports;
	sw->ports = p;
	sw->nports++;
	*out = p;
	return 0;
}

void ivl__nsw_port_del(struct ivl__nsw_port *p)
{
	if (!p)
		return;
	struct ivl__nsw *sw = p->sw;
	while (p->head)
		ivl__nsw_pop(p);
	for (unsigned i = 0; i < IVL__NSW_FDB; i++)
		if (sw->fdb[i].port == p)
			sw->fdb[i].port = NULL;
	for (struct ivl__nsw_port **pp = &sw->ports; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	sw->nports--;
	free(p);
}

struct ivl__nsw *ivl__nsw_port_switch(const struct ivl__nsw_port *p)
{
	return p->sw;
}

static unsigned fdb_slot(const uint8_t mac[6])
{
	/* FNV-1a over the address: a guest choosing addresses can at worst
	 * make its own frames flood. */
	uint32_t h = 2166136261u;
	for (int i = 0; i < 6; i++)
		h = (h ^ mac[i]) * 16777619u;
	return (h ^ (h >> 16)) % IVL__NSW_FDB;
}

static void enqueue(struct ivl__nsw_port *p, const uint8_t *frame, size_t len)
{
	if (len > p->frame_max) {
		p->st.drop_big++;
		return;
	}
	if (p->st.queued >= IVL__NSW_QMAX || p->qbytes + len > IVL__NSW_QBYTES) {
		p->st.drop_full++;
		return;
	}
	struct frame *f = malloc(sizeof(*f) + len);
	if (!f) {
		p->st.drop_full++;
		return;
	}
	f->next = NULL;
	f->len = len;
	memcpy(f->data, frame, len);
	if (p->tail)
		p->tail->next = f;
	else
		p->head = f;
	p->tail = f;
	p->qbytes += len;
	p->st.queued++;
	p->arrived = true;
}

int ivl__nsw_input(struct ivl__nsw_port *p, const uint8_t *frame, size_t len)
{
	if (len < IVL__ETH_HLEN || (frame[6] & 1)) {
		p->st.drop_bad++;
		return -EINVAL;
	}
	struct ivl__nsw *sw = p->sw;
	p->st.in++;
	struct fdb_entry *src = &sw->fdb[fdb_slot(frame + 6)];
	memcpy(src->mac, frame + 6, 6);
	src->port = p;
	if (!(frame[0] & 1)) {
		const struct fdb_entry *dst = &sw->fdb[fdb_slot(frame)];
		if (dst->port && !memcmp(dst->mac, frame, 6)) {
			if (dst->port == p)
				return 0; /* for the sender's own segment */
			enqueue(dst->port, frame, len);
			return 1;
		}
	}
	int n = 0;
	for (struct ivl__nsw_port *q = sw->ports; q; q = q->next)
		if (q != p) {
			enqueue(q, frame, len);
			n++;
		}
	return n;
}

const uint8_t *ivl__nsw_peek(const struct ivl__nsw_port *p, size_t *len)
{
	if (!p->head)
		return NULL;
	*len = p->head->len;
	return p->head->data;
}

void ivl__nsw_pop(struct ivl__nsw_port *p)
{
	struct frame *f = p->head;
	if (!f)
		return;
	p->head = f->next;
	if (!p->head)
		p->tail = NULL;
	p->qbytes -= f->len;
	p->st.queued--;
	p->st.out++;
	free(f);
}

bool ivl__nsw_take_arrived(struct ivl__nsw_port *p)
{
	bool a = p->arrived;
	p->arrived = false;
	return a;
}

bool ivl__nsw_arrived(const struct ivl__nsw_port *p)
{
	return p->arrived;
}

void ivl__nsw_port_stats(const struct ivl__nsw_port *p, struct ivl__nsw_stats *st)
{
	*st = p->st;
}
