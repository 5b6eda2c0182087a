# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Shell helpers shared by the QEMU test scripts (sourced; they set $work,
# $here, npass, nfail, failed).
# shellcheck disable=SC2154

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
