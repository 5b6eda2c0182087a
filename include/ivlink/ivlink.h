/* SPDX-License-Identifier: MIT */
/* ivlink: shared memory, doorbells, signals and virtqueues between VMs,
 * processes and simulated processors.  The umbrella header. */
#ifndef IVLINK_IVLINK_H
#define IVLINK_IVLINK_H

#include <ivlink/version.h>
#include <ivlink/log.h>
#include <ivlink/proto.h>
#include <ivlink/region.h>
#include <ivlink/notify.h>
#include <ivlink/ivshmem.h>
#include <ivlink/ivshmem-dev.h>
#include <ivlink/plain.h>
#include <ivlink/link.h>
#include <ivlink/sdm.h>
#include <ivlink/virtio.h>
#include <ivlink/transport.h>

#endif
