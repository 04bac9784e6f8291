"""The workflow page's view model: its header (summary, outcome), graph and steps.

Assembles the parts (``step_view``, ``graph_view``, the index's ``progress``)
into what the page and its live fragments show, with a version that changes
whenever anything shown but the clock changes, so a live update is sent only
when the page would look different.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..dag import StepGraph, can_cancel, can_retry
from ..records import StepRecord, StepUsage, WorkflowRecord
from ..states import StepState, WorkflowState
from .formatting import (
    STATE_ORDER,
    Segment,
    Timestamp,
    fingerprint,
    format_cost,
    format_count,
    segments,
    short,
    timestamp,
)
from .graph_view import GraphView, graph_view, structure_of
from .index_view import Progress, progress
from .layout import Layout, layered_layout
from .step_view import StepView, step_view


@dataclass(frozen=True)
class Outcome:
    kind: str  # completed | failed | cancelled
    title: str
    text: str


@dataclass(frozen=True)
class SummaryView(Progress):
    bars: tuple[Segment, ...]
    counts: tuple[tuple[str, int], ...]
    finished: Timestamp | None
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


def summary_view(
    record: WorkflowRecord, steps: Sequence[StepRecord], usage: Mapping[str, StepUsage], now: float
) -> SummaryView:
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.state.value] = counts.get(step.state.value, 0) + 1
    header = progress(record, record.total_steps or len(steps), now)
    running = header["running_since"] is not None
    costs = [u.cost_usd for u in usage.values() if u.cost_usd is not None]
    tokens = sum(u.total_tokens for u in usage.values())
    return SummaryView(
        **header,
        bars=tuple(segments(counts, len(steps))),
        counts=tuple((state.value, counts[state.value]) for state in STATE_ORDER if counts.get(state.value)),
        finished=timestamp(record.finished_at, with_date=True) if not running else None,
        cost=format_cost(sum(costs)) if costs else "—",
        tokens=format_count(tokens) if usage else "—",
        outcome=outcome_of(record, steps, header["duration"]),
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
