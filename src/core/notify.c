/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <sys/eventfd.h>

#include <ivlink/coalesce.h>
#include <ivlink/eventfd.h>

#include "core/internal.h"

IVL_EXPORT int ivl_eventfd_new(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	return fd < 0 ? -errno : fd;
}

IVL_EXPORT int ivl_eventfd_ring(int fd)
{
	uint64_t one = 1;
	ssize_t n;

	do {
		n = write(fd, &one, sizeof(one));
	} while (n < 0 && errno == EINTR);
	if (n == sizeof(one))
		return 0;
	if (n < 0 && errno == EAGAIN) /* counter saturated: already pending */
		return 0;
	return n < 0 ? -errno : -EIO;
}

IVL_EXPORT int ivl_eventfd_drain(int fd, uint64_t *count)
{
	uint64_t v = 0;
	ssize_t n;

	/* One read takes the whole counter and zeroes it (not a semaphore
	 * eventfd); a write after it keeps the fd readable for next time. */
	do {
		n = read(fd, &v, sizeof(v));
	} while (n < 0 && errno == EINTR);
	if (n < 0 && errno != EAGAIN)
		return -errno;
	if (n >= 0 && n != sizeof(v))
		return -EIO;
	if (n < 0)
		v = 0;
	if (count)
		*count = v;
	return v ? 1 : 0;
}
