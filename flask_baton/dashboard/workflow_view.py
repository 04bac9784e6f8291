"""The workflow page's view model: its header (summary, outcome), graph, timeline and steps.

Assembles the parts (``step_view``, ``graph_view``, ``timeline``, the
table's page from ``explore``, the index's ``progress``) into what the page
and its live fragments show, with a version that changes whenever anything
shown but the clock changes, so a live update is sent only when the page
would look different. Every step is read in outline (state and times); only
the steps shown one by one (the table's page, the graph's unfolded steps)
are read and formatted in full, so a page of 10,000 steps costs what it shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..dag import StepGraph, can_cancel, can_retry
from ..records import AttemptRecord, StepOutline, StepRecord, StepUsage, WorkflowRecord
from ..states import StepState, WorkflowState
from .explore import Explore, StepsPage
from .folding import Folding, fold
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
from .graph_view import GraphView, graph_view
from .index_view import Progress, progress
from .layout import Layout, layered_layout
from .step_view import StepView, step_view
from .timeline import TimelineView, run_spans, timeline_view


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


def outcome_of(record: WorkflowRecord, steps: Sequence[StepOutline], duration: str) -> Outcome | None:
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
    record: WorkflowRecord, steps: Sequence[StepOutline], usage: Mapping[str, StepUsage], now: float
) -> SummaryView:
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.state] = counts.get(step.state, 0) + 1
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
class Drawing:
    """A workflow's structure folded and laid out: kept while its steps and opened chains stay the same."""

    structure: list[tuple[str, tuple[str, ...]]]
    opened: tuple[str, ...]
    folding: Folding
    layout: Layout

    @classmethod
    def of(cls, structure: list[tuple[str, tuple[str, ...]]], opened: tuple[str, ...]) -> Drawing:
        folding = fold(structure, opened)
        return cls(structure, opened, folding, layered_layout(structure, folding))

    def fits(self, structure: list[tuple[str, tuple[str, ...]]], opened: tuple[str, ...]) -> bool:
        return structure == self.structure and opened == self.opened

    def shown(self, table: StepsPage) -> list[str]:
        """The steps read in full: the table's rows, and the steps the graph draws one by one."""
        alone = (node.members[0] for node in self.folding.nodes if not node.folded)
        return list(dict.fromkeys([*table.names, *alone]))


@dataclass(frozen=True)
class WorkflowView:
    summary: SummaryView
    graph: GraphView
    steps: tuple[StepView, ...]  # the table's rows (one page of what its filter lets through)
    table: StepsPage
    timeline: TimelineView
    explore: Explore
    version: str  # changes whenever anything shown (but the clock) changes


def workflow_view(
    record: WorkflowRecord,
    outline: Sequence[StepOutline],
    shown: Sequence[StepRecord],
    usage: Mapping[str, StepUsage],
    max_attempts: Callable[[str], int | None],
    now: float,
    *,
    drawing: Drawing,
    explore: Explore,
    table: StepsPage,
    kept: Mapping[str, Sequence[AttemptRecord]],
) -> WorkflowView:
    """Everything the page shows of ``explore``: ``outline`` has every step, ``shown`` ``drawing.shown(table)``.

    ``kept`` are the runs kept before each step's row's (the timeline draws them).
    """
    # The retry button is enabled when control.retry_step would accept the step: its deps are the shown steps'.
    stored = StepGraph.of(outline, shown)
    views = {
        s.step_name: step_view(s, usage.get(s.step_name), max_attempts(s.task), can_retry(stored, s.step_name), now)
        for s in shown
    }
    by_name = {s.step_name: s for s in outline}
    graph = graph_view(drawing.layout, views, by_name, explore)
    spans = {s.step_name: found for s in outline if (found := run_spans(s, kept.get(s.step_name, ()), now))}
    end = now if record.finished_at is None else record.finished_at
    timeline = timeline_view(outline, spans, drawing.folding, explore, record.created_at, end)
    version = fingerprint(
        record.state.value,
        record.unsettled_steps,
        record.finished_at,
        [(s.step_name, str(s.state), s.attempt, s.scheduled_at, s.started_at, s.finished_at) for s in outline],
        [(s.step_name, s.has_result, s.error, s.worker) for s in shown],
        sorted((name, u) for name, u in usage.items()),
        graph.shape,
        explore,
    )
    rows = tuple(views[name] for name in table.names if name in views)
    return WorkflowView(summary_view(record, outline, usage, now), graph, rows, table, timeline, explore, version)
