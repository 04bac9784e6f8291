"""The workflow page's view model: its header (summary, outcome, actions), graph, timeline and steps.

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

from ..budget import reached, share, used
from ..dag import StepGraph, can_cancel, can_retry, failure_roots, resume_roots
from ..headline import Headline, OutcomeFacts, headline
from ..records import AttemptRecord, StepOutline, StepRecord, StepUsage, WorkflowRecord
from ..states import FAILED, WorkflowState
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
    timestamp,
)
from .graph_view import GraphView, graph_view
from .index_view import Progress, progress
from .layout import Layout, layered_layout
from .step_view import StepView, step_view
from .timeline import TimelineView, run_spans, timeline_view


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
    budget: BudgetView | None  # None: no cap of its own


@dataclass(frozen=True)
class BudgetView:
    """A workflow's spend cap: ``budget: $0.42 of $2.50 (17%)``, its bar, and whether steps wait for a raise."""

    text: str
    cap: float
    percent: float
    reached: bool
    held: bool  # reached under "pause" while running: steps not yet started wait for a raised cap


def budget_view(record: WorkflowRecord, spent: float | None, action: str) -> BudgetView | None:
    """The cap's view, or None for a workflow without one."""
    cap = record.budget_usd
    if cap is None:
        return None
    over = reached(spent, cap) is not None
    held = over and record.state == WorkflowState.RUNNING and (record.on_budget or action) == "pause"
    return BudgetView(used(spent, cap), cap, round(share(spent, cap) * 100, 1), over, held)


def summary_view(
    record: WorkflowRecord,
    steps: Sequence[StepOutline],
    usage: Mapping[str, StepUsage],
    facts: OutcomeFacts,
    now: float,
    budget_action: str = "cancel",
) -> SummaryView:
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.state] = counts.get(step.state, 0) + 1
    header = progress(record, record.total_steps or len(steps), now)
    running = header["running_since"] is not None
    # What retry_workflow / resume_workflow would re-arm: their buttons show when it is something.
    # Asked only when a step failed: it walks every step twice (some 30 ms of CPU at 10,000).
    failed = not running and any(counts.get(state) for state in FAILED)
    retried, resumed = (failure_roots(StepGraph.of(steps)), resume_roots(steps)) if failed else ([], [])
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
        budget=budget_view(record, sum(costs) if costs else None, budget_action),
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
    facts: OutcomeFacts,
    drawing: Drawing,
    explore: Explore,
    table: StepsPage,
    kept: Mapping[str, Sequence[AttemptRecord]],
    budget_action: str = "cancel",
) -> WorkflowView:
    """Everything the page shows of ``explore``: ``outline`` has every step, ``shown`` ``drawing.shown(table)``.

    ``kept`` are the runs kept before each step's row's (the timeline draws them); ``facts``
    what the outcome headline says of a workflow that ended (``Query.outcome_facts``);
    ``budget_action`` what reaching a cap does where the workflow does not say (``BATON_BUDGET_ACTION``).
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
        record.retried,
        record.budget_usd,
        facts,
        [(s.step_name, str(s.state), s.attempt, s.scheduled_at, s.started_at, s.finished_at) for s in outline],
        [(s.step_name, s.has_result, s.error, s.worker) for s in shown],
        sorted((name, u) for name, u in usage.items()),
        graph.shape,
        explore,
    )
    rows = tuple(views[name] for name in table.names if name in views)
    summary = summary_view(record, outline, usage, facts, now, budget_action)
    return WorkflowView(summary, graph, rows, table, timeline, explore, version)
