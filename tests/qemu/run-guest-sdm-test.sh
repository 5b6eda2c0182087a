#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Real-QEMU tests of the guest SDM driver (kernel/virtio_sdm.c,
# docs/guest-sdm.md), suite guest-sdm.  The host runs ivlink-server and a
# device host whose SDM devices live on a UNIX channel (`ivlink dev serve
# --sdm unix:PATH`: the device host does not offer the link channel,
# docs/transport.md §5).  -M pc guests load ivlink_ivshmem.ko,
# virtio_ivlink.ko and virtio_sdm.ko (ivl.kmod=1) and create SDM devices
# through the transport's sysfs `create`.
#
#  one: a master guest (tests/qemu/guest-sdm/ksdm-case) with a host
#       `ivlink sdm slave`: sysfs role and slave count, a payload both ways
#       through /dev/sdm0, broadcast, the seed's refusals, a slave device of
#       its own (a slave may signal only the master; the master BOOTs it: a
#       uevent run by busybox `uevent` and a record on /dev/sdm1), removal
#       under a blocked reader, max_slaves lowered refusing a second host
#       slave, the mailbox API from a test module (guest-sdm/sdm_mbox_test.c).
#  rtt: a measurement, not a test (no meson test runs it): N round trips
#       (IVL_SDM_RTT_N, default 2000) from a guest to a host echo slave
#       (tests/qemu/host/sdm-echo.c) through virtio_sdm.ko, then through
#       ivlink's userspace driver in the same guest (guest-sdm/sdm-rtt.c);
#       prints both medians and their ratio.
#  amp: issue #17's AMP scenario: guest A (amp-a) the master, guest B
#       (amp-b) slave 1 and a host slave 2; A boots B (B's uevent handler,
#       sdm-boot, reports and answers), interrupts B with a payload and B
#       answers, broadcasts to B and the host slave, B -> host slave is
#       refused, max_slaves lowered refuses a third slave, A ends B.
# Every guest's dmesg must be clean (kernel_log_checks).
#
# usage: run-guest-sdm-test.sh one|amp|rtt
# Environment: as run-guest-virtio-test.sh.
# Exit status: 0 passed, 1 a check failed, 77 could not run.

set -u

here=$(cd "$(dirname "$0")" && pwd)
qemu_timeout=${IVL_QEMU_TIMEOUT:-400}
mode=${1:-}
case $mode in one | amp | rtt) ;; *)
	echo "usage: run-guest-sdm-test.sh one|amp|rtt" >&2
	exit 2
	;;
esac

qemu_machine=pc

# shellcheck source=lib.sh
. "$here/lib.sh"
server_run_init "gsdm-$mode"

qemu_prereqs
server_prereqs "the server's readiness"
cli_prereqs

t0=$(date +%s.%N)
kernel_module_build "$work/kmod"
# The mailbox client test module, against virtio_sdm's exported symbol.
mkdir -p "$work/mbox" "$work/guest"
cp "$here/guest-sdm/Kbuild" "$here/guest-sdm/sdm_mbox_test.c" "$repo/kernel/virtio_sdm.h" "$work/mbox/"
extra="W=1"
command -v sparse >/dev/null 2>&1 && extra="$extra C=1"
# shellcheck disable=SC2086
if make -s -C "${IVL_KDIR:-/usr/src/linux-headers-$IVL_KVER}" M="$work/mbox" \
	KBUILD_EXTRA_SYMBOLS="$work/kmod/Module.symvers" $extra modules >"$work/mbox-build.log" 2>&1 &&
	! grep -E 'warning:|error:|sparse:' "$work/mbox-build.log" >/dev/null; then
	pass "mbox-test-module-build"
else
	cat "$work/mbox-build.log"
	fail mbox-test-module-build "sdm_mbox_test.ko not built or not warning-clean"
	qemu_finish
fi
# Not a .ko for mkinitramfs: ivl.kmod=1 would load it at boot, before
# virtio_sdm; the case loads it.
cp "$work/mbox/sdm_mbox_test.ko" "$work/guest/sdm_mbox_test.kmod"
for f in ksdm-case sdm-lib.sh sdm-uevent amp-a amp-b sdm-boot rtt-case; do cp "$here/guest-sdm/$f" "$work/guest/"; done
if [ "$mode" = rtt ]; then
	# The static guest program links the library (and libsodium, which the
	# SDM code uses); the host echo links libivlink.so.
	static_guest_prereqs
	sodium_a=$(ls /usr/lib/*/libsodium.a /usr/lib/libsodium.a 2>/dev/null | head -n1)
	# shellcheck disable=SC2086
	if ! ${CC:-gcc} -static -O2 -std=gnu11 -Wall -Wextra -Werror -I"$build/include" -I"$repo/include" \
		-o "$work/guest/sdm-rtt" "$here/guest-sdm/sdm-rtt.c" "$build/src/libivlink_internal.a" \
		$sodium_a -lpthread -lrt >"$work/build-rtt.log" 2>&1 ||
		! ${CC:-gcc} -std=gnu11 -O2 -Wall -Wextra -Werror -I"$build/include" -I"$repo/include" \
			-o "$work/sdm-echo" "$here/host/sdm-echo.c" -L"$build/src" -livlink \
			-Wl,-rpath,"$build/src" >>"$work/build-rtt.log" 2>&1; then
		cat "$work/build-rtt.log"
		fail rtt.build "sdm-rtt or sdm-echo"
		qemu_finish
	fi
fi
if ! IVL_INITRAMFS_MODULES="virtio virtio_ring" "$here/mkinitramfs.sh" "$work/initrd.gz" "$kmod" \
	"$work/kmod/virtio_ivlink.ko" "$work/kmod/virtio_sdm.ko" "$work/guest/"* >"$work/mkinitramfs.log" 2>&1; then
	cat "$work/mkinitramfs.log"
	log "FAIL: building the initramfs"
	exit 1
fi
log "built the modules and initramfs in $(elapsed "$t0") s"

# --- server, device host --------------------------------------------------------
chan=unix:$sockdir/sdm
# Two SDM devices of 2 queues each per guest, and the transport: 16 vectors.
start_server "$work/server.log" -n 16 || qemu_finish
"$cli_bin" -S "$sockdir/sock" dev serve --sdm "$chan" >"$work/host.log" 2>&1 &
host_pid=$!
pids+=("$host_pid")
if ! wait_for_line "$work/host.log" '^serving on peer' 10 "$host_pid"; then
	fail gsdm.host-start "the device host did not start (see host.log)"
	qemu_finish
fi
guest() { # guest LOG PROGRAM: boot one guest on the server; sets $qemu_pid
	qemu_start "$1" "ivl.kmod=1 ivl.dmesg=1 ivl.timeout=340 ivl.run=/bin/$2" \
		-chardev socket,path="$sockdir/sock",id=iv0 \
		-device ivshmem-doorbell,chardev=iv0,vectors=16
	pids+=("$qemu_pid")
}
# slave_start LOG CTL [ARGS...]: a host `ivlink sdm slave` on the channel.
slave_start() {
	local logf=$1 ctl=$2
	shift 2
	"$cli_bin" sdm slave --connect "$chan" --control "$sockdir/$ctl" "$@" >"$logf" 2>&1 &
	slave_pid=$!
	pids+=("$slave_pid")
}
# refused_slave NAME LOG CTL: a further host slave is refused (max_slaves).
refused_slave() {
	slave_start "$2" "$3"
	if wait_for_line "$2" 'refused us: full' 60 "$slave_pid"; then
		pass "$1: $(grep -m1 refused "$2")"
	else
		fail "$1" "see ${2#"$work"/}"
	fi
	stop "$slave_pid"
}
send_to_master() { # send_to_master CTL P0 P1: an IRQ from a host slave
	"$cli_bin" sdm send --control "$sockdir/$1" irq 0 "$2" "$3" >>"$work/send.log" 2>&1
}

case_one() {
	serial=$work/serial.log
	t=$(date +%s.%N)
	guest "$serial" ksdm-case

	# The host slave answers what the guest asks for (the guest waits, bounded).
	slave_log=$work/slave1.log
	step() { wait_for_line "$serial" "^$1" "$qemu_timeout" "$qemu_pid"; }
	if step GS-WANT-SLAVE; then
		slave_start "$slave_log" slave1.ctl
		wait_for_line "$slave_log" '^registered 1$' 60 "$slave_pid" || fail gsdm.slave-registered "see slave1.log"
	fi
	if step GS-WANT-ANSWER && wait_for_line "$slave_log" '^irq from 0 to 1 payload 0x00000011 0x00000022$' 60; then
		send_to_master slave1.ctl 0x33 0x44 || fail gsdm.slave-answer "see send.log"
	fi
	step GS-WANT-BROADCAST-SEEN && check gsdm.broadcast-received "$slave_log" '^irq from 0 to 1 payload 0x00000055 0x00000066$'
	if step GS-WANT-REFUSED-SLAVE; then
		refused_slave gsdm.second-slave-refused "$work/slave2.log" slave2.ctl
		send_to_master slave1.ctl 0xd0 0xd1 || fail gsdm.slave-done "see send.log"
	fi
	if step GS-WANT-MBOX-ANSWER && wait_for_line "$slave_log" 'payload 0x0000600d 0x00000001$' 60; then
		send_to_master slave1.ctl 0x7 0x8 || fail gsdm.mbox-answer "see send.log"
	fi
	wait_pid "$qemu_pid" "$qemu_timeout"
	log "guest done after $(elapsed "$t") s"

	check gsdm.config "$serial" '^GS-CONFIG master=1 max_slaves=4 current_slaves=0 driver=virtio_sdm$'
	check gsdm.probe-log "$serial" 'virtio_sdm virtio[0-9]+: /dev/sdm0: SDM master, max_slaves 4'
	check gsdm.answer "$serial" '^GS-ANSWER 0 0 51 68 1$'
	check gsdm.two-received "$slave_log" 'payload 0x00000102 0x00000000$'
	check gsdm.slave-config "$serial" '^GS-SLAVE-CONFIG master=0$'
	check gsdm.from-slave "$serial" '^GS-FROM-SLAVE 0 0 2748 3567 2$'
	check gsdm.boot-read "$serial" '^GS-BOOT-READ 1 2 45063 1 0 id=2$'
	check gsdm.boot-uevent "$serial" '^GS-UEVENT change sdm1 SDM_TYPE=BOOT SDM_FROM=0 SDM_SLAVE=2 SDM_PAYLOAD0=0x0000b007 SDM_PAYLOAD1=0x00000001$'
	check gsdm.blocked-reader "$serial" '^GS-BLOCKED-READER rc=1 .*No such device'
	check gsdm.max-lowered "$serial" '^GS-MAX 1$'
	check gsdm.after-refusal "$serial" '^GS-AFTER-REFUSAL 0 0 208 209 1$'
	check gsdm.mbox-sent "$serial" '^GS-MBOX sdm_mbox_test: sent on sdm0 channel 1: result 0$'
	check gsdm.mbox-rx "$serial" '^GS-MBOX sdm_mbox_test: rx type 0 from 1 payload 0x00000007 0x00000008$'
	check gsdm.mbox-broadcast-received "$slave_log" 'payload 0x0000bcbc 0x00000002$'
	for c in current-slaves-1 irq-sent broadcast-sent two-in-one-write master-to-itself bad-type absent-slave \
		partial-record-refused max-slaves-0-refused max-slaves-2000-refused current-slaves-read-only \
		current-slaves-2 slave-max-slaves-refused slave-to-slave slave-broadcast slave-irq-sent boot-sent \
		reader-blocked slave-destroyed current-slaves-back-1 max-slaves-1 mbox-insmod mbox-broadcast \
		mbox-absent-refused master-destroyed rmmod; do
		check "gsdm.$c" "$serial" "^GS-OK $c"
	done
	check_absent gsdm.no-guest-fail "$serial" '^GS-FAIL'
	check_absent gsdm.no-kernel-panic "$serial" 'Kernel panic'
	kernel_log_checks gsdm "$serial"
	check gsdm.guest-pass "$serial" '^GS-PASS'
	check gsdm.result "$serial" '^IVL-RESULT: PASS'
	if alive "$host_pid"; then pass gsdm.host-alive; else fail gsdm.host-alive "the device host died"; fi
}

case_amp() {
	t=$(date +%s.%N)
	guest "$work/a.log" amp-a
	pid_a=$qemu_pid
	slave_log=$work/slave2.log
	# B and the host slave once A's master listens and A reads /dev/sdm0.
	pid_b=
	if wait_for_line "$work/a.log" '^GA-MASTER' "$qemu_timeout" "$pid_a"; then
		guest "$work/b.log" amp-b
		pid_b=$qemu_pid
		slave_start "$slave_log" slave2.ctl --id 2
	fi
	if wait_for_line "$work/a.log" '^GA-WANT-REFUSED-SLAVE' "$qemu_timeout" "$pid_a"; then
		refused_slave amp.third-slave-refused "$work/slave3.log" slave3.ctl
		send_to_master slave2.ctl 0xd0 0xd1 || fail amp.slave-done "see send.log"
	fi
	wait_pid "$pid_a" "$qemu_timeout"
	[ -n "$pid_b" ] && wait_pid "$pid_b" "$qemu_timeout"
	log "guests done after $(elapsed "$t") s"

	a=$work/a.log
	b=$work/b.log
	check amp.a-master "$a" '^GA-MASTER master=1 max_slaves=4$'
	check amp.b-slave "$b" '^GB-SLAVE master=0$'
	check amp.host-slave-registered "$slave_log" '^registered 2$'
	check amp.b-ready "$a" '^GA-READY 0 0 20141 0 1$'
	check amp.b-uevent "$b" '^GB-UEVENT change sdm0 SDM_TYPE=BOOT SDM_FROM=0 SDM_SLAVE=1 SDM_PAYLOAD0=0x0000b007 SDM_PAYLOAD1=0x00001000$'
	check amp.b-boot-read "$b" '^GB-BOOT-READ 1 1 45063 4096 0$'
	check amp.booted "$a" '^GA-BOOTED 0 0 176 13 1$'
	check amp.b-irq "$b" '^GB-IRQ 0 1 4660 22136 0$'
	check amp.answer "$a" '^GA-ANSWER 0 0 4661 22137 1$'
	check amp.b-broadcast "$b" '^GB-BROADCAST 0 1 85 102 0$'
	check amp.host-broadcast "$slave_log" '^irq from 0 to 2 payload 0x00000055 0x00000066$'
	check amp.b-report "$a" '^GA-B-REPORT 0 0 341 0 1$'
	check amp.after-refusal "$a" '^GA-AFTER-REFUSAL 0 0 208 209 2$'
	check amp.b-end "$b" '^GB-END 0 1 224 224 0$'
	for c in two-slaves boot-sent irq-sent broadcast-sent max-slaves-2 end-sent b-left destroyed rmmod; do
		check "amp.a-$c" "$a" "^GA-OK $c"
	done
	for c in answered b-to-host-slave reported destroyed rmmod; do
		check "amp.b-$c" "$b" "^GB-OK $c"
	done
	check_absent amp.no-host-slave-from-b "$slave_log" 'from 1 '
	for g in a b; do
		check_absent "amp.$g-no-fail" "$work/$g.log" '^G[AB]-FAIL'
		kernel_log_checks "amp.$g" "$work/$g.log"
		check "amp.$g-result" "$work/$g.log" '^IVL-RESULT: PASS'
	done
	if alive "$host_pid"; then pass amp.host-alive; else fail amp.host-alive "the device host died"; fi
}

case_rtt() {
	local n=${IVL_SDM_RTT_N:-2000} serial=$work/serial.log echo_pid k u
	guest "$serial" "rtt-case,$n"
	echo_start() {
		"$work/sdm-echo" "$sockdir/sdm" >"$work/echo$1.log" 2>&1 &
		echo_pid=$!
		pids+=("$echo_pid")
	}
	if wait_for_line "$serial" '^GR-WANT-ECHO' "$qemu_timeout" "$qemu_pid"; then
		echo_start 1
		wait_for_line "$serial" '^GR-KERNEL-DONE' "$qemu_timeout" "$qemu_pid"
		stop "$echo_pid"
	fi
	wait_for_line "$serial" '^RTT-USER-MASTER' "$qemu_timeout" "$qemu_pid" && echo_start 2
	wait_pid "$qemu_pid" "$qemu_timeout"
	k=$(tr -d '\r' <"$serial" | sed -n 's/^RTT kernel .*median_ns=\([0-9]*\).*/\1/p')
	u=$(tr -d '\r' <"$serial" | sed -n 's/^RTT user .*median_ns=\([0-9]*\).*/\1/p')
	check rtt.kernel "$serial" '^RTT kernel '
	check rtt.user "$serial" '^RTT user '
	check rtt.guest-pass "$serial" '^GR-PASS'
	kernel_log_checks rtt "$serial"
	if [ -n "$k" ] && [ -n "$u" ]; then
		log "RTT median: kernel driver $k ns, userspace driver $u ns, user/kernel $(awk -v a="$u" -v b="$k" 'BEGIN { printf "%.2f", a / b }') (n=$n, TCG, same guest, same run)"
	fi
}

"case_$mode"
stop_all

qemu_finish
