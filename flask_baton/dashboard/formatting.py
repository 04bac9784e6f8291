"""How the dashboard writes values: durations, costs, counts, times, previews, bars.

Every number, time and text a page or a live fragment shows is formatted here,
in plain Python, so the two always agree and the formatting is tested without a
browser. The view models (``step_view``, ``graph_view``, ``workflow_view``,
``index_view``) only pick values from records and pass them through these.
Nothing here touches Flask or the records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..states import StepState

#: Characters of a result or an error shown in the table.
PREVIEW_CHARS = 96


#: Order of the segments of progress bars (settled first, then in flight).
STATE_ORDER = (
    StepState.COMPLETED,
    StepState.DISCARDED,
    StepState.CANCELLED,
    StepState.EXECUTING,
    StepState.RETRYABLE,
    StepState.WAITING,
    StepState.SNOOZED,
    StepState.AVAILABLE,
    StepState.PENDING,
)


def format_duration(seconds: float | None) -> str:
    """``850 ms``, ``4.2 s``, ``3 m 12 s``, ``2 h 05 m``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} m"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def format_cost(usd: float | None) -> str:
    """US dollars with enough decimals to see small LLM costs; ``—`` when unknown."""
    if usd is None:
        return "—"
    if usd == 0:
        return "$0.00"
    if usd < 0.01:
        return f"${usd:.4f}"
    if usd < 100:
        return f"${usd:.2f}"
    return f"${usd:,.0f}"


def format_count(number: int) -> str:
    """``950``, ``12.3k``, ``4.5M``."""
    if number < 1000:
        return str(number)
    if number < 1_000_000:
        return f"{number / 1000:.1f}k".replace(".0k", "k")
    return f"{number / 1_000_000:.1f}M".replace(".0M", "M")


@dataclass(frozen=True)
class Timestamp:
    """A moment as the page shows it: UTC text, and ISO for the browser to localise."""

    epoch: float
    iso: str
    text: str
    full: str
    kind: str  # how the browser shows it in local time: "time", "datetime"; under a chart "hm", "dhm"


def timestamp(epoch: float | None, *, with_date: bool = False) -> Timestamp | None:
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    iso = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    text = moment.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
    full = moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    return Timestamp(epoch, iso, text, full, "datetime" if with_date else "time")


def short(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def error_summary(error: str | None) -> str | None:
    """The line of an error worth showing in a table: a traceback's last line."""
    if not error:
        return None
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    return lines[-1] if lines else None


def result_texts(result: Any, has_result: bool) -> tuple[str | None, str | None, int]:
    """(one-line preview, pretty full text, size of the full text)."""
    if not has_result:
        return None, None, 0
    compact = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
    pretty = json.dumps(result, ensure_ascii=False, indent=2)
    return short(compact, PREVIEW_CHARS), pretty, len(pretty)


def format_size(chars: int) -> str:
    return f"{chars} B" if chars < 1024 else f"{chars / 1024:.1f} KB"


def fingerprint(*parts: Any) -> str:
    """A short hash of ``parts`` (their repr), to tell two states apart."""
    return hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).hexdigest()


@dataclass(frozen=True)
class Segment:
    """One coloured part of a stacked bar."""

    state: str
    count: int
    percent: float
    offset: float  # percent from the left


def segments(counts: Mapping[str, int], total: int) -> list[Segment]:
    """Stacked-bar segments in ``STATE_ORDER``; empty states left out."""
    found, offset = [], 0.0
    for state in STATE_ORDER:
        count = counts.get(state, 0)
        if count and total:
            percent = 100.0 * count / total
            found.append(Segment(state.value, count, percent, offset))
            offset += percent
    return found
