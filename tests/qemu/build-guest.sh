#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Build the static guest programs for the real-QEMU tests.
# usage: build-guest.sh [OUTDIR]     (default: tests/qemu/work/guest)
# Prints the paths of the built programs, one per line, on stdout.

set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/work/guest}
cc=${CC:-gcc}

mkdir -p "$out"
for src in "$here"/guest/*.c; do
	prog=$out/$(basename "$src" .c)
	# -static: the initramfs has no libc.  Warnings are errors, as in CI.
	$cc -static -O2 -std=gnu11 -Wall -Wextra -Werror -o "$prog" "$src" >&2 ||
		{ echo "build-guest: $cc failed for $src" >&2; exit 1; }
	echo "$prog"
done
