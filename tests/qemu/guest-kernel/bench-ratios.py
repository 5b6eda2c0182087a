#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Ratios from run-kernel-test.sh bench's lines on stdin (median of the
rounds of each way): the driver vs VFIO, mapped Doorbell vs ioctl/read."""
import re
import statistics
import sys

ways = {}
for line in sys.stdin:
    m = re.match(r"^KDRV-BENCH (\S+) n=[1-9]\d* ns_per_rt=(\d+)", line)
    if m:
        ways.setdefault(m.group(1), []).append(int(m.group(2)))
        continue
    m = re.match(r"^GUEST-BENCH access=(\S+) n=[1-9]\d* ns_per_rt=(\d+)", line)
    if m:
        ways.setdefault("link-" + m.group(1), []).append(int(m.group(2)))
med = {k: statistics.median(v) for k, v in ways.items() if v}
for k in sorted(med):
    print(f"BENCH-MEDIAN {k} {med[k] / 1000:.1f} us per round trip ({len(ways[k])} rounds)")


def ratio(a, b, what):
    """Median, min and max over rounds of a/b, each round's pair measured
    back to back in the same guest."""
    rs = [x / y for x, y in zip(ways.get(a, []), ways.get(b, [])) if y]
    if rs:
        print(f"BENCH-RATIO {what}: median {statistics.median(rs):.2f} "
              f"(min {min(rs):.2f}, max {max(rs):.2f}, {len(rs)} rounds)")


ratio("link-kernel", "link-vfio", "link API round trip, kernel driver / vfio-pci")
ratio("mmap-ring+eventfd", "ioctl-ring+eventfd", "driver round trip, mapped Doorbell / IVL_DRV_RING")
ratio("mmap-ring+read", "mmap-ring+eventfd", "driver round trip, read() / eventfd")
