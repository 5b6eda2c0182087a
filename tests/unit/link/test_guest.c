/* SPDX-License-Identifier: MIT */
/*
 * The guest backend without a VM: BDF parsing, the hostile peer-table
 * scanner, the register seam driven by a fake register block, and the whole
 * ivl_link_guest_new() path over a fake sysfs tree of plain files.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ivlink/server.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>
#include <ivlink/link.h>
#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>
#include <ivlink/uapi/ivshmem-drv.h>

#include "link/guest-internal.h"
#include "testutil.h"

#define REGION (64u * 1024u)

/* ---- BDF parsing --------------------------------------------------------- */

static void bdf_parsing(void **state)
{
	char out[13];

	(void)state;
	assert_int_equal(ivl__guest_parse_bdf("0000:00:02.0", out), 0);
	assert_string_equal(out, "0000:00:02.0");
	assert_int_equal(ivl__guest_parse_bdf("00:1F.7", out), 0);
	assert_string_equal(out, "0000:00:1f.7");
	assert_int_equal(ivl__guest_parse_bdf("ABCD:FF:00.3", out), 0);
	assert_string_equal(out, "abcd:ff:00.3");
	const char *bad[] = {"",
			     "auto",
			     "0000:00:02",
			     "0000:00:02.8",
			     "0000:00:20.0",
			     "000:00:02.0",
			     "0000-00:02.0",
			     "0000:00:02.0 ",
			     "0000:0g:02.0",
			     "00:02.0.1",
			     "0000:00:02.00"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ivl__guest_parse_bdf(bad[i], out), -EINVAL);
	assert_int_equal(ivl__guest_parse_bdf(NULL, out), -EINVAL);
}

/* ---- the scanner --------------------------------------------------------- */

struct rec {
	int n;
	enum ivl_link_event_type t[32];
	uint16_t id[32];
};

static void rec_emit(void *ctx, enum ivl_link_event_type t, uint16_t id)
{
	struct rec *r = ctx;

	if (r->n < 32) {
		r->t[r->n] = t;
		r->id[r->n] = id;
	}
	r->n++;
}

static void *new_region(struct ivl_shm_header *hdr, unsigned max_peers, unsigned vectors)
{
	void *base = aligned_alloc(4096, REGION);

	assert_non_null(base);
	memset(base, 0, REGION);
	assert_int_equal(ivl_shm_format(base, REGION, max_peers, vectors, 1, IVL_FEAT_NAMES), 0);
	assert_int_equal(ivl_shm_validate(base, REGION, hdr), 0);
	return base;
}

static void set_peer(void *base, const struct ivl_shm_header *hdr, unsigned id, uint32_t st,
		     uint32_t gen, uint32_t vectors)
{
	struct ivl_shm_peer *e = ivl_shm_peer(base, hdr, id);

	assert_non_null(e);
	__atomic_store_n(&e->generation, gen, __ATOMIC_SEQ_CST);
	e->vectors = vectors;
	__atomic_store_n(&e->state, st, __ATOMIC_SEQ_CST);
}

static void scanner_hostile_table(void **state)
{
	struct ivl_shm_header hdr;
	struct ivl__guest_scan s;
	struct rec r = {0};
	uint16_t ids[8];
	void *base = new_region(&hdr, 8, 4);

	(void)state;
	assert_int_equal(ivl__guest_scan_init(&s, &hdr, 2), 0);
	set_peer(base, &hdr, 0, IVL_PEER_READY, 1, 4);
	set_peer(base, &hdr, 1, IVL_PEER_JOINED, 1, 1000); /* clamped to 4 */
	set_peer(base, &hdr, 2, IVL_PEER_READY, 1, 4);	   /* me: never reported */
	set_peer(base, &hdr, 3, 77, 1, 4);		   /* unknown state: absent */
	set_peer(base, &hdr, 4, IVL_PEER_LEAVING, 9, 4);   /* leaving: absent */
	set_peer(base, &hdr, 7, IVL_PEER_READY, 0xffffffffu, 2);
	assert_int_equal(ivl__guest_scan_run(&s, base, &hdr, rec_emit, &r), 3);
	assert_int_equal(r.t[0], IVL_LINK_JOIN);
	assert_int_equal(r.id[0], 0);
	assert_int_equal(r.id[1], 1);
	assert_int_equal(r.id[2], 7);
	assert_int_equal(ivl__guest_scan_vectors(&s, 1), 4);
	assert_int_equal(ivl__guest_scan_vectors(&s, 7), 2);
	assert_int_equal(ivl__guest_scan_vectors(&s, 2), 0);
	assert_int_equal(ivl__guest_scan_vectors(&s, 3), 0);
	assert_int_equal(ivl__guest_scan_vectors(&s, 8), 0);	 /* beyond the table */
	assert_int_equal(ivl__guest_scan_vectors(&s, 65535), 0); /* far beyond */
	assert_int_equal(ivl__guest_scan_list(&s, ids, 8), 3);
	assert_int_equal(ids[2], 7);
	assert_int_equal(ivl__guest_scan_list(&s, ids, 1), 3);
	assert_int_equal(ivl__guest_scan_list(&s, NULL, 0), 3);

	/* Nothing changed: nothing reported. */
	r.n = 0;
	assert_int_equal(ivl__guest_scan_run(&s, base, &hdr, rec_emit, &r), 0);

	/* A vector count change alone is no event, but is seen. */
	set_peer(base, &hdr, 7, IVL_PEER_READY, 0xffffffffu, 3);
	assert_int_equal(ivl__guest_scan_run(&s, base, &hdr, rec_emit, &r), 0);
	assert_int_equal(ivl__guest_scan_vectors(&s, 7), 3);

	/* Leave, rejoin under a new generation (leave + join), and READY
	 * after JOINED within one generation (no event). */
	set_peer(base, &hdr, 0, IVL_PEER_ABSENT, 1, 4);
	set_peer(base, &hdr, 7, IVL_PEER_READY, 0, 2);
	set_peer(base, &hdr, 1, IVL_PEER_READY, 1, 4);
	r.n = 0;
	assert_int_equal(ivl__guest_scan_run(&s, base, &hdr, rec_emit, &r), 3);
	assert_int_equal(r.t[0], IVL_LINK_LEAVE);
	assert_int_equal(r.id[0], 0);
	assert_int_equal(r.t[1], IVL_LINK_LEAVE);
	assert_int_equal(r.id[1], 7);
	assert_int_equal(r.t[2], IVL_LINK_JOIN);
	assert_int_equal(r.id[2], 7);

	/* Garbage over the whole header and table: only the validated bounds
	 * are used; every live entry that turned into nonsense leaves. */
	for (size_t i = 0; i < hdr.header_size; i++)
		((unsigned char *)base)[i] = (unsigned char)(i * 37u + 11u);
	r.n = 0;
	ivl__guest_scan_run(&s, base, &hdr, rec_emit, &r);
	for (uint32_t id = 0; id < 8; id++)
		assert_true(ivl__guest_scan_vectors(&s, id) <= 4);
	memset(base, 0xff, hdr.header_size);
	ivl__guest_scan_run(&s, base, &hdr, rec_emit, &r);
	assert_int_equal(ivl__guest_scan_list(&s, ids, 8), 0);

	ivl__guest_scan_fini(&s);
	/* No header: nothing at all. */
	assert_int_equal(ivl__guest_scan_init(&s, NULL, 0), 0);
	assert_int_equal(ivl__guest_scan_run(&s, base, &hdr, rec_emit, &r), 0);
	assert_int_equal(ivl__guest_scan_list(&s, ids, 8), 0);
	ivl__guest_scan_fini(&s);
	free(base);
}

/* ---- the register seam ----------------------------------------------------- */

struct fake {
	uint32_t regs[IVL_IVSHMEM_BAR0_SIZE / 4];
	int position_reads_invalid; /* IVPosition reads -1 this many times */
	uint32_t position;
	uint32_t doorbells[16];
	int ndoorbells;
	int released;
	int irq[4];
};

static uint32_t fake_read32(void *ctx, unsigned off)
{
	struct fake *f = ctx;

	if (off == IVL_IVSHMEM_IVPOSITION) {
		if (f->position_reads_invalid > 0) {
			f->position_reads_invalid--;
			return 0xffffffffu;
		}
		return f->position;
	}
	return f->regs[off / 4];
}

static void fake_write32(void *ctx, unsigned off, uint32_t val)
{
	struct fake *f = ctx;

	if (off == IVL_IVSHMEM_DOORBELL && f->ndoorbells < 16)
		f->doorbells[f->ndoorbells++] = val;
	f->regs[off / 4] = val;
}

static void fake_release(void *ctx)
{
	((struct fake *)ctx)->released++;
}

static const struct ivl__guest_regs fake_regs = {fake_read32, fake_write32};

static struct ivl__guest_dev fake_dev(struct fake *f, void *base, unsigned vectors)
{
	struct ivl__guest_dev d = {
	    .regs = &fake_regs,
	    .ctx = f,
	    .bar2 = base,
	    .bar2_size = REGION,
	    .dev_vectors = vectors,
	    .release = fake_release,
	    .desc = "fake",
	};
	return d;
}

static int wait_event(struct ivl_link *l, enum ivl_link_event_type t, uint16_t peer)
{
	int64_t end = tu_now_ms() + 3000;
	struct ivl_link_event ev[8];

	while (tu_now_ms() < end) {
		int n = ivl_link_wait(l, ev, 8, 200);
		for (int i = 0; i < n; i++)
			if (ev[i].type == t && ev[i].peer == peer)
				return 0;
	}
	return -ETIMEDOUT;
}

static void seam_with_header(void **state)
{
	struct ivl_shm_header hdr;
	struct fake f = {.position_reads_invalid = 3, .position = 2};
	struct ivl_link *l;
	struct ivl_link_event ev[8];
	struct ivl__guest_dev d;
	uint16_t ids[8];
	void *base = new_region(&hdr, 8, 4);
	int before = tu_count_fds();

	(void)state;
	set_peer(base, &hdr, 2, IVL_PEER_READY, 1, 4); /* me */
	set_peer(base, &hdr, 5, IVL_PEER_READY, 1, 2);
	/* Interrupts through eventfds, as VFIO gives them. */
	for (int i = 0; i < 4; i++)
		f.irq[i] = ivl_eventfd_new();
	d = fake_dev(&f, base, 8);
	d.irq_fds = f.irq;
	d.nirq = 4;
	assert_int_equal(ivl__link_guest_new_with_regs(&l, &d, 2000), 0);
	assert_int_equal(ivl_link_id(l), 2);
	assert_int_equal(ivl_link_vectors(l), 4); /* min(device 8, header 4) */
	assert_non_null(ivl_link_header(l));
	/* The peer already there is reported at once. */
	assert_int_equal(ivl_link_process(l, ev, 8), 1);
	assert_int_equal(ev[0].type, IVL_LINK_JOIN);
	assert_int_equal(ev[0].peer, 5);
	assert_int_equal(ivl_link_peers(l, ids, 8), 1);
	assert_int_equal(ivl_link_peer_vectors(l, 5), 2);
	assert_int_equal(ivl_link_peer_vectors(l, 2), 4);

	assert_int_equal(ivl_link_ring(l, 5, 1), 0);
	assert_int_equal(ivl_link_ring(l, 5, 2), -ERANGE);
	assert_int_equal(ivl_link_ring(l, 6, 0), -ENOENT);
	assert_int_equal(ivl_link_ring(l, 60000, 0), -ENOENT);
	assert_int_equal(ivl_link_ring(l, 2, 3), 0); /* self */
	assert_int_equal(ivl_link_broadcast(l, 0), 1);
	assert_int_equal(f.ndoorbells, 3);
	assert_int_equal(f.doorbells[0], 5u << 16 | 1);
	assert_int_equal(f.doorbells[1], 2u << 16 | 3);
	assert_int_equal(f.doorbells[2], 5u << 16 | 0);

	/* An interrupt on my vector 3 is a doorbell event. */
	assert_int_equal(ivl_eventfd_ring(f.irq[3]), 0);
	assert_int_equal(ivl_link_wait(l, ev, 8, 2000), 1);
	assert_int_equal(ev[0].type, IVL_LINK_DOORBELL);
	assert_int_equal(ev[0].vector, 3);

	/* Joins and leaves through the table, found by the rescan timer. */
	set_peer(base, &hdr, 6, IVL_PEER_READY, 1, 4);
	assert_int_equal(wait_event(l, IVL_LINK_JOIN, 6), 0);
	set_peer(base, &hdr, 5, IVL_PEER_ABSENT, 1, 4);
	assert_int_equal(wait_event(l, IVL_LINK_LEAVE, 5), 0);
	assert_int_equal(ivl_link_ring(l, 5, 0), -ENOENT);
	assert_int_equal(ivl_link_peers(l, ids, 8), 1);
	assert_int_equal(ids[0], 6);

	assert_int_equal(f.released, 0);
	ivl_link_free(l);
	assert_int_equal(f.released, 1);
	for (int i = 0; i < 4; i++)
		close(f.irq[i]);
	assert_int_equal(tu_count_fds(), before);
	free(base);
}

static void seam_raw_and_plain(void **state)
{
	struct fake f = {.position = 0};
	struct ivl_link *l;
	struct ivl__guest_dev d;
	uint16_t ids[4];
	void *base = aligned_alloc(4096, REGION);

	(void)state;
	assert_non_null(base);
	memset(base, 0, REGION);
	d = fake_dev(&f, base, 4);
	assert_int_equal(ivl__link_guest_new_with_regs(&l, &d, 1000), 0);
	assert_null(ivl_link_header(l));
	assert_int_equal(ivl_link_peers(l, ids, 4), 0);
	/* No peer set: any ID is ringable on the device's vectors. */
	assert_int_equal(ivl_link_peer_vectors(l, 1234), 4);
	assert_int_equal(ivl_link_ring(l, 1234, 3), 0);
	assert_int_equal(ivl_link_ring(l, 1234, 4), -ERANGE);
	assert_int_equal(f.doorbells[0], 1234u << 16 | 3);
	ivl_link_free(l);
	/* The region was not written to. */
	for (size_t i = 0; i < REGION; i++)
		assert_int_equal(((unsigned char *)base)[i], 0);

	/* ivshmem-plain: memory, no doorbell. */
	d = fake_dev(&f, base, 0);
	assert_int_equal(ivl__link_guest_new_with_regs(&l, &d, 1000), 0);
	assert_int_equal(ivl_link_ring(l, 1, 0), -ENOTSUP);
	ivl_link_free(l);

	/* IVPosition never valid: bounded, and the device is released. */
	f.position_reads_invalid = 1 << 30;
	f.released = 0;
	d = fake_dev(&f, base, 4);
	assert_int_equal(ivl__link_guest_new_with_regs(&l, &d, 100), -ETIMEDOUT);
	assert_int_equal(f.released, 1);
	/* A position beyond the ID space is a protocol error. */
	f.position_reads_invalid = 0;
	f.position = 70000;
	d = fake_dev(&f, base, 4);
	assert_int_equal(ivl__link_guest_new_with_regs(&l, &d, 100), -EPROTO);
	assert_int_equal(f.released, 2);
	free(base);
}

/* ---- a fake sysfs tree: the whole public path ------------------------------ */

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void fake_device(const char *root, const char *bdf, const char *device, bool msix,
			uint32_t position)
{
	char dir[512], p[600];
	uint8_t cfg[256] = {0}, bar0[4096] = {0};

	snprintf(dir, sizeof(dir), "%s/%s", root, bdf);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(p, sizeof(p), "%s/vendor", dir);
	write_file(p, "0x1af4\n", 7);
	snprintf(p, sizeof(p), "%s/device", dir);
	write_file(p, device, strlen(device));
	if (msix) {
		cfg[0x06] = 0x10; /* capability list */
		cfg[0x34] = 0x40;
		cfg[0x40] = 0x05; /* MSI, then MSI-X */
		cfg[0x41] = 0x50;
		cfg[0x50] = 0x11;
		cfg[0x51] = 0x00;
		cfg[0x52] = 0x03; /* table size 4 */
	}
	snprintf(p, sizeof(p), "%s/config", dir);
	write_file(p, cfg, sizeof(cfg));
	memcpy(bar0 + IVL_IVSHMEM_IVPOSITION, &position, 4);
	snprintf(p, sizeof(p), "%s/resource0", dir);
	write_file(p, bar0, sizeof(bar0));
	snprintf(p, sizeof(p), "%s/resource", dir);
	write_file(p, "0x00000000fe000000 0x00000000fe0000ff 0x0000000000040200\n", 57);
	snprintf(p, sizeof(p), "%s/resource2", dir);
	write_file(p, "", 0);
	assert_int_equal(truncate(p, REGION), 0);
}

static void fake_sysfs(void **state)
{
	const char *root = tu_path(tu_tmpdir(), "pci");
	char bdf[13], p[600];
	struct ivl_link_guest_opts o = {.device = "auto", .no_vfio = true, .timeout_ms = 500};
	struct ivl_link *l;
	uint32_t db;
	uint64_t size;
	int fd;

	(void)state;
	assert_int_equal(mkdir(root, 0700), 0);
	setenv("IVL_SYSFS_PCI", root, 1);
	assert_int_equal(ivl__guest_find(NULL, bdf), -ENODEV);
	assert_int_equal(ivl_link_guest_new(&l, &o), -ENODEV);
	fake_device(root, "0000:00:01.0", "0x1000\n", false, 0); /* not ivshmem */
	fake_device(root, "0000:00:05.0", "0x1110\n", true, 3);
	fake_device(root, "0000:00:04.0", "0x1110\n", false, 0); /* plain */
	assert_int_equal(ivl__guest_find("auto", bdf), 0);
	assert_string_equal(bdf, "0000:00:04.0"); /* the lowest */
	assert_int_equal(ivl__guest_find("00:05.0", bdf), 0);
	assert_int_equal(ivl__guest_find("0000:00:01.0", bdf), -ENODEV);
	assert_int_equal(ivl__guest_find("0000:00:09.0", bdf), -ENODEV);
	assert_int_equal(ivl__guest_find("nonsense", bdf), -EINVAL);

	/* The doorbell device through sysfs "BARs" (plain files here). */
	o.device = "0000:00:05.0";
	assert_int_equal(ivl_link_guest_new(&l, &o), 0);
	assert_int_equal(ivl_link_id(l), 3);
	assert_int_equal(ivl_link_vectors(l), 4);
	assert_non_null(ivl_link_region(l, &size));
	assert_true(size == REGION);
	assert_null(ivl_link_header(l)); /* a zero region is raw */
	assert_string_equal(ivl_link_guest_access(l), "sysfs");
	assert_int_equal(ivl_link_ring(l, 9, 2), 0);
	ivl_link_free(l);
	snprintf(p, sizeof(p), "%s/0000:00:05.0/resource0", root);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &db, 4, IVL_IVSHMEM_DOORBELL), 4);
	close(fd);
	assert_int_equal(db, 9u << 16 | 2);

	/* The plain device: memory works, ring does not. */
	o.device = "auto";
	assert_int_equal(ivl_link_guest_new(&l, &o), 0);
	assert_int_equal(ivl_link_ring(l, 1, 0), -ENOTSUP);
	ivl_link_free(l);

	/* No permission on a BAR. */
	if (geteuid() != 0) {
		snprintf(p, sizeof(p), "%s/0000:00:05.0/resource0", root);
		chmod(p, 0);
		o.device = "0000:00:05.0";
		assert_int_equal(ivl_link_guest_new(&l, &o), -EACCES);
	}
	assert_int_equal(ivl_link_guest_new(&l, NULL) <= 0, 1);
	if (l)
		ivl_link_free(l);

	/* The CLI over the same tree: --device and $IVLINK_DEVICE. */
	if (tu_cli_bin()) {
		char *out = NULL, *err = NULL;
		char *info[] = {
		    (char *)tu_cli_bin(), "--device", "0000:00:05.0", "info", "--json", NULL};
		char *ring[] = {(char *)tu_cli_bin(), "ring", "7", "1", NULL};
		char *bad[] = {(char *)tu_cli_bin(), "--device", "0000:00:09.0", "peers", NULL};

		if (geteuid() != 0)
			chmod(p, 0600);
		assert_int_equal(tu_run(info, 10000, &out, &err), 0);
		assert_non_null(strstr(out, "\"source\": \"device:0000:00:05.0\""));
		assert_non_null(strstr(out, "\"id\": 3"));
		assert_non_null(strstr(out, "\"region_size\": 65536"));
		assert_non_null(strstr(out, "\"access\": \"sysfs\""));
		free(out);
		free(err);
		setenv("IVLINK_DEVICE", "00:05.0", 1);
		assert_int_equal(tu_run(ring, 10000, &out, &err), 0);
		unsetenv("IVLINK_DEVICE");
		free(out);
		free(err);
		fd = open(p, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, &db, 4, IVL_IVSHMEM_DOORBELL), 4);
		close(fd);
		assert_int_equal(db, 7u << 16 | 1);
		assert_int_not_equal(tu_run(bad, 10000, &out, &err), 0);
		assert_non_null(strstr(err, "no ivshmem device"));
		free(out);
		free(err);
	}
	/* Bound to ivlink's kernel driver: its node is found through the
	 * misc class directory, and preferred; a missing node is an error,
	 * not a silent fallback to polling. */
	{
		char drv[600], node[256];

		snprintf(drv, sizeof(drv), "%s/drivers", root);
		assert_int_equal(mkdir(drv, 0700), 0);
		snprintf(drv, sizeof(drv), "%s/drivers/" IVL_DRV_NAME, root);
		assert_int_equal(mkdir(drv, 0700), 0);
		snprintf(p, sizeof(p), "%s/0000:00:05.0/driver", root);
		assert_int_equal(symlink(drv, p), 0);
		assert_int_equal(ivl__kdrv_node("0000:00:05.0", node, sizeof(node)), -ENODEV);
		o.device = "0000:00:05.0";
		o.no_vfio = false;
		assert_int_equal(ivl_link_guest_new(&l, &o), -ENODEV);
		snprintf(p, sizeof(p), "%s/0000:00:05.0/misc", root);
		assert_int_equal(mkdir(p, 0700), 0);
		snprintf(p, sizeof(p), "%s/0000:00:05.0/misc/" IVL_DRV_NODE_PREFIX "7", root);
		assert_int_equal(mkdir(p, 0700), 0);
		assert_int_equal(ivl__kdrv_node("0000:00:05.0", node, sizeof(node)), 0);
		assert_string_equal(node, "/dev/" IVL_DRV_NODE_PREFIX "7");
		assert_int_equal(ivl__kdrv_node("0000:00:05.0", node, 8), -ENAMETOOLONG);
		if (access(node, F_OK) != 0)
			assert_int_equal(ivl_link_guest_new(&l, &o), -ENOENT);
	}
	unsetenv("IVL_SYSFS_PCI");
}

/* Random garbage, many rounds: the scanner's view stays within bounds and
 * consistent with itself whatever the table says. */
static void scanner_random_garbage(void **state)
{
	struct ivl_shm_header hdr;
	struct ivl__guest_scan s;
	struct rec r;
	uint16_t ids[64];
	void *base = new_region(&hdr, 64, 8);
	uint32_t x = 12345;

	(void)state;
	assert_int_equal(ivl__guest_scan_init(&s, &hdr, 5), 0);
	for (int round = 0; round < 2000; round++) {
		unsigned char *t = (unsigned char *)base + hdr.peer_table_offset;
		int present = 0, n;

		/* Mostly plausible values, sometimes anything. */
		for (uint32_t i = 0; i < 64u * sizeof(struct ivl_shm_peer); i += 4) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			uint32_t v = round % 3 ? x % 4 : x;
			memcpy(t + i, &v, 4);
		}
		r.n = 0;
		ivl__guest_scan_run(&s, base, &hdr, rec_emit, &r);
		for (int i = 0; i < r.n && i < 32; i++)
			assert_int_not_equal(r.id[i], 5);
		for (uint32_t id = 0; id < 64; id++) {
			assert_true(ivl__guest_scan_vectors(&s, id) <= 8);
			present += id != 5 && (atomic_load(&s.snap[id]) & IVL__SCAN_PRESENT);
		}
		n = ivl__guest_scan_list(&s, ids, 64);
		assert_int_equal(n, present);
		for (int i = 1; i < n; i++)
			assert_true(ids[i - 1] < ids[i]);
	}
	ivl__guest_scan_fini(&s);
	free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bdf_parsing),
		cmocka_unit_test(scanner_hostile_table),
		cmocka_unit_test(scanner_random_garbage),
		cmocka_unit_test(seam_with_header),
		cmocka_unit_test(seam_raw_and_plain),
		cmocka_unit_test(fake_sysfs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
