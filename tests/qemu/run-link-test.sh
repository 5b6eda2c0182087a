#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Real-QEMU tests of the guest backend of the link API: the guest runs the
# static `ivlink` CLI and ivl-guest-test (guest-link/, written against the
# public API only) over the ivshmem-doorbell device bound to vfio-pci.
#
#   link:    guest ID = the server's (ivlink --device auto info --json), BAR2
#            size = region size; the guest sees a host peer JOIN through the
#            peer table, rings it on every vector, gets MSI-X doorbells on
#            every vector through ivl_link_wait(), and sees the peer LEAVE;
#   poll:    the same without VFIO (sysfs BARs): the guest rings by register
#            writes and receives through the pending bits it polls;
#   pair:    two QEMUs on one server ring each other on every vector;
#   raw:     ivlink-server --raw: IVPosition and memory, no header, no peers,
#            and the region stays all zero (checked in the guest and in the
#            server's shm object afterwards);
#   hostile: a guest writes garbage over the whole ivlink header and peer
#            table; two host peers connected before keep ringing each other,
#            the server survives and still admits peers.
#
# With IVL_QEMU_ACCESS=kernel (meson suite `kernel`) the same cases run
# through ivlink's kernel driver instead of VFIO: kernel/ is built against
# the guest kernel's headers and loaded by /init, the guests are -M pc
# ($IVL_QEMU_MACHINE) without any IOMMU, `poll` is left out (all = link,
# pair, raw, hostile), and every guest's dmesg must be clean
# (lib.sh kernel_log_checks).
#
# usage: run-link-test.sh [link|poll|pair|raw|hostile|all]   (default: all)
# Environment: as run-boot-test.sh (IVL_BUILD_DIR, IVL_SERVER_BIN,
# IVL_QEMU_TIMEOUT, IVL_QEMU_WORK, IVL_QEMU_CACHE, IVL_QEMU_SKIP_SETUP, CC);
# IVL_QEMU_KEEP=1 keeps the logs of a passing run (failing runs always do).
# Exit status: 0 all passed, 1 a check failed, 77 could not run.

set -u

here=$(cd "$(dirname "$0")" && pwd)
qemu_timeout=${IVL_QEMU_TIMEOUT:-120}
cc=${CC:-gcc}
what=${1:-all}
case $what in link | poll | pair | raw | hostile | all) ;; *)
	echo "usage: $0 [link|poll|pair|raw|hostile|all]" >&2
	exit 2
	;;
esac

access=${IVL_QEMU_ACCESS:-vfio}
case $access in vfio | kernel) ;; *)
	echo "IVL_QEMU_ACCESS: vfio or kernel, not '$access'" >&2
	exit 2
	;;
esac
[ "$access" = kernel ] && qemu_machine=${IVL_QEMU_MACHINE:-pc}

# shellcheck source=lib.sh
. "$here/lib.sh"
server_run_init "link-$access"

# --- setup ---------------------------------------------------------------------
qemu_prereqs
server_prereqs "raw protocol peer"
static_guest_prereqs

# --- guest programs (static), initramfs, host peer ---------------------------------
t0=$(date +%s.%N)
mkdir -p "$work/guest"
gtest=$work/guest/ivl-guest-test
if ! $cc -static -O2 -std=gnu11 -Wall -Wextra -Werror -I"$build/include" -I"$repo/include" -o "$gtest" \
	"$here/guest-link/ivl-guest-test.c" "$here/guest-link/scenario.c" \
	"$build/src/libivlink_internal.a" -lpthread -lrt \
	>"$work/build-guest.log" 2>&1; then
	cat "$work/build-guest.log"
	log "FAIL: building ivl-guest-test"
	exit 1
fi
# The static CLI (build-cli.sh: meson's ivlink-static, or linked here).
gcli=$work/guest/ivlink
if ! "$here/build-cli.sh" "$build" "$gcli" >>"$work/build-guest.log" 2>&1; then
	cat "$work/build-guest.log"
	log "FAIL: building a static ivlink"
	exit 1
fi
# One script per case, so /init runs a single program.
cat >"$work/guest/guest-case" <<'EOF'
#!/bin/sh
# guest-case CASE ARGS...: run in the guest by /init.
case=$1
shift
if [ "$case" != pair ] && [ "$case" != hostile ]; then
	ivlink --device auto info --json >/tmp/info.json 2>/tmp/info.err
	rc=$?
	echo "IVL-INFO-JSON rc=$rc $(tr -d '\n' </tmp/info.json)"
	cat /tmp/info.err
	[ $rc -eq 0 ] || exit 1
fi
if [ "$case" = link ]; then
	# The rest of the CLI on the device ($IVLINK_DEVICE instead of --device).
	ivlink --device auto poke 0x100 0xcafef00d && echo "IVL-CLI-POKE rc=0"
	echo "IVL-CLI-PEEK $(IVLINK_DEVICE=auto ivlink peek --u32 0x100 2>&1 | tr -d '\n')"
	echo "IVL-CLI-PEERS rc=$(IVLINK_DEVICE=auto ivlink peers >/tmp/peers 2>&1; echo $?) $(tr '\n' ' ' </tmp/peers)"
	echo "IVL-CLI-DUMP $(ivlink --device auto dump --offset 0x100 --length 16 2>&1 | head -n 1)"
fi
if [ "$case" = raw ]; then
	# No peer set on a raw region: any ID is ringable (the device drops it).
	ivlink --device auto ring 9 all && echo "IVL-CLI-RING rc=0"
	ivlink --device auto listen --timeout 0.5 && echo "IVL-CLI-LISTEN rc=0"
fi
ivl-guest-test "$case" "$@" || exit 1
case " $* " in *" -N "*)
	# Without VFIO several processes share the device: ring myself with the
	# CLI while another CLI listens (the pending bit carries it, polled).
	ivlink --device auto listen --count 1 --type doorbell --timeout 30 >/tmp/listen.out 2>&1 &
	lp=$!
	sleep 2
	ivlink --device auto ring 0 2 && echo "IVL-CLI-RING-SELF rc=0"
	wait $lp
	echo "IVL-CLI-LISTEN-SELF rc=$? $(tr '\n' ' ' </tmp/listen.out)"
	;;
esac
exit 0
EOF
chmod 0755 "$work/guest/guest-case"
kmod=
[ "$access" = kernel ] && kernel_module_build "$work/kmod"
# shellcheck disable=SC2086 # $kmod: empty or one path
if ! "$here/mkinitramfs.sh" "$work/initrd.gz" $kmod "$gtest" "$gcli" "$work/guest/guest-case" \
	>"$work/mkinitramfs.log" 2>&1; then
	cat "$work/mkinitramfs.log"
	log "FAIL: building the initramfs"
	exit 1
fi
host_peer=$work/ivl-host-peer
if ! $cc -std=gnu11 -O2 -Wall -Wextra -Werror -I"$build/include" -I"$repo/include" -o "$host_peer" \
	"$here/host/ivl-host-peer.c" -L"$build/src" -livlink -Wl,-rpath,"$build/src" \
	>"$work/build-host.log" 2>&1; then
	cat "$work/build-host.log"
	log "FAIL: building the host peer"
	exit 1
fi
log "built guest programs, initramfs and host peer in $(elapsed "$t0") s"

# --- helpers -----------------------------------------------------------------------
boot_guest() {
	# boot_guest SERIAL-LOG KERNEL-ARGS...: QEMU in the background ($qemu_pid)
	local serial=$1
	shift
	if [ "$access" = kernel ]; then
		qemu_start "$serial" "$*" -chardev socket,path="$sockdir/sock",id=iv0 \
			-device ivshmem-doorbell,chardev=iv0,vectors=4
	else
		qemu_start_doorbell "$serial" "$sockdir/sock" 4 "$*"
	fi
	pids+=("$qemu_pid")
}

guest_checks() {
	# guest_checks PREFIX SERIAL
	check_absent "$1.no-kernel-panic" "$2" 'Kernel panic'
	check_absent "$1.no-guest-errors" "$2" '^(GUEST-ERROR|GUEST-CHECK-FAIL|ivlink: .*(error|cannot))'
	check "$1.result" "$2" '^IVL-RESULT: PASS'
	[ "$access" = kernel ] && kernel_log_checks "$1" "$2"
}

GARGS="ivl.vfio=1 ivl.timeout=90"
[ "$access" = kernel ] && GARGS="ivl.kmod=1 ivl.dmesg=1 ivl.timeout=90"

# --- link: ID, BAR2, doorbells both ways on every vector, JOIN/LEAVE -----------------
run_link() {
	# run_link NAME: "link" (VFIO, MSI-X) or "poll" (no VFIO: sysfs BARs,
	# the guest receives through the pending bits it polls)
	local n=$1 serial=$work/$1-serial.log hl=$work/$1-host.log t v hp gargs=$GARGS nf= acc
	[ "$n" = poll ] && gargs="ivl.timeout=90" nf=",-N"
	log "--- $n test"
	start_server "$work/$n-server.log" || return 1
	t=$(date +%s.%N)
	boot_guest "$serial" "$gargs ivl.run=/bin/guest-case,link,-i,0,-s,1048576,-v,4,-P,1,-A,262144,-t,60000$nf"
	if ! wait_for_line "$serial" '^GUEST-READY' "$qemu_timeout" "$qemu_pid"; then
		fail "$n.boot" "guest did not reach GUEST-READY"
	else
		log "$n: guest ready after $(elapsed "$t") s"
		# Host peer 1: 4 doorbells from the guest, each acknowledged at
		# application offset 256 KiB (the guest re-rings what is not: its
		# QEMU may not have read our eventfds yet when it sees us JOIN),
		# then ring its 4 vectors, then leave (the guest sees that in the
		# peer table).
		timeout 80 "$host_peer" -S "$sockdir/sock" -i 1 -a 262144 -e 0 -e 1 -e 2 -e 3 \
			-r 0:0 -r 0:1 -r 0:2 -r 0:3 -t 60000 >"$hl" 2>&1 &
		hp=$!
		pids+=("$hp")
		wait_pid "$hp" 85
	fi
	wait_pid "$qemu_pid" "$qemu_timeout"
	log "$n: done after $(elapsed "$t") s"
	check "$n".info-json-id "$serial" '^IVL-INFO-JSON rc=0 .*"region_size": *1048576, *"id": *0,'
	check "$n".info-json-vectors "$serial" '^IVL-INFO-JSON rc=0 .*"id": *0, *"vectors": *4,'
	acc=$access
	[ "$n" = poll ] && acc=sysfs
	check "$n".info-json-access "$serial" "^IVL-INFO-JSON rc=0 .*\"access\": *\"$acc\""
	check "$n".cli-poke "$serial" '^IVL-CLI-POKE rc=0'
	check "$n".cli-peek "$serial" '^IVL-CLI-PEEK .*(0x)?cafef00d'
	check "$n".cli-peers "$serial" '^IVL-CLI-PEERS rc=0'
	check "$n".cli-dump "$serial" '^IVL-CLI-DUMP .*0d f0 fe ca'
	check "$n".guest-id "$serial" '^GUEST-CHECK-OK id'
	check "$n".bar2-size "$serial" '^GUEST-CHECK-OK bar2-size'
	check "$n".vectors "$serial" '^GUEST-CHECK-OK vectors'
	check "$n".host-id "$hl" '^HOST-ID 1 '
	check "$n".guest-sees-join "$serial" '^GUEST-JOIN 1 vectors=4'
	for v in 0 1 2 3; do
		check "$n.guest-to-host-v$v" "$hl" "^HOST-DOORBELL vector=$v "
	done
	for v in 0 1 2 3; do
		check "$n.host-to-guest-v$v" "$serial" "^GUEST-DOORBELL vector=$v "
	done
	check "$n".guest-sees-leave "$serial" '^GUEST-LEAVE 1$'
	if [ "$n" = poll ]; then
		check poll.cli-ring-self "$serial" '^IVL-CLI-RING-SELF rc=0'
		check poll.cli-listen-self "$serial" '^IVL-CLI-LISTEN-SELF rc=0 .*doorbell vector 2 count'
	fi
	guest_checks "$n" "$serial"
	stop_all
}

# --- pair: two guests ring each other --------------------------------------------------
run_pair() {
	local s0=$work/pair0-serial.log s1=$work/pair1-serial.log t q0 q1
	log "--- pair test"
	start_server "$work/pair-server.log" || return 1
	t=$(date +%s.%N)
	boot_guest "$s0" "$GARGS ivl.run=/bin/guest-case,pair,-i,0,-P,1,-t,70000"
	q0=$qemu_pid
	# Peer 0 must be admitted before the second QEMU connects.
	wait_for_line "$work/pair-server.log" 'peer 0 joined' 10
	boot_guest "$s1" "$GARGS ivl.run=/bin/guest-case,pair,-i,1,-P,0,-t,70000"
	q1=$qemu_pid
	wait_pid "$q0" "$qemu_timeout"
	wait_pid "$q1" "$qemu_timeout"
	log "pair: done after $(elapsed "$t") s"
	check pair.g0-id "$s0" '^GUEST-ID 0$'
	check pair.g1-id "$s1" '^GUEST-ID 1$'
	check pair.g0-sees-g1 "$s0" '^GUEST-JOIN 1 vectors=4'
	check pair.g1-sees-g0 "$s1" '^GUEST-JOIN 0 vectors=4'
	check pair.g0-doorbells "$s0" '^GUEST-CHECK-OK doorbells-on-all-4-vectors'
	check pair.g1-doorbells "$s1" '^GUEST-CHECK-OK doorbells-on-all-4-vectors'
	guest_checks pair.g0 "$s0"
	guest_checks pair.g1 "$s1"
	stop_all
}

# --- raw: no header ------------------------------------------------------------------
run_raw() {
	local serial=$work/raw-serial.log t
	log "--- raw test"
	start_server "$work/raw-server.log" --raw || return 1
	t=$(date +%s.%N)
	boot_guest "$serial" "$GARGS ivl.run=/bin/guest-case,raw,-i,0,-s,1048576,-v,4,-t,30000"
	wait_pid "$qemu_pid" "$qemu_timeout"
	log "raw: done after $(elapsed "$t") s"
	check raw.info-json "$serial" '^IVL-INFO-JSON rc=0 .*"region_size": *1048576, *"id": *0,.*"header": *null'
	check raw.cli-ring "$serial" '^IVL-CLI-RING rc=0'
	check raw.cli-listen "$serial" '^IVL-CLI-LISTEN rc=0'
	check raw.guest-id "$serial" '^GUEST-CHECK-OK id'
	check raw.bar2-size "$serial" '^GUEST-CHECK-OK bar2-size'
	check raw.no-header "$serial" '^GUEST-CHECK-OK raw-no-header'
	check raw.no-peers "$serial" '^GUEST-CHECK-OK raw-no-peers'
	check raw.peer-vectors "$serial" '^GUEST-CHECK-OK raw-peer-vectors-any-id'
	check raw.ring-absent "$serial" '^GUEST-CHECK-OK raw-ring-absent-id'
	check raw.guest-sees-zero-region "$serial" '^GUEST-CHECK-OK raw-region-untouched'
	# The server's object, after the guest (and the CLI) ran: still zero.
	if [ -f "/dev/shm/$shm_name" ] && cmp -s -n 1048576 "/dev/shm/$shm_name" /dev/zero; then
		pass "raw.region-untouched-host: /dev/shm/$shm_name all zero"
	else
		fail raw.region-untouched-host "/dev/shm/$shm_name not all zero (or missing)"
	fi
	guest_checks raw "$serial"
	stop_all
}

# --- hostile: garbage over the header ------------------------------------------------
run_hostile() {
	local serial=$work/hostile-serial.log h1=$work/hostile-h1.log h2=$work/hostile-h2.log
	local t p1 p2
	log "--- hostile test"
	start_server "$work/hostile-server.log" || return 1
	t=$(date +%s.%N)
	boot_guest "$serial" "$GARGS ivl.run=/bin/guest-case,hostile,-i,0,-P,1,-P,2,-t,60000"
	if ! wait_for_line "$serial" '^GUEST-READY' "$qemu_timeout" "$qemu_pid"; then
		fail hostile.boot "guest did not reach GUEST-READY"
		stop_all
		return 1
	fi
	# Host peers 1 and 2, connected before the garbage: 2 rings 1's vector 1
	# once the header is garbage (the guest rings vector 0 only).
	timeout 80 "$host_peer" -S "$sockdir/sock" -i 1 -e 1 -t 60000 >"$h1" 2>&1 &
	p1=$!
	pids+=("$p1")
	wait_for_line "$h1" '^HOST-ID' 10 "$p1"
	timeout 80 "$host_peer" -S "$sockdir/sock" -i 2 -f "$work/hostile.go" -r 1:1 -t 60000 \
		>"$h2" 2>&1 &
	p2=$!
	pids+=("$p2")
	if wait_for_line "$serial" '^GUEST-HOSTILE-DONE' 60 "$qemu_pid"; then
		pass "hostile.guest-wrote-garbage: $(tr -d '\r' <"$serial" | grep -a -m1 '^GUEST-HOSTILE wrote')"
	else
		fail hostile.guest-wrote-garbage "no GUEST-HOSTILE-DONE"
	fi
	touch "$work/hostile.go"
	wait_pid "$p2" 30
	wait_pid "$p1" 30
	wait_pid "$qemu_pid" "$qemu_timeout"
	log "hostile: done after $(elapsed "$t") s"
	check hostile.h2-rang "$h2" '^HOST-RING peer=1 vector=1'
	check hostile.h1-got-doorbell "$h1" '^HOST-DOORBELL vector=1 '
	check hostile.h1-ok "$h1" '^HOST-OK'
	if alive "$server_pid"; then pass hostile.server-alive; else fail hostile.server-alive "ivlink-server died"; fi
	# Admission after the garbage, by a bare protocol peer (a library peer
	# rightly refuses the garbage header).
	timeout 10 python3 "$here/host/raw-peer.py" "$sockdir/sock" 5 >"$work/hostile-raw.log" 2>&1
	check hostile.server-admits "$work/hostile-raw.log" '^RAW-ID [0-9]+'
	check hostile.server-sends-shm "$work/hostile-raw.log" '^RAW-SHM'
	if alive "$server_pid"; then pass hostile.server-alive-after; else fail hostile.server-alive-after "ivlink-server died"; fi
	check_absent hostile.no-kernel-panic "$serial" 'Kernel panic'
	check hostile.result "$serial" '^IVL-RESULT: PASS'
	[ "$access" = kernel ] && kernel_log_checks hostile "$serial"
	stop_all
}

case $what in
link) run_link link ;;
poll) run_link poll ;;
pair) run_pair ;;
raw) run_raw ;;
hostile) run_hostile ;;
all)
	run_link link
	[ "$access" = kernel ] || run_link poll
	run_pair
	run_raw
	run_hostile
	;;
esac

qemu_finish
