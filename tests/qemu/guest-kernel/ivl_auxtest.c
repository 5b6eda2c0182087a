// SPDX-License-Identifier: GPL-2.0-only
/*
 * A test client of ivlink_ivshmem.ko's in-kernel API, bound as an
 * auxiliary driver (run-kernel-test.sh, case unplug): at probe it takes
 * over vector 0 with a handler that counts interrupts; at remove it checks
 * that the device still works, gives the vector back and counts.  The
 * counters are read-only module parameters under
 * /sys/module/ivl_auxtest/parameters/.
 */
#include <linux/auxiliary_bus.h>
#include <linux/module.h>

#include "ivlink_ivshmem.h"

static unsigned int probed, removed, irqs, alive_at_remove, vectors;
module_param(probed, uint, 0444);
module_param(removed, uint, 0444);
module_param(irqs, uint, 0444);
module_param(alive_at_remove, uint, 0444);
module_param(vectors, uint, 0444);

static void ivl_auxtest_irq(void *ctx, unsigned int vector)
{
	WRITE_ONCE(irqs, READ_ONCE(irqs) + 1);
}

static int ivl_auxtest_probe(struct auxiliary_device *adev, const struct auxiliary_device_id *id)
{
	struct ivl_ivshmem *d = ivl_ivshmem_from_aux(adev);
	u64 size;
	int ret;

	vectors = ivl_ivshmem_vectors(d);
	ret = ivl_ivshmem_request_vector(d, 0, ivl_auxtest_irq, NULL);
	if (ret) {
		dev_err(&adev->dev, "vector 0: %d\n", ret);
		return ret;
	}
	ivl_ivshmem_region(d, &size);
	probed++;
	dev_info(&adev->dev, "ivl_auxtest: probe %u: %llu bytes, %u vectors, IVPosition %u\n",
		 probed, size, vectors, ivl_ivshmem_position(d));
	return 0;
}

static void ivl_auxtest_remove(struct auxiliary_device *adev)
{
	struct ivl_ivshmem *d = ivl_ivshmem_from_aux(adev);

	if (ivl_ivshmem_alive(d) && ivl_ivshmem_position(d) != 0xffffffffu)
		alive_at_remove++;
	ivl_ivshmem_free_vector(d, 0);
	removed++;
	dev_info(&adev->dev, "ivl_auxtest: remove %u (alive %u, %u interrupts)\n", removed,
		 alive_at_remove, READ_ONCE(irqs));
}

static const struct auxiliary_device_id ivl_auxtest_ids[] = {
	{ .name = IVL_IVSHMEM_AUX_NAME },
	{}
};
MODULE_DEVICE_TABLE(auxiliary, ivl_auxtest_ids);

static struct auxiliary_driver ivl_auxtest_driver = {
	.probe = ivl_auxtest_probe,
	.remove = ivl_auxtest_remove,
	.id_table = ivl_auxtest_ids,
};
module_auxiliary_driver(ivl_auxtest_driver);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ivlink test: an in-kernel client of ivlink_ivshmem");
