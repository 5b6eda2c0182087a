/* SPDX-License-Identifier: MIT */
/*
 * How a VMM, an emulator or a processor simulator embeds the ivshmem device
 * model (docs/device.md).  Nothing is trapped here: the "guest" is a few
 * function calls that do what a guest driver's MMIO accesses would, routed
 * to the model as a VMM's MMIO handler would route them.
 *
 *   ivlink-server -S /tmp/vmm.sock -l 1M -n 2 &
 *   ./vmm-model /tmp/vmm.sock          # MSI-X, as QEMU's ivshmem-doorbell
 *   ./vmm-model /tmp/vmm.sock pin      # the pin-based (INTx) device
 *
 * The guest reads IVPosition, rings its own vector 1 through the Doorbell
 * register, gets the interrupt back, acknowledges it (pin mode), and rings
 * a peer that does not exist, which the device drops and counts.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <ivlink/ivlink.h>

struct vm {
	struct ivl_ivshmem *dev;
	int msi_vector; /* last MSI-X vector raised, -1: none */
	int pin;	/* the INTx line */
};

/* The device's interrupt output.  Called with the device's lock held: a VMM
 * injects the interrupt here (KVM_IRQFD, KVM_SIGNAL_MSI, its own interrupt
 * controller model) and must not touch the device's registers. */
static void on_irq(void *ctx, enum ivl_ivshmem_irq_kind kind, unsigned arg)
{
	struct vm *vm = ctx;

	if (kind == IVL_IVSHMEM_IRQ_MSI) {
		printf("vmm: inject MSI-X vector %u\n", arg);
		vm->msi_vector = (int)arg;
	} else {
		printf("vmm: INTx line %s\n", arg ? "raised" : "lowered");
		vm->pin = (int)arg;
	}
}

/* The guest's MMIO accesses to BAR0, as a VMM's exit handler forwards them. */
static uint32_t guest_readl(struct vm *vm, unsigned off)
{
	return (uint32_t)ivl_ivshmem_read(vm->dev, off, 4);
}

static void guest_writel(struct vm *vm, unsigned off, uint32_t val)
{
	ivl_ivshmem_write(vm->dev, off, val, 4);
}

/* The device side of the loop: the server connection's doorbells go to the
 * model.  A VMM polls ivl_link_get_fd() in its own loop instead. */
static int run_device(struct ivl_link *l, struct ivl_link_device *ld, bool (*done)(struct vm *),
		      struct vm *vm)
{
	struct ivl_link_event ev[8];

	for (int rounds = 0; rounds < 50 && !done(vm); rounds++) {
		int n = ivl_link_wait(l, ev, 8, 100);

		if (n < 0)
			return n;
		ivl_link_device_deliver(ld, ev, (size_t)n);
	}
	return done(vm) ? 0 : -ETIMEDOUT;
}

static bool got_msi(struct vm *vm)
{
	return vm->msi_vector >= 0;
}

static bool got_pin(struct vm *vm)
{
	return vm->pin;
}

int main(int argc, char **argv)
{
	struct ivl_link_host_opts ho = {0};
	struct ivl_link_device_opts dopts = {.irq = on_irq};
	struct ivl_ivshmem_stats st;
	struct vm vm = {.msi_vector = -1};
	struct ivl_link_device *ld = NULL;
	struct ivl_link *l = NULL;
	bool pin = argc > 2 && !strcmp(argv[2], "pin");
	uint64_t bar2_size;
	uint32_t id;
	char *bar2;
	int r, rc = 1;

	if (argc < 2) {
		fprintf(stderr, "usage: vmm-model SOCKET [pin]\n");
		return 2;
	}
	/* The device's server connection (QEMU's -chardev socket). */
	ho.socket_path = argv[1];
	r = ivl_link_host_new(&l, &ho);
	if (r < 0) {
		fprintf(stderr, "vmm-model: %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	dopts.mode = pin ? IVL_IVSHMEM_PIN : IVL_IVSHMEM_MSI;
	dopts.ctx = &vm;
	r = ivl_link_device_new(&ld, l, &dopts);
	if (r < 0) {
		fprintf(stderr, "vmm-model: device: %s\n", strerror(-r));
		goto out;
	}
	vm.dev = ivl_link_device_model(ld);
	/* BAR2: a VMM maps this memory into the guest's physical space. */
	bar2 = ivl_ivshmem_bar2(vm.dev, &bar2_size);
	printf("vmm: BAR2 %llu bytes, %u vectors, %s interrupts\n", (unsigned long long)bar2_size,
	       ivl_ivshmem_vectors(vm.dev), pin ? "pin" : "MSI-X");

	/* ---- the guest driver's probe ---- */
	if (pin)
		guest_writel(&vm, IVL_IVSHMEM_INTRMASK, 1); /* bit 0 enables the line */
	else
		ivl_ivshmem_set_msix(vm.dev, true); /* its MSI-X Enable bit */
	id = guest_readl(&vm, IVL_IVSHMEM_IVPOSITION);
	printf("guest: IVPosition %u\n", id);
	/* The end of BAR2 is past any ivlink header: a guest's scratch area. */
	snprintf(bar2 + bar2_size - 64, 64, "hello from peer %u", id);

	/* ---- ring my own vector 1 and take the interrupt ---- */
	guest_writel(&vm, IVL_IVSHMEM_DOORBELL, id << 16 | (pin ? 0 : 1));
	r = run_device(l, ld, pin ? got_pin : got_msi, &vm);
	if (r < 0) {
		fprintf(stderr, "vmm-model: no interrupt: %s\n", strerror(-r));
		goto out;
	}
	if (pin) {
		/* The guest's interrupt handler: reading IntrStatus acknowledges
		 * and the level-triggered line drops. */
		printf("guest: IntrStatus 0x%x\n", guest_readl(&vm, IVL_IVSHMEM_INTRSTATUS));
	}
	printf("guest: read back \"%s\"\n", bar2 + bar2_size - 64);

	/* ---- a doorbell nobody can take ---- */
	guest_writel(&vm, IVL_IVSHMEM_DOORBELL, 999u << 16);
	ivl_ivshmem_get_stats(vm.dev, &st);
	printf("device: %llu rings, %llu dropped (absent peer), %llu MSI-X, %llu INTx raises\n",
	       (unsigned long long)st.rings, (unsigned long long)st.drop_peer,
	       (unsigned long long)st.msi_raised, (unsigned long long)st.pin_raised);
	rc = st.rings == 1 && st.drop_peer == 1 && !vm.pin ? 0 : 1;
out:
	ivl_link_device_free(ld);
	ivl_link_free(l);
	return rc;
}
