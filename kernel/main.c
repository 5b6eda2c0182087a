// SPDX-License-Identifier: GPL-2.0-only
/*
 * ivlink_ivshmem: a guest driver for QEMU's ivshmem PCI device (1af4:1110,
 * ivshmem-doorbell with MSI-X and ivshmem-plain without), docs/guest.md §6.
 *
 * This file: PCI probe and removal, the MSI-X interrupt handler, sysfs
 * attributes and the in-kernel API (ivlink_ivshmem.h).  The character
 * device is in fops.c.
 *
 * Nothing the device or a peer controls is trusted: IVPosition and the
 * shared memory are only ever reported, never used as an index or a size.
 */
#include <linux/io.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/xarray.h>

#include "ivshmem-internal.h"

#define IVL_BAR_REGS 0
#define IVL_BAR_SHM 2

static DEFINE_XARRAY_ALLOC(ivl_devices);
static struct page *ivl_dead_page;

unsigned long ivl_dead_pfn(void)
{
	return page_to_pfn(ivl_dead_page);
}

bool ivl_dead(struct ivl_ivshmem *d)
{
	return READ_ONCE(d->gone);
}

void ivl_ivshmem_release(struct kref *ref)
{
	struct ivl_ivshmem *d = container_of(ref, struct ivl_ivshmem, ref);

	if (d->shm)
		memunmap(d->shm);
	pci_dev_put(d->pdev);
	kfree(d);
}

/* ---- interrupts ---------------------------------------------------------- */

static irqreturn_t ivl_irq(int irq, void *data)
{
	struct ivl_vec *v = data;
	struct ivl_ivshmem *d = v->d;
	struct ivl_file *f;

	spin_lock(&d->irq_lock);
	list_for_each_entry(f, &d->files, node)
		f->pending |= BIT_ULL(v->index);
	if (v->efd)
		eventfd_signal(v->efd, 1);
	if (v->fn)
		v->fn(v->ctx, v->index);
	spin_unlock(&d->irq_lock);
	wake_up_interruptible(&d->wq);
	return IRQ_HANDLED;
}

static int ivl_setup_irqs(struct ivl_ivshmem *d)
{
	struct pci_dev *pdev = d->pdev;
	int n, i, ret;

	n = pci_msix_vec_count(pdev);
	if (n <= 0)
		return 0; /* ivshmem-plain: memory only */
	n = min(n, IVL_DRV_MAX_VECTORS);
	n = pci_alloc_irq_vectors(pdev, 1, n, PCI_IRQ_MSIX);
	if (n < 0)
		return n;
	for (i = 0; i < n; i++) {
		ret = request_irq(pci_irq_vector(pdev, i), ivl_irq, 0, d->name,
				  &d->vec[i]);
		if (ret)
			goto err_free;
	}
	d->nvec = n;
	/* Without Bus Master Enable QEMU drops the MSI-X writes. */
	pci_set_master(pdev);
	return 0;
err_free:
	while (i--)
		free_irq(pci_irq_vector(pdev, i), &d->vec[i]);
	pci_free_irq_vectors(pdev);
	return ret;
}

static void ivl_free_irqs(struct ivl_ivshmem *d)
{
	unsigned int i;

	for (i = 0; i < d->nvec; i++)
		free_irq(pci_irq_vector(d->pdev, i), &d->vec[i]);
	if (d->nvec)
		pci_free_irq_vectors(d->pdev);
}

/* ---- sysfs: /sys/class/misc/ivlink-ivshmemN/{ivposition,...} -------------- */

static struct ivl_ivshmem *ivl_from_dev(struct device *dev)
{
	struct miscdevice *m = dev_get_drvdata(dev);

	return container_of(m, struct ivl_ivshmem, misc);
}

static ssize_t ivposition_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n",
			  (int)ivl_ivshmem_position(ivl_from_dev(dev)));
}
static DEVICE_ATTR_RO(ivposition);

static ssize_t region_size_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n",
			  (unsigned long long)ivl_from_dev(dev)->shm_len);
}
static DEVICE_ATTR_RO(region_size);

static ssize_t vectors_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	return sysfs_emit(buf, "%u\n", ivl_from_dev(dev)->nvec);
}
static DEVICE_ATTR_RO(vectors);

static ssize_t revision_show(struct device *dev, struct device_attribute *attr,
			     char *buf)
{
	return sysfs_emit(buf, "%u\n", ivl_from_dev(dev)->revision);
}
static DEVICE_ATTR_RO(revision);

static struct attribute *ivl_attrs[] = {
	&dev_attr_ivposition.attr,
	&dev_attr_region_size.attr,
	&dev_attr_vectors.attr,
	&dev_attr_revision.attr,
	NULL,
};

static const struct attribute_group ivl_group = {
	.attrs = ivl_attrs,
};

const struct attribute_group *ivl_groups[] = {
	&ivl_group,
	NULL,
};

/* ---- PCI --------------------------------------------------------------- */

/*
 * User space may map the BAR0 page only when nothing else can live in it:
 * BAR0 starts the page and the rest of the page is reserved here, so no
 * other device's registers are exposed (and none is placed there later).
 */
static void ivl_claim_regs_page(struct ivl_ivshmem *d)
{
	if (!IS_ALIGNED(d->regs_start, PAGE_SIZE) || d->regs_len > PAGE_SIZE)
		return;
	if (d->regs_len < PAGE_SIZE) {
		d->regs_pad = request_mem_region(d->regs_start + d->regs_len,
						 PAGE_SIZE - d->regs_len,
						 d->name);
		if (!d->regs_pad)
			return;
	}
	d->regs_mmap = true;
}

/*
 * The auxiliary device "ivlink_ivshmem.region.<index>": in-kernel clients
 * (the virtio transport, the SDM driver) bind to it as auxiliary drivers,
 * so the driver core calls their remove() before this device goes away,
 * whether by unplug, unbind or module unload.  It holds a reference on
 * @d, dropped when its last user lets go of it.
 */
static void ivl_adev_release(struct device *dev)
{
	struct ivl_ivshmem *d = container_of(dev, struct ivl_ivshmem, adev.dev);

	kref_put(&d->ref, ivl_ivshmem_release);
}

static void ivl_adev_add(struct ivl_ivshmem *d)
{
	int ret;

	d->adev.name = "region";
	d->adev.id = d->index;
	d->adev.dev.parent = &d->pdev->dev;
	d->adev.dev.release = ivl_adev_release;
	kref_get(&d->ref);
	ret = auxiliary_device_init(&d->adev);
	if (ret) {
		kref_put(&d->ref, ivl_ivshmem_release);
		goto warn;
	}
	ret = auxiliary_device_add(&d->adev);
	if (ret) {
		auxiliary_device_uninit(&d->adev); /* drops the reference */
		goto warn;
	}
	d->adev_added = true;
	return;
warn:
	/* The character device works without it; only in-kernel clients
	 * cannot bind. */
	dev_warn(&d->pdev->dev, "%s: no auxiliary device for in-kernel clients (%d)\n",
		 d->name, ret);
}

static void ivl_adev_del(struct ivl_ivshmem *d)
{
	if (!d->adev_added)
		return;
	/* Unbinds the clients: their remove() runs now, with the device
	 * still fully working. */
	auxiliary_device_delete(&d->adev);
	auxiliary_device_uninit(&d->adev);
	d->adev_added = false;
}

struct ivl_ivshmem *ivl_ivshmem_from_aux(struct auxiliary_device *adev)
{
	return container_of(adev, struct ivl_ivshmem, adev);
}
EXPORT_SYMBOL_GPL(ivl_ivshmem_from_aux);

static int ivl_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct ivl_ivshmem *d;
	u32 index;
	int ret;

	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	kref_init(&d->ref);
	d->pdev = pci_dev_get(pdev);
	init_rwsem(&d->rw);
	spin_lock_init(&d->irq_lock);
	mutex_init(&d->files_mutex);
	INIT_LIST_HEAD(&d->files);
	init_waitqueue_head(&d->wq);
	for (index = 0; index < IVL_DRV_MAX_VECTORS; index++) {
		d->vec[index].d = d;
		d->vec[index].index = index;
	}
	d->revision = pdev->revision;

	ret = xa_alloc(&ivl_devices, &d->index, NULL, xa_limit_16b, GFP_KERNEL);
	if (ret)
		goto err_put;
	snprintf(d->name, sizeof(d->name), IVL_DRV_NODE_PREFIX "%u", d->index);

	ret = pci_enable_device_mem(pdev);
	if (ret)
		goto err_xa;
	ret = pci_request_regions(pdev, d->name);
	if (ret)
		goto err_disable;

	d->regs_start = pci_resource_start(pdev, IVL_BAR_REGS);
	d->regs_len = pci_resource_len(pdev, IVL_BAR_REGS);
	d->shm_start = pci_resource_start(pdev, IVL_BAR_SHM);
	d->shm_len = pci_resource_len(pdev, IVL_BAR_SHM);
	if (d->regs_len < IVL_IVSHMEM_DOORBELL + 4 || !d->shm_len ||
	    d->shm_len >= IVL_DRV_MMAP_REGS ||
	    !IS_ALIGNED(d->shm_start | d->shm_len, PAGE_SIZE)) {
		dev_err(&pdev->dev, "unexpected BARs (BAR0 %pa bytes, BAR2 %pa bytes)\n",
			&d->regs_len, &d->shm_len);
		ret = -ENODEV;
		goto err_regions;
	}
	d->regs = pci_iomap(pdev, IVL_BAR_REGS, 0);
	if (!d->regs) {
		ret = -ENOMEM;
		goto err_regions;
	}
	/* BAR2 is RAM on the host side: map it cacheable, like user space. */
	d->shm = memremap(d->shm_start, d->shm_len, MEMREMAP_WB);
	if (!d->shm) {
		ret = -ENOMEM;
		goto err_iounmap;
	}
	ivl_claim_regs_page(d);

	ret = ivl_setup_irqs(d);
	if (ret) {
		dev_err(&pdev->dev, "MSI-X setup failed: %d\n", ret);
		goto err_pad;
	}

	d->misc.minor = MISC_DYNAMIC_MINOR;
	d->misc.name = d->name;
	d->misc.fops = &ivl_fops;
	d->misc.parent = &pdev->dev;
	d->misc.groups = ivl_groups;
	d->misc.mode = 0600;
	pci_set_drvdata(pdev, d);
	ret = misc_register(&d->misc);
	if (ret)
		goto err_irqs;
	d->registered = true;
	xa_store(&ivl_devices, d->index, d, GFP_KERNEL);
	ivl_adev_add(d);
	dev_info(&pdev->dev, "%s: %pa bytes of shared memory, %u vectors, IVPosition %d%s\n",
		 d->name, &d->shm_len, d->nvec, (int)ivl_ivshmem_position(d),
		 d->regs_mmap ? "" : ", BAR0 not mappable");
	return 0;

err_irqs:
	ivl_free_irqs(d);
	pci_clear_master(pdev);
err_pad:
	if (d->regs_pad)
		release_mem_region(d->regs_pad->start, resource_size(d->regs_pad));
err_iounmap:
	pci_iounmap(pdev, d->regs);
	d->regs = NULL;
err_regions:
	pci_release_regions(pdev);
err_disable:
	pci_disable_device(pdev);
err_xa:
	xa_erase(&ivl_devices, d->index);
err_put:
	kref_put(&d->ref, ivl_ivshmem_release);
	return ret;
}

static void ivl_remove(struct pci_dev *pdev)
{
	struct ivl_ivshmem *d = pci_get_drvdata(pdev);
	struct ivl_file *f;
	unsigned int i;

	ivl_adev_del(d);
	xa_erase(&ivl_devices, d->index);
	/* No fault maps a BAR page and no ioctl touches the device after
	 * this, and existing mappings fault again, onto the dead page: all
	 * done before anyone can see @gone (read, poll). */
	down_write(&d->rw);
	WRITE_ONCE(d->dead, true);
	mutex_lock(&d->files_mutex);
	list_for_each_entry(f, &d->files, node)
		unmap_mapping_range(f->filp->f_mapping, 0, 0, 1);
	mutex_unlock(&d->files_mutex);
	up_write(&d->rw);
	WRITE_ONCE(d->gone, true);
	/* ring() from any context sees @dead within a grace period. */
	synchronize_rcu();

	misc_deregister(&d->misc);
	ivl_free_irqs(d);

	spin_lock_irq(&d->irq_lock);
	for (i = 0; i < IVL_DRV_MAX_VECTORS; i++) {
		if (d->vec[i].efd)
			eventfd_ctx_put(d->vec[i].efd);
		d->vec[i].efd = NULL;
		d->vec[i].owner = NULL;
		d->vec[i].fn = NULL;
	}
	spin_unlock_irq(&d->irq_lock);
	wake_up_interruptible_all(&d->wq);

	pci_clear_master(pdev);
	if (d->regs_pad)
		release_mem_region(d->regs_pad->start, resource_size(d->regs_pad));
	pci_iounmap(pdev, d->regs);
	d->regs = NULL;
	pci_release_regions(pdev);
	pci_disable_device(pdev);
	dev_info(&pdev->dev, "%s removed\n", d->name);
	kref_put(&d->ref, ivl_ivshmem_release);
}

static const struct pci_device_id ivl_ids[] = {
	{ PCI_DEVICE(IVL_IVSHMEM_VENDOR_ID, IVL_IVSHMEM_DEVICE_ID) },
	{ 0 }
};
MODULE_DEVICE_TABLE(pci, ivl_ids);

static struct pci_driver ivl_driver = {
	.name = IVL_DRV_NAME,
	.id_table = ivl_ids,
	.probe = ivl_probe,
	.remove = ivl_remove,
};

/* ---- in-kernel API ------------------------------------------------------ */

int ivl_ring(struct ivl_ivshmem *d, u32 peer, u32 vector)
{
	int ret = 0;

	rcu_read_lock();
	if (READ_ONCE(d->dead))
		ret = -ENODEV;
	else
		iowrite32(IVL_IVSHMEM_DOORBELL_VALUE(peer, vector), d->regs + IVL_IVSHMEM_DOORBELL);
	rcu_read_unlock();
	return ret;
}

struct ivl_ivshmem *ivl_ivshmem_get(unsigned int index)
{
	struct ivl_ivshmem *d;

	xa_lock(&ivl_devices);
	d = xa_load(&ivl_devices, index);
	if (d && (READ_ONCE(d->dead) || !kref_get_unless_zero(&d->ref)))
		d = NULL;
	xa_unlock(&ivl_devices);
	return d;
}
EXPORT_SYMBOL_GPL(ivl_ivshmem_get);

void ivl_ivshmem_put(struct ivl_ivshmem *d)
{
	if (d)
		kref_put(&d->ref, ivl_ivshmem_release);
}
EXPORT_SYMBOL_GPL(ivl_ivshmem_put);

bool ivl_ivshmem_alive(struct ivl_ivshmem *d)
{
	return !ivl_dead(d);
}
EXPORT_SYMBOL_GPL(ivl_ivshmem_alive);

void *ivl_ivshmem_region(struct ivl_ivshmem *d, u64 *size)
{
	if (size)
		*size = d->shm_len;
	return d->shm;
}
EXPORT_SYMBOL_GPL(ivl_ivshmem_region);

u32 ivl_ivshmem_position(struct ivl_ivshmem *d)
{
	u32 pos = IVL_DRV_NO_POSITION;

	rcu_read_lock();
	if (!READ_ONCE(d->dead))
		pos = ioread32(d->regs + IVL_IVSHMEM_IVPOSITION);
	rcu_read_unlock();
	return pos;
}
EXPORT_SYMBOL_GPL(ivl_ivshmem_position);

unsigned int ivl_ivshmem_vectors(struct ivl_ivshmem *d)
{
	return d->nvec;
}
EXPORT_SYMBOL_GPL(ivl_ivshmem_vectors);

int ivl_ivshmem_request_vector(struct ivl_ivshmem *d, unsigned int vector,
			       ivl_ivshmem_handler_t fn, void *ctx)
{
	int ret = 0;

	if (!fn || vector >= d->nvec)
		return -EINVAL;
	down_read(&d->rw);
	spin_lock_irq(&d->irq_lock);
	if (d->dead) {
		ret = -ENODEV;
	} else if (d->vec[vector].fn) {
		ret = -EBUSY;
	} else {
		d->vec[vector].ctx = ctx;
		d->vec[vector].fn = fn;
	}
	spin_unlock_irq(&d->irq_lock);
	up_read(&d->rw);
	return ret;
}
EXPORT_SYMBOL_GPL(ivl_ivshmem_request_vector);

void ivl_ivshmem_free_vector(struct ivl_ivshmem *d, unsigned int vector)
{
	if (vector >= d->nvec)
		return;
	spin_lock_irq(&d->irq_lock);
	d->vec[vector].fn = NULL;
	d->vec[vector].ctx = NULL;
	spin_unlock_irq(&d->irq_lock);
	/* The handler runs under irq_lock: it is done once we got the lock,
	 * and it reads fn afresh the next time. */
}
EXPORT_SYMBOL_GPL(ivl_ivshmem_free_vector);

int ivl_ivshmem_ring(struct ivl_ivshmem *d, u32 peer, u32 vector)
{
	if (peer > 0xffff || vector > 0xffff)
		return -EINVAL;
	if (!d->nvec)
		return -EOPNOTSUPP;
	return ivl_ring(d, peer, vector);
}
EXPORT_SYMBOL_GPL(ivl_ivshmem_ring);

/* ---- module ------------------------------------------------------------- */

static int __init ivl_init(void)
{
	int ret;

	/* All-ones, like a PCI device that is gone. */
	ivl_dead_page = alloc_page(GFP_KERNEL);
	if (!ivl_dead_page)
		return -ENOMEM;
	memset(page_address(ivl_dead_page), 0xff, PAGE_SIZE);
	ret = pci_register_driver(&ivl_driver);
	if (ret)
		__free_page(ivl_dead_page);
	return ret;
}

static void __exit ivl_exit(void)
{
	pci_unregister_driver(&ivl_driver);
	/* No mapping is left: each holds a file, which holds this module. */
	__free_page(ivl_dead_page);
}

module_init(ivl_init);
module_exit(ivl_exit);

MODULE_DESCRIPTION("ivlink: guest driver for the ivshmem PCI device");
MODULE_LICENSE("GPL");
MODULE_VERSION("0.1");
