#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Real-QEMU test of the guest kernel's transport virtqueue driver
# (kernel/virtio_ivlink.c, docs/guest-virtio.md), suite guest-virtio: the
# host runs ivlink-server and a device host (`ivlink dev serve
# --console-dir`, management area at app-area offset 0); a -M pc guest
# without an IOMMU loads ivlink_ivshmem.ko and virtio_ivlink.ko, which finds
# the device host and negotiates the management device.  Through the
# transport's sysfs files the guest then creates a console, lists it and
# destroys it, 20 times; unknown types and absent devices are refused; the
# device host is killed (SIGKILL: requests fail, none hangs) and started
# again (found, negotiated, a UNIX-socket console created and destroyed);
# the transport module is unloaded while bound and loaded again, and both
# modules unload.  The guest's dmesg must be clean (kernel_log_checks).
#
# usage: run-guest-virtio-test.sh
# Environment: as run-kernel-test.sh (IVL_BUILD_DIR, IVL_SERVER_BIN,
# IVL_CLI_BIN, IVL_QEMU_TIMEOUT, IVL_QEMU_WORK, IVL_QEMU_CACHE,
# IVL_QEMU_SKIP_SETUP, IVL_QEMU_KEEP, IVL_KDIR).
# Exit status: 0 passed, 1 a check failed, 77 could not run.

set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${IVL_BUILD_DIR:-$repo/build}
server_bin=${IVL_SERVER_BIN:-$build/tools/ivlink-server/ivlink-server}
cli_bin=${IVL_CLI_BIN:-$build/tools/ivlink/ivlink}
qemu_timeout=${IVL_QEMU_TIMEOUT:-240}
rounds=20

qemu_machine=pc

# shellcheck source=lib.sh
. "$here/lib.sh"
server_run_init gvirtio

qemu_prereqs
server_prereqs "the server's readiness"
[ -x "$cli_bin" ] || {
	log "FAIL: the ivlink CLI not found at $cli_bin"
	exit 1
}

t0=$(date +%s.%N)
kernel_module_build "$work/kmod"
mkdir -p "$work/guest"
cp "$here/guest-virtio/kvirtio-case" "$work/guest/"
# The in-tree driver that binds to the consoles (virtio, virtio_ring come
# with it: virtio_ivlink.ko needs them too).
if ! IVL_INITRAMFS_MODULES=virtio_console "$here/mkinitramfs.sh" "$work/initrd.gz" "$kmod" "$work/kmod/virtio_ivlink.ko" \
	"$work/guest/kvirtio-case" >"$work/mkinitramfs.log" 2>&1; then
	cat "$work/mkinitramfs.log"
	log "FAIL: building the initramfs"
	exit 1
fi
log "built the modules and initramfs in $(elapsed "$t0") s"

# --- server, device host, guest ------------------------------------------------
start_server "$work/server.log" || qemu_finish
"$cli_bin" -S "$sockdir/sock" dev serve --console-dir "$sockdir" >"$work/host.log" 2>&1 &
host_pid=$!
pids+=("$host_pid")
if ! wait_for_line "$work/host.log" '^serving on peer' 10 "$host_pid"; then
	fail gvirtio.host-start "the device host did not start (see host.log)"
	qemu_finish
fi
serial=$work/serial.log
t=$(date +%s.%N)
qemu_start "$serial" "ivl.kmod=1 ivl.dmesg=1 ivl.timeout=200 ivl.run=/bin/kvirtio-case,$rounds" \
	-chardev socket,path="$sockdir/sock",id=iv0 \
	-device ivshmem-doorbell,chardev=iv0,vectors=4
pids+=("$qemu_pid")
if wait_for_line "$serial" '^GV-HOST-KILL-READY' "$qemu_timeout" "$qemu_pid"; then
	kill -KILL "$host_pid"
	wait "$host_pid" 2>/dev/null
	if wait_for_line "$serial" '^GV-HOST-GONE' 90 "$qemu_pid"; then
		"$cli_bin" -S "$sockdir/sock" dev serve --console-dir "$sockdir" >"$work/host2.log" 2>&1 &
		host_pid=$!
		pids+=("$host_pid")
		wait_for_line "$work/host2.log" '^serving on peer' 10 "$host_pid" ||
			fail gvirtio.host-restart "the second device host did not start (see host2.log)"
	fi
fi
wait_pid "$qemu_pid" "$qemu_timeout"
log "guest done after $(elapsed "$t") s"

check gvirtio.transport-found "$serial" '^GV-OK transport .* driver=virtio_ivlink'
check gvirtio.probe-log "$serial" 'virtio_ivlink.*transport virtqueue: peer [0-9]+, device host peer'
check gvirtio.rounds "$serial" "^GV-ROUNDS $rounds of $rounds fails=0 last-id=$rounds\$"
check gvirtio.devices-line "$serial" '^GV-LINE 1 console 3 0xf 0x10000 0x80000 2 loop$'
check gvirtio.created-logged "$serial" "virtio_ivlink.*created device $rounds: console"
check gvirtio.destroyed-logged "$serial" "virtio_ivlink.*destroyed device $rounds\$"
for c in create-unknown-refused destroy-absent-refused destroy-zero-refused host-gone \
	create-without-host-refused host-back new-host-destroy rmmod-bound reload-found-host reload-destroy rmmod-again rmmod-ivshmem; do
	check "gvirtio.$c" "$serial" "^GV-OK $c"
done
check gvirtio.new-host-negotiated "$serial" 'virtio_ivlink.*a new device host \(peer [0-9]+, epoch'
check gvirtio.new-host-unix-console "$serial" '^GV-LINE-UNIX 1 console 3 0xf 0x10000 0x80000 2 unix:'
check gvirtio.reload-listed "$serial" 'virtio_ivlink.*device [0-9]+: console \(virtio 3\)'
check_absent gvirtio.no-guest-fail "$serial" '^GV-FAIL'
check_absent gvirtio.no-kernel-panic "$serial" 'Kernel panic'
kernel_log_checks gvirtio "$serial"
check gvirtio.guest-pass "$serial" '^GV-PASS'
check gvirtio.result "$serial" '^IVL-RESULT: PASS'
if alive "$host_pid"; then pass gvirtio.host-alive; else fail gvirtio.host-alive "the device host died"; fi
stop_all

qemu_finish
