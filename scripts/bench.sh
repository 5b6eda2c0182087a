#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One report: run every benchmark once (bench_doorbell, bench_sdm,
# bench_virtq, bench_admission), write their results as one JSON file,
# regenerate the report section of docs/PERFORMANCE.md (between the
# "bench.sh:begin" and "bench.sh:end" markers) with the machine description,
# and print each target of the performance issue as met / NOT met with its
# ratio.  Timings are never judged by a test: this is a report.
#
#   scripts/bench.sh                 build-test (configured if absent)
#   scripts/bench.sh --build DIR     another build directory
#   scripts/bench.sh --quick         short runs (minutes -> seconds), for a look
#   scripts/bench.sh --no-docs       leave docs/PERFORMANCE.md alone
#
# Output: DIR/bench/report.json; exit status 0 when every benchmark ran
# (whether targets are met or not), 1 when one failed, 2 on usage errors.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
args="$*"
build=build-test quick=0 docs=1
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift ;;
	--quick) quick=1 ;;
	--no-docs) docs=0 ;;
	-h|--help) sed -n '3,16p' "$0"; exit 0 ;;
	*) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

if [ ! -f "$build/build.ninja" ]; then
	echo "bench: configuring $build"
	CC=${CC:-gcc} meson setup "$build" -Dbuildtype=debugoptimized >/dev/null || exit 1
fi
ninja -C "$build" -j2 bench/bench_doorbell bench/sdm/bench_sdm bench/virtio/bench_virtq \
	bench/bench_admission tools/ivlink-server/ivlink-server >/dev/null || exit 1

out=$build/bench
mkdir -p "$out"
fail=0
if [ "$quick" = 1 ]; then
	db_args=(--iters 2000 --burst 100000 --idle-ms 200)
	sdm_args=(--runs 1 --iters 500 --count 50000 --shm-count 2000000)
	vq_args=(--ms 200 --reps 3 --sizes 64)
	adm_args=(--peers 100 --vectors 1 --sample 20 --raw-iters 1000)
else
	db_args=()
	sdm_args=(--runs 3)
	vq_args=(--reps 5 --sizes "64,65536")
	adm_args=(--peers 1000 --vectors 1)
fi

run() { # NAME FILE COMMAND...
	local name=$1 file=$2
	shift 2
	echo "bench: $name: $*" >&2
	if ! "$@" >"$out/$file" 2>"$out/$name.err"; then
		echo "bench: $name failed (see $out/$name.err)" >&2
		fail=1
	fi
}
run doorbell doorbell.json "$build/bench/bench_doorbell" --json "${db_args[@]}"
run sdm sdm.json "$build/bench/sdm/bench_sdm" --json "${sdm_args[@]}"
run virtq virtq.txt "$build/bench/virtio/bench_virtq" "${vq_args[@]}"
run admission admission.json "$build/bench/bench_admission" --json "${adm_args[@]}" \
	"$build/tools/ivlink-server/ivlink-server"

report_args=("$out" "$out/report.json")
[ "$docs" = 1 ] && report_args+=(--docs docs/PERFORMANCE.md)
python3 scripts/bench-report.py "${report_args[@]}" --command "scripts/bench.sh $args" || fail=1
exit "$fail"
