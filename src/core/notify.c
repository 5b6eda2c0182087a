/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <sys/eventfd.h>

#include <ivlink/notify.h>

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
	uint64_t v, total = 0;
	ssize_t n;

	for (;;) {
		n = read(fd, &v, sizeof(v));
		if (n == sizeof(v)) {
			total = (total + v < total) ? UINT64_MAX : total + v;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		return n < 0 ? -errno : -EIO;
	}
	if (count)
		*count = total;
	return total ? 1 : 0;
}
