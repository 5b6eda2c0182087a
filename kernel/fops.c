// SPDX-License-Identifier: GPL-2.0-only
/*
 * ivlink_ivshmem: the character device /dev/ivlink-ivshmemN, whose ABI is
 * include/ivlink/uapi/ivshmem-drv.h (docs/guest.md §6).
 *
 * Mappings are filled at fault time, one PFN per page, so a removal only
 * has to zap them: a later fault maps the all-ones dead page instead of
 * the vanished BAR (the process sees a device that reads ~0, as on real
 * hardware, and its calls fail with ENODEV; it gets no SIGBUS).
 */
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#include "ivshmem-internal.h"

#define IVL_REGS_PGOFF (IVL_DRV_MMAP_REGS >> PAGE_SHIFT)

static int ivl_open(struct inode *inode, struct file *filp)
{
	/* misc_open() holds misc_mtx: the removal cannot deregister (and
	 * drop its reference) while we take ours. */
	struct miscdevice *m = filp->private_data;
	struct ivl_ivshmem *d = container_of(m, struct ivl_ivshmem, misc);
	struct ivl_file *f;

	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	f->d = d;
	f->filp = filp;
	kref_get(&d->ref);
	mutex_lock(&d->files_mutex);
	spin_lock_irq(&d->irq_lock);
	list_add_tail(&f->node, &d->files);
	spin_unlock_irq(&d->irq_lock);
	mutex_unlock(&d->files_mutex);
	filp->private_data = f;
	return nonseekable_open(inode, filp);
}

static int ivl_release(struct inode *inode, struct file *filp)
{
	struct ivl_file *f = filp->private_data;
	struct ivl_ivshmem *d = f->d;
	struct eventfd_ctx *put[IVL_DRV_MAX_VECTORS];
	unsigned int i, n = 0;

	mutex_lock(&d->files_mutex);
	spin_lock_irq(&d->irq_lock);
	list_del(&f->node);
	for (i = 0; i < IVL_DRV_MAX_VECTORS; i++) {
		if (d->vec[i].owner != filp)
			continue;
		put[n++] = d->vec[i].efd;
		d->vec[i].efd = NULL;
		d->vec[i].owner = NULL;
	}
	spin_unlock_irq(&d->irq_lock);
	mutex_unlock(&d->files_mutex);
	while (n--)
		eventfd_ctx_put(put[n]);
	kfree(f);
	kref_put(&d->ref, ivl_ivshmem_release);
	return 0;
}

static ssize_t ivl_read(struct file *filp, char __user *buf, size_t len,
			loff_t *ppos)
{
	struct ivl_file *f = filp->private_data;
	struct ivl_ivshmem *d = f->d;
	u64 mask;
	int ret;

	if (len < sizeof(mask))
		return -EINVAL;
	for (;;) {
		spin_lock_irq(&d->irq_lock);
		mask = f->pending;
		f->pending = 0;
		spin_unlock_irq(&d->irq_lock);
		if (mask)
			break;
		if (ivl_dead(d))
			return -ENODEV;
		if (filp->f_flags & O_NONBLOCK)
			return -EAGAIN;
		ret = wait_event_interruptible(d->wq, READ_ONCE(f->pending) ||
					       ivl_dead(d));
		if (ret)
			return ret;
	}
	if (copy_to_user(buf, &mask, sizeof(mask))) {
		/* Not lost: give the bits back. */
		spin_lock_irq(&d->irq_lock);
		f->pending |= mask;
		spin_unlock_irq(&d->irq_lock);
		return -EFAULT;
	}
	return sizeof(mask);
}

static __poll_t ivl_poll(struct file *filp, poll_table *wait)
{
	struct ivl_file *f = filp->private_data;
	struct ivl_ivshmem *d = f->d;
	__poll_t mask = 0;

	poll_wait(filp, &d->wq, wait);
	if (READ_ONCE(f->pending))
		mask |= EPOLLIN | EPOLLRDNORM;
	if (ivl_dead(d))
		mask |= EPOLLHUP | EPOLLERR;
	return mask;
}

static long ivl_get_info(struct ivl_ivshmem *d, void __user *arg)
{
	struct ivl_drv_info info;
	u32 argsz;

	if (get_user(argsz, (u32 __user *)arg))
		return -EFAULT;
	if (argsz < sizeof(info))
		return -EINVAL;
	memset(&info, 0, sizeof(info));
	info.argsz = sizeof(info);
	info.abi_version = IVL_DRV_ABI_VERSION;
	info.flags = (d->nvec ? IVL_DRV_INFO_DOORBELL : 0) |
		     (d->regs_mmap ? IVL_DRV_INFO_REGS_MMAP : 0);
	info.ivposition = ivl_ivshmem_position(d);
	info.region_size = d->shm_len;
	info.vectors = d->nvec;
	info.revision = d->revision;
	info.regs_offset = 0; /* regs_mmap: BAR0 starts its page */
	return copy_to_user(arg, &info, sizeof(info)) ? -EFAULT : 0;
}

static long ivl_set_eventfd(struct file *filp, struct ivl_ivshmem *d,
			    void __user *arg)
{
	struct eventfd_ctx *efd = NULL, *old = NULL;
	struct ivl_drv_eventfd req;
	struct ivl_vec *v;
	long ret = 0;

	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;
	if (req.vector >= d->nvec || req.fd < -1)
		return -EINVAL;
	if (req.fd >= 0) {
		efd = eventfd_ctx_fdget(req.fd);
		if (IS_ERR(efd))
			return PTR_ERR(efd);
	}
	v = &d->vec[req.vector];
	spin_lock_irq(&d->irq_lock);
	if (v->owner && v->owner != filp) {
		ret = -EBUSY;
	} else {
		old = v->efd;
		v->efd = efd;
		v->owner = efd ? filp : NULL;
		efd = NULL;
	}
	spin_unlock_irq(&d->irq_lock);
	if (efd)
		eventfd_ctx_put(efd);
	if (old)
		eventfd_ctx_put(old);
	return ret;
}

static long ivl_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct ivl_file *f = filp->private_data;
	struct ivl_ivshmem *d = f->d;
	void __user *uarg = (void __user *)arg;
	struct ivl_drv_ring ring;
	long ret;

	down_read(&d->rw);
	if (d->dead) {
		ret = -ENODEV;
		goto out;
	}
	switch (cmd) {
	case IVL_DRV_GET_INFO:
		ret = ivl_get_info(d, uarg);
		break;
	case IVL_DRV_SET_EVENTFD:
		ret = ivl_set_eventfd(filp, d, uarg);
		break;
	case IVL_DRV_RING:
		if (copy_from_user(&ring, uarg, sizeof(ring))) {
			ret = -EFAULT;
		} else if (!d->nvec) {
			ret = -EOPNOTSUPP;
		} else if (ring.peer > 0xffff || ring.vector > 0xffff) {
			ret = -EINVAL;
		} else {
			ret = ivl_ring(d, ring.peer, ring.vector);
		}
		break;
	default:
		ret = -ENOTTY;
	}
out:
	up_read(&d->rw);
	return ret;
}

static vm_fault_t ivl_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct ivl_file *f = vma->vm_private_data;
	struct ivl_ivshmem *d = f->d;
	unsigned long pfn;
	vm_fault_t ret;

	down_read(&d->rw);
	if (d->dead)
		pfn = ivl_dead_pfn();
	else if (vmf->pgoff == IVL_REGS_PGOFF && d->regs_mmap)
		pfn = d->regs_start >> PAGE_SHIFT;
	else if (vmf->pgoff < (d->shm_len >> PAGE_SHIFT))
		pfn = (d->shm_start >> PAGE_SHIFT) + vmf->pgoff;
	else
		pfn = 0;
	ret = pfn ? vmf_insert_pfn(vma, vmf->address, pfn) : VM_FAULT_SIGBUS;
	up_read(&d->rw);
	return ret;
}

static const struct vm_operations_struct ivl_vm_ops = {
	.fault = ivl_fault,
};

static int ivl_mmap(struct file *filp, struct vm_area_struct *vma)
{
	struct ivl_file *f = filp->private_data;
	struct ivl_ivshmem *d = f->d;
	unsigned long pages = vma_pages(vma);
	unsigned long shm_pages = d->shm_len >> PAGE_SHIFT;
	int ret = 0;

	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	down_read(&d->rw);
	if (d->dead) {
		ret = -ENODEV;
	} else if (vma->vm_pgoff == IVL_REGS_PGOFF) {
		if (!d->regs_mmap || pages != 1)
			ret = -EINVAL;
		else
			vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
	} else if (vma->vm_pgoff >= shm_pages ||
		   pages > shm_pages - vma->vm_pgoff) {
		ret = -EINVAL;
	}
	up_read(&d->rw);
	if (ret)
		return ret;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
#else
	vma->vm_flags |= VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
#endif
	vma->vm_private_data = f;
	vma->vm_ops = &ivl_vm_ops;
	return 0;
}

const struct file_operations ivl_fops = {
	.owner = THIS_MODULE,
	.open = ivl_open,
	.release = ivl_release,
	.read = ivl_read,
	.poll = ivl_poll,
	.unlocked_ioctl = ivl_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = ivl_mmap,
	.llseek = no_llseek,
};
