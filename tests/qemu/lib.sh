# SPDX-License-Identifier: MIT
# Shell helpers shared by the QEMU test scripts (sourced; needs $work).

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
