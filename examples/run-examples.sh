#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Runs the examples as their header comments tell a user to: a real
# ivlink-server, then pingpong twice (both wait modes that need no tuning)
# and vmm-model in both device modes.  Exit 0 iff every run exited 0 and
# printed what it promises.
#   usage: run-examples.sh SERVER PINGPONG VMM-MODEL
set -u
server=$1 pingpong=$2 vmm=$3
dir=$(mktemp -d /tmp/ivl-examples.XXXXXX)
spid=
cleanup() {
	[ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	for f in "$dir"/*.log; do
		[ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }
	done
	exit 1
}

"$server" -F -S "$dir/sock" -l 1M -n 2 -M "ivl-examples-$$" >"$dir/server.log" 2>&1 &
spid=$!
n=0
while [ ! -S "$dir/sock" ]; do
	n=$((n + 1))
	[ $n -gt 100 ] && fail "ivlink-server did not create its socket"
	sleep 0.05
done

for mode in interrupt adaptive; do
	timeout 60 "$pingpong" "$dir/sock" 2000 $mode >"$dir/pp1.log" 2>&1 &
	p1=$!
	timeout 60 "$pingpong" "$dir/sock" 2000 $mode >"$dir/pp2.log" 2>&1 || fail "pingpong ($mode) exited $?"
	wait $p1 || fail "the first pingpong ($mode) exited $?"
	for f in pp1 pp2; do
		grep -q '^2000 rounds, ball at 4000, ' "$dir/$f.log" ||
			fail "pingpong ($mode, $f) did not play the whole game"
	done
	echo "pingpong $mode: $(tail -n 1 "$dir/pp2.log")"
done

for mode in msi pin; do
	arg=
	[ $mode = pin ] && arg=pin
	timeout 30 "$vmm" "$dir/sock" $arg >"$dir/vmm-$mode.log" 2>&1 || fail "vmm-model $mode exited $?"
	grep -q "inject MSI-X vector\|INTx line raised" "$dir/vmm-$mode.log" ||
		fail "vmm-model $mode raised no interrupt"
	echo "vmm-model $mode: ok"
done
exit 0
