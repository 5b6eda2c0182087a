/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the virtio-blk request engine (src/virtio/dev-blk.c,
 * ivl__blk_request) against a real 64 KiB image (a memfd): any chain
 * layout, header, lengths and discard/write-zeroes ranges.  Properties:
 * the used length never exceeds the chain's writable bytes and is 0 only
 * when the chain has no writable byte; the status byte is OK, IOERR or
 * UNSUPP; the image keeps its size; bytes of the image change only inside
 * what a successful OUT, DISCARD or WRITE_ZEROES names (never on a
 * read-only image); a successful IN returns the image's bytes; no fd
 * leaks.
 *
 * Input: [flags: bit0 ro, bit1 FLUSH negotiated, bit2 DISCARD, bit3
 * WRITE_ZEROES, bit4 try ZERO_RANGE, bit5 failed] then requests, each
 * [nout][nin] (pieces, 0..15 each), le16 lengths (each <= 4096), then the
 * readable pieces' bytes (short input: zeroes).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../../src/virtio/dev-blk.h"
#include "fuzz.h"

#define IMG 65536u
#define ARENA (2u * 16u * 4096u)

static int fd_count(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

struct input {
	const uint8_t *p;
	size_t n;
};

static uint8_t take8(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint16_t take16(struct input *in)
{
	uint16_t lo = take8(in);
	return (uint16_t)(lo | take8(in) << 8);
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* Mark the bytes of sectors [s, s + n) of the image (clipped) as allowed
 * to change. */
static void allow(bool *ok, uint64_t s, uint64_t n)
{
	for (uint64_t i = 0; i < n && s + i < IMG / 512 && s + i >= s; i++)
		memset(ok + (s + i) * 512, 1, 512);
}

/* The readable bytes [off, off + len) of the chain into @dst (zeroes past
 * the end); returns the bytes there were. */
static size_t readable(const struct iovec *v, unsigned n, size_t off, uint8_t *dst, size_t len)
{
	size_t got = 0, pos = 0;
	memset(dst, 0, len);
	for (unsigned i = 0; i < n; i++) {
		for (size_t k = 0; k < v[i].iov_len; k++, pos++)
			if (pos >= off && pos - off < len) {
				dst[pos - off] = ((uint8_t *)v[i].iov_base)[k];
				got++;
			}
	}
	return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *arena, *shadow, *now;
	static bool *ok;
	if (!arena) {
		arena = malloc(ARENA);
		shadow = malloc(IMG);
		now = malloc(IMG);
		ok = malloc(IMG);
		FUZZ_CHECK(arena && shadow && now && ok);
	}
	int fds = fd_count();
	struct input in = {data, size};
	uint8_t flags = take8(&in);
	int fd = memfd_create("fuzz-blk", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	for (unsigned i = 0; i < IMG; i++)
		shadow[i] = (uint8_t)(i * 31 + i / 512);
	FUZZ_CHECK(pwrite(fd, shadow, IMG, 0) == (ssize_t)IMG);
	struct ivl__blk_img b = {
	    .fd = fd,
	    .capacity = IMG / 512,
	    .ro = flags & 1,
	    .flush = flags & 2,
	    .discard = flags & 4,
	    .wzeroes = flags & 8,
	    .zero_range = flags & 16,
	    .failed = flags & 32,
	    .id = "fuzz",
	};
	for (int r = 0; r < 16 && in.n; r++) {
		unsigned nout = take8(&in) % 16, nin = take8(&in) % 16;
		struct iovec iov[32];
		size_t pos = 0;
		uint64_t out_len = 0, in_len = 0;
		for (unsigned i = 0; i < nout + nin; i++) {
			size_t l = take16(&in) % 4097;
			iov[i].iov_base = arena + pos;
			iov[i].iov_len = l;
			pos += l;
			*(i < nout ? &out_len : &in_len) += l;
		}
		for (unsigned i = 0; i < nout; i++)
			for (size_t k = 0; k < iov[i].iov_len; k++)
				((uint8_t *)iov[i].iov_base)[k] = take8(&in);
		for (unsigned i = nout; i < nout + nin; i++)
			memset(iov[i].iov_base, 0xcc, iov[i].iov_len);
		struct ivl_virtq_elem e = {.head = 0,
					   .out_num = nout,
					   .in_num = nin,
					   .out_len = out_len,
					   .in_len = in_len,
					   .iov = iov,
					   .iov_max = 32};
		/* What the request may change, from its own bytes. */
		uint8_t hdr[16], segs[16 * IVL__BLK_DZ_SEG_MAX];
		readable(iov, nout, 0, hdr, sizeof(hdr));
		uint32_t type = rd32(hdr);
		uint64_t sector = rd64(hdr + 8);
		size_t nseg = out_len > 16 ? (out_len - 16) / 16 : 0;
		readable(iov, nout, 16, segs, sizeof(segs));

		uint32_t used = ivl__blk_request(&b, &e);

		FUZZ_CHECK(used <= in_len);
		uint8_t *status = NULL;
		for (unsigned i = nout + nin; i > nout && !status; i--)
			if (iov[i - 1].iov_len)
				status = (uint8_t *)iov[i - 1].iov_base + iov[i - 1].iov_len - 1;
		FUZZ_CHECK((used == 0) == (status == NULL));
		memset(ok, 0, IMG);
		if (status) {
			FUZZ_CHECK(*status <= IVL__BLK_S_UNSUPP);
			if (*status == IVL__BLK_S_OK && type == IVL__BLK_T_OUT)
				allow(ok, sector, (out_len - 16) / 512);
			if (*status == IVL__BLK_S_OK &&
			    (type == IVL__BLK_T_DISCARD || type == IVL__BLK_T_WRITE_ZEROES)) {
				FUZZ_CHECK(nseg >= 1 && nseg <= IVL__BLK_DZ_SEG_MAX);
				for (size_t k = 0; k < nseg; k++)
					allow(ok, rd64(segs + 16 * k), rd32(segs + 16 * k + 8));
			}
			if (*status == IVL__BLK_S_OK && type == IVL__BLK_T_IN && used > 1) {
				uint8_t got[16 * 4096];
				struct iovec *w = iov + nout;
				size_t k = 0;
				for (unsigned i = 0; i < nin && k < used - 1; i++)
					for (size_t j = 0; j < w[i].iov_len && k < used - 1; j++)
						got[k++] = ((uint8_t *)w[i].iov_base)[j];
				FUZZ_CHECK(sector * 512 + (used - 1) <= IMG);
				FUZZ_CHECK(memcmp(got, shadow + sector * 512, used - 1) == 0);
			}
		}
		struct stat st;
		FUZZ_CHECK(fstat(fd, &st) == 0 && st.st_size == IMG);
		FUZZ_CHECK(pread(fd, now, IMG, 0) == (ssize_t)IMG);
		for (unsigned i = 0; i < IMG; i++)
			FUZZ_CHECK(now[i] == shadow[i] || (ok[i] && !b.ro));
		memcpy(shadow, now, IMG);
	}
	close(fd);
	FUZZ_CHECK(fd_count() == fds);
	return 0;
}
