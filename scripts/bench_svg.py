# SPDX-License-Identifier: MIT
"""Plain SVG bar charts for scripts/bench-report.py (no dependency beyond
Python's standard library).

hbar() draws one horizontal bar per row, optionally on a log scale, with an
optional reference line (a target); every bar carries its value as text, so
the chart reads without hovering or a legend.
"""
import math
from xml.sax.saxutils import escape

GREEN, RED, BLUE, GREY = "#2e7d32", "#c62828", "#1565c0", "#757575"


def _fmt(v):
    if v == 0:
        return "0"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.3g} M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:.3g} k"
    return f"{v:.3g}"


def hbar(title, rows, unit="", log=False, ref=None, ref_label=None, note=None):
    """rows: [(label, value or None, colour)].  ref: x of a vertical line.
    Returns the SVG document as a string."""
    # about 6.5 px per character of a 12 px sans-serif label
    label_w = 12 + int(6.5 * max([len(r[0]) for r in rows] + [20]))
    bar_w, row_h, top = 420, 22, 48
    vals = [v for _, v, _ in rows if v is not None and v > 0]
    if ref is not None:
        vals.append(ref)
    if not vals:
        vals = [1]
    hi = max(vals) * (1.15 if not log else 1.0)
    if log:
        lo = min(vals) / 2
        hi = hi * 2
        lo_l, hi_l = math.log10(lo), math.log10(hi)

        def x(v):
            v = max(v, lo)
            return label_w + bar_w * (math.log10(v) - lo_l) / (hi_l - lo_l)
    else:
        lo = 0

        def x(v):
            return label_w + bar_w * max(v, 0) / hi
    height = top + row_h * len(rows) + (40 if note else 24)
    width = label_w + bar_w + 110
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="8" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
           f'<text x="8" y="36" fill="{GREY}">{escape(unit)}'
           f'{" (log scale)" if log else ""}</text>']
    for i, (label, v, colour) in enumerate(rows):
        y = top + i * row_h
        out.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">'
                   f'{escape(label)}</text>')
        if v is None:
            out.append(f'<text x="{label_w + 4}" y="{y + 15}" fill="{GREY}">no data</text>')
            continue
        x1 = x(v)
        out.append(f'<rect x="{label_w}" y="{y + 3}" width="{max(x1 - label_w, 1):.1f}" '
                   f'height="{row_h - 6}" fill="{colour}"/>')
        out.append(f'<text x="{x1 + 4:.1f}" y="{y + 15}">{_fmt(v)}</text>')
    if ref is not None:
        xr = x(ref)
        y0, y1 = top - 4, top + row_h * len(rows) + 2
        out.append(f'<line x1="{xr:.1f}" y1="{y0}" x2="{xr:.1f}" y2="{y1}" stroke="black" '
                   'stroke-dasharray="4 3"/>')
        if ref_label:
            out.append(f'<text x="{xr + 3:.1f}" y="{y1 + 12}" font-size="11">'
                       f'{escape(ref_label)}</text>')
    if note:
        out.append(f'<text x="8" y="{height - 8}" fill="{GREY}" font-size="11">'
                   f'{escape(note)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def target_score(t):
    """How far a target is from its goal, as a factor where >= 1 is met:
    value / goal for "at least" goals, goal / value for "at most" ones.
    None when the goal is not a plain bound or there is no value."""
    g, v = t.get("goal", ""), t.get("value")
    if v is None:
        return None
    parts = g.replace("~0 (", "").replace(")", "").split()
    if len(parts) < 2:
        return None
    op, num = parts[:2]
    try:
        n = float(num)
    except ValueError:
        return None
    if op in (">=", ">"):
        return v / n if n else None
    if op == "<=":
        return n / v if v else 10.0
    return None
