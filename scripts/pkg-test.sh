#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Debian package test (docs/packaging.md):
#   1. copies the source tree (tracked and untracked, not ignored, files)
#      into a temporary directory and runs `dpkg-buildpackage -us -uc -b`
#      there (DEB_BUILD_OPTIONS="nocheck noautodbgsym": the suite runs the
#      tests itself; no -dbgsym packages);
#   2. runs lintian on the .changes: fails on any error, and on any warning
#      that debian/README.lintian does not explain;
#   3. unpacks libivlink0, libivlink-dev, ivlink and ivlink-dkms into a
#      clean root;
#   4. compiles examples/pingpong.c against that root only
#      (`pkg-config ivlink` of the root; checks where every ivlink header
#      and libivlink.so.0 come from);
#   5. runs the installed ivlink-server and two pingpong peers against it,
#      `ivlink --version`, and `man -l` on the installed pages;
#   6. builds the guest kernel module from ivlink-dkms's source tree with
#      the command of its dkms.conf, against the kernel headers of
#      $IVL_KDIR, else the running kernel's, else the newest
#      /usr/src/linux-headers-*-ARCH (skipped, and said so, without any).
# Prints one summary line; exit status 0 only if every step passed.
# Nothing is written outside the temporary directory (but for --update-symbols).
#
# Options:
#   --jobs N           parallel build jobs (default: nproc)
#   --keep             keep the temporary directory (its path is printed)
#   --update-symbols   build with symbol checks off and rewrite
#                      debian/libivlink0.symbols from the library built
#                      (after a deliberate ABI change; review the diff)
#   -h, --help         this help
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc) keep=0 update_symbols=0
while [ $# -gt 0 ]; do
	case "$1" in
	--jobs) jobs=$2; shift ;;
	--keep) keep=1 ;;
	--update-symbols) update_symbols=1 ;;
	-h|--help) sed -n '3,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "pkg-test: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

t0=$(date +%s)
tmp=$(mktemp -d /tmp/ivl-pkg.XXXXXX)
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then
		# timeout(1) forwards the signal, and SIGKILLs 10 s later.
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	if [ $keep -eq 1 ]; then
		echo "pkg-test: kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT

fail() {
	echo "pkg-test: FAIL ($(( $(date +%s) - t0 ))s): $*"
	exit 1
}
# show_log FILE: the end of a log, on stderr, for a failure report.
show_log() { echo "--- $1 (last 60 lines)" >&2; tail -n 60 "$1" >&2; }

step() { echo "pkg-test: $*"; }

# 1. Build in a copy: dpkg-buildpackage writes the .debs next to the source
# tree and debhelper leaves its files under debian/.
src=$tmp/src
mkdir -p "$src"
step "copying the tree to $src"
if git -C "$here" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# The working state (uncommitted changes included), without build
	# directories or anything else git ignores.
	(cd "$here" && git ls-files -z -c -o --exclude-standard |
		while IFS= read -r -d '' f; do
			[ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"
		done | tar --null -T - -cf -) | tar -xf - -C "$src"
else
	tar -C "$here" --exclude='./build*' --exclude=./debian/.debhelper \
		--exclude='./obj-*' -cf - . | tar -xf - -C "$src"
fi

opts="nocheck noautodbgsym parallel=$jobs"
export DEB_BUILD_OPTIONS=$opts
[ $update_symbols -eq 1 ] && export DPKG_GENSYMBOLS_CHECK_LEVEL=0
step "dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=\"$opts\")"
tb=$(date +%s)
if ! (cd "$src" && timeout 900 dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
	show_log "$tmp/build.log"
	grep -q 'dpkg-gensymbols' "$tmp/build.log" &&
		echo "pkg-test: the exported symbols differ from debian/libivlink0.symbols: if the change is deliberate, run scripts/pkg-test.sh --update-symbols (docs/packaging.md)" >&2
	fail "dpkg-buildpackage failed"
fi
build_s=$(( $(date +%s) - tb ))
upstream=$(cd "$src" && dpkg-parsechangelog -S Version | sed 's/-[^-]*$//')

if [ $update_symbols -eq 1 ]; then
	# New symbols get the upstream version (-v); dpkg-gensymbols keeps
	# the entries of symbols gone from the library, unmarked when they
	# carry that same version: mark them #MISSING here, by the list of
	# what the library exports (the package's DEBIAN/symbols).
	(cd "$src" && dpkg-gensymbols -plibivlink0 -Pdebian/libivlink0 \
		-v"$upstream" -c0 -O"$tmp/symbols.all") >/dev/null 2>&1
	awk -v ver="$upstream" '
		FNR == NR { if ($0 ~ /^ /) have[$1] = 1; next }
		/^ / && !($1 in have) { print "#MISSING: " ver "#" $0; next }
		{ print }' "$src/debian/libivlink0/DEBIAN/symbols" "$tmp/symbols.all" >"$tmp/symbols"
	step "debian/libivlink0.symbols rewritten:"
	diff -u "$here/debian/libivlink0.symbols" "$tmp/symbols" || true
	cp "$tmp/symbols" "$here/debian/libivlink0.symbols"
	if grep -q '#MISSING' "$here/debian/libivlink0.symbols"; then
		echo "pkg-test: symbols marked #MISSING were removed from the library: an ABI break (bump the soname, docs/packaging.md)" >&2
	fi
	exit 0
fi

shopt -s nullglob
debs=("$tmp"/libivlink0_*.deb "$tmp"/libivlink-dev_*.deb "$tmp"/ivlink_*.deb "$tmp"/ivlink-dkms_*.deb)
shopt -u nullglob
[ ${#debs[@]} -eq 4 ] || fail "expected 4 packages, built: $(cd "$tmp" && echo *.deb)"

# 2. lintian: no error, and no warning that debian/README.lintian does not
# explain (it names each tag it explains).
step "lintian"
lintian_rc=0
timeout 300 lintian --fail-on error --display-info "$tmp"/*.changes >"$tmp/lintian.log" 2>&1 || lintian_rc=$?
grep -v 'running with root privileges' "$tmp/lintian.log" | sed 's/^/    /' || true
[ $lintian_rc -eq 0 ] || fail "lintian reported errors (exit $lintian_rc)"
nwarn=0
while read -r _ pkg tag _; do
	nwarn=$((nwarn + 1))
	grep -qw -- "$tag" "$src/debian/README.lintian" ||
		fail "lintian warning $tag (${pkg%:}) is neither fixed nor explained in debian/README.lintian"
done < <(grep '^W: ' "$tmp/lintian.log" || true)

# 3. A clean root.  The packages are unpacked with dpkg-deb -x rather than
# installed with dpkg --root: what is tested here is the files, and
# dpkg --root would need a dpkg database in the root and would run the
# maintainer scripts (deb-systemd-helper) chrooted into a root without a
# shell.  Which host libraries they need is checked below with ldd.
root=$tmp/root
mkdir -p "$root"
for d in "${debs[@]}"; do
	dpkg-deb -x "$d" "$root"
done
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
libdir=$root/usr/lib/$ma
[ -f "$libdir/pkgconfig/ivlink.pc" ] || fail "libivlink-dev has no $libdir/pkgconfig/ivlink.pc"

# 4. Build pingpong against the root only.  PKG_CONFIG_LIBDIR replaces the
# default search path, PKG_CONFIG_SYSROOT_DIR prefixes the .pc's paths.
export PKG_CONFIG_LIBDIR=$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_PATH=
cflags=$(pkg-config --cflags ivlink) || fail "pkg-config --cflags ivlink"
libs=$(pkg-config --libs ivlink) || fail "pkg-config --libs ivlink"
case " $cflags " in *" -I$root/usr/include "*) ;; *) fail "pkg-config --cflags ivlink gives '$cflags', not -I$root/usr/include" ;; esac
case " $libs " in *" -L$libdir "*) ;; *) fail "pkg-config --libs ivlink gives '$libs', not -L$libdir" ;; esac
read -ra cc <<<"${CC:-cc}"
read -ra cflags_w <<<"$cflags"
read -ra libs_w <<<"$libs"
mkdir -p "$tmp/pp"
cp "$src/examples/pingpong.c" "$tmp/pp/"
compile=("${cc[@]}" -std=gnu11 -Wall -Wextra -Werror -O2 "${cflags_w[@]}" "$tmp/pp/pingpong.c"
	-o "$tmp/pp/pingpong" "${libs_w[@]}" "-Wl,-rpath,$libdir")
step "${compile[*]}"
"${compile[@]}" >"$tmp/pp/cc.log" 2>&1 || { show_log "$tmp/pp/cc.log"; fail "pingpong.c does not compile against the installed headers"; }
# Every ivlink header the compiler read comes from the root.
"${cc[@]}" -std=gnu11 "${cflags_w[@]}" -M "$tmp/pp/pingpong.c" >"$tmp/pp/deps" 2>&1 || fail "cc -M pingpong.c"
grep -oE '[^[:space:]]*/ivlink/[^[:space:]]*' "$tmp/pp/deps" >"$tmp/pp/ivl-headers" || fail "pingpong.c read no ivlink header"
if grep -v "^$root/usr/include/ivlink/" "$tmp/pp/ivl-headers" >&2; then
	fail "pingpong.c read ivlink headers from outside the root (above)"
fi
ldd "$tmp/pp/pingpong" >"$tmp/pp/ldd" || fail "ldd pingpong"
grep -q "libivlink.so.0 => $libdir/libivlink.so.0 " "$tmp/pp/ldd" ||
	{ cat "$tmp/pp/ldd" >&2; fail "pingpong does not load the installed libivlink.so.0"; }
for b in ivlink ivlink-server; do
	if LD_LIBRARY_PATH=$libdir ldd "$root/usr/bin/$b" | grep 'not found' >&2; then
		fail "$b: libraries not found"
	fi
done

# 5. Run what was installed.
export LD_LIBRARY_PATH=$libdir
ver=$(timeout 10 "$root/usr/bin/ivlink" --version) || fail "ivlink --version exited $?"
case "$ver" in *"$upstream"*) ;; *) fail "ivlink --version printed '$ver', not version $upstream" ;; esac
sver=$(timeout 10 "$root/usr/bin/ivlink-server" --version) || fail "ivlink-server --version exited $?"
case "$sver" in *"$upstream"*) ;; *) fail "ivlink-server --version printed '$sver', not version $upstream" ;; esac
[ "$(readlink "$root/usr/bin/ivshmem-server")" = ivlink-server ] || fail "no ivshmem-server -> ivlink-server link"
for page in man1/ivlink.1 man8/ivlink-server.8; do
	f=$root/usr/share/man/$page.gz
	gzip -t "$f" 2>/dev/null || fail "$f is missing or not gzip'd"
	name=$(basename "$page" | sed 's/\.[0-9]$//')
	MANWIDTH=80 timeout 30 man -l "$f" >"$tmp/man.txt" 2>"$tmp/man.err" ||
		{ cat "$tmp/man.err" >&2; fail "man -l $f exited $?"; }
	[ -s "$tmp/man.err" ] && { cat "$tmp/man.err" >&2; fail "man -l $f warned"; }
	if ! grep -q "^NAME" "$tmp/man.txt" || ! grep -q "^ *$name - " "$tmp/man.txt"; then
		fail "man -l $f shows no NAME section for $name"
	fi
done
[ -f "$root/usr/share/bash-completion/completions/ivlink" ] || fail "no bash completion"
for u in ivlink-server.service ivlink-server.socket; do
	[ -f "$root/lib/systemd/system/$u" ] || fail "no unit $u"
done
grep -q "^ExecStart=/usr/bin/ivlink-server " "$root/lib/systemd/system/ivlink-server.service" ||
	fail "ivlink-server.service does not start /usr/bin/ivlink-server"

sock=$tmp/sock
step "running $root/usr/bin/ivlink-server and two pingpong peers"
# Under timeout(1), so that every wait for it is bounded: a SIGTERM sent to
# timeout is forwarded to the server, which must then exit 0.
timeout -k 10 600 "$root/usr/bin/ivlink-server" -F -S "$sock" --memfd -l 1M -n 2 >"$tmp/server.log" 2>&1 &
server_pid=$!
# shellcheck disable=SC2016 # expanded by the inner shell
if ! timeout 30 bash -c 'until [ -S "$1" ]; do kill -0 "$2" || exit 1; sleep 0.05; done' _ "$sock" "$server_pid"; then
	show_log "$tmp/server.log"
	fail "ivlink-server did not create its socket"
fi
rounds=2000
for mode in interrupt adaptive; do
	timeout 60 "$tmp/pp/pingpong" "$sock" $rounds $mode >"$tmp/pp1.log" 2>&1 &
	p1=$!
	rc=0
	timeout 60 "$tmp/pp/pingpong" "$sock" $rounds $mode >"$tmp/pp2.log" 2>&1 || rc=$?
	rc1=0
	wait $p1 || rc1=$?
	if [ $rc -ne 0 ] || [ $rc1 -ne 0 ]; then
		show_log "$tmp/pp1.log"; show_log "$tmp/pp2.log"; show_log "$tmp/server.log"
		fail "pingpong ($mode) exited $rc1 and $rc"
	fi
	for l in pp1 pp2; do
		grep -q "^$rounds rounds, ball at $((2 * rounds)), " "$tmp/$l.log" ||
			{ show_log "$tmp/$l.log"; fail "pingpong ($mode, $l) did not play the whole game"; }
	done
	step "pingpong $mode: $(tail -n 1 "$tmp/pp2.log")"
done
kill -TERM "$server_pid"
rc=0
wait "$server_pid" || rc=$?
server_pid=
[ $rc -eq 0 ] || { show_log "$tmp/server.log"; fail "ivlink-server exited $rc on SIGTERM"; }
[ ! -e "$sock" ] || fail "ivlink-server left its socket behind"

# 6. ivlink-dkms: the module builds from the installed source tree with the
# build command of its dkms.conf, as DKMS runs it.  Not dkms itself: it
# would keep its state and a signing key under /var/lib/dkms.
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
kdir=${IVL_KDIR:-}
if [ -z "$kdir" ] && [ -f "/lib/modules/$(uname -r)/build/Makefile" ]; then
	kdir=/lib/modules/$(uname -r)/build
fi
if [ -z "$kdir" ]; then
	while IFS= read -r d; do
		[ -f "$d/Makefile" ] && kdir=$d
	done < <(printf '%s\n' /usr/src/linux-headers-*-"$arch" | sort -V)
fi
dkms_src=$root/usr/src/ivlink-$upstream
[ -f "$dkms_src/dkms.conf" ] || fail "ivlink-dkms has no $dkms_src/dkms.conf"
if [ -n "$kdir" ]; then
	step "building the ivlink-dkms modules from $dkms_src against $kdir"
	dkms_tree=$tmp/dkms
	bdir=$dkms_tree/ivlink/$upstream/build
	mkdir -p "$bdir"
	cp -a "$dkms_src/." "$bdir/"
	# dkms.conf is shell: DKMS sources it with these variables set.
	# shellcheck disable=SC2016 # expanded by the inner shell
	make_cmd=$(kernel_source_dir=$kdir dkms_tree=$dkms_tree bash -c '
		set -eu; . "$1"
		[ "$PACKAGE_NAME" = ivlink ] && [ "$PACKAGE_VERSION" = "$2" ] && [ "${BUILT_MODULE_NAME[0]}" = ivlink_ivshmem ]
		echo "${MAKE[0]}"' _ "$bdir/dkms.conf" "$upstream") ||
		fail "$dkms_src/dkms.conf: not package ivlink $upstream with module ivlink_ivshmem"
	(cd "$bdir" && MAKEFLAGS=-j$jobs timeout 600 bash -c "$make_cmd") >"$tmp/dkms-build.log" 2>&1 ||
		{ show_log "$tmp/dkms-build.log"; fail "the ivlink-dkms module does not build: $make_cmd"; }
	krel=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' "$kdir/include/generated/utsrelease.h" 2>/dev/null)
	# Every module dkms.conf names is built, for this kernel.
	# shellcheck disable=SC2016 # expanded by the inner shell
	mods=$(bash -c '. "$1"; echo "${BUILT_MODULE_NAME[*]}"' _ "$bdir/dkms.conf")
	for m in $mods; do
		ko=$bdir/$m.ko
		[ -f "$ko" ] || fail "no $ko after $make_cmd"
		[ "$(modinfo -F vermagic "$ko" | cut -d' ' -f1)" = "$krel" ] || fail "$ko is not built for $krel"
	done
	dkms_result="$(echo "$mods" | sed 's/ /.ko, /g').ko built from ivlink-dkms for $krel"
else
	dkms_result="ivlink-dkms module build SKIPPED (no kernel headers; set IVL_KDIR)"
	step "$dkms_result"
fi

echo "pkg-test: PASS ($(( $(date +%s) - t0 ))s, build ${build_s}s): 4 packages $upstream built, lintian 0 errors and $nwarn explained warnings, pingpong built with pkg-config ivlink from the clean root, $rounds rounds x2 modes against the installed ivlink-server, $dkms_result"
