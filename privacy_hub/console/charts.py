"""Bar charts drawn on the server as inline SVG: no script, no inline style, the same
markup for the same numbers.

Colours come from classes (hub.css: the brand colour and a palette with AA contrast on
white); every series after the first also has its own pattern, so colour is never the only
cue. The chart is an image with a summary (``role="img"`` and a ``<title>``); the page
shows the same numbers as a table for anyone who reads rather than looks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 640
HEIGHT = 280
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 40, 44
#: one more pattern than a chart here needs (consents: three series; failures: two)
PATTERNS = ("solid", "stripes", "dots", "cross")


@dataclass(frozen=True)
class Series:
    """One named row of values, one value per category."""

    name: str
    values: Sequence[float]


def _fmt(value: float) -> str:
    """SVG coordinates with at most one decimal: stable, short markup."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def nice_ticks(maximum: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``maximum`` (1, 2 or 5 times a power of ten)."""
    if maximum <= 0:
        return [0.0, 1.0]
    raw = maximum / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if maximum >= 1:
        step = max(step, 1.0)  # counts: no half ticks
    top = math.ceil(maximum / step - 1e-9) * step
    return [round(i * step, 6) for i in range(round(top / step) + 1)]


def _defs(chart_id: str, n: int) -> str:
    """One pattern per series beyond the first: the series colour under white marks."""
    marks = {
        "stripes": '<path d="M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4" stroke="#fff" stroke-width="1.6"/>',
        "dots": '<circle cx="4" cy="4" r="1.6" fill="#fff"/>',
        "cross": '<path d="M0,4 h8 M4,0 v8" stroke="#fff" stroke-width="1.4"/>',
    }
    out = []
    for i in range(1, n):
        kind = PATTERNS[i % len(PATTERNS)]
        out.append(f'<pattern id="{chart_id}-p{i}" width="8" height="8" '
                   f'patternUnits="userSpaceOnUse"><rect class="s{i}" width="8" height="8"/>'
                   f'{marks[kind]}</pattern>')
    return f"<defs>{''.join(out)}</defs>" if out else ""


def _fill(chart_id: str, i: int) -> str:
    # A class would win over the fill attribute: patterned bars take their colour from
    # the pattern's own rect.
    return 'class="bar s0"' if i == 0 else f'class="bar p{i}" fill="url(#{chart_id}-p{i})"'


def _label(text: str, x: float, room: float) -> str:
    """A category label under its bar; on two lines when it is wider than its room."""
    words = text.split()
    if len(text) * 7.5 <= room - 4 or len(words) < 2:
        lines = [text]
    else:  # split where the two lines are most even
        cut = min(range(1, len(words)),
                  key=lambda k: abs(len(" ".join(words[:k])) - len(" ".join(words[k:]))))
        lines = [" ".join(words[:cut]), " ".join(words[cut:])]
    spans = "".join(f'<tspan x="{_fmt(x)}" dy="{0 if n == 0 else 15}">{escape(line)}</tspan>'
                    for n, line in enumerate(lines))
    return (f'<text class="label" x="{_fmt(x)}" y="{HEIGHT - BOTTOM + 18}" '
            f'text-anchor="middle">{spans}</text>')


def bar_chart(categories: Sequence[str], series: Sequence[Series], *, chart_id: str,
              summary: str, empty_text: str, stacked: bool = True,
              number: Callable[[float], str] = lambda v: _fmt(v)) -> Markup:
    """A vertical bar chart: one bar per category, or per category a stack (``stacked``)
    or group of bars, one per series; axes, ticks, category labels, a legend for more than
    one series, values over single bars. With nothing but zeros it says ``empty_text``.

    ``chart_id`` must be unique on the page (it names the patterns); ``summary`` is the
    chart's accessible name; ``number`` formats values for people (the page's locale).
    """
    cid = escape(chart_id)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} '
            f'{HEIGHT}" role="img" aria-labelledby="{cid}-title">'
            f'<title id="{cid}-title">{escape(summary)}</title>')
    totals = [sum(s.values[i] for s in series) if stacked else
              max((s.values[i] for s in series), default=0) for i in range(len(categories))]
    if not categories or not series or max(totals, default=0) <= 0:
        return Markup(  # noqa: S704  every text in it went through escape()
            f'{head}<rect class="chart-empty" x="1" y="1" width="{WIDTH - 2}" '
            f'height="{HEIGHT - 2}" rx="6"/><text class="chart-note" x="{WIDTH // 2}" '
            f'y="{HEIGHT // 2}" text-anchor="middle">{escape(empty_text)}</text></svg>')

    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    ticks = nice_ticks(max(totals))
    top = ticks[-1]

    def y(value: float) -> float:
        return TOP + plot_h - value / top * plot_h

    parts = [head, _defs(str(cid), len(series))]
    # y axis: gridlines and tick labels
    for t in ticks:
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_fmt(y(t))}" '
                     f'y2="{_fmt(y(t))}"/><text class="tick" x="{LEFT - 6}" '
                     f'y="{_fmt(y(t) + 4)}" text-anchor="end">{escape(number(t))}</text>')
    slot = plot_w / len(categories)
    bar_w = min(56.0, slot * 0.7)
    # at most about 12 category labels fit; label every n-th one when more
    every = max(1, math.ceil(len(categories) / 12))
    single = len(series) == 1
    for i, category in enumerate(categories):
        x0 = LEFT + slot * i + (slot - bar_w) / 2
        base = 0.0
        for j, s in enumerate(series):
            value = s.values[i]
            if stacked or single:
                x, w, bottom = x0, bar_w, base
                base += value
            else:
                w = bar_w / len(series)
                x, bottom = x0 + j * w, 0.0
            if value > 0:
                h = value / top * plot_h
                parts.append(f'<rect {_fill(str(cid), j)} x="{_fmt(x)}" '
                             f'y="{_fmt(y(bottom) - h)}" width="{_fmt(w)}" height="{_fmt(h)}">'
                             f'<title>{escape(category)}: {escape(s.name)} '
                             f'{escape(number(value))}</title></rect>')
        if single and series[0].values[i] > 0:
            parts.append(f'<text class="value" x="{_fmt(x0 + bar_w / 2)}" '
                         f'y="{_fmt(y(series[0].values[i]) - 5)}" text-anchor="middle">'
                         f'{escape(number(series[0].values[i]))}</text>')
        if i % every == 0:
            parts.append(_label(category, x0 + bar_w / 2, slot * every))
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_fmt(y(0))}" '
                 f'y2="{_fmt(y(0))}"/>')
    if not single:
        x = LEFT
        for j, s in enumerate(series):
            parts.append(f'<rect {_fill(str(cid), j)} x="{x}" y="12" width="14" height="14"/>'
                         f'<text class="legend" x="{x + 20}" y="24">{escape(s.name)}</text>')
            x += 36 + 8 * len(s.name)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  every text in it went through escape()
