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
sh "$here/lay-out.sh" "$dst"
cp "$here"/Makefile "$here"/dkms.conf "$dst/"
sed -i "s/^PACKAGE_VERSION=.*/PACKAGE_VERSION=\"$ver\"/" "$dst/dkms.conf"
echo "$dst"
