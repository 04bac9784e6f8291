"""The workflow page's view model: its header (summary, outcome, actions), graph and steps.

Assembles the parts (``step_view``, ``graph_view``, the index's ``progress``)
into what the page and its live fragments show, with a version that changes
whenever anything shown but the clock changes, so a live update is sent only
when the page would look different.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..dag import StepGraph, can_cancel, can_retry, failure_roots, resume_roots
from ..headline import Headline, OutcomeFacts, headline
from ..records import StepRecord, StepUsage, WorkflowRecord
from .formatting import (
    STATE_ORDER,
    Segment,
    Timestamp,
    fingerprint,
    format_cost,
    format_count,
    segments,
    timestamp,
)
from .graph_view import GraphView, graph_view, structure_of
from .index_view import Progress, progress
from .layout import Layout, layered_layout
from .step_view import StepView, step_view


@dataclass(frozen=True)
class SummaryView(Progress):
    bars: tuple[Segment, ...]
    counts: tuple[tuple[str, int], ...]
    finished: Timestamp | None
    cost: str
    tokens: str
    outcome: Headline | None  # None while it runs: the progress says it all
    can_cancel: bool
    can_retry: bool  # "Retry workflow": there are failures a resume would not run again
    can_resume: bool  # "Resume": a user's cancel stopped steps that can run again


def summary_view(
    record: WorkflowRecord,
    steps: Sequence[StepRecord],
    usage: Mapping[str, StepUsage],
    facts: OutcomeFacts,
    now: float,
) -> SummaryView:
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.state.value] = counts.get(step.state.value, 0) + 1
    header = progress(record, record.total_steps or len(steps), now)
    running = header["running_since"] is not None
    # What retry_workflow / resume_workflow would re-arm: their buttons show when it is something.
    retried, resumed = ([], []) if running else (failure_roots(StepGraph.of(steps)), resume_roots(steps))
    costs = [u.cost_usd for u in usage.values() if u.cost_usd is not None]
    tokens = sum(u.total_tokens for u in usage.values())
    return SummaryView(
        **header,
        bars=tuple(segments(counts, len(steps))),
        counts=tuple((state.value, counts[state.value]) for state in STATE_ORDER if counts.get(state.value)),
        finished=timestamp(record.finished_at, with_date=True) if not running else None,
        cost=format_cost(sum(costs)) if costs else "—",
        tokens=format_count(tokens) if usage else "—",
        outcome=None if running else headline(record, facts),
        can_cancel=can_cancel(record.state),  # the button shows when control.cancel_workflow would accept it
        can_retry=bool(set(retried) - set(resumed)),
        can_resume=bool(resumed),
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
    facts: OutcomeFacts,
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
        record.retried,
        facts,
        [
            (s.step_name, s.state.value, s.attempt, s.scheduled_at, s.started_at, s.finished_at, s.has_result, s.error)
            for s in steps
        ],
        sorted((name, u) for name, u in usage.items()),
        graph.shape,
    )
    return WorkflowView(summary_view(record, steps, usage, facts, now), graph, step_views, version)
