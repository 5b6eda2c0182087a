#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Real-QEMU test of the managed network device (docs/transport.md §5.4,
# docs/guest-virtio.md), suite guest-virtio: one ivlink-server (16 MiB,
# 16 vectors), one device host `ivlink dev serve --switch sw0 --tap
# ivltap0` running inside a network namespace made here (where ivltap0
# exists, 10.78.0.254/24), and two -M pc guests (vectors=16) with
# virtio_net from the Debian kernel.  Each guest creates a net device on
# switch sw0 through the transport's sysfs file; virtio_net binds; they
# ping each other and guest a sends IVL_NET_MIB MiB (default 64) over TCP
# with busybox nc to guest b: the sha256sums of both sides must match.
# Guest a then creates a second net device on tap:ivltap0 and pings the
# host side of the TAP.  `ivlink dev list` shows both devices' counters;
# the guests' dmesg must be clean.  Without network namespaces (not root,
# no `ip netns`), the TAP part is skipped with a message and the rest runs.
#
# usage: run-guest-net-test.sh
# Environment: as run-guest-virtio-test.sh, and IVL_NET_MIB.
# Exit status: 0 passed, 1 a check failed, 77 could not run.

set -u

here=$(cd "$(dirname "$0")" && pwd)
qemu_timeout=${IVL_QEMU_TIMEOUT:-400}
mib=${IVL_NET_MIB:-64}

qemu_machine=pc

# shellcheck source=lib.sh
. "$here/lib.sh"
server_run_init gnet

qemu_prereqs
server_prereqs "the server's readiness"
cli_prereqs

# --- the TAP's network namespace ------------------------------------------------
netns=
tapflag=0
cleanup_netns() {
	[ -n "$netns" ] && ip netns delete "$netns" 2>/dev/null
	netns=
}
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && [ -e /dev/net/tun ]; then
	ns=ivlnet$$
	if ip netns add "$ns" 2>"$work/netns.log"; then
		netns=$ns
		if ip -n "$ns" link set lo up &&
			ip -n "$ns" tuntap add dev ivltap0 mode tap &&
			ip -n "$ns" addr add 10.78.0.254/24 dev ivltap0 &&
			ip -n "$ns" link set ivltap0 up 2>>"$work/netns.log"; then
			tapflag=1
		else
			fail net.netns "could not make the TAP in namespace $ns: $(cat "$work/netns.log")"
		fi
	else
		log "SKIP (TAP part): network namespaces are not possible here: $(cat "$work/netns.log")"
	fi
else
	log "SKIP (TAP part): needs root, ip(8) and /dev/net/tun for a namespace with a TAP"
fi
trap 'server_run_cleanup; cleanup_netns' EXIT

virtio_guest_initramfs virtio_net "$here/guest-virtio/knet-case"

# --- server, device host, guests ------------------------------------------------
start_server "$work/server.log" -l 16M -n 16 || qemu_finish
serve=("$cli_bin" -S "$sockdir/sock" dev serve --switch sw0)
if [ "$tapflag" = 1 ]; then
	serve=(ip netns exec "$netns" "${serve[@]}" --tap ivltap0)
fi
"${serve[@]}" >"$work/host.log" 2>&1 &
host_pid=$!
pids+=("$host_pid")
if ! wait_for_line "$work/host.log" '^serving on peer' 10 "$host_pid"; then
	fail net.host-start "the device host did not start (see host.log)"
	qemu_finish
fi
t=$(date +%s.%N)
kargs="ivl.kmod=1 ivl.dmesg=1 ivl.timeout=$((qemu_timeout - 40))"
qemu_start "$work/serial-b.log" "$kargs ivl.run=/bin/knet-case,b,$mib" \
	-chardev socket,path="$sockdir/sock",id=iv0 \
	-device ivshmem-doorbell,chardev=iv0,vectors=16
pid_b=$qemu_pid
pids+=("$pid_b")
qemu_start "$work/serial-a.log" "$kargs ivl.run=/bin/knet-case,a,$mib,$tapflag" \
	-chardev socket,path="$sockdir/sock",id=iv0 \
	-device ivshmem-doorbell,chardev=iv0,vectors=16
pid_a=$qemu_pid
pids+=("$pid_a")
# The device list while both devices exist (a is sending or done).
if wait_for_line "$work/serial-a.log" '^GN-SENT' "$qemu_timeout" "$pid_a"; then
	"$cli_bin" -S "$sockdir/sock" dev list >"$work/list.txt" 2>&1
fi
wait_pid "$pid_a" "$qemu_timeout"
wait_pid "$pid_b" 60
log "guests done after $(elapsed "$t") s"

for g in a b; do
	s=$work/serial-$g.log
	check "net.$g.eth0" "$s" '^GN-OK eth0 switch:sw0 mac=02:69:76:[0-9a-f:]+ mtu=1500 driver=virtio_net'
	check "net.$g.ping" "$s" '^GN-OK ping-first 10\.77\.0\.[12]$'
	check_absent "net.$g.no-fail" "$s" '^GN-FAIL'
	check_absent "net.$g.no-panic" "$s" 'Kernel panic'
	kernel_log_checks "net.$g" "$s"
	check "net.$g.pass" "$s" '^GN-PASS'
	check "net.$g.result" "$s" '^IVL-RESULT: PASS'
done
check net.ping-stats "$work/serial-a.log" '^GN-PING .*20 packets received, 0% packet loss'
check net.sent "$work/serial-a.log" "^GN-SENT $mib MiB in"
sent=$(tr -d '\r' <"$work/serial-a.log" | sed -n 's/^GN-SUM-SENT \([0-9a-f]\{64\}\).*/\1/p' | head -n1)
recv=$(tr -d '\r' <"$work/serial-b.log" | sed -n 's/^GN-SUM-RECV \([0-9a-f]\{64\}\).*/\1/p' | head -n1)
if [ -n "$sent" ] && [ "$sent" = "$recv" ]; then
	pass "net.sha256: $mib MiB, $sent on both sides"
else
	fail net.sha256 "sent '$sent', received '$recv'"
fi
if [ "$tapflag" = 1 ]; then
	check net.tap-eth1 "$work/serial-a.log" '^GN-OK eth1 tap:ivltap0 mac=02:69:76'
	check net.tap-ping "$work/serial-a.log" '^GN-TAP-PING .*5 packets received, 0% packet loss'
fi
# Both switch ports counted their frames, none refused.
check net.list-switch "$work/list.txt" '^[0-9]+ +net +0x[0-9a-f]+ +switch:sw0 tx=[1-9][0-9]* rx=[1-9][0-9]* drop=[0-9]+ bad=0'
n=$(grep -c ' switch:sw0 ' "$work/list.txt" 2>/dev/null)
if [ "$n" = 2 ]; then pass "net.list-two-ports"; else fail net.list-two-ports "$n switch ports listed (see list.txt)"; fi
if alive "$host_pid"; then pass net.host-alive; else fail net.host-alive "the device host died"; fi
stop_all
cleanup_netns

qemu_finish
