#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fresh Debian 12 to a running demo: install, build, run `ivlink demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
exec build/tools/ivlink/ivlink demo "$@"
