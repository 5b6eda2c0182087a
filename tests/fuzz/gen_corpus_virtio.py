#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora of fuzz_virtq, fuzz_mmio and fuzz_blk (deterministic).

virtq inputs: [log2 num + 10 * batch (0: pop / push one by one, 1..8: pop_many /
push_many), + 90 for IN_ORDER][flags: bit0 INDIRECT, bit1 EVENT_IDX, bits 2..
iov_max-1]
[start idx le16] then the window from offset 0 with the default layout
(descriptors, avail, used on the next 64-byte line).
mmio inputs: [mode: bit0 MSI, bit1 sharing] then 8-byte operations
[kind][offset le16][size][value le32]; kind 0/1 read, 2/3 write, 4 poke the
window, 5 serve a queue, 6 config change, 7 needs reset.
blk inputs: [flags: bit0 ro, bit1 FLUSH, bit2 DISCARD, bit3 WRITE_ZEROES,
bit4 ZERO_RANGE, bit5 failed] then requests [nout][nin] le16 lengths, then
the readable pieces' bytes.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
NEXT, WRITE, INDIRECT = 1, 2, 4


def layout(num):
    desc = 0
    avail = 16 * num
    used = (avail + 6 + 2 * num + 63) & ~63
    return desc, avail, used


def ring(lognum, flags, start, descs, heads, extra=(), avail_idx=None, batch=0, in_order=False):
    num = 1 << lognum
    desc, avail, used = layout(num)
    win = bytearray(8192)
    for i, (addr, ln, fl, nx) in enumerate(descs):
        struct.pack_into('<QIHH', win, desc + 16 * i, addr, ln, fl, nx)
    for k, h in enumerate(heads):
        struct.pack_into('<H', win, avail + 4 + 2 * ((start + k) % num), h)
    idx = (start + len(heads)) & 0xffff if avail_idx is None else avail_idx
    struct.pack_into('<H', win, avail + 2, idx)
    struct.pack_into('<H', win, used + 2, start)
    for off, data in extra:
        win[off:off + len(data)] = data
    mode = lognum + 10 * batch + (90 if in_order else 0)
    return bytes([mode, flags]) + struct.pack('<H', start) + bytes(win)


def table(entries):
    return b''.join(struct.pack('<QIHH', *e) for e in entries)


def virtq_seeds():
    yield 'one', ring(3, 0x3c, 0, [(4096, 64, 0, 0)], [0])
    yield 'chain', ring(3, 0x3c, 0, [(4096, 8, NEXT, 1), (4104, 8, NEXT, 2),
                                     (4112, 16, WRITE, 0)], [0])
    yield 'wrap', ring(2, 0x3e, 65534, [(4096, 8, 0, 0), (4104, 8, WRITE, 0),
                                        (4112, 8, 0, 0)], [0, 1, 2])
    yield 'indirect', ring(3, 0x3d, 0, [(2048, 48, INDIRECT, 0)], [0], extra=[
        (2048, table([(4096, 8, NEXT, 1), (4104, 8, NEXT, 2), (4112, 8, WRITE, 0)]))])
    yield 'ind_in_ind', ring(3, 0x3d, 0, [(2048, 32, INDIRECT, 0)], [0], extra=[
        (2048, table([(4096, 8, NEXT, 1), (2048, 16, INDIRECT, 0)]))])
    yield 'ind_last_next', ring(3, 0x3d, 0, [(2048, 32, INDIRECT, 0)], [0], extra=[
        (2048, table([(4096, 8, NEXT, 1), (4104, 8, NEXT, 0)]))])
    yield 'loop', ring(3, 0x3c, 0, [(4096, 8, NEXT, 1), (4104, 8, NEXT, 0)], [0])
    yield 'next_range', ring(3, 0x3c, 0, [(4096, 8, NEXT, 9)], [0])
    yield 'head_range', ring(3, 0x3c, 0, [(4096, 8, 0, 0)], [8])
    yield 'avail_jump', ring(3, 0x3c, 0, [(4096, 8, 0, 0)], [0], avail_idx=9)
    yield 'outside', ring(3, 0x3c, 0, [(65530, 64, 0, 0)], [0])
    yield 'wrap_addr', ring(3, 0x3c, 0, [(2**64 - 8, 64, 0, 0)], [0])
    yield 'read_after_write', ring(3, 0x3c, 0, [(4096, 8, WRITE | NEXT, 1),
                                                (4104, 8, 0, 0)], [0])
    yield 'iov_small', ring(3, 0x00, 0, [(4096, 8, NEXT, 1), (4104, 8, 0, 0)], [0])
    # the batch verbs: good chains, then a bad one in the same batch
    yield 'batch_wrap', ring(2, 0x3e, 65534, [(4096, 8, 0, 0), (4104, 8, WRITE, 0),
                                              (4112, 8, 0, 0)], [0, 1, 2], batch=2)
    yield 'batch_good_loop', ring(3, 0x3c, 0, [(4096, 8, NEXT, 0), (4096, 64, 0, 0),
                                               (4160, 32, WRITE, 0)], [1, 2, 0], batch=4)
    yield 'batch_good_range', ring(3, 0x3c, 0, [(4096, 8, 0, 0), (4104, 8, 0, 0)],
                                   [0, 1, 8], batch=8)
    yield 'batch_good_enobufs', ring(3, 0x04, 0, [(4096, 8, NEXT, 1), (4104, 8, NEXT, 2),
                                                  (4112, 8, 0, 0), (4120, 8, 0, 0)],
                                     [3, 3, 0], batch=3)
    yield 'used_back', ring(3, 0x3c, 0, [(4096, 8, 0, 0)], [0],
                            extra=[(192, struct.pack('<HHII', 0, 1, 0, 8))])
    # IN_ORDER: a chain in table order wrapping the end (7 -> 0), a batch,
    # and used entries for the driver (one element for a batch of two)
    yield 'in_order_wrap', ring(3, 0x3c, 65535, [(4096, 8, WRITE, 0)] +
                                [(4104, 8, 0, 0)] * 6 + [(4112, 8, NEXT, 0)],
                                [7], in_order=True)
    yield 'in_order_batch', ring(3, 0x3c, 0, [(4096, 8, 0, 0), (4104, 8, NEXT, 2),
                                              (4112, 8, WRITE, 0)], [0, 1], batch=2,
                                 in_order=True)
    yield 'in_order_used', ring(3, 0x3c, 0, [(4096, 8, 0, 0)], [0],
                                extra=[(192, struct.pack('<HHII', 0, 2, 1, 8))], in_order=True)


def op(kind, off, value=0, size=4):
    return struct.pack('<BHBI', kind, off, size, value & 0xffffffff)


def wr(off, v, size=4):
    return op(2, off, v, size)


def rd(off, size=4):
    return op(0, off, 0, size)


def init(features_hi=1, features_lo=(1 << 28) | (1 << 29)):
    s = wr(0x70, 0) + wr(0x70, 1) + wr(0x70, 3)
    s += wr(0x14, 0) + rd(0x10) + wr(0x14, 1) + rd(0x10)
    s += wr(0x24, 0) + wr(0x20, features_lo) + wr(0x24, 1) + wr(0x20, features_hi)
    s += wr(0x70, 11) + rd(0x70)
    # queue 0: 8 entries, desc at 0x10000 (window offset 0), avail 0x10080,
    # used 0x100c0
    s += wr(0x30, 0) + rd(0x34) + wr(0x38, 8) + wr(0x80, 0x10000) + wr(0x84, 0)
    s += wr(0x90, 0x10080) + wr(0x94, 0) + wr(0xa0, 0x100c0) + wr(0xa4, 0) + wr(0x44, 1)
    s += wr(0x70, 15)
    return s


def msi_setup(n):
    s = b''
    for v in range(n):
        s += wr(0xd0, v) + wr(0xd4, 100 + v) + wr(0xd8, 0) + wr(0xdc, v) + wr(0xc8, 3)
    return s + wr(0xc8, 1)


def buffer():
    # one descriptor, avail ring entry 0, avail idx 1
    return op(4, 0, 0x1000) + op(4, 8, 64) + op(4, 0x84, 0) + op(4, 0x80, 1 << 16)


def mmio_seeds():
    yield 'init_intx', bytes([0]) + init() + buffer() + op(2, 0x50, 0) + op(5, 0) + \
        rd(0x60) + wr(0x64, 1) + op(6, 0) + rd(0x60) + rd(0xfc)
    yield 'msi_fixed', bytes([1]) + init() + msi_setup(3) + rd(0xc4) + buffer() + \
        op(5, 0) + wr(0xd0, 1) + wr(0xc8, 4) + op(6, 0) + wr(0xc8, 5) + wr(0xc8, 7)
    yield 'msi_shared', bytes([3]) + init() + msi_setup(2) + wr(0xd0, 1) + \
        wr(0xc8, 6) + wr(0x30, 0) + wr(0xc8, 7) + buffer() + op(5, 0) + \
        wr(0xd0, 0xffffffff) + wr(0xc8, 6) + op(6, 0) + wr(0x70, 0) + rd(0xc4)
    # seed 004: NO_VECTOR unmaps in non-sharing mode too, the fixed vector
    # maps back, any other vector is ignored
    yield 'msi_fixed_unmap', bytes([1]) + init() + msi_setup(3) + wr(0x30, 0) + \
        wr(0xd0, 0xffffffff) + wr(0xc8, 7) + wr(0xc8, 6) + buffer() + op(5, 0) + \
        wr(0xd0, 1) + wr(0xc8, 7) + wr(0xd0, 2) + wr(0xc8, 7) + wr(0xd0, 0) + \
        wr(0xc8, 6) + op(6, 0) + wr(0x70, 0) + rd(0xc4)
    yield 'config', bytes([0]) + op(0, 0x100, 0, 1) + op(0, 0x102, 0, 2) + \
        wr(0x104, 0xdeadbeef) + op(0, 0x116, 0, 4) + op(0, 0x100, 0, 8)
    yield 'bad_sizes', bytes([1]) + rd(0, 2) + rd(1) + rd(0x1ff, 4) + wr(0, 1) + \
        wr(0x70, 1, 1) + wr(0xc8, 99) + op(7, 0)
    yield 'hostile_queue', bytes([1]) + init() + op(4, 0, 0xfff0) + op(4, 12, 1) + \
        op(4, 14, 0) + op(4, 0x80, 1 << 16) + op(5, 0) + rd(0x70)


def breq(typ, sector, out=b'', inl=(), hdr_split=False, status=True):
    """One blk request: header (optionally in two pieces), readable data,
    writable pieces of lengths inl, and a status byte."""
    hdr = struct.pack('<IIQ', typ, 0, sector)
    outs = [hdr[:8], hdr[8:]] if hdr_split else [hdr]
    if out:
        outs.append(out)
    ins = list(inl) + ([1] if status else [])
    b = bytes([len(outs), len(ins)])
    b += b''.join(struct.pack('<H', len(p)) for p in outs)
    b += b''.join(struct.pack('<H', n) for n in ins)
    return b + b''.join(outs)


def seg(sector, num, flags=0):
    return struct.pack('<QII', sector, num, flags)


def blk_seeds():
    all_f = 2 | 4 | 8 | 16
    yield 'write_read', bytes([all_f]) + breq(1, 3, bytes(range(256)) * 4) + breq(0, 3, inl=[512, 512])
    yield 'split', bytes([all_f]) + breq(0, 0, inl=[100, 412, 512], hdr_split=True)
    yield 'flush_id', bytes([all_f]) + breq(4, 0) + breq(8, 0, inl=[20]) + breq(99, 0)
    yield 'range', bytes([all_f]) + breq(0, 127, inl=[1024]) + breq(1, 1 << 62, b'x' * 512) + \
        breq(1, (1 << 64) - 1, b'y' * 512)
    yield 'discard', bytes([all_f]) + breq(11, 0, seg(2, 4) + seg(100, 8)) + \
        breq(13, 0, seg(10, 2, 1)) + breq(13, 0, seg(20, 2)) + breq(11, 0, seg(126, 4))
    yield 'ro', bytes([1 | 2]) + breq(1, 0, b'z' * 512) + breq(11, 0, seg(0, 1)) + breq(0, 0, inl=[512])
    yield 'malformed', bytes([all_f | 32]) + breq(1, 0, b'q' * 100) + breq(0, 0, b'r' * 512, inl=[512]) + \
        breq(0, 0, status=False) + bytes([1, 1, 8, 0, 1, 0]) + b'\0' * 8


def rec(kind, payload):
    return bytes([kind]) + struct.pack('<H', len(payload)) + payload


def net_frame(dst, src, payload, flags=0, gso=0):
    hdr = bytes([flags, gso]) + bytes(10)
    return hdr + dst + src + b'\x88\xb5' + payload


def net_seeds():
    """fuzz_net.c: A transmits, B (MRG_RXBUF) and C post buffers, serve."""
    bc = b'\xff' * 6
    a = bytes([2, 0x69, 0x76, 0, 0, 1])
    b = bytes([2, 0x69, 0x76, 0, 0, 2])
    good = net_frame(bc, a, bytes(range(46)))
    big = net_frame(b, a, bytes(1400))
    yield 'broadcast', rec(1, bytes([255] * 8)) + rec(2, bytes([255] * 8)) + \
        rec(0, bytes([20, 40]) + good) + rec(3, b'')
    yield 'mergeable', rec(1, bytes([20] * 40)) + rec(2, bytes([200] * 4)) + \
        rec(0, bytes([0, 0]) + big) + rec(0, bytes([5, 9]) + good) + rec(3, b'')
    yield 'hostile', rec(1, bytes([255] * 8)) + \
        rec(0, bytes([0, 0]) + net_frame(bc, a, bytes(46), flags=1)) + \
        rec(0, bytes([0, 0]) + net_frame(bc, a, bytes(46), gso=1)) + \
        rec(0, bytes([0, 0]) + good[:20]) + \
        rec(4, bytes([0, 0]) + good) + \
        rec(0, bytes([0, 0]) + net_frame(bc, bytes([3]) + a[1:], bytes(46))) + \
        rec(0, bytes([0, 0]) + net_frame(bc, a, bytes(1600))) + rec(3, b'')
    yield 'stalled', b''.join(rec(0, bytes([1, 2]) + net_frame(bc, a, bytes([i]) * 46))
                              for i in range(200)) + rec(1, bytes([255] * 64)) + rec(3, b'')


def vsdm_rec(length, typ, slave, p0, p1, frm=0):
    return struct.pack('<I4iI', length, typ, slave, p0, p1, frm)


def vsdm_seeds():
    """virtio_sdm's view of its device: flags (bit 0 master), then
    (le32 used length, 20-byte buffer) records."""
    yield 'master', bytes([1]) + vsdm_rec(20, 0, 0, 7, 8, 3) + vsdm_rec(16, 1, 0, 0, 0) + \
        vsdm_rec(20, 2, 0, -1, 1, 1024) + vsdm_rec(4, 2, 0, 0, 0) + vsdm_rec(20, 0, 0, 0, 0, 1025) + \
        vsdm_rec(20, 3, 0, 0, 0, 1) + vsdm_rec(24, 0, 0, 0, 0, 1)
    yield 'slave', bytes([0]) + vsdm_rec(20, 1, 5, 1, 2, 0) + vsdm_rec(16, 0, 1024, 0, 0) + \
        vsdm_rec(20, 0, 5, 0, 0, 2) + vsdm_rec(16, 0, 0, 0, 0) + vsdm_rec(0, -4095, 0, 0, 0) + \
        vsdm_rec(3, 1, 0, 0, 0) + vsdm_rec(20, -4096, 1, 0, 0)


def kv_header(max_peers=16, hsize=4096, region=16 << 20, mapped=None, area=0, state=1, vectors=8,
              magic=0x31484b4e494c5649, version=1, ptoff=128, esize=64):
    h = struct.pack('<QIIQQIIIIIIII', magic, version, hsize, region, 7, max_peers, vectors, ptoff, esize,
                    0, state, 1, 0) + bytes(64)
    return bytes([0]) + h + struct.pack('<IQQ', state, region if mapped is None else mapped, area)


def kv_answer(length, data, mx=64, mgmt=16 << 20):
    return bytes([1]) + struct.pack('<IBQ', length, mx, mgmt) + data


def kv_info(dev_id, off, size, nq=2, backend=b'pty:/dev/pts/3'):
    return struct.pack('<QIIQQHHIH6x64s', dev_id, 3, 15, off, size, nq, 3, 0, 1, backend)


def kvirtio_seeds():
    """virtio_ivlink's parsers: [0] header + state + mapped size + area,
    [1] used length, max IDs, area size, then the answer half,
    [2] a create line."""
    yield 'hdr_ok', kv_header()
    yield 'hdr_area', kv_header(area=1 << 20)
    yield 'hdr_area_last', kv_header(area=(16 << 20) - 4096 - 2 * 65536)
    yield 'hdr_area_far', kv_header(area=(16 << 20) - 4096 - 65536)
    yield 'hdr_area_odd', kv_header(area=4)
    yield 'hdr_max', kv_header(max_peers=65536, hsize=65536 * 64 + 4096, region=8 << 20)
    yield 'hdr_short', kv_header(max_peers=64, hsize=4096)
    yield 'hdr_bigger_bar', kv_header(region=8 << 20, mapped=16 << 20)
    yield 'hdr_formatting', kv_header(state=0)
    yield 'list', kv_answer(4 + 8 + 3 * 16, struct.pack('<III', 0, 3, 0) +
                            b''.join(struct.pack('<QII', i, 3, 15) for i in (1, 5, 9)))
    yield 'list_max1', kv_answer(4 + 8 + 2 * 16, struct.pack('<III', 0, 2, 0) +
                                 b''.join(struct.pack('<QII', i, 3, 15) for i in (7, 8)), mx=1)
    yield 'list_short', kv_answer(4 + 8 + 2 * 16, struct.pack('<III', 0, 70, 0) +
                                  b''.join(struct.pack('<QII', i, 3, 15) for i in (1, 5)), mx=1)
    yield 'info', kv_answer(4 + 112, struct.pack('<I', 0) + kv_info(4, 65536, 262144))
    yield 'info_end', kv_answer(4 + 112, struct.pack('<I', 0) + kv_info(4, (16 << 20) - 65536, 65536))
    yield 'err', kv_answer(8, struct.pack('<II', 1, 11))
    yield 'err_long', kv_answer(12, struct.pack('<III', 1, 11, 0))
    yield 'ok_full', kv_answer(4096, struct.pack('<I', 0) + bytes(4092))
    yield 'too_long', kv_answer(4097, struct.pack('<I', 0))
    for i, line in enumerate((b'console unix\n', b'rng', b'sdm master 8\n', b'sdm slave +3', b'blk disk 1\n',
                              b'net  switch:sw0\t9000', b'net tap:ivltap0 4294967296', b'console pty x',
                              b'blk', b' rng', b'console loop 1 2 3', b'rng 1 2 3\n', b'sdm\0master')):
        yield 'create%02d' % i, bytes([2]) + line


def main():
    for name, gen in (('virtq', virtq_seeds), ('mmio', mmio_seeds), ('blk', blk_seeds), ('net', net_seeds),
                      ('vsdm', vsdm_seeds), ('kvirtio', kvirtio_seeds)):
        d = os.path.join(HERE, 'corpus', name)
        os.makedirs(d, exist_ok=True)
        for fname, data in gen():
            with open(os.path.join(d, fname), 'wb') as f:
                f.write(data)


if __name__ == '__main__':
    main()
