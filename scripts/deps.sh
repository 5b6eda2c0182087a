#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install what ivlink needs to build and test on Debian 12 (idempotent).
# Run as root (or with sudo available).
set -euo pipefail

pkgs=(build-essential meson ninja-build pkg-config clang llvm libclang-rt-14-dev
      libcmocka-dev libjansson-dev libsodium-dev libsystemd-dev scdoc
      linux-libc-dev python3 util-linux procps)
# The QEMU suite's own needs (tests/qemu/setup.sh fetches the guest kernel).
pkgs+=(qemu-system-x86 busybox-static cpio)
# The guest kernel driver (kernel/): sparse for `make C=1`; the headers of
# the guest kernel come from tests/qemu/setup.sh (same ABI number).
pkgs+=(sparse make)
# The Debian packages and their test (debian/, scripts/pkg-test.sh).
pkgs+=(debhelper dh-dkms dpkg-dev lintian man-db)
# tests/headers builds the wire-format headers in a module against Debian's
# current kernel headers.
pkgs+=(linux-headers-amd64)
# guest-virtio-blk checks the guest's file system on the host (e2fsck).
pkgs+=(e2fsprogs)
# guest-virtio-net: ip netns / ip tuntap for its TAP; net-bench: ss
pkgs+=(iproute2)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#pkgs[@]} packages present"
	exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
