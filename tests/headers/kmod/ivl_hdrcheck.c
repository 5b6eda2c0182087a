// SPDX-License-Identifier: GPL-2.0-only
/*
 * Not a driver: a module that only includes ivlink's wire-format headers,
 * so that building it against a kernel's headers proves they compile in
 * the kernel (tests/headers/check-kernel.sh).  It also uses a few of their
 * definitions so that the compiler sees them.
 */
#include <linux/module.h>
#include <ivlink/proto/common.h>
#include <ivlink/proto/ivshmem.h>
#include <ivlink/proto/sdm.h>
#include <ivlink/proto/shm.h>
#include <ivlink/proto/transport.h>
#include <ivlink/uapi/ivshmem-drv.h>

static int __init ivl_hdrcheck_init(void)
{
	struct ivl_shm_header h = { .magic = cpu_to_le64(IVL_SHM_MAGIC) };
	struct ivl_transport_ctl c = { .version = cpu_to_le16(IVL_TRANSPORT_VERSION),
				       .magic = IVL_TRANSPORT_MAGIC };
	struct ivl_sdm_frame_hdr f = { .type = IVL_SDM_F_SIGNAL, .len = cpu_to_le16(IVL_SDM_SIGNAL_LEN) };

	pr_info("ivl_hdrcheck: %llu %u %zu %llu\n", le64_to_cpu(h.magic), le16_to_cpu(c.version) + c.magic,
		sizeof(struct ivl_drv_info), ivl_shm_header_size(64));
	pr_info("ivl_hdrcheck: sdm %u %u %llu\n", f.type, le16_to_cpu(f.len),
		(unsigned long long)IVL_SDM_LINK_AREA_SIZE(1, 16));
	return 0;
}
module_init(ivl_hdrcheck_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ivlink header check (not for loading)");
