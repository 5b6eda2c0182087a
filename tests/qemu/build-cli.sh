#!/bin/sh
# SPDX-License-Identifier: MIT
#
# A static `ivlink` for guest initramfs images (no libc there): meson's
# ivlink-static (-Dstatic_tools=true) if built, else the CLI's sources
# linked here against BUILD/src/libivlink_internal.a, libjansson.a and
# (for `ivlink sdm`) libsodium.a.
# usage: build-cli.sh BUILD OUTPUT
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$1
out=$2
cc=${CC:-gcc}
if [ -x "$build/tools/ivlink/ivlink-static" ]; then
	cp "$build/tools/ivlink/ivlink-static" "$out"
	exit 0
fi
cli_src=
for f in "$repo"/tools/ivlink/*.c; do
	case $f in */fuzz_argv.c) ;; *) cli_src="$cli_src $f" ;; esac
done
# `ivlink bench` runs the doorbell benchmark of bench/
cli_src="$cli_src $repo/bench/primitives.c $repo/bench/doorbell.c $repo/bench/doorbell-main.c"
# the programs' shared helpers (tools/common)
cli_src="$cli_src $repo/tools/common/util.c"
jansson_a=$(ls /usr/lib/*/libjansson.a /usr/lib/libjansson.a 2>/dev/null | head -n1) || true
sodium_a=$(ls /usr/lib/*/libsodium.a /usr/lib/libsodium.a 2>/dev/null | head -n1) || true
[ -n "$jansson_a" ] || {
	echo "build-cli: no libjansson.a (apt-get install libjansson-dev)" >&2
	exit 1
}
# shellcheck disable=SC2086
$cc -static -O2 -std=gnu11 -I"$build/include" -I"$repo/include" -I"$build" -I"$repo" -D_GNU_SOURCE -I"$repo/src" \
	-I"$repo/bench" -o "$out" $cli_src "$build/src/libivlink_internal.a" "$jansson_a" \
	$sodium_a -lpthread -lrt
