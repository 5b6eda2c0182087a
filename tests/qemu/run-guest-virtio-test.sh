#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Real-QEMU test of the guest virtio transport (kernel/virtio_ivlink.c,
# docs/guest-virtio.md), suite guest-virtio.  The host runs ivlink-server
# and a device host (`ivlink dev serve --console-dir`); a -M pc guest with
# 6 ivshmem MSI-X vectors loads Debian's virtio_pci, virtio_console and
# virtio-rng, then ivlink_ivshmem.ko and virtio_ivlink.ko.  In the guest
# (guest-virtio/kvirtio-case): a console on a UNIX socket carries 1 MiB
# each way (checksums compared with the host's peer,
# guest-virtio/console-peer.py); /dev/hwrng gives 1 MiB; a console gets an
# MSI sharing table when vectors run short, and an rng without vectors is
# left unbound; 100 create/destroy rounds leak nothing; the device host is
# SIGKILLed while a writer streams into the console and a reader from
# /dev/hwrng (devices removed, both end) and started again; a console offered by the host (`dev create --for`) is
# registered on rescan; the transport module is unloaded with devices bound
# and a reader, loaded again (its devices registered again), and unloaded.
# The guest's dmesg must be clean (kernel_log_checks).  Measured, not
# checked: guest->host console throughput over ivlink vs QEMU's own
# virtio-serial virtconsole to a UNIX socket chardev, same guest, same run.
#
# usage: run-guest-virtio-test.sh
# Environment: as run-kernel-test.sh (IVL_BUILD_DIR, IVL_SERVER_BIN,
# IVL_CLI_BIN, IVL_QEMU_TIMEOUT, IVL_QEMU_WORK, IVL_QEMU_CACHE,
# IVL_QEMU_SKIP_SETUP, IVL_QEMU_KEEP, IVL_KDIR); IVL_GV_ROUNDS (100).
# Exit status: 0 passed, 1 a check failed, 77 could not run.

set -u

here=$(cd "$(dirname "$0")" && pwd)
qemu_timeout=${IVL_QEMU_TIMEOUT:-400}
rounds=${IVL_GV_ROUNDS:-100}

qemu_machine=pc
# Two vCPUs: virtio_console writes a console buffer and spins, interrupts
# off, until the device gives it back; when the device host dies mid-write
# only another CPU can run the transport's watcher that breaks the device
# (docs/guest-virtio.md, "A device host that dies").
qemu_smp=2

# shellcheck source=lib.sh
. "$here/lib.sh"
server_run_init gvirtio

qemu_prereqs
server_prereqs "the server's readiness"
cli_prereqs

t0=$(date +%s.%N)
kernel_module_build "$work/kmod"
mkdir -p "$work/guest"
cp "$here/guest-virtio/kvirtio-case" "$work/guest/"
if ! IVL_INITRAMFS_MODULES="virtio_pci virtio_console virtio-rng" "$here/mkinitramfs.sh" \
	"$work/initrd.gz" "$kmod" "$work/kmod/virtio_ivlink.ko" \
	"$work/guest/kvirtio-case" >"$work/mkinitramfs.log" 2>&1; then
	cat "$work/mkinitramfs.log"
	log "FAIL: building the initramfs"
	exit 1
fi
log "built the modules and initramfs in $(elapsed "$t0") s"

# --- server, device host, guest ------------------------------------------------
serve() {
	"$cli_bin" -v -S "$sockdir/sock" dev serve --console-dir "$sockdir" >"$1" 2>&1 &
	host_pid=$!
	pids+=("$host_pid")
	wait_for_line "$1" '^serving on peer' 10 "$host_pid"
}
peer=$here/guest-virtio/console-peer.py
start_server "$work/server.log" -n 6 -l 4M || qemu_finish
serve "$work/host.log" || {
	fail gvirtio.host-start "the device host did not start (see host.log)"
	qemu_finish
}
serial=$work/serial.log
t=$(date +%s.%N)
qemu_start "$serial" "ivl.kmod=1 ivl.dmesg=1 ivl.timeout=$((qemu_timeout - 40)) ivl.run=/bin/kvirtio-case,$rounds" \
	-chardev socket,path="$sockdir/sock",id=iv0 \
	-device ivshmem-doorbell,chardev=iv0,vectors=6 \
	-chardev socket,id=vs0,path="$sockdir/vs.sock",server=on,wait=off \
	-device virtio-serial-pci -device virtconsole,chardev=vs0
pids+=("$qemu_pid")
if wait_for_line "$serial" '^GV-CONSOLE-READY' "$qemu_timeout" "$qemu_pid"; then
	con=$(sed -n 's/^GV-CONSOLE-READY \([0-9]*\) .*/\1/p' "$serial" | head -n 1)
	python3 "$peer" "$sockdir/console-$con.sock" 1048576 7 --send >"$work/peer.log" 2>&1 &
	pids+=("$!")
	python3 "$peer" "$sockdir/vs.sock" 1048576 7 >"$work/peer-vs.log" 2>&1 &
	pids+=("$!")
fi
if wait_for_line "$serial" '^GV-HOST-KILL-READY' "$qemu_timeout" "$qemu_pid"; then
	kill -KILL "$host_pid"
	wait "$host_pid" 2>/dev/null
fi
if wait_for_line "$serial" '^GV-HOST-GONE' "$qemu_timeout" "$qemu_pid"; then
	serve "$work/host2.log" ||
		fail gvirtio.host-restart "the second device host did not start (see host2.log)"
fi
if wait_for_line "$serial" '^GV-OFFER [0-9]' "$qemu_timeout" "$qemu_pid"; then
	me=$(sed -n 's/^GV-OFFER \([0-9]*\).*/\1/p' "$serial" | head -n 1)
	"$cli_bin" -S "$sockdir/sock" dev create console --backend loop --window 262144 --for "$me" \
		>"$work/offer.log" 2>&1 || fail gvirtio.offer "dev create --for $me failed (see offer.log)"
fi
wait_pid "$qemu_pid" "$qemu_timeout"
log "guest done after $(elapsed "$t") s"

# The bytes each way, compared with the host's peer.
tx=$(sed -n 's/^GV-TX-SHA \([0-9a-f]*\).*/\1/p' "$serial" | head -n 1)
rx=$(sed -n 's/^GV-RX-SHA \([0-9a-f]*\) 1048576.*/\1/p' "$serial" | head -n 1)
prx=$(sed -n 's/^PEER-RX bytes=1048576 sha256=\([0-9a-f]*\).*/\1/p' "$work/peer.log" 2>/dev/null)
ptx=$(sed -n 's/^PEER-TX bytes=1048576 sha256=\([0-9a-f]*\).*/\1/p' "$work/peer.log" 2>/dev/null)
if [ -n "$tx" ] && [ "$tx" = "$prx" ]; then pass gvirtio.guest-to-host-1MiB; else
	fail gvirtio.guest-to-host-1MiB "guest sent $tx, the host got '$prx' (peer.log)"; fi
if [ -n "$ptx" ] && [ "$ptx" = "$rx" ]; then pass gvirtio.host-to-guest-1MiB; else
	fail gvirtio.host-to-guest-1MiB "host sent '$ptx', the guest got '$rx'"; fi
# Measured (not checked): first byte to last byte of the same 1 MiB.
s_iv=$(sed -n 's/^PEER-RX .* secs=\([0-9.]*\)/\1/p' "$work/peer.log" 2>/dev/null)
s_vs=$(sed -n 's/^PEER-RX .* secs=\([0-9.]*\)/\1/p' "$work/peer-vs.log" 2>/dev/null)
if [ -n "$s_iv" ] && [ -n "$s_vs" ]; then
	awk -v a="$s_iv" -v b="$s_vs" 'BEGIN { printf "measure: console guest->host 1 MiB: ivlink %.2f MB/s, virtio-serial %.2f MB/s, ratio %.2f\n", 1.048576 / a, 1.048576 / b, b / a }' |
		tee -a "$work/summary.txt"
fi

check gvirtio.transport-found "$serial" '^GV-OK transport .* driver=virtio_ivlink'
check gvirtio.probe-log "$serial" 'virtio_ivlink.*transport virtqueue: peer [0-9]+, device host peer'
check gvirtio.devices-line "$serial" '^GV-LINE [0-9]+ console 3 0xf 0x[0-9a-f]+ 0x40000 2 unix:'
check gvirtio.rng-current "$serial" '^GV-RNG-CURRENT virtio_rng'
check gvirtio.rounds "$serial" "^GV-ROUNDS $rounds of $rounds fails=0\$"
for c in qemu-virtconsole console-tx virtserial-tx hwrng msi-sharing sharing-loop \
	no-vectors-unbound sharing-destroy rounds-no-leak create-unknown-refused \
	create-bad-arg-refused destroy-absent-refused destroy-zero-refused \
	host-killed-removed writer-ended reader-ended-rng all-removed create-without-host-refused host-back \
	offered rmmod-bound reader-ended reload-found-host reload-registered destroyed-all \
	rmmod-again rmmod-ivshmem; do
	check "gvirtio.$c" "$serial" "^GV-OK $c"
done
check gvirtio.host-gone-logged "$serial" 'virtio_ivlink.*the device host \(peer [0-9]+\) is gone'
check gvirtio.removed-logged "$serial" 'virtio_ivlink.*device [0-9]+: its device host is gone: removed'
check gvirtio.new-host-negotiated "$serial" 'virtio_ivlink.*a new device host \(peer [0-9]+, epoch'
check gvirtio.offer-registered "$serial" 'virtio_ivlink.*offered to this guest, registered'
check_absent gvirtio.no-guest-fail "$serial" '^GV-FAIL'
check_absent gvirtio.no-kernel-panic "$serial" 'Kernel panic'
kernel_log_checks gvirtio "$serial"
check gvirtio.guest-pass "$serial" '^GV-PASS'
check gvirtio.result "$serial" '^IVL-RESULT: PASS'
if alive "$host_pid"; then pass gvirtio.host-alive; else fail gvirtio.host-alive "the device host died"; fi
stop_all

qemu_finish
