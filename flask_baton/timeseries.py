"""Time ranges, their buckets, and percentiles from histograms: the overview's arithmetic.

The dashboard's overview shows a time range (the last hour, 6 hours, 24
hours or 7 days) as equal buckets. The database counts rows per bucket
(``store.stats``, grouping by the index ``bucket_of`` computes here) and per
duration class (``DURATION_EDGES``), so a read returns at most a few hundred
rows however long the history; this module turns those counts into per-minute
rates, ratios and percentiles. Pure: no SQL, no Flask, tested in microseconds.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: The ranges the overview and the index offer: key -> (span, bucket width), in seconds.
RANGES: dict[str, tuple[float, float]] = {
    "1h": (3600.0, 60.0),
    "6h": (6 * 3600.0, 300.0),
    "24h": (24 * 3600.0, 900.0),
    "7d": (7 * 86400.0, 7200.0),
}
#: The range the overview shows when the URL names none.
DEFAULT_RANGE = "24h"
#: Words for each range, as links and headings say them.
RANGE_LABELS = {"1h": "last hour", "6h": "last 6 hours", "24h": "last 24 hours", "7d": "last 7 days"}

#: Upper bounds of the duration classes: 1 ms to about a day, each 2^(1/4) (19 %) wider than the one
#: before. A duration ``d`` is in class ``bisect_right(DURATION_EDGES, d)``; the last class is open.
DURATION_EDGES: tuple[float, ...] = tuple(0.001 * 2 ** (k / 4) for k in range(107))


@dataclass(frozen=True)
class Window:
    """A time range cut into ``count`` buckets of ``width`` seconds from ``start``; the last holds ``now``.

    Buckets are aligned to multiples of ``width`` since the epoch, so a
    reload a few seconds later shows the same buckets, one of them fuller.
    """

    key: str
    start: float
    width: float
    count: int
    now: float

    @property
    def label(self) -> str:
        return RANGE_LABELS[self.key]

    def bucket_start(self, index: int) -> float:
        return self.start + index * self.width

    def minutes(self, index: int) -> float:
        """Minutes bucket ``index`` covers so far (the last one is cut at ``now``; one at least)."""
        end = min(self.bucket_start(index + 1), self.now)
        return max(end - self.bucket_start(index), 60.0) / 60.0


def window(key: str, now: float) -> Window:
    """The buckets of range ``key`` (one of ``RANGES``) ending with the one that holds ``now``."""
    span, width = RANGES[key]
    start = math.floor((now - span) / width) * width
    return Window(key, start, width, bucket_of(now, start, width) + 1, now)


def bucket_of(moment: float, start: float, width: float) -> int:
    """The index of the bucket ``moment`` falls in (what the SQL of ``store.stats`` computes too)."""
    return math.floor((moment - start) / width)


def dense(window: Window, counts: Mapping[int, float]) -> list[float]:
    """One value per bucket of ``window`` (0 where ``counts`` has none); indexes outside it dropped."""
    values = [0.0] * window.count
    for index, value in counts.items():
        if 0 <= index < window.count:
            values[index] += value
    return values


def per_minute(window: Window, counts: Sequence[float]) -> list[float]:
    """Counts per bucket as rates per minute of the time each bucket covers (so far, for the last)."""
    return [count / window.minutes(index) for index, count in enumerate(counts)]


def per_hour(window: Window, amounts: Sequence[float]) -> list[float]:
    """Amounts per bucket (cost) as rates per hour."""
    return [rate * 60.0 for rate in per_minute(window, amounts)]


def ratios(parts: Sequence[float], wholes: Sequence[float]) -> list[float | None]:
    """``part / whole`` per bucket; ``None`` where the whole is 0 (nothing to fail)."""
    return [part / whole if whole else None for part, whole in zip(parts, wholes, strict=True)]


def duration_class(seconds: float) -> int:
    """The class of ``DURATION_EDGES`` a duration falls in."""
    return bisect_right(DURATION_EDGES, seconds)


def percentile(histogram: Mapping[int, int], fraction: float, low: float, high: float) -> float:
    """The ``fraction`` percentile (0.5: the median) of durations counted per ``duration_class``.

    ``low`` and ``high``: the smallest and the largest duration counted, so
    a percentile is never outside them (one run: its duration, exactly).
    Nearest rank: the value ranked ``ceil(fraction * n)``, placed linearly
    within its class, so the error is under one class's width (19 %); the
    first and the last rank are ``low`` and ``high`` exactly (p95 of fewer
    than 20 runs is the slowest).
    """
    total = sum(histogram.values())
    if total <= 0:
        raise ValueError("no duration to take a percentile of")
    rank = min(max(math.ceil(fraction * total), 1), total)
    if rank in (1, total):
        return low if rank == 1 else high
    seen = 0
    for index in sorted(histogram):
        count = histogram[index]
        if count <= 0:
            continue
        if seen + count >= rank:
            floor = DURATION_EDGES[index - 1] if index > 0 else 0.0
            ceiling = DURATION_EDGES[index] if index < len(DURATION_EDGES) else high
            lower, upper = max(floor, low), min(ceiling, high)
            value = lower + (upper - lower) * (rank - seen - 0.5) / count
            return min(max(value, low), high)
        seen += count
    return high  # unreachable: the ranks add up to ``total``
