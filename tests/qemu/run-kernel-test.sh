#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Real-QEMU tests of ivlink's guest kernel driver (kernel/, ivlink_ivshmem.ko)
# through its user ABI (guest-kernel/kdrv-test.c, <ivlink/uapi/ivshmem-drv.h>),
# in a -M pc guest without any IOMMU:
#
#   abi:     GET_INFO = sysfs, partial and refused mappings, the BAR0 page,
#            refused ioctls, a self-doorbell on every vector by the mapped
#            Doorbell and by ioctl, seen through eventfds and read()/poll();
#            then the module unloaded and reloaded 50 times while a host
#            peer rings the guest without pause (each load: open, bind,
#            ring and receive every vector, close); then a host process
#            scribbling random bytes over the whole ivlink header and peer
#            table while the guest runs the CLI and the driver on it;
#   unplug:  an in-kernel client (guest-kernel/ivl_auxtest.c, an auxiliary
#            driver) binds, gets a vector's interrupts, is removed first on
#            unbind and rebinds; then, with it bound, a process has BAR0 and
#            BAR2 mapped and every vector bound when the device is removed
#            (QMP device_del): the client's remove() runs while the device
#            still works, the process sees POLLHUP, ENODEV, all-ones reads,
#            no signal; the kernel stays clean.
#   bench:   (not part of `all`; docs/PERFORMANCE.md) in one q35 guest with
#            intel-iommu, self-doorbell round trips guest -> QEMU -> guest:
#            the driver's mapped Doorbell vs IVL_DRV_RING vs read(), and the
#            link API through the driver vs through vfio-pci, interleaved.
# After every boot, the guest's dmesg must hold no WARNING/BUG/Oops/Call
# Trace and no taint but O/E (lib.sh kernel_log_checks).  The link scenarios
# through the driver are run-link-test.sh with IVL_QEMU_ACCESS=kernel.
#
# usage: run-kernel-test.sh [abi|unplug|all|bench]     (default: all)
# Environment: as run-link-test.sh; IVL_KDIR: kernel headers (default
# /usr/src/linux-headers-<guest kernel>).  Exit: 0 pass, 1 fail, 77 skip.

set -u

here=$(cd "$(dirname "$0")" && pwd)
qemu_timeout=${IVL_QEMU_TIMEOUT:-240}
cc=${CC:-gcc}
what=${1:-all}
case $what in abi | unplug | all | bench) ;; *)
	echo "usage: $0 [abi|unplug|all|bench]" >&2
	exit 2
	;;
esac

qemu_machine=pc

# shellcheck source=lib.sh
. "$here/lib.sh"
server_run_init kernel

# --- setup -------------------------------------------------------------------
qemu_prereqs
server_prereqs "QMP, header scribbler"
static_guest_prereqs
cli_prereqs

t0=$(date +%s.%N)
kernel_module_build "$work/kmod"
mkdir -p "$work/guest"
# The in-kernel client test module (auxiliary driver), against the driver's
# Module.symvers; shipped as /bin/ivl-auxtest.kmod so that ivl.kmod=1 does
# not load it before the driver.
mkdir -p "$work/auxmod"
cp "$here/guest-kernel/ivl_auxtest.c" "$work/auxmod/"
printf 'obj-m := ivl_auxtest.o\nccflags-y := -I%s/kernel -I%s/include -Werror\n' \
	"$repo" "$repo" >"$work/auxmod/Kbuild"
if ! make -C "${IVL_KDIR:-/usr/src/linux-headers-$IVL_KVER}" M="$work/auxmod" W=1 \
	KBUILD_EXTRA_SYMBOLS="$work/kmod/Module.symvers" modules >"$work/auxmod.log" 2>&1; then
	cat "$work/auxmod.log"
	log "FAIL: building ivl_auxtest.ko"
	exit 1
fi
cp "$work/auxmod/ivl_auxtest.ko" "$work/guest/ivl-auxtest.kmod"
if ! $cc -static -O2 -std=gnu11 -Wall -Wextra -Werror -I"$build/include" -I"$repo/include" \
	-o "$work/guest/kdrv-test" "$here/guest-kernel/kdrv-test.c" \
	>"$work/build-guest.log" 2>&1; then
	cat "$work/build-guest.log"
	log "FAIL: building kdrv-test"
	exit 1
fi
if ! "$here/build-cli.sh" "$build" "$work/guest/ivlink" >>"$work/build-guest.log" 2>&1; then
	cat "$work/build-guest.log"
	log "FAIL: building a static ivlink"
	exit 1
fi
if ! $cc -static -O2 -std=gnu11 -Wall -Wextra -Werror -I"$build/include" -I"$repo/include" \
	-o "$work/guest/ivl-guest-test" "$here/guest-link/ivl-guest-test.c" \
	"$here/guest-link/scenario.c" "$build/src/libivlink_internal.a" -lpthread -lrt \
	>>"$work/build-guest.log" 2>&1; then
	cat "$work/build-guest.log"
	log "FAIL: building ivl-guest-test"
	exit 1
fi
cp "$here/guest-kernel/guest-kcase" "$work/guest/"
if ! "$here/mkinitramfs.sh" "$work/initrd.gz" "$kmod" "$work/guest/kdrv-test" \
	"$work/guest/ivlink" "$work/guest/ivl-guest-test" "$work/guest/guest-kcase" \
	"$work/guest/ivl-auxtest.kmod" \
	>"$work/mkinitramfs.log" 2>&1; then
	cat "$work/mkinitramfs.log"
	log "FAIL: building the initramfs"
	exit 1
fi
log "built the module, guest programs and initramfs in $(elapsed "$t0") s"

# --- helpers -----------------------------------------------------------------
boot_guest() {
	# boot_guest SERIAL KERNEL-ARGS: -M pc, no IOMMU, the device with an
	# id for device_del, a QMP socket
	qemu_start "$1" "ivl.kmod=1 ivl.dmesg=1 $2" \
		-qmp unix:"$sockdir/qmp",server=on,wait=off \
		-chardev socket,path="$sockdir/sock",id=iv0 \
		-device ivshmem-doorbell,id=ivdev,chardev=iv0,vectors=4
	pids+=("$qemu_pid")
}

# The host's go-ahead word, at the region's last page (BAR2 offset).
GO_OFF=$((1048576 - 4096))
set_word() {
	python3 - "/dev/shm/$shm_name" "$GO_OFF" "$1" <<'PY'
import mmap, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 0)
m[int(sys.argv[2]):int(sys.argv[2]) + 4] = struct.pack("<I", int(sys.argv[3], 0))
PY
}

# --- abi, reload under traffic, scribbled header -------------------------------
run_abi() {
	local serial=$work/abi-serial.log t ring_pid scr_pid n
	log "--- abi test (-M pc, no IOMMU)"
	start_server "$work/abi-server.log" || return 1
	t=$(date +%s.%N)
	boot_guest "$serial" "ivl.timeout=200 ivl.run=/bin/guest-kcase,abi,$GO_OFF"
	if wait_for_line "$serial" '^KDRV-RELOAD-WAIT' "$qemu_timeout" "$qemu_pid"; then
		# Traffic: ring the guest's 4 vectors, over and over, until the
		# reload loop is done.
		# At most 200 connections: the server hands out IDs round robin
		# below max_peers (256), and QEMU 7.2 frees a departed peer's
		# eventfd array without forgetting it, so a reused ID makes it
		# write freed memory and then free it twice (it aborts with
		# "double free or corruption"; hw/misc/ivshmem.c
		# close_peer_eventfds).  Each connection rings 4 x 5000 times.
		(for _ in $(seq 200); do
			if "$cli_bin" -S "$sockdir/sock" ring --count 5000 0 all >/dev/null 2>&1; then
				echo "RANG 20000" >>"$work/abi-traffic.log"
			fi
			sleep 0.5
		done) &
		ring_pid=$!
		pids+=("$ring_pid")
		set_word 0x600d
		wait_for_line "$serial" '^KDRV-RELOAD-DONE' 150 "$qemu_pid"
		stop "$ring_pid"
		n=$(grep -c '^RANG' "$work/abi-traffic.log" 2>/dev/null)
		log "abi: reload loop done after $(elapsed "$t") s, under $((${n:-0} * 20000)) host doorbells"
		if [ "${n:-0}" -gt 0 ]; then pass "abi.reload-under-traffic: $((n * 20000)) doorbells"; else fail abi.reload-under-traffic "the host rang nothing"; fi
	fi
	if wait_for_line "$serial" '^KDRV-SCRIBBLE-WAIT' 60 "$qemu_pid"; then
		python3 - "/dev/shm/$shm_name" "$GO_OFF" <<'PY' >"$work/abi-scribble.log" 2>&1 &
import mmap, os, random, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 0)
go = int(sys.argv[2])
m[go:go + 4] = struct.pack("<I", 0xbad)
rnd = random.Random(14)
n = 0
end = time.time() + 60
# Garbage over the header and peer table (the first 64 KiB) until the
# guest says it is done (word = 0xd0e) or 60 s.
while time.time() < end and struct.unpack("<I", m[go:go + 4])[0] != 0xd0e:
    off = rnd.randrange(0, 65536 - 64)
    m[off:off + 64] = rnd.randbytes(64)
    n += 1
    time.sleep(0.001)
print("SCRIBBLES", n)
PY
		scr_pid=$!
		pids+=("$scr_pid")
		wait_pid "$scr_pid" 70
	fi
	wait_pid "$qemu_pid" "$qemu_timeout"
	log "abi: done after $(elapsed "$t") s"
	for c in abi-version sysfs-ivposition sysfs-region-size sysfs-vectors sysfs-revision \
		map-whole-and-part partial-map-aliases-whole map-last-page map-past-end-refused \
		map-at-end-refused map-private-refused ring-bad-peer-refused eventfd-bad-vector-refused \
		eventfd-not-eventfd-refused unknown-ioctl-refused short-read-refused \
		eventfd-owned-by-other-file-busy; do
		check "abi.$c" "$serial" "^KDRV-OK $c"
	done
	check abi.region-size "$serial" '^KDRV-INFO .*region_size=1048576 vectors=4 '
	for v in 0 1 2 3; do
		check "abi.self-doorbell-ioctl-v$v" "$serial" "^KDRV-OK self-doorbell-ioctl-eventfd vector=$v"
		check "abi.read-mask-v$v" "$serial" "^KDRV-OK read-mask vector=$v"
	done
	if tr -d '\r' <"$serial" | grep -aq '^KDRV-NOTE the BAR0 page is not mappable'; then
		log "abi: note: the BAR0 page is not mappable in this guest (shared page)"
	else
		check abi.regs-ivposition "$serial" '^KDRV-OK regs-ivposition'
		for v in 0 1 2 3; do
			check "abi.self-doorbell-mmap-v$v" "$serial" "^KDRV-OK self-doorbell-mmap-eventfd vector=$v"
		done
	fi
	check abi.kdrv-pass "$serial" '^KDRV-PASS abi'
	check abi.info-access-kernel "$serial" '^IVL-INFO-JSON rc=0 .*"access": *"kernel"'
	check abi.reload-50 "$serial" '^KDRV-RELOAD-DONE 50 cycles 0 failed'
	check abi.scribbler-ran "$work/abi-scribble.log" '^SCRIBBLES [1-9]'
	check abi.scribble-survived "$serial" '^KDRV-SCRIBBLE-DONE'
	check_absent abi.no-kdrv-fail "$serial" '^KDRV-FAIL'
	check_absent abi.no-kernel-panic "$serial" 'Kernel panic'
	kernel_log_checks abi "$serial"
	check abi.result "$serial" '^IVL-RESULT: PASS'
	stop_all
}

# --- unplug: device_del while mapped and bound ---------------------------------------
qmp() {
	# qmp COMMAND-JSON: one command on the QMP socket; prints the replies
	python3 - "$sockdir/qmp" "$1" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()  # greeting
for cmd in ('{"execute": "qmp_capabilities"}', sys.argv[2]):
    f.write(cmd + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        print(json.dumps(r))
        if "return" in r or "error" in r:
            break
PY
}

run_unplug() {
	local serial=$work/unplug-serial.log t
	log "--- unplug test (-M pc, QMP device_del)"
	start_server "$work/unplug-server.log" || return 1
	t=$(date +%s.%N)
	boot_guest "$serial" "ivl.timeout=150 ivl.run=/bin/guest-kcase,unplug"
	if wait_for_line "$serial" '^KDRV-UNPLUG-READY' "$qemu_timeout" "$qemu_pid"; then
		qmp '{"execute": "device_del", "arguments": {"id": "ivdev"}}' >"$work/unplug-qmp.log" 2>&1
		check unplug.qmp-accepted "$work/unplug-qmp.log" '"return": *\{\}'
	else
		fail unplug.ready "the guest process did not get ready"
	fi
	wait_pid "$qemu_pid" "$qemu_timeout"
	log "unplug: done after $(elapsed "$t") s"
	for c in unplug-setup unplug-vectors-held-by-listen unplug-regs-read-ones unplug-pollhup unplug-ioctl-enodev unplug-read-enodev \
		unplug-bar2-reads-ones unplug-mmap-enodev; do
		check "unplug.$c" "$serial" "^KDRV-OK $c"
	done
	check unplug.aux-probe "$serial" '^KDRV-AUX loaded probed=1 vectors=4'
	check unplug.aux-irq "$serial" '^KDRV-AUX irq ok'
	check unplug.aux-rmmod-refused "$serial" '^KDRV-AUX rmmod-refused'
	check unplug.aux-unbind "$serial" '^KDRV-AUX unbind removed=1 alive=1'
	check unplug.aux-rebind "$serial" '^KDRV-AUX rebind probed=2'
	check unplug.aux-after-unplug "$serial" '^KDRV-AUX after-unplug removed=2 alive=2'
	check unplug.closed "$serial" '^KDRV-UNPLUG-CLOSED'
	check unplug.link-down "$serial" '^KDRV-LINK-DOWN'
	check unplug.driver-removed "$serial" '^KDRV-REMOVED'
	check unplug.rmmod "$serial" '^KDRV-RMMOD rc=0'
	check_absent unplug.no-kernel-panic "$serial" 'Kernel panic'
	kernel_log_checks unplug "$serial"
	check unplug.result "$serial" '^IVL-RESULT: PASS'
	stop_all
}

# --- bench: driver vs VFIO, mapped Doorbell vs ioctl (q35 + intel-iommu) ------------
run_bench() {
	local serial=$work/bench-serial.log t
	log "--- bench (-M q35, intel-iommu: both the driver and vfio-pci work)"
	start_server "$work/bench-server.log" || return 1
	t=$(date +%s.%N)
	qemu_machine=q35 qemu_start "$serial" \
		"intel_iommu=on ivl.kmod=1 ivl.dmesg=1 ivl.timeout=560 ivl.run=/bin/guest-kcase,bench,${IVL_BENCH_N:-500}" \
		-device intel-iommu,intremap=on \
		-chardev socket,path="$sockdir/sock",id=iv0 \
		-device ivshmem-doorbell,chardev=iv0,vectors=4
	pids+=("$qemu_pid")
	wait_pid "$qemu_pid" 600
	log "bench: done after $(elapsed "$t") s"
	tr -d '\r' <"$serial" | grep -a -E '^(KDRV|GUEST)-BENCH' | tee -a "$work/summary.txt"
	tr -d '\r' <"$serial" | python3 "$here/guest-kernel/bench-ratios.py" | tee -a "$work/summary.txt"
	check bench.kdrv "$serial" '^KDRV-PASS bench'
	check bench.vfio "$serial" '^GUEST-BENCH access=vfio n=[1-9]'
	check bench.kernel "$serial" '^GUEST-BENCH access=kernel n=[1-9]'
	kernel_log_checks bench "$serial"
	stop_all
}

case $what in
bench) run_bench ;;
abi) run_abi ;;
unplug) run_unplug ;;
all)
	run_abi
	run_unplug
	;;
esac

qemu_finish
