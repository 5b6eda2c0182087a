#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Measure (not a test; docs/PERFORMANCE.md "virtio-blk over ivlink"):
# busybox dd in one TCG guest on one image file through QEMU's own
# virtio-blk-pci (-drive format=raw, QEMU's default writeback cache) and
# through ivlink's virtio-blk (`ivlink dev serve --blk`): sequential 1 MiB
# O_DIRECT write and read of MIB MiB, and 512 random 4 KiB O_DIRECT writes
# and reads (one dd process each; the time of the same dd processes
# without a disk is printed too, to subtract the guest's process cost).
# The two devices are used one after the other, never at once.
#
# usage: bench-guest-blk.sh [MIB]   (default 32)
# Environment: as run-guest-blk-test.sh.  Prints the GB-BENCH lines and
# the MB/s; the logs are kept with IVL_QEMU_KEEP=1.

set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${IVL_BUILD_DIR:-$repo/build}
server_bin=${IVL_SERVER_BIN:-$build/tools/ivlink-server/ivlink-server}
cli_bin=${IVL_CLI_BIN:-$build/tools/ivlink/ivlink}
qemu_timeout=${IVL_QEMU_TIMEOUT:-900}
mib=${1:-32}

qemu_machine=pc

# shellcheck source=lib.sh
. "$here/lib.sh"
server_run_init gvblkbench

qemu_prereqs
server_prereqs "the server's readiness"
kernel_module_build "$work/kmod"
mkdir -p "$work/guest"
cp "$here/guest-virtio/kblk-case" "$work/guest/"
IVL_INITRAMFS_MODULES="virtio_pci virtio_blk ext4 crc32c_generic" "$here/mkinitramfs.sh" "$work/initrd.gz" \
	"$kmod" "$work/kmod/virtio_ivlink.ko" "$work/guest/kblk-case" >"$work/mkinitramfs.log" 2>&1 || {
	cat "$work/mkinitramfs.log"
	exit 1
}

img=$work/disk.img
truncate -s $((mib * 2))M "$img"
start_server "$work/server.log" -l 16M || qemu_finish
"$cli_bin" -S "$sockdir/sock" dev serve --blk "disk=$img" >"$work/host.log" 2>&1 &
host_pid=$!
pids+=("$host_pid")
wait_for_line "$work/host.log" '^serving on peer' 10 "$host_pid" || {
	fail bench.host "the device host did not start"
	qemu_finish
}
serial=$work/serial.log
qemu_start "$serial" "ivl.kmod=1 ivl.timeout=$qemu_timeout ivl.run=/bin/kblk-case,bench,$mib" \
	-drive file="$img",if=none,id=d0,format=raw \
	-device virtio-blk-pci,drive=d0 \
	-chardev socket,path="$sockdir/sock",id=iv0 \
	-device ivshmem-doorbell,chardev=iv0,vectors=16
pids+=("$qemu_pid")
wait_pid "$qemu_pid" "$qemu_timeout"
check bench.pass "$serial" '^GB-PASS'
tr -d '\r' <"$serial" | grep -a '^GB-BENCH' | tee -a "$work/summary.txt" |
	awk -v mib="$mib" '
	function rate(mb, s) { return s > 0 ? sprintf("%.2f", mb / s) : "n/a" }
	{
	for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	mb = v["ops"] * 4096 / 1e6
	printf "%-7s seq write %s MB/s, seq read %s MB/s, 4k rand write %s MB/s (%s without the dd cost), 4k rand read %s MB/s (%s)\n", $2,
		rate(mib * 1.048576, v["seq_write_s"]), rate(mib * 1.048576, v["seq_read_s"]),
		rate(mb, v["rand4k_write_s"]), rate(mb, v["rand4k_write_s"] - v["rand4k_none_s"]),
		rate(mb, v["rand4k_read_s"]), rate(mb, v["rand4k_read_s"] - v["rand4k_none_s"])
}' | tee -a "$work/summary.txt"
stop_all
qemu_finish
