/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueues, both ends in one window: round trips, 16-bit index
 * wrap-around, indirect descriptors, EVENT_IDX suppression, and a table of
 * hostile rings, each of which must give its documented error, break the
 * queue, and never crash.
 */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include <ivlink/mmio.h>
#include <ivlink/msi.h>
#include <ivlink/virtq.h>

#define WIN (1u << 20)

struct pair {
	char *win;
	struct ivl_virtq_layout lay;
	struct ivl_virtq *drv, *dev;
	unsigned num;
};

/* A driver (publishing at once, or only on publish() when @defer) and a
 * device on a fresh window. */
static void pair_open_ex(struct pair *p, unsigned num, uint64_t features, unsigned ind_max,
			 uint16_t start, bool defer)
{
	p->win = aligned_alloc(4096, WIN);
	assert_non_null(p->win);
	memset(p->win, 0xa5, WIN);
	p->num = num;
	uint64_t total = ivl_virtq_layout_default(num, ind_max, 0, &p->lay);
	assert_true(total > 0 && total < WIN / 2);
	struct ivl_virtq_opts o = {.role = IVL_VIRTQ_DRIVER,
				   .num = num,
				   .features = features,
				   .layout = p->lay,
				   .indirect_max = ind_max,
				   .start_idx = start,
				   .init = true,
				   .defer_publish = defer};
	assert_int_equal(ivl_virtq_new(&p->drv, p->win, WIN, &o), 0);
	o.role = IVL_VIRTQ_DEVICE;
	o.init = false;
	o.defer_publish = false;
	assert_int_equal(ivl_virtq_new(&p->dev, p->win, WIN, &o), 0);
}

static void pair_open(struct pair *p, unsigned num, uint64_t features, unsigned ind_max,
		      uint16_t start)
{
	pair_open_ex(p, num, features, ind_max, start, false);
}

static void pair_close(struct pair *p)
{
	ivl_virtq_free(p->drv);
	ivl_virtq_free(p->dev);
	free(p->win);
}

/* Buffers live in the upper half of the window. */
static char *buf(struct pair *p, unsigned i)
{
	return p->win + WIN / 2 + (size_t)i * 256;
}

/* Device: pop one, check it holds @tag, answer with tag+1 in the in-piece. */
static int serve_one(struct pair *p)
{
	struct iovec iov[16];
	struct ivl_virtq_elem e = {.iov = iov, .iov_max = 16};
	int r = ivl_virtq_pop(p->dev, &e);
	if (r <= 0)
		return r;
	assert_true(e.out_num >= 1 && e.in_num >= 1);
	uint32_t tag;
	memcpy(&tag, iov[0].iov_base, 4);
	tag++;
	memcpy(iov[e.out_num].iov_base, &tag, 4);
	assert_int_equal(ivl_virtq_push(p->dev, e.head, 4), 0);
	return 1;
}

/* Device: the same through pop_many / push_many, up to @max per call.
 * Returns how many, or the error of the first call. */
static int serve_many(struct pair *p, unsigned max)
{
	struct iovec iov[8][16];
	struct ivl_virtq_elem e[8];
	uint16_t heads[8];
	uint32_t lens[8];
	int total = 0, n;
	assert_true(max >= 1 && max <= 8);
	for (unsigned i = 0; i < 8; i++)
		e[i] = (struct ivl_virtq_elem){.iov = iov[i], .iov_max = 16};
	while ((n = ivl_virtq_pop_many(p->dev, e, max)) > 0) {
		assert_true((unsigned)n <= max);
		for (int i = 0; i < n; i++) {
			assert_true(e[i].out_num >= 1 && e[i].in_num >= 1);
			uint32_t tag;
			memcpy(&tag, e[i].iov[0].iov_base, 4);
			tag++;
			memcpy(e[i].iov[e[i].out_num].iov_base, &tag, 4);
			heads[i] = e[i].head;
			lens[i] = 4;
		}
		assert_int_equal(ivl_virtq_push_many(p->dev, heads, lens, (unsigned)n), n);
		total += n;
	}
	return n < 0 ? n : total;
}

/* @many: the device serves through the batch verbs, 1 + round % 8 per call. */
static void round_trips_v(unsigned num, uint16_t start, uint64_t features, unsigned ind_max,
			  unsigned rounds, bool many)
{
	struct pair p;
	pair_open(&p, num, features, ind_max, start);
	uint32_t next_tag = 1, want = 1;
	for (unsigned round = 0; round < rounds; round++) {
		unsigned batch = 1 + round % num, added = 0;
		for (unsigned k = 0; k < batch; k++) {
			unsigned slot = (next_tag % 512) * 2;
			memcpy(buf(&p, slot), &next_tag, 4);
			struct iovec out = {buf(&p, slot), 4}, in = {buf(&p, slot + 1), 4};
			int r = ivl_virtq_add(p.drv, &out, 1, &in, 1, (void *)(uintptr_t)next_tag);
			if (r == -ENOSPC)
				break;
			assert_true(r >= 0 && (unsigned)r < num);
			next_tag++;
			added++;
		}
		assert_true(added >= 1);
		int served = 0, r;
		if (many) {
			served = serve_many(&p, 1 + round % 8);
		} else {
			while ((r = serve_one(&p)) == 1)
				served++;
			assert_int_equal(r, 0);
		}
		assert_int_equal(served, (int)added);
		assert_int_equal(ivl_virtq_flush(p.dev), 0);
		void *tok;
		uint32_t len;
		for (unsigned k = 0; k < added; k++) {
			assert_int_equal(ivl_virtq_get_used(p.drv, &tok, &len), 1);
			assert_int_equal((uintptr_t)tok, want);
			assert_int_equal(len, 4);
			uint32_t reply;
			unsigned slot = (want % 512) * 2;
			memcpy(&reply, buf(&p, slot + 1), 4);
			assert_int_equal(reply, want + 1);
			want++;
		}
		assert_int_equal(ivl_virtq_get_used(p.drv, &tok, &len), 0);
	}
	assert_int_equal(ivl_virtq_broken(p.drv), 0);
	assert_int_equal(ivl_virtq_broken(p.dev), 0);
	pair_close(&p);
}

static void round_trips(unsigned num, uint16_t start, uint64_t features, unsigned ind_max,
			unsigned rounds)
{
	round_trips_v(num, start, features, ind_max, rounds, false);
	round_trips_v(num, start, features, ind_max, rounds, true);
}

static void test_round_trip(void **state)
{
	round_trips(8, 0, 0, 0, 2000);
	round_trips(1, 0, IVL_VIRTQ_F_INDIRECT_DESC, 2, 100);
	round_trips(256, 0, IVL_VIRTQ_F_EVENT_IDX, 0, 300);
	/* In order: every chain of two wraps the table end once a lap. */
	round_trips(8, 0, IVL_VIRTQ_F_IN_ORDER, 0, 2000);
	round_trips(2, 0, IVL_VIRTQ_F_IN_ORDER | IVL_VIRTQ_F_INDIRECT_DESC, 2, 100);
}

/* defer_publish: adds stay invisible until publish() or need_notify(); an
 * entry the device scribbled on is rewritten when the same buffer is added
 * again (the driver skips only stores of identical values). */
static void test_defer_publish(void **state)
{
	struct pair p;
	pair_open_ex(&p, 8, IVL_VIRTQ_F_EVENT_IDX, 0, 65534, true);
	assert_int_equal(ivl_virtq_publish(p.dev), -EINVAL);
	assert_int_equal(ivl_virtq_publish(NULL), -EINVAL);

	struct iovec iov[2];
	struct ivl_virtq_elem e = {.iov = iov, .iov_max = 2};
	void *tok;
	uint32_t len;
	for (int round = 0; round < 3; round++) {
		for (uintptr_t k = 1; k <= 3; k++) {
			struct iovec v = {buf(&p, (unsigned)k), 16 * k};
			assert_true(ivl_virtq_add(p.drv, &v, 1, NULL, 0, (void *)k) >= 0);
		}
		assert_int_equal(ivl_virtq_pop(p.dev, &e), 0);
		if (round == 0) {
			assert_int_equal(ivl_virtq_publish(p.drv), 0);
		} else {
			/* The device asked for a kick: need_notify publishes
			 * and answers yes. */
			assert_int_equal(ivl_virtq_enable_notify(p.dev), 0);
			assert_int_equal(ivl_virtq_need_notify(p.drv), 1);
			ivl_virtq_disable_notify(p.dev);
		}
		for (uintptr_t k = 1; k <= 3; k++) {
			assert_int_equal(ivl_virtq_pop(p.dev, &e), 1);
			assert_ptr_equal(iov[0].iov_base, buf(&p, (unsigned)k));
			assert_int_equal(iov[0].iov_len, 16 * k);
			assert_int_equal(ivl_virtq_push(p.dev, e.head, 0), 0);
			/* A device that rewrites the descriptor it was given. */
			memset(p.win + p.lay.desc + 16u * e.head, 0xee, 16);
		}
		assert_int_equal(ivl_virtq_pop(p.dev, &e), 0);
		assert_int_equal(ivl_virtq_flush(p.dev), 0);
		for (uintptr_t k = 1; k <= 3; k++)
			assert_int_equal(ivl_virtq_get_used(p.drv, &tok, &len), 1);
		assert_int_equal(ivl_virtq_get_used(p.drv, &tok, &len), 0);
		/* Nothing new: no second kick for the same entries. */
		assert_int_equal(ivl_virtq_need_notify(p.drv), 0);
	}
	assert_int_equal(ivl_virtq_broken(p.drv), 0);
	assert_int_equal(ivl_virtq_broken(p.dev), 0);
	pair_close(&p);
}

static void test_wrap(void **state)
{
	/* Start just below 65535 so every index wraps in the first rounds. */
	round_trips(4, 65530, 0, 0, 200);
	round_trips(8, 65535, IVL_VIRTQ_F_EVENT_IDX, 0, 200);
	round_trips(16, 65500, IVL_VIRTQ_F_INDIRECT_DESC | IVL_VIRTQ_F_EVENT_IDX, 4, 300);
	round_trips(4, 65530, IVL_VIRTQ_F_IN_ORDER, 0, 200);
	round_trips(16, 65500, IVL_VIRTQ_F_IN_ORDER | IVL_VIRTQ_F_INDIRECT_DESC | IVL_VIRTQ_F_EVENT_IDX,
		    4, 300);
}

static struct vring_desc desc_at(struct pair *p, unsigned i)
{
	struct vring_desc d;
	memcpy(&d, p->win + p->lay.desc + 16u * i, sizeof(d));
	return d;
}

static void used_write(struct pair *p, uint16_t pos, uint32_t id, uint32_t len)
{
	struct vring_used_elem e = {htole32(id), htole32(len)};
	memcpy(p->win + p->lay.used + 4 + 8u * (pos & (p->num - 1)), &e, sizeof(e));
}

static void used_idx_set(struct pair *p, uint16_t idx)
{
	uint16_t v = htole16(idx);
	memcpy(p->win + p->lay.used + 2, &v, 2);
}

/* Add a chain of @n one-byte readable pieces; returns its head. */
static int add_chain_of(struct pair *p, unsigned n, uintptr_t tok)
{
	struct iovec v[8];
	for (unsigned i = 0; i < n; i++)
		v[i] = (struct iovec){buf(p, i), 1};
	return ivl_virtq_add(p->drv, v, n, NULL, 0, (void *)tok);
}

/*
 * VIRTIO_F_IN_ORDER (virtio 1.1 §2.7): descriptors in table order, chains
 * linked x -> x + 1 and wrapping at the end; the device must push in pop
 * order; the driver hands tokens back in order from used->idx alone, reads
 * used elements only for lengths, and breaks on a used index past what was
 * published.
 */
static void test_in_order(void **state)
{
	struct pair p;
	void *tok[8];
	uint32_t lens[8];
	struct iovec iov[8][8];
	struct ivl_virtq_elem e[8];
	for (unsigned i = 0; i < 8; i++)
		e[i] = (struct ivl_virtq_elem){.iov = iov[i], .iov_max = 8};

	/* Table order, chains wrapping the end. */
	pair_open(&p, 8, IVL_VIRTQ_F_IN_ORDER, 0, 65534);
	assert_int_equal(add_chain_of(&p, 2, 1), 0);
	assert_int_equal(add_chain_of(&p, 3, 2), 2);
	assert_int_equal(add_chain_of(&p, 2, 3), 5);
	assert_int_equal(desc_at(&p, 0).next, htole16(1));
	assert_int_equal(desc_at(&p, 2).next, htole16(3));
	assert_int_equal(desc_at(&p, 3).next, htole16(4));
	assert_int_equal(add_chain_of(&p, 2, 4), -ENOSPC); /* one descriptor left */
	assert_int_equal(ivl_virtq_pop_many(p.dev, e, 8), 3);
	assert_int_equal(e[0].head, 0);
	assert_int_equal(e[1].out_num, 3);
	assert_int_equal(e[2].head, 5);
	/* Push out of pop order: refused, nothing recorded. */
	uint16_t h[3] = {e[1].head, e[0].head, e[2].head};
	assert_int_equal(ivl_virtq_push(p.dev, e[1].head, 0), -EINVAL);
	assert_int_equal(ivl_virtq_push_many(p.dev, h, NULL, 3), -EINVAL);
	h[0] = e[0].head, h[1] = e[1].head;
	assert_int_equal(ivl_virtq_push_many(p.dev, h, (uint32_t[]){10, 20, 30}, 3), 3);
	assert_int_equal(ivl_virtq_broken(p.dev), 0);
	assert_int_equal(ivl_virtq_flush(p.dev), 0);
	/* Fewer than there are, then the rest. */
	assert_int_equal(ivl_virtq_get_used_many(p.drv, tok, lens, 2), 2);
	assert_int_equal((uintptr_t)tok[0], 1);
	assert_int_equal((uintptr_t)tok[1], 2);
	assert_int_equal(lens[1], 20);
	assert_int_equal(ivl_virtq_get_used(p.drv, &tok[0], &lens[0]), 1);
	assert_int_equal((uintptr_t)tok[0], 3);
	assert_int_equal(lens[0], 30);
	assert_int_equal(ivl_virtq_get_used(p.drv, &tok[0], &lens[0]), 0);
	/* The next chain starts at 7 and wraps: 7 -> 0 -> 1. */
	assert_int_equal(add_chain_of(&p, 3, 5), 7);
	assert_int_equal(desc_at(&p, 7).next, htole16(0));
	assert_int_equal(desc_at(&p, 0).next, htole16(1));
	assert_int_equal(desc_at(&p, 1).flags, 0);
	assert_int_equal(add_chain_of(&p, 1, 6), 2);
	assert_int_equal(ivl_virtq_pop_many(p.dev, e, 8), 2);
	assert_int_equal(e[0].out_num, 3);
	assert_ptr_equal(e[0].iov[2].iov_base, buf(&p, 2));
	/* A device that writes one used element per batch (the id of its
	 * last buffer, at the batch's first place): fine without lengths. */
	used_write(&p, (uint16_t)(65534 + 3), 2, 99);
	used_idx_set(&p, (uint16_t)(65534 + 5));
	assert_int_equal(ivl_virtq_get_used_many(p.drv, tok, NULL, 8), 2);
	assert_int_equal((uintptr_t)tok[0], 5);
	assert_int_equal((uintptr_t)tok[1], 6);
	assert_int_equal(ivl_virtq_broken(p.drv), 0);
	pair_close(&p);

	/* ... but lengths asked of it break the queue: the element at the
	 * first place names another buffer. */
	pair_open(&p, 8, IVL_VIRTQ_F_IN_ORDER, 0, 0);
	assert_int_equal(add_chain_of(&p, 1, 1), 0);
	assert_int_equal(add_chain_of(&p, 1, 2), 1);
	used_write(&p, 0, 1, 4);
	used_idx_set(&p, 2);
	assert_int_equal(ivl_virtq_get_used_many(p.drv, tok, lens, 8), -EPROTO);
	assert_int_equal(ivl_virtq_broken(p.drv), -EPROTO);
	assert_int_equal(ivl_virtq_get_used(p.drv, &tok[0], NULL), -EIO);
	pair_close(&p);

	/* A used index past what was published: added but deferred buffers
	 * are not the device's to return. */
	pair_open_ex(&p, 8, IVL_VIRTQ_F_IN_ORDER, 0, 100, true);
	assert_int_equal(add_chain_of(&p, 1, 1), 0);
	assert_int_equal(ivl_virtq_publish(p.drv), 0);
	assert_int_equal(add_chain_of(&p, 1, 2), 1);
	used_write(&p, 100, 0, 0);
	used_write(&p, 101, 1, 0);
	used_idx_set(&p, 102);
	assert_int_equal(ivl_virtq_get_used(p.drv, &tok[0], NULL), -EPROTO);
	assert_int_equal(ivl_virtq_broken(p.drv), -EPROTO);
	pair_close(&p);

	/* With EVENT_IDX, taking buffers back moves used_event just past
	 * them, as without IN_ORDER. */
	pair_open(&p, 8, IVL_VIRTQ_F_IN_ORDER | IVL_VIRTQ_F_EVENT_IDX, 0, 0);
	assert_int_equal(add_chain_of(&p, 1, 1), 0);
	assert_int_equal(add_chain_of(&p, 2, 2), 1);
	assert_int_equal(ivl_virtq_pop_many(p.dev, e, 8), 2);
	assert_int_equal(ivl_virtq_push_many(p.dev, (uint16_t[]){0, 1}, NULL, 2), 2);
	assert_int_equal(ivl_virtq_flush(p.dev), 0);
	assert_int_equal(ivl_virtq_get_used_many(p.drv, tok, NULL, 8), 2);
	uint16_t ue;
	memcpy(&ue, p.win + p.lay.avail + 4 + 2u * 8, 2);
	assert_int_equal(le16toh(ue), 2);
	pair_close(&p);

	/* Full, drained, refilled for many laps with batches that never
	 * divide the ring: every token back once, in order. */
	pair_open(&p, 16, IVL_VIRTQ_F_IN_ORDER, 0, 65000);
	uintptr_t next_tok = 1, want = 1;
	for (unsigned round = 0; round < 500; round++) {
		unsigned k = 0;
		int r;
		while ((r = add_chain_of(&p, 1 + (next_tok % 3), next_tok)) >= 0)
			next_tok++, k++;
		assert_int_equal(r, -ENOSPC);
		assert_true(k >= 5);
		unsigned n = 0;
		while ((r = ivl_virtq_pop_many(p.dev, e, 1 + round % 8)) > 0) {
			uint16_t hs[8];
			for (int i = 0; i < r; i++)
				hs[i] = e[i].head;
			assert_int_equal(ivl_virtq_push_many(p.dev, hs, NULL, (unsigned)r), r);
			n += (unsigned)r;
			/* Flush part of the way: the driver takes what it sees. */
			if (n % 2)
				assert_int_equal(ivl_virtq_flush(p.dev), 0);
		}
		assert_int_equal(r, 0);
		assert_int_equal(n, k);
		assert_int_equal(ivl_virtq_flush(p.dev), 0);
		while ((r = ivl_virtq_get_used_many(p.drv, tok, lens, 1 + round % 5)) > 0)
			for (int i = 0; i < r; i++) {
				assert_int_equal((uintptr_t)tok[i], want);
				assert_int_equal(lens[i], 0);
				want++;
			}
		assert_int_equal(r, 0);
		assert_int_equal(want, next_tok);
	}
	assert_int_equal(ivl_virtq_broken(p.drv), 0);
	assert_int_equal(ivl_virtq_broken(p.dev), 0);
	pair_close(&p);
}

static void test_full(void **state)
{
	struct pair p;
	pair_open(&p, 4, 0, 0, 0);
	struct iovec v[3] = {{buf(&p, 0), 8}, {buf(&p, 1), 8}, {buf(&p, 2), 8}};
	assert_true(ivl_virtq_add(p.drv, v, 3, NULL, 0, &p) >= 0);
	assert_int_equal(ivl_virtq_add(p.drv, v, 2, NULL, 0, &p), -ENOSPC);
	assert_true(ivl_virtq_add(p.drv, v, 1, NULL, 0, &p) >= 0);
	/* Bad arguments. */
	struct iovec outside = {p.win + WIN - 4, 8};
	assert_int_equal(ivl_virtq_add(p.drv, &outside, 1, NULL, 0, &p), -EFAULT);
	char stack;
	struct iovec foreign = {&stack, 1};
	assert_int_equal(ivl_virtq_add(p.drv, &foreign, 1, NULL, 0, &p), -EFAULT);
	assert_int_equal(ivl_virtq_add(p.drv, v, 1, NULL, 0, NULL), -EINVAL);
	assert_int_equal(ivl_virtq_add(p.drv, NULL, 0, NULL, 0, &p), -EINVAL);
	assert_int_equal(ivl_virtq_add(p.dev, v, 1, NULL, 0, &p), -EINVAL);
	/* A chain longer than the caller's iovec array: -ENOBUFS, not broken,
	 * and still there for a bigger array. */
	struct iovec iov[3];
	struct ivl_virtq_elem e = {.iov = iov, .iov_max = 2};
	assert_int_equal(ivl_virtq_pop(p.dev, &e), -ENOBUFS);
	assert_int_equal(ivl_virtq_broken(p.dev), 0);
	e.iov_max = 3;
	assert_int_equal(ivl_virtq_pop(p.dev, &e), 1);
	assert_int_equal(e.out_num, 3);
	assert_int_equal(e.out_len, 24);
	assert_ptr_equal(iov[2].iov_base, buf(&p, 2));
	/* A push needs a popped chain. */
	assert_int_equal(ivl_virtq_push(p.dev, e.head, 0), 0);
	assert_int_equal(ivl_virtq_pop(p.dev, &e), 1);
	assert_int_equal(ivl_virtq_push(p.dev, e.head, 0), 0);
	assert_int_equal(ivl_virtq_push(p.dev, e.head, 0), -EINVAL);
	assert_int_equal(ivl_virtq_push(p.dev, 4, 0), -EINVAL);
	pair_close(&p);
}

static void test_indirect(void **state)
{
	struct pair p;
	pair_open(&p, 4, IVL_VIRTQ_F_INDIRECT_DESC, 8, 0);
	/* 4 heads of 5 pieces each fit a ring of 4 only with indirect tables. */
	for (unsigned h = 0; h < 4; h++) {
		struct iovec out[3], in[2];
		for (unsigned i = 0; i < 3; i++)
			out[i] = (struct iovec){buf(&p, h * 8 + i), 10 + i};
		for (unsigned i = 0; i < 2; i++)
			in[i] = (struct iovec){buf(&p, h * 8 + 3 + i), 100};
		assert_true(ivl_virtq_add(p.drv, out, 3, in, 2, (void *)(uintptr_t)(h + 1)) >= 0);
	}
	struct iovec one = {buf(&p, 100), 1};
	assert_int_equal(ivl_virtq_add(p.drv, &one, 1, NULL, 0, &p), -ENOSPC);
	for (unsigned h = 0; h < 4; h++) {
		struct iovec iov[8];
		struct ivl_virtq_elem e = {.iov = iov, .iov_max = 8};
		assert_int_equal(ivl_virtq_pop(p.dev, &e), 1);
		assert_int_equal(e.out_num, 3);
		assert_int_equal(e.in_num, 2);
		assert_int_equal(e.out_len, 33);
		assert_int_equal(e.in_len, 200);
		assert_ptr_equal(iov[4].iov_base, buf(&p, h * 8 + 4));
		assert_int_equal(ivl_virtq_push(p.dev, e.head, 7), 0);
	}
	assert_int_equal(ivl_virtq_flush(p.dev), 0);
	for (unsigned h = 0; h < 4; h++) {
		void *tok;
		uint32_t len;
		assert_int_equal(ivl_virtq_get_used(p.drv, &tok, &len), 1);
		assert_int_equal((uintptr_t)tok, h + 1);
		assert_int_equal(len, 7);
	}
	/* Too many pieces for a table: falls back to a direct chain. */
	struct iovec many[9];
	for (unsigned i = 0; i < 9; i++)
		many[i] = (struct iovec){buf(&p, i), 1};
	assert_int_equal(ivl_virtq_add(p.drv, many, 9, NULL, 0, &p), -ENOSPC);
	assert_true(ivl_virtq_add(p.drv, many, 4, NULL, 0, &p) >= 0);
	pair_close(&p);
}

static void add1(struct pair *p, void *tok)
{
	struct iovec v = {buf(p, 0), 4};
	assert_true(ivl_virtq_add(p->drv, &v, 1, NULL, 0, tok) >= 0);
}

static void pop_push(struct pair *p, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct iovec iov[4];
		struct ivl_virtq_elem e = {.iov = iov, .iov_max = 4};
		assert_int_equal(ivl_virtq_pop(p->dev, &e), 1);
		assert_int_equal(ivl_virtq_push(p->dev, e.head, 0), 0);
	}
}

static void test_event_idx(void **state)
{
	struct pair p;
	pair_open(&p, 16, IVL_VIRTQ_F_EVENT_IDX, 0, 0);
	/* Kicks: the device asks once (avail_event = 0), then the driver adds
	 * 10 buffers while the device sleeps: one kick only. */
	assert_int_equal(ivl_virtq_enable_notify(p.dev), 0);
	int kicks = 0;
	for (int i = 0; i < 10; i++) {
		add1(&p, &p);
		kicks += ivl_virtq_need_notify(p.drv);
	}
	assert_int_equal(kicks, 1);
	/* While the device keeps popping, its avail_event follows: adding
	 * after it drained wakes it again. */
	pop_push(&p, 10);
	add1(&p, &p);
	assert_int_equal(ivl_virtq_need_notify(p.drv), 1);
	/* Device disabled notifications: avail_event stays behind. */
	ivl_virtq_disable_notify(p.dev);
	pop_push(&p, 1);
	add1(&p, &p);
	add1(&p, &p);
	assert_int_equal(ivl_virtq_need_notify(p.drv), 0);
	/* Re-enabling reports the work that arrived meanwhile. */
	assert_int_equal(ivl_virtq_enable_notify(p.dev), 1);
	pop_push(&p, 2);

	/* Interrupts: the driver arms used_event; 13 used buffers flushed one
	 * by one give one interrupt until the driver consumes. */
	assert_int_equal(ivl_virtq_flush(p.dev), 0);
	/* used_event is still 0 from the init: 13 entries pass it. */
	assert_int_equal(ivl_virtq_need_notify(p.dev), 1);
	void *tok;
	uint32_t len;
	while (ivl_virtq_get_used(p.drv, &tok, &len) == 1)
		;
	assert_int_equal(ivl_virtq_enable_notify(p.drv), 0);
	int irqs = 0;
	for (int i = 0; i < 8; i++) {
		add1(&p, &p);
		pop_push(&p, 1);
		ivl_virtq_flush(p.dev);
		irqs += ivl_virtq_need_notify(p.dev);
	}
	assert_int_equal(irqs, 1);
	assert_int_equal(ivl_virtq_get_used(p.drv, &tok, &len), 1);
	add1(&p, &p);
	pop_push(&p, 1);
	ivl_virtq_flush(p.dev);
	/* used_event moved to the next entry by get_used: but 7 are still
	 * unconsumed, so the event index lies in the past: no interrupt
	 * until the driver catches up. */
	assert_int_equal(ivl_virtq_need_notify(p.dev), 0);
	while (ivl_virtq_get_used(p.drv, &tok, &len) == 1)
		;
	add1(&p, &p);
	pop_push(&p, 1);
	ivl_virtq_flush(p.dev);
	assert_int_equal(ivl_virtq_need_notify(p.dev), 1);
	pair_close(&p);
}

static void test_flags(void **state)
{
	struct pair p;
	pair_open(&p, 8, 0, 0, 0);
	add1(&p, &p);
	assert_int_equal(ivl_virtq_need_notify(p.drv), 1);
	assert_int_equal(ivl_virtq_need_notify(p.drv), 0); /* nothing new */
	ivl_virtq_disable_notify(p.dev);
	add1(&p, &p);
	assert_int_equal(ivl_virtq_need_notify(p.drv), 0);
	assert_int_equal(ivl_virtq_enable_notify(p.dev), 1);
	add1(&p, &p);
	assert_int_equal(ivl_virtq_need_notify(p.drv), 1);
	pop_push(&p, 3);
	ivl_virtq_flush(p.dev);
	assert_int_equal(ivl_virtq_need_notify(p.dev), 1);
	ivl_virtq_disable_notify(p.drv);
	pop_push(&p, 0);
	add1(&p, &p);
	pop_push(&p, 1);
	ivl_virtq_flush(p.dev);
	assert_int_equal(ivl_virtq_need_notify(p.dev), 0);
	pair_close(&p);
}

/* ---- hostile rings ---------------------------------------------------- */

enum corrupt {
	C_AVAIL_JUMP,
	C_HEAD_RANGE,
	C_NEXT_RANGE,
	C_LOOP2,
	C_SELF_LOOP,
	C_ADDR_OUTSIDE,
	C_ADDR_WRAP,
	C_LEN_OVERFLOW,
	C_IND_NO_FEATURE,
	C_IND_IN_IND,
	C_IND_NEXT,
	C_IND_LEN0,
	C_IND_LEN_ODD,
	C_IND_OUTSIDE,
	C_IND_LAST_NEXT_LOOP,
	C_IND_LAST_NEXT_RANGE,
	C_WRITE_THEN_READ,
	C_WRITE_OUTSIDE,
};

static const struct {
	enum corrupt what;
	int err;
	const char *name;
} hostile[] = {
    {C_AVAIL_JUMP, -EOVERFLOW, "avail idx jump"},
    {C_HEAD_RANGE, -ERANGE, "head >= num"},
    {C_NEXT_RANGE, -ERANGE, "next >= num"},
    {C_LOOP2, -ELOOP, "two-descriptor loop"},
    {C_SELF_LOOP, -ELOOP, "self loop"},
    {C_ADDR_OUTSIDE, -EFAULT, "buffer past the window"},
    {C_ADDR_WRAP, -EFAULT, "addr + len wraps"},
    {C_LEN_OVERFLOW, -EMSGSIZE, "total length > 4 GiB"},
    {C_IND_NO_FEATURE, -EPROTO, "indirect not negotiated"},
    {C_IND_IN_IND, -EPROTO, "indirect in indirect"},
    {C_IND_NEXT, -EPROTO, "INDIRECT|NEXT"},
    {C_IND_LEN0, -EPROTO, "indirect len 0"},
    {C_IND_LEN_ODD, -EPROTO, "indirect len % 16"},
    {C_IND_OUTSIDE, -EFAULT, "indirect table outside"},
    {C_IND_LAST_NEXT_LOOP, -ELOOP, "NEXT on last indirect entry (loop)"},
    {C_IND_LAST_NEXT_RANGE, -ERANGE, "NEXT on last indirect entry (range)"},
    {C_WRITE_THEN_READ, -EPROTO, "readable after writable"},
    {C_WRITE_OUTSIDE, -EFAULT, "writable buffer past the window"},
};

static void put(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

/* How run_hostile() meets the hostile chain. */
enum hostile_via {
	VIA_POP,	 /* ivl_virtq_pop() */
	VIA_MANY_FIRST,	 /* ivl_virtq_pop_many(), the hostile chain first */
	VIA_MANY_BEHIND, /* ivl_virtq_pop_many(), behind two good chains */
};

/* The two good chains queued before the hostile one (VIA_MANY_BEHIND):
 * heads 5 (readable) and 6 (writable), never touched by a corruption. */
#define GOOD_A 5
#define GOOD_B 6

static void run_hostile(enum corrupt what, int err, const char *name, enum hostile_via via)
{
	/* A window far larger than the memory behind it: pop never touches
	 * buffers, only the rings (at the start), so huge lengths can pass
	 * the window check and reach the length-overflow check. */
	const unsigned num = 8;
	uint64_t winsz = what == C_LEN_OVERFLOW ? (1ull << 40) : WIN;
	char *win = aligned_alloc(4096, WIN);
	assert_non_null(win);
	memset(win, 0, WIN);
	struct ivl_virtq_layout lay;
	assert_true(ivl_virtq_layout_default(num, 0, 0, &lay) > 0);
	struct vring_desc *d = (struct vring_desc *)(win + lay.desc);
	struct vring_avail *av = (struct vring_avail *)(win + lay.avail);
	struct vring_desc *ind = (struct vring_desc *)(win + 8192);
	struct vring_desc *ind2 = (struct vring_desc *)(win + 12288);
	uint16_t head = 0, idx = 1;
	uint64_t feat = what == C_IND_NO_FEATURE ? 0 : IVL_VIRTQ_F_INDIRECT_DESC;

	put(&d[0], 65536, 64, 0, 0);
	switch (what) {
	case C_AVAIL_JUMP:
		idx = num + 1;
		break;
	case C_HEAD_RANGE:
		head = num;
		break;
	case C_NEXT_RANGE:
		put(&d[0], 65536, 64, VRING_DESC_F_NEXT, num);
		break;
	case C_LOOP2:
		put(&d[0], 65536, 64, VRING_DESC_F_NEXT, 1);
		put(&d[1], 65536, 64, VRING_DESC_F_NEXT, 0);
		break;
	case C_SELF_LOOP:
		put(&d[0], 65536, 64, VRING_DESC_F_NEXT, 0);
		break;
	case C_ADDR_OUTSIDE:
		put(&d[0], WIN - 32, 64, 0, 0);
		break;
	case C_ADDR_WRAP:
		put(&d[0], UINT64_MAX - 8, 64, 0, 0);
		break;
	case C_LEN_OVERFLOW:
		put(&d[0], 0, 0x80000000u, VRING_DESC_F_NEXT, 1);
		put(&d[1], 0, 0x80000000u, 0, 0);
		break;
	case C_IND_NO_FEATURE:
		put(&d[0], 8192, 16, VRING_DESC_F_INDIRECT, 0);
		break;
	case C_IND_IN_IND:
		put(&d[0], 8192, 32, VRING_DESC_F_INDIRECT, 0);
		put(&ind[0], 65536, 8, VRING_DESC_F_NEXT, 1);
		put(&ind[1], 12288, 16, VRING_DESC_F_INDIRECT, 0);
		put(&ind2[0], 65536, 8, 0, 0);
		break;
	case C_IND_NEXT:
		put(&d[0], 8192, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
		put(&ind[0], 65536, 8, 0, 0);
		break;
	case C_IND_LEN0:
		put(&d[0], 8192, 0, VRING_DESC_F_INDIRECT, 0);
		break;
	case C_IND_LEN_ODD:
		put(&d[0], 8192, 24, VRING_DESC_F_INDIRECT, 0);
		break;
	case C_IND_OUTSIDE:
		put(&d[0], WIN - 16, 32, VRING_DESC_F_INDIRECT, 0);
		break;
	case C_IND_LAST_NEXT_LOOP:
	case C_IND_LAST_NEXT_RANGE:
		put(&d[0], 8192, 32, VRING_DESC_F_INDIRECT, 0);
		put(&ind[0], 65536, 8, VRING_DESC_F_NEXT, 1);
		put(&ind[1], 65536, 8, VRING_DESC_F_NEXT, what == C_IND_LAST_NEXT_LOOP ? 0 : 2);
		break;
	case C_WRITE_THEN_READ:
		put(&d[0], 65536, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
		put(&d[1], 65536, 8, 0, 0);
		break;
	case C_WRITE_OUTSIDE:
		put(&d[0], WIN - 32, 64, VRING_DESC_F_WRITE, 0);
		break;
	}
	unsigned good = 0; /* good chains in front of the hostile one */
	if (via == VIA_MANY_BEHIND) {
		put(&d[GOOD_A], 65536, 64, 0, 0);
		put(&d[GOOD_B], 65536 + 64, 32, VRING_DESC_F_WRITE, 0);
		av->ring[0] = GOOD_A;
		av->ring[1] = GOOD_B;
		good = 2;
		/* An index jump is only seen when the index is read: after the
		 * good ones were seen (below), it jumps. */
		if (what == C_AVAIL_JUMP)
			head = 0, idx = 3;
		else
			idx = (uint16_t)(idx + good);
	}
	av->ring[good] = head;
	av->idx = idx;

	struct ivl_virtq_opts o = {
	    .role = IVL_VIRTQ_DEVICE, .num = num, .features = feat, .layout = lay};
	struct ivl_virtq *q;
	assert_int_equal(ivl_virtq_new(&q, win, winsz, &o), 0);
	struct iovec iov[4][64];
	struct ivl_virtq_elem e[4];
	for (unsigned i = 0; i < 4; i++)
		e[i] = (struct ivl_virtq_elem){.iov = iov[i], .iov_max = 64};
	int r;
	if (via == VIA_POP) {
		r = ivl_virtq_pop(q, &e[0]);
	} else if (via == VIA_MANY_FIRST) {
		r = ivl_virtq_pop_many(q, e, 4);
	} else {
		if (what == C_AVAIL_JUMP) {
			/* The device saw 3 entries (one popped); then the
			 * index jumps past the ring before the next read. */
			assert_int_equal(ivl_virtq_pop_many(q, e, 1), 1);
			assert_int_equal(e[0].head, GOOD_A);
			av->idx = (uint16_t)(3 + num + 1);
			r = ivl_virtq_pop_many(q, e + 1, 3);
			/* GOOD_B and entry 2 (a good chain here), then the
			 * jump. */
			if (r != 2)
				fail_msg("%s (behind): pop_many gave %d, want 2", name, r);
		} else {
			r = ivl_virtq_pop_many(q, e, 4);
			if (r != 2)
				fail_msg("%s (behind): pop_many gave %d, want 2", name, r);
			/* The good ones are popped, whole and checked. */
			assert_int_equal(e[0].head, GOOD_A);
			assert_int_equal(e[0].out_num, 1);
			assert_int_equal(e[0].out_len, 64);
			assert_ptr_equal(e[0].iov[0].iov_base, win + 65536);
			assert_int_equal(e[1].head, GOOD_B);
			assert_int_equal(e[1].in_num, 1);
			assert_int_equal(e[1].in_len, 32);
			assert_ptr_equal(e[1].iov[0].iov_base, win + 65536 + 64);
		}
		r = ivl_virtq_broken(q);
	}
	if (r != err)
		fail_msg("%s (via %d): gave %d, want %d", name, (int)via, r, err);
	assert_int_equal(ivl_virtq_broken(q), err);
	assert_int_equal(ivl_virtq_pop(q, &e[0]), -EIO);
	assert_int_equal(ivl_virtq_pop_many(q, e, 4), -EIO);
	/* Chains popped before the break cannot be pushed any more. */
	uint16_t heads[2] = {GOOD_A, GOOD_B};
	assert_int_equal(ivl_virtq_push(q, 0, 0), -EIO);
	assert_int_equal(ivl_virtq_push_many(q, heads, NULL, 2), -EIO);
	assert_int_equal(ivl_virtq_flush(q), -EIO);
	assert_int_equal(ivl_virtq_need_notify(q), -EIO);
	ivl_virtq_free(q);
	free(win);
}

static void test_hostile(void **state)
{
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
		for (int via = VIA_POP; via <= VIA_MANY_BEHIND; via++)
			run_hostile(hostile[i].what, hostile[i].err, hostile[i].name,
				    (enum hostile_via)via);
}

/*
 * A chain of one descriptor (pop's short path): readable and writable, an
 * iovec array of 0 (-ENOBUFS, not broken), and hostile entries queued behind
 * a good one (pop looks ahead to prefetch their buffers; that must neither
 * trust nor crash on them, and popping them still breaks the queue).
 */
/* Pop one chain of one piece and check its shape. */
static void pop_one(struct pair *p, struct ivl_virtq_elem *e, unsigned out_num, unsigned in_num,
		    uint64_t out_len, uint64_t in_len, const char *base)
{
	assert_int_equal(ivl_virtq_pop(p->dev, e), 1);
	assert_int_equal(e->out_num, out_num);
	assert_int_equal(e->in_num, in_num);
	assert_int_equal(e->out_len, out_len);
	assert_int_equal(e->in_len, in_len);
	assert_ptr_equal(e->iov[0].iov_base, base);
}

static void test_single(void **state)
{
	struct pair p;
	pair_open(&p, 8, 0, 0, 0);
	struct iovec rd = {buf(&p, 0), 64}, wr = {buf(&p, 1), 32};
	assert_true(ivl_virtq_add(p.drv, &rd, 1, NULL, 0, &p) >= 0);
	assert_true(ivl_virtq_add(p.drv, NULL, 0, &wr, 1, &p) >= 0);
	struct iovec iov[1];
	struct ivl_virtq_elem e = {.iov = iov, .iov_max = 0};
	assert_int_equal(ivl_virtq_pop(p.dev, &e), -ENOBUFS);
	assert_int_equal(ivl_virtq_broken(p.dev), 0);
	e.iov_max = 1;
	pop_one(&p, &e, 1, 0, 64, 0, buf(&p, 0));
	pop_one(&p, &e, 0, 1, 0, 32, buf(&p, 1));
	pair_close(&p);

	for (int bad = 0; bad < 2; bad++) {
		pair_open(&p, 8, 0, 0, 0);
		struct vring_desc *d = (struct vring_desc *)(p.win + p.lay.desc);
		struct vring_avail *av = (struct vring_avail *)(p.win + p.lay.avail);
		rd.iov_base = buf(&p, 0); /* the new window */
		for (unsigned i = 0; i < 8; i++)
			assert_true(ivl_virtq_add(p.drv, &rd, 1, NULL, 0, &p) >= 0);
		/* Entries 1..7 turn hostile after publication. */
		for (unsigned i = 1; i < 8; i++) {
			if (bad)
				av->ring[i] = (uint16_t)(8 + i); /* head >= num */
			else
				d[av->ring[i]].addr = UINT64_MAX - 8; /* outside */
		}
		pop_one(&p, &e, 1, 0, 64, 0, buf(&p, 0));
		assert_int_equal(ivl_virtq_pop(p.dev, &e), bad ? -ERANGE : -EFAULT);
		assert_int_equal(ivl_virtq_pop(p.dev, &e), -EIO);
		pair_close(&p);
	}
}

/* The batch verbs: add_many / get_used_many, their partial results and
 * errors, and a hostile used ring behind good entries. */
static void test_many(void **state)
{
	struct pair p;
	pair_open(&p, 4, 0, 0, 0);
	int tags[6];
	void *toks[6] = {&tags[0], &tags[1], &tags[2], &tags[3], &tags[4], &tags[5]};
	struct iovec v[6];
	for (unsigned i = 0; i < 6; i++)
		v[i] = (struct iovec){buf(&p, i), 16 + i};
	assert_int_equal(ivl_virtq_add_many(p.drv, v, 0, false, toks), 0);
	assert_int_equal(ivl_virtq_add_many(p.drv, NULL, 1, false, toks), -EINVAL);
	assert_int_equal(ivl_virtq_add_many(p.dev, v, 1, false, toks), -EINVAL);
	/* Four fit; the ring is then full. */
	assert_int_equal(ivl_virtq_add_many(p.drv, v, 6, true, toks), 4);
	assert_int_equal(ivl_virtq_add_many(p.drv, v, 1, true, toks), -ENOSPC);
	struct iovec iov[2];
	struct ivl_virtq_elem e = {.iov = iov, .iov_max = 2};
	for (unsigned i = 0; i < 4; i++) {
		pop_one(&p, &e, 0, 1, 0, 16 + i, buf(&p, i));
		assert_int_equal(ivl_virtq_push(p.dev, e.head, 100 + i), 0);
		if (i == 2)
			assert_int_equal(ivl_virtq_flush(p.dev), 0);
	}
	void *got[8];
	uint32_t lens[8];
	assert_int_equal(ivl_virtq_get_used_many(p.drv, got, lens, 2), 2);
	assert_int_equal(ivl_virtq_get_used_many(p.drv, got + 2, lens + 2, 8), 1);
	assert_int_equal(ivl_virtq_get_used_many(p.drv, got, lens, 8), 0);
	assert_int_equal(ivl_virtq_flush(p.dev), 0);
	assert_int_equal(ivl_virtq_get_used_many(p.drv, got + 3, NULL, 8), 1);
	for (unsigned i = 0; i < 4; i++)
		assert_ptr_equal(got[i], toks[i]);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(lens[i], 100 + i);
	/* Stops at the first bad buffer: a piece outside, a NULL token. */
	struct iovec bad[3] = {v[0], {p.win + WIN - 4, 8}, v[1]};
	assert_int_equal(ivl_virtq_add_many(p.drv, bad, 3, false, toks), 1);
	assert_int_equal(ivl_virtq_add_many(p.drv, bad + 1, 2, false, toks), -EFAULT);
	void *nulls[2] = {&tags[0], NULL};
	assert_int_equal(ivl_virtq_add_many(p.drv, v, 2, false, nulls), 1);
	assert_int_equal(ivl_virtq_add_many(p.drv, v, 1, false, nulls + 1), -EINVAL);
	assert_int_equal(ivl_virtq_broken(p.drv), 0);
	pair_close(&p);

	/* A good used entry, then one never added: the good one comes back,
	 * the queue breaks, the next call says so. */
	pair_open(&p, 8, 0, 0, 0);
	struct vring_used *u = (struct vring_used *)(p.win + p.lay.used);
	v[0].iov_base = buf(&p, 0); /* the new window */
	assert_int_equal(ivl_virtq_add_many(p.drv, v, 1, false, toks), 1);
	u->ring[0].id = 0;
	u->ring[1].id = 5;
	u->idx = 2;
	assert_int_equal(ivl_virtq_get_used_many(p.drv, got, NULL, 8), 1);
	assert_ptr_equal(got[0], toks[0]);
	assert_int_equal(ivl_virtq_broken(p.drv), -EPROTO);
	assert_int_equal(ivl_virtq_get_used_many(p.drv, got, NULL, 8), -EIO);
	pair_close(&p);

	pair_open(&p, 8, 0, 0, 0);
	u = (struct vring_used *)(p.win + p.lay.used);
	u->idx = 9; /* jumps past the ring */
	assert_int_equal(ivl_virtq_get_used_many(p.drv, got, NULL, 8), -EPROTO);
	pair_close(&p);
}

/*
 * The device's batch verbs: pop_many / push_many, their arguments, partial
 * results that leave the queue healthy (-ENOBUFS, an element without room),
 * avail_event, and hostile entries behind good ones (pop's look-ahead for
 * the prefetch meets them inside one batch).
 */
/* The device's avail_event, at the end of the used ring. */
static uint16_t avail_event(const struct pair *p)
{
	uint16_t v;
	memcpy(&v, p->win + p->lay.used + 4 + 8 * p->num, 2);
	return le16toh(v);
}

static void test_many_device(void **state)
{
	struct pair p;
	pair_open(&p, 8, IVL_VIRTQ_F_EVENT_IDX, 0, 65534);
	struct iovec iov[4][2];
	struct ivl_virtq_elem e[4];
	for (unsigned i = 0; i < 4; i++)
		e[i] = (struct ivl_virtq_elem){.iov = iov[i], .iov_max = 2};
	uint16_t heads[4];
	uint32_t lens[4] = {10, 11, 12, 13};
	assert_int_equal(ivl_virtq_pop_many(NULL, e, 4), -EINVAL);
	assert_int_equal(ivl_virtq_pop_many(p.drv, e, 4), -EINVAL);
	assert_int_equal(ivl_virtq_pop_many(p.dev, NULL, 4), -EINVAL);
	assert_int_equal(ivl_virtq_pop_many(p.dev, e, 0), 0);
	assert_int_equal(ivl_virtq_pop_many(p.dev, e, 4), 0); /* nothing yet */
	assert_int_equal(ivl_virtq_push_many(NULL, heads, NULL, 1), -EINVAL);
	assert_int_equal(ivl_virtq_push_many(p.drv, heads, NULL, 1), -EINVAL);
	assert_int_equal(ivl_virtq_push_many(p.dev, NULL, NULL, 1), -EINVAL);
	assert_int_equal(ivl_virtq_push_many(p.dev, heads, NULL, 0), 0);
	heads[0] = 0;
	assert_int_equal(ivl_virtq_push_many(p.dev, heads, NULL, 1), -EINVAL); /* none popped */

	/* Five one-piece buffers and a chain of three behind them (the
	 * indices wrap: start 65534). */
	struct iovec v[5], three[3];
	void *toks[5];
	for (unsigned i = 0; i < 5; i++) {
		v[i] = (struct iovec){buf(&p, i), 16 + i};
		toks[i] = &v[i];
	}
	for (unsigned i = 0; i < 3; i++)
		three[i] = (struct iovec){buf(&p, 8 + i), 8};
	assert_int_equal(ivl_virtq_add_many(p.drv, v, 5, false, toks), 5);
	assert_true(ivl_virtq_add(p.drv, three, 3, NULL, 0, &p) >= 0);
	assert_int_equal(ivl_virtq_pop_many(p.dev, e, 2), 2);
	/* avail_event follows what was popped, once per call. */
	assert_int_equal(avail_event(&p), (uint16_t)(65534 + 2));
	/* An element with room for pieces but no array: -EINVAL for it,
	 * those before it are popped, nothing of it is consumed. */
	e[1].iov = NULL;
	assert_int_equal(ivl_virtq_pop_many(p.dev, e, 4), 1);
	assert_int_equal(ivl_virtq_pop_many(p.dev, e + 1, 3), -EINVAL);
	assert_int_equal(ivl_virtq_broken(p.dev), 0);
	e[1].iov = iov[1];
	/* Two more, then the chain of three does not fit iov_max 2:
	 * -ENOBUFS for it, the two are popped, the queue stays healthy. */
	assert_int_equal(ivl_virtq_pop_many(p.dev, e, 4), 2);
	assert_ptr_equal(e[0].iov[0].iov_base, buf(&p, 3));
	assert_ptr_equal(e[1].iov[0].iov_base, buf(&p, 4));
	assert_int_equal(e[1].out_len, 20);
	assert_int_equal(ivl_virtq_pop_many(p.dev, e, 4), -ENOBUFS);
	assert_int_equal(ivl_virtq_broken(p.dev), 0);
	struct iovec big[3];
	e[2] = (struct ivl_virtq_elem){.iov = big, .iov_max = 3};
	assert_int_equal(ivl_virtq_pop_many(p.dev, e + 2, 1), 1);
	assert_int_equal(e[2].out_num, 3);
	assert_int_equal(e[2].out_len, 24);
	assert_int_equal(ivl_virtq_pop_many(p.dev, e, 4), 0);
	assert_int_equal(avail_event(&p), (uint16_t)(65534 + 6));

	/* Six popped, in ring order: heads 0..5.  push_many stops at the
	 * first bad head (>= num) with the good ones before it recorded. */
	uint16_t hs[4] = {0, 1, 8, 2};
	assert_int_equal(ivl_virtq_push_many(p.dev, hs, lens, 4), 2);
	assert_int_equal(ivl_virtq_push_many(p.dev, hs + 2, lens, 2), -EINVAL);
	uint16_t rest[5] = {2, 3, 4, 5, 5};
	/* More pushes than popped: the fifth is refused. */
	assert_int_equal(ivl_virtq_push_many(p.dev, rest, NULL, 5), 4);
	assert_int_equal(ivl_virtq_push_many(p.dev, rest + 4, NULL, 1), -EINVAL);
	assert_int_equal(ivl_virtq_broken(p.dev), 0);
	assert_int_equal(ivl_virtq_flush(p.dev), 0);
	void *got[8];
	uint32_t glen[8];
	assert_int_equal(ivl_virtq_get_used_many(p.drv, got, glen, 8), 6);
	assert_int_equal(glen[0], 10);
	assert_int_equal(glen[1], 11);
	for (unsigned i = 2; i < 6; i++)
		assert_int_equal(glen[i], 0); /* lens NULL: 0 bytes written */
	for (unsigned i = 0; i < 5; i++)
		assert_ptr_equal(got[i], toks[i]);
	assert_ptr_equal(got[5], &p);
	pair_close(&p);

	/* Hostile entries behind good ones in one batch (the look-ahead of
	 * the prefetch reads them first: it must neither trust nor crash on
	 * them); popping them breaks the queue and the good ones come back. */
	for (int bad = 0; bad < 2; bad++) {
		pair_open(&p, 8, 0, 0, 0);
		struct vring_desc *d = (struct vring_desc *)(p.win + p.lay.desc);
		struct vring_avail *av = (struct vring_avail *)(p.win + p.lay.avail);
		struct iovec rd = {buf(&p, 0), 64};
		for (unsigned i = 0; i < 8; i++)
			assert_true(ivl_virtq_add(p.drv, &rd, 1, NULL, 0, &p) >= 0);
		for (unsigned i = 3; i < 8; i++) {
			if (bad)
				av->ring[i] = (uint16_t)(8 + i); /* head >= num */
			else
				d[av->ring[i]].addr = UINT64_MAX - 8; /* outside */
		}
		assert_int_equal(ivl_virtq_pop_many(p.dev, e, 4), 3);
		for (unsigned i = 0; i < 3; i++)
			assert_ptr_equal(e[i].iov[0].iov_base, buf(&p, 0));
		assert_int_equal(ivl_virtq_broken(p.dev), bad ? -ERANGE : -EFAULT);
		assert_int_equal(ivl_virtq_pop_many(p.dev, e, 4), -EIO);
		pair_close(&p);
	}
}

static void test_hostile_device(void **state)
{
	/* The driver checks what the device hands back, too. */
	struct pair p;
	pair_open(&p, 8, 0, 0, 0);
	struct vring_used *u = (struct vring_used *)(p.win + p.lay.used);
	add1(&p, &p);
	u->ring[0].id = 5; /* never added */
	u->idx = 1;
	void *tok;
	uint32_t len;
	assert_int_equal(ivl_virtq_get_used(p.drv, &tok, &len), -EPROTO);
	assert_int_equal(ivl_virtq_broken(p.drv), -EPROTO);
	assert_int_equal(ivl_virtq_add(p.drv, &(struct iovec){buf(&p, 0), 1}, 1, NULL, 0, &p),
			 -EIO);
	pair_close(&p);

	pair_open(&p, 8, 0, 0, 0);
	u = (struct vring_used *)(p.win + p.lay.used);
	add1(&p, &p);
	u->idx = 9;
	assert_int_equal(ivl_virtq_get_used(p.drv, &tok, &len), -EPROTO);
	pair_close(&p);

	/* Twice the same id: the second is not in flight any more. */
	pair_open(&p, 8, 0, 0, 0);
	u = (struct vring_used *)(p.win + p.lay.used);
	add1(&p, &p);
	u->ring[0].id = 0;
	u->ring[1].id = 0;
	u->idx = 2;
	assert_int_equal(ivl_virtq_get_used(p.drv, &tok, &len), 1);
	assert_int_equal(ivl_virtq_get_used(p.drv, &tok, &len), -EPROTO);
	pair_close(&p);
}

/*
 * A pool of fixed buffers (IN_ORDER): buffer i through descriptor i, added
 * by count, back by count; the device sees ordinary chains.
 */
static void test_pool(void **state)
{
	struct pair p;
	const uint64_t off = WIN / 2;
	const uint32_t size = 256;
	unsigned next, first;
	uint32_t lens[8];
	struct iovec iov[8][2];
	struct ivl_virtq_elem e[8];
	for (unsigned i = 0; i < 8; i++)
		e[i] = (struct ivl_virtq_elem){.iov = iov[i], .iov_max = 2};

	/* Where a pool may be set. */
	pair_open(&p, 8, 0, 0, 0);
	assert_int_equal(ivl_virtq_pool_set(p.drv, off, size), -EINVAL); /* no IN_ORDER */
	pair_close(&p);
	pair_open(&p, 8, IVL_VIRTQ_F_IN_ORDER, 0, 0);
	assert_int_equal(ivl_virtq_pool_set(p.dev, off, size), -EINVAL);
	assert_int_equal(ivl_virtq_pool_set(p.drv, off, 0), -EINVAL);
	assert_int_equal(ivl_virtq_pool_set(p.drv, WIN - 8 * size + 1, size), -EFAULT);
	assert_int_equal(ivl_virtq_pool_set(p.drv, off, UINT32_MAX), -EFAULT);
	assert_int_equal(ivl_virtq_pool_room(p.drv, &next), -EINVAL);
	assert_int_equal(ivl_virtq_pool_add(p.drv, NULL, 1, false), -EINVAL);
	assert_int_equal(add_chain_of(&p, 1, 1), 0);
	assert_int_equal(ivl_virtq_pool_set(p.drv, off, size), -EBUSY); /* in flight */
	pair_close(&p);

	pair_open(&p, 8, IVL_VIRTQ_F_IN_ORDER, 0, 65533);
	assert_int_equal(ivl_virtq_pool_set(p.drv, off, size), 0);
	assert_int_equal(ivl_virtq_pool_set(p.drv, off, size), -EBUSY);
	/* The token verbs are not for a pool. */
	void *tok;
	assert_int_equal(add_chain_of(&p, 1, 1), -EINVAL);
	assert_int_equal(ivl_virtq_get_used(p.drv, &tok, NULL), -EINVAL);
	assert_int_equal(ivl_virtq_get_used_many(p.drv, &tok, NULL, 1), -EINVAL);
	assert_int_equal(ivl_virtq_pool_room(p.drv, &next), 8);
	assert_int_equal(next, 0);
	/* A length above the size stops the batch there. */
	assert_int_equal(ivl_virtq_pool_add(p.drv, (uint32_t[]){size + 1}, 1, false), -EINVAL);
	assert_int_equal(ivl_virtq_pool_add(p.drv, (uint32_t[]){10, 20, size + 1}, 3, false), 2);
	assert_int_equal(ivl_virtq_pool_add(p.drv, NULL, 9, true), 6);
	assert_int_equal(ivl_virtq_pool_add(p.drv, NULL, 1, false), -ENOSPC);
	assert_int_equal(ivl_virtq_pool_room(p.drv, &next), 0);
	/* The device sees buffer i through descriptor i, at its place. */
	assert_int_equal(ivl_virtq_pop_many(p.dev, e, 8), 8);
	for (unsigned i = 0; i < 8; i++) {
		assert_int_equal(e[i].head, i);
		assert_ptr_equal(e[i].iov[0].iov_base, p.win + off + (size_t)i * size);
		assert_int_equal(e[i].iov[0].iov_len, i == 0 ? 10 : i == 1 ? 20 : size);
		assert_int_equal(e[i].out_num, i < 2);
	}
	uint16_t h[8];
	for (unsigned i = 0; i < 8; i++)
		h[i] = e[i].head;
	assert_int_equal(ivl_virtq_push_many(p.dev, h, (uint32_t[]){0, 0, 5, 6, 7, 8, 9, 10}, 3), 3);
	assert_int_equal(ivl_virtq_flush(p.dev), 0);
	assert_int_equal(ivl_virtq_pool_get_used(p.drv, &first, NULL, 2), 2);
	assert_int_equal(first, 0);
	assert_int_equal(ivl_virtq_pool_get_used(p.drv, &first, lens, 8), 1);
	assert_int_equal(first, 2);
	assert_int_equal(lens[0], 5);
	assert_int_equal(ivl_virtq_pool_get_used(p.drv, &first, lens, 8), 0);
	assert_int_equal(ivl_virtq_pool_room(p.drv, &next), 3);
	assert_int_equal(next, 0);
	assert_int_equal(ivl_virtq_push_many(p.dev, h + 3, (uint32_t[]){6, 7, 8, 9, 10}, 5), 5);
	assert_int_equal(ivl_virtq_flush(p.dev), 0);
	/* Wrapping: buffers 0..2 again, while 3..7 come back. */
	assert_int_equal(ivl_virtq_pool_add(p.drv, NULL, 3, false), 3);
	assert_int_equal(ivl_virtq_pool_get_used(p.drv, &first, lens, 8), 5);
	assert_int_equal(first, 3);
	assert_int_equal(lens[4], 10);
	assert_int_equal(ivl_virtq_pool_room(p.drv, &next), 5);
	assert_int_equal(next, 3);
	assert_int_equal(ivl_virtq_pop_many(p.dev, e, 8), 3);
	assert_int_equal(e[2].head, 2);
	assert_int_equal(ivl_virtq_broken(p.drv), 0);
	/* A used element naming another buffer, when lengths are asked for. */
	h[0] = e[0].head, h[1] = e[1].head;
	assert_int_equal(ivl_virtq_push_many(p.dev, h, NULL, 2), 2);
	assert_int_equal(ivl_virtq_flush(p.dev), 0);
	used_write(&p, (uint16_t)(65533 + 9), 7, 1);
	assert_int_equal(ivl_virtq_pool_get_used(p.drv, &first, lens, 8), 1);
	assert_int_equal(first, 0);
	assert_int_equal(ivl_virtq_pool_get_used(p.drv, &first, lens, 8), -EIO);
	assert_int_equal(ivl_virtq_broken(p.drv), -EPROTO);
	pair_close(&p);

	/* A used index past the buffers published. */
	pair_open(&p, 8, IVL_VIRTQ_F_IN_ORDER, 0, 0);
	assert_int_equal(ivl_virtq_pool_set(p.drv, off, size), 0);
	assert_int_equal(ivl_virtq_pool_add(p.drv, NULL, 2, false), 2);
	used_idx_set(&p, 3);
	assert_int_equal(ivl_virtq_pool_get_used(p.drv, &first, NULL, 8), -EPROTO);
	assert_int_equal(ivl_virtq_pool_room(p.drv, &next), -EIO);
	pair_close(&p);

	/* With EVENT_IDX, a pool's take-back moves used_event too. */
	pair_open(&p, 8, IVL_VIRTQ_F_IN_ORDER | IVL_VIRTQ_F_EVENT_IDX, 0, 0);
	assert_int_equal(ivl_virtq_pool_set(p.drv, off, size), 0);
	assert_int_equal(ivl_virtq_pool_add(p.drv, NULL, 3, false), 3);
	assert_int_equal(ivl_virtq_pop_many(p.dev, e, 8), 3);
	assert_int_equal(ivl_virtq_push_many(p.dev, (uint16_t[]){0, 1, 2}, NULL, 3), 3);
	assert_int_equal(ivl_virtq_flush(p.dev), 0);
	assert_int_equal(ivl_virtq_pool_get_used(p.drv, &first, NULL, 8), 3);
	uint16_t ue;
	memcpy(&ue, p.win + p.lay.avail + 4 + 2u * 8, 2);
	assert_int_equal(le16toh(ue), 3);
	pair_close(&p);

	/* Many laps of odd batches, every buffer's data checked end to end. */
	pair_open(&p, 16, IVL_VIRTQ_F_IN_ORDER, 0, 65500);
	assert_int_equal(ivl_virtq_pool_set(p.drv, off, 64), 0);
	uint32_t seq = 0, want = 0, back = 0;
	for (unsigned round = 0; round < 500; round++) {
		int room = ivl_virtq_pool_room(p.drv, &next);
		unsigned k = 1 + round % 7 < (unsigned)room ? 1 + round % 7 : (unsigned)room;
		for (unsigned j = 0; j < k; j++, seq++)
			memcpy(p.win + off + (size_t)((next + j) & 15) * 64, &seq, 4);
		assert_int_equal(ivl_virtq_pool_add(p.drv, NULL, k, false), (int)k);
		int r;
		while ((r = ivl_virtq_pop_many(p.dev, e, 1 + round % 3)) > 0)
			for (int i = 0; i < r; i++) {
				uint32_t v;
				memcpy(&v, e[i].iov[0].iov_base, 4);
				assert_int_equal(v, want);
				want++;
				assert_int_equal(ivl_virtq_push(p.dev, e[i].head, 0), 0);
			}
		assert_int_equal(r, 0);
		if (round % 2)
			assert_int_equal(ivl_virtq_flush(p.dev), 0);
		while ((r = ivl_virtq_pool_get_used(p.drv, &first, NULL, 1 + round % 4)) > 0) {
			assert_int_equal(first, back & 15);
			back += (unsigned)r;
		}
		assert_int_equal(r, 0);
	}
	assert_int_equal(want, seq);
	assert_int_equal(back, seq);
	assert_int_equal(ivl_virtq_broken(p.drv), 0);
	assert_int_equal(ivl_virtq_broken(p.dev), 0);
	pair_close(&p);
}

static void test_layout(void **state)
{
	struct ivl_virtq_layout l;
	assert_int_equal(ivl_virtq_layout_default(0, 0, 0, &l), 0);
	assert_int_equal(ivl_virtq_layout_default(3, 0, 0, &l), 0);
	assert_int_equal(ivl_virtq_layout_default(65536, 0, 0, &l), 0);
	assert_int_equal(ivl_virtq_layout_default(8, 0, 8, &l), 0);
	uint64_t t = ivl_virtq_layout_default(32768, 0, 4096, &l);
	assert_true(t > 0);
	assert_int_equal(l.desc, 4096);
	assert_int_equal(l.avail, 4096 + 16 * 32768);
	assert_int_equal(l.used % 64, 0);
	assert_true(l.used >= l.avail + 6 + 2 * 32768);
	assert_true(4096 + t >= l.used + 6 + 8 * 32768);

	char *win = aligned_alloc(4096, WIN);
	assert_non_null(win);
	struct ivl_virtq *q;
	struct ivl_virtq_opts o = {.role = IVL_VIRTQ_DEVICE, .num = 256};
	ivl_virtq_layout_default(256, 0, 0, &o.layout);
	assert_int_equal(ivl_virtq_new(&q, win, 4096, &o), -EFAULT);
	o.layout.used = WIN - 8;
	assert_int_equal(ivl_virtq_new(&q, win, WIN, &o), -EFAULT);
	ivl_virtq_layout_default(256, 0, 0, &o.layout);
	o.layout.desc = 8; /* misaligned */
	assert_int_equal(ivl_virtq_new(&q, win, WIN, &o), -EFAULT);
	ivl_virtq_layout_default(256, 0, 0, &o.layout);
	o.layout.avail = UINT64_MAX - 1;
	assert_int_equal(ivl_virtq_new(&q, win, WIN, &o), -EFAULT);
	ivl_virtq_layout_default(256, 0, 0, &o.layout);
	o.num = 100;
	assert_int_equal(ivl_virtq_new(&q, win, WIN, &o), -EINVAL);
	o.num = 256;
	o.features = 1;
	assert_int_equal(ivl_virtq_new(&q, win, WIN, &o), -EINVAL);
	o.features = 0;
	o.role = 0;
	assert_int_equal(ivl_virtq_new(&q, win, WIN, &o), -EINVAL);
	free(win);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layout),	   cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_wrap),	   cmocka_unit_test(test_full),
	    cmocka_unit_test(test_indirect),	   cmocka_unit_test(test_event_idx),
	    cmocka_unit_test(test_flags),	   cmocka_unit_test(test_hostile),
	    cmocka_unit_test(test_hostile_device), cmocka_unit_test(test_single),
	    cmocka_unit_test(test_many),	   cmocka_unit_test(test_defer_publish),
	    cmocka_unit_test(test_many_device),    cmocka_unit_test(test_in_order),
	    cmocka_unit_test(test_pool),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
