#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The host end of a guest console for run-guest-virtio-test.sh.

console-peer.py SOCKET NBYTES SEED [--send]

Connects to SOCKET (a UNIX stream socket: ivlink's console-ID.sock or a
QEMU chardev server), waiting up to 60 s for it to appear.  Reads exactly
NBYTES (what the guest writes), then, with --send, writes NBYTES of a
stream derived from SEED.  Prints one line each:

  PEER-RX bytes=N sha256=HEX secs=S      (S: first byte to last byte)
  PEER-TX bytes=N sha256=HEX

then keeps reading and discarding until the other end closes or the
process is killed, so that a guest can go on writing.  Exit status 1 when
a step fails (the reason on stderr).
"""
import hashlib
import os
import random
import socket
import sys
import time


def connect(path, bound):
    end = time.monotonic() + bound
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    path, nbytes, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    send = "--send" in sys.argv[4:]
    s = connect(path, 60)
    s.settimeout(300)
    h = hashlib.sha256()
    got, t0 = 0, None
    while got < nbytes:
        b = s.recv(min(65536, nbytes - got))
        if not b:
            print("console-peer: EOF after %d bytes" % got, file=sys.stderr)
            return 1
        if t0 is None:
            t0 = time.monotonic()
        h.update(b)
        got += len(b)
    secs = time.monotonic() - t0 if t0 is not None else 0.0
    print("PEER-RX bytes=%d sha256=%s secs=%.3f" % (got, h.hexdigest(), secs), flush=True)
    if send:
        data = random.Random(seed).randbytes(nbytes)
        s.sendall(data)
        print("PEER-TX bytes=%d sha256=%s" % (nbytes, hashlib.sha256(data).hexdigest()),
              flush=True)
    s.settimeout(None)
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
