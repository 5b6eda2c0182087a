#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Build a tiny initramfs (cpio newc, gzip) for the real-QEMU tests:
# static busybox, the VFIO modules of the cached Debian kernel, an /init
# that drives one test, and the static guest programs given as arguments
# (copied into /bin under their base names; shell scripts work too, busybox
# sh runs them).  Arguments ending in .ko are out-of-tree modules (ivlink's
# kernel/ driver), copied into /lib/modules/extra/.
#
# usage: mkinitramfs.sh OUTPUT.cpio.gz [GUEST-PROGRAM...]
#
# Kernel command-line parameters understood by /init:
#   ivl.vfio=1        bind every 1af4:1110 device to vfio-pci first
#   ivl.kmod=1        insmod every /lib/modules/extra/*.ko first (the
#                     ivshmem devices then bind to ivlink_ivshmem)
#   ivl.dmesg=1       before the result, print the kernel log between
#                     IVL-DMESG-BEGIN and IVL-DMESG-END, and IVL-TAINT: N
#   ivl.run=PROG,ARG  program to run; commas become spaces (the kernel's own
#                     quoting does not survive into /proc/cmdline reliably)
#   ivl.timeout=SEC   bound for ivl.run (default 60)
#   ivl.shell=1       start a shell instead of powering off (debugging)
# /init prints "IVL-RESULT: PASS ..." or "IVL-RESULT: FAIL ..." on the
# console and powers the VM off.
#
# Environment: IVL_QEMU_CACHE (as setup.sh), IVL_BUSYBOX (default: the
# busybox-static binary), IVL_INITRAMFS_MODULES (more modules of the
# guest kernel, e.g. virtio_console).

set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache=${IVL_QEMU_CACHE:-$here/cache}

die() { printf 'mkinitramfs: error: %s\n' "$*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 OUTPUT.cpio.gz [GUEST-PROGRAM...]"
out=$1
shift

[ -f "$cache/kernel.env" ] || die "no $cache/kernel.env: run setup.sh first"
# shellcheck disable=SC1091
. "$cache/kernel.env"

busybox=${IVL_BUSYBOX:-}
if [ -z "$busybox" ]; then
	for b in /bin/busybox /usr/bin/busybox; do
		[ -x "$b" ] && busybox=$b && break
	done
fi
[ -n "$busybox" ] || die "busybox not found (apt-get install busybox-static)"
# A dynamic busybox would die in the initramfs before printing anything.
if command -v ldd >/dev/null 2>&1 && ldd "$busybox" 2>/dev/null | grep -q '=>'; then
	die "$busybox is dynamically linked; install busybox-static"
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/ivl-initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT INT TERM

mkdir -p "$stage/bin" "$stage/dev" "$stage/proc" "$stage/sys" \
	"$stage/tmp" "$stage/lib/modules/extra"
cp "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"

# --- modules ----------------------------------------------------------------
# Resolve dependencies from each module's .modinfo (depends=), so no depmod
# is needed; emit them leaves first, which is the insmod order.
modpath() {
	# module names use '_' and '-' interchangeably
	n1=$1
	n2=$(printf '%s' "$1" | tr '_' '-')
	n3=$(printf '%s' "$1" | tr '-' '_')
	find "$IVL_MODDIR/kernel" \( -name "$n1.ko" -o -name "$n2.ko" \
		-o -name "$n3.ko" \) 2>/dev/null | head -n 1
}

order=
add_module() {
	case " $order " in *" $1 "*) return 0 ;; esac
	f=$(modpath "$1")
	[ -n "$f" ] || die "module $1 not found under $IVL_MODDIR"
	# sh has no locals: copy now, before recursion reuses $f
	cp "$f" "$stage/lib/modules/$1.ko"
	deps=$(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p' | head -n 1 | tr ',' ' ')
	for d in $deps; do
		add_module "$d"
	done
	case " $order " in *" $1 "*) return 0 ;; esac
	order="$order $1"
}
# IVL_INITRAMFS_MODULES: more of the kernel's modules (with their
# dependencies), loaded like these before ivl.kmod's.
for m in vfio vfio_iommu_type1 vfio-pci ${IVL_INITRAMFS_MODULES:-}; do
	add_module "$m"
done
# shellcheck disable=SC2086 # one module per line
printf '%s\n' $order >"$stage/lib/modules/order"

# --- guest programs -----------------------------------------------------------
for p in "$@"; do
	[ -f "$p" ] || die "guest program $p not found"
	case $p in *.ko)
		cp "$p" "$stage/lib/modules/extra/"
		continue
		;;
	esac
	if command -v ldd >/dev/null 2>&1 && ldd "$p" 2>/dev/null | grep -q '=>'; then
		die "$p is dynamically linked; the initramfs has no libc (use -static)"
	fi
	cp "$p" "$stage/bin/$(basename "$p")"
	chmod 0755 "$stage/bin/$(basename "$p")"
done

# --- /init --------------------------------------------------------------------
cat >"$stage/init" <<'EOF'
#!/bin/busybox sh
# SPDX-License-Identifier: MIT
# ivlink QEMU test init: set up, run one test program, report, power off.
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm

result() {
	if grep -q 'ivl.dmesg=1' /proc/cmdline; then
		echo "IVL-DMESG-BEGIN"
		dmesg
		echo "IVL-DMESG-END"
		echo "IVL-TAINT: $(cat /proc/sys/kernel/tainted)"
	fi
	echo "IVL-RESULT: $*"
	# Let the console drain before the VM disappears.
	sleep 1
	if grep -q 'ivl.shell=1' /proc/cmdline; then
		exec sh
	fi
	poweroff -f
	# poweroff -f never returns; if it does, do not let init exit (panic).
	while :; do sleep 60; done
}

param() {
	for w in $(cat /proc/cmdline); do
		case "$w" in "$1="*) echo "${w#*=}"; return 0 ;; esac
	done
	return 1
}

echo "IVL-BOOT: init started, uptime $(cut -d' ' -f1 /proc/uptime) s, kernel $(uname -r)"

for m in $(cat /lib/modules/order); do
	if ! insmod "/lib/modules/$m.ko" 2>/tmp/insmod.err; then
		# already loaded (or built in) is fine; anything else is not
		if ! grep -q 'File exists' /tmp/insmod.err; then
			cat /tmp/insmod.err
			result "FAIL insmod $m"
		fi
	fi
done
echo "IVL-BOOT: modules loaded: $(cat /lib/modules/order | tr '\n' ' ')"
if [ "$(param ivl.kmod)" = 1 ]; then
	for m in /lib/modules/extra/*.ko; do
		[ -f "$m" ] || continue
		insmod "$m" || result "FAIL insmod $m"
		echo "IVL-KMOD: loaded $m"
	done
fi

ndev=0
for d in /sys/bus/pci/devices/*; do
	[ "$(cat "$d/vendor")" = 0x1af4 ] || continue
	[ "$(cat "$d/device")" = 0x1110 ] || continue
	ndev=$((ndev + 1))
	bdf=${d##*/}
	echo "IVL-DEV: $bdf 1af4:1110"
	[ "$(param ivl.vfio)" = 1 ] || continue
	if [ ! -e "$d/iommu_group" ]; then
		result "FAIL $bdf has no IOMMU group (intel_iommu=on? -device intel-iommu?)"
	fi
	echo vfio-pci >"$d/driver_override"
	if [ -e "$d/driver" ]; then
		echo "$bdf" >"$d/driver/unbind"
	fi
	echo "$bdf" >/sys/bus/pci/drivers_probe
	drv=$(basename "$(readlink "$d/driver" 2>/dev/null)" 2>/dev/null)
	grp=$(basename "$(readlink "$d/iommu_group")")
	if [ "$drv" != vfio-pci ]; then
		result "FAIL $bdf bound to '$drv', not vfio-pci"
	fi
	i=0
	while [ ! -e "/dev/vfio/$grp" ] && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -e "/dev/vfio/$grp" ] || result "FAIL /dev/vfio/$grp did not appear"
	echo "IVL-VFIO: $bdf bound to vfio-pci, iommu group $grp"
done
echo "IVL-BOOT: $ndev ivshmem device(s)"

run=$(param ivl.run) || result "PASS boot-only (no ivl.run given)"
run=$(echo "$run" | tr ',' ' ')
tmo=$(param ivl.timeout) || tmo=60
echo "IVL-RUN: $run (timeout ${tmo}s, uptime $(cut -d' ' -f1 /proc/uptime) s)"
# shellcheck disable=SC2086
timeout "$tmo" $run
rc=$?
if [ $rc -eq 0 ]; then
	result "PASS rc=0 uptime $(cut -d' ' -f1 /proc/uptime) s"
else
	result "FAIL rc=$rc"
fi
EOF
chmod 0755 "$stage/init"

# --- archive --------------------------------------------------------------------
tmpout="$out.tmp.$$"
(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
	gzip -9n >"$tmpout" || { rm -f "$tmpout"; die "cpio/gzip failed"; }
mv "$tmpout" "$out"
printf 'mkinitramfs: %s (%s bytes; modules:%s; programs: %s)\n' \
	"$out" "$(wc -c <"$out")" "$order" "$*"
