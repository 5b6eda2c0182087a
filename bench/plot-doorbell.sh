#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Plot the round-trip latencies of `bench_doorbell --json` (or `ivlink bench
# --json`) as a PNG: p50 and p99 per primitive and link mode, log scale.
#   bench/plot-doorbell.sh RESULT.json OUT.png
# Needs python3 and gnuplot (Debian: gnuplot-nox).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 RESULT.json OUT.png" >&2; exit 2; }
command -v gnuplot >/dev/null || { echo "$0: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
data=$(mktemp)
trap 'rm -f "$data"' EXIT
python3 - "$1" >"$data" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for l in d["latency"]:
    if not l["error"]:
        print(f'"{l["name"]}" {l["p50_us"]:.3f} {l["p99_us"]:.3f}')
PY
machine=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["machine"])' "$1")
gnuplot <<GP
set terminal pngcairo size 900,500 font ",10" noenhanced
set output "$2"
set title "Doorbell round trip, $machine (bench_doorbell)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel "microseconds (log scale)"
set yrange [0.1:*]
set xtics rotate by -30
set grid ytics
plot "$data" using 2:xtic(1) title "p50", "" using 3 title "p99"
GP
echo "wrote $2"
