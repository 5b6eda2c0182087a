#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Measure (not a test; docs/PERFORMANCE.md "virtio-blk over ivlink"): in
# one TCG guest, on one image file, guest-virtio/blkbench.c (O_DIRECT, one
# process) through QEMU's own virtio-blk-pci (-drive format=raw, QEMU's
# default writeback cache), then through ivlink's virtio-blk (`ivlink dev
# serve --blk`), 3 rounds interleaved (medians and per-round ratios: the
# host is loaded): sequential 1 MiB writes and reads of MIB MiB, OPS
# random 4 KiB writes and reads.  The devices are used one after the other, never at once.
# Each round also times the guest CPU's own copy (blkbench copy: "rep
# movsq" and a loop of 8-byte moves), the bound of what virtio_ivlink
# bounces.
#
# usage: bench-guest-blk.sh [MIB [OPS]]   (default 128 2000)
# Environment: as run-guest-blk-test.sh; CC (default cc) builds blkbench
# static.  Prints the GB-BENCH lines and the ratios ivlink / QEMU.

set -u

here=$(cd "$(dirname "$0")" && pwd)
qemu_timeout=${IVL_QEMU_TIMEOUT:-900}
mib=${1:-128}
ops=${2:-2000}

qemu_machine=pc

# shellcheck source=lib.sh
. "$here/lib.sh"
server_run_init gvblkbench

qemu_prereqs
server_prereqs "the server's readiness"
kernel_module_build "$work/kmod"
mkdir -p "$work/guest"
cp "$here/guest-virtio/kblk-case" "$work/guest/"
"${CC:-cc}" -static -O2 -Wall -o "$work/guest/blkbench" "$here/guest-virtio/blkbench.c" || {
	log "FAIL: building blkbench (static)"
	exit 1
}
IVL_INITRAMFS_MODULES="virtio_pci virtio_blk ext4 crc32c_generic" "$here/mkinitramfs.sh" "$work/initrd.gz" \
	"$kmod" "$work/kmod/virtio_ivlink.ko" "$work/guest/kblk-case" "$work/guest/blkbench" >"$work/mkinitramfs.log" 2>&1 || {
	cat "$work/mkinitramfs.log"
	exit 1
}

img=$work/disk.img
# Written once, so that no device pays for allocating the file first.
dd if=/dev/zero of="$img" bs=1M count=$((mib * 2)) status=none
start_server "$work/server.log" -l 16M || qemu_finish
"$cli_bin" -S "$sockdir/sock" dev serve --blk "disk=$img" >"$work/host.log" 2>&1 &
host_pid=$!
pids+=("$host_pid")
wait_for_line "$work/host.log" '^serving on peer' 10 "$host_pid" || {
	fail bench.host "the device host did not start"
	qemu_finish
}
serial=$work/serial.log
qemu_start "$serial" "ivl.kmod=1 ivl.timeout=$qemu_timeout ivl.run=/bin/kblk-case,bench,$mib,$ops" \
	-drive file="$img",if=none,id=d0,format=raw \
	-device virtio-blk-pci,drive=d0 \
	-chardev socket,path="$sockdir/sock",id=iv0 \
	-device ivshmem-doorbell,chardev=iv0,vectors=16
pids+=("$qemu_pid")
wait_pid "$qemu_pid" "$qemu_timeout"
check bench.pass "$serial" '^GB-PASS'
# The guest's copy rates (the bound of the bounced rows) and CPU flags.
tr -d '\r' <"$serial" | grep -a '^GB-CPU\|^GB-COPY' | tee -a "$work/summary.txt"
tr -d '\r' <"$serial" | grep -a '^GB-BENCH' | tee -a "$work/summary.txt" |
	awk '
	function median(a, n,    i, j, t) {
		for (i = 2; i <= n; i++)
			for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{
	for (i = 3; i <= NF; i++) { split($i, kv, "="); val[kv[1]] = kv[2] }
	if ($2 == "qemu") { nq++; for (k in val) q[k, nq] = val[k] }
	if ($2 == "ivlink") { nl++; for (k in val) l[k, nl] = val[k] }
}
END {
	n = split("seq_write_mbs seq_read_mbs rand_write_mbs rand_read_mbs", m, " ")
	for (k = 1; k <= n; k++) {
		split("", ra); split("", qa); split("", la); nr = 0
		for (r = 1; r <= nq && r <= nl; r++) {
			nr++; qa[nr] = q[m[k], r]; la[nr] = l[m[k], r]
			ra[nr] = q[m[k], r] > 0 ? l[m[k], r] / q[m[k], r] : 0
		}
		printf "GB-RATIO %s: ivlink median %.1f MB/s, qemu median %.1f MB/s; ivlink/qemu per round median %.2f", m[k], median(la, nr), median(qa, nr), median(ra, nr)
		printf " (rounds:"; for (r = 1; r <= nr; r++) printf " %.2f", l[m[k], r] / q[m[k], r]; printf ")\n"
	}
}' | tee -a "$work/summary.txt"
stop_all
qemu_finish
