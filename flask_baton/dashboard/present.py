"""What the dashboard shows, computed from records: view models and formatting.

Templates only place these values; every number, time and text is formatted
here, in plain Python, so a page and a live fragment of it always agree and
the formatting is tested without a browser. Nothing here touches Flask.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..dag import StepGraph, can_cancel, can_retry
from ..ids import short_id
from ..multi_model import quorum_text
from ..records import StepRecord, StepUsage, WorkflowRecord
from ..states import StepState, WorkflowState
from .layout import Layout, PlacedEdge, PlacedNode, layered_layout, node_key

#: Characters of a result or an error shown in the table.
PREVIEW_CHARS = 96
#: Largest result (pretty JSON) embedded in the page; larger ones get a link.
INLINE_RESULT_CHARS = 16_000
#: Characters of a step name that fit in a graph node.
NODE_LABEL_CHARS = 22

#: Order of the segments of progress bars (settled first, then in flight).
STATE_ORDER = (
    StepState.COMPLETED,
    StepState.DISCARDED,
    StepState.CANCELLED,
    StepState.EXECUTING,
    StepState.RETRYABLE,
    StepState.SNOOZED,
    StepState.AVAILABLE,
    StepState.PENDING,
)


# -- formatting -----------------------------------------------------------------


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
    kind: str  # "time" or "datetime": how the browser shows it in local time


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


# -- steps ------------------------------------------------------------------------


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


@dataclass(frozen=True)
class StepView:
    """One row of the steps table."""

    key: str
    name: str
    task: str
    state: str
    attempt: int
    max_attempts: int | None
    queued: Timestamp | None
    started: Timestamp | None
    finished: Timestamp | None
    duration: str
    running_since: float | None
    tokens: str
    tokens_title: str
    cost: str
    result_preview: str | None
    result_full: str | None
    result_size: str
    result_inline: bool
    error_summary: str | None
    error_full: str | None
    worker: str | None
    deps: tuple[str, ...]
    quorum: str | None
    can_retry: bool

    @property
    def attempt_text(self) -> str:
        if self.max_attempts is None:
            return str(self.attempt)
        return f"{self.attempt}/{self.max_attempts}"


def step_view(
    step: StepRecord, usage: StepUsage | None, max_attempts: int | None, can_retry: bool, now: float
) -> StepView:
    state = step.state.value
    started = step.started_at if step.state != StepState.PENDING else None
    running = step.state == StepState.EXECUTING and started is not None
    duration = None
    if started is not None and step.finished_at is not None and step.finished_at >= started:
        duration = step.finished_at - started
    elif running:
        duration = now - started  # type: ignore[operator]
    preview, pretty, size = result_texts(step.result, step.has_result)
    if usage is not None:
        tokens = format_count(usage.total_tokens)
        tokens_title = (
            f"{usage.input_tokens:,} input ({usage.cached_input_tokens:,} cached) + "
            f"{usage.output_tokens:,} output tokens in {usage.calls} call(s)"
        )
        cost = format_cost(usage.cost_usd)
    else:
        tokens, tokens_title, cost = "—", "no model usage recorded", "—"
    return StepView(
        key=node_key(step.step_name),
        name=step.step_name,
        task=step.task,
        state=state,
        attempt=step.attempt,
        max_attempts=max_attempts,
        queued=timestamp(step.scheduled_at),
        started=timestamp(started),
        finished=timestamp(step.finished_at) if step.settled else None,
        duration=format_duration(duration),
        running_since=started if running else None,
        tokens=tokens,
        tokens_title=tokens_title,
        cost=cost,
        result_preview=preview,
        result_full=pretty,
        result_size=format_size(size),
        result_inline=size <= INLINE_RESULT_CHARS,
        error_summary=error_summary(step.error),
        error_full=step.error,
        worker=step.worker,
        deps=step.deps,
        quorum=quorum_text(step.args),
        can_retry=can_retry,
    )


# -- the graph ----------------------------------------------------------------------


@dataclass(frozen=True)
class NodeView:
    """One node of the drawn DAG (a step, or a collapsed group of twins)."""

    key: str
    x: float
    y: float
    width: float
    height: float
    label: str
    title: str
    state: str
    detail: str
    row_key: str
    group: bool
    bars: tuple[Segment, ...]


def _group_state(states: Iterable[str]) -> str:
    """The colour of a group: its most telling member state (failures first)."""
    present = set(states)
    for state in ("discarded", "executing", "retryable", "snoozed", "available", "pending", "cancelled"):
        if state in present:
            return state
    return "completed"


def node_view(node: PlacedNode, steps: Mapping[str, StepView]) -> NodeView:
    members = [steps[name] for name in node.members if name in steps]
    if not node.is_group:
        step = members[0]
        detail = step.state
        if step.attempt > 1:
            detail += f" · try {step.attempt_text}"
        elif step.duration != "—" and step.running_since is None:
            detail += f" · {step.duration}"
        title = f"{step.name} ({step.task}): {step.state}, attempt {step.attempt_text}"
        if step.error_summary:
            title += f"\n{step.error_summary}"
        return NodeView(
            node.key,
            node.x,
            node.y,
            node.width,
            node.height,
            short(step.name, NODE_LABEL_CHARS),
            title,
            step.state,
            detail,
            step.key,
            False,
            (),
        )
    counts: dict[str, int] = {}
    for step in members:
        counts[step.state] = counts.get(step.state, 0) + 1
    settled = sum(counts.get(state, 0) for state in ("completed", "discarded", "cancelled"))
    first, last = node.members[0], node.members[-1]
    label = f"{short(first, 9)} … {short(last, 9)}"
    title = f"{len(node.members)} parallel steps, {first} … {last}: " + ", ".join(
        f"{count} {state}" for state, count in sorted(counts.items())
    )
    return NodeView(
        node.key,
        node.x,
        node.y,
        node.width,
        node.height,
        label,
        title,
        _group_state(counts),
        f"{len(node.members)} steps · {settled} settled",
        node_key(first),
        True,
        tuple(segments(counts, len(members))),
    )


@dataclass(frozen=True)
class GraphView:
    width: float
    height: float
    nodes: tuple[NodeView, ...]
    edges: tuple[PlacedEdge, ...]
    shape: str  # fingerprint of the structure: a new one needs a full redraw


def graph_view(layout: Layout, steps: Mapping[str, StepView]) -> GraphView:
    nodes = tuple(node_view(node, steps) for node in layout.nodes)
    shape = fingerprint([(n.key, n.members) for n in layout.nodes], [(e.source, e.target) for e in layout.edges])
    return GraphView(layout.width, layout.height, nodes, layout.edges, shape)


def structure_of(steps: Iterable[StepRecord]) -> list[tuple[str, tuple[str, ...]]]:
    return [(step.step_name, step.deps) for step in steps]


# -- a workflow ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    kind: str  # completed | failed | cancelled
    title: str
    text: str


@dataclass(frozen=True)
class SummaryView:
    id: str
    label: str
    state: str
    settled: int
    total: int
    percent: float
    bars: tuple[Segment, ...]
    counts: tuple[tuple[str, int], ...]
    started: Timestamp
    finished: Timestamp | None
    duration: str
    running_since: float | None
    cost: str
    tokens: str
    outcome: Outcome | None
    can_cancel: bool


def outcome_of(record: WorkflowRecord, steps: Sequence[StepRecord], duration: str) -> Outcome | None:
    if record.state == WorkflowState.RUNNING:
        return None
    failed = [s.step_name for s in steps if s.state == StepState.DISCARDED]
    cancelled = [s.step_name for s in steps if s.state == StepState.CANCELLED]
    if record.state == WorkflowState.COMPLETED:
        return Outcome("completed", "Completed", f"All {record.total_steps} steps completed in {duration}.")
    if record.state == WorkflowState.CANCELLED:
        done = sum(1 for s in steps if s.state == StepState.COMPLETED)
        return Outcome(
            "cancelled",
            "Cancelled",
            f"Cancelled after {duration}: {done} step(s) had completed, {len(cancelled)} were cancelled.",
        )
    parts = []
    if failed:
        parts.append(
            f"{len(failed)} step(s) failed ({', '.join(short(n, 40) for n in failed[:5])}"
            f"{', …' if len(failed) > 5 else ''})"
        )
    if cancelled:
        parts.append(f"{len(cancelled)} cancelled as a consequence")
    return Outcome("failed", "Failed", ("; ".join(parts) or "A step failed") + f", after {duration}.")


def _progress(record: WorkflowRecord, total: int, now: float) -> dict[str, Any]:
    """The fields a workflow's index row and its page header share."""
    running = record.state == WorkflowState.RUNNING
    end = now if running or record.finished_at is None else record.finished_at
    return {
        "id": record.id,
        "label": record.name,
        "state": record.state.value,
        "settled": record.settled_steps,
        "total": total,
        "percent": 100.0 * record.settled_steps / total if total else 100.0,
        "started": timestamp(record.created_at, with_date=True),
        "duration": format_duration(end - record.created_at),
        "running_since": record.created_at if running else None,
    }


def summary_view(
    record: WorkflowRecord, steps: Sequence[StepRecord], usage: Mapping[str, StepUsage], now: float
) -> SummaryView:
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.state.value] = counts.get(step.state.value, 0) + 1
    progress = _progress(record, record.total_steps or len(steps), now)
    running = progress["running_since"] is not None
    costs = [u.cost_usd for u in usage.values() if u.cost_usd is not None]
    tokens = sum(u.total_tokens for u in usage.values())
    return SummaryView(
        **progress,
        bars=tuple(segments(counts, len(steps))),
        counts=tuple((state.value, counts[state.value]) for state in STATE_ORDER if counts.get(state.value)),
        finished=timestamp(record.finished_at, with_date=True) if not running else None,
        cost=format_cost(sum(costs)) if costs else "—",
        tokens=format_count(tokens) if usage else "—",
        outcome=outcome_of(record, steps, progress["duration"]),
        can_cancel=can_cancel(record.state),  # the button shows when control.cancel_workflow would accept it
    )


@dataclass(frozen=True)
class WorkflowView:
    summary: SummaryView
    graph: GraphView
    steps: tuple[StepView, ...]
    version: str  # changes whenever anything shown (but the clock) changes


def workflow_view(
    record: WorkflowRecord,
    steps: Sequence[StepRecord],
    usage: Mapping[str, StepUsage],
    max_attempts: Callable[[str], int | None],
    now: float,
    layout: Layout | None = None,
) -> WorkflowView:
    """Everything the workflow page shows; pass ``layout`` to reuse a drawing."""
    if layout is None:
        layout = layered_layout(structure_of(steps))
    stored = StepGraph.of(steps)  # the retry button is enabled when control.retry_step would accept the step
    step_views = tuple(
        step_view(s, usage.get(s.step_name), max_attempts(s.task), can_retry(stored, s.step_name), now) for s in steps
    )
    graph = graph_view(layout, {view.name: view for view in step_views})
    version = fingerprint(
        record.state.value,
        record.unsettled_steps,
        record.finished_at,
        [
            (s.step_name, s.state.value, s.attempt, s.scheduled_at, s.started_at, s.finished_at, s.has_result, s.error)
            for s in steps
        ],
        sorted((name, u) for name, u in usage.items()),
        graph.shape,
    )
    return WorkflowView(summary_view(record, steps, usage, now), graph, step_views, version)


# -- the index ------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowRow:
    id: str
    label: str
    state: str
    settled: int
    total: int
    percent: float
    started: Timestamp
    duration: str
    running_since: float | None
    cost: str

    @property
    def short_id(self) -> str:
        return short_id(self.id)


def workflow_row(record: WorkflowRecord, cost: float | None, now: float) -> WorkflowRow:
    return WorkflowRow(**_progress(record, record.total_steps, now), cost=format_cost(cost))


def row_version(record: WorkflowRecord, cost: float | None) -> tuple[Any, ...]:
    """What a row shows, but the clock: equal versions render the same."""
    return (record.state.value, record.unsettled_steps, record.total_steps, record.finished_at, cost)
