#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Connect to an ivshmem server as a bare protocol peer (docs/protocol.md §1)
and print what it admits us as, without trusting or touching the region:
"RAW-VERSION v", "RAW-ID n", "RAW-SHM" when the fd arrived.  Used where the
shared header may be garbage and a library peer would rightly refuse it.
Exit 0 when version, ID and the shm fd arrived within the time limit."""
import os
import socket
import struct
import sys
import time


def main():
    path = sys.argv[1]
    limit = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(limit)
    s.connect(path)
    end = time.monotonic() + limit
    msgs, got_shm, buf = [], False, b""
    while time.monotonic() < end and not (len(msgs) >= 2 and got_shm):
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            data, fds, _, _ = socket.recv_fds(s, 8, 16)
        except socket.timeout:
            break
        if not data:
            break
        for fd in fds:
            if len(msgs) >= 2 and not got_shm:
                got_shm = True
            os.close(fd)
        buf += data
        while len(buf) >= 8:
            (v,) = struct.unpack("<q", buf[:8])
            buf = buf[8:]
            msgs.append(v)
            if len(msgs) == 1:
                print("RAW-VERSION %d" % v)
            elif len(msgs) == 2:
                print("RAW-ID %d" % v)
            elif v == -1 and fds:
                got_shm = True
    if got_shm:
        print("RAW-SHM")
    sys.stdout.flush()
    s.close()
    return 0 if len(msgs) >= 2 and got_shm else 1


if __name__ == "__main__":
    sys.exit(main())
