#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Build ivlink_ivshmem.ko, virtio_ivlink.ko and virtio_sdm.ko out of the source tree
# (Kbuild writes next to its sources, so they are copied first).
# usage: build.sh KDIR OUTDIR [MAKE-ARGS...]     e.g. W=1 C=1
# Prints the modules' paths, one a line, ivlink_ivshmem.ko first.
# Exit 77 when KDIR has no Makefile.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
kdir=$1
out=$2
shift 2
[ -f "$kdir/Makefile" ] || {
	echo "build.sh: no kernel headers in $kdir" >&2
	exit 77
}
mkdir -p "$out"
# Kbuild needs an absolute M=.
out=$(cd "$out" && pwd)
sh "$here/lay-out.sh" "$out"
make -s -C "$kdir" M="$out" "$@" modules >&2
echo "$out/ivlink_ivshmem.ko"
echo "$out/virtio_ivlink.ko"
echo "$out/virtio_sdm.ko"
