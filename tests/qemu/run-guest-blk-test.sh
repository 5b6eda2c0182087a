#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Real-QEMU test of the virtio-blk device over ivlink (src/virtio/dev-blk.c,
# docs/transport.md §5), suite guest-virtio: the host runs ivlink-server and
# a device host serving one image (`ivlink dev serve --blk disk=IMG`); a
# -M pc guest with ivlink's modules and Linux's own virtio_blk and ext4
# creates "blk disk" through the transport's sysfs file, formats it
# (busybox mke2fs), mounts it, writes 32 MiB of files, syncs and prints
# their sha256sums.  The test then SIGKILLs QEMU and the device host,
# starts both again; the guest mounts the disk again and the files read
# back identical; after the guest unmounted, `e2fsck -fn` on the host's
# image is clean and the image has its size.  The guest's dmesg must be
# clean in both runs (kernel_log_checks).
#
# usage: run-guest-blk-test.sh
# Environment: as run-guest-virtio-test.sh.
# Exit status: 0 passed, 1 a check failed, 77 could not run.

set -u

here=$(cd "$(dirname "$0")" && pwd)
qemu_timeout=${IVL_QEMU_TIMEOUT:-300}
img_mib=64

qemu_machine=pc

# shellcheck source=lib.sh
. "$here/lib.sh"
server_run_init gvblk

qemu_prereqs
server_prereqs "the server's readiness"
cli_prereqs
command -v e2fsck >/dev/null || PATH=$PATH:/sbin:/usr/sbin
command -v e2fsck >/dev/null || {
	log "SKIP: e2fsck missing (apt-get install e2fsprogs)"
	exit 77
}

t0=$(date +%s.%N)
kernel_module_build "$work/kmod"
mkdir -p "$work/guest"
cp "$here/guest-virtio/kblk-case" "$work/guest/"
# ext4 (which mounts ext2) asks the crypto API for crc32c at mount time.
if ! IVL_INITRAMFS_MODULES="virtio_blk ext4 crc32c_generic" "$here/mkinitramfs.sh" "$work/initrd.gz" "$kmod" \
	"$work/kmod/virtio_ivlink.ko" "$work/guest/kblk-case" >"$work/mkinitramfs.log" 2>&1; then
	cat "$work/mkinitramfs.log"
	log "FAIL: building the initramfs"
	exit 1
fi
log "built the modules and initramfs in $(elapsed "$t0") s"

img=$work/disk.img
truncate -s "${img_mib}M" "$img"

start_host() {
	# start_host LOG: a device host serving $img as "disk"
	dev_serve_start "$1" --blk "disk=$img"
}

guest() {
	# guest SERIAL PHASE: a guest running kblk-case PHASE
	qemu_start "$1" "ivl.kmod=1 ivl.dmesg=1 ivl.timeout=$qemu_timeout ivl.run=/bin/kblk-case,$2" \
		-chardev socket,path="$sockdir/sock",id=iv0 \
		-device ivshmem-doorbell,chardev=iv0,vectors=16
	pids+=("$qemu_pid")
}

# --- first run: format, write, sync; then SIGKILL QEMU and the device host ----
start_server "$work/server.log" -l 16M || qemu_finish
if ! start_host "$work/host1.log"; then
	fail gvblk.host-start "the device host did not start (see host1.log)"
	qemu_finish
fi
s1=$work/serial1.log
t=$(date +%s.%N)
guest "$s1" write
wait_for_line "$s1" '^GB-(SYNCED|FAILED)' "$qemu_timeout" "$qemu_pid" ||
	fail gvblk.write "the guest did not finish writing (see serial1.log)"
# QEMU itself (the child of `timeout`), then the device host.
qpid=$(pgrep -P "$qemu_pid")
[ -n "$qpid" ] && kill -KILL "$qpid"
kill -KILL "$host_pid"
wait "$host_pid" 2>/dev/null
wait "$qemu_pid" 2>/dev/null
log "killed QEMU (${qpid:-gone}) and the device host ($host_pid) with SIGKILL after $(elapsed "$t") s"
check gvblk.disk1 "$s1" '^GB-OK disk /dev/vd[a-z]+ [0-9]+ sectors driver=virtio_blk'
check gvblk.line1 "$s1" '^GB-LINE [0-9]+ blk 2 0xf '
check gvblk.mke2fs "$s1" '^GB-OK mke2fs'
check gvblk.synced "$s1" '^GB-SYNCED'
check_absent gvblk.no-fail1 "$s1" '^GB-FAIL'
kernel_log_checks gvblk.run1 "$s1"
sums1=$(tr -d '\r' <"$s1" | sed -n 's/^GB-SUM 1 //p' | sort)
n1=$(printf '%s\n' "$sums1" | grep -c ' ')
if [ "$n1" -eq 8 ]; then pass "gvblk.sums1: 8 files"; else fail gvblk.sums1 "$n1 sums, not 8"; fi

# --- second run: both again, read back ---------------------------------------
if ! start_host "$work/host2.log"; then
	fail gvblk.host-restart "the second device host did not start (see host2.log)"
	qemu_finish
fi
s2=$work/serial2.log
t=$(date +%s.%N)
guest "$s2" verify
wait_pid "$qemu_pid" "$qemu_timeout"
log "second guest done after $(elapsed "$t") s"
check gvblk.mounted2 "$s2" '^GB-OK mounted /dev/vd[a-z]+ /mnt ext[24]'
sums2=$(tr -d '\r' <"$s2" | sed -n 's/^GB-SUM 2 //p' | sort)
if [ -n "$sums1" ] && [ "$sums1" = "$sums2" ]; then
	pass "gvblk.read-back: the 8 files are identical after SIGKILL of QEMU and the device host"
else
	fail gvblk.read-back "sums differ: before [$sums1] after [$sums2]"
fi
check gvblk.umount "$s2" '^GB-OK umount'
check gvblk.destroyed "$s2" '^GB-OK destroyed [0-9]+'
check gvblk.guest-pass "$s2" '^GB-PASS'
check_absent gvblk.no-fail2 "$s2" '^GB-FAIL'
check_absent gvblk.no-kernel-panic "$s2" 'Kernel panic'
kernel_log_checks gvblk.run2 "$s2"
check gvblk.result "$s2" '^IVL-RESULT: PASS'
# The device host counted no refusal from the guest's own driver.
check gvblk.counters "$work/host2.log" 'blk [0-9]+ \(disk\): [0-9]+ reads, [0-9]+ writes, [0-9]+ flushes.* refused: 0 malformed, 0 out of range, 0 unsupported, 0 failed'
if alive "$host_pid"; then pass gvblk.host-alive; else fail gvblk.host-alive "the device host died"; fi
stop_all

# --- the image on the host ------------------------------------------------------
if e2fsck -fn "$img" >"$work/e2fsck.log" 2>&1; then
	pass "gvblk.e2fsck: $(tail -n 1 "$work/e2fsck.log")"
else
	cat "$work/e2fsck.log"
	fail gvblk.e2fsck "e2fsck -fn found problems (see e2fsck.log)"
fi
size=$(stat -c %s "$img")
if [ "$size" -eq $((img_mib << 20)) ]; then pass "gvblk.image-size: $size"; else fail gvblk.image-size "$size bytes"; fi

qemu_finish
