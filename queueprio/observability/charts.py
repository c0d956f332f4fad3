"""Server-side SVG charts for the admin dashboard: pure functions from numbers to markup.

No JavaScript, no CDN: the page works offline and inside any content security policy.
Every label goes through ``format_html``, so a task or band name can't inject markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

#: The admin's own blue, then colours that stay apart for the colour-blind.
PALETTE = ("#417690", "#e69f00", "#009e73", "#cc79a7", "#56b4e9")
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 52, 12, 30, 30

Series = tuple[str, Sequence[float | None]]


def axis_scale(value: float, *, max_ticks: int = 5, integer: bool = False) -> tuple[float, int]:
    """A round top for the y axis and how many steps to it: steps of 1, 2, 2.5 or 5 × 10ⁿ.

    The step is the smallest round one that reaches ``value`` in at most ``max_ticks``
    steps, so 22 reads as 0…25 in steps of 5 and 286 as 0…300 in steps of 100.
    ``integer=True`` (counts of jobs) keeps every tick a whole number: steps of at least 1
    and never 2.5, so 2 reads as 0…2 in steps of 1, not 0…2 in steps of 0.5.
    """
    if value <= 0 or not math.isfinite(value):
        return (1.0, 1) if integer else (1.0, max_ticks)
    raw = value / max_ticks
    if integer:
        raw = max(raw, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    multiples = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(m * magnitude for m in multiples if m * magnitude >= raw * (1 - 1e-9))
    ticks = max(1, math.ceil(value / step - 1e-9))
    return step * ticks, ticks


def format_number(value: float | None, unit: str = "") -> str:
    """Short tick and value labels: ``950``, ``1.2k``, ``0.25``, ``3.5M``; ``–`` for no value."""
    if value is None:
        return "–"
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}{unit}"
    text = f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"
    return text + unit


def _frame(title: str, width: int, height: int, body: str) -> SafeString:
    return format_html(
        '<svg class="qp-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        'role="img" aria-label="{t}" font-family="sans-serif" font-size="11">'
        '<title>{t}</title><text x="{tx}" y="16" font-size="13" font-weight="bold" fill="#333">{t}</text>{b}</svg>',
        w=width,
        h=height,
        t=title,
        tx=MARGIN_LEFT,
        b=mark_safe(body),  # noqa: S308  (assembled from format_html pieces only)
    )


def _axis(top: float, ticks: int, unit: str, width: int, height: int) -> str:
    """Horizontal grid lines with their values, from 0 to ``top``."""
    plot_h = height - MARGIN_TOP - MARGIN_BOTTOM
    lines = [f"{MARGIN_TOP + plot_h * (1 - i / ticks):.1f}" for i in range(ticks + 1)]
    grid = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/>',
        ((MARGIN_LEFT, y, width - MARGIN_RIGHT, y) for y in lines),
    )
    values = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="end" fill="#666">{}</text>',
        ((MARGIN_LEFT - 4, f"{float(y) + 4:.1f}", format_number(top * i / ticks, unit)) for i, y in enumerate(lines)),
    )
    return grid + values


def _legend(series: Sequence[Series], width: int) -> str:
    if len(series) < 2:
        return ""
    left = width - MARGIN_RIGHT - 90 * len(series)
    items = [(left + 90 * i, PALETTE[i % len(PALETTE)], left + 90 * i + 14, name) for i, (name, _) in enumerate(series)]
    return format_html_join(
        "", '<rect x="{}" y="8" width="10" height="10" fill="{}"/><text x="{}" y="17" fill="#333">{}</text>', items
    )


def _empty(title: str, width: int, height: int) -> SafeString:
    body = format_html('<text x="{}" y="{}" text-anchor="middle" fill="#999">no data</text>', width / 2, height / 2)
    return _frame(title, width, height, body)


def grouped_bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    unit: str = "",
    width: int = 520,
    height: int = 220,
    integer: bool = False,
) -> SafeString:
    """Bars for each label, one per series side by side; a ``None`` value leaves a gap.

    ``integer=True`` for counts: whole-number ticks (see :func:`axis_scale`)."""
    values = [v for _, vs in series for v in vs if v is not None]
    if not labels or not values:
        return _empty(title, width, height)
    top, ticks = axis_scale(max(values), integer=integer)
    plot_w, plot_h = width - MARGIN_LEFT - MARGIN_RIGHT, height - MARGIN_TOP - MARGIN_BOTTOM
    group_w = plot_w / len(labels)
    bar_w = group_w * 0.8 / len(series)
    bars, texts = [], []
    for g, label in enumerate(labels):
        x0 = MARGIN_LEFT + g * group_w + group_w * 0.1
        texts.append((f"{x0 + group_w * 0.4:.1f}", f"{height - MARGIN_BOTTOM + 14}", label))
        for s, (name, vs) in enumerate(series):
            value = vs[g] if g < len(vs) else None
            if value is None:
                continue
            h = plot_h * value / top
            x, y = x0 + s * bar_w, MARGIN_TOP + plot_h - h
            tip = f"{label}{' ' + name if name else ''}: {format_number(value, unit)}"
            bars.append((f"{x:.1f}", f"{y:.1f}", f"{bar_w * 0.92:.1f}", f"{h:.1f}", PALETTE[s % len(PALETTE)], tip))
            if len(series) == 1:  # one series: the value fits above its bar
                texts.append((f"{x + bar_w * 0.46:.1f}", f"{y - 3:.1f}", format_number(value, unit)))
    body = (
        _axis(top, ticks, unit, width, height)
        + format_html_join(
            "", '<rect class="qp-bar" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>', bars
        )
        + format_html_join("", '<text x="{}" y="{}" text-anchor="middle" fill="#333">{}</text>', texts)
        + _legend(series, width)
    )
    return _frame(title, width, height, body)


def bar_chart(
    values: Sequence[tuple[str, float | None]],
    *,
    title: str,
    unit: str = "",
    width: int = 520,
    height: int = 220,
    integer: bool = False,
) -> SafeString:
    """One bar per ``(label, value)``."""
    return grouped_bar_chart(
        [label for label, _ in values],
        [("", [v for _, v in values])],
        title=title,
        unit=unit,
        width=width,
        height=height,
        integer=integer,
    )


def line_chart(
    points: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str = "",
    width: int = 520,
    height: int = 220,
    integer: bool = False,
) -> SafeString:
    """A line through ``(label, value)`` points, evenly spaced; first, middle and last labelled."""
    return lines_chart(
        [label for label, _ in points],
        [("", [v for _, v in points])],
        title=title,
        unit=unit,
        width=width,
        height=height,
        integer=integer,
    )


def lines_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    unit: str = "",
    width: int = 520,
    height: int = 220,
    integer: bool = False,
) -> SafeString:
    """One line per series over the same evenly spaced ``labels``; first, middle and last labelled.

    A ``None`` value breaks the line there (no sample)."""
    values = [v for _, vs in series for v in vs if v is not None]
    if not labels or not values:
        return _empty(title, width, height)
    top, ticks = axis_scale(max(values), integer=integer)
    plot_w, plot_h = width - MARGIN_LEFT - MARGIN_RIGHT, height - MARGIN_TOP - MARGIN_BOTTOM
    step = plot_w / max(len(labels) - 1, 1)
    lines = []
    for s, (_, vs) in enumerate(series):
        runs: list[list[str]] = [[]]
        for i, value in enumerate(vs[: len(labels)]):
            if value is None:
                runs.append([])
                continue
            runs[-1].append(f"{MARGIN_LEFT + i * step:.1f},{MARGIN_TOP + plot_h * (1 - value / top):.1f}")
        lines += [(PALETTE[s % len(PALETTE)], " ".join(run)) for run in runs if run]
    shown = sorted({0, len(labels) // 2, len(labels) - 1})
    anchors = {0: "start", len(labels) - 1: "end"}
    texts = [
        (f"{MARGIN_LEFT + i * step:.1f}", height - MARGIN_BOTTOM + 14, anchors.get(i, "middle"), labels[i])
        for i in shown
    ]
    body = (
        _axis(top, ticks, unit, width, height)
        + format_html_join(
            "", '<polyline class="qp-line" fill="none" stroke="{}" stroke-width="2" points="{}"/>', lines
        )
        + format_html_join("", '<text x="{}" y="{}" text-anchor="{}" fill="#333">{}</text>', texts)
        + _legend(series, width)
    )
    return _frame(title, width, height, body)
