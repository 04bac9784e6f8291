"""A workflow's timeline: a Gantt chart of its steps over time, the critical path marked, as an SVG's geometry.

One row per node of the graph (``folding``: a fan-out or a chain folded in
the graph is one row here too, its members' time merged per state), rows in
the order they first started. Each step's time is a list of ``Span``: queued
(ready, waiting for a worker), running, waiting (to retry, or after a snooze).
``step_spans`` reads them off a step's row, which holds its last run only;
``run_spans`` adds the runs kept before it (``baton_attempts``: each failure
retried, each snooze), each coloured by how it ended. The critical path (``critical_path``) is outlined, with connectors
between its rows.

Pure: no Flask, no SQL; times are epoch seconds, geometry is CSS pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import NamedTuple, Protocol

from ..records import AttemptRecord
from ..states import AttemptOutcome, StepState
from .critical_path import Timing, critical_path
from .explore import Explore, NamedState, focus_label
from .folding import Fold, Folding
from .formatting import STATE_ORDER, format_duration, short
from .graph_view import Structured

WIDTH = 1200
LABEL_WIDTH = 250
ROW_HEIGHT = 22
BAR_HEIGHT = 12
AXIS_HEIGHT = 26
RIGHT_PAD = 16
#: Narrowest bar drawn, so a step of a few milliseconds still shows.
MIN_BAR = 1.5
#: Stretches of a row closer than this many pixels are drawn as one.
MERGE_PX = 2.0
#: Characters of a row's label.
LABEL_CHARS = 34
#: Tick spacings to choose from, in seconds.
TICK_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600)
MOST_TICKS = 10

QUEUED, RUNNING, WAITING = "queued", "running", "waiting"
_PLOT = WIDTH - LABEL_WIDTH - RIGHT_PAD


class TimedStep(Structured, NamedState, Protocol):
    """What the timeline reads of a step (a ``StepOutline`` or a ``StepRecord``).

    Its times, and what the graph and the table read too: its name, its deps
    (the critical path follows them) and its state.
    """

    @property
    def scheduled_at(self) -> float | None: ...
    @property
    def started_at(self) -> float | None: ...
    @property
    def finished_at(self) -> float | None: ...


class Span(NamedTuple):
    """A stretch of one step's time, coloured by ``state`` (the step's, or that attempt's outcome).

    A named tuple: a page builds one or two per step of the workflow.
    """

    kind: str  # QUEUED, RUNNING or WAITING
    start: float
    end: float
    state: str


def step_spans(step: TimedStep, now: float) -> list[Span]:
    """What a step's row says of its time: queued, then its last run, then a wait to run again."""
    state, queued, started = step.state, step.scheduled_at, step.started_at
    if started is None:
        waiting = step.state in (StepState.AVAILABLE, StepState.SNOOZED, StepState.RETRYABLE) and queued is not None
        return [Span(QUEUED, queued, max(now, queued), state)] if waiting and queued is not None else []
    spans = []
    if queued is not None and queued < started:
        spans.append(Span(QUEUED, queued, started, state))
    if step.state == StepState.EXECUTING:
        spans.append(Span(RUNNING, started, max(now, started), state))
    elif step.state in (StepState.RETRYABLE, StepState.SNOOZED):
        # The run that ended is not in the row any more, only that it started and when the next is due.
        spans += [Span(RUNNING, started, started, state), Span(WAITING, started, max(queued or now, started), state)]
    elif step.state == StepState.WAITING:
        # Waits for a signal until now (its ``scheduled_at`` is the deadline, not when it runs).
        spans += [Span(RUNNING, started, started, state), Span(WAITING, started, max(now, started), state)]
    elif step.finished_at is not None:
        spans.append(Span(RUNNING, started, max(step.finished_at, started), state))
    return spans


#: The colour of a kept run, by how it ended (the step state it left the step in).
RUN_STATES = {
    AttemptOutcome.RUNNING: "executing",
    AttemptOutcome.COMPLETED: "completed",
    AttemptOutcome.FAILED: "retryable",
    AttemptOutcome.SNOOZED: "snoozed",
    AttemptOutcome.WAITED: "waiting",
    AttemptOutcome.HANDED_BACK: "available",
    AttemptOutcome.LOST: "retryable",
    AttemptOutcome.DISCARDED: "discarded",
    AttemptOutcome.CANCELLED: "cancelled",
}


def run_spans(step: TimedStep, kept: Sequence[AttemptRecord], now: float) -> list[Span]:
    """A step's time with the runs kept before its row's (``Query.get_workflow_attempts``), oldest first.

    Each kept run is a running stretch coloured by how it ended, followed by
    a wait until the next run (its retry delay, its snooze). The row holds
    the last kept run itself while the step waits to run again.
    """
    if not kept:
        return step_spans(step, now)
    spans = []
    for run, after in zip(kept, [*kept[1:], None]):
        end, state = max(run.finished_at or now, run.started_at), RUN_STATES[run.outcome]
        spans.append(Span(RUNNING, run.started_at, end, state))
        if after is not None:
            spans.append(Span(WAITING, end, max(after.started_at, end), state))
    last, own = kept[-1], step_spans(step, now)
    ended, state = spans[-1].end, RUN_STATES[last.outcome]
    if step.started_at == last.started_at:  # the row still holds that run: only its wait to run again is new
        return spans + [Span(WAITING, ended, max(s.end, ended), state) for s in own if s.kind == WAITING]
    upcoming = min((s.start for s in own), default=None)
    if upcoming is not None and upcoming > ended:
        spans.append(Span(WAITING, ended, upcoming, state))
    return spans + own


@dataclass(frozen=True)
class Bar:
    kind: str
    state: str
    x: float
    width: float


@dataclass(frozen=True)
class TimelineRow:
    key: str
    label: str
    title: str
    href: str
    folded: bool
    y: float
    state: str  # the dot by the label: the step's state, or a fold's most telling one
    bars: tuple[Bar, ...]
    critical: tuple[Bar, ...]  # the critical path's stretches on this row, underlined


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class TimelineView:
    width: float
    height: float
    rows: tuple[TimelineRow, ...]
    ticks: tuple[Tick, ...]
    connectors: tuple[tuple[float, float, float, float], ...]  # x1, y1, x2, y2 between critical rows
    critical: str  # what the critical path is, in words ("" when nothing ran yet)
    label_x: float = LABEL_WIDTH - 8  # where row labels end


class _Scale:
    """Epoch seconds to x pixels."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.length = start, max(end - start, 1e-3)

    def x(self, moment: float) -> float:
        return LABEL_WIDTH + (moment - self.start) / self.length * _PLOT

    def bar(self, kind: str, state: str, start: float, end: float) -> Bar:
        x0 = self.x(start)
        return Bar(kind, state, x0, max(self.x(end) - x0, MIN_BAR))


def merged(intervals: Sequence[tuple[float, float]], slack: float = 0.0) -> list[tuple[float, float]]:
    """The union of ``intervals`` as disjoint, sorted intervals (those less than ``slack`` apart merge too)."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1] + slack:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def ticks(scale: _Scale) -> tuple[Tick, ...]:
    """Round offsets from the start (``0 ms``, ``10 s``, ``20 s``, …), at most ``MOST_TICKS``."""
    step = next((s for s in TICK_STEPS if scale.length / s <= MOST_TICKS), TICK_STEPS[-1])
    count = int(scale.length / step) + 1
    return tuple(Tick(scale.x(scale.start + i * step), format_duration(i * step)) for i in range(count))


_LOUDEST = (
    "discarded",
    "executing",
    "waiting",
    "retryable",
    "snoozed",
    "available",
    "pending",
    "cancelled",
    "completed",
)


def _row_state(states: set[str]) -> str:
    return next((state for state in _LOUDEST if state in states), "pending")


def _row(
    unit: Fold, steps: Mapping[str, TimedStep], spans: Mapping[str, Sequence[Span]], on_path: set[str], slack: float
) -> tuple[list[tuple[str, str, float, float]], list[tuple[float, float]], str, str]:
    """A row's stretches (kind, state, start, end) merged per kind and state, its critical ones, state, title.

    Stretches closer than ``slack`` (a pixel or two) merge: a chain's steps
    one after the other are one bar, as the chart cannot show their gaps.
    """
    by_kind: dict[tuple[str, str], list[tuple[float, float]]] = {}
    critical: list[tuple[float, float]] = []
    counts: dict[str, int] = {}
    for name in unit.members:
        state = steps[name].state
        counts[state] = counts.get(state, 0) + 1
        for span in spans.get(name, ()):
            by_kind.setdefault((span.kind, span.state), []).append((span.start, span.end))
            if name in on_path and span.kind == RUNNING:
                critical.append((span.start, span.end))
    order = {state.value: i for i, state in enumerate(STATE_ORDER)}
    stretches = [
        (kind, state, start, end)
        for (kind, state), found in sorted(by_kind.items(), key=lambda item: (item[0][0] != QUEUED, order[item[0][1]]))
        for start, end in merged(found, slack)
    ]
    states = ", ".join(f"{counts[s.value]} {s.value}" for s in STATE_ORDER if s.value in counts)
    title = unit.members[0] if not unit.folded else focus_label(unit.members, unit.kind)
    return stretches, merged(critical, slack), _row_state(set(counts)), f"{title}: {states}"


def timeline_view(
    steps: Sequence[TimedStep],
    spans: Mapping[str, Sequence[Span]],  # by step name; a step that has none may be left out
    folding: Folding,
    explore: Explore,
    start: float,
    end: float,
) -> TimelineView:
    """The Gantt chart of ``steps`` from ``start`` to ``end`` (the workflow's creation, its end or now)."""
    by_name = {step.step_name: step for step in steps}
    firsts, ends, latest = {}, {}, end
    for name, found in spans.items():  # one pass: most steps of a big workflow have no span yet
        if found:
            firsts[name] = min(span.start for span in found)
            latest = max(latest, max(span.end for span in found))
            runs = [span.end for span in found if span.kind == RUNNING]
            if runs:
                ends[name] = max(runs)
    path = critical_path([Timing(s.step_name, s.deps, ends[s.step_name]) for s in steps if s.step_name in ends])
    on_path = set(path)
    ran = {name: [span for span in spans[name] if span.kind == RUNNING] for name in path}
    scale = _Scale(start, latest)
    index = {unit.key: i for i, unit in enumerate(folding.nodes)}

    def first_start(unit: Fold) -> tuple[bool, float, int]:
        begun = [firsts[name] for name in unit.members if name in firsts]
        return (not begun, min(begun, default=0.0), index[unit.key])

    rows, row_y = [], {}
    for position, unit in enumerate(sorted(folding.nodes, key=first_start)):
        y = AXIS_HEIGHT + position * ROW_HEIGHT
        row_y[unit.key] = y + ROW_HEIGHT / 2
        stretches, critical, state, title = _row(unit, by_name, spans, on_path, scale.length / _PLOT * MERGE_PX)
        label = focus_label(unit.members, unit.kind) if unit.folded else unit.members[0]
        rows.append(
            TimelineRow(
                unit.key,
                short(label, LABEL_CHARS),
                title,
                explore.filtered(node=unit.key),
                unit.folded,
                y,
                state,
                tuple(scale.bar(kind, state, a, b) for kind, state, a, b in stretches),
                tuple(scale.bar(RUNNING, "critical", a, b) for a, b in critical),
            )
        )
    return TimelineView(
        WIDTH,
        AXIS_HEIGHT + len(rows) * ROW_HEIGHT + 8,
        tuple(rows),
        ticks(scale),
        _connectors(path, ran, folding, row_y, scale),
        _critical_text(path, ran, scale),
    )


def _connectors(
    path: Sequence[str],
    ran: Mapping[str, Sequence[Span]],
    folding: Folding,
    row_y: Mapping[str, float],
    scale: _Scale,
) -> tuple[tuple[float, float, float, float], ...]:
    """Lines from the end of each critical step to the start of the next, when they are on different rows."""
    lines = []
    for before, after in pairwise(path):
        upper, lower = folding.node_of[before], folding.node_of[after]
        if upper != lower and ran.get(before) and ran.get(after):
            x1, x2 = scale.x(ran[before][-1].end), scale.x(ran[after][-1].start)
            lines.append((x1, row_y[upper], max(x1, x2), row_y[lower]))
    return tuple(lines)


def _critical_text(path: Sequence[str], ran: Mapping[str, Sequence[Span]], scale: _Scale) -> str:
    if not path:
        return ""
    busy = sum(span.end - span.start for name in path for span in ran.get(name, ()))
    steps = f"{len(path)} steps" if len(path) > 1 else "1 step"
    return (
        f"Critical path: {short(path[0], 40)} → {short(path[-1], 40)}, {steps}, "
        f"running {format_duration(busy)} of {format_duration(scale.length)}"
    )
