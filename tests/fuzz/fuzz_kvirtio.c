/* SPDX-License-Identifier: MIT */
/*
 * The guest kernel driver virtio_ivlink's parsers of bytes others write
 * (kernel/virtio_ivlink_wire.h, compiled here as it is in the module).
 * Input: one byte choosing what is parsed (modulo 3), then
 *
 *  0  the region's header: 128 header bytes, le32 state, le64 mapped
 *     size, le64 `area` (missing bytes are 0);
 *  1  a command's answer: le32 used length, u8 how many IDs LIST may
 *     return, le64 the management area's size, then the answer half of
 *     the command buffer as the device left it (VIVL_IN_MAX bytes, zero
 *     filled): the answer is checked and copied as vivl_cmd() does, then
 *     read as a LIST answer and, from its first 112 bytes of in[], as a
 *     device's info;
 *  2  a sysfs `create` line (the rest of the input).
 *
 * Every buffer a parser reads is its own allocation of exactly the bytes
 * it may read (the copied answer is exactly the used length), so a read
 * past one is an ASan finding.  The verdicts are compared with the rules
 * as docs/guest-virtio.md, docs/protocol.md §2 and docs/transport.md §3
 * state them, formulated here independently of the module's code (a wrong
 * check in the header fails this harness), and with the library's own
 * header check, ivl_shm_validate(), where the two are meant to agree.
 *
 * The library's own driver (src/virtio/transport-driver.c) reads answers,
 * LIST and device info too, but inside functions that need a live link,
 * and it accepts other sets: an ERR answer of 8 bytes or more (the module
 * and docs/transport.md §3: exactly 8), LIST returning the device count
 * (the module: the IDs it hands out), a window anywhere inside the area
 * with any ID (the module: past the transport's window, ID not 0).  So
 * those verdicts are compared with the documented rules only.
 * (src/virtio/transport-cmd.c is the device's side: it reads commands,
 * not answers.)
 */
#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/shm.h>

#include "fuzz.h"

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
#define le16_to_cpu(x) le16toh(x)
#define le32_to_cpu(x) le32toh(x)
#define le64_to_cpu(x) le64toh(x)
#define cpu_to_le32(x) htole32(x)
#define cpu_to_le64(x) htole64(x)

static u32 get_unaligned_le32(const void *p)
{
	u32 v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static u64 get_unaligned_le64(const void *p)
{
	u64 v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* The kernel's strscpy() as documented (include/linux/string.h): copy at
 * most @n - 1 bytes and a NUL; -E2BIG when @src did not fit. */
static long strscpy(char *dst, const char *src, size_t n)
{
	size_t len = strnlen(src, n);

	if (n == 0)
		return -E2BIG;
	if (len == n) {
		memcpy(dst, src, n - 1);
		dst[n - 1] = 0;
		return -E2BIG;
	}
	memcpy(dst, src, len + 1);
	return (long)len;
}

/* The kernel's kstrtou32() as documented (lib/kstrtox.c): an optional
 * '+', digits of @base (10 here: no prefix), one optional trailing
 * newline, nothing else; -ERANGE beyond u32, -EINVAL otherwise. */
static int kstrtou32(const char *s, unsigned int base, u32 *res)
{
	u64 v = 0;
	bool over = false;
	const char *d;

	if (base != 10)
		abort();
	if (*s == '+')
		s++;
	for (d = s; *d >= '0' && *d <= '9'; d++) {
		v = v * 10 + (u64)(*d - '0');
		if (v > UINT32_MAX) {
			over = true;
			v = UINT32_MAX;
		}
	}
	if (d == s)
		return -EINVAL;
	if (over)
		return -ERANGE;
	if (*d == '\n')
		d++;
	if (*d)
		return -EINVAL;
	*res = (u32)v;
	return 0;
}

#include "../../kernel/virtio_ivlink_wire.h"

typedef unsigned __int128 u128;

static u32 w32(const u8 *p)
{
	return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static u64 w64(const u8 *p)
{
	return (u64)w32(p) | (u64)w32(p + 4) << 32;
}

/* ---- 0: the region's header ------------------------------------------------------ */

/*
 * docs/protocol.md §2 and docs/guest-virtio.md §2, as the module reads
 * them: not ready (-EAGAIN) without the magic and state READY; invalid
 * (-ENODEV) unless version 1, a region no larger than what is mapped, the
 * peer table at 128 with 64-byte entries, 1..65536 peers, a header size
 * that is a page multiple, holds the table and fits in the mapping; the
 * area (-ERANGE) 8-aligned with at least IVL_TRANSPORT_AREA_MIN bytes
 * after it in the app area.
 */
static void header(const u8 *in)
{
	struct ivl_shm_header *h = malloc(sizeof(*h));
	u32 state = w32(in + 128);
	u64 mapped = w64(in + 132), area = w64(in + 140);
	u64 hsize = w32(in + 0x0c), max_peers = w32(in + 0x20);
	u128 table_end = 128 + (u128)max_peers * 64;
	struct vivl_layout l;
	int want, got, lib;

	FUZZ_CHECK(h);
	memcpy(h, in, sizeof(*h));
	if (mapped < sizeof(*h))
		mapped = sizeof(*h); /* the module maps no less (vivl_map_area) */
	if (w64(in) != IVL_SHM_MAGIC || state != IVL_SHM_READY)
		want = -EAGAIN;
	else if (w32(in + 8) != 1 || w64(in + 0x10) > mapped || w32(in + 0x28) != 128 ||
		 w32(in + 0x2c) != 64 || max_peers < 1 || max_peers > 65536 || hsize % 4096 ||
		 table_end > hsize || hsize > mapped)
		want = -ENODEV;
	else if (area % 8 || (u128)hsize + area + IVL_TRANSPORT_AREA_MIN > mapped)
		want = -ERANGE;
	else
		want = 0;
	got = vivl_header_check(h, state, mapped, area, &l);
	FUZZ_CHECK(got == want);
	if (got == 0 || got == -ERANGE)
		FUZZ_CHECK(l.max_peers == max_peers && l.header_size == hsize);
	if (got == 0) {
		/* The peer table in the header, the area after it, the
		 * control block, ring, command buffer and a first window
		 * inside the mapping, with no wrap-around. */
		FUZZ_CHECK(128 + (u128)l.max_peers * sizeof(struct ivl_shm_peer) <= l.header_size);
		FUZZ_CHECK(l.mgmt_off == hsize + area && l.mgmt_off >= l.header_size);
		FUZZ_CHECK((u128)l.mgmt_off + l.mgmt_size == mapped);
		FUZZ_CHECK(l.mgmt_off % 8 == 0);
		FUZZ_CHECK(l.mgmt_size >= (u64)IVL_TRANSPORT_WINDOWS_OFF + IVL_TRANSPORT_GRANULE);
		FUZZ_CHECK(IVL_TRANSPORT_CMDBUF_OFF + IVL_TRANSPORT_CMDBUF_SIZE <= IVL_TRANSPORT_WINDOWS_OFF);
	}

	/*
	 * The library's reader, ivl_shm_validate(), accepts a header of a
	 * mapping of exactly region_size bytes, READY, with 1..64 vectors, a
	 * peer table anywhere 8-aligned after the header's 128 bytes, and at
	 * least a page of app area; the module accepts a region_size up to
	 * the mapping, the table only at 128, any vector count (it reads each
	 * peer's own), and needs the area after the header instead of a page.
	 * On the inputs where those differences do not matter, they agree.
	 */
	h->state = state;
	lib = ivl_shm_validate(h, mapped, NULL);
	if (lib == 0 && w32(in + 0x28) == 128)
		FUZZ_CHECK(got != -EAGAIN && got != -ENODEV);
	if (got != -EAGAIN && got != -ENODEV && w64(in + 0x10) == mapped &&
	    w32(in + 0x24) >= 1 && w32(in + 0x24) <= 64 && mapped - hsize >= 4096)
		FUZZ_CHECK(lib == 0);
	free(h);
}

/* ---- 1: an answer, read as LIST and as a device's info ----------------------------- */

static const u8 *dev_in; /* the device's answer half, VIVL_IN_MAX bytes */

/*
 * docs/transport.md §3: a used length of 4..VIVL_IN_MAX (the answer half)
 * is taken; an ack 0 (OK) gives the rest as in[], an ack 1 (ERR) of
 * exactly 8 bytes gives its reason, anything else is malformed.
 */
static int answer(u32 len, u8 **copy)
{
	u32 reason = 0xdeadbeef, ack = w32(dev_in);
	bool ok = len >= 4 && len <= 4096;
	int want, got;
	u8 *ans;

	*copy = NULL;
	FUZZ_CHECK(vivl_used_len_ok(len) == ok);
	if (!ok)
		return -EPROTO;
	ans = malloc(len); /* exactly what the device answered */
	FUZZ_CHECK(ans);
	memcpy(ans, dev_in, len);
	if (ack == 0)
		want = (int)len - 4;
	else if (ack == 1 && len == 8)
		want = -EREMOTEIO;
	else
		want = -EPROTO;
	got = vivl_answer_parse(ans, len, &reason);
	FUZZ_CHECK(got == want);
	FUZZ_CHECK(reason == (got == -EREMOTEIO ? w32(dev_in + 4) : 0xdeadbeef));
	FUZZ_CHECK(vivl_answer_parse(ans, len, NULL) == want);
	/* what the caller copies (from byte 4, ret bytes) is inside it */
	if (got >= 0)
		FUZZ_CHECK((u64)got + 4 <= len);
	*copy = ans;
	return got;
}

/*
 * LIST's in[] (docs/transport.md §3): count, reserved, then whole 16-byte
 * entries, as many as fit — never more than count, count at most 64.  The
 * IDs handed out are the first min(entries, max) entries' device_id.
 */
static void list(const u8 *ans, int len, unsigned int max)
{
	u64 *ids = malloc(max ? max * sizeof(*ids) : 1);
	bool valid = len >= 8 && (len - 8) % 16 == 0;
	unsigned int have = valid ? (unsigned int)(len - 8) / 16 : 0, k;
	u32 count = valid ? w32(dev_in + 4) : 0;
	int want, got;

	FUZZ_CHECK(ids);
	valid = valid && count <= 64 && have <= count;
	want = !valid ? -EPROTO : (int)(have < max ? have : max);
	got = vivl_list_parse(ans + 4, len, ids, max);
	FUZZ_CHECK(got == want);
	for (k = 0; got > 0 && k < (unsigned int)got; k++)
		FUZZ_CHECK(ids[k] == w64(dev_in + 4 + 8 + 16 * k));
	free(ids);
}

/*
 * A device's info (QUERY, CREATE; docs/transport.md §3, §4): a nonzero
 * ID, at most 8 queues, a window after the transport's own (at or past
 * IVL_TRANSPORT_WINDOWS_OFF) that ends inside the management area; the
 * values are the device's, the backend name NUL-terminated.
 */
static void info(const u8 *raw, u64 mgmt_size)
{
	struct ivl_transport_info *w = malloc(sizeof(*w));
	u64 id = w64(raw), off = w64(raw + 16), size = w64(raw + 24);
	u16 nq = (u16)(raw[32] | raw[33] << 8);
	bool want = id != 0 && off >= IVL_TRANSPORT_WINDOWS_OFF && (u128)off + size <= mgmt_size &&
		    nq <= 8;
	struct vivl_info i;
	int got;

	FUZZ_CHECK(w);
	memcpy(w, raw, sizeof(*w));
	got = vivl_info_parse(w, mgmt_size, &i);
	FUZZ_CHECK(got == (want ? 0 : -EPROTO));
	FUZZ_CHECK(i.id == id && i.window_offset == off && i.window_size == size &&
		   i.num_queues == nq && i.virtio_id == w32(raw + 8) && i.status == w32(raw + 12) &&
		   i.msi_vectors == (u16)(raw[34] | raw[35] << 8) && i.flags == w32(raw + 36) &&
		   i.driver_peer == (u16)(raw[40] | raw[41] << 8));
	FUZZ_CHECK(memcmp(i.backend, raw + 48, 63) == 0 && i.backend[63] == 0);
	if (got == 0)
		FUZZ_CHECK(i.window_offset >= IVL_TRANSPORT_WINDOWS_OFF &&
			   i.window_offset <= mgmt_size &&
			   i.window_size <= mgmt_size - i.window_offset);
	free(w);
}

static void answers(const u8 *in, size_t size)
{
	u32 len = w32(in);
	unsigned int max = in[4];
	u64 mgmt_size = w64(in + 5);
	u8 *dev = calloc(1, VIVL_IN_MAX), *ans;
	int ret;

	FUZZ_CHECK(dev);
	memcpy(dev, in + 13, size - 13 < VIVL_IN_MAX ? size - 13 : VIVL_IN_MAX);
	dev_in = dev;
	ret = answer(len, &ans);
	if (ans && ret >= 0)
		list(ans, ret, max);
	free(ans);
	info(dev + 4, mgmt_size);
	free(dev);
}

/* ---- 2: the create line ------------------------------------------------------------ */

/* The types of docs/guest-virtio.md §1's table (the module's vivl_ctypes[]
 * has the same rows; the windows here are arbitrary). */
static const char *const console_kw[] = { "default", "pty", "unix", "loop", NULL };
static const char *const sdm_kw[] = { "slave", "master", NULL };
static const struct vivl_ctype types[] = {
	{ "console", IVL_TRANSPORT_VIRTIO_CONSOLE, 1u << 18, false, { console_kw } },
	{ "rng", IVL_TRANSPORT_VIRTIO_RNG, 2u << 18, false, { NULL } },
	{ "sdm", IVL_TRANSPORT_VIRTIO_SDM, 3u << 18, false, { sdm_kw } },
	{ "blk", IVL_TRANSPORT_VIRTIO_BLK, 8u << 20, true, { NULL } },
	{ "net", IVL_TRANSPORT_VIRTIO_NET, 4u << 20, true, { NULL } },
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

static bool delim(char c)
{
	return c == ' ' || c == '\t' || c == '\n';
}

/* A decimal u32: an optional '+' and 1..n digits, at most 4294967295. */
static bool number(const char *w, size_t n, u32 *v)
{
	u64 x = 0;
	size_t k = 0;

	if (n && w[0] == '+')
		k = 1;
	if (k == n)
		return false;
	for (; k < n; k++) {
		if (w[k] < '0' || w[k] > '9')
			return false;
		x = x * 10 + (u64)(w[k] - '0');
		if (x > UINT32_MAX)
			return false;
	}
	*v = (u32)x;
	return true;
}

/*
 * docs/guest-virtio.md §1: "TYPE [NAME] [ARG...]", under 64 bytes (up to
 * a NUL), words separated by spaces, tabs and newlines; TYPE first, with
 * nothing before it; a type with a backend name takes the next word as
 * NAME; then at most 3 ARGs, each a word of the type's keyword list for
 * that position (its index), else a decimal u32.
 */
static void create(const u8 *in, size_t count)
{
	char s[64], *words[64];
	size_t wlen[64], nw = 0, p = 0, n, k, tl;
	u32 param[3] = { 0, 0, 0 };
	const char *name = NULL;
	size_t name_len = 0;
	int want = -EINVAL, got, t = -1;
	struct vivl_create cr;
	char *buf = malloc(count ? count : 1);

	FUZZ_CHECK(buf);
	memcpy(buf, in, count);
	got = vivl_create_parse(types, NTYPES, buf, count, &cr);
	free(buf);
	if (count >= 64)
		goto out;
	memcpy(s, in, count);
	s[count] = 0;
	n = strlen(s);
	for (tl = 0; tl < n && !delim(s[tl]); tl++)
		;
	for (k = 0; k < NTYPES; k++)
		if (strlen(types[k].name) == tl && !memcmp(s, types[k].name, tl))
			t = (int)k;
	if (t < 0)
		goto out;
	for (p = tl; p < n;) {
		while (p < n && delim(s[p]))
			p++;
		if (p == n)
			break;
		words[nw] = s + p;
		for (wlen[nw] = 0; p < n && !delim(s[p]); p++)
			wlen[nw]++;
		nw++;
	}
	k = 0;
	if (types[t].has_name) {
		if (nw == 0)
			goto out;
		name = words[0];
		name_len = wlen[0];
		k = 1;
	}
	if (nw - k > 3)
		goto out;
	for (size_t a = 0; k < nw; k++, a++) {
		const char *const *kw = types[t].kw[a];

		if (kw) {
			u32 j;

			for (j = 0; kw[j] && (strlen(kw[j]) != wlen[k] || memcmp(kw[j], words[k], wlen[k]));
			     j++)
				;
			if (!kw[j])
				goto out;
			param[a] = j;
		} else if (!number(words[k], wlen[k], &param[a])) {
			goto out;
		}
	}
	want = t;
out:
	FUZZ_CHECK(got == want);
	if (got < 0)
		return;
	FUZZ_CHECK(le32toh(cr.c.virtio_id) == types[t].virtio_id &&
		   le64toh(cr.c.window_size) == types[t].window && cr.c.flags == 0 &&
		   cr.c.msi_vectors == 0);
	for (k = 0; k < 3; k++) {
		FUZZ_CHECK(le32toh(cr.c.param[k]) == param[k]);
		if (types[t].kw[k]) {
			u32 nkw = 0;

			while (types[t].kw[k][nkw])
				nkw++;
			FUZZ_CHECK(param[k] < nkw);
		}
	}
	if (name) {
		FUZZ_CHECK(name_len >= 1 && name_len < IVL_TRANSPORT_CREATE_ARG_MAX);
		FUZZ_CHECK(!memcmp(cr.arg, name, name_len) && cr.arg[name_len] == 0);
		FUZZ_CHECK(cr.len == sizeof(cr.c) + name_len + 1);
	} else {
		FUZZ_CHECK(cr.len == sizeof(cr.c) && cr.arg[0] == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	u8 hdr[148] = { 0 }, ans[13] = { 0 };

	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		memcpy(hdr, data + 1, size - 1 < sizeof(hdr) ? size - 1 : sizeof(hdr));
		header(hdr);
		break;
	case 1:
		if (size - 1 < sizeof(ans)) {
			memcpy(ans, data + 1, size - 1);
			answers(ans, sizeof(ans));
		} else {
			answers(data + 1, size - 1);
		}
		break;
	default:
		create(data + 1, size - 1);
		break;
	}
	return 0;
}
