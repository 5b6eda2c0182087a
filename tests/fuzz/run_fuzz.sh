#!/bin/sh
# SPDX-License-Identifier: MIT
# Run one libFuzzer harness for a bounded time on a scratch copy of its seed
# corpus, so new inputs and crash artifacts land in the build tree, never in
# the source tree.  Usage: run_fuzz.sh HARNESS SEED_DIR WORK_DIR [libFuzzer options]
set -eu
harness=$1
seeds=$2
work=$3
shift 3
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
cp "$seeds"/* "$work/corpus/"
# libFuzzer's own default exit code for a finding is 77, which meson reads
# as "skipped": a crash, a leak or a timeout must fail the test instead.
exec "$harness" -artifact_prefix="$work/artifacts/" -print_final_stats=1 \
	-error_exitcode=1 -timeout_exitcode=1 "$@" "$work/corpus"
