# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Shell helpers shared by the QEMU test scripts (sourced; they set $here
# first, then $work, npass, nfail, failed).
# shellcheck disable=SC2154

# The paths every script uses, from $here (tests/qemu, set by the sourcing
# script); IVL_BUILD_DIR, IVL_SERVER_BIN and IVL_CLI_BIN override them.
repo=$(cd "$here/../.." && pwd)
build=${IVL_BUILD_DIR:-$repo/build}
server_bin=${IVL_SERVER_BIN:-$build/tools/ivlink-server/ivlink-server}
cli_bin=${IVL_CLI_BIN:-$build/tools/ivlink/ivlink}

log() { printf '%s\n' "$*" | tee -a "$work/summary.txt"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

alive() {
	# kill -0 also succeeds on a zombie child, which has exited
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ]
}

stop() {
	# $1: pid; TERM, then KILL after 5 s; only our own children.
	local pid=$1
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do
		alive "$pid" || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# Results: every check is one "PASS name: ..." or "FAIL name: ..." line.
pass() {
	npass=$((npass + 1))
	log "PASS $*"
}
fail() {
	nfail=$((nfail + 1))
	failed="$failed $1"
	log "FAIL $*"
}

check() {
	# check NAME FILE REGEX: pass when FILE has a line matching REGEX
	# (the serial console ends lines with CR LF)
	local name=$1 file=$2 re=$3 line
	line=$(tr -d '\r' <"$file" 2>/dev/null | grep -a -m1 -E "$re")
	if [ -n "$line" ]; then pass "$name: $line"; else fail "$name" "no line matching /$re/ in ${file#"$work"/}"; fi
}

check_absent() {
	local name=$1 file=$2 re=$3 line
	line=$(tr -d '\r' <"$file" 2>/dev/null | grep -a -m1 -E "$re")
	if [ -z "$line" ]; then pass "$name"; else fail "$name" "$line"; fi
}

wait_for_line() {
	# wait_for_line FILE REGEX SECONDS [PID]: bounded poll of a growing log;
	# gives up early when PID (QEMU) has exited
	local n=$(($3 * 10))
	while [ "$n" -gt 0 ]; do
		n=$((n - 1))
		[ -f "$1" ] && tr -d "\r" <"$1" 2>/dev/null | grep -aqE "$2" && return 0
		[ -n "${4:-}" ] && ! alive "$4" && return 1
		sleep 0.1
	done
	return 1
}

wait_pid() {
	# wait_pid PID SECONDS: bounded wait for a child; kills it past the bound
	local n=$(($2 * 10))
	while [ "$n" -gt 0 ] && alive "$1"; do
		n=$((n - 1))
		sleep 0.1
	done
	alive "$1" && stop "$1"
	wait "$1" 2>/dev/null
}

qemu_prereqs() {
	# Set up the machine (tests/qemu/setup.sh) and load the kernel's
	# paths; exit 77 (meson: SKIP) when this machine cannot run guests.
	if [ "${IVL_QEMU_SKIP_SETUP:-0}" != 1 ]; then
		if ! "$here/setup.sh" >"$work/setup.log" 2>&1; then
			cat "$work/setup.log"
			log "SKIP: setup.sh failed (see $work/setup.log)"
			exit 77
		fi
	fi
	cache=${IVL_QEMU_CACHE:-$here/cache}
	# shellcheck disable=SC1091
	. "$cache/kernel.env" || {
		log "SKIP: no kernel in $cache"
		exit 77
	}
	command -v qemu-system-x86_64 >/dev/null || {
		log "SKIP: qemu-system-x86_64 missing"
		exit 77
	}
}

static_guest_prereqs() {
	# Static guest programs link $build/src/libivlink_internal.a: exit 77
	# (SKIP) for a sanitizer build (no static ASan), 1 when it is missing.
	local sanitize
	sanitize=$(python3 -c 'import json,sys
for o in json.load(open(sys.argv[1])):
    if o["name"] == "b_sanitize": print(o["value"])' \
		"$build/meson-info/intro-buildoptions.json" 2>/dev/null)
	case ${sanitize:-none} in none | "[]") ;; *)
		log "SKIP: $build is a sanitizer build (b_sanitize=$sanitize); static guest programs need a plain build"
		exit 77
		;;
	esac
	[ -f "$build/src/libivlink_internal.a" ] || {
		log "FAIL: $build/src/libivlink_internal.a missing (build first)"
		exit 1
	}
}

qemu_start() {
	# qemu_start SERIAL-LOG KERNEL-ARGS QEMU-ARGS...: boot the guest kernel
	# and $work/initrd.gz in the background under $qemu_timeout; sets
	# $qemu_pid; $qemu_machine (default q35) is the -M, $qemu_smp (default 1)
	# the vCPUs.  no_timer_check: on a loaded host the emulated timer can
	# miss the kernel's boot-time check, which panics ("timer doesn't work
	# through Interrupt-remapped IO-APIC").
	local serial=$1 kargs=$2
	shift 2
	timeout -k 5 "$qemu_timeout" qemu-system-x86_64 \
		-M "${qemu_machine:-q35}" -m 256 -smp "${qemu_smp:-1}" -nographic -no-reboot -net none \
		-kernel "$IVL_VMLINUZ" -initrd "$work/initrd.gz" \
		-append "console=ttyS0 no_timer_check panic=-1 quiet $kargs" \
		"$@" >"$serial" 2>&1 </dev/null &
	qemu_pid=$!
}

qemu_start_doorbell() {
	# qemu_start_doorbell SERIAL-LOG SOCKET VECTORS KERNEL-ARGS: an
	# ivshmem-doorbell device on the server at SOCKET.  intel-iommu must
	# precede the device, and intremap=on gives vfio_iommu_type1 the
	# interrupt remapping it insists on, so the guest can bind vfio-pci.
	qemu_start "$1" "intel_iommu=on $4" \
		-device intel-iommu,intremap=on \
		-chardev socket,path="$2",id=iv0 \
		-device ivshmem-doorbell,chardev=iv0,vectors="$3"
}

qemu_finish() {
	# Print the totals and exit: 0 when every check passed (the logs are
	# removed unless IVL_QEMU_KEEP=1 or IVL_QEMU_WORK was given), else 1.
	log "--- $npass passed, $nfail failed; total wall time $(elapsed "$t_start") s"
	[ -n "$failed" ] && log "failed:$failed"
	if [ "$nfail" -eq 0 ] && [ "$npass" -gt 0 ]; then
		if [ "${IVL_QEMU_KEEP:-0}" != 1 ] && [ -z "${IVL_QEMU_WORK:-}" ]; then
			rm -rf "$work"
			echo "(logs removed: all passed; IVL_QEMU_KEEP=1 keeps them)"
		else
			echo "logs kept in $work"
		fi
		exit 0
	fi
	log "logs kept in $work"
	exit 1
}

kernel_log_checks() {
	# kernel_log_checks PREFIX SERIAL: the guest's dmesg (printed by /init
	# with ivl.dmesg=1) holds no WARNING, BUG, Oops or Call Trace, and the
	# kernel is tainted by nothing but loading ivlink's module: O
	# (out-of-tree, 4096) and E (unsigned, 8192: Debian's kernel checks
	# module signatures and nobody signs a module built here).
	local name=$1 file=$2 taint bad
	if ! tr -d '\r' <"$file" 2>/dev/null | grep -aq '^IVL-DMESG-END'; then
		fail "$name.dmesg" "no kernel log printed (IVL-DMESG-END missing)"
		return
	fi
	bad=$(tr -d '\r' <"$file" | sed -n '/^IVL-DMESG-BEGIN/,/^IVL-DMESG-END/p' |
		grep -a -m1 -E '(^|[^A-Za-z])(WARNING|BUG|Oops)([^A-Za-z]|$)|Call Trace')
	if [ -z "$bad" ]; then pass "$name.dmesg-clean"; else fail "$name.dmesg-clean" "$bad"; fi
	taint=$(tr -d '\r' <"$file" | sed -n 's/^IVL-TAINT: *\([0-9]*\).*/\1/p' | head -n1)
	if [ -n "$taint" ] && [ $((taint & ~(4096 | 8192))) -eq 0 ]; then
		pass "$name.taint: $taint (O/E only)"
	else
		fail "$name.taint" "tainted '$taint' (allowed: 4096 O, 8192 E)"
	fi
}

kernel_module_build() {
	# kernel_module_build OUTDIR: ivlink_ivshmem.ko for the guest kernel
	# ($IVL_KVER) from $repo/kernel against /usr/src/linux-headers-$IVL_KVER
	# (IVL_KDIR overrides); sets $kmod.  Exit 77 (SKIP) without headers.
	local kdir=${IVL_KDIR:-/usr/src/linux-headers-$IVL_KVER}
	if [ ! -f "$kdir/Makefile" ]; then
		log "SKIP: no kernel headers for $IVL_KVER in $kdir (apt-get install linux-headers-$IVL_KVER)"
		exit 77
	fi
	# W=1 and sparse, every warning fatal (kernel/check-build.sh).
	if ! "$repo/kernel/check-build.sh" "$kdir" "$1" >"$work/kmod-build.log" 2>&1; then
		cat "$work/kmod-build.log"
		fail kernel-build "ivlink_ivshmem.ko against $kdir: not built or not warning-clean"
		qemu_finish
	fi
	# shellcheck disable=SC2034 # used by the sourcing script
	kmod=$1/ivlink_ivshmem.ko
	pass "kernel-build: $(tail -n 1 "$work/kmod-build.log")"
}

# --- runs with one ivlink-server at a time (run-link-test, run-kernel-test) ---

server_run_init() {
	# server_run_init KIND: the work dir ($IVL_QEMU_WORK or a new
	# work/KIND.XXXXXX), a short socket dir (sun_path is 108 bytes), the
	# result counters, and the cleanup traps; call right after sourcing.
	t_start=$(date +%s.%N)
	mkdir -p "$here/work"
	work=${IVL_QEMU_WORK:-$(mktemp -d "$here/work/$1.XXXXXX")}
	mkdir -p "$work"
	sockdir=$(mktemp -d /tmp/ivlq.XXXXXX)
	shm_prefix=ivl-q$1-$$
	shm_name=
	nserver=0
	server_pid=
	qemu_pid=
	pids=()
	npass=0
	nfail=0
	failed=
	trap 'server_run_cleanup' EXIT
	trap 'log "interrupted"; exit 130' INT TERM
	log "work dir: $work"
}

stop_all() {
	# every child in $pids, then the server
	local p
	for p in "${pids[@]}"; do stop "$p"; done
	pids=()
	stop "$server_pid"
	server_pid=
}

server_run_cleanup() {
	stop_all
	rm -rf "$sockdir"
	rm -f "/dev/shm/$shm_prefix"-*
}

server_prereqs() {
	# server_prereqs WHY-PYTHON: python3 (exit 77 without) and the server
	# binary (exit 1 without)
	command -v python3 >/dev/null || {
		log "SKIP: python3 missing ($1)"
		exit 77
	}
	[ -x "$server_bin" ] || {
		log "FAIL: ivlink-server not found at $server_bin"
		exit 1
	}
}

cli_prereqs() {
	# cli_prereqs: the ivlink CLI binary $cli_bin (exit 1 without)
	[ -x "$cli_bin" ] || {
		log "FAIL: the ivlink CLI not found at $cli_bin"
		exit 1
	}
}

start_server() {
	# start_server LOG [EXTRA-OPTIONS...]: 1 MiB, 4 vectors, a new shm
	# object per start ($shm_name); waits until it listens
	local logf=$1
	shift
	nserver=$((nserver + 1))
	shm_name=$shm_prefix-$nserver
	rm -f "$sockdir/sock"
	echo "$server_bin -S $sockdir/sock -l 1M -n 4 -F -M $shm_name $*" >"$logf"
	"$server_bin" -S "$sockdir/sock" -l 1M -n 4 -F -M "$shm_name" "$@" >>"$logf" 2>&1 &
	server_pid=$!
	for _ in $(seq 100); do
		grep -q " 00010000 .* $sockdir/sock\$" /proc/net/unix 2>/dev/null && return 0
		alive "$server_pid" || break
		sleep 0.1
	done
	fail server-start "ivlink-server did not listen (see ${logf#"$work"/})"
	return 1
}

virtio_guest_initramfs() {
	# virtio_guest_initramfs "MODULES" GUEST-FILE...: build ivlink_ivshmem.ko
	# and virtio_ivlink.ko (kernel_module_build), and $work/initrd.gz with
	# them, the guest kernel's MODULES (IVL_INITRAMFS_MODULES) and the
	# guest files (copied to $work/guest first); exits 1 on failure.
	local mods=$1 f t0 files=()
	shift
	t0=$(date +%s.%N)
	kernel_module_build "$work/kmod"
	mkdir -p "$work/guest"
	for f in "$@"; do
		cp "$f" "$work/guest/"
		files+=("$work/guest/$(basename "$f")")
	done
	if ! IVL_INITRAMFS_MODULES=$mods "$here/mkinitramfs.sh" "$work/initrd.gz" "$kmod" \
		"$work/kmod/virtio_ivlink.ko" "${files[@]}" >"$work/mkinitramfs.log" 2>&1; then
		cat "$work/mkinitramfs.log"
		log "FAIL: building the initramfs"
		exit 1
	fi
	log "built the modules and initramfs in $(elapsed "$t0") s"
}

static_guest_build() {
	# static_guest_build OUT SOURCE.c: a static guest program against
	# $build's libivlink_internal.a (and libsodium.a, which the SDM code
	# needs), -Werror; exits 1 on failure (call static_guest_prereqs
	# first).
	local sodium_a
	sodium_a=$(ls /usr/lib/*/libsodium.a /usr/lib/libsodium.a 2>/dev/null | head -n1)
	# shellcheck disable=SC2086
	if ! ${CC:-gcc} -static -O2 -std=gnu11 -Wall -Wextra -Werror -I"$build/include" -I"$repo/include" -o "$1" \
		"$2" "$build/src/libivlink_internal.a" $sodium_a -lpthread -lrt >"$work/build-guest.log" 2>&1; then
		cat "$work/build-guest.log"
		log "FAIL: building $(basename "$2") (libsodium.a: '$sodium_a')"
		exit 1
	fi
}

dev_serve_start() {
	# dev_serve_start LOG ARGS...: `ivlink dev serve ARGS` on the server at
	# $sockdir/sock ($cli_bin, -v) in the background: $host_pid, also in
	# $pids.  Returns 0 once it serves (bounded: 10 s), else 1.
	local logf=$1
	shift
	"$cli_bin" -S "$sockdir/sock" -v dev serve "$@" >"$logf" 2>&1 &
	host_pid=$!
	pids+=("$host_pid")
	wait_for_line "$logf" '^serving on peer' 10 "$host_pid"
}
