/* SPDX-License-Identifier: MIT */
/* ivlink: shared memory, doorbells, signals and virtqueues between VMs,
 * processes and simulated processors.  The umbrella header: one header per
 * concept, each of which may also be included alone (docs/api.md). */
#ifndef IVLINK_IVLINK_H
#define IVLINK_IVLINK_H

#include <ivlink/version.h>
#include <ivlink/log.h>
/* Wire and shared-memory formats */
#include <ivlink/proto/ivshmem.h>
#include <ivlink/proto/sdm.h>
#include <ivlink/proto/shm.h>
#include <ivlink/proto/transport.h>
/* core */
#include <ivlink/region.h>
#include <ivlink/eventfd.h>
#include <ivlink/coalesce.h>
/* ivshmem */
#include <ivlink/msg.h>
#include <ivlink/session.h>
#include <ivlink/shm.h>
#include <ivlink/server.h>
#include <ivlink/ivshmem.h>
#include <ivlink/plain.h>
/* link */
#include <ivlink/link.h>
#include <ivlink/hub.h>
#include <ivlink/link-device.h>
/* signals and virtio */
#include <ivlink/sdm.h>
#include <ivlink/virtq.h>
#include <ivlink/msi.h>
#include <ivlink/mmio.h>
#include <ivlink/transport.h>

#endif
