#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Real-QEMU test of the transport virtqueue (docs/transport.md): the host
# runs ivlink-server and a device host (`ivlink dev serve --console-dir`);
# a guest (guest-virtio/ivl-virtio-guest over the ivshmem-doorbell device
# bound to vfio-pci) creates a console bridged to a UNIX socket on the host
# through the transport virtqueue, sets it up, sends a line that a client of
# that socket reads here, receives the client's answer, lists and destroys
# the console.
#
# usage: run-virtio-test.sh
# Environment: as run-link-test.sh (IVL_BUILD_DIR, IVL_SERVER_BIN,
# IVL_QEMU_TIMEOUT, IVL_QEMU_WORK, IVL_QEMU_CACHE, IVL_QEMU_SKIP_SETUP, CC,
# IVL_QEMU_KEEP); IVL_CLI_BIN: the host's ivlink.
# Exit status: 0 passed, 1 a check failed, 77 could not run.

set -u

here=$(cd "$(dirname "$0")" && pwd)
qemu_timeout=${IVL_QEMU_TIMEOUT:-120}
cc=${CC:-gcc}

t_start=$(date +%s.%N)
mkdir -p "$here/work"
work=${IVL_QEMU_WORK:-$(mktemp -d "$here/work/virtio.XXXXXX")}
mkdir -p "$work"
sockdir=$(mktemp -d /tmp/ivlv.XXXXXX)
pids=()
npass=0
nfail=0
failed=

# shellcheck source=lib.sh
. "$here/lib.sh"

cleanup() {
	local p
	for p in "${pids[@]}"; do stop "$p"; done
	rm -rf "$sockdir"
}
trap 'cleanup' EXIT
trap 'log "interrupted"; exit 130' INT TERM

log "work dir: $work"
qemu_prereqs
command -v python3 >/dev/null || {
	log "SKIP: python3 missing (the console's socket client)"
	exit 77
}
for b in "$server_bin" "$cli_bin"; do
	[ -x "$b" ] || {
		log "FAIL: $b not built"
		exit 1
	}
done
static_guest_prereqs

# --- the guest program (static) and the initramfs ---------------------------------
t0=$(date +%s.%N)
mkdir -p "$work/guest"
gprog=$work/guest/ivl-virtio-guest
CC=$cc static_guest_build "$gprog" "$here/guest-virtio/ivl-virtio-guest.c"
if ! "$here/mkinitramfs.sh" "$work/initrd.gz" "$gprog" >"$work/mkinitramfs.log" 2>&1; then
	cat "$work/mkinitramfs.log"
	log "FAIL: building the initramfs"
	exit 1
fi
log "built the guest program and initramfs in $(elapsed "$t0") s"

# --- server, device host, guest ----------------------------------------------------
sock=$sockdir/sock
"$server_bin" -S "$sock" -l 1M -n 2 -F --memfd >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	grep -q " 00010000 .* $sock\$" /proc/net/unix 2>/dev/null && break
	sleep 0.1
done
"$cli_bin" -S "$sock" dev serve --console-dir "$sockdir" >"$work/host.log" 2>&1 &
host_pid=$!
pids+=("$host_pid")
if ! wait_for_line "$work/host.log" '^serving on peer' 10 "$host_pid"; then
	fail virtio.host-start "the device host did not start (see host.log)"
	exit 1
fi
serial=$work/serial.log
t=$(date +%s.%N)
qemu_start_doorbell "$serial" "$sock" 2 "ivl.vfio=1 ivl.timeout=90 ivl.run=/bin/ivl-virtio-guest,-t,80000"
pids+=("$qemu_pid")

# The console's UNIX side: read the guest's line, answer it.
if wait_for_line "$serial" '^GUEST-CONSOLE-ID 1 unix:' 100 "$qemu_pid"; then
	timeout 60 python3 - "$sockdir/console-1.sock" >"$work/client.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(50)
got = b""
while b"\n" not in got:
    chunk = s.recv(256)
    if not chunk:
        break
    got += chunk
print("CLIENT-GOT", got.decode(errors="replace").strip())
s.sendall(b"hello from the host\n")
print("CLIENT-SENT")
PY
	client_pid=$!
	pids+=("$client_pid")
	wait_pid "$client_pid" 60
else
	fail virtio.guest-created-console "no GUEST-CONSOLE-ID line"
fi
wait_pid "$qemu_pid" "$qemu_timeout"
log "guest done after $(elapsed "$t") s"

check virtio.guest-found-host "$serial" '^GUEST-ID [0-9]+'
check virtio.guest-created-console "$serial" '^GUEST-CONSOLE-ID 1 unix:'
check virtio.guest-setup "$serial" '^GUEST-SETUP queues=2'
check virtio.host-got-guest-line "$work/client.log" '^CLIENT-GOT hello from the guest$'
check virtio.guest-got-host-line "$serial" '^GUEST-RECEIVED hello from the host$'
check virtio.guest-list "$serial" '^GUEST-LIST 1$'
check virtio.guest-destroyed "$serial" '^GUEST-DESTROYED 1$'
check virtio.guest-done "$serial" '^GUEST-DONE$'
check_absent virtio.no-kernel-panic "$serial" 'Kernel panic'
check_absent virtio.no-guest-errors "$serial" '^GUEST-ERROR'
check virtio.result "$serial" '^IVL-RESULT: PASS'
if [ -e "$sockdir/console-1.sock" ]; then
	fail virtio.socket-removed "console-1.sock still there after destroy"
else
	pass virtio.socket-removed
fi
if alive "$host_pid"; then pass virtio.host-alive; else fail virtio.host-alive "the device host died"; fi

qemu_finish
