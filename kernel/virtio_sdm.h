/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio_sdm's mailbox controller, for in-kernel clients (docs/guest-sdm.md
 * "Mailbox channels").
 *
 * Channels of the SDM device /dev/sdmN:
 *   on a master: 0 broadcast (every registered slave), k = slave k for
 *                k in 1..mbox_slaves (a module parameter, default 16);
 *   on a slave:  0 the master.
 * The client binds with mbox_bind_client(virtio_sdm_mbox_chan(N, ch), cl)
 * and releases with mbox_free_channel(); it must release before the device
 * goes away (module unload, device destroyed), as with any controller.
 *
 * mbox_send_message(chan, msg): msg is a struct virtio_sdm_msg, read in the
 * call (it need not outlive it only if the client sends one at a time and
 * waits with tx_block; otherwise keep it until tx_done).  tx_done's r is
 * the device's result: 0, the number of slaves a broadcast reached, or
 * -errno (-ENOENT: no such slave; -EINVAL: bad type).  rx_callback gets a
 * struct virtio_sdm_msg (valid during the call only) for every signal from
 * that channel's peer, BOOT, RESET and IRQ alike.
 */
#ifndef VIRTIO_SDM_H
#define VIRTIO_SDM_H

#include <linux/mailbox_client.h>
#include <linux/types.h>

struct virtio_sdm_msg {
	u32 type;	/* 0 IRQ, 1 BOOT, 2 RESET (seed 000, ivlink's RESET) */
	u32 from;	/* rx: the sender's ID (0 the master); tx: ignored */
	u32 payload[2];
};

#define VIRTIO_SDM_CHAN_BROADCAST 0u	/* on a master */
#define VIRTIO_SDM_CHAN_MASTER 0u	/* on a slave */

/* Channel @chan of /dev/sdm@index, or ERR_PTR(-ENODEV) (no such device or
 * channel).  Not bound: pass it to mbox_bind_client(). */
struct mbox_chan *virtio_sdm_mbox_chan(unsigned int index, unsigned int chan);

#endif
