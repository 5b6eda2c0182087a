#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite, from a fresh Debian 12 machine:
#   1. install dependencies (scripts/deps.sh)
#   2. gcc build with -Werror: unit, integration, smoke and real-QEMU tests
#   3. the Debian packages (scripts/pkg-test.sh): build, lintian, install
#      into a clean root, build examples/pingpong.c against it and run it
#      against the installed ivlink-server; counted as one test
#   4. clang build with ASan+UBSan and libFuzzer: every suite again, plus
#      short fuzzing runs of every harness
# Ends with the line "N passed, N failed".  Exit status 0 only if all passed.
#
# Options: --no-asan (skip stage 4), --no-qemu (skip the QEMU suite),
#          --no-pkg (skip stage 3), --jobs N.
set -uo pipefail
cd "$(dirname "$0")/.."
asan=1 qemu=1 pkg=1 jobs=$(nproc)
while [ $# -gt 0 ]; do
	case "$1" in
	--no-asan) asan=0 ;;
	--no-qemu) qemu=0 ;;
	--no-pkg) pkg=0 ;;
	--jobs) jobs=$2; shift ;;
	-h|--help) sed -n '3,14p' "$0"; exit 0 ;;
	*) echo "test.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

scripts/deps.sh || { echo "test.sh: dependency installation failed" >&2; exit 1; }

status=0
logs=()
stage() { echo; echo "=== $*"; }

run_meson() { # dir, setup args...
	local dir=$1; shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
	fi
	ninja -C "$dir" || return 1
	meson test -C "$dir" --num-processes "$jobs" --print-errorlogs || return 1
}

stage "gcc build (-Werror), all suites (real QEMU guests included)"
CC=gcc run_meson build-test -Dwerror=true -Dbuildtype=debugoptimized -Dqemu_tests=$([ $qemu -eq 1 ] && echo true || echo false) || status=1
logs+=(build-test/meson-logs/testlog.json)

if [ $pkg -eq 1 ]; then
	stage "Debian packages: build, lintian, install into a clean root, build and run pingpong"
	# One result line in meson's testlog.json format, so that the summary
	# counts this stage like any test.
	mkdir -p build-pkg/meson-logs
	rm -f build-pkg/meson-logs/testlog.json
	t0=$(date +%s) result=OK
	scripts/pkg-test.sh --jobs "$jobs" 2>&1 | tee build-pkg/pkg-test.log
	[ "${PIPESTATUS[0]}" -eq 0 ] || { result=FAIL; status=1; }
	printf '{"name": "debian-packages", "result": "%s", "duration": %d}\n' \
		"$result" $(( $(date +%s) - t0 )) >build-pkg/meson-logs/testlog.json
	logs+=(build-pkg/meson-logs/testlog.json)
fi

if [ $asan -eq 1 ]; then
	stage "clang build with ASan+UBSan and libFuzzer, all suites + fuzzing"
	CC=clang run_meson build-asan -Dwerror=true -Db_sanitize=address,undefined \
		-Db_lundef=false -Dfuzz=true -Dqemu_tests=false || status=1
	logs+=(build-asan/meson-logs/testlog.json)
fi


stage "summary"
python3 - "${logs[@]}" <<'PY' || status=1
import json, sys, os
passed = failed = skipped = 0
for path in sys.argv[1:]:
    if not os.path.exists(path):
        print(f"missing results: {path}"); failed += 1; continue
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            t = json.loads(line)
            r = t.get("result")
            name = f"{os.path.dirname(os.path.dirname(path)) or path}:{t.get('name')}"
            if r in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif r == "SKIP":
                skipped += 1
            else:
                failed += 1
                print(f"FAILED {name} ({r})")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
exit $status
