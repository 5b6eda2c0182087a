#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run the unit, integration, examples and hostile suites N times
# (default 10) while every CPU is kept busy by background load, and print
# every failure with its log.  A test that fails even once here is a flaky test: fix it at its
# root, never with retries or longer sleeps.
#
#   scripts/soak.sh [N]          N rounds in build-test (configured if absent)
#   scripts/soak.sh --no-load N  the same on an idle machine
#   scripts/soak.sh --build DIR  another build directory (e.g. build-asan)
#
# Ends with "soak: N passed, N failed" (rounds); exit status 0 only if every
# round passed.  Logs: DIR/soak/round-K.log.
set -uo pipefail
cd "$(dirname "$0")/.."
rounds=10 load=1 build=build-test
while [ $# -gt 0 ]; do
	case "$1" in
	--no-load) load=0 ;;
	--build) build=$2; shift ;;
	-h|--help) sed -n '3,13p' "$0"; exit 0 ;;
	[0-9]*) rounds=$1 ;;
	*) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

if [ ! -f "$build/build.ninja" ]; then
	echo "soak: configuring $build"
	CC=${CC:-gcc} meson setup "$build" -Dwerror=true -Dbuildtype=debugoptimized \
		>"$build.setup.log" 2>&1 || { cat "$build.setup.log"; exit 1; }
fi
ninja -C "$build" >/dev/null || { echo "soak: build failed" >&2; exit 1; }

loaders=()
stop_load() {
	for p in "${loaders[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
}
trap stop_load EXIT
if [ $load -eq 1 ]; then
	for _ in $(seq "$(nproc)"); do
		( while :; do :; done ) &
		loaders+=($!)
	done
	echo "soak: $(nproc) CPU-bound loaders running"
fi

mkdir -p "$build/soak"
passed=0 failed=0
for k in $(seq "$rounds"); do
	log=$build/soak/round-$k.log
	start=$(date +%s)
	if meson test -C "$build" --no-rebuild --suite unit --suite integration --suite examples --suite hostile \
		--num-processes "$(nproc)" --print-errorlogs >"$log" 2>&1; then
		passed=$((passed + 1))
		echo "soak: round $k/$rounds passed ($(( $(date +%s) - start )) s)"
	else
		failed=$((failed + 1))
		echo "soak: round $k/$rounds FAILED ($(( $(date +%s) - start )) s); log: $log"
		grep -E '^ *[0-9]+/[0-9]+ .* (FAIL|TIMEOUT|ERROR)' "$log"
		# meson's error logs of the failed tests, as printed
		sed -n '/^=* [0-9]*\/[0-9]* /,/^=*$/p' "$log" | grep -v '^<[0-9]>' | head -200
		cp "$build/meson-logs/testlog.txt" "$build/soak/round-$k.testlog.txt" 2>/dev/null
	fi
done
echo "soak: $passed passed, $failed failed"
[ $failed -eq 0 ]
