"""Small bar charts drawn by the server: the geometry of an SVG the template writes out.

One bar per time bucket, its series stacked; the SVG's coordinates are the
buckets (``SLOT`` units wide each) and percent of the chart's top, and it
stretches to its box (``preserveAspectRatio="none"``), so it fits a phone
as it fits a wide screen. Labels are HTML around it, never scaled text.
Pure: no Flask, no SQL; values come from ``timeseries``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ..timeseries import Window
from .formatting import Timestamp

#: Width of one bucket in the SVG's units; a bar leaves a fifth of it as a gap.
SLOT = 10.0
#: Height of the SVG in its units (bars are drawn in percent of it).
HEIGHT = 100.0


@dataclass(frozen=True)
class Series:
    """One kind of thing counted per bucket: a CSS class for its colour, what it is, its values."""

    css: str
    label: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class Chart:
    """What the template draws: bars in SVG units, the top of the scale, time marks and a summary."""

    key: str
    title: str
    width: float
    bars: tuple[Bar, ...]
    top: str
    marks: tuple[Timestamp, ...]  # times under it, evenly spaced from its first bucket to now
    legend: tuple[tuple[str, str], ...]  # (css, label)
    summary: str  # what a screen reader says of it
    empty: bool


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is >= ``value`` (> 0)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10 * power  # pragma: no cover - the loop ends at 10 * power


def bar_chart(
    key: str,
    title: str,
    window: Window,
    series: Sequence[Series],
    fmt: Callable[[float], str],
    summary: str,
) -> Chart:
    """Stack ``series`` per bucket of ``window``; ``fmt`` writes a value (the scale's top, the tooltips)."""
    totals = [sum(s.values[i] or 0.0 for s in series) for i in range(window.count)]
    top = nice_ceiling(max(totals, default=0.0))
    bars = []
    for index in range(window.count):
        floor = HEIGHT
        parts = [(s, s.values[index]) for s in series if s.values[index]]
        when = _moment_text(window, window.bucket_start(index))
        tooltip = f"{when}: " + ", ".join(f"{fmt(v or 0.0)} {s.label}" for s, v in parts)
        for part, value in parts:
            height = HEIGHT * (value or 0.0) / top
            floor -= height
            bars.append(Bar(index * SLOT + SLOT * 0.1, floor, SLOT * 0.8, height, part.css, tooltip))
    marks = tuple(_mark(window, window.bucket_start(index)) for index in _mark_indexes(window.count))
    return Chart(
        key,
        title,
        window.count * SLOT,
        tuple(bars),
        fmt(top),
        marks,
        tuple((s.css, s.label) for s in series),
        summary,
        not any(totals),
    )


def _mark_indexes(count: int) -> list[int]:
    """Buckets that get a time under the chart: the first, two between, and the one of now."""
    return sorted({0, count // 3, 2 * count // 3, count - 1})


def _mark(window: Window, moment: float) -> Timestamp:
    """A time under a chart, which the browser writes in local time (``data-fmt``)."""
    at = datetime.fromtimestamp(moment, tz=UTC)
    iso = at.isoformat(timespec="seconds").replace("+00:00", "Z")
    daily = window.width >= 3600
    text = at.strftime("%m-%d %H:%M" if daily else "%H:%M")
    return Timestamp(moment, iso, text, at.strftime("%Y-%m-%d %H:%M UTC"), "dhm" if daily else "hm")


def _moment_text(window: Window, moment: float) -> str:
    """A bucket's start in a tooltip (SVG titles are not localised: UTC, said so)."""
    return _mark(window, moment).full
