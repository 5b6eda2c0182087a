#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Prepare this machine for the real-QEMU tests: make sure QEMU, a static
# busybox and cpio are installed, and fetch Debian's 6.1 kernel (image and
# modules) into a cache directory.  Idempotent: a second run only checks.
#
# Environment:
#   IVL_QEMU_CACHE       cache directory (default: tests/qemu/cache)
#   IVL_QEMU_KERNEL_PKG  exact Debian package to use instead of the newest
#                        linux-image-6.1.0-N-amd64[-unsigned]
#   IVL_QEMU_KEEP_MODULES=1  keep every kernel module (default: the ones the
#                        tests load and their dependencies)
#
# On success the cache holds kernel.env, a shell fragment defining
# IVL_KVER, IVL_VMLINUZ and IVL_MODDIR, which the other scripts source.
# It also installs linux-headers-$IVL_KVER, the headers the guest kernel
# driver (kernel/, suite `kernel`) is built against; without them (no apt)
# that suite skips.

set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache=${IVL_QEMU_CACHE:-$here/cache}

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# apt-get needs root; use sudo when we are not root and sudo is there.
as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# --- 1. packages ----------------------------------------------------------
# The dynamic busybox package also ships /bin/busybox, so ask dpkg for the
# static one explicitly: the initramfs has no libc.
missing=
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing="$missing qemu-system-x86"
pkg_installed busybox-static || missing="$missing busybox-static"
command -v cpio >/dev/null 2>&1 || missing="$missing cpio"
command -v gzip >/dev/null 2>&1 || missing="$missing gzip"

if [ -n "$missing" ]; then
	say "installing:$missing"
	# shellcheck disable=SC2086
	if ! as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends $missing; then
		# A fresh CI image usually has no package lists yet.
		say "install failed, running apt-get update and retrying"
		as_root apt-get update ||
			die "apt-get update failed (offline?)"
		# shellcheck disable=SC2086
		as_root env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends $missing ||
			die "could not install:$missing"
	fi
else
	say "packages present: qemu-system-x86 busybox-static cpio gzip"
fi

# --- 2. kernel ------------------------------------------------------------
mkdir -p "$cache"
envfile=$cache/kernel.env

# The headers of the guest kernel, for kernel/ (a warning when apt cannot
# get them: only the `kernel` suite needs them, and it skips without).
headers() {
	h=linux-headers-$1
	if [ -f "/usr/src/$h/Makefile" ]; then
		say "headers present: $h"
		return 0
	fi
	say "installing $h (for kernel/)"
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends "$h" ||
		{ as_root apt-get update && as_root env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends "$h"; } ||
		say "warning: could not install $h: the kernel suite will skip"
}

if [ -f "$envfile" ]; then
	# shellcheck disable=SC1090
	. "$envfile"
	if [ -f "$IVL_VMLINUZ" ] && [ -f "$IVL_MODDIR/kernel/drivers/vfio/pci/vfio-pci.ko" ] &&
		[ -f "$IVL_MODDIR/kernel/drivers/char/virtio_console.ko" ] &&
		[ -f "$IVL_MODDIR/kernel/fs/ext4/ext4.ko" ] &&
		[ -f "$IVL_MODDIR/kernel/drivers/virtio/virtio_pci.ko" ]; then
		say "kernel cached: $IVL_KVER ($IVL_VMLINUZ)"
		headers "$IVL_KVER"
		exit 0
	fi
	say "cache incomplete, fetching again"
	rm -f "$envfile"
fi

# Newest 6.1 ABI that has a download candidate.  The -unsigned package has
# the same image without the Secure Boot signature; either one boots in QEMU.
candidate() {
	apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p' |
		grep -v '(none)' | head -n 1
}

pick_pkg() {
	for p in $(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null |
		grep -E '^linux-image-6\.1\.0-[0-9]+-amd64(-unsigned)?$' |
		sort -rV); do
		if [ -n "$(candidate "$p")" ]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

pkg=${IVL_QEMU_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
	pkg=$(pick_pkg) || {
		say "no linux-image-6.1 candidate known, running apt-get update"
		as_root apt-get update || die "apt-get update failed (offline?)"
		pkg=$(pick_pkg) ||
			die "no linux-image-6.1.0-*-amd64 package available from apt"
	}
fi
say "kernel package: $pkg $(candidate "$pkg")"

debdir=$cache/deb
rm -rf "$debdir"
mkdir -p "$debdir"
# The _apt sandbox user must be able to write here, or apt warns and
# downloads unsandboxed; both work, the chmod just keeps the log quiet.
chmod 0777 "$debdir" 2>/dev/null || true
(cd "$debdir" && apt-get download "$pkg") ||
	die "download of $pkg failed (offline? try 'apt-get update')"
deb=$(find "$debdir" -maxdepth 1 -name "*.deb" | head -n 1)
[ -n "$deb" ] || die "apt-get download produced no .deb in $debdir"

root=$cache/kernel
rm -rf "$root"
mkdir -p "$root"
say "extracting $(basename "$deb")"
dpkg-deb -x "$deb" "$root" || die "dpkg-deb -x failed for $deb"
rm -rf "$debdir"

vmlinuz=$(find "$root/boot" -maxdepth 1 -name "vmlinuz-*" 2>/dev/null | head -n 1)
[ -n "$vmlinuz" ] || die "no boot/vmlinuz-* in $pkg"
kver=${vmlinuz##*/vmlinuz-}
moddir=$root/lib/modules/$kver
[ -f "$moddir/kernel/drivers/vfio/pci/vfio-pci.ko" ] ||
	die "no vfio-pci module in $pkg"
# The package ships no modules.dep (its postinst runs depmod);
# mkinitramfs.sh reads each module's depends= from its .modinfo instead.

# The whole module tree is ~400 MB.  Keep what the tests load (VFIO, the
# virtio core and the in-tree virtio drivers that run on ivlink's transport,
# ext4 for the disk tests, virtio_pci for the comparisons with QEMU's own
# virtio devices) and every module those depend on, read from each
# module's .modinfo (depends=).  IVL_QEMU_KEEP_MODULES=1 keeps everything.
keep_modules='vfio vfio_iommu_type1 vfio-pci virtio virtio_ring virtio_console
virtio-rng virtio_net virtio_blk ext4 crc32c_generic virtio_pci'
if [ "${IVL_QEMU_KEEP_MODULES:-0}" != 1 ]; then
	keep=$cache/keep.list
	: >"$keep"
	want=$keep_modules
	while [ -n "$want" ]; do
		next=
		for m in $want; do
			a=$(printf '%s' "$m" | tr '_' '-')
			b=$(printf '%s' "$m" | tr '-' '_')
			f=$(find "$moddir/kernel" \( -name "$a.ko" -o -name "$b.ko" \) | head -n 1)
			[ -n "$f" ] || die "no module $m in $pkg"
			grep -qxF "$f" "$keep" && continue
			printf '%s\n' "$f" >>"$keep"
			next="$next $(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p' | head -n 1 | tr ',' ' ')"
		done
		want=$next
	done
	find "$moddir/kernel" -name '*.ko*' | grep -vxF -f "$keep" | xargs -r rm -f
	find "$moddir/kernel" -depth -type d -empty -delete
	rm -rf "${root:?}/usr" "$keep"
fi

headers "$kver"

cat >"$envfile" <<EOF
IVL_KVER='$kver'
IVL_VMLINUZ='$vmlinuz'
IVL_MODDIR='$moddir'
EOF
say "kernel ready: $kver"
say "  image:   $vmlinuz"
say "  modules: $moddir"
