#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Build ivlink_ivshmem.ko, virtio_ivlink.ko and virtio_sdm.ko with W=1, and sparse (C=1)
# when it is installed; fail on any compiler or sparse warning (the modules
# must stay clean).  The modules are copied, in build.sh's order, to the
# COPY-TO paths given.
# usage: check-build.sh KDIR OUTDIR [COPY-TO...]    exit 77 without headers
set -u
here=$(cd "$(dirname "$0")" && pwd)
kdir=$1
out=$2
shift 2
extra="W=1"
if command -v sparse >/dev/null 2>&1; then
	extra="$extra C=1"
else
	echo "check-build: sparse not installed: W=1 only" >&2
fi
rm -rf "$out"
# shellcheck disable=SC2086
kos=$("$here/build.sh" "$kdir" "$out" $extra 2>"$out.log")
rc=$?
cat "$out.log" >&2
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || exit 1
if grep -E 'warning:|error:|sparse:' "$out.log" >/dev/null; then
	echo "check-build: the module is not warning-clean ($extra)" >&2
	exit 1
fi
for ko in $kos; do
	echo "check-build: $ko clean with $extra"
	[ $# -eq 0 ] && continue
	cp "$ko" "$1" || exit 1
	shift
done
