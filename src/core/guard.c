/* SPDX-License-Identifier: MIT */
/*
 * Surviving a shrunk mapping.  A POSIX shm object or a file cannot be
 * sealed: any process that can open it may ftruncate() it, and the next
 * access of ours beyond the new end raises SIGBUS, which kills the process.
 * Wayland's wl_shm faces the same threat from its clients and answers it
 * with a SIGBUS handler; this is the same idea, written for ivlink:
 *
 * - every mapping of an object that is not sealed against shrinking is
 *   registered in a fixed table (no allocation, lock-free: the handler may
 *   run in any thread at any time);
 * - on SIGBUS inside a registered mapping, the handler maps private
 *   anonymous zero pages over the faulting page and everything after it up
 *   to the end of the mapping (MAP_FIXED; the pages before it still work),
 *   marks the mapping as lost and returns: the faulting access is retried
 *   and now reads zeros or writes to private memory;
 * - a SIGBUS anywhere else goes to the handler installed before ours, or,
 *   if there was none, kills the process as it would have.
 *
 * The library reports the loss with -EIO (ivl_region_check()); the handler
 * is installed at the first registration and stays for the process's life.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/internal.h"

#define GUARD_SLOTS 1024

struct guard_slot {
	atomic_uintptr_t base; /* 0: free */
	atomic_size_t size;
	atomic_int lost;
};

static struct guard_slot slots[GUARD_SLOTS];
static struct sigaction previous;
static uintptr_t page_mask;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int install_err;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	int saved = errno;
	size_t i;

	for (i = 0; i < GUARD_SLOTS; i++) {
		uintptr_t base = atomic_load_explicit(&slots[i].base, memory_order_acquire);
		size_t size = atomic_load_explicit(&slots[i].size, memory_order_relaxed);
		uintptr_t from;

		if (!base || a < base || a - base >= size)
			continue;
		from = a & page_mask;
		/* mmap() is a plain system call: safe in a signal handler. */
		if (mmap((void *)from, base + size - from, PROT_READ | PROT_WRITE,
			 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
			break;
		atomic_store_explicit(&slots[i].lost, 1, memory_order_release);
		errno = saved;
		return;
	}
	errno = saved;
	if (previous.sa_flags & SA_SIGINFO) {
		if (previous.sa_sigaction) {
			previous.sa_sigaction(sig, si, uc);
			return;
		}
	} else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
		previous.sa_handler(sig);
		return;
	}
	/* Nobody else wants it: die of it as without us (the access is
	 * retried on return and faults again with the default action). */
	signal(SIGBUS, SIG_DFL);
}

static void install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	page_mask = ~((uintptr_t)sysconf(_SC_PAGESIZE) - 1);
	if (sigaction(SIGBUS, &sa, &previous) < 0)
		install_err = -errno;
}

int ivl__guard_add(void *base, size_t size)
{
	size_t i;

	if (!base || !size)
		return -EINVAL;
	pthread_once(&once, install);
	if (install_err)
		return install_err;
	for (i = 0; i < GUARD_SLOTS; i++) {
		uintptr_t expect = 0;

		/* Publish size before base: the handler reads base first. */
		if (atomic_load_explicit(&slots[i].base, memory_order_relaxed))
			continue;
		atomic_store_explicit(&slots[i].size, size, memory_order_relaxed);
		atomic_store_explicit(&slots[i].lost, 0, memory_order_relaxed);
		if (atomic_compare_exchange_strong_explicit(&slots[i].base, &expect,
							    (uintptr_t)base, memory_order_release,
							    memory_order_relaxed))
			return (int)i;
	}
	ivl__err("more than %d unsealed mappings in this process: refusing one more "
		 "(a shrink of it could not be survived)", GUARD_SLOTS);
	return -ENOSPC;
}

bool ivl__guard_lost(int slot)
{
	if (slot < 0 || slot >= GUARD_SLOTS)
		return false;
	return atomic_load_explicit(&slots[slot].lost, memory_order_acquire) != 0;
}

void ivl__guard_del(int slot)
{
	if (slot < 0 || slot >= GUARD_SLOTS)
		return;
	atomic_store_explicit(&slots[slot].base, 0, memory_order_release);
}
