#!/bin/sh
# SPDX-License-Identifier: MIT
# Build a tiny out-of-tree module that includes ivlink's wire-format headers
# (<ivlink/proto/*.h>, <ivlink/uapi/*.h>) against a kernel's headers, with
# W=1, sparse (C=1) when installed, and warnings as errors.
# Usage: check-kernel.sh KDIR|auto SOURCE_INCLUDE_DIR
# auto: the newest Debian kernel headers installed (linux-headers-amd64,
# which scripts/deps.sh installs).  Exit 77 (skipped) when there are none.
set -eu
kdir=$1 inc=$(cd "$2" && pwd)
if [ "$kdir" = auto ] || [ ! -f "$kdir/Makefile" ]; then
	kdir=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
	if [ -z "$kdir" ] || [ ! -f "$kdir/Makefile" ]; then
		echo "SKIP: no kernel headers (apt-get install linux-headers-amd64)"
		exit 77
	fi
fi
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$here/kmod/ivl_hdrcheck.c" "$tmp/"
printf 'obj-m := ivl_hdrcheck.o\nccflags-y := -I%s -Werror\n' "$inc" >"$tmp/Kbuild"
sparse=
command -v sparse >/dev/null 2>&1 && sparse="C=1 CHECKFLAGS=-Wsparse-error"
# shellcheck disable=SC2086
make -s -C "$kdir" M="$tmp" W=1 $sparse modules
test -f "$tmp/ivl_hdrcheck.ko"
echo "ok: proto and uapi headers build in a module against $kdir${sparse:+ (sparse clean)}"
