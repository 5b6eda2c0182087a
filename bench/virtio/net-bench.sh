#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Guest <-> guest network over ivlink vs QEMU's own virtio-net-pci
# (docs/PERFORMANCE.md, "Guest network"): the same two TCG guests (-M pc,
# Debian 6.1.0-57, virtio_net), the same guest script
# (tests/qemu/guest-virtio/knet-case): 20 pings (round trip) and MIB MiB
# over TCP with busybox nc (throughput, sha256sum checked on both sides).
#   ivlink: ivlink-server + `ivlink dev serve --switch sw0`, each guest
#           creates a net device on sw0 (one ivshmem-doorbell, vectors=16);
#           again with MTU 9000 (what fewer, larger frames buy: the
#           proxy for segmentation offload, which is not offered);
#   qemu:   virtio-net-pci in each guest, joined by -netdev socket
#           (listen / connect on 127.0.0.1).
# Also the CPU time the device host and each QEMU used (from /proc): which
# side bounds.  ROUNDS rounds, each running the three pairs one after the
# other (interleaved, so a load change hits all three); a ratio is taken
# within a round, and the median of the rounds' ratios is printed.  Not a
# test (no assertion on speed).
#
# usage: net-bench.sh [MIB [ROUNDS]]   (defaults 64, 1)
# Environment: as tests/qemu/run-guest-net-test.sh (IVL_BUILD_DIR,
# IVL_QEMU_CACHE, ...).
set -u

here=$(cd "$(dirname "$0")/../../tests/qemu" && pwd)
qemu_timeout=${IVL_QEMU_TIMEOUT:-900}
mib=${1:-64}
rounds=${2:-1}
case $mib$rounds in *[!0-9]*) echo "usage: $0 [MIB [ROUNDS]]" >&2; exit 2 ;; esac
qemu_machine=pc

# shellcheck source=../../tests/qemu/lib.sh
. "$here/lib.sh"
server_run_init netbench
qemu_prereqs
server_prereqs "the server's readiness"
virtio_guest_initramfs "virtio_net virtio_pci" "$here/guest-virtio/knet-case"

cpu_s() { # utime + stime of PID in seconds (0 once gone)
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); split($0, f, " ");
		printf "%.2f", (f[12] + f[13]) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# run_pair NAME KARGS-A KARGS-B QEMU-ARGS-A... -- QEMU-ARGS-B...: two guests;
# prints their results and CPU seconds.
run_pair() {
	local name=$1 ka=$2 kb=$3 qa=() qb=() a b ca cb t
	shift 3
	while [ $# -gt 0 ] && [ "$1" != -- ]; do qa+=("$1"); shift; done
	shift
	qb=("$@")
	t=$(date +%s.%N)
	qemu_start "$work/$name-b.log" "$kb" "${qb[@]}"
	b=$qemu_pid
	pids+=("$b")
	if [ -n "${listen_port:-}" ]; then # b's -netdev socket,listen first
		for _ in $(seq 100); do
			ss -ltn 2>/dev/null | grep -q ":$listen_port " && break
			sleep 0.1
		done
	fi
	qemu_start "$work/$name-a.log" "$ka" "${qa[@]}"
	a=$qemu_pid
	pids+=("$a")
	wait_for_line "$work/$name-a.log" '^GN-SENT' "$qemu_timeout" "$a"
	# $a and $b are timeout(1) wrappers: QEMU is their child.
	ca=$(cpu_s "$(pgrep -P "$a" | head -n1)") cb=$(cpu_s "$(pgrep -P "$b" | head -n1)")
	hcpu=$( [ -n "${host_pid:-}" ] && cpu_s "$host_pid" || echo -)
	wait_pid "$a" 120
	wait_pid "$b" 120
	local ping sent sa sb
	ping=$(tr -d '\r' <"$work/$name-a.log" | sed -n 's|^GN-PING .*= \([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\) ms.*|\2|p')
	sent=$(tr -d '\r' <"$work/$name-a.log" | sed -n 's/^GN-SENT [0-9]* MiB in \([0-9.]*\) s/\1/p')
	sa=$(tr -d '\r' <"$work/$name-a.log" | sed -n 's/^GN-SUM-SENT \([0-9a-f]*\).*/\1/p')
	sb=$(tr -d '\r' <"$work/$name-b.log" | sed -n 's/^GN-SUM-RECV \([0-9a-f]*\).*/\1/p')
	[ -n "$sa" ] && [ "$sa" = "$sb" ] && ok=yes || ok=NO
	printf '%-7s ping avg %6s ms  %3s MiB in %6s s = %6s MiB/s  sha256 match: %s  CPU s: guest a %s, guest b %s, device host %s (wall %s s)\n' \
		"$name" "${ping:-?}" "$mib" "${sent:-?}" \
		"$(awk -v m="$mib" -v s="${sent:-0}" 'BEGIN { if (s > 0) printf "%.2f", m / s; else print "?" }')" \
		"$ok" "$ca" "$cb" "$hcpu" "$(elapsed "$t")" | tee -a "$work/summary.txt"
	eval "${name}_ping=\${ping:-0} ${name}_s=\${sent:-0}"
}

log "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
# ivlink_pair NAME MTU: a fresh server and device host, two guests on sw0.
ivlink_pair() {
	start_server "$work/server-$1.log" -l 16M -n 16 || exit 1
	"$cli_bin" -S "$sockdir/sock" dev serve --switch sw0 >"$work/host-$1.log" 2>&1 &
	host_pid=$!
	pids+=("$host_pid")
	wait_for_line "$work/host-$1.log" '^serving on peer' 10 "$host_pid" || exit 1
	local k="ivl.kmod=1 ivl.timeout=$((qemu_timeout - 60)) ivl.run=/bin/knet-case"
	run_pair "$1" "$k,a,$mib,0,$2" "$k,b,$mib,0,$2" \
		-chardev socket,path="$sockdir/sock",id=iv0 -device ivshmem-doorbell,chardev=iv0,vectors=16 -- \
		-chardev socket,path="$sockdir/sock",id=iv0 -device ivshmem-doorbell,chardev=iv0,vectors=16
	stop_all
	host_pid=
}
port=$((20000 + $$ % 20000))
ratios=()
for round in $(seq "$rounds"); do
	log "round $round of $rounds, load $(cut -d' ' -f1-3 /proc/loadavg)"
	ivlink_pair ivlink 1500
	ivlink_pair ivlink9k 9000
	listen_port=$port
	kargs="ivl.timeout=$((qemu_timeout - 60))"
	run_pair qemu "$kargs ivl.run=/bin/knet-case,qemu,$mib" "$kargs ivl.run=/bin/knet-case,qemu,$mib" \
		-netdev socket,id=n0,connect=127.0.0.1:$port -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:01 -- \
		-netdev socket,id=n0,listen=127.0.0.1:$port -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:02
	stop_all
	listen_port=
	port=$((port + 1))
	r=$(awk -v js="$ivlink9k_s" -v ip="$ivlink_ping" -v qp="$qemu_ping" -v is="$ivlink_s" -v qs="$qemu_s" 'BEGIN {
		printf "%s %s %s", (ip > 0 && qp > 0) ? ip / qp : "-", (is > 0 && qs > 0) ? qs / is : "-",
			(js > 0 && qs > 0) ? qs / js : "-" }')
	ratios+=("$r")
	echo "round $round ratios (ping ivlink/qemu, TCP ivlink/qemu, TCP ivlink MTU 9000/qemu): $r" |
		tee -a "$work/summary.txt"
done

# The median of each column over the rounds ("-": a pair failed that round).
printf '%s\n' "${ratios[@]}" | awk '
	function med(c,   n, i, j, t, v) {
		n = 0
		for (i = 1; i <= NR; i++) if (col[i, c] != "-") v[++n] = col[i, c]
		if (!n) return "?"
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		return sprintf("%.2f", n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2)
	}
	{ for (c = 1; c <= 3; c++) col[NR, c] = $c }
	END {
		printf "ratio ping round trip ivlink/qemu: %s (median of %d rounds; lower is better)\n", med(1), NR
		printf "ratio TCP throughput ivlink/qemu: %s (median of %d rounds; higher is better)\n", med(2), NR
		printf "ratio TCP throughput ivlink MTU 9000/qemu: %s (median of %d rounds)\n", med(3), NR
	}' | tee -a "$work/summary.txt"
echo "logs in $work"
trap - EXIT
stop_all
rm -rf "$sockdir"
rm -f "/dev/shm/$shm_prefix"-*
