#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Lay out the DKMS source tree of ivlink_ivshmem: kernel/ and the user ABI
# header in DESTDIR/usr/src/ivlink-VERSION (then: dkms install ivlink/VERSION).
# usage: dkms-source.sh [VERSION] [DESTDIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
ver=${1:-$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$here/dkms.conf")}
dst=${2:-}/usr/src/ivlink-$ver
mkdir -p "$dst/include/ivlink/uapi" "$dst/include/ivlink/proto"
cp "$here"/Kbuild "$here"/Makefile "$here"/dkms.conf "$dst/"
for f in "$here"/*.c "$here"/*.h; do
	case $f in *.mod.c) ;; *) cp "$f" "$dst/" ;; esac
done
sed -i "s/^PACKAGE_VERSION=.*/PACKAGE_VERSION=\"$ver\"/" "$dst/dkms.conf"
cp "$here/../include/ivlink/uapi/ivshmem-drv.h" "$dst/include/ivlink/uapi/"
cp "$here"/../include/ivlink/proto/*.h "$dst/include/ivlink/proto/"
echo "$dst"
