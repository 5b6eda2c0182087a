#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Build ivlink_ivshmem.ko with W=1, and sparse (C=1) when it is installed;
# fail on any compiler or sparse warning (the module must stay clean).
# usage: check-build.sh KDIR OUTDIR [COPY-TO]    exit 77 without headers
set -u
here=$(cd "$(dirname "$0")" && pwd)
kdir=$1
out=$2
copy=${3:-}
extra="W=1"
if command -v sparse >/dev/null 2>&1; then
	extra="$extra C=1"
else
	echo "check-build: sparse not installed: W=1 only" >&2
fi
rm -rf "$out"
# shellcheck disable=SC2086
ko=$("$here/build.sh" "$kdir" "$out" $extra 2>"$out.log")
rc=$?
cat "$out.log" >&2
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || exit 1
if grep -E 'warning:|error:|sparse:' "$out.log" >/dev/null; then
	echo "check-build: the module is not warning-clean ($extra)" >&2
	exit 1
fi
echo "check-build: $ko clean with $extra"
[ -z "$copy" ] || cp "$ko" "$copy"
