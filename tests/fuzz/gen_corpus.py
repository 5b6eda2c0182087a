#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora of tests/fuzz (run from anywhere; deterministic).

session inputs: byte 0 = (max_vectors - 1) | 0x80 for the socket path, then
chunks of [control byte][(c & 7) + 1 data bytes]; (c >> 3) & 3 selects
0, 1, 2 or 32 attached fds.  header inputs: the first bytes of a region.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SOCKET = 0x80
FD1, FD2, FD32 = 1 << 3, 2 << 3, 3 << 3


def msg(value, fds=0):
    return bytes([7 | fds]) + struct.pack('<q', value)


def split(value, fd_at=None, sizes=(1, 2, 1, 3, 1)):
    """One message in pieces, the fd (if any) on piece number fd_at."""
    raw = struct.pack('<q', value)
    out, pos, k = b'', 0, 0
    while pos < 8:
        n = min(sizes[k % len(sizes)], 8 - pos)
        out += bytes([(n - 1) | (FD1 if k == fd_at else 0)]) + raw[pos:pos + n]
        pos += n
        k += 1
    return out


def ext(op, arg):
    return ((0xC1F1 << 48) | (op << 32) | (arg & 0xffffffff)) - (1 << 64)


def qemu_handshake(me=3, peers=(1, 5), vectors=2):
    s = msg(0) + msg(me) + msg(-1, FD1)
    for p in peers:
        s += msg(p, FD1) * vectors
    s += msg(me, FD1) * vectors
    return s


def session_seeds():
    hs = qemu_handshake()
    later = msg(7, FD1) * 2 + msg(1) + msg(1, FD1) + msg(ext(1, 0x00030002))
    yield 'qemu_order', bytes([1]) + hs + later
    yield 'qemu_order_socket', bytes([1 | SOCKET]) + hs + later
    yield 'split_fd_middle', bytes([1]) + split(0) + split(3) + split(-1, fd_at=2) + \
        split(1, fd_at=4) + split(1, fd_at=0)
    yield 'passcred_socket', bytes([1 | SOCKET | 0x40]) + hs + split(9, fd_at=2)
    yield 'split_socket', bytes([0 | SOCKET]) + split(0) + split(3) + split(-1, fd_at=3) + \
        split(9, fd_at=1) + split(3, fd_at=5)
    yield 'bad_version', bytes([0]) + msg(1) + msg(0)
    yield 'id_out_of_range', bytes([0]) + msg(0) + msg(65536)
    yield 'second_shm', bytes([0]) + msg(0) + msg(2) + msg(-1, FD1) + msg(-1, FD1)
    yield 'unknown_leave', bytes([0]) + msg(0) + msg(2) + msg(-1, FD1) + msg(4)
    yield 'own_leave', bytes([0]) + msg(0) + msg(2) + msg(-1, FD1) + msg(2, FD1) + msg(2)
    yield 'extra_vectors', bytes([0]) + msg(0) + msg(2) + msg(-1, FD1) + msg(4, FD1) * 4 + \
        msg(2, FD1) * 3 + msg(4)
    yield 'rejoin', bytes([2]) + msg(0) + msg(0) + msg(-1, FD1) + \
        (msg(8, FD1) * 3 + msg(8)) * 3
    yield 'refused', bytes([0]) + msg(0) + msg(1) + msg(-1, FD1) + msg(ext(2, 13)) + msg(0)
    yield 'welcome_twice', bytes([63]) + msg(0) + msg(1) + msg(-1, FD1) + \
        msg(ext(1, 64)) + msg(ext(1, 64))
    yield 'ext_unknown', bytes([0]) + msg(0) + msg(1) + msg(-1, FD1) + msg(ext(7, 0))
    yield 'two_fds', bytes([0]) + msg(0, FD2) + msg(1)
    yield 'many_fds_socket', bytes([SOCKET]) + msg(0) + msg(1, FD32) + msg(2)
    yield 'eof_mid_message', bytes([SOCKET]) + msg(0) + bytes([2 | FD1]) + b'\x01\x00\x00'
    yield 'negative', bytes([0]) + msg(0) + msg(1) + msg(-1, FD1) + msg(-2)


PAGE = 4096


def header(region, max_peers, vectors=1, state=1, version=1, magic=0x31484b4e494c5649,
           hsize=None, table=128, entry=64, features=3, epoch=7):
    if hsize is None:
        hsize = (128 + max_peers * 64 + PAGE - 1) // PAGE * PAGE
    h = struct.pack('<QIIQQIIIIIIII', magic, version, hsize, region, epoch, max_peers,
                    vectors, table, entry, features, state, 1234, 0)
    return h + bytes(64)


def fmt_tail(max_peers, vectors, epoch=1):
    """16 trailing bytes that make the harness's format step succeed."""
    return struct.pack('<HBBHHQ', max_peers & 0xffff, max_peers >> 16, vectors, 3, 0, epoch)


def header_seeds():
    yield 'valid_8k', header(8192, 16, vectors=2)
    yield 'valid_full_page', header(8192, 62, vectors=64)
    big = header(16384, 100, vectors=4)
    yield 'valid_16k', big + bytes(8192 + 64 - len(big) - 16) + fmt_tail(100, 4)
    yield 'formatting', header(8192, 16, state=0)
    yield 'closed', header(8192, 16, state=2)
    yield 'bad_state', header(8192, 16, state=9)
    yield 'version2', header(8192, 16, version=2)
    yield 'raw_zero', bytes(256)
    yield 'wrong_region_size', header(16384, 16)
    yield 'overflow_peers', header(8192, 0x04000000, hsize=4096)
    yield 'table_past_header', header(8192, 62, table=192)
    yield 'misaligned_table', header(8192, 16, table=132)
    yield 'hsize_unaligned', header(8192, 16, hsize=4100)
    yield 'hsize_whole_region', header(8192, 16, hsize=8192)
    yield 'vectors_65', header(8192, 16, vectors=65)
    yield 'entry_32', header(8192, 16, entry=32)
    yield 'format_ok', bytes(32) + fmt_tail(4, 2)
    yield 'format_nospc', bytes(32) + fmt_tail(63, 1)
    yield 'tiny', b'IVLINKH1'


def step(op, pid=0, serial=1, reason=0, name=b'abcd'):
    """One step of fuzz_reader.c: a record from the separate reader."""
    return bytes([op, pid, serial, reason]) + name


HELLO, CONSUMED, EOF, DROP = 1, 2, 3, 4
VALID, CHAN = 0x08, 0x10


def reader_seeds():
    # Peers 0 and 1 have serials 1 and 2 in every input.
    yield 'hello_consumed', step(VALID | HELLO) + step(CONSUMED)
    yield 'hello_chan', step(CHAN | VALID | HELLO) + step(CHAN | CONSUMED)
    yield 'hello_twice', step(VALID | HELLO) + step(VALID | HELLO, 0, 1)
    yield 'eof_both', step(EOF) + step(CHAN | EOF, 1, 2)
    yield 'drop_reasons', step(DROP, 0, 1, 4) + step(DROP, 1, 2, 9)
    yield 'stale_after_eof', step(EOF) + step(EOF) + step(CHAN | VALID | HELLO)
    yield 'forged_serial', step(EOF, 0, 200) + step(CHAN | EOF, 1, 77)
    yield 'bad_lengths', step(1 << 5 | EOF) + step(CHAN | 6 << 5 | EOF) + step(CHAN | EOF, 1, 2)
    yield 'unknown_types', step(0) + step(5) + step(CHAN | 7) + step(CHAN | VALID | HELLO, 1, 2)


def main():
    for kind, seeds in (('session', session_seeds()), ('header', header_seeds()),
                        ('reader', reader_seeds())):
        d = os.path.join(HERE, 'corpus', kind)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds:
            with open(os.path.join(d, name), 'wb') as f:
                f.write(data)


if __name__ == '__main__':
    main()
