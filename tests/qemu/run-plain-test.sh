#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Real-QEMU tests of serverless mode (docs/plain.md): a QEMU guest with
#   -object memory-backend-file,share=on,mem-path=FILE -device ivshmem-plain
# and host processes using `ivlink --plain FILE:1M` share one file with no
# server.  The guest runs guest-plain/ivl-plain-guest (static, public API:
# the guest backend on the plain device, then ivl_plain_attach on BAR2).
#
#   host:   the host creates and formats FILE first; QEMU maps it; the guest
#           finds the header READY (formats nothing, same epoch);
#   qemu:   QEMU starts first and creates FILE itself, all zero; the host
#           (not the creator) wins the claim and formats while the guest
#           waits; the guest formats nothing;
#   guest:  QEMU starts first, the guest claims and formats; the host opens
#           afterwards and finds the guest's header.
# In every case the guest writes a pattern and a nonce in the app area, the
# host (the CLI: peek/dump/poke) checks them and answers nonce + 1, and the
# guest sees the answer: memory only, no doorbells.  After the cases the host
# asks for a size the file does not have and must get a clear error.
#
# With IVL_QEMU_ACCESS=kernel the guest reaches the device through ivlink's
# kernel driver (ivlink_ivshmem.ko, built against the guest kernel's
# headers and loaded at boot) instead of sysfs: an ivshmem-plain device has
# no MSI-X, so the driver maps BAR2 and refuses doorbells.
#
# usage: run-plain-test.sh [host|qemu|guest|all]   (default: all)
# Environment: IVL_QEMU_ACCESS (sysfs, the default, or kernel), IVL_BUILD_DIR, IVL_CLI_BIN, IVL_QEMU_TIMEOUT, IVL_QEMU_WORK,
# IVL_QEMU_CACHE, IVL_QEMU_SKIP_SETUP, CC; IVL_QEMU_KEEP=1 keeps the logs of
# a passing run.  Exit status: 0 all passed, 1 a check failed, 77 could not run.

set -u

here=$(cd "$(dirname "$0")" && pwd)
qemu_timeout=${IVL_QEMU_TIMEOUT:-90}
cc=${CC:-gcc}
what=${1:-all}
case $what in host | qemu | guest | all) ;; *)
	echo "usage: $0 [host|qemu|guest|all]" >&2
	exit 2
	;;
esac

t_start=$(date +%s.%N)
mkdir -p "$here/work"
work=${IVL_QEMU_WORK:-$(mktemp -d "$here/work/plain.XXXXXX")}
mkdir -p "$work"
obj_prefix=/dev/shm/ivl-qplain-$$
pids=()
npass=0
nfail=0
failed=

# shellcheck source=lib.sh
. "$here/lib.sh"

stop_all() {
	local p
	for p in "${pids[@]}"; do stop "$p"; done
	pids=()
}

cleanup() {
	stop_all
	rm -f "$obj_prefix"-*
}
trap 'cleanup' EXIT
trap 'log "interrupted"; exit 130' INT TERM

log "work dir: $work"

# --- setup ---------------------------------------------------------------------
qemu_prereqs
cli_prereqs
static_guest_prereqs

t0=$(date +%s.%N)
mkdir -p "$work/guest"
gprog=$work/guest/ivl-plain-guest
if ! $cc -static -O2 -std=gnu11 -Wall -Wextra -Werror -I"$build/include" -I"$repo/include" -o "$gprog" \
	"$here/guest-plain/ivl-plain-guest.c" "$build/src/libivlink_internal.a" -lpthread -lrt \
	>"$work/build-guest.log" 2>&1; then
	cat "$work/build-guest.log"
	log "FAIL: building ivl-plain-guest"
	exit 1
fi
access=${IVL_QEMU_ACCESS:-sysfs}
kmod=
kargs=
if [ "$access" = kernel ]; then
	kernel_module_build "$work/kmod"
	kargs="ivl.kmod=1 ivl.dmesg=1 "
fi
# shellcheck disable=SC2086 # $kmod: no argument when empty
if ! "$here/mkinitramfs.sh" "$work/initrd.gz" "$gprog" $kmod >"$work/mkinitramfs.log" 2>&1; then
	cat "$work/mkinitramfs.log"
	log "FAIL: building the initramfs"
	exit 1
fi
log "built the guest program and the initramfs in $(elapsed "$t0") s"

# --- helpers -----------------------------------------------------------------------
qemu_pid=
boot_guest() {
	# boot_guest SERIAL FILE GUEST-ARGS: QEMU in the background ($qemu_pid)
	# with an ivshmem-plain device on FILE; GUEST-ARGS comma separated
	local serial=$1 file=$2 gargs=$3
	qemu_start "$serial" "${kargs}ivl.timeout=60 ivl.run=/bin/ivl-plain-guest,-s,1048576,-t,40000,$gargs" \
		-object memory-backend-file,id=m0,share=on,mem-path="$file",size=1M \
		-device ivshmem-plain,memdev=m0
	pids+=("$qemu_pid")
}

host_open() {
	# host_open NAME FILE: `ivlink -v --plain FILE:1M info --json`, output
	# in $work/NAME-host-info.{json,err}; the epoch in $host_epoch
	local n=$1 file=$2
	"$cli_bin" -v --plain "$file:1M" info --json >"$work/$n-host-info.json" \
		2>"$work/$n-host-info.err"
	echo "rc=$?" >>"$work/$n-host-info.err"
	host_epoch=$(sed -n 's/.*"epoch": *"\(0x[0-9a-f]*\)".*/\1/p' "$work/$n-host-info.json")
}

host_answer() {
	# host_answer NAME FILE: wait for the guest's flag in shared memory,
	# check its pattern, answer nonce + 1 (the CLI; no doorbells)
	local n=$1 file=$2 flag nonce i ans
	for i in $(seq 400); do
		flag=$("$cli_bin" --plain "$file" peek --u32 0x100 2>/dev/null | cut -d' ' -f1)
		[ "$flag" = 0x600d0001 ] && break
		alive "$qemu_pid" || break
		sleep 0.1
	done
	if [ "$flag" != 0x600d0001 ]; then
		fail "$n.host-sees-flag" "flag at app 0x100 is '$flag'"
		return 1
	fi
	pass "$n.host-sees-flag: $flag after $i polls"
	"$cli_bin" --plain "$file" dump --offset 0x1000 --length 32 >"$work/$n-host-dump.txt" 2>&1
	check "$n.host-sees-pattern" "$work/$n-host-dump.txt" '\|ivlink-plain-gue'
	nonce=$("$cli_bin" --plain "$file" peek --u32 0x104 | cut -d' ' -f2)
	ans=$(((nonce + 1) & 0xffffffff))
	"$cli_bin" --plain "$file" poke --u32 0x200 "$ans" >"$work/$n-host-poke.txt" 2>&1
	check "$n.host-answered" "$work/$n-host-poke.txt" '^wrote 4 bytes'
}

guest_results() {
	# guest_results NAME SERIAL EXPECT-FORMATTED
	local n=$1 serial=$2 guest_epoch
	check "$n.guest-link" "$serial" "^GUEST-PLAIN-LINK id=[0-9]+ size=1048576 access=$access"
	[ "$access" = kernel ] && kernel_log_checks "$n" "$serial"
	check "$n.guest-ring-fails" "$serial" '^GUEST-CHECK-OK ring-fails'
	check "$n.guest-formatted-$3" "$serial" "^GUEST-PLAIN-HEADER formatted=$3 "
	check "$n.guest-header" "$serial" '^GUEST-CHECK-OK header'
	check "$n.guest-answer" "$serial" '^GUEST-CHECK-OK answer'
	guest_epoch=$(tr -d '\r' <"$serial" | sed -n 's/^GUEST-PLAIN-HEADER .*epoch=\(0x[0-9a-f]*\).*/\1/p')
	if [ -n "$guest_epoch" ] && [ $((guest_epoch)) -eq $((host_epoch)) ]; then
		pass "$n.same-epoch: $guest_epoch"
	else
		fail "$n.same-epoch" "guest '$guest_epoch', host '$host_epoch'"
	fi
	check_absent "$n.no-kernel-panic" "$serial" 'Kernel panic'
	check_absent "$n.no-guest-errors" "$serial" '^(GUEST-ERROR|GUEST-CHECK-FAIL)'
	check "$n.result" "$serial" '^IVL-RESULT: PASS'
}

converse() {
	# converse NAME FILE SERIAL T0 EXPECT-FORMATTED: once the guest is up,
	# answer it through memory, wait for QEMU to finish, check the results
	local n=$1 file=$2 serial=$3
	if wait_for_line "$serial" '^GUEST-READY' "$qemu_timeout" "$qemu_pid"; then
		host_answer "$n" "$file"
	else
		fail "$n.boot" "guest did not reach GUEST-READY"
	fi
	wait_pid "$qemu_pid" "$qemu_timeout"
	log "$n: done after $(elapsed "$4") s"
	guest_results "$n" "$serial" "$5"
}

# --- host: the host creates and formats, QEMU maps the existing file ---------------
run_host() {
	local n=host file=$obj_prefix-host serial=$work/host-serial.log t
	log "--- host test"
	t=$(date +%s.%N)
	host_open "$n" "$file"
	check host.created-and-formatted "$work/$n-host-info.err" 'created, formatted the header'
	boot_guest "$serial" "$file" "-F,0"
	converse "$n" "$file" "$serial" "$t" 0
	stop_all
}

# --- qemu: QEMU creates the file, the host wins the claim ----------------------------
run_qemu() {
	local n=qemu file=$obj_prefix-qemu serial=$work/qemu-serial.log t i
	log "--- qemu test"
	t=$(date +%s.%N)
	rm -f "$file"
	boot_guest "$serial" "$file" "-W,-F,0"
	for i in $(seq 100); do
		[ "$(stat -c %s "$file" 2>/dev/null)" = 1048576 ] && break
		sleep 0.1
	done
	if cmp -s -n 1048576 "$file" /dev/zero && [ "$(stat -c %s "$file")" = 1048576 ]; then
		pass "$n.qemu-created-zero-file: $file"
	else
		fail "$n.qemu-created-zero-file" "$file missing, not 1 MiB, or not zero"
	fi
	host_open "$n" "$file"
	check "$n.host-formatted" "$work/$n-host-info.err" '^ivlink: .*: formatted the header'
	check_absent "$n.host-not-creator" "$work/$n-host-info.err" 'created'
	converse "$n" "$file" "$serial" "$t" 0
	stop_all
}

# --- guest: QEMU creates the file, the guest formats -----------------------------------
run_guest() {
	local n=guest file=$obj_prefix-guest serial=$work/guest-serial.log t
	log "--- guest test"
	t=$(date +%s.%N)
	rm -f "$file"
	boot_guest "$serial" "$file" "-F,1"
	# The host opens only once the guest has formatted and written.
	wait_for_line "$serial" '^GUEST-PLAIN-WROTE' "$qemu_timeout" "$qemu_pid"
	host_open "$n" "$file"
	check "$n.host-found-ready" "$work/$n-host-info.err" '^ivlink: .*: header was ready'
	converse "$n" "$file" "$serial" "$t" 1
	# Sizes must agree: asking for another size fails, naming both.
	"$cli_bin" --plain "$file:2M" info >/dev/null 2>"$work/$n-mismatch.err"
	echo "rc=$?" >>"$work/$n-mismatch.err"
	check "$n.size-mismatch-rc" "$work/$n-mismatch.err" '^rc=1$'
	check "$n.size-mismatch-message" "$work/$n-mismatch.err" 'has 1048576 bytes, asked for 2097152'
	stop_all
}

case $what in
host) run_host ;;
qemu) run_qemu ;;
guest) run_guest ;;
all)
	run_host
	run_qemu
	run_guest
	;;
esac

qemu_finish
