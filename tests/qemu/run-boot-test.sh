#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Real-QEMU smoke test: boot a Debian 6.1 guest with an ivshmem-doorbell
# device attached to ivlink-server and check, from the serial console, what
# the guest sees.
#
#   boot:     the guest is peer 0, BAR2 is 1 MiB, a pattern the guest writes
#             into BAR2 is seen by a host peer in the server's region
#             (sysfs mapping, no VFIO);
#   doorbell: the guest binds the device to vfio-pci, waits for the host
#             peer's pattern, writes its own, enables MSI-X, rings each of
#             the host peer's 4 vectors (the host then finds the guest's
#             data), and gets an interrupt on each of its own 4 vectors
#             when the host peer rings back.
#
# usage: run-boot-test.sh [boot|doorbell|all]      (default: all)
#
# Environment:
#   IVL_BUILD_DIR      meson build directory (default: <repo>/build)
#   IVL_SERVER_BIN     ivlink-server (default: $IVL_BUILD_DIR/tools/ivlink-server/ivlink-server)
#   IVL_QEMU_TIMEOUT   bound on each QEMU run, seconds (default 120)
#   IVL_QEMU_WORK      work directory for logs (default: a new tests/qemu/work/run.*)
#   IVL_QEMU_CACHE     kernel cache (see setup.sh)
#   IVL_QEMU_SKIP_SETUP=1  do not run setup.sh (the cache must be ready)
#
# Exit status: 0 all checks passed, 1 a check failed, 77 could not run
# (setup failed: no network, no QEMU), as meson's "skip".

set -u

here=$(cd "$(dirname "$0")" && pwd)
qemu_timeout=${IVL_QEMU_TIMEOUT:-120}
what=${1:-all}
case $what in boot | doorbell | all) ;; *)
	echo "usage: $0 [boot|doorbell|all]" >&2
	exit 2
	;;
esac

t_start=$(date +%s.%N)
mkdir -p "$here/work"
work=${IVL_QEMU_WORK:-$(mktemp -d "$here/work/run.XXXXXX")}
mkdir -p "$work"
# The socket lives in a short private directory: sun_path is 108 bytes.
sockdir=$(mktemp -d /tmp/ivlq.XXXXXX)
shm_prefix=ivl-qemu-$$
shm_name=
nserver=0

server_pid=
qemu_pid=
host_pid=
npass=0
nfail=0
failed=

# shellcheck source=lib.sh
. "$here/lib.sh"

cleanup() {
	stop "$host_pid"
	stop "$qemu_pid"
	stop "$server_pid"
	host_pid='' qemu_pid='' server_pid=''
	rm -rf "$sockdir"
	rm -f "/dev/shm/$shm_prefix"-*
}
trap 'cleanup' EXIT
trap 'log "interrupted"; exit 130' INT TERM



log "work dir: $work"

# --- (a) setup --------------------------------------------------------------
qemu_prereqs
[ -x "$server_bin" ] || {
	log "FAIL: ivlink-server not found at $server_bin (set IVL_SERVER_BIN or IVL_BUILD_DIR)"
	exit 1
}

# --- (b) guest program, initramfs, host peer --------------------------------------
t0=$(date +%s.%N)
guest_progs=$("$here/build-guest.sh" "$work/guest" 2>"$work/build-guest.log") || {
	cat "$work/build-guest.log"
	log "FAIL: building the guest programs"
	exit 1
}
# shellcheck disable=SC2086
"$here/mkinitramfs.sh" "$work/initrd.gz" $guest_progs >"$work/mkinitramfs.log" 2>&1 || {
	cat "$work/mkinitramfs.log"
	log "FAIL: building the initramfs"
	exit 1
}
host_peer=$work/ivl-host-peer
if ! ${CC:-gcc} -std=gnu11 -O2 -Wall -Wextra -Werror -I"$build/include" -I"$repo/include" \
	-o "$host_peer" "$here/host/ivl-host-peer.c" \
	-L"$build/src" -livlink -Wl,-rpath,"$build/src" >"$work/build-host.log" 2>&1; then
	cat "$work/build-host.log"
	log "FAIL: building the host peer against $build/src/libivlink.so"
	exit 1
fi
log "built guest program, initramfs and host peer in $(elapsed "$t0") s"

# --- helpers --------------------------------------------------------------
server_opts=()
start_server() {
	# $1: log file.  Foreground (-F) and a private shm name (-M) when the
	# server knows them, as QEMU's ivshmem-server does.
	local help
	help=$(timeout 5 "$server_bin" --help 2>&1 </dev/null)
	# a new shm object per server: a stopped server may leave its object
	nserver=$((nserver + 1))
	shm_name=$shm_prefix-$nserver
	server_opts=(-S "$sockdir/sock" -l 1M -n 4)
	grep -qE '(^|[[:space:]])-F' <<<"$help" && server_opts+=(-F)
	grep -qE '(^|[[:space:]])-M' <<<"$help" && server_opts+=(-M "$shm_name")
	rm -f "$sockdir/sock"
	echo "$server_bin ${server_opts[*]}" >"$1"
	"$server_bin" "${server_opts[@]}" >>"$1" 2>&1 &
	server_pid=$!
	# Wait for a listening socket without connecting: a probe connection
	# would be a peer and could take an ID.
	for _ in $(seq 100); do
		if grep -q " 00010000 .* $sockdir/sock\$" /proc/net/unix 2>/dev/null; then
			return 0
		fi
		alive "$server_pid" || break
		sleep 0.1
	done
	cat "$1"
	fail server-start "ivlink-server did not listen on $sockdir/sock (see ${1#"$work"/})"
	return 1
}

boot_guest() {
	# boot_guest SERIAL-LOG KERNEL-ARGS...: start QEMU in the background.
	local serial=$1
	shift
	qemu_start_doorbell "$serial" "$sockdir/sock" 4 "$*"
}

wait_qemu() {
	# Returns QEMU's exit status; `timeout` already bounds the run.
	local rc
	wait "$qemu_pid"
	rc=$?
	qemu_pid=
	return $rc
}


# Offsets stay clear of the ivlink header at the start of the region.
GUEST_OFF=0x80000
HOST_OFF=0xc0000

# The whole application area: everything after the 20 KiB ivlink header of
# the server's default 256-entry peer table, to the end of the 1 MiB region.
APP_OFF=0x5000
APP_LEN=$((0x100000 - 0x5000))

# --- (c-e) boot test ----------------------------------------------------------
run_boot() {
	local serial=$work/boot-serial.log t rc
	log "--- boot test"
	start_server "$work/boot-server.log" || return 1
	t=$(date +%s.%N)
	boot_guest "$serial" \
		"ivl.run=/bin/ivshmem-probe,-i,0,-s,1048576,-w,$APP_OFF,-n,$APP_LEN,-p,3,-c,$APP_OFF"
	wait_qemu
	rc=$?
	log "boot: QEMU exited with $rc after $(elapsed "$t") s (boot to init: $(grep -a -m1 -o 'uptime [0-9.]* s' "$serial" | head -n1))"
	check_absent boot.no-kernel-panic "$serial" 'Kernel panic'
	check boot.result "$serial" '^IVL-RESULT: PASS'
	check boot.ivposition "$serial" '^IVL-ID 0$'
	check boot.bar2 "$serial" '^IVL-BAR2 1048576$'
	check boot.guest-verify "$serial" '^IVL-VERIFY-OK'
	# The region outlives the guest while the server runs: a host peer
	# must see what the guest wrote through BAR2, over the whole app area.
	timeout 20 "$host_peer" -S "$sockdir/sock" -c "$APP_OFF" -n "$APP_LEN" -q 3 -t 5000 \
		>"$work/boot-host.log" 2>&1
	check boot.host-sees-guest-write "$work/boot-host.log" '^HOST-VERIFY-OK'
	# And the other way: a host peer fills the whole app area with another
	# pattern and leaves; a second guest boot (IDs are given out
	# round-robin: guest 0, host peers 1 and 2, this guest 3) must read it
	# all through BAR2.
	timeout 20 "$host_peer" -S "$sockdir/sock" -w "$APP_OFF" -n "$APP_LEN" -p 5 -t 5000 \
		>"$work/boot-host-write.log" 2>&1
	check boot.host-wrote "$work/boot-host-write.log" '^HOST-ID '
	boot_guest "$work/boot2-serial.log" \
		"ivl.run=/bin/ivshmem-probe,-i,3,-s,1048576,-n,$APP_LEN,-p,5,-c,$APP_OFF"
	wait_qemu
	check boot.guest-sees-host-write "$work/boot2-serial.log" '^IVL-VERIFY-OK'
	check boot2.result "$work/boot2-serial.log" '^IVL-RESULT: PASS'
	stop "$server_pid"
	server_pid=
}

# --- doorbells over VFIO MSI-X ---------------------------------------------------
run_doorbell() {
	local serial=$work/doorbell-serial.log t rc args v
	log "--- doorbell test"
	start_server "$work/doorbell-server.log" || return 1
	t=$(date +%s.%N)
	# Guest (peer 0): wait for the host's pattern, enable MSI-X, ring the
	# host's vectors 0-3, then wait for its own vectors 0-3.
	args="ivl.vfio=1 ivl.timeout=90 ivl.run=/bin/ivshmem-probe,-V,-i,0,-s,1048576"
	args="$args,-n,4096,-p,2,-w,$GUEST_OFF,-m,$HOST_OFF,-v,4,-t,60000"
	for v in 0 1 2 3; do args="$args,-r,1:$v,-e,$v"; done
	boot_guest "$serial" "$args"
	if ! wait_for_line "$serial" '^IVL-RUN:' "$qemu_timeout" "$qemu_pid"; then
		fail doorbell.boot "guest did not reach its test program"
		stop "$qemu_pid"
		qemu_pid=
		check_absent doorbell.no-kernel-panic "$serial" 'Kernel panic'
		stop "$server_pid"
		server_pid=
		return 1
	fi
	log "doorbell: guest ready after $(elapsed "$t") s"
	# Host (peer 1): write the pattern the guest waits for, wait for the
	# guest's 4 doorbells, then ring the guest's 4 vectors.
	# The guest wrote its pattern before ringing: the host checks it after
	# the doorbells, with the same seed at the guest's offset.
	timeout 80 "$host_peer" -S "$sockdir/sock" -i 1 -w "$HOST_OFF" -n 4096 -p 2 \
		-c "$GUEST_OFF" -q 2 \
		-e 0 -e 1 -e 2 -e 3 -r 0:0 -r 0:1 -r 0:2 -r 0:3 -t 60000 \
		>"$work/doorbell-host.log" 2>&1 &
	host_pid=$!
	wait "$host_pid"
	host_pid=
	wait_qemu
	rc=$?
	log "doorbell: QEMU exited with $rc after $(elapsed "$t") s"
	check_absent doorbell.no-kernel-panic "$serial" 'Kernel panic'
	check doorbell.vfio-bind "$serial" '^IVL-VFIO: .* bound to vfio-pci'
	check doorbell.ivposition "$serial" '^IVL-ID 0$'
	check doorbell.host-id "$work/doorbell-host.log" '^HOST-ID 1 '
	check doorbell.guest-sees-host-write "$serial" '^IVL-MEM-OK'
	check doorbell.host-sees-guest-write "$work/doorbell-host.log" '^HOST-VERIFY-OK'
	check doorbell.msix-enabled "$serial" '^IVL-MSIX: enabled 4'
	for v in 0 1 2 3; do
		check "doorbell.guest-to-host-v$v" "$work/doorbell-host.log" \
			"^HOST-DOORBELL vector=$v "
	done
	for v in 0 1 2 3; do
		check "doorbell.host-to-guest-v$v" "$serial" "^IVL-IRQ $v "
	done
	check doorbell.result "$serial" '^IVL-RESULT: PASS'
	check_absent doorbell.no-errors "$serial" '^IVL-(ERROR|CHECK-FAIL)'
	stop "$server_pid"
	server_pid=
}

case $what in
boot) run_boot ;;
doorbell) run_doorbell ;;
all)
	run_boot
	run_doorbell
	;;
esac

log "--- $npass passed, $nfail failed; total wall time $(elapsed "$t_start") s"
[ -n "$failed" ] && log "failed:$failed"
log "logs kept in $work"
[ "$nfail" -eq 0 ] && [ "$npass" -gt 0 ]
