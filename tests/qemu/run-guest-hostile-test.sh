#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Real-QEMU test of a hostile guest (docs/guest-virtio.md, "A hostile
# guest"), suite guest-virtio: one ivlink-server (32 MiB, 16 vectors) and
# one device host `ivlink dev serve --blk a=IMG --blk h=IMG --blk
# hro=IMG,ro --switch sw0`, and two guests on them:
#  - A (-M pc, ivl.kmod=1, Linux's virtio_blk, virtio_net, ext4): a disk on
#    image "a" (mke2fs, mount) and a net device on sw0; it works in rounds
#    (a file written, synced, read back with the same sha256sum; 3 pings of
#    the other guest's well-behaved port) until the attack is over
#    (guest-virtio/khostile-case);
#  - H (q35 + VFIO, guest-virtio/ivl-hostile-guest over the public API):
#    its own well-behaved net port on sw0 answering A's pings, and the
#    devices it attacks: blk on image "h", blk on the read-only image
#    "hro", a second net port on sw0; out-of-range and malformed requests,
#    refused transmit chains and receive buffers, and chains the ring
#    refuses (loops, outside the window, garbage over the ring...).
# Checks: every hostile request got the documented answer (H's own lines);
# the device host is alive; `ivlink dev list` shows exactly the refusals H
# sent on its devices (the numbers below, which H's HOSTILE-EXPECT lines
# must also give) and none on A's or on H's well-behaved port; the host
# log has exactly one "queue broken" per refused ring and none for the
# other devices; A's rounds all passed, every ping answered; both dmesg
# clean; A's image passes e2fsck -fn and its files (read with debugfs)
# have A's sums; H's image holds exactly its one legitimate write (the last
# sector) and none of the bytes its refused writes carried, and kept its
# size; the read-only image is unchanged.
#
# usage: run-guest-hostile-test.sh
# Environment: as run-guest-virtio-test.sh.
# Exit status: 0 passed, 1 a check failed, 77 could not run.

set -u

here=$(cd "$(dirname "$0")" && pwd)
qemu_timeout=${IVL_QEMU_TIMEOUT:-400}

# What H's requests must have made the counters (ivl-hostile-guest.c):
# blk h: 8 malformed, 5 out of range, 3 unsupported; 9 rings refused.
# blk hro: 1 out of range, 1 write on a read-only image.  net hn: 8
# transmit chains + 2 receive buffers + 1 after the resets; 3 rings.
want_h="bad=8 range=5 unsupp=3 err=0 broken=9"
want_hro="bad=0 range=1 unsupp=0 err=1 broken=0"
want_hn="bad=11 range=0 unsupp=0 err=0 broken=3"
nsteps=47

# shellcheck source=lib.sh
. "$here/lib.sh"
server_run_init ghostile

qemu_prereqs
server_prereqs "the server's readiness"
cli_prereqs
command -v e2fsck >/dev/null || PATH=$PATH:/sbin:/usr/sbin
for t in e2fsck debugfs; do
	command -v $t >/dev/null || {
		log "SKIP: $t missing (apt-get install e2fsprogs)"
		exit 77
	}
done
static_guest_prereqs

static_guest_build "$work/ivl-hostile-guest" "$here/guest-virtio/ivl-hostile-guest.c"
virtio_guest_initramfs "virtio_blk virtio_net ext4 crc32c_generic" "$here/guest-virtio/kcase-lib" \
	"$here/guest-virtio/khostile-case" "$work/ivl-hostile-guest"

img_a=$work/a.img img_h=$work/h.img img_ro=$work/hro.img
truncate -s 32M "$img_a"
truncate -s 1M "$img_h"
python3 -c 'import sys; open(sys.argv[1], "wb").write(bytes([0x33]) * 131072)' "$img_ro"
sum_ro=$(sha256sum <"$img_ro")

start_server "$work/server.log" -l 32M -n 16 || qemu_finish
if ! dev_serve_start "$work/host.log" --blk "a=$img_a" --blk "h=$img_h" --blk "hro=$img_ro,ro" --switch sw0; then
	fail hostile.host-start "the device host did not start (see host.log)"
	qemu_finish
fi
t=$(date +%s.%N)
qemu_machine=q35 qemu_start_doorbell "$work/serial-h.log" "$sockdir/sock" 16 \
	"ivl.vfio=1 ivl.dmesg=1 ivl.timeout=$((qemu_timeout - 30)) ivl.run=/bin/ivl-hostile-guest,-t,$((qemu_timeout - 40))"
pid_h=$qemu_pid
pids+=("$pid_h")
qemu_machine=pc qemu_start "$work/serial-a.log" \
	"ivl.kmod=1 ivl.dmesg=1 ivl.timeout=$((qemu_timeout - 30)) ivl.run=/bin/khostile-case" \
	-chardev socket,path="$sockdir/sock",id=iv0 -device ivshmem-doorbell,chardev=iv0,vectors=16
pid_a=$qemu_pid
pids+=("$pid_a")
wait_pid "$pid_a" "$qemu_timeout"
wait_pid "$pid_h" 60
log "guests done after $(elapsed "$t") s"
"$cli_bin" -S "$sockdir/sock" dev list >"$work/list.txt" 2>&1

# --- the hostile guest's own verdicts ----------------------------------------------
sh=$work/serial-h.log
check hostile.h.ready "$sh" '^HOSTILE-READY'
check hostile.h.attack "$sh" '^HOSTILE-ATTACK start'
n=$(tr -d '\r' <"$sh" | grep -c '^HOSTILE-STEP .* -> ok$')
if [ "$n" -eq "$nsteps" ]; then pass "hostile.h.steps: $n steps answered as documented"; else fail hostile.h.steps "$n of $nsteps steps ok"; fi
check_absent hostile.h.no-failed-step "$sh" '^HOSTILE-STEP .* -> FAIL'
check_absent hostile.h.no-error "$sh" '^HOSTILE-(ERROR|FAILED)'
check hostile.h.no-leak "$sh" '^HOSTILE-GP id=[0-9]+ echoes=[0-9]+ during-attack=([3-9]|[1-9][0-9]+) leaked=0 '
check hostile.h.pass "$sh" '^HOSTILE-PASS'
check hostile.h.result "$sh" '^IVL-RESULT: PASS'
kernel_log_checks hostile.h "$sh"

# --- the well-behaved guest ----------------------------------------------------------
sa=$work/serial-a.log
check hostile.a.ping-first "$sa" '^GA-OK ping-first'
check hostile.a.over "$sa" '^GA-OK attack over'
check hostile.a.overlap "$sa" '^GA-OK disk job running when the attack ended'
check hostile.a.rounds "$sa" '^GA-ROUNDS [1-9]'
check hostile.a.pings "$sa" '^GA-PINGS [0-9]+ sent, 0 unanswered'
check_absent hostile.a.no-fail "$sa" '^GA-FAIL'
check hostile.a.umount "$sa" '^GA-OK umount'
check hostile.a.pass "$sa" '^GA-PASS'
check hostile.a.result "$sa" '^IVL-RESULT: PASS'
kernel_log_checks hostile.a "$sa"

# --- the device host: alive, its counters, its log ---------------------------------
if alive "$host_pid"; then pass hostile.host-alive; else fail hostile.host-alive "the device host died"; fi
# devcheck NAME WANT BACKEND-RE: H's HOSTILE-EXPECT line says WANT, the
# device list shows the device with a backend matching BACKEND-RE, and the
# host log has WANT's number of "queue broken" for it.
devcheck() {
	local name=$1 want=$2 re=$3 id line broken
	line=$(tr -d '\r' <"$sh" | grep -a -m1 "^HOSTILE-EXPECT $name id=")
	id=$(printf '%s\n' "$line" | sed -n 's/.* id=\([0-9]*\) .*/\1/p')
	if [ -n "$id" ] && [ "${line#* id="$id" }" = "$want" ]; then
		pass "hostile.expect.$name: $want"
	else
		fail "hostile.expect.$name" "H expected '$line', the test '$want'"
	fi
	check "hostile.list.$name" "$work/list.txt" "^${id:-none} +[a-z]+ +0x[0-9a-f]+ +$re *\$"
	broken=$(grep -c "device ${id:-none}: queue broken" "$work/host.log")
	if [ "$broken" = "${want##*broken=}" ]; then
		pass "hostile.broken.$name: $broken rings refused"
	else
		fail "hostile.broken.$name" "$broken 'queue broken' for device $id, want ${want##*broken=}"
	fi
	hids="$hids $id"
}
hids=
devcheck h "$want_h" "h ${want_h% broken=*}"
devcheck hro "$want_hro" "hro,ro ${want_hro% broken=*}"
devcheck hn "$want_hn" "switch:sw0 tx=[0-9]+ rx=[0-9]+ drop=[0-9]+ bad=11"
# Every other device (A's disk and port, H's well-behaved port): nothing
# refused, no ring broken.
others=0
while read -r id type st backend; do
	case $id in '' | *[!0-9]*) continue ;; esac
	case " $hids " in *" $id "*) continue ;; esac
	others=$((others + 1))
	case "$type $backend" in
	"blk a bad=0 range=0 unsupp=0 err=0" | "net switch:sw0 tx="*" bad=0")
		pass "hostile.clean.$id: $type $st $backend"
		;;
	*) fail "hostile.clean.$id" "$type $st $backend" ;;
	esac
	if grep -q "device $id: queue broken" "$work/host.log"; then fail "hostile.clean-ring.$id" "a ring of device $id broke"; fi
done <"$work/list.txt"
if [ "$others" = 3 ]; then pass "hostile.others: 3 devices"; else fail hostile.others "$others other devices (see list.txt)"; fi
stop_all

# --- the images ------------------------------------------------------------------------
if e2fsck -fn "$img_a" >"$work/e2fsck.log" 2>&1; then
	pass "hostile.a.e2fsck: $(tail -n 1 "$work/e2fsck.log")"
else
	fail hostile.a.e2fsck "e2fsck -fn found problems (see e2fsck.log)"
fi
nf=0
bad_files=
while read -r name sum; do
	nf=$((nf + 1))
	got=$(debugfs -R "cat /$name" "$img_a" 2>/dev/null | sha256sum | cut -d' ' -f1)
	[ "$got" = "$sum" ] || bad_files="$bad_files $name"
done < <(tr -d '\r' <"$sa" | sed -n 's/^GA-FILE //p')
if [ "$nf" -gt 0 ] && [ -z "$bad_files" ]; then
	pass "hostile.a.files: $nf files in the image have A's sums"
else
	fail hostile.a.files "$nf files; differing:${bad_files:- none listed}"
fi
if python3 - "$img_h" >"$work/h-image.txt" 2>&1 <<'PY'; then
import sys
d = open(sys.argv[1], "rb").read()
ok = len(d) == 1 << 20 and d[-512:] == b"\x5a" * 512 and d[:-512].count(0) == len(d) - 512
print("size %d, last sector %s, %d other nonzero bytes, %d bytes 0xee" %
      (len(d), "0x5a" if d[-512:] == b"\x5a" * 512 else "WRONG", len(d) - 512 - d[:-512].count(0), d.count(0xee)))
sys.exit(0 if ok else 1)
PY
	pass "hostile.h.image: $(cat "$work/h-image.txt")"
else
	fail hostile.h.image "$(cat "$work/h-image.txt")"
fi
if [ "$(sha256sum <"$img_ro")" = "$sum_ro" ] && [ "$(stat -c %s "$img_ro")" = 131072 ]; then
	pass "hostile.hro.image: unchanged"
else
	fail hostile.hro.image "the read-only image changed"
fi
size=$(stat -c %s "$img_a")
if [ "$size" = $((32 << 20)) ]; then pass "hostile.a.image-size: $size"; else fail hostile.a.image-size "$size"; fi

qemu_finish
