/* SPDX-License-Identifier: MIT */
/*
 * The managed block device (virtio-blk, device ID 2, docs/transport.md §5):
 * one queue (requestq) served from an image the device host was configured
 * with (struct ivl_transport_blk_image): a raw file or a block device.
 *
 *  - CREATE's backend argument names the image (its name, or its path as
 *    configured); nothing else is ever opened.  param[0] 1 asks for
 *    read-only.  The image is locked with flock() (exclusive read-write,
 *    shared read-only): two devices never write one image.
 *  - Requests: IN, OUT, FLUSH (fdatasync), GET_ID (the image's name),
 *    DISCARD and WRITE_ZEROES (fallocate PUNCH_HOLE / ZERO_RANGE, offered
 *    only when a probe shows the file system punches holes).  Unknown
 *    types answer UNSUPP; malformed chains, sectors outside the image and
 *    host I/O errors answer IOERR; each kind is counted (the counters are
 *    in the device's backend string, so `ivlink dev list` shows them).
 *  - Durability: data goes to the file with pwritev() before the request
 *    completes (a SIGKILL of the device host loses nothing the guest saw
 *    completed: it is in the host's page cache), and FLUSH is
 *    fdatasync() (what the guest flushed survives a host crash).  Without
 *    VIRTIO_BLK_F_FLUSH negotiated every write is followed by
 *    fdatasync() (write-through).  After a failed write or sync every
 *    later write and flush answers IOERR: the page cache may have dropped
 *    what failed, so a later flush must not claim it is safe.
 *  - The I/O is synchronous in the host's loop; at most BATCH requests per
 *    round, the rest on the next (timeout 0); each answer is published
 *    when its request is done.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/internal.h"
#include "dev-blk.h"
#include "transport-internal.h"

#define REQQ 0u
/* Pieces of one chain: header, data, status, with room to spare; a longer
 * chain breaks the device (ivl__tdev_pop). */
#define IOV_N (IVL__BLK_SEG_MAX * 2u + 4u)
#define BATCH 32

#define F_SIZE_MAX (1ull << 1)
#define F_SEG_MAX (1ull << 2)
#define F_RO (1ull << 5)
#define F_BLK_SIZE (1ull << 6)
#define F_FLUSH (1ull << 9)
#define F_DISCARD (1ull << 13)
#define F_WRITE_ZEROES (1ull << 14)

/* ---- the request engine ------------------------------------------------------ */

/* Bytes [skip, skip + len) of the pieces @v[0..n) as pieces in @out (room
 * for n); returns their number. */
static unsigned slice(const struct iovec *v, unsigned n, uint64_t skip, uint64_t len,
		      struct iovec *out)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n && len; i++) {
		uint64_t l = v[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		uint64_t take = l - skip < len ? l - skip : len;
		out[k].iov_base = (uint8_t *)v[i].iov_base + skip;
		out[k++].iov_len = take;
		skip = 0;
		len -= take;
	}
	return k;
}

/* Copy @len readable bytes from offset @off of @e into @dst. */
static void gather(const struct ivl_virtq_elem *e, uint64_t off, void *dst, size_t len)
{
	struct iovec s[IOV_N];
	unsigned n = slice(e->iov, e->out_num, off, len, s);
	uint8_t *p = dst;
	for (unsigned i = 0; i < n; i++) {
		memcpy(p, s[i].iov_base, s[i].iov_len);
		p += s[i].iov_len;
	}
}

/* Sectors [sector, sector + nsec) inside the image (no overflow). */
static bool in_range(const struct ivl__blk_img *b, uint64_t sector, uint64_t nsec)
{
	return sector <= b->capacity && nsec <= b->capacity - sector;
}

static uint8_t sync_image(struct ivl__blk_img *b)
{
	while (fdatasync(b->fd) < 0) {
		if (errno == EINTR)
			continue;
		ivl__warn("transport: blk %.20s: fdatasync: %s; writes refused from now on", b->id,
			  strerror(errno));
		b->failed = true;
		b->n.ioerr++;
		return IVL__BLK_S_IOERR;
	}
	return IVL__BLK_S_OK;
}

/* IN / OUT of @len data bytes at @sector; *done gets the bytes moved. */
static uint8_t rw(struct ivl__blk_img *b, const struct ivl_virtq_elem *e, bool write,
		  uint64_t sector, uint64_t len, uint64_t *done)
{
	*done = 0;
	if (len % 512) {
		b->n.bad++;
		return IVL__BLK_S_IOERR;
	}
	if (!in_range(b, sector, len / 512)) {
		b->n.range++;
		return IVL__BLK_S_IOERR;
	}
	if (write && (b->ro || b->failed)) {
		b->n.ioerr++;
		return IVL__BLK_S_IOERR;
	}
	struct iovec v[IOV_N];
	unsigned n = write ? slice(e->iov, e->out_num, IVL__BLK_HDR, len, v)
			   : slice(e->iov + e->out_num, e->in_num, 0, len, v);
	off_t off = (off_t)(sector * 512);
	unsigned i = 0;
	while (*done < len) {
		ssize_t r = write ? pwritev(b->fd, v + i, (int)(n - i), off)
				  : preadv(b->fd, v + i, (int)(n - i), off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 && !write) { /* the file shrank under us: zeroes */
			for (; i < n; i++) {
				memset(v[i].iov_base, 0, v[i].iov_len);
				*done += v[i].iov_len;
			}
			break;
		}
		if (r <= 0) {
			ivl__warn("transport: blk %.20s: %s at sector %llu: %s", b->id,
				  write ? "write" : "read", (unsigned long long)sector,
				  r < 0 ? strerror(errno) : "no progress");
			if (write && (r == 0 || errno == EIO))
				b->failed = true;
			b->n.ioerr++;
			return IVL__BLK_S_IOERR;
		}
		*done += (uint64_t)r;
		off += r;
		for (uint64_t k = (uint64_t)r; k;) { /* step over what was moved */
			if (k >= v[i].iov_len) {
				k -= v[i].iov_len;
				i++;
			} else {
				v[i].iov_base = (uint8_t *)v[i].iov_base + k;
				v[i].iov_len -= k;
				k = 0;
			}
		}
	}
	if (write)
		b->n.writes++;
	else
		b->n.reads++;
	return write && !b->flush ? sync_image(b) : IVL__BLK_S_OK;
}

/* DISCARD / WRITE_ZEROES: @len readable bytes of ranges after the header. */
static uint8_t dz(struct ivl__blk_img *b, const struct ivl_virtq_elem *e, bool zeroes, uint64_t len)
{
	if (!(zeroes ? b->wzeroes : b->discard)) {
		b->n.unsupp++;
		return IVL__BLK_S_UNSUPP;
	}
	if (len == 0 || len % IVL__BLK_SEG || len / IVL__BLK_SEG > IVL__BLK_DZ_SEG_MAX) {
		b->n.bad++;
		return IVL__BLK_S_IOERR;
	}
	unsigned nseg = (unsigned)(len / IVL__BLK_SEG);
	uint8_t seg[IVL__BLK_DZ_SEG_MAX][IVL__BLK_SEG];
	gather(e, IVL__BLK_HDR, seg, len);
	/* All ranges checked before any is applied. */
	for (unsigned i = 0; i < nseg; i++) {
		uint32_t flags = ivl__le32(seg[i] + 12);
		if (flags & ~(zeroes ? 1u : 0u)) { /* only write-zeroes may unmap */
			b->n.unsupp++;
			return IVL__BLK_S_UNSUPP;
		}
		uint32_t num = ivl__le32(seg[i] + 8);
		if (num > IVL__BLK_DZ_SECTORS) {
			b->n.bad++;
			return IVL__BLK_S_IOERR;
		}
		if (!in_range(b, ivl__le64(seg[i]), num)) {
			b->n.range++;
			return IVL__BLK_S_IOERR;
		}
	}
	if (b->ro || b->failed) {
		b->n.ioerr++;
		return IVL__BLK_S_IOERR;
	}
	for (unsigned i = 0; i < nseg; i++) {
		off_t off = (off_t)(ivl__le64(seg[i]) * 512), n = (off_t)ivl__le32(seg[i] + 8) * 512;
		if (!n)
			continue;
		int r = -1;
		if (zeroes && b->zero_range && !(ivl__le32(seg[i] + 12) & 1)) {
			r = fallocate(b->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, n);
			if (r < 0 && errno == EOPNOTSUPP)
				b->zero_range = false; /* holes read as zeroes too */
		}
		if (r < 0 && (!zeroes || !b->zero_range || (ivl__le32(seg[i] + 12) & 1)))
			r = fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, n);
		if (r < 0) {
			ivl__warn("transport: blk %.20s: fallocate at sector %llu: %s", b->id,
				  (unsigned long long)ivl__le64(seg[i]), strerror(errno));
			b->n.ioerr++;
			return IVL__BLK_S_IOERR;
		}
	}
	if (zeroes)
		b->n.zeroes++;
	else
		b->n.discards++;
	return IVL__BLK_S_OK;
}

uint32_t ivl__blk_request(struct ivl__blk_img *b, const struct ivl_virtq_elem *e)
{
	/* The status byte: the last byte of the last non-empty writable piece. */
	uint8_t *status = NULL;
	for (unsigned i = e->out_num + e->in_num; i > e->out_num && !status; i--)
		if (e->iov[i - 1].iov_len)
			status = (uint8_t *)e->iov[i - 1].iov_base + e->iov[i - 1].iov_len - 1;
	if (!status || e->out_num + e->in_num > IOV_N) {
		b->n.bad++;
		return 0; /* nowhere to answer */
	}
	uint64_t din = e->in_len - 1; /* writable data bytes before the status */
	uint64_t dout = e->out_len >= IVL__BLK_HDR ? e->out_len - IVL__BLK_HDR : 0;
	uint64_t moved = 0;
	uint8_t st = IVL__BLK_S_IOERR;
	if (e->out_len < IVL__BLK_HDR) {
		b->n.bad++;
		*status = IVL__BLK_S_IOERR;
		return 1;
	}
	uint8_t h[IVL__BLK_HDR];
	gather(e, 0, h, sizeof(h));
	uint32_t type = ivl__le32(h);
	uint64_t sector = ivl__le64(h + 8);
	bool wrong_dir = false;
	switch (type) {
	case IVL__BLK_T_IN:
		if (!(wrong_dir = dout != 0))
			st = rw(b, e, false, sector, din, &moved);
		break;
	case IVL__BLK_T_OUT:
		if (!(wrong_dir = din != 0)) {
			uint64_t taken; /* read from the chain: not part of the used length */
			st = rw(b, e, true, sector, dout, &taken);
		}
		break;
	case IVL__BLK_T_FLUSH:
		if (!(wrong_dir = dout || din)) {
			st = b->failed ? IVL__BLK_S_IOERR : b->ro ? IVL__BLK_S_OK : sync_image(b);
			b->n.flushes++;
		}
		break;
	case IVL__BLK_T_GET_ID:
		if (!(wrong_dir = dout != 0)) {
			struct iovec v[IOV_N];
			uint64_t k = din < IVL__BLK_ID_BYTES ? din : IVL__BLK_ID_BYTES;
			unsigned n = slice(e->iov + e->out_num, e->in_num, 0, k, v);
			for (unsigned i = 0; i < n; i++) {
				memcpy(v[i].iov_base, b->id + moved, v[i].iov_len);
				moved += v[i].iov_len;
			}
			b->n.ids++;
			st = IVL__BLK_S_OK;
		}
		break;
	case IVL__BLK_T_DISCARD:
	case IVL__BLK_T_WRITE_ZEROES:
		if (!(wrong_dir = din != 0))
			st = dz(b, e, type == IVL__BLK_T_WRITE_ZEROES, dout);
		break;
	default:
		b->n.unsupp++;
		st = IVL__BLK_S_UNSUPP;
	}
	if (wrong_dir) {
		b->n.bad++;
		st = IVL__BLK_S_IOERR;
	}
	*status = st;
	return (uint32_t)(moved + 1);
}

/* ---- the device type ---------------------------------------------------------- */

struct blk {
	struct ivl__blk_img img;
	uint64_t offered;
	struct ivl__blk_counts shown; /* the counters in d->backend */
	char name[IVL_TRANSPORT_CREATE_ARG_MAX];
	struct iovec iov[IOV_N];
	bool more;
};

static void show(struct ivl__tdev *d, struct blk *k)
{
	const struct ivl__blk_counts *n = &k->img.n;
	char s[256]; /* truncated to the backend's 63 bytes */
	snprintf(s, sizeof(s), "%s%s bad=%llu range=%llu unsupp=%llu err=%llu", k->name,
		 k->img.ro ? ",ro" : "", (unsigned long long)n->bad, (unsigned long long)n->range,
		 (unsigned long long)n->unsupp, (unsigned long long)n->ioerr);
	memcpy(d->backend, s, sizeof(d->backend) - 1);
	d->backend[sizeof(d->backend) - 1] = 0;
	k->shown = *n;
}

/* The refusals counted since the last look: logged at 1, 2, 4, 8... */
static void report(struct ivl__tdev *d, struct blk *k)
{
	static const char *const what[] = {"malformed", "out of range", "unsupported",
					   "failed"};
	const uint64_t now[] = {k->img.n.bad, k->img.n.range, k->img.n.unsupp, k->img.n.ioerr};
	const uint64_t was[] = {k->shown.bad, k->shown.range, k->shown.unsupp, k->shown.ioerr};
	bool changed = false;
	for (unsigned i = 0; i < IVL_ARRAY_SIZE(now); i++) {
		if (now[i] == was[i])
			continue;
		changed = true;
		/* A power of two crossed in (was, now]. */
		if ((now[i] ^ was[i]) > was[i])
			ivl__warn("transport: blk %llu (%s): %s requests: %llu so far",
				  (unsigned long long)d->id, k->name, what[i],
				  (unsigned long long)now[i]);
	}
	if (changed)
		show(d, k);
}

static void blk_fini(struct ivl__tdev *d)
{
	struct blk *k = d->priv;
	if (!k)
		return;
	const struct ivl__blk_counts *n = &k->img.n;
	if (d->backend[0]) /* it was served */
		ivl__info("transport: blk %llu (%s): %llu reads, %llu writes, %llu flushes, "
			  "%llu discards, %llu write-zeroes; refused: %llu malformed, "
			  "%llu out of range, %llu unsupported, %llu failed",
			  (unsigned long long)d->id, k->name, (unsigned long long)n->reads,
			  (unsigned long long)n->writes, (unsigned long long)n->flushes,
			  (unsigned long long)n->discards, (unsigned long long)n->zeroes,
			  (unsigned long long)n->bad, (unsigned long long)n->range,
			  (unsigned long long)n->unsupp, (unsigned long long)n->ioerr);
	ivl__close(k->img.fd);
	free(k);
	d->priv = NULL;
}

static const struct ivl_transport_blk_image *find_image(const struct ivl_transport_device_opts *o,
							 const char *arg)
{
	for (unsigned i = 0; o->blk && i < o->nblk; i++)
		if ((o->blk[i].name && !strcmp(arg, o->blk[i].name)) ||
		    (o->blk[i].path && !strcmp(arg, o->blk[i].path)))
			return &o->blk[i];
	return NULL;
}

/* Size and logical block size of the open image. */
static int image_size(int fd, uint64_t *bytes, uint32_t *bsize)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	*bsize = 512;
	if (S_ISREG(st.st_mode)) {
		*bytes = (uint64_t)st.st_size;
		return 0;
	}
	if (!S_ISBLK(st.st_mode))
		return -ENOTBLK;
	int ss = 0;
	if (ioctl(fd, BLKGETSIZE64, bytes) < 0 || ioctl(fd, BLKSSZGET, &ss) < 0)
		return -errno;
	if (ss >= 512 && ss <= 65536 && !(ss & (ss - 1)))
		*bsize = (uint32_t)ss;
	return 0;
}

static int blk_init(struct ivl__tdev *d, const struct ivl_transport_create *c, const char *arg,
		    const struct ivl_transport_device_opts *o)
{
	const struct ivl_transport_blk_image *im = arg ? find_image(o, arg) : NULL;
	if (!im || !im->path || c->param[0] > 1 || c->param[1] || c->param[2])
		return -EINVAL;
	struct blk *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	d->priv = k;
	struct ivl__blk_img *b = &k->img;
	b->ro = im->read_only || c->param[0] == 1;
	snprintf(k->name, sizeof(k->name), "%s", im->name ? im->name : arg);
	size_t nl = strlen(k->name);
	memcpy(b->id, k->name, nl < sizeof(b->id) ? nl : sizeof(b->id)); /* NUL-padded */
	b->fd = open(im->path, (b->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY);
	uint64_t bytes = 0;
	uint32_t bsize = 512;
	int r = b->fd < 0 ? -errno : 0;
	if (!r && flock(b->fd, (b->ro ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0)
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
	if (!r)
		r = image_size(b->fd, &bytes, &bsize);
	if (r < 0) {
		ivl__info("transport: blk image %s (%s): %s", k->name, im->path, strerror(-r));
		blk_fini(d);
		return r == -EINVAL ? -EIO : r; /* the driver's request was fine */
	}
	b->capacity = bytes / 512;
	/* Hole punching works here?  Probed past the end of the file, where
	 * it changes nothing (a block device refuses it: not offered). */
	off_t end = (off_t)((bytes + 4095) & ~4095ull);
	bool punch = !b->ro &&
		     fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, end, 4096) == 0;
	b->zero_range = punch; /* tried first for write-zeroes, holes if refused */
	k->offered = F_SIZE_MAX | F_SEG_MAX | F_BLK_SIZE | F_FLUSH | (b->ro ? F_RO : 0) |
		     (punch ? F_DISCARD | F_WRITE_ZEROES : 0);
	d->features = k->offered;
	/* struct virtio_blk_config (virtio 1.x §5.2.4). */
	uint8_t *cfg = d->config;
	ivl__put64(cfg, b->capacity);
	ivl__put32(cfg + 8, IVL__BLK_SIZE_MAX);
	ivl__put32(cfg + 12, IVL__BLK_SEG_MAX);
	ivl__put32(cfg + 20, bsize);
	ivl__put16(cfg + 34, 1); /* num_queues */
	if (punch) {
		ivl__put32(cfg + 36, IVL__BLK_DZ_SECTORS);
		ivl__put32(cfg + 40, IVL__BLK_DZ_SEG_MAX);
		ivl__put32(cfg + 44, 8); /* discard alignment: 4 KiB */
		ivl__put32(cfg + 48, IVL__BLK_DZ_SECTORS);
		ivl__put32(cfg + 52, IVL__BLK_DZ_SEG_MAX);
		cfg[56] = 1; /* write_zeroes_may_unmap */
	}
	show(d, k);
	return 0;
}

static int blk_serve(struct ivl__tdev *d)
{
	struct blk *k = d->priv;
	int served = 0;
	k->more = false;
	if (!ivl__tdev_queue(d, REQQ))
		return 0;
	k->img.flush = d->drv_features & F_FLUSH;
	k->img.discard = (k->offered & d->drv_features & F_DISCARD) != 0;
	k->img.wzeroes = (k->offered & d->drv_features & F_WRITE_ZEROES) != 0;
	struct ivl_virtq_elem e = {.iov = k->iov, .iov_max = IOV_N};
	/* Each answer is published (and notified, as the driver's used
	 * event asks) as soon as it is done, not at the end of the round:
	 * the driver completes it, and copies a read's data out of its
	 * bounce buffer, while the next request is served. */
	while (served < BATCH && ivl__tdev_pop(d, REQQ, &e) == 1) {
		/* A queue broken here stops the loop (ivl__tdev_pop()). */
		ivl__tdev_done(d, REQQ, e.head, ivl__blk_request(&k->img, &e));
		served++;
	}
	report(d, k);
	k->more = served == BATCH;
	return served;
}

static int blk_timeout(struct ivl__tdev *d)
{
	const struct blk *k = d->priv;
	return k->more ? 0 : -1;
}

const struct ivl__tdev_type ivl__blk_type = {
    .virtio_id = IVL_TRANSPORT_VIRTIO_BLK,
    .name = "blk",
    .nqueues = 1,
    .config_size = 60,
    .window_default = 4u << 20,
    .init = blk_init,
    .fini = blk_fini,
    .serve = blk_serve,
    .timeout_ms = blk_timeout,
};
