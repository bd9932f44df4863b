"""Inline SVG bar charts for the report's performance section (issue 19 "Report": IOPS and throughput per profile,
latency percentiles), so the HTML stays one self-contained file that prints.

Decisions:

* Plain SVG 1.1 text, built here (no plotting library: nothing to install at a customer's site, nothing random in
  the output, so two runs with the same figures give the same bytes).
* Self-contained: no ``href``, no ``url(…)``, no external font or style sheet, no ``id`` (several charts share one
  page); the font is the reader's ``sans-serif``. Every label goes through XML escaping, control characters dropped.
* Accessible and printable: ``<title>`` first (the chart's name; also what a screen reader says), ``role="img"``,
  a ``viewBox`` with ``max-width:100%`` so the chart scales to an A4 column, ``break-inside: avoid``; colours
  distinguishable in greyscale print, every bar labelled with its value (the chart never relies on colour alone).
* Category labels put ``中文`` and ``English`` (a label ``中文 / English``) on separate lines, wrapped to the
  category's width; the chart grows taller for them.
* A threshold per category is a dashed red line across that category's group (a floor or a ceiling, as the
  caller says in the legend text).
"""
from __future__ import annotations

import math
import re
from typing import Sequence
from xml.sax.saxutils import escape, quoteattr

WIDTH = 720
PALETTE = ("#2b5c8a", "#e08a2c", "#5a9e4b", "#8e5ba8", "#7f7f7f", "#b8860b")
THRESHOLD_COLOUR = "#c0392b"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 56, 64     # BOTTOM holds two label lines; more lines make the chart taller
LINE = 13
MAX_LABEL_LINES = 5


def _text(s: object) -> str:
    return escape(_CONTROL.sub("", str(s)))


def _attr(s: object) -> str:
    return quoteattr(_CONTROL.sub("", str(s)))


def compact(v: float | None) -> str:
    """A value label that fits above a bar: ``123k``, ``1.23M``, ``1,234``, ``12.3``, ``0.523``; ``-`` for None."""
    if v is None or not math.isfinite(v):
        return "-"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if a >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def nice_max(v: float) -> float:
    """The smallest 1 / 2 / 2.5 / 5 × 10^k at or above ``v`` (1 for nothing to show)."""
    if not v or v <= 0 or not math.isfinite(v):
        return 1.0
    base = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * base >= v * (1 - 1e-9):
            return m * base
    return 10 * base  # pragma: no cover


def _num(v: float | None) -> float | None:
    return None if v is None or not isinstance(v, (int, float)) or not math.isfinite(v) else max(float(v), 0.0)


def _px(text: str, size: float = 10) -> float:
    """The approximate width of ``text`` in px (CJK full width, the rest ~0.56 em)."""
    return sum(size if ord(ch) > 0x2e80 else size * 0.56 for ch in text)


def _wrap(text: str, max_px: float) -> list[str]:
    lines, cur = [], ""
    for token in re.findall(r"\s+|[\u2e80-\uffff]|[^\s\u2e80-\uffff]+", text):
        if cur.strip() and _px(cur + token) > max_px:
            lines.append(cur.rstrip())
            cur = token.lstrip()
        else:
            cur += token
    return lines + [cur.strip()] if cur.strip() else lines


def _label_lines(label: str, max_px: float) -> list[str]:
    """``中文 / English`` on separate lines, each wrapped to ``max_px``; at most MAX_LABEL_LINES (the rest ``…``)."""
    lines = [w for part in str(label).split(" / ", 1) for w in _wrap(part.strip(), max_px)] or [""]
    if len(lines) > MAX_LABEL_LINES:
        lines = lines[:MAX_LABEL_LINES - 1] + [lines[MAX_LABEL_LINES - 1] + "…"]
    return lines


def bar_chart(title: str, categories: Sequence[str], series: dict[str, Sequence[float | None]], unit: str,
              thresholds: Sequence[float | None] | None = None, *, threshold_label: str = "阈值 / threshold",
              height: int = 320) -> str:
    """Grouped bars: one group per category, one bar per series (legend: the series' names), value labels on
    every bar, ``unit`` on the axis; ``thresholds`` (one per category, None where none) as dashed lines. Returns an
    ``<svg>`` element as text. None / NaN values draw no bar and are labelled ``-``."""
    names = list(series)
    n = len(categories)
    for name in names:
        if len(series[name]) != n:
            raise ValueError(f"series {name!r} has {len(series[name])} values for {n} categories")
    marks = [_num(t) for t in thresholds] if thresholds is not None else [None] * n
    if len(marks) != n:
        raise ValueError(f"{len(marks)} thresholds for {n} categories")
    values = {name: [_num(v) for v in series[name]] for name in names}
    top = nice_max(max([v for vs in values.values() for v in vs if v is not None] +
                       [m for m in marks if m is not None] + [0.0]))
    labels = [_label_lines(_CONTROL.sub("", str(c)), (WIDTH - LEFT - RIGHT) / max(n, 1) - 6) for c in categories]
    extra = LINE * max([len(ls) - 2 for ls in labels] + [0])
    height += extra
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, TOP, height - BOTTOM - extra
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
           f'height="{height}" role="img" aria-label={_attr(title)} font-family="sans-serif" font-size="11" '
           f'style="max-width:100%;height:auto;break-inside:avoid;page-break-inside:avoid">',
           f"<title>{_text(title)}</title>",
           f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
           f'<text x="{WIDTH / 2:g}" y="20" text-anchor="middle" font-size="14" font-weight="bold">'
           f"{_text(title)}</text>"]
    if not n or not names:
        out.append(f'<text x="{WIDTH / 2:g}" y="{(y0 + y1) / 2:g}" text-anchor="middle" fill="#555555">'
                   "无数据 / no data</text></svg>")
        return "\n".join(out)

    def y(v: float) -> float:
        return y1 - (y1 - y0) * v / top

    out.append(f'<text x="{x0 - 8}" y="{y0 - 12}" text-anchor="end" fill="#333333">{_text(unit)}</text>')
    for i in range(5):
        tick = top * i / 4
        out.append(f'<line x1="{x0}" y1="{y(tick):.1f}" x2="{x1}" y2="{y(tick):.1f}" stroke="#dddddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" fill="#333333">{compact(tick)}</text>')
    group = (x1 - x0) / n
    bar = group * 0.8 / len(names)
    for c, category in enumerate(categories):
        gx = x0 + group * c + group * 0.1
        for s, name in enumerate(names):
            v = values[name][c]
            bx = gx + bar * s
            colour = PALETTE[s % len(PALETTE)]
            if v is not None:
                out.append(f'<rect x="{bx:.1f}" y="{y(v):.1f}" width="{max(bar - 2, 1):.1f}" '
                           f'height="{y1 - y(v):.1f}" fill="{colour}"><title>{_text(category)} · {_text(name)}: '
                           f"{compact(v)} {_text(unit)}</title></rect>")
            ly = (y(v) if v is not None else y1) - 4
            out.append(f'<text x="{bx + bar / 2 - 1:.1f}" y="{ly:.1f}" text-anchor="middle" font-size="10">'
                       f"{compact(v)}</text>")
        if marks[c] is not None:
            ty = y(marks[c])
            out.append(f'<line x1="{gx - group * 0.05:.1f}" y1="{ty:.1f}" x2="{gx + group * 0.85:.1f}" y2="{ty:.1f}" '
                       f'stroke="{THRESHOLD_COLOUR}" stroke-width="2" stroke-dasharray="6 3">'
                       f"<title>{_text(category)} · {_text(threshold_label)}: {compact(marks[c])} {_text(unit)}"
                       "</title></line>")
        cx = x0 + group * c + group / 2
        tspans = "".join(f'<tspan x="{cx:.1f}" dy="{0 if k == 0 else LINE}">{_text(t)}</tspan>'
                         for k, t in enumerate(labels[c]))
        out.append(f'<text x="{cx:.1f}" y="{y1 + 16}" text-anchor="middle" font-size="10">{tspans}</text>')
    out.append(f'<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke="#333333"/>')
    legend = [(name, PALETTE[s % len(PALETTE)], False) for s, name in enumerate(names)]
    if any(m is not None for m in marks):
        legend.append((threshold_label, THRESHOLD_COLOUR, True))
    lx = x0
    for name, colour, dashed in legend:
        if dashed:
            out.append(f'<line x1="{lx}" y1="{y0 - 24}" x2="{lx + 14}" y2="{y0 - 24}" stroke="{colour}" '
                       'stroke-width="2" stroke-dasharray="4 2"/>')
        else:
            out.append(f'<rect x="{lx}" y="{y0 - 30}" width="14" height="10" fill="{colour}"/>')
        out.append(f'<text x="{lx + 18}" y="{y0 - 21}" fill="#333333">{_text(name)}</text>')
        lx += 30 + _px(str(name), 11)
    out.append("</svg>")
    return "\n".join(out)


def latency_chart(title: str, categories: Sequence[str], mean: Sequence[float | None],
                  p99: Sequence[float | None], p999: Sequence[float | None], *, unit: str = "ms",
                  ceilings: Sequence[float | None] | None = None) -> str:
    """Mean / p99 / p99.9 latency grouped per profile; ``ceilings`` (e.g. the p99 ceiling) as dashed lines."""
    return bar_chart(title, categories, {"平均 / mean": mean, "p99": p99, "p99.9": p999}, unit, ceilings,
                     threshold_label="上限 / ceiling")
