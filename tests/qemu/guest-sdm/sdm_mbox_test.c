// SPDX-License-Identifier: GPL-2.0-only
/*
 * sdm_mbox_test: a mailbox client of virtio_sdm, as an in-kernel user
 * (an rpmsg transport, a remoteproc-like loader) would be, for
 * run-guest-sdm-test.sh.  At load it binds channel @chan of /dev/sdm@sdm,
 * sends one IRQ with payload {@p0, @p1} and waits for its result; every
 * signal received on the channel until unload is logged.  Load fails with
 * the error if the bind or the send does.
 */
#include <linux/completion.h>
#include <linux/err.h>
#include <linux/mailbox_client.h>
#include <linux/module.h>

#include "virtio_sdm.h"

static unsigned int sdm;
module_param(sdm, uint, 0444);
static unsigned int chan = 1;
module_param(chan, uint, 0444);
static unsigned int p0 = 0x600d;
module_param(p0, uint, 0444);
static unsigned int p1 = 1;
module_param(p1, uint, 0444);

static struct mbox_chan *ch;
static struct virtio_sdm_msg msg;
static int tx_result;
static DECLARE_COMPLETION(tx_done);

static void on_rx(struct mbox_client *cl, void *data)
{
	const struct virtio_sdm_msg *m = data;

	pr_info("sdm_mbox_test: rx type %u from %u payload 0x%08x 0x%08x\n", m->type, m->from,
		m->payload[0], m->payload[1]);
}

static void on_tx_done(struct mbox_client *cl, void *data, int r)
{
	tx_result = r;
	complete(&tx_done);
}

static struct mbox_client client = {
	.rx_callback = on_rx,
	.tx_done = on_tx_done,
};

static int __init sdm_mbox_test_init(void)
{
	int ret;

	ch = virtio_sdm_mbox_chan(sdm, chan);
	if (IS_ERR(ch))
		return PTR_ERR(ch);
	ret = mbox_bind_client(ch, &client);
	if (ret)
		return ret;
	msg.type = 0;
	msg.payload[0] = p0;
	msg.payload[1] = p1;
	ret = mbox_send_message(ch, &msg);
	if (ret < 0)
		goto err;
	if (!wait_for_completion_timeout(&tx_done, msecs_to_jiffies(30000))) {
		ret = -ETIMEDOUT;
		goto err;
	}
	pr_info("sdm_mbox_test: sent on sdm%u channel %u: result %d\n", sdm, chan, tx_result);
	if (tx_result < 0) {
		ret = tx_result;
		goto err;
	}
	return 0;
err:
	mbox_free_channel(ch);
	return ret;
}

static void __exit sdm_mbox_test_exit(void)
{
	mbox_free_channel(ch);
}

module_init(sdm_mbox_test_init);
module_exit(sdm_mbox_test_exit);
MODULE_DESCRIPTION("virtio_sdm mailbox client test");
MODULE_LICENSE("GPL");
