#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Copy what Kbuild needs to build the module out of tree into DEST: Kbuild,
# the module's sources and the ivlink headers it includes (uapi/ and
# proto/, under DEST/include).  Shared by build.sh and dkms-source.sh.
# usage: lay-out.sh DEST
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dst=$1
mkdir -p "$dst/include/ivlink/uapi" "$dst/include/ivlink/proto"
cp "$here"/Kbuild "$dst/"
for f in "$here"/*.c "$here"/*.h; do
	case $f in *.mod.c) ;; *) cp "$f" "$dst/" ;; esac
done
cp "$here/../include/ivlink/uapi/ivshmem-drv.h" "$dst/include/ivlink/uapi/"
cp "$here"/../include/ivlink/proto/*.h "$dst/include/ivlink/proto/"
