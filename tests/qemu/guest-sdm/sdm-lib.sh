# SPDX-License-Identifier: MIT
# shellcheck shell=sh
# sdm-lib.sh: helpers of the guest-sdm cases (sourced): results, signals
# as bytes, bounded waits, the transport's sysfs directory ($dir, found by
# find_transport).  $P is the prefix of every result line (GS, GA, GB).
fails=0
ok() { echo "$P-OK $*"; }
bad() {
	echo "$P-FAIL $*"
	fails=$((fails + 1))
}

# One le32 / one 16-byte SDMSignalData {type, slave, payload[2]}.
le32() {
	local v=$(($1 & 0xffffffff)) sh
	for sh in 0 8 16 24; do
		# shellcheck disable=SC2059 # the octal escape is the format
		printf "\\$(printf %03o $(((v >> sh) & 255)))"
	done
}
sig() { le32 "$1"; le32 "$2"; le32 "$3"; le32 "$4"; }

# send DEV TYPE SLAVE P0 P1: one write(); its error text in /tmp/send.err.
send() {
	d=$1
	shift
	sig "$@" >/tmp/sig.bin
	dd if=/tmp/sig.bin of="$d" bs=16 count=1 2>/tmp/send.err >/dev/null
}
# refused NAME ERRTEXT DEV TYPE SLAVE P0 P1: the write fails with ERRTEXT.
refused() {
	n=$1
	e=$2
	shift 2
	if send "$@"; then
		bad "$n: accepted"
	elif grep -q "$e" /tmp/send.err; then
		ok "$n"
	else
		bad "$n: $(cat /tmp/send.err)"
	fi
}
# gone PID: PID has exited (or is a zombie), within 90 s.
gone() {
	local i=0
	while [ -e "/proc/$1" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ] &&
		[ $i -lt 900 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ $i -lt 900 ]
}
# rec FD: one 20-byte record read from fd FD, as "type slave p0 p1 from"
# (not under busybox timeout: its watcher would keep the fd open).
rec() {
	rm -f /tmp/rec.bin
	dd bs=20 count=1 <&"$1" 2>/dev/null >/tmp/rec.bin &
	local p=$!
	gone $p || kill $p
	wait $p
	# shellcheck disable=SC2046
	echo $(od -An -tu4 /tmp/rec.bin)
}
# wait_val FILE VALUE: until FILE reads VALUE (60 s bound).
wait_val() {
	i=0
	while [ "$(cat "$1" 2>/dev/null)" != "$2" ] && [ $i -lt 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ "$(cat "$1" 2>/dev/null)" = "$2" ]
}
wait_file() {
	i=0
	while [ ! -e "$1" ] && [ $i -lt 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -e "$1" ]
}
# newest_sdm: the transport ID of the newest SDM device.
newest_sdm() {
	grep '^[0-9]* sdm ' "$dir/devices" | sort -n | tail -n 1 | cut -d' ' -f1
}

# find_transport: $dir, the transport's sysfs directory (30 s bound).
find_transport() {
	i=0
	dir=
	while [ -z "$dir" ] && [ $i -lt 300 ]; do
		for a in /sys/bus/auxiliary/devices/ivlink_ivshmem.region.*; do
			[ -e "$a/devices" ] && cat "$a/devices" >/dev/null 2>&1 && dir=$a
		done
		[ -n "$dir" ] || sleep 0.1
		i=$((i + 1))
	done
	[ -n "$dir" ] || {
		bad "no transport"
		exit 1
	}
}
